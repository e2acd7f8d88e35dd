"""Receiver: tagged symbol frames -> restored images (PDUs on ``images_out``, optional PNG files)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pmt
from gnuradio import gr

from .common import (DEFAULT_CHECKPOINT, TAG_EOB, TAG_FRAME, TAG_H, TAG_IMAGE_ID, TAG_SNR, image_pdu, png_name,
                     real_value, tags_in)
from .framing import FrameAssembler


class jscc_rx(gr.sync_block):
    """DeepJSCC decoder + restoration (singlink's Receiver plugin) as a sink with a message output.

    Input: complex64 frames of k symbols (k of ``checkpoint``) tagged ``<length_tag_key>`` = k and
    ``snr_db`` at the frame start, optionally ``h`` (complex block-fading gain: the symbols are
    then equalised, ``equalizer`` mmse or zf), ``image_id``, ``frame`` and ``eob``.

    ``method``: ``deepjscc`` (decoder only), ``sing-zero`` (needs ``prior``; ``steps``) or
    ``sing-inn`` (``inn``, ``zeta``). An empty ``prior`` or ``inn`` means the one shipped for the
    checkpoint's data set, size and k; ``steps`` 0 and ``zeta`` None mean the settings chosen for
    the checkpoint on validation images (``singlink tune-sing``), else 100 steps and the paper's zeta. Restoration noise is seeded per frame,
    ``derive_seed(seed, "restore", frame)``.

    Frames are decoded ``batch_size`` at a time, and at once when a frame carries ``eob`` (jscc_tx
    marks the last frame of a burst); what is left when the flowgraph stops is decoded in
    ``stop()`` (PNG files are written, messages may no longer be delivered).

    Output, per image: a PDU on ``images_out``: ``cons(dict, u8vector)``, the dict holding
    ``image`` (the u8 vector, H*W*3 row-major RGB), ``shape`` (H, W, 3), ``image_id``, ``snr_db``,
    ``method``, ``frame`` and, under fading, ``h``. With ``output_dir`` set, also
    ``<output_dir>/<frame:06d>_<image_id>.png``.

    Frames may arrive in pieces over any number of calls; malformed ones (wrong length,
    truncated, no ``snr_db``) are dropped with a warning and the stream goes on.
    """

    def __init__(self, method="deepjscc", checkpoint=DEFAULT_CHECKPOINT, prior="", steps=0, zeta=None, inn="",
                 output_dir="", seed=0, batch_size=16, length_tag_key="packet_len", equalizer="mmse", device="cpu"):
        gr.sync_block.__init__(self, name="singlink_jscc_rx", in_sig=[np.complex64], out_sig=None)
        from .link import Decoder

        self.decoder = Decoder(checkpoint, method=method, prior=prior or None, steps=steps, zeta=zeta, inn=inn or None,
                               seed=seed, equalizer=equalizer, device=device)
        self.method = method
        self.k = self.decoder.k
        self.batch_size = max(1, int(batch_size))
        self.length_tag_key = str(length_tag_key)
        self.output_dir = Path(output_dir) if output_dir else None
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        self.assembler = FrameAssembler(self.length_tag_key, expected_len=self.k, required=(TAG_SNR,),
                                        warn=self.logger.warn)
        self._batch = []   # (symbols, snr, h, frame, image_id)
        self._count = 0
        self.images_out = 0
        self.files_written = []
        self._port = pmt.intern("images_out")
        self.message_port_register_out(self._port)

    def work(self, input_items, output_items):
        inp = input_items[0]
        n = len(inp)
        for frame in self.assembler.push(inp, self.nitems_read(0), tags_in(self, n)):
            snr = real_value(frame.value(TAG_SNR))
            h = frame.value(TAG_H)
            if snr is None or (h is not None and not isinstance(h, (complex, float, int))):
                self.assembler.frames_dropped += 1
                self.logger.warn(f"dropped frame at item {frame.start}: bad '{TAG_SNR}' {frame.value(TAG_SNR)!r} "
                                 f"or '{TAG_H}' {h!r} tag")
                continue
            index = frame.value(TAG_FRAME)
            if not isinstance(index, int) or isinstance(index, bool):
                index = self._count
            self._count += 1
            image_id = frame.value(TAG_IMAGE_ID)
            image_id = str(image_id) if image_id is not None else f"frame{index}"
            self._batch.append((frame.samples, snr, None if h is None else complex(h), index, image_id))
            if len(self._batch) >= self.batch_size or frame.value(TAG_EOB) is True:
                self._flush()
        return n

    def stop(self):
        self.assembler.flush()
        if self._batch:
            self._flush()
        return True

    def _flush(self):
        batch, self._batch = self._batch, []
        images = self.decoder.restore(np.stack([b[0] for b in batch]), [b[1] for b in batch],
                                      [b[2] for b in batch], [b[3] for b in batch])
        for image, (_, snr, h, index, image_id) in zip(images, batch):
            if self.output_dir is not None:
                from PIL import Image

                path = self.output_dir / png_name(index, image_id)
                Image.fromarray(image).save(path)
                self.files_written.append(str(path))
            meta = {TAG_IMAGE_ID: image_id, TAG_SNR: float(snr), "method": self.method, TAG_FRAME: int(index)}
            if h is not None:
                meta[TAG_H] = complex(h)
            self.message_port_pub(self._port, image_pdu(image, meta))
            self.images_out += 1
