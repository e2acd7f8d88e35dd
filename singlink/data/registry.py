"""``dataset_by_name``: one entry point for the named data sets and arbitrary image folders."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from torch.utils.data import Dataset, Subset

from .cifar import CIFAR10
from .folders import ImageFolderDataset, KodakDataset
from .roots import DatasetNotFoundError
from .splits import split_indices
from .transforms import Transform

__all__ = ["dataset_by_name", "DATASET_NAMES"]

DATASET_NAMES = ("cifar10", "kodak")
_CIFAR_SPLITS = ("train", "val", "validation", "test", "train-full")


def _canonical(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "")


def dataset_by_name(
    name: str | os.PathLike,
    split: str | None = "test",
    root: str | os.PathLike | None = None,
    *,
    transform: Callable | None = None,
    size: int | tuple[int, int] | None = None,
    mode: str = "center-crop",
    seed: int = 0,
    val_size: int = 5000,
    split_seed: int = 0,
    **kw: Any,
) -> Dataset:
    """Build a dataset by name.

    * ``"cifar10"`` (or ``"cifar-10"``): ``split`` 'train' = the 45,000-image part of the
      official training set, 'val' / 'validation' = the other 5,000 (chosen by
      ``split_indices(50000, (None, val_size), split_seed)``), 'train-full' = all 50,000,
      'test' = the official 10,000. Extra ``kw``: ``download``, ``order``.
    * ``"kodak"``: the 24 Kodak images; ``split`` must be 'test', 'all' or None. Extra ``kw``:
      ``landscape`` (default True: portrait images rotated to landscape).
    * anything else is taken as a path to a folder of images (:class:`ImageFolderDataset`,
      recursive); when ``split`` is given and ``<folder>/<split>`` exists, that subfolder is
      used, otherwise the whole folder. Extra ``kw``: ``recursive``.

    ``transform`` wins when given; otherwise ``size`` (with ``mode`` and ``seed``) builds a
    :class:`Transform`. ``root`` follows the data-root resolution (ignored for folder paths).
    """
    key = _canonical(os.fspath(name)) if not isinstance(name, Path) else None
    if transform is None and size is not None:
        landscape = kw.pop("landscape", key == "kodak")
        transform = Transform(size=size, mode=mode, seed=seed, landscape=landscape)

    if key == "cifar10":
        if split not in _CIFAR_SPLITS:
            raise ValueError(f"CIFAR-10 split must be one of {_CIFAR_SPLITS}, got {split!r}")
        if split == "test":
            return CIFAR10(root, "test", transform=transform, **kw)
        if split == "train-full":
            return CIFAR10(root, "train", transform=transform, **kw)
        full = CIFAR10(root, "train", transform=transform, **kw)
        train_idx, val_idx = split_indices(len(full), (None, val_size), split_seed)
        return Subset(full, (train_idx if split == "train" else val_idx).tolist())

    if key == "kodak":
        if split not in (None, "test", "all"):
            raise ValueError(f"Kodak has only a test set (split 'test', 'all' or None), got {split!r}")
        return KodakDataset(root, transform=transform, **kw)

    path = Path(name).expanduser()
    if not path.is_dir() and not isinstance(name, Path) and os.sep not in str(name) and "/" not in str(name) \
            and not str(name).startswith((".", "~")):
        raise ValueError(f"unknown dataset {str(name)!r}: use one of {DATASET_NAMES} or a path to a folder of images")
    if not path.is_dir():
        raise DatasetNotFoundError(f"image folder {path} not found (it does not exist or is not a folder)")
    if split and (path / split).is_dir():
        path = path / split
    return ImageFolderDataset(path, transform=transform, **kw)
