"""Cone preprocessing, cluster parameters and the cluster isochrone (van Groeningen+2023, Sect. 2).

A **cone** is a DataFrame with one row per Gaia source in Gaia-archive column names (``source_id, ra, dec,
parallax, parallax_error, pmra, pmra_error, pmdec, pmdec_error, phot_g_mean_mag, phot_bp_mean_mag,
phot_rp_mean_mag``; optional correlations, ``phot_*_n_obs``, ``phot_*_mean_mag_error``, the zero-point inputs
``nu_eff_used_in_astrometry, pseudocolour, ecl_lat, astrometric_params_solved``) and ``attrs["release"]``.

* :func:`cone_adql` / :func:`query_cone` — spec A2: the archive query of a cluster's cone (50 pc radius, 10σ
  proper-motion circle and parallax window, all three photometric bands observed), run through
  :func:`ocnb.datasets.gaia_cone_search` (cached in the data home; needs the network the first time).
* :func:`prepare_cone` — spec A3: drop incomplete rows, RA wrap, parallax zero point (Lindegren+2021 through
  ``gaiadr3-zeropoint`` where its inputs exist, else a documented global offset), colour C = G − G_RP and the
  photometric uncertainties σ_G, σ_C.
* :func:`cluster_parameters` — spec A4: member means, inverse-variance means, dispersions, errors of the means.
* :func:`catalogue_parameters` — distance, log age and A_V of Cantat-Gaudin+2020 (spec A1).
* :func:`cluster_isochrone` — spec A5: PARSEC isochrone, Teff-dependent extinction, distance, densification.

Bad input (``tests/membership/test_cones.py``, bad-input table): a missing required column, parallaxes in the
wrong unit, a cone left empty by NaN astrometry, an unknown cluster or one without CG2020 parameters and a log
age or [M/H] off the PARSEC grid raise errors naming the column, value, unit or cluster; missing correlation
columns, a missing ``release`` and the global zero-point fallback are explicit flags in ``attrs["flags"]``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

# the zero point lives in ocnb.astrometry (shared with ocnb.cmd_ann); the old names stay importable from here
from ..astrometry import (
    GLOBAL_ZERO_POINT,
    SIGMA_ZERO_POINT,
    ZERO_POINT_COLUMNS,
    _ecliptic_latitude,  # noqa: F401 (re-exported for existing callers and tests)
)
from ..astrometry import parallax_zero_point as _zero_point
from ..errors import IsochroneRangeError, MemberTableError, UnknownClusterError

__all__ = [
    "ASTROMETRY_COLUMNS",
    "CORRELATION_COLUMNS",
    "GLOBAL_ZERO_POINT",
    "PHOTOMETRY_COLUMNS",
    "REQUIRED_COLUMNS",
    "SIGMA_ZERO_POINT",
    "ZERO_POINT_COLUMNS",
    "ClusterNotInConeError",
    "ClusterParams",
    "ConeError",
    "TooFewMembersError",
    "CONE_COLUMNS",
    "ConeQuery",
    "catalogue_parameters",
    "cluster_isochrone",
    "cone_adql",
    "query_cone",
    "cluster_parameters",
    "densify_isochrone",
    "photometric_sigma",
    "prepare_cone",
]


class ConeError(MemberTableError):
    """A cone that cannot be used: missing column, wrong unit, nothing left after dropping NaN rows."""


class TooFewMembersError(ConeError):
    """Fewer training members than the method needs (matched to the cone, after dropping NaN rows)."""


class ClusterNotInConeError(ConeError):
    """The members (or the catalogue position) of a cluster are not in the cone given."""


ASTROMETRY_COLUMNS = ("ra", "dec", "parallax", "parallax_error", "pmra", "pmra_error", "pmdec", "pmdec_error")
PHOTOMETRY_COLUMNS = ("phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag")
#: Columns every cone needs (spec A2 <cols>, less the optional ones).
REQUIRED_COLUMNS = ("source_id", *ASTROMETRY_COLUMNS, *PHOTOMETRY_COLUMNS)
#: The three astrometric correlations used by the probability sampling (spec A11).
CORRELATION_COLUMNS = ("parallax_pmra_corr", "parallax_pmdec_corr", "pmra_pmdec_corr")
#: DPAC spline reference numbers of observations and magnitude clip of spec A3.3.
SPLINE_CLIP = (4.05, 20.95)

_SIGMA_COLUMNS = {b: f"phot_{b}_mean_mag_error" for b in ("g", "bp", "rp")}
_FOE_COLUMNS = {b: f"phot_{b}_mean_flux_over_error" for b in ("g", "bp", "rp")}
_NOBS_COLUMNS = {b: f"phot_{b}_n_obs" for b in ("g", "bp", "rp")}


# ---------------------------------------------------------------------------------------------------------------
# Cluster parameters
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClusterParams:
    """Cluster parameters used by the candidate selection and the features (vG23 Sect. 2.2-2.3; spec A4).

    Attributes
    ----------
    name : str
    ra, dec : float
        Plain means of the training members' positions [deg] (RA in [0, 360)).
    pmra, pmdec, parallax : float
        Inverse-variance weighted means [mas/yr, mas/yr, mas]; the parallax is zero-point corrected.
    sigma_pmra_m, sigma_pmdec_m, sigma_parallax_m : float
        Population standard deviations (ddof = 0) of the members [mas/yr, mas/yr, mas].
    sigma_pmra_c, sigma_pmdec_c, sigma_parallax_c : float
        Errors of the weighted means, (Σ 1/σ_j²)^(-1/2) (eq. 5 with the square the paper's print lacks).
    dist_pc, log_age, a0 : float
        Catalogue (CG2020) distance [pc], log10(age/yr) and A_V [mag] used as dustapprox's A_0.
    """

    name: str
    ra: float
    dec: float
    pmra: float
    pmdec: float
    parallax: float
    sigma_pmra_m: float
    sigma_pmdec_m: float
    sigma_parallax_m: float
    sigma_pmra_c: float
    sigma_pmdec_c: float
    sigma_parallax_c: float
    dist_pc: float
    log_age: float
    a0: float

    def to_dict(self) -> dict:
        """Plain ``{field: value}`` (JSON-able)."""
        return {k: (v if isinstance(v, str) else float(v)) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> ClusterParams:
        return cls(**{k: (data[k] if k == "name" else float(data[k])) for k in cls.__dataclass_fields__})


def _weighted_mean(x: np.ndarray, sigma: np.ndarray) -> tuple[float, float]:
    w = 1.0 / np.square(sigma)
    return float(np.sum(w * x) / np.sum(w)), float(np.sqrt(1.0 / np.sum(w)))


def cluster_parameters(members: pd.DataFrame, name: str, dist_pc: float, log_age: float, a0: float) -> ClusterParams:
    """Cluster centre, mean motions and their spreads from the training members (spec A4; vG23 eqs. 4-5).

    Parameters
    ----------
    members : DataFrame
        Prepared cone rows of the training members (:func:`prepare_cone`): ``ra, dec`` [deg] (already
        RA-wrapped), ``pmra, pmdec`` [mas/yr] with errors, ``parallax_corrected`` (or ``parallax``) [mas]
        with ``parallax_error``.
    name : str
        Cluster name (kept in the result).
    dist_pc, log_age, a0 : float
        Catalogue distance [pc], log10(age/yr), A_V [mag] (spec A4: D is *not* 1000/ϖ_c).

    Returns
    -------
    ClusterParams
        α_c, δ_c plain means; μ and ϖ inverse-variance means Σx/σ² / Σ1/σ²; σ_m = population std (ddof 0);
        σ_c = (Σ 1/σ_j²)^(-1/2) (eq. 5, corrected).

    Raises
    ------
    TooFewMembersError
        No members.
    ConeError
        A non-positive or NaN error among the members (the weights would be infinite).
    """
    if len(members) == 0:
        raise TooFewMembersError(f"cluster {name!r}: no members to compute the cluster parameters from")
    plx_col = "parallax_corrected" if "parallax_corrected" in members.columns else "parallax"
    out = {}
    for key, col, err in (("pmra", "pmra", "pmra_error"), ("pmdec", "pmdec", "pmdec_error"),
                          ("parallax", plx_col, "parallax_error")):
        x = members[col].to_numpy(float)
        s = members[err].to_numpy(float)
        if not (np.all(np.isfinite(s)) and np.all(s > 0) and np.all(np.isfinite(x))):
            raise ConeError(f"cluster {name!r}: column {err!r} (or {col!r}) has NaN or non-positive values among "
                            "the members; the inverse-variance mean needs finite, positive errors [mas or mas/yr]")
        mean, sig_c = _weighted_mean(x, s)
        out[key] = mean
        out[f"sigma_{key}_m"] = float(np.std(x))  # population std (ddof = 0), as the authors' code
        out[f"sigma_{key}_c"] = sig_c
    return ClusterParams(
        name=str(name), ra=float(np.mean(members["ra"].to_numpy(float)) % 360.0),
        dec=float(np.mean(members["dec"].to_numpy(float))),
        pmra=out["pmra"], pmdec=out["pmdec"], parallax=out["parallax"],
        sigma_pmra_m=out["sigma_pmra_m"], sigma_pmdec_m=out["sigma_pmdec_m"],
        sigma_parallax_m=out["sigma_parallax_m"], sigma_pmra_c=out["sigma_pmra_c"],
        sigma_pmdec_c=out["sigma_pmdec_c"], sigma_parallax_c=out["sigma_parallax_c"],
        dist_pc=float(dist_pc), log_age=float(log_age), a0=float(a0))


def catalogue_parameters(name: str) -> dict:
    """Cantat-Gaudin+2020 parameters of one cluster (spec A1): distance, log age, A_V, centre and motion.

    Parameters
    ----------
    name : str
        Any spelling or alias (``"Blanco 1"``, ``"Blanco_1"``, ``"M67"``), resolved by
        :func:`ocnb.datasets.resolve_cluster_name`.

    Returns
    -------
    dict
        ``name`` (canonical), ``name_in_catalog``, ``dist_pc`` [pc] (DistPc), ``log_age`` (AgeNN), ``a0``
        [mag] (AVNN, used as A_0), ``ra, dec`` [deg], ``pmra, pmdec`` [mas/yr], ``parallax`` [mas] (DR2-based).

    Raises
    ------
    UnknownClusterError
        Unknown name, a cluster not in CG2020, or one without its neural-network age, A_V and distance (150 of
        the 2017 CG2020 rows): pass ``dist_pc``, ``log_age`` and ``a0`` yourself then.
    """
    from ..datasets import load_catalog, resolve_cluster_name

    canonical = resolve_cluster_name(name)
    cat = load_catalog("cantat2020")
    hit = cat[cat["name"] == canonical]
    if hit.empty:
        raise UnknownClusterError(f"cluster {name!r} ({canonical}) is not in Cantat-Gaudin+2020 (CANTAT2020): pass "
                                  "dist_pc [pc], log_age [log10 yr] and a0 [mag] explicitly")
    r = hit.iloc[0]
    vals = {"dist_pc": r["DistPc"], "log_age": r["AgeNN"], "a0": r["AVNN"]}
    missing = [f"{k} ({c})" for (k, v), c in zip(vals.items(), ("DistPc", "AgeNN", "AVNN"), strict=True)
               if not np.isfinite(v)]
    if missing:
        raise UnknownClusterError(f"cluster {name!r} ({r['Cluster']} in CANTAT2020) has no {', '.join(missing)}: pass "
                                  "dist_pc [pc], log_age [log10 yr] and a0 [mag] explicitly")
    return {"name": canonical, "name_in_catalog": str(r["Cluster"]), "dist_pc": float(r["DistPc"]),
            "log_age": float(r["AgeNN"]), "a0": float(r["AVNN"]), "ra": float(r["RA_ICRS"]),
            "dec": float(r["DE_ICRS"]), "pmra": float(r["pmRA*"]), "pmdec": float(r["pmDE"]),
            "parallax": float(r["plx"])}


# ---------------------------------------------------------------------------------------------------------------
# The archive cone (spec A2)
# ---------------------------------------------------------------------------------------------------------------
#: ``gaia_source`` columns of spec A2's query (``g_rp`` is recomputed by :func:`prepare_cone`).
CONE_COLUMNS = ("source_id", "ra", "dec", "l", "b", "parallax", "pmra", "pmdec", "parallax_error", "pmra_error",
                "pmdec_error", "parallax_pmra_corr", "parallax_pmdec_corr", "pmra_pmdec_corr", "phot_g_mean_mag",
                "phot_bp_mean_mag", "phot_rp_mean_mag", "bp_rp", "g_rp", "phot_g_n_obs", "phot_bp_n_obs",
                "phot_rp_n_obs", "phot_g_mean_flux_over_error", "phot_bp_mean_flux_over_error",
                "phot_rp_mean_flux_over_error", "nu_eff_used_in_astrometry", "pseudocolour", "ecl_lat",
                "astrometric_params_solved")
#: Largest cone the archive layer accepts [deg]; 50 pc subtends more for clusters nearer than 286 pc.
MAX_CONE_DEG = 10.0


@dataclass(frozen=True)
class ConeQuery:
    """Spec A2's cone of one cluster: centre and radius [deg], the windows and the ADQL text.

    ``pm_centre`` [mas/yr] and ``parallax_centre`` [mas] are Cantat-Gaudin+2020's (DR2-based, as vG23 query DR3
    with them); ``pm_radius`` = ``n_sigma`` × σ_pm [mas/yr] with σ_pm = sqrt((s_μα*² + s_μδ²)/2), and
    ``parallax_halfwidth`` = ``n_sigma`` × s_ϖ [mas], s = the dispersions of the member list given. ``flags``
    says what was capped or taken from the members instead of the catalogue.
    """

    name: str
    ra: float
    dec: float
    radius_deg: float
    pm_centre: tuple[float, float]
    pm_radius: float
    parallax_centre: float
    parallax_halfwidth: float
    g_max: float | None
    where: tuple[str, ...]
    adql: str
    flags: tuple[str, ...] = ()


def a2_dispersions(members: pd.DataFrame) -> tuple[float, float]:
    """Spec A2's window scales from a member list: σ_pm = sqrt((s_μα*² + s_μδ²)/2) [mas/yr] and s_ϖ [mas].

    Population standard deviations (ddof 0, spec A4) of ``pmra``, ``pmdec`` and ``parallax`` over the members
    with all three finite; the windows of the cone are ``n_sigma`` times these (spec: 10).
    """
    astro = members[["pmra", "pmdec", "parallax"]].to_numpy(float)
    astro = astro[np.isfinite(astro).all(axis=1)]
    return float(np.sqrt((astro[:, 0].std() ** 2 + astro[:, 1].std() ** 2) / 2)), float(astro[:, 2].std())


def cone_adql(name: str, members: pd.DataFrame | None = None, radius_pc: float = 50.0, n_sigma: float = 10.0,
              g_max: float | None = 18.0, table: str = "gaiadr3.gaia_source") -> ConeQuery:
    """Spec A2's archive query of a cluster's cone (vG23 Sect. 2.1), as text: nothing is fetched.

    Parameters
    ----------
    name : str
        Cluster name (any spelling :func:`ocnb.datasets.resolve_cluster_name` knows); its Cantat-Gaudin+2020
        centre, distance, proper motion and parallax define the cone.
    members : DataFrame, optional
        The member list whose dispersions set the windows (``pmra``, ``pmdec`` [mas/yr], ``parallax`` [mas]);
        default the shipped list of ``name`` (:func:`ocnb.datasets.load_members`). CG2020's own dispersions are
        not in the shipped catalogue [resolution: the members' population standard deviations, as spec A4].
    radius_pc : float
        Cone radius at the cluster's distance [pc] (spec: 50); capped at 10° (flagged).
    n_sigma : float
        Width of the proper-motion circle and parallax window in member dispersions (spec: 10).
    g_max : float or None
        ``phot_g_mean_mag < g_max`` [mag] (vG23 keep all magnitudes: None; 18 matches the shipped cones).
    table : str
        Archive table.

    Returns
    -------
    ConeQuery

    Raises
    ------
    UnknownClusterError
        Unknown name or a cluster without CG2020 parameters.
    TooFewMembersError
        Fewer than 10 members with finite astrometry (the dispersions would be meaningless).
    ConeError
        ``radius_pc`` or ``n_sigma`` not a finite positive number; a member table without ``pmra``,
        ``pmdec``, ``parallax``.
    """
    from ..datasets import load_members
    from ..datasets.online import _num as num  # the archive layer's fixed number format: stable ADQL, stable cache key
    from ..datasets.online import gaia_adql

    for label, value, unit in (("radius_pc", radius_pc, "pc"), ("n_sigma", n_sigma, "")):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value) \
                or value <= 0:
            raise ConeError(f"{label} must be a finite number > 0{' ' + unit if unit else ''}, got {value!r}")
    cat = catalogue_parameters(name)
    members = load_members(cat["name"]) if members is None else members
    if not isinstance(members, pd.DataFrame):
        raise ConeError(f"members must be a member table (DataFrame), got {type(members).__name__}")
    missing = [c for c in ("pmra", "pmdec", "parallax") if c not in members.columns]
    if missing:
        raise ConeError(f"the member table of {cat['name']} lacks {missing} (mas/yr, mas): the windows of spec A2 "
                        "are set by the members' dispersions")
    n_finite = int(np.isfinite(members[["pmra", "pmdec", "parallax"]].to_numpy(float)).all(axis=1).sum())
    if n_finite < 10:
        raise TooFewMembersError(f"{cat['name']}: {n_finite} member(s) with finite pmra, pmdec, parallax; at "
                                 "least 10 are needed for the dispersions that set the cone's windows")
    flags = []
    s_pm, s_plx = a2_dispersions(members)
    radius_deg = float(np.degrees(float(radius_pc) / cat["dist_pc"]))
    if radius_deg > MAX_CONE_DEG:
        flags.append(f"cone radius {radius_deg:.1f} deg (= {radius_pc:g} pc at {cat['dist_pc']:.0f} pc) capped at "
                     f"{MAX_CONE_DEG:g} deg")
        radius_deg = MAX_CONE_DEG
    ra = cat["ra"] + 360.0 if cat["ra"] < 0 else cat["ra"]
    pm_radius, plx_half = float(n_sigma) * s_pm, float(n_sigma) * s_plx

    where = (f"abs(parallax - {num(cat['parallax'])}) <= {num(plx_half)}",
             f"sqrt(power(pmra - {num(cat['pmra'])}, 2) + power(pmdec - {num(cat['pmdec'])}, 2)) <= "
             f"{num(pm_radius)}",
             "phot_g_n_obs <> 0 AND phot_bp_n_obs <> 0 AND phot_rp_n_obs <> 0")
    adql = gaia_adql(ra, cat["dec"], radius_deg, g_max=g_max, columns=CONE_COLUMNS, table=table, where=where)
    return ConeQuery(name=cat["name"], ra=ra, dec=cat["dec"], radius_deg=radius_deg,
                     pm_centre=(cat["pmra"], cat["pmdec"]), pm_radius=pm_radius, parallax_centre=cat["parallax"],
                     parallax_halfwidth=plx_half, g_max=g_max, where=where, adql=adql, flags=tuple(flags))


def query_cone(name: str, members: pd.DataFrame | None = None, radius_pc: float = 50.0, n_sigma: float = 10.0,
               g_max: float | None = 18.0, cache: bool = True, show_query: bool = True) -> pd.DataFrame:
    """Fetch spec A2's cone of a cluster from the Gaia archive (DR3), cached in the data home.

    The query of :func:`cone_adql`, run by :func:`ocnb.datasets.gaia_cone_search` (astroquery; the cache key is
    the ADQL text, so the same cone is fetched once). The result goes to :func:`prepare_cluster` as it is.

    Returns
    -------
    DataFrame
        The cone in ocnb's canonical column names plus the spec-A2 columns; ``attrs``: ``release`` ("DR3"),
        ``cluster``, ``citation`` (Gaia DR3 and the query), ``flags`` (the cone's), ``query`` (the ADQL).

    Raises
    ------
    ConnectionError
        The archive cannot be reached (offline: use the shipped cones, :func:`ocnb.datasets.load_field`).
    UnknownClusterError, TooFewMembersError, ConeError
        As :func:`cone_adql`.
    """
    from ..datasets.online import gaia_cone_search

    q = cone_adql(name, members=members, radius_pc=radius_pc, n_sigma=n_sigma, g_max=g_max)
    if show_query:
        print(q.adql)
    cone = gaia_cone_search(q.ra, q.dec, q.radius_deg, g_max=g_max, columns=CONE_COLUMNS, cache=cache,
                            show_query=False, where=q.where)
    cone.attrs.update(release="DR3", cluster=q.name, query=q.adql, flags=list(q.flags),
                      citation=f"Gaia DR3 (Gaia Collaboration 2023), archive query of spec A2 around {q.name}")
    return cone


# ---------------------------------------------------------------------------------------------------------------
# Cone preprocessing
# ---------------------------------------------------------------------------------------------------------------
def _dpac_sigma(band: str, mag, n_obs) -> np.ndarray:
    """σ_mag from the DPAC log-error spline (spec A3.3): 10^(spline(m) − log10 sqrt(n_obs/n_ref)), m clipped."""
    from ..photometry import GAIA_SPLINE_REF_NOBS, _gaia_spline

    spl = _gaia_spline()[band][0]  # the shipped, checksummed spline of ocnb.photometry (same data as spec A3.3)
    m = np.clip(np.asarray(mag, dtype=float), *SPLINE_CLIP)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_sig = spl(m) - np.log10(np.sqrt(np.asarray(n_obs, dtype=float) / GAIA_SPLINE_REF_NOBS[band]))
    return np.where(np.isnan(np.asarray(mag, dtype=float)), np.nan, np.power(10.0, log_sig))


def photometric_sigma(cone: pd.DataFrame, band: str) -> tuple[np.ndarray, str]:
    """σ [mag] of Gaia ``band`` ("g", "bp", "rp") and the method used.

    Order (spec A3.3 first): the DPAC spline with ``phot_<band>_n_obs`` ("dpac_spline_n_obs"); else the
    ``phot_<band>_mean_mag_error`` column ("mag_error_column"); else 1.0857/``phot_<band>_mean_flux_over_error``
    ("flux_over_error"); else the DPAC spline at the typical DR3 n_obs of ``ocnb.photometry.GAIA_DEFAULT_NOBS``
    ("dpac_spline_default_n_obs").
    """
    from ..photometry import GAIA_DEFAULT_NOBS

    big = band.upper()
    mag = cone[f"phot_{band}_mean_mag"].to_numpy(float)
    if _NOBS_COLUMNS[band] in cone.columns:
        return _dpac_sigma(big, mag, cone[_NOBS_COLUMNS[band]].to_numpy(float)), "dpac_spline_n_obs"
    if _SIGMA_COLUMNS[band] in cone.columns:
        return cone[_SIGMA_COLUMNS[band]].to_numpy(float), "mag_error_column"
    if _FOE_COLUMNS[band] in cone.columns:
        foe = cone[_FOE_COLUMNS[band]].to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(foe > 0, 2.5 / np.log(10.0) / foe, np.nan), "flux_over_error"
    return _dpac_sigma(big, mag, GAIA_DEFAULT_NOBS[big]), "dpac_spline_default_n_obs"


def _median(values) -> float:
    """Median of the finite values (NaN when there are none; no All-NaN warning)."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else float("nan")


def _check_units(cone: pd.DataFrame) -> None:
    """Catch parallaxes / proper motions / positions in the wrong unit (degrees vs radians, mas vs arcsec)."""
    med_err = _median(cone["parallax_error"])
    if np.isfinite(med_err) and med_err < 1e-3:
        raise ConeError(f"column 'parallax_error' has median {med_err:.3g}: Gaia parallax errors are 0.01-1 mas; "
                        "parallax columns look like arcsec (multiply by 1000 to get mas)")
    if np.isfinite(med_err) and med_err > 10:
        raise ConeError(f"column 'parallax_error' has median {med_err:.3g}: Gaia parallax errors are 0.01-1 mas; "
                        "parallax columns look like µas (divide by 1000 to get mas)")
    for col in ("pmra_error", "pmdec_error"):
        med = _median(cone[col])
        if np.isfinite(med) and (med < 1e-3 or med > 10):
            raise ConeError(f"column {col!r} has median {med:.3g}: Gaia proper-motion errors are 0.01-2 mas/yr; "
                            "proper motions are not in mas/yr")
    dec = pd.to_numeric(cone["dec"], errors="coerce").to_numpy(float)
    ra = pd.to_numeric(cone["ra"], errors="coerce").to_numpy(float)
    if np.any(np.abs(dec[np.isfinite(dec)]) > 90) or np.any(np.abs(ra[np.isfinite(ra)]) > 360):
        raise ConeError("columns 'ra'/'dec' out of range (|dec| ≤ 90, 0 ≤ ra < 360 deg): positions must be in degrees")


def _wrap(values: np.ndarray) -> np.ndarray:
    """Spec A3.4: if a longitude column spans more than 180°, map values > 180 to value − 360."""
    finite = values[np.isfinite(values)]
    if finite.size and finite.max() - finite.min() > 180.0:
        return np.where(values > 180.0, values - 360.0, values)
    return values


def _prepare(cone: pd.DataFrame, release: str | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """:func:`prepare_cone` and the boolean mask of the input rows it kept."""
    if not isinstance(cone, pd.DataFrame):
        raise ConeError(f"a cone must be a pandas DataFrame of Gaia sources, not {type(cone).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in cone.columns]
    if missing:
        raise ConeError(f"cone lacks required column(s) {missing} (Gaia archive names; units deg, mas, mas/yr, mag)")
    flags: list[str] = []
    release = release or cone.attrs.get("release")
    if release is None:
        release = "DR3"
        flags.append("release not given (attrs['release']): assumed DR3")
    release = str(release).upper()
    if release not in GLOBAL_ZERO_POINT:
        raise ConeError(f"release {release!r} unknown: use 'DR2', 'EDR3' or 'DR3'")
    _check_units(cone)

    # spec A3.1: drop rows with NaN in the columns used (required, correlations, n_obs, magnitude errors)
    used = list(REQUIRED_COLUMNS) + [c for c in CORRELATION_COLUMNS if c in cone.columns]
    used += [c for c in _NOBS_COLUMNS.values() if c in cone.columns]
    if not any(c in cone.columns for c in _NOBS_COLUMNS.values()):
        used += [c for c in _SIGMA_COLUMNS.values() if c in cone.columns]
    values = cone[used].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    keep = np.all(np.isfinite(values), axis=1)
    n_nan = {c: int(np.sum(~np.isfinite(values[:, k]))) for k, c in enumerate(used)}
    n_nan = {c: n for c, n in n_nan.items() if n}
    # positive errors (0 would give an infinite weight)
    for col in ("parallax_error", "pmra_error", "pmdec_error", *[c for c in _NOBS_COLUMNS.values() if c in cone]):
        keep &= pd.to_numeric(cone[col], errors="coerce").to_numpy(float) > 0
    # at least one of nu_eff/pseudocolour for 5p/6p solutions, when the columns exist (2p sources go)
    sol_cols = [c for c in ("nu_eff_used_in_astrometry", "pseudocolour") if c in cone.columns]
    if len(sol_cols) == 2:
        keep &= cone[sol_cols].notna().any(axis=1).to_numpy()
    n_in = len(cone)
    if not keep.any():
        raise ConeError(f"cone: none of its {n_in} rows has complete astrometry and photometry "
                        f"(NaN counts per column: {n_nan})")
    out = cone.loc[keep].reset_index(drop=True)
    if n_in - int(keep.sum()):
        flags.append(f"dropped {n_in - int(keep.sum())} of {n_in} rows with NaN (or non-positive errors) in the "
                     f"columns used; NaN counts: {n_nan}")
    if not all(c in cone.columns for c in CORRELATION_COLUMNS):
        flags.append("no correlations: diagonal covariance")

    # spec A3.4: RA / l wrap
    for col in ("ra", "l"):
        if col in out.columns:
            out[col] = _wrap(out[col].to_numpy(float))

    # spec A3.2: zero point
    z, zp_info, zp_flags = _zero_point(out, release)
    flags += zp_flags
    out["parallax_zpt"] = z
    out["parallax_corrected"] = out["parallax"].to_numpy(float) - z

    # colour and photometric σ (spec A3.3)
    out["g_rp"] = out["phot_g_mean_mag"].to_numpy(float) - out["phot_rp_mean_mag"].to_numpy(float)
    sig = {}
    methods = {}
    for band in ("g", "bp", "rp"):
        sig[band], methods[band] = photometric_sigma(out, band)
    out["sigma_g"] = sig["g"]
    out["sigma_rp"] = sig["rp"]
    out["sigma_g_rp"] = np.hypot(sig["g"], sig["rp"])
    out["sigma_bp_rp"] = np.hypot(sig["bp"], sig["rp"])
    bad_sig = ~(np.isfinite(out["sigma_g"]) & np.isfinite(out["sigma_g_rp"]))
    if bad_sig.any():
        flags.append(f"{int(bad_sig.sum())} rows without a usable photometric σ: set to 0 (only Δ_C, Δ_G apply)")
        for col in ("sigma_g", "sigma_rp", "sigma_g_rp", "sigma_bp_rp"):
            out.loc[bad_sig, col] = np.nan_to_num(out.loc[bad_sig, col].to_numpy(float), nan=0.0)
    method = methods["g"] if len(set(methods.values())) == 1 else str(methods)
    if method != "dpac_spline_n_obs":
        flags.append(f"photometric σ: {method} (no phot_*_n_obs for the DPAC spline of spec A3.3)")

    out.attrs = {k: v for k, v in cone.attrs.items() if k not in ("flags",)}
    out.attrs.update(release=release, flags=list(cone.attrs.get("flags", [])) + flags, zero_point=zp_info,
                     photometric_sigma=methods, n_input=n_in, n_dropped=int(n_in - keep.sum()), n_nan=n_nan)
    return out, keep


def prepare_cone(cone: pd.DataFrame, release: str | None = None) -> pd.DataFrame:
    """Preprocess a Gaia cone (vG23 Sect. 2.1, 2.3.1; spec A3).

    Parameters
    ----------
    cone : DataFrame
        Gaia sources in archive column names (:data:`REQUIRED_COLUMNS`; optional :data:`CORRELATION_COLUMNS`,
        ``phot_*_n_obs``, ``phot_*_mean_mag_error``, ``phot_*_mean_flux_over_error``, :data:`ZERO_POINT_COLUMNS`,
        ``l, b``).
    release : {"DR2", "EDR3", "DR3"}, optional
        Default ``cone.attrs["release"]``; DR3 (with a flag) when neither is given.

    Returns
    -------
    DataFrame
        Kept rows (RangeIndex) with all input columns plus ``parallax_zpt`` (Z [mas]) and
        ``parallax_corrected`` = ϖ − Z [mas], ``g_rp`` = G − G_RP [mag], ``sigma_g``, ``sigma_rp``,
        ``sigma_g_rp``, ``sigma_bp_rp`` [mag]. ``ra`` (and ``l``) wrapped to (−180, 180] when the column spans
        more than 180° (spec A3.4). ``attrs``: ``release``, ``flags`` (list of str, e.g. "no correlations:
        diagonal covariance", the zero-point method), ``zero_point`` (dict), ``photometric_sigma`` (method per
        band), ``n_input``, ``n_dropped``, ``n_nan`` (NaN counts per column).

    Notes
    -----
    Zero point: Lindegren+2021 via ``gaiadr3-zeropoint`` for (E)DR3 cones with ``nu_eff_used_in_astrometry``,
    ``pseudocolour`` and ``astrometric_params_solved`` (``ecl_lat`` computed with astropy when absent); sources
    outside the recipe's range keep the raw parallax (spec A3.2). Otherwise the global offset of
    :data:`GLOBAL_ZERO_POINT` (flagged). Rows dropped: NaN in a required column, a correlation, an ``n_obs`` or
    (without ``n_obs``) a magnitude-error column; non-positive astrometric errors; 2p solutions when the
    ``nu_eff``/``pseudocolour`` columns exist.

    Raises
    ------
    ConeError
        Not a DataFrame; a required column missing (named); parallax/proper-motion errors in the wrong unit;
        positions outside degrees; an unknown release; no row left.
    """
    return _prepare(cone, release)[0]


# ---------------------------------------------------------------------------------------------------------------
# Isochrone (spec A5)
# ---------------------------------------------------------------------------------------------------------------
#: Densification step [mag in the (8C, G) metric] and minimum points per long segment (spec A5).
DENSIFY_STEP = 0.2
COLOUR_WEIGHT = 8.0


def densify_isochrone(c: np.ndarray, g: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Spec A5 densification: points with label ≤ 5 (in order) get, for each consecutive segment whose length
    sqrt((8ΔC)² + ΔG²) exceeds 0.2, n = max(floor(len/0.2), 3) evenly spaced points including both ends (the n − 2
    interior ones inserted); points with label 6-7 are appended unchanged.

    Returns
    -------
    ndarray (n, 2)
        [C, G] points.
    """
    c = np.asarray(c, float)
    g = np.asarray(g, float)
    label = np.asarray(label)
    lo = label <= 5
    c1, g1 = c[lo], g[lo]
    pts = [np.c_[c1[:1], g1[:1]]]
    if c1.size > 1:
        dc, dg = np.diff(c1), np.diff(g1)
        length = np.hypot(COLOUR_WEIGHT * dc, dg)
        n = np.where(length > DENSIFY_STEP, np.maximum(np.floor(length / DENSIFY_STEP), 3), 2).astype(int)
        n_int = n - 2  # interior points per segment
        seg = np.repeat(np.arange(dc.size), n_int + 1)  # interior points + the segment's end point
        # position within the segment: k/(n-1) for k = 1..n-1 (k = n-1 is the end point)
        start = np.repeat(np.cumsum(n_int + 1) - (n_int + 1), n_int + 1)
        k = np.arange(seg.size) - start + 1
        frac = k / (n[seg] - 1)
        pts.append(np.c_[c1[seg] + frac * dc[seg], g1[seg] + frac * dg[seg]])
    pts.append(np.c_[c[~lo], g[~lo]])
    return np.concatenate(pts, axis=0)


def cluster_isochrone(params: ClusterParams, mh: float = 0.0, law: str = "F99") -> np.ndarray:
    """The cluster's apparent, densified isochrone in (C = G − G_RP, G) (vG23 Sect. 2.3; spec A5).

    PARSEC v1.2S from :func:`ocnb.isochrones.isochrone` at the catalogue log age and ``mh`` (interpolated in the
    shipped grid; the authors picked the nearest of 400 solar-Z isochrones, step 0.01 dex), phases ≤ 7 (up to
    the early AGB); with A_0 > 0 the points hotter than 50 000 K go (v0.2). Extinction per point with the
    Teff-dependent dustapprox ratio of :func:`ocnb.photometry.extinction_ratio` (A_G = k_G(Teff, A_0)·A_0),
    then G += 5 log10(D) − 5 and :func:`densify_isochrone`.

    Parameters
    ----------
    params : ClusterParams
        Uses ``log_age``, ``a0`` [mag], ``dist_pc`` [pc].
    mh : float
        [M/H] [dex]; solar (0.0) as in the paper.
    law : {"F99", "G23"}
        dustapprox extinction curve; the paper's dustapprox model was built on Fitzpatrick (1999).

    Returns
    -------
    ndarray (n, 2)
        [C, G] in apparent magnitudes [mag].

    Raises
    ------
    IsochroneRangeError
        Log age or [M/H] off the PARSEC grid (the message names the cluster and the value).
    ConeError
        Non-positive or NaN distance, NaN or negative A_0.
    """
    from ..isochrones import isochrone
    from ..photometry import extinction_ratio

    if not (np.isfinite(params.dist_pc) and params.dist_pc > 0):
        raise ConeError(f"cluster {params.name!r}: distance {params.dist_pc!r} pc must be a positive number of pc")
    if not (np.isfinite(params.a0) and params.a0 >= 0):
        raise ConeError(f"cluster {params.name!r}: A_0 = {params.a0!r} mag must be a finite number ≥ 0")
    try:
        iso = isochrone(params.log_age, mh, max_label=7)
    except IsochroneRangeError as err:
        raise IsochroneRangeError(f"no isochrone for cluster {params.name!r} (log_age = {params.log_age!r}, "
                                  f"[M/H] = {mh!r}): {err}") from None
    data = iso.data
    data = data[np.isfinite(data["G"]) & np.isfinite(data["RP"]) & np.isfinite(data["log_teff"])]
    if params.a0 > 0:
        data = data[data["log_teff"] <= np.log10(50_000.0)]
    if len(data) < 2:
        raise IsochroneRangeError(f"no usable isochrone points for cluster {params.name!r} "
                                  f"(log_age = {params.log_age}, [M/H] = {mh})")
    g = data["G"].to_numpy(float).copy()
    rp = data["RP"].to_numpy(float).copy()
    if params.a0 > 0:
        teff = data["teff"].to_numpy(float)
        g += extinction_ratio("G", teff, params.a0, law=law) * params.a0
        rp += extinction_ratio("RP", teff, params.a0, law=law) * params.a0
    c = g - rp
    g = g + 5.0 * np.log10(params.dist_pc) - 5.0
    return densify_isochrone(c, g, data["label"].to_numpy())

