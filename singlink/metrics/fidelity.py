"""Pixel-fidelity metrics: PSNR, SSIM and MS-SSIM, batched and per image.

All functions take two float tensors (N, 3, H, W) with values in [0, 1] (dynamic range
L = 1, i.e. 8-bit images divided by 255) and return one value per image, shape (N,).
They run on whatever device the inputs live on.

References:
    Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from
    error visibility to structural similarity", IEEE TIP 13(4), 2004 (SSIM).
    Z. Wang, E. P. Simoncelli, A. C. Bovik, "Multiscale structural similarity for image
    quality assessment", Asilomar 2003 (MS-SSIM).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import check_pair

PSNR_CAP_DB = 100.0
"""PSNR reported for identical images: the MSE is floored at 10**(-PSNR_CAP_DB / 10)."""

WIN_SIZE = 11
WIN_SIGMA = 1.5
K1, K2 = 0.01, 0.03
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""Per-scale exponents of Wang et al. 2003 (finest scale first)."""

_LUMA = (0.2989, 0.5870, 0.1140)  # MATLAB rgb2gray


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio over RGB, per image, in dB.

    PSNR = 10 log10(MAX^2 / MSE) with MSE = mean over the 3 channels and all pixels of
    (x - y)^2. On [0, 1] images MAX = 1, identical to MAX = 255 on 8-bit values.

    Finite cap: MSE is clamped below at 1e-10 (computed in float64), so identical images
    give exactly ``PSNR_CAP_DB`` = 100 dB instead of +inf, and sweeps can average PSNR.
    Distortions finer than a 1e-5 RMS error (far below one 8-bit step, 3.9e-3) are
    reported as 100 dB as well.

    Returns:
        Tensor (N,) in the dtype of ``x``.
    """
    check_pair(x, y)
    mse = (x.double() - y.double()).pow(2).mean(dim=(1, 2, 3))
    floor = 10.0 ** (-PSNR_CAP_DB / 10.0)
    return (-10.0 * torch.log10(mse.clamp_min(floor))).to(x.dtype)


def ssim(x: torch.Tensor, y: torch.Tensor, *, gray: bool = False) -> torch.Tensor:
    """Structural similarity (SSIM) per image, mean of the SSIM map.

    For local statistics under an 11x11 Gaussian window (sigma 1.5), valid positions only
    (no padding, as in Wang's ``ssim_index.m``), Wang et al. 2004, Eq. (13):

        SSIM(x, y) = (2 mu_x mu_y + C1)(2 sigma_xy + C2)
                     / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2)),

    C1 = (K1 L)^2, C2 = (K2 L)^2, K1 = 0.01, K2 = 0.03, L = 1; the score is the mean of
    the map (Eq. 17), computed per channel and averaged over the 3 RGB channels.

    Args:
        gray: score the luma Y = 0.2989 R + 0.5870 G + 0.1140 B rounded to 8-bit levels,
            as MATLAB's ``rgb2gray`` does on uint8 images, instead of averaging over RGB.
            This is the protocol of the published MATLAB reference values: on the
            TID2013 calibration pairs it agrees with them to within 6e-5 (they are given
            to 4 digits).

    Images smaller than 11 pixels on a side use the window policy of :func:`ms_ssim`.

    Returns:
        Tensor (N,); 1 for identical images, may be negative for anti-correlated ones.
    """
    check_pair(x, y)
    x, y = _prepare(x, y, gray)
    return _ssim_and_cs(x, y)[0].mean(dim=1)


def ms_ssim(x: torch.Tensor, y: torch.Tensor, *, gray: bool = False) -> torch.Tensor:
    """Multi-scale SSIM per image (Wang et al. 2003, Eq. 7).

        MS-SSIM = [l_M]^alpha_M * prod_{j=1..M} [c_j]^beta_j [s_j]^gamma_j,

    with M = 5 and alpha_j = beta_j = gamma_j = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333),
    evaluated as in Wang's ``msssim.m``: the mean contrast-structure map
    cs_j = (2 sigma_xy + C2) / (sigma_x^2 + sigma_y^2 + C2) at scales 1..M-1, times the
    mean SSIM at the coarsest scale M. Between scales the images are low-pass filtered
    and subsampled by 2 (2x2 average, the last row/column replicated when a side is odd,
    i.e. ``imfilter(ones(2)/4, 'symmetric')`` then ``(1:2:end)``). Each channel is scored
    separately and the 3 RGB channels are averaged (or luma only, see ``gray``).

    Small images (policy of Google's reference ``msssim.py``, ``_SSIMForMultiScale``): at
    every scale the Gaussian window is shrunk to ``size = min(11, H_j, W_j)`` with
    ``sigma = 1.5 * size / 11``. All 5 scales are always used, so a 32x32 image is
    scored with windows 11, 11, 8, 4, 2 on 32, 16, 8, 4, 2 pixels and never fails.
    Negative ``cs_j`` or SSIM values are clamped to 0 before the fractional powers (as
    ``pytorch_msssim`` does), so the result lies in [0, 1].

    Args:
        gray: score MATLAB-``rgb2gray`` luma rounded to 8 bits (see :func:`ssim`). On the
            TID2013 calibration pairs this lands within 0.0045 of the published MATLAB
            MS-SSIM values.

    Returns:
        Tensor (N,) in [0, 1]; 1 for identical images.
    """
    check_pair(x, y)
    x, y = _prepare(x, y, gray)
    weights = torch.tensor(MS_SSIM_WEIGHTS, dtype=x.dtype, device=x.device)
    levels = len(MS_SSIM_WEIGHTS)
    score = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device)
    for j in range(levels):
        s, cs = _ssim_and_cs(x, y)
        if j < levels - 1:
            score = score * cs.clamp_min(0).pow(weights[j])
            x, y = _halve(x), _halve(y)
        else:
            score = score * s.clamp_min(0).pow(weights[j])
    return score.mean(dim=1)


def _prepare(x: torch.Tensor, y: torch.Tensor, gray: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Promote half precision to float32 and, for ``gray``, reduce to 8-bit MATLAB luma."""
    if gray:
        return _matlab_luma(x), _matlab_luma(y)
    dtype = torch.promote_types(x.dtype, torch.float32)
    return x.to(dtype), y.to(dtype)


def _matlab_luma(x: torch.Tensor) -> torch.Tensor:
    """rgb2gray of the 8-bit image: round(0.2989 R + 0.5870 G + 0.1140 B) / 255, (N, 1, H, W).

    Computed in float64 so that 8-bit inputs stored as k/255 in float32 round exactly;
    ties round half up, like MATLAB's ``round`` on these non-negative values.
    """
    w = torch.tensor(_LUMA, dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
    luma = torch.floor((255.0 * x.double() * w).sum(dim=1, keepdim=True) + 0.5) / 255.0
    return luma.to(torch.promote_types(x.dtype, torch.float32))


def _gaussian(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``size`` taps centred between samples for even sizes."""
    t = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2.0
    g = torch.exp(-(t * t) / (2.0 * sigma * sigma))
    return g / g.sum()


def _ssim_and_cs(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM map and mean contrast-structure map per image and channel, each (N, C).

    The window is ``min(11, H, W)`` taps with sigma scaled in proportion (small-image
    policy of :func:`ms_ssim`); the separable Gaussian is applied as two grouped 1-D
    convolutions, keeping only valid positions.
    """
    c, h, w = x.shape[1:]
    size = min(WIN_SIZE, h, w)
    g = _gaussian(size, WIN_SIGMA * size / WIN_SIZE, x.dtype, x.device)
    gh = g.view(1, 1, 1, size).repeat(c, 1, 1, 1)
    gv = g.view(1, 1, size, 1).repeat(c, 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, gh, groups=c), gv, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = K1 ** 2, K2 ** 2  # (K L)^2 with L = 1
    cs = (2.0 * cov + c2) / (var_x + var_y + c2)
    lum = (2.0 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)
    return (lum * cs).mean(dim=(2, 3)), cs.mean(dim=(2, 3))


def _halve(x: torch.Tensor) -> torch.Tensor:
    """2x2 average and subsample by 2; an odd last row/column is replicated first."""
    pad_w, pad_h = x.shape[-1] % 2, x.shape[-2] % 2
    if pad_w or pad_h:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return F.avg_pool2d(x, kernel_size=2)
