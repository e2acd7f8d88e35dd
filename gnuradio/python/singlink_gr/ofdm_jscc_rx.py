"""OFDM receiver: complex baseband -> GNU Radio's OFDM synchronisation, demux, channel estimation and
equalisation -> DeepJSCC decoding at the SNR estimated from the frame's known symbols.

Wired as GNU Radio's ``digital.ofdm_rx`` (Schmidl & Cox, header/payload demux driven by the
header's message, the preamble's channel estimate carried to the payload), with the steps it has
no block for (timing at low SNR, decision-free phase tracking, the SNR for an analog payload; see
:mod:`singlink_gr.ofdm`):

- :class:`preamble_timing`: Schmidl & Cox triggers moved to the known preamble's correlation peak,
  false ones rejected, one frequency per frame from the preamble's periodic parts;
- :class:`sync_word_tap`: sync word 1, which ``ofdm_chanest_vcvc`` consumes unused, handed on as a tag;
- :class:`ofdm_header_reader`: equalised header OFDM symbols -> residual-frequency search, polar
  decoding on both sync words' estimate, CRC -> ``header_data`` message for ``header_payload_demux``
  (payload length, channel estimate, noise per carrier measured on the re-modulated header, the
  header's phase observations);
- :class:`ofdm_payload_phase`: equalised payload OFDM symbols -> the phase fitted to header and
  payload pilots removed, ``singlink.phy.ofdm.jscc_input``'s shrinkage and SNR, tags for jscc_rx;
- :class:`ofdm_demod` (samples -> tagged frames of k symbols) and :class:`ofdm_jscc_rx` (that ->
  ``jscc_rx``): the hierarchical blocks.
"""
from __future__ import annotations

import numpy as np
import pmt
from gnuradio import analog, blocks, digital, fft, gr

from .burst import FLAG_LAST
from .common import DEFAULT_CHECKPOINT, TAG_EOB, TAG_FRAME, TAG_IMAGE_ID, TAG_SNR, tags_in, to_pmt
from .frame_block import frame_block
from .jscc_rx import jscc_rx
from .ofdm import (TAG_CARR_OFFSET, TAG_CHAN_TAPS, TAG_ESTIMATE, TAG_NOISE, TAG_PHASE, TAG_SYNC1, OFDMConfig,
                   common_phase, data_aided_noise, read_header)

FRAME_LEN = "frame_len"    # GNU Radio's OFDM frame length tag (OFDM symbols)
STATS = ("headers", "header_crc", "wrong_k", "frames")
# The residual frequencies (rad per OFDM symbol) the header reader tries against the CRC: preamble_timing's
# estimate leaves a residual of 0.26 rms at 0 dB per subcarrier (measured), so +-1.0 is 3.8 of those;
# decoding needs the residual within about 0.02 (measured: 89 of 90 headers at 0 dB decode at the true
# residual, 87 at 0.02 from it)
OMEGA_MAX, OMEGA_STEP = 1.0, 0.02


def _pilot_obs(y, h, cfg: OFDMConfig, first: int):
    """Per-OFDM-symbol pilot correlations sum_c |H_c|^2 conj(p_c) y_c of equalised symbols y (n, fft_len)
    with channel estimate h (fft_len,): weighted by |H_c|^2, as the noise of y_c is m / |H_c|^2 (a
    pilot in a spectral null would otherwise dominate the phase)."""
    c = cfg.index(cfg.pilot_carriers[0])
    return np.sum(np.conj(cfg.pilot_values(first, len(y))) * y[:, c] * np.abs(h[c]) ** 2, axis=1)


