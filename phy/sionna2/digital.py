"""Digital chain of the separation baselines on Sionna 2 (PyTorch): bits -> 5G NR LDPC -> QAM ->
channel -> equalisation -> soft demapping -> BP decoding. The torch twin of
:mod:`singlink.phy.digital`; what is sent (:class:`DigitalLinkConfig`) is shared with it."""
import torch
from sionna.phy import Block
from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder
from sionna.phy.mapping import BinarySource, Demapper, Mapper

from ..digital_config import DigitalLinkConfig, check_link
from ..link_base import DigitalLinkSteps
from .channel import equalize, make_channel


class DigitalLink(DigitalLinkSteps, Block):
    r"""End-to-end digital link for ``num_blocks`` codewords per row.

    Input: ``batch_size`` (int) and ``snr_db`` (Es/N0 per channel use: scalar or (batch_size,)),
    or pass ``bits`` (batch_size, num_blocks, k) to send given bits. All codewords of one row
    share the row's SNR and, under block fading, the row's one gain h: a row is one image.

    Output: ``(bits, bits_hat)``, both (batch_size, num_blocks, k) float torch tensors.

    Channel uses per row: ``num_blocks * codeword_bits / bits_per_symbol``; codeword_bits must
    be a multiple of the bits per symbol.
    """

    def __init__(self, config: DigitalLinkConfig = DigitalLinkConfig(), num_blocks: int = 1, *,
                 precision=None, device=None, **kwargs):
        super().__init__(precision=precision, device=device, **kwargs)
        c = config
        self.config = c
        const_type, self.bps = check_link(c, num_blocks)
        self.num_blocks = int(num_blocks)
        opts = {"precision": precision, "device": device}
        self._source = BinarySource(**opts)
        if c.coded:
            self._encoder = LDPC5GEncoder(c.k, c.n, **opts)
            self._decoder = LDPC5GDecoder(self._encoder, num_iter=c.num_iter, hard_out=True, **opts)
        self._mapper = Mapper(const_type, self.bps, **opts)
        self._demapper = Demapper("app", const_type, self.bps, **opts)
        self._channel = make_channel(c.channel, **opts)

    def _detect(self, x_hat, no_eff):
        """Hard bit decisions from equalised symbols (B, blocks, n/bps) and their noise variance."""
        llr = self._demapper(x_hat, no_eff)                    # (B, blocks, n)
        return self._decoder(llr) if self.config.coded else (llr > 0).to(llr.dtype)

    def call(self, batch_size, snr_db, bits=None):
        bits, x = self._modulate(batch_size, bits)
        shape = x.shape
        y, h = self._channel(x.reshape(shape[0], -1), snr_db)
        x_hat, no_eff = equalize(y, h, snr_db, self.config.equalizer, self._channel.power)
        return bits, self._detect(x_hat.reshape(shape), torch.broadcast_to(no_eff, y.shape).reshape(shape))
