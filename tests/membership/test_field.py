"""Tests of ocnb.membership.field: the SIMULATED Galactic field, real members embedded in it, and the check of
the simulated field against the two real fields shipped.

Measured with the default model (seeds 0-3; the tests use seed 1 and margins wider than the seed-to-seed
spread): the DR3 cone at (ra, dec) = (45, 0) deg, r = 0.5 deg, G < 18 (698 real stars): simulated/real counts
0.87-0.94; two-sample KS D: G 0.045-0.101, BP-RP 0.097-0.13 (the simulated colours are ~0.05 mag too blue: the
default dust layer gives A_V(inf) = 0.12 there, a BP-RP fit prefers ~0.3), pmra 0.047-0.087, pmdec 0.039-0.054,
parallax 0.035-0.089. The Blanco 1 DR2 cone's non-members (G < 18, ruwe < 1.4, 14 523 real stars, r = 2.51 deg
around the cone's mean position): counts 1.04-1.06; KS D: G 0.031-0.038, BP-RP 0.017-0.027, pmra 0.034-0.041,
pmdec 0.033-0.038, parallax 0.056-0.065.
"""

import math

import numpy as np
import pandas as pd
import pytest

from ocnb.errors import MemberTableError, UnknownClusterError
from ocnb.membership.field import (
    CONE_COLUMNS,
    DEFAULT_MODEL,
    FieldModelError,
    TestClusterError,
    compare_fields,
    cone_cuts,
    degrade_members,
    dr2_error_level,
    embed_cluster,
    extinction_along,
    plot_field_comparison,
    simulate_field,
)

STAT_COLUMNS = ("phot_g_mean_mag", "bp_rp", "pmra", "pmdec", "parallax")


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_field():
    """A small SIMULATED cone with truth columns (b = 40 deg, r = 0.4 deg, G ≤ 18)."""
    return simulate_field(30.0, 40.0, 0.4, g_max=18.0, seed=3)


@pytest.fixture(scope="module")
def real_dr3_field():
    from ocnb.datasets import load_field

    f = load_field("field_dr3")
    return f[f["phot_g_mean_mag"] < 18].reset_index(drop=True)


