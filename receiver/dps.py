r"""Diffusion posterior sampling (DPS; Chung et al., ICLR 2023, Algorithm 1) on the received symbols.

The receiver knows the channel output :math:`\hat z = h \odot f(x, \mathrm{SNR}_\mathrm{tx}) + n`,
:math:`n \sim \mathcal{CN}(0, \sigma^2)` per symbol, and the transmitter's encoder f, differentiable
(its per-image power normalisation, Eq. 6, included). So the likelihood is exact and needs neither a
guessed operator A (SING-Zero) nor an INN (SING-INN). At each visited step t of the prior's chain
(:class:`~.sing_zero.SINGZero` with ``projection="none"``):

1. :math:`\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta(x_t, t)) / \sqrt{\bar\alpha_t}`, clamped to [-1, 1]
2. :math:`x'_{t-1} = c^{x_t}_t x_t + c^{x_0}_t \hat x_0 + \sigma_t z` (the unconditional DDPM step)
3. :math:`r = (\hat z - h \odot f(\tfrac{\hat x_0 + 1}{2}, \mathrm{SNR}_\mathrm{tx})) / \sigma`, the whitened residual (k complex values per image)
4. :math:`x_{t-1} = x'_{t-1} - \zeta\, \nabla_{x_t} \|r\|_2`

From pure noise the sample is a draw from the posterior, whose MSE is at best twice the posterior
mean's (Blau and Michaeli 2018): at low SNR, where the posterior is wide, that costs PSNR that no
step size wins back. ``start`` < 1 starts from x_JSCC noised part-way instead (SDEdit / CCDF), which
keeps the decoder's estimate as the sample's mean and lets the likelihood and the prior refine it.

Step 4 is DPS's: its Algorithm 1 subtracts :math:`\zeta_i \nabla \|y - A(\hat x_0)\|^2` with
:math:`\zeta_i = \zeta' / \|y - A(\hat x_0)\|`, i.e. a step along the gradient of the residual
norm, not of its square, which keeps the step from growing with the residual early in sampling.
Here the residual is whitened, :math:`\|r\|^2 = \|\hat z - h f\|^2 / \sigma^2`, the negative
log-likelihood up to a constant, so symbols with more noise (an OFDM resource element in a fade,
through ``noise_var`` per symbol) weigh less; at the true image :math:`\|r\|^2 \approx k`. Each
image's norm is its own, so a batch does not couple images. After an OFDM equaliser the symbols are
equalised (h = 1) and :math:`\sigma^2` is the per-RE effective noise.

The encoder sees the SNR the transmitter told it (``tx_snr_db``), not the receiver's effective SNR.
Cost per step: one prior forward and its backward to :math:`x_t`, and the encoder's forward and
backward, which at these sizes is small beside the UNet (``benchmarks/sampler.py``: ``dps_overhead``).
"""
from __future__ import annotations

import torch

from ..errors import UsageError
from .observation import Observation
from .sing_inn import check_zeta, frozen
from .sing_zero import SINGZero


class DPS:
    """Posterior sampling on the received symbols.

    Parameters
    ----------
    prior : the diffusion prior (as for :class:`~.sing_zero.SINGZero`)
    codec : the DeepJSCC whose encoder is f
    steps : visited prior timesteps
    zeta : step size of line 4 (``zeta = 0``: unconditional samples of the prior)
    start : fraction of the chain run (:class:`~.sing_zero.SINGZero`): below 1 the chain starts from
        x_JSCC noised to that step instead of pure noise
    """

    def __init__(self, prior, codec, steps: int = 100, zeta: float = 1.0, start: float = 1.0):
        self.codec = codec
        self.zeta = check_zeta(zeta)
        self.sampler = SINGZero(prior, operator="identity", steps=steps, projection="none", start=start)

    def residual(self, obs: Observation, x0_hat: torch.Tensor) -> torch.Tensor:
        """Line 3: the whitened residual r (N, k) complex of estimates ``x0_hat`` (N, C, H, W) in the
        prior's range [-1, 1] against the observation's received symbols."""
        obs.require_symbols("dps")
        p = next(self.codec.parameters())
        tx_snr = obs.tx_snr_db if obs.tx_snr_db is not None else obs.snr_db
        z = self.codec.encode(((x0_hat + 1) / 2).clamp(0, 1).to(device=p.device, dtype=p.dtype),
                              tx_snr.to(device=p.device, dtype=torch.float32))
        if obs.h is not None:
            z = obs.h.to(device=p.device, dtype=torch.complex64) * z
        sigma = obs.noise_var.to(device=p.device, dtype=torch.float32).sqrt()
        return (obs.symbols.to(device=p.device, dtype=torch.complex64) - z) / sigma

    def make_guidance(self, obs: Observation):
        """The sampler's hook: ``zeta * grad_{x_t} ||r||`` per image (line 4)."""
        zeta = self.zeta

        def guidance(x_t, x0_hat, t, _snr):
            r = self.residual(obs, x0_hat)
            norm = torch.sqrt((r.abs() ** 2).sum(1).clamp_min(1e-24))  # a zero residual: a zero step
            (grad,) = torch.autograd.grad(norm.sum(), x_t)
            return zeta * grad.to(x_t.dtype)

        return guidance

    def __call__(self, obs: Observation, seed: int | list = 0, progress: bool = False) -> torch.Tensor:
        """Restore the batch of ``obs``; returns (N, C, H, W) in [0, 1]."""
        obs.require_symbols("dps")
        if obs.codec is not None and obs.codec is not self.codec and obs.codec.fingerprint != self.codec.fingerprint:
            raise UsageError("dps: the observation comes from another DeepJSCC than the one DPS models")
        self.sampler.prior.check_images(obs.x_jscc)
        if self.zeta == 0:
            return self.sampler(obs.x_jscc, obs.snr_db, seed=seed, progress=progress)
        guidance = self.make_guidance(obs)
        was_training = self.codec.training
        self.codec.eval()
        try:
            with frozen(self.sampler.prior, self.codec):
                return self.sampler(obs.x_jscc, obs.snr_db, seed=seed, guidance=guidance, progress=progress)
        finally:
            self.codec.train(was_training)