class sync_word_tap(gr.sync_block):
    """Header frames of FFT'd OFDM symbols (sync word 1, sync word 2, the header's symbols; from
    ``header_payload_demux`` via ``fft.fft_vcc``) passed through unchanged, sync word 1 of each added
    as the tag ``sync_word1`` (complex vector) on the frame's first header symbol, the item that
    ``ofdm_chanest_vcvc`` gives out first and tags with its estimate.

    Why: ``ofdm_chanest_vcvc`` estimates the channel from sync word 2 alone and consumes both sync
    words; at 0 dB per subcarrier that estimate is as noisy as the symbols it equalises. Sync word 1
    carries known values of power 2 on every second carrier: combined with sync word 2 (see
    :class:`ofdm_header_reader`), those carriers' estimates are 4.8 dB better for the header."""

    def __init__(self, config: OFDMConfig):
        self.cfg = config
        gr.sync_block.__init__(self, name="singlink_sync_word_tap", in_sig=[(np.complex64, config.fft_len)],
                               out_sig=[(np.complex64, config.fft_len)])
        self.frame = 2 + config.header_ofdm_symbols
        self.set_output_multiple(self.frame)   # whole frames per call: item 0 of each is sync word 1
        self._key = pmt.intern(TAG_SYNC1)

    def work(self, input_items, output_items):
        inp, out = input_items[0], output_items[0]
        out[:] = inp
        start = self.nitems_read(0)
        for i in range(0, len(inp), self.frame):
            self.add_item_tag(0, start + i + 2, self._key, pmt.init_c32vector(self.cfg.fft_len, inp[i].tolist()))
        return len(inp)


