"""Iterative cluster fit of Malhotra et al. 2025 (Sect. 3.5, App. B; spec B6).

All members share the cluster's age, distance, [Fe/H] and A_V. Starting from the average of the
members' own (wide) NPE posteriors, the fit alternates two steps until the cluster parameters stop
moving:

1. weigh every member's posterior samples by the current cluster prior
   (:func:`ocnb.binaries.cluster_prior.cluster_prior_weights`; in round 2 also by the q-prior) and
   take per-star weighted modes and widths (:func:`~ocnb.binaries.cluster_prior.star_estimates`);
2. update each cluster parameter as the inverse-variance weighted mean of the per-star modes of the
   stars that constrain it, with the weighted standard deviation as its new width (floored):
   **log age** from the evolved stars — each member takes the PARSEC phase label of its nearest point
   on the current isochrone in the (BP−RP, G) plane; labels 0 (pre-main sequence) and 1 (main
   sequence) are dropped; fewer than 5 evolved stars are topped up with the brightest main-sequence
   stars, and from iteration 10 on a cluster with fewer than 5 evolved stars uses the upper and lower
   main sequence instead (3 < M_G < 8 excluded); **distance** and **A_V** from the stars with G < 18
   (from iteration 10 on A_V leaves out the likely binaries, P_b > 0.5). [Fe/H] stays at the
   spectroscopic value (σ = 0.05 dex).

Floors: 0.05 dex (log age, [Fe/H]), 0.05 mag (A_V), 2 % of the distance. Converged when each of the
six numbers (the three means and widths) changed by less than 0.1 % (relative) in each of the last
five iterations; at most 50 iterations. Round 2 restarts from round 1 with the q-prior.
Stars need at least 2 % valid samples (≥ 400 of 20 000) to count.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd

from .cluster_prior import (
    binary_probability,
    cluster_prior_weights,
    distance_pc,
    q_prior_factor,
    star_estimates,
    weighted_modes,
    weighted_percentiles,
)
from .simulate import THETA_NAMES

__all__ = ["ClusterFit", "fit_cluster", "FLOORS"]

#: Width floors of the cluster parameters (spec B6.5): dex, fraction of the distance, mag.
FLOORS = {"log_age": 0.05, "distance_fraction": 0.02, "a_v": 0.05, "feh": 0.05}
FIT_PARAMS = ("log_age", "distance", "a_v")
_IDX = {k: i for i, k in enumerate(THETA_NAMES)}
#: Evolved-star minimum and the iteration after which the main-sequence fall-back starts (spec B6.3).
MIN_AGE_STARS = 5
SWITCH_ITERATION = 10


@dataclasses.dataclass
class ClusterFit:
    """Result of :func:`fit_cluster`.

    Attributes
    ----------
    params : dict
        Final cluster means and widths: ``log_age`` [log10 yr], ``distance`` [pc], ``a_v`` [mag],
        ``feh`` [dex] (fixed) and ``<name>_sigma``; ``dist_mod`` [mag] from the distance.
    history : DataFrame
        One row per iteration: ``round``, ``iteration``, the means and widths, the numbers of stars
        used for each parameter, and how the age stars were chosen.
    stars : DataFrame
        Per member after the last round: band set, ``G`` [mag], status, modes and σ of every parameter,
        ``p_binary``, ``q_mode``, ``n_valid``, ``valid_fraction``, ``label`` (phase on the final
        isochrone), ``used_for_age``.
    converged : dict
        ``{round: bool}``.
    flags : list of str
        What the user must know (age unconstrained, no convergence, few valid stars).
    """

    params: dict
    history: pd.DataFrame
    stars: pd.DataFrame
    converged: dict
    flags: list
    seconds: float = float("nan")

    def to_frame(self) -> pd.DataFrame:
        """The per-star table (:attr:`stars`)."""
        return self.stars

    def plot(self, fig=None):
        """Convergence of log age, distance and A_V over the iterations of both rounds (M25 Fig. 3)."""
        import matplotlib.pyplot as plt

        fig = fig or plt.figure(figsize=(7.5, 6.0))
        axes = fig.subplots(3, 1, sharex=True)
        h = self.history
        step = np.arange(len(h))
        units = {"log_age": "log age [yr]", "distance": "distance [pc]", "a_v": "A_V [mag]"}
        for ax, k in zip(axes, FIT_PARAMS, strict=True):
            m, s = h[k].to_numpy(), h[f"{k}_sigma"].to_numpy()
            ax.fill_between(step, m - s, m + s, color="C0", alpha=0.25, lw=0, label="± cluster σ")
            ax.plot(step, m, color="C0", lw=1.4, label="mean")
            second = np.flatnonzero(h["round"].to_numpy() == 2)
            if second.size:
                ax.axvline(second[0] - 0.5, color="0.5", ls=":", lw=1)
            ax.set_ylabel(units[k])
        axes[0].legend(fontsize=7, frameon=False)
        axes[-1].set_xlabel("iteration (round 1, then round 2 with the q-prior after the dotted line)")
        fig.align_ylabels(axes)
        return fig


def _floor(name: str, mean: float, sigma: float) -> float:
    if name == "distance":
        return max(sigma, FLOORS["distance_fraction"] * mean)
    return max(sigma, FLOORS[name])


def _weighted_update(x: np.ndarray, sig: np.ndarray) -> tuple[float, float]:
    """Inverse-variance weighted mean and weighted std (spec B6.3)."""
    ok = np.isfinite(x) & np.isfinite(sig) & (sig > 0)
    if not ok.any():
        return float("nan"), float("nan")
    wt = 1.0 / sig[ok] ** 2
    mean = float(np.sum(wt * x[ok]) / np.sum(wt))
    std = float(np.sqrt(np.sum(wt * (x[ok] - mean) ** 2) / np.sum(wt)))
    return mean, std


def _phase_labels(g: np.ndarray, bp_rp: np.ndarray, log_age: float, feh: float, dist_mod: float,
                  a_v: float) -> np.ndarray:
    """PARSEC label of each star's nearest point on the apparent isochrone in (BP−RP, G) (spec B6.3)."""
    from scipy.spatial import cKDTree

    from ..isochrones import default_grid

    grid = default_grid()
    age = float(np.clip(log_age, *grid.age_range))
    mh = float(np.clip(feh, *grid.mh_range))
    iso = grid.isochrone(age, mh).apparent(dist_mod, max(a_v, 0.0))
    d = iso.data
    pts = np.column_stack([(d["BP"] - d["RP"]).to_numpy(float), d["G"].to_numpy(float)])
    good = np.all(np.isfinite(pts), axis=1)
    tree = cKDTree(pts[good])
    labels = d["label"].to_numpy()[good]
    out = np.full(len(g), -1)
    ok = np.isfinite(g) & np.isfinite(bp_rp)
    if ok.any():
        _, i = tree.query(np.column_stack([bp_rp[ok], g[ok]]))
        out[ok] = labels[i]
    return out


