"""report.py's figures of a data set's runs: per-layer statistics over training, the last
histograms, test curves, the paper's moments and moment maps, and their seed-group versions.
matplotlib's Figure only, never pyplot. Colours come from avh.palette, as in the dashboard.
"""
import math

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state
from matplotlib.ticker import MaxNLocator, PercentFormatter

from avh import palette, theory
from avh.tags import HISTOGRAM_TAG, MOMENT_TAG, STAT_TAG, TEST_SUBSET_TAG, TEST_TAG
from avh.theory_figures import draw_moment_map
from avh_app import seeds
from avh_app.report.runs import TEST_METRICS
from model import LAYERS, PLOT_LAYERS, layer_tag

# The two statistics with a SELU target, and the third (names from avh.tags.STATS; a test checks).
STAT_TARGETS = {"mean": 0.0, "std": 1.0}  # SELU's fixed point: zero mean, unit variance
NONPOSITIVE = "nonpositive_fraction"
DPI = 100
MAX_COLUMNS = 4                           # histogram panels side by side; more runs wrap


def run_colours(runs):
    """[colour of each run]: its activation's colour, in shades from dark to light when several
    runs share the activation (seeds, settings)."""
    from matplotlib.colors import to_rgb

    same = {}
    for run in runs:
        same.setdefault(run.activation, []).append(run)
    colours = []
    for run in runs:
        base = np.array(to_rgb(palette.colour(run.activation, key=run.label)))
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
    fig = Figure(figsize=(3.4 * columns + 0.4, 3.0 * rows * len(PLOT_LAYERS) + 0.4),
                 layout="constrained")
    grid = fig.subplots(rows * len(PLOT_LAYERS), columns, squeeze=False)
    for block, k in enumerate(PLOT_LAYERS):
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
            ax.plot(x, theory.normal_density(x), "k--", lw=1, label="N(0, 1)")
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


def seed_groups(runs):
    """{group name: [runs]} (`selu/seed0`, `selu/seed1` -> `selu`), in the runs' order."""
    return {name: [runs[i] for i in indices]
            for name, indices in seeds.group_by_seed([run.label for run in runs]).items()}


def group_colour(members):
    """A seed group is drawn in its activation's fixed colour."""
    return palette.colour(members[0].activation, key=members[0].label)


def plot_histograms_by_seed(runs, path):
    """One panel per group and layer (3 and 4): the seeds' last histograms pooled (their
    densities averaged on common bins), N(0, 1) dashed."""
    groups = seed_groups(runs)
    fig = Figure(figsize=(3.4 * len(groups) + 0.4, 3.0 * len(PLOT_LAYERS) + 0.4),
                 layout="constrained")
    grid = fig.subplots(len(PLOT_LAYERS), len(groups), squeeze=False)
    for row, k in enumerate(PLOT_LAYERS):
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
            ax.plot(x, theory.normal_density(x), "k--", lw=1, label="N(0, 1)")
            ax.set_ylim(0, min(max(float(density.max()), 0.45), 1.2) * 1.05)
            ax.set_xlabel("activation")
            ax.set_ylabel("density")
    fig.savefig(path, dpi=DPI)


FIGURES = {  # file name -> (drawing function, heading on the page)
    "stats.png": (plot_stats, "Activation mean and std per layer over training"),
    "histograms.png": (plot_histograms,
                       "Activation histograms of layers "
                       f"{' and '.join(layer_tag(k) for k in PLOT_LAYERS)} at the last step"),
    "test_curves.png": (plot_test_curves, "Test accuracy and loss"),
    "moments.png": (plot_moments,
                    "The paper's view per layer: weights (tau), input correlation, predicted std"),
    "moment_maps.png": (plot_moment_maps,
                        "SELU's moment map with each layer's (mean, variance) over training"),
}
# Runs of several seeds: these figures draw seed groups instead.
SEED_FIGURES = {"stats.png": lambda runs, path: plot_stats(runs, path, by_seed=True),
                "histograms.png": plot_histograms_by_seed}


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
