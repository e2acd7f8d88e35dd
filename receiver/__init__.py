"""PyTorch receiver plugin: DeepJSCC decoding and SING restoration (SING-Zero, SING-INN).

    >>> from singlink.receiver import Receiver, available_methods
"""
from .inn import ConditionalINN, haar_merge, haar_split
from .operators import AvgPoolDownsample, Compose, Decolorize, Identity, LinearOperator, make_operator
from .plugin import Receiver, available_methods, make_method, register_method
from .schedule import PosteriorSchedule, linear_alphas_cumprod, spaced_timesteps
from .sing_inn import SINGINN, paper_zeta
from .sing_zero import SINGZero, image_generators

__all__ = ["ConditionalINN", "haar_merge", "haar_split", "SINGINN", "paper_zeta",
           "AvgPoolDownsample", "Compose", "Decolorize", "Identity", "LinearOperator", "make_operator",
           "Receiver", "available_methods", "make_method", "register_method", "PosteriorSchedule",
           "linear_alphas_cumprod", "spaced_timesteps", "SINGZero", "image_generators"]
