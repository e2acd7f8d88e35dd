"""Physical layer on Sionna: power normalisation, channels, digital chain, capacity, Monte Carlo
error rates, and on the TensorFlow line the TF <-> torch DLPack bridge.

Two backends, chosen once per process by ``SINGLINK_PHY`` (:mod:`singlink.phy.backend`):
``sionna-tf`` (default; Sionna 1.x on TensorFlow, the modules of this folder) or ``sionna-torch``
(Sionna 2.x on PyTorch, :mod:`singlink.phy.sionna2`: the same names on torch tensors, and
TensorFlow never imported). :data:`BACKEND` and :data:`SIONNA_VERSION` say what this process runs.

phy/ knows nothing of images or models (DESIGN.md).
"""
from .backend import check_sionna, selected_backend, sionna_version

BACKEND = selected_backend()
SIONNA_VERSION = sionna_version()
check_sionna(BACKEND)

if BACKEND == "sionna-torch":
    from .sionna2 import *  # noqa: F401,F403
    from .sionna2 import __all__
else:
    from .tfconfig import set_seed  # first: configures TensorFlow before anything else touches it
    from .bridge import BridgeError, TFModule, as_torch, tf_to_torch, torch_to_tf
    from .capacity import awgn_capacity, rayleigh_outage_probability
    from .channel import (AWGNChannel, CHANNELS, RayleighBlockFadingChannel, RayleighFastFadingChannel,
                          equalize, make_channel, snr_db_to_noise_var)
    from .digital import MODULATIONS, DigitalLink, DigitalLinkConfig, bits_per_symbol, ebno_db_to_snr_db
    from .montecarlo import ErrorRateEstimate, MonteCarloRunner, clopper_pearson, count_errors
    from .ofdm import OFDMDigitalLink, OFDMLinkChannel, OFDMSpec, effective_snr_db, is_ofdm, jscc_input, parse_spec
    from .power import normalize_power, num_channel_symbols

    __all__ = [
        "set_seed", "BridgeError", "TFModule", "as_torch", "tf_to_torch", "torch_to_tf", "awgn_capacity",
        "rayleigh_outage_probability", "AWGNChannel", "CHANNELS", "RayleighBlockFadingChannel",
        "RayleighFastFadingChannel", "equalize", "make_channel", "snr_db_to_noise_var", "MODULATIONS",
        "DigitalLink", "DigitalLinkConfig", "bits_per_symbol", "ebno_db_to_snr_db", "ErrorRateEstimate",
        "MonteCarloRunner", "clopper_pearson", "count_errors", "normalize_power", "num_channel_symbols",
        "OFDMDigitalLink", "OFDMLinkChannel", "OFDMSpec", "effective_snr_db", "is_ofdm", "jscc_input", "parse_spec",
    ]

__all__ = ["BACKEND", "SIONNA_VERSION", *__all__]
