"""OFDM over 3GPP channels (phy/ofdm.py) against theory: the AWGN limit, LS error variance,
Rayleigh BER per resource element, estimated vs perfect CSI, gradients, and bad input."""
import numpy as np
import pytest
import tensorflow as tf
import torch
from scipy import stats

from singlink import phy


def qpsk_rows(n, k, seed=0, dtype=tf.complex64):
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, size=(n, k, 2))
    z = ((1 - 2 * bits[..., 0]) + 1j * (1 - 2 * bits[..., 1])) / np.sqrt(2)
    return tf.constant(z.astype(np.complex128), dtype)


def rayleigh_qpsk_ber(snr_db):
    """Uncoded Gray QPSK over CN(0,1) fading, coherent detection: per bit Eb/N0 = Es/N0 / 2."""
    g = 10 ** (np.asarray(snr_db) / 10) / 2
    return 0.5 * (1 - np.sqrt(g / (1 + g)))


def uncoded_ber(spec, snr_db, rows=400, seed=0):
    """BER of uncoded QPSK through the OFDM channel, hard decisions on the equalised symbols."""
    k = 864
    phy.set_seed(seed)
    z = qpsk_rows(rows, k, seed)
    y, _ = phy.make_channel(spec)(z, snr_db)
    z, y = z.numpy(), y.numpy()
    errors = np.sum(np.sign(y.real) != np.sign(z.real)) + np.sum(np.sign(y.imag) != np.sign(z.imag))
    return errors / (2 * z.size)


# --- specs and bad input ---------------------------------------------------------------------------

def test_spec_canonical_names_and_options():
    s = phy.parse_spec("ofdm-tdl-c:speed=3:delay_spread=300ns:csi=ls")
    assert (s.model, s.delay_spread, s.speed, s.csi) == ("tdl-c", pytest.approx(300e-9), 3.0, "ls")
    assert s.name == "ofdm-tdl-c:delay_spread=3e-07:speed=3:csi=ls"
    assert phy.parse_spec(s.name) == s
    assert phy.parse_spec("ofdm-tdl-a").name == "ofdm-tdl-a"  # defaults are dropped
    assert phy.parse_spec("ofdm-tdl-c:speed=3:csi=ls:eq=zf").draw_name == "ofdm-tdl-c:speed=3"
    assert phy.parse_spec("ofdm-tdl-a:pilots=2+7+11:guard=4+3:dc=1").pilots == (2, 7, 11)
    ch = phy.make_channel("ofdm-tdl-a:guard=4+3:dc=1")
    o = ch.overhead(100)
    assert o["resource_elements_per_slot"] == o["data_re_per_slot"] + o["pilot_re_per_slot"] + o["nulled_re_per_slot"]
    assert (o["nulled_re_per_slot"], o["pilot_re_per_slot"]) == (8 * 14, 2 * 64)
    assert o["slots_per_image"] == 1 and o["padding_re"] == o["data_re_per_slot"] - 100
    assert ch.equalized and not getattr(phy.make_channel("awgn"), "equalized", False)


@pytest.mark.parametrize("spec, match", [
    ("ofdm-tdl-f", "unknown OFDM channel model 'tdl-f'"),
    ("ofdm-tdl-a:delay_spread=-1e-7", "delay_spread must be >= 0"),
    ("ofdm-tdl-a:speed=-3", "speed must be >= 0"),
    ("ofdm-tdl-a:csi=mmse", "csi must be one of perfect, ls"),
    ("ofdm-tdl-a:colour=red", "bad option 'colour=red'"),
    ("ofdm-tdl-a:fft=lots", "bad value 'lots' for fft"),
    ("ofdm-tdl-a:pilots=2+20", "pilots must be distinct"),
    ("ofdm-awgn:delay_spread=3e-7", "one-tap unit channel"),
])
def test_bad_specs_give_one_line(spec, match):
    with pytest.raises(ValueError, match=match) as e:
        phy.make_channel(spec)
    assert "\n" not in str(e.value)


