"""Power normalisation, channels and equalisation against their definitions."""
import numpy as np
import pytest
import tensorflow as tf
import torch

from singlink import phy


def random_rows(n, k, seed=0, dtype=tf.complex64):
    g = tf.random.Generator.from_seed(seed)
    z = tf.complex(g.normal([n, k]), g.normal([n, k]))
    return tf.cast(z, dtype)


@pytest.mark.parametrize("power", [1.0, 2.5])
def test_power_normalisation_per_example_tf_and_torch(power):
    z = random_rows(8, 300) * tf.cast(tf.range(1, 9, dtype=tf.float32)[:, None], tf.complex64)
    out = phy.normalize_power(z, power)
    np.testing.assert_allclose(tf.reduce_mean(tf.abs(out) ** 2, -1).numpy(), power, rtol=1e-5)
    zt = torch.from_numpy(z.numpy())
    out_t = phy.normalize_power(zt, power)
    np.testing.assert_allclose((out_t.abs() ** 2).mean(-1).numpy(), power, rtol=1e-5)
    # per example, never over the batch: scaling one row leaves the others unchanged
    z2 = tf.concat([z[:1] * 100, z[1:]], 0)
    np.testing.assert_allclose(phy.normalize_power(z2, power)[1:].numpy(), out[1:].numpy(), rtol=1e-5)


@pytest.mark.parametrize("channel", ["awgn", "rayleigh-block", "rayleigh-fast"])
def test_measured_snr_matches_requested(channel):
    phy.set_seed(1)
    n, k, power = 16, 8192, 1.0
    z = phy.normalize_power(random_rows(n, k))
    snr_db = tf.constant(np.linspace(-5, 15, n), tf.float32)
    y, h = phy.make_channel(channel)(z, snr_db)
    noise = (y - h * z).numpy()
    sigma2 = power / 10 ** (snr_db.numpy() / 10)
    # mean of k i.i.d. |n|^2 ~ sigma^2 * Exp(1): relative std 1/sqrt(k); allow 6 sigma
    est = np.mean(np.abs(noise) ** 2, axis=1)
    assert np.all(np.abs(est / sigma2 - 1) < 6 / np.sqrt(k))
    # circular: sigma^2/2 per real dimension
    for part in (noise.real, noise.imag):
        assert np.all(np.abs(np.mean(part**2, 1) / (sigma2 / 2) - 1) < 6 * np.sqrt(2 / k))


def test_scalar_snr_broadcasts_and_h_shapes():
    z = phy.normalize_power(random_rows(4, 10))
    assert phy.AWGNChannel()(z, 3.0)[1].shape == (4, 1)
    assert np.all(phy.AWGNChannel()(z, 3.0)[1].numpy() == 1)
    assert phy.RayleighBlockFadingChannel()(z, 3.0)[1].shape == (4, 1)
    assert phy.RayleighFastFadingChannel()(z, 3.0)[1].shape == (4, 10)


def test_rayleigh_gain_is_unit_variance_circular():
    phy.set_seed(2)
    _, h = phy.RayleighFastFadingChannel()(tf.zeros([200, 1000], tf.complex64), 10.0)
    h = h.numpy().ravel()
    assert abs(np.mean(np.abs(h) ** 2) - 1) < 6 / np.sqrt(h.size)
    assert abs(np.mean(h.real * h.imag)) < 6 / np.sqrt(h.size)


def test_equalizers():
    phy.set_seed(3)
    z = phy.normalize_power(random_rows(64, 2048))
    y, h = phy.RayleighBlockFadingChannel()(z, 10.0)
    z_zf, no_zf = phy.equalize(y, h, 10.0, "zf")
    err = np.mean(np.abs((z_zf - z).numpy()) ** 2, 1)
    np.testing.assert_allclose(err, no_zf.numpy().ravel(), rtol=6 / np.sqrt(2048))
    z_mmse, mse = phy.equalize(y, h, 10.0, "mmse")
    err_m = np.mean(np.abs((z_mmse - z).numpy()) ** 2, 1)
    np.testing.assert_allclose(err_m, mse.numpy().ravel(), rtol=6 / np.sqrt(2048))
    assert np.all(err_m <= err * (1 + 6 / np.sqrt(2048)))


def test_reseeding_reproduces_draws_bit_for_bit():
    z = phy.normalize_power(random_rows(3, 50))
    ch = phy.RayleighBlockFadingChannel()
    phy.set_seed(7)
    a = ch(z, 0.0)
    phy.set_seed(7)
    b = ch(z, 0.0)
    assert all(np.array_equal(u.numpy(), v.numpy()) for u, v in zip(a, b))


def test_capacity_and_outage_values():
    np.testing.assert_allclose(phy.awgn_capacity([0.0, 10 * np.log10(3), 10 * np.log10(15)]), [1, 2, 4])
    np.testing.assert_allclose(phy.rayleigh_outage_probability(1.0, 0.0), 1 - np.exp(-1))
    np.testing.assert_allclose(phy.rayleigh_outage_probability(2.0, 10 * np.log10(3)), 1 - np.exp(-1))
    # against Sionna's fading draws: Pr[log2(1 + |h|^2 SNR) < R]
    phy.set_seed(4)
    _, h = phy.RayleighBlockFadingChannel()(tf.zeros([200000, 1], tf.complex64), 0.0)
    rate, snr = 1.5, 10 ** 0.5
    mc = np.mean(np.log2(1 + np.abs(h.numpy()) ** 2 * snr) < rate)
    p = phy.rayleigh_outage_probability(rate, 5.0)
    assert abs(mc - p) < 6 * np.sqrt(p * (1 - p) / 200000)


@pytest.mark.parametrize("rho,shape,k", [("1/192", (3, 32, 32), 16), (1 / 48, (3, 32, 32), 64),
                                         (0.0052083333333333, (3, 32, 32), 16), ("1/6", (3, 32, 32), 512)])
def test_bandwidth_ratio(rho, shape, k):
    assert phy.num_channel_symbols(rho, shape) == k


@pytest.mark.parametrize("rho", ["1/7", 0.001, 0, -0.5, "abc"])
def test_bandwidth_ratio_rejects_non_integer_k(rho):
    with pytest.raises(ValueError, match="rho"):
        phy.num_channel_symbols(rho, (3, 32, 32))


def test_channel_bad_inputs():
    z = phy.normalize_power(random_rows(4, 10))
    with pytest.raises(TypeError, match="complex"):
        phy.AWGNChannel()(tf.ones([4, 10]), 0.0)
    with pytest.raises(ValueError, match="shape \\(N, k\\)"):
        phy.AWGNChannel()(tf.ones([4, 10, 2], tf.complex64), 0.0)
    with pytest.raises(ValueError, match="3 values but the batch has 4"):
        phy.AWGNChannel()(z, tf.constant([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="unknown channel"):
        phy.make_channel("rician")
    with pytest.raises(ValueError, match="power"):
        phy.AWGNChannel(power=0)
    with pytest.raises(ValueError, match="power"):
        phy.normalize_power(z, -1)
    with pytest.raises(ValueError, match="equalizer"):
        phy.equalize(z, tf.ones([4, 1], tf.complex64), 0.0, "ml")
