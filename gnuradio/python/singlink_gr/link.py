"""The computations the three blocks wrap, and the same link run directly from Python.

Each block is a thin stream/message shell around one of these objects, so a flowgraph
``jscc_tx -> sionna_channel -> jscc_rx`` and :func:`direct_link` compute the same thing:

- :class:`Encoder`: uint8 images (N, H, W, 3) -> DeepJSCC symbols (N, k) complex64, in groups of
  ``batch_size`` images (results depend on the group, in the last float bits, so both paths
  use the same groups);
- :class:`Channel`: one frame (k,) through singlink's Sionna channel (``phy.make_channel``, run
  through the DLPack bridge ``phy.TFModule``), seeded per frame with
  ``phy.set_seed(derive_seed(seed, frame))``, so any frame can be recomputed alone;
- :class:`Decoder`: received frames -> restored uint8 images with singlink's
  :class:`~singlink.receiver.Receiver` (restoration seeds ``derive_seed(seed, "restore", frame)``).

singlink (torch, TensorFlow, Sionna) is imported when one of these is built, not on import.
"""
from __future__ import annotations

import numpy as np

from .common import DEFAULT_CHECKPOINT, float_to_u8, fit_u8, load_image_u8, u8_to_float

__all__ = ["Encoder", "Channel", "Decoder", "direct_link", "SUPPORTED_CHANNELS", "METHOD_OPTIONS"]

SUPPORTED_CHANNELS = ("awgn", "rayleigh-block")
#: which block parameters each restoration method takes
METHOD_OPTIONS = {"deepjscc": (), "sing-zero": ("steps",), "sing-inn": ("steps", "zeta", "inn")}


def load_jscc(checkpoint, device="cpu"):
    """A DeepJSCC model from a checkpoint name or folder (or the model itself)."""
    from singlink.jscc.model import DeepJSCC

    if isinstance(checkpoint, DeepJSCC):
        return checkpoint
    return DeepJSCC.from_pretrained(checkpoint or DEFAULT_CHECKPOINT, device=device)


class Encoder:
    """DeepJSCC transmitter: ``encode(images_u8 (N, H, W, 3), snr_db) -> (N, k) complex64``."""

    def __init__(self, checkpoint=DEFAULT_CHECKPOINT, device="cpu"):
        self.jscc = load_jscc(checkpoint, device)
        self.device = device
        self.k = int(self.jscc.config.k)
        self.size = tuple(int(s) for s in self.jscc.config.image_size[1:])

    def load(self, path) -> np.ndarray:
        return load_image_u8(path, self.size)

    def fit(self, image_u8) -> np.ndarray:
        return fit_u8(np.asarray(image_u8, dtype=np.uint8), self.size)

    def encode(self, images_u8, snr_db) -> np.ndarray:
        import torch

        x = u8_to_float(np.stack([self.fit(a) for a in images_u8])).to(self.device)
        snr = torch.as_tensor(np.broadcast_to(np.asarray(snr_db, dtype=np.float32), (len(x),)).copy())
        with torch.no_grad():
            z = self.jscc.encode(x, snr.to(self.device))
        return z.cpu().numpy().astype(np.complex64, copy=False)


class Channel:
    """singlink's Sionna channel for one frame at a time:
    ``apply(z (L,) complex64, snr_db, frame) -> (y (L,) complex64, h complex or None)``.

    ``h`` is the block-fading gain of the frame (None for AWGN, where the receiver must not
    equalise)."""

    def __init__(self, name="awgn", seed=0, power=1.0):
        if name not in SUPPORTED_CHANNELS:
            raise ValueError(f"channel {name!r} is not supported by the GNU Radio blocks; choose one of "
                             f"{', '.join(SUPPORTED_CHANNELS)} (rayleigh-fast has one gain per symbol, "
                             "which a per-frame 'h' tag cannot carry)")
        from singlink import phy
        from singlink.provenance import derive_seed

        self._phy, self._derive_seed = phy, derive_seed
        self.name, self.seed, self.power = name, int(seed), float(power)
        self.block = phy.TFModule(phy.make_channel(name, power=self.power))

    def frame_seed(self, frame: int) -> int:
        return self._derive_seed(self.seed, int(frame))

    def apply(self, z, snr_db, frame):
        import torch

        self._phy.set_seed(self.frame_seed(frame))
        # a torch-allocated copy: TensorFlow aborts the process (IsAligned check) on DLPack buffers
        # that are not 64-byte aligned, which numpy-owned memory need not be
        x = torch.tensor(np.asarray(z, dtype=np.complex64)).reshape(1, -1)
        with torch.no_grad():
            y, h = self.block(x, float(snr_db))
        y = y[0].numpy().copy()
        return y, (None if self.name == "awgn" else complex(h.reshape(-1)[0].item()))


