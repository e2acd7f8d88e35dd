"""Channels for complex symbol rows: AWGN and Rayleigh (block or fast) flat fading.

Conventions (DESIGN.md): symbols ``z`` are complex (N, k), one row per image with average power
P per symbol; the SNR is given in dB, one value per row (a scalar broadcasts), and

.. math::  \\mathrm{SNR} = 10\\log_{10}(P/\\sigma^2)  \\qquad (\\text{SING paper, Eq. 8})

with noise :math:`\\mathcal{CN}(0, \\sigma^2)`, :math:`\\sigma^2/2` per real dimension.
Every channel returns ``(y, h)`` so callers need not know which channel they hold: ``h`` is the
complex gain known to the receiver (perfect CSI), broadcastable to ``y``: ones (N, 1) for AWGN,
(N, 1) for block fading (one gain per image), (N, k) for fast fading (one per symbol).

Noise and fading come from Sionna (:class:`sionna.phy.channel.AWGN`,
:class:`sionna.phy.channel.GenerateFlatFadingChannel`) and so from Sionna's seeded generator
(:func:`singlink.phy.set_seed`).
"""
import tensorflow as tf
from sionna.phy import Block
from sionna.phy.channel import AWGN, GenerateFlatFadingChannel

from .link_base import check_power


def snr_db_to_noise_var(snr_db, power=1.0, dtype=tf.float32):
    r"""Noise power per complex symbol :math:`\sigma^2 = P / 10^{\mathrm{SNR}/10}`."""
    snr_db = tf.cast(snr_db, dtype)
    return tf.cast(power, dtype) / tf.pow(tf.cast(10.0, dtype), snr_db / 10.0)


def _check_rows(z):
    if not z.dtype.is_complex:
        raise TypeError(f"channel input must be complex (N, k) symbols, got dtype {z.dtype.name}")
    if z.shape.rank is not None and z.shape.rank != 2:
        raise ValueError(f"channel input must have shape (N, k), one row per example; got {z.shape}")


def _row_noise_var(snr_db, z, power, rdtype):
    """sigma^2 as an (N, 1) column (or a scalar), validated against the batch size."""
    snr_db = tf.convert_to_tensor(snr_db)
    if snr_db.dtype.is_complex or not (snr_db.dtype.is_floating or snr_db.dtype.is_integer):
        raise TypeError(f"snr_db must be real (a scalar or one value per row), got {snr_db.dtype.name}")
    if snr_db.shape.rank is not None and snr_db.shape.rank > 1:
        raise ValueError(f"snr_db must be a scalar or shape (N,), got shape {snr_db.shape}")
    if tf.executing_eagerly() and snr_db.dtype.is_floating:
        bad = tf.math.is_nan(snr_db) | (snr_db == float("-inf"))
        if bool(tf.reduce_any(bad)):
            first = float(tf.boolean_mask(tf.reshape(snr_db, [-1]), tf.reshape(bad, [-1]))[0])
            raise ValueError(f"snr_db must be a number in dB or +inf (a noiseless channel), got {first}")
    no = snr_db_to_noise_var(snr_db, power, rdtype)
    if snr_db.shape.rank == 1:
        n, m = snr_db.shape[0], z.shape[0]
        if n is not None and m is not None and n != m:
            raise ValueError(f"snr_db has {n} values but the batch has {m} rows; give one SNR per row or a scalar")
        no = no[:, None]
    return no


class _FlatChannel(Block):
    """Shared body: y = h z + n with h drawn by :meth:`_gain` (identity for AWGN)."""

    def __init__(self, power: float = 1.0, *, precision=None, **kwargs):
        super().__init__(precision=precision, **kwargs)
        self.power = check_power(power)
        self._awgn = AWGN(precision=precision)

    def _gain(self, z):
        raise NotImplementedError

    def call(self, z, snr_db):
        _check_rows(z)
        no = _row_noise_var(snr_db, z, self.power, self.rdtype)
        h = self._gain(z)
        return self._awgn(h * z, no), h


