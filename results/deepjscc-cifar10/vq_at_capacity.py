"""What a separation scheme at Shannon capacity would give at rho 1/192: a reference for the codecs.

At k complex channel uses and SNR s an AWGN link carries at most k log2(1 + s) bits per image, so a
digital scheme with a perfect channel code can send one of M = 2^(k log2(1 + s)) codewords per image.
The best fixed codebook of M images for MSE is what k-means (Lloyd) finds on the training split; this
script fits it (seeded, 30 Lloyd iterations) and prints the mean per-image PSNR of the 10,000 test
images coded to their nearest codeword, the way `singlink evaluate` averages PSNR. It is a reference,
not a bound: an analog code is not held to one codeword per image, and a longer channel block than one
image would do better still. Only the points with M <= 4096 are fitted (k = 16 at -5 and -3 dB).

    .venv/bin/python results/deepjscc-cifar10/vq_at_capacity.py      # about 5 minutes on one core

Last line: a JSON list of {rho, snr_db, capacity_bits, codewords, psnr_test, psnr_train}.
"""
import json

import torch

from singlink.data import DatasetSpec, as_float
from singlink.metrics import psnr
from singlink.phy import awgn_capacity, num_channel_symbols

POINTS = [("1/192", -5), ("1/192", -3)]  # (rho, SNR dB) of CIFAR-10 images


def nearest(x, codebook, chunk=5000):
    """Index of the nearest codeword (squared Euclidean) of every row of x."""
    c2 = (codebook ** 2).sum(1)
    return torch.cat([(c2 - 2 * xb @ codebook.T).argmin(1) for xb in x.split(chunk)])


def lloyd(x, m, iterations=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    codebook = x[torch.randperm(len(x), generator=g)[:m]].clone()
    for _ in range(iterations):
        a = nearest(x, codebook)
        sums = torch.zeros_like(codebook).index_add_(0, a, x)
        counts = torch.bincount(a, minlength=m)
        # an empty cell takes a random training image, so the codebook keeps M codewords
        refill = x[torch.randint(len(x), (m,), generator=g)]
        codebook = torch.where((counts == 0)[:, None], refill, sums / counts.clamp(min=1)[:, None])
    return codebook


def main():
    torch.set_num_threads(1)
    spec = DatasetSpec.parse("cifar10")
    train, test = (as_float(spec.tensors(split)).flatten(1) for split in ("train", "test"))
    out = []
    for rho, snr in POINTS:
        k = num_channel_symbols(rho, (3, 32, 32))
        bits = k * float(awgn_capacity(snr))
        m = round(2 ** bits)
        codebook = lloyd(train, m)
        score = {}
        for name, x in (("test", test), ("train", train[:10000])):
            coded = codebook[nearest(x, codebook)]
            score[name] = psnr(coded.view(-1, 3, 32, 32), x.view(-1, 3, 32, 32)).mean().item()
        print(f"rho {rho} (k={k}) at {snr:+d} dB: capacity {bits:.1f} bits, {m} codewords: "
              f"test PSNR {score['test']:.2f} dB (train {score['train']:.2f})", flush=True)
        out.append({"rho": rho, "snr_db": snr, "capacity_bits": round(bits, 2), "codewords": m,
                    "psnr_test": round(score["test"], 3), "psnr_train": round(score["train"], 3)})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
