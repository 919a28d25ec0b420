"""Candidate selection of van Groeningen+2023, Sect. 2.3 (eqs. 1-10; spec A6).

A source is a *candidate* when it passes three tests with k = 3 (its own 3σ errors widen each boundary):

* proper motion (eq. 1): sqrt[(Δμα*/(Δ_μ + 3σ_μα*))² + (Δμδ/(Δ_μ + 3σ_μδ))²] < 1, Δ_μ from eq. 4;
* parallax (eq. 2): |ϖ − ϖ_c| / (Δ_ϖ + 3σ_ϖ) < 1, Δ_ϖ = Δ⁺ (ϖ < ϖ_c) or Δ⁻ (eq. 7) with R = R_90 + 15 pc (eq. 8);
* CMD (eq. 3): min_i sqrt[((C − C_i)/(3σ_C + Δ_C))² + ((G − G_i)/(3σ_G + Δ_G))²] < 1 over the isochrone points, with
  Δ_C = Δ_C,90 + 0.1, Δ_G = 8 Δ_C (eqs. 9-10).

R_90 is the order statistic r_(⌈0.9 N⌉) of the members' projected radii; Δ_C,90 the smallest t ≥ 0 for which
≥ 90 % of the training members pass eq. 3 with (Δ_C, Δ_G) = (t, 8t), found by bisection to 1e-4 (spec A6
resolutions). Training members that fail any test are relabelled candidates (``is_train_member`` false,
``is_seed_member`` true); everything that is not a candidate is a non-member.

The paper's typos are corrected as the spec says: eq. 5 has σ_j² (:func:`ocnb.membership.cones.cluster_parameters`);
Δ⁻ = +∞ when 1000/ϖ_c − R ≤ 0 (a cluster closer than R).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .cones import SIGMA_ZERO_POINT, ClusterParams, TooFewMembersError, cluster_isochrone

__all__ = [
    "K_SIGMA",
    "R_PAD_PC",
    "DELTA_C_PAD",
    "DELTA_G_PAD",
    "CMD_RATIO",
    "CandidateSelection",
    "cluster_isochrone",
    "cmd_distance",
    "delta_c90",
    "delta_mu",
    "delta_parallax",
    "pass_fraction",
    "pm_statistic",
    "parallax_statistic",
    "r90",
    "select_candidates",
]

#: k of eqs. 1-4 (3σ boundaries).
K_SIGMA = 3.0
#: eq. 8: R = R_90 + 15 pc.
R_PAD_PC = 15.0
#: eqs. 9-10: Δ_C = Δ_C,90 + 0.1, Δ_G = Δ_G,90 + 0.8 with Δ_G,90 = 8 Δ_C,90.
DELTA_C_PAD = 0.1
DELTA_G_PAD = 0.8
CMD_RATIO = 8.0
#: Fraction of training members that must pass (R_90 and Δ_C,90).
FRACTION = 0.9
#: Bisection tolerance on Δ_C,90 [mag].
BISECTION_TOL = 1e-4


# ---------------------------------------------------------------------------------------------------------------
# Equations
# ---------------------------------------------------------------------------------------------------------------
def delta_mu(params: ClusterParams) -> float:
    """eq. 4: Δ_μ = sqrt[(3σ_μα*,m + 3σ_μα*,c)² + (3σ_μδ,m + 3σ_μδ,c)²] [mas/yr]."""
    return float(np.hypot(K_SIGMA * params.sigma_pmra_m + K_SIGMA * params.sigma_pmra_c,
                          K_SIGMA * params.sigma_pmdec_m + K_SIGMA * params.sigma_pmdec_c))


def delta_parallax(params: ClusterParams, r_pc: float) -> tuple[float, float]:
    """eq. 7: (Δ⁺, Δ⁻) [mas] = |ϖ_c − 1000/(1000/ϖ_c ± R)| + 3σ_ϖc + 3·0.015 mas.

    Δ⁺ ("+R", a source R farther away) applies to ϖ < ϖ_c. Δ⁻ = +∞ when 1000/ϖ_c − R ≤ 0 (spec A6 resolution),
    and both are +∞ for ϖ_c ≤ 0 (no distance to shift).
    """
    plx = params.parallax
    extra = K_SIGMA * params.sigma_parallax_c + K_SIGMA * SIGMA_ZERO_POINT
    if not plx > 0:
        return np.inf, np.inf
    d = 1000.0 / plx
    plus = abs(plx - 1000.0 / (d + r_pc)) + extra
    minus = abs(plx - 1000.0 / (d - r_pc)) + extra if d - r_pc > 0 else np.inf
    return float(plus), float(minus)


def pm_statistic(pmra, pmdec, pmra_error, pmdec_error, params: ClusterParams, d_mu: float) -> np.ndarray:
    """Left-hand side of eq. 1 (a source passes when it is < 1)."""
    a = (np.asarray(pmra, float) - params.pmra) / (d_mu + K_SIGMA * np.asarray(pmra_error, float))
    b = (np.asarray(pmdec, float) - params.pmdec) / (d_mu + K_SIGMA * np.asarray(pmdec_error, float))
    return np.hypot(a, b)


def parallax_statistic(parallax, parallax_error, params: ClusterParams, d_plus: float, d_minus: float) -> np.ndarray:
    """Left-hand side of eq. 2 with eq. 6's choice of Δ⁺ (ϖ < ϖ_c) or Δ⁻ (ϖ ≥ ϖ_c)."""
    plx = np.asarray(parallax, float)
    d = np.where(plx < params.parallax, d_plus, d_minus)
    with np.errstate(invalid="ignore"):
        return np.abs(plx - params.parallax) / (d + K_SIGMA * np.asarray(parallax_error, float))


