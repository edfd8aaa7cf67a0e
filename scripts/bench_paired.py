"""The callbacks side by side in one process, to the percent: one long model.fit whose epochs of
100 steps go in turn to a plain fit and to each kind of logging (avh's ActivationSummaries, also
with the probe's labels for the backward signal, Keras' TensorBoard, the hand-written
histograms), in a new random order every round. Each kind is timed over its own blocks, wall and
CPU time, and compared with the plain block of the same round, a few seconds away: the machine's
drift between processes (±5-15% here) cancels out.

    python scripts/bench_paired.py [--shapes mnist cifar10 resnet50v2] [--rounds N] [--json FILE]
    python scripts/bench_paired.py --quick        # tiny data and blocks: a smoke test, ~15 s

A block holds one event of each kind, at its last step (the peers' cadence), and ends when
everything that event started is done (the callback's figures and moments on their threads):
a kind is charged all of its work. The callback draws its figures at every event here (its time
budget, the safety valve, is off), so it is charged more than in a run of its own.
Peak memory is not measured here (one process holds every kind): scripts/benchmark.py does.
It reports numbers and judges none; exit 0 when every block ran.
"""
import argparse
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from avh import DEFAULT_EVERY
from avh_app.bench import plan as plans
from avh_app.bench.data import write_data
from avh_app.bench.paired import KINDS, report, turns_schedule
from avh_app.bench.results import machine
from avh_app.cli import BAD_INPUT, import_tensorflow, usage_error

SHAPES = ("mnist", "cifar10", "resnet50v2")
ROUNDS = 24       # measured rounds a shape (after one round of warming up)
DEEP_ROUNDS = 6   # on the keras.applications networks: a ResNet50V2 round is ~130 s here
BLOCK = DEFAULT_EVERY  # steps a block: the peers' cadence, one event of each kind a block


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--shapes", nargs="+", metavar="NAME", default=list(SHAPES),
                   choices=[s.name for s in plans.SHAPES], help="default: %(default)s")
    p.add_argument("--rounds", type=int, metavar="N",
                   help=f"measured rounds (default: {ROUNDS}, {DEEP_ROUNDS} on deep networks)")
    p.add_argument("--quick", action="store_true",
                   help="tiny data, blocks of 5 steps, 2 rounds: checks that it runs, measures nothing")
    p.add_argument("--json", metavar="FILE", help="also save every block's times to FILE")
    p.add_argument("--workdir", metavar="DIR",
                   help="write the data and each kind's logs to DIR and keep them (default: a "
                        "temporary folder)")
    p.error = usage_error
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        print("error: --rounds must be at least 1", file=sys.stderr)
        return BAD_INPUT
    _, keras = import_tensorflow()
    info = {"date": time.strftime("%Y-%m-%d"), "load_before": os.getloadavg()[0]}
    block = 5 if args.quick else BLOCK
    with contextlib.ExitStack() as stack:
        work = (Path(args.workdir) if args.workdir else
                Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="avh-paired-"))))
        data_dirs = write_data(work / "data", 0.01 if args.quick else 1.0)
        results = {}
        for shape in [s for s in plans.SHAPES if s.name in args.shapes]:
            rounds = args.rounds or (2 if args.quick else
                                     ROUNDS if shape.network == "cnn" else DEEP_ROUNDS)
            print(f"{shape.name}: {rounds} rounds of {len(KINDS)} blocks of {block} steps",
                  file=sys.stderr, flush=True)
            results[shape.name] = measure(shape, data_dirs[shape.dataset], work / shape.name,
                                          rounds, block, seed=len(results))
            keras.backend.clear_session()
    info.update(machine=machine(), load_after=os.getloadavg()[0])
    print(report(results, info, block))
    if args.json:
        Path(args.json).write_text(json.dumps({"info": info, "block_steps": block,
                                               "shapes": results}, indent=2) + "\n")
    return 0


def measure(shape, data_dir, logdir, rounds, block, seed):
    """Every block's (kind, round, wall seconds, CPU seconds) of one shape, and the callback's
    event and figure counts."""
    from avh_app.bench.fits import Turns, logging_callback, network
    from avh_app.config import Config
    from avh_app.run import Run

    schedule = turns_schedule(rounds, seed)
    cfg = Config(dataset=shape.dataset, data_dir=str(data_dir), batch_size=shape.batch_size,
                 max_steps=len(schedule) * block)
    run = Run(cfg, network=network(shape.network, cfg))
    run.load_data()
    model = run.build_model()
    # The callback's figures at every event (its time budget, the safety valve, off): all of its
    # work is charged to it.
    kinds = {kind: [c for c in [logging_callback(kind, run, model, logdir / kind, every=block,
                                                 figure_time_share=1.0)] if c]
             for kind in KINDS}
    turns = Turns(kinds, schedule)
    model.fit(run.train_batches(0).repeat(), epochs=len(schedule), steps_per_epoch=block,
              shuffle=False, callbacks=[turns], verbose=0)
    for callbacks in (kinds["callback"], kinds["callback-gradients"]):
        callbacks[0].close()  # its threads and writer
    summaries = kinds["callback"][0]
    return {"network": shape.network, "batch_size": shape.batch_size,
            "blocks": [dataclasses.asdict(b) for b in turns.blocks],
            "callback_events": summaries.costs.events,
            "figures_drawn": summaries.figures.drawn if summaries.figures else 0,
            "figures_skipped": summaries.figures.skipped if summaries.figures else 0}


if __name__ == "__main__":
    sys.exit(main())
