"""The over-the-air burst format and its data-aided synchroniser (numpy, with its loops compiled in
:mod:`singlink_gr.burst_kernels`; GNU Radio supplies the sequences, the CRC, the header code and
the pulse shape).

One burst carries one image (all sizes in symbols)::

    | preamble Np | P | body[0:S] | P | body[S:2S] | P | ... | P | guard G (zeros) |
      body = header (72 bits, polar-coded to 512 QPSK symbols) + k DeepJSCC payload symbols

- **preamble**: Np = 2^d - 1 chips (255 by default) of an m-sequence from GNU Radio's
  ``digital.glfsr``, BPSK. Its first ``detect_len`` chips (64) are what ``digital.corr_est_cc``
  correlates against for detection, so detection tolerates a carrier offset over 64 chips rather
  than 255; the whole preamble serves timing, carrier offset and the SNR estimate. Why not
  Zadoff-Chu: a ZC sequence's ambiguity function couples frequency and time (an offset of one
  bin, 1/Np cycles per symbol, moves its correlation peak by u^-1 mod Np symbols), while an
  m-sequence has a thumbtack ambiguity function: a carrier offset only lowers the peak.
- **pilots** P: ``pilot_len`` (8) known BPSK symbols (another glfsr sequence) before every
  ``pilot_spacing`` (64) body symbols and once after the body, for phase and frequency tracking
  across the burst (the preamble's carrier estimate alone drifts by a fraction of a cycle over a
  2,300-symbol header at -5 dB).
- **header**: sequence number (16 bits), image id (16), k (16), flags (8: method hint in bits 0-1,
  last burst in bit 7) and CRC-16/CCITT (GNU Radio's ``digital.crc``), 72 bits, coded by
  ``header_code`` (:class:`HeaderCode`): ``"polar"`` (default, :class:`PolarHeader`): gr-fec's
  polar code N = 1024 / K = 72, QPSK, 512 symbols, list decoding of the pilot-aided LLRs;
  ``"spread"`` (:class:`SpreadHeader`, the earlier format): each bit BPSK spread by a +-1 code
  of ``header_sf`` chips (32: 2,304 symbols).
- **payload**: the k DeepJSCC symbols as the encoder made them (power 1 per image).

Every symbol has power 1; the pulse is root-raised-cosine from GNU Radio's ``firdes``, scaled to
unit energy, so after the matched filter a symbol keeps its amplitude and complex white noise of
variance sigma^2 per sample (``channels.channel_model``'s ``noise_voltage`` = sigma) becomes
sigma^2 per symbol: SNR = 1 / sigma^2, singlink's convention.

:class:`Synchronizer` is what GNU Radio lacks for short bursts at low SNR: a feed-forward,
data-aided estimator over the known preamble and pilots (timing from a segmented preamble
correlation; carrier offset from the FFT peak of the de-modulated preamble, the single-tone ML
estimator; residual frequency and phase from the pilots; SNR from every known symbol,
including the header re-modulated once its CRC passes). GNU Radio's ``symbol_sync_cc`` /
``pfb_clock_sync_ccf`` / ``costas_loop_cc`` are feedback loops for continuous streams; on a
2,600-symbol burst at -5 dB they spend the preamble converging and do not give an SNR estimate
from known symbols (``probe_mpsk_snr_est_c`` is decision-directed for M-PSK, not for the analog
DeepJSCC symbols).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from . import burst_kernels as K

__all__ = ["BurstConfig", "Header", "Layout", "build_burst", "rrc_taps", "detect_template", "Synchronizer",
           "SyncResult", "HEADER_BITS", "HEADER_CODES", "METHOD_FLAGS", "HeaderCode", "PolarHeader", "SpreadHeader",
           "header_code"]

HEADER_FIELDS = (("seq", 16), ("image_id", 16), ("k", 16), ("flags", 8))
HEADER_BITS = sum(n for _, n in HEADER_FIELDS) + 16   # + CRC-16
METHOD_FLAGS = {"deepjscc": 0, "sing-zero": 1, "sing-inn": 2}
FLAG_LAST = 0x80
HEADER_CODES = ("polar", "spread")
DEFAULT_HEADER_SF = 32


@dataclass(frozen=True)
class BurstConfig:
    """Burst format and receiver settings (both ends must agree on the format fields)."""

    sps: int = 4                  # samples per symbol
    rolloff: float = 0.35         # RRC roll-off
    rrc_span: int = 11            # RRC length in symbols (taps = span * sps + 1)
    preamble_degree: int = 8      # m-sequence degree: Np = 2^d - 1 = 255 chips
    detect_len: int = 64          # preamble chips corr_est_cc correlates against
    header_code: str = "polar"    # header channel code: "polar" (512 QPSK symbols) or "spread" (header_sf chips/bit)
    header_sf: int = DEFAULT_HEADER_SF   # header_code "spread": chips per bit
    pilot_spacing: int = 64       # body symbols between pilot blocks
    pilot_len: int = 8            # symbols per pilot block
    guard: int = 64               # zero symbols after every burst
    detect_metric: float = 0.08   # receiver: normalised preamble energy a burst must reach
    timing_search: int = 8        # receiver: +- samples searched around a corr_est_cc tag
    eq_taps: int = 0              # receiver: symbol-spaced LS equaliser taps (odd; 0 = none)

    def __post_init__(self):
        if self.sps < 2 or self.pilot_len < 1 or self.pilot_spacing < 1 or self.header_sf < 1:
            raise ValueError(f"invalid burst config {self}")
        if not 16 <= self.detect_len <= self.preamble_len:
            raise ValueError(f"detect_len must lie in [16, {self.preamble_len}]")
        if self.eq_taps < 0 or (self.eq_taps and self.eq_taps % 2 == 0):
            raise ValueError(f"eq_taps must be 0 or odd, not {self.eq_taps}")
        if self.header_code not in HEADER_CODES:
            raise ValueError(f"header_code {self.header_code!r}: choose one of {', '.join(HEADER_CODES)}")
        if self.header_code != "spread" and self.header_sf != DEFAULT_HEADER_SF:
            # a silently ignored header_sf=4 would leave the user believing in a short spread header
            raise ValueError(f"header_sf={self.header_sf} applies to header_code 'spread' only, not {self.header_code!r}")

    @property
    def preamble_len(self) -> int:
        return (1 << self.preamble_degree) - 1

    @property
    def header_symbols(self) -> int:
        return header_code(self).symbols

    @property
    def ntaps(self) -> int:
        return self.rrc_span * self.sps + 1


@dataclass(frozen=True)
class Header:
    seq: int
    image_id: int
    k: int
    flags: int = 0

    @property
    def last(self) -> bool:
        return bool(self.flags & FLAG_LAST)

    @property
    def method_hint(self) -> str:
        code = self.flags & 0x3
        return next((m for m, c in METHOD_FLAGS.items() if c == code), "deepjscc")


# --- sequences, CRC, pulse (GNU Radio's generators) ----------------------------------------
def _glfsr_bits(degree: int, seed: int, n: int) -> np.ndarray:
    from gnuradio import digital

    g = digital.glfsr(digital.glfsr.glfsr_mask(degree), seed)
    return np.array([g.next_bit() for _ in range(n)], dtype=np.uint8)


@lru_cache(maxsize=None)
def _sequences(degree: int):
    pre = (1.0 - 2.0 * _glfsr_bits(degree, 1, (1 << degree) - 1)).astype(np.complex64)
    pilots = (1.0 - 2.0 * _glfsr_bits(11, 0x2A7, (1 << 11) - 1)).astype(np.complex64)
    return pre, pilots


def preamble(cfg: BurstConfig) -> np.ndarray:
    return _sequences(cfg.preamble_degree)[0]


def pilot_symbols(cfg: BurstConfig, n: int) -> np.ndarray:
    return np.resize(_sequences(cfg.preamble_degree)[1], n)


@lru_cache(maxsize=1)
def _crc16():
    from gnuradio import digital

    return digital.crc(16, 0x1021, 0xFFFF, 0, False, False)   # CRC-16/CCITT-FALSE


def crc16(data: bytes) -> int:
    return int(_crc16().compute(list(data)))


def header_to_bits(h: Header, crc: int | None = None) -> np.ndarray:
    fields = bytearray()
    for (name, nbits) in HEADER_FIELDS:
        value = int(getattr(h, name))
        if not 0 <= value < (1 << nbits):
            raise ValueError(f"header field {name}={value} does not fit {nbits} bits")
        fields += value.to_bytes(nbits // 8, "big")
    crc = crc16(bytes(fields)) if crc is None else int(crc)
    data = bytes(fields) + crc.to_bytes(2, "big")
    return np.unpackbits(np.frombuffer(data, np.uint8))


def crc_ok(bits) -> bool:
    """Whether HEADER_BITS bits end with the CRC-16 of the fields before it."""
    data = np.packbits(np.asarray(bits, np.uint8)).tobytes()
    return crc16(data[:-2]) == int.from_bytes(data[-2:], "big")


def bits_to_header(bits) -> tuple[Header | None, bool]:
    """(Header, crc_ok) from HEADER_BITS bits."""
    data = np.packbits(np.asarray(bits, np.uint8)).tobytes()
    fields, crc = data[:-2], int.from_bytes(data[-2:], "big")
    values, pos = {}, 0
    for name, nbits in HEADER_FIELDS:
        values[name] = int.from_bytes(fields[pos:pos + nbits // 8], "big")
        pos += nbits // 8
    return Header(**values), crc16(fields) == crc


# --- header codes --------------------------------------------------------------------------------
class HeaderCode:
    """How the HEADER_BITS header bits become ``symbols`` burst symbols and back.

    :meth:`modulate` maps bits (HEADER_BITS,) to power-1 symbols; :meth:`soft` turns received,
    phase-corrected symbols (..., symbols) and the complex noise variance per symbol into the
    decoder's soft values; :meth:`decode` turns soft values (B, n) into bits (B, HEADER_BITS),
    batched so that a Monte Carlo decodes many headers in one call. Whether a header is right is
    decided by its CRC-16 (:func:`bits_to_header`) after decoding; a code may also use the CRC to
    choose between decoders (:class:`PolarHeader` does). :meth:`decode_one` is the receiver's
    call: one header's bits and the symbols they modulate to (known symbols for the gain and SNR
    estimate once the CRC passes)."""

    symbols: int

    def modulate(self, bits) -> np.ndarray:
        raise NotImplementedError

    def soft(self, y: np.ndarray, noise_var: float) -> np.ndarray:
        raise NotImplementedError

    def decode(self, soft: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def decode_one(self, soft: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bits = self.decode(soft[None])[0]
        return bits, self.modulate(bits)


class SpreadHeader(HeaderCode):
    """The earlier header: each bit BPSK spread by a +-1 code (glfsr) of ``sf`` chips, de-spread by
    correlation and sliced (sf = 32: 15 dB of spreading gain, 2,304 symbols; at -5 dB a bit sees
    10 dB, 72-bit header error ~3e-4 with ideal phase, 0.5 % measured through the receiver)."""

    def __init__(self, sf: int):
        self.sf = int(sf)
        self.symbols = HEADER_BITS * self.sf
        self.code = (1.0 - 2.0 * _glfsr_bits(9, 0x5B, self.sf)).astype(np.float32)

    def modulate(self, bits) -> np.ndarray:
        b = np.asarray(bits, np.uint8)
        return ((1.0 - 2.0 * b.astype(np.float32))[:, None] * self.code[None, :]).reshape(-1).astype(np.complex64)

    def soft(self, y, noise_var):
        chips = np.asarray(y).reshape(*np.shape(y)[:-1], HEADER_BITS, self.sf)
        return np.real(chips @ self.code.astype(np.complex64)).astype(np.float32)   # > 0: bit 0

    def decode(self, soft):
        return (np.asarray(soft) < 0).astype(np.uint8)


class _FecCoder:
    """A gr-fec ``generic_encoder`` / ``generic_decoder`` called frame by frame from numpy.

    gr-fec's coders are meant for its ``fec.encoder`` / ``fec.decoder`` stream blocks; the work
    those blocks do per frame is the coder's ``generic_work(in, out)`` on raw buffers, which the
    Python bindings take as PyCapsules. Calling it directly gives gr-fec's C++ decoder per burst
    without a flowgraph per header (building and running one costs more than decoding). The lock
    makes one coder safe for blocks in different scheduler threads (a coder keeps state between
    its input and output). The coder works on one frame buffer pair whose capsules are made once
    (a burst decodes one header: building arrays and capsules per call cost as much as an SC
    decode's tenth)."""

    def __init__(self, coder, in_dtype, n_in, out_dtype, n_out):
        import ctypes
        import threading

        self.coder, self.n_in, self.n_out = coder, int(n_in), int(n_out)
        self.in_dtype, self.out_dtype = np.dtype(in_dtype), np.dtype(out_dtype)
        new = ctypes.pythonapi.PyCapsule_New
        new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
        self._in, self._out = np.zeros(self.n_in, self.in_dtype), np.zeros(self.n_out, self.out_dtype)
        self._in_capsule = new(self._in.ctypes.data, None, None)
        self._out_capsule = new(self._out.ctypes.data, None, None)
        self._lock = threading.Lock()

    def __call__(self, frames) -> np.ndarray:
        x = np.asarray(frames).reshape(-1, self.n_in)
        out = np.empty((len(x), self.n_out), self.out_dtype)
        with self._lock:
            for i in range(len(x)):
                self._in[:] = x[i]
                self.coder.generic_work(self._in_capsule, self._out_capsule)
                out[i] = self._out
        return out


class PolarHeader(HeaderCode):
    """The header as a polar code from gr-fec: N = 1024, K = HEADER_BITS = 72 (the header's own
    CRC-16 is among the 72 bits), QPSK (Gray), 512 symbols; decoded from LLRs by gr-fec's
    successive-cancellation decoder (``polar_decoder_sc``, 0.13 ms; compiled here, the same decisions:
    :func:`~singlink_gr.burst_kernels.polar_sc`) and, for the headers whose
    CRC-16 then fails, by its list decoder (``polar_decoder_sc_list``, list 16, 1.4 ms): the
    list decoder's error rate at the SC decoder's cost (at -5 dB SC fails 4 headers in 10,000).

    Why this code: at -5 dB the channel carries ~0.40 bit/symbol, so 72 bits need >= 180 symbols;
    repetition (spreading) spends 2,304. Measured before choosing (ideal phase and noise
    variance, 10,000 headers at -5.5 dB unless said; ``benchmarks/header_code.py`` gives the
    numbers through the receiver):

    - polar N = 1024 / K = 72, QPSK (512 symbols), SC list 8: 4 errors; list 16: 1 (1.4 ms per
      header); list 32: 1 (2.9 ms). Through the receiver at -6 dB (3,000 headers, carrier offset
      5e-4): list 8 8 errors, list 16 3; repeating 88 more symbols (600 in all) did not do better
      than list 16 (4-6 errors), so the header stays at 512 symbols;
    - Sionna 1.2.2's 5G polar (CRC-11-aided SCL, through TensorFlow): its decoder graph takes
      20-25 s to trace per process and 3-35 ms per header after that, against ~1 ms for gr-fec's
      C++ decoder, for a gain this header does not need;
    - gr-fec's convolutional code (K = 7, Viterbi) repeated to 512 symbols would sit at Eb/N0
      = 3.5 dB, where its 72-bit frame error is near 1e-3: no margin for estimation losses.

    QPSK rather than BPSK: the same Eb/N0 per bit on a coherent channel, and twice the coded bits
    in the same symbols (rate 0.07 instead of 0.14). N = 1024 unpunctured: the largest polar code
    whose QPSK symbols (512) stay under the 600 the format may spend, with no rate matching.
    Frozen bits: gr-fec's Bhattacharyya-bound construction (``fec.polar.bhattacharyya_bounds``)
    at a design Ec/N0 of -3 dB (at -5.5 dB SNR, list 8: 4 errors against 8, 22 and 79 at design
    -5, 0 and 2 dB); gr-fec's Tal-Vardy construction fails in GNU Radio 3.10.5 (a typo in its
    ``upper_convolve``). A header decoded into the wrong bits is caught by the CRC-16."""

    N = 1024
    LIST = 16
    DESIGN_SNR_DB = -3.0
    SYMBOLS = N // 2

    def __init__(self, list_size: int = LIST):
        from gnuradio import fec
        from gnuradio.fec.polar import bhattacharyya_bounds
        from gnuradio.fec.polar import channel_construction as cc

        frozen = [int(i) for i in cc.get_frozen_bit_indices_from_z_parameters(
            bhattacharyya_bounds(self.DESIGN_SNR_DB, self.N), self.N - HEADER_BITS)]
        zeros = [0] * len(frozen)
        self.symbols = self.SYMBOLS
        self.frozen = np.array(sorted(frozen))
        self._enc = _FecCoder(fec.polar_encoder.make(self.N, HEADER_BITS, frozen, zeros, False),
                              np.uint8, HEADER_BITS, np.uint8, self.N)
        # gr-fec's SC decoder, compiled (burst_kernels.polar_sc says why): bit-reversal order, frozen mask, info bits
        depth = self.N.bit_length() - 1
        self._reverse = np.array([int(format(i, f"0{depth}b")[::-1], 2) for i in range(self.N)], np.int64)
        frozen_mask = np.zeros(self.N, bool)
        frozen_mask[self.frozen] = True
        self._info = np.flatnonzero(~frozen_mask).astype(np.int64)
        self._rate0 = np.zeros((depth + 1, self.N), bool)   # [h, q]: bits q 2^h .. (q + 1) 2^h - 1 all frozen
        for h in range(depth + 1):
            self._rate0[h, :self.N >> h] = frozen_mask.reshape(-1, 1 << h).all(axis=1)
        self._list = _FecCoder(fec.polar_decoder_sc_list.make(int(list_size), self.N, HEADER_BITS, frozen, zeros),
                               np.float32, self.N, np.uint8, HEADER_BITS)

    QPSK = (np.array([1 + 1j, 1 - 1j, -1 + 1j, -1 - 1j]) / np.sqrt(2)).astype(np.complex64)   # Gray, by 2 c0 + c1

    def modulate(self, bits) -> np.ndarray:
        c = self._enc(np.asarray(bits, np.uint8))[0]
        return self.QPSK[2 * c[0::2] + c[1::2]]

    def soft(self, y, noise_var):
        """LLRs log p(1)/p(0) (gr-fec's polar convention): -2 sqrt(2) Re|Im(y) / noise_var per bit."""
        y = np.ascontiguousarray(y, np.complex64)
        s = np.float32(-2 * np.sqrt(2) / max(float(noise_var), 1e-6))
        return s * y.view(np.float32)   # (re, im) interleaved per symbol

    def _sc(self, soft) -> np.ndarray:
        """gr-fec's successive-cancellation decisions: LLR frames (B, N) -> bits (B, HEADER_BITS)."""
        soft = np.asarray(soft, np.float32).reshape(-1, self.N)
        bits = np.empty((len(soft), HEADER_BITS), np.uint8)
        for i in range(len(soft)):
            bits[i] = K.polar_sc(soft[i], self._reverse, self._rate0, self._info)[0]
        return bits

    def decode_one(self, soft):
        """One header as :meth:`decode` decides it, and its symbols: SC's own re-encoded codeword
        (the partial sums at the root of its tree, what gr-fec's encoder gives for those bits,
        without a second pass) unless list decoding took over."""
        bits, code = K.polar_sc(np.ascontiguousarray(soft, np.float32), self._reverse, self._rate0, self._info)
        if not crc_ok(bits):
            bits = self._list(soft[None])[0]
            return bits, self.modulate(bits)
        return bits, self.QPSK[2 * code[0::2] + code[1::2]]

    def decode(self, soft):
        """SC first; list decoding only where the CRC-16 rejects the SC decision (a CRC-passing
        SC decision is wrong with probability ~2^-16 of SC's own few failures)."""
        soft = np.asarray(soft, np.float32).reshape(-1, self.N)
        bits = self._sc(soft)
        redo = [i for i in range(len(bits)) if not crc_ok(bits[i])]
        if redo:
            bits[redo] = self._list(soft[redo])
        return bits


@lru_cache(maxsize=8)
def _header_code(code: str, sf: int) -> HeaderCode:
    return PolarHeader() if code == "polar" else SpreadHeader(sf)


def header_code(cfg: BurstConfig) -> HeaderCode:
    """The header code of a config (shared per setting: the coders are built once)."""
    return _header_code(cfg.header_code, cfg.header_sf)


def rrc_taps(cfg: BurstConfig) -> np.ndarray:
    """Root-raised-cosine taps (GNU Radio's firdes), scaled to unit energy."""
    from gnuradio.filter import firdes

    taps = np.asarray(firdes.root_raised_cosine(1.0, float(cfg.sps), 1.0, float(cfg.rolloff), cfg.ntaps), np.float64)
    return (taps / np.sqrt(np.sum(taps ** 2))).astype(np.float32)


def detect_template(cfg: BurstConfig) -> np.ndarray:
    """What ``corr_est_cc`` correlates the matched-filter output against: the first ``detect_len``
    preamble chips, upsampled and raised-cosine shaped (RRC * RRC), starting at the first chip's
    peak."""
    h = rrc_taps(cfg).astype(np.float64)
    rc = np.convolve(h, h)
    up = np.zeros((cfg.detect_len - 1) * cfg.sps + 1, np.complex128)
    up[::cfg.sps] = preamble(cfg)[:cfg.detect_len]
    c = len(rc) // 2
    return np.convolve(up, rc)[c:c + len(up)].astype(np.complex64)


# --- layout --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Where everything sits in a burst of payload length k (symbol indices)."""

    length: int                 # burst symbols without the guard
    preamble: np.ndarray
    pilots: np.ndarray          # indices of all pilot symbols
    pilot_blocks: np.ndarray    # (blocks, pilot_len) indices
    header: np.ndarray          # header symbol indices (cfg.header_symbols)
    payload: np.ndarray         # k payload indices

    @classmethod
    @lru_cache(maxsize=64)
    def of(cls, cfg: BurstConfig, k: int) -> "Layout":
        np_ = cfg.preamble_len
        body = cfg.header_symbols + int(k)
        blocks, body_idx, pos, done = [], [], np_, 0
        while True:
            blocks.append(np.arange(pos, pos + cfg.pilot_len))
            pos += cfg.pilot_len
            if done >= body:
                break
            n = min(cfg.pilot_spacing, body - done)
            body_idx.append(np.arange(pos, pos + n))
            pos += n
            done += n
        body_idx = np.concatenate(body_idx)
        pb = np.stack(blocks)
        return cls(pos, np.arange(np_), pb.reshape(-1), pb, body_idx[:cfg.header_symbols],
                   body_idx[cfg.header_symbols:])

    def header_end(self) -> int:
        """Index just past the last header symbol (the layout before it does not depend on k)."""
        return int(self.header[-1]) + 1


def build_burst(payload, header: Header, cfg: BurstConfig, header_bits=None) -> np.ndarray:
    """One burst's symbols (complex64, followed by ``cfg.guard`` zeros). ``header_bits`` overrides
    the header's bits (to send corrupted headers in tests)."""
    payload = np.asarray(payload, np.complex64).reshape(-1)
    lay = Layout.of(cfg, len(payload))
    out = np.zeros(lay.length + cfg.guard, np.complex64)
    out[lay.preamble] = preamble(cfg)
    out[lay.pilots] = pilot_symbols(cfg, len(lay.pilots))
    bits = header_to_bits(header) if header_bits is None else np.asarray(header_bits, np.uint8)
    out[lay.header] = header_code(cfg).modulate(bits)
    out[lay.payload] = payload
    return out


# --- receiver --------------------------------------------------------------------------------------
@dataclass
class SyncResult:
    ok: bool
    reason: str = ""                   # why not ok: "no preamble", "header crc", ...
    metric: float = 0.0                # normalised preamble energy (detection statistic)
    timing: float = 0.0                # burst start (first preamble chip), samples into the buffer
    cfo: float = 0.0                   # carrier offset, cycles per sample (preamble; + pilots after finish)
    header: Header | None = None
    snr_db: float | None = None
    gain: complex = 0j
    payload: np.ndarray | None = None  # k equalised payload symbols
    raw: np.ndarray | None = None      # symbols at the found timing before carrier/phase correction
    synced: np.ndarray | None = None   # all burst symbols after correction and equalisation
    layout: Layout | None = None
    extra: dict = field(default_factory=dict)


class Synchronizer:
    """Data-aided burst receiver for matched-filter output ``x`` (complex64, ``cfg.sps`` samples
    per symbol). :meth:`detect` finds timing and carrier offset near a guess;
    :meth:`header` decodes the header; :meth:`finish` tracks phase over the whole burst,
    estimates gain and SNR and returns the equalised payload; :meth:`decode` does both at once
    when the receiver knows k."""

    SEGMENT = 15   # preamble chips per non-coherent segment in the timing search (255 = 17 x 15)
    # residual frequency search over the pilots (cycles/symbol): a coarse grid, then offsets around its peak
    FREQ_GRID = np.linspace(-2e-3, 2e-3, 41)
    FREQ_FINE = np.linspace(-1e-4, 1e-4, 21)

    def __init__(self, cfg: BurstConfig = BurstConfig()):
        self.cfg = cfg
        self.pre = preamble(cfg)
        self.code = header_code(cfg)
        self.nfft = 4096
        self.nfft_coarse = 1024
        # 1.44 for Np = 255; the 1.01 covers rounding in the FFTs
        self.coarse_bound = 1.01 / (1 - ((cfg.preamble_len - 1) * np.pi / self.nfft_coarse) ** 2 / 2)
        self._known_cache = {}   # (k, symbols) -> preamble and pilot indices and values
        self._gain_idx = {}      # k -> indices of the preamble, pilots and header (gain and SNR)
        self._pilot_cache = {}   # (k, pilot blocks) -> their indices and values
        K.load()

    # span of samples needed around a guess
    def margin(self) -> int:
        return self.cfg.timing_search + 3

    def samples_needed(self, k: int | None) -> int:
        """Samples from the guess - margin to the end of the header region (k None) or of the burst."""
        cfg = self.cfg
        lay = Layout.of(cfg, 0 if k is None else k)
        end = lay.header_end() if k is None else lay.length
        return 2 * self.margin() + end * cfg.sps

    def preamble_samples(self) -> int:
        """Samples from the guess - margin that :meth:`detect` needs."""
        return 2 * self.margin() + self.cfg.preamble_len * self.cfg.sps + 4

    def detect(self, x: np.ndarray, guess: int, min_metric: float = 0.0) -> SyncResult:
        """Timing and carrier offset of a preamble near sample ``guess``: the segmented
        non-coherent correlation's peak within +- ``timing_search`` samples
        (:func:`~singlink_gr.burst_kernels.preamble_search`), then the peak of a ``nfft``-point
        periodogram of the de-modulated preamble (:func:`~singlink_gr.burst_kernels.carrier_peak`);
        ``ok`` when the normalised coherent energy reaches ``detect_metric`` (and ``min_metric``).

        Most candidates are no preamble (at -5 dB ``corr_est_cc`` tags data and noise peaks, and
        every burst checks the strongest tags inside it for a new preamble), so a coarse
        ``nfft_coarse``-point periodogram P (a quarter of the cost) is tried first. |Z(f)|^2 of the
        Np-chip preamble is a real trigonometric polynomial of degree n = Np - 1, so by Bernstein's
        inequality (|T''| <= n^2 max|T|) and T' = 0 at its peak, max_f |Z|^2 <= max P / (1 - (n pi /
        N)^2 / 2) for N grid points: when even that bound stays under ``detect_metric`` the full
        search could not pass either, and the candidate is refused with the coarse peak as its
        metric. Only the others get the ``nfft``-point search, evaluated around the coarse peak
        (:func:`~singlink_gr.burst_kernels.carrier_peak`). Against the full ``nfft``-point FFT:
        the same decisions and carrier offsets (within 3e-11) on 1,500 bursts at -8 to 0 dB and
        1,500 noise windows."""
        cfg = self.cfg
        threshold = max(cfg.detect_metric, float(min_metric))
        status, t0, metric, f = K.detect(np.asarray(x, np.complex64), int(guess), cfg.timing_search, self.pre, cfg.sps,
                                         self.SEGMENT, self.nfft_coarse, self.nfft, self.coarse_bound, threshold)
        if status == 0:
            return SyncResult(False, "window outside the buffer")
        ok = status == 2 and metric >= threshold
        return SyncResult(ok, "" if ok else "no preamble", metric=metric, timing=t0, cfo=f / cfg.sps)

    def first_preamble(self, x: np.ndarray, guesses, min_metric: float = 0.0) -> int | None:
        """The smallest of ``guesses`` (samples into x, each with the samples :meth:`detect` needs
        around it) at which :meth:`detect` with ``min_metric`` would pass, or None."""
        cfg = self.cfg
        first = K.first_preamble(np.asarray(x, np.complex64), np.asarray(guesses, np.int64), cfg.timing_search,
                                 self.pre, cfg.sps, self.SEGMENT, self.nfft_coarse, self.nfft, self.coarse_bound,
                                 max(cfg.detect_metric, float(min_metric)))
        return None if first < 0 else int(first)

    def _symbols(self, x, res, n, first=0):
        """Burst symbols first..n-1 at the found timing: as sampled, and with the carrier offset removed."""
        if n <= first:
            return np.zeros(0, np.complex64), np.zeros(0, np.complex64)
        if res.timing + self.cfg.sps * (n - 1) + 3 > len(x):
            raise IndexError("burst runs past the buffer")
        return K.burst_symbols(np.asarray(x, np.complex64), float(res.timing), self.cfg.sps, int(first), int(n),
                               float(res.cfo * self.cfg.sps))

    def _linear_eq(self, y, lay, nblocks):
        """Symbol-spaced linear equaliser (``cfg.eq_taps`` taps), least squares on every known symbol
        so far (preamble and the first ``nblocks`` pilot blocks) as targets: for echoes longer than
        a fraction of a symbol, which the single complex gain cannot undo. GNU Radio's
        ``linear_equalizer`` adapts sample by sample (LMS/CMA) and would spend the preamble
        converging at low SNR; a block LS solve uses all of it at once."""
        L = self.cfg.eq_taps
        if not L:
            return y
        h = L // 2
        targets = np.concatenate([lay.preamble, lay.pilot_blocks[:nblocks].reshape(-1)])
        pilots = pilot_symbols(self.cfg, lay.pilot_blocks.size)[:nblocks * self.cfg.pilot_len]
        values = np.concatenate([self.pre, pilots])
        keep = (targets >= h) & (targets < len(y) - h)
        targets, values = targets[keep], values[keep]
        a = y[targets[:, None] + np.arange(-h, h + 1)[None, :]]
        ridge = 1e-3 * np.real(np.vdot(a, a)) / len(targets)
        w = np.linalg.solve(a.conj().T @ a + ridge * np.eye(L), a.conj().T @ values)
        out = np.zeros_like(y)
        for j in range(-h, h + 1):
            lo, hi = max(0, -j), len(y) - max(0, j)
            out[lo:hi] += w[j + h] * y[lo + j:hi + j]
        return out.astype(np.complex64)

    def _phase_track(self, y, lay, nblocks, metric=0.5):
        """y with its phase removed, using the preamble and the first ``nblocks`` pilot blocks, and
        the residual frequency (cycles/symbol): a coarse residual from consecutive pilot blocks,
        then the ML estimate for a constant offset over all blocks, and what is left (phase noise)
        smoothed and interpolated (:func:`~singlink_gr.burst_kernels.phase_track`, which says how).
        The smoothing spans enough pilot symbols for a 0.1 rad phase error at the SNR the preamble
        metric indicates: 3 blocks from about 5 dB up, 21 at -5 dB, where slow phase noise matters
        less than noisy pilots."""
        key = (len(lay.payload), nblocks)
        if key not in self._pilot_cache:
            pvals = pilot_symbols(self.cfg, lay.pilot_blocks.size).reshape(lay.pilot_blocks.shape)
            self._pilot_cache[key] = (np.ascontiguousarray(lay.pilot_blocks[:nblocks]),
                                      np.ascontiguousarray(pvals[:nblocks]))
        pb, pvals = self._pilot_cache[key]
        return K.phase_track(np.ascontiguousarray(y, np.complex64), self.cfg.preamble_len, self.pre, pb, pvals,
                             float(metric), self.FREQ_GRID, self.FREQ_FINE)

    def header_soft(self, y, lay) -> np.ndarray:
        """The header code's soft values (LLRs for the polar code) from phase-corrected symbols y
        (the first len(y) burst symbols). The noise variance the LLRs need comes from the known
        symbols in y (preamble and pilots): gain g by least squares, noise = mean |y - g x|^2; the
        header symbols are scaled by 1/g, so their noise variance is noise / |g|^2."""
        known, ref = self._known(lay, len(y))
        g, residual = K.known_gain(y, known, ref)   # g = 1 where it vanishes (no signal)
        noise = residual / len(known)
        return self.code.soft(y[lay.header] / np.complex64(g), noise / abs(g) ** 2)

    def _known(self, lay, n):
        """(indices, values) of the preamble and the pilot symbols among the first n burst symbols."""
        key = (len(lay.payload), n)
        if key not in self._known_cache:
            keep = lay.pilots < n
            self._known_cache[key] = (np.concatenate([lay.preamble, lay.pilots[keep]]),
                                      np.concatenate([self.pre, pilot_symbols(self.cfg, len(lay.pilots))[keep]]))
        return self._known_cache[key]

    def _read_header(self, y, lay, res) -> bool:
        """Decode the header from phase-corrected symbols y; False when the CRC fails."""
        soft = self.header_soft(y, lay)
        bits, symbols = self.code.decode_one(soft)
        h, ok = bits_to_header(bits)
        res.extra["header_soft"] = soft
        res.extra["header_bits"] = bits
        res.extra["header_known"] = symbols
        res.header = h if ok else None
        if not ok:
            res.ok, res.reason = False, "header crc"
        return ok

    def header(self, x: np.ndarray, res: SyncResult) -> SyncResult:
        """Decode the header alone (when k is not known in advance)."""
        lay = Layout.of(self.cfg, 0)
        end = lay.header_end()
        nblocks = int(np.sum(lay.pilot_blocks[:, 0] < end))
        raw, y = self._symbols(x, res, end)
        res.extra["header_symbols"] = (raw, y)   # finish() goes on from here
        y = self._linear_eq(y, lay, nblocks)
        y, _ = self._phase_track(y, lay, nblocks, res.metric)
        self._read_header(y, lay, res)
        return res

    def finish(self, x: np.ndarray, res: SyncResult) -> SyncResult:
        """After :meth:`header`: the rest of the burst, phase over all pilots, gain, SNR, payload."""
        lay = Layout.of(self.cfg, res.header.k)
        raw0, y0 = res.extra.pop("header_symbols", (np.zeros(0, np.complex64),) * 2)
        raw1, y1 = self._symbols(x, res, lay.length, first=len(raw0))
        raw, y = np.concatenate([raw0, raw1]), np.concatenate([y0, y1])
        y = self._linear_eq(y, lay, len(lay.pilot_blocks))
        y, fr = self._phase_track(y, lay, len(lay.pilot_blocks), res.metric)
        return self._equalise(res, lay, raw, y, fr)

    def align(self, x: np.ndarray, res: SyncResult, k: int):
        """A detected burst of payload length k at the found timing: (layout, symbols as sampled,
        symbols with carrier, phase (and echoes, ``eq_taps``) removed, residual frequency the
        pilots saw). One interpolation and one phase track over the whole burst."""
        lay = Layout.of(self.cfg, k)
        raw, y = self._symbols(x, res, lay.length)
        y = self._linear_eq(y, lay, len(lay.pilot_blocks))
        y, fr = self._phase_track(y, lay, len(lay.pilot_blocks), res.metric)
        return lay, raw, y, fr

    def decode(self, x: np.ndarray, res: SyncResult, k: int) -> SyncResult:
        """Header and payload in one pass (:meth:`align`), for a receiver that knows its k (the
        burst is buffered for that k). A header announcing another k leaves ``ok`` False with
        reason "wrong k" (``header`` set)."""
        lay, raw, y, fr = self.align(x, res, k)
        if not self._read_header(y, lay, res):
            return res
        if res.header.k != k:
            res.ok, res.reason = False, "wrong k"
            return res
        return self._equalise(res, lay, raw, y, fr)

    def _equalise(self, res, lay, raw, y, fr):
        cfg = self.cfg
        res.extra["cfo_preamble"] = res.cfo
        res.cfo = res.cfo + fr / cfg.sps      # + the residual the pilots saw
        # with the equaliser on, preamble and pilots trained it (their residual is optimistic): the
        # header symbols alone (512 by default) then give gain and SNR
        header = res.extra["header_known"]   # the header's symbols, known once its CRC passed
        if cfg.eq_taps:
            known_idx, xk = lay.header, header
        else:
            idx, ref = self._known(lay, lay.length)
            key = len(lay.payload)
            if key not in self._gain_idx:
                self._gain_idx[key] = np.concatenate([idx, lay.header])
            known_idx, xk = self._gain_idx[key], np.concatenate([ref, header])
        n = len(known_idx)
        g, residual = K.known_gain(y, known_idx, xk)
        noise = residual / (n - 1)
        sig = max(abs(g) ** 2 - noise / n, 1e-12)
        res.snr_db = float(10 * np.log10(sig / max(noise, 1e-20)))
        res.gain = g
        y_eq = y / np.complex64(g)
        res.payload = y_eq[lay.payload]
        res.raw, res.synced, res.layout = raw, y_eq, lay
        res.ok, res.reason = True, ""
        return res

    def process(self, x: np.ndarray, guess: int) -> SyncResult:
        """detect -> header -> finish on a buffer holding the whole burst."""
        res = self.detect(x, guess)
        if not res.ok:
            return res
        res = self.header(x, res)
        if res.header is None:
            return res
        return self.finish(x, res)


def modulate(symbols: np.ndarray, cfg: BurstConfig) -> np.ndarray:
    """Symbols -> pulse-shaped samples in numpy (for tests and notebooks; the blocks use
    ``filter.interp_fir_filter_ccf`` with the same taps)."""
    up = np.zeros(len(symbols) * cfg.sps, np.complex64)
    up[::cfg.sps] = symbols
    return np.convolve(up, rrc_taps(cfg)).astype(np.complex64)


def matched_filter(samples: np.ndarray, cfg: BurstConfig) -> np.ndarray:
    return np.convolve(samples, rrc_taps(cfg)).astype(np.complex64)
