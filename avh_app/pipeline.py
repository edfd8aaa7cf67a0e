"""The input pipeline: uint8 images in memory, shuffled by a pure function of (seed, epoch) and
standardised per channel with training-set statistics, batch by batch.

The same pipeline feeds train.py, the depth sweep and every kind of the benchmark.
"""
import numpy as np
import tensorflow as tf

PROBE_SIZE = 128          # test images in the fixed probe batch (the first ones, for every run)
EVAL_BATCH_SIZE = 256


def input_pipeline(data, mean, std, batch_size, seed):
    """(train_batches(epoch, skip), test_batches, standardise) over the uint8 arrays in memory;
    every batch is standardised with the per-channel `mean` and `std`.

    The training images stay where they were loaded: each batch is gathered from the numpy array
    (tf.numpy_function, a few microseconds), not from a tf.constant copy of the whole set, which
    held the 50,000 CIFAR-10 images twice (150 MB)."""
    mean_t, std_t = tf.constant(mean), tf.constant(std)
    images, y_train = data.x_train, tf.constant(data.y_train)
    n_train = len(images)

    def gather(i):
        batch = tf.numpy_function(lambda indices: images[indices], [i], tf.uint8, stateful=False)
        return tf.ensure_shape(batch, (None, *images.shape[1:]))

    def standardise(images):
        return (tf.cast(images, tf.float32) - mean_t) / std_t

    def train_batches(epoch, skip=0):
        """Epoch `epoch`'s batches, from batch `skip` on. The order is a pure function of
        (seed, epoch), so a resumed run sees exactly the batches the interrupted one would have."""
        order = tf.random.experimental.stateless_shuffle(tf.range(n_train), seed=[seed, epoch])
        return with_fixed_knobs(
            tf.data.Dataset.from_tensor_slices(order)
            .batch(batch_size).skip(skip)
            .map(lambda i: (standardise(gather(i)), tf.gather(y_train, i)),
                 num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))

    test_batches = (tf.data.Dataset.from_tensor_slices((data.x_test, data.y_test))
                    .batch(EVAL_BATCH_SIZE)
                    .map(lambda x, y: (standardise(x), y), num_parallel_calls=tf.data.AUTOTUNE)
                    .prefetch(tf.data.AUTOTUNE))
    return train_batches, with_fixed_knobs(test_batches), standardise


def with_fixed_knobs(dataset):
    """`dataset` without tf.data's autotuning thread: deleting an iterator waits for that
    thread's current sleep, which grows the longer the iterator runs, so every fit() (one per
    epoch) and evaluation ended with a stall of 0-40 s in about a third of the runs here
    (measured at 8-9 s after 60 CIFAR-10 steps). AUTOTUNE then means one parallel call per core
    and a prefetch buffer of one batch, plenty for a pipeline that gathers from memory."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def channel_stats(images):
    """Exact per-channel mean and std of uint8 images from each channel's 256-bin value counts
    (fast, and never a float copy of the whole set)."""
    levels = np.arange(256, dtype=np.float64)
    mean, std = [], []
    for c in range(images.shape[-1]):
        counts = np.bincount(images[..., c].ravel(), minlength=256).astype(np.float64)
        m = counts @ levels / counts.sum()
        mean.append(m)
        std.append(np.sqrt(counts @ (levels - m) ** 2 / counts.sum()))
    # A constant channel (all-black borders, a test fixture) must not divide by zero.
    return np.float32(mean), np.maximum(np.float32(std), 1e-3)
