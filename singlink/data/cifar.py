"""CIFAR-10 from a folder of images or from the official python archive.

Two on-disk layouts are read, both inside a ``cifar10/`` folder found by the data-root
resolution (:mod:`singlink.data.roots`):

* **folder layout** ``cifar10/{train,test}/<class>/NNNN.jpg`` (the copy in ``shared/data``).
  Those files are 32x32 JPEGs (quality about 75), so pixels are *not* identical to the
  official CIFAR-10 arrays: PSNR/SSIM figures computed on them are not comparable to
  published numbers to the last decimal. Item order: by default ``order="interleaved"``,
  i.e. round-robin over the classes in label order (airplane 0000, automobile 0000, ...,
  truck 0000, airplane 0001, ...), so any prefix is class balanced; ``order="sorted"`` gives
  plain sorted paths (class by class).
* **official archive** ``cifar10/cifar-10-batches-py/{data_batch_1..5,test_batch}`` extracted
  from ``cifar-10-python.tar.gz`` (exact pixels, official item order). With
  ``download=True`` the archive is fetched, MD5-checked, and extracted when CIFAR-10 is
  found nowhere; a ``cifar-10-python.tar.gz`` already in ``cifar10/`` is checked and extracted
  on first use.

For each split the folder layout is preferred when present, then the extracted archive, then
an unextracted ``cifar-10-python.tar.gz``. Items are ``(image, label)``: a float32
``(3, 32, 32)`` tensor in [0, 1] (or whatever the transform makes) and an int in 0..9 indexing
:data:`CIFAR10_CLASSES`.

The archive's batches are Python pickles. They are read with a restricted unpickler
(:class:`_BatchUnpickler`) that rebuilds only what a CIFAR-10 batch holds (a dict of numpy arrays,
lists, bytes, strings and numbers) and refuses every other global with a
:class:`pickle.UnpicklingError` naming it, so a planted pickle cannot run code.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np
from PIL import Image
from torch.utils.data import Dataset, Subset

from .folders import list_images
from .roots import DatasetNotFoundError, candidate_roots, cache_dir, not_found_message
from .splits import split_indices
from .transforms import apply_transform

__all__ = [
    "CIFAR10",
    "CIFAR10_CLASSES",
    "CIFAR10_URL",
    "CIFAR10_MD5",
    "ChecksumError",
    "md5_file",
    "download_file",
    "extract_archive",
    "download_cifar10",
    "cifar10_splits",
]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
BATCHES_DIR = "cifar-10-batches-py"
SPLITS = ("train", "test")
_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


class ChecksumError(ValueError):
    """A downloaded or local file does not have the expected MD5 digest."""


def md5_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex MD5 digest of a file."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            h.update(chunk)
    return h.hexdigest()


def _fetch_url(url: str, dest: Path) -> None:
    """Stream ``url`` into the (already created) file ``dest``. Replaced in tests."""
    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, length=1 << 20)


def download_file(url: str, dest: str | os.PathLike, md5: str | None = None) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying ``md5`` when given.

    An existing ``dest`` with the right digest is kept as is. The data goes to a temporary
    file next to ``dest`` that is renamed to ``dest`` only once the digest matches; on a
    mismatch (or any error) the temporary file is removed and :class:`ChecksumError` raised,
    so no partial or corrupt ``dest`` is ever left behind.
    """
    dest = Path(dest)
    if dest.is_file() and (md5 is None or md5_file(dest) == md5):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _fetch_url(url, tmp)
        if md5 is not None:
            got = md5_file(tmp)
            if got != md5:
                raise ChecksumError(f"MD5 mismatch for {url}: expected {md5}, got {got}; "
                                    f"the download is corrupt or the file changed, so it was discarded "
                                    f"and {dest} was not written")
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