@pytest.fixture(scope="module")
def blanco1_field():
    """Blanco 1 DR2 cone without its ocelot members, its centre (Galactic) and radius from the data."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    from ocnb.datasets import load_field

    cone = load_field("blanco1")
    ra = cone["ra"].to_numpy(float)
    ra_w = np.where(ra > 180, ra - 360, ra)
    centre = SkyCoord(ra=ra_w.mean() * u.deg, dec=cone["dec"].mean() * u.deg)
    radius = float(centre.separation(SkyCoord(ra=ra * u.deg, dec=cone["dec"].to_numpy(float) * u.deg)).deg.max())
    field = cone[cone["ocelot_label"] != 0].reset_index(drop=True)
    return field, float(centre.galactic.l.deg), float(centre.galactic.b.deg), radius


# ---------------------------------------------------------------------------
# simulate_field
# ---------------------------------------------------------------------------
def test_columns_ids_and_attrs(small_field):
    df = small_field
    assert len(df) > 200
    assert set(CONE_COLUMNS) <= set(df.columns)
    assert df.attrs["simulated"] is True and df.attrs["release"] == "DR3" and df.attrs["seed"] == 3
    assert "SIMULATED" in df.attrs["notes"]
    assert (df["source_id"] < 0).all() and df["source_id"].is_unique
    num = df[[c for c in CONE_COLUMNS if c != "pseudocolour"]].to_numpy(float)
    assert np.isfinite(num).all()
    assert df["pseudocolour"].isna().all() and (df["astrometric_params_solved"] == 31).all()
    assert (df["phot_g_mean_mag"] <= 18.0).all()
    for c in ("parallax_error", "pmra_error", "pmdec_error", "phot_g_mean_mag_error"):
        assert (df[c] > 0).all()
    for c in ("parallax_pmra_corr", "parallax_pmdec_corr", "pmra_pmdec_corr"):
        assert df[c].abs().max() < 1
    # positions inside the cone
    assert _sep_deg(df["l"], df["b"], 30.0, 40.0).max() <= 0.4 + 1e-9
    assert np.allclose(df["bp_rp"], df["phot_bp_mean_mag"] - df["phot_rp_mean_mag"])
    assert set(df["component"].unique()) == {"thin", "thick", "halo"}


def test_same_seed_same_field_other_seed_other_field(small_field):
    again = simulate_field(30.0, 40.0, 0.4, g_max=18.0, seed=3)
    pd.testing.assert_frame_equal(small_field, again)
    other = simulate_field(30.0, 40.0, 0.4, g_max=18.0, seed=4)
    assert len(other) != len(small_field) or not np.allclose(other["phot_g_mean_mag"], small_field["phot_g_mean_mag"])


def test_noise_matches_the_borrowed_covariance(small_field):
    """Observed − true astrometry, divided by the reported σ, is standard normal (zero point removed)."""
    df = small_field
    from zero_point import zpt

    zpt.load_tables()
    z = zpt.get_zpt(df["phot_g_mean_mag"].to_numpy(), df["nu_eff_used_in_astrometry"].to_numpy(),
                    df["pseudocolour"].to_numpy(), df["ecl_lat"].to_numpy(),
                    df["astrometric_params_solved"].to_numpy(), _warnings=False)
    for obs, true, err, shift in (("parallax", "true_parallax", "parallax_error", z),
                                  ("pmra", "true_pmra", "pmra_error", 0.0),
                                  ("pmdec", "true_pmdec", "pmdec_error", 0.0)):
        pull = (df[obs] - df[true] - shift) / df[err]
        assert abs(pull.mean()) < 0.15, obs
        assert 0.85 < pull.std() < 1.15, obs


def test_physics_trends(small_field):
    df = small_field
    # extinction grows along the line of sight and never exceeds A_V(inf) of the dust layer
    order = np.argsort(df["distance_pc"].to_numpy())
    assert np.all(np.diff(df["a_v"].to_numpy()[order]) >= -1e-12)
    a_inf = DEFAULT_MODEL["dust_a0_mag_per_kpc"] / 1000 * DEFAULT_MODEL["dust_h_z_pc"] / math.sin(math.radians(40))
    assert df["a_v"].max() <= a_inf + 1e-9
    # halo stars: metal-poor, old, far, and with a much wider proper-motion spread than thin-disc stars
    halo, thin = df[df["component"] == "halo"], df[df["component"] == "thin"]
    assert halo["mh"].median() < thin["mh"].median() - 0.7
    assert halo["log_age"].min() >= 10.0 and halo["distance_pc"].median() > 3 * thin["distance_pc"].median()
    v_t = lambda d: 4.74047 * np.hypot(d["true_pmra"], d["true_pmdec"]) * d["distance_pc"] / 1000  # noqa: E731
    assert np.median(v_t(halo)) > 2 * np.median(v_t(thin))
    assert 0.2 < df["is_binary"].mean() < 0.35  # binary_fraction 0.3, companions below PARSEC's mass range unlit


def test_thin_disc_heating_with_age():
    """Velocity dispersions of the thin disc grow with age (Aumer & Binney 2009)."""
    df = simulate_field(90.0, 0.0, 2.0, g_max=13.0, seed=0, extinction=(1000.0, 0.5))
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    thin = df[df["component"] == "thin"]
    pm_b = SkyCoord(ra=thin["ra"].to_numpy() * u.deg, dec=thin["dec"].to_numpy() * u.deg,
                    pm_ra_cosdec=thin["true_pmra"].to_numpy() * u.mas / u.yr,
                    pm_dec=thin["true_pmdec"].to_numpy() * u.mas / u.yr).galactic.pm_b.to_value(u.mas / u.yr)
    vt = 4.74047 * pm_b * thin["distance_pc"].to_numpy() / 1000  # ≈ vertical velocity W near b = 0
    age = thin["log_age"].to_numpy()
    young, old = vt[age < 9.0], vt[age > 9.8]
    assert len(young) > 30 and len(old) > 30
    assert old.std() > 1.5 * young.std()


def test_cuts_are_applied_after_noise():
    base = simulate_field(200.0, 20.0, 0.8, seed=2)
    pm = (float(base["pmra"].median()), float(base["pmdec"].median()), 3.0)
    plx = (0.3, 1.2)
    cut = simulate_field(200.0, 20.0, 0.8, seed=2, pm_box=pm, parallax_range=plx)
    assert 0 < len(cut) < len(base)
    assert cone_cuts(cut, pm, plx).all()
    # the parallax pre-selection before the expensive steps loses no star that could pass: the cut field
    # holds as many stars as the cut of the uncut one (same stars before the G cut, other noise after it)
    expected = base[cone_cuts(base, pm, plx)]
    assert abs(len(cut) - len(expected)) < 4 * math.sqrt(len(expected))
    assert abs(cut["phot_g_mean_mag"].median() - expected["phot_g_mean_mag"].median()) < 0.3
    box = simulate_field(200.0, 20.0, 0.8, seed=2, pm_box=(-5, 5, -5, 5))
    assert box["pmra"].between(-5, 5).all() and box["pmdec"].between(-5, 5).all()


def test_cache_returns_the_same_field(tmp_path, monkeypatch):
    monkeypatch.setenv("OCNB_DATA_DIR", str(tmp_path))
    fresh = simulate_field(120.0, -30.0, 0.3, seed=9)
    first = simulate_field(120.0, -30.0, 0.3, seed=9, cache=True)
    second = simulate_field(120.0, -30.0, 0.3, seed=9, cache=True)
    for df in (first, second):
        pd.testing.assert_frame_equal(fresh, df, check_categorical=False)
        assert df.attrs == fresh.attrs
    assert any(p.name.endswith(".parquet") for p in tmp_path.rglob("*"))


def test_dr2_errors_are_larger():
    dr3 = simulate_field(60.0, 50.0, 0.5, seed=1)
    dr2 = simulate_field(60.0, 50.0, 0.5, seed=1, release="DR2")
    assert dr2.attrs["release"] == "DR2"
    bright = lambda d: d[d["phot_g_mean_mag"].between(14, 17)]  # noqa: E731
    assert bright(dr2)["pmra_error"].median() > 1.5 * bright(dr3)["pmra_error"].median()


def test_extinction_along():
    d = np.array([0.0, 100.0, 1000.0, 1e5])
    a = extinction_along(d, 10.0)
    assert a[0] == 0 and np.all(np.diff(a) > 0)
    assert extinction_along(500.0, 10.0, (500.0, 0.8)) == pytest.approx(0.8)
    assert extinction_along(1e7, 30.0, 0.25) == pytest.approx(0.25, rel=1e-6)
    # in the plane: 0.7 mag/kpc, linear
    assert extinction_along(2000.0, 0.0) == pytest.approx(1.4)


# ---------------------------------------------------------------------------
# simulated vs real fields
# ---------------------------------------------------------------------------
def test_matches_real_dr3_field(real_dr3_field):
    """Complete DR3 cone at (ra, dec) = (45, 0), r = 0.5 deg, G < 18: counts within 30 %, shapes by KS."""
    sim = simulate_field(176.9613, -48.9026, 0.5, g_max=18.0, seed=1)
    stats = compare_fields(sim, real_dr3_field, STAT_COLUMNS, real_area_deg2=math.pi * 0.5 ** 2)
    assert 0.7 < stats.loc["counts", "ratio"] < 1.3
    assert stats.loc["phot_g_mean_mag", "ks"] < 0.12
    assert stats.loc["bp_rp", "ks"] < 0.18  # the dust layer is too thin here (module docstring)
    for col in ("pmra", "pmdec", "parallax"):
        assert stats.loc[col, "ks"] < 0.15, col
    counts = stats.attrs["counts"]
    faint = counts[counts["g_lo"] >= 14]
    assert ((faint["ratio"] > 0.5) & (faint["ratio"] < 1.5)).all()


def test_matches_blanco1_non_members(blanco1_field):
    """Blanco 1 DR2 cone's non-members (G < 18, ruwe < 1.4): counts within 20 %, every KS D < 0.08."""
    real, l_c, b_c, radius = blanco1_field
    assert 2.4 < radius < 2.6 and abs(b_c + 79.1) < 0.2
    sim = simulate_field(l_c, b_c, radius, g_max=18.0, seed=1, release="DR2")
    sim = sim[sim["ruwe"] < 1.4]
    area = (180 / math.pi) ** 2 * 2 * math.pi * (1 - math.cos(math.radians(radius)))  # deg², spherical cap
    assert area == pytest.approx(sim.attrs["area_deg2"])
    stats = compare_fields(sim, real, STAT_COLUMNS, real_area_deg2=area)
    assert 0.85 < stats.loc["counts", "ratio"] < 1.2
    for col in STAT_COLUMNS:
        assert stats.loc[col, "ks"] < 0.08, col
    assert abs(stats.loc["bp_rp", "median_sim"] - stats.loc["bp_rp", "median_real"]) < 0.05
    counts = stats.attrs["counts"]
    mid = counts[(counts["g_lo"] >= 10) & (counts["g_hi"] <= 18)]
    assert ((mid["ratio"] > 0.6) & (mid["ratio"] < 1.6)).all()


