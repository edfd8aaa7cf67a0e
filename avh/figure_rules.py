"""The fixed scales of the activation figures, the same in every run so that one layer's figures
compare by eye across runs; and the binning that feeds them. No matplotlib here.

Rule: every histogram spans HISTOGRAM_RANGE with values beyond it counted in two overflow bins,
and its y axis stops at DENSITY_CAP (a taller peak is written on the figure); every activation
map uses the colour scale [-MAP_LIMIT, MAP_LIMIT] and shows at most MAP_CHANNELS channels.
"""
import tensorflow as tf

HISTOGRAM_RANGE = (-4.0, 6.0)  # N(0, 1)'s bulk, and room for ReLU's and SELU's right tails
HISTOGRAM_BINS = 80            # inside the range: 0.125 wide
DENSITY_CAP = 1.0              # y axis top: 2.5x N(0, 1)'s peak; ReLU's spike at 0 goes beyond
MAP_LIMIT = 3.0                # colour scale [-3, 3]: 0 is white, SELU's unit std well inside
MAP_CHANNELS = 16              # a conv map shows its first 16 channels, 4x4, large enough to see


def binned(values):
    """[HISTOGRAM_BINS + 2] int32 counts of a flat float32 tensor: values below the range, the
    bins of HISTOGRAM_RANGE, values above it (tf.histogram_fixed_width alone folds them into the
    edge bins, which would hide a tail)."""
    low, high = HISTOGRAM_RANGE
    below = tf.reduce_sum(tf.cast(values < low, tf.int32))
    above = tf.reduce_sum(tf.cast(values > high, tf.int32))
    inside = tf.histogram_fixed_width(values, [low, high], nbins=HISTOGRAM_BINS)
    edges = tf.one_hot([0, HISTOGRAM_BINS - 1], HISTOGRAM_BINS, dtype=tf.int32)
    inside -= below * edges[0] + above * edges[1]
    return tf.concat([[below], inside, [above]], axis=0)


def map_channels(activations):
    """(the shown part of one example's activations, a caption of what was left out): a conv map
    (H, W, C) keeps its first MAP_CHANNELS channels; a vector of units is shown whole."""
    shape = tuple(activations.shape)
    if len(shape) == 3 and shape[-1] > MAP_CHANNELS:
        return activations[..., :MAP_CHANNELS], f"ch. 1-{MAP_CHANNELS} of {shape[-1]}"
    if len(shape) == 3:
        return activations, f"{shape[-1]} ch."
    return activations, f"{shape[-1]} units"
