"""Open-cluster parameter catalogues (cluster-level tables).

All tables are the published VizieR tables as vendored by the Unified Cluster
Catalogue repository (see ``ocnb.datasets.provenance(name)``). Ages are
log10(age/yr) everywhere except DONOR2020 (``Age`` in Gyr).
"""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd

from . import _registry
from .names import NAME_SOURCES, canonical_names, normalize_name, resolve_cluster_name

__all__ = [
    "CATALOGS",
    "available_catalogs",
    "load_catalog",
    "load_clusters",
    "literature_parameters",
    "literature_scatter",
    "LITERATURE_COLUMNS",
]

CATALOGS = {
    k: NAME_SOURCES[k]
    for k in (
        "HUNT2023",
        "HUNT2024",
        "CAVALLO2024",
        "CANTAT2020",
        "CANTAT_ANDERS2020",
        "DIAS2021",
        "SPINA2022",
        "DONOR2020",
        "MALHOTRA2026",
        "TARRICQ2022",
    )
}
_ALIASES = {
    "HR23": "HUNT2023",
    "HR24": "HUNT2024",
    "CG20": "CANTAT2020",
    "CGA20": "CANTAT_ANDERS2020",
    "CANTAT_GAUDIN2020": "CANTAT2020",
    "DONOR2020_OCCAM": "DONOR2020",
    "OCCAM_IV": "DONOR2020",
    "T22": "TARRICQ2022",
    "D21": "DIAS2021",
    "CAVALLO2023": "CAVALLO2024",
}

LITERATURE_COLUMNS = [
    "catalog",
    "log_age",
    "log_age_err",
    "feh",
    "feh_err",
    "a_v",
    "a_v_err",
    "dist_mod",
    "dist_mod_err",
    "distance_pc",
    "name_in_catalog",
]


def available_catalogs() -> list[str]:
    """Names accepted by :func:`load_catalog`."""
    return list(CATALOGS)


