"""datasets.load on small files in each official layout, on each way a load must fail, on real data
(the shared full files, else the bundled samples), on the offline fallback and on your own data.

No test touches the network: downloads go through a fake keras.utils.get_file.
"""

import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import shutil
import socket
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io

import datasets
from conftest import REPO_ROOT, SAMPLES, SHARED_DATA, real_data
from datasets.synthetic import (CIFAR10_CLASS_NAMES, cifar10_batch, idx_bytes, write_cifar10, write_mnist,
                      write_mnist_npz, write_svhn, write_tar)

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

# What the real data holds, by where it came from (conftest.real_data): the shared full MNIST and
# CIFAR-10 subset, or the bundled samples (their first 6,000/1,000 and 2,000/500 images).
# test_md5: the MD5 of the test images as an uncompressed IDX file; the full one is the official MD5.
REAL_MNIST = {
    "shared": dict(n_train=60000, n_test=10000, train_counts=MNIST_TRAIN_COUNTS, test_counts=MNIST_TEST_COUNTS,
                   test_md5="2646ac647ad5339dbf082846283269ea"),
    "sample": dict(n_train=6000, n_test=1000, train_counts=[592, 671, 581, 608, 623, 514, 608, 651, 551, 601],
                   test_counts=[85, 126, 116, 107, 110, 87, 87, 99, 89, 94],
                   test_md5="bac4371a484d0b5651e81d99305acb5a"),
}
REAL_CIFAR10 = {"shared": dict(n_train=4000, n_test=1000), "sample": dict(n_train=2000, n_test=500)}
# The first labels of the official files, published with them (MNIST: 5 0 4 1 9..., CIFAR-10: frog truck...).
FIRST_LABELS = {
    "mnist": ([5, 0, 4, 1, 9, 2, 1, 3, 1, 4], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]),
    "cifar10": ([6, 9, 9, 4, 1, 1, 2, 7, 8, 3], [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]),
}
SAMPLE_COUNTS = {"mnist": (6000, 1000), "cifar10": (2000, 500)}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to use the network")
    monkeypatch.setattr(socket.socket, "connect", refuse)


def snapshot(folder: Path) -> dict:
    """Every path under `folder` with its bytes and modification time (None for folders)."""
    folder = Path(folder)
    return {path.relative_to(folder): (path.read_bytes(), path.stat().st_mtime_ns) if path.is_file() else None
            for path in sorted(folder.rglob("*"))}


def assert_load_fails(name, data_dir, *expected) -> str:
    """Loading must raise a one-line DataError that contains each `expected` text, and change nothing."""
    before = snapshot(data_dir)
    with pytest.raises(datasets.DataError) as caught:
        datasets.load(name, data_dir)
    message = str(caught.value)
    assert "\n" not in message
    for text in expected:
        assert text in message, message
    assert snapshot(data_dir) == before
    return message


# Loading each official layout

@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_files_load_as_uint8_nhwc(tmp_path, gz):
    folder = write_mnist(tmp_path, n_train=30, n_test=12, gz=gz)
    data = datasets.load("mnist", folder)

    assert data.x_train.shape == (30, 28, 28, 1) and data.x_test.shape == (12, 28, 28, 1)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int32
    assert set(data.y_train) == set(range(10))
    assert (data.image_shape, data.num_classes, data.class_names) == ((28, 28, 1), 10, tuple("0123456789"))
    idx_file = (folder / "t10k-images-idx3-ubyte.gz").read_bytes() if gz else (
        folder / "t10k-images-idx3-ubyte").read_bytes()
    assert data.x_test.tobytes() == (gzip.decompress(idx_file) if gz else idx_file)[16:]


def test_mnist_npz_loads_like_the_idx_files(tmp_path):
    idx = datasets.load("mnist", write_mnist(tmp_path / "idx"))
    npz = datasets.load("mnist", write_mnist_npz(tmp_path / "npz"))

    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(npz, field), getattr(idx, field))
        assert getattr(npz, field).dtype == getattr(idx, field).dtype


