"""The paper's Figure 1 on this machine: deep fully-connected networks (depth 8, 16, 32) with
SELU (LeCun init, AlphaDropout) against ReLU with batch norm and ReLU without, trained the same
way; each run is an app run (avh_app.run) that logs every hidden layer, and report.py draws it.

    python scripts/depth_sweep.py --dataset mnist --data-dir ../shared/data/mnist --root /tmp/depth \
        --learning-rate 0.05 --momentum 0
    python scripts/report.py /tmp/depth        # depth.png: loss curves and per-layer std

It writes only under --root, one run folder per (depth, variant).
"""
import argparse
import sys
import time
from pathlib import Path

import datasets  # numpy only
from avh_app.cli import BAD_INPUT, UsageError, usage_error
from avh_app.config import Config, check_config

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
    p.error = usage_error
    return p


def configs(args):
    """{(depth, variant name): Config} of every run, each checked like a train.py run's."""
    runs = {}
    for depth in args.depths:
        for name, activation, norm, init, dropout_kind in VARIANTS:
            cfg = Config(dataset=args.dataset, data_dir=args.data_dir, activation=activation,
                         norm=norm, init=init, dropout=args.dropout, dropout_kind=dropout_kind,
                         batch_size=args.batch_size, optimizer=args.optimizer,
                         learning_rate=args.learning_rate, momentum=args.momentum,
                         seed=args.seed, max_steps=args.steps, summary_every=args.summary_every,
                         plot_layers=(), logdir=args.root, run_name=f"depth{depth:02d}/{name}")
            check_config(cfg)
            runs[depth, name] = cfg
    return runs


def main(argv=None):
    args = build_parser().parse_args(argv)
    root = Path(args.root)
    try:
        for name in ("width", "steps", "batch_size", "summary_every"):
            if getattr(args, name) <= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be positive")
        if min(args.depths) < 1:
            raise UsageError("--depths must be positive")
        runs = configs(args)
        if root.exists() and any(root.iterdir()):
            raise UsageError(f"--root {root} exists and is not empty; choose a new folder")
        data = datasets.load(args.dataset, args.data_dir)
    except (UsageError, datasets.DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return BAD_INPUT
    from avh_app.cli import import_tensorflow

    _, keras = import_tensorflow()
    from avh_app.run import Network, Run
    from model import build_deep_fc

    start = time.perf_counter()
    for (depth, name), cfg in runs.items():
        keras.utils.clear_session()
        build = (lambda data, cfg, resolved, depth=depth:
                 build_deep_fc(data.image_shape, data.num_classes, depth, args.width,
                               cfg.activation, *resolved, cfg.dropout))
        run = Run(cfg, network=Network(build),  # every hidden layer's activation, by name
                  record={"sweep": {"name": "depth", "variant": name, "depth": depth,
                                    "width": args.width}})
        print(f"=== depth {depth}, {name}", flush=True)
        run.load_data(data)
        run.build_model()
        run.open_folder()
        print(run.describe())
        run.add_callbacks()
        status = run.fit()
        if status:
            return status
    print(f"{len(runs)} runs in {time.perf_counter() - start:.0f} s under {root}\n"
          f"figures: python {Path(__file__).resolve().parent / 'report.py'} {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
