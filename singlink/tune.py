"""``singlink tune-sing``: choose SING's settings for one DeepJSCC on *validation* images.

SING has three knobs the paper leaves to the user: the linear operator A of SING-Zero (which part of
the decoded image is trusted), the number of prior steps visited, and SING-INN's guidance step zeta.
The scan runs in two stages, both on the same seeded channel draws (paired with DeepJSCC):

1. SING-Zero for every operator x step count of ``--operators`` x ``--steps``;
2. SING-INN at the chosen operator and step count for every zeta of ``--zetas`` ("paper" is the
   paper's SNR schedule, :func:`singlink.receiver.sing_inn.paper_zeta`).

The rule (the SING issue's): among the settings whose PSNR is within ``--max-psnr-loss`` dB (1) of
DeepJSCC's *at every scanned SNR*, the one of lowest mean LPIPS. When no setting meets it, the one
that loses least PSNR is reported, flagged ``rule_met: false``: SING does not help this codec there.

Writes ``--out``/scan.md (tables, the choice, command, config, seed, code version), scan.csv (one
line per setting and SNR) and rows.csv (per image). ``--record`` writes the choice into the
DeepJSCC checkpoint's ``config.json`` (``sing`` block), from where ``Receiver``, ``evaluate`` and
``sweep`` take their defaults.
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
    p.add_argument("--guidance", default="norm", choices=("norm", "squared"), help="SING-INN step form (default %(default)s)")
    p.add_argument("--prior", default=None, help="diffusion prior (default: the shipped one for the data set)")
    p.add_argument("--inn", default=None, help="SING-INN network (default: the shipped one for the DeepJSCC)")
    p.add_argument("--max-psnr-loss", default=1.0, type=float,
                   help="PSNR a setting may lose to DeepJSCC at any SNR, in dB (default %(default)s)")
    p.add_argument("--batch", default="16", help="images per batch (default %(default)s)")
    p.add_argument("--seed", default="0", help="run seed (default %(default)s)")
    p.add_argument("--record", action="store_true",
                   help="write the choice into the DeepJSCC checkpoint's config.json (its 'sing' block)")
    p.add_argument("--out", required=True, help="output folder")


def _zetas(text):
    out = []
    for v in (t.strip() for t in str(text).split(",")):
        if not v:
            continue
        if v.lower() == "paper":
            out.append("paper")
            continue
        try:
            z = float(v)
        except ValueError:
            z = float("nan")
        if not (z == z and z >= 0 and z != float("inf")):
            raise UsageError(f"--zetas must be numbers >= 0 or 'paper', got {v!r}")
        out.append(z)
    return out


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
    operators = [o.strip() for o in args.operators.split(",") if o.strip()]
    if not operators:
        raise UsageError("--operators is empty")
    if not (args.max_psnr_loss >= 0):
        raise UsageError(f"--max-psnr-loss must be >= 0 dB, got {args.max_psnr_loss}")
    out = Path(args.out)
    from .sweep.command import _check_out

    _check_out(out)
    import torch

    from . import phy
    from .data import load_batch
    from .evaluation import run_cell, summarize, to_csv
    from .jscc.model import CHECKPOINTS, find_checkpoint
    from .provenance import code_version, write_atomic
    from .receiver import Receiver, make_operator
    from .receiver.prior import DiffusionPrior, find_prior

    try:
        phy.make_channel(args.channel)
    except (ValueError, TypeError) as e:
        raise UsageError(f"--channel: {str(e).splitlines()[0]}") from None
    jscc, k, rho, spec = ev._model(args)
    for o in operators:
        try:
            with torch.no_grad():
                make_operator(o)(torch.zeros(1, *jscc.config.image_size))
        except UsageError as e:
            raise UsageError(f"--operators {o}: {e}") from None
    inn = None
    if zetas:
        try:
            inn = args.inn or find_checkpoint(spec.name, spec.image_size, k, kind="inn")
        except UsageError as e:
            raise UsageError(f"{e}; or skip SING-INN with --zetas ''") from None
    folder = Path(args.jscc) if Path(args.jscc).is_dir() else CHECKPOINTS / args.jscc
    if args.record and not (folder / "config.json").is_file():
        raise UsageError(f"--record: no checkpoint folder for {args.jscc!r} to write into")
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

    zero = {f"sing-zero({o},{s})": (o, s) for o in operators for s in steps}
    receivers = {"deepjscc": Receiver(jscc, "deepjscc")}
    receivers |= {name: Receiver(jscc, "sing-zero", prior=prior, operator=o, steps=s) for name, (o, s) in zero.items()}
    rows = scan(receivers, "sing-zero")
    summary, by = table_of(rows)
    reference = {snr: v[0] for snr, v in by["deepjscc"].items()}
    best_zero, zero_ok = choose({name: by[name] for name in zero}, reference, args.max_psnr_loss)
    operator, n_steps = zero[best_zero]
    choice = {"operator": operator, "steps": n_steps}
    met = {"sing-zero": zero_ok}

    if zetas:
        inn_names = {f"sing-inn(zeta={z})": z for z in zetas}
        receivers = {"deepjscc": receivers["deepjscc"]}
        receivers |= {name: Receiver(jscc, "sing-inn", prior=prior, operator=operator, steps=n_steps, inn=inn,
                                     zeta=None if z == "paper" else z, guidance=args.guidance)
                      for name, z in inn_names.items()}
        inn_rows = [r for r in scan(receivers, "sing-inn") if r["method"] != "deepjscc"]
        rows += inn_rows
        summary, by = table_of(rows)
        best_inn, inn_ok = choose({name: by[name] for name in inn_names}, reference, args.max_psnr_loss)
        choice["zeta"] = inn_names[best_inn]
        met["sing-inn"] = inn_ok

    command = shlex.join(["singlink", "tune-sing", *sys.argv[2:]]) if sys.argv[1:2] == ["tune-sing"] else None
    record = {"operator": choice["operator"], "steps": choice["steps"], **({"zeta": choice["zeta"]} if "zeta" in choice else {}),
              "chosen_by": {"command": command, "rule": f"lowest mean LPIPS with PSNR within {args.max_psnr_loss:g} dB "
                            "of DeepJSCC at every SNR", "rule_met": met, "split": "val", "images": n, "snr_db": snrs,
                            "channel": args.channel, "seed": seed, "version": code_version()}}
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
    chosen = f"operator {choice['operator']}, {choice['steps']} steps" + (f", zeta {choice['zeta']}" if "zeta" in choice else "")
    lines += ["", f"**Chosen**: {chosen} ({verdict}).", ""]
    report = lines + ["```json", json.dumps({"sing": record, "config": {key: v for key, v in vars(args).items()
                                                                         if not key.startswith("_")}},
                                            indent=1, default=str), "```", ""]
    write_atomic(out / "rows.csv", to_csv(rows))
    write_atomic(out / "scan.csv", to_csv(summary))
    write_atomic(out / "scan.md", "\n".join(report))
    print("\n".join(lines))
    if args.record:
        raw = json.loads((folder / "config.json").read_text())
        raw["sing"] = record
        write_atomic(folder / "config.json", json.dumps(raw, indent=1))
        print(f"recorded in {folder / 'config.json'}")
    print(f"wrote {out}/scan.md, scan.csv, rows.csv")
    return 0
