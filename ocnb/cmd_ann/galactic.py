"""Galactic positions of open clusters (Cavallo et al. 2024, Sects. 5.2-5.3, Figs. 14-15).

Distances come from the ANN's true distance modulus, d = 10**(dMod/5 + 1) pc.
The transform is astropy's :class:`~astropy.coordinates.Galactocentric` frame
with the "v4.0" parameter set (Sgr A* position of Reid & Brunthaler 2004,
solar height z_sun = 20.8 pc) and R0 = 8.122 kpc (GRAVITY Collaboration
2018), which reproduces the published catalogue exactly:

* ``Rgc`` of the shipped CAVALLO2024 table to <= 0.0005 kpc (the catalogue
  rounds to 1 pc; with the solar height ignored the difference grows to
  3.5 pc);
* its ``X, Y`` columns to 1e-12 kpc: X = x_GC + R0 (towards the Galactic
  centre), Y = y_GC (towards Galactic rotation), so X and Y are Sun-centred
  (the Sun is at X = 2.7e-5 kpc, Y = 0).

Here Z = z_GC, the height above the Galactic mid-plane (the Sun sits at
Z = +20.8 pc), which is what Fig. 15 histograms. The catalogue's ``Z`` column
is z_GC + 20.8 pc for every row (the solar height added where it should have
been subtracted, it seems); the difference is a constant offset of 0.0208 kpc.

The paper (Table 3) calls X, Y, Z "Galactocentric" while Fig. 14 puts the Sun at
the origin; the catalogue's convention above is the one used here.

Age bins of Figs. 14-15 are not given in the paper; :data:`AGE_BINS_MYR` is this
implementation's choice (listed with the others in notebook 01, "Where the paper is silent").
The paper's third Fig. 14 cut, "at least
3 members with absolute G < 3 mag", needs the HR23 member photometry, which is
not shipped for all clusters: pass per-cluster counts as ``bright_counts`` to
apply it, otherwise it is skipped (and ``attrs["cuts"]`` says so).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

__all__ = [
    "AGE_BINS_MYR",
    "AGE_BIN_LABELS",
    "R0_KPC",
    "Z_SUN_KPC",
    "age_bin_counts",
    "assign_age_bins",
    "catalog_key",
    "galactic_sample",
    "galactocentric",
    "hunt_cmd_class",
    "plot_xy_age_bins",
    "plot_z_histograms",
    "rgc_with_errors",
    "z_distribution",
]

#: Sun - Galactic centre distance [kpc] (GRAVITY Collaboration 2018), as in Cavallo et al. (2024).
R0_KPC = 8.122
#: Height of the Sun above the mid-plane [kpc] (astropy "v4.0" default, Bennett & Bovy 2019); it
#: reproduces the catalogue's ``Rgc`` and ``Z`` columns.
Z_SUN_KPC = 0.0208
#: Age-bin edges [Myr] for Figs. 14-15 (our choice: the paper does not list its bins).
AGE_BINS_MYR = (0.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, np.inf)
AGE_BIN_LABELS = ("< 100 Myr", "100-200 Myr", "200-500 Myr", "500-1000 Myr", "1-2 Gyr", "> 2 Gyr")


# ---------------------------------------------------------------------------
# column look-up shared with ocnb.cmd_ann.gradient
# ---------------------------------------------------------------------------
def _norm(col) -> str:
    return re.sub(r"[^a-z0-9]", "", str(col).lower())


_STEMS = {
    "log_age": ("logage", "lage"),
    "feh": ("feh", "mh"),
    "dmod": ("dmod", "distmod", "mod"),
    "av": ("av", "a_v"),
}
_SINGLE = {
    "ra": ("raicrs", "ra", "radeg"),
    "dec": ("deicrs", "dec", "dedeg", "decdeg"),
    "quality": ("quality", "qualityclass"),
    "cmd_class": ("cmdcl50", "cmdclass", "cmdclass50"),
    "rgc": ("rgc",),
}


def _find_col(df: pd.DataFrame, what: str, pct: int | None = None) -> str | None:
    """The column of ``df`` holding quantity ``what`` (at percentile ``pct``), or None.

    Accepts the catalogue spellings (``logAge50``, ``[Fe/H]16``, ``dMod84``) and
    the estimate spellings (``logAge_50``, ``feh_50``, ``dist_mod_84``); a
    column without a percentile (``log_age``, ``feh``) counts as the median.
    """
    cols = {_norm(c): c for c in df.columns}
    if what in _SINGLE:
        for key in _SINGLE[what]:
            if key in cols:
                return cols[key]
        return None
    stems = _STEMS[what]
    want = [f"{s}{pct}" for s in stems]
    if pct == 50:
        want += list(stems) + [f"{s}med" for s in stems]
    for key in want:
        if key in cols:
            return cols[key]
    return None


def _need(df: pd.DataFrame, what: str, pct: int | None = None) -> str:
    col = _find_col(df, what, pct)
    if col is None:
        label = what + (f" ({pct}th percentile)" if pct is not None else "")
        raise KeyError(f"no column for {label} among {list(df.columns)}")
    return col


# ---------------------------------------------------------------------------
# transforms
# ---------------------------------------------------------------------------
def _frame(r0: float, z_sun: float):
    import astropy.units as u
    from astropy.coordinates import Galactocentric, galactocentric_frame_defaults

    with galactocentric_frame_defaults.set("v4.0"):
        return Galactocentric(galcen_distance=r0 * u.kpc, z_sun=z_sun * u.kpc)


def galactocentric(ra, dec, dist_mod, r0: float = R0_KPC, z_sun: float = Z_SUN_KPC) -> pd.DataFrame:
    """Galactic Cartesian position and Galactocentric radius from (RA, Dec, dMod).

    Parameters
    ----------
    ra, dec : array_like
        ICRS position [deg].
    dist_mod : array_like
        True (extinction-free) distance modulus [mag]; d = 10**(dist_mod/5 + 1) pc.
    r0 : float
        Sun - Galactic centre distance [kpc] (default 8.122, as the paper).
    z_sun : float
        Height of the Sun above the mid-plane [kpc] (default 0.0208; 0 ignores it).

    Returns
    -------
    DataFrame
        ``X, Y`` [kpc], Sun-centred in the Galactic plane (X towards the
        Galactic centre, Y towards Galactic rotation); ``Z`` [kpc], height
        above the mid-plane; ``R_GC`` [kpc], Galactocentric cylindrical
        radius = sqrt((r0 - X)**2 + Y**2); ``d_kpc`` [kpc], heliocentric
        distance; ``l, b`` [deg]. NaN where an input is not finite.
    """
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    ra, dec, dm = (np.atleast_1d(np.asarray(a, dtype=float)) for a in (ra, dec, dist_mod))
    ra, dec, dm = np.broadcast_arrays(ra, dec, dm)
    n = ra.size
    out = {k: np.full(n, np.nan) for k in ("X", "Y", "Z", "R_GC", "d_kpc", "l", "b")}
    ok = np.isfinite(ra) & np.isfinite(dec) & np.isfinite(dm)
    if ok.any():
        d_kpc = 10.0 ** (dm[ok] / 5.0 + 1.0) / 1e3
        sc = SkyCoord(ra=ra[ok] * u.deg, dec=dec[ok] * u.deg, distance=d_kpc * u.kpc, frame="icrs")
        gc = sc.transform_to(_frame(r0, z_sun))
        x, y, z = (getattr(gc, a).to_value(u.kpc) for a in ("x", "y", "z"))
        gal = sc.galactic
        out["X"][ok], out["Y"][ok], out["Z"][ok] = x + r0, y, z
        out["R_GC"][ok] = np.hypot(x, y)
        out["d_kpc"][ok] = d_kpc
        out["l"][ok], out["b"][ok] = gal.l.to_value(u.deg), gal.b.to_value(u.deg)
    df = pd.DataFrame(out)
    df.attrs.update(r0_kpc=r0, z_sun_kpc=z_sun, frame="astropy Galactocentric (v4.0 defaults)")
    return df


def rgc_with_errors(
    catalog: pd.DataFrame | None = None,
    r0: float = R0_KPC,
    z_sun: float = Z_SUN_KPC,
    hunt: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Galactocentric radius with its uncertainty from the distance-modulus percentiles.

    R_GC is computed from each of dMod16, dMod50 and dMod84;
    ``sigma_R`` = |R(dMod84) - R(dMod16)| / 2, the paper's average of the two
    asymmetric errors.

    Parameters
    ----------
    catalog : DataFrame, optional
        Default: the published CAVALLO2024 catalogue. Any table with RA/Dec
        and dMod 16/50/84 columns (``dMod50`` or ``dMod_50`` or
        ``dist_mod_50``...). Without RA/Dec the HR23 positions are joined by
        name.

    Returns
    -------
    DataFrame
        Same index as ``catalog``: ``name``, ``R_GC`` (from dMod50),
        ``R_GC_dMod16``, ``R_GC_dMod84``, ``sigma_R`` [kpc], ``X, Y, Z``,
        ``d_kpc`` [kpc] (from dMod50).
    """
    if catalog is None:
        from ..datasets import load_catalog

        catalog = load_catalog("CAVALLO2024")
    cat = _with_positions(catalog, hunt)
    ra, dec = cat[_need(cat, "ra")].to_numpy(float), cat[_need(cat, "dec")].to_numpy(float)
    mid = galactocentric(ra, dec, cat[_need(cat, "dmod", 50)].to_numpy(float), r0=r0, z_sun=z_sun)
    r16 = galactocentric(ra, dec, cat[_need(cat, "dmod", 16)].to_numpy(float), r0=r0, z_sun=z_sun)["R_GC"]
    r84 = galactocentric(ra, dec, cat[_need(cat, "dmod", 84)].to_numpy(float), r0=r0, z_sun=z_sun)["R_GC"]
    out = pd.DataFrame(
        {
            "name": cat["name"].to_numpy() if "name" in cat else np.arange(len(cat)).astype(str),
            "R_GC": mid["R_GC"].to_numpy(),
            "R_GC_dMod16": r16.to_numpy(),
            "R_GC_dMod84": r84.to_numpy(),
            "sigma_R": np.abs(r84.to_numpy() - r16.to_numpy()) / 2.0,
            "X": mid["X"].to_numpy(),
            "Y": mid["Y"].to_numpy(),
            "Z": mid["Z"].to_numpy(),
            "d_kpc": mid["d_kpc"].to_numpy(),
        },
        index=catalog.index,
    )
    out.attrs.update(mid.attrs)
    return out


