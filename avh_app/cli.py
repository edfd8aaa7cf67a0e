"""What every command of the app shares: bad input as one `error:` line with exit status 2, the
ways a run can stop early, and TensorFlow imported without its C++ start-up chatter and with its
oneDNN CPU kernels on.

No TensorFlow import here: compare.py and report.py use this before anything heavy.
"""
import contextlib
import os
import platform
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
    """Import TensorFlow and Keras quietly (about 3 s), with oneDNN on (use_onednn); returns
    (tf, keras)."""
    if "tensorflow" not in sys.modules:  # read once, when TensorFlow starts
        use_onednn()
    with quiet_stderr():
        import keras
        import tensorflow as tf

        tf.config.list_physical_devices()  # the first device query logs a CUDA error on CPUs
    return tf, keras


ONEDNN_MACHINES = ("x86_64", "amd64")  # platform.machine(), lower-cased: where use_onednn acts


def use_onednn(environ=os.environ, machine=None):
    """Turn TensorFlow's oneDNN CPU kernels on for this process, on x86-64, unless
    TF_ENABLE_ONEDNN_OPTS says otherwise. TensorFlow turns them on by itself only on CPUs with
    AVX-512 VNNI or BF16, AVX-VNNI or AMX (DefaultOneDnnPolicy, tensorflow/core/util/port.cc);
    on an AVX2-only CPU it uses its Eigen kernels, with which the app's CNN trained 1.5x (MNIST)
    and 1.7x (CIFAR-10) slower on a 2-core AMD EPYC (2026-12-07, docs/performance.md): Eigen's
    gradient of a strided 5x5 convolution with respect to its input took 34-40 ms where
    oneDNN's took 8 (MNIST's third layer, 128 images). The same training up to float rounding;
    on a GPU only what runs on the CPU changes. Must run before TensorFlow is imported."""
    machine = (machine or platform.machine()).lower()
    if machine in ONEDNN_MACHINES:
        environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
