"""What a figure event costs in isolation: the app's five figures (an activation map and a
histogram of a conv and a dense layer, the moment map) drawn on reused figures and PNG-encoded,
event after event, on synthetic data that drifts as training does; CPU time of this thread.

    python scripts/figure_timing.py [--events 60] [--json FILE]

It prints the median of each part an event and of the whole, and the first event's (which
builds the figures' static parts). Timings depend on the machine: nothing here is asserted.
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np

from avh_app.cli import BAD_INPUT, import_tensorflow, usage_error

PARTS = ("maps", "histograms", "moment map", "PNGs")


def event_data(rng, i):
    """The figures' inputs at event i: activations of one probe image, binned counts with tails
    beyond the range and a spike at the dense layer's lower bound (SELU's), moments that drift."""
    from avh.figure_rules import HISTOGRAM_BINS, HISTOGRAM_RANGE

    def counts(scale, shift, spike):
        values = rng.standard_normal(100_000) * scale + shift
        low, high = HISTOGRAM_RANGE
        inside, _ = np.histogram(values, bins=HISTOGRAM_BINS, range=(low, high))
        inside[18] += spike
        return np.concatenate([[np.sum(values < low)], inside, [np.sum(values > high)]])

    return {
        "maps": [(rng.standard_normal((7, 7, 64)).astype(np.float32) * (1 + 0.02 * i), "3_conv3"),
                 (rng.standard_normal(160).astype(np.float32), "4_fc4")],
        "histograms": [(counts(1.1 + 0.03 * i, 0.01 * i, 0), 0.01 * i, 1.1 + 0.03 * i, "3_conv3"),
                       (counts(1.5 + 0.1 * i, 0.2, 4000 * (i % 3)), 0.2, 1.5 + 0.1 * i, "4_fc4")],
        "paths": {f"{k}_layer{k}": (0.05 * k + 0.01 * i, 1.0 + 0.05 * k * i) for k in (1, 2, 3)},
    }


def run(events, seed=0):
    """{"first": the first event's CPU ms, part: [CPU ms of each later event]}."""
    from avh.figures import (MOMENT_MAP_DPI, MOMENT_MAP_INCHES, PngEncoder, ReusedFigures,
                             build_activation_map, build_histogram, build_moment_map)

    rng = np.random.default_rng(seed)
    reused, encoders, paths = ReusedFigures(), {}, {}
    times = {part: [] for part in ("all", *PARTS)}
    first = None
    for i in range(events):
        data = event_data(rng, i)
        for label, point in data["paths"].items():
            paths.setdefault(label, []).append(point)
        images, marks = {}, [time.thread_time()]  # the CPU clock as each part (PARTS) ends
        for n, args in enumerate(data["maps"]):
            images[f"map{n}"] = reused.draw(("map", n), build_activation_map, *args)
        marks.append(time.thread_time())
        for n, args in enumerate(data["histograms"]):
            images[f"histogram{n}"] = reused.draw(("histogram", n), build_histogram, *args)
        marks.append(time.thread_time())
        images["moment map"] = reused.draw("moment map", build_moment_map, list(paths.items()),
                                           "SELU layers", figsize=MOMENT_MAP_INCHES,
                                           dpi=MOMENT_MAP_DPI)
        marks.append(time.thread_time())
        for tag, image in images.items():
            encoders.setdefault(tag, PngEncoder()).encode(image)
        marks.append(time.thread_time())
        spent = dict(zip(PARTS, np.diff(marks)))
        total = 1000 * (marks[-1] - marks[0])
        if i == 0:
            first = total
            continue
        times["all"].append(total)
        for part in PARTS:
            times[part].append(1000 * spent[part])
    return {"first": first, **times}


def main(argv=None):
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--events", type=int, default=60, help="events to draw (default: 60)")
    parser.add_argument("--json", metavar="FILE", help="also write every event's times here")
    parser.error = usage_error
    args = parser.parse_args(argv)
    if args.events < 2:
        print("error: --events must be at least 2 (the first event builds the figures)",
              file=sys.stderr)
        return BAD_INPUT
    import_tensorflow()  # quietly, before avh.figure_rules imports it
    times = run(args.events)
    print(f"first event (builds the figures): {times['first']:.1f} ms of CPU")
    print(f"each later event, median of {args.events - 1}: {statistics.median(times['all']):.1f} ms")
    for part in PARTS:
        print(f"  {part}: {statistics.median(times[part]):.2f} ms")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(times, out, indent=1)


if __name__ == "__main__":
    sys.exit(main())
