"""The run's event file: one writer, and the one rule for when its events reach the disk.

Events wait in memory and reach the disk only through EventLog.flush(step), called only at a step
boundary once every summary of the steps so far has been written (other threads' included: see
`waits`): before each checkpoint, and every LIVE_SECONDS in between (EventLog.live), so that a
live TensorBoard shows a summary step within seconds. So the event files on disk always hold whole
steps, and a resumed run continues after the last step on disk (avh.events.last_logged_steps)
with no step logged twice and none missing.
"""
import os
import time
from pathlib import Path

import tensorflow as tf

from avh.events import EVENTS_PREFIX
from avh.steps import StepCallback
from avh_app import runfolder

LIVE_SECONDS = 2.0  # at most this long between a step's summaries and the disk, at step boundaries


class EventLog:
    """The run's tf.summary writer and its flushing. Nothing else may flush the writer (leaving
    `with writer.as_default()` does: use set_as_default)."""

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        self.writer = tf.summary.create_file_writer(str(run_dir), max_queue=1_000_000,
                                                    flush_millis=10**9)
        self.waits = []  # callables that block until other threads' events so far are written
        self.busy = []   # ... and callables that say whether those threads are still writing
        self.flushed_at = time.monotonic()
        self._event_file, self._checked_offset = None, 0

    def live(self, seconds=LIVE_SECONDS):
        """A callback that flushes at a step boundary once `seconds` have passed since the last
        flush, when no other thread is still writing that step's events (else at the next
        step): put it after every callback that logs. A flush costs a few ms."""
        return _LiveFlush(self, seconds)

    def flush(self, step):
        """Flush everything logged up to `step` and prove it reached the disk: a marker event (a
        SessionLog CHECKPOINT, which TensorBoard does not show) written last must be there,
        whole. runfolder.WriteFailed if it is not (disk full: TensorFlow's writer drops write
        errors silently, tensorflow/tensorflow#8745)."""
        from tensorboard.compat.proto import event_pb2

        for wait in self.waits:
            wait()
        self.flushed_at = time.monotonic()
        marker = event_pb2.Event(step=step, wall_time=time.time())
        marker.session_log.status = event_pb2.SessionLog.CHECKPOINT
        # tf.summary has no public call for an event that is not a summary; ImportEvent is the
        # op its writer would use, on the writer's resource handle.
        resource = getattr(self.writer, "_resource", None)
        if resource is None:
            raise RuntimeError("avh_app.eventlog: this TensorFlow's summary writer has no "
                               "_resource, which the flush check needs (it works around "
                               "tensorflow/tensorflow#8745); use TensorFlow 2.21")
        tf.raw_ops.ImportEvent(writer=resource, event=marker.SerializeToString())
        self.writer.flush()
        if self._event_file is None:
            own = [p for p in self.run_dir.glob(EVENTS_PREFIX + "*") if f".{os.getpid()}." in p.name]
            self._event_file = max(own, key=lambda p: p.stat().st_mtime_ns)
        self._checked_offset = runfolder.check_events_reached_disk(
            self._event_file, self._checked_offset,
            lambda e: e.step == step and e.session_log.status == e.session_log.CHECKPOINT)


class _LiveFlush(StepCallback):
    def __init__(self, events, seconds):
        super().__init__()
        self.events, self.seconds = events, seconds

    def on_step_end(self, step):
        if (time.monotonic() - self.events.flushed_at >= self.seconds
                and not any(busy() for busy in self.events.busy)):
            self.events.flush(step)
