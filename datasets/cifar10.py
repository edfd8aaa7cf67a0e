"""CIFAR-10 from the official cifar-10-python.tar.gz or its extracted folder, else downloaded.

The batches are pickles: only numpy arrays may be rebuilt from them, and nothing is ever extracted.
"""

import pickle
import tarfile
from pathlib import Path, PurePosixPath

import numpy as np

from datasets._common import (SAMPLES, DataError, Dataset, Download, check_counts, describe, fetch,
                              int_labels, reading)

CONV_FILTERS = (64, 128, 256)  # the CNN's conv widths for this data set
TITLE = "CIFAR-10"  # as people write it, for messages
ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"  # holds the class names
MEMBERS = (*TRAIN_BATCHES, TEST_BATCH, META)  # the files of the folder that are read
# Keras' sha256 of the official archive (published md5: c58f30108f718f92721af3b95e74349a).
DOWNLOAD = Download(ARCHIVE, "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                    "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce")

OFFICIAL = "https://www.cs.toronto.edu/~kriz/cifar.html"
OFFLINE_HINT = (f"put {ARCHIVE} (from {OFFICIAL}) or the {FOLDER}/ folder extracted from it "
                f"in one folder and pass that with --data-dir")
REPLACE_HINT = f"replace it with the official {ARCHIVE} from {OFFICIAL} (or a fresh extraction of it)"
SAMPLE = SAMPLES / "cifar10"  # the first 2,000 training and 500 test images, as the official archive

IMAGE_SHAPE_CHW = (3, 32, 32)  # each row of a batch is one image: all red pixels, then green, then blue

# Everything numpy needs to rebuild a pickled array, in numpy 1 and numpy 2 spelling; Python 3
# pickles bytes through _codecs.encode at protocol 2. Nothing else (os.system, eval...) is allowed.
ARRAY_GLOBALS = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("_codecs", "encode"),
})


def load(data_dir: Path | None) -> Dataset:
    if data_dir is None:
        fetched = fetch(DOWNLOAD, OFFLINE_HINT)
        path, source, origin = fetched.path, fetched.source, fetched.origin
    else:
        path = locate(data_dir)
        source, origin = "data-dir", str(path)
    pickles = read_pickles(path)

    train = [_batch(*pickles[name]) for name in TRAIN_BATCHES]
    test_rows, y_test = _batch(*pickles[TEST_BATCH])
    return Dataset(
        "cifar10",
        x_train=_to_nhwc([rows for rows, _ in train]),
        y_train=np.concatenate([labels for _, labels in train]),
        x_test=_to_nhwc([test_rows]),
        y_test=y_test,
        class_names=_class_names(*pickles[META]),
        source=source,
        origin=origin,
    )


def locate(data_dir: Path) -> Path:
    """The official archive or extracted folder in (or at) `data_dir`."""
    if (data_dir / FOLDER).is_dir():  # already extracted: no decompression needed
        return data_dir / FOLDER
    if (data_dir / ARCHIVE).is_file():
        return data_dir / ARCHIVE
    if (data_dir / META).is_file():  # data_dir is the extracted folder itself
        return data_dir
    raise DataError(f"{data_dir}: no {ARCHIVE} or {FOLDER}/ here; {OFFLINE_HINT}")


