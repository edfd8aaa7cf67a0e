"""How fast the Activations dashboard's routes answer through a real TensorBoard server, and the
synthetic seed sweep to measure them on.

    python scripts/dashboard_timing.py LOGDIR [--repeats 20] [--think 5]
    python scripts/dashboard_timing.py --generate DIR --runs 100 --steps 100 [--no-timing]

Starts `tensorboard --logdir LOGDIR` on a free port, waits until every run is loaded, then times
each route as the page calls it (all runs selected), in the order a page asks them: each distinct
request once cold (the first time the server sees it), then `--repeats` times warm; prints median
and worst ms of both and the answer's size. Between opening the page and its first moves (another
step, the gradients) it waits `--think` seconds, as a user looks at the page first (the dashboard
reads finished runs' series ahead while nothing is asked); `--think 0` asks at once.

`--generate DIR` first writes a seed sweep into DIR (which must not exist or be empty): runs
`selu/seed0`, `relu/seed0`, `selu/seed1`, ... with `--steps` summary steps each, every layer's
activation and gradient histograms (80 uniform buckets, as avh.summaries writes them), their
statistics, the weight statistics and a loss, with config.json and metrics.json. Written with
TensorBoard's own protos in seconds, no TensorFlow and no training; the numbers are made up to
look like the app's runs (SELU's std stays near 1 through depth, ReLU's forward std falls and its
gradient shrinks towards the input).
"""
import argparse
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

ROUTES = "/data/plugin/activations"
LAYERS = ("1_conv1", "2_conv2", "3_conv3", "4_fc4", "5_fc5", "6_logits")
GROUPS = ("selu", "relu")
BUCKETS = 80
SUMMARY_EVERY = 10
PROBE_VALUES = 128 * 1024  # values in one layer's output on the probe batch: a histogram's total


# --- a synthetic seed sweep ------------------------------------------------------------------

def _histogram(noise, spread, zero_share=0.0, centre=0.0, relu=False):
    """[BUCKETS, 3] float64 (left, right, count) with uniform edges from the smallest value to
    the largest, as avh.signal.histogram_buckets makes them. `relu`: max(0, N(0, spread)), so
    `zero_share` of the values are 0 and the rest half-normal; else N(centre, spread) with
    `zero_share` of the values exactly 0 (gradients through units that were off)."""
    import numpy as np
    from scipy.special import ndtr

    if relu:
        edges = np.linspace(0.0, 4.0 * spread, BUCKETS + 1)
        mass = np.diff(2 * ndtr(edges / spread)) * (1 - zero_share)
        mass[0] += zero_share
    else:
        edges = np.linspace(centre - 4.0 * spread, centre + 4.0 * spread, BUCKETS + 1)
        mass = np.diff(ndtr((edges - centre) / spread)) * (1 - zero_share)
        if zero_share:
            mass[min(max(np.searchsorted(edges, 0.0, side="right") - 1, 0), BUCKETS - 1)] += zero_share
    counts = np.floor(mass / mass.sum() * PROBE_VALUES * (1 + 0.01 * noise))
    return np.stack([edges[:-1], edges[1:], counts], axis=1)


