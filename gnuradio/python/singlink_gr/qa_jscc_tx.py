#!/usr/bin/env python3
"""QA for jscc_tx. Run: .venv/bin/python gnuradio/python/singlink_gr/qa_jscc_tx.py
(tests/test_gnuradio.py holds the full checks; this is the gr_modtool-style per-block test)."""
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
from singlink_gr.testing import run_flowgraph, sink_tags


def write_images(folder, n=3, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(os.path.join(folder, f"im{i}.png"))


class qa_jscc_tx(gr_unittest.TestCase):
    def setUp(self):
        self.tb = gr.top_block()

    def tearDown(self):
        self.tb = None

    def test_001_one_tagged_frame_per_image(self):
        with tempfile.TemporaryDirectory() as folder:
            write_images(folder)
            tx = singlink_gr.jscc_tx("deepjscc-cifar10-rho1_192", snr_db=5.0, images=folder)
            sink = blocks.vector_sink_c()
            self.tb.connect(tx, sink)
            run_flowgraph(self.tb, 60)
        k = tx.k
        self.assertEqual(len(sink.data()), 3 * k)
        self.assertEqual([t[0] for t in sink_tags(sink, "packet_len")], [0, k, 2 * k])
        self.assertEqual([t[2] for t in sink_tags(sink, "image_id")], ["im0.png", "im1.png", "im2.png"])
        power = np.mean(np.abs(np.array(sink.data())) ** 2)
        self.assertAlmostEqual(power, 1.0, places=3)


if __name__ == "__main__":
    gr_unittest.run(qa_jscc_tx)
