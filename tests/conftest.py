"""Test setup: import the app's modules from the repo root, and find the real shared data."""

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

SHARED_DATA = Path(os.environ.get("AVH_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
