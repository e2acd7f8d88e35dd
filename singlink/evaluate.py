"""``singlink evaluate``: DeepJSCC and SING restorations of images (``--dataset``, CIFAR-10 by
default) through the Sionna channel, per image, with means and 95% confidence intervals.

Writes into ``--out``: ``rows.csv`` (one row per method, SNR and image), ``summary.csv``,
``summary.md`` (table plus the config, seed and code version) and ``examples.png``. Lists in
``--operators`` and ``--steps`` evaluate every SING-Zero variant side by side (for choosing A and
the step count on validation images: ``--split val``).
"""
import io
import json
import math
from fractions import Fraction
from pathlib import Path

from .errors import UsageError


def add_arguments(p):
    p.add_argument("--rho", default=None, help="bandwidth ratio of the shipped DeepJSCC checkpoint (default 1/192; "
                   "with --jscc it is taken from the checkpoint, and a contradicting --rho is refused)")
    p.add_argument("--jscc", default=None, help="DeepJSCC checkpoint name or folder (default: the shipped one for "
                   "--dataset, --image-size and --rho)")
    p.add_argument("--dataset", default=None,
                   help="cifar10, celeba, kodak or a folder of images (default: the --jscc checkpoint's, else cifar10)")
    p.add_argument("--image-size", default=None, type=int, help="image side (default: the data set's or the checkpoint's)")
    p.add_argument("--methods", default="deepjscc,sing-zero", help="comma list of restoration methods (default %(default)s)")
    p.add_argument("--snr", default="-5,-1,3", help="comma list of SNRs in dB, 'inf' for a noiseless channel (default %(default)s)")
    p.add_argument("--channel", default="awgn", help="awgn, rayleigh-block or rayleigh-fast (default %(default)s)")
    p.add_argument("--images", default="256", help="number of images (default %(default)s)")
    p.add_argument("--split", default="test", choices=["test", "val"], help="data split (default %(default)s)")
    p.add_argument("--operators", default=None, help="SING operator(s) A, comma list (default: the one chosen for the "
                   "DeepJSCC by `singlink tune-sing`, else pool4)")
    p.add_argument("--steps", default=None, help="SING step count(s), comma list (default: the DeepJSCC's chosen one, "
                   "else 100)")
    p.add_argument("--inn", default=None, help="SING-INN network name or folder (default: the shipped one for the DeepJSCC's data and k)")
    p.add_argument("--zeta", default=None, help="SING-INN guidance step, or 'paper' for the paper's SNR schedule "
                   "(default: the DeepJSCC's chosen one, else 'paper')")
    p.add_argument("--guidance", default="norm", choices=("norm", "squared"),
                   help="SING-INN step: gradient of each image's residual norm, or of its square (Algorithm 2, line 8; "
                        "default %(default)s)")
    p.add_argument("--prior", default=None, help="diffusion prior name, folder or hub id (default: the shipped prior for the data set)")
    p.add_argument("--batch", default="64", help="images per batch (default %(default)s)")
    p.add_argument("--seed", default="0", help="run seed (default %(default)s)")
    p.add_argument("--data-root", default=None, help="folder holding the data sets (default: see singlink.data)")
    p.add_argument("--out", required=True, help="output folder")


def _floats(text, what):
    try:
        vals = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{what} must be a comma list of numbers, got {text!r}") from None
    if not vals:
        raise UsageError(f"{what} is empty")
    return vals


SNR_LIMIT_DB = 100.0


def _snrs(text):
    vals = _floats(text, "--snr")
    for v in vals:
        if math.isnan(v) or v == -math.inf or (math.isfinite(v) and abs(v) > SNR_LIMIT_DB):
            raise UsageError(f"--snr values must be numbers in [-{SNR_LIMIT_DB:g}, {SNR_LIMIT_DB:g}] dB or inf "
                             f"(a noiseless channel), got {v:g} in {text!r}")
    return list(dict.fromkeys(vals))


def _ints(text, what, lo=1):
    out = []
    for v in str(text).split(","):
        if not v.strip():
            continue
        try:
            x = int(v.strip())
        except ValueError:
            raise UsageError(f"{what} must be {'a comma list of integers' if ',' in str(text) else 'an integer'}, "
                             f"got {text!r}") from None
        if x < lo:
            raise UsageError(f"{what} must be >= {lo}, got {x}")
        out.append(x)
    if not out:
        raise UsageError(f"{what} is empty")
    return out


