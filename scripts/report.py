"""Draw what the runs under a TensorBoard root did to their activations: PNG figures and one
self-contained HTML page, read from the event files with TensorBoard's own reader.

    python scripts/report.py logs/cifar10-compare-20250101-120000 [-o OUT]

It only reads run folders; it writes nothing outside OUT.
"""
import argparse
import base64
import html
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state
from matplotlib.ticker import MaxNLocator, PercentFormatter, ScalarFormatter

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from avh import seeds  # noqa: E402
from avh.cli import UsageError, usage_error  # noqa: E402
from avh.quiet import quiet_stderr  # noqa: E402

# TensorBoard's event reader and model.py load TensorFlow: with its start-up notes silenced,
# so that a bad command line still prints one line.
with quiet_stderr():
    from avh.events import EVENTS_PREFIX, by_step, read_events as read_event_files
    from avh.tags import (HISTOGRAM_TAG, MOMENT_STATS, MOMENT_TAG, STAT_TAG, TEST_SUBSET_TAG,
                          TEST_TAG)
    from avh.theory_figures import draw_moment_map
    from model import LAYERS, layer_tag
    from ops import ACTIVATIONS

HISTOGRAM_LAYERS = (3, 4)                 # the layers whose last histograms are drawn
# Names from avh.tags.STATS (a test checks): the two with a SELU target, and the third.
STAT_TARGETS = {"mean": 0.0, "std": 1.0}  # SELU's fixed point: zero mean, unit variance
NONPOSITIVE = "nonpositive_fraction"
TEST_METRICS = ("accuracy", "loss")
DPI = 100
MAX_COLUMNS = 4                           # histogram panels side by side; more runs wrap
# One colour per activation in every report; several runs of one activation get shades of it.
ACTIVATION_COLOURS = {"selu": "#1f77b4", "relu": "#ff7f0e", "lrelu": "#2ca02c", "elu": "#d62728",
                      "gelu": "#9467bd"}
OTHER_COLOUR = "#7f7f7f"
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
        if "config.json" in files and any(name.startswith(EVENTS_PREFIX) for name in files):
            found.append(Path(folder))
    return found


def read_run(root, folder):
    """A Run from its folder: settings, final metrics if any, and every summary we draw."""
    config = json.loads((folder / "config.json").read_text())
    if not isinstance(config, dict):
        raise ValueError("config.json does not hold an object")
    metrics_path = folder / "metrics.json"
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
        for stat in (*STAT_TARGETS, NONPOSITIVE):
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
            print(f"warning: skipped {folder}: cannot read its config.json or metrics.json ({err})",
                  file=sys.stderr)
    return sorted(runs, key=activation_order)


# -----------------------------------------------------------------------------
# Figures: one colour per run, the same in every figure.

def run_colours(runs):
    """[colour of each run]: its activation's colour, in shades from dark to light when several
    runs share the activation (seeds, settings)."""
    from matplotlib.colors import to_rgb

    same = {}
    for run in runs:
        same.setdefault(run.activation, []).append(run)
    colours = []
    for run in runs:
        base = np.array(to_rgb(ACTIVATION_COLOURS.get(run.activation, OTHER_COLOUR)))
        group = same[run.activation]
        if len(group) == 1:
            colours.append(tuple(base))
            continue
        # From 30% darker to 45% lighter than the base colour.
        t = group.index(run) / (len(group) - 1)
        shade = base * 0.7 if t == 0 else base + (1 - base) * 0.45 * t
        colours.append(tuple(np.clip(shade, 0, 1)))
    return colours


