r"""``singlink train-inn``: SING-INN's conditional INN (:mod:`.inn`) trained on (x, x_JSCC) pairs.

x_JSCC is made on the fly by a frozen DeepJSCC (the shipped one for ``--dataset``, ``--image-size``
and ``--rho``, or ``--jscc``; the images are those of the data set it was trained on)
through Sionna's AWGN channel: x_JSCC = decode(channel(encode(x, SNR)), SNR), with the SNR uniform
in ``--snr-range`` per image (or ``--fixed-snr``: CommIN's one INN per SNR). Loss (SING paper,
Eq. 16, as a mean over elements): :math:`\|c - \mathrm{coarse}(\hat x_\mathrm{JSCC})\|^2` where
:math:`(c, d) = INN(x, \mathrm{SNR})` and coarse is the Haar LL band; Adam.

``--inverse-weight W`` (default 0: the paper's loss alone) adds W times the mean squared error of
what SING-INN's guidance pulls towards (Algorithm 2, line 8) when the details are the original's:
:math:`\|INN^{-1}(\mathrm{coarse}(\hat x_\mathrm{JSCC}), d) - x\|^2`. Eq. 16 trains only the forward
map, and a lifting network's inverse can amplify the small error left in c: the face INN trained on
Eq. 16 alone, given DeepJSCC's coarse band and the original's own details, returns an image worse
than DeepJSCC's (``tools/sing_oracle.py --inn``; results/README.md, section 5). The term (the
backward loss of invertible rescaling networks) trains the inverse SING-INN actually uses. Both
terms are means over elements of orthonormal Haar coefficients or pixels, so W = 1 weighs them alike.

Validation is the same loss on fixed pairs: the first ``--val-images`` validation images, each
sent at every one of six SNRs evenly spread over the training range (-5, -3, ..., 5 dB for the
default range) through a seeded channel. The untrained INN (the plain Haar split, since its lifting
outputs start at zero) is the reference: its loss, :math:`\|\mathrm{LL}(x) - \mathrm{LL}(\hat x_\mathrm{JSCC})\|^2`,
is logged once.

Every random draw of step s (batch indices, SNRs, channel noise) is derived from (seed, s), so a
run resumed from its ``state.pt`` continues exactly as if it had not stopped.
"""
import json
import math
import time
from pathlib import Path

from ..errors import UsageError
from ..training import add_export_arguments, check_positive, parse_snr_range

SIZE_LIMIT = 10_000_000  # bytes: the most an exported (shipped) INN may take
VAL_POINTS = 6  # validation SNRs spread over the training range


