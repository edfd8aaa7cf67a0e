"""The app's training loop: the optimizer, one fit() per epoch, the test set, and the callbacks that
make a run safe to stop, resume and trust (NaN guard, stop requests, progress, checkpoints).

avh_app.run puts a run together from these. Nothing here knows flags or run-folder names.
"""
import math
import signal
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from avh.steps import StepCallback, StepCallbackList
from avh.tags import TEST_TAG
from avh_app import runfolder
from avh_app.cli import Diverged, Interrupted
from avh_app.config import CHECKPOINT, PARTIAL_CHECKPOINT, optimizer_settings
from avh_app.curves import log_metrics

PROCESS_START = time.perf_counter()  # set again by train.py at its first line


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


def evaluate(model, test_batches, step, callbacks=(), say=print):
    """Test loss and accuracy on the full test set in inference mode, logged at `step`."""
    result = model.evaluate(test_batches, verbose=0, return_dict=True, callbacks=list(callbacks))
    log_metrics(TEST_TAG, {metric: result[metric] for metric in ("loss", "accuracy")}, step)
    say(f"step {step}: test loss {result['loss']:.4f}, test accuracy {result['accuracy']:.2%}")
    return result


class RunningMetrics:
    """The fit's running means of the loss and accuracy (model.get_metrics_result(), as floats),
    read at most once a step: a read is a few eager ops and a host sync, and the NaN guard and
    the train curve read them at the same steps."""

    def __init__(self):
        self._model, self._step, self._values = None, None, None

    def at(self, model, step):
        """{metric: float} of `model` after `step` (the training thread's current step)."""
        if model is not self._model or step != self._step:
            results = model.get_metrics_result()
            self._values = {name: float(value) for name, value in results.items()}
            self._model, self._step = model, step
        return self._values


class NanGuard(StepCallback):
    """Stops when the loss is not finite, before anything logs or saves it: checked at the steps
    where something is logged or saved (multiples of `every`) and at each fit's end.

    It reads the running mean of the loss since the fit began, which is non-finite if any step's
    loss was, so checking there only misses nothing and leaves the other steps without the host
    sync that reading a loss costs (on a GPU, a stall of the step queue). `metrics`: the
    RunningMetrics it shares with the callbacks that read them after it at the same steps."""

    def __init__(self, checkpointer, every=(1,), metrics=None):
        super().__init__()
        self.checkpointer = checkpointer
        self.every = [n for n in every if n]
        self.metrics = metrics or RunningMetrics()

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._checked_step = self._epoch_start

    def on_step_end(self, step):
        if self.at_fit_end or any(step % n == 0 for n in self.every):
            self.check(step)

    def check(self, step):
        loss = self.metrics.at(self.model, step)["loss"]
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


class SteadyClock(keras.callbacks.Callback):
    """Steady-state training time: each fit() is timed from the end of its first step (the first
    one also builds the training graph) to its end, in wall time and in the process's CPU time
    (user + system, every thread), and the median time from one step's start to the next's (an
    ordinary step, the steps where callbacks act left out by the median). No batch-end hook: it
    reads nothing from the device. First in a callback list, so that it sees a step start before
    any other callback acts on it."""

    def __init__(self, process_start=None):
        super().__init__()
        self.process_start = PROCESS_START if process_start is None else process_start
        self.first_step_at = None  # seconds from the process's start to its first step's end
        self.seconds = self.cpu_seconds = 0.0
        self.steps = 0
        self._since = None
        self._intervals = []       # seconds between consecutive step starts, in the timed part
        self._step_started = None

    def on_train_begin(self, logs=None):
        self._since, self._steps, self._step_started = None, 0, None

    def on_train_batch_begin(self, batch, logs=None):
        now = time.perf_counter()
        if batch and self._since is None:  # the fit's first execution has ended
            self._since = (now, time.process_time(), batch)
            if self.first_step_at is None:
                self.first_step_at = self._since[0] - self.process_start
        elif self._step_started is not None:
            self._intervals.append(now - self._step_started)
        self._step_started = now if batch else None
        self._steps = batch

    def on_train_end(self, logs=None):
        if self._since is not None:
            wall, cpu, first = self._since
            self.seconds += time.perf_counter() - wall
            self.cpu_seconds += time.process_time() - cpu
            self.steps += (self.params.get("steps") or self._steps) - first

    def examples_per_sec(self, batch_size):
        """None for a run too short to time (one execution per fit())."""
        return self.steps * batch_size / self.seconds if self.steps else None

    def cpu_seconds_per_step(self):
        return self.cpu_seconds / self.steps if self.steps else None

    def median_step_ms(self):
        """An ordinary step (execution) in ms: the median time between two step starts."""
        return 1000 * float(np.median(self._intervals)) if self._intervals else None


class TrainingThreadTimes:
    """The wall time each of a run's callbacks takes on the training thread where they act
    (on_train_batch_begin after a fit's first step, on_epoch_end), summed over the run: what the
    app's own work costs, split by callback and measured inside the run, so that it does not
    depend on the machine's speed from one process to the next.

    `callbacks`: {name: callback}. Each one's two hooks are wrapped on the instance (its class
    is untouched, so Keras sees the same hooks as before)."""

    HOOKS = ("on_train_batch_begin", "on_epoch_end")

    def __init__(self, callbacks):
        self.callbacks = list(callbacks.values())
        self.seconds = dict.fromkeys(callbacks, 0.0)
        for name, callback in callbacks.items():
            for hook in self.HOOKS:
                setattr(callback, hook, self._timed(name, getattr(callback, hook), hook))

    def _timed(self, name, method, hook):
        def timed(index, logs=None):
            if hook == "on_train_batch_begin" and not index:
                return method(index, logs)  # a fit's first step starts: not a step's end
            start = time.perf_counter()
            try:
                return method(index, logs)
            finally:
                self.seconds[name] += time.perf_counter() - start
        return timed

    def shares(self, window_seconds):
        """{name: its share of `window_seconds`} (the steady-state window of SteadyClock)."""
        if not window_seconds:
            return None
        return {name: seconds / window_seconds for name, seconds in self.seconds.items()}