def test_k_larger_than_a_slot_spans_or_fails_in_one_line():
    ch = phy.make_channel("ofdm-tdl-a")
    y, no = ch(qpsk_rows(2, 2000), 10.0)
    assert y.shape == no.shape == (2, 2000) and ch.overhead(2000)["slots_per_image"] == 3
    y, no = phy.make_channel("ofdm-cdl-c:speed=3:csi=ls")(qpsk_rows(2, 100), 10.0)  # single-antenna CDL
    assert y.shape == no.shape == (2, 100) and np.all(no.numpy() > 0)
    with pytest.raises(ValueError, match="do not fit one slot .* span=0") as e:
        phy.make_channel("ofdm-tdl-a:span=0")(qpsk_rows(2, 865), 10.0)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="do not fit one slot"):  # the digital link checks at construction
        phy.OFDMDigitalLink(phy.DigitalLinkConfig(k=900, n=1800, channel="ofdm-tdl-a:span=0"))


def test_flat_channel_callers_fail_clearly():
    y, no_eff = phy.make_channel("ofdm-tdl-a")(qpsk_rows(2, 16), 5.0)
    assert no_eff.dtype == tf.float32
    with pytest.raises(TypeError, match="OFDM channel"):
        phy.equalize(y, no_eff, 5.0)
    link = phy.DigitalLink(phy.DigitalLinkConfig(k=32, n=64, channel="ofdm-awgn"))
    with pytest.raises(TypeError, match="OFDM channel"):
        link(2, 5.0)


# --- theory ------------------------------------------------------------------------------------------

def test_one_tap_unit_channel_with_perfect_csi_is_awgn():
    """ofdm-awgn, perfect CSI: y = z + n with n ~ CN(0, sigma^2), sigma^2 = P/10^(SNR/10) per row,
    and the receiver is told exactly that: the flat AWGN channel, in distribution."""
    phy.set_seed(3)
    n, k, power = 12, 4000, 2.0
    snr = np.linspace(-5, 15, n).astype(np.float32)
    z = qpsk_rows(n, k) * np.sqrt(power)
    y, no_eff = phy.make_channel("ofdm-awgn", power=power)(z, tf.constant(snr))
    sigma2 = power / 10 ** (snr / 10)
    np.testing.assert_allclose(no_eff.numpy(), np.broadcast_to(sigma2[:, None], (n, k)), rtol=1e-5)
    np.testing.assert_allclose(phy.effective_snr_db(no_eff, power).numpy(), snr, atol=1e-4)
    noise = (y - z).numpy() / np.sqrt(sigma2[:, None] / 2)  # should be i.i.d. N(0,1) per real dimension
    flat_y, _ = phy.AWGNChannel(power=power)(z, tf.constant(snr))
    flat = (flat_y - z).numpy() / np.sqrt(sigma2[:, None] / 2)
    for part in (noise.real.ravel(), noise.imag.ravel()):
        assert stats.kstest(part, "norm").pvalue > 1e-3
    assert stats.ks_2samp(np.concatenate([noise.real.ravel(), noise.imag.ravel()]),
                          np.concatenate([flat.real.ravel(), flat.imag.ravel()])).pvalue > 1e-3
    assert abs(np.mean(noise.real * noise.imag)) < 6 / np.sqrt(noise.size)
    per_row = np.mean(np.abs(noise) ** 2, axis=1) / 2
    assert np.all(np.abs(per_row - 1) < 6 / np.sqrt(k))


@pytest.mark.parametrize("snr_db", [0.0, 10.0])
def test_ls_error_variance_at_pilots_is_sigma2_over_pilot_power(snr_db):
    """LS at a pilot RE: h_ls = y/p = h + n/p, error variance sigma^2/|p|^2 = sigma^2 (unit-power QPSK
    pilots); Sionna reports that variance, and the empirical one matches it."""
    phy.set_seed(4)
    ch = phy.make_channel("ofdm-tdl-c:csi=ls:interp=nn")
    out = ch.transmit(qpsk_rows(300, 864), snr_db)
    pilots = list(ch.spec.pilots)
    err = (out["h_hat"].numpy() - out["h"].numpy())[..., pilots, :].ravel()
    sigma2 = 10 ** (-snr_db / 10)
    np.testing.assert_allclose(np.abs(ch.resource_grid.pilot_pattern.pilots.numpy()) ** 2, 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.broadcast_to(out["err_var"].numpy(), out["h"].shape)[..., pilots, :], sigma2,
                               rtol=1e-5)
    assert abs(np.mean(np.abs(err) ** 2) / sigma2 - 1) < 6 / np.sqrt(err.size)
    assert abs(np.mean(err)) < 6 * np.sqrt(sigma2 / err.size)  # unbiased


