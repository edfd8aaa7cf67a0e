"""Tests of the Activations dashboard plugin: its routes over runs made by train.py and over
event files written here with TensorBoard's protos, checked against the event files; the
histograms' wire format; the cache across growing files; its answers to bad input; and the page
in a real browser, following a run that grows while it is open."""
import importlib.util
import json
import shutil
import time
import tomllib
import urllib.request
from importlib import import_module
from types import SimpleNamespace

import numpy as np
import pytest
from werkzeug.test import Client

import browser
from conftest import REPO_ROOT
from runs import read_events

from avh.dashboard import runs as run_info
from avh.dashboard.plugin import ActivationsPlugin
from avh.dashboard.series import decode_histogram, encode_histogram

ACTIVATIONS = ("selu", "relu", "lrelu")
LAYERS = ["1_conv1", "2_conv2", "3_conv3", "4_fc4", "5_fc5", "6_logits"]
PREFIX = "/data/plugin/activations"


def _write_foreign_run(run_dir, histogram=None):
    """A run not made by train.py: a loss scalar, optionally one histogram-plugin tensor, and a
    config.json that is not JSON. Written with TensorBoard's own protos (no TensorFlow)."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.plugins.histogram import metadata as histogram_metadata
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
    from tensorboard.util import tensor_util

    writer = EventFileWriter(str(run_dir))
    for step in (1, 2):
        values = [summary_pb2.Summary.Value(tag="train/loss", simple_value=1.0 / step)]
        if histogram is not None:
            values.append(summary_pb2.Summary.Value(
                tag="activations/odd", tensor=tensor_util.make_tensor_proto(histogram),
                metadata=histogram_metadata.create_summary_metadata(display_name=None, description=None)))
        writer.add_event(event_pb2.Event(step=step, wall_time=1.0 + step, summary=summary_pb2.Summary(value=values)))
    writer.close()
    (run_dir / "config.json").write_text("{not json")


@pytest.fixture(scope="module")
def root(tmp_path_factory, compared_root):
    """A logdir with the session's three tiny train.py runs (conftest.py, copied), a run with no
    activation tags and one with a histogram in a shape the dashboard does not know."""
    logdir = tmp_path_factory.mktemp("dashboard") / "logs"
    shutil.copytree(compared_root[0], logdir, ignore=shutil.ignore_patterns("*.keras", ".lock"))
    (logdir / "empty").mkdir()
    _write_foreign_run(logdir / "empty")
    (logdir / "odd").mkdir()
    _write_foreign_run(logdir / "odd", histogram=np.arange(5.0))
    return logdir


def _plugin(root, data_provider=None, flags=None, **options):
    """(plugin, multiplexer): the plugin over TensorBoard's own data provider for `root`, as
    `tensorboard --load_fast=false` serves it; `data_provider` wraps the provider (a spy);
    `options` go to the plugin."""
    from tensorboard.backend.event_processing import data_provider as tb_data_provider
    from tensorboard.backend.event_processing import plugin_event_multiplexer
    from tensorboard.plugins import base_plugin

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(root))
    multiplexer.Reload()
    provider = tb_data_provider.MultiplexerDataProvider(multiplexer, str(root))
    context = base_plugin.TBContext(data_provider=data_provider(provider) if data_provider else provider,
                                    logdir=str(root), flags=flags)
    return ActivationsPlugin(context, **options), multiplexer


def _client(plugin):
    """The plugin's routes in-process, as TensorBoard mounts them."""
    apps = plugin.get_plugin_apps()

    def app(environ, start_response):
        route = environ["PATH_INFO"][len(PREFIX):]
        handler = apps.get(route) or (apps["/static/*"] if route.startswith("/static/") else None)
        if handler is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no route"]
        return handler(environ, start_response)

    return Client(app)


@pytest.fixture(scope="module")
def client(root):
    """The plugin's routes in-process, over TensorBoard's own data provider for `root`."""
    return _client(_plugin(root)[0])


def get_json(client, route, expect=200, **params):
    response = client.get(PREFIX + route, query_string=params)
    assert response.status_code == expect, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return json.loads(response.get_data(as_text=True))


@pytest.fixture(scope="module")
def events(root):
    return {activation: read_events(root / activation) for activation in ACTIVATIONS}


@pytest.mark.slow  # needs the three train.py runs (~35 s)
def test_runs_lists_each_runs_layers_last_step_and_activation(client):
    answer = get_json(client, "/runs")
    by_run = {run["run"]: run for run in answer["runs"]}
    assert set(by_run) == {*ACTIVATIONS, "empty", "odd"}
    assert answer["layers"] == LAYERS + ["odd"]
    for activation in ACTIVATIONS:
        run = by_run[activation]
        assert run["layers"] == LAYERS and run["stat_layers"] == LAYERS
        assert run["last_step"] == 6
        assert (run["activation"], run["activation_from"]) == (activation, "config")
        assert run["dataset"] == "mnist" and run["finished"] is True
    assert by_run["empty"]["layers"] == [] and by_run["empty"]["activation"] is None  # bad config.json


