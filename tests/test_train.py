"""train.py end to end on tiny data in the official formats, read back from the files it wrote;
and the activations' own numbers (SELU's formula, the self-normalising fixed point)."""
import math
import os
import re

import numpy as np
import pytest

from datasets import synthetic as fixtures
from runs import TINY, read_events, read_json, run_train
from model import LAYERS, layer_tag
from avh_app.pipeline import PROBE_SIZE
from avh.tags import HISTOGRAM_TAG, PLOT_KINDS, PLOT_TAG, STAT_TAG, STATS, TEST_TAG, TRAIN_TAG

pytestmark = pytest.mark.slow  # each test drives train.py as a subprocess

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# One run per activation, each on another data set, so every activation and every data set
# (and both conv widths) goes through the whole app once.
CASES = {
    "selu": ("mnist", lambda d: fixtures.write_mnist(d, n_train=96, n_test=40)),
    "relu": ("svhn", lambda d: fixtures.write_svhn(d, n_train=96, n_test=40)),
    "lrelu": ("cifar10", lambda d: fixtures.write_cifar10(d, n_per_batch=20, n_test=40)),
}
MAX_STEPS = 5  # 96-100 images / batch 32 = 3-4 steps an epoch: the run crosses an epoch boundary


@pytest.fixture(scope="module", params=sorted(CASES))
def finished_run(request, tmp_path_factory):
    activation = request.param
    dataset, write = CASES[activation]
    tmp = tmp_path_factory.mktemp(activation)
    data_dir = write(tmp / "data")
    result = run_train("--dataset", dataset, "--activation", activation, "--data-dir", data_dir,
                       "--logdir", tmp / "logs", "--run-name", "run", "--max-steps", MAX_STEPS,
                       *TINY)
    assert result.returncode == 0, result.stderr
    run_dir = tmp / "logs" / "run"
    return activation, dataset, run_dir, read_events(run_dir), result


def test_run_logs_every_layer_histogram_and_stats(finished_run):
    activation, dataset, run_dir, events, _ = finished_run
    for k in range(1, len(LAYERS) + 1):
        layer = layer_tag(k)
        steps = [step for step, _ in events[HISTOGRAM_TAG.format(layer=layer)]]
        assert steps == [0, 2, 4, 5]  # step 0 (the init alone), every 2 steps, and the last
        for stat in STATS:
            values = [float(v) for _, v in events[STAT_TAG.format(layer=layer, stat=stat)]]
            assert len(values) == 4 and all(math.isfinite(v) for v in values)


def test_histogram_counts_every_value_of_the_probe_batch(finished_run):
    activation, dataset, run_dir, events, _ = finished_run
    config = read_json(run_dir / "config.json")
    probe = min(PROBE_SIZE, config["data"]["test_examples"])
    conv3_filters = 128 if dataset == "mnist" else 256
    expected = {"3_conv3": probe * 4 * 4 * conv3_filters, "4_fc4": probe * 160,
                "6_logits": probe * 10}
    for layer, count in expected.items():
        _, buckets = events[HISTOGRAM_TAG.format(layer=layer)][-1]
        assert buckets.shape[1] == 3  # left edge, right edge, count
        assert buckets[:, 2].sum() == count


def test_stats_agree_with_the_histogram(finished_run):
    _, _, _, events, _ = finished_run
    _, buckets = events[HISTOGRAM_TAG.format(layer="4_fc4")][-1]
    centres = (buckets[:, 0] + buckets[:, 1]) / 2
    approx_mean = (centres * buckets[:, 2]).sum() / buckets[:, 2].sum()
    _, mean = events[STAT_TAG.format(layer="4_fc4", stat="mean")][-1]
    width = (buckets[:, 1] - buckets[:, 0]).max()
    assert abs(approx_mean - float(mean)) <= width


