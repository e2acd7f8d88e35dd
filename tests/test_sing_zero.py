"""SING-Zero: operators, the sub-sampled posterior schedule, and the sampler's guarantees."""
import math

import pytest
import torch

from singlink.errors import UsageError
from singlink.receiver import (PosteriorSchedule, SINGZero, linear_alphas_cumprod, make_method, make_operator,
                               spaced_timesteps)

OPERATORS = ["identity", "gray", "pool2", "pool4", "pool8", "gray+pool4", "pool2+pool2"]


@pytest.mark.parametrize("spec", OPERATORS)
def test_pseudo_inverse_and_projection_are_exact(spec):
    A = make_operator(spec)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 3, 32, 32, generator=g, dtype=torch.float64)
    x_obs = torch.randn(3, 3, 32, 32, generator=g, dtype=torch.float64)
    y = A(x_obs)
    torch.testing.assert_close(A(A.pinv(A(x))), A(x), rtol=0, atol=1e-12)          # A A+ A = A
    torch.testing.assert_close(A.pinv(A(A.pinv(y))), A.pinv(y), rtol=0, atol=1e-12)  # A+ A A+ = A+
    # A+ A is an orthogonal projector: symmetric, so <A+A u, v> = <u, A+A v>
    u, v = torch.randn(2, 1, 3, 32, 32, generator=g, dtype=torch.float64)
    assert abs((A.pinv(A(u)) * v).sum() - (u * A.pinv(A(v))).sum()) < 1e-9
    torch.testing.assert_close(A(A.project(x, y)), y, rtol=0, atol=1e-12)            # consistency


def test_pool_is_block_mean_and_pinv_replicates():
    A = make_operator("pool2")
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    torch.testing.assert_close(A(x), torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))
    assert torch.equal(A.pinv(A(x))[0, 0, :2, :2], torch.full((2, 2), 2.5))


def direct_coefficients(abar_all, taus_desc):
    """Reference written from the DDPM posterior, one step at a time in plain Python."""
    out = []
    for i, t in enumerate(taus_desc):
        a_t = float(abar_all[t])
        a_prev = float(abar_all[taus_desc[i + 1]]) if i + 1 < len(taus_desc) else 1.0
        beta = 1 - a_t / a_prev
        out.append((math.sqrt(a_prev) * beta / (1 - a_t), math.sqrt(1 - beta) * (1 - a_prev) / (1 - a_t),
                    math.sqrt((1 - a_prev) / (1 - a_t) * beta)))
    return out


@pytest.mark.parametrize("steps", [1000, 250, 100, 50, 7])
def test_schedule_coefficients_match_direct_computation(steps):
    abar = linear_alphas_cumprod()
    s = PosteriorSchedule.from_alphas_cumprod(abar, steps)
    taus = spaced_timesteps(1000, steps).flip(0).tolist()
    assert s.t.tolist() == taus and taus[0] == 999 and taus[-1] == 0 and len(set(taus)) == steps
    ref = torch.tensor(direct_coefficients(abar, taus), dtype=torch.float64)
    torch.testing.assert_close(torch.stack([s.coef_x0, s.coef_xt, s.sigma], 1), ref, rtol=1e-12, atol=1e-15)
    if steps == 1000:  # the full chain is DDPM's: beta' = beta_t
        betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64).flip(0)
        torch.testing.assert_close(1 - s.abar / s.abar_prev, betas, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("steps", [100, 20])
def test_schedule_matches_diffusers_ddpm_posterior(steps):
    """diffusers' DDPMScheduler, given x0 directly (prediction_type='sample'), on our timesteps."""
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", prediction_type="sample",
                          clip_sample=False, variance_type="fixed_small")
    s = PosteriorSchedule.from_alphas_cumprod(linear_alphas_cumprod(), steps)
    sched.set_timesteps(timesteps=s.t.tolist())
    # diffusers stores alpha-bar in float32, where 1 - alpha-bar cancels near t = 0; hand it the
    # same float64 alpha-bar so that its posterior formulas, not its precision, are compared
    sched.alphas_cumprod = linear_alphas_cumprod()
    sched.one = torch.tensor(1.0, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    x_t, x0 = torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64)
    for i, t in enumerate(s.t.tolist()):
        gen = torch.Generator().manual_seed(i)
        out = sched.step(x0, t, x_t, generator=gen).prev_sample
        z = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
        ours = s.coef_xt[i] * x_t + s.coef_x0[i] * x0 + (s.sigma[i] * z if t > 0 else 0)
        torch.testing.assert_close(out, ours, rtol=1e-10, atol=1e-12)


class OraclePrior(torch.nn.Module):
    """Predicts exactly the noise that separates x_t from a known x0 (so x_{0,t} = x0)."""

    def __init__(self, x0_01):
        super().__init__()
        self.x0 = x0_01 * 2 - 1
        self.alphas_cumprod = linear_alphas_cumprod()
        self.dtype = torch.float32

    def eps(self, x_t, t):
        a = float(self.alphas_cumprod[t])
        return (x_t - a**0.5 * self.x0) / (1 - a) ** 0.5

    def check_images(self, x):
        if x.shape[1:] != self.x0.shape[1:]:
            raise UsageError("size mismatch")

    def to_model_range(self, x):
        return 2 * x - 1

    def to_image_range(self, x):
        return ((x + 1) / 2).clamp(0, 1)


@pytest.mark.parametrize("spec", ["pool4", "gray+pool2", "identity"])
def test_oracle_denoiser_returns_the_true_image(spec):
    x0 = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    A = make_operator(spec)
    # an observation that agrees with x0 in A's range but not in its null space
    null = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 0.1
    x_jscc = x0 + null - A.pinv(A(null))
    out = SINGZero(OraclePrior(x0), spec, steps=50)(x_jscc, seed=3)
    torch.testing.assert_close(out, x0, rtol=0, atol=2e-6)


class NoisyPrior(OraclePrior):
    """A prior whose prediction depends on x_t, so the sampler's noise matters."""

    def eps(self, x_t, t):
        return 0.5 * super().eps(x_t, t) + 0.1 * torch.tanh(x_t)


def test_seeded_per_image_and_batch_independent():
    x0 = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    sampler = SINGZero(NoisyPrior(x0), "pool4", steps=20)
    a = sampler(x0, seed=[5, 6, 7])
    assert torch.equal(a, sampler(x0, seed=[5, 6, 7]))
    single = SINGZero(NoisyPrior(x0[1:2]), "pool4", steps=20)(x0[1:2], seed=[6])
    assert torch.equal(a[1:2], single)
    assert not torch.equal(a, sampler(x0, seed=[8, 6, 7]))


def test_bad_inputs():
    with pytest.raises(UsageError, match="unknown restoration method 'sing-one'"):
        make_method("sing-one")
    with pytest.raises(UsageError, match="unknown operator"):
        make_operator("blur3")
    with pytest.raises(UsageError, match="divisible by 3"):
        make_operator("pool3")(torch.zeros(1, 3, 32, 32))
    x0 = torch.rand(1, 3, 32, 32)
    with pytest.raises(UsageError, match="size mismatch"):
        SINGZero(OraclePrior(x0), "pool4", steps=5)(torch.rand(1, 3, 64, 64))
    with pytest.raises(UsageError, match="one seed per image"):
        SINGZero(OraclePrior(x0), "pool4", steps=5)(x0, seed=[1, 2])
    with pytest.raises(ValueError, match="steps"):
        spaced_timesteps(1000, 0)
