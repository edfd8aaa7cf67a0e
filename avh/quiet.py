"""Silence TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notes) for command-line tools.

No TensorFlow import here: this must run before it.
"""
import contextlib
import os
import sys


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
