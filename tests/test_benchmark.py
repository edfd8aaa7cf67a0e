"""scripts/benchmark.py runs end to end. Its timings are never asserted: they depend on the machine."""
import subprocess
import sys

from conftest import REPO_ROOT

import pytest

pytestmark = pytest.mark.slow  # subprocesses: train.py, compare.py, TensorBoard

BENCHMARK = REPO_ROOT / "scripts" / "benchmark.py"


def test_quick_benchmark_runs_every_measurement_and_prints_its_table(tmp_path):
    result = subprocess.run([sys.executable, str(BENCHMARK), "--quick", "--workdir", str(tmp_path)],
                            capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert "| shape | kind | ex/s | ratio to plain | CPU/step ratio | first step s | peak RSS GB |" in lines
    kinds = [line.split(" | ")[1] for line in lines if line.startswith("| MNIST, the app's CNN |")]
    assert sorted(kinds) == ["app", "callback", "handwritten", "keras-tensorboard", "plain"]
    assert any(line.startswith("- mnist: callback / handwritten ") for line in lines)
    assert any(line.startswith("- mnist: 6 layers; ") for line in lines)  # one event's cost
    assert any(line.startswith("whole process, 6-step CIFAR-10-subset run") for line in lines)
    assert any(line.startswith("figures at every summary step, MNIST, 6 steps: --summary-every 2: ")
               for line in lines)
