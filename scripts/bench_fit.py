"""One measured fit for scripts/benchmark.py: the app's input pipeline and a network (the app's CNN
or a keras.applications one), trained by a plain model.fit with one kind of logging and timed as
the app times itself (avh_app.loop.SteadyClock). Writes its numbers as JSON to --out.

    python scripts/bench_fit.py --kind callback --dataset cifar10 --network ResNet50V2 \\
        --data-dir DIR --steps 200 --logdir DIR --out FILE
"""
import time

PROCESS_START = time.perf_counter()  # as in train.py: the time to the first step

import argparse
import json
from pathlib import Path

from avh_app.cli import import_tensorflow

tf, keras = import_tensorflow()
from avh.summaries import ActivationSummaries
from avh_app import loop
from avh_app.bench.fits import logged_layers, logging_callback, network
from avh_app.bench.plan import KINDS
from avh_app.config import Config
from avh_app.run import Run


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kind", choices=[k for k in KINDS if not k.startswith("app")], required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--network", default="cnn")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--batch-size", type=int, default=Config.batch_size)
    p.add_argument("--logdir", required=True, help="where the kind's logging writes")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    cfg = Config(dataset=args.dataset, data_dir=args.data_dir, max_steps=args.steps,
                 batch_size=args.batch_size)
    run = Run(cfg, network=network(args.network, cfg))
    run.load_data()
    model = run.build_model()
    clock = loop.SteadyClock(PROCESS_START)
    logging = logging_callback(args.kind, run, model, args.logdir)
    callbacks = [clock] + ([logging] if logging else [])
    summaries = logging if isinstance(logging, ActivationSummaries) else None

    # A plain fit as users write it, one per epoch like train.py (for the same data order), with
    # Keras' own CallbackList, which converts every step's logs to floats.
    step = 0
    while step < args.steps:
        epoch, steps = step // run.steps_per_epoch, min(run.steps_per_epoch, args.steps - step)
        model.fit(run.train_batches(epoch), initial_epoch=epoch, epochs=epoch + 1,
                  steps_per_epoch=steps, shuffle=False, callbacks=callbacks, verbose=0)
        step += steps
    result = {"kind": args.kind, "network": args.network, "steps": step,
              "batch_size": cfg.batch_size,
              "logged_layers": len(logged_layers(run, model)[0]),
              "examples_per_sec": clock.examples_per_sec(cfg.batch_size),
              "cpu_seconds_per_step": clock.cpu_seconds_per_step(),
              "seconds_to_first_step": clock.first_step_at, "timed_steps": clock.steps,
              "median_step_ms": clock.median_step_ms()}
    if summaries is not None:
        summaries.close()
        figures = summaries.figures
        result.update(events=summaries.costs.events, event_ms=summaries.costs.per_event_ms(),
                      figure_ms=figures.cpu_ms_per_event() if figures else None,
                      figures_skipped=figures.skipped if figures else 0,
                      logged_layers=len(summaries.layers))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
