"""report.py's figure of scripts/depth_sweep.py's runs: the paper's Figure 1 (training loss by
depth) and each layer's activation std at the start and the end.
"""
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, ScalarFormatter

from avh.events import by_step, read_events
from avh.tags import STAT_TAG, TRAIN_TAG
from avh_app.report.figures import DPI

DEPTH_COLOURS = {"selu": "C0", "relu-bn": "C1", "relu": "C3"}
LOSS_TAG = TRAIN_TAG.format(metric="loss")


def sweep_of(config):
    """(depth, variant) of a depth sweep's run from its config.json, or None for any other run:
    the `sweep` record, or the top-level keys that sweeps wrote before they ran through
    avh_app.run."""
    sweep = config.get("sweep")
    if isinstance(sweep, dict) and sweep.get("name") == "depth":
        return sweep["depth"], sweep["variant"]
    if sweep == "depth":
        return config["depth"], config["variant"]
    return None


def depth_runs(runs):
    """The runs of depth sweeps among `runs`, by (depth, variant)."""
    return {sweep_of(r.config): r for r in runs if sweep_of(r.config) is not None}


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
            stds = {STAT_TAG.format(layer=f"act{k}", stat="std") for k in range(1, depth + 1)}
            events = read_events(run.folder, want=lambda t: t == LOSS_TAG or t in stds)
            colour = DEPTH_COLOURS.get(variant, "C7")
            steps, losses = zip(*sorted(by_step(events.get(LOSS_TAG, [])).items())) or ((), ())
            loss_ax.plot(steps, [float(v) for v in losses], color=colour, label=variant)
            layers = range(1, depth + 1)
            series = [sorted(by_step(events.get(STAT_TAG.format(layer=f"act{k}", stat="std"),
                                                [])).items()) for k in layers]
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
