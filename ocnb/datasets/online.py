"""Online access to the Gaia archive and VizieR, cached in the data home.

Two entry points, both returning member tables in ocnb's canonical schema
(Gaia archive column names, :data:`CANONICAL_COLUMNS`, the same as
``ocnb.datasets.MEMBER_COLUMNS``; its 2MASS/AllWISE columns are NaN here, and
``ph_qual`` is None, since neither service's answer carries them):

:func:`gaia_cone_search`
    An ADQL cone search on ``gaiadr3.gaia_source`` through
    ``astroquery.gaia.Gaia`` (built by :func:`gaia_adql`, which you can print
    and paste into the archive's web form).
:func:`hunt2023_members`
    The Hunt & Reffert (2023) members of one cluster from VizieR
    (``J/A+A/673/A114/members``) through ``astroquery.vizier.Vizier``.

Results are stored as checksummed Parquet files under
``data_home()/cache/gaia`` and ``data_home()/cache/vizier``; a repeated call
returns the stored copy without touching the network, and a corrupted file is
reported, deleted and fetched again (see :mod:`ocnb.cache`). astroquery is
imported inside the functions, so ``import ocnb.datasets`` works without it.

Without internet access use the shipped samples instead:
``ocnb.datasets.load_members``.
"""

from __future__ import annotations

import difflib
import hashlib
import http.client
import math
import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from ..cache import Cache
from ..errors import OcnbError, UnknownClusterError

__all__ = [
    "CANONICAL_COLUMNS",
    "DEFAULT_COLUMNS",
    "HR23_MEMBERS_TABLE",
    "gaia_adql",
    "gaia_cone_search",
    "hunt2023_members",
]

#: 2.5 / ln(10): a flux relative error e_F/F is a magnitude error of this times e_F/F (mag).
MAG_PER_REL_FLUX = 2.5 / math.log(10.0)

CORR_COLUMNS = (
    "ra_dec_corr", "ra_parallax_corr", "ra_pmra_corr", "ra_pmdec_corr", "dec_parallax_corr",
    "dec_pmra_corr", "dec_pmdec_corr", "parallax_pmra_corr", "parallax_pmdec_corr", "pmra_pmdec_corr",
)

#: Gaia part of ocnb's member schema (Gaia archive names); units deg, mas, mas/yr, mag.
GAIA_MEMBER_COLUMNS = (
    "source_id", "cluster", "ra", "dec", "parallax", "parallax_error", "pmra", "pmra_error",
    "pmdec", "pmdec_error", *CORR_COLUMNS, "ruwe",
    "phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag",
    "phot_g_mean_mag_error", "phot_bp_mean_mag_error", "phot_rp_mean_mag_error",
    "membership_probability",
)
try:
    # The package's full schema (with 2MASS/AllWISE columns), so that online
    # and shipped tables (ocnb.datasets.load_members) share their columns.
    from .members import MEMBER_COLUMNS as _MEMBER_COLUMNS

    CANONICAL_COLUMNS = tuple(_MEMBER_COLUMNS)
except ImportError:  # pragma: no cover - only if the shipped-data layer is broken
    CANONICAL_COLUMNS = GAIA_MEMBER_COLUMNS
_TEXT_COLUMNS = ("cluster", "ph_qual")  # the non-numeric canonical columns

_BANDS = ("g", "bp", "rp")

#: ``gaiadr3.gaia_source`` columns fetched by default: what the canonical
#: schema needs (fluxes over errors become magnitude errors) plus a few
#: extras kept after the canonical columns.
DEFAULT_COLUMNS = (
    "source_id", "ra", "ra_error", "dec", "dec_error", "parallax", "parallax_error",
    "pmra", "pmra_error", "pmdec", "pmdec_error", *CORR_COLUMNS, "ruwe",
    "phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag",
    *(f"phot_{b}_mean_flux_over_error" for b in _BANDS),
    "bp_rp", "astrometric_params_solved", "radial_velocity", "radial_velocity_error",
)

#: VizieR table of Hunt & Reffert (2023, A&A 673, A114) members.
HR23_MEMBERS_TABLE = "J/A+A/673/A114/members"

MAX_RADIUS_DEG = 10.0  # a bigger G<18 cone is tens of millions of rows: use the archive directly
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")

_OFFLINE_HINT = (
    "Check the internet connection (or the service status page) and try again, or work offline "
    "with the shipped samples: ocnb.datasets.load_members(...)."
)


