"""The benchmark's statistics: a median with a bootstrap interval, so that "A costs less than B"
is said only where the intervals say so. numpy only; the resampling is seeded (repeatable)."""
import numpy as np

BOOTSTRAP_SAMPLES = 4000
CONFIDENCE = 0.95


def median_interval(values, seed=0):
    """(median, low, high): the median of `values` and the percentile-bootstrap interval of it
    at CONFIDENCE. With one value the interval is that value."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return (np.nan,) * 3
    median = float(np.median(values))
    if len(values) == 1:
        return median, median, median
    rng = np.random.default_rng(seed)
    resampled = np.median(rng.choice(values, size=(BOOTSTRAP_SAMPLES, len(values))), axis=1)
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return median, float(low), float(high)


MIN_REPEATS = 3  # fewer, and an interval says nothing


def verdict(interval, repeats, level=1.0):
    """'above', 'below' or 'within': where the interval (median, low, high) lies against
    `level` (a ratio of 1: no difference); 'too few' under MIN_REPEATS repeats."""
    _, low, high = interval
    if repeats < MIN_REPEATS:
        return "too few"
    return "above" if low > level else "below" if high < level else "within"