class Progress(StepCallback):
    """Logs train loss/accuracy every `every` steps, and shows how far the run is: on a terminal
    a keras.utils.Progbar (steps, examples/s, loss, accuracy, time left), updated about twice a
    second; elsewhere (a pipe, a log file, compare.py's prefixed output) a plain line every
    `print_every` steps and at the end. The loss is read (a host sync) at those steps only, through
    `metrics` (a RunningMetrics shared with the NaN guard, which reads it first)."""

    BAR_SECONDS = 0.5  # between two updates of the bar

    def __init__(self, total_steps, batch_size, every, tag, print_every=None, start_step=0,
                 terminal=None, metrics=None):
        super().__init__()
        self.metrics = metrics or RunningMetrics()
        self.total_steps, self.batch_size = total_steps, batch_size
        self.every, self.tag = every, tag
        self.print_every = print_every or every  # a line per logged point would flood the terminal
        self.start_step = start_step
        terminal = sys.stdout.isatty() if terminal is None else terminal
        # A resumed run's bar counts this process's steps: Progbar times its first step only.
        self.bar = keras.utils.Progbar(total_steps - start_step, stateful_metrics=STATEFUL,
                                       unit_name="step") if terminal else None
        self._bar_at = 0.0
        self._bar_open = False  # a bar not yet finished is on screen
        self._mark = None  # (time, step) of the last line: the rate since then

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._mark is None:
            self._mark = (time.perf_counter(), self._epoch_start)

    def on_step_end(self, step):
        now = time.perf_counter()
        last = step == self.total_steps
        log_point = step % self.every == 0 or last
        if self.bar is not None:
            shown = last or now - self._bar_at >= self.BAR_SECONDS
        else:
            shown = step % self.print_every == 0 or last
        if not (log_point or shown):
            return
        # The running means since the fit began: read at these steps only (a host sync).
        logs = self.metrics.at(self.model, step)
        loss, accuracy = logs["loss"], logs["accuracy"]
        if log_point:
            log_metrics(self.tag, {"loss": loss, "accuracy": accuracy}, step)
        if not shown:
            return
        rate = (step - self._mark[1]) * self.batch_size / max(now - self._mark[0], 1e-9)
        if self.bar is not None:
            self._bar_at, self._bar_open, self._mark = now, not last, (now, step)
            self.bar.update(step - self.start_step, [("examples/s", rate), ("loss", loss),
                                                     ("accuracy", accuracy)])
            return
        left = (self.total_steps - step) * (now - self._mark[0]) / max(step - self._mark[1], 1)
        self._mark = (now, step)
        print(f"step {step}/{self.total_steps}: loss {loss:.4f}, accuracy {accuracy:.2%}, "
              f"{rate:.0f} examples/s" + (f", {_duration(left)} left" if not last else ""),
              flush=True)

    def say(self, text):
        """Print a line of the run's own (a test result) without breaking the bar."""
        if self._bar_open:
            text, self._bar_open = "\n" + text, False
        print(text, flush=True)


STATEFUL = ("examples/s", "loss", "accuracy")  # shown as given: running means already


def _duration(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


class Checkpointer(StepCallback):
    """Saves model and optimizer every `every` steps, events first: the event log is flushed and
    checked on disk (avh_app.eventlog), then the checkpoint is written to a partial file, synced
    and renamed. So a checkpoint on disk always has its events on disk (they may run ahead of it,
    which a resumed run recognises), and a hard kill never leaves a half-written checkpoint where
    --resume looks. At the last step of a fit() it leaves the save to the caller, who evaluates
    first, so that step's logs are complete when they reach the disk. `known` (step -> the
    model's outputs on `probe_batch` at that step, or None) saves the finiteness check's forward
    pass where the summaries have just made it."""

    def __init__(self, model, run_dir, events, every, probe_batch=None, known=None):
        super().__init__()
        self.set_model(model)
        self.run_dir, self.events, self.every = run_dir, events, every
        self.probe_batch, self.known = probe_batch, known
        self.saved_step = None

    def on_step_end(self, step):
        # Not at a fit's last step: the loop saves there itself, after the test set.
        if step % self.every == 0 and not self.at_fit_end:
            self.save(step)

    def save(self, step):
        """Events up to `step` durable, then the checkpoint of `step` (once per step).
        Diverged if the model is no longer finite; runfolder.WriteFailed if a write fails."""
        if step != self.saved_step:
            self._check_finite(step)
        self.events.flush(step)
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

    def _check_finite(self, step):
        finite = all(np.isfinite(w).all() for w in self.model.get_weights())
        what = "weights"
        if finite and self.probe_batch is not None:
            # Finite weights can still overflow: a "good" checkpoint must also compute.
            outputs = None if self.known is None else self.known(step)
            if outputs is None:
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
