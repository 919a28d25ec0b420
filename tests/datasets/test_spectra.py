"""Loaders for spectra, grids, masks, label tables and the line list."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

import ocnb.datasets as ds


def test_rvs_spectra():
    s = ds.load_rvs_spectra()
    assert isinstance(s, ds.Spectra)
    assert len(s) == 6 and s.n_pixels == 2401 and s.medium == "vacuum"
    assert s.wavelength[0] == pytest.approx(8460.0) and s.wavelength[-1] == pytest.approx(8700.0)
    assert np.diff(s.wavelength) == pytest.approx(0.1)
    # NaN pixels per star match the metadata; meta rows are in flux order.
    np.testing.assert_array_equal(np.isnan(s.flux).sum(axis=1), s.meta["n_nan_flux"].to_numpy())
    assert s.meta["name"].iloc[0] == "Kepler-93"
    assert 0.9 < np.nanmedian(s.flux) < 1.05  # continuum-normalised
    assert s.flux_error.shape == s.flux.shape


def test_xp_coefficients_and_reference_samples():
    xp = ds.load_xp_coefficients()
    assert (
        len(xp) == 4
        and xp.bp_coefficients.shape == (4, 55)
        and xp.rp_coefficient_correlations.shape == (4, 1485)
    )
    missing_bp = xp.source_id == 5405570973190252288
    assert (
        np.isnan(xp.bp_coefficients[missing_bp]).all() and np.isfinite(xp.rp_coefficients[missing_bp]).all()
    )
    raw = ds.load_xp_sample("XP_CONTINUOUS_RAW")
    assert raw["source_id"].tolist() == [5853498713190525696, 5762406957886626816]
    # The parsed CSV agrees with the npz.
    np.testing.assert_allclose(raw["bp_coefficients"].iloc[0], xp.bp_coefficients[0])
    cal = ds.load_xp_sample("calibrator_solution_default.csv")
    assert cal["flux"].iloc[0].shape == (343,)  # 336-1020 nm in 2 nm steps
    path = ds.xp_config_file("bpC03_v375wi_bases.csv.gz")
    assert path.exists() and gzip.decompress(path.read_bytes())[:20]
    assert len(ds.list_xp_files()) == 15


def test_apogee_spectra_and_grid():
    comb = ds.load_apogee_spectra()
    visit = ds.load_apogee_spectra("visit")
    assert comb.flux.shape == (1, 7214) and visit.flux.shape == (3, 7214)
    assert comb.meta["apogee_id"].iloc[0] == "2M13012770+5754582"
    assert visit.meta["vhelio_kms"].round(1).tolist() == [17.6, -47.4, -42.6]
    apstar = ds.apogee_wavelength("apstar")
    assert len(apstar) == 8575 and apstar[0] == pytest.approx(10**4.179)
    np.testing.assert_allclose(np.diff(np.log10(apstar)), 6e-6, rtol=1e-6)
    np.testing.assert_allclose(comb.wavelength, ds.apogee_wavelength("aspcap"), atol=1e-6)
    assert len(ds.apogee_wavelength("astronn")) == 7514
    with pytest.raises(ValueError, match=r"grid must be .*got 'lamost'"):
        ds.apogee_wavelength("lamost")


def test_apogee_masks_windows_cannon():
    masks = ds.load_apogee_masks()
    assert masks["cannon_contpix_aspcap7214"].dtype == bool
    assert int(masks["cannon_contpix_aspcap7214"].sum()) == 529
    np.testing.assert_array_equal(
        masks["dib_regions_px"], [[720, 910], [2370, 2470], [2600, 2750], [4300, 4600]]
    )
    wl = ds.apogee_wavelength("apstar")
    # The Angstrom version of the DIB ranges is the apStar grid at those pixels.
    assert masks["dib_regions_angstrom"][0, 0] == pytest.approx(wl[720], abs=0.01)
    win = ds.load_apogee_element_windows()
    assert list(win["dr12_elements"][:3]) == ["Al", "C", "Ca"] and win["dr12_weights_aspcap7214"].shape == (
        15,
        7214,
    )
    cannon = ds.load_cannon_model()
    assert cannon["coefficients"].shape == (15, 7214)
    assert list(cannon["label_names"]) == ["TEFF", "LOGG", "FE_H", "ALPHA_FE"]
    assert len(ds.load_cannon_training_labels()) == 1801


def test_label_tables():
    g = ds.load_apogee_labels("guiglion2020")
    assert g.shape == (3904, 20) and 3000 < g["Teff"].median() < 6000
    p = ds.load_apogee_labels("pricejones2020")
    assert p.shape == (360, 150) and p["CLUSTER_ID"].nunique() == 21
    assert not np.isclose(p.select_dtypes("number").to_numpy(float), -9999.99).any()
    with pytest.raises(ValueError, match="guiglion2020"):
        ds.load_apogee_labels("ness2015")


def test_occam():
    dr17 = ds.load_occam()
    assert dr17.attrs["release"] == "DR17" and len(dr17) == 26699
    assert (dr17["cluster"] == "NGC 2682").sum() == 663
    assert not np.isclose(dr17["CG_PROB"].to_numpy(float), -9999.99).any()
    dr16 = ds.load_occam("members", "DR16")
    assert len(dr16) == 10063
    cl = ds.load_occam("clusters")
    assert len(cl) == 126 and cl.attrs["release"] == "DR16"
    m67 = cl[cl["cluster"] == "NGC 2682"]
    assert len(m67) == 1 and m67["FE_H"].iloc[0] == pytest.approx(0.0, abs=0.06)
    with pytest.raises(ValueError, match="DR16"):
        ds.load_occam("clusters", "DR17")


def test_linelist():
    ll = ds.load_linelist()
    assert len(ll) == 10488 and ll.attrs["medium"] == "air"
    assert ll["wavelength_air_A"].between(8460, 8700).all()
    ca2 = ll[ll["species"] == "Ca II"]
    for w in (8498.02, 8542.09, 8662.14):  # the Ca II triplet (air)
        assert (np.abs(ca2["wavelength_air_A"] - w) < 0.01).any()
    text = ds.load_linelist("turbospectrum")
    assert text.startswith("'") and "Ca II" in text
