"""Separation baselines: BPG/HEVC + LDPC, and the BPG + capacity bound.

    >>> from singlink.baselines import SeparationBaseline, training_mean_image
    >>> base = SeparationBaseline("bpg-ldpc", training_mean_image(num_images=1000), k=512,
    ...                           modulation="16qam", coderate="3/4")
    >>> x_hat, info = base.transmit(x, snr_db=15.0, channel="awgn", seed=0)
"""
from .codec import QP_RANGE, BPGCodec, HEVCIntraCodec, ImageCodec, make_codec
from .separation import (MCS_TABLE, VARIANTS, CodeSplit, SeparationBaseline, code_split,
                         training_mean_image)

__all__ = ["QP_RANGE", "BPGCodec", "HEVCIntraCodec", "ImageCodec", "make_codec", "MCS_TABLE", "VARIANTS",
           "CodeSplit", "SeparationBaseline", "code_split", "training_mean_image"]
