"""train.py survives the usual accidents: signals, hard kills, NaN, bad input, racing starts.
Every case drives train.py as a subprocess, as a user (or a cluster scheduler) would."""
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from datasets import synthetic as fixtures
from runs import TRAIN, read_events, read_json, run_train, start_train, train_cmd
from avh.tags import GRADIENT_STAT_TAG, HISTOGRAM_TAG, MOMENT_TAG, STAT_TAG, TRAIN_TAG

pytestmark = pytest.mark.slow  # subprocesses: train.py, compare.py, TensorBoard


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    return fixtures.write_mnist(tmp_path_factory.mktemp("mnist"), n_train=128, n_test=32)


def snapshot(folder):
    """Every file below `folder` with its size and mtime: to prove nothing was touched."""
    folder = Path(folder)
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def wait_for(predicate, timeout=120, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def train_until_checkpoint(mnist_dir, run_dir, *extra):
    """Start a long run; return the process once its first checkpoint is on disk."""
    proc = start_train("--data-dir", mnist_dir, "--logdir", run_dir.parent, "--run-name", run_dir.name,
                       "--batch-size", "16", "--max-steps", "100000", "--summary-every", "5",
                       "--checkpoint-every", "10", *extra)
    wait_for(lambda: (run_dir / "checkpoint.keras").exists() or proc.poll() is not None,
             what="the first checkpoint")
    assert proc.poll() is None, proc.communicate()
    return proc


def checkpoint_step(run_dir):
    import keras
    return int(keras.models.load_model(run_dir / "checkpoint.keras").optimizer.iterations)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_a_checkpoint_and_says_how_to_resume(mnist_dir, tmp_path, sig, code):
    run_dir = tmp_path / "logs" / "run"
    proc = train_until_checkpoint(mnist_dir, run_dir)
    time.sleep(1.0)  # let it train past the checkpoint
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert f"python {TRAIN} --resume {run_dir}" in err  # as it was started
    assert "Traceback" not in err
    stopped_at = int(err.split(" at step ")[1].split(";")[0])
    assert checkpoint_step(run_dir) == stopped_at  # the checkpoint is of the step it stopped at
    # The logs were flushed: everything up to that step is on disk.
    steps = [s for s, _ in read_events(run_dir)[TRAIN_TAG.format(metric="loss")]]
    assert steps and steps[-1] == stopped_at - stopped_at % 5
    assert not (run_dir / "metrics.json").exists()


def test_hard_kill_resumes_from_the_last_checkpoint_and_continues_the_curves(mnist_dir, tmp_path):
    run_dir = tmp_path / "logs" / "run"
    proc = start_train("--data-dir", mnist_dir, "--logdir", run_dir.parent, "--run-name", "run",
                       "--batch-size", "16", "--max-steps", "200", "--summary-every", "5",
                       "--checkpoint-every", "10")
    wait_for(lambda: (run_dir / "checkpoint.keras").exists() or proc.poll() is not None,
             what="the first checkpoint")
    time.sleep(1.5)
    proc.kill()  # SIGKILL: no handler runs
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "metrics.json").exists()
    saved = checkpoint_step(run_dir)
    assert 0 < saved < 200  # every 10 steps and at each epoch end (8 steps)
    before = read_events(run_dir)[TRAIN_TAG.format(metric="loss")]
    # Events reach disk before their checkpoint (and every few seconds between): at least to it.
    every = before[0][0]  # avh_app.curves.train_log_every
    assert saved - saved % every <= before[-1][0]
    # Power lost while the next checkpoint was being written: only the partial file has it.
    (run_dir / ".checkpoint-partial.keras").write_bytes(b"PK\x03\x04 half a zip")

    result = run_train("--resume", run_dir)
    assert result.returncode == 0, result.stderr
    assert f"resuming at step {saved}" in result.stdout  # at most --checkpoint-every steps redone
    metrics = read_json(run_dir / "metrics.json")
    assert metrics["steps"] == 200
    events = read_events(run_dir)
    for tag in (TRAIN_TAG.format(metric="loss"), HISTOGRAM_TAG.format(layer="3_conv3")):
        steps = [s for s, _ in events[tag]]
        assert steps == sorted(set(steps)), tag  # one curve: no step twice, never back to 0
        assert steps[-1] == 200
    loss_steps = [s for s, _ in events[TRAIN_TAG.format(metric="loss")]]
    assert loss_steps == list(range(loss_steps[0], 201, loss_steps[0]))
    final_test = events["test/accuracy"][-1]
    assert final_test[0] == 200 and float(final_test[1]) == pytest.approx(metrics["test_accuracy"])


