"""The diffusion prior: storage round trips, the sampler's interface, one-line errors, and
train-prior's exact resume and export."""
import json

import pytest
import torch

from singlink.errors import UsageError
from singlink.receiver import prior as prior_module
from singlink.receiver.prior import DiffusionPrior, make_unet, save_grid, unconditional_samples

from conftest import SHARED_DATA


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return DiffusionPrior.from_preset("tiny").eval()


@pytest.fixture
def no_hub(monkeypatch):
    """Make every hub download fail at once, as it does without network."""
    from diffusers import DDPMScheduler, UNet2DModel

    calls = []

    def offline(source, *args, **kwargs):
        calls.append(source)
        raise OSError(f"We couldn't connect to 'https://huggingface.co' to load {source}")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(UNet2DModel, "from_pretrained", offline)
    monkeypatch.setattr(DDPMScheduler, "from_pretrained", offline)
    return calls


def test_presets_build_fast_with_the_stated_sizes():
    import time

    from diffusers import UNet2DModel  # noqa: F401  (import first: time the build alone)

    t0 = time.perf_counter()
    unet = make_unet("tiny")
    assert time.perf_counter() - t0 < 1.0
    assert unet.config.block_out_channels == (16, 32) and unet.config.layers_per_block == 1
    assert not any("Attn" in b for b in unet.config.down_block_types + unet.config.up_block_types)
    n_small = sum(p.numel() for p in make_unet("small").parameters())
    assert 1.0e6 < n_small < 1.2e6
    with pytest.raises(UsageError, match="unknown UNet preset 'huge'"):
        make_unet("huge")


def test_interface(tiny):
    assert tiny.image_size == (3, 32, 32) and tiny.num_train_timesteps == 1000
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(tiny.to_model_range(x), 2 * x - 1)
    torch.testing.assert_close(tiny.to_image_range(tiny.to_model_range(x)), x)
    assert tiny.to_image_range(torch.tensor([-3.0, 3.0])).tolist() == [0.0, 1.0]
    with torch.no_grad():
        e_int = tiny.eps(tiny.to_model_range(x), 500)
        e_vec = tiny.eps(tiny.to_model_range(x), torch.tensor([500, 500]))
        e_mix = tiny.eps(tiny.to_model_range(x), torch.tensor([500, 10]))
    assert e_int.shape == x.shape and torch.equal(e_int, e_vec)
    torch.testing.assert_close(e_mix[0], e_int[0])
    assert not torch.allclose(e_mix[1], e_int[1])
    with pytest.raises(UsageError, match=r"in \[0, 999\]"):
        tiny.eps(x, 1000)
    with pytest.raises(UsageError, match="integer timesteps"):
        tiny.eps(x, torch.tensor([1, 2, 3]))


def test_alphas_cumprod_is_the_ddpm_linear_schedule_in_float64(tiny):
    ref = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    assert tiny.alphas_cumprod.dtype == torch.float64 and tiny.alphas_cumprod.shape == (1000,)
    assert torch.max(torch.abs(tiny.alphas_cumprod - ref)) < 1e-10


def test_check_images_mismatch_is_one_line(tiny):
    tiny.check_images(torch.rand(4, 3, 32, 32))
    tiny.check_images(torch.rand(3, 32, 32))
    with pytest.raises(UsageError) as e:
        tiny.check_images(torch.rand(1, 3, 64, 64))
    assert str(e.value) == (f"the prior {tiny.name} models 3x32x32 images, got 3x64x64; "
                            f"use a prior trained at that size")
    with pytest.raises(UsageError, match="got 1x32x32"):
        tiny.check_images(torch.rand(1, 1, 32, 32))


