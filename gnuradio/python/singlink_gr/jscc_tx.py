"""DeepJSCC transmitter: images -> one tagged frame of k complex64 symbols per image."""
from __future__ import annotations

import collections
import time

import numpy as np
import pmt
from gnuradio import gr

from .common import DEFAULT_CHECKPOINT, TAG_EOB, TAG_FRAME, TAG_IMAGE_ID, TAG_SNR, parse_image_message, resolve_images


class jscc_tx(gr.sync_block):
    """DeepJSCC transmitter (source).

    Images come from ``images`` (a folder, searched recursively and sorted; a file; a list of
    files; or files separated by commas) and/or as messages on the ``images_in`` port (a PDU
    ``cons(dict, u8vector)`` with ``shape`` (H, W, 3) in the dict, optional ``image_id`` and
    ``snr_db``; jscc_rx's ``images_out`` messages qualify). Images of another size are centre
    cropped and resized to the model's (singlink's Transform).

    Output: complex64, one frame of k symbols per image (k from the checkpoint), each starting
    with the tags ``<length_tag_key>`` = k (tagged-stream convention), ``image_id`` (str),
    ``snr_db`` (the SNR the encoder was told), ``frame`` (running index from 0); the last frame
    of a burst (the end of the image list, or of the queued image messages) also carries
    ``eob`` = True, which tells jscc_rx to decode what it holds.

    With ``images`` given, the block sends them ``repeat`` times (0: forever) and then ends the
    stream, so a flowgraph terminates. With no ``images`` it waits for messages until it gets
    ``pmt.PMT_EOF`` (or a dict with ``eof`` true). ``max_images`` > 0 keeps the first that many
    files. Files are encoded ``batch_size`` at a time; messages one at a time.
    """

    _block_name = "singlink_jscc_tx"   # subclasses (burst_source) name themselves

    def __init__(self, checkpoint=DEFAULT_CHECKPOINT, snr_db=10.0, images="", repeat=1, max_images=0,
                 batch_size=16, length_tag_key="packet_len", device="cpu"):
        gr.sync_block.__init__(self, name=self._block_name, in_sig=None, out_sig=[np.complex64])
        from .link import Encoder

        self.encoder = Encoder(checkpoint, device)
        self.k = self.encoder.k
        self.snr_db = float(snr_db)
        self.repeat = int(repeat)
        self.batch_size = max(1, int(batch_size))
        self.length_tag_key = str(length_tag_key)
        self._files = resolve_images(images, int(max_images))
        self._file_mode = bool(self._files)
        self._pass, self._next_file = 0, 0
        self._frame = 0
        self._out = collections.deque()   # (symbols (k,), tags {key: pmt}) waiting to be written
        self._pos = 0                     # items of _out[0] already written
        self._msgs = collections.deque()
        self._eof = False
        self.frames_sent = 0
        self._len_key = pmt.intern(self.length_tag_key)
        self.message_port_register_in(pmt.intern("images_in"))
        self.set_msg_handler(pmt.intern("images_in"), self._handle_image)

    # --- GRC callbacks ---------------------------------------------------------------------
    def set_snr_db(self, snr_db):
        self.snr_db = float(snr_db)

    # --- input ---------------------------------------------------------------------------------
    def _handle_image(self, msg):
        if pmt.eq(msg, pmt.PMT_EOF) or (pmt.is_dict(msg) and pmt.to_python(
                pmt.dict_ref(msg, pmt.intern("eof"), pmt.PMT_F)) is True):
            self._eof = True
            return
        try:
            image, meta = parse_image_message(msg)
        except (ValueError, TypeError) as e:
            self.logger.warn(f"images_in: dropped a message: {e}")
            return
        self._msgs.append((image, meta))

    def _files_left(self) -> bool:
        return self._file_mode and (self.repeat <= 0 or self._pass < self.repeat)

    def _refill(self) -> bool:
        """Encode the next group of images into _out; False when nothing was ready."""
        if self._files_left():
            group = self._files[self._next_file:self._next_file + self.batch_size]
            images = [self.encoder.load(p) for p, _ in group]
            ids = [image_id for _, image_id in group]
            self._next_file += len(group)
            if self._next_file >= len(self._files):
                self._next_file, self._pass = 0, self._pass + 1
            last = not self._files_left()
            self._push(images, ids, [self.snr_db] * len(images), eob_last=last)
            return True
        if self._msgs:
            image, meta = self._msgs.popleft()
            snr = float(meta.get("snr_db", self.snr_db)) if meta.get("snr_db") is not None else self.snr_db
            image_id = str(meta.get("image_id", f"pdu{self._frame}"))
            self._push([image], [image_id], [snr], eob_last=not self._msgs)  # end of the burst
            return True
        return False

    def _push(self, images, ids, snrs, eob_last):
        z = self.encoder.encode(images, snrs)
        for i, (row, image_id, snr) in enumerate(zip(z, ids, snrs)):
            tags = {self.length_tag_key: pmt.from_long(self.k), TAG_IMAGE_ID: pmt.intern(image_id),
                    TAG_SNR: pmt.from_double(float(snr)), TAG_FRAME: pmt.from_long(self._frame)}
            if eob_last and i == len(z) - 1:
                tags[TAG_EOB] = pmt.PMT_T
            self._out.append((row, tags))
            self._frame += 1

    def _finished(self) -> bool:
        if self._file_mode:
            return not self._files_left() and not self._msgs
        return self._eof and not self._msgs

    # --- stream ----------------------------------------------------------------------------
    def work(self, input_items, output_items):
        out = output_items[0]
        n = len(out)
        produced = 0
        while produced < n:
            if not self._out and not self._refill():
                break
            row, tags = self._out[0]
            if self._pos == 0:
                start = self.nitems_written(0) + produced
                for key, value in tags.items():
                    self.add_item_tag(0, start, pmt.intern(key), value)
            take = min(len(row) - self._pos, n - produced)
            out[produced:produced + take] = row[self._pos:self._pos + take]
            produced += take
            self._pos += take
            if self._pos == len(row):
                self._out.popleft()
                self._pos = 0
                self.frames_sent += 1
        if produced == 0:
            if self._finished():
                return -1  # WORK_DONE: downstream blocks finish once they drained the stream
            time.sleep(0.002)  # waiting for messages: do not spin
        return produced

