"""The activation figures: matplotlib images of one layer's output (an activation map of one probe
example, and its distribution against N(0, 1)), drawn on a background thread within a time budget.

Drawing only: what to draw arrives pre-binned from ActivationSummaries; nothing here trains.
"""
import math
import os
import struct
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import matplotlib
import numpy as np
from mpl_toolkits.axes_grid1 import make_axes_locatable

from avh import memory, summary_values, theory
from avh.figure_rules import (DENSITY_CAP, HISTOGRAM_BINS, HISTOGRAM_RANGE, MAP_LIMIT,
                              map_channels)
from avh.glyphs import TextPainter
from avh.moments import MOMENT_MAP_KEY
from avh.tags import MOMENT_MAP_TAG, PLOT_TAG
from avh.theory_figures import FIGURE_DPI as MOMENT_MAP_DPI
from avh.theory_figures import FIGURE_INCHES as MOMENT_MAP_INCHES
from avh.theory_figures import agg_figure, as_trajectory, draw_moment_map

FIGURE_TIME_SHARE = 0.02  # of the run's time, at most, for drawing figures
# 640x400 px with 14-16 pt text. TensorBoard's Time Series cards show an image ~215 px high (at
# 1600 px, settings open): a wide figure is shown ~345 px wide there, its text ~10 px high.
FIGURE_INCHES = (6.4, 4.0)
FIGURE_DPI = 100
TITLE_PT, TICK_PT = 16, 14
# The moment map over training: (mean, variance) limits at the start, the variance on a log axis.
# They hold the paths of a one-epoch SELU run on MNIST at the defaults (up to (2.6, 61)), so that
# run never redraws its axes; the fixed point (0, 1) stays clear of the edges.
TRAINING_MOMENT_LIMITS = ((-1.0, 3.0), (0.1, 100.0))
OVERFLOW_WIDTH = 0.5  # of the bars outside the histogram range that hold the values beyond it
# The peak's arrow, neither clipped to its label's box nor shrunk: clipping it cost 6 ms an event.
PEAK_ARROW = {"arrowstyle": "->", "lw": 1, "patchA": None, "shrinkA": 0, "shrinkB": 0,
              "relpos": (0.0, 0.5)}  # from the label's left edge (its leading spaces: a gap)


class FigureRenderer:
    """Draws the activation figures on one low-priority background thread and logs them with
    tf.summary.image, so that matplotlib never holds up a training step.

    Drawing still takes CPU and Python's GIL from training (a few ms a figure here, reused; see
    ReusedFigures), so figures get at most FIGURE_TIME_SHARE of the run's time: an event is drawn
    only if the CPU time of the events drawn so far plus the last one's stays within that share
    of the time since the first event; others are skipped (counted in `skipped`). Events with
    wait=True (the first and the last) are always drawn and not metered. Building a figure's
    static part is not metered either (ReusedFigures.build_seconds): the first event builds them
    all, and a moment map rebuilds its axes when a path leaves them, a few times a run at most
    (its limits grow by factors of 10; see build_moment_map for the cost), which would otherwise
    push the next several events over the share.
    """

    def __init__(self, writer, time_share=FIGURE_TIME_SHARE, clock=time.monotonic):
        self._writer = writer if callable(writer) else (lambda: writer)
        self.time_share, self._clock = time_share, clock
        self.skipped = 0
        self.drawn = 0          # events drawn, and their CPU time (building the figures apart)
        self.cpu_seconds = 0.0
        self.failed = None
        self._pending = None
        self._submitted_step = None
        self._skipped_step = None
        self._started = None    # clock() at the first event
        self._spent = 0.0       # CPU seconds of the metered events drawn so far
        self._last_cost = 0.0   # ... and of the last of them: the next one's forecast
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="avh-figures",
                                        initializer=_lower_thread_priority)
        self.reused = ReusedFigures()  # touched by the drawing thread only, as are
        self._encoders = {}            # {tag: its PngEncoder}

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
        built_before = self.reused.build_seconds
        try:
            self._writer().set_as_default()  # for this thread; no flush (see ActivationSummaries.log)
            self.draw_figures(step, layers)
        except Exception as err:  # a figure is never worth a lost training run
            self.failed = f"{type(err).__name__}: {err}"
        memory.release_freed()  # the drawing's temporary buffers, kept by this thread's arena
        built = self.reused.build_seconds - built_before
        spent = max(time.thread_time() - cpu_start - built, 0.0)
        self.drawn += 1
        self.cpu_seconds += spent
        if metered:
            self._last_cost = spent
            self._spent += spent

    def cpu_ms_per_event(self):
        """The CPU time an event's figures took on the drawing thread, on average (ms), without
        building them (ReusedFigures.build_seconds: the first event, a moment map's new axes)."""
        return 1000 * self.cpu_seconds / self.drawn if self.drawn else None


    def draw_figures(self, step, layers):
        """Draw an event's figures and write them, all in one call (avh.summary_values)."""
        images = {}
        for layer, data in layers.items():
            if layer == MOMENT_MAP_KEY:  # {layer: [(mean, variance), ...]} over training
                images[MOMENT_MAP_TAG] = self.reused.draw(
                    MOMENT_MAP_KEY, build_moment_map, list(data.items()),
                    "SELU layers' (mean, variance) over training",
                    figsize=MOMENT_MAP_INCHES, dpi=MOMENT_MAP_DPI)
                continue
            images[PLOT_TAG.format(layer=layer, kind="map")] = self.reused.draw(
                ("map", layer), build_activation_map, data["first_example"], layer)
            images[PLOT_TAG.format(layer=layer, kind="histogram")] = self.reused.draw(
                ("histogram", layer), build_histogram, data["counts"], data["mean"], data["std"],
                layer)
        encoders = [self._encoders.setdefault(tag, PngEncoder()) for tag in images]
        summary_values.write(step, [image_record(tag, image, encoder)
                                    for (tag, image), encoder in zip(images.items(), encoders)])


