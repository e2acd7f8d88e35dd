"""``singlink tune-sing``: choose SING's settings for one DeepJSCC on *validation* images.

SING has three knobs the paper leaves to the user: the linear operator A of SING-Zero (which part of
the decoded image is trusted), the number of prior steps visited, and SING-INN's guidance step zeta;
DDNM+ adds the projection (hard or noise-aware, with a scale on the calibrated sigma_y) and time
travel, and CommIN and DPS a step size each. The scan runs in stages, all on the same seeded
channel draws (paired with DeepJSCC):

1. SING-Zero for every operator x step count x projection x sigma_y scale x time travel of
   ``--operators`` x ``--steps`` x ``--projections`` x ``--sigma-y-scales`` x ``--travel``;
2. SING-INN at SING-Zero's chosen settings for every zeta of ``--zetas`` ("paper" is the paper's
   SNR schedule, :func:`singlink.receiver.sing_inn.paper_zeta`);
3. with ``--methods`` naming them, CommIN for every step count x ``--commin-zetas`` and DPS for every
   step count x ``--dps-zetas``.

The rule (the SING issue's), per method: among the settings whose PSNR is within ``--max-psnr-loss`` dB (1) of
DeepJSCC's *at every scanned SNR*, the one of lowest mean LPIPS. When no setting meets it, the one
that loses least PSNR is reported, flagged ``rule_met: false``: SING does not help this codec there.

Writes ``--out``/scan.md (tables, the choice, command, config, seed, code version), scan.csv (one
line per setting and SNR) and rows.csv (per image). ``--record`` writes the choice into the
DeepJSCC checkpoint's ``config.json`` (``sing`` block: operator, steps and zeta for SING-Zero and
SING-INN, ``methods`` for each method's full choice), from where ``Receiver``, ``evaluate`` and
``sweep`` take their defaults. ``--record-band`` writes it instead as one of the block's SNR
``bands`` (the span of ``--snr``): a choice made at -5 and 1 dB need not be the one for 5 dB
(SING-Zero's pool4 on the rho 1/48 mse face codec keeps DeepJSCC's PSNR at low SNR and loses
1.4 dB at 3-5 dB, where pool2 loses 0.2), and the receiver restores each image with the choice
whose span is nearest its SNR.
"""
import json
import shlex
import sys
from pathlib import Path

from .errors import UsageError


