"""``singlink train-prior``: the DDPM prior of the SING receiver, trained on CIFAR-10 32x32.

Loss (Ho et al. 2020, "simple" loss): MSE between the noise added by ``DDPMScheduler.add_noise``
at a timestep drawn uniformly from [0, T-1] and the UNet's prediction of it. Images are random
horizontal flips of the 45,000-image CIFAR-10 training split, in [-1, 1]. Adam with a linear
learning-rate warm-up, gradient clipping, and an exponential moving average (EMA) of the
weights whose decay ramps up as ``min(decay, (1 + n) / (10 + n))`` after n updates (the warm-up
of diffusers' ``EMAModel``). The EMA weights are the prior that gets exported.

Every random draw of step s (batch indices, flips, timesteps, noise, and torch's global RNG
for dropout) is derived from (seed, s) and made on the CPU, so a run resumed from its
``state.pt`` continues exactly as if it had not stopped. Validation is the denoising loss of
the raw and the EMA weights on fixed validation images with fixed (t, noise) draws, the same
for every run, so runs compare.
"""
import json
import time
from pathlib import Path

from ..errors import UsageError

SIZE_LIMIT = 25_000_000  # bytes: the most an exported (shipped) prior may take
VAL_SEED = 20200619  # fixed (t, noise) draws of validation, shared by all runs


def add_arguments(p):
    p.add_argument("--preset", default="small", choices=("tiny", "small", "base"),
                   help="UNet size: tiny (tests), small (1.1 M, CPU), base (35.7 M, GPU) (default %(default)s)")
    p.add_argument("--steps", type=int, default=20000, help="total optimiser steps (default %(default)s)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default %(default)s)")
    p.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate after warm-up (default %(default)s)")
    p.add_argument("--warmup", type=int, default=500, help="linear learning-rate warm-up steps (default %(default)s)")
    p.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradient norm to this; 0: off (default %(default)s)")
    p.add_argument("--ema-decay", type=float, default=0.999, help="EMA decay of the exported weights (default %(default)s)")
    p.add_argument("--val-every", type=int, default=1000, help="validate and checkpoint every N steps (default %(default)s)")
    p.add_argument("--val-images", type=int, default=512, help="validation images (default %(default)s)")
    p.add_argument("--train-images", type=int, default=None, help="use only the first N training images (default all 45,000)")
    p.add_argument("--seed", type=int, default=0, help="run seed (default %(default)s)")
    p.add_argument("--data-root", default=None, help="folder holding cifar10/ (default: see singlink.data)")
    p.add_argument("--out", default=None, help="run folder (default runs/train-prior/<preset>)")
    p.add_argument("--export", default=None, metavar="NAME",
                   help="when done, write the EMA weights (float16) with a model card and samples into singlink/checkpoints/NAME")
    p.add_argument("--samples", type=int, default=64, help="samples in the exported model card's grid (default %(default)s)")
    p.add_argument("--sample-steps", type=int, default=100, help="DDPM steps per sample for the grid (default %(default)s)")
    p.add_argument("--device", default=None, help="torch device (default cuda when available, else cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def denoising_loss(unet, scheduler, x0, t, noise, batch=128):
    """Mean epsilon-prediction MSE of ``unet`` on images ``x0`` (model range) noised to
    timesteps ``t`` with ``noise`` (all on the UNet's device)."""
    import torch

    unet.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(x0), batch):
            x_t = scheduler.add_noise(x0[i:i + batch], noise[i:i + batch], t[i:i + batch])
            total += torch.sum((unet(x_t, t[i:i + batch]).sample - noise[i:i + batch]) ** 2).item()
    unet.train()
    return total / noise.numel()


def _update_ema(ema, model, decay):
    import torch

    with torch.no_grad():
        for pe, p in zip(ema.parameters(), model.parameters()):
            pe.lerp_(p, 1 - decay)
        for be, b in zip(ema.buffers(), model.buffers()):
            be.copy_(b)


