"""The app's training loop: input pipeline, optimizer, and one fit() per epoch with the callbacks
that make a run safe to stop, resume and trust (NaN guard, stop requests, progress, checkpoints).

train.py and scripts/benchmark.py both run it. It knows nothing of flags or of run folders' names.
"""
import json
import math
import os
import signal
import time

import keras
import numpy as np
import tensorflow as tf

from avh import runfolder
from avh.config import CHECKPOINT, PARTIAL_CHECKPOINT, optimizer_settings
from avh.steps import StepCallback, StepCallbackList
from avh.tags import TEST_TAG

PROCESS_START = time.perf_counter()  # set again by train.py at its first line
PROBE_SIZE = 128          # test images in the fixed probe batch (the first ones, for every run)
EVAL_BATCH_SIZE = 256


class Interrupted(Exception):
    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Diverged(Exception):
    pass


def input_pipeline(data, mean, std, batch_size, seed):
    """(train_batches(epoch, skip), test_batches, standardise) over the uint8 arrays in memory;
    every batch is standardised with the per-channel `mean` and `std`."""
    mean_t, std_t = tf.constant(mean), tf.constant(std)
    x_train, y_train = tf.constant(data.x_train), tf.constant(data.y_train)
    n_train = len(data.x_train)

    def standardise(images):
        return (tf.cast(images, tf.float32) - mean_t) / std_t

    def train_batches(epoch, skip=0):
        """Epoch `epoch`'s batches, from batch `skip` on. The order is a pure function of
        (seed, epoch), so a resumed run sees exactly the batches the interrupted one would have."""
        order = tf.random.experimental.stateless_shuffle(tf.range(n_train), seed=[seed, epoch])
        return with_fixed_knobs(
            tf.data.Dataset.from_tensor_slices(order)
            .batch(batch_size).skip(skip)
            .map(lambda i: (standardise(tf.gather(x_train, i)), tf.gather(y_train, i)),
                 num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))

    test_batches = (tf.data.Dataset.from_tensor_slices((data.x_test, data.y_test))
                    .batch(EVAL_BATCH_SIZE)
                    .map(lambda x, y: (standardise(x), y), num_parallel_calls=tf.data.AUTOTUNE)
                    .prefetch(tf.data.AUTOTUNE))
    return train_batches, with_fixed_knobs(test_batches), standardise


