"""OFDM transmitter: images -> DeepJSCC -> one OFDM frame per image through GNU Radio's OFDM blocks.

- :class:`ofdm_jscc_source`: :class:`singlink_gr.burst_tx.header_source` whose frame per image is the coded header's data
  symbols followed by the k DeepJSCC symbols (:mod:`singlink_gr.ofdm`), one tagged packet;
- :class:`ofdm_mod`: hierarchical block wired as GNU Radio's ``digital.ofdm_tx`` after its
  modulators: ``digital.ofdm_carrier_allocator_cvc`` (pilots, sync words) ``->`` :class:`frame_gap`
  ``-> fft.fft_vcc`` (inverse, shifted) ``-> blocks.multiply_const_vcc(amplitude / sqrt(fft_len))``
  ``-> digital.ofdm_cyclic_prefixer``, complex baseband at one sample per FFT bin;
- :class:`ofdm_jscc_tx`: ``ofdm_jscc_source -> ofdm_mod``.
"""
from __future__ import annotations

import numpy as np
import pmt
from gnuradio import blocks, digital, fft, gr

from .burst_tx import header_source
from .common import DEFAULT_CHECKPOINT, TAG_EOB
from .frame_block import frame_block
from .ofdm import OFDMConfig, header_symbols


class ofdm_jscc_source(header_source):
    """DeepJSCC transmitter emitting, per image, one packet of ``config.header_len`` header symbols
    (the coded 72-bit header: seq, image number, k, flags; see :mod:`singlink_gr.ofdm`) followed by
    the k DeepJSCC symbols, tagged ``packet_len`` (header_len + k) for GNU Radio's carrier
    allocator, and ``image_id``, ``snr_db``, ``frame``, ``seq`` for inspection (the receiver uses
    none of them). Images come in exactly as for :class:`jscc_tx`; the last image of a burst
    carries ``eob`` (and the header's last flag)."""

    _block_name = "singlink_ofdm_jscc_source"
    config_class = OFDMConfig

    def __init__(self, checkpoint=DEFAULT_CHECKPOINT, snr_db=10.0, images="", repeat=1, max_images=0,
                 batch_size=16, method_hint="deepjscc", config: OFDMConfig | None = None,
                 length_tag_key="packet_len", device="cpu"):
        super().__init__(checkpoint=checkpoint, snr_db=snr_db, images=images, repeat=repeat, max_images=max_images,
                         batch_size=batch_size, method_hint=method_hint, config=config,
                         length_tag_key=length_tag_key, device=device)

    def _frame_symbols(self, row, header):
        return np.concatenate([header_symbols(header, self.config), row]).astype(np.complex64)


class frame_gap(frame_block):
    """OFDM frames (tagged vectors of ``fft_len`` from the carrier allocator) passed through, each
    followed by ``gap`` all-zero OFDM symbols, and by ``tail`` of them after a frame tagged ``eob``
    (each run of zeros a frame of its own, tagged with its length).

    Why a gap: ``header_payload_demux`` ignores triggers while it reads a frame, and the Schmidl &
    Cox trigger of the next frame jitters by several samples at low SNR; back to back, a next
    trigger a few samples early falls inside the frame being read and that frame is lost. Why a
    tail: a receiver of GNU Radio's design delays the samples by one OFDM symbol against its
    trigger (``digital.ofdm_rx`` does), so the last symbol of a finite stream would stay inside
    that delay when the stream ends; GNU Radio has no block that appends samples after the end of
    a stream."""

    def __init__(self, fft_len=64, gap=1, tail=4, length_tag_key="packet_len"):
        super().__init__("singlink_frame_gap", fft_len, length_tag_key, extra=int(gap) + int(tail))
        self.fft_len, self.gap, self.tail, self.length_tag_key = int(fft_len), int(gap), int(tail), str(length_tag_key)

    def process(self, frame):
        zeros = self.gap + (self.tail if frame.value(TAG_EOB) is True else 0)
        out = [(frame.samples, {t.key: t.raw for t in frame.tags.values()})]
        if zeros:
            out.append((np.zeros((zeros, self.fft_len), np.complex64), {self.length_tag_key: pmt.from_long(zeros)}))
        return out


