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

from .simulate import THETA_NAMES

__all__ = ["CLUSTER_PARAMS", "distance_pc", "cluster_prior_weights", "q_prior_factor", "binary_fraction_law",
           "binary_probability", "weighted_mode", "weighted_percentiles", "star_estimates"]

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


def binary_fraction_law(mass_a):
    """f_b(M_A) = 0.8388 tanh(0.688 M_A + 0.079): binary fraction at primary mass M_A [M☉] (M25 eq. 8)."""
    return 0.8388 * np.tanh(0.688 * np.asarray(mass_a, float) + 0.079)


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


def weighted_mode(x, w) -> float:
    """Centre of the heaviest bin of the weighted histogram of ``x`` (bins by NumPy's "auto" rule on the
    samples with w > 0, spec B5 [resolution]); NaN without positive weights."""
    x, w = np.asarray(x, float), np.asarray(w, float)
    ok = (w > 0) & np.isfinite(x)
    if not ok.any():
        return float("nan")
    xv, wv = x[ok], w[ok]
    if np.ptp(xv) == 0:
        return float(xv[0])
    edges = np.histogram_bin_edges(xv, bins="auto")
    h, edges = np.histogram(xv, bins=edges, weights=wv)
    k = int(np.argmax(h))
    return float(0.5 * (edges[k] + edges[k + 1]))


def weighted_percentiles(x, w, qs=(16, 50, 84)) -> np.ndarray:
    """Weighted percentiles along the last axis: (..., len(qs)); NaN where the weights sum to 0."""
    x, w = np.asarray(x, float), np.asarray(w, float)
    w = np.where(np.isfinite(x), w, 0.0)
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
        out[f"{k}_mode"] = np.array([weighted_mode(s[i, :, j], w[i]) if keep[i] else np.nan for i in range(len(s))])
        out[f"{k}_sigma"] = np.where(keep, 0.5 * (pct[:, 2] - pct[:, 0]), np.nan)
    q, m = s[..., _IDX["q"]], s[..., _IDX["mass_a"]]
    pb = np.where(keep, binary_probability(q, m, w), np.nan)
    out["p_binary"] = pb
    binary = q >= _q_lim(m)
    q_mode = np.array([weighted_mode(q[i], np.where(binary[i], w[i], 0.0)) if keep[i] and pb[i] > 0.5 else
                       (0.0 if keep[i] else np.nan) for i in range(len(s))])
    out["q_mode"] = q_mode
    return pd.DataFrame(out)
