"""Helpers for the qa_*.py tests and tests/test_gnuradio.py: tagged vector sources, tag readout,
and running a top block with a time limit."""
from __future__ import annotations

import threading

import numpy as np
import pmt
from gnuradio import blocks, gr

from .common import from_pmt, to_pmt


def make_tag(offset, key, value):
    """A gr.tag_t at absolute ``offset``; ``value`` a Python value or a pmt."""
    if not isinstance(value, pmt.pmt_python.pmt_base):
        value = to_pmt(value)
    return gr.tag_utils.python_to_tag((int(offset), pmt.intern(key), value, pmt.intern("qa")))


def frame_tags(offset, length, snr_db=None, image_id=None, frame=None, length_tag_key="packet_len", **extra):
    """The tags jscc_tx puts on a frame start (those given), as (offset, key, value)."""
    tags = [(offset, length_tag_key, length)]
    for key, value in (("snr_db", snr_db), ("image_id", image_id), ("frame", frame), *extra.items()):
        if value is not None:
            tags.append((offset, key, value))
    return tags


def tagged_source(samples, tags):
    """A vector_source_c of ``samples`` with ``tags`` [(offset, key, value)].

    To make frames cross work() calls, cap the *consuming* block's items per call with its
    ``set_max_noutput_items(n)``: GNU Radio 3.10's vector_source with tags emits its whole vector
    in one call and stalls forever when its own max_noutput_items is smaller."""
    return blocks.vector_source_c(np.asarray(samples, dtype=np.complex64).tolist(), False, 1,
                                  [make_tag(*t) for t in tags])


def sink_tags(sink, key=None):
    """Tags a vector sink received, as [(offset, key, python value)] sorted by offset."""
    out = [(int(t.offset), pmt.symbol_to_string(t.key), from_pmt(t.value)) for t in sink.tags()]
    return sorted((t for t in out if key is None or t[1] == key), key=lambda t: (t[0], t[1]))


def run_flowgraph(tb, timeout=60.0):
    """tb.start() and wait at most ``timeout`` seconds; a flowgraph still running then is stopped
    and TimeoutError raised (so a hang fails a test instead of blocking it)."""
    tb.start()
    done = threading.Event()

    def wait():
        tb.wait()
        done.set()

    threading.Thread(target=wait, daemon=True).start()
    if not done.wait(timeout):
        tb.stop()
        done.wait(10)
        raise TimeoutError(f"flowgraph did not finish within {timeout} s")


def messages(debug_block):
    """The messages a blocks.message_debug stored on its 'store' port."""
    return [debug_block.get_message(i) for i in range(debug_block.num_messages())]


def pdu_image(msg):
    """(uint8 image (H, W, 3), metadata dict) of a jscc_rx PDU."""
    from .common import parse_image_message

    return parse_image_message(msg)


# --- bursts without DeepJSCC (qa_burst.py, tests/test_gnuradio.py, the notebook) -----------------
def random_bursts(n, k, config=None, seed=0, gap=0, corrupt=(), truncate=None, flags=0):
    """``n`` bursts of k random unit-power payload symbols (numpy), seq 0..n-1, image_id 100+i.

    ``corrupt``: burst indices whose header goes out with one flipped CRC bit; ``truncate``:
    {index: symbols kept} cuts those bursts short (the next burst follows at once);
    ``gap``: extra zero symbols before every burst. Returns (symbols, payloads, headers)."""
    from .burst import BurstConfig, Header, build_burst, header_to_bits

    cfg = config or BurstConfig()
    rng = np.random.default_rng(seed)
    truncate = truncate or {}
    parts, payloads, headers = [np.zeros(gap + 32, np.complex64)], [], []
    for i in range(n):
        z = ((rng.standard_normal(k) + 1j * rng.standard_normal(k)) / np.sqrt(2)).astype(np.complex64)
        z /= np.sqrt(np.mean(np.abs(z) ** 2))
        h = Header(seq=i, image_id=100 + i, k=k, flags=flags)
        bits = header_to_bits(h)
        if i in corrupt:
            bits = bits.copy()
            bits[-1] ^= 1
        b = build_burst(z, h, cfg, header_bits=bits)
        if i in truncate:
            b = b[:truncate[i]]
        parts += [np.zeros(gap, np.complex64), b]
        payloads.append(z)
        headers.append(h)
    parts.append(np.zeros(1024, np.complex64))   # corr_est_cc holds back its last partial FFT block
    return np.concatenate(parts), payloads, headers


