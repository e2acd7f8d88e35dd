"""``singlink link``: link-level error rates of uncoded and 5G-LDPC-coded QPSK over AWGN and
Rayleigh block fading, each point a Monte Carlo estimate with a 95% confidence interval, beside
the closed-form curves for the uncoded links. Writes ``results.json`` and ``ber.png``."""
import json
import os
import time
from pathlib import Path

import numpy as np

from .errors import UsageError


def add_arguments(parser):
    parser.add_argument("--ebno", default="-2:10:1", help="Eb/N0 grid in dB, START:STOP:STEP (inclusive) or a comma list (default %(default)s)")
    parser.add_argument("--k", type=int, default=512, help="LDPC information bits per codeword (default %(default)s)")
    parser.add_argument("--n", type=int, default=1024, help="LDPC codeword length (default %(default)s)")
    parser.add_argument("--iterations", type=int, default=20, help="BP decoding iterations (default %(default)s)")
    parser.add_argument("--batch", type=int, default=400, help="codewords per Monte Carlo batch (default %(default)s)")
    parser.add_argument("--target-errors", type=int, default=100, help="stop a point after this many block errors (default %(default)s)")
    parser.add_argument("--max-batches", type=int, default=10, help="at most this many batches per point (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="run seed (default %(default)s)")
    parser.add_argument("--out", default="runs/link", help="output folder (default %(default)s)")
    parser.add_argument("--no-xla", action="store_true", help="compile with tf.function only, without XLA")


MAX_POINTS = 1000  # Eb/N0 points per link at most
EBNO_LIMIT_DB = 100.0


def parse_grid(text: str) -> list[float]:
    """'-2:10:1' (inclusive) or '0,2.5,5' -> list of floats, each finite and in [-100, 100] dB,
    at most :data:`MAX_POINTS` of them."""
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if not all(map(np.isfinite, (start, stop, step))) or step <= 0 or stop < start:
                raise ValueError
            count = (stop - start) / step + 1
            if not np.isfinite(count) or count > MAX_POINTS:
                raise UsageError(f"--ebno {text!r} has {count:.3g} points; at most {MAX_POINTS} (use a coarser STEP)")
            values = [round(float(v), 6) for v in np.arange(start, stop + step / 2, step)]
        else:
            values = [float(v) for v in text.split(",") if v.strip()]
    except UsageError:
        raise
    except ValueError:
        raise UsageError(f"--ebno: cannot read the grid {text!r}: give START:STOP:STEP (finite, STEP > 0, STOP >= START), "
                         f"or a comma list like 0,2,4") from None
    if not values:
        raise UsageError("--ebno: the grid is empty: give at least one value")
    bad = [v for v in values if not (np.isfinite(v) and abs(v) <= EBNO_LIMIT_DB)]
    if bad:
        raise UsageError(f"--ebno values must be finite numbers in [-{EBNO_LIMIT_DB:g}, {EBNO_LIMIT_DB:g}] dB, got {bad[0]:g}")
    if len(values) > MAX_POINTS:
        raise UsageError(f"--ebno has {len(values)} points; at most {MAX_POINTS}")
    return values


def theory_ber_qpsk(ebno_db, channel: str):
    """Uncoded Gray QPSK BER: Q(sqrt(2 Eb/N0)) over AWGN; 0.5 (1 - sqrt(g/(1+g))), g = Eb/N0,
    over Rayleigh fading with coherent detection."""
    from scipy.special import erfc

    g = 10.0 ** (np.asarray(ebno_db) / 10.0)
    if channel == "awgn":
        return 0.5 * erfc(np.sqrt(g))
    return 0.5 * (1.0 - np.sqrt(g / (1.0 + g)))


def run(args):
    grid = parse_grid(args.ebno)
    for name in ("k", "n", "iterations", "batch", "max_batches", "target_errors"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
    if args.seed < 0:
        raise UsageError("--seed must be >= 0")
    if not args.k < args.n:
        raise UsageError(f"LDPC needs k < n, got --k {args.k} --n {args.n}")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create --out {out}: {e.strerror}") from None
    if not os.access(out, os.W_OK):
        raise UsageError(f"--out {out} is not writable; choose another folder")

    from . import phy  # TensorFlow loads only once the arguments are known to be good
    from .provenance import code_version, derive_seed, write_atomic

    links = [(coded, channel) for channel in ("awgn", "rayleigh-block") for coded in (False, True)]
    try:  # the LDPC code's limits (5G NR: k <= 8448, rate ...) are Sionna's to say: ask before running
        phy.DigitalLink(phy.DigitalLinkConfig(k=args.k, n=args.n, modulation="qpsk", channel="awgn", coded=True,
                                              num_iter=args.iterations))
    except (ValueError, TypeError, AssertionError) as e:
        raise UsageError(f"--k {args.k} --n {args.n}: LDPC5G({args.k},{args.n}): {' '.join(str(e).split())[:200]}") from None
    config = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    results = {"config": config, "seed": args.seed, "version": code_version(), "ebno_db": grid, "links": []}
    print(f"singlink link: QPSK, LDPC5G({args.k},{args.n}) with {args.iterations} BP iterations; "
          f"Eb/N0 {grid[0]:g}..{grid[-1]:g} dB; seed {args.seed}")
    header = f"{'link':34s} {'Eb/N0':>6s} {'BER':>10s} {'BER 95% CI':>23s} {'BLER':>9s} {'blocks':>7s}"
    print(header)
    t_start = time.perf_counter()
    for coded, channel in links:
        cfg = phy.DigitalLinkConfig(k=args.k, n=args.n, modulation="qpsk", channel=channel,
                                    coded=coded, num_iter=args.iterations)
        label = f"{'LDPC' if coded else 'uncoded'} QPSK, {channel}"
        runner = phy.MonteCarloRunner(phy.DigitalLink(cfg), args.batch, target_block_errors=args.target_errors,
                                      max_trials=args.max_batches, jit_compile=not args.no_xla)
        points = []
        for ebno in grid:
            phy.set_seed(derive_seed(args.seed, channel, coded, ebno))
            est = runner.run_point(float(phy.ebno_db_to_snr_db(ebno, "qpsk", cfg.coderate)))
            d = est.as_dict() | {"ebno_db": ebno}
            points.append(d)
            ci = f"[{d['ber_ci95'][0]:.2e}, {d['ber_ci95'][1]:.2e}]"
            print(f"{label:34s} {ebno:6.1f} {d['ber']:10.3e} {ci:>23s} {d['bler']:9.3e} {d['blocks']:7d}", flush=True)
        results["links"].append({"coded": coded, "channel": channel, "label": label, "coderate": cfg.coderate,
                                 "points": points})
    results["seconds"] = time.perf_counter() - t_start

    write_atomic(out / "results.json", json.dumps(results, indent=1))
    _plot(results, out / "ber.png", write_atomic)
    print(f"wrote {out / 'results.json'} and {out / 'ber.png'} ({results['seconds']:.0f} s)")
    return 0


def _plot(results, path, write_atomic):
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    grid = np.asarray(results["ebno_db"])
    fine = np.linspace(grid[0], grid[-1], 200)
    for ax, channel in zip(axes, ("awgn", "rayleigh-block")):
        for link in (l for l in results["links"] if l["channel"] == channel):
            pts = link["points"]
            x = np.array([p["ebno_db"] for p in pts])
            for key, marker, ls in (("ber", "o", "-"), ("bler", "s", "--")):
                y = np.array([p[key] for p in pts])
                ci = np.array([p[key + "_ci95"] for p in pts])
                ok = y > 0
                name = ("LDPC" if link["coded"] else "uncoded") + f" {key.upper()}"
                ax.errorbar(x[ok], y[ok], yerr=[y[ok] - ci[ok, 0], ci[ok, 1] - y[ok]], marker=marker, ls=ls,
                            ms=4, capsize=2, label=name)
        ax.semilogy(fine, theory_ber_qpsk(fine, channel), "k:", label="uncoded BER, theory")
        if channel == "rayleigh-block":
            # Gaussian-input outage at the coded link's spectral efficiency R = 2 * k/n bit/use:
            # a lower bound on the coded BLER under block fading.
            k_over_n = results["config"]["k"] / results["config"]["n"]
            from .phy.capacity import rayleigh_outage_probability

            snr = fine + 10 * np.log10(2 * k_over_n)
            ax.semilogy(fine, rayleigh_outage_probability(2 * k_over_n, snr), "k-.", lw=1,
                        label=f"outage bound, R = {2 * k_over_n:g}")
        ax.set_title(f"QPSK over {channel}")
        ax.set_xlabel("Eb/N0 [dB]")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_ylim(1e-6, 1)
    axes[0].set_ylabel("error rate (95% CI)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    write_atomic(path, buf.getvalue())
