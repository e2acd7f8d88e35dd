"""The dataset spec (one name for a data set everywhere), CelebA's crop and splits, and the
trainers' guards: export names, overwrites, planted state files, checkpoints of another size."""
import argparse
import hashlib
import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SHARED_DATA
from singlink.data import CelebA, DatasetSpec, celeba_crop
from singlink.errors import UsageError

needs_celeba = pytest.mark.skipif(not (SHARED_DATA / "celeba").is_dir(), reason="../shared/data/celeba not present")


def _face_like(w=178, h=218):
    """A smooth synthetic image with a sharp-edged disc, so a misplaced crop shows."""
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    img = np.stack([255 * xx, 255 * yy, 128 + 0 * xx], -1)
    disc = (xx - 0.5) ** 2 + (yy - 0.45) ** 2 < 0.04
    img[disc] = (230, 40, 60)
    return Image.fromarray(img.astype(np.uint8))


# --- parsing ---------------------------------------------------------------------------------
def test_parse_defaults_and_tags(tmp_path):
    assert DatasetSpec.parse("cifar10") == DatasetSpec("cifar10", 32)
    assert DatasetSpec.parse("CIFAR-10").tag == "cifar10"
    celeba = DatasetSpec.parse("celeba")
    assert (celeba.image_size, celeba.tag, celeba.to_dict()) == (64, "celeba64", {"dataset": "celeba", "image_size": 64})
    assert DatasetSpec.parse("celeba", 128).tag == "celeba128"
    assert DatasetSpec.parse("kodak").image_size is None and DatasetSpec.parse("kodak", 256).tag == "kodak256"
    (tmp_path / "mine").mkdir()
    spec = DatasetSpec.parse(tmp_path / "mine", 64)
    assert spec.is_folder and spec.tag == "mine64" and spec.name == str((tmp_path / "mine").resolve())


@pytest.mark.parametrize("name, size, match", [
    ("imagenet", None, "neither a known data set"),
    ("", None, "--dataset must name"),
    ("cifar10", 64, "CIFAR-10 images are 32x32"),
    ("celeba", 0, "--image-size must be an integer in"),
    ("celeba", 5000, "--image-size must be an integer in"),
    ("celeba", "big", "--image-size must be an integer number"),
])
def test_parse_rejects_bad_input_with_one_line(name, size, match):
    with pytest.raises(UsageError, match=match) as e:
        DatasetSpec.parse(name, size)
    assert "\n" not in str(e.value)


def test_cli_and_python_parse_the_same_way():
    from singlink.cli import build_parser
    from singlink.training import dataset_spec

    parser = build_parser()
    for cmd in ("train-jscc", "train-prior"):
        args = parser.parse_args([cmd, "--dataset", "celeba", "--image-size", "64"])
        assert dataset_spec(args) == DatasetSpec.parse("celeba", 64)
        assert dataset_spec(parser.parse_args([cmd])) == DatasetSpec.parse("cifar10")
    args = parser.parse_args(["train-inn", "--dataset", "celeba"])
    assert (args.dataset, args.image_size) == ("celeba", None)


# --- CelebA ----------------------------------------------------------------------------------
def test_celeba_crop_is_the_same_face_region_at_both_resolutions():
    full = _face_like()
    half = full.resize((89, 109), Image.Resampling.BOX)  # the shared copy is a half-resolution downsample
    a = np.asarray(celeba_crop(full, 64), dtype=np.float64)
    b = np.asarray(celeba_crop(half, 64), dtype=np.float64)
    assert a.shape == b.shape == (64, 64, 3)
    assert np.abs(a - b).mean() < 3.0  # resampling differences only
    # a one-pixel shift of the window at full resolution is already clearly larger
    shifted = np.asarray(celeba_crop(full.crop((2, 0, 178, 218)).resize((178, 218)), 64), dtype=np.float64)
    assert np.abs(a - shifted).mean() > 2 * np.abs(a - b).mean()


