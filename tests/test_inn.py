"""SING-INN: the conditional INN (Haar split + SNR-conditioned lifting), its training command and
the INN-guided sampler (Algorithm 2)."""
import copy
import json
import math
import warnings

import pytest
import torch
from torch.nn import functional as F

from singlink.errors import UsageError
from singlink.jscc.model import DeepJSCC, DeepJSCCConfig
from singlink.receiver.observation import Observation
from singlink.receiver import Receiver, make_method, make_operator
from singlink.receiver.inn import ConditionalINN, haar_merge, haar_split
from singlink.receiver.prior import DiffusionPrior
from singlink.receiver.sing_inn import SINGINN, paper_zeta
from singlink.receiver.train_inn import degradation_loss, validate

from conftest import SHARED_DATA


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_prior():
    torch.manual_seed(0)
    return DiffusionPrior.from_preset("tiny").eval()


@pytest.fixture(scope="module")
def jscc():
    torch.manual_seed(0)
    return DeepJSCC(DeepJSCCConfig(k=64, channels=8)).eval()


def random_inn(seed=0, std=0.1, **kw):
    """An INN whose every parameter (the zero-initialised output convolutions included) is random."""
    inn = ConditionalINN(hidden=kw.pop("hidden", 16), **kw)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in inn.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return inn


# --- the splitting operator and the INN ---------------------------------------------------
def test_haar_split_is_orthonormal_and_exactly_invertible():
    g = torch.Generator().manual_seed(0)
    x, u = torch.randn(2, 2, 3, 8, 6, generator=g, dtype=torch.float64)
    ll, d = haar_split(x)
    assert ll.shape == (2, 3, 4, 3) and d.shape == (2, 9, 4, 3)
    torch.testing.assert_close(haar_merge(ll, d), x, rtol=0, atol=1e-15)
    # orthogonal: inner products (hence norms) are kept
    ll_u, d_u = haar_split(u)
    torch.testing.assert_close((ll * ll_u).sum() + (d * d_u).sum(), (x * u).sum(), rtol=1e-12, atol=0)
    # LL is the orthonormal image of 2x2 average pooling: a constant v maps to 2v, with no details
    torch.testing.assert_close(ll, 2 * F.avg_pool2d(x, 2), rtol=0, atol=1e-14)
    ll_c, d_c = haar_split(torch.full((1, 3, 4, 4), 0.3, dtype=torch.float64))
    torch.testing.assert_close(ll_c, torch.full((1, 3, 2, 2), 0.6, dtype=torch.float64), rtol=0, atol=1e-15)
    assert torch.equal(d_c, torch.zeros_like(d_c))
    assert torch.equal(ConditionalINN.coarse(x), ll)
    with pytest.raises(UsageError, match="even image sides"):
        haar_split(torch.zeros(1, 3, 5, 4))


@pytest.mark.parametrize("dtype,tol,size", [(torch.float64, 1e-5, 32), (torch.float32, 1e-4, 32),
                                            (torch.float32, 1e-4, 64)])
