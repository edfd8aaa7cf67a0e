"""Measure what train.py's activation summaries cost on this machine (issues #5, #15): throughput
against a plain model.fit and against what users would use instead (Keras' TensorBoard callback
with histogram_freq=1; a hand-written activation-histogram callback), whole-process wall time of
a 500-step CIFAR-10-subset run, steps_per_execution, the cost of one summary event and how it
scales with probe size and depth, time to the first step and peak memory.

    python scripts/benchmark.py [--explain] [--json FILE]   # full-size data: ~15 min, ~20 with --explain
    python scripts/benchmark.py --quick                     # tiny data: a smoke test, ~1 min

It reports numbers and judges none: timings depend on the machine and on what else runs there, so
a slow result never fails (exit 0 when every run ran). This process writes the data and starts
and times the measured processes, one at a time (two with --quick); it imports TensorFlow only
after the last one, to read their event files.
"""
import time

PROCESS_START = time.perf_counter()  # as in train.py: the plain fit's time to its first step

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

TRAIN = REPO_ROOT / "train.py"
MOMENT_MAP_KEY = "moment_map"  # avh.moments.MOMENT_MAP_KEY, without importing TensorFlow here
GB = 1e9

# -----------------------------------------------------------------------------
# Settings: what one run measures; --quick shrinks the same plan to a smoke test.

# Full-size synthetic data in the official layouts: (training images, test images).
SHAPES = {"mnist": (60_000, 10_000), "cifar10": (50_000, 10_000)}
SHAPE_NAMES = {"mnist": "MNIST 28x28x1", "cifar10": "CIFAR-10 32x32x3"}
STRESS_EVERY = 10          # (c): --summary-every 10
TARGETS = {"b/a": 0.97, "c/a": 0.85, "peak_rss_gb": 2.5}


@dataclasses.dataclass(frozen=True)
class Plan:
    steps: dict            # training steps per run: ~30-50 s each at batch 64 on 2 cores
    scale: float = 1.0     # fraction of the full-size data sets to write
    repeats: int = 2       # (a) and (b) run this many times, alternately, for their spread
    cost_repeats: int = 10  # summary events timed in-process, per shape
    pipeline_batches: int = 300
    variant_steps: int = 30  # --jit / --mixed-precision: do they run and log float32?
    variant_every: int = 10
    parallel: int = 1      # processes at a time: 1 for timings that mean something
    whole_steps: int = 500  # whole-process wall time: train.py on the CIFAR-10 subset
    whole_repeats: int = 3  # best of this many, with and without summaries, alternately
    executions: tuple = (1, 4, 16)  # --steps-per-execution values timed (MNIST)
    execution_repeats: int = 2      # rounds over `executions`, for their spread
    probe_sizes: tuple = (32, 128, 512)
    depths: tuple = (6, 12, 24)  # logged layers of a deeper model, through the callback


# Multiples of 500 steps, so each run includes train.py's default checkpoints at their rate.
FULL = Plan(steps={"mnist": 1000, "cifar10": 500})
QUICK = Plan(steps={"mnist": 20, "cifar10": 20}, scale=0.025, repeats=1, cost_repeats=2,
             pipeline_batches=10, variant_steps=10, variant_every=5, parallel=2,
             whole_steps=20, whole_repeats=1, executions=(4,), execution_repeats=1,
             probe_sizes=(32, 64),
             depths=(6, 12))
# The peers: what users would add to model.fit instead of avh.
PEERS = {"d": "tensorboard", "e": "handwritten"}
PEER_NAMES = {"a": "plain model.fit", "d": "keras.callbacks.TensorBoard(histogram_freq=1)",
              "e": "hand-written activation histograms", "b": "avh (train.py defaults)"}
PEER_LOGS = {
    "a": "loss only (Keras' History)",
    "d": "per epoch: a histogram of every weight and bias, epoch loss/accuracy; no activations",
    "e": "every 100 steps: a tf.summary.histogram of each of the 6 layers' activations on the "
         "128-image probe batch; nothing at step 0 or at the end",
    "b": "every 100 steps, step 0 and the last: 6 activation histograms, 18 stats, ~40 moments, "
         "5 figures; train loss/accuracy; test loss/accuracy; checkpoints every 500",
}
SUBSET = REPO_ROOT.parent / "shared" / "data" / "cifar10-subset"  # the 500-step run
VARIANTS = ("--jit", "--mixed-precision")
# --explain: train.py's own overhead (callbacks, checkpoints), and (c) less the figure thread.
EXPLAIN = {"off": ("--summary-every", 0),
           "c-nofigures": ("--summary-every", STRESS_EVERY, "--plot-layers")}