class ofdm_header_reader(gr.sync_block):
    """Header OFDM symbols (after ``ofdm_chanest_vcvc`` and ``ofdm_frame_equalizer_vcvc``, which
    divided them by the preamble's estimate) -> one ``header_data`` message per header.

    Per header (``config.header_ofdm_symbols`` vectors, the first tagged ``ofdm_sync_chan_taps`` and,
    from :class:`sync_word_tap`, ``sync_word1``): residual frequencies :math:`\omega` on a grid of
    ``OMEGA_STEP`` over +-``OMEGA_MAX`` rad per OFDM symbol, tried in the order of the pilots'
    likelihood :math:`\mathrm{Re}\sum_n c_n e^{-j\omega n}` (:func:`_pilot_obs`) until the CRC-16
    passes: for each, the symbols equalised by both sync words' least-squares estimates combined,
    :math:`\hat H_c = (|s_{1,c}|^2 \hat H_{1,c} e^{j\omega} + |s_{2,c}|^2 \hat H_{2,c}) /
    (|s_{1,c}|^2 + |s_{2,c}|^2)` (sync word 1 lies one OFDM symbol before the reference), LLRs
    weighted by :math:`|\hat H_c|^2` over the noise measured on the pilots, and gr-fec's polar
    decoder: successive cancellation for every hypothesis first, then the list decoder (ten times
    the cost) for every one, only when none has passed (of 8 headers lost in 2,000 at 0 dB with list
    decoding for the 8 likeliest only, 4 decoded by the list decoder at a less likely true
    residual). A header that fails so costs 202 decodes (0.3-0.9 s measured on the loaded 2-core
    machine); the pilots' order does not single out a few to list-decode (the 4 had ranks 9, 75, 93
    and 98 of 101). Why a search and not the pilots' best fit alone: at 0 dB per subcarrier the 4
    pilots of 11 symbols often put a noise peak highest (14 of 90 headers failed so, measured), while
    the polar code with its CRC tells the right residual from a wrong one. When it
    passes (and the header's k is the receiver's, if given), the header is re-modulated: the phase
    is fitted again to all its symbols and the noise m measured on them
    (:func:`~singlink_gr.ofdm.data_aided_noise`). The message holds ``frame_len`` (payload OFDM
    symbols), ``packet_len`` (k), ``seq``, ``image_num``, ``flags``, the channel taps and carrier
    offset (so ``header_payload_demux`` tags the payload with them and its equaliser uses the
    same estimate), ``noise_eff`` (m) and ``phase_obs``; else ``pmt.PMT_F`` (the demux drops the
    frame). Counters in :attr:`stats`."""

    def __init__(self, k=0, config: OFDMConfig | None = None):
        self.cfg = config or OFDMConfig()
        gr.sync_block.__init__(self, name="singlink_ofdm_header_reader",
                               in_sig=[(np.complex64, self.cfg.fft_len)], out_sig=None)
        self.k = int(k) if k else None
        self.set_output_multiple(self.cfg.header_ofdm_symbols)   # one header per group of vectors
        self.stats = {key: 0 for key in STATS[:3]}
        self._port = pmt.intern("header_data")
        self.message_port_register_out(self._port)
        self._data = self.cfg.index(self.cfg.occupied_carriers[0])
        self._pilots = self.cfg.index(self.cfg.pilot_carriers[0])
        self._sync1 = self.cfg.sync_words[0]
        self._sync_power = tuple(np.abs(w) ** 2 for w in self.cfg.sync_words)
        self._omegas = np.linspace(-OMEGA_MAX, OMEGA_MAX, int(round(2 * OMEGA_MAX / OMEGA_STEP)) + 1)

    def work(self, input_items, output_items):
        inp = input_items[0]
        n_hdr = self.cfg.header_ofdm_symbols
        tags = tags_in(self, len(inp))
        start = self.nitems_read(0)
        for s in range(0, len(inp) - n_hdr + 1, n_hdr):
            at = {t.key: t for t in tags if t.offset == start + s}
            self.message_port_pub(self._port, self.read(np.asarray(inp[s:s + n_hdr]), at))
        return len(inp)

    def read(self, y, tags) -> object:
        """One header: (n_hdr, fft_len) equalised vectors and the tags on the first -> message."""
        self.stats["headers"] += 1
        taps = tags.get(TAG_CHAN_TAPS)
        h = np.asarray(taps.value, np.complex64) if taps is not None else np.ones(self.cfg.fft_len, np.complex64)
        cfg, d, p = self.cfg, self._data, self._pilots
        n_hdr = len(y)
        index = 1 + np.arange(n_hdr)          # OFDM symbols after sync word 2 (see common_phase)
        pilots = cfg.pilot_values(0, n_hdr)
        pilot_obs = _pilot_obs(y, h, cfg, 0)
        w = np.abs(h[d]) ** 2                                        # LLR weight |H_c|^2 / m
        nd, used = len(d), np.concatenate([d, p])
        sync1 = tags.get(TAG_SYNC1)
        offset = tags.get(TAG_CARR_OFFSET)
        if sync1 is not None:   # sync word 1's estimate, carrier offset removed as in chanest's taps
            e1, e2 = self._sync_power
            h1 = np.roll(np.asarray(sync1.value, np.complex64), -(int(offset.value) if offset else 0))[used]
            h1 = h1 * np.conj(self._sync1[used]) / np.maximum(e1[used], 1e-12)
        likelihood = np.real(np.exp(-1j * np.outer(self._omegas, index)) @ pilot_obs)
        order = self._omegas[np.argsort(-likelihood, kind="stable")]
        for list_decoding, omega in ((list_decoding, omega) for list_decoding in (False, True) for omega in order):
            # both sync words' estimate (sync word 1 lies one OFDM symbol before the reference)
            he = h[used] if sync1 is None else (e1[used] * h1 * np.exp(1j * omega) + e2[used] * h[used]) / (
                e1[used] + e2[used])
            y1 = y[:, used] * np.exp(-1j * omega * index)[:, None] * (h[used] / he)[None]
            m_pilots = max(data_aided_noise(y1[:, nd:], pilots, he[None, nd:]), 1e-6)
            header, ok, x = read_header((y1[:, :nd] * np.abs(he[:nd]) ** 2).reshape(-1), m_pilots, list_decoding)
            if ok:
                break
        else:
            self.stats["header_crc"] += 1
            return pmt.PMT_F
        if self.k is not None and header.k != self.k:
            self.stats["wrong_k"] += 1
            return pmt.PMT_F
        # the header is known now: phase and noise from all its symbols
        x = x.reshape(n_hdr, -1)
        obs = np.sum(np.conj(x) * y[:, d] * w[None], axis=1) + pilot_obs
        omega = common_phase(obs, index)
        y2 = y * np.exp(-1j * omega * index)[:, None]
        m = data_aided_noise(np.concatenate([y2[:, d], y2[:, p]], 1), np.concatenate([x, pilots], 1),
                             np.concatenate([h[d], h[p]])[None])
        info = {FRAME_LEN: cfg.payload_ofdm_symbols(header.k), "packet_len": int(header.k), "seq": header.seq,
                "image_num": header.image_id, "flags": header.flags, TAG_NOISE: m}
        d_msg = pmt.make_dict()
        for key, value in info.items():
            d_msg = pmt.dict_add(d_msg, pmt.intern(key), to_pmt(value))
        taps = pmt.init_c32vector(len(h), h.tolist())
        d_msg = pmt.dict_add(pmt.dict_add(d_msg, pmt.intern(TAG_CHAN_TAPS), taps), pmt.intern(TAG_ESTIMATE), taps)
        d_msg = pmt.dict_add(d_msg, pmt.intern(TAG_CARR_OFFSET), pmt.from_long(int(offset.value) if offset else 0))
        d_msg = pmt.dict_add(d_msg, pmt.intern(TAG_PHASE), pmt.init_c32vector(n_hdr, obs.astype(np.complex64).tolist()))
        return d_msg


