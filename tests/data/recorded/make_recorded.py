"""Rebuild the recorded-response fixtures of ``tests/datasets/test_online.py``.

This machine has no route to the Gaia archive or VizieR, so the fixtures are
*not* captured network traffic: they are real Gaia DR3 rows from the shipped
sample ``m67_dr3_cone2deg_pmbox_tanmacsen.parquet`` written in the formats the
two services return (see ``README.md`` in this folder for what is real and
what is a placeholder). Run from the repository root::

    .venv/bin/python tests/data/recorded/make_recorded.py [path/to/gaia_stars]
"""

from __future__ import annotations

import gzip
import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io.votable import from_table
from astropy.table import MaskedColumn, Table

HERE = Path(__file__).resolve().parent
SOURCE = "m67_dr3_cone2deg_pmbox_tanmacsen.parquet"

# The cone of the Gaia fixture; test_online.py builds the same ADQL.
CONE_RA, CONE_DEC, CONE_R, CONE_GMAX = 132.846, 11.814, 0.22, 18.0
# Rows of the VizieR fixture: stars of the same sample within this radius.
HR23_R = 0.12

_CORR = [
    "ra_dec_corr", "ra_parallax_corr", "ra_pmra_corr", "ra_pmdec_corr", "dec_parallax_corr",
    "dec_pmra_corr", "dec_pmdec_corr", "parallax_pmra_corr", "parallax_pmdec_corr", "pmra_pmdec_corr",
]
# gaia_source columns of ocnb.datasets.online.DEFAULT_COLUMNS, with their
# archive units and whether the archive stores them as 4-byte floats.
GAIA_COLS = {
    "source_id": (None, False), "ra": ("deg", False), "ra_error": ("mas", True), "dec": ("deg", False),
    "dec_error": ("mas", True), "parallax": ("mas", False), "parallax_error": ("mas", True),
    "pmra": ("mas.yr**-1", False), "pmra_error": ("mas.yr**-1", True), "pmdec": ("mas.yr**-1", False),
    "pmdec_error": ("mas.yr**-1", True), **dict.fromkeys(_CORR, (None, True)), "ruwe": (None, True),
    "phot_g_mean_mag": ("mag", True), "phot_bp_mean_mag": ("mag", True), "phot_rp_mean_mag": ("mag", True),
    "phot_g_mean_flux_over_error": (None, True), "phot_bp_mean_flux_over_error": (None, True),
    "phot_rp_mean_flux_over_error": (None, True), "bp_rp": ("mag", True),
    "astrometric_params_solved": (None, False), "radial_velocity": ("km.s**-1", True),
    "radial_velocity_error": ("km.s**-1", True),
}


def _separation(frame: pd.DataFrame, ra0: float, dec0: float) -> np.ndarray:
    star = SkyCoord(frame["ra"].to_numpy() * u.deg, frame["dec"].to_numpy() * u.deg)
    return star.separation(SkyCoord(ra0 * u.deg, dec0 * u.deg)).deg


def _column(name, values, unit=None, float32=False):
    values = np.asarray(values)
    if values.dtype.kind == "f":
        if float32:
            values = values.astype(np.float32)
        mask = ~np.isfinite(values)
        return MaskedColumn(values, name=name, unit=unit, mask=mask)
    return MaskedColumn(values, name=name, unit=unit, mask=np.zeros(len(values), bool))


def gaia_votable(stars: pd.DataFrame) -> bytes:
    """A gzipped BINARY2 VOTable like an async Gaia TAP job result."""
    sep = _separation(stars, CONE_RA, CONE_DEC)
    sel = stars[(sep < CONE_R) & (stars["phot_g_mean_mag"] < CONE_GMAX)].copy()
    sel["ang_sep"] = _separation(sel, CONE_RA, CONE_DEC)
    sel = sel.sort_values("source_id")
    tab = Table()
    for name, (unit, f32) in GAIA_COLS.items():
        tab.add_column(_column(name, sel[name].to_numpy(), unit, f32))
    tab.add_column(_column("ang_sep", sel["ang_sep"].to_numpy(), "deg"))
    vot = from_table(tab)
    vot.resources[0].type = "results"
    vot.resources[0].tables[0].name = "result_recorded"
    vot.resources[0].tables[0].format = "binary2"
    buf = io.BytesIO()
    vot.to_xml(buf)
    return gzip.compress(buf.getvalue(), mtime=0)


