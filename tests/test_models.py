"""ActivationSummaries on every kind of Keras model: subclassed models, custom layers holding
layers, a Sequential inside a subclassed model, shared layers, dict, (x, y) and Dataset probes,
int inputs, mixed precision. Each trains a few steps; what it logged is read back from the event
files and compared with the layers' outputs computed directly."""
import numpy as np
import pytest

from avh_app.cli import import_tensorflow

tf, keras = import_tensorflow()

from avh.events import read_events  # noqa: E402
from avh.summaries import ActivationSummaries  # noqa: E402
from avh.tags import HISTOGRAM_TAG, MOMENT_TAG, PLOT_TAG, STAT_TAG  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 12)).astype("float32")
Y = RNG.integers(0, 3, 40)


def fit(model, log_dir, x=X, y=Y, probe=None, **kwargs):
    """model.fit as a user writes it, 2 epochs of 5 steps, with the one callback every 4 steps."""
    keras.utils.set_random_seed(0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    summaries = ActivationSummaries(x[:16] if probe is None else probe, log_dir=log_dir,
                                    every=4, **kwargs)
    model.fit(x, y, epochs=2, batch_size=8, callbacks=[summaries], verbose=0)
    return summaries, read_events(log_dir)


def assert_logged_as(events, tag, expected, steps=(0, 4, 8, 10)):
    """`tag`'s histograms and stats at every step, and at the last step those of `expected`."""
    histograms = events[HISTOGRAM_TAG.format(layer=tag)]
    assert [s for s, _ in histograms] == list(steps), tag
    expected = np.asarray(expected, np.float32).ravel()
    assert histograms[-1][1][:, 2].sum() == expected.size
    assert histograms[-1][1][0, 0] == pytest.approx(expected.min(), abs=1e-5)
    mean = float(events[STAT_TAG.format(layer=tag, stat="mean")][-1][1])
    std = float(events[STAT_TAG.format(layer=tag, stat="std")][-1][1])
    zeros = float(events[STAT_TAG.format(layer=tag, stat="nonpositive_fraction")][-1][1])
    assert mean == pytest.approx(expected.mean(), abs=1e-5), tag
    assert std == pytest.approx(expected.std(), rel=1e-4), tag
    assert zeros == pytest.approx((expected <= 0).mean(), abs=1e-6), tag


class Block(keras.layers.Layer):
    """A custom layer holding layers: Dense -> Activation, its Dense named `dense` in every block."""

    def __init__(self, units, activation, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(units, name="dense")
        self.act = keras.layers.Activation(activation, name="act")

    def call(self, x):
        return self.act(self.dense(x))


class Net(keras.Model):
    """A subclassed model as keras-io writes them: layers in __init__, used in call()."""

    def __init__(self):
        super().__init__(name="net")
        self.hidden = keras.layers.Dense(16, activation="selu", kernel_initializer="lecun_normal",
                                         name="hidden")
        self.block_1 = Block(8, "relu", name="block_1")
        self.block_2 = Block(8, "tanh", name="block_2")
        self.out = keras.layers.Dense(3, activation="softmax", name="out")

    def call(self, x):
        return self.out(self.block_2(self.block_1(self.hidden(x))))


def test_subclassed_model_with_blocks_logs_every_activation_by_its_path(tmp_path):
    model = Net()
    summaries, events = fit(model, tmp_path, figure_layers=["block_1/act"])
    # Call order; the blocks' layers share names, so their tags are qualified by the block.
    assert [tag for tag, _ in summaries.layers] == [
        "hidden", "block_1/act", "block_2/act", "out"]
    x = X[:16]
    h = model.hidden(x)
    a1 = model.block_1.act(model.block_1.dense(h))
    a2 = model.block_2(a1)
    for tag, expected in (("hidden", h), ("block_1/act", a1), ("block_2/act", a2),
                          ("out", model(x))):
        assert_logged_as(events, tag, expected)
    assert events[PLOT_TAG.format(layer="block_1/act", kind="map")][-1][0] == 10
    # The paper's moments where a kernel feeds the activation: the fused Dense(activation=...)
    # and the blocks' Activation after their Dense (omega is the kernel's, read back exactly).
    omega = float(events[MOMENT_TAG.format(layer="block_1/act", stat="omega")][-1][1])
    assert omega == pytest.approx(model.block_1.dense.kernel.numpy().sum(0).mean(), abs=1e-5)
    tau = float(events[MOMENT_TAG.format(layer="hidden", stat="tau")][-1][1])
    assert tau == pytest.approx(np.square(model.hidden.kernel.numpy()).sum(0).mean(), rel=1e-5)
    assert MOMENT_TAG.format(layer="hidden", stat="predicted_std") in events  # SELU: predicted


def test_custom_block_inside_a_functional_model(tmp_path):
    inputs = keras.Input((12,))
    x = Block(8, "relu", name="first")(inputs)
    x = Block(8, "elu", name="second")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(x))
    summaries, events = fit(model, tmp_path, numbered=True)
    assert [tag for tag, _ in summaries.layers] == ["1_first/act", "2_second/act", "3_head"]
    first = model.get_layer("first")
    a1 = first.act(first.dense(X[:16]))
    assert_logged_as(events, "1_first/act", a1)
    assert_logged_as(events, "2_second/act", model.get_layer("second")(a1))


def test_subclassed_model_holding_a_sequential(tmp_path):
    class Wrapper(keras.Model):
        def __init__(self):
            super().__init__(name="wrapper")
            self.body = keras.Sequential([keras.layers.Dense(10, activation="relu", name="d1"),
                                          keras.layers.Dense(6, activation="gelu", name="d2")],
                                         name="body")
            self.head = keras.layers.Dense(3, activation="softmax", name="head")

        def call(self, x):
            return self.head(self.body(x))

    model = Wrapper()
    summaries, events = fit(model, tmp_path)
    assert [tag for tag, _ in summaries.layers] == ["d1", "d2", "head"]
    d1 = model.body.layers[0](X[:16])
    assert_logged_as(events, "d1", d1)
    assert_logged_as(events, "d2", model.body.layers[1](d1))


def test_a_layer_called_twice_logs_each_call_under_its_own_tag(tmp_path):
    class Twice(keras.Model):
        def __init__(self):
            super().__init__(name="twice")
            self.shared = keras.layers.Dense(12, activation="tanh", name="shared")
            self.head = keras.layers.Dense(3, activation="softmax", name="head")

        def call(self, x):
            return self.head(self.shared(self.shared(x)))

    model = Twice()
    summaries, events = fit(model, tmp_path)
    assert [tag for tag, _ in summaries.layers] == ["shared", "shared@2", "head"]
    once = model.shared(X[:16])
    assert_logged_as(events, "shared", once)
    assert_logged_as(events, "shared@2", model.shared(once))


def test_dict_inputs_and_a_dataset_probe(tmp_path):
    inputs = {"image": keras.Input((6,), name="image"), "meta": keras.Input((3,), name="meta")}
    x = keras.layers.Concatenate()([keras.layers.Dense(8, activation="relu", name="img")(inputs["image"]),
                                    inputs["meta"]])
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(x))
    data = {"image": X[:, :6], "meta": X[:, 6:9]}
    probe = tf.data.Dataset.from_tensor_slices(({k: v[:16] for k, v in data.items()}, Y[:16])).batch(16)
    summaries, events = fit(model, tmp_path, x=data, probe=probe)
    assert_logged_as(events, "img", model.get_layer("img")(data["image"][:16]))
    wrong = ActivationSummaries({"image": X[:4, :6]}, log_dir=tmp_path / "wrong")
    with pytest.raises(ValueError, match=r"probe_batch must be a dict with the keys \['image', "
                                         r"'meta'\]"):
        wrong.set_model(model)


