r"""The OFDM frame that carries one DeepJSCC image over GNU Radio's OFDM chain, and the numpy
steps of its receiver that GNU Radio has no block for (no GNU Radio flowgraph needed here).

One frame per image, in GNU Radio's OFDM format (``digital.ofdm_txrx``'s defaults: FFT 64, the
802.11a carriers: 48 data carriers, 4 pilot carriers at -21, -7, 7, 21 with its scrambled pilot
sequence, DC and 11 edge carriers empty), followed by one OFDM symbol of silence::

    | sync word 1 | sync word 2 | header: 11 OFDM symbols | payload: ceil(k / 48) OFDM symbols | gap |

The cyclic prefix is 32 samples, not ``ofdm_txrx``'s 16: ``ofdm_sync_sc_cfb``'s trigger jitters by
about +-10 samples at 5 dB per subcarrier, and a 16-sample prefix less a 5-sample delay spread
leaves +-5 (measured through ``channels.channel_model``, 20 frames, taps at delays 0, 2, 5: 14-17
frames of 20 delivered at 5 dB with 16, 20 of 20 with 32).

- sync words: GNU Radio's Schmidl & Cox pair (``ofdm_txrx._make_sync_word1/2``): the first has
  every second carrier empty (two equal halves: timing and fine frequency, ``ofdm_sync_sc_cfb``),
  the second fills every active carrier with +-1 (integer carrier offset and the least-squares
  channel estimate :math:`\hat H_c = Y_c / s_c`, ``ofdm_chanest_vcvc``);
- header: the burst path's 72 header bits (seq, image id, k, flags, CRC-16 from ``digital.crc``)
  and its code (:class:`~singlink_gr.burst.PolarHeader`: gr-fec polar N = 1024, QPSK, 512
  symbols), cyclically repeated to fill 11 OFDM symbols (528 data carriers). With N = 512 on 6
  OFDM symbols, 11 of 18 headers failed their CRC at 0 dB per subcarrier through three paths
  (least squares from one preamble symbol leaves about -3 dB, less on faded carriers); with
  N = 1024, 3 of 17;
- payload: DeepJSCC's k analog symbols (power 1 per image) on the data carriers, symbol after
  symbol, the rest of the last OFDM symbol zero (GNU Radio's allocator pads it).

Why not GNU Radio's own OFDM header (``packet_header_ofdm``: 32 bits, BPSK on one OFDM symbol,
8-bit CRC): uncoded BPSK at 0 dB per subcarrier has a bit error rate of 8 %, so nine in ten
headers of 32 bits would fail there, and an image lost to its header costs more than the whole
header; the polar code carries the 72 bits at rate 0.07 (0.14 bit per symbol) and is decoded
from soft values.

What the receiver does beyond GNU Radio's blocks (:func:`common_phase`, :func:`data_aided_noise`):
``ofdm_sync_sc_cfb``'s fine frequency estimate leaves a residual offset (a phase drift over the
frame), and the static equaliser divides by the preamble's estimate only. GNU Radio's
``ofdm_equalizer_simpledfe``
tracks it by decision feedback, which needs a constellation: DeepJSCC's symbols have none. So
the phase is modelled as :math:`\omega n` over the frame's OFDM symbols n counted from sync word 2
(whose phase the channel estimate holds, so n = 0 is the reference) and fitted (feed-forward,
maximum likelihood) to the pilots, and in the header also to the re-modulated header once its
CRC has passed.

The SNR the decoder is told (``singlink.phy.ofdm.jscc_input``'s rule, as singlink's own OFDM link
does): the equalised payload symbol on carrier c is :math:`y = z + e` with
:math:`E|e|^2 = \mathrm{no}_c = m / |\hat H_c|^2`, where :math:`m = E|e\,\hat H_c|^2` is the noise
per carrier before equalisation plus the estimation error (:math:`\sigma^2 (1 + |z|^2)` for a
least-squares estimate from one preamble symbol); m is measured on the known header symbols.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .burst import Header, PolarHeader, bits_to_header, header_to_bits

__all__ = ["OFDMConfig", "ofdm_header", "header_symbols", "read_header", "common_phase",
           "data_aided_noise", "TAG_CHAN_TAPS", "TAG_ESTIMATE", "TAG_CARR_OFFSET", "TAG_NOISE", "TAG_PHASE",
           "TAG_SYNC1"]

#: tags of GNU Radio's OFDM blocks (chanest, frame equaliser) and the ones the header reader adds
TAG_CHAN_TAPS = "ofdm_sync_chan_taps"
TAG_CARR_OFFSET = "ofdm_sync_carr_offset"
TAG_NOISE = "noise_eff"     # m: effective noise per carrier before equalisation (see the module docstring)
TAG_PHASE = "phase_obs"     # the header's per-symbol phase observations (complex, one per OFDM symbol)
TAG_ESTIMATE = "chan_est"   # the channel estimate again: ofdm_frame_equalizer_vcvc consumes TAG_CHAN_TAPS
TAG_SYNC1 = "sync_word1"    # sync word 1 as received (FFT'd), for the header's channel estimate


@lru_cache(maxsize=1)
def _gr_defaults():
    from gnuradio.digital import ofdm_txrx as T

    return T


@dataclass(frozen=True)
class OFDMConfig:
    """The frame layout (both ends must agree). ``header_ofdm_symbols``: OFDM symbols of the header."""

    fft_len: int = 64
    cp_len: int = 32
    header_ofdm_symbols: int = 11

    def __post_init__(self):
        if self.fft_len != 64:
            raise ValueError(f"fft_len={self.fft_len}: only 64 (GNU Radio's 802.11a carrier layout) is supported")
        if not 0 < self.cp_len < self.fft_len:
            raise ValueError(f"cp_len={self.cp_len}: choose 0 < cp_len < fft_len ({self.fft_len})")
        need = -(-PolarHeader.SYMBOLS // self.data_carriers)
        if self.header_ofdm_symbols < need:
            raise ValueError(f"header_ofdm_symbols={self.header_ofdm_symbols}: the coded header needs at least {need} "
                             f"OFDM symbols ({PolarHeader.SYMBOLS} symbols on {self.data_carriers} data carriers)")

    @property
    def occupied_carriers(self):
        return tuple(tuple(c) for c in _gr_defaults()._def_occupied_carriers)

    @property
    def pilot_carriers(self):
        return tuple(tuple(c) for c in _gr_defaults()._def_pilot_carriers)

    @property
    def pilot_symbols(self):
        return tuple(tuple(p) for p in _gr_defaults()._def_pilot_symbols)

    @property
    def data_carriers(self) -> int:
        return len(self.occupied_carriers[0])

    @property
    def sync_words(self):
        T = _gr_defaults()
        args = (self.fft_len, self.occupied_carriers, self.pilot_carriers)
        return tuple(np.asarray(make(*args), np.complex64) for make in (T._make_sync_word1, T._make_sync_word2))

    @property
    def header_len(self) -> int:
        """Data symbols of the header (the coded header repeated to whole OFDM symbols)."""
        return self.header_ofdm_symbols * self.data_carriers

    def payload_ofdm_symbols(self, k: int) -> int:
        return -(-int(k) // self.data_carriers)

    def frame_samples(self, k: int) -> int:
        return (2 + self.header_ofdm_symbols + self.payload_ofdm_symbols(k)) * (self.fft_len + self.cp_len)

    def index(self, carriers) -> np.ndarray:
        """FFT bins (shifted, DC in the middle, as the blocks' vectors are) of carrier numbers."""
        return np.asarray(carriers, int) + self.fft_len // 2

    def pilot_values(self, first: int, n: int) -> np.ndarray:
        """(n, 4) pilots of the frame's OFDM symbols first .. first + n - 1 (after the sync words)."""
        p = np.asarray(self.pilot_symbols, np.complex64)
        return p[(first + np.arange(n)) % len(p)]


@lru_cache(maxsize=1)
def ofdm_header() -> PolarHeader:
    """The header code: the burst path's (gr-fec polar, N = 1024, 512 QPSK symbols)."""
    return PolarHeader()


def header_symbols(header: Header, cfg: OFDMConfig) -> np.ndarray:
    """The header's ``cfg.header_len`` data symbols: the coded QPSK symbols, repeated cyclically."""
    return np.resize(ofdm_header().modulate(header_to_bits(header)), cfg.header_len)


def read_header(y: np.ndarray, noise_var: float, list_decoding: bool = True):
    """Equalised, phase-corrected header data symbols (header_len,) -> (Header or None, CRC ok, the
    re-modulated symbols or None). The LLRs of repeated symbols are added. Without
    ``list_decoding`` only the successive-cancellation stage of :meth:`PolarHeader.decode` runs
    (0.13 ms against 1.4 ms: for trying many phase hypotheses)."""
    code = ofdm_header()
    soft = code.soft(np.asarray(y, np.complex64), noise_var)
    n = code.N
    folded = np.zeros(n, np.float32)
    for s in range(0, len(soft), n):
        part = soft[s:s + n]
        folded[:len(part)] += part
    # without list decoding: the successive-cancellation stage of PolarHeader.decode alone
    bits = code.decode(folded[None])[0] if list_decoding else code._sc(folded[None])[0]
    header, ok = bits_to_header(bits)
    if not ok:
        return None, False, None
    return header, True, np.resize(code.modulate(bits), len(y))


def common_phase(obs: np.ndarray, index: np.ndarray, grid: int = 4096):
    r"""Fit the phase :math:`\omega n` of a residual carrier offset to per-OFDM-symbol observations
    :math:`c_n = \sum_j w_j \bar x_j y_{n,j}` (known symbols x, equalised y, weights w) of the
    symbols n after the one the channel was estimated on (sync word 2, n = 0: its phase is the
    reference the equaliser divided out, so the line goes through 0 there):
    :math:`\hat\omega = \arg\max_\omega \mathrm{Re} \sum_n c_n e^{-j\omega n}` (zero-padded FFT,
    then a parabola through the peak), the maximum-likelihood estimate in white noise, without
    phase unwrapping. obs (M,) complex, index (M,) the symbols' n >= 1.

    Returns omega (rad/symbol)."""
    obs, index = np.asarray(obs, np.complex128), np.asarray(index, int)
    seq = np.zeros(max(grid, 4 * int(index.max() + 1)), np.complex128)
    np.add.at(seq, index, obs)
    spec = np.real(np.fft.fft(seq))
    i = int(np.argmax(spec))
    a, b, c = spec[i - 1], spec[i], spec[(i + 1) % len(spec)]
    den = a - 2 * b + c
    frac = 0.5 * (a - c) / den if den < 0 else 0.0
    omega = 2 * np.pi * (i + frac) / len(seq)
    return float((omega + np.pi) % (2 * np.pi) - np.pi)


def data_aided_noise(y_eq: np.ndarray, x: np.ndarray, h: np.ndarray) -> float:
    r""":math:`m = \mathrm{mean}_j |(y_j - x_j) \hat H_j|^2`: the noise per carrier before
    equalisation, estimation error included, from equalised symbols y of known symbols x
    received on carriers with estimates h (all the same shape)."""
    return float(np.mean(np.abs((np.asarray(y_eq) - np.asarray(x)) * np.asarray(h)) ** 2))
