"""ActivationSummaries on models this project did not write: each gets its histograms and stats,
read back from the event files; bad input gets a clear error."""
import gc
import os
import tempfile
import threading
import weakref

import numpy as np
import pytest

from avh_app.cli import import_tensorflow

tf, keras = import_tensorflow()

from avh.events import read_events  # noqa: E402
from avh.steps import StepCallback, overrides_batch_end  # noqa: E402
from avh.signal import HISTOGRAM_BUCKETS, histogram_buckets, histogram_parts  # noqa: E402
import avh.summaries  # noqa: E402
from avh import memory  # noqa: E402
from avh.summaries import ActivationSummaries  # noqa: E402
from avh.tags import (HISTOGRAM_TAG, MOMENT_MAP_TAG, MOMENT_STATS, MOMENT_TAG, PLOT_TAG,  # noqa: E402
                      STAT_TAG, STATS)


def fit_with_summaries(model, x, y, log_dir, epochs=2, batch_size=8, **kwargs):
    """model.fit as a user would write it, plus the one callback."""
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    summaries = ActivationSummaries(x[:16], log_dir=log_dir, **kwargs)
    model.fit(x, y, epochs=epochs, batch_size=batch_size, callbacks=[summaries], verbose=0)
    return summaries, read_events(log_dir)  # all on disk when fit returns, figures included


def assert_logged(events, layer, steps):
    histograms = events[HISTOGRAM_TAG.format(layer=layer)]
    assert [s for s, _ in histograms] == steps
    for stat in STATS:
        assert [s for s, _ in events[STAT_TAG.format(layer=layer, stat=stat)]] == steps
    return histograms


def mnist_convnet():
    """The Keras docs' simple MNIST convnet (keras.io/examples/vision/mnist_convnet), with the
    layer names a fresh script gets."""
    keras.utils.clear_session()
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        keras.layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(10, activation="softmax"),
    ])


def test_keras_docs_convnet_gets_every_activation_layer_every_n_steps(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, 48)
    model = mnist_convnet()
    summaries, events = fit_with_summaries(model, x, y, tmp_path, every=4)
    # 6 steps an epoch, 2 epochs: step 0, every 4th, and the last.
    assert [tag for tag, _ in summaries.layers] == ["conv2d", "conv2d_1", "dense"]
    for layer in ("conv2d", "conv2d_1", "dense"):
        assert_logged(events, layer, [0, 4, 8, 12])
    # The histogram holds every probe value: 16 images x 26 x 26 x 32 channels.
    _, buckets = events[HISTOGRAM_TAG.format(layer="conv2d")][-1]
    assert buckets.shape == (HISTOGRAM_BUCKETS, 3) and buckets[:, 2].sum() == 16 * 26 * 26 * 32
    # The stats are those of the layer's real output on the probe batch at the last step.
    probe = keras.Model(model.inputs[0], model.get_layer("conv2d").output)
    out = probe(x[:16], training=False).numpy()
    (_, mean), = events[STAT_TAG.format(layer="conv2d", stat="mean")][-1:]
    (_, zeros), = events[STAT_TAG.format(layer="conv2d", stat="nonpositive_fraction")][-1:]
    assert float(mean) == pytest.approx(out.mean(), rel=1e-4)
    assert float(zeros) == pytest.approx((out <= 0).mean(), abs=1e-6)