def read_pickles(path: Path) -> dict[str, tuple[str, object]]:
    """Each needed file of the archive or extracted folder at `path`, unpickled safely, with where it was."""
    return _read_folder(path) if path.is_dir() else _read_archive(path)


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds a batch's dicts, lists, bytes and numpy arrays, and refuses every other global.

    So a tampered batch cannot run code, whatever its pickle asks for.
    """

    def __init__(self, file, where: str):
        # The official batches are Python 2 pickles; "bytes" keeps their raw pixel strings intact.
        super().__init__(file, encoding="bytes")
        self.where = where

    def find_class(self, module, name):
        if (module, name) not in ARRAY_GLOBALS:
            raise DataError(f"{self.where}: asks to load {module}.{name}, which no CIFAR-10 batch "
                            f"contains, so it was refused (tampered file?); {REPLACE_HINT}")
        return super().find_class(module, name)


def _read_folder(folder: Path) -> dict[str, tuple[str, object]]:
    """Each needed file of the extracted folder, unpickled, with the path to name in messages."""
    pickles = {}
    for name in MEMBERS:
        path = folder / name
        if not path.is_file():
            raise DataError(f"{path}: missing from the extracted folder; {OFFLINE_HINT}")
        with reading(path, REPLACE_HINT), open(path, "rb") as f:
            pickles[name] = (str(path), _ArrayUnpickler(f, str(path)).load())
    return pickles


def _read_archive(archive: Path) -> dict[str, tuple[str, object]]:
    """Each needed member of the archive, unpickled straight from the tar stream, with its name."""
    wanted = {f"{FOLDER}/{name}": name for name in MEMBERS}
    pickles = {}
    with reading(archive, REPLACE_HINT), tarfile.open(archive, "r:*") as tar:
        for member in tar:
            _refuse_escaping_member(archive, member)
            member_path = str(PurePosixPath(member.name))
            if member_path not in wanted:
                continue
            where = f"{archive} (member {member_path})"
            if not member.isfile():
                raise DataError(f"{where}: not a regular file; {REPLACE_HINT}")
            with reading(where, REPLACE_HINT):
                batch = _ArrayUnpickler(tar.extractfile(member), where).load()
            pickles[wanted[member_path]] = (where, batch)
    missing = [path for path, name in wanted.items() if name not in pickles]
    if missing:
        raise DataError(f"{archive}: has no member {', '.join(missing)} (incomplete archive?); "
                        f"{REPLACE_HINT}")
    return pickles


def _refuse_escaping_member(archive: Path, member: tarfile.TarInfo):
    """Refuse a member (or link target) that extraction would put outside its folder.

    Nothing is extracted here, so it could do no harm, but no official archive contains one.
    """
    targets = [member.name] + ([member.linkname] if member.issym() or member.islnk() else [])
    for target in targets:
        path = PurePosixPath(target)
        if path.is_absolute() or ".." in path.parts:
            raise DataError(f"{archive}: member {member.name!r} would land outside the extraction "
                            f"folder ({target!r}), so the archive was refused; {REPLACE_HINT}")


def _batch(where: str, batch) -> tuple[np.ndarray, np.ndarray]:
    """The image rows and labels of one unpickled batch, after checking its layout."""
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{where}: not a CIFAR-10 batch (a dict with data and labels); {REPLACE_HINT}")
    rows = batch[b"data"]
    row_size = int(np.prod(IMAGE_SHAPE_CHW))
    if not isinstance(rows, np.ndarray) or rows.dtype != np.uint8 or rows.shape[1:] != (row_size,):
        raise DataError(f"{where}: data is {describe(rows)}, expected uint8 rows of {row_size} pixels; "
                        f"{REPLACE_HINT}")
    labels = int_labels(batch[b"labels"], range(10), where, REPLACE_HINT)
    check_counts(rows, labels, where, REPLACE_HINT)
    return rows, labels


def _to_nhwc(row_blocks: list[np.ndarray]) -> np.ndarray:
    """Channel-major rows of one or more batches as one C-contiguous NHWC array, copying each pixel once."""
    views = [rows.reshape(-1, *IMAGE_SHAPE_CHW).transpose(0, 2, 3, 1) for rows in row_blocks]
    # Without `out`, concatenate would keep the views' channel-major memory layout.
    nhwc = np.empty((sum(len(view) for view in views), *views[0].shape[1:]), np.uint8)
    return np.concatenate(views, out=nhwc)


def _class_names(where: str, meta) -> tuple[str, ...]:
    names = meta.get(b"label_names") if isinstance(meta, dict) else None
    if not (isinstance(names, list) and len(names) == 10 and all(isinstance(name, bytes) for name in names)):
        raise DataError(f"{where}: label_names is not a list of 10 names; {REPLACE_HINT}")
    return tuple(name.decode("utf-8", "replace") for name in names)
