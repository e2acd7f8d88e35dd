"""Symbols per second through the GNU Radio flowgraph next to the same chain called directly.

Both sides send the same ``--n`` images (the first of ``--images``) with the same objects
(one DeepJSCC model, one channel, one receiver; method deepjscc):

- ``direct``: :func:`singlink_gr.link.direct_link`: load + encode in groups of ``--batch``,
  singlink's Sionna channel frame by frame (seeded per frame), decode in groups of ``--batch``,
  uint8 images out; run in one worker thread (``--direct-thread worker``, the default), since
  the flowgraph's blocks run in worker threads too. On the 2-core project machine shared with a
  training job, torch's OpenMP-parallel ops called from the *main* thread were measured 20-50x
  slower than the same ops in a worker thread (decoding 16 images: 650-800 ms vs 12-30 ms),
  which would flatter the flowgraph; ``--direct-thread main`` shows that case;
- ``flowgraph``: ``jscc_tx -> sionna_channel -> jscc_rx`` (+ message_debug storing the image
  PDUs), timed from ``tb.start()`` to the end of ``tb.wait()``; blocks are built before the clock
  starts, as the direct side's objects are.

- ``over the air``: ``burst_tx -> channels.channel_model -> burst_rx`` (bursts with preamble,
  header (``--header-code``: polar, or spread by ``--header-sf``), pilots and RRC pulses at ``--sps``; noise for ``--snr``, carrier offset
  ``--cfo``, sample clock ``1 + --sro``), the receiver synchronising and estimating the SNR
  itself; timed like the flowgraph. Its rate counts the same payload symbols (n * k), so
  ``over_the_air_vs_direct`` = over-the-air rate / direct rate says what the whole radio
  path costs; ``ota_samples_per_s`` counts the complex samples through the channel model.
  The decoder's own time (``Decoder.restore`` on the same images, in a worker thread) is
  measured alone as ``decoder_seconds`` and set against the work time of the blocks the radio
  path adds (RRC interpolator, matched filter and ``corr_est_cc`` from GNU Radio's performance
  counters, ``burst_sync``'s thread CPU time over its whole ``general_work``: tags, buffering,
  synchronising, output; the decoder's is thread CPU time too, so a loaded
  machine does not inflate one side): ``radio_vs_decoder`` (goal <= 1) and
  ``burst_sync_vs_decoder``. The same decoder's thread CPU time *inside* the over-the-air run
  (``Decoder.restore`` as ``jscc_rx`` calls it, sharing the cores and caches with the other
  blocks, as the radio blocks do) is ``decoder_in_flowgraph_seconds``, and
  ``radio_vs_decoder_in_flowgraph`` the ratio to it: on a loaded machine the blocks' work time
  grows with the contention, which the decoder measured alone does not see. ``rx_samples_per_s`` is the receive chain's rate on one thread:
  samples through the receiver per second of the summed work time of its blocks (matched filter,
  ``corr_est_cc``, ``burst_sync``: samples in to frames for the decoder), what one thread running
  them in turn would need (goal >= 2e6: a USRP or Pluto streams 1-2 Msps). The default ``--snr``
  is -5 dB, the lowest SNR the burst format is sized for, where ``corr_est_cc`` tags the most
  false candidates; carrier and sample-clock offsets are on. ``ota_overhead_seconds`` is the
  wall-clock difference to the direct link. ``header_symbols`` (the header's length) and
  ``header_error_rate`` (bursts whose header failed its CRC over the bursts sent, all timed runs
  pooled; a few hundred bursts cannot resolve the ~2e-4 expected at -5 dB:
  ``benchmarks/header_code.py`` measures it over 20,000 headers) stand beside ``k``.
  ``burst_sync_work_calls``: how many ``general_work`` calls with input ``burst_sync`` had per run.
  ``--no-ota`` skips this part.

Channel symbols per second = n * k / seconds. The runs alternate (direct, flowgraph, direct, ...)
``--reps`` times after one small warm-up of each; the medians are reported, with
``flowgraph_vs_direct`` = flowgraph rate / direct rate (goal >= 0.8), ``outputs_equal`` (the
flowgraph's images are bit-identical to the direct chain's) and ``flowgraph_vs_direct_cpu``, the
same ratio per CPU-second of the process (all threads). The flowgraph runs its three blocks in
three threads, so on a machine shared with other work it gets a larger share of the CPU than the
single-threaded direct loop, and its wall-clock ratio can exceed 1 for that reason alone; the
CPU ratio shows the framework's own cost. The table comes first; the
last line of stdout is one JSON object.

Run::

    .venv/bin/python benchmarks/flowgraph.py                     # 256 CIFAR-10 images, k = 16
    .venv/bin/python benchmarks/flowgraph.py --n 64 --reps 5 --channel rayleigh-block
    .venv/bin/python benchmarks/flowgraph.py --checkpoint deepjscc-cifar10-rho1_6   # k = 512
    .venv/bin/python benchmarks/flowgraph.py --n 64 --reps 1 --snr 10    # a quick look at 10 dB
"""
import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# GNU Radio's per-block performance counters (work time of the over-the-air chain's C++ blocks);
# read from the environment when GNU Radio loads its configuration
os.environ.setdefault("GR_CONF_PERFCOUNTERS_ON", "True")
os.environ.setdefault("GR_CONF_PERFCOUNTERS_EXPORT", "False")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "gnuradio" / "python"))