class ofdm_payload_phase(frame_block):
    """Equalised payload OFDM symbols (one frame of ``frame_len`` vectors per image, tagged by
    ``header_payload_demux`` with the header reader's fields) -> the same vectors with

    1. the frame's phase :math:`\\omega n` removed, fitted to the header's phase observations and
       the payload's pilots together (OFDM symbols n = 1 .. H + P after sync word 2);
    2. the data carriers scaled as ``singlink.phy.ofdm.jscc_input`` does for singlink's own OFDM
       link: per carrier no_c = m / |H_c|^2, SNR = 10 log10(mean over the k data symbols of
       1 / no_c), symbols noisier than that shrunk by (1 + 10^(-SNR/10)) / (1 + no_c);

    and the tags ``jscc_rx`` needs at the frame start: ``packet_len`` (k, for the serializer),
    ``snr_db`` (the estimate), ``frame`` (seq), ``image_id`` (``img<number:05d>``, as burst_rx),
    ``eob`` on a frame flagged last. Frames may arrive in pieces; the transmitter's tags stop here."""

    def __init__(self, config: OFDMConfig | None = None):
        self.cfg = config or OFDMConfig()
        super().__init__("singlink_ofdm_payload_phase", self.cfg.fft_len, FRAME_LEN,
                         required=("packet_len", TAG_NOISE, TAG_ESTIMATE))
        self._data = self.cfg.index(self.cfg.occupied_carriers[0])
        self.frames = 0

    def process(self, frame):
        from singlink.phy.ofdm import jscc_input
        import torch

        cfg = self.cfg
        y = np.asarray(frame.samples, np.complex64)
        k = int(frame.value("packet_len"))
        m = float(frame.value(TAG_NOISE))
        h = frame.value(TAG_ESTIMATE)
        h = np.ones(cfg.fft_len, np.complex64) if h is None else np.asarray(h, np.complex64)
        header_obs = frame.value(TAG_PHASE)
        n_hdr = cfg.header_ofdm_symbols
        payload_index = 1 + n_hdr + np.arange(len(y))    # OFDM symbols after sync word 2
        obs = [_pilot_obs(y, h, cfg, n_hdr)]
        index = [payload_index]
        if header_obs is not None:
            obs.insert(0, np.asarray(header_obs, np.complex128))
            index.insert(0, 1 + np.arange(len(header_obs)))
        omega = common_phase(np.concatenate(obs), np.concatenate(index))
        y = y * np.exp(-1j * omega * payload_index)[:, None].astype(np.complex64)
        # the k data symbols in the serializer's order (symbol by symbol, carrier by carrier)
        d = self._data
        no = np.broadcast_to(m / np.maximum(np.abs(h[d]) ** 2, 1e-12), (len(y), len(d))).reshape(-1)[:k]
        sym = y[:, d].reshape(-1)[:k]
        z, snr = jscc_input(torch.from_numpy(sym.copy())[None], torch.from_numpy(no.astype(np.float32))[None])
        flat = y[:, d].reshape(-1)
        flat[:k] = z[0].numpy()
        y[:, d] = flat.reshape(len(y), len(d))
        seq, flags = int(frame.value("seq", 0)), int(frame.value("flags", 0))
        tags = {FRAME_LEN: len(y), "packet_len": k, TAG_SNR: float(snr[0]), TAG_FRAME: seq,
                TAG_IMAGE_ID: f"img{int(frame.value('image_num', 0)):05d}"}
        if flags & FLAG_LAST:
            tags[TAG_EOB] = True
        self.frames += 1
        return [(y, {key: to_pmt(value) for key, value in tags.items()})]


