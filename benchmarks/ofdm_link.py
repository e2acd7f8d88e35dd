"""Throughput of the coded OFDM link: singlink's wrapper versus a bare Sionna OFDM loop, same run.

LDPC5G(k=864, n=1728), QPSK (864 symbols: exactly the data REs of one default slot, 72 subcarriers
x 14 OFDM symbols at 30 kHz, pilots on symbols 2 and 11), TDL-A 100 ns at 3 m/s, LS channel
estimation with linear interpolation, LMMSE equalisation, 20 BP iterations, batch 256 slots, at
Es/N0 = 6 dB. Information bits decoded per second (Mb/s), two ways, over the same number of batches:

- ``wrapper``: ``phy.MonteCarloRunner(phy.OFDMDigitalLink(phy.DigitalLinkConfig(k=864, n=1728,
  modulation="qpsk", channel="ofdm-tdl-a:speed=3:csi=ls")), batch_size=256, target_block_errors=None,
  max_trials=batches, jit_compile=True).run_point(6.0)``;
- ``bare``: a loop written here from sionna.phy blocks (BinarySource, LDPC5GEncoder, Mapper,
  ResourceGrid + ResourceGridMapper, TDL + OFDMChannel, LSChannelEstimator("lin"), LMMSEEqualizer,
  Demapper("app"), LDPC5GDecoder) under ``tf.function(jit_compile=True)``, errors counted with eager
  ``tf.reduce_sum`` calls after each batch, as a user would.

Both are compiled (one warm-up batch) before timing. ``--rounds`` rounds alternate the two (wrapper
first in even rounds) so that load from other processes hits both alike; each rate is the median
over rounds and ``ratio`` = wrapper_mbps / bare_mbps (goal >= 0.9). Sionna's TDL, LS estimator and
LMMSE equaliser all compile with XLA here (if a future Sionna refuses, ``--no-xla`` runs both in
graph mode). BER/BLER are pooled over the timed batches (the two paths draw different bits, channels
and noise, so their BERs agree only statistically).

Run::

    .venv/bin/python benchmarks/ofdm_link.py                 # 4 batches x 5 rounds per path
    .venv/bin/python benchmarks/ofdm_link.py --batches 10 --rounds 5

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

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sionna.phy.channel import OFDMChannel  # noqa: E402
from sionna.phy.channel.tr38901 import TDL  # noqa: E402
from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder  # noqa: E402
from sionna.phy.mapping import BinarySource, Demapper, Mapper  # noqa: E402
from sionna.phy.mimo import StreamManagement  # noqa: E402
from sionna.phy.ofdm import LMMSEEqualizer, LSChannelEstimator, ResourceGrid, ResourceGridMapper  # noqa: E402

K, N, BPS, NUM_ITER = 864, 1728, 2, 20
SPEC = "ofdm-tdl-a:speed=3:csi=ls"


class Wrapper:
    """singlink's path: OFDMDigitalLink inside MonteCarloRunner."""

    def __init__(self, batch_size, esno_db, xla):
        link = phy.OFDMDigitalLink(phy.DigitalLinkConfig(k=K, n=N, modulation="qpsk", channel=SPEC, num_iter=NUM_ITER))
        assert link.channel_uses == link._channel.data_per_slot == N // BPS
        self.mc = phy.MonteCarloRunner(link, batch_size=batch_size, target_block_errors=None, max_trials=1,
                                       jit_compile=xla)
        self.esno_db = esno_db

    def run(self, batches):
        self.mc.max_trials = batches
        est = self.mc.run_point(self.esno_db)
        assert est.batches == batches
        return est.bit_errors, est.bits, est.block_errors, est.blocks