@pytest.mark.slow  # needs the three train.py runs (~35 s)
def test_distribution_equals_the_histograms_and_stats_in_the_event_files(client, events):
    answer = get_json(client, "/distribution", layer="3_conv3", run=list(ACTIVATIONS))
    assert answer["layer"] == "3_conv3" and answer["step"] == "last" and answer["missing"] == []
    assert [run["run"] for run in answer["runs"]] == list(ACTIVATIONS)
    for run in answer["runs"]:
        logged = events[run["run"]]
        step, histogram = logged["activations/3_conv3"][-1]
        assert answer["steps"] == sorted(s for s, _ in logged["activations/3_conv3"])
        assert run["step"] == step == 6
        assert np.array_equal(decode_histogram(run["histogram"]), histogram)
        for stat in ("mean", "std", "nonpositive_fraction"):
            expected = dict(logged[f"activation_stats/3_conv3/{stat}"])[step]
            assert run[stat] == pytest.approx(float(expected), rel=1e-6)
        assert run["stats_from"] == "logged"


@pytest.mark.slow  # needs the three train.py runs (~35 s)
def test_distribution_between_summary_steps_shows_each_runs_last_step_before(client, events):
    answer = get_json(client, "/distribution", layer="1_conv1", step="3", run="selu")
    (run,) = answer["runs"]
    assert run["step"] == 2
    assert np.array_equal(decode_histogram(run["histogram"]), dict(events["selu"]["activations/1_conv1"])[2])


@pytest.mark.slow  # needs the three train.py runs (~35 s)
def test_trajectory_is_the_logged_mean_and_std_at_every_step(client, events):
    answer = get_json(client, "/trajectory", layer="4_fc4", run=["relu", "selu"])
    assert [run["run"] for run in answer["runs"]] == ["relu", "selu"]
    for run in answer["runs"]:
        means = dict(events[run["run"]]["activation_stats/4_fc4/mean"])
        stds = dict(events[run["run"]]["activation_stats/4_fc4/std"])
        assert [p[0] for p in run["points"]] == sorted(means)
        for step, mean, std in run["points"]:
            assert (mean, std) == (pytest.approx(float(means[step])), pytest.approx(float(stds[step])))


@pytest.mark.slow  # needs the three train.py runs (~35 s)
def test_runs_without_activation_data_are_reported_not_fatal(client):
    answer = get_json(client, "/distribution", layer="3_conv3", run=["empty", "selu", "no-such-run"])
    assert [run["run"] for run in answer["runs"]] == ["selu"]
    assert {m["run"] for m in answer["missing"]} == {"empty", "no-such-run"}
    odd = get_json(client, "/distribution", layer="odd", run="odd")
    assert odd["runs"] == [] and odd["missing"] == [{"run": "odd", "reason": "histogram in an unknown format"}]
    assert get_json(client, "/trajectory", layer="3_conv3", run="empty")["runs"] == []
    assert get_json(client, "/distribution", layer="no_such_layer")["runs"] == []


@pytest.mark.slow  # needs the three train.py runs (~35 s)
@pytest.mark.parametrize("params", [
    {}, {"layer": ""}, {"layer": ["3_conv3", "4_fc4"]}, {"layer": "x" * 2000},
    {"layer": "3_conv3", "step": "-1"}, {"layer": "3_conv3", "step": "abc"},
    {"layer": "3_conv3", "step": "1" * 30}, {"layer": "3_conv3", "step": "1.5"},
    {"layer": "3_conv3", "run": ""}, {"layer": "3_conv3", "run": "a\nb"},
])
def test_bad_query_parameters_answer_400_with_a_json_error(client, params):
    for route in ("/distribution", "/trajectory"):
        if route == "/trajectory" and "step" in params:
            continue  # trajectories have no step
        assert isinstance(get_json(client, route, expect=400, **params)["error"], str)


@pytest.mark.slow  # needs the three train.py runs (~35 s)
def test_frontend_files_are_served_and_nothing_else(client):
    for path, kind in (("/index.js", "text/javascript"), ("/index.html", "text/html"),
                       ("/static/app.js", "text/javascript"), ("/static/style.css", "text/css")):
        response = client.get(PREFIX + path)
        assert (response.status_code, response.mimetype) == (200, kind), path
    for path in ("/static/../plugin.py", "/static/%2e%2e/plugin.py", "/static/plugin.py", "/static/"):
        assert client.get(PREFIX + path).status_code == 404, path


@pytest.mark.parametrize("run, group, seed", [
    ("selu/seed0", "selu", 0), ("selu/seed1", "selu", 1), ("selu-seed12", "selu", 12),
    ("cifar/relu_seed_3/x", "cifar/relu/x", 3), ("seed4", ".", 4), ("lrelu", "lrelu", None),
    ("seedless/run", "seedless/run", None), ("-seed1", "-seed1", None),
])
def test_seed_groups_come_from_a_seed_component_or_suffix(run, group, seed):
    assert run_info.seed_group(run) == (group, seed)


