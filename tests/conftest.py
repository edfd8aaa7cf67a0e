"""Test setup: where the repository and the real data (shared, else bundled) are. The app's modules are
importable because requirements.txt installs the project (pyproject.toml)."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

SHARED_DATA = Path(os.environ.get("AVH_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
SAMPLES = REPO_ROOT / "datasets" / "samples"  # the real samples shipped in the repository

# Real data for tests: the shared full copy where this machine has one, else (a fresh clone) the
# bundled sample, which holds the same data set's first images in the same file formats.
_SHARED_FOLDERS = {"mnist": "mnist", "cifar10": "cifar10-subset"}


def real_data(name: str) -> tuple[str, Path]:
    """("shared", folder) for the shared copy of data set `name`, else ("sample", its bundled sample)."""
    shared = SHARED_DATA / _SHARED_FOLDERS[name]
    return ("shared", shared) if shared.is_dir() else ("sample", SAMPLES / name)


# -----------------------------------------------------------------------------
# Runs that several test files read but never change, trained once per test session.

import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

COMPARED_STEPS = 6
# Small enough for seconds a run on 2 cores; still crosses an epoch (96 images / 32 = 3 steps).
COMPARED_FLAGS = ["--max-steps", str(COMPARED_STEPS), "--summary-every", "2", "--batch-size", "32",
                  "--checkpoint-every", "4", "--seed", "3"]


@pytest.fixture(scope="session")
def compared_root(tmp_path_factory):
    """(root, the finished compare.py): selu, relu and lrelu trained at once on tiny MNIST in one
    root, as `scripts/compare.py --parallel` makes it. Read it; copy it before changing it."""
    from datasets.synthetic import write_mnist

    base = tmp_path_factory.mktemp("compared")
    data = write_mnist(base / "mnist", n_train=96, n_test=40)
    root = base / "root"
    done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "compare.py"), "--dataset",
                           "mnist", "--data-dir", str(data), *COMPARED_FLAGS, "--root", str(root),
                           "--parallel", "--no-tensorboard"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return root, done
