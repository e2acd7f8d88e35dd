"""What ``burst_sync`` costs per burst, alone and by part, next to the DeepJSCC decoder per image.

``benchmarks/flowgraph.py`` measures the radio blocks inside the whole over-the-air flowgraph,
where they share the cores with the encoder, the channel model and the decoder; this script
isolates the synchroniser:

- **stream**: ``--n`` bursts of k random payload symbols (``testing.random_bursts``) through GNU
  Radio's RRC interpolator, ``channels.channel_model`` (noise for ``--snr``, carrier offset
  ``--cfo``, sample clock 1 + ``--sro``), ``burst_rx``'s matched filter and ``corr_est_cc``,
  recorded with their ``corr_start`` tags;
- **replay**: the recording through ``burst_sync`` alone (in work calls of at most 3,072
  samples, as ``corr_est_cc`` hands them over), ``--reps`` times; its thread CPU time over its
  whole ``general_work`` per burst (minimum and median over the runs);
- **parts**: thread CPU time of each step on one received burst and one refused candidate,
  each called ``--calls`` times (minimum of 3 passes): a refused preamble check, an accepted one,
  a burst's cut check (3 windows), interpolation and phase track, LLRs, the header decoder (the
  compiled SC decoder, its CRC check and the header's symbols from its codeword), the header's
  fields and CRC, and gain and SNR; with the counts per burst the replay saw (refused checks per
  burst), their sum is the arithmetic per burst, and the replay's time minus it the Python
  around it;
- **decoder**: ``Decoder.restore`` per image on ``--images`` CIFAR-10 faces' symbols in batches of
  16 (thread CPU time, as ``flowgraph.py``'s ``decoder_seconds``).

``sync_vs_decoder`` = replay time per burst / decoder time per image (both alone, same run).

``--beside-decoder``: the replay again, ``--reps`` times, while the same decoder decodes without
pause in another thread, as in the over-the-air flowgraph; ``beside_decoder_vs_alone`` (medians)
is how much of ``burst_sync``'s larger work time inside ``benchmarks/flowgraph.py`` comes from
sharing the two cores and their caches with the decoder rather than from its own work.

``--save`` / ``--compare``: whether a change to ``burst_sync`` kept its decisions. ``--save`` writes
the recording and the replay's stats and output (payload samples and tags) to an .npz; a later
run with ``--compare`` replays that recording (a new one would differ in the last bits: GNU
Radio's FFT filters measure their FFTW plans per process) and checks equal stats, bit-identical
payloads and equal tags (numbers within 1e-9), exiting with 1 otherwise; e.g. ``--save`` from a checkout of the old
commit (``git worktree add``), ``--compare`` from the new one, at ``--snr -5`` and ``--snr 10``.
The table comes first; the last line of stdout is one JSON object.

Run::

    .venv/bin/python benchmarks/burst_sync.py              # 256 bursts at -5 dB, k = 16
    .venv/bin/python benchmarks/burst_sync.py --snr 10 --reps 1 --images 16 --compare old-10db.npz
    .venv/bin/python benchmarks/burst_sync.py --reps 3 --beside-decoder
"""
import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "gnuradio" / "python"))

from singlink import phy  # noqa: E402,F401  (first: configures TensorFlow)

import numpy as np  # noqa: E402
import pmt  # noqa: E402
from gnuradio import blocks, channels, filter, gr  # noqa: E402

from singlink_gr import burst as B  # noqa: E402
from singlink_gr.burst_rx import burst_sync, preamble_detector  # noqa: E402
from singlink_gr.common import resolve_images  # noqa: E402
from singlink_gr.link import Channel, Decoder, Encoder, load_jscc  # noqa: E402
from singlink_gr.testing import random_bursts, run_flowgraph, sink_tags, tagged_source  # noqa: E402


