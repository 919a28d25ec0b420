"""ocnb.astrometry: parallax zero point and the cluster parallax as a distance-modulus likelihood (issue 14)."""

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from ocnb.astrometry import (
    ANGULAR_COVARIANCE_FLOOR,
    GLOBAL_ZERO_POINT,
    MIN_STARS,
    SIGMA_ZERO_POINT,
    ClusterParallax,
    cluster_parallax,
    dist_mod_to_parallax,
    parallax_to_dist_mod,
    parallax_zero_point,
)
from ocnb.errors import MemberTableError

LIT_CATALOGS = ("HUNT2023", "CAVALLO2024", "CANTAT2020", "DIAS2021")  # benchmarks/peers: literature() mean


def members(n=300, plx=1.0, release="DR3", seed=0, depth_pc=5.0, outliers=0, **extra):
    """Synthetic members: true corrected parallax ``plx`` [mas] with a line-of-sight depth (Gaussian,
    ``depth_pc``), σ_ϖ(G) of real DR3 stars, observed ϖ = ϖ_true + Z_global + noise [mas]."""
    from ocnb.photometry import parallax_error

    rng = np.random.default_rng(seed)
    g = rng.uniform(11.0, 19.0, n)
    err = parallax_error(g)
    true = plx + plx**2 * depth_pc / 1000.0 * rng.standard_normal(n)
    obs = true + rng.normal(0.0, err) + GLOBAL_ZERO_POINT[release][0]
    if outliers:  # field stars: any parallax 0.1-3 mas, measured precisely
        k = rng.choice(n, outliers, replace=False)
        obs[k] = rng.uniform(0.1, 3.0, outliers) * np.where(rng.random(outliers) < 0.5, 1, -1) + plx
    df = pd.DataFrame({"source_id": np.arange(n), "ra": 132.8 + rng.normal(0, 0.3, n),
                       "dec": 11.8 + rng.normal(0, 0.3, n), "parallax": obs, "parallax_error": err,
                       "phot_g_mean_mag": g})
    for key, value in extra.items():
        df[key] = value
    df.attrs["release"] = release
    if outliers:
        df.attrs["outliers"] = np.sort(k)
    return df


# ---------------------------------------------------------------------------------------------------------------
# correctness on synthetic members
# ---------------------------------------------------------------------------------------------------------------
def test_recovers_the_true_parallax():
    cp = cluster_parallax(members(plx=1.0))
    assert isinstance(cp, ClusterParallax)
    assert abs(cp.parallax - 1.0) < 3 * cp.sigma_stat
    # the error is the inverse-variance one (not inflated): within 20 % of (Σ 1/σ²)^-1/2 (true depth 5 pc)
    m = members(plx=1.0)
    formal = 1 / math.sqrt(np.sum(1 / m.parallax_error**2))
    assert 0.99 * formal <= cp.sigma_stat < 1.2 * formal
    assert cp.n_used + cp.n_rejected == cp.n_input == 300 and cp.n_rejected <= 3
    assert cp.release == "DR3"
    assert cp.sigma_sys == pytest.approx(math.hypot(GLOBAL_ZERO_POINT["DR3"][1], ANGULAR_COVARIANCE_FLOOR["DR3"]))
    assert cp.sigma == pytest.approx(math.hypot(cp.sigma_stat, cp.sigma_sys))
    assert cp.dist_mod() == pytest.approx(10.0 - 5 * math.log10(cp.parallax))
    assert cp.dist_mod_sigma() == pytest.approx(5 / math.log(10) * cp.sigma / cp.parallax)
    assert cp.dispersion["chi2_red"] < 1.5 and cp.dispersion["depth_fit_pc"] < 30
    assert cp.used.dtype == bool and cp.used.sum() == cp.n_used
    assert cp.ok and not any(f.startswith("dispersed") for f in cp.flags)


def test_stat_error_is_calibrated_over_seeds():
    """|ϖ̂ − ϖ| < σ_stat in ~68 % of 200 synthetic clusters (binomial sd 3.3 %: bounds ±3 sd)."""
    z = [(cp.parallax - 2.0) / cp.sigma_stat
         for cp in (cluster_parallax(members(n=80, plx=2.0, seed=s)) for s in range(200))]
    inside = np.mean(np.abs(z) < 1)
    assert 0.58 < inside < 0.78, inside
    assert abs(np.mean(z)) < 0.25  # no bias (0.07 sd of the mean of 200)


