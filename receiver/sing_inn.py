r"""SING-INN (SING paper, Algorithm 2): SING-Zero's DDNM step followed by INN guidance.

At each visited step t, after SING-Zero's lines 3-5 (:class:`~.sing_zero.SINGZero`) have given
:math:`\hat x_{0,t}` and :math:`\hat x_{t-1}`:

6. :math:`c_t, d_t = INN(\hat x_{0,t}, \mathrm{SNR})`
7. :math:`\tilde x_{0,t} = INN^{-1}(\mathrm{coarse}(\hat x_\mathrm{JSCC}), d_t, \mathrm{SNR})`
8. :math:`x_{t-1} = \hat x_{t-1} - \zeta\,\nabla_{x_t} \|\tilde x_{0,t} - \hat x_{0,t}\|_2` (default,
   ``guidance="norm"``) or :math:`\ldots\,\|\tilde x_{0,t} - \hat x_{0,t}\|_2^2` (``guidance="squared"``)

Algorithm 2 writes the squared norm without saying how its code scales the step. The INN-guided
sampler SING builds on (INDIGO+) and DPS, which SING cites, subtract the gradient of the norm itself,
:math:`J^\top r / \|r\|`, so the step does not grow with the residual r; the squared form
multiplies it by :math:`2\|r\|`, which is large early in sampling and, with the paper's zeta of
0.3-0.5, drives :math:`\hat x_0` into a 2x2 Haar checkerboard (results/README.md, section 3). The
norm is each image's own: image i's step depends on its residual alone, never on the batch.

The coarse part is the Haar LL band that the INN was trained to match (:mod:`.inn`, Eq. 16), computed
once per call. The INN works on images in [0, 1] and the sampler in the prior's range [-1, 1]:
:math:`\hat x_{0,t}` enters the INN as :math:`(\hat x_{0,t}+1)/2` (not clamped) and
:math:`\tilde x_{0,t}` is mapped back by :math:`2x-1`, so the squared norm (a sum over pixels) is
taken in the prior's range. The gradient flows through the prior's noise prediction and the INN.

Cost: the guidance differentiates with respect to :math:`x_t` only. While a call runs, the prior's
and the INN's parameters are set not to require gradients (and restored afterwards), so autograd
records no weight-gradient paths; and the INN's forward stops once :math:`d_t` is known (its last
update of :math:`c`, which line 7 does not use, is skipped). Neither changes a value.

Step size :math:`\zeta`: the paper uses 0.3, 0.4, 0.5 for SNR in {-5, -3}, {-1, 1}, {3, 5} dB
(Section V-A). :func:`paper_zeta` keeps exactly those values on [-5, -3], [-1, 1] and [3, 5] dB,
is linear in the gaps between (so it passes through 0.3, 0.4, 0.5 at the group centres -4, 0,
4 dB) and is constant outside [-5, 5] dB; each image gets the value of its own SNR.
:math:`\zeta = 0` gives SING-Zero exactly (the guidance is not run at all).

SNR outside the INN's range: the INN is conditioned on the SNR clamped to the range it was trained
on (its config's ``snr_range``), the nearest condition it knows. Its conditioning MLP otherwise
extrapolates: under Rayleigh block fading a deep fade puts the effective SNR at -10..-20 dB, and
with the unclamped condition the guidance drove 21 of 128 test faces at -5 dB to LPIPS above 0.5
(most to about 1.1, PSNR 5-6 dB) while DeepJSCC and SING-Zero stayed at 0.15-0.3 on the same faces
(results/sing-celeba64-rayleigh/README.md). The step size and SING-Zero's part take the SNR as it is.
"""
import contextlib
import math
import warnings

import numpy as np
import torch

from ..errors import UsageError
from .inn import ConditionalINN, check_pair, haar_split
from .sing_zero import SINGZero