def test_inn_is_invertible_for_any_weights(dtype, tol, size):
    inn = random_inn(std=0.1).to(dtype)
    x = torch.rand(4, 3, size, size, generator=torch.Generator().manual_seed(1), dtype=dtype)
    for snr in (-5.0, 0.0, 5.0, torch.tensor([-5.0, -1.0, 2.0, 5.0])):
        c, d = inn(x, snr)
        assert c.shape == (4, 3, size // 2, size // 2) and d.shape == (4, 9, size // 2, size // 2)
        assert (c - inn.coarse(x)).abs().max() > 0.1  # the random lifting does change the split
        assert (inn.inverse(c, d, snr) - x).abs().max() <= tol
    # the SNR conditions the lifting; the CommIN variant ignores it
    assert not torch.equal(inn(x, -5.0)[0], inn(x, 5.0)[0])
    fixed = random_inn(std=0.1, fixed_snr=1.0).to(dtype)
    assert torch.equal(fixed(x, -5.0)[0], fixed(x, None)[0])
    assert (fixed.inverse(*fixed(x), None) - x).abs().max() <= tol


def test_untrained_inn_is_the_haar_split_and_round_trips_through_storage(tmp_path):
    x = torch.rand(2, 3, 32, 32)
    c, d = ConditionalINN()(x, 0.0)
    assert torch.equal(c, haar_split(x)[0]) and torch.equal(d, haar_split(x)[1])
    # so swapping in coarse(x_JSCC) (Algorithm 2, line 7) is SING-Zero's pool2 projection
    g = torch.Generator().manual_seed(2)
    x0 = 2 * torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64) - 1  # the prior's range
    x_jscc = torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64)
    untrained = ConditionalINN().double()
    x_tilde = 2 * untrained.inverse(untrained.coarse(x_jscc), untrained((x0 + 1) / 2, 0.0)[1], 0.0) - 1
    A = make_operator("pool2")
    torch.testing.assert_close(x_tilde, A.project(x0, A(2 * x_jscc - 1)), rtol=0, atol=1e-14)
    inn = random_inn(jscc={"name": "deepjscc-cifar10-rho1_48", "k": 64, "rho": "1/48"}, snr_range=(-5, 5))
    inn.save_pretrained(tmp_path / "inn", extra={"note": "test"})
    back = ConditionalINN.from_pretrained(tmp_path / "inn")
    assert back.jscc == inn.jscc and back.snr_range == (-5.0, 5.0) and back.config == inn.config
    assert torch.equal(back(x, 2.0)[0], inn(x, 2.0)[0])
    assert json.loads((tmp_path / "inn" / "config.json").read_text())["provenance"] == {"note": "test"}
    with pytest.raises(UsageError, match="train-inn"):
        ConditionalINN.from_pretrained(tmp_path / "missing")
    with pytest.raises(UsageError, match="needs the channel SNR"):
        inn(x, None)


def smooth_images(n, g):
    x = F.interpolate(torch.rand(n, 3, 8, 8, generator=g), size=32, mode="bilinear", align_corners=False)
    return (x + 0.2 * torch.rand(n, 3, 32, 32, generator=g)).clamp(0, 1)


def degrade(x, snr, g):
    """A stand-in for DeepJSCC + channel: blur plus SNR-dependent noise."""
    blur = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    return blur + 0.02 * 10 ** (-snr / 20).view(-1, 1, 1, 1) * torch.randn(x.shape, generator=g)