@pytest.mark.parametrize("spec", ["ofdm-tdl-a", "ofdm-tdl-c:delay_spread=300e-9:speed=30:eq=zf"])
def test_uncoded_qpsk_over_tdl_with_perfect_csi_matches_rayleigh_closed_form(spec):
    """Per RE, H of a Rayleigh TDL is CN(0, 1) (unit average power), and one-tap equalisation with
    perfect CSI gives the Rayleigh-fading BER of QPSK, 0.5 (1 - sqrt(g/(1+g))), g = Es/N0 / 2."""
    for snr_db in (0.0, 10.0):
        ber = uncoded_ber(spec, snr_db)
        theory = rayleigh_qpsk_ber(snr_db)
        # REs of one slot are correlated: the tolerance allows for ~400 x 2 independent looks
        assert abs(ber / theory - 1) < 0.1, (spec, snr_db, ber, theory)
    phy.set_seed(1)
    out = phy.make_channel(spec).transmit(qpsk_rows(400, 864), 10.0)
    h = out["h_data"].numpy()
    assert abs(np.mean(np.abs(h) ** 2) - 1) < 0.05                 # unit average power
    np.testing.assert_allclose(out["no_eff"].numpy(), 0.1 / np.abs(h) ** 2, rtol=1e-4)  # sigma^2/|H|^2


def test_estimated_csi_is_never_better_than_perfect_csi():
    """Same channel and noise draw (same seed), only the receiver's CSI differs."""
    for snr_db in (0.0, 10.0, 20.0):
        perfect = uncoded_ber("ofdm-tdl-a:speed=10", snr_db, rows=200, seed=5)
        ls = uncoded_ber("ofdm-tdl-a:speed=10:csi=ls", snr_db, rows=200, seed=5)
        assert ls >= perfect - 3 * np.sqrt(perfect / (2 * 200 * 864)), (snr_db, ls, perfect)
    # and LS costs something at low SNR (noisy estimates), little at high SNR
    assert uncoded_ber("ofdm-tdl-a:csi=ls", 0.0, rows=200) > 1.1 * uncoded_ber("ofdm-tdl-a", 0.0, rows=200)


def test_generate_gives_the_draw_a_transmission_would_make():
    """DeepJSCC and the digital baseline can share one channel draw (same seed or explicit h_freq)."""
    ch = phy.make_channel("ofdm-tdl-b:speed=5")
    phy.set_seed(9)
    h = ch.generate(3, 100)
    phy.set_seed(9)
    out = ch.transmit(qpsk_rows(3, 100), 5.0)
    np.testing.assert_array_equal(out["h"].numpy(), h.numpy())
    y1, _ = ch(qpsk_rows(3, 100), 30.0, h_freq=h)
    y2, _ = ch(qpsk_rows(3, 100), 30.0, h_freq=h)
    assert np.mean(np.abs(y1.numpy() - y2.numpy()) ** 2) < 0.05  # only the noise differs


@pytest.mark.parametrize("spec", ["ofdm-tdl-a:speed=10", "ofdm-tdl-c:csi=ls:eq=zf"])
def test_gradcheck_through_the_ofdm_channel(spec):
    block = phy.make_channel(spec, precision="double")

    def fn(z, snr_db):
        phy.set_seed(3)
        return block(z, snr_db)

    module = phy.TFModule(fn)
    z = torch.randn(2, 6, dtype=torch.complex128, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: module(z, 4.0), (z,), fast_mode=True)


def test_coded_link_over_ofdm_decodes_at_high_snr_and_pads_to_the_budget():
    link = phy.OFDMDigitalLink(phy.DigitalLinkConfig(k=256, n=512, modulation="qpsk", channel="ofdm-tdl-a:csi=ls"),
                               num_blocks=2, channel_uses=600)
    phy.set_seed(0)
    bits, bits_hat = link(8, 25.0)
    assert bits.shape == (8, 2, 256)
    assert np.mean(bits.numpy() != bits_hat.numpy()) < 1e-3
    with pytest.raises(ValueError, match="more than channel_uses"):
        phy.OFDMDigitalLink(phy.DigitalLinkConfig(k=256, n=512, channel="ofdm-awgn"), channel_uses=100)


# --- receiver, baselines, sweep ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cifar16():
    from singlink.data import dataset_by_name, load_batch

    return load_batch(dataset_by_name("cifar10", "test"), range(16))[0]


