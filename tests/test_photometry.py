"""Extinction (dustapprox), photometric and parallax error models (ocnb.photometry)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ocnb import photometry as P
from ocnb.errors import PhotometryError, PhotometryRangeError

ISO_CLUSTERS = ["M67", "Hyades", "Praesepe", "alpha Per", "Blanco 1", "Pleiades"]


@pytest.fixture(scope="session")
def iso_members():
    from ocnb.datasets import load_members

    return [load_members(c, source="iso") for c in ISO_CLUSTERS]


@pytest.fixture(scope="session")
def dr3_cones():
    """Real Gaia DR3 members (photon-noise magnitude errors): M67 and the Pleiades."""
    from ocnb.datasets import load_members

    return [load_members("M67", source="dr3_cone"), load_members("Pleiades", source="dr3_cone")]


@pytest.fixture(scope="session")
def almeida():
    """EDR3 members of the 20 Almeida+2023 clusters."""
    from ocnb.datasets import list_member_clusters, load_members

    lc = list_member_clusters()
    return [load_members(c, source="almeida") for c in lc.cluster[lc.source == "almeida"]]


@pytest.fixture(scope="session")
def random_dr3():
    from ocnb.datasets import load_field

    return load_field("random_dr3")


# --- band names ------------------------------------------------------------------
def test_band_tables():
    assert P.BANDS == ("G", "BP", "RP", "J", "H", "Ks", "W1", "W2", "W3", "W4")
    assert set(P.MEMBER_COLUMNS) == set(P.BANDS) == set(P.ERROR_COLUMNS)
    assert P.MEMBER_COLUMNS["G"] == "phot_g_mean_mag" and P.MEMBER_COLUMNS["Ks"] == "ks_m"
    assert P.MEMBER_COLUMNS["W1"] == "w1mpro" and P.ERROR_COLUMNS["J"] == "j_msigcom"


# --- extinction ------------------------------------------------------------------
@pytest.mark.parametrize("law", P.EXTINCTION_LAWS)
def test_extinction_matches_dustapprox_predict(law):
    from dustapprox.models.polynomial import PolynomialModel

    rng = np.random.default_rng(42)
    n = 500
    x = pd.DataFrame({"teff": rng.uniform(3500, 45000, n), "A0": rng.uniform(0.01, 15, n),
                      "R0": rng.uniform(2.4, 5.0, n)})
    for band in P.BANDS:
        m = P._poly_model(band, law)
        ref = PolynomialModel.from_file(m.filename, m.passband).predict(x)
        ours = P.extinction_ratio(band, x.teff.to_numpy(), x.A0.to_numpy(), law=law, r_v=x.R0.to_numpy())
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6, err_msg=f"{law} {band}")
        # scalar A_V / R_V (the fast path used for one cluster)
        ours1 = P.extinction_ratio(band, x.teff.to_numpy(), 1.5, law=law)
        ref1 = PolynomialModel.from_file(m.filename, m.passband).predict(x.assign(A0=1.5, R0=3.1))
        np.testing.assert_allclose(ours1, ref1, rtol=0, atol=1e-6)


def test_extinction_teff_dependence_and_values():
    teff = np.linspace(3800, 9000, 30)
    for band in ("G", "BP", "RP", "J"):
        k = P.extinction_ratio(band, teff, 1.0)
        assert np.all(np.diff(k) > 0), band  # bluer SED -> more extinction per A_V
    k = P.extinction_ratio("G", [3800, 9000], 1.0, law="G23")
    np.testing.assert_allclose(k, [0.849, 0.974], atol=2e-3)  # stack.md
    # ordering of the bands for a solar-type star
    ks = [float(P.extinction_ratio(b, 5800, 0.5)) for b in ("BP", "G", "RP", "J", "H", "Ks", "W1")]
    assert ks == sorted(ks, reverse=True)


def test_extinction_clipping_to_validity_range():
    v = P.extinction_validity("G23")
    assert v["teff"] == (3500.0, 50000.0) and v["a_v"][1] == 20.0
    k = P.extinction_ratio("G", [2000.0, 3000.0, 3500.0, 60000.0, 50000.0], 1.0)
    assert k[0] == k[1] == k[2] and k[3] == k[4]
    assert P.extinction_ratio("G", 5000, 0.0) == P.extinction_ratio("G", 5000, 0.001)
    assert P.extinction_ratio("G", 5000, 30.0) == P.extinction_ratio("G", 5000, 20.0)
    with pytest.raises(ValueError, match="unknown extinction law"):
        P.extinction_ratio("G", 5000, 1.0, law="CCM89")
    with pytest.raises(ValueError, match="unknown band"):
        P.extinction_ratio("V", 5000, 1.0)


def test_extinguish_dict_and_frame():
    teff = np.array([4000.0, 6000.0])
    mags = {"G": np.array([5.0, 3.0]), "J": np.array([3.0, 2.0]), "mini": np.array([0.7, 1.1])}
    out = P.extinguish(mags, teff, a_v=1.0, dist_mod=10.0)
    np.testing.assert_allclose(out["G"], mags["G"] + 10 + P.extinction_ratio("G", teff, 1.0))
    np.testing.assert_array_equal(out["mini"], mags["mini"])
    frame = pd.DataFrame(mags)
    fout = P.extinguish(frame, teff, a_v=0.0, dist_mod=5.0)
    assert isinstance(fout, pd.DataFrame)
    np.testing.assert_allclose(fout["J"], frame["J"] + 5.0)  # A_V = 0 is exact
    np.testing.assert_array_equal(frame["J"], mags["J"])  # input untouched


# --- photometric errors ---------------------------------------------------------
def test_error_model_monotonic_in_magnitude():
    model = P.PhotometricErrorModel()
    for band in P.BANDS:
        # the DPAC spline has real bumps for bright stars (window classes / gating up to G ≈ 13.6)
        lo = 14.0 if band in P.GAIA_BANDS else 4.0
        mag = np.linspace(lo, 21.0, 200)
        sig = model.sigma(band, mag, extrapolate=True)  # beyond S/N = 1 too (W4 ends at 9.9)
        assert np.all(np.isfinite(sig)) and np.all(sig > 0), band
        assert np.all(np.diff(sig) >= 0), band
        inside = mag[mag <= model.faint_limit(band)]
        np.testing.assert_array_equal(model.sigma(band, inside), sig[:inside.size])
    emp = P.PhotometricErrorModel(gaia="empirical")
    assert np.all(np.diff(emp.sigma("BP", np.linspace(5, 21, 100))) > 0)
    assert np.isnan(model.sigma("G", np.nan))


def _binned_ratio(model_sigma, mag, sig, min_count=10):
    mb, sb, _ = P.binned_median_errors(mag, sig, 0.5, min_count)
    return mb, model_sigma(mb) / sb


def test_gaia_errors_match_real_dr3_members(dr3_cones):
    # M67 (old, photometrically quiet). The Pleiades' errors are inflated by
    # spot variability of its young stars (checked below).
    for frame in dr3_cones[:1]:
        for gaia in ("spline", "empirical"):
            model = P.PhotometricErrorModel(gaia=gaia)
            for band in P.GAIA_BANDS:
                mag = frame[P.MEMBER_COLUMNS[band]].to_numpy(float)
                mb, ratio = _binned_ratio(lambda m, b=band, e=model: e.sigma(b, m), mag,
                                          P.gaia_mag_errors(frame, band))
                sel = mb > 12.0
                assert sel.sum() >= 8
                assert np.all((ratio[sel] > 1 / 1.5) & (ratio[sel] < 1.5)), (gaia, band, np.round(ratio, 2))
    pleiades = dr3_cones[1]
    mb, ratio = _binned_ratio(lambda m: P.PhotometricErrorModel().sigma("G", m), pleiades["phot_g_mean_mag"],
                              P.gaia_mag_errors(pleiades, "G"))
    assert np.median(ratio[mb > 12]) < 0.5


def test_twomass_wise_errors_match_members(iso_members):
    frame = pd.concat(iso_members, ignore_index=True)
    model = P.PhotometricErrorModel()
    for band in P.TWOMASS_BANDS + P.WISE_BANDS:
        ok = P._quality_mask(frame, band)
        mag = frame[P.MEMBER_COLUMNS[band]].to_numpy(float, na_value=np.nan)[ok]
        sig = frame[P.ERROR_COLUMNS[band]].to_numpy(float, na_value=np.nan)[ok]
        mb, ratio = _binned_ratio(lambda m, b=band: model.sigma(b, m), mag, sig)
        assert mb.size >= 3, band
        assert np.all((ratio > 1 / 1.5) & (ratio < 1.5)), (band, np.round(ratio, 2))


def test_error_refits_reproduce_constants(iso_members, dr3_cones, almeida, random_dr3):
    fit = P.fit_error_coefficients(iso_members)
    for band, coeffs in fit.items():
        np.testing.assert_allclose(coeffs, P.EMPIRICAL_ERROR_COEFFS[band], rtol=1e-4, atol=1e-8, err_msg=band)
    fit = P.fit_gaia_error_coefficients(dr3_cones[0])
    for band, coeffs in fit.items():
        np.testing.assert_allclose(coeffs, P.GAIA_EMPIRICAL_COEFFS[band], rtol=1e-4, atol=1e-9, err_msg=band)
    g, s = P.fit_parallax_error(dr3_cones + almeida + [random_dr3])
    np.testing.assert_allclose(g, P.PARALLAX_ERROR_TABLE["DR3"][0], atol=1e-4)
    np.testing.assert_allclose(s, P.PARALLAX_ERROR_TABLE["DR3"][1], atol=1e-5)


def test_add_noise_statistics():
    model = P.PhotometricErrorModel()
    n = 200_000
    mags = {"G": np.full(n, 17.0), "BP": np.full(n, 17.8), "J": np.full(n, 15.0), "W3": np.full(n, 11.0),
            "teff": np.full(n, 5000.0)}
    noisy, sig = model.add_noise(mags, rng=1, return_sigma=True)
    for band in ("G", "BP", "J", "W3"):
        z = (noisy[band] - mags[band]) / sig[band]
        assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01, band
    np.testing.assert_array_equal(noisy["teff"], mags["teff"])
    again = model.add_noise(mags, rng=1)
    np.testing.assert_array_equal(again["G"], noisy["G"])  # reproducible with a seed
    frame = pd.DataFrame({"G": [15.0, np.nan], "Ks": [12.0, 13.0]})
    out = model.add_noise(frame, rng=np.random.default_rng(3))
    assert isinstance(out, pd.DataFrame) and np.isnan(out["G"].iloc[1]) and out["Ks"].notna().all()


def test_zero_point_and_floor():
    base = P.PhotometricErrorModel().sigma("G", 12.0)
    zp = P.PhotometricErrorModel(zero_point=True).sigma("G", 12.0)
    assert zp == pytest.approx(np.hypot(base, P.GAIA_ZERO_POINT_SIGMA["G"]))
    assert P.PhotometricErrorModel(floor=0.01).sigma("J", 10.0) >= 0.01


# --- parallax errors ---------------------------------------------------------------
def test_parallax_error_matches_real_dr3(dr3_cones, almeida, random_dr3):
    for frame in (*dr3_cones, pd.concat(almeida), random_dr3):
        g = frame["phot_g_mean_mag"].to_numpy(float)
        mb, ratio = _binned_ratio(P.parallax_error, g, frame["parallax_error"].to_numpy(float))
        sel = mb > 11.0
        assert np.all((ratio[sel] > 1 / 1.5) & (ratio[sel] < 1.5)), np.round(ratio, 2)
    sig = P.parallax_error(np.linspace(13, 21, 50))
    assert np.all(np.diff(sig) > 0)  # photon-limited range
    assert P.parallax_error(15.0) == pytest.approx(0.0258, rel=0.2)
    assert P.parallax_error(15.0, release="EDR3") == P.parallax_error(15.0)
    with pytest.raises(ValueError, match="DR2"):
        P.parallax_error(15.0, release="DR2")


# --- bad-input table -----------------------------------------------------------------
# Each row: a call that the QA pass or a user could make -> the error type and a regex that the
# message must match (it names the parameter, the value and the range/unit).
def _model(**kw):
    return P.PhotometricErrorModel(**kw)


_MAGS = {"G": np.array([15.0, 16.0]), "BP": np.array([15.5, 16.6])}
_TEFF = np.array([5000.0, 4500.0])
BAD_INPUT = [
    # extinction
    ("extinguish a_v=-1", lambda: P.extinguish(_MAGS, _TEFF, a_v=-1.0, dist_mod=10.0),
     PhotometryRangeError, r"a_v = -1 mag < 0: extinction cannot be negative"),
    ("extinguish one negative a_v", lambda: P.extinguish(_MAGS, _TEFF, a_v=np.array([0.1, -0.2]), dist_mod=10.0),
     PhotometryRangeError, r"a_v = -0.2 mag < 0"),
    ("extinction_ratio a_v=-1", lambda: P.extinction_ratio("G", 5000.0, -1.0),
     PhotometryRangeError, r"a_v = -1 mag < 0"),
    ("extinguish NaN dist_mod", lambda: P.extinguish(_MAGS, _TEFF, a_v=0.1, dist_mod=np.nan),
     PhotometryRangeError, r"dist_mod = nan mag is not a finite number"),
    ("extinguish lower-case bands", lambda: P.extinguish({"g": _MAGS["G"]}, _TEFF, a_v=0.1, dist_mod=10.0),
     PhotometryError, r"abs_mags has none of the bands .* \(keys: \['g'\]\)"),
    ("NaN Teff", lambda: P.extinction_ratio("G", [5000.0, np.nan, np.nan], 1.0),
     PhotometryRangeError, r"teff = nan \(and 1 more of 3 values\) K is not a finite number"),
    ("NaN a_v", lambda: P.extinction_ratio("G", 5000.0, np.nan), PhotometryRangeError, r"a_v = nan mag"),
    ("string Teff", lambda: P.extinction_ratio("G", "hot", 1.0), PhotometryError, r"teff must be a number .*'hot'"),
    ("r_v = 0", lambda: P.extinction_ratio("G", 5000.0, 1.0, r_v=0.0), PhotometryRangeError, r"r_v = 0 must be > 0"),
    ("Teff beyond dustapprox, on_range='raise'",
     lambda: P.extinction_ratio("G", [2000.0, 5000.0], 1.0, on_range="raise"),
     PhotometryRangeError, r"teff = 2000 K is outside the dustapprox G23 model's validity range 3500–50000 K"),
    ("A_V beyond dustapprox, on_range='raise'", lambda: P.extinction_ratio("G", 5000.0, 25.0, on_range="raise"),
     PhotometryRangeError, r"a_v = 25 mag is outside .* 0–20 mag"),
    ("bad on_range", lambda: P.extinction_ratio("G", 5000.0, 1.0, on_range="ignore"),
     PhotometryError, r"on_range must be 'clip' or 'raise'"),
    ("unknown band", lambda: P.extinction_ratio("V", 5000.0, 1.0), PhotometryError, r"unknown band 'V'"),
    ("lower-case band", lambda: P.extinction_ratio("bp", 5000.0, 1.0), PhotometryError,
     r"unknown band 'bp' \(did you mean 'BP'\?\)"),
    ("unknown law", lambda: P.extinction_ratio("G", 5000.0, 1.0, law="CCM89"), PhotometryError,
     r"unknown extinction law 'CCM89'; choose one of \('G23', 'F99'\)"),
    # photometric errors
    ("sigma BP 30", lambda: _model().sigma("BP", 30.0), PhotometryRangeError,
     r"BP = 30 mag is outside the DPAC-spline error model's validity range \(BP ≤ 23\.\d\d mag, .*S/N = 1\)"),
    ("sigma J array beyond", lambda: _model().sigma("J", [12.0, 19.5, 25.0]), PhotometryRangeError,
     r"J = 19.5 \(and 1 more of 3 values\) mag .* empirical 2MASS .* \(J ≤ 18\.\d\d mag"),
    ("sigma empirical Gaia", lambda: _model(gaia="empirical").sigma("G", 30.0), PhotometryRangeError,
     r"G = 30 mag .* empirical Gaia error model"),
    ("add_noise beyond", lambda: _model().add_noise({"W4": np.array([8.0, 12.0])}, rng=0), PhotometryRangeError,
     r"W4 = 12 mag .* empirical WISE"),
    ("add_noise no bands", lambda: _model().add_noise({"g": np.array([8.0])}, rng=0), PhotometryError,
     r"mags has none of the bands"),
    ("sigma unknown band", lambda: _model().sigma("Gmag", 15.0), PhotometryError, r"unknown band 'Gmag'"),
    ("n_obs = 0", lambda: _model(n_obs={"BP": 0}), PhotometryError,
     r"n_obs\['BP'\] = 0: the number of Gaia observations must be a finite number ≥ 1"),
    ("n_obs < 0", lambda: _model(n_obs={"G": -5}), PhotometryError, r"n_obs\['G'\] = -5"),
    ("n_obs NaN", lambda: _model(n_obs={"RP": np.nan}), PhotometryError, r"n_obs\['RP'\] = nan"),
    ("n_obs text", lambda: _model(n_obs={"RP": "many"}), PhotometryError, r"n_obs\['RP'\] = 'many' is not a number"),
    ("n_obs for 2MASS", lambda: _model(n_obs={"J": 3}), PhotometryError, r"n_obs has band\(s\) \['J'\]"),
    ("n_obs set to 0 later", lambda: _set_n_obs_zero().sigma("BP", 15.0), PhotometryError, r"n_obs\['BP'\] = 0"),
    ("negative floor", lambda: _model(floor=-0.01), PhotometryError, r"floor = -0.01 mag must be ≥ 0"),
    ("unknown Gaia model", lambda: _model(gaia="dr2"), PhotometryError, r"gaia must be 'spline' or 'empirical'"),
    # parallax errors
    ("parallax_error G=60", lambda: P.parallax_error(60.0), PhotometryRangeError,
     r"G = 60 mag is outside the parallax-error model's validity range \(G ≤ 21.5 mag"),
    ("parallax_error array", lambda: P.parallax_error([15.0, 22.0]), PhotometryRangeError, r"G = 22 mag"),
    ("parallax_error DR2", lambda: P.parallax_error(15.0, release="DR2"), PhotometryError, r"release 'DR2'"),
]


def _set_n_obs_zero():
    model = P.PhotometricErrorModel()
    model.n_obs["BP"] = 0  # the attribute is public: checked where it is used, too
    return model


@pytest.mark.parametrize("name,call,error,pattern", BAD_INPUT, ids=[r[0] for r in BAD_INPUT])
def test_bad_input_table(name, call, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        call()
    assert isinstance(info.value, ValueError)  # ocnb's photometry errors stay ValueErrors for old callers


# Documented clips and explicit opt-ins: rows whose outcome is a value, with the rule it follows.
def test_documented_clips_and_flags():
    model = P.PhotometricErrorModel()
    # Teff / A_V outside dustapprox's range: evaluated at the nearest end (documented clip)
    assert P.extinction_ratio("G", 2000.0, 1.0) == P.extinction_ratio("G", 3500.0, 1.0)
    assert P.extinction_ratio("G", 5000.0, 25.0) == P.extinction_ratio("G", 5000.0, 20.0)
    # A_V = 0 is exact, not an extrapolation, also with on_range="raise"
    assert P.extinction_ratio("G", 5000.0, 0.0, on_range="raise") == P.extinction_ratio("G", 5000.0, 0.0)
    # brighter than the spline: the bright-end value (saturation not modelled)
    assert model.sigma("G", 1.0) == model.sigma("G", 4.01667)
    # NaN magnitudes: NaN σ, no error (missing photometry stays missing)
    assert np.isnan(model.sigma("BP", np.nan)) and np.isnan(P.parallax_error(np.nan))
    # explicit opt-in: the old extrapolation, unchanged
    assert model.sigma("BP", 30.0, extrapolate=True) == pytest.approx(465.73, rel=1e-3)
    assert P.parallax_error(60.0, extrapolate=True) == pytest.approx(7.568e22, rel=1e-3)
    # the validity limit is where σ reaches S/N = 1, just inside it σ is returned
    lim = model.faint_limit("BP")
    assert 23.0 < lim < 24.0
    assert model.sigma("BP", lim - 0.01) < P.SIGMA_MAX
    with pytest.raises(PhotometryRangeError):
        model.sigma("BP", lim + 0.01)
    # n_obs scales the limit: more observations, fainter limit
    assert P.PhotometricErrorModel(n_obs={"BP": 200}).faint_limit("BP") > lim
    assert P.parallax_error(21.5) == P.parallax_error(21.5, extrapolate=True)