def record(args, cfg):
    """(matched-filter samples, [(offset, "corr_start", value)]) of the stream."""
    symbols, _, _ = random_bursts(args.n, args.k, cfg, seed=args.seed)
    taps = B.rrc_taps(cfg).tolist()
    src = blocks.vector_source_c(symbols.tolist(), False)
    ch = channels.channel_model(10 ** (-args.snr / 20), args.cfo, 1.0 + args.sro, [1.0], float(args.seed + 1), True)
    mf = filter.fft_filter_ccf(1, taps, 1)
    sink = blocks.vector_sink_c()
    tb = gr.top_block()
    tb.connect(src, filter.interp_fir_filter_ccf(cfg.sps, taps), ch, mf, preamble_detector(cfg), sink)
    run_flowgraph(tb, 600)
    tags = [(int(t.offset), "corr_start", pmt.to_double(t.value)) for t in sink.tags()
            if pmt.symbol_to_string(t.key) == "corr_start"]
    return np.array(sink.data(), np.complex64), tags


def replay(x, tags, args, cfg):
    """burst_sync alone on the recording: (work seconds, stats, results, (output samples, output tags))."""
    src = tagged_source(x, tags)
    chunks = blocks.copy(gr.sizeof_gr_complex)
    chunks.set_max_noutput_items(3072)
    sync = burst_sync(k=args.k, config=cfg)
    sink = blocks.vector_sink_c()
    tb = gr.top_block()
    tb.connect(src, chunks, sync, sink)
    run_flowgraph(tb, 600)
    return sync.work_seconds, dict(sync.stats), list(sync.results), (np.array(sink.data(), np.complex64),
                                                                     sink_tags(sink))


def save_output(path, x, tags, stats, output):
    """The recording and the replay's decisions (stats, output samples and tags) for a later ``--compare``."""
    samples, out_tags = output
    np.savez(path, x=x, x_tags=json.dumps(tags), samples=samples, stats=json.dumps(stats), tags=json.dumps(out_tags))


def compare_output(path, stats, output):
    """Differences between this replay's decisions and a ``--save``d one (empty: the same): equal
    stats, bit-identical output samples (payloads), the same output tags, numbers within 1e-9."""
    ref = np.load(path)
    samples, tags = output
    diffs = []
    if json.loads(str(ref["stats"])) != stats:
        diffs.append(f"stats {stats} != {json.loads(str(ref['stats']))}")
    if not np.array_equal(ref["samples"].view(np.uint64), samples.view(np.uint64)):
        diffs.append("output samples differ")
    ref_tags = [tuple(t) for t in json.loads(str(ref["tags"]))]
    now = [tuple(t) for t in json.loads(json.dumps(tags))]
    if [t[:2] for t in ref_tags] != [t[:2] for t in now]:
        diffs.append("output tag offsets or keys differ")
    else:
        for (offset, key, a), (_, _, b) in zip(ref_tags, now):
            same = abs(a - b) <= 1e-9 if isinstance(a, float) else a == b
            if not same:
                diffs.append(f"tag {key} at {offset}: {a} != {b}")
    return diffs


def thread_seconds(fn, calls):
    """Thread CPU seconds of one call of fn: the minimum over 3 passes of ``calls`` calls."""
    best = float("inf")
    for _ in range(3):
        t0 = time.thread_time()
        for _ in range(calls):
            fn()
        best = min(best, (time.thread_time() - t0) / calls)
    return best


def parts(x, anchors, args, cfg):
    """Thread seconds per call of each step of burst_sync's work, on the first received burst."""
    sync = B.Synchronizer(cfg)
    margin, needed = sync.margin(), sync.samples_needed(args.k)
    a = anchors[0]
    window = x[a - margin:a - margin + needed]
    res = sync.detect(window, margin)
    lay = B.Layout.of(cfg, args.k)
    raw, y = sync._symbols(window, res, lay.length)
    yt, fr = sync._phase_track(y, lay, len(lay.pilot_blocks), res.metric)
    soft = sync.header_soft(yt, lay)
    bits = sync.code.decode(soft[None])[0]
    res = sync.decode(window, sync.detect(window, margin), args.k)
    inner = np.array([margin + 64 * cfg.sps * j for j in (1, 2, 3)])   # three data windows inside the burst
    noise = x[a + 300 * cfg.sps - margin:a + 300 * cfg.sps - margin + sync.preamble_samples()]
    n = args.calls
    return {
        "refused_check": thread_seconds(lambda: sync.detect(noise, margin), n),
        "accepted_check": thread_seconds(lambda: sync.detect(window, margin), n),
        "cut_check_3": thread_seconds(lambda: sync.first_preamble(window, inner, 0.5 * res.metric), n),
        "interpolation": thread_seconds(lambda: sync._symbols(window, res, lay.length), n),
        "phase_track": thread_seconds(lambda: sync._phase_track(y, lay, len(lay.pilot_blocks), res.metric), n),
        "llrs": thread_seconds(lambda: sync.header_soft(yt, lay), n),
        "header_decoder": thread_seconds(lambda: sync.code.decode_one(soft), n),   # SC, CRC, known symbols
        "crc": thread_seconds(lambda: B.bits_to_header(bits), n),
        "gain_snr": thread_seconds(lambda: sync._equalise(res, lay, raw, yt, fr), n),
    }


