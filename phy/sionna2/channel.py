"""Channels for complex symbol rows on Sionna 2 (PyTorch): AWGN and Rayleigh (block or fast) flat
fading. The torch twin of :mod:`singlink.phy.channel`, with the same conventions (DESIGN.md):

symbols ``z`` are complex (N, k), one row per image with average power P per symbol; the SNR is
given in dB, one value per row (a scalar broadcasts), and

.. math::  \\mathrm{SNR} = 10\\log_{10}(P/\\sigma^2)  \\qquad (\\text{SING paper, Eq. 8})

with noise :math:`\\mathcal{CN}(0, \\sigma^2)`, :math:`\\sigma^2/2` per real dimension. Every channel
returns ``(y, h)``: ``h`` is the complex gain known to the receiver (perfect CSI), broadcastable to
``y``: ones (N, 1) for AWGN, (N, 1) for block fading, (N, k) for fast fading.

Noise and fading come from Sionna 2 (:class:`sionna.phy.channel.AWGN`,
:class:`sionna.phy.channel.GenerateFlatFadingChannel`) and so from Sionna's seeded torch generator
(:func:`singlink.phy.set_seed`). Tensors in and out are torch tensors.
"""
import torch
from sionna.phy import Block
from sionna.phy.channel import AWGN, GenerateFlatFadingChannel

from ..link_base import check_power
from ..ofdm_spec import is_ofdm


def snr_db_to_noise_var(snr_db, power=1.0, dtype=torch.float32):
    r"""Noise power per complex symbol :math:`\sigma^2 = P / 10^{\mathrm{SNR}/10}`."""
    snr_db = torch.as_tensor(snr_db, dtype=dtype)
    return power / torch.pow(torch.tensor(10.0, dtype=dtype), snr_db / 10.0)


def _check_rows(z):
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"channel input must be a torch tensor on the sionna-torch backend, got {type(z).__name__}")
    if not z.is_complex():
        raise TypeError(f"channel input must be complex (N, k) symbols, got dtype {z.dtype}")
    if z.dim() != 2:
        raise ValueError(f"channel input must have shape (N, k), one row per example; got {tuple(z.shape)}")


def _row_noise_var(snr_db, z, power, rdtype):
    """sigma^2 as an (N, 1) column (or a scalar), validated against the batch size."""
    snr_db = torch.as_tensor(snr_db)
    if snr_db.is_complex() or snr_db.dtype == torch.bool:
        raise TypeError(f"snr_db must be real (a scalar or one value per row), got {snr_db.dtype}")
    if snr_db.dim() > 1:
        raise ValueError(f"snr_db must be a scalar or shape (N,), got shape {tuple(snr_db.shape)}")
    # The value check reads the tensor on the host: under torch.compile it would break the graph
    # in two (and sync) on every batch, so, like the TF backend's check in eager mode only, it is
    # left to eager calls.
    if snr_db.is_floating_point() and not torch.compiler.is_compiling():
        bad = torch.isnan(snr_db) | (snr_db == float("-inf"))
        if bool(bad.any()):
            raise ValueError(f"snr_db must be a number in dB or +inf (a noiseless channel), "
                             f"got {float(snr_db.reshape(-1)[bad.reshape(-1)][0])}")
    no = snr_db_to_noise_var(snr_db, power, rdtype)
    if snr_db.dim() == 1:
        if snr_db.shape[0] != z.shape[0]:
            raise ValueError(f"snr_db has {snr_db.shape[0]} values but the batch has {z.shape[0]} rows; "
                             f"give one SNR per row or a scalar")
        no = no[:, None]
    return no.to(z.device)


class _FlatChannel(Block):
    """Shared body: y = h z + n with h drawn by :meth:`_gain` (identity for AWGN)."""

    def __init__(self, power: float = 1.0, *, precision=None, device=None, **kwargs):
        super().__init__(precision=precision, device=device, **kwargs)
        self.power = check_power(power)
        self._awgn = AWGN(precision=precision, device=device)

    def _gain(self, z):
        raise NotImplementedError

    def call(self, z, snr_db):
        _check_rows(z)
        no = _row_noise_var(snr_db, z, self.power, self.dtype)
        h = self._gain(z)
        return self._awgn(h * z, no), h