def _train(inn, g, steps=40, inverse_weight=0.0):
    opt = torch.optim.Adam(inn.parameters(), lr=3e-3)
    for _ in range(steps):
        x = smooth_images(16, g)
        snr = -5 + 10 * torch.rand(16, generator=g)
        loss = degradation_loss(inn, x, degrade(x, snr, g), snr, inverse_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()


def _pairs(g):
    x_val = smooth_images(32, g)
    snr_val = torch.linspace(-5, 5, 32)
    return x_val, degrade(x_val, snr_val, g), snr_val


def test_training_brings_the_coarse_part_closer_to_the_degraded_image():
    g = torch.Generator().manual_seed(0)
    pairs = _pairs(g)
    torch.manual_seed(0)
    inn = ConditionalINN(hidden=16)
    reference = validate(inn, pairs)
    # untrained = plain Haar: Eq. 16 is the LL bands' distance, and the inverse error (the original's
    # details on x_JSCC's LL band) is that distance spread over 4x as many pixels (orthonormal transform)
    x, x_jscc, _ = pairs
    ll = torch.mean((ConditionalINN.coarse(x) - ConditionalINN.coarse(x_jscc)) ** 2)
    assert reference["loss"] == pytest.approx(float(ll), rel=1e-6)
    assert reference["inverse"] == pytest.approx(float(ll) / 4, rel=1e-5)
    _train(inn, g)
    trained = validate(inn, pairs)
    assert trained["loss"] < 0.85 * reference["loss"]


def test_inverse_weight_adds_the_error_of_the_inverse_the_guidance_uses():
    """--inverse-weight W: Eq. 16 + W * mean ||INN^-1(coarse(x_JSCC), d(x)) - x||^2, with d the INN's own
    detail part of x (SING-INN's line-8 target with the original's details); W = 0 is Eq. 16 alone."""
    from singlink.receiver.train_inn import inverse_error

    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    inn = ConditionalINN(hidden=16)
    _train(inn, g, steps=5)  # lifting outputs away from zero
    x = smooth_images(4, g)
    snr = torch.tensor([-5.0, -1.0, 2.0, 5.0])
    x_jscc = degrade(x, snr, g)
    c, d = inn(x, snr)
    eq16 = torch.mean((c - inn.coarse(x_jscc)) ** 2)
    target = inn.inverse(inn.coarse(x_jscc), d, snr)
    torch.testing.assert_close(degradation_loss(inn, x, x_jscc, snr), eq16)
    torch.testing.assert_close(degradation_loss(inn, x, x_jscc, snr, 2.5), eq16 + 2.5 * torch.mean((target - x) ** 2))
    torch.testing.assert_close(inverse_error(inn, x, x_jscc, snr), ((target - x) ** 2).flatten(1).mean(1))
    # with the INN's own coarse part the inverse is exact: the error is all in c
    torch.testing.assert_close(inn.inverse(c, d, snr), x, rtol=0, atol=1e-5)


# --- SING-INN -----------------------------------------------------------------------------
def test_paper_zeta_schedule():
    snr = torch.tensor([-9.0, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 9])
    expect = torch.tensor([0.3, 0.3, 0.3, 0.3, 0.35, 0.4, 0.4, 0.4, 0.45, 0.5, 0.5, 0.5, 0.5], dtype=torch.float64)
    torch.testing.assert_close(paper_zeta(snr), expect, rtol=0, atol=1e-12)


def test_zeta_zero_is_sing_zero_exactly(tiny_prior):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    snr = torch.tensor([-1.0, 3.0])
    zero = make_method("sing-zero", prior=tiny_prior, steps=4)(Observation(x, snr), seed=[3, 4])
    inn_zero = make_method("sing-inn", prior=tiny_prior, inn=random_inn(), steps=4, zeta=0.0)(Observation(x, snr), seed=[3, 4])
    assert torch.equal(zero, inn_zero)
    guided = make_method("sing-inn", prior=tiny_prior, inn=random_inn(), steps=4)(Observation(x, snr), seed=[3, 4])
    assert guided.shape == x.shape and 0 <= guided.min() and guided.max() <= 1
    assert not torch.equal(guided, zero)
    # each image is guided with its own SNR's zeta, independently of its batch mates (float64: a
    # random INN's strong guidance amplifies float32 round-off between batch sizes)
    prior64, inn64 = copy.deepcopy(tiny_prior).double(), random_inn().double()
    x64 = x.double()
    batch = make_method("sing-inn", prior=prior64, inn=inn64, steps=4)(Observation(x64, snr), seed=[3, 4])
    alone = make_method("sing-inn", prior=prior64, inn=inn64, steps=4)(Observation(x64[1:], snr[1:]), seed=[4])
    torch.testing.assert_close(alone, batch[1:], rtol=0, atol=1e-8)


def test_inn_is_conditioned_on_the_snr_clamped_to_its_trained_range(tiny_prior):
    """A deep fade puts the effective SNR far below the INN's range; SING-INN then conditions the
    INN on the range's nearest end (with a fixed zeta the result is that of the end itself), while
    an INN that records no range takes the SNR as it is."""
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    clamped = make_method("sing-inn", prior=tiny_prior, inn=random_inn(snr_range=(-5, 5)), steps=3, zeta=0.4)
    with pytest.warns(UserWarning, match="conditioned on the nearest end of that range"):
        far = clamped(Observation(x, torch.tensor([-20.0, 12.0])), seed=[1, 2])
    assert torch.equal(far, clamped(Observation(x, torch.tensor([-5.0, 5.0])), seed=[1, 2]))
    assert torch.equal(clamped.sampler.inn_snr(torch.tensor([-20.0, 0.5, 9.0], dtype=torch.float64)),
                       torch.tensor([-5.0, 0.5, 5.0], dtype=torch.float64))
    free = make_method("sing-inn", prior=tiny_prior, inn=random_inn(), steps=3, zeta=0.4)
    assert not torch.equal(free(Observation(x, torch.tensor([-20.0, 12.0])), seed=[1, 2]),
                           free(Observation(x, torch.tensor([-5.0, 5.0])), seed=[1, 2]))


@pytest.mark.parametrize("reading", ["norm", "squared"])
def test_guidance_is_zeta_times_the_gradient_of_algorithm2_line8(tiny_prior, reading):
    """Autograd gradient vs central differences of each image's ||x~_{0,t} - x^_{0,t}|| (or its
    square) summed over the batch, as a function of x_t, float64."""
    prior = copy.deepcopy(tiny_prior).double()
    inn = random_inn(std=0.1).double()
    g = torch.Generator().manual_seed(5)
    x_jscc = torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64)
    snr = torch.tensor([-2.0, 4.0], dtype=torch.float64)
    method = SINGINN(prior, inn, operator="pool4", steps=10, zeta=0.7, guidance=reading)
    guidance = method.make_guidance(x_jscc, snr)
    A = make_operator("pool4")
    y = A(2 * x_jscc - 1)
    t = 400
    abar = float(prior.alphas_cumprod[t])

    def x0_hat(x_t):  # SING-Zero's lines 3-4 (no clamp: smooth in x_t)
        x0 = (x_t - (1 - abar) ** 0.5 * prior.eps(x_t, t)) / abar**0.5
        return A.project(x0, y)

    def loss(x_t):  # Algorithm 2, lines 6-8, in the prior's range
        xh = x0_hat(x_t)
        _, d = inn((xh + 1) / 2, snr)
        x_tilde = 2 * inn.inverse(inn.coarse(x_jscc), d, snr) - 1
        sq = ((x_tilde - xh) ** 2).flatten(1).sum(1)
        return (sq if reading == "squared" else sq.sqrt()).sum()

    x_t = torch.randn(2, 3, 32, 32, generator=g, dtype=torch.float64).requires_grad_(True)
    grad = guidance(x_t, x0_hat(x_t), t, snr) / 0.7
    v = torch.randn(x_t.shape, generator=g, dtype=torch.float64)
    h = 1e-6
    with torch.no_grad():
        fd = (loss(x_t + h * v) - loss(x_t - h * v)) / (2 * h)
    ad = (grad * v).sum()
    assert abs(ad) > 1e-3
    assert abs(ad - fd) / abs(fd) < 1e-5


