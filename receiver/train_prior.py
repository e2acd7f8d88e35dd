"""``singlink train-prior``: the DDPM prior of the SING receiver, trained on any data set
(``--dataset cifar10`` at 32x32, ``--dataset celeba`` faces at 64x64, a folder of images).

Loss (Ho et al. 2020): MSE between the noise added by ``DDPMScheduler.add_noise`` at a timestep
drawn uniformly from [0, T-1] and the UNet's prediction of it, per image weighted by Min-SNR-gamma
(Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy") when
``--min-snr-gamma`` > 0: w_t = min(SNR_t, gamma) / SNR_t with SNR_t = abar_t / (1 - abar_t), which
stops the low-noise steps (large SNR_t, easy) from dominating the gradient and converges faster;
0 gives the plain "simple" loss. Images are random horizontal flips of the training split, in
[-1, 1]. Adam or AdamW with a linear learning-rate warm-up, then a constant rate or, from
``--decay-from`` on, a cosine decay to ``--lr-min`` at ``--steps`` (the anneal that lets the
held-out loss settle at the end of a long constant-rate run; a run stopped at or before that
step may take the decay on when resumed), gradient clipping, and an exponential
moving average (EMA) of the
weights whose decay ramps up as ``min(decay, (1 + n) / (10 + n))`` after n updates (the warm-up
of diffusers' ``EMAModel``). The EMA weights are the prior that gets exported.

Every random draw of step s (batch indices, flips, timesteps, noise, and torch's global RNG
for dropout) is derived from (seed, s) and made on the CPU, so a run resumed from its
``state.pt`` continues exactly as if it had not stopped. Validation is the denoising loss of
the raw and the EMA weights on fixed validation images with fixed (t, noise) draws, the same
for every run, so runs compare.
"""
import json
import math
import time
from pathlib import Path

from ..errors import UsageError
from ..training import add_data_arguments, add_export_arguments, check_positive

SIZE_LIMIT = 25_000_000  # bytes: the most an exported (shipped) prior may take
VAL_SEED = 20200619  # fixed (t, noise) draws of validation, shared by all runs


def add_arguments(p):
    p.add_argument("--preset", default="small", choices=("tiny", "small", "small64", "base"),
                   help="UNet size: tiny (tests), small (1.1 M at 32x32, CPU), small64 (3.0 M, faces at 64x64, CPU), "
                        "base (35.7 M, GPU) (default %(default)s)")
    p.add_argument("--steps", type=int, default=20000, help="total optimiser steps (default %(default)s)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default %(default)s)")
    p.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate after warm-up (default %(default)s)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay; 0: Adam (default %(default)s)")
    p.add_argument("--min-snr-gamma", type=float, default=0.0,
                   help="Min-SNR-gamma loss weighting (5 is the paper's choice); 0: plain MSE (default %(default)s)")
    p.add_argument("--warmup", type=int, default=500, help="linear learning-rate warm-up steps (default %(default)s)")
    p.add_argument("--decay-from", type=int, default=None,
                   help="from this step, a cosine decay of the learning rate to --lr-min at --steps (then --steps is "
                        "fixed for the run); default: constant after warm-up")
    p.add_argument("--lr-min", type=float, default=1e-5,
                   help="learning rate at --steps with --decay-from (default %(default)s)")
    p.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradient norm to this; 0: off (default %(default)s)")
    p.add_argument("--ema-decay", type=float, default=0.999, help="EMA decay of the exported weights (default %(default)s)")
    p.add_argument("--val-every", type=int, default=1000, help="validate and checkpoint every N steps (default %(default)s)")
    p.add_argument("--val-images", type=int, default=512, help="validation images (default %(default)s)")
    p.add_argument("--train-images", type=int, default=None, help="use only the first N training images (default all)")
    p.add_argument("--seed", type=int, default=0, help="run seed (default %(default)s)")
    add_data_arguments(p)
    p.add_argument("--out", default=None, help="run folder (default runs/train-prior/<dataset tag>-<preset>)")
    add_export_arguments(p, "the EMA weights (float16) and samples")
    p.add_argument("--samples", type=int, default=64, help="samples in the exported model card's grid (default %(default)s)")
    p.add_argument("--sample-steps", type=int, default=100, help="DDPM steps per sample for the grid (default %(default)s)")
    p.add_argument("--device", default=None, help="torch device (default cuda when available, else cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


BANDS = {"low": (0, 100), "mid": (100, 500), "high": (500, 1000)}  # timestep bands: low / mid / high noise


def per_image_loss(unet, scheduler, x0, t, noise, batch=128):
    """Epsilon-prediction MSE of ``unet`` per image (float64, CPU) on images ``x0`` (model range)
    noised to timesteps ``t`` with ``noise`` (all on the UNet's device)."""
    import torch

    was_training = unet.training
    unet.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x0), batch):
            x_t = scheduler.add_noise(x0[i:i + batch], noise[i:i + batch], t[i:i + batch])
            err = (unet(x_t, t[i:i + batch]).sample - noise[i:i + batch]) ** 2
            out.append(err.flatten(1).mean(1).double().cpu())
    unet.train(was_training)
    return torch.cat(out)


