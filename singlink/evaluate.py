"""``singlink evaluate``: DeepJSCC and SING restorations of CIFAR-10 images through the Sionna
channel, per image, with means and 95% confidence intervals.

Writes into ``--out``: ``rows.csv`` (one row per method, SNR and image), ``summary.csv``,
``summary.md`` (table plus the config, seed and code version) and ``examples.png``. Lists in
``--operators`` and ``--steps`` evaluate every SING-Zero variant side by side (for choosing A and
the step count on validation images: ``--split val``).
"""
import csv
import io
import json
from pathlib import Path

from .errors import UsageError


def add_arguments(p):
    p.add_argument("--rho", default="1/192", help="bandwidth ratio of the shipped DeepJSCC checkpoint (default %(default)s)")
    p.add_argument("--jscc", default=None, help="DeepJSCC checkpoint name or folder (default: the shipped one for --rho)")
    p.add_argument("--methods", default="deepjscc,sing-zero", help="comma list of restoration methods (default %(default)s)")
    p.add_argument("--snr", default="-5,-1,3", help="comma list of SNRs in dB (default %(default)s)")
    p.add_argument("--channel", default="awgn", help="awgn, rayleigh-block or rayleigh-fast (default %(default)s)")
    p.add_argument("--images", type=int, default=256, help="number of images (default %(default)s)")
    p.add_argument("--split", default="test", choices=["test", "val"], help="CIFAR-10 split (default %(default)s)")
    p.add_argument("--operators", default="pool4", help="SING-Zero operator(s) A, comma list (default %(default)s)")
    p.add_argument("--steps", default="100", help="SING-Zero step count(s), comma list (default %(default)s)")
    p.add_argument("--inn", default=None, help="SING-INN network name or folder (default: the shipped one for --rho)")
    p.add_argument("--zeta", type=float, default=None, help="SING-INN guidance step (default: the paper's SNR schedule)")
    p.add_argument("--prior", default=None, help="diffusion prior name, folder or hub id (default: the shipped prior)")
    p.add_argument("--batch", type=int, default=64, help="images per batch (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="run seed (default %(default)s)")
    p.add_argument("--data-root", default=None, help="folder holding cifar10/ (default: see singlink.data)")
    p.add_argument("--out", required=True, help="output folder")


def _floats(text, what):
    try:
        vals = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{what} must be a comma list of numbers, got {text!r}") from None
    if not vals:
        raise UsageError(f"{what} is empty")
    return vals


def run(args):
    snrs = _floats(args.snr, "--snr")
    steps = [int(s) for s in _floats(args.steps, "--steps")]
    operators = [o.strip() for o in args.operators.split(",") if o.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.images < 1:
        raise UsageError("--images must be >= 1")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create --out {out}: {e.strerror}") from None

    from . import phy
    from .data import DatasetNotFoundError, cifar10_splits, load_batch
    from .evaluation import run_cell, summarize
    from .jscc.model import DeepJSCC
    from .provenance import code_version, write_atomic
    from .receiver import Receiver, available_methods, make_operator
    from .receiver.prior import DiffusionPrior

    unknown = [m for m in methods if m not in available_methods()]
    if unknown:
        raise UsageError(f"unknown method(s) {', '.join(unknown)}; available: {', '.join(available_methods())}")
    for o in operators:
        make_operator(o)
    try:
        k = phy.num_channel_symbols(args.rho, (3, 32, 32))
    except ValueError as e:
        raise UsageError(str(e)) from None
    jscc = DeepJSCC.from_pretrained(args.jscc or f"deepjscc-cifar10-rho1_{round(3072 / k)}")
    try:
        splits = cifar10_splits(args.data_root)
    except DatasetNotFoundError as e:
        raise UsageError(str(e)) from None
    data = splits[args.split]
    n = min(args.images, len(data))
    x, _ = load_batch(data, range(n))
    ids = [f"{args.split}/{i}" for i in range(n)]

    prior = None
    receivers = {}
    for m in methods:
        if m == "deepjscc":
            receivers[m] = Receiver(jscc, m)
            continue
        if prior is None:
            from .receiver.plugin import DEFAULT_PRIOR

            prior = DiffusionPrior.from_pretrained(args.prior or DEFAULT_PRIOR)
        for o in operators:
            for s in steps:
                name = m if len(operators) == len(steps) == 1 else f"{m}({o},{s})"
                extra = {"inn": args.inn or f"inn-cifar10-rho1_{round(3072 / k)}", "zeta": args.zeta} if m == "sing-inn" else {}
                receivers[name] = Receiver(jscc, m, prior=prior, operator=o, steps=s, **extra)

    from tqdm import tqdm

    rows = []
    for snr in tqdm(snrs, desc="evaluate", unit="snr"):
        rows += run_cell(jscc, receivers, x, ids, snr, args.channel, seed=args.seed, batch=args.batch)
    summary = summarize(rows)

    def to_csv(records):
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(records[0]))
        w.writeheader()
        w.writerows(records)
        return buf.getvalue()

    config = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    table = ["| method | SNR [dB] | n | PSNR [dB] | LPIPS | MS-SSIM |", "| --- | --- | --- | --- | --- | --- |"]
    for r in summary:
        table.append(f"| {r['method']} | {r['snr_db']:g} | {r['n']} | {r['psnr_mean']:.2f} ± {r['psnr_ci95']:.2f} | "
                     f"{r['lpips_mean']:.4f} ± {r['lpips_ci95']:.4f} | {r['ms_ssim_mean']:.4f} ± {r['ms_ssim_ci95']:.4f} |")
    md = "\n".join(["# singlink evaluate", "", f"k = {k} (rho = {args.rho}), channel {args.channel}, {n} CIFAR-10 "
                    f"{args.split} images (JPEG copy, not pixel-exact CIFAR); mean ± 95% CI over images.", "",
                    *table, "", "```json", json.dumps({"config": config, "seed": args.seed, "version": code_version(),
                                                       "jscc": args.jscc or jscc.config.__dict__}, indent=1, default=str),
                    "```", ""])
    write_atomic(out / "rows.csv", to_csv(rows))
    write_atomic(out / "summary.csv", to_csv(summary))
    write_atomic(out / "summary.md", md)
    _examples(jscc, receivers, x[:6], snrs, args, out / "examples.png", write_atomic)
    print("\n".join(table))
    print(f"wrote {out}/summary.md, summary.csv, rows.csv, examples.png")
    return 0


def _examples(jscc, receivers, x, snrs, args, path, write_atomic):
    """A PNG grid: originals in the first row, then one row per (method, SNR), each from its own
    seeded channel draw (labelled at the left)."""
    import numpy as np
    import torch
    from PIL import Image

    from . import phy
    from .provenance import derive_seed

    rows = [x]
    labels = ["original"]
    for snr in snrs:
        phy.set_seed(derive_seed(args.seed, "examples", snr))
        with torch.no_grad():
            y, _ = phy.TFModule(phy.make_channel(args.channel))(jscc.encode(x, snr), float(snr))
        for name, rx in receivers.items():
            rows.append(rx.restore(rx.decode(y, snr), snr, seed=derive_seed(args.seed, "examples", name, snr)))
            labels.append(f"{name} {snr:g} dB")
    grid = torch.cat([torch.cat(list(r), dim=2) for r in rows], dim=1)  # (3, rows*H, cols*W)
    img = Image.fromarray((grid.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8))
    img = img.resize((img.width * 3, img.height * 3), Image.NEAREST)
    from PIL import ImageDraw

    canvas = Image.new("RGB", (img.width + 260, img.height), "white")
    canvas.paste(img, (260, 0))
    draw = ImageDraw.Draw(canvas)
    h = img.height // len(rows)
    for i, label in enumerate(labels):
        draw.text((6, i * h + h // 2 - 6), label, fill="black")
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    write_atomic(path, buf.getvalue())
