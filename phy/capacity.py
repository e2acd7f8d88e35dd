"""Channel capacity and outage (used by the bpg-capacity bound and the link demo)."""
import numpy as np


def awgn_capacity(snr_db):
    r"""Capacity of the complex AWGN channel, :math:`C = \log_2(1 + \mathrm{SNR})` bits per channel use."""
    return np.log2(1.0 + 10.0 ** (np.asarray(snr_db, dtype=np.float64) / 10.0))


def rayleigh_outage_probability(rate, snr_db):
    r"""Outage probability of Rayleigh block fading at spectral efficiency ``rate`` (bit/use):

    .. math:: P_\mathrm{out} = \Pr[\log_2(1 + |h|^2\,\mathrm{SNR}) < R] = 1 - \exp\!\left(-\frac{2^R - 1}{\mathrm{SNR}}\right)

    since :math:`|h|^2 \sim \mathrm{Exp}(1)` for :math:`h \sim \mathcal{CN}(0, 1)`.
    """
    rate = np.asarray(rate, dtype=np.float64)
    if np.any(rate < 0):
        raise ValueError("rate must be >= 0 bit per channel use")
    snr = 10.0 ** (np.asarray(snr_db, dtype=np.float64) / 10.0)
    return -np.expm1(-(np.exp2(rate) - 1.0) / snr)
