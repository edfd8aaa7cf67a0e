"""The training data: `load(name, data_dir)` returns uint8 NHWC images and int32 labels, or raises DataError.

With data_dir only local files are read, never the network; without it, the Keras cache or a download,
and for MNIST and CIFAR-10, when nothing can be downloaded and nothing is cached, the real sample
bundled in datasets/samples/ (with a note saying so).
Every Dataset says where its images came from (`source`, `origin`).
"""

import dataclasses
import os
from pathlib import Path

from datasets import cifar10, mnist, svhn
from datasets._common import SOURCES, DataError, Dataset, DownloadFailed

__all__ = ["NAMES", "SOURCES", "DataError", "Dataset", "conv_filters", "load"]

_LOADERS = {"mnist": mnist, "svhn": svhn, "cifar10": cifar10}
NAMES = tuple(_LOADERS)


def conv_filters(name: str) -> tuple[int, int, int]:
    """The widths of the CNN's three conv layers for data set `name` (its module's CONV_FILTERS)."""
    return _LOADERS[name].CONV_FILTERS


def load(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """data_dir None: cached or downloaded via keras.utils.get_file, else the bundled sample if there is
    one; data_dir given: read only local files, never network, never the sample."""
    loader = _LOADERS.get(name)
    if loader is None:
        raise DataError(f"unknown data set {name!r}; choose one of {', '.join(NAMES)}")
    if data_dir is None:
        try:
            return loader.load(None)
        except DownloadFailed as failed:
            # Only a download that failed with nothing cached: a damaged cached copy is still reported.
            if loader.SAMPLE is None or not loader.SAMPLE.is_dir():
                raise
            return _sample(loader, failed)
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: no such folder; {loader.OFFLINE_HINT}")
    return loader.load(data_dir)


def _sample(loader, failed: DownloadFailed) -> Dataset:
    """The bundled sample of `loader`'s data set, read like a data_dir, with the note for the app to print."""
    data = loader.load(loader.SAMPLE)
    note = (f"cannot download {loader.TITLE} ({failed.reason}): training on the bundled "
            f"{len(data.x_train):,}-image {loader.TITLE} sample; pass --data-dir for the full set")
    # One line, whatever get_file's reason holds.
    return dataclasses.replace(data, source="sample", note=" ".join(note.split()))
