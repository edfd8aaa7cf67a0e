"""Comparing runs in TensorBoard: fixed figure scales, curve cadence, the HParams/Text/Custom Scalars
records read back from train.py's event files, and TensorBoard's dashboards drawn in a real browser."""
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata

import browser
from avh import figure_rules
from avh_app import curves, overview
from avh.events import event_files
from avh.tags import TEST_SUBSET_TAG, TEST_TAG, TRAIN_TAG
from model import LAYERS, layer_tag
from conftest import COMPARED_STEPS
from runs import read_events, read_json

ACTIVATIONS = ("selu", "relu", "lrelu")
STEPS = COMPARED_STEPS


# -----------------------------------------------------------------------------
# Rules, without a run

def test_binned_keeps_values_beyond_the_range_out_of_the_edge_bins():
    low, high = figure_rules.HISTOGRAM_RANGE
    values = tf.constant([low - 5, low - 0.001, low, 0.0, high, high + 0.001, 1e9], tf.float32)
    counts = figure_rules.binned(values).numpy()
    assert counts.shape == (figure_rules.HISTOGRAM_BINS + 2,)
    assert counts[0] == 2 and counts[-1] == 2      # below, above
    assert counts[1] == 1 and counts[-2] == 1      # low itself; high itself (last bin is closed)
    assert counts.sum() == 7


def test_conv_maps_show_their_first_channels_and_say_so():
    maps = np.arange(4 * 4 * 256, dtype=np.float32).reshape(4, 4, 256)
    shown, caption = figure_rules.map_channels(maps)
    np.testing.assert_array_equal(shown, maps[..., :figure_rules.MAP_CHANNELS])
    assert caption == f"ch. 1-{figure_rules.MAP_CHANNELS} of 256"
    assert figure_rules.map_channels(np.zeros(160))[1] == "160 units"


def test_figures_are_large_and_the_same_size_whatever_the_values():
    from avh.figures import activation_map_figure, histogram_figure
    rng = np.random.default_rng(0)
    spiky = tf.constant(np.maximum(rng.normal(size=20000), 0), tf.float32)  # ReLU: half zeros
    wide = tf.constant(rng.normal(0, 40, size=20000), tf.float32)           # far beyond [-4, 6]
    images = [histogram_figure(figure_rules.binned(v).numpy(), 0.4, 0.6, "3_conv3")
              for v in (spiky, wide)]
    images += [activation_map_figure(rng.normal(size=(4, 4, 256)), "3_conv3"),
               activation_map_figure(rng.normal(size=160), "4_fc4")]
    assert {image.shape for image in images} == {(400, 640, 4)}


@pytest.mark.parametrize("total_steps", [1, 7, 126, 300, 938, 10_000])
def test_any_run_length_gets_enough_curve_points(total_steps):
    train_points = total_steps // curves.train_log_every(100, total_steps)
    test_points = total_steps // curves.test_eval_every(total_steps) + 1  # + the last step
    assert train_points >= min(total_steps, curves.TRAIN_POINTS)
    assert test_points >= min(total_steps, 10)
    assert curves.train_log_every(100, 10_000) == 100  # long runs keep --summary-every


def test_layout_has_one_chart_per_logged_layer_for_each_statistic():
    layers = ["1_a", "2_b", "3_c"]
    layout = overview.custom_scalars_layout(layers)
    by_title = {c.title: c for c in layout.category}
    mean = by_title["activation mean per layer"]
    assert [c.title for c in mean.chart] == [f"{k} mean (SELU target 0)" for k in layers]
    assert mean.chart[2].multiline.tag == [r"^activation_stats/3_c/mean$"]
    assert len(by_title["activation std per layer"].chart) == 3
    assert "loss and accuracy" in by_title


def test_hparams_take_resolved_settings_and_none_becomes_off():
    config = {"activation": "relu", "norm": "auto", "init": "auto", "dropout_kind": "auto",
              "clip_norm": None, "resolved": {"norm": "batch", "init": "he_normal",
                                              "dropout_kind": "standard",
                                              "dtype_policy": "float32"}}
    values = overview.hparams_of(config)
    assert values["norm"] == "batch" and values["init"] == "he_normal"
    assert values["dropout_kind"] == "standard" and values["clip_norm"] == "off"
    assert set(values) == set(overview.HPARAMS)


# -----------------------------------------------------------------------------
# Three tiny train.py runs, one compare root

@pytest.fixture(scope="module")
def root(compared_root):
    """The session's compare.py root (conftest.py): selu, relu, lrelu on tiny MNIST."""
    return compared_root[0]


