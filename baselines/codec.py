"""Image codecs of the separation baseline: BPG, or HEVC intra (x265) through pillow-heif.

Both are used the CompressAI way, one image at a time: ``encode(image, qp) -> bytes``,
``decode(payload, shape) -> image or None`` and ``best_fit(image, budget_bits) -> (qp, payload)``.
Images are float32 tensors (3, H, W) in [0, 1]; they are quantised to 8 bits (``round(255 x)``)
before coding. QP runs over HEVC's 0..51 (BPG's ``-q`` scale): lower is better quality.

**What is counted (the payload).** Only bits a receiver could not know in advance:

* :class:`HEVCIntraCodec` (x265 inside libheif, the codec inside BPG): the payload is the raw
  HEVC stream in Annex-B byte-stream form, everything a ``.hevc``/``.265`` file of the image
  would carry: the parameter sets (VPS, SPS, PPS, which libheif keeps in the ``hvcC`` box) and
  the coded slice NAL units (in ``mdat``), each behind a 4-byte start code. The rest of the HEIF
  file (``ftyp``, ``meta`` with ``hdlr``/``iloc``/``iinf``/``pitm``/``iprp``, the box headers)
  is a container that depends only on (H, W) and the chroma format: both ends build it from a
  *template* (the file pillow-heif writes for a flat grey image of the same shape) and the
  receiver wraps the received payload in it to decode. :meth:`HEVCIntraCodec.encode` checks
  every time that wrapping the payload reproduces pillow-heif's file byte for byte, so no image
  information can hide in the uncounted container. libheif pads images smaller than 64x64 to
  64x64 by replicating their border and crops them back with a ``clap`` box: a 32x32 CIFAR
  image is coded as 64x64 (the padding costs bits, and they are counted).
* :class:`BPGCodec` (``bpgenc``/``bpgdec`` on PATH): the whole ``.bpg`` file; BPG's own header is
  a few bytes and carries the picture size, so nothing is removed.

**Padding.** A receiver gets the payload followed by zero bits up to the end of its last
codeword. :meth:`ImageCodec.decode` accepts that: the HEVC Annex-B byte stream allows trailing
zero bytes (``trailing_zero_8bits``), and no HEVC NAL unit ends in a zero byte, so no length
needs to be signalled.

**Best fit.** x265's payload size does *not* fall monotonically with QP: of the first 100
CIFAR-10 test images, 63 have at least one QP q with size(q + 1) > size(q) (by a few bytes at
high QP, up to 15% near QP 5). A binary search could therefore miss the best QP, so :meth:`ImageCodec.best_fit`
scans QP 0, 1, ... upwards and returns the first whose payload fits. Payload sizes are cached
per (image, QP), so repeated budgets for the same image cost one encode.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import torch

QP_RANGE = range(52)
START_CODE = b"\x00\x00\x00\x01"
_PARAMETER_SET_TYPES = (32, 33, 34)  # HEVC NAL unit types VPS, SPS, PPS (kept in hvcC by HEIF)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float image in [0, 1] -> (H, W, 3) uint8 array, ``round(255 x)``."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected one image (3, H, W), got shape {tuple(image.shape)}")
    x = image.detach().to("cpu", torch.float32).clamp(0, 1).mul(255).round().to(torch.uint8)
    return np.ascontiguousarray(x.permute(1, 2, 0).numpy())


def from_uint8(array: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 array -> (3, H, W) float32 tensor in [0, 1]."""
    return torch.from_numpy(np.array(array, dtype=np.uint8)).permute(2, 0, 1).to(torch.float32).div_(255.0)


