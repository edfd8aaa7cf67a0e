"""What the dashboard knows about runs without TensorBoard: tag names, layer order, seed groups
and the activation of a run. Pure functions, so the rules are tested without a server."""
import json
import os
import re

from avh import palette
from avh.tags import (CONFIG_FILE, GRADIENT_STAT_TAG, GRADIENT_STATS, GRADIENT_TAG, HISTOGRAM_TAG,
                      STAT_TAG, STATS)

HISTOGRAM_PREFIX = HISTOGRAM_TAG.format(layer="")          # "activations/"
GRADIENT_PREFIX = GRADIENT_TAG.format(layer="")            # "gradients/"
STAT_PREFIX = STAT_TAG.split("{layer}")[0]                 # "activation_stats/"

# What the distribution view can show of a layer: its histogram tag and the statistics logged
# beside it. Gradients are the loss's gradient with respect to the layer's output.
KINDS = {
    "activations": {"histogram": HISTOGRAM_TAG, "stat": STAT_TAG, "stats": STATS},
    "gradients": {"histogram": GRADIENT_TAG, "stat": GRADIENT_STAT_TAG, "stats": GRADIENT_STATS},
}
DEPTH_STAT = "std"  # the signal-by-depth view: each layer's forward and backward std

# A seed is a path component `seed3`, `seed-3`, `seed_3`, or a suffix of one: `selu-seed3`.
_SEED_COMPONENT = re.compile(r"^seed[-_]?(\d+)$", re.IGNORECASE)
_SEED_SUFFIX = re.compile(r"^(.*?)[-_.]seed[-_]?(\d+)$", re.IGNORECASE)
_LAYER_NUMBER = re.compile(r"^(\d+)_")


def layer_of_histogram_tag(tag):
    """`activations/3_conv3` -> `3_conv3`, `activations/block_1/dense` -> `block_1/dense`; None
    for any other tag."""
    if not tag.startswith(HISTOGRAM_PREFIX):
        return None
    return tag[len(HISTOGRAM_PREFIX):] or None


def layer_of_gradient_tag(tag):
    """`gradients/3_conv3` -> `3_conv3`; None for any other tag."""
    if not tag.startswith(GRADIENT_PREFIX):
        return None
    return tag[len(GRADIENT_PREFIX):] or None


def stat_tag(layer, stat, kind="activations"):
    return KINDS[kind]["stat"].format(layer=layer, stat=stat)


def layer_of_stat_tag(tag, stat, kind="activations"):
    """The layer of `activation_stats/<layer>/<stat>` (or the gradients' stat tag), else None."""
    prefix, suffix = KINDS[kind]["stat"].split("{layer}")
    suffix = suffix.format(stat=stat)
    if tag.startswith(prefix) and tag.endswith(suffix) and len(tag) > len(prefix) + len(suffix):
        return tag[len(prefix):-len(suffix)]
    return None


def layer_order(layer):
    """Sort key: numbered layers (`3_conv3`) by number first, then any others by name, so that
    `10_fc10` comes after `9_fc9` and a callback's own layer names still sort sensibly."""
    match = _LAYER_NUMBER.match(layer)
    return (0, int(match.group(1)), layer) if match else (1, 0, layer)


def seed_group(run):
    """(group, seed) of a run name: the name with its seed component or suffix removed, and the
    seed; (run, None) when the name carries no seed. `selu/seed1` and `selu-seed1` -> `selu`."""
    parts = run.split("/")
    for i in range(len(parts) - 1, -1, -1):
        match = _SEED_COMPONENT.match(parts[i])
        if match:
            rest = parts[:i] + parts[i + 1:]
            return "/".join(rest) or ".", int(match.group(1))
        match = _SEED_SUFFIX.match(parts[i])
        if match and match.group(1):
            rest = parts[:i] + [match.group(1)] + parts[i + 1:]
            return "/".join(rest), int(match.group(2))
    return run, None


def guess_activation(run):
    """The activation a run's name suggests, for runs without a readable config.json."""
    return palette.name_in(run)


class ConfigCache:
    """Reads `<logdir>/<run>/config.json` once per file version: with hundreds of runs, /runs
    must not parse hundreds of files on every reload."""

    def __init__(self, logdir):
        self.logdir = logdir
        self._cache = {}  # path -> (mtime, config or None)

    def config(self, run):
        if not self.logdir or "://" in self.logdir:
            return None  # remote or no logdir: only what the event files hold
        path = os.path.join(self.logdir, "" if run == "." else run, CONFIG_FILE)
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            return None
        cached = self._cache.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
        try:
            with open(path, encoding="utf-8") as f:
                config = json.load(f)
            if not isinstance(config, dict):
                config = None
        except (OSError, ValueError, UnicodeDecodeError):
            config = None  # half-written or foreign: the run still shows, without settings
        self._cache[path] = (mtime, config)
        return config
