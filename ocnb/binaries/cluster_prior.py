"""Cluster-prior weights, the q-prior and per-star point estimates (Malhotra et al. 2025, Sects. 3.3–3.4; spec B4–B5).

The NPE posterior of each star (:func:`ocnb.binaries.sample_posteriors`) is drawn under the wide
simulation prior. All members of a cluster share its age, distance, metallicity and extinction, so
each sample is **weighted** by the cluster's current estimate of those four numbers,

    w_s = Π_p N(θ_s,p | m_p, σ_p) · 1[|θ_s,p − m_p| ≤ 5 σ_p],  p ∈ {log age, distance [pc], [Fe/H], A_V},

multiplying the NPE posterior directly (spec B4: no division by the simulation prior; the paper's
choice, kept). Samples with w > 0 are "valid"; a star with none is a photometric outlier of this
cluster. In round 2 of the cluster fit each sample is also weighted by the **q-prior**: with
f_b = 0.8388 tanh(0.688 M_A + 0.079) the binary fraction at the sample's own primary mass (M25
eq. 8, an Arenou 2010-style law) and q_lim = 0.1 M☉ / M_A, the factor is (1 − f_b)/q_lim below q_lim
(a single star) and f_b/(1 − q_lim) above.

Point estimates (spec B5): P_b = Σ_{q ≥ q_lim} w / Σ w; the **weighted mode** of a parameter is the
centre of the heaviest bin of a weighted histogram whose bins follow NumPy's "auto" rule on the
valid samples; q_mode is the weighted mode of the samples with q ≥ q_lim if P_b > 0.5, else 0; the
per-star uncertainty is half the weighted 16–84 % interval.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .simulate import THETA_NAMES, binary_fraction_law

__all__ = ["CLUSTER_PARAMS", "distance_pc", "cluster_prior_weights", "q_prior_factor", "binary_fraction_law",
           "binary_probability", "weighted_mode", "weighted_modes", "weighted_percentiles", "star_estimates"]

#: The cluster parameters of the weights, and the units of their means and σ.
CLUSTER_PARAMS = {"log_age": "log10(yr)", "distance": "pc", "feh": "dex", "a_v": "mag"}
#: Truncation of the Gaussian weights, in σ (spec B4).
N_SIGMA = 5.0
_IDX = {k: i for i, k in enumerate(THETA_NAMES)}


def distance_pc(dist_mod):
    """Distance [pc] from the distance modulus μ [mag]: d = 10^(1 + μ/5)."""
    return np.power(10.0, 1.0 + np.asarray(dist_mod, float) / 5.0)


def _check_cluster(means: Mapping, sigmas: Mapping) -> None:
    for k in CLUSTER_PARAMS:
        for what, d in (("means", means), ("sigmas", sigmas)):
            if k not in d:
                raise ValueError(f"cluster {what} lack {k!r} [{CLUSTER_PARAMS[k]}]; give all of {list(CLUSTER_PARAMS)}")
            if not np.isfinite(float(d[k])):
                raise ValueError(f"cluster {what}[{k!r}] = {d[k]!r} is not finite")
        if float(sigmas[k]) <= 0:
            raise ValueError(f"cluster sigmas[{k!r}] = {sigmas[k]!r} must be > 0 [{CLUSTER_PARAMS[k]}]")


def cluster_prior_weights(samples: np.ndarray, means: Mapping[str, float], sigmas: Mapping[str, float],
                          use: tuple = tuple(CLUSTER_PARAMS)) -> np.ndarray:
    """Weights w (n_stars, n_samples) of posterior samples under the cluster prior (spec B4).

    Parameters
    ----------
    samples : ndarray (n_stars, n_samples, ≥ 6)
        :data:`~ocnb.binaries.THETA_NAMES` order (from :class:`~ocnb.binaries.StarPosteriors`).
    means, sigmas : mapping
        Cluster estimate of ``log_age`` [log10 yr], ``distance`` [pc], ``feh`` [dex], ``a_v`` [mag]
        and their σ (> 0).
    use : tuple of str
        Parameters that weigh (all four by default).

    Returns
    -------
    ndarray
        Unnormalised weights; 0 outside 5 σ of any parameter and for NaN samples.
    """
    _check_cluster(means, sigmas)
    unknown = [k for k in use if k not in CLUSTER_PARAMS]
    if unknown:
        raise ValueError(f"use has unknown parameter(s) {unknown}; choose from {list(CLUSTER_PARAMS)}")
    s = np.asarray(samples, float)
    logw = np.zeros(s.shape[:2])
    inside = np.ones(s.shape[:2], bool)
    for k in use:
        x = distance_pc(s[..., _IDX["dist_mod"]]) if k == "distance" else s[..., _IDX[k]]
        z = (x - float(means[k])) / float(sigmas[k])
        logw -= 0.5 * z * z
        inside &= np.abs(z) <= N_SIGMA
    with np.errstate(invalid="ignore"):
        w = np.where(inside, np.exp(logw), 0.0)
    return np.where(np.isfinite(w), w, 0.0)


def _q_lim(mass_a):
    return np.minimum(0.1 / np.asarray(mass_a, float), 0.999)


def q_prior_factor(q, mass_a) -> np.ndarray:
    """q-prior factor of each sample (spec B4): (1 − f_b)/q_lim for q < q_lim, f_b/(1 − q_lim) above.

    ``q`` may be the censored q (0 for singles) or q as drawn: both are below q_lim exactly for singles.
    """
    q = np.asarray(q, float)
    m = np.asarray(mass_a, float)
    fb = binary_fraction_law(m)
    ql = _q_lim(m)
    return np.where(q < ql, (1.0 - fb) / ql, fb / (1.0 - ql))


def binary_probability(q, mass_a, weights) -> np.ndarray:
    """P_b per star: weighted share of samples with q ≥ q_lim (spec B5); NaN without valid samples."""
    q, m, w = (np.asarray(a, float) for a in (q, mass_a, weights))
    total = w.sum(axis=-1)
    hit = np.where(q >= _q_lim(m), w, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, hit / total, np.nan)


def weighted_modes(x, w, presorted: bool = False) -> np.ndarray:
    """Weighted mode along the last axis, vectorised over stars (spec B5 [resolution]).

    For each row: bins of width min(Sturges, Freedman–Diaconis) on the samples with w > 0 (NumPy's
    "auto" rule: the larger number of bins), a weighted histogram, the centre of the heaviest bin.
    NaN where no sample has positive weight; the value itself where all valid samples are equal.
    ``presorted=True`` promises rows sorted by x (NaN last): the iterative cluster fit sorts its
    samples once and only the weights change between iterations.
    """
    x, w = np.atleast_2d(np.asarray(x, float)), np.atleast_2d(np.asarray(w, float))
    if not presorted:
        order = np.argsort(np.where(np.isfinite(x), x, np.inf), axis=-1)
        x, w = np.take_along_axis(x, order, axis=-1), np.take_along_axis(w, order, axis=-1)
    ok = (w > 0) & np.isfinite(x)
    n = ok.sum(axis=-1)
    rank = np.cumsum(ok, axis=-1) - 1  # rank among the valid samples, in x order
    last = np.maximum(n - 1, 0)

    def at_rank(r):
        i = np.argmax((rank >= r[..., None]) & ok, axis=-1)
        return np.take_along_axis(x, i[..., None], axis=-1)[..., 0]

    def quantile(p):  # NumPy's default linear interpolation between order statistics
        pos = p * last
        r0 = np.floor(pos).astype(int)
        a, b = at_rank(r0), at_rank(np.minimum(r0 + 1, last))
        return np.where(n > 0, a + (pos - r0) * (b - a), np.nan)

    with np.errstate(invalid="ignore"):
        lo, q25, q75, hi = (quantile(p) for p in (0.0, 0.25, 0.75, 1.0))
    span = np.where(np.isfinite(hi - lo), hi - lo, 0.0)
    n_safe = np.maximum(n, 1)
    sturges = span / (np.ceil(np.log2(n_safe)) + 1)
    fd = 2.0 * (q75 - q25) * n_safe ** (-1.0 / 3.0)
    width = np.where(fd > 0, np.minimum(sturges, fd), sturges)
    nbins = np.where(span > 0, np.ceil(span / np.where(width > 0, width, 1.0)), 1).astype(int)
    nbins = np.clip(nbins, 1, None)
    width = np.where(span > 0, span / nbins, 1.0)
    lo0 = np.where(np.isfinite(lo), lo, 0.0)
    with np.errstate(invalid="ignore"):
        idx = np.where(ok, np.clip(np.floor((x - lo0[..., None]) / width[..., None]), 0, nbins[..., None] - 1), 0)
    offsets = np.concatenate([[0], np.cumsum(nbins)[:-1]])
    flat = (idx.astype(np.int64) + offsets[..., None]).ravel()
    hist = np.bincount(flat, weights=np.where(ok, w, 0.0).ravel(), minlength=int(nbins.sum()))
    out = np.empty(len(nbins))
    for_rows = np.split(hist, np.cumsum(nbins)[:-1])
    for i, h in enumerate(for_rows):  # argmax per row of a ragged histogram (cheap: a few hundred bins)
        out[i] = lo0[i] + (int(np.argmax(h)) + 0.5) * width[i] if span[i] > 0 else lo0[i]
    return np.where(n > 0, out, np.nan)


def weighted_mode(x, w) -> float:
    """Weighted mode of one sample set (:func:`weighted_modes` for one row)."""
    return float(weighted_modes(np.asarray(x, float)[None, :], np.asarray(w, float)[None, :])[0])


def weighted_percentiles(x, w, qs=(16, 50, 84), presorted: bool = False) -> np.ndarray:
    """Weighted percentiles along the last axis: (..., len(qs)); NaN where the weights sum to 0.

    ``presorted=True`` promises rows sorted by x (NaN last), as :func:`weighted_modes` does.
    """
    x, w = np.asarray(x, float), np.asarray(w, float)
    w = np.where(np.isfinite(x), w, 0.0)
    if presorted:
        xs, cw = x, np.cumsum(w, axis=-1)
    else:
        order = np.argsort(np.where(np.isfinite(x), x, np.inf), axis=-1)
        xs = np.take_along_axis(x, order, axis=-1)
        cw = np.cumsum(np.take_along_axis(w, order, axis=-1), axis=-1)
    total = cw[..., -1:]
    out = []
    for q in qs:
        idx = np.argmax(cw >= (q / 100.0) * total, axis=-1)[..., None]
        out.append(np.take_along_axis(xs, idx, axis=-1)[..., 0])
    res = np.stack(out, axis=-1)
    return np.where(total > 0, res, np.nan)


def star_estimates(samples: np.ndarray, weights: np.ndarray, min_valid: int = 1) -> pd.DataFrame:
    """Per-star point estimates under weights (spec B5): modes, σ, P_b, q_mode, N_valid.

    Parameters
    ----------
    samples : ndarray (n_stars, n_samples, ≥ 6)
        :data:`~ocnb.binaries.THETA_NAMES` order.
    weights : ndarray (n_stars, n_samples)
        From :func:`cluster_prior_weights` (× :func:`q_prior_factor` in round 2), or ones.
    min_valid : int
        Stars with fewer valid samples (w > 0) get NaN estimates and ``outlier`` True.

    Returns
    -------
    DataFrame
        ``<param>_mode`` and ``<param>_sigma`` (half the weighted 16–84 % interval) for every
        parameter, ``p_binary``, ``q_mode`` (0 when P_b ≤ 0.5), ``n_valid``, ``valid_fraction``, ``outlier``.
    """
    s = np.asarray(samples, float)
    w = np.asarray(weights, float)
    if s.ndim != 3 or w.shape != s.shape[:2]:
        raise ValueError(f"samples must be (n_stars, n_samples, k) and weights (n_stars, n_samples); "
                         f"got {s.shape} and {w.shape}")
    n_valid = (w > 0).sum(axis=1)
    keep = n_valid >= max(1, int(min_valid))
    out = {"n_valid": n_valid, "valid_fraction": n_valid / s.shape[1], "outlier": ~keep}
    for k in THETA_NAMES:
        j = _IDX[k]
        pct = weighted_percentiles(s[..., j], w)
        out[f"{k}_mode"] = np.where(keep, weighted_modes(s[..., j], w), np.nan)
        out[f"{k}_sigma"] = np.where(keep, 0.5 * (pct[:, 2] - pct[:, 0]), np.nan)
    q, m = s[..., _IDX["q"]], s[..., _IDX["mass_a"]]
    pb = np.where(keep, binary_probability(q, m, w), np.nan)
    out["p_binary"] = pb
    binary = q >= _q_lim(m)
    q_bin = weighted_modes(q, np.where(binary, w, 0.0))
    q_mode = np.where(keep, np.where(pb > 0.5, q_bin, 0.0), np.nan)
    out["q_mode"] = q_mode
    return pd.DataFrame(out)
