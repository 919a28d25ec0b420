"""Weighted percentiles, shared by the benchmark script and the ASteCA worker (NumPy only: it runs in both venvs)."""

import numpy as np


def weighted_percentiles(x, w, qs=(16, 50, 84)):
    """Percentiles of a weighted sample (midpoint rule on the sorted cumulative weights)."""
    x, w = np.asarray(x, float), np.asarray(w, float)
    o = np.argsort(x)
    x, w = x[o], w[o]
    c = (np.cumsum(w) - 0.5 * w) / w.sum()
    return [float(np.interp(q / 100.0, c, x)) for q in qs]