def denoising_loss(unet, scheduler, x0, t, noise, batch=128, bands=False):
    """Mean epsilon-prediction MSE (see :func:`per_image_loss`); with ``bands=True`` a dict with
    the mean over all images and per timestep band of :data:`BANDS`."""
    loss = per_image_loss(unet, scheduler, x0, t, noise, batch)
    if not bands:
        return float(loss.mean())
    t = t.cpu()
    return {"all": float(loss.mean())} | {name: float(loss[(t >= lo) & (t < hi)].mean())
                                          for name, (lo, hi) in BANDS.items()}


def min_snr_weights(alphas_cumprod, t, gamma):
    """Min-SNR-gamma weights for epsilon prediction: min(SNR_t, gamma) / SNR_t (1 when gamma = 0)."""
    import torch

    if not gamma:
        return torch.ones(len(t))
    snr = alphas_cumprod[t] / (1 - alphas_cumprod[t])
    return (torch.clamp(snr, max=gamma) / snr).float()


def _update_ema(ema, model, decay):
    import torch

    with torch.no_grad():
        for pe, p in zip(ema.parameters(), model.parameters()):
            pe.lerp_(p, 1 - decay)
        for be, b in zip(ema.buffers(), model.buffers()):
            be.copy_(b)


def _command(args):
    """The ``singlink train-prior`` command line that reproduces this run."""
    parts = ["singlink train-prior", f"--dataset {args.dataset}"]
    if args.image_size:
        parts.append(f"--image-size {args.image_size}")
    parts += [f"--preset {args.preset}", f"--steps {args.steps}", f"--batch {args.batch}",
             f"--lr {args.lr}", f"--weight-decay {args.weight_decay}", f"--min-snr-gamma {args.min_snr_gamma}",
             f"--warmup {args.warmup}"]
    if args.decay_from is not None:
        parts += [f"--decay-from {args.decay_from}", f"--lr-min {args.lr_min}"]
    parts += [f"--grad-clip {args.grad_clip}", f"--ema-decay {args.ema_decay}", f"--val-every {args.val_every}", f"--val-images {args.val_images}",
             f"--seed {args.seed}"]
    if args.train_images:
        parts.append(f"--train-images {args.train_images}")
    if args.export:
        parts += [f"--export {args.export}", f"--samples {args.samples}", f"--sample-steps {args.sample_steps}"]
    return " ".join(parts)