def _command(args):
    """The ``singlink train-prior`` command line that reproduces this run."""
    parts = ["singlink train-prior", f"--preset {args.preset}", f"--steps {args.steps}", f"--batch {args.batch}",
             f"--lr {args.lr}", f"--warmup {args.warmup}", f"--grad-clip {args.grad_clip}",
             f"--ema-decay {args.ema_decay}", f"--val-every {args.val_every}", f"--val-images {args.val_images}",
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
    if args.warmup < 0 or args.grad_clip < 0:
        raise UsageError("--warmup and --grad-clip must be >= 0")
    if not 0 <= args.ema_decay < 1:
        raise UsageError(f"--ema-decay must lie in [0, 1), got {args.ema_decay}")
    import copy

    import torch

    from ..training import load_cifar_tensors, resume, save_state
    from ..provenance import code_version, derive_seed, write_atomic
    from . import prior as prior_module
    from .prior import DiffusionPrior, make_scheduler, make_unet, save_grid, unconditional_samples

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(derive_seed(args.seed, "init"))
    unet = make_unet(args.preset)
    n_params = sum(p.numel() for p in unet.parameters())
    if args.export and 2 * n_params > SIZE_LIMIT:
        raise UsageError(f"--export: the {args.preset} prior takes {2 * n_params / 1e6:.0f} MB in float16, over the "
                         f"{SIZE_LIMIT / 1e6:.0f} MB limit of shipped priors; train without --export and load the "
                         f"run folder's prior/ instead")
    unet.to(device).train()
    ema = copy.deepcopy(unet).requires_grad_(False)
    scheduler = make_scheduler()
    T = scheduler.config.num_train_timesteps
    opt = torch.optim.Adam(unet.parameters(), lr=args.lr)

    out = Path(args.out or f"runs/train-prior/{args.preset}")
    out.mkdir(parents=True, exist_ok=True)
    hparams = {key: getattr(args, key) for key in ("preset", "batch", "lr", "warmup", "grad_clip", "ema_decay",
                                              "val_images", "seed", "train_images")}
    _, step, seconds, history = resume(out, hparams, args.steps, model=unet, ema=ema, optimizer=opt)
    log_path = out / "log.jsonl"
    x_train, x_val = load_cifar_tensors(args.data_root, args.train_images, args.val_images)
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
        loss = torch.mean((unet(scheduler.add_noise(x0, noise, t), t).sample - noise) ** 2)
        if not torch.isfinite(loss):
            raise RuntimeError(f"loss became {loss.item()} at step {step}; lower --lr")
        lr = args.lr * min(1.0, (step + 1) / args.warmup) if args.warmup else args.lr
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
            row = {"step": step, "seconds": seconds,
                   "val_loss": denoising_loss(unet, scheduler, x_val, val_t, val_noise),
                   "val_loss_ema": denoising_loss(ema, scheduler, x_val, val_t, val_noise)}
            history.append(row)
            log.write(json.dumps(row) + "\n")
            log.flush()
            bar.write(f"step {step}: held-out denoising loss {row['val_loss']:.4f} (EMA {row['val_loss_ema']:.4f})")
            checkpoint()
    bar.close()
    log.close()

    final = {"config": hparams | {"steps": step, "n_params": n_params, "data": "cifar10 train split (JPEG copy)",
                                  "train_images": len(x_train)},
             "command": _command(args), "version": code_version(), "seconds": seconds,
             "hardware": f"{device}" + (f", {torch.get_num_threads()} CPU thread(s)" if device.type == "cpu" else ""),
             "validation": history[-1] if history else {}}
    prior = DiffusionPrior(ema.eval(), scheduler, name=f"{args.preset} prior of {out}")
    prior.save_pretrained(out / "prior", extra=final)
    write_atomic(out / "summary.json", json.dumps(final, indent=1))
    print(f"wrote {out / 'prior'} (EMA weights)")
    if args.export:
        dest = prior_module.CHECKPOINTS / args.export
        prior.save_pretrained(dest, fp16=True, extra=final)
        shipped = DiffusionPrior.from_pretrained(dest, device=device)
        save_grid(unconditional_samples(shipped, args.samples, args.sample_steps, seed=args.seed), dest / "samples.png")
        size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
        write_atomic(dest / "MODEL_CARD.md", model_card(args.export, final, args, size))
        print(f"exported {dest} ({size / 1e6:.1f} MB)")
    return 0


def model_card(name, final, args, size):
    """The exported prior's MODEL_CARD.md."""
    c, v = final["config"], final["validation"]
    loss_rows = (f"| raw | {v['val_loss']:.4f} |\n| EMA (exported) | {v['val_loss_ema']:.4f} |" if v else "| - | - |")
    return f"""# {name}

DDPM prior (epsilon prediction) for CIFAR-10 32x32, the diffusion prior of singlink's SING receiver:
a diffusers `UNet2DModel` (preset `{c['preset']}`, {c['n_params'] / 1e6:.2f} M parameters) with a `DDPMScheduler`
(linear betas 1e-4 .. 0.02, T = 1000), stored in the diffusers DDPMPipeline layout (weights in float16,
{size / 1e6:.1f} MB). Load with `singlink.receiver.prior.DiffusionPrior.from_pretrained("{name}")` or
`diffusers.DDPMPipeline.from_pretrained(<this folder>)`.

- Command: `{final['command']}`
- Data: CIFAR-10 training split as shipped in `../shared/data/cifar10` (JPEG, quality about 75: not
  pixel-exact CIFAR), {c['train_images']:,} images (the 5,000-image validation split held out, seed 0),
  random horizontal flips, scaled to [-1, 1].
- Training: epsilon-prediction MSE, t uniform in [0, 999]; Adam {c['lr']} after {c['warmup']} warm-up steps,
  batch {c['batch']}, gradient norm clipped to {c['grad_clip']}, {c['steps']:,} steps, seed {c['seed']};
  EMA decay {c['ema_decay']} (exported).
- Wall time: {final['seconds'] / 60:.1f} min of training on {final['hardware']} (that of the last session, if resumed).
- Code: {final['version'].get('git_commit', 'unknown')}{' (dirty tree)' if final['version'].get('git_dirty') else ''}

Held-out denoising loss (MSE of the predicted noise; {c['val_images']} validation images, one fixed
(t, noise) draw each, the same draws for every singlink run):

| weights | loss |
| --- | --- |
{loss_rows}

Samples (`samples.png`): {args.samples} unconditional samples, {args.sample_steps} DDPM steps (diffusers
`DDPMScheduler.set_timesteps({args.sample_steps})`), seed {args.seed}, from the exported float16 weights.

![samples](samples.png)
"""
