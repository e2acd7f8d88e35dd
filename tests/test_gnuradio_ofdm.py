"""gr-singlink's OFDM path (gnuradio/python/singlink_gr/ofdm*.py) with DeepJSCC: images over GNU Radio's
OFDM chain against singlink's own OFDM link, and the OFDM .grc examples compiled by grcc (the
loopback run headless, the SoapySDR one up to its device lookup). The chain with random payloads is
tested by qa_ofdm_jscc.py (in the suite through tests/test_gnuradio_qa.py).

Skipped as a whole where GNU Radio's Python bindings cannot be imported."""
import os
import subprocess
import sys

import numpy as np
import pytest

from gnuradio_support import GR_PYTHON, REPO, require_gnuradio

require_gnuradio()

CKPT = "deepjscc-cifar10-rho1_6"   # k = 512: 11 OFDM symbols of 48 data carriers
CIFAR_TEST = REPO.parent / "shared" / "data" / "cifar10" / "test"


@pytest.fixture(scope="module")
def images():
    """The first 16 CIFAR-10 test images (skipped without ../shared/data: PSNR needs real images)."""
    from singlink_gr.common import resolve_images

    if CIFAR_TEST.is_dir():
        return resolve_images(str(CIFAR_TEST), 16)
    pytest.skip("no CIFAR-10 test images in ../shared/data")


def test_images_over_gnuradio_ofdm_match_singlinks_ofdm_link(images):
    """16 CIFAR-10 images at 10 dB per subcarrier, three paths (delays 0, 2, 5), carrier offset 1e-3:
    every image arrives, and the mean PSNR is within 0.6 dB of singlink's Sionna OFDM link with the
    same frequency response and the same least-squares estimator (benchmarks/ofdm_jscc.py --images
    256 --frames 2000: +0.25 dB at 10 dB; with 64 images the difference moves by up to 0.5 dB between seeds)."""
    import torch

    from singlink_gr.link import Decoder, Encoder, load_jscc
    from singlink_gr.ofdm import OFDMConfig
    from singlink_gr.ofdm_testing import over_gnuradio, over_sionna, unit_taps

    torch.set_num_threads(1)
    jscc = load_jscc(CKPT)
    enc, dec = Encoder(jscc), Decoder(jscc)
    taps = unit_taps([0.8, 0, 0.5j, 0, 0, 0.3])
    got, stats = over_gnuradio(images, jscc, 10.0, taps, 1e-3, 1)
    assert sorted(got) == list(range(len(images))), stats
    originals = np.stack([enc.load(p) for p, _ in images])
    z = enc.encode(originals, 10.0)
    ref, ref_snr, _ = over_sionna(z, 10.0, taps, 0, dec, OFDMConfig())

    def psnr(a, b):
        mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2, axis=(1, 2, 3))
        return 10 * np.log10(255.0 ** 2 / mse)

    p_gr = psnr(np.stack([got[i][0] for i in range(len(images))]), originals).mean()
    p_ref = psnr(ref, originals).mean()
    assert abs(p_gr - p_ref) < 0.6, (p_gr, p_ref)
    est = np.array([got[i][1] for i in range(len(images))])
    assert abs(est.mean() - ref_snr.mean()) < 0.7


def test_ofdm_grc_flowgraphs_compile_and_the_loopback_runs_headless(images, tmp_path):
    env = dict(os.environ, GRC_BLOCKS_PATH=str(REPO / "gnuradio" / "grc"),
               PYTHONPATH=os.pathsep.join([str(GR_PYTHON), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    for name, blocks in (("ofdm_jscc_loopback", ("channels.channel_model(",)),
                         ("ofdm_jscc_soapy", ("soapy.sink(", "soapy.source("))):
        built = subprocess.run(["grcc", "-o", str(tmp_path), str(REPO / "gnuradio" / "examples" / f"{name}.grc")],
                               env=env, capture_output=True, text=True, timeout=120)
        assert built.returncode == 0 and (tmp_path / f"{name}.py").is_file(), built.stdout + built.stderr
        code = (tmp_path / f"{name}.py").read_text()
        for block in ("singlink_gr.ofdm_jscc_tx(", *blocks, "singlink_gr.ofdm_jscc_rx("):
            assert block in code   # grcc silently leaves out blocks it has no .block.yml for
    folder = tmp_path / "in"
    folder.mkdir()
    for p, _ in images[:4]:
        (folder / p.name).write_bytes(p.read_bytes())
    out_dir = tmp_path / "png"
    ran = subprocess.run([sys.executable, str(tmp_path / "ofdm_jscc_loopback.py"), "--image-dir", str(folder),
                          "--num-images", "4", "--out-dir", str(out_dir), "--channel-snr-db", "10", "--cfo", "1e-3"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-4000:]
    assert [f.name for f in sorted(out_dir.glob("*.png"))] == [f"{i:06d}_img{i:05d}.png" for i in range(4)]
    try:
        __import__("gnuradio.soapy")
    except ImportError:
        return
    ran = subprocess.run([sys.executable, str(tmp_path / "ofdm_jscc_soapy.py"), "--image-dir", str(folder)],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert ran.returncode != 0 and "no match" in ran.stdout + ran.stderr, ran.stdout[-1000:] + ran.stderr[-2000:]