@pytest.mark.parametrize("kept_in", ["a temporary file", "memory"])
def test_step_0_is_the_initial_weights_and_training_goes_on_from_its_own(tmp_path, monkeypatch,
                                                                         kept_in):
    """Step 0 is logged after the first step, from the initial weights put back for it (batch
    norm's moving statistics too); the fit then goes on exactly as it would without the callback.
    The weights put aside wait in temporary files, or in memory if none can be written."""
    files = []

    def temporary_file(**options):
        if kept_in == "memory":
            raise OSError(28, "No space left on device")
        files.append(real_temporary_file(**options))
        return files[-1]
    real_temporary_file = tempfile.TemporaryFile
    monkeypatch.setattr(avh.summaries.tempfile, "TemporaryFile", temporary_file)

    def model():
        keras.utils.set_random_seed(4)
        inputs = keras.Input(shape=(6,))
        x = keras.layers.Dense(12, name="d1")(inputs)
        x = keras.layers.BatchNormalization(name="bn")(x)
        x = keras.layers.Activation("selu", name="act")(x)
        return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(x))

    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(48, 6)).astype("float32"), rng.integers(0, 3, 48)
    plain = model()
    initial = plain.get_weights()
    plain.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    plain.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)

    probed = model()
    probed.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    summaries = ActivationSummaries(x[:16], log_dir=tmp_path, every=4, layers=["act"])
    probed.fit(x, y, epochs=2, batch_size=8, shuffle=False, callbacks=[summaries], verbose=0)
    if kept_in == "a temporary file":  # the initial weights, the trained ones during step 0
        assert len(files) == 2 and all(file.closed for file in files)
    for trained, expected in zip(probed.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(trained, expected, rtol=1e-6, atol=1e-7)

    at_init = model()
    at_init.set_weights(initial)
    out = keras.Model(at_init.inputs, at_init.get_layer("act").output)(x[:16], training=False).numpy()
    events = read_events(tmp_path)
    (step, mean), = events[STAT_TAG.format(layer="act", stat="mean")][:1]
    (_, std), = events[STAT_TAG.format(layer="act", stat="std")][:1]
    assert step == 0
    assert float(mean) == pytest.approx(out.mean(), abs=1e-6) and float(std) == pytest.approx(out.std(), rel=1e-5)


def test_probe_predictions_are_the_models_outputs_at_the_logged_step_only(tmp_path):
    """keep_predictions: the probe's outputs (inference mode: the Dropout layer is off) of the
    last event, for its step and no other; step 0's from the initial weights. Without it nothing
    is kept."""
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(40, 5)).astype("float32"), rng.integers(0, 3, 40)

    class Last(StepCallback):  # runs after the summaries, at the same step ends
        def on_step_end(self, step):
            seen[step] = ([kept.probe_predictions(s) for s in range(step + 1)],
                          self.model(x[:16], training=False).numpy())

    keras.utils.set_random_seed(6)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dropout(0.5), keras.layers.Dense(3)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    seen = {0: (None, model(x[:16], training=False).numpy())}
    kept = ActivationSummaries((x[:16], y[:16]), log_dir=tmp_path / "kept", every=2,
                               keep_predictions=True)
    model.fit(x, y, epochs=1, batch_size=8, shuffle=False, callbacks=[kept, Last()], verbose=0)
    assert sorted(seen) == [0, 1, 2, 3, 4, 5]
    for step in range(1, 6):
        known, _ = seen[step]
        last_event = step - step % 2  # step 0 is logged at the first step's end
        assert [s for s, outputs in enumerate(known) if outputs is not None] == [last_event]
        np.testing.assert_allclose(known[last_event], seen[last_event][1], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(kept.probe_predictions(5), seen[5][1], rtol=1e-6, atol=1e-6)  # at the fit's end
    plain = ActivationSummaries(x[:16], log_dir=tmp_path / "plain", every=2)
    model.fit(x, y, epochs=1, batch_size=8, shuffle=False, callbacks=[plain], verbose=0)
    assert plain.last_step == 10 and plain.probe_predictions(10) is None


def test_two_callbacks_with_folders_of_their_own_log_side_by_side(tmp_path):
    """Each callback's writer is entered around its own events only: two of them in one fit (a
    tf.summary writer scope left out of order used to crash the second at the fit's end, after
    writing its last step nowhere), and no writer is left behind as the default."""
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(40, 5)).astype("float32"), rng.integers(0, 3, 40)
    keras.utils.set_random_seed(8)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu", name="a"),
                              keras.layers.Dense(3, activation="softmax", name="b")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    first = ActivationSummaries(x[:16], log_dir=tmp_path / "first", every=2, layers=["a"])
    second = ActivationSummaries(x[:16], log_dir=tmp_path / "second", every=3, layers=["b"])
    left_behind = []

    def fit():  # on a thread of its own: no default writer there but what the fit leaves
        model.fit(x, y, epochs=1, batch_size=8, callbacks=[first, second], verbose=0)
        left_behind.append(bool(tf.summary.should_record_summaries()))

    thread = threading.Thread(target=fit)
    thread.start()
    thread.join()
    assert_logged(read_events(tmp_path / "first"), "a", [0, 2, 4, 5])
    assert_logged(read_events(tmp_path / "second"), "b", [0, 3, 5])
    assert left_behind == [False]  # the fit ran to its end and left no default writer


