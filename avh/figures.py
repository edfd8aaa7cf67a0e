"""The activation figures: tfplot images of one layer's output (an activation map of one probe
example, and its distribution against N(0, 1)), drawn on a background thread within a time budget.

Drawing only: what to draw arrives pre-binned from ActivationSummaries; nothing here trains.
"""
import math
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import matplotlib
import numpy as np
import tensorflow as tf
import tfplot
from mpl_toolkits.axes_grid1 import make_axes_locatable

from avh.figure_rules import (DENSITY_CAP, HISTOGRAM_BINS, HISTOGRAM_RANGE, MAP_LIMIT,
                              map_channels)
from avh.moments import MOMENT_MAP_KEY
from avh.tags import MOMENT_MAP_TAG, PLOT_KINDS, PLOT_TAG
from avh.theory_figures import moment_map_figure

FIGURE_TIME_SHARE = 0.02  # of the run's time, at most, for drawing figures
# 640x400 px with 14-16 pt text. TensorBoard's Time Series cards show an image ~215 px high (at
# 1600 px, settings open): a wide figure is shown ~345 px wide there, its text ~10 px high.
FIGURE_INCHES = (6.4, 4.0)
FIGURE_DPI = 100
TITLE_PT, TICK_PT = 16, 14
OVERFLOW_WIDTH = 0.5  # of the bars outside the histogram range that hold the values beyond it


class FigureRenderer:
    """Draws the activation figures on one low-priority background thread and logs them with
    tf.summary.image, so that matplotlib never holds up a training step.

    Drawing still takes CPU and Python's GIL from training (~40 ms a figure here), so figures
    get at most FIGURE_TIME_SHARE of the run's time: after an event whose drawing took t seconds
    of CPU time, the next summary events are skipped (counted in `skipped`) for
    t / FIGURE_TIME_SHARE seconds. Events with wait=True (the first and the last) are always drawn.
    """

    def __init__(self, writer, time_share=FIGURE_TIME_SHARE, clock=time.monotonic):
        self._writer = writer if callable(writer) else (lambda: writer)
        self.time_share, self._clock = time_share, clock
        self.skipped = 0
        self.failed = None
        self._pending = None
        self._submitted_step = None
        self._skipped_step = None
        self._next_draw = 0.0  # time.monotonic() before which new figures are skipped
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="avh-figures",
                                        initializer=_lower_thread_priority)

    def submit(self, step, layers, wait=False):
        """Queue the figures of `layers` ({tag name: its figure data, see ActivationSummaries})."""
        if step == self._submitted_step:
            return
        busy = self._pending is not None and not self._pending.done()
        if not wait and (busy or self._clock() < self._next_draw):
            self.skipped += 1
            self._skipped_step = step
            return
        if step == self._skipped_step:  # skipped a moment ago, drawn after all (the last step)
            self.skipped -= 1
            self._skipped_step = None
        if busy:
            self._pending.result()
        self._submitted_step = step
        self._pending = self._pool.submit(self.draw_and_log, step, layers)

    def wait(self):
        """Wait for the figures in flight."""
        if self._pending is not None:
            self._pending.result()

    def close(self):
        """Wait for the figures in flight; report a drawing failure once instead of crashing."""
        self._pool.shutdown(wait=True)
        if self.failed:
            print(f"warning: activation figures could not be drawn ({self.failed})", file=sys.stderr)

    def draw_and_log(self, step, layers):
        """Draw and log one event's figures on the calling thread."""
        cpu_start = time.thread_time()  # CPU time: a busy machine must not inflate the cost
        try:
            self._writer().set_as_default()  # for this thread; no flush (see ActivationSummaries.log)
            self.draw_figures(step, layers)
        except Exception as err:  # a figure is never worth a lost training run
            self.failed = f"{type(err).__name__}: {err}"
        cost = time.thread_time() - cpu_start
        self._next_draw = self._clock() + cost / self.time_share


    def draw_figures(self, step, layers):
        for layer, data in layers.items():
            if layer == MOMENT_MAP_KEY:  # {layer: [(mean, variance), ...]} over training
                image = moment_map_figure(list(data.items()),
                                          title=f"SELU layers' (mean, variance), steps 0-{step}")
                tf.summary.image(MOMENT_MAP_TAG, image[np.newaxis], step=step)
                continue
            figures = {"map": activation_map_figure(data["first_example"], layer),
                       "histogram": histogram_figure(data["counts"], data["mean"],
                                                     data["std"], layer)}
            for kind in PLOT_KINDS:
                tf.summary.image(PLOT_TAG.format(layer=layer, kind=kind),
                                 figures[kind][np.newaxis], step=step)


