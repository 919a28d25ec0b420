"""Gaia astrometry of a cluster: the parallax zero point and the cluster parallax as a distance constraint.

Data-and-physics layer (imports only ``ocnb.photometry`` and ``ocnb.errors``), shared by the paper modules:
``ocnb.membership`` corrects every cone source with :func:`parallax_zero_point` (van Groeningen+2023 spec
A3.2); ``ocnb.cmd_ann`` turns the members' parallaxes into a likelihood term on the distance modulus
(:func:`cluster_parallax`, issue 14 item 1).

* :func:`parallax_zero_point` — Z [mas] per source (ϖ_corr = ϖ − Z): Lindegren+2021 (A&A 649, A4) through
  ``gaiadr3-zeropoint`` where its inputs exist, else the global QSO offset of :data:`GLOBAL_ZERO_POINT`.
* :func:`cluster_parallax` — zero-point corrected, outlier-clipped, inverse-variance weighted mean parallax
  of the members with its statistical and systematic error, as a :class:`ClusterParallax` whose
  ``loglike(dist_mod)`` is the Gaussian parallax likelihood of a distance modulus.

Units: parallaxes and their errors in mas, distances in pc, distance moduli in mag, angles in deg.

Bad input (``tests/test_astrometry.py``, bad-input table): not a DataFrame, a missing ``parallax`` column,
parallax errors in the wrong unit (arcsec or µas), an unknown release and fewer than :data:`MIN_STARS` finite
parallaxes with positive errors raise :class:`ocnb.errors.MemberTableError` naming the column, unit and count;
NaN / non-positive errors, a missing ``parallax_error`` column (σ_ϖ(G) model), the global zero point, a
non-positive mean parallax and an implausibly large one are explicit entries of ``ClusterParallax.flags``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import MemberTableError

__all__ = [
    "ANGULAR_COVARIANCE_FLOOR",
    "DEPTH_PC",
    "DR2_PARALLAX_ERROR_FACTOR",
    "GLOBAL_ZERO_POINT",
    "MAX_CLUSTER_DEPTH_PC",
    "MAX_PLAUSIBLE_PARALLAX",
    "MIN_STARS",
    "SIGMA_ZERO_POINT",
    "ZERO_POINT_COLUMNS",
    "ClusterParallax",
    "cluster_parallax",
    "dist_mod_to_parallax",
    "parallax_to_dist_mod",
    "parallax_zero_point",
]

#: Inputs of the Lindegren+2021 zero point (``gaiadr3-zeropoint``).
ZERO_POINT_COLUMNS = ("nu_eff_used_in_astrometry", "pseudocolour", "ecl_lat", "astrometric_params_solved")
#: Global parallax zero points [mas] used where the L21 recipe's inputs are missing, with their uncertainty and
#: reference: (E)DR3 the median QSO parallax of Lindegren+2021 (A&A 649, A4, Sect. 2); DR2 that of
#: Lindegren+2018 (A&A 616, A2, Sect. 5.2), whose variations with magnitude, colour and position are of order
#: 0.03 mas.
GLOBAL_ZERO_POINT = {
    "DR3": (-0.017, 0.015, "Lindegren+2021 QSO median"),
    "EDR3": (-0.017, 0.015, "Lindegren+2021 QSO median"),
    "DR2": (-0.029, 0.03, "Lindegren+2018 QSO median"),
}
#: σ_ϖ0 of eq. 7 [mas] (Lindegren+2021), the uncertainty of the zero point.
SIGMA_ZERO_POINT = 0.015
#: Small-scale angular covariance of the parallax systematics [mas]: the floor below which no mean over the
#: stars of one cluster (< 1°) can go, because the error is common to all of them. (E)DR3: σ_s = 10.3 µas of
#: Maíz Apellániz, Pantaleoni González & Barbá 2021 (A&A 649, A13), consistent with the ~11 µas of
#: Lindegren+2021 (A&A 649, A2, Sect. 5.6, V_ϖ(θ→0)); DR2: ~43 µas on scales < 1° (Lindegren+2018, A&A 616,
#: A2, Sect. 5.4; Vasiliev 2019).
ANGULAR_COVARIANCE_FLOOR = {"DR3": 0.0103, "EDR3": 0.0103, "DR2": 0.043}
#: Line-of-sight depth [pc] assumed for the intrinsic parallax spread of a cluster: a radius of ~10 pc (the
#: tidal radius of a rich open cluster; Pleiades ~12 pc, M67 ~10 pc) at distance d = 1000/ϖ spreads the
#: parallaxes by σ_depth = ϖ · R/d = ϖ² R / 1000 [mas]. Generous on purpose (most members lie well inside
#: R): it keeps real members of nearby clusters from being clipped while a field cone, spread over kpc,
#: still stands out in the χ² diagnostic.
DEPTH_PC = 10.0
#: Line-of-sight depth [pc] implied by the excess parallax spread above which a member list is flagged as
#: dispersed: the 26 peer clusters give 0-35 pc, field stars hundreds to thousands (tests/test_astrometry.py).
MAX_CLUSTER_DEPTH_PC = 100.0
#: Fewest finite parallaxes with positive errors a cluster parallax needs.
MIN_STARS = 5
#: A mean parallax above this [mas] (closer than 10 pc; the nearest cluster, the Hyades, is at ~21 mas) is
#: flagged as implausible: usually parallaxes in µas or scaled by mistake.
MAX_PLAUSIBLE_PARALLAX = 100.0
#: DR2 / (E)DR3 parallax-error ratio used when ``parallax_error`` is missing from a DR2 table: EDR3 improved
#: the parallax precision by ~30 % over DR2 (Lindegren+2021, A&A 649, A2, Sect. 1; 1/0.7 ≈ 1.4).
DR2_PARALLAX_ERROR_FACTOR = 1.4
#: RUWE above which a source's astrometry is dropped (Lindegren+2021 A&A 649 A2: unresolved binaries and bad
#: single-star fits); only applied while at least MIN_STARS stay.
RUWE_MAX = 1.4
#: Median of the χ²(1) distribution, to turn a median squared residual into a robust reduced χ².
_CHI2_1_MEDIAN = 0.454936423119572


# ---------------------------------------------------------------------------------------------------------------
# Zero point
# ---------------------------------------------------------------------------------------------------------------
def _ecliptic_latitude(ra, dec) -> np.ndarray:
    """Ecliptic latitude β [deg] (barycentric true ecliptic) of ICRS positions ``ra, dec`` [deg]."""
    from astropy import units as u
    from astropy.coordinates import BarycentricTrueEcliptic, SkyCoord

    c = SkyCoord(ra=np.asarray(ra, float) * u.deg, dec=np.asarray(dec, float) * u.deg, frame="icrs")
    return c.transform_to(BarycentricTrueEcliptic()).lat.deg


def _zero_point_rows(table: pd.DataFrame, release: str) -> tuple[np.ndarray, dict, list[str]]:
    """:func:`parallax_zero_point` with NaN (not 0) where the Lindegren+2021 recipe is undefined."""
    release = _check_release(release)
    flags = []
    have = [c for c in ZERO_POINT_COLUMNS if c in table.columns]
    can_l21 = release in ("DR3", "EDR3") and all(
        c in table.columns for c in ("nu_eff_used_in_astrometry", "pseudocolour", "astrometric_params_solved"))
    if can_l21:
        from zero_point import zpt

        ecl_lat = (table["ecl_lat"].to_numpy(float) if "ecl_lat" in table.columns
                   else _ecliptic_latitude(table["ra"], table["dec"]))
        nu = table["nu_eff_used_in_astrometry"].to_numpy(float)
        pc = table["pseudocolour"].to_numpy(float)
        sol = table["astrometric_params_solved"].to_numpy()
        g = table["phot_g_mean_mag"].to_numpy(float)
        z = np.full(len(table), np.nan)
        ok = np.isin(sol, (31, 95)) & np.isfinite(g)
        if ok.any():
            zpt.load_tables()
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")  # zero_point warns about sources outside its validity range
                z[ok] = zpt.get_zpt(g[ok], nu[ok], pc[ok], ecl_lat[ok], sol[ok].astype(int), _warnings=False)
        n_nan = int(np.sum(~np.isfinite(z)))
        if n_nan:
            # spec A3.2: rows with NaN Z (outside the recipe's validity range) keep their raw parallax
            flags.append(f"zero point: Lindegren+2021 undefined for {n_nan} of {len(table)} sources "
                         "(outside 6 < G < 21 or the colour range): raw parallax kept")
        info = {"method": "lindegren2021", "package": "gaiadr3-zeropoint", "sigma_mas": SIGMA_ZERO_POINT,
                "n_undefined": n_nan, "ecl_lat_computed": "ecl_lat" not in table.columns}
        return z, info, flags
    offset, sigma, ref = GLOBAL_ZERO_POINT[release]
    why = (f"{release} has no Lindegren+2021 recipe" if release == "DR2"
           else f"columns {[c for c in ZERO_POINT_COLUMNS if c not in have and c != 'ecl_lat']} missing")
    flags.append(f"zero point: global offset {offset:+.3f} ± {sigma:.3f} mas ({release}, {ref}; {why})")
    info = {"method": "global", "offset_mas": offset, "sigma_mas": sigma, "reference": ref}
    return np.full(len(table), offset), info, flags


def parallax_zero_point(table: pd.DataFrame, release: str) -> tuple[np.ndarray, dict, list[str]]:
    """Parallax zero point Z [mas] per row (ϖ_corr = ϖ − Z), its description and flags (vG23 spec A3.2).

    Parameters
    ----------
    table : DataFrame
        Gaia sources: ``phot_g_mean_mag`` [mag] and, for the Lindegren+2021 recipe,
        ``nu_eff_used_in_astrometry`` [µm⁻¹], ``pseudocolour`` [µm⁻¹], ``astrometric_params_solved`` (31 or 95)
        and ``ecl_lat`` [deg] (computed from ``ra, dec`` [deg] with astropy when absent).
    release : {"DR3", "EDR3", "DR2"}
        Gaia data release of the parallaxes.

    Returns
    -------
    z : ndarray
        Z [mas], one per row. Lindegren+2021 (A&A 649, A4) via ``gaiadr3-zeropoint`` for (E)DR3 tables with
        its inputs; rows outside the recipe's validity (6 < G < 21, the colour range, 2p solutions) get 0
        (raw parallax kept, flagged). Otherwise the global QSO offset of :data:`GLOBAL_ZERO_POINT` (flagged).
    info : dict
        ``method`` ("lindegren2021" or "global"), ``sigma_mas`` (uncertainty of Z [mas]) and either
        ``package, n_undefined, ecl_lat_computed`` or ``offset_mas, reference``.
    flags : list of str
        "zero point: global offset ..." or "zero point: Lindegren+2021 undefined for N of M sources ...".

    Raises
    ------
    MemberTableError
        Unknown release.
    """
    z, info, flags = _zero_point_rows(table, release)
    return np.where(np.isfinite(z), z, 0.0), info, flags


# ---------------------------------------------------------------------------------------------------------------
# Distance modulus <-> parallax
# ---------------------------------------------------------------------------------------------------------------
def dist_mod_to_parallax(dist_mod):
    """Parallax [mas] of a distance modulus μ [mag]: ϖ = 10**(2 − μ/5) (d = 10**(μ/5 + 1) pc)."""
    return np.power(10.0, 2.0 - np.asarray(dist_mod, dtype=float) / 5.0)


def parallax_to_dist_mod(parallax):
    """Distance modulus μ = 5 log10(100/ϖ) [mag] of a parallax ϖ [mas]; NaN where ϖ ≤ 0 (no silent number)."""
    p = np.asarray(parallax, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, 5.0 * np.log10(100.0 / np.where(p > 0, p, 1.0)), np.nan)


# ---------------------------------------------------------------------------------------------------------------
# Cluster parallax
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class ClusterParallax:
    """Zero-point corrected mean parallax of a cluster's members and its likelihood on the distance modulus.

    Made by :func:`cluster_parallax`.

    Attributes
    ----------
    parallax : float
        Weighted mean of the used members' zero-point corrected parallaxes [mas], weights
        w_i = 1/(σ_i² + s²) with s the fitted intrinsic spread (``dispersion["excess_mas"]``).
    sigma_stat : float
        Statistical error of the mean [mas]: (Σ w_i)^(-1/2).
    sigma_sys : float
        Systematic error [mas] common to all members: zero-point uncertainty ⊕ angular-covariance floor
        (:data:`ANGULAR_COVARIANCE_FLOOR`); it does not average down with the number of stars.
    sigma : float
        Total σ = sigma_stat ⊕ sigma_sys [mas], the width of :meth:`loglike`.
    n_used, n_rejected : int
        Members in the mean; usable members (finite parallax, positive error, RUWE cut) clipped as outliers.
    n_input : int
        Rows of the member table.
    release : str
        "DR3", "EDR3" or "DR2".
    zero_point : dict
        ``info`` of :func:`parallax_zero_point` plus ``mean_mas`` (the mean Z of the used members [mas]).
    flags : list of str
        Everything that was assumed or is suspicious (zero-point method, dropped rows, error model, clipping,
        non-positive or implausible mean parallax, a release guessed).
    dispersion : dict
        Diagnostic "is this one cluster?": ``chi2_red`` (reduced χ² of the used parallaxes about the mean with
        σ_i ⊕ σ_depth), ``chi2_robust`` (the same from the median squared residual of *all* usable members,
        before clipping; ~≤ 1 for a cluster, ≫ 1 for a field cone), ``frac_rejected``, ``sigma_depth_mas``,
        ``depth_pc``, ``clip``, ``n_iter``, ``std_mas`` (plain std of the used parallaxes [mas]),
        ``excess_mas`` (intrinsic spread s of the used parallaxes beyond their errors, solving
        Σ r_i²/(σ_i² + s²) = N − 1 [mas]) and ``depth_fit_pc`` = s · 1000/ϖ̄² (that spread as a line-of-sight
        depth [pc]: tens of pc for a cluster, kpc for field stars; NaN when ϖ̄ ≤ 0).
    used : ndarray of bool
        Per input row: did it enter the mean.
    """

    parallax: float
    sigma_stat: float
    sigma_sys: float
    sigma: float
    n_used: int
    n_rejected: int
    n_input: int
    release: str
    zero_point: dict
    flags: list = field(default_factory=list)
    dispersion: dict = field(default_factory=dict)
    used: np.ndarray = field(default=None, compare=False)

    # --- distance ---------------------------------------------------------------------------------------
    @property
    def ok(self) -> bool:
        """True when the mean parallax is positive and plausible (:meth:`dist_mod` is a number)."""
        return bool(np.isfinite(self.parallax) and 0 < self.parallax <= MAX_PLAUSIBLE_PARALLAX)

    def dist_mod(self) -> float:
        """Distance modulus μ = 5 log10(100/ϖ) [mag] of the mean parallax; NaN when ϖ ≤ 0 (flagged)."""
        return float(parallax_to_dist_mod(self.parallax))

    def dist_mod_sigma(self) -> float:
        """σ_μ = (5 / ln 10) σ/ϖ [mag], first-order propagation of the total σ; NaN when ϖ ≤ 0."""
        if not (np.isfinite(self.parallax) and self.parallax > 0):
            return float("nan")
        return float(5.0 / math.log(10.0) * self.sigma / self.parallax)

    def distance_pc(self) -> float:
        """d = 1000/ϖ [pc] (the naive inverse, fine for σ/ϖ of a few per cent); NaN when ϖ ≤ 0."""
        return float(1000.0 / self.parallax) if self.parallax > 0 else float("nan")

    def loglike(self, dist_mod):
        """Gaussian log-likelihood of distance moduli μ [mag] given the cluster parallax.

        ln L(μ) = −½ ((ϖ − ϖ_model(μ)) / σ)² − ln(σ √(2π)), ϖ_model = 10**(2 − μ/5) mas, σ the total error.
        Computed in parallax space, so it stays valid (and informative) when the measured mean parallax is
        small or negative; vectorised over any array shape of μ (a scalar gives a float).
        """
        mu = np.asarray(dist_mod, dtype=float)
        resid = (self.parallax - dist_mod_to_parallax(mu)) / self.sigma
        out = -0.5 * resid * resid - math.log(self.sigma * math.sqrt(2.0 * math.pi))
        return float(out) if out.ndim == 0 else out

    # --- output -----------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-able dict of the attributes (without ``used``) plus ``dist_mod``, ``dist_mod_sigma``,
        ``distance_pc`` (NaN as None)."""

        def clean(v):
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            if isinstance(v, (bool, np.bool_)):
                return bool(v)
            if isinstance(v, (int, np.integer)):
                return int(v)
            if isinstance(v, (float, np.floating)):
                return float(v) if np.isfinite(v) else None
            return v

        return clean({
            "parallax": self.parallax, "sigma_stat": self.sigma_stat, "sigma_sys": self.sigma_sys,
            "sigma": self.sigma, "n_used": self.n_used, "n_rejected": self.n_rejected, "n_input": self.n_input,
            "release": self.release, "zero_point": dict(self.zero_point), "flags": list(self.flags),
            "dispersion": dict(self.dispersion), "dist_mod": self.dist_mod(),
            "dist_mod_sigma": self.dist_mod_sigma(), "distance_pc": self.distance_pc(), "ok": self.ok,
        })

    def to_frame(self) -> pd.DataFrame:
        """One-row DataFrame of the scalar results (parallax, errors [mas], dMod [mag], counts, χ²)."""
        d = self.to_dict()
        row = {k: d[k] for k in ("parallax", "sigma_stat", "sigma_sys", "sigma", "dist_mod", "dist_mod_sigma",
                                 "distance_pc", "n_used", "n_rejected", "release")}
        row.update(chi2_red=d["dispersion"].get("chi2_red"), chi2_robust=d["dispersion"].get("chi2_robust"),
                   zero_point=d["zero_point"].get("method"), n_flags=len(self.flags))
        return pd.DataFrame([row])

    def __repr__(self) -> str:
        mu, smu = self.dist_mod(), self.dist_mod_sigma()
        return (f"ClusterParallax(ϖ={self.parallax:.4f} ± {self.sigma_stat:.4f} (stat) ± {self.sigma_sys:.4f} "
                f"(sys) mas, dMod={mu:.3f} ± {smu:.3f} mag, n={self.n_used}/{self.n_used + self.n_rejected} "
                f"{self.release}, χ²_red={self.dispersion.get('chi2_red', float('nan')):.2f}, "
                f"{len(self.flags)} flags)")


