"""ActivationSummaries: a Keras callback that logs what chosen layers of any functional or
Sequential model output on a fixed probe batch: histograms, statistics and figures.

It reads the model and writes TensorBoard events; it never changes the model or the training.
"""
import difflib
from concurrent.futures import ThreadPoolExecutor

import keras
import tensorflow as tf
from tensorboard.plugins.histogram import metadata as histogram_metadata

from avh import moments
from avh.figure_rules import binned
from avh.steps import StepCallback
from avh.tags import HISTOGRAM_TAG, MOMENT_TAG, STAT_TAG, STATS

HISTOGRAM_BUCKETS = 80  # TensorBoard reads any count; 30 (its default) looks blocky in reports
DEFAULT_EVERY = 100
_HISTOGRAM_METADATA = histogram_metadata.create_summary_metadata(display_name=None, description=None)
# Layers that exist to apply an activation; other layers count when their `activation` is not
# linear (Dense(..., activation="relu")).
_ACTIVATION_LAYERS = (keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU,
                      keras.layers.ELU, keras.layers.PReLU, keras.layers.Softmax)


class ActivationSummaries(StepCallback):
    """Logs, every `every` steps of `model.fit`, each chosen layer's output on `probe_batch`
    (inference mode): a histogram under `activations/<layer>`, its mean, std and non-positive
    fraction under `activation_stats/<layer>/...`, and for `figure_layers` two images
    under `activation_plots/<layer>/...` (drawn on a background thread within a time budget).

    Args:
        probe_batch: model input(s) for a fixed batch (the same in every run, so runs compare
            step for step), e.g. the first 128 test images, preprocessed as in training.
        log_dir: folder for the event file, created when training starts. Or pass `writer`.
        writer: a `tf.summary` writer to use instead (it is not flushed or closed here).
        every: log every this many optimizer steps; 0 logs nothing and costs nothing.
            Step 0 (before the first step) and the last step are logged as well.
        layers: None for every layer that applies an activation (in model order, nested
            models included); a list of layer names; or a predicate `layer -> bool`.
        numbered: prefix tags with the layer's 1-based position among the chosen ones
            (`3_conv3`), so TensorBoard sorts them in model order.
        figure_layers: names of chosen layers that also get figures (an activation map of one
            probe example and a histogram against N(0, 1)).
        figure_time_share: at most this fraction of the run's time goes to drawing figures.
        moments: for layers that apply an activation to a Dense or Conv output, also log the
            paper's quantities under `moments/<layer>/...` (avh.moments), and with figures,
            the SELU layers' path through the moment map under `activation_plots/moment_map`.
        log_on_train_end: log the step `fit` ends at (a loop of several fits that logs its own
            last step turns this off and calls `log(step, final=True)` itself).
    """

    def __init__(self, probe_batch, log_dir=None, *, writer=None, every=DEFAULT_EVERY,
                 layers=None, numbered=False, figure_layers=(), figure_time_share=None,
                 moments=True, log_on_train_end=True):
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
        self.probe_batch = probe_batch
        self.log_dir, self.writer = log_dir, writer
        self._owns_writer = writer is None
        self.every, self.numbered = every, numbered
        self.layer_choice = layers
        self.figure_layers = tuple(figure_layers)
        self.figure_time_share = figure_time_share
        self.log_on_train_end = log_on_train_end
        self.moments = moments
        self.feeds = {}             # {tag: avh.moments.Feed} of the layers with moments
        self.trajectories = {}      # {tag: [(mean, variance), ...]} of SELU layers, for the map
        self.layers = []            # [(tag name, layer)], set with the model
        self.figures = None         # FigureRenderer, when figure_layers
        self.last_step = None       # the last step logged (a resumed run: the last on disk)
        self._figure_data = {}      # the last logged step's, for a later final=True request
        self._step0_figures = None  # step 0's figure data, until the first step has run
        self._probe_model = None
        self._summarise = None
        self._moments_thread = None  # the moments' numpy and scalar writes, off the training thread
        self._moments_pending = []

    # -- Keras hooks ---------------------------------------------------------------------

    def set_model(self, model):
        super().set_model(model)
        if self.every and self._probe_model is None:
            self._prepare(model)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.every and self._epoch_start == 0 and self.last_step is None:
            # The initial state: what the initialisation does alone. Its figures (the first
            # event builds them: ~1 s of CPU) are drawn once the first step has run, so that
            # matplotlib does not compete with Keras building the training graph.
            self.log(0, figures=False)
            self._step0_figures = self._figure_data

    def on_step_end(self, step):
        self._submit_step0_figures()
        # Under steps_per_execution N that does not divide `every`: the first execution end
        # after each multiple, logged under its own step.
        if self.crossed(step, self.previous_step, self.every):
            self.log(step)

    def _submit_step0_figures(self):
        if self._step0_figures is not None and self.figures is not None:
            self.figures.submit(0, self._step0_figures, wait=True)
        self._step0_figures = None

    def on_train_end(self, logs=None):
        self._submit_step0_figures()
        if self.every and self.log_on_train_end:
            self.log(self.read_step(), final=True)
            if self.figures is not None:
                self.figures.wait()  # the last step's figures belong to this fit
        self.wait_for_moments()
        if self._owns_writer and self.writer is not None:
            self.writer.flush()

    # -- The work --------------------------------------------------------------------------

    def log(self, step, final=False, figures=True):
        """Log the probe summaries of `step` (once per step) and hand its figures to the drawing
        thread; `final` draws them now, whatever the time budget (the first and last steps);
        `figures=False` leaves them to the caller (in self._figure_data)."""
        if not self.every:
            return
        if self._probe_model is None:
            self._prepare(self.model)
        if self.last_step is not None and step < self.last_step:
            return  # logged before: a resumed run redoing steps whose summaries are on disk
        if self.writer is None:
            self.writer = tf.summary.create_file_writer(str(self.log_dir))
        if step != self.last_step:
            self.last_step = step
            # Not `with writer.as_default()`: leaving it flushes, and a caller may flush the
            # writer only together with its checkpoints.
            self.writer.set_as_default()
            figure_data, layer_moments, means_stds = self._summarise(
                self.probe_batch, tf.constant(step, tf.int64))
            self._figure_data = {name: {key: value.numpy() for key, value in data.items()}
                                 for name, data in zip(self.figure_layers, figure_data)}
            if layer_moments:
                # ~40 eager scalar writes and the theory in numpy: a quarter of an event's time
                # on the training thread if done here.
                units = {tag: {k: v.numpy() for k, v in unit.items()}
                         for tag, unit in layer_moments.items()}
                self._moments_pending = [f for f in self._moments_pending if not f.done()]
                self._moments_pending.append(
                    self._moments_thread.submit(self._log_moments, step, units))
            for tag, (mean, std) in means_stds.items():
                self.trajectories[tag].append((float(mean), float(std) ** 2))
            if self.trajectories and self.figures is not None:
                self._figure_data[moments.MOMENT_MAP_KEY] = {tag: list(points)
                                                 for tag, points in self.trajectories.items()}
        if self.figures is not None and figures:
            self.figures.submit(step, self._figure_data, wait=final)

    def _log_moments(self, step, units):
        self.writer.set_as_default()  # for this thread; no flush (see log)
        for tag, unit in units.items():
            for stat, value in moments.layer_statistics(unit, self.feeds[tag]).items():
                tf.summary.scalar(MOMENT_TAG.format(layer=tag, stat=stat), value, step=step)

    def wait_for_moments(self):
        """Block until every logged step's moments are written (raising what went wrong)."""
        pending, self._moments_pending = self._moments_pending, []
        for future in pending:
            future.result()

    def close(self):
        """Wait for moments and figures still being written (and flush the writer if it is ours)."""
        self._submit_step0_figures()
        self.wait_for_moments()
        if self.figures is not None:
            self.figures.close()
        if self._owns_writer and self.writer is not None:
            self.writer.flush()

    def _prepare(self, model):
        chosen = choose_layers(model, self.layer_choice)
        self.layers = tag_names(chosen, self.numbered)
        names = {layer.name for _, layer in chosen} | {tag for tag, _ in self.layers}
        unknown = [n for n in self.figure_layers if n not in names]
        if unknown:
            raise ValueError(f"figure_layers {unknown} are not among the logged layers "
                             f"({', '.join(layer.name for _, layer in chosen)})")
        by_name = {layer.name: tag for tag, layer in self.layers}  # figures go by tag name
        self.figure_layers = tuple(by_name.get(n, n) for n in self.figure_layers)
        self.probe_batch = check_probe_batch(model, self.probe_batch)
        targets = [(path, layer, "output") for path, layer in chosen]
        if self.moments:
            for (tag, layer), (path, _) in zip(self.layers, chosen):
                feed = moments.find_feed(layer)
                if feed is None:
                    continue
                self.feeds[tag] = feed
                targets += [(path, feed.kernel_layer, "input"), (path, feed.kernel_layer, "output"),
                            (path, layer, "input")]
                if feed.activation == "selu":
                    self.trajectories[tag] = []
        if self.feeds:
            self._moments_thread = ThreadPoolExecutor(1, thread_name_prefix="avh-moments")
        self._probe_model = probe_model(model, targets)
        self._summarise = tf.function(self._summarise_probe)
        if self.figure_layers:
            from avh.figures import FigureRenderer  # matplotlib: only when figures are asked for

            share = {} if self.figure_time_share is None else {"time_share": self.figure_time_share}
            self.figures = FigureRenderer(lambda: self.writer, **share)

    def _summarise_probe(self, probe_batch, step):
        """Histograms and statistics of every chosen layer; returns the small inputs of the
        figures, binned here so that the drawing thread never touches the full activations."""
        outputs = self._probe_model(probe_batch, training=False)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        extra = iter(outputs[len(self.layers):])
        layer_moments = {tag: moments.unit_moments(feed.kernel_layer.kernel, next(extra),
                                                   next(extra), next(extra))
                         for tag, feed in self.feeds.items()}
        figure_data, means_stds = {}, {}
        for (tag, _), out in zip(self.layers, outputs):
            values = tf.reshape(tf.cast(out, tf.float32), [-1])  # logs stay float32
            tf.summary.write(HISTOGRAM_TAG.format(layer=tag), histogram_buckets(values),
                             step=step, metadata=_HISTOGRAM_METADATA)
            stats = layer_stats(values)
            for stat in STATS:
                tf.summary.scalar(STAT_TAG.format(layer=tag, stat=stat), stats[stat], step=step)
            if tag in self.trajectories:
                means_stds[tag] = (stats["mean"], stats["std"])
            if tag in self.figure_layers:
                # Binned on the fixed axes every run shares (avh.figure_rules).
                figure_data[tag] = {
                    "first_example": tf.cast(out[0], tf.float32), "counts": binned(values),
                    "mean": stats["mean"], "std": stats["std"]}
        return [figure_data[tag] for tag in self.figure_layers], layer_moments, means_stds


