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

import numpy as np
import tensorflow as tf
import tfplot
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mpl_toolkits.axes_grid1 import make_axes_locatable
from tensorboard.plugins.image import metadata as image_metadata

from avh.moments import MOMENT_MAP_KEY
from avh.tags import MOMENT_MAP_TAG, PLOT_KINDS, PLOT_TAG
from avh.theory_figures import FIGURE_DPI as MOMENT_MAP_DPI
from avh.theory_figures import FIGURE_INCHES as MOMENT_MAP_INCHES
from avh.theory_figures import _as_trajectory, _limits_holding, draw_moment_map

FIGURE_TIME_SHARE = 0.02  # of the run's time, at most, for drawing figures
FIGURE_INCHES = 4.0
FIGURE_DPI = 80
_IMAGE_METADATA = image_metadata.create_summary_metadata(display_name=None, description=None)


class FigureRenderer:
    """Draws the activation figures on one low-priority background thread and logs them with
    tf.summary.image, so that matplotlib never holds up a training step.

    Drawing still takes CPU and Python's GIL from training (a few ms a figure here, reused; see
    ReusedFigures), so figures get at most FIGURE_TIME_SHARE of the run's time: an event is drawn
    only if the CPU time of the events drawn so far plus the last one's stays within that share
    of the time since the first event; others are skipped (counted in `skipped`). Events with
    wait=True (the first and the last) are always drawn and not metered: the first also builds
    the figures, a one-off cost.
    """

    def __init__(self, writer, time_share=FIGURE_TIME_SHARE, clock=time.monotonic):
        self._writer = writer if callable(writer) else (lambda: writer)
        self.time_share, self._clock = time_share, clock
        self.skipped = 0
        self.failed = None
        self._pending = None
        self._submitted_step = None
        self._skipped_step = None
        self._started = None    # clock() at the first event
        self._spent = 0.0       # CPU seconds of the metered events drawn so far
        self._last_cost = 0.0   # ... and of the last of them: the next one's forecast
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="avh-figures",
                                        initializer=_lower_thread_priority)
        self.reused = ReusedFigures()  # touched by the drawing thread only

    def submit(self, step, layers, wait=False):
        """Queue the figures of `layers` ({tag name: its figure data, see ActivationSummaries})."""
        if step == self._submitted_step:
            return
        busy = self._pending is not None and not self._pending.done()
        if self._started is None:
            self._started = self._clock()
        allowed = self.time_share * (self._clock() - self._started)
        if not wait and (busy or self._spent + self._last_cost > allowed):
            self.skipped += 1
            self._skipped_step = step
            return
        if step == self._skipped_step:  # skipped a moment ago, drawn after all (the last step)
            self.skipped -= 1
            self._skipped_step = None
        if busy:
            self._pending.result()
        self._submitted_step = step
        self._pending = self._pool.submit(self.draw_and_log, step, layers, not wait)

    def wait(self):
        """Wait for the figures in flight."""
        if self._pending is not None:
            self._pending.result()

    def close(self):
        """Wait for the figures in flight; report a drawing failure once instead of crashing."""
        self._pool.shutdown(wait=True)
        if self.failed:
            print(f"warning: activation figures could not be drawn ({self.failed})", file=sys.stderr)

    def draw_and_log(self, step, layers, metered=False):
        """Draw and log one event's figures on the calling thread."""
        cpu_start = time.thread_time()  # CPU time: a busy machine must not inflate the cost
        try:
            self._writer().set_as_default()  # for this thread; no flush (see ActivationSummaries.log)
            self.draw_figures(step, layers)
        except Exception as err:  # a figure is never worth a lost training run
            self.failed = f"{type(err).__name__}: {err}"
        if metered:
            self._last_cost = time.thread_time() - cpu_start
            self._spent += self._last_cost


    def draw_figures(self, step, layers):
        for layer, data in layers.items():
            if layer == MOMENT_MAP_KEY:  # {layer: [(mean, variance), ...]} over training
                image = self.reused.draw(MOMENT_MAP_KEY, build_moment_map, list(data.items()),
                                         f"SELU layers' (mean, variance), steps 0-{step}",
                                         figsize=MOMENT_MAP_INCHES, dpi=MOMENT_MAP_DPI)
                log_image(MOMENT_MAP_TAG, image, step)
                continue
            figures = {"map": self.reused.draw(("map", layer, np.shape(data["first_example"])),
                                               build_activation_map, data["first_example"], layer),
                       "histogram": self.reused.draw(("histogram", layer), build_histogram,
                                                     data["counts"], data["range"], data["mean"],
                                                     data["std"], layer)}
            for kind in PLOT_KINDS:
                log_image(PLOT_TAG.format(layer=layer, kind=kind), figures[kind], step)