def test_summaries_reach_the_disk_within_seconds_long_before_any_checkpoint(tmp_path):
    """A live TensorBoard sees every summary step within seconds, whatever --checkpoint-every:
    events are flushed, whole, at step boundaries every EventLog.LIVE_SECONDS."""
    from avh_app.eventlog import LIVE_SECONDS

    data_dir = fixtures.write_mnist(tmp_path / "data", n_train=3000, n_test=16)
    run_dir = tmp_path / "logs" / "run"
    proc = start_train("--data-dir", data_dir, "--logdir", run_dir.parent, "--run-name", "run",
                       "--batch-size", "1", "--summary-every", "20", "--checkpoint-every", "100000")
    try:
        for line in proc.stdout:  # the run has logged the summaries of step 100
            if line.startswith("step 100/"):
                break
        logged = time.time()
        wait_for(lambda: 100 in [s for s, _ in read_events(run_dir).get(
            HISTOGRAM_TAG.format(layer="3_conv3"), [])], timeout=10 * LIVE_SECONDS,
            what="step 100's summaries on disk")
        seen = time.time()
    finally:
        proc.kill()
        proc.communicate()
    assert not (run_dir / "checkpoint.keras").exists()  # no checkpoint brought them there
    assert seen - logged < 5 * LIVE_SECONDS
    events = read_events(run_dir)
    histogram_steps = [s for s, _ in events[HISTOGRAM_TAG.format(layer="3_conv3")]]
    # Whole steps only: every summary step on disk has all of its layers and statistics.
    last = histogram_steps[-1]
    for tag in (HISTOGRAM_TAG.format(layer="1_conv1"), STAT_TAG.format(layer="6_logits", stat="std"),
                MOMENT_TAG.format(layer="3_conv3", stat="tau"),
                GRADIENT_STAT_TAG.format(layer="2_conv2", stat="std")):
        assert [s for s, _ in events[tag]][-1] == last, tag


def test_nan_loss_stops_at_once_and_keeps_the_last_good_checkpoint(mnist_dir, tmp_path):
    run_dir = tmp_path / "logs" / "run"
    result = run_train("--data-dir", mnist_dir, "--logdir", run_dir.parent, "--run-name", "run",
                       "--learning-rate", "1e3", "--max-steps", "50", "--checkpoint-every", "1",
                       "--batch-size", "16", "--summary-every", "0", "--plot-layers")
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr
    # The loss, the weights or the probe batch's outputs stop being finite: stopped at once.
    assert last_line.startswith(("error: loss became nan at step ", "error: weights became ",
                                 "error: outputs on the probe batch became non-finite by step "))
    kept = checkpoint_step(run_dir)
    assert f"Last good checkpoint: {run_dir / 'checkpoint.keras'} (step {kept})" in last_line
    assert 0 < kept < int(last_line.split(" step ")[1].split(";")[0])
    assert not (run_dir / "metrics.json").exists()
    # "Good" means it computes: finite outputs on the probe batch, not only finite weights.
    import keras
    import numpy as np

    import datasets
    config = read_json(run_dir / "config.json")["data"]
    images = datasets.load("mnist", str(mnist_dir)).x_test[:128].astype(np.float32)
    probe = (images[..., np.newaxis] - config["channel_mean"]) / config["channel_std"]
    outputs = keras.models.load_model(run_dir / "checkpoint.keras")(probe, training=False)
    assert np.isfinite(np.asarray(outputs)).all()


