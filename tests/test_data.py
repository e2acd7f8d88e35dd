"""Tests for singlink.data: roots, CIFAR-10 (folder + archive), Kodak, transforms, splits, batching."""
import hashlib
import pickle
import shutil
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from singlink.data import (CIFAR10, ChecksumError, DatasetNotFoundError, ImageFolderDataset, KodakDataset,
                           Transform, candidate_roots, cifar10_splits, dataset_by_name, download_file,
                           first_n, load_batch, make_loader, split_indices)
from singlink.data import cifar as cifar_mod
from singlink.data import roots as roots_mod

SHARED = roots_mod.repo_root().parent / "shared" / "data"
needs_shared_cifar = pytest.mark.skipif(not (SHARED / "cifar10" / "test").is_dir(),
                                        reason=f"shared CIFAR-10 folder {SHARED / 'cifar10'} is absent")
needs_shared_kodak = pytest.mark.skipif(not (SHARED / "kodak").is_dir(),
                                        reason=f"shared Kodak folder {SHARED / 'kodak'} is absent")


# --------------------------------------------------------------------------- helpers

@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No SINGLINK_DATA, shared folder and cache redirected into tmp_path (neither created)."""
    monkeypatch.delenv("SINGLINK_DATA", raising=False)
    monkeypatch.setattr(roots_mod, "SHARED_DATA_DIR", tmp_path / "shared")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path


def save_png(path, w=8, h=6, seed=0, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).convert(mode).save(path)
    return arr


def make_fake_batches(folder, n_per_train_batch=3, n_test=7):
    """A tiny ``cifar-10-batches-py`` with the official pickle format (bytes keys, uint8 rows)."""
    d = folder / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(1)
    out = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else n_per_train_batch
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(x) for x in rng.integers(0, 10, n)]
        with open(d / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [f"{name}_{i}.png".encode() for i in range(n)]}, f)
        out[name] = (data, labels)
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in cifar_mod.CIFAR10_CLASSES]}, f)
    return out


def make_tarball(tmp_path):
    src = tmp_path / "src"
    batches = make_fake_batches(src)
    archive = tmp_path / "fake-cifar.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive, batches


def copy_fetch(src):
    def fetch(url, dest):
        shutil.copyfile(src, dest)
    return fetch


# --------------------------------------------------------------------------- roots

def test_root_resolution_order(isolated, monkeypatch):
    tmp = isolated
    explicit, env, shared, cache = tmp / "explicit", tmp / "env", tmp / "shared", tmp / "xdg" / "singlink"
    for base in (explicit, env, shared, cache):
        save_png(base / "kodak" / "kodim01.png")
    monkeypatch.setenv("SINGLINK_DATA", str(env))
    assert candidate_roots() == [env, shared, cache]
    assert candidate_roots(explicit) == [explicit]

    assert KodakDataset(root=explicit).root == explicit / "kodak"
    assert KodakDataset().root == env / "kodak"
    shutil.rmtree(env / "kodak")                      # env set but lacks the data set: fall through
    assert KodakDataset().root == shared / "kodak"
    shutil.rmtree(shared)                             # shared folder absent: not even listed
    assert candidate_roots() == [env, cache]
    assert KodakDataset().root == cache / "kodak"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp / "home"))
    assert roots_mod.cache_dir() == tmp / "home" / ".cache" / "singlink"


def test_explicit_root_is_exclusive_and_may_be_the_dataset_folder(isolated, monkeypatch):
    tmp = isolated
    save_png(tmp / "env" / "kodak" / "kodim01.png")
    monkeypatch.setenv("SINGLINK_DATA", str(tmp / "env"))
    with pytest.raises(DatasetNotFoundError) as e:
        KodakDataset(root=tmp / "typo")
    assert str(tmp / "typo" / "kodak") in str(e.value) and str(tmp / "env") not in str(e.value)
    assert KodakDataset(root=tmp / "env" / "kodak").root == tmp / "env" / "kodak"


def test_missing_dataset_error_is_one_line_and_lists_paths(isolated, monkeypatch):
    tmp = isolated
    (tmp / "shared").mkdir()
    monkeypatch.setenv("SINGLINK_DATA", str(tmp / "env"))
    with pytest.raises(DatasetNotFoundError) as e:
        CIFAR10(split="test")
    msg = str(e.value)
    assert isinstance(e.value, FileNotFoundError)
    assert "\n" not in msg
    for p in (tmp / "env" / "cifar10", tmp / "shared" / "cifar10", tmp / "xdg" / "singlink" / "cifar10"):
        assert str(p) in msg
    assert "SINGLINK_DATA" in msg and "root=" in msg and "download=True" in msg
    with pytest.raises(DatasetNotFoundError) as e:
        KodakDataset()
    assert "\n" not in str(e.value) and str(tmp / "xdg" / "singlink" / "kodak") in str(e.value)


# --------------------------------------------------------------------------- CIFAR-10

@needs_shared_cifar
def test_cifar10_folder_layout_on_shared_data():
    ds = CIFAR10(root=SHARED, split="test")
    assert ds.layout == "folder" and len(ds) == 10_000
    assert np.bincount(ds.targets, minlength=10).tolist() == [1000] * 10
    x, y = load_batch(ds, range(0, 10_000, 97))       # a spread-out sample of 104 images
    assert x.shape == (104, 3, 32, 32) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.05
    assert y.dtype == torch.int64 and 0 <= int(y.min()) and int(y.max()) <= 9
    # interleaved order: the first 20 items are two of each class
    assert ds.targets[:20] == list(range(10)) * 2
    assert ds.files[0].parent.name == "airplane" and ds.files[1].parent.name == "automobile"
    assert CIFAR10(root=SHARED, split="test", order="sorted").targets[:1000] == [0] * 1000


def test_cifar10_archive_reader(isolated):
    tmp = isolated
    batches = make_fake_batches(tmp / "data" / "cifar10")
    test = CIFAR10(root=tmp / "data", split="test")
    train = CIFAR10(root=tmp / "data", split="train")
    assert test.layout == "archive" and len(test) == 7 and len(train) == 15
    data, labels = batches["test_batch"]
    img, label = test[3]
    assert img.shape == (3, 32, 32) and img.dtype == torch.float32
    expected = torch.from_numpy(data[3].reshape(3, 32, 32).astype(np.float32) / 255)
    assert torch.equal(img, expected) and label == labels[3]
    # train = data_batch_1..5 concatenated in order
    d2, l2 = batches["data_batch_2"]
    img, label = train[3]
    assert torch.equal(img, torch.from_numpy(d2[0].reshape(3, 32, 32).astype(np.float32) / 255)) and label == l2[0]
    assert train.targets == sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])


def test_cifar10_prefers_folder_layout(isolated):
    root = isolated / "data"
    make_fake_batches(root / "cifar10")
    save_png(root / "cifar10" / "test" / "cat" / "0000.png", 32, 32)
    save_png(root / "cifar10" / "test" / "dog" / "0000.png", 32, 32, seed=1)
    ds = CIFAR10(root=root, split="test")
    assert ds.layout == "folder" and ds.targets == [3, 5]
    assert CIFAR10(root=root, split="train").layout == "archive"   # no train/ folder: archive


def test_md5_mismatch_refuses_and_leaves_no_file(tmp_path, monkeypatch):
    src = tmp_path / "payload.bin"
    src.write_bytes(b"not really cifar" * 100)
    monkeypatch.setattr(cifar_mod, "_fetch_url", copy_fetch(src))
    dest_dir = tmp_path / "dl"
    with pytest.raises(ChecksumError, match="MD5 mismatch"):
        download_file("https://example.invalid/x.tar.gz", dest_dir / "x.tar.gz", md5="0" * 32)
    assert list(dest_dir.iterdir()) == []
    good = hashlib.md5(src.read_bytes()).hexdigest()
    out = download_file("https://example.invalid/x.tar.gz", dest_dir / "x.tar.gz", md5=good)
    assert out.read_bytes() == src.read_bytes() and [p.name for p in dest_dir.iterdir()] == ["x.tar.gz"]


def test_cifar10_download_flow_with_fake_archive(isolated, monkeypatch):
    archive, batches = make_tarball(isolated)
    monkeypatch.setattr(cifar_mod, "_fetch_url", copy_fetch(archive))
    monkeypatch.setattr(cifar_mod, "CIFAR10_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    ds = CIFAR10(split="test", download=True)
    cache = isolated / "xdg" / "singlink" / "cifar10"
    assert ds.root == cache and ds.layout == "archive" and len(ds) == 7
    assert (cache / "cifar-10-python.tar.gz").is_file() and (cache / "cifar-10-batches-py" / "test_batch").is_file()
    assert ds.targets == batches["test_batch"][1]
    assert CIFAR10(split="test").root == cache                     # now found in the cache, no download
    # an unextracted archive placed under root/cifar10 is verified and extracted on first use
    (isolated / "r" / "cifar10").mkdir(parents=True)
    shutil.copyfile(archive, isolated / "r" / "cifar10" / "cifar-10-python.tar.gz")
    assert len(CIFAR10(root=isolated / "r", split="train")) == 15


def test_cifar10_train_val_split(isolated):
    make_fake_batches(isolated / "data" / "cifar10", n_per_train_batch=20)
    parts = cifar10_splits(isolated / "data", val_size=10, seed=0)
    assert len(parts["train"]) == 90 and len(parts["val"]) == 10 and len(parts["test"]) == 7
    assert not set(parts["train"].indices) & set(parts["val"].indices)
    val = dataset_by_name("cifar10", "val", root=isolated / "data", val_size=10)
    assert val.indices == parts["val"].indices


# --------------------------------------------------------------------------- Kodak and folders

@needs_shared_kodak
def test_kodak_on_shared_data():
    ds = KodakDataset(root=SHARED)
    assert len(ds) == 24 and ds.ids == [f"kodim{i:02d}.png" for i in range(1, 25)]
    x, ids = load_batch(ds, [0, 3])                      # kodim04 is portrait, rotated to landscape
    assert x.shape == (2, 3, 512, 768) and ids == ["kodim01.png", "kodim04.png"]
    assert KodakDataset(root=SHARED, landscape=False)[3][0].shape == (3, 768, 512)


def test_kodak_ignores_non_images(isolated):
    k = isolated / "data" / "kodak"
    save_png(k / "kodim01.png", 12, 8)
    portrait = save_png(k / "kodim02.png", 8, 12, seed=2)
    (k / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (k / "README.txt").write_text("notes")
    ds = KodakDataset(root=isolated / "data")
    assert ds.ids == ["kodim01.png", "kodim02.png"]
    img, _ = ds[1]
    assert img.shape == (3, 8, 12)
    assert torch.equal(img, torch.from_numpy(np.rot90(portrait).astype(np.float32) / 255).permute(2, 0, 1))


def test_image_folder_dataset_recursive_sorted(tmp_path):
    save_png(tmp_path / "b" / "2.JPG", mode="RGB")
    save_png(tmp_path / "a.png", mode="L")
    save_png(tmp_path / "b" / "1.webp", mode="RGBA")
    save_png(tmp_path / ".hidden" / "x.png")
    (tmp_path / ".DS_Store").write_bytes(b"x")
    ds = ImageFolderDataset(tmp_path)
    assert ds.ids == ["a.png", "b/1.webp", "b/2.JPG"]
    assert all(ds[i][0].shape == (3, 6, 8) for i in range(3))
    assert dataset_by_name(str(tmp_path), split=None).ids == ds.ids
    assert dataset_by_name(tmp_path, split="b").ids == ["1.webp", "2.JPG"]     # <folder>/<split> used
    with pytest.raises(DatasetNotFoundError):
        dataset_by_name(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="unknown dataset"):
        dataset_by_name("imagenet")


# --------------------------------------------------------------------------- transforms

def test_transform_shapes_and_policies():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (50, 100, 3), dtype=np.uint8)   # H=50, W=100
    img = Image.fromarray(arr)
    assert Transform()(img).shape == (3, 50, 100)
    assert Transform(size=32)(img).shape == (3, 32, 32)
    assert Transform(size=(20, 30), mode="resize")(img).shape == (3, 20, 30)
    assert Transform(size=(40, 40), mode="random-crop")(img, index=0).shape == (3, 40, 40)
    assert Transform(size=(64, 64), mode="random-crop")(img, index=0).shape == (3, 64, 64)   # upscaled first
    # center crop with no resampling needed is an exact centred window
    out = Transform(size=(50, 50))(img)
    assert torch.equal(out, torch.from_numpy(arr[:, 25:75].astype(np.float32) / 255).permute(2, 0, 1))
    # values stay in [0, 1] after bicubic resampling
    up = Transform(size=(200, 300), mode="resize")(img)
    assert 0.0 <= up.min() and up.max() <= 1.0
    with pytest.raises(ValueError):
        Transform(size=8, mode="stretch")


def test_random_crop_is_seeded_per_index():
    arr = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    t = Transform(size=(8, 8), mode="random-crop", seed=5)
    a = t(img, index=3)
    assert torch.equal(a, Transform(size=(8, 8), mode="random-crop", seed=5)(img, index=3))
    crops = {t(img, index=i).numpy().tobytes() for i in range(10)}
    assert len(crops) > 1
    src = torch.from_numpy(arr.astype(np.float32) / 255).permute(2, 0, 1)
    assert any(torch.equal(a, src[:, y:y + 8, x:x + 8]) for y in range(23) for x in range(33))
    t.set_epoch(1)
    assert {t(img, index=i).numpy().tobytes() for i in range(10)} != crops


# --------------------------------------------------------------------------- splits and batching

def test_split_indices_deterministic():
    a = split_indices(1000, (800, 100, 100), seed=0)
    b = split_indices(1000, (800, 100, 100), seed=0)
    c = split_indices(1000, (800, 100, 100), seed=1)
    assert [len(p) for p in a] == [800, 100, 100]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[1], c[1])
    assert np.array_equal(np.sort(np.concatenate(a)), np.arange(1000))   # disjoint and complete
    assert all(np.all(np.diff(p) > 0) for p in a)
    f = split_indices(10, (0.7, 0.3), seed=0)
    assert [len(p) for p in f] == [7, 3]
    train, val = split_indices(50_000, (None, 5_000), seed=0)
    assert len(train) == 45_000 and len(val) == 5_000 and not np.intersect1d(train, val).size
    assert val[:5].tolist() == [3, 10, 16, 20, 23]         # pinned: splits must not drift
    with pytest.raises(ValueError):
        split_indices(10, (8, 5))


def test_first_n_load_batch_and_loader(tmp_path):
    for i in range(6):
        save_png(tmp_path / f"{i}.png", seed=i)
    ds = ImageFolderDataset(tmp_path)
    sub = first_n(ds, 4)
    assert sub.indices == [0, 1, 2, 3]
    assert first_n(ds, 3, seed=1).indices == first_n(ds, 3, seed=1).indices
    x, ids = load_batch(ds, [5, 0])
    assert x.shape == (2, 3, 6, 8) and ids == ["5.png", "0.png"]
    order = lambda seed: [i for _, batch in make_loader(ds, 2, shuffle=True, seed=seed) for i in batch]
    assert order(3) == order(3) and sorted(order(3)) == ds.ids
    xb, idb = next(iter(make_loader(ds, 4)))
    assert xb.shape == (4, 3, 6, 8) and list(idb) == ds.ids[:4]