@needs_celeba
def test_celeba_splits_are_disjoint_complete_and_stable():
    splits = {s: CelebA(None, s, 16) for s in ("train", "val", "test")}
    ids = {s: set(d.ids) for s, d in splits.items()}
    assert [len(ids[s]) for s in ("train", "val", "test")] == [8100, 450, 450]
    assert not (ids["train"] & ids["val"] or ids["train"] & ids["test"] or ids["val"] & ids["test"])
    assert splits["test"].partition == "seeded 90/5/5"
    # stable: the seeded split of the 9,000 shared files never changes
    digest = hashlib.sha256(",".join(sorted(ids["test"])).encode()).hexdigest()[:16]
    assert digest == hashlib.sha256(",".join(sorted(CelebA(None, "test", 16).ids)).encode()).hexdigest()[:16]
    assert sorted(ids["test"])[:3] == TEST_HEAD


TEST_HEAD = ["000004.jpg", "000007.jpg", "000034.jpg"]


def test_celeba_official_partition_is_used_when_present(tmp_path):
    folder = tmp_path / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    for i in range(1, 7):
        _face_like().save(folder / f"{i:06d}.jpg")
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text(
        "000001.jpg 0\n000002.jpg 0\n000003.jpg 1\n000004.jpg 2\n000005.jpg 2\n000006.jpg 0\n000099.jpg 2\n")
    d = {s: CelebA(tmp_path, s, 32) for s in ("train", "val", "test")}
    assert d["train"].ids == ["000001.jpg", "000002.jpg", "000006.jpg"] and d["train"].partition == "official"
    assert d["val"].ids == ["000003.jpg"] and d["test"].ids == ["000004.jpg", "000005.jpg"]
    x = DatasetSpec.parse("celeba", 32, tmp_path).tensors("test")
    assert x.dtype == torch.uint8 and x.shape == (2, 3, 32, 32)


# --- folders: bad data -------------------------------------------------------------------------
def _folder(tmp_path, sizes):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, (w, h) in enumerate(sizes):
        _face_like(w, h).save(folder / f"{i:03d}.png")
    return folder


def test_folder_of_mixed_sizes_needs_image_size(tmp_path):
    folder = _folder(tmp_path, [(40, 40)] * 30 + [(48, 40)] * 30)
    with pytest.raises(UsageError, match="differ in size.*--image-size"):
        DatasetSpec.parse(folder).tensors("train")
    x = DatasetSpec.parse(folder, 32).tensors("train")
    assert x.shape == (54, 3, 32, 32)


def test_unreadable_image_is_one_line(tmp_path):
    folder = _folder(tmp_path, [(32, 32)] * 3)
    (folder / "000.png").write_text("not an image")
    with pytest.raises(UsageError, match="cannot read image") as e:
        DatasetSpec.parse(folder, 32).tensors("train")
    assert "\n" not in str(e.value)


def test_empty_folder_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no image files"):
        DatasetSpec.parse(tmp_path / "empty", 32).tensors("test")


# --- trainers' guards --------------------------------------------------------------------------
def test_export_names_and_overwrite(tmp_path):
    from singlink.training import export_folder

    ckpts = tmp_path / "checkpoints"
    assert export_folder("deepjscc-mine", ckpts, False) == ckpts / "deepjscc-mine"
    assert export_folder(str(tmp_path / "elsewhere"), ckpts, False) == tmp_path / "elsewhere"
    # a path is a folder of the user's choosing, never a name resolved inside the package
    assert export_folder("../x", ckpts, False).parts[0] == ".."
    for bad in ("..", "a b", ".hidden", "", "x\x00"):
        with pytest.raises(UsageError, match="--export"):
            export_folder(bad, ckpts, False)
    (ckpts / "taken").mkdir(parents=True)
    (ckpts / "taken" / "config.json").write_text("{}")
    with pytest.raises(UsageError, match="--overwrite"):
        export_folder("taken", ckpts, False)
    assert export_folder("taken", ckpts, True) == ckpts / "taken"


def test_shipped_checkpoint_is_refused_without_overwrite(capsys):
    from singlink.cli import main

    assert main(["train-jscc", "--rho", "1/192", "--export", "deepjscc-cifar10-rho1_192", "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "shipped checkpoint" in err and "--overwrite" in err and len(err.splitlines()) == 1


class _Planted:
    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.target),))


