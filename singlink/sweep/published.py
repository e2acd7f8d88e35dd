"""Published DeepJSCC results drawn as reference points on the sweep's PSNR plots, so a curve is read
against the literature.

Bourtsoulatze, Kurka and Gündüz, "Deep joint source-channel coding for wireless image transmission",
IEEE TCCN 5(3), 2019, Fig. 2: CIFAR-10 over AWGN, a 5-layer convolutional codec trained on MSE, one
model per SNR; values read off the figure (about ±0.5 dB). The paper's SNR is the per-symbol SNR
of unit-power complex symbols, singlink's convention (../shared/ENVIRONMENT.md).
"""

PUBLISHED = {
    # (dataset, rho, channel) -> (label, {SNR dB: PSNR dB})
    ("cifar10", "1/6", "awgn"): ("Bourtsoulatze 2019, Fig. 2", {0: 24.0, 5: 27.0, 10: 30.5}),
    ("cifar10", "1/12", "awgn"): ("Bourtsoulatze 2019, Fig. 2", {0: 22.0, 5: 24.5, 10: 27.0}),
}


def published_points(dataset: str, rho: str, channel: str):
    """``(label, [(snr, psnr), ...])`` for a panel of the PSNR plot, or None."""
    entry = PUBLISHED.get((dataset, rho, channel))
    return None if entry is None else (entry[0], sorted(entry[1].items()))