def run(args):
    for name in ("steps", "batch", "val_every", "val_images", "samples", "sample_steps"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
    check_positive(args, "lr", "lr_min")
    if args.decay_from is not None and not 0 <= args.decay_from < args.steps:
        raise UsageError(f"--decay-from {args.decay_from}: give a step in [0, --steps) = [0, {args.steps})")
    for name in ("warmup", "grad_clip", "weight_decay", "min_snr_gamma"):
        v = getattr(args, name)
        if not (math.isfinite(v) and v >= 0):
            raise UsageError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {v}")
    if not 0 <= args.ema_decay < 1:
        raise UsageError(f"--ema-decay must lie in [0, 1), got {args.ema_decay}")
    import copy

    import torch

    from ..training import dataset_spec, export_folder, learning_rate, load_tensors, resume, save_state, warm_start
    from ..provenance import code_version, derive_seed, write_atomic
    from . import prior as prior_module
    from .prior import DiffusionPrior, make_scheduler, make_unet, save_grid, unconditional_samples

    spec = dataset_spec(args)
    if spec.image_size is None:
        raise UsageError(f"--dataset {args.dataset}: give --image-size (the prior trains on square images)")
    dest = export_folder(args.export, prior_module.CHECKPOINTS, args.overwrite) if args.export else None
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(derive_seed(args.seed, "init"))
    levels = len(prior_module.PRESETS[args.preset]["block_out_channels"]) - 1
    if spec.image_size % 2 ** levels:
        raise UsageError(f"--image-size {spec.image_size}: the {args.preset} UNet halves the image {levels} times; "
                         f"use a multiple of {2 ** levels}")
    unet = make_unet(args.preset, spec.image_size)
    n_params = sum(p.numel() for p in unet.parameters())
    if args.export and 2 * n_params > SIZE_LIMIT:
        raise UsageError(f"--export: the {args.preset} prior takes {2 * n_params / 1e6:.0f} MB in float16, over the "
                         f"{SIZE_LIMIT / 1e6:.0f} MB limit of shipped priors; train without --export and load the "
                         f"run folder's prior/ instead")
    if args.init:
        warm_start(unet, args.init, lambda src: DiffusionPrior.from_pretrained(src).unet)
    unet.to(device).train()
    ema = copy.deepcopy(unet).requires_grad_(False)
    scheduler = make_scheduler()
    T = scheduler.config.num_train_timesteps
    opt = (torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=args.weight_decay) if args.weight_decay
           else torch.optim.Adam(unet.parameters(), lr=args.lr))
    abar = torch.cumprod(1 - scheduler.betas.double(), 0)

    out = Path(args.out or f"runs/train-prior/{spec.tag}-{args.preset}")
    out.mkdir(parents=True, exist_ok=True)
    hparams = {key: getattr(args, key) for key in ("preset", "batch", "lr", "weight_decay", "min_snr_gamma", "warmup",
                                                  "grad_clip", "ema_decay", "val_images", "seed", "train_images")}
    hparams |= spec.to_dict()
    decay = {"decay_from": args.decay_from, "lr_min": args.lr_min, "decay_steps": args.steps}
    hparams |= decay if args.decay_from is not None else dict.fromkeys(decay)
    later = (tuple(decay), args.decay_from) if args.decay_from is not None else ()  # a decay a stopped run may take on
    _, step, seconds, history = resume(out, hparams, args.steps, later=later, model=unet, ema=ema, optimizer=opt)
    log_path = out / "log.jsonl"
    x_train, x_val = load_tensors(spec, args.train_images, args.val_images)
    x_train = x_train.to(device)
    print(f"{args.preset} UNet, {n_params / 1e6:.2f} M parameters, on {device}")
    g_val = torch.Generator().manual_seed(VAL_SEED)
    val_t = torch.randint(T, (len(x_val),), generator=g_val).to(device)
    val_noise = torch.randn(x_val.shape, generator=g_val).to(device)
    x_val = DiffusionPrior.to_model_range(x_val).to(device)

    def checkpoint():
        save_state(out, {"model": unet.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                         "step": step, "seconds": seconds, "history": history, "hparams": hparams, "n_params": n_params})

    from tqdm import tqdm

    log = open(log_path, "a")
    bar = tqdm(total=args.steps, initial=step, desc=f"train-prior {args.preset}", unit="step", dynamic_ncols=True)
    while step < args.steps:
        t_step = time.perf_counter()
        g = torch.Generator().manual_seed(derive_seed(args.seed, "batch", step))
        idx = torch.randint(len(x_train), (args.batch,), generator=g)
        flip = (torch.rand(args.batch, generator=g) < 0.5).view(-1, 1, 1, 1)
        t = torch.randint(T, (args.batch,), generator=g)
        noise = torch.randn((args.batch, *x_train.shape[1:]), generator=g)
        torch.manual_seed(derive_seed(args.seed, "global", step))  # dropout, if a preset uses it
        x = x_train[idx.to(device)].float() / 255
        x0 = DiffusionPrior.to_model_range(torch.where(flip.to(device), x.flip(-1), x))
        t, noise = t.to(device), noise.to(device)
        err = (unet(scheduler.add_noise(x0, noise, t), t).sample - noise) ** 2
        loss = torch.mean(err.flatten(1).mean(1) * min_snr_weights(abar, t.cpu(), args.min_snr_gamma).to(device))
        if not torch.isfinite(loss):
            raise RuntimeError(f"loss became {loss.item()} at step {step}; lower --lr")
        lr = learning_rate(step, lr=args.lr, steps=args.steps, warmup=args.warmup, cosine=args.decay_from is not None,
                           lr_min=args.lr_min, decay_from=args.decay_from)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.grad_clip:
            torch.nn.utils.clip_grad_norm_(unet.parameters(), args.grad_clip)
        opt.step()
        _update_ema(ema, unet, min(args.ema_decay, (1 + step) / (10 + step)))
        step += 1
        seconds += time.perf_counter() - t_step
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.1e}")
        log.write(json.dumps({"step": step, "loss": loss.item(), "lr": lr}) + "\n")
        if step % args.val_every == 0 or step == args.steps:
            bands = denoising_loss(ema, scheduler, x_val, val_t, val_noise, bands=True)
            row = {"step": step, "seconds": seconds,
                   "val_loss": denoising_loss(unet, scheduler, x_val, val_t, val_noise),
                   "val_loss_ema": bands["all"], "val_bands_ema": bands}
            history.append(row)
            log.write(json.dumps(row) + "\n")
            log.flush()
            bar.write(f"step {step}: held-out denoising loss {row['val_loss']:.4f} (EMA {row['val_loss_ema']:.4f})")
            checkpoint()
    bar.close()
    log.close()

    final = {"config": hparams | {"steps": step, "n_params": n_params, "data": f"{spec.tag} train split",
                                  "train_images": len(x_train)},
             "command": _command(args), "version": code_version(), "seconds": seconds,
             "hardware": f"{device}" + (f", {torch.get_num_threads()} CPU thread(s)" if device.type == "cpu" else ""),
             "validation": history[-1] if history else {}}
    prior = DiffusionPrior(ema.eval(), scheduler, name=f"{args.preset} prior of {out}")
    prior.save_pretrained(out / "prior", extra=final)
    write_atomic(out / "summary.json", json.dumps(final, indent=1))
    print(f"wrote {out / 'prior'} (EMA weights)")
    if dest is not None:
        prior.save_pretrained(dest, fp16=True, extra=final)
        shipped = DiffusionPrior.from_pretrained(dest, device=device)
        save_grid(unconditional_samples(shipped, args.samples, args.sample_steps, seed=args.seed), dest / "samples.png")
        plot_history(history, dest / "val_loss.png")
        size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
        write_atomic(dest / "MODEL_CARD.md", model_card(dest.name, final, args, size, history))
        print(f"exported {dest} ({size / 1e6:.1f} MB)")
    return 0