def test_compare_fields_identical_and_plot(real_dr3_field):
    stats = compare_fields(real_dr3_field, real_dr3_field, real_area_deg2=1.0, sim_area_deg2=1.0)
    assert (stats.loc[list(STAT_COLUMNS), "ks"] == 0).all()
    assert stats.loc["counts", "ratio"] == pytest.approx(1.0)
    assert (stats.attrs["counts"]["ratio"].dropna() == 1).all()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plot_field_comparison(simulate_field(176.96, -48.9, 0.5, seed=1), real_dr3_field,
                                real_area_deg2=math.pi * 0.25)
    assert len(fig.axes) == 4
    plt.close(fig)


# ---------------------------------------------------------------------------
# embed_cluster
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ngc2243():
    return embed_cluster(cluster_name="NGC 2243", seed=0, cache=False)


def test_embed_cluster(ngc2243):
    from ocnb.datasets import load_members

    cone, truth = ngc2243
    members = load_members("NGC 2243", source="almeida")
    assert list(cone.columns) == list(CONE_COLUMNS) and isinstance(cone.index, pd.RangeIndex)
    assert truth.dtype == bool and truth.shape == (len(cone),)
    assert cone.attrs["cluster"] == "NGC 2243" and cone.attrs["simulated"] is True
    assert cone.attrs["n_members"] == truth.sum() > 400 and cone.attrs["n_field"] == (~truth).sum() > 100
    # members keep their ids; field ids are negative; every real member in the cone is in the truth
    assert set(cone.loc[truth, "source_id"]) <= set(members["source_id"])
    assert (cone.loc[~truth, "source_id"] < 0).all()
    n_kept = len(members) - sum(cone.attrs["members_dropped"].values())
    assert truth.sum() == n_kept
    # rows are shuffled (truth does not sit in one block) and every row passes the cone's cuts
    assert not truth[: truth.sum()].all() and truth[: truth.sum()].any()
    assert cone_cuts(cone, cone.attrs["pm_box"], cone.attrs["parallax_range"]).all()
    assert (cone["phot_g_mean_mag"] <= 18).all()
    # spec A2 radius: 50 pc at the CG2020 distance
    assert cone.attrs["radius_deg"] == pytest.approx(math.degrees(50 / cone.attrs["dist_pc"]))
    sep = _sep_deg(cone["ra"], cone["dec"], cone.attrs["ra"], cone.attrs["dec"])  # same formula on the ICRS sphere
    assert sep.max() <= cone.attrs["radius_deg"] + 1e-6
    # the members' zero-point inputs are filled in (consistent zero points for members and field)
    assert cone["nu_eff_used_in_astrometry"].notna().all()
    # 10-sigma cuts around the members' means
    m = members
    s_pm = math.sqrt((m["pmra"].std(ddof=0) ** 2 + m["pmdec"].std(ddof=0) ** 2) / 2)
    assert cone.attrs["pm_box"][2] == pytest.approx(10 * s_pm)