def extract_archive(archive: str | os.PathLike, dest_dir: str | os.PathLike) -> Path:
    """Extract a ``.tar(.gz)`` into ``dest_dir``, refusing absolute or ``..`` member paths and
    skipping anything but regular files and folders (links, devices). Returns ``dest_dir``."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        members = []
        for m in tar.getmembers():
            p = PurePosixPath(m.name)
            if p.is_absolute() or ".." in p.parts:
                raise ValueError(f"unsafe path {m.name!r} in archive {archive}")
            if m.isfile() or m.isdir():
                members.append(m)
        for m in members:
            tar.extract(m, dest_dir)
    return dest_dir


def _extract_cifar(archive: Path, md5: str | None) -> Path:
    """Verify and extract ``archive`` next to itself; returns the ``cifar-10-batches-py`` path.
    Extraction goes to a temporary folder first, so an interrupted run leaves no half folder."""
    if md5 is not None:
        got = md5_file(archive)
        if got != md5:
            raise ChecksumError(f"MD5 mismatch for {archive}: expected {md5}, got {got}; "
                                f"delete it and download again (download=True)")
    target = archive.parent / BATCHES_DIR
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=archive.parent))
    try:
        extract_archive(archive, tmp)
        if not (tmp / BATCHES_DIR).is_dir():
            raise ValueError(f"{archive} does not contain a {BATCHES_DIR}/ folder")
        if not target.exists():
            os.replace(tmp / BATCHES_DIR, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def download_cifar10(dest_dir: str | os.PathLike | None = None, *, url: str | None = None,
                     md5: str | None = None) -> Path:
    """Download (if needed), verify and extract the official python archive.

    ``dest_dir`` defaults to ``<cache>/cifar10`` (see :func:`singlink.data.roots.cache_dir`).
    Returns the folder holding ``cifar-10-batches-py/``.
    """
    dest_dir = Path(dest_dir) if dest_dir is not None else cache_dir() / "cifar10"
    url = url or CIFAR10_URL
    md5 = md5 or CIFAR10_MD5
    if not (dest_dir / BATCHES_DIR / _BATCHES["test"][0]).is_file():
        archive = download_file(url, dest_dir / ARCHIVE_NAME, md5)
        _extract_cifar(archive, None)  # just verified by download_file
    return dest_dir


def _folder_split_ok(path: Path, split: str) -> bool:
    d = path / split
    return d.is_dir() and any((d / c).is_dir() for c in CIFAR10_CLASSES)


def _layout(path: Path, split: str) -> str | None:
    """Best layout available for ``split`` in the folder ``path``: 'folder', 'archive', 'tarball'."""
    if _folder_split_ok(path, split):
        return "folder"
    if all((path / BATCHES_DIR / b).is_file() for b in _BATCHES[split]):
        return "archive"
    if (path / ARCHIVE_NAME).is_file():
        return "tarball"
    return None


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR-10 python batches: numpy arrays and the builtin containers only
    (dicts, lists, bytes, strings and numbers need no globals); any other global is refused."""

    ALLOWED = frozenset({
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    })

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR-10 batch holds only arrays "
                                         f"and lists")
        return super().find_class(module, name)


def read_pickle_batch(path: str | os.PathLike) -> dict:
    """A CIFAR-10 python batch file as a dict, through :class:`_BatchUnpickler`. Raises
    :class:`ValueError` (one line naming the file) for a file that is not a clean batch."""
    try:
        with open(path, "rb") as f:
            d = _BatchUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise ValueError(f"{path} is not a CIFAR-10 python batch: {e}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, ImportError) as e:
        raise ValueError(f"{path} is not a CIFAR-10 python batch ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:120]})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path} is not a CIFAR-10 python batch (holds a {type(d).__name__}, not a dict)")
    return d


def _read_batch(path: Path) -> tuple[np.ndarray, list[int]]:
    d = read_pickle_batch(path)
    data = d.get(b"data", d.get("data"))
    labels = d.get(b"labels", d.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"{path} is not a CIFAR-10 python batch (no data/labels)")
    try:
        data = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels = [int(x) for x in labels]
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path} is not a CIFAR-10 python batch ({' '.join(str(e).split())[:120]})") from None
    if len(labels) != len(data):
        raise ValueError(f"{path} is not a CIFAR-10 python batch ({len(data)} images, {len(labels)} labels)")
    return np.ascontiguousarray(data), labels


