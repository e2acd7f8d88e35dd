"""One way to name a data set everywhere: :class:`DatasetSpec` (``--dataset NAME --image-size N`` on
the command line, ``dataset`` / ``image_size`` in sweep configs, the same words in Python).

    >>> from singlink.data import DatasetSpec
    >>> spec = DatasetSpec.parse("celeba")            # image_size defaults to 64 for CelebA
    >>> x = spec.tensors("val", 100)                  # uint8 (100, 3, 64, 64), decoded once, held in memory
    >>> spec.tag, spec.to_dict()
    ('celeba64', {'dataset': 'celeba', 'image_size': 64})

Names: ``cifar10`` (native 32x32; split 'train' 45,000 / 'val' 5,000 of the official training set,
seed 0, and the official 'test'), ``celeba`` (aligned faces, default 64x64; see
:mod:`singlink.data.celeba` for the crop and the splits), ``kodak`` (24 images, 'test' only, centre
square crops when ``image_size`` is given) or a path to a folder of images. A folder with
``train/``, ``val/`` and ``test/`` subfolders uses them; otherwise its files are split 90/5/5 with
seed 0 as CelebA's are. Folder images are centre-cropped to a square and resized when
``image_size`` is given; without it they must all share one size.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset

from ..errors import UsageError
from .registry import _canonical
from .roots import DatasetNotFoundError
from .splits import split_indices

__all__ = ["DatasetSpec", "DATASETS", "SPLITS"]

# name -> default image size (None: as stored)
DATASETS = {"cifar10": 32, "celeba": 64, "kodak": None}
SPLITS = ("train", "val", "test")
_MEMORY_LIMIT = 8 * 2**30  # bytes of uint8 pixels held in memory at most


@dataclass(frozen=True)
class DatasetSpec:
    """A resolved data set name and image size. Build it with :meth:`parse`, which checks both."""

    name: str
    image_size: int | None
    root: str | None = None

    @classmethod
    def parse(cls, name, image_size=None, root=None) -> "DatasetSpec":
        """``name``: a data set name (:data:`DATASETS`) or a folder of images; ``image_size``: the
        side of the square images (None: the data set's default). Raises :class:`UsageError`."""
        if name is None or not str(name).strip():
            raise UsageError(f"--dataset must name a data set ({', '.join(DATASETS)}) or a folder of images")
        key = _canonical(str(name))
        if key not in DATASETS:
            path = Path(name).expanduser()
            if not path.is_dir():
                raise UsageError(f"--dataset {name!r} is neither a known data set ({', '.join(DATASETS)}) "
                                 f"nor an existing folder of images")
            key = str(path.resolve())
        if image_size is not None:
            try:
                size = int(image_size)
            except (TypeError, ValueError):
                raise UsageError(f"--image-size must be an integer number of pixels, got {image_size!r}") from None
            if isinstance(image_size, float) and image_size != size or size < 8 or size > 4096:
                raise UsageError(f"--image-size must be an integer in [8, 4096], got {image_size!r}")
            if key == "cifar10" and size != 32:
                raise UsageError(f"CIFAR-10 images are 32x32; --image-size {size} would resample them "
                                 "(use another data set for other sizes)")
            image_size = size
        else:
            image_size = DATASETS.get(key)
        return cls(key, image_size, None if root is None else str(root))

    @property
    def is_folder(self) -> bool:
        return self.name not in DATASETS

    @property
    def tag(self) -> str:
        """Short name used in checkpoint names: 'cifar10', 'celeba64', 'kodak256', '<folder>64'."""
        base = Path(self.name).name if self.is_folder else self.name
        if self.name == "cifar10" or self.image_size is None:
            return base
        return f"{base}{self.image_size}"

    def to_dict(self) -> dict:
        """What checkpoints and stores record: ``{'dataset': name, 'image_size': N}``."""
        return {"dataset": self.name, "image_size": self.image_size}

    def check_model(self, image_size, what="this checkpoint") -> None:
        """Refuse a model built for another image size, with one line."""
        h = image_size[-1] if isinstance(image_size, (tuple, list)) else image_size
        if self.image_size is not None and int(h) != self.image_size:
            raise UsageError(f"{what} was trained on {h}x{h} images but --dataset {self.tag} gives "
                             f"{self.image_size}x{self.image_size}; pick a checkpoint for this size or "
                             f"--image-size {h}")

    # --- data --------------------------------------------------------------------------------
    def dataset(self, split: str = "test") -> Dataset:
        """The ``split`` ('train', 'val' or 'test') as a torch Dataset of ``(image, id)`` items."""
        from .celeba import CelebA
        from .cifar import cifar10_splits
        from .folders import ImageFolderDataset, KodakDataset
        from .transforms import Transform

        if split not in SPLITS:
            raise UsageError(f"split must be one of {SPLITS}, got {split!r}")
        try:
            if self.name == "cifar10":
                return cifar10_splits(self.root)[split]
            if self.name == "celeba":
                return CelebA(self.root, split, self.image_size)
            transform = Transform(size=self.image_size, mode="center-crop") if self.image_size else None
            if self.name == "kodak":
                if split != "test":
                    raise UsageError(f"Kodak has only a test split (24 images), not {split!r}")
                return KodakDataset(self.root, transform=transform, landscape=transform is None)
            folder = Path(self.name)
            if all((folder / s).is_dir() for s in SPLITS):
                return ImageFolderDataset(folder / split, transform=transform)
            full = ImageFolderDataset(folder, transform=transform)
            parts = split_indices(len(full), (0.90, 0.05, 0.05), seed=0)
            return Subset(full, parts[SPLITS.index(split)].tolist())
        except DatasetNotFoundError as e:
            raise UsageError(str(e)) from None

    def tensors(self, split: str = "test", n: int | None = None, ids: bool = False):
        """The first ``n`` images of ``split`` (all when None) as one uint8 tensor (N, 3, H, W),
        decoded once and kept in this process (repeated calls are free). With ``ids=True`` also
        the item ids. Unreadable files and mixed sizes are one-line :class:`UsageError` s."""
        key = (self, split)
        have = _CACHE.get(key)
        if have is None or len(have[0]) < (have[2] if n is None else min(int(n), have[2])):
            have = _CACHE[key] = self._decode(split, n)
        x, item_ids, _ = have
        x, item_ids = (x, item_ids) if n is None else (x[:n], item_ids[:n])
        return (x, item_ids) if ids else x

    def _decode(self, split, n):
        from PIL import UnidentifiedImageError

        data = self.dataset(split)
        total = len(data)
        count = total if n is None else min(int(n), total)
        t0 = time.perf_counter()
        images, item_ids = [], []
        for i in range(count):
            try:
                img, item = data[i]
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
                raise UsageError(f"cannot read image {i} of {self.tag} {split}: {str(e).splitlines()[0][:200]}") from None
            if images and img.shape != images[0].shape:
                raise UsageError(f"{self.tag} {split} images differ in size ({tuple(images[0].shape)} and "
                                 f"{tuple(img.shape)} at item {i}); give --image-size to crop them to one size")
            if i == 0 and count * img.numel() > _MEMORY_LIMIT:
                raise UsageError(f"{count} images of {tuple(img.shape)} do not fit the {_MEMORY_LIMIT >> 30} GiB "
                                 "in-memory limit; use fewer images")
            images.append((img * 255).round_().to(torch.uint8))
            item_ids.append(item)
        if not images:
            raise UsageError(f"{self.tag} {split} holds no images")
        x = torch.stack(images)
        seconds = time.perf_counter() - t0
        if seconds > 2:
            print(f"decoded {count} {self.tag} {split} images in {seconds:.0f} s")
        return x, item_ids, total


_CACHE: dict = {}


def as_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1]."""
    return x.float().div_(255)
