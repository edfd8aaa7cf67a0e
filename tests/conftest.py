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
