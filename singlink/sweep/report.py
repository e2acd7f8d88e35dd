"""What a sweep shows: ``summary.csv``, PSNR/LPIPS-vs-SNR plots (the SING paper's Figs. 6 and 7)
and a grid of example reconstructions, all computed from the store alone.

Confidence intervals: rows of one image under several channel realisations are not independent,
so each (method, rho, SNR, channel) group is first averaged per image, and the 95% Student-t
interval is taken over those per-image means (with one realisation this is the plain interval
over rows). The mean is the mean over all rows; ``n`` counts rows (images x realisations).

Two methods are compared on the same images and channel draws (the sweep pairs them), so
``paired.csv`` gives, for every pair of methods, the mean per-image difference of each metric
with its own 95% interval: far tighter than two overlapping per-method intervals, it is what says
whether one method beats another at an SNR.
"""
from __future__ import annotations

import csv
import io
from collections import defaultdict

import numpy as np

from ..evaluation import METRICS, image_means, mean_ci95, paired_difference
from .config import SweepConfig

SUMMARY_COLUMNS = ("method", "rho", "snr_db", "channel", "n", "psnr_mean", "psnr_ci95", "ms_ssim_mean",
                   "ms_ssim_ci95", "lpips_mean", "lpips_ci95")


def in_grid(rows: list[dict], cfg: SweepConfig) -> list[dict]:
    """The rows of ``cfg``'s grid (a store may hold more: other seeds, SNRs, methods)."""
    snrs = {float(s) for s in cfg.snr}
    return [r for r in rows if r["method"] in cfg.methods and r["rho"] in cfg.rho and r["snr_db"] in snrs
            and r["channel"] in cfg.channel and r["image_id"] < cfg.images and r["realization"] < cfg.realizations
            and r["seed"] == cfg.seed]


def summarize(rows: list[dict], cfg: SweepConfig) -> list[dict]:
    """One record per (method, rho, snr_db, channel) with :data:`SUMMARY_COLUMNS`, in the config's order."""
    groups = defaultdict(list)
    for r in rows:
        groups[(r["method"], r["rho"], r["snr_db"], r["channel"])].append(r)
    order = {name: {v: i for i, v in enumerate(getattr(cfg, name))} for name in ("methods", "rho", "channel")}
    keys = sorted(groups, key=lambda g: (order["rho"].get(g[1], 99), order["channel"].get(g[3], 99),
                                         order["methods"].get(g[0], 99), g[2]))
    out = []
    for key in keys:
        rs = groups[key]
        entry = dict(zip(("method", "rho", "snr_db", "channel"), key)) | {"n": len(rs)}
        for m in METRICS:
            _, ci = mean_ci95(image_means((r["image_id"], r[m]) for r in rs))
            entry[f"{m}_mean"], entry[f"{m}_ci95"] = float(np.mean([r[m] for r in rs])), ci
        out.append(entry)
    return out


PAIRED_COLUMNS = ("method", "versus", "rho", "snr_db", "channel", "n", "psnr_diff", "psnr_diff_ci95", "ms_ssim_diff",
                  "ms_ssim_diff_ci95", "lpips_diff", "lpips_diff_ci95")


def by_cell(rows: list[dict]) -> dict:
    """``{(rho, snr_db, channel): {method: {(image_id, realization): row}}}``: the rows two methods
    share in a cell are the same images under the same channel draws."""
    cells = defaultdict(dict)
    for r in rows:
        cells[(r["rho"], r["snr_db"], r["channel"])].setdefault(r["method"], {})[(r["image_id"], r["realization"])] = r
    return cells


def paired_differences(rows: list[dict], cfg: SweepConfig) -> list[dict]:
    """For every pair of methods (``method`` later than ``versus`` in ``cfg.methods``) and every
    (rho, SNR, channel): metric(method) - metric(versus) on the rows both have (same image and
    realisation), averaged per image, with the 95% Student-t interval over images. A difference
    whose interval excludes 0 is significant at 5%."""
    cells = by_cell(rows)
    methods = list(cfg.methods)
    order = {name: {v: i for i, v in enumerate(getattr(cfg, name))} for name in ("rho", "channel")}
    out = []
    for cell in sorted(cells, key=lambda c: (order["rho"].get(c[0], 99), order["channel"].get(c[2], 99), c[1])):
        got = cells[cell]
        for j, a in enumerate(methods):
            for b in methods[:j]:
                paired = paired_difference(got, a, b)
                if paired is None:
                    continue
                shared, diffs = paired
                entry = {"method": a, "versus": b, "rho": cell[0], "snr_db": cell[1], "channel": cell[2], "n": len(shared)}
                for m in METRICS:
                    entry[f"{m}_diff"], entry[f"{m}_diff_ci95"] = diffs[m]
                out.append(entry)
    return out


