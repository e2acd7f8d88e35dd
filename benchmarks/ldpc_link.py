"""Throughput of the coded digital link: singlink's Monte Carlo runner versus a bare Sionna loop.

Measures information bits decoded per second (Mb/s) for LDPC5G(k=512, n=1024), QPSK, 20 BP
iterations, AWGN at Eb/N0 = 2 dB, batch 1000, two ways, over the same number of batches:

- ``runner``: ``phy.MonteCarloRunner(phy.DigitalLink(phy.DigitalLinkConfig(k=512, n=1024,
  modulation="qpsk")), batch_size=1000, target_block_errors=None, max_trials=batches,
  jit_compile=True).run_point(Es/N0)`` with Es/N0 = ``phy.ebno_db_to_snr_db(2.0, "qpsk", 0.5)``
  (the runner counts errors inside the compiled step);
- ``bare``: a loop written here with sionna.phy blocks (BinarySource, LDPC5GEncoder,
  Mapper("qam", 2), AWGN, Demapper("app", "qam", 2), LDPC5GDecoder(num_iter=20, hard_out=True))
  under ``tf.function(jit_compile=True)`` that returns ``(bits, bits_hat)``; errors are counted
  the way a user would, with eager ``tf.reduce_sum`` calls on the returned tensors after each
  batch.

Both are compiled (warmed up with one batch) before timing. Then ``--rounds`` rounds alternate
the two (runner first in even rounds, bare first in odd ones) so that load from other processes
on a shared machine hits both alike; each reported rate is the median over rounds, and
``ratio`` = runner_mbps / bare_mbps (goal >= 0.9). BER/BLER are pooled over all timed batches.

Run::

    .venv/bin/python benchmarks/ldpc_link.py                  # 6 batches x 5 rounds per path, ~1.5 min on 2 cores
    .venv/bin/python benchmarks/ldpc_link.py --batches 20 --rounds 5

The last line of stdout is one JSON object.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from singlink import phy  # noqa: E402  (first: configures TensorFlow)

import tensorflow as tf  # noqa: E402
from sionna.phy.channel import AWGN  # noqa: E402
from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder  # noqa: E402
from sionna.phy.mapping import BinarySource, Demapper, Mapper  # noqa: E402
from sionna.phy.utils import ebnodb2no  # noqa: E402

K, N, BPS, NUM_ITER = 512, 1024, 2, 20


class Runner:
    """singlink's path: DigitalLink inside MonteCarloRunner."""

    name = "runner"

    def __init__(self, batch_size, ebno_db):
        link = phy.DigitalLink(phy.DigitalLinkConfig(k=K, n=N, modulation="qpsk", num_iter=NUM_ITER))
        self.mc = phy.MonteCarloRunner(link, batch_size=batch_size, target_block_errors=None,
                                       max_trials=1, jit_compile=True)
        self.snr_db = float(phy.ebno_db_to_snr_db(ebno_db, "qpsk", K / N))

    def run(self, batches):
        self.mc.max_trials = batches
        est = self.mc.run_point(self.snr_db)
        assert est.batches == batches
        return est.bit_errors, est.bits, est.block_errors, est.blocks


