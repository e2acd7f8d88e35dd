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
offset, timing or detection to get wrong. PSNR is the mean over the images the GNU Radio
receiver delivered (each image's PSNR on uint8 pixels); frames lost to detection or a failed
header CRC are counted (``delivered``). Seeds: the channel model's noise seed and
``phy.set_seed`` are fixed (``--seed``).

Run::

    .venv/bin/python benchmarks/ofdm_jscc.py                        # 64 images at 0, 5, 10 dB
    .venv/bin/python benchmarks/ofdm_jscc.py --images 16 --snr 10

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
    from singlink_gr.ofdm_testing import over_gnuradio, over_sionna, unit_taps

    taps = unit_taps([complex(t) for t in args.taps.split(",")])
    jscc = load_jscc(args.checkpoint)
    enc, dec = Encoder(jscc), Decoder(jscc)
    files = resolve_images(args.image_dir, args.images)
    originals = np.stack([enc.load(p) for p, _ in files])
    cfg = OFDMConfig()
    rows = []
    print(f"{'SNR':>5} {'delivered':>9} {'PSNR GR':>8} {'PSNR Sionna':>11} {'diff':>6} {'SNR est GR':>10} "
          f"{'SNR eff Sionna':>14}")
    for snr_db in args.snr:
        t0 = time.perf_counter()
        got, stats = over_gnuradio(files, jscc, snr_db, taps, args.cfo, args.seed + 1)
        seconds = time.perf_counter() - t0
        z = np.concatenate([enc.encode(originals[s:s + 16], snr_db) for s in range(0, len(files), 16)])
        ref, ref_snr, spec = over_sionna(z, snr_db, taps, args.seed, dec, cfg)
        idx = sorted(i for i in got if 0 <= i < len(files))
        p_gr = psnr_u8(np.stack([got[i][0] for i in idx]), originals[idx]) if idx else np.zeros(0)
        p_ref = psnr_u8(ref, originals)
        row = {"snr_db": snr_db, "images": len(files), "delivered": len(idx), "gr_stats": stats,
               "psnr_gr": round(float(p_gr.mean()), 3) if idx else None,
               "psnr_sionna_same_images": round(float(p_ref[idx].mean()), 3) if idx else None,
               "psnr_sionna_all": round(float(p_ref.mean()), 3),
               "psnr_diff_db": round(float(p_gr.mean() - p_ref[idx].mean()), 3) if idx else None,
               "snr_est_gr_db": round(float(np.mean([got[i][1] for i in idx])), 3) if idx else None,
               "snr_eff_sionna_db": round(float(np.mean(ref_snr)), 3), "gr_seconds": round(seconds, 1)}
        rows.append(row)
        print(f"{snr_db:5.1f} {len(idx):4d}/{len(files):<4d} {row['psnr_gr'] or float('nan'):8.2f} "
              f"{row['psnr_sionna_same_images'] or float('nan'):11.2f} {row['psnr_diff_db'] or float('nan'):6.2f} "
              f"{row['snr_est_gr_db'] or float('nan'):10.2f} {row['snr_eff_sionna_db']:14.2f}", flush=True)
    print(json.dumps({"benchmark": "ofdm_jscc", "checkpoint": args.checkpoint, "k": int(jscc.config.k),
                      "taps": args.taps, "cfo": args.cfo, "fft_len": cfg.fft_len, "cp_len": cfg.cp_len,
                      "header_ofdm_symbols": cfg.header_ofdm_symbols, "sionna_spec": spec, "seed": args.seed,
                      "rows": rows}))


if __name__ == "__main__":
    main()