def _zeta(text):
    if text is None or str(text).lower() in ("none", "paper"):
        return None
    try:
        z = float(text)
    except ValueError:
        z = math.nan
    if not (math.isfinite(z) and z >= 0):
        raise UsageError(f"--zeta must be a finite number >= 0 (or 'paper'), got {text!r}")
    return z


def _model(args):
    """The DeepJSCC to evaluate, its k, the rho it implies and the data set spec; a --rho that
    contradicts --jscc, or a data set of another image size, is refused."""
    from . import phy
    from .data import DatasetSpec
    from .jscc.model import DeepJSCC, find_checkpoint

    def k_of(rho, shape):
        try:
            return phy.num_channel_symbols(rho, shape)
        except (ValueError, ZeroDivisionError) as e:
            raise UsageError(f"--rho {rho!r}: {e}") from None

    if args.jscc is None:
        spec = DatasetSpec.parse(args.dataset or "cifar10", args.image_size, args.data_root)
        if spec.image_size is None:
            raise UsageError(f"--dataset {args.dataset}: give --image-size")
        rho = args.rho or "1/192"
        k = k_of(rho, (3, spec.image_size, spec.image_size))
        try:
            args.jscc = find_checkpoint(spec.name, spec.image_size, k)
            jscc = DeepJSCC.from_pretrained(args.jscc)
        except UsageError as e:
            raise UsageError(f"--rho {rho}: {e}") from None
    else:
        try:
            jscc = DeepJSCC.from_pretrained(args.jscc)
        except UsageError as e:
            raise UsageError(f"--jscc {args.jscc}: {e}") from None
        spec = DatasetSpec.parse(args.dataset or jscc.config.dataset, args.image_size or jscc.config.image_size[-1],
                                 args.data_root)
    spec.check_model(jscc.config.image_size, f"the DeepJSCC {args.jscc}")
    shape = tuple(jscc.config.image_size)
    k = jscc.config.k
    rho = str(Fraction(k, math.prod(shape)))
    if args.rho is not None and k_of(args.rho, shape) != k:
        raise UsageError(f"--rho {args.rho} means k = {k_of(args.rho, shape)} symbols per image but the checkpoint "
                         f"{args.jscc} sends k = {k} (rho {rho}); drop --rho or pass --rho {rho}")
    return jscc, k, rho, spec