def test_embed_cluster_reproducible_and_with_given_field(ngc2243):
    cone, truth = ngc2243
    again, truth2 = embed_cluster(cluster_name="NGC 2243", seed=0, cache=False)
    pd.testing.assert_frame_equal(cone, again)
    assert np.array_equal(truth, truth2)
    field = cone.loc[~truth].reset_index(drop=True)
    mixed, t3 = embed_cluster(cluster_name="NGC 2243", field=field)
    assert t3.sum() == truth.sum() and (~t3).sum() == len(field)
    assert any("field given by the caller" in f for f in mixed.attrs["flags"])


def test_embed_cluster_drops_nan_members_with_a_flag():
    from ocnb.datasets import load_members

    members = load_members("NGC 2243", source="almeida").copy()
    members.loc[members.index[:5], "pmra"] = np.nan
    cone, _ = embed_cluster(members, seed=1, cache=False)
    assert cone.attrs["members_dropped"]["nan_astrometry_or_photometry"] == 5
    assert any("NaN" in f for f in cone.attrs["flags"])
    assert cone[["pmra", "parallax"]].notna().all().all()


def test_blanco1_is_the_held_out_test():
    with pytest.raises(TestClusterError, match="held-out real test"):
        embed_cluster(cluster_name="Blanco 1")
    _, truth = embed_cluster(cluster_name="Blanco 1", allow_test_cluster=True, cache=False)
    assert truth.sum() > 300


