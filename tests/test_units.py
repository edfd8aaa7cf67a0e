"""In-process unit tests of the pieces under the app: activations, the SELU fixed point in a
dense stack, channel statistics, figure tiling and time share, settings, checkpoints and flushes."""
import struct
import time
import zlib

import numpy as np
import pytest

from avh_app.cli import ONEDNN_MACHINES, UsageError, import_tensorflow
from avh_app.config import Config, check_config, load_config

tf, keras = import_tensorflow()

def test_selu_matches_the_papers_formula():
    import ops
    lam, alpha = 1.0507009873554805, 1.6732632423543772
    x = np.array([-5.0, -1.0, -0.1, 0.0, 0.1, 1.0, 5.0], dtype=np.float32)
    expected = np.where(x > 0, lam * x, lam * alpha * (np.exp(x) - 1))
    got = np.asarray(ops.activation_layer("selu")(x))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_leaky_relu_slope_and_relu():
    import ops
    x = np.array([-2.0, -0.5, 0.0, 3.0], dtype=np.float32)
    np.testing.assert_allclose(np.asarray(ops.activation_layer("lrelu")(x)),
                               [-2 * ops.LRELU_SLOPE, -0.5 * ops.LRELU_SLOPE, 0, 3])
    np.testing.assert_allclose(np.asarray(ops.activation_layer("relu")(x)), [0, 0, 0, 3])


def _dense_stack_stats(activation, init, depth=8, width=512, n=4096):
    """Per-layer (mean, std) of a deep dense stack at init, fed standardised Gaussian inputs."""
    import keras
    import ops
    keras.utils.set_random_seed(1)
    x = np.random.default_rng(1).standard_normal((n, width)).astype(np.float32)
    stats = []
    for _ in range(depth):
        dense = keras.layers.Dense(width, use_bias=False, kernel_initializer=ops.initializer(init))
        x = np.asarray(ops.activation_layer(activation)(dense(x)))
        stats.append((x.mean(), x.std()))
    return stats


def test_selu_keeps_mean_zero_and_std_one_layer_after_layer():
    for layer, (mean, std) in enumerate(_dense_stack_stats("selu", "lecun_normal"), 1):
        assert abs(mean) < 0.1, (layer, mean)
        assert abs(std - 1) < 0.1, (layer, std)


def test_relu_without_batch_norm_drifts_positive():
    he = _dense_stack_stats("relu", "he_normal")
    assert all(mean > 0.3 for mean, _ in he), he  # a ReLU never outputs below 0
    assert abs(he[-1][1] - 1) > 0.15  # and nothing pulls its std back to 1
    # With SELU's LeCun init instead of He's, ReLU's signal fades layer after layer.
    lecun = _dense_stack_stats("relu", "lecun_normal")
    assert lecun[-1][1] < 0.2 * lecun[0][1]


def test_the_input_pipelines_run_without_tf_data_autotuning():
    """Deleting an autotuned iterator waits out its tuning thread's sleep: 8-40 s at the end of
    a fit in a third of the runs here. Both pipelines are fixed, and still give every example."""
    import types

    from avh_app import pipeline

    data = types.SimpleNamespace(x_train=np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1),
                                 y_train=np.arange(10), x_test=np.zeros((3, 1, 1, 1), np.uint8),
                                 y_test=np.zeros(3, np.int64))
    train_batches, test_batches, _ = pipeline.input_pipeline(data, [0.0], [1.0], 4, seed=0)
    for dataset in (train_batches(0), train_batches(1, skip=1), test_batches):
        assert dataset.options().autotune.enabled is False
    seen = np.concatenate([y.numpy() for _, y in train_batches(0)])
    assert sorted(seen) == list(range(10))