def plot_stats(runs, path, by_seed=False):
    """One row per layer: mean and std of its activations on the probe batch over training,
    one line per run (by_seed: per seed group, its mean with a band from its lowest to its
    highest seed), the SELU targets 0 and 1 dashed."""
    lines = ([(name, members, group_colour(members)) for name, members in seed_groups(runs).items()]
             if by_seed else [(run.label, [run], face) for run, face in zip(runs, run_colours(runs))])
    fig = Figure(figsize=(11, 2.1 * len(LAYERS) + 0.8), layout="constrained")
    axes = fig.subplots(len(LAYERS), len(STAT_TARGETS), sharex=True, squeeze=False)
    for row, k in enumerate(range(1, len(LAYERS) + 1)):
        for col, (stat, target) in enumerate(STAT_TARGETS.items()):
            ax = axes[row, col]
            ax.axhline(target, color="0.35", ls="--", lw=1)
            tag = STAT_TAG.format(layer=layer_tag(k), stat=stat)
            for label, members, face in lines:
                if len(members) > 1:
                    steps, values, low, high = seeds.band([run.series(tag) for run in members])
                    ax.fill_between(steps, low, high, color=face, alpha=0.25, lw=0)
                    label = f"{label} (mean of {len(members)} seeds, band: min-max)"
                else:
                    steps, values = members[0].series(tag)
                ax.plot(steps, values, marker=".", ms=4, color=face, label=label)
            ax.set_title(f"{layer_tag(k)}: {stat} (SELU target {target:g})", fontsize=10)
            ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _legend(fig, axes[0, 0], len(lines))
    fig.savefig(path, dpi=DPI)


def plot_histograms(runs, path):
    """One block of panels per layer (3 and 4), runs side by side, up to MAX_COLUMNS a row. Each
    panel is the activation histogram of the probe batch at the run's last summary step, as a
    density, with the N(0, 1) density dashed; panels of a layer share their axes' limits, which
    cover [-4, 4] and the central 99% of every run's values (a long tail would squash the rest)."""
    columns = min(len(runs), MAX_COLUMNS)
    rows = math.ceil(len(runs) / columns)  # per layer
    fig = Figure(figsize=(3.4 * columns + 0.4, 3.0 * rows * len(HISTOGRAM_LAYERS) + 0.4),
                 layout="constrained")
    grid = fig.subplots(rows * len(HISTOGRAM_LAYERS), columns, squeeze=False)
    for block, k in enumerate(HISTOGRAM_LAYERS):
        layer = layer_tag(k)
        panels = grid[block * rows:(block + 1) * rows].ravel()
        for ax in panels[len(runs):]:
            ax.set_axis_off()
        axes = panels[:len(runs)]
        lo, hi, top = -4.0, 4.0, 0.45  # at least the N(0, 1) bulk, so panels compare at a glance
        peaks = []
        for ax, run, face in zip(axes, runs, run_colours(runs)):
            last = run.last(HISTOGRAM_TAG.format(layer=layer))
            if last is None:
                ax.set_title(f"{run.label}: {layer}", fontsize=9)
                ax.text(0.5, 0.5, "no histogram logged", ha="center", va="center",
                        transform=ax.transAxes)
                continue
            step, buckets = last
            left, right, counts = np.asarray(buckets, dtype=np.float64).T
            bulk_lo, bulk_hi = central_range(left, right, counts)
            lo, hi = min(lo, bulk_lo), max(hi, bulk_hi)
            peak = draw_buckets(ax, left, right, counts, face)
            peaks.append((ax, peak, left, right, counts))
            top = max(top, peak)
            ax.set_title(f"{run.label}: {layer}, step {step}", fontsize=9)
            ax.text(0.98, 0.97, describe(run, layer, step), ha="right", va="top", fontsize=8,
                    transform=ax.transAxes, bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})
        x = np.linspace(lo, hi, 400)
        for ax in axes:
            ax.plot(x, np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi), "k--", lw=1, label="N(0, 1)")
            ax.set_xlim(lo, hi)
            # A ReLU spike at 0 can be 50x the N(0, 1) peak: clip it so the shapes stay visible.
            ax.set_ylim(0, min(top, 1.2) * 1.05)
            ax.set_xlabel("activation")
            ax.set_ylabel("density")
        for ax, peak, left, right, counts in peaks:
            if peak > ax.get_ylim()[1]:  # clipped: say how tall it is and where
                i = int(np.argmax(counts / np.where(right > left, right - left, np.inf)))
                ax.annotate(f"peak {peak:.1f}", (0.5 * (left[i] + right[i]), ax.get_ylim()[1]),
                            xytext=(6, -14), textcoords="offset points", fontsize=8,
                            arrowprops={"arrowstyle": "->", "lw": 0.8})
        axes[0].legend(fontsize=8, loc="upper left")
    fig.savefig(path, dpi=DPI)


