"""Over-the-air receiver: complex baseband -> matched filter -> detection -> burst synchronisation
-> DeepJSCC decoding / SING restoration at the *estimated* SNR.

- :class:`burst_sync`: matched-filter output tagged by ``digital.corr_est_cc`` -> one tagged frame
  of k equalised payload symbols per burst whose header passes its CRC (tags ``packet_len`` = k,
  ``snr_db`` = the estimate, ``image_id``, ``frame`` = the header's sequence number, ``eob`` on a
  last burst, ``cfo``), ready for :class:`jscc_rx`; statistics in :attr:`burst_sync.stats` and one
  message per burst on ``bursts``;
- :class:`burst_rx`: hierarchical block ``filter.fft_filter_ccf(RRC)`` -> ``digital.corr_est_cc``
  -> ``burst_sync`` -> ``jscc_rx``, with ``images_out`` (and ``bursts``) message outputs.
"""
from __future__ import annotations

import bisect
import collections
import time
from operator import itemgetter

import numpy as np
import pmt
from gnuradio import digital, filter, gr

from .burst import BurstConfig, Layout, Synchronizer, detect_template, rrc_taps
from .common import DEFAULT_CHECKPOINT, TAG_EOB, TAG_FRAME, TAG_IMAGE_ID, TAG_SNR, to_pmt
from .jscc_rx import jscc_rx

STATS = ("candidates", "no_preamble", "header_crc", "wrong_k", "truncated", "errors", "bursts")
_offset, _value = itemgetter(0), itemgetter(1)   # of a candidate [offset, value]


DETECT_CHUNK_BLOCKS = 4   # corr_est_cc FFT blocks per work call (see preamble_detector)
CUT_METRIC = 0.5          # a preamble inside a burst cuts it when at least this fraction of its own metric


def preamble_detector(config: BurstConfig, threshold=0.9):
    """``digital.corr_est_cc`` on the first ``detect_len`` preamble chips, dynamic threshold,
    working in chunks of a fixed length.

    Its dynamic threshold is ``threshold``-scaled mean correlation energy *of each work call*, so
    with the scheduler's varying chunk sizes the same samples got different tags from run to run
    (a preamble in a short chunk raises that chunk's mean above its own peak and is missed).
    Output multiple = max output = ``DETECT_CHUNK_BLOCKS`` FFT blocks makes every call the same
    length and the tags a function of the samples alone. The cost: the last partial chunk of a
    finite stream is never correlated (``burst_source`` ends with 1,024 symbols of silence)."""
    corr = digital.corr_est_cc(detect_template(config).tolist(), float(config.sps), 0, float(threshold),
                               digital.THRESHOLD_DYNAMIC)
    chunk = DETECT_CHUNK_BLOCKS * corr.output_multiple()
    corr.set_output_multiple(chunk)
    corr.set_max_noutput_items(chunk)
    return corr