def cmd_distance(c, g, sigma_c, sigma_g, isochrone: np.ndarray, delta_c: float, delta_g: float,
                 chunk: int = 4096) -> np.ndarray:
    """Left-hand side of eq. 3: min over isochrone points of the per-source error-inflated distance.

    The nearest point is chosen in this metric (spec A6, A13.9), a brute-force search in chunks of ``chunk``
    sources (memory ~ chunk × n_iso × 8 bytes). Works on 1-D arrays.
    """
    c = np.asarray(c, float).ravel()
    g = np.asarray(g, float).ravel()
    sc = np.broadcast_to(K_SIGMA * np.asarray(sigma_c, float).ravel() + delta_c, c.shape)
    sg = np.broadcast_to(K_SIGMA * np.asarray(sigma_g, float).ravel() + delta_g, c.shape)
    ic = np.asarray(isochrone, float)[:, 0]
    ig = np.asarray(isochrone, float)[:, 1]
    out = np.empty(c.size)
    zero_scale = bool(np.any(sc == 0) or np.any(sg == 0))
    # a zero scale (Δ = 0 and σ = 0, only while bisecting at t = 0) gives 0/0 = 0 on the point and ∞ elsewhere
    with np.errstate(divide="ignore", invalid="ignore"):
        for s in range(0, c.size, chunk):
            sl = slice(s, s + chunk)
            dc = (c[sl, None] - ic[None, :]) / sc[sl, None]
            dg = (g[sl, None] - ig[None, :]) / sg[sl, None]
            d2 = dc * dc + dg * dg
            if zero_scale:
                d2[np.isnan(d2)] = np.inf
                d2[(c[sl, None] == ic[None, :]) & (g[sl, None] == ig[None, :])] = 0.0
            out[sl] = np.sqrt(np.min(d2, axis=1))
    return out


def r90(radii) -> float:
    """R_90: smallest projected radius enclosing ≥ 90 % of the members, the order statistic r_(⌈0.9 N⌉) [pc]."""
    r = np.sort(np.asarray(radii, float))
    if r.size == 0:
        raise TooFewMembersError("R_90 needs at least one member")
    k = int(np.ceil(FRACTION * r.size - 1e-9))  # 1-based rank; the tolerance keeps 0.9·10 = 9 from becoming 10
    return float(r[max(k, 1) - 1])


def pass_fraction(t: float, c, g, sigma_c, sigma_g, isochrone) -> float:
    """Fraction of sources passing eq. 3 with (Δ_C, Δ_G) = (t, 8t) and their own 3σ terms."""
    return float(np.mean(cmd_distance(c, g, sigma_c, sigma_g, isochrone, t, CMD_RATIO * t) < 1.0))


