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

- ``torch_runner``: the ``runner`` path's very code on the sionna-torch phy backend (Sionna 2,
  PyTorch; ``jit_compile=True`` is ``torch.compile`` there), run by this script with ``--worker``
  in .venv-sionna2 (``tools/bootstrap --sionna2``), since the two Sionna lines cannot share a
  process. It answers "run N batches" over a pipe and times them itself; ``--torch-batches`` per
  round (fewer than ``--batches``: it is far slower on CPU); ``--no-torch`` leaves it out.

``--stages`` times, instead, where a batch's time goes on each backend: the link's stages one by
one (source + encoder + mapper, channel + equalisation, demapper, BP decoder), each compiled alone
(XLA / ``torch.compile``), as process CPU seconds per batch (the minimum over ``--rounds`` calls:
CPU time counts only this process's work, so other load on a shared machine inflates it far less
than wall time), and one BP iteration as the difference between decoders run for 2 and 6
iterations. ``--threads N`` gives both sides N threads (TF intra/inter-op, ``torch.set_num_threads``);
``--inductor JSON`` passes options to torch.compile's inductor on the sionna-torch side.

All are compiled (warmed up with one batch) before timing. Then ``--rounds`` rounds alternate
the paths (the order rotates from round to round) so that load from other processes on a shared
machine hits them alike; each reported rate is the median over rounds, ``ratio`` = runner_mbps /
bare_mbps (goal >= 0.9) and ``torch_backend_vs_tf`` = torch_runner_mbps / runner_mbps (issue 31's
goal >= 0.9). BER/BLER are pooled over all timed batches.

Run::

    .venv/bin/python benchmarks/ldpc_link.py                  # 6 batches x 5 rounds per TF path, ~5 min on 2 cores
    .venv/bin/python benchmarks/ldpc_link.py --batches 20 --rounds 5 --no-torch
    .venv/bin/python benchmarks/ldpc_link.py --stages --threads 1          # ~4 min on 2 cores
    .venv/bin/python benchmarks/ldpc_link.py --stages --threads 1 --inductor '{"freezing": true}'

The last line of stdout is one JSON object.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from singlink import phy  # noqa: E402  (first: configures TensorFlow on the TF backend)

K, N, BPS, NUM_ITER = 512, 1024, 2, 20
TORCH_PYTHON = Path(__file__).resolve().parent.parent / ".venv-sionna2" / "bin" / "python"


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
        import tensorflow as tf
        from sionna.phy.channel import AWGN
        from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder
        from sionna.phy.mapping import BinarySource, Demapper, Mapper
        from sionna.phy.utils import ebnodb2no

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


class TorchBackendRunner:
    """The runner path on the sionna-torch backend, in a ``--worker`` process in .venv-sionna2."""

    name = "torch_runner"

    def __init__(self, python, args):
        cmd = [str(python), __file__, "--worker", "--batch-size", str(args.batch_size),
               "--ebno-db", str(args.ebno_db), "--seed", str(args.seed)]
        if args.threads is not None:
            cmd += ["--threads", str(args.threads)]
        env = {**os.environ, "SINGLINK_PHY": "sionna-torch"}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.seconds = None

    def run(self, batches):
        """Counts of ``batches`` batches; :attr:`seconds` is the worker's own time for them."""
        self.proc.stdin.write(f"{batches}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the sionna-torch worker stopped (exit status {self.proc.wait()}); see its stderr above")
        reply = json.loads(line)
        self.seconds, self.versions = reply["seconds"], reply["versions"]
        return reply["counts"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def set_threads(n):
    """``n`` threads for this process's framework (None: leave its default)."""
    if n is None:
        return
    if phy.BACKEND == "sionna-torch":
        import torch

        torch.set_num_threads(n)
    else:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)


#: BP iterations of the two decoders whose difference is one iteration's cost (``--stages``).
STAGE_ITERS = (2, 6)