def summaries(run_dir):
    """[(step, tag, Summary.Value)] of every event file of the run."""
    return [(event.step, value.tag, value)
            for path in event_files(run_dir)
            for event in event_file_loader.EventFileLoader(str(path)).Load()
            for value in event.summary.value]


@pytest.mark.slow  # needs the three train.py runs
def test_each_run_logs_its_resolved_settings_once_as_hparams(root):
    for activation in ACTIVATIONS:
        starts = [(step, value) for step, tag, value in summaries(root / activation)
                  if tag == hparams_metadata.SESSION_START_INFO_TAG]
        assert len(starts) == 1 and starts[0][0] == 0
        info = hparams_metadata.parse_session_start_info_plugin_data(
            starts[0][1].metadata.plugin_data.content)
        logged = {name: value.string_value or value.number_value
                  for name, value in info.hparams.items()}
        resolved = read_json(root / activation / "config.json")["resolved"]
        assert logged["activation"] == activation
        for key in ("norm", "init", "dropout_kind", "dtype_policy"):
            assert logged[key] == resolved[key]
        assert logged["total_steps"] == STEPS


@pytest.mark.slow  # needs the three train.py runs
def test_custom_scalars_layout_names_the_logged_layers_and_config_is_text(root):
    values = {tag: value for _, tag, value in summaries(root / "selu")}
    layout = layout_pb2.Layout.FromString(tf.make_ndarray(values["custom_scalars__config__"].tensor).item())
    logged = {tag for tag in read_events(root / "selu") if tag.startswith("activation_stats/")}
    for category in layout.category[:3]:
        for chart in category.chart:
            (pattern,) = chart.multiline.tag
            assert pattern.strip("^$").replace("\\", "") in logged
    assert [c.title for c in layout.category[0].chart] == \
           [f"{layer_tag(k)} mean (SELU target 0)" for k in range(1, len(LAYERS) + 1)]
    text = tf.make_ndarray(values[overview.CONFIG_TEXT_TAG].tensor).item().decode()
    assert "| resolved.init | lecun_normal |" in text


@pytest.mark.slow  # needs the three train.py runs
def test_short_runs_log_a_point_per_step_and_the_full_test_set_at_the_end(root):
    events = read_events(root / "relu")
    for metric in ("loss", "accuracy"):
        assert [s for s, _ in events[TRAIN_TAG.format(metric=metric)]] == list(range(1, STEPS + 1))
        assert [s for s, _ in events[TEST_SUBSET_TAG.format(metric=metric)]] == list(range(1, STEPS + 1))
    # metrics.json reads the full test set at the last step; the fixture's 40 images are all
    # in the subset, so both agree there.
    (last_step, full), = [p for p in events[TEST_TAG.format(metric="accuracy")] if p[0] == STEPS]
    _, subset = events[TEST_SUBSET_TAG.format(metric="accuracy")][-1]
    assert float(full) == pytest.approx(read_json(root / "relu" / "metrics.json")["test_accuracy"])
    assert float(subset) == pytest.approx(float(full), abs=1e-6)


# -----------------------------------------------------------------------------
# TensorBoard in a real browser

@pytest.mark.slow
def test_tensorboard_shows_hparams_custom_scalars_and_legible_images(root):
    browser.require_chromium()
    with browser.tensorboard(root) as base:
        hparams = browser.page_text(
            base + "/#hparams",
            ready=lambda p: all(a in p["text"] for a in ACTIVATIONS) and "he_normal" in p["text"])
        text = hparams["text"]
        assert all(a in text for a in ACTIVATIONS), text[:2000]
        for column in ("norm", "init", "dropout_kind", "test accuracy"):
            assert column in text
        assert "lecun_normal" in text and "he_normal" in text

        titles = [f"{layer_tag(k)} {stat}" for k in range(1, 7) for stat in ("mean", "std")]
        scalars = browser.page_text(base + "/#custom_scalars",
                                    ready=lambda p: all(t in p["text"] for t in titles))
        missing = [t for t in titles if t not in scalars["text"]]
        assert not missing, scalars["text"][:2000]

        # Images in the default Time Series tab (SVG: no WebGL under --disable-gpu).
        plots = browser.page_text(
            base + "/?forceSVG=true#timeseries",
            ready=lambda p: sum(w == 640 for w, _, _ in p["images"]) >= 2)
        shown = [shown for w, h, shown in plots["images"] if (w, h) == (640, 400)]
        assert shown, plots
        assert "activation_plots" in plots["text"]