# ---------------------------------------------------------------------------
# ADQL
# ---------------------------------------------------------------------------
def _finite(name: str, value) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def _check_cone(ra, dec, radius_deg, g_max):
    ra = _finite("ra", ra)
    dec = _finite("dec", dec)
    radius_deg = _finite("radius_deg", radius_deg)
    if not 0.0 <= ra <= 360.0:
        raise ValueError(f"ra must be in [0, 360] deg (ICRS), got {ra}")
    if not -90.0 <= dec <= 90.0:
        raise ValueError(f"dec must be in [-90, 90] deg (ICRS), got {dec}")
    if not 0.0 < radius_deg <= MAX_RADIUS_DEG:
        raise ValueError(
            f"radius_deg must be in (0, {MAX_RADIUS_DEG}] deg, got {radius_deg}; "
            "query larger areas in pieces or on the archive itself"
        )
    if g_max is not None:
        g_max = _finite("g_max", g_max)
        if not 3.0 <= g_max <= 22.0:
            raise ValueError(f"g_max must be a Gaia G magnitude in [3, 22] mag (None: no cut), got {g_max}")
    return ra, dec, radius_deg, g_max


def _check_columns(columns: Iterable[str]) -> list[str]:
    if isinstance(columns, str):
        columns = [c.strip() for c in columns.split(",")]
    cols = list(dict.fromkeys(columns))  # de-duplicate, keep order
    bad = [c for c in cols if not isinstance(c, str) or not _IDENT.match(c)]
    if bad:
        # only plain column names: this text goes into a query string
        raise ValueError(f"columns must be plain gaia_source column names, got {bad!r}")
    # The cone and the conversion need these whatever the user asked for.
    for must in ("dec", "ra", "source_id"):
        if must not in cols:
            cols.insert(0, must)
    return cols


def _check_where(where) -> list[str]:
    if isinstance(where, str):
        where = [where]
    conds = [c.strip() if isinstance(c, str) else c for c in where]
    bad = [c for c in conds if not isinstance(c, str) or not c or ";" in c]
    if bad:
        raise ValueError(f"where must hold non-empty ADQL conditions without ';', got {bad!r}")
    return conds


def _num(x: float) -> str:
    # Fixed format: the same cone gives byte-identical ADQL (and cache key).
    return f"{x:.8f}".rstrip("0").rstrip(".") if x != 0 else "0"


def gaia_adql(
    ra: float,
    dec: float,
    radius_deg: float,
    g_max: float | None = 18.0,
    columns: Sequence[str] = DEFAULT_COLUMNS,
    table: str = "gaiadr3.gaia_source",
    where: Sequence[str] = (),
) -> str:
    """ADQL text of a Gaia cone search with a magnitude cut.

    Parameters
    ----------
    ra, dec : float
        Cone centre, ICRS (deg); ``0 <= ra <= 360``, ``-90 <= dec <= 90``.
    radius_deg : float
        Cone radius (deg), ``0 < radius_deg <= 10``.
    g_max : float or None
        Keep ``phot_g_mean_mag < g_max`` (mag); ``None`` for no cut.
    columns : sequence of str
        ``gaia_source`` columns to select (``source_id, ra, dec`` are always
        added). An ``ang_sep`` column (deg, distance from the centre) is added.
    table : str
        Archive table, e.g. ``"gaiadr3.gaia_source"``.
    where : sequence of str
        Further ADQL conditions, each ANDed in parentheses (e.g. the
        proper-motion and parallax windows of ``ocnb.membership.cone_adql``).

    Returns
    -------
    str
        The query; rows ordered by ``source_id`` so that results are stable.

    Raises
    ------
    ValueError
        An argument out of range (the message names it), a column/table
        name that is not a plain identifier, or a condition that is not a
        non-empty single-statement string.
    """
    ra, dec, radius_deg, g_max = _check_cone(ra, dec, radius_deg, g_max)
    where = _check_where(where)
    if not isinstance(table, str) or not _TABLE.match(table):
        raise ValueError(f"table must look like 'schema.table', got {table!r}")
    cols = _check_columns(columns)
    centre = f"POINT({_num(ra)}, {_num(dec)})"
    lines = [
        "SELECT " + ", ".join(cols) + ",",
        f"       DISTANCE(POINT(ra, dec), {centre}) AS ang_sep",
        f"FROM {table}",
        f"WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE({_num(ra)}, {_num(dec)}, {_num(radius_deg)}))",
    ]
    if g_max is not None:
        lines.append(f"  AND phot_g_mean_mag < {_num(g_max)}")
    lines += [f"  AND ({cond})" for cond in where]
    lines.append("ORDER BY source_id")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# conversion to the canonical schema
