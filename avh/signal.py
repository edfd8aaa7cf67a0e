"""What is computed of one layer's signal on the probe batch, forward and backward, inside the
traced probe: the histogram in TensorBoard's format and the statistics that are logged.

The histogram format ([k, 3] float64 rows of left edge, right edge, count; what TensorBoard's
histogram plugin reads): k = HISTOGRAM_BUCKETS equal buckets from the minimum to the maximum, the
last right edge is the maximum; a constant signal (max == min) gets one unit-wide range
[value, value + 1) with every count in the first bucket. An empty signal is not logged.
"""
import tensorflow as tf

HISTOGRAM_BUCKETS = 80  # TensorBoard reads any count; 30 (its default) looks blocky in reports


def layer_stats(values):
    """{stat: scalar tensor} for STATS over a flat float32 tensor."""
    return {"mean": tf.reduce_mean(values),
            "std": tf.math.reduce_std(values),
            "nonpositive_fraction": tf.reduce_mean(tf.cast(values <= 0, tf.float32))}


def histogram_buckets(values, bucket_count=HISTOGRAM_BUCKETS):
    """The [bucket_count, 3] histogram of a flat float32 tensor (the format above), computed in
    O(n): tf.summary.histogram builds an n x buckets one-hot matrix, 1 GB for CIFAR-10's first
    layer on a 128-image probe batch."""
    low, high = tf.reduce_min(values), tf.reduce_max(values)
    high = tf.where(high > low, high, low + 1.0)
    counts = tf.histogram_fixed_width(values, tf.stack([low, high]), nbins=bucket_count)
    edges = tf.linspace(tf.cast(low, tf.float64), tf.cast(high, tf.float64), bucket_count + 1)
    return tf.stack([edges[:-1], edges[1:], tf.cast(counts, tf.float64)], axis=1)




def gradient_stats(gradient):
    """{stat: scalar tensor} for GRADIENT_STATS over a flat float32 gradient: its std, its root
    mean square (the size of the backward signal), and the share of exact zeros (dead paths)."""
    return {"std": tf.math.reduce_std(gradient),
            "rms": tf.sqrt(tf.reduce_mean(tf.square(gradient))),
            "zero_fraction": tf.reduce_mean(tf.cast(gradient == 0, tf.float32))}
