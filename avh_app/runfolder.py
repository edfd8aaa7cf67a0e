"""A run folder: made new for every run and never reused, one process at a time (an OS lock a
killed process releases), files written completely or not at all, and proof that flushed events
reached the disk.

No TensorFlow here: compare.py checks locks with it.
"""
import errno
import fcntl
import json
import os
import struct
import time
import zipfile
from pathlib import Path

from avh.tags import CONFIG_FILE, METRICS_FILE
from avh_app.cli import UsageError
from avh_app.config import CHECKPOINT

LOCK_FILE = ".lock"
# struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid (native alignment, 32 bytes).
_FLOCK = "hhqqi4x"


class RunInUse(UsageError):
    """Another process holds the run folder's lock."""


class WriteFailed(Exception):
    """A file of the run could not be written (disk full, I/O error): one error line, and the
    run stays resumable from its last complete checkpoint."""

    def __init__(self, message, run_dir):
        super().__init__(message)
        self.run_dir = Path(run_dir)


def create(cfg, data_name=None):
    """Make the run's folder, never reusing one: an explicit --run-name that exists is refused;
    the default `DATA/ACTIVATION-TIMESTAMP` (DATA: the data set's name, your own data's folder
    name) gets a -2, -3, ... suffix when two runs start in the same second."""
    logdir = Path(cfg.logdir)
    if cfg.run_name is not None:
        candidates = [logdir / cfg.run_name]
    else:
        base = (logdir / (data_name or cfg.dataset)
                / f"{cfg.activation}-{time.strftime('%Y%m%d-%H%M%S')}")
        candidates = [base] + [base.with_name(f"{base.name}-{i}") for i in range(2, 1000)]
    for run_dir in candidates:
        try:
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            run_dir.mkdir()  # atomic: of two runs racing for a name, exactly one gets it
            return run_dir
        except FileExistsError:
            if cfg.run_name is not None:
                pid = holder(run_dir)
                hint = (f" (process {pid} is training it)" if pid else
                        f" or continue it with --resume {run_dir}" if resumable(run_dir) else "")
                raise UsageError(f"run folder {run_dir} already exists; choose another "
                                 f"--run-name{hint}")
        except OSError as err:
            raise UsageError(f"cannot create run folder {run_dir}: {err.strerror or err}")
    raise UsageError(f"too many runs named {candidates[0]}-*; pass --run-name")


def write_config(run_dir, config):
    """config.json of a new run folder, or no folder at all: a run that cannot write it leaves
    nothing behind (the folder holds only its lock file then)."""
    try:
        write_json(run_dir / CONFIG_FILE, config)
    except WriteFailed:
        for leftover in run_dir.iterdir():
            leftover.unlink()
        run_dir.rmdir()
        raise


def lock(run_dir):
    """Take the run folder's lock for as long as the returned file stays open (the process's life;
    the kernel drops it when the process dies, so a crash never leaves a stale lock). RunInUse if
    another process has it. Only the first run of an old folder creates the lock file."""
    run_dir = Path(run_dir)
    # POSIX record locks, not flock(): F_GETLK can test them without taking them (see holder).
    held = open(run_dir / LOCK_FILE, "a+b")
    try:
        fcntl.lockf(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        held.close()
        if err.errno in (errno.EACCES, errno.EAGAIN):
            pid = holder(run_dir)
            by = f" by process {pid}" if pid else ""
            raise RunInUse(f"run folder {run_dir} is in use{by} (another train.py is training it); "
                           f"wait for it to end or stop it") from None
        raise
    return held


def holder(run_dir):
    """The id of the process holding the run folder's lock, or None; never takes the lock."""
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        l_type, _, _, _, pid = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, query))
        return pid if l_type != fcntl.F_UNLCK else None
    except OSError:
        return None
    finally:
        os.close(fd)


def resumable(run_dir):
    """Whether `train.py --resume run_dir` has something to continue: a checkpoint and no
    metrics.json (a finished run), and no process training it now."""
    run_dir = Path(run_dir)
    return ((run_dir / CHECKPOINT).exists() and not (run_dir / METRICS_FILE).exists()
            and holder(run_dir) is None)


def write_json(path, obj):
    """`obj` as indented JSON, written whole or not at all (see write_durably)."""
    write_durably(path, json.dumps(obj, indent=2) + "\n")


def write_durably(path, data):
    """Write `data` (str or bytes) to `path` through a partial file that is synced and renamed:
    after a crash the old file or the new one is there, never half of one. WriteFailed (partial
    file removed) if it cannot be written."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        replace_durably(partial, path)
    except BaseException as err:
        partial.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise WriteFailed(f"cannot write {path.name} in {path.parent}: {cause(err)}",
                              path.parent) from None
        raise


def replace_durably(partial, path):
    """Rename a complete `partial` file to `path` so that the rename survives a power loss."""
    with open(partial, "rb") as f:
        os.fsync(f.fileno())
    os.replace(partial, path)
    fd = os.open(Path(path).parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the folder's entry: without it the rename may be lost
    finally:
        os.close(fd)


def cause(err, folder=None):
    """A short reason for a failed write: the OS's words, or a full disk when that is what it is
    (libraries wrap the OS error in their own exceptions)."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    if folder is not None and free_bytes(folder) < 1 << 20:
        return os.strerror(errno.ENOSPC)
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def free_bytes(folder):
    try:
        stats = os.statvfs(folder)
    except OSError:
        return 0
    return stats.f_bavail * stats.f_frsize


def check_checkpoint(run_dir):
    """UsageError if the run folder's checkpoint cannot be whole (see checkpoint_damage)."""
    path = Path(run_dir) / CHECKPOINT
    damage = checkpoint_damage(path)
    if damage:
        raise UsageError(f"--resume {run_dir}: its checkpoint {path} is {damage}; it cannot be resumed")


def checkpoint_damage(path):
    """Why the checkpoint file at `path` cannot be complete (a .keras file is a zip archive whose
    directory is written last), or None when it looks whole."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()  # reads every member and checks its CRC
    except (zipfile.BadZipFile, EOFError, ValueError):
        return "damaged or incomplete (not a whole .keras archive)"
    except OSError as err:
        return f"unreadable ({err.strerror or err})"
    if bad is not None:
        return f"damaged (its member {bad} fails its checksum)"
    return None


def check_events_reached_disk(event_file, offset, marker):
    """Read the event file's records from `offset` (where the last check ended) after a flush:
    `marker(event)` must hold for one of them and the last must be whole, or the flush lost
    events (TensorFlow's writer drops write errors silently). Returns the new offset;
    WriteFailed otherwise."""
    from tensorboard.compat.proto import event_pb2  # protobuf only, no TensorFlow

    event_file = Path(event_file)
    found = False
    with open(event_file, "rb") as f:
        f.seek(offset)
        while True:
            header = f.read(12)  # length (uint64) and its masked CRC (uint32)
            if not header:
                break
            if len(header) < 12:
                found = False
                break
            (length,) = struct.unpack("<Q", header[:8])
            data = f.read(length)
            if len(data) < length or len(f.read(4)) < 4:
                found = False
                break
            offset = f.tell()
            found = found or marker(event_pb2.Event.FromString(data))
    if not found:
        full = free_bytes(event_file.parent) < 1 << 20
        reason = os.strerror(errno.ENOSPC) if full else "the event file is incomplete"
        raise WriteFailed(f"cannot write the event log in {event_file.parent}: {reason}",
                          event_file.parent)
    return offset
