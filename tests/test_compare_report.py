"""scripts/compare.py and scripts/report.py as a user runs them: three tiny runs in one root, a
report drawn from it, and a real TensorBoard serving it over HTTP on 127.0.0.1."""
import base64
import importlib.util
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import matplotlib.image
import pytest

from conftest import COMPARED_STEPS, REPO_ROOT
from datasets.synthetic import write_mnist
from model import LAYERS, layer_tag
from ops import COMPARED as ACTIVATIONS
from runs import read_events, read_json
from avh.tags import (GRADIENT_TAG, HISTOGRAM_TAG, MOMENT_MAP_TAG, PLOT_KINDS, PLOT_TAG, STATS,
                      TEST_TAG)

pytestmark = pytest.mark.slow  # subprocesses: train.py, compare.py, TensorBoard

SCRIPTS = REPO_ROOT / "scripts"
TINY = ["--max-steps", "4", "--summary-every", "2", "--batch-size", "32", "--seed", "3"]
PLOT_LAYERS = (3, 4)  # train.py's default --plot-layers
FIGURES = ("stats.png", "histograms.png", "test_curves.png")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_script(name, *args, cwd=REPO_ROOT, timeout=400):
    return subprocess.run([sys.executable, str(SCRIPTS / name), *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=timeout)


def load_script(name):
    """scripts/NAME.py as a module (scripts/ is not a package: the scripts run as files)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_one_error_line(done):
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    return write_mnist(tmp_path_factory.mktemp("mnist"), n_train=256, n_test=128)


@pytest.fixture(scope="module")
def compared(compared_root):
    """The session's compare.py root (conftest.py): (root, its process)."""
    return compared_root


# -----------------------------------------------------------------------------
# compare.py

def test_compare_trains_every_activation_into_one_root(compared):
    root, done = compared
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert sorted(p.name for p in root.iterdir()) == sorted(ACTIVATIONS)
    for activation in ACTIVATIONS:
        run = root / activation
        metrics = read_json(run / "metrics.json")
        assert metrics["steps"] == COMPARED_STEPS
        events = read_events(run)
        for k in range(1, len(LAYERS) + 1):
            steps = [step for step, _ in events[HISTOGRAM_TAG.format(layer=layer_tag(k))]]
            assert steps == [0, 2, 4, 6]
        assert events[TEST_TAG.format(metric="accuracy")][-1][0] == COMPARED_STEPS
        # The summary table reports each run by name with its accuracy from metrics.json.
        assert f"{activation:<12}ok (exit 0)" in done.stdout
        assert f"{metrics['test_accuracy']:.2%}" in done.stdout
        assert f"[{activation}] done: {COMPARED_STEPS} steps" in done.stdout


def test_compared_runs_differ_only_in_the_activation(compared):
    root, _ = compared
    configs = [read_json(root / a / "config.json") for a in ACTIVATIONS]
    assert [c["activation"] for c in configs] == list(ACTIVATIONS)
    assert {c["seed"] for c in configs} == {3}  # a pass-through flag reached train.py
    per_run = {"activation", "run_name", "resolved"}
    shared = [{k: v for k, v in c.items() if k not in per_run} for c in configs]
    assert shared[0] == shared[1] == shared[2]


@pytest.mark.parametrize("flags", [["--activation", "relu"], ["--act=relu"], ["--logdir", "x"],
                                   ["--run-name", "x"], ["--resume", "x"]])
def test_compare_refuses_flags_it_sets_itself(tmp_path, flags):
    done = run_script("compare.py", "--dataset", "mnist", *flags, "--root", tmp_path / "root",
                      "--no-tensorboard", cwd=tmp_path)
    assert_one_error_line(done)
    assert list(tmp_path.iterdir()) == []


def test_compare_never_writes_into_a_non_empty_root(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    done = run_script("compare.py", "--dataset", "mnist", "--root", tmp_path, "--no-tensorboard",
                      cwd=tmp_path)
    assert_one_error_line(done)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_compare_refuses_a_busy_tensorboard_port_before_training(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        done = run_script("compare.py", "--dataset", "mnist", "--root", tmp_path / "root",
                          "--port", busy.getsockname()[1], cwd=tmp_path)
    assert_one_error_line(done)
    assert "--port" in done.stderr and list(tmp_path.iterdir()) == []


def test_compare_stops_after_the_first_run_refuses_bad_input(tmp_path, mnist_dir):
    root = tmp_path / "root"
    done = run_script("compare.py", "--dataset", "mnist", "--data-dir", mnist_dir,
                      "--batch-size", "0", "--root", root, "--no-tensorboard")
    assert done.returncode == 2
    assert done.stderr.count("error:") == 1 and done.stderr.startswith(f"[{ACTIVATIONS[0]}] error:")
    assert "bad input (exit 2)" in done.stdout
    assert all(f"{a:<12}not run" in done.stdout for a in ACTIVATIONS[1:])
    assert not root.exists()  # nothing was written, so no empty root is left behind


def test_compare_ctrl_c_stops_the_run_with_a_checkpoint_and_starts_no_other(tmp_path, mnist_dir):
    root = tmp_path / "root"
    compare = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "compare.py"), "--dataset", "mnist", "--data-dir",
         str(mnist_dir), "--max-steps", "5000", "--summary-every", "2", "--batch-size", "32",
         "--root", str(root), "--no-tensorboard"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    try:
        first = ACTIVATIONS[0]
        for line in compare.stdout:
            if line.startswith(f"[{first}] step 4/"):  # training, past its first summaries
                break
        compare.send_signal(signal.SIGINT)
        out, err = compare.communicate(timeout=120)
    finally:
        compare.kill()
    assert compare.returncode == 130, err
    assert f"{first:<12}interrupted (exit 130)" in out
    assert all(f"{a:<12}not run" in out for a in ACTIVATIONS[1:])
    assert (root / first / "checkpoint.keras").exists()
    assert [p.name for p in root.iterdir()] == [first]


def test_compare_reports_a_failed_run_by_name_and_still_runs_the_others(tmp_path):
    compare = load_script("compare")
    finish = ("import json, pathlib, sys; run = pathlib.Path(sys.argv[1]); run.mkdir(); "
              "(run / 'metrics.json').write_text(json.dumps({'test_accuracy': 0.25}))")
    commands = {a: [sys.executable, "-c", finish, str(tmp_path / a)] for a in ACTIVATIONS}
    failing = ACTIVATIONS[0]
    commands[failing] = [sys.executable, "-c", "raise SystemExit(1)"]
    status = compare.run_all(commands, parallel=False, interrupts=compare.Interrupts())
    assert status == {a: int(a == failing) for a in ACTIVATIONS}
    table = compare.summary_table(tmp_path, status)
    assert f"{failing:<12}failed (exit 1)" in table
    assert all(f"{a:<12}{'ok (exit 0)':<26}25.00%" in table for a in ACTIVATIONS[1:])


def test_compare_trains_the_compared_activations_without_importing_tensorflow():
    code = ("import importlib.util, sys; "
            f"spec = importlib.util.spec_from_file_location('compare', {str(SCRIPTS / 'compare.py')!r}); "
            "compare = importlib.util.module_from_spec(spec); spec.loader.exec_module(compare); "
            "args, _ = compare.parse_args(['--dataset', 'mnist', '--no-tensorboard']); "
            "print(' '.join(args.activations)); print('tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == [" ".join(ACTIVATIONS), "False"]


# -----------------------------------------------------------------------------
# report.py

def test_report_writes_pngs_and_a_self_contained_html(compared, tmp_path):
    root, _ = compared
    out = tmp_path / "out"
    done = run_script("report.py", root, "-o", out)
    assert done.returncode == 0, done.stderr
    page = (out / "report.html").read_text()
    for name in FIGURES:
        image = matplotlib.image.imread(out / name)
        assert image.shape[0] > 200 and image.shape[1] > 200
        assert base64.b64encode((out / name).read_bytes()).decode() in page
    assert "http://" not in page and "https://" not in page  # self-contained
    for activation in ACTIVATIONS:
        metrics = read_json(root / activation / "metrics.json")
        resolved = read_json(root / activation / "config.json")["resolved"]
        assert f"<td>{activation}</td><td>{activation}</td><td>mnist</td>" \
               f"<td>{resolved['norm']}</td><td>{resolved['init']}</td>" \
               f"<td>{resolved['dropout_kind']} 0.1</td><td>{COMPARED_STEPS}</td>" \
               f"<td>{metrics['test_accuracy']:.2%}</td>" in page
    # SELU, ReLU, LeakyReLU order.
    assert [page.index(f"<tr><td>{a}</td>") for a in ACTIVATIONS] == \
           sorted(page.index(f"<tr><td>{a}</td>") for a in ACTIVATIONS)


def test_report_finds_nested_runs_and_marks_unfinished_ones(compared, tmp_path):
    root, _ = compared
    logs = tmp_path / "logs"
    for activation in ACTIVATIONS[:2]:  # laid out as separate train.py calls would: DATASET/NAME
        shutil.copytree(root / activation, logs / "mnist" / f"{activation}-1",
                        ignore=shutil.ignore_patterns("*.keras"))
    unfinished = ACTIVATIONS[1]
    (logs / "mnist" / f"{unfinished}-1" / "metrics.json").unlink()
    done = run_script("report.py", logs)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"2 run(s): mnist/{ACTIVATIONS[0]}-1, mnist/{unfinished}-1")
    page = (logs / "report" / "report.html").read_text()  # the default output folder
    assert f"<tr><td>mnist/{unfinished}-1</td><td>{unfinished}</td><td>mnist</td>" in page
    assert f"<td>{COMPARED_STEPS} (unfinished)</td>" in page
    assert all((logs / "report" / name).stat().st_size > 0 for name in FIGURES)


def test_report_draws_every_stat_summaries_logs():
    from avh_app.report.figures import NONPOSITIVE, STAT_TARGETS
    assert {*STAT_TARGETS, NONPOSITIVE} == set(STATS)


def test_report_rejects_a_folder_without_runs(tmp_path):
    assert_one_error_line(run_script("report.py", tmp_path))
    assert_one_error_line(run_script("report.py", tmp_path / "missing"))
    assert list(tmp_path.iterdir()) == []


# -----------------------------------------------------------------------------
# TensorBoard

def get_json(port, path, **query):
    url = f"http://127.0.0.1:{port}{path}" + ("?" + urllib.parse.urlencode(query) if query else "")
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def test_tensorboard_serves_histograms_and_images_of_every_run(compared):
    root, _ = compared
    port = free_port()
    server = load_script("compare").start_tensorboard(root, port, timeout=60)
    try:
        histogram_tags = {tag.format(layer=layer_tag(k)) for tag in (HISTOGRAM_TAG, GRADIENT_TAG)
                          for k in range(1, len(LAYERS) + 1)}
        image_tags = {PLOT_TAG.format(layer=layer_tag(k), kind=kind)
                      for k in PLOT_LAYERS for kind in PLOT_KINDS}
        # SELU runs also draw their layers' path through the moment map.
        expected = {a: image_tags | ({MOMENT_MAP_TAG} if a == "selu" else set())
                    for a in ACTIVATIONS}
        deadline = time.monotonic() + 60
        while True:  # TensorBoard reads the logdir in the background after it starts serving
            histograms = get_json(port, "/data/plugin/histograms/tags")
            images = get_json(port, "/data/plugin/images/tags")
            if time.monotonic() > deadline or all(
                    set(histograms.get(a, ())) == histogram_tags
                    and set(images.get(a, ())) == expected[a] for a in ACTIVATIONS):
                break
            time.sleep(1)
        for activation in ACTIVATIONS:
            assert set(histograms.get(activation, ())) == histogram_tags
            assert set(images.get(activation, ())) == expected[activation]
            # The data behind the tags, not just their names: [wall time, step, buckets] ...
            series = get_json(port, "/data/plugin/histograms/histograms", run=activation,
                              tag=HISTOGRAM_TAG.format(layer=layer_tag(3)))
            assert [step for _, step, _ in series] == [0, 2, 4, 6]
            assert sum(count for _, _, count in series[-1][2]) > 0
            # ... and a figure as PNG bytes.
            entries = get_json(port, "/data/plugin/images/images", run=activation,
                               tag=PLOT_TAG.format(layer=layer_tag(3), kind=PLOT_KINDS[0]))
            image = f"/data/plugin/images/individualImage?{entries[-1]['query']}"
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{image}", timeout=10) as answer:
                assert answer.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE
    finally:
        server.process.terminate()
        server.wait()


def test_your_own_folder_of_images_trains_compares_and_reports_like_a_built_in_set(tmp_path):
    from PIL import Image
    import numpy as np

    rng = np.random.default_rng(0)
    images = tmp_path / "shapes"
    for name, brightness in (("dark", 40), ("light", 200)):  # two classes a CNN can tell apart
        (images / name).mkdir(parents=True)
        for i in range(15):
            pixels = np.clip(rng.normal(brightness, 30, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(images / name / f"{i:02d}.png")
    root = tmp_path / "root"
    done = run_script("compare.py", "--dataset", "folder", "--data-dir", images, "--activations",
                      "selu", "relu", "--max-steps", "4", "--summary-every", "2", "--batch-size", "8",
                      "--root", root, "--parallel", "--no-tensorboard")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for activation in ("selu", "relu"):
        config = read_json(root / activation / "config.json")
        assert config["data"]["name"] == "shapes" and config["data"]["source"] == "folder"
        assert config["data"]["class_names"] == ["dark", "light"]
        assert config["data"]["image_shape"] == [16, 16, 3]
        steps = [s for s, _ in read_events(root / activation)[HISTOGRAM_TAG.format(layer=layer_tag(1))]]
        assert steps == [0, 2, 4]
    assert "did not train on the same data" not in done.stdout
    report = run_script("report.py", root, "-o", tmp_path / "out")
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<h2>shapes: 2 run(s)</h2>" in page and "<td>selu</td><td>selu</td><td>folder</td>" in page
