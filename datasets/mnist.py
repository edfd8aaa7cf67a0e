"""MNIST from the four official IDX files (gzipped or not) or Keras' mnist.npz in a folder, else downloaded.

IDX data is wrapped with np.frombuffer: the images are never copied after decompression.
"""

import gzip
import math
from pathlib import Path

import numpy as np

from datasets._common import (SAMPLES, DataError, Dataset, Download, check_counts, describe, fetch,
                              int_labels, reading)

CONV_FILTERS = (32, 64, 128)  # conv widths: 28x28 grey digits: half the width the colour data sets get
TITLE = "MNIST"  # as people write it, for messages
CLASS_NAMES = tuple("0123456789")
IMAGE_SIZE = 28
TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
NPZ = "mnist.npz"
# The same file, URL and checksum as keras.datasets.mnist, so both share one cached copy.
DOWNLOAD = Download(NPZ, "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
                    "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1")

OFFICIAL = "http://yann.lecun.com/exdb/mnist/"
OFFLINE_HINT = (f"put {', '.join(name + '.gz' for name in TRAIN_FILES + TEST_FILES)} (from {OFFICIAL}) "
                f"or Keras' {NPZ} in one folder and pass it with --data-dir")
REPLACE_HINT = f"replace it with the official file from {OFFICIAL}"
NPZ_HINT = f"replace it with a fresh copy from {DOWNLOAD.url}, or use the IDX files from {OFFICIAL}"
SAMPLE = SAMPLES / "mnist"  # the first 6,000 training and 1,000 test images, as the four IDX files

# IDX magic numbers: two zero bytes, the element type (0x08 = unsigned byte), the number of dimensions.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


def load(data_dir: Path | None) -> Dataset:
    if data_dir is None:
        fetched = fetch(DOWNLOAD, OFFLINE_HINT)
        return _from_npz(fetched.path, fetched.source, fetched.origin)
    found = {name: _find_idx(data_dir, name) for name in TRAIN_FILES + TEST_FILES}
    if all(found.values()):
        train = _idx_split(*(found[name] for name in TRAIN_FILES))
        test = _idx_split(*(found[name] for name in TEST_FILES))
        return Dataset("mnist", *train, *test, CLASS_NAMES, source="data-dir", origin=str(data_dir))
    if (data_dir / NPZ).is_file():
        return _from_npz(data_dir / NPZ, "data-dir", str(data_dir / NPZ))
    missing = [f"{name}(.gz)" for name, path in found.items() if path is None]
    what = "MNIST files" if len(missing) == len(found) else ", ".join(missing)
    raise DataError(f"{data_dir}: no {what} here; {OFFLINE_HINT}")


def _find_idx(data_dir: Path, name: str) -> Path | None:
    """The IDX file `name` in `data_dir`, preferring the uncompressed copy (faster to read)."""
    for path in (data_dir / name, data_dir / f"{name}.gz"):
        if path.is_file():
            return path
    return None


def _idx_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = _read_idx(images_path, IMAGES_MAGIC)
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{images_path}: images are {'x'.join(map(str, images.shape[1:]))}, "
                        f"MNIST's are {IMAGE_SIZE}x{IMAGE_SIZE}; {REPLACE_HINT}")
    labels = int_labels(_read_idx(labels_path, LABELS_MAGIC), range(10), labels_path, REPLACE_HINT)
    if len(images) != len(labels):
        raise DataError(f"{labels_path}: holds {len(labels)} labels but {images_path.name} holds "
                        f"{len(images)} images; {REPLACE_HINT}")
    return images[..., np.newaxis], labels


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """The array in an IDX file, after checking its magic number and its header's sizes against the data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with reading(path, REPLACE_HINT), opener(path, "rb") as f:
        raw = f.read()
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim  # the magic number, then one big-endian uint32 size per dimension
    if len(raw) < header_size:
        raise DataError(f"{path}: only {len(raw)} bytes, too short for an IDX header; {REPLACE_HINT}")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        kind = "image" if magic == IMAGES_MAGIC else "label"
        raise DataError(f"{path}: not an MNIST {kind} file (IDX magic number {found:#010x}, "
                        f"expected {magic:#010x}); {REPLACE_HINT}")
    shape = tuple(int(size) for size in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = math.prod(shape)
    if len(raw) - header_size != expected:
        raise DataError(f"{path}: header announces {'x'.join(map(str, shape))} = {expected} bytes of "
                        f"data but the file holds {len(raw) - header_size} (truncated or damaged); "
                        f"{REPLACE_HINT}")
    return np.frombuffer(raw, np.uint8, offset=header_size).reshape(shape)


def _from_npz(path: Path, source: str, origin: str) -> Dataset:
    """Keras' mnist.npz: x_train/x_test (N, 28, 28) uint8 and y_train/y_test (N,); never unpickled."""
    with reading(path, NPZ_HINT), np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    train = _npz_split(path, arrays, "train")
    test = _npz_split(path, arrays, "test")
    return Dataset("mnist", *train, *test, CLASS_NAMES, source=source, origin=origin)


def _npz_split(path: Path, arrays: dict, split: str) -> tuple[np.ndarray, np.ndarray]:
    images = arrays[f"x_{split}"]
    if images.dtype != np.uint8 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{path}: x_{split} is {describe(images)}, "
                        f"expected uint8 (N, {IMAGE_SIZE}, {IMAGE_SIZE}); {NPZ_HINT}")
    labels = int_labels(arrays[f"y_{split}"], range(10), f"{path} (y_{split})", NPZ_HINT)
    check_counts(images, labels, f"{path} ({split})", NPZ_HINT)
    return images[..., np.newaxis], labels
