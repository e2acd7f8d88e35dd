"""The framework-free half of the phy blocks that both backends define (:mod:`singlink.phy` on
TensorFlow, :mod:`singlink.phy.sionna2` on PyTorch): sizes, argument checks and index bookkeeping,
as mixins that each backend's Sionna ``Block`` subclass lists before ``Block``. What touches tensors
stays in the backends. Imports neither framework nor Sionna, so the sionna-torch path stays free of
TensorFlow."""
import numpy as np

from .ofdm_spec import is_ofdm


def check_power(power) -> float:
    """The average symbol power P as a float; anything not > 0 raises ``ValueError`` (one line)."""
    if not power > 0:
        raise ValueError(f"power must be > 0, got {power}")
    return float(power)


class DigitalLinkSteps:
    """Mixin of :class:`~singlink.phy.DigitalLink`: what it does with Sionna blocks alone.

    Needs ``config`` (:class:`~singlink.phy.DigitalLinkConfig`), ``num_blocks``, ``bps`` (bits per
    symbol) and the blocks ``_source`` (BinarySource), ``_encoder`` (LDPC5GEncoder, when coded) and
    ``_mapper`` (Mapper): both Sionna lines call them alike.
    """

    @property
    def channel_uses(self) -> int:
        """Complex channel uses per row: ``num_blocks * codeword_bits / bits_per_symbol``."""
        return self.num_blocks * self.config.codeword_bits // self.bps

    def _modulate(self, batch_size, bits):
        """``(bits, x)``: the source bits (drawn when None), LDPC-encoded and mapped to symbols
        x (B, blocks, n/bps)."""
        c = self.config
        if bits is None:
            bits = self._source([batch_size, self.num_blocks, c.k])
        cw = self._encoder(bits) if c.coded else bits
        return bits, self._mapper(cw)


class OFDMDigitalLinkSteps:
    """Mixin of :class:`~singlink.phy.OFDMDigitalLink`: the channel check and the row budget."""

    @staticmethod
    def _check_ofdm(config):
        if not is_ofdm(config.channel):
            raise ValueError(f"OFDMDigitalLink needs an ofdm-... channel, got {config.channel!r}; use DigitalLink")

    def _set_budget(self, channel_uses):
        """``budget``: the row's k symbols (default: the codewords' own count), checked against what
        the codewords need and what the channel's grid can carry, each with one clear line."""
        used = self.channel_uses
        self.budget = used if channel_uses is None else int(channel_uses)
        if self.budget < used:
            raise ValueError(f"the codewords need {used} symbols per row, more than channel_uses={channel_uses}")
        self._channel.slots(self.budget)


class OFDMSlots:
    """Mixin of :class:`~singlink.phy.OFDMLinkChannel`: how an image's k symbols fill slots.

    Needs ``spec`` (:class:`~singlink.phy.OFDMSpec`), ``resource_grid`` (Sionna's ResourceGrid) and
    ``data_per_slot`` (its data REs per slot, D).
    """

    #: The block returns (equalised symbols, no_eff), not (y, h): see :mod:`singlink.phy.ofdm`.
    equalized = True

    def slots(self, k: int) -> int:
        """Slots per image for k symbols (ValueError, one line, when it cannot carry them)."""
        k, d = int(k), self.data_per_slot
        if k < 1:
            raise ValueError(f"an image needs k >= 1 channel symbols, got {k}")
        if k > d and not self.spec.span:
            raise ValueError(f"k = {k} symbols per image do not fit one slot of {self.spec.name} ({d} data resource "
                             f"elements) and span=0 forbids spanning slots; lower k or drop span=0")
        return -(-k // d)

    def _layout_indices(self, k: int):
        """``(slots, positions, source)`` as int64 arrays: the S*D data REs of an image's S slots,
        ``positions`` (k,) those that carry its k symbols, spread evenly, and ``source`` (S*D,) the
        symbol each data RE sends (k: the padding symbol)."""
        s = self.slots(k)
        pos = (np.arange(k, dtype=np.int64) * (s * self.data_per_slot)) // k
        src = np.full(s * self.data_per_slot, k, np.int64)
        src[pos] = np.arange(k)
        return s, pos, src

    def overhead(self, k: int | None = None) -> dict:
        """What one slot spends besides data, and (given k) what one image occupies."""
        rg, s = self.resource_grid, self.spec
        total = s.fft * s.symbols
        pilots = int(rg.num_pilot_symbols)
        out = {"spec": s.name, "fft_size": s.fft, "ofdm_symbols": s.symbols, "subcarrier_spacing_hz": s.scs,
               "cyclic_prefix_samples": s.cp, "resource_elements_per_slot": total,
               "data_re_per_slot": self.data_per_slot, "pilot_re_per_slot": pilots,
               "nulled_re_per_slot": total - pilots - self.data_per_slot,
               "cp_fraction": s.cp / (s.fft + s.cp), "slot_duration_s": s.symbols * (s.fft + s.cp) / (s.fft * s.scs),
               "bandwidth_hz": s.fft * s.scs}
        if k is not None:
            n_slots = self.slots(k)
            samples = n_slots * s.symbols * (s.fft + s.cp)
            out |= {"k": int(k), "slots_per_image": n_slots, "padding_re": n_slots * self.data_per_slot - int(k),
                    "samples_per_image": samples, "data_fraction": int(k) / samples}
        return out
