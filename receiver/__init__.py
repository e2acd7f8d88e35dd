"""PyTorch receiver plugin: DeepJSCC decoding and SING restoration (SING-Zero; SING-INN to come).

    >>> from singlink.receiver import Receiver, available_methods
"""
from .operators import AvgPoolDownsample, Compose, Decolorize, Identity, LinearOperator, make_operator
from .plugin import Receiver, available_methods, make_method, register_method
from .schedule import PosteriorSchedule, linear_alphas_cumprod, spaced_timesteps
from .sing_zero import SINGZero, image_generators

__all__ = ["AvgPoolDownsample", "Compose", "Decolorize", "Identity", "LinearOperator", "make_operator",
           "Receiver", "available_methods", "make_method", "register_method", "PosteriorSchedule",
           "linear_alphas_cumprod", "spaced_timesteps", "SINGZero", "image_generators"]
