"""Input validation shared by every metric: two float image batches (N, 3, H, W)."""
from __future__ import annotations

import torch


def check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    """Validate a reference/distorted pair of image batches.

    Both must be floating-point tensors of the same shape (N, 3, H, W) holding finite values
    (the images are expected in [0, 1]; values slightly outside are accepted, since decoders
    overshoot).

    Raises:
        TypeError: an input is not a floating-point ``torch.Tensor``.
        ValueError: the shapes differ or are not (N, 3, H, W), or an input holds NaN or Inf;
            the message names the input and counts the bad values.
    """
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor, got {type(t).__name__}"
                            + (f" of dtype {t.dtype}" if isinstance(t, torch.Tensor) else ""))
        if t.ndim != 4 or t.shape[1] != 3:
            raise ValueError(f"{name} must have shape (N, 3, H, W), got {tuple(t.shape)}")
    if x.shape != y.shape:
        raise ValueError(f"x and y shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    for name, t in (("x", x), ("y", y)):
        bad = int((~torch.isfinite(t)).sum())
        if bad:
            raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or Inf)")