def test_bad_inputs(tiny_prior, jscc):
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(UsageError, match="train-inn"):
        make_method("sing-inn", prior=tiny_prior)
    with pytest.raises(UsageError, match="zeta"):
        make_method("sing-inn", prior=tiny_prior, inn=random_inn(), zeta=-0.1)
    with pytest.raises(UsageError, match="guidance must be one of norm, squared"):
        make_method("sing-inn", prior=tiny_prior, inn=random_inn(), guidance="cubed")
    method = make_method("sing-inn", prior=tiny_prior, inn=random_inn(snr_range=(-5, 5)), steps=2)
    with pytest.raises(UsageError, match="SING-INN needs the channel SNR"):
        method(Observation(x, None))
    with pytest.raises(UsageError, match="needs the channel SNR"):
        Receiver(jscc, "sing-inn", prior=tiny_prior, inn=random_inn(), steps=2).restore(x, None)
    with pytest.warns(UserWarning, match="outside the SNR range the INN was trained on"):
        method(Observation(torch.rand(2, 3, 32, 32), torch.tensor([0.0, 10.0])))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        method(Observation(x, torch.tensor(7.0)))  # within 2 dB of the range: no warning
        method(Observation(x, torch.tensor(12.0)))  # warned once already
    other = random_inn(jscc={"name": "deepjscc-cifar10-rho1_192", "k": 16, "rho": "1/192"})
    with pytest.raises(UsageError, match=r"INN trained for k=16 \(rho 1/192\) but the receiver's DeepJSCC sends k=64"):
        Receiver(jscc, "sing-inn", prior=tiny_prior, inn=other)
    same = random_inn(jscc={"name": "tiny", "k": 64, "rho": "1/48"})
    assert Receiver(jscc, "sing-inn", prior=tiny_prior, inn=same, steps=2).restore(x, 1.0).shape == x.shape