def _catalog_id(name: str) -> str:
    key = str(name).strip().upper().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key)
    if key not in CATALOGS:
        close = difflib.get_close_matches(key, list(CATALOGS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown catalogue {name!r}{hint}; available: {', '.join(CATALOGS)}")
    return key


def load_catalog(name: str, data_dir=None) -> pd.DataFrame:
    """One cluster catalogue with its own (VizieR) columns plus a canonical ``name``.

    Parameters
    ----------
    name : str
        Case-insensitive: ``"HUNT2023"``, ``"HUNT2024"``, ``"CAVALLO2024"``,
        ``"CANTAT2020"``, ``"CANTAT_ANDERS2020"``, ``"DIAS2021"``,
        ``"SPINA2022"``, ``"DONOR2020"``, ``"MALHOTRA2026"``,
        ``"TARRICQ2022"`` (short forms HR23, CG20, ... also work).

    Returns
    -------
    DataFrame
        ``name`` (canonical, see :func:`resolve_cluster_name`) first, then the
        catalogue's columns; units in ``ocnb.datasets.provenance(name)``.
        ``attrs``: ``catalog``, ``citation``, ``name_column``.

    Raises
    ------
    ValueError
        Unknown catalogue name.
    DataIntegrityError
        The shipped file fails its checksum.
    """
    cid = _catalog_id(name)
    file, col = CATALOGS[cid]
    df = _registry.read_parquet(file, data_dir=data_dir)
    # HR23 names are the canonical ones; the other catalogues' names are mapped onto them.
    names = df[col].tolist() if cid == "HUNT2023" else canonical_names(df[col].tolist(), data_dir=data_dir)
    df.insert(0, "name", pd.Series(names, index=df.index, dtype=object))
    rec = _registry.registry(data_dir)["datasets"][cid]
    df.attrs.update(catalog=cid, citation=rec["citation"], name_column=col)
    return df


def _half_width(lo, hi):
    return (np.asarray(hi, float) - np.asarray(lo, float)) / 2.0


def _dm_from_pc(d_pc):
    d = np.asarray(d_pc, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, 5.0 * np.log10(d) - 5.0, np.nan)


def _dm_err_from_pc(d_pc, e_pc):
    d = np.asarray(d_pc, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, 5.0 / np.log(10.0) * np.asarray(e_pc, float) / d, np.nan)


def _pc_from_dm(dm):
    return 10.0 ** (np.asarray(dm, float) / 5.0 + 1.0)


def load_clusters(data_dir=None) -> pd.DataFrame:
    """The Hunt & Reffert (2023) open clusters, standardised for maps.

    Returns
    -------
    DataFrame
        ``name``; ``ra, dec, l, b`` [deg]; ``distance_pc`` [pc] (HR23
        ``dist50``, from the parallax); ``dist_mod`` [mag] (HR23 ``MOD50``,
        photometric); ``log_age`` [log10 yr]; ``a_v`` [mag]; ``n_members``;
        ``x, y, z`` [kpc], heliocentric Galactic Cartesian (x towards the
        Galactic centre, y towards l = 90 deg, z towards the north Galactic
        pole, Sun at 0; computed from l, b, distance_pc);
        ``cmd_class`` (HR23 ``CMDCl50``, 0..1, > 0.5 = reliable CMD);
        extras ``parallax`` [mas], ``pmra, pmdec`` [mas/yr], ``r50`` [deg].
        6806 rows. Cite Hunt & Reffert 2023, A&A 673, A114.
    """
    hr = load_catalog("HUNT2023", data_dir=data_dir)
    d = hr["dist50"].to_numpy(float)
    l_rad, b_rad = np.radians(hr["GLON"].to_numpy(float)), np.radians(hr["GLAT"].to_numpy(float))
    out = pd.DataFrame(
        {
            "name": hr["name"],
            "ra": hr["RA_ICRS"],
            "dec": hr["DE_ICRS"],
            "l": hr["GLON"],
            "b": hr["GLAT"],
            "distance_pc": d,
            "dist_mod": hr["MOD50"],
            "log_age": hr["logAge50"],
            "a_v": hr["AV50"],
            "n_members": hr["N"].astype("int64"),
            "x": d * np.cos(b_rad) * np.cos(l_rad) / 1e3,
            "y": d * np.cos(b_rad) * np.sin(l_rad) / 1e3,
            "z": d * np.sin(b_rad) / 1e3,
            "cmd_class": hr["CMDCl50"],
            "parallax": hr["Plx"],
            "pmra": hr["pmRA"],
            "pmdec": hr["pmDE"],
            "r50": hr["r50"],
        }
    )
    out.attrs.update(
        catalog="HUNT2023",
        citation=hr.attrs["citation"],
        units={
            "ra": "deg",
            "dec": "deg",
            "l": "deg",
            "b": "deg",
            "distance_pc": "pc",
            "dist_mod": "mag",
            "log_age": "dex (log10 yr)",
            "a_v": "mag",
            "x": "kpc",
            "y": "kpc",
            "z": "kpc",
            "parallax": "mas",
            "pmra": "mas/yr",
            "pmdec": "mas/yr",
            "r50": "deg",
        },
    )
    return out


def _rows_for(df: pd.DataFrame, canonical: str, col: str) -> pd.DataFrame:
    rows = df[df["name"] == canonical]
    if len(rows) > 1:
        # Several rows mapped onto one cluster through aliases: prefer the row
        # spelled like the cluster itself.
        direct = rows[rows[col].map(normalize_name) == normalize_name(canonical)]
        rows = direct if len(direct) else rows
    return rows.iloc[:1]


def _extract(cid: str, r: pd.Series) -> dict:
    """Standard parameters of one catalogue row (NaN where the catalogue lacks them)."""
    nan = np.nan
    out = dict(
        log_age=nan,
        log_age_err=nan,
        feh=nan,
        feh_err=nan,
        a_v=nan,
        a_v_err=nan,
        dist_mod=nan,
        dist_mod_err=nan,
        distance_pc=nan,
    )
    g = lambda c: float(r[c]) if c in r.index and pd.notna(r[c]) else nan  # noqa: E731

    def percentiles(**stems) -> dict:
        # value = 50th percentile, error = half the 16-84 width
        res = {}
        for key, stem in stems.items():
            res[key] = g(f"{stem}50")
            res[f"{key}_err"] = float(_half_width(g(f"{stem}16"), g(f"{stem}84")))
        return res

    if cid in ("HUNT2023", "HUNT2024"):
        out.update(percentiles(log_age="logAge", a_v="AV", dist_mod="MOD"), distance_pc=g("dist50"))
    elif cid == "CAVALLO2024":
        out.update(percentiles(log_age="logAge", feh="[Fe/H]", a_v="AV", dist_mod="dMod"),
                   distance_pc=float(_pc_from_dm(g("dMod50"))))
    elif cid == "CANTAT2020":
        out.update(log_age=g("AgeNN"), a_v=g("AVNN"), dist_mod=g("DMNN"), distance_pc=g("DistPc"))
    elif cid == "CANTAT_ANDERS2020":
        d16, d84 = g("dmode16"), g("dmode84")
        out.update(
            distance_pc=g("dmode"),
            dist_mod=float(_dm_from_pc(g("dmode"))),
            dist_mod_err=float(_half_width(_dm_from_pc(d16), _dm_from_pc(d84))),
        )
    elif cid == "DIAS2021":
        out.update(
            log_age=g("logage"),
            log_age_err=g("e_logage"),
            feh=g("[Fe/H]"),
            feh_err=g("e_[Fe/H]"),
            a_v=g("Av"),
            a_v_err=g("e_Av"),
            distance_pc=g("Dist"),
            dist_mod=float(_dm_from_pc(g("Dist"))),
            dist_mod_err=float(_dm_err_from_pc(g("Dist"), g("e_Dist"))),
        )
    elif cid == "SPINA2022":
        out.update(feh=g("Fe"), feh_err=g("Fe_err"))
    elif cid == "DONOR2020":
        age = g("Age")
        out.update(feh=g("Fe/H"), feh_err=g("e_Fe/H"), log_age=float(np.log10(age * 1e9)) if age > 0 else nan)
    elif cid == "MALHOTRA2026":
        out.update(
            log_age=g("logAge"),
            feh=g("[Fe/H]"),
            a_v=g("AV"),
            distance_pc=g("D"),
            dist_mod=float(_dm_from_pc(g("D"))),
        )
    elif cid == "TARRICQ2022":
        out.update(log_age=g("logAgeNN"), distance_pc=g("Dist"), dist_mod=float(_dm_from_pc(g("Dist"))))
    return out


def literature_parameters(
    cluster: str, catalogs=("HUNT2023", "CAVALLO2024", "CANTAT2020", "DIAS2021"), data_dir=None
) -> pd.DataFrame:
    """Published age, metallicity, extinction and distance of one cluster.

    Parameters
    ----------
    cluster : str
        Any spelling or alias (``"M67"``, ``"NGC_2682"``, ``"Pleiades"``).
    catalogs : sequence of str
        Catalogues to look in; ``("SPINA2022", "DONOR2020")`` gives
        spectroscopic [Fe/H]. Also HUNT2024, CANTAT_ANDERS2020, MALHOTRA2026,
        TARRICQ2022.

    Returns
    -------
    DataFrame
        One row per catalogue that lists the cluster: ``catalog``,
        ``log_age`` [log10 yr], ``log_age_err``, ``feh`` [dex], ``feh_err``,
        ``a_v`` [mag], ``a_v_err``, ``dist_mod`` [mag], ``dist_mod_err``,
        ``distance_pc`` [pc], ``name_in_catalog``. NaN where a catalogue
        lacks a quantity. Errors: half the 16-84 percentile width where the
        catalogue gives percentiles (HUNT2023/2024, CAVALLO2024,
        CANTAT_ANDERS2020 distances), the catalogue's own ``e_`` columns for
        DIAS2021/SPINA2022/DONOR2020, NaN otherwise. Distances in pc are
        converted with dist_mod = 5 log10(d/pc) - 5 (error 5/ln10 * e_d/d);
        CAVALLO2024's distance_pc is 10**(dMod/5 + 1). HUNT dist_mod is the
        photometric MOD50 while distance_pc is the parallax distance dist50.
        DONOR2020's Age [Gyr] is converted to log10(yr).
        ``attrs["cluster"]`` holds the canonical name.

    Raises
    ------
    UnknownClusterError
        The name is unknown (close matches listed).
    """
    canonical = resolve_cluster_name(cluster, data_dir=data_dir)
    rows = []
    for cat in catalogs:
        cid = _catalog_id(cat)
        df = load_catalog(cid, data_dir=data_dir)
        hit = _rows_for(df, canonical, CATALOGS[cid][1])
        if hit.empty:
            continue
        r = hit.iloc[0]
        rows.append(dict(catalog=cid, **_extract(cid, r), name_in_catalog=str(r[CATALOGS[cid][1]])))
    out = pd.DataFrame(rows, columns=LITERATURE_COLUMNS)
    for c in LITERATURE_COLUMNS[1:-1]:
        out[c] = out[c].astype(float)
    out.attrs["cluster"] = canonical
    return out


def literature_scatter(catalogs=("HUNT2023", "CAVALLO2024", "CANTAT2020", "DIAS2021"), min_members: int = 100,
                       data_dir=None) -> pd.DataFrame:
    """How much published isochrone fits of the same clusters disagree: the scatter between catalogues.

    For every cluster listed by at least two of ``catalogs`` (matched by canonical name) and with at least
    ``min_members`` members in Hunt & Reffert (2023) (``N``; well-populated clusters, as fitted in practice),
    the standard deviation (ddof 1) of each parameter across the catalogues; then, per parameter, the median
    over clusters. It measures the systematic disagreement between methods fitting the same Gaia data with
    different isochrones, priors and member lists — the size of error any one more such fit carries.

    Parameters
    ----------
    catalogs : sequence of str
        At least two catalogues of :func:`literature_parameters`.
    min_members : int
        Keep clusters with HUNT2023 ``N`` ≥ this (0: every cluster, HUNT2023 or not).

    Returns
    -------
    DataFrame
        Index ``log_age`` [dex], ``feh`` [dex], ``a_v`` [mag], ``dist_mod`` [mag]; columns ``median_std``,
        ``n_clusters`` (clusters with ≥ 2 values), ``n_values`` (catalogue values used). ``attrs``: the
        ``catalogs`` and ``min_members``.

    Raises
    ------
    ValueError
        Fewer than two catalogues, or ``min_members`` not an integer ≥ 0.
    """
    ids = [_catalog_id(c) for c in catalogs]
    if len(set(ids)) < 2:
        raise ValueError(f"literature_scatter needs at least two different catalogues, got {list(catalogs)}")
    if isinstance(min_members, bool) or not isinstance(min_members, (int, np.integer)) or min_members < 0:
        raise ValueError(f"min_members must be an integer >= 0, got {min_members!r}")
    params = ["log_age", "feh", "a_v", "dist_mod"]
    frames = []
    for cid in dict.fromkeys(ids):
        df = load_catalog(cid, data_dir=data_dir)
        values = pd.DataFrame([_extract(cid, r) for _, r in df.iterrows()], index=df.index)[params]
        values["name"] = df["name"].to_numpy()
        frames.append(values.drop_duplicates("name"))
    values = pd.concat(frames, ignore_index=True)
    if min_members > 0:
        hunt = load_catalog("HUNT2023", data_dir=data_dir).drop_duplicates("name").set_index("name")["N"]
        values = values[values["name"].map(hunt).fillna(-1).to_numpy() >= min_members]
    rows = {}
    for p in params:
        by = values.dropna(subset=[p]).groupby("name")[p]
        n = by.count()
        std = by.std(ddof=1)[n >= 2]
        rows[p] = {"median_std": float(std.median()) if len(std) else float("nan"), "n_clusters": len(std),
                   "n_values": int(n[n >= 2].sum())}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.attrs.update(catalogs=list(dict.fromkeys(ids)), min_members=int(min_members))
    return out