def image_record(tag, image, encoder=None):
    """The summary record of one RGB or RGBA uint8 image, PNG-encoded (`encoder`, a PngEncoder
    that saw this tag's earlier images, or encode_png)."""
    height, width = image.shape[:2]
    return summary_values.image(tag, (encoder or PngEncoder()).encode(image), width, height)


def encode_png(image):
    """An (H, W, 3) RGB or (H, W, 4) RGBA uint8 image as PNG bytes (PngEncoder, alone)."""
    return PngEncoder().encode(image)


class PngEncoder:
    """PNG bytes of one figure's images, event after event: every row "Up"-filtered (its
    difference from the row above: mostly zeros in a plot) and deflated at zlib's fastest level,
    a band of BAND_ROWS rows at a time. Each band is a deflate stream of its own, byte-aligned, so
    a band whose rows (and the row above them) are those of the last image encoded reuses its
    compressed bytes: a histogram's axes, legend and the rows above its bars, a moment map's
    arrows and all but the end of its paths are deflated once. Deflating a whole 640x400 figure
    is 2-3 ms, 25-30 kB (against 8-11 ms for tf.io.encode_png, whose libpng tries every filter on
    every row)."""

    BAND_ROWS = 16

    def __init__(self):
        self._pixels = None  # the last image's rows, as 32-bit words, and its compressed bands
        self._bands = []

    def encode(self, image):
        height, width, channels = image.shape
        pixels = np.ascontiguousarray(image, dtype=np.uint8).reshape(height, width * channels)
        words = pixels.view(np.uint8 if pixels.shape[1] % 4 else np.uint32)
        last = self._pixels
        if last is None or last.shape != words.shape or last.dtype != words.dtype:
            changed = np.ones(height, bool)
            self._bands = [None] * -(-height // self.BAND_ROWS)
        else:
            changed = (words != last).any(axis=1)
            changed[1:] |= changed[:-1]  # a row's filtered bytes depend on the row above
        self._pixels = words.copy()
        checksum = 1  # zlib's Adler-32 of the filtered bytes, band by band
        for band, start in enumerate(range(0, height, self.BAND_ROWS)):
            stop = min(start + self.BAND_ROWS, height)
            if changed[start:stop].any():  # every row, for a first image or a new size
                self._bands[band] = _deflate_band(pixels, start, stop)
            checksum = _adler32_combine(checksum, *self._bands[band][1:])
        colour_type = {3: 2, 4: 6}[channels]  # RGB, RGBA
        header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
        data = b"".join((b"\x78\x01", *(band[0] for band in self._bands),  # zlib, level 1
                         b"\x03\x00", struct.pack(">I", checksum)))  # the final (empty) block
        return b"".join((b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", header),
                         _png_chunk(b"IDAT", data), _png_chunk(b"IEND", b"")))


def _deflate_band(pixels, start, stop):
    """(rows start:stop of `pixels` Up-filtered (the first row of the image as it is) as raw
    deflate blocks that end byte-aligned and not final, so that bands concatenate; the filtered
    bytes' Adler-32 and length)."""
    rows = np.empty((stop - start, pixels.shape[1] + 1), np.uint8)
    rows[:, 0] = 2  # filter type Up
    if start == 0:
        rows[0, 1:] = pixels[0]
        np.subtract(pixels[1:stop], pixels[:stop - 1], out=rows[1:, 1:])
    else:  # uint8: modulo 256, as PNG's
        np.subtract(pixels[start:stop], pixels[start - 1:stop - 1], out=rows[:, 1:])
    deflate = zlib.compressobj(1, zlib.DEFLATED, -15)
    return deflate.compress(rows) + deflate.flush(zlib.Z_SYNC_FLUSH), zlib.adler32(rows), rows.size


def _adler32_combine(first, second, second_length):
    """The Adler-32 of two byte strings one after the other, from theirs (zlib's adler32_combine:
    the second's sums restart from the first's)."""
    base = 65521
    low = ((first & 0xFFFF) + (second & 0xFFFF) - 1) % base
    high = ((first >> 16) + (second >> 16) + second_length * ((first & 0xFFFF) - 1)) % base
    return low | high << 16


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


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
    tiled, with a colour bar: build_activation_map's figure, built for this one image."""
    return ReusedFigures().draw("map", build_activation_map, activations, layer)


def histogram_figure(counts, mean, std, layer):
    """RGBA image of the distribution of `layer`'s values over the probe batch (`counts` from
    figure_rules.binned) on the fixed axes of figure_rules, with its mean and std and the
    standard normal density that SELU drives activations towards: build_histogram's figure,
    built for this one image."""
    return ReusedFigures().draw("histogram", build_histogram, counts, mean, std, layer)


# -----------------------------------------------------------------------------
# Reused figures: building a figure and drawing its axes, ticks and text is most of its cost, so
# each kind of figure is built once per layer, its static part kept as pixels, and later events
# draw only the artists whose data changed on top (matplotlib's blitting, on an Agg canvas).

class ReusedFigures:
    """Figures kept between events, keyed by kind (any hashable, e.g. ("map", layer, shape)).

    `draw(key, build, *data)`: the first time, `build(fig, ax)` makes the figure's artists on a
    new Agg figure (theory_figures.agg_figure: a Figure with its own canvas, no pyplot state) and
    returns `update(*data) -> (layout, changing artists[, static artists on top])`.
    `update` puts new data into the artists; `layout` is whatever fixes the static part (axis
    limits, colour range): when it is unchanged, only the changing artists (made `animated`, so a
    full draw leaves them out) are drawn over the saved static pixels, and the pixels of the
    static artists on top (a legend) are put back over them. A changing "artist" may also be a
    function `paint(pixels)` that writes the canvas' RGBA pixels (an (H, W, 4) uint8 view, row 0
    at the top) itself, in its turn: an image, whose pixels numpy can place faster than Agg.
    Nothing here depends on what a figure shows: a new kind of figure is one build function. Agg
    canvases only, no pyplot, so any one thread may draw (not two at once)."""

    def __init__(self):
        self.full_draws = 0
        self.build_seconds = 0.0  # CPU time of the draws that (re)built a figure's static part
        self._figures = {}

    def draw(self, key, build, *data, figsize=FIGURE_INCHES, dpi=FIGURE_DPI):
        """The figure of `key` with `data` as an RGBA uint8 array (height, width, 4)."""
        cpu_start = time.thread_time()
        entry = self._figures.get(key)
        if entry is None:
            fig, ax = agg_figure(figsize, dpi)
            entry = self._figures[key] = {"canvas": fig.canvas, "fig": fig,
                                          "update": build(fig, ax), "layout": None}
        canvas, fig = entry["canvas"], entry["fig"]
        layout, changing, *on_top = entry["update"](*data)
        on_top = on_top[0] if on_top else []
        rebuilt = layout != entry["layout"]
        if rebuilt:
            canvas.draw()  # the static part: animated artists are left out
            entry["background"], entry["layout"] = canvas.copy_from_bbox(fig.bbox), layout
            entry["on_top"] = [canvas.copy_from_bbox(a.get_window_extent(canvas.get_renderer()))
                               for a in on_top]
            self.full_draws += 1
        canvas.restore_region(entry["background"])
        for artist in changing:
            if callable(artist):
                artist(np.asarray(canvas.buffer_rgba()))
            else:
                fig.draw_artist(artist)
        for pixels in entry["on_top"]:
            canvas.restore_region(pixels)
        if rebuilt:  # the whole draw, building included: a one-off, or nearly
            self.build_seconds += time.thread_time() - cpu_start
        return np.asarray(canvas.buffer_rgba()).copy()


def build_activation_map(fig, ax):
    """activation_map_figure on a reused figure: the colour scale is fixed, so only the image
    changes (and the title, with the layer's shape). Its pixels are painted with numpy
    (paint_cells): Agg's drawing of the image was 6-11 ms of a map's 8-14."""
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.8")  # grey gaps between channels
    image = ax.imshow(np.zeros((1, 1)), cmap=cmap, vmin=-MAP_LIMIT, vmax=MAP_LIMIT,
                      interpolation="nearest", animated=True)
    colour_axes = make_axes_locatable(ax).append_axes("right", size="5%", pad=0.1)
    fig.colorbar(image, cax=colour_axes, extend="both")
    colour_axes.tick_params(labelsize=TICK_PT)
    title = ax.set_title("", fontsize=TITLE_PT)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.subplots_adjust(left=0.02, right=0.90, bottom=0.03, top=0.88)

    def update(activations, layer):
        shown, caption = map_channels(np.asarray(activations, dtype=np.float32))
        grid = tile(shown)
        image.set_data(grid)
        image.set_extent((-0.5, grid.shape[1] - 0.5, grid.shape[0] - 0.5, -0.5))
        ax.set_xlim(-0.5, grid.shape[1] - 0.5)  # part of the layout: redrawn when the shape changes
        ax.set_ylim(grid.shape[0] - 0.5, -0.5)
        size = "x".join(str(n) for n in np.shape(activations)[:2]) if np.ndim(activations) == 3 else ""
        title.set_text(f"{layer}, image 0: {caption}" + (f" ({size})" if size else ""))
        cells = image.to_rgba(grid, bytes=True)  # the image's own colours: its norm, map, grey gaps
        return (grid.shape, title.get_text()), [lambda pixels: paint_cells(pixels, ax, cells)]
    return update


def paint_cells(pixels, ax, cells):
    """Paint an (rows, cols, 4) uint8 grid of cells over the whole of `ax` in a figure's RGBA
    `pixels` (row 0 at the top), each screen pixel taking the cell under its centre: what
    imshow's nearest-neighbour drawing makes of an image whose extent is the axes' limits."""
    height = pixels.shape[0]
    box = ax.bbox  # display units, y upwards, as laid out by the last full draw
    rows, cols = cells.shape[:2]
    x = np.arange(math.ceil(box.x0 - 0.5), math.ceil(box.x1 - 0.5))  # pixel centres inside
    top = np.arange(math.ceil(height - box.y1 - 0.5), math.ceil(height - box.y0 - 0.5))
    if not len(x) or not len(top):
        return  # an axes thinner than a pixel (a prime number of units is one row of cells)
    col = ((x + 0.5 - box.x0) * (cols / box.width)).astype(np.intp)
    row = ((top + 0.5 - (height - box.y1)) * (rows / box.height)).astype(np.intp)
    # As one 32-bit word a pixel, taken a whole row and column at a time: 15x faster than
    # indexing (rows, cols, 4) bytes pixel by pixel.
    words = np.ascontiguousarray(cells).view(np.uint32)[..., 0]
    shown = words.take(np.minimum(row, rows - 1), axis=0).take(np.minimum(col, cols - 1), axis=1)
    pixels.view(np.uint32)[top[0]:top[-1] + 1, x[0]:x[-1] + 1, 0] = shown


def build_histogram(fig, ax):
    """histogram_figure on a reused figure: its axes are fixed, so they are drawn once and each
    event draws the bars, the overflow bars and their shares, the peak, the N(0, 1) curve over
    the bars and the title. Its texts, which change every event, are painted where matplotlib
    would draw them, from cached renderings of their words and digits (avh.glyphs): their Text
    artists stay empty and only place them."""
    low, high = HISTOGRAM_RANGE
    width = OVERFLOW_WIDTH
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
    bars = ax.stairs(np.zeros(HISTOGRAM_BINS), edges, fill=True, alpha=0.6, label="activations")
    x = np.linspace(low, high, 300)
    normal, = ax.plot(x, theory.normal_density(x), "k--", lw=1.5, label="N(0, 1)")
    overflow = []
    for left, text_x, align in ((low - width, low - width, "left"), (high, high + width, "right")):
        bar = ax.bar(left, 0.0, width=width, align="edge", color="C1", alpha=0.7, hatch="//")[0]
        share = ax.text(text_x, 0.0, "", ha=align, va="bottom", fontsize=TICK_PT)
        overflow.append((bar, share))
    # Its text is painted (below): with none of its own, the arrow starts at the text's anchor,
    # where it started from the left middle of the text's box (PEAK_ARROW's relpos).
    peak = ax.annotate("", (0.0, DENSITY_CAP), xytext=(0.4, 0.9 * DENSITY_CAP), fontsize=TICK_PT,
                       ha="left", va="center", arrowprops=PEAK_ARROW)
    peak.set_transform(ax.transData)  # its text's, as each draw sets it: for its painter now
    ax.set_xlim(low - width, high + width)
    ax.set_ylim(0, DENSITY_CAP * 1.08)
    ax.axvline(low, color="0.6", lw=0.8)
    ax.axvline(high, color="0.6", lw=0.8)
    ax.tick_params(labelsize=TICK_PT)
    title = ax.set_title("", fontsize=TITLE_PT)
    # The legend is static, under the bars (translucent): drawing it each event cost 7 ms.
    ax.legend(fontsize=TICK_PT, loc="upper right", frameon=False)
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.11, top=0.88)  # before placing texts
    painters = {artist: TextPainter(artist) for artist in (*(t for _, t in overflow), peak, title)}
    pieces = dict.fromkeys(painters, ())  # what each text is this event, in pieces
    # The shares and the peak move, always to a whole pixel (_at_whole_pixel), so their
    # renderings are made now, with the figure, not in the first event that shows them.
    blank = np.zeros((*fig.canvas.get_width_height()[::-1], 4), np.uint8)
    for text, example in ((overflow[0][1], ("0.0%",)), (overflow[1][1], ("0.0%",)),
                          (peak, ("  peak ", "0.0"))):
        text.set_position(_at_whole_pixel(ax.transData, *text.get_position()))
        painters[text].paint(blank, example)

    def painted(artist):  # a changing "artist" (ReusedFigures) that paints an artist's text
        return lambda pixels: painters[artist].paint(pixels, pieces[artist])

    drawn = [bars, overflow[0][0], overflow[1][0], peak, normal]
    for artist in drawn:
        artist.set_animated(True)
    changing = [bars, *(a for bar, text in overflow for a in (bar, painted(text))), peak,
                painted(peak), normal, painted(title)]

    def update(counts, mean, std, layer):
        counts = np.asarray(counts, dtype=np.float64)
        total = max(counts.sum(), 1.0)
        density = counts[1:-1] / total / np.diff(edges)
        bars.set_data(np.minimum(density, DENSITY_CAP))
        for (bar, text), share in zip(overflow, (counts[0] / total, counts[-1] / total)):
            height = min(share / width, DENSITY_CAP)  # the bar's area is the share beyond the range
            bar.set_height(height)
            bar.set_visible(share > 0)
            text.set_position(_at_whole_pixel(ax.transData, text.get_position()[0], height + 0.03))
            pieces[text] = (f"{share:.1%}" if share >= 0.001 else "<0.1%",) if share > 0 else ()
        top = density.max(initial=0.0)
        at = edges[np.argmax(density)] + 0.5 * np.diff(edges)[0]
        peak.xy = (at, DENSITY_CAP)
        peak.set_position(_at_whole_pixel(ax.transData, at + 0.4, 0.9 * DENSITY_CAP))
        peak.set_visible(top > DENSITY_CAP)
        pieces[peak] = ("  peak ", f"{top:.1f}") if top > DENSITY_CAP else ()  # clear of the arrow
        pieces[title] = (f"{layer}: mean ", f"{float(mean):+.2f}", ", std ", f"{float(std):.2f}")
        return "fixed axes", changing
    return update


