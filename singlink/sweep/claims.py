"""The SING paper's claims, tested on a sweep's own rows (``claims.md`` in the report).

The paper (Sec. V, Figs. 6-8) claims, for DeepJSCC followed by SING restoration:

1. perceptual quality improves: LPIPS of SING-INN < SING-Zero < DeepJSCC at each SNR
   (the paper itself reports SING-Zero failing to help at its lower rho);
2. fidelity is kept: PSNR of SING-Zero and SING-INN within 1 dB of DeepJSCC;
3. SING-INN's LPIPS gain over DeepJSCC is largest at the lowest rho.

and the lineage's receivers where the grid has them: CommIN (INN guidance without SING's projection)
gives the lowest LPIPS (the CommIN paper: CommIN < SING-INN), and every restoration (CommIN, DPS on
the received symbols) is held to claims 1 and 2 against DeepJSCC. The LPIPS claims are tested with
LPIPS-alex and, where the rows have it, LPIPS-VGG, which no codec trains on.

Each comparison is paired (the sweep gives every method the same images and channel draws) and
decided by the 95% Student-t interval over images of the per-image difference:

- "A < B" **holds** where the interval of A - B lies below 0, **fails** where it lies above 0
  (B is significantly better) and is **not significant** otherwise;
- "within 1 dB" holds where the whole interval of the PSNR difference lies in [-1, 1], fails
  where it lies wholly outside and is not significant otherwise.

Claim 3 compares gains on the same images at two rhos: per image, the LPIPS gain averaged over
the grid's SNRs at the lowest rho minus that at each other rho, with its interval over images.

A grid with several codec families tests the claims within each family (its DeepJSCC against its
own restorations); each claim then names the family it was tested in.
"""
from __future__ import annotations

from collections import defaultdict
from fractions import Fraction

from ..evaluation import mean_ci95
from ..evaluation import paired_difference
from .report import by_cell

DEEPJSCC, ZERO, INN, COMMIN, DPS = "deepjscc", "sing-zero", "sing-inn", "commin", "dps"
RESTORATIONS = (ZERO, INN, COMMIN, DPS)
NAMES = {DEEPJSCC: "DeepJSCC", ZERO: "SING-Zero", INN: "SING-INN", COMMIN: "CommIN", DPS: "DPS"}
LPIPS_NAMES = {"lpips": "LPIPS", "lpips_vgg": "LPIPS-VGG"}


def _less(diff: float, ci: float) -> str:
    return "holds" if diff + ci < 0 else "fails" if diff - ci > 0 else "not significant"


def _within(diff: float, ci: float, bound: float) -> str:
    return "holds" if abs(diff) + ci <= bound else "fails" if abs(diff) - ci > bound else "not significant"


def _paired(got, a, b, metric):
    """:func:`singlink.evaluation.paired_difference` of one metric: (difference, 95% half-width, images), or None."""
    paired = paired_difference(got, a, b, (metric,))
    if paired is None:
        return None
    shared, diffs = paired
    return (*diffs[metric], len({key[0] for key in shared}))


def sing_claims(rows: list[dict], cfg) -> list[dict]:
    """One record per claim, rho and channel (claim 3: per channel and rho compared), each with
    ``claim``, ``rho``, ``channel``, ``results``: a list of ``(snr_db or None, diff, ci95, n,
    verdict)``. Empty when the grid lacks DeepJSCC or every restoration."""
    methods = [m for m in (DEEPJSCC, *RESTORATIONS) if m in cfg.methods]
    if DEEPJSCC not in methods or len(methods) < 2:
        return []
    out = []
    for family in cfg.families:
        cells = by_cell([r for r in rows if r["family"] == family], key=lambda r: r["method"])
        lpips = ("lpips", "lpips_vgg") if rows and all(r.get("lpips_vgg") is not None for r in rows) else ("lpips",)
        for claim in _claims(cells, cfg, methods, lpips):
            out.append(claim | {"claim": f"[{family}] {claim['claim']}" if family else claim["claim"]})
    return out


