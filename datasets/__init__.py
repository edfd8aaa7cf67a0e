"""The training data: `load(name, data_dir)` returns uint8 NHWC images and int32 labels, or raises DataError.

The built-in sets (NAMES): with data_dir only local files are read, never the network; without it,
the Keras cache or a download, and for MNIST and CIFAR-10, when nothing can be downloaded and
nothing is cached, the real sample bundled in datasets/samples/ (with a note saying so).
Your own data (OWN): "folder" reads a folder of images, "npz" a .npz of arrays, at data_dir.
Every Dataset says where its images came from (`source`, `origin`).
"""

import dataclasses
import math
import os
from pathlib import Path

from datasets import cifar10, folder, mnist, npz, svhn
from datasets._common import SOURCES, DataError, Dataset, DownloadFailed

__all__ = ["NAMES", "OWN", "SOURCES", "DataError", "Dataset", "conv_filters", "load"]

_LOADERS = {"mnist": mnist, "svhn": svhn, "cifar10": cifar10}
NAMES = tuple(_LOADERS)
_OWN_LOADERS = {"folder": folder, "npz": npz}  # each name is also the source of what it loads
OWN = tuple(_OWN_LOADERS)

# Own data's conv widths follow its image size: MNIST's narrow CNN for images of at most MNIST's
# 28x28x1 = 784 values (H*W*C), CIFAR-10's wider one for anything bigger.
SMALL_IMAGE_VALUES = 28 * 28 * 1


def conv_filters(dataset: Dataset) -> tuple[int, int, int]:
    """The widths of the CNN's three conv layers for the loaded `dataset`.

    A built-in set has its module's CONV_FILTERS (the bundled sample too); own data's follow
    its image size (SMALL_IMAGE_VALUES above).
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(f"conv_filters takes the loaded datasets.Dataset; received: {dataset!r}")
    if dataset.source in OWN:
        small = math.prod(dataset.image_shape) <= SMALL_IMAGE_VALUES
        return mnist.CONV_FILTERS if small else cifar10.CONV_FILTERS
    return _LOADERS[dataset.name].CONV_FILTERS


def load(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """data_dir None: cached or downloaded via keras.utils.get_file, else the bundled sample if there is
    one; data_dir given: read only local files, never network, never the sample. Own data (OWN): data_dir
    is the folder or the .npz file."""
    if name in _OWN_LOADERS:
        if data_dir is None:
            what = "folder of images" if name == "folder" else ".npz file"
            raise DataError(f"the {name} data set is your own data: pass the {what} with --data-dir")
        return _OWN_LOADERS[name].load(Path(data_dir).expanduser())
    loader = _LOADERS.get(name)
    if loader is None:
        raise DataError(f"unknown data set {name!r}; choose one of {', '.join(NAMES + OWN)}")
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
    # Keras' reason repeats the URL ("URL fetch failure on URL: None -- [Errno 111] ..."): the
    # last part says what happened.
    why = failed.reason.rsplit(" -- ", 1)[-1]
    note = (f"cannot download {loader.TITLE} ({why}): training on the bundled "
            f"{len(data.x_train):,}-image {loader.TITLE} sample; pass --data-dir for the full set")
    # One line, whatever get_file's reason holds.
    return dataclasses.replace(data, source="sample", note=" ".join(note.split()))
