"""Running the benchmark's measured processes one at a time (or a few, for a smoke test), each
with its own wall time, CPU time and peak memory from the kernel (wait4's rusage)."""
import json
import os
import subprocess
import sys
import time

from avh_app.bench.plan import REPO_ROOT

GB = 1e9


class RunFailed(Exception):
    pass


def run_all(runs, parallel=1, report=None):
    """Run `runs` in order, `parallel` at a time; each gets `result`: its JSON plus peak_rss
    (bytes), wall_seconds and cpu_seconds (user + system of the whole process). RunFailed at
    the first that fails (the others are stopped)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    waiting, running = list(runs), {}
    while waiting or running:
        while waiting and len(running) < parallel:
            run = waiting.pop(0)
            with open(run.log, "w") as log:
                proc = subprocess.Popen(run.cmd, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=REPO_ROOT, env=env)
            running[proc.pid] = (run, proc, time.perf_counter())
        # wait4 reports the finished child's own peak RSS; getrusage(RUSAGE_CHILDREN) would be
        # the maximum over every child waited for so far.
        pid, status, usage = os.wait4(-1, 0)
        if pid not in running:
            continue
        run, proc, start = running.pop(pid)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            for _, other, _ in running.values():
                other.kill()
                other.wait()
            tail = "".join(run.log.read_text().splitlines(keepends=True)[-15:])
            raise RunFailed(f"{run.name} ({' '.join(run.cmd)}) exited with {proc.returncode}:\n{tail}")
        kib = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
        run.result = {**json.loads(run.out.read_text()), "peak_rss": usage.ru_maxrss * kib,
                      "wall_seconds": time.perf_counter() - start,
                      "cpu_seconds": usage.ru_utime + usage.ru_stime}
        if report is not None:
            report(run)