def test_nonpositive_fraction_matches_the_activation(finished_run):
    activation, _, _, events, _ = finished_run
    # ReLU outputs are >= 0, so "non-positive" means exactly 0: a fraction of them, never all.
    for layer in ("1_conv1", "4_fc4"):
        _, lowest = events[HISTOGRAM_TAG.format(layer=layer)][-1][1][0, :2]
        if activation == "relu":
            assert lowest >= 0
        else:
            assert lowest < 0  # SELU and LeakyReLU pass negative values
        fraction = float(events[STAT_TAG.format(layer=layer, stat="nonpositive_fraction")][-1][1])
        assert 0 < fraction < 1


def test_plot_layers_get_both_figures_as_png(finished_run):
    _, _, _, events, _ = finished_run
    for layer in ("3_conv3", "4_fc4"):
        for kind in PLOT_KINDS:
            records = events[PLOT_TAG.format(layer=layer, kind=kind)]
            assert [step for step, _ in records][0] == 0 and records[-1][0] == 5
            width, height, png = records[-1][1]
            assert png.startswith(PNG_SIGNATURE) and int(width) > 100 and int(height) > 100
    assert not any(tag.startswith("activation_plots/1_") for tag in events)


def test_loss_and_accuracy_for_train_and_test(finished_run):
    _, _, run_dir, events, _ = finished_run
    metrics = read_json(run_dir / "metrics.json")
    epoch_end = read_json(run_dir / "config.json")["steps_per_epoch"]
    assert epoch_end < MAX_STEPS
    # A run this short logs its training curve at every step (avh_app.curves: ~50 points a run).
    assert [s for s, _ in events[TRAIN_TAG.format(metric="loss")]] == list(range(1, MAX_STEPS + 1))
    # The test set is evaluated at each epoch end and at the end of training.
    test_acc = events[TEST_TAG.format(metric="accuracy")]
    assert [s for s, _ in test_acc] == [epoch_end, MAX_STEPS]
    assert float(test_acc[-1][1]) == pytest.approx(metrics["test_accuracy"])
    assert float(events[TEST_TAG.format(metric="loss")][-1][1]) == pytest.approx(metrics["test_loss"])


def test_config_and_metrics_files(finished_run):
    activation, dataset, run_dir, _, _ = finished_run
    config = read_json(run_dir / "config.json")
    assert (config["dataset"], config["activation"], config["max_steps"]) == (dataset, activation, MAX_STEPS)
    expected = {"selu": ["none", "lecun_normal", "alpha"],
                "relu": ["batch", "he_normal", "standard"],
                "lrelu": ["batch", "he_normal", "standard"]}[activation]
    resolved = config["resolved"]
    assert [resolved["norm"], resolved["init"], resolved["dropout_kind"]] == expected
    assert {"tensorflow", "keras", "matplotlib"} <= set(config["versions"])
    assert config["data"]["train_examples"] == (100 if dataset == "cifar10" else 96)
    assert config["data"]["test_examples"] == 40
    metrics = read_json(run_dir / "metrics.json")
    assert metrics["steps"] == MAX_STEPS
    assert 0 <= metrics["test_accuracy"] <= 1 and math.isfinite(metrics["test_loss"])
    assert metrics["examples_per_sec"] > 0
    # The app's own work on the training thread, callback by callback, as a share of the timed
    # part of the run: the summaries log there (step 0 and more), nothing takes it all.
    shares = metrics["training_thread_share"]
    assert set(shares) == {"NaN guard", "activation summaries", "train curves and progress",
                           "test subset", "checkpoints", "live flushes", "stop requests"}
    assert shares["activation summaries"] > 0 and 0 < sum(shares.values()) < 1
    mean_step_ms = 1000 * config["batch_size"] / metrics["examples_per_sec"]  # events included
    assert 0 < metrics["median_step_ms"] < 3 * mean_step_ms  # a step's time, not a run's
    assert (run_dir / "checkpoint.keras").exists()