class Decoder:
    """DeepJSCC decoding + restoration with singlink's Receiver:
    ``restore(y (N, k), snr_db (N,), h [complex|None]*N, frames [int]*N) -> uint8 (N, H, W, 3)``."""

    def __init__(self, checkpoint=DEFAULT_CHECKPOINT, method="deepjscc", prior=None, steps=None, zeta=None,
                 inn=None, seed=0, equalizer="mmse", device="cpu"):
        from singlink.errors import UsageError
        from singlink.provenance import derive_seed
        from singlink.receiver.plugin import Receiver

        if method not in METHOD_OPTIONS:
            from singlink.receiver.plugin import available_methods
            raise UsageError(f"unknown method {method!r}; choose one of {', '.join(available_methods())}")
        given = {"steps": int(steps) if steps else None, "zeta": zeta, "inn": inn or None}  # None: the checkpoint's
        options = {k: given[k] for k in METHOD_OPTIONS[method] if given[k] is not None}
        self.method, self.seed, self._derive_seed = method, int(seed), derive_seed
        self.jscc = load_jscc(checkpoint, device)
        self.k = int(self.jscc.config.k)
        self.device = device
        self.rx = Receiver(self.jscc, method=method, prior=prior or None, equalizer=equalizer, device=device, **options)

    def restore(self, y, snr_db, h, frames) -> np.ndarray:
        import torch

        y = np.asarray(y, dtype=np.complex64).reshape(len(frames), self.k)
        snr = np.asarray(snr_db, dtype=np.float32).reshape(-1)
        out = np.zeros((len(frames), *self.jscc.config.image_size[1:], 3), np.uint8)
        faded = np.array([g is not None for g in h], dtype=bool)
        for sel in (np.flatnonzero(~faded), np.flatnonzero(faded)):  # AWGN frames are not equalised
            if not len(sel):
                continue
            hh = None
            if faded[sel[0]]:
                hh = torch.tensor([[complex(h[i])] for i in sel], dtype=torch.complex64, device=self.device)
            seeds = [self._derive_seed(self.seed, "restore", int(frames[i])) for i in sel]
            with torch.no_grad():
                # torch-allocated copies (aligned for the DLPack bridge, see Channel.apply)
                x = self.rx(torch.tensor(y[sel], device=self.device), torch.tensor(snr[sel], device=self.device),
                            h=hh, seed=seeds)
            out[sel] = float_to_u8(x)
        return out


def direct_link(images, snr_db, encoder: Encoder, channel: Channel, decoder: Decoder, batch_size=16,
                channel_snr_db=None):
    """The flowgraph's computation without GNU Radio, for comparison and benchmarking.

    ``images``: a list of image paths or of uint8 (H, W, 3) arrays, sent as frames 0, 1, ...
    Encoding and decoding run in consecutive groups of ``batch_size`` (as :class:`jscc_tx` and
    :class:`jscc_rx` do); the channel runs per frame. Returns uint8 (N, H, W, 3).
    """
    batch_size = max(1, int(batch_size))
    n = len(images)
    z = np.zeros((n, encoder.k), np.complex64)
    for s in range(0, n, batch_size):
        group = [encoder.load(a) if not isinstance(a, np.ndarray) else a for a in images[s:s + batch_size]]
        z[s:s + len(group)] = encoder.encode(group, snr_db)
    rx_snr = float(snr_db if channel_snr_db is None else channel_snr_db)
    y = np.zeros_like(z)
    h = []
    for i in range(n):
        y[i], g = channel.apply(z[i], rx_snr, i)
        h.append(g)
    out = []
    for s in range(0, n, batch_size):
        idx = list(range(s, min(n, s + batch_size)))
        out.append(decoder.restore(y[idx], [rx_snr] * len(idx), [h[i] for i in idx], idx))
    return np.concatenate(out) if out else np.zeros((0, *encoder.size, 3), np.uint8)