class burst_sync(gr.basic_block):
    """Bursts in the matched-filter output -> frames of k payload symbols.

    Candidates are the ``corr_start`` tags of ``digital.corr_est_cc`` (detection on the first
    ``detect_len`` preamble chips). Tags within 2 symbols of each other are one candidate (the
    strongest). For each, :class:`~singlink_gr.burst.Synchronizer` searches the timing within
    +- ``timing_search`` samples, estimates the carrier offset over the whole preamble and keeps
    the candidate only when the normalised preamble energy reaches ``detect_metric`` (counted
    ``no_preamble`` otherwise). A burst inside which another valid preamble at least half as
    strong as its own starts is ``truncated``, as is one the stream ends in. With the receiver's
    ``k`` given, the block waits until a whole burst of that k is buffered and then decodes header
    and payload in one pass
    (phase over all pilots; ``header_crc`` when the CRC fails, ``wrong_k`` when the header
    announces another k); with ``k`` = 0 it decodes the header first and waits for the length
    it announces. Gain and SNR come from every known symbol; the equalised payload goes out.
    Nothing stops the flowgraph (an exception costs one burst: ``errors``); each drop is one
    warning (except ``no_preamble``) and one ``bursts`` message with ``status``.
    """

    def __init__(self, k=0, config: BurstConfig | None = None, length_tag_key="packet_len", keep_last=True,
                 **burst):
        gr.basic_block.__init__(self, name="singlink_burst_sync", in_sig=[np.complex64], out_sig=[np.complex64])
        self.set_tag_propagation_policy(gr.TPP_DONT)   # the transmitter's tags (true SNR...) stop here
        if config is None:
            from .burst_tx import burst_config

            config = burst_config(**burst)   # sps, rolloff, header_code, header_sf, ..., detect_metric (GRC passes these)
        self.cfg = config
        self.k = int(k) if k else None
        self.sync = Synchronizer(self.cfg)
        self.length_tag_key = str(length_tag_key)
        self.keep_last = bool(keep_last)
        self.stats = {key: 0 for key in STATS}
        self.work_seconds = 0.0     # CPU time of general_work (tags, buffer, synchronising, output): the
        #                             block's work time, which benchmarks/flowgraph.py reports
        self.work_calls = 0         # general_work calls with input (benchmarks/flowgraph.py reports them per burst)
        self.last = None            # the last SyncResult that produced a frame (raw and synced symbols)
        self.results = []           # (absolute burst start, header, snr_db, cfo) of every emitted frame
        self._buf = np.zeros(0, np.complex64)
        self._base = 0              # absolute offset of _buf[0]
        self._cands = []            # [absolute offset, corr value], sorted
        self._pending = {}          # anchor -> SyncResult with a decoded header, waiting for samples
        self._out = collections.deque()
        self._pos = 0
        self._port = pmt.intern("bursts")
        self._corr_start = pmt.intern("corr_start")
        self._keys = {key: pmt.intern(key) for key in (self.length_tag_key, TAG_SNR, TAG_IMAGE_ID, TAG_FRAME, "cfo",
                                                       "method_hint", TAG_EOB)}   # output tag keys, interned once
        self.message_port_register_out(self._port)
        # per-burst constants (samples), and the C++ gateway's methods bound once: reaching them through
        # gr.basic_block's __getattr__ costs an interpreter detour per call, several per burst
        self._margin = self.sync.margin()
        self._preamble_samples = self.sync.preamble_samples()
        self._sizes = {}            # k -> (burst length, samples from guess - margin to its end)
        gw = self.gateway
        self._tags_in_window, self._add_item_tag = gw.get_tags_in_window, gw.add_item_tag
        self._nitems_read, self._nitems_written, self._consume = gw.nitems_read, gw.nitems_written, gw.consume
        self._subscribers = None    # whether anyone listens on "bursts", known once the flowgraph runs

    def forecast(self, noutput_items, ninputs):
        return [1] * ninputs

    # --- stream ---------------------------------------------------------------------------
    def general_work(self, input_items, output_items):
        t0 = time.thread_time()
        inp = input_items[0]
        n = len(inp)
        if n:
            self.work_calls += 1
            start = self._nitems_read(0)
            tags = self._tags_in_window(0, 0, n, self._corr_start)
            if tags:
                self._cands.extend([[t.offset, pmt.to_double(t.value)] for t in tags])
                self._cands.sort()
            if start != self._base + len(self._buf):   # never happens with a plain stream
                self._buf, self._base = np.zeros(0, np.complex64), start
            self._buf = np.concatenate([self._buf, inp])
            while True:
                try:
                    self._process()
                    break
                except Exception as e:   # a bug must cost one burst, not the flowgraph
                    self._fail(e)
            self._consume(0, n)
        produced = self._write(output_items[0])
        self.work_seconds += time.thread_time() - t0
        return produced

    def stop(self):
        """Candidates still waiting for samples when the stream ends: a burst whose header was
        decoded, or whose preamble is there and valid, was cut short (counted ``truncated``)."""
        for c in sorted(self._cands):
            if c[0] in self._pending:
                self._drop(c[0], "truncated", "the stream ended inside the burst", self._pending[c[0]])
                continue
            x, guess = self._window(c[0], self.sync.preamble_samples())
            if len(x) >= guess + self.sync.preamble_samples() - self.sync.margin() and \
                    self.sync.detect(x, guess).ok and not any(0 < c[0] - t[0] <= 2 * self.cfg.sps for t in self._cands):
                self._drop(c[0], "truncated", "the stream ended inside the burst")
        self._cands.clear()
        self._pending.clear()
        self.logger.info("bursts: " + ", ".join(f"{key} {value}" for key, value in self.stats.items()))
        return True

    def _write(self, out):
        produced = 0
        while self._out and produced < len(out):
            sym, tags = self._out[0]
            if self._pos == 0:
                at = self._nitems_written(0) + produced
                for key, value in tags.items():
                    self._add_item_tag(0, at, key, value)
            take = min(len(sym) - self._pos, len(out) - produced)
            out[produced:produced + take] = sym[self._pos:self._pos + take]
            produced += take
            self._pos += take
            if self._pos == len(sym):
                self._out.popleft()
                self._pos = 0
        return produced

    # --- bursts -------------------------------------------------------------------------------
    def _drop(self, anchor, stat, why, res=None):
        self.stats[stat] += 1
        if stat != "no_preamble":   # false alarms of the first detector are routine, not news
            self.logger.warn(f"dropped burst at item {anchor}: {why}")
        if not self._listened():
            return
        info = {"status": stat, "offset": int(anchor)}
        if res is not None:
            info.update(metric=float(res.metric), cfo=float(res.cfo))
            if res.header is not None:
                info.update(seq=res.header.seq, image_id=res.header.image_id, k=res.header.k)
        self._publish(info)

    def _window(self, a, nsamples):
        lo = a - self._margin - self._base
        return self._buf[max(lo, 0):lo + nsamples], self._margin + min(lo, 0)

    def _size(self, k):
        """(burst length, samples from guess - margin to the burst's end) for payload length k, in samples;
        k None: (the length without payload, samples to the header's end)."""
        if k not in self._sizes:
            self._sizes[k] = (Layout.of(self.cfg, k or 0).length * self.cfg.sps, self.sync.samples_needed(k))
        return self._sizes[k]

    def _process(self):
        end = self._base + len(self._buf)
        cands = self._cands   # sorted by offset; a group is the tags within 2 symbols of the first
        while cands:
            group = bisect.bisect_right(cands, cands[0][0] + 2 * self.cfg.sps, key=_offset)
            a, strength = cands[0]
            for c in cands[1:group]:   # the strongest (the first of equals)
                if c[1] > strength:
                    a, strength = c
            step = self._known_k(a, group, strength, end) if self.k is not None else \
                self._any_k(a, group, strength, end)
            if not step:
                break
        # keep what a candidate still needs, or the last few samples a new tag could point back to
        keep_from = (cands[0][0] if cands else end) - self._margin - 8
        if keep_from > self._base:
            self._buf = self._buf[keep_from - self._base:]
            self._base = keep_from

    def _inner(self, a, burst_end, strength):
        """(the candidates to check for a cut, samples needed to check them): the tags inside the
        burst at least a quarter as strong as its own, the 3 strongest of them; a whole preamble
        correlates ~64 snr / (1 + snr) times above the random correlation of data symbols, so at low
        SNR, where corr_est_cc tags dozens of data peaks per burst, a real one is still among the
        strongest."""
        cands = self._cands
        lo = bisect.bisect_right(cands, a + 4 * self.cfg.sps, key=_offset)
        hi = bisect.bisect_left(cands, burst_end, key=_offset)
        floor = 0.25 * strength
        # strongest first; the sort is stable, so equal values keep their offsets' order
        inner = sorted([c for c in cands[lo:hi] if c[1] >= floor], key=_value, reverse=True)[:3]
        if not inner:
            return inner, 0
        return inner, max(c[0] for c in inner) - self._margin + self._preamble_samples

    def _cut(self, inner, metric):
        """The first valid preamble among ``inner`` (None if none): another preamble as strong as this
        one inside the burst means this burst was cut short. Valid means a preamble metric of at least
        ``detect_metric`` and ``CUT_METRIC`` times the burst's own ``metric``: a restart or a collision
        at a similar level has about the same metric (~ snr / (1 + snr)), while the 255 data symbols
        under a tag reach ``detect_metric`` (0.08, sized for -5 dB) by chance in about 1 of 10^4 checks
        (a chi-square over ~70,000 timing and frequency cells); at 10 dB that had cut a burst every
        ~15 s of a 1 Msps stream."""
        if not inner:
            return None
        first = self.sync.first_preamble(self._buf, [c[0] - self._base for c in inner], CUT_METRIC * metric)
        return None if first is None else first + self._base

    def _drop_before(self, e):
        """Forget the candidates before absolute offset e."""
        del self._cands[:bisect.bisect_left(self._cands, e, key=_offset)]

    def _known_k(self, a, group, strength, end) -> bool:
        """The receiver's k is known: wait for a whole burst of that k, then detect, check for a cut,
        and decode header and payload in one pass. False: wait for more samples. ``group``: how many
        of the first candidates are this one's."""
        length, needed = self._size(self.k)
        if end < a - self._margin + needed:
            return False
        burst_end = a + length
        inner, need_cut = self._inner(a, burst_end, strength)
        if end < need_cut:
            return False
        self.stats["candidates"] += 1
        x, guess = self._window(a, needed)
        res = self.sync.detect(x, guess)
        if not res.ok:
            self._drop(a, "no_preamble", f"preamble metric {res.metric:.3f} < {self.cfg.detect_metric}", res)
            del self._cands[:group]
            return True
        cut = self._cut(inner, res.metric)
        if cut is not None:
            self._drop(a, "truncated", f"a new preamble at item {cut}, {cut - a} of {length} samples in", res)
            self._drop_before(cut)
            return True
        res = self.sync.decode(x, res, self.k)
        if res.header is None:
            self._drop(a, "header_crc", "header CRC failed", res)
            del self._cands[:group]
        elif not res.ok:   # a valid header for another k: skip that burst
            k = res.header.k
            self._drop(a, "wrong_k", f"header says k = {k}, the decoder takes k = {self.k}", res)
            self._drop_before(a + self._size(k)[0])
        else:
            self._emit(a, res)
            self._drop_before(burst_end)
        return True

    def _any_k(self, a, group, strength, end) -> bool:
        """k = 0 (any): decode the header first, then wait for the burst length it announces."""
        res = self._pending.get(a)
        if res is None:
            needed = self._size(None)[1]
            if end < a - self._margin + needed:
                return False
            self.stats["candidates"] += 1
            x, guess = self._window(a, needed)
            res = self.sync.detect(x, guess)
            if not res.ok:
                self._drop(a, "no_preamble", f"preamble metric {res.metric:.3f} < {self.cfg.detect_metric}", res)
                del self._cands[:group]
                return True
            res = self.sync.header(x, res)
            if res.header is None:
                self._drop(a, "header_crc", "header CRC failed", res)
                del self._cands[:group]
                return True
            self._pending[a] = res
        length, needed = self._size(res.header.k)
        if end < a - self._margin + needed:
            return False
        burst_end = a + length
        inner, need_cut = self._inner(a, burst_end, strength)
        if end < need_cut:
            return False
        self._pending.pop(a, None)
        cut = self._cut(inner, res.metric)
        if cut is not None:
            self._drop(a, "truncated", f"a new preamble at item {cut}, {cut - a} of {length} samples in", res)
            self._drop_before(cut)
            return True
        x, guess = self._window(a, needed)
        self._emit(a, self.sync.finish(x, res))
        self._drop_before(burst_end)
        return True

    def _fail(self, error):
        """Drop the first candidate group after an unexpected error in the synchroniser."""
        if not self._cands:
            return
        self._cands.sort()
        c0 = self._cands[0][0]
        self._pending.pop(c0, None)
        self._drop(c0, "errors", f"{type(error).__name__}: {error}")
        self._drop_before(c0 + 2 * self.cfg.sps + 1)

    def _emit(self, anchor, res):
        h = res.header
        self.stats["bursts"] += 1
        keys = self._keys
        tags = {keys[self.length_tag_key]: pmt.from_long(h.k), keys[TAG_SNR]: pmt.from_double(res.snr_db),
                keys[TAG_IMAGE_ID]: pmt.intern(f"img{h.image_id:05d}"), keys[TAG_FRAME]: pmt.from_long(h.seq),
                keys["cfo"]: pmt.from_double(res.cfo), keys["method_hint"]: pmt.intern(h.method_hint)}
        if h.last:
            tags[keys[TAG_EOB]] = pmt.PMT_T
        self._out.append((res.payload.astype(np.complex64), tags))
        if self.keep_last:
            self.last = res
        self.results.append((int(anchor), h, float(res.snr_db), float(res.cfo)))
        if not self._listened():
            return
        info = {"status": "ok", "offset": int(anchor), "seq": h.seq, "image_id": h.image_id, "k": h.k,
                "flags": h.flags, "snr_db": float(res.snr_db), "cfo": float(res.cfo), "metric": float(res.metric)}
        self._publish(info)

    def _listened(self) -> bool:
        # messages only when someone listens: building and posting one costs more than a burst's sync;
        # the subscribers are fixed before the flowgraph starts, so they are asked once
        if self._subscribers is None:
            self._subscribers = bool(pmt.length(self.message_subscribers(self._port)))
        return self._subscribers

    def _publish(self, info):
        self.message_port_pub(self._port, to_pmt(info))


