"""Time series as the dashboard's routes use them, converted once from what TensorBoard's data
provider returns: sorted by step, one value a step, histograms in the wire format below. Pure
numpy, no TensorBoard, no I/O.

A histogram goes over the wire in one of two forms:

    {"low": a, "high": b, "counts": [c_0, ..., c_{k-1}]}    uniform edges
    {"buckets": [[left, right, count], ...]}                any other [k, 3] histogram

The compact form stands for the buckets [a + i*w, a + (i+1)*w) with w = (b - a) / k, each right
edge the next bucket's left edge and the last right edge b itself: the edges that
avh.signal.histogram_buckets (tf.linspace's) and np.linspace make. A histogram is sent compact
only if that formula, computed in float64 (JavaScript's numbers), gives its edges bit for bit, so
decoding it (`decode_histogram`, and charts.js) returns exactly what was written. Counts are sent
as integers when they all are. Histograms of other writers (uneven edges, float32 edges) keep the
[k, 3] form. Non-finite numbers go as null.
"""
import bisect
import math

import numpy as np

_MAX_EXACT_INT = 2 ** 53


def finite(value):
    """A float for JSON: None for NaN and infinities."""
    value = float(value)
    return value if math.isfinite(value) else None


def short_float(value):
    """`value` for JSON in as few digits as keep it: a float32 value (what tf.summary.scalar
    logs) in float32's shortest form, which converts back to the same float32; others as they
    are. None for NaN and infinities."""
    value = float(value)
    if not math.isfinite(value):
        return None
    single = np.float32(value)
    return float(str(single)) if float(single) == value else value


def uniform_edges(lows, highs, k):
    """The [n, k + 1] float64 edges the compact form stands for, rows of (low, high)."""
    width = (highs - lows) / k
    edges = lows[:, None] + np.arange(k + 1, dtype=np.float64)[None, :] * width[:, None]
    edges[:, -1] = highs
    return edges


def compact_rows(stack):
    """For a [n, k, 3] float64 stack of histograms: a bool [n], which rows the compact form gives
    bit for bit (finite increasing edges as `uniform_edges` computes them)."""
    left, right = stack[:, :, 0], stack[:, :, 1]
    lows, highs = left[:, 0], right[:, -1]
    with np.errstate(invalid="ignore", over="ignore"):
        expected = uniform_edges(lows, highs, stack.shape[1])
        ok = np.isfinite(lows) & np.isfinite(highs) & (highs > lows)
        ok &= (left == expected[:, :-1]).all(axis=1) & (right == expected[:, 1:]).all(axis=1)
    return ok


def _counts_json(counts):
    if np.all(np.isfinite(counts)) and np.all(counts == np.round(counts)) and \
            np.all(np.abs(counts) < _MAX_EXACT_INT):
        return counts.astype(np.int64).tolist()
    return [finite(c) for c in counts.tolist()]


def encode_histogram(array):
    """One histogram tensor in the wire format, or None if it is not [k, 3] numbers (k >= 1)."""
    array = np.asarray(array)
    if array.ndim != 2 or array.shape[1] != 3 or array.shape[0] == 0 or array.dtype.kind not in "fiu":
        return None
    array = array.astype(np.float64)
    if compact_rows(array[None])[0]:
        return {"low": float(array[0, 0]), "high": float(array[-1, 1]), "counts": _counts_json(array[:, 2])}
    return {"buckets": [[finite(v) for v in row] for row in array.tolist()]}


def decode_histogram(encoded):
    """The [k, 3] float64 (left, right, count) array of a histogram in the wire format (the inverse
    of `encode_histogram`; charts.js decodes it the same way)."""
    if "buckets" in encoded:
        return np.array([[np.nan if v is None else v for v in row] for row in encoded["buckets"]],
                        dtype=np.float64).reshape(-1, 3)
    counts = np.array([np.nan if c is None else c for c in encoded["counts"]], dtype=np.float64)
    edges = uniform_edges(np.array([encoded["low"]], dtype=np.float64),
                          np.array([encoded["high"]], dtype=np.float64), len(counts))[0]
    return np.stack([edges[:-1], edges[1:], counts], axis=1)


