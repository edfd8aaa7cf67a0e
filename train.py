"""Train the avh CNN with one activation and log, layer by layer, what it does to the signal.

    python train.py --activation selu --dataset cifar10
    tensorboard --logdir logs/cifar10

Reads top to bottom: settings -> data -> model -> run folder -> callbacks -> fit -> final metrics.
A run is put together in avh_app.run; the activation callback is the avh library's.
"""
import time

PROCESS_START = time.perf_counter()  # for the time-to-first-step figure in metrics.json

import argparse
import gc
import signal
import sys
from pathlib import Path

if __name__ == "__main__":
    # Until training starts there is nothing to save: Ctrl-C just ends the process (no traceback).
    signal.signal(signal.SIGINT, signal.SIG_DFL)

import datasets
import ops
from avh_app import runfolder
from avh_app.cli import BAD_INPUT, Diverged, UsageError, import_tensorflow, usage_error
from avh_app.config import OPTIMIZERS, STRATEGIES, Config, check_config, load_config

# -----------------------------------------------------------------------------
# Settings: avh_app.config.Config mirrors the flags and is what config.json saves.

def build_parser():
    d = Config()
    p = argparse.ArgumentParser(
        description="Train a 3-conv + 3-dense CNN with one activation and log per-layer "
                    "activation histograms, statistics and plots to TensorBoard.",
        argument_default=argparse.SUPPRESS)  # only flags the user gave: --resume checks them
    add = p.add_argument
    add("--dataset", choices=datasets.NAMES + datasets.OWN,
        help=f"data set; folder or npz: your own, at --data-dir (default: {d.dataset})")
    add("--activation", choices=ops.ACTIVATIONS, metavar="{" + ",".join(ops.ACTIVATIONS) + "}",
        help="activation of layers 1-5: " + "; ".join(f"{name}: {a.help}" for name, a in
                                                        ops.ACTIVATION_TABLE.items())
             + f" (default: {d.activation})")
    add("--data-dir", metavar="DIR",
        help="read the data set's original files from DIR, no network; for --dataset folder or npz "
             "the folder of class subfolders or the .npz file (default: download to the Keras "
             "cache, else the bundled sample)")
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
    add("--no-gradients", dest="gradients", action="store_false",
        help="log the activations only, not the backward signal (one backward pass over the "
             "probe at each summary step)")
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
    add("--strategy", choices=STRATEGIES,
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
    return cfg, (Path(resume) if resume else None)


def main(argv=None):
    try:
        # Settings, a resumed run's folder and the data are checked before TensorFlow loads
        # (~3 s): bad input is one line at once.
        cfg, resume_dir = parse_args(argv)
        if resume_dir is not None:
            runfolder.check_checkpoint(resume_dir)
        data = datasets.load(cfg.dataset, cfg.data_dir)
        import_tensorflow()
        from avh_app import loop

        loop.PROCESS_START = PROCESS_START
        return train(cfg, resume_dir, data)
    except (UsageError, datasets.DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return BAD_INPUT
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


def train(cfg, resume_dir=None, data=None):
    """One run, in order; returns its exit status (0 done, 1 diverged, 128 + signal stopped)."""
    from avh_app.run import Run

    run = Run(cfg, resume_dir)  # `auto` resolved; the strategy; a resumed folder locked
    run.load_data(data)         # the data set, its input pipeline and the probe batch
    run.build_model()           # a new model, or the checkpoint being resumed
    run.open_folder()           # a new run folder with its lock and config.json, or the resumed one
    print(run.describe())
    run.add_callbacks()         # NaN guard, activations, progress, test subset, checkpoints, stops
    return run.fit()            # one fit() per epoch, the test set, checkpoints, metrics.json


if __name__ == "__main__":
    status = main()
    # Everything is on disk (the events flushed with the last checkpoint): the interpreter's
    # closing full garbage collection of the ~500,000 objects of TensorFlow, Keras and matplotlib
    # (0.25-0.55 s here) would free only what the process's exit frees. Frozen, they are skipped.
    gc.freeze()
    sys.exit(status)
