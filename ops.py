"""Activations and the settings each one is meant to be trained with (init, norm, dropout).

This is the one place that says what an activation is and what `auto` means for it: adding one
is one entry in ACTIVATION_TABLE. Importing this module does not import TensorFlow.
"""
import dataclasses

# LeakyReLU slope for negative inputs (the 2017 app's `lrelu`, also DCGAN's choice).
LRELU_SLOPE = 0.2

INITS = ("lecun_normal", "he_normal", "glorot_uniform")
NORMS = ("batch", "none")
DROPOUT_KINDS = ("alpha", "standard")


@dataclasses.dataclass(frozen=True)
class Activation:
    help: str
    layer: str            # a class in keras.layers
    layer_args: dict      # its arguments
    # What `auto` resolves to for this activation:
    norm: str
    init: str
    dropout_kind: str


# SELU self-normalises only with LeCun-normal weights (variance 1/fan_in) and AlphaDropout, which
# keeps mean and variance; batch norm would hide what SELU does. The ReLU family (and ELU, GELU)
# need He init (variance 2/fan_in) and batch norm to stay trainable at depth.
ACTIVATION_TABLE = {
    "selu": Activation("scaled ELU: self-normalising (Klambauer et al., 2017)",
                       "Activation", {"activation": "selu"}, "none", "lecun_normal", "alpha"),
    "relu": Activation("max(0, x)", "ReLU", {}, "batch", "he_normal", "standard"),
    "lrelu": Activation(f"leaky ReLU, slope {LRELU_SLOPE} below 0",
                        "LeakyReLU", {"negative_slope": LRELU_SLOPE}, "batch", "he_normal", "standard"),
    "elu": Activation("exponential linear unit (alpha 1)", "ELU", {"alpha": 1.0},
                      "batch", "he_normal", "standard"),
    "gelu": Activation("Gaussian error linear unit", "Activation", {"activation": "gelu"},
                       "batch", "he_normal", "standard"),
}
ACTIVATIONS = tuple(ACTIVATION_TABLE)
COMPARED = ("selu", "relu", "lrelu")  # what compare.py trains unless told otherwise


def resolve(activation, norm="auto", init="auto", dropout_kind="auto"):
    """The concrete (norm, init, dropout_kind) for an activation, with `auto` filled in."""
    auto = ACTIVATION_TABLE[activation]
    return (
        auto.norm if norm == "auto" else norm,
        auto.init if init == "auto" else init,
        auto.dropout_kind if dropout_kind == "auto" else dropout_kind,
    )


def activation_layer(name, layer_name=None):
    """A layer applying activation `name` (a layer, not a lambda, so saved models load again)."""
    import keras

    if name not in ACTIVATION_TABLE:
        raise ValueError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")
    entry = ACTIVATION_TABLE[name]
    return getattr(keras.layers, entry.layer)(**entry.layer_args, name=layer_name)


def initializer(name):
    """A Keras initializer by name (seeded through keras.utils.set_random_seed)."""
    import keras

    kinds = {
        "lecun_normal": keras.initializers.LecunNormal,
        "he_normal": keras.initializers.HeNormal,
        "glorot_uniform": keras.initializers.GlorotUniform,
    }
    return kinds[name]()


def dropout(kind, rate, name=None):
    """AlphaDropout keeps SELU's mean 0 / variance 1 fixed point; plain Dropout would break it."""
    import keras

    if kind == "alpha":
        return keras.layers.AlphaDropout(rate, name=name)
    return keras.layers.Dropout(rate, name=name)
