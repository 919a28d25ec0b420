"""Likelihood refinement of an ANN estimate over every member star (issue 14, item 2).

The ANN of Cavallo et al. (2024) sees a cluster through 64 or 190 QuadTree numbers; this module
goes back to the stars. For a parameter vector θ = (log age, [Fe/H], A_V, dMod) the **synthetic
CMD** of the cluster is built from the same PARSEC grid the simulator uses (:mod:`ocnb.isochrones`,
phase-wise bilinear interpolation, vectorised over many θ at once), moved to apparent magnitudes
with Teff-dependent extinction per isochrone point (:func:`ocnb.photometry.extinction_ratio`, the
simulator's law), and populated as the simulator populates it: Salpeter number weights per
isochrone segment, unresolved binaries with a flat mass-ratio distribution on the main sequence
(fraction :attr:`RefineSettings.binary_fraction`, companion flux added band by band, as in
:mod:`ocnb.sim`). Instead of drawing random stars from it (Monte Carlo noise would make the
likelihood jump from one θ to the next) every weighted model point is smeared by each member's
own photometric errors (Gaia ``phot_*_mean_mag_error`` where given, else the DPAC error model)
⊕ a model floor (:attr:`RefineSettings.sigma_floor_mag`, :attr:`~RefineSettings.sigma_floor_colour`:
PARSEC is not perfect and the grid is interpolated). The per-star density is

    p_i(θ) = (1 − ε) Σ_k w_k(θ) N(y_i; μ_k(θ), Σ_i) / Z(θ) + ε u(y_i),

a mixture with field outliers (ε = :attr:`RefineSettings.outlier_fraction`, u uniform over the
members' CMD box). Z(θ) is the model weight brighter than the magnitude limit of the likelihood
(the members' completeness is taken as 1 down to :attr:`RefineSettings.g_lim`, G ≤ 18 by default
as in the ANN's features; fainter members are not used). The members' mean parallax enters as a
likelihood term on the distance modulus (:class:`ocnb.astrometry.ClusterParallax`, item 1).

Sampling is batched (all θ of a round in one vectorised evaluation): a few rounds of a
cross-entropy search started at the ANN's calibrated posterior find the mode, a quadratic fit of
log L over the evaluated points gives the curvature, and a final importance-sampling round from
a defensive mixture (the Laplace Gaussian widened, plus the ANN's proposal) gives the posterior
and its effective sample size (ESS). A low ESS, or a posterior piled against a prior edge, sets
an explicit flag (:attr:`RefineResult.flags`).

Everything here is a model of a real cluster by SIMULATED populations; the result is only as good
as PARSEC, the extinction law and the member list.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ..errors import MemberTableError

__all__ = ["RefineSettings", "RefineResult", "SyntheticCMD", "batched_isochrones", "synthetic_cmd",
           "member_photometry", "cmd_loglike", "refine"]

LABELS = ("log_age", "feh", "a_v", "dist_mod")
#: Refinement prior: uniform inside the PARSEC grid for log age and [M/H] (clipped below) and these
#: physical ranges for A_V [mag] and dMod [mag] (wide: the Hyades' 3.4 mag to 25 kpc).
PRIOR_BOUNDS = {"a_v": (0.0, 6.0), "dist_mod": (1.0, 17.0)}
#: log age and [M/H] limits of the refinement prior inside the grid (dex).
GRID_PRIOR = {"log_age": (6.6, 10.13), "feh": (-1.0, 0.3)}


@dataclass(frozen=True)
class RefineSettings:
    """Settings of :func:`refine` (defaults: a cluster of a few hundred members in well under a second).

    Attributes
    ----------
    binary_fraction : float
        Fraction of unresolved binaries among main-sequence systems (0.3, as the simulator's default).
    q_values : tuple of float
        Mass ratios standing for a flat q distribution on (0.2, 1].
    outlier_fraction : float
        ε: fraction of members from a uniform field component (non-members left in the list).
    sigma_floor_mag, sigma_floor_colour : float
        Model floor [mag] added in quadrature to every member's G and colour error.
    g_lim : float
        Faintest G [mag] used in the likelihood (completeness assumed 1 brighter).
    abs_mag_max : float or None
        Faintest absolute G [mag] used (with the parallax distance, else the ANN's): 8 keeps stars
        down to about 0.6 M☉ (K7–M0). PARSEC's cool dwarfs are known not to match Gaia colours
        (the lower main sequences of nearby clusters are redder than the isochrones: Gaia
        Collaboration, Babusiaux et al. 2018, A&A 616, A10, Sect. 4), and a nearby cluster has
        hundreds of them down to G = 18: left in, they drag A_V, [Fe/H] and age to fit the model's
        mismatch. ``None`` keeps every member down to ``g_lim``.
    n_search, n_rounds : int
        θ per cross-entropy round (three times as many in the first) and number of rounds.
    n_search_stars : int
        Members (drawn at random) whose likelihood guides the search rounds; the mode, the
        curvature and the final round use every member.
    max_iter : int
        Iterations of the L-BFGS-B search for the mode.
    n_eff : float or None
        Effective number of independent members of the CMD likelihood: with N > n_eff members the CMD
        term is tempered by N / n_eff, because the model's errors are shared by all members (a colour
        offset of PARSEC moves every star); calibrated on mismatched SIMULATED clusters
        (:mod:`ocnb.cmd_ann.refine_calibration`). ``None``: no tempering beyond the sandwich τ.
    n_final : int
        Importance samples per adaptive round.
    n_is_rounds : int
        Adaptive importance-sampling rounds (all rounds together give the posterior and its ESS).
    elite_fraction : float
        Fraction of the best θ that sets the next search round.
    min_ess : float
        Below this effective sample size the result is flagged.
    max_outlier_fraction : float
        Above this fraction of members explained better by the field than by the best model the
        posterior-predictive check fails (real member lists: a few per cent to ~15 %).
    seed : int
        Seed of every random draw (same seed, same result).
    """

    binary_fraction: float = 0.3
    q_values: tuple = (0.3, 0.5, 0.7, 0.9)
    outlier_fraction: float = 0.05
    sigma_floor_mag: float = 0.03
    sigma_floor_colour: float = 0.02
    g_lim: float = 18.0
    abs_mag_max: float | None = 8.0
    n_search: int = 32
    n_rounds: int = 3
    n_search_stars: int = 200
    max_iter: int = 12
    n_eff: float | None = 10.0
    n_final: int = 40
    n_is_rounds: int = 3
    max_outlier_fraction: float = 0.3
    elite_fraction: float = 0.25
    min_ess: float = 10.0
    seed: int = 0
    law: str = "G23"

    def __post_init__(self):
        checks = {
            "binary_fraction": 0 <= self.binary_fraction < 1,
            "outlier_fraction": 0 < self.outlier_fraction < 1,
            "sigma_floor_mag": self.sigma_floor_mag > 0,
            "sigma_floor_colour": self.sigma_floor_colour > 0,
            "n_search": self.n_search >= 8,
            "n_rounds": self.n_rounds >= 1,
            "n_final": self.n_final >= 16,
            "elite_fraction": 0 < self.elite_fraction <= 0.5,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"RefineSettings.{name} = {getattr(self, name)!r} is out of range")
        if not all(0 < q <= 1 for q in self.q_values):
            raise ValueError(f"RefineSettings.q_values must lie in (0, 1], got {self.q_values!r}")


# ---------------------------------------------------------------------------
# The synthetic CMD, vectorised over θ
# ---------------------------------------------------------------------------
def batched_isochrones(grid, log_age, mh, max_label: int = 7) -> dict:
    """PARSEC isochrones at many (log age, [M/H]) at once (absolute magnitudes).

    The same phase-wise bilinear interpolation as :meth:`ocnb.isochrones.IsochroneGrid.isochrone`
    (every node is resampled to the same points per phase, so corners combine point by point); a
    phase missing at any of the four corners is masked, as there.

    Parameters
    ----------
    grid : IsochroneGrid
    log_age, mh : array_like (S,)
        log10(age/yr) and [M/H] [dex], clipped to the grid.

    Returns
    -------
    dict
        ``mini, log_teff, G, BP, RP, J, H, Ks`` as (S, P) arrays, ``valid`` (S, P) bool and
        ``label`` (P,) the PARSEC phase of every point.
    """
    from ..isochrones import GRID_COLUMNS

    la = np.clip(np.asarray(log_age, float), grid.ages[0], grid.ages[-1])
    mh = np.clip(np.asarray(mh, float), grid.mhs[0], grid.mhs[-1])

    def locate(x, nodes):
        i = np.clip(np.searchsorted(nodes, x, side="right") - 1, 0, nodes.size - 2)
        u = np.clip((x - nodes[i]) / (nodes[i + 1] - nodes[i]), 0.0, 1.0)
        return i, u

    i, u = locate(mh, grid.mhs)
    j, v = locate(la, grid.ages)
    cols = list(GRID_COLUMNS.values())
    vals = 0.0
    keep_phase = np.ones((la.size, grid.present.shape[2]), dtype=bool)
    for di, dj, w in ((0, 0, (1 - u) * (1 - v)), (0, 1, (1 - u) * v), (1, 0, u * (1 - v)), (1, 1, u * v)):
        a, b = i + di, j + dj
        # A corner with zero weight does not decide which phases exist (as in IsochroneGrid._interpolate).
        keep_phase &= grid.present[a, b] | (w[:, None] <= 0)
        vals = vals + grid.values[a, b] * w[:, None, None]
    keep_phase[:, max_label + 1:] = False
    label = np.asarray(grid.point_label)
    valid = keep_phase[:, label] & np.all(np.isfinite(vals), axis=2)
    out = {c: vals[:, :, k] for k, c in enumerate(cols) if c in ("mini", "log_teff", "G", "BP", "RP", "J", "H",
                                                                  "Ks")}
    out["valid"] = valid
    out["label"] = label
    return out


@dataclass
class SyntheticCMD:
    """Weighted model points of S synthetic CMDs (apparent magnitudes).

    Attributes
    ----------
    mag : ndarray (S, K)
        G [mag] of every model point (a segment midpoint of the isochrone, single or binary).
    colours : ndarray (S, K, C)
        Colours [mag] in the order of ``colour_names``.
    weight : ndarray (S, K)
        Number weights (Salpeter × binary fraction), 0 for padding.
    colour_names : tuple of str
    """

    mag: np.ndarray
    colours: np.ndarray
    weight: np.ndarray
    colour_names: tuple


def _colour(app: dict, name: str) -> np.ndarray:
    a, b = name.split("-")
    return app[a] - app[b]


def synthetic_cmd(grid, theta, colour_names=("BP-RP",), settings: RefineSettings | None = None) -> SyntheticCMD:
    """Synthetic CMDs of a batch of θ (see the module docstring).

    Parameters
    ----------
    grid : IsochroneGrid
    theta : ndarray (S, 4)
        log age [dex], [Fe/H] [dex], A_V [mag], dMod [mag].
    colour_names : tuple of str
        Colours such as ``"BP-RP"``, ``"G-Ks"`` (bands of the grid).
    """
    from ..photometry import extinction_ratio
    from ..sim.mass_function import salpeter_integral

    settings = settings or RefineSettings()
    theta = np.atleast_2d(np.asarray(theta, float))
    iso = batched_isochrones(grid, theta[:, 0], theta[:, 1])
    a_v = np.clip(theta[:, 2], 0.0, None)[:, None]
    dmod = theta[:, 3][:, None]
    # Masked points (phases missing at a corner) carry NaN: any Teff will do, their weight is 0.
    teff = np.where(iso["valid"], np.power(10.0, np.nan_to_num(iso["log_teff"], nan=3.7)), 5000.0)
    bands = sorted({"G"} | {b for name in colour_names for b in name.split("-")})
    app = {b: iso[b] + dmod + a_v * extinction_ratio(b, teff, a_v, law=settings.law) for b in bands}
    valid = iso["valid"]
    mini = iso["mini"]
    # Segments between consecutive valid points of the track; each is one model point at its midpoint
    # carrying the Salpeter number of stars between its end masses.
    seg_ok = valid[:, :-1] & valid[:, 1:] & (mini[:, 1:] >= mini[:, :-1])
    m_lo, m_hi = mini[:, :-1], mini[:, 1:]
    w_seg = np.where(seg_ok, salpeter_integral(np.where(seg_ok, m_lo, 1.0), np.where(seg_ok, m_hi, 1.0)), 0.0)
    mid = {b: 0.5 * (app[b][:, :-1] + app[b][:, 1:]) for b in bands}
    label = iso["label"]
    ms_seg = (label[:-1] <= 1) & (label[1:] <= 1)  # pre-MS and MS: where a companion is a MS star too
    f_b = settings.binary_fraction
    single_w = np.where(ms_seg[None, :], (1.0 - f_b) * w_seg, w_seg)
    mags = [mid["G"]]
    cols = [np.stack([_colour(mid, c) for c in colour_names], axis=-1)]
    weights = [single_w]
    if f_b > 0:
        ms_idx = np.flatnonzero(ms_seg)
        m1 = 0.5 * (m_lo + m_hi)[:, ms_idx]
        # Companions lie on the same isochrone's (pre-)MS: one batched bisection over all θ rows.
        pts = np.flatnonzero(label <= 1)
        ok = valid[:, pts]
        mm = np.where(ok, mini[:, pts], -1.0)  # masked points precede the valid ones (lowest masses)
        big = 1e4  # larger than any initial mass [M☉]
        rows = np.arange(theta.shape[0])[:, None]
        keys = (mm + big * rows).ravel()
        first = rows * pts.size
        n_ok = ok.sum(axis=1)[:, None]
        m_min = np.where(n_ok > 0, np.take_along_axis(mm, np.argmax(ok, axis=1)[:, None], axis=1), np.inf)
        app_ms = {b: np.where(ok, app[b][:, pts], 0.0).ravel() for b in bands}
        k_flux = -0.4 * np.log(10.0)  # 10**(-0.4 m) = exp(k m), cheaper than power
        flux1 = {b: np.exp(k_flux * mid[b][:, ms_idx]) for b in bands}
        for q in settings.q_values:
            m2 = q * m1
            j = np.searchsorted(keys, (m2 + big * rows).ravel()).reshape(m2.shape) - 1
            j = np.clip(j, first + pts.size - n_ok, first + pts.size - 2)
            ma, mb = keys[j] - big * rows, keys[j + 1] - big * rows
            t = np.clip((m2 - ma) / np.where(mb > ma, mb - ma, 1.0), 0.0, 1.0)
            lit = (m2 >= m_min) & (n_ok >= 2)
            pair = {}
            for b in bands:
                comp = app_ms[b][j] + t * (app_ms[b][j + 1] - app_ms[b][j])
                f2 = np.where(lit, np.exp(k_flux * np.where(lit, comp, 0.0)), 0.0)
                pair[b] = np.log(flux1[b] + f2) / k_flux
            mags.append(pair["G"])
            cols.append(np.stack([_colour(pair, c) for c in colour_names], axis=-1))
            weights.append(f_b * w_seg[:, ms_idx] / len(settings.q_values))
    mag = np.concatenate(mags, axis=1)
    colours = np.concatenate(cols, axis=1)
    weight = np.concatenate(weights, axis=1)
    bad = ~np.isfinite(mag) | ~np.all(np.isfinite(colours), axis=-1)
    weight = np.where(bad, 0.0, weight)
    mag = np.where(bad, 99.0, mag)
    colours = np.where(bad[..., None], 0.0, colours)
    return SyntheticCMD(mag=mag, colours=colours, weight=weight, colour_names=tuple(colour_names))


# ---------------------------------------------------------------------------
# Members and the likelihood
# ---------------------------------------------------------------------------
_ERR_COLUMNS = {"G": "phot_g_mean_mag_error", "BP": "phot_bp_mean_mag_error", "RP": "phot_rp_mean_mag_error"}
_MAG_COLUMNS = {"G": "phot_g_mean_mag", "BP": "phot_bp_mean_mag", "RP": "phot_rp_mean_mag",
                "J": "j_m", "H": "h_m", "Ks": "ks_m"}
_TMASS_ERR = {"J": "j_msigcom", "H": "h_msigcom", "Ks": "ks_msigcom"}


#: Largest 2MASS error [mag] for a magnitude to enter the likelihood (S/N ≳ 10).
TMASS_MAX_SIGMA = 0.1
#: Variance [mag²] standing for "this member has no such colour": its Gaussian factor is then flat
#: over any model colour, i.e. the colour is marginalised (its normalisation is left out too).
_MISSING_VAR = 1e8


def choose_colours(members: pd.DataFrame, min_fraction: float = 0.5) -> tuple:
    """Colours of the likelihood: BP−RP, plus G−Ks where ≥ ``min_fraction`` of members have good 2MASS Ks.

    G−Ks spans the optical to the near-infrared, so it separates reddening (which moves it ~3× as much as
    BP−RP) from metallicity and age, the main degeneracy of a Gaia-only CMD.
    """
    if "ks_m" not in members.columns:
        return ("BP-RP",)
    ks = pd.to_numeric(members["ks_m"], errors="coerce").to_numpy(float)
    sig = (pd.to_numeric(members["ks_msigcom"], errors="coerce").to_numpy(float) if "ks_msigcom" in members.columns
           else np.full(len(members), np.nan))
    good = np.isfinite(ks) & np.isfinite(sig) & (sig > 0) & (sig <= TMASS_MAX_SIGMA)
    return ("BP-RP", "G-Ks") if good.mean() >= min_fraction else ("BP-RP",)


def member_photometry(members: pd.DataFrame, colour_names=("BP-RP",), settings: RefineSettings | None = None) -> dict:
    """G, colours and their 1σ errors [mag] of the members the likelihood uses.

    Members need finite G, BP, RP with G ≤ ``settings.g_lim``. Errors: the table's Gaia
    ``phot_*_mean_mag_error`` where finite and positive, else the DPAC error model of
    :class:`ocnb.photometry.PhotometricErrorModel`; 2MASS magnitudes need ``*_msigcom`` ≤
    :data:`TMASS_MAX_SIGMA` — a member without them has that colour marginalised (``has`` False). The
    model floor is added in quadrature. Returns ``mag, colours (N, C), var_mag, var_colours (N, C),
    has (N, C), n_used, n_error_model``.
    """
    from ..photometry import PhotometricErrorModel

    settings = settings or RefineSettings()
    if not colour_names or colour_names[0] != "BP-RP":
        raise ValueError(f"the first colour must be 'BP-RP' (the one every member has), not {colour_names!r}")
    for name in colour_names:
        parts = name.split("-") if isinstance(name, str) else []
        if len(parts) != 2 or not all(p in _MAG_COLUMNS for p in parts):
            raise ValueError(f"unknown colour {name!r}: give 'A-B' with bands among {sorted(_MAG_COLUMNS)}")
    bands = sorted({"G"} | {b for name in colour_names for b in name.split("-")})
    gaia = ("BP", "G", "RP")
    missing = [_MAG_COLUMNS[b] for b in bands if _MAG_COLUMNS[b] not in members.columns]
    if missing:
        raise MemberTableError(f"refinement needs columns {missing} (magnitudes, mag) for colours {colour_names}")
    mags = {b: pd.to_numeric(members[_MAG_COLUMNS[b]], errors="coerce").to_numpy(float) for b in bands}
    ok = np.all([np.isfinite(mags[b]) for b in gaia], axis=0) & (mags["G"] <= settings.g_lim)
    if ok.sum() < 10:
        raise MemberTableError(f"refinement needs at least 10 members with finite G, BP, RP [mag] and G ≤ "
                               f"{settings.g_lim:g} mag; this table has {int(ok.sum())}")
    err_model = PhotometricErrorModel()
    sig = {}
    n_model = 0
    for b in bands:
        col = _ERR_COLUMNS.get(b) or _TMASS_ERR.get(b)
        s = (pd.to_numeric(members[col], errors="coerce").to_numpy(float) if col in members.columns
             else np.full(len(members), np.nan))
        bad = ~(np.isfinite(s) & (s > 0))
        if b in gaia and bad[ok].any():
            fill = np.full(len(members), np.nan)
            fill[ok] = err_model.sigma(b, mags[b][ok], extrapolate=True)
            s = np.where(bad, fill, s)
            n_model = max(n_model, int(bad[ok].sum()))
        elif b not in gaia:
            s = np.where(bad | (s > TMASS_MAX_SIGMA) | ~np.isfinite(mags[b]), np.nan, s)
        sig[b] = s
    g = mags["G"][ok]
    colours, var_c, has = [], [], []
    for name in colour_names:
        x, y = name.split("-")
        col = (mags[x] - mags[y])[ok]
        var = (sig[x] ** 2 + sig[y] ** 2)[ok]
        present = np.isfinite(col) & np.isfinite(var)
        has.append(present)
        colours.append(np.where(present, col, np.nanmedian(col) if present.any() else 0.0))
        var_c.append(np.where(present, var + settings.sigma_floor_colour ** 2, _MISSING_VAR))
    return {"mag": g, "colours": np.stack(colours, axis=1),
            "var_mag": sig["G"][ok] ** 2 + settings.sigma_floor_mag ** 2, "var_colours": np.stack(var_c, axis=1),
            "has": np.stack(has, axis=1), "n_used": int(ok.sum()),
            "n_error_model": n_model, "colour_names": tuple(colour_names)}


def _log_outlier_density(phot: dict, stars=None) -> np.ndarray:
    """log of the uniform field density per member over the members' CMD box, in that member's dimensions."""
    has = phot.get("has", np.ones(phot["colours"].shape, dtype=bool))
    spans = []
    for j in range(phot["colours"].shape[1]):
        x = phot["colours"][has[:, j], j]
        spans.append(np.ptp(x) + 0.4 if x.size else 1.0)
    log_box = np.log(np.ptp(phot["mag"]) + 1.0) + np.where(has, np.log(np.array(spans)), 0.0).sum(axis=1)
    out = -log_box
    return out if stars is None else out[stars]


_KERNEL = None


def _kernel():
    """The compiled per-star density sum (numba, compiled on first use: no work at import time)."""
    global _KERNEL
    if _KERNEL is None:
        import numba

        @numba.njit(parallel=True, fastmath=True, cache=True)
        def density(mag, col, w, y, c, vy, vc, n_sigma):  # pragma: no cover - compiled
            n_theta = mag.shape[0]
            n_star, n_col = c.shape
            out = np.zeros((n_theta, n_star))
            cut = n_sigma * n_sigma
            for s in numba.prange(n_theta):
                row = mag[s]
                for i in range(n_star):
                    half = n_sigma * np.sqrt(vy[i])
                    lo = np.searchsorted(row, y[i] - half)
                    hi = np.searchsorted(row, y[i] + half)
                    acc = 0.0
                    for k in range(lo, hi):
                        d = y[i] - row[k]
                        e = d * d / vy[i]
                        for j in range(n_col):
                            dc = c[i, j] - col[s, k, j]
                            e += dc * dc / vc[i, j]
                        if e < cut:
                            acc += w[s, k] * np.exp(-0.5 * e)
                    out[s, i] = acc
            return out

        _KERNEL = density
    return _KERNEL


def cmd_loglike(phot: dict, cmd: SyntheticCMD, settings: RefineSettings | None = None, stars=None,
                n_sigma: float = 5.0, per_star: bool = False) -> np.ndarray:
    """log L(θ) of the members' CMD for every θ of ``cmd`` (S,): the sum over members of the mixture logs.

    With ``per_star=True`` the (S, N) per-member logs instead of their sum.

    Each member sums only the model points within ``n_sigma`` of its own errors (the Gaussian beyond
    is < 4e-6 of its peak); model points are sorted by G so that the window is found by bisection.
    ``stars`` (index array) restricts the sum to a subset of the members (the search rounds of
    :func:`refine` use one to save time; the final round uses every member).
    """
    from scipy.special import ndtr

    settings = settings or RefineSettings()
    sel = slice(None) if stars is None else stars
    y = np.ascontiguousarray(phot["mag"][sel], dtype=np.float64)
    c = np.ascontiguousarray(phot["colours"][sel], dtype=np.float64)
    vy = np.ascontiguousarray(phot["var_mag"][sel], dtype=np.float64)
    vc = np.ascontiguousarray(phot["var_colours"][sel], dtype=np.float64)
    # Uniform outlier density over the members' CMD box, in each member's own dimensions.
    log_u = _log_outlier_density(phot, None if stars is None else np.asarray(stars))
    has = phot.get("has", np.ones(phot["colours"].shape, dtype=bool))[sel]
    eps = settings.outlier_fraction
    m, col, w = cmd.mag, cmd.colours, cmd.weight
    # Normalisation: model weight observable at G ≤ g_lim (with the faint-end G error).
    sigma_faint = np.sqrt(np.median(phot["var_mag"]))
    z = np.sum(w * ndtr((settings.g_lim - m) / sigma_faint), axis=1)
    order = np.argsort(m, axis=1, kind="stable")
    m_s = np.ascontiguousarray(np.take_along_axis(m, order, axis=1))
    w_s = np.ascontiguousarray(np.take_along_axis(w, order, axis=1))
    col_s = np.ascontiguousarray(np.take_along_axis(col, order[..., None], axis=1))
    dens = _kernel()(m_s, col_s, w_s, y, c, vy, vc, float(n_sigma))
    # Gaussian normalisation over the dimensions a member has (a missing colour is marginalised).
    norm = 1.0 / np.sqrt((2 * np.pi) ** (1 + has.sum(axis=1)) * vy * np.prod(np.where(has, vc, 1.0), axis=1))
    dens = dens * norm[None, :] / np.where(z > 0, z, np.inf)[:, None]
    logs = np.logaddexp(np.log1p(-eps) + np.log(np.maximum(dens, 1e-300)), np.log(eps) + log_u[None, :])
    return logs if per_star else np.sum(logs, axis=1)


def outlier_fraction(phot: dict, cmd: SyntheticCMD, settings: RefineSettings | None = None) -> np.ndarray:
    """Fraction of members better explained by the field component than by the cluster, per θ (S,).

    A member counts as an outlier where (1 − ε)·p_cluster < ε·u. Real member lists give a few per
    cent to ~15 %; a table that is not a cluster of this model gives far more.
    """
    settings = settings or RefineSettings()
    eps = settings.outlier_fraction
    logs = cmd_loglike(phot, cmd, settings, per_star=True)
    # log((1−ε)p + ε u) < log(2 ε u)  ⇔  (1−ε)p < ε u
    return np.mean(logs < (np.log(2 * eps) + _log_outlier_density(phot))[None, :], axis=1)


# ---------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------
def prior_bounds(grid=None) -> dict:
    """Uniform prior box of the refinement: {label: (low, high)} (see :data:`PRIOR_BOUNDS`)."""
    out = dict(GRID_PRIOR)
    if grid is not None:
        out["log_age"] = (max(GRID_PRIOR["log_age"][0], float(grid.ages[0])),
                          min(GRID_PRIOR["log_age"][1], float(grid.ages[-1])))
        out["feh"] = (max(GRID_PRIOR["feh"][0], float(grid.mhs[0])), min(GRID_PRIOR["feh"][1], float(grid.mhs[-1])))
    out.update(PRIOR_BOUNDS)
    return {k: out[k] for k in LABELS}


@dataclass
class RefineResult:
    """Importance-sampled posterior of the refinement.

    Attributes
    ----------
    samples : ndarray (M, 4)
        θ of all adaptive rounds (log age [dex], [Fe/H] [dex], A_V [mag], dMod [mag]).
    weights : ndarray (M,)
        Normalised importance weights.
    summary : DataFrame
        Index :data:`LABELS`; columns ``mean, std, p16, p50, p84`` (weighted), ``at_bound``.
    ess : float
        Effective sample size (Σw)² / Σw² of the final round.
    map_theta : dict
        The best θ found and its log L (``log_like``).
    ppc_p : float
        Posterior-predictive p-value: the fraction of synthetic member sets, drawn from the best
        model with the members' own errors, whose outlier fraction is at least the members' one.
    tau : float
        Tempering of the CMD likelihood (≥ 1) from the robust covariance (see :func:`refine`).
    outlier_fraction : float
        Fraction of members the best model explains worse than the field (:func:`outlier_fraction`).
    n_stars : int
        Members in the likelihood.
    n_evaluations : int
        θ evaluated in all rounds.
    time_s : float
        Wall time of the refinement [s].
    flags : list of str
        Failed checks: low ESS, a posterior at a prior edge, a poor posterior-predictive check.
    notes : list of str
        What a user should know but is not a failure (A_V at its physical bound 0, a kink).
    """

    samples: np.ndarray
    weights: np.ndarray
    summary: pd.DataFrame
    ess: float
    map_theta: dict
    ppc_p: float
    n_stars: int
    n_evaluations: int
    time_s: float
    flags: list = field(default_factory=list)
    settings: RefineSettings = field(default_factory=RefineSettings)
    tau: float = 1.0
    outlier_fraction: float = float("nan")
    notes: list = field(default_factory=list)
    colour_names: tuple = ("BP-RP",)

    @property
    def ok(self) -> bool:
        return not self.flags

    def draws(self, n: int = 100, seed: int = 0) -> np.ndarray:
        """``n`` equally weighted posterior draws (systematic resampling of the weighted samples)."""
        rng = np.random.default_rng(seed)
        u = (rng.random() + np.arange(n)) / n
        idx = np.searchsorted(np.cumsum(self.weights), u, side="left")
        return self.samples[np.clip(idx, 0, len(self.samples) - 1)]

    def to_dict(self) -> dict:
        return {"ess": float(self.ess), "n_samples": len(self.samples), "n_evaluations": self.n_evaluations,
                "n_stars": self.n_stars, "time_s": float(self.time_s), "ppc_p": float(self.ppc_p),
                "tau": float(self.tau), "outlier_fraction": float(self.outlier_fraction),
                "colours": list(self.colour_names),
                "map": {k: float(v) for k, v in self.map_theta.items()},
                "edge": [k for k in LABELS if bool(self.summary.loc[k, "at_bound"])],
                "flags": list(self.flags), "notes": list(self.notes), "ok": self.ok, "settings": asdict(self.settings)}

    def to_frame(self) -> pd.DataFrame:
        """The weighted samples as a table (one row per θ, column ``weight``)."""
        out = pd.DataFrame(self.samples, columns=list(LABELS))
        out["weight"] = self.weights
        return out


def _weighted_quantiles(x, w, qs):
    order = np.argsort(x)
    cw = np.cumsum(w[order])
    cw = cw / cw[-1]
    return np.interp(np.asarray(qs) / 100.0, cw - 0.5 * w[order] / w.sum(), x[order])


def _mvn_logpdf(x, mean, cov):
    chol = np.linalg.cholesky(cov)
    z = np.linalg.solve(chol, (x - mean).T)
    return -0.5 * np.sum(z ** 2, axis=0) - np.log(np.diag(chol)).sum() - 0.5 * len(mean) * np.log(2 * np.pi)


def _stencil(centre, h):
    """Central-difference stencil in 4-D: centre, ±h_i, and (±h_i, ±h_j) for i < j (33 points)."""
    d = len(centre)
    pts = [np.zeros(d)]
    for i in range(d):
        for sgn in (1, -1):
            e = np.zeros(d)
            e[i] = sgn * h[i]
            pts.append(e)
    for i in range(d):
        for j in range(i + 1, d):
            for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                e = np.zeros(d)
                e[i], e[j] = si * h[i], sj * h[j]
                pts.append(e)
    return centre + np.array(pts)


def _derivatives(f, h):
    """Gradient and Hessian of log L from the values of :func:`_stencil` (same order)."""
    d = len(h)
    f0 = f[0]
    plus, minus = f[1:2 * d + 1:2], f[2:2 * d + 1:2]
    g = (plus - minus) / (2 * h)
    hess = np.diag((plus - 2 * f0 + minus) / h ** 2)
    k = 2 * d + 1
    for i in range(d):
        for j in range(i + 1, d):
            pp, pm, mp, mm = f[k:k + 4]
            hess[i, j] = hess[j, i] = (pp - pm - mp + mm) / (4 * h[i] * h[j])
            k += 4
    return g, hess


#: Finite-difference steps of the Laplace step (log age, [Fe/H], A_V, dMod), smallest and largest.
_H_MIN = np.array([0.01, 0.01, 0.005, 0.005])
_H_MAX = np.array([0.05, 0.06, 0.04, 0.04])


def _maximise(log_target, start, lo, hi, max_iter: int) -> np.ndarray:
    """Mode of ``log_target`` inside [lo, hi] by L-BFGS-B, gradients from one batched stencil per call."""
    from scipy.optimize import minimize

    h = _H_MIN / 2
    scale = _H_MAX  # parameters in units of their typical precision: a well-conditioned problem
    d = len(start)

    def fun(z):
        x = np.clip(z * scale, lo + h, hi - h)
        # Forward differences: one batch of d + 1 θ per call (the target is smooth on the scale of h).
        pts = np.vstack([x, x + np.diag(h)])
        f = log_target(pts)
        if not np.all(np.isfinite(f)):
            return 1e12, np.zeros(d)
        grad = (f[1:] - f[0]) / h
        return -f[0], -grad * scale

    res = minimize(fun, np.clip(start, lo + h, hi - h) / scale, jac=True, method="L-BFGS-B",
                   bounds=list(zip((lo + h) / scale, (hi - h) / scale, strict=True)),
                   options={"maxiter": max_iter, "maxfun": 2 * max_iter, "gtol": 1e-3})
    return np.clip(res.x * scale, lo, hi)


def refine(members: pd.DataFrame, start_mean, start_cov, parallax=None, grid=None, colour_names="auto",
           settings: RefineSettings | None = None) -> RefineResult:
    """Refine a cluster's parameters with the likelihood of every member's photometry (module docstring).

    Steps: (1) a cross-entropy search from the ANN's Gaussian (``n_rounds`` × ``n_search`` θ, on
    ``n_search_stars`` members drawn at random); (2) the mode on all members by L-BFGS-B with batched
    finite-difference gradients, from the best point and from the best one elsewhere on the ridge;
    (3) the curvature there, the robust tempering τ and a Newton step;
    (4) adaptive importance sampling (``n_is_rounds`` × ``n_final`` θ, all members) from a defensive
    mixture (90 % a Gaussian around the mode widened by 1.5, 10 % the ANN's Gaussian), giving the
    weighted posterior and its ESS.

    Parameters
    ----------
    members : DataFrame
        Member table with Gaia G, BP, RP [mag] (and the bands of ``colour_names``).
    start_mean, start_cov : array_like (4,), (4, 4)
        The ANN's calibrated posterior (log age, [Fe/H], A_V, dMod) as a Gaussian: the first proposal.
    parallax : ClusterParallax, optional
        Adds ``parallax.loglike(dist_mod)`` (:mod:`ocnb.astrometry`).
    grid : IsochroneGrid, optional
        Default :func:`ocnb.isochrones.default_grid`.
    colour_names : tuple of str or "auto"
        Colours of the likelihood, BP−RP first; ``"auto"`` (default) adds G−Ks where most members
        have good 2MASS Ks (:func:`choose_colours`).
    settings : RefineSettings, optional

    Returns
    -------
    RefineResult
    """
    import dataclasses

    if isinstance(colour_names, str):
        if colour_names != "auto":
            raise ValueError(f"colour_names must be 'auto' or a tuple such as ('BP-RP', 'G-Ks'), not {colour_names!r}")
        colour_names = choose_colours(members)

    from ..isochrones import default_grid

    t0 = time.perf_counter()
    settings = settings or RefineSettings()
    grid = grid if grid is not None else default_grid()
    mean0 = np.asarray(start_mean, float)
    cov0 = np.asarray(start_cov, float)
    if mean0.shape != (4,) or cov0.shape != (4, 4) or not (np.all(np.isfinite(cov0)) and np.all(np.isfinite(mean0))):
        raise ValueError(f"start_mean must be 4 finite numbers and start_cov a finite 4 × 4 matrix; got "
                         f"{mean0!r}, shape {cov0.shape}")
    if settings.abs_mag_max is not None:
        plx_mu = parallax.dist_mod() if parallax is not None else float("nan")
        hint = plx_mu if np.isfinite(plx_mu) else float(mean0[3])
        if np.isfinite(hint):
            settings = dataclasses.replace(settings, g_lim=float(min(settings.g_lim, hint + settings.abs_mag_max)))
    phot = member_photometry(members, colour_names, settings)
    bounds = prior_bounds(grid)
    lo = np.array([bounds[k][0] for k in LABELS])
    hi = np.array([bounds[k][1] for k in LABELS])
    mean0 = np.clip(mean0, lo, hi)
    # Never start narrower than the grid can resolve.
    cov0 = 0.5 * (cov0 + cov0.T) + np.diag([0.03, 0.03, 0.02, 0.02]) ** 2
    rng = np.random.default_rng(settings.seed)
    n = phot["n_used"]
    subset = (np.sort(rng.choice(n, size=settings.n_search_stars, replace=False))
              if n > settings.n_search_stars else None)
    n_eval = 0
    # Tempering: the members are not independent draws from the model — PARSEC, the extinction law and
    # the binaries are wrong in the same way for all of them — so the CMD counts as at most n_eff
    # independent stars (calibrated on mismatched simulated clusters, see refine_calibration).
    tau = max(1.0, n / settings.n_eff) if settings.n_eff else 1.0
    tau_eff = tau

    def cmd_terms(theta, stars=None):
        """Per-member CMD logs (S, N), −inf rows outside the prior."""
        nonlocal n_eval
        n_eval += len(theta)
        inside = np.all((theta >= lo) & (theta <= hi), axis=1)
        n_star = phot["n_used"] if stars is None else len(stars)
        out = np.full((len(theta), n_star), -np.inf)
        if inside.any():
            out[inside] = cmd_loglike(phot, synthetic_cmd(grid, theta[inside], colour_names, settings), settings,
                                      stars=stars, per_star=True)
        return out

    def plx_term(theta):
        return np.asarray(parallax.loglike(theta[:, 3]), float) if parallax is not None else np.zeros(len(theta))

    def log_target(theta, stars=None):
        """Tempered target: log L_CMD / τ + log L_parallax (τ ≥ 1, see the module docstring).

        On a subset of members the CMD term is tempered to the same effective number of stars.
        """
        scale = (len(stars) / n if stars is not None else 1.0)
        return cmd_terms(theta, stars).sum(axis=1) / (tau * scale) + plx_term(theta)

    # (1) cross-entropy search on a subset of members. The first round is three times larger: age,
    # [Fe/H] and A_V trade along narrow ridges with several local maxima, and a wide first look is
    # what keeps the search out of the wrong one.
    seen_t, seen_l = [], []
    m, cov = mean0, cov0
    n_elite = max(4, round(settings.elite_fraction * settings.n_search))
    for r in range(settings.n_rounds):
        size = settings.n_search * (3 if r == 0 else 1)
        th = np.clip(rng.multivariate_normal(m, cov, size), lo, hi)
        if r == 0:
            th[0] = mean0
        seen_t.append(th)
        seen_l.append(log_target(th, subset))
        all_t, all_l = np.concatenate(seen_t), np.concatenate(seen_l)
        best = np.argsort(all_l)[::-1][:n_elite]
        m = all_t[best].mean(axis=0)
        cov = np.cov(all_t[best].T) + np.diag(_H_MIN) ** 2
    all_t, all_l = np.concatenate(seen_t), np.concatenate(seen_l)
    order = np.argsort(np.where(np.isfinite(all_l), all_l, -np.inf))[::-1]
    starts = [all_t[order[0]]]
    # A second start: the best point of the search that lies clearly elsewhere on the ridge and is
    # nearly as good (within 10 in the tempered log L).
    far = [i for i in order[1:] if np.any(np.abs(all_t[i] - starts[0]) / _H_MAX > 2.0)
           and all_l[i] > all_l[order[0]] - 10.0]
    if far:
        starts.append(all_t[far[0]])
    # (2) the mode on all members: L-BFGS-B with batched central-difference gradients from each start
    # (the parameters are strongly degenerate, which a population search alone follows slowly).
    modes = [_maximise(log_target, x, lo, hi, settings.max_iter) for x in starts]
    values = log_target(np.array(modes))
    centre = modes[int(np.argmax(values))]
    # (3) curvature and robust tempering at the mode. The CMD model is never exact (PARSEC, one
    # extinction law, binaries, the member list), so its curvature alone overstates what the members
    # tell: the robust (sandwich) covariance H⁻¹ J H⁻¹, J = Σ_i g_i g_iᵀ over the members' own score
    # vectors, measures the real scatter; τ ≥ 1 tempers the CMD term to that width so that the
    # parallax keeps its proper weight against a misspecified CMD.
    h = _H_MIN.copy()
    lap = None
    for _ in range(1):
        c = np.clip(centre, lo + h, hi - h)
        pts = _stencil(c, h)
        per = cmd_terms(pts)
        if not np.all(np.isfinite(per)):
            break
        d = len(h)
        _, h_cmd = _derivatives(per.sum(axis=1), h)
        scores = (per[1:2 * d + 1:2] - per[2:2 * d + 1:2]) / (2 * h[:, None])  # (4, N)
        try:
            inv = np.linalg.inv(-h_cmd)
            np.linalg.cholesky(inv)
            ratio = np.linalg.det(inv @ (scores @ scores.T) @ inv) / np.linalg.det(inv)
            tau_sandwich = float(ratio ** (1.0 / d)) if np.isfinite(ratio) and ratio > 0 else 1.0
            tau = max(tau_eff, tau_sandwich, 1.0)
        except np.linalg.LinAlgError:
            pass
        f = per.sum(axis=1) / tau + plx_term(pts)
        g, hess = _derivatives(f, h)
        try:
            cand = np.linalg.inv(-hess)
            np.linalg.cholesky(cand)
        except np.linalg.LinAlgError:
            lap = None
            centre = pts[int(np.argmax(f))]
            continue
        lap = cand
        centre = np.clip(c + np.clip(lap @ g, -5 * h, 5 * h), lo, hi)
        h = np.clip(0.5 * np.sqrt(np.diag(lap)), _H_MIN / 4, _H_MAX)
    if lap is None:
        # No full curvature (a kink: the grid is interpolated bilinearly between PARSEC nodes): start
        # from the conditional widths along each axis instead and let the adaptive rounds find the rest.
        diag = np.diag(hess) if "hess" in locals() else np.full(4, np.nan)
        lap = np.diag(np.where(diag < 0, -1.0 / np.where(diag < 0, diag, -1.0), h ** 2))
        laplace_ok = False
    else:
        laplace_ok = True
    # (4) adaptive importance sampling on all members: each round draws from a defensive mixture
    # (90 % a Gaussian around the current estimate widened by 1.5, 10 % the ANN's Gaussian) refitted
    # to the weighted samples of the rounds before. All rounds are kept and weighted against the
    # mixture of every proposal used (deterministic-mixture weights), so no evaluation is wasted and
    # the ESS counts them all. θ outside the prior have zero weight (no clipping: that would put
    # mass on the prior's edges).
    m_prop, c_prop = centre, lap
    n_def = max(2, settings.n_final // 10)
    props, th_all, ll_all = [], [], []

    def mixture_logq(x):
        parts = [np.logaddexp(np.log(0.9) + _mvn_logpdf(x, m_, c_), np.log(0.1) + _mvn_logpdf(x, mean0, cov0))
                 for m_, c_ in props]
        return np.logaddexp.reduce(np.array(parts), axis=0) - np.log(len(parts))

    for r in range(settings.n_is_rounds):
        c_prop = 0.5 * (c_prop + c_prop.T) + np.diag(_H_MIN / 10) ** 2
        wide = (1.5 ** 2) * c_prop
        props.append((m_prop, wide))
        th_r = np.concatenate([rng.multivariate_normal(m_prop, wide, settings.n_final - n_def),
                               rng.multivariate_normal(mean0, cov0, n_def)])
        th_all.append(th_r)
        ll_all.append(log_target(th_r))
        th, ll = np.concatenate(th_all), np.concatenate(ll_all)
        log_w = ll - mixture_logq(th)
        ok = np.isfinite(log_w)
        w = np.zeros(len(th))
        if ok.any():
            w[ok] = np.exp(log_w[ok] - log_w[ok].max())
        if w.sum() <= 0 or r == settings.n_is_rounds - 1:
            break
        wn = w / w.sum()
        if 1.0 / np.sum(wn ** 2) >= 5:
            m_prop = wn @ th
            c_prop = np.cov(th.T, aweights=wn)
        else:  # too few effective samples to refit: re-centre on the best and shrink
            m_prop = th[int(np.argmax(log_w))]
            c_prop = 0.5 * c_prop
    flags = []
    if w.sum() <= 0:
        flags.append("refinement found no θ inside the prior with a finite likelihood")
        w = np.ones(len(th))
    w = w / w.sum()
    ess = float(1.0 / np.sum(w ** 2))
    if ess < settings.min_ess:
        flags.append(f"low effective sample size {ess:.1f} < {settings.min_ess:g}: the posterior is not resolved")
    rows = {}
    for k, name in enumerate(LABELS):
        x = th[:, k]
        mu = float(np.sum(w * x))
        sd = float(np.sqrt(max(np.sum(w * (x - mu) ** 2), 0.0)))
        p16, p50, p84 = _weighted_quantiles(x, w, (16, 50, 84))
        span = hi[k] - lo[k]
        edge = float(np.sum(w[(x <= lo[k] + 0.02 * span) | (x >= hi[k] - 0.02 * span)]))
        rows[name] = {"mean": mu, "std": sd, "p16": p16, "p50": p50, "p84": p84, "at_bound": edge > 0.16}
    summary = pd.DataFrame(rows).T.loc[list(LABELS)]
    for col in ("mean", "std", "p16", "p50", "p84"):
        summary[col] = summary[col].astype(float)
    summary["at_bound"] = summary["at_bound"].astype(bool)
    edges = [k for k in LABELS if summary.loc[k, "at_bound"]]
    notes = []
    if not laplace_ok:
        notes.append("the log-likelihood is not smooth at the mode (a PARSEC grid node): the adaptive rounds "
                     "started from the per-axis widths")
    if "a_v" in edges and summary.loc["a_v", "p50"] < 0.5 * (lo[2] + hi[2]):
        # A_V ≥ 0 is physics, not a prior choice: a cluster with no dust sits there legitimately.
        edges.remove("a_v")
        summary.loc["a_v", "at_bound"] = False
        notes.append("A_V at its physical bound 0")
    if edges:
        flags.append("posterior piled on a prior edge: " + ", ".join(edges))
    i_best = int(np.argmax(np.where(np.isfinite(ll), ll, -np.inf)))
    best_theta = th[i_best]
    map_theta = {k: float(v) for k, v in zip(LABELS, best_theta, strict=True)}
    map_theta["log_like"] = float(ll[i_best])
    best_cmd = synthetic_cmd(grid, best_theta[None, :], colour_names, settings)
    f_out = float(outlier_fraction(phot, best_cmd, settings)[0])
    ppc_p = _ppc(phot, best_cmd, settings, rng, f_out)
    if f_out > settings.max_outlier_fraction:
        flags.append(f"posterior-predictive check failed: {100 * f_out:.0f} % of the members lie where the best "
                     f"model has fewer stars than the field (> {100 * settings.max_outlier_fraction:.0f} %; "
                     f"p = {ppc_p:.3g} against synthetic member sets)")
    return RefineResult(samples=th, weights=w, summary=summary, ess=ess, map_theta=map_theta, ppc_p=ppc_p,
                        n_stars=n, n_evaluations=n_eval, time_s=time.perf_counter() - t0, flags=flags,
                        settings=settings, tau=tau, outlier_fraction=f_out, notes=notes,
                        colour_names=tuple(colour_names))


def _ppc(phot, cmd, settings, rng, f_obs, n_sets: int = 10) -> float:
    """Posterior-predictive p-value of the outlier fraction: synthetic member sets from the best model."""
    w = cmd.weight[0] * (cmd.mag[0] <= settings.g_lim)
    if w.sum() <= 0:
        return 0.0
    p = w / w.sum()
    n = phot["n_used"]
    order = np.argsort(phot["mag"])
    hits = 0
    for _ in range(n_sets):
        k = rng.choice(p.size, size=n, p=p)
        # Each synthetic star takes the errors of the real member nearest in G.
        idx = order[np.clip(np.searchsorted(phot["mag"][order], cmd.mag[0, k]), 0, n - 1)]
        vy, vc = phot["var_mag"][idx], phot["var_colours"][idx]
        has = phot["has"][idx]
        fake = {"mag": cmd.mag[0, k] + rng.normal(size=n) * np.sqrt(vy),
                "colours": np.where(has, cmd.colours[0, k] + rng.normal(size=vc.shape) * np.sqrt(np.where(has, vc, 0)),
                                    phot["colours"][idx]),
                "var_mag": vy, "var_colours": vc, "has": has}
        hits += outlier_fraction(fake, cmd, settings)[0] >= f_obs
    return float((hits + 1) / (n_sets + 1))
