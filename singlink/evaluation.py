"""Image transmission through the Sionna channel and restoration, measured per image.

One *cell* is (rho, SNR, channel, realisation) over a set of images: the images are encoded
once, sent through one seeded channel draw, decoded once, and every restoration method is
applied to the same x_JSCC, so methods are compared on identical channel noise (paired).
Rows are per image; :func:`summarize` gives means with 95% confidence intervals.
"""
import math
import time

import numpy as np
import torch

from .provenance import derive_seed

METRICS = ("psnr", "ms_ssim", "lpips")


def model_snr(snr_db: float) -> float:
    """The SNR the models are told: ``snr_db``, with +inf (a noiseless channel, which the channel
    itself handles exactly) capped at :data:`singlink.receiver.plugin.NOISELESS_SNR_DB`."""
    from .receiver.plugin import NOISELESS_SNR_DB

    return min(float(snr_db), NOISELESS_SNR_DB)


def receive(rx, y, h, snr_db, channel: str):
    """What ``rx`` knows of what ``channel`` returned, ``(y, h)``: its
    :class:`~singlink.receiver.observation.Observation` (x_JSCC, the per-image SNR the decoder used,
    :meth:`singlink.receiver.Receiver.effective_snr_db`, and the symbols with their channel state).
    AWGN: y as it is; flat fading: equalised with ``h``; OFDM (``ofdm-...``, whose ``h`` is the
    per-RE effective noise): :func:`singlink.phy.jscc_input`."""
    from . import phy

    csi = {"no_eff": h} if phy.is_ofdm(channel) else {"h": None if channel == "awgn" else h}
    return rx.observe(y, snr_db, **csi)


def mean_ci95(values) -> tuple[float, float]:
    """Mean and the half-width of its 95% Student-t confidence interval (0 for one value)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return float(v.mean()) if len(v) else float("nan"), 0.0
    from scipy.stats import t

    return float(v.mean()), float(t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))


def score(x_hat, x, vgg: bool = False) -> dict:
    """Per-image PSNR, MS-SSIM and LPIPS (AlexNet) of ``x_hat`` against ``x`` (both (N, 3, H, W) in
    [0, 1]); with ``vgg`` also LPIPS on VGG16 (``lpips_vgg``), a second perceptual metric that no
    codec here is trained on."""
    from .metrics import lpips, ms_ssim, psnr

    with torch.no_grad():
        out = {"psnr": psnr(x_hat, x), "ms_ssim": ms_ssim(x_hat, x), "lpips": lpips(x_hat, x)}
        if vgg:
            out["lpips_vgg"] = lpips(x_hat, x, net="vgg")
        return out


def run_cell(jscc, receivers: dict, images, image_ids, snr_db: float, channel: str = "awgn",
             realization: int = 0, seed: int = 0, batch: int = 64, progress: bool = False,
             vgg: bool = False) -> list[dict]:
    """Transmit ``images`` (N, 3, H, W) with ``jscc`` over ``channel`` at ``snr_db`` and restore them
    with each of ``receivers`` ({method name: Receiver}); returns one row per (method, image)
    (with ``vgg``, LPIPS-VGG too)."""
    from . import phy

    key = ("cell", jscc.config.k, snr_db, channel, realization)
    phy.set_seed(derive_seed(seed, *key))
    channel_block = phy.as_torch(phy.make_channel(channel, power=jscc.config.power))
    rows = []
    for start in range(0, len(images), batch):
        x = images[start:start + batch]
        ids = list(image_ids[start:start + batch])
        with torch.no_grad():
            y, h = channel_block(jscc.encode(x, model_snr(snr_db)), float(snr_db))
        for method, rx in receivers.items():
            t0 = time.perf_counter()
            obs = receive(rx, y, h, snr_db, channel)
            seeds = [derive_seed(seed, method, i, snr_db, channel, realization) for i in ids]
            with torch.no_grad():
                x_hat = rx.reconstruct(obs, seed=seeds, progress=progress)
            scores = score(x_hat, x, vgg=vgg)
            seconds = (time.perf_counter() - t0) / len(ids)
            for j, image_id in enumerate(ids):
                rows.append({"method": method, "k": jscc.config.k, "snr_db": float(snr_db), "channel": channel,
                             "image_id": image_id, "realization": realization, "seed": seed,
                             **{m: float(v[j]) for m, v in scores.items()}, "channel_uses": jscc.config.k,
                             "wall_s": seconds})
    return rows


def summarize(rows, keys=("method", "k", "snr_db", "channel")) -> list[dict]:
    """Group rows by ``keys``; n and mean / ci95 of psnr, ms_ssim, lpips (and lpips_vgg when the rows
    have it) per group."""
    metrics = _metrics(rows)
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, rs in sorted(groups.items(), key=lambda kv: tuple(str(v) if isinstance(v, str) else v for v in kv[0])):
        entry = dict(zip(keys, key)) | {"n": len(rs)}
        for m in metrics:
            entry[f"{m}_mean"], entry[f"{m}_ci95"] = mean_ci95([r[m] for r in rs])
        out.append(entry)
    return out


def image_means(pairs) -> list[float]:
    """The mean of each image's values, from ``(image_id, value)`` pairs: the independent units the
    95% intervals are taken over (an image's realisations are not independent)."""
    per_image: dict = {}
    for image_id, value in pairs:
        per_image.setdefault(image_id, []).append(value)
    return [float(np.mean(v)) for v in per_image.values()]


def paired_difference(got: dict, a: str, b: str, metrics=METRICS):
    """In one cell, ``got`` = {method: {(image_id, realization): row}}: the keys of the rows both
    methods have, and for each metric the mean per-image difference metric(a) - metric(b) with its
    95% Student-t half-width over images; None when they share no rows."""
    shared = sorted(set(got.get(a, {})) & set(got.get(b, {})))
    if not shared:
        return None
    return shared, {m: mean_ci95(image_means((key[0], got[a][key][m] - got[b][key][m]) for key in shared))
                    for m in metrics}


def _metrics(rows) -> tuple:
    """The metrics ``rows`` hold: :data:`METRICS`, and lpips_vgg when scored with it."""
    return METRICS + (("lpips_vgg",) if rows and "lpips_vgg" in rows[0] else ())


def paired(rows, reference: str = "deepjscc", keys=("k", "snr_db", "channel")) -> list[dict]:
    """For every method other than ``reference``, per group of ``keys``: the mean per-image difference
    (method - reference) of each metric on the same images and channel draws, with its 95% CI
    (:func:`paired_difference`)."""
    metrics = _metrics(rows)
    cells: dict = {}
    for r in rows:
        cells.setdefault(tuple(r[k] for k in keys), {}).setdefault(r["method"], {})[(r["image_id"], r["realization"])] = r
    methods = sorted({r["method"] for r in rows} - {reference})
    out = []
    for method in methods:
        for cell in sorted(cells):
            found = paired_difference(cells[cell], method, reference, metrics)
            if found is None:
                continue
            shared, diffs = found
            entry = {"method": method, "versus": reference, **dict(zip(keys, cell)), "n": len(shared)}
            for m in metrics:
                entry[f"{m}_diff"], entry[f"{m}_diff_ci95"] = diffs[m]
            out.append(entry)
    return out


def to_csv(records: list[dict]) -> str:
    """CSV text of ``records`` (dicts with the same keys, the first one's order)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(records[0]))
    w.writeheader()
    w.writerows(records)
    return buf.getvalue()