class CIFAR10(Dataset):
    """CIFAR-10, official ``split`` 'train' (50,000) or 'test' (10,000); items ``(image, label)``.

    ``CIFAR10(root=None, split="test", transform=None, download=False, order="interleaved")``.
    See the module docstring for the layouts, the preference between them and the item order
    (``order`` only affects the folder layout; the archive keeps the official order).
    ``transform=None`` gives the 32x32 image unchanged as a tensor. ``download=True`` fetches
    the archive into ``root/cifar10`` when ``root`` is given, else into the cache, only when
    CIFAR-10 is found nowhere. Attributes: ``layout`` ('folder' or 'archive'), ``root`` (the
    ``cifar10`` folder), ``targets`` (labels), ``files`` (folder layout only), ``classes``.
    For a train/validation split use :func:`cifar10_splits`.
    """

    classes = CIFAR10_CLASSES

    def __init__(self, root: str | os.PathLike | None = None, split: str = "test",
                 transform: Callable | None = None, download: bool = False, order: str = "interleaved"):
        if split not in SPLITS:
            raise ValueError(f"CIFAR-10 split must be one of {SPLITS}, got {split!r} "
                             "(for a validation split use cifar10_splits or dataset_by_name)")
        if order not in ("interleaved", "sorted"):
            raise ValueError(f"order must be 'interleaved' or 'sorted', got {order!r}")
        self.split, self.transform, self.order = split, transform, order
        folder, layout = self._locate(root, split, download)
        if layout == "tarball":
            _extract_cifar(folder / ARCHIVE_NAME, CIFAR10_MD5)
            layout = "archive"
        self.root, self.layout = folder, layout
        self.files: list[Path] | None = None
        self._data: np.ndarray | None = None
        if layout == "folder":
            self._init_folder(folder / split)
        else:
            arrays, labels = [], []
            for name in _BATCHES[split]:
                data, lab = _read_batch(folder / BATCHES_DIR / name)
                arrays.append(data)
                labels.extend(lab)
            self._data = np.concatenate(arrays)
            self.targets = labels

    @staticmethod
    def _locate(root, split: str, download: bool) -> tuple[Path, str]:
        looked: list[Path] = []
        for r in candidate_roots(root):
            for path in ((r / "cifar10", r) if root is not None else (r / "cifar10",)):
                looked.append(path)
                layout = _layout(path, split) if path.is_dir() else None
                if layout:
                    return path, layout
        dest = (Path(root).expanduser() if root is not None else cache_dir()) / "cifar10"
        if download:
            return download_cifar10(dest), "archive"
        raise DatasetNotFoundError(not_found_message(
            f"CIFAR-10 ({split} split)", looked, "cifar10",
            f"expected {split}/<class>/*.jpg, {BATCHES_DIR}/ or {ARCHIVE_NAME} there; "
            f"or pass download=True (needs internet) to fetch {CIFAR10_URL} into {dest}"))

    def _init_folder(self, split_dir: Path) -> None:
        unknown = sorted(d.name for d in split_dir.iterdir()
                         if d.is_dir() and not d.name.startswith(".") and d.name not in CIFAR10_CLASSES)
        if unknown:
            raise ValueError(f"{split_dir}: unexpected class folders {unknown}; expected {list(CIFAR10_CLASSES)}")
        per_class = [list_images(split_dir / c, recursive=False) if (split_dir / c).is_dir() else []
                     for c in CIFAR10_CLASSES]
        pairs: list[tuple[Path, int]] = []
        if self.order == "sorted":
            pairs = [(f, label) for label, files in enumerate(per_class) for f in files]
        else:
            for k in range(max(len(f) for f in per_class)):
                pairs.extend((files[k], label) for label, files in enumerate(per_class) if k < len(files))
        self.files = [p for p, _ in pairs]
        self.targets = [label for _, label in pairs]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        if index < 0:
            index += len(self)
        if self.files is not None:
            try:
                with Image.open(self.files[index]) as img:
                    img.load()
                    image = apply_transform(self.transform, img, index)
            except (OSError, SyntaxError) as e:  # PIL: not an image (UnidentifiedImageError), truncated, ...
                raise ValueError(f"cannot read the CIFAR-10 image {self.files[index]}: "
                                 f"{' '.join(str(e).split())[:160] or type(e).__name__}") from None
        else:
            image = apply_transform(self.transform, Image.fromarray(self._data[index]), index)
        return image, self.targets[index]

    def __repr__(self) -> str:
        return (f"CIFAR10(split={self.split!r}, n={len(self)}, layout={self.layout!r}, "
                f"root={str(self.root)!r}, transform={self.transform!r})")


def cifar10_splits(root: str | os.PathLike | None = None, val_size: int = 5000, seed: int = 0,
                   transform: Callable | None = None, download: bool = False,
                   order: str = "interleaved") -> dict[str, Dataset]:
    """``{'train', 'val', 'test'}``: the official training set split by
    ``split_indices(50000, (None, val_size), seed)`` into train (45,000 by default) and
    validation (5,000), plus the official test set. Same seed -> same split everywhere (for a
    given layout; see :mod:`singlink.data.splits`)."""
    full = CIFAR10(root, "train", transform=transform, download=download, order=order)
    train_idx, val_idx = split_indices(len(full), (None, val_size), seed)
    return {
        "train": Subset(full, train_idx.tolist()),
        "val": Subset(full, val_idx.tolist()),
        "test": CIFAR10(root, "test", transform=transform, download=download, order=order),
    }