def test_channel_stats_match_numpy():
    from avh_app.pipeline import channel_stats
    images = np.random.default_rng(0).integers(0, 256, (3000, 8, 8, 3), dtype=np.uint8)
    mean, std = channel_stats(images)
    as_float = images.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(mean, as_float.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(std, as_float.std(axis=0), rtol=1e-5)


def test_tile_lays_channels_out_as_a_grid():
    from avh.figures import tile
    maps = np.arange(4 * 4 * 6, dtype=np.float32).reshape(4, 4, 6)
    grid = tile(maps)
    assert grid.shape == (2 * 4 + 1, 3 * 4 + 2)  # 2x3 channels, one NaN pixel between them
    np.testing.assert_array_equal(grid[:4, :4], maps[..., 0])
    np.testing.assert_array_equal(grid[:4, 5:9], maps[..., 1])
    np.testing.assert_array_equal(grid[5:9, 10:14], maps[..., 5])
    assert np.isnan(grid[4]).all()
    assert tile(np.arange(160.0)).shape == (10, 16)
    assert tile(np.zeros((4, 4, 256))).shape == (16 * 5 - 1, 16 * 5 - 1)




# ---------------------------------------------------------------------------------------------
# Figures get at most their time share.

class BusyRenderer:
    """A FigureRenderer whose drawing burns a known amount of CPU, on a clock the test sets."""

    def __init__(self, cpu_seconds, share=0.02):
        from avh.figures import FigureRenderer

        self.now = 0.0
        self.renderer = FigureRenderer(writer=None, time_share=share, clock=lambda: self.now)
        self.drawn = []

        def draw_figures(step, layers):
            start = time.thread_time()
            while time.thread_time() - start < cpu_seconds:
                pass
            self.drawn.append(step)

        self.renderer._writer = lambda: tf.summary.create_noop_writer()
        self.renderer.draw_figures = draw_figures

    def submit(self, step, at, wait=False):
        self.now = at
        self.renderer.submit(step, {}, wait=wait)
        self.renderer._pending.result() if self.renderer._pending else None


def test_figures_are_skipped_when_drawing_would_exceed_their_share_of_the_time():
    busy = BusyRenderer(cpu_seconds=0.05, share=0.02)  # 50 ms a draw: one per 2.5 s fits
    busy.submit(0, at=0.0, wait=True)  # the first: drawn, not metered (it builds the figures)
    busy.submit(100, at=1.0)       # nothing metered yet: drawn (50 ms spent)
    busy.submit(200, at=2.4)       # 50 + 50 ms > 2% of 2.4 s: skipped
    busy.submit(300, at=6.0)       # 100 ms (and the call's own few ms) <= 2% of 6 s: drawn
    busy.submit(400, at=6.1, wait=True)  # the last step: drawn whatever the budget
    busy.renderer.close()
    assert busy.drawn == [0, 100, 300, 400]
    assert busy.renderer.skipped == 1


def test_rebuilding_a_figure_is_not_metered_but_drawing_is():
    """A moment map whose axes must grow rebuilds them (~150 ms, a few times a run at most):
    that is not charged to the share, or the events after it would be skipped."""
    busy = BusyRenderer(cpu_seconds=0.05, share=0.02)
    plain = busy.renderer.draw_figures

    def rebuilding(step, layers):
        start = time.thread_time()
        plain(step, layers)
        if step == 100:  # all but a few ms of this event rebuilt a figure
            busy.renderer.reused.build_seconds += time.thread_time() - start - 0.005
    busy.renderer.draw_figures = rebuilding
    busy.submit(0, at=0.0, wait=True)
    busy.submit(100, at=1.0)   # drawn; ~5 ms charged
    busy.submit(200, at=2.6)   # 5 + 50 ms <= 2% of 2.6 s: drawn (charged 50 ms, it would not be)
    busy.submit(300, at=3.0)   # 55 + 50 ms > 60 ms: skipped
    busy.renderer.close()
    assert busy.drawn == [0, 100, 200] and busy.renderer.skipped == 1


def test_a_skipped_step_drawn_at_the_end_is_not_counted_as_skipped():
    busy = BusyRenderer(cpu_seconds=0.02)
    busy.submit(0, at=0.0, wait=True)
    busy.submit(300, at=0.1)             # skipped by the budget...
    busy.submit(300, at=0.2, wait=True)  # ...then drawn as the run's last step
    busy.renderer.close()
    assert busy.drawn == [0, 300] and busy.renderer.skipped == 0


# ---------------------------------------------------------------------------------------------
# Figures drawn cheaply: reused figures look exactly like new ones, and their PNGs decode.

def _drawn_anew_and_reused(build, first, second, **size):
    """(the figure of `second` on a new figure, the same after `first` on a reused one)."""
    from avh.figures import ReusedFigures

    reused = ReusedFigures()
    reused.draw("f", build, *first, **size)
    return ReusedFigures().draw("f", build, *second, **size), reused.draw("f", build, *second, **size)


def test_a_reused_histogram_or_map_is_pixel_for_pixel_a_new_one():
    from avh.figure_rules import HISTOGRAM_BINS
    from avh.figures import build_activation_map, build_histogram

    rng = np.random.default_rng(0)
    counts = lambda: rng.integers(0, 400, HISTOGRAM_BINS + 2)  # with overflow on both sides
    new, reused = _drawn_anew_and_reused(build_histogram, (counts(), 0.1, 0.9, "3_conv3"),
                                         (counts(), -0.2, 1.4, "3_conv3"))
    assert new.shape == (400, 640, 4) and (new == reused).all()
    assert len(np.unique(new.reshape(-1, 4), axis=0)) > 50  # bars, text, legend: not blank
    maps = [(rng.normal(size=(7, 7, 64)).astype(np.float32), "3_conv3") for _ in range(2)]
    new, reused = _drawn_anew_and_reused(build_activation_map, *maps)
    assert (new == reused).all()


def test_a_histograms_painted_texts_are_the_ones_matplotlib_draws():
    """A histogram's title, overflow shares and peak label are painted (avh.glyphs): inside each
    text's box, the same pixels as matplotlib drawing those texts itself in a full draw of the
    same figure (outside them a full draw puts the static vertical lines over the overflow bars,
    which the reused figure draws over its static part)."""
    from avh.figure_rules import HISTOGRAM_BINS, HISTOGRAM_RANGE
    from avh.figures import ReusedFigures, build_histogram

    counts = np.random.default_rng(3).integers(0, 400, HISTOGRAM_BINS + 2)
    counts[0], counts[-1], counts[20] = 30, 4000, 40000  # shares on both sides, a peak
    reused = ReusedFigures()
    painted = reused.draw("h", build_histogram, counts, -0.12, 0.98, "4_fc4")
    fig = reused._figures["h"]["fig"]
    ax = fig.axes[0]
    total, bin_width = counts.sum(), (HISTOGRAM_RANGE[1] - HISTOGRAM_RANGE[0]) / HISTOGRAM_BINS
    left, right, peak = ax.texts  # as made: the two shares, the peak's annotation
    assert counts[0] / total < 0.001 <= counts[-1] / total
    left.set_text("<0.1%")
    right.set_text(f"{counts[-1] / total:.1%}")
    peak.set_text(f"  peak {counts[20] / total / bin_width:.1f}")
    ax.title.set_text("4_fc4: mean -0.12, std 0.98")
    for artist in fig.findobj():
        artist.set_animated(False)
    fig.canvas.draw()
    drawn = np.asarray(fig.canvas.buffer_rgba())
    height = drawn.shape[0]
    for text in (left, right, peak, ax.title):
        box = text.get_window_extent(fig.canvas.get_renderer())
        rows = slice(int(height - box.y1) - 1, int(np.ceil(height - box.y0)) + 1)
        cols = slice(int(box.x0) - 1, int(np.ceil(box.x1)) + 1)
        assert (drawn[rows, cols, :3] < 100).any()  # ink: the text is there
        np.testing.assert_array_equal(painted[rows, cols], drawn[rows, cols])


@pytest.mark.parametrize("shape", [(7, 7, 64), (4, 4, 256), (14, 14, 10), (160,), (40,), (3,), (997,)])
def test_a_map_painted_by_numpy_is_pixel_for_pixel_the_one_agg_draws(shape):
    """The map's cells are painted into the canvas with numpy (paint_cells): the same pixels as
    matplotlib drawing its image artist there, NaN gaps and values beyond the scale included."""
    from avh.figures import ReusedFigures, build_activation_map

    activations = np.random.default_rng(2).normal(0, 2.5, size=shape).astype(np.float32)
    activations.flat[1] = np.nan
    reused = ReusedFigures()
    painted = reused.draw("m", build_activation_map, activations, "3_conv3")
    entry = reused._figures["m"]
    canvas, image = entry["canvas"], entry["fig"].axes[0].images[0]
    canvas.restore_region(entry["background"])
    entry["fig"].draw_artist(image)  # Agg's own nearest-neighbour drawing of the same cells
    drawn = np.asarray(canvas.buffer_rgba())
    assert (painted == drawn).all()
    if entry["fig"].axes[0].bbox.height < 1:
        return  # 997 units are one row of cells, thinner than a pixel: nothing drawn, no failure
    grey = np.array([204, 204, 204, 255], np.uint8)  # the gaps' colour ("0.8")
    assert (painted == grey).all(axis=-1).sum() > 10 and len(np.unique(painted.reshape(-1, 4), axis=0)) > 30


def test_a_moment_map_redraws_its_axes_only_a_few_times_as_a_variance_climbs():
    """Layer 5 of a SELU run on MNIST, as if trained further: mean 0 -> 3.3, variance
    0.7 -> 270 over 11 summaries (variance on a log axis, grown by factors of 10; the mean on a
    1-2.5-5 ladder)."""
    from avh.figures import ReusedFigures, _limits_on_ladder, build_moment_map
    from avh.theory_figures import FIGURE_DPI, FIGURE_INCHES

    size = {"figsize": FIGURE_INCHES, "dpi": FIGURE_DPI}
    path = [(0.33 * k, 0.7 * 1.815 ** k) for k in range(11)]
    reused = ReusedFigures()
    for k in range(1, len(path) + 1):
        image = reused.draw("m", build_moment_map, [("5_fc5", path[:k])], "title", **size)
    assert _limits_on_ladder([np.array(path)]) == ((-1.0, 5.0), (0.1, 1000.0))
    # The first draw, then both axes grow at the tenth summary (mean to 5, variance to 1000).
    assert reused.full_draws == 2
    new = ReusedFigures().draw("m", build_moment_map, [("5_fc5", path)], "title", **size)
    assert (new == image).all()
    assert _limits_on_ladder([np.array([(-1.3, 0.05), (0.0, np.nan)])]) == ((-2.5, 3.0), (0.01, 100.0))


def test_scalar_records_read_back_as_tf_summary_scalars_own(tmp_path):
    """summary_values.scalar builds its TensorProto directly: it must read back as what
    tf.summary.scalar writes (value, float32, scalar shape, the scalars plugin), NaN and
    infinities included, and be byte for byte make_tensor_proto's."""
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.util import tensor_util

    from avh import summary_values
    from avh.events import event_files

    values = [0.1, -3.25, 1e-30, 3e38, float("nan"), float("inf"), -float("inf"), np.float64(2) / 3]
    for folder, write in (("ours", lambda i, v: summary_values.write(i, [summary_values.scalar("s", v)])),
                          ("tf", lambda i, v: tf.summary.scalar("s", v, step=i))):
        with tf.summary.create_file_writer(str(tmp_path / folder)).as_default():
            for i, v in enumerate(values):
                write(i, v)
    read = {}
    for folder in ("ours", "tf"):
        (path,) = event_files(tmp_path / folder)
        read[folder] = [value for event in event_file_loader.EventFileLoader(str(path)).Load()
                        for value in event.summary.value]
    assert len(read["ours"]) == len(read["tf"]) == len(values)
    for ours, theirs, v in zip(read["ours"], read["tf"], values):
        got, want = tensor_util.make_ndarray(ours.tensor), tensor_util.make_ndarray(theirs.tensor)
        assert got.dtype == want.dtype == np.float32 and got.shape == want.shape == ()
        np.testing.assert_array_equal(got, want)
        assert ours.metadata.plugin_data.plugin_name == theirs.metadata.plugin_data.plugin_name
        assert (summary_values.scalar("s", v).tensor.SerializeToString()
                == tensor_util.make_tensor_proto(np.float32(v)).SerializeToString())


@pytest.mark.parametrize("pieces, where", [
    (("3_conv3: mean ", "+0.10", ", std ", "1.10"), "title"),
    (("fc5: mean ", "-12.34", ", std ", "101.00"), "title"),
    (("AVA Te ", "1.0%", " \u03bc \u03c3 ", "+nan"), "title"),       # kerned pairs, Greek
    (("final_fit \u4e2d\u6587: ", "-0.07"), "title"),              # a ligature, a fallback font
    (("4_fc4: mean ", "+0.02", ", std ", "0.99"), "left title"),
    (("<0.1%",), ("left", "bottom")), (("14.7%",), ("right", "bottom")),  # overflow shares
    (("  peak ", "3.6"), ("left", "center")), (("gy ", "0.5"), ("center", "top"))])
def test_painted_text_is_the_text_matplotlib_draws_pixel_for_pixel(pieces, where):
    """avh.glyphs paints a histogram's texts from cached renderings: the pixels matplotlib draws
    for the same text, aligned as it is, over white and over a translucent colour, with
    renderings cached from another line too."""
    from avh.glyphs import TextPainter
    from avh.theory_figures import agg_figure

    def text(ax, s):
        if isinstance(where, str):  # a title, centred or on the left
            return ax.set_title(s, fontsize=16, loc="left" if where == "left title" else "center")
        ax.axhspan(0.45, 0.5, color="C1", alpha=0.7)  # under part of the text: blending, not ink
        return ax.text(0.31, 0.47, s, ha=where[0], va=where[1], fontsize=14)

    (drawn, drawn_ax), (painted, painted_ax) = agg_figure((6.4, 4.0), 100), agg_figure((6.4, 4.0), 100)
    text(drawn_ax, "".join(pieces))
    drawn.canvas.draw()
    painter = TextPainter(text(painted_ax, ""))
    painted.canvas.draw()
    pixels = np.asarray(painted.canvas.buffer_rgba())
    other = pixels.copy()
    painter.paint(other, ["0.123456789 +-%", *pieces[::-1]])
    painter.paint(pixels, pieces)
    expected = np.asarray(drawn.canvas.buffer_rgba())
    assert (expected != other).any()  # another line is other pixels
    np.testing.assert_array_equal(pixels, expected)


def _idat(png):
    """The zlib stream of a PNG of one IDAT chunk."""
    start = png.index(b"IDAT") + 4
    return png[start:start + struct.unpack(">I", png[start - 8:start - 4])[0]]


@pytest.mark.parametrize("channels", [3, 4])
def test_a_png_encoder_that_reuses_bands_writes_what_a_new_one_writes(channels):
    """PngEncoder deflates only the bands of rows that changed since its last image: its PNGs
    are byte for byte a new encoder's, whose zlib stream (checksum included) decodes to the
    image, when one row changed at a band's end (the next band's first filtered row changes
    with it), at a band's start, in the last band, or the size changed."""
    from avh.figures import PngEncoder

    rng = np.random.default_rng(2)
    image = np.full((70, 41, channels), 255, np.uint8)
    image[5:60, 3:30] = rng.integers(0, 256, (55, 27, channels), dtype=np.uint8)
    rows = PngEncoder.BAND_ROWS
    reused = PngEncoder()
    for change in [None, rows - 1, rows, 69, "size"]:
        if change == "size":
            image = image[:50]
        elif change is not None:
            image = image.copy()
            image[change, 10:20] = rng.integers(0, 256, (10, channels), dtype=np.uint8)
        png = reused.encode(image)
        assert png == PngEncoder().encode(image)
        height, width = image.shape[:2]
        filtered = np.frombuffer(zlib.decompress(_idat(png)), np.uint8).reshape(height, -1)
        assert (filtered[:, 0] == 2).all()  # every row Up-filtered
        decoded = np.cumsum(filtered[:, 1:], axis=0, dtype=np.uint8)  # Up undone, modulo 256
        assert (decoded.reshape(image.shape) == image).all()
        assert (tf.io.decode_png(png, channels=channels).numpy() == image).all()


@pytest.mark.parametrize("channels", [3, 4])
def test_png_encoding_decodes_to_the_same_pixels(channels):
    from avh.figures import encode_png

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (37, 53, channels), dtype=np.uint8)
    image[10:20] = 255  # flat rows, as in a plot: their Up-filtered bytes are zeros
    decoded = tf.io.decode_png(encode_png(image), channels=channels).numpy()
    assert decoded.dtype == np.uint8 and (decoded == image).all()