def _one_per_step(data):
    """Data sorted by step, a step logged twice (a resumed run) keeping its last value."""
    steps = [datum.step for datum in data]
    if all(a < b for a, b in zip(steps, steps[1:])):
        return data  # the usual case: already so
    last = {}
    for datum in data:
        last[datum.step] = datum
    return [last[step] for step in sorted(last)]


class ScalarSeries:
    """One scalar tag of one run: `steps` (sorted, unique) and their values, converted to JSON
    numbers when first asked for."""

    def __init__(self, data):
        data = _one_per_step(data)
        self.steps = [d.step for d in data]
        self._raw = [d.value for d in data]
        self._values = None
        self._joined = None

    @property
    def values(self):
        if self._values is None:
            self._values = [short_float(v) for v in self._raw]
        return self._values

    def joined(self, other):
        """[(step, value, other's value), ...] at the steps both have; kept (with `other`) for the
        next request, so an unchanged pair is not converted again. Tuples, not lists: tuples of
        numbers leave the garbage collector's lists, and 100 runs' trajectories are ~10,000
        points a layer that a full collection would otherwise walk (~100 ms here, more in a
        TensorBoard server, whenever one comes)."""
        if self._joined is None or self._joined[0] is not other:
            other_at = dict(zip(other.steps, other.values))
            self._joined = (other, [(s, v, other_at[s]) for s, v in zip(self.steps, self.values)
                                    if s in other_at])
        return self._joined[1]

    def last_step_at_or_before(self, step):
        """The last step <= `step` (None: the last step); None if the series starts after it."""
        i = len(self.steps) if step is None else bisect.bisect_right(self.steps, step)
        return self.steps[i - 1] if i > 0 else None

    def at(self, step):
        """The value logged at exactly `step`, else None."""
        i = bisect.bisect_left(self.steps, step)
        return short_float(self._raw[i]) if i < len(self.steps) and self.steps[i] == step else None

    def nbytes(self):
        return 200 + 120 * len(self.steps)


class HistogramSeries:
    """One histogram tag of one run: `steps` (sorted, unique), and each step's histogram ready to
    encode. Histograms of one shape are held as one array (the usual case, a callback's fixed
    bucket count); a histogram that is not [k, 3] numbers is None."""

    def __init__(self, data):
        data = _one_per_step(data)
        self.steps = [d.step for d in data]
        arrays = [np.asarray(d.numpy) for d in data]
        shapes = {a.shape for a in arrays}
        kinds_ok = all(a.dtype.kind in "fiu" for a in arrays)
        self._stack = self._compact = self._lows = self._highs = self._counts = None
        self._rows = None
        if len(shapes) == 1 and kinds_ok and len(next(iter(shapes))) == 2 and \
                next(iter(shapes))[1] == 3 and next(iter(shapes))[0] > 0:
            stack = np.stack(arrays).astype(np.float64)
            compact = compact_rows(stack)
            self._compact = compact
            self._lows, self._highs = stack[:, 0, 0].copy(), stack[:, -1, 1].copy()
            self._counts = stack[:, :, 2].copy()
            # The full rows only for histograms the compact form does not give.
            self._stack = {i: stack[i] for i in np.flatnonzero(~compact).tolist()}
        else:
            self._rows = [encode_histogram(a) for a in arrays]

    def index_at(self, step):
        """Index of the last histogram at or before `step`; the last one for None; None if the
        series starts after `step`."""
        if not self.steps:
            return None
        if step is None:
            return len(self.steps) - 1
        i = bisect.bisect_right(self.steps, step) - 1
        return i if i >= 0 else None

    def encoded(self, i):
        """The i-th histogram in the wire format (None: not a [k, 3] histogram)."""
        if self._rows is not None:
            return self._rows[i]
        if self._compact[i]:
            return {"low": float(self._lows[i]), "high": float(self._highs[i]),
                    "counts": _counts_json(self._counts[i])}
        return {"buckets": [[finite(v) for v in row] for row in self._stack[i].tolist()]}

    def nbytes(self):
        if self._rows is not None:
            return 200 + sum(2000 if r is None else 40 * len(r.get("counts") or r["buckets"]) * 3
                             for r in self._rows)
        return (200 + self._counts.nbytes + 3 * 8 * len(self.steps)
                + sum(a.nbytes for a in self._stack.values()))
