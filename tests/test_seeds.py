"""Comparisons over seeds: avh_app.seeds' grouping and statistics on tiny inputs, and compare.py
--seeds 2 followed by report.py, read back from the root, the PNGs and report.html."""
import math
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT
from datasets.synthetic import write_mnist
from runs import read_events, read_json
from avh_app import seeds
from avh.tags import TEST_TAG

SCRIPTS = REPO_ROOT / "scripts"


def test_seed_folders_group_by_activation_like_the_dashboard():
    labels = ["selu/seed0", "selu/seed1", "relu/seed0", "relu-seed1", "lrelu"]
    assert seeds.group_by_seed(labels) == {"selu": [0, 1], "relu": [2, 3], "lrelu": [4]}
    assert seeds.has_seed_groups(labels) and not seeds.has_seed_groups(["selu", "relu"])


def test_band_uses_the_steps_every_seed_logged():
    steps, mean, low, high = seeds.band([([0, 2, 4], [1.0, 2.0, 3.0]), ([0, 2], [3.0, 4.0])])
    assert steps.tolist() == [0, 2]
    assert mean.tolist() == [2.0, 3.0] and low.tolist() == [1.0, 2.0] and high.tolist() == [3.0, 4.0]


def test_pooled_density_averages_the_seeds_with_equal_weight():
    edges = np.linspace(-2, 2, 5)
    one = [[-1, 0, 30], [0, 1, 10]]   # 3/4 of its mass in [-1, 0]
    constant = [[0, 0, 999]]          # every value 0: TensorBoard's zero-width buckets
    density = seeds.pooled_density([one, constant], edges)
    assert density.tolist() == pytest.approx([0, 0.375, 0.625, 0])
    assert (density * np.diff(edges)).sum() == pytest.approx(1.0)


def test_spread_verdict_and_welch_test():
    close = seeds.compare(seeds.summary([0.90, 0.92, 0.91]), seeds.summary([0.905, 0.915, 0.93]))
    apart = seeds.compare(seeds.summary([0.90, 0.92, 0.91]), seeds.summary([0.80, 0.82, 0.81]))
    assert close[2] is False and apart[2] is True
    assert apart[0] == pytest.approx(0.10) and apart[1] == pytest.approx(0.02)
    assert apart[3] < 0.01 < close[3]
    assert seeds.summary([0.5])[1] != seeds.summary([0.5])[1]  # one seed: sd is nan
    assert math.isnan(seeds.compare(seeds.summary([0.5]), seeds.summary([0.6]))[3])


@pytest.mark.slow
def test_two_seed_compare_gives_grouped_figures_and_a_mean_sd_table(tmp_path):
    data = write_mnist(tmp_path / "mnist", n_train=128, n_test=64)
    root = tmp_path / "root"
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "compare.py"), "--dataset", "mnist", "--data-dir", data,
         "--activations", "selu", "relu", "--seeds", "2", "--jobs", "2", "--max-steps", "4",
         "--summary-every", "2", "--batch-size", "32", "--root", root, "--no-tensorboard"],
        capture_output=True, text=True, timeout=900, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    accuracy = {}
    for activation in ("selu", "relu"):
        assert sorted(p.name for p in (root / activation).iterdir()) == ["seed0", "seed1"]
        for k in (0, 1):
            run = root / activation / f"seed{k}"
            assert read_json(run / "config.json")["seed"] == k
            accuracy[activation, k] = read_json(run / "metrics.json")["test_accuracy"]
            final = read_events(run)[TEST_TAG.format(metric="accuracy")][-1]
            assert float(final[1]) == pytest.approx(accuracy[activation, k])
        assert f"{activation}/seed1" in done.stdout  # the summary table names every run

    report = subprocess.run([sys.executable, str(SCRIPTS / "report.py"), root],
                            capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert report.returncode == 0, report.stderr
    out = root / "report"
    for name in ("stats.png", "histograms.png", "test_curves.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    page = (out / "report.html").read_text()
    for activation in ("selu", "relu"):
        values = [accuracy[activation, k] for k in (0, 1)]
        mean, sd = np.mean(values), np.std(values, ddof=1)
        assert f"<td>{activation}</td><td>{activation}</td><td>mnist</td><td>2 of 2</td>" in page
        assert f"{mean:.2%} ± {sd:.2%}" in page
    assert "selu vs relu: test accuracies " in page and "seed spread" in page
    assert "selu vs relu" in report.stdout


def test_gpus_run_one_at_a_time_on_each_listed_gpu(tmp_path):
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("compare", SCRIPTS / "compare.py")
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    record = ("import json, os, sys, time; start = time.time(); time.sleep(0.5); open(sys.argv[1], 'w')"
              ".write(json.dumps([os.environ.get('CUDA_VISIBLE_DEVICES'), start, time.time()]))")
    commands = {f"run{i}": [sys.executable, "-c", record, str(tmp_path / f"run{i}")] for i in range(5)}
    status = compare.run_all(commands, parallel=False, interrupts=compare.Interrupts(),
                             gpus=["0", "1"])
    assert status == dict.fromkeys(commands, 0)
    runs = [json.loads((tmp_path / name).read_text()) for name in commands]
    assert {gpu for gpu, _, _ in runs} == {"0", "1"}
    for gpu in ("0", "1"):  # a GPU's runs never overlap in time
        spans = sorted((start, end) for g, start, end in runs if g == gpu)
        assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))
