"""Calibration diagnostics of predictive samples: coverage, calibration, coverage curves, SBC ranks.

Plain functions shared by ANN ensembles and Bayesian fits alike. ``samples`` is anything with
one row per test case, a sample axis and one column per label:

* an array ``(n, S, k)``: ensemble members (``S = M``) or posterior draws (``S`` = chains x draws,
  flattened) for ``n`` test cases and ``k`` labels; ``(n, S)`` for a single label;
* an object with ``.members`` ``(n, M, k)`` and ``.labels`` (an
  :class:`ocnb.ml.EnsemblePrediction`), whose labels name the columns.

``y_true`` holds the true values, ``(n, k)`` (or ``(n,)`` for one label), or a DataFrame with
the label columns. Intervals are central percentile intervals of the samples (linear
interpolation, NumPy's default).

* :func:`coverage`: fraction of true values inside an interval (16-84 or any other) with the
  residuals of the median; :func:`coverage_curve` / :func:`plot_coverage`: the same over a range
  of nominal levels (a reliability diagram).
* :func:`calibration_factors` / :func:`calibrated_interval` / :func:`calibrated_coverage`:
  widen the intervals by a factor per label, fitted on held-out cases, until they cover as they
  should (Cavallo et al. 2024's ensemble spread ignores the training set's shared bias).
* :func:`sbc_ranks` / :func:`sbc_uniformity` / :func:`plot_sbc`: simulation-based calibration
  (Talts et al. 2018): the rank of the truth among the samples is uniform when calibrated.
* :func:`binned_residuals`: mean and std of the median's residuals in bins of another quantity.

Probabilities of binary events (e.g. cluster membership) have their own three:
:func:`brier_score`, :func:`reliability_curve` (observed frequency vs mean predicted probability
per bin, with a binomial interval) and :func:`expected_calibration_error`. ``p`` holds
probabilities in [0, 1] and ``y`` the outcomes (bool or 0/1), one per case.

Bad input (wrong shapes, NaN samples or truths, too few samples, levels outside (0, 1),
probabilities outside [0, 1], outcomes other than 0/1) raises ``ValueError`` naming the argument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "as_samples",
    "coverage",
    "coverage_curve",
    "plot_coverage",
    "calibration_factors",
    "calibrated_interval",
    "calibrated_coverage",
    "sbc_ranks",
    "sbc_uniformity",
    "sbc_rank_c2st",
    "plot_sbc",
    "plot_sbc_ecdf",
    "binned_residuals",
    "brier_score",
    "reliability_curve",
    "expected_calibration_error",
]


# ---------------------------------------------------------------------------------------------
# Input handling
# ---------------------------------------------------------------------------------------------
def as_samples(samples, labels: Sequence[str] | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(n, S, k)`` float array and label names from an array or an ensemble prediction."""
    own = getattr(samples, "labels", None) if hasattr(samples, "members") else None
    arr = getattr(samples, "members", samples)
    try:
        arr = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"samples must be numeric: {err}") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"samples must have shape (n, n_samples, n_labels) or (n, n_samples), got {arr.shape}")
    n, s, k = arr.shape
    if n < 1 or s < 1:
        raise ValueError(f"samples must hold at least one case and one sample, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        rows = np.flatnonzero(~np.isfinite(arr).all(axis=(1, 2)))
        raise ValueError(f"samples contain NaN or inf values in {rows.size} of {n} cases (first: case {rows[0]})")
    names = tuple(labels) if labels is not None else (tuple(own) if own is not None else
                                                      tuple(f"y{i}" for i in range(k)))
    if len(names) != k:
        raise ValueError(f"{len(names)} labels {list(names)} for samples with {k} columns")
    return arr, names


def _truth(y_true, n: int, labels: Sequence[str]) -> np.ndarray:
    if isinstance(y_true, pd.DataFrame):
        missing = [lab for lab in labels if lab not in y_true.columns]
        if missing:
            raise ValueError(f"y_true lacks the label columns {missing} (it has {list(y_true.columns)})")
        y_true = y_true[list(labels)].to_numpy()
    elif isinstance(y_true, pd.Series):
        y_true = y_true.to_numpy()
    try:
        y = np.asarray(y_true, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"y_true must be numeric: {err}") from None
    if y.ndim == 1 and len(labels) == 1:
        y = y[:, None]
    if y.shape != (n, len(labels)):
        raise ValueError(f"y_true must have shape {(n, len(labels))} (cases x labels {list(labels)}), got {y.shape}")
    if not np.all(np.isfinite(y)):
        rows = np.flatnonzero(~np.isfinite(y).all(axis=1))
        raise ValueError(f"y_true contains NaN or inf values in {rows.size} of {n} cases (first: case {rows[0]})")
    return y


def _check_percentiles(lower: float, upper: float) -> None:
    if not (0 <= lower < upper <= 100):
        raise ValueError(f"need 0 <= lower < upper <= 100 (percentiles), got lower={lower}, upper={upper}")


def _levels(levels) -> np.ndarray:
    lev = np.linspace(0.1, 0.9, 9) if levels is None else np.atleast_1d(np.asarray(levels, dtype=float))
    if lev.size == 0 or not np.all((lev > 0) & (lev < 1)):
        raise ValueError(f"levels must be nominal contents strictly between 0 and 1, got {lev.tolist()}")
    return lev


# ---------------------------------------------------------------------------------------------
# Coverage
# ---------------------------------------------------------------------------------------------
def coverage(samples, y_true, lower: float = 16, upper: float = 84, labels: Sequence[str] | None = None
             ) -> pd.DataFrame:
    """Calibration and accuracy per label on test cases with known truth.

    Parameters
    ----------
    samples : array (n, S, k) or ensemble prediction
    y_true : array (n, k) or DataFrame
    lower, upper : float
        Percentiles of the interval (16-84 by default, nominal content 0.68).

    Returns
    -------
    DataFrame indexed by label with ``coverage`` (fraction of true values inside the
    [``lower``, ``upper``] percentile interval of the samples), ``nominal`` (its nominal content),
    ``mean_abs_residual``, ``bias`` (mean of p50 - true), ``scatter`` (std of p50 - true),
    ``rmse``, ``mean_halfwidth`` (mean of (p_upper - p_lower) / 2) and ``n``. A coverage far below
    nominal means the spread underestimates the real error.
    """
    _check_percentiles(lower, upper)
    arr, names = as_samples(samples, labels)
    y = _truth(y_true, len(arr), names)
    lo, p50, hi = np.percentile(arr, [lower, 50, upper], axis=1)
    res = p50 - y
    inside = (y >= lo) & (y <= hi)
    return pd.DataFrame({
        "coverage": inside.mean(axis=0),
        "nominal": np.full(len(names), (upper - lower) / 100.0),
        "mean_abs_residual": np.abs(res).mean(axis=0),
        "bias": res.mean(axis=0),
        "scatter": res.std(axis=0, ddof=1) if len(y) > 1 else np.zeros(len(names)),
        "rmse": np.sqrt((res ** 2).mean(axis=0)),
        "mean_halfwidth": ((hi - lo) / 2).mean(axis=0),
        "n": np.full(len(names), len(y)),
    }, index=pd.Index(names, name="label"))


def coverage_curve(samples, y_true, levels=None, labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Empirical vs nominal content of central sample intervals (rows: levels; columns: labels)."""
    arr, names = as_samples(samples, labels)
    y = _truth(y_true, len(arr), names)
    rows = []
    lev = _levels(levels)
    for level in lev:
        lo, hi = np.percentile(arr, [50 * (1 - level), 50 * (1 + level)], axis=1)
        rows.append(((y >= lo) & (y <= hi)).mean(axis=0))
    return pd.DataFrame(rows, index=pd.Index(lev, name="nominal"), columns=list(names))


def plot_coverage(samples, y_true, levels=None, ax=None, title: str | None = None,
                  labels: Sequence[str] | None = None):
    """Reliability diagram: empirical fraction of true values inside central sample intervals.

    The diagonal is perfect calibration; the 16-84 interval (nominal 0.68) is marked with a star.
    Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    arr, names = as_samples(samples, labels)
    curve = coverage_curve(arr, y_true, levels, labels=names)
    cov = coverage(arr, y_true, labels=names)
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.8, 4.2))
    else:
        fig = ax.figure
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="ideal")
    for lab in curve.columns:
        label = f"{lab} (16-84: {cov.loc[lab, 'coverage']:.2f})"
        line, = ax.plot(curve.index, curve[lab], marker="o", ms=3, label=label)
        ax.plot([0.68], [cov.loc[lab, "coverage"]], marker="*", ms=10, color=line.get_color())
    ax.axvline(0.68, color="0.8", lw=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("nominal content of the central interval")
    ax.set_ylabel("fraction of true values inside")
    ax.set_title(title or f"Calibration ({arr.shape[1]} samples per case, {arr.shape[0]} cases)")
    ax.legend(fontsize=7, loc="upper left")
    return fig


# ---------------------------------------------------------------------------------------------
# Calibration by interval widening
# ---------------------------------------------------------------------------------------------
def calibration_factors(samples, y_true, level: float = 0.68, lower: float = 16, upper: float = 84,
                        labels: Sequence[str] | None = None) -> dict[str, float]:
    """Per-label factor that widens the [``lower``, ``upper``] interval to contain ``level`` of the truths.

    For each label, f is the ``level`` quantile of |truth - p50| / (half-width on the truth's side:
    p_upper - p50 above the median, p50 - p_lower below it, at least 1e-6) over held-out cases;
    :func:`calibrated_interval` then gives p50 -+ f (p50 - p_lower, p_upper - p50). Fit the factors
    on cases that are not used to check them (:func:`calibrated_coverage`).
    """
    _check_percentiles(lower, upper)
    if not 0 < level < 1:
        raise ValueError(f"level must be strictly between 0 and 1, got {level}")
    arr, names = as_samples(samples, labels)
    y = _truth(y_true, len(arr), names)
    factors = {}
    for j, lab in enumerate(names):
        p_lo = np.percentile(arr[:, :, j], lower, axis=1)
        p50 = np.percentile(arr[:, :, j], 50, axis=1)
        p_hi = np.percentile(arr[:, :, j], upper, axis=1)
        truth = y[:, j]
        half = np.where(truth >= p50, p_hi - p50, p50 - p_lo)
        ratio = np.abs(truth - p50) / np.maximum(half, 1e-6)
        factors[lab] = float(np.quantile(ratio, level))
    return factors


def _factor_series(factors: Mapping[str, float], names: Sequence[str]) -> pd.Series:
    missing = [lab for lab in names if lab not in factors]
    if missing:
        raise ValueError(f"factors lack the labels {missing}")
    f = pd.Series({lab: float(factors[lab]) for lab in names})
    if not np.all(np.isfinite(f.to_numpy())) or (f < 0).any():
        raise ValueError(f"factors must be finite and >= 0, got {f.to_dict()}")
    return f


def calibrated_interval(samples, factors: Mapping[str, float], lower: float = 16, upper: float = 84,
                        labels: Sequence[str] | None = None, index=None) -> dict:
    """Calibrated interval frames ``{lower: lo, 50: p50, upper: hi}`` (see :func:`calibration_factors`)."""
    _check_percentiles(lower, upper)
    arr, names = as_samples(samples, labels)
    if index is None:
        index = getattr(samples, "index", None)
    frame = lambda v: pd.DataFrame(v, columns=list(names), index=index)  # noqa: E731
    p_lo = frame(np.percentile(arr, lower, axis=1))
    p50 = frame(np.percentile(arr, 50, axis=1))
    p_hi = frame(np.percentile(arr, upper, axis=1))
    f = _factor_series(factors, names)[p50.columns]
    lo = p50 - (p50 - p_lo) * f
    hi = p50 + (p_hi - p50) * f
    return {lower: lo, 50: p50, upper: hi}


def calibrated_coverage(samples, y_true, factors: Mapping[str, float], lower: float = 16, upper: float = 84,
                        labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Coverage of the raw and of the calibrated [``lower``, ``upper``] intervals on held-out cases.

    One row per label: ``nominal``, ``raw``, ``calibrated``, ``factor``.
    """
    arr, names = as_samples(samples, labels)
    y = _truth(y_true, len(arr), names)
    cal = calibrated_interval(arr, factors, lower, upper, labels=names)
    raw_lo = np.percentile(arr, lower, axis=1)
    raw_hi = np.percentile(arr, upper, axis=1)
    rows = []
    for j, lab in enumerate(names):
        t = y[:, j]
        c_lo, c_hi = cal[lower][lab].to_numpy(), cal[upper][lab].to_numpy()
        rows.append({"label": lab, "nominal": (upper - lower) / 100.0,
                     "raw": float(np.mean((t >= raw_lo[:, j]) & (t <= raw_hi[:, j]))),
                     "calibrated": float(np.mean((t >= c_lo) & (t <= c_hi))),
                     "factor": float(factors[lab])})
    return pd.DataFrame(rows).set_index("label")


# ---------------------------------------------------------------------------------------------
# Simulation-based calibration
# ---------------------------------------------------------------------------------------------
def sbc_ranks(samples, y_true, labels: Sequence[str] | None = None, seed: int | None = 0) -> pd.DataFrame:
    """Rank of each true value among its samples (simulation-based calibration, Talts et al. 2018).

    The rank is the number of samples below the truth, 0 ... S; ties (e.g. samples clipped at a
    bound equal to the truth) are broken at random with ``seed``, so a calibrated model gives
    uniform ranks. Returns a DataFrame (n x labels) of integer ranks with ``attrs["n_samples"] = S``.
    """
    arr, names = as_samples(samples, labels)
    y = _truth(y_true, len(arr), names)
    below = (arr < y[:, None, :]).sum(axis=1)
    ties = (arr == y[:, None, :]).sum(axis=1)
    if ties.any():
        rng = np.random.default_rng(seed)
        below = below + rng.integers(0, ties + 1)
    out = pd.DataFrame(below.astype(np.int64), columns=list(names))
    out.attrs["n_samples"] = int(arr.shape[1])
    return out


def sbc_uniformity(ranks: pd.DataFrame, n_samples: int | None = None, n_bins: int | None = None) -> pd.DataFrame:
    """Chi-square and Kolmogorov–Smirnov tests of uniform SBC ranks, per label.

    Ranks 0 ... ``n_samples`` are grouped into ``n_bins`` equal bins (default: about n/10, at most
    ``n_samples + 1`` and at least 2). Returns ``chi2``, ``dof``, ``p_value`` (chi-square), ``ks_stat``,
    ``ks_p_value`` and ``n`` per label; a small p-value means miscalibration (a U shape: too narrow;
    a hump: too wide; a slope: biased). The KS test (sbi's ``check_sbc``) compares the fractional
    ranks (r + u)/(S + 1), u ~ U(0, 1) seeded (so that the discrete ranks become continuous), with
    U(0, 1).
    """
    from scipy.stats import chi2 as chi2_dist
    from scipy.stats import kstest

    if not isinstance(ranks, pd.DataFrame):
        ranks = pd.DataFrame(np.asarray(ranks))
    s = int(n_samples if n_samples is not None else ranks.attrs.get("n_samples", -1))
    if s < 1:
        raise ValueError("n_samples (the number of samples per case) is needed: pass it, or ranks from sbc_ranks()")
    values = ranks.to_numpy()
    if values.size == 0 or np.any(values < 0) or np.any(values > s):
        raise ValueError(f"ranks must lie in 0 ... {s} (n_samples)")
    n = len(ranks)
    bins = int(n_bins) if n_bins is not None else max(2, min(s + 1, n // 10))
    if not 2 <= bins <= s + 1:
        raise ValueError(f"n_bins must be between 2 and n_samples + 1 = {s + 1}, got {bins}")
    # Bin b holds the ranks r with floor(r * bins / (s + 1)) == b: equal numbers of possible ranks
    # (to within one), so the expected count of each bin is n * width_b / (s + 1).
    edges = np.floor(np.arange(s + 2) * bins / (s + 1)).astype(int)
    width = np.bincount(edges[:-1], minlength=bins)
    expected = n * width / (s + 1)
    rows = []
    for lab in ranks.columns:
        idx = edges[ranks[lab].to_numpy().astype(int)]
        observed = np.bincount(idx, minlength=bins)
        stat = float(np.sum((observed - expected) ** 2 / expected))
        frac = _fractional_ranks(ranks[lab].to_numpy(), s)
        ks = kstest(frac, "uniform")
        rows.append({"label": lab, "chi2": stat, "dof": bins - 1, "p_value": float(chi2_dist.sf(stat, bins - 1)),
                     "ks_stat": float(ks.statistic), "ks_p_value": float(ks.pvalue), "n": n})
    return pd.DataFrame(rows).set_index("label")


def _fractional_ranks(r: np.ndarray, s: int, seed: int = 0) -> np.ndarray:
    """(r + u) / (S + 1), u ~ U(0, 1): discrete ranks 0 ... S spread uniformly over (0, 1) if calibrated."""
    u = np.random.default_rng(seed).uniform(size=np.shape(r))
    return (np.asarray(r, float) + u) / (s + 1)


def sbc_rank_c2st(ranks: pd.DataFrame, n_samples: int | None = None, folds: int = 5, seed: int = 0) -> float:
    """Classifier two-sample test of the joint SBC ranks against uniform ranks (sbi's rank-C2ST).

    A classifier (scikit-learn ``MLPClassifier``, two hidden layers of 10 × dim units, early stopping
    after 50 epochs without progress, as sbi's ``c2st``) learns to tell the fractional ranks of all
    labels together from as many uniform draws; its ``folds``-fold cross-validated accuracy is
    returned. 0.5: the classifier cannot tell, the joint ranks look uniform; towards 1: miscalibrated
    (also in ways no single marginal shows).
    """
    from sklearn.model_selection import cross_val_score
    from sklearn.neural_network import MLPClassifier

    if not isinstance(ranks, pd.DataFrame):
        ranks = pd.DataFrame(np.asarray(ranks))
    s = int(n_samples if n_samples is not None else ranks.attrs.get("n_samples", -1))
    if s < 1:
        raise ValueError("n_samples (the number of samples per case) is needed: pass it, or ranks from sbc_ranks()")
    frac = _fractional_ranks(ranks.to_numpy(), s, seed)
    if len(frac) < 2 * folds:
        raise ValueError(f"rank-C2ST needs at least {2 * folds} cases, got {len(frac)}")
    ref = np.random.default_rng(seed + 1).uniform(size=frac.shape)
    x = np.concatenate([frac, ref])
    y = np.r_[np.ones(len(frac)), np.zeros(len(ref))]
    dim = x.shape[1]
    clf = MLPClassifier(hidden_layer_sizes=(10 * dim, 10 * dim), max_iter=1000, solver="adam", random_state=seed,
                        early_stopping=True, n_iter_no_change=50)
    from sklearn.model_selection import StratifiedKFold

    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(np.mean(cross_val_score(clf, x, y, cv=cv, scoring="accuracy")))


def plot_sbc(ranks: pd.DataFrame, n_samples: int | None = None, n_bins: int | None = None, axes=None):
    """Histograms of SBC ranks per label with the 99 % band of a uniform histogram. Returns the Figure."""
    import matplotlib.pyplot as plt
    from scipy.stats import binom

    s = int(n_samples if n_samples is not None else ranks.attrs.get("n_samples", -1))
    if s < 1:
        raise ValueError("n_samples is needed: pass it, or ranks from sbc_ranks()")
    n = len(ranks)
    bins = int(n_bins) if n_bins is not None else max(2, min(s + 1, n // 10))
    cols = list(ranks.columns)
    if axes is None:
        fig, axes = plt.subplots(1, len(cols), figsize=(2.6 * len(cols), 2.4), squeeze=False)
        axes = axes[0]
    else:
        axes = np.atleast_1d(axes)
        fig = axes[0].figure
    edges = np.linspace(-0.5, s + 0.5, bins + 1)
    lo, hi = binom.ppf([0.005, 0.995], n, 1.0 / bins)
    for ax, lab in zip(axes, cols, strict=False):
        ax.axhspan(lo, hi, color="0.88", lw=0)
        ax.hist(ranks[lab], bins=edges, color="C0", alpha=0.8)
        ax.set_title(str(lab), fontsize=9)
        ax.set_xlabel("rank of the truth")
    axes[0].set_ylabel("cases")
    return fig


def plot_sbc_ecdf(ranks: pd.DataFrame, n_samples: int | None = None, ax=None, level: float = 0.99):
    """ECDF of the fractional SBC ranks minus the uniform CDF, one line per label, with the ``level``
    band of a uniform sample (Dvoretzky–Kiefer–Wolfowitz, simultaneous over the whole curve).

    A calibrated posterior stays inside the band; a ∪ shape (negative then positive) means too narrow,
    ∩ too wide, a one-sided bump a bias. Returns the Figure.
    """
    import matplotlib.pyplot as plt

    s = int(n_samples if n_samples is not None else ranks.attrs.get("n_samples", -1))
    if s < 1:
        raise ValueError("n_samples is needed: pass it, or ranks from sbc_ranks()")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.2, 3.0))
    else:
        fig = ax.figure
    n = len(ranks)
    eps = np.sqrt(np.log(2 / (1 - level)) / (2 * n))
    grid = np.linspace(0, 1, 201)
    ax.fill_between(grid, -eps, eps, color="0.88", lw=0, label=f"{100 * level:g} % band (uniform)")
    for j, lab in enumerate(ranks.columns):
        frac = np.sort(_fractional_ranks(ranks[lab].to_numpy(), s))
        ecdf = np.searchsorted(frac, grid, side="right") / n
        ax.plot(grid, ecdf - grid, color=f"C{j}", lw=1.2, label=str(lab))
    ax.axhline(0, color="0.5", lw=0.6)
    ax.set_xlabel("fractional rank of the truth")
    ax.set_ylabel("ECDF − uniform")
    ax.legend(fontsize=7, frameon=False)
    return fig


# ---------------------------------------------------------------------------------------------
# Residuals in bins
# ---------------------------------------------------------------------------------------------
def binned_residuals(samples, y_true, by, bins, estimate="p50", labels: Sequence[str] | None = None,
                     bin_name: str = "bin") -> pd.DataFrame:
    """Mean and std of (estimate - true) in bins of ``by``, per label.

    Parameters
    ----------
    by : array (n,)
        The binning quantity (e.g. log10 of the number of stars per cluster).
    bins : array of edges
    estimate : ``"p50"`` (median of the samples), ``"mean"`` or an int (that single sample/member).

    Returns a frame indexed by bin with columns (label, {"mean", "std", "n"}).
    """
    arr, names = as_samples(samples, labels)
    y = _truth(y_true, len(arr), names)
    if estimate == "p50":
        est = np.percentile(arr, 50, axis=1)
    elif estimate == "mean":
        est = arr.mean(axis=1)
    elif isinstance(estimate, (int, np.integer)) and not isinstance(estimate, bool):
        if not -arr.shape[1] <= int(estimate) < arr.shape[1]:
            raise ValueError(f"estimate {estimate} is not a member index (there are {arr.shape[1]})")
        est = arr[:, int(estimate)]
    else:
        raise ValueError("estimate must be 'p50', 'mean' or a member index")
    by = np.asarray(by, dtype=np.float64)
    if by.shape != (len(y),):
        raise ValueError(f"the binning quantity must have one value per case ({len(y)}), got shape {by.shape}")
    cat = pd.cut(by, np.asarray(bins, dtype=float), include_lowest=True)
    res = pd.DataFrame(est - y, columns=list(names))
    grouped = res.groupby(cat, observed=False)
    out = pd.concat({lab: grouped[lab].agg(["mean", "std", "count"]).rename(columns={"count": "n"})
                     for lab in names}, axis=1)
    out.index.name = bin_name
    return out


# ---------------------------------------------------------------------------------------------
# Probabilities of binary events
# ---------------------------------------------------------------------------------------------
def _binary_cases(p, y) -> tuple[np.ndarray, np.ndarray]:
    """``(p, y)`` as float arrays: p in [0, 1], y in {0, 1}, same length, at least one case."""
    try:
        p = np.asarray(p, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"p and y must be numeric: {err}") from None
    if p.ndim != 1 or y.ndim != 1:
        raise ValueError(f"p and y must be 1-D (one value per case), got shapes {p.shape} and {y.shape}")
    if p.shape != y.shape:
        raise ValueError(f"p and y must have the same length, got {p.size} probabilities and {y.size} outcomes")
    if p.size == 0:
        raise ValueError("p and y are empty: there is nothing to score")
    for name, a in (("p", p), ("y", y)):
        if not np.all(np.isfinite(a)):
            bad = np.flatnonzero(~np.isfinite(a))
            raise ValueError(f"{name} contains NaN or inf values in {bad.size} of {a.size} cases "
                             f"(first: case {bad[0]})")
    if np.any((p < 0) | (p > 1)):
        bad = np.flatnonzero((p < 0) | (p > 1))
        raise ValueError(f"p must be probabilities in [0, 1]: {bad.size} value(s) outside, e.g. p[{bad[0]}] = "
                         f"{p[bad[0]]:.4g}")
    if np.any((y != 0) & (y != 1)):
        bad = np.flatnonzero((y != 0) & (y != 1))
        raise ValueError(f"y must be outcomes 0/1 (or bool): {bad.size} other value(s), e.g. y[{bad[0]}] = "
                         f"{y[bad[0]]:.4g}")
    return p, y


def brier_score(p, y) -> float:
    """Mean squared difference between predicted probabilities and outcomes (Brier 1950).

    0 is perfect; always predicting the base rate b gives b (1 - b); lower is better. It rewards
    both calibration and sharpness (Murphy's decomposition: reliability - resolution +
    uncertainty).

    Parameters
    ----------
    p : array (n,)
        Predicted probabilities of the event, in [0, 1].
    y : array (n,)
        Outcomes: bool or 0/1.
    """
    p, y = _binary_cases(p, y)
    return float(np.mean((p - y) ** 2))


def _bin_index(p: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each p for increasing ``edges``: [e_i, e_i+1), the last bin closed on the right."""
    return np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)


def _n_bins(n_bins) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    return int(n_bins)


def reliability_curve(p, y, n_bins: int = 10, strategy: str = "uniform", level: float = 0.95) -> pd.DataFrame:
    """Observed frequency of the event against the mean predicted probability, in bins of p.

    Parameters
    ----------
    p, y : array (n,)
        Probabilities in [0, 1] and outcomes (bool or 0/1).
    n_bins : int
        Number of bins.
    strategy : {"uniform", "quantile"}
        ``"uniform"``: equal widths on [0, 1] (empty bins are kept, with count 0 and NaN values);
        ``"quantile"``: edges at quantiles of ``p``, so the bins hold about equal numbers of cases
        (repeated edges, e.g. from many p = 0, are merged: fewer bins).
    level : float
        Content of the binomial (Clopper-Pearson) interval of the observed fraction.

    Returns
    -------
    DataFrame, one row per bin: ``bin_lower``, ``bin_upper``, ``mean_predicted``,
    ``observed_fraction``, ``count``, ``observed_lower``, ``observed_upper`` (the interval). A
    calibrated model's points lie on the diagonal within their intervals. Bins are [lower, upper),
    the last one closed.
    """
    from scipy.stats import beta

    p, y = _binary_cases(p, y)
    n_bins = _n_bins(n_bins)
    if not 0 < level < 1:
        raise ValueError(f"level must be strictly between 0 and 1, got {level}")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1)))
        if edges.size == 1:  # every p equal: one degenerate bin
            edges = np.array([edges[0], edges[0]])
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    idx = _bin_index(p, edges)
    nb = len(edges) - 1
    count = np.bincount(idx, minlength=nb)
    k = np.bincount(idx, weights=y, minlength=nb)
    sum_p = np.bincount(idx, weights=p, minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.where(count > 0, sum_p / np.maximum(count, 1), np.nan)
        frac = np.where(count > 0, k / np.maximum(count, 1), np.nan)
    alpha = 1.0 - level
    lo = np.where(k > 0, beta.ppf(alpha / 2, k, count - k + 1), 0.0)
    hi = np.where(k < count, beta.ppf(1 - alpha / 2, k + 1, count - k), 1.0)
    empty = count == 0
    lo, hi = np.where(empty, np.nan, lo), np.where(empty, np.nan, hi)
    return pd.DataFrame({
        "bin_lower": edges[:-1], "bin_upper": edges[1:], "mean_predicted": mean_p, "observed_fraction": frac,
        "count": count.astype(np.int64), "observed_lower": lo, "observed_upper": hi,
    })


def expected_calibration_error(p, y, n_bins: int = 10) -> float:
    """Expected calibration error: sum over equal-width bins of (n_b / n) |observed - mean predicted|.

    0 for a perfectly calibrated model; it ignores sharpness (always predicting the base rate
    scores 0), so read it beside :func:`brier_score`. The value depends on ``n_bins`` (it is
    biased upwards for few cases per bin).
    """
    curve = reliability_curve(p, y, n_bins=n_bins, strategy="uniform")
    full = curve[curve["count"] > 0]
    w = full["count"].to_numpy() / full["count"].sum()
    return float(np.sum(w * np.abs(full["observed_fraction"].to_numpy() - full["mean_predicted"].to_numpy())))
