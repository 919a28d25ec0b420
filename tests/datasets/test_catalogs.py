"""Cluster catalogues, the standardised HR23 map table and literature parameters."""

from __future__ import annotations

import numpy as np
import pytest

import ocnb.datasets as ds
from ocnb.errors import UnknownClusterError

ROWS = {
    "HUNT2023": 6806,
    "HUNT2024": 5647,
    "CAVALLO2024": 6140,
    "CANTAT2020": 2017,
    "CANTAT_ANDERS2020": 1481,
    "DIAS2021": 1741,
    "SPINA2022": 250,
    "DONOR2020": 128,
    "MALHOTRA2026": 42,
    "TARRICQ2022": 467,
}


@pytest.mark.parametrize("name, rows", ROWS.items())
def test_load_catalog_rows_and_name_column(name, rows):
    df = ds.load_catalog(name.lower())  # case-insensitive
    assert len(df) == rows
    assert df.columns[0] == "name"
    assert df["name"].notna().all()
    assert df.attrs["catalog"] == name and df.attrs["citation"]


def test_catalog_columns_kept():
    hr = ds.load_catalog("HR23")
    for col in (
        "Name",
        "AllNames",
        "N",
        "RA_ICRS",
        "DE_ICRS",
        "Plx",
        "e_Plx",
        "pmRA",
        "logAge16",
        "logAge50",
        "logAge84",
        "AV50",
        "MOD50",
        "dist50",
        "CMDCl50",
        "r50",
    ):
        assert col in hr.columns
    assert "recno" not in hr.columns and "Type" not in hr.columns
    cav = ds.load_catalog("CAVALLO2024")
    assert {"logAge50", "[Fe/H]50", "AV50", "dMod50", "CMDclass", "Quality", "X"} <= set(cav.columns)
    assert "kind" not in cav.columns


def test_unknown_catalog():
    with pytest.raises(ValueError, match="HUNT2023"):
        ds.load_catalog("HUNT2033")


def test_load_clusters_standard_columns_and_geometry():
    cl = ds.load_clusters()
    assert len(cl) == 6806
    assert list(cl.columns[:14]) == [
        "name",
        "ra",
        "dec",
        "l",
        "b",
        "distance_pc",
        "dist_mod",
        "log_age",
        "a_v",
        "n_members",
        "x",
        "y",
        "z",
        "cmd_class",
    ]
    assert cl[["x", "y", "z", "log_age", "distance_pc"]].notna().all().all()
    r = np.sqrt(cl["x"] ** 2 + cl["y"] ** 2 + cl["z"] ** 2)
    np.testing.assert_allclose(r, cl["distance_pc"] / 1e3, rtol=1e-12)
    m67 = cl.set_index("name").loc["NGC 2682"]
    assert m67["n_members"] == 1844
    assert m67["distance_pc"] == pytest.approx(837.27, abs=0.01)
    # M67 lies towards l = 215.7 deg, b = +31.9 deg: away from the Galactic centre and above the plane.
    assert m67["x"] == pytest.approx(-0.5771, abs=1e-4)
    assert m67["y"] == pytest.approx(-0.4145, abs=1e-4)
    assert m67["z"] == pytest.approx(0.4428, abs=1e-4)
    assert m67["cmd_class"] > 0.9
    assert cl.attrs["units"]["x"] == "kpc"


def test_m67_literature_parameters_default_catalogues():
    lit = ds.literature_parameters("M67")
    assert lit.attrs["cluster"] == "NGC 2682"
    assert list(lit["catalog"]) == ["HUNT2023", "CAVALLO2024", "CANTAT2020", "DIAS2021"]
    age = lit.set_index("catalog")["log_age"]
    # The well-known M67 age (3.5-4 Gyr, log 9.55-9.6) from the isochrone/NN catalogues ...
    for cat in ("CAVALLO2024", "CANTAT2020", "DIAS2021"):
        assert 9.4 <= age[cat] <= 9.65, cat
    # ... while HR23's NN gives 9.227 +- 0.18 (within 2 sigma of 9.5).
    hr = lit.set_index("catalog").loc["HUNT2023"]
    assert hr["log_age"] == pytest.approx(9.227)
    assert hr["log_age_err"] == pytest.approx(0.1785)
    assert abs(hr["log_age"] - 9.5) < 2 * hr["log_age_err"]
    # Dias+21 gives the distance in pc: dist_mod = 5 log10(865) - 5, error from e_Dist.
    dias = lit.set_index("catalog").loc["DIAS2021"]
    assert dias["distance_pc"] == 865
    assert dias["dist_mod"] == pytest.approx(5 * np.log10(865) - 5)
    assert dias["dist_mod_err"] > 0
    # Cavallo: half 16-84 widths, distance from the distance modulus.
    cav = lit.set_index("catalog").loc["CAVALLO2024"]
    assert cav["feh"] == pytest.approx(0.32) and cav["feh_err"] == pytest.approx(0.125)
    assert cav["distance_pc"] == pytest.approx(10 ** (9.64 / 5 + 1))
    assert np.isnan(lit.set_index("catalog").loc["CANTAT2020", "log_age_err"])


def test_m67_in_every_catalogue_with_age():
    lit = ds.literature_parameters("NGC_2682", catalogs=ds.available_catalogs())
    assert len(lit) == 10
    ages = lit.dropna(subset=["log_age"]).set_index("catalog")["log_age"]
    assert set(ages.index) == {
        "HUNT2023",
        "HUNT2024",
        "CAVALLO2024",
        "CANTAT2020",
        "DIAS2021",
        "DONOR2020",
        "MALHOTRA2026",
        "TARRICQ2022",
    }
    assert ((ages > 9.2) & (ages < 9.65)).all()
    assert ages["DONOR2020"] == pytest.approx(np.log10(3.43e9), abs=0.005)  # Age 3.43 Gyr -> log yr


def test_spectroscopic_metallicity():
    lit = ds.literature_parameters("M67", catalogs=("SPINA2022", "DONOR2020")).set_index("catalog")
    assert lit.loc["SPINA2022", "feh"] == pytest.approx(0.01)
    assert lit.loc["SPINA2022", "feh_err"] == pytest.approx(0.03)
    assert lit.loc["DONOR2020", "feh"] == pytest.approx(0.01)
    assert np.isnan(lit.loc["SPINA2022", "a_v"])


def test_pleiades_parameters_and_missing_catalogue():
    lit = ds.literature_parameters("Pleiades").set_index("catalog")
    assert lit.loc["HUNT2023", "name_in_catalog"] == "Melotte 22"
    assert lit.loc["HUNT2023", "distance_pc"] == pytest.approx(134.84, abs=0.01)
    assert 7.8 < lit.loc["DIAS2021", "log_age"] < 8.2
    # Malhotra+2026 does not list the Pleiades: no row, not an error.
    assert len(ds.literature_parameters("Pleiades", catalogs=("MALHOTRA2026",))) == 0
    with pytest.raises(UnknownClusterError):
        ds.literature_parameters("Plejaden 99")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"catalogs": ("HUNT2023",)}, "at least two different catalogues"),
    ({"catalogs": ("HUNT2023", "HR23")}, "at least two different catalogues"),
    ({"min_members": -1}, "min_members must be an integer >= 0"),
    ({"min_members": 2.5}, "min_members must be an integer >= 0"),
])
def test_literature_scatter_bad_input(kwargs, match):
    from ocnb.datasets import literature_scatter

    with pytest.raises(ValueError, match=match):
        literature_scatter(**kwargs)
