"""DeepJSCC over GNU Radio's OFDM chain against singlink's own (Sionna) OFDM link, same channel, same SNR.

The same CIFAR-10 test images (the first ``--images`` of ``cifar10/test``), encoded once by the
same codec (``--checkpoint``, default ``deepjscc-cifar10-rho1_6``, k = 512: 11 OFDM symbols of
48 data carriers), go

- over the air through GNU Radio: ``singlink_gr.ofdm_jscc_tx`` -> ``channels.channel_model``
  (the multipath taps ``--taps`` scaled to unit energy, carrier offset ``--cfo`` cycles/sample,
  ``noise_voltage`` = 10^(-SNR/20), i.e. SNR per subcarrier times |H_c|^2) ->
  ``singlink_gr.ofdm_jscc_rx`` (Schmidl & Cox, header/payload demux, ``ofdm_chanest_vcvc``'s
  least-squares estimate from one preamble symbol, ``ofdm_frame_equalizer_vcvc``, pilot phase,
  SNR from the re-modulated header), decoded at that estimate;
- through singlink's Sionna OFDM link (``phy.make_channel("ofdm-awgn:csi=ls:...")``: the same
  52 active carriers of an FFT of 64, one pilot OFDM symbol (least squares on every carrier, the
  estimator GNU Radio's chanest is), LMMSE equalisation, ``phy.ofdm.jscc_input``) over the same
  taps' frequency response (given to the link as its channel, constant over the slot), decoded
  at ``jscc_input``'s effective SNR.

Both decode with the same DeepJSCC at their own SNR estimate; the Sionna link has no carrier
offset, timing or detection to get wrong. PSNR (each image's on uint8 pixels, then the mean) is
given over every image sent (``psnr_gr_all``: an image the GNU Radio receiver did not deliver
counts as the mean CIFAR-10 training image, what the separation baselines output on a failure)
and over the delivered images only, beside the Sionna link's on the same images.

Delivery is measured apart, with more frames than images (``--frames`` random payloads of k
symbols through the same transmitter, channel and receiver, no DeepJSCC): ``delivery`` with its
95% Clopper-Pearson interval, and why frames were lost (no header read, header CRC). The
frame's channel uses: 2 sync words + ``header_ofdm_symbols`` + ceil(k / 48) payload OFDM
symbols; ``header_share`` is the sync words' and header's part of them. Seeds: the channel
model's noise seed and ``phy.set_seed`` are fixed (``--seed``).

Run::

    .venv/bin/python benchmarks/ofdm_jscc.py                        # 64 images, 1,000 frames at 0, 5, 10 dB
    .venv/bin/python benchmarks/ofdm_jscc.py --images 16 --frames 100 --snr 10

The table comes first; the last line of stdout is one JSON object.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "gnuradio" / "python"))

import numpy as np  # noqa: E402

DEFAULT_TAPS = "0.8,0,0.5j,0,0,0.3"


def psnr_u8(a, b) -> np.ndarray:
    """Per-image PSNR (dB) of uint8 images (N, H, W, 3)."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2, axis=(1, 2, 3))
    return 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-12))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="deepjscc-cifar10-rho1_6")
    ap.add_argument("--image-dir", default="cifar10/test")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--frames", type=int, default=1000, help="random-payload frames per SNR for the delivery rate")
    ap.add_argument("--snr", type=float, nargs="+", default=[0.0, 5.0, 10.0])
    ap.add_argument("--taps", default=DEFAULT_TAPS, help="channel taps, one per sample, comma-separated (complex ok)")
    ap.add_argument("--cfo", type=float, default=1e-3, help="carrier offset, cycles/sample")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from singlink_gr.common import resolve_images
    from singlink_gr.link import Decoder, Encoder, load_jscc
    from singlink_gr.ofdm import OFDMConfig
    from singlink.baselines.separation import training_mean_image
    from singlink.phy.montecarlo import clopper_pearson
    from singlink_gr.ofdm_testing import frame_delivery, over_gnuradio, over_sionna, unit_taps

    taps = unit_taps([complex(t) for t in args.taps.split(",")])
    jscc = load_jscc(args.checkpoint)
    enc, dec = Encoder(jscc), Decoder(jscc)
    files = resolve_images(args.image_dir, args.images)
    originals = np.stack([enc.load(p) for p, _ in files])
    cfg = OFDMConfig()
    k = int(jscc.config.k)
    mean = training_mean_image(num_images=5000)   # (3, H, W) in [0, 1]: an undelivered image's score
    fallback = np.round(mean.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    frame_symbols = 2 + cfg.header_ofdm_symbols + cfg.payload_ofdm_symbols(k)
    rows = []
    print(f"{'SNR':>5} {'frames delivered (95% CI)':>28} {'images':>9} {'PSNR GR all':>11} {'Sionna':>7} "
          f"{'diff':>6} {'| delivered only: GR':>20} {'Sionna':>7} {'SNR est GR':>10} {'SNR eff Sionna':>14}")
    for snr_db in args.snr:
        t0 = time.perf_counter()
        delivery = frame_delivery(args.frames, k, snr_db, taps, args.cfo, args.seed + 2, cfg) if args.frames else None
        got, stats = over_gnuradio(files, jscc, snr_db, taps, args.cfo, args.seed + 1)
        seconds = time.perf_counter() - t0
        z = np.concatenate([enc.encode(originals[s:s + 16], snr_db) for s in range(0, len(files), 16)])
        ref, ref_snr, spec = over_sionna(z, snr_db, taps, args.seed, dec, cfg)
        idx = sorted(i for i in got if 0 <= i < len(files))
        received = np.stack([got[i][0] if i in got else fallback for i in range(len(files))])
        p_all = psnr_u8(received, originals)
        p_ref = psnr_u8(ref, originals)
        row = {"snr_db": snr_db, "images": len(files), "images_delivered": len(idx), "gr_stats": stats,
               "psnr_gr_all": round(float(p_all.mean()), 3), "psnr_sionna_all": round(float(p_ref.mean()), 3),
               "psnr_diff_all_db": round(float(p_all.mean() - p_ref.mean()), 3),
               "psnr_gr_delivered": round(float(p_all[idx].mean()), 3) if idx else None,
               "psnr_sionna_same_images": round(float(p_ref[idx].mean()), 3) if idx else None,
               "snr_est_gr_db": round(float(np.mean([got[i][1] for i in idx])), 3) if idx else None,
               "snr_eff_sionna_db": round(float(np.mean(ref_snr)), 3), "gr_seconds": round(seconds, 1)}
        if delivery:
            lost = delivery["sent"] - delivery["delivered"]
            lo, hi = clopper_pearson(lost, delivery["sent"])
            row.update(frames=delivery, delivery=round(delivery["delivered"] / delivery["sent"], 4),
                       delivery_ci95=[round(1 - hi, 4), round(1 - lo, 4)])
        rows.append(row)
        ci = (f"{delivery['delivered']:5d}/{delivery['sent']:<5d} ({row['delivery_ci95'][0]:.3f}-"
              f"{row['delivery_ci95'][1]:.3f})" if delivery else "-")
        print(f"{snr_db:5.1f} {ci:>28} {len(idx):4d}/{len(files):<4d} {row['psnr_gr_all']:11.2f} "
              f"{row['psnr_sionna_all']:7.2f} {row['psnr_diff_all_db']:6.2f} "
              f"{row['psnr_gr_delivered'] or float('nan'):20.2f} {row['psnr_sionna_same_images'] or float('nan'):7.2f} "
              f"{row['snr_est_gr_db'] or float('nan'):10.2f} {row['snr_eff_sionna_db']:14.2f}", flush=True)
    print(json.dumps({"benchmark": "ofdm_jscc", "checkpoint": args.checkpoint, "k": k,
                      "taps": args.taps, "cfo": args.cfo, "fft_len": cfg.fft_len, "cp_len": cfg.cp_len,
                      "header_ofdm_symbols": cfg.header_ofdm_symbols, "frame_ofdm_symbols": frame_symbols,
                      "header_share": round((2 + cfg.header_ofdm_symbols) / frame_symbols, 3),
                      "sionna_spec": spec, "seed": args.seed, "rows": rows}))


if __name__ == "__main__":
    main()
