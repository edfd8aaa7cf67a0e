"""The runs under a TensorBoard root, as report.py reads them: each run folder's settings, final
metrics and the summaries the report draws, from all of its event files. It only reads.
"""
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avh.events import EVENTS_PREFIX, by_step, read_events as read_event_files
from avh.tags import (CONFIG_FILE, HISTOGRAM_TAG, METRICS_FILE, MOMENT_STATS, MOMENT_TAG,
                      STAT_TAG, STATS, TEST_SUBSET_TAG, TEST_TAG)
from model import LAYERS, layer_tag
from ops import ACTIVATIONS

TEST_METRICS = ("accuracy", "loss")
# Settings that may differ between runs without spoiling the comparison.
PER_RUN_SETTINGS = {"activation", "run_name", "logdir", "data_dir", "resolved", "versions", "data"}


@dataclass
class Run:
    label: str            # the run's folder relative to LOGROOT
    folder: Path
    config: dict
    metrics: dict | None  # None while the run is unfinished
    events: dict          # tag -> {step: numpy value}, the last value written for each step

    @property
    def activation(self):
        return self.config.get("activation", "?")

    def series(self, tag):
        """(steps, float values) of a scalar tag, in step order; empty arrays if never logged."""
        points = sorted(self.events.get(tag, {}).items())
        return (np.array([s for s, _ in points], dtype=np.int64),
                np.array([float(v) for _, v in points], dtype=np.float64))

    def last(self, tag):
        """(step, value) of the last step logged for `tag`, or None."""
        points = self.events.get(tag)
        return max(points.items(), key=lambda item: item[0]) if points else None

    def last_step(self):
        return max((max(points) for points in self.events.values() if points), default=0)


# -----------------------------------------------------------------------------
# Reading the runs.

def find_runs(root):
    """Folders under `root` (itself included, at any depth) holding a config.json and an event
    file, in a stable order."""
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        if CONFIG_FILE in files and any(name.startswith(EVENTS_PREFIX) for name in files):
            found.append(Path(folder))
    return found


def read_run(root, folder):
    """A Run from its folder: settings, final metrics if any, and every summary we draw."""
    config = json.loads((folder / CONFIG_FILE).read_text())
    if not isinstance(config, dict):
        raise ValueError("config.json does not hold an object")
    metrics_path = folder / METRICS_FILE
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else None
    label = folder.relative_to(root).as_posix()
    return Run(label if label != "." else folder.resolve().name, folder, config, metrics,
               read_events(folder))


def read_events(folder):
    """{tag: {step: value}} for the scalar and histogram tags of this app, from all of the
    folder's event files (a resumed run has several)."""
    wanted = set(wanted_tags())
    return {tag: by_step(series)
            for tag, series in read_event_files(folder, want=wanted.__contains__).items()}


def wanted_tags():
    for k in range(1, len(LAYERS) + 1):
        layer = layer_tag(k)
        yield HISTOGRAM_TAG.format(layer=layer)
        for stat in STATS:
            yield STAT_TAG.format(layer=layer, stat=stat)
        for stat in MOMENT_STATS:
            yield MOMENT_TAG.format(layer=layer, stat=stat)
    for metric in TEST_METRICS:
        yield TEST_TAG.format(metric=metric)
        yield TEST_SUBSET_TAG.format(metric=metric)


def activation_order(run):
    """SELU, ReLU, LeakyReLU (ops.ACTIVATIONS order), then by folder."""
    known = run.activation in ACTIVATIONS
    return (ACTIVATIONS.index(run.activation) if known else len(ACTIVATIONS), run.label)


def load_runs(root):
    """The readable runs under `root` in activation order; one warning line per unreadable one."""
    runs = []
    for folder in find_runs(root):
        try:
            runs.append(read_run(root, folder))
        except (OSError, ValueError) as err:
            print(f"warning: skipped {folder}: cannot read its {CONFIG_FILE} or {METRICS_FILE} ({err})",
                  file=sys.stderr)
    return sorted(runs, key=activation_order)


def differing_settings(runs):
    """Settings other than the activation's own that differ between the runs, e.g. 'seed: 0, 1',
    and the data they trained on where it differs (a run on the bundled sample beside one on
    the full set, say): 'data: sample 6000 images, data-dir 60000 images'."""
    keys = sorted({k for run in runs for k in run.config} - PER_RUN_SETTINGS)
    notes = []
    for key in keys:
        values = [json.dumps(run.config.get(key)) for run in runs]
        if len(set(values)) > 1:
            notes.append(f"{key}: {', '.join(dict.fromkeys(values))}")
    data = [data_of(run) for run in runs]
    if len(set(data)) > 1:
        notes.append("data: " + ", ".join(f"{source} {count} images"
                                          for source, count in dict.fromkeys(data)))
    return notes


def data_of(run):
    """(source, training images) of what a run trained on; ("unknown", n) for runs older than
    the record of the source."""
    data = run.config.get("data", {})
    return data.get("source", "unknown"), data.get("train_examples")


def by_dataset(runs):
    """[(data set, its runs)] in name order: runs of different data sets never share a figure
    (their step counts and accuracies do not compare)."""
    groups = {}
    for run in runs:
        # Own data: by the folder's name, so two folders of images never share a figure.
        name = run.config.get("data", {}).get("name") or run.config.get("dataset", "?")
        groups.setdefault(str(name), []).append(run)
    return sorted(groups.items())
