"""What the channel allows each shipped CIFAR-10 codec, from second-order statistics: two references
per rho and SNR, drawn with the codecs, the published points and issue 11's targets.

Both treat a CIFAR-10 image as the training mean plus coordinates c_i along the principal components
of the training split (eigenvalues lambda_1 >= lambda_2 >= ...), in singlink's channel convention: k
complex uses, 2k real ones, noise N = 1 / (2 snr) per real use, power 1 per complex symbol.

- **Gaussian rate-distortion at capacity** (``gauss_rd``): the channel carries at most
  R = k log2(1 + snr) bits per image, and a Gaussian source of this covariance needs exactly R for
  D = mean_i min(lambda_i, theta) (reverse water-filling, Cover and Thomas Thm. 10.3.3). A Gaussian
  codebook with a capacity-achieving channel code reaches that D on any source of this covariance as
  blocks grow long (Lapidoth 1997): it is what ideal separation guarantees here. It is not a bound for
  images, whose non-Gaussian structure can do better. ``gauss_rd_mean_mse`` is the PSNR of that mean
  MSE; ``gauss_rd`` the mean per-image PSNR of the 10,000 test images through the forward test channel
  c^_i = (1 - theta / lambda_i) c_i + W_i, W_i ~ N(0, theta (1 - theta / lambda_i)), averaged the way
  `singlink evaluate` and the sweep average (higher than the PSNR of the mean MSE, by Jensen).
- **Linear analog** (SoftCast-style, Jakubczak and Katabi 2011): the top 2k coordinates, one per real
  use, scaled by a_i with a_i^2 lambda_i = max(0, sqrt(lambda_i N / mu) - N) (the MSE-optimal scaling,
  mu set by the power), decoded by the linear MMSE estimator. ``linear_avg_power`` meets the power on
  average over images, as SoftCast does; ``linear`` normalises every image to power 1 per symbol, as
  singlink's codecs must (phy.normalize_power, SING Eq. 6), and tells the receiver each image's gain
  (one real number of side information per image). A codec below them is beaten by a linear map.

It writes ``analog_references.png`` beside itself: per rho, PSNR vs SNR of the shipped codec (this
folder's summary.csv, made by `singlink sweep --preset deepjscc-cifar10`), the two references,
Bourtsoulatze et al. 2019 (Fig. 2) and the issue's targets. Seeded; about 10 minutes on one thread.
Last line: a JSON list of {rho, k, snr_db, capacity_bits, gauss_rd_mean_mse, gauss_rd, linear,
linear_avg_power} (PSNR in dB, 10,000 test images).

    .venv/bin/python results/deepjscc-cifar10/analog_references.py
"""
import csv
import json
import math
from pathlib import Path

import torch

from singlink.data import DatasetSpec, as_float
from singlink.phy import awgn_capacity, num_channel_symbols
from singlink.metrics import psnr
from singlink.sweep.published import published_points

HERE = Path(__file__).resolve().parent
SNRS_DB = (-5, -3, -2.5, -1, 0, 1, 2.5, 3, 5, 7.5, 10, 12.5, 15)  # the deepjscc-cifar10 preset's grid and issue 11's
RHOS = ("1/6", "1/12", "1/48", "1/192")
IMAGE_SHAPE = (3, 32, 32)
# Issue 11's floors: rho 1/6 and 1/12 as stated; rho 1/48 and 1/192 are 1.5 dB above the checkpoints
# the issue found, whose test-set PSNR the retrained codecs' model cards record (1/48: bfa794b's card;
# 1/192: that codec is still the shipped one).
TARGETS = {
    "1/6": {0: 23.5, 5: 26.5, 10: 29.0},
    "1/12": {0: 21.5, 5: 24.0, 10: 26.0},
    "1/48": {s: p + 1.5 for s, p in zip((-5, -3, -1, 1, 3, 5), (15.99, 16.66, 17.29, 17.84, 18.29, 18.63))},
    "1/192": {s: p + 1.5 for s, p in zip((-5, -3, -1, 1, 3, 5), (14.51, 15.00, 15.50, 16.00, 16.44, 16.82))},
}


def bisect(f, lo, hi, target, iterations=200):
    """The x in [lo, hi] (geometric bisection) where the decreasing f(x) meets target."""
    for _ in range(iterations):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if f(mid) > target else (lo, mid)
    return math.sqrt(lo * hi)


def linear_gains(lam, noise, power):
    """a_i of the MSE-optimal linear analog code for variances lam over real uses of noise power
    ``noise`` and total power ``power``: received power p_i = a_i^2 lam_i = (sqrt(lam_i N / mu) - N)^+."""
    p = lambda mu: (torch.sqrt(lam * noise / mu) - noise).clamp(min=0)
    mu = bisect(lambda mu: p(mu).sum().item(), 1e-12, 1e6, power)
    return torch.sqrt(p(mu) / lam)


