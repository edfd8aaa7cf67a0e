"""Cut the bundled real samples (datasets/samples/) from the official MNIST and CIFAR-10 files.

Usage: python scripts/make_samples.py MNIST_DIR CIFAR10_DIR [--out datasets/samples] [--force]

MNIST_DIR holds the four official IDX files, CIFAR10_DIR the official cifar-10-python.tar.gz (or
the shared subset of it, which starts with the same images). Both are read with the project's
checked loaders, and each sample is loaded back and compared with the images it was cut from.
The same inputs give the same bytes (gzip level 9, every time stamp 0). Existing samples are
never replaced unless --force is given.
"""

import argparse
import gzip
import os
import sys
from pathlib import Path

import numpy as np

import datasets
from datasets import cifar10, mnist
from datasets.synthetic import idx_bytes, python2_pickle, write_tar

MNIST_TRAIN, MNIST_TEST = 6000, 1000
CIFAR10_PER_BATCH, CIFAR10_TEST = 400, 500  # 5 training batches of 400: the first 2,000 images
SAMPLES = Path(__file__).resolve().parent.parent / "datasets" / "samples"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mnist_dir", type=Path, help="folder of the official MNIST IDX files")
    parser.add_argument("cifar10_dir", type=Path, help="folder of the official cifar-10-python.tar.gz")
    parser.add_argument("--out", type=Path, default=SAMPLES, help=f"where to write (default: {SAMPLES})")
    parser.add_argument("--force", action="store_true", help="replace samples that exist already")
    args = parser.parse_args(argv)

    targets = {"mnist": [args.out / "mnist" / f"{name}.gz" for name in mnist.TRAIN_FILES + mnist.TEST_FILES],
               "cifar10": [args.out / "cifar10" / cifar10.ARCHIVE]}
    existing = [path for paths in targets.values() for path in paths if path.exists()]
    if existing and not args.force:
        sys.exit(f"make_samples: {existing[0]} exists already; pass --force to replace the samples")
    try:
        mnist_sample(args.mnist_dir, args.out / "mnist")
        cifar10_sample(args.cifar10_dir, args.out / "cifar10")
    except datasets.DataError as err:
        sys.exit(f"make_samples: {err}")
    for path in (path for paths in targets.values() for path in paths):
        print(f"{path}: {path.stat().st_size:,} bytes")
    print(f"total: {sum(path.stat().st_size for paths in targets.values() for path in paths):,} bytes")


def mnist_sample(source: Path, out: Path):
    """The first MNIST_TRAIN training and MNIST_TEST test images and labels, as the four gzipped IDX files."""
    full = datasets.load("mnist", source)
    check_enough(full, MNIST_TRAIN, MNIST_TEST)
    splits = {mnist.TRAIN_FILES: (full.x_train, full.y_train, MNIST_TRAIN),
              mnist.TEST_FILES: (full.x_test, full.y_test, MNIST_TEST)}
    out.mkdir(parents=True, exist_ok=True)
    for (images_name, labels_name), (images, labels, n) in splits.items():
        write(out / f"{images_name}.gz", gzip_bytes(idx_bytes(images[:n, :, :, 0])))
        write(out / f"{labels_name}.gz", gzip_bytes(idx_bytes(labels[:n].astype(np.uint8))))
    check_cut(full, datasets.load("mnist", out), MNIST_TRAIN, MNIST_TEST)


def cifar10_sample(source: Path, out: Path):
    """The first CIFAR10_PER_BATCH * 5 training and CIFAR10_TEST test images, as the official archive."""
    full = datasets.load("cifar10", source)
    check_enough(full, CIFAR10_PER_BATCH * len(cifar10.TRAIN_BATCHES), CIFAR10_TEST)
    pickles = cifar10.read_pickles(cifar10.locate(source))  # for what load drops: file names, meta
    filenames = [name for batch in cifar10.TRAIN_BATCHES for name in pickles[batch][1][b"filenames"]]
    test_filenames = pickles[cifar10.TEST_BATCH][1][b"filenames"]
    n_train = CIFAR10_PER_BATCH * len(cifar10.TRAIN_BATCHES)

    members = {}
    for i, name in enumerate(cifar10.TRAIN_BATCHES):
        rows = slice(i * CIFAR10_PER_BATCH, (i + 1) * CIFAR10_PER_BATCH)
        members[name] = batch(f"training batch {i + 1} of 5 (sample)", full.x_train[rows],
                              full.y_train[rows], filenames[rows])
    members[cifar10.TEST_BATCH] = batch("testing batch 1 of 1 (sample)", full.x_test[:CIFAR10_TEST],
                                        full.y_test[:CIFAR10_TEST], test_filenames[:CIFAR10_TEST])
    meta = pickles[cifar10.META][1]
    members[cifar10.META] = python2_pickle({
        b"num_cases_per_batch": CIFAR10_PER_BATCH,
        b"label_names": meta[b"label_names"],
        b"num_vis": meta.get(b"num_vis", 3072),
    })
    out.mkdir(parents=True, exist_ok=True)
    archive = out / cifar10.ARCHIVE
    partial = archive.with_name(archive.name + ".partial")
    write_tar(partial, {f"{cifar10.FOLDER}/{name}": data for name, data in members.items()})
    os.replace(partial, archive)
    check_cut(full, datasets.load("cifar10", out), n_train, CIFAR10_TEST)


def batch(label: str, images: np.ndarray, labels: np.ndarray, filenames: list) -> bytes:
    """One batch as the official files hold it: channel-major rows of 3072 pixels, labels as a list."""
    rows = np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), -1)
    return python2_pickle({
        b"batch_label": label.encode(),
        b"labels": [int(value) for value in labels],
        b"data": rows,
        b"filenames": list(filenames),
    })


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)  # mtime 0: the same bytes on every run


def write(path: Path, data: bytes):
    """Write through a temporary file, so an interrupted run leaves no half sample behind."""
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def check_enough(full, n_train: int, n_test: int):
    if len(full.x_train) < n_train or len(full.x_test) < n_test:
        sys.exit(f"make_samples: {full.origin} holds {len(full.x_train)} training and {len(full.x_test)} "
                 f"test images, fewer than the {n_train} and {n_test} the sample takes")


def check_cut(full, sample, n_train: int, n_test: int):
    """The sample must load as exactly the first images and labels of the full files."""
    for field, n in (("x_train", n_train), ("y_train", n_train), ("x_test", n_test), ("y_test", n_test)):
        if not np.array_equal(getattr(sample, field), getattr(full, field)[:n]):
            sys.exit(f"make_samples: the {sample.name} sample's {field} differs from the first {n} "
                     f"of {full.origin}")
    if sample.class_names != full.class_names:
        sys.exit(f"make_samples: the {sample.name} sample's class names differ from {full.origin}'s")


if __name__ == "__main__":
    main()