def test_bad_input_is_one_line_and_writes_nothing(mnist_dir, tmp_path):
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("x")
    logdir = tmp_path / "logs"
    not_a_run = tmp_path / "not-a-run"
    not_a_run.mkdir()
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    from avh_app.config import Config
    (truncated / "config.json").write_text(json.dumps({**Config().__dict__, "data_dir": str(mnist_dir)}))
    (truncated / "checkpoint.keras").write_bytes(b"PK\x03\x04 the first bytes of a zip")
    cases = {
        "unknown data set": ["--dataset", "imagenet"],
        "unknown activation": ["--activation", "tanh"],
        "zero epochs": ["--epochs", "0"],
        "negative steps": ["--max-steps", "-5"],
        "zero batch size": ["--batch-size", "0"],
        "zero learning rate": ["--learning-rate", "0"],
        "NaN learning rate": ["--learning-rate", "nan"],
        "plot layer 7": ["--plot-layers", "3", "7"],
        "plot layer 0": ["--plot-layers", "0"],
        "not a number": ["--epochs", "two"],
        "resume a non-run": ["--resume", not_a_run],
        "resume a missing folder": ["--resume", tmp_path / "missing"],
        "unwritable log folder": ["--logdir", not_a_dir / "logs"],
        "missing data folder": ["--data-dir", tmp_path / "no-data"],
        "run name escaping logdir": ["--run-name", "../elsewhere"],
        "resume a truncated checkpoint": ["--resume", truncated],
    }
    before = snapshot(tmp_path)
    # All at once: each pays TensorFlow's import, the machine has cores to spare for that.
    procs = {name: subprocess.Popen(
        train_cmd(*(args if "--data-dir" in args or "--resume" in args else ["--data-dir", mnist_dir, *args]),
                  *([] if "--logdir" in args or "--resume" in args else ["--logdir", logdir])),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name, args in cases.items()}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=600)  # 16 TensorFlow imports at once on 2 cores
        lines = [line for line in err.splitlines() if line.strip()]
        assert proc.returncode == 2, (name, err)
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, err)
        assert "Traceback" not in err, name
        if name == "resume a truncated checkpoint":
            assert "is damaged or incomplete" in err and "File not found" not in err
    assert snapshot(tmp_path) == before  # nothing written, nothing touched


def test_existing_run_folder_is_never_overwritten(mnist_dir, tmp_path):
    args = ["--data-dir", mnist_dir, "--logdir", tmp_path, "--run-name", "mine", "--max-steps", "2",
            "--batch-size", "16", "--summary-every", "0"]
    assert run_train(*args).returncode == 0
    before = snapshot(tmp_path / "mine")
    again = run_train(*args)
    assert again.returncode == 2
    # Finished: nothing to continue, so no --resume hint.
    assert again.stderr.strip() == (f"error: run folder {tmp_path / 'mine'} already exists; choose "
                                    f"another --run-name")
    assert snapshot(tmp_path / "mine") == before
    finished = run_train("--resume", tmp_path / "mine")
    assert finished.returncode == 2 and "already finished" in finished.stderr
    assert snapshot(tmp_path / "mine") == before


