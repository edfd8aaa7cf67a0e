"""scripts/benchmark.py runs end to end. Its timings are never asserted: they depend on the machine."""
import dataclasses
import subprocess
import sys

from conftest import REPO_ROOT

import pytest


BENCHMARK = REPO_ROOT / "scripts" / "benchmark.py"


@pytest.mark.slow  # subprocesses: train.py, bench_fit.py
def test_quick_benchmark_runs_every_measurement_and_prints_its_table(tmp_path):
    result = subprocess.run([sys.executable, str(BENCHMARK), "--quick", "--workdir", str(tmp_path)],
                            capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert ("| shape | kind | ex/s | ratio to plain | CPU/step ratio | median step ratio "
            "| first step s | peak RSS GB |") in lines
    kinds = [line.split(" | ")[1] for line in lines if line.startswith("| MNIST, the app's CNN |")]
    assert sorted(kinds) == ["app", "app-no-gradients", "app-summaries-off", "callback",
                             "handwritten", "keras-tensorboard", "plain"]
    assert any(line.startswith("- mnist: callback / handwritten ") for line in lines)
    assert any(line.startswith("- mnist: 6 layers; ") for line in lines)  # one event's cost


def test_the_report_pairs_each_kind_with_the_plain_fit_of_its_repeat_and_says_only_what_resolves():
    """summarise() and report() on made-up results: the ratio is the median of per-repeat ratios
    with a bootstrap interval, a paired claim needs 3 repeats and an interval clear of 1."""
    from pathlib import Path

    from avh_app.bench import plan, results

    def measured(section, shape, kind, repeat, rate, **extra):
        return plan.Measured(f"{shape}-{kind}-{repeat}", section, shape, kind, repeat, [], Path("x"),
                             Path("x"), Path("x"), result={
                                 "examples_per_sec": rate, "cpu_seconds_per_step": 64 / rate,
                                 "seconds_to_first_step": 5.0, "peak_rss": 1e9, "wall_seconds": 60.0,
                                 "median_step_ms": 64000 / rate, **extra})
    runs = []
    for repeat, drift in enumerate((1.0, 0.9, 1.1, 0.95, 1.05)):  # the machine's speed drifts
        runs += [measured("kinds", "mnist", "plain", repeat, 1000 * drift),
                 measured("kinds", "mnist", "callback", repeat, 990 * drift,
                          event_ms={"training_thread": 40.0, "moments": 15.0}, logged_layers=6),
                 measured("kinds", "mnist", "handwritten", repeat, 950 * drift),
                 measured("kinds", "mnist", "app", repeat, 900 * drift, training_thread_share={
                     "activation summaries": 0.02 + 0.002 * repeat, "test subset": 0.012,
                     "stop requests": 0.0001})]
    runs += [measured("whole", "cifar10-subset", "app", 0, 300, figures=(6, 6)),
             measured("whole", "cifar10-subset", "app-off", 0, 310),
             measured("cadence", "mnist", "every-25", 0, 900, figures=(13, 13))]
    summary = results.summarise(runs)
    callback = summary["kinds"]["mnist"]["callback"]
    assert callback["ratio"] == (pytest.approx(0.99), pytest.approx(0.99), pytest.approx(0.99))
    (median, low, high), repeats = summary["pairs"]["mnist", "callback", "handwritten"]
    assert repeats == 5 and median == pytest.approx(990 / 950) and low <= median <= high
    assert summary["cadence"] == {25: (13, 13)}
    info = {"date": "2026-12-01", "load_before": 0.5, "load_after": 0.6,
            "machine": results.machine()}
    text = results.report(summary, plan.QUICK, info)
    assert "1 repeat(s) of every kind, interleaved" in text
    # Shapes with repeats of their own (the slowest networks) say so in the header.
    assert "5 repeat(s) of every kind (efficientnetb0: 3, densenet121: 3), interleaved" in (
        results.report(summary, plan.FULL, info))
    assert "2 repeat(s) of every kind, interleaved" in (  # --repeats 2: every shape runs 2
        results.report(summary, dataclasses.replace(plan.FULL, repeats=2), info))
    assert "- mnist: callback / handwritten 1.042: callback is faster" in text
    assert "| MNIST, the app's CNN | callback | 990 | 0.990 | 1.010 | 1.010 | 5.0 | 1.00 |" in text
    # The app's training thread, callback by callback (mean over repeats), shares under 0.05% left out.
    assert "- mnist, app: 3.6% in all: activation summaries 2.4%, test subset 1.2%" in text
    assert "figures at every summary step, MNIST, 300 steps: --summary-every 25: 13 of 13" in text
    assert "whole process" in text and "figures at 6 of 6 summary steps" in text
