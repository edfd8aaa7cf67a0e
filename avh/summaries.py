"""ActivationSummaries: a Keras callback that logs what the chosen layers of any Keras model output
on a fixed probe batch, and the gradient that arrives at them: histograms, statistics, the
paper's moments and figures.

It reads the model and writes TensorBoard events; it never changes the model or the training.
"""
import contextlib
import dataclasses
import gc
import math
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf

from avh import DEFAULT_EVERY, memory, moments, signal, summary_values
from avh.figure_rules import binned
from avh.probe import (applies_activation, check_probe_batch, choose, error_reason,
                       probe_signature, recording, tag_names)
from avh.steps import StepCallback
from avh.tags import (GRADIENT_STAT_TAG, GRADIENT_STATS, GRADIENT_TAG, HISTOGRAM_TAG, MOMENT_TAG,
                      STAT_TAG, STATS, WEIGHT_TAG)


@dataclasses.dataclass
class Costs:
    """What the summary events cost so far, and where. The first event, which may wait for the
    probe's warm-up, is counted apart."""
    events: int = 0                       # after the first
    training_thread_seconds: float = 0.0  # their wall time on the training thread
    moments_seconds: float = 0.0          # CPU time of their moments' theory and writes, on their thread
    first_event_seconds: float = None

    def add(self, seconds):
        if self.first_event_seconds is None:
            self.first_event_seconds = seconds
        else:
            self.events += 1
            self.training_thread_seconds += seconds

    def per_event_ms(self):
        """{"training_thread": ms, "moments": ms} per event after the first (None before)."""
        if not self.events:
            return None
        return {"training_thread": 1000 * self.training_thread_seconds / self.events,
                "moments": 1000 * self.moments_seconds / self.events}


# The update-to-weight ratio of a kernel larger than this is measured on this many of its values
# (a fixed random sample, the same at every summary step): a callback keeps that many of each
# kernel from one summary step to the next, not a copy of every weight.
UPDATE_SAMPLE = 32_768

# Whether _freeze_heap's gc.freeze() is in force (one process-wide heap, so one flag).
_HEAP_FROZEN = [False]