@pytest.mark.parametrize("fp16", [False, True])
def test_save_load_roundtrip(tiny, tmp_path, fp16):
    tiny.save_pretrained(tmp_path / "p", fp16=fp16)
    for f in ("model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
              "scheduler/scheduler_config.json"):
        assert (tmp_path / "p" / f).is_file(), f
    assert json.loads((tmp_path / "p" / "model_index.json").read_text())["_class_name"] == "DDPMPipeline"
    loaded = DiffusionPrior.from_pretrained(tmp_path / "p")
    assert loaded.dtype == torch.float32 and loaded.name == "p" and not loaded.training
    x_t, t = torch.randn(3, 3, 32, 32), torch.tensor([0, 400, 999])
    with torch.no_grad():
        want, got = tiny.eps(x_t, t), loaded.eps(x_t, t)
    if fp16:
        torch.testing.assert_close(got, want, rtol=1e-2, atol=1e-2)
    else:
        assert torch.equal(got, want)
    assert torch.equal(loaded.alphas_cumprod, tiny.alphas_cumprod)


def test_missing_prior_errors_are_one_line(tmp_path, no_hub):
    for name in (tmp_path / "missing", "no-such-prior"):
        with pytest.raises(UsageError, match="no prior") as e:
            DiffusionPrior.from_pretrained(name)
        assert "\n" not in str(e.value)
    assert no_hub == []
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="not a DDPM prior folder"):
        DiffusionPrior.from_pretrained(tmp_path / "empty")
    DiffusionPrior.from_preset("tiny").save_pretrained(tmp_path / "bad")
    (tmp_path / "bad" / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(UsageError, match="corrupt prior in") as e:
        DiffusionPrior.from_pretrained(tmp_path / "bad")
    assert "\n" not in str(e.value)


def test_unreachable_hub_gives_one_clear_line(no_hub):
    with pytest.raises(UsageError) as e:
        DiffusionPrior.from_pretrained("google/ddpm-cifar10-32")
    msg = str(e.value)
    assert no_hub == ["google/ddpm-cifar10-32"] and "\n" not in msg
    assert "could not fetch" in msg and "no network is reachable or the id is wrong" in msg and "local folder" in msg


def test_rejects_non_epsilon_prediction(tmp_path):
    from diffusers import DDPMScheduler

    with pytest.raises(UsageError, match="prediction_type 'epsilon'"):
        DiffusionPrior(make_unet("tiny"), DDPMScheduler(prediction_type="v_prediction"))


def test_samples_are_seeded_and_grid_is_a_png(tiny, tmp_path):
    from PIL import Image

    a = unconditional_samples(tiny, 3, steps=4, seed=1)
    assert a.shape == (3, 3, 32, 32) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, unconditional_samples(tiny, 3, steps=4, seed=1))
    save_grid(a, tmp_path / "g.png", nrow=2)
    assert Image.open(tmp_path / "g.png").size == (2 * 34 + 2, 2 * 34 + 2)


needs_cifar = pytest.mark.skipif(not (SHARED_DATA / "cifar10").is_dir(), reason="../shared/data/cifar10 not present")