def test_layers_sort_by_number_then_name():
    assert sorted(["10_fc10", "2_conv2", "dense", "1_conv1"], key=run_info.layer_order) == \
        ["1_conv1", "2_conv2", "10_fc10", "dense"]


def test_pyproject_declares_the_plugin_entry_point():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    target = project["entry-points"]["tensorboard_plugins"]["activations"]
    module, name = target.split(":")
    assert getattr(import_module(module), name) is ActivationsPlugin


@pytest.mark.slow
def test_tensorboard_serves_the_dashboard_and_a_browser_draws_every_runs_curve(root):
    browser.require_chromium()
    with browser.tensorboard(root) as base:
        with urllib.request.urlopen(base + "/data/plugins_listing", timeout=10) as response:
            listing = json.load(response)
        assert "activations" in listing, "plugin not loaded: is avh installed here (pip install -e .)?"
        assert listing["activations"]["enabled"]
        assert listing["activations"]["loading_mechanism"]["type"] == "IFRAME"
        dom = browser.dump_dom(base + PREFIX + "/index.html")
    chart = dom.split('id="distribution"', 1)[1].split("</svg>", 1)[0]
    drawn = {run for run in ACTIVATIONS if f'class="curve" data-run="{run}"' in chart}
    assert drawn == set(ACTIVATIONS), chart[:2000]
    trajectories = dom.split('id="trajectories"', 1)[1]
    for run in ACTIVATIONS:
        assert trajectories.count(f'class="trajectory" data-run="{run}"') == len(LAYERS)
    assert "no activation data" in dom


# -----------------------------------------------------------------------------
# Runs written here with TensorBoard's protos (fast: no train.py), through the `_impl`s

def load_script(name):
    """scripts/NAME.py as a module (scripts/ is not a package: the scripts run as files)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


timing = load_script("dashboard_timing")
SWEEP_STEPS = 5  # steps 0, 10, ..., 40
UNEVEN = np.array([[-1.0, 0.0, 3.0], [0.0, 0.5, 5.0], [0.5, 2.0, 1.0]])  # another writer's edges


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Two seeds each of selu and relu with the backward signal (`sweep/<activation>/seed<k>`),
    a run of an older version without it (`old/lrelu/seed0`), and another writer's run with a
    histogram of uneven edges and no statistics (`foreign`)."""
    root = tmp_path_factory.mktemp("sweep")
    timing.write_sweep(root / "sweep", runs=4, steps=SWEEP_STEPS)
    timing.write_sweep(root / "old", runs=1, steps=SWEEP_STEPS, groups=("lrelu",), gradients=False)
    (root / "foreign").mkdir()
    _write_foreign_run(root / "foreign", histogram=UNEVEN)
    return root


SWEEP_RUNS = ["sweep/relu/seed0", "sweep/relu/seed1", "sweep/selu/seed0", "sweep/selu/seed1"]


@pytest.fixture(scope="module")
def sweep_events(sweep):
    return {run: read_events(sweep / run) for run in [*SWEEP_RUNS, "old/lrelu/seed0"]}


def _ctx():
    from tensorboard import context
    return context.RequestContext()


def test_gradient_histograms_are_served_as_written(sweep, sweep_events):
    plugin, _ = _plugin(sweep)
    for step in (None, 20, 25):
        answer = plugin.distribution_impl(_ctx(), "", "3_conv3", step=step, runs=[*SWEEP_RUNS, "old/lrelu/seed0"],
                                          kind="gradients")
        assert answer["kind"] == "gradients" and answer["steps"] == [0, 10, 20, 30, 40]
        assert [r["run"] for r in answer["runs"]] == SWEEP_RUNS
        assert answer["missing"] == [{"run": "old/lrelu/seed0", "reason": "no gradient data for this layer"}]
        for run in answer["runs"]:
            logged = sweep_events[run["run"]]
            expected_step = 40 if step is None else 20
            assert run["step"] == expected_step
            assert np.array_equal(decode_histogram(run["histogram"]),
                                  dict(logged["gradients/3_conv3"])[expected_step])
            for stat in ("std", "rms", "zero_fraction"):
                written = dict(logged[f"gradient_stats/3_conv3/{stat}"])[expected_step]
                assert np.float32(run[stat]) == written, stat
            assert run["stats_from"] == "logged"


