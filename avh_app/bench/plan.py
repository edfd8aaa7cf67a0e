"""What scripts/benchmark.py measures: the shapes (a data set and a network), the kinds of logging
compared on each, and the order of the measured processes (repeats interleaved).

Each measured process is train.py (the app's kinds) or scripts/bench_fit.py (a plain model.fit
with one kind of logging), on full-size synthetic data in the official file formats.
"""
import dataclasses
import sys
from pathlib import Path

from avh.tags import METRICS_FILE

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
TRAIN = REPO_ROOT / "train.py"
BENCH_FIT = REPO_ROOT / "scripts" / "bench_fit.py"

# What each kind logs, for the report's table. The app's kinds run train.py, the others a plain
# model.fit (scripts/bench_fit.py) with the same model, input pipeline, batch and steps.
KINDS = {
    "plain": "a plain model.fit: the loss only (Keras' History)",
    "app": "train.py at its defaults: every 100 steps, step 0 and the last, every layer's "
           "histogram and stats, the paper's moments and the figures of 2 layers; train and "
           "test-subset curves, the test set at the end, checkpoints every 500 steps",
    "app-no-gradients": "train.py with --no-gradients: the same without the backward signal",
    "app-summaries-off": "train.py with --summary-every 0: the app's own work alone (curves, test "
                         "subset and test set, checkpoints, live flushes)",
    "app-every-10": "train.py with --summary-every 10 (a stress test of the summaries)",
    "callback": "avh's ActivationSummaries alone in a plain model.fit, every 100 steps, step 0 "
                "and the last: every logged layer's histogram and stats, the paper's moments and "
                "the figures of 2 layers",
    "keras-tensorboard": "keras.callbacks.TensorBoard(histogram_freq=1): per epoch a histogram "
                         "of every weight and bias; no activations",
    "handwritten": "the activation-histogram callback of the widely copied answers: every 100 "
                   "steps a multi-output probe model and tf.summary.histogram of the same layers "
                   "on the same probe batch; nothing at step 0 or the end",
}
APP_KINDS = {"app": (), "app-no-gradients": ("--no-gradients",),
             "app-summaries-off": ("--summary-every", 0), "app-every-10": ("--summary-every", 10)}


@dataclasses.dataclass(frozen=True)
class Shape:
    name: str
    dataset: str      # the synthetic data set it trains on
    network: str      # "cnn" (model.py) or a keras.applications name
    steps: int        # training steps a run
    kinds: tuple
    batch_size: int = 64
    repeats: int = None  # None: the plan's


CNN_KINDS = ("plain", "app", "app-no-gradients", "app-summaries-off", "callback",
             "keras-tensorboard", "handwritten")
SHAPES = (
    Shape("mnist", "mnist", "cnn", 1000, CNN_KINDS),
    Shape("cifar10", "cifar10", "cnn", 500, CNN_KINDS),
    # 32x32 inputs, weights=None: 49, 65 and 121 activation layers. Batch 32 (a step of
    # ResNet50V2 at 64 takes 0.9 s here); 150 steps: an event at step 100 in the timed part.
    Shape("resnet50v2", "cifar10", "ResNet50V2", 150,
          ("plain", "callback", "keras-tensorboard", "handwritten"), batch_size=32),
    Shape("efficientnetb0", "cifar10", "EfficientNetB0", 150, ("plain", "callback"),
          batch_size=32, repeats=3),
    Shape("densenet121", "cifar10", "DenseNet121", 150, ("plain", "callback"), batch_size=32,
          repeats=3),
)
# Full-size synthetic data: (training images, test images).
DATA_SIZES = {"mnist": (60_000, 10_000), "cifar10": (50_000, 10_000)}


@dataclasses.dataclass(frozen=True)
class Plan:
    shapes: tuple = SHAPES
    repeats: int = 5        # every kind of every shape, interleaved with the others
    scale: float = 1.0      # of the full-size data sets
    steps_scale: float = 1.0
    whole_steps: int = 500  # train.py on the CIFAR-10 subset, start to exit
    whole_repeats: int = 3  # with and without summaries, alternately
    cadences: tuple = (25, 50)  # --summary-every values whose figure counts are measured
    cadence_steps: int = 300
    stress_repeats: int = 1     # app-every-10: one run per shape is enough to show it

    def repeats_of(self, shape):
        """How many times each kind of `shape` runs: its own repeats, at most the plan's."""
        return min(shape.repeats or self.repeats, self.repeats)


