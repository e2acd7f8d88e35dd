"""Over-the-air transmitter: images -> DeepJSCC -> bursts (preamble, header, pilots, payload) ->
root-raised-cosine pulses.

- :class:`header_source`: :class:`jscc_tx` whose frame per image is a coded header and the k symbols
  (shared with the OFDM transmitter, :mod:`singlink_gr.ofdm_jscc_tx`);
- :class:`burst_source`: :class:`header_source` with each frame of k symbols wrapped into a burst of
  :mod:`singlink_gr.burst` (symbol rate, one burst per image, guard zeros after it);
- :class:`burst_tx`: hierarchical block ``burst_source -> filter.interp_fir_filter_ccf(sps, RRC)
  -> blocks.multiply_const_cc(amplitude)``, complex baseband at ``sps`` samples per symbol for
  ``channels.channel_model`` or an SDR sink.
"""
from __future__ import annotations

import pmt
from gnuradio import blocks, filter, gr

from .burst import FLAG_LAST, METHOD_FLAGS, BurstConfig, Header, build_burst, rrc_taps
from .common import DEFAULT_CHECKPOINT, TAG_EOB, TAG_FRAME, TAG_IMAGE_ID, TAG_SNR
from .jscc_tx import jscc_tx


def burst_config(sps=4, rolloff=0.35, rrc_span=11, header_sf=32, pilot_spacing=64, pilot_len=8, guard=64,
                 header_code="polar", **rx) -> BurstConfig:
    return BurstConfig(sps=int(sps), rolloff=float(rolloff), rrc_span=int(rrc_span), header_code=str(header_code),
                       header_sf=int(header_sf), pilot_spacing=int(pilot_spacing), pilot_len=int(pilot_len),
                       guard=int(guard), **rx)


class header_source(jscc_tx):
    """:class:`jscc_tx` whose frame per image carries the image's k symbols behind the coded 72-bit
    header of :class:`singlink_gr.burst.Header` (seq, image number, k, flags), tagged for
    inspection (``packet_len``, ``image_id``, ``snr_db``, ``frame``, ``seq``; the receivers use none
    of them) and ``eob`` on the last image. Subclasses say how a header and the k symbols make one
    frame (:meth:`_frame_symbols`) and which config they take (``config_class``)."""

    config_class = None

    def __init__(self, checkpoint=DEFAULT_CHECKPOINT, snr_db=10.0, images="", repeat=1, max_images=0,
                 batch_size=16, method_hint="deepjscc", config=None, length_tag_key="packet_len", device="cpu"):
        super().__init__(checkpoint=checkpoint, snr_db=snr_db, images=images, repeat=repeat, max_images=max_images,
                         batch_size=batch_size, length_tag_key=length_tag_key, device=device)
        if method_hint not in METHOD_FLAGS:
            raise ValueError(f"method_hint {method_hint!r}: choose one of {', '.join(METHOD_FLAGS)}")
        self.config = config or self.config_class()
        self.method_hint = method_hint
        self._ids: dict = {}

    def _frame_symbols(self, row, header):
        """The frame's complex symbols for the image's k symbols ``row`` and its ``header``."""
        raise NotImplementedError

    def _image_number(self, image_id) -> int:
        if image_id not in self._ids:
            self._ids[image_id] = len(self._ids)
        return self._ids[image_id] & 0xFFFF

    def _push(self, images, ids, snrs, eob_last):
        z = self.encoder.encode(images, snrs)
        for i, (row, image_id, snr) in enumerate(zip(z, ids, snrs)):
            last = eob_last and i == len(z) - 1
            flags = METHOD_FLAGS[self.method_hint] | (FLAG_LAST if last else 0)
            header = Header(seq=self._frame & 0xFFFF, image_id=self._image_number(image_id), k=self.k, flags=flags)
            frame = self._frame_symbols(row, header)
            tags = {self.length_tag_key: pmt.from_long(len(frame)), TAG_IMAGE_ID: pmt.intern(str(image_id)),
                    TAG_SNR: pmt.from_double(float(snr)), TAG_FRAME: pmt.from_long(self._frame),
                    "seq": pmt.from_long(header.seq)}
            if last:
                tags[TAG_EOB] = pmt.PMT_T
            self._out.append((frame, tags))
            self._frame += 1


