"""What a sweep shows: ``summary.csv``, PSNR/LPIPS-vs-SNR plots (the SING paper's Figs. 6 and 7)
and a grid of example reconstructions, all computed from the store alone.

Confidence intervals: rows of one image under several channel realisations are not independent,
so each (method, rho, SNR, channel) group is first averaged per image, and the 95% Student-t
interval is taken over those per-image means (with one realisation this is the plain interval
over rows). The mean is the mean over all rows; ``n`` counts rows (images x realisations).

A grid with codec families (``family``) has one line per (method, family): the learned methods
are labelled with their codec's family, ``sing-inn [mse]`` (:func:`label`); the baselines use no
codec and appear once.

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

from ..evaluation import image_means, mean_ci95, paired_difference
from .config import SweepConfig

# LPIPS-VGG beside LPIPS-alex: a second perceptual metric that no codec here trains on. Stores made
# before it was measured have no lpips_vgg (NULL): its columns stay empty for them.
METRICS = ("psnr", "ms_ssim", "lpips", "lpips_vgg")
SUMMARY_COLUMNS = ("method", "family", "rho", "snr_db", "channel", "n") + tuple(
    f"{m}_{stat}" for m in METRICS for stat in ("mean", "ci95"))


def label(method: str, family: str) -> str:
    """How a (method, family) is named in tables and plots: ``sing-inn [mse]``, or the method alone
    for the canonical codec and the baselines (family "")."""
    return f"{method} [{family}]" if family else method


def measured(rows, metrics=METRICS) -> tuple:
    """The metrics every one of ``rows`` has a value of (lpips_vgg is missing from older stores)."""
    return tuple(m for m in metrics if all(r.get(m) is not None for r in rows))


def in_grid(rows: list[dict], cfg: SweepConfig) -> list[dict]:
    """The rows of ``cfg``'s grid (a store may hold more: other seeds, SNRs, methods)."""
    snrs = {float(s) for s in cfg.snr}
    pairs = set(cfg.method_families())
    return [r for r in rows if (r["method"], r["family"]) in pairs and r["rho"] in cfg.rho and r["snr_db"] in snrs
            and r["channel"] in cfg.channel and r["image_id"] < cfg.images and r["realization"] < cfg.realizations
            and r["seed"] == cfg.seed]


def summarize(rows: list[dict], cfg: SweepConfig) -> list[dict]:
    """One record per (method, family, rho, snr_db, channel) with :data:`SUMMARY_COLUMNS`, in the
    config's order (a metric the rows lack, lpips_vgg of older stores, is None)."""
    groups = defaultdict(list)
    for r in rows:
        groups[(r["method"], r["family"], r["rho"], r["snr_db"], r["channel"])].append(r)
    order = {name: {v: i for i, v in enumerate(getattr(cfg, name))} for name in ("rho", "channel")}
    pairs = {p: i for i, p in enumerate(cfg.method_families())}
    keys = sorted(groups, key=lambda g: (order["rho"].get(g[2], 99), order["channel"].get(g[4], 99),
                                         pairs.get(g[:2], 99), g[3]))
    out = []
    for key in keys:
        rs = groups[key]
        entry = dict(zip(("method", "family", "rho", "snr_db", "channel"), key)) | {"n": len(rs)}
        have = measured(rs)
        for m in METRICS:
            entry[f"{m}_mean"] = entry[f"{m}_ci95"] = None
            if m in have:
                _, ci = mean_ci95(image_means((r["image_id"], r[m]) for r in rs))
                entry[f"{m}_mean"], entry[f"{m}_ci95"] = float(np.mean([r[m] for r in rs])), ci
        out.append(entry)
    return out


PAIRED_COLUMNS = ("method", "family", "versus", "versus_family", "rho", "snr_db", "channel", "n") + tuple(
    f"{m}_{stat}" for m in METRICS for stat in ("diff", "diff_ci95"))


def by_cell(rows: list[dict], key=lambda r: (r["method"], r["family"])) -> dict:
    """``{(rho, snr_db, channel): {key(row): {(image_id, realization): row}}}`` (key: the row's
    (method, family)): the rows two methods share in a cell are the same images under the same
    channel draws."""
    cells = defaultdict(dict)
    for r in rows:
        cells[(r["rho"], r["snr_db"], r["channel"])].setdefault(key(r), {})[(r["image_id"], r["realization"])] = r
    return cells