def decoder_inputs(args):
    """(Decoder, received symbols of ``--images`` CIFAR-10 faces at ``--snr``): what the decoder's timings decode."""
    jscc = load_jscc(args.checkpoint)
    paths = [p for p, _ in resolve_images("cifar10/test", args.images)]
    enc, ch, dec = Encoder(jscc), Channel("awgn", seed=args.seed), Decoder(jscc, method="deepjscc")
    z = np.concatenate([enc.encode([enc.load(p) for p in paths[s:s + 16]], args.snr) for s in range(0, len(paths), 16)])
    return dec, np.stack([ch.apply(z[i], args.snr, i)[0] for i in range(len(z))])


def decode_all(dec, y, snr):
    """Decoder.restore on every image of y, in batches of 16."""
    for s in range(0, len(y), 16):
        idx = list(range(s, min(len(y), s + 16)))
        dec.restore(y[idx], [snr] * len(idx), [None] * len(idx), idx)


def decoder_per_image(args, dec, y):
    """Decoder.restore's thread CPU seconds per image (batches of 16, worker thread, as flowgraph.py)."""
    result = {}

    def body():
        dec.restore(y[:16], [args.snr] * 16, [None] * 16, list(range(16)))   # first-call costs
        t0 = time.thread_time()
        decode_all(dec, y, args.snr)
        result["s"] = (time.thread_time() - t0) / len(y)

    worker = threading.Thread(target=body)
    worker.start()
    worker.join()
    return result["s"]


