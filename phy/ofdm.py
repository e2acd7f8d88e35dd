r"""OFDM link over 3GPP TR 38.901 channels (TDL, CDL) with perfect or estimated CSI, built from
Sionna's blocks: :class:`~sionna.phy.ofdm.ResourceGrid` + :class:`~sionna.phy.ofdm.ResourceGridMapper`,
a Kronecker pilot pattern, :class:`~sionna.phy.channel.OFDMChannel` over
:class:`~sionna.phy.channel.tr38901.TDL` / :class:`~sionna.phy.channel.tr38901.CDL`,
:class:`~sionna.phy.ofdm.LSChannelEstimator` with interpolation, and
:class:`~sionna.phy.ofdm.OFDMEqualizer` with Sionna's LMMSE or ZF MIMO equaliser (what
:class:`~sionna.phy.ofdm.LMMSEEqualizer` / :class:`~sionna.phy.ofdm.ZFEqualizer` wrap).

**One string names a channel** everywhere (Python, CLI, sweep config)::

    ofdm-<model>[:key=value[:key=value ...]]

``model``: ``tdl-a`` .. ``tdl-e``, ``cdl-a`` .. ``cdl-e`` (single omni antenna at each end,
uplink) or ``awgn`` (a one-tap unit channel: per resource element exactly the flat AWGN
channel). Options are separated by ``:`` (never ``,``, which separates list items on the
command line); :class:`OFDMSpec` lists them with their defaults, e.g.
``ofdm-tdl-c:delay_spread=300e-9:speed=3:csi=ls``. :func:`parse_spec` checks a spec and
:attr:`OFDMSpec.name` gives its canonical form (defaults dropped, fixed key order), which is what
the sweep stores.

**Interface.** Like the flat channels of :mod:`singlink.phy.channel` the block takes complex rows
``z`` (N, k), one per image, of average power P, and ``snr_db`` (scalar or (N,)). It returns
``(y, no_eff)``: ``y`` (N, k) complex, the *equalised* symbol of each data resource element
(unbiased, :math:`y_j = z_j + e_j`), and ``no_eff`` (N, k) real, the effective noise variance
:math:`E|e_j|^2` the receiver believes in (Sionna's equaliser output, including the channel
estimation error variance). A flat channel returns ``(y, h)`` with complex ``h``; ``no_eff`` is
real, and :func:`singlink.phy.equalize` refuses a real ``h`` with a message naming this
difference, so code written for flat channels fails loudly instead of equalising twice.

**SNR convention.** Es/N0 per resource element: the channel models are normalised to unit average
power (Sionna's power delay profiles sum to one; no per-realisation normalisation), and the
noise per RE is :math:`\sigma^2 = P/10^{\mathrm{SNR}/10}` as in :func:`snr_db_to_noise_var`. Pilots
have power P too. So ``ofdm-awgn`` with perfect CSI gives ``y = z + n``, :math:`n\sim\mathcal{CN}(0,\sigma^2)`,
and ``no_eff`` = sigma^2: the AWGN channel exactly (in distribution).

**Budget and slots.** An image's k symbols fill k *data* REs; pilots, nulled guard/DC carriers and
the cyclic prefix are overhead (:meth:`OFDMLinkChannel.overhead`), not charged to k. A slot
(one resource grid, by default 14 OFDM symbols x 72 subcarriers, pilots on symbols 2 and 11) has
D data REs. Images never share a slot: image i occupies its own S = ceil(k / D) slots (``span=0``
forbids S > 1: then k > D is an error), each slot an independent channel draw (time correlation
across slots is not modelled). Its k symbols are spread evenly over the S*D data REs (symbol j on
RE floor(j S D / k) in Sionna's data order: OFDM symbol by symbol, subcarrier by subcarrier), so a
small image still sees the frequency and time selectivity of the whole slot (the digital baseline
gets the same interleaving). The S*D - k unused data REs are padded with the unit-power symbol
sqrt(P) (1+j)/sqrt(2); in this frequency-domain model (no ISI/ICI) padding does not affect the
image's REs. Every row of a batch is one image; rows are independent given the RNG.

**Channel model.** Sionna's frequency-domain :class:`~sionna.phy.channel.OFDMChannel`: per RE
:math:`y_{s,n} = H_{s,n} x_{s,n} + w_{s,n}`, H from the channel impulse response sampled once per
OFDM symbol (Doppler from ``speed``); no inter-symbol or inter-carrier interference, as if the
cyclic prefix covered the delay spread. The cyclic prefix therefore only sets the symbol duration
(overhead, Doppler sampling).

**Receiver.** ``csi=perfect``: the true H on the data REs, error variance 0. ``csi=ls``: LS at the
pilots, :math:`\hat h = y/p` with error variance :math:`\sigma^2/|p|^2`, interpolated (``interp``:
``nn``, ``lin``, ``lin_time_avg``). Equalisation (``eq``): Sionna's LMMSE (unbiased output) or ZF;
for one stream both give :math:`\hat z = y/\hat h` and
:math:`\mathrm{no}_\mathrm{eff} = (\sigma^2 + P\,\sigma_e^2)/|\hat h|^2` (LMMSE adds the
estimation error variance :math:`\sigma_e^2` to the noise; Sionna's ZF equaliser does as well).

**Effective SNR** for a receiver that needs one number per image (DeepJSCC, SING):
:func:`effective_snr_db`, :math:`10\log_{10}\big(\frac1k\sum_j P/\mathrm{no}_{\mathrm{eff},j}\big)`,
the mean per-RE SNR (the rule :meth:`singlink.receiver.Receiver.decode` already applies under flat
fading, SNR + 10 log10 mean |h|^2, of which this is the generalisation; equal to the nominal SNR for
``ofdm-awgn`` with perfect CSI). :func:`jscc_input` gives DeepJSCC's decoder its input symbols
and that SNR.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
from sionna.phy import Block
from sionna.phy.channel import ChannelModel
from sionna.phy.channel import OFDMChannel as SionnaOFDMChannel
from sionna.phy.mimo import StreamManagement, lmmse_equalizer, zf_equalizer
from sionna.phy.ofdm import (LSChannelEstimator, OFDMEqualizer, RemoveNulledSubcarriers, ResourceGrid,
                             ResourceGridMapper)

from .channel import _check_rows, _row_noise_var
from .digital import DigitalLink
from .link_base import OFDMDigitalLinkSteps, OFDMSlots, check_power
# spec parsing and the per-image SNR rules are framework-free, shared with the sionna-torch backend
from .ofdm_snr import effective_snr_db, jscc_input  # noqa: F401
from .ofdm_spec import OFDM_MODELS, OFDMSpec, is_ofdm, parse_spec  # noqa: F401

__all__ = ["OFDMSpec", "parse_spec", "is_ofdm", "OFDMLinkChannel", "OFDMDigitalLink", "UnitChannelModel",
           "effective_snr_db", "jscc_input", "OFDM_MODELS", "make_ofdm_channel"]


class UnitChannelModel(ChannelModel):
    r"""One tap of gain 1 at delay 0 for every example and time step: :math:`H_{s,n} = 1`, so an
    OFDM link over it is the AWGN channel on every resource element (``ofdm-awgn``).

    Output of ``__call__(batch_size, num_time_steps, sampling_frequency)``: ``a`` [batch, 1, 1,
    1, 1, 1, num_time_steps] complex ones, ``tau`` [batch, 1, 1, 1] zeros (Sionna's CIR shapes).
    """

    def __init__(self, precision=None):
        super().__init__(precision=precision)

    def __call__(self, batch_size, num_time_steps, sampling_frequency):
        a = tf.ones([batch_size, 1, 1, 1, 1, 1, num_time_steps], self.cdtype)
        return a, tf.zeros([batch_size, 1, 1, 1], self.rdtype)


def _channel_model(spec: OFDMSpec, precision):
    if spec.model == "awgn":
        return UnitChannelModel(precision=precision)
    family, letter = spec.model.split("-")
    if family == "tdl":
        from sionna.phy.channel.tr38901 import TDL

        return TDL(letter.upper(), spec.delay_spread, spec.fc, min_speed=spec.speed, precision=precision)
    from sionna.phy.channel.tr38901 import CDL, AntennaArray

    def omni():
        return AntennaArray(num_rows=1, num_cols=1, polarization="single", polarization_type="V",
                            antenna_pattern="omni", carrier_frequency=spec.fc, precision=precision)

    return CDL(letter.upper(), spec.delay_spread, spec.fc, omni(), omni(), "uplink", min_speed=spec.speed,
               precision=precision)


class OFDMLinkChannel(OFDMSlots, Block):
    r"""OFDM transmission of complex rows over a 3GPP channel, with channel estimation and equalisation.

    Parameters
    ----------
    spec : str or :class:`OFDMSpec`
        ``ofdm-<model>[:key=value...]`` (module docstring).
    power : float
        Average power P per complex symbol of the rows (SNR = P / sigma^2).
    precision : None | "single" | "double"

    Input
    -----
    z : [N, k], complex
        One row per image.
    snr_db : scalar or [N], float
        Es/N0 per resource element in dB.

    Output
    ------
    y : [N, k], complex
        Equalised (unbiased) symbols, :math:`y_j = z_j + e_j`.
    no_eff : [N, k], float
        Effective noise variance of :math:`e_j` as the receiver estimates it.

    :meth:`transmit` returns every intermediate (grids, true and estimated channel) for inspection.
    """

    def __init__(self, spec="ofdm-tdl-a", power: float = 1.0, *, precision=None, **kwargs):
        super().__init__(precision=precision, **kwargs)
        self.spec = parse_spec(spec)
        self.power = check_power(power)
        s = self.spec
        self.resource_grid = ResourceGrid(num_ofdm_symbols=s.symbols, fft_size=s.fft, subcarrier_spacing=s.scs,
                                          num_tx=1, num_streams_per_tx=1, cyclic_prefix_length=s.cp,
                                          num_guard_carriers=s.guard, dc_null=s.dc, pilot_pattern="kronecker",
                                          pilot_ofdm_symbol_indices=list(s.pilots), precision=precision)
        rg = self.resource_grid
        self.data_per_slot = int(rg.num_data_symbols)
        # data REs in Sionna's mapping order, as indices into a slot's (symbols x effective subcarriers)
        self._data_ind = np.flatnonzero(np.asarray(rg.pilot_pattern.mask)[0, 0].reshape(-1) == 0).astype(np.int32)
        self._mapper = ResourceGridMapper(rg, precision=precision)
        self.channel_model = _channel_model(s, precision)
        self._channel = SionnaOFDMChannel(self.channel_model, rg, normalize_channel=False, return_channel=True,
                                          precision=precision)
        self._remove_nulled = RemoveNulledSubcarriers(rg, precision=precision)
        self._estimator = LSChannelEstimator(rg, interpolation_type=s.interp, precision=precision)
        sm = StreamManagement(np.ones([1, 1], int), 1)
        # Sionna's LMMSEEqualizer/ZFEqualizer call the MIMO equaliser without their precision (so
        # "double" came back as complex64 in 1.2.2): the same OFDMEqualizer, given the precision.
        if s.eq == "lmmse":
            def equalizer(y, h, cov):
                return lmmse_equalizer(y, h, cov, whiten_interference=True, precision=precision)
        else:
            def equalizer(y, h, cov):
                return zf_equalizer(y, h, cov, precision=precision)
        self._equalizer = OFDMEqualizer(equalizer, rg, sm, precision=precision)
        # ... and it strips nulled subcarriers with a block of the default precision, which rounds
        # a double-precision grid to complex64 (gradcheck sees it): give it ours.
        self._equalizer._removed_nulled_scs = RemoveNulledSubcarriers(rg, precision=precision)
        self._layouts = {}

    # --- layout ------------------------------------------------------------------------------

    def layout(self, k: int):
        """``(slots, positions)``: the data REs (indices into the image's slots x D data REs) that carry
        its k symbols, spread evenly (module docstring)."""
        if k not in self._layouts:
            s, pos, src = self._layout_indices(k)
            self._layouts[k] = (s, pos.astype(np.int32), src.astype(np.int32))  # numpy: usable in any graph
        return self._layouts[k]

    # --- transmission ------------------------------------------------------------------------

    def generate(self, num_images: int, k: int):
        """Draw the true channel for ``num_images`` images of k symbols: h_freq [N*S, 1, 1, 1, 1,
        symbols, fft] (Sionna's shape). ``call(..., h_freq=...)`` reuses it, so two transmissions
        (DeepJSCC and the digital baseline) can share one channel draw."""
        s, _, _ = self.layout(int(k))
        return self._channel._generate_channel(int(num_images) * s)

    def transmit(self, z, snr_db, h_freq=None) -> dict:
        """The whole chain; returns a dict with ``y`` and ``no_eff`` (N, k), ``h_data`` (N, k) the true
        channel on each symbol's RE, the received grid
        ``y_grid`` [N*S, 1, 1, symbols, fft], the true channel ``h`` and its estimate ``h_hat``
        [N*S, 1, 1, 1, 1, symbols, effective subcarriers], ``err_var`` (broadcastable to h_hat),
        and ``no`` ((N*S,) or a scalar), the noise variance per RE relative to unit-power symbols."""
        _check_rows(z)
        z = tf.cast(z, self.cdtype)
        k = z.shape[1]
        if k is None:
            raise ValueError("the number of symbols per row (k) must be known statically")
        n = tf.shape(z)[0]
        slots, pos, src = self.layout(int(k))
        d = self.data_per_slot
        sqrt_p = tf.cast(math.sqrt(self.power), self.cdtype)
        # Rows at unit power: pilots, LMMSE and the estimator all assume unit-energy symbols.
        z1 = z if self.power == 1.0 else z / sqrt_p
        full = int(k) == slots * d  # the image fills its slots: identity layout, no gathers
        if not full:
            pad = tf.fill([n, 1], tf.cast(complex(math.sqrt(0.5), math.sqrt(0.5)), self.cdtype))
            z1 = tf.gather(tf.concat([z1, pad], axis=1), src, axis=1)         # [N, S*D]
        x = tf.reshape(z1, [n * slots, 1, 1, d])
        grid = self._mapper(x)                                                 # [N*S, 1, 1, T, F]
        no = _row_noise_var(snr_db, z, 1.0, self.rdtype)                       # sigma^2/P: (N, 1) or scalar
        if no.shape.rank != 0:
            no = tf.reshape(tf.repeat(no, slots, axis=1), [-1])                # [N*S]
        if h_freq is None:
            h_freq = self.generate(n, int(k))
        else:
            h_freq = tf.cast(h_freq, self.cdtype)
        y_grid = self._channel._apply_channel(grid, h_freq, no)
        if self.spec.csi == "perfect":
            h_hat = self._remove_nulled(h_freq)
            err_var = tf.zeros([1] * 7, self.rdtype)
        else:
            h_hat, err_var = self._estimator(y_grid, no)
        x_hat, no_eff = self._equalizer(y_grid, h_hat, err_var, no)           # [N*S, 1, 1, D]
        def picked(t):  # [N*S, ..., D] -> the image's k symbols (N, k)
            t = tf.reshape(t, [n, slots * d])
            return t if full else tf.gather(t, pos, axis=1)

        y, no_eff = picked(x_hat), picked(no_eff)
        if self.power != 1.0:
            y, no_eff = y * sqrt_p, no_eff * self.power
        h = self._remove_nulled(h_freq)
        h_data = picked(tf.gather(tf.reshape(h, [n * slots, -1]), self._data_ind, axis=1))
        return {"y": y, "no_eff": no_eff, "h_data": h_data, "y_grid": y_grid, "x_grid": grid, "h": h,
                "h_hat": h_hat, "err_var": err_var, "no": no, "slots": slots, "positions": pos}

    def call(self, z, snr_db, h_freq=None):
        out = self.transmit(z, snr_db, h_freq)
        return out["y"], out["no_eff"]


def make_ofdm_channel(spec, power: float = 1.0, *, precision=None, **kwargs) -> OFDMLinkChannel:
    """:class:`OFDMLinkChannel` from its spec string (what :func:`singlink.phy.make_channel` calls)."""
    return OFDMLinkChannel(spec, power, precision=precision, **kwargs)


class OFDMDigitalLink(OFDMDigitalLinkSteps, DigitalLink):
    r""":class:`~singlink.phy.DigitalLink` over an OFDM channel: the coded QAM symbols of a row
    (all its codewords) go through the same grid, channel draw, estimator and equaliser as
    DeepJSCC's symbols, and are demapped with the per-RE effective noise variance.

    ``channel_uses``: the row's budget k. Rows are padded to k symbols (unit-power padding, dropped
    at the receiver) so that their REs and slots are exactly those of a DeepJSCC image with the
    same k: with the same seed, or the same ``h_freq`` (:meth:`OFDMLinkChannel.generate`), both see
    the same channel. Default: the codewords' own symbol count.

    Input: ``(batch_size, snr_db, bits=None, h_freq=None)``; output ``(bits, bits_hat)``.
    """

    def __init__(self, config, num_blocks: int = 1, channel_uses: int | None = None, *, precision=None, **kwargs):
        self._check_ofdm(config)
        super().__init__(config, num_blocks, precision=precision, **kwargs)
        self._set_budget(channel_uses)

    def call(self, batch_size, snr_db, bits=None, h_freq=None):
        bits, x = self._modulate(batch_size, bits)               # (B, blocks, n/bps)
        shape = tf.shape(x)
        rows = tf.reshape(x, [shape[0], -1])
        used = self.num_blocks * self.config.codeword_bits // self.bps
        if self.budget > used:
            rows = tf.concat([rows, tf.ones([shape[0], self.budget - used], rows.dtype)], axis=1)
        rows = tf.ensure_shape(rows, [None, self.budget])
        y, no_eff = self._channel(rows, snr_db, h_freq)
        y = tf.reshape(y[:, :used], shape)
        no_eff = tf.reshape(no_eff[:, :used], shape)
        return bits, self._detect(y, no_eff)
