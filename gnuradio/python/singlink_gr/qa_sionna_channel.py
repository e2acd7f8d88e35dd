#!/usr/bin/env python3
"""QA for sionna_channel. Run: .venv/bin/python gnuradio/python/singlink_gr/qa_sionna_channel.py"""
import os
import sys

import numpy as np
from gnuradio import blocks, gr, gr_unittest

try:
    import singlink_gr
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import singlink_gr
from singlink_gr.testing import frame_tags, run_flowgraph, sink_tags, tagged_source


class qa_sionna_channel(gr_unittest.TestCase):
    def setUp(self):
        self.tb = gr.top_block()

    def tearDown(self):
        self.tb = None

    def run_frames(self, channel, seed, max_items=None):
        k, n = 16, 3
        z = np.ones(n * k, np.complex64)
        tags = [t for i in range(n) for t in frame_tags(i * k, k, snr_db=20.0, image_id=f"f{i}", frame=i)]
        src, ch, sink = tagged_source(z, tags), singlink_gr.sionna_channel(channel, seed=seed), blocks.vector_sink_c()
        if max_items:
            ch.set_max_noutput_items(max_items)
        tb = gr.top_block()
        tb.connect(src, ch, sink)
        run_flowgraph(tb, 60)
        return np.array(sink.data()), sink

    def test_001_awgn_seeded_and_tags_kept(self):
        y1, sink = self.run_frames("awgn", seed=1)
        y2, _ = self.run_frames("awgn", seed=1, max_items=5)  # frames split across calls: same output
        np.testing.assert_array_equal(y1, y2)
        self.assertEqual([t[2] for t in sink_tags(sink, "image_id")], ["f0", "f1", "f2"])
        self.assertEqual(sink_tags(sink, "h"), [])
        self.assertLess(np.mean(np.abs(y1 - 1) ** 2), 0.05)  # 20 dB: noise power 0.01

    def test_002_block_fading_adds_h(self):
        y, sink = self.run_frames("rayleigh-block", seed=2)
        h = [t[2] for t in sink_tags(sink, "h")]
        self.assertEqual(len(h), 3)
        np.testing.assert_allclose(y.reshape(3, 16).mean(axis=1), h, atol=0.1)


if __name__ == "__main__":
    gr_unittest.run(qa_sionna_channel)