def run_burst_chain(symbols, k, config=None, snr_db=None, cfo=0.0, epsilon=1.0, taps=(1.0,), seed=1,
                    detect_threshold=0.9, max_items=None, upstream_max_items=None):
    """symbols -> GNU Radio's RRC interpolator -> channels.channel_model(noise for ``snr_db``,
    ``cfo`` cycles/sample, ``epsilon``, ``taps``) -> matched filter -> corr_est_cc -> burst_sync
    -> vector sink (``max_items``, ``upstream_max_items``: largest work call of burst_sync, of the
    matched filter). Returns (burst_sync block, [(payload (k,), {tag: value})], bursts messages)."""
    from gnuradio import channels, filter

    from .burst import BurstConfig, rrc_taps
    from .burst_rx import burst_sync, preamble_detector

    cfg = config or BurstConfig()
    taps_rrc = rrc_taps(cfg).tolist()
    noise = 0.0 if snr_db is None else float(10 ** (-snr_db / 20))
    src = blocks.vector_source_c(np.asarray(symbols, np.complex64).tolist(), False)
    shaper = filter.interp_fir_filter_ccf(cfg.sps, taps_rrc)
    ch = channels.channel_model(noise, float(cfo), float(epsilon), [complex(t) for t in taps], float(seed), True)
    mf = filter.fir_filter_ccf(1, taps_rrc)
    corr = preamble_detector(cfg, detect_threshold)
    sync = burst_sync(k=k, config=cfg)
    if max_items:
        sync.set_max_noutput_items(int(max_items))
    if upstream_max_items:
        mf.set_max_noutput_items(int(upstream_max_items))
    sink = blocks.vector_sink_c()
    dbg = blocks.message_debug()
    tb = gr.top_block()
    tb.connect(src, shaper, ch, mf, corr, sync, sink)
    tb.msg_connect(sync, "bursts", dbg, "store")
    run_flowgraph(tb, 120)
    data = np.array(sink.data(), np.complex64)
    frames = []
    for off, key, val in sink_tags(sink, "packet_len"):
        tags = {t[1]: t[2] for t in sink_tags(sink) if t[0] == off}
        frames.append((data[off:off + val], tags))
    return sync, frames, [pmt.to_python(m) for m in messages(dbg)]


def header_trials(n, k=16, config=None, snr_db=-5.0, cfo=5e-4, seed=0, chunk=250):
    """``n`` bursts with random header fields through a numpy channel and the receiver's
    :class:`~singlink_gr.burst.Synchronizer` (``detect`` + ``decode``, as ``burst_sync`` with a
    known k): GNU Radio's RRC taps, a random start (whole samples), carrier offset ``cfo``
    cycles/sample with a random initial phase, complex noise of variance 10^(-snr_db/10) per
    sample (per symbol after the matched filter), the matched filter, a detection guess up to
    +-2 samples off. The channel of ``chunk`` bursts is drawn in one vectorised pass, all from one
    generator seeded by (seed, snr_db). Returns ({"ok", "no preamble", "header crc", "undetected"
    (a CRC-passing header that is not the one sent): counts}, SNR estimates of the good bursts)."""
    from scipy.signal import fftconvolve

    from .burst import FLAG_LAST, BurstConfig, Header, Layout, Synchronizer, build_burst, rrc_taps

    cfg = config or BurstConfig()
    rng = np.random.default_rng([seed, int(round(snr_db * 100)) & 0xFFFF])
    sps, taps, lay = cfg.sps, rrc_taps(cfg), Layout.of(cfg, k)
    sync = Synchronizer(cfg)
    counts, snr_est = {"ok": 0, "no preamble": 0, "header crc": 0, "undetected": 0}, []
    total = (lay.length + cfg.guard) * sps + 72 * sps
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        headers = [Header(seq=int(rng.integers(1 << 16)), image_id=int(rng.integers(1 << 16)), k=k,
                          flags=int(rng.integers(3)) | (FLAG_LAST if rng.random() < 0.5 else 0)) for _ in range(m)]
        z = ((rng.standard_normal((m, k)) + 1j * rng.standard_normal((m, k))) / np.sqrt(2)).astype(np.complex64)
        sym = np.stack([build_burst(z[i], headers[i], cfg) for i in range(m)])
        lead = 64 * sps + rng.integers(0, 8 * sps, m)      # random start, in samples
        up = np.zeros((m, total), np.complex64)
        for i in range(m):
            up[i, lead[i]:lead[i] + sym.shape[1] * sps:sps] = sym[i]
        t = np.arange(total)
        rot = np.exp(1j * (2 * np.pi * cfo * t[None, :] + rng.uniform(0, 2 * np.pi, m)[:, None]))
        sigma = np.sqrt(10 ** (-snr_db / 10) / 2)
        rx = fftconvolve(up, taps[None, :], axes=1)[:, :total] * rot
        rx = rx + sigma * (rng.standard_normal(rx.shape) + 1j * rng.standard_normal(rx.shape))
        mf = fftconvolve(rx, taps[None, :], axes=1)[:, :total].astype(np.complex64)
        guesses = lead + (cfg.ntaps - 1) + rng.integers(-2, 3, m)   # first chip's peak after both filters
        for i in range(m):
            res = sync.detect(mf[i], int(guesses[i]))
            if res.ok:
                res = sync.decode(mf[i], res, k)
            if not res.ok and res.reason != "wrong k":
                counts[res.reason] += 1
            elif res.header != headers[i]:
                counts["undetected"] += 1
            else:
                counts["ok"] += 1
                snr_est.append(res.snr_db)
    return counts, np.asarray(snr_est)


__all__ = ["random_bursts", "run_burst_chain", "header_trials", "make_tag", "frame_tags", "tagged_source", "sink_tags", "run_flowgraph",
           "messages", "pdu_image"]
