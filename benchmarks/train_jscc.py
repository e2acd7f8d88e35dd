"""Images per second of a full DeepJSCC training step (encode, channel, decode, MSE, backward,
Adam) through Sionna's AWGN channel (``phy.TFModule``, gradients through TensorFlow's tape) against
the same step with a pure-torch AWGN of identical statistics (CN(0, sigma^2) per symbol,
sigma^2 = 10^(-SNR/10)), measured side by side in one run: the two are timed in alternating
rounds and the median round of each is reported. Goal: ``ratio`` >= 0.9, i.e. the Sionna channel
is not what makes training slow.

    .venv/bin/python benchmarks/train_jscc.py [--rho 1/6] [--batch 64] [--channels 48] [--threads N]

Last line of stdout: one JSON object.
"""
import argparse
import json
import statistics
import time

import torch


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
    sionna = phy.TFModule(phy.AWGNChannel())
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

    for channel in (sionna, torch_awgn):  # warm-up: first TF call traces, oneDNN picks kernels
        step(channel)
    rates = {"sionna": [], "torch": []}
    for _ in range(args.rounds):
        rates["sionna"].append(timed_round(sionna))
        rates["torch"].append(timed_round(torch_awgn))
    s, t = statistics.median(rates["sionna"]), statistics.median(rates["torch"])
    n_params = sum(p.numel() for p in model.parameters())
    print(f"DeepJSCC k={k} ({n_params / 1e6:.2f} M parameters), batch {args.batch}, {torch.get_num_threads()} thread(s): "
          f"Sionna channel {s:.0f} images/s, torch channel {t:.0f} images/s (median of {args.rounds} rounds)")
    print(json.dumps({"benchmark": "train_jscc", "k": k, "batch": args.batch, "channels": args.channels,
                      "n_params": n_params, "threads": torch.get_num_threads(),
                      "sionna_images_per_s": round(s, 1), "torch_images_per_s": round(t, 1),
                      "ratio": round(s / t, 3)}))


if __name__ == "__main__":
    main()
