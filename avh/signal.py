"""What is computed of one layer's signal on the probe batch, forward and backward: inside the
traced probe, what its histogram needs and the statistics that are logged; on the host, the
histogram in TensorBoard's format.

The histogram format ([k, 3] float64 rows of left edge, right edge, count; what TensorBoard's
histogram plugin reads): k = HISTOGRAM_BUCKETS equal buckets from the minimum to the maximum, the
last right edge is the maximum; a constant signal (max == min) gets one unit-wide range
[value, value + 1) with every count in the first bucket. An empty signal is not logged.
"""
import numpy as np
import tensorflow as tf

from avh.dashboard.series import uniform_edges  # numpy only

HISTOGRAM_BUCKETS = 80  # TensorBoard reads any count; 30 (its default) looks blocky in reports


def layer_stats(values):
    """{stat: scalar tensor} for STATS over a flat float32 tensor."""
    return {"mean": tf.reduce_mean(values),
            "std": tf.math.reduce_std(values),
            "nonpositive_fraction": tf.reduce_mean(tf.cast(values <= 0, tf.float32))}


def histogram_parts(values, bucket_count=HISTOGRAM_BUCKETS):
    """In the traced probe, what a histogram of a flat float32 tensor needs: {"low", "high"}
    (float32 scalars) and "counts" ([bucket_count] int32), computed in O(n): tf.summary.histogram
    builds an n x buckets one-hot matrix, 1 GB for CIFAR-10's first layer on a 128-image probe
    batch. histogram_buckets makes TensorBoard's rows of them, on the host."""
    low, high = tf.reduce_min(values), tf.reduce_max(values)
    high = tf.where(high > low, high, low + 1.0)
    counts = tf.histogram_fixed_width(values, tf.stack([low, high]), nbins=bucket_count)
    return {"low": low, "high": high, "counts": counts}


def histogram_buckets(parts):
    """The [k, 3] float64 histogram (the format above) of histogram_parts' values (numpy), on the
    edges the dashboard's compact form stands for (avh.dashboard.series.uniform_edges: bit for
    bit what tf.linspace makes). Made here rather than in the probe: tf.linspace is ~70 graph
    ops, and on DenseNet121's 121 layers (forward only) they held 0.11 GB of the probe's memory."""
    counts = np.asarray(parts["counts"], dtype=np.float64)
    (edges,) = uniform_edges(np.array([parts["low"]], dtype=np.float64),
                             np.array([parts["high"]], dtype=np.float64), len(counts))
    return np.stack([edges[:-1], edges[1:], counts], axis=1)


def gradient_stats(gradient):
    """{stat: scalar tensor} for GRADIENT_STATS over a flat float32 gradient: its std, its root
    mean square (the size of the backward signal), and the share of exact zeros (dead paths)."""
    return {"std": tf.math.reduce_std(gradient),
            "rms": tf.sqrt(tf.reduce_mean(tf.square(gradient))),
            "zero_fraction": tf.reduce_mean(tf.cast(gradient == 0, tf.float32))}