def stage_seconds(batch_size, ebno_db, reps, inductor=None):
    """``--stages`` on this process's backend: CPU seconds per batch of each link stage, each
    compiled alone (XLA or torch.compile, shapes fixed), the minimum over ``reps`` calls after a
    warm-up call. Stages: ``modulate`` (source, LDPC encoder, mapper), ``channel`` (AWGN and
    equalisation), ``demap``, ``decode_2`` and ``decode_6`` (the BP decoder run for 2 and 6
    iterations on the same LLRs); ``bp_iteration`` = (decode_6 - decode_2) / 4. ``inductor``: options
    for torch.compile's inductor (``torch.compile(options=...)``) on the sionna-torch backend."""
    link = phy.DigitalLink(phy.DigitalLinkConfig(k=K, n=N, modulation="qpsk", num_iter=NUM_ITER))
    snr_db = float(phy.ebno_db_to_snr_db(ebno_db, "qpsk", K / N))
    if phy.BACKEND == "sionna-torch":
        import torch

        # The worker only times: no gradients anywhere (a torch.no_grad wrapper per stage would give
        # all stages one code object, and so one torch.compile cache that overflows).
        torch.set_grad_enabled(False)

        def compiled(fn):
            return torch.compile(fn, dynamic=False, options=inductor or None)

        def reshape(t, shape):
            return t.reshape(shape)

        def done(out):  # CPU ops have finished when they return
            return out
        broadcast, snr = torch.broadcast_to, torch.tensor(snr_db)
    else:
        import tensorflow as tf

        def compiled(fn):
            return tf.function(fn, jit_compile=True)

        reshape, broadcast = tf.reshape, tf.broadcast_to

        def done(out):  # TF runs ops asynchronously: wait for the values
            return [t.numpy() for t in tf.nest.flatten(out)]
        snr = tf.constant(snr_db, tf.float32)

    def channel(x):  # what DigitalLink.call does between _modulate and _detect
        shape = list(x.shape)
        y, h = link._channel(reshape(x, [shape[0], -1]), snr)
        x_hat, no_eff = phy.equalize(y, h, snr, "zf", link._channel.power)
        return reshape(x_hat, shape), reshape(broadcast(no_eff, y.shape), shape)

    stages = {"modulate": compiled(lambda: link._modulate(batch_size, None)), "channel": compiled(channel),
              "demap": compiled(link._demapper)}
    for it in STAGE_ITERS:
        stages[f"decode_{it}"] = compiled(lambda llr, it=it: link._decoder(llr, num_iter=it))
    inputs = {"channel": (stages["modulate"]()[1],)}
    inputs["demap"] = stages["channel"](*inputs["channel"])
    llr = stages["demap"](*inputs["demap"])
    for it in STAGE_ITERS:
        inputs[f"decode_{it}"] = (llr,)
    seconds = {}
    for name, fn in stages.items():
        args = inputs.get(name, ())
        done(fn(*args))
        best = float("inf")
        for _ in range(reps):
            t0 = time.process_time()
            done(fn(*args))
            best = min(best, time.process_time() - t0)
        seconds[name] = best
    a, b = STAGE_ITERS
    seconds["bp_iteration"] = (seconds[f"decode_{b}"] - seconds[f"decode_{a}"]) / (b - a)
    return seconds


def serve(args):
    """``--worker``: build the runner path on this process's backend, then answer each line
    "N" on stdin with one JSON line {counts, seconds, versions} for N batches (or, with
    ``--stages``, print :func:`stage_seconds` as one JSON line and stop)."""
    import torch

    set_threads(args.threads)
    phy.set_seed(args.seed)
    if args.stages:
        print(json.dumps(stage_seconds(args.batch_size, args.ebno_db, args.rounds, args.inductor)), flush=True)
        return
    runner = Runner(args.batch_size, args.ebno_db)
    versions = {"backend": phy.BACKEND, "sionna": phy.SIONNA_VERSION, "torch": torch.__version__}
    for line in sys.stdin:
        t0 = time.perf_counter()
        counts = runner.run(int(line))
        print(json.dumps({"counts": list(counts), "seconds": time.perf_counter() - t0, "versions": versions}),
              flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, default=6, help="batches per timed run (default 6)")
    p.add_argument("--rounds", type=int, default=5,
                   help="alternating rounds; each times both paths once (default 5)")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--ebno-db", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--torch-batches", type=int, default=1,
                   help="batches per timed run of the sionna-torch path (default 1)")
    p.add_argument("--no-torch", action="store_true", help="leave out the sionna-torch path")
    p.add_argument("--threads", type=int, default=None,
                   help="threads on both sides (TF intra/inter-op, torch.set_num_threads); default: each library's own")
    p.add_argument("--stages", action="store_true",
                   help="time the link's stages and one BP iteration on each backend instead (CPU seconds per batch)")
    p.add_argument("--inductor", type=json.loads, default={}, metavar="JSON",
                   help='with --stages: torch.compile inductor options for the sionna-torch side, e.g. '
                        '\'{"freezing": true}\' (default: none)')
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if min(args.batches, args.rounds, args.batch_size, args.torch_batches, args.threads or 1) < 1:
        p.error("--batches, --rounds, --batch-size, --torch-batches and --threads must be >= 1")
    if not isinstance(args.inductor, dict):
        p.error(f"--inductor takes a JSON object of inductor options, e.g. '{{\"freezing\": true}}'; got {args.inductor!r}")
    if args.worker:
        return serve(args)
    if phy.BACKEND != "sionna-tf":
        p.error(f"run this benchmark on the sionna-tf backend (in .venv; SINGLINK_PHY is {phy.BACKEND})")
    if not args.no_torch and not TORCH_PYTHON.exists():
        p.error(f"{TORCH_PYTHON} is missing: make it with tools/bootstrap --sionna2, or pass --no-torch")
    import tensorflow as tf

    set_threads(args.threads)
    phy.set_seed(args.seed)
    if args.stages:
        return stages_report(args)
    paths = {"runner": Runner(args.batch_size, args.ebno_db), "bare": Bare(args.batch_size, args.ebno_db)}
    if not args.no_torch:
        paths["torch_runner"] = TorchBackendRunner(TORCH_PYTHON, args)
    batches = {name: args.torch_batches if name == "torch_runner" else args.batches for name in paths}

    compile_s = {}
    for name, path in paths.items():  # warm-up: trace + XLA (or torch.compile), one batch each
        t0 = time.perf_counter()
        path.run(1)
        compile_s[name] = time.perf_counter() - t0

    mbps = {name: [] for name in paths}
    totals = {name: [0, 0, 0, 0] for name in paths}
    names = list(paths)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            counts = paths[name].run(batches[name])
            dt = getattr(paths[name], "seconds", None) or time.perf_counter() - t0
            mbps[name].append(counts[1] / dt / 1e6)
            totals[name] = [a + b for a, b in zip(totals[name], counts)]
    if "torch_runner" in paths:
        paths["torch_runner"].close()

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
    if "torch_runner" in paths:
        tr = paths["torch_runner"]
        res.update({
            # issue 31: throughput of the sionna-torch backend / the sionna-tf backend, same runner code
            "torch_backend_vs_tf": med["torch_runner"] / med["runner"], "torch_backend_vs_tf_goal": 0.9,
            "torch_backend_vs_tf_paired_median": statistics.median(
                a / b for a, b in zip(mbps["torch_runner"], mbps["runner"])),
            "torch_runner_mbps": med["torch_runner"], "torch_runner_mbps_rounds": mbps["torch_runner"],
            "torch_runner_ber": ber["torch_runner"], "torch_runner_bler": bler["torch_runner"],
            "torch_runner_bits": totals["torch_runner"][1], "torch_batches": args.torch_batches,
            "torch_backend": tr.versions,
        })

    print(f"LDPC5G(k={K}, n={N}), QPSK, {NUM_ITER} BP iterations, Eb/N0 = {args.ebno_db} dB "
          f"(Es/N0 = {res['esno_db']:.2f} dB), batch {args.batch_size}, "
          f"{args.batches} batches x {args.rounds} rounds")
    print(f"  {'path':<13}{'Mb/s (median)':>15}{'BER':>11}{'BLER':>9}{'compile s':>11}   Mb/s per round")
    for name in paths:
        rounds = " ".join(f"{v:.3f}" for v in mbps[name])
        print(f"  {name:<13}{med[name]:>15.3f}{ber[name]:>11.2e}{bler[name]:>9.4f}{compile_s[name]:>11.1f}   {rounds}")
    print(f"  ratio runner/bare = {ratio:.3f} (goal >= 0.9); median of per-round ratios "
          f"{res['ratio_paired_median']:.3f}")
    if "torch_runner" in paths:
        print(f"  torch_backend_vs_tf = torch_runner/runner = {res['torch_backend_vs_tf']:.3f} (goal >= 0.9); "
              f"median of per-round ratios {res['torch_backend_vs_tf_paired_median']:.3f}")
    sys.stdout.flush()
    print(json.dumps(res))