def add_arguments(p):
    p.add_argument("--rho", default=None, help="bandwidth ratio of the shipped DeepJSCC checkpoint (default 1/192)")
    p.add_argument("--jscc", default=None, help="DeepJSCC checkpoint name or folder (default: the shipped one for "
                   "--dataset, --image-size and --rho)")
    p.add_argument("--dataset", default=None, help="cifar10, celeba, kodak or a folder of images (default: the "
                   "--jscc checkpoint's, else cifar10)")
    p.add_argument("--image-size", default=None, type=int, help="image side (default: the data set's)")
    p.add_argument("--data-root", default=None, help="folder holding the data sets (default: see singlink.data)")
    p.add_argument("--images", default="16", help="validation images (default %(default)s)")
    p.add_argument("--snr", default="-5,1", help="comma list of SNRs in dB (default %(default)s)")
    p.add_argument("--channel", default="awgn", help="awgn, rayleigh-block or rayleigh-fast (default %(default)s)")
    p.add_argument("--operators", default="pool2,pool4,pool8", help="SING-Zero operators A to try (default %(default)s)")
    p.add_argument("--steps", default="25,50", help="step counts to try (default %(default)s)")
    p.add_argument("--zetas", default="paper,0.3,0.4,0.5",
                   help="SING-INN guidance steps to try, 'paper' for the paper's schedule; empty: skip SING-INN "
                        "(default %(default)s)")
    p.add_argument("--methods", default="sing-zero,sing-inn",
                   help="methods to scan: sing-zero, sing-inn, commin, dps (default %(default)s)")
    p.add_argument("--projections", default="hard", help="SING-Zero's projections to try: hard, noise-aware "
                   "(needs `singlink calibrate-sigma-y --record`) (default %(default)s)")
    p.add_argument("--sigma-y-scales", default="1", help="factors on the calibrated sigma_y for the noise-aware "
                   "projection (default %(default)s)")
    p.add_argument("--travel", default="0", help="time travel settings LENGTH:REPEATS to try, 0 for none "
                   "(default %(default)s)")
    p.add_argument("--commin-zetas", default="paper,0.3,0.5", help="CommIN guidance steps to try (default %(default)s)")
    p.add_argument("--dps-zetas", default="3,10,30", help="DPS step sizes to try (default %(default)s)")
    p.add_argument("--dps-starts", default="1", help="DPS: fractions of the chain run, 1 from pure noise, below 1 "
                   "from x_JSCC noised part-way (default %(default)s)")
    p.add_argument("--guidance", default="norm", choices=("norm", "squared"), help="SING-INN step form (default %(default)s)")
    p.add_argument("--prior", default=None, help="diffusion prior (default: the shipped one for the data set)")
    p.add_argument("--inn", default=None, help="SING-INN network (default: the shipped one for the DeepJSCC)")
    p.add_argument("--max-psnr-loss", default=1.0, type=float,
                   help="PSNR a setting may lose to DeepJSCC at any SNR, in dB (default %(default)s)")
    p.add_argument("--batch", default="16", help="images per batch (default %(default)s)")
    p.add_argument("--seed", default="0", help="run seed (default %(default)s)")
    p.add_argument("--record", action="store_true",
                   help="write the choice into the DeepJSCC checkpoint's config.json (its 'sing' block; "
                        "recorded SNR bands are kept)")
    p.add_argument("--record-band", action="store_true",
                   help="write the choice as the SNR band --snr spans (min..max) into the 'sing' block's "
                        "'bands', replacing bands it overlaps: images nearer that span than the main "
                        "choice's are restored with it")
    p.add_argument("--out", required=True, help="output folder")


def _numbers(text, what, paper: bool = False):
    """A comma list of numbers >= 0 (and 'paper', the paper's schedule, where ``paper``)."""
    out = []
    for v in (t.strip() for t in str(text).split(",")):
        if not v:
            continue
        if paper and v.lower() == "paper":
            out.append("paper")
            continue
        try:
            z = float(v)
        except ValueError:
            z = float("nan")
        if not (z == z and z >= 0 and z != float("inf")):
            raise UsageError(f"{what} must be numbers >= 0" + (" or 'paper'" if paper else "") + f", got {v!r}")
        out.append(z)
    return out


def _zetas(text, what="--zetas"):
    return _numbers(text, what, paper=True)


def _travels(text):
    out = []
    for v in (t.strip() for t in str(text).split(",") if t.strip()):
        if v == "0":
            out.append((0, 0))
            continue
        try:
            length, repeats = (int(p) for p in v.split(":"))
        except ValueError:
            raise UsageError(f"--travel takes LENGTH:REPEATS (e.g. 5:1) or 0, got {v!r}") from None
        if length < 1 or repeats < 1:
            raise UsageError(f"--travel {v}: length and repeats must be >= 1 (or 0 for none)")
        out.append((length, repeats))
    return out or [(0, 0)]


def _zero_name(o):
    """``sing-zero(pool4,50)``, with the DDNM+ settings when they are not the plain ones."""
    extra = []
    if o["projection"] != "hard":
        extra.append(f"{o['projection']} x{o['sigma_y_scale']:g}")
    if o["travel_repeats"]:
        extra.append(f"travel {o['travel_length']}:{o['travel_repeats']}")
    return f"sing-zero({','.join([o['operator'], str(o['steps'])] + extra)})"


