"""The paper's view of a layer, measured on the probe batch: its weights' moments omega and tau,
how correlated its inputs have become, and what the SELU moment map predicts for its output.

For ActivationSummaries: which recorded layer calls qualify (avh.probe), the small per-unit
tensors they need (TensorFlow, in the probe), and the statistics (numpy, via avh.theory).
Reads, never trains.
"""
import dataclasses

import keras
import numpy as np
import tensorflow as tf

from avh import theory

MOMENT_MAP_KEY = "moment_map"  # among a summary step's figure data: the SELU layers' paths
NORMALISATIONS = (keras.layers.BatchNormalization, keras.layers.LayerNormalization)
KERNEL_LAYERS = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
ACTIVATION_ONLY = (keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU,
                   keras.layers.ELU)


@dataclasses.dataclass(eq=False)
class Feed:
    """What feeds a logged activation: a layer with a kernel (Dense or Conv), maybe through a
    norm, and the tensors of the recorded pass the theory needs."""
    kernel_layer: keras.layers.Layer
    normalised: bool
    activation: str | None    # a name avh.theory knows, or None (no prediction)
    params: dict
    inputs: object            # the kernel layer's input
    linear: object            # its output before any norm and activation: z = w.x + b
    preactivation: object     # the activation's input (after the norm, if any)


def find_feed(call, calls):
    """(Feed of a recorded layer call, None) where the paper's quantities apply, or (None, why not)
    for a layer that applies an activation: an activation layer whose input comes from a Dense
    or Conv layer (through a BatchNormalization or LayerNormalization), or a Dense or Conv layer
    with its own activation."""
    layer = call.layer
    if isinstance(layer, KERNEL_LAYERS):
        if not applies_own_activation(layer):
            return None, "it applies no activation"
        if not _channels_last(layer):
            return None, "it is channels_first"
        name, params = _theory_name(layer.activation)
        linear = linear_output(layer, call.inputs)
        return Feed(layer, False, name, params, call.inputs, linear, linear), None
    if not isinstance(layer, ACTIVATION_ONLY):
        return None, f"{type(layer).__name__} is not a Dense, Conv or activation layer"
    producers = {id(c.output): c for c in calls if c.output is not None}
    producer = producers.get(id(call.inputs))
    normalised = producer is not None and isinstance(producer.layer, NORMALISATIONS)
    if normalised:
        producer = producers.get(id(producer.inputs))
    if producer is None or not isinstance(producer.layer, KERNEL_LAYERS):
        return None, "its input does not come from a Dense or Conv layer"
    if applies_own_activation(producer.layer):
        return None, f"its input comes from {producer.layer.name}, which applies an activation itself"
    if not _channels_last(producer.layer):
        return None, f"{producer.layer.name} is channels_first"
    name, params = theory_activation(layer)
    return Feed(producer.layer, normalised, name, params, producer.inputs, producer.output,
                call.inputs), None


def applies_own_activation(layer):
    return getattr(getattr(layer, "activation", None), "__name__", "linear") != "linear"


def _channels_last(layer):
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def linear_output(layer, inputs):
    """z = w.x + b of a Dense or Conv layer, without its activation, in float32 (the layer applies
    its activation inside its call, so z is computed again here, for the probe only)."""
    x = tf.cast(inputs, tf.float32)
    kernel = tf.cast(layer.kernel, tf.float32)
    if isinstance(layer, keras.layers.Dense):
        z = tf.tensordot(x, kernel, axes=[[x.shape.rank - 1], [0]])
    else:
        z = layer.convolution_op(x, kernel)
    if layer.use_bias:
        z += tf.cast(layer.bias, tf.float32)
    return z


def theory_activation(layer):
    """(name avh.theory knows, its parameters) for an activation-only layer, or (None, {})."""
    if isinstance(layer, keras.layers.LeakyReLU):
        return "lrelu", {"slope": float(layer.negative_slope)}
    if isinstance(layer, keras.layers.ReLU):
        config = layer.get_config()
        plain = (config["max_value"] is None and not config["negative_slope"]
                 and not config["threshold"])
        return ("relu", {}) if plain else (None, {})
    if isinstance(layer, keras.layers.ELU):
        return "elu", {"alpha": float(layer.alpha)}
    if isinstance(layer, keras.layers.Activation):
        return _theory_name(layer.activation)
    return None, {}


def _theory_name(fn):
    """(name avh.theory knows, its parameters) of a Keras activation function, ("linear", {}) for
    none, or (None, {})."""
    try:
        name = keras.activations.serialize(fn) if fn is not None else "linear"
    except (ValueError, TypeError, AttributeError):  # a function Keras does not know
        return None, {}
    name = name if isinstance(name, str) else None
    if name == "leaky_relu":  # keras.activations.leaky_relu's default slope
        return "lrelu", {"slope": 0.2}
    if name in ("selu", "relu", "elu", "gelu", "linear"):
        return name, {}
    return None, {}


def unit_moments(feed):
    """The small tensors the theory needs, in TensorFlow on the probe batch: per-unit omega and
    tau, the pooled mean and variance of the layer's input, and per unit the variance of its
    linear output and the mean and variance of the activation's input (after any norm)."""
    k = tf.cast(feed.kernel_layer.kernel, tf.float32)
    k = tf.reshape(k, [-1, tf.shape(k)[-1]])
    x = tf.cast(feed.inputs, tf.float32)
    units = lambda t: tf.reshape(tf.cast(t, tf.float32), [-1, tf.shape(t)[-1]])
    z_mean, z_var = tf.nn.moments(units(feed.preactivation), axes=[0])
    # Without a norm between them the linear output is the activation's input: computed once.
    linear_var = (z_var if feed.linear is feed.preactivation
                  else tf.nn.moments(units(feed.linear), axes=[0])[1])
    return {"omega": tf.reduce_sum(k, 0), "tau": tf.reduce_sum(tf.square(k), 0),
            "input_mean": tf.reduce_mean(x), "input_var": tf.math.reduce_variance(x),
            "linear_var": linear_var, "z_mean": z_mean, "z_var": z_var}


def layer_statistics(unit, feed):
    """{stat: float} for MOMENT_STATS from unit_moments' values (numpy); a prediction is left out
    where the theory has nothing to say (no known activation; a norm between weights and
    activation for the paper's map)."""
    omega, tau = unit["omega"], np.maximum(unit["tau"], 1e-12)
    nu_in = max(float(unit["input_var"]), 1e-12)
    stats = {"omega": omega.mean(), "omega_spread": omega.std(),
             "tau": tau.mean(), "tau_spread": tau.std(),
             "input_correlation": np.mean(theory.input_correlation(unit["linear_var"], tau, nu_in))}
    # gelu's variance is integrated point by point (~1 ms a unit): too slow for every event.
    if feed.activation not in (None, "gelu", "linear"):
        if not feed.normalised:
            # The paper's map: independent inputs with the measured input moments and weights.
            mean, var = theory.layer_moments(float(unit["input_mean"]), nu_in, omega, tau,
                                             feed.activation, **feed.params)
            stats.update(predicted_mean=mean, predicted_std=np.sqrt(var))
        # The activation alone, given each unit's measured pre-activation mean and variance.
        unit_mean, unit_var = theory.activation_moments(
            feed.activation, unit["z_mean"], np.maximum(unit["z_var"], 1e-12), **feed.params)
        stats["predicted_std_given_preactivation"] = np.sqrt(np.mean(unit_var) + np.var(unit_mean))
    return {name: float(value) for name, value in stats.items()}
