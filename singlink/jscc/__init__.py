"""DeepJSCC (``singlink.jscc.DeepJSCC``, ``DeepJSCCConfig``): see :mod:`singlink.jscc.model`.

The names are loaded on first use, so that importing the package (as the command line does for
its argument parsers) does not import torch."""

__all__ = ["DeepJSCC", "DeepJSCCConfig", "available"]

#: how the feature map becomes the k channel symbols (:class:`DeepJSCCConfig`): "conv" (a 3x3 conv,
#: one latent position per 8x8 patch) or "dense" (one linear map over the whole feature map)
BOTTLENECKS = ("conv", "dense")
#: codec families, what a DeepJSCC was trained to minimise: "perceptual" (MSE + an LPIPS term, Eq. 10
#: with lambda > 0) or "mse" (distortion only: MSE, or the per-image PSNR loss)
FAMILIES = ("perceptual", "mse")


def __getattr__(name):
    if name in __all__:
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
