"""Test setup: where the repository and the real shared data are. The app's modules are importable
because requirements.txt installs the project (pyproject.toml)."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

SHARED_DATA = Path(os.environ.get("AVH_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