def replay_beside_decoder(x, tags, args, cfg, dec, y):
    """Work seconds of ``--reps`` replays while the DeepJSCC decoder decodes in another thread
    without pause, as it does in the over-the-air flowgraph: the share of burst_sync's cost there
    that comes from sharing the cores and caches with the decoder, not from its own work."""
    done = threading.Event()

    def decode():
        while not done.is_set():
            decode_all(dec, y, args.snr)

    worker = threading.Thread(target=decode)
    worker.start()
    try:
        return [replay(x, tags, args, cfg)[0] for _ in range(args.reps)]
    finally:
        done.set()
        worker.join()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=256, help="bursts in the stream (default %(default)s)")
    p.add_argument("--k", type=int, default=16, help="payload symbols per burst (default %(default)s)")
    p.add_argument("--snr", type=float, default=-5.0, help="SNR in dB (default %(default)s)")
    p.add_argument("--cfo", type=float, default=2e-4, help="carrier offset, cycles/sample (default %(default)s)")
    p.add_argument("--sro", type=float, default=1e-6, help="sample clock offset (default %(default)s)")
    p.add_argument("--reps", type=int, default=5, help="replays (default %(default)s)")
    p.add_argument("--calls", type=int, default=400, help="calls per pass when timing a part (default %(default)s)")
    p.add_argument("--checkpoint", default="deepjscc-cifar10-rho1_192", help="decoder (default %(default)s)")
    p.add_argument("--images", type=int, default=256, help="images for the decoder's time (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", metavar="NPZ", help="write the replay's decisions (stats, output samples and tags) here")
    p.add_argument("--compare", metavar="NPZ", help="replay the recording of a --save of another version of "
                   "burst_sync and check the decisions against it: exit status 1 when they differ")
    p.add_argument("--beside-decoder", action="store_true",
                   help="also replay --reps times while the DeepJSCC decoder runs in another thread")
    args = p.parse_args(argv)
    if args.compare and not Path(args.compare).is_file():
        raise SystemExit(f"--compare {args.compare}: no such file (write it with --save)")
    if args.n < 1 or args.reps < 1 or args.calls < 1 or args.images < 16:
        raise SystemExit("--n, --reps and --calls must be >= 1 and --images >= 16")

    cfg = B.BurstConfig()
    if args.compare:   # the recording itself: GNU Radio's FFTs (FFTW plans measured per process) round differently per run
        ref = np.load(args.compare)
        x, tags = ref["x"], [tuple(t) for t in json.loads(str(ref["x_tags"]))]
    else:
        x, tags = record(args, cfg)
    runs = [replay(x, tags, args, cfg) for _ in range(args.reps)]
    seconds = [r[0] for r in runs]
    stats, results, output = runs[-1][1], runs[-1][2], runs[-1][3]
    if args.save:
        save_output(args.save, x, tags, stats, output)
    diffs = compare_output(args.compare, stats, output) if args.compare else []
    bursts = max(stats["bursts"], 1)
    part_s = parts(x, [r[0] for r in results], args, cfg)
    refused = stats["no_preamble"] / bursts   # checks per emitted burst of each kind
    arithmetic = (part_s["accepted_check"] + refused * part_s["refused_check"] + part_s["cut_check_3"]
                  + part_s["interpolation"] + part_s["phase_track"] + part_s["llrs"] + part_s["header_decoder"]
                  + part_s["crc"] + part_s["gain_snr"])
    per_burst = min(seconds) / bursts
    decoder, y = decoder_inputs(args)
    dec = decoder_per_image(args, decoder, y)
    beside = replay_beside_decoder(x, tags, args, cfg, decoder, y) if args.beside_decoder else []

    print(f"burst_sync alone: {args.n} bursts, k = {args.k}, {args.snr:g} dB, cfo {args.cfo:g}, sro {args.sro:g}; "
          f"{len(tags)} corr_start tags; {stats}")
    print(f"replay: {1e3 * per_burst:.3f} ms per burst (min of {args.reps}; median "
          f"{1e3 * statistics.median(seconds) / bursts:.3f})")
    print(f"{'part':>16s} {'ms per call':>12s}")
    for key, value in part_s.items():
        print(f"{key:>16s} {1e3 * value:12.4f}")
    print(f"arithmetic per burst {1e3 * arithmetic:.3f} ms ({refused:.2f} refused checks per burst), the rest "
          f"(Python, tags, buffering) {1e3 * (per_burst - arithmetic):.3f} ms; decoder {1e3 * dec:.3f} ms per image; "
          f"sync_vs_decoder {per_burst / dec:.2f}")
    if beside:
        print(f"replay beside the decoder: {1e3 * min(beside) / bursts:.3f} ms per burst (min of {args.reps}; median "
              f"{1e3 * statistics.median(beside) / bursts:.3f}), {statistics.median(beside) / statistics.median(seconds):.2f}"
              f" x alone (medians)")
    if args.compare:
        print(f"against {args.compare}: " + ("the same decisions" if not diffs else "; ".join(diffs[:5])))
    print(json.dumps({
        "benchmark": "burst_sync", "n": args.n, "k": args.k, "snr_db": args.snr, "cfo": args.cfo, "sro": args.sro,
        "corr_start_tags": len(tags), "stats": stats, "replay_seconds": [round(s, 4) for s in seconds],
        "sync_ms_per_burst": round(1e3 * per_burst, 4), "parts_ms": {k: round(1e3 * v, 4) for k, v in part_s.items()},
        "refused_checks_per_burst": round(refused, 3), "arithmetic_ms_per_burst": round(1e3 * arithmetic, 4),
        "python_ms_per_burst": round(1e3 * (per_burst - arithmetic), 4), "decoder_ms_per_image": round(1e3 * dec, 4),
        "sync_vs_decoder": round(per_burst / dec, 3), "load_avg_1min": round(os.getloadavg()[0], 2),
        **({"replay_beside_decoder_seconds": [round(s, 4) for s in beside],
            "beside_decoder_vs_alone": round(statistics.median(beside) / statistics.median(seconds), 3)} if beside else {}),
        **({"same_decisions": not diffs} if args.compare else {}),
    }))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
