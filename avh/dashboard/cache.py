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
"""
import collections
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, NamedTuple, Optional

from tensorboard.data import provider

from avh.dashboard.series import HistogramSeries, ScalarSeries

# TensorBoard already keeps a bounded sample per tag (500 histograms, 1000 scalars by default):
# a full read takes all of it.
ALL_SAMPLES = 1_000_000
DEFAULT_MAX_BYTES = 256 << 20  # ~100 runs x 12 histogram tags x 500 steps of 80 buckets
READ_CHUNK_RUNS = 25           # a read of more runs is split, the parts made at once
THREADS = 4


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


class SeriesCache:
    """Converted series of one data provider, least recently used dropped beyond `max_bytes`."""

    def __init__(self, data_provider, max_bytes=DEFAULT_MAX_BYTES):
        self._data = data_provider
        self._max_bytes = max_bytes
        self._entries = collections.OrderedDict()  # (eid, plugin, run, tag) -> Entry
        self._bytes = 0
        self._lock = threading.Lock()
        self._pool = None
        self.reads = 0  # read calls made, for tests and timing

    def read(self, ctx, experiment_id, *queries):
        """For each query, {run: {tag: series}} of the series it names that exist, and a set of
        the (run, tag) whose series holds only the newest datum."""
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
            results.append(result)
            partial.append(newest_only)
            jobs.extend(self._read_jobs(q, stale, listed, result, newest_only))
        if jobs:
            self.at_once([(self._read_job, dict(ctx=ctx, experiment_id=experiment_id, job=job))
                           for job in jobs])
        return list(zip(results, partial))

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
