"""Digital chain error rates against closed forms (uncoded) and a known LDPC operating point."""
import numpy as np
import pytest
from scipy.special import erfc

from singlink import phy


def q(x):
    return 0.5 * erfc(x / np.sqrt(2))


def estimate(cfg, ebno_db, batch, batches, seed=0):
    phy.set_seed(seed)
    runner = phy.MonteCarloRunner(phy.DigitalLink(cfg), batch, target_block_errors=None, max_trials=batches)
    return runner.run_point(float(phy.ebno_db_to_snr_db(ebno_db, cfg.modulation, cfg.coderate)))


@pytest.mark.parametrize("modulation", ["bpsk", "qpsk"])
@pytest.mark.parametrize("ebno_db", [0.0, 4.0, 6.0])
def test_uncoded_awgn_ber_matches_q_function(modulation, ebno_db):
    cfg = phy.DigitalLinkConfig(k=1000, modulation=modulation, coded=False)
    est = estimate(cfg, ebno_db, batch=500, batches=2)
    theory = q(np.sqrt(2 * 10 ** (ebno_db / 10)))
    # bits are independent here: binomial standard deviation, 5 sigma
    assert abs(est.ber - theory) < 5 * np.sqrt(theory / est.bits)
    assert est.ber_ci95[0] <= est.ber <= est.ber_ci95[1]


@pytest.mark.parametrize("ebno_db", [0.0, 10.0])
def test_uncoded_bpsk_rayleigh_block_fading_matches_closed_form(ebno_db):
    g = 10 ** (ebno_db / 10)
    theory = 0.5 * (1 - np.sqrt(g / (1 + g)))
    cfg = phy.DigitalLinkConfig(k=32, modulation="bpsk", coded=False, channel="rayleigh-block")
    est = estimate(cfg, ebno_db, batch=20000, batches=2)
    # rows share one gain: the interval treats rows (blocks) as the sampling unit
    half = (est.ber_ci95[1] - est.ber_ci95[0]) / 2
    assert abs(est.ber - theory) < 2.5 * half


def test_ldpc_qpsk_ber_below_1e4_at_3db():
    cfg = phy.DigitalLinkConfig(k=512, n=1024, modulation="qpsk", num_iter=20)
    est = estimate(cfg, 3.0, batch=1000, batches=3)
    assert est.bits == 3 * 1000 * 512
    assert est.ber < 1e-4


@pytest.mark.parametrize("modulation", ["16qam", "64qam"])
def test_higher_order_qam_runs_and_improves_with_snr(modulation):
    cfg = phy.DigitalLinkConfig(k=240, n=480, modulation=modulation)
    low, high = (estimate(cfg, e, batch=100, batches=1) for e in (0.0, 14.0))
    assert low.bler > 0.5 and high.bler == 0


def test_multiple_codewords_per_row_share_the_row():
    link = phy.DigitalLink(phy.DigitalLinkConfig(k=100, n=200, modulation="qpsk"), num_blocks=3)
    bits, bits_hat = link(5, 20.0)
    assert bits.shape == (5, 3, 100) and link.channel_uses == 300
    assert np.array_equal(bits.numpy(), bits_hat.numpy())


def test_clopper_pearson():
    lo, hi = phy.clopper_pearson(0, 100)
    assert lo == 0 and abs(hi - (1 - 0.025 ** (1 / 100))) < 1e-12
    lo, hi = phy.clopper_pearson(50, 100)
    assert lo < 0.5 < hi


def test_digital_bad_inputs():
    with pytest.raises(ValueError, match="unknown modulation"):
        phy.DigitalLink(phy.DigitalLinkConfig(modulation="8psk"))
    with pytest.raises(ValueError, match="divisible by 6"):
        phy.DigitalLink(phy.DigitalLinkConfig(k=500, n=1000, modulation="64qam"))
    with pytest.raises(ValueError, match="0 < k < n"):
        phy.DigitalLink(phy.DigitalLinkConfig(k=600, n=500))


def test_count_errors_tallies_bits_and_blocks_of_a_hand_written_loop():
    import tensorflow as tf

    bits = tf.constant([[[0, 1, 1, 0]], [[1, 1, 1, 1]], [[0, 0, 0, 0]]], tf.float32)   # (3, 1, 4): OFDM-like rows
    flips = tf.constant([[[0, 1, 1, 0]], [[0, 0, 0, 0]], [[1, 0, 0, 0]]], tf.float32)
    calls = []

    def step():
        calls.append(1)
        return bits, tf.abs(bits - flips)

    assert phy.count_errors(step, 2) == (2 * 3, 2 * 12, 2 * 2, 2 * 3) and len(calls) == 2
