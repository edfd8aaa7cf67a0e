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


PAIRED = REPO_ROOT / "scripts" / "bench_paired.py"


@pytest.mark.slow  # a subprocess: a fit of 12 blocks
def test_paired_benchmark_hands_each_block_to_one_kind_and_charges_it_its_event(tmp_path):
    """One fit, its epochs in turn to each kind: the callback's events are exactly step 0, the
    ends of its own blocks and the fit's last step (read back from its event file), and every
    block is timed."""
    import json

    from avh.events import read_events
    from avh.tags import GRADIENT_TAG, HISTOGRAM_TAG, PLOT_TAG

    out = tmp_path / "paired.json"
    result = subprocess.run([sys.executable, str(PAIRED), "--quick", "--shapes", "mnist",
                             "--workdir", str(tmp_path), "--json", str(out)],
                            capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| mnist | callback |" in result.stdout
    assert "- mnist: callback / keras-tensorboard " in result.stdout
    assert "- mnist: the backward signal, callback-gradients / callback: " in result.stdout
    saved = json.loads(out.read_text())
    block, blocks = saved["block_steps"], saved["shapes"]["mnist"]["blocks"]
    kinds = ["plain", "callback", "callback-gradients", "keras-tensorboard", "handwritten"]
    assert [b["kind"] for b in blocks[:5]] == kinds
    assert len(blocks) == 15 and all(b["wall"] > 0 and b["cpu"] > 0 for b in blocks)
    for r in (1, 2):  # each measured round: every kind once, in an order of its own
        assert sorted(b["kind"] for b in blocks if b["round"] == r) == sorted(kinds)
    ends = {block * (i + 1) for i, b in enumerate(blocks) if b["kind"] == "callback"}
    events = read_events(tmp_path / "mnist" / "callback",
                         want=lambda tag: tag.startswith(HISTOGRAM_TAG.format(layer="")))
    steps = {step for series in events.values() for step, _ in series}
    assert steps == {0} | ends | {block * len(blocks)}
    # Figures at every measured block's event (no time budget here: all its work is charged).
    plots = read_events(tmp_path / "mnist" / "callback",
                        want=lambda tag: tag.startswith(PLOT_TAG.split("{")[0]))
    measured = {block * (i + 1) for i, b in enumerate(blocks) if b["kind"] == "callback" and b["round"]}
    assert plots and all(measured <= {step for step, _ in series} for series in plots.values())
    # With the probe's labels the backward signal is logged too; without, none.
    assert read_events(tmp_path / "mnist" / "callback-gradients",
                       want=lambda tag: tag.startswith(GRADIENT_TAG.format(layer="")))
    assert not read_events(tmp_path / "mnist" / "callback",
                           want=lambda tag: tag.startswith(GRADIENT_TAG.format(layer="")))


def test_the_paired_report_compares_each_kind_with_the_plain_block_of_its_round():
    """summarise() on made-up blocks: per round the ratio to that round's plain block, so a
    drift between rounds cancels; round 0 (warming up) is left out."""
    from avh_app.bench import paired

    blocks = [{"kind": k, "round": 0, "wall": 50.0, "cpu": 50.0} for k in paired.KINDS]
    for r, drift in enumerate((1.0, 1.3, 0.8, 1.1, 0.9), start=1):  # the machine's speed drifts
        for kind, wall in (("plain", 1.0), ("callback", 1.02), ("keras-tensorboard", 1.05),
                           ("handwritten", 1.10)):
            blocks.append({"kind": kind, "round": r, "wall": wall * drift, "cpu": 2 * wall * drift})
    s = paired.summarise({"blocks": blocks})
    assert s["rounds"] == 5
    callback = s["kinds"]["callback"]
    assert callback["wall"] == pytest.approx((1 / 1.02,) * 3)
    assert callback["cpu"] == pytest.approx((1.02,) * 3)
    assert s["kinds"]["plain"]["block_ms"][0] == pytest.approx(1000.0)
    assert s["kinds"]["handwritten"]["extra_ms"][0] == pytest.approx(100.0)
    assert s["pairs"]["keras-tensorboard"]["wall"] == pytest.approx((1.05 / 1.02,) * 3)
    assert s["pairs"]["handwritten"]["cpu"] == pytest.approx((1.10 / 1.02,) * 3)
    assert "gradients" not in s["pairs"]  # a kind that did not run is left out
    assert "callback-gradients" not in s["kinds"]


@pytest.mark.parametrize("args", [["--rounds", "0"], ["--shapes", "nope"]])
def test_the_paired_benchmark_refuses_bad_input_in_one_line(args):
    result = subprocess.run([sys.executable, str(PAIRED), *args], capture_output=True, text=True,
                            timeout=60, cwd=REPO_ROOT)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # a subprocess that imports TensorFlow (avh.figure_rules)
def test_figure_timing_draws_every_figure_and_times_its_parts(tmp_path):
    """scripts/figure_timing.py: each later event's time holds its four parts; bad input is one
    line and exit 2."""
    import json

    script = REPO_ROOT / "scripts" / "figure_timing.py"
    result = subprocess.run([sys.executable, str(script), "--events", "3", "--json",
                             str(tmp_path / "t.json")], capture_output=True, text=True,
                            timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 0 and not result.stderr, result.stderr[-3000:]
    assert "each later event, median of 2:" in result.stdout
    times = json.loads((tmp_path / "t.json").read_text())
    assert times["first"] > 0 and len(times["all"]) == 2
    for i, total in enumerate(times["all"]):
        parts = sum(times[part][i] for part in ("maps", "histograms", "moment map", "PNGs"))
        assert 0 < parts <= total + 1e-6
    refused = subprocess.run([sys.executable, str(script), "--events", "1"], capture_output=True,
                             text=True, timeout=300, cwd=REPO_ROOT)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: --events must be at least 2")
    assert len(refused.stderr.strip().splitlines()) == 1
