"""SING-INN against SING-Zero and DeepJSCC by each face's effective SNR under Rayleigh block fading.

Redraws every batch's channel with the sweep's own seed and code (:func:`singlink.sweep.tasks.received`;
the draw is shared by the three methods), so each stored row gets the effective SNR its receiver was told, then
prints paired LPIPS differences with 95% CIs per effective-SNR band. Reads the store only.

    .venv/bin/python results/sing-celeba64-rayleigh/by_effective_snr.py [STORE FOLDER]
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

from singlink.data import load_batch
from singlink.evaluation import mean_ci95
from singlink.receiver import Receiver
from singlink.sweep.config import build_config, checkpoint_names
from singlink.sweep.store import ResultStore
from singlink.sweep.tasks import received

folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
cfg = build_config(preset="celeba64-rayleigh")
rho, channel = cfg.rho[0], cfg.channel[0]
torch.set_num_threads(1)
data = cfg.spec.dataset(cfg.split)
rx = Receiver(checkpoint_names(cfg, rho)["jscc"], "deepjscc")
effective = {}
for snr in cfg.snr:
    for b, start in enumerate(range(0, cfg.images, cfg.batch)):
        ids = list(range(start, min(start + cfg.batch, cfg.images)))
        x, _ = load_batch(data, ids)
        snr_rx = received(rx, x, cfg.seed, rho, float(snr), channel, 0, b).snr_db
        effective.update({(float(snr), i): float(s) for i, s in zip(ids, snr_rx)})

rows = ResultStore(folder).rows()
lpips = {(r["method"], r["snr_db"], r["image_id"]): r["lpips"] for r in rows}
bands = [(-np.inf, -15), (-15, -7), (-7, -3), (-3, 5), (5, np.inf)]
out = []
print("effective SNR band | faces | SING-INN - SING-Zero | SING-Zero - DeepJSCC | SING-INN - DeepJSCC (LPIPS, 95% CI)")
for lo, hi in bands:
    keys = [k for k, s in effective.items() if lo <= s < hi and ("sing-inn", *k) in lpips]
    diff = {pair: mean_ci95([lpips[(pair[0], *k)] - lpips[(pair[1], *k)] for k in keys])
            for pair in (("sing-inn", "sing-zero"), ("sing-zero", "deepjscc"), ("sing-inn", "deepjscc"))}
    print(f"[{lo:g}, {hi:g}) dB | {len(keys)} | " + " | ".join(f"{m:+.4f} ± {c:.4f}" for m, c in diff.values()))
    out.append({"band_db": [lo, hi], "faces": len(keys), **{"-".join(p): v for p, v in diff.items()}})
print(json.dumps(out))
