"""ocnb.membership.cones: cone preprocessing (spec A3), cluster parameters (A4), isochrone (A5)."""

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest

from ocnb.errors import IsochroneRangeError, UnknownClusterError
from ocnb.membership.cones import (
    GLOBAL_ZERO_POINT,
    ClusterParams,
    ConeError,
    _dpac_sigma,
    catalogue_parameters,
    cluster_isochrone,
    cluster_parameters,
    densify_isochrone,
    photometric_sigma,
    prepare_cone,
)

# spec A3.3: the DPAC G spline (knots, coefficients), copied from the spec as an independent check
SPEC_G_KNOTS = [4.01667] * 4 + [5, 6, 7, 7.5, 8, 8.5, 9, 9.5, 10, 10.2, 10.4, 10.6, 10.8, 11.0, 11.2, 11.4, 11.6,
                                11.8, 12, 13, 14, 15, 16, 17, 18, 19, 20, 20.5, 20.9] + [20.98333] * 4
SPEC_G_COEFFS = [-2.79887909, -3.08151944, -2.84639276, -3.56581772, -3.72691989, -3.60270497, -3.5436255,
                 -3.55291006, -3.69643657, -3.64899144, -3.67061528, -3.53485525, -3.4978671, -3.8080462,
                 -3.70531135, -3.65814306, -3.49039948, -3.4627759, -3.65010982, -3.67777902, -3.58065738,
                 -3.59787309, -3.63099015, -3.4425947, -3.2403399, -3.01000111, -2.782245, -2.50489, -2.27662556,
                 -2.08203507, -1.98780053, -1.93253788, -1.90632763, 0, 0, 0, 0]