class ActivationSummaries(StepCallback):
    """Logs, every `every` steps of `model.fit`, each chosen layer's output on `probe_batch`
    (inference mode): a histogram under `activations/<layer>`, its mean, std and non-positive
    fraction under `activation_stats/<layer>/...`, the paper's moments under
    `moments/<layer>/...`, and for `figure_layers` two images under `activation_plots/<layer>/...`
    (drawn on a background thread within a time budget). With the probe's labels, the backward
    signal too: the gradient of the compiled loss with respect to each layer's output under
    `gradients/<layer>` and `gradient_stats/<layer>/...`, and per kernel its gradient's norm and
    the update-to-weight ratio under `weights/<layer>/...` (avh.tags; a kernel of more than
    UPDATE_SAMPLE values: on a fixed random sample of that many, so no copy of it is kept).

    Works with any keras.Model (Sequential, functional, nested, subclassed, custom layers holding
    layers): the probe's forward pass is traced once with the chosen layers' outputs recorded
    (avh.probe).

    Args:
        probe_batch: model input(s) for a fixed batch (the same in every run, so runs compare
            step for step), e.g. the first 128 test images, preprocessed as in training: an
            array, a list or dict of arrays, an (x, y) pair, or a tf.data.Dataset (its first batch).
        log_dir: folder for the event file, created when training starts. Or pass `writer`.
        probe_labels: the probe's labels, for the gradients (or give `probe_batch=(x, y)`).
        writer: a `tf.summary` writer to use instead (its owner decides when it is flushed
            and closes it; this callback enters it for each fit and leaves it at the fit's end).
        every: log every this many optimizer steps; 0 logs nothing and costs nothing.
            Step 0 (before the first step) and the last step are logged as well.
        layers: None for every layer that applies an activation (in call order, nested layers
            included); a list of layer names (or paths, `block_1/dense`); or a predicate
            `layer -> bool`.
        numbered: prefix tags with the layer's 1-based position among the chosen ones
            (`3_conv3`), so TensorBoard sorts them in model order.
        figure_layers: names of chosen layers that also get figures (an activation map of one
            probe example and a histogram against N(0, 1)).
        figure_time_share: at most this fraction of the run's time goes to drawing figures.
        moments: for layers that apply an activation to a Dense or Conv output, also log the
            paper's quantities under `moments/<layer>/...` (avh.moments), and with figures,
            the SELU layers' path through the moment map under `activation_plots/moment_map`.
        gradients: log the backward signal (one more backward pass over the probe at each
            summary step, in inference mode, with the loss the model was compiled with).
        log_on_train_end: log the step `fit` ends at (a loop of several fits that logs its own
            last step turns this off and calls `log(step, final=True)` itself).
        keep_predictions: keep the model's output on the probe batch at the last logged step,
            for `probe_predictions(step)`: the probe's examples scored without another forward
            pass (the probe's forward pass already computes them).
    """

    def __init__(self, probe_batch, log_dir=None, *, probe_labels=None, writer=None,
                 every=DEFAULT_EVERY, layers=None, numbered=False, figure_layers=(),
                 figure_time_share=None, moments=True, gradients=True, log_on_train_end=True,
                 keep_predictions=False):
        super().__init__()
        if (log_dir is None) == (writer is None):
            raise ValueError(f"Pass exactly one of `log_dir` and `writer`. Received: "
                             f"log_dir={log_dir!r}, writer={writer!r}")
        if not isinstance(every, int) or isinstance(every, bool) or every < 0:
            raise ValueError(f"`every` must be a whole number of steps >= 0 (0: off). "
                             f"Received: every={every!r}")
        if not (layers is None or callable(layers) or
                (isinstance(layers, (list, tuple)) and all(isinstance(n, str) for n in layers))):
            raise ValueError(f"`layers` must be None, a list of layer names or a predicate. "
                             f"Received: layers={layers!r}")
        self.probe_batch, self.probe_labels = probe_batch, probe_labels
        self.log_dir, self.writer = log_dir, writer
        self._owns_writer = writer is None
        self.every, self.numbered = every, numbered
        self.layer_choice = layers
        self.figure_layers = tuple(figure_layers)
        self.figure_time_share = figure_time_share
        self.log_on_train_end = log_on_train_end
        self.moments, self.gradients = moments, gradients
        self.keep_predictions = keep_predictions
        self.layers = []            # [(tag name, layer)] of the logged layer calls, set with the model
        self.feeds = {}             # {tag: avh.moments.Feed} of the layers with moments
        self.trajectories = {}      # {tag: [(mean, variance), ...]} of SELU layers, for the map
        self.figures = None         # avh.figures.FigureRenderer, when figure_layers
        self.last_step = None       # the last step logged (a resumed run: the last on disk)
        self.costs = Costs()
        self._probed_model = None          # the model the probe was traced for
        self._probe = None          # its traced pass: probe batch -> what each event logs
        self._in_fit = False        # between on_train_begin and on_train_end
        self._freeze_due = False    # at this fit's first step end (_freeze_heap)
        self._fit_scope = None      # a writer passed in, entered for the current fit
        self._figure_data = {}      # the last logged step's, for a later final=True request
        self._step0_figures = None  # step 0's figure data, until the first step has run
        self._moments_thread = None  # the moments' numpy and scalar writes, off the training thread
        self._moments_pending = []
        self._gradient_reason = None  # why there are no gradients, or None
        self._previous_kernels = {}  # {id(kernel): _KernelSample, its values at the last summary step}
        self._warm_up = None  # the probe's first run (TensorFlow optimising its graph), on a thread
        self._initial_weights = None  # until step 0 is logged, after the first step
        self._predictions = None  # (step, the model's output on the probe), with keep_predictions

    # -- Keras hooks ---------------------------------------------------------------------

    def set_model(self, model):
        super().set_model(model)
        # A subclassed model is built by its first training step; it is probed at step 0, then.
        if self.every and self._probed_model is not model and model.built:
            self._prepare(model)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if not self.every:
            return
        self._unfreeze_heap()  # left frozen by a fit that never ended: no fit of ours is running
        self._in_fit = True
        self._freeze_due = True
        if not self._owns_writer:  # the owner's writer is the default for the whole fit
            self._fit_scope = self.writer.as_default()
            self._fit_scope.__enter__()
        if self._epoch_start == 0 and self.last_step is None:
            # The initial state, what the initialisation does alone, is logged once the first
            # step has run, with the initial weights put back for it: its first event (the
            # probe's graph, ~1-2 s for a small CNN) and its figures (~1 s) then do not hold up
            # Keras building the training graph, and the first step comes as soon as without
            # summaries. A model Keras has not built yet is built here (see _prepare).
            if self._probed_model is None:
                self._prepare(self.model)
            self._initial_weights = _SavedWeights(self.model.weights)

    def on_step_end(self, step):
        if self._freeze_due:
            self._freeze_heap()
        self._log_initial_state()
        self._submit_step0_figures()
        # Under steps_per_execution N that does not divide `every`: the first execution end
        # after each multiple, logged under its own step.
        if self.crossed(step, self.previous_step, self.every):
            self.log(step)

    def on_train_end(self, logs=None):
        if not self.every:
            return
        self._log_initial_state()  # a fit of no step
        self._submit_step0_figures()
        if self.log_on_train_end:
            self.log(self.read_step(), final=True)
            if self.figures is not None:
                self.figures.wait()  # the last step's figures belong to this fit
        self._leave_fit()

    # -- The work --------------------------------------------------------------------------

    def log(self, step, final=False, figures=True):
        """Log the probe summaries of `step` (once per step) and hand its figures to the drawing
        thread; `final` draws them now, whatever the time budget (the first and last steps);
        `figures=False` leaves them to the caller (in self._figure_data)."""
        if not self.every:
            return
        if self._probed_model is None:
            self._prepare(self.model)
        if self.last_step is not None and step < self.last_step:
            return  # logged before: a resumed run redoing steps whose summaries are on disk
        with self._writing():
            if step != self.last_step:
                started = time.perf_counter()
                self.last_step = step
                first = self.costs.first_event_seconds is None
                self._log_summaries(step, first)
                memory.release_freed()  # the probe's buffers, before training's next ones
                self.costs.add(time.perf_counter() - started)
            if self.figures is not None and figures:
                self.figures.submit(step, self._figure_data, wait=final)

    def _log_summaries(self, step, first):
        if self._warm_up is not None:
            self._warm_up.join()  # the probe's first run, on a thread since the model was set
            self._warm_up = None
        args = [self.probe_batch] if self._gradient_reason else [self.probe_batch, self.probe_labels]
        result = tf.nest.map_structure(np.asarray, self._probe(*args))
        if "predictions" in result:
            self._predictions = (step, result["predictions"])
        records, layer_moments = [], {}
        self._figure_data = {}
        for tag, entry in result["layers"].items():
            records.append(summary_values.histogram(HISTOGRAM_TAG.format(layer=tag),
                                                    signal.histogram_buckets(entry["histogram"])))
            records += [summary_values.scalar(STAT_TAG.format(layer=tag, stat=stat), entry["stats"][stat])
                        for stat in STATS]
            if "figure" in entry:
                self._figure_data[tag] = entry["figure"]
            if "moments" in entry:
                layer_moments[tag] = entry["moments"]
            if tag in self.trajectories:
                self.trajectories[tag].append((float(entry["stats"]["mean"]),
                                               float(entry["stats"]["std"]) ** 2))
        if "gradients" in result:
            records += self._gradient_records(result["gradients"], first)
        summary_values.write(step, records)
        if layer_moments:
            # The theory in numpy and its ~40 scalars: a quarter of an event's time on the
            # training thread if done here.
            self._moments_pending = [f for f in self._moments_pending if not f.done()]
            if self._moments_thread is None:
                self._moments_thread = ThreadPoolExecutor(1, thread_name_prefix="avh-moments")
            self._moments_pending.append(self._moments_thread.submit(
                self._log_moments, self._current_writer(), step, layer_moments, not first))
        if self.trajectories and self.figures is not None:
            self._figure_data[moments.MOMENT_MAP_KEY] = {tag: list(points)
                                                         for tag, points in self.trajectories.items()}

    @staticmethod
    def _gradient_records(gradients, first):
        records = []
        for tag, entry in gradients["layers"].items():
            records.append(summary_values.histogram(GRADIENT_TAG.format(layer=tag),
                                                    signal.histogram_buckets(entry["histogram"])))
            records += [summary_values.scalar(GRADIENT_STAT_TAG.format(layer=tag, stat=stat),
                                              entry["stats"][stat]) for stat in GRADIENT_STATS]
        for tag, entry in gradients["kernels"].items():
            records.append(summary_values.scalar(WEIGHT_TAG.format(layer=tag, stat="gradient_norm"),
                                                 entry["gradient_norm"]))
            if not first:  # the ratio needs a previous summary step of this process
                records.append(summary_values.scalar(WEIGHT_TAG.format(layer=tag, stat="update_ratio"),
                                                     entry["update_ratio"]))
        return records

    def _log_moments(self, writer, step, units, counted):
        started = time.thread_time()
        writer.set_as_default()  # for this thread, which only ever writes here; no flush
        summary_values.write(step, [
            summary_values.scalar(MOMENT_TAG.format(layer=tag, stat=stat), value)
            for tag, unit in units.items()
            for stat, value in moments.layer_statistics(unit, self.feeds[tag]).items()])
        if counted:
            self.costs.moments_seconds += time.thread_time() - started

    def probe_predictions(self, step):
        """The model's output on the probe batch (numpy, as the model returns it) computed by
        this process's event at `step`, or None: not kept (`keep_predictions`), or no event at
        `step` since (a step logged before a resume, another step)."""
        if self._predictions is None or self._predictions[0] != step:
            return None
        return self._predictions[1]

    @property
    def logs_gradients(self):
        """Whether the backward signal is logged (known once the model is set)."""
        return self._probed_model is not None and not self._gradient_reason

    def writing(self):
        """Whether the moments of a logged step are still being written on their thread."""
        return any(not future.done() for future in self._moments_pending)

    def wait_for_moments(self):
        """Block until every logged step's moments are written (raising what went wrong)."""
        pending, self._moments_pending = self._moments_pending, []
        for future in pending:
            future.result()

    def close(self):
        """Wait for the moments and figures still being written, leave the writer (which flushes
        it) and close it if this callback created it."""
        if self._warm_up is not None:
            self._warm_up.join()
            self._warm_up = None
        self._submit_step0_figures()
        self.wait_for_moments()
        if self.figures is not None:
            self.figures.close()
        if self._moments_thread is not None:
            self._moments_thread.shutdown(wait=True)
            self._moments_thread = None
        self._leave_fit()
        if self._owns_writer and self.writer is not None:
            self.writer.close()
            self.writer = None

    # -- The writer: one passed in is entered for each fit (its owner decides its flushes); this
    # callback's own is entered around each event only, so that callbacks with writers of their
    # own can be used together (tf.summary's writer scopes must end in the reverse order they began,
    # which Keras' callback order is not), and an event's records reach the file when it is done.

    def _current_writer(self):
        if self.writer is None:  # ours, created when first needed: every=0 creates no folder
            self.writer = tf.summary.create_file_writer(str(self.log_dir))
        return self.writer

    @contextlib.contextmanager
    def _writing(self):
        if self._fit_scope is not None:
            yield
            return
        with self._current_writer().as_default():  # leaving flushes
            yield
            if not self._in_fit:
                self.wait_for_moments()  # outside a fit a log() is on disk when it returns

    def _freeze_heap(self):
        """Once a fit's first step has run, move every object Python's garbage collector tracks
        (TensorFlow, Keras, the model and its traced step) to its permanent generation until the
        fit ends (gc.freeze), so that a full collection scans only what was made since. Building
        the figures makes enough long-lived objects to set one off, and a full collection of a
        training process (~460,000 objects for the app's) holds the GIL for ~0.25 s: every
        thread, training's too, stood still. Left alone when objects are frozen already (their
        gc.unfreeze is not ours to call). Once a fit: gc.get_freeze_count() walks every frozen
        object."""
        self._freeze_due = False
        if self._in_fit and gc.get_freeze_count() == 0:
            gc.freeze()
            _HEAP_FROZEN[0] = True

    @staticmethod
    def _unfreeze_heap():
        """Undo _freeze_heap's gc.freeze: at the fit's end, or at the next fit's start after a fit
        that never ended (an exception, Ctrl-C in a notebook)."""
        if _HEAP_FROZEN[0]:
            gc.unfreeze()
            _HEAP_FROZEN[0] = False

    def _leave_fit(self):
        if not self._in_fit:
            return
        self._in_fit = False
        self._unfreeze_heap()  # collectable again, as before the fit
        self.wait_for_moments()  # the writer's flush or close below takes them along
        if self._fit_scope is not None:
            scope, self._fit_scope = self._fit_scope, None
            scope.__exit__(None, None, None)
        elif self.writer is not None:
            if self.figures is not None:
                self.figures.wait()  # before the writer they write to is closed
            self.writer.close()  # as Keras' TensorBoard callback does; a new fit makes a new one
            self.writer = None

    def _log_initial_state(self):
        """Step 0's summaries, from the weights saved at the start of training (and its figures
        later, on the drawing thread); the current weights are put back at once."""
        if self._initial_weights is None:
            return
        initial, self._initial_weights = self._initial_weights, None
        trained = _SavedWeights(self.model.weights)  # the weights after the first step
        try:
            initial.restore()
            self.log(0, figures=False)
        finally:
            trained.restore()
            trained.close()
            initial.close()
        self._step0_figures = self._figure_data

    def _submit_step0_figures(self):
        if self._step0_figures is not None and self.figures is not None:
            self.figures.submit(0, self._step0_figures, wait=True)
        self._step0_figures = None

    # -- The probe: traced once for the model --------------------------------------------------

    def _prepare(self, model):
        self.probe_batch, labels = check_probe_batch(model, self.probe_batch)
        if not model.built:
            # Keras builds a subclassed model in its first training step; step 0 comes before.
            # Calling it on data is how Keras says to build it: the same weights, a step earlier.
            model(self.probe_batch, training=False)
        if self.probe_labels is None and labels is not None:
            self.probe_labels = labels
        self._probed_model = model
        self._gradient_reason = self._gradients_unavailable(model)
        if self._gradient_reason and self.gradients:
            print(f"avh: no gradients for model '{model.name}': {self._gradient_reason}",
                  file=sys.stderr)
        signature = [probe_signature(self.probe_batch)]
        if not self._gradient_reason:
            self.probe_labels = tf.convert_to_tensor(self.probe_labels)
            signature.append(probe_signature(self.probe_labels))
            # Each kernel (or its sample) as it was at the previous summary step, for the
            # update-to-weight ratio: made here, since variables made while tracing would make
            # it trace twice.
            kernels = [w for w in model.trainable_weights if w.name == "kernel"]
            self._previous_kernels = {id(w): _KernelSample(w, seed) for seed, w in enumerate(kernels)}
        self._probe = tf.function(self._trace_probe, autograph=False).get_concrete_function(
            *signature)
        # Its first run optimises the graph (~0.5 s for the app's CNN): on a thread now, while
        # Keras builds its training step, not in the first event. It reads the weights and
        # writes only this callback's own variables, which the first event sets again.
        args = [self.probe_batch] if self._gradient_reason else [self.probe_batch, self.probe_labels]
        self._warm_up = threading.Thread(target=self._probe, args=args, name="avh-warm-up",
                                         daemon=True)
        self._warm_up.start()
        if self.figure_layers and self.figures is None:
            from avh.figures import FigureRenderer  # matplotlib: only when figures are asked for

            share = {} if self.figure_time_share is None else {"time_share": self.figure_time_share}
            self.figures = FigureRenderer(self._current_writer, **share)

    def _gradients_unavailable(self, model):
        """Why the probe cannot give gradients (None when it can)."""
        if not self.gradients:
            return "turned off (gradients=False)"
        if self.probe_labels is None:
            return "the probe has no labels: pass probe_labels=..., or probe_batch=(x, y)"
        if not getattr(model, "compiled", False) or getattr(model, "loss", None) is None:
            return "the model is not compiled with a loss"
        return None

    def _trace_probe(self, probe_batch, labels=None):
        """The probe's forward pass (traced once, recording the layers' calls) and, with labels,
        its backward pass for the compiled loss: per chosen layer, its histogram and statistics,
        figure inputs, what its moments need, and its gradient; per kernel, its gradient."""
        model = self._probed_model
        with tf.GradientTape() as tape:
            try:
                with recording(model) as calls:
                    predictions = model(probe_batch, training=False)
            except (ValueError, TypeError, tf.errors.InvalidArgumentError) as err:
                shapes = tf.nest.map_structure(lambda t: tuple(t.shape), probe_batch)
                raise ValueError(f"model '{model.name}' cannot be called on probe_batch (shapes "
                                 f"{shapes}): {error_reason(err)}") from None
            if labels is not None:
                loss = model.compute_loss(x=probe_batch, y=labels, y_pred=predictions,
                                          training=False)
                # Scaled as training scales it (mixed_float16's loss scale), undone below.
                scaled = model.optimizer.scale_loss(loss) if model.optimizer else loss
        chosen = choose(calls, self.layer_choice, model.name)
        tags = tag_names(chosen, self.numbered)
        self.layers = [(tag, call.layer) for tag, call in zip(tags, chosen)]
        self._choose_figure_layers(chosen, tags)
        feeds = self._find_feeds(calls, chosen, tags)
        outputs = [c.output[0] if isinstance(c.output, (list, tuple)) else c.output for c in chosen]
        summaries = {}
        for tag, output in zip(tags, outputs):
            values = tf.reshape(tf.cast(output, tf.float32), [-1])  # logs stay float32
            stats = signal.layer_stats(values)
            entry = {"histogram": signal.histogram_parts(values), "stats": stats}
            if tag in self.figure_layers:
                # Binned on the fixed axes every run shares (avh.figure_rules).
                entry["figure"] = {"first_example": tf.cast(output[0], tf.float32),
                                   "counts": binned(values), "mean": stats["mean"],
                                   "std": stats["std"]}
            if tag in self.feeds:
                entry["moments"] = moments.unit_moments(self.feeds[tag])
            summaries[tag] = entry
        result = {"layers": summaries}
        if self.keep_predictions:
            result["predictions"] = predictions
        if labels is not None:
            result["gradients"] = self._backward(tape, loss, scaled, tags, outputs,
                                                 self._kernels(calls, chosen, tags, feeds))
        return result

    def _kernels(self, calls, chosen, tags, feeds):
        """{tag: kernel variable} of every layer with a kernel in the pass: a kernel takes the
        tag of the logged layer it feeds or is, else its layer's path."""
        named = {id(call.layer): tag for tag, call in zip(tags, chosen)}
        named.update({id(feed.kernel_layer): tag for tag, feed in feeds.items()})
        kernels, seen = {}, set()
        for call in calls:
            kernel = getattr(call.layer, "kernel", None)
            if id(call.layer) in seen or id(kernel) not in self._previous_kernels:
                continue  # not a trainable kernel variable of the model
            seen.add(id(call.layer))
            tag = named.get(id(call.layer), call.qualified_name)
            kernels[tag if tag not in kernels else call.qualified_name] = kernel
        return kernels

    def _backward(self, tape, loss, scaled, tags, outputs, kernels):
        """The gradient of the loss with respect to each chosen layer's output (a histogram and
        its stats), and each kernel's gradient norm and update-to-weight ratio since the previous
        summary step (kept in variables of this callback, so a step touches nothing else)."""
        unscale = tf.where(loss != 0, scaled / loss, 1.0)
        gradients = tape.gradient(scaled, outputs + list(kernels.values()),
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
        result = {"layers": {}, "kernels": {}}
        for tag, gradient in zip(tags, gradients[:len(tags)]):
            values = tf.reshape(tf.cast(gradient, tf.float32), [-1]) / unscale
            result["layers"][tag] = {"histogram": signal.histogram_parts(values),
                                     "stats": signal.gradient_stats(values)}
        for (tag, kernel), gradient in zip(kernels.items(), gradients[len(tags):]):
            sample = self._previous_kernels[id(kernel)]
            weights, previous = sample.values(kernel), sample.previous
            result["kernels"][tag] = {
                "gradient_norm": tf.norm(tf.cast(gradient, tf.float32) / unscale),
                "update_ratio": tf.math.divide_no_nan(tf.norm(weights - previous), tf.norm(previous))}
            with tf.control_dependencies([result["kernels"][tag]["update_ratio"]]):
                previous.assign(weights)
        return result

    def _choose_figure_layers(self, chosen, tags):
        by_name = {}
        for tag, call in zip(tags, chosen):
            for name in (call.layer.name, call.qualified_name, tag):
                by_name.setdefault(name, tag)
        unknown = [n for n in self.figure_layers if n not in by_name]
        if unknown:
            raise ValueError(f"figure_layers {unknown} are not among the logged layers "
                             f"({', '.join(tags)})")
        self.figure_layers = tuple(by_name[n] for n in self.figure_layers)

    def _find_feeds(self, calls, chosen, tags):
        """{tag: Feed} of the chosen layers a kernel feeds; those that get moments (`self.feeds`)
        with `moments`, and one line naming the layers that apply an activation but get none."""
        feeds, missing = {}, {}
        for tag, call in zip(tags, chosen):
            feed, why = moments.find_feed(call, calls)
            if feed is not None:
                feeds[tag] = feed
            elif applies_activation(call.layer):
                missing.setdefault(why, []).append(tag)
        if not self.moments:
            return feeds
        self.feeds = feeds
        for tag, feed in feeds.items():
            if feed.activation == "selu":
                self.trajectories.setdefault(tag, [])
        if missing:
            def some(names):
                return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
            reasons = "; ".join(f"{some(names)}: {why}" for why, names in missing.items())
            count = sum(len(names) for names in missing.values())
            print(f"avh: no moments for {count} of {len(chosen)} logged layers ({reasons})",
                  file=sys.stderr)
        return feeds


class _KernelSample:
    """What the update-to-weight ratio ||W - W_prev|| / ||W_prev|| keeps of a kernel between
    summary steps: all of its values (float32) when it has at most UPDATE_SAMPLE, else
    UPDATE_SAMPLE of them drawn at random with replacement, the same draw at every step (a
    stateless draw from `seed`: nothing stored but the values). The sampled ratio estimates the
    whole kernel's: both norms are over the same values."""

    def __init__(self, kernel, seed):
        self.size = kernel.shape.num_elements()
        self.sampled = self.size > UPDATE_SAMPLE
        self.seed = seed
        self.previous = tf.Variable(tf.zeros([min(self.size, UPDATE_SAMPLE)], tf.float32),
                                    trainable=False)

    def values(self, kernel):
        """The kernel's kept values now (in a traced graph)."""
        flat = tf.reshape(tf.cast(kernel, tf.float32), [-1])
        if not self.sampled:
            return flat
        at = tf.random.stateless_uniform([UPDATE_SAMPLE], seed=[self.seed, 0], minval=0,
                                         maxval=self.size, dtype=tf.int64)
        return tf.gather(flat, at)


class _SavedWeights:
    """The variables' values now, to put back later (`restore`): the initial weights until step 0
    is logged after the first step, and the current ones while it is.

    They wait in an anonymous temporary file (gone when closed, or when the process ends), not in
    the process's memory: held there during the first step, ResNet50V2's 94 MB were most of the
    callback's peak memory above a plain fit. Written and read back a variable at a time, so no
    second copy of all the weights is ever in memory. The file is in tempfile's directory
    ($TMPDIR; where /tmp is in memory, tmpfs, point it at a disk). If it cannot be written (a full
    disk), the values are kept in memory instead.
    """

    def __init__(self, variables):
        self._variables = list(variables)
        self._file, self._kept, self._layout = None, None, []  # layout: (dtype, shape) each
        try:
            self._file = tempfile.TemporaryFile(prefix="avh-weights-")
            for variable in self._variables:
                value = variable.numpy()
                self._layout.append((value.dtype, value.shape))
                value.tofile(self._file)
        except OSError:
            if self._file is not None:
                self._file.close()
            self._file, self._kept = None, [variable.numpy() for variable in self._variables]

    def restore(self):
        """Put the saved values back into the variables (reads only: the file can be read again)."""
        if self._file is not None:
            self._file.seek(0)
        for i, variable in enumerate(self._variables):
            if self._file is None:
                variable.assign(self._kept[i])
                continue
            dtype, shape = self._layout[i]
            variable.assign(np.fromfile(self._file, dtype, math.prod(shape)).reshape(shape))

    def close(self):
        if self._file is not None:
            self._file.close()
        self._file, self._kept = None, None


__all__ = ["ActivationSummaries"]
