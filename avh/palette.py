"""One colour per activation in every view (the Activations dashboard, report.py's figures), so a
run is drawn alike wherever it is looked at. No TensorFlow, no matplotlib here.

The activations the app trains (ops.ACTIVATION_TABLE) and Keras' own names for them have fixed
colours; any other name gets one of OTHER_COLOURS, the same for that name in every process.
"""
import zlib

ACTIVATION_COLOURS = {            # matplotlib's tab10, in the order the app lists them
    "selu": "#1f77b4",            # blue
    "relu": "#ff7f0e",            # orange
    "lrelu": "#2ca02c",           # green
    "elu": "#d62728",             # red
    "gelu": "#9467bd",            # purple
}
ALIASES = {"leaky_relu": "lrelu", "leakyrelu": "lrelu"}  # Keras' names for the same activations
OTHER_COLOURS = ("#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#393b79", "#ad494a")
UNKNOWN_COLOUR = "#7f7f7f"


def colour(activation, key=None):
    """The colour of an activation's runs: its own for a known activation; for any other name
    (or None, with `key` naming the run or its group instead) a stable pick of OTHER_COLOURS."""
    name = ALIASES.get(activation, activation)
    if name in ACTIVATION_COLOURS:
        return ACTIVATION_COLOURS[name]
    label = name if name is not None else key
    if label is None:
        return UNKNOWN_COLOUR
    return OTHER_COLOURS[zlib.crc32(str(label).encode()) % len(OTHER_COLOURS)]


def name_in(text):
    """The known activation a run's name suggests (`cifar10/lrelu-20261201` -> lrelu), or None:
    for runs without a readable config.json."""
    text = text.lower()
    # Longest names first: "selu" and "gelu" contain "elu", "lrelu" contains "relu".
    for marker in sorted([*ACTIVATION_COLOURS, *ALIASES, "leaky"], key=len, reverse=True):
        if marker in text:
            return ALIASES.get(marker, "lrelu" if marker == "leaky" else marker)
    return None
