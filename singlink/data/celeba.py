"""CelebA aligned faces (``img_align_celeba``), cropped in proportion and split.

Two copies are recognised under ``<data root>/celeba/``: the official 178x218 ``img_align_celeba``
folder and the half-resolution 89x109 ``img_align_celeba_half`` (preferred in that order). The face
crop is the usual "CelebA 64x64" window, defined in proportion to the image so both copies give the
same face region: a centred square of side ``140/178`` of the width, cut with sub-pixel precision
(PIL's ``resize(box=...)``) and resized bicubically to the target size.

Splits: when ``list_eval_partition.txt`` (CelebA's official partition: 0 train, 1 val, 2 test) lies
in the ``celeba/`` folder or next to the images, its split is used, restricted to the files present.
Otherwise the files present are split by :func:`~singlink.data.splits.split_indices` with seed 0
into 90% train, 5% val and 5% test (9,000 files: 8,100 / 450 / 450). Items are ``(image, id)``, the
id the file name (``"000001.jpg"``).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from .folders import list_images
from .roots import DatasetNotFoundError, candidate_roots, not_found_message
from .splits import split_indices
from .transforms import to_tensor

__all__ = ["CelebA", "celeba_crop", "CELEBA_FOLDERS", "CELEBA_SPLITS"]

CELEBA_FOLDERS = ("img_align_celeba", "img_align_celeba_half")
CELEBA_SPLITS = ("train", "val", "test", "all")
CROP_FRACTION = 140 / 178  # side of the face square over the image width (the usual 64x64 crop)
SPLIT_FRACTIONS = (0.90, 0.05, 0.05)
PARTITION_FILE = "list_eval_partition.txt"


def celeba_crop(img: Image.Image, size: int) -> Image.Image:
    """The centred face square (side ``140/178`` of the width), resized to ``size`` x ``size``
    (bicubic). Proportional, so the 178x218 and the 89x109 copies give the same region."""
    w, h = img.size
    side = w * CROP_FRACTION
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    return img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC, box=box)


def _locate(root) -> tuple[Path, Path]:
    """(celeba folder, image folder) found by the data-root resolution."""
    looked = []
    for r in candidate_roots(root):
        for base in ((r / "celeba", r) if root is not None else (r / "celeba",)):
            for sub in CELEBA_FOLDERS:
                looked.append(base / sub)
                if (base / sub).is_dir() and any(True for _ in os.scandir(base / sub)):
                    return base, base / sub
    raise DatasetNotFoundError(not_found_message(
        "CelebA", looked, "celeba", f"expected celeba/{CELEBA_FOLDERS[0]}/ (official 178x218 aligned images) "
        f"or celeba/{CELEBA_FOLDERS[1]}/ there"))


def _partition(base: Path, images: Path) -> dict[str, int] | None:
    for folder in (base, images):
        path = folder / PARTITION_FILE
        if path.is_file():
            part = {}
            for line in path.read_text().split("\n"):
                fields = line.split()
                if len(fields) == 2 and fields[1] in "012":
                    part[fields[0]] = int(fields[1])
            return part
    return None


class CelebA(Dataset):
    """Aligned CelebA faces at ``size`` x ``size``: ``CelebA(root=None, split="test", size=64)``.

    ``split``: 'train', 'val', 'test' (see the module docstring) or 'all'. Attributes ``files``,
    ``ids``, ``partition`` ('official' or 'seeded 90/5/5').
    """

    def __init__(self, root: str | os.PathLike | None = None, split: str = "test", size: int = 64):
        if split not in CELEBA_SPLITS:
            raise ValueError(f"CelebA split must be one of {CELEBA_SPLITS}, got {split!r}")
        self.size, self.split = int(size), split
        base, folder = _locate(root)
        files = list_images(folder, recursive=False)
        if not files:
            raise DatasetNotFoundError(f"no CelebA images in {folder}")
        part = _partition(base, folder)
        if split != "all":
            if part is not None:
                want = CELEBA_SPLITS.index(split)
                files = [f for f in files if part.get(f.name) == want]
                self.partition = "official"
            else:
                parts = split_indices(len(files), SPLIT_FRACTIONS, seed=0)
                files = [files[i] for i in parts[CELEBA_SPLITS.index(split)]]
                self.partition = "seeded 90/5/5"
            if not files:
                raise DatasetNotFoundError(f"CelebA in {folder} has no images in the {split!r} split")
        else:
            self.partition = "all files"
        self.root, self.files = folder, files
        self.ids = [f.name for f in files]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        with Image.open(self.files[index]) as img:
            img.load()
            return to_tensor(np.asarray(celeba_crop(img, self.size))), self.ids[index]

    def __repr__(self) -> str:
        return f"CelebA(split={self.split!r}, n={len(self)}, size={self.size}, root={str(self.root)!r})"
