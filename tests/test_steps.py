"""The training loop's step callbacks: exact steps under steps_per_execution, and no host sync on
the default path's ordinary steps (counted)."""
import collections
import threading

import numpy as np

from avh_app.cli import import_tensorflow

tf, keras = import_tensorflow()

from avh_app import loop  # noqa: E402
from avh_app.eventlog import EventLog  # noqa: E402
from avh.events import read_events  # noqa: E402
from avh.steps import StepCallback  # noqa: E402
from avh.summaries import ActivationSummaries  # noqa: E402
from avh.tags import HISTOGRAM_TAG, TRAIN_TAG  # noqa: E402

BATCH, STEPS_PER_EPOCH = 8, 10


def tiny_run(steps_per_execution):
    """A small functional model and train.py's kind of input: train_batches(epoch, skip)."""
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    hidden = keras.layers.Activation("selu")(keras.layers.Dense(8)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(hidden))
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], steps_per_execution=steps_per_execution)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH * STEPS_PER_EPOCH, 6)).astype("float32")
    y = rng.integers(0, 3, len(x))

    def train_batches(epoch, skip=0):
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH).skip(skip)
    return model, train_batches, x[:16]


class Seen(StepCallback):
    def __init__(self):
        super().__init__()
        self.steps = []

    def on_step_end(self, step):
        self.steps.append(step)


def test_steps_per_execution_logs_and_saves_at_exact_steps(tmp_path):
    """Epochs of 10 steps, N = 4: executions end on multiples of 4 (plus epoch and run ends), so
    summaries every 4 steps and checkpoints every 8 land where they would with N = 1."""
    model, train_batches, probe = tiny_run(steps_per_execution=4)
    events = EventLog(tmp_path)
    writer = events.writer
    writer.set_as_default()
    seen = Seen()
    summaries = ActivationSummaries(probe, writer=writer, every=4, log_on_train_end=False)
    progress = loop.Progress(22, BATCH, 4, TRAIN_TAG)
    checkpointer = loop.Checkpointer(model, tmp_path, events, 8)
    saved = []
    checkpointer.save = lambda step: saved.append(step)
    callbacks = [loop.NanGuard(checkpointer, every=(4, 8)), seen, summaries, progress,
                 checkpointer]
    step = loop.fit_epochs(model, train_batches, STEPS_PER_EPOCH, 0, 22, callbacks)
    summaries.log(step, final=True)
    summaries.close()
    writer.flush()

    assert step == int(model.optimizer.iterations) == 22
    assert seen.steps == [4, 8, 10, 12, 16, 20, 22]
    events = read_events(tmp_path)
    assert [s for s, _ in events[HISTOGRAM_TAG.format(layer="activation")]] == [0, 4, 8, 12, 16, 20, 22]
    assert [s for s, _ in events[TRAIN_TAG.format(metric="loss")]] == [4, 8, 12, 16, 20, 22]
    assert saved == [8, 16]


def test_default_path_reads_nothing_from_the_device_on_ordinary_steps(monkeypatch, tmp_path):
    """Keras converts a step's logs to floats on the training thread when a callback wants them
    at every batch end; train.py's callbacks never do. Counted: tensor-to-numpy conversions on
    the training thread, in 40 steps with boundaries at 20 and 40, against one callback of the
    kind that forces a sync per step. (On the TensorFlow backend Keras never dispatches batch
    ends asynchronously: a plain fit converts every step's logs; avh.steps.StepCallbackList skips
    that.)"""
    from keras.src import backend

    conversions = []
    convert = backend.convert_to_numpy

    def counting(x):
        if threading.current_thread() is threading.main_thread():
            conversions.append(1)
        return convert(x)
    monkeypatch.setattr(backend, "convert_to_numpy", counting)

    def run(*extra):
        model, train_batches, probe = tiny_run(steps_per_execution=1)
        events = EventLog(tmp_path / f"run{len(extra)}")
        writer = events.writer
        writer.set_as_default()
        checkpointer = loop.Checkpointer(model, tmp_path, events, 20)
        checkpointer.save = lambda step: None
        summaries = ActivationSummaries(probe, writer=writer, every=20, log_on_train_end=False)
        progress = loop.Progress(40, BATCH, 20, TRAIN_TAG)
        callbacks = [loop.NanGuard(checkpointer, every=(20,)), summaries, progress,
                     checkpointer, loop.StopRequests(), *extra]
        loop.fit_epochs(model, train_batches, STEPS_PER_EPOCH, 0, 20, callbacks)  # warm-up
        conversions.clear()
        loop.fit_epochs(model, train_batches, STEPS_PER_EPOCH, 20, 60, callbacks)
        summaries.close()
        return len(conversions)

    class PerStep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            pass

    default = run()
    per_step = run(PerStep())
    assert per_step >= 40  # the counter sees a per-step sync when there is one
    # Keras converts the loss and accuracy at each of the 4 fits' epoch and train ends, never per step
    assert default <= 4 * 4, default


