"""How often a run logs its loss and accuracy curves, so that any run length gives curves worth
looking at: ~50 train points, and ~10 test points on the first test images.

The full test set stays where it was (epoch ends and the last step: train.py, metrics.json).
"""
import math

import keras
import numpy as np
import tensorflow as tf

from avh import DEFAULT_EVERY, summary_values
from avh.steps import StepCallback
from avh.tags import TEST_SUBSET_TAG

TRAIN_POINTS = 50    # train loss/accuracy points per run, at least
TEST_POINTS = 10     # test-subset evaluations per run, and one more at the last step
# The subset: the first N test images, N = training images of the run / 200, within [100, 1000].
# Measured here, an image's forward pass costs ~0.3 of a training step's share per image, so the
# evaluations cost ~1.5% of the run's time; runs with the same flags use the same subset.
TRAIN_IMAGES_PER_TEST_IMAGE = 200
EVAL_SUBSET_MIN, EVAL_SUBSET_MAX = 100, 1000


def train_log_every(summary_every, total_steps):
    """Steps between train loss/accuracy points: `summary_every` (DEFAULT_EVERY when 0), or
    less so that the run has TRAIN_POINTS of them."""
    return max(1, min(summary_every or DEFAULT_EVERY, total_steps // TRAIN_POINTS))


def eval_subset_size(total_steps, batch_size):
    """How many of the first test images the test_subset/* evaluations use."""
    return min(EVAL_SUBSET_MAX, max(EVAL_SUBSET_MIN,
                                    total_steps * batch_size // TRAIN_IMAGES_PER_TEST_IMAGE))


def test_eval_every(total_steps):
    """Steps between test-subset evaluations: TEST_POINTS of them over the run."""
    return max(1, math.ceil(total_steps / TEST_POINTS))


class SubsetEvaluation(StepCallback):
    """Every `every` steps, the model's loss and accuracy on a fixed subset of the test set (in
    inference mode, one forward pass), logged under test_subset/*.

    Its size (eval_subset_size) keeps all evaluations of a run at ~1.5% of its time. `known`
    (step -> the model's outputs on the subset's first images at that step, or None) spares
    those images the forward pass: the app's probe batch is the first test images, and at a
    summary step the probe has just scored them. The scoring and the forward pass are traced
    when this is made, for any number of images, so that no evaluation inside the timed steps
    pays for a trace."""

    def __init__(self, model, images, labels, every, known=None):
        super().__init__()
        self.set_model(model)
        self.images = tf.convert_to_tensor(images)
        self.labels = tf.convert_to_tensor(labels)
        self.every = every
        self.known = known
        self.logged_step = None
        any_size = lambda t: tf.TensorSpec((None, *t.shape[1:]), t.dtype)
        labels_spec = any_size(self.labels)
        self._score = tf.function(_sums).get_concrete_function(
            tf.TensorSpec((None, None), tf.float32), labels_spec)
        self._measure = tf.function(
            lambda x, y: _sums(model(x, training=False), y)).get_concrete_function(
            any_size(self.images), labels_spec)

    def on_step_end(self, step):
        if step % self.every == 0:
            self.log(step)

    def log(self, step):
        """Evaluate and log at `step` (once per step); returns {"loss", "accuracy"}."""
        if step == self.logged_step:
            return None
        n = int(self.labels.shape[0])
        known = None if self.known is None else self.known(step)
        k = 0 if known is None else min(n, len(known))
        parts = [self._score(np.asarray(known[:k], np.float32), self.labels[:k])] if k else []
        if k < n:
            parts.append(self._measure(self.images[k:], self.labels[k:]))
        loss = sum(float(part_loss) for part_loss, _ in parts) / n
        accuracy = sum(int(part_hits) for _, part_hits in parts) / n
        log_metrics(TEST_SUBSET_TAG, {"loss": loss, "accuracy": accuracy}, step)
        self.logged_step = step
        return {"loss": loss, "accuracy": accuracy}


def log_metrics(tag, values, step):
    """{metric: value} as float32 scalars under `tag` (formatted with the metric's name) at
    `step`, in one write: as tf.summary.scalar would write each, without its eager ops (~0.5-1 ms
    a scalar on the training thread here)."""
    summary_values.write(step, [summary_values.scalar(tag.format(metric=metric), value)
                                for metric, value in values.items()])


def _sums(logits, labels):
    """The summed cross-entropy and number of correct predictions of `logits` for `labels`."""
    logits = tf.cast(logits, tf.float32)
    loss = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    hits = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), tf.cast(labels, tf.int32))
    return tf.reduce_sum(loss), tf.reduce_sum(tf.cast(hits, tf.int32))