FULL = Plan()
# A smoke test: every kind's process runs once on tiny data (the whole-process pairs and the
# cadences are train.py runs like the app kind; their summaries are tested on made-up results).
QUICK = Plan(shapes=(dataclasses.replace(SHAPES[0], kinds=CNN_KINDS),), repeats=1, scale=0.01,
             steps_scale=0.01, whole_repeats=0, cadences=(), stress_repeats=0)
QUICK_PARALLEL = 2  # processes at a time in a smoke test: mostly TensorFlow's start-up


@dataclasses.dataclass
class Measured:
    """One measured process and, once it ran, what it reported."""
    name: str
    section: str       # "kinds", "whole", "cadence"
    shape: str
    kind: str
    repeat: int
    cmd: list
    out: Path          # the JSON it writes: train.py's metrics.json, or bench_fit's
    log: Path          # its output
    logdir: Path       # where its summaries go
    result: dict = None


def measured_processes(plan, data_dirs, subset, work):
    """Every measured process in the order they run. The whole-process pairs first (a
    benchmark cut short still has them), then the kinds: repeat by repeat, each shape's kinds in
    an order rotated by one each repeat, so that a slow drift of the machine hits every kind
    alike; the stress runs and the figure cadences last."""
    runs = []
    for repeat in range(plan.whole_repeats):
        for on, flags in ((True, ()), (False, ("--summary-every", 0))):
            runs.append(_train(work, f"whole-{'on' if on else 'off'}{repeat}", "whole",
                               "cifar10-subset", "app" if on else "app-off", repeat, "cifar10",
                               subset, plan.whole_steps, flags))
    for repeat in range(plan.repeats):
        for shape in plan.shapes:
            if repeat >= plan.repeats_of(shape):
                continue
            kinds = [k for k in shape.kinds if k != "app-every-10"]
            kinds = kinds[repeat % len(kinds):] + kinds[:repeat % len(kinds)]
            for kind in kinds:
                runs.append(_kind(plan, work, shape, kind, repeat, data_dirs[shape.dataset]))
    for repeat in range(plan.stress_repeats):
        for shape in plan.shapes:
            if "app" in shape.kinds:
                runs.append(_kind(plan, work, shape, "app-every-10", repeat,
                                  data_dirs[shape.dataset]))
    for every in plan.cadences:
        runs.append(_train(work, f"cadence-{every}", "cadence", "mnist", f"every-{every}", 0,
                           "mnist", data_dirs["mnist"], plan.cadence_steps,
                           ("--summary-every", every)))
    return runs


def _kind(plan, work, shape, kind, repeat, data_dir):
    steps = max(int(shape.steps * plan.steps_scale), 4)
    name = f"{shape.name}-{kind}-{repeat}"
    if kind in APP_KINDS:
        return _train(work, name, "kinds", shape.name, kind, repeat, shape.dataset, data_dir,
                      steps, APP_KINDS[kind])
    out, logdir = work / f"{name}.json", work / "logs" / name
    cmd = [sys.executable, str(BENCH_FIT), "--kind", kind, "--dataset", shape.dataset,
           "--network", shape.network, "--data-dir", str(data_dir), "--steps", str(steps),
           "--batch-size", str(shape.batch_size), "--logdir", str(logdir), "--out", str(out)]
    return Measured(name, "kinds", shape.name, kind, repeat, cmd, out, work / f"{name}.log", logdir)


def _train(work, name, section, shape, kind, repeat, dataset, data_dir, steps, flags):
    run_dir = work / "logs" / name
    cmd = [sys.executable, str(TRAIN), "--dataset", dataset, "--data-dir", str(data_dir),
           "--max-steps", str(steps), "--logdir", str(run_dir.parent), "--run-name", name,
           *map(str, flags)]
    return Measured(name, section, shape, kind, repeat, cmd, run_dir / METRICS_FILE,
                    work / f"{name}.log", run_dir)