def test_progress_prints_plain_lines_off_a_terminal_and_a_bar_on_one(capsys, tmp_path):
    """Off a terminal (a pipe, a log file, compare.py): one line every print_every steps and at
    the end, with the time left. On one: keras.utils.Progbar with examples/s, loss and accuracy."""
    model, train_batches, _ = tiny_run(steps_per_execution=1)
    EventLog(tmp_path).writer.set_as_default()
    plain = loop.Progress(25, BATCH, every=5, tag=TRAIN_TAG, print_every=10, terminal=False)
    loop.fit_epochs(model, train_batches, STEPS_PER_EPOCH, 0, 25, [plain])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["step 10/25", "step 20/25", "step 25/25"]
    assert lines[0].endswith(" left") and "examples/s" in lines[0] and "left" not in lines[-1]

    model, train_batches, _ = tiny_run(steps_per_execution=1)
    bar = loop.Progress(25, BATCH, every=5, tag=TRAIN_TAG, print_every=10, terminal=True)
    loop.fit_epochs(model, train_batches, STEPS_PER_EPOCH, 0, 25, [bar])
    bar.say("step 25: test loss 1.0")
    out = capsys.readouterr().out
    assert "25/25" in out and "━" in out and "examples/s:" in out and "loss:" in out
    assert out.rstrip().endswith("step 25: test loss 1.0")
    tf.summary.create_noop_writer().set_as_default()


def test_the_nan_guard_and_the_train_curve_read_the_running_metrics_once_a_step(tmp_path):
    """Sharing a RunningMetrics, the NaN guard and Progress read model.get_metrics_result() once
    at each step where both act (a host sync each), and the curve's points are still that step's
    running means: at each epoch's last step, what Keras' History recorded for the epoch."""
    model, train_batches, _ = tiny_run(steps_per_execution=1)
    EventLog(tmp_path).writer.set_as_default()
    reads, read = [], model.get_metrics_result

    def counted():
        if tf.executing_eagerly():  # not Keras' own call inside the traced train step
            reads.append(int(model.optimizer.iterations))
        return read()
    model.get_metrics_result = counted
    epoch_ends = {}

    class EpochEnds(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            epoch_ends[int(model.optimizer.iterations)] = logs

    metrics = loop.RunningMetrics()
    checkpointer = loop.Checkpointer(model, tmp_path, None, 100)
    callbacks = [loop.NanGuard(checkpointer, every=(5,), metrics=metrics),
                 loop.Progress(20, BATCH, 5, TRAIN_TAG, terminal=False, metrics=metrics),
                 EpochEnds()]
    loop.fit_epochs(model, train_batches, STEPS_PER_EPOCH, 0, 20, callbacks)
    tf.summary.flush()
    tf.summary.create_noop_writer().set_as_default()

    # Ours once a step (unshared: twice); Keras' own read for its epoch logs at each fit's end.
    assert collections.Counter(reads) == {5: 1, 10: 2, 15: 1, 20: 2}
    events = read_events(tmp_path)
    for metric in ("loss", "accuracy"):
        curve = dict(events[TRAIN_TAG.format(metric=metric)])
        assert sorted(curve) == [5, 10, 15, 20]
        for step in (10, 20):
            assert curve[step] == np.float32(epoch_ends[step][metric])
        assert curve[5] != curve[10] or metric == "accuracy"  # step 5's read is not reused


def test_each_callbacks_time_on_the_training_thread_is_counted_at_step_ends_only():
    """TrainingThreadTimes in a real fit: a callback that works 20 ms at every 5th step end is
    charged about 2 x 20 ms per 10-step fit, one that does nothing about 0; a fit's first step
    start is not a step end; the shares are of the clock's timed window; the median step leaves
    the slow steps out."""
    import time

    model, train_batches, _ = tiny_run(1)

    class Busy(StepCallback):
        def on_step_end(self, step):
            if step % 5 == 0:
                time.sleep(0.02)

    class FirstStart(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                time.sleep(0.05)  # before the timed part: not charged

    clock = loop.SteadyClock()
    times = loop.TrainingThreadTimes({"busy": Busy(), "idle": Seen(), "first": FirstStart()})
    callbacks = [clock, *times.callbacks]
    loop.fit_epochs(model, train_batches, STEPS_PER_EPOCH, 0, 2 * STEPS_PER_EPOCH, callbacks)
    assert 0.08 <= times.seconds["busy"] < 0.15  # steps 5, 10, 15, 20
    assert times.seconds["idle"] < 0.01 and times.seconds["first"] < 0.01
    shares = times.shares(clock.seconds)
    assert shares["busy"] == times.seconds["busy"] / clock.seconds < 1
    assert clock.median_step_ms() < 15  # a 20-ms step end is not an ordinary step