def central_range(left, right, counts, mass=0.99):
    """(low, high) bucket edges that hold the central `mass` of the counted values."""
    total = counts.sum()
    if total == 0:
        return left.min(), right.max()
    cumulative = np.cumsum(counts) / total
    tail = (1 - mass) / 2
    return (left[np.searchsorted(cumulative, tail, side="right")],
            right[min(np.searchsorted(cumulative, 1 - tail), len(right) - 1)])


def draw_buckets(ax, left, right, counts, face):
    """Draw stored histogram buckets ([left, right, count] rows) as a density; returns the peak."""
    total = counts.sum()
    if total == 0:
        return 0.0
    widths = right - left
    if not (widths > 0).any():  # every value was the same: TensorBoard stores zero-width buckets
        ax.axvline(right.max(), color=face, lw=3, label=f"all values = {right.max():.3g}")
        return 0.0
    density = counts / (total * np.where(widths > 0, widths, np.inf))
    ax.stairs(density, np.append(left, right[-1]), fill=True, color=face, alpha=0.6)
    return float(density.max())


def describe(run, layer, step):
    """'mean +0.01 / std 0.98 / <=0: 50%' (three lines) from the scalar summaries at `step`."""
    values = {stat: run.events.get(STAT_TAG.format(layer=layer, stat=stat), {}).get(step)
              for stat in (*STAT_TARGETS, NONPOSITIVE)}
    if any(v is None for v in values.values()):
        return ""
    return (f"mean {float(values['mean']):+.2f}\nstd {float(values['std']):.2f}\n"
            f"<=0: {float(values[NONPOSITIVE]):.0%}")


def plot_test_curves(runs, path):
    """Test accuracy and loss over training, one colour per run: a line for the test subset's
    frequent evaluations (test_subset/*), dots for the full test set (epoch ends, the end)."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, len(TEST_METRICS), squeeze=False)[0]
    for ax, metric in zip(axes, TEST_METRICS):
        for run, face in zip(runs, run_colours(runs)):
            steps, values = run.series(TEST_SUBSET_TAG.format(metric=metric))
            ax.plot(steps, values, color=face, label=run.label)
            steps, values = run.series(TEST_TAG.format(metric=metric))
            ax.plot(steps, values, "o", ms=5, color=face, mec="white",
                    label=None if len(steps) else run.label)
        ax.set_title(f"test {metric}: line, first test images; dots, full test set", fontsize=10)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[TEST_METRICS.index("accuracy")].yaxis.set_major_formatter(PercentFormatter(1.0))
    _legend(fig, axes[0], len(runs))
    fig.savefig(path, dpi=DPI)


def _legend(fig, ax, n_runs):
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=min(n_runs, 4), fontsize=9)


FIGURES = {  # file name -> (drawing function, heading on the page)
    "stats.png": (plot_stats, "Activation mean and std per layer over training"),
    "histograms.png": (plot_histograms,
                       "Activation histograms of layers "
                       f"{' and '.join(layer_tag(k) for k in HISTOGRAM_LAYERS)} at the last step"),
    "test_curves.png": (plot_test_curves, "Test accuracy and loss"),
    "moments.png": (lambda runs, path: plot_moments(runs, path),
                    "The paper's view per layer: weights (tau), input correlation, predicted std"),
    "moment_maps.png": (lambda runs, path: plot_moment_maps(runs, path),
                        "SELU's moment map with each layer's (mean, variance) over training"),
}


# -----------------------------------------------------------------------------
# The page.

def metrics_rows(runs):
    """Table rows (strings): run, activation, dataset, steps, test accuracy, test loss, examples/s."""
    rows = []
    for run in runs:
        m = run.metrics
        if m is None:
            tail = [f"{run.last_step()} (unfinished)", "-", "-", "-"]
        else:
            tail = [str(m.get("steps", "?")), _number(m.get("test_accuracy"), "{:.2%}"),
                    _number(m.get("test_loss"), "{:.4f}"),
                    _number(m.get("examples_per_sec"), "{:.0f}")]
        resolved = run.config.get("resolved", {})
        dropout = run.config.get("dropout")
        rows.append([run.label, run.activation, str(run.config.get("dataset", "?")),
                     str(resolved.get("norm", "?")), str(resolved.get("init", "?")),
                     f"{resolved.get('dropout_kind', '?')} {dropout}" if dropout else "none",
                     *tail])
    return rows


def _number(value, fmt):
    return fmt.format(value) if isinstance(value, (int, float)) else "-"


TABLE_HEADER = ("run", "activation", "dataset", "norm", "init", "dropout", "steps",
                "test accuracy", "test loss", "examples/s")


def differing_settings(runs):
    """Settings other than the activation's own that differ between the runs, e.g. 'seed: 0, 1'."""
    keys = sorted({k for run in runs for k in run.config} - PER_RUN_SETTINGS)
    notes = []
    for key in keys:
        values = [json.dumps(run.config.get(key)) for run in runs]
        if len(set(values)) > 1:
            notes.append(f"{key}: {', '.join(dict.fromkeys(values))}")
    return notes


