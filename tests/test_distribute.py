"""train.py under tf.distribute on a CPU-only machine: MirroredStrategy over 2 logical CPU devices,
and MultiWorkerMirroredStrategy with 2 worker processes on 127.0.0.1 (signals, resume)."""
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from conftest import real_data
from datasets import synthetic as fixtures
from runs import TINY, read_events, read_json, run_train, train_cmd
from avh.tags import HISTOGRAM_TAG, STAT_TAG, TEST_TAG, TRAIN_TAG

pytestmark = pytest.mark.slow  # subprocesses: train.py, several at once

WORKER_SECONDS = 400  # every wait on a worker is bounded


def learnable_mnist(folder, n_train=1024, n_test=256):
    """The first images of the real MNIST as IDX files: random fixture labels cannot be learnt,
    and accuracies must mean something to compare one device with two. The bundled sample holds
    enough of them (6,000 and 1,000) where the shared full files are missing."""
    _, source = real_data("mnist")
    folder.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        for kind, header in (("images-idx3", 16), ("labels-idx1", 8)):
            raw = gzip.decompress((source / f"{prefix}-{kind}-ubyte.gz").read_bytes())
            array = np.frombuffer(raw[header:], np.uint8)
            array = array.reshape(-1, 28, 28)[:n] if kind.startswith("images") else array[:n]
            (folder / f"{prefix}-{kind}-ubyte.gz").write_bytes(gzip.compress(fixtures.idx_bytes(array)))
    return folder


