"""The training data: `load(name, data_dir)` returns uint8 NHWC images and int32 labels, or raises DataError.

With data_dir only local files are read, never the network; without it, downloads go to the Keras cache.
Every Dataset says where its images came from (`source`, `origin`).
"""

import os
from pathlib import Path

from datasets import cifar10, mnist, svhn
from datasets._common import SOURCES, DataError, Dataset

__all__ = ["NAMES", "SOURCES", "DataError", "Dataset", "conv_filters", "load"]

_LOADERS = {"mnist": mnist, "svhn": svhn, "cifar10": cifar10}
NAMES = tuple(_LOADERS)


def conv_filters(name: str) -> tuple[int, int, int]:
    """The widths of the CNN's three conv layers for data set `name` (its module's CONV_FILTERS)."""
    return _LOADERS[name].CONV_FILTERS


def load(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """data_dir None: download/cached via keras.utils.get_file; else read only local files, never network."""
    loader = _LOADERS.get(name)
    if loader is None:
        raise DataError(f"unknown data set {name!r}; choose one of {', '.join(NAMES)}")
    if data_dir is None:
        return loader.load(None)
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: no such folder; {loader.OFFLINE_HINT}")
    return loader.load(data_dir)
