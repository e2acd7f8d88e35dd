"""Where a diffusion prior is strong: its held-out denoising loss (epsilon-prediction MSE) per
timestep band, low noise t in [0, 100), mid [100, 500), high [500, 1000), for several priors side
by side, each on the validation split of the data set it was trained on. Every band gets the same
number of images, each at one t drawn uniformly in the band with a fixed seed, so priors and runs
compare. Writes a bar chart (``--plot``) next to the printed table.

    .venv/bin/python benchmarks/prior_bands.py \\
        --prior ddpm-celeba64-singlink:celeba --prior ddpm-cifar10-32-singlink:cifar10 --plot bands.png

``--prior NAME_OR_FOLDER:DATASET`` (repeatable). Last line of stdout: one JSON object.
"""
import argparse
import json

import torch

SEED = 20200619


def band_losses(prior, spec, images, batch=64):
    """{band: mean eps-MSE} of ``prior`` on the first ``images`` validation images of ``spec``."""
    from singlink.data import as_float
    from singlink.receiver.train_prior import BANDS, per_image_loss

    x0 = prior.to_model_range(as_float(spec.tensors("val", images)))
    g = torch.Generator().manual_seed(SEED)
    out = {}
    for name, (lo, hi) in BANDS.items():
        t = torch.randint(lo, hi, (len(x0),), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        out[name] = float(per_image_loss(prior.unet, prior.scheduler, x0, t, noise, batch).mean())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", action="append", default=None, metavar="NAME_OR_FOLDER:DATASET",
                    help="a prior and the data set it was trained on (repeatable; default: the shipped priors)")
    ap.add_argument("--images", type=int, default=256, help="validation images per band (default %(default)s)")
    ap.add_argument("--plot", default=None, help="write a bar chart to this PNG")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from singlink.data import DatasetSpec
    from singlink.receiver.prior import DiffusionPrior, available

    pairs = args.prior or [f"{name}:{'celeba' if 'celeba' in name else 'cifar10'}" for name in available()]
    rows = {}
    for pair in pairs:
        name, _, dataset = pair.rpartition(":")
        prior = DiffusionPrior.from_pretrained(name).eval()
        spec = DatasetSpec.parse(dataset, prior.image_size[-1])
        rows[name] = {"dataset": spec.tag} | band_losses(prior, spec, args.images)
        print(f"{name:32s} on {spec.tag:10s}  " + "  ".join(f"{b} {rows[name][b]:.4f}" for b in ("low", "mid", "high")))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        width = 0.8 / max(1, len(rows))
        for i, (name, r) in enumerate(rows.items()):
            ax.bar([b + i * width for b in range(3)], [r[b] for b in ("low", "mid", "high")], width,
                   label=f"{name} ({r['dataset']})")
        ax.set_xticks([b + width * (len(rows) - 1) / 2 for b in range(3)],
                      ["low noise\nt < 100", "mid\n100 <= t < 500", "high noise\nt >= 500"])
        ax.set(ylabel="held-out eps-MSE", yscale="log", title="Denoising loss per timestep band (lower: stronger prior)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
    print(json.dumps({"benchmark": "prior_bands", "images": args.images, "priors": rows}))


if __name__ == "__main__":
    main()
