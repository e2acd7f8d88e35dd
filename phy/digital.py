"""Digital chain of the separation baselines on Sionna: bits -> 5G NR LDPC -> QAM -> channel ->
equalisation -> soft demapping -> BP decoding, with bit and block error counts."""
import tensorflow as tf
from sionna.phy import Block
from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder
from sionna.phy.mapping import BinarySource, Demapper, Mapper

from .channel import equalize, make_channel
from .digital_config import (MODULATIONS, DigitalLinkConfig, bits_per_symbol, check_link,  # noqa: F401
                             ebno_db_to_snr_db)
from .link_base import DigitalLinkSteps


class DigitalLink(DigitalLinkSteps, Block):
    r"""End-to-end digital link for ``num_blocks`` codewords per row.

    Input: ``batch_size`` (int) and ``snr_db`` (Es/N0 per channel use: scalar or (batch_size,)),
    or pass ``bits`` (batch_size, num_blocks, k) to send given bits. All codewords of one row
    share the row's SNR and, under block fading, the row's one gain h: a row is one image.

    Output: ``(bits, bits_hat)``, both (batch_size, num_blocks, k) float.

    Channel uses per row: ``num_blocks * codeword_bits / bits_per_symbol``; codeword_bits must
    be a multiple of the bits per symbol.
    """

    def __init__(self, config: DigitalLinkConfig = DigitalLinkConfig(), num_blocks: int = 1, *, precision=None, **kwargs):
        super().__init__(precision=precision, **kwargs)
        c = config
        self.config = c
        const_type, self.bps = check_link(c, num_blocks)
        self.num_blocks = int(num_blocks)
        self._source = BinarySource(precision=precision)
        if c.coded:
            self._encoder = LDPC5GEncoder(c.k, c.n, precision=precision)
            self._decoder = LDPC5GDecoder(self._encoder, num_iter=c.num_iter, hard_out=True, precision=precision)
        self._mapper = Mapper(const_type, self.bps, precision=precision)
        self._demapper = Demapper("app", const_type, self.bps, precision=precision)
        self._channel = make_channel(c.channel, precision=precision)

    def _detect(self, x_hat, no_eff):
        """Hard bit decisions from equalised symbols (B, blocks, n/bps) and their noise variance."""
        llr = self._demapper(x_hat, no_eff)                    # (B, blocks, n)
        return self._decoder(llr) if self.config.coded else tf.cast(llr > 0, llr.dtype)

    def call(self, batch_size, snr_db, bits=None):
        bits, x = self._modulate(batch_size, bits)
        shape = tf.shape(x)
        y, h = self._channel(tf.reshape(x, [shape[0], -1]), snr_db)
        x_hat, no_eff = equalize(y, h, snr_db, self.config.equalizer, self._channel.power)
        x_hat = tf.reshape(x_hat, shape)
        no_eff = tf.reshape(tf.broadcast_to(no_eff, tf.shape(y)), shape)
        return bits, self._detect(x_hat, no_eff)
