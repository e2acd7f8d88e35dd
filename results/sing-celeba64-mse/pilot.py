"""A quick look at restoration settings on the first 8 validation faces at one SNR, one channel draw
(seed 1): mean PSNR and LPIPS of DeepJSCC and of each setting given as METHOD,key=value,...

    .venv/bin/python results/sing-celeba64-mse/pilot.py deepjscc-celeba64-rho1_192-mse -1 \\
        "dps,steps=25,zeta=0.3,start=1" "dps,steps=25,zeta=3,start=1" "dps,steps=25,zeta=30,start=1" \\
        "dps,steps=25,zeta=300,start=1"

Options not given are the codec's recorded choice (so give start=1 for DPS from pure noise). The
command above gave DeepJSCC 17.84 dB, DPS 9.00 / 12.16 / 13.19 / 9.44 dB (LPIPS 0.419 / 0.372 /
0.276 / 0.466) and guided the scan grid of results/sing-tune-celeba64-rho1_*-mse; settings are chosen
by `singlink tune-sing`, not by this.
"""
import sys

import torch

from singlink import phy
from singlink.data import DatasetSpec, load_batch
from singlink.evaluation import score
from singlink.receiver import Receiver
from singlink.receiver.prior import DiffusionPrior

INTS = ("steps", "travel_length", "travel_repeats")
TEXT = ("operator", "projection")

torch.set_num_threads(1)
codec, snr, n = sys.argv[1], float(sys.argv[2]), 8
x, _ = load_batch(DatasetSpec.parse("celeba").dataset("val"), range(n))
prior = DiffusionPrior.from_pretrained("ddpm-celeba64-singlink")
base = Receiver(codec, "deepjscc")
phy.set_seed(1)
with torch.no_grad():
    y, _ = phy.TFModule(phy.make_channel("awgn"))(base.jscc.encode(x, snr), snr)


def show(name, rx):
    out = rx.reconstruct(rx.observe(y, snr), seed=list(range(n))).detach()
    s = score(out, x)
    print(f"{name:48s} psnr {float(s['psnr'].mean()):.2f} lpips {float(s['lpips'].mean()):.4f}", flush=True)


show("deepjscc", base)
for setting in sys.argv[3:]:
    method, *pairs = setting.split(",")
    opts = {}
    for item in pairs:
        key, value = item.split("=")
        opts[key] = value if key in TEXT else int(value) if key in INTS else float(value)
    show(setting, Receiver(codec, method, prior=prior, **opts))
