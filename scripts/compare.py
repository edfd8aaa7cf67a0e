"""Train every activation with the same settings and seed into one TensorBoard root, then serve it.

    python scripts/compare.py --dataset cifar10 --epochs 5 [other train.py flags]
    python scripts/compare.py --dataset mnist --seeds 3 --jobs 2   # ROOT/ACTIVATION/seedK

Flags not listed in --help go to train.py unchanged. This process only starts and watches
others (train.py runs, TensorBoard): it must not import TensorFlow.
"""
import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import datasets  # numpy only: cheap
import ops  # no TensorFlow at import
from avh.tags import CONFIG_FILE, METRICS_FILE
from avh_app import runfolder  # no TensorFlow
from avh_app.cli import BAD_INPUT, UsageError, usage_error

REPO_ROOT = Path(__file__).resolve().parent.parent
TRAIN = REPO_ROOT / "train.py"
# compare.py sets these for every run; a pass-through copy would put the runs elsewhere.
OWN_TRAIN_FLAGS = ("--activation", "--logdir", "--run-name", "--resume")
TENSORBOARD_START_SECONDS = 120
STATUS_WORDS = {0: "ok", 1: "failed", 2: "bad input", 130: "interrupted", 143: "interrupted"}


def build_parser():
    p = argparse.ArgumentParser(
        description=f"Train {', '.join(ops.COMPARED)} (or --activations) one after another with identical settings "
                    f"and seed into one TensorBoard root, then serve that root with TensorBoard. "
                    f"Any other flag goes to train.py unchanged (see python train.py --help).",
        allow_abbrev=False)  # an abbreviated train.py flag must reach train.py, not match ours
    add = p.add_argument
    add("--dataset", required=True, choices=datasets.NAMES + datasets.OWN,
        help="data set (also names the root); folder or npz: your own, at --data-dir")
    add("--activations", nargs="+", choices=ops.ACTIVATIONS, default=list(ops.COMPARED),
        metavar="NAME", help=f"activations to train, from {', '.join(ops.ACTIVATIONS)} "
                             f"(default: {' '.join(ops.COMPARED)})")
    add("--root", metavar="DIR",
        help="TensorBoard root for the runs, new or empty (default: logs/DATASET-compare-TIMESTAMP)")
    add("--seeds", type=int, default=1, metavar="N",
        help="train each activation with seeds 0..N-1 into ROOT/ACTIVATION/seedK, for report.py's "
             "mean +- sd (default: 1, into ROOT/ACTIVATION with train.py's --seed)")
    add("--parallel", action="store_true",
        help="run all at once, for machines with spare cores or a GPU (default: one after another)")
    add("--jobs", type=int, metavar="N", help="run up to N at once (default: 1, or all with --parallel)")
    add("--gpus", metavar="I,J,...",
        help="run one at a time on each of these GPUs (CUDA_VISIBLE_DEVICES per run), all busy at once")
    add("--port", type=int, default=6006, help="TensorBoard port on 127.0.0.1 (default: 6006)")
    add("--no-tensorboard", action="store_true", help="do not start TensorBoard when the runs end")
    p.error = usage_error
    return p