class ofdm_mod(gr.hier_block2):
    """Tagged packets of complex symbols (``packet_len``; header then payload, as
    :class:`ofdm_jscc_source` makes them) -> OFDM frames, complex baseband at one sample per FFT bin.

    Wiring (that of ``digital.ofdm_tx`` after its modulators): ``digital.ofdm_carrier_allocator_cvc``
    (data and pilot carriers, GNU Radio's Schmidl & Cox sync words) -> :class:`frame_gap` ->
    ``fft.fft_vcc`` (inverse, shifted) -> ``blocks.multiply_const_vcc(amplitude / sqrt(fft_len))``
    -> ``digital.ofdm_cyclic_prefixer``. With amplitude 1 the inverse FFT is unitary: a symbol of
    power 1 on a carrier keeps power 1 against the noise in the receiver's FFT, so
    ``channels.channel_model``'s ``noise_voltage = 10**(-snr_db/20)`` gives that SNR per subcarrier
    (times |H_c|^2 under multipath; unit-energy taps keep its mean at 1). For an SDR, 0.3-0.5 keeps
    the OFDM peaks inside the DAC's range."""

    def __init__(self, config: OFDMConfig | None = None, amplitude=1.0, length_tag_key="packet_len"):
        gr.hier_block2.__init__(self, "singlink_ofdm_mod", gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        self.config = cfg = config or OFDMConfig()
        n = cfg.fft_len
        self.allocator = digital.ofdm_carrier_allocator_cvc(
            n, [list(c) for c in cfg.occupied_carriers], [list(c) for c in cfg.pilot_carriers],
            [list(p) for p in cfg.pilot_symbols], [w.tolist() for w in cfg.sync_words], length_tag_key)
        self.gap = frame_gap(n, 1, 4, length_tag_key)
        self.ifft = fft.fft_vcc(n, False, (), True)
        self.gain = blocks.multiply_const_vcc([complex(amplitude) / np.sqrt(n)] * n)
        self.prefixer = digital.ofdm_cyclic_prefixer(n, n + cfg.cp_len, 0, length_tag_key)
        self.connect(self, self.allocator, self.gap, self.ifft, self.gain, self.prefixer, self)

    def set_amplitude(self, amplitude):
        n = self.config.fft_len
        self.gain.set_k([complex(amplitude) / np.sqrt(n)] * n)


class ofdm_jscc_tx(gr.hier_block2):
    """Images -> one OFDM frame per image: :class:`ofdm_jscc_source` -> :class:`ofdm_mod`.

    Parameters: those of :class:`jscc_tx`, ``method_hint`` (header flags), the frame's ``fft_len``
    (64), ``cp_len`` and ``header_ofdm_symbols`` (the receiver's must match) and ``amplitude``.
    Message input ``images_in`` as :class:`jscc_tx`."""

    def __init__(self, checkpoint=DEFAULT_CHECKPOINT, snr_db=10.0, images="", repeat=1, max_images=0, batch_size=16,
                 method_hint="deepjscc", fft_len=64, cp_len=32, header_ofdm_symbols=11, amplitude=1.0, device="cpu"):
        gr.hier_block2.__init__(self, "singlink_ofdm_jscc_tx", gr.io_signature(0, 0, 0),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        self.config = cfg = OFDMConfig(int(fft_len), int(cp_len), int(header_ofdm_symbols))
        self.source = ofdm_jscc_source(checkpoint=checkpoint, snr_db=snr_db, images=images, repeat=repeat,
                                       max_images=max_images, batch_size=batch_size, method_hint=method_hint,
                                       config=cfg, device=device)
        self.k = self.source.k
        self.mod = ofdm_mod(cfg, amplitude)
        self.connect(self.source, self.mod, self)
        self.message_port_register_hier_in("images_in")
        self.msg_connect(self, "images_in", self.source, "images_in")

    def set_snr_db(self, snr_db):
        self.source.set_snr_db(snr_db)

    def set_amplitude(self, amplitude):
        self.mod.set_amplitude(amplitude)

    @property
    def frames_sent(self):
        return self.source.frames_sent
