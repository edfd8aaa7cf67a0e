"""How fast the Activations dashboard's routes answer through a real TensorBoard server.

    python scripts/dashboard_timing.py LOGDIR [--repeats 20]

Starts `tensorboard --logdir LOGDIR` on a free port, waits until every run is loaded, then times
each route as the page calls it (all runs selected) and prints median and worst times in ms.
"""
import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

ROUTES = "/data/plugin/activations"


def get(url):
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
    return time.perf_counter() - start, json.loads(body)


def wait_until_loaded(base, timeout):
    """Until /runs answers the same runs and last steps twice in a row (TensorBoard loads event
    files in the background after it starts)."""
    deadline, previous = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            _, answer = get(base + ROUTES + "/runs")
            state = [(r["run"], r["last_step"]) for r in answer["runs"]]
            if state and state == previous:
                return answer
            previous = state
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(1.5)
    sys.exit(f"error: TensorBoard did not load {base} within {timeout} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdir")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", args.logdir,
                                   "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=log)
        try:
            answer = wait_until_loaded(base, args.timeout)
            runs = [r["run"] for r in answer["runs"] if r["layers"]]
            layers = answer["layers"]
            steps = get(base + ROUTES + "/distribution?" + urllib.parse.urlencode(
                {"layer": layers[0], "run": runs}, doseq=True))[1]["steps"]
            print(f"{args.logdir}: {len(runs)} runs, {len(layers)} layers, {len(steps)} steps a layer; "
                  f"{args.repeats} requests each")
            requests = {
                "/runs": ["/runs"],
                "/distribution (last step)": [
                    "/distribution?" + urllib.parse.urlencode({"layer": layer, "run": runs}, doseq=True)
                    for layer in layers],
                "/distribution (middle step)": [
                    "/distribution?" + urllib.parse.urlencode(
                        {"layer": layer, "step": steps[len(steps) // 2], "run": runs}, doseq=True)
                    for layer in layers],
                "/trajectory": [
                    "/trajectory?" + urllib.parse.urlencode({"layer": layer, "run": runs}, doseq=True)
                    for layer in layers],
            }
            print(f"{'route':30} {'median ms':>10} {'max ms':>8}")
            for name, paths in requests.items():
                times = [get(base + ROUTES + paths[i % len(paths)])[0] * 1000 for i in range(args.repeats)]
                print(f"{name:30} {statistics.median(times):10.1f} {max(times):8.1f}")
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
