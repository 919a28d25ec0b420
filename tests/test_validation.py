"""validate_members / rename_to_canonical on real member tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ocnb.datasets as ds
from ocnb.errors import MemberTableError, UnknownClusterError
from ocnb.validation import COLUMN_ALIASES, rename_to_canonical, validate_members


@pytest.fixture(scope="module")
def m67():
    return ds.load_members("M67", source="dr3_cone")  # 1188 stars, complete photometry except 1 BP/RP


@pytest.fixture(scope="module")
def m67_iso():
    return ds.load_members("M67")  # 1518 stars, 2 without BP/RP


def test_valid_table_passes_and_is_a_copy(m67):
    out = validate_members(m67.dropna(subset=["phot_bp_mean_mag"]), cluster="M67", min_stars=1000)
    assert len(out) == 1187
    assert out.attrs["validated"] and out.attrs["n_dropped_nan"] == 0 and out.attrs["cluster"] == "NGC 2682"
    assert (out["cluster"] == "NGC 2682").all()
    assert out is not m67


def test_nan_photometry_raise_and_drop(m67_iso):
    with pytest.raises(MemberTableError, match=r"phot_bp_mean_mag \(2 rows\), phot_rp_mean_mag \(2 rows\)"):
        validate_members(m67_iso)
    out = validate_members(m67_iso, nan="drop")
    assert len(out) == 1516 and out.attrs["n_dropped_nan"] == 2
    with pytest.raises(MemberTableError, match="only 1516 star"):
        validate_members(m67_iso, nan="drop", min_stars=1517)
    with pytest.raises(ValueError):
        validate_members(m67_iso, nan="fill")


def test_missing_alias_and_misspelt_columns():
    raw = pd.read_parquet(ds.data_path("members/almeida_edr3_20clusters.parquet"))
    with pytest.raises(MemberTableError, match=r"found 'Gmag', a known alias.*rename_to_canonical") as err:
        validate_members(raw)
    assert "'Plx'" in str(err.value)  # every missing column is reported at once
    renamed = rename_to_canonical(raw[raw["cluster"] == "Melotte_22"])
    assert renamed.attrs["renamed"]["Plx"] == "parallax" and renamed.attrs["renamed"]["Source"] == "source_id"
    out = validate_members(renamed, cluster="Pleiades")
    assert len(out) == 1217 and np.median(out["parallax"]) == pytest.approx(7.407, abs=0.01)
    typo = renamed.rename(columns={"phot_g_mean_mag": "phot_g_mean_mg"})
    with pytest.raises(MemberTableError, match="did you mean 'phot_g_mean_mg'"):
        validate_members(typo)
    colour = renamed.drop(columns=["phot_bp_mean_mag"]).assign(bp_rp=1.0)
    with pytest.raises(MemberTableError, match="'bp_rp' is a colour") as err:
        validate_members(colour)
    assert "phot_rp_mean_mag" not in str(err.value).split("phot_bp_mean_mag:")[1]  # no misleading suggestion


def test_rename_iso_names_and_ambiguity():
    iso = pd.read_parquet(ds.data_path("members/iso_nearby_members.parquet"))
    r = rename_to_canonical(iso)
    for col in ("source_id", "ra", "dec", "phot_g_mean_mag", "ks_m", "ph_qual", "cluster"):
        assert col in r.columns
    assert r.attrs["renamed"]["gmag_edr3"] == "phot_g_mean_mag"
    assert "gmag" not in COLUMN_ALIASES  # DR2 magnitudes are not silently taken as EDR3
    both = iso.rename(columns={"dr2_source_id": "Source"})
    with pytest.raises(MemberTableError, match="ambiguous"):
        rename_to_canonical(both)


def test_parallax_units_plain_floats(m67):
    ok = m67.dropna(subset=["phot_bp_mean_mag"])
    with pytest.raises(MemberTableError, match="looks like µas"):
        validate_members(ok.assign(parallax=ok["parallax"] * 1000))
    with pytest.raises(MemberTableError, match="looks like arcsec"):
        validate_members(ok.assign(parallax=ok["parallax"] / 1000))
    # The Hyades (21 mas) are in mas, not µas; in arcsec they are caught.
    hy = ds.load_members("Hyades").dropna(subset=["phot_bp_mean_mag"])
    assert len(validate_members(hy)) == len(hy)
    with pytest.raises(MemberTableError, match="arcsec"):
        validate_members(hy.assign(parallax=hy["parallax"] / 1000))
    # Distant clusters (NGC 2243, ~0.25 mas) stay valid.
    assert len(validate_members(ds.load_members("NGC 2243"))) == 840


def test_astropy_table_units(m67):
    u = pytest.importorskip("astropy.units")
    from astropy.table import Table

    ok = m67.dropna(subset=["phot_bp_mean_mag"])[
        ["source_id", "parallax", "pmra", "phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag"]
    ]
    t = Table.from_pandas(ok)
    t["parallax"] = t["parallax"] * 1000.0
    t["parallax"].unit = u.uas
    t["pmra"].unit = u.mas / u.yr
    t["phot_g_mean_mag"].unit = u.mag
    out = validate_members(t)
    np.testing.assert_allclose(out["parallax"].to_numpy(), ok["parallax"].to_numpy())
    assert out.attrs["unit_conversions"] == {"parallax": "converted from uas to mas"}
    t2 = Table.from_pandas(ok)
    t2["parallax"] = t2["parallax"] / 1000.0
    t2["parallax"].unit = u.arcsec
    np.testing.assert_allclose(validate_members(t2)["parallax"], ok["parallax"])
    t2["parallax"].unit = u.km
    with pytest.raises(MemberTableError, match="cannot be converted to mas"):
        validate_members(t2)
    t3 = Table.from_pandas(ok)
    t3["phot_g_mean_mag"].unit = u.Jy
    with pytest.raises(MemberTableError, match="magnitudes must be in mag"):
        validate_members(t3)


def test_duplicates_float_ids_fluxes_and_types(m67):
    ok = m67.dropna(subset=["phot_bp_mean_mag"])
    dup = pd.concat([ok, ok.iloc[:3]], ignore_index=True)
    with pytest.raises(
        MemberTableError, match=r"3 source_id value\(s\) appear more than once \(6 rows\)"
    ) as err:
        validate_members(dup)
    assert str(int(ok["source_id"].iloc[0])) in str(err.value)
    with pytest.raises(MemberTableError, match="float"):
        validate_members(ok.assign(source_id=ok["source_id"].astype(float)))
    with pytest.raises(MemberTableError, match="does not look like magnitudes"):
        validate_members(ok.assign(phot_g_mean_mag=10 ** (-0.4 * (ok["phot_g_mean_mag"] - 25.7))))
    bad = ok.astype({"parallax": object})
    bad.loc[bad.index[0], "parallax"] = "n/a"
    with pytest.raises(MemberTableError, match="'parallax' is not numeric"):
        validate_members(bad)


def test_cluster_checks(m67):
    ok = m67.dropna(subset=["phot_bp_mean_mag"])
    with pytest.raises(MemberTableError, match="close matches: NGC 2682") as err:
        validate_members(ok, cluster="NGC 26822")
    assert isinstance(err.value, UnknownClusterError)
    with pytest.raises(MemberTableError, match="cluster column holds"):
        validate_members(ok, cluster="Pleiades")
    assert validate_members(ok.drop(columns="cluster"), cluster="ngc2682")["cluster"].iloc[0] == "NGC 2682"