def layer_stats(values):
    """{stat: scalar tensor} for STATS over a flat float32 tensor."""
    return {"mean": tf.reduce_mean(values),
            "std": tf.math.reduce_std(values),
            "nonpositive_fraction": tf.reduce_mean(tf.cast(values <= 0, tf.float32))}


def histogram_buckets(values, bucket_count=HISTOGRAM_BUCKETS):
    """The [bucket_count, 3] float64 (left edge, right edge, count) tensor that TensorBoard's
    histogram dashboards read, computed in O(n): tf.summary.histogram builds an n x buckets
    one-hot matrix, 1 GB for CIFAR-10's first layer on a 128-image probe batch."""
    low, high = tf.reduce_min(values), tf.reduce_max(values)
    high = tf.where(high > low, high, low + 1.0)  # a constant layer gets one unit-wide range
    counts = tf.histogram_fixed_width(values, tf.stack([low, high]), nbins=bucket_count)
    edges = tf.linspace(tf.cast(low, tf.float64), tf.cast(high, tf.float64), bucket_count + 1)
    return tf.stack([edges[:-1], edges[1:], tf.cast(counts, tf.float64)], axis=1)


# -----------------------------------------------------------------------------
# Which layers, under which names, and how their outputs are reached.

def applies_activation(layer):
    """Whether `layer` applies a (non-linear) activation."""
    if isinstance(layer, _ACTIVATION_LAYERS):
        return True
    fn = getattr(layer, "activation", None)
    return callable(fn) and getattr(fn, "__name__", "linear") != "linear"