def test_activation_histograms_of_avh_go_compact_and_decode_to_what_was_written(sweep, sweep_events):
    plugin, _ = _plugin(sweep)
    answer = plugin.distribution_impl(_ctx(), "", "1_conv1", step=10, runs=SWEEP_RUNS)
    for run in answer["runs"]:
        assert set(run["histogram"]) == {"low", "high", "counts"}
        assert all(isinstance(c, int) for c in run["histogram"]["counts"])
        assert np.array_equal(decode_histogram(run["histogram"]),
                              dict(sweep_events[run["run"]]["activations/1_conv1"])[10])
        assert np.float32(run["mean"]) == dict(sweep_events[run["run"]]["activation_stats/1_conv1/mean"])[10]
    foreign = plugin.distribution_impl(_ctx(), "", "odd", runs=["foreign"])
    (run,) = foreign["runs"]
    assert run["histogram"] == {"buckets": UNEVEN.tolist()} and run["step"] == 2
    assert foreign["steps"] == [1, 2]  # no statistics to take steps from: read in full
    assert run["stats_from"] == "histogram"


def _tf_edges(low, high, k):
    """The edges avh.signal.histogram_buckets makes (tf.linspace(low, high, k + 1)'s) in float64
    from float32 extremes: low + i * ((high - low) / k), ending at high."""
    low, high = float(np.float32(low)), float(np.float32(high))
    edges = low + np.arange(k + 1) * ((high - low) / k)
    edges[-1] = high
    return edges


@pytest.mark.parametrize("edges, counts", [
    (np.linspace(-3.7, 5.2, 81), np.arange(80.0)),                    # np.linspace, 80 buckets
    (_tf_edges(-0.123456789, 7.654321, 80), np.ones(80) * 7),        # tf.linspace from float32
    (np.array([2.5, 3.5]), np.array([128.0])),                        # a constant layer: [v, v + 1)
    (np.linspace(-1e-5, 1e-5, 31), np.r_[np.zeros(15), 99, np.zeros(14)]),  # tiny gradients
    (np.linspace(0, 1, 11), np.linspace(0.5, 3.5, 10)),              # counts that are not whole
])
def test_compact_encoding_decodes_to_the_same_buckets_bit_for_bit(edges, counts):
    histogram = np.stack([edges[:-1], edges[1:], counts], axis=1)
    encoded = encode_histogram(histogram)
    assert set(encoded) == {"low", "high", "counts"}
    assert json.loads(json.dumps(encoded)) == encoded
    assert np.array_equal(decode_histogram(json.loads(json.dumps(encoded))), histogram)


def test_trajectory_points_are_kept_out_of_the_garbage_collectors_lists():
    import gc

    from avh.dashboard.series import ScalarSeries

    datum = SimpleNamespace
    means = ScalarSeries([datum(step=s, value=0.1 * s) for s in range(100)])
    stds = ScalarSeries([datum(step=s, value=1.0 + 0.01 * s) for s in range(0, 100, 2)])
    points = means.joined(stds)
    assert points == [(s, means.at(s), stds.at(s)) for s in range(0, 100, 2)]
    gc.collect()  # a 100-run sweep keeps ~10,000 such points a layer: a full collection skips them
    assert not any(gc.is_tracked(point) for point in points)


@pytest.mark.parametrize("histogram", [
    UNEVEN,                                                                          # uneven edges
    np.stack([np.linspace(0, 1, 6)[:-1] + [0, 0, 1e-9, 0, 0], np.linspace(0, 1, 6)[1:], np.ones(5)], axis=1),
    np.array([[0.0, 1.0, np.nan], [1.0, 2.0, 3.0]]),                                 # a NaN count: null
    np.array([[1.0, 1.0, 4.0]]),                                                     # zero width
])
def test_other_histograms_keep_the_k_by_3_form(histogram):
    encoded = encode_histogram(histogram)
    if "buckets" not in encoded:  # a NaN count on even edges: compact, the count null
        assert encoded["counts"][0] is None
    else:
        assert len(encoded["buckets"]) == len(histogram)
    assert np.array_equal(decode_histogram(json.loads(json.dumps(encoded))), histogram, equal_nan=True)
    assert encode_histogram(np.arange(5.0)) is None and encode_histogram(np.zeros((0, 3))) is None


def test_depth_gives_each_layers_written_forward_and_backward_std(sweep, sweep_events):
    plugin, _ = _plugin(sweep)
    for step, expected_step in ((None, 40), (25, 20), (0, 0)):
        answer = plugin.depth_impl(_ctx(), "", step=step, runs=[*SWEEP_RUNS, "old/lrelu/seed0", "foreign"])
        assert answer["layers"] == LAYERS and answer["step"] == ("last" if step is None else step)
        assert answer["missing"] == [{"run": "foreign", "reason": "no std statistics of its layers"}]
        by_run = {r["run"]: r for r in answer["runs"]}
        assert list(by_run) == [*SWEEP_RUNS, "old/lrelu/seed0"]
        for run, entry in by_run.items():
            logged = sweep_events[run]
            assert entry["step"] == expected_step
            forward = [dict(logged[f"activation_stats/{layer}/std"])[expected_step] for layer in LAYERS]
            assert np.array_equal(np.float32(entry["forward"]), forward)
            if run.startswith("old/"):
                assert entry["backward"] is None  # no gradient tags: the forward line only
            else:
                backward = [dict(logged[f"gradient_stats/{layer}/std"])[expected_step] for layer in LAYERS]
                assert np.array_equal(np.float32(entry["backward"]), backward)
    some = plugin.depth_impl(_ctx(), "", runs=["sweep/selu/seed0"], layers=["4_fc4", "1_conv1", "no_such"])
    assert some["layers"] == ["1_conv1", "4_fc4"]  # layer order, whatever the order asked in
    assert plugin.depth_impl(_ctx(), "", step=5, runs=["sweep/selu/seed0"])["runs"][0]["step"] == 0


