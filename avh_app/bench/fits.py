"""The benchmark's plain fits (scripts/bench_fit.py, scripts/bench_paired.py): the network (the
app's CNN or a keras.applications one), the layers every kind of logging logs, and each kind's
callback."""
import dataclasses
import time

import keras

from avh import DEFAULT_EVERY
from avh.probe import applies_activation
from avh.summaries import ActivationSummaries
from avh_app.bench import peers
from avh_app.run import Network, cnn

EVERY = DEFAULT_EVERY  # the peers' cadence

FIGURE_LAYERS = 2  # the figures the callback draws: as many as the app draws


def network(name, cfg):
    """The app's CNN (its six numbered layers, the app's figure layers), or a keras.applications
    network at the data's image size, weights=None, logits out."""
    if name == "cnn":
        return cnn(cfg)

    def build(data, cfg, resolved):
        return getattr(keras.applications, name)(input_shape=data.image_shape, weights=None,
                                                 classes=data.num_classes,
                                                 classifier_activation=None)
    return Network(build)


def logged_layers(run, model):
    """(names of the layers logged, names of those drawn): the app's for its CNN; for other
    networks every layer that applies an activation, two of them drawn (a third and two thirds
    of the way)."""
    if run.network.layers is not None:
        return list(run.network.layers), list(run.network.figure_layers)
    names = [layer.name for layer in model.layers if applies_activation(layer)]
    return names, [names[len(names) * k // (FIGURE_LAYERS + 1)] for k in range(1, FIGURE_LAYERS + 1)]


def logging_callback(kind, run, model, logdir, every=EVERY, figure_time_share=None):
    """The callback of a kind of logging ("callback", "callback-gradients", "keras-tensorboard",
    "handwritten") on the same probe batch and layers, writing to `logdir`; None for "plain".
    `figure_time_share`: ActivationSummaries' (None: its default)."""
    names, drawn = logged_layers(run, model)
    if kind in ("callback", "callback-gradients"):  # with the probe's labels: the backward signal
        labels = run.probe_labels if kind == "callback-gradients" else None
        return ActivationSummaries(run.probe_batch, log_dir=logdir, probe_labels=labels,
                                   every=every, layers=names, numbered=run.network.numbered,
                                   figure_layers=drawn, figure_time_share=figure_time_share)
    if kind == "keras-tensorboard":
        return peers.keras_tensorboard(logdir)
    if kind == "handwritten":
        return peers.HandwrittenHistograms(run.probe_batch, names, logdir, every)
    return None


@dataclasses.dataclass
class Block:
    kind: str
    round: int
    wall: float  # seconds from the epoch's start to the end of all it started
    cpu: float   # CPU seconds of the whole process (user + system, every thread) meanwhile


class Turns(keras.callbacks.Callback):
    """Hands each epoch of a fit to one kind's callbacks ({kind: [callbacks]}, `schedule`:
    [(kind, round)] per epoch) and times it. Every callback sees the fit begin and end; during
    an epoch only its kind's callbacks see the epoch and its batches, so to each the others'
    epochs are as if skipped (the optimizer's step still counts them). An epoch ends once its
    kind's background work is done (ActivationSummaries' moments and figures)."""

    def __init__(self, kinds, schedule):
        super().__init__()
        self.kinds, self.schedule = kinds, schedule
        self.blocks = []
        self._active, self._started = [], None

    def _every(self):
        return [c for callbacks in self.kinds.values() for c in callbacks]

    def set_model(self, model):
        super().set_model(model)
        for c in self._every():
            c.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        for c in self._every():
            c.set_params(params)

    def on_train_begin(self, logs=None):
        for c in self._every():
            c.on_train_begin(logs)

    def on_train_end(self, logs=None):
        for c in self._every():
            c.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._active = self.kinds[self.schedule[epoch][0]]
        self._started = (time.perf_counter(), time.process_time())
        for c in self._active:
            c.on_epoch_begin(epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        for c in self._active:
            c.on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        for c in self._active:
            c.on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        for c in self._active:
            c.on_epoch_end(epoch, logs)
            if isinstance(c, ActivationSummaries):  # all its event's work, on its threads too
                c.wait_for_moments()
                if c.figures is not None:
                    c.figures.wait()
        wall, cpu = time.perf_counter() - self._started[0], time.process_time() - self._started[1]
        self.blocks.append(Block(*self.schedule[epoch], wall, cpu))