class ImageCodec:
    """Base of the codecs: tensor conversion, the payload-size cache and the QP scan.

    Subclasses implement ``_encode_array(array, qp) -> bytes`` and
    ``_decode_array(payload, (H, W)) -> array or None`` on (H, W, 3) uint8 arrays.
    ``cache_size``: how many (image, QP) payload sizes to remember (least recently used go first).
    """

    name = "codec"

    def __init__(self, cache_size: int = 1 << 18):
        self.cache_size = int(cache_size)
        self._sizes: OrderedDict[tuple[bytes, int], int] = OrderedDict()

    def _encode_array(self, array: np.ndarray, qp: int) -> bytes:
        raise NotImplementedError

    def _decode_array(self, payload: bytes, shape: tuple[int, int]) -> np.ndarray | None:
        raise NotImplementedError

    @staticmethod
    def _check_qp(qp: int) -> int:
        if int(qp) not in QP_RANGE:
            raise ValueError(f"QP must be an integer in 0..51, got {qp}")
        return int(qp)

    def encode(self, image: torch.Tensor, qp: int) -> bytes:
        """The payload (see the module docstring) of ``image`` (3, H, W) coded at ``qp``."""
        array = to_uint8(image)
        payload = self._encode_array(array, self._check_qp(qp))
        self._remember(self._key(array, qp), len(payload))
        return payload

    def decode(self, payload: bytes, shape: tuple[int, int]) -> torch.Tensor | None:
        """The image (3, H, W) in [0, 1] coded in ``payload`` (trailing zero padding allowed), or
        None when the bitstream does not decode to an image of ``shape`` = (H, W), the shape it
        was encoded for (known to both ends, like DeepJSCC's). A corrupted stream that still
        parses may decode to a damaged image: the decoder conceals errors."""
        h, w = (int(s) for s in shape)
        array = self._decode_array(bytes(payload), (h, w))
        if array is None or array.shape != (h, w, 3):
            return None
        return from_uint8(array)

    def payload_bits(self, image: torch.Tensor, qp: int) -> int:
        """Size in bits of ``encode(image, qp)``, from the cache when known."""
        array = to_uint8(image)
        key = self._key(array, self._check_qp(qp))
        if key in self._sizes:
            self._sizes.move_to_end(key)
            return 8 * self._sizes[key]
        payload = self._encode_array(array, int(qp))
        self._remember(key, len(payload))
        return 8 * len(payload)

    def best_fit(self, image: torch.Tensor, budget_bits: int) -> tuple[int, bytes] | None:
        """``(qp, payload)`` for the lowest QP (best quality) whose payload has at most
        ``budget_bits`` bits, or None when not even QP 51 fits. Scans all QPs upwards from 0
        since sizes are not monotonic in QP (module docstring)."""
        for qp in QP_RANGE:
            if self.payload_bits(image, qp) <= budget_bits:
                return qp, self.encode(image, qp)
        return None

    @staticmethod
    def _key(array: np.ndarray, qp: int) -> tuple[bytes, int]:
        digest = hashlib.blake2b(repr(array.shape).encode(), digest_size=16)
        digest.update(array.tobytes())
        return digest.digest(), int(qp)

    def _remember(self, key: tuple[bytes, int], size: int) -> None:
        self._sizes[key] = size
        self._sizes.move_to_end(key)
        while len(self._sizes) > self.cache_size:
            self._sizes.popitem(last=False)


# --- HEIF boxes (ISO/IEC 14496-12 / 23008-12), just what libheif writes for one coded image ---

_CONTAINER_PREFIX = {b"meta": 4, b"iprp": 0, b"ipco": 0}  # box types holding boxes (full-box prefix)


@dataclass(frozen=True)
class _Box:
    """A box: a leaf with ``body``, or a container with a ``body`` prefix (version/flags) then ``children``."""

    type: bytes
    body: bytes
    children: tuple | None = None


def _parse_boxes(data: bytes) -> tuple[_Box, ...]:
    boxes, off = [], 0
    while off < len(data):
        if off + 8 > len(data):
            raise ValueError("truncated box header")
        size, typ = int.from_bytes(data[off:off + 4], "big"), data[off + 4:off + 8]
        header = 8
        if size == 1:
            size, header = int.from_bytes(data[off + 8:off + 16], "big"), 16
        elif size == 0:
            size = len(data) - off
        if size < header or off + size > len(data):
            raise ValueError(f"box {typ!r} at {off} overruns its parent")
        body = data[off + header:off + size]
        if typ in _CONTAINER_PREFIX:
            p = _CONTAINER_PREFIX[typ]
            boxes.append(_Box(typ, body[:p], _parse_boxes(body[p:])))
        else:
            boxes.append(_Box(typ, body))
        off += size
    return tuple(boxes)