class burst_source(header_source):
    """DeepJSCC transmitter at symbol rate: one burst per image (see :mod:`singlink_gr.burst`).

    Takes images exactly as :class:`jscc_tx` (``images`` folder/files, or ``images_in`` PDUs).
    Header: ``seq`` = running burst number (mod 2^16), ``image_id`` = the number of the image's id
    in order of first appearance (file order; repeats keep their number; mod 2^16), ``k``,
    flags = ``method_hint`` (what the sender suggests for restoration) and "last burst" on the
    last image. Output items are symbols; the burst start carries ``packet_len`` (burst length
    including the guard), ``image_id`` (str), ``snr_db`` (what the encoder was told), ``frame``
    and ``seq`` tags, for inspection only: the receiver uses none of them.
    """

    _block_name = "singlink_burst_source"
    config_class = BurstConfig

    def __init__(self, checkpoint=DEFAULT_CHECKPOINT, snr_db=10.0, images="", repeat=1, max_images=0,
                 batch_size=16, method_hint="deepjscc", config: BurstConfig | None = None,
                 length_tag_key="packet_len", device="cpu"):
        super().__init__(checkpoint=checkpoint, snr_db=snr_db, images=images, repeat=repeat, max_images=max_images,
                         batch_size=batch_size, method_hint=method_hint, config=config,
                         length_tag_key=length_tag_key, device=device)
        self._tail_left = self.TAIL

    TAIL = 1024   # symbols of silence after the last burst of a finite stream

    def work(self, input_items, output_items):
        produced = super().work(input_items, output_items)
        if produced == -1 and self._tail_left > 0:
            # the images are done: zeros first, so the last burst makes it through the receiver's
            # block-wise stages (corr_est_cc works in FFT blocks) before the stream ends
            out = output_items[0]
            produced = min(len(out), self._tail_left)
            out[:produced] = 0
            self._tail_left -= produced
        return produced

    def _frame_symbols(self, row, header):
        return build_burst(row, header, self.config)


class burst_tx(gr.hier_block2):
    """Images -> pulse-shaped bursts (complex baseband, ``sps`` samples per symbol).

    ``burst_source`` -> GNU Radio's ``interp_fir_filter_ccf`` with unit-energy RRC taps from
    ``firdes.root_raised_cosine`` -> ``multiply_const_cc(amplitude)``. With amplitude 1 the
    symbols have power 1 after the receiver's matched filter, so ``channels.channel_model``'s
    ``noise_voltage = 10**(-snr_db/20)`` gives that SNR per symbol. For an SDR, lower
    ``amplitude`` (0.3-0.5) keeps the peaks of the shaped signal inside the DAC's [-1, 1].
    Message input ``images_in`` as for :class:`jscc_tx`.
    """

    def __init__(self, checkpoint=DEFAULT_CHECKPOINT, snr_db=10.0, images="", repeat=1, max_images=0, batch_size=16,
                 method_hint="deepjscc", sps=4, rolloff=0.35, rrc_span=11, header_sf=32, pilot_spacing=64,
                 pilot_len=8, guard=64, amplitude=1.0, device="cpu", header_code="polar"):
        gr.hier_block2.__init__(self, "singlink_burst_tx", gr.io_signature(0, 0, 0),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        self.config = burst_config(sps, rolloff, rrc_span, header_sf, pilot_spacing, pilot_len, guard, header_code)
        self.source = burst_source(checkpoint=checkpoint, snr_db=snr_db, images=images, repeat=repeat,
                                   max_images=max_images, batch_size=batch_size, method_hint=method_hint,
                                   config=self.config, device=device)
        self.k = self.source.k
        self.shaper = filter.interp_fir_filter_ccf(self.config.sps, rrc_taps(self.config).tolist())
        self.gain = blocks.multiply_const_cc(complex(amplitude))
        self.connect(self.source, self.shaper, self.gain, self)
        self.message_port_register_hier_in("images_in")
        self.msg_connect(self, "images_in", self.source, "images_in")

    def set_snr_db(self, snr_db):
        self.source.set_snr_db(snr_db)

    def set_amplitude(self, amplitude):
        self.gain.set_k(complex(amplitude))

    @property
    def frames_sent(self):
        return self.source.frames_sent