def log_image(tag, image, step):
    """tf.summary.image's event for one RGB(A) uint8 image, in two TensorFlow ops instead of its
    dozen eager ones (a third of a figure event's time): [width, height, PNG] under the image
    plugin's metadata, as TensorBoard reads it."""
    height, width = image.shape[:2]
    png = tf.io.encode_png(image, compression=1)  # zlib's fastest: 5x faster, ~10% larger
    tf.summary.write(tag, tf.stack([tf.constant(str(width)), tf.constant(str(height)), png]),
                     step=step, metadata=_IMAGE_METADATA)


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


# -----------------------------------------------------------------------------
# Reused figures: building a figure and drawing its axes, ticks and text is most of its cost, so
# each kind of figure is built once per layer, its static part kept as pixels, and later events
# draw only the artists whose data changed on top (matplotlib's blitting, on an Agg canvas).

class ReusedFigures:
    """Figures kept between events, keyed by kind (any hashable, e.g. ("map", layer, shape)).

    `draw(key, build, *data)`: the first time, `build(fig)` makes the figure's artists on a new
    Agg figure and returns `update(*data) -> (layout, changing artists[, static artists on top])`.
    `update` puts new data into the artists; `layout` is whatever fixes the static part (axis
    limits, colour range): when it is unchanged, only the changing artists (made `animated`, so a
    full draw leaves them out) are drawn over the saved static pixels, and the pixels of the
    static artists on top (a legend) are put back over them. Nothing here depends on what a figure shows:
    a new kind of figure is one build function. Agg canvases only, no pyplot, so any one
    thread may draw (not two at once)."""

    def __init__(self):
        self.full_draws = 0
        self._figures = {}

    def draw(self, key, build, *data, figsize=(FIGURE_INCHES, FIGURE_INCHES), dpi=FIGURE_DPI):
        """The figure of `key` with `data` as an RGBA uint8 array (height, width, 4)."""
        entry = self._figures.get(key)
        if entry is None:
            fig = Figure(figsize=figsize, dpi=dpi)
            entry = self._figures[key] = {"canvas": FigureCanvasAgg(fig), "fig": fig,
                                          "update": build(fig), "layout": None}
        canvas, fig = entry["canvas"], entry["fig"]
        layout, changing, *on_top = entry["update"](*data)
        on_top = on_top[0] if on_top else []
        if layout != entry["layout"]:
            canvas.draw()  # the static part: animated artists are left out
            entry["background"], entry["layout"] = canvas.copy_from_bbox(fig.bbox), layout
            entry["on_top"] = [canvas.copy_from_bbox(a.get_window_extent(canvas.get_renderer()))
                               for a in on_top]
            self.full_draws += 1
        canvas.restore_region(entry["background"])
        for artist in changing:
            fig.draw_artist(artist)
        for pixels in entry["on_top"]:
            canvas.restore_region(pixels)
        return np.asarray(canvas.buffer_rgba()).copy()


