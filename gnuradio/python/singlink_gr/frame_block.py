"""A GNU Radio block that takes whole length-tagged frames of vectors and gives out frames."""
from __future__ import annotations

import collections

import numpy as np
import pmt
from gnuradio import gr

from .common import tags_in
from .framing import FrameAssembler


class frame_block(gr.basic_block):
    """Base of the OFDM chain's frame-wise Python blocks: complex vectors of ``vlen`` in, length-tagged
    (``length_tag_key``) frames assembled across work calls (:class:`~singlink_gr.framing.FrameAssembler`),
    :meth:`process` (a subclass's) turning each frame into output items with tags at their start.

    GNU Radio stops calling a block whose input is used up once its upstream has finished, so a
    frame completed by the last input items and then held back for lack of output space would be
    lost at the end of a finite stream. The block therefore consumes only as many items as the
    frame in progress plus everything they may complete (``extra`` more items per frame) can
    still be written in the same call, and asks for an output buffer of ``max_frame`` items."""

    def __init__(self, name, vlen, length_tag_key, required=(), extra=0, max_frame=512):
        gr.basic_block.__init__(self, name=name, in_sig=[(np.complex64, int(vlen))],
                                out_sig=[(np.complex64, int(vlen))])
        self.set_tag_propagation_policy(gr.TPP_DONT)
        self.set_min_output_buffer(int(max_frame))
        self.assembler = FrameAssembler(length_tag_key, required=required, warn=self.logger.warn)
        self.extra = int(extra)
        self._out = collections.deque()   # (items, {key: pmt}) to be written
        self._pos = 0

    def forecast(self, noutput_items, ninputs):
        return [1] * ninputs   # any input: the whole output buffer may be offered

    def process(self, frame) -> list:
        """A completed frame -> [(items (n, vlen), {tag key: pmt}), ...]."""
        raise NotImplementedError

    def general_work(self, input_items, output_items):
        out = output_items[0]
        produced = self._write(out, 0)
        if not self._out:
            inp = input_items[0]
            room = len(out) - produced - self.assembler.buffered - self.extra
            take = max(0, min(len(inp), room))
            if take:
                for frame in self.assembler.push(inp[:take], self.nitems_read(0), tags_in(self, take)):
                    self._out.extend(self.process(frame))
                self.consume(0, take)
                produced = self._write(out, produced)
        return produced

    def _write(self, out, produced):
        while self._out and produced < len(out):
            items, tags = self._out[0]
            if self._pos == 0:
                for key, value in tags.items():
                    self.add_item_tag(0, self.nitems_written(0) + produced, pmt.intern(key), value)
            take = min(len(items) - self._pos, len(out) - produced)
            out[produced:produced + take] = items[self._pos:self._pos + take]
            produced += take
            self._pos += take
            if self._pos == len(items):
                self._out.popleft()
                self._pos = 0
        return produced