def test_receiver_decodes_equalised_symbols_and_refuses_them_as_h(one_thread):
    from singlink.errors import UsageError
    from singlink.jscc.model import DeepJSCC, DeepJSCCConfig
    from singlink.receiver import Receiver

    torch.manual_seed(0)
    rx = Receiver(DeepJSCC(DeepJSCCConfig(k=64, channels=8)).eval(), "deepjscc")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        z = rx.jscc.encode(x, 3.0)
    phy.set_seed(0)
    y, no_eff = phy.TFModule(phy.make_channel("ofdm-awgn"))(z, 3.0)
    # one-tap unit channel, perfect CSI: the decoder input is the AWGN one, at the nominal SNR
    torch.testing.assert_close(rx.decode(y, 3.0, no_eff=no_eff), rx.decode(y, 3.0), atol=1e-5, rtol=0)
    y, no_eff = phy.TFModule(phy.make_channel("ofdm-tdl-a:csi=ls"))(z, 3.0)
    assert rx.decode(y, 3.0, no_eff=no_eff).shape == x.shape
    with pytest.raises(UsageError, match="OFDM channel"):
        rx.decode(y, 3.0, h=no_eff)


def test_estimated_csi_never_beats_perfect_csi_in_psnr(cifar16, one_thread):
    from singlink.jscc.model import DeepJSCC
    from singlink.metrics import psnr
    from singlink.receiver import Receiver

    rx = Receiver(DeepJSCC.from_pretrained("deepjscc-cifar10-rho1_6"), "deepjscc")
    for snr_db in (0.0, 10.0):
        with torch.no_grad():
            z = rx.jscc.encode(cifar16, snr_db)
        scores = {}
        for csi in ("perfect", "ls"):
            phy.set_seed(7)  # same channel and noise draw
            y, no_eff = phy.TFModule(phy.make_channel(f"ofdm-tdl-c:delay_spread=300e-9:csi={csi}"))(z, snr_db)
            scores[csi] = psnr(rx.decode(y, snr_db, no_eff=no_eff), cifar16)
        diff = scores["ls"] - scores["perfect"]  # paired, per image
        assert float(diff.mean()) <= 2 * float(diff.std()) / 4, (snr_db, scores)


def test_baselines_share_deepjscc_channel_draw_and_capacity_ignores_the_estimator(cifar16):
    from singlink.baselines import SeparationBaseline
    from singlink.errors import UsageError

    mean = cifar16.mean(0)
    images = cifar16[:3]
    cap = SeparationBaseline("bpg-capacity", mean, 512)
    budgets = {csi: [r["budget_bits"] for r in cap.transmit(images, 10.0, f"ofdm-tdl-a:csi={csi}", seed=1,
                                                            channel_seed=42)[1]] for csi in ("perfect", "ls")}
    # the genie bound on DeepJSCC's draw: sum_j log2(1 + |H_j|^2 SNR) over the image's REs
    phy.set_seed(42)
    h = phy.make_channel("ofdm-tdl-a").transmit(tf.zeros([3, 512], tf.complex64), 10.0)["h_data"].numpy()
    expect = np.floor(np.log2(1 + 10 * np.abs(h) ** 2).sum(1)).astype(int).tolist()
    assert budgets["perfect"] == budgets["ls"] == expect
    ldpc = SeparationBaseline("bpg-ldpc", mean, 512, modulation="16qam", coderate=2 / 3)
    _, info = ldpc.transmit(images, 30.0, "ofdm-tdl-a:csi=ls", seed=0, channel_seed=3)
    assert [r["status"] for r in info] == ["ok"] * 3 and all(r["symbols_used"] <= 512 for r in info)
    with pytest.raises(UsageError, match="do not fit one slot"):
        SeparationBaseline("bpg-capacity", mean, 1024).transmit(images, 10.0, "ofdm-tdl-a:span=0")