def small_cone(n=30, release="DR3", seed=0, **extra):
    """A synthetic cone with the required columns (units: deg, mas, mas/yr, mag)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "source_id": np.arange(1, n + 1, dtype=np.int64),
        "ra": 100 + rng.normal(0, 0.2, n), "dec": -20 + rng.normal(0, 0.2, n),
        "parallax": rng.normal(2.0, 0.1, n), "parallax_error": np.full(n, 0.05),
        "pmra": rng.normal(-3, 0.3, n), "pmra_error": np.full(n, 0.05),
        "pmdec": rng.normal(4, 0.3, n), "pmdec_error": np.full(n, 0.05),
        "phot_g_mean_mag": rng.uniform(10, 18, n),
    })
    df["phot_bp_mean_mag"] = df["phot_g_mean_mag"] + 0.4
    df["phot_rp_mean_mag"] = df["phot_g_mean_mag"] - 0.6
    for k, v in extra.items():
        df[k] = v
    df.attrs["release"] = release
    return df


# ---------------------------------------------------------------------------------------------------------------
# prepare_cone on the real cones
# ---------------------------------------------------------------------------------------------------------------
def test_blanco1_cone_preprocessing(blanco1_cone):
    out = prepare_cone(blanco1_cone)
    assert len(out) == len(blanco1_cone) == 14785  # complete rows: nothing dropped
    assert isinstance(out.index, pd.RangeIndex)
    flags = out.attrs["flags"]
    assert "no correlations: diagonal covariance" in flags
    assert any(f.startswith("zero point: global offset -0.029") for f in flags)
    assert out.attrs["zero_point"]["method"] == "global"
    # ϖ_corr = ϖ − Z with Z = −0.029 mas: parallaxes increase
    np.testing.assert_allclose(out["parallax_corrected"] - out["parallax"], 0.029, atol=1e-12)
    # RA spans 0/360: wrapped to (−180, 180] (spec A3.4)
    assert out["ra"].min() < 0 < out["ra"].max() < 180
    assert out.attrs["photometric_sigma"] == {"g": "mag_error_column", "bp": "mag_error_column",
                                              "rp": "mag_error_column"}
    np.testing.assert_allclose(out["g_rp"], out["phot_g_mean_mag"] - out["phot_rp_mean_mag"])
    np.testing.assert_allclose(out["sigma_g_rp"] ** 2,
                               out["phot_g_mean_mag_error"] ** 2 + out["phot_rp_mean_mag_error"] ** 2)


def test_m67_cone_preprocessing(m67):
    cone = m67.cone
    assert cone.attrs["release"] == "DR3"
    assert cone.attrs["n_dropped"] == 1  # one source without BP/RP
    assert "no correlations: diagonal covariance" not in m67.flags
    assert cone.attrs["zero_point"] == {"method": "global", "offset_mas": -0.017, "sigma_mas": 0.015,
                                        "reference": "Lindegren+2021 QSO median"}


def test_lindegren2021_zero_point_matches_the_package():
    """DR3 cone with the L21 inputs: Z from gaiadr3-zeropoint, ecl_lat computed when absent; NaN Z keeps ϖ."""
    from zero_point import zpt

    n = 6
    cone = small_cone(n, nu_eff_used_in_astrometry=[1.5, 1.6, np.nan, 1.45, 1.5, 1.5],
                      pseudocolour=[np.nan, np.nan, 1.5, np.nan, np.nan, np.nan],
                      astrometric_params_solved=[31, 31, 95, 31, 31, 31])
    cone.loc[4, "phot_g_mean_mag"] = 21.6  # outside 6 < G < 21: L21 undefined → raw parallax kept
    out = prepare_cone(cone)
    zpt.load_tables()
    from ocnb.membership.cones import _ecliptic_latitude

    beta = _ecliptic_latitude(cone["ra"], cone["dec"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = zpt.get_zpt(cone["phot_g_mean_mag"].to_numpy(), cone["nu_eff_used_in_astrometry"].to_numpy(),
                          cone["pseudocolour"].to_numpy(), beta, cone["astrometric_params_solved"].to_numpy(),
                          _warnings=False)
    ok = np.isfinite(ref)
    assert ok.sum() == 5 and not ok[4]
    np.testing.assert_allclose(out["parallax_zpt"].to_numpy()[ok], ref[ok], rtol=1e-12)
    assert out["parallax_zpt"].iloc[4] == 0.0
    np.testing.assert_allclose(out["parallax_corrected"], cone["parallax"] - out["parallax_zpt"])
    assert np.all(out["parallax_zpt"].to_numpy()[ok] < 0.05)  # L21 Z is of order −0.02 mas
    assert out.attrs["zero_point"]["method"] == "lindegren2021"
    assert any("undefined for 1 of 6" in f for f in out.attrs["flags"])


def test_two_parameter_solutions_dropped():
    cone = small_cone(4, nu_eff_used_in_astrometry=[1.5, np.nan, 1.5, 1.5],
                      pseudocolour=[np.nan, np.nan, np.nan, np.nan], astrometric_params_solved=[31, 3, 31, 31])
    out = prepare_cone(cone)
    assert out["source_id"].tolist() == [1, 3, 4]


def test_dpac_spline_matches_spec_coefficients():
    """σ from n_obs (spec A3.3): 10^(spline(m) − log10 sqrt(n_obs/200)), m clipped to [4.05, 20.95]."""
    from scipy.interpolate import BSpline

    spl = BSpline(np.array(SPEC_G_KNOTS), np.array(SPEC_G_COEFFS)[: len(SPEC_G_KNOTS) - 4], 3, extrapolate=False)
    mags = np.array([3.0, 8.0, 12.3, 17.0, 20.5, 22.0])
    n_obs = np.array([200, 800, 50, 200, 400, 100])
    want = 10 ** (spl(np.clip(mags, 4.05, 20.95)) - np.log10(np.sqrt(n_obs / 200)))
    np.testing.assert_allclose(_dpac_sigma("G", mags, n_obs), want, rtol=1e-6)
    cone = small_cone(6, phot_g_n_obs=n_obs, phot_bp_n_obs=20, phot_rp_n_obs=20)
    cone["phot_g_mean_mag"] = mags
    sig, how = photometric_sigma(cone, "g")
    assert how == "dpac_spline_n_obs"
    np.testing.assert_allclose(sig, want, rtol=1e-6)


def test_photometric_sigma_fallback_order():
    cone = small_cone(3, phot_g_mean_flux_over_error=[100.0, 1000.0, 10.0])
    sig, how = photometric_sigma(cone, "g")
    assert how == "flux_over_error"
    np.testing.assert_allclose(sig, 2.5 / np.log(10) / np.array([100.0, 1000.0, 10.0]))
    cone["phot_g_mean_mag_error"] = [0.01, 0.02, 0.03]
    assert photometric_sigma(cone, "g")[1] == "mag_error_column"
    assert photometric_sigma(small_cone(3), "g")[1] == "dpac_spline_default_n_obs"


# ---------------------------------------------------------------------------------------------------------------
# Cluster parameters (spec A4; eq. 5 with its square)
# ---------------------------------------------------------------------------------------------------------------
def test_cluster_parameters_hand_computed():
    m = pd.DataFrame({"ra": [10.0, 11.0, 12.0], "dec": [1.0, 2.0, 6.0],
                      "pmra": [1.0, 2.0, 4.0], "pmra_error": [1.0, 2.0, 2.0],
                      "pmdec": [0.0, 0.0, 3.0], "pmdec_error": [1.0, 1.0, 1.0],
                      "parallax_corrected": [2.0, 3.0, 2.0], "parallax": [9.0, 9.0, 9.0],
                      "parallax_error": [0.5, 1.0, 1.0]})
    p = cluster_parameters(m, "X", 500.0, 8.5, 0.2)
    assert (p.ra, p.dec) == (11.0, 3.0)
    # inverse-variance mean: (1/1 + 2/4 + 4/4)/(1 + 1/4 + 1/4) = 2.5/1.5
    assert p.pmra == pytest.approx(2.5 / 1.5)
    assert p.pmdec == pytest.approx(1.0)
    assert p.parallax == pytest.approx((2 / 0.25 + 3 + 2) / (4 + 1 + 1))  # the corrected parallax is used
    # eq. 5 with σ² (spec A6 typo fix): (1 + 1/4 + 1/4)^(-1/2) = 0.8165; the printed form would give 1/sqrt(2)
    assert p.sigma_pmra_c == pytest.approx(1.5 ** -0.5)
    assert p.sigma_pmra_c != pytest.approx(2 ** -0.5)
    assert p.sigma_pmdec_c == pytest.approx(3 ** -0.5)
    # population std (ddof 0)
    assert p.sigma_pmra_m == pytest.approx(np.std([1.0, 2.0, 4.0]))
    assert p.sigma_pmdec_m == pytest.approx(np.sqrt(2.0))
    assert (p.dist_pc, p.log_age, p.a0) == (500.0, 8.5, 0.2)
    d = p.to_dict()
    assert ClusterParams.from_dict(json.loads(json.dumps(d))) == p


def test_catalogue_parameters_blanco1():
    cat = catalogue_parameters("blanco_1")
    assert cat["name"] == "Blanco 1"
    assert (cat["dist_pc"], cat["log_age"], cat["a0"]) == (240.0, 8.02, 0.01)


def test_blanco1_params(blanco1):
    p = blanco1.params
    # the CG2020 DR2 values: pm (18.739, 2.602) mas/yr, ϖ 4.21 mas; our means of the ocelot seed members agree
    assert p.pmra == pytest.approx(18.74, abs=0.15) and p.pmdec == pytest.approx(2.60, abs=0.15)
    assert p.parallax == pytest.approx(4.21 + 0.0, abs=0.05)
    assert 0.5 < p.ra < 1.3 and -30.3 < p.dec < -29.7
    # errors of the means are 10-100× smaller than the dispersions (spec A14)
    assert 10 < p.sigma_pmra_m / p.sigma_pmra_c < 1000


# ---------------------------------------------------------------------------------------------------------------
# Isochrone (spec A5)
# ---------------------------------------------------------------------------------------------------------------
def test_densify_rule_hand_case():
    # segment 1: (0,0)→(0,1): length 1.0 → n = 5 points → 3 interior; segment 2: length 0.1 → none;
    # segment 3: length 0.3 → n = max(1, 3) = 3 → 1 interior; label-6 point appended as it is
    c = np.array([0.0, 0.0, 0.0, 0.0375, 5.0])
    g = np.array([0.0, 1.0, 1.1, 1.1, 9.0])
    lab = np.array([1, 1, 1, 2, 6])
    pts = densify_isochrone(c, g, lab)
    want_g = [0, 0.25, 0.5, 0.75, 1.0, 1.1, 1.1, 1.1, 9.0]
    np.testing.assert_allclose(pts[:, 1], want_g)
    np.testing.assert_allclose(pts[:, 0], [0, 0, 0, 0, 0, 0, 0.01875, 0.0375, 5.0])


def test_cluster_isochrone_extinction_and_distance():
    from ocnb.isochrones import isochrone
    from ocnb.photometry import extinction_ratio

    base = dict(name="X", ra=0, dec=0, pmra=0, pmdec=0, parallax=1, sigma_pmra_m=1, sigma_pmdec_m=1,
                sigma_parallax_m=1, sigma_pmra_c=0.1, sigma_pmdec_c=0.1, sigma_parallax_c=0.1, log_age=9.0)
    p0 = ClusterParams(**base, dist_pc=10.0, a0=0.0)
    p1 = ClusterParams(**base, dist_pc=1000.0, a0=1.0)
    iso = isochrone(9.0, 0.0).data
    first = iso.iloc[0]
    i0 = cluster_isochrone(p0)
    i1 = cluster_isochrone(p1)
    # the first point is never moved by the densification
    assert i0[0, 1] == pytest.approx(first["G"]) and i0[0, 0] == pytest.approx(first["G"] - first["RP"])
    kg = extinction_ratio("G", first["teff"], 1.0, law="F99")
    krp = extinction_ratio("RP", first["teff"], 1.0, law="F99")
    assert i1[0, 1] == pytest.approx(first["G"] + kg + 10.0)
    assert i1[0, 0] == pytest.approx(first["G"] - first["RP"] + kg - krp)
    # Teff dependence: the reddening E(G−RP) differs between the cool and the hot end of the isochrone
    e_cool = (extinction_ratio("G", 3500, 1.0, law="F99") - extinction_ratio("RP", 3500, 1.0, law="F99"))
    e_hot = (extinction_ratio("G", 9000, 1.0, law="F99") - extinction_ratio("RP", 9000, 1.0, law="F99"))
    assert abs(float(e_cool - e_hot)) > 0.02
    # densified: no long jumps among consecutive label ≤ 5 points (max piece len/(n−1) ≤ 0.3 in (8C, G))
    steps = np.hypot(8 * np.diff(i1[:, 0]), np.diff(i1[:, 1]))
    assert np.quantile(steps, 0.95) <= 0.3 + 1e-9


# ---------------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------------
def _drop(col):
    return lambda: small_cone().drop(columns=[col])


def _scale(cols, factor):
    def make():
        c = small_cone()
        for col in cols:
            c[col] = c[col] * factor
        return c
    return make


def _all_nan():
    c = small_cone()
    c["parallax"] = np.nan
    return c


def _all_nan_errors():
    c = small_cone()
    c["parallax_error"] = np.nan
    c["pmra_error"] = np.nan
    return c


def _release(r):
    def make():
        c = small_cone()
        c.attrs["release"] = r
        return c
    return make


BAD = [
    pytest.param(_drop("pmdec_error"), ConeError, r"lacks required column\(s\) \['pmdec_error'\]", id="missing-column"),
    pytest.param(_scale(["parallax", "parallax_error"], 1e-3), ConeError, r"'parallax_error'.*arcsec",
                 id="parallax-in-arcsec"),
    pytest.param(_scale(["parallax", "parallax_error"], 1e3), ConeError, r"'parallax_error'.*µas",
                 id="parallax-in-uas"),
    pytest.param(_scale(["pmra", "pmra_error"], 1e-3), ConeError, r"'pmra_error'.*mas/yr", id="pm-wrong-unit"),
    pytest.param(_scale(["dec"], 10), ConeError, r"degrees", id="dec-out-of-range"),
    pytest.param(_all_nan, ConeError, r"none of its 30 rows.*'parallax': 30", id="all-nan-astrometry"),
    pytest.param(_all_nan_errors, ConeError, r"none of its 30 rows.*'parallax_error': 30", id="all-nan-errors"),
    pytest.param(_release("DR4"), ConeError, r"release 'DR4' unknown", id="unknown-release"),
    pytest.param(lambda: small_cone().to_numpy(), ConeError, r"pandas DataFrame", id="not-a-frame"),
]


@pytest.mark.parametrize(("make", "exc", "match"), BAD)
def test_prepare_cone_bad_input(make, exc, match):
    with pytest.raises(exc, match=match):
        prepare_cone(make())


def _some_nan():
    c = small_cone()
    c.loc[[2, 5], "pmra"] = np.nan
    return c


def _no_release():
    c = small_cone()
    c.attrs.clear()
    return c


FLAGS = [
    pytest.param(small_cone, "no correlations: diagonal covariance", id="no-correlations"),
    pytest.param(_no_release, "release not given (attrs['release']): assumed DR3", id="no-release"),
    pytest.param(_some_nan, "dropped 2 of 30 rows with NaN (or non-positive errors) in the columns used; "
                            "NaN counts: {'pmra': 2}", id="nan-rows-dropped"),
    pytest.param(lambda: small_cone(release="DR2"), "zero point: global offset -0.029 ± 0.030 mas (DR2", id="dr2-zpt"),
]


@pytest.mark.parametrize(("make", "flag"), FLAGS)
def test_prepare_cone_flags(make, flag):
    out = prepare_cone(make())
    assert any(f.startswith(flag) for f in out.attrs["flags"]), out.attrs["flags"]


def test_correlations_present_no_flag(almeida_members):
    out = prepare_cone(almeida_members)
    assert "no correlations: diagonal covariance" not in out.attrs["flags"]
    assert out.attrs["zero_point"]["offset_mas"] == GLOBAL_ZERO_POINT["EDR3"][0]


@pytest.mark.parametrize(("log_age", "match"), [(11.0, r"cluster 'X'.*log_age = 11\.0"),
                                                (float("nan"), r"cluster 'X'.*log_age = nan")])
def test_isochrone_off_grid(log_age, match):
    p = ClusterParams("X", 0, 0, 0, 0, 1, 1, 1, 1, 0.1, 0.1, 0.1, 1000.0, log_age, 0.1)
    with pytest.raises(IsochroneRangeError, match=match):
        cluster_isochrone(p)


def test_isochrone_bad_distance():
    p = ClusterParams("X", 0, 0, 0, 0, 1, 1, 1, 1, 0.1, 0.1, 0.1, -5.0, 9.0, 0.1)
    with pytest.raises(ConeError, match=re.escape("distance -5.0 pc")):
        cluster_isochrone(p)


@pytest.mark.parametrize("name", ["Not A Cluster 123"])
def test_catalogue_unknown(name):
    with pytest.raises(UnknownClusterError):
        catalogue_parameters(name)


# ---------------------------------------------------------------------------------------------------------------
# spec A2: the archive query (text only; the fetch goes through ocnb.datasets.gaia_cone_search)
# ---------------------------------------------------------------------------------------------------------------
def test_cone_adql_is_spec_a2():
    from ocnb.datasets import load_members
    from ocnb.membership.cones import CONE_COLUMNS, cone_adql

    q = cone_adql("NGC 2360")
    cat = catalogue_parameters("NGC 2360")
    mem = load_members("NGC 2360")
    s_pm = np.sqrt((mem["pmra"].std(ddof=0) ** 2 + mem["pmdec"].std(ddof=0) ** 2) / 2)
    assert q.radius_deg == pytest.approx(np.degrees(50 / cat["dist_pc"]))
    assert q.pm_radius == pytest.approx(10 * s_pm)
    assert q.parallax_halfwidth == pytest.approx(10 * mem["parallax"].std(ddof=0))
    assert q.pm_centre == (cat["pmra"], cat["pmdec"]) and q.parallax_centre == cat["parallax"] and q.flags == ()
    text = q.adql
    assert "FROM gaiadr3.gaia_source" in text and "phot_g_mean_mag < 18" in text
    assert f"AND (abs(parallax - {cat['parallax']:g}) <= " in text
    assert f"AND (sqrt(power(pmra - {cat['pmra']:g}, 2) + power(pmdec - {cat['pmdec']:g}, 2)) <= " in text
    assert "AND (phot_g_n_obs <> 0 AND phot_bp_n_obs <> 0 AND phot_rp_n_obs <> 0)" in text
    assert all(c in text.split("FROM")[0] for c in CONE_COLUMNS)
    # a tighter window and no magnitude cut; a nearby cluster's 50 pc is capped at 10 deg, flagged
    assert cone_adql("NGC 2360", n_sigma=5, g_max=None).pm_radius == pytest.approx(5 * s_pm)
    assert "phot_g_mean_mag <" not in cone_adql("NGC 2360", g_max=None).adql
    near = cone_adql("Hyades")
    assert near.radius_deg == 10.0 and near.flags[0].startswith("cone radius 61.0 deg")


def test_query_cone_runs_through_the_cached_archive_layer(monkeypatch, capsys):
    from ocnb.datasets import online
    from ocnb.membership.cones import CONE_COLUMNS, cone_adql, query_cone

    calls = []

    def fake(ra, dec, radius_deg, **kw):
        calls.append((ra, dec, radius_deg, kw))
        return pd.DataFrame({"source_id": [1, 2]})

    monkeypatch.setattr(online, "gaia_cone_search", fake)
    cone = query_cone("NGC 2360", radius_pc=20)
    q = cone_adql("NGC 2360", radius_pc=20)
    ((ra, dec, radius, kw),) = calls
    assert (ra, dec, radius) == (q.ra, q.dec, q.radius_deg)
    assert kw["where"] == q.where and tuple(kw["columns"]) == CONE_COLUMNS and kw["cache"] is True
    assert q.adql in capsys.readouterr().out
    assert cone.attrs["release"] == "DR3" and cone.attrs["cluster"] == "NGC 2360" and cone.attrs["query"] == q.adql


CONE_BAD = [
    pytest.param(dict(name="NGC 99999"), UnknownClusterError, r"NGC 99999", id="unknown-cluster"),
    pytest.param(dict(name="NGC 2360", radius_pc=0), ConeError, r"radius_pc must be a finite number > 0 pc",
                 id="radius-zero"),
    pytest.param(dict(name="NGC 2360", n_sigma=float("nan")), ConeError, r"n_sigma must be a finite", id="n-sigma-nan"),
    pytest.param(dict(name="NGC 2360", members="NGC 2360"), ConeError, r"member table \(DataFrame\)", id="not-a-table"),
    pytest.param(dict(name="NGC 2360", members=pd.DataFrame({"pmra": [1.0]})), ConeError,
                 r"lacks \['pmdec', 'parallax'\]", id="missing-columns"),
]


@pytest.mark.parametrize(("kwargs", "exc", "match"), CONE_BAD)
def test_cone_adql_bad_input(kwargs, exc, match):
    from ocnb.membership.cones import cone_adql

    with pytest.raises(exc, match=match):
        cone_adql(**kwargs)


def test_cone_adql_needs_ten_members():
    from ocnb.datasets import load_members
    from ocnb.membership.cones import TooFewMembersError, cone_adql

    few = load_members("NGC 2360").head(12).copy()
    few.loc[few.index[:3], "parallax"] = np.nan
    with pytest.raises(TooFewMembersError, match=r"NGC 2360: 9 member\(s\) with finite pmra, pmdec, parallax"):
        cone_adql("NGC 2360", members=few)


@pytest.mark.network
def test_network_query_cone_prepares():
    from ocnb.membership.cones import query_cone

    cone = query_cone("NGC 2360", radius_pc=1.0, g_max=13.0, show_query=False)
    prepared = prepare_cone(cone)
    assert len(prepared) > 5 and prepared.attrs["release"] == "DR3"
    assert "no correlations: diagonal covariance" not in prepared.attrs["flags"]
