r"""SING-Zero (SING paper, Algorithm 1): DDNM range-null-space guidance of a DDPM prior with a
linear approximation A of the DeepJSCC + channel degradation.

For each visited step t (from noise to clean, :class:`~.schedule.PosteriorSchedule`):

1. :math:`x_{0,t} = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta(x_t, t)) / \sqrt{\bar\alpha_t}`
2. :math:`\hat x_{0,t} = x_{0,t} - A^\dagger (A x_{0,t} - A \hat x_\mathrm{JSCC})`
3. :math:`x_{t-1} = c^{x_t}_t x_t + c^{x_0}_t \hat x_{0,t} + \sigma_t z`, :math:`z \sim \mathcal N(0, I)`

The observation is :math:`A\hat x_\mathrm{JSCC}`: the part of the decoded image that A keeps (its
coarse content for average pooling) is trusted and the prior fills in A's null space.
An optional guidance hook subtracts a correction from :math:`x_{t-1}` after step 3 (SING-INN,
Algorithm 2, line 9); without it this is Algorithm 1.

**Projection** (``projection=``):

- ``"hard"``: step 2 as written, the observation trusted exactly at every step (Algorithm 1).
- ``"noise-aware"`` (DDNM+, Wang et al. ICLR 2023, Section 3.3, Eqs. 17-19): the observation
  :math:`y = A\hat x_\mathrm{JSCC}` is :math:`A x` plus an error of standard deviation
  :math:`\sigma_y` per value of :math:`A x` (calibrated per SNR on validation pairs,
  :mod:`.noise`). In A's spectral coordinates (A A^T = c I, singular value :math:`s = \sqrt c`) the
  error is :math:`\sigma_y / s`, and the step is

  .. math::
      \hat x_{0,t} = x_{0,t} - \lambda_t A^\dagger (A x_{0,t} - y), \qquad
      x_{t-1} = c^{x_t}_t x_t + c^{x_0}_t \hat x_{0,t} + \sqrt{\gamma_t}\, P z + \sigma_t (I - P) z,

  with :math:`P = A^\dagger A`, :math:`a_t = c^{x_0}_t` and :math:`\sigma_y' = \sigma_y / s`:
  :math:`\lambda_t = 1,\ \gamma_t = \sigma_t^2 - (a_t \sigma_y')^2` when
  :math:`\sigma_t \ge a_t \sigma_y'`, else :math:`\lambda_t = \sigma_t / (a_t \sigma_y'),\ \gamma_t = 0`.
  The observation's error then takes the place of part of the sampling noise, never more than
  all of it; late steps (small :math:`\sigma_t`) correct less, and the last (:math:`\sigma = 0`)
  not at all (unless sigma_y = 0). With :math:`\sigma_y = 0` this is ``"hard"`` (up to rounding in the noise).
- ``"none"``: no projection, :math:`\hat x_{0,t} = x_{0,t}` (an unconditional DDPM step that a
  guidance hook steers: CommIN's sampler, and DPS).

**Time travel** (DDNM, Section 3.4; RePaint's resampling): with ``travel_length`` L > 0 and
``travel_repeats`` r, after every L-th visited step the chain is re-noised from
:math:`\bar\alpha_{\tau_i}` back to :math:`\bar\alpha_{\tau_{i-L}}`,
:math:`x \leftarrow \sqrt{\bar\alpha_{\tau_{i-L}}/\bar\alpha_{\tau_i}}\, x + \sqrt{1 - \bar\alpha_{\tau_{i-L}}/\bar\alpha_{\tau_i}}\, z`
(exact under q), and the L steps are redone, r times per jump, so that what the projection put into
the image is harmonised by the prior again. It costs (1 + r) times the steps in the travelled part.

Noise is drawn per image from that image's own seeded generator, so a restored image does not
depend on which other images share its batch.
"""
import torch

from ..errors import UsageError
from ..provenance import derive_seed
from .operators import LinearOperator, make_operator
from .schedule import PosteriorSchedule


def image_generators(seeds, n: int, device="cpu") -> list[torch.Generator]:
    """One generator per image: ``seeds`` is an int (image i gets derive_seed(seed, i)) or n ints."""
    if isinstance(seeds, int):
        seeds = [derive_seed(seeds, "image", i) for i in range(n)]
    seeds = list(seeds)
    if len(seeds) != n:
        raise UsageError(f"need one seed per image: got {len(seeds)} seeds for {n} images")
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


