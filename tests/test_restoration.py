"""The lineage's remedies beside SING: DDNM+'s noise-aware projection and time travel, CommIN's
INN-guided sampler, posterior sampling on the received symbols (DPS), and sigma_y's calibration."""
import json
import math

import pytest
import torch

from singlink import phy
from singlink.errors import UsageError
from singlink.jscc.model import DeepJSCC, DeepJSCCConfig
from singlink.receiver import Receiver, SINGZero, make_method, make_operator
from singlink.receiver.dps import DPS
from singlink.receiver.inn import ConditionalINN
from singlink.receiver.noise import calibrate, sigma_y
from singlink.receiver.observation import Observation
from singlink.receiver.sing_zero import check_travel, image_generators, travel_plan

from conftest import SHARED_DATA


def calibrated(jscc, table):
    """A copy of ``jscc`` whose record holds ``table`` ({operator: sigma_y at -5 and 5 dB})."""
    import copy

    out = copy.deepcopy(jscc)
    out.observation_noise = {"snr_db": [-5.0, 5.0], "sigma_y": table, "sha256": jscc.fingerprint}
    return out


# --- DDNM+ ---------------------------------------------------------------------------------------
def test_operator_gain_is_the_singular_value():
    """A A^T = gain^2 I for every operator, so an error sigma_y per value of A x is sigma_y / gain
    in A's spectral coordinates."""
    for spec, gain in (("pool2", 0.5), ("pool4", 0.25), ("gray", 3 ** -0.5), ("gray+pool2", 0.5 * 3 ** -0.5)):
        op = make_operator(spec)
        assert op.gain == pytest.approx(gain)
        y = torch.randn(1, 1 if "gray" in spec else 3, 32 // (2 if "2" in spec else 4), 32 // (2 if "2" in spec else 4))
        # A A^T y = A (c A^dagger y) = c y, with A^dagger = A^T / c
        torch.testing.assert_close(op(op.pinv(y)) * gain**2, y * gain**2)
        torch.testing.assert_close(op(op.pinv(y) * gain**2), gain**2 * y)


def test_noise_aware_projection_without_error_is_the_hard_one(tiny_prior):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    hard = SINGZero(tiny_prior, "pool4", steps=6)(x, seed=[1, 2])
    aware = SINGZero(tiny_prior, "pool4", steps=6, projection="noise-aware")(x, seed=[1, 2], sigma_y=torch.zeros(2))
    torch.testing.assert_close(aware, hard, rtol=0, atol=1e-5)
    assert not torch.equal(aware, SINGZero(tiny_prior, "pool4", steps=6, projection="noise-aware")(
        x, seed=[1, 2], sigma_y=torch.full((2,), 0.2)))


@pytest.mark.parametrize("sigma_y", [0.0, 0.02, 0.3, 5.0])
def test_noise_aware_step_follows_ddnm_plus(tiny_prior, sigma_y):
    """One step against Eq. 19 written out: lambda_t = min(1, sigma_t / (a_t sigma_y')) scales the
    correction, the range-space noise has variance gamma_t = sigma_t^2 - (a_t lambda_t sigma_y')^2
    and the null space keeps sigma_t, so the range space's total, correction error included, is
    sigma_t^2 (as in an unconditional step) whenever the correction fits in it."""
    s = SINGZero(tiny_prior, "pool4", steps=10, projection="noise-aware")
    op = s.operator
    i = 3
    a, sig = float(s.schedule.coef_x0[i]), float(s.schedule.sigma[i])
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    x0 = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    y = op(torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1)
    spec = torch.tensor([sigma_y / op.gain]).view(-1, 1, 1, 1)
    x_prev, x0_hat = s._step(i, x, x0, y, spec, image_generators([7], 1), (3, 32, 32), "cpu", torch.float32)
    lam = 1.0 if sigma_y == 0 else min(1.0, sig / (a * sigma_y / op.gain))
    gamma = max(sig**2 - (a * lam * sigma_y / op.gain) ** 2, 0.0)
    torch.testing.assert_close(x0_hat, x0 - lam * op.pinv(op(x0) - y))
    z = torch.randn(3, 32, 32, generator=image_generators([7], 1)[0]).unsqueeze(0)
    pz = op.pinv(op(z))
    expect = float(s.schedule.coef_xt[i]) * x + a * x0_hat + math.sqrt(gamma) * pz + sig * (z - pz)
    torch.testing.assert_close(x_prev, expect)
    if lam == 1.0:
        assert gamma + (a * sigma_y / op.gain) ** 2 == pytest.approx(sig**2)


def test_time_travel_plan_and_renoising():
    assert travel_plan(4) == [("step", 0), ("step", 1), ("step", 2), ("step", 3)]
    plan = travel_plan(6, length=2, repeats=1)
    # after steps 0-1 back to 0, after 2-3 back to 2; never after the last step
    assert plan == [("step", 0), ("step", 1), ("back", 2), ("step", 0), ("step", 1), ("step", 2), ("step", 3),
                    ("back", 4), ("step", 2), ("step", 3), ("step", 4), ("step", 5)]
    assert sum(m == "step" for m, _ in travel_plan(100, 5, 3)) == 100 + 3 * 5 * 19
    assert check_travel(10, 3, 0) == (0, 0)
    for length, repeats, match in ((0, 1, r"travel_length must lie in \[1, 9\]"), (10, 1, "travel_length"),
                                   (-1, 0, ">= 0"), ("x", 1, "whole numbers")):
        with pytest.raises(UsageError, match=match):
            check_travel(10, length, repeats)


def test_time_travel_renoises_exactly_under_q(tiny_prior):
    """The back move takes x ~ q(x_{tau_i} | x0) to q(x_{tau_{i-L}} | x0): mean and variance."""
    s = SINGZero(tiny_prior, "pool4", steps=10, travel_length=2, travel_repeats=1)
    ab = s.schedule.abar
    i, L = 6, 2
    x0 = 0.3
    x = ab[i].sqrt() * x0 + (1 - ab[i]).sqrt() * torch.randn(200_000, dtype=torch.float64,
                                                               generator=torch.Generator().manual_seed(0))
    keep = ab[i - L] / ab[i]
    back = keep.sqrt() * x + (1 - keep).sqrt() * torch.randn(200_000, dtype=torch.float64,
                                                             generator=torch.Generator().manual_seed(1))
    assert float(back.mean()) == pytest.approx(float(ab[i - L].sqrt() * x0), abs=5e-3)
    assert float(back.var()) == pytest.approx(float(1 - ab[i - L]), rel=1e-2)


def test_time_travel_runs_and_changes_the_sample(tiny_prior):
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    plain = SINGZero(tiny_prior, "pool4", steps=6)(x, seed=[1])
    travel = SINGZero(tiny_prior, "pool4", steps=6, travel_length=2, travel_repeats=2)(x, seed=[1])
    assert travel.shape == x.shape and not torch.equal(plain, travel)
    assert torch.equal(travel, SINGZero(tiny_prior, "pool4", steps=6, travel_length=2, travel_repeats=2)(x, seed=[1]))


def test_receiver_noise_aware_takes_sigma_y_from_the_codec(jscc, tiny_prior):
    codec = calibrated(jscc, {"pool4": [0.2, 0.1]})
    torch.testing.assert_close(sigma_y(codec, "pool4", torch.tensor([-5.0, 0.0, 5.0, 20.0])),
                               torch.tensor([0.2, 0.15, 0.1, 0.1], dtype=torch.float64))
    rx = Receiver(codec, "sing-zero", prior=tiny_prior, operator="pool4", steps=4, projection="noise-aware",
                  sigma_y_scale=0.5)
    x = torch.rand(2, 3, 32, 32)
    out = rx.restore(x, torch.tensor([-5.0, 5.0]), seed=[1, 2])
    direct = SINGZero(tiny_prior, "pool4", steps=4, projection="noise-aware")(
        x, seed=[1, 2], sigma_y=torch.tensor([0.1, 0.05], dtype=torch.float64))
    torch.testing.assert_close(out, direct)
    with pytest.raises(UsageError, match="no sigma_y calibrated for operator pool2 .*calibrate-sigma-y"):
        Receiver(codec, "sing-zero", prior=tiny_prior, operator="pool2", steps=4, projection="noise-aware")
    with pytest.raises(UsageError, match="calibrated for other weights"):
        torch.manual_seed(9)
        other = DeepJSCC(DeepJSCCConfig(k=64, channels=8)).eval()
        other.observation_noise = codec.observation_noise
        Receiver(other, "sing-zero", prior=tiny_prior, operator="pool4", steps=4, projection="noise-aware")
    for bad, match in ((-1, "sigma_y_scale"), (float("nan"), "sigma_y_scale"), ("x", "sigma_y_scale")):
        with pytest.raises(UsageError, match=match):
            Receiver(codec, "sing-zero", prior=tiny_prior, operator="pool4", steps=4, projection="noise-aware",
                     sigma_y_scale=bad)
    with pytest.raises(UsageError, match="projection must be one of hard, noise-aware, none"):
        Receiver(codec, "sing-zero", prior=tiny_prior, steps=4, projection="soft")


def test_sigma_y_calibration_is_the_rms_of_the_pooled_error(jscc):
    from singlink.receiver.train_inn import validation_pairs

    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    table = calibrate(jscc, x, ["pool4", "pool8"], [-5.0, 3.0], seed=2, batch=4)
    assert table["snr_db"] == [-5.0, 3.0]
    for j, snr in enumerate((-5.0, 3.0)):
        errs = []
        for start in (0, 4):
            from singlink.receiver.noise import derive_batch_seed

            xb, xj, _ = validation_pairs(jscc, x[start:start + 4], [snr], derive_batch_seed(2, start))
            errs.append((torch.nn.functional.avg_pool2d(xj, 4) - torch.nn.functional.avg_pool2d(xb, 4)).flatten() * 2)
        assert table["sigma_y"]["pool4"][j] == pytest.approx(float(torch.cat(errs).double().pow(2).mean().sqrt()), rel=1e-5)
    # coarser pooling averages more of the error away
    assert all(a > b for a, b in zip(table["sigma_y"]["pool4"], table["sigma_y"]["pool8"]))


@pytest.mark.skipif(not (SHARED_DATA / "cifar10").is_dir(), reason="../shared/data/cifar10 not present")
def test_calibrate_sigma_y_command_records_in_the_checkpoint(jscc, tmp_path, tiny_prior, capsys):
    from singlink.cli import main

    jscc.save_pretrained(tmp_path / "jscc")
    before = (tmp_path / "jscc" / "config.json").read_bytes()
    assert main(["calibrate-sigma-y", "--jscc", str(tmp_path / "jscc"), "--images", "4", "--snr", "-5,5",
                 "--operators", "pool4,pool9", "--record"]) == 2
    assert "--operators pool9" in capsys.readouterr().err
    assert (tmp_path / "jscc" / "config.json").read_bytes() == before  # nothing half-written
    assert main(["calibrate-sigma-y", "--jscc", str(tmp_path / "jscc"), "--images", "4", "--snr", "-5,5",
                 "--operators", "pool4", "--record", "--threads", "1"]) == 0
    raw = json.loads((tmp_path / "jscc" / "config.json").read_text())
    record = raw["observation_noise"]
    assert record["snr_db"] == [-5.0, 5.0] and len(record["sigma_y"]["pool4"]) == 2
    assert record["sha256"] == jscc.fingerprint and record["images"] == 4 and record["split"] == "val"
    rx = Receiver(str(tmp_path / "jscc"), "sing-zero", prior=tiny_prior, operator="pool4", steps=3,
                  projection="noise-aware")
    assert rx.restore(torch.rand(1, 3, 32, 32), 0.0).shape == (1, 3, 32, 32)


# --- CommIN ------------------------------------------------------------------------------------
def test_commin_is_inn_guidance_without_the_projection(tiny_prior):
    torch.manual_seed(3)
    inn = ConditionalINN(hidden=8, pairs=1, blocks=1)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    obs = Observation(x, torch.tensor([-1.0, 3.0]))
    unguided = make_method("commin", prior=tiny_prior, inn=inn, steps=4, zeta=0.0)(obs, seed=[3, 4])
    torch.testing.assert_close(unguided, SINGZero(tiny_prior, "pool4", steps=4, projection="none")(x, seed=[3, 4]))
    commin = make_method("commin", prior=tiny_prior, inn=inn, steps=4)(obs, seed=[3, 4])
    sing_inn = make_method("sing-inn", prior=tiny_prior, inn=inn, steps=4)(obs, seed=[3, 4])
    assert not torch.equal(commin, unguided) and not torch.equal(commin, sing_inn)


# --- DPS ---------------------------------------------------------------------------------------
def faded_observation(jscc, n=8, snr=2.0, seed=0):
    x = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    phy.set_seed(seed)
    y, h = phy.TFModule(phy.make_channel("rayleigh-block"))(jscc.encode(x, snr), snr)
    return x, y, h


def test_dps_likelihood_is_exact_at_the_true_image(jscc, tiny_prior):
    """At the transmitted image the whitened residual (y - h f(x)) / sigma is the channel noise over
    its standard deviation: |r|^2 averages 1 per symbol (chi-square, 2 x 512 degrees of freedom),
    with h and the power normalisation as the channel applied them. Without h it is far off."""
    x, y, h = faded_observation(jscc)
    rx = Receiver(jscc, "dps", prior=tiny_prior, steps=2)
    obs = rx.observe(y, 2.0, h=h)
    dps = rx.method.sampler
    with torch.no_grad():
        per_symbol = float((dps.residual(obs, 2 * x - 1).abs() ** 2).mean())
    assert 0.85 < per_symbol < 1.15
    no_h = Observation(obs.x_jscc, obs.snr_db, obs.symbols, None, obs.noise_var, obs.tx_snr_db, jscc)
    with torch.no_grad():
        assert float((dps.residual(no_h, 2 * x - 1).abs() ** 2).mean()) > 2


def test_dps_moves_toward_the_received_symbols(jscc, tiny_prior):
    """Guided, the restored images explain the received symbols down to the noise (|r|^2 about 1 per
    symbol); the prior's unguided samples do not. At 30 dB, where the (untrained) codec's symbols
    of other images differ from the sent ones by more than the noise."""
    x, y, h = faded_observation(jscc, n=2, snr=30.0)
    fit = {}
    for zeta in (0.0, 1.0):
        rx = Receiver(jscc, "dps", prior=tiny_prior, steps=8, zeta=zeta)
        obs = rx.observe(y, 30.0, h=h)
        out = rx.reconstruct(obs, seed=[1, 2])
        assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
        with torch.no_grad():
            fit[zeta] = float((rx.method.sampler.residual(obs, 2 * out - 1).abs() ** 2).mean())
    assert fit[0.0] > 2 and fit[1.0] < 1.2


def test_dps_refuses_what_it_cannot_use(jscc, tiny_prior):
    rx = Receiver(jscc, "dps", prior=tiny_prior, steps=2)
    with pytest.raises(UsageError, match=r"dps restores from the received symbols .*rx\(y, snr_db"):
        rx.restore(torch.rand(1, 3, 32, 32), 0.0)
    x, y, h = faded_observation(jscc, n=1)
    obs = rx.observe(y, 2.0, h=h)
    short = Observation(obs.x_jscc, obs.snr_db, obs.symbols[:, :16], obs.h, obs.noise_var[:, :16], obs.tx_snr_db, jscc)
    with pytest.raises(UsageError, match=r"the received symbols are \(1, 16\) but the DeepJSCC sends k = 64"):
        rx.reconstruct(short)
    for bad in (-0.5, float("inf"), "big"):
        with pytest.raises(UsageError, match="zeta must be a finite number >= 0"):
            DPS(tiny_prior, jscc, steps=2, zeta=bad)
    with pytest.raises(UsageError, match="received symbols have k = 16"):
        rx(y[:, :16], 2.0)


def test_dps_over_ofdm_uses_the_per_symbol_effective_noise(jscc, tiny_prior):
    """After an OFDM equaliser the symbols are equalised (h = 1) and each has its own effective
    noise no_eff; the whitened residual at the true image is then unit-variance again."""
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    phy.set_seed(1)
    channel = phy.TFModule(phy.make_channel("ofdm-tdl-a:delay_spread=100e-9"))
    y, no_eff = channel(jscc.encode(x, 8.0), 8.0)
    rx = Receiver(jscc, "dps", prior=tiny_prior, steps=2)
    obs = rx.observe(y, 8.0, no_eff=no_eff)
    assert obs.h is None and torch.equal(obs.noise_var, no_eff.float())
    with torch.no_grad():
        assert 0.75 < float((rx.method.sampler.residual(obs, 2 * x - 1).abs() ** 2).mean()) < 1.25


# --- codec families and the recorded choice ------------------------------------------------------
def test_codec_family_lookup():
    from singlink.jscc.model import canonical_name, codec_family, find_checkpoint

    assert canonical_name("celeba", 64, 64) == "deepjscc-celeba64-rho1_192"
    assert codec_family({"provenance": {"config": {"lpips_weight": 0.05}}}) == "perceptual"
    assert codec_family({"provenance": {"config": {"lpips_weight": 0.0}}}) == "mse"
    assert find_checkpoint("celeba", 64, 64) == "deepjscc-celeba64-rho1_192"
    assert find_checkpoint("celeba", 64, 64, family="perceptual") == "deepjscc-celeba64-rho1_192"
    assert find_checkpoint("cifar10", 32, 512, family="mse") == "deepjscc-cifar10-rho1_6"
    with pytest.raises(UsageError, match="unknown codec family 'lpips'"):
        find_checkpoint("celeba", 64, 64, family="lpips")
    with pytest.raises(UsageError, match="no shipped deepjscc checkpoint of the perceptual family"):
        find_checkpoint("cifar10", 32, 512, family="perceptual")


def test_receiver_takes_each_methods_recorded_choice(jscc, tiny_prior):
    import copy

    from singlink.jscc.model import _sing_block

    codec = copy.deepcopy(jscc)
    codec.sing = _sing_block({"operator": "pool2", "steps": 5, "zeta": 0.3,
                              "methods": {"dps": {"steps": 3, "zeta": 0.7}, "sing-zero": {"travel_length": 1,
                                                                                          "travel_repeats": 1}}})
    assert Receiver(codec, "dps", prior=tiny_prior).options == {"steps": 3, "zeta": 0.7}
    zero = Receiver(codec, "sing-zero", prior=tiny_prior)
    assert zero.options == {"operator": "pool2", "steps": 5, "travel_length": 1, "travel_repeats": 1}
    assert zero.method.sampler.travel_length == 1
    with pytest.raises(ValueError, match="sigma_y_scale"):
        _sing_block({"methods": {"sing-zero": {"sigma_y_scale": -1}}})


def test_a_partial_chain_starts_from_x_jscc_noised_under_q(tiny_prior):
    """start < 1 (SDEdit / CCDF): the chain begins at index round((1 - start) S) from x_JSCC noised
    exactly under q, visits only the rest, and the first sample is that noised image."""
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    s = SINGZero(tiny_prior, "pool4", steps=10, projection="none", start=0.3)
    assert s.first == 7 and travel_plan(10, first=s.first) == [("step", 7), ("step", 8), ("step", 9)]
    # time travel never goes back before the first index
    assert [m for m in travel_plan(10, 2, 1, first=6) if m[0] == "back"] == [("back", 8)]
    assert [m for m in travel_plan(10, 2, 1, first=7) if m[0] == "back"] == []
    seen = {}

    def spy(x_t, x0_hat, t, snr):
        seen.setdefault("x_t", x_t.detach().clone())
        return torch.zeros_like(x_t)

    s(x, seed=[5], guidance=spy)
    abar = float(s.schedule.abar[7])
    z = torch.randn(3, 32, 32, generator=image_generators([5], 1)[0]).unsqueeze(0)
    torch.testing.assert_close(seen["x_t"], abar**0.5 * (2 * x - 1) + (1 - abar) ** 0.5 * z)
    assert torch.equal(SINGZero(tiny_prior, "pool4", steps=4)(x, seed=[1]),
                       SINGZero(tiny_prior, "pool4", steps=4, start=1.0)(x, seed=[1]))
    for bad in (0, 1.5, "half"):
        with pytest.raises(UsageError, match=r"start must be a fraction of the chain in \(0, 1\]"):
            SINGZero(tiny_prior, "pool4", steps=4, start=bad)


def test_sweep_picks_the_codec_family():
    from singlink.sweep.config import build_config, checkpoint_names

    cfg = build_config(None, None, {"methods": "deepjscc", "family": "mse"})
    assert cfg.family == ("mse",) and cfg.method_families() == [("deepjscc", "mse")]
    assert checkpoint_names(cfg, "1/192", "mse") == {"jscc": "deepjscc-celeba64-rho1_192-mse"}
    both = build_config(None, None, {"methods": "deepjscc,bpg-capacity", "family": "perceptual,mse"})
    # the baselines use no codec: one line each, whatever the families
    assert both.method_families() == [("deepjscc", "perceptual"), ("deepjscc", "mse"), ("bpg-capacity", "")]
    assert checkpoint_names(both, "1/192", "perceptual") == {"jscc": "deepjscc-celeba64-rho1_192"}
    assert checkpoint_names(build_config(None, None, {"methods": "deepjscc"}), "1/192") == {
        "jscc": "deepjscc-celeba64-rho1_192"}
    with pytest.raises(UsageError, match="unknown family 'lpips'; choose from perceptual, mse"):
        build_config(None, None, {"methods": "deepjscc", "family": "lpips"})