def _at_whole_pixel(transform, x, y):
    """(x, y) moved to the whole display pixel nearest to it: a painted text that moves (avh.glyphs)
    then lands at the same fraction of a pixel every event, and its renderings are found again."""
    return tuple(transform.inverted().transform(np.round(transform.transform((x, y)))))


def build_moment_map(fig, ax):
    """theory_figures.moment_map_figure on a reused figure, its variance on a log axis (trained
    SELU layers reach variances of 50 that would squeeze the fixed point into a corner). The
    arrows, fixed point and legend (static) are redrawn only when the limits must grow to hold
    the paths, and then a whole step of a ladder (variance by factors of 10, mean on 1-2.5-5):
    a full draw is ~200 ms, the other events ~5 ms."""
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.11, top=0.92)
    state = {"layout": None, "paths": []}

    def update(trajectories, title):
        limits = _limits_on_ladder([as_trajectory(item, i)[1] for i, item in enumerate(trajectories)])
        layout = (limits, tuple(label for label, _ in trajectories), title)
        if layout != state["layout"]:
            ax.clear()
            draw_moment_map(ax, trajectories, limits=limits, title=title, log_variance=True,
                            legend_at="lower right")
            # draw_moment_map adds a line and its start and end markers per path, last
            lines = ax.lines[len(ax.lines) - 3 * len(trajectories):]
            state["paths"] = [lines[i:i + 3] for i in range(0, len(lines), 3)]
            state["layout"] = layout
            for artist in lines:
                artist.set_animated(True)
        for (line, start, end), (_, points) in zip(state["paths"], trajectories):
            points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
            line.set_data(points[:, 0], points[:, 1])
            start.set_data(points[:1, 0], points[:1, 1])
            end.set_data(points[-1:, 0], points[-1:, 1])
        return layout, [artist for path in state["paths"] for artist in path]
    return update


