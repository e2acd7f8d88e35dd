"""``singlink train-jscc``: DeepJSCC trained end to end through a Sionna channel, on any data set.

Loss (SING paper, Eq. 10): MSE(x_hat, x) + lambda * LPIPS(x_hat, x) (LPIPS is not computed at all
when lambda = 0); or, with ``--loss psnr``, the batch mean of ln MSE_i over its images i, which is
minus the mean PSNR up to a factor: every image, and so every training SNR, weighs the same in dB.
Plain MSE weighs each image by its error, so an SNR-adaptive codec trained over -5..15 dB spends
its capacity on the low SNRs, whose errors are several times larger; the PSNR loss moves it
towards the high ones (where one model trails per-SNR models the most). SNR uniform in [snr_min, snr_max] dB per image; Adam with a linear warm-up and,
by default, a cosine decay of the learning rate to ``--lr-min`` over ``--steps`` (published DeepJSCC
recipes train at 1e-3 and decay). The channel is Sionna's (``--channel``, default AWGN), wrapped by
phy.as_torch so the encoder's gradient comes through TensorFlow's tape on sionna-tf (and through
torch's own autograd on sionna-torch). Training images are held in
memory as uint8, so no step decodes an image.

Every random draw of step s (batch indices, SNRs, channel noise) is derived from (seed, s), so a
run resumed from its checkpoint continues exactly as if it had not stopped.
"""
import json
import math
import time
from pathlib import Path

from ..errors import UsageError
from ..training import add_data_arguments, add_export_arguments, check_positive, parse_snr_range
from . import BOTTLENECKS

VAL_SNRS = (-5, -3, -1, 1, 3, 5)
LOSSES = ("mse", "psnr")


