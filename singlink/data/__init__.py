"""Dataset loaders: CIFAR-10, CelebA, Kodak and any folder of images, named one way everywhere
by :class:`DatasetSpec`.

Images are float32 tensors ``(3, H, W)`` in [0, 1] per item, ``(N, 3, H, W)`` per batch.
Data roots: ``root=`` > ``$SINGLINK_DATA`` > ``<repo>/../shared/data`` > ``~/.cache/singlink``
(:mod:`.roots`); one resize/crop policy for all loaders (:class:`Transform`); seeded splits
(:func:`split_indices`, :func:`first_n`); batching (:func:`load_batch`, :func:`make_loader`).

    >>> from singlink.data import dataset_by_name, first_n, load_batch
    >>> test = dataset_by_name("cifar10", "test")
    >>> x, y = load_batch(first_n(test, 100), range(100))   # (100, 3, 32, 32), labels
"""
from .celeba import CelebA, celeba_crop
from .cifar import (CIFAR10, CIFAR10_CLASSES, CIFAR10_MD5, CIFAR10_URL, ChecksumError, cifar10_splits,
                    download_cifar10, download_file, md5_file)
from .folders import IMAGE_EXTENSIONS, ImageFolderDataset, KodakDataset, list_images
from .loaders import load_batch, make_loader
from .registry import DATASET_NAMES, dataset_by_name
from .roots import ENV_VAR, DatasetNotFoundError, cache_dir, candidate_roots, resolve_dataset_dir, shared_data_dir
from .spec import DATASETS, SPLITS, DatasetSpec, as_float
from .splits import first_n, pick_indices, split_indices, subset
from .transforms import Transform, to_tensor

__all__ = [
    "CelebA", "celeba_crop", "DATASETS", "SPLITS", "DatasetSpec", "as_float",
    "CIFAR10", "CIFAR10_CLASSES", "CIFAR10_MD5", "CIFAR10_URL", "ChecksumError", "cifar10_splits",
    "download_cifar10", "download_file", "md5_file",
    "IMAGE_EXTENSIONS", "ImageFolderDataset", "KodakDataset", "list_images",
    "load_batch", "make_loader",
    "DATASET_NAMES", "dataset_by_name",
    "ENV_VAR", "DatasetNotFoundError", "cache_dir", "candidate_roots", "resolve_dataset_dir", "shared_data_dir",
    "first_n", "pick_indices", "split_indices", "subset",
    "Transform", "to_tensor",
]
