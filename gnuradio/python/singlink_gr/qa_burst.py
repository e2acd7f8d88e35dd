#!/usr/bin/env python3
"""QA for the over-the-air burst path without DeepJSCC: random payloads through GNU Radio's RRC
filters, channels.channel_model, corr_est_cc and burst_sync.
Run: python gnuradio/python/singlink_gr/qa_burst.py"""
import os
import sys

import numpy as np
from gnuradio import gr_unittest

try:
    from singlink_gr import burst as B
    from singlink_gr.testing import random_bursts, run_burst_chain
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from singlink_gr import burst as B
    from singlink_gr.testing import random_bursts, run_burst_chain

K = 16


class qa_burst(gr_unittest.TestCase):
    def test_001_header_roundtrip_and_crc(self):
        h = B.Header(seq=513, image_id=7, k=K, flags=B.FLAG_LAST)
        bits = B.header_to_bits(h)
        self.assertEqual(B.bits_to_header(bits), (h, True))
        bits[5] ^= 1
        self.assertFalse(B.bits_to_header(bits)[1])

    def test_002_noiseless_channel_gives_back_the_payload(self):
        sym, payloads, headers = random_bursts(3, K, seed=1)
        sync, frames, _ = run_burst_chain(sym, K, snr_db=None, cfo=3e-4, epsilon=1.0)
        self.assertEqual([t["frame"] for _, t in frames], [0, 1, 2])
        for (z, tags), sent in zip(frames, payloads):
            self.assertLess(np.max(np.abs(z - sent)), 0.05)   # interpolation and ISI residue only
            self.assertGreater(tags["snr_db"], 25.0)
            self.assertAlmostEqual(tags["cfo"], 3e-4, delta=2e-6)
        self.assertEqual(sync.stats["bursts"], 3)

    def test_003_snr_estimate_and_corrupted_header(self):
        sym, _, _ = random_bursts(6, K, seed=2, corrupt={4})
        sync, frames, _ = run_burst_chain(sym, K, snr_db=3.0, seed=3)
        self.assertEqual([t["frame"] for _, t in frames], [0, 1, 2, 3, 5])
        self.assertEqual(sync.stats["header_crc"], 1)
        for _, tags in frames:
            self.assertAlmostEqual(tags["snr_db"], 3.0, delta=1.0)

    def test_004_header_codes_round_trip_and_bad_settings(self):
        bits = B.header_to_bits(B.Header(seq=9, image_id=65535, k=K, flags=2))
        for code in B.HEADER_CODES:
            hc = B.header_code(B.BurstConfig(header_code=code))
            self.assertEqual(B.bits_to_header(hc.decode(hc.soft(hc.modulate(bits)[None], 0.5))[0])[1], True)
        self.assertLessEqual(B.BurstConfig().header_symbols, 600)   # the polar default: 512
        with self.assertRaisesRegex(ValueError, "choose one of polar, spread"):
            B.BurstConfig(header_code="ldpc")
        with self.assertRaisesRegex(ValueError, "applies to header_code 'spread' only"):
            B.BurstConfig(header_sf=8)

    def test_005_spread_header_still_works_end_to_end(self):
        cfg = B.BurstConfig(header_code="spread", header_sf=8)
        sym, _, _ = random_bursts(3, K, config=cfg, seed=5, corrupt={1})
        sync, frames, _ = run_burst_chain(sym, K, config=cfg, snr_db=8.0, seed=5)
        self.assertEqual([t["frame"] for _, t in frames], [0, 2])
        self.assertEqual(sync.stats["header_crc"], 1)


if __name__ == "__main__":
    gr_unittest.run(qa_burst)
