"""What the digital chain sends, independent of the Sionna line that sends it: modulations, the
link configuration and the Eb/N0 <-> Es/N0 conversion. Imports no framework, so both phy backends
(:mod:`singlink.phy.digital`, :mod:`singlink.phy.sionna2.digital`) share one definition."""
from dataclasses import dataclass

#: Modulations offered, as (Sionna constellation type, bits per symbol). BPSK is Sionna's
#: 1-bit PAM (real +-1); the others are Gray-mapped square QAM with unit average energy.
MODULATIONS = {"bpsk": ("pam", 1), "qpsk": ("qam", 2), "16qam": ("qam", 4), "64qam": ("qam", 6)}


def bits_per_symbol(modulation: str) -> int:
    try:
        return MODULATIONS[modulation.lower()][1]
    except KeyError:
        raise ValueError(f"unknown modulation {modulation!r}; choose one of {', '.join(MODULATIONS)}") from None


def ebno_db_to_snr_db(ebno_db, modulation: str, coderate: float = 1.0):
    r""":math:`E_s/N_0 = E_b/N_0 + 10\log_{10}(r\,M)` for M bits per symbol and code rate r."""
    import numpy as np

    return np.asarray(ebno_db, dtype=np.float64) + 10.0 * np.log10(coderate * bits_per_symbol(modulation))


@dataclass(frozen=True)
class DigitalLinkConfig:
    """What the digital chain sends.

    k, n: LDPC information and codeword lengths (5G NR base graph chosen by Sionna); ``k = n``
    or ``coded=False`` sends the bits uncoded. ``num_iter``: BP iterations.
    ``modulation``: bpsk, qpsk, 16qam, 64qam. ``channel``: awgn, rayleigh-block, rayleigh-fast.
    ``equalizer``: zf or mmse (perfect CSI).
    """

    k: int = 512
    n: int = 1024
    modulation: str = "qpsk"
    channel: str = "awgn"
    coded: bool = True
    num_iter: int = 20
    equalizer: str = "zf"

    @property
    def coderate(self) -> float:
        return self.k / self.n if self.coded else 1.0

    @property
    def codeword_bits(self) -> int:
        return self.n if self.coded else self.k


def check_link(config: DigitalLinkConfig, num_blocks: int):
    """``(constellation type, bits per symbol)`` of a link sending ``num_blocks`` codewords of
    ``config`` per row; a configuration no link can send raises ``ValueError`` saying why."""
    c = config
    const_type, bps = MODULATIONS.get(c.modulation.lower(), (None, None))
    if const_type is None:
        bits_per_symbol(c.modulation)  # raises the documented error
    if c.coded and not (0 < c.k < c.n):
        raise ValueError(f"LDPC needs 0 < k < n, got k={c.k}, n={c.n}")
    if c.codeword_bits % bps:
        raise ValueError(f"{c.codeword_bits} coded bits do not fill whole {c.modulation} symbols "
                         f"({bps} bits each); choose n (or k, uncoded) divisible by {bps}")
    if num_blocks < 1:
        raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
    return const_type, bps