def stages_report(args):
    """``--stages``: :func:`stage_seconds` here (sionna-tf) and in the sionna-torch worker, side by
    side, as ms per batch and the torch / TF ratio of each."""
    tf_s = stage_seconds(args.batch_size, args.ebno_db, args.rounds)
    torch_s = None
    if not args.no_torch:
        cmd = [str(TORCH_PYTHON), __file__, "--worker", "--stages", "--batch-size", str(args.batch_size),
               "--ebno-db", str(args.ebno_db), "--rounds", str(args.rounds), "--seed", str(args.seed),
               "--inductor", json.dumps(args.inductor)]
        if args.threads is not None:
            cmd += ["--threads", str(args.threads)]
        env = {**os.environ, "SINGLINK_PHY": "sionna-torch"}
        out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)
        if out.returncode:
            raise SystemExit(f"the sionna-torch worker stopped (exit status {out.returncode}); see its stderr above")
        torch_s = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"LDPC5G(k={K}, n={N}), QPSK, batch {args.batch_size}, threads {args.threads or 'default'}: "
          f"CPU ms per batch, minimum of {args.rounds} calls")
    print(f"  {'stage':<14}{'sionna-tf':>11}{'sionna-torch':>14}{'torch/tf':>10}")
    for name, v in tf_s.items():
        t = torch_s[name] if torch_s else float("nan")
        print(f"  {name:<14}{v * 1e3:>11.1f}{t * 1e3:>14.1f}{t / v:>10.2f}")
    res = {"benchmark": "ldpc_link_stages", "code": f"LDPC5G(k={K}, n={N})", "modulation": "qpsk",
           "batch_size": args.batch_size, "threads": args.threads, "rounds": args.rounds,
           "inductor": args.inductor, "stage_iters": list(STAGE_ITERS), "tf_cpu_s": tf_s, "torch_cpu_s": torch_s,
           # one BP iteration of one codeword, in microseconds of CPU time, on each backend
           "bp_iteration_us_per_codeword": {name: v and v["bp_iteration"] / args.batch_size * 1e6
                                            for name, v in (("sionna-tf", tf_s), ("sionna-torch", torch_s))},
           "sionna": phy.SIONNA_VERSION, "cpu_count": os.cpu_count()}
    sys.stdout.flush()
    print(json.dumps(res))


if __name__ == "__main__":
    main()