def test_an_int_input_text_model_and_an_x_y_probe(tmp_path):
    tokens = RNG.integers(1, 50, size=(40, 7))
    model = keras.Sequential([keras.Input((7,), dtype="int32"),
                              keras.layers.Embedding(50, 8, name="embed"),
                              keras.layers.LSTM(6, name="lstm"),
                              keras.layers.Dense(3, activation="softmax", name="head")])
    summaries, events = fit(model, tmp_path, x=tokens, probe=(tokens[:16], Y[:16]))
    assert [tag for tag, _ in summaries.layers] == ["lstm", "head"]
    lstm = keras.Model(model.inputs[0], model.get_layer("lstm").output)
    assert_logged_as(events, "lstm", lstm(tokens[:16]))


def test_a_subclassed_model_under_mixed_precision_logs_float32(tmp_path):
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = Net()
        _, events = fit(model, tmp_path)
    finally:
        keras.config.set_dtype_policy("float32")
    _, mean = events[STAT_TAG.format(layer="block_2/act", stat="mean")][-1]
    assert mean.dtype == np.float32 and np.isfinite(mean)


def test_layers_without_moments_are_named_in_one_line(tmp_path, capsys):
    inputs = keras.Input((12,))
    x = keras.layers.Dense(8, name="d")(inputs)
    x = keras.layers.Activation("relu", name="after_dense")(x)
    skip = keras.layers.Add(name="add")([x, keras.layers.Dense(8, name="e")(inputs)])
    x = keras.layers.Activation("relu", name="after_add")(skip)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(x))
    model.compile(loss="sparse_categorical_crossentropy")
    summaries = ActivationSummaries((X[:16], Y[:16]), log_dir=tmp_path)
    summaries.set_model(model)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["avh: no moments for 1 of 3 logged layers (after_add: its input does not "
                   "come from a Dense or Conv layer)"]
    assert set(summaries.feeds) == {"after_dense", "head"}


def test_the_recording_leaves_the_model_and_its_training_alone(tmp_path):
    """Same seed, with and without the callback (gradients and moments on): the same weights
    after training, the same predictions, and keras.layers.Layer.__call__ put back."""
    original_call = keras.layers.Layer.__call__

    def trained(callbacks):
        keras.utils.set_random_seed(0)
        model = Net()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        history = model.fit(X, Y, epochs=2, batch_size=8, callbacks=callbacks, verbose=0)
        return model, history.history["loss"]

    plain, plain_loss = trained([])
    watched, watched_loss = trained(
        [ActivationSummaries((X[:16], Y[:16]), log_dir=tmp_path, every=4,
                             figure_layers=["block_1/act"])])
    assert keras.layers.Layer.__call__ is original_call
    assert watched_loss == pytest.approx(plain_loss, rel=1e-6)
    for a, b in zip(plain.get_weights(), watched.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(watched.predict(X, verbose=0), plain.predict(X, verbose=0),
                               rtol=1e-6, atol=1e-7)
    assert HISTOGRAM_TAG.format(layer="block_1/act") in read_events(tmp_path)  # it did log
