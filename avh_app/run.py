"""One run of the app, put together in one place: the strategy, the data and its probe batch, the
model, the run folder with its lock and config.json, the callbacks in order, and the fit with its
one exit path. train.py, scripts/depth_sweep.py and the benchmark all build their runs here.

Call its steps in order: Run(cfg) -> load_data() -> build_model() -> open_folder() ->
add_callbacks() -> fit(). The benchmark's plain fit stops after build_model().
"""
import dataclasses
import math
import signal
import sys
from collections.abc import Callable

import keras
import matplotlib
import numpy as np
import tensorflow as tf

import datasets
import ops
from avh import DEFAULT_EVERY
from avh.events import last_logged_steps
from avh.summaries import ActivationSummaries
from avh.tags import METRICS_FILE, TRAIN_TAG
from avh_app import curves, distribute, loop, overview, pipeline, runfolder
from avh_app.cli import Diverged, Interrupted, UsageError
from avh_app.config import CHECKPOINT, load_config, optimizer_settings
from avh_app.eventlog import EventLog
from model import LAYERS, build_model


@dataclasses.dataclass(frozen=True)
class Network:
    """What a run needs to know of its model: how to build it, and which layers to log.

    build(data, cfg, (norm, init, dropout_kind)) returns an uncompiled keras.Model; `layers`
    are the logged layers' names (None: every layer that applies an activation), `numbered`
    prefixes their tags with their position (`3_conv3`), `figure_layers` get figures."""
    build: Callable
    layers: tuple | None = None
    numbered: bool = False
    figure_layers: tuple = ()


def cnn(cfg):
    """The app's CNN (model.py): its six numbered layers logged, cfg.plot_layers drawn."""
    def build(data, cfg, resolved):
        return build_model(data.image_shape, data.num_classes, datasets.conv_filters(data),
                           cfg.activation, *resolved, cfg.dropout)
    return Network(build, layers=LAYERS, numbered=True,
                   figure_layers=tuple(LAYERS[k - 1] for k in cfg.plot_layers))