# ---------------------------------------------------------------------------------------------
# TensorFlow's oneDNN CPU kernels.

@pytest.mark.parametrize("machine, given, expected", [
    ("x86_64", None, "1"), ("AMD64", None, "1"),   # on where TensorFlow would leave them off
    ("x86_64", "0", "0"), ("x86_64", "false", "false"),  # the user's own choice stays
    ("aarch64", None, None), ("arm64", None, None)])     # another CPU: TensorFlow's default
def test_onednn_is_turned_on_on_x86_unless_the_user_said_otherwise(machine, given, expected):
    from avh_app.cli import use_onednn

    environ = {} if given is None else {"TF_ENABLE_ONEDNN_OPTS": given}
    use_onednn(environ, machine=machine)
    assert environ.get("TF_ENABLE_ONEDNN_OPTS") == expected


@pytest.mark.slow  # two TensorFlow imports, ~10 s
@pytest.mark.skipif(__import__("platform").machine().lower() not in ONEDNN_MACHINES,
                    reason="oneDNN is turned on on x86-64 only")
def test_tensorflow_imported_by_the_app_runs_onednn_kernels():
    """In a fresh process, as train.py starts: TensorFlow itself reports oneDNN on (the variable
    was set before it read it), and off when the user turns it off."""
    import os
    import subprocess
    import sys

    code = ("from avh_app.cli import import_tensorflow; import_tensorflow(); "
            "from tensorflow.python.util import _pywrap_util_port as port; "
            "print(port.IsMklEnabled())")
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    on = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    off = subprocess.run([sys.executable, "-c", code], env={**env, "TF_ENABLE_ONEDNN_OPTS": "0"},
                         capture_output=True, text=True)
    assert (on.stdout.split()[-1:], off.stdout.split()[-1:]) == (["True"], ["False"]), (
        on.stderr[-500:])