def build_activation_map(fig):
    """activation_map_figure on a reused figure: the colour range is rounded outward to a nice
    step so that the colour bar (static) is redrawn only when the range grows or shrinks."""
    ax = fig.add_subplot()
    image = ax.imshow(np.zeros((1, 1)), cmap="viridis", interpolation="nearest", animated=True)
    colour_axes = make_axes_locatable(ax).append_axes("right", size="4%", pad=0.05)
    fig.colorbar(image, cax=colour_axes)
    title = ax.set_title("", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.subplots_adjust(left=0.04, right=0.90, bottom=0.04, top=0.92)

    def update(activations, layer):
        grid = tile(activations)
        finite = grid[np.isfinite(grid)]
        low, high = _nice_range(*((finite.min(), finite.max()) if finite.size else (0.0, 1.0)))
        image.set_data(grid)
        image.set_extent((-0.5, grid.shape[1] - 0.5, grid.shape[0] - 0.5, -0.5))
        image.set_clim(low, high)
        shape = "x".join(str(n) for n in np.shape(activations))
        title.set_text(f"{layer} ({shape}), probe image 0")
        return (low, high, grid.shape, title.get_text()), [image]
    return update


def build_histogram(fig):
    """histogram_figure on a reused figure: axis limits rounded outward to nice values, so the
    axes, ticks and the N(0, 1) curve (static) are redrawn only when the limits change."""
    ax = fig.add_subplot()
    bars = ax.stairs([0.0], [0.0, 1.0], fill=True, alpha=0.6, label="activations", animated=True)
    normal, = ax.plot([], [], "k--", lw=1, label="N(0, 1)", animated=True)  # over the bars
    title = ax.set_title("", fontsize=9, animated=True)
    legend = ax.legend(fontsize=8)  # static, its pixels put back over the bars
    fig.subplots_adjust(left=0.12, right=0.96, bottom=0.08, top=0.92)

    def update(counts, value_range, mean, std, layer):
        edges, density = _density(counts, value_range)
        bars.set_data(density, edges)
        title.set_text(f"{layer}: mean {float(mean):+.3f}, std {float(std):.3f}")
        x_low, x_high = math.floor(edges[0]), math.ceil(edges[-1])
        top = _nice_range(0.0, max(float(np.max(density, initial=0)), 0.4))[1]
        layout = (x_low, x_high, top)
        if layout != getattr(update, "layout", None):
            update.layout = layout
            x = np.linspace(x_low, x_high, 200)
            normal.set_data(x, np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi))
            ax.set_xlim(x_low, x_high)
            ax.set_ylim(0, top)
        return layout, [bars, normal, title], [legend]
    return update


def _nice_range(low, high):
    """[low, high] widened outward to multiples of half a power of ten of their magnitude."""
    low, high = float(low), float(high)
    magnitude = max(abs(low), abs(high), 1e-6)
    step = 10.0 ** math.floor(math.log10(magnitude)) / 2
    low, high = math.floor(low / step) * step, math.ceil(high / step) * step
    return low, (high if high > low else low + step)


def _density(counts, value_range):
    low, high = (float(v) for v in value_range)
    edges = np.linspace(low, high, len(counts) + 1)
    return edges, counts / max(counts.sum(), 1) / np.diff(edges)


def build_moment_map(fig):
    """theory_figures.moment_map_figure on a reused figure: the arrows, fixed point and legend
    (static) are redrawn only when the limits, rounded outward, must grow to hold the paths."""
    ax = fig.add_subplot()
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.11, top=0.92)
    state = {"layout": None, "paths": []}

    def update(trajectories, title):
        (mu_low, mu_high), (nu_low, nu_high) = _limits_holding(
            [_as_trajectory(item, i) for i, item in enumerate(trajectories)])
        limits = (_nice_range(mu_low, mu_high), _nice_range(nu_low, nu_high))
        layout = (limits, tuple(label for label, _ in trajectories))
        if layout != state["layout"]:
            ax.clear()
            draw_moment_map(ax, trajectories, limits=limits, title=title)
            # draw_moment_map adds a line and its start and end markers per path, last
            lines = ax.lines[len(ax.lines) - 3 * len(trajectories):]
            state["paths"] = [lines[i:i + 3] for i in range(0, len(lines), 3)]
            state["layout"] = layout
            for artist in lines + [ax.title]:
                artist.set_animated(True)
        for (line, start, end), (_, points) in zip(state["paths"], trajectories):
            points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
            line.set_data(points[:, 0], points[:, 1])
            start.set_data(points[:1, 0], points[:1, 1])
            end.set_data(points[-1:, 0], points[-1:, 1])
        ax.title.set_text(title)
        return layout, [artist for path in state["paths"] for artist in path] + [ax.title]
    return update