class SweepRun:
    """One synthetic run of the sweep being written, in `<root>/<group>/seed<seed>`: `write(k)`
    logs summary step k (step k * every) of `steps` planned, `flush()` makes what was written
    readable, `close()` ends it and writes metrics.json. config.json is written at once.
    `gradients=False` writes a run as older versions of the app did (no backward signal)."""

    def __init__(self, root, group, run_seed, steps, layers=LAYERS, gradients=True,
                 every=SUMMARY_EVERY, seed=0, start_time=None):
        import numpy as np
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        from avh.tags import CONFIG_FILE

        self.name = f"{group}/seed{run_seed}"
        self.run_dir = os.path.join(root, group, f"seed{run_seed}")
        os.makedirs(self.run_dir)
        self.group, self.steps, self.layers, self.gradients, self.every = group, steps, layers, gradients, every
        self.start_time = start_time  # None: each event at the time it is written
        self._rng = np.random.default_rng([seed, run_seed, zlib.crc32(group.encode())])
        self._scale = 1 + 0.05 * self._rng.standard_normal()  # a seed's own level
        self._writer = EventFileWriter(self.run_dir, max_queue_size=1000, flush_secs=3600)
        self._written = set()
        with open(os.path.join(self.run_dir, CONFIG_FILE), "w", encoding="utf-8") as f:
            json.dump({"activation": group, "dataset": "synthetic", "seed": run_seed}, f)

    def _value(self, tag, number=None, histogram=None):
        import numpy as np
        from tensorboard.compat.proto import summary_pb2
        from tensorboard.plugins.histogram import metadata as histogram_metadata
        from tensorboard.plugins.scalar import metadata as scalar_metadata
        from tensorboard.util import tensor_util

        first = tag not in self._written  # metadata with a tag's first value, as tf.summary does
        self._written.add(tag)
        if histogram is not None:
            meta = histogram_metadata.create_summary_metadata(display_name=None, description=None)
            return summary_pb2.Summary.Value(tag=tag, tensor=tensor_util.make_tensor_proto(histogram),
                                             metadata=meta if first else None)
        meta = scalar_metadata.create_summary_metadata(display_name=None, description=None)
        return summary_pb2.Summary.Value(tag=tag, tensor=tensor_util.make_tensor_proto(np.float32(number)),
                                         metadata=meta if first else None)

    def write(self, k):
        from tensorboard.compat.proto import event_pb2, summary_pb2

        from avh.tags import GRADIENT_STAT_TAG, GRADIENT_TAG, HISTOGRAM_TAG, STAT_TAG, TRAIN_TAG, WEIGHT_TAG

        value = self._value
        step, progress = k * self.every, k / max(self.steps - 1, 1)
        values = [value(TRAIN_TAG.format(metric="loss"), number=2.3 * math.exp(-3 * progress) + 0.05)]
        depth, scale = len(self.layers), self._scale
        for depth_index, layer in enumerate(self.layers):
            noise = self._rng.standard_normal(4)
            if self.group == "selu":
                std = scale * (1.0 + 0.04 * noise[0] + 0.1 * progress * depth_index / depth)
                mean, nonpositive = 0.02 * noise[1], 0.46
                hist = _histogram(noise[3], std, centre=mean)
                grad_std, grad_zeros = 1e-3 * scale * (1 + 0.05 * noise[2]) * (1 + progress), 0.0
            else:  # max(0, N(0, s)): std = 0.584 s, mean = 0.399 s
                std = scale * 1.2 * 0.72 ** depth_index * (1 + 0.04 * noise[0])
                mean, nonpositive = 0.683 * std, 0.5
                hist = _histogram(noise[3], std / 0.584, zero_share=0.5, relu=True)
                grad_std = 2e-3 * scale * 0.55 ** (depth - 1 - depth_index) * (1 + 0.05 * noise[2])
                grad_zeros = 0.45
            values.append(value(HISTOGRAM_TAG.format(layer=layer), histogram=hist))
            for stat, number in (("mean", mean), ("std", std), ("nonpositive_fraction", nonpositive)):
                values.append(value(STAT_TAG.format(layer=layer, stat=stat), number=number))
            if not self.gradients:
                continue
            values.append(value(GRADIENT_TAG.format(layer=layer),
                                histogram=_histogram(noise[3], grad_std, zero_share=grad_zeros)))
            for stat, number in (("std", grad_std), ("rms", grad_std * 1.0001), ("zero_fraction", grad_zeros)):
                values.append(value(GRADIENT_STAT_TAG.format(layer=layer, stat=stat), number=number))
            for stat, number in (("gradient_norm", grad_std * 300), ("update_ratio", 1e-3 * (1 - 0.8 * progress))):
                values.append(value(WEIGHT_TAG.format(layer=layer, stat=stat), number=number))
        wall_time = time.time() if self.start_time is None else self.start_time + step * 0.05
        self._writer.add_event(event_pb2.Event(step=step, wall_time=wall_time,
                                               summary=summary_pb2.Summary(value=values)))

    def flush(self):
        self._writer.flush()

    def close(self):
        from avh.tags import METRICS_FILE

        self._writer.close()
        with open(os.path.join(self.run_dir, METRICS_FILE), "w", encoding="utf-8") as f:
            json.dump({"steps": (self.steps - 1) * self.every}, f)


def write_sweep(root, runs=100, steps=100, groups=GROUPS, layers=LAYERS, gradients=True,
                every=SUMMARY_EVERY, seed=0):
    """A root of `runs` finished runs (`<group>/seed<k>`, the groups taking turns) with `steps`
    summary steps (0, every, 2 every, ...) each; returns the run names."""
    os.makedirs(root, exist_ok=True)
    if os.listdir(root):
        raise SystemExit(f"error: {root} is not empty")
    names, start = [], time.time() - steps * every * 0.05
    for index in range(runs):
        run = SweepRun(root, groups[index % len(groups)], index // len(groups), steps, layers=layers,
                       gradients=gradients, every=every, seed=seed, start_time=start)
        for k in range(steps):
            run.write(k)
        run.close()
        names.append(run.name)
    return names


# --- timing through a real TensorBoard ---------------------------------------------------------

def get(url):
    """(seconds, bytes, answer) of one GET."""
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        body = response.read()
    return time.perf_counter() - start, len(body), json.loads(body)


def wait_until_loaded(base, timeout):
    """Until /runs answers the same runs and last steps twice in a row (TensorBoard loads event
    files in the background after it starts)."""
    deadline, previous = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            answer = get(base + ROUTES + "/runs")[2]
            state = [(r["run"], r["last_step"]) for r in answer["runs"]]
            if state and state == previous:
                return answer
            previous = state
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(1.5)
    sys.exit(f"error: TensorBoard did not load {base} within {timeout} s")


