"""Time one load of a data set from local files and report the process's peak memory.

Usage: python scripts/bench_data.py --data-dir ../shared/data/mnist [--dataset mnist]
"""

import argparse
import resource
import time


import datasets


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=datasets.NAMES, default="mnist")
    parser.add_argument("--data-dir", required=True, help="folder holding the data set's official files")
    args = parser.parse_args()

    baseline_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is in KiB on Linux
    start = time.perf_counter()
    data = datasets.load(args.dataset, args.data_dir)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    arrays_mib = sum(a.nbytes for a in (data.x_train, data.y_train, data.x_test, data.y_test)) / 2**20
    print(f"{args.dataset}: {len(data.x_train)} train + {len(data.x_test)} test images of {data.image_shape}")
    print(f"load time {seconds:.2f} s; peak RSS {peak_mib:.0f} MiB "
          f"(before loading {baseline_mib:.0f} MiB; the loaded arrays hold {arrays_mib:.0f} MiB)")


if __name__ == "__main__":
    main()