def test_planted_state_file_runs_no_code(tmp_path):
    from singlink.training import load_state

    planted = _Planted()
    planted.target = str(tmp_path / "pwned")
    (tmp_path / "state.pt").write_bytes(pickle.dumps({"step": 1, "hparams": {}, "x": planted}))
    with pytest.raises(UsageError, match="not a readable singlink training state") as e:
        load_state(tmp_path, {})
    assert not (tmp_path / "pwned").exists() and "\n" not in str(e.value)
    (tmp_path / "state.pt").write_bytes(b"garbage")
    with pytest.raises(UsageError, match="not a readable"):
        load_state(tmp_path, {})


def test_checkpoint_for_another_size_is_refused(tmp_path):
    from singlink.jscc.model import DeepJSCC, DeepJSCCConfig, find_checkpoint

    with pytest.raises(UsageError, match="trained on 32x32 images"):
        DatasetSpec.parse("celeba").check_model((3, 32, 32), "the DeepJSCC x")
    DeepJSCC(DeepJSCCConfig(k=16, channels=8)).save_pretrained(tmp_path / "j")
    with pytest.raises(UsageError, match="built for images of"):
        DeepJSCC.from_pretrained(tmp_path / "j").encode(torch.rand(1, 3, 64, 64), 0.0)
    assert find_checkpoint("cifar10", 32, 16) == "deepjscc-cifar10-rho1_192"
    with pytest.raises(UsageError, match="no shipped deepjscc checkpoint for celeba at 64x64"):
        find_checkpoint("celeba", 64, 3)


def test_train_rejects_bad_numbers_with_one_line(capsys):
    from singlink.cli import main

    for argv, option in ((["--lr", "nan"], "--lr"), (["--train-images=-5"], "--train-images"),
                         (["--dataset", "nowhere"], "--dataset"), (["--image-size", "30", "--dataset", "celeba",
                                                                    "--rho", "1/12"], "multiples of 8")):
        assert main(["train-jscc", "--steps", "1", "--out", "/nonexistent/never", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert option in err and len(err.splitlines()) == 1, err


def test_warm_start_copies_exported_weights_and_refuses_another_architecture(tmp_path):
    from singlink.jscc.model import DeepJSCC, DeepJSCCConfig
    from singlink.training import warm_start

    torch.manual_seed(0)
    DeepJSCC(DeepJSCCConfig(k=16, channels=8)).save_pretrained(tmp_path / "exported")
    fresh = DeepJSCC(DeepJSCCConfig(k=16, channels=8))
    warm_start(fresh, tmp_path / "exported", DeepJSCC.from_pretrained)
    exported = DeepJSCC.from_pretrained(tmp_path / "exported")
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), exported.state_dict().values()))
    with pytest.raises(UsageError, match="--init .* architecture differs"):
        warm_start(DeepJSCC(DeepJSCCConfig(k=16, channels=16)), tmp_path / "exported", DeepJSCC.from_pretrained)


def test_sweep_config_file_command_line_and_python_name_data_the_same_way(tmp_path):
    from singlink.sweep.config import build_config

    base = {"methods": "bpg-capacity", "rho": "1/192", "snr": "0"}  # no checkpoint needed
    (tmp_path / "c.toml").write_text('dataset = "celeba"\nimage_size = 64\n')
    (tmp_path / "c.yaml").write_text("dataset: CelebA\n")
    from_cli = build_config(overrides=base | {"dataset": "celeba", "image_size": "64"})
    from_toml = build_config(config_file=tmp_path / "c.toml", overrides=base)
    from_yaml = build_config(config_file=tmp_path / "c.yaml", overrides=base)
    assert from_cli.spec == from_toml.spec == from_yaml.spec == DatasetSpec.parse("celeba", 64)
    assert from_cli.image_shape == (3, 64, 64) and from_cli.k("1/192") == 64
    assert build_config("cifar10", overrides=base).spec == DatasetSpec.parse("cifar10")
