"""Tiny data sets written in each official file layout, for tests that load them through `datasets.load`.

Images are seeded random uint8; labels cover every class whenever there are at least 10 examples.
The format writers (idx_bytes, python2_pickle, write_tar) also cut the bundled real samples
(scripts/make_samples.py), so they write the same bytes for the same input every time.
"""

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import scipy.io

CIFAR10_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
                       "dog", "frog", "horse", "ship", "truck")


def write_mnist(dir, n_train=60, n_test=20, gz=True, seed=0) -> Path:
    """The four MNIST IDX files in `dir`, gzipped like the official downloads unless gz=False."""
    folder = _folder(dir)
    for prefix, (images, labels) in _mnist_arrays(n_train, n_test, seed).items():
        for name, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
            data = idx_bytes(array)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
    return folder


def write_mnist_npz(dir, n_train=60, n_test=20, seed=0) -> Path:
    """Keras' mnist.npz in `dir`, holding what write_mnist writes with the same arguments."""
    folder = _folder(dir)
    arrays = _mnist_arrays(n_train, n_test, seed)
    np.savez(folder / "mnist.npz", x_train=arrays["train"][0], y_train=arrays["train"][1],
             x_test=arrays["t10k"][0], y_test=arrays["t10k"][1])
    return folder


def _mnist_arrays(n_train, n_test, seed) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Images (N, 28, 28) and labels for each split, under the official file-name prefixes."""
    rng = np.random.default_rng(seed)
    splits = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        splits[prefix] = (_images(rng, (n, 28, 28)), _labels(rng, n))
    return splits


def idx_bytes(array: np.ndarray) -> bytes:
    """A uint8 array as an IDX file: 0, 0, 0x08 (ubyte), ndim, big-endian uint32 sizes, then the data."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def write_cifar10(dir, n_per_batch=20, n_test=20, as_tar=True, seed=0) -> Path:
    """cifar-10-python.tar.gz in `dir`, or (as_tar=False) the cifar-10-batches-py/ folder inside it."""
    folder = _folder(dir)
    rng = np.random.default_rng(seed)
    batches = {f"data_batch_{i}": (n_per_batch, f"training batch {i} of 5") for i in range(1, 6)}
    batches["test_batch"] = (n_test, "testing batch 1 of 1")
    members = {name: cifar10_batch(_images(rng, (n, 3072)), _labels(rng, n), label)
               for name, (n, label) in batches.items()}
    members["batches.meta"] = python2_pickle({
        b"num_cases_per_batch": n_per_batch,
        b"label_names": [name.encode() for name in CIFAR10_CLASS_NAMES],
        b"num_vis": 3072,
    })
    members["readme.html"] = b"<html>CIFAR-10</html>"
    members = {f"cifar-10-batches-py/{name}": data for name, data in members.items()}
    if as_tar:
        write_tar(folder / "cifar-10-python.tar.gz", members)
    else:
        for name, data in members.items():
            (folder / name).parent.mkdir(exist_ok=True)
            (folder / name).write_bytes(data)
    return folder


def cifar10_batch(rows: np.ndarray, labels, batch_label: str) -> bytes:
    """One batch as the official files hold it: a Python 2 pickle of a dict with str (bytes) keys."""
    return python2_pickle({
        b"batch_label": batch_label.encode(),
        b"labels": [int(label) for label in labels],
        b"data": rows,
        b"filenames": [f"image_{i:05d}.png".encode() for i in range(len(rows))],
    })


def python2_pickle(obj) -> bytes:
    """`obj` pickled the way Python 2 wrote the official batches: protocol 2, every string a py2 str."""
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


class _Python2Pickler(pickle._Pickler):  # the pure-Python pickler, whose per-type writers can be replaced
    def save_global(self, obj, name=None):
        # numpy 1, which pickled the official batches, kept _reconstruct in numpy.core.multiarray;
        # numpy 2 still finds it there, for exactly such old pickles.
        if (getattr(obj, "__module__", None), getattr(obj, "__name__", None)) == (
                "numpy._core.multiarray", "_reconstruct"):
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)

    def save_python2_str(self, obj):
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch = {**pickle._Pickler.dispatch, str: save_python2_str, bytes: save_python2_str}


def write_tar(path, members: dict[str, bytes]) -> Path:
    """A gzipped tar of `members` (name -> content), with an entry for each folder as `tar czf` makes.

    Every time stamp is 0 (tar members and gzip header), so the same members give the same bytes.
    """
    path = Path(path)
    folders = sorted({name.rsplit("/", 1)[0] for name in members if "/" in name})
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        for name in folders:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    # tarfile's own "w:gz" would stamp the gzip header with the current time.
    path.write_bytes(gzip.compress(tar_bytes.getvalue(), compresslevel=9, mtime=0))
    return path


def write_svhn(dir, n_train=30, n_test=20, seed=0) -> Path:
    """train_32x32.mat and test_32x32.mat in `dir`: MATLAB v5, X (32, 32, 3, N) uint8, y (N, 1) in 1..10."""
    folder = _folder(dir)
    rng = np.random.default_rng(seed)
    for name, n in (("train_32x32.mat", n_train), ("test_32x32.mat", n_test)):
        digits = _labels(rng, n)
        y = np.where(digits == 0, 10, digits).reshape(n, 1)  # SVHN stores the digit 0 as 10
        scipy.io.savemat(folder / name, {"X": _images(rng, (32, 32, 3, n)), "y": y})
    return folder


def _folder(dir) -> Path:
    folder = Path(dir)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _images(rng, shape) -> np.ndarray:
    return rng.integers(0, 256, shape, dtype=np.uint8)


def _labels(rng, n) -> np.ndarray:
    return rng.permutation(np.arange(n) % 10).astype(np.uint8)
