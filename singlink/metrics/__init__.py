"""Image-quality metrics for (N, 3, H, W) float images in [0, 1], one value per image.

- :func:`psnr`: RGB PSNR in dB, capped at 100 dB for identical images.
- :func:`ssim`, :func:`ms_ssim`: SSIM and MS-SSIM (Wang et al.), RGB-averaged or, with
  ``gray=True``, on MATLAB ``rgb2gray`` luma like the published MATLAB references.
- :func:`lpips` and :class:`LPIPS`: LPIPS v0.1 with AlexNet (default) or VGG16.

Every function validates its inputs (same shape (N, 3, H, W), finite values; ValueError
otherwise) and runs on the inputs' device.
"""
from .fidelity import PSNR_CAP_DB, ms_ssim, psnr, ssim
from .perceptual import LPIPS, lpips

__all__ = ["LPIPS", "PSNR_CAP_DB", "lpips", "ms_ssim", "psnr", "ssim"]
