#!/usr/bin/env python3
"""QA for jscc_rx. Run: .venv/bin/python gnuradio/python/singlink_gr/qa_jscc_rx.py"""
import os
import sys
import tempfile

import numpy as np
from gnuradio import blocks, gr, gr_unittest

try:
    import singlink_gr
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import singlink_gr
from singlink_gr.testing import frame_tags, messages, pdu_image, run_flowgraph, tagged_source


class qa_jscc_rx(gr_unittest.TestCase):
    def setUp(self):
        self.tb = gr.top_block()

    def tearDown(self):
        self.tb = None

    def test_001_frames_to_pdus_and_pngs(self):
        k = 16
        rng = np.random.default_rng(0)
        y = (rng.standard_normal(3 * k) + 1j * rng.standard_normal(3 * k)) / np.sqrt(2)
        y = np.concatenate([y[:k], y[:20], y[2 * k:]])  # the middle frame has the wrong length
        tags = frame_tags(0, k, snr_db=10.0, image_id="a", frame=0) + frame_tags(k, 20, snr_db=10.0) \
            + frame_tags(k + 20, k, snr_db=10.0, image_id="c", frame=2, eob=True)
        with tempfile.TemporaryDirectory() as folder:
            rx = singlink_gr.jscc_rx("deepjscc", "deepjscc-cifar10-rho1_192", output_dir=folder)
            rx.set_max_noutput_items(7)
            dbg = blocks.message_debug()
            self.tb.connect(tagged_source(y, tags), rx)
            self.tb.msg_connect(rx, "images_out", dbg, "store")
            run_flowgraph(self.tb, 60)
            self.assertEqual(sorted(os.listdir(folder)), ["000000_a.png", "000002_c.png"])
        got = [pdu_image(m) for m in messages(dbg)]
        self.assertEqual([meta["image_id"] for _, meta in got], ["a", "c"])
        self.assertEqual(got[0][0].shape, (32, 32, 3))
        self.assertEqual(got[0][1]["method"], "deepjscc")


if __name__ == "__main__":
    gr_unittest.run(qa_jscc_rx)
