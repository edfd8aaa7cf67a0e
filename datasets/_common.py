"""What every loader shares: the error and result types, checks on labels, and cached downloads.

Nothing here deletes or rewrites a file that existed before the call.
"""

import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLES = Path(__file__).resolve().parent / "samples"  # the real samples shipped with the package

# Where a Dataset's images came from. The first four are the built-in data sets' ways in, the
# last two the user's own data (datasets.OWN).
SOURCES = (
    "download",  # fetched from the official URL during this load, into the Keras cache
    "cache",     # the checked copy an earlier download left in the Keras cache
    "data-dir",  # official files from a folder the user named; never the network
    "sample",    # the bundled real sample (datasets/samples/), because nothing could be downloaded
    "folder",    # a folder of the user's own images, one subfolder per class
    "npz",       # the user's own arrays in a .npz file
)


class DataError(Exception):
    """A data set could not be loaded; str(err) is ONE line naming the file, what is wrong and what to do."""

    def __init__(self, message):
        # Library messages sometimes span lines; the caller prints exactly one.
        super().__init__(" ".join(str(message).split()))


class DownloadFailed(DataError):
    """The official file could not be downloaded and no copy was cached: the one failure the
    bundled sample may stand in for. `reason` is get_file's short explanation."""

    def __init__(self, message, reason: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Dataset:
    """Train and test images (uint8, NHWC) with int32 labels; the arrays are read-only.

    Read-only because scaling belongs in the input pipeline: an in-place change here
    would silently alter every later epoch and run.

    `source` is one of SOURCES; `origin` is what was read: the file, or the folder holding the
    files, or for a download the URL fetched (for several files, the page they are published
    on). `note` is None, or one line the app should print (why the bundled sample is used).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str
    origin: str
    note: str | None = None

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"Dataset source must be one of {', '.join(SOURCES)}; received: {self.source!r}")
        if self.note is not None and "\n" in self.note:
            raise ValueError(f"Dataset note must be one line; received: {self.note!r}")
        for array in (self.x_train, self.y_train, self.x_test, self.y_test):
            array.flags.writeable = False

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def describe(value) -> str:
    """What a loaded value turned out to be: "uint8 (32, 32, 3, 10)", "missing" or a type name."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {value.shape}"
    return "missing" if value is None else type(value).__name__


def reason(err: BaseException) -> str:
    """The short text of an exception, for use inside a one-line message."""
    return str(err) or type(err).__name__


@contextmanager
def reading(where, fix: str):
    """Blame any failure inside the block on the file `where`, as a DataError that says `fix`.

    Parsers (gzip, tarfile, pickle, numpy, scipy) fail on damaged input with almost any
    exception type, so keep only the parsing call inside the block.
    """
    try:
        yield
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"{where}: cannot be read ({reason(err)}); {fix}") from err


def int_labels(values, classes: range, where, fix: str) -> np.ndarray:
    """`values` as an int32 vector, refusing anything that is not an integer in `classes`."""
    try:
        labels = np.asarray(values)
    except (TypeError, ValueError, OverflowError) as err:
        raise DataError(f"{where}: labels are not a list of integers ({reason(err)}); {fix}") from err
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"{where}: labels are {labels.dtype} of shape {labels.shape}, "
                        f"expected a vector of integers; {fix}")
    outside = labels[(labels < classes.start) | (labels >= classes.stop)]
    if outside.size:
        raise DataError(f"{where}: label {outside[0]} is outside {classes.start}..{classes.stop - 1}; {fix}")
    return labels.astype(np.int32)


def check_counts(images: np.ndarray, labels: np.ndarray, where, fix: str):
    if len(images) != len(labels):
        raise DataError(f"{where}: {len(images)} images but {len(labels)} labels; {fix}")


@dataclass(frozen=True)
class Download:
    """An official file: where it is published, its name in the cache, and its checksum (sha256 or md5)."""

    fname: str
    url: str
    file_hash: str


@dataclass(frozen=True)
class Fetched:
    """A checked local copy of a Download, and whether it was downloaded now or found in the cache."""

    path: Path
    source: str  # "download" or "cache"
    origin: str  # the URL fetched now, or the cached file


def keras_home() -> Path:
    """The Keras home folder; get_file caches downloads in its `datasets/` subfolder."""
    return Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser()


def fetch(download: Download, offline_hint: str) -> Fetched:
    """The checked cached copy of `download`, downloaded with keras.utils.get_file on first use.

    get_file would replace a bad cached copy and delete it if the new download fails, so we
    check the cache ourselves and report a bad copy instead of touching it. A failed download
    with nothing cached raises DownloadFailed; every other failure a plain DataError.
    """
    cached = keras_home() / "datasets" / download.fname
    if cached.is_file():
        with reading(cached, f"delete it to download again, or {offline_hint}"):
            matches = _file_hash(cached, download.file_hash) == download.file_hash
        if not matches:
            raise DataError(f"{cached}: cached copy does not match the published checksum "
                            f"(incomplete or tampered download); delete it to download again, "
                            f"or {offline_hint}")
        return Fetched(cached, "cache", str(cached))

    # Imported here (reading local files needs no TensorFlow), and the app's way: quietly, with
    # its CPU settings (avh_app.cli.use_onednn), which TensorFlow reads once, when it loads.
    from avh_app.cli import import_tensorflow

    _, keras = import_tensorflow()
    try:
        path = Path(keras.utils.get_file(download.fname, download.url,
                                         file_hash=download.file_hash, cache_dir=str(keras_home())))
    except Exception as err:  # get_file reports a network failure as a bare Exception
        cached.unlink(missing_ok=True)  # get_file leaves a download that failed its checksum behind
        raise DownloadFailed(f"cannot download {download.url} ({reason(err)}) and there is no cached "
                             f"copy at {cached}; {offline_hint}", reason(err)) from err
    return Fetched(path, "download", download.url)


def _file_hash(path: Path, like: str) -> str:
    algorithm = "sha256" if len(like) == 64 else "md5"
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()
