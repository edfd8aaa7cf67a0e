"""Test helpers: run train.py as a user would (a subprocess) and read back what it wrote."""
import json
import os
import subprocess
import sys
from pathlib import Path

from avh.events import read_events  # noqa: F401  (the tests read events through it)
from conftest import REPO_ROOT

TRAIN = REPO_ROOT / "train.py"
# Small enough for a few seconds a run on 2 cores; still crosses an epoch boundary.
TINY = ["--batch-size", "32", "--summary-every", "2", "--checkpoint-every", "4"]


def train_cmd(*args):
    return [sys.executable, str(TRAIN), *map(str, args)]


def run_train(*args, timeout=300, **kwargs):
    """Run train.py to completion; returns the CompletedProcess (text output captured)."""
    env = {**kwargs.pop("env", os.environ), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(train_cmd(*args), capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=kwargs.pop("cwd", REPO_ROOT), **kwargs)


def start_train(*args, **kwargs):
    """Start train.py in the background (for signal tests); stdout/stderr are pipes."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(train_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=REPO_ROOT, **kwargs)


def read_json(path):
    return json.loads(Path(path).read_text())
