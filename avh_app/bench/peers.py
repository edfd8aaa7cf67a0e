"""What users would add to model.fit instead of avh, for the benchmark: Keras' own TensorBoard
callback, and the activation-histogram callback of the widely copied answers."""
import keras
import tensorflow as tf

from avh import DEFAULT_EVERY


def keras_tensorboard(log_dir):
    return keras.callbacks.TensorBoard(log_dir=str(log_dir), histogram_freq=1)


class HandwrittenHistograms(keras.callbacks.Callback):
    """Every `every` steps, a multi-output probe model of the named layers and one
    tf.summary.histogram each, on the probe batch: as the answers to "log activation histograms
    in Keras" write it (it needs the functional API, and a batch-end hook: a host sync a step)."""

    def __init__(self, images, layer_names, log_dir, every=DEFAULT_EVERY):
        super().__init__()
        self.images, self.layer_names, self.every, self.step = images, layer_names, every, 0
        self.writer = tf.summary.create_file_writer(str(log_dir))

    def set_model(self, model):
        super().set_model(model)
        self.layers = [model.get_layer(name) for name in self.layer_names]
        self.probe = keras.Model(model.inputs, [layer.output for layer in self.layers])

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.every == 0:
            outputs = self.probe(self.images, training=False)
            with self.writer.as_default():
                for layer, output in zip(self.layers, outputs):
                    tf.summary.histogram(layer.name, output, step=self.step)
