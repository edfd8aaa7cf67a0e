"""Train the avh CNN with one activation and log, layer by layer, what it does to the signal.

    python train.py --activation selu --dataset cifar10
    tensorboard --logdir logs

Reads top to bottom: settings -> data -> model -> callbacks -> fit -> final metrics.
"""
import time

PROCESS_START = time.perf_counter()  # for the time-to-first-step figure in metrics.json

import argparse
import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
from pathlib import Path


@contextlib.contextmanager
def quiet_stderr():
    """Silence file descriptor 2: TensorFlow's C++ start-up (CUDA probing, oneDNN notes) writes
    there before any log level applies. Python exceptions are printed after it is restored."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


if __name__ == "__main__":
    # Until training starts there is nothing to save: Ctrl-C just ends the process (no traceback).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
with quiet_stderr():
    import keras
    import tensorflow as tf
    import tfplot

    tf.config.list_physical_devices()  # the first device query logs a CUDA error on CPU machines

import numpy as np

import datasets
import ops
from model import LAYERS, build_model, conv_filters, probe_model
from summaries import TEST_TAG, TRAIN_TAG, ActivationLogger, FigureRenderer, StepCallback

# -----------------------------------------------------------------------------
# Settings: one dataclass mirrors the flags and is what config.json saves.

PROBE_SIZE = 128          # test images in the fixed probe batch (the first ones, for every run)
EVAL_BATCH_SIZE = 256
CHECKPOINT = "checkpoint.keras"
PARTIAL_CHECKPOINT = ".checkpoint-partial.keras"  # written first, renamed when complete


@dataclasses.dataclass
class Config:
    dataset: str = "mnist"
    activation: str = "selu"
    data_dir: str | None = None
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 64
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    clip_norm: float | None = None
    seed: int = 0
    norm: str = "auto"
    init: str = "auto"
    dropout: float = 0.1
    dropout_kind: str = "auto"
    logdir: str = "logs"
    run_name: str | None = None
    summary_every: int = 100
    plot_layers: tuple[int, ...] = (3, 4)
    checkpoint_every: int = 500
    jit: bool = False
    mixed_precision: bool = False


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def build_parser():
    d = Config()
    p = argparse.ArgumentParser(
        description="Train a 3-conv + 3-dense CNN with one activation and log per-layer "
                    "activation histograms, statistics and plots to TensorBoard.",
        argument_default=argparse.SUPPRESS)  # only flags the user gave: --resume checks them
    add = p.add_argument
    add("--dataset", choices=datasets.NAMES, help=f"data set (default: {d.dataset})")
    add("--activation", choices=ops.ACTIVATIONS, help=f"activation of layers 1-5 (default: {d.activation})")
    add("--data-dir", metavar="DIR",
        help="read the data set's original files from DIR, no network (default: download to the Keras cache)")
    add("--epochs", type=int, metavar="N", help=f"passes over the training set (default: {d.epochs})")
    add("--max-steps", type=int, metavar="N",
        help="stop after exactly N optimizer steps; wins over --epochs")
    add("--batch-size", type=int, metavar="N", help=f"(default: {d.batch_size})")
    add("--learning-rate", type=float, metavar="LR", help=f"Adam learning rate (default: {d.learning_rate})")
    add("--lr-schedule", choices=("constant", "cosine"),
        help=f"cosine decays the learning rate to 0 over the run (default: {d.lr_schedule})")
    add("--clip-norm", type=float, metavar="C", help="clip gradients to global norm C (default: off)")
    add("--seed", type=int, metavar="N", help=f"seeds weights, dropout and data order (default: {d.seed})")
    add("--norm", choices=("auto",) + ops.NORMS,
        help="auto: none for selu, batch for relu/lrelu (default: auto)")
    add("--init", choices=("auto",) + ops.INITS,
        help="auto: lecun_normal for selu, he_normal for relu/lrelu (default: auto)")
    add("--dropout", type=float, metavar="RATE",
        help=f"dropout rate after layers 4 and 5 (default: {d.dropout})")
    add("--dropout-kind", choices=("auto",) + ops.DROPOUT_KINDS,
        help="auto: alpha for selu, standard for relu/lrelu (default: auto)")
    add("--logdir", metavar="DIR", help=f"TensorBoard root (default: {d.logdir})")
    add("--run-name", metavar="NAME",
        help="the run's folder is LOGDIR/NAME (default: DATASET/ACTIVATION-TIMESTAMP)")
    add("--summary-every", type=int, metavar="N",
        help=f"log activation summaries every N steps; 0 turns them off (default: {d.summary_every})")
    add("--plot-layers", type=int, nargs="*", metavar="K",
        help="layers (1-6) that get tfplot figures (default: 3 4)")
    add("--checkpoint-every", type=int, metavar="N",
        help=f"save a checkpoint every N steps (default: {d.checkpoint_every})")
    add("--jit", action="store_true", help="compile the training step with XLA (default: Keras' choice)")
    add("--mixed-precision", action="store_true",
        help="compute in float16 on a GPU, bfloat16 on a CPU (logged activations stay float32)")
    add("--resume", metavar="RUN_DIR", help="continue RUN_DIR from its last checkpoint with its saved settings")
    p.error = _usage_error
    return p


def _usage_error(message):
    print(f"error: {message} (see --help)", file=sys.stderr)
    sys.exit(2)


def parse_args(argv=None):
    """(Config, resume run folder or None) from the command line; UsageError on bad values."""
    given = vars(build_parser().parse_args(argv))
    resume = given.pop("resume", None)
    if "plot_layers" in given:
        given["plot_layers"] = tuple(given["plot_layers"])
    if resume is None:
        cfg = Config(**given)
    else:
        extra = sorted(set(given) - {"data_dir"})
        if extra:
            flags = ", ".join("--" + name.replace("_", "-") for name in extra)
            raise UsageError(f"--resume continues with the run's saved settings; drop {flags}")
        cfg = load_config(resume)
        cfg.data_dir = given.get("data_dir", cfg.data_dir)
    check_config(cfg)
    return cfg, (Path(resume) if resume else None)


def check_config(cfg):
    positive = {"epochs": cfg.epochs, "batch_size": cfg.batch_size,
                "learning_rate": cfg.learning_rate, "checkpoint_every": cfg.checkpoint_every}
    if cfg.max_steps is not None:
        positive["max_steps"] = cfg.max_steps
    if cfg.clip_norm is not None:
        positive["clip_norm"] = cfg.clip_norm
    for name, value in positive.items():
        if not value > 0:  # also catches NaN
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if cfg.summary_every < 0:
        raise UsageError(f"--summary-every must be 0 (off) or positive, got {cfg.summary_every}")
    if not 0 <= cfg.dropout < 1:
        raise UsageError(f"--dropout must be in [0, 1), got {cfg.dropout}")
    bad = [k for k in cfg.plot_layers if not 1 <= k <= len(LAYERS)]
    if bad:
        raise UsageError(f"--plot-layers takes layer numbers 1-{len(LAYERS)}, got {bad[0]}")
    if cfg.run_name is not None:
        name = Path(cfg.run_name)
        if not cfg.run_name.strip() or name.is_absolute() or ".." in name.parts:
            raise UsageError(f"--run-name must be a relative folder name inside --logdir, got {cfg.run_name!r}")


def load_config(run_dir):
    """The Config saved in a run folder, or UsageError if the folder is not a finished-or-not run."""
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    try:
        saved = json.loads(path.read_text())
        fields = {f.name for f in dataclasses.fields(Config)}
        cfg = Config(**{k: v for k, v in saved.items() if k in fields})
    except (OSError, ValueError, TypeError, AttributeError) as err:
        raise UsageError(f"--resume {run_dir}: not a run folder of this app (cannot read {path}: {err})")
    cfg.plot_layers = tuple(cfg.plot_layers)
    if (run_dir / "metrics.json").exists():
        raise UsageError(f"--resume {run_dir}: this run already finished (see its metrics.json)")
    if not (run_dir / CHECKPOINT).exists():
        raise UsageError(f"--resume {run_dir}: no checkpoint yet, the run stopped before its first "
                         f"one; start a new run instead")
    return cfg


def create_run_dir(cfg):
    """Make the run's folder, never reusing one: an explicit --run-name that exists is refused;
    the default timestamped name gets a -2, -3, ... suffix when two runs start in the same second."""
    logdir = Path(cfg.logdir)
    if cfg.run_name is not None:
        candidates = [logdir / cfg.run_name]
    else:
        base = logdir / cfg.dataset / f"{cfg.activation}-{time.strftime('%Y%m%d-%H%M%S')}"
        candidates = [base] + [base.with_name(f"{base.name}-{i}") for i in range(2, 1000)]
    for run_dir in candidates:
        try:
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            run_dir.mkdir()  # atomic: of two runs racing for a name, exactly one gets it
            return run_dir
        except FileExistsError:
            if cfg.run_name is not None:
                raise UsageError(f"run folder {run_dir} already exists; choose another --run-name "
                                 f"or continue it with --resume {run_dir}")
        except OSError as err:
            raise UsageError(f"cannot create run folder {run_dir}: {err.strerror or err}")
    raise UsageError(f"too many runs named {candidates[0]}-*; pass --run-name")


# -----------------------------------------------------------------------------
# Stopping early: signals, divergence.

class Interrupted(Exception):
    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Diverged(Exception):
    pass


def main(argv=None):
    try:
        cfg, resume_dir = parse_args(argv)
        return train(cfg, resume_dir)
    except (UsageError, datasets.DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def train(cfg, resume_dir=None):
    norm, init, dropout_kind = ops.resolve(cfg.activation, cfg.norm, cfg.init, cfg.dropout_kind)
    keras.utils.set_random_seed(cfg.seed)
    if cfg.mixed_precision:
        gpu = bool(tf.config.list_physical_devices("GPU"))
        keras.config.set_dtype_policy("mixed_float16" if gpu else "mixed_bfloat16")

    # -------------------------------------------------------------------------
    # Data: uint8 arrays in memory; the tf.data pipeline shuffles and standardises each batch.

    data = datasets.load(cfg.dataset, cfg.data_dir)
    n_train = len(data.x_train)
    steps_per_epoch = math.ceil(n_train / cfg.batch_size)
    total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
    # SELU's fixed point assumes zero-mean, unit-variance inputs: standardise per channel with
    # training-set statistics (the same for every activation, so runs stay comparable).
    mean, std = channel_stats(data.x_train)
    train_batches, test_batches, standardise = input_pipeline(data, mean, std, cfg.batch_size,
                                                              cfg.seed)
    probe_images = standardise(data.x_test[:PROBE_SIZE])

    # -------------------------------------------------------------------------
    # Model: new, or the checkpoint of the run being resumed.

    if resume_dir is None:
        model = build_model(data.image_shape, data.num_classes, conv_filters(cfg.dataset),
                            cfg.activation, norm, init, dropout_kind, cfg.dropout)
        compile_model(model, cfg, total_steps)
        run_dir = create_run_dir(cfg)
        start_step = 0
        write_json(run_dir / "config.json", {
            **dataclasses.asdict(cfg),
            "resolved": {"norm": norm, "init": init, "dropout_kind": dropout_kind,
                         "dtype_policy": keras.config.dtype_policy().name},
            "data": {"train_examples": n_train, "test_examples": len(data.x_test),
                     "image_shape": list(data.image_shape), "class_names": list(data.class_names),
                     "channel_mean": mean.tolist(), "channel_std": std.tolist()},
            "steps_per_epoch": steps_per_epoch, "total_steps": total_steps,
            "versions": {"python": sys.version.split()[0], "tensorflow": tf.__version__,
                         "keras": keras.__version__, "tfplot": tfplot.__version__,
                         "numpy": np.__version__},
        })
    else:
        run_dir = resume_dir
        try:
            model = keras.models.load_model(run_dir / CHECKPOINT)
        except Exception as err:  # Keras raises many kinds for a damaged file
            raise UsageError(f"cannot load {run_dir / CHECKPOINT}: {err}".splitlines()[0])
        start_step = int(model.optimizer.iterations)  # config.json stays as the run wrote it
    print(f"run folder: {run_dir}  ({cfg.dataset}, {cfg.activation}: norm={norm}, init={init}, "
          f"dropout={dropout_kind} {cfg.dropout}; {n_train} training images, "
          f"{steps_per_epoch} steps/epoch, {total_steps} steps)")
    if start_step:
        print(f"resuming at step {start_step}")

    # -------------------------------------------------------------------------
    # Callbacks, in order: NaN check, summaries, progress, checkpoints, stop requests.
    # Events reach disk when a checkpoint does (see Checkpointer), so after a hard kill the logs
    # end where the checkpoint does and a resumed run continues the same curves.

    writer = summary_writer(run_dir)
    writer.set_as_default()  # for the whole run: leaving `with writer.as_default()` would flush
    stop = StopRequests()
    figures = FigureRenderer(writer) if cfg.summary_every and cfg.plot_layers else None
    activations = (ActivationLogger(probe_model(model), probe_images, writer, cfg.summary_every,
                                    cfg.plot_layers, figures)
                   if cfg.summary_every else None)
    progress = Progress(total_steps, cfg.batch_size, cfg.summary_every or 100, TRAIN_TAG)
    checkpointer = Checkpointer(model, run_dir, writer, cfg.checkpoint_every)
    callbacks = [NanGuard(checkpointer), activations, progress, checkpointer, stop]
    callbacks = [c for c in callbacks if c is not None]

    # -------------------------------------------------------------------------
    # Train: one fit() per epoch, so that a resumed run can start mid-epoch; then final metrics.

    def evaluate(step):
        result = model.evaluate(test_batches, verbose=0, return_dict=True)
        for metric in ("loss", "accuracy"):
            tf.summary.scalar(TEST_TAG.format(metric=metric), result[metric], step=step)
        print(f"step {step}: test loss {result['loss']:.4f}, test accuracy {result['accuracy']:.2%}")
        return result

    if activations is not None and start_step == 0:
        activations.log(0)  # the initial state: what the init alone does to the signal
    stop.install()
    step = start_step
    try:
        while step < total_steps:
            epoch, done_in_epoch = divmod(step, steps_per_epoch)
            steps = min(steps_per_epoch - done_in_epoch, total_steps - step)
            model.fit(train_batches(epoch, skip=done_in_epoch), initial_epoch=epoch,
                      epochs=epoch + 1, steps_per_epoch=steps, shuffle=False,
                      callbacks=callbacks, verbose=0)
            step += steps
            if step < total_steps:  # the end of training evaluates below
                evaluate(step)
                stop.check()
                checkpointer.save(step)

        # Final metrics: the full test set in inference mode, never a training-mode batch.
        if activations is not None:
            activations.log(step, wait_for_figures=True)
        result = evaluate(step)
        checkpointer.save(step)
        _close(figures, writer)
        metrics = {
            "test_accuracy": result["accuracy"], "test_loss": result["loss"], "steps": step,
            "epochs": step / steps_per_epoch, "examples_per_sec": progress.examples_per_sec(),
            "seconds_to_first_step": progress.first_step_at,
            "figures_skipped": figures.skipped if figures else 0,
        }
        write_json(run_dir / "metrics.json", metrics)
    except Interrupted as stopped:
        step = int(model.optimizer.iterations)
        checkpointer.save(step)
        _close(figures, writer)
        print(f"\nstopped by {stopped} at step {step}; checkpoint saved. Resume with:\n"
              f"  python {sys.argv[0]} --resume {run_dir}", file=sys.stderr)
        return 128 + stopped.signum
    except Diverged as err:
        _close(figures, writer)
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        stop.uninstall()
    speed = f", {metrics['examples_per_sec']:.0f} examples/s" if metrics["examples_per_sec"] else ""
    print(f"done: {step} steps, test accuracy {result['accuracy']:.2%}{speed}. "
          f"TensorBoard: tensorboard --logdir {cfg.logdir}")
    return 0


# -----------------------------------------------------------------------------
# Helpers used above.

def input_pipeline(data, mean, std, batch_size, seed):
    """(train_batches(epoch, skip), test_batches, standardise) over the uint8 arrays in memory;
    every batch is standardised with the per-channel `mean` and `std`."""
    mean_t, std_t = tf.constant(mean), tf.constant(std)
    x_train, y_train = tf.constant(data.x_train), tf.constant(data.y_train)
    n_train = len(data.x_train)

    def standardise(images):
        return (tf.cast(images, tf.float32) - mean_t) / std_t

    def train_batches(epoch, skip=0):
        """Epoch `epoch`'s batches, from batch `skip` on. The order is a pure function of
        (seed, epoch), so a resumed run sees exactly the batches the interrupted one would have."""
        order = tf.random.experimental.stateless_shuffle(tf.range(n_train), seed=[seed, epoch])
        return (tf.data.Dataset.from_tensor_slices(order)
                .batch(batch_size).skip(skip)
                .map(lambda i: (standardise(tf.gather(x_train, i)), tf.gather(y_train, i)),
                     num_parallel_calls=tf.data.AUTOTUNE)
                .prefetch(tf.data.AUTOTUNE))

    test_batches = (tf.data.Dataset.from_tensor_slices((data.x_test, data.y_test))
                    .batch(EVAL_BATCH_SIZE)
                    .map(lambda x, y: (standardise(x), y), num_parallel_calls=tf.data.AUTOTUNE)
                    .prefetch(tf.data.AUTOTUNE))
    return train_batches, test_batches, standardise


def compile_model(model, cfg, total_steps):
    """Adam (optionally cosine-decayed and clipped) on softmax cross-entropy of the logits."""
    lr = cfg.learning_rate
    if cfg.lr_schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, total_steps)
    model.compile(optimizer=keras.optimizers.Adam(lr, global_clipnorm=cfg.clip_norm),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=True if cfg.jit else "auto")


def summary_writer(run_dir):
    """The run's event writer. Events wait in memory until Checkpointer flushes them: nothing
    else may flush it (note that leaving a `with writer.as_default()` block does)."""
    return tf.summary.create_file_writer(str(run_dir), max_queue=1_000_000, flush_millis=10**9)


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


def write_json(path, obj):
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def _close(figures, writer):
    if figures is not None:
        figures.close()
    writer.flush()


class NanGuard(StepCallback):
    """Stops at once when the loss is not finite, before anything logs or saves that step."""

    def __init__(self, checkpointer):
        super().__init__()
        self.checkpointer = checkpointer

    def on_train_batch_end(self, batch, logs=None):
        loss = float(logs["loss"])
        if not math.isfinite(loss):
            step = self.global_step(batch)
            raise Diverged(f"loss became {loss} at step {step}; stopped. Last good checkpoint: "
                           f"{self.checkpointer.describe()}")


class StopRequests(keras.callbacks.Callback):
    """SIGINT/SIGTERM during training ask for a clean stop once the current step is done and
    logged (a second Ctrl-C stops at once)."""

    def __init__(self):
        super().__init__()
        self.signum = None

    def install(self):
        self._previous = {sig: signal.signal(sig, self._handle)
                          for sig in (signal.SIGINT, signal.SIGTERM)}

    def uninstall(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def check(self):
        if self.signum is not None:
            raise Interrupted(self.signum)

    def on_train_batch_end(self, batch, logs=None):
        self.check()


class Progress(StepCallback):
    """Prints a line and logs train loss/accuracy every `every` steps; measures throughput.

    Throughput is steady-state training, summaries and checkpoints included: each fit()'s
    clock starts when its first step ends (the first one also builds the training graph)."""

    def __init__(self, total_steps, batch_size, every, tag):
        super().__init__()
        self.total_steps, self.batch_size = total_steps, batch_size
        self.every, self.tag = every, tag
        self.first_step_at = None
        self.timed_seconds = 0.0
        self.timed_steps = 0
        self._clock = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._clock = None
        self._mark = (time.perf_counter(), self.first_step)

    def on_train_end(self, logs=None):
        if self._clock is not None:
            self.timed_seconds += time.perf_counter() - self._clock

    def on_train_batch_end(self, batch, logs=None):
        if self._clock is None:
            self._clock = time.perf_counter()
        else:
            self.timed_steps += 1
        if self.first_step_at is None:
            self.first_step_at = time.perf_counter() - PROCESS_START
        step = self.global_step(batch)
        if step % self.every and step != self.total_steps:
            return
        loss, accuracy = float(logs["loss"]), float(logs["accuracy"])
        tf.summary.scalar(self.tag.format(metric="loss"), loss, step=step)
        tf.summary.scalar(self.tag.format(metric="accuracy"), accuracy, step=step)
        now = time.perf_counter()
        rate = (step - self._mark[1]) * self.batch_size / max(now - self._mark[0], 1e-9)
        self._mark = (now, step)
        print(f"step {step}/{self.total_steps}: loss {loss:.4f}, accuracy {accuracy:.2%}, "
              f"{rate:.0f} examples/s")

    def examples_per_sec(self):
        """None for a run too short to time (one step per fit())."""
        if not self.timed_steps:
            return None
        return self.timed_steps * self.batch_size / self.timed_seconds


class Checkpointer(StepCallback):
    """Saves model and optimizer every `every` steps: written to a partial file, then renamed,
    so a hard kill never leaves a half-written checkpoint where --resume looks. The event log
    is flushed right after, so the logs on disk never run ahead of the checkpoint."""

    def __init__(self, model, run_dir, writer, every):
        super().__init__()
        self.set_model(model)
        self.run_dir, self.writer, self.every = run_dir, writer, every
        self.saved_step = None

    def on_train_batch_end(self, batch, logs=None):
        step = self.global_step(batch)
        if step % self.every == 0:
            self.save(step)

    def save(self, step):
        if step == self.saved_step:
            return
        if not all(np.isfinite(w).all() for w in self.model.get_weights()):
            raise Diverged(f"weights became non-finite by step {step}; stopped. Last good "
                           f"checkpoint: {self.describe()}")
        partial = self.run_dir / PARTIAL_CHECKPOINT
        self.model.save(partial)
        os.replace(partial, self.run_dir / CHECKPOINT)
        self.saved_step = step
        self.writer.flush()

    def describe(self):
        if self.saved_step is None and not (self.run_dir / CHECKPOINT).exists():
            return "none yet"
        where = self.run_dir / CHECKPOINT
        return f"{where} (step {self.saved_step})" if self.saved_step is not None else str(where)


if __name__ == "__main__":
    sys.exit(main())