class _Garbage:
    """An object in a reference cycle: only the garbage collector frees it."""
    def __init__(self):
        self.me = self


def test_the_heap_is_frozen_for_a_fit_only_and_a_freeze_of_the_users_is_left_alone(tmp_path):
    """From the end of the first step to the end of the fit the garbage collector's objects are
    frozen (gc.freeze: a full collection then does not scan the heap that was there before; the
    figures' making set one off, ~0.25 s of a stalled GIL in the app), so cyclic garbage from
    before stays until the fit ends and is collected after it. A fit that never ended is undone
    by the next fit; objects frozen by someone else stay frozen."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(40, 5)).astype("float32"), rng.integers(0, 3, 40)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu", name="a"),
                              keras.layers.Dense(3, activation="softmax", name="b")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    garbage = [_Garbage()]
    alive = weakref.ref(garbage[0])
    frozen, collected_in_fit = [], []

    class Watch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            frozen.append(gc.get_freeze_count())
            if batch == 2:
                garbage.clear()  # garbage now, but frozen: a collection leaves it
                gc.collect()
                collected_in_fit.append(alive() is None)

    class Interrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                raise KeyboardInterrupt

    assert gc.get_freeze_count() == 0
    try:
        fit = lambda *extra: model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[
            ActivationSummaries(x[:16], log_dir=tmp_path / "logs", every=2), *extra])
        fit(Watch())
        assert frozen[0] == 0 and all(count > 0 for count in frozen[1:])  # from step 1's end on
        assert collected_in_fit == [False]
        assert gc.get_freeze_count() == 0
        gc.collect()
        assert alive() is None  # collectable again after the fit
        with pytest.raises(KeyboardInterrupt):
            fit(Interrupt())
        assert gc.get_freeze_count() > 0  # left frozen: no on_train_end
        frozen.clear()
        fit(Watch())
        assert frozen[0] == 0 and gc.get_freeze_count() == 0  # undone at the next fit's start
        gc.freeze()  # the user's own
        users = gc.get_freeze_count()
        fit()
        assert 0 < gc.get_freeze_count() <= users  # neither unfrozen nor frozen again (frees shrink it)
    finally:
        gc.unfreeze()


@pytest.mark.skipif(memory.MALLOC_TRIM is None, reason="malloc_trim is glibc's (Linux)")
def test_each_event_gives_the_memory_it_freed_back_to_the_system(tmp_path, monkeypatch):
    """glibc keeps freed heap blocks for reuse, resident: ~190 MB of 64-kB blocks freed below one
    still in use stay in the process's memory until memory.release_freed hands their pages back.
    Every event calls it once on the training thread (step 0, every `every` steps, the fit's last
    step) and once more on the drawing thread when it draws figures."""
    def resident_mb():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6

    blocks = [np.ones(8192) for _ in range(3000)]  # 64 kB each: under malloc's mmap threshold
    in_use = blocks[-1]  # the heap's top block: nothing below it is returned on free
    del blocks
    freed = resident_mb()
    memory.release_freed()
    assert resident_mb() < freed - 150
    del in_use

    calls, trim = [], memory.MALLOC_TRIM
    monkeypatch.setattr(memory, "MALLOC_TRIM",
                        lambda pad: calls.append(threading.current_thread().name) or trim(pad))
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(40, 5)).astype("float32"), rng.integers(0, 3, 40)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu", name="a"),
                              keras.layers.Dense(3, activation="softmax", name="b")])
    summaries, events = fit_with_summaries(model, x, y, tmp_path, epochs=1, every=2,
                                           figure_layers=["a"], figure_time_share=1.0)
    assert [s for s, _ in events[HISTOGRAM_TAG.format(layer="a")]] == [0, 2, 4, 5]
    # Figures at 0 and 5 always (their events wait for them), at 2 and 4 if the drawing thread
    # was free then.
    drawn = [s for s, _ in events[PLOT_TAG.format(layer="a", kind="map")]]
    assert drawn[0] == 0 and drawn[-1] == 5
    assert calls.count(threading.main_thread().name) == 4
    assert len([name for name in calls if name.startswith("avh-figures")]) == len(drawn)


@pytest.mark.slow
def test_mobilenet_v3_small_gets_its_activations_logged(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, 16)
    model = keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), weights=None, classes=10,
                                                include_preprocessing=False)
    summaries, events = fit_with_summaries(model, x, y, tmp_path, epochs=1, every=1)
    tags = [tag for tag, _ in summaries.layers]
    assert len(tags) > 20  # every ReLU and hard-swish activation, in model order
    for tag in (tags[0], tags[len(tags) // 2], tags[-1]):
        assert_logged(events, tag, [0, 1, 2])


def test_nested_functional_submodel_layers_are_reached(tmp_path):
    inner_in = keras.Input(shape=(12,))
    hidden = keras.layers.Dense(16, name="inner_dense")(inner_in)
    hidden = keras.layers.Activation("tanh", name="inner_tanh")(hidden)
    encoder = keras.Model(inner_in, hidden, name="encoder")
    outer_in = keras.Input(shape=(6,))
    x = keras.layers.Dense(12, activation="selu", name="stem")(outer_in)
    x = encoder(x)
    out = keras.layers.Dense(3, activation="softmax", name="head")(x)
    model = keras.Model(outer_in, out, name="outer")

    rng = np.random.default_rng(2)
    data = rng.normal(size=(32, 6)).astype("float32")
    summaries, events = fit_with_summaries(model, data, rng.integers(0, 3, 32), tmp_path,
                                           epochs=1, every=2, numbered=True)
    assert [tag for tag, _ in summaries.layers] == ["1_stem", "2_inner_tanh", "3_head"]
    assert_logged(events, "2_inner_tanh", [0, 2, 4])
    # The nested layer's values are its real output inside the outer model.
    expected = np.tanh(encoder.get_layer("inner_dense")(model.get_layer("stem")(data[:16])))
    (_, mean), = events[STAT_TAG.format(layer="2_inner_tanh", stat="mean")][-1:]
    assert float(mean) == pytest.approx(expected.mean(), abs=1e-5)


def test_layers_by_name_and_predicate_with_figures(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(32, 28, 28, 1)).astype("float32")
    model = mnist_convnet()
    summaries, events = fit_with_summaries(
        model, x, rng.integers(0, 10, 32), tmp_path, epochs=1, every=2,
        layers=lambda layer: isinstance(layer, keras.layers.Conv2D), figure_layers=["conv2d_1"])
    assert [tag for tag, _ in summaries.layers] == ["conv2d", "conv2d_1"]
    maps = events[PLOT_TAG.format(layer="conv2d_1", kind="map")]
    assert maps and maps[0][0] == 0 and maps[-1][0] == 4  # first and last step always drawn


def test_mixed_precision_logs_float32(tmp_path):
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = mnist_convnet()
    finally:
        keras.config.set_dtype_policy("float32")
    rng = np.random.default_rng(4)
    x = rng.normal(size=(16, 28, 28, 1)).astype("float32")
    _, events = fit_with_summaries(model, x, rng.integers(0, 10, 16), tmp_path, epochs=1, every=1)
    (_, mean), = events[STAT_TAG.format(layer="conv2d", stat="mean")][-1:]
    assert mean.dtype == np.float32 and np.isfinite(mean)


def test_off_writes_nothing_and_lets_keras_dispatch_batches_freely(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(16, 28, 28, 1)).astype("float32")
    summaries, events = fit_with_summaries(mnist_convnet(), x, rng.integers(0, 10, 16),
                                           tmp_path / "off", epochs=1, every=0)
    assert summaries.layers == [] and events == {}
    # No batch-end hook, so nothing makes Keras convert each step's logs for it
    assert not overrides_batch_end(summaries)
    assert not (tmp_path / "off").exists()


# -----------------------------------------------------------------------------
# Bad input: one clear message.

def test_unknown_layer_name_lists_close_matches():
    summaries = ActivationSummaries(np.zeros((4, 28, 28, 1), "float32"), log_dir="unused",
                                    layers=["conv2d", "conv_2d_1"])
    with pytest.raises(ValueError, match=r"no layer named 'conv_2d_1'; close matches: conv2d_1"):
        summaries.set_model(mnist_convnet())


def test_probe_batch_of_the_wrong_shape_is_refused():
    summaries = ActivationSummaries(np.zeros((4, 32, 32, 3), "float32"), log_dir="unused")
    with pytest.raises(ValueError, match=r"probe_batch has shape \(4, 32, 32, 3\), but model "
                                         r"'sequential.*' expects \(None, 28, 28, 1\)"):
        summaries.set_model(mnist_convnet())


@pytest.mark.parametrize("kwargs, message", [
    ({"every": -1}, "every"), ({"every": 2.5}, "every"), ({"layers": "conv2d"}, "layers"),
    ({"log_dir": None}, "exactly one of"),
])
def test_constructor_validates_its_arguments(kwargs, message):
    args = {"log_dir": "unused", **kwargs}
    with pytest.raises(ValueError, match=message):
        ActivationSummaries(np.zeros((1, 3)), **args)


# -----------------------------------------------------------------------------
# The histogram in TensorBoard's format.

@pytest.mark.parametrize("values", [[0.5], [2.0] * 7, [-3.0, 0.0, 0.0, 1.0, 9.5],
                                    np.random.default_rng(0).normal(size=10_000)])
def test_histogram_buckets_count_every_value_in_tensorboards_layout(values):
    values = np.asarray(values, np.float32)
    buckets = histogram_buckets(tf.nest.map_structure(np.asarray, histogram_parts(tf.constant(values))))
    assert buckets.shape == (HISTOGRAM_BUCKETS, 3) and buckets.dtype == np.float64
    assert buckets[:, 2].sum() == len(values)
    assert np.all(buckets[1:, 0] == buckets[:-1, 1])  # contiguous edges
    assert buckets[0, 0] == pytest.approx(values.min())
    if values.min() < values.max():
        assert buckets[-1, 1] == pytest.approx(values.max(), rel=1e-6)
    else:  # a constant layer: one unit-wide range starting at its value, all counts in bucket 0
        assert buckets[-1, 1] == pytest.approx(values[0] + 1.0)
        assert buckets[0, 2] == len(values)


def test_histogram_edges_are_bit_for_bit_tf_linspaces_of_the_float32_extremes():
    """The rows made on the host have the edges the probe made in TensorFlow before (tf.linspace),
    the ones the dashboard's compact encoding stands for."""
    rng = np.random.default_rng(3)
    for _ in range(300):
        low = np.float32(rng.normal() * 10.0 ** rng.uniform(-6, 3))
        high = np.float32(low + abs(rng.normal()) * 10.0 ** rng.uniform(-6, 3))
        if not high > low:
            continue
        counts = rng.integers(0, 50, HISTOGRAM_BUCKETS).astype(np.int32)
        edges = tf.linspace(tf.cast(low, tf.float64), tf.cast(high, tf.float64), HISTOGRAM_BUCKETS + 1)
        rows = histogram_buckets({"low": low, "high": high, "counts": counts})
        assert np.array_equal(rows[:, 0], edges[:-1]) and np.array_equal(rows[:, 1], edges[1:])
        assert np.array_equal(rows[:, 2], counts)


