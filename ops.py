"""Activations and the settings each one is meant to be trained with (init, norm, dropout).

This is the one place that says what `auto` means; it builds no model and reads no data.
"""
import keras

# LeakyReLU slope for negative inputs (the 2017 app's `lrelu`, also DCGAN's choice).
LRELU_SLOPE = 0.2

ACTIVATIONS = ("selu", "relu", "lrelu")
INITS = ("lecun_normal", "he_normal", "glorot_uniform")
NORMS = ("batch", "none")
DROPOUT_KINDS = ("alpha", "standard")

# What `auto` resolves to. SELU self-normalises only with LeCun-normal weights (variance 1/fan_in)
# and AlphaDropout, which keeps mean and variance; batch norm would hide what SELU does.
# ReLU-family networks need He init (variance 2/fan_in) and batch norm to stay trainable.
AUTO = {
    "selu": {"norm": "none", "init": "lecun_normal", "dropout_kind": "alpha"},
    "relu": {"norm": "batch", "init": "he_normal", "dropout_kind": "standard"},
    "lrelu": {"norm": "batch", "init": "he_normal", "dropout_kind": "standard"},
}


def resolve(activation, norm="auto", init="auto", dropout_kind="auto"):
    """The concrete (norm, init, dropout_kind) for an activation, with `auto` filled in."""
    auto = AUTO[activation]
    return (
        auto["norm"] if norm == "auto" else norm,
        auto["init"] if init == "auto" else init,
        auto["dropout_kind"] if dropout_kind == "auto" else dropout_kind,
    )


def activation_layer(name, layer_name=None):
    """A layer applying activation `name` (a layer, not a lambda, so saved models load again)."""
    if name == "selu":
        return keras.layers.Activation("selu", name=layer_name)
    if name == "relu":
        return keras.layers.ReLU(name=layer_name)
    if name == "lrelu":
        return keras.layers.LeakyReLU(negative_slope=LRELU_SLOPE, name=layer_name)
    raise ValueError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")


def initializer(name):
    """A Keras initializer by name (seeded through keras.utils.set_random_seed)."""
    kinds = {
        "lecun_normal": keras.initializers.LecunNormal,
        "he_normal": keras.initializers.HeNormal,
        "glorot_uniform": keras.initializers.GlorotUniform,
    }
    return kinds[name]()


def dropout(kind, rate, name=None):
    """AlphaDropout keeps SELU's mean 0 / variance 1 fixed point; plain Dropout would break it."""
    if kind == "alpha":
        return keras.layers.AlphaDropout(rate, name=name)
    return keras.layers.Dropout(rate, name=name)
