"""Batching helpers: stack chosen items, or build a seeded ``DataLoader``."""
from __future__ import annotations

import random
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["load_batch", "make_loader"]


def _stack_targets(targets: list[Any]) -> torch.Tensor | list[Any]:
    if all(isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in targets):
        return torch.tensor([int(t) for t in targets], dtype=torch.int64)
    return list(targets)


def load_batch(dataset: Dataset, indices: Sequence[int] | np.ndarray | None = None) -> tuple[torch.Tensor, Any]:
    """Read ``dataset[i]`` for each index and stack them.

    Returns ``(images, targets)``: ``images`` float32 ``(N, 3, H, W)`` in [0, 1]; ``targets`` an
    int64 tensor of labels when every item's target is an int (CIFAR-10), else a list
    (file ids for folder datasets). ``indices=None`` loads the whole dataset. All images must
    share one size (use a :class:`~singlink.data.Transform` with ``size=`` otherwise).
    """
    idx = range(len(dataset)) if indices is None else [int(i) for i in np.asarray(indices).ravel()]
    images, targets = [], []
    for i in idx:
        img, target = dataset[i]
        images.append(img)
        targets.append(target)
    if not images:
        raise ValueError("load_batch: no indices given")
    shapes = {tuple(t.shape) for t in images}
    if len(shapes) > 1:
        raise ValueError(f"load_batch: images differ in shape {sorted(shapes)}; pass a Transform with size=")
    return torch.stack(images), _stack_targets(targets)


def _seed_worker(worker_id: int) -> None:
    """Seed NumPy and ``random`` in each worker from torch's per-worker seed."""
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def make_loader(
    dataset: Dataset,
    batch_size: int = 32,
    *,
    shuffle: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
    **kwargs: Any,
) -> DataLoader:
    """A ``torch.utils.data.DataLoader`` whose shuffling (and worker seeds) come from a
    ``torch.Generator`` seeded with ``seed``: the same seed gives the same batch order in
    every run. Extra keyword arguments go to ``DataLoader`` (e.g. ``pin_memory``)."""
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        drop_last=drop_last,
        generator=generator,
        worker_init_fn=kwargs.pop("worker_init_fn", _seed_worker),
        **kwargs,
    )