def csv_text(records: list[dict], columns) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for s in records:
        w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in s.items()})
    return buf.getvalue()


def summary_csv(summary: list[dict]) -> str:
    return csv_text(summary, SUMMARY_COLUMNS)


def summary_table(summary: list[dict]) -> str:
    """The summary as an aligned text table (what the command prints)."""
    head = ("method", "rho", "channel", "SNR dB", "n", "PSNR dB", "MS-SSIM", "LPIPS")
    lines = [[s["method"], s["rho"], s["channel"], f"{s['snr_db']:g}", str(s["n"]),
              f"{s['psnr_mean']:.2f} ± {s['psnr_ci95']:.2f}", f"{s['ms_ssim_mean']:.3f} ± {s['ms_ssim_ci95']:.3f}",
              f"{s['lpips_mean']:.4f} ± {s['lpips_ci95']:.4f}"] for s in summary]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *lines)]
    fmt = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def _png_bytes(fig, dpi: int = 120) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def metric_plot(summary: list[dict], cfg: SweepConfig, metric: str) -> bytes:
    """``metric`` (psnr, lpips or ms_ssim) vs SNR, a line per method with 95% CI error bars, a panel per
    (rho, channel), with published DeepJSCC results as stars where :mod:`.published` has them; PNG bytes."""
    from .published import published_points

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(rho, ch) for rho in cfg.rho for ch in cfg.channel]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4), squeeze=False)
    label = {"psnr": "PSNR [dB]", "lpips": "LPIPS (lower is better)", "ms_ssim": "MS-SSIM"}[metric]
    step = min(np.diff(sorted(cfg.snr)), default=1.0)
    for ax, (rho, ch) in zip(axes[0], panels):
        for i, method in enumerate(cfg.methods):
            pts = sorted((s["snr_db"], s[f"{metric}_mean"], s[f"{metric}_ci95"]) for s in summary
                         if s["method"] == method and s["rho"] == rho and s["channel"] == ch)
            if pts:
                snr, mean, ci = zip(*pts)
                # methods side by side within an SNR point, so coinciding curves stay visible
                dodge = (i - (len(cfg.methods) - 1) / 2) * 0.06 * step
                ax.errorbar(np.add(snr, dodge), mean, yerr=ci, marker="o", ms=4, capsize=3, label=method,
                            linestyle="--" if method.startswith("bpg") else "-")
        reference = published_points(cfg.dataset, rho, ch) if metric == "psnr" else None
        if reference:
            ax.plot(*zip(*reference[1]), "k*", ms=10, label=f"{reference[0]} (published)")
        ax.set_title(f"rho = {rho}, {ch}")
        ax.set_xlabel("SNR [dB]")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{label} vs SNR (mean ± 95% CI)", fontsize=10)
    data = _png_bytes(fig)
    plt.close(fig)
    return data


def example_grid(examples: list[dict], originals: dict, cfg: SweepConfig, rho: str, channel: str) -> bytes | None:
    """Rows: the originals, then one row per method; columns: SNR. Each cell shows the
    ``cfg.examples`` first images side by side. None when nothing was stored."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    ids = sorted(originals)
    cells = defaultdict(dict)
    for e in examples:
        if e["rho"] == rho and e["channel"] == channel and e["seed"] == cfg.seed and e["image_id"] in originals:
            cells[(e["method"], e["snr_db"])][e["image_id"]] = np.asarray(Image.open(io.BytesIO(e["png"])))
    methods = [m for m in cfg.methods if any((m, float(s)) in cells for s in cfg.snr)]
    if not methods or not ids:
        return None
    strip = lambda images: np.concatenate(images, axis=1)  # noqa: E731
    blank = np.full_like(originals[ids[0]], 255)
    # about 2.5 screen pixels per image pixel at dpi 100
    fig, axes = plt.subplots(len(methods) + 1, len(cfg.snr), squeeze=False,
                             figsize=(0.8 * len(ids) * len(cfg.snr) + 1.2, 0.95 * (len(methods) + 1) + 0.6))
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
    axes[0][0].imshow(strip([originals[i] for i in ids]))
    axes[0][0].set_ylabel("original", fontsize=8)
    for r, method in enumerate(methods, start=1):
        axes[r][0].set_ylabel(method, fontsize=8)
        for c, snr in enumerate(cfg.snr):
            got = cells.get((method, float(snr)), {})
            axes[r][c].imshow(strip([got.get(i, blank) for i in ids]))
            if r == 1:
                axes[r][c].set_title(f"{snr:g} dB", fontsize=8)
    fig.suptitle(f"Example reconstructions, rho = {rho}, {channel}", fontsize=9)
    data = _png_bytes(fig, dpi=100)
    plt.close(fig)
    return data
