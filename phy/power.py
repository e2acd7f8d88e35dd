"""Per-example power normalisation and the bandwidth compression ratio."""
import sys
from fractions import Fraction


def normalize_power(z, power: float = 1.0):
    r"""Normalise each example to average power ``power`` (SING paper, Eq. 6).

    .. math::  \mathbf{z} = \sqrt{k \bar P}\, \tilde{\mathbf{z}} / \sqrt{\tilde{\mathbf{z}}^H \tilde{\mathbf{z}}}

    The norm is taken over each example's k symbols (the last axis), never over the batch, so
    every row satisfies :math:`\frac1k\|\mathbf z\|^2 = \bar P` exactly.

    Accepts a TensorFlow or a PyTorch tensor (the DeepJSCC encoder normalises in torch so that
    its gradient is native) and returns the same kind. TensorFlow is imported only for a
    TensorFlow tensor, so the sionna-torch backend shares this function without loading it.

    Parameters
    ----------
    z : [..., k], complex
        Unnormalised channel symbols.
    power : float
        Average power per complex symbol :math:`\bar P` (> 0).

    Returns
    -------
    [..., k], same dtype as ``z``.
    """
    if not power > 0:
        raise ValueError(f"power must be > 0, got {power}")
    import torch

    if isinstance(z, torch.Tensor):
        k = z.shape[-1]
        energy = (z.abs() ** 2).sum(dim=-1, keepdim=True)
        return z * torch.sqrt(k * power / energy)
    tf = sys.modules.get("tensorflow")  # a TensorFlow tensor cannot exist before this import
    if tf is not None and isinstance(z, (tf.Tensor, tf.Variable)):
        k = tf.cast(tf.shape(z)[-1], z.dtype.real_dtype)
        energy = tf.reduce_sum(tf.abs(z) ** 2, axis=-1, keepdims=True)
        scale = tf.sqrt(k * power / energy)
        return z * tf.cast(scale, z.dtype)
    raise TypeError(f"normalize_power takes a tf.Tensor or torch.Tensor, got {type(z).__name__}")


def num_channel_symbols(rho, image_shape) -> int:
    r"""Number of complex channel uses k = rho * m for an image of m = C*H*W real values.

    ``rho`` may be a float, a :class:`fractions.Fraction` or a string such as ``"1/192"``.
    Raises ``ValueError`` when rho*m is not a positive integer, naming the nearest valid rhos.
    """
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) <= 0:
        raise ValueError(f"image_shape must be (C, H, W) with positive sizes, got {image_shape}")
    m = shape[0] * shape[1] * shape[2]
    try:
        r = Fraction(rho).limit_denominator(10**9) if not isinstance(rho, str) else Fraction(rho)
    except (ValueError, ZeroDivisionError) as e:
        raise ValueError(f"rho must be a number such as 0.0052 or '1/192', got {rho!r}") from e
    k = r * m
    if r <= 0 or k.denominator != 1:
        lo, hi = max(1, int(k)), int(k) + 1
        raise ValueError(
            f"rho={rho} gives k = rho*m = {float(k):g} channel symbols for m = {m} "
            f"(image {shape}); k must be a positive integer: try rho = {lo}/{m} or {hi}/{m}")
    return int(k)