class AWGNChannel(_FlatChannel):
    r"""Complex AWGN channel, :math:`\hat{\mathbf z} = \mathbf z + \mathbf n_C` (SING paper, Eq. 7).

    Input: ``z`` (N, k) complex, ``snr_db`` scalar or (N,). Output: ``(y, h)`` with ``y`` (N, k)
    and ``h`` = ones (N, 1).
    """

    def _gain(self, z):
        return torch.ones(z.shape[0], 1, dtype=self.cdtype, device=self.device)


class RayleighBlockFadingChannel(_FlatChannel):
    r"""Rayleigh block fading: :math:`\mathbf y = h\,\mathbf z + \mathbf n`, one
    :math:`h \sim \mathcal{CN}(0,1)` per row (image), constant over its k symbols.

    Output ``(y, h)`` with ``h`` (N, 1); the instantaneous SNR of row i is
    :math:`|h_i|^2 P/\sigma^2`.
    """

    def __init__(self, power: float = 1.0, *, precision=None, device=None, **kwargs):
        super().__init__(power, precision=precision, device=device, **kwargs)
        self._gen = GenerateFlatFadingChannel(1, 1, precision=precision, device=device)

    def _gain(self, z):
        return self._gen(z.shape[0]).reshape(-1, 1)


class RayleighFastFadingChannel(RayleighBlockFadingChannel):
    r"""Fast (i.i.d.) Rayleigh fading: an independent :math:`h_{i,j} \sim \mathcal{CN}(0,1)` per
    symbol. Output ``(y, h)`` with ``h`` (N, k)."""

    def _gain(self, z):
        return self._gen(z.numel()).reshape(z.shape)


CHANNELS = {
    "awgn": AWGNChannel,
    "rayleigh-block": RayleighBlockFadingChannel,
    "rayleigh-fast": RayleighFastFadingChannel,
}


def make_channel(name: str, **kwargs):
    """Channel by name: ``awgn``, ``rayleigh-block`` or ``rayleigh-fast`` (flat: return ``(y, h)``),
    or an OFDM spec ``ofdm-<model>[:key=value...]`` (:class:`singlink.phy.sionna2.ofdm.OFDMLinkChannel`:
    returns ``(y_equalised, no_eff)``)."""
    if is_ofdm(name):
        from .ofdm import make_ofdm_channel

        return make_ofdm_channel(name, **kwargs)
    try:
        return CHANNELS[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown channel {name!r}; choose one of {', '.join(CHANNELS)}, "
                         f"or ofdm-<model>[:key=value...] (singlink.phy.ofdm_spec)") from None


def equalize(y, h, snr_db, method: str = "zf", power: float = 1.0):
    r"""Single-tap equalisation with perfect CSI.

    - ``zf``:   :math:`\hat z = y/h`, error variance :math:`\sigma^2/|h|^2`.
    - ``mmse``: :math:`\hat z = h^* y / (|h|^2 + \sigma^2/P)`, error variance
      :math:`P\sigma^2/(P|h|^2 + \sigma^2)` (the estimate is biased towards 0).

    A single complex tap needs no matrix inversion, so this is written out rather than calling
    Sionna's MIMO equalisers. Returns ``(z_hat, no_eff)``, both broadcastable to ``y``;
    ``no_eff`` is what a demapper should be given.
    """
    if not (isinstance(h, torch.Tensor) and h.is_complex()):
        raise TypeError("equalize needs the complex channel gains h of a flat channel; an OFDM channel "
                        "(ofdm-...) returns (y, no_eff), y already equalised and no_eff its real noise variance")
    no = snr_db_to_noise_var(snr_db, power, y.real.dtype).to(y.device)
    if no.dim() == 1:
        no = no[:, None]
    g = h.abs() ** 2
    if method == "zf":
        return y / h, no / g
    if method == "mmse":
        w = h.conj() / (g + no / power).to(y.dtype)
        return w * y, power * no / (power * g + no)
    raise ValueError(f"unknown equalizer {method!r}; choose 'zf' or 'mmse'")
