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


class SINGZero:
    """SING-Zero restoration with a diffusion prior.

    Parameters
    ----------
    prior : singlink.receiver.prior.DiffusionPrior (anything with ``eps``, ``alphas_cumprod``,
        ``to_model_range``, ``to_image_range``, ``check_images`` and optionally ``dtype``)
    operator : LinearOperator or spec string (``pool4``, ``gray+pool2``, ...)
    steps : number of visited timesteps (e.g. 50, 100, 250 of 1000)
    clip_x0 : clamp :math:`x_{0,t}` to [-1, 1] before the projection (the prior's data range)
    """

    def __init__(self, prior, operator="pool4", steps: int = 100, clip_x0: bool = True):
        self.prior = prior
        self.operator = operator if isinstance(operator, LinearOperator) else make_operator(operator)
        self.steps = int(steps)
        self.clip_x0 = clip_x0
        self.schedule = PosteriorSchedule.from_alphas_cumprod(prior.alphas_cumprod, self.steps)

    def __call__(self, x_jscc, snr_db=None, seed: int | list = 0, guidance=None, progress: bool = False):
        r"""Restore decoded images ``x_jscc`` (N, C, H, W) in [0, 1]; returns (N, C, H, W) in [0, 1].

        ``guidance(x_t, x0_hat, t, snr_db) -> g`` (optional) returns the correction subtracted
        from :math:`x_{t-1}`; it receives ``x_t`` with ``requires_grad`` set.
        """
        prior = self.prior
        prior.check_images(x_jscc)
        n, device = x_jscc.shape[0], x_jscc.device
        dtype = getattr(prior, "dtype", torch.float32)
        y = self.operator(prior.to_model_range(x_jscc).to(dtype))
        gens = image_generators(seed, n, device)
        shape = tuple(x_jscc.shape[1:])
        x = _randn(gens, shape, device, dtype)
        s = self.schedule
        steps = range(len(s))
        if progress:
            from tqdm import tqdm

            steps = tqdm(steps, desc="sing", unit="step", leave=False)
        for i in steps:
            t = int(s.t[i])
            abar = float(s.abar[i])
            with torch.set_grad_enabled(guidance is not None):
                if guidance is not None:
                    x = x.detach().requires_grad_(True)
                eps = prior.eps(x, t)
                x0 = (x - (1 - abar) ** 0.5 * eps) / abar**0.5
                if self.clip_x0:
                    x0 = x0.clamp(-1, 1)
                x0_hat = self.operator.project(x0, y)
                x_prev = float(s.coef_xt[i]) * x + float(s.coef_x0[i]) * x0_hat
                if float(s.sigma[i]) > 0:
                    x_prev = x_prev + float(s.sigma[i]) * _randn(gens, shape, device, dtype)
                if guidance is not None:
                    x_prev = x_prev - guidance(x, x0_hat, t, snr_db)
            x = x_prev.detach()
        return prior.to_image_range(x)
