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
    with pytest.raises(ValueError, match="nan must be 'raise' or 'drop'"):
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


# ---------------------------------------------------------------------------
# Bad-input table: a broken member table -> MemberTableError whose message names the column, the
# median value and the probable mistake.
# ---------------------------------------------------------------------------
def _m67_ok():
    return ds.load_members("M67", source="dr3_cone").dropna(subset=["phot_bp_mean_mag"])


def _scaled(factor, frame=None):
    frame = _m67_ok() if frame is None else frame
    return frame.assign(parallax=frame["parallax"] * factor)


def _some_negative(frac):
    t = _m67_ok()
    n = round(frac * len(t))
    plx = t["parallax"].to_numpy().copy()
    plx[:n] = -np.abs(plx[:n])
    return t.assign(parallax=plx)


BAD_TABLES = [
    ("empty table", lambda: _m67_ok().iloc[:0], {}, r"member table is empty \(0 rows; columns \['source_id'"),
    ("empty, no columns", lambda: pd.DataFrame(), {}, r"member table is empty \(0 rows"),
    ("no row left after nan='drop'", lambda: _m67_ok().assign(phot_g_mean_mag=np.nan), {"nan": "drop"},
     r"no star left after dropping the 1187 row\(s\) with NaN/inf in required columns \(phot_g_mean_mag \(1187\)\)"),
    ("all parallaxes negative", lambda: _scaled(-1.0), {},
     r"parallax: 1187 of 1187 values are negative \(median -1\.149 mas\).*sign flipped"),
    ("95 % negative", lambda: _some_negative(0.95), {}, r"parallax: 1128 of 1187 values are negative"),
    ("100x too large", lambda: _scaled(100.0), {},
     r"parallax looks too large \(median 114\.9 mas, i\.e\. 8\.7 pc\): with it 98% of the 1186 members with G and "
     r"BP−RP would lie more than 3 mag below the main sequence"),
    ("100x too large, distant cluster", lambda: _scaled(100.0, ds.load_members("NGC 2243")), {},
     r"parallax looks too large \(median 25\.\d+ mas"),
    ("100x, cluster named, no colours",
     lambda: _scaled(100.0)[["source_id", "phot_g_mean_mag", "parallax"]], {"cluster": "M67", "require": ("parallax",)},
     r"parallax: the members' median 114\.9 mas is 99\.\d× the catalogue parallax of NGC 2682 \(1\.15 mas"),
    ("10x, cluster named", lambda: _scaled(10.0), {"cluster": "M67"},
     r"median 11\.49 mas is 9\.99× the catalogue parallax of NGC 2682"),
    ("µas", lambda: _scaled(1000.0), {}, r"parallax looks like µas, not mas \(median \|parallax\| = 1149"),
    ("arcsec", lambda: _scaled(1e-3), {},
     r"parallax looks like arcsec or deg, not mas \(median \|parallax\| = 0\.00115"),
]


@pytest.mark.parametrize("name,make,kwargs,pattern", BAD_TABLES, ids=[r[0] for r in BAD_TABLES])
def test_bad_table(name, make, kwargs, pattern):
    with pytest.raises(MemberTableError, match=pattern):
        validate_members(make(), **kwargs)


def test_parallax_checks_can_be_switched_off_and_keep_real_tables():
    assert len(validate_members(_scaled(100.0), check_parallax=False)) == 1187
    # A distant cluster's noisy parallaxes (NGC 2243, ~4 kpc) with a third made negative is still valid.
    far = ds.load_members("NGC 2243")
    plx = far["parallax"].to_numpy().copy()
    plx[: len(plx) // 3] *= -1
    assert len(validate_members(far.assign(parallax=plx))) == len(far)


SHIPPED = [tuple(r) for r in ds.list_member_clusters()[["cluster", "source"]].to_numpy()]


@pytest.mark.parametrize("cluster,source", SHIPPED, ids=lambda v: str(v))
def test_every_shipped_member_table_passes(cluster, source):
    """No false alarm: every shipped member list, in mas and named, passes the parallax checks."""
    table = ds.load_members(cluster, source=source)
    out = validate_members(table, cluster=cluster, nan="drop")
    assert len(out) >= 1
