"""The probe: one forward pass of a model over a fixed batch, traced once, that records what the
chosen layers output, for every kind of Keras model (Sequential, functional, nested, subclassed,
custom layers holding layers); which layers are chosen and the tags they are logged under.

Recording patches keras.layers.Layer.__call__ for the duration of that one trace only: Keras has
no public way to reach the outputs of a subclassed model's layers (keras-team/keras#18634). The
traced function keeps what was recorded; the model, its weights and its training step are never
touched, and the patch is undone before the trace returns.
"""
import contextlib
import dataclasses
import difflib

import keras
import tensorflow as tf

# Layers that exist to apply an activation; other layers count when their `activation` is not
# linear (Dense(..., activation="relu")).
ACTIVATION_LAYERS = (keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU,
                     keras.layers.ELU, keras.layers.PReLU, keras.layers.Softmax)


@dataclasses.dataclass(eq=False)
class LayerCall:
    """One call of a layer during the recorded forward pass."""
    layer: keras.layers.Layer
    path: tuple               # the layers it was called inside (nested models, blocks), outermost first
    index: int                # 0 for the layer's first call in the pass, 1 for its second, ...
    inputs: object = None     # its first positional argument, as passed
    output: object = None
    has_sublayer_calls: bool = False  # a container (a model or a block): not logged by default

    @property
    def qualified_name(self):
        """`block_1/dense`: the names of the enclosing layers and its own."""
        return "/".join([m.name for m in self.path] + [self.layer.name])


@contextlib.contextmanager
def recording(model):
    """[LayerCall] of every layer called inside `model`'s call during the block, in the order the
    calls began (the model's own call is not among them). Calls inside a loop's own graph (an
    RNN's cell in its while loop) are not recorded: their tensors stay inside the loop, and
    the RNN layer itself is."""
    calls, stack = [], []
    counts = {}
    graph = []  # the graph the model's call runs in
    original = keras.layers.Layer.__call__

    def recorded_call(layer, *args, **kwargs):
        if not stack and layer is not model:  # not inside the model: not ours
            return original(layer, *args, **kwargs)
        if not stack:
            graph[:] = [tf.compat.v1.get_default_graph()]
        elif (tf.compat.v1.get_default_graph() is not graph[0]
              or any(c is not None and isinstance(c.layer, keras.layers.RNN) for c in stack)):
            return original(layer, *args, **kwargs)
        record = None
        if stack:
            if stack[-1] is not None:
                stack[-1].has_sublayer_calls = True
            index = counts.get(id(layer), 0)
            counts[id(layer)] = index + 1
            path = tuple(c.layer for c in stack[1:] if c is not None)
            record = LayerCall(layer, path, index, args[0] if args else None)
            calls.append(record)
        stack.append(record)
        try:
            output = original(layer, *args, **kwargs)
        finally:
            stack.pop()
        if record is not None:
            record.output = output
        return output

    keras.layers.Layer.__call__ = recorded_call
    try:
        yield calls
    finally:
        keras.layers.Layer.__call__ = original
    if not calls:
        raise RuntimeError(
            f"avh.probe: no layer call of model '{model.name}' was recorded; this Keras "
            f"({keras.__version__}) calls layers in a way the recording (a workaround for "
            f"keras-team/keras#18634) does not see. Use the Keras version pyproject.toml pins.")


def applies_activation(layer):
    """Whether `layer` applies a (non-linear) activation."""
    if isinstance(layer, ACTIVATION_LAYERS):
        return True
    fn = getattr(layer, "activation", None)
    return callable(fn) and getattr(fn, "__name__", "linear") != "linear"


def choose(calls, choice=None, model_name="model"):
    """The chosen [LayerCall], by `choice` (ActivationSummaries' `layers`): None for every layer
    that applies an activation and holds no layers itself, in call order; a predicate on the
    layer; or a list of names (a layer's name, or its path `block_1/dense`), in the given order.
    A layer called more than once is chosen at each call."""
    leaves = [c for c in calls if not c.has_sublayer_calls]
    if choice is None:
        chosen = [c for c in leaves if applies_activation(c.layer)]
        if not chosen:
            names = ", ".join(dict.fromkeys(c.qualified_name for c in leaves[:20]))
            raise ValueError(f"No layer of model '{model_name}' applies an activation; choose "
                             f"layers by name with layers=[...] (its layers: {names})")
        return chosen
    if callable(choice):
        chosen = [c for c in calls if choice(c.layer)]
        if not chosen:
            raise ValueError(f"The `layers` predicate chose no layer of model '{model_name}'")
        return chosen
    index = {}
    for c in calls:
        for name in dict.fromkeys((c.layer.name, c.qualified_name)):
            index.setdefault(name, {}).setdefault(id(c.layer), []).append(c)
    chosen = []
    for name in choice:
        found = index.get(name, {})
        if not found:
            close = difflib.get_close_matches(name, list(index), n=5, cutoff=0.5)
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise ValueError(f"Model '{model_name}' has no layer named {name!r}{hint}")
        if len(found) > 1:
            paths = ", ".join(layer_calls[0].qualified_name for layer_calls in found.values())
            raise ValueError(f"Layer name {name!r} is ambiguous in model '{model_name}'; use one "
                             f"of {paths}")
        chosen += next(iter(found.values()))
    return chosen