def add_arguments(p):
    p.add_argument("--rho", default=None, help="bandwidth ratio of the shipped DeepJSCC to train for, 1/192, 1/48 or "
                   "1/6 (default 1/192, or that of --jscc)")
    p.add_argument("--dataset", default=None,
                   help="cifar10, celeba, kodak or a folder of images (default: what the DeepJSCC was trained on, else cifar10)")
    p.add_argument("--image-size", type=int, default=None, help="image side (default: the DeepJSCC's)")
    p.add_argument("--jscc", default=None, help="DeepJSCC checkpoint name or folder (default: the shipped one for --rho)")
    p.add_argument("--steps", type=int, default=3000, help="total optimiser steps (default %(default)s)")
    p.add_argument("--batch", type=int, default=32, help="batch size (default %(default)s)")
    p.add_argument("--lr", type=float, default=5e-5, help="Adam learning rate (default %(default)s)")
    p.add_argument("--lr-schedule", default="constant", choices=("constant", "cosine"),
                   help="cosine: decay to --lr-min over --steps (then --steps is fixed for the run), the way a "
                        "warm-started run settles; constant: --steps may grow on resume (default %(default)s)")
    p.add_argument("--lr-min", type=float, default=1e-6, help="learning rate at the end of the cosine (default %(default)s)")
    p.add_argument("--snr-range", default="-5,5", help="training SNR range in dB, MIN,MAX (default %(default)s)")
    p.add_argument("--fixed-snr", type=float, default=None, metavar="DB",
                   help="CommIN variant: train one INN for this SNR only (replaces --snr-range)")
    p.add_argument("--inverse-weight", type=float, default=0.0, metavar="W",
                   help="add W x the error of INN^-1(coarse(x_JSCC), d(x)) against x, the inverse SING-INN's guidance "
                        "uses (default 0: the paper's Eq. 16 alone)")
    p.add_argument("--hidden", type=int, default=32, help="feature channels of each PNet/UNet (default %(default)s)")
    p.add_argument("--val-every", type=int, default=500, help="validate and checkpoint every N steps (default %(default)s)")
    p.add_argument("--val-images", type=int, default=256, help="validation images, each at 6 SNRs (default %(default)s)")
    p.add_argument("--train-images", type=int, default=None, help="use only the first N training images (default all)")
    p.add_argument("--seed", type=int, default=0, help="run seed (default %(default)s)")
    p.add_argument("--data-root", default=None, help="folder holding the data sets (default: see singlink.data)")
    p.add_argument("--out", default=None, help="run folder (default runs/train-inn/<dataset tag>-rho<rho>)")
    add_export_arguments(p, "the INN (e.g. inn-celeba64-rho1_192)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def degradation_loss(inn, x, x_jscc, snr_db, inverse_weight: float = 0.0):
    """Eq. 16 as a mean over elements: how far the INN's coarse part of ``x`` is from the Haar LL
    band of the DeepJSCC output ``x_jscc`` (both (N, C, H, W) in [0, 1]) at SNRs ``snr_db``; plus, when
    ``inverse_weight`` > 0, that weight times the mean of :func:`inverse_error`."""
    import torch

    c, d = inn(x, snr_db)
    loss = torch.mean((c - inn.coarse(x_jscc)) ** 2)
    if inverse_weight:
        loss = loss + inverse_weight * torch.mean(_inverse_residual(inn, x, x_jscc, d, snr_db) ** 2)
    return loss


def _inverse_residual(inn, x, x_jscc, d, snr_db):
    """INN^{-1}(coarse(x_JSCC), d) - x, given ``x``'s details d."""
    return inn.inverse(inn.coarse(x_jscc), d, snr_db) - x


def inverse_error(inn, x, x_jscc, snr_db, d=None):
    """Per image, the mean squared error against ``x`` of INN^{-1}(coarse(x_JSCC), d(x)): SING-INN's
    guidance target (Algorithm 2, line 8) when the details are the original's (``d``, when the
    caller already has them)."""
    d = inn(x, snr_db)[1] if d is None else d
    return (_inverse_residual(inn, x, x_jscc, d, snr_db) ** 2).flatten(1).mean(1)


def validation_pairs(jscc, x, snrs, seed):
    """(x, x_JSCC, SNR) with every image of ``x`` sent at every SNR in ``snrs`` through a seeded
    AWGN channel; SNR-major order."""
    import torch

    from .. import phy
    from ..provenance import derive_seed

    channel = phy.as_torch(phy.AWGNChannel())
    xs, xj, ss = [], [], []
    with torch.no_grad():
        for snr in snrs:
            phy.set_seed(derive_seed(seed, "val", snr))
            y, _ = channel(jscc.encode(x, snr), snr)
            xs.append(x)
            xj.append(jscc.decode(y, snr))
            ss.append(torch.full((len(x),), float(snr)))
    return torch.cat(xs), torch.cat(xj), torch.cat(ss)


def validate(inn, pairs, batch=256):
    """Eq. 16 loss on ``pairs`` ((x, x_JSCC, SNR)) of ``inn``'s coarse part (an untrained INN: the
    plain Haar LL band, the reference): the overall mean and the mean per SNR; and ``inverse``, the
    mean of :func:`inverse_error`."""
    import torch

    x, x_jscc, snr = pairs
    per_image, inverse = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            sl = slice(i, i + batch)
            c, d = inn(x[sl], snr[sl])
            per_image.append(((c - inn.coarse(x_jscc[sl])) ** 2).flatten(1).mean(1))
            inverse.append(inverse_error(inn, x[sl], x_jscc[sl], snr[sl], d))
    per_image = torch.cat(per_image)
    return {"loss": float(per_image.mean()), "inverse": float(torch.cat(inverse).mean()),
            "per_snr": {f"{float(s):g}": float(per_image[snr == s].mean()) for s in torch.unique(snr)}}


def _command(args):
    """The ``singlink train-inn`` command line that reproduces this run."""
    parts = ["singlink train-inn", f"--jscc {args.jscc}" if args.jscc else f"--rho {args.rho or '1/192'}"]
    parts += [f"--dataset {args.dataset}"] if args.dataset else []
    parts += [f"--image-size {args.image_size}"] if args.image_size else []
    parts += [f"--steps {args.steps}", f"--batch {args.batch}", f"--lr {args.lr}"]
    parts += [f"--lr-schedule cosine --lr-min {args.lr_min}"] if args.lr_schedule == "cosine" else []
    parts += [f"--inverse-weight {args.inverse_weight}"] if args.inverse_weight else []
    parts += [f"--fixed-snr {args.fixed_snr}" if args.fixed_snr is not None else f"--snr-range {args.snr_range}",
              f"--hidden {args.hidden}", f"--val-every {args.val_every}", f"--val-images {args.val_images}",
              f"--seed {args.seed}"]
    if args.train_images:
        parts.append(f"--train-images {args.train_images}")
    if args.init:
        parts.append(f"--init {args.init}")
    if args.export:
        parts.append(f"--export {args.export}")
    return " ".join(parts)


def run(args):
    for name in ("steps", "batch", "val_every", "val_images", "hidden"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
    check_positive(args, "lr", "lr_min")
    if not (math.isfinite(args.inverse_weight) and args.inverse_weight >= 0):
        raise UsageError(f"--inverse-weight must be a finite number >= 0, got {args.inverse_weight}")
    snr_lo, snr_hi = (args.fixed_snr,) * 2 if args.fixed_snr is not None else parse_snr_range(args.snr_range)
    import numpy as np
    import torch

    from .. import phy
    from ..data import DatasetSpec
    from ..jscc.model import DeepJSCC, find_checkpoint
    from ..provenance import code_version, derive_seed, write_atomic
    from ..training import draw_step, export_folder, learning_rate, load_tensors, resume, save_state, warm_start
    from . import inn as inn_module
    from .inn import ConditionalINN

    if args.threads:
        torch.set_num_threads(args.threads)
    rho = args.rho if args.rho is not None or args.jscc else "1/192"
    jscc = DeepJSCC.from_pretrained(args.jscc).requires_grad_(False) if args.jscc else None
    spec = DatasetSpec.parse(args.dataset or (jscc.config.dataset if jscc else "cifar10"),
                             args.image_size or (jscc.config.image_size[-1] if jscc else None), args.data_root)
    if spec.image_size is None:
        raise UsageError(f"--dataset {args.dataset}: give --image-size")
    size = (3, spec.image_size, spec.image_size)
    k_rho = None
    if rho is not None:
        try:
            k_rho = phy.num_channel_symbols(rho, size)
        except ValueError as e:
            raise UsageError(str(e)) from None
    jscc_name = args.jscc or find_checkpoint(spec.name, spec.image_size, k_rho)
    if jscc is None:
        jscc = DeepJSCC.from_pretrained(jscc_name).requires_grad_(False)
    spec.check_model(jscc.config.image_size, f"the DeepJSCC {jscc_name}")
    k = jscc.config.k
    if k_rho is not None and k != k_rho:
        raise UsageError(f"--jscc {args.jscc} sends k={k} symbols per image, not the k={k_rho} of --rho {args.rho}; "
                         f"drop --rho or pick a matching checkpoint")
    from fractions import Fraction

    dest = export_folder(args.export, inn_module.CHECKPOINTS, args.overwrite) if args.export else None
    record = ({"name": jscc_name, "k": k, "rho": str(Fraction(k, math.prod(jscc.config.image_size)))} | spec.to_dict()
              | {"sha256": jscc.fingerprint})
    torch.manual_seed(derive_seed(args.seed, "init"))
    inn = ConditionalINN(hidden=args.hidden, fixed_snr=args.fixed_snr, jscc=record, snr_range=(snr_lo, snr_hi))
    if args.init:
        warm_start(inn, args.init, ConditionalINN.from_pretrained)
    n_params = sum(p.numel() for p in inn.parameters())
    if args.export and 4 * n_params > SIZE_LIMIT:
        raise UsageError(f"--export: an INN with --hidden {args.hidden} takes {4 * n_params / 1e6:.1f} MB, over the "
                         f"{SIZE_LIMIT / 1e6:.0f} MB limit of shipped INNs; lower --hidden")
    opt = torch.optim.Adam(inn.parameters(), lr=args.lr)

    rho_tag = record["rho"].replace("/", "_")
    out = Path(args.out or f"runs/train-inn/{spec.tag}-rho{rho_tag}")
    out.mkdir(parents=True, exist_ok=True)
    hparams = {key: getattr(args, key) for key in ("jscc", "rho", "batch", "lr", "snr_range", "fixed_snr", "hidden",
                                                  "val_images", "seed", "train_images")} | spec.to_dict()
    if args.lr_schedule == "cosine":  # absent for a constant rate, so runs saved before this option still resume
        hparams |= {"lr_schedule": "cosine", "lr_min": args.lr_min, "schedule_steps": args.steps}
    if args.inverse_weight:  # likewise absent at 0
        hparams["inverse_weight"] = args.inverse_weight
    resumed, step, seconds, history = resume(out, hparams, args.steps, model=inn, optimizer=opt)
    x_train, x_val = load_tensors(spec, args.train_images, args.val_images)
    val_snrs = sorted({float(s) for s in np.linspace(snr_lo, snr_hi, VAL_POINTS)})
    pairs = validation_pairs(jscc, x_val, val_snrs, args.seed)
    with torch.random.fork_rng():  # its (unused) random weights leave the run's draws alone
        untrained = ConditionalINN(hidden=args.hidden, fixed_snr=args.fixed_snr, snr_range=(snr_lo, snr_hi))
    reference = validate(untrained, pairs)  # zero lifting outputs: the plain Haar split
    print(f"{n_params / 1e3:.0f} k parameters; untrained (plain Haar) validation loss {reference['loss']:.5f}")

    log = open(out / "log.jsonl", "a" if resumed else "w")
    if not resumed:
        log.write(json.dumps({"step": 0, "val_reference": reference}) + "\n")

    def checkpoint():
        save_state(out, {"model": inn.state_dict(), "optimizer": opt.state_dict(), "step": step, "seconds": seconds,
                         "history": history, "hparams": hparams, "n_params": n_params})

    from tqdm import tqdm

    channel = phy.as_torch(phy.AWGNChannel())
    bar = tqdm(total=args.steps, initial=step, desc=f"train-inn k={k}", unit="step", dynamic_ncols=True)
    inn.train()
    while step < args.steps:
        t_step = time.perf_counter()
        x, snr = draw_step(x_train, args.batch, snr_lo, snr_hi, args.seed, step)
        with torch.no_grad():
            y, _ = channel(jscc.encode(x, snr), snr)
            x_jscc = jscc.decode(y, snr)
        loss = degradation_loss(inn, x, x_jscc, snr, args.inverse_weight)
        if not torch.isfinite(loss):
            raise RuntimeError(f"loss became {loss.item()} at step {step}; lower --lr")
        lr = learning_rate(step, lr=args.lr, steps=args.steps, cosine=args.lr_schedule == "cosine", lr_min=args.lr_min)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        seconds += time.perf_counter() - t_step
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.5f}")
        log.write(json.dumps({"step": step, "loss": loss.item(), "lr": lr}) + "\n")
        if step % args.val_every == 0 or step == args.steps:
            row = {"step": step, "seconds": seconds, "val": validate(inn, pairs)}
            history.append(row)
            log.write(json.dumps(row) + "\n")
            log.flush()
            bar.write(f"step {step}: validation loss {row['val']['loss']:.5f} (plain Haar {reference['loss']:.5f}), "
                      f"inverse error {row['val']['inverse']:.5f} (plain Haar {reference['inverse']:.5f})")
            checkpoint()
    bar.close()
    log.close()

    final = {"config": hparams | {"steps": step, "n_params": n_params, "jscc": record, "snr_range": [snr_lo, snr_hi],
                                  "data": f"{spec.tag} train split", "train_images": len(x_train)},
             "command": _command(args), "version": code_version(), "seconds": seconds,
             "hardware": f"cpu, {torch.get_num_threads()} thread(s)",
             "validation": history[-1]["val"] if history else {}, "validation_reference": reference,
             "validation_snrs": val_snrs, "init": args.init,
             "validation_curve": [[h["step"], h["val"]["loss"]] for h in history]}
    inn.eval().save_pretrained(out / "inn", extra=final)
    write_atomic(out / "summary.json", json.dumps(final, indent=1))
    print(f"wrote {out / 'inn'}")
    if dest is not None:
        inn.save_pretrained(dest, extra=final)
        size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
        write_atomic(dest / "MODEL_CARD.md", model_card(dest.name, final, size))
        print(f"exported {dest} ({size / 1e6:.1f} MB)")
    return 0


def _curve_text(final):
    """Model-card lines: the warm start, and how the validation loss ended (training.curve_text)."""
    from ..training import curve_text

    lines = f"- Warm-started from `{final['init']}` (fresh optimiser).\n" if final.get("init") else ""
    return lines + curve_text(final.get("validation_curve") or [])


def model_card(name, final, size):
    """The exported INN's MODEL_CARD.md."""
    c, v, ref = final["config"], final["validation"], final["validation_reference"]
    rows = "\n".join(f"| {s} | {v['per_snr'][s]:.5f} | {ref['per_snr'][s]:.5f} |" for s in ref["per_snr"]) if v else ""
    overall = f"| all | {v['loss']:.5f} | {ref['loss']:.5f} |" if v else "| - | - | - |"
    training = (f"SNR fixed at {c['fixed_snr']:g} dB (CommIN variant: the conditioning input is ignored)"
                if c["fixed_snr"] is not None else f"SNR uniform in [{c['snr_range'][0]:g}, {c['snr_range'][1]:g}] dB per image")
    jpeg = "; the shared CIFAR-10 is a JPEG copy, not pixel-exact" if c.get("dataset", "cifar10") == "cifar10" else ""
    inverse_term = (f", plus {c['inverse_weight']:g} x the mean squared error of INN^-1(coarse(x_JSCC), d(x)) against x "
                    "(`--inverse-weight`: the inverse SING-INN's guidance uses)" if c.get("inverse_weight") else "")
    inverse = (f"\nInverse error (mean squared error of INN^-1(coarse(x_JSCC), d(x)) against x: SING-INN's guidance target "
               f"when the details are the original's): trained {v['inverse']:.5f}, plain Haar {ref['inverse']:.5f}.\n"
               if v and "inverse" in v and "inverse" in ref else "")
    return f"""# {name}

Conditional INN of SING-INN (SING paper, Section IV-C, Fig. 5): Haar split, 4 SNR-conditioned
PNet/UNet lifting pairs, J = 2 CondBlocks each, {c['hidden']} hidden channels ({c['n_params'] / 1e3:.0f} k parameters,
{size / 1e6:.1f} MB). Trained for the DeepJSCC `{c['jscc']['name']}` (k = {c['jscc']['k']} symbols per image,
rho = {c['jscc']['rho']}); SING-INN refuses it for a DeepJSCC with another k. Load with
`singlink.receiver.inn.ConditionalINN.from_pretrained("{name}")`, or restore with
`Receiver(jscc, "sing-inn", inn="{name}")`.

- Command: `{final['command']}`
- Data: the `{c.get('dataset', 'cifar10')}` training split (`singlink.data.DatasetSpec`{jpeg}), {c['train_images']:,} images; x_JSCC made on the fly by the frozen DeepJSCC through
  Sionna's AWGN channel, {training}.
- Loss: Eq. 16, mean squared distance between the INN's coarse part c of x and the Haar LL band of
  x_JSCC{inverse_term}; Adam {c['lr']}{' with a cosine decay to ' + format(c['lr_min'], 'g') if c.get('lr_schedule') == 'cosine' else ''}, batch {c['batch']}, {c['steps']:,} steps, seed {c['seed']}.
- Wall time: {final['seconds'] / 60:.1f} min of training on {final['hardware']} (that of the last session, if resumed).
{_curve_text(final)}- Code: {final['version'].get('git_commit', 'unknown')}{' (dirty tree)' if final['version'].get('git_dirty') else ''}

Validation loss (Eq. 16, {c['val_images']} held-out validation images at each SNR, seeded channel) of the
trained INN and of the untrained reference (the plain Haar split: LL(x) vs LL(x_JSCC)):

| SNR [dB] | trained INN | plain Haar |
| --- | --- | --- |
{rows}
{overall}
{inverse}"""