# ---------------------------------------------------------------------------
# release="DR2": members degraded to DR2 precision (SIMULATED noise on real astrometry)
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ngc2360_members():
    from ocnb.datasets import load_members

    return load_members("NGC 2360", source="almeida")


def test_dr2_error_level_values_and_larger_than_edr3():
    """The DR2 error model (median of rescaled random DR2 sources) at a few G; measured values ±5 % (a regression
    check: the reference sample is fixed, the function deterministic)."""
    from ocnb.photometry import parallax_error

    g = np.array([12.0, 16.0, 17.0, 17.5, 18.0])
    lev = dr2_error_level(g)
    assert lev["parallax_error"] == pytest.approx([0.0218, 0.0555, 0.0847, 0.1124, 0.1636], rel=0.05)
    assert lev["pmra_error"] == pytest.approx([0.0313, 0.0969, 0.1259, 0.184, 0.2753], rel=0.05)
    assert np.all(np.diff(lev["parallax_error"]) > 0) and np.all(np.diff(lev["pmdec_error"]) > 0)
    # DR2 (22 months) is less precise than EDR3 (34 months): ϖ by > 1.1x, proper motions by > 1.6x
    assert np.all(lev["parallax_error"] > 1.1 * parallax_error(g))
    assert np.all(lev["pmra_error"] > 1.6 * parallax_error(g))
    assert dr2_error_level(np.array([[16.0, 17.0]]))["pmdec_error"].shape == (1, 2)


def test_degrade_members_errors_noise_and_zero_point(ngc2360_members):
    from ocnb.membership.field import _nu_eff, _zero_point

    m = ngc2360_members
    d = degrade_members(m, seed=5)
    assert len(d) == len(m) and d["source_id"].tolist() == m["source_id"].tolist()
    assert d.attrs["release"] == "DR2" and "SIMULATED noise" in d.attrs["notes"]
    g = m["phot_g_mean_mag"].to_numpy(float)
    lev = dr2_error_level(g)
    for err in ("parallax_error", "pmra_error", "pmdec_error"):
        s1 = m[err].to_numpy(float)
        np.testing.assert_allclose(d[err], np.maximum(lev[err], s1))
    assert d[["parallax_pmra_corr", "parallax_pmdec_corr", "pmra_pmdec_corr"]].isna().all().all()
    # the EDR3 zero point out, DR2's -0.029 mas in
    bp_rp = (m["phot_bp_mean_mag"] - m["phot_rp_mean_mag"]).to_numpy(float)
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    ecl = SkyCoord(ra=m["ra"].to_numpy(float) * u.deg, dec=m["dec"].to_numpy(float) * u.deg
                   ).barycentrictrueecliptic.lat.deg
    shift = -_zero_point(g, _nu_eff(bp_rp), ecl, "DR3") - 0.029
    assert np.all(np.abs(shift) < 0.06)
    # the added noise has variance σ_DR2² − σ_EDR3²: normalised differences ~ N(0, 1). With n ≥ 300 rows the
    # standard deviation of the sample std is ≤ 1/sqrt(2n) = 0.041: margin 0.2 (~5σ); mean within 5/sqrt(n)
    for col, err, off in (("parallax", "parallax_error", shift), ("pmra", "pmra_error", 0.0),
                          ("pmdec", "pmdec_error", 0.0)):
        s1, s2 = m[err].to_numpy(float), d[err].to_numpy(float)
        var = s2 ** 2 - s1 ** 2
        ok = var > 1e-8
        assert ok.sum() >= 300, (col, ok.sum())
        zz = (d[col].to_numpy(float) - m[col].to_numpy(float) - off)[ok] / np.sqrt(var[ok])
        assert abs(np.std(zz) - 1.0) < 0.2, (col, np.std(zz))
        assert abs(np.mean(zz)) < 5 / math.sqrt(ok.sum()), (col, np.mean(zz))
        # rows whose EDR3 error already exceeds the DR2 level are unchanged (up to the zero point)
        np.testing.assert_allclose(d[col].to_numpy(float)[~ok] - m[col].to_numpy(float)[~ok],
                                   np.broadcast_to(off, ok.shape)[~ok], atol=1e-9)
    # photometry: errors x sqrt(42/27), a small added noise
    f = math.sqrt(42 / 27)
    np.testing.assert_allclose(d["phot_g_mean_mag_error"], f * m["phot_g_mean_mag_error"])
    dg = (d["phot_g_mean_mag"] - m["phot_g_mean_mag"]).to_numpy(float)
    added = m["phot_g_mean_mag_error"].to_numpy(float) * math.sqrt(f ** 2 - 1)
    assert np.std(dg / added) == pytest.approx(1, abs=0.2)


