"""The sionna-torch phy backend (Sionna 2, PyTorch) against closed forms and against the sionna-tf
backend's stored LDPC BLER curve. Runs in .venv-sionna2 with SINGLINK_PHY=sionna-torch
(``make test-sionna2``); skipped elsewhere."""
import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from scipy.special import erfc

if os.environ.get("SINGLINK_PHY") != "sionna-torch":
    pytest.skip("sionna-torch backend tests: run with SINGLINK_PHY=sionna-torch in .venv-sionna2 "
                "(make test-sionna2)", allow_module_level=True)

import torch  # noqa: E402

from singlink import phy  # noqa: E402

REFERENCE = Path(__file__).parent / "reference" / "ldpc_bler_sionna-tf.json"


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Tiny tensors: one torch thread (conftest.one_thread) for every test here."""


def random_rows(n, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(n, k, generator=g), torch.randn(n, k, generator=g))


def q(x):
    return 0.5 * erfc(x / np.sqrt(2))


def test_import_never_loads_tensorflow():
    code = ("import sys; from singlink import phy; import singlink.phy.sionna2; "
            "phy.MonteCarloRunner(phy.DigitalLink(), 2, max_trials=1).run_point(3.0); "
            "print(phy.BACKEND, phy.SIONNA_VERSION, sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "SINGLINK_PHY": "sionna-torch"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["sionna-torch", "2.2.0", "[]"]


def test_public_names_match_the_tf_backend_except_the_bridge():
    tf_only = {"BridgeError", "TFModule", "tf_to_torch", "torch_to_tf"}
    # the TF backend's names: the list literal assigned to __all__ in phy/__init__.py (read, not
    # imported: importing it needs TensorFlow)
    tree = ast.parse(Path(phy.__file__).read_text())
    tf_names = {name for node in ast.walk(tree) if isinstance(node, ast.Assign) and isinstance(node.value, ast.List)
                and [t.id for t in node.targets] == ["__all__"]
                and all(isinstance(e, ast.Constant) for e in node.value.elts) for name in ast.literal_eval(node.value)}
    assert set(phy.__all__) == (tf_names - tf_only) | {"BACKEND", "SIONNA_VERSION"}
    assert all(hasattr(phy, name) for name in phy.__all__)


@pytest.mark.parametrize("power", [1.0, 2.5])
def test_power_normalisation_per_example(power):
    z = random_rows(8, 300) * torch.arange(1, 9)[:, None]
    out = phy.normalize_power(z, power)
    np.testing.assert_allclose((out.abs() ** 2).mean(-1).numpy(), power, rtol=1e-5)
    z2 = torch.cat([z[:1] * 100, z[1:]])
    np.testing.assert_allclose(phy.normalize_power(z2, power)[1:].numpy(), out[1:].numpy(), rtol=1e-5)


@pytest.mark.parametrize("channel", ["awgn", "rayleigh-block", "rayleigh-fast"])
def test_measured_snr_matches_requested(channel):
    phy.set_seed(1)
    n, k, power = 16, 8192, 1.0
    z = phy.normalize_power(random_rows(n, k))
    snr_db = torch.linspace(-5, 15, n)
    y, h = phy.make_channel(channel)(z, snr_db)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.complex64 and h.dtype == torch.complex64
    noise = (y - h * z).numpy()
    sigma2 = power / 10 ** (snr_db.numpy() / 10)
    # mean of k i.i.d. |n|^2 ~ sigma^2 * Exp(1): relative std 1/sqrt(k); allow 6 sigma
    assert np.all(np.abs(np.mean(np.abs(noise) ** 2, axis=1) / sigma2 - 1) < 6 / np.sqrt(k))
    for part in (noise.real, noise.imag):  # circular: sigma^2/2 per real dimension
        assert np.all(np.abs(np.mean(part**2, 1) / (sigma2 / 2) - 1) < 6 * np.sqrt(2 / k))


def test_scalar_snr_broadcasts_and_h_shapes():
    z = phy.normalize_power(random_rows(4, 10))
    _, h = phy.AWGNChannel()(z, 3.0)
    assert h.shape == (4, 1) and torch.all(h == 1)
    assert phy.RayleighBlockFadingChannel()(z, 3.0)[1].shape == (4, 1)
    assert phy.RayleighFastFadingChannel()(z, 3.0)[1].shape == (4, 10)
    y, _ = phy.AWGNChannel()(z, float("inf"))
    assert torch.equal(y, z)


def test_rayleigh_gain_is_cn01_and_its_power_exponential():
    phy.set_seed(2)
    _, h = phy.RayleighFastFadingChannel()(torch.zeros(200, 1000, dtype=torch.complex64), 10.0)
    h = h.numpy().ravel()
    g = np.abs(h) ** 2
    assert abs(g.mean() - 1) < 6 / np.sqrt(h.size)          # E|h|^2 = 1
    assert abs(np.mean(h.real * h.imag)) < 6 / np.sqrt(h.size)  # circular
    # |h|^2 ~ Exp(1) for h ~ CN(0, 1): Kolmogorov-Smirnov on 20,000 draws
    assert stats.kstest(g[:20000], "expon").pvalue > 1e-3


def test_equalizers():
    phy.set_seed(3)
    z = phy.normalize_power(random_rows(64, 2048))
    y, h = phy.RayleighBlockFadingChannel()(z, 10.0)
    z_zf, no_zf = phy.equalize(y, h, 10.0, "zf")
    err = ((z_zf - z).abs() ** 2).mean(1).numpy()
    np.testing.assert_allclose(err, no_zf.numpy().ravel(), rtol=6 / np.sqrt(2048))
    z_mmse, mse = phy.equalize(y, h, 10.0, "mmse")
    err_m = ((z_mmse - z).abs() ** 2).mean(1).numpy()
    np.testing.assert_allclose(err_m, mse.numpy().ravel(), rtol=6 / np.sqrt(2048))
    assert np.all(err_m <= err * (1 + 6 / np.sqrt(2048)))


def test_reseeding_reproduces_draws_bit_for_bit():
    z = phy.normalize_power(random_rows(3, 50))
    ch = phy.RayleighBlockFadingChannel()
    phy.set_seed(7)
    a = ch(z, 0.0)
    phy.set_seed(7)
    b = ch(z, 0.0)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    phy.set_seed(8)
    assert not torch.equal(ch(z, 0.0)[0], a[0])


def test_outage_against_fading_draws():
    phy.set_seed(4)
    _, h = phy.RayleighBlockFadingChannel()(torch.zeros(200000, 1, dtype=torch.complex64), 0.0)
    rate = 1.5
    mc = np.mean(np.log2(1 + np.abs(h.numpy()) ** 2 * 10 ** 0.5) < rate)
    p = phy.rayleigh_outage_probability(rate, 5.0)
    assert abs(mc - p) < 6 * np.sqrt(p * (1 - p) / 200000)
    np.testing.assert_allclose(phy.awgn_capacity([0.0, 10 * np.log10(3)]), [1, 2])


def test_ofdm_overhead_is_the_tf_backends():
    """OFDMLinkChannel.overhead (shared with sionna-tf, phy/link_base.py) on Sionna 2's resource grid:
    the counts test_phy_ofdm asserts on the TF backend."""
    o = phy.make_channel("ofdm-tdl-a:guard=4+3:dc=1").overhead(100)
    assert o["resource_elements_per_slot"] == o["data_re_per_slot"] + o["pilot_re_per_slot"] + o["nulled_re_per_slot"]
    assert (o["nulled_re_per_slot"], o["pilot_re_per_slot"]) == (8 * 14, 2 * 64)
    assert o["slots_per_image"] == 1 and o["padding_re"] == o["data_re_per_slot"] - 100


def test_ofdm_awgn_with_perfect_csi_is_the_awgn_channel():
    """ofdm-awgn (one unit tap) with perfect CSI: y = z + n on every RE, no_eff = sigma^2 exactly,
    for k filling its slots or not (padding, spread layout) and for P != 1."""
    phy.set_seed(5)
    for k, power in ((864, 1.0), (500, 2.0), (1500, 1.0)):
        z = phy.normalize_power(random_rows(32, k), power)
        snr_db = torch.linspace(0, 15, 32)
        y, no_eff = phy.make_channel("ofdm-awgn", power=power)(z, snr_db)
        sigma2 = power / 10 ** (snr_db / 10)
        torch.testing.assert_close(no_eff, sigma2[:, None].expand(32, k), rtol=1e-5, atol=0)
        est = ((y - z).abs() ** 2).mean(1) / sigma2
        assert torch.all((est - 1).abs() < 6 / np.sqrt(k)), (k, est)
        torch.testing.assert_close(phy.effective_snr_db(no_eff, power), snr_db, rtol=0, atol=1e-4)


@pytest.mark.parametrize("spec", ["ofdm-tdl-a", "ofdm-tdl-c:delay_spread=300e-9:speed=30", "ofdm-cdl-c"])
def test_ofdm_3gpp_channels_have_unit_average_power(spec):
    """Sionna's TDL/CDL power delay profiles sum to one and no per-realisation normalisation is
    applied: E|H|^2 = 1 per RE, averaged over 3,000 slots (each an independent draw)."""
    phy.set_seed(6)
    link = phy.make_channel(spec)
    h = link.transmit(torch.ones(3000, link.data_per_slot, dtype=torch.complex64), 10.0)["h_data"]
    per_slot = (h.abs() ** 2).mean(1)
    assert abs(per_slot.mean().item() - 1) < 5 * per_slot.std().item() / np.sqrt(3000)


@pytest.mark.parametrize("spec", ["ofdm-awgn:csi=ls", "ofdm-tdl-c:delay_spread=300e-9:csi=ls:eq=zf",
                                  "ofdm-tdl-a:csi=perfect", "ofdm-cdl-a:csi=perfect:eq=zf"])
def test_ofdm_effective_noise_is_what_the_receiver_believes(spec):
    """Equalised symbols are unbiased with error variance no_eff: with perfect CSI |y - z|^2 / no_eff
    averages to 1. With LS, Sionna's estimator interpolates the pilots' error variance sigma^2
    linearly, while the interpolated estimate's error is smaller (a weighted mean of two pilot
    estimates, variance (w^2 + (1-w)^2) sigma^2): the receiver's belief is conservative, the ratio
    below 1 (sionna-tf gives 0.943 and 0.946 for these two LS links, same seed and sizes)."""
    phy.set_seed(7)
    z = phy.normalize_power(random_rows(400, 800))
    y, no_eff = phy.make_channel(spec)(z, 8.0)
    ratio = ((y - z).abs() ** 2 / no_eff).mean().item()
    if "csi=ls" in spec:
        assert 0.9 < ratio < 1.0, ratio
    else:
        assert abs(ratio - 1) < 0.02, ratio


def estimate(cfg, ebno_db, batch, batches, seed=0):
    phy.set_seed(seed)
    runner = phy.MonteCarloRunner(phy.DigitalLink(cfg), batch, target_block_errors=None, max_trials=batches)
    return runner.run_point(float(phy.ebno_db_to_snr_db(ebno_db, cfg.modulation, cfg.coderate)))


def test_compiled_runner_is_one_graph_traced_once():
    """jit_compile=True: the whole step is one torch.compile graph (no host sync splits it), traced
    once for all batches (the link's blocks are built before compiling), with the error rate of theory."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    phy.set_seed(0)
    cfg = phy.DigitalLinkConfig(k=1000, modulation="bpsk", coded=False)
    runner = phy.MonteCarloRunner(phy.DigitalLink(cfg), 500, target_block_errors=None, max_trials=3, jit_compile=True)
    est = runner.run_point(4.0)
    assert est.batches == 3
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"]
    theory = q(np.sqrt(2 * 10 ** 0.4))
    assert abs(est.ber - theory) < 5 * np.sqrt(theory / est.bits)


@pytest.mark.parametrize("modulation", ["bpsk", "qpsk"])
@pytest.mark.parametrize("ebno_db", [0.0, 4.0, 6.0])
def test_uncoded_awgn_ber_matches_q_function(modulation, ebno_db):
    est = estimate(phy.DigitalLinkConfig(k=1000, modulation=modulation, coded=False), ebno_db, 500, 2)
    theory = q(np.sqrt(2 * 10 ** (ebno_db / 10)))
    assert abs(est.ber - theory) < 5 * np.sqrt(theory / est.bits)  # independent bits: 5 binomial sigma
    assert est.ber_ci95[0] <= est.ber <= est.ber_ci95[1]


@pytest.mark.parametrize("ebno_db", [0.0, 10.0])
def test_uncoded_bpsk_rayleigh_block_fading_matches_closed_form(ebno_db):
    g = 10 ** (ebno_db / 10)
    theory = 0.5 * (1 - np.sqrt(g / (1 + g)))
    cfg = phy.DigitalLinkConfig(k=32, modulation="bpsk", coded=False, channel="rayleigh-block")
    est = estimate(cfg, ebno_db, batch=20000, batches=2)
    half = (est.ber_ci95[1] - est.ber_ci95[0]) / 2  # rows share one gain: rows are the sampling unit
    assert abs(est.ber - theory) < 2.5 * half


def _reference_tool(name):
    """A script of tools/ that made a stored sionna-tf reference, imported to rerun it here."""
    sys.path.insert(0, str(Path(__file__).parent.parent / "tools"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def test_ofdm_digital_link_over_ofdm_awgn_is_the_awgn_link():
    """OFDMDigitalLink over ofdm-awgn with perfect CSI: uncoded QPSK BER is Q(sqrt(2 Eb/N0)), with
    the rows padded to a larger budget (k = 600 symbols for 500 sent) as the baselines pad to an
    image's k; coded, every codeword arrives at 10 dB."""
    cfg = phy.DigitalLinkConfig(k=1000, modulation="qpsk", coded=False, channel="ofdm-awgn")
    phy.set_seed(9)
    runner = phy.MonteCarloRunner(phy.OFDMDigitalLink(cfg, channel_uses=600), 200, target_block_errors=None,
                                  max_trials=2)
    est = runner.run_point(float(phy.ebno_db_to_snr_db(4.0, "qpsk")))
    theory = q(np.sqrt(2 * 10 ** 0.4))
    assert abs(est.ber - theory) < 5 * np.sqrt(theory / est.bits)
    coded = phy.OFDMDigitalLink(phy.DigitalLinkConfig(k=256, n=512, channel="ofdm-tdl-a:csi=ls"), num_blocks=2)
    bits, bits_hat = coded(8, 20.0)
    assert bits.shape == (8, 2, 256) and torch.equal(bits, bits_hat)
    with pytest.raises(ValueError, match="more than channel_uses"):
        phy.OFDMDigitalLink(cfg, channel_uses=100)


def test_ldpc_bler_curve_overlaps_the_tf_backend():
    """Same link, points, seeds and stopping rule as tools/ldpc_bler_reference.py made on
    sionna-tf (tests/reference/ldpc_bler_sionna-tf.json): the two RNGs differ, so the curves
    agree within Monte Carlo error: the 95% Clopper-Pearson intervals overlap at every point."""
    ref = _reference_tool("ldpc_bler_reference")
    stored = json.loads(REFERENCE.read_text())
    assert stored["backend"] == "sionna-tf" and stored["seed"] == ref.SEED
    for row in stored["points"]:
        est = ref.run_point(phy, row["channel"], row["ebno_db"])
        lo, hi = est.bler_ci95
        assert lo <= row["bler_ci95"][1] and row["bler_ci95"][0] <= hi, (row, est)


def test_deepjscc_trained_on_tf_scores_the_same_on_torch():
    """The shipped DeepJSCC (trained through the sionna-tf channel) on 500 CIFAR-10 test images, as
    tools/jscc_psnr_reference.py stored it on sionna-tf (tests/reference/jscc_psnr_sionna-tf.json),
    rerun on sionna-torch: same images and codec, other channel draws. Over AWGN the mean PSNR
    agrees within 0.1 dB (the noise's share of the paired difference is ~0.01 dB). Under block
    fading and over OFDM TDL-A with LS estimation each image draws its own channel, so the two
    means differ by the fading draws' Monte Carlo error: held within the 95% interval of the
    difference, sqrt(ci_tf^2 + ci_torch^2)."""
    from conftest import SHARED_DATA

    if not (SHARED_DATA / "cifar10" / "test").is_dir():
        pytest.skip(f"CIFAR-10 test images not found in {SHARED_DATA}")
    ref = _reference_tool("jscc_psnr_reference")
    stored = json.loads((Path(__file__).parent / "reference" / "jscc_psnr_sionna-tf.json").read_text())
    assert stored["backend"] == "sionna-tf" and stored["codec"] == ref.CODEC and stored["n_images"] == ref.N_IMAGES
    for tf_cell, cell in zip(stored["cells"], ref.run_cells(), strict=True):
        assert (tf_cell["channel"], tf_cell["snr_db"]) == (cell["channel"], cell["snr_db"])
        diff = abs(cell["psnr_mean"] - tf_cell["psnr_mean"])
        if cell["channel"] == "awgn":
            assert diff < 0.1, (tf_cell, cell)
        else:
            assert diff < np.hypot(tf_cell["psnr_ci95"], cell["psnr_ci95"]), (tf_cell, cell)


def test_deepjscc_trained_on_torch_scores_the_same_on_tf(tmp_path):
    """The other direction: ``singlink --phy sionna-torch train-jscc`` (a small codec, 150 steps
    through Sionna 2's AWGN), scored over AWGN on 500 CIFAR-10 test images here and, by
    tools/jscc_psnr_reference.py run in .venv, on sionna-tf: mean PSNR within 0.1 dB."""
    from conftest import REPO, SHARED_DATA

    tf_python = REPO / ".venv" / "bin" / "python"
    if not (SHARED_DATA / "cifar10" / "test").is_dir() or not tf_python.exists():
        pytest.skip("needs CIFAR-10 in ../shared/data and the sionna-tf venv .venv (tools/bootstrap)")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "singlink", "--phy", "sionna-torch", "train-jscc", "--rho", "1/48",
                          "--steps", "150", "--batch", "32", "--channels", "16", "--val-every", "150",
                          "--train-images", "2000", "--val-images", "64", "--warmup", "20", "--threads", "1",
                          "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["version"]["phy_backend"] == "sionna-torch"
    codec = str(tmp_path / "run" / "model")
    ref = _reference_tool("jscc_psnr_reference")
    here = ref.run_cells(codec, [c for c in ref.CELLS if c[0] == "awgn"])
    on_tf = subprocess.run([str(tf_python), str(REPO / "tools" / "jscc_psnr_reference.py"), "--codec", codec,
                            "--awgn-only"], capture_output=True, text=True, timeout=900,
                           env={**env, "SINGLINK_PHY": "sionna-tf"})
    assert on_tf.returncode == 0, on_tf.stderr[-2000:]
    stored = json.loads(on_tf.stdout)
    assert stored["backend"] == "sionna-tf"
    for tf_cell, cell in zip(stored["cells"], here, strict=True):
        assert abs(cell["psnr_mean"] - tf_cell["psnr_mean"]) < 0.1, (tf_cell, cell)


@pytest.mark.parametrize("channel", ["awgn", "rayleigh-block"])
def test_deepjscc_trains_through_the_torch_channel(channel, jscc):
    """train-jscc's ChannelLink on this backend: Sionna 2's channel is a torch block (phy.as_torch
    returns it), so the encoder's gradient comes from torch's own autograd, with no bridge."""
    from singlink.jscc.train import ChannelLink

    link = ChannelLink(channel, jscc.config.power)
    assert isinstance(link.channel, phy.RayleighBlockFadingChannel if channel != "awgn" else phy.AWGNChannel)
    x = torch.rand(4, 3, 32, 32)
    snr = torch.full((4,), 5.0)
    phy.set_seed(0)
    y, snr_eff = link(jscc.encode(x, snr), snr)
    torch.mean((jscc.decode(y, snr_eff) - x) ** 2).backward()
    grads = [p.grad for p in jscc.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    jscc.zero_grad(set_to_none=True)


def test_higher_order_qam_and_codewords_per_row():
    cfg = phy.DigitalLinkConfig(k=240, n=480, modulation="16qam")
    low, high = (estimate(cfg, e, batch=100, batches=1) for e in (0.0, 14.0))
    assert low.bler > 0.5 and high.bler == 0
    link = phy.DigitalLink(phy.DigitalLinkConfig(k=100, n=200, modulation="qpsk"), num_blocks=3)
    bits, bits_hat = link(5, 20.0)
    assert bits.shape == (5, 3, 100) and link.channel_uses == 300 and torch.equal(bits, bits_hat)


def test_count_errors_tallies_bits_and_blocks():
    bits = torch.tensor([[[0, 1, 1, 0]], [[1, 1, 1, 1]], [[0, 0, 0, 0]]], dtype=torch.float32)
    flips = torch.tensor([[[0, 1, 1, 0]], [[0, 0, 0, 0]], [[1, 0, 0, 0]]], dtype=torch.float32)
    assert phy.count_errors(lambda: (bits, (bits - flips).abs()), 2) == (2 * 3, 2 * 12, 2 * 2, 2 * 3)


def test_bad_inputs():
    z = phy.normalize_power(random_rows(4, 10))
    with pytest.raises(TypeError, match="complex"):
        phy.AWGNChannel()(torch.ones(4, 10), 0.0)
    with pytest.raises(ValueError, match="shape \\(N, k\\)"):
        phy.AWGNChannel()(torch.ones(4, 10, 2, dtype=torch.complex64), 0.0)
    with pytest.raises(ValueError, match="3 values but the batch has 4"):
        phy.AWGNChannel()(z, torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="snr_db must be a number"):
        phy.AWGNChannel()(z, float("nan"))
    with pytest.raises(ValueError, match="unknown channel"):
        phy.make_channel("rician")
    with pytest.raises(ValueError, match="unknown OFDM channel model"):
        phy.make_channel("ofdm-tdl-z")
    with pytest.raises(ValueError, match="power"):
        phy.AWGNChannel(power=0)
    with pytest.raises(ValueError, match="equalizer"):
        phy.equalize(z, torch.ones(4, 1, dtype=torch.complex64), 0.0, "ml")
    with pytest.raises(ValueError, match="unknown modulation"):
        phy.DigitalLink(phy.DigitalLinkConfig(modulation="8psk"))
    with pytest.raises(ValueError, match="0 < k < n"):
        phy.DigitalLink(phy.DigitalLinkConfig(k=600, n=500))


def test_link_command_runs_on_the_torch_backend_and_records_it(tmp_path):
    out = subprocess.run([sys.executable, "-m", "singlink", "--phy", "sionna-torch", "link", "--no-xla",
                          "--ebno", "4", "--batch", "20", "--max-batches", "1", "--k", "64", "--n", "128",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["version"]["phy_backend"] == "sionna-torch"
    assert results["version"]["sionna"] == "2.2.0"
    assert {(link["channel"], link["coded"]) for link in results["links"]} == {
        ("awgn", False), ("awgn", True), ("rayleigh-block", False), ("rayleigh-block", True)}


SWEEP = """
methods = ["deepjscc", "sing-zero"]
dataset = "cifar10"
rho = ["1/192"]
snr = [-5, 5]
channel = ["awgn", "rayleigh-block"]
images = 4
batch = 2
steps = 3
examples = 1
"""


def test_sweep_runs_on_the_torch_backend_in_process_and_on_ray(tmp_path):
    """``singlink --phy sionna-torch sweep``: DeepJSCC and SING-Zero rows over AWGN and block fading,
    the same rows in-process and on a local Ray cluster (same seeds, bit-identical on CPU), the
    store recording the backend (the separation baselines are tests/test_baselines.py's, run on
    this backend too by make test-sionna2)."""
    from conftest import SHARED_DATA

    from singlink.sweep import ResultStore

    if not (SHARED_DATA / "cifar10" / "test").is_dir():
        pytest.skip(f"CIFAR-10 test images not found in {SHARED_DATA}")
    config = tmp_path / "grid.toml"
    config.write_text(SWEEP)

    def sweep(out, *extra):
        return subprocess.run([sys.executable, "-m", "singlink", "--phy", "sionna-torch", "sweep", "--config",
                               str(config), "--out", str(tmp_path / out), *extra], capture_output=True, text=True,
                              timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})

    def rows(out):
        return [{k: v for k, v in r.items() if k not in ("wall_s", "run_id")} for r in ResultStore(tmp_path / out).rows()]

    local, on_ray = sweep("local"), sweep("ray", "--ray", "local", "--workers", "2")
    assert local.returncode == 0, local.stderr[-2000:]
    assert on_ray.returncode == 0, on_ray.stderr[-2000:]
    assert len(rows("local")) == 2 * 2 * 2 * 4 and rows("local") == rows("ray")
    assert (tmp_path / "local" / "summary.csv").read_text() == (tmp_path / "ray" / "summary.csv").read_text()
    series = ResultStore(tmp_path / "local").latest_series()
    assert series["identity"]["phy"] == {"backend": "sionna-torch", "sionna": "2.2.0"}