# ---------------------------------------------------------------------------------------------
# Settings.

@pytest.mark.parametrize("change, flag", [
    ({"epochs": 0}, "--epochs"), ({"batch_size": -1}, "--batch-size"),
    ({"learning_rate": float("nan")}, "--learning-rate"), ({"max_steps": 0}, "--max-steps"),
    ({"clip_norm": 0.0}, "--clip-norm"), ({"checkpoint_every": 0}, "--checkpoint-every"),
    ({"summary_every": -5}, "--summary-every"), ({"dropout": 1.0}, "--dropout"),
    ({"run_name": "../outside"}, "--run-name"), ({"run_name": "/abs"}, "--run-name"),
    ({"steps_per_execution": 0}, "--steps-per-execution"),
    # executions end on multiples of N only: cadences between them would be missed
    ({"steps_per_execution": 3}, "--summary-every 100 is not a multiple of --steps-per-execution 3"),
    ({"steps_per_execution": 20, "checkpoint_every": 50}, "--checkpoint-every 50"),
])
def test_config_refuses_values_no_run_can_use_naming_the_flag(change, flag):
    with pytest.raises(UsageError, match=flag):
        check_config(Config(**change))


def test_config_accepts_the_defaults_and_odd_but_valid_values():
    check_config(Config())
    check_config(Config(summary_every=0, dropout=0.0, max_steps=1, plot_layers=()))
    check_config(Config(steps_per_execution=4))
    check_config(Config(steps_per_execution=16, summary_every=0, checkpoint_every=400))