def test_sweep_config_takes_ofdm_specs_in_canonical_form():
    from singlink.errors import UsageError
    from singlink.sweep.config import build_config

    cfg = build_config("ofdm")
    assert any("csi=ls" in c for c in cfg.channel) and any("csi" not in c for c in cfg.channel)
    cfg = build_config(None, None, {"channel": "awgn,ofdm-tdl-c:csi=ls:delay_spread=300ns", "methods": "deepjscc", "dataset": "cifar10"})
    assert cfg.channel == ("awgn", "ofdm-tdl-c:delay_spread=3e-07:csi=ls")
    with pytest.raises(UsageError, match="unknown OFDM channel model"):
        build_config(None, None, {"channel": "ofdm-tdl-z", "methods": "deepjscc", "dataset": "cifar10"})
    with pytest.raises(UsageError, match="rho 1/6: k = 512 .* span=0"):
        build_config(None, None, {"channel": "ofdm-tdl-a:symbols=4:pilots=1:span=0", "methods": "deepjscc",
                                  "rho": "1/6", "dataset": "cifar10"})


def test_sweep_over_ofdm_pairs_deepjscc_and_the_baselines_on_one_draw(tmp_path, capsys):
    from singlink.cli import main
    from singlink.sweep import ResultStore

    config = tmp_path / "ofdm.toml"
    config.write_text('methods = ["deepjscc", "bpg-capacity"]\ndataset = "cifar10"\nrho = ["1/6"]\nsnr = [10]\nimages = 2\nbatch = 2\n'
                      'mean_images = 50\nexamples = 1\nchannel = ["ofdm-tdl-a", "ofdm-tdl-a:csi=ls"]\n')
    assert main(["sweep", "--config", str(config), "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    rows = {(r["method"], r["channel"], r["image_id"]): r for r in ResultStore(tmp_path / "out").rows()}
    assert len(rows) == 2 * 2 * 2 and all(r["channel_uses"] == 512 for r in rows.values())
    for i in range(2):  # the genie capacity sees the channel DeepJSCC saw, whatever the receiver's CSI
        assert rows[("bpg-capacity", "ofdm-tdl-a", i)]["bits_sent"] == rows[("bpg-capacity", "ofdm-tdl-a:csi=ls", i)]["bits_sent"]
    assert (tmp_path / "out" / "examples_rho1_6_ofdm-tdl-a:csi=ls.png").is_file()


def test_the_link_is_sionnas_chain_bit_for_bit():
    """Full slots: the same seed gives exactly what a bare Sionna chain (ResourceGridMapper,
    OFDMChannel over TDL, LSChannelEstimator, LMMSEEqualizer) gives."""
    from sionna.phy.channel import OFDMChannel
    from sionna.phy.channel.tr38901 import TDL
    from sionna.phy.mimo import StreamManagement
    from sionna.phy.ofdm import LMMSEEqualizer, LSChannelEstimator, ResourceGrid, ResourceGridMapper

    rg = ResourceGrid(14, 72, 30e3, cyclic_prefix_length=5, pilot_pattern="kronecker", pilot_ofdm_symbol_indices=[2, 11])
    mapper, channel = ResourceGridMapper(rg), OFDMChannel(TDL("A", 100e-9, 3.5e9, min_speed=3.0), rg)
    est, eq = LSChannelEstimator(rg, interpolation_type="lin"), LMMSEEqualizer(rg, StreamManagement(np.ones([1, 1], int), 1))
    z, no = qpsk_rows(8, 864), tf.constant(10 ** -0.6, tf.float32)
    phy.set_seed(5)
    y, no_eff = phy.make_channel("ofdm-tdl-a:speed=3:csi=ls")(z, 6.0)
    phy.set_seed(5)
    grid = channel(mapper(tf.reshape(z, [8, 1, 1, 864])), no)
    h_hat, err_var = est(grid, no)
    y_ref, no_ref = eq(grid, h_hat, err_var, no)
    np.testing.assert_array_equal(y.numpy(), y_ref.numpy().reshape(8, 864))
    np.testing.assert_array_equal(no_eff.numpy(), no_ref.numpy().reshape(8, 864))


def test_lmmse_and_zf_agree_for_one_stream():
    """One stream: Sionna's unbiased LMMSE output is y/h_hat, as ZF's, and both add the estimation
    error variance to the noise: the same (y, no_eff) up to float rounding."""
    z = qpsk_rows(4, 864)
    out = {}
    for eq in ("lmmse", "zf"):
        phy.set_seed(1)
        out[eq] = [t.numpy() for t in phy.make_channel(f"ofdm-tdl-a:csi=ls:eq={eq}")(z, 5.0)]
    np.testing.assert_allclose(out["lmmse"][0], out["zf"][0], atol=1e-4)
    np.testing.assert_allclose(out["lmmse"][1], out["zf"][1], rtol=1e-3)