def _check_release(release) -> str:
    rel = str(release).upper()
    if rel not in GLOBAL_ZERO_POINT:
        raise MemberTableError(f"release {release!r} unknown: use 'DR2', 'EDR3' or 'DR3' (Gaia data release of "
                               "the parallaxes)")
    return rel


def _resolve_release(members: pd.DataFrame, release) -> tuple[str, list[str]]:
    """Release: the argument, else ``attrs["release"]``, else a ``release``/``data_release`` column, else DR3."""
    if release is not None:
        return _check_release(release), []
    if members.attrs.get("release") is not None:
        return _check_release(members.attrs["release"]), []
    for col in ("release", "data_release"):
        if col in members.columns:
            values = members[col].dropna().astype(str).str.upper().str.replace("GAIA", "").str.strip()
            if len(values):
                top = values.value_counts().index[0]  # the most common value ("Gaia DR2" -> "DR2")
                rel = "DR2" if "DR2" in top else (top if top in GLOBAL_ZERO_POINT else "DR3")
                return rel, [f"release from column {col!r} ({top!r}): {rel}"]
    return "DR3", ["release not given (argument, attrs['release'] or a 'release' column): assumed DR3"]


def _weighted(x: np.ndarray, var: np.ndarray) -> tuple[float, float]:
    w = 1.0 / var
    return float(np.sum(w * x) / np.sum(w)), float(np.sqrt(1.0 / np.sum(w)))


