"""Frame assembly for tagged streams, independent of GNU Radio.

A GNU Radio scheduler hands a block whatever number of items is ready: a frame of k symbols
may arrive in one ``work()`` call, over several, or together with the start of the next frame.
:class:`FrameAssembler` takes those chunks (samples, the absolute offset of their first item,
and the stream tags inside them) and returns whole frames once their last sample has arrived.

The frame boundaries come from the tagged-stream length tag (GNU Radio's convention,
``packet_len`` by default): a tag ``(offset, key, L)`` says that a frame of ``L`` items starts at
``offset``. Everything else is malformed and dropped, with one warning per event, while later
frames go on being assembled:

- *truncated*: a new length tag arrives before the current frame has all its items;
- *wrong length*: ``L`` differs from ``expected_len`` (when the consumer needs a fixed size);
- *bad length*: ``L`` is not a positive integer;
- *missing tags*: a tag listed in ``required`` is not at the frame start;
- *untagged items*: items outside any frame (before the first length tag or after a frame
  ended and before the next length tag).

Tags at the frame start are handed over as ``Frame.tags`` (key -> :class:`Tag`); tags inside the
frame as ``Frame.inner_tags`` with offsets relative to the frame start, so a block can put
them back at the same place on its output.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

__all__ = ["Tag", "Frame", "FrameAssembler"]


@dataclass(frozen=True)
class Tag:
    """A stream tag: absolute item ``offset``, ``key`` (str), ``value`` (a Python value) and
    ``raw``, the value as it came (a pmt inside GNU Radio), kept for propagation."""

    offset: int
    key: str
    value: Any
    raw: Any = None


@dataclass
class Frame:
    """One assembled frame: ``samples`` (a copy), absolute ``start`` offset, ``tags`` at the start
    (key -> Tag) and ``inner_tags`` ((relative offset, Tag), ...) inside the frame."""

    samples: np.ndarray
    start: int
    tags: dict = field(default_factory=dict)
    inner_tags: list = field(default_factory=list)

    def value(self, key, default=None):
        tag = self.tags.get(key)
        return default if tag is None else tag.value


def _as_length(value) -> int | None:
    """The length tag's value as a positive int, or None if it is not one."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, (int, np.integer)):
            n = int(value)
        elif isinstance(value, (float, np.floating)) and float(value).is_integer():
            n = int(value)
        else:
            return None
    except (TypeError, ValueError, OverflowError):
        return None
    return n if n > 0 else None