# ---------------------------------------------------------------------------
# joins with Hunt & Reffert (2023)
# ---------------------------------------------------------------------------
def catalog_key(names, how: str = "spec") -> pd.Series:
    """Join keys for cluster names.

    ``how="spec"`` (default) is the recipe that reproduces the paper's
    selections (Table 2: N = 839): underscores -> spaces, upper case, the part before
    the first comma, applied to each catalogue's own spelling. ``how="resolve"``
    uses :func:`ocnb.datasets.resolve_cluster_name`-style normalisation of the
    first comma-separated part, which also catches aliases with other
    spellings (it adds UBC 6 to the Table 2 sample: 840 instead of 839).
    """
    s = pd.Series(names, dtype=object).astype(str)
    first = s.str.replace("_", " ", regex=False).str.split(",").str[0].str.strip()
    if how == "spec":
        return first.str.upper()
    if how == "resolve":
        from ..datasets import normalize_name

        return first.map(normalize_name)
    raise ValueError(f"unknown name matching {how!r}; use 'spec' or 'resolve'")


def _name_column(df: pd.DataFrame, how: str) -> pd.Series:
    # 'spec' matches on the catalogue's own spelling, 'resolve' on the canonical name.
    own = df.attrs.get("name_column")
    if how == "spec" and own in df:
        return df[own]
    return df["name"]