def paired_differences(rows: list[dict], cfg: SweepConfig) -> list[dict]:
    """For every pair of (method, family) (``method`` later than ``versus`` in
    :meth:`SweepConfig.method_families`) and every (rho, SNR, channel): metric(method) -
    metric(versus) on the rows both have (same image and realisation), averaged per image, with the
    95% Student-t interval over images. A difference whose interval excludes 0 is significant at 5%."""
    cells = by_cell(rows)
    methods = cfg.method_families()
    order = {name: {v: i for i, v in enumerate(getattr(cfg, name))} for name in ("rho", "channel")}
    out = []
    for cell in sorted(cells, key=lambda c: (order["rho"].get(c[0], 99), order["channel"].get(c[2], 99), c[1])):
        got = cells[cell]
        for j, a in enumerate(methods):
            for b in methods[:j]:
                have = measured([*got.get(a, {}).values(), *got.get(b, {}).values()])
                paired = paired_difference(got, a, b, have)
                if paired is None:
                    continue
                shared, diffs = paired
                entry = {"method": a[0], "family": a[1], "versus": b[0], "versus_family": b[1], "rho": cell[0],
                         "snr_db": cell[1], "channel": cell[2], "n": len(shared)}
                for m in METRICS:
                    entry[f"{m}_diff"], entry[f"{m}_diff_ci95"] = diffs.get(m, (None, None))
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
    head = ("method [codec family]", "rho", "channel", "SNR dB", "n", "PSNR dB", "MS-SSIM", "LPIPS", "LPIPS-VGG")
    fmt_ci = lambda s, m, f: "-" if s[f"{m}_mean"] is None else f"{s[f'{m}_mean']:{f}} ± {s[f'{m}_ci95']:{f}}"  # noqa: E731
    lines = [[label(s["method"], s["family"]), s["rho"], s["channel"], f"{s['snr_db']:g}", str(s["n"]),
              fmt_ci(s, "psnr", ".2f"), fmt_ci(s, "ms_ssim", ".3f"), fmt_ci(s, "lpips", ".4f"),
              fmt_ci(s, "lpips_vgg", ".4f")] for s in summary]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *lines)]
    fmt = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def _png_bytes(fig, dpi: int = 120) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def metric_plot(summary: list[dict], cfg: SweepConfig, metric: str) -> bytes:
    """``metric`` (psnr, lpips, lpips_vgg or ms_ssim) vs SNR, a line per (method, family) with 95% CI
    error bars, a panel per (rho, channel), with published DeepJSCC results as stars where
    :mod:`.published` has them; PNG bytes."""
    from .published import published_points

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(rho, ch) for rho in cfg.rho for ch in cfg.channel]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4), squeeze=False)
    ylabel = {"psnr": "PSNR [dB]", "lpips": "LPIPS-alex (lower is better)", "lpips_vgg": "LPIPS-VGG (lower is better)",
              "ms_ssim": "MS-SSIM"}[metric]
    lines = cfg.method_families()
    step = min(np.diff(sorted(cfg.snr)), default=1.0)
    for ax, (rho, ch) in zip(axes[0], panels):
        for i, (method, family) in enumerate(lines):
            pts = sorted((s["snr_db"], s[f"{metric}_mean"], s[f"{metric}_ci95"]) for s in summary
                         if (s["method"], s["family"]) == (method, family) and s["rho"] == rho and s["channel"] == ch
                         and s[f"{metric}_mean"] is not None)
            if pts:
                snr, mean, ci = zip(*pts)
                # methods side by side within an SNR point, so coinciding curves stay visible
                dodge = (i - (len(lines) - 1) / 2) * 0.06 * step
                ax.errorbar(np.add(snr, dodge), mean, yerr=ci, marker="o", ms=4, capsize=3,
                            label=label(method, family),
                            linestyle="--" if method.startswith("bpg") else ":" if family == "mse" else "-")
        reference = published_points(cfg.dataset, rho, ch) if metric == "psnr" else None
        if reference:
            ax.plot(*zip(*reference[1]), "k*", ms=10, label=f"{reference[0]} (published)")
        ax.set_title(f"rho = {rho}, {ch}")
        ax.set_xlabel("SNR [dB]")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{ylabel} vs SNR (mean ± 95% CI)", fontsize=10)
    data = _png_bytes(fig)
    plt.close(fig)
    return data


def example_grid(examples: list[dict], originals: dict, cfg: SweepConfig, rho: str, channel: str) -> bytes | None:
    """Rows: the originals, then one row per (method, family); columns: SNR. Each cell shows the
    ``cfg.examples`` first images side by side. None when nothing was stored."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    ids = sorted(originals)
    cells = defaultdict(dict)
    for e in examples:
        if e["rho"] == rho and e["channel"] == channel and e["seed"] == cfg.seed and e["image_id"] in originals:
            cells[(e["method"], e["family"], e["snr_db"])][e["image_id"]] = np.asarray(Image.open(io.BytesIO(e["png"])))
    methods = [p for p in cfg.method_families() if any((*p, float(s)) in cells for s in cfg.snr)]
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
    for r, (method, family) in enumerate(methods, start=1):
        axes[r][0].set_ylabel(label(method, family).replace(" [", "\n["), fontsize=8)  # two short lines
        for c, snr in enumerate(cfg.snr):
            got = cells.get((method, family, float(snr)), {})
            axes[r][c].imshow(strip([got.get(i, blank) for i in ids]))
            if r == 1:
                axes[r][c].set_title(f"{snr:g} dB", fontsize=8)
    fig.suptitle(f"Example reconstructions, rho = {rho}, {channel}", fontsize=9)
    data = _png_bytes(fig, dpi=100)
    plt.close(fig)
    return data
