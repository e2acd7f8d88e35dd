"""Deterministic, seeded index splits and subsets.

All randomness comes from ``np.random.default_rng(seed).permutation`` (PCG64), whose output for
a given seed is fixed across runs, platforms and NumPy versions >= 1.17, so a split is
identical everywhere for the same ``(n, sizes, seed)``. Returned index arrays are sorted
(int64) so subsets read files in their natural order; shuffle with the loader instead.

Note that indices refer to a dataset's own item order: CIFAR-10 read from the JPEG folder
layout and from the official python archive order their items differently, so the same
seed selects different images in the two layouts.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from torch.utils.data import Dataset, Subset

__all__ = ["split_indices", "pick_indices", "first_n", "subset"]


def split_indices(n: int, sizes: Sequence[int | float | None], seed: int = 0) -> tuple[np.ndarray, ...]:
    """Split ``range(n)`` into disjoint, seeded random parts.

    ``sizes`` is either all integers (part sizes; one entry may be ``None`` = "the rest"),
    or all floats (fractions of ``n``). Fractions summing to 1 cover every index (rounding
    goes to the last part); smaller sums leave the remainder unused. Example:
    ``train, val = split_indices(50_000, (45_000, 5_000), seed=0)``.
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    sizes = list(sizes)
    if not sizes:
        raise ValueError("sizes must not be empty")
    if all(isinstance(s, float) for s in sizes):
        if any(s < 0 for s in sizes) or sum(sizes) > 1 + 1e-9:
            raise ValueError(f"fractions must be >= 0 and sum to at most 1, got {sizes}")
        counts = [int(np.floor(f * n + 1e-9)) for f in sizes]
        if abs(sum(sizes) - 1.0) <= 1e-9:
            counts[-1] = n - sum(counts[:-1])
    elif all(s is None or (isinstance(s, (int, np.integer)) and not isinstance(s, bool)) for s in sizes):
        if sum(s is None for s in sizes) > 1:
            raise ValueError("at most one size may be None")
        fixed = sum(int(s) for s in sizes if s is not None)
        if any(s is not None and s < 0 for s in sizes) or fixed > n:
            raise ValueError(f"sizes must be >= 0 and sum to at most n={n}, got {sizes}")
        counts = [n - fixed if s is None else int(s) for s in sizes]
    else:
        raise ValueError(f"sizes must be all ints (one may be None) or all floats, got {sizes}")
    perm = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([0] + counts)
    return tuple(np.sort(perm[a:b]).astype(np.int64) for a, b in zip(bounds[:-1], bounds[1:]))


def pick_indices(n_total: int, n: int | None, seed: int | None = None) -> np.ndarray:
    """``n`` indices out of ``range(n_total)``: the first ``n`` (``seed=None``) or a seeded random,
    sorted choice (``seed=int``, the first ``n`` of ``default_rng(seed).permutation``).
    ``n=None`` or ``n >= n_total`` means all of them."""
    if n is None or n >= n_total:
        return np.arange(n_total, dtype=np.int64)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if seed is None:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).permutation(n_total)[:n]).astype(np.int64)


def first_n(dataset: Dataset, n: int | None, seed: int | None = None) -> Subset:
    """A deterministic ``n``-item subset: items ``0..n-1`` in the dataset's order (``seed=None``),
    or a seeded random sample (see :func:`pick_indices`).

    For CIFAR-10 (folder layout) the default item order interleaves the classes, so the first
    ``n`` test images are class balanced (n/10 per class, the lowest-numbered files of each).
    """
    return Subset(dataset, pick_indices(len(dataset), n, seed).tolist())


def subset(dataset: Dataset, indices: Sequence[int] | np.ndarray) -> Subset:
    """``torch.utils.data.Subset`` over plain Python ints."""
    return Subset(dataset, [int(i) for i in np.asarray(indices).ravel()])