def plot_history(history, path):
    """The held-out denoising loss (EMA weights) over training, overall and per timestep band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = [h["step"] for h in history]
    ax.plot(steps, [h["val_loss_ema"] for h in history], "k-o", ms=3, label="all t")
    for band, (lo, hi) in BANDS.items():
        pts = [(h["step"], h["val_bands_ema"][band]) for h in history if "val_bands_ema" in h]
        if pts:
            ax.plot(*zip(*pts), "--", label=f"{band} noise (t in [{lo}, {hi}))")
    ax.set(xlabel="training step", ylabel="held-out eps-MSE (EMA)", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _decay_text(c):
    if c.get("decay_from") is None:
        return ", constant"
    return f", cosine decay from step {c['decay_from']:,} to {c['lr_min']:g} at step {c['decay_steps']:,}"


def model_card(name, final, args, size, history=()):
    """The exported prior's MODEL_CARD.md."""
    from ..training import curve_text

    curve = curve_text([[h["step"], h["val_loss_ema"]] for h in history], "Held-out loss (EMA weights)", points=10)
    c, v = final["config"], final["validation"]
    loss_rows = (f"| raw | {v['val_loss']:.4f} |\n| EMA (exported) | {v['val_loss_ema']:.4f} |" if v else "| - | - |")
    bands = v.get("val_bands_ema", {}) if v else {}
    loss_rows += "".join(f"\n| EMA, {band} noise (t in [{lo}, {hi})) | {bands[band]:.4f} |"
                         for band, (lo, hi) in BANDS.items() if band in bands)
    jpeg = (" The shared CIFAR-10 is a JPEG copy (quality about 75), not pixel-exact CIFAR."
            if c["dataset"] == "cifar10" else "")
    return f"""# {name}

DDPM prior (epsilon prediction) for {c['data'].split(' train')[0]} ({c['image_size']}x{c['image_size']}), the diffusion prior of singlink's SING receiver:
a diffusers `UNet2DModel` (preset `{c['preset']}`, {c['n_params'] / 1e6:.2f} M parameters) with a `DDPMScheduler`
(linear betas 1e-4 .. 0.02, T = 1000), stored in the diffusers DDPMPipeline layout (weights in float16,
{size / 1e6:.1f} MB). Load with `singlink.receiver.prior.DiffusionPrior.from_pretrained("{name}")` or
`diffusers.DDPMPipeline.from_pretrained(<this folder>)`.

- Command: `{final['command']}`
- Data: the `{c['dataset']}` training split (`singlink.data.DatasetSpec`; see its docstring for the split and
  crop), {c['train_images']:,} images, random horizontal flips, scaled to [-1, 1].{jpeg}
- Training: epsilon-prediction MSE, t uniform in [0, 999], {'Min-SNR-gamma weighting, gamma ' + format(c.get('min_snr_gamma', 0), 'g') if c.get('min_snr_gamma') else 'unweighted'};
  {'AdamW (weight decay ' + format(c['weight_decay'], 'g') + ')' if c.get('weight_decay') else 'Adam'} {c['lr']} after {c['warmup']} warm-up steps{_decay_text(c)},
  batch {c['batch']}, gradient norm clipped to {c['grad_clip']}, {c['steps']:,} steps, seed {c['seed']};
  EMA decay {c['ema_decay']} (exported).
- Wall time: {final['seconds'] / 60:.1f} min of training on {final['hardware']} (that of the last session, if resumed).
- Code: {final['version'].get('git_commit', 'unknown')}{' (dirty tree)' if final['version'].get('git_dirty') else ''}

Held-out denoising loss (MSE of the predicted noise; {c['val_images']} validation images, one fixed
(t, noise) draw each, the same draws for every singlink run):

| weights | loss |
| --- | --- |
{loss_rows}

{curve}
![held-out loss](val_loss.png)

Samples (`samples.png`): {args.samples} unconditional samples, {args.sample_steps} DDPM steps (diffusers
`DDPMScheduler.set_timesteps({args.sample_steps})`), seed {args.seed}, from the exported float16 weights.

![samples](samples.png)
"""