def with_fixed_knobs(dataset):
    """`dataset` without tf.data's autotuning thread: deleting an iterator waits for that
    thread's current sleep, which grows the longer the iterator runs, so every fit() (one per
    epoch) and evaluation ended with a stall of 0-40 s in about a third of the runs here
    (measured at 8-9 s after 60 CIFAR-10 steps). AUTOTUNE then means one parallel call per core
    and a prefetch buffer of one batch, plenty for a pipeline that gathers from memory."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def compile_model(model, cfg, total_steps):
    """The run's optimizer (Adam or SGD, optionally cosine-decayed and clipped) on softmax
    cross-entropy of the logits."""
    settings = optimizer_settings(cfg)
    lr = settings.pop("learning_rate")
    if cfg.lr_schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, total_steps)
    kinds = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}
    optimizer = kinds[cfg.optimizer](lr, global_clipnorm=cfg.clip_norm, **settings)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=True if cfg.jit else "auto",
                  steps_per_execution=cfg.steps_per_execution)


def fit_epochs(model, train_batches, steps_per_epoch, start_step, total_steps, callbacks=(),
               at_epoch_end=None):
    """Train from `start_step` to `total_steps`, one fit() per epoch so that a resumed run can
    start mid-epoch; `at_epoch_end(step)` runs after every epoch but the last. Returns the step.

    Under steps_per_execution N, callbacks see only the ends of executions, which Keras counts
    from each fit's start: an epoch that starts off a multiple of N gets a short fit up to the
    next multiple first, so that executions end on the multiples of N (where summaries and
    checkpoints fall) and runs of any N log and save at the same steps."""
    execution = getattr(model, "steps_per_execution", 1) or 1
    step = start_step
    while step < total_steps:
        epoch, done_in_epoch = divmod(step, steps_per_epoch)
        steps = min(steps_per_epoch - done_in_epoch, total_steps - step)
        if step % execution:
            steps = min(steps, execution - step % execution)
        # take(): an execution runs until N steps or the end of the data, whatever steps_per_epoch
        model.fit(train_batches(epoch, skip=done_in_epoch).take(steps), initial_epoch=epoch,
                  epochs=epoch + 1, steps_per_epoch=steps, shuffle=False, verbose=0,
                  callbacks=StepCallbackList(list(callbacks), model, verbose=0, epochs=epoch + 1,
                                             steps=steps))
        step += steps
        if step < total_steps and step % steps_per_epoch == 0 and at_epoch_end is not None:
            at_epoch_end(step)
    return step


def evaluate(model, test_batches, step, callbacks=()):
    """Test loss and accuracy on the full test set in inference mode, logged at `step`."""
    result = model.evaluate(test_batches, verbose=0, return_dict=True, callbacks=list(callbacks))
    for metric in ("loss", "accuracy"):
        tf.summary.scalar(TEST_TAG.format(metric=metric), result[metric], step=step)
    print(f"step {step}: test loss {result['loss']:.4f}, test accuracy {result['accuracy']:.2%}")
    return result


def summary_writer(run_dir):
    """The run's event writer. Events wait in memory until Checkpointer flushes them: nothing
    else may flush it (note that leaving a `with writer.as_default()` block does)."""
    return tf.summary.create_file_writer(str(run_dir), max_queue=1_000_000, flush_millis=10**9)


def channel_stats(images):
    """Exact per-channel mean and std of uint8 images from each channel's 256-bin value counts
    (fast, and never a float copy of the whole set)."""
    levels = np.arange(256, dtype=np.float64)
    mean, std = [], []
    for c in range(images.shape[-1]):
        counts = np.bincount(images[..., c].ravel(), minlength=256).astype(np.float64)
        m = counts @ levels / counts.sum()
        mean.append(m)
        std.append(np.sqrt(counts @ (levels - m) ** 2 / counts.sum()))
    # A constant channel (all-black borders, a test fixture) must not divide by zero.
    return np.float32(mean), np.maximum(np.float32(std), 1e-3)


def write_json(path, obj):
    """Written whole or not at all; runfolder.WriteFailed if it cannot be."""
    runfolder.write_durably(path, json.dumps(obj, indent=2) + "\n")


class NanGuard(StepCallback):
    """Stops when the loss is not finite, before anything logs or saves it: checked at the steps
    where something is logged or saved (multiples of `every`) and at each fit's end.

    It reads the running mean of the loss since the fit began, which is non-finite if any step's
    loss was, so checking there only misses nothing and leaves the other steps without the host
    sync that reading a loss costs (on a GPU, a stall of the step queue)."""

    def __init__(self, checkpointer, every=(1,)):
        super().__init__()
        self.checkpointer = checkpointer
        self.every = [n for n in every if n]

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._checked_step = self._epoch_start

    def on_step_end(self, step):
        if self.at_fit_end or any(step % n == 0 for n in self.every):
            self.check(step)

    def check(self, step):
        loss = float(self.model.get_metrics_result()["loss"])
        if not math.isfinite(loss):
            first = self._checked_step + 1
            where = f"at step {step}" if first == step else f"in steps {first}-{step}"
            raise Diverged(f"loss became {loss} {where}; stopped. Last good checkpoint: "
                           f"{self.checkpointer.describe()}")
        self._checked_step = step


class StopRequests(keras.callbacks.Callback):
    """SIGINT/SIGTERM during training ask for a clean stop once the current step is done and
    logged, or during an evaluation once the current test batch is done (a second Ctrl-C stops
    at once)."""

    def __init__(self):
        super().__init__()
        self.signum = None

    def install(self):
        self._previous = {sig: signal.signal(sig, self._handle)
                          for sig in (signal.SIGINT, signal.SIGTERM)}

    def uninstall(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def check(self):
        if self.signum is not None:
            raise Interrupted(self.signum)

    def on_train_batch_begin(self, batch, logs=None):
        self.check()  # before the next step, not after this one: no logs, no host sync

    def on_test_batch_end(self, batch, logs=None):
        self.check()  # the test set can take longer than a scheduler's grace period


class Progress(StepCallback):
    """Prints a line and logs train loss/accuracy every `every` steps; measures throughput.

    Throughput is steady-state training, summaries and checkpoints included: each fit()'s
    clock starts when its first step ends (the first one also builds the training graph)."""

    def __init__(self, total_steps, batch_size, every, tag, print_every=None):
        super().__init__()
        self.total_steps, self.batch_size = total_steps, batch_size
        self.every, self.tag = every, tag
        self.print_every = print_every or every  # a line per logged point would flood the terminal
        self.first_step_at = None
        self.timed_seconds = 0.0
        self.timed_steps = 0
        self._clock = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._clock = None
        self._mark = (time.perf_counter(), self._epoch_start)

    def on_train_end(self, logs=None):
        if self._clock is not None:
            self.timed_seconds += time.perf_counter() - self._clock[0]
            self.timed_steps += self._last_step - self._clock[1]

    def on_train_batch_begin(self, batch, logs=None):
        if batch and self._clock is None:  # the fit's first execution has ended
            self._clock = (time.perf_counter(), self._epoch_start + batch)
        super().on_train_batch_begin(batch, logs)

    def on_step_end(self, step):
        if self.first_step_at is None:
            self.first_step_at = time.perf_counter() - PROCESS_START
        if step % self.every and step != self.total_steps:
            return
        # The running means since the fit began: read here only, a host sync at this step alone.
        logs = self.model.get_metrics_result()
        loss, accuracy = float(logs["loss"]), float(logs["accuracy"])
        tf.summary.scalar(self.tag.format(metric="loss"), loss, step=step)
        tf.summary.scalar(self.tag.format(metric="accuracy"), accuracy, step=step)
        if step % self.print_every and step != self.total_steps:
            return
        now = time.perf_counter()
        rate = (step - self._mark[1]) * self.batch_size / max(now - self._mark[0], 1e-9)
        self._mark = (now, step)
        print(f"step {step}/{self.total_steps}: loss {loss:.4f}, accuracy {accuracy:.2%}, "
              f"{rate:.0f} examples/s")

    def examples_per_sec(self):
        """None for a run too short to time (one step per fit())."""
        if not self.timed_steps:
            return None
        return self.timed_steps * self.batch_size / self.timed_seconds


class Checkpointer(StepCallback):
    """Saves model and optimizer every `every` steps, events first: the event log is flushed and
    checked on disk, then the checkpoint is written to a partial file, synced and renamed. So a
    checkpoint on disk always has its events on disk (they may run up to one checkpoint ahead of
    it, which a resumed run recognises), and a hard kill never leaves a half-written checkpoint
    where --resume looks. At the last step of a fit() it leaves the save to the caller, who
    evaluates first, so that step's logs are complete when they reach the disk."""

    def __init__(self, model, run_dir, writer, every, probe_batch=None):
        super().__init__()
        self.set_model(model)
        self.run_dir, self.writer, self.every = run_dir, writer, every
        self.probe_batch = probe_batch
        self.saved_step = None
        self.before_flush = lambda: None  # e.g. wait for events other threads are writing
        self._event_file, self._checked_offset = None, 0

    def on_step_end(self, step):
        # Not at a fit's last step: the loop saves there itself, after the test set.
        if step % self.every == 0 and not self.at_fit_end:
            self.save(step)

    def save(self, step):
        """Events up to `step` durable, then the checkpoint of `step` (once per step).
        Diverged if the model is no longer finite; runfolder.WriteFailed if a write fails."""
        if step != self.saved_step:
            self._check_finite(step)
        self.flush_events(step)
        if step == self.saved_step:
            return
        partial = self.run_dir / PARTIAL_CHECKPOINT
        try:
            self.model.save(partial)
            runfolder.replace_durably(partial, self.run_dir / CHECKPOINT)
        except BaseException as err:
            partial.unlink(missing_ok=True)  # a full disk must not stay full of half a checkpoint
            if isinstance(err, Exception):
                raise runfolder.WriteFailed(
                    f"cannot write the checkpoint in {self.run_dir}: "
                    f"{runfolder.cause(err, self.run_dir)}", self.run_dir) from None
            raise
        self.saved_step = step

    def flush_events(self, step):
        """Flush the event log and prove it reached the disk: a marker event (a SessionLog
        CHECKPOINT, which TensorBoard does not show) written last must be there, whole."""
        from tensorboard.compat.proto import event_pb2

        self.before_flush()

        marker = event_pb2.Event(step=step, wall_time=time.time())
        marker.session_log.status = event_pb2.SessionLog.CHECKPOINT
        # tf.summary has no public call for a raw event; ImportEvent is the op it would use.
        tf.raw_ops.ImportEvent(writer=self.writer._resource, event=marker.SerializeToString())
        self.writer.flush()
        if self._event_file is None:
            own = [p for p in self.run_dir.glob("events.out.tfevents.*")
                   if f".{os.getpid()}." in p.name]
            self._event_file = max(own, key=lambda p: p.stat().st_mtime_ns)
        self._checked_offset = runfolder.check_events_reached_disk(
            self._event_file, self._checked_offset,
            lambda e: e.step == step and e.session_log.status == e.session_log.CHECKPOINT)

    def _check_finite(self, step):
        finite = all(np.isfinite(w).all() for w in self.model.get_weights())
        what = "weights"
        if finite and self.probe_batch is not None:
            # Finite weights can still overflow: a "good" checkpoint must also compute.
            outputs = self.model(self.probe_batch, training=False)
            finite = bool(tf.reduce_all(tf.math.is_finite(tf.cast(outputs, tf.float32))))
            what = "outputs on the probe batch"
        if not finite:
            raise Diverged(f"{what} became non-finite by step {step}; stopped. Last good "
                           f"checkpoint: {self.describe()}")

    def describe(self):
        if self.saved_step is None and not (self.run_dir / CHECKPOINT).exists():
            return "none yet"
        where = self.run_dir / CHECKPOINT
        return f"{where} (step {self.saved_step})" if self.saved_step is not None else str(where)
