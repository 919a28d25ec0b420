"""Star-level cluster members and Gaia field samples in one canonical schema.

The canonical member schema uses Gaia archive column names (see
:data:`MEMBER_COLUMNS`); columns a source cannot fill are present and NaN
(``ph_qual`` is ``None``), so tables from different sources concatenate.

Sources
-------
``"iso"``
    Multi-band Gaia EDR3 + 2MASS + AllWISE members from KeyiDing/ISO_Open_Clusters
    (M67, Hyades, Praesepe, alpha Per, Blanco 1, Pleiades, and 15 clusters
    with LAMOST parameters). The upstream files have no proper motions; they
    are joined by ``source_id`` from the Gaia files below (DR3 cones first,
    then Almeida EDR3; DR3 and EDR3 astrometry are identical). Praesepe has no
    proper motions offline. ``ra, dec`` are the files' J2000 positions.
``"almeida"``
    Gaia EDR3 members with membership probabilities of 20 clusters
    (Almeida, Monteiro & Dias 2023); 3 of the 10 correlations.
``"dr3_cone"``
    Gaia DR3 cone + proper-motion-box files of M67 and the Pleiades with all
    10 correlations, reduced to members by the documented cuts in
    :data:`CONE_SELECTIONS`.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from ..errors import UnknownClusterError
from . import _registry
from .names import canonical_names, resolve_cluster_name

__all__ = [
    "MEMBER_COLUMNS",
    "CORR_COLUMNS",
    "MEMBER_SOURCES",
    "CONE_SELECTIONS",
    "load_members",
    "list_member_clusters",
    "load_field",
    "list_fields",
    "load_error_spline",
    "mag_error_from_flux_over_error",
]

CORR_COLUMNS = [
    "ra_dec_corr",
    "ra_parallax_corr",
    "ra_pmra_corr",
    "ra_pmdec_corr",
    "dec_parallax_corr",
    "dec_pmra_corr",
    "dec_pmdec_corr",
    "parallax_pmra_corr",
    "parallax_pmdec_corr",
    "pmra_pmdec_corr",
]
TWOMASS = ["j_m", "h_m", "ks_m", "j_msigcom", "h_msigcom", "ks_msigcom"]
WISE = ["w1mpro", "w2mpro", "w3mpro", "w4mpro", "w1sigmpro", "w2sigmpro", "w3sigmpro", "w4sigmpro"]
MEMBER_COLUMNS = (
    [
        "source_id",
        "cluster",
        "ra",
        "dec",
        "parallax",
        "parallax_error",
        "pmra",
        "pmra_error",
        "pmdec",
        "pmdec_error",
    ]
    + CORR_COLUMNS
    + [
        "ruwe",
        "phot_g_mean_mag",
        "phot_bp_mean_mag",
        "phot_rp_mean_mag",
        "phot_g_mean_mag_error",
        "phot_bp_mean_mag_error",
        "phot_rp_mean_mag_error",
    ]
    + TWOMASS
    + ["ph_qual"]
    + WISE
    + ["membership_probability"]
)
"""Canonical member columns, in order. Units: ra, dec [deg]; parallax [mas];
pm [mas/yr]; magnitudes and their errors [mag, Vega]; 2MASS j_m, h_m, ks_m
and AllWISE w*mpro [mag, Vega]; ph_qual = 2MASS quality letters (J, H, K)."""

MEMBER_SOURCES = ("iso", "almeida", "dr3_cone")

MAG_ERR_COEF = 2.5 / np.log(10.0)  # 1.0857: sigma_mag = 1.0857 * sigma_flux / flux

_ISO_NEARBY = "members/iso_nearby_members.parquet"
_ISO_DISTANT = "members/iso_distant_lamost.parquet"
_ALMEIDA = "members/almeida_edr3_20clusters.parquet"
_CONES = {
    "NGC 2682": ("members/m67_dr3_cone_pmbox.parquet", "M67_DR3_CONE"),
    "Melotte 22": ("members/pleiades_dr3_cone_pmbox.parquet", "PLEIADES_DR3_CONE"),
}

CONE_SELECTIONS = {
    # M67: the selection of /work/shared/notes/checks.md -> 1188 of 1494 rows.
    "NGC 2682": dict(parallax=1.13, max_dparallax=0.15, pmra=-10.97, pmdec=-2.94, max_dpm=0.8, max_ruwe=1.4),
    # Pleiades, chosen the same way from this file's own distributions (median parallax 7.355 mas, median PM
    # (19.87, -45.38) mas/yr): the parallax window covers the cluster depth (~0.25 mas) plus errors; 3 mas/yr
    # (1.9 km/s at 136 pc) encloses ~95% of the Almeida EDR3 members' PM scatter -> 826 of 1110 rows,
    # 786 of which are Almeida members.
    "Melotte 22": dict(parallax=7.35, max_dparallax=0.5, pmra=19.9, pmdec=-45.4, max_dpm=3.0, max_ruwe=1.4),
}
"""Membership cuts applied to the DR3 cone + PM-box files: |parallax - parallax0|
< max_dparallax [mas], distance from (pmra0, pmdec0) < max_dpm [mas/yr], ruwe < max_ruwe."""

_ISO_FLAGS = ["in_input", "in_nonbinary", "in_binary_rejected", "in_sample"]
_ISO_SUBSETS = {
    "input": "in_input",
    "nonbinary": "in_nonbinary",
    "binary_rejected": "in_binary_rejected",
    "sample": "in_sample",
}


def mag_error_from_flux_over_error(flux_over_error) -> np.ndarray:
    """Magnitude error [mag] = 1.0857 / (flux / flux_error); NaN where not positive.

    This is the formal (photon-noise) error; it omits the Gaia zero-point
    uncertainty (a few mmag), which matters only for the brightest stars.
    """
    foe = np.asarray(flux_over_error, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(foe > 0, MAG_ERR_COEF / foe, np.nan)


def _root(data_dir) -> str:
    return str(_registry.package_data_dir(data_dir))


def _citation(dataset: str, root: str) -> str:
    return _registry.registry(root)["datasets"][dataset]["citation"]


def finish_member_table(df: pd.DataFrame) -> pd.DataFrame:
    """Add missing canonical columns (NaN / None), order them first, fix dtypes (every member-table maker uses it)."""
    for c in MEMBER_COLUMNS:
        if c not in df.columns:
            df[c] = None if c in ("ph_qual", "cluster") else np.nan
    df["source_id"] = df["source_id"].astype("int64")
    df["ph_qual"] = df["ph_qual"].astype(object).where(df["ph_qual"].notna(), None)
    for c in MEMBER_COLUMNS:
        if c not in ("source_id", "cluster", "ph_qual"):
            df[c] = df[c].astype("float64")
    extras = [c for c in df.columns if c not in MEMBER_COLUMNS]
    return df[MEMBER_COLUMNS + extras].reset_index(drop=True)


# ---------------------------------------------------------------------------
# per-source readers
# ---------------------------------------------------------------------------
def _cone_frame(canonical: str, root: str) -> pd.DataFrame:
    """A DR3 cone file in Gaia names + mag errors + ``selected`` flag (all rows)."""
    file, _ = _CONES[canonical]
    raw = _registry.read_parquet(file, data_dir=root)
    sel = CONE_SELECTIONS[canonical]
    selected = (
        ((raw["parallax"] - sel["parallax"]).abs() < sel["max_dparallax"])
        & (np.hypot(raw["pmra"] - sel["pmra"], raw["pmdec"] - sel["pmdec"]) < sel["max_dpm"])
        & (raw["ruwe"] < sel["max_ruwe"])
    )
    out = raw.copy()
    for band in ("g", "bp", "rp"):
        out[f"phot_{band}_mean_mag_error"] = mag_error_from_flux_over_error(
            out[f"phot_{band}_mean_flux_over_error"]
        )
    out["selected"] = selected.to_numpy()
    return out


def _from_cone(canonical: str, root: str, selection: bool) -> pd.DataFrame:
    df = _cone_frame(canonical, root)
    if selection:
        df = df[df["selected"]].drop(columns="selected")
    df.insert(1, "cluster", canonical)
    df["membership_probability"] = np.nan
    df = finish_member_table(df)
    file, ds = _CONES[canonical]
    df.attrs.update(
        release="DR3",
        source="dr3_cone",
        citation=_citation(ds, root),
        file=file,
        selection=(CONE_SELECTIONS[canonical] if selection else None),
        notes="Gaia DR3 cone + proper-motion box; members by the cuts in attrs['selection'] "
        "(selection=False returns every row with a 'selected' column). No 2MASS/WISE (NaN). "
        "Magnitude errors from flux_over_error (1.0857/foe).",
    )
    return df


def _almeida_all(root: str) -> pd.DataFrame:
    raw = _registry.read_parquet(_ALMEIDA, data_dir=root)
    raw["cluster"] = canonical_names(raw["cluster"].astype(str).tolist(), data_dir=root)
    return raw


def _from_almeida(canonical: str, root: str) -> pd.DataFrame:
    raw = _almeida_all(root)
    raw = raw[raw["cluster"] == canonical]
    df = pd.DataFrame(
        {
            "source_id": raw["Source"].astype("int64"),
            "cluster": canonical,
            "ra": raw["RA_ICRS"],
            "dec": raw["DE_ICRS"],
            "parallax": raw["Plx"],
            "parallax_error": raw["e_Plx"],
            "pmra": raw["pmRA"],
            "pmra_error": raw["e_pmRA"],
            "pmdec": raw["pmDE"],
            "pmdec_error": raw["e_pmDE"],
            "parallax_pmra_corr": raw["PlxpmRAcor"],
            "parallax_pmdec_corr": raw["PlxpmDEcor"],
            "pmra_pmdec_corr": raw["pmRApmDEcor"],
            "ruwe": raw["RUWE"],
            "phot_g_mean_mag": raw["Gmag"],
            "phot_bp_mean_mag": raw["BPmag"],
            "phot_rp_mean_mag": raw["RPmag"],
            "phot_g_mean_mag_error": raw["e_Gmag"],
            "phot_bp_mean_mag_error": raw["e_BPmag"],
            "phot_rp_mean_mag_error": raw["e_RPmag"],
            "membership_probability": raw["Pmemb"],
            # extras
            "ra_error": raw["e_RA_ICRS"],
            "dec_error": raw["e_DE_ICRS"],
            "visibility_periods_used": raw["Nper"],
            "phot_g_mean_flux_over_error": raw["RFG"],
            "phot_bp_mean_flux_over_error": raw["RFBP"],
            "phot_rp_mean_flux_over_error": raw["RFRP"],
            "phot_bp_rp_excess_factor": raw["EBPRP"],
            "dr2_radial_velocity": raw["RVDR2"],
            "dr2_radial_velocity_error": raw["e_RVDR2"],
            "mass": raw["mass"],
            "mass_error": raw["er_mass"],
            "companion_mass": raw["comp_mass"],
            "companion_mass_error": raw["er_comp_mass"],
        }
    )
    df = finish_member_table(df)
    df.attrs.update(
        release="EDR3",
        source="almeida",
        citation=_citation("ALMEIDA2023_EDR3", root),
        file=_ALMEIDA,
        notes="Gaia EDR3 members (Pmemb >= 0.51). Only 3 of the 10 correlations (parallax_pmra, "
        "parallax_pmdec, pmra_pmdec); others NaN. Magnitude errors are the VizieR I/350 e_*mag. "
        "mass/companion_mass [Msun] are the author's photometric estimates. No 2MASS/WISE (NaN).",
    )
    return df


@functools.lru_cache(maxsize=4)
def _astrometry_lookup(root: str) -> pd.DataFrame:
    """Proper motions, correlations and BP/RP errors by source_id from the Gaia member files."""
    parts = []
    for canonical in _CONES:
        c = _cone_frame(canonical, root)
        c = c[
            [
                "source_id",
                "pmra",
                "pmra_error",
                "pmdec",
                "pmdec_error",
                *CORR_COLUMNS,
                "phot_bp_mean_mag_error",
                "phot_rp_mean_mag_error",
            ]
        ].copy()
        c["astrometry_origin"] = f"Gaia DR3 ({_CONES[canonical][1]})"
        parts.append(c)
    a = _registry.read_parquet(_ALMEIDA, data_dir=root)
    alm = pd.DataFrame(
        {
            "source_id": a["Source"].astype("int64"),
            "pmra": a["pmRA"],
            "pmra_error": a["e_pmRA"],
            "pmdec": a["pmDE"],
            "pmdec_error": a["e_pmDE"],
            "parallax_pmra_corr": a["PlxpmRAcor"],
            "parallax_pmdec_corr": a["PlxpmDEcor"],
            "pmra_pmdec_corr": a["pmRApmDEcor"],
            "phot_bp_mean_mag_error": a["e_BPmag"],
            "phot_rp_mean_mag_error": a["e_RPmag"],
            "astrometry_origin": "Gaia EDR3 (ALMEIDA2023_EDR3)",
        }
    )
    parts.append(alm)
    look = pd.concat(parts, ignore_index=True).drop_duplicates("source_id", keep="first")
    return look.set_index("source_id")


@functools.lru_cache(maxsize=4)
def _iso_tables(root: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    near = _registry.read_parquet(_ISO_NEARBY, data_dir=root)
    far = _registry.read_parquet(_ISO_DISTANT, data_dir=root)
    near["canonical"] = canonical_names(near["Cluster"].tolist(), data_dir=root)
    far["canonical"] = canonical_names(far["Cluster"].tolist(), data_dir=root)
    return near, far


def _from_iso(canonical: str, root: str, subset: str | None) -> pd.DataFrame:
    near, far = _iso_tables(root)
    rows = near[near["canonical"] == canonical]
    file, ds = _ISO_NEARBY, "ISO_NEARBY"
    lamost_cols = [c for c in far.columns if c.startswith(("lrs_", "mrs_"))] + ["in_lrs", "in_mrs"]
    if len(rows):
        if subset is not None:
            if subset not in _ISO_SUBSETS:
                raise ValueError(f"subset must be one of {sorted(_ISO_SUBSETS)} or None, got {subset!r}")
            rows = rows[rows[_ISO_SUBSETS[subset]]]
        # LAMOST parameters of the same stars (only M67 overlaps the distant files).
        lam = far[far["canonical"] == canonical][["dr3_source_id"] + lamost_cols]
        rows = rows.merge(lam, on="dr3_source_id", how="left")
        rows[["in_lrs", "in_mrs"]] = rows[["in_lrs", "in_mrs"]].fillna(False).astype(bool)
    else:
        if subset is not None:
            raise ValueError(f"subset={subset!r} applies to the nearby ISO clusters only, not {canonical!r}")
        rows = far[far["canonical"] == canonical].copy()
        file, ds = _ISO_DISTANT, "ISO_DISTANT_LAMOST"
        for f in _ISO_FLAGS:
            rows[f] = False
    flux, eflux = rows["phot_g_mean_flux"].to_numpy(float), rows["phot_g_mean_flux_error"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        g_err = np.where(flux > 0, MAG_ERR_COEF * eflux / flux, np.nan)
    df = pd.DataFrame(
        {
            "source_id": rows["dr3_source_id"].astype("int64"),
            "cluster": canonical,
            "ra": rows["ra2000"],
            "dec": rows["dec2000"],
            "parallax": rows["parallax"],
            "parallax_error": rows["parallax_error"],
            "ruwe": rows["ruwe"],
            "phot_g_mean_mag": rows["gmag_edr3"],
            "phot_bp_mean_mag": rows["bpmag_edr3"],
            "phot_rp_mean_mag": rows["rpmag_edr3"],
            "phot_g_mean_mag_error": g_err,
            "j_m": rows["j_m"],
            "h_m": rows["h_m"],
            "ks_m": rows["k_m"],
            "j_msigcom": rows["j_msigcom"],
            "h_msigcom": rows["h_msigcom"],
            "ks_msigcom": rows["k_msigcom"],
            "ph_qual": rows["ph_qual_2MASS"],
            **{c: rows[c] for c in WISE},
            "membership_probability": np.nan,
            # extras
            "dr2_source_id": rows["dr2_source_id"],
            "twomass_id": rows["twomass_id"],
            "allwise_id": rows["allwise_id"],
            "wise_ph_qual": rows["ph_qual_WISE"],
            "wise_cc_flags": rows["cc_flags_WISE"],
            "phot_g_mean_flux": rows["phot_g_mean_flux"],
            "phot_g_mean_flux_error": rows["phot_g_mean_flux_error"],
            "dr2_bp_flux_over_error": rows["dr2_bp_flux_over_error"],
            "dr2_rp_flux_over_error": rows["dr2_rp_flux_over_error"],
            **{c: rows[c].astype(bool) for c in _ISO_FLAGS},
            **{c: rows[c] for c in lamost_cols},
        }
    )
    look = _astrometry_lookup(root)
    joined = look.reindex(df["source_id"].to_numpy())
    for c in look.columns:
        df[c] = joined[c].to_numpy()
    df["astrometry_origin"] = df["astrometry_origin"].fillna("none")
    df = finish_member_table(df)
    n_pm = int(df["pmra"].notna().sum())
    df.attrs.update(
        release="EDR3",
        source="iso",
        citation=_citation(ds, root),
        file=file,
        subset=subset,
        ra_dec_epoch="J2000 (ISO ra2000/dec2000)",
        notes=(
            f"Gaia EDR3 mags/parallax + 2MASS + AllWISE. Proper motions, correlations and BP/RP errors "
            f"joined by "
            f"source_id from the Gaia DR3 cone / Almeida EDR3 files for {n_pm} of {len(df)} stars "
            f"(column astrometry_origin; NaN elsewhere, e.g. all of Praesepe). G error from the G flux; "
            f"membership_probability NaN (published member lists). LAMOST LRS/MRS parameters in lrs_*/mrs_*."
        ),
    )
    return df


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _member_index(root: str) -> dict[str, dict[str, int]]:
    """canonical cluster -> {source: number of stars}."""
    idx: dict[str, dict[str, int]] = {}
    near, far = _iso_tables(root)
    for name, n in near["canonical"].value_counts().items():
        idx.setdefault(name, {})["iso"] = int(n)
    for name, n in far["canonical"].value_counts().items():
        idx.setdefault(name, {}).setdefault("iso", int(n))
    for name, n in _almeida_all(root)["cluster"].value_counts().items():
        idx.setdefault(name, {})["almeida"] = int(n)
    for name in _CONES:
        idx.setdefault(name, {})["dr3_cone"] = int(_cone_frame(name, root)["selected"].sum())
    return idx


def load_members(
    cluster: str, source: str = "auto", subset: str | None = None, selection: bool = True, data_dir=None
) -> pd.DataFrame:
    """Members of one cluster in the canonical member schema.

    Parameters
    ----------
    cluster : str
        Any spelling or alias (``"M67"``, ``"Pleiades"``, ``"NGC_752"``).
    source : {"auto", "iso", "almeida", "dr3_cone"}
        ``"auto"``: multi-band ``"iso"`` where available, else ``"almeida"``,
        else ``"dr3_cone"``.
    subset : {None, "input", "nonbinary", "binary_rejected", "sample"}
        ``"iso"`` nearby clusters only: restrict to the stars of one upstream
        file family (flags ``in_*`` are always returned). M67 ``"input"`` =
        1518, ``"nonbinary"`` = 708.
    selection : bool
        ``"dr3_cone"`` only: apply :data:`CONE_SELECTIONS` (default) or return
        all rows with a boolean ``selected`` column.

    Returns
    -------
    DataFrame
        :data:`MEMBER_COLUMNS` first (NaN where the source lacks a quantity;
        ``cluster`` is the canonical name), then source-specific extras.
        ``attrs``: ``release`` ("DR3"/"EDR3"), ``source``, ``citation``,
        ``file``, ``notes``.

    Raises
    ------
    UnknownClusterError
        Unknown name, or no shipped member list for the cluster/source (the
        message lists what is available).
    ValueError
        Unknown ``source`` or ``subset``.
    DataIntegrityError
        A shipped file fails its checksum.
    """
    if source not in ("auto",) + MEMBER_SOURCES:
        raise ValueError(f"source must be one of {('auto',) + MEMBER_SOURCES}, got {source!r}")
    root = _root(data_dir)
    canonical = resolve_cluster_name(cluster, data_dir=root)
    have = _member_index(root).get(canonical, {})
    if not have:
        shipped = ", ".join(sorted(_member_index(root)))
        raise UnknownClusterError(
            f"no shipped member list for {canonical!r} (from {cluster!r}); shipped clusters: {shipped}. "
            "Other clusters: ocnb.datasets.hunt2023_members(name) (needs a network)."
        )
    if source == "auto":
        source = next(s for s in MEMBER_SOURCES if s in have)
    if source not in have:
        raise UnknownClusterError(f"{canonical!r} has no {source!r} member list; available: {sorted(have)}")
    if source == "iso":
        return _from_iso(canonical, root, subset)
    if subset is not None:
        raise ValueError("subset applies to source='iso' only")
    if source == "almeida":
        return _from_almeida(canonical, root)
    return _from_cone(canonical, root, selection)


_BANDS = {
    "iso": "Gaia EDR3 G/BP/RP + 2MASS JHKs + AllWISE W1-W4",
    "almeida": "Gaia EDR3 G/BP/RP",
    "dr3_cone": "Gaia DR3 G/BP/RP",
}


def list_member_clusters(data_dir=None) -> pd.DataFrame:
    """Which clusters have shipped member lists.

    Returns
    -------
    DataFrame
        ``cluster`` (canonical), ``source``, ``n_stars``, ``bands``,
        ``release``, ``n_with_pm`` (stars with proper motions), sorted by
        cluster and source preference.
    """
    root = _root(data_dir)
    near, far = _iso_tables(root)
    look = _astrometry_lookup(root)
    rows = []
    for name, have in _member_index(root).items():
        for src in MEMBER_SOURCES:
            if src not in have:
                continue
            if src == "iso":
                ids = near.loc[near["canonical"] == name, "dr3_source_id"]
                bands = _BANDS["iso"]
                if not len(ids):
                    ids = far.loc[far["canonical"] == name, "dr3_source_id"]
                    bands += " + LAMOST"
                n, n_pm = len(ids), int(ids.isin(look.index).sum())
            else:
                n = n_pm = have[src]
            rows.append(
                dict(
                    cluster=name,
                    source=src,
                    n_stars=int(n),
                    bands=_BANDS.get(src) if src != "iso" else bands,
                    release="DR3" if src == "dr3_cone" else "EDR3",
                    n_with_pm=int(n_pm),
                )
            )
    out = pd.DataFrame(rows)
    out["_o"] = out["source"].map({s: i for i, s in enumerate(MEMBER_SOURCES)})
    return out.sort_values(["cluster", "_o"]).drop(columns="_o").reset_index(drop=True)


# ---------------------------------------------------------------------------
# fields
# ---------------------------------------------------------------------------
_FIELDS = {
    "blanco1_dr2_cone": ("fields/blanco1_dr2_cone_g18.parquet", "BLANCO1_DR2_CONE", "DR2"),
    "field_dr3_cone": ("fields/field_dr3_ra45_dec0_r0p5deg.parquet", "FIELD_DR3_CONE", "DR3"),
    "random_dr2": ("fields/random_dr2_pyia.parquet", "PYIA_RANDOM", "DR2"),
    "random_edr3": ("fields/random_edr3_pyia.parquet", "PYIA_RANDOM", "EDR3"),
    "random_dr3": ("fields/random_dr3_pyia.parquet", "PYIA_RANDOM", "DR3"),
    "m67_dr3_cone": ("members/m67_dr3_cone_pmbox.parquet", "M67_DR3_CONE", "DR3"),
    "pleiades_dr3_cone": ("members/pleiades_dr3_cone_pmbox.parquet", "PLEIADES_DR3_CONE", "DR3"),
}
_FIELD_ALIASES = {
    "blanco1": "blanco1_dr2_cone",
    "blanco_1": "blanco1_dr2_cone",
    "blanco1_dr2_cone_g18": "blanco1_dr2_cone",
    "field_dr3": "field_dr3_cone",
    "dr3_field": "field_dr3_cone",
    "field_dr3_ra45_dec0_r0p5deg": "field_dr3_cone",
    "random_dr2_pyia": "random_dr2",
    "random_edr3_pyia": "random_edr3",
    "random_dr3_pyia": "random_dr3",
    "m67": "m67_dr3_cone",
    "pleiades": "pleiades_dr3_cone",
}


def list_fields() -> list[str]:
    """Names accepted by :func:`load_field`."""
    return list(_FIELDS)


def load_field(name: str, data_dir=None) -> pd.DataFrame:
    """A real Gaia sample with non-members: cluster fields and random draws.

    Parameters
    ----------
    name : str
        ``"blanco1_dr2_cone"`` (DR2, G < 18, 14785 stars around Blanco 1 with
        ``ocelot_label``: 0 = 262 stars of ocelot's clustering result, -1 =
        field), ``"field_dr3_cone"`` (complete DR3 cone at ra, dec = 45, 0,
        r = 0.5 deg, 2390 stars, no cluster), ``"random_dr2"``,
        ``"random_edr3"``, ``"random_dr3"`` (1000 random all-sky sources each,
        full 5x5 covariance), ``"m67_dr3_cone"``, ``"pleiades_dr3_cone"``
        (cone + PM box with a ``selected`` member flag).

    Returns
    -------
    DataFrame
        Gaia archive column names and units; ``phot_*_mean_mag_error``
        [mag] added from flux_over_error where absent. ``attrs``: ``release``,
        ``citation``, ``file``.
    """
    key = str(name).strip().lower().replace(" ", "_").replace("-", "_")
    key = _FIELD_ALIASES.get(key, key)
    if key not in _FIELDS:
        import difflib

        close = difflib.get_close_matches(key, list(_FIELDS) + list(_FIELD_ALIASES), n=3, cutoff=0.5)
        hint = f"; did you mean {close}?" if close else ""
        raise KeyError(f"unknown field sample {name!r}{hint}; available: {list(_FIELDS)}")
    file, ds, release = _FIELDS[key]
    root = _root(data_dir)
    if key in ("m67_dr3_cone", "pleiades_dr3_cone"):
        df = _cone_frame("NGC 2682" if key.startswith("m67") else "Melotte 22", root).reset_index(drop=True)
    else:
        df = _registry.read_parquet(file, data_dir=root)
        for band in ("g", "bp", "rp"):
            col = f"phot_{band}_mean_mag_error"
            if col not in df.columns and f"phot_{band}_mean_flux_over_error" in df.columns:
                df[col] = mag_error_from_flux_over_error(df[f"phot_{band}_mean_flux_over_error"])
    df.attrs.update(release=release, citation=_citation(ds, root), file=file, dataset=ds)
    return df


def load_error_spline(data_dir=None) -> pd.DataFrame:
    """Gaia EDR3 log10(magnitude error) vs magnitude spline (knots, coefficients) for G, BP, RP.

    Columns ``knots_G, coeff_G, knots_BP, coeff_BP, knots_RP, coeff_RP``
    (knots in mag). Cite Riello et al. 2021 (A&A 649, A3).
    """
    import io

    data = _registry.read_bytes("fields/gaia_edr3_logerr_vs_mag_spline.csv", data_dir=data_dir)
    df = pd.read_csv(io.BytesIO(data))
    df.attrs.update(citation=_citation("GAIA_EDR3_ERROR_SPLINE", _root(data_dir)))
    return df