def _lower_thread_priority():
    """On Linux `setpriority` on a thread id renices that thread only: figures use idle CPU."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


def tile(activations):
    """Lay one example's activations out as a 2-D grid: an (H, W, C) map becomes a near-square
    mosaic of its C channel maps, one NaN pixel between them (4x4x256 -> 16x16 tiles); a vector
    of U units becomes a near-square grid of U cells."""
    a = np.asarray(activations, dtype=np.float32)
    if a.ndim == 1:
        a = a.reshape(1, 1, -1)
    h, w, c = a.shape
    rows = _grid_rows(c)
    cols = c // rows
    gap = 1 if h * w > 1 else 0
    padded = np.full((h + gap, w + gap, c), np.nan, dtype=np.float32)
    padded[:h, :w] = a
    grid = padded.reshape(h + gap, w + gap, rows, cols).transpose(2, 0, 3, 1)
    grid = grid.reshape(rows * (h + gap), cols * (w + gap))
    return grid[:grid.shape[0] - gap, :grid.shape[1] - gap]


def _grid_rows(n):
    """The largest divisor of n that is at most sqrt(n), so the grid is as square as n allows."""
    return max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)


def activation_map_figure(activations, layer):
    """RGBA image of one probe example's activations at `layer` on the fixed colour scale
    [-MAP_LIMIT, MAP_LIMIT] (diverging: 0 is white), a conv layer's first MAP_CHANNELS channels
    tiled, with a colour bar."""
    shown, caption = map_channels(np.asarray(activations, dtype=np.float32))
    grid = tile(shown)
    fig, ax = tfplot.subplots(figsize=FIGURE_INCHES, dpi=FIGURE_DPI)
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.8")  # grey gaps between channels
    image = ax.imshow(grid, cmap=cmap, vmin=-MAP_LIMIT, vmax=MAP_LIMIT, interpolation="nearest")
    colour_axes = make_axes_locatable(ax).append_axes("right", size="5%", pad=0.1)
    fig.colorbar(image, cax=colour_axes, extend="both")
    colour_axes.tick_params(labelsize=TICK_PT)
    size = "x".join(str(n) for n in np.shape(activations)[:2]) if np.ndim(activations) == 3 else ""
    ax.set_title(f"{layer}, image 0: {caption}" + (f" ({size})" if size else ""), fontsize=TITLE_PT)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.subplots_adjust(left=0.02, right=0.90, bottom=0.03, top=0.88)
    return tfplot.figure.to_array(fig)


def histogram_figure(counts, mean, std, layer):
    """RGBA image of the distribution of `layer`'s values over the probe batch (`counts` from
    figure_rules.binned) on the fixed axes of figure_rules, with its mean and std and the
    standard normal density that SELU drives activations towards. Values beyond the range are
    drawn as hatched bars outside it, labelled with their share; a peak above DENSITY_CAP is
    clipped and its height written beside it."""
    low, high = HISTOGRAM_RANGE
    counts = np.asarray(counts, dtype=np.float64)
    total = max(counts.sum(), 1.0)
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
    density = counts[1:-1] / total / np.diff(edges)
    fig, ax = tfplot.subplots(figsize=FIGURE_INCHES, dpi=FIGURE_DPI)
    ax.stairs(np.minimum(density, DENSITY_CAP), edges, fill=True, alpha=0.6, label="activations")
    x = np.linspace(low, high, 300)
    ax.plot(x, np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi), "k--", lw=1.5, label="N(0, 1)")
    width = OVERFLOW_WIDTH
    for share, left, text_x, align in ((counts[0] / total, low - width, low - width, "left"),
                                       (counts[-1] / total, high, high + width, "right")):
        if share > 0:  # the bar's area is the share of values beyond the range
            ax.bar(left, min(share / width, DENSITY_CAP), width=width, align="edge",
                   color="C1", alpha=0.7, hatch="//")
            ax.text(text_x, min(share / width, DENSITY_CAP) + 0.03, f"{share:.1%}" if share >= 0.001 else "<0.1%", ha=align,
                    va="bottom", fontsize=TICK_PT)
    peak = density.max(initial=0.0)
    if peak > DENSITY_CAP:
        at = edges[np.argmax(density)] + 0.5 * np.diff(edges)[0]
        ax.annotate(f"peak {peak:.1f}", (at, DENSITY_CAP), xytext=(at + 0.4, 0.9 * DENSITY_CAP),
                    fontsize=TICK_PT, ha="left", va="top",
                    arrowprops={"arrowstyle": "->", "lw": 1})
    ax.set_xlim(low - width, high + width)
    ax.set_ylim(0, DENSITY_CAP * 1.08)
    ax.axvline(low, color="0.6", lw=0.8)
    ax.axvline(high, color="0.6", lw=0.8)
    ax.tick_params(labelsize=TICK_PT)
    ax.set_title(f"{layer}: mean {float(mean):+.2f}, std {float(std):.2f}", fontsize=TITLE_PT)
    ax.legend(fontsize=TICK_PT, loc="upper right", frameon=False)
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.11, top=0.88)
    return tfplot.figure.to_array(fig)
