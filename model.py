"""The networks: the CNN of train.py (three 5x5/stride-2 conv layers, two fully-connected layers
and linear logits), and the deep fully-connected stack of the depth sweep.

Layers are numbered 1-6 here, once, for logs, flags and docs. Nothing here knows about data or
logging, and importing it does not import TensorFlow (the layer names are read by light tools).
"""
import ops

# Layer k (1-based) is LAYERS[k - 1]; its TensorBoard tag is `layer_tag(k)`, e.g. "3_conv3".
LAYERS = ("conv1", "conv2", "conv3", "fc4", "fc5", "logits")
# The layers drawn as figures unless told otherwise: the last conv and the first fully-connected
# layer, where the 2017 app looked.
PLOT_LAYERS = (3, 4)


def layer_tag(k):
    return f"{k}_{LAYERS[k - 1]}"


def build_model(image_shape, num_classes, filters, activation, norm, init, dropout_kind,
                dropout_rate):
    """A functional Keras model whose six numbered layers are named by LAYERS.

    `norm`, `init` and `dropout_kind` are concrete values (see ops.resolve). Each hidden layer is
    linear -> [batch norm] -> activation; dropout follows the two fully-connected layers only,
    and the logits get no activation (softmax lives in the loss). Weights and dropout masks
    draw from Keras' global seed (keras.utils.set_random_seed), so a seed fixes the whole run.
    """
    import keras

    use_bn = norm == "batch"

    def hidden(x, linear, name):
        x = linear(x)
        if use_bn:
            x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
        return ops.activation_layer(activation, layer_name=name)(x)

    inputs = keras.Input(shape=image_shape, name="image")
    x = inputs
    for name, width in zip(LAYERS[:3], filters):
        conv = keras.layers.Conv2D(width, 5, strides=2, padding="same", use_bias=not use_bn,
                                   kernel_initializer=ops.initializer(init),
                                   name=f"{name}_conv")
        x = hidden(x, conv, name)
    x = keras.layers.Flatten(name="flatten")(x)
    for name, width in zip(LAYERS[3:5], (16 * num_classes, 4 * num_classes)):
        dense = keras.layers.Dense(width, use_bias=not use_bn,
                                   kernel_initializer=ops.initializer(init),
                                   name=f"{name}_dense")
        x = hidden(x, dense, name)
        if dropout_rate > 0:
            x = ops.dropout(dropout_kind, dropout_rate, name=f"{name}_dropout")(x)
    logits = keras.layers.Dense(num_classes, kernel_initializer=ops.initializer(init),
                                dtype="float32", name=LAYERS[5])(x)
    return keras.Model(inputs, logits, name="avh_cnn")


def build_deep_fc(image_shape, num_classes, depth, width, activation, norm, init, dropout_kind,
                  dropout_rate):
    """The depth sweep's network (the paper's Figure 1): Flatten, `depth` hidden layers
    (Dense -> [batch norm] -> activation -> dropout) named dense1..denseD / act1..actD, and
    linear logits."""
    import keras

    x = inputs = keras.Input(shape=image_shape, name="image")
    x = keras.layers.Flatten()(x)
    for i in range(1, depth + 1):
        x = keras.layers.Dense(width, kernel_initializer=ops.initializer(init),
                               use_bias=norm != "batch", name=f"dense{i}")(x)
        if norm == "batch":
            x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = ops.activation_layer(activation, layer_name=f"act{i}")(x)
        if dropout_rate > 0:
            x = ops.dropout(dropout_kind, dropout_rate, name=f"drop{i}")(x)
    logits = keras.layers.Dense(num_classes, kernel_initializer=ops.initializer(init),
                                name="logits")(x)
    return keras.Model(inputs, logits, name=f"fc{depth}")