class preamble_timing(gr.sync_block):
    """The input samples and ``ofdm_sync_sc_cfb``'s trigger (byte)
    -> (frequency, trigger) for the mixer and ``header_payload_demux``, delayed by ``LOOKAHEAD``
    samples (the demux's samples are delayed by as much more): each trigger is moved to where the
    known preamble (sync word 1's body; sync word 2 with its prefix) correlates best within
    +-``SEARCH`` samples of where the trigger puts it, and passed only when that correlation
    (normalised, the two parts added non-coherently so a carrier offset does not matter) reaches
    ``min_metric`` inside the search window (a maximum on its edge lies outside it: the trigger is
    dropped, a better placed one follows) and ``holdoff`` samples have gone by since the last one
    passed; a trigger up to ``LOOKAHEAD`` - 176 samples after one passed replaces it when it
    correlates better.
    The frequency, estimated from the periodic parts of the preamble at the refined timing
    (:meth:`frequency`), is held from each passed trigger to the next.

    Why: at 0 dB per subcarrier ``ofdm_sync_sc_cfb``'s metric peaks at (snr / (1 + snr))^2 = 0.25, so
    it needs a low threshold, and then (a) its trigger, the middle of the samples above the
    threshold, jitters by +-25 samples, beyond what the cyclic prefix absorbs, and (b) it also
    triggers on data symbols and re-samples its frequency each time: the demux ignores those
    triggers while it reads a frame, but the mixer took the new frequency at once (a noiseless frame
    came out with errors of 3.5 instead of 1e-4). The correlation with the 160 known samples is
    +22 dB of processing gain over the 32 of Schmidl & Cox's half symbols. Its frequency is the phase
    of 32 products across half a symbol, taken where its jittered trigger falls; at 0 dB its error
    left residual phase slopes up to +-2 rad per OFDM symbol over the header (44 of 90 frames beyond
    0.5, measured): the products across the prefixes at lag fft_len (4x less variance per product)
    and across all three copies of sync word 1's half, at the refined timing, leave 0.26 rms (6 of 90
    beyond 0.5, none beyond 0.83)."""

    LOOKAHEAD = 320   # the correlation needs 176 samples after a trigger; the rest lets a better one replace it
    # +-64: ofdm_sync_sc_cfb's trigger at 0 dB fell up to 58 samples from the preamble (measured). Of
    # 4,000 frames at 0 dB (ofdm_testing.frame_delivery, seeds 1 and 2), +-32 lost 18 (7 not found,
    # 11 header CRC), +-64 lost 10 (4, 6), +-96 lost 9 (3, 6)
    SEARCH = 64

    def __init__(self, config: OFDMConfig, holdoff, min_metric=0.15):
        gr.sync_block.__init__(self, name="singlink_preamble_timing", in_sig=[np.complex64, np.int8],
                               out_sig=[np.float32, np.int8])
        n, cp = config.fft_len, config.cp_len
        w1, w2 = (np.fft.ifft(np.fft.ifftshift(w)).astype(np.complex64) for w in config.sync_words)
        self._parts = [(0, w1), (n, np.concatenate([w2[-cp:], w2]))]   # (start after sync word 1's prefix, samples)
        self._span = n + cp + n
        # where ofdm_sync_sc_cfb triggers, without noise, after the start of sync word 1's body
        # (measured: 48 with a 32-sample prefix, the middle of the prefix's plateau)
        self.offset = cp + n // 4
        # the preamble's periodic parts, as (lag, [(first, last + 1) of n, relative to b]) for the
        # products conj(r[n]) r[n + lag]: sync word 1 with its prefix is three copies of its half;
        # each prefix copies its symbol's end. The first cp / 4 samples of a prefix carry the previous
        # symbol's multipath echo, and the last cp / 8 samples of sync word 1 a late trigger's error
        self._half = half = n // 2
        # GNU Radio's sync word 1 fills odd carriers: its second half is minus its first
        self._half_sign = float(np.sign(np.real(np.vdot(w1[:half], w1[half:]))))
        isi, late = cp // 4, cp // 8
        self._periodic = ((half, [(-cp + isi, n - half - late)]),
                          (n, [(-cp + isi, 0), (n + isi, n + cp)]))
        # inverse variances of the two estimates (rad/sample): pairs x lag^2
        self._weights = tuple(sum(hi - lo for lo, hi in spans) * lag ** 2 for lag, spans in self._periodic)
        self.holdoff, self.min_metric = int(holdoff), float(min_metric)
        # a trigger is refined once the samples up to s - offset + SEARCH + span are in, in the same
        # work call as, or before, the one that sends a trigger passed at t <= s - that + LOOKAHEAD:
        # replacing only those keeps the outcome independent of how the scheduler cuts the stream
        self._replace_within = self.LOOKAHEAD - (self._span - self.offset + self.SEARCH)
        lead = self.offset + self.SEARCH + cp
        self._buf = np.zeros(lead, np.complex64)   # silence before the stream: a frame may start at 0
        self._base = -lead
        self._cp = cp
        self._pending = []   # S&C triggers (absolute index) waiting for their samples
        self._emit = []      # (absolute output index, frequency)
        self._last = None    # the last trigger passed: [t, metric, index into _emit or None once sent]
        self._hold = 0.0
        self.triggers = self.rejected = 0   # S&C triggers refined, and of those below min_metric or at the edge
        self.last_frequency = None          # the frequency of the last trigger passed

    def refine(self, s):
        """(trigger, metric) for the S&C trigger at absolute index s."""
        lo = s - self.offset - self.SEARCH
        seg = self._buf[lo - self._base:lo - self._base + 2 * self.SEARCH + self._span]
        energy = np.concatenate([[0.0], np.cumsum(np.abs(seg) ** 2)])
        metric = np.zeros(2 * self.SEARCH + 1)
        for start, part in self._parts:
            c = np.correlate(seg[start:start + 2 * self.SEARCH + len(part)], part, "valid")
            e = energy[start + len(part):start + len(part) + len(c)] - energy[start:start + len(c)]
            metric += np.abs(c) ** 2 / np.maximum(np.vdot(part, part).real * e, 1e-30)
        i = int(np.argmax(metric))
        if i in (0, 2 * self.SEARCH):
            return None, float(metric[i] / len(self._parts))
        return lo + i + self.offset, float(metric[i] / len(self._parts))

    def frequency(self, t):
        r"""The fine frequency, in ``ofdm_sync_sc_cfb``'s unit (radians per half symbol, the mixer's
        input), of the preamble whose trigger is at absolute index t (sync word 1's body starts at
        b = t - offset): per lag L of ``_periodic``, :math:`\hat\epsilon_L = \arg(\pm\sum_n \bar r_n
        r_{n+L}) / L` rad/sample; the lag-fft_len estimate (less variance, ambiguous by
        2 pi / fft_len) is unwrapped to the nearest of the half-symbol one, then both are averaged with
        weights pairs x L^2 (their inverse variances)."""
        b = t - self.offset - self._base
        est = []
        for lag, spans in self._periodic:
            n = np.concatenate([np.arange(b + lo, b + hi) for lo, hi in spans])
            sign = self._half_sign if lag == self._half else 1.0
            est.append(np.angle(sign * np.vdot(self._buf[n], self._buf[n + lag])) / lag)
        coarse, fine = est
        step = 2 * np.pi / self._periodic[1][0]
        fine += step * np.round((coarse - fine) / step)
        w_coarse, w_fine = self._weights
        return float((w_coarse * coarse + w_fine * fine) / (w_coarse + w_fine) * self._half)

    def work(self, input_items, output_items):
        x, trig = input_items
        out_f, out_t = output_items
        n = len(x)
        start, end = self.nitems_read(0), self.nitems_read(0) + len(x)
        self._buf = np.concatenate([self._buf, x])
        self._pending += [start + int(i) for i in np.flatnonzero(trig[:n])]
        waiting = []
        for s in self._pending:
            if s - self.offset + self.SEARCH + self._span > end:
                waiting.append(s)
                continue
            t, metric = self.refine(s)
            self.triggers += 1
            if t is None or metric < self.min_metric:
                self.rejected += 1
                continue
            f = self.last_frequency = self.frequency(t)
            last = self._last
            if last is None or t >= last[0] + self.holdoff:
                self._emit.append([t + self.LOOKAHEAD, f])
                self._last = [t, metric, self._emit[-1]]
            elif metric > last[1] and last[2] is not None and s <= last[0] + self._replace_within:
                last[2][0], last[2][1] = t + self.LOOKAHEAD, f     # not sent yet: the better one instead
                last[0], last[1] = t, metric
        self._pending = waiting
        keep_from = min(self._pending, default=end) - self.offset - self.SEARCH - self._cp
        cut = min(keep_from, end - self._span) - self._base
        if cut > 0:
            self._buf, self._base = self._buf[cut:], self._base + cut
        out_t[:n] = 0
        prev, later = 0, []
        for item in sorted(self._emit):
            j, f = item
            if j >= end:
                later.append(item)
                continue
            if self._last is not None and self._last[2] is item:
                self._last[2] = None
            k = max(0, j - start)
            out_f[prev:k] = self._hold
            self._hold, prev = f, k
            out_t[k] = 1
        out_f[prev:n] = self._hold
        self._emit = later
        return n