class Bare:
    """A bare Sionna OFDM loop as a user would write it (same grid, channel and receiver)."""

    def __init__(self, batch_size, esno_db, xla):
        s = phy.parse_spec(SPEC)
        self.batch_size = batch_size
        rg = ResourceGrid(num_ofdm_symbols=s.symbols, fft_size=s.fft, subcarrier_spacing=s.scs, cyclic_prefix_length=s.cp,
                          pilot_pattern="kronecker", pilot_ofdm_symbol_indices=list(s.pilots))
        assert rg.num_data_symbols == N // BPS
        self.source = BinarySource()
        self.encoder = LDPC5GEncoder(K, N)
        self.mapper = Mapper("qam", BPS)
        self.rg_mapper = ResourceGridMapper(rg)
        self.channel = OFDMChannel(TDL("A", s.delay_spread, s.fc, min_speed=s.speed), rg, return_channel=False)
        self.estimator = LSChannelEstimator(rg, interpolation_type="lin")
        self.equalizer = LMMSEEqualizer(rg, StreamManagement(np.ones([1, 1], int), 1))
        self.demapper = Demapper("app", "qam", BPS)
        self.decoder = LDPC5GDecoder(self.encoder, num_iter=NUM_ITER, hard_out=True)
        self.no = tf.constant(10 ** (-esno_db / 10), tf.float32)

        @tf.function(jit_compile=xla)
        def step(batch_size, no):
            bits = self.source([batch_size, 1, 1, K])
            x = self.mapper(self.encoder(bits))
            y = self.channel(self.rg_mapper(x), no)
            h_hat, err_var = self.estimator(y, no)
            x_hat, no_eff = self.equalizer(y, h_hat, err_var, no)
            bits_hat = self.decoder(self.demapper(x_hat, no_eff))
            return bits, bits_hat

        self.step = step

    def run(self, batches):
        return phy.count_errors(lambda: self.step(self.batch_size, self.no), batches)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, default=4, help="batches per timed run (default 4)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds; each times both paths once (default 5)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--esno-db", type=float, default=6.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-xla", action="store_true", help="graph mode without XLA for both paths")
    args = p.parse_args(argv)
    if min(args.batches, args.rounds, args.batch_size) < 1:
        p.error("--batches, --rounds and --batch-size must be >= 1")
    xla = not args.no_xla

    phy.set_seed(args.seed)
    paths = {"wrapper": Wrapper(args.batch_size, args.esno_db, xla), "bare": Bare(args.batch_size, args.esno_db, xla)}
    compile_s = {}
    for name, path in paths.items():  # warm-up: trace + compile, one batch each
        t0 = time.perf_counter()
        path.run(1)
        compile_s[name] = time.perf_counter() - t0

    mbps = {name: [] for name in paths}
    totals = {name: [0, 0, 0, 0] for name in paths}
    for r in range(args.rounds):
        order = ("wrapper", "bare") if r % 2 == 0 else ("bare", "wrapper")
        for name in order:
            t0 = time.perf_counter()
            counts = paths[name].run(args.batches)
            dt = time.perf_counter() - t0
            mbps[name].append(counts[1] / dt / 1e6)
            totals[name] = [a + b for a, b in zip(totals[name], counts)]

    med = {name: statistics.median(v) for name, v in mbps.items()}
    ratio = med["wrapper"] / med["bare"]
    ber = {name: t[0] / t[1] for name, t in totals.items()}
    bler = {name: t[2] / t[3] for name, t in totals.items()}
    res = {
        "benchmark": "ofdm_link", "channel": phy.parse_spec(SPEC).name,
        "code": f"LDPC5G(k={K}, n={N})", "modulation": "qpsk", "num_iter": NUM_ITER, "esno_db": args.esno_db,
        "grid": "72 subcarriers x 14 OFDM symbols, 30 kHz, pilots on symbols 2 and 11, 864 data REs",
        "batch_size": args.batch_size, "batches": args.batches, "rounds": args.rounds, "xla": xla,
        "wrapper_mbps": med["wrapper"], "bare_mbps": med["bare"], "ratio": ratio, "ratio_goal": 0.9,
        "ratio_paired_median": statistics.median(a / b for a, b in zip(mbps["wrapper"], mbps["bare"])),
        "wrapper_mbps_rounds": mbps["wrapper"], "bare_mbps_rounds": mbps["bare"],
        "wrapper_ber": ber["wrapper"], "bare_ber": ber["bare"], "wrapper_bler": bler["wrapper"],
        "bare_bler": bler["bare"], "bits_per_path": totals["wrapper"][1], "compile_s": compile_s, "seed": args.seed,
        "tensorflow": tf.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count(),
        "device": "gpu" if tf.config.list_logical_devices("GPU") else "cpu",
    }
    print(f"LDPC5G(k={K}, n={N}) QPSK over {res['channel']}, LS + LMMSE, Es/N0 = {args.esno_db} dB, "
          f"batch {args.batch_size}, {args.batches} batches x {args.rounds} rounds, xla={xla}")
    print(f"  {'path':<9}{'Mb/s (median)':>15}{'BER':>11}{'BLER':>9}{'compile s':>11}   Mb/s per round")
    for name in paths:
        rounds = " ".join(f"{v:.3f}" for v in mbps[name])
        print(f"  {name:<9}{med[name]:>15.3f}{ber[name]:>11.2e}{bler[name]:>9.4f}{compile_s[name]:>11.1f}   {rounds}")
    print(f"  ratio wrapper/bare = {ratio:.3f} (goal >= 0.9); median of per-round ratios {res['ratio_paired_median']:.3f}")
    sys.stdout.flush()
    print(json.dumps(res))


if __name__ == "__main__":
    main()
