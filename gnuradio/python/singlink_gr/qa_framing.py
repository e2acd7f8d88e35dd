#!/usr/bin/env python3
"""QA for the frame assembler (no flowgraph). Run: python gnuradio/python/singlink_gr/qa_framing.py"""
import os
import sys

import numpy as np
from gnuradio import gr_unittest

try:
    from singlink_gr.framing import FrameAssembler, Tag
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from singlink_gr.framing import FrameAssembler, Tag


class qa_framing(gr_unittest.TestCase):
    def test_001_chunks_of_one_item(self):
        data = np.arange(12, dtype=np.complex64)
        tags = [Tag(0, "packet_len", 6), Tag(0, "snr_db", 1.0), Tag(6, "packet_len", 6), Tag(6, "snr_db", 2.0)]
        asm, frames = FrameAssembler(expected_len=6, required=("snr_db",)), []
        for i in range(12):
            frames += asm.push(data[i:i + 1], i, [t for t in tags if t.offset == i])
        self.assertEqual([f.start for f in frames], [0, 6])
        self.assertEqual([f.value("snr_db") for f in frames], [1.0, 2.0])
        np.testing.assert_array_equal(frames[1].samples, data[6:])

    def test_002_truncated_frame_dropped(self):
        warnings = []
        asm = FrameAssembler(warn=warnings.append)
        frames = asm.push(np.zeros(5, np.complex64), 0, [Tag(0, "packet_len", 6), Tag(3, "packet_len", 6)])
        self.assertEqual(frames, [])
        frames = asm.push(np.zeros(4, np.complex64), 5)
        self.assertEqual([f.start for f in frames], [3])
        self.assertEqual(asm.frames_dropped, 1)
        self.assertIn("truncated", warnings[0])


if __name__ == "__main__":
    gr_unittest.run(qa_framing)