def test_load_config_refuses_folders_that_cannot_be_resumed(tmp_path):
    import json

    with pytest.raises(UsageError, match="not a run folder"):
        load_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"activation": "relu", "seed": 3}))
    with pytest.raises(UsageError, match="no checkpoint yet"):
        load_config(tmp_path)
    (tmp_path / "checkpoint.keras").write_bytes(b"")
    cfg = load_config(tmp_path)
    assert (cfg.activation, cfg.seed, cfg.epochs) == ("relu", 3, Config().epochs)
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(UsageError, match="already finished"):
        load_config(tmp_path)


# ---------------------------------------------------------------------------------------------
# Events reach disk together with checkpoints, never before.

def test_events_reach_disk_with_the_checkpoint_and_not_before(tmp_path):
    from avh.events import read_events
    from avh_app import loop
    from avh_app.eventlog import EventLog

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    events = EventLog(tmp_path)
    events.writer.set_as_default()
    checkpointer = loop.Checkpointer(model, tmp_path, events, every=10)
    for step in range(1, 4):
        tf.summary.scalar("train/loss", 1.0 / step, step=step)
    assert read_events(tmp_path) == {}  # held in memory until a checkpoint is saved
    checkpointer.save(3)
    assert (tmp_path / "checkpoint.keras").exists()
    assert not (tmp_path / ".checkpoint-partial.keras").exists()
    assert [s for s, _ in read_events(tmp_path)["train/loss"]] == [1, 2, 3]
    tf.summary.scalar("train/loss", 0.25, step=4)
    assert [s for s, _ in read_events(tmp_path)["train/loss"]] == [1, 2, 3]
    tf.summary.create_noop_writer().set_as_default()  # leave no default writer to later tests


