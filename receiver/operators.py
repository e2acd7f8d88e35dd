r"""Linear degradation operators A with exact pseudo-inverses for SING-Zero's range-null-space
projection (SING Section IV-B; DDNM):

.. math:: \hat x_{0,t} = x_{0,t} - A^\dagger (A x_{0,t} - y)

Every operator here satisfies :math:`A A^\top = c I` (it averages disjoint groups of pixels), so
:math:`A^\dagger = c^{-1} A^\top` (replication) and the Moore-Penrose conditions hold exactly, for
each operator and for their compositions (products of such operators keep the property).
``gain`` is :math:`\sqrt c`, A's one singular value: an error of standard deviation
:math:`\sigma_y` per value of A x is :math:`\sigma_y / \sqrt c` in A's spectral coordinates
(DDNM+'s noise-aware projection, :mod:`.sing_zero`).
They act on (N, C, H, W) tensors and are affine-consistent: A maps constant images to constant
images, so the [0, 1] <-> [-1, 1] conversion commutes with A.
"""
import math

from torch.nn import functional as F

from ..errors import UsageError


class LinearOperator:
    """``A(x)`` and ``pinv(y)``; ``name`` is the string that builds it (:func:`make_operator`)."""

    name = "operator"
    gain = 1.0

    def __call__(self, x):
        raise NotImplementedError

    def pinv(self, y):
        raise NotImplementedError

    def project(self, x0, y):
        """Range-null-space projection: keep A's range from ``y``, the null space from ``x0``."""
        return x0 - self.pinv(self(x0) - y)

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"


class Identity(LinearOperator):
    """A = I: the projection returns the observation itself (no restoration)."""

    name = "identity"

    def __call__(self, x):
        return x

    def pinv(self, y):
        return y


class AvgPoolDownsample(LinearOperator):
    r"""Average pooling by s: :math:`(Ax)_{ij} = s^{-2}\sum_{(u,v)\in\mathrm{block}(i,j)} x_{uv}`;
    :math:`A^\dagger` replicates each value over its s x s block."""

    def __init__(self, scale: int):
        if scale < 1:
            raise UsageError(f"pooling scale must be >= 1, got {scale}")
        self.scale, self.name = int(scale), f"pool{scale}"
        self.gain = 1.0 / self.scale

    def __call__(self, x):
        h, w = x.shape[-2:]
        if h % self.scale or w % self.scale:
            raise UsageError(f"{self.name} needs image sides divisible by {self.scale}, got {h}x{w}")
        return F.avg_pool2d(x, self.scale)

    def pinv(self, y):
        return y.repeat_interleave(self.scale, -2).repeat_interleave(self.scale, -1)


class Decolorize(LinearOperator):
    r"""Colour to grey by the channel mean, :math:`A x = \frac13 (R + G + B)`; :math:`A^\dagger`
    copies the grey value into every channel."""

    name = "gray"
    gain = 3 ** -0.5

    def __call__(self, x):
        return x.mean(dim=1, keepdim=True)

    def pinv(self, y):
        return y.expand(-1, 3, -1, -1)


class Compose(LinearOperator):
    r""":math:`A = A_n \cdots A_1` applied left to right as listed; :math:`A^\dagger = A_1^\dagger \cdots A_n^\dagger`."""

    def __init__(self, *ops: LinearOperator):
        self.ops = ops
        self.name = "+".join(op.name for op in ops)
        self.gain = math.prod(op.gain for op in ops)

    def __call__(self, x):
        for op in self.ops:
            x = op(x)
        return x

    def pinv(self, y):
        for op in reversed(self.ops):
            y = op.pinv(y)
        return y


def check_operators(specs, image_size, option: str = "--operators") -> None:
    """Build each operator of ``specs`` and apply it to an image of ``image_size`` (C, H, W), so one
    that does not exist or does not fit is refused with one line naming ``option``."""
    import torch

    for spec in specs:
        try:
            with torch.no_grad():
                make_operator(spec)(torch.zeros(1, *image_size))
        except UsageError as e:
            raise UsageError(f"{option} {spec}: {e}") from None


def make_operator(spec: str) -> LinearOperator:
    """Operator from a string: ``identity``, ``gray``, ``poolS`` (S an integer), or a composition
    joined by ``+`` such as ``gray+pool4``."""
    parts = [p.strip() for p in str(spec).split("+") if p.strip()]
    ops = []
    for p in parts:
        if p == "identity":
            ops.append(Identity())
        elif p == "gray":
            ops.append(Decolorize())
        elif p.startswith("pool") and p[4:].isdigit():
            ops.append(AvgPoolDownsample(int(p[4:])))
        else:
            raise UsageError(f"unknown operator {p!r} in {spec!r}; use identity, gray, poolS (e.g. pool4) or a '+' composition")
    if not ops:
        raise UsageError("empty operator specification; use e.g. pool4")
    return ops[0] if len(ops) == 1 else Compose(*ops)
