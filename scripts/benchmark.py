"""Measure what avh's logging costs on this machine: each kind of logging against a plain
model.fit on the same shapes (the app's CNN on MNIST and CIFAR-10, and keras.applications networks
of 49-121 activation layers), from interleaved repeats, with CPU time and peak memory; the whole
train.py process with and without summaries; and the figures logged at short cadences.

    python scripts/benchmark.py [--repeats N] [--json FILE]   # full-size data: about 2 hours
    python scripts/benchmark.py --quick                      # tiny data: a smoke test, ~1 min

It reports numbers and judges none: timings depend on the machine and on what else runs there,
so a slow result never fails (exit 0 when every run ran). This process writes the data, then
starts the measured processes one at a time (avh_app/bench/plan.py says which) and reads what
they wrote; it imports TensorFlow only at the end, to count figures in their event files.
"""
import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from avh_app.bench import plan as plans
from avh_app.bench.data import write_data, write_subset
from avh_app.bench.processes import GB, RunFailed, run_all
from avh_app.bench.results import machine, report, summarise
from avh_app.cli import BAD_INPUT, usage_error

SUBSET = plans.REPO_ROOT.parent / "shared" / "data" / "cifar10-subset"  # the whole-process run's


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--quick", action="store_true",
                   help="tiny data, a few steps a run, two at a time: checks that every kind "
                        "runs (about a minute), measures nothing worth reading")
    p.add_argument("--repeats", type=int, metavar="N",
                   help=f"run every kind N times, interleaved (default: {plans.FULL.repeats})")
    p.add_argument("--shapes", nargs="+", metavar="NAME", choices=[s.name for s in plans.SHAPES],
                   help="measure only these shapes (default: all)")
    p.add_argument("--json", metavar="FILE", help="also save every number to FILE")
    p.add_argument("--workdir", metavar="DIR",
                   help="write data and run folders to DIR and keep them (default: a temporary folder)")
    p.error = usage_error
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    plan = plans.QUICK if args.quick else plans.FULL
    if args.repeats is not None:
        if args.repeats < 1:
            print("error: --repeats must be at least 1", file=sys.stderr)
            return BAD_INPUT
        plan = dataclasses.replace(plan, repeats=args.repeats)
    if args.shapes:
        plan = dataclasses.replace(plan, shapes=tuple(s for s in plan.shapes if s.name in args.shapes)
                                   or tuple(s for s in plans.SHAPES if s.name in args.shapes))
    if args.workdir:
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
        return benchmark(plan, work, args.json, parallel=plans.QUICK_PARALLEL if args.quick else 1)
    with tempfile.TemporaryDirectory(prefix="avh-benchmark-") as tmp:
        return benchmark(plan, Path(tmp), args.json, parallel=plans.QUICK_PARALLEL if args.quick else 1)


def benchmark(plan, work, json_path, parallel):
    info = {"date": time.strftime("%Y-%m-%d"), "load_before": os.getloadavg()[0]}
    data_dirs = write_data(work / "data", plan.scale)
    subset = SUBSET if SUBSET.exists() and plan.scale == 1 else write_subset(work / "data")
    runs = plans.measured_processes(plan, data_dirs, subset, work)
    print(f"{len(runs)} measured processes", file=sys.stderr, flush=True)
    try:
        run_all(runs, parallel, report=progress)
    except RunFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    count_figures(runs)
    info.update(machine=machine(), load_after=os.getloadavg()[0])
    summary = summarise(runs)
    print(report(summary, plan, info))
    if json_path:
        Path(json_path).write_text(json.dumps(
            {"info": info, "plan": dataclasses.asdict(plan), "summary": _keys_as_text(summary),
             "runs": [{**dataclasses.asdict(r), "cmd": " ".join(r.cmd)} for r in runs]},
            indent=2, default=str) + "\n")
    return 0


def progress(run):
    r = run.result
    print(f"  {run.name}: {r['examples_per_sec'] or 0:.0f} examples/s, "
          f"{1000 * (r['cpu_seconds_per_step'] or 0):.0f} ms CPU a step, first step after "
          f"{r['seconds_to_first_step'] or 0:.1f} s, peak RSS {r['peak_rss'] / GB:.2f} GB, "
          f"{r['wall_seconds']:.0f} s in all (load {os.getloadavg()[0]:.2f})",
          file=sys.stderr, flush=True)


def _keys_as_text(summary):
    return {**summary, "pairs": {" / ".join(key): value for key, value in summary["pairs"].items()}}


def count_figures(runs):
    """Each run's (figure events, summary events) from its event files, in `result["figures"]`:
    figures are skipped while others draw, within their time share."""
    from avh_app.cli import import_tensorflow

    import_tensorflow()  # the event reader loads TensorFlow: without its start-up chatter
    from avh.events import read_events
    from avh.tags import HISTOGRAM_TAG, PLOT_TAG

    histogram, plot = HISTOGRAM_TAG.format(layer=""), PLOT_TAG.split("{")[0]
    for run in runs:
        if run.kind not in ("callback", "app", "app-every-10") and run.section != "cadence":
            continue
        events = read_events(run.logdir, want=lambda tag: tag.startswith((histogram, plot)))
        histograms = sorted(tag for tag in events if tag.startswith(histogram))
        maps = sorted(tag for tag in events if tag.startswith(plot) and tag.endswith("/map"))
        if histograms:
            run.result["figures"] = (len(events[maps[0]]) if maps else 0, len(events[histograms[0]]))


if __name__ == "__main__":
    sys.exit(main())