class AWGNChannel(_FlatChannel):
    r"""Complex AWGN channel, :math:`\hat{\mathbf z} = \mathbf z + \mathbf n_C` (SING paper, Eq. 7).

    Input: ``z`` (N, k) complex, ``snr_db`` scalar or (N,). Output: ``(y, h)`` with ``y`` (N, k)
    and ``h`` = ones (N, 1).
    """

    def _gain(self, z):
        return tf.ones([tf.shape(z)[0], 1], self.cdtype)


class RayleighBlockFadingChannel(_FlatChannel):
    r"""Rayleigh block fading: :math:`\mathbf y = h\,\mathbf z + \mathbf n`, one
    :math:`h \sim \mathcal{CN}(0,1)` per row (image), constant over its k symbols.

    Output ``(y, h)`` with ``h`` (N, 1); the instantaneous SNR of row i is
    :math:`|h_i|^2 P/\sigma^2`.
    """

    def __init__(self, power: float = 1.0, *, precision=None, **kwargs):
        super().__init__(power, precision=precision, **kwargs)
        self._gen = GenerateFlatFadingChannel(1, 1, precision=precision)

    def _gain(self, z):
        return tf.reshape(self._gen(tf.shape(z)[0]), [-1, 1])


class RayleighFastFadingChannel(RayleighBlockFadingChannel):
    r"""Fast (i.i.d.) Rayleigh fading: an independent :math:`h_{i,j} \sim \mathcal{CN}(0,1)` per
    symbol. Output ``(y, h)`` with ``h`` (N, k)."""

    def _gain(self, z):
        return tf.reshape(self._gen(tf.size(z)), tf.shape(z))


CHANNELS = {
    "awgn": AWGNChannel,
    "rayleigh-block": RayleighBlockFadingChannel,
    "rayleigh-fast": RayleighFastFadingChannel,
}


def make_channel(name: str, **kwargs):
    """Channel by name: ``awgn``, ``rayleigh-block`` or ``rayleigh-fast`` (flat: return ``(y, h)``),
    or an OFDM spec ``ofdm-<model>[:key=value...]`` such as ``ofdm-tdl-c:delay_spread=300e-9:csi=ls``
    (:class:`singlink.phy.ofdm.OFDMLinkChannel`: returns ``(y_equalised, no_eff)``)."""
    if isinstance(name, str) and name.startswith("ofdm-"):
        from .ofdm import make_ofdm_channel

        return make_ofdm_channel(name, **kwargs)
    try:
        return CHANNELS[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown channel {name!r}; choose one of {', '.join(CHANNELS)}, "
                         f"or ofdm-<model>[:key=value...] (singlink.phy.ofdm)") from None


def equalize(y, h, snr_db, method: str = "zf", power: float = 1.0):
    r"""Single-tap equalisation with perfect CSI.

    - ``zf``:   :math:`\hat z = y/h`, error variance :math:`\sigma^2/|h|^2`.
    - ``mmse``: :math:`\hat z = h^* y / (|h|^2 + \sigma^2/P)`, error variance
      :math:`P\sigma^2/(P|h|^2 + \sigma^2)` (the estimate is biased towards 0).

    A single complex tap needs no matrix inversion, so this is written out rather than calling
    Sionna's MIMO equalisers. Returns ``(z_hat, no_eff)``, both broadcastable to ``y``;
    ``no_eff`` is what a demapper should be given.
    """
    if not tf.as_dtype(h.dtype).is_complex:
        raise TypeError("equalize needs the complex channel gains h of a flat channel; an OFDM channel "
                        "(ofdm-...) returns (y, no_eff), y already equalised and no_eff its real noise variance")
    rdtype = y.dtype.real_dtype
    no = snr_db_to_noise_var(snr_db, power, rdtype)
    if no.shape.rank == 1:
        no = no[:, None]
    g = tf.abs(h) ** 2
    if method == "zf":
        return y / h, no / g
    if method == "mmse":
        w = tf.math.conj(h) / tf.cast(g + no / power, y.dtype)
        return w * y, power * no / (power * g + no)
    raise ValueError(f"unknown equalizer {method!r}; choose 'zf' or 'mmse'")