def _serialize(boxes) -> bytes:
    out = bytearray()
    for b in boxes:
        body = b.body + (_serialize(b.children) if b.children is not None else b"")
        out += (8 + len(body)).to_bytes(4, "big") + b.type + body
    return bytes(out)


def _find(boxes, typ: bytes) -> _Box:
    for b in boxes:
        if b.type == typ:
            return b
        if b.children is not None:
            try:
                return _find(b.children, typ)
            except KeyError:
                pass
    raise KeyError(typ)


def _with_body(boxes, typ: bytes, body: bytes) -> tuple[_Box, ...]:
    """A copy of the box tree with the body of the (unique) box ``typ`` replaced."""
    return tuple(replace(b, body=body) if b.type == typ else
                 replace(b, children=_with_body(b.children, typ, body)) if b.children is not None else b
                 for b in boxes)


def _iloc_fields(body: bytes) -> dict:
    """Byte positions and widths of the one item's base offset, extent offset and extent length."""
    version = body[0]
    off_size, len_size = body[4] >> 4, body[4] & 15
    base_size, idx_size = body[5] >> 4, (body[5] & 15) if version in (1, 2) else 0
    wide = 4 if version == 2 else 2
    pos = 6
    count = int.from_bytes(body[pos:pos + wide], "big")
    pos += 2 * wide  # item_count, item_ID
    if version in (1, 2):
        if int.from_bytes(body[pos:pos + 2], "big") & 15:
            raise ValueError("iloc: only construction method 0 (file offsets) is supported")
        pos += 2
    pos += 2  # data_reference_index
    base = (pos, base_size)
    pos += base_size
    extents = int.from_bytes(body[pos:pos + 2], "big")
    pos += 2 + idx_size
    if count != 1 or extents != 1 or len_size == 0 or (base_size == 0 and off_size == 0):
        raise ValueError("iloc: expected one item stored as one extent with explicit offset and length")
    return {"base": base, "offset": (pos, off_size), "length": (pos + off_size, len_size)}


def _read_field(body: bytes, field) -> int:
    pos, size = field
    return int.from_bytes(body[pos:pos + size], "big")


def _write_field(body: bytearray, field, value: int) -> None:
    pos, size = field
    body[pos:pos + size] = int(value).to_bytes(size, "big")


def _split_annexb(stream: bytes) -> list[bytes]:
    """NAL units of an Annex-B byte stream (3- or 4-byte start codes; leading and trailing zero
    bytes allowed). Raises ValueError when the stream is not one."""
    first = stream.find(b"\x00\x00\x01")
    if first < 0 or any(stream[:first]):
        raise ValueError("not an Annex-B byte stream: no start code at the beginning")
    nals, pos = [], first + 3
    while True:
        nxt = stream.find(b"\x00\x00\x01", pos)
        nal = (stream[pos:] if nxt < 0 else stream[pos:nxt]).rstrip(b"\x00")
        if len(nal) < 2 or nal[0] & 0x80:
            raise ValueError("malformed NAL unit (empty, or forbidden_zero_bit set)")
        nals.append(nal)
        if nxt < 0:
            return nals
        pos = nxt + 3


def _nal_type(nal: bytes) -> int:
    return (nal[0] >> 1) & 0x3F


