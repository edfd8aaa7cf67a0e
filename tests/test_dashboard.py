"""Tests of the Activations dashboard plugin: its routes over runs made by train.py, checked
against the event files, its answers to bad input, and the page drawn in a real browser."""
import json
import subprocess
import tomllib
import urllib.request
from importlib import import_module

import numpy as np
import pytest
from werkzeug.test import Client

import browser
from conftest import REPO_ROOT
from datasets.synthetic import write_mnist
from runs import TINY, read_events, train_cmd

from avh.dashboard import runs as run_info
from avh.dashboard.plugin import ActivationsPlugin

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
def root(tmp_path_factory):
    """A logdir with three tiny runs of train.py (made at once, in parallel), a run with no
    activation tags and one with a histogram in a shape the dashboard does not know."""
    base = tmp_path_factory.mktemp("dashboard")
    data = write_mnist(base / "mnist")
    logdir = base / "logs"
    processes = [subprocess.Popen(
        train_cmd("--dataset", "mnist", "--data-dir", data, "--max-steps", 6, *TINY, "--plot-layers",
                  "--activation", activation, "--logdir", logdir, "--run-name", activation),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT)
        for activation in ACTIVATIONS]
    for process in processes:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output[-3000:]
    (logdir / "empty").mkdir()
    _write_foreign_run(logdir / "empty")
    (logdir / "odd").mkdir()
    _write_foreign_run(logdir / "odd", histogram=np.arange(5.0))
    return logdir


@pytest.fixture(scope="module")
def client(root):
    """The plugin's routes in-process, over TensorBoard's own data provider for `root`."""
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(root))
    multiplexer.Reload()
    context = base_plugin.TBContext(
        data_provider=data_provider.MultiplexerDataProvider(multiplexer, str(root)), logdir=str(root))
    apps = ActivationsPlugin(context).get_plugin_apps()

    def app(environ, start_response):
        route = environ["PATH_INFO"][len(PREFIX):]
        handler = apps.get(route) or (apps["/static/*"] if route.startswith("/static/") else None)
        if handler is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no route"]
        return handler(environ, start_response)

    return Client(app)


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
        assert np.array_equal(np.array(run["buckets"]), histogram)
        for stat in ("mean", "std", "nonpositive_fraction"):
            expected = dict(logged[f"activation_stats/3_conv3/{stat}"])[step]
            assert run[stat] == pytest.approx(float(expected), rel=1e-6)
        assert run["stats_from"] == "logged"


@pytest.mark.slow  # needs the three train.py runs (~35 s)
def test_distribution_between_summary_steps_shows_each_runs_last_step_before(client, events):
    answer = get_json(client, "/distribution", layer="1_conv1", step="3", run="selu")
    (run,) = answer["runs"]
    assert run["step"] == 2
    assert np.array_equal(np.array(run["buckets"]), dict(events["selu"]["activations/1_conv1"])[2])


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
