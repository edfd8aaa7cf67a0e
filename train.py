"""Train the avh CNN with one activation and log, layer by layer, what it does to the signal.

    python train.py --activation selu --dataset cifar10
    tensorboard --logdir logs/cifar10

Reads top to bottom: settings -> data -> model -> callbacks -> fit -> final metrics. The
callbacks and the loop live in avh/ (avh.summaries is the reusable activation callback).
"""
import time

PROCESS_START = time.perf_counter()  # for the time-to-first-step figure in metrics.json

import argparse
import dataclasses
import math
import signal
import sys
from pathlib import Path

if __name__ == "__main__":
    # Until training starts there is nothing to save: Ctrl-C just ends the process (no traceback).
    signal.signal(signal.SIGINT, signal.SIG_DFL)

from avh.quiet import import_tensorflow

tf, keras = import_tensorflow()
import numpy as np
import tfplot

import datasets
import ops
from avh import curves, distribute, overview, runfolder, training
from avh.cli import usage_error
from avh.config import (CHECKPOINT, OPTIMIZERS, Config, UsageError, check_config, load_config,
                        optimizer_settings)
from avh.events import last_logged_steps
from avh.summaries import ActivationSummaries
from avh.tags import TRAIN_TAG
from avh.training import Diverged, Interrupted
from model import LAYERS, build_model

training.PROCESS_START = PROCESS_START

# -----------------------------------------------------------------------------
# Settings: avh.config.Config mirrors the flags and is what config.json saves.

def build_parser():
    d = Config()
    p = argparse.ArgumentParser(
        description="Train a 3-conv + 3-dense CNN with one activation and log per-layer "
                    "activation histograms, statistics and plots to TensorBoard.",
        argument_default=argparse.SUPPRESS)  # only flags the user gave: --resume checks them
    add = p.add_argument
    add("--dataset", choices=datasets.NAMES, help=f"data set (default: {d.dataset})")
    add("--activation", choices=ops.ACTIVATIONS, metavar="{" + ",".join(ops.ACTIVATIONS) + "}",
        help="activation of layers 1-5: " + "; ".join(f"{name}: {a.help}" for name, a in
                                                        ops.ACTIVATION_TABLE.items())
             + f" (default: {d.activation})")
    add("--data-dir", metavar="DIR",
        help="read the data set's original files from DIR, no network (default: download to the Keras cache)")
    add("--epochs", type=int, metavar="N", help=f"passes over the training set (default: {d.epochs})")
    add("--max-steps", type=int, metavar="N",
        help="stop after exactly N optimizer steps; wins over --epochs")
    add("--batch-size", type=int, metavar="N", help=f"(default: {d.batch_size})")
    add("--optimizer", choices=tuple(OPTIMIZERS),
        help=f"the same for every activation (default: {d.optimizer})")
    add("--learning-rate", type=float, metavar="LR",
        help="default: " + ", ".join(f"{o} {s['learning_rate']:g}" for o, s in OPTIMIZERS.items()))
    add("--momentum", type=float, metavar="M",
        help=f"SGD's momentum (default: {OPTIMIZERS['sgd']['momentum']:g})")
    add("--lr-schedule", choices=("constant", "cosine"),
        help=f"cosine decays the learning rate to 0 over the run (default: {d.lr_schedule})")
    add("--clip-norm", type=float, metavar="C", help="clip gradients to global norm C (default: off)")
    add("--seed", type=int, metavar="N", help=f"seeds weights, dropout and data order (default: {d.seed})")
    add("--norm", choices=("auto",) + ops.NORMS,
        help="auto: none for selu, batch for the others (default: auto)")
    add("--init", choices=("auto",) + ops.INITS,
        help="auto: lecun_normal for selu, he_normal for the others (default: auto)")
    add("--dropout", type=float, metavar="RATE",
        help=f"dropout rate after layers 4 and 5 (default: {d.dropout})")
    add("--dropout-kind", choices=("auto",) + ops.DROPOUT_KINDS,
        help="auto: alpha for selu, standard for the others (default: auto)")
    add("--logdir", metavar="DIR", help=f"TensorBoard root (default: {d.logdir})")
    add("--run-name", metavar="NAME",
        help="the run's folder is LOGDIR/NAME (default: DATASET/ACTIVATION-TIMESTAMP)")
    add("--summary-every", type=int, metavar="N",
        help=f"log activation summaries every N steps; 0 turns them off (default: {d.summary_every})")
    add("--plot-layers", type=int, nargs="*", metavar="K",
        help="layers (1-6) that get figures (default: 3 4)")
    add("--checkpoint-every", type=int, metavar="N",
        help=f"save a checkpoint every N steps (default: {d.checkpoint_every})")
    add("--steps-per-execution", type=int, metavar="N",
        help="optimizer steps per call into TensorFlow; --summary-every and --checkpoint-every "
             f"must be multiples of N (default: {d.steps_per_execution})")
    add("--jit", action="store_true", help="compile the training step with XLA (default: Keras' choice)")
    add("--mixed-precision", action="store_true",
        help="compute in float16 on a GPU, bfloat16 on a CPU (logged activations stay float32)")
    add("--strategy", choices=distribute.STRATEGIES,
        help="auto: every GPU when there are several (mirrored), else one device; multiworker: "
             "the machines in TF_CONFIG. --batch-size stays the global batch (default: auto)")
    add("--resume", metavar="RUN_DIR", help="continue RUN_DIR from its last checkpoint with its saved settings")
    p.error = usage_error
    return p