def page_requests(answer, base):
    """[(route name, [paths])] in the order a page asks them with every run selected: opening
    (the default last step, every layer's trajectory, the depth view), then moving the step and
    switching to gradients. Each path is asked once cold, in this order, then again warm."""
    runs = [r["run"] for r in answer["runs"] if r["layers"]]
    layers = answer["layers"]
    gradient_runs = [r["run"] for r in answer["runs"] if r.get("gradient_layers")]

    def path(route, **params):
        return route + "?" + urllib.parse.urlencode(params, doseq=True)

    requests = [
        ("/settings", ["/settings"]),
        ("/runs", ["/runs"]),
        ("/distribution (last step)", [path("/distribution", layer=layer, run=runs) for layer in layers]),
        ("/trajectory", [path("/trajectory", layer=layer, run=runs) for layer in layers]),
        ("/depth (last step)", [path("/depth", layer=layers, run=runs)]),
    ]
    return runs, layers, gradient_runs, requests, path


def time_routes(logdir, repeats, timeout, verbose=False, think=0.0):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", logdir,
                                   "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=log)
        try:
            answer = wait_until_loaded(base, timeout)
            runs, layers, gradient_runs, requests, path = page_requests(answer, base)
            cold, warm = {}, {}
            for name, paths in requests:
                cold[name] = [_timed(base + ROUTES + p) for p in paths]
                if name == "/trajectory":  # its steps give the step a user moves to
                    steps = [point[0] for point in cold[name][0][2]["runs"][0]["points"]] \
                        if cold[name][0][2] and cold[name][0][2]["runs"] else [0]
                    middle = steps[len(steps) // 2]
            later = [("/distribution (middle step)",
                      [path("/distribution", layer=layer, step=middle, run=runs) for layer in layers]),
                     ("/depth (middle step)", [path("/depth", step=middle, layer=layers, run=runs)])]
            if gradient_runs:
                later.append(("/distribution (gradients)", [
                    path("/distribution", layer=layer, kind="gradients", run=gradient_runs) for layer in layers]))
            time.sleep(think)
            for name, paths in later:
                cold[name] = [_timed(base + ROUTES + p) for p in paths]
            requests += later
            if verbose:
                for name, _ in requests:
                    print(name, " ".join(f"{t * 1000:.0f}" for t, _, _ in cold[name] if t is not None))
            for name, paths in requests:
                warm[name] = [_timed(base + ROUTES + paths[i % len(paths)]) for i in range(repeats)]
            print(f"{logdir}: {len(runs)} runs, {len(layers)} layers, {len(steps)} steps a layer; "
                  f"cold: each path's first request (nothing cached), the page's moves {think:g} s after it "
                  f"opened; warm: {repeats} requests after")
            print(f"{'route':30} {'cold median':>12} {'cold worst':>11} {'warm median':>12} "
                  f"{'warm worst':>11} {'bytes':>9}")
            for name, _ in requests:
                if any(t is None for t, _, _ in cold[name] + warm[name]):
                    print(f"{name:30} {'not served':>12}")
                    continue
                c = [t * 1000 for t, _, _ in cold[name]]
                w = [t * 1000 for t, _, _ in warm[name]]
                size = statistics.median(n for _, n, _ in warm[name])
                print(f"{name:30} {statistics.median(c):12.1f} {max(c):11.1f} {statistics.median(w):12.1f} "
                      f"{max(w):11.1f} {size:9.0f}")
        finally:
            server.terminate()
            server.wait(timeout=10)


def _timed(url):
    """(seconds, bytes, answer) of a GET; (None, 0, None) for a route the server does not have."""
    try:
        return get(url)
    except urllib.error.HTTPError as err:
        if err.code in (400, 404):
            return None, 0, None
        raise


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdir", nargs="?", help="a root to time (or --generate one)")
    parser.add_argument("--generate", metavar="DIR", help="write a synthetic seed sweep into DIR, then time it")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--no-timing", action="store_true", help="with --generate: only write the root")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--think", type=float, default=5.0,
                        help="seconds between opening the page and moving its step (default 5)")
    parser.add_argument("--timeout", type=float, default=180)
    parser.add_argument("--verbose", action="store_true", help="also print every cold request's ms")
    args = parser.parse_args()
    if bool(args.logdir) == bool(args.generate):
        parser.error("give a LOGDIR to time, or --generate DIR")
    if not args.think >= 0:
        parser.error(f"--think must be 0 or more seconds, not {args.think:g}")
    logdir = args.logdir
    if args.generate:
        started = time.perf_counter()
        names = write_sweep(args.generate, runs=args.runs, steps=args.steps)
        print(f"wrote {len(names)} runs x {args.steps} steps into {args.generate} "
              f"in {time.perf_counter() - started:.1f} s")
        logdir = args.generate
        if args.no_timing:
            return
    time_routes(logdir, args.repeats, args.timeout, args.verbose, args.think)


if __name__ == "__main__":
    main()