def tag_names(chosen, numbered=False):
    """[tag name] of the chosen calls: the layer's name, qualified by its path (`block_1/dense`)
    where two chosen layers share a name, `@2`, `@3`, ... for a layer's later calls; with
    `numbered`, prefixed by the 1-based position (`3_conv3`)."""
    names = {}
    for c in chosen:
        names.setdefault(c.layer.name, set()).add(id(c.layer))
    tags = []
    for k, c in enumerate(chosen, start=1):
        name = c.qualified_name if len(names[c.layer.name]) > 1 else c.layer.name
        if c.index:
            name += f"@{c.index + 1}"
        tags.append(f"{k}_{name}" if numbered else name)
    return tags


# -----------------------------------------------------------------------------
# The probe batch: what the model takes, checked once, with one-line errors.

def check_probe_batch(model, probe_batch):
    """(x, y): the probe batch as tensors in the structure `model` takes (one input, a list or a
    dict), and its labels or None; ValueError naming what the model expects. A tf.data.Dataset
    gives its first batch; a tuple of 2 or 3 is (x, y[, sample_weight]) as in Keras' own data
    handling, unless the model's inputs are a sequence of that length."""
    if isinstance(probe_batch, tf.data.Dataset):
        probe_batch = next(iter(probe_batch))
    expected = _expected_inputs(model)
    labels = None
    if (isinstance(probe_batch, tuple) and len(probe_batch) in (2, 3)
            and not (isinstance(expected, (list, tuple)) and len(expected) == len(probe_batch))):
        probe_batch, labels = probe_batch[0], probe_batch[1]
    try:
        batch = tf.nest.map_structure(tf.convert_to_tensor, probe_batch)
        labels = None if labels is None else tf.convert_to_tensor(labels)
    except (TypeError, ValueError) as err:
        raise ValueError(f"probe_batch must hold arrays or tensors for model '{model.name}'. "
                         f"Received: {type(probe_batch).__name__} ({err})") from None
    if expected is not None:
        _check_against(model, expected, batch)
    sizes = {int(t.shape[0]) if t.shape.rank else 0 for t in tf.nest.flatten(batch)}
    if 0 in sizes:
        raise ValueError("probe_batch is empty; pass a few dozen examples or more")
    if len(sizes) > 1:
        raise ValueError(f"probe_batch's inputs hold different numbers of examples: {sorted(sizes)}")
    if labels is not None and labels.shape.rank and int(labels.shape[0]) not in sizes:
        raise ValueError(f"the probe's labels hold {labels.shape[0]} examples, its inputs "
                         f"{sizes.pop()}")
    return batch, labels


def _expected_inputs(model):
    """The structure of the model's symbolic inputs, or None for a model without them
    (subclassed: its call is the only judge)."""
    try:
        return model.input
    except (AttributeError, ValueError):
        pass
    try:
        inputs = model.inputs  # a Sequential model built from an Input has these only
    except (AttributeError, ValueError):
        return None
    if not inputs:
        return None
    return inputs[0] if len(inputs) == 1 else list(inputs)


def error_reason(err):
    """The line of an exception that says what went wrong: Keras wraps a layer's error in
    "Exception encountered when calling ..." and "Arguments received by ..." lines."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Exception encountered",
                                                             "Arguments received", "•"))]
    return (useful or lines or [type(err).__name__])[0]


def _check_against(model, expected, batch):
    describe = lambda structure: tf.nest.map_structure(lambda t: tuple(t.shape), structure)
    if isinstance(expected, dict):
        if not isinstance(batch, dict) or set(batch) != set(expected):
            given = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
            raise ValueError(f"probe_batch must be a dict with the keys {sorted(expected)} for "
                             f"model '{model.name}' (shapes {describe(expected)}). Received: {given}")
        pairs = [(expected[k], batch[k], k) for k in expected]
    else:
        wanted = list(expected) if isinstance(expected, (list, tuple)) else [expected]
        given = list(batch) if isinstance(batch, (list, tuple)) else [batch]
        if isinstance(batch, dict) or len(given) != len(wanted):
            raise ValueError(f"probe_batch must hold {len(wanted)} input(s) for model "
                             f"'{model.name}' (shapes {[tuple(t.shape) for t in wanted]}). "
                             f"Received: {type(batch).__name__}")
        pairs = [(w, g, None) for w, g in zip(wanted, given)]
    for want, got, key in pairs:
        want_shape, got_shape = tuple(want.shape), tuple(got.shape)
        if len(got_shape) != len(want_shape) or any(
                w is not None and w != g for w, g in zip(want_shape[1:], got_shape[1:])):
            where = f"probe_batch[{key!r}]" if key is not None else "probe_batch"
            raise ValueError(f"{where} has shape {got_shape}, but model '{model.name}' expects "
                             f"{want_shape} (None: any size)")


def probe_signature(batch):
    """The tf.TensorSpec structure of a probe batch (its size free), for tracing once."""
    return tf.nest.map_structure(
        lambda t: tf.TensorSpec((None, *t.shape[1:]), t.dtype), batch)
