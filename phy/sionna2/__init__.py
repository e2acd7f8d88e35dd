"""The sionna-torch phy backend: singlink.phy's public names on Sionna 2 (PyTorch), torch tensors in
and out, TensorFlow never imported and no DLPack bridge (none is needed: models and channel are
both torch). Selected by ``SINGLINK_PHY=sionna-torch`` (:mod:`singlink.phy.backend`); runs in
.venv-sionna2 (``tools/bootstrap --sionna2``).

Here: power normalisation, the flat channels (awgn, rayleigh-block, rayleigh-fast), the OFDM
channels (ofdm-..., :mod:`.ofdm`), equalisation, the LDPC + QAM DigitalLink (over OFDM:
OFDMDigitalLink), MonteCarloRunner and capacity. On the sionna-tf backend only: the TF bridge's names.
"""
from ..capacity import awgn_capacity, rayleigh_outage_probability
from ..digital_config import MODULATIONS, DigitalLinkConfig, bits_per_symbol, ebno_db_to_snr_db
from ..ofdm_snr import effective_snr_db, jscc_input
from ..ofdm_spec import OFDMSpec, parse_spec
from ..power import normalize_power, num_channel_symbols
from .channel import (AWGNChannel, CHANNELS, RayleighBlockFadingChannel, RayleighFastFadingChannel,
                      equalize, is_ofdm, make_channel, snr_db_to_noise_var)
from .digital import DigitalLink
from .montecarlo import ErrorRateEstimate, MonteCarloRunner, clopper_pearson, count_errors
from .ofdm import OFDMDigitalLink, OFDMLinkChannel


def as_torch(fn):
    """``fn`` itself: this backend's blocks are torch modules already. On sionna-tf ``as_torch``
    wraps a TF callable in the DLPack bridge (:class:`singlink.phy.bridge.TFModule`), so code that
    wraps phy blocks with ``phy.as_torch`` runs on either backend."""
    if not callable(fn):
        raise TypeError(f"as_torch takes a callable, got {type(fn).__name__}")
    return fn


def set_seed(seed: int) -> None:
    """Seed Sionna's random generators (torch, NumPy, Python), from which all phy draws come.

    Every random draw of this backend (noise, fading, source bits) uses
    ``sionna.phy.config.torch_rng``; re-seeding with the same integer reproduces a run bit for bit
    on CPU. Sionna 2 also seeds torch's default generator from it.
    """
    from sionna.phy import config

    config.seed = int(seed)


__all__ = [
    "set_seed", "as_torch", "awgn_capacity", "rayleigh_outage_probability", "AWGNChannel", "CHANNELS",
    "RayleighBlockFadingChannel", "RayleighFastFadingChannel", "equalize", "is_ofdm", "make_channel",
    "snr_db_to_noise_var", "MODULATIONS", "DigitalLink", "DigitalLinkConfig", "bits_per_symbol",
    "ebno_db_to_snr_db", "ErrorRateEstimate", "MonteCarloRunner", "clopper_pearson", "count_errors",
    "normalize_power", "num_channel_symbols", "OFDMDigitalLink", "OFDMLinkChannel", "OFDMSpec", "effective_snr_db", "is_ofdm",
    "jscc_input", "parse_spec",
]