def _excess_dispersion(resid: np.ndarray, s2: np.ndarray) -> float:
    """Intrinsic spread s [mas] beyond the errors: Σ r_i²/(σ_i² + s²) = N − 1 (0 when the errors explain all)."""
    target = max(resid.size - 1, 1)

    def excess(v):
        return float(np.sum(resid * resid / (s2 + v * v))) - target

    if excess(0.0) <= 0:
        return 0.0
    lo, hi = 0.0, float(np.max(np.abs(resid))) + 1e-12
    while excess(hi) > 0:
        hi *= 2.0
    for _ in range(60):  # bisection to ~1e-18 of hi: far below any parallax error
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if excess(mid) > 0 else (lo, mid)
    return 0.5 * (lo + hi)


def cluster_parallax(members: pd.DataFrame, release: str | None = None, clip: float = 3.0, *,
                     depth_pc: float = DEPTH_PC, ruwe_max: float | None = RUWE_MAX,
                     max_iter: int = 20) -> ClusterParallax:
    """Mean parallax of a cluster from its members: the distance constraint of issue 14 item 1.

    Parameters
    ----------
    members : DataFrame
        One row per member with ``parallax`` [mas] and ``parallax_error`` [mas] (Gaia archive names);
        optional ``phot_g_mean_mag`` [mag] (needed for the L21 zero point and for the σ_ϖ(G) model when
        ``parallax_error`` is absent), the :data:`ZERO_POINT_COLUMNS`, ``ra, dec`` [deg] and ``ruwe``.
    release : {"DR3", "EDR3", "DR2"}, optional
        Gaia release of the parallaxes. Default ``members.attrs["release"]``; else a ``release`` or
        ``data_release`` column (its most common value; DR2 if it says so); else DR3, flagged.
    clip : float
        Outlier threshold [σ]: a member is rejected when |ϖ_i − ϖ̄| > clip · √(σ_i² + σ_depth²), iterated
        until no change (at most ``max_iter`` times). Rejects non-members and binaries with bad astrometry.
    depth_pc : float
        Line-of-sight half-depth R [pc] of the intrinsic spread σ_depth = ϖ̄² R / 1000 [mas]
        (:data:`DEPTH_PC`, 10 pc): the clipping tolerance and the χ² diagnostic (not the weights).
    ruwe_max : float or None
        Drop members with ``ruwe`` above this (when the column exists and at least :data:`MIN_STARS` stay);
        None keeps all.
    max_iter : int
        Most clipping iterations.

    Returns
    -------
    ClusterParallax
        ``parallax`` [mas] (zero-point corrected), ``sigma_stat``, ``sigma_sys``, ``sigma`` [mas], ``n_used``,
        ``n_rejected``, ``release``, ``zero_point``, ``flags``, ``dispersion``; ``dist_mod()``,
        ``dist_mod_sigma()``, ``loglike(mu)``, ``to_dict()``.

    Notes
    -----
    * Zero point: :func:`parallax_zero_point` (Lindegren+2021 where the columns exist, else the global QSO
      offset); members outside the L21 validity range get the global offset here rather than none.
    * Clipping: starting from the median, about the mean weighted with 1/(σ_i² + σ_depth²), as above.
    * Mean of the kept members: random-effects weights 1/(σ_i² + s²), s ≥ 0 the intrinsic spread solving
      Σ (ϖ_i − ϖ̄)²/(σ_i² + s²) = N − 1 (iterated with ϖ̄); statistical error (Σ w)^(-1/2). So a spread
      beyond the quoted errors (real depth, underestimated errors) widens the error honestly, and the generous
      10 pc depth of the clipping does not inflate it for a compact cluster.
    * Systematics: σ_sys = σ_Z ⊕ σ_s, σ_Z the zero-point uncertainty (:data:`SIGMA_ZERO_POINT` 15 µas with
      L21, the global offset's σ otherwise) and σ_s the small-scale angular covariance of the Gaia parallax
      systematics, common to all members of a cluster and so not reduced by averaging: 10.3 µas in (E)DR3
      (Maíz Apellániz, Pantaleoni González & Barbá 2021, A&A 649, A13; Lindegren+2021, A&A 649, A2, Sect. 5.6
      find ~11 µas), 43 µas in DR2 (Lindegren+2018, A&A 616, A2, Sect. 5.4).
    * Without a ``parallax_error`` column the errors come from the sky-median σ_ϖ(G) of
      :func:`ocnb.photometry.parallax_error` (×:data:`DR2_PARALLAX_ERROR_FACTOR` for DR2), flagged.
    * A mean parallax ≤ 0 is flagged and :meth:`ClusterParallax.dist_mod` is NaN; one above
      :data:`MAX_PLAUSIBLE_PARALLAX` (closer than 10 pc) is flagged as implausible (µas or scaled parallaxes?).

    Raises
    ------
    MemberTableError
        Not a DataFrame; no ``parallax`` column; neither ``parallax_error`` nor ``phot_g_mean_mag``;
        ``parallax_error`` with a median below 0.001 mas (arcsec?) or above 10 mas (µas?); an unknown
        release; fewer than :data:`MIN_STARS` finite parallaxes with finite, positive errors (count named).
    """
    if not isinstance(members, pd.DataFrame):
        raise MemberTableError(f"members must be a pandas DataFrame with 'parallax' and 'parallax_error' [mas], "
                               f"not {type(members).__name__}")
    if "parallax" not in members.columns:
        raise MemberTableError(f"member table has no 'parallax' column [mas] (Gaia archive name); columns: "
                               f"{list(members.columns)[:12]}{' ...' if members.shape[1] > 12 else ''}")
    if not (np.isfinite(clip) and clip > 0 and np.isfinite(depth_pc) and depth_pc >= 0):
        raise ValueError(f"clip = {clip!r} [σ] must be > 0 and depth_pc = {depth_pc!r} [pc] ≥ 0")
    n_input = len(members)
    rel, flags = _resolve_release(members, release)

    plx = pd.to_numeric(members["parallax"], errors="coerce").to_numpy(float)
    if "parallax_error" in members.columns:
        err = pd.to_numeric(members["parallax_error"], errors="coerce").to_numpy(float)
        med = np.nanmedian(err[np.isfinite(err) & (err > 0)]) if np.any(np.isfinite(err) & (err > 0)) else np.nan
        if np.isfinite(med) and med < 1e-3:
            raise MemberTableError(f"column 'parallax_error' has median {med:.3g}: Gaia parallax errors are "
                                   "0.01-1 mas; the parallax columns look like arcsec (multiply by 1000 for mas)")
        if np.isfinite(med) and med > 10:
            raise MemberTableError(f"column 'parallax_error' has median {med:.3g}: Gaia parallax errors are "
                                   "0.01-1 mas; the parallax columns look like µas (divide by 1000 for mas)")
        err_col = "parallax_error"
    elif "phot_g_mean_mag" in members.columns:
        from .photometry import PARALLAX_ERROR_G_MAX
        from .photometry import parallax_error as sigma_plx_model

        g = pd.to_numeric(members["phot_g_mean_mag"], errors="coerce").to_numpy(float)
        err = sigma_plx_model(np.clip(g, None, PARALLAX_ERROR_G_MAX), release="DR3")
        if rel == "DR2":
            err = err * DR2_PARALLAX_ERROR_FACTOR
        flags.append("parallax error: no 'parallax_error' column; sky-median σ_ϖ(G) of "
                     "ocnb.photometry.parallax_error used" + (f" ×{DR2_PARALLAX_ERROR_FACTOR} for DR2"
                                                               if rel == "DR2" else ""))
        err_col = "parallax_error (σ_ϖ(G) model from phot_g_mean_mag)"
    else:
        raise MemberTableError("member table has neither 'parallax_error' [mas] nor 'phot_g_mean_mag' [mag] for "
                               "the σ_ϖ(G) model: the cluster parallax needs per-star errors")

    usable = np.isfinite(plx) & np.isfinite(err) & (err > 0)
    n_usable = int(usable.sum())
    if n_usable < MIN_STARS:
        raise MemberTableError(
            f"cluster parallax needs at least {MIN_STARS} members with a finite 'parallax' and a finite, positive "
            f"{err_col!r} [mas]; the table has {n_usable} of {n_input} rows")
    if n_usable < n_input:
        n_bad_p = int(np.sum(~np.isfinite(plx)))
        n_bad_e = int(np.sum(np.isfinite(plx) & ~(np.isfinite(err) & (err > 0))))
        flags.append(f"dropped {n_input - n_usable} of {n_input} rows: {n_bad_p} with NaN 'parallax', {n_bad_e} "
                     f"with NaN or non-positive {err_col!r}")
    if ruwe_max is not None and "ruwe" in members.columns:
        ruwe = pd.to_numeric(members["ruwe"], errors="coerce").to_numpy(float)
        bad = usable & np.isfinite(ruwe) & (ruwe > ruwe_max)
        if bad.any():
            if n_usable - int(bad.sum()) >= MIN_STARS:
                usable &= ~bad
                flags.append(f"dropped {int(bad.sum())} members with ruwe > {ruwe_max:g} (binaries / bad fits)")
            else:
                flags.append(f"ruwe > {ruwe_max:g} for {int(bad.sum())} members: kept (fewer than {MIN_STARS} "
                             "would remain)")

    # zero point (only on the usable rows: L21 needs G, the astropy call is per row)
    sub = members.loc[usable]
    z, zp_info, zp_flags = _zero_point_rows(sub, rel)
    flags += zp_flags
    undefined = ~np.isfinite(z)
    if undefined.any():
        # a cluster mean is better served by the global offset than by none for the few L21-undefined stars
        z = np.where(undefined, GLOBAL_ZERO_POINT[rel][0], z)
        flags.append(f"zero point: global offset {GLOBAL_ZERO_POINT[rel][0]:+.3f} mas used for the "
                     f"{int(undefined.sum())} members where Lindegren+2021 is undefined")
    x = plx[usable] - z
    s2 = np.square(err[usable])
    zp_info = dict(zp_info, mean_mas=float(np.mean(z)))

    # iterative clipping about the weighted mean, with the intrinsic depth term (starts from the median)
    def depth_var(mean):
        return np.square(max(mean, 0.0) ** 2 * depth_pc / 1000.0)

    centre = float(np.median(x))
    keep = np.ones(x.size, bool)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        tot = s2 + depth_var(centre)
        new = np.abs(x - centre) <= clip * np.sqrt(tot)
        if new.sum() < MIN_STARS:
            flags.append(f"clipping at {clip:g}σ would leave {int(new.sum())} < {MIN_STARS} members: stopped at "
                         f"iteration {n_iter} with {int(keep.sum())}")
            break
        converged = np.array_equal(new, keep) and n_iter > 1
        keep = new
        centre, _ = _weighted(x[keep], s2[keep] + depth_var(centre))
        if converged:
            break
    # final mean: weights 1/(σ_i² + s²) with s the intrinsic spread fitted to the kept members (random-effects
    # mean): the assumed 10 pc depth is a clipping tolerance, too wide for the error of the mean of a nearby
    # cluster whose members are concentrated
    xk, s2k = x[keep], s2[keep]
    mean, excess_mas = centre, -1.0
    for _ in range(20):
        new_excess = _excess_dispersion(xk - mean, s2k)
        mean, sigma_stat = _weighted(xk, s2k + new_excess**2)
        if abs(new_excess - excess_mas) <= 1e-6 * (new_excess + 1e-9):
            break
        excess_mas = new_excess
    excess_mas = new_excess
    var_d = depth_var(mean)
    n_used = int(keep.sum())
    chi2 = float(np.sum(np.square(xk - mean) / (s2k + var_d)))
    chi2_red = chi2 / max(n_used - 1, 1)
    chi2_robust = float(np.median(np.square(x - mean) / (s2 + var_d)) / _CHI2_1_MEDIAN)
    sigma_z = float(zp_info["sigma_mas"])
    sigma_sys = math.hypot(sigma_z, ANGULAR_COVARIANCE_FLOOR[rel])
    n_rejected = int(x.size - n_used)
    frac = n_rejected / x.size
    if n_rejected:
        flags.append(f"clipped {n_rejected} of {x.size} members beyond {clip:g}σ (σ_i ⊕ σ_depth = "
                     f"{math.sqrt(var_d):.3g} mas for R = {depth_pc:g} pc)")
    if frac > 0.3:
        flags.append(f"dispersed: {frac:.0%} of the members rejected as parallax outliers (a single cluster "
                     "keeps most): field stars or no cluster?")
    if chi2_robust > 4.0:
        flags.append(f"dispersed: robust χ²_red = {chi2_robust:.1f} of the parallaxes about the mean (≫ 1: much "
                     f"wider than errors ⊕ a {depth_pc:g} pc depth)")
    if mean <= 0:
        flags.append(f"non-positive mean parallax {mean:.4f} ± {sigma_stat:.4f} mas: no distance (dist_mod NaN)")
    elif mean > MAX_PLAUSIBLE_PARALLAX:
        flags.append(f"implausible mean parallax {mean:.4g} mas (closer than {1000 / MAX_PLAUSIBLE_PARALLAX:g} pc): "
                     "parallaxes in µas or scaled?")
    elif mean < 3 * sigma_stat:
        flags.append(f"low significance: mean parallax {mean:.4f} mas < 3 × its error {sigma_stat:.4f} mas (distance "
                     "poorly constrained)")
    # the spread the errors do not explain, as a line-of-sight depth: ~10 pc for a cluster, kpc for a field
    depth_fit = excess_mas * 1000.0 / mean**2 if mean > 0 else float("nan")
    # only a significant excess (χ² above 1 by 3 of its sd, a mean parallax ≥ 3σ) reads as a depth: by chance
    # alone a few stars of a distant cluster give any s, and s / ϖ̄² blows up as ϖ̄ → 0
    significant = chi2_red > 1 + 3 * math.sqrt(2 / max(n_used - 1, 1)) and mean >= 3 * sigma_stat
    if significant and np.isfinite(depth_fit) and depth_fit > MAX_CLUSTER_DEPTH_PC:
        flags.append(f"dispersed: parallax spread beyond the errors of {excess_mas:.3g} mas = a line-of-sight "
                     f"depth of {depth_fit:.0f} pc (> {MAX_CLUSTER_DEPTH_PC:g} pc): field stars or no cluster?")
    used = np.zeros(n_input, bool)
    used[np.flatnonzero(usable)[keep]] = True
    dispersion = {"chi2_red": chi2_red, "chi2_robust": chi2_robust, "frac_rejected": frac,
                  "sigma_depth_mas": math.sqrt(var_d), "depth_pc": float(depth_pc), "clip": float(clip),
                  "n_iter": n_iter, "std_mas": float(np.std(x[keep])), "excess_mas": excess_mas,
                  "depth_fit_pc": depth_fit}
    return ClusterParallax(parallax=mean, sigma_stat=sigma_stat, sigma_sys=sigma_sys,
                           sigma=math.hypot(sigma_stat, sigma_sys), n_used=n_used, n_rejected=n_rejected,
                           n_input=n_input, release=rel, zero_point=zp_info, flags=flags, dispersion=dispersion,
                           used=used)