class HEVCIntraCodec(ImageCodec):
    """HEVC intra coding with x265 through pillow-heif (libheif), at BPG's QP scale.

    ``chroma``: 444 (default, as the issue asks), 422 or 420. Each image is one HEVC intra
    picture coded at constant QP (``x265:qp``; pillow-heif's ``quality`` is then ignored).
    Public helpers expose the container accounting: :meth:`heif` (pillow-heif's file),
    :meth:`payload_from_heif` and :meth:`heif_from_payload`.
    """

    name = "hevc-x265"

    def __init__(self, chroma: int = 444, cache_size: int = 1 << 18):
        super().__init__(cache_size)
        if int(chroma) not in (420, 422, 444):
            raise ValueError(f"chroma must be 420, 422 or 444, got {chroma}")
        self.chroma = int(chroma)
        self._template = lru_cache(maxsize=64)(self._make_template)

    def heif(self, image: torch.Tensor, qp: int) -> bytes:
        """The HEIF file pillow-heif writes for ``image`` (3, H, W) at ``qp``."""
        return self._heif_array(to_uint8(image), self._check_qp(qp))

    def _heif_array(self, array: np.ndarray, qp: int) -> bytes:
        import pillow_heif

        h, w, _ = array.shape
        buf = io.BytesIO()
        pillow_heif.from_bytes("RGB", (w, h), array.tobytes()).save(
            buf, quality=50, chroma=self.chroma, tile_size=0, enc_params={"x265:qp": str(int(qp))})
        return buf.getvalue()

    @staticmethod
    def payload_from_heif(heif: bytes) -> bytes:
        """The raw HEVC stream of a one-image HEIF file, Annex-B: parameter sets from ``hvcC``
        then the length-prefixed NAL units of ``mdat``, each behind a 4-byte start code."""
        boxes = _parse_boxes(heif)
        hvcc, mdat = _find(boxes, b"hvcC").body, _find(boxes, b"mdat").body
        nals, pos = [], 23
        for _ in range(hvcc[22]):
            count = int.from_bytes(hvcc[pos + 1:pos + 3], "big")
            pos += 3
            for _ in range(count):
                n = int.from_bytes(hvcc[pos:pos + 2], "big")
                nals.append(hvcc[pos + 2:pos + 2 + n])
                pos += 2 + n
        width = (hvcc[21] & 3) + 1  # lengthSizeMinusOne + 1
        pos = 0
        while pos < len(mdat):
            n = int.from_bytes(mdat[pos:pos + width], "big")
            nals.append(mdat[pos + width:pos + width + n])
            pos += width + n
        return b"".join(START_CODE + nal for nal in nals)

    def heif_from_payload(self, payload: bytes, shape: tuple[int, int]) -> bytes:
        """Wrap an Annex-B HEVC stream in the fixed container for ``shape`` = (H, W): parameter
        sets into ``hvcC`` (template header), other NAL units into ``mdat`` behind 4-byte
        lengths, and the ``iloc`` extent pointed at them. Raises ValueError for a stream that is
        not Annex-B or lacks a parameter set or a coded slice."""
        nals = _split_annexb(payload)
        types = [_nal_type(n) for n in nals]
        if not set(_PARAMETER_SET_TYPES) <= set(types) or not any(t < 32 for t in types):
            raise ValueError("HEVC stream lacks a VPS, SPS, PPS or coded slice")
        boxes, hvcc_head, flags = self._template((int(shape[0]), int(shape[1])))
        arrays = []
        for t in dict.fromkeys(t for t in types if t in _PARAMETER_SET_TYPES):
            units = [n for n, tn in zip(nals, types) if tn == t]
            arrays.append(bytes([flags | t]) + len(units).to_bytes(2, "big")
                          + b"".join(len(n).to_bytes(2, "big") + n for n in units))
        hvcc = hvcc_head + bytes([len(arrays)]) + b"".join(arrays)
        data = b"".join(len(n).to_bytes(4, "big") + n for n, t in zip(nals, types) if t not in _PARAMETER_SET_TYPES)
        boxes = _with_body(_with_body(boxes, b"hvcC", hvcc), b"mdat", data)
        iloc = bytearray(_find(boxes, b"iloc").body)
        fields = _iloc_fields(iloc)
        # mdat is the last box (checked in the template) and the sizes of the boxes before it do
        # not depend on iloc's values: move the extent by the change of mdat's data offset.
        start = len(_serialize(boxes[:-1])) + 8
        moved = fields["base"] if fields["base"][1] else fields["offset"]
        old = _read_field(iloc, fields["base"]) + _read_field(iloc, fields["offset"])
        _write_field(iloc, moved, _read_field(iloc, moved) + start - old)
        _write_field(iloc, fields["length"], len(data))
        return _serialize(_with_body(boxes, b"iloc", bytes(iloc)))

    def _make_template(self, shape: tuple[int, int]):
        """(boxes, hvcC header bytes 0..21, array flag bits) of pillow-heif's file for a flat
        grey image of ``shape``, with its mdat extent starting right after the mdat header."""
        heif = self._heif_array(np.full((*shape, 3), 128, np.uint8), 51)
        boxes = _parse_boxes(heif)
        hvcc = _find(boxes, b"hvcC").body
        if (hvcc[21] & 3) != 3 or boxes[-1].type != b"mdat":
            raise RuntimeError("unexpected HEIF layout from libheif (4-byte NAL lengths and a final mdat expected)")
        iloc = _find(boxes, b"iloc").body
        fields = _iloc_fields(iloc)
        start = len(_serialize(boxes[:-1])) + 8
        if _read_field(iloc, fields["base"]) + _read_field(iloc, fields["offset"]) != start:
            raise RuntimeError("unexpected HEIF layout from libheif (coded image not at the start of mdat)")
        return boxes, hvcc[:22], hvcc[23] & 0xC0

    def _encode_array(self, array: np.ndarray, qp: int) -> bytes:
        heif = self._heif_array(array, qp)
        payload = self.payload_from_heif(heif)
        if self.heif_from_payload(payload, array.shape[:2]) != heif:
            raise RuntimeError(f"pillow-heif's container for a {array.shape[0]}x{array.shape[1]} image differs "
                               "from the fixed template: the payload would not count all image information")
        return payload

    def _decode_array(self, payload: bytes, shape: tuple[int, int]) -> np.ndarray | None:
        import pillow_heif

        try:
            heif = self.heif_from_payload(payload, shape)
            # pillow-heif maps libheif errors to ValueError, EOFError, SyntaxError or RuntimeError
            return np.asarray(pillow_heif.open_heif(io.BytesIO(heif), convert_hdr_to_8bit=True))
        except (ValueError, EOFError, SyntaxError, RuntimeError):
            return None