def choose(table: dict, reference: dict, max_loss: float) -> tuple:
    """``table``: {setting: {snr: (psnr, lpips)}}, ``reference``: {snr: psnr} of DeepJSCC.
    Returns (setting, rule_met): the lowest mean LPIPS among settings within ``max_loss`` dB of the
    reference at every SNR, else the setting of smallest worst-SNR PSNR loss."""
    def loss(s):
        return max(reference[snr] - table[s][snr][0] for snr in reference)

    def lpips(s):
        return sum(v[1] for v in table[s].values()) / len(table[s])

    ok = [s for s in table if loss(s) <= max_loss]
    if ok:
        return min(ok, key=lpips), True
    return min(table, key=loss), False


def run(args):
    from . import evaluate as ev

    snrs = ev._snrs(args.snr)
    steps = ev._ints(args.steps, "--steps")
    images = ev._ints(args.images, "--images")[0]
    batch = ev._ints(args.batch, "--batch")[0]
    seed = ev._ints(args.seed, "--seed", lo=0)[0]
    zetas = _zetas(args.zetas)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in ("sing-zero", "sing-inn", "commin", "dps")]
    if bad or "sing-zero" not in methods:
        raise UsageError(f"--methods takes sing-zero (always scanned first), sing-inn, commin, dps; got {args.methods!r}")
    if "sing-inn" not in methods:
        zetas = []
    projections = [p.strip() for p in args.projections.split(",") if p.strip()]
    if not projections or any(p not in ("hard", "noise-aware") for p in projections):
        raise UsageError(f"--projections takes hard and/or noise-aware, got {args.projections!r}")
    sigma_scales = _numbers(args.sigma_y_scales, "--sigma-y-scales") or [1.0]
    travels = _travels(args.travel)
    commin_zetas = _zetas(args.commin_zetas, "--commin-zetas") if "commin" in methods else []
    dps_zetas = _numbers(args.dps_zetas, "--dps-zetas") if "dps" in methods else []
    dps_starts = _numbers(args.dps_starts, "--dps-starts") if "dps" in methods else []
    if any(not 0 < v <= 1 for v in dps_starts):
        raise UsageError(f"--dps-starts must be fractions in (0, 1], got {args.dps_starts!r}")
    for name, values in (("--commin-zetas", commin_zetas), ("--dps-zetas", dps_zetas)):
        if name[2:].split("-")[0] in methods and not values:
            raise UsageError(f"{name} is empty; give e.g. 0.3,0.5")
    operators = [o.strip() for o in args.operators.split(",") if o.strip()]
    if not operators:
        raise UsageError("--operators is empty")
    if not (args.max_psnr_loss >= 0):
        raise UsageError(f"--max-psnr-loss must be >= 0 dB, got {args.max_psnr_loss}")
    out = Path(args.out)
    from .sweep.command import _check_out

    _check_out(out)
    from .provenance import code_version

    version = code_version()  # of the code that runs the scan: the tree may change during a long one
    from . import phy
    from .data import load_batch
    from .evaluation import run_cell, summarize, to_csv
    from .jscc.model import CHECKPOINTS
    from .provenance import write_atomic
    from .receiver import Receiver
    from .receiver.operators import check_operators
    from .receiver.inn import find_inn
    from .receiver.prior import DiffusionPrior, find_prior

    try:
        phy.make_channel(args.channel)
    except (ValueError, TypeError) as e:
        raise UsageError(f"--channel: {str(e).splitlines()[0]}") from None
    jscc, k, rho, spec = ev._model(args)
    check_operators(operators, jscc.config.image_size)
    inn = None
    if zetas or commin_zetas:
        try:
            inn = args.inn or find_inn(jscc)
        except UsageError as e:
            raise UsageError(f"{e}; or skip SING-INN with --zetas ''") from None
    folder = Path(args.jscc) if Path(args.jscc).is_dir() else CHECKPOINTS / args.jscc
    if args.record and args.record_band:
        raise UsageError("--record writes the main choice, --record-band an SNR band: give one of them")
    if (args.record or args.record_band) and not (folder / "config.json").is_file():
        raise UsageError(f"--record{'-band' if args.record_band else ''}: no checkpoint folder for {args.jscc!r} "
                         f"to write into")
    data = spec.dataset("val")
    n = min(images, len(data))
    x, _ = load_batch(data, range(n))
    ids = [f"val/{i}" for i in range(n)]
    prior = DiffusionPrior.from_pretrained(args.prior or find_prior(spec.name, spec.image_size))
    out.mkdir(parents=True, exist_ok=True)

    from tqdm import tqdm

    def scan(receivers, stage):
        rows = []
        for snr in tqdm(snrs, desc=f"tune-sing {stage}", unit="snr"):
            rows += run_cell(jscc, receivers, x, ids, snr, args.channel, seed=seed, batch=batch, progress=True)
        return rows

    def table_of(rows):
        summary = summarize(rows)
        by = {}
        for r in summary:
            by.setdefault(r["method"], {})[r["snr_db"]] = (r["psnr_mean"], r["lpips_mean"], r["ms_ssim_mean"])
        return summary, by

    zero = {}
    for o in operators:
        for n_steps in steps:
            for proj in projections:
                for scale in (sigma_scales if proj == "noise-aware" else [1.0]):
                    for length, repeats in travels:
                        if repeats and length >= n_steps:
                            continue
                        opts = {"operator": o, "steps": n_steps, "projection": proj, "sigma_y_scale": scale,
                                "travel_length": length, "travel_repeats": repeats}
                        zero[_zero_name(opts)] = opts
    if not zero:
        raise UsageError("--travel: every length is at least the number of --steps; shorten it")
    receivers = {"deepjscc": Receiver(jscc, "deepjscc")}
    receivers |= {name: Receiver(jscc, "sing-zero", prior=prior, **opts) for name, opts in zero.items()}
    rows = scan(receivers, "sing-zero")
    summary, by = table_of(rows)
    reference = {snr: v[0] for snr, v in by["deepjscc"].items()}
    best_zero, zero_ok = choose({name: by[name] for name in zero}, reference, args.max_psnr_loss)
    chosen_zero = zero[best_zero]
    choice = {"operator": chosen_zero["operator"], "steps": chosen_zero["steps"]}
    per_method = {"sing-zero": chosen_zero}
    met = {"sing-zero": zero_ok}

    def stage(method, candidates):
        nonlocal rows, summary, by
        rx = {"deepjscc": receivers["deepjscc"]}
        rx |= {name: Receiver(jscc, method, prior=prior, **opts) for name, opts in candidates.items()}
        rows += [r for r in scan(rx, method) if r["method"] != "deepjscc"]
        summary, by = table_of(rows)
        best, ok = choose({name: by[name] for name in candidates}, reference, args.max_psnr_loss)
        met[method] = ok
        return candidates[best]

    if zetas:
        inn_names = {f"sing-inn(zeta={z})": chosen_zero | {"inn": inn, "zeta": None if z == "paper" else z,
                                                          "guidance": args.guidance} for z in zetas}
        best = stage("sing-inn", inn_names)
        choice["zeta"] = "paper" if best["zeta"] is None else best["zeta"]
        per_method["sing-inn"] = {key: v for key, v in best.items() if key not in ("inn", "guidance")} | {
            "zeta": choice["zeta"]}
    if "commin" in methods:
        best = stage("commin", {f"commin({n_steps},zeta={z})": {"inn": inn, "steps": n_steps, "guidance": args.guidance,
                                                                "zeta": None if z == "paper" else z}
                                for n_steps in steps for z in commin_zetas})
        per_method["commin"] = {"steps": best["steps"], "zeta": "paper" if best["zeta"] is None else best["zeta"]}
    if "dps" in methods:
        best = stage("dps", {f"dps({n_steps},zeta={z:g}" + (f",start={a:g})" if a < 1 else ")"):
                             {"steps": n_steps, "zeta": z, "start": a}
                             for n_steps in steps for z in dps_zetas for a in dps_starts})
        per_method["dps"] = {"steps": best["steps"], "zeta": best["zeta"]} | (
            {"start": best["start"]} if best["start"] < 1 else {})

    command = shlex.join(["singlink", "tune-sing", *sys.argv[2:]]) if sys.argv[1:2] == ["tune-sing"] else None
    record = {"operator": choice["operator"], "steps": choice["steps"], **({"zeta": choice["zeta"]} if "zeta" in choice else {}),
              "methods": per_method,
              "chosen_by": {"command": command, "rule": f"lowest mean LPIPS with PSNR within {args.max_psnr_loss:g} dB "
                            "of DeepJSCC at every SNR", "rule_met": met, "split": "val", "images": n, "snr_db": snrs,
                            "channel": args.channel, "seed": seed, "version": version}}
    lines = ["# singlink tune-sing", "",
             f"DeepJSCC `{args.jscc}` (k = {k}, rho = {rho}), {n} {spec.tag} **validation** images, channel "
             f"{args.channel}, SNR {', '.join(f'{s:g}' for s in snrs)} dB, seed {seed}; prior "
             f"`{args.prior or find_prior(spec.name, spec.image_size)}`" + (f", INN `{inn}`" if inn else "") + ".", "",
             f"Rule: among settings whose PSNR is within {args.max_psnr_loss:g} dB of DeepJSCC at every SNR, the lowest "
             "mean LPIPS.", "",
             "| setting | " + " | ".join(f"PSNR / LPIPS at {s:g} dB" for s in snrs) + " | worst PSNR loss | mean LPIPS |",
             "| --- | " + " | ".join("---" for _ in snrs) + " | --- | --- |"]
    for name in by:
        cells = " | ".join(f"{by[name][s][0]:.2f} / {by[name][s][1]:.4f}" for s in snrs)
        worst = max(reference[s] - by[name][s][0] for s in snrs)
        lp = sum(by[name][s][1] for s in snrs) / len(snrs)
        lines.append(f"| {name} | {cells} | {worst:+.2f} dB | {lp:.4f} |")
    verdict = "; ".join(f"{m}: {'rule met' if ok else 'no setting met the rule (least PSNR loss shown)'}"
                        for m, ok in met.items())
    chosen = "; ".join(f"{m}: " + ", ".join(f"{key} {v}" for key, v in opts.items()) for m, opts in per_method.items())
    lines += ["", f"**Chosen**: {chosen} ({verdict}).", ""]
    report = lines + ["```json", json.dumps({"sing": record, "config": {key: v for key, v in vars(args).items()
                                                                         if not key.startswith("_")}},
                                            indent=1, default=str), "```", ""]
    write_atomic(out / "rows.csv", to_csv(rows))
    write_atomic(out / "scan.csv", to_csv(summary))
    write_atomic(out / "scan.md", "\n".join(report))
    print("\n".join(lines))
    if args.record or args.record_band:
        raw = json.loads((folder / "config.json").read_text())
        old = raw.get("sing", {})
        if args.record:
            raw["sing"] = record | ({"bands": old["bands"]} if "bands" in old else {})
        else:
            lo, hi = min(snrs), max(snrs)
            bands = [b for b in old.get("bands", []) if max(b["snr_db"]) < lo or min(b["snr_db"]) > hi]
            raw["sing"] = old | {"bands": sorted(bands + [{"snr_db": [lo, hi]} | record], key=lambda b: b["snr_db"])}
        write_atomic(folder / "config.json", json.dumps(raw, indent=1))
        print(f"recorded in {folder / 'config.json'}" + (f" as the band {min(snrs):g}..{max(snrs):g} dB"
                                                          if args.record_band else ""))
    print(f"wrote {out}/scan.md, scan.csv, rows.csv")
    return 0