def by_dataset(runs):
    """[(data set, its runs)] in name order: runs of different data sets never share a figure
    (their step counts and accuracies do not compare)."""
    groups = {}
    for run in runs:
        groups.setdefault(str(run.config.get("dataset", "?")), []).append(run)
    return sorted(groups.items())


def write_figures(groups, out):
    """Draw every figure of every data set: into OUT itself for one data set, else into
    OUT/<data set>/. Returns [(data set, its runs, its folder)]."""
    written = []
    for dataset, runs in groups:
        folder = out if len(groups) == 1 else out / dataset
        folder.mkdir(exist_ok=True)
        by_seed = seeds.has_seed_groups([run.label for run in runs])
        for name, (draw, _) in FIGURES.items():
            (SEED_FIGURES.get(name, draw) if by_seed else draw)(runs, folder / name)
        written.append((dataset, runs, folder))
    return written


def write_html(root, written, out):
    """report.html: per data set, the metrics table and the PNGs embedded as data URIs (one file
    to send)."""
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in TABLE_HEADER)
    sections = []
    for dataset, runs, folder in written:
        by_seed = seeds.has_seed_groups([run.label for run in runs])
        if by_seed:  # runs of several seeds: one row per group, mean ± sd, and the verdicts
            table_head = "".join(f"<th>{e(h)}</th>" for h in SEED_TABLE_HEADER)
            body = "".join("<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>\n"
                           for row in seed_rows(runs))
            body += "".join(f"<tr><td colspan={len(SEED_TABLE_HEADER)} class=note>{e(note)}</td></tr>\n"
                            for note in seed_notes(runs))
        else:
            table_head = head
            body = "".join("<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>\n"
                           for row in metrics_rows(runs))
        differ = [d for d in differing_settings(runs) if not (by_seed and d.startswith("seed:"))]
        warning = (f"<p class=warn>These runs differ in more than the activation: "
                   f"{e('; '.join(differ))}.</p>" if differ else "")
        figures = "".join(
            f"<h3>{e(heading)}</h3>\n<img alt=\"{e(name)}\" src=\"data:image/png;base64,"
            f"{base64.b64encode((folder / name).read_bytes()).decode('ascii')}\">\n"
            for name, (_, heading) in FIGURES.items())
        sections.append(f"<h2>{e(dataset)}: {len(runs)} run(s)</h2>\n<table><tr>{table_head}</tr>\n"
                        f"{body}</table>\n{warning}\n{figures}")
    n_runs = sum(len(runs) for _, runs, _ in written)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Activations report: {e(str(root))}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1400px; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #bbb; padding: 0.3em 0.8em; text-align: right; }}