def test_runs_lists_gradient_layers_and_the_newest_wall_time(sweep, sweep_events):
    plugin, _ = _plugin(sweep)
    answer = plugin.runs_impl(_ctx(), "")
    assert plugin.runs_impl(_ctx(), "") == answer  # statistics listed with the last answer's layers
    plugin._layers_seen = frozenset(["1_conv1", "gone"])  # as if layers had come and gone since
    assert plugin.runs_impl(_ctx(), "") == answer
    by_run = {r["run"]: r for r in answer["runs"]}
    assert set(by_run) == {*SWEEP_RUNS, "old/lrelu/seed0", "foreign"}
    assert by_run[SWEEP_RUNS[0]]["stat_layers"] == LAYERS and by_run["foreign"]["stat_layers"] == []
    for run in SWEEP_RUNS:
        assert by_run[run]["gradient_layers"] == LAYERS and by_run[run]["layers"] == LAYERS
        assert by_run[run]["group"] == run.rsplit("/", 1)[0] and by_run[run]["last_step"] == 40
    assert by_run["old/lrelu/seed0"]["gradient_layers"] == [] and by_run["old/lrelu/seed0"]["colour"] == "#2ca02c"
    newest = {r["run"]: r["last_wall_time"] for r in by_run.values()}
    from avh.events import event_files
    from tensorboard.backend.event_processing import event_file_loader
    walls = [e.wall_time for e in event_file_loader.EventFileLoader(str(event_files(sweep / SWEEP_RUNS[0])[0])).Load()
             if e.summary.value]
    assert newest[SWEEP_RUNS[0]] == pytest.approx(max(walls))


class SpyProvider:
    """A data provider that passes everything through and records each read's runs and tags."""

    def __init__(self, inner):
        self._inner, self.reads = inner, []

    def __getattr__(self, name):
        attribute = getattr(self._inner, name)
        if not name.startswith("read_"):
            return attribute

        def read(*args, **kwargs):
            rtf = kwargs.get("run_tag_filter")
            self.reads.append((name, tuple(rtf.runs or ()), tuple(rtf.tags or ()), kwargs.get("downsample")))
            return attribute(*args, **kwargs)
        return read


def _live_root(root, planned=3):
    """A finished run (relu/seed0, metrics.json written) and one still being written (selu/seed0,
    returned), 3 summary steps each (0, 10, 20) of `planned`."""
    done = timing.SweepRun(root, "relu", 0, steps=planned, start_time=1000.0)
    live = timing.SweepRun(root, "selu", 0, steps=planned, start_time=1000.0)
    for k in range(3):
        done.write(k)
        live.write(k)
    done.close()
    live.flush()
    return live


def test_cache_reads_only_grown_runs_again_and_serves_their_new_steps(tmp_path):
    root = tmp_path / "live"
    growing = _live_root(root, planned=10)
    spies = []
    plugin, multiplexer = _plugin(root, data_provider=lambda p: spies.append(SpyProvider(p)) or spies[-1],
                                  read_ahead_idle=None)  # only the requests' reads
    spy, runs = spies[0], ["relu/seed0", "selu/seed0"]

    def ask():
        return (plugin.distribution_impl(_ctx(), "", "2_conv2", runs=runs),
                plugin.distribution_impl(_ctx(), "", "2_conv2", step=10, runs=runs),
                plugin.trajectory_impl(_ctx(), "", "2_conv2", runs=runs),
                plugin.depth_impl(_ctx(), "", runs=runs))

    first = ask()
    reads = len(spy.reads)
    assert reads > 0 and ask() == first and len(spy.reads) == reads  # unchanged: listed, not read

    growing.write(3)
    growing.write(4)
    growing.flush()
    multiplexer.Reload()
    last, middle, trajectory, depth = ask()
    new_reads = spy.reads[reads:]
    assert new_reads and all(runs_read == ("selu/seed0",) for _, runs_read, _, _ in new_reads)
    logged = read_events(root / "selu" / "seed0")
    (selu,) = [r for r in last["runs"] if r["run"] == "selu/seed0"]
    assert selu["step"] == 40 and last["steps"] == [0, 10, 20, 30, 40]
    assert np.array_equal(decode_histogram(selu["histogram"]), dict(logged["activations/2_conv2"])[40])
    assert middle == first[1] | {"steps": [0, 10, 20, 30, 40]}  # step 10 itself is as it was
    (points,) = [r["points"] for r in trajectory["runs"] if r["run"] == "selu/seed0"]
    assert [p[0] for p in points] == [0, 10, 20, 30, 40]
    assert {r["run"]: r["step"] for r in depth["runs"]} == {"relu/seed0": 20, "selu/seed0": 40}
    assert np.float32(depth["runs"][1]["backward"][1]) == dict(logged["gradient_stats/2_conv2/std"])[40]
    growing.close()