class burst_rx(gr.hier_block2):
    """Complex baseband (``sps`` samples per symbol) -> restored images.

    ``filter.fft_filter_ccf`` (the RRC matched filter, GNU Radio's firdes taps; for its 45 taps the
    FFT filter does the work of ``fir_filter_ccf`` in a quarter of the time, equal to float rounding) ->
    ``digital.corr_est_cc`` (correlation with the first ``detect_len`` preamble chips, dynamic
    threshold ``detect_threshold``) -> :class:`burst_sync` -> :class:`jscc_rx` (``method``
    deepjscc / sing-zero / sing-inn, at the SNR estimated from the burst). ``eq_taps`` > 0 (odd)
    adds a symbol-spaced least-squares equaliser trained on preamble and pilots, for echoes
    longer than a fraction of a symbol (it costs about 0.5 dB at -5 dB: leave it off on clean
    channels). Message outputs:
    ``images_out`` (jscc_rx's image PDUs) and ``bursts`` (one dict per burst: status, seq,
    image_id, k, snr_db, cfo, metric). Counters: :attr:`stats`.
    """

    def __init__(self, method="deepjscc", checkpoint=DEFAULT_CHECKPOINT, prior="", steps=0, zeta=None, inn="",
                 output_dir="", seed=0, batch_size=16, sps=4, rolloff=0.35, rrc_span=11, header_sf=32,
                 pilot_spacing=64, pilot_len=8, detect_len=64, detect_threshold=0.9, detect_metric=0.08,
                 eq_taps=0, device="cpu", header_code="polar"):
        gr.hier_block2.__init__(self, "singlink_burst_rx", gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature(0, 0, 0))
        from .burst_tx import burst_config

        self.config = burst_config(sps, rolloff, rrc_span, header_sf, pilot_spacing, pilot_len,
                                   header_code=header_code, detect_len=int(detect_len),
                                   detect_metric=float(detect_metric), eq_taps=int(eq_taps))
        self.rx = jscc_rx(method, checkpoint=checkpoint, prior=prior, steps=steps, zeta=zeta, inn=inn,
                          output_dir=output_dir, seed=seed, batch_size=batch_size, device=device)
        self.k = self.rx.k
        self.matched = filter.fft_filter_ccf(1, rrc_taps(self.config).tolist(), 1)
        self.corr = preamble_detector(self.config, detect_threshold)
        self.sync = burst_sync(k=self.k, config=self.config)
        self.connect(self, self.matched, self.corr, self.sync, self.rx)
        self.message_port_register_hier_out("images_out")
        self.message_port_register_hier_out("bursts")
        self.msg_connect(self.rx, "images_out", self, "images_out")
        self.msg_connect(self.sync, "bursts", self, "bursts")

    @property
    def stats(self):
        return dict(self.sync.stats)