def test_selu_network_starts_near_the_fixed_point(finished_run):
    """At step 0 the weights are only the init: with SELU and LeCun-normal weights on
    standardised inputs, every hidden layer of the real network starts near mean 0, std 1."""
    activation, _, _, events, _ = finished_run
    if activation != "selu":
        pytest.skip("the fixed point is SELU's")
    for layer in map(layer_tag, range(1, 6)):
        step, mean = events[STAT_TAG.format(layer=layer, stat="mean")][0]
        _, std = events[STAT_TAG.format(layer=layer, stat="std")][0]
        assert step == 0
        assert abs(float(mean)) < 0.25, layer
        assert 0.7 < float(std) < 1.3, layer


@pytest.mark.parametrize("flag, policy", [("--jit", "float32"), ("--mixed-precision", "mixed_bfloat16")])
def test_gpu_options_run_on_cpu_and_log_float32(tmp_path, flag, policy):
    data_dir = fixtures.write_mnist(tmp_path / "data", n_train=64, n_test=32)
    result = run_train("--data-dir", data_dir, "--logdir", tmp_path, "--run-name", "run",
                       "--max-steps", 2, "--batch-size", 32, "--summary-every", 2, flag)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "run"
    assert read_json(run_dir / "config.json")["resolved"]["dtype_policy"] == policy
    events = read_events(run_dir)
    for layer in map(layer_tag, range(1, 7)):
        _, std = events[STAT_TAG.format(layer=layer, stat="std")][-1]
        assert std.dtype == np.float32 and 0 < float(std) < 100
    assert read_json(run_dir / "metrics.json")["steps"] == 2
    # The last step is also a summary step: its figures are drawn all the same.
    for layer in ("3_conv3", "4_fc4"):
        assert [s for s, _ in events[PLOT_TAG.format(layer=layer, kind="map")]] == [0, 2]


def test_steps_per_execution_that_misses_a_cadence_is_one_error_line(tmp_path):
    result = run_train("--logdir", tmp_path, "--steps-per-execution", "16")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: --summary-every 100 is not a multiple of --steps-per-execution 16; choose "
        "cadences that are multiples of it (or a smaller N)"]
    assert not any(tmp_path.iterdir())


def test_the_first_command_trains_on_the_bundled_sample_without_network(tmp_path):
    """The README's first command on a machine without network: one line says so, the run trains
    on the bundled real sample, and config.json and HParams record where its data came from."""
    from tensorboard.plugins.hparams import metadata as hparams_metadata

    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras"),  # nothing cached
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}  # unreachable
    done = run_train("--activation", "selu", "--dataset", "mnist", "--max-steps", 3,
                     "--summary-every", 0, "--logdir", tmp_path / "logs", "--run-name", "first",
                     env=env)
    assert done.returncode == 0, done.stderr
    # Trying the download loads TensorFlow as the app does: without its C++ start-up chatter
    # (and with its CPU settings, avh_app.cli.import_tensorflow).
    chatter = [line for line in done.stderr.splitlines()
               if "absl::InitializeLog" in line or re.match(r"[IWEF]\d{4} ", line)]
    assert not chatter, chatter
    notes = [line for line in done.stdout.splitlines() if "bundled" in line]
    assert len(notes) == 1 and notes[0].startswith("cannot download MNIST (") and notes[0].endswith(
        "training on the bundled 6,000-image MNIST sample; pass --data-dir for the full set")
    run_dir = tmp_path / "logs" / "first"
    data = read_json(run_dir / "config.json")["data"]
    assert (data["source"], data["train_examples"], data["test_examples"]) == ("sample", 6000, 1000)
    from avh.events import event_files
    from tensorboard.backend.event_processing import event_file_loader
    infos = [hparams_metadata.parse_session_start_info_plugin_data(value.metadata.plugin_data.content)
             for path in event_files(run_dir) for event in event_file_loader.EventFileLoader(str(path)).Load()
             for value in event.summary.value if value.tag == hparams_metadata.SESSION_START_INFO_TAG]
    assert infos[0].hparams["data_source"].string_value == "sample"