from singlink import phy  # noqa: E402,F401  (first: configures TensorFlow)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from gnuradio import blocks, gr  # noqa: E402

import singlink_gr  # noqa: E402
from singlink_gr.common import parse_image_message, resolve_images  # noqa: E402
from singlink_gr.burst import BurstConfig, Layout  # noqa: E402
from singlink_gr.link import Channel, Decoder, Encoder, direct_link, load_jscc  # noqa: E402
from singlink_gr.testing import run_flowgraph  # noqa: E402


def run_direct(paths, args, jscc):
    enc, ch, dec = Encoder(jscc), Channel(args.channel, seed=args.seed), Decoder(jscc, method="deepjscc")
    result = {}

    def body():
        t0, c0 = time.perf_counter(), time.process_time()
        result["out"] = direct_link(paths, args.snr, enc, ch, dec, batch_size=args.batch)
        result["s"], result["cpu"] = time.perf_counter() - t0, time.process_time() - c0

    if args.direct_thread == "main":
        body()
    else:  # a worker thread, as each flowgraph block runs in one
        worker = threading.Thread(target=body)
        worker.start()
        worker.join()
    return result["s"], result["cpu"], result["out"]


def run_flowgraph_once(paths, args, jscc):
    tx = singlink_gr.jscc_tx(checkpoint=jscc, snr_db=args.snr, images=[str(p) for p in paths], batch_size=args.batch)
    ch = singlink_gr.sionna_channel(args.channel, seed=args.seed)
    rx = singlink_gr.jscc_rx("deepjscc", checkpoint=jscc, batch_size=args.batch)
    dbg = blocks.message_debug()
    tb = gr.top_block()
    tb.connect(tx, ch, rx)
    tb.msg_connect(rx, "images_out", dbg, "store")
    t0, c0 = time.perf_counter(), time.process_time()
    run_flowgraph(tb, timeout=600)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    images = [parse_image_message(dbg.get_message(i))[0] for i in range(dbg.num_messages())]
    return seconds, cpu, np.stack(images) if images else np.zeros((0,), np.uint8)


