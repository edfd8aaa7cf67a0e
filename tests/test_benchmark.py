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
    assert any(line.startswith("| shape | a: plain fit ex/s | b: train.py ex/s |") for line in lines)
    assert any(line.startswith("| MNIST 28x28x1 |") for line in lines)
    assert any(line.startswith("| CIFAR-10 32x32x3 |") for line in lines)
    assert any(line.startswith("- --jit: ran") for line in lines)
    assert any(line.startswith("- --mixed-precision: ran, policy mixed_") for line in lines)
