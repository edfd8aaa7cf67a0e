"""The dashboard's reads through TensorBoard's data provider, kept per (run, tag): a series is read
and converted again only when `list_tensors`/`list_scalars` report another (max step, max wall
time) for it, so a refresh of unchanged runs lists and never reads. It only reads.

A query that needs only each series' newest datum (the last step, what a live page shows) reads
just that (`downsample=1`: TensorBoard always keeps the newest datum); a full series read later
replaces it. Listing first and reading after means a read may hold newer data than the version it
is kept under; the next listing then differs and the series is read again (never the other way
round).

TensorBoard's data server answers calls made back to back ~40 ms late each (its replies wait for
the client's delayed TCP acknowledgement), so the calls of one request are made at once, in
threads: all listings, then all reads.

A series served newest-only whose run will not change (`settled(run)`: a finished run) is read in
full in the background once no request has come for `read_ahead_idle` seconds, so that the first
move of the step slider finds it here: on a sweep of 100 runs a full read of one histogram tag
takes ~0.5 s (most of it TensorBoard converting 10,000 tensors), which the page would otherwise
wait for. One background read at a time, of at most READ_CHUNK_RUNS runs, the series served last
first; a request that needs a series the background is reading waits for that read instead of
making it again. A live run is never read ahead (a page following it asks only each series'
newest datum).
"""
import collections
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, NamedTuple, Optional

from tensorboard.data import provider
from tensorboard.util import tb_logging

from avh.dashboard.series import HistogramSeries, ScalarSeries

# TensorBoard already keeps a bounded sample per tag (500 histograms, 1000 scalars by default):
# a full read takes all of it.
ALL_SAMPLES = 1_000_000
DEFAULT_MAX_BYTES = 256 << 20  # ~100 runs x 12 histogram tags x 500 steps of 80 buckets
READ_CHUNK_RUNS = 25           # a read of more runs is split, the parts made at once
THREADS = 4
READ_AHEAD_IDLE_SECONDS = 0.5    # the background reads ahead only after this long without a request


class Query(NamedTuple):
    """What one route needs: `tags` (None: every tag `want` accepts) of `runs` (None: all)."""
    kind: str                      # "tensors" or "scalars"
    plugin_name: str
    runs: Optional[list]
    tags: Optional[list]
    last_only: bool = False        # each series' newest datum is enough
    want: Optional[Callable] = None


class Entry(NamedTuple):
    version: tuple                 # (max_step, max_wall_time) as listed
    series: object                 # HistogramSeries or ScalarSeries
    complete: bool                 # every datum TensorBoard holds, or only the newest
    nbytes: int


class _Ahead(NamedTuple):
    """A background read: `keys` {(eid, plugin, run, tag): listing} of one query kind."""
    ctx: object
    experiment_id: str
    query: Query
    keys: dict
    done: threading.Event


