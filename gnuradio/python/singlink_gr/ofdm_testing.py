"""Helpers for qa_ofdm_jscc.py, tests and benchmarks: OFDM frames of random payloads (no DeepJSCC)
through GNU Radio's OFDM transmitter and receiver chains and ``channels.channel_model``."""
from __future__ import annotations

import numpy as np
from gnuradio import blocks, channels, gr

from .burst import FLAG_LAST, Header, header_to_bits
from .ofdm import OFDMConfig, header_symbols, ofdm_header
from .testing import make_tag, run_flowgraph, sink_tags

__all__ = ["random_packets", "run_ofdm_chain", "unit_taps"]


def unit_taps(taps) -> np.ndarray:
    """Channel taps (one per sample) scaled to unit energy: the mean |H_c|^2 over the carriers is 1."""
    t = np.asarray(taps, np.complex128)
    return t / np.linalg.norm(t)


def random_packets(n, k, config: OFDMConfig | None = None, seed=0, corrupt=()):
    """``n`` packets (header symbols + k random unit-power payload symbols), seq 0..n-1, image number
    100+i, the last flagged last and tagged ``eob``. ``corrupt``: packets whose header goes out
    with one flipped CRC bit. Returns (symbols, [(offset, key, value)] tags, payloads)."""
    cfg = config or OFDMConfig()
    rng = np.random.default_rng(seed)
    parts, tags, payloads, off = [], [], [], 0
    for i in range(n):
        z = ((rng.standard_normal(k) + 1j * rng.standard_normal(k)) / np.sqrt(2)).astype(np.complex64)
        z /= np.sqrt(np.mean(np.abs(z) ** 2))
        h = Header(seq=i, image_id=100 + i, k=k, flags=FLAG_LAST if i == n - 1 else 0)
        if i in corrupt:
            bits = header_to_bits(h)
            bits[-1] ^= 1
            head = np.resize(ofdm_header().modulate(bits), cfg.header_len)
        else:
            head = header_symbols(h, cfg)
        packet = np.concatenate([head, z]).astype(np.complex64)
        tags.append((off, "packet_len", len(packet)))
        if i == n - 1:
            tags.append((off, "eob", True))
        parts.append(packet)
        payloads.append(z)
        off += len(packet)
    return np.concatenate(parts), tags, payloads


def run_ofdm_chain(symbols, tags, k, config: OFDMConfig | None = None, snr_db=None, cfo=0.0, taps=(1.0,),
                   seed=1, sync_threshold=0.3):
    """Packets -> :class:`~singlink_gr.ofdm_jscc_tx.ofdm_mod` -> ``channels.channel_model`` (noise for
    ``snr_db`` per subcarrier, ``cfo`` cycles/sample, ``taps`` scaled to unit energy, noise seed
    ``seed``) -> :class:`~singlink_gr.ofdm_jscc_rx.ofdm_demod` -> vector sink. Returns (demod block,
    [(payload (k,), {tag: value})])."""
    from .ofdm_jscc_rx import ofdm_demod
    from .ofdm_jscc_tx import ofdm_mod

    cfg = config or OFDMConfig()
    noise = 0.0 if snr_db is None else float(10 ** (-snr_db / 20))
    src = blocks.vector_source_c(np.asarray(symbols, np.complex64).tolist(), False, 1, [make_tag(*t) for t in tags])
    ch = channels.channel_model(noise, float(cfo), 1.0, unit_taps(taps).tolist(), float(seed), True)
    mod, demod = ofdm_mod(cfg), ofdm_demod(k, cfg, sync_threshold)   # named: Python blocks must outlive the run
    sink = blocks.vector_sink_c()
    tb = gr.top_block()
    tb.connect(src, mod, ch, demod, sink)
    run_flowgraph(tb, 120)
    data = np.array(sink.data(), np.complex64)
    all_tags = sink_tags(sink)
    frames = []
    for off, _, length in sink_tags(sink, "packet_len"):
        frames.append((data[off:off + length], {t[1]: t[2] for t in all_tags if t[0] == off}))
    return demod, frames