def run_ota_once(paths, args, jscc):
    """burst_tx -> channels.channel_model -> burst_rx; returns (seconds, cpu seconds, images (N, H, W, 3) in
    image order, samples through the channel, receiver stats, work seconds per radio block, the
    decoder's seconds inside the run)."""
    from gnuradio import channels

    tx = singlink_gr.burst_tx(checkpoint=jscc, snr_db=args.snr, images=[str(p) for p in paths], batch_size=args.batch,
                              sps=args.sps, header_code=args.header_code, header_sf=args.header_sf)
    ch = channels.channel_model(10 ** (-args.snr / 20), args.cfo, 1.0 + args.sro, [1.0], float(args.seed + 1), True)
    rx = singlink_gr.burst_rx("deepjscc", checkpoint=jscc, batch_size=args.batch, sps=args.sps,
                              header_code=args.header_code, header_sf=args.header_sf)
    decoder_s = []   # thread CPU time of each Decoder.restore call jscc_rx makes

    def timed_restore(*a, restore=rx.rx.decoder.restore, **kw):
        t0 = time.thread_time()
        try:
            return restore(*a, **kw)
        finally:
            decoder_s.append(time.thread_time() - t0)

    rx.rx.decoder.restore = timed_restore
    counter = blocks.probe_rate(gr.sizeof_gr_complex)   # only to count items: a pass-through tap
    dbg = blocks.message_debug()
    tb = gr.top_block()
    tb.connect(tx, ch, rx)
    tb.connect(ch, counter)
    tb.msg_connect(rx, "images_out", dbg, "store")
    t0, c0 = time.perf_counter(), time.process_time()
    run_flowgraph(tb, timeout=600)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    got = [parse_image_message(dbg.get_message(i)) for i in range(dbg.num_messages())]
    images = np.zeros((len(paths), *got[0][0].shape), np.uint8) if got else np.zeros((0,), np.uint8)
    for image, meta in got:
        images[int(str(meta["image_id"])[3:]) % max(len(paths), 1)] = image
    samples = len(paths) * (Layout.of(tx.config, jscc.config.k).length + tx.config.guard) * args.sps
    tps = gr.high_res_timer_tps()
    block_s = {"rrc_interp_fir": tx.shaper.pc_work_time_total() / tps,
               "matched_filter": rx.matched.pc_work_time_total() / tps,
               "corr_est_cc": rx.corr.pc_work_time_total() / tps, "burst_sync": rx.sync.work_seconds}
    return seconds, cpu, images, samples, rx.stats, block_s, sum(decoder_s), rx.sync.work_calls


RX_BLOCKS = ("matched_filter", "corr_est_cc", "burst_sync")   # the receive chain up to the decoder


def run_decoder_only(paths, args, jscc):
    """Decoder.restore alone on the images' received symbols (direct AWGN), in a worker thread: the
    DeepJSCC decoder's own cost, in CPU seconds of that thread (torch runs it with 1 thread here)."""
    enc, ch, dec = Encoder(jscc), Channel("awgn", seed=args.seed), Decoder(jscc, method="deepjscc")
    z = np.concatenate([enc.encode([enc.load(p) for p in paths[s:s + args.batch]], args.snr)
                        for s in range(0, len(paths), args.batch)])
    y = np.stack([ch.apply(z[i], args.snr, i)[0] for i in range(len(z))])
    result = {}

    def body():
        t0 = time.thread_time()   # CPU time of this thread, as burst_sync's own clock
        for s in range(0, len(paths), args.batch):
            idx = list(range(s, min(len(paths), s + args.batch)))
            dec.restore(y[idx], [args.snr] * len(idx), [None] * len(idx), idx)
        result["s"] = time.thread_time() - t0

    worker = threading.Thread(target=body)
    worker.start()
    worker.join()
    return result["s"]