class SeriesCache:
    """Converted series of one data provider, least recently used dropped beyond `max_bytes`.
    `settled(run)` says a run will not change (its series are read ahead, see above);
    `read_ahead_idle` None: never read ahead."""

    def __init__(self, data_provider, max_bytes=DEFAULT_MAX_BYTES, settled=None,
                 read_ahead_idle=READ_AHEAD_IDLE_SECONDS):
        self._data = data_provider
        self._max_bytes = max_bytes
        self._entries = collections.OrderedDict()  # (eid, plugin, run, tag) -> Entry
        self._bytes = 0
        self._lock = threading.RLock()
        self._pool = None
        self.reads = 0  # read calls made, for tests and timing
        self._settled = settled if read_ahead_idle is not None else None
        self._read_ahead_idle = read_ahead_idle
        self._changed = threading.Condition(self._lock)  # a request began or ended, work came
        self._requests = 0                               # requests being answered
        self._idle_since = time.monotonic()
        self._ahead = collections.deque()                # background reads waiting
        self._planned = set()                            # their keys, and the running one's
        self._running = None                             # the background read being made
        self._worker = None

    def read(self, ctx, experiment_id, *queries):
        """For each query, {run: {tag: series}} of the series it names that exist, and a set of
        the (run, tag) whose series holds only the newest datum."""
        with self._changed:
            self._requests += 1
        try:
            return self._answer(ctx, experiment_id, queries)
        finally:
            with self._changed:
                self._requests -= 1
                self._idle_since = time.monotonic()
                self._changed.notify_all()

    def _answer(self, ctx, experiment_id, queries):
        listings = self.at_once([
            (self._data.list_tensors if q.kind == "tensors" else self._data.list_scalars,
             dict(ctx=ctx, experiment_id=experiment_id, plugin_name=q.plugin_name,
                  run_tag_filter=provider.RunTagFilter(runs=q.runs, tags=q.tags)))
            for q in queries])
        results, partial, jobs = [], [], []
        for q, listed in zip(queries, listings):
            result, newest_only, stale = {}, set(), {}
            for run, by_tag in listed.items():
                result[run] = {}
                for tag, listing in by_tag.items():
                    if q.want is not None and not q.want(tag):
                        continue
                    entry = self._get((experiment_id, q.plugin_name, run, tag),
                                      (listing.max_step, listing.max_wall_time))
                    if entry is not None and (entry.complete or q.last_only):
                        result[run][tag] = entry.series
                        if not entry.complete:
                            newest_only.add((run, tag))
                    else:
                        stale.setdefault(run, set()).add(tag)
            if stale and not q.last_only:
                self._take_from_background(experiment_id, q, stale, listed, result)
            results.append(result)
            partial.append(newest_only)
            jobs.extend(self._read_jobs(q, stale, listed, result, newest_only))
        if jobs:
            self.at_once([(self._read_job, dict(ctx=ctx, experiment_id=experiment_id, job=job))
                           for job in jobs])
        for q, listed, newest_only in zip(queries, listings, partial):
            if q.last_only and newest_only and self._settled is not None:
                self._read_ahead(ctx, experiment_id, q, listed, newest_only)
        return list(zip(results, partial))

    # --- reading ahead in the background -----------------------------------------------------

    def _take_from_background(self, experiment_id, q, stale, listed, result):
        """Moves from `stale` into `result` the series the running background read brings,
        after waiting for it; stale series only queued for the background stay for this
        request to read (the background skips them then)."""
        with self._lock:
            running = self._running
        if running is None:
            return
        wanted = [(run, tag) for run, tags in stale.items() for tag in tags
                  if (experiment_id, q.plugin_name, run, tag) in running.keys]
        if not wanted:
            return
        running.done.wait()
        for run, tag in wanted:
            listing = listed[run][tag]
            entry = self._get((experiment_id, q.plugin_name, run, tag),
                              (listing.max_step, listing.max_wall_time))
            if entry is not None and entry.complete:
                result[run][tag] = entry.series
                stale[run].discard(tag)
                if not stale[run]:
                    del stale[run]

    def _read_ahead(self, ctx, experiment_id, q, listed, newest_only):
        """Queues full reads of the settled runs' series this query served newest-only, in the
        parts a request would read them in (`_read_jobs`)."""
        planned = {}
        with self._lock:
            for run, tag in sorted(newest_only):
                key = (experiment_id, q.plugin_name, run, tag)
                if key not in self._planned and self._settled(run):
                    self._planned.add(key)
                    planned.setdefault(run, set()).add(tag)
            jobs = [_Ahead(ctx, experiment_id, q, {(experiment_id, q.plugin_name, run, tag): listed[run][tag]
                                                   for run in runs for tag in tags}, threading.Event())
                    for _, runs, tags, *_ in self._read_jobs(q, planned, listed, None, None)]
            self._ahead.extendleft(reversed(jobs))  # what was shown last is read first
            if jobs and self._worker is None:
                self._worker = threading.Thread(target=self._work_ahead, name="avh-dashboard-ahead",
                                                daemon=True)
                self._worker.start()
            self._changed.notify_all()

    def _work_ahead(self):
        """The background: reads what is queued, each read once no request came for
        read_ahead_idle seconds; ends when nothing is left (the next read ahead starts another)."""
        while True:
            with self._changed:
                while True:
                    if not self._ahead:
                        self._worker = None
                        return
                    quiet = time.monotonic() - self._idle_since
                    if not self._requests and quiet >= self._read_ahead_idle:
                        break
                    # A request's end wakes this; without one, the quiet time left.
                    self._changed.wait(None if self._requests else max(self._read_ahead_idle - quiet, 0.01))
                job = self._ahead.popleft()
                keys = {key: listing for key, listing in job.keys.items()
                        if not getattr(self._get(key, (listing.max_step, listing.max_wall_time)),
                                       "complete", False)}
                self._planned.difference_update(set(job.keys) - set(keys))
                if not keys:
                    self._changed.notify_all()
                    continue
                job = job._replace(keys=keys)
                self._running = job
            try:
                listed = {}
                for (_, _, run, tag), listing in keys.items():
                    listed.setdefault(run, {})[tag] = listing
                runs = sorted(listed)
                tags = sorted({tag for by_tag in listed.values() for tag in by_tag})
                self._read_job(job.ctx, job.experiment_id,
                               (job.query._replace(last_only=False), runs, tags, listed,
                                {run: {} for run in runs}, set()))
            except Exception:  # a failed read ahead costs nothing: a request reads it itself
                tb_logging.get_logger().debug("activations dashboard: a read ahead failed", exc_info=True)
            finally:
                with self._changed:
                    self._running = None
                    self._planned.difference_update(keys)
                    job.done.set()
                    self._changed.notify_all()

    def settle(self, timeout):
        """True once nothing is queued or being read in the background (for tests and timing);
        False if that took longer than `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._ahead or self._running is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def _read_jobs(self, q, stale, listed, result, newest_only):
        """The reads that bring a query's stale series: one per set of tags (usually one: a
        route asks every run for the same tags), split into parts of READ_CHUNK_RUNS runs."""
        by_tags = {}
        for run, run_tags in stale.items():
            by_tags.setdefault(frozenset(run_tags), []).append(run)
        for tags, runs in by_tags.items():
            runs = sorted(runs)
            for start in range(0, len(runs), READ_CHUNK_RUNS):
                yield q, runs[start:start + READ_CHUNK_RUNS], sorted(tags), listed, result, newest_only

    def _read_job(self, ctx, experiment_id, job):
        q, runs, tags, listed, result, newest_only = job
        read_fn = self._data.read_tensors if q.kind == "tensors" else self._data.read_scalars
        convert = HistogramSeries if q.kind == "tensors" else ScalarSeries
        read = read_fn(ctx, experiment_id=experiment_id, plugin_name=q.plugin_name,
                       downsample=1 if q.last_only else ALL_SAMPLES,
                       run_tag_filter=provider.RunTagFilter(runs=runs, tags=tags))
        with self._lock:
            self.reads += 1
        for run in runs:
            for tag in tags:
                data = read.get(run, {}).get(tag)
                if data is None or tag not in listed.get(run, {}):
                    continue  # gone between the listing and the read, or not asked for here
                listing = listed[run][tag]
                series = convert(data)
                self._put((experiment_id, q.plugin_name, run, tag),
                          (listing.max_step, listing.max_wall_time), series, complete=not q.last_only)
                with self._lock:
                    result[run][tag] = series
                    if q.last_only:
                        newest_only.add((run, tag))

    def at_once(self, calls):
        """Results of `calls` [(function, kwargs)], made concurrently when there are several."""
        if len(calls) == 1:
            function, kwargs = calls[0]
            return [function(**kwargs)]
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="avh-dashboard")
        futures = [self._pool.submit(function, **kwargs) for function, kwargs in calls]
        return [future.result() for future in futures]

    def _get(self, key, version):
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.version != version:
                return None
            self._entries.move_to_end(key)
            return entry

    def _put(self, key, version, series, complete):
        size = series.nbytes()
        with self._lock:
            old = self._entries.get(key)
            if old is not None and old.version == version and old.complete and not complete:
                return  # a full read of the same version, made at the same time, stays
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._entries[key] = Entry(version, series, complete, size)
            self._bytes += size
            while self._bytes > self._max_bytes and len(self._entries) > 1:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped.nbytes