def _limits_on_ladder(paths):
    """TRAINING_MOMENT_LIMITS grown, with a margin, to hold every finite point of `paths`
    ((mean, variance) arrays): the mean to -1, -2.5, -5 ... or 2.5, 5, 10 ..., the variance
    to the next power of 10 out."""
    (mu_low, mu_high), (nu_low, nu_high) = TRAINING_MOMENT_LIMITS
    points = np.concatenate([np.empty((0, 2)), *paths])
    points = points[np.all(np.isfinite(points), axis=1) & (points[:, 1] > 0)]
    if len(points):
        margin = 0.05 * (mu_high - mu_low)
        lowest, highest = points[:, 0].min() - margin, points[:, 0].max() + margin
        mu_low = mu_low if lowest >= mu_low else -_ladder(-lowest)
        mu_high = mu_high if highest <= mu_high else _ladder(highest)
        nu_low = min(nu_low, 10.0 ** math.floor(math.log10(points[:, 1].min() / 1.2)))
        nu_high = max(nu_high, 10.0 ** math.ceil(math.log10(points[:, 1].max() * 1.2)))
    return (mu_low, mu_high), (nu_low, nu_high)


def _ladder(x):
    """The smallest of ..., 0.1, 0.25, 0.5, 1, 2.5, 5, 10, ... that is at least x; x <= 0 as is."""
    x = float(x)
    if x <= 0:
        return x
    power = 10.0 ** math.floor(math.log10(x))
    return next(power * m for m in (1, 2.5, 5, 10) if power * m >= x * (1 - 1e-9))