def _claims(cells, cfg, methods, lpips=("lpips",)) -> list[dict]:
    """:func:`sing_claims` in one codec family's ``cells`` ({cell: {method: rows}}), the LPIPS
    claims in each metric of ``lpips``."""
    snrs = sorted(float(s) for s in cfg.snr)
    checks = []  # (claim text, method a, method b, metric, verdict function)
    for metric in lpips:
        name = LPIPS_NAMES[metric]
        for a, b in ((INN, ZERO), (COMMIN, INN)):
            if a in methods and b in methods:
                checks.append((f"{name}: {NAMES[a]} < {NAMES[b]}", a, b, metric, _less))
        for m in RESTORATIONS:
            if m in methods:
                checks.append((f"{name}: {NAMES[m]} < DeepJSCC", m, DEEPJSCC, metric, _less))
    for m in RESTORATIONS:
        if m in methods:
            checks.append((f"PSNR: {NAMES[m]} within 1 dB of DeepJSCC", m, DEEPJSCC, "psnr",
                           lambda d, c: _within(d, c, 1.0)))
    out = []
    for text, a, b, metric, verdict in checks:
        for rho in cfg.rho:
            for ch in cfg.channel:
                results = []
                for snr in snrs:
                    got = _paired(cells.get((rho, snr, ch), {}), a, b, metric)
                    if got:
                        results.append((snr, *got, verdict(got[0], got[1])))
                if results:
                    out.append({"claim": text, "rho": rho, "channel": ch, "results": results})
    if INN in methods and len(cfg.rho) > 1:
        lowest = min(cfg.rho, key=Fraction)
        for ch in cfg.channel:
            gains = {rho: _mean_gain(cells, rho, ch, snrs) for rho in cfg.rho}
            for rho in cfg.rho:
                if rho == lowest:
                    continue
                common = sorted(set(gains[lowest]) & set(gains[rho]))
                if common:
                    diff, ci = mean_ci95([gains[lowest][i] - gains[rho][i] for i in common])
                    out.append({"claim": f"SING-INN's LPIPS gain over DeepJSCC larger at rho {lowest} than at {rho}",
                                "rho": f"{lowest} vs {rho}", "channel": ch,
                                "results": [(None, diff, ci, len(common), _less(-diff, ci))]})
    return out


def _mean_gain(cells, rho, channel, snrs) -> dict[int, float]:
    """Per image: LPIPS(DeepJSCC) - LPIPS(SING-INN) averaged over the SNRs (and realisations),
    for the images that have both methods at every SNR."""
    per_image = defaultdict(list)
    complete = None
    for snr in snrs:
        got = cells.get((rho, snr, channel), {})
        shared = set(got.get(INN, {})) & set(got.get(DEEPJSCC, {}))
        images = {k[0] for k in shared}
        complete = images if complete is None else complete & images
        for k in shared:
            per_image[k[0]].append(got[DEEPJSCC][k]["lpips"] - got[INN][k]["lpips"])
    return {i: sum(per_image[i]) / len(per_image[i]) for i in sorted(complete or ())}


def claims_markdown(claims: list[dict]) -> str:
    """The claims as markdown: a table per claim, one row per (rho, channel), a cell per SNR."""
    if not claims:
        return ""
    lines = ["# The SING paper's claims on this sweep", "",
             "Paired per image (same images and channel draws); each cell: verdict, mean difference "
             "± 95% CI over images, first method minus second (LPIPS: lower is better; PSNR in dB). "
             "See `singlink.sweep.claims` for the rules.", ""]
    by_claim = defaultdict(list)
    for c in claims:
        by_claim[c["claim"]].append(c)
    for text, entries in by_claim.items():
        lines += [f"## {text}", ""]
        snrs = sorted({r[0] for c in entries for r in c["results"]}, key=lambda s: (s is None, s))
        head = ["rho", "channel", "n"] + [("all SNRs" if s is None else f"{s:g} dB") for s in snrs] + ["holds / fails / n.s."]
        lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for c in entries:
            res = {r[0]: r for r in c["results"]}
            fmt = "{:+.4f} ± {:.4f}" if "LPIPS" in text else "{:+.2f} ± {:.2f}"
            cells = [f"{res[s][4]} ({fmt.format(res[s][1], res[s][2])})" if s in res else "" for s in snrs]
            tally = [sum(r[4] == v for r in c["results"]) for v in ("holds", "fails", "not significant")]
            n = min(r[3] for r in c["results"])
            lines.append("| " + " | ".join([c["rho"], c["channel"], str(n), *cells, " / ".join(map(str, tally))]) + " |")
        lines.append("")
    return "\n".join(lines)