def test_finished_runs_are_read_ahead_when_the_server_is_idle_and_live_runs_never(tmp_path):
    from avh.dashboard.cache import ALL_SAMPLES

    live = _live_root(tmp_path)
    spies = []
    plugin, _ = _plugin(tmp_path, data_provider=lambda p: spies.append(SpyProvider(p)) or spies[-1],
                        read_ahead_idle=0.05)
    spy, runs = spies[0], ["relu/seed0", "selu/seed0"]
    plugin.distribution_impl(_ctx(), "", "2_conv2", runs=runs)  # the last step: newest data only
    plugin.depth_impl(_ctx(), "", runs=runs)
    opened = len(spy.reads)
    assert plugin._cache.settle(timeout=30)
    ahead = spy.reads[opened:]
    assert ahead and all(r == ("relu/seed0",) and n == ALL_SAMPLES for _, r, _, n in ahead)
    read_ahead = {tag for _, _, tags, _ in ahead for tag in tags}
    assert "activations/2_conv2" in read_ahead and "activation_stats/6_logits/std" in read_ahead

    settled = len(spy.reads)
    middle = (plugin.distribution_impl(_ctx(), "", "2_conv2", step=10, runs=runs),
              plugin.depth_impl(_ctx(), "", step=10, runs=runs))
    moved = spy.reads[settled:]
    assert moved and all(r == ("selu/seed0",) for _, r, _, _ in moved)  # the finished run: cached
    plain, _ = _plugin(tmp_path, read_ahead_idle=None)
    assert middle == (plain.distribution_impl(_ctx(), "", "2_conv2", step=10, runs=runs),
                      plain.depth_impl(_ctx(), "", step=10, runs=runs))
    assert middle[0]["runs"][0]["step"] == 10 and middle[1]["runs"][0]["step"] == 10
    live.close()


def test_a_request_waits_for_the_read_ahead_it_needs_instead_of_reading_again(tmp_path):
    import threading

    live = _live_root(tmp_path)
    started, release = threading.Event(), threading.Event()

    class Held(SpyProvider):
        """Holds the background's reads until released."""

        def __getattr__(self, name):
            attribute = super().__getattr__(name)
            if not name.startswith("read_") or threading.current_thread().name != "avh-dashboard-ahead":
                return attribute

            def held(*args, **kwargs):
                started.set()
                assert release.wait(30)
                return attribute(*args, **kwargs)
            return held

    spies = []
    plugin, _ = _plugin(tmp_path, data_provider=lambda p: spies.append(Held(p)) or spies[-1],
                        read_ahead_idle=0.0)
    spy, tag = spies[0], "activations/2_conv2"
    plugin.distribution_impl(_ctx(), "", "2_conv2", runs=["relu/seed0"])
    assert started.wait(30)  # the background is reading relu/seed0's histograms in full
    answers = []
    moving = threading.Thread(target=lambda: answers.append(
        plugin.distribution_impl(_ctx(), "", "2_conv2", step=10, runs=["relu/seed0"])))
    moving.start()
    moving.join(0.3)
    assert moving.is_alive()  # waiting for the background's read
    release.set()
    moving.join(30)
    full_reads = [r for r in spy.reads if tag in r[2] and r[3] != 1]
    assert len(full_reads) == 1
    (run,) = answers[0]["runs"]
    logged = read_events(tmp_path / "relu" / "seed0")
    assert run["step"] == 10 and np.array_equal(decode_histogram(run["histogram"]),
                                                dict(logged[tag])[10])
    live.close()


def test_settings_give_tensorboards_reload_interval(sweep):
    assert _plugin(sweep, flags=SimpleNamespace(reload_interval=2.5))[0].settings_impl() == \
        {"reload_interval": 2.5, "reload_interval_from": "flags"}
    assert _plugin(sweep, flags=SimpleNamespace(reload_interval=0))[0].settings_impl()["reload_interval"] == 0
    assert _plugin(sweep)[0].settings_impl() == {"reload_interval": 5.0, "reload_interval_from": "default"}