def add_arguments(p):
    p.add_argument("--rho", default="1/192", help="bandwidth ratio k/m, e.g. 1/192, 1/48, 1/6 (default %(default)s)")
    add_data_arguments(p)
    p.add_argument("--channel", default="awgn",
                   help="training channel: awgn, rayleigh-block, rayleigh-fast or an OFDM spec such as "
                        "ofdm-tdl-c:delay_spread=300e-9:csi=ls (default %(default)s)")
    p.add_argument("--steps", type=int, default=3000, help="total optimiser steps (default %(default)s)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default %(default)s)")
    p.add_argument("--until", type=int, default=None, metavar="STEP",
                   help="stop at this step for now (a session's share of a long run; the schedule stays that of "
                        "--steps), then write and export the model as it is")
    p.add_argument("--lr", type=float, default=1e-3, help="peak Adam learning rate (default %(default)s)")
    p.add_argument("--lr-schedule", default="cosine", choices=("cosine", "constant"),
                   help="cosine: decay to --lr-min over --steps (then --steps is fixed for the run); "
                        "constant: --steps may grow on resume (default %(default)s)")
    p.add_argument("--lr-min", type=float, default=1e-5, help="learning rate at the end of the cosine (default %(default)s)")
    p.add_argument("--warmup", type=int, default=200, help="linear warm-up steps (default %(default)s)")
    p.add_argument("--lpips-weight", type=float, default=0.0, help="lambda of Eq. 10; 0: MSE only (default %(default)s)")
    p.add_argument("--loss", default="mse", choices=LOSSES,
                   help="mse: the batch MSE (+ lambda LPIPS); psnr: the mean over images of ln MSE, each image "
                        "weighed the same in dB whatever its SNR (default %(default)s)")
    p.add_argument("--snr-range", default="-5,5", help="training SNR range in dB, MIN,MAX (default %(default)s)")
    p.add_argument("--channels", type=int, default=48,
                   help="feature channels of the codec (default %(default)s); more than --init's codec has widens it "
                        "without changing what it computes (DeepJSCC.widen_from)")
    p.add_argument("--bottleneck", default="conv", choices=BOTTLENECKS,
                   help="conv: one latent position per 8x8 patch; dense: one linear map from the whole feature "
                        "map to the k symbols, for very low rho (default %(default)s)")
    p.add_argument("--val-every", type=int, default=500, help="validate and checkpoint every N steps (default %(default)s)")
    p.add_argument("--train-images", type=int, default=None, help="use only the first N training images (default all)")
    p.add_argument("--val-images", type=int, default=256, help="validation images (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="run seed (default %(default)s)")
    p.add_argument("--out", default=None, help="run folder (default runs/train-jscc/<dataset tag>-rho<rho>)")
    add_export_arguments(p, "the model")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def training_loss(x_hat, x, kind: str = "mse", lpips_weight: float = 0.0, perceptual=None):
    """``(loss, mse, lpips)`` of a batch (N, C, H, W) in [0, 1]: ``mse + lpips_weight * lpips``
    (``kind="mse"``, Eq. 10) or the mean over images of ln MSE_i (``kind="psnr"``, which is
    -ln(10)/10 times the mean PSNR_i up to a constant). ``perceptual`` computes LPIPS (None: 0)."""
    import torch

    sq = (x_hat - x) ** 2
    mse = torch.mean(sq)
    lp = perceptual(x_hat, x).mean() if perceptual is not None else torch.zeros(())
    if kind == "psnr":  # the 1e-10 floor keeps a perfect reconstruction from giving -inf
        return sq.flatten(1).mean(1).clamp_min(1e-10).log().mean(), mse, lp
    return mse + lpips_weight * lp, mse, lp


def validation_snrs(lo, hi):
    """The SNRs validated: -5, -3, ..., 5 dB for the SING regime, 5 dB steps over wider ranges."""
    step = 2 if hi - lo <= 10 else 5
    return tuple(range(int(math.floor(lo)), int(math.ceil(hi)) + 1, step))


class ChannelLink:
    """A Sionna channel as the trainer sees it: ``link(z, snr) -> (decoder input, decoder SNR)``,
    differentiable end to end (phy.as_torch: the DLPack bridge on sionna-tf). The decoder gets what :meth:`Receiver.decode` gives it:
    over AWGN the received symbols and the nominal SNR; under flat fading the MMSE-equalised symbols
    (perfect CSI) and the effective SNR, SNR + 10 log10(mean |h|^2); over OFDM (``ofdm-...``) the
    equalised symbols through :func:`singlink.phy.jscc_input` and the mean per-RE effective SNR."""

    def __init__(self, name: str, power: float = 1.0):
        from .. import phy

        self.name, self.power = name, power
        self.channel = phy.as_torch(phy.make_channel(name))
        self.ofdm = phy.is_ofdm(name)
        self.fading = not self.ofdm and name != "awgn"
        if self.fading:
            self.equalize = phy.as_torch(lambda y, h, snr: phy.equalize(y, h, snr, "mmse", power))

    def __call__(self, z, snr):
        import torch

        from .. import phy

        y, state = self.channel(z, snr)
        if self.ofdm:
            return phy.jscc_input(y, state, self.power)
        if self.fading:
            snr = torch.as_tensor(snr, dtype=torch.float32).expand(len(z))
            y_eq, _ = self.equalize(y, state, snr)
            return y_eq, snr + 10 * torch.log10((state.abs() ** 2).mean(dim=1).clamp_min(1e-12))
        return y, snr


def evaluate(model, x, snrs=VAL_SNRS, seed=0, batch=128, channel="awgn"):
    """PSNR / MS-SSIM / LPIPS means of ``model`` over images ``x`` at each SNR, seeded."""
    import torch

    from .. import phy
    from ..metrics import lpips, ms_ssim, psnr
    from ..provenance import derive_seed

    link = ChannelLink(channel, model.config.power)
    rows = []
    model.eval()
    with torch.no_grad():
        for snr in snrs:
            phy.set_seed(derive_seed(seed, "val", snr))
            vals = {"psnr": [], "ms_ssim": [], "lpips": []}
            for i in range(0, len(x), batch):
                xb = x[i:i + batch]
                xh = model.decode(*link(model.encode(xb, float(snr)), float(snr)))
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
    check_positive(args, "lr", "lr_min")
    if args.until is not None and args.until < 1:
        raise UsageError(f"--until must be >= 1, got {args.until}")
    if args.train_images is not None and args.train_images < 1:
        raise UsageError(f"--train-images must be >= 1, got {args.train_images}")
    if not (math.isfinite(args.lpips_weight) and args.lpips_weight >= 0) or args.warmup < 0:
        raise UsageError("--lpips-weight and --warmup must be finite and >= 0")
    if args.loss == "psnr" and args.lpips_weight:
        raise UsageError("--loss psnr is a distortion loss alone; drop --lpips-weight or use --loss mse")
    import torch

    from .. import phy
    from ..provenance import code_version, derive_seed, write_atomic
    from ..training import dataset_spec, draw_step, export_folder, learning_rate, load_tensors, resume, save_state, warm_start
    from .model import CHECKPOINTS, DeepJSCC, DeepJSCCConfig

    spec = dataset_spec(args)
    if spec.image_size is None:
        raise UsageError(f"--dataset {args.dataset}: give --image-size (DeepJSCC trains on square images)")
    size = (3, spec.image_size, spec.image_size)
    try:
        k = phy.num_channel_symbols(args.rho, size)
        phy.make_channel(args.channel)
    except ValueError as e:
        raise UsageError(str(e)) from None
    config = DeepJSCCConfig(k=k, image_size=size, channels=args.channels, dataset=spec.name,
                            bottleneck=args.bottleneck)
    dest = export_folder(args.export, CHECKPOINTS, args.overwrite) if args.export else None
    if args.threads:
        torch.set_num_threads(args.threads)

    out = Path(args.out or f"runs/train-jscc/{spec.tag}-rho{str(args.rho).replace('/', '_')}")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(derive_seed(args.seed, "init"))
    model = DeepJSCC(config)
    widened = None  # the channels of a narrower --init codec grown into this one
    if args.init:
        source = DeepJSCC.from_pretrained(args.init)
        if source.config.channels < config.channels:  # grow a trained codec instead of starting over
            try:
                model.widen_from(source)
                widened = source.config.channels
            except UsageError as e:
                raise UsageError(f"--init {args.init} --channels {config.channels}: {e}") from None
            print(f"warm start from {args.init}, widened from {source.config.channels} to {config.channels} channels "
                  f"(the same function until training moves the new units)")
        else:
            warm_start(model, args.init, lambda _: source)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    keys = ("rho", "channel", "batch", "lr", "lr_schedule", "lr_min", "warmup", "lpips_weight", "snr_range",
            "channels", "seed", "train_images")
    hparams = {key: getattr(args, key) for key in keys} | spec.to_dict()
    if args.lr_schedule == "cosine":
        hparams["steps"] = args.steps  # the schedule depends on it
    if args.loss != "mse":
        hparams["loss"] = args.loss  # recorded only when not the default, so runs saved before --loss resume
    if args.bottleneck != "conv":
        hparams["bottleneck"] = args.bottleneck  # likewise
    stop = min(args.steps, args.until) if args.until else args.steps
    _, step, seconds, history = resume(out, hparams, stop, model=model, optimizer=opt)
    x_train, x_val = load_tensors(spec, args.train_images, args.val_images)
    val_snrs = validation_snrs(snr_lo, snr_hi)

    perceptual = None
    if args.lpips_weight:
        from ..metrics import LPIPS

        perceptual = LPIPS().requires_grad_(False)
    channel = ChannelLink(args.channel, config.power)
    log = open(out / "log.jsonl", "a")

    def checkpoint():
        save_state(out, {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "seconds": seconds,
                         "history": history, "hparams": hparams, "config": config.__dict__})

    from tqdm import tqdm

    bar = tqdm(total=args.steps, initial=step, desc=f"train-jscc k={k}", unit="step", dynamic_ncols=True)
    model.train()
    while step < stop:
        t_step = time.perf_counter()
        x, snr = draw_step(x_train, args.batch, snr_lo, snr_hi, args.seed, step)
        x_hat = model.decode(*channel(model.encode(x, snr), snr))
        loss, mse, lp = training_loss(x_hat, x, args.loss, args.lpips_weight, perceptual)
        if not torch.isfinite(loss):
            raise RuntimeError(f"loss became {loss.item()} at step {step}; lower --lr")
        lr = learning_rate(step, lr=args.lr, steps=args.steps, warmup=args.warmup,
                           cosine=args.lr_schedule == "cosine", lr_min=args.lr_min)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        seconds += time.perf_counter() - t_step
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", psnr=f"{-10 * math.log10(max(mse.item(), 1e-10)):.1f}")
        log.write(json.dumps({"step": step, "loss": loss.item(), "mse": mse.item(), "lpips": lp.item(), "lr": lr}) + "\n")
        if step % args.val_every == 0 or step == stop:
            rows = evaluate(model, x_val, val_snrs, seed=args.seed, channel=args.channel)
            model.train()
            history.append({"step": step, "seconds": seconds, "val": rows})
            log.write(json.dumps({"step": step, "val": rows}) + "\n")
            log.flush()
            bar.write(f"step {step}: " + "  ".join(f"{r['snr_db']:+d} dB {r['psnr']:.2f} dB/{r['lpips']:.3f}" for r in rows))
            checkpoint()
    bar.close()
    log.close()

    final = {"config": hparams | {"steps": step, "schedule_steps": args.steps, "k": k, "val_images": args.val_images,
                                  "train_images": len(x_train), "init": args.init}
             | ({"init_channels": widened} if widened else {}),
             "seed": args.seed, "version": code_version(), "seconds": seconds,
             "validation": history[-1]["val"] if history else []}
    model.save_pretrained(out / "model", extra=final)
    write_atomic(out / "summary.json", json.dumps(final, indent=1))
    print(f"wrote {out / 'model'}")
    if dest is not None:
        # The shipped copy is float16 (half the clone size); the run folder keeps float32 so a
        # resumed or warm-started run continues from the exact weights. The examples show what ships.
        model.save_pretrained(dest, extra=final, fp16=True)
        plot_history(history, dest / "val_psnr.png")
        reconstruction_grid(DeepJSCC.from_pretrained(dest), x_val[:8], val_snrs, args.seed, args.channel,
                            dest / "examples.png")
        write_atomic(dest / "MODEL_CARD.md", model_card(dest.name, final, args))
        print(f"exported {dest}")
    return 0


def reconstruction_grid(model, x, snrs, seed, channel, path):
    """Originals (first row) and their reconstructions at each validation SNR (one row each), as PNG."""
    import torch

    from .. import phy
    from ..provenance import derive_seed
    from ..receiver.prior import save_grid

    link = ChannelLink(channel, model.config.power)
    rows = [x]
    model.eval()
    with torch.no_grad():
        for snr in snrs:
            phy.set_seed(derive_seed(seed, "examples", snr))
            rows.append(model.decode(*link(model.encode(x, float(snr)), float(snr))))
    save_grid(torch.cat(rows), path, nrow=len(x))


def plot_history(history, path):
    """Validation PSNR against training step, one line per SNR: the curve that says when it has flattened."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, row in enumerate(history[0]["val"] if history else []):
        ax.plot([h["step"] for h in history], [h["val"][i]["psnr"] for h in history], "-o", ms=3,
                label=f"{row['snr_db']:+d} dB")
    ax.set(xlabel="training step", ylabel="validation PSNR [dB]")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def model_card(name, final, args):
    import sys

    rows = "\n".join(f"| {r['snr_db']:+d} | {r['psnr']:.2f} | {r['ms_ssim']:.4f} | {r['lpips']:.4f} |"
                     for r in final["validation"])
    c = final["config"]
    loss = f"MSE + {c['lpips_weight']} * LPIPS-alex (SING Eq. 10)" if c["lpips_weight"] else "MSE"
    if c.get("loss") == "psnr":
        loss = "the batch mean of ln MSE per image (each image weighs the same in dB: `--loss psnr`)"
    schedule = (f"cosine to {c['lr_min']:g} over {c['schedule_steps']:,} steps" if c["lr_schedule"] == "cosine"
                else "constant")
    jpeg = (" The shared CIFAR-10 is a JPEG copy (quality about 75), not pixel-exact CIFAR."
            if c["dataset"] == "cifar10" else "")
    if c.get("init"):
        grown = (f", widened from {c['init_channels']} to {c['channels']} channels (`DeepJSCC.widen_from`: the same "
                 f"function at step 0)" if c.get("init_channels") else "")
        jpeg += (f"\n- Warm start: the weights of `{c['init']}`{grown} (a fresh optimiser; steps and time below are "
                 f"this run's).")
    partial = (f" (of {c['schedule_steps']:,}: training goes on, see training-state/README.md)"
               if c["steps"] < c["schedule_steps"] else "")
    dense = ", a dense bottleneck over the whole feature map" if c.get("bottleneck") == "dense" else ""
    return f"""# {name}

DeepJSCC (SNR-adaptive, AF modules{dense}) for `{c['dataset']}` {c['image_size']}x{c['image_size']} at rho = {c['rho']}
(k = {c['k']} complex symbols per image), trained end to end through Sionna's `{c['channel']}` channel by singlink.

- Command: `singlink train-jscc {' '.join(sys.argv[2:])}`
- Data: the `{c['dataset']}` training split (`singlink.data.DatasetSpec`), {c['train_images']:,} images, held
  out validation split for the table below.{jpeg}
- Loss: {loss}; SNR uniform in [{c['snr_range']}] dB per image; Adam, peak learning rate {c['lr']:g} after
  {c['warmup']} warm-up steps, {schedule}; batch {c['batch']}, {c['steps']:,} steps{partial}, seed {final['seed']}.
- Wall time: {final['seconds'] / 60:.1f} min of training on {args.threads or 'all'} CPU thread(s) (2-core machine,
  shared with other jobs).
- Weights: float16 (`model.safetensors`; loading casts them to float32). The validation below is of the
  float32 weights at the end of training.
- Code: {final['version'].get('git_commit', 'unknown')}

Validation ({c['val_images']} held-out images, AWGN, seeded):

| SNR [dB] | PSNR [dB] | MS-SSIM | LPIPS |
| --- | --- | --- | --- |
{rows}

![validation PSNR during training](val_psnr.png)

Originals (top row) and reconstructions at each validation SNR above (one row per SNR, lowest first):

![reconstructions](examples.png)
"""
