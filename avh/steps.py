"""Keras callbacks that act on global optimizer steps, counted, not read, with no host sync per step.

Keras converts every step's logs to floats on the training thread (a device-to-host copy that stops
it queueing the next step on a GPU) whenever a callback overrides on_train_batch_end without
`async_safe`. A StepCallback never does: it learns that a step ended from the next
on_train_batch_begin (which carries no logs) or, for a fit's last step, from on_epoch_end, and
reads what it needs (metrics, weights) only at the steps where it acts.
"""
import keras


class StepCallback(keras.callbacks.Callback):
    """Base for callbacks that act on global steps: override `on_step_end(step)`.

    It runs on the training thread after step `step` and before the next one starts, so the
    weights it sees are exactly those of `step`. Under steps_per_execution N it runs once per
    execution, after its last step (the others are never seen: Keras runs N steps per call).
    """

    def on_train_begin(self, logs=None):
        self._epoch_start = self._last_step = self.read_step()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._last_step = self.read_step()

    def on_train_batch_begin(self, batch, logs=None):
        if batch:  # this fit's first `batch` steps have run
            self._step_ended(self._epoch_start + batch)

    def on_epoch_end(self, epoch, logs=None):
        self._step_ended(self.read_step(), fit_end=True)

    def _step_ended(self, step, fit_end=False):
        self.at_fit_end = fit_end
        if step != self._last_step:
            self.previous_step, self._last_step = self._last_step, step
            self.on_step_end(step)

    def on_step_end(self, step):
        """Optimizer step `step` has ended (`self.previous_step`: the one seen before it;
        `self.at_fit_end`: it is the fit's last)."""

    def read_step(self):
        """The optimizer's step now (a read of its variable: use at boundaries only)."""
        return int(self.model.optimizer.iterations.numpy())  # int() fails on a MirroredVariable

    @staticmethod
    def crossed(step, previous, every):
        """Whether a multiple of `every` lies in (previous, step]: the step itself when every
        execution ends on a multiple (steps_per_execution divides `every`)."""
        return bool(every) and step // every > previous // every


class StepCallbackList(keras.callbacks.CallbackList):
    """The CallbackList that model.fit would build (with History), minus the per-step work when
    no callback has a batch-end hook: on the TensorFlow backend Keras never dispatches batch ends
    asynchronously (its IS_THREAD_SAFE is False), so it would convert every step's logs to
    floats on the training thread, a host sync per step, even for a plain fit. StepCallbacks
    need none of it. Pass it as model.fit(callbacks=...)."""

    def __init__(self, callbacks, model, **params):
        super().__init__(callbacks, add_history=True, model=model, **params)
        self._batch_end_hooks = any(overrides_batch_end(c) for c in self.callbacks)

    def on_train_batch_end(self, batch, logs=None):
        if self._batch_end_hooks:
            super().on_train_batch_end(batch, logs)


def overrides_batch_end(callback):
    """Whether `callback` has a batch-end hook of its own (not keras.callbacks.Callback's no-op)."""
    base = keras.callbacks.Callback
    return any(getattr(type(callback), hook) is not getattr(base, hook)
               for hook in ("on_batch_end", "on_train_batch_end"))