class Bare:
    """A bare Sionna loop as a user would write it."""

    name = "bare"

    def __init__(self, batch_size, ebno_db):
        self.batch_size = batch_size
        self.source = BinarySource()
        self.encoder = LDPC5GEncoder(K, N)
        self.mapper = Mapper("qam", BPS)
        self.channel = AWGN()
        self.demapper = Demapper("app", "qam", BPS)
        self.decoder = LDPC5GDecoder(self.encoder, num_iter=NUM_ITER, hard_out=True)
        self.no = ebnodb2no(ebno_db, BPS, K / N)

        @tf.function(jit_compile=True)
        def step(batch_size, no):
            bits = self.source([batch_size, K])
            x = self.mapper(self.encoder(bits))
            y = self.channel(x, no)
            bits_hat = self.decoder(self.demapper(y, no))
            return bits, bits_hat

        self.step = step

    def run(self, batches):
        return phy.count_errors(lambda: self.step(self.batch_size, self.no), batches)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, default=6, help="batches per timed run (default 6)")
    p.add_argument("--rounds", type=int, default=5,
                   help="alternating rounds; each times both paths once (default 5)")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--ebno-db", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if min(args.batches, args.rounds, args.batch_size) < 1:
        p.error("--batches, --rounds and --batch-size must be >= 1")

    phy.set_seed(args.seed)
    paths = {"runner": Runner(args.batch_size, args.ebno_db), "bare": Bare(args.batch_size, args.ebno_db)}

    compile_s = {}
    for name, path in paths.items():  # warm-up: trace + XLA compile, one batch each
        t0 = time.perf_counter()
        path.run(1)
        compile_s[name] = time.perf_counter() - t0

    mbps = {name: [] for name in paths}
    totals = {name: [0, 0, 0, 0] for name in paths}
    for r in range(args.rounds):
        order = ("runner", "bare") if r % 2 == 0 else ("bare", "runner")
        for name in order:
            t0 = time.perf_counter()
            counts = paths[name].run(args.batches)
            dt = time.perf_counter() - t0
            mbps[name].append(counts[1] / dt / 1e6)
            totals[name] = [a + b for a, b in zip(totals[name], counts)]

    med = {name: statistics.median(v) for name, v in mbps.items()}
    ratio = med["runner"] / med["bare"]
    ber = {name: t[0] / t[1] for name, t in totals.items()}
    bler = {name: t[2] / t[3] for name, t in totals.items()}
    res = {
        "benchmark": "ldpc_link",
        "code": f"LDPC5G(k={K}, n={N})", "modulation": "qpsk", "num_iter": NUM_ITER,
        "ebno_db": args.ebno_db, "esno_db": paths["runner"].snr_db,
        "batch_size": args.batch_size, "batches": args.batches, "rounds": args.rounds,
        "batches_per_path": args.batches * args.rounds,
        "runner_mbps": med["runner"], "bare_mbps": med["bare"], "ratio": ratio, "ratio_goal": 0.9,
        # the same ratio taken round by round (each round runs both back to back), then the median
        "ratio_paired_median": statistics.median(a / b for a, b in zip(mbps["runner"], mbps["bare"])),
        "runner_mbps_rounds": mbps["runner"], "bare_mbps_rounds": mbps["bare"],
        "runner_ber": ber["runner"], "bare_ber": ber["bare"],
        "runner_bler": bler["runner"], "bare_bler": bler["bare"],
        "runner_bit_errors": totals["runner"][0], "bare_bit_errors": totals["bare"][0],
        "bits_per_path": totals["runner"][1],
        "compile_s": compile_s, "seed": args.seed,
        # traces of the runner's compiled step over the whole run: 1 means no retracing per call
        "runner_traces": getattr(getattr(paths["runner"].mc, "_step", None),
                                 "experimental_get_tracing_count", lambda: None)(),
        "tensorflow": tf.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count(),
        "device": "gpu" if tf.config.list_logical_devices("GPU") else "cpu",
    }

    print(f"LDPC5G(k={K}, n={N}), QPSK, {NUM_ITER} BP iterations, Eb/N0 = {args.ebno_db} dB "
          f"(Es/N0 = {res['esno_db']:.2f} dB), batch {args.batch_size}, "
          f"{args.batches} batches x {args.rounds} rounds")
    print(f"  {'path':<8}{'Mb/s (median)':>15}{'BER':>11}{'BLER':>9}{'compile s':>11}   Mb/s per round")
    for name in paths:
        rounds = " ".join(f"{v:.3f}" for v in mbps[name])
        print(f"  {name:<8}{med[name]:>15.3f}{ber[name]:>11.2e}{bler[name]:>9.4f}{compile_s[name]:>11.1f}   {rounds}")
    print(f"  ratio runner/bare = {ratio:.3f} (goal >= 0.9); median of per-round ratios "
          f"{res['ratio_paired_median']:.3f}")
    sys.stdout.flush()
    print(json.dumps(res))


if __name__ == "__main__":
    main()
