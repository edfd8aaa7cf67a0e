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

from avh.config import CHECKPOINT, PARTIAL_CHECKPOINT, optimizer_settings
from avh.steps import StepCallback
from avh.tags import TEST_TAG, TRAIN_TAG

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
        return (tf.data.Dataset.from_tensor_slices(order)
                .batch(batch_size).skip(skip)
                .map(lambda i: (standardise(tf.gather(x_train, i)), tf.gather(y_train, i)),
                     num_parallel_calls=tf.data.AUTOTUNE)
                .prefetch(tf.data.AUTOTUNE))

    test_batches = (tf.data.Dataset.from_tensor_slices((data.x_test, data.y_test))
                    .batch(EVAL_BATCH_SIZE)
                    .map(lambda x, y: (standardise(x), y), num_parallel_calls=tf.data.AUTOTUNE)
                    .prefetch(tf.data.AUTOTUNE))
    return train_batches, test_batches, standardise


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
                  metrics=["accuracy"], jit_compile=True if cfg.jit else "auto")


def fit_epochs(model, train_batches, steps_per_epoch, start_step, total_steps, callbacks=(),
               at_epoch_end=None):
    """Train from `start_step` to `total_steps`, one fit() per epoch so that a resumed run can
    start mid-epoch; `at_epoch_end(step)` runs after every epoch but the last. Returns the step."""
    step = start_step
    while step < total_steps:
        epoch, done_in_epoch = divmod(step, steps_per_epoch)
        steps = min(steps_per_epoch - done_in_epoch, total_steps - step)
        model.fit(train_batches(epoch, skip=done_in_epoch), initial_epoch=epoch,
                  epochs=epoch + 1, steps_per_epoch=steps, shuffle=False,
                  callbacks=list(callbacks), verbose=0)
        step += steps
        if step < total_steps and at_epoch_end is not None:
            at_epoch_end(step)
    return step


def evaluate(model, test_batches, step):
    """Test loss and accuracy on the full test set in inference mode, logged at `step`."""
    result = model.evaluate(test_batches, verbose=0, return_dict=True)
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
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


class NanGuard(StepCallback):
    """Stops at once when the loss is not finite, before anything logs or saves that step."""

    def __init__(self, checkpointer):
        super().__init__()
        self.checkpointer = checkpointer

    def on_train_batch_end(self, batch, logs=None):
        loss = float(logs["loss"])
        if not math.isfinite(loss):
            step = self.global_step(batch)
            raise Diverged(f"loss became {loss} at step {step}; stopped. Last good checkpoint: "
                           f"{self.checkpointer.describe()}")


class StopRequests(keras.callbacks.Callback):
    """SIGINT/SIGTERM during training ask for a clean stop once the current step is done and
    logged (a second Ctrl-C stops at once)."""

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

    def on_train_batch_end(self, batch, logs=None):
        self.check()


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
            self.timed_seconds += time.perf_counter() - self._clock

    def on_train_batch_end(self, batch, logs=None):
        if self._clock is None:
            self._clock = time.perf_counter()
        else:
            self.timed_steps += 1
        if self.first_step_at is None:
            self.first_step_at = time.perf_counter() - PROCESS_START
        step = self.global_step(batch)
        if step % self.every and step != self.total_steps:
            return
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
    """Saves model and optimizer every `every` steps: written to a partial file, then renamed,
    so a hard kill never leaves a half-written checkpoint where --resume looks. The event log
    is flushed right after, so the logs on disk never run ahead of the checkpoint."""

    def __init__(self, model, run_dir, writer, every):
        super().__init__()
        self.set_model(model)
        self.run_dir, self.writer, self.every = run_dir, writer, every
        self.saved_step = None

    def on_train_batch_end(self, batch, logs=None):
        step = self.global_step(batch)
        if step % self.every == 0:
            self.save(step)

    def save(self, step):
        if step == self.saved_step:
            return
        if not all(np.isfinite(w).all() for w in self.model.get_weights()):
            raise Diverged(f"weights became non-finite by step {step}; stopped. Last good "
                           f"checkpoint: {self.describe()}")
        partial = self.run_dir / PARTIAL_CHECKPOINT
        self.model.save(partial)
        os.replace(partial, self.run_dir / CHECKPOINT)
        self.saved_step = step
        self.writer.flush()

    def describe(self):
        if self.saved_step is None and not (self.run_dir / CHECKPOINT).exists():
            return "none yet"
        where = self.run_dir / CHECKPOINT
        return f"{where} (step {self.saved_step})" if self.saved_step is not None else str(where)