def parse_args(argv=None):
    """(Config, resume run folder or None) from the command line; UsageError on bad values."""
    given = vars(build_parser().parse_args(argv))
    resume = given.pop("resume", None)
    if "plot_layers" in given:
        given["plot_layers"] = tuple(given["plot_layers"])
    if resume is None:
        cfg = Config(**given)
    else:
        extra = sorted(set(given) - {"data_dir", "strategy"})  # the hardware may have changed
        if extra:
            flags = ", ".join("--" + name.replace("_", "-") for name in extra)
            raise UsageError(f"--resume continues with the run's saved settings; drop {flags}")
        cfg = load_config(resume)
        cfg.data_dir = given.get("data_dir", cfg.data_dir)
        cfg.strategy = given.get("strategy", cfg.strategy)
    check_config(cfg)
    bad = [k for k in cfg.plot_layers if not 1 <= k <= len(LAYERS)]
    if bad:
        raise UsageError(f"--plot-layers takes layer numbers 1-{len(LAYERS)}, got {bad[0]}")
    return cfg, (Path(resume) if resume else None)


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
                pid = runfolder.holder(run_dir)
                hint = (f" (process {pid} is training it)" if pid else
                        f" or continue it with --resume {run_dir}" if runfolder.resumable(run_dir)
                        else "")
                raise UsageError(f"run folder {run_dir} already exists; choose another "
                                 f"--run-name{hint}")
        except OSError as err:
            raise UsageError(f"cannot create run folder {run_dir}: {err.strerror or err}")
    raise UsageError(f"too many runs named {candidates[0]}-*; pass --run-name")


