"""Images per second of a full DeepJSCC training step (encode, channel, decode, MSE, backward,
Adam) through Sionna's AWGN channel (``phy.TFModule``, gradients through TensorFlow's tape) against
the same step with a pure-torch AWGN of identical statistics (CN(0, sigma^2) per symbol,
sigma^2 = 10^(-SNR/10)), measured side by side in one run: the two are timed in alternating
rounds and the median round of each is reported. Goal: ``ratio`` >= 0.9, i.e. the Sionna channel
is not what makes training slow.

A third path, the same step on the sionna-torch phy backend (Sionna 2's AWGN, PyTorch, no bridge),
runs in a ``--worker`` process in .venv-sionna2 (``tools/bootstrap --sionna2``; the two Sionna lines
cannot share a process) with the same model, seed and data, timed in the same alternating rounds:
``torch_backend_vs_tf`` = its images/s over the TF path's (issue 31's goal >= 1.0). ``--no-torch``
leaves it out.

    .venv/bin/python benchmarks/train_jscc.py [--rho 1/6] [--batch 64] [--channels 48] [--threads N]

Last line of stdout: one JSON object.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

TORCH_PYTHON = Path(__file__).resolve().parent.parent / ".venv-sionna2" / "bin" / "python"


def torch_awgn(z, snr_db):
    """y = z + n, n ~ CN(0, 10^(-SNR/10)) per symbol: the statistics of phy.AWGNChannel."""
    sigma2 = torch.pow(10.0, -snr_db / 10.0)[:, None]
    noise = torch.complex(torch.randn(z.shape), torch.randn(z.shape)) * torch.sqrt(sigma2 / 2)
    return z + noise


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rho", default="1/6")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--channels", type=int, default=48, help="codec feature channels (default %(default)s)")
    ap.add_argument("--steps", type=int, default=10, help="steps per timed round (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds of each (default %(default)s)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-torch", action="store_true", help="leave out the sionna-torch backend's path")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from singlink import phy
    from singlink.jscc.model import DeepJSCC, DeepJSCCConfig

    size = (3, args.image_size, args.image_size)
    k = phy.num_channel_symbols(args.rho, size)
    torch.manual_seed(0)
    model = DeepJSCC(DeepJSCCConfig(k=k, image_size=size, channels=args.channels))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    sionna = phy.as_torch(phy.AWGNChannel())  # the DLPack bridge on sionna-tf, the block itself on sionna-torch
    x = torch.rand(args.batch, *size)
    snr = torch.linspace(-5, 15, args.batch)

    def step(channel):
        y = channel(model.encode(x, snr), snr)
        y = y[0] if isinstance(y, tuple) else y
        loss = torch.mean((model.decode(y, snr) - x) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def timed_round(channel):
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step(channel)
        return args.batch * args.steps / (time.perf_counter() - t0)

    if args.worker:  # one line "go" per round on stdin -> images/s of the Sionna path on this backend
        step(sionna)
        for _ in sys.stdin:
            print(json.dumps({"images_per_s": timed_round(sionna), "backend": phy.BACKEND,
                              "sionna": phy.SIONNA_VERSION}), flush=True)
        return
    worker = None
    if not args.no_torch:
        if not TORCH_PYTHON.exists():
            ap.error(f"{TORCH_PYTHON} is missing: make it with tools/bootstrap --sionna2, or pass --no-torch")
        worker = subprocess.Popen([str(TORCH_PYTHON), __file__, "--worker", *sys.argv[1:]], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, env={**os.environ, "SINGLINK_PHY": "sionna-torch"})

    def worker_round():
        worker.stdin.write("go\n")
        worker.stdin.flush()
        line = worker.stdout.readline()
        if not line:
            raise SystemExit(f"the sionna-torch worker stopped (exit status {worker.wait()}); see its stderr above")
        return json.loads(line)["images_per_s"]

    for channel in (sionna, torch_awgn):  # warm-up: first TF call traces, oneDNN picks kernels
        step(channel)
    rates = {"sionna": [], "torch": []} | ({"sionna_torch_backend": []} if worker else {})
    for _ in range(args.rounds):
        rates["sionna"].append(timed_round(sionna))
        rates["torch"].append(timed_round(torch_awgn))
        if worker:
            rates["sionna_torch_backend"].append(worker_round())
    if worker:
        worker.stdin.close()
        worker.wait(timeout=60)
    s, t = statistics.median(rates["sionna"]), statistics.median(rates["torch"])
    n_params = sum(p.numel() for p in model.parameters())
    print(f"DeepJSCC k={k} ({n_params / 1e6:.2f} M parameters), batch {args.batch}, {torch.get_num_threads()} thread(s): "
          f"Sionna channel {s:.0f} images/s, torch channel {t:.0f} images/s (median of {args.rounds} rounds)")
    res = {"benchmark": "train_jscc", "k": k, "batch": args.batch, "channels": args.channels,
           "n_params": n_params, "threads": torch.get_num_threads(),
           "sionna_images_per_s": round(s, 1), "torch_images_per_s": round(t, 1), "ratio": round(s / t, 3)}
    if worker:
        b = statistics.median(rates["sionna_torch_backend"])
        paired = statistics.median(u / v for u, v in zip(rates["sionna_torch_backend"], rates["sionna"]))
        print(f"  sionna-torch backend (Sionna 2 AWGN, no bridge) {b:.0f} images/s: torch_backend_vs_tf "
              f"{b / s:.3f} (goal >= 1.0; median of per-round ratios {paired:.3f})")
        res.update(sionna_torch_backend_images_per_s=round(b, 1), torch_backend_vs_tf=round(b / s, 3),
                   torch_backend_vs_tf_goal=1.0, torch_backend_vs_tf_paired_median=round(paired, 3))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