@pytest.mark.parametrize("as_tar", [True, False])
def test_cifar10_batches_load_transposed_to_nhwc(tmp_path, as_tar):
    folder = write_cifar10(tmp_path, n_per_batch=12, n_test=10, as_tar=as_tar)
    data = datasets.load("cifar10", folder)

    assert data.x_train.shape == (60, 32, 32, 3) and data.x_test.shape == (10, 32, 32, 3)
    assert data.x_train.flags.c_contiguous and data.x_test.flags.c_contiguous
    assert data.class_names == CIFAR10_CLASS_NAMES and set(data.y_train) == set(range(10))
    for batch_name, images, labels in (("data_batch_2", data.x_train[12:24], data.y_train[12:24]),
                                       ("test_batch", data.x_test, data.y_test)):
        batch = pickle.loads(read_fixture_member(folder, batch_name), encoding="bytes")  # our own fixture
        np.testing.assert_array_equal(images, batch[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        np.testing.assert_array_equal(labels, batch[b"labels"])


def read_fixture_member(folder: Path, name: str) -> bytes:
    archive = folder / "cifar-10-python.tar.gz"
    if not archive.exists():
        return (folder / "cifar-10-batches-py" / name).read_bytes()
    with tarfile.open(archive) as tar:
        return tar.extractfile(f"cifar-10-batches-py/{name}").read()


def test_cifar10_batches_pickled_by_python3_also_load(tmp_path):
    folder = write_cifar10(tmp_path, as_tar=False)
    rows, labels = np.full((3, 3072), 7, np.uint8), [4, 5, 6]
    batch = {b"batch_label": b"re-pickled", b"labels": labels, b"data": rows, b"filenames": [b"a", b"b", b"c"]}
    (folder / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    data = datasets.load("cifar10", folder)
    assert data.y_test.tolist() == labels and (data.x_test == 7).all()


def test_cifar10_archive_is_read_without_extracting_anything(tmp_path):
    folder = write_cifar10(tmp_path / "data")
    before = snapshot(tmp_path)
    datasets.load("cifar10", folder)
    assert snapshot(tmp_path) == before


def test_cifar10_extracted_folder_itself_can_be_the_data_dir(tmp_path):
    folder = write_cifar10(tmp_path, n_per_batch=3, n_test=2, as_tar=False)
    assert len(datasets.load("cifar10", folder / "cifar-10-batches-py").x_train) == 15


def test_svhn_mat_files_load_with_label_10_as_digit_0(tmp_path):
    folder = write_svhn(tmp_path, n_train=25, n_test=10)
    data = datasets.load("svhn", folder)

    mat = scipy.io.loadmat(folder / "train_32x32.mat")
    np.testing.assert_array_equal(data.x_train, mat["X"].transpose(3, 0, 1, 2))
    np.testing.assert_array_equal(data.y_train, mat["y"][:, 0] % 10)
    assert 10 in mat["y"] and set(data.y_train) == set(range(10))
    assert data.x_test.shape == (10, 32, 32, 3) and data.x_train.flags.c_contiguous
    assert (data.image_shape, data.class_names) == ((32, 32, 3), tuple("0123456789"))


@pytest.mark.parametrize("name, write, n_train", [
    ("mnist", lambda folder: write_mnist(folder, n_train=1, n_test=3), 1),
    ("cifar10", lambda folder: write_cifar10(folder, n_per_batch=1, n_test=3), 5),
    ("svhn", lambda folder: write_svhn(folder, n_train=1, n_test=3), 1),
])
def test_any_number_of_examples_per_file_loads(tmp_path, name, write, n_train):
    data = datasets.load(name, write(tmp_path))
    assert (len(data.x_train), len(data.y_train)) == (n_train, n_train)
    assert (len(data.x_test), len(data.y_test)) == (3, 3)


def test_loaded_arrays_are_read_only(tmp_path):
    data = datasets.load("mnist", write_mnist(tmp_path))
    with pytest.raises(ValueError, match="read-only"):
        data.x_train[0] = 0


# Real data: ../shared/data where it exists, else the bundled samples

def test_real_mnist_loads_with_the_known_class_counts():
    kind, folder = real_data("mnist")
    expected = REAL_MNIST[kind]
    data = datasets.load("mnist", folder)

    assert data.x_train.shape == (expected["n_train"], 28, 28, 1)
    assert data.x_test.shape == (expected["n_test"], 28, 28, 1)
    assert np.bincount(data.y_train).tolist() == expected["train_counts"]
    assert np.bincount(data.y_test).tolist() == expected["test_counts"]
    # The pixels are exactly the published ones (for the full set: the official MD5 of t10k-images-idx3-ubyte).
    assert hashlib.md5(idx_bytes(data.x_test[..., 0])).hexdigest() == expected["test_md5"]


def test_real_cifar10_loads_all_its_images_and_the_first_test_image_is_a_cat():
    kind, folder = real_data("cifar10")
    expected = REAL_CIFAR10[kind]
    data = datasets.load("cifar10", folder)

    assert data.x_train.shape == (expected["n_train"], 32, 32, 3)
    assert data.x_test.shape == (expected["n_test"], 32, 32, 3)
    assert data.class_names == CIFAR10_CLASS_NAMES
    assert data.class_names[data.y_test[0]] == "cat"


# The bundled samples (datasets/samples/)

@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_bundled_sample_loads_with_its_counts_and_the_official_first_labels(name):
    data = datasets.load(name, SAMPLES / name)

    assert (len(data.x_train), len(data.x_test)) == SAMPLE_COUNTS[name]
    assert (len(data.y_train), len(data.y_test)) == SAMPLE_COUNTS[name]
    assert set(data.y_train) == set(data.y_test) == set(range(10))
    first_train, first_test = FIRST_LABELS[name]
    assert data.y_train[:10].tolist() == first_train and data.y_test[:10].tolist() == first_test
    assert data.source == "data-dir"


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_bundled_sample_holds_exactly_the_first_images_of_the_official_files(name):
    kind, folder = real_data(name)
    if kind != "shared":
        pytest.skip(f"no shared {name} files to compare the sample with")
    sample, full = datasets.load(name, SAMPLES / name), datasets.load(name, folder)
    n_train, n_test = SAMPLE_COUNTS[name]

    np.testing.assert_array_equal(sample.x_train, full.x_train[:n_train])
    np.testing.assert_array_equal(sample.y_train, full.y_train[:n_train])
    np.testing.assert_array_equal(sample.x_test, full.x_test[:n_test])
    np.testing.assert_array_equal(sample.y_test, full.y_test[:n_test])
    assert sample.class_names == full.class_names


def test_bundled_cifar10_sample_is_in_the_official_layout():
    with tarfile.open(SAMPLES / "cifar10" / "cifar-10-python.tar.gz") as tar:
        members = {member.name: member for member in tar}
        batches = {name: tar.extractfile(f"cifar-10-batches-py/{name}").read()
                   for name in ("data_batch_3", "batches.meta")}
    assert {f"cifar-10-batches-py/{name}" for name in datasets.cifar10.MEMBERS} <= set(members)
    batch = pickle.loads(batches["data_batch_3"], encoding="bytes")  # our own file
    assert list(batch) == [b"batch_label", b"labels", b"data", b"filenames"]
    assert batch[b"data"].shape == (400, 3072) and batch[b"data"].dtype == np.uint8
    assert len(batch[b"labels"]) == len(batch[b"filenames"]) == 400
    # Python 2 pickles, like the official batches: protocol 2, strings as py2 str, numpy 1's module name.
    assert batches["data_batch_3"][:2] == b"\x80\x02"
    assert b"cnumpy.core.multiarray\n_reconstruct" in batches["data_batch_3"]
    meta = pickle.loads(batches["batches.meta"], encoding="bytes")
    assert meta[b"num_cases_per_batch"] == 400 and len(meta[b"label_names"]) == 10


def test_bundled_samples_are_small_and_packaged():
    import tomllib

    files = sorted(path for path in SAMPLES.rglob("*") if path.is_file())
    assert sum(path.stat().st_size for path in files) < 10_000_000
    patterns = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["datasets"]
    packaged = {path for pattern in patterns for path in (REPO_ROOT / "datasets").glob(pattern)}
    assert set(files) <= packaged, "a sample file is missing from pyproject.toml's package-data"
    names = {path.name for path in files}
    assert {"README.md", "cifar-10-python.tar.gz", "train-images-idx3-ubyte.gz"} <= names


def test_make_samples_refuses_to_overwrite_existing_samples(tmp_path):
    out = tmp_path / "samples"
    (out / "mnist").mkdir(parents=True)
    existing = out / "mnist" / "train-images-idx3-ubyte.gz"
    existing.write_bytes(b"keep me")
    make_samples = load_make_samples()

    with pytest.raises(SystemExit, match="exists already; pass --force"):
        make_samples.main([str(tmp_path / "mnist"), str(tmp_path / "cifar10"), "--out", str(out)])
    assert existing.read_bytes() == b"keep me"


def test_make_samples_cuts_the_first_images_reproducibly(tmp_path):
    make_samples = load_make_samples()
    official = {"mnist": write_mnist(tmp_path / "mnist", n_train=30, n_test=12),
                "cifar10": write_cifar10(tmp_path / "cifar10", n_per_batch=6, n_test=7)}
    make_samples.MNIST_TRAIN, make_samples.MNIST_TEST = 25, 10
    make_samples.CIFAR10_PER_BATCH, make_samples.CIFAR10_TEST = 4, 5
    args = [str(official["mnist"]), str(official["cifar10"])]
    make_samples.main([*args, "--out", str(tmp_path / "one")])
    make_samples.main([*args, "--out", str(tmp_path / "two")])

    assert snapshot(tmp_path / "one").keys() == snapshot(tmp_path / "two").keys()
    for path in (tmp_path / "one").rglob("*.gz"):
        assert path.read_bytes() == (tmp_path / "two" / path.relative_to(tmp_path / "one")).read_bytes()
    for name, (n_train, n_test) in (("mnist", (25, 10)), ("cifar10", (20, 5))):
        full, sample = datasets.load(name, official[name]), datasets.load(name, tmp_path / "one" / name)
        np.testing.assert_array_equal(sample.x_train, full.x_train[:n_train])
        np.testing.assert_array_equal(sample.y_test, full.y_test[:n_test])


def load_make_samples():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_samples", REPO_ROOT / "scripts" / "make_samples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Failures: one line naming the file, nothing changed

def test_unknown_data_set_is_a_data_error(tmp_path):
    with pytest.raises(datasets.DataError, match="unknown data set 'imagenet'; choose one of mnist, svhn,"):
        datasets.load("imagenet", tmp_path)


@pytest.mark.parametrize("name", datasets.NAMES)
def test_missing_data_folder_is_named(tmp_path, name):
    assert_load_fails(name, tmp_path / "nowhere", "nowhere: no such folder", "--data-dir")


@pytest.mark.parametrize("name, expected_file", [
    ("mnist", "train-images-idx3-ubyte"), ("cifar10", "cifar-10-python.tar.gz"), ("svhn", "train_32x32.mat")])
def test_empty_folder_says_which_files_to_put_there(tmp_path, name, expected_file):
    assert_load_fails(name, tmp_path, str(tmp_path), expected_file, "--data-dir")


def test_mnist_missing_file_is_named(tmp_path):
    folder = write_mnist(tmp_path)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    message = assert_load_fails("mnist", folder, "t10k-labels-idx1-ubyte", "--data-dir")
    assert "train-images" not in message.split(";")[0]


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_truncated_file_is_named(tmp_path, gz):
    folder = write_mnist(tmp_path, gz=gz)
    path = folder / ("train-images-idx3-ubyte.gz" if gz else "train-images-idx3-ubyte")
    path.write_bytes(path.read_bytes()[:-300])
    assert_load_fails("mnist", folder, str(path))


def test_mnist_header_promising_more_images_than_the_file_holds_is_caught(tmp_path):
    folder = write_mnist(tmp_path, gz=False)
    path = folder / "t10k-images-idx3-ubyte"
    raw = bytearray(path.read_bytes())
    raw[4:8] = (21).to_bytes(4, "big")  # header says 21 images, the file holds 20
    path.write_bytes(raw)
    assert_load_fails("mnist", folder, str(path), "truncated or damaged")


def test_mnist_corrupted_gzip_is_named(tmp_path):
    folder = write_mnist(tmp_path)
    path = folder / "train-images-idx3-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 8] = b"\xff" * 8
    path.write_bytes(raw)
    assert_load_fails("mnist", folder, str(path), "cannot be read")


def test_mnist_labels_in_place_of_images_fail_the_magic_number_check(tmp_path):
    folder = write_mnist(tmp_path)
    shutil.copy(folder / "train-labels-idx1-ubyte.gz", folder / "train-images-idx3-ubyte.gz")
    assert_load_fails("mnist", folder, "train-images-idx3-ubyte.gz: not an MNIST image file", "0x00000801")


def test_mnist_image_and_label_counts_must_match(tmp_path):
    folder = write_mnist(tmp_path, n_train=30)
    labels = np.arange(29, dtype=np.uint8) % 10
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    assert_load_fails("mnist", folder, "train-labels-idx1-ubyte.gz: holds 29 labels", "30 images")


def test_mnist_label_outside_0_to_9_is_refused(tmp_path):
    folder = write_mnist(tmp_path, n_test=20)
    labels = np.arange(20, dtype=np.uint8)  # 10..19 are not digits
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    assert_load_fails("mnist", folder, "t10k-labels-idx1-ubyte.gz", "label 10 is outside 0..9")


def test_mnist_damaged_npz_is_named(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"PK\x03\x04 not really a zip file")
    assert_load_fails("mnist", tmp_path, "mnist.npz: cannot be read")


def archive_extracted_folder(folder: Path):
    """Replace folder/cifar-10-batches-py/ by a cifar-10-python.tar.gz holding the same files."""
    batches = folder / "cifar-10-batches-py"
    write_tar(folder / "cifar-10-python.tar.gz",
              {f"{batches.name}/{path.name}": path.read_bytes() for path in sorted(batches.iterdir())})
    shutil.rmtree(batches)


class RunsCode:
    """Unpickling this carelessly runs exec(), which writes `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",)


@pytest.mark.parametrize("as_tar", [True, False])
def test_tampered_pickle_runs_no_code(tmp_path, as_tar):
    marker = tmp_path / "code_ran"
    payload = pickle.dumps({b"data": RunsCode(marker), b"labels": []}, protocol=2)
    pickle.loads(payload)  # proves the payload is live: a careless load does run it
    assert marker.exists()
    marker.unlink()

    folder = write_cifar10(tmp_path / "data", as_tar=False)
    (folder / "cifar-10-batches-py" / "data_batch_3").write_bytes(payload)
    if as_tar:
        archive_extracted_folder(folder)
    assert_load_fails("cifar10", folder, "data_batch_3", ".exec, which no CIFAR-10 batch contains")
    assert not marker.exists()


@pytest.mark.parametrize("member, link_to", [
    ("../escaped.txt", None),
    ("cifar-10-batches-py/../../escaped.txt", None),
    ("{tmp_path}/escaped.txt", None),
    ("cifar-10-batches-py/escaped.txt", "../../escaped.txt"),
], ids=["parent", "parent-inside-path", "absolute", "symlink"])
def test_archive_member_that_would_land_outside_the_folder_is_refused(tmp_path, member, link_to):
    batches = write_cifar10(tmp_path / "official", n_per_batch=2, as_tar=False) / "cifar-10-batches-py"
    folder = tmp_path / "data"
    folder.mkdir()
    archive = folder / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(batches, arcname=batches.name)
        evil = tarfile.TarInfo(member.format(tmp_path=tmp_path))  # last, after every batch was read
        if link_to:
            evil.type, evil.linkname = tarfile.SYMTYPE, link_to
            tar.addfile(evil)
        else:
            evil.size = len(b"escaped")
            tar.addfile(evil, io.BytesIO(b"escaped"))

    before = snapshot(tmp_path)
    assert_load_fails("cifar10", folder, str(archive), "would land outside the extraction folder")
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "escaped.txt").exists()


def test_cifar10_truncated_archive_is_named(tmp_path):
    folder = write_cifar10(tmp_path)
    archive = folder / "cifar-10-python.tar.gz"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    assert_load_fails("cifar10", folder, str(archive))


@pytest.mark.parametrize("as_tar", [True, False])
def test_cifar10_missing_batch_is_named(tmp_path, as_tar):
    folder = write_cifar10(tmp_path, as_tar=False)
    (folder / "cifar-10-batches-py" / "data_batch_4").unlink()
    if as_tar:
        archive_extracted_folder(folder)
    assert_load_fails("cifar10", folder, "data_batch_4")


@pytest.mark.parametrize("batch, expected", [
    (cifar10_batch(np.zeros((4, 1024), np.uint8), [0, 1, 2, 3], "grey"), "data is uint8 (4, 1024)"),
    (cifar10_batch(np.zeros((4, 3072), np.uint8), [0, 1, 2, 10], "bad label"), "label 10 is outside 0..9"),
    (cifar10_batch(np.zeros((4, 3072), np.uint8), [0, 1, 2], "short"), "4 images but 3 labels"),
    (pickle.dumps([1, 2, 3], protocol=2), "not a CIFAR-10 batch"),
    (b"\x80\x02}q\x00(", "cannot be read"),  # a pickle cut short
])
def test_cifar10_batch_with_the_wrong_layout_is_refused(tmp_path, batch, expected):
    folder = write_cifar10(tmp_path, as_tar=False)
    (folder / "cifar-10-batches-py" / "test_batch").write_bytes(batch)
    assert_load_fails("cifar10", folder, "test_batch", expected)


def test_cifar10_meta_without_10_class_names_is_refused(tmp_path):
    folder = write_cifar10(tmp_path, as_tar=False)
    meta = pickle.dumps({b"label_names": [b"cat", b"dog"]}, protocol=2)
    (folder / "cifar-10-batches-py" / "batches.meta").write_bytes(meta)
    assert_load_fails("cifar10", folder, "batches.meta", "label_names is not a list of 10 names")


def test_svhn_missing_test_file_says_what_to_put_where(tmp_path):
    folder = write_svhn(tmp_path)
    (folder / "test_32x32.mat").unlink()
    assert_load_fails("svhn", folder, "test_32x32.mat: missing", "put train_32x32.mat and test_32x32.mat",
                      "--data-dir")


@pytest.mark.parametrize("cut", [0.5, 0.01])
def test_svhn_truncated_mat_is_named(tmp_path, cut):
    folder = write_svhn(tmp_path)
    path = folder / "train_32x32.mat"
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * cut)])
    assert_load_fails("svhn", folder, str(path), "cannot be read")


GREY = np.zeros((32, 32, 1, 5), np.uint8)
COLOUR = np.zeros((32, 32, 3, 5), np.uint8)


@pytest.mark.parametrize("contents, expected", [
    ({"X": GREY, "y": np.ones((5, 1), np.uint8)}, "X is uint8 (32, 32, 1, 5)"),
    ({"X": COLOUR, "y": np.ones((4, 1), np.uint8)}, "5 images but 4 labels"),
    ({"X": COLOUR, "y": np.arange(5, dtype=np.uint8).reshape(5, 1)}, "label 0 is outside 1..10"),
    ({"X": COLOUR}, "y is missing"),
])
def test_svhn_mat_with_the_wrong_shapes_is_refused(tmp_path, contents, expected):
    folder = write_svhn(tmp_path)
    scipy.io.savemat(folder / "test_32x32.mat", contents)
    assert_load_fails("svhn", folder, "test_32x32.mat", expected)


# Downloads (no data_dir), with keras.utils.get_file replaced

@pytest.fixture
def keras_cache(tmp_path, monkeypatch):
    """An empty Keras home; returns its datasets/ folder, where get_file caches downloads."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras" / "datasets"


@pytest.fixture
def get_file(monkeypatch):
    """Replace keras.utils.get_file by the function given to the returned setter."""
    keras_utils = pytest.importorskip("keras.utils")
    return lambda fake: monkeypatch.setattr(keras_utils, "get_file", fake)


OFFICIAL_DOWNLOADS = {
    "mnist": [("mnist.npz", "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
               "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1")],
    "cifar10": [("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                 "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce")],
    "svhn": [("train_32x32.mat", "http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
              "e26dedcc434d2e4c54c9b2d4a06d8373"),
             ("test_32x32.mat", "http://ufldl.stanford.edu/housenumbers/test_32x32.mat",
              "eb5a983be6a315427106f1b69d2e5bb3")],
}


def write_official_files(name: str, folder: Path) -> Path:
    """Fixture files under the names the official downloads have (MNIST's download is Keras' mnist.npz)."""
    writers = {"mnist": write_mnist_npz, "cifar10": write_cifar10, "svhn": write_svhn}
    return writers[name](folder)


@pytest.mark.parametrize("name", datasets.NAMES)
def test_data_dir_never_downloads(tmp_path, keras_cache, get_file, name):
    get_file(lambda *args, **kwargs: pytest.fail("downloaded although a data folder was given"))
    folder = write_official_files(name, tmp_path / "data")
    data = datasets.load(name, folder)
    assert data.name == name
    assert (data.source, data.note) == ("data-dir", None)
    assert data.origin == str(folder / "mnist.npz" if name == "mnist" else
                              folder / "cifar-10-python.tar.gz" if name == "cifar10" else folder)
    assert not keras_cache.exists()


def offline(fname, origin, **kwargs):
    """What get_file raises when the host cannot be resolved."""
    raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure in name resolution")


@pytest.mark.parametrize("name", datasets.NAMES)
def test_no_network_no_cache_and_no_sample_says_to_use_data_dir(tmp_path, keras_cache, get_file, monkeypatch,
                                                               name):
    loader = getattr(datasets, name)
    if loader.SAMPLE is not None:  # an install without the bundled samples: the error stays as it was
        monkeypatch.setattr(loader, "SAMPLE", tmp_path / "no-sample")
    get_file(offline)

    with pytest.raises(datasets.DataError) as caught:
        datasets.load(name)
    message = str(caught.value)
    first_file, url, _ = OFFICIAL_DOWNLOADS[name][0]
    assert "\n" not in message
    assert f"cannot download {url}" in message and "Temporary failure" in message
    assert f"no cached copy at {keras_cache / first_file}" in message and "--data-dir" in message
    assert not keras_cache.exists() or not any(keras_cache.iterdir())


@pytest.mark.parametrize("name", datasets.NAMES)
def test_first_use_downloads_the_official_files_into_the_keras_cache(tmp_path, keras_cache, get_file, name):
    source = write_official_files(name, tmp_path / "server")
    calls = []

    def download(fname, origin, file_hash, cache_dir):
        calls.append((fname, origin, file_hash))
        target = Path(cache_dir) / "datasets" / fname
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / fname, target)
        return str(target)
    get_file(download)

    data = datasets.load(name)
    assert calls == OFFICIAL_DOWNLOADS[name]
    assert data.name == name and len(data.x_train) > 0
    assert (data.source, data.note) == ("download", None)
    # SVHN's two files: the page they are published on.
    assert data.origin == (OFFICIAL_DOWNLOADS[name][0][1] if name != "svhn" else
                           "http://ufldl.stanford.edu/housenumbers/")
    assert sorted(path.name for path in keras_cache.iterdir()) == sorted(fname for fname, _, _ in calls)


def test_cached_copy_with_the_right_checksum_is_used_without_downloading(keras_cache, get_file, monkeypatch):
    write_official_files("mnist", keras_cache)
    npz = keras_cache / "mnist.npz"
    sha256 = hashlib.sha256(npz.read_bytes()).hexdigest()
    monkeypatch.setattr(datasets.mnist, "DOWNLOAD",
                        dataclasses.replace(datasets.mnist.DOWNLOAD, file_hash=sha256))
    get_file(lambda *args, **kwargs: pytest.fail("downloaded although the cache holds the file"))

    data = datasets.load("mnist")
    assert len(data.x_train) == 60
    assert (data.source, data.origin, data.note) == ("cache", str(npz), None)


@pytest.mark.parametrize("name, fname", [("cifar10", "cifar-10-python.tar.gz"), ("mnist", "mnist.npz")])
def test_corrupt_cached_copy_is_reported_and_left_alone(keras_cache, get_file, name, fname):
    keras_cache.mkdir(parents=True)
    cached = keras_cache / fname
    cached.write_bytes(b"half a download")
    before = snapshot(keras_cache)
    get_file(lambda *args, **kwargs: pytest.fail("a bad cached copy must not be replaced"))

    # Never silently replaced by the bundled sample either: the user has a download to repair.
    with pytest.raises(datasets.DataError, match=f"{fname}: cached copy does not match the published "
                                                 f"checksum.*delete it.*--data-dir"):
        datasets.load(name)
    assert snapshot(keras_cache) == before


def test_download_failing_its_checksum_leaves_nothing_in_the_cache(keras_cache, get_file):
    def tampered_download(fname, origin, file_hash, cache_dir):
        target = Path(cache_dir) / "datasets" / fname
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"not the official file")
        raise ValueError("Incomplete or corrupted file detected. The md5 file hash does not match ...")
    get_file(tampered_download)

    with pytest.raises(datasets.DataError, match="train_32x32.mat.*Incomplete or corrupted file"):
        datasets.load("svhn")
    assert list(keras_cache.iterdir()) == []


# The first run anywhere: no network, nothing cached, so the bundled sample

@pytest.mark.parametrize("name, count, title, sample_file", [
    ("mnist", "6,000", "MNIST", "mnist"), ("cifar10", "2,000", "CIFAR-10", "cifar10/cifar-10-python.tar.gz")])
def test_no_network_and_no_cache_trains_on_the_bundled_sample(keras_cache, get_file, name, count, title,
                                                             sample_file):
    get_file(offline)
    data = datasets.load(name)

    assert data.name == name and data.source == "sample"
    assert data.origin == str(SAMPLES / sample_file)
    assert (len(data.x_train), len(data.x_test)) == SAMPLE_COUNTS[name]
    assert "\n" not in data.note
    assert data.note.startswith(f"cannot download {title} ([Errno -3] Temporary failure")
    assert data.note.endswith(f"Temporary failure in name resolution): training on the bundled "
                              f"{count}-image {title} sample; pass --data-dir for the full set")
    assert datasets.conv_filters(data) == getattr(datasets, name).CONV_FILTERS
    assert not keras_cache.exists() or not any(keras_cache.iterdir())  # nothing put in the cache


def test_download_failing_its_checksum_falls_back_to_the_sample_and_caches_nothing(keras_cache, get_file):
    def tampered_download(fname, origin, file_hash, cache_dir):  # e.g. a captive portal's page
        target = Path(cache_dir) / "datasets" / fname
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"<html>log in first</html>")
        raise ValueError("Incomplete or corrupted file detected. The sha256 file hash does not match ...")
    get_file(tampered_download)

    data = datasets.load("mnist")
    assert data.source == "sample" and "Incomplete or corrupted file detected" in data.note
    assert list(keras_cache.iterdir()) == []


def test_data_dir_never_falls_back_to_the_sample(tmp_path, get_file):
    get_file(lambda *args, **kwargs: pytest.fail("downloaded although a data folder was given"))
    message = assert_load_fails("mnist", tmp_path, f"{tmp_path}: no MNIST files here")
    assert "sample" not in message


# Dataset: where the data came from, frozen and read-only

def test_dataset_is_frozen_and_names_a_known_source(tmp_path):
    data = datasets.load("mnist", write_mnist(tmp_path))
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.source = "sample"
    with pytest.raises(ValueError, match="source must be one of download, cache, data-dir, sample, folder"):
        dataclasses.replace(data, source="internet")
    with pytest.raises(ValueError, match="note must be one line"):
        dataclasses.replace(data, note="two\nlines")
    assert datasets.SOURCES == ("download", "cache", "data-dir", "sample", "folder", "npz")


def test_importing_datasets_imports_neither_tensorflow_nor_keras_nor_pillow():
    import subprocess
    import sys

    code = "import sys, datasets; print([m for m in ('tensorflow', 'keras', 'PIL') if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr


# Your own data: a folder of images ("folder") or a .npz of arrays ("npz")

def write_image(path: Path, value: int, size=(8, 6), mode="L") -> Path:
    """A PNG or JPEG (by suffix) of `size` (width, height) filled with `value`, in Pillow mode `mode`."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    colour = value if mode in ("L", "P", "I;16") else (value, value // 2, 255 - value, 255)[:len(mode)]
    Image.new(mode, size, colour).save(path)
    return path


def image_folder(root: Path, counts: dict[str, int], **image) -> Path:
    """root/<class>/img_NN.png for each class and count; each image's grey value is 10 * class + NN."""
    for label, (name, count) in enumerate(counts.items()):
        for i in range(count):
            write_image(root / name / f"img_{i:02d}.png", 10 * label + i, **image)
    return root


def test_own_data_names_sit_beside_the_built_in_ones():
    assert datasets.OWN == ("folder", "npz")
    assert datasets.NAMES == ("mnist", "svhn", "cifar10")


def test_folder_holds_out_every_5th_image_of_each_class_for_testing(tmp_path):
    folder = image_folder(tmp_path / "pets", {"dog": 7, "cat": 5})  # cat sorts first: label 0
    data = datasets.load("folder", folder)

    assert data.class_names == ("cat", "dog") and data.name == "pets"
    assert (data.source, data.origin, data.note) == ("folder", str(folder), None)
    assert data.x_train.shape == (10, 6, 8, 1) and data.x_test.shape == (2, 6, 8, 1)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int32
    # img_04 of each class (the 5th by name) is held out; cat's values are 10 + i, dog's 0 + i.
    assert data.x_test[:, 0, 0, 0].tolist() == [14, 4] and data.y_test.tolist() == [0, 1]
    assert data.x_train[:, 0, 0, 0].tolist() == [10, 11, 12, 13, 0, 1, 2, 3, 5, 6]
    assert data.y_train.tolist() == [0] * 4 + [1] * 6
    assert datasets.conv_filters(data) == (32, 64, 128)  # 8x6x1 = 48 values: MNIST's widths


def test_folder_with_train_and_test_subfolders_uses_them(tmp_path):
    image_folder(tmp_path / "digits" / "train", {"one": 3, "two": 2}, mode="RGB")
    image_folder(tmp_path / "digits" / "test", {"one": 1, "two": 1}, mode="RGB")
    (tmp_path / "digits" / "README.md").write_text("files beside the folders are ignored")
    data = datasets.load("folder", tmp_path / "digits")

    assert (len(data.x_train), len(data.x_test)) == (5, 2)
    assert data.image_shape == (6, 8, 3) and data.class_names == ("one", "two")
    assert data.y_train.tolist() == [0, 0, 0, 1, 1] and data.y_test.tolist() == [0, 1]


def test_folder_mixing_grey_and_colour_is_all_rgb(tmp_path):
    folder = image_folder(tmp_path / "mixed", {"a": 5, "b": 5})
    write_image(folder / "a" / "img_02.png", 200, mode="RGBA")  # alpha dropped
    write_image(folder / "b" / "img_00.png", 30, mode="P")      # palette image
    data = datasets.load("folder", folder)

    assert data.image_shape == (6, 8, 3)
    assert data.x_train[2, 0, 0].tolist() == [200, 100, 55]
    assert data.x_train[1, 0, 0].tolist() == [1, 1, 1]  # a grey image, repeated into R, G and B


def test_folder_reads_jpeg_and_ignores_hidden_files(tmp_path):
    folder = tmp_path / "photos"
    for name in ("x", "y"):
        for i in range(5):
            write_image(folder / name / f"{i}.JPG", 100, size=(16, 16), mode="RGB")
        (folder / name / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (folder / ".ipynb_checkpoints").mkdir()
    data = datasets.load("folder", folder)
    assert data.class_names == ("x", "y") and data.x_train.shape == (8, 16, 16, 3)
    assert datasets.conv_filters(data) == (32, 64, 128)  # 16x16x3 = 768 values, no more than MNIST's 784


def two_classes(root: Path) -> Path:
    return image_folder(root, {"cat": 6, "dog": 6})


def split_folders(root: Path, test_classes=("cat", "dog"), **test_image) -> Path:
    image_folder(root / "train", {"cat": 2, "dog": 2})
    image_folder(root / "test", dict.fromkeys(test_classes, 1), **test_image)
    return root


def empty_class(root):
    (image_folder(root, {"cat": 6}) / "dog").mkdir()
    return root


def mixed_sizes(root):
    write_image(two_classes(root) / "dog" / "img_03.png", 1, size=(9, 6))
    return root


def corrupt_image(root):
    (two_classes(root) / "dog" / "img_01.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return root


def text_file(root):
    (two_classes(root) / "cat" / "notes.txt").write_text("not an image")
    return root


def nested_folder(root):
    (two_classes(root) / "cat" / "more").mkdir()
    return root


def sixteen_bit(root):
    write_image(two_classes(root) / "cat" / "img_05.png", 1000, mode="I;16")
    return root


def extra_folder(root):
    image_folder(split_folders(root) / "val", {"cat": 1, "dog": 1})
    return root


FOLDER_PROBLEMS = {  # id: (make the folder to load under root, the texts its one-line error must contain)
    "missing": (lambda root: root / "nowhere", ["nowhere: no such folder", "one subfolder of PNG or JPEG"]),
    "a-file": (lambda root: write_image(root / "one.png", 1), ["one.png: a file, not a folder", "npz"]),
    "empty": (lambda root: root, ["{root}: empty"]),
    "no-class-folders": (lambda root: write_image(root / "a.png", 1).parent,
                         ["{root}: no class subfolders, only files such as a.png"]),
    "one-class": (lambda root: image_folder(root, {"cat": 6}),
                  ["{root}: only one class subfolder (cat)", "at least two"]),
    "empty-class": (empty_class, ["{root}/dog: a class folder without images"]),
    "mixed-sizes": (mixed_sizes, ["{root}: images differ in size",
                                  "{root}/cat/img_00.png is 8x6 but {root}/dog/img_03.png is 9x6"]),
    "corrupt": (corrupt_image, ["{root}/dog/img_01.png: cannot be read", "replace it with a readable PNG"]),
    "not-an-image": (text_file, ["{root}/cat/notes.txt: not a PNG or JPEG file"]),
    "nested-folder": (nested_folder, ["{root}/cat/more: a folder inside the class folder cat/"]),
    "16-bit": (sixteen_bit, ["{root}/cat/img_05.png: I;16 pixels", "8-bit"]),
    "no-test-images": (lambda root: image_folder(root, {"cat": 4, "dog": 3}),
                       ["{root}: no image is held out for testing", "every 5th image", "train/ and test/"]),
    "train-without-test": (lambda root: image_folder(root / "train", {"cat": 2, "dog": 2}).parent,
                           ["{root}: has train/ but no test/"]),
    "different-classes": (lambda root: split_folders(root, test_classes=("cat", "cow")),
                          ["{root}: train/ and test/ hold different classes",
                           "(dog only in train/; cow only in test/)"]),
    "extra-folder": (extra_folder, ["{root}/val: a folder beside train/ and test/"]),
    "train-test-sizes": (lambda root: split_folders(root, size=(4, 4)),
                         ["{root}: images differ in size",
                          "{root}/train/cat/img_00.png is 8x6 but {root}/test/cat/img_00.png is 4x4"]),
}


@pytest.mark.parametrize("make, expected", FOLDER_PROBLEMS.values(), ids=FOLDER_PROBLEMS.keys())
def test_folder_problem_is_one_line_naming_the_file(tmp_path, make, expected):
    root = tmp_path / "mine"
    root.mkdir()
    folder = make(root)
    assert_load_fails("folder", folder, *(text.format(root=root) for text in expected))


def test_truncated_image_is_named(tmp_path):
    from PIL import Image

    folder = image_folder(tmp_path / "mine", {"cat": 5, "dog": 5}, size=(64, 64), mode="RGB")
    path = folder / "dog" / "img_02.png"
    # Noise does not compress, so half the file is half the pixel data: the header still reads.
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert_load_fails("folder", folder, f"{path}: cannot be read (image file is truncated")


def test_own_data_needs_its_path():
    for name, what in (("folder", "folder of images"), ("npz", ".npz file")):
        with pytest.raises(datasets.DataError, match=f"the {name} data set is your own data: pass the {what}"):
            datasets.load(name)


def write_npz(path: Path, **arrays) -> Path:
    """A .npz of the given arrays over defaults: 12 grey 6x8 training images of 3 classes, 4 test images."""
    rng = np.random.default_rng(0)
    defaults = dict(x_train=rng.integers(0, 256, (12, 6, 8), np.uint8), y_train=np.arange(12) % 3,
                    x_test=rng.integers(0, 256, (4, 6, 8), np.uint8), y_test=np.array([0, 1, 2, 0]))
    contents = {key: value for key, value in {**defaults, **arrays}.items() if value is not None}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **contents)
    return path


def test_npz_of_grey_images_loads_with_numbered_classes(tmp_path):
    path = write_npz(tmp_path / "shapes.npz")
    data = datasets.load("npz", path)

    assert data.name == "shapes" and (data.source, data.origin) == ("npz", str(path))
    assert data.x_train.shape == (12, 6, 8, 1) and data.x_test.shape == (4, 6, 8, 1)
    assert data.class_names == ("0", "1", "2") and data.y_train.dtype == np.int32
    with np.load(path) as npz:
        np.testing.assert_array_equal(data.x_train[..., 0], npz["x_train"])
        np.testing.assert_array_equal(data.y_test, npz["y_test"])
    with pytest.raises(ValueError, match="read-only"):
        data.x_train[0] = 0


def test_npz_of_colour_images_with_class_names_and_keras_label_columns(tmp_path):
    rng = np.random.default_rng(1)
    path = write_npz(tmp_path / "colour.npz", x_train=rng.integers(0, 256, (12, 32, 32, 3), np.uint8),
                     x_test=rng.integers(0, 256, (4, 32, 32, 3), np.uint8),
                     y_train=(np.arange(12) % 3).reshape(12, 1).astype(np.uint8),
                     class_names=np.array(["red", "green", "blue"]))
    data = datasets.load("npz", path)
    assert data.class_names == ("red", "green", "blue") and data.image_shape == (32, 32, 3)
    assert data.y_train.tolist() == [0, 1, 2] * 4
    assert datasets.conv_filters(data) == (64, 128, 256)


@pytest.mark.parametrize("shape, filters", [((28, 28, 1), (32, 64, 128)), ((16, 16, 3), (32, 64, 128)),
                                            ((28, 28, 3), (64, 128, 256)), ((29, 28, 1), (64, 128, 256))])
def test_own_data_conv_widths_follow_the_image_size(tmp_path, shape, filters):
    images = np.zeros((6, *shape), np.uint8)
    data = datasets.load("npz", write_npz(tmp_path / "mnist.npz", x_train=images, x_test=images[:2],
                                          y_train=np.arange(6) % 2, y_test=np.array([0, 1])))
    assert data.name == "mnist"  # named like a built-in set, sized by its own images all the same
    assert datasets.conv_filters(data) == filters


def test_conv_filters_wants_the_loaded_dataset():
    with pytest.raises(TypeError, match="conv_filters takes the loaded datasets.Dataset; received: 'mnist'"):
        datasets.conv_filters("mnist")


NPZ_PROBLEMS = {  # id: (arrays replacing write_npz's defaults, a text the one-line error must contain)
    "missing-key": (dict(x_test=None), "has no x_test (it holds x_train, y_train, y_test)"),
    "float-images": (dict(x_train=np.zeros((12, 6, 8), np.float32)),
                     "x_train is float32 (12, 6, 8), expected uint8 images"),
    "two-channels": (dict(x_train=np.zeros((12, 6, 8, 2), np.uint8)), "x_train is uint8 (12, 6, 8, 2)"),
    "flat-images": (dict(x_test=np.zeros((4, 48), np.uint8)), "x_test is uint8 (4, 48)"),
    "no-test-images": (dict(x_test=np.zeros((0, 6, 8), np.uint8), y_test=np.zeros(0, int)),
                       "x_test holds no images"),
    "train-test-shapes": (dict(x_test=np.zeros((4, 6, 8, 3), np.uint8)),
                          "x_train images are 6x8x1 but x_test images are 6x8x3"),
    "negative-label": (dict(y_test=np.array([0, 1, -1, 0])), "(y_test): label -1 is outside 0..2"),
    "labels-from-1": (dict(y_train=np.arange(12) % 3 + 1),
                      "(y_train): no training image has label 0, yet the labels go up to 3 (labels counted "
                      "from 1?)"),
    "label-beyond-class-names": (dict(class_names=np.array(["a", "b"])), "(y_train): label 2 is outside 0..1"),
    "one-class": (dict(y_train=np.zeros(12, int), y_test=np.zeros(4, int)),
                  "every label is 0, so there is only one class"),
    "float-labels": (dict(y_train=np.arange(12) % 3 * 1.0), "(y_train): labels are float64 of shape (12,)"),
    "count-mismatch": (dict(y_train=np.arange(11) % 3), "(train): 12 images but 11 labels"),
    "label-matrix": (dict(y_train=np.arange(12).reshape(6, 2) % 3),
                     "(y_train): labels are int64 of shape (6, 2)"),
    "label-gap": (dict(y_train=np.array([0, 5] * 6), y_test=np.array([0, 5, 0, 5])),
                  "no training image has label 1, yet the labels go up to 5;"),
    "one-class-name": (dict(class_names=np.array(["only"])), "class_names holds 1 name(s)"),
    "repeated-class-name": (dict(class_names=np.array(["a", "b", "a"])), "class_names repeats 'a'"),
    "numeric-class-names": (dict(class_names=np.array([1, 2, 3])),
                            "class_names is int64 (3,), expected a vector of strings"),
    "class-without-images": (dict(class_names=np.array(["a", "b", "c", "d"])),
                             "no training image has label 3 ('d', one of the 4"),
}


@pytest.mark.parametrize("arrays, expected", NPZ_PROBLEMS.values(), ids=NPZ_PROBLEMS.keys())
def test_npz_problem_is_one_line_naming_the_file(tmp_path, arrays, expected):
    path = write_npz(tmp_path / "data" / "mine.npz", **arrays)
    message = assert_load_fails("npz", path.parent / "mine.npz", str(path), expected)
    assert message.startswith(str(path))


@pytest.mark.parametrize("make, expected", [
    (lambda folder: folder / "missing.npz", "missing.npz: no such file"),
    (lambda folder: folder, "a folder, not a .npz file"),
    (lambda folder: (folder / "junk.npz").write_bytes(b"PK\x03\x04 not a zip") and folder / "junk.npz",
     "junk.npz: cannot be read"),
    (lambda folder: (np.save(folder / "one.npy", np.zeros(3, np.uint8)), folder / "one.npy")[-1],
     "one.npy: a single array (uint8 (3,)), not a .npz of named arrays"),
], ids=["missing", "folder", "not-a-zip", "npy"])
def test_npz_file_that_is_not_an_npz_is_named(tmp_path, make, expected):
    folder = tmp_path / "data"
    folder.mkdir()
    assert_load_fails("npz", make(folder), expected)


def test_npz_object_array_is_refused_and_runs_no_code(tmp_path):
    marker = tmp_path / "code_ran"
    path = write_npz(tmp_path / "data" / "evil.npz", class_names=np.array([RunsCode(marker), "b", "c"], object))
    assert_load_fails("npz", path, f"{path} (class_names): cannot be read", "allow_pickle=False")
    assert not marker.exists()
