"""SING-Zero's, SING-INN's and DPS's cost over the bare prior: time for T sampling steps divided by
the time of T bare UNet forwards on the same batch, measured side by side, plus restored images per
second. SING-INN differentiates through the UNet and the INN at every step (goal <= 3.5), DPS
through the UNet and the DeepJSCC encoder (``dps_overhead``, goal <= 4.0).

    .venv/bin/python benchmarks/sampler.py [--dataset celeba] [--rho 1/192] [--steps 50] [--threads N]

Uses the prior, DeepJSCC and INN shipped for ``--dataset`` (CelebA faces at 64x64 by default: the
SING paper's setting) and ``--rho``; where none is shipped, the same architecture untrained ('small64'
or 'small', the INN's default): the cost does not depend on the weights. The measurements alternate (bare, SING-Zero, SING-INN, bare, ...)
and each is timed both by the wall clock (the ``*_overhead`` fields) and by this process's CPU
time (``*_overhead_cpu``): on a machine shared with other jobs the CPU-time ratios are the
steadier ones (with one thread they equal the wall-clock ratios of an idle machine). Last line of
stdout: one JSON object.
"""
import argparse
import json
import statistics
import time

import torch


def timed(fn, reps):
    """Median (wall seconds, CPU seconds of this process) of ``reps`` calls."""
    wall, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50, help="T, sampling steps (default %(default)s)")
    ap.add_argument("--dataset", default="celeba", help="data set whose shipped prior and INN are timed (default %(default)s)")
    ap.add_argument("--rho", default="1/192", help="bandwidth ratio of the INN (default %(default)s)")
    ap.add_argument("--prior", default=None, help="prior name or folder (default: the shipped one for --dataset)")
    ap.add_argument("--operator", default="pool4")
    ap.add_argument("--inn", default=None, help="INN name or folder (default: the shipped one for --dataset and --rho)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from singlink import phy
    from singlink.data import DatasetSpec
    from singlink.errors import UsageError
    from singlink.jscc.model import DeepJSCC, DeepJSCCConfig, find_checkpoint
    from singlink.receiver import SINGINN, SINGZero
    from singlink.receiver.dps import DPS
    from singlink.receiver.inn import ConditionalINN, find_inn
    from singlink.receiver.observation import Observation
    from singlink.receiver.prior import DiffusionPrior, find_prior

    size = DatasetSpec.parse(args.dataset).image_size
    try:
        source = args.prior or find_prior(args.dataset, size)
        prior = DiffusionPrior.from_pretrained(source)
    except UsageError:
        if args.prior:
            raise
        torch.manual_seed(0)
        preset = "small64" if size == 64 else "small"
        prior, source = DiffusionPrior.from_preset(preset), f"{preset} (untrained)"
    prior.eval()
    k = phy.num_channel_symbols(args.rho, (3, size, size))
    try:
        jscc_source = find_checkpoint(args.dataset, size, k)
        jscc = DeepJSCC.from_pretrained(jscc_source)
    except UsageError:
        torch.manual_seed(0)
        jscc, jscc_source = DeepJSCC(DeepJSCCConfig(k=k, image_size=(3, size, size))).eval(), "DeepJSCC (untrained)"
    try:
        inn_source = args.inn or find_inn(jscc)
        inn = inn_source
    except UsageError:
        if args.inn:
            raise
        torch.manual_seed(0)
        inn, inn_source = ConditionalINN(), "ConditionalINN() (untrained)"
    sampler = SINGZero(prior, args.operator, steps=args.steps)
    sing_inn = SINGINN(prior, inn, args.operator, steps=args.steps)
    dps = DPS(prior, jscc, steps=args.steps)
    ts = [int(t) for t in sampler.schedule.t]
    result = {"benchmark": "sampler", "prior": source, "inn": inn_source, "jscc": jscc_source, "image_size": size,
              "steps": args.steps,
              "operator": args.operator,
              "threads": torch.get_num_threads()}
    print(f"SING-Zero vs bare UNet forwards, {args.steps} steps, prior {source}, median of {args.reps}")
    for b in (1, 16):
        x_jscc = torch.rand(b, *prior.image_size, generator=torch.Generator().manual_seed(b))
        x_t = torch.randn(b, *prior.image_size, generator=torch.Generator().manual_seed(b))

        def bare():
            with torch.no_grad():
                for t in ts:
                    prior.eps(x_t, t)

        def sing():
            with torch.no_grad():
                sampler(x_jscc, seed=0)

        def inn():
            sing_inn(x_jscc, 0.0, seed=0)

        with torch.no_grad():  # what a receiver gets at 0 dB: symbols, their noise variance, the codec
            y = jscc.encode(x_jscc, 0.0)
            y = y + (0.5 ** 0.5) * torch.randn(y.shape, dtype=y.dtype, generator=torch.Generator().manual_seed(b))
        snr = torch.zeros(b)
        obs = Observation(x_jscc, snr, symbols=y, noise_var=torch.ones(b, k), tx_snr_db=snr, codec=jscc)

        def posterior():
            dps(obs, seed=0)

        if b == 16:  # warm-up
            bare(), sing(), inn(), posterior()
        else:
            bare(), sing()
        # alternate the measurements so that machine load affects them alike
        t_bare, t_sing, t_inn, t_dps = [], [], [], []
        for _ in range(args.reps):
            t_bare.append(timed(bare, 1))
            t_sing.append(timed(sing, 1))
            if b == 16:
                t_inn.append(timed(inn, 1))
                t_dps.append(timed(posterior, 1))
        tb, tsg = (statistics.median(t[0] for t in ts_) for ts_ in (t_bare, t_sing))
        cb, csg = (statistics.median(t[1] for t in ts_) for ts_ in (t_bare, t_sing))
        print(f"  batch {b:2d}: bare {tb:7.3f} s  sing-zero {tsg:7.3f} s  overhead {tsg / tb:.3f}  "
              f"{b / tsg:.2f} images/s")
        result[f"bare_s_b{b}"], result[f"sing_zero_s_b{b}"] = tb, tsg
        result[f"images_per_s_b{b}"] = b / tsg
        if b == 16:
            ti, ci = statistics.median(t[0] for t in t_inn), statistics.median(t[1] for t in t_inn)
            td, cd = statistics.median(t[0] for t in t_dps), statistics.median(t[1] for t in t_dps)
            print(f"  batch 16: sing-inn {ti:7.3f} s  overhead {ti / tb:.3f}")
            print(f"  batch 16: dps      {td:7.3f} s  overhead {td / tb:.3f}")
            print(f"  batch 16, CPU time: bare {cb:7.3f} s  sing-zero {csg:7.3f} s  sing-inn {ci:7.3f} s  "
                  f"dps {cd:7.3f} s  overheads {csg / cb:.3f}, {ci / cb:.3f} and {cd / cb:.3f}")
            result["sing_zero_overhead"] = tsg / tb
            result["sing_inn_s_b16"], result["sing_inn_overhead"] = ti, ti / tb
            result["dps_s_b16"], result["dps_overhead"] = td, td / tb
            result["sing_zero_overhead_cpu"], result["sing_inn_overhead_cpu"] = csg / cb, ci / cb
            result["dps_overhead_cpu"] = cd / cb
    result["sing_zero_overhead_goal"], result["sing_inn_overhead_goal"], result["dps_overhead_goal"] = 1.10, 3.5, 4.0
    print(json.dumps(result))


if __name__ == "__main__":
    main()
