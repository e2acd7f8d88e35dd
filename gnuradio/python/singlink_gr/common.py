"""Helpers shared by the blocks and by the direct (no GNU Radio) link: image lists, u8 <-> float
conversion, PDU packing, tag conversion. Nothing here needs a running flowgraph."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

#: tag keys the blocks put on every frame start (the length tag's key is configurable)
TAG_IMAGE_ID = "image_id"
TAG_SNR = "snr_db"
TAG_FRAME = "frame"
TAG_H = "h"
TAG_EOB = "eob"   # last frame of a burst: the receiver decodes what it holds without waiting

DEFAULT_CHECKPOINT = "deepjscc-cifar10-rho1_192"


# --- images ------------------------------------------------------------------------------------
def resolve_folder(folder) -> Path:
    """A folder as given if it exists; else, when relative, under singlink's data roots
    ($SINGLINK_DATA, <repo>/../shared/data, the cache), so ``cifar10/test`` works from any cwd."""
    p = Path(str(folder)).expanduser()
    if p.exists() or p.is_absolute():
        return p
    try:
        from singlink.data.roots import candidate_roots
    except ImportError:  # singlink not importable: report the path as given
        return p
    for root in candidate_roots():
        if (root / p).exists():
            return root / p
    return p


def resolve_images(images, max_images: int = 0) -> list[tuple[Path, str]]:
    """``images``: a folder (all images below it, sorted), one image file, a list of files (or of
    ``(path, image_id)`` pairs), or a string of files separated by commas/semicolons. Returns
    ``[(path, image_id), ...]``; ids are paths relative to the folder (``airplane/0000.jpg``),
    the given ids, or file names. ``max_images`` > 0 keeps
    the first that many."""
    from singlink.data import list_images

    if images is None or (isinstance(images, str) and not images.strip()):
        return []
    if isinstance(images, (str, os.PathLike)) and not (isinstance(images, str) and re.search(r"[,;]", images)):
        p = resolve_folder(images)
        if p.is_dir():
            files = list_images(p)
            if not files:
                raise FileNotFoundError(f"no image files under {p}")
            out = [(f, f.relative_to(p).as_posix()) for f in files]
        elif p.is_file():
            out = [(p, p.name)]
        else:
            raise FileNotFoundError(f"image folder or file {images!r} not found (looked at {p} and under "
                                    "singlink's data roots)")
    else:
        items = re.split(r"[,;]", images) if isinstance(images, str) else list(images)
        out = []
        for item in items:
            image_id = None
            if isinstance(item, (tuple, list)):  # (path, image_id), as this function returns
                item, image_id = item
            item = str(item).strip()
            if not item:
                continue
            p = resolve_folder(item)
            if not p.is_file():
                raise FileNotFoundError(f"image file {item!r} not found")
            out.append((p, str(image_id) if image_id is not None else p.name))
    if max_images and max_images > 0:
        out = out[:int(max_images)]
    return out


def load_image_u8(path, size) -> np.ndarray:
    """An image file -> uint8 (H, W, 3) through singlink's one resize/crop policy
    (:class:`singlink.data.Transform`, centre crop + bicubic when the size differs)."""
    from PIL import Image
    from singlink.data import Transform

    with Image.open(path) as img:
        img.load()
        return np.asarray(Transform(size=tuple(size)).apply_pil(img), dtype=np.uint8)


def fit_u8(arr: np.ndarray, size) -> np.ndarray:
    """A uint8 (H, W, 3) array brought to ``size`` (H, W) by the same policy (no-op when it fits)."""
    if tuple(arr.shape[:2]) == tuple(size):
        return np.ascontiguousarray(arr)
    from PIL import Image
    from singlink.data import Transform

    return np.asarray(Transform(size=tuple(size)).apply_pil(Image.fromarray(arr)), dtype=np.uint8)


def u8_to_float(batch_u8: np.ndarray):
    """uint8 (N, H, W, 3) -> float32 torch (N, 3, H, W) in [0, 1], exactly as singlink's loaders
    (``singlink.data.to_tensor``: u8 / 255)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(batch_u8)).permute(0, 3, 1, 2).to(torch.float32).div_(255.0)