def run(args):
    # every argument is checked before the models and data are loaded
    snrs = _snrs(args.snr)
    steps = [None] if args.steps is None else _ints(args.steps, "--steps")
    images = _ints(args.images, "--images")[0]
    batch = _ints(args.batch, "--batch")[0]
    seed = _ints(args.seed, "--seed", lo=0)[0]
    zeta = {} if args.zeta is None else {"zeta": _zeta(args.zeta)}
    operators = [None] if args.operators is None else [o.strip() for o in args.operators.split(",") if o.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise UsageError("--methods is empty")
    if not operators:
        raise UsageError("--operators is empty")
    out = Path(args.out)
    from .sweep.command import _check_out

    _check_out(out)

    from . import phy
    from .data import load_batch
    from .evaluation import paired, run_cell, summarize, to_csv
    from .provenance import code_version, write_atomic
    from .receiver import Receiver, available_methods, make_operator
    from .receiver.prior import DiffusionPrior

    unknown = [m for m in methods if m not in available_methods()]
    if unknown:
        raise UsageError(f"--methods: unknown method(s) {', '.join(unknown)}; available: {', '.join(available_methods())}")
    import torch

    try:
        phy.make_channel(args.channel)
    except (ValueError, TypeError) as e:
        raise UsageError(f"--channel: {str(e).splitlines()[0]}") from None
    jscc, k, rho, spec = _model(args)
    for o in filter(None, operators):
        try:
            with torch.no_grad():
                make_operator(o)(torch.zeros(1, *jscc.config.image_size))
        except UsageError as e:
            raise UsageError(f"--operators {o}: {e}") from None
    try:
        data = spec.dataset(args.split)
        n = min(images, len(data))
        x, _ = load_batch(data, range(n))
    except UsageError as e:
        raise UsageError(f"--data-root {args.data_root or '(default)'}: {e}") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read the {args.split} images (--data-root {args.data_root}): "
                         f"{' '.join(str(e).split())[:300]}") from None
    if tuple(x.shape[1:]) != tuple(jscc.config.image_size):
        raise UsageError(f"the {args.split} images are {'x'.join(map(str, x.shape[1:]))} but the DeepJSCC takes "
                         f"{'x'.join(map(str, jscc.config.image_size))}")
    ids = [f"{args.split}/{i}" for i in range(n)]

    prior = None
    receivers = {}
    for m in methods:
        if m == "deepjscc":
            receivers[m] = Receiver(jscc, m)
            continue
        if prior is None:
            from .receiver.prior import find_prior

            prior = DiffusionPrior.from_pretrained(args.prior or find_prior(spec.name, spec.image_size))
        for o in operators:
            for s in steps:
                name = m if len(operators) == len(steps) == 1 else f"{m}({o or 'chosen'},{s or 'chosen'})"
                options = {key: v for key, v in (("operator", o), ("steps", s)) if v is not None}
                if m == "dps":  # no operator: it models the codec itself
                    options.pop("operator", None)
                if m == "sing-inn":
                    options |= {"inn": args.inn, "guidance": args.guidance} | zeta
                receivers[name] = Receiver(jscc, m, prior=prior, **options)
    out.mkdir(parents=True, exist_ok=True)

    from tqdm import tqdm

    rows = []
    for snr in tqdm(snrs, desc="evaluate", unit="snr"):
        rows += run_cell(jscc, receivers, x, ids, snr, args.channel, seed=seed, batch=batch, vgg=True)
    summary = summarize(rows)
    differences = paired(rows)

    config = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    table = ["| method | SNR [dB] | n | PSNR [dB] | LPIPS | LPIPS-VGG | MS-SSIM |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in summary:
        table.append(f"| {r['method']} | {r['snr_db']:g} | {r['n']} | {r['psnr_mean']:.2f} ± {r['psnr_ci95']:.2f} | "
                     f"{r['lpips_mean']:.4f} ± {r['lpips_ci95']:.4f} | {r['lpips_vgg_mean']:.4f} ± "
                     f"{r['lpips_vgg_ci95']:.4f} | {r['ms_ssim_mean']:.4f} ± {r['ms_ssim_ci95']:.4f} |")
    if differences:
        table += ["", "Paired with DeepJSCC (method - DeepJSCC on the same images and channel draws, mean ± 95% CI):",
                  "", "| method | SNR [dB] | n | PSNR [dB] | LPIPS | LPIPS-VGG |", "| --- | --- | --- | --- | --- | --- |"]
        for r in differences:
            table.append(f"| {r['method']} | {r['snr_db']:g} | {r['n']} | {r['psnr_diff']:+.2f} ± {r['psnr_diff_ci95']:.2f} | "
                         f"{r['lpips_diff']:+.4f} ± {r['lpips_diff_ci95']:.4f} | {r['lpips_vgg_diff']:+.4f} ± "
                         f"{r['lpips_vgg_diff_ci95']:.4f} |")
    data_note = " (JPEG copy, not pixel-exact CIFAR)" if spec.name == "cifar10" else ""
    md = "\n".join(["# singlink evaluate", "", f"k = {k} (rho = {rho}), channel {args.channel}, {n} {spec.tag} "
                    f"{args.split} images{data_note}; mean ± 95% CI over images.", "",
                    *table, "", "```json", json.dumps({"config": config, "seed": seed, "version": code_version(), "k": k,
                                                       "rho": rho, "dataset": spec.to_dict(),
                                                       "receivers": {name: rx.options for name, rx in receivers.items()},
                                                       "jscc": {"name": args.jscc, "config": jscc.config.__dict__}},
                                                      indent=1, default=str),
                    "```", ""])
    write_atomic(out / "rows.csv", to_csv(rows))
    write_atomic(out / "summary.csv", to_csv(summary))
    if differences:
        write_atomic(out / "paired.csv", to_csv(differences))
    write_atomic(out / "summary.md", md)
    _examples(jscc, receivers, x[:6], snrs, seed, args.channel, out / "examples.png", write_atomic)
    print("\n".join(table))
    print(f"wrote {out}/summary.md, summary.csv, rows.csv, examples.png")
    return 0


def _examples(jscc, receivers, x, snrs, seed, channel, path, write_atomic):
    """A PNG grid: originals in the first row, then one row per (method, SNR), each from its own
    seeded channel draw (labelled at the left)."""
    import numpy as np
    import torch
    from PIL import Image

    from . import phy
    from .evaluation import model_snr, receive
    from .provenance import derive_seed

    rows = [x]
    labels = ["original"]
    for snr in snrs:
        phy.set_seed(derive_seed(seed, "examples", snr))
        with torch.no_grad():
            y, h = phy.as_torch(phy.make_channel(channel, power=jscc.config.power))(jscc.encode(x, model_snr(snr)),
                                                                                   float(snr))
        for name, rx in receivers.items():
            rows.append(rx.reconstruct(receive(rx, y, h, snr, channel), seed=derive_seed(seed, "examples", name, snr)))
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