def walk_layers(model, path=()):
    """(path of nested models, layer) for every layer of `model` in model order; the layers of
    nested models stand where the nested model does."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from walk_layers(layer, path + (layer,))
        elif not isinstance(layer, keras.layers.InputLayer):
            yield path, layer


def choose_layers(model, choice=None):
    """[(path, layer)] chosen by `choice` (see ActivationSummaries' `layers`), in model order
    for None and predicates, in the given order for names."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"ActivationSummaries needs a keras.Model. Received: {model!r}")
    _check_reachable(model)
    every = list(walk_layers(model))
    if choice is None:
        chosen = [item for item in every if applies_activation(item[1])]
        if not chosen:
            raise ValueError(f"No layer of model '{model.name}' applies an activation; choose "
                             f"layers by name with layers=[...] (its layers: "
                             f"{', '.join(_qualified(p, l) for p, l in every[:20])})")
        return chosen
    if callable(choice):
        chosen = [item for item in every if choice(item[1])]
        if not chosen:
            raise ValueError(f"The `layers` predicate chose no layer of model '{model.name}'")
        return chosen
    index = {}
    for path, layer in every:
        index.setdefault(layer.name, []).append((path, layer))
        if path:
            index.setdefault(_qualified(path, layer), []).append((path, layer))
    chosen = []
    for name in choice:
        found = index.get(name, [])
        if not found:
            close = difflib.get_close_matches(name, list(index), n=5, cutoff=0.5)
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise ValueError(f"Model '{model.name}' has no layer named {name!r}{hint}")
        if len(found) > 1:
            raise ValueError(f"Layer name {name!r} is ambiguous in model '{model.name}'; use one "
                             f"of {', '.join(_qualified(p, l) for p, l in found)}")
        chosen.append(found[0])
    return chosen


def _qualified(path, layer):
    return "/".join([m.name for m in path] + [layer.name])


def tag_names(chosen, numbered=False):
    """[(tag name, layer)]: the layer's name, qualified by its nested models where two chosen
    layers share a name; with `numbered`, prefixed by its 1-based position (`3_conv3`)."""
    names = [layer.name for _, layer in chosen]
    result = []
    for k, (path, layer) in enumerate(chosen, start=1):
        name = _qualified(path, layer) if names.count(layer.name) > 1 else layer.name
        result.append((f"{k}_{name}" if numbered else name, layer))
    return result


def _check_reachable(model, path=()):
    """Subclassed models compute in Python: their layers' outputs exist only inside call()."""
    functional = hasattr(model, "_nodes_by_depth") or isinstance(model, keras.Sequential)
    if not functional or not model.built:
        where = "/".join(m.name for m in path + (model,))
        what = "is not built yet" if functional else "is a subclassed keras.Model"
        raise ValueError(
            f"Model '{where}' {what}: the outputs of its layers cannot be reached from outside. "
            + ("Call it on data or build it first." if functional else
               "Build it with the functional API or keras.Sequential, or log the layers of a "
               "functional sub-model: ActivationSummaries(...).set_model(sub_model) before fit."))
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _check_reachable(layer, path + (model,))


def probe_model(model, targets):
    """A keras.Model sharing `model`'s weights that maps its inputs to the `targets`, in order:
    (path of nested models, layer, "output" or "input"), nested models included (a layer called
    more than once: its first call)."""
    targets = [t if len(t) == 3 else (*t, "output") for t in targets]
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, _symbolic_outputs(model, targets), name=f"{model.name}_activations")