def test_degrade_members_is_seeded(ngc2360_members):
    a, b, c = (degrade_members(ngc2360_members, seed=s) for s in (1, 1, 2))
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["pmra"], c["pmra"])
    # the input is not modified
    assert ngc2360_members.attrs.get("release") != "DR2" or "SIMULATED" not in ngc2360_members.attrs.get("notes", "")


def test_degrade_members_bad_input(ngc2360_members):
    with pytest.raises(MemberTableError, match=r"lacks column\(s\) \['pmra'\]"):
        degrade_members(ngc2360_members.drop(columns=["pmra"]))
    bad = ngc2360_members.copy()
    bad.loc[bad.index[0], "parallax"] = np.nan
    with pytest.raises(MemberTableError, match="NaN"):
        degrade_members(bad)


def test_embed_cluster_dr2(ngc2243):
    """A DR2 cone: degraded members, no correlation columns, release in attrs; seeded (given field: fast)."""
    cone3, truth3 = ngc2243
    field = cone3.loc[~truth3].reset_index(drop=True)
    cone, truth = embed_cluster(cluster_name="NGC 2243", seed=4, field=field, release="DR2")
    again, truth_b = embed_cluster(cluster_name="NGC 2243", seed=4, field=field, release="DR2")
    pd.testing.assert_frame_equal(cone, again)
    assert np.array_equal(truth, truth_b)
    assert cone.attrs["release"] == "DR2" and cone3.attrs["release"] == "DR3"
    assert not any(c.endswith("_corr") for c in cone.columns)
    assert list(cone.columns) == [c for c in CONE_COLUMNS if not c.endswith("_corr")]
    assert any("degraded to DR2 precision" in f for f in cone.attrs["flags"])
    # the members are degrade_members(members, seed) (same seed), matched by source_id
    from ocnb.datasets import load_members

    deg = degrade_members(load_members("NGC 2243", source="almeida"), seed=4).set_index("source_id")
    mem = cone.loc[truth].set_index("source_id")
    for col in ("pmra", "pmra_error", "parallax", "parallax_error", "phot_g_mean_mag_error"):
        np.testing.assert_allclose(mem[col], deg.loc[mem.index, col], rtol=1e-12, err_msg=col)
    # wider member spread in DR2 -> the 10σ cuts are at least as wide as with EDR3 precision
    assert cone.attrs["pm_box"][2] >= cone3.attrs["pm_box"][2]


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------
def _members_without_parallax():
    from ocnb.datasets import load_members

    return load_members("NGC 2243", source="almeida").drop(columns=["parallax"])


def _members_all_nan():
    from ocnb.datasets import load_members

    m = load_members("NGC 2243", source="almeida").copy()
    m["parallax"] = np.nan
    return m


