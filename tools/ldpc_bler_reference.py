"""BLER of the 5G LDPC + QPSK DigitalLink at a few points, on whichever phy backend this process
runs (SINGLINK_PHY), as JSON: the reference tests/test_phy_torch.py compares the sionna-torch
backend against (95% intervals must overlap at every point). The two backends live in different
environments (both Sionna lines import as ``sionna``), so the TF side's numbers are stored, made by

    OMP_NUM_THREADS=1 .venv/bin/python tools/ldpc_bler_reference.py > tests/reference/ldpc_bler_sionna-tf.json

and the test reruns the same points (:data:`POINTS`, same seeds, same stopping rule) on sionna-torch.
"""
import json
import sys

#: (channel, Eb/N0 dB): the AWGN waterfall of LDPC5G(512, 1024) QPSK, 20 iterations, and one point
#: under Rayleigh block fading (one gain per codeword), where BLER follows the outage probability.
POINTS = [("awgn", 1.0), ("awgn", 1.5), ("awgn", 2.0), ("rayleigh-block", 8.0)]
K, N, MODULATION, NUM_ITER = 512, 1024, "qpsk", 20
BATCH, MAX_BATCHES, TARGET_BLOCK_ERRORS, SEED = 500, 8, 100, 0


def run_point(phy, channel, ebno_db):
    """One point's ErrorRateEstimate, seeded by SEED."""
    cfg = phy.DigitalLinkConfig(k=K, n=N, modulation=MODULATION, num_iter=NUM_ITER, channel=channel)
    phy.set_seed(SEED)
    runner = phy.MonteCarloRunner(phy.DigitalLink(cfg), BATCH, target_block_errors=TARGET_BLOCK_ERRORS,
                                  max_trials=MAX_BATCHES)
    return runner.run_point(float(phy.ebno_db_to_snr_db(ebno_db, MODULATION, cfg.coderate)))


def main():
    import torch

    torch.set_num_threads(1)
    from singlink import phy

    rows = []
    for channel, ebno_db in POINTS:
        est = run_point(phy, channel, ebno_db)
        rows.append({"channel": channel, "ebno_db": ebno_db, "bler": est.bler,
                     "bler_ci95": [float(v) for v in est.bler_ci95], "block_errors": est.block_errors,
                     "blocks": est.blocks, "ber": est.ber, "bit_errors": est.bit_errors, "bits": est.bits})
    json.dump({"backend": phy.BACKEND, "sionna": phy.SIONNA_VERSION,
               "link": f"LDPC5G(k={K}, n={N}) {MODULATION}, {NUM_ITER} BP iterations, zf",
               "batch": BATCH, "max_batches": MAX_BATCHES, "target_block_errors": TARGET_BLOCK_ERRORS,
               "seed": SEED, "points": rows}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
