"""singlink's Sionna channel (AWGN, Rayleigh block fading) as a GNU Radio block on tagged frames."""
from __future__ import annotations

import collections

import numpy as np
import pmt
from gnuradio import gr

from .common import TAG_FRAME, TAG_H, TAG_SNR, real_value, tags_in
from .framing import FrameAssembler


class sionna_channel(gr.basic_block):
    """singlink's Sionna channel, frame by frame, through the TF <-> torch bridge.

    Input: complex64 tagged frames (``<length_tag_key>`` at each frame start, e.g. from jscc_tx).
    Each frame goes through ``phy.make_channel(channel)`` (``awgn`` or ``rayleigh-block``: one
    complex gain h ~ CN(0, 1) per frame, i.e. per image) at ``snr_db``: the block parameter, or
    when that is None the frame's ``snr_db`` tag. Randomness is seeded per frame,
    ``phy.set_seed(derive_seed(seed, frame))`` with ``frame`` the frame's ``frame`` tag (jscc_tx
    numbers them) or else the count of frames this block has seen.

    Output: the received frames, same length, with every input tag at the same place relative to
    the frame; ``snr_db`` is set to the SNR applied, and under block fading an ``h`` tag (complex)
    carries the gain for the receiver (perfect CSI).

    Frames may arrive in pieces over any number of calls. Malformed frames (truncated, bad
    length, missing ``snr_db`` when the parameter is None) and items outside frames are dropped
    with a warning; the stream goes on.
    """

    def __init__(self, channel="awgn", snr_db=None, seed=0, length_tag_key="packet_len", power=1.0):
        gr.basic_block.__init__(self, name="singlink_sionna_channel", in_sig=[np.complex64], out_sig=[np.complex64])
        from .link import Channel

        self.core = Channel(channel, seed, power)
        self.channel = self.core.name
        self.snr_db = None if snr_db is None else float(snr_db)
        self.length_tag_key = str(length_tag_key)
        self.set_tag_propagation_policy(gr.TPP_DONT)  # tags are re-attached per frame below
        self.assembler = FrameAssembler(self.length_tag_key, required=() if self.snr_db is not None else (TAG_SNR,),
                                        warn=self.logger.warn)
        self._out = collections.deque()   # (samples, [(relative offset, key, pmt)])
        self._pos = 0
        self._frames_seen = 0
        self.frames_out = 0

    # --- GRC callbacks ------------------------------------------------------------------------
    def set_snr_db(self, snr_db):
        self.snr_db = None if snr_db is None else float(snr_db)
        self.assembler.required = () if self.snr_db is not None else (TAG_SNR,)

    # --- scheduling ------------------------------------------------------------------------------
    def forecast(self, noutput_items, ninputs):
        # Output still queued: ask for no input, so the scheduler calls general_work to emit it
        # even after the upstream block finished (with a requirement of 1 item and an empty,
        # finished input, the block would be declared done and the queued frame lost).
        return [0 if self._out else 1] * ninputs

    def general_work(self, input_items, output_items):
        out = output_items[0]
        produced = self._emit(out, 0)
        if self._out:  # the output is full: take no input (back-pressure)
            return produced
        inp = input_items[0]
        # At most as many input items as there is output space in this call: frames that
        # complete may still exceed it, and the rest is emitted by later calls.
        n = min(len(inp), len(out) - produced)
        if n > 0:
            frames = self.assembler.push(inp[:n], self.nitems_read(0), tags_in(self, n))
            self.consume(0, n)
            for frame in frames:
                result = self._process(frame)
                if result is not None:
                    self._out.append(result)
            produced += self._emit(out, produced)
        return produced

    def stop(self):
        self.assembler.flush()  # a frame cut off by the end of the stream is reported
        return True

    # --- per frame -----------------------------------------------------------------------------
    def _process(self, frame):
        snr = self.snr_db if self.snr_db is not None else real_value(frame.value(TAG_SNR))
        if snr is None:
            self.assembler.frames_dropped += 1
            self.logger.warn(f"dropped frame at item {frame.start}: '{TAG_SNR}' tag {frame.value(TAG_SNR)!r} "
                             "is not a number")
            return None
        index = frame.value(TAG_FRAME)
        index = int(index) if isinstance(index, (int, np.integer)) and not isinstance(index, bool) else self._frames_seen
        self._frames_seen += 1
        y, h = self.core.apply(frame.samples, snr, index)
        tags = [(0, t.key, t.raw) for t in frame.tags.values() if t.key not in (TAG_SNR, TAG_H)]
        tags.append((0, TAG_SNR, pmt.from_double(snr)))
        if h is not None:
            tags.append((0, TAG_H, pmt.from_complex(h)))
        tags += [(rel, t.key, t.raw) for rel, t in frame.inner_tags]
        return y, sorted(tags, key=lambda t: t[0])

    def _emit(self, out, produced):
        start_produced = produced
        n = len(out)
        while self._out and produced < n:
            samples, tags = self._out[0]
            take = min(len(samples) - self._pos, n - produced)
            base = self.nitems_written(0) + produced - self._pos
            for rel, key, value in tags:
                if self._pos <= rel < self._pos + take:
                    self.add_item_tag(0, base + rel, pmt.intern(key), value)
            out[produced:produced + take] = samples[self._pos:self._pos + take]
            produced += take
            self._pos += take
            if self._pos == len(samples):
                self._out.popleft()
                self._pos = 0
                self.frames_out += 1
        return produced - start_produced