def test_the_test_subset_takes_known_outputs_for_its_first_images_and_computes_the_rest(tmp_path):
    """At a step where the probe's outputs are known (the first test images), the subset's
    evaluation takes them and runs the model on the others only; elsewhere on all of them."""
    from avh.events import read_events
    from avh_app.curves import SubsetEvaluation

    rng = np.random.default_rng(7)
    images, labels = rng.normal(size=(50, 4)).astype("float32"), rng.integers(0, 3, 50)
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    logits = model(images).numpy()
    # Known outputs that are deliberately wrong for the first 20 (each a sure miss): a result
    # that uses them and the model's for the other 30 can be told from one that does not.
    wrong = np.full((20, 3), -10.0, dtype="float32")
    wrong[np.arange(20), (labels[:20] + 1) % 3] = 10.0

    def cross_entropy(z, y):
        z = z - z.max(axis=1, keepdims=True)
        return -(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(axis=1)))

    evaluation = SubsetEvaluation(model, images, labels, every=1,
                                  known=lambda step: wrong if step == 2 else None)
    with tf.summary.create_file_writer(str(tmp_path)).as_default():
        computed, taken = evaluation.log(1), evaluation.log(2)
    assert computed["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == labels), abs=1e-6)
    assert computed["loss"] == pytest.approx(cross_entropy(logits, labels).mean(), rel=1e-5)
    assert taken["accuracy"] == pytest.approx(np.sum(logits[20:].argmax(1) == labels[20:]) / 50, abs=1e-6)
    assert taken["loss"] == pytest.approx(
        (cross_entropy(wrong, labels[:20]).sum() + cross_entropy(logits[20:], labels[20:]).sum()) / 50,
        rel=1e-5)
    assert [round(float(v), 6) for _, v in read_events(tmp_path)["test_subset/accuracy"]] == \
        [round(computed["accuracy"], 6), round(taken["accuracy"], 6)]
    # All of them known (a subset no larger than the probe): no forward pass at all.
    everything = SubsetEvaluation(model, images[:10], labels[:10], every=1, known=lambda step: wrong)
    with tf.summary.create_noop_writer().as_default():
        assert everything.log(3) == {"accuracy": 0.0, "loss": pytest.approx(
            cross_entropy(wrong[:10], labels[:10]).mean(), rel=1e-6)}


# ---------------------------------------------------------------------------------------------
# Activations beyond the compared three: one table entry each.

def test_elu_and_gelu_are_selectable_with_he_init_and_batch_norm():
    import ops

    assert ops.resolve("elu") == ops.resolve("gelu") == ("batch", "he_normal", "standard")
    x = np.array([-2.0, 0.0, 1.5], dtype=np.float32)
    np.testing.assert_allclose(np.asarray(ops.activation_layer("elu")(x)), [np.expm1(-2.0), 0, 1.5],
                               rtol=1e-6)
    gelu = 0.5 * x * (1 + np.vectorize(__import__("math").erf)(x / np.sqrt(2)))
    np.testing.assert_allclose(np.asarray(ops.activation_layer("gelu")(x)), gelu, rtol=1e-4, atol=1e-6)
    assert set(ops.COMPARED) < set(ops.ACTIVATIONS)


def test_every_data_set_names_its_conv_widths(tmp_path):
    import datasets
    from datasets import synthetic

    writers = {"mnist": synthetic.write_mnist, "svhn": synthetic.write_svhn, "cifar10": synthetic.write_cifar10}
    loaded = {name: datasets.load(name, writers[name](tmp_path / name)) for name in datasets.NAMES}
    assert {name: datasets.conv_filters(data) for name, data in loaded.items()} == {
        "mnist": (32, 64, 128), "svhn": (64, 128, 256), "cifar10": (64, 128, 256)}


def test_every_activation_of_the_app_has_its_theory_and_one_colour_everywhere():
    """The activation set is ops.ACTIVATION_TABLE: the theory has each one's moments, the palette
    (the dashboard's and the report's colours) a colour of its own, and the moments read the
    parameters from the app's own layers."""
    import ops
    from avh import moments, palette, theory

    assert set(ops.ACTIVATIONS) <= set(theory.ACTIVATIONS)
    colours = [palette.colour(name) for name in ops.ACTIVATIONS]
    assert len(set(colours)) == len(colours)
    assert all(colour in palette.ACTIVATION_COLOURS.values() for colour in colours)
    assert moments.theory_activation(ops.activation_layer("lrelu")) == (
        "lrelu", {"slope": pytest.approx(ops.LRELU_SLOPE)})
    assert moments.theory_activation(ops.activation_layer("selu"))[0] == "selu"
