"""``singlink train-jscc``: DeepJSCC trained end to end through the Sionna AWGN channel.

Loss (SING paper, Eq. 10): MSE(x_hat, x) + lambda * LPIPS(x_hat, x); SNR uniform in
[snr_min, snr_max] dB per image; Adam. The channel is Sionna's, wrapped by phy.TFModule so the
encoder's gradient comes through TensorFlow's tape.

Every random draw of step s (batch indices, SNRs, channel noise) is derived from (seed, s), so a
run resumed from its checkpoint continues exactly as if it had not stopped.
"""
import json
import math
import time
from pathlib import Path

from ..errors import UsageError
from ..training import parse_snr_range

VAL_SNRS = (-5, -3, -1, 1, 3, 5)


def add_arguments(p):
    p.add_argument("--rho", default="1/192", help="bandwidth ratio k/m, e.g. 1/192, 1/48, 1/6 (default %(default)s)")
    p.add_argument("--steps", type=int, default=3000, help="total optimiser steps (default %(default)s)")
    p.add_argument("--batch", type=int, default=32, help="batch size (default %(default)s)")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default %(default)s)")
    p.add_argument("--lpips-weight", type=float, default=0.05, help="lambda of Eq. 10 (default %(default)s)")
    p.add_argument("--snr-range", default="-5,5", help="training SNR range in dB, MIN,MAX (default %(default)s)")
    p.add_argument("--channels", type=int, default=48, help="feature channels of the codec (default %(default)s)")
    p.add_argument("--val-every", type=int, default=500, help="validate and checkpoint every N steps (default %(default)s)")
    p.add_argument("--train-images", type=int, default=None, help="use only the first N training images (default all 45,000)")
    p.add_argument("--val-images", type=int, default=256, help="validation images (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="run seed (default %(default)s)")
    p.add_argument("--data-root", default=None, help="folder holding cifar10/ (default: see singlink.data)")
    p.add_argument("--out", default=None, help="run folder (default runs/train-jscc/rho<rho>)")
    p.add_argument("--export", default=None, metavar="NAME",
                   help="when done, write the model as a named checkpoint with a model card into singlink/checkpoints/NAME")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def evaluate(model, x, snrs=VAL_SNRS, seed=0, batch=128):
    """PSNR / MS-SSIM / LPIPS means of ``model`` over images ``x`` at each SNR (AWGN), seeded."""
    import torch

    from .. import phy
    from ..metrics import lpips, ms_ssim, psnr
    from ..provenance import derive_seed

    channel = phy.TFModule(phy.AWGNChannel())
    rows = []
    model.eval()
    with torch.no_grad():
        for snr in snrs:
            phy.set_seed(derive_seed(seed, "val", snr))
            vals = {"psnr": [], "ms_ssim": [], "lpips": []}
            for i in range(0, len(x), batch):
                xb = x[i:i + batch]
                y, _ = channel(model.encode(xb, float(snr)), float(snr))
                xh = model.decode(y, float(snr))
                vals["psnr"].append(psnr(xh, xb))
                vals["ms_ssim"].append(ms_ssim(xh, xb))
                vals["lpips"].append(lpips(xh, xb))
            rows.append({"snr_db": snr} | {k: float(torch.cat(v).mean()) for k, v in vals.items()})
    return rows


def run(args):
    snr_lo, snr_hi = parse_snr_range(args.snr_range)
    for name in ("steps", "batch", "val_every", "val_images", "channels"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
    import torch

    from .. import phy
    from ..metrics import LPIPS
    from ..provenance import code_version, derive_seed, write_atomic
    from .model import CHECKPOINTS, DeepJSCC, DeepJSCCConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        k = phy.num_channel_symbols(args.rho, (3, 32, 32))
    except ValueError as e:
        raise UsageError(str(e)) from None
    from ..training import draw_step, load_cifar_tensors, resume, save_state

    out = Path(args.out or f"runs/train-jscc/rho{str(args.rho).replace('/', '_')}")
    out.mkdir(parents=True, exist_ok=True)
    x_train, x_val = load_cifar_tensors(args.data_root, args.train_images, args.val_images)

    config = DeepJSCCConfig(k=k, channels=args.channels)
    torch.manual_seed(derive_seed(args.seed, "init"))
    model = DeepJSCC(config)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    hparams = {key: getattr(args, key) for key in ("rho", "batch", "lr", "lpips_weight", "snr_range", "channels", "seed",
                                              "train_images")}
    _, step, seconds, history = resume(out, hparams, args.steps, model=model, optimizer=opt)

    perceptual = LPIPS().requires_grad_(False)
    channel = phy.TFModule(phy.AWGNChannel())
    log = open(out / "log.jsonl", "a")

    def checkpoint():
        save_state(out, {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "seconds": seconds,
                         "history": history, "hparams": hparams, "config": config.__dict__})

    from tqdm import tqdm

    bar = tqdm(total=args.steps, initial=step, desc=f"train-jscc k={k}", unit="step", dynamic_ncols=True)
    model.train()
    while step < args.steps:
        t_step = time.perf_counter()
        x, snr = draw_step(x_train, args.batch, snr_lo, snr_hi, args.seed, step)
        y, _ = channel(model.encode(x, snr), snr)
        x_hat = model.decode(y, snr)
        mse = torch.mean((x_hat - x) ** 2)
        lp = perceptual(x_hat, x).mean()
        loss = mse + args.lpips_weight * lp
        if not torch.isfinite(loss):
            raise RuntimeError(f"loss became {loss.item()} at step {step}; lower --lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        seconds += time.perf_counter() - t_step
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", psnr=f"{-10 * math.log10(max(mse.item(), 1e-10)):.1f}")
        log.write(json.dumps({"step": step, "loss": loss.item(), "mse": mse.item(), "lpips": lp.item()}) + "\n")
        if step % args.val_every == 0 or step == args.steps:
            rows = evaluate(model, x_val, seed=args.seed)
            model.train()
            history.append({"step": step, "seconds": seconds, "val": rows})
            log.write(json.dumps({"step": step, "val": rows}) + "\n")
            log.flush()
            bar.write(f"step {step}: " + "  ".join(f"{r['snr_db']:+d} dB {r['psnr']:.2f} dB/{r['lpips']:.3f}" for r in rows))
            checkpoint()
    bar.close()
    log.close()

    final = {"config": hparams | {"steps": step, "k": k, "val_images": args.val_images},
             "seed": args.seed, "version": code_version(), "seconds": seconds,
             "validation": history[-1]["val"] if history else []}
    model.save_pretrained(out / "model", extra=final)
    write_atomic(out / "summary.json", json.dumps(final, indent=1))
    print(f"wrote {out / 'model'}")
    if args.export:
        dest = CHECKPOINTS / args.export
        model.save_pretrained(dest, extra=final)
        write_atomic(dest / "MODEL_CARD.md", model_card(args.export, final, args))
        print(f"exported {dest}")
    return 0


def model_card(name, final, args):
    import sys

    rows = "\n".join(f"| {r['snr_db']:+d} | {r['psnr']:.2f} | {r['ms_ssim']:.4f} | {r['lpips']:.4f} |"
                     for r in final["validation"])
    c = final["config"]
    return f"""# {name}

DeepJSCC (SNR-adaptive, AF modules) for CIFAR-10 32x32 at rho = {c['rho']} (k = {c['k']} complex symbols
per image), trained end to end through Sionna's AWGN channel by singlink.

- Command: `singlink train-jscc {' '.join(sys.argv[2:])}`
- Data: CIFAR-10 training set as shipped in `../shared/data/cifar10` (JPEG, quality about 75: not
  pixel-exact CIFAR), 45,000 images (validation split of 5,000 held out, seed 0).
- Loss: MSE + {c['lpips_weight']} * LPIPS-alex (SING Eq. 10); SNR uniform in [{c['snr_range']}] dB per image;
  Adam {c['lr']}, batch {c['batch']}, {c['steps']} steps, seed {final['seed']}.
- Wall time: {final['seconds'] / 60:.1f} min of training on {args.threads or 'all'} CPU thread(s) (2-core machine,
  shared with other jobs).
- Code: {final['version'].get('git_commit', 'unknown')}

Validation ({c['val_images']} held-out images, AWGN, seeded):

| SNR [dB] | PSNR [dB] | MS-SSIM | LPIPS |
| --- | --- | --- | --- |
{rows}
"""