# ---------------------------------------------------------------------------
def _float(frame: pd.DataFrame, col: str) -> np.ndarray:
    if col not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _mag_error_from_foe(flux_over_error: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        err = MAG_PER_REL_FLUX / flux_over_error
    return np.where(np.isfinite(err) & (flux_over_error > 0), err, np.nan)


def _assemble(frame: pd.DataFrame, source: pd.DataFrame, extras: dict[str, str]) -> pd.DataFrame:
    """Order the canonical columns first, then ``extras`` (new name -> source column)."""
    out = frame[list(CANONICAL_COLUMNS)].copy()
    for new, old in extras.items():
        if old in source and new not in out:
            col = source[old]
            out[new] = col.astype(float) if col.dtype.kind == "f" else col
    return out.reset_index(drop=True)


def _gaia_to_canonical(raw: pd.DataFrame, cluster: str) -> pd.DataFrame:
    """Gaia archive rows -> canonical schema (magnitude errors added)."""
    raw = raw.rename(columns=str.lower)
    missing = [c for c in ("source_id", "ra", "dec") if c not in raw]
    if missing:
        raise RuntimeError(
            f"the Gaia archive answer lacks the column(s) {missing}; its columns are {list(raw.columns)}"
        )
    out = pd.DataFrame(index=raw.index)
    out["source_id"] = raw["source_id"].astype("int64")
    out["cluster"] = cluster
    for col in CANONICAL_COLUMNS:
        if col not in out:
            # columns not requested (and 2MASS/WISE ones) are NaN, ph_qual None
            out[col] = None if col in _TEXT_COLUMNS else _float(raw, col)
    for b in _BANDS:
        out[f"phot_{b}_mean_mag_error"] = _mag_error_from_foe(_float(raw, f"phot_{b}_mean_flux_over_error"))
    # A cone is not a membership list: no probability is known.
    out["membership_probability"] = np.nan
    kept = [c for c in raw.columns if c not in CANONICAL_COLUMNS and not c.endswith("_flux_over_error")]
    return _assemble(out, raw, {c: c for c in kept})


# VizieR labels of J/A+A/673/A114/members -> canonical names. Where VizieR's
# label may differ from the ReadMe's (positions) both spellings are listed.
_HR23_NAMES = {
    "source_id": ("GaiaDR3",),
    "cluster": ("Name",),
    "ra": ("RA_ICRS", "RAdeg"),
    "dec": ("DE_ICRS", "DEdeg"),
    "parallax": ("Plx",),
    "parallax_error": ("e_Plx",),
    "pmra": ("pmRA",),
    "pmra_error": ("e_pmRA",),
    "pmdec": ("pmDE",),
    "pmdec_error": ("e_pmDE",),
    "parallax_pmra_corr": ("PlxpmRACor",),
    "parallax_pmdec_corr": ("PlxpmDECor",),
    "pmra_pmdec_corr": ("pmRApmDECor",),
    "ruwe": ("RUWE",),
    "phot_g_mean_mag": ("Gmag",),
    "phot_bp_mean_mag": ("BPmag",),
    "phot_rp_mean_mag": ("RPmag",),
    "membership_probability": ("Prob",),
}
_HR23_REQUIRED = ("source_id", "cluster", "ra", "dec", "parallax", "pmra", "pmdec", "membership_probability")
_HR23_FLUX = {"g": ("FG", "e_FG"), "bp": ("FBP", "e_FBP"), "rp": ("FRP", "e_FRP")}
# Extra HR23 columns kept after the canonical ones (new name -> VizieR label).
_HR23_EXTRAS = {
    "ra_error": ("e_RA_ICRS", "e_RAdeg"),
    "dec_error": ("e_DE_ICRS", "e_DEdeg"),
    "bp_rp": ("BP-RP",),
    "astrometric_params_solved": ("Solved",),
    "radial_velocity": ("RV",),
    "radial_velocity_error": ("e_RV",),
    "in_jacobi_radius": ("inrj",),
    "in_tidal_radius": ("inrt",),
}


def _first(frame: pd.DataFrame, labels: Sequence[str]) -> str | None:
    return next((lab for lab in labels if lab in frame), None)


def _hr23_to_canonical(raw: pd.DataFrame) -> pd.DataFrame:
    """VizieR J/A+A/673/A114/members rows -> canonical schema.

    HR23 publish only 3 of the 10 astrometric correlations
    (parallax-pmra, parallax-pmdec, pmra-pmdec); the other 7 are NaN.
    Magnitude errors come from the flux errors, 1.0857 e_F / F (mag).
    """
    found = {canon: _first(raw, labels) for canon, labels in _HR23_NAMES.items()}
    missing = [f"{c} ({'/'.join(_HR23_NAMES[c])})" for c in _HR23_REQUIRED if found[c] is None]
    if missing:
        raise RuntimeError(
            f"the VizieR answer for {HR23_MEMBERS_TABLE} lacks {', '.join(missing)}; its columns are "
            f"{list(raw.columns)} (has the table layout changed?)"
        )
    out = pd.DataFrame(index=raw.index)
    out["source_id"] = pd.to_numeric(raw[found["source_id"]]).astype("int64")
    out["cluster"] = raw[found["cluster"]].astype(str).str.strip()
    for canon in CANONICAL_COLUMNS:
        if canon in out:
            continue
        label = found.get(canon)
        if canon in _TEXT_COLUMNS:
            out[canon] = None  # ph_qual: HR23 carry no 2MASS data
        else:
            out[canon] = _float(raw, label) if label else np.nan
    for b, (flux, flux_err) in _HR23_FLUX.items():
        with np.errstate(divide="ignore", invalid="ignore"):
            foe = _float(raw, flux) / _float(raw, flux_err)
        out[f"phot_{b}_mean_mag_error"] = _mag_error_from_foe(foe)
    extras = {new: lab for new, labels in _HR23_EXTRAS.items() if (lab := _first(raw, labels))}
    out = _assemble(out, raw, extras)
    for col in ("in_jacobi_radius", "in_tidal_radius"):
        if col in out:
            out[col] = pd.to_numeric(out[col], errors="coerce").fillna(0).astype(bool)
    return out


# ---------------------------------------------------------------------------
# network helpers
# ---------------------------------------------------------------------------
# OSError covers socket/DNS/timeout errors and requests' exceptions
# (RequestException derives from IOError); http.client errors cover dropped
# connections inside astroquery's TAP client.
_NETWORK_ERRORS = (OSError, http.client.HTTPException)


def _unreachable(service: str, err: BaseException) -> ConnectionError:
    return ConnectionError(
        f"the {service} could not be reached or did not answer ({type(err).__name__}: {err}). {_OFFLINE_HINT}"
    )


def _digest(text: str, n: int = 16) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _safe_key(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", text)


def _display_name(name: str) -> str:
    """HR23 spelling as ocnb writes it: underscores as spaces ("NGC 2682")."""
    return re.sub(r"[\s_]+", " ", name).strip()


def _resolve_name(name: str) -> str:
    """ocnb's canonical name of a cluster (resolves "M67" -> "NGC 2682").

    Uses ``ocnb.datasets.names.resolve_cluster_name`` when it is available; a
    name it does not know (HR23 also lists moving groups and globulars that
    the shipped catalogues leave out) is kept as typed, in display form.
    """
    try:
        from .names import resolve_cluster_name
    except ImportError:
        return _display_name(name)
    try:
        return resolve_cluster_name(name)
    except OcnbError:
        return _display_name(name)


def _squash(name: str) -> str:
    return re.sub(r"[\s_]+", "", str(name)).casefold()


def _positive(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _tidal_radius(row: pd.Series) -> float | None:
    """HR23 tidal radius ``rt`` (deg) of a ``load_clusters()`` row.

    Taken from the row if it has ``rt``, else from the full HR23 catalogue
    (``load_catalog("HUNT2023")``), else 3 x ``r50`` (HR23's median rt/r50 is
    2.8): a cone of the half-number radius alone would miss most members.
    """
    radius = _positive(row.get("rt"))
    if radius is None:
        try:
            from . import load_catalog

            hr = load_catalog("HUNT2023")
            match = hr.loc[hr["name"] == row["name"], "rt"]
            radius = _positive(match.iloc[0]) if len(match) else None
        except (ImportError, KeyError, OcnbError):
            radius = None
    if radius is None and _positive(row.get("r50")) is not None:
        radius = 3.0 * float(row["r50"])
    return radius


def _cluster_cone(name: str) -> tuple[str, float, float, float]:
    """Canonical name, centre (deg) and a search radius (deg) of a catalogued cluster."""
    try:
        from . import load_clusters
    except ImportError as err:
        raise RuntimeError(
            "resolving a cluster name needs ocnb.datasets.load_clusters, which is not available "
            f"({err}); pass ra, dec and radius_deg (deg) instead"
        ) from err
    table = load_clusters()
    names = table["name"].astype(str)
    hit = table[names.map(_squash) == _squash(_resolve_name(name))]
    if hit.empty:
        close = difflib.get_close_matches(name, names.tolist(), n=5)
        raise UnknownClusterError(
            f"no cluster named {name!r} in ocnb.datasets.load_clusters(); close matches: {close}"
        )
    row = hit.iloc[0]
    radius = _tidal_radius(row)
    if radius is None:
        raise RuntimeError(
            f"load_clusters() gives no angular radius for {name!r} (looked for rt and r50, deg); "
            "pass radius_deg explicitly"
        )
    return str(row["name"]), float(row["ra"]), float(row["dec"]), min(radius, MAX_RADIUS_DEG)


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------
def gaia_cone_search(
    ra: float | str,
    dec: float | None = None,
    radius_deg: float | None = None,
    g_max: float | None = 18.0,
    columns: Sequence[str] = DEFAULT_COLUMNS,
    cache: bool = True,
    show_query: bool = True,
    where: Sequence[str] = (),
) -> pd.DataFrame:
    """Gaia DR3 sources in a cone, in the canonical member schema.

    Parameters
    ----------
    ra : float or str
        Cone centre right ascension, ICRS (deg) -- or a cluster name
        (``"M67"``, ``"NGC 2682"``) of ``ocnb.datasets.load_clusters()``, whose
        HR23 centre and tidal radius ``rt`` (deg; 3 x ``r50`` if unknown) are
        then used.
    dec : float
        Cone centre declination, ICRS (deg); not given with a cluster name.
    radius_deg : float
        Cone radius (deg); with a cluster name it overrides the catalogue radius.
    g_max : float or None
        Magnitude cut ``phot_g_mean_mag < g_max`` (mag); None for none.
    columns : sequence of str
        ``gaia_source`` columns to fetch; canonical columns not fetched are NaN.
    cache : bool
        Use and fill the cache ``data_home()/cache/gaia`` (key: hash of the
        ADQL). ``False`` always queries and stores nothing.
    show_query : bool
        Print the ADQL before running it.
    where : sequence of str
        Further ADQL conditions ANDed to the cone (see :func:`gaia_adql`).

    Returns
    -------
    pandas.DataFrame
        Canonical columns (``cluster`` is the cluster name or a ``cone(...)``
        label; ``membership_probability`` is NaN, a cone is not a member list;
        ``phot_*_mean_mag_error`` = 1.0857 / ``phot_*_mean_flux_over_error``,
        mag), then the other fetched columns and ``ang_sep`` (deg).

    Raises
    ------
    ValueError
        Out-of-range ``ra``, ``dec``, ``radius_deg`` or ``g_max``.
    ConnectionError
        The Gaia archive could not be reached; use ``ocnb.datasets.load_members``
        (shipped samples) offline.
    """
    if isinstance(ra, str):
        label, c_ra, c_dec, c_radius = _cluster_cone(ra)
        if dec is not None:
            raise ValueError("dec must not be given with a cluster name (the catalogue centre is used)")
        ra, dec = c_ra, c_dec
        radius_deg = c_radius if radius_deg is None else radius_deg
    else:
        if dec is None or radius_deg is None:
            raise ValueError("dec and radius_deg (deg) are required with a numeric ra")
        label = None
    adql = gaia_adql(ra, dec, radius_deg, g_max=g_max, columns=columns, where=where)
    if label is None:
        label = f"cone({_num(float(ra))},{_num(float(dec))},{_num(float(radius_deg))})"
    if show_query:
        print(adql)

    def _query() -> pd.DataFrame:
        from astroquery.gaia import Gaia  # heavy, and contacts the archive on import

        try:
            job = Gaia.launch_job_async(adql, dump_to_file=False)
            table = job.get_results()
        except _NETWORK_ERRORS as err:
            raise _unreachable("Gaia archive (gea.esac.esa.int)", err) from err
        return _gaia_to_canonical(table.to_pandas(), label)

    if not cache:
        return _query()
    key = f"cone-{_digest(adql)}.parquet"
    frame = Cache("gaia").fetch_frame(key, _query)
    # The cached table was made by a possibly different cluster label for the
    # same cone; report the one asked for now.
    frame["cluster"] = label
    return frame


def hunt2023_members(cluster: str, cache: bool = True) -> pd.DataFrame:
    """Hunt & Reffert (2023) members of one cluster, from VizieR.

    Queries ``J/A+A/673/A114/members`` with ``astroquery.vizier.Vizier``
    (all columns, ``row_limit=-1``, constraint ``Name=<cluster>``) and renames
    to the canonical schema. Assumed VizieR layout (from the catalogue ReadMe):
    ``Name`` (cluster, HR23 spelling with underscores: ``NGC_2682``),
    ``GaiaDR3`` (source_id), ``Prob`` (membership probability, 0-1),
    ``RA_ICRS``/``DE_ICRS`` (deg; ReadMe labels
    ``RAdeg``/``DEdeg`` also accepted), ``Plx``/``e_Plx`` (mas),
    ``pmRA``/``e_pmRA``/``pmDE``/``e_pmDE`` (mas/yr), ``PlxpmRACor``,
    ``PlxpmDECor``, ``pmRApmDECor``, ``RUWE``, ``Gmag``/``BPmag``/``RPmag``
    (mag) and the fluxes ``FG``/``e_FG``, ``FBP``/``e_FBP``, ``FRP``/``e_FRP``
    (e-/s). HR23 give only those 3 of the 10 correlations: the other 7 are
    NaN. Magnitude errors are 1.0857 e_F / F (mag).

    Parameters
    ----------
    cluster : str
        Any spelling ocnb resolves (``"M67"``, ``"NGC 2682"``, ``"NGC_2682"``;
        see ``ocnb.datasets.names.resolve_cluster_name``); sent to VizieR in
        HR23's spelling. Names the resolver does not know are sent as typed
        (spaces as underscores).
    cache : bool
        Use and fill the cache ``data_home()/cache/vizier``; ``False`` always
        queries and stores nothing.

    Returns
    -------
    pandas.DataFrame
        Canonical columns (``cluster`` in ocnb's spelling, ``"NGC 2682"``),
        then ``ra_error``, ``dec_error`` (mas), ``bp_rp``,
        ``astrometric_params_solved``, ``radial_velocity(_error)`` (km/s),
        ``in_jacobi_radius``, ``in_tidal_radius`` where VizieR gives them.

    Raises
    ------
    UnknownClusterError
        VizieR has no members under that name.
    ConnectionError
        VizieR could not be reached; use ``ocnb.datasets.load_members``
        (shipped samples) offline.
    """
    if not isinstance(cluster, str) or not cluster.strip():
        raise ValueError(f"cluster must be a non-empty cluster name such as 'NGC 2682', got {cluster!r}")
    canonical = _resolve_name(cluster.strip())
    name = canonical.replace(" ", "_")  # VizieR's HR23 names use underscores

    def _query() -> pd.DataFrame:
        from astroquery.vizier import Vizier

        # row_limit=-1: no truncation (VizieR's default is 50 rows); "**": all
        # columns, not only VizieR's default selection.
        viz = Vizier(columns=["**"], row_limit=-1)
        try:
            # cache=False: ocnb caches the converted table; a second copy in
            # astroquery's own cache would hide corrupt-cache refetches.
            result = viz.query_constraints(catalog=HR23_MEMBERS_TABLE, Name=name, cache=False)
        except _NETWORK_ERRORS as err:
            raise _unreachable("VizieR service (vizier.cds.unistra.fr)", err) from err
        # A TableList iterates over tables, so look the names up explicitly.
        keys = list(result.keys()) if result is not None else []
        table = next((result[k] for k in keys if k.endswith(HR23_MEMBERS_TABLE)), None)
        raw = table.to_pandas() if table is not None else pd.DataFrame()
        if not raw.empty and "Name" in raw:
            # VizieR string constraints can match loosely; keep exact names only.
            raw = raw[raw["Name"].astype(str).str.strip() == name]
        if raw.empty:
            raise UnknownClusterError(
                f"VizieR {HR23_MEMBERS_TABLE} has no members for cluster {name!r} (asked as {cluster!r}); "
                "HR23 names look like 'NGC_2682', 'Melotte_22', 'Blanco_1' (ocnb.datasets.load_clusters())"
            )
        out = _hr23_to_canonical(raw)
        out["cluster"] = canonical
        return out

    if not cache:
        return _query()
    key = f"hr23-members-{_safe_key(name)}-{_digest(HR23_MEMBERS_TABLE + '|' + name, 8)}.parquet"
    frame = Cache("vizier").fetch_frame(key, _query)
    frame["cluster"] = canonical  # the resolver's spelling may differ from the one cached
    return frame