def test_outliers_are_clipped():
    m = members(plx=1.5, outliers=30, seed=3)
    cp = cluster_parallax(m)
    assert abs(cp.parallax - 1.5) < 3 * cp.sigma_stat
    injected = m.attrs["outliers"]
    assert np.sum(~cp.used[injected]) >= 27  # nearly all injected outliers rejected...
    assert cp.n_rejected <= 33  # ...and few real members
    assert any(f.startswith("clipped") for f in cp.flags)
    # without clipping the mean is pulled far off: the test can fail
    naive = cluster_parallax(m, clip=1e9)
    assert abs(naive.parallax - 1.5) > 5 * cp.sigma_stat


@pytest.mark.parametrize("release", ["DR3", "EDR3", "DR2"])
def test_global_zero_point_applied_and_flagged(release):
    cp = cluster_parallax(members(plx=1.2, release=release, seed=1))
    offset, sigma, _ = GLOBAL_ZERO_POINT[release]
    assert cp.zero_point["method"] == "global" and cp.zero_point["offset_mas"] == offset
    assert any(f.startswith(f"zero point: global offset {offset:+.3f}") for f in cp.flags)
    assert abs(cp.parallax - 1.2) < 3 * cp.sigma_stat  # Z removed (raw mean is 1.2 + Z)
    assert cp.sigma_sys == pytest.approx(math.hypot(sigma, ANGULAR_COVARIANCE_FLOOR[release]))
    if release == "DR2":
        assert cp.sigma_sys > 0.05  # DR2: 0.030 ⊕ 0.043 mas


def test_lindegren2021_zero_point_used_with_its_columns():
    from zero_point import zpt

    n = 200
    rng = np.random.default_rng(5)
    m = members(n=n, plx=1.0, seed=5, nu_eff_used_in_astrometry=rng.uniform(1.45, 1.65, n),
                pseudocolour=np.nan, astrometric_params_solved=31, ecl_lat=-5.0)
    m.loc[:4, "phot_g_mean_mag"] = 5.0  # outside 6 < G < 21: L21 undefined -> global offset for these 5
    zpt.load_tables()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        z_ref = zpt.get_zpt(m.phot_g_mean_mag.to_numpy(), m.nu_eff_used_in_astrometry.to_numpy(),
                            m.pseudocolour.to_numpy(), m.ecl_lat.to_numpy(), m.astrometric_params_solved.to_numpy(),
                            _warnings=False)
    assert np.isnan(z_ref[:5]).all() and np.isfinite(z_ref[5:]).all()
    # observed parallaxes carry the L21 zero point, not the global one
    m["parallax"] = m["parallax"] - GLOBAL_ZERO_POINT["DR3"][0] + np.where(np.isfinite(z_ref), z_ref, -0.017)
    z, info, _ = parallax_zero_point(m, "DR3")
    np.testing.assert_allclose(z[5:], z_ref[5:], rtol=1e-12)
    assert np.all(z[:5] == 0.0) and info["method"] == "lindegren2021" and info["n_undefined"] == 5
    cp = cluster_parallax(m)
    assert cp.zero_point["method"] == "lindegren2021"
    assert cp.zero_point["sigma_mas"] == SIGMA_ZERO_POINT
    assert any("global offset -0.017 mas used for the 5 members" in f for f in cp.flags)
    assert abs(cp.parallax - 1.0) < 3 * cp.sigma_stat
    assert not any(f.startswith("zero point: global offset -0.017 ± ") for f in cp.flags)
    # the same stars with the global offset (an L21 column missing): shifted by mean(Z_L21) − Z_global
    glob = cluster_parallax(m.drop(columns=["nu_eff_used_in_astrometry"]))
    assert glob.zero_point["method"] == "global"
    dz = cp.zero_point["mean_mas"] - GLOBAL_ZERO_POINT["DR3"][0]
    assert glob.parallax - cp.parallax == pytest.approx(dz, abs=0.2 * abs(dz))


def test_cones_reexports_the_zero_point():
    from ocnb.membership import cones

    assert cones.GLOBAL_ZERO_POINT is GLOBAL_ZERO_POINT
    assert cones._zero_point is parallax_zero_point
    assert cones.SIGMA_ZERO_POINT == SIGMA_ZERO_POINT