class RunFailed(Exception):
    pass


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--quick", action="store_true",
                   help="tiny data, 20 steps a run, two runs at a time: checks that everything "
                        "runs (about a minute), measures nothing worth reading")
    p.add_argument("--explain", action="store_true",
                   help="also run train.py without summaries, and with --summary-every "
                        f"{STRESS_EVERY} but no figures, to show where an overhead comes from")
    p.add_argument("--repeats", type=int, metavar="N",
                   help=f"run (a) and (b) N times each, alternately (default: {FULL.repeats}); "
                        "more repeats narrow the spread of b/a on a noisy machine")
    p.add_argument("--whole-repeats", type=int, metavar="N",
                   help=f"whole-process runs with and without summaries, best of N "
                        f"(default: {FULL.whole_repeats})")
    p.add_argument("--json", metavar="FILE", help="also save every number to FILE")
    p.add_argument("--workdir", metavar="DIR",
                   help="write data and run folders to DIR and keep them (default: a temporary folder)")
    # (a), the plain fit: this script started again as a measured process of its own.
    p.add_argument("--_plain-fit", metavar="DATASET", help=argparse.SUPPRESS)
    p.add_argument("--_peer", choices=tuple(PEERS.values()), help=argparse.SUPPRESS)
    p.add_argument("--_data-dir", help=argparse.SUPPRESS)
    p.add_argument("--_steps", type=int, help=argparse.SUPPRESS)
    p.add_argument("--_out", help=argparse.SUPPRESS)
    p.add_argument("--_cost-repeats", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--_pipeline-batches", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args._plain_fit:
        plan = QUICK if args.quick else FULL
        result = plain_fit(args._plain_fit, args._data_dir, args._steps, args._cost_repeats,
                           args._pipeline_batches, args._peer, plan)
        Path(args._out).write_text(json.dumps(result, indent=2) + "\n")
        return 0

    plan = QUICK if args.quick else FULL
    if args.repeats is not None:
        if args.repeats < 1:
            print("error: --repeats must be at least 1", file=sys.stderr)
            return 2
        plan = dataclasses.replace(plan, repeats=args.repeats)
    if args.whole_repeats is not None:
        if args.whole_repeats < 1:
            print("error: --whole-repeats must be at least 1", file=sys.stderr)
            return 2
        plan = dataclasses.replace(plan, whole_repeats=args.whole_repeats)
    if args.workdir:
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
        return benchmark(plan, work, args.explain, args.json)
    with tempfile.TemporaryDirectory(prefix="avh-benchmark-") as tmp:
        return benchmark(plan, Path(tmp), args.explain, args.json)


def benchmark(plan, work, explain, json_path):
    load_before = os.getloadavg()
    data_dirs = write_data(work / "data", plan.scale)
    subset = SUBSET if SUBSET.exists() and plan.scale == 1 else write_subset(work / "data")
    runs = planned_runs(plan, data_dirs, work, explain, subset)
    try:
        run_all(runs, plan.parallel)
        results = collect(runs, plan)
        summarise(results)
    except RunFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    results.update(machine=machine(), plan=dataclasses.asdict(plan), load_before=load_before,
                   load_after=os.getloadavg())
    print(report(results, plan))
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


# -----------------------------------------------------------------------------
# Data: full-size synthetic images in the official file layouts, read by datasets.load.

def write_data(root, scale):
    """{dataset: folder}: raw MNIST IDX files (no gzip, so loading stays cheap) and the extracted
    cifar-10-batches-py/ folder, which is what datasets/ reads fastest."""
    from datasets import synthetic as fixtures

    dirs = {}
    for dataset, (n_train, n_test) in SHAPES.items():
        n_train, n_test = max(int(n_train * scale), 320), max(int(n_test * scale), 256)
        folder = root / dataset
        if dataset == "mnist":
            fixtures.write_mnist(folder, n_train=n_train, n_test=n_test, gz=False)
        else:
            fixtures.write_cifar10(folder, n_per_batch=n_train // 5, n_test=n_test, as_tar=False)
        dirs[dataset] = folder
    return dirs


def write_subset(root):
    """CIFAR-10-subset-sized synthetic data (4,000 / 1,000) where the real subset is missing."""
    from datasets import synthetic as fixtures

    return fixtures.write_cifar10(root / "cifar10-subset", n_per_batch=800, n_test=1000,
                                  as_tar=False) or root / "cifar10-subset"


# -----------------------------------------------------------------------------
# The runs: (a) plain fit, (b) train.py with default summaries, (c) with --summary-every 10,
# and --jit / --mixed-precision, each a process of its own.

@dataclasses.dataclass
class Run:
    name: str          # e.g. cifar10-b1, mnist-jit
    dataset: str
    kind: str          # a, b, c, one of EXPLAIN or one of VARIANTS
    cmd: list
    metrics: Path      # the JSON the process writes: train.py's metrics.json, or plain_fit's
    log: Path
    result: dict = None


def planned_runs(plan, data_dirs, work, explain=False, subset=None):
    """Every run, in the order they run: the whole-process pairs; per shape (a, b) alternately, so
    that a slow drift of the machine hits both alike, with (c), (d) and (e) after the first pair;
    the first (a) also times one summary event in-process; then --steps-per-execution, variants."""
    runs = []
    # First, so that a benchmark cut short on a busy machine still has them.
    # Whole process, start to exit: the 500-step CIFAR-10-subset run, defaults otherwise.
    for repeat in range(plan.whole_repeats):
        for kind, flags in (("whole-on", ()), ("whole-off", ("--summary-every", 0))):
            runs.append(train_run(f"cifar10-subset-{kind}{repeat}", kind, "cifar10", subset,
                                  plan.whole_steps, work, *flags))
    for dataset, data_dir in data_dirs.items():
        steps = plan.steps[dataset]
        for repeat in range(plan.repeats):
            runs.append(plain_fit_run(f"{dataset}-a{repeat}", dataset, data_dir, steps, work,
                                      cost_repeats=plan.cost_repeats if repeat == 0 else 0,
                                      pipeline_batches=plan.pipeline_batches,
                                      quick=plan.scale < 1))
            runs.append(train_run(f"{dataset}-b{repeat}", "b", dataset, data_dir, steps, work))
            if repeat == 0:
                runs.append(train_run(f"{dataset}-c", "c", dataset, data_dir, steps, work,
                                      "--summary-every", STRESS_EVERY))
                for kind, peer in PEERS.items() if plan.scale == 1 or dataset == "mnist" else ():
                    runs.append(plain_fit_run(f"{dataset}-{kind}", dataset, data_dir, steps, work,
                                              0, 0, peer=peer, kind=kind))
        if explain:
            for kind, flags in EXPLAIN.items():
                runs.append(train_run(f"{dataset}-{kind}", kind, dataset, data_dir, steps, work,
                                      *flags))
    # --steps-per-execution N: cadences that every N divides
    for repeat in range(plan.execution_repeats):
        for n in plan.executions:
            runs.append(train_run(f"mnist-spe{n}-{repeat}", f"spe{n}", "mnist", data_dirs["mnist"],
                                  plan.steps["mnist"], work, "--steps-per-execution", n,
                                  "--summary-every", 80, "--checkpoint-every", 400))
    for flag in VARIANTS:
        runs.append(train_run(f"mnist{flag[1:]}", flag, "mnist", data_dirs["mnist"],
                              plan.variant_steps, work, flag, "--summary-every", plan.variant_every))
    return runs


def train_run(name, kind, dataset, data_dir, steps, work, *flags):
    run_dir = work / "logs" / name
    cmd = [sys.executable, str(TRAIN), "--dataset", dataset, "--data-dir", str(data_dir),
           "--max-steps", str(steps), "--logdir", str(run_dir.parent), "--run-name", name,
           *map(str, flags)]
    return Run(name, dataset, kind, cmd, run_dir / "metrics.json", work / f"{name}.log")


def plain_fit_run(name, dataset, data_dir, steps, work, cost_repeats, pipeline_batches,
                  peer=None, kind="a", quick=False):
    out = work / f"{name}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_plain-fit", dataset,
           "--_data-dir", str(data_dir), "--_steps", str(steps), "--_out", str(out),
           "--_cost-repeats", str(cost_repeats), "--_pipeline-batches", str(pipeline_batches),
           *(["--_peer", peer] if peer else []), *(["--quick"] if quick else [])]
    return Run(name, dataset, kind, cmd, out, work / f"{name}.log")


def run_all(runs, parallel):
    """Run `runs` in order, `parallel` at a time, each with its own peak RSS and wall time."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    waiting, running = list(runs), {}
    while waiting or running:
        while waiting and len(running) < parallel:
            run = waiting.pop(0)
            with open(run.log, "w") as log:
                proc = subprocess.Popen(run.cmd, stdout=log, stderr=subprocess.STDOUT,
                                        cwd=REPO_ROOT, env=env)
            running[proc.pid] = (run, proc, time.perf_counter())
        # wait4 reports the finished child's own peak RSS; getrusage(RUSAGE_CHILDREN) would be
        # the maximum over every child waited for so far.
        pid, status, usage = os.wait4(-1, 0)
        if pid not in running:
            continue
        run, proc, start = running.pop(pid)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            for _, other, _ in running.values():
                other.kill()
                other.wait()
            tail = "".join(run.log.read_text().splitlines(keepends=True)[-15:])
            raise RunFailed(f"{run.name} ({' '.join(run.cmd)}) exited with {proc.returncode}:\n{tail}")
        kib = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
        run.result = {"peak_rss": usage.ru_maxrss * kib,
                      "wall_seconds": time.perf_counter() - start, **read_json(run.metrics)}
        print(f"  {run.name}: {run.result['examples_per_sec']:.0f} examples/s, first step after "
              f"{run.result['seconds_to_first_step']:.1f} s, peak RSS {run.result['peak_rss'] / GB:.2f} GB, "
              f"{run.result['wall_seconds']:.0f} s in all (load {os.getloadavg()[0]:.2f})",
              file=sys.stderr, flush=True)


def collect(runs, plan):
    """The runs' numbers by shape and kind, plus what their event files hold."""
    from avh.quiet import import_tensorflow

    import_tensorflow()  # the event reader loads TensorFlow: without its start-up chatter

    results = {"shapes": {}, "variants": {}, "executions": {}, "whole": {}}
    for run in runs:
        result = dict(run.result)
        if run.kind.startswith("spe"):
            results["executions"].setdefault(int(run.kind[3:]), []).append(result)
            continue
        if run.kind.startswith("whole"):
            result.update(count_figures(run.metrics.parent))
            results["whole"].setdefault(run.kind[6:], []).append(result)
            continue
        if run.kind in VARIANTS:
            run_dir = run.metrics.parent
            result.update(run_dir=str(run_dir), logged=logged_dtypes(run_dir),
                          dtype_policy=read_json(run_dir / "config.json")["resolved"]["dtype_policy"])
            results["variants"][run.kind] = result
            continue
        shape = results["shapes"].setdefault(run.dataset, {"steps": plan.steps[run.dataset],
                                                           "runs": {"a": [], "b": [], "c": []}})
        shape["runs"].setdefault(run.kind, [])
        if run.kind in ("a", *PEERS):
            # The fit's own peak, read before the process went on to time a summary event.
            result["peak_rss"] = result.pop("fit_peak_rss")
            costs = result.pop("costs")
            if costs:
                shape["costs"] = costs
        else:
            result.update(run_dir=str(run.metrics.parent), **count_figures(run.metrics.parent))
        shape["runs"][run.kind].append(result)
    return results


def read_json(path):
    return json.loads(Path(path).read_text())


# -----------------------------------------------------------------------------
# --jit and --mixed-precision: they run on a CPU, and the activations are logged as float32.

def logged_dtypes(run_dir):
    """What the run's event files hold for each layer: the dtype of its histogram and stats
    tensors, and whether the histogram's extremes (its first left and last right bucket edge
    are the exact min and max) have only bfloat16 precision, i.e. were computed in 16 bits."""
    import numpy as np
    from avh.events import read_events
    from avh.tags import HISTOGRAM_TAG, STAT_TAG
    from model import LAYERS, layer_tag

    events = read_events(run_dir)
    layers = {}
    for k in range(1, len(LAYERS) + 1):
        layer = layer_tag(k)
        histograms = events.get(HISTOGRAM_TAG.format(layer=layer), [])
        means = events.get(STAT_TAG.format(layer=layer, stat="mean"), [])
        if not histograms or not means:
            raise RunFailed(f"{run_dir}: no activation summaries of layer {layer}")
        _, buckets = histograms[-1]
        extremes = np.array([buckets[0, 0], buckets[-1, 1]], np.float32)
        layers[layer] = {"events": len(histograms), "histogram_dtype": str(buckets.dtype),
                         "stats_dtype": str(means[-1][1].dtype),
                         "bfloat16_precision": bool(np.all(extremes.view(np.uint32) & 0xFFFF == 0))}
    return layers


def count_figures(run_dir):
    """(summary events, figure events) in a run's logs: figures are skipped while others draw."""
    from avh.events import read_events
    from avh.tags import HISTOGRAM_TAG, PLOT_TAG
    from model import layer_tag

    events = read_events(run_dir)
    return {"summary_events": len(events.get(HISTOGRAM_TAG.format(layer=layer_tag(1)), [])),
            "figure_events": len(events.get(PLOT_TAG.format(layer=layer_tag(3), kind="map"), []))}


# -----------------------------------------------------------------------------
# (a) and the in-process timings: this script started as `benchmark.py --_plain-fit DATASET`.

def plain_fit(dataset, data_dir, max_steps, cost_repeats, pipeline_batches, peer=None, plan=FULL):
    """(a): what a user would compare with. train.py's model, settings and input pipeline and one
    fit() per epoch like train.py, but no callback except a clock that measures exactly what
    train.py's examples_per_sec does: each fit() from the end of its first step to its end,
    summed, over the steps in that time. Its fit() is plain Keras, which on TensorFlow converts
    every step's logs to floats (History). With `peer`, one of the alternatives (d) or (e) is
    added. Then, if `cost_repeats`, the same process times one summary event, the input pipeline
    alone, and an event against probe size and depth."""
    import resource

    from avh.quiet import import_tensorflow

    _, keras = import_tensorflow()
    import tfplot  # noqa: F401  (train.py's imports: the same start-up cost)

    import datasets
    import ops
    from avh import training
    from avh.config import Config
    from model import build_model

    class FitClock(keras.callbacks.Callback):
        """train.py's Progress clock: each fit() is timed from the end of its first step."""

        def __init__(self):
            super().__init__()
            self.seconds, self.steps, self.first_step_at = 0.0, 0, None

        def on_train_begin(self, logs=None):
            self._clock, self._fit_steps = None, 0

        def on_train_batch_begin(self, batch, logs=None):
            self._fit_steps += 1
            if batch == 1:  # the first step has ended
                self._clock = time.perf_counter()
                if self.first_step_at is None:
                    self.first_step_at = self._clock - PROCESS_START

        def on_train_end(self, logs=None):
            if self._clock is not None:
                self.seconds += time.perf_counter() - self._clock
                self.steps += self._fit_steps - 1

    cfg = Config(dataset=dataset, data_dir=data_dir, max_steps=max_steps)
    norm, init, dropout_kind = ops.resolve(cfg.activation, cfg.norm, cfg.init, cfg.dropout_kind)
    keras.utils.set_random_seed(cfg.seed)
    data = datasets.load(cfg.dataset, cfg.data_dir)
    mean, std = training.channel_stats(data.x_train)
    batches, _, standardise = training.input_pipeline(data, mean, std, cfg.batch_size, cfg.seed)
    steps_per_epoch = math.ceil(len(data.x_train) / cfg.batch_size)
    model = build_model(data.image_shape, data.num_classes, datasets.conv_filters(cfg.dataset),
                        cfg.activation, norm, init, dropout_kind, cfg.dropout)
    training.compile_model(model, cfg, max_steps)
    clock = FitClock()
    callbacks = [clock]
    if peer:
        logdir = Path(tempfile.mkdtemp(prefix=f"avh-peer-{peer}-"))
        callbacks.append(peer_callback(peer, logdir, standardise(data.x_test[:training.PROBE_SIZE])))
    # A plain fit as users write it: one per epoch like train.py (for the same data order), but
    # Keras' own CallbackList, which converts every step's logs to floats.
    step = 0
    while step < max_steps:
        epoch, steps = step // steps_per_epoch, min(steps_per_epoch, max_steps - step)
        model.fit(batches(epoch), initial_epoch=epoch, epochs=epoch + 1, steps_per_epoch=steps,
                  shuffle=False, callbacks=callbacks, verbose=0)
        step += steps
    kib = 1 if sys.platform == "darwin" else 1024
    result = {"steps": clock.steps, "examples_per_sec": clock.steps * cfg.batch_size / clock.seconds,
              "seconds_to_first_step": clock.first_step_at,
              "fit_peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib, "costs": None}
    if cost_repeats:
        probe_images = standardise(data.x_test[:training.PROBE_SIZE])
        result["costs"] = summary_costs(model, probe_images, cfg.plot_layers, cost_repeats)
        result["costs"]["pipeline_examples_per_sec"] = pipeline_rate(
            batches, cfg.batch_size, min(pipeline_batches, steps_per_epoch - 1))
        result["costs"]["probe_sizes"] = {
            n: summary_costs(model, standardise(data.x_test[:n]), (), cost_repeats,
                             figures=False)["histograms_stats_ms"]
            for n in plan.probe_sizes if n <= len(data.x_test)}
        result["costs"]["depths"] = depth_costs(data.image_shape, standardise(
            data.x_test[:training.PROBE_SIZE]), plan.depths, cost_repeats)
    return result


def peer_callback(peer, logdir, probe_images):
    """(d) Keras' TensorBoard callback, or (e) the activation-histogram callback that the widely
    copied answers to "log activation histograms in Keras" write: a multi-output probe model and
    tf.summary.histogram per layer, every 100 steps, on the same probe batch and layers as avh."""
    import keras
    import tensorflow as tf

    from model import LAYERS

    if peer == "tensorboard":
        return keras.callbacks.TensorBoard(log_dir=str(logdir), histogram_freq=1)

    class ActivationHistograms(keras.callbacks.Callback):
        def __init__(self, images, log_dir, every=100):
            super().__init__()
            self.images, self.every, self.step = images, every, 0
            self.writer = tf.summary.create_file_writer(log_dir)

        def set_model(self, model):
            super().set_model(model)
            self.layers = [model.get_layer(name) for name in LAYERS]  # avh's six
            self.probe = keras.Model(model.inputs, [layer.output for layer in self.layers])

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if self.step % self.every == 0:
                outputs = self.probe(self.images, training=False)
                with self.writer.as_default():
                    for layer, output in zip(self.layers, outputs):
                        tf.summary.histogram(layer.name, output, step=self.step)

    return ActivationHistograms(probe_images, str(logdir))


def depth_costs(image_shape, probe_images, depths, repeats):
    """ms of one summary event (no figures) of a plain-conv model with `depth` SELU layers, each
    logged, through the reusable callback: {depth: timings}."""
    import keras

    result = {}
    for depth in depths:
        keras.utils.clear_session()
        inputs = keras.Input(image_shape)
        x = inputs
        for k in range(depth - 1):
            x = keras.layers.Conv2D(16, 3, padding="same", activation="selu",
                                    strides=2 if k in (0, 2) else 1)(x)
        x = keras.layers.Dense(64, activation="selu")(keras.layers.Flatten()(x))
        model = keras.Model(inputs, keras.layers.Dense(10)(x))
        result[depth] = summary_costs(model, probe_images, (), repeats, figures=False,
                                      layers=None)["histograms_stats_ms"]
    return result


class HandedOver:
    """Stands in for FigureRenderer: keeps what ActivationSummaries hands over for drawing."""

    def __init__(self):
        self.step, self.layers, self.skipped = None, None, 0

    def submit(self, step, layers, wait=False):
        self.step, self.layers = step, layers

    def close(self):
        pass


def summary_costs(model, probe_images, plot_layers, repeats, figures=True, layers="model"):
    """ms for one summary event, split as train.py splits the work: ActivationSummaries' share on
    the training thread (histograms + stats of the probe batch, and handing the figure data over;
    the probe's forward pass alone, for scale) and FigureRenderer's work for the event's figures,
    timed here on this thread."""
    import tensorflow as tf

    from avh import training
    from avh.figures import FigureRenderer
    from avh.summaries import ActivationSummaries
    from model import LAYERS

    with tempfile.TemporaryDirectory() as logdir:
        writer = training.summary_writer(logdir)
        summaries = ActivationSummaries(
            probe_images, writer=writer, every=1, numbered=True,
            layers=list(LAYERS) if layers == "model" else layers,
            figure_layers=[LAYERS[k - 1] for k in plot_layers])
        summaries.set_model(model)
        if summaries.figures is not None:
            summaries.figures.close()
        handed_over = summaries.figures = HandedOver()
        probe = summaries._probe_model
        forward = tf.function(lambda images: probe(images, training=False))
        forward(probe_images)  # first calls trace: not timed
        summaries.log(0)
        forward_s = timings(lambda i: forward(probe_images), repeats)
        summary_s = timings(lambda i: summaries.log(i + 1), repeats)
        summaries.wait_for_moments()
        # The moments' numpy and scalar writes, done on a thread of their own in training.
        units = {tag: {k: v.numpy() for k, v in unit.items()} for tag, unit in
                 summaries._summarise(summaries.probe_batch, tf.constant(0, tf.int64))[1].items()}
        moments_s = timings(lambda i: summaries._log_moments(i, units), repeats)
        if not figures:
            return {"histograms_stats_ms": ms(summary_s)}

        renderer = FigureRenderer(writer)
        # One event's figures, drawn and logged on this thread.
        draw = lambda i: renderer.draw_and_log(handed_over.step, handed_over.layers)
        first_figures_s = timings(draw, 1)  # includes matplotlib's first-use costs (fonts)
        figures_s = timings(draw, repeats)
        fresh_s = timings(lambda i: fresh_figures(handed_over.step, handed_over.layers), repeats)
        renderer.close()
        if renderer.failed:
            raise RuntimeError(f"figures failed: {renderer.failed}")
        flush_s = timings(lambda i: writer.flush(), 1)
    return {"probe_size": int(probe_images.shape[0]), "plot_layers": list(plot_layers),
            "repeats": repeats, "probe_forward_ms": ms(forward_s),
            "histograms_stats_ms": ms(summary_s), "figures_ms": ms(figures_s),
            "first_figures_ms": ms(first_figures_s), "flush_ms": ms(flush_s),
            "fresh_figures_ms": ms(fresh_s), "moments_ms": ms(moments_s),
            "figure_count": len(handed_over.layers) * 2 - (MOMENT_MAP_KEY in handed_over.layers)}


def fresh_figures(step, layers):
    """The figures of an event as they were drawn before figures were reused (issue #15):
    each built anew (a new figure per image) and logged with tf.summary.image, for the
    before/after figure."""
    import numpy as np
    import tensorflow as tf

    from avh.figures import activation_map_figure, histogram_figure
    from avh.theory_figures import moment_map_figure

    for layer, data in layers.items():
        if layer == MOMENT_MAP_KEY:
            tf.summary.image("fresh/moment_map", moment_map_figure(list(data.items()))[np.newaxis],
                             step=step)
            continue
        tf.summary.image("fresh/map", activation_map_figure(data["first_example"], layer)[np.newaxis],
                         step=step)
        tf.summary.image("fresh/histogram", histogram_figure(
            data["counts"], data["mean"], data["std"], layer)[np.newaxis], step=step)


def pipeline_rate(batches, batch_size, n_batches):
    """Examples/s of the input pipeline on its own, after its start-up."""
    iterator = iter(batches(0))
    next(iterator)
    start = time.perf_counter()
    for _ in range(n_batches):
        next(iterator)
    return n_batches * batch_size / (time.perf_counter() - start)


def timings(fn, repeats):
    seconds = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        seconds.append(time.perf_counter() - start)
    return seconds


def ms(seconds):
    return {"mean": 1000 * statistics.fmean(seconds), "min": 1000 * min(seconds),
            "max": 1000 * max(seconds)}


# -----------------------------------------------------------------------------
# Report: a Markdown table and the lines around it.

def machine():
    from importlib.metadata import version

    model = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")),
                 platform.processor() or platform.machine())
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            **{package: version(package) for package in ("tensorflow", "keras", "matplotlib")}}