def float_to_u8(x) -> np.ndarray:
    """float torch (N, 3, H, W) in [0, 1] -> uint8 (N, H, W, 3), rounded to nearest."""
    import torch

    with torch.no_grad():
        return (x.detach().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()


def safe_name(image_id: str) -> str:
    """A file-name stem for an image id: ``airplane/0000.jpg`` -> ``airplane_0000``."""
    stem = re.sub(r"\.[A-Za-z0-9]{1,5}$", "", str(image_id))
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "image"


def png_name(frame: int, image_id: str) -> str:
    """The receiver's output file name for a frame."""
    return f"{int(frame):06d}_{safe_name(image_id)}.png"


# --- pmt ------------------------------------------------------------------------------------------
def to_pmt(value):
    """A Python tag/metadata value as a pmt (ints as long, str as symbol, numpy scalars unwrapped)."""
    import pmt

    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return pmt.from_bool(value)
    if isinstance(value, int):
        return pmt.from_long(value)
    if isinstance(value, float):
        return pmt.from_double(value)
    if isinstance(value, complex):
        return pmt.from_complex(value)
    if isinstance(value, str):
        return pmt.intern(value)
    return pmt.to_pmt(value)


def from_pmt(p):
    """A pmt as a Python value (None when it cannot be converted)."""
    import pmt

    try:
        return pmt.to_python(p)
    except Exception:  # pmt raises plain Exceptions for exotic types
        return None


def image_pdu(image_u8: np.ndarray, meta: dict):
    """An image as a GNU Radio PDU: ``cons(dict, u8vector)``. The dict holds ``meta``, ``shape``
    (H, W, 3) and ``image`` (the same u8 vector, so a consumer that only reads the dict has it)."""
    import pmt

    arr = np.ascontiguousarray(image_u8, dtype=np.uint8)
    vec = pmt.init_u8vector(arr.size, arr.reshape(-1).tolist())  # a list converts 5x faster than an ndarray
    d = pmt.make_dict()
    for key, value in meta.items():
        if value is not None:
            d = pmt.dict_add(d, pmt.intern(key), to_pmt(value))
    d = pmt.dict_add(d, pmt.intern("shape"), pmt.to_pmt(tuple(int(s) for s in arr.shape)))
    d = pmt.dict_add(d, pmt.intern("image"), vec)
    return pmt.cons(d, vec)


def parse_image_message(msg):
    """A message carrying an image -> (uint8 (H, W, 3) array, metadata dict without 'image').

    Accepts a PDU ``cons(dict, u8vector)`` (what :func:`image_pdu` and GNU Radio's PDU blocks make)
    or a dict with an ``image`` u8 vector. The dict must give ``shape`` (H, W, 3) or (H, W),
    unless the vector is a square RGB image. Raises ValueError for anything else."""
    import pmt

    if pmt.is_pair(msg) and pmt.is_uniform_vector(pmt.cdr(msg)):
        meta_p, vec = pmt.car(msg), pmt.cdr(msg)
    elif pmt.is_dict(msg):
        meta_p, vec = msg, pmt.dict_ref(msg, pmt.intern("image"), pmt.PMT_NIL)
    else:
        raise ValueError("expected a PDU (dict . u8vector) or a dict with an 'image' u8 vector")
    if not pmt.is_u8vector(vec):
        raise ValueError("the image must be a u8 vector (uint8 pixels, HxWx3 row-major)")
    meta = from_pmt(meta_p) if pmt.is_dict(meta_p) else {}
    meta = dict(meta or {})
    meta.pop("image", None)
    data = np.asarray(pmt.u8vector_elements(vec), dtype=np.uint8)
    shape = meta.get("shape")
    if shape is None:
        side = int(round((data.size / 3) ** 0.5))
        if side * side * 3 != data.size:
            raise ValueError(f"a {data.size}-byte image needs a 'shape' entry (H, W, 3) in its metadata")
        shape = (side, side, 3)
    shape = tuple(int(s) for s in np.asarray(shape).reshape(-1))
    if len(shape) == 2:
        shape = (*shape, 3)
    if len(shape) != 3 or shape[2] != 3 or int(np.prod(shape)) != data.size:
        raise ValueError(f"metadata shape {shape} does not match an RGB image of {data.size} bytes")
    return data.reshape(shape), meta


# --- tags ---------------------------------------------------------------------------------------
def tags_in(block, n):
    """The stream tags on input 0 among the next ``n`` items, as framing.Tag (value + raw pmt)."""
    import pmt

    from .framing import Tag

    if n <= 0:
        return []
    return [Tag(int(t.offset), pmt.symbol_to_string(t.key), from_pmt(t.value), t.value)
            for t in block.get_tags_in_window(0, 0, n)]


def real_value(value):
    """A tag value as a finite float, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    value = float(value)
    return value if np.isfinite(value) else None