class FrameAssembler:
    """Assemble length-tagged frames from chunks of a stream.

    ``push(samples, offset, tags) -> [Frame, ...]``: ``samples`` are the items starting at absolute
    item ``offset``; ``tags`` are :class:`Tag` objects (any order) whose offsets lie inside the
    chunk. Chunks must be pushed in stream order without gaps.

    Parameters
    ----------
    length_tag_key : the tagged-stream length tag (``packet_len`` in GNU Radio's blocks)
    expected_len : if given, frames of any other length are dropped
    required : tag keys that must be present at the frame start
    warn : called with a one-line message for every dropped frame or run of untagged items
    dtype : the sample type frames are stored as
    """

    def __init__(self, length_tag_key: str = "packet_len", expected_len: int | None = None,
                 required: Iterable[str] = (), warn: Callable[[str], None] | None = None,
                 dtype=np.complex64):
        self.length_tag_key = str(length_tag_key)
        self.expected_len = None if expected_len is None else int(expected_len)
        self.required = tuple(required)
        self._warn = warn or (lambda msg: None)
        self.dtype = np.dtype(dtype)
        self._next_offset = None
        # the frame being filled
        self._start = None           # absolute offset of its first item
        self._length = 0
        self._parts: list[np.ndarray] = []
        self._filled = 0
        self._tags: dict = {}
        self._inner: list = []
        self._bad: str | None = None  # reason to drop it once complete (items are not stored)
        self._skipping = False       # after a bad length value, until the next length tag
        self._orphans = 0            # untagged items in the current run
        # statistics
        self.frames_ok = 0
        self.frames_dropped = 0
        self.items_dropped = 0

    # --- public ---------------------------------------------------------------------------
    @property
    def buffered(self) -> int:
        """Items held for the frame in progress (those that will come out with it)."""
        return 0 if self._start is None or self._bad else self._filled

    @property
    def in_frame(self) -> bool:
        return self._start is not None

    def push(self, samples, offset: int, tags: Iterable[Tag] = ()) -> list[Frame]:
        samples = np.asarray(samples)
        offset = int(offset)
        n = len(samples)
        if self._next_offset is not None and offset != self._next_offset:
            raise ValueError(f"chunks must follow each other: expected offset {self._next_offset}, got {offset}")
        self._next_offset = offset + n
        tags = sorted((t for t in tags if offset <= t.offset < offset + n), key=lambda t: t.offset)
        frames: list[Frame] = []
        # cut the chunk at every length tag; other tags attach to the frame they fall in
        starts = sorted({t.offset for t in tags if t.key == self.length_tag_key})
        bounds = [offset, *[s for s in starts if s > offset], offset + n]
        ti = 0
        for a, b in zip(bounds[:-1], bounds[1:]):
            at_start = [t for t in tags[ti:] if t.offset == a]
            length_tags = [t for t in at_start if t.key == self.length_tag_key]
            if length_tags:
                self._begin(a, length_tags[-1], frames)
            # tags within [a, b) (non-length ones)
            seg_tags = []
            while ti < len(tags) and tags[ti].offset < b:
                if tags[ti].key != self.length_tag_key:
                    seg_tags.append(tags[ti])
                ti += 1
            self._fill(samples[a - offset:b - offset], a, seg_tags, frames)
        return frames

    def flush(self) -> None:
        """End of stream: an unfinished frame is dropped (with a warning)."""
        if self._start is not None and self._filled < self._length:
            self._drop(f"truncated frame at item {self._start}: the stream ended after {self._filled} of "
                       f"{self._length} items")
        self._end_orphans()
        self._reset()

    # --- internals ------------------------------------------------------------------------
    def _reset(self):
        self._start, self._length, self._parts, self._filled = None, 0, [], 0
        self._tags, self._inner, self._bad = {}, [], None
        self._skipping = False

    def _drop(self, message):
        self.frames_dropped += 1
        self.items_dropped += self._filled
        self._warn(f"dropped {message}")

    def _end_orphans(self):
        if self._orphans:
            self.items_dropped += self._orphans
            self._warn(f"dropped {self._orphans} items outside any frame (no '{self.length_tag_key}' tag "
                       "before them)")
            self._orphans = 0

    def _begin(self, offset, tag, frames):
        if self._start is not None and self._filled < self._length:
            if self._bad:
                self._drop(f"frame at item {self._start} ({self._bad})")
            else:
                self._drop(f"truncated frame at item {self._start}: a new '{self.length_tag_key}' tag came "
                           f"after {self._filled} of {self._length} items")
        self._reset()
        self._end_orphans()
        length = _as_length(tag.value)
        if length is None:
            # no way to know where this frame ends: drop everything up to the next length tag
            self.frames_dropped += 1
            self._warn(f"dropped frame at item {offset}: bad '{self.length_tag_key}' value {tag.value!r} "
                       "(not a positive integer); skipping to the next length tag")
            self._skipping = True
            return
        self._start, self._length, self._tags = offset, length, {tag.key: tag}
        if self.expected_len is not None and length != self.expected_len:
            self._bad = f"wrong length {length}, expected {self.expected_len}"

    def _fill(self, seg, a, seg_tags, frames):
        pos = 0
        n = len(seg)
        while pos < n:
            if self._start is None:
                if self._skipping:
                    self.items_dropped += n - pos
                else:
                    self._orphans += n - pos  # untagged items: dropped until the next length tag
                return
            take = min(self._length - self._filled, n - pos)
            if not self._bad:
                self._parts.append(np.array(seg[pos:pos + take], dtype=self.dtype, copy=True))
                lo, hi = a + pos, a + pos + take
                for t in seg_tags:
                    if lo <= t.offset < hi:
                        rel = t.offset - self._start
                        if rel == 0:
                            self._tags[t.key] = t
                        else:
                            self._inner.append((rel, t))
            self._filled += take
            pos += take
            if self._filled == self._length:
                self._complete(frames)  # further items until a length tag are untagged

    def _complete(self, frames):
        if self._bad:
            self._drop(f"frame at item {self._start} ({self._bad})")
        else:
            missing = [k for k in self.required if k not in self._tags]
            if missing:
                self._drop(f"frame at item {self._start}: missing tag(s) {', '.join(missing)} at the frame start")
            else:
                samples = self._parts[0] if len(self._parts) == 1 else np.concatenate(self._parts)
                frames.append(Frame(samples, self._start, dict(self._tags), list(self._inner)))
                self.frames_ok += 1
        self._reset()