def main(argv=None):
    try:
        cfg, resume_dir = parse_args(argv)
        return train(cfg, resume_dir)
    except (UsageError, datasets.DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except runfolder.WriteFailed as err:
        print(f"error: {err}", file=sys.stderr)
        if runfolder.resumable(err.run_dir):  # (F_GETLK does not report our own lock)
            print(f"the last complete checkpoint is kept; once the cause is fixed, resume with:\n"
                  f"  python {sys.argv[0]} --resume {err.run_dir}", file=sys.stderr)
        return 1
    except Diverged as err:  # found while saving the checkpoint of a stop request
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def train(cfg, resume_dir=None):
    if resume_dir is not None:
        damage = runfolder.checkpoint_damage(resume_dir / CHECKPOINT)
        if damage:
            raise UsageError(f"--resume {resume_dir}: its checkpoint {resume_dir / CHECKPOINT} is "
                             f"{damage}; it cannot be resumed")
    norm, init, dropout_kind = ops.resolve(cfg.activation, cfg.norm, cfg.init, cfg.dropout_kind)
    strategy = distribute.make_strategy(cfg.strategy)  # before anything else creates devices
    chief = distribute.is_chief(strategy)  # the only process that writes the run folder
    if resume_dir is not None and chief:
        # Held until the process ends (a kill releases it): one process per run folder.
        run_lock = runfolder.lock(resume_dir)
        load_config(resume_dir)  # again, under the lock: the other process may have finished it
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
    mean, std = training.channel_stats(data.x_train)
    train_batches, test_batches, standardise = training.input_pipeline(
        data, mean, std, cfg.batch_size, cfg.seed)
    train_batches, test_batches = distribute.shard_by_batch(train_batches), distribute.by_batch(test_batches)
    probe_batch = standardise(data.x_test[:training.PROBE_SIZE])

    # -------------------------------------------------------------------------
    # Model: new, or the checkpoint of the run being resumed.

    if resume_dir is None:
        with strategy.scope():  # variables mirrored on every replica
            model = build_model(data.image_shape, data.num_classes, datasets.conv_filters(cfg.dataset),
                                cfg.activation, norm, init, dropout_kind, cfg.dropout)
            training.compile_model(model, cfg, total_steps)
        run_dir = create_run_dir(cfg) if chief else distribute.worker_folder()
        run_lock = runfolder.lock(run_dir)
        start_step = 0
        write_config(run_dir, {
            **dataclasses.asdict(cfg),
            "resolved": {"norm": norm, "init": init, "dropout_kind": dropout_kind,
                         "strategy": distribute.describe(strategy),
                         "dtype_policy": keras.config.dtype_policy().name,
                         "optimizer": {"name": cfg.optimizer, **optimizer_settings(cfg)}},
            "data": {"train_examples": n_train, "test_examples": len(data.x_test),
                     "image_shape": list(data.image_shape), "class_names": list(data.class_names),
                     "channel_mean": mean.tolist(), "channel_std": std.tolist()},
            "steps_per_epoch": steps_per_epoch, "total_steps": total_steps,
            "versions": {"python": sys.version.split()[0], "tensorflow": tf.__version__,
                         "keras": keras.__version__, "tfplot": tfplot.__version__,
                         "numpy": np.__version__},
        })
    else:
        try:
            with strategy.scope():
                model = keras.models.load_model(resume_dir / CHECKPOINT)
        except Exception as err:  # Keras raises many kinds for a damaged file
            raise UsageError(f"cannot load {resume_dir / CHECKPOINT}: damaged or incomplete "
                             f"checkpoint ({err})".splitlines()[0])
        run_dir = resume_dir if chief else distribute.worker_folder()
        # A copy of a run folder resumes as itself: every path printed names the copy.
        cfg.logdir, cfg.run_name = str(resume_dir.parent), resume_dir.name
        start_step = int(model.optimizer.iterations.numpy())  # config.json stays as the run wrote it
    distribute.prepare_fit(model, strategy, probe_batch, data.y_test[:training.PROBE_SIZE])
    shown_dir = run_dir if chief else (resume_dir or "RUN_DIR (the chief's)")  # workers write a temp copy
    print(f"run folder: {shown_dir}  ({distribute.describe(strategy)}; {cfg.dataset}, {cfg.activation}: norm={norm}, init={init}, "
          f"dropout={dropout_kind} {cfg.dropout}; {cfg.optimizer} "
          f"{', '.join(f'{k}={v:g}' for k, v in optimizer_settings(cfg).items())}; {n_train} training images, "
          f"{steps_per_epoch} steps/epoch, {total_steps} steps)")
    if start_step:
        print(f"resuming at step {start_step}")

    # -------------------------------------------------------------------------
    # Callbacks, in order: NaN check, activation summaries, progress, checkpoints, stop requests.
    # Events reach disk just before each checkpoint (see training.Checkpointer), so after a hard
    # kill they reach at least as far as the checkpoint, at most to the next one. A resumed run
    # redoes the steps after its checkpoint and logs nothing that is already on disk: no summary
    # at or before the last step in the event files, no test result at or before the last one.

    # Every worker decides from the run folder itself (a non-chief writes only a temporary copy):
    # they must all redo the same evaluations, or their collectives would not match.
    on_disk, test_on_disk = last_logged_steps(resume_dir) if resume_dir else (None, None)
    writer = training.summary_writer(run_dir)
    writer.set_as_default()  # for the whole run: leaving `with writer.as_default()` would flush
    stop = distribute.stop_requests(strategy)
    activations = ActivationSummaries(
        probe_batch, writer=writer, every=cfg.summary_every, layers=list(LAYERS), numbered=True,
        figure_layers=[LAYERS[k - 1] for k in cfg.plot_layers], log_on_train_end=False)
    activations.set_model(model)  # chooses the logged layers; a run resumed at its end calls no fit()
    activations.last_step = on_disk
    # Every cadence a multiple of --steps-per-execution N: callbacks see only executions' ends.
    execution = cfg.steps_per_execution
    in_executions = lambda every: -(-every // execution) * execution
    progress = training.Progress(total_steps, cfg.batch_size,
                                 in_executions(curves.train_log_every(cfg.summary_every, total_steps)),
                                 TRAIN_TAG, print_every=cfg.summary_every or math.lcm(100, execution))
    n_subset = curves.eval_subset_size(total_steps, cfg.batch_size)
    test_subset = curves.SubsetEvaluation(model, standardise(data.x_test[:n_subset]),
                                          data.y_test[:n_subset],
                                          in_executions(curves.test_eval_every(total_steps)))
    checkpointer = training.Checkpointer(model, run_dir, writer, cfg.checkpoint_every, probe_batch)
    checkpointer.before_flush = activations.wait_for_moments  # the step's moments go to disk too
    if resume_dir is None:  # settings, final metrics and chart layout: once per run
        overview.log_run_overview(run_dir, [tag for tag, _ in activations.layers])
    # The loss is read (a host sync) only where something is logged or saved, and at fit ends.
    nan_guard = training.NanGuard(checkpointer, every=(cfg.summary_every, progress.every,
                                                       test_subset.every, cfg.checkpoint_every))
    callbacks = [nan_guard, activations, progress, test_subset, checkpointer, stop]

    # -------------------------------------------------------------------------
    # Train: one fit() per epoch (a resumed run can start mid-epoch); test set at epoch ends.

    def test_at(step):
        """The test set at `step` (a stop request ends it at once), logged unless on disk."""
        with tf.summary.record_if(test_on_disk is None or step > test_on_disk):
            return training.evaluate(model, test_batches, step, callbacks=[stop])

    def at_epoch_end(step):
        test_at(step)
        stop.check()
        checkpointer.save(step)

    stop.install()
    try:
        # Summaries of steps already on disk are not logged again.
        with tf.summary.record_if(lambda: model.optimizer.iterations > (-1 if on_disk is None
                                                                         else on_disk)):
            if 0 < start_step < total_steps and start_step % steps_per_epoch == 0 and (
                    test_on_disk is None or test_on_disk < start_step):
                at_epoch_end(start_step)  # stopped at an epoch end before its test set was done
            step = training.fit_epochs(model, train_batches, steps_per_epoch, start_step,
                                       total_steps, callbacks, at_epoch_end)

            # Final metrics: the full test set in inference mode, never a training-mode batch.
            activations.log(step, final=True)
            result = test_at(step)
            test_subset.log(step)
        activations.close()
        checkpointer.save(step)
        metrics = {
            "test_accuracy": result["accuracy"], "test_loss": result["loss"], "steps": step,
            "epochs": step / steps_per_epoch, "examples_per_sec": progress.examples_per_sec(),
            "seconds_to_first_step": progress.first_step_at,
            "figures_skipped": activations.figures.skipped if activations.figures else 0,
        }
        training.write_json(run_dir / "metrics.json", metrics)
    except Interrupted as stopped:
        step = int(model.optimizer.iterations.numpy())
        activations.close()
        checkpointer.save(step)
        print(f"\nstopped by {stopped} at step {step}; checkpoint saved. Resume with:\n"
              f"  python {sys.argv[0]} --resume {shown_dir}", file=sys.stderr)
        return 128 + stopped.signum
    except Diverged as err:
        activations.close()
        writer.flush()
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        stop.uninstall()
    speed = f", {metrics['examples_per_sec']:.0f} examples/s" if metrics["examples_per_sec"] else ""
    print(f"done: {step} steps, test accuracy {result['accuracy']:.2%}{speed}. "
          + (f"TensorBoard: tensorboard --logdir {run_dir.parent}" if chief else "(the chief wrote the logs)"))
    if stop.signum is not None:  # too late to stop: only the last writes were left
        print(f"{signal.Signals(stop.signum).name} came after the final evaluation; "
              f"the run finished", file=sys.stderr)
    return 0


def write_config(run_dir, config):
    """config.json, or no run folder at all: a run that cannot write it leaves nothing behind."""
    try:
        training.write_json(run_dir / "config.json", config)
    except runfolder.WriteFailed:
        for leftover in run_dir.iterdir():
            leftover.unlink()  # only our lock file and any partial: the folder is new
        run_dir.rmdir()
        raise


if __name__ == "__main__":
    sys.exit(main())