def test_two_logical_devices_train_like_one_device(tmp_path):
    data = learnable_mnist(tmp_path / "mnist")
    common = ["--data-dir", data, "--logdir", tmp_path / "logs", "--batch-size", "32",
              "--max-steps", "64", "--summary-every", "16", "--checkpoint-every", "32"]
    one = run_train(*common, "--run-name", "one", "--strategy", "one")
    two = run_train(*common, "--run-name", "two", "--strategy", "mirrored",
                    env={**os.environ, "AVH_LOGICAL_CPUS": "2", "PYTHONUNBUFFERED": "1"})
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.returncode == 0, two.stderr[-2000:]
    assert "2 replicas (MirroredStrategy)" in two.stdout
    assert read_json(tmp_path / "logs" / "two" / "config.json")["resolved"]["strategy"].startswith("2 replicas")
    events = {name: read_events(tmp_path / "logs" / name) for name in ("one", "two")}
    assert set(events["two"]) == set(events["one"])  # the same tags, figures included
    for tag in (HISTOGRAM_TAG.format(layer="3_conv3"), STAT_TAG.format(layer="4_fc4", stat="std"),
                TRAIN_TAG.format(metric="loss")):
        assert [s for s, _ in events["two"][tag]] == [s for s, _ in events["one"][tag]], tag
    accuracy = {name: read_json(tmp_path / "logs" / name / "metrics.json")["test_accuracy"]
                for name in events}
    print(f"test accuracy: one device {accuracy['one']:.2%}, 2 logical devices {accuracy['two']:.2%}")
    assert accuracy["one"] > 0.5 and accuracy["two"] > 0.5  # both learnt
    assert abs(accuracy["one"] - accuracy["two"]) < 0.1  # within noise: dropout masks differ
    final = events["two"][TEST_TAG.format(metric="accuracy")][-1]
    assert final[0] == 64 and float(final[1]) == pytest.approx(accuracy["two"])


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def start_workers(args, tmp_dir):
    """Two train.py workers of one cluster on 127.0.0.1; worker 0 is the chief. Their output goes
    to files (a pipe nobody reads while they train could fill and block them)."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp_dir),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        out = open(tmp_dir.parent / f"worker{index}-{time.monotonic_ns()}.out", "w+")
        err = open(out.name.replace(".out", ".err"), "w+")
        worker = subprocess.Popen(train_cmd(*args, "--strategy", "multiworker"), stdout=out,
                                  stderr=err, text=True, env=env)
        worker.files = (out, err)
        workers.append(worker)
    return workers


def finish(workers):
    """[(exit status, stdout, stderr)] of every worker, each wait bounded."""
    results = []
    for w in workers:
        code = w.wait(timeout=WORKER_SECONDS)
        texts = []
        for f in w.files:
            f.seek(0)
            texts.append(f.read())
            f.close()
        results.append((code, *texts))
    return results


def test_two_workers_stop_together_on_a_signal_and_resume_after_a_hard_kill(tmp_path):
    data = fixtures.write_mnist(tmp_path / "mnist", n_train=128, n_test=32)
    logdir, worker_tmp = tmp_path / "logs", tmp_path / "worker-tmp"
    worker_tmp.mkdir()
    run_dir = logdir / "run"
    steps = 20  # 3 epochs of 8: a stop at ~4, a kill at ~8, then to the end over 2 epoch ends
    args = ["--data-dir", data, "--logdir", logdir, "--run-name", "run", "--batch-size", "16",
            "--max-steps", str(steps), "--summary-every", "4", "--checkpoint-every", "4"]
    started = time.monotonic()
    workers = start_workers(args, worker_tmp)
    try:
        deadline = time.monotonic() + WORKER_SECONDS
        while not (run_dir / "checkpoint.keras").exists():
            assert time.monotonic() < deadline, "no checkpoint in time"
            assert all(w.poll() is None for w in workers), "a worker ended early"
            time.sleep(0.2)
        workers[1].send_signal(signal.SIGTERM)  # the non-chief only: the chief must stop too
        results = finish(workers)
    finally:
        for w in workers:
            w.kill()
    codes = [code for code, _, _ in results]
    assert codes == [143, 143], [err[-1500:] for _, _, err in results]
    stopped = {int(err.split(" at step ")[1].split(";")[0]) for _, _, err in results}
    assert len(stopped) == 1, stopped  # the same step on both
    step = stopped.pop()
    assert 0 < step < steps
    assert f"--resume {run_dir}" in results[0][2]
    assert sorted(p.name for p in logdir.iterdir()) == ["run"]  # only the chief's folder
    assert not list(worker_tmp.iterdir())  # the other worker's temporary copy is gone
    import keras
    assert int(keras.models.load_model(run_dir / "checkpoint.keras").optimizer.iterations) == step

    # Resumed, then both killed hard as soon as a new checkpoint is on disk.
    checkpoint = run_dir / "checkpoint.keras"
    written = checkpoint.stat().st_mtime_ns
    workers = start_workers(["--resume", run_dir], worker_tmp)
    try:
        deadline = time.monotonic() + WORKER_SECONDS
        while checkpoint.stat().st_mtime_ns == written:
            assert time.monotonic() < deadline, "no new checkpoint in time"
            assert all(w.poll() is None for w in workers), "a worker ended early"
            time.sleep(0.02)
        for w in workers:
            w.kill()
        for w in workers:
            w.wait(timeout=60)
            for f in w.files:
                f.close()
    finally:
        for w in workers:
            w.kill()
    killed_at = int(keras.models.load_model(checkpoint).optimizer.iterations)
    assert step < killed_at < steps and not (run_dir / "metrics.json").exists()
    # A killed worker cannot remove its temporary copy of the run (nor TensorFlow its files).
    leftovers = list(worker_tmp.iterdir())
    assert any(p.name.startswith("avh-worker") for p in leftovers)
    for leftover in leftovers:
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()

    workers = start_workers(["--resume", run_dir], worker_tmp)
    try:
        results = finish(workers)
    finally:
        for w in workers:
            w.kill()
    print(f"two workers: stop, kill, then resume to the end: {time.monotonic() - started:.0f} s")
    assert [code for code, _, _ in results] == [0, 0], [err[-1500:] for _, _, err in results]
    assert f"resuming at step {killed_at}" in results[1][1]
    metrics = read_json(run_dir / "metrics.json")
    assert metrics["steps"] == steps
    events = read_events(run_dir)
    for tag in (TRAIN_TAG.format(metric="loss"), HISTOGRAM_TAG.format(layer="3_conv3")):
        logged = [s for s, _ in events[tag]]
        assert logged == sorted(set(logged)) and logged[-1] == steps, tag  # one curve, continued
    loss_steps = [s for s, _ in events[TRAIN_TAG.format(metric="loss")]]
    assert loss_steps[0] < step < loss_steps[-1]  # before the stop, and continued after it
    assert float(events[TEST_TAG.format(metric="accuracy")][-1][1]) == pytest.approx(
        metrics["test_accuracy"])
    assert sorted(p.name for p in logdir.iterdir()) == ["run"]
    assert not list(worker_tmp.iterdir())


def test_multiworker_without_tf_config_is_one_error_line(tmp_path):
    data = fixtures.write_mnist(tmp_path / "mnist", n_train=32, n_test=8)
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    done = run_train("--data-dir", data, "--logdir", tmp_path / "logs", "--strategy", "multiworker",
                     *TINY, env=env)
    assert done.returncode == 2
    assert done.stderr.startswith("error: --strategy multiworker needs the TF_CONFIG")
    assert done.stderr.count("\n") == 1 and not (tmp_path / "logs").exists()