def _randn(gens, shape, device, dtype):
    return torch.stack([torch.randn(shape, generator=g, device=device, dtype=dtype) for g in gens])


#: the projections of step 2 (module docstring)
PROJECTIONS = ("hard", "noise-aware", "none")


def travel_plan(steps: int, length: int = 0, repeats: int = 0, first: int = 0) -> list[tuple[str, int]]:
    """The sampler's moves over a chain of ``steps`` visited timesteps, from index ``first``:
    ``("step", i)`` denoises from index i to i + 1, ``("back", i)`` re-noises from index i to
    i - ``length`` (time travel: after every ``length``-th step, ``repeats`` times, never after the
    last step nor back before ``first``)."""
    moves, i, done = [], first, {}
    while i < steps:
        moves.append(("step", i))
        i += 1
        if length and i < steps and i % length == 0 and i - length >= first and done.get(i, 0) < repeats:
            done[i] = done.get(i, 0) + 1
            moves.append(("back", i))
            i -= length
    return moves


def check_travel(steps: int, length, repeats) -> tuple[int, int]:
    """``(length, repeats)`` as ints, or one UsageError line when they do not fit ``steps``."""
    try:
        length, repeats = int(length), int(repeats)
    except (TypeError, ValueError):
        raise UsageError(f"time travel needs whole numbers: travel_length {length!r}, travel_repeats {repeats!r}") from None
    if length < 0 or repeats < 0:
        raise UsageError(f"travel_length and travel_repeats must be >= 0, got {length} and {repeats}")
    if repeats and not 1 <= length < steps:
        raise UsageError(f"travel_length must lie in [1, {steps - 1}] (fewer than the {steps} steps) when "
                         f"travel_repeats > 0, got {length}")
    return (length, repeats) if repeats else (0, 0)