# --- singlink train-inn ---------------------------------------------------------------------
@pytest.mark.skipif(not (SHARED_DATA / "cifar10").is_dir(), reason="../shared/data/cifar10 not present")
def test_train_inn_resumes_exactly_and_exports(jscc, tmp_path, monkeypatch):
    from singlink.cli import main
    from singlink.receiver import inn as inn_module

    jscc.save_pretrained(tmp_path / "jscc")
    monkeypatch.setattr(inn_module, "CHECKPOINTS", tmp_path / "checkpoints")
    common = ["train-inn", "--jscc", str(tmp_path / "jscc"), "--train-images", "64", "--val-images", "4",
              "--batch", "4", "--hidden", "8", "--lr", "1e-3", "--threads", "1"]
    assert main(common + ["--steps", "2", "--out", str(tmp_path / "a")]) == 0
    assert main(common + ["--steps", "3", "--out", str(tmp_path / "a")]) == 0
    assert main(common + ["--steps", "3", "--out", str(tmp_path / "b"), "--export", "inn-test"]) == 0
    a, b = (torch.load(tmp_path / r / "state.pt", weights_only=True) for r in "ab")
    assert a["step"] == b["step"] == 3
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    logs = [[json.loads(line) for line in open(tmp_path / r / "log.jsonl")] for r in "ab"]
    assert [r["val_reference"] for r in logs[0] if "val_reference" in r] == [logs[1][0]["val_reference"]]  # once
    losses = [[(r["step"], r["loss"]) for r in log if "loss" in r] for log in logs]
    assert losses[0] == losses[1] and [s for s, _ in losses[0]] == [1, 2, 3]

    shipped = ConditionalINN.from_pretrained("inn-test")
    assert shipped.jscc == {"name": str(tmp_path / "jscc"), "k": 64, "rho": "1/48", "dataset": "cifar10",
                            "image_size": 32, "sha256": jscc.fingerprint} and shipped.snr_range == (-5.0, 5.0)
    assert all(torch.equal(shipped.state_dict()[k], b["model"][k]) for k in b["model"])
    card = (tmp_path / "checkpoints" / "inn-test" / "MODEL_CARD.md").read_text()
    assert "plain Haar" in card and "k = 64" in card and "--steps 3" in card
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert set(summary["validation"]["per_snr"]) == {"-5", "-3", "-1", "1", "3", "5"}
    assert math.isfinite(summary["validation"]["loss"]) and summary["validation_reference"]["loss"] > 0
    # the receiver takes the exported INN by name for the DeepJSCC it was trained for, and finds it
    # by the codec's fingerprint when not told
    rx = Receiver(jscc, "sing-inn", prior=DiffusionPrior.from_preset("tiny"), inn="inn-test", steps=2)
    assert rx.restore(torch.rand(1, 3, 32, 32), 0.0).shape == (1, 3, 32, 32)
    assert inn_module.find_inn(jscc) == "inn-test"
    # a codec of the same data set, size and k but other weights is refused the INN, with one line
    torch.manual_seed(5)
    other = DeepJSCC(DeepJSCCConfig(k=64, channels=8)).eval()
    with pytest.raises(UsageError, match=r"the INN was trained for the DeepJSCC .*jscc \(sha256 [0-9a-f]{12}\), not"):
        Receiver(other, "sing-inn", prior=DiffusionPrior.from_preset("tiny"), inn="inn-test", steps=2)
    with pytest.raises(UsageError, match="no shipped INN was trained for the DeepJSCC"):
        inn_module.find_inn(other)


def test_train_inn_cosine_schedule_decays_and_fixes_its_steps(jscc, tmp_path):
    """--lr-schedule cosine: the rate falls from --lr to --lr-min over --steps (a function of the
    step alone, so resuming stays exact), and --steps is then part of the run's settings."""
    from singlink.cli import main

    jscc.save_pretrained(tmp_path / "jscc")
    common = ["train-inn", "--jscc", str(tmp_path / "jscc"), "--train-images", "64", "--val-images", "4",
              "--batch", "4", "--hidden", "8", "--lr", "1e-3", "--lr-schedule", "cosine", "--lr-min", "1e-4",
              "--threads", "1", "--out", str(tmp_path / "a")]
    assert main(common + ["--steps", "3"]) == 0
    lrs = [json.loads(line)["lr"] for line in open(tmp_path / "a" / "log.jsonl") if '"lr"' in line]
    assert lrs == pytest.approx([1e-3, 1e-4 + 0.5 * 9e-4 * (1 + math.cos(math.pi / 3)),
                                 1e-4 + 0.5 * 9e-4 * (1 + math.cos(2 * math.pi / 3))])
    assert main(common + ["--steps", "4"]) == 2  # another --steps is another schedule: refused in one line
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["config"]["lr_schedule"] == "cosine" and "--lr-schedule cosine" in summary["command"]


def test_inn_model_card_says_how_flat_the_validation_curve_ends():
    from singlink.receiver.train_inn import _curve_text

    text = _curve_text({"init": "inn-x", "validation_curve": [[250, 0.04], [500, 0.03], [750, 0.0297], [1000, 0.0294]]})
    assert "Warm-started from `inn-x`" in text
    assert "250: 0.04000" in text and "-1.0% over the last 250 steps" in text  # 0.75 x 1000 -> step 750
