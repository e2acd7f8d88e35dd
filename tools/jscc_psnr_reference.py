"""PSNR of the shipped DeepJSCC (trained on the sionna-tf backend) through AWGN, Rayleigh block
fading and OFDM over TDL-A with LS channel estimation, on whichever phy backend this process runs (SINGLINK_PHY), as JSON: the reference
tests/test_phy_torch.py holds the sionna-torch backend to (issue 31: a DeepJSCC trained on one
backend evaluated on the other within 0.1 dB PSNR). The two backends live in different environments
(both Sionna lines import as ``sionna``), so the TF side's numbers are stored, made by

    OMP_NUM_THREADS=1 .venv/bin/python tools/jscc_psnr_reference.py > tests/reference/jscc_psnr_sionna-tf.json

The images and the codec are the same on both; only the channel's draws differ (the two RNGs
differ), and over N images the mean PSNR's Monte Carlo error is far below 0.1 dB.

``--codec FOLDER --awgn-only`` scores another codec (the other direction: one trained on
sionna-torch, scored here on sionna-tf; tests/test_phy_torch.py runs it in .venv).
"""
import argparse
import json
import sys

CODEC, DATASET, N_IMAGES, SEED = "deepjscc-cifar10-rho1_48", "cifar10", 500, 0
#: (channel, SNR dB) cells
CELLS = [("awgn", 0.0), ("awgn", 10.0), ("rayleigh-block", 5.0), ("ofdm-tdl-a:csi=ls", 10.0)]


def run_cells(codec=CODEC, cells=CELLS):
    """``[{channel, snr_db, psnr_mean, psnr_ci95, n}]`` of ``codec`` (a shipped name or a folder)
    for ``cells`` on this process's backend."""
    import torch

    from singlink.data import dataset_by_name, first_n, load_batch
    from singlink.evaluation import run_cell, summarize
    from singlink.jscc.model import DeepJSCC
    from singlink.receiver import Receiver

    jscc = DeepJSCC.from_pretrained(codec).eval()
    x, _ = load_batch(first_n(dataset_by_name(DATASET, "test"), N_IMAGES), range(N_IMAGES))
    rx = {"deepjscc": Receiver(jscc, "deepjscc")}
    out = []
    for channel, snr_db in cells:
        with torch.no_grad():
            rows = run_cell(jscc, rx, x, list(range(N_IMAGES)), snr_db, channel=channel, seed=SEED, batch=250)
        s = summarize(rows)[0]
        out.append({"channel": channel, "snr_db": snr_db, "psnr_mean": s["psnr_mean"], "psnr_ci95": s["psnr_ci95"],
                    "n": s["n"]})
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--codec", default=CODEC, help=f"shipped codec name or folder (default {CODEC})")
    p.add_argument("--awgn-only", action="store_true", help="only the AWGN cells")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    from singlink import phy

    cells = [c for c in CELLS if c[0] == "awgn"] if args.awgn_only else CELLS
    json.dump({"backend": phy.BACKEND, "sionna": phy.SIONNA_VERSION, "codec": args.codec, "dataset": DATASET,
               "split": "test", "n_images": N_IMAGES, "seed": SEED, "cells": run_cells(args.codec, cells)},
              sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
