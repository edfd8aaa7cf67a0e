"""Reading a run's event files back as numpy values: the one reader for report.py, the
dashboard's tests, the benchmark and the test suite. It never writes.
"""
from pathlib import Path

from avh.tags import TEST_TAG

EVENTS_PREFIX = "events.out.tfevents."
TEST_PREFIX = TEST_TAG.split("{")[0]  # "test/"


def event_files(run_dir):
    """The run's event files in the order they were written (a resumed run has several)."""
    return sorted(Path(run_dir).glob(EVENTS_PREFIX + "*"))


def read_events(run_dir, want=None):
    """{tag: [(step, value), ...]}: every summary in the run's event files, in file order, as on
    disk (a step logged twice appears twice). `want(tag)` picks the tags to decode."""
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.util import tensor_util

    events = {}
    for path in event_files(run_dir):
        for event in event_file_loader.EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if want is None or want(value.tag):
                    events.setdefault(value.tag, []).append(
                        (event.step, tensor_util.make_ndarray(value.tensor)))
    return events


def by_step(series):
    """{step: value} of one tag's [(step, value), ...]; a step logged twice keeps its last value."""
    return dict(series)


def last_logged_steps(run_dir, test_prefix=TEST_PREFIX):
    """(last step of any summary, last step of a `test_prefix` summary) in the run's event files,
    None where there is none: what a resumed run must not log again. Values are not decoded."""
    from tensorboard.backend.event_processing import event_file_loader

    last = last_test = None
    for path in event_files(run_dir):
        for event in event_file_loader.EventFileLoader(str(path)).Load():
            tags = [value.tag for value in event.summary.value]
            if tags:
                last = event.step if last is None else max(last, event.step)
            if any(tag.startswith(test_prefix) for tag in tags):
                last_test = event.step if last_test is None else max(last_test, event.step)
    return last, last_test
