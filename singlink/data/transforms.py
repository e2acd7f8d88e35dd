"""The one resize/crop policy used by every singlink loader.

Every loader turns a decoded image into a float32 tensor ``(3, H, W)`` in ``[0, 1]`` through a
:class:`Transform`:

1. ``img.convert("RGB")`` (grey images are replicated to 3 channels; an alpha channel is
   dropped, not composited; palette images are expanded);
2. optionally (``landscape=True``) a portrait image (height > width) is rotated by 90 degrees
   counter-clockwise (``PIL.Image.Transpose.ROTATE_90``) so it becomes landscape. Kodak uses
   this by default: its six portrait images (512 wide x 768 high) become 768 x 512 like the
   other 18, so all 24 stack into one batch. Rotation is lossless and leaves PSNR/MS-SSIM
   unchanged;
3. sizing, by ``size`` and ``mode``:

   * ``size=None``: keep the image as it is;
   * ``mode="center-crop"`` (default): crop the largest centred window with the target aspect
     ratio ``H/W`` (crop width ``round(h*W/H)`` or crop height ``round(w*H/W)``, offset
     ``(dim - crop)//2``), then resize it to ``(H, W)`` with PIL bicubic
     (``Image.resize(..., Image.Resampling.BICUBIC)``, which antialiases when shrinking,
     unlike ``torch.nn.functional.interpolate`` without ``antialias``). No resize happens when
     the crop already has the target size, so a 32x32 image at ``size=32`` is left untouched;
   * ``mode="resize"``: PIL bicubic resize straight to ``(H, W)``, ignoring the aspect ratio;
   * ``mode="random-crop"``: a uniformly placed ``H x W`` window, no resampling. An image
     smaller than the window in either dimension is first enlarged (bicubic, aspect ratio
     kept) just enough to cover it. The window position is drawn from
     ``np.random.default_rng([seed, epoch, index])`` when the dataset passes the item
     ``index`` (all singlink datasets do), so it depends only on (seed, epoch, index): the
     same across runs, machines and DataLoader worker counts. Call :meth:`Transform.set_epoch`
     to get new crops each epoch. Without an index, a generator seeded once with ``seed`` is
     used (reproducible for a fixed call order only).

4. conversion to a float32 tensor: ``uint8 / 255``.

Bicubic resampling is done on 8-bit images, so outputs stay in ``[0, 1]`` (PIL clips the
overshoot).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

__all__ = ["Transform", "to_tensor", "apply_transform", "MODES"]

MODES = ("center-crop", "resize", "random-crop")


def to_tensor(img: Image.Image | np.ndarray) -> torch.Tensor:
    """An RGB PIL image (or ``uint8`` HxWx3 array) -> float32 tensor ``(3, H, W)`` in [0, 1]."""
    if isinstance(img, Image.Image):
        img = np.asarray(img.convert("RGB"), dtype=np.uint8)
    arr = np.ascontiguousarray(img)
    if not arr.flags.writeable:  # PIL's array view is read-only; torch wants writable memory
        arr = arr.copy()
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected a uint8 HxWx3 array, got dtype {arr.dtype} shape {arr.shape}")
    return torch.from_numpy(arr).permute(2, 0, 1).to(torch.float32).div_(255.0).contiguous()


def _norm_size(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    h, w = (int(s) for s in size)
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive, got {(h, w)}")
    return h, w


@dataclass
class Transform:
    """Resize/crop policy: ``Transform(size=None | int | (H, W), mode=..., seed=0, landscape=False)``.

    ``transform(img, index=None) -> Tensor (3, H, W)``; see the module docstring for the exact
    behaviour of each mode.
    """

    size: tuple[int, int] | int | None = None
    mode: str = "center-crop"
    seed: int = 0
    landscape: bool = False
    epoch: int = 0
    _rng: np.random.Generator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.size = _norm_size(self.size)
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        self._rng = np.random.default_rng(self.seed)

    def set_epoch(self, epoch: int) -> None:
        """Change the epoch that, with ``seed`` and the item index, places random crops."""
        self.epoch = int(epoch)

    def __call__(self, img: Image.Image | np.ndarray, index: int | None = None) -> torch.Tensor:
        return to_tensor(self.apply_pil(img, index))

    def apply_pil(self, img: Image.Image | np.ndarray, index: int | None = None) -> Image.Image:
        """Steps 1-3 of the policy, returning the RGB PIL image before tensor conversion."""
        if isinstance(img, np.ndarray):
            img = Image.fromarray(img)
        img = img.convert("RGB")
        if self.landscape and img.height > img.width:
            img = img.transpose(Image.Transpose.ROTATE_90)
        if self.size is None:
            return img
        H, W = self.size
        w, h = img.size
        if self.mode == "resize":
            return img if (w, h) == (W, H) else img.resize((W, H), Image.Resampling.BICUBIC)
        if self.mode == "center-crop":
            if w * H > h * W:  # wider than the target: crop the width
                cw, ch = max(1, min(w, round(h * W / H))), h
            else:
                cw, ch = w, max(1, min(h, round(w * H / W)))
            left, top = (w - cw) // 2, (h - ch) // 2
            if (cw, ch) != (w, h):
                img = img.crop((left, top, left + cw, top + ch))
            return img if (cw, ch) == (W, H) else img.resize((W, H), Image.Resampling.BICUBIC)
        # random-crop
        if w < W or h < H:
            scale = max(W / w, H / h)
            w, h = max(W, math.ceil(w * scale)), max(H, math.ceil(h * scale))
            img = img.resize((w, h), Image.Resampling.BICUBIC)
        rng = self._rng if index is None else np.random.default_rng([self.seed, self.epoch, int(index)])
        top = int(rng.integers(0, h - H + 1))
        left = int(rng.integers(0, w - W + 1))
        return img.crop((left, top, left + W, top + H))


def apply_transform(transform: Callable | None, img: Image.Image, index: int) -> torch.Tensor:
    """Run a dataset's transform on one decoded image.

    ``None`` means ``Transform()`` (RGB, no resizing). A :class:`Transform` receives the item
    index (for seeded random crops); any other callable is called as ``transform(img)`` and may
    return a tensor or a PIL image / uint8 array (converted with :func:`to_tensor`).
    """
    if transform is None:
        return to_tensor(img.convert("RGB"))
    out = transform(img, index=index) if isinstance(transform, Transform) else transform(img)
    if isinstance(out, torch.Tensor):
        return out
    return to_tensor(out)
