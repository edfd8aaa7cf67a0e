"""What a run writes to TensorBoard about its activations: tag names, the per-layer summaries
on the probe batch, and the tfplot figures (drawn off the training thread).

Tag names are defined here once; train.py, scripts/ and tests import them.
"""
import math
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import tensorflow as tf
import tfplot
from tensorboard.plugins.histogram import metadata as histogram_metadata
from mpl_toolkits.axes_grid1 import make_axes_locatable

from model import layer_tag

# TensorBoard tags (a contract: the report script and the tests read these).
HISTOGRAM_TAG = "activations/{layer}"                 # e.g. activations/3_conv3
STAT_TAG = "activation_stats/{layer}/{stat}"          # stat in STATS
STATS = ("mean", "std", "nonpositive_fraction")
PLOT_TAG = "activation_plots/{layer}/{kind}"          # kind in PLOT_KINDS
PLOT_KINDS = ("map", "histogram")
TRAIN_TAG = "train/{metric}"                          # metric: loss, accuracy
TEST_TAG = "test/{metric}"

HISTOGRAM_BUCKETS = 30  # TensorBoard's default
FIGURE_BINS = 80
FIGURE_TIME_SHARE = 0.02  # of the run's time, at most, for drawing figures
FIGURE_INCHES = 4.0
FIGURE_DPI = 80
_HISTOGRAM_METADATA = histogram_metadata.create_summary_metadata(display_name=None, description=None)


class StepCallback(keras.callbacks.Callback):
    """A callback that knows the global step of each batch without reading the optimizer's
    step variable every batch (a read costs ~30 us, 1% of a small step)."""

    def on_train_begin(self, logs=None):
        self.first_step = int(self.model.optimizer.iterations)

    def global_step(self, batch):
        """The optimizer step that batch `batch` of this fit() call has just completed."""
        return self.first_step + batch + 1


class ActivationLogger(StepCallback):
    """Every `every` steps, runs the probe batch through the network in inference mode and logs,
    for each of the six layers, a histogram and its mean/std/non-positive fraction; then hands
    the `plot_layers` outputs to `figures` to draw.

    The same probe images in every run of a data set make runs comparable step for step.
    """

    def __init__(self, probe, probe_images, writer, every, plot_layers, figures):
        super().__init__()
        self.probe, self.probe_images, self.writer = probe, probe_images, writer
        self.every, self.plot_layers, self.figures = every, tuple(plot_layers), figures
        self.last_step = None
        self._figure_data = {}  # the last step's, kept for a later wait_for_figures request
        self._summarise = tf.function(self._summarise_probe)

    def on_train_batch_end(self, batch, logs=None):
        step = self.global_step(batch)
        if step % self.every == 0:
            self.log(step)

    def log(self, step, wait_for_figures=False):
        """Log the probe summaries for `step` once, and its figures (drawn at once if asked:
        the last step's figures must not be lost to the time share)."""
        if step != self.last_step:
            self.last_step = step
            self.writer.set_as_default()  # not `with writer.as_default()`: leaving that flushes
            figure_data = self._summarise(self.probe_images, tf.constant(step, tf.int64))
            self._figure_data = {k: {name: value.numpy() for name, value in data.items()}
                                 for k, data in zip(self.plot_layers, figure_data)}
        if self.figures is not None and self.plot_layers:
            self.figures.submit(step, self._figure_data, wait=wait_for_figures)

    def _summarise_probe(self, images, step):
        """Histograms and statistics of all layers; returns the (small) inputs of the figures,
        already binned here so that the figure thread never touches the full activations."""
        outputs = self.probe(images, training=False)
        figure_data = []
        for k, out in enumerate(outputs, start=1):
            values = tf.reshape(tf.cast(out, tf.float32), [-1])  # logs stay float32
            layer = layer_tag(k)
            tf.summary.write(HISTOGRAM_TAG.format(layer=layer), histogram_buckets(values),
                             step=step, metadata=_HISTOGRAM_METADATA)
            stats = {
                "mean": tf.reduce_mean(values),
                "std": tf.math.reduce_std(values),
                "nonpositive_fraction": tf.reduce_mean(tf.cast(values <= 0, tf.float32)),
            }
            for stat in STATS:
                tf.summary.scalar(STAT_TAG.format(layer=layer, stat=stat), stats[stat], step=step)
            if k in self.plot_layers:
                # The figure's range always shows N(0, 1)'s [-4, 4], and every value.
                low = tf.minimum(tf.reduce_min(values), -4.0)
                high = tf.maximum(tf.reduce_max(values), 4.0)
                figure_data.append({
                    "first_example": tf.cast(outputs[k - 1][0], tf.float32),
                    "counts": tf.histogram_fixed_width(values, tf.stack([low, high]), FIGURE_BINS),
                    "range": tf.stack([low, high]), "mean": stats["mean"], "std": stats["std"]})
        return figure_data


