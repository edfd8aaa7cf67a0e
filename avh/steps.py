"""Keras callbacks that know the global optimizer step of every batch, counted, not read.

Reading the optimizer's step variable costs ~30 us a read (a host sync on a GPU); it is read
once per epoch here and the batch index does the rest, also under steps_per_execution.
"""
import keras


class StepCallback(keras.callbacks.Callback):
    """Base for callbacks that act on global steps: `global_step(batch)` in on_train_batch_end."""

    def on_train_begin(self, logs=None):
        self._epoch_start = self.read_step()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.read_step()

    def read_step(self):
        """The optimizer's step now (a read of its variable: use at boundaries only)."""
        return int(self.model.optimizer.iterations.numpy())  # int() fails on a MirroredVariable

    def global_step(self, batch):
        """The optimizer step that batch `batch` (Keras' index within the epoch; the last of
        the batches an execution ran) has just completed."""
        return self._epoch_start + batch + 1
