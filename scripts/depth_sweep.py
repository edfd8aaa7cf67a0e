"""The paper's Figure 1 on this machine: deep fully-connected networks (depth 8, 16, 32) with
SELU (LeCun init, AlphaDropout) against ReLU with batch norm and ReLU without, trained the same
way; every run logs its activations through ActivationSummaries, and report.py draws the sweep.

    python scripts/depth_sweep.py --dataset mnist --data-dir ../shared/data/mnist --root /tmp/depth \
        --learning-rate 0.05 --momentum 0
    python scripts/report.py /tmp/depth        # depth.png: loss curves and per-layer std

It writes only under --root, one run folder per (depth, variant).
"""
import argparse
import math
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import datasets  # noqa: E402  (numpy only)

# What is compared: (name, activation, norm, init, dropout kind), each as the app's `auto` has it.
VARIANTS = (("selu", "selu", "none", "lecun_normal", "alpha"),
            ("relu-bn", "relu", "batch", "he_normal", "standard"),
            ("relu", "relu", "none", "he_normal", "standard"))


def build_parser():
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    add = p.add_argument
    add("--dataset", choices=datasets.NAMES, default="mnist")
    add("--data-dir", metavar="DIR", help="the data set's original files (default: download)")
    add("--root", metavar="DIR", required=True, help="new folder for the runs")
    add("--depths", type=int, nargs="+", default=[8, 16, 32], metavar="D")
    add("--width", type=int, default=256, help="units per hidden layer (default: 256)")
    add("--steps", type=int, default=500, help="optimizer steps per run (default: 500)")
    add("--batch-size", type=int, default=64)
    add("--optimizer", choices=("adam", "sgd"), default="sgd",
        help="the paper trained with SGD (default: sgd)")
    add("--learning-rate", type=float, help="default: the app's default for the optimizer")
    add("--momentum", type=float, help="SGD's momentum (default: the app's)")
    add("--dropout", type=float, default=0.05, help="after every hidden layer (default: 0.05)")
    add("--summary-every", type=int, default=25)
    add("--seed", type=int, default=0)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    root = Path(args.root)
    bad = [f"--{name} must be positive" for name in ("width", "steps", "batch_size", "summary_every")
           if getattr(args, name) <= 0] + (["--depths must be positive"] if min(args.depths) < 1 else [])
    if bad:
        print(f"error: {bad[0]}", file=sys.stderr)
        return 2
    from avh.config import Config, UsageError, check_config

    try:
        check_config(Config(optimizer=args.optimizer, learning_rate=args.learning_rate,
                            momentum=args.momentum, dropout=args.dropout))
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if root.exists() and any(root.iterdir()):
        print(f"error: --root {root} exists and is not empty; choose a new folder", file=sys.stderr)
        return 2
    try:
        data = datasets.load(args.dataset, args.data_dir)
    except datasets.DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from avh.quiet import import_tensorflow

    import_tensorflow()
    start = time.perf_counter()
    for depth in args.depths:
        for variant in VARIANTS:
            train_one(args, data, depth, variant, root / f"depth{depth:02d}" / variant[0])
    print(f"{len(args.depths) * len(VARIANTS)} runs in {time.perf_counter() - start:.0f} s under "
          f"{root}\nfigures: python {REPO_ROOT / 'scripts' / 'report.py'} {root}")
    return 0


def fully_connected(image_shape, num_classes, depth, width, activation, norm, init, dropout_kind,
                    dropout_rate):
    """Flatten, `depth` hidden layers (Dense -> [batch norm] -> activation -> dropout) named
    dense1..denseD / act1..actD, and linear logits."""
    import keras

    import ops

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


def train_one(args, data, depth, variant, run_dir):
    """One run: the app's input pipeline, optimizer and loop, with activation summaries of every
    hidden layer; config.json says what it was, for report.py."""
    import keras

    from avh import training
    from avh.config import Config, optimizer_settings
    from avh.summaries import ActivationSummaries
    from avh.tags import TRAIN_TAG

    name, activation, norm, init, dropout_kind = variant
    keras.utils.clear_session()
    keras.utils.set_random_seed(args.seed)
    cfg = Config(dataset=args.dataset, activation=activation, batch_size=args.batch_size,
                 optimizer=args.optimizer, learning_rate=args.learning_rate,
                 momentum=args.momentum, seed=args.seed,
                 norm=norm, init=init, dropout=args.dropout, dropout_kind=dropout_kind,
                 max_steps=args.steps, summary_every=args.summary_every)
    mean, std = training.channel_stats(data.x_train)
    batches, test_batches, standardise = training.input_pipeline(data, mean, std, cfg.batch_size,
                                                                 cfg.seed)
    model = fully_connected(data.image_shape, data.num_classes, depth, args.width, activation,
                            norm, init, dropout_kind, args.dropout)
    training.compile_model(model, cfg, args.steps)
    run_dir.mkdir(parents=True)
    training.write_json(run_dir / "config.json", {
        "sweep": "depth", "variant": name, "depth": depth, "width": args.width,
        "dataset": args.dataset, "activation": activation, "seed": args.seed,
        "resolved": {"norm": norm, "init": init, "dropout_kind": dropout_kind,
                     "optimizer": {"name": cfg.optimizer, **optimizer_settings(cfg)}},
        "dropout": args.dropout, "batch_size": args.batch_size, "max_steps": args.steps})
    writer = training.summary_writer(run_dir)
    writer.set_as_default()
    summaries = ActivationSummaries(
        standardise(data.x_test[:training.PROBE_SIZE]), writer=writer, every=args.summary_every,
        layers=[f"act{i}" for i in range(1, depth + 1)], numbered=False, log_on_train_end=False)
    # Train loss often enough for a curve: about 100 points a run.
    progress = training.Progress(args.steps, args.batch_size, max(1, args.steps // 100), TRAIN_TAG)
    steps_per_epoch = math.ceil(len(data.x_train) / args.batch_size)
    print(f"=== depth {depth}, {name}: {run_dir}", flush=True)
    step = training.fit_epochs(model, batches, steps_per_epoch, 0, args.steps,
                               [summaries, progress])
    summaries.log(step, final=True)
    result = training.evaluate(model, test_batches, step)
    summaries.close()
    writer.flush()
    training.write_json(run_dir / "metrics.json", {
        "test_accuracy": result["accuracy"], "test_loss": result["loss"], "steps": step,
        "examples_per_sec": progress.examples_per_sec()})


if __name__ == "__main__":
    sys.exit(main())
