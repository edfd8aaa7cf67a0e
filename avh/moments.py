"""The paper's view of a layer, measured on the probe batch: its weights' moments omega and tau,
how correlated its inputs have become, and what the SELU moment map predicts for its output.

For ActivationSummaries: which layers qualify, the probe outputs they need, and the statistics
(small per-unit vectors from TensorFlow, the theory in numpy via avh.theory). Reads, never trains.
"""
import dataclasses

import keras
import numpy as np
import tensorflow as tf

from avh import theory

MOMENT_MAP_KEY = "moment_map"  # among a summary step's figure data: the SELU layers' paths
NORMALISATIONS = (keras.layers.BatchNormalization, keras.layers.LayerNormalization)


@dataclasses.dataclass
class Feed:
    """An activation layer fed by a layer with a kernel (Dense or Conv), maybe through a norm."""
    kernel_layer: keras.layers.Layer
    normalised: bool
    activation: str | None    # a name avh.theory knows, or None (no prediction)
    params: dict


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
        name = keras.activations.serialize(layer.activation)
        name = name if isinstance(name, str) else None
        return (name, {}) if name in ("selu", "relu", "elu", "gelu") else (None, {})
    return None, {}


def find_feed(layer):
    """The Feed of `layer`, or None where the paper's quantities do not apply (a layer that
    does more than apply an activation, or one not fed by a kernel)."""
    if not isinstance(layer, (keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU,
                              keras.layers.ELU)):
        return None
    try:
        producer = layer.input._keras_history.operation
    except (AttributeError, ValueError):
        return None
    normalised = isinstance(producer, NORMALISATIONS)
    if normalised:
        producer = producer.input._keras_history.operation
    kernel = getattr(producer, "kernel", None)
    channels_last = getattr(producer, "data_format", "channels_last") == "channels_last"
    if kernel is None or len(kernel.shape) not in (2, 4) or not channels_last:
        return None
    name, params = theory_activation(layer)
    return Feed(producer, normalised, name, params)


def unit_moments(kernel, inputs, kernel_outputs, preactivations):
    """The small tensors the theory needs, in TensorFlow on the probe batch: per-unit omega and
    tau, the pooled mean and variance of the layer's input, and per unit the variance of its
    linear output and the mean and variance of the activation's input (after any norm)."""
    k = tf.cast(kernel, tf.float32)
    k = tf.reshape(k, [-1, tf.shape(k)[-1]])
    x = tf.cast(inputs, tf.float32)
    units = lambda t: tf.reshape(tf.cast(t, tf.float32), [-1, tf.shape(t)[-1]])
    linear_mean, linear_var = tf.nn.moments(units(kernel_outputs), axes=[0])
    z_mean, z_var = tf.nn.moments(units(preactivations), axes=[0])
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
    if feed.activation is not None and feed.activation != "gelu":
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