class BPGCodec(ImageCodec):
    """Fabrice Bellard's BPG through ``bpgenc``/``bpgdec`` (subprocesses, temporary files).

    Encodes with ``bpgenc -f <chroma> -q <qp> -b 8`` and counts the whole ``.bpg`` file (module
    docstring); decodes with ``bpgdec -b 8 -o out.png``. Trailing zero padding is stripped before
    decoding (a BPG file ends with an HEVC NAL unit, which never ends in a zero byte).
    """

    name = "bpg"

    def __init__(self, chroma: int = 444, bpgenc: str = "bpgenc", bpgdec: str = "bpgdec", cache_size: int = 1 << 18):
        super().__init__(cache_size)
        if int(chroma) not in (420, 422, 444):
            raise ValueError(f"chroma must be 420, 422 or 444, got {chroma}")
        self.chroma, self.bpgenc, self.bpgdec = int(chroma), bpgenc, bpgdec

    def _encode_array(self, array: np.ndarray, qp: int) -> bytes:
        from PIL import Image

        with tempfile.TemporaryDirectory(prefix="singlink-bpg-") as tmp:
            src, out = os.path.join(tmp, "in.png"), os.path.join(tmp, "out.bpg")
            Image.fromarray(array, "RGB").save(src)
            subprocess.run([self.bpgenc, "-f", str(self.chroma), "-q", str(qp), "-b", "8", "-o", out, src],
                           check=True, capture_output=True)
            with open(out, "rb") as f:
                return f.read()

    def _decode_array(self, payload: bytes, shape: tuple[int, int]) -> np.ndarray | None:
        from PIL import Image

        with tempfile.TemporaryDirectory(prefix="singlink-bpg-") as tmp:
            src, out = os.path.join(tmp, "in.bpg"), os.path.join(tmp, "out.png")
            with open(src, "wb") as f:
                f.write(payload.rstrip(b"\x00"))
            done = subprocess.run([self.bpgdec, "-b", "8", "-o", out, src], capture_output=True)
            if done.returncode != 0 or not os.path.isfile(out):
                return None
            try:
                with Image.open(out) as img:
                    return np.asarray(img.convert("RGB"))
            except OSError:
                return None


def make_codec(chroma: int = 444) -> ImageCodec:
    """:class:`BPGCodec` when ``bpgenc`` and ``bpgdec`` are on PATH, else :class:`HEVCIntraCodec`."""
    if shutil.which("bpgenc") and shutil.which("bpgdec"):
        return BPGCodec(chroma)
    return HEVCIntraCodec(chroma)