def parse_args(argv=None):
    """(compare.py's settings, the flags for train.py); UsageError for a flag we set ourselves."""
    args, train_args = build_parser().parse_known_args(argv)
    for arg in train_args:
        name = arg.split("=", 1)[0]
        # train.py's argparse expands unique prefixes, so --act would still reach --activation.
        clash = [flag for flag in OWN_TRAIN_FLAGS if len(name) > 2 and flag.startswith(name)]
        if clash:
            raise UsageError(f"compare.py chooses {' and '.join(clash)} for each run itself; "
                             f"drop {arg}")
    if args.seeds < 1:
        raise UsageError(f"--seeds must be 1 or more, got {args.seeds}")
    if args.seeds > 1 and any(arg.split("=", 1)[0] == "--seed" for arg in train_args):
        raise UsageError("--seeds N trains with seeds 0..N-1; drop --seed")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be 1 or more, got {args.jobs}")
    if args.gpus is not None:
        args.gpus = [g.strip() for g in args.gpus.split(",")]
        if not all(g.isdigit() for g in args.gpus) or len(set(args.gpus)) != len(args.gpus):
            raise UsageError(f"--gpus takes distinct GPU numbers like 0,1; got {','.join(args.gpus)}")
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be in 1-65535, got {args.port}")
    if not args.no_tensorboard and not port_is_free(args.port):
        # Better now than after hours of training; start_tensorboard checks again at the end.
        raise UsageError(f"port {args.port} on 127.0.0.1 is in use; pass another --port "
                         f"or --no-tensorboard")
    return args, train_args


def data_name(dataset, train_args):
    """The name the runs' data go by: the data set's, or your own data's folder (file) name."""
    if dataset in datasets.OWN:
        for i, arg in enumerate(train_args):
            if arg.startswith("--data-dir"):
                path = arg.split("=", 1)[1] if "=" in arg else (train_args[i + 1] if i + 1 < len(train_args) else "")
                return Path(path).stem or dataset
    return dataset


def create_root(root, dataset):
    """(root folder, whether we created it). An explicit root may exist if empty; a non-empty one
    is refused, never written into. The default timestamped name gets -2, -3, ... if taken."""
    if root is not None:
        root = Path(root)
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise UsageError(f"--root {root} already exists and is not an empty folder; choose a new one")
        candidates = [root]
    else:
        # logs/ like train.py's default --logdir, so `tensorboard --logdir logs` shows these too.
        base = Path("logs") / f"{dataset}-compare-{time.strftime('%Y%m%d-%H%M%S')}"
        candidates = [base] + [base.with_name(f"{base.name}-{i}") for i in range(2, 100)]
    for folder in candidates:
        try:
            folder.mkdir(parents=True)
            return folder, True
        except FileExistsError:
            if root is not None:
                return folder, False  # checked above: an empty folder
        except OSError as err:
            raise UsageError(f"cannot create {folder}: {err.strerror or err}")
    raise UsageError(f"too many roots named {candidates[0]}-*; pass --root")


class Child:
    """A child process whose output lines are copied to ours, each prefixed with its name.

    It runs in its own process group, so a terminal's Ctrl-C reaches only us and the child gets
    each signal once, from Interrupts (a doubled SIGINT makes train.py skip its checkpoint).
    """

    def __init__(self, name, cmd, env=None):
        self.name, self.cmd, self.env = name, cmd, env
        self.process = None
        self._copiers = []

    def start(self):
        self.process = subprocess.Popen(
            self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            text=True, errors="replace", bufsize=1, process_group=0, env=self.env)
        self._copiers = [threading.Thread(target=_copy_lines, args=(pipe, out, f"[{self.name}] "),
                                          daemon=True)
                         for pipe, out in ((self.process.stdout, sys.stdout),
                                           (self.process.stderr, sys.stderr))]
        for copier in self._copiers:
            copier.start()
        return self

    def running(self):
        return self.process is not None and self.process.poll() is None

    def send_signal(self, signum):
        if self.running():
            self.process.send_signal(signum)

    def wait(self):
        code = self.process.wait()
        for copier in self._copiers:
            copier.join()
        return code


def _copy_lines(pipe, out, prefix):
    """Copy until the child closes its end; if our own output is gone (`| head` exited), keep
    draining, or the child would block on a full pipe."""
    for line in pipe:
        try:
            out.write(prefix + line)
            out.flush()
        except (OSError, ValueError):
            pass
    pipe.close()