# -----------------------------------------------------------------------------
# The paper's quantities (avh.moments), checked against numpy and the measured statistics.

def dense_stack(activation, batch_norm=False, width=256, depth=3):
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    x = inputs = keras.Input(shape=(100,))
    for i in range(1, depth + 1):
        x = keras.layers.Dense(width, kernel_initializer="lecun_normal", name=f"dense{i}")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.Activation(activation, name=f"act{i}")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))


def test_moments_at_init_match_numpy_and_the_papers_prediction(tmp_path):
    model = dense_stack("selu")
    # Independent standardised inputs: the paper's assumptions hold at initialisation.
    x = np.random.default_rng(6).standard_normal((512, 100)).astype("float32")
    summaries = ActivationSummaries(x, log_dir=tmp_path, every=1, figure_layers=["act1"])
    summaries.set_model(model)
    summaries.log(0, final=True)
    summaries.close()
    events = read_events(tmp_path)
    value = lambda tag: float(events[tag][-1][1])
    kernel = model.get_layer("dense2").kernel.numpy()
    assert value(MOMENT_TAG.format(layer="act2", stat="omega")) == pytest.approx(
        kernel.sum(0).mean(), abs=1e-5)
    assert value(MOMENT_TAG.format(layer="act2", stat="tau")) == pytest.approx(
        np.square(kernel).sum(0).mean(), rel=1e-5)
    for layer in ("act1", "act2", "act3"):
        assert value(MOMENT_TAG.format(layer=layer, stat="input_correlation")) == pytest.approx(1, abs=0.15)
        measured = value(STAT_TAG.format(layer=layer, stat="std"))
        for stat in ("predicted_std", "predicted_std_given_preactivation"):
            assert value(MOMENT_TAG.format(layer=layer, stat=stat)) == pytest.approx(measured, rel=0.04)
    assert value(MOMENT_TAG.format(layer="act3", stat="predicted_mean")) == pytest.approx(
        value(STAT_TAG.format(layer="act3", stat="mean")), abs=0.05)
    assert [s for s, _ in events[MOMENT_MAP_TAG]] == [0]  # SELU layers: the moment-map figure


def test_batch_norm_layers_get_weights_and_the_activation_part_only(tmp_path):
    model = dense_stack("relu", batch_norm=True)
    x = np.random.default_rng(7).standard_normal((256, 100)).astype("float32")
    summaries = ActivationSummaries(x, log_dir=tmp_path, every=1)
    summaries.set_model(model)
    summaries.log(0)
    summaries.close()
    events = read_events(tmp_path)
    stats = {tag.split("/")[-1] for tag in events if tag.startswith("moments/act2/")}
    # The paper's map assumes no normalisation between weights and activation: not predicted.
    assert stats == set(MOMENT_STATS) - {"predicted_mean", "predicted_std"}
    measured = float(events[STAT_TAG.format(layer="act2", stat="std")][-1][1])
    predicted = float(events[MOMENT_TAG.format(layer="act2", stat="predicted_std_given_preactivation")][-1][1])
    assert predicted == pytest.approx(measured, rel=0.03)
    assert MOMENT_MAP_TAG not in events  # no SELU layer, and no figures asked for
