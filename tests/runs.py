"""Test helpers: run train.py as a user would (a subprocess) and read back what it wrote."""
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT

TRAIN = REPO_ROOT / "train.py"
# Small enough for a few seconds a run on 2 cores; still crosses an epoch boundary.
TINY = ["--batch-size", "32", "--summary-every", "2", "--checkpoint-every", "4"]


def train_cmd(*args):
    return [sys.executable, str(TRAIN), *map(str, args)]


def run_train(*args, timeout=300, **kwargs):
    """Run train.py to completion; returns the CompletedProcess (text output captured)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(train_cmd(*args), capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=kwargs.pop("cwd", REPO_ROOT), **kwargs)


def start_train(*args, **kwargs):
    """Start train.py in the background (for signal tests); stdout/stderr are pipes."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(train_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=REPO_ROOT, **kwargs)


def read_events(run_dir):
    """{tag: [(step, value as numpy array), ...]} from all event files of a run, in file order,
    read with TensorBoard's own event reader (no purging: what is on disk, as it is)."""
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.util import tensor_util

    events = {}
    for path in sorted(Path(run_dir).glob("events.out.tfevents.*")):
        for event in event_file_loader.EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                array = tensor_util.make_ndarray(value.tensor)
                events.setdefault(value.tag, []).append((event.step, array))
    return events


def read_json(path):
    return json.loads(Path(path).read_text())