def _cpuinfo():
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def summarise(results):
    """Adds each shape's means and ratios (`summary`) to `results`."""
    for shape in results["shapes"].values():
        runs = shape["runs"]
        a, b, c = (statistics.fmean(r["examples_per_sec"] for r in runs[k]) for k in "abc")
        shape["summary"] = {
            "a": a, "b": b, "c": c, "b/a": b / a, "c/a": c / a,
            "b/a_pairs": [rb["examples_per_sec"] / ra["examples_per_sec"]
                          for ra, rb in zip(runs["a"], runs["b"])],
            "first_step_s": {k: statistics.fmean(r["seconds_to_first_step"] for r in runs[k])
                             for k in "abc"},
            "peak_rss_gb": {k: max(r["peak_rss"] for r in runs[k]) / GB for k in "abc"},
            **{f"{kind}/a": statistics.fmean(r["examples_per_sec"] for r in runs[kind]) / a
               for kind in EXPLAIN if kind in runs},
            "peers": {k: {"examples_per_sec": statistics.fmean(r["examples_per_sec"] for r in runs[k]),
                          "ratio": statistics.fmean(r["examples_per_sec"] for r in runs[k]) / a,
                          "peak_rss_gb": max(r["peak_rss"] for r in runs[k]) / GB,
                          "wall_seconds": min(r["wall_seconds"] for r in runs[k])}
                      for k in ("a", "d", "e", "b") if k in runs},
        }
    whole = results["whole"]
    if whole:
        on, off = (min(r["wall_seconds"] for r in whole[k]) for k in ("on", "off"))
        results["whole_summary"] = {"on_s": on, "off_s": off, "overhead": on / off - 1,
                                    "figure_events": whole["on"][0]["figure_events"],
                                    "summary_events": whole["on"][0]["summary_events"],
                                    "peak_rss_gb": max(r["peak_rss"] for r in whole["on"]) / GB}


