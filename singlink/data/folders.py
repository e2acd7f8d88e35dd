"""Folder-of-images datasets: any folder (CelebA-HQ and the like) and Kodak.

Items are ``(image, id)``: ``image`` a float32 ``(3, H, W)`` tensor in [0, 1] produced by the
dataset's :class:`~singlink.data.Transform`, ``id`` the file's path relative to the folder
(POSIX separators, e.g. ``"kodim01.png"``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from PIL import Image
from torch.utils.data import Dataset

from .roots import DatasetNotFoundError, resolve_dataset_dir
from .transforms import Transform, apply_transform

__all__ = ["IMAGE_EXTENSIONS", "list_images", "ImageFolderDataset", "KodakDataset"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def list_images(folder: str | os.PathLike, recursive: bool = True,
                extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files under ``folder``, sorted by relative POSIX path.

    Extensions match case-insensitively. Hidden files and folders (names starting with ``.``,
    e.g. ``.DS_Store``, ``.ipynb_checkpoints``) and any other file types are skipped.
    """
    folder = Path(folder)
    exts = tuple(e.lower() for e in extensions)
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(exts):
                found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


class ImageFolderDataset(Dataset):
    """All images under a folder (recursively; .png .jpg .jpeg .bmp .webp), sorted by path.

    ``ImageFolderDataset(folder, transform=None, recursive=True)``; ``transform=None`` means
    ``Transform()`` (RGB, original size). Raises :class:`DatasetNotFoundError` if the folder
    is missing or holds no images.
    """

    def __init__(self, folder: str | os.PathLike, transform: Callable | None = None,
                 recursive: bool = True, name: str | None = None):
        self.root = Path(folder).expanduser()
        self.name = name or self.root.name
        self.transform = transform
        if not self.root.is_dir():
            raise DatasetNotFoundError(f"image folder {self.root} not found (it does not exist or is not a folder)")
        self.files = list_images(self.root, recursive=recursive)
        if not self.files:
            raise DatasetNotFoundError(
                f"no image files ({', '.join(IMAGE_EXTENSIONS)}) found under {self.root}")
        self.ids = [p.relative_to(self.root).as_posix() for p in self.files]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        if index < 0:
            index += len(self)
        with Image.open(self.files[index]) as img:
            img.load()
            return apply_transform(self.transform, img, index), self.ids[index]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, n={len(self)}, transform={self.transform!r})"


def _has_kodak_images(path: Path) -> bool:
    return any(p.name.lower().startswith("kodim") for p in list_images(path, recursive=False))


class KodakDataset(ImageFolderDataset):
    """The Kodak set: ``kodim01.png`` .. ``kodim24.png`` (768x512; 6 portrait), in a ``kodak/``
    folder found by the data-root resolution (see :mod:`singlink.data.roots`).

    Only image files directly in the folder are used; ``.DS_Store`` and other non-images are
    ignored. With ``transform=None`` the policy is ``Transform(landscape=landscape)``: by default
    the six portrait images (kodim04, 09, 10, 17, 18, 19) are rotated 90 degrees
    counter-clockwise, so every item is ``(3, 512, 768)``. Pass ``landscape=False`` to keep them
    ``(3, 768, 512)``, or your own ``transform`` (then ``landscape`` is not used).
    """

    def __init__(self, root: str | os.PathLike | None = None, transform: Callable | None = None,
                 landscape: bool = True):
        folder = resolve_dataset_dir("kodak", _has_kodak_images, root, display_name="Kodak",
                                     hint="the 24 files are kodim01.png..kodim24.png from https://r0k.us/graphics/kodak/")
        super().__init__(folder, transform if transform is not None else Transform(landscape=landscape),
                         recursive=False, name="kodak")