@pytest.mark.parametrize("route, params", [
    ("/distribution", {"layer": "3_conv3", "kind": "weights"}),
    ("/distribution", {"layer": "3_conv3", "kind": ""}),
    ("/depth", {"step": "-1"}), ("/depth", {"step": "abc"}), ("/depth", {"step": "2.5"}),
    ("/depth", {"layer": ""}), ("/depth", {"layer": "a\nb"}), ("/depth", {"run": ""}),
    ("/trajectory", {"layer": "3_conv3", "run": "x" * 2000}),
])
def test_bad_parameters_of_the_new_routes_answer_400_with_a_json_error(sweep, route, params):
    client = _client(_plugin(sweep)[0])
    assert isinstance(get_json(client, route, expect=400, **params)["error"], str)


def test_routes_answer_json_over_http(sweep):
    client = _client(_plugin(sweep)[0])
    assert get_json(client, "/settings")["reload_interval"] == 5.0
    depth = get_json(client, "/depth", step="10", run=["sweep/selu/seed0", "no-such-run"])
    assert [r["run"] for r in depth["runs"]] == ["sweep/selu/seed0"] and depth["missing"][0]["run"] == "no-such-run"
    gradients = get_json(client, "/distribution", layer="6_logits", kind="gradients", run="sweep/relu/seed1")
    assert gradients["runs"][0]["step"] == 40


# -----------------------------------------------------------------------------
# The page in a real browser, on runs written here

def _wait_text(page, selector, needle, timeout=30):
    return page.wait_for(f"(document.querySelector({selector!r}) || {{}}).textContent?.includes({needle!r})",
                         timeout=timeout, what=f"{needle!r} in {selector}")


@pytest.mark.slow  # TensorBoard and Chromium (~30 s)
def test_page_follows_a_growing_run_by_itself_and_keeps_the_users_choices(tmp_path):
    root = tmp_path / "live"
    growing = timing.SweepRun(root, "selu", 0, steps=10)
    for k in range(3):                         # steps 0, 10, 20
        growing.write(k)
    growing.flush()
    for seed in (0, 1):
        done = timing.SweepRun(root, "relu", seed, steps=3)
        for k in range(3):
            done.write(k)
        done.close()
    browser.require_chromium()
    with browser.tensorboard(root) as base, browser.Page(base + PREFIX + "/index.html", height=1400) as page:
        _wait_text(page, "#updated", "last step 20")
        # The user's choices: untick a run, pick a layer and a step, group seeds, zoom in.
        page.evaluate("document.querySelector('#run-list li[data-run=\"relu/seed1\"] input').click()")
        page.evaluate("(() => { const s = document.querySelector('#layer'); s.value = '2_conv2';"
                      " s.dispatchEvent(new Event('change')); })()")
        page.evaluate("(() => { const s = document.querySelector('#step'); s.value = '1';"
                      " s.dispatchEvent(new Event('input')); })()")
        _wait_text(page, "#distribution .chart-title", "2_conv2: activations at step 10")
        page.click(page.centre("#group-seeds"))
        page.wait_for("document.querySelector('#group-seeds').checked", what="group seeds ticked")
        box = page.evaluate("(() => { const r = document.querySelector('#distribution').getBoundingClientRect();"
                            " return [r.x, r.y, r.width, r.height]; })()")
        x, y, w, h = box
        page.drag((x + 0.4 * w, y + 0.5 * h), (x + 0.6 * w, y + 0.5 * h))
        page.wait_for("!document.querySelector('#reset-zoom').hidden", what="the zoom")
        zoomed_ticks = page.evaluate("[...document.querySelectorAll('#distribution .tick')].map((t) => t.textContent).join(' ')")
        # Nothing changes for a few refreshes: no redraw, and never two refreshes at once.
        page.evaluate("""(() => {
          window.__chart = document.querySelector('#distribution').firstChild;
          window.__depth = document.querySelector('#depth-forward').firstChild;
          window.__runs = 0; window.__inFlight = 0; window.__most = 0;
          const original = window.fetch;
          window.fetch = async (...args) => {
            const isRuns = new URL(String(args[0])).pathname.endsWith('/runs');
            if (isRuns) { window.__runs++; window.__inFlight++; window.__most = Math.max(window.__most, window.__inFlight); }
            try { return await original(...args); } finally { if (isRuns) window.__inFlight--; }
          };
        })()""")
        page.wait_for("window.__runs >= 3", timeout=20, what="three refreshes by the timer")
        assert page.evaluate("window.__chart.isConnected && window.__depth.isConnected"), "redrawn without a change"

        for k in (3, 4):                           # steps 30, 40, while the page is open
            growing.write(k)
        growing.flush()
        newcomer = timing.SweepRun(root, "relu", 2, steps=3)
        newcomer.write(0)
        newcomer.close()
        _wait_text(page, "#updated", "last step 40")
        page.wait_for("!!document.querySelector('#run-list li[data-run=\"relu/seed2\"]')", what="the new run")
        # Listed as soon as TensorBoard sees its folder, selected by the page itself once its
        # summaries are read too (a run without data is not): on a busy machine, a refresh later.
        page.wait_for("document.querySelector('#run-list li[data-run=\"relu/seed2\"] input').checked",
                      what="the new run selected")
        state = page.evaluate("""(() => ({
          layer: document.querySelector('#layer').value,
          stepText: document.querySelector('#step-text').textContent,
          sliderMax: document.querySelector('#step').max,
          title: document.querySelector('#distribution .chart-title').textContent,
          grouped: document.querySelector('#group-seeds').checked,
          zoomShown: !document.querySelector('#reset-zoom').hidden,
          ticks: [...document.querySelectorAll('#distribution .tick')].map((t) => t.textContent).join(' '),
          unticked: document.querySelector('#run-list li[data-run="relu/seed1"] input').checked,
          newcomer: document.querySelector('#run-list li[data-run="relu/seed2"] input').checked,
          most: window.__most,
        }))()""")
        assert state == {**state, "layer": "2_conv2", "stepText": "step 10", "sliderMax": "4", "grouped": True,
                         "zoomShown": True, "ticks": zoomed_ticks, "unticked": False, "newcomer": True, "most": 1}
        assert state["title"] == "2_conv2: activations at step 10"
        # Back to "last": it follows the newest step again.
        page.evaluate("(() => { const s = document.querySelector('#step'); s.value = s.max;"
                      " s.dispatchEvent(new Event('input')); })()")
        _wait_text(page, "#step-text", "last (step 40)")
        page.wait_for("[...document.querySelectorAll('#legend td')].some((td) => td.textContent === '40')",
                      what="step 40 in the legend")
    growing.close()


