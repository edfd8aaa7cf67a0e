"""SVHN (cropped digits) from the official train_32x32.mat and test_32x32.mat in a folder, else downloaded.

SVHN is not in keras.datasets; its MATLAB v5 files are read with scipy.io.loadmat.
"""

from pathlib import Path

import numpy as np
import scipy.io

from datasets._common import (DataError, Dataset, Download, check_counts, describe, fetch, int_labels,
                              reading)

CONV_FILTERS = (64, 128, 256)  # the CNN's conv widths for this data set
CLASS_NAMES = tuple("0123456789")
IMAGE_SHAPE = (32, 32, 3)
OFFICIAL = "http://ufldl.stanford.edu/housenumbers/"
TRAIN = Download("train_32x32.mat", f"{OFFICIAL}train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373")
TEST = Download("test_32x32.mat", f"{OFFICIAL}test_32x32.mat", "eb5a983be6a315427106f1b69d2e5bb3")

OFFLINE_HINT = (f"put {TRAIN.fname} and {TEST.fname} (from {OFFICIAL}) in one folder "
                f"and pass it with --data-dir")
REPLACE_HINT = f"replace it with the official file from {OFFICIAL}"
SAMPLE = None  # no bundled sample: a failed download stays an error


def load(data_dir: Path | None) -> Dataset:
    if data_dir is None:
        fetched = fetch(TRAIN, OFFLINE_HINT), fetch(TEST, OFFLINE_HINT)
        train, test = (copy.path for copy in fetched)
        if any(copy.source == "download" for copy in fetched):
            source, origin = "download", OFFICIAL  # both files are published on this page
        else:
            source, origin = "cache", str(train.parent)
    else:
        train, test = _local(data_dir / TRAIN.fname), _local(data_dir / TEST.fname)
        source, origin = "data-dir", str(data_dir)
    return Dataset("svhn", *_read_mat(train), *_read_mat(test), CLASS_NAMES, source=source, origin=origin)


def _local(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: missing; {OFFLINE_HINT}")
    return path


def _read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 3) and digit labels from a .mat holding X (32, 32, 3, N) and y (N, 1) in 1..10."""
    with reading(path, REPLACE_HINT):
        mat = scipy.io.loadmat(path, variable_names=("X", "y"))
    images, labels = mat.get("X"), mat.get("y")
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8
            and images.ndim == 4 and images.shape[:3] == IMAGE_SHAPE):
        raise DataError(f"{path}: X is {describe(images)}, expected uint8 (32, 32, 3, N); {REPLACE_HINT}")
    if not (isinstance(labels, np.ndarray) and labels.ndim == 2 and labels.shape[1] == 1):
        raise DataError(f"{path}: y is {describe(labels)}, expected (N, 1); {REPLACE_HINT}")
    labels = labels[:, 0]
    if labels.dtype.kind == "f" and np.array_equal(labels, np.round(labels)):
        labels = labels.astype(np.int64)  # whole numbers saved as MATLAB's default type, double
    # MATLAB counts from 1, so SVHN stores the digit 0 as label 10.
    labels = int_labels(labels, range(1, 11), path, REPLACE_HINT) % 10
    images = images.transpose(3, 0, 1, 2)  # a view: copied only once the counts are known to match
    check_counts(images, labels, path, REPLACE_HINT)
    return np.ascontiguousarray(images), labels