def _load_hunt(hunt):
    if hunt is None:
        from ..datasets import load_catalog

        hunt = load_catalog("HUNT2023")
    return hunt


def hunt_cmd_class(catalog: pd.DataFrame, hunt: pd.DataFrame | None = None, how: str = "spec") -> pd.Series:
    """Hunt & Reffert (2023) median CMD class (``CMDCl50``) for each row of ``catalog`` (NaN if unmatched)."""
    hunt = _load_hunt(hunt)
    hk = catalog_key(_name_column(hunt, how), how).to_numpy()
    lookup = dict(zip(hk, hunt["CMDCl50"].to_numpy(float), strict=True))
    keys = catalog_key(_name_column(catalog, how), how)
    return pd.Series(keys.map(lookup).to_numpy(float), index=catalog.index, name="cmd_class")


def _with_positions(catalog: pd.DataFrame, hunt=None) -> pd.DataFrame:
    """``catalog`` with RA/Dec columns, taken from HR23 by name where missing."""
    if _find_col(catalog, "ra") and _find_col(catalog, "dec"):
        return catalog
    hunt = _load_hunt(hunt)
    hk = catalog_key(hunt["name"], "resolve").to_numpy()
    ra = dict(zip(hk, hunt["RA_ICRS"].to_numpy(float), strict=True))
    dec = dict(zip(hk, hunt["DE_ICRS"].to_numpy(float), strict=True))
    keys = catalog_key(catalog["name"], "resolve")
    return catalog.assign(ra=keys.map(ra).to_numpy(float), dec=keys.map(dec).to_numpy(float))