def _colour_share(image, hex_colour, tolerance=0.06):
    rgb = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return float(np.mean(np.all(np.abs(image[:, :, :3] - rgb) < tolerance, axis=2)))


@pytest.mark.slow  # TensorBoard and Chromium (~20 s)
def test_signal_by_depth_view_draws_each_runs_forward_and_backward_line(sweep, tmp_path):
    import matplotlib.image

    browser.require_chromium()
    with browser.tensorboard(sweep) as base:
        for grouped in (False, True):
            url = base + PREFIX + "/index.html" + ("?groupSeeds=1" if grouped else "")
            with browser.Page(url, height=1500) as page:
                page.wait_for("document.querySelectorAll('#depth-backward path.depth-line').length > 0", what="depth lines")
                # The distribution card above it drawn too: its legend, growing, moves the depth card.
                page.wait_for("!!document.querySelector('#distribution .chart-title')"
                              " && document.querySelectorAll('#legend td').length > 0", what="the distribution")
                lines = page.evaluate("""(() => Object.fromEntries(['forward', 'backward'].map((side) =>
                  [side, [...document.querySelectorAll('#depth-' + side + ' path.depth-line')].map((p) =>
                    [p.dataset.run, p.classList.contains('dashed'), p.getAttribute('stroke')])])))()""")
                # SELU's blue and ReLU's orange drawn in both panels (as the page is told to colour
                # them, below): looked for in screenshots until they show, for 20 s at most.
                deadline = time.monotonic() + 20
                while True:
                    shot = page.screenshot(tmp_path / f"depth-{grouped}.png", selector="#depth-card")
                    image = matplotlib.image.imread(shot)
                    halves = (image[:, : image.shape[1] // 2], image[:, image.shape[1] // 2:])
                    shares = [(_colour_share(h, "#1f77b4"), _colour_share(h, "#ff7f0e")) for h in halves]
                    if all(blue > 0.001 and orange > 0.001 for blue, orange in shares):
                        break
                    assert time.monotonic() < deadline, f"blue and orange shares of each panel: {shares}"
                    time.sleep(1)
                bands = page.evaluate("[...document.querySelectorAll('#depth-card polygon.band')].map((p) => p.dataset.group)")
                legend = page.evaluate("document.querySelector('#depth-legend').textContent")
            if not grouped:
                assert sorted(run for run, _, _ in lines["forward"]) == sorted([*SWEEP_RUNS, "old/lrelu/seed0"])
                assert sorted(run for run, _, _ in lines["backward"]) == SWEEP_RUNS  # the old run: forward only
                assert "forward only (no gradient statistics): old/lrelu/seed0" in legend
                assert bands == []
            else:
                assert sorted(run for run, _, _ in lines["backward"]) == ["group:sweep/relu", "group:sweep/selu"]
                assert sorted(bands) == ["group:sweep/relu"] * 2 + ["group:sweep/selu"] * 2
            assert all(dashed for _, dashed, _ in lines["backward"]) and not any(d for _, d, _ in lines["forward"])
            for side in ("forward", "backward"):  # each activation's own colour (avh.palette)
                strokes = {run.split("/")[1]: stroke for run, _, stroke in lines[side]  # a group, or seed 0:
                           if run.startswith("group:") or run.startswith("sweep/") and run.endswith("seed0")}  # base shade
                assert strokes["selu"].lower() == "#1f77b4" and strokes["relu"].lower() == "#ff7f0e", strokes