# (SNR dB, zeta) knots of the paper's step size: flat over each group of test SNRs, linear between
ZETA_KNOTS = ((-3.0, 0.3), (-1.0, 0.4), (1.0, 0.4), (3.0, 0.5))
GUIDANCE = ("norm", "squared")
RANGE_SLACK_DB = 2.0  # SNRs this far outside the INN's trained range draw a warning (they are clamped)


def paper_zeta(snr_db) -> torch.Tensor:
    """The paper's guidance step size for each SNR in ``snr_db`` (a tensor), float64 on the CPU."""
    snr = torch.as_tensor(snr_db, dtype=torch.float64).cpu()
    knots, values = zip(*ZETA_KNOTS)
    return torch.from_numpy(np.interp(snr.numpy(), knots, values))


def check_zeta(zeta, alternatives: str = "") -> float:
    """A guidance step size as a float, or one UsageError line when it is not a finite number >= 0."""
    try:
        value = float(zeta)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise UsageError(f"zeta must be a finite number >= 0{alternatives}, got {zeta!r}")
    return value


@contextlib.contextmanager
def frozen(*modules):
    """Within the block, the parameters of ``modules`` do not require gradients (restored after)."""
    params = [p for m in modules if isinstance(m, torch.nn.Module) for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def inn_details(inn: ConditionalINN, x: torch.Tensor, snr: torch.Tensor) -> torch.Tensor:
    """``inn(x, snr)[1]``, the detail part d, without the last lifting update of c that d does not
    depend on (the same operations in the same order, so the same values)."""
    snr = inn._snr(snr, x)
    c, d = haar_split(x)
    pairs = list(zip(inn.pnets, inn.unets))
    for i, (pnet, unet) in enumerate(pairs):
        d = d + pnet(c, snr)
        if i < len(pairs) - 1:
            c = c + unet(d, snr)
    return d


class SINGINN:
    """SING-INN restoration (Algorithm 2).

    Parameters
    ----------
    prior : the diffusion prior (as for :class:`~.sing_zero.SINGZero`)
    inn : :class:`~.inn.ConditionalINN`, or the name/folder of a trained one
    operator, steps : SING-Zero's linear operator A and number of visited timesteps
    zeta : guidance step size; None for :func:`paper_zeta` of each image's SNR
    guidance : "norm" (default: the gradient of each image's residual norm) or "squared" (of its
        square), the two readings of Algorithm 2, line 8
    jscc : the receiver's DeepJSCC; an INN recorded for another codec is refused (UsageError,
        :func:`~.inn.check_pair`)
    projection, travel_length, travel_repeats : SING-Zero's step 2 and time travel
        (:class:`~.sing_zero.SINGZero`); ``projection="none"`` is CommIN's sampler (Algorithm 1 of
        the CommIN paper: INN guidance after an unconditional DDPM step)
    """

    def __init__(self, prior, inn, operator="pool4", steps: int = 100, zeta: float | None = None, jscc=None,
                 guidance: str = "norm", projection: str = "hard", travel_length: int = 0, travel_repeats: int = 0):
        if guidance not in GUIDANCE:
            raise UsageError(f"guidance must be one of {', '.join(GUIDANCE)}, got {guidance!r}")
        self.guidance = guidance
        if not isinstance(inn, ConditionalINN):
            inn = ConditionalINN.from_pretrained(inn, device=getattr(prior, "device", "cpu"))
        if jscc is not None:
            check_pair(inn, jscc)
        if zeta is not None:
            zeta = check_zeta(zeta, " (or None for the paper's schedule)")
        self.inn = inn
        self.zeta = zeta
        self.sampler = SINGZero(prior, operator=operator, steps=steps, projection=projection,
                                travel_length=travel_length, travel_repeats=travel_repeats)
        self._warned = False

    def _check_snr(self, snr_db, n) -> torch.Tensor:
        """``snr_db`` as float64 (n,) on the CPU; warns (once) when it lies far outside the INN's range."""
        if snr_db is None:
            raise UsageError("SING-INN needs the channel SNR in dB (a scalar or one value per image)")
        snr = torch.as_tensor(snr_db).detach().to("cpu", torch.float64)
        snr = snr.expand(n) if snr.ndim == 0 else snr
        if snr.shape != (n,):
            raise UsageError(f"snr_db must be a scalar or shape ({n},), got {tuple(snr.shape)}")
        if self.inn.snr_range and not self._warned:
            lo, hi = self.inn.snr_range
            outside = snr[(snr < lo - RANGE_SLACK_DB) | (snr > hi + RANGE_SLACK_DB)]
            if len(outside):
                warnings.warn(f"SNR {float(outside[0]):g} dB lies more than {RANGE_SLACK_DB:g} dB outside the "
                              f"SNR range the INN was trained on ({lo:g}..{hi:g} dB); the INN is conditioned on "
                              f"the nearest end of that range", stacklevel=3)
                self._warned = True
        return snr

    def inn_snr(self, snr_db: torch.Tensor) -> torch.Tensor:
        """The SNRs (N,) the INN is conditioned on: ``snr_db`` clamped to the INN's trained range
        (unchanged when the INN records none)."""
        if not self.inn.snr_range:
            return snr_db
        lo, hi = self.inn.snr_range
        return snr_db.clamp(lo, hi)

    def make_guidance(self, x_jscc: torch.Tensor, snr_db: torch.Tensor):
        r"""The sampler's guidance hook for decoded images ``x_jscc`` (N, C, H, W) in [0, 1] at SNRs
        ``snr_db`` (N,) float64: ``guidance(x_t, x0_hat, t, snr) = zeta * grad_{x_t} ||x~_{0,t} - x^_{0,t}||``
        (lines 6-8; squared with ``guidance="squared"``), or None when zeta is 0 for every image. The
        per-image terms are summed over the batch: as the prior and the INN act on each image alone,
        image i's gradient is that of its own term, which is then scaled by its own zeta."""
        zeta = paper_zeta(snr_db) if self.zeta is None else torch.full(snr_db.shape, self.zeta, dtype=torch.float64)
        if not bool((zeta > 0).any()):
            return None
        p = next(self.inn.parameters())
        snr = self.inn_snr(snr_db).to(device=p.device, dtype=p.dtype)
        with torch.no_grad():
            c_jscc = self.inn.coarse(x_jscc.to(device=p.device, dtype=p.dtype))

        def guidance(x_t, x0_hat, t, _snr):
            d = inn_details(self.inn, (x0_hat.to(device=p.device, dtype=p.dtype) + 1) / 2, snr)
            x_tilde = (2 * self.inn.inverse(c_jscc, d, snr) - 1).to(device=x0_hat.device, dtype=x0_hat.dtype)
            sq = ((x_tilde - x0_hat) ** 2).flatten(1).sum(1)
            # the norm's gradient J^T r / ||r||; a zero residual (nothing to correct) gives a zero step
            term = sq if self.guidance == "squared" else torch.sqrt(sq.clamp_min(1e-24))
            (grad,) = torch.autograd.grad(term.sum(), x_t)
            return zeta.to(device=grad.device, dtype=grad.dtype).view(-1, 1, 1, 1) * grad

        return guidance

    def __call__(self, x_jscc, snr_db=None, seed: int | list = 0, progress: bool = False, sigma_y=None):
        """Restore decoded images ``x_jscc`` (N, C, H, W) in [0, 1]; returns (N, C, H, W) in [0, 1].
        ``sigma_y`` (N,): the observation's error, for ``projection="noise-aware"``."""
        self.sampler.prior.check_images(x_jscc)
        snr = self._check_snr(snr_db, x_jscc.shape[0])
        guidance = self.make_guidance(x_jscc, snr)
        with frozen(self.sampler.prior, self.inn):
            return self.sampler(x_jscc, snr, seed=seed, guidance=guidance, progress=progress, sigma_y=sigma_y)
