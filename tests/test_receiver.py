"""The receiver plugin end to end: symbols through the Sionna channel -> decode -> restore."""
import csv
import math

import pytest
import torch

from singlink import phy
from singlink.errors import UsageError
from singlink.receiver import Receiver, available_methods, register_method
from singlink.receiver.prior import DiffusionPrior

from conftest import SHARED_DATA


def test_methods_register_and_plug_in(jscc):
    assert {"deepjscc", "sing-zero"} <= set(available_methods())

    @register_method("test-invert")
    class Invert:
        def __call__(self, obs, seed=0, progress=False):
            return 1 - obs.x_jscc

    rx = Receiver(jscc, "test-invert")
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(rx.restore(x, 0.0), 1 - x)


@pytest.mark.parametrize("channel", ["awgn", "rayleigh-block"])
def test_end_to_end_sing_zero_with_a_tiny_local_prior(jscc, tiny_prior, channel):
    x = torch.rand(3, 3, 32, 32)
    phy.set_seed(0)
    y, h = phy.as_torch(phy.make_channel(channel))(jscc.encode(x, 3.0), 3.0)
    rx = Receiver(jscc, "sing-zero", prior=tiny_prior, operator="pool4", steps=10)
    out = rx(y, 3.0, h=None if channel == "awgn" else h, seed=1)
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    assert torch.equal(out, rx(y, 3.0, h=None if channel == "awgn" else h, seed=1))
    # SING-Zero keeps what A sees of the decoded image (up to the final clamp to [0, 1])
    x_jscc = rx.decode(y, 3.0, h=None if channel == "awgn" else h)
    pool = torch.nn.functional.avg_pool2d
    assert (pool(out, 4) - pool(x_jscc, 4)).abs().max() < 0.05


def test_block_fading_equalisation_feeds_the_decoder_effective_snr(jscc):
    x = torch.rand(2, 3, 32, 32)
    z = jscc.encode(x, 10.0)
    h = torch.tensor([[0.5 + 0.5j], [2.0 + 0j]], dtype=torch.complex64)
    rx = Receiver(jscc, "deepjscc", equalizer="zf")
    with torch.no_grad():
        expect = jscc.decode(z, torch.tensor([10 + 10 * torch.log10(torch.tensor(0.5)), 10 + 10 * torch.log10(torch.tensor(4.0))]))
    torch.testing.assert_close(rx.decode(h * z, 10.0, h=h), expect, rtol=1e-5, atol=1e-5)


def test_restoration_is_told_the_snr_the_decoder_used_under_fading(jscc):
    """Under block fading the equalised symbols are AWGN at SNR + 10 log10 |h|^2: SING is told that
    per-image SNR, as the decoder is (and as after OFDM), not the nominal one."""
    told = {}

    @register_method("test-record-snr")
    class RecordSNR:
        def __call__(self, obs, seed=0, progress=False):
            told["snr"], told["obs"] = obs.snr_db, obs
            return obs.x_jscc

    x = torch.rand(2, 3, 32, 32)
    h = torch.tensor([[0.5 + 0.5j], [2.0 + 0j]], dtype=torch.complex64)
    rx = Receiver(jscc, "test-record-snr")
    rx(h * jscc.encode(x, 10.0), 10.0, h=h)
    torch.testing.assert_close(told["snr"], torch.tensor([10 + 10 * math.log10(0.5), 10 + 10 * math.log10(4.0)]))
    # the method also sees what the channel carried: symbols as received, h, the noise variance
    # per symbol at the nominal SNR and the SNR the encoder was told
    obs = told["obs"]
    assert obs.h is h and obs.symbols.shape == (2, jscc.config.k) and obs.codec is jscc
    torch.testing.assert_close(obs.noise_var, torch.full((2, jscc.config.k), 0.1))
    torch.testing.assert_close(obs.tx_snr_db, torch.tensor([10.0, 10.0]))
    rx(jscc.encode(x, 10.0), 10.0)
    torch.testing.assert_close(told["snr"], torch.tensor([10.0, 10.0]))
    assert told["obs"].h is None
    rx.restore(told["obs"].x_jscc, 3.0)  # decoded images alone: no symbols
    assert told["obs"].symbols is None and told["obs"].noise_var is None


def test_bad_inputs(jscc, tiny_prior):
    with pytest.raises(UsageError, match="unknown restoration method"):
        Receiver(jscc, "sing-two")
    rx = Receiver(jscc, "sing-zero", prior=tiny_prior, steps=2)
    with pytest.raises(UsageError, match="needs the channel SNR"):
        rx.restore(torch.rand(1, 3, 32, 32), None)
    with pytest.raises(UsageError, match="models 3x32x32 images, got 3x64x64"):
        rx.restore(torch.rand(1, 3, 64, 64), 0.0)
    with pytest.raises(UsageError, match="complex \\(N, k\\)"):
        rx(torch.rand(1, 64), 0.0)
    with pytest.raises(UsageError, match="equalizer"):
        Receiver(jscc, "deepjscc", equalizer="ml")


@pytest.mark.skipif(not (SHARED_DATA / "cifar10").is_dir(), reason="../shared/data/cifar10 not present")
def test_evaluate_command_writes_summary_with_cis(jscc, tmp_path):
    from singlink.cli import main

    jscc.save_pretrained(tmp_path / "jscc")
    torch.manual_seed(0)
    DiffusionPrior.from_preset("tiny").save_pretrained(tmp_path / "prior")
    out = tmp_path / "eval"
    assert main(["evaluate", "--rho", "1/48", "--jscc", str(tmp_path / "jscc"), "--prior", str(tmp_path / "prior"),
                 "--images", "4", "--snr", "-1,3", "--steps", "3", "--operators", "pool2,pool4", "--out", str(out)]) == 0
    summary = list(csv.DictReader(open(out / "summary.csv")))
    assert {r["method"] for r in summary} == {"deepjscc", "sing-zero(pool2,3)", "sing-zero(pool4,3)"}
    assert all(int(r["n"]) == 4 and float(r["psnr_ci95"]) >= 0 for r in summary)
    assert len(list(csv.DictReader(open(out / "rows.csv")))) == 3 * 2 * 4
    assert (out / "examples.png").read_bytes()[:4] == b"\x89PNG" and "k = 64" in (out / "summary.md").read_text()
    # LPIPS-VGG beside LPIPS-alex, and every method paired with DeepJSCC on the same images and draws
    assert all(0 <= float(r["lpips_vgg_mean"]) <= 2 for r in summary)
    rows = list(csv.DictReader(open(out / "rows.csv")))
    pairs = list(csv.DictReader(open(out / "paired.csv")))
    assert {(p["method"], float(p["snr_db"])) for p in pairs} == {(m, s) for m in ("sing-zero(pool2,3)", "sing-zero(pool4,3)")
                                                                   for s in (-1.0, 3.0)}
    one = next(p for p in pairs if p["method"] == "sing-zero(pool4,3)" and float(p["snr_db"]) == 3.0)
    value = {(r["method"], float(r["snr_db"]), r["image_id"]): float(r["lpips_vgg"]) for r in rows}
    diffs = [value[("sing-zero(pool4,3)", 3.0, i)] - value[("deepjscc", 3.0, i)] for i in {r["image_id"] for r in rows}]
    assert float(one["lpips_vgg_diff"]) == pytest.approx(sum(diffs) / len(diffs)) and int(one["n"]) == 4
