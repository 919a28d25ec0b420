"""Star-level members in the canonical schema, member-list index and field samples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ocnb.datasets as ds
from ocnb.errors import UnknownClusterError


def _check_schema(df):
    assert list(df.columns[: len(ds.MEMBER_COLUMNS)]) == ds.MEMBER_COLUMNS
    assert df["source_id"].dtype == np.int64
    assert not df["source_id"].duplicated().any()
    assert df.attrs["release"] in ("DR3", "EDR3") and df.attrs["citation"] and df.attrs["source"]


def test_list_member_clusters():
    lm = ds.list_member_clusters()
    assert list(lm.columns) == ["cluster", "source", "n_stars", "bands", "release", "n_with_pm"]
    assert len(lm) == 42
    assert set(lm["source"]) == {"iso", "almeida", "dr3_cone"}
    idx = lm.set_index(["cluster", "source"])
    assert idx.loc[("NGC 2682", "iso"), "n_stars"] == 1518
    assert idx.loc[("NGC 2682", "dr3_cone"), "n_stars"] == 1188
    assert idx.loc[("Melotte 22", "almeida"), "n_stars"] == 1217
    assert idx.loc[("Melotte 22", "dr3_cone"), "n_stars"] == 826
    assert idx.loc[("NGC 2632", "iso"), "n_with_pm"] == 0  # Praesepe: no proper motions offline
    assert "LAMOST" in idx.loc[("Stock 2", "iso"), "bands"]
    assert (lm["source"] == "almeida").sum() == 20


def test_m67_multiband_members():
    m = ds.load_members("M67")  # auto -> iso
    _check_schema(m)
    assert len(m) == 1518 and m.attrs["source"] == "iso" and m.attrs["release"] == "EDR3"
    assert (m["cluster"] == "NGC 2682").all()
    # Proper motions + all 10 correlations joined from the DR3 cone for 1234 stars.
    assert m["pmra"].notna().sum() == 1234
    assert m["ra_dec_corr"].notna().sum() == 1234
    assert (m.loc[m["pmra"].notna(), "astrometry_origin"] == "Gaia DR3 (M67_DR3_CONE)").all()
    assert np.nanmedian(m["pmra"]) == pytest.approx(-10.97, abs=0.05)
    assert np.median(m["parallax"]) == pytest.approx(1.15, abs=0.02)
    # 2MASS for 1437, AllWISE for 1334 stars; quality flags are 3 letters where present, None otherwise.
    assert m["j_m"].notna().sum() == 1437 and m["w1mpro"].notna().sum() == 1334
    assert m["ph_qual"].isna().sum() == 81
    assert m["ph_qual"].dropna().str.len().eq(3).all()
    assert m["membership_probability"].isna().all()
    # G error from the G flux: 1.0857 * flux_error / flux.
    g_err = 2.5 / np.log(10) * m["phot_g_mean_flux_error"] / m["phot_g_mean_flux"]
    np.testing.assert_allclose(m["phot_g_mean_mag_error"], g_err)
    # LAMOST LRS/MRS parameters of the M67 stars in the distant-cluster files.
    assert m["in_lrs"].sum() == 182 and m["in_mrs"].sum() == 252
    assert ds.load_members("NGC_2682", subset="nonbinary").shape[0] == 708


def test_m67_dr3_cone_selection():
    m = ds.load_members("M67", source="dr3_cone")
    _check_schema(m)
    assert len(m) == 1188 and m.attrs["release"] == "DR3"
    assert m[ds.CORR_COLUMNS].notna().all().all()
    sel = ds.CONE_SELECTIONS["NGC 2682"]
    assert (np.abs(m["parallax"] - 1.13) < 0.15).all() and (m["ruwe"] < 1.4).all()
    assert (np.hypot(m["pmra"] - sel["pmra"], m["pmdec"] - sel["pmdec"]) < 0.8).all()
    np.testing.assert_allclose(
        m["phot_g_mean_mag_error"], 1.0857362 / m["phot_g_mean_flux_over_error"], rtol=1e-6
    )
    every = ds.load_members("M67", source="dr3_cone", selection=False)
    assert len(every) == 1494 and every["selected"].sum() == 1188


def test_pleiades_sources():
    iso = ds.load_members("Pleiades")
    assert len(iso) == 756 and iso["in_binary_rejected"].all()
    assert iso["pmra"].notna().sum() == 664
    alm = ds.load_members("M45", source="almeida")
    _check_schema(alm)
    assert len(alm) == 1217
    assert alm["membership_probability"].between(0.51, 1.0).all()
    # Almeida gives 3 of the 10 correlations.
    assert alm["pmra_pmdec_corr"].notna().all() and alm["ra_dec_corr"].isna().all()
    assert alm["j_m"].isna().all()
    cone = ds.load_members("Melotte 22", source="dr3_cone")
    assert len(cone) == 826
    assert cone["source_id"].isin(alm["source_id"]).sum() == 786


def test_hyades_praesepe_alphaper_blanco():
    hy = ds.load_members("Hyades")
    assert len(hy) == 378 and hy["in_nonbinary"].sum() == 370 and hy["in_sample"].sum() == 151
    assert hy["pmra"].notna().sum() == 301
    pr = ds.load_members("Praesepe")
    assert len(pr) == 791 and pr["pmra"].isna().all()
    assert "Praesepe" in pr.attrs["notes"]
    assert len(ds.load_members("alphaPer")) == 619
    assert len(ds.load_members("Blanco1", subset="nonbinary")) == 418
    # Hyades is nearby: parallax ~ 21 mas
    assert np.median(hy["parallax"]) == pytest.approx(21.06, abs=0.1)


def test_distant_and_almeida_only_clusters():
    tr = ds.load_members("Trump02")
    assert tr["cluster"].iloc[0] == "Trumpler 2" and len(tr) == 29
    assert tr["lrs_feh"].notna().sum() == 16 and tr["mrs_feh"].notna().sum() == 13
    ic = ds.load_members("IC_2602")  # no multi-band file -> almeida
    assert ic.attrs["source"] == "almeida" and len(ic) == 294
    ngc2243 = ds.load_members("NGC 2243")
    assert len(ngc2243) == 840  # 847 rows upstream, 7 exact duplicates removed


def test_concatenation_across_sources_keeps_schema():
    both = pd.concat([ds.load_members("M67"), ds.load_members("IC 2602")], ignore_index=True)
    assert list(both.columns[: len(ds.MEMBER_COLUMNS)]) == ds.MEMBER_COLUMNS
    assert both["source_id"].dtype == np.int64


def test_member_errors():
    with pytest.raises(UnknownClusterError, match="hunt2023_members"):
        ds.load_members("NGC 188")  # a real cluster without a shipped member list
    with pytest.raises(UnknownClusterError, match="available"):
        ds.load_members("Praesepe", source="almeida")
    with pytest.raises(UnknownClusterError):
        ds.load_members("NGC 99999")
    with pytest.raises(ValueError, match="source"):
        ds.load_members("M67", source="gaia")
    with pytest.raises(ValueError, match="subset"):
        ds.load_members("M67", subset="binaries")


def test_fields():
    bl = ds.load_field("blanco1")
    assert len(bl) == 14785 and (bl["ocelot_label"] == 0).sum() == 262
    assert bl.attrs["release"] == "DR2"
    assert bl["phot_g_mean_mag"].max() < 18.0
    assert bl["phot_bp_mean_mag_error"].notna().sum() > 14000
    f = ds.load_field("field_dr3_cone")
    assert len(f) == 2390 and "pmra_pmdec_corr" in f.columns
    center = np.hypot((f["ra"] - 45.0) * np.cos(np.radians(f["dec"])), f["dec"])
    assert center.max() < 0.5
    for rel in ("dr2", "edr3", "dr3"):
        r = ds.load_field(f"random_{rel}")
        assert len(r) == 1000 and r[ds.CORR_COLUMNS].shape[1] == 10
        assert ("ruwe" in r.columns) == (rel != "dr2")
    assert ds.load_field("pleiades_dr3_cone")["selected"].sum() == 826
    with pytest.raises(KeyError, match="blanco1_dr2_cone"):
        ds.load_field("blanko1")
    spline = ds.load_error_spline()
    assert spline.shape == (37, 6) and "knots_G" in spline.columns
