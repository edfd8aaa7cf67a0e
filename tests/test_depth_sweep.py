"""scripts/depth_sweep.py end to end on tiny data: deep fully-connected runs logged through the
app's activation summaries, and report.py drawing the sweep."""
import subprocess
import sys

import matplotlib.image
import pytest

from conftest import REPO_ROOT
from datasets.synthetic import write_mnist
from runs import read_events, read_json

pytestmark = pytest.mark.slow  # subprocesses

SCRIPTS = REPO_ROOT / "scripts"


def test_depth_sweep_logs_every_hidden_layer_and_report_draws_it(tmp_path):
    data_dir = write_mnist(tmp_path / "data", n_train=128, n_test=32)
    root = tmp_path / "sweep"
    done = subprocess.run([sys.executable, str(SCRIPTS / "depth_sweep.py"), "--data-dir", data_dir,
                           "--root", root, "--depths", "4", "--steps", "6", "--width", "16",
                           "--summary-every", "3"],
                          capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    for depth in (4,):
        for variant in ("selu", "relu-bn", "relu"):
            run = root / f"depth{depth:02d}" / variant
            config = read_json(run / "config.json")
            assert config["sweep"] == {"name": "depth", "variant": variant, "depth": depth,
                                       "width": 16}
            # The same schema as train.py's config.json: every setting, resolved, data, versions.
            assert {"resolved", "data", "versions", "total_steps", "activation"} <= set(config)
            events = read_events(run)
            for k in range(1, depth + 1):
                assert [s for s, _ in events[f"activation_stats/act{k}/std"]] == [0, 3, 6]
            assert events["train/loss"] and read_json(run / "metrics.json")["steps"] == 6
    # SELU layers start near the fixed point; ReLU without batch norm does not centre.
    events = read_events(root / "depth04" / "selu")
    assert abs(float(events["activation_stats/act4/mean"][0][1])) < 0.3
    relu = read_events(root / "depth04" / "relu")
    assert float(relu["activation_stats/act4/mean"][0][1]) > 0.2

    report = subprocess.run([sys.executable, str(SCRIPTS / "report.py"), root, "-o", tmp_path / "out"],
                            capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert report.returncode == 0, report.stderr
    image = matplotlib.image.imread(tmp_path / "out" / "depth.png")
    assert image.shape[0] > 500 and image.shape[1] > 400  # one column: a single depth


def test_depth_sweep_refuses_a_non_empty_root(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("keep me")
    done = subprocess.run([sys.executable, str(SCRIPTS / "depth_sweep.py"), "--root", tmp_path / "taken"],
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert done.returncode == 2 and done.stderr.startswith("error: --root")
    assert (tmp_path / "taken" / "file").read_text() == "keep me"