def delta_c90(c, g, sigma_c, sigma_g, isochrone, tol: float = BISECTION_TOL) -> float:
    """Δ_C,90 [mag]: the smallest t ≥ 0 with ≥ 90 % of the members passing eq. 3 at (t, 8t) (spec A6).

    The pass fraction is monotone (non-decreasing) in t, so bisection converges; the returned value is the
    upper end of the final bracket (it passes), within ``tol`` of the exact threshold.
    """
    c = np.asarray(c, float)
    n_need = FRACTION * c.size

    def ok(t):
        return np.sum(cmd_distance(c, g, sigma_c, sigma_g, isochrone, t, CMD_RATIO * t) < 1.0) >= n_need - 1e-9

    if ok(0.0):
        return 0.0
    lo, hi = 0.0, 0.5
    while not ok(hi):
        lo, hi = hi, 2.0 * hi
        if hi > 1e3:  # cannot happen with finite data: every distance shrinks to 0 as t grows
            raise ValueError("Δ_C,90 bisection did not bracket (non-finite photometry among the members?)")
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return float(hi)


# ---------------------------------------------------------------------------------------------------------------
# Selection
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class CandidateSelection:
    """Result of :func:`select_candidates`; arrays aligned with the prepared cone's rows.

    Attributes
    ----------
    is_candidate : ndarray[bool]
        Passes eqs. 1-3, or is a seed training member (relabelled candidate when it fails a test).
    is_train_member : ndarray[bool]
        Seed members that pass all three tests (the training members of Sect. 3.2 and the support sets).
    is_seed_member : ndarray[bool]
        The member list given (before the tests).
    pass_pm, pass_plx, pass_cmd : ndarray[bool]
        The three tests (eqs. 1, 2, 3) for every source.
    thresholds : dict
        ``delta_mu`` [mas/yr], ``delta_plx_plus``, ``delta_plx_minus`` [mas], ``R_pc``, ``R90_pc`` [pc],
        ``delta_c``, ``delta_g``, ``delta_c90``, ``delta_g90`` [mag], ``n_seed``, ``n_train``.
    isochrone : ndarray (n, 2)
        [C, G] points used by eq. 3.
    params : ClusterParams
    """

    is_candidate: np.ndarray
    is_train_member: np.ndarray
    pass_pm: np.ndarray
    pass_plx: np.ndarray
    pass_cmd: np.ndarray
    thresholds: dict
    isochrone: np.ndarray
    is_seed_member: np.ndarray = field(default=None)
    params: ClusterParams | None = None

    @property
    def is_non_member(self) -> np.ndarray:
        return ~self.is_candidate

    @property
    def n_candidates(self) -> int:
        return int(self.is_candidate.sum())

    def __repr__(self) -> str:
        t = self.thresholds
        return (f"<CandidateSelection {self.params.name if self.params else ''}: {self.n_candidates} candidates of "
                f"{self.is_candidate.size} sources, {int(self.is_train_member.sum())} training members; "
                f"Δ_μ={t['delta_mu']:.3f} mas/yr, Δ_ϖ±=({t['delta_plx_plus']:.3f}, {t['delta_plx_minus']:.3f}) mas, "
                f"R={t['R_pc']:.1f} pc, Δ_C={t['delta_c']:.3f}, Δ_G={t['delta_g']:.3f} mag>")

    def plot(self, cone: pd.DataFrame, ax=None):
        """Fig. 1-style view: proper motions with the eq. 1 ellipse, parallax vs G with the eq. 2 band, and the
        CMD with the isochrone and its (Δ_C, Δ_G) zero-uncertainty boundary; non-members grey, candidates
        orange, training members blue.

        Parameters
        ----------
        cone : DataFrame
            The prepared cone the selection was made on (same rows).
        ax : sequence of 3 matplotlib Axes, optional

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        if len(cone) != self.is_candidate.size:
            raise ValueError(f"cone has {len(cone)} rows but the selection {self.is_candidate.size}: pass the "
                             "prepared cone the selection was made on")
        if ax is None:
            fig, ax = plt.subplots(1, 3, figsize=(14, 4.6))
        else:
            fig = ax[0].figure
        p = self.params
        t = self.thresholds
        plx = cone["parallax_corrected"] if "parallax_corrected" in cone else cone["parallax"]
        groups = ((~self.is_candidate, "0.7", 2, "non-members"),
                  (self.is_candidate & ~self.is_train_member, "tab:orange", 5, "candidates"),
                  (self.is_train_member, "tab:blue", 5, "training members"))
        for mask, colour, size, label in groups:
            kw = dict(s=size, c=colour, lw=0, label=f"{label} ({int(mask.sum())})", rasterized=True)
            ax[0].scatter(cone["pmra"][mask], cone["pmdec"][mask], **kw)
            ax[1].scatter(cone["phot_g_mean_mag"][mask], plx[mask], **kw)
            ax[2].scatter(cone["g_rp"][mask], cone["phot_g_mean_mag"][mask], **kw)
        if p is not None:
            phi = np.linspace(0, 2 * np.pi, 200)
            ax[0].plot(p.pmra + t["delta_mu"] * np.cos(phi), p.pmdec + t["delta_mu"] * np.sin(phi), "r--", lw=1)
            dm = 3 * t["delta_mu"]
            ax[0].set_xlim(p.pmra - dm, p.pmra + dm)
            ax[0].set_ylim(p.pmdec - dm, p.pmdec + dm)
            ax[1].axhline(p.parallax, color="tab:blue", lw=1)
            ax[1].axhline(p.parallax - t["delta_plx_plus"], color="r", ls="--", lw=1)
            if np.isfinite(t["delta_plx_minus"]):
                ax[1].axhline(p.parallax + t["delta_plx_minus"], color="r", ls="--", lw=1)
            span = 3 * max(t["delta_plx_plus"], min(t["delta_plx_minus"], 3 * t["delta_plx_plus"]))
            ax[1].set_ylim(p.parallax - span, p.parallax + span)
        iso = self.isochrone
        ax[2].plot(iso[:, 0], iso[:, 1], "-", color="tab:blue", lw=1, label="isochrone")
        # the zero-uncertainty boundary of eq. 3: the level-1 contour of the σ = 0 distance to the isochrone
        c_grid = np.linspace(np.nanmin(iso[:, 0]) - 2 * t["delta_c"], np.nanmax(iso[:, 0]) + 2 * t["delta_c"], 240)
        g_lo = max(np.nanmin(iso[:, 1]), float(np.nanmin(cone["phot_g_mean_mag"]))) - 2 * t["delta_g"]
        g_grid = np.linspace(g_lo, float(np.nanmax(cone["phot_g_mean_mag"])) + 0.5, 240)
        cc, gg = np.meshgrid(c_grid, g_grid)
        dist = cmd_distance(cc.ravel(), gg.ravel(), 0.0, 0.0, iso, t["delta_c"], t["delta_g"]).reshape(cc.shape)
        ax[2].contour(cc, gg, dist, levels=[1.0], colors="r", linestyles="--", linewidths=0.8)
        ax[2].set_xlim(c_grid[0], c_grid[-1])
        ax[2].set_ylim(g_grid[-1], g_grid[0])
        ax[0].set(xlabel="μα* [mas/yr]", ylabel="μδ [mas/yr]", title="proper motion (eq. 1)")
        ax[1].set(xlabel="G [mag]", ylabel="ϖ [mas]", title="parallax (eq. 2)")
        ax[2].set(xlabel="G − G_RP [mag]", ylabel="G [mag]", title="CMD (eq. 3)")
        ax[2].legend(loc="lower left", fontsize=7, markerscale=2)
        if p is not None:
            fig.suptitle(f"{p.name}: candidate selection (vG23 Sect. 2.3)")
        fig.tight_layout()
        return fig


def _members_mask(members_mask, n: int) -> np.ndarray:
    mask = np.asarray(members_mask)
    if mask.dtype != bool or mask.shape != (n,):
        raise ValueError(f"members_mask must be a boolean array of one value per cone row ({n}), "
                         f"got dtype {mask.dtype} and shape {mask.shape}")
    return mask


def projected_radius(ra, dec, params: ClusterParams) -> np.ndarray:
    """f_r = D·sqrt(x² + y²) [pc], orthographic projection about the cluster centre (spec A7; = D sin θ)."""
    ra0 = np.deg2rad(params.ra)
    dec0 = np.deg2rad(params.dec)
    ra = np.deg2rad(np.asarray(ra, float))
    dec = np.deg2rad(np.asarray(dec, float))
    cd = np.cos(dec)
    x = cd * np.sin(ra - ra0)
    y = np.cos(dec0) * np.sin(dec) - np.sin(dec0) * cd * np.cos(ra - ra0)
    return params.dist_pc * np.hypot(x, y)


def select_candidates(cone: pd.DataFrame, members_mask, params: ClusterParams,
                      isochrone: np.ndarray | None = None) -> CandidateSelection:
    """Candidates, training members and non-members of one cone (vG23 Sect. 2.3, eqs. 1-10; spec A6).

    Parameters
    ----------
    cone : DataFrame
        A prepared cone (:func:`ocnb.membership.prepare_cone`): ``ra, dec, pmra(_error), pmdec(_error),
        parallax_corrected, parallax_error, phot_g_mean_mag, g_rp, sigma_g, sigma_g_rp``.
    members_mask : array of bool
        The seed training members among the cone's rows.
    params : ClusterParams
        From :func:`ocnb.membership.cluster_parameters` on the same members.
    isochrone : ndarray (n, 2), optional
        [C, G]; default :func:`cluster_isochrone(params) <ocnb.membership.cones.cluster_isochrone>`.

    Returns
    -------
    CandidateSelection

    Raises
    ------
    TooFewMembersError
        No seed member.
    ValueError
        ``members_mask`` not a boolean array with one value per row.
    """
    n = len(cone)
    seed = _members_mask(members_mask, n)
    if not seed.any():
        raise TooFewMembersError(f"cluster {params.name!r}: no seed members in the cone; the selection needs them")
    if isochrone is None:
        isochrone = cluster_isochrone(params)
    isochrone = np.asarray(isochrone, float)
    plx = (cone["parallax_corrected"] if "parallax_corrected" in cone.columns else cone["parallax"]).to_numpy(float)

    # eq. 4 and eq. 1
    d_mu = delta_mu(params)
    pass_pm = pm_statistic(cone["pmra"], cone["pmdec"], cone["pmra_error"], cone["pmdec_error"], params, d_mu) < 1
    # eq. 8 (R_90 of the seed members) and eqs. 6-7, eq. 2
    radii = projected_radius(cone["ra"].to_numpy(float)[seed], cone["dec"].to_numpy(float)[seed], params)
    r_90 = r90(radii)
    r_pc = r_90 + R_PAD_PC
    d_plus, d_minus = delta_parallax(params, r_pc)
    pass_plx = parallax_statistic(plx, cone["parallax_error"], params, d_plus, d_minus) < 1
    # eqs. 9-10 (Δ_C,90 from the seed members, their own 3σ included) and eq. 3
    c = cone["g_rp"].to_numpy(float)
    g = cone["phot_g_mean_mag"].to_numpy(float)
    sc = cone["sigma_g_rp"].to_numpy(float)
    sg = cone["sigma_g"].to_numpy(float)
    dc90 = delta_c90(c[seed], g[seed], sc[seed], sg[seed], isochrone)
    d_c = dc90 + DELTA_C_PAD
    d_g = CMD_RATIO * dc90 + DELTA_G_PAD
    pass_cmd = cmd_distance(c, g, sc, sg, isochrone, d_c, d_g) < 1

    passes = pass_pm & pass_plx & pass_cmd
    train = seed & passes
    thresholds = {"delta_mu": d_mu, "delta_plx_plus": d_plus, "delta_plx_minus": d_minus, "R_pc": r_pc,
                  "R90_pc": r_90, "delta_c": d_c, "delta_g": d_g, "delta_c90": dc90, "delta_g90": CMD_RATIO * dc90,
                  "n_seed": int(seed.sum()), "n_train": int(train.sum())}
    return CandidateSelection(is_candidate=passes | seed, is_train_member=train, pass_pm=pass_pm,
                              pass_plx=pass_plx, pass_cmd=pass_cmd, thresholds=thresholds, isochrone=isochrone,
                              is_seed_member=seed.copy(), params=params)
