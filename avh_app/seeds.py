"""Runs that differ only by seed (`selu/seed0`, `selu/seed1`, ...) as one group: mean and spread
of their curves and test accuracies, and whether two groups differ by more than that spread.
Pure numpy/scipy on values already read; no TensorFlow, no drawing.
"""
import math

import numpy as np

from avh.dashboard.runs import seed_group


def group_by_seed(labels):
    """{group name: [indices into labels]} in first-seen order; a label without a seed is a
    group of its own. Uses the dashboard's rule, so the report and the plugin group alike."""
    groups = {}
    for i, label in enumerate(labels):
        groups.setdefault(seed_group(label)[0], []).append(i)
    return groups


def has_seed_groups(labels):
    return any(seed_group(label)[1] is not None for label in labels)


def band(series):
    """(steps, mean, low, high) over [(steps, values)] of several runs, at the steps all of them
    logged (a run stopped early does not drag the mean); low/high are the min and max."""
    series = [(np.asarray(s), np.asarray(v, dtype=np.float64)) for s, v in series if len(s)]
    if not series:
        return (np.array([], dtype=np.int64),) + (np.array([]),) * 3
    common = series[0][0]
    for steps, _ in series[1:]:
        common = np.intersect1d(common, steps)
    stacked = np.stack([values[np.searchsorted(steps, common)] for steps, values in series])
    return common, stacked.mean(axis=0), stacked.min(axis=0), stacked.max(axis=0)


def pooled_density(histograms, edges):
    """The mean of several runs' histogram densities on common `edges`: each run's stored
    buckets ([left, right, count] rows) spread evenly over their width, so runs count alike."""
    densities = []
    for buckets in histograms:
        left, right, counts = np.asarray(buckets, dtype=np.float64).T
        total = counts.sum()
        if total == 0:
            continue
        # Mass of each stored bucket falling into each common bin, by overlap of the intervals.
        width = np.maximum(right - left, 1e-12)
        lo = np.maximum(edges[:-1, None], left[None, :])
        hi = np.minimum(edges[1:, None], right[None, :])
        share = np.clip(hi - lo, 0, None) / width[None, :]
        share[:, right - left <= 0] = ((edges[:-1, None] <= right[None, :]) &
                                       (right[None, :] < edges[1:, None]))[:, right - left <= 0]
        mass = share @ counts / total
        densities.append(mass / np.diff(edges))
    return np.mean(densities, axis=0) if densities else np.zeros(len(edges) - 1)


def summary(values):
    """(mean, sample sd or nan for one value, n) of the finite values."""
    values = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not values:
        return math.nan, math.nan, 0
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
    return float(np.mean(values)), sd, len(values)


def compare(a, b):
    """Whether two groups' test accuracies, given as (mean, sd, n), differ by more than their
    seed spread: |mean_a - mean_b| > sd_a + sd_b. Returns (difference, spread, beyond spread,
    Welch's t-test p value or nan)."""
    (ma, sa, na), (mb, sb, nb) = a, b
    difference, spread = abs(ma - mb), sa + sb
    p = math.nan
    if na > 1 and nb > 1 and sa + sb > 0:
        from scipy.stats import ttest_ind_from_stats

        p = float(ttest_ind_from_stats(ma, sa, na, mb, sb, nb, equal_var=False).pvalue)
    return difference, spread, bool(difference > spread), p
