"""report.py's figure of scripts/depth_sweep.py's runs: the paper's Figure 1 (training loss by
depth) and each layer's activation std at the start and the end.
"""
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, ScalarFormatter

from avh.events import by_step, read_events
from avh.tags import GRADIENT_STAT_TAG, STAT_TAG, TRAIN_TAG
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


def per_layer(events, tag, depth):
    """(step-0 values, last values) of `tag` (a format with {layer}) for layers act1..actD, or None
    where a layer has no values (a run without gradients, say)."""
    series = [sorted(by_step(events.get(tag.format(layer=f"act{k}"), [])).items())
              for k in range(1, depth + 1)]
    if not all(series):
        return None
    return [float(points[0][1]) for points in series], [float(points[-1][1]) for points in series]


def signal_by_depth(runs):
    """{(depth, variant): {"forward": (first, last), "backward": (first, last) or None, "loss":
    (steps, losses)}}: each layer's activation std and gradient std at step 0 and at the end."""
    result = {}
    for (depth, variant), run in sorted(depth_runs(runs).items()):
        forward = STAT_TAG.replace("{stat}", "std")
        backward = GRADIENT_STAT_TAG.replace("{stat}", "std")
        wanted = {tag.format(layer=f"act{k}") for tag in (forward, backward)
                  for k in range(1, depth + 1)}
        events = read_events(run.folder, want=lambda t: t == LOSS_TAG or t in wanted)
        points = sorted(by_step(events.get(LOSS_TAG, [])).items())
        result[depth, variant] = {"forward": per_layer(events, forward, depth),
                                  "backward": per_layer(events, backward, depth),
                                  "loss": ([s for s, _ in points], [float(v) for _, v in points])}
    return result


def plot_depth_sweep(runs, path):
    """One column per depth. Top: training loss over steps per variant. Middle: each layer's
    activation std at step 0 (hollow, dashed) and at the end (filled), log scale, SELU's target 1
    dashed. Bottom: the same for the gradient's std (the backward signal): a line falling towards
    the first layer is a vanishing gradient, a rising one an exploding gradient."""
    signal = signal_by_depth(runs)
    depths = sorted({depth for depth, _ in signal})
    fig = Figure(figsize=(4.2 * len(depths) + 0.6, 10.6), layout="constrained")
    axes = fig.subplots(3, len(depths), squeeze=False)
    for col, depth in enumerate(depths):
        loss_ax, std_ax, grad_ax = axes[:, col]
        for (d, variant), values in signal.items():
            if d != depth:
                continue
            colour = DEPTH_COLOURS.get(variant, "C7")
            loss_ax.plot(*values["loss"], color=colour, label=variant)
            layers = range(1, depth + 1)
            for ax, key in ((std_ax, "forward"), (grad_ax, "backward")):
                if values[key] is not None:
                    first, last = values[key]
                    ax.plot(layers, first, "o--", color=colour, mfc="none", ms=4, lw=1)
                    ax.plot(layers, last, "o-", color=colour, ms=4, lw=1.5, label=variant)
        loss_ax.set_title(f"{depth} hidden layers: training loss", fontsize=11)
        loss_ax.set_xlabel("step")
        loss_ax.set_yscale("log")
        loss_ax.yaxis.set_major_formatter(ScalarFormatter())
        loss_ax.yaxis.set_minor_formatter(ScalarFormatter())
        std_ax.axhline(1.0, color="0.35", ls="--", lw=1)
        std_ax.set_title(f"{depth} layers: activation std per layer (○ step 0, ● end)", fontsize=10)
        grad_ax.set_title(f"{depth} layers: gradient std per layer (○ step 0, ● end)", fontsize=10)
        for ax in (std_ax, grad_ax):
            ax.set_yscale("log")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("layer")
        std_ax.yaxis.set_major_formatter(ScalarFormatter())  # 0.6, 1, 2: not 6 x 10^-1
        std_ax.yaxis.set_minor_formatter(ScalarFormatter())
        for ax in (loss_ax, std_ax, grad_ax):
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("training loss (running mean)")
    axes[1, 0].set_ylabel("activation std on the probe batch")
    axes[2, 0].set_ylabel("std of dloss/d(layer output)")
    axes[0, 0].legend(fontsize=9)
    fig.savefig(path, dpi=DPI)


def depth_table(runs):
    """Markdown rows: per depth and variant, the activation std and the gradient std of the first
    and last hidden layers at step 0 and at the end, and how many times larger the first layer's
    gradient is than the last's (above 1: it grows going backward, below 1: it vanishes)."""
    lines = ["| depth | variant | step | activation std, layer 1 / last | gradient std, layer 1 / last | gradient, layer 1 over last |",
             "|---:|---|---|---:|---:|---:|"]
    for (depth, variant), values in signal_by_depth(runs).items():
        for when, index in (("0", 0), ("end", 1)):
            forward = values["forward"][index] if values["forward"] else None
            backward = values["backward"][index] if values["backward"] else None
            f = f"{forward[0]:.3g} / {forward[-1]:.3g}" if forward else "-"
            b = f"{backward[0]:.3g} / {backward[-1]:.3g}" if backward else "-"
            ratio = f"{backward[0] / backward[-1]:.3g}" if backward and backward[-1] else "-"
            lines.append(f"| {depth} | {variant} | {when} | {f} | {b} | {ratio} |")
    return lines