# ---------------------------------------------------------------------------
# Figs. 14-15
# ---------------------------------------------------------------------------
def assign_age_bins(log_age, bins_myr=AGE_BINS_MYR, labels=AGE_BIN_LABELS) -> pd.Categorical:
    """Age-bin labels for log10(age/yr) values (left-closed bins in Myr)."""
    age_myr = 10.0 ** (np.asarray(log_age, dtype=float) - 6.0)
    return pd.cut(age_myr, bins=list(bins_myr), labels=list(labels), right=False)


def galactic_sample(
    catalog: pd.DataFrame | None = None,
    hunt: pd.DataFrame | None = None,
    quality: Iterable[int] | None = (0,),
    cmd_min: float | None = 0.5,
    name_match: str = "spec",
    bright_counts: pd.Series | dict | None = None,
    min_bright: int = 3,
    r0: float = R0_KPC,
    z_sun: float = Z_SUN_KPC,
) -> pd.DataFrame:
    """Clusters for the Galactic maps (Fig. 14) with positions and age bins.

    Parameters
    ----------
    catalog : DataFrame, optional
        Default: the published CAVALLO2024 catalogue. Our own estimates work
        too (columns ``name``, log-age and dMod percentiles, optionally
        ``quality``; RA/Dec are taken from HR23 when missing).
    quality : iterable of int or None
        Quality classes kept (0 gold ... 3 wood); None keeps all (and is
        required when the table has no quality column).
    cmd_min : float or None
        Keep HR23 ``CMDCl50`` > cmd_min; None skips the cut.
    bright_counts : Series or dict, optional
        Number of members with absolute G < 3 mag per cluster name; when
        given, clusters with fewer than ``min_bright`` are dropped (the
        paper's third cut). Skipped otherwise.

    Returns
    -------
    DataFrame
        ``name, log_age, age_myr, age_bin, X, Y, Z, R_GC, d_kpc, l, b``.
        ``attrs["counts"]``: rows left after each cut; ``attrs["cuts"]``:
        the cuts applied.
    """
    if catalog is None:
        from ..datasets import load_catalog

        catalog = load_catalog("CAVALLO2024")
    cat = _with_positions(catalog, hunt)
    keep = np.ones(len(cat), bool)
    counts = {"catalogue": int(keep.sum())}
    cuts = []
    if quality is not None:
        q = cat[_need(cat, "quality")].to_numpy()
        keep &= np.isin(q, list(quality))
        counts["quality"] = int(keep.sum())
        cuts.append(f"quality in {sorted(set(quality))}")
    if cmd_min is not None:
        cmd = hunt_cmd_class(cat, hunt, how=name_match).to_numpy()
        keep &= cmd > cmd_min
        counts["cmd_class"] = int(keep.sum())
        cuts.append(f"HR23 CMDCl50 > {cmd_min}")
    if bright_counts is not None:
        bc = pd.Series(bright_counts, dtype=float)
        nb = cat["name"].map(bc).fillna(0).to_numpy()
        keep &= nb >= min_bright
        counts["bright_members"] = int(keep.sum())
        cuts.append(f">= {min_bright} members with M_G < 3")
    else:
        cuts.append("bright-member cut (>= 3 members with M_G < 3) skipped: no member photometry given")
    sel = cat[keep]
    pos = galactocentric(
        sel[_need(sel, "ra")], sel[_need(sel, "dec")], sel[_need(sel, "dmod", 50)], r0=r0, z_sun=z_sun
    )
    log_age = sel[_need(sel, "log_age", 50)].to_numpy(float)
    out = pd.DataFrame(
        {
            "name": sel["name"].to_numpy(),
            "log_age": log_age,
            "age_myr": 10.0 ** (log_age - 6.0),
            "age_bin": assign_age_bins(log_age),
        },
        index=sel.index,
    )
    for c in ("X", "Y", "Z", "R_GC", "d_kpc", "l", "b"):
        out[c] = pos[c].to_numpy()
    out.attrs.update(counts=counts, cuts=cuts, r0_kpc=r0, z_sun_kpc=z_sun)
    return out