class Interrupts:
    """SIGINT/SIGTERM to this process: remember the first, pass each on to the running children."""

    def __init__(self):
        self.signum = None
        self.children = []

    def install(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        self.signum = self.signum or signum
        for child in self.children:
            child.send_signal(signum)

    def watch(self, child):
        """Add a started child; one started just after a signal arrived gets that signal now."""
        self.children.append(child)
        if self.signum is not None:
            child.send_signal(self.signum)
        return child


def train_command(train_args, dataset, activation, root, seed=None):
    """train.py's command for one run: ROOT/ACTIVATION, or ROOT/ACTIVATION/seedK with a seed."""
    name = activation if seed is None else f"{activation}/seed{seed}"
    seed_flag = [] if seed is None else ["--seed", str(seed)]
    # -u: the output goes to a pipe, and we want each line as it is printed, not per 8 KB.
    return [sys.executable, "-u", str(TRAIN), *train_args, *seed_flag, "--dataset", dataset,
            "--activation", activation, "--logdir", str(root), "--run-name", name]


def training_commands(train_args, dataset, activations, root, seeds=1):
    """{run name: command}: with several seeds, every activation's seeds before the next one."""
    if seeds == 1:
        return {a: train_command(train_args, dataset, a, root) for a in dict.fromkeys(activations)}
    return {f"{a}/seed{k}": train_command(train_args, dataset, a, root, k)
            for a in dict.fromkeys(activations) for k in range(seeds)}


def run_all(commands, parallel, interrupts, jobs=None, gpus=None):
    """{run name: exit status, or None if it never started}. One after another unless `parallel`
    (all at once) or `jobs` (up to that many at once); with `gpus`, each running run has one of
    them to itself. A Ctrl-C, or a run refused for bad input (same flags, same refusal), starts
    no more runs."""
    status = dict.fromkeys(commands)
    if gpus:
        jobs = min(jobs or len(gpus), len(gpus))
    elif parallel and not jobs:
        jobs = len(commands)
    if jobs and jobs > 1:
        return _run_concurrently(commands, jobs, gpus or [], interrupts, status)
    for activation, cmd in commands.items():
        if interrupts.signum is not None:
            break
        print(f"=== {activation}: {shlex.join(cmd)}", flush=True)
        status[activation] = interrupts.watch(Child(activation, cmd).start()).wait()
        if status[activation] == BAD_INPUT:
            break
    return status


def _run_concurrently(commands, jobs, gpus, interrupts, status):
    pending = list(commands.items())
    running = {}  # run name -> (Child, its GPU or None)
    free_gpus = list(gpus)
    while pending or running:
        stop = interrupts.signum is not None or BAD_INPUT in status.values()
        while pending and not stop and len(running) < jobs:
            name, cmd = pending.pop(0)
            gpu = free_gpus.pop(0) if gpus else None
            env = None if gpu is None else {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}
            running[name] = (interrupts.watch(Child(name, cmd, env).start()), gpu)
        for name, (child, gpu) in list(running.items()):
            if not child.running():
                status[name] = child.wait()
                del running[name]
                if gpu is not None:
                    free_gpus.append(gpu)
        if stop and not running:
            break
        time.sleep(0.2)
    return status


def summary_table(root, status):
    """One line per run: its exit status and the test accuracy from its metrics.json."""
    width = max([12] + [len(name) + 2 for name in status])
    lines = [f"{'activation':<{width}}{'status':<26}test accuracy"]
    for activation, code in status.items():
        if code is None:
            state = "not run"
        elif code < 0:
            state = f"killed by {signal.Signals(-code).name}"
        else:
            state = f"{STATUS_WORDS.get(code, 'failed')} (exit {code})"
        accuracy = "-"
        try:
            metrics = json.loads((Path(root) / activation / METRICS_FILE).read_text())
            accuracy = f"{metrics['test_accuracy']:.2%}"
        except (OSError, ValueError, KeyError, TypeError):
            pass
        lines.append(f"{activation:<{width}}{state:<26}{accuracy}")
    for activation, code in status.items():
        run_dir = Path(root) / activation
        if code in (None, 0):
            continue
        pid = runfolder.holder(run_dir)  # a test only: taking the lock could refuse its owner
        if pid:
            lines.append(f"{activation} is still being trained by process {pid}")
        elif runfolder.resumable(run_dir):
            lines.append(f"continue {activation} with: python {TRAIN} --resume {run_dir}")
    return "\n".join(lines)


def data_warning(root, status):
    """A line when the runs did not all train on the same data (one fell back to the bundled
    sample while another read the full set, say), else nothing."""
    seen = {}
    for name in status:
        try:
            data = json.loads((Path(root) / name / CONFIG_FILE).read_text())["data"]
            seen[name] = (data.get("source"), data.get("train_examples"))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    if len(set(seen.values())) <= 1:
        return ""
    described = ", ".join(f"{name}: {source}, {count} training images"
                          for name, (source, count) in seen.items())
    return f"warning: the runs did not train on the same data ({described}); they do not compare\n"


def port_is_free(port):
    """Whether a server could listen on 127.0.0.1:port now (as TensorBoard binds: SO_REUSEADDR,
    so connections of a server that just stopped do not count)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def start_tensorboard(root, port, timeout=TENSORBOARD_START_SECONDS):
    """A real TensorBoard serving `root` on 127.0.0.1:`port`, returned (as a Child) once it answers
    HTTP for that root; UsageError if the port is taken, RuntimeError if it does not start."""
    if not port_is_free(port):
        raise UsageError(f"port {port} on 127.0.0.1 is in use; pass another --port")
    url = f"http://127.0.0.1:{port}/"
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(root), "--port", str(port),
           "--host", "127.0.0.1"]
    server = Child("tensorboard", cmd).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.running():
            raise RuntimeError(f"TensorBoard exited with status {server.wait()} before serving {url}")
        try:
            with urllib.request.urlopen(url + "data/logdir", timeout=5) as answer:
                # Another server on the same port would answer too: check it serves our root.
                if Path(json.load(answer)["logdir"]).resolve() == Path(root).resolve():
                    return server
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    server.process.terminate()
    server.wait()
    raise RuntimeError(f"TensorBoard did not answer on {url} within {timeout} s")


def serve(root, port, interrupts):
    """Run TensorBoard on `root` until Ctrl-C; False if it could not be started."""
    try:
        server = interrupts.watch(start_tensorboard(root, port))
    except (UsageError, RuntimeError) as err:
        print(f"error: {err}. Serve the runs yourself: tensorboard --logdir {root}", file=sys.stderr)
        return False
    if interrupts.signum is None:  # else watch() has passed the signal on already
        print(f"TensorBoard: http://127.0.0.1:{port}/  (the runs overlaid: "
              f"http://127.0.0.1:{port}/#activations; Ctrl-C to stop)", flush=True)
    server.wait()
    return True


def main(argv=None):
    try:
        args, train_args = parse_args(argv)
        root, created = create_root(args.root, data_name(args.dataset, train_args))
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return BAD_INPUT
    interrupts = Interrupts()
    interrupts.install()
    commands = training_commands(train_args, args.dataset, args.activations, root, args.seeds)
    status = run_all(commands, args.parallel, interrupts, args.jobs, args.gpus)
    print(f"\nruns in {root}:\n{summary_table(root, status)}\n" + data_warning(root, status) +
          f"figures and a report page: python {REPO_ROOT / 'scripts' / 'report.py'} {root}", flush=True)

    if interrupts.signum is not None:
        return 128 + interrupts.signum
    if BAD_INPUT in status.values():
        if created and not any(root.iterdir()):
            root.rmdir()  # nothing was written: leave no empty root behind
        return BAD_INPUT
    failed = any(code != 0 for code in status.values())
    if not args.no_tensorboard and not serve(root, args.port, interrupts):
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
