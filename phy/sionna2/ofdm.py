r"""OFDM link over 3GPP TR 38.901 channels (TDL, CDL) with perfect or estimated CSI on Sionna 2
(PyTorch): the torch twin of :mod:`singlink.phy.ofdm`, whose module docstring states the spec
(``ofdm-<model>[:key=value...]``, parsed by the shared :mod:`singlink.phy.ofdm_spec`), the layout
of an image's k symbols on the slot's data REs, the SNR convention (Es/N0 per RE, unit-power
channel models) and the receiver. Same blocks, from Sionna 2: ResourceGrid + ResourceGridMapper
(Kronecker pilots), OFDMChannel over TDL / CDL, LSChannelEstimator, OFDMEqualizer with the LMMSE or
ZF MIMO equaliser.

Input ``z`` (N, k) complex torch rows and ``snr_db`` (scalar or (N,)); output ``(y, no_eff)``, the
equalised symbols and their effective noise variance, both (N, k). :class:`OFDMDigitalLink` is the
separation baselines' coded QAM over the same channel.

Sionna 2's TDL/CDL follow TR 38.901 release 19.2 (its ``spec_version`` default); compare fading
statistics, not draws, across backends.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from sionna.phy import Block
from sionna.phy.channel import ChannelModel
from sionna.phy.channel import OFDMChannel as SionnaOFDMChannel
from sionna.phy.mimo import StreamManagement, lmmse_equalizer, zf_equalizer
from sionna.phy.ofdm import (LSChannelEstimator, OFDMEqualizer, RemoveNulledSubcarriers, ResourceGrid,
                             ResourceGridMapper)

from ..ofdm_spec import OFDMSpec, parse_spec
from .channel import _check_rows, _row_noise_var
from ..link_base import OFDMDigitalLinkSteps, OFDMSlots, check_power
from .digital import DigitalLink


class UnitChannelModel(ChannelModel):
    r"""One tap of gain 1 at delay 0 for every example and time step: :math:`H_{s,n} = 1`
    (``ofdm-awgn``). Output ``a`` [batch, 1, 1, 1, 1, 1, num_time_steps] complex ones, ``tau``
    [batch, 1, 1, 1] zeros (Sionna's CIR shapes)."""

    def __call__(self, batch_size, num_time_steps, sampling_frequency):
        a = torch.ones(batch_size, 1, 1, 1, 1, 1, num_time_steps, dtype=self.cdtype, device=self.device)
        return a, torch.zeros(batch_size, 1, 1, 1, dtype=self.dtype, device=self.device)


def _channel_model(spec: OFDMSpec, opts: dict):
    if spec.model == "awgn":
        return UnitChannelModel(**opts)
    family, letter = spec.model.split("-")
    if family == "tdl":
        from sionna.phy.channel.tr38901 import TDL

        return TDL(letter.upper(), spec.delay_spread, spec.fc, min_speed=spec.speed, **opts)
    from sionna.phy.channel.tr38901 import CDL, AntennaArray

    def omni():
        return AntennaArray(num_rows=1, num_cols=1, polarization="single", polarization_type="V",
                            antenna_pattern="omni", carrier_frequency=spec.fc, **opts)

    return CDL(letter.upper(), spec.delay_spread, spec.fc, omni(), omni(), "uplink", min_speed=spec.speed, **opts)


class OFDMLinkChannel(OFDMSlots, Block):
    r"""OFDM transmission of complex rows over a 3GPP channel, with channel estimation and equalisation
    (:class:`singlink.phy.ofdm.OFDMLinkChannel` on torch).

    Input: ``z`` [N, k] complex, ``snr_db`` scalar or [N] (Es/N0 per RE, dB). Output: ``y`` [N, k]
    equalised (unbiased) symbols :math:`y_j = z_j + e_j` and ``no_eff`` [N, k], the variance of
    :math:`e_j` as the receiver estimates it. :meth:`transmit` returns every intermediate.
    """

    def __init__(self, spec="ofdm-tdl-a", power: float = 1.0, *, precision=None, device=None, **kwargs):
        super().__init__(precision=precision, device=device, **kwargs)
        self.spec = parse_spec(spec)
        self.power = check_power(power)
        s, opts = self.spec, {"precision": precision, "device": device}
        self.resource_grid = ResourceGrid(num_ofdm_symbols=s.symbols, fft_size=s.fft, subcarrier_spacing=s.scs,
                                          num_tx=1, num_streams_per_tx=1, cyclic_prefix_length=s.cp,
                                          num_guard_carriers=s.guard, dc_null=s.dc, pilot_pattern="kronecker",
                                          pilot_ofdm_symbol_indices=list(s.pilots), **opts)
        rg = self.resource_grid
        self.data_per_slot = int(rg.num_data_symbols)
        mask = np.asarray(rg.pilot_pattern.mask.cpu())[0, 0].reshape(-1)
        self._data_ind = torch.as_tensor(np.flatnonzero(mask == 0), device=self.device)
        self._mapper = ResourceGridMapper(rg, **opts)
        self.channel_model = _channel_model(s, opts)
        self._channel = SionnaOFDMChannel(self.channel_model, rg, normalize_channel=False, return_channel=True, **opts)
        self._remove_nulled = RemoveNulledSubcarriers(rg, **opts)
        self._estimator = LSChannelEstimator(rg, interpolation_type=s.interp, **opts)
        sm = StreamManagement(np.ones([1, 1], int), 1)
        if s.eq == "lmmse":
            def equalizer(y, h, cov):
                return lmmse_equalizer(y, h, cov, whiten_interference=True, precision=precision)
        else:
            def equalizer(y, h, cov):
                return zf_equalizer(y, h, cov, precision=precision)
        self._equalizer = OFDMEqualizer(equalizer, rg, sm, **opts)
        self._layouts = {}

    def layout(self, k: int):
        """``(slots, positions, source)``: the data REs that carry an image's k symbols, spread evenly,
        and for every data RE of its slots the symbol it sends (k: the padding symbol)."""
        if k not in self._layouts:
            s, pos, src = self._layout_indices(k)
            self._layouts[k] = (s, torch.as_tensor(pos, device=self.device), torch.as_tensor(src, device=self.device))
        return self._layouts[k]

    def generate(self, num_images: int, k: int):
        """The true channel h_freq [N*S, 1, 1, 1, 1, symbols, fft] for ``num_images`` images of k symbols."""
        s, _, _ = self.layout(int(k))
        return self._channel.generate(int(num_images) * s)

    def transmit(self, z, snr_db, h_freq=None) -> dict:
        """The whole chain: ``y``, ``no_eff``, ``h_data`` (N, k), the grids, ``h``, ``h_hat``,
        ``err_var`` and ``no`` (as :meth:`singlink.phy.ofdm.OFDMLinkChannel.transmit`)."""
        _check_rows(z)
        z = z.to(self.cdtype)
        n, k = z.shape
        slots, pos, src = self.layout(int(k))
        d = self.data_per_slot
        sqrt_p = math.sqrt(self.power)
        z1 = z if self.power == 1.0 else z / sqrt_p  # pilots, LMMSE and the estimator assume unit energy
        full = int(k) == slots * d
        if not full:
            pad = torch.full((n, 1), complex(math.sqrt(0.5), math.sqrt(0.5)), dtype=self.cdtype, device=z.device)
            z1 = torch.cat([z1, pad], dim=1)[:, src]                          # [N, S*D]
        grid = self._mapper(z1.reshape(n * slots, 1, 1, d))                  # [N*S, 1, 1, T, F]
        no = _row_noise_var(snr_db, z, 1.0, self.dtype)                      # sigma^2/P: (N, 1) or scalar
        if no.dim() != 0:
            no = no.repeat_interleave(slots, dim=0).reshape(-1)              # [N*S]
        h_freq = self.generate(n, int(k)) if h_freq is None else h_freq.to(self.cdtype)
        y_grid = self._channel.apply(grid, h_freq, no)
        if self.spec.csi == "perfect":
            h_hat = self._remove_nulled(h_freq)
            err_var = torch.zeros([1] * 7, dtype=self.dtype, device=self.device)
        else:
            h_hat, err_var = self._estimator(y_grid, no)
        x_hat, no_eff = self._equalizer(y_grid, h_hat, err_var, no)          # [N*S, 1, 1, D]

        def picked(t):  # [N*S, ..., D] -> the image's k symbols (N, k)
            t = t.reshape(n, slots * d)
            return t if full else t[:, pos]

        y, no_eff = picked(x_hat), picked(no_eff)
        if self.power != 1.0:
            y, no_eff = y * sqrt_p, no_eff * self.power
        h = self._remove_nulled(h_freq)
        h_data = picked(h.reshape(n * slots, -1)[:, self._data_ind])
        return {"y": y, "no_eff": no_eff, "h_data": h_data, "y_grid": y_grid, "x_grid": grid, "h": h,
                "h_hat": h_hat, "err_var": err_var, "no": no, "slots": slots, "positions": pos}

    def call(self, z, snr_db, h_freq=None):
        out = self.transmit(z, snr_db, h_freq)
        return out["y"], out["no_eff"]


def make_ofdm_channel(spec, power: float = 1.0, *, precision=None, device=None, **kwargs) -> OFDMLinkChannel:
    """:class:`OFDMLinkChannel` from its spec string (what :func:`singlink.phy.make_channel` calls)."""
    return OFDMLinkChannel(spec, power, precision=precision, device=device, **kwargs)


class OFDMDigitalLink(OFDMDigitalLinkSteps, DigitalLink):
    r""":class:`~singlink.phy.DigitalLink` over an OFDM channel (:class:`singlink.phy.ofdm.OFDMDigitalLink`
    on torch): the coded QAM symbols of a row, padded to ``channel_uses`` (the row's budget k) with
    unit-power symbols dropped at the receiver, go through the same grid, channel draw, estimator and
    equaliser as DeepJSCC's symbols, and are demapped with the per-RE effective noise variance.

    Input: ``(batch_size, snr_db, bits=None, h_freq=None)``; output ``(bits, bits_hat)``.
    """

    def __init__(self, config, num_blocks: int = 1, channel_uses: int | None = None, *, precision=None,
                 device=None, **kwargs):
        self._check_ofdm(config)
        super().__init__(config, num_blocks, precision=precision, device=device, **kwargs)
        self._set_budget(channel_uses)

    def call(self, batch_size, snr_db, bits=None, h_freq=None):
        bits, x = self._modulate(batch_size, bits)               # (B, blocks, n/bps)
        shape = x.shape
        rows = x.reshape(shape[0], -1)
        used = rows.shape[1]
        if self.budget > used:
            rows = torch.cat([rows, torch.ones(shape[0], self.budget - used, dtype=rows.dtype, device=rows.device)], 1)
        y, no_eff = self._channel(rows, snr_db, h_freq)
        return bits, self._detect(y[:, :used].reshape(shape), no_eff[:, :used].reshape(shape))