@pytest.mark.parametrize(("attrs", "column", "expected"), [
    ({"release": "DR2"}, None, "DR2"),
    ({}, ("data_release", "Gaia DR2"), "DR2"),
    ({}, ("release", "EDR3"), "EDR3"),
    ({}, None, "DR3"),
])
def test_release_resolution(attrs, column, expected):
    m = members(n=50)
    m.attrs = dict(attrs)
    if column:
        m[column[0]] = column[1]
    cp = cluster_parallax(m)
    assert cp.release == expected
    if not attrs and column is None:
        assert any(f.startswith("release not given") for f in cp.flags)
    assert cluster_parallax(m, release="DR3").release == "DR3"  # the argument wins


# ---------------------------------------------------------------------------------------------------------------
# likelihood
# ---------------------------------------------------------------------------------------------------------------
def test_loglike_peaks_at_the_true_dist_mod():
    mu_true = 10.0  # 1 kpc, ϖ = 1 mas
    cp = cluster_parallax(members(plx=float(dist_mod_to_parallax(mu_true)), n=500, seed=2))
    grid = np.linspace(8.0, 12.0, 4001)
    ll = cp.loglike(grid)
    assert ll.shape == grid.shape
    assert abs(grid[np.argmax(ll)] - mu_true) < 3 * cp.dist_mod_sigma()
    assert abs(grid[np.argmax(ll)] - cp.dist_mod()) < 2e-3  # the peak is the point estimate
    # Gaussian in parallax space, normalised in ϖ; curvature at the peak = 1/σ_μ² (first-order propagation)
    ref = -0.5 * ((cp.parallax - 10 ** (2 - grid / 5)) / cp.sigma) ** 2 - math.log(cp.sigma * math.sqrt(2 * math.pi))
    np.testing.assert_allclose(ll, ref, rtol=1e-12)
    h = 1e-3
    mu0 = cp.dist_mod()
    curv = (cp.loglike(mu0 + h) - 2 * cp.loglike(mu0) + cp.loglike(mu0 - h)) / h**2
    assert -1 / curv == pytest.approx(cp.dist_mod_sigma() ** 2, rel=1e-3)
    assert isinstance(cp.loglike(10.0), float)
    assert cp.loglike(np.full((3, 4), 10.0)).shape == (3, 4)


def test_conversions_and_output():
    assert dist_mod_to_parallax(10.0) == pytest.approx(1.0)
    assert parallax_to_dist_mod(np.array([1.0, 10.0])) == pytest.approx([10.0, 5.0])
    assert np.isnan(parallax_to_dist_mod(-0.1)) and np.isnan(parallax_to_dist_mod(0.0))
    cp = cluster_parallax(members())
    d = cp.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["dist_mod"] == pytest.approx(cp.dist_mod()) and d["n_used"] == cp.n_used and "used" not in d
    assert set(d) >= {"parallax", "sigma_stat", "sigma_sys", "sigma", "n_used", "n_rejected", "release",
                      "zero_point", "flags", "dispersion", "dist_mod_sigma"}
    assert len(repr(cp)) < 200 and "dMod=" in repr(cp)
    assert cp.to_frame().shape[0] == 1


# ---------------------------------------------------------------------------------------------------------------
# bad input: clear errors and explicit flags
# ---------------------------------------------------------------------------------------------------------------
def _drop(col):
    return lambda: members().drop(columns=[col])


def _set(col, rows, value):
    def make():
        m = members(n=30)
        m.loc[rows, col] = value
        return m
    return make


def _scaled(factor):
    def make():
        m = members()
        m[["parallax", "parallax_error"]] *= factor
        return m
    return make


ERRORS = [
    pytest.param(lambda: members().to_dict(), "must be a pandas DataFrame", id="not-a-dataframe"),
    pytest.param(_drop("parallax"), "no 'parallax' column", id="no-parallax"),
    pytest.param(lambda: members().drop(columns=["parallax_error", "phot_g_mean_mag"]),
                 "neither 'parallax_error'", id="no-error-no-g"),
    pytest.param(lambda: members(n=MIN_STARS - 1), r"at least 5 .*'parallax_error'.*4 of 4 rows", id="4-stars"),
    pytest.param(_set("parallax_error", slice(None), np.nan), r"0 of 30 rows", id="all-errors-nan"),
    pytest.param(_set("parallax_error", slice(3, None), 0.0), r"'parallax_error'.*3 of 30 rows", id="zero-errors"),
    pytest.param(_set("parallax", slice(2, None), np.nan), r"'parallax'.*2 of 30 rows", id="nan-parallaxes"),
    pytest.param(_scaled(1e-3), "look like arcsec", id="arcsec"),
    pytest.param(_scaled(1e3), "look like µas", id="microarcsec"),
    pytest.param(lambda: members().assign(parallax="n/a"), r"'parallax'.*0 of 300", id="text-parallax"),
]


