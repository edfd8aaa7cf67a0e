"""Training on several devices or machines with TensorFlow's own tf.distribute: choosing the
strategy, which process writes the run folder (the chief), and stopping every worker together.

It must be used before TensorFlow creates its devices (make_strategy first thing in a run).
"""
import atexit
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from avh_app.cli import Interrupted, UsageError
from avh_app.config import STRATEGIES
from avh_app.loop import StopRequests

__all__ = ["STRATEGIES", "make_strategy", "is_chief", "describe", "stop_requests", "prepare_fit"]
# Tests on a CPU-only machine: split the CPU into this many logical devices, so that
# MirroredStrategy has several replicas to mirror over. Not a user setting (hence no flag).
LOGICAL_CPUS_ENV = "AVH_LOGICAL_CPUS"


def make_strategy(name):
    """The tf.distribute strategy `name` stands for (see STRATEGIES); UsageError if it cannot be
    built here (multiworker without a valid TF_CONFIG)."""
    _split_cpu()
    # Physical, not logical: listing logical devices starts the runtime, and
    # MultiWorkerMirroredStrategy must configure its collectives before that.
    if name == "auto":
        name = "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "one"
    if name == "one":
        return tf.distribute.get_strategy()  # the default strategy: one device, no copies
    if name == "mirrored":
        # Every GPU; on a machine without one, every (logical) CPU device.
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    cluster = _tf_config()
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (ValueError, RuntimeError) as err:
        raise UsageError(f"--strategy multiworker: TF_CONFIG {json.dumps(cluster)} is not "
                         f"usable: {err}".splitlines()[0])


def _split_cpu():
    count = os.environ.get(LOGICAL_CPUS_ENV)
    if not count:
        return
    if not count.isdigit() or int(count) < 1:
        raise UsageError(f"{LOGICAL_CPUS_ENV} must be a number of devices like 2, got {count!r}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * int(count))
    except RuntimeError:
        pass  # devices exist already (a second run in one process): keep them


def _tf_config():
    """TF_CONFIG, parsed and checked enough for a one-line error instead of a hang or a traceback."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise UsageError("--strategy multiworker needs the TF_CONFIG environment variable (the "
                         "cluster's workers and this one's task; see README 'Several GPUs or machines')")
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        task = config["task"]
        kind, index = task["type"], int(task["index"])
        members = config["cluster"].get(kind)
        if not isinstance(workers, list) or not isinstance(members, list) or not 0 <= index < len(members):
            raise ValueError(f"task {kind} {index} is not in the cluster")
    except (ValueError, KeyError, TypeError) as err:
        raise UsageError(f"TF_CONFIG is not a valid cluster description ({err}); expected e.g. "
                         '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                         '"task": {"type": "worker", "index": 0}}')
    return config


def describe(strategy):
    """'one device', '2 replicas (MirroredStrategy)' ... for the run's first line."""
    replicas = strategy.num_replicas_in_sync
    kind = type(strategy).__name__
    if kind.startswith("_Default"):
        return "one device"
    return f"{replicas} replica{'s' * (replicas != 1)} ({kind})"


def is_chief(strategy):
    """Whether this process writes the run folder: always on one machine; under
    MultiWorkerMirroredStrategy the `chief` task, or worker 0 when the cluster names no chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    return (resolver.task_type == "worker" and resolver.task_id == 0
            and "chief" not in resolver.cluster_spec().as_dict())


def worker_folder():
    """A private temporary folder for a non-chief worker's events and checkpoints, removed when
    the process exits: every worker runs the same callbacks (their collectives must match), but
    only the chief's copies are kept."""
    folder = Path(tempfile.mkdtemp(prefix="avh-worker-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def shard_by_batch(make_batches):
    """`make_batches(...)` with each worker taking its share of every global batch: the data
    order stays that of one device (a pure function of seed and epoch) and TensorFlow splits each
    batch between the replicas. (The default, AUTO, tries to shard by file and warns.)"""
    def batches(*args, **kwargs):
        return by_batch(make_batches(*args, **kwargs))
    return batches


def by_batch(dataset):
    """`dataset`, sharded between workers batch by batch (see shard_by_batch)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def stop_requests(strategy):
    """StopRequests for this strategy: across machines, one that all workers agree on."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return AgreedStopRequests(strategy)
    return StopRequests()


class AgreedStopRequests(StopRequests):
    """A signal on any worker stops every worker after the same step: at each check (every batch
    end and epoch end, reached by all workers in the same order) the workers all-reduce which
    signals they have had, and all stop if any has (as by SIGTERM if any had one). A worker that
    stopped alone would leave the others waiting forever in the next step's all-reduce."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, strategy):
        super().__init__()

        @tf.function
        def agree(had):  # ReduceOp has SUM and MEAN only, hence counts, not the largest signal
            return strategy.reduce("SUM", strategy.run(lambda: tf.identity(had)), axis=None)
        self._agree = agree

    def check(self):
        # Decide on the agreed counts only: a signal landing during the all-reduce must wait for
        # the next check on this worker too, or it would stop one step before the others.
        had = tf.constant([float(self.signum == s) for s in self.SIGNALS])
        counts = self._agree(had).numpy()
        if counts.any():
            raise Interrupted(self.SIGNALS[-1] if counts[-1] else self.SIGNALS[0])


def prepare_fit(model, strategy, x, y):
    """Work around two Keras 3 bugs under MultiWorkerMirroredStrategy (keras-team/keras#20585)
    so that fit() and evaluate() run; nothing changes under the other strategies.

    1. fit() and evaluate() first all-reduce a whole (x, y) batch to build the model's metrics,
       a reduce that this strategy rejects: build them here from one local batch and skip it.
    2. Each step's logs are reduced with `reduce(MEAN, axis=0)`, which fails on scalars: reduce
       them across the replicas (axis=None), which is what the logs need.
    Both go through private Keras names: if a Keras release renames them, this says so and stops
    instead of training with the bug back."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    from keras.src.backend.tensorflow import trainer

    missing = [name for name, owner in (("_symbolic_build", model), ("_maybe_symbolic_build", model),
                                        ("reduce_per_replica", trainer))
               if not hasattr(owner, name)]
    if missing:
        raise UsageError(f"--strategy multiworker: this Keras ({keras.__version__}) lacks "
                         f"{', '.join(missing)}, which the workaround for keras-team/keras#20585 "
                         f"needs; use the Keras that pyproject.toml pins")
    with strategy.scope():
        model._symbolic_build(data_batch=(x, y))
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    if getattr(trainer.reduce_per_replica, "avh_patched", False):
        return
    keras_reduce = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and isinstance(
                strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return keras_reduce(values, strategy, reduction)
    reduce_per_replica.avh_patched = True
    trainer.reduce_per_replica = reduce_per_replica
