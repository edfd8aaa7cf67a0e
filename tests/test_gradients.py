"""The backward signal: the gradients ActivationSummaries logs, read back from the event files, equal
a direct tf.GradientTape computation on the probe batch; a dead ReLU path shows as exact zeros; the
update-to-weight ratio equals the one computed from the weights saved at the summary steps."""
import numpy as np
import pytest

from avh_app.cli import import_tensorflow

tf, keras = import_tensorflow()

from avh.events import read_events  # noqa: E402
from avh.steps import StepCallback  # noqa: E402
from avh.summaries import ActivationSummaries  # noqa: E402
from avh.tags import GRADIENT_STAT_TAG, GRADIENT_TAG, WEIGHT_TAG  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.normal(size=(48, 10)).astype("float32")
Y = RNG.integers(0, 3, 48)
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def stack(dead=False):
    """tanh -> [Dense -> ReLU] -> logits; `dead`: the ReLU's bias far below zero, so it never fires."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((10,))
    x = keras.layers.Activation("tanh", name="tanh")(keras.layers.Dense(12, name="d0")(inputs))
    d1 = keras.layers.Dense(8, name="d1", bias_initializer=keras.initializers.Constant(-1e3 if dead else 0))
    x = keras.layers.ReLU(name="relu")(d1(x))
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=LOSS)
    return model


class Weights(StepCallback):
    """The kernels at every step, as the summaries see them."""

    def __init__(self):
        super().__init__()
        self.at = {}

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.at[0] = {layer.name: layer.kernel.numpy() for layer in self.model.layers
                      if hasattr(layer, "kernel")}

    def on_step_end(self, step):
        self.at[step] = {layer.name: layer.kernel.numpy() for layer in self.model.layers
                         if hasattr(layer, "kernel")}


def train(model, log_dir, **kwargs):
    weights = Weights()
    summaries = ActivationSummaries(X[:16], probe_labels=Y[:16], log_dir=log_dir, every=3,
                                    **kwargs)
    model.fit(X, Y, epochs=1, batch_size=8, callbacks=[weights, summaries], verbose=0)
    return summaries, weights, read_events(log_dir)


def direct_gradients(model, names):
    """{layer: dL/d(its output)} and {layer: dL/d(its kernel)} on the probe batch, inference mode."""
    probe = keras.Model(model.inputs[0], [model.get_layer(n).output for n in names] + [model.output])
    with tf.GradientTape() as tape:
        *outputs, logits = probe(X[:16], training=False)
        loss = LOSS(Y[:16], logits)
    kernels = [layer.kernel for layer in model.layers if hasattr(layer, "kernel")]
    grads = tape.gradient(loss, outputs + kernels)
    return (dict(zip(names, (g.numpy() for g in grads))),
            {layer.name: g.numpy() for layer, g in zip([l for l in model.layers if hasattr(l, "kernel")],
                                                        grads[len(names):])})


def test_logged_gradients_equal_a_direct_gradient_tape(tmp_path):
    model = stack()
    summaries, _, events = train(model, tmp_path)
    assert [tag for tag, _ in summaries.layers] == ["tanh", "relu"]
    outputs, kernels = direct_gradients(model, ["tanh", "relu"])
    for tag, gradient in outputs.items():
        steps = [s for s, _ in events[GRADIENT_TAG.format(layer=tag)]]
        assert steps == [0, 3, 6]  # 6 steps: 0, every 3 and the last
        _, buckets = events[GRADIENT_TAG.format(layer=tag)][-1]
        assert buckets[:, 2].sum() == gradient.size
        assert buckets[0, 0] == pytest.approx(gradient.min(), rel=1e-4, abs=1e-9)
        value = lambda stat: float(events[GRADIENT_STAT_TAG.format(layer=tag, stat=stat)][-1][1])
        assert value("std") == pytest.approx(gradient.std(), rel=1e-4)
        assert value("rms") == pytest.approx(np.sqrt(np.mean(gradient ** 2)), rel=1e-4)
        assert value("zero_fraction") == pytest.approx(np.mean(gradient == 0), abs=1e-6)
    # A kernel takes the tag of the logged layer it feeds (d0 -> tanh, d1 -> relu), else its own.
    for tag, layer in (("tanh", "d0"), ("relu", "d1"), ("logits", "logits")):
        norm = float(events[WEIGHT_TAG.format(layer=tag, stat="gradient_norm")][-1][1])
        assert norm == pytest.approx(np.linalg.norm(kernels[layer]), rel=1e-4)


def test_a_dead_relu_path_shows_as_exact_zeros(tmp_path):
    _, _, events = train(stack(dead=True), tmp_path)
    # Nothing flows back through a ReLU that never fires: the layer feeding it gets no gradient.
    zeros = [float(v) for _, v in events[GRADIENT_STAT_TAG.format(layer="tanh", stat="zero_fraction")]]
    assert zeros == [1.0, 1.0, 1.0]
    live = float(events[GRADIENT_STAT_TAG.format(layer="relu", stat="zero_fraction")][-1][1])
    assert live < 0.5  # the ReLU's own output still has a gradient: its outputs reach the logits


def test_the_update_ratio_is_that_of_the_saved_weights(tmp_path):
    _, weights, events = train(stack(), tmp_path)
    ratios = events[WEIGHT_TAG.format(layer="relu", stat="update_ratio")]
    assert [s for s, _ in ratios] == [3, 6]  # none at step 0: no summary step before it
    for (step, ratio), before in zip(ratios, (0, 3)):
        w, w_prev = weights.at[step]["d1"], weights.at[before]["d1"]
        assert float(ratio) == pytest.approx(np.linalg.norm(w - w_prev) / np.linalg.norm(w_prev),
                                             rel=1e-4)


def test_without_labels_or_turned_off_there_are_no_gradients(tmp_path, capsys):
    model = stack()
    summaries = ActivationSummaries(X[:16], log_dir=tmp_path / "no-labels", every=3)
    model.fit(X, Y, epochs=1, batch_size=8, callbacks=[summaries], verbose=0)
    assert "avh: no gradients for model 'functional" in capsys.readouterr().err
    assert not [t for t in read_events(tmp_path / "no-labels") if t.startswith("gradient")]
    summaries = ActivationSummaries((X[:16], Y[:16]), log_dir=tmp_path / "off", every=3,
                                    gradients=False)
    model.fit(X, Y, epochs=1, batch_size=8, callbacks=[summaries], verbose=0)
    assert not [t for t in read_events(tmp_path / "off") if t.startswith(("gradient", "weights"))]


def test_gradients_under_mixed_precision_are_float32(tmp_path):
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = stack()
        _, _, events = train(model, tmp_path)
    finally:
        keras.config.set_dtype_policy("float32")
    _, std = events[GRADIENT_STAT_TAG.format(layer="relu", stat="std")][-1]
    assert std.dtype == np.float32 and 0 < float(std) < 1


def test_a_large_kernels_update_ratio_is_measured_on_a_fixed_sample_of_it(tmp_path):
    """A kernel of more than UPDATE_SAMPLE values keeps only a sample between summary steps (the
    callback holds no copy of the weights); its ratio is within 2% of the whole kernel's, from
    the weights saved at the summary steps."""
    from avh import summaries as summaries_module

    keras.utils.set_random_seed(2)
    x = RNG.normal(size=(64, 400)).astype("float32")
    y = RNG.integers(0, 3, 64)
    inputs = keras.Input((400,))
    h = keras.layers.ReLU(name="relu")(keras.layers.Dense(200, name="big")(inputs))  # 80,000 values
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(h))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=LOSS)
    weights = Weights()
    summaries = ActivationSummaries(x[:16], probe_labels=y[:16], log_dir=tmp_path, every=4)
    model.fit(x, y, epochs=1, batch_size=8, callbacks=[weights, summaries], verbose=0)
    kept = {s.size: s.previous.shape.num_elements() for s in summaries._previous_kernels.values()}
    assert kept == {80_000: summaries_module.UPDATE_SAMPLE, 600: 600}
    ratios = read_events(tmp_path)[WEIGHT_TAG.format(layer="relu", stat="update_ratio")]
    assert [s for s, _ in ratios] == [4, 8]
    for step, ratio in ratios:
        w, w_prev = weights.at[step]["big"], weights.at[step - 4]["big"]
        exact = np.linalg.norm(w - w_prev) / np.linalg.norm(w_prev)
        assert float(ratio) == pytest.approx(exact, rel=0.02)