def age_bin_counts(sample: pd.DataFrame) -> pd.Series:
    """Number of clusters per age bin (all bins, zeros included)."""
    return sample["age_bin"].value_counts(sort=False).reindex(list(AGE_BIN_LABELS), fill_value=0)


def z_distribution(sample: pd.DataFrame, max_dist_kpc: float | None = 2.0) -> pd.DataFrame:
    """Height distribution per age bin (Fig. 15) for clusters within ``max_dist_kpc`` of the Sun.

    Returns
    -------
    DataFrame
        Index = age bins; ``n``, ``median_Z``, ``std_Z`` [kpc], ``mad_sigma_Z``
        (1.4826 x median absolute deviation) and ``median_abs_Z`` [kpc].
    """
    s = sample if max_dist_kpc is None else sample[sample["d_kpc"] < max_dist_kpc]
    rows = {}
    for label in AGE_BIN_LABELS:
        z = s.loc[s["age_bin"] == label, "Z"].to_numpy(float)
        if len(z) == 0:
            rows[label] = {
                "n": 0,
                "median_Z": np.nan,
                "std_Z": np.nan,
                "mad_sigma_Z": np.nan,
                "median_abs_Z": np.nan,
            }
            continue
        med = float(np.median(z))
        rows[label] = {
            "n": len(z),
            "median_Z": med,
            "std_Z": float(np.std(z, ddof=1)) if len(z) > 1 else np.nan,
            "mad_sigma_Z": 1.4826 * float(np.median(np.abs(z - med))),
            "median_abs_Z": float(np.median(np.abs(z))),
        }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out["n"] = out["n"].astype(int)
    out.attrs["max_dist_kpc"] = max_dist_kpc
    return out