def _symbolic_outputs(model, targets):
    """The chosen layers' outputs as symbolic tensors of `model`'s own graph."""
    result = [None] * len(targets)
    nested = {}
    for i, (path, layer, which) in enumerate(targets):
        if path:
            nested.setdefault(id(path[0]), (path[0], []))[1].append(i)
        else:
            result[i] = getattr(layer, which)
    for sub, indices in nested.values():
        # Reach inside the nested model with a probe of its own, applied where `model` calls it.
        inner = _symbolic_outputs(sub, [(targets[i][0][1:], *targets[i][1:]) for i in indices])
        sub_probe = keras.Model(sub.inputs[0] if len(sub.inputs) == 1 else sub.inputs, inner)
        outputs = sub_probe(_call_inputs(sub, model))
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for i, out in zip(indices, outputs):
            result[i] = out
    return result


def _call_inputs(sub, model):
    """The symbolic inputs of the first call of nested model `sub` inside `model`'s graph."""
    own = {id(t) for t in sub.inputs}
    for node in sub._inbound_nodes:
        tensors = node.input_tensors
        if tensors and not any(id(t) in own for t in tensors):
            return tensors[0] if len(tensors) == 1 else list(tensors)
    raise ValueError(f"Model '{sub.name}' is never called inside '{model.name}'")


def check_probe_batch(model, probe_batch):
    """The probe batch as float tensors matching the model's inputs, or ValueError."""
    expected = [tuple(t.shape) for t in model.inputs]
    batches = probe_batch if isinstance(probe_batch, (list, tuple)) else [probe_batch]
    if isinstance(probe_batch, dict) or len(batches) != len(expected):
        raise ValueError(f"probe_batch must hold {len(expected)} input(s) for model "
                         f"'{model.name}' (shapes {expected}). Received: {type(probe_batch).__name__}")
    converted = []
    for want, batch in zip(expected, batches):
        batch = tf.convert_to_tensor(batch)
        got = tuple(batch.shape)
        if len(got) != len(want) or any(w is not None and w != g for w, g in zip(want[1:], got[1:])):
            raise ValueError(f"probe_batch has shape {got}, but model '{model.name}' expects "
                             f"{want} (None: any size)")
        if got[0] == 0:
            raise ValueError("probe_batch is empty; pass a few dozen examples or more")
        converted.append(batch)
    return converted[0] if len(converted) == 1 else converted


__all__ = ["ActivationSummaries", "applies_activation", "choose_layers", "histogram_buckets",
           "probe_model", "tag_names"]