class SINGZero:
    r"""SING-Zero restoration with a diffusion prior.

    Parameters
    ----------
    prior : singlink.receiver.prior.DiffusionPrior (anything with ``eps``, ``alphas_cumprod``,
        ``to_model_range``, ``to_image_range``, ``check_images`` and optionally ``dtype``)
    operator : LinearOperator or spec string (``pool4``, ``gray+pool2``, ...)
    steps : number of visited timesteps (e.g. 50, 100, 250 of 1000)
    clip_x0 : clamp :math:`x_{0,t}` to [-1, 1] before the projection (the prior's data range)
    projection : ``"hard"`` (Algorithm 1), ``"noise-aware"`` (DDNM+; needs ``sigma_y`` per call) or
        ``"none"`` (see the module docstring)
    travel_length, travel_repeats : time travel (0, 0: none)
    start : the fraction of the chain run (1: from pure noise, Algorithm 1). Below 1 the chain starts
        at visited index i0 = round((1 - start) S) from x_JSCC noised exactly under q,
        :math:`\sqrt{\bar\alpha_{\tau_{i_0}}}\,\bar x_\mathrm{JSCC} + \sqrt{1-\bar\alpha_{\tau_{i_0}}}\,z`
        (SDEdit; CCDF's "come closer, diffuse faster"): the sample keeps x_JSCC's coarse content
        without a projection, and costs ``start`` times the steps
    """

    def __init__(self, prior, operator="pool4", steps: int = 100, clip_x0: bool = True, projection: str = "hard",
                 travel_length: int = 0, travel_repeats: int = 0, start: float = 1.0):
        if projection not in PROJECTIONS:
            raise UsageError(f"projection must be one of {', '.join(PROJECTIONS)}, got {projection!r}")
        self.prior = prior
        self.operator = operator if isinstance(operator, LinearOperator) else make_operator(operator)
        self.steps = int(steps)
        self.clip_x0 = clip_x0
        self.projection = projection
        self.travel_length, self.travel_repeats = check_travel(self.steps, travel_length, travel_repeats)
        self.schedule = PosteriorSchedule.from_alphas_cumprod(prior.alphas_cumprod, self.steps)
        try:
            start = float(start)
        except (TypeError, ValueError):
            start = float("nan")
        if not 0 < start <= 1:
            raise UsageError(f"start must be a fraction of the chain in (0, 1] (1: from pure noise), got {start}")
        self.start = start
        self.first = min(int(round((1 - start) * self.steps)), self.steps - 1)

    def __call__(self, x_jscc, snr_db=None, seed: int | list = 0, guidance=None, progress: bool = False,
                 sigma_y=None):
        r"""Restore decoded images ``x_jscc`` (N, C, H, W) in [0, 1]; returns (N, C, H, W) in [0, 1].

        ``guidance(x_t, x0_hat, t, snr_db) -> g`` (optional) returns the correction subtracted
        from :math:`x_{t-1}`; it receives ``x_t`` with ``requires_grad`` set. ``sigma_y`` (N,) is
        the observation's error per value of A x in the prior's range [-1, 1] (``"noise-aware"``).
        """
        prior = self.prior
        prior.check_images(x_jscc)
        n, device = x_jscc.shape[0], x_jscc.device
        dtype = getattr(prior, "dtype", torch.float32)
        y = self.operator(prior.to_model_range(x_jscc).to(dtype))
        sigma_spec = self._spectral_sigma_y(sigma_y, n, device, dtype)
        gens = image_generators(seed, n, device)
        shape = tuple(x_jscc.shape[1:])
        x = _randn(gens, shape, device, dtype)
        s = self.schedule
        if self.first:
            abar0 = float(s.abar[self.first])
            x = abar0**0.5 * prior.to_model_range(x_jscc).to(dtype) + (1 - abar0) ** 0.5 * x
        moves = travel_plan(len(s), self.travel_length, self.travel_repeats, self.first)
        if progress:
            from tqdm import tqdm

            moves = tqdm(moves, desc="sing", unit="step", leave=False)
        for move, i in moves:
            if move == "back":
                keep = float(s.abar[i - self.travel_length] / s.abar[i])
                x = keep**0.5 * x + (1 - keep) ** 0.5 * _randn(gens, shape, device, dtype)
                continue
            t = int(s.t[i])
            abar = float(s.abar[i])
            with torch.set_grad_enabled(guidance is not None):
                if guidance is not None:
                    x = x.detach().requires_grad_(True)
                eps = prior.eps(x, t)
                x0 = (x - (1 - abar) ** 0.5 * eps) / abar**0.5
                if self.clip_x0:
                    x0 = x0.clamp(-1, 1)
                x_prev, x0_hat = self._step(i, x, x0, y, sigma_spec, gens, shape, device, dtype)
                if guidance is not None:
                    x_prev = x_prev - guidance(x, x0_hat, t, snr_db)
            x = x_prev.detach()
        return prior.to_image_range(x)

    def _spectral_sigma_y(self, sigma_y, n, device, dtype):
        if self.projection != "noise-aware":
            return None
        if sigma_y is None:
            raise UsageError("the noise-aware projection needs sigma_y, the observation's error per SNR "
                             "(calibrate it with `singlink calibrate-sigma-y --record`)")
        sigma = torch.as_tensor(sigma_y, dtype=dtype, device=device)
        sigma = sigma.expand(n) if sigma.ndim == 0 else sigma
        if sigma.shape != (n,) or not bool(torch.isfinite(sigma).all()) or bool((sigma < 0).any()):
            raise UsageError(f"sigma_y must be finite numbers >= 0, a scalar or one per image ({n},)")
        return (sigma / self.operator.gain).view(-1, 1, 1, 1)

    def _step(self, i, x, x0, y, sigma_spec, gens, shape, device, dtype):
        """Lines 2-3 at visited index i: ``(x_{t-1}, x0_hat)``, the next sample and the projected estimate."""
        s = self.schedule
        a, sigma = float(s.coef_x0[i]), float(s.sigma[i])
        if self.projection == "none":
            x0_hat = x0
        elif self.projection == "hard" or sigma_spec is None:
            x0_hat = self.operator.project(x0, y)
        else:
            # DDNM+ (Eq. 19): lambda_t = min(1, sigma_t / (a_t sigma_y')), gamma_t = sigma_t^2 - (a_t lambda_t sigma_y')^2
            # (an observation without error, sigma_y = 0, is trusted fully at every step, the last included)
            lam = torch.where(sigma_spec > 0, (sigma / (a * sigma_spec).clamp_min(1e-12)).clamp(max=1.0), 1.0)
            x0_hat = x0 - lam * self.operator.pinv(self.operator(x0) - y)
        x_prev = float(s.coef_xt[i]) * x + a * x0_hat
        if sigma > 0:
            z = _randn(gens, shape, device, dtype)
            if self.projection == "noise-aware":
                gamma = (sigma**2 - (a * lam * sigma_spec) ** 2).clamp_min(0)
                pz = self.operator.pinv(self.operator(z))
                x_prev = x_prev + gamma.sqrt() * pz + sigma * (z - pz)
            else:
                x_prev = x_prev + sigma * z
        return x_prev, x0_hat