th:nth-child(-n+6), td:nth-child(-n+6) {{ text-align: left; }}
img {{ max-width: 100%; }}
.warn {{ color: #a40; }}
td.note {{ text-align: left; }}
</style></head>
<body>
<h1>Activations report</h1>
<p>{n_runs} run(s) under <code>{e(str(root))}</code>, drawn {e(time.strftime('%Y-%m-%d %H:%M'))}.
Colours: SELU blue, ReLU orange, LeakyReLU green, ELU red, GELU purple.</p>
{"".join(sections)}</body></html>
"""
    (out / "report.html").write_text(page, encoding="utf-8")


# -----------------------------------------------------------------------------
# The paper's view (avh.moments): weights, input correlation, predictions, the moment map.

def moment_layers(runs):
    """Layer numbers that have moments logged in any run (the hidden layers fed by weights)."""
    return [k for k in range(1, len(LAYERS) + 1)
            if any(MOMENT_TAG.format(layer=layer_tag(k), stat="tau") in run.events for run in runs)]


def plot_moments(runs, path):
    """One row per layer: tau (sum of a unit's squared weights, mean over units), the input
    correlation factor Var(z) / (tau nu_in), and the measured std beside the moment map's
    predictions (independent inputs: dashed; given the measured pre-activations: dotted)."""
    layers = moment_layers(runs)
    fig = Figure(figsize=(13, 2.3 * max(len(layers), 1) + 0.9), layout="constrained")
    axes = fig.subplots(max(len(layers), 1), 3, sharex=True, squeeze=False)
    for row, k in enumerate(layers):
        layer = layer_tag(k)
        for run, c in zip(runs, run_colours(runs)):
            steps, tau = run.series(MOMENT_TAG.format(layer=layer, stat="tau"))
            axes[row, 0].plot(steps, tau, color=c, label=run.label)
            steps, corr = run.series(MOMENT_TAG.format(layer=layer, stat="input_correlation"))
            axes[row, 1].plot(steps, corr, color=c)
            steps, std = run.series(STAT_TAG.format(layer=layer, stat="std"))
            axes[row, 2].plot(steps, std, color=c, lw=2)
            for stat, style in (("predicted_std", "--"), ("predicted_std_given_preactivation", ":")):
                steps, predicted = run.series(MOMENT_TAG.format(layer=layer, stat=stat))
                axes[row, 2].plot(steps, predicted, style, color=c, lw=1.2)
        axes[row, 0].axhline(1.0, color="0.35", ls="--", lw=1)
        axes[row, 1].axhline(1.0, color="0.35", ls="--", lw=1)
        titles = (f"{layer}: tau (LeCun: 1)", f"{layer}: input correlation (independent: 1)",
                  f"{layer}: std, measured (solid) and predicted")
        for ax, title in zip(axes[row], titles):
            ax.set_title(title, fontsize=10)
            ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("step")
    _legend(fig, axes[0, 0], len(runs))
    fig.savefig(path, dpi=DPI)


def plot_moment_maps(runs, path):
    """The paper's Figure 2 view, one panel per run: SELU's moment map on the (mean, variance)
    plane with its fixed point, and each hidden layer's path over training."""
    columns = min(len(runs), 3)
    rows = math.ceil(len(runs) / columns)
    fig = Figure(figsize=(5.2 * columns, 4.7 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[len(runs):]:
        ax.set_axis_off()
    for ax, run in zip(axes, runs):
        paths = []
        for k in range(1, len(LAYERS)):  # the hidden layers; the logits are not a SELU layer
            layer = layer_tag(k)
            _, means = run.series(STAT_TAG.format(layer=layer, stat="mean"))
            _, stds = run.series(STAT_TAG.format(layer=layer, stat="std"))
            if len(means):
                paths.append((layer, list(zip(means, stds ** 2))))
        draw_moment_map(ax, paths, title=f"{run.label}: (mean, variance) per layer over training")
    fig.savefig(path, dpi=DPI)


# -----------------------------------------------------------------------------
# scripts/depth_sweep.py's runs: the paper's Figure 1 (training loss by depth) and per-layer std.

DEPTH_COLOURS = {"selu": "C0", "relu-bn": "C1", "relu": "C3"}


def depth_runs(runs):
    """The runs of depth sweeps among `runs`, by (depth, variant)."""
    return {(r.config["depth"], r.config["variant"]): r for r in runs
            if r.config.get("sweep") == "depth"}


def plot_depth_sweep(runs, path):
    """Top row, one panel per depth: training loss over steps per variant. Bottom row: each
    layer's activation std at step 0 (hollow, dashed) and at the end (filled), log scale, with
    SELU's target 1 dashed."""
    sweep = depth_runs(runs)
    depths = sorted({depth for depth, _ in sweep})
    fig = Figure(figsize=(4.2 * len(depths) + 0.6, 7.4), layout="constrained")
    axes = fig.subplots(2, len(depths), squeeze=False)
    for col, depth in enumerate(depths):
        loss_ax, std_ax = axes[0, col], axes[1, col]
        for (d, variant), run in sorted(sweep.items()):
            if d != depth:
                continue
            events = read_event_files(run.folder, want=lambda t: t == "train/loss" or
                                      (t.startswith("activation_stats/") and t.endswith("/std")))
            colour = DEPTH_COLOURS.get(variant, "C7")
            steps, losses = zip(*sorted(by_step(events.get("train/loss", [])).items())) or ((), ())
            loss_ax.plot(steps, [float(v) for v in losses], color=colour, label=variant)
            layers = range(1, depth + 1)
            series = [sorted(by_step(events.get(f"activation_stats/act{k}/std", [])).items())
                      for k in layers]
            if all(series):
                first = [float(points[0][1]) for points in series]
                last = [float(points[-1][1]) for points in series]
                std_ax.plot(layers, first, "o--", color=colour, mfc="none", ms=4, lw=1)
                std_ax.plot(layers, last, "o-", color=colour, ms=4, lw=1.5, label=variant)
        loss_ax.set_title(f"{depth} hidden layers: training loss", fontsize=11)
        loss_ax.set_xlabel("step")
        loss_ax.set_yscale("log")
        loss_ax.yaxis.set_major_formatter(ScalarFormatter())
        loss_ax.yaxis.set_minor_formatter(ScalarFormatter())
        loss_ax.grid(alpha=0.3)
        std_ax.axhline(1.0, color="0.35", ls="--", lw=1)
        std_ax.set_yscale("log")
        std_ax.set_title(f"{depth} layers: std per layer (○ step 0, ● end)", fontsize=11)
        std_ax.yaxis.set_major_formatter(ScalarFormatter())
        std_ax.yaxis.set_minor_formatter(ScalarFormatter())
        std_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        std_ax.set_xlabel("layer")
        std_ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("training loss (running mean)")
    axes[1, 0].set_ylabel("activation std on the probe batch")
    axes[0, 0].legend(fontsize=9)
    fig.savefig(path, dpi=DPI)


# -----------------------------------------------------------------------------
# Runs of several seeds (compare.py --seeds N): one group per activation, drawn as a mean with
# its min-max band, histograms pooled, accuracies as mean +- sd with a verdict on the spread.

def seed_groups(runs):
    """{group name: [runs]} (`selu/seed0`, `selu/seed1` -> `selu`), in the runs' order."""
    return {name: [runs[i] for i in indices]
            for name, indices in seeds.group_by_seed([run.label for run in runs]).items()}


def group_colour(members):
    """A seed group is drawn in its activation's fixed colour."""
    return ACTIVATION_COLOURS.get(members[0].activation, OTHER_COLOUR)


def plot_histograms_by_seed(runs, path):
    """One panel per group and layer (3 and 4): the seeds' last histograms pooled (their
    densities averaged on common bins), N(0, 1) dashed."""
    groups = seed_groups(runs)
    fig = Figure(figsize=(3.4 * len(groups) + 0.4, 3.0 * len(HISTOGRAM_LAYERS) + 0.4),
                 layout="constrained")
    grid = fig.subplots(len(HISTOGRAM_LAYERS), len(groups), squeeze=False)
    for row, k in enumerate(HISTOGRAM_LAYERS):
        layer = layer_tag(k)
        for ax, (name, members) in zip(grid[row], groups.items()):
            lasts = [run.last(HISTOGRAM_TAG.format(layer=layer)) for run in members]
            buckets = [np.asarray(last[1], dtype=np.float64) for last in lasts if last is not None]
            ax.set_title(f"{name}: {layer}, {len(buckets)} seeds pooled", fontsize=9)
            if not buckets:
                ax.text(0.5, 0.5, "no histogram logged", ha="center", va="center",
                        transform=ax.transAxes)
                continue
            lo, hi = -4.0, 4.0
            for b in buckets:
                bulk_lo, bulk_hi = central_range(*b.T)
                lo, hi = min(lo, bulk_lo), max(hi, bulk_hi)
            edges = np.linspace(lo, hi, 61)
            density = seeds.pooled_density(buckets, edges)
            ax.stairs(density, edges, fill=True, color=group_colour(members), alpha=0.6)
            x = np.linspace(lo, hi, 400)
            ax.plot(x, np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi), "k--", lw=1, label="N(0, 1)")
            ax.set_ylim(0, min(max(float(density.max()), 0.45), 1.2) * 1.05)
            ax.set_xlabel("activation")
            ax.set_ylabel("density")
    fig.savefig(path, dpi=DPI)


SEED_FIGURES = {"stats.png": lambda runs, path: plot_stats(runs, path, by_seed=True), "histograms.png": plot_histograms_by_seed}
SEED_TABLE_HEADER = ("group", "activation", "dataset", "seeds", "steps", "test accuracy",
                     "test loss")


def seed_rows(runs):
    """Table rows per seed group: test accuracy and loss as mean +- sd over its finished seeds."""
    rows = []
    for name, members in seed_groups(runs).items():
        finished = [run.metrics for run in members if run.metrics is not None]
        acc = seeds.summary([m.get("test_accuracy") for m in finished])
        loss = seeds.summary([m.get("test_loss") for m in finished])
        steps = sorted({str(m.get("steps", "?")) for m in finished}) or ["unfinished"]
        rows.append([name, members[0].activation, str(members[0].config.get("dataset", "?")),
                     f"{acc[2]} of {len(members)}", "/".join(steps),
                     _mean_sd(acc, "{:.2%}"), _mean_sd(loss, "{:.4f}")])
    return rows


def _mean_sd(stats, fmt):
    mean, sd, n = stats
    if not n:
        return "-"
    return fmt.format(mean) + (f" ± {fmt.format(sd)}" if n > 1 else " (one seed)")


def seed_notes(runs):
    """One sentence per pair of groups: do their test accuracies differ by more than the seeds'
    spread (|mean_a - mean_b| > sd_a + sd_b)? Welch's t-test p value alongside."""
    stats = {name: seeds.summary([r.metrics.get("test_accuracy") for r in members if r.metrics])
             for name, members in seed_groups(runs).items()}
    names = [name for name, (_, _, n) in stats.items() if n > 1]
    notes = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            difference, spread, beyond, p = seeds.compare(stats[a], stats[b])
            verdict = ("differ by more than their seed spread" if beyond else
                       "are within their seed spread: no difference shown")
            notes.append(f"{a} vs {b}: test accuracies {verdict} (|difference| {difference:.2%}, "
                         f"sd sum {spread:.2%}; Welch's t-test p = {p:.2g})")
    return notes


# -----------------------------------------------------------------------------

def build_parser():
    p = argparse.ArgumentParser(
        description="Draw per-layer activation statistics, histograms and test curves of the runs "
                    "under LOGROOT (PNG figures and one self-contained report.html).")
    p.add_argument("logroot", metavar="LOGROOT",
                   help="a TensorBoard root: run folders (config.json + events) at any depth")
    p.add_argument("-o", "--out", metavar="OUT", help="output folder (default: LOGROOT/report)")
    p.error = usage_error
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    root = Path(args.logroot)
    out = Path(args.out) if args.out else root / "report"
    try:
        if not root.is_dir():
            raise UsageError(f"{root}: no such folder")
        runs = load_runs(root)
        if not runs:
            raise UsageError(f"no runs of this app under {root} (folders with config.json and "
                             f"an {EVENTS_PREFIX}* file)")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(f"cannot create {out}: {err.strerror or err}")
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        if depth_runs(runs):
            plot_depth_sweep(runs, out / "depth.png")
            print(f"wrote {out / 'depth.png'}")
            runs = [run for run in runs if run.config.get("sweep") != "depth"]
            if not runs:
                return 0
        written = write_figures(by_dataset(runs), out)
        write_html(root, written, out)
    except OSError as err:
        print(f"error: cannot write {err.filename or out}: {err.strerror or err}", file=sys.stderr)
        return 2
    print(f"{len(runs)} run(s): {', '.join(run.label for run in runs)}")
    for _, dataset_runs, _ in written:
        if seeds.has_seed_groups([run.label for run in dataset_runs]):
            print("\n".join(seed_notes(dataset_runs)))
    print(f"wrote {', '.join(str(folder / name) for _, _, folder in written for name in FIGURES)}"
          f", {out / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