def histogram_buckets(values, bucket_count=HISTOGRAM_BUCKETS):
    """The [bucket_count, 3] float64 (left edge, right edge, count) tensor that TensorBoard's
    histogram dashboards read, computed in O(n): tf.summary.histogram builds an n x buckets
    one-hot matrix, 1 GB for CIFAR-10's first layer on the probe batch."""
    low, high = tf.reduce_min(values), tf.reduce_max(values)
    high = tf.where(high > low, high, low + 1.0)  # a constant layer gets one unit-wide range
    counts = tf.histogram_fixed_width(values, tf.stack([low, high]), nbins=bucket_count)
    edges = tf.linspace(tf.cast(low, tf.float64), tf.cast(high, tf.float64), bucket_count + 1)
    return tf.stack([edges[:-1], edges[1:], tf.cast(counts, tf.float64)], axis=1)


class FigureRenderer:
    """Draws the activation figures on one low-priority background thread and logs them with
    tf.summary.image, so that matplotlib never holds up a training step.

    Drawing still takes CPU and Python's GIL from training (~40 ms a figure here), so figures
    get at most FIGURE_TIME_SHARE of the run's time: after an event whose drawing took t seconds
    of CPU time, the next summary events are skipped (counted in `skipped`) for
    t / FIGURE_TIME_SHARE seconds. Events with wait=True (the first and the last) are always drawn.
    """

    def __init__(self, writer):
        self.writer = writer
        self.skipped = 0
        self.failed = None
        self._pending = None
        self._submitted_step = None
        self._next_draw = 0.0  # time.monotonic() before which new figures are skipped
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="avh-figures",
                                        initializer=_lower_thread_priority)

    def submit(self, step, layers, wait=False):
        """Queue the figures of `layers` ({layer number: its figure data, see ActivationLogger})."""
        if step == self._submitted_step:
            return
        busy = self._pending is not None and not self._pending.done()
        if not wait and (busy or time.monotonic() < self._next_draw):
            self.skipped += 1
            return
        if busy:
            self._pending.result()
        self._submitted_step = step
        self._pending = self._pool.submit(self.draw_and_log, step, layers)

    def close(self):
        """Wait for the figures in flight; report a drawing failure once instead of crashing."""
        self._pool.shutdown(wait=True)
        if self.failed:
            print(f"warning: activation figures could not be drawn ({self.failed})", file=sys.stderr)

    def draw_and_log(self, step, layers):
        """Draw and log one event's figures on the calling thread."""
        cpu_start = time.thread_time()  # CPU time: a busy machine must not inflate the cost
        try:
            self.writer.set_as_default()  # for this thread; no flush (see ActivationLogger.log)
            for k, data in layers.items():
                layer = layer_tag(k)
                figures = {"map": activation_map_figure(data["first_example"], layer),
                           "histogram": histogram_figure(data["counts"], data["range"],
                                                         data["mean"], data["std"], layer)}
                for kind in PLOT_KINDS:
                    tf.summary.image(PLOT_TAG.format(layer=layer, kind=kind),
                                     figures[kind][np.newaxis], step=step)
        except Exception as err:  # a figure is never worth a lost training run
            self.failed = f"{type(err).__name__}: {err}"
        cost = time.thread_time() - cpu_start
        self._next_draw = time.monotonic() + cost / FIGURE_TIME_SHARE


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
    """RGBA image of one probe example's activations at `layer`, tiled, with a colour bar."""
    grid = tile(activations)
    fig, ax = tfplot.subplots(figsize=(FIGURE_INCHES, FIGURE_INCHES), dpi=FIGURE_DPI)
    image = ax.imshow(grid, cmap="viridis", interpolation="nearest")
    colour_axes = make_axes_locatable(ax).append_axes("right", size="4%", pad=0.05)
    fig.colorbar(image, cax=colour_axes)
    shape = "x".join(str(n) for n in np.shape(activations))
    ax.set_title(f"{layer} ({shape}), probe image 0", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.subplots_adjust(left=0.04, right=0.90, bottom=0.04, top=0.92)
    return tfplot.figure.to_array(fig)


def histogram_figure(counts, value_range, mean, std, layer):
    """RGBA image of the distribution of `layer`'s values over the probe batch (pre-binned
    `counts` over `value_range`), with its mean and std, and the standard normal density
    that SELU drives activations towards."""
    low, high = (float(v) for v in value_range)
    edges = np.linspace(low, high, len(counts) + 1)
    density = counts / max(counts.sum(), 1) / np.diff(edges)
    fig, ax = tfplot.subplots(figsize=(FIGURE_INCHES, FIGURE_INCHES), dpi=FIGURE_DPI)
    ax.stairs(density, edges, fill=True, alpha=0.6, label="activations")
    x = np.linspace(low, high, 200)
    ax.plot(x, np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi), "k--", lw=1, label="N(0, 1)")
    ax.set_title(f"{layer}: mean {float(mean):+.3f}, std {float(std):.3f}", fontsize=9)
    ax.set_xlim(low, high)
    ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.12, right=0.96, bottom=0.08, top=0.92)
    return tfplot.figure.to_array(fig)