def plot_xy_age_bins(
    sample: pd.DataFrame,
    lim_kpc: float = 6.0,
    fig=None,
    title: str | None = None,
    color: str = "k",
    size: float = 4.0,
    label: str | None = None,
):
    """Fig. 14: X-Y positions in six age bins (Sun at the origin, Galactic centre to the right).

    Parameters
    ----------
    sample : DataFrame
        :func:`galactic_sample` output (``X, Y`` [kpc], ``age_bin``).
    lim_kpc : float
        Half-width of each panel [kpc].
    fig : matplotlib Figure, optional
        A figure returned by an earlier call: the sample is drawn *over* the same six panels
        (e.g. our own estimates in red over the published catalogue) and each title gains its
        count. Any other figure gets a new 2 x 3 grid.
    title : str, optional
        Figure title (kept from the first call when overplotting and not given).
    color, size : matplotlib colour and marker area [pt^2] of this sample's points.
    label : str, optional
        Legend entry of this sample. When overplotting, default ``"overlay"`` for the new sample
        and ``"catalogue"`` for the first. Panel titles give each overlay's count under the
        label's first words (up to a comma or parenthesis).

    Returns
    -------
    matplotlib Figure
        ``fig.ocnb_xy_axes`` holds the 2 x 3 axes (age bins in :data:`AGE_BIN_LABELS` order).
    """
    import matplotlib.pyplot as plt

    axes = getattr(fig, "ocnb_xy_axes", None) if fig is not None else None
    first = axes is None
    if fig is None:
        # constrained layout keeps the panel titles, the suptitle and the legend apart
        fig = plt.figure(figsize=(11, 8.0), layout="constrained")
    if first:
        axes = fig.subplots(2, 3, sharex=True, sharey=True, squeeze=False)
        fig.ocnb_xy_axes = axes
        fig.ocnb_xy_layers = []
    layers = fig.ocnb_xy_layers
    if not first and label is None:
        label = "overlay"
    # the first sample underneath; each overlay on top (higher zorder) with a dark edge so it stays visible
    zorder = 2 + len(layers)
    counts = {}
    for ax, bin_label in zip(axes.ravel(), AGE_BIN_LABELS, strict=True):
        s = sample[sample["age_bin"] == bin_label]
        counts[bin_label] = len(s)
        kw = dict(s=size, c=color, zorder=zorder)
        kw.update(dict(lw=0, alpha=0.6) if first else dict(edgecolors="k", linewidths=0.6, alpha=0.95))
        ax.scatter(s["X"], s["Y"], label=label, **kw)
        if first:
            ax.plot([0], [0], marker="*", ms=11, color="gold", mec="k", zorder=50)
            ax.set_xlim(-lim_kpc, lim_kpc)
            ax.set_ylim(-lim_kpc, lim_kpc)
            ax.set_aspect("equal")
            ax.grid(alpha=0.3)
    layers.append({"label": label, "counts": counts})
    if not first and layers[0]["label"] is None:
        layers[0]["label"] = "catalogue"
    for ax, bin_label in zip(axes.ravel(), AGE_BIN_LABELS, strict=True):
        parts = [f"N = {layers[0]['counts'][bin_label]}"]
        # an overlay's short name (its label up to a comma or parenthesis) keeps the titles on two lines
        parts += [f"{re.split(r'[,(]', lay['label'])[0].strip()}: {lay['counts'][bin_label]}" for lay in layers[1:]]
        ax.set_title(f"{bin_label}\n" + ", ".join(parts), fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("X [kpc] (to the Galactic centre)")
    for ax in axes[:, 0]:
        ax.set_ylabel("Y [kpc] (rotation)")
    if title:
        fig.suptitle(title)
    if len(layers) > 1:
        # one legend for the figure, built from the first panel's layers
        handles = axes[0, 0].collections
        for leg in list(fig.legends):
            leg.remove()
        constrained = type(fig.get_layout_engine()).__name__ == "ConstrainedLayoutEngine"
        fig.legend(handles, [lay["label"] for lay in layers], ncols=len(layers), markerscale=2.0, frameon=False,
                   loc="outside lower center" if constrained else "lower center")
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    return fig


def plot_z_histograms(
    sample: pd.DataFrame,
    max_dist_kpc: float | None = 2.0,
    zlim_kpc: float = 0.6,
    bin_width_kpc: float = 0.025,
    fig=None,
    title: str | None = None,
):
    """Fig. 15: Z histograms per age bin for clusters within ``max_dist_kpc`` (robust sigma annotated)."""
    import matplotlib.pyplot as plt

    s = sample if max_dist_kpc is None else sample[sample["d_kpc"] < max_dist_kpc]
    stats = z_distribution(s, max_dist_kpc=None)
    if fig is None:
        fig = plt.figure(figsize=(11, 6), layout="constrained")
    axes = fig.subplots(2, 3, sharex=True)
    edges = np.arange(-zlim_kpc, zlim_kpc + bin_width_kpc / 2, bin_width_kpc)
    for ax, label in zip(axes.ravel(), AGE_BIN_LABELS, strict=True):
        z = s.loc[s["age_bin"] == label, "Z"].to_numpy(float)
        ax.hist(z, bins=edges, color="0.4", histtype="stepfilled", alpha=0.8)
        sig = stats.loc[label, "mad_sigma_Z"]
        ax.set_title(f"{label}: N = {len(z)}, σ_Z ≈ {sig * 1e3:.0f} pc" if len(z) else label, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("Z [kpc]")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"clusters per {bin_width_kpc * 1e3:g} pc")
    if title:
        fig.suptitle(title)
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    return fig