def water_level(lam, bits):
    """theta of reverse water-filling: sum_i (1/2 log2(lam_i / theta))^+ = bits."""
    return bisect(lambda t: (0.5 * torch.log2(lam / t)).clamp(min=0).sum().item(), 1e-12, lam[0].item(), bits)


def image_psnr(coords, basis, mean, reference):
    x = (mean + coords @ basis.T).clamp(0, 1).float().view(-1, *IMAGE_SHAPE)
    return psnr(x, reference.float().view(-1, *IMAGE_SHAPE)).mean().item()


def references(train, test):
    mean = train.mean(0)
    lam, basis = torch.linalg.eigh(torch.cov((train - mean).T))
    lam, basis = lam.flip(0).clamp(min=1e-12), basis.flip(1)
    c_test = (test - mean) @ basis
    g = torch.Generator().manual_seed(0)
    rows = []
    for rho in RHOS:
        k = num_channel_symbols(rho, IMAGE_SHAPE)
        m = 2 * k
        for snr_db in SNRS_DB:
            snr = 10 ** (snr_db / 10)
            noise = 1 / (2 * snr)
            bits = k * float(awgn_capacity(snr_db))
            theta = water_level(lam, bits)
            shrink = (1 - theta / lam).clamp(min=0)
            d = torch.minimum(lam, torch.tensor(theta, dtype=lam.dtype)).mean().item()
            c_hat = shrink * c_test + torch.sqrt(theta * shrink) * torch.randn(c_test.shape, generator=g, dtype=c_test.dtype)
            rd = image_psnr(c_hat, basis, mean, test)

            a = linear_gains(lam[:m], noise, k)
            s = a * c_test[:, :m]
            gain = math.sqrt(k) / s.norm(dim=1, keepdim=True)  # per-image power 1 per symbol
            lin_avg, lin = (
                image_psnr(lam[:m] * a * gi / (a ** 2 * lam[:m] * gi ** 2 + noise)
                           * (gi * s + math.sqrt(noise) * torch.randn(s.shape, generator=g, dtype=s.dtype)),
                           basis[:, :m], mean, test)
                for gi in (torch.ones_like(gain), gain))
            row = {"rho": rho, "k": k, "snr_db": snr_db, "capacity_bits": round(bits, 1),
                   "gauss_rd_mean_mse": round(-10 * math.log10(d), 2), "gauss_rd": round(rd, 2),
                   "linear": round(lin, 2), "linear_avg_power": round(lin_avg, 2)}
            print(f"rho {rho:>5} {snr_db:+5.1f} dB ({bits:6.1f} bits): Gaussian R(D) {row['gauss_rd']:.2f} "
                  f"(mean MSE {row['gauss_rd_mean_mse']:.2f}), linear {lin:.2f} (average power {lin_avg:.2f})", flush=True)
            rows.append(row)
    return rows


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    codec = {}
    with open(HERE / "summary.csv") as f:
        for r in csv.DictReader(f):
            if r["method"] == "deepjscc" and r["channel"] == "awgn":
                codec.setdefault(r["rho"], []).append((float(r["snr_db"]), float(r["psnr_mean"])))
    fig, axes = plt.subplots(1, len(RHOS), figsize=(4.2 * len(RHOS), 3.8))
    for ax, rho in zip(axes, RHOS):
        mine = [r for r in rows if r["rho"] == rho]
        snr = [r["snr_db"] for r in mine]
        ax.plot(snr, [r["gauss_rd"] for r in mine], "k--", label="Gaussian R(D) at capacity")
        ax.plot(snr, [r["linear"] for r in mine], ":", color="gray", label="linear analog (per-image power, gain told)")
        if rho in codec:
            ax.plot(*zip(*sorted(codec[rho])), "o-", color="C0", label="singlink DeepJSCC (shipped)")
        published = published_points("cifar10", rho, "awgn")
        if published:
            ax.plot(*zip(*published[1]), "k*", ms=10, label=f"{published[0]}")
        ax.plot(*zip(*sorted(TARGETS[rho].items())), "v", color="C3", ms=8, label="issue 11 target")
        ax.set_title(f"CIFAR-10, rho {rho} (k = {num_channel_symbols(rho, IMAGE_SHAPE)}), AWGN")
        ax.set_xlabel("SNR [dB]")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean PSNR of the 10,000 test images [dB]")
    axes[0].legend(fontsize=7, loc="upper left")  # the first panel has every kind of line and point
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    torch.set_num_threads(1)
    spec = DatasetSpec.parse("cifar10")
    train, test = (as_float(spec.tensors(split)).flatten(1).double() for split in ("train", "test"))
    rows = references(train, test)
    plot(rows, HERE / "analog_references.png")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