@pytest.mark.parametrize(("make", "match"), ERRORS)
def test_bad_input_errors(make, match):
    with pytest.raises(MemberTableError, match=match):
        cluster_parallax(make())


def test_bad_arguments():
    with pytest.raises(MemberTableError, match="release 'DR4' unknown"):
        cluster_parallax(members(), release="DR4")
    with pytest.raises(ValueError, match="clip"):
        cluster_parallax(members(), clip=0)


def _no_error_column():
    return members().drop(columns=["parallax_error"])


FLAGS = [
    pytest.param(_set("parallax_error", [0, 1], -0.1), "dropped 2 of 30 rows: 0 with NaN 'parallax', 2 with NaN or "
                                                       "non-positive 'parallax_error'", True, id="negative-errors"),
    pytest.param(_set("parallax", [0], np.nan), "dropped 1 of 30 rows: 1 with NaN 'parallax'", True, id="nan-plx"),
    pytest.param(_no_error_column, "parallax error: no 'parallax_error' column", True, id="error-model"),
    pytest.param(lambda: members(plx=-0.3), "non-positive mean parallax", False, id="negative-parallax"),
    pytest.param(lambda: members(plx=0.005, n=20), "low significance", True, id="insignificant"),
    pytest.param(lambda: members(plx=1.0).assign(parallax=lambda d: d.parallax * 1000),
                 "implausible mean parallax", False, id="parallax-in-microarcsec"),
    pytest.param(lambda: members().assign(ruwe=np.r_[np.full(10, 3.0), np.ones(290)]),
                 "dropped 10 members with ruwe > 1.4", True, id="ruwe"),
    pytest.param(lambda: members(outliers=150, seed=4), "dispersed", True, id="half-outliers"),
]


@pytest.mark.parametrize(("make", "flag", "ok"), FLAGS)
def test_bad_input_flags(make, flag, ok):
    cp = cluster_parallax(make())
    assert any(f.startswith(flag) for f in cp.flags), cp.flags
    assert cp.ok is ok
    if cp.parallax <= 0:
        assert np.isnan(cp.dist_mod()) and np.isnan(cp.dist_mod_sigma()) and cp.to_dict()["dist_mod"] is None
        assert np.isfinite(cp.loglike(10.0))  # the parallax-space likelihood stays usable


def test_error_model_fallback_is_close_to_the_real_errors():
    m = members(seed=7)
    with_err = cluster_parallax(m)
    model = cluster_parallax(m.drop(columns=["parallax_error"]))
    assert model.sigma_stat == pytest.approx(with_err.sigma_stat, rel=0.1)  # the synthetic σ are the model
    assert abs(model.parallax - with_err.parallax) < with_err.sigma_stat


# ---------------------------------------------------------------------------------------------------------------
# real clusters and fields
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "source"), [("M67", "iso"), ("Pleiades", "iso"), ("M67", "dr3_cone"),
                                              ("Pleiades", "almeida")])
def test_real_clusters_match_the_literature_distance(name, source):
    """Parallax distance within 3 % (0.065 mag) of the literature mean dMod (HUNT2023, CAVALLO2024, CANTAT2020,
    DIAS2021, as benchmarks/peers/asteca_vs_ocnb.py::literature): M67 9.658, Pleiades 5.623 mag."""
    from ocnb.datasets import literature_parameters, load_members

    lit = literature_parameters(name, catalogs=LIT_CATALOGS)
    mu_lit = float(np.nanmean(lit["dist_mod"]))
    cp = cluster_parallax(load_members(name, source=source))
    assert abs(cp.dist_mod() - mu_lit) < 0.065, (cp, mu_lit)
    assert cp.dist_mod_sigma() < 0.04
    assert cp.dispersion["frac_rejected"] < 0.1
    assert not any(f.startswith("dispersed") for f in cp.flags), cp.flags


def test_field_stars_are_dispersed():
    """No cluster: a 0.5° field cone and 1000 random all-sky DR3 stars are flagged "dispersed" (spread of kpc)."""
    from ocnb.datasets import load_field

    for name in ("field_dr3_ra45_dec0_r0p5deg", "random_dr3"):
        f = load_field(name)
        cp = cluster_parallax(f.sample(min(len(f), 1000), random_state=0))
        assert any(f.startswith("dispersed") for f in cp.flags), (name, cp.flags)
        assert cp.dispersion["depth_fit_pc"] > 300, (name, cp.dispersion)