def _converged(rows: list[dict], n_last: int = 5, tol: float = 1e-3) -> bool:
    if len(rows) < n_last + 1:
        return False
    keys = [*FIT_PARAMS, *(f"{k}_sigma" for k in FIT_PARAMS)]
    for a, b in zip(rows[-n_last - 1:-1], rows[-n_last:], strict=True):
        for k in keys:
            if abs(b[k] - a[k]) > tol * max(abs(a[k]), 1e-12):
                return False
    return True


def fit_cluster(members: pd.DataFrame, feh: float, *, posteriors=None, models=None, n_samples: int = 20_000,
                seed: int = 0, max_iter: int = 50, min_valid_fraction: float = 0.02, feh_sigma: float = 0.05,
                preset: str | None = None, init: dict | None = None, progress: bool | None = None) -> ClusterFit:
    """Fit the cluster's log age, distance and A_V with [Fe/H] fixed, and every member's M_A and q (spec B6).

    Parameters
    ----------
    members : DataFrame
        Member table (real Gaia/2MASS/WISE columns, or canonical observables of simulated stars).
    feh : float
        Spectroscopic [Fe/H] of the cluster [dex] (fixed, σ = ``feh_sigma``).
    posteriors : StarPosteriors, optional
        Samples already drawn by :func:`ocnb.binaries.sample_posteriors` for these members.
    models : mapping, optional
        ``{band set: BinaryPosterior}`` for sampling (default: trained/loaded with ``preset``).
    n_samples : int
        Samples per star (the paper: 20 000).
    max_iter : int
        Iterations per round (the paper: 50).
    min_valid_fraction : float
        Share of valid samples a star needs to count (the paper: 2 %).
    init : dict, optional
        Starting means ``{"log_age": log10 yr, "distance": pc, "a_v": mag}`` (any subset), e.g. a
        catalogue's values, instead of the spec's start (the mean of the members' unweighted posterior
        means); the starting σ are the spec's either way.

    Returns
    -------
    ClusterFit
    """
    from ..parallel import progress as progress_bar
    from .posterior import observables, sample_posteriors

    if not (isinstance(feh, (int, float)) and np.isfinite(feh)):
        raise ValueError(f"feh must be the cluster's spectroscopic [Fe/H] in dex, a finite number, not {feh!r}")
    if not (isinstance(max_iter, int) and max_iter >= 1):
        raise ValueError(f"max_iter must be a whole number ≥ 1, not {max_iter!r}")
    t0 = time.perf_counter()
    obs = observables(members)
    post = posteriors if posteriors is not None else sample_posteriors(members, models, n_samples=n_samples,
                                                                        seed=seed, preset=preset)
    if post.samples.shape[0] != len(obs):
        raise ValueError(f"posteriors hold {post.samples.shape[0]} stars but the member table has {len(obs)}")
    ok = post.ok
    if ok.sum() < 3:
        raise ValueError(f"only {int(ok.sum())} of {len(obs)} members have a posterior (statuses: "
                         f"{pd.Series(post.status).value_counts().to_dict()}); the cluster cannot be fitted")
    s = post.samples
    g = obs["G"].to_numpy(float)
    bp_rp = (obs["BP"] - obs["RP"]).to_numpy(float)
    dist = distance_pc(s[..., _IDX["dist_mod"]])
    per_param = {"log_age": s[..., _IDX["log_age"]], "distance": dist, "a_v": s[..., _IDX["a_v"]]}
    # Sort each parameter's samples once per star; only the weights change between iterations.
    orders = {k: np.argsort(np.where(np.isfinite(v), v, np.inf), axis=-1) for k, v in per_param.items()}
    sorted_x = {k: np.take_along_axis(v, orders[k], axis=-1) for k, v in per_param.items()}

    # Init (spec B6.1): means over members of their unweighted posterior means; σ = their std, floored.
    means = {"feh": float(feh)}
    sigmas = {"feh": float(feh_sigma)}
    for k, v in per_param.items():
        star_means = np.nanmean(v[ok], axis=1)
        means[k] = float(np.mean(star_means))
        sigmas[k] = _floor(k, means[k], float(np.std(star_means)))
    for k, v in (init or {}).items():
        if k not in per_param:
            raise ValueError(f"init has {k!r}; it may set {list(per_param)} (log10 yr, pc, mag)")
        if not np.isfinite(v) or (k == "distance" and v <= 0):
            raise ValueError(f"init[{k!r}] = {v!r} is not a usable starting value")
        means[k] = float(v)
    rows, converged, flags = [], {}, []
    qf = q_prior_factor(s[..., _IDX["q"]], s[..., _IDX["mass_a"]])
    bar = progress_bar(total=2 * max_iter, desc="cluster fit", disable=progress is False, unit="it")
    try:
        for rnd in (1, 2):
            done = False
            for it in range(max_iter):
                w = cluster_prior_weights(s, means, sigmas)
                if rnd == 2:
                    w = w * qf
                w[~ok] = 0.0
                n_valid = (w > 0).sum(axis=1)
                valid = n_valid >= max(1, min_valid_fraction * s.shape[1])
                modes, sig = {}, {}
                for k in FIT_PARAMS:
                    ws = np.take_along_axis(w, orders[k], axis=-1)
                    modes[k] = np.where(valid, weighted_modes(sorted_x[k], ws, presorted=True), np.nan)
                    pct = weighted_percentiles(sorted_x[k], ws, (16, 84), presorted=True)
                    sig[k] = np.where(valid, 0.5 * (pct[:, 1] - pct[:, 0]), np.nan)
                # age stars: evolved members on the current isochrone
                labels = _phase_labels(g, bp_rp, means["log_age"], means["feh"],
                                       5 * np.log10(means["distance"]) - 5, means["a_v"])
                evolved = valid & (labels >= 2)
                how = "evolved"
                if evolved.sum() < MIN_AGE_STARS and it >= SWITCH_ITERATION:
                    dm = 5 * np.log10(means["distance"]) - 5
                    abs_g = g - dm - 0.85 * means["a_v"]  # A_G ≈ 0.85 A_V for the selection only
                    age_stars = valid & (labels == 1) & ((abs_g <= 3.0) | (abs_g >= 8.0))
                    how = "upper and lower MS"
                else:
                    age_stars = evolved.copy()
                    if age_stars.sum() < MIN_AGE_STARS:  # top up with the brightest MS stars
                        ms = np.flatnonzero(valid & (labels == 1))
                        extra = ms[np.argsort(g[ms])][: MIN_AGE_STARS - int(age_stars.sum())]
                        age_stars[extra] = True
                        how = "evolved + brightest MS"
                bright = valid & (g < 18.0)
                pb = None
                if it >= SWITCH_ITERATION:
                    pb = binary_probability(s[..., _IDX["q"]], s[..., _IDX["mass_a"]], w)
                av_stars = bright & ~(pb > 0.5) if pb is not None else bright
                used = {"log_age": age_stars, "distance": bright, "a_v": av_stars}
                new_m, new_s = dict(means), dict(sigmas)
                for k in FIT_PARAMS:
                    m_k, s_k = _weighted_update(modes[k][used[k]], sig[k][used[k]])
                    if np.isfinite(m_k):
                        new_m[k], new_s[k] = m_k, _floor(k, m_k, s_k)
                means, sigmas = new_m, new_s
                rows.append({"round": rnd, "iteration": it + 1, **{k: means[k] for k in FIT_PARAMS},
                             **{f"{k}_sigma": sigmas[k] for k in FIT_PARAMS},
                             "n_valid_stars": int(valid.sum()), "n_age_stars": int(age_stars.sum()),
                             "n_evolved": int(evolved.sum()), "age_stars": how,
                             "n_distance_stars": int(bright.sum()), "n_av_stars": int(av_stars.sum())})
                bar.update(1)
                if _converged([r for r in rows if r["round"] == rnd]):
                    done = True
                    bar.update(max_iter - it - 1)
                    break
            converged[rnd] = done
            if not done:
                flags.append(f"round {rnd} did not converge in {max_iter} iterations")
    finally:
        bar.close()
    history = pd.DataFrame(rows)
    # per-star results of the final weights (round 2)
    w = cluster_prior_weights(s, means, sigmas) * qf
    w[~ok] = 0.0
    est = star_estimates(s, w, min_valid=max(1, int(min_valid_fraction * s.shape[1])))
    est.index = obs.index
    est.insert(0, "band_set", post.band_set)
    est.insert(1, "G", g)
    est.insert(2, "status", np.where(ok & est["outlier"].to_numpy(), "outlier of this cluster", post.status))
    est["label"] = _phase_labels(g, bp_rp, means["log_age"], means["feh"], 5 * np.log10(means["distance"]) - 5,
                                 means["a_v"])
    est["used_for_age"] = age_stars
    last = rows[-1]
    if last["n_evolved"] == 0:
        flags.append("no turn-off or evolved star among the valid members: the age is unconstrained "
                     f"(estimated from {last['age_stars']} stars)")
    if last["n_valid_stars"] < 10:
        flags.append(f"only {last['n_valid_stars']} members have ≥ {100 * min_valid_fraction:g} % valid samples")
    params = {**{k: float(means[k]) for k in (*FIT_PARAMS, "feh")},
              **{f"{k}_sigma": float(sigmas[k]) for k in (*FIT_PARAMS, "feh")}}
    params["dist_mod"] = float(5 * np.log10(params["distance"]) - 5)
    return ClusterFit(params=params, history=history, stars=est, converged=converged, flags=flags,
                      seconds=time.perf_counter() - t0)
