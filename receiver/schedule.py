r"""Sub-sampled DDPM chains and their posterior coefficients, derived from alpha-bar.

A prior trained with T steps defines :math:`\bar\alpha_t = \prod_{s\le t}(1-\beta_s)`. Sampling
visits an ascending subset :math:`\tau_1 < \dots < \tau_S` of :math:`\{0..T-1\}` in reverse.
Because :math:`q(x_{\tau_i} | x_0) = \mathcal N(\sqrt{\bar\alpha_{\tau_i}} x_0, (1-\bar\alpha_{\tau_i}) I)`
for every kept step, the sub-sampled chain is itself a DDPM whose step from
:math:`\tau_i` to :math:`\tau_{i-1}` has

.. math::
    \beta'_i = 1 - \bar\alpha_{\tau_i}/\bar\alpha_{\tau_{i-1}}, \qquad \alpha'_i = 1 - \beta'_i,

and the posterior :math:`q(x_{\tau_{i-1}} | x_{\tau_i}, x_0) = \mathcal N(c^{x_0}_i x_0 + c^{x_t}_i x_{\tau_i}, \sigma_i^2 I)`
(SING Algorithm 1, line 5; DDPM Eq. 7 with the primed betas):

.. math::
    c^{x_0}_i = \frac{\sqrt{\bar\alpha_{\tau_{i-1}}}\,\beta'_i}{1-\bar\alpha_{\tau_i}}, \quad
    c^{x_t}_i = \frac{\sqrt{\alpha'_i}\,(1-\bar\alpha_{\tau_{i-1}})}{1-\bar\alpha_{\tau_i}}, \quad
    \sigma_i^2 = \frac{1-\bar\alpha_{\tau_{i-1}}}{1-\bar\alpha_{\tau_i}}\,\beta'_i .

For the last step :math:`\bar\alpha_{\tau_0} := 1`, which gives :math:`c^{x_0}=1, c^{x_t}=0, \sigma=0`:
the sample is the final clean estimate. With S = T this is exactly DDPM's ancestral sampler.
(DDNM's public code writes the step in DDIM form with eta; its sigma_t and gamma_t do not reduce
to these values, which is why they are derived here and tested against alpha-bar directly.)
"""
from dataclasses import dataclass

import torch


def linear_alphas_cumprod(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """alpha-bar of DDPM's linear beta schedule, float64 (T,)."""
    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def spaced_timesteps(T: int, steps: int) -> torch.Tensor:
    """``steps`` timesteps evenly spaced over [0, T-1], ascending and always ending at T-1, so
    sampling starts from (almost) pure noise for any step count."""
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be in [1, {T}], got {steps}")
    return torch.linspace(0, T - 1, steps, dtype=torch.float64).round().long()


@dataclass
class PosteriorSchedule:
    """Per-step coefficients of a sub-sampled chain, in sampling order (from tau_S down to tau_1).

    Fields (each float64 (S,)): ``t`` (model timestep), ``abar`` (alpha-bar at t), ``abar_prev``
    (alpha-bar at the next visited step, 1 after the last), ``coef_x0``, ``coef_xt``, ``sigma``.
    """

    t: torch.Tensor
    abar: torch.Tensor
    abar_prev: torch.Tensor
    coef_x0: torch.Tensor
    coef_xt: torch.Tensor
    sigma: torch.Tensor

    @classmethod
    def from_alphas_cumprod(cls, alphas_cumprod: torch.Tensor, steps: int) -> "PosteriorSchedule":
        abar_all = alphas_cumprod.to(torch.float64)
        taus = spaced_timesteps(len(abar_all), steps)
        abar = abar_all[taus]
        abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        beta = 1.0 - abar / abar_prev
        coef_x0 = abar_prev.sqrt() * beta / (1.0 - abar)
        coef_xt = (1.0 - beta).sqrt() * (1.0 - abar_prev) / (1.0 - abar)
        sigma = ((1.0 - abar_prev) / (1.0 - abar) * beta).clamp_min(0).sqrt()
        flip = lambda v: v.flip(0)  # noqa: E731  sampling order: high noise first
        return cls(flip(taus), flip(abar), flip(abar_prev), flip(coef_x0), flip(coef_xt), flip(sigma))

    def __len__(self):
        return len(self.t)