BAD_FIELD = [
    (dict(l=10, b=91, radius_deg=1), FieldModelError, r"b = 91.*\|b\| ≤ 90"),
    (dict(l=10, b=-90.5, radius_deg=1), FieldModelError, r"Galactic latitude"),
    (dict(l=10, b=20, radius_deg=0), FieldModelError, r"radius_deg = 0.*\(0, 10\]"),
    (dict(l=10, b=20, radius_deg=-1), FieldModelError, r"radius_deg"),
    (dict(l=10, b=20, radius_deg=10.5), FieldModelError, r"radius_deg = 10.5"),
    (dict(l=10, b=20, radius_deg=1, g_max=7.9), FieldModelError, r"g_max = 7.9.*\[8, 21\]"),
    (dict(l=10, b=20, radius_deg=1, g_max=21.5), FieldModelError, r"g_max = 21.5"),
    (dict(l=float("nan"), b=20, radius_deg=1), FieldModelError, r"l = nan.*finite"),
    (dict(l="north", b=20, radius_deg=1), FieldModelError, r"l = 'north' is not a number"),
    (dict(l=10, b=20, radius_deg=1, model={"thick_fration": 0.1}), FieldModelError,
     r"unknown model key.*thick_fraction"),
    (dict(l=10, b=20, radius_deg=1, model={"binary_fraction": 1.5}), FieldModelError, r"binary_fraction"),
    (dict(l=10, b=20, radius_deg=1, model={"thin_h_z_old_pc": -300}), FieldModelError, r"thin_h_z_old_pc.*> 0"),
    (dict(l=10, b=20, radius_deg=1, pm_box=(1, 2)), FieldModelError, r"pm_box = \(1, 2\)"),
    (dict(l=10, b=20, radius_deg=1, pm_box=(1, 2, -3)), FieldModelError, r"pm_box radius"),
    (dict(l=10, b=20, radius_deg=1, pm_box=(5, 1, 0, 2)), FieldModelError, r"pmra_lo < pmra_hi"),
    (dict(l=10, b=20, radius_deg=1, parallax_range=(2, 1)), FieldModelError, r"parallax_range = \(2, 1\)"),
    (dict(l=10, b=20, radius_deg=1, release="DR4"), FieldModelError, r"release = 'DR4'"),
    (dict(l=10, b=20, radius_deg=1, extinction=-0.1), FieldModelError, r"extinction = -0.1"),
    (dict(l=10, b=20, radius_deg=1, extinction=(0, 1)), FieldModelError, r"d_pc > 0"),
    (dict(l=10, b=0, radius_deg=1, extinction=0.5), FieldModelError, r"infinite path"),
]


@pytest.mark.parametrize("kwargs,exc,match", BAD_FIELD)
def test_bad_field_input(kwargs, exc, match):
    kwargs = dict(kwargs)
    args = (kwargs.pop("l"), kwargs.pop("b"), kwargs.pop("radius_deg"))
    with pytest.raises(exc, match=match):
        simulate_field(*args, **kwargs)


BAD_EMBED = [
    (dict(cluster_name="NGC 99999"), UnknownClusterError, r"NGC 99999"),
    (dict(members=None, cluster_name=None), UnknownClusterError, r"needs"),
    (dict(members="Blanco 1"), TestClusterError, r"Blanco 1 is the held-out"),
    (dict(members=_members_without_parallax, cluster_name="NGC 2243"), MemberTableError,
     r"lacks required column\(s\) \['parallax'\]"),
    (dict(members=_members_all_nan, cluster_name="NGC 2243"), MemberTableError, r"0 member\(s\) with finite"),
    (dict(members=lambda: pd.DataFrame({"ra": [1.0]}), cluster_name=None), UnknownClusterError, r"cluster_name"),
    (dict(members=lambda: [1, 2, 3], cluster_name="NGC 2243"), MemberTableError, r"must be a DataFrame"),
    (dict(cluster_name="NGC 2243", g_max=25), FieldModelError, r"g_max = 25"),
    (dict(cluster_name="NGC 2243", radius_pc=0), FieldModelError, r"radius_pc = 0"),
    (dict(cluster_name="NGC 2243", field="cone"), FieldModelError, r"field must be a DataFrame"),
    (dict(cluster_name="NGC 2243", release="DR4"), FieldModelError, r"release = 'DR4'"),
    (dict(cluster_name="NGC 2243", release=None), FieldModelError, r"release = None"),
]


@pytest.mark.parametrize("kwargs,exc,match", BAD_EMBED)
def test_bad_embed_input(kwargs, exc, match):
    kwargs = dict(kwargs)
    if callable(kwargs.get("members")):
        kwargs["members"] = kwargs["members"]()
    with pytest.raises(exc, match=match):
        embed_cluster(cache=False, **kwargs)


# ---------------------------------------------------------------------------
def _sep_deg(lon, lat, lon0, lat0):
    """Angular separation [deg] of (lon, lat) from (lon0, lat0), all in deg (any spherical frame)."""
    lon, lat = np.radians(np.asarray(lon, float)), np.radians(np.asarray(lat, float))
    lon0, lat0 = math.radians(lon0), math.radians(lat0)
    c = np.sin(lat) * math.sin(lat0) + np.cos(lat) * math.cos(lat0) * np.cos(lon - lon0)
    return np.degrees(np.arccos(np.clip(c, -1, 1)))
