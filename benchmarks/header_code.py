"""Header error rate of the burst format through the receiver's own synchroniser (Monte Carlo).

Each trial (``singlink_gr.testing.header_trials``) is one burst (random header fields, k random payload symbols) through a numpy
channel: GNU Radio's unit-energy RRC taps (``burst.modulate``), a random start (whole samples),
a carrier offset of ``--cfo`` cycles/sample with a random initial phase, complex white noise of
variance 10^(-SNR/10) per sample (= per symbol after the matched filter, singlink's
convention), the matched filter; then :class:`singlink_gr.burst.Synchronizer` as ``burst_sync``
runs it for a receiver that knows its k: ``detect`` near a guess up to +-2 samples off (timing
search, FFT carrier estimate, the preamble metric test) and ``decode`` (pilot-aided phase and
residual frequency, the header's LLRs with the noise variance of the known symbols, gr-fec's
polar list decoder, the CRC-16). A header counts as an error when it is not delivered exactly:
preamble rejected (``no preamble``), CRC failed, or a CRC-passing header that differs from the
one sent (``undetected``). The header error rate comes with its exact 95 % (Clopper-Pearson)
interval; the SNR estimates of the good bursts are summarised beside it (bias, spread). The
channel of a chunk of bursts is generated in one vectorised pass; the receiver runs burst by
burst, as in the flowgraph. Every draw comes from one seeded generator per SNR point
(``--seed``): reruns print the same numbers.

Run::

    .venv/bin/python benchmarks/header_code.py                  # polar: 20,000 headers at -5 dB, 2,000 at -7/-6/-4/-3
    .venv/bin/python benchmarks/header_code.py --code spread --n 2000 --n-other 500   # the earlier format

The table comes first; the last line of stdout is one JSON object.
"""
import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "gnuradio" / "python"))

import numpy as np  # noqa: E402

from singlink.phy import clopper_pearson  # noqa: E402
from singlink_gr import burst as B  # noqa: E402
from singlink_gr.testing import header_trials  # noqa: E402


def run_point(cfg, k, snr_db, n, cfo, seed):
    t0 = time.perf_counter()
    counts, snr_est = header_trials(n, k, cfg, snr_db, cfo, seed)
    seconds = time.perf_counter() - t0
    errors = n - counts["ok"]
    lo, hi = clopper_pearson(errors, n)
    est = snr_est - snr_db
    return {"snr_db": snr_db, "headers": n, "errors": errors, "header_error_rate": errors / n,
            "ci95": [lo, hi], "no_preamble": counts["no preamble"], "header_crc": counts["header crc"],
            "undetected": counts["undetected"], "snr_est_bias_db": round(float(est.mean()), 3) if len(est) else None,
            "snr_est_spread_db": round(float(est.std()), 3) if len(est) else None,
            "snr_est_max_err_db": round(float(np.abs(est).max()), 3) if len(est) else None,
            "seconds": round(seconds, 1)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--code", default="polar", choices=B.HEADER_CODES, help="header code (default %(default)s)")
    p.add_argument("--header-sf", type=int, default=B.DEFAULT_HEADER_SF, help="--code spread: chips per bit")
    p.add_argument("--k", type=int, default=16, help="payload symbols per burst (default %(default)s)")
    p.add_argument("--snr", type=float, default=-5.0, help="main SNR point, dB (default %(default)s)")
    p.add_argument("--n", type=int, default=20000, help="headers at the main point (default %(default)s)")
    p.add_argument("--others", default="-7,-6,-4,-3", help="further SNR points, dB (default %(default)s)")
    p.add_argument("--n-other", type=int, default=2000, help="headers at each further point (default %(default)s)")
    p.add_argument("--cfo", type=float, default=5e-4,
                   help="carrier offset, cycles/sample (default %(default)s: the documented limit at -5 dB)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--target", type=float, default=1e-3, help="header error rate goal at the main point")
    args = p.parse_args(argv)

    cfg = B.BurstConfig(header_code=args.code, header_sf=args.header_sf)
    lay = B.Layout.of(cfg, args.k)
    points = [(args.snr, args.n)] + [(float(s), args.n_other) for s in args.others.split(",") if s.strip()]
    print(f"header code {args.code}: {B.HEADER_BITS} bits in {cfg.header_symbols} symbols; burst {lay.length} "
          f"symbols + {cfg.guard} guard for k = {args.k}; carrier offset {args.cfo:g} cycles/sample, random phase "
          f"and start, receiver: burst.Synchronizer (detect + decode)")
    print(f"{'SNR dB':>7s} {'headers':>8s} {'errors':>7s} {'HER':>10s} {'95% interval':>23s} {'no pre':>7s} "
          f"{'crc':>5s} {'undet':>6s} {'SNR est bias/spread dB':>23s} {'s':>6s}")
    rows = []
    for snr_db, n in points:
        r = run_point(cfg, args.k, snr_db, n, args.cfo, args.seed)
        rows.append(r)
        print(f"{snr_db:7.1f} {n:8d} {r['errors']:7d} {r['header_error_rate']:10.2e} "
              f"[{r['ci95'][0]:9.2e}, {r['ci95'][1]:9.2e}] {r['no_preamble']:7d} {r['header_crc']:5d} "
              f"{r['undetected']:6d} {r['snr_est_bias_db']!s:>11s} / {r['snr_est_spread_db']!s:<9s} {r['seconds']:6.1f}",
              flush=True)
    main_row = rows[0]
    met = main_row["ci95"][1] <= args.target and cfg.header_symbols <= 600
    print(f"at {args.snr:g} dB: header_error_rate {main_row['header_error_rate']:.2e}, 95 % interval "
          f"[{main_row['ci95'][0]:.2e}, {main_row['ci95'][1]:.2e}] over {main_row['headers']} headers, "
          f"{cfg.header_symbols} header symbols: goal (<= {args.target:g} with its interval, <= 600 symbols) "
          f"{'met' if met else 'NOT met'}")
    result = {"benchmark": "header_code", "header_code": args.code, "header_sf": args.header_sf if args.code == "spread"
              else None, "header_bits": B.HEADER_BITS, "header_symbols": cfg.header_symbols, "k": args.k,
              "burst_symbols": lay.length + cfg.guard, "cfo": args.cfo, "seed": args.seed,
              "snr_db": args.snr, "header_error_rate": main_row["header_error_rate"], "ci95": main_row["ci95"],
              "headers": main_row["headers"], "goal": args.target, "goal_met": met, "points": rows,
              "python": platform.python_version(), "load_avg_1min": round(os.getloadavg()[0], 2)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
