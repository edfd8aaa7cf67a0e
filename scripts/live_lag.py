"""How long a live TensorBoard waits for a step: train.py runs while this watches its run folder,
and for every summary step reports when its events appeared on disk against when they were
logged (the events' own wall time).

    python scripts/live_lag.py --data-dir ../shared/data/mnist --max-steps 600 [train.py flags]

It runs one train.py in a temporary logdir (or --logdir's) and prints the lag per summary step,
then its median and maximum.
"""
import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from avh.events import EVENTS_PREFIX
from avh.tags import HISTOGRAM_TAG

TRAIN = Path(__file__).resolve().parent.parent / "train.py"
POLL_SECONDS = 0.05


def watch(run_dir, process, tag):
    """{step: (logged wall time, seen on disk)} of `tag`'s events while `process` runs."""
    from tensorboard.backend.event_processing import event_file_loader

    loaders, seen = {}, {}
    while True:
        running = process.poll() is None
        for path in sorted(run_dir.glob(EVENTS_PREFIX + "*")):
            loader = loaders.setdefault(path, event_file_loader.EventFileLoader(str(path)))
            now = time.time()
            for event in loader.Load():
                for value in event.summary.value:
                    if value.tag == tag and event.step not in seen:
                        seen[event.step] = (event.wall_time, now)
        if not running:
            return seen
        time.sleep(POLL_SECONDS)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--logdir", help="where the run goes (default: a temporary folder)")
    p.add_argument("--layer", default="1_conv1", help="the layer whose histogram is watched")
    args, train_args = p.parse_known_args()
    with tempfile.TemporaryDirectory(prefix="avh-lag-") as tmp:
        logdir = Path(args.logdir or tmp)
        run_dir = logdir / "lag"
        process = subprocess.Popen([sys.executable, str(TRAIN), *train_args, "--logdir", str(logdir),
                                    "--run-name", "lag"], stdout=subprocess.DEVNULL)
        while not run_dir.exists() and process.poll() is None:
            time.sleep(POLL_SECONDS)
        seen = watch(run_dir, process, HISTOGRAM_TAG.format(layer=args.layer))
    if process.returncode:
        sys.exit(f"error: train.py exited with {process.returncode}")
    lags = {step: disk - logged for step, (logged, disk) in sorted(seen.items())}
    for step, lag in lags.items():
        print(f"step {step}: on disk {lag:.2f} s after it was logged")
    print(f"{len(lags)} summary steps: lag median {statistics.median(lags.values()):.2f} s, "
          f"max {max(lags.values()):.2f} s")


if __name__ == "__main__":
    main()