class Run:
    """A training run of `cfg`, new or resumed from `resume_dir` (a run folder of this app)."""

    def __init__(self, cfg, resume_dir=None, network=None, record=None):
        """Resolves `auto`, builds the strategy (before anything else creates devices), takes a
        resumed folder's lock (its checkpoint checked whole before: runfolder.check_checkpoint),
        seeds and sets the dtype policy. `record`: extra entries for config.json (the depth
        sweep's)."""
        self.cfg, self.resume_dir = cfg, resume_dir
        self.network = network or cnn(cfg)
        self.record = record or {}
        self.resolved = ops.resolve(cfg.activation, cfg.norm, cfg.init, cfg.dropout_kind)
        self.strategy = distribute.make_strategy(cfg.strategy)
        self.chief = distribute.is_chief(self.strategy)  # the only process that writes the run folder
        self._lock = None  # the run folder's lock, held (open) until the process ends
        if resume_dir is not None and self.chief:
            self._lock = runfolder.lock(resume_dir)
            load_config(resume_dir)  # again, under the lock: another process may have finished it
        keras.utils.set_random_seed(cfg.seed)
        if cfg.mixed_precision:
            gpu = bool(tf.config.list_physical_devices("GPU"))
            keras.config.set_dtype_policy("mixed_float16" if gpu else "mixed_bfloat16")
        self.callbacks = []

    # -- Data: uint8 arrays in memory; the tf.data pipeline shuffles and standardises each batch.

    def load_data(self, data=None):
        """`data`: a datasets.Dataset loaded already (a sweep's runs share one), else cfg's."""
        cfg = self.cfg
        self.data = data = data or datasets.load(cfg.dataset, cfg.data_dir)
        self.steps_per_epoch = math.ceil(len(data.x_train) / cfg.batch_size)
        self.total_steps = cfg.max_steps or cfg.epochs * self.steps_per_epoch
        # SELU's fixed point assumes zero-mean, unit-variance inputs: standardise per channel with
        # training-set statistics (the same for every activation, so runs stay comparable).
        self.channel_mean, self.channel_std = pipeline.channel_stats(data.x_train)
        train_batches, test_batches, self.standardise = pipeline.input_pipeline(
            data, self.channel_mean, self.channel_std, cfg.batch_size, cfg.seed)
        self.train_batches = distribute.shard_by_batch(train_batches)
        self.test_batches = distribute.by_batch(test_batches)
        self.probe_batch = self.standardise(data.x_test[:pipeline.PROBE_SIZE])
        self.probe_labels = data.y_test[:pipeline.PROBE_SIZE]
        if data.note:  # e.g. no network: the bundled sample, named
            print(data.note, flush=True)

    # -- Model: new, or the checkpoint of the run being resumed.

    def build_model(self):
        if self.resume_dir is None:
            with self.strategy.scope():  # variables mirrored on every replica
                self.model = self.network.build(self.data, self.cfg, self.resolved)
                loop.compile_model(self.model, self.cfg, self.total_steps)
            self.start_step = 0
        else:
            checkpoint = self.resume_dir / CHECKPOINT
            try:
                with self.strategy.scope():
                    self.model = keras.models.load_model(checkpoint)
            except Exception as err:  # Keras raises many kinds for a damaged file
                raise UsageError(f"cannot load {checkpoint}: damaged or incomplete checkpoint "
                                 f"({err})".splitlines()[0])
            self.start_step = int(self.model.optimizer.iterations.numpy())
        distribute.prepare_fit(self.model, self.strategy, self.probe_batch, self.probe_labels)
        return self.model

    # -- The run folder: new (never reused) with its config.json, or the one being resumed.

    def open_folder(self):
        cfg = self.cfg
        if self.resume_dir is not None:
            self.run_dir = self.resume_dir if self.chief else distribute.worker_folder()
            # A copy of a run folder resumes as itself: every path printed names the copy.
            cfg.logdir, cfg.run_name = str(self.resume_dir.parent), self.resume_dir.name
            return self.run_dir  # config.json stays as the run wrote it
        self.run_dir = (runfolder.create(cfg, self.data.name) if self.chief
                        else distribute.worker_folder())
        self._lock = runfolder.lock(self.run_dir)
        runfolder.write_config(self.run_dir, self.config_record())
        return self.run_dir

    def config_record(self):
        """config.json: every setting, the resolved `auto` choices, the data, the versions."""
        cfg, data = self.cfg, self.data
        norm, init, dropout_kind = self.resolved
        return {
            **dataclasses.asdict(cfg),
            "resolved": {"norm": norm, "init": init, "dropout_kind": dropout_kind,
                         "strategy": distribute.describe(self.strategy),
                         "dtype_policy": keras.config.dtype_policy().name,
                         "optimizer": {"name": cfg.optimizer, **optimizer_settings(cfg)}},
            "data": {"name": data.name, "source": data.source, "origin": str(data.origin),
                     "train_examples": len(data.x_train), "test_examples": len(data.x_test),
                     "image_shape": list(data.image_shape), "class_names": list(data.class_names),
                     "channel_mean": self.channel_mean.tolist(),
                     "channel_std": self.channel_std.tolist()},
            "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps,
            "versions": {"python": sys.version.split()[0], "tensorflow": tf.__version__,
                         "keras": keras.__version__, "matplotlib": matplotlib.__version__,
                         "numpy": np.__version__},
            **self.record,
        }

    def describe(self):
        """The run's first lines: where it writes, and what it trains."""
        cfg, (norm, init, dropout_kind) = self.cfg, self.resolved
        shown = self.run_dir if self.chief else (self.resume_dir or "RUN_DIR (the chief's)")
        settings = ", ".join(f"{k}={v:g}" for k, v in optimizer_settings(cfg).items())
        line = (f"run folder: {shown}  ({distribute.describe(self.strategy)}; {self.data.name}, "
                f"{cfg.activation}: norm={norm}, init={init}, dropout={dropout_kind} "
                f"{cfg.dropout}; {cfg.optimizer} {settings}; {len(self.data.x_train)} training "
                f"images, {self.steps_per_epoch} steps/epoch, {self.total_steps} steps)")
        return line + (f"\nresuming at step {self.start_step}" if self.start_step else "")

    # -- Callbacks, in order: the clock, NaN check, activation summaries, progress, test subset,
    # checkpoints, live flushes, stop requests. Events reach disk at step boundaries only, whole
    # (avh_app.eventlog): with each checkpoint and every few seconds between. After a hard kill a
    # resumed run redoes the steps after its checkpoint and logs nothing that is already on disk:
    # no summary at or before the last step in the event files, no test result at or before the
    # last one there.

    def add_callbacks(self):
        cfg, model, network = self.cfg, self.model, self.network
        # Every worker decides from the run folder itself (a non-chief writes only a temporary
        # copy): they must all redo the same evaluations, or their collectives would not match.
        self.on_disk, self.test_on_disk = (last_logged_steps(self.resume_dir) if self.resume_dir
                                           else (None, None))
        self.events = EventLog(self.run_dir)
        self.events.writer.set_as_default()  # for the whole run: the event log decides flushes
        self.stop = distribute.stop_requests(self.strategy)
        self.activations = ActivationSummaries(
            self.probe_batch, probe_labels=self.probe_labels, writer=self.events.writer,
            every=cfg.summary_every, gradients=cfg.gradients,
            layers=None if network.layers is None else list(network.layers),
            numbered=network.numbered, figure_layers=list(network.figure_layers),
            log_on_train_end=False, keep_predictions=True)
        self.activations.set_model(model)  # chooses the layers; a run resumed at its end calls no fit()
        self.activations.last_step = self.on_disk
        self.events.waits.append(self.activations.wait_for_moments)  # a step's moments reach disk with it
        self.events.busy.append(self.activations.writing)
        # Every cadence a multiple of --steps-per-execution N: callbacks see only executions' ends.
        execution = cfg.steps_per_execution
        in_executions = lambda every: -(-every // execution) * execution
        metrics = loop.RunningMetrics()  # the train loss and accuracy, read once a step
        self.progress = loop.Progress(
            self.total_steps, cfg.batch_size,
            in_executions(curves.train_log_every(cfg.summary_every, self.total_steps)), TRAIN_TAG,
            print_every=cfg.summary_every or math.lcm(DEFAULT_EVERY, execution),
            start_step=self.start_step, metrics=metrics)
        self.clock = loop.SteadyClock()
        # The probe batch is the first test images: at a summary step the test subset and the
        # checkpoint's finiteness check take the probe's outputs instead of computing them again.
        known = self.activations.probe_predictions
        n_subset = curves.eval_subset_size(self.total_steps, cfg.batch_size)
        self.test_subset = curves.SubsetEvaluation(
            model, self.standardise(self.data.x_test[:n_subset]), self.data.y_test[:n_subset],
            in_executions(curves.test_eval_every(self.total_steps)), known=known)
        self.checkpointer = loop.Checkpointer(model, self.run_dir, self.events,
                                              cfg.checkpoint_every, self.probe_batch, known=known)
        if self.resume_dir is None:  # settings, final metrics and chart layout: once per run
            overview.log_run_overview(self.run_dir, [tag for tag, _ in self.activations.layers],
                                      gradients=self.activations.logs_gradients)
        # The loss is read (a host sync) only where something is logged or saved, and at fit ends.
        nan_guard = loop.NanGuard(self.checkpointer, every=(
            cfg.summary_every, self.progress.every, self.test_subset.every, cfg.checkpoint_every),
            metrics=metrics)
        # In order: the clock first (it notes a step's end before anything acts on it), then the
        # NaN check (before anything logs or saves a loss). Their times: TrainingThreadTimes.
        named = {"NaN guard": nan_guard, "activation summaries": self.activations,
                 "train curves and progress": self.progress, "test subset": self.test_subset,
                 "checkpoints": self.checkpointer, "live flushes": self.events.live(),
                 "stop requests": self.stop}
        self.thread_times = loop.TrainingThreadTimes(named)
        self.callbacks = [self.clock, *self.thread_times.callbacks]
        return self.callbacks

    # -- Train: one fit() per epoch (a resumed run can start mid-epoch); test set at epoch ends.

    def fit(self):
        """Train to the end, test, checkpoint and write metrics.json; returns the exit status:
        0 done, 128 + the signal's number when stopped (checkpoint saved), 1 when the loss
        diverged. A write failure (runfolder.WriteFailed) is raised for the caller to report."""
        model, activations, checkpointer = self.model, self.activations, self.checkpointer
        resume_hint = f"  python {sys.argv[0]} --resume {self.run_dir if self.chief else self.resume_dir}"
        self.stop.install()
        try:
            # Summaries of steps already on disk are not logged again.
            on_disk = -1 if self.on_disk is None else self.on_disk
            with tf.summary.record_if(lambda: model.optimizer.iterations > on_disk):
                start = self.start_step
                if (0 < start < self.total_steps and start % self.steps_per_epoch == 0
                        and not self._test_on_disk(start)):
                    self._at_epoch_end(start)  # stopped at an epoch end before its test set ran
                step = loop.fit_epochs(model, self.train_batches, self.steps_per_epoch, start,
                                       self.total_steps, self.callbacks, self._at_epoch_end)
                # Final metrics: the full test set in inference mode, never a training-mode batch.
                activations.log(step, final=True)
                result = self._test_at(step)
                self.test_subset.log(step)
            activations.close()
            checkpointer.save(step)
            runfolder.write_json(self.run_dir / METRICS_FILE, {
                "test_accuracy": result["accuracy"], "test_loss": result["loss"], "steps": step,
                "epochs": step / self.steps_per_epoch,
                "examples_per_sec": self.clock.examples_per_sec(self.cfg.batch_size),
                "cpu_seconds_per_step": self.clock.cpu_seconds_per_step(),
                "seconds_to_first_step": self.clock.first_step_at,
                "figures_skipped": activations.figures.skipped if activations.figures else 0,
                "figure_cpu_ms_per_event": (activations.figures.cpu_ms_per_event()
                                            if activations.figures else None),
                "summary_ms_per_event": activations.costs.per_event_ms(),
                "median_step_ms": self.clock.median_step_ms(),
                "training_thread_share": self.thread_times.shares(self.clock.seconds)})
        except Interrupted as stopped:
            step = int(model.optimizer.iterations.numpy())
            activations.close()
            checkpointer.save(step)
            print(f"\nstopped by {stopped} at step {step}; checkpoint saved. Resume with:\n"
                  f"{resume_hint}", file=sys.stderr)
            return 128 + stopped.signum
        except Diverged as err:
            activations.close()
            self.events.writer.flush()  # what was logged before the divergence is whole
            print(f"error: {err}", file=sys.stderr)
            return 1
        finally:
            self.stop.uninstall()
        speed = self.clock.examples_per_sec(self.cfg.batch_size)
        print(f"done: {step} steps, test accuracy {result['accuracy']:.2%}"
              + (f", {speed:.0f} examples/s" if speed else "") + ". "
              + (f"TensorBoard: tensorboard --logdir {self.run_dir.parent}" if self.chief
                 else "(the chief wrote the logs)"))
        if self.stop.signum is not None:  # too late to stop: only the last writes were left
            print(f"{signal.Signals(self.stop.signum).name} came after the final evaluation; "
                  f"the run finished", file=sys.stderr)
        return 0

    def _test_on_disk(self, step):
        return self.test_on_disk is not None and self.test_on_disk >= step

    def _test_at(self, step):
        """The test set at `step` (a stop request ends it at once), logged unless on disk."""
        with tf.summary.record_if(not self._test_on_disk(step)):
            return loop.evaluate(self.model, self.test_batches, step, callbacks=[self.stop],
                                 say=self.progress.say)

    def _at_epoch_end(self, step):
        self._test_at(step)
        self.stop.check()
        self.checkpointer.save(step)
