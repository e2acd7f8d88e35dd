"""Helpers for qa_ofdm_jscc.py, tests and benchmarks/ofdm_jscc.py: OFDM frames of random payloads (no
DeepJSCC) through GNU Radio's OFDM transmitter and receiver chains and ``channels.channel_model``;
images over the GNU Radio chain and over singlink's own (Sionna) OFDM link with the same channel."""
from __future__ import annotations

import numpy as np
from gnuradio import blocks, channels, gr

from .burst import FLAG_LAST, Header, header_to_bits
from .ofdm import OFDMConfig, header_symbols, ofdm_header
from .testing import make_tag, messages, pdu_image, run_flowgraph, sink_tags

__all__ = ["random_packets", "run_ofdm_chain", "frame_delivery", "unit_taps", "over_gnuradio", "over_sionna"]


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
                   seed=1, sync_threshold=0.1):
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


def frame_delivery(n, k, snr_db, taps, cfo, seed, config: OFDMConfig | None = None):
    """``n`` frames of k random payload symbols (seed ``seed``) through :func:`run_ofdm_chain` (noise
    seed ``seed`` + 1) -> counts: ``sent``, ``not_found`` (no header read for the frame), the
    receiver's ``header_crc`` and ``wrong_k``, ``delivered`` (frames out, each seq once, in order:
    ``in_order``)."""
    sym, tags, _ = random_packets(n, k, config, seed=seed)
    demod, frames = run_ofdm_chain(sym, tags, k, config, snr_db=snr_db, cfo=cfo, taps=taps, seed=seed + 1)
    seqs = [int(t["frame"]) for _, t in frames]
    stats = demod.stats
    return {"sent": n, "not_found": n - stats["headers"], "header_crc": stats["header_crc"],
            "wrong_k": stats["wrong_k"], "delivered": len(seqs), "in_order": seqs == sorted(set(seqs))}


def over_gnuradio(files, jscc, snr_db, taps, cfo, seed):
    """Images (files, ``resolve_images`` pairs) through ofdm_jscc_tx -> channels.channel_model (``taps``
    scaled to unit energy, ``cfo`` cycles/sample, noise for ``snr_db`` per subcarrier, noise seed
    ``seed``) -> ofdm_jscc_rx, both with the DeepJSCC model ``jscc``.
    Returns ({frame: (uint8 image, SNR estimate)}, the receiver's counters)."""
    from .ofdm_jscc_rx import ofdm_jscc_rx
    from .ofdm_jscc_tx import ofdm_jscc_tx

    tx = ofdm_jscc_tx(checkpoint=jscc, snr_db=snr_db, images=files)
    ch = channels.channel_model(float(10 ** (-snr_db / 20)), float(cfo), 1.0, unit_taps(taps).tolist(), float(seed),
                                True)
    rx = ofdm_jscc_rx(checkpoint=jscc, batch_size=1)   # each image out at once: none left for stop()
    dbg = blocks.message_debug()
    tb = gr.top_block()
    tb.connect(tx, ch, rx)
    tb.msg_connect(rx, "images_out", dbg, "store")
    run_flowgraph(tb, 600)
    out = {}
    for msg in messages(dbg):
        image, meta = pdu_image(msg)
        out[int(meta["frame"])] = (image, float(meta["snr_db"]))
    return out, rx.stats


def over_sionna(z, snr_db, taps, seed, decoder, cfg: OFDMConfig):
    """DeepJSCC symbols z (N, k) through singlink's own OFDM link (``phy.make_channel("ofdm-awgn:csi=ls:...")``:
    the same 52 active carriers of 64, one pilot OFDM symbol, least squares, LMMSE,
    ``phy.ofdm.jscc_input``) with the taps' frequency response as its channel, decoded by ``decoder``
    (:class:`~singlink_gr.link.Decoder`) at the effective SNR. Returns (uint8 images, SNRs, the spec)."""
    import tensorflow as tf
    import torch

    from singlink import phy
    from singlink.phy.ofdm import jscc_input

    k = z.shape[1]
    active = cfg.data_carriers + len(cfg.pilot_carriers[0])   # Sionna's grid: every active carrier carries data
    data_syms = -(-k // active)
    spec = f"ofdm-awgn:csi=ls:fft={cfg.fft_len}:cp={cfg.cp_len}:symbols={data_syms + 1}:pilots=0:guard=6+5:dc=1"
    link = phy.make_channel(spec)
    f = np.arange(cfg.fft_len) - cfg.fft_len // 2
    t = unit_taps(taps)
    # H(f_c) = sum_l t_l exp(-j 2 pi f_c l / N) on Sionna's subcarriers f_c = -N/2 .. N/2 - 1
    H = np.exp(-2j * np.pi * np.outer(f, np.arange(len(t))) / cfg.fft_len) @ t
    h_freq = np.broadcast_to(H.astype(np.complex64), (len(z), 1, 1, 1, 1, data_syms + 1, cfg.fft_len))
    phy.set_seed(seed)
    y, no_eff = link(tf.constant(z), float(snr_db), h_freq=tf.constant(h_freq))
    y_in, snr = jscc_input(torch.from_numpy(y.numpy()), torch.from_numpy(no_eff.numpy()))
    images = decoder.restore(y_in.numpy(), snr.numpy(), [None] * len(z), list(range(len(z))))
    return images, snr.numpy(), spec