@needs_cifar
def test_train_prior_resumes_exactly_and_exports(tmp_path, monkeypatch):
    from singlink.cli import main

    monkeypatch.setattr(prior_module, "CHECKPOINTS", tmp_path / "checkpoints")
    common = ["train-prior", "--preset", "tiny", "--train-images", "128", "--val-images", "8", "--val-every", "2",
              "--batch", "16", "--warmup", "2", "--lr", "1e-3", "--threads", "1"]
    assert main([*common, "--steps", "2", "--out", str(tmp_path / "a")]) == 0
    assert main([*common, "--steps", "3", "--out", str(tmp_path / "a")]) == 0  # resumes at step 2
    assert main([*common, "--steps", "3", "--out", str(tmp_path / "b"), "--export", "prior-test",
                 "--samples", "4", "--sample-steps", "5"]) == 0  # straight through
    a = torch.load(tmp_path / "a" / "state.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "state.pt", weights_only=True)
    assert a["step"] == b["step"] == 3
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    assert not all(torch.equal(a["model"][n], a["ema"][n]) for n in a["model"])
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3]
    assert [r["step"] for r in log if "val_loss_ema" in r] == [2, 3]

    dest = tmp_path / "checkpoints" / "prior-test"
    assert (dest / "MODEL_CARD.md").is_file() and (dest / "samples.png").is_file()
    assert "Held-out denoising loss" in (dest / "MODEL_CARD.md").read_text()
    assert sum(f.stat().st_size for f in dest.rglob("*") if f.is_file()) < 25_000_000
    shipped = DiffusionPrior.from_pretrained("prior-test")  # by name, from the (patched) checkpoints folder
    ema = DiffusionPrior.from_pretrained(tmp_path / "b" / "prior")
    for (name, p), q in zip(shipped.unet.state_dict().items(), ema.unet.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-4, msg=name)
    for name, p in ema.unet.state_dict().items():
        assert torch.equal(p, b["ema"][name]), name


@needs_cifar
def test_train_prior_takes_on_a_decay_only_where_it_changes_nothing_before(tmp_path):
    """A constant-rate run stopped at step 2 and resumed with a cosine decay from step 2 equals a
    run given that decay from the start; a run already past the decay's start is refused."""
    from singlink.cli import main

    common = ["train-prior", "--preset", "tiny", "--train-images", "128", "--val-images", "8", "--val-every", "2",
              "--batch", "16", "--warmup", "1", "--lr", "1e-3", "--threads", "1"]
    decay = ["--steps", "4", "--decay-from", "2", "--lr-min", "1e-4"]
    assert main([*common, "--steps", "2", "--out", str(tmp_path / "a")]) == 0
    assert main([*common, *decay, "--out", str(tmp_path / "a")]) == 0
    assert main([*common, *decay, "--out", str(tmp_path / "b")]) == 0
    a = torch.load(tmp_path / "a" / "state.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "state.pt", weights_only=True)
    for name in b["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()
           if '"lr"' in line]
    assert lrs[:2] == [1e-3, 1e-3] and lrs[2] == pytest.approx(1e-3) and lrs[3] == pytest.approx(5.5e-4)

    assert main([*common, "--steps", "3", "--out", str(tmp_path / "c")]) == 0
    assert main([*common, *decay, "--out", str(tmp_path / "c")]) == 2  # step 3 is past the decay's start
    assert main([*common, "--steps", "5", "--decay-from", "2", "--lr-min", "1e-4", "--out", str(tmp_path / "a")]) == 2


def test_shipped_prior_loads_by_name_within_size():
    from singlink.receiver.plugin import DEFAULT_PRIOR
    from singlink.receiver.prior import CHECKPOINTS

    folder = CHECKPOINTS / DEFAULT_PRIOR
    if not folder.is_dir():
        pytest.skip("no shipped prior")
    prior = DiffusionPrior.from_pretrained(DEFAULT_PRIOR)
    assert prior.image_size == (3, 32, 32) and prior.num_train_timesteps == 1000
    assert sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) < 25_000_000
    assert (folder / "MODEL_CARD.md").is_file() and (folder / "samples.png").is_file()


def test_face_prior_loads_by_name_and_is_found_by_its_data():
    from singlink.receiver.prior import CHECKPOINTS, find_prior

    if not (CHECKPOINTS / "ddpm-celeba64-singlink").is_dir():
        pytest.skip("no shipped face prior")
    prior = DiffusionPrior.from_pretrained("ddpm-celeba64-singlink")
    assert prior.image_size == (3, 64, 64)
    assert find_prior("celeba", 64) == "ddpm-celeba64-singlink"
    assert find_prior("cifar10", 32) == "ddpm-cifar10-32-singlink"
    with pytest.raises(UsageError, match="no shipped diffusion prior for celeba at 32x32"):
        find_prior("celeba", 32)