def psnr_mean(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2, axis=(1, 2, 3))
    return float(np.mean(10 * np.log10(255.0 ** 2 / mse)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="deepjscc-cifar10-rho1_192", help="DeepJSCC checkpoint (default %(default)s)")
    p.add_argument("--images", default="cifar10/test", help="image folder (default %(default)s, under singlink's data roots)")
    p.add_argument("--n", type=int, default=256, help="images per run (default %(default)s)")
    p.add_argument("--batch", type=int, default=16, help="encoder/decoder group size (default %(default)s)")
    p.add_argument("--snr", type=float, default=-5.0, help="SNR in dB (default %(default)s)")
    p.add_argument("--channel", default="awgn", choices=["awgn", "rayleigh-block"])
    p.add_argument("--reps", type=int, default=3, help="timed runs of each (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--direct-thread", choices=["worker", "main"], default="worker",
                   help="thread the direct chain runs in (default %(default)s; see the module docstring)")
    p.add_argument("--no-ota", action="store_true", help="skip the over-the-air (burst) chain")
    p.add_argument("--sps", type=int, default=4, help="over the air: samples per symbol (default %(default)s)")
    p.add_argument("--header-code", default="polar", choices=["polar", "spread"],
                   help="over the air: header code (default %(default)s)")
    p.add_argument("--header-sf", type=int, default=32,
                   help="over the air, --header-code spread: chips per bit (default %(default)s, for -5 dB; 4 suffices "
                        "from 3 dB)")
    p.add_argument("--cfo", type=float, default=2e-4,
                   help="over the air: carrier offset, cycles/sample (default %(default)s)")
    p.add_argument("--sro", type=float, default=1e-6, help="over the air: sample clock offset (default %(default)s)")
    args = p.parse_args(argv)

    jscc = load_jscc(args.checkpoint)
    k = jscc.config.k
    paths = [path for path, _ in resolve_images(args.images, args.n)]
    if len(paths) < args.n:
        raise SystemExit(f"only {len(paths)} images under {args.images}, asked for --n {args.n}")

    warm = paths[:min(len(paths), 2 * args.batch)]  # TensorFlow/torch first-call costs, both paths
    run_direct(warm, args, jscc)
    run_flowgraph_once(warm, args, jscc)
    if not args.no_ota:
        run_ota_once(warm, args, jscc)
    ota_s, ota_cpu, ota_sync, ota_psnr, dec_s, dec_in_s, header_errors, sync_calls = [], [], [], [], [], [], [], []
    sent = np.stack([Encoder(jscc).load(p) for p in paths])

    direct_s, flow_s, direct_cpu, flow_cpu, equal = [], [], [], [], True
    print(f"flowgraph vs direct: {args.n} images x k={k} symbols ({args.checkpoint}), {args.channel}, "
          f"SNR {args.snr:g} dB, batch {args.batch}, torch threads {torch.get_num_threads()}, "
          f"direct chain in the {args.direct_thread} thread")
    print(f"{'rep':>3s} {'direct s':>9s} {'flowgraph s':>12s} {'direct sym/s':>13s} {'flowgraph sym/s':>16s} "
          f"{'direct cpu s':>13s} {'flowgraph cpu s':>16s}")
    for rep in range(args.reps):
        sd, cd, out_d = run_direct(paths, args, jscc)
        sf, cf, out_f = run_flowgraph_once(paths, args, jscc)
        equal = equal and out_f.shape == out_d.shape and bool(np.array_equal(out_f, out_d))
        direct_s.append(sd)
        flow_s.append(sf)
        direct_cpu.append(cd)
        flow_cpu.append(cf)
        print(f"{rep:3d} {sd:9.3f} {sf:12.3f} {args.n * k / sd:13.0f} {args.n * k / sf:16.0f} {cd:13.3f} {cf:16.3f}",
              flush=True)
        if not args.no_ota:
            so, co, out_o, samples, stats, block_s, dec_in, calls = run_ota_once(paths, args, jscc)
            dec_in_s.append(dec_in)
            sync_calls.append(calls)
            sync_s = sum(block_s.values())
            dec_s.append(run_decoder_only(paths, args, jscc))
            ota_s.append(so)
            ota_cpu.append(co)
            ota_sync.append(block_s)
            header_errors.append(stats["header_crc"])
            ota_psnr.append((psnr_mean(out_o, sent) if len(out_o) == len(sent) else float("nan"),
                             psnr_mean(out_d, sent)))
            print(f"    over the air {so:7.3f} s ({samples / so / 1e6:.2f} Msamples/s through channel_model, "
                  f"{args.n * k / so:.0f} payload sym/s; radio blocks {sync_s:.3f} s, of which burst_sync "
                  f"{block_s['burst_sync']:.3f} s; decoder alone {dec_s[-1]:.3f} s, in the run {dec_in:.3f} s); "
                  f"bursts {stats['bursts']}/{args.n}; PSNR {ota_psnr[-1][0]:.2f} dB vs direct {ota_psnr[-1][1]:.2f} dB",
                  flush=True)

    symbols = args.n * k
    direct_rate = symbols / statistics.median(direct_s)
    flow_rate = symbols / statistics.median(flow_s)
    result = {
        "benchmark": "flowgraph", "checkpoint": args.checkpoint, "k": k, "images": args.n, "batch": args.batch,
        "channel": args.channel, "snr_db": args.snr, "reps": args.reps, "method": "deepjscc",
        "direct_thread": args.direct_thread,
        "direct_seconds": [round(s, 4) for s in direct_s], "flowgraph_seconds": [round(s, 4) for s in flow_s],
        "direct_symbols_per_s": round(direct_rate, 1), "flowgraph_symbols_per_s": round(flow_rate, 1),
        "flowgraph_vs_direct": round(flow_rate / direct_rate, 3), "goal": 0.8,
        "direct_cpu_seconds": [round(s, 4) for s in direct_cpu], "flowgraph_cpu_seconds": [round(s, 4) for s in flow_cpu],
        # symbols per CPU-second (all threads of the process), flowgraph over direct: the cost of
        # the framework itself, independent of how much of a shared machine each side was given
        "flowgraph_vs_direct_cpu": round(statistics.median(direct_cpu) / statistics.median(flow_cpu), 3),
        "outputs_equal": equal, "gnuradio": gr.version(), "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2), "python": platform.python_version(),
    }
    if not args.no_ota:
        ota_med, dec_med, direct_med = statistics.median(ota_s), statistics.median(dec_s), statistics.median(direct_s)
        header_symbols = BurstConfig(header_code=args.header_code, header_sf=args.header_sf).header_symbols
        blocks_med = statistics.median(sum(b.values()) for b in ota_sync)
        rx_med = statistics.median(sum(b[key] for key in RX_BLOCKS) for b in ota_sync)
        result.update({
            "ota_seconds": [round(x, 4) for x in ota_s], "ota_cpu_seconds": [round(x, 4) for x in ota_cpu],
            "ota_symbols_per_s": round(symbols / ota_med, 1),
            "ota_samples_per_s": round(samples / ota_med, 1), "ota_samples_per_image": samples // args.n,
            "sps": args.sps, "header_code": args.header_code,
            "header_sf": args.header_sf if args.header_code == "spread" else None,
            "header_symbols": header_symbols, "header_errors": sum(header_errors),
            "header_error_rate": round(sum(header_errors) / (args.n * len(header_errors)), 6),
            "cfo": args.cfo, "sro": args.sro,
            "over_the_air_vs_direct": round((symbols / ota_med) / direct_rate, 3),
            # work time of the blocks the radio path adds (TX pulse shaping, matched filter, corr_est_cc,
            # burst_sync), median per block over the runs; the channel model is the channel
            "ota_block_seconds": {key: round(statistics.median(b[key] for b in ota_sync), 4) for key in ota_sync[0]},
            "ota_blocks_seconds": round(blocks_med, 4),
            "decoder_seconds": [round(x, 4) for x in dec_s],
            "decoder_in_flowgraph_seconds": [round(x, 4) for x in dec_in_s],
            # goal: the radio blocks cost less than the DeepJSCC decoder itself
            "radio_vs_decoder": round(blocks_med / dec_med, 3), "radio_vs_decoder_goal": 1.0,
            # the receive chain (matched filter, corr_est_cc, burst_sync) on one thread: samples per
            # second of its summed work time
            "rx_samples_per_s": round(samples / rx_med, 1), "rx_samples_per_s_goal": 2e6,
            # the same ratio against the decoder's time inside the over-the-air run (same contention)
            "radio_vs_decoder_in_flowgraph": round(blocks_med / statistics.median(dec_in_s), 3),
            "burst_sync_vs_decoder": round(statistics.median(b["burst_sync"] for b in ota_sync) / dec_med, 3),
            "burst_sync_work_calls": sync_calls,   # general_work calls with input, per run
            # wall clock: the over-the-air chain against the direct link (negative: faster)
            "ota_overhead_seconds": round(ota_med - direct_med, 4),
            "ota_psnr_db": round(float(np.nanmean([p[0] for p in ota_psnr])), 3),
            "direct_psnr_db": round(float(np.mean([p[1] for p in ota_psnr])), 3),
            "ota_bursts": stats["bursts"], "ota_stats": stats,
        })
        print(f"over the air: {result['ota_symbols_per_s']:.0f} payload sym/s, {result['ota_samples_per_s'] / 1e6:.2f} "
              f"Msamples/s, over_the_air_vs_direct {result['over_the_air_vs_direct']:.3f}; radio blocks "
              f"{blocks_med:.3f} s = radio_vs_decoder {result['radio_vs_decoder']:.2f} (goal <= 1; burst_sync "
              f"{result['burst_sync_vs_decoder']:.2f} x the decoder's {dec_med:.3f} s; against the decoder inside the "
              f"run {result['radio_vs_decoder_in_flowgraph']:.2f}); rx_samples_per_s "
              f"{result['rx_samples_per_s'] / 1e6:.2f} M (goal >= 2 M); PSNR {result['ota_psnr_db']:.2f} dB "
              f"(direct {result['direct_psnr_db']:.2f} dB); header {header_symbols} symbols ({args.header_code}), "
              f"header errors {result['header_errors']} of {args.n * len(header_errors)} bursts")
    print(f"median: direct {direct_rate:.0f} sym/s, flowgraph {flow_rate:.0f} sym/s, "
          f"flowgraph_vs_direct {result['flowgraph_vs_direct']:.3f} (goal >= 0.8); outputs equal: {equal}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
