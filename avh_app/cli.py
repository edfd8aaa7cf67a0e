"""What every command of the app shares: bad input as one `error:` line with exit status 2, the
ways a run can stop early, and TensorFlow imported without its C++ start-up chatter.

No TensorFlow import here: compare.py and report.py use this before anything heavy.
"""
import contextlib
import os
import signal
import sys

BAD_INPUT = 2  # the exit status of every command for a bad flag, file or folder


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


class Interrupted(Exception):
    """A stop request (SIGINT, SIGTERM) was honoured: exit code 128 + the signal's number."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Diverged(Exception):
    """The loss, the weights or the probe's outputs stopped being finite: exit code 1."""


def usage_error(message):
    """argparse's `error` hook: argparse's own message as one `error:` line, exit 2."""
    print(f"error: {message} (see --help)", file=sys.stderr)
    sys.exit(BAD_INPUT)


@contextlib.contextmanager
def quiet_stderr():
    """Silence file descriptor 2: TensorFlow's C++ start-up writes there before any log level
    applies. Python exceptions are printed after it is restored."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow():
    """Import TensorFlow and Keras quietly (about 3 s); returns (tf, keras)."""
    with quiet_stderr():
        import keras
        import tensorflow as tf

        tf.config.list_physical_devices()  # the first device query logs a CUDA error on CPUs
    return tf, keras