# members.dat labels of J/A+A/673/A114 (as served by VizieR) -> gaia_source.
HR23_FROM_GAIA = {
    "GaiaDR3": ("source_id", None), "RA_ICRS": ("ra", "deg"), "e_RA_ICRS": ("ra_error", "mas"),
    "DE_ICRS": ("dec", "deg"), "e_DE_ICRS": ("dec_error", "mas"), "GLON": ("l", "deg"), "GLAT": ("b", "deg"),
    "pmRA": ("pmra", "mas/yr"), "e_pmRA": ("pmra_error", "mas/yr"), "pmDE": ("pmdec", "mas/yr"),
    "e_pmDE": ("pmdec_error", "mas/yr"), "Plx": ("parallax", "mas"), "e_Plx": ("parallax_error", "mas"),
    "pscol": ("pseudocolour", "um-1"), "e_pscol": ("pseudocolour_error", "um-1"),
    "PlxpmRACor": ("parallax_pmra_corr", None), "PlxpmDECor": ("parallax_pmdec_corr", None),
    "pmRApmDECor": ("pmra_pmdec_corr", None), "PlxpscolCor": ("parallax_pseudocolour_corr", None),
    "pmRApscolCor": ("pmra_pseudocolour_corr", None), "pmDEpscolCor": ("pmdec_pseudocolour_corr", None),
    "Solved": ("astrometric_params_solved", None), "ELAT": ("ecl_lat", "deg"),
    "nueff": ("nu_eff_used_in_astrometry", "um-1"), "RUWE": ("ruwe", None),
    "FG": ("phot_g_mean_flux", "e-/s"), "e_FG": ("phot_g_mean_flux_error", "e-/s"),
    "FBP": ("phot_bp_mean_flux", "e-/s"), "e_FBP": ("phot_bp_mean_flux_error", "e-/s"),
    "FRP": ("phot_rp_mean_flux", "e-/s"), "e_FRP": ("phot_rp_mean_flux_error", "e-/s"),
    "Gmag": ("phot_g_mean_mag", "mag"), "BPmag": ("phot_bp_mean_mag", "mag"),
    "RPmag": ("phot_rp_mean_mag", "mag"),
    "BP-RP": ("bp_rp", "mag"), "BP-G": ("bp_g", "mag"), "G-RP": ("g_rp", "mag"),
    "RV": ("radial_velocity", "km/s"), "e_RV": ("radial_velocity_error", "km/s"),
    "VarFlag": ("phot_variable_flag", None), "NSS": ("non_single_star", None),
}


def vizier_votable(stars: pd.DataFrame, name: str = "NGC_2682") -> bytes:
    """A gzipped TABLEDATA VOTable like VizieR's answer for the HR23 members table."""
    sel = stars[_separation(stars, CONE_RA, CONE_DEC) < HR23_R].sort_values("source_id")
    # Placeholder, NOT Hunt & Reffert's value: a smooth function of the
    # proper-motion offset from the sample median, so that the column has
    # realistic range and type (see README.md).
    dpm = np.hypot(sel["pmra"] - sel["pmra"].median(), sel["pmdec"] - sel["pmdec"].median())
    prob = np.round(np.exp(-0.5 * (dpm / 0.35) ** 2), 3)
    tab = Table()
    tab.add_column(_column("Name", np.array([name] * len(sel))))
    tab.add_column(_column("GaiaDR3", sel["source_id"].to_numpy()))
    tab.add_column(_column("Prob", prob.to_numpy()))
    for label, (col, unit) in HR23_FROM_GAIA.items():
        if label == "GaiaDR3":
            continue
        values = sel[col].to_numpy()
        if values.dtype == bool:
            values = values.astype(np.int16)
        tab.add_column(_column(label, values, unit))
    vot = from_table(tab)
    res = vot.resources[0]
    res.name = "J/A+A/673/A114"
    table = res.tables[0]
    table.name = "J/A+A/673/A114/members"
    table.ID = "J_A_A_673_A114_members"
    table.format = "tabledata"
    buf = io.BytesIO()
    vot.to_xml(buf)
    return gzip.compress(buf.getvalue(), mtime=0)


def main(source_dir: str | Path = "/work/shared/data/gaia_stars") -> None:
    stars = pd.read_parquet(Path(source_dir) / SOURCE)
    (HERE / "gaia_tap_m67_cone.vot.gz").write_bytes(gaia_votable(stars))
    (HERE / "vizier_hr23_members_ngc2682.vot.gz").write_bytes(vizier_votable(stars))
    for path in sorted(HERE.glob("*.vot.gz")):
        print(f"{path.name}: {path.stat().st_size / 1024:.1f} kB")


if __name__ == "__main__":
    main(*sys.argv[1:])