class ofdm_demod(gr.hier_block2):
    """Complex baseband (one sample per FFT bin) -> one tagged frame of k equalised payload symbols
    per OFDM frame whose header passes (``packet_len`` = k, ``snr_db`` = the estimate, ``frame``,
    ``image_id``, ``eob``), ready for :class:`jscc_rx`.

    Wiring (that of ``digital.ofdm_rx``): ``ofdm_sync_sc_cfb`` (Schmidl & Cox: timing trigger; its
    fine frequency is not used) -> :class:`preamble_timing` (the trigger moved to the known preamble's
    correlation peak, false ones rejected, one frequency per frame from the preamble) ->
    ``analog.frequency_modulator_fc(-2 / fft_len)`` x the input delayed by one
    symbol (``blocks.delay``, ``blocks.multiply_cc``) -> ``header_payload_demux`` (2 sync words +
    the header's OFDM symbols; CP removed). Header: ``fft.fft_vcc`` -> ``ofdm_chanest_vcvc``
    (integer carrier offset, least-squares channel estimate from sync word 2) ->
    ``ofdm_frame_equalizer_vcvc`` (``ofdm_equalizer_static`` without pilots: a division by the
    estimate, no decisions) -> :class:`ofdm_header_reader` -> ``header_data`` back to the demux.
    Payload: ``fft.fft_vcc`` -> ``ofdm_frame_equalizer_vcvc`` (the header's estimate, from the
    demux's tags) -> :class:`ofdm_payload_phase` -> ``ofdm_serializer_vcc`` (the k data symbols).
    ``k`` = 0 accepts any k the header announces.

    ``sync_threshold`` 0.1: at 0 dB per subcarrier the Schmidl & Cox metric of a preamble averages
    (snr / (1 + snr))^2 = 0.25, and with 0.2 it missed 10 frames of 100 (measured, three paths);
    the false triggers a lower threshold lets through are rejected by :class:`preamble_timing`'s
    correlation with the known preamble (at 0 dB 1,061 of 1,183 triggers, leaving one per frame)."""

    def __init__(self, k=0, config: OFDMConfig | None = None, sync_threshold=0.1):
        gr.hier_block2.__init__(self, "singlink_ofdm_demod", gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        self.config = cfg = config or OFDMConfig()
        n, cp = cfg.fft_len, cfg.cp_len
        sync1, sync2 = cfg.sync_words
        occupied = [list(cfg.occupied_carriers[0]) + list(cfg.pilot_carriers[0])]   # equalise pilots too
        self.sync = digital.ofdm_sync_sc_cfb(n, cp, False, float(sync_threshold))
        self.delay = blocks.delay(gr.sizeof_gr_complex, n + cp + preamble_timing.LOOKAHEAD)
        self.sc_frequency = blocks.null_sink(gr.sizeof_float)
        self.oscillator = analog.frequency_modulator_fc(-2.0 / n)
        self.mixer = blocks.multiply_cc()
        self.demux = digital.header_payload_demux(2 + cfg.header_ofdm_symbols, n, cp, FRAME_LEN, "", True)
        # a new frame may start after this frame less half a symbol (k unknown: after the header)
        symbols = 2 + cfg.header_ofdm_symbols + (cfg.payload_ofdm_symbols(k) if k else 0)
        self.timing = preamble_timing(cfg, symbols * (n + cp) - (n + cp) // 2)
        self.connect(self, self.sync)
        self.connect(self, (self.timing, 0))
        self.connect(self, self.delay, (self.mixer, 0), (self.demux, 0))
        self.connect((self.sync, 0), self.sc_frequency)   # preamble_timing estimates the frequency itself
        self.connect((self.sync, 1), (self.timing, 1))
        self.connect((self.timing, 0), self.oscillator, (self.mixer, 1))
        self.connect((self.timing, 1), (self.demux, 1))
        # header
        self.header_fft = fft.fft_vcc(n, True, (), True)
        self.chanest = digital.ofdm_chanest_vcvc(sync1.tolist(), sync2.tolist(), cfg.header_ofdm_symbols)
        self._header_eq = digital.ofdm_equalizer_static(n, occupied, [], [], 0, True)
        self.header_eq = digital.ofdm_frame_equalizer_vcvc(self._header_eq.base(), cp, FRAME_LEN, True,
                                                           cfg.header_ofdm_symbols)
        self.header_reader = ofdm_header_reader(k, cfg)
        self.sync_tap = sync_word_tap(cfg)
        self.connect((self.demux, 0), self.header_fft, self.sync_tap, self.chanest, self.header_eq, self.header_reader)
        self.msg_connect(self.header_reader, "header_data", self.demux, "header_data")
        # payload
        self.payload_fft = fft.fft_vcc(n, True, (), True)
        self._payload_eq = digital.ofdm_equalizer_static(n, occupied, [], [], 0, True)
        self.payload_eq = digital.ofdm_frame_equalizer_vcvc(self._payload_eq.base(), cp, FRAME_LEN)
        self.payload_phase = ofdm_payload_phase(cfg)
        self.serializer = digital.ofdm_serializer_vcc(n, [list(cfg.occupied_carriers[0])], FRAME_LEN, "packet_len")
        self.connect((self.demux, 1), self.payload_fft, self.payload_eq, self.payload_phase, self.serializer, self)

    @property
    def stats(self):
        return dict(self.header_reader.stats, frames=self.payload_phase.frames)


class ofdm_jscc_rx(gr.hier_block2):
    """Complex baseband -> restored images: :class:`ofdm_demod` -> :class:`jscc_rx` (the decoder at
    the estimated SNR). Parameters: those of :class:`jscc_rx`, and ``fft_len``, ``cp_len``,
    ``header_ofdm_symbols`` (the transmitter's) and ``sync_threshold`` (``ofdm_sync_sc_cfb``).
    Message output ``images_out`` as :class:`jscc_rx`; counters in :attr:`stats`."""

    def __init__(self, method="deepjscc", checkpoint=DEFAULT_CHECKPOINT, prior="", steps=0, zeta=None, inn="",
                 output_dir="", seed=0, batch_size=16, fft_len=64, cp_len=32, header_ofdm_symbols=11,
                 sync_threshold=0.1, device="cpu"):
        gr.hier_block2.__init__(self, "singlink_ofdm_jscc_rx", gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature(0, 0, 0))
        self.config = OFDMConfig(int(fft_len), int(cp_len), int(header_ofdm_symbols))
        self.decoder = jscc_rx(method=method, checkpoint=checkpoint, prior=prior, steps=steps, zeta=zeta, inn=inn,
                               output_dir=output_dir, seed=seed, batch_size=batch_size, device=device)
        self.k = self.decoder.k
        self.demod = ofdm_demod(self.k, self.config, sync_threshold)
        self.connect(self, self.demod, self.decoder)
        self.message_port_register_hier_out("images_out")
        self.msg_connect(self.decoder, "images_out", self, "images_out")

    @property
    def stats(self):
        return self.demod.stats