def test_two_runs_started_together_get_two_folders(mnist_dir, tmp_path):
    args = ["--data-dir", mnist_dir, "--logdir", tmp_path, "--max-steps", "2", "--batch-size", "16",
            "--summary-every", "0"]
    procs = [start_train(*args) for _ in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    runs = sorted(p.parent for p in tmp_path.glob("mnist/*/metrics.json"))
    assert len(runs) == 2
    assert all(read_json(run / "metrics.json")["steps"] == 2 for run in runs)


def test_default_run_names_never_collide(tmp_path):
    from avh_app import runfolder
    from avh_app.config import Config
    cfg = Config(logdir=str(tmp_path))
    first, second = runfolder.create(cfg), runfolder.create(cfg)
    assert first != second and first.is_dir() and second.is_dir()
    assert first.parent == second.parent == tmp_path / "mnist"


# -----------------------------------------------------------------------------
# Faults around checkpoints and the final evaluation, full disks, concurrent resumes (issue 14).

def output_lines(proc):
    """A queue of `proc`'s stdout lines (None at its end), read on a thread so waits can time out."""
    lines = queue.Queue()

    def pump():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def wait_for_line(lines, prefix, timeout=180):
    """Every line up to the first starting with `prefix`; AssertionError on timeout or end."""
    seen, deadline = [], time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            raise AssertionError(f"no line {prefix!r} within {timeout} s; got {seen}") from None
        if line is None:
            raise AssertionError(f"the run ended before printing {prefix!r}; got {seen}")
        seen.append(line)
        if line.startswith(prefix):
            return seen


def rest_of(lines, proc, timeout=120):
    """The remaining output once `proc` has ended."""
    proc.wait(timeout=timeout)
    seen = []
    while (line := lines.get(timeout=timeout)) is not None:
        seen.append(line)
    return "".join(seen)


def steps_of(events, tag):
    return [step for step, _ in events.get(tag, [])]


@pytest.mark.slow
def test_kills_and_stops_around_checkpoints_never_lose_or_repeat_a_logged_step(tmp_path):
    """Killed as its first checkpoint appears, resumed twice at once, killed and then stopped
    during the final evaluation, and resumed from a checkpoint older than its logs: the run still
    ends with every step logged exactly once."""
    # A big test set makes the final evaluation long enough to be interrupted in.
    data_dir = fixtures.write_mnist(tmp_path / "data", n_train=3000, n_test=20000, gz=False)
    run_dir = tmp_path / "logs" / "run"
    hist, stat = HISTOGRAM_TAG.format(layer="3_conv3"), STAT_TAG.format(layer="1_conv1", stat="std")
    loss = TRAIN_TAG.format(metric="loss")
    procs = []
    try:
        # 1. SIGKILL the moment checkpoint.keras appears: its events are on disk already.
        first = start_train("--data-dir", data_dir, "--logdir", run_dir.parent, "--run-name", "run",
                            "--batch-size", "16", "--max-steps", "30", "--summary-every", "5",
                            "--checkpoint-every", "10")
        procs.append(first)
        deadline = time.monotonic() + 180
        while not (run_dir / "checkpoint.keras").exists():
            assert first.poll() is None and time.monotonic() < deadline, "no checkpoint"
            time.sleep(0.002)
        first.kill()
        first.communicate(timeout=60)
        saved = checkpoint_step(run_dir)
        shutil.copy(run_dir / "checkpoint.keras", tmp_path / "older.keras")
        events = read_events(run_dir)
        assert saved == 10
        assert steps_of(events, hist)[:3] == [0, 5, 10] and saved in steps_of(events, loss)

        # 2. Two resumes of the same run at once: one trains, the other is refused at once.
        pair = [start_train("--resume", run_dir) for _ in range(2)]
        procs += pair
        deadline = time.monotonic() + 180
        while all(p.poll() is None for p in pair):
            assert time.monotonic() < deadline, "neither resume was refused"
            time.sleep(0.1)
        loser = next(p for p in pair if p.poll() is not None)
        winner = next(p for p in pair if p is not loser)
        out, err = loser.communicate(timeout=60)
        assert loser.returncode == 2, err
        assert err.strip() == (f"error: run folder {run_dir} is in use by process {winner.pid} "
                               f"(another train.py is training it); wait for it to end or stop it")
        assert out == ""

        # ...and the winner is SIGKILLed during its final evaluation, after its last checkpoint.
        lines = output_lines(winner)
        wait_for_line(lines, "step 30/30:")
        time.sleep(0.5)
        winner.kill()
        assert "step 30: test" not in rest_of(lines, winner)  # killed inside the evaluation
        assert not (run_dir / "metrics.json").exists()

        # 3. SIGTERM during the final evaluation: it stops at once, resumable (item 4).
        stopped = start_train("--resume", run_dir)
        procs.append(stopped)
        lines = output_lines(stopped)
        wait_for_line(lines, "step 30/30:")
        time.sleep(0.5)
        stopped.send_signal(signal.SIGTERM)
        out = rest_of(lines, stopped)
        err = stopped.stderr.read()
        assert stopped.returncode == 143, err
        assert "step 30: test" not in out  # it did not wait for the evaluation
        assert f"stopped by SIGTERM at step 30; checkpoint saved. Resume with:\n" \
               f"  python {TRAIN} --resume {run_dir}" in err
        assert checkpoint_step(run_dir) == 30 and not (run_dir / "metrics.json").exists()

        # 4. Events on disk beyond the checkpoint (killed between the flush and the rename),
        # in a copy of the run folder: it resumes as itself and logs nothing twice.
        copy = tmp_path / "elsewhere" / "copy"
        shutil.copytree(run_dir, copy)
        shutil.copy(tmp_path / "older.keras", copy / "checkpoint.keras")
        done = run_train("--resume", copy, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "resuming at step 10" in done.stdout
        assert done.stdout.strip().endswith(f"TensorBoard: tensorboard --logdir {copy.parent}")
        assert str(run_dir) not in done.stdout + done.stderr  # the copy names itself only
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=60)

    events = read_events(copy)
    for tag, series in events.items():
        steps = steps_of(events, tag)
        assert steps == sorted(set(steps)), (tag, steps)  # no step twice, anywhere
    assert steps_of(events, hist) == steps_of(events, stat) == list(range(0, 31, 5))
    loss_steps = steps_of(events, loss)  # every avh_app.curves.train_log_every steps, no gap
    assert loss_steps == list(range(loss_steps[0], 31, loss_steps[0]))
    assert steps_of(events, "test/accuracy") == [30]
    assert read_json(copy / "metrics.json")["steps"] == 30
    # Four processes trained (the refused one wrote nothing): four event files.
    assert len(list(copy.glob("events.out.tfevents.*"))) == 4


def mount_tmpfs(folder, size):
    """A real small filesystem at `folder`, or skip: mounting needs privileges a sandbox may lack."""
    folder.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a {size} tmpfs here ({done.stderr.strip() or 'not permitted'})")
    return folder


@pytest.mark.slow
def test_a_full_disk_is_one_error_line_and_the_last_checkpoint_stays_resumable(mnist_dir, tmp_path):
    """Filesystems that hold one checkpoint (10 MB; one is 7 MB), none (1 MB) and not even
    config.json (full): one error line each, no partial file left, the good checkpoint kept."""
    disks = {"one checkpoint": "10m", "no checkpoint": "1m", "full": "1m"}
    mounted = []
    procs = {}
    try:
        for name, size in disks.items():
            mounted.append(mount_tmpfs(tmp_path / name.replace(" ", "-"), size))
        filler = mounted[2] / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # fill the last one up to its last byte
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        for name, logdir in zip(disks, mounted):
            procs[name] = start_train("--data-dir", mnist_dir, "--logdir", logdir, "--run-name", "run",
                                      "--batch-size", "16", "--max-steps", "40", "--summary-every", "5",
                                      "--checkpoint-every", "10", "--plot-layers", "3")
        results = {name: (proc.communicate(timeout=300), proc.returncode) for name, proc in procs.items()}

        for name, ((out, err), code) in results.items():
            run_dir = mounted[list(disks).index(name)] / "run"
            errors = [line for line in err.splitlines() if line.startswith("error:")]
            assert code == 1 and "Traceback" not in err, (name, err)
            assert len(errors) == 1 and "No space left on device" in errors[0], (name, err)
            assert str(run_dir) in errors[0], name
            if name == "full":
                assert errors[0] == f"error: cannot write config.json in {run_dir}: No space left on device"
                assert not run_dir.exists()  # a run that could not start leaves no folder
                continue
            assert not (run_dir / ".checkpoint-partial.keras").exists(), name
            assert not (run_dir / "metrics.json").exists(), name
            if name == "no checkpoint":
                assert not (run_dir / "checkpoint.keras").exists() and "--resume" not in err
            else:
                assert checkpoint_step(run_dir) > 0  # whole and loadable
                assert err.strip().endswith(f"resume with:\n  python {TRAIN} --resume {run_dir}")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=60)
        for folder in mounted:
            subprocess.run(["umount", str(folder)], capture_output=True, timeout=60)


def test_compare_offers_to_resume_only_a_run_no_process_is_training(tmp_path):
    """A run folder's lock is tested, never taken, by the hints of compare.py and train.py."""
    from test_compare_report import load_script

    compare = load_script("compare")
    run_dir = tmp_path / "relu"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"activation": "relu"}))
    (run_dir / "checkpoint.keras").write_bytes(b"a checkpoint")
    hold = ("import sys, time; from avh_app import runfolder; held = runfolder.lock(sys.argv[1]); "
            "print('locked', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(run_dir)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        table = compare.summary_table(tmp_path, {"relu": 143})
        assert f"relu is still being trained by process {holder.pid}" in table
        assert "--resume" not in table
        from avh_app import runfolder
        from avh_app.cli import UsageError
        from avh_app.config import Config
        with pytest.raises(UsageError, match=f"process {holder.pid} is training it"):
            runfolder.create(Config(logdir=str(tmp_path), run_name="relu"))
    finally:
        holder.kill()
        holder.wait(timeout=60)
    # The kernel dropped the killed holder's lock: the run can be continued now.
    table = compare.summary_table(tmp_path, {"relu": 143})
    assert f"continue relu with: python {compare.TRAIN} --resume {run_dir}" in table