def report(results, plan):
    from avh.config import Config

    m, shapes, defaults = results["machine"], results["shapes"], Config()
    s = {d: shape["summary"] for d, shape in shapes.items()}
    quick = " (--quick: a smoke test, its numbers mean nothing)" if plan.scale < 1 else ""
    lines = [
        f"## avh benchmark: what the activation summaries cost{quick}",
        "",
        f"machine: {m['cpu']}, {m['cores']} cores; TensorFlow {m['tensorflow']}, Keras {m['keras']}, "
        f"Python {m['python']}; load average {results['load_before'][0]:.2f} before, "
        f"{results['load_after'][0]:.2f} after",
        f"runs: synthetic images in the official file layouts, train.py's defaults "
        f"({defaults.activation}, batch {defaults.batch_size}, summaries every "
        f"{defaults.summary_every} steps, checkpoints every {defaults.checkpoint_every}); "
        + ", ".join(f"{d} {shape['steps']} steps" for d, shape in shapes.items())
        + " a run"
        + (f"; (a) and (b) ran {plan.repeats} times, alternately: b/a is the ratio of their means "
           f"(range over the pairs)" if plan.repeats > 1 else ""),
        "",
        f"| shape | a: plain fit ex/s | b: train.py ex/s | c: --summary-every {STRESS_EVERY} ex/s "
        f"| b/a | c/a "
        "| first step s (a / b) | peak RSS GB (a / b / c) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for dataset, x in s.items():
        pairs = x["b/a_pairs"]
        spread = f" ({min(pairs):.3f}-{max(pairs):.3f})" if len(pairs) > 1 else ""
        first, rss = x["first_step_s"], x["peak_rss_gb"]
        lines.append(f"| {SHAPE_NAMES[dataset]} | {x['a']:.0f} | {x['b']:.0f} | {x['c']:.0f} "
                     f"| {x['b/a']:.3f}{spread} | {x['c/a']:.3f} | {first['a']:.1f} / {first['b']:.1f} "
                     f"| {rss['a']:.2f} / {rss['b']:.2f} / {rss['c']:.2f} |")
    cifar = s["cifar10"]
    lines += ["", "targets (information, not a test): " + "; ".join([
        *(f"b/a >= {TARGETS['b/a']} {d} {_verdict(x['b/a'] >= TARGETS['b/a'])}" for d, x in s.items()),
        f"c/a >= {TARGETS['c/a']} cifar10 {_verdict(cifar['c/a'] >= TARGETS['c/a'])}",
        f"peak RSS < {TARGETS['peak_rss_gb']} GB cifar10 "
        f"{_verdict(max(cifar['peak_rss_gb'].values()) < TARGETS['peak_rss_gb'])}"])]

    costs = {d: shape["costs"] for d, shape in shapes.items()}
    some = next(iter(costs.values()))
    lines += ["", f"one summary event, probe batch of {some['probe_size']} images, ms "
                  f"(mean of {some['repeats']}):"]
    for dataset, cost in costs.items():
        b, c = shapes[dataset]["runs"]["b"][0], shapes[dataset]["runs"]["c"][0]
        lines.append(
            f"- {dataset}: histograms + stats {cost['histograms_stats_ms']['mean']:.0f} on the "
            f"training thread (the probe's forward pass alone: {cost['probe_forward_ms']['mean']:.0f}); "
            f"figures of layers {', '.join(map(str, cost['plot_layers']))} "
            f"{cost['figures_ms']['mean']:.0f} on the figure thread (the first: "
            f"{cost['first_figures_ms']['mean']:.0f}); flush {cost['flush_ms']['mean']:.0f}. "
            f"Figures logged: b {b['figure_events']} of {b['summary_events']} events, "
            f"c {c['figure_events']} of {c['summary_events']}")
    lines.append("- input pipeline alone: " + ", ".join(
        f"{d} {cost['pipeline_examples_per_sec']:.0f} ex/s "
        f"({cost['pipeline_examples_per_sec'] / s[d]['a']:.0f}x the plain fit)"
        for d, cost in costs.items()))

    lines += ["", "avh against what users would use instead (same model, data, batch and steps; "
                  "steady-state ex/s, ratio to the plain fit, whole process s, peak RSS GB):", "",
              "| shape | run | logs | ex/s | ratio to (a) | process s | peak RSS GB |",
              "|---|---|---|---:|---:|---:|---:|"]
    for dataset, x in s.items():
        for k, peer in x["peers"].items():
            lines.append(f"| {SHAPE_NAMES[dataset]} | ({k}) {PEER_NAMES[k]} | {PEER_LOGS[k]} "
                         f"| {peer['examples_per_sec']:.0f} | {peer['ratio']:.3f} "
                         f"| {peer['wall_seconds']:.0f} | {peer['peak_rss_gb']:.2f} |")
    if "whole_summary" in results:
        w = results["whole_summary"]
        every = {k: ", ".join(f"{r['wall_seconds']:.1f}" for r in results["whole"][k])
                 for k in ("on", "off")}
        lines += ["", f"whole process, {plan.whole_steps}-step CIFAR-10-subset run, best of "
                      f"{plan.whole_repeats}: {w['on_s']:.1f} s with default summaries, "
                      f"{w['off_s']:.1f} s with --summary-every 0: {100 * w['overhead']:+.1f}% "
                      f"(every run, in order: {every['on']} s / {every['off']} s; figures at "
                      f"{w['figure_events']} of {w['summary_events']} summary steps; "
                      f"peak RSS {w['peak_rss_gb']:.2f} GB)"]
    if results["executions"]:
        rates = {n: [r["examples_per_sec"] for r in rs] for n, rs in results["executions"].items()}
        base = statistics.fmean(rates[min(rates)])
        lines += ["", f"--steps-per-execution N (mnist, {plan.steps['mnist']} steps, summaries every "
                      f"80, checkpoints every 400; mean of {plan.execution_repeats} rounds, "
                      f"range): " + "; ".join(
                          f"N={n}: {statistics.fmean(r):.0f} ex/s ({min(r):.0f}-{max(r):.0f}), "
                          f"{statistics.fmean(r) / base:.3f}" for n, r in sorted(rates.items()))]
    lines += ["", "one summary event against probe size and depth (histograms + stats on the "
                  "training thread, ms, no figures):"]
    for dataset, cost in costs.items():
        lines.append(f"- {dataset}: probe " + ", ".join(
            f"{n} images {t['mean']:.0f}" for n, t in cost["probe_sizes"].items())
            + "; logged layers (a plain SELU conv net through the callback, 128 images) " + ", ".join(
            f"{d}: {t['mean']:.0f}" for d, t in cost["depths"].items()))
        lines.append(f"- {dataset}: an event's {cost['figure_count']} figures {cost['figures_ms']['mean']:.0f} "
                     f"ms reused against {cost['fresh_figures_ms']['mean']:.0f} ms built anew; "
                     f"moments (numpy + scalar writes, on their own thread) "
                     f"{cost['moments_ms']['mean']:.0f} ms")

    if any(f"{kind}/a" in x for kind in EXPLAIN for x in s.values()):
        lines += ["", "where it comes from (--explain), ratios to (a): " + "; ".join(
            f"{d}: train.py with --summary-every 0 {x['off/a']:.3f}, with --summary-every "
            f"{STRESS_EVERY} but no figures {x['c-nofigures/a']:.3f}" for d, x in s.items())]

    lines += ["", f"variants (mnist, {plan.variant_steps} steps, summaries every "
                  f"{plan.variant_every}; ex/s include compiling):"]
    for flag, v in results["variants"].items():
        logged = v["logged"]
        dtypes = sorted({f"histograms {x['histogram_dtype']}, stats {x['stats_dtype']}"
                         for x in logged.values()})
        bf16 = [layer for layer, x in logged.items() if x["bfloat16_precision"]]
        lines.append(f"- {flag}: ran, policy {v['dtype_policy']}, {v['examples_per_sec']:.0f} ex/s; "
                     f"logged {'; '.join(dtypes)} for {len(logged)} layers; extremes with only "
                     f"bfloat16 precision: {', '.join(bf16) or 'none'}")
    return "\n".join(lines)


def _verdict(met):
    return "met" if met else "MISSED"


if __name__ == "__main__":
    sys.exit(main())
