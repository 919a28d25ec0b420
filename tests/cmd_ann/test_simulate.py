"""Synthetic clusters of Cavallo et al. (2024), Sect. 2.2 (ocnb.cmd_ann.simulate)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ocnb.cmd_ann.simulate import (
    LABELS,
    TABLE1_PRIORS,
    SyntheticClusters,
    isochrone_lattice,
    simulate_clusters,
    twomass_quality_letter,
    twomass_usable,
)

M67 = {"log_age": 9.55, "feh": 0.0, "a_v": 0.11, "dist_mod": 9.68}


@pytest.fixture(scope="module")
def sim():
    return simulate_clusters(300, seed=11, progress=False)


@pytest.fixture(scope="module")
def m67_sim():
    return simulate_clusters(0, params={**{k: [v] for k, v in M67.items()}, "n_stars": [3000]},
                             seed=3, progress=False)


@pytest.fixture(scope="module")
def m67_real():
    from ocnb.datasets import load_members

    return load_members("M67")


def test_table1_constants():
    assert TABLE1_PRIORS == {"log_age": (6.7, 10.1), "feh": (-0.8, 0.6), "a_v": (0.0, 5.0),
                             "dist_mod": (0.0, 15.0), "log_n": (1.0, 3.5)}
    assert LABELS == ("log_age", "feh", "a_v", "dist_mod")


def test_labels_respect_priors(sim):
    lab = sim.labels
    assert len(sim) == 300 and len(lab) == 300
    for k in LABELS:
        lo, hi = TABLE1_PRIORS[k]
        assert lab[k].between(lo, hi).all(), k
        # the draws fill the range (uniform): not stuck in a corner
        assert lab[k].min() < lo + 0.1 * (hi - lo) and lab[k].max() > hi - 0.1 * (hi - lo), k
    logn = np.log10(lab["n_stars"])
    assert logn.min() >= 1.0 - 1e-9 and logn.max() <= 3.5 + 1e-9
    assert lab["n_stars"].min() >= 10 and lab["n_stars"].max() <= 3162


def test_n_stars_are_survivors_of_the_cut(sim):
    assert np.array_equal(sim.sizes, sim.labels["n_stars"].to_numpy())
    g = sim.stars["phot_g_mean_mag"]
    assert g.size == sim.labels["n_stars"].sum()
    assert np.isfinite(g).all() and g.max() <= 18.0
    for k in ("phot_bp_mean_mag", "phot_rp_mean_mag", "j_m", "h_m", "parallax", "teff", "mini"):
        assert np.isfinite(sim.stars[k]).all(), k


def test_meta_records_simulation(sim):
    m = sim.meta
    assert m["simulated"] is True
    assert 0.0 <= m["rejection_rate"] < 1.0 and m["n_draws"] >= 300
    assert m["lattice"]["spacing"][0] <= 0.05 + 1e-9 and m["lattice"]["spacing"][1] <= 0.05 + 1e-9
    assert m["feh_isochrone_max"] == pytest.approx(0.30)
    assert m["feh_clipped_fraction"] == pytest.approx(np.mean(sim.labels["feh"] > 0.30))
    json.dumps(m)  # serialisable
    assert "SIMULATED" in repr(sim)


def test_isochrone_is_nearest_lattice_node_and_feh_clipped(sim):
    lab = sim.labels
    assert (np.abs(lab["log_age_iso"] - lab["log_age"]) <= 0.025 + 1e-9).all()
    assert (lab["mh_iso"] <= 0.30 + 1e-9).all()
    assert (np.abs(lab["mh_iso"] - np.minimum(lab["feh"], 0.30)) <= 0.025 + 1e-9).all()
    # labels keep the drawn value even where the isochrone is clipped
    assert (lab["feh"] > 0.35).any()


def test_lattice_nodes_equal_grid_isochrones():
    from ocnb.isochrones import default_grid

    lat = isochrone_lattice(log_age_range=(8.0, 8.1), mh_range=(-0.1, 0.0), step=0.05)
    assert lat.ages.tolist() == [8.0, 8.05, 8.1] and lat.mhs.tolist() == [-0.1, -0.05, 0.0]
    k = int(lat.node_index(8.05, -0.05))
    iso = default_grid().isochrone(8.05, -0.05).data
    n = lat.length[k]
    assert n == len(iso)
    np.testing.assert_allclose(lat.columns["G"][k, :n], iso["G"].to_numpy())
    np.testing.assert_allclose(lat.mini[k, :n], iso["mini"].to_numpy())


def test_twomass_usability_rule():
    sig = np.array([0.02, 0.1, 0.15, 0.16, 0.25, 0.31, np.nan])
    assert twomass_usable(sig).tolist() == [True, True, True, False, False, False, False]
    assert twomass_quality_letter(sig).tolist() == ["A", "A", "B", "C", "D", "D", "D"]


def test_twomass_rule_matches_real_letters(m67_real):
    """On real M67 members, S/N = 1.0857/σ > 7 reproduces the catalogue's A/B letters."""
    m = m67_real[m67_real["ph_qual"].notna()]
    for k, band in enumerate(("j", "h")):
        sig = m[f"{band}_msigcom"].to_numpy(float, na_value=np.nan)
        letter = m["ph_qual"].str[k]
        real_ab = letter.isin(["A", "B"]).to_numpy() & np.isfinite(sig)
        assert (twomass_usable(sig) == real_ab).mean() > 0.99


def test_synthetic_twomass_flags_consistent(sim):
    tab = sim.cluster(int(np.argmax(sim.labels["dist_mod"])))  # distant: faint 2MASS stars
    letters_ab = tab["ph_qual"].str[0].isin(["A", "B"]).to_numpy()
    assert np.array_equal(letters_ab, twomass_usable(tab["j_msigcom"]))
    usable = twomass_usable(sim.stars["j_msigcom"])
    assert 0.0 < usable.mean() <= 1.0
    # fainter J → larger σ: the usable stars are the brighter ones
    j = sim.stars["j_m"]
    assert j[usable].max() < 17.5 and (~usable).sum() > 0


def test_parallax_from_distance_with_gaia_errors(sim):
    lab = sim.labels
    np.testing.assert_allclose(lab["parallax_true"], 1000.0 / 10 ** ((lab["dist_mod"] + 5) / 5), rtol=1e-12)
    pull = (lab["parallax"] - lab["parallax_true"]) / lab["parallax_error"]
    assert np.abs(pull).max() < 6 and 0.5 < pull.std() < 1.5
    i = 5
    a, b = sim.offsets[i], sim.offsets[i + 1]
    sig = sim.stars["parallax_error"][a:b].astype(float)
    assert lab["parallax_error"][i] == pytest.approx(np.sqrt((sig**2).sum()) / (b - a), rel=1e-6)
    assert lab["parallax"][i] == pytest.approx(sim.stars["parallax"][a:b].astype(float).mean(), rel=1e-9)


def test_noiseless_parallax_option():
    sc = simulate_clusters(20, seed=1, progress=False, parallax_noise=False)
    np.testing.assert_allclose(sc.labels["parallax"], sc.labels["parallax_true"], rtol=1e-6)


def test_reproducible(sim):
    again = simulate_clusters(300, seed=11, progress=False)
    pd.testing.assert_frame_equal(again.labels, sim.labels)
    assert np.array_equal(again.stars["phot_g_mean_mag"], sim.stars["phot_g_mean_mag"])
    other = simulate_clusters(300, seed=12, progress=False)
    assert not np.allclose(other.labels["log_age"], sim.labels["log_age"])


def test_m67_like_cluster_matches_real_members(m67_sim, m67_real):
    """Median BP−RP of the simulated M67 (main sequence, turn-off) within 0.05 mag of the real one."""
    sim = m67_sim.cluster(0)

    def med_colour(t, g0):
        g = t["phot_g_mean_mag"]
        sel = (g > g0 - 0.25) & (g < g0 + 0.25)
        return float(np.nanmedian((t["phot_bp_mean_mag"] - t["phot_rp_mean_mag"])[sel]))

    for g0 in (13.5, 14.5, 15.0):
        assert abs(med_colour(sim, g0) - med_colour(m67_real, g0)) < 0.05, g0
    # J−H at G = 15 and the mean parallax agree too
    def med_jh(t):
        g = t["phot_g_mean_mag"]
        sel = (g > 14.75) & (g < 15.25)
        return float(np.nanmedian((t["j_m"] - t["h_m"])[sel]))

    assert abs(med_jh(sim) - med_jh(m67_real)) < 0.05
    real_plx = m67_real.loc[m67_real["phot_g_mean_mag"] <= 18, "parallax"].mean()
    assert abs(m67_sim.labels["parallax"][0] - real_plx) < 0.03


def test_extinction_uses_each_stars_teff():
    """Observed G equals the isochrone magnitude + dMod + A_V k_G(Teff_star, A_V) within the noise."""
    from ocnb.isochrones import default_grid
    from ocnb.photometry import PhotometricErrorModel, extinction_ratio

    p = {"log_age": [8.5], "feh": [0.0], "a_v": [3.0], "dist_mod": [8.0], "n_stars": [600]}
    sc = simulate_clusters(0, params=p, seed=4, progress=False)
    t = sc.cluster(0)
    iso = default_grid().isochrone(8.5, 0.0).at_mass(t["mini"].to_numpy(), columns=["G", "teff"])
    k_star = extinction_ratio("G", iso["teff"], 3.0)
    sig = PhotometricErrorModel().sigma("G", t["phot_g_mean_mag"])
    resid = t["phot_g_mean_mag"] - (iso["G"] + 8.0 + 3.0 * k_star)
    assert (np.abs(resid) < 5 * sig + 2e-3).mean() > 0.98
    # a single Teff-independent coefficient would not fit: A_G/A_V varies across the CMD
    assert np.ptp(k_star) > 0.05
    k_const = np.median(k_star)
    resid_const = t["phot_g_mean_mag"] - (iso["G"] + 8.0 + 3.0 * k_const)
    assert (np.abs(resid_const) < 5 * sig + 2e-3).mean() < 0.9


def test_rejection_of_unreachable_parameters():
    pri = dict(TABLE1_PRIORS, dist_mod=(0.0, 15.0))
    sc = simulate_clusters(60, seed=2, priors=pri, g_max=9.0, progress=False)
    assert sc.meta["n_rejected"] > 0 and 0 < sc.meta["rejection_rate"] < 1
    assert sc.stars["phot_g_mean_mag"].max() <= 9.0
    with pytest.raises(ValueError, match="cannot produce stars"):
        simulate_clusters(0, params={"log_age": [10.0], "feh": [0.0], "a_v": [5.0], "dist_mod": [15.0],
                                     "n_stars": [10]}, g_max=5.0, progress=False)


def test_options_binaries_differential_extinction_field():
    sc = simulate_clusters(60, seed=5, binaries=True, binary_fraction=0.4, differential_extinction=0.2,
                           field_fraction=0.25, progress=False)
    s, lab = sc.stars, sc.labels
    assert {"is_binary", "mass_ratio", "is_field", "a_v_star"} <= set(s)
    assert 0.3 < s["is_binary"].mean() < 0.5
    assert np.all(s["mass_ratio"][~s["is_binary"]] == 0)
    expected = np.minimum(np.rint(0.25 * lab["n_stars"]), lab["n_stars"] - 1)
    np.testing.assert_array_equal(lab["n_field"], expected)
    assert (lab["n_members"] + lab["n_field"] == lab["n_stars"]).all()
    cl = sc.star_cluster_index()
    assert np.array_equal(np.bincount(cl, weights=s["is_field"]).astype(int), lab["n_field"])
    dav = s["a_v_star"] - lab["a_v"].to_numpy()[cl]
    mem = ~s["is_field"]
    assert np.all(np.abs(dav[mem]) <= 0.2 + 1e-5) and dav[mem].std() > 0.05
    assert s["phot_g_mean_mag"].max() <= 18.0
    opts = sc.meta["options"]
    assert opts["binaries"] and opts["field_fraction"] == 0.25 and opts["differential_extinction"] == 0.2
    plain = simulate_clusters(5, seed=5, progress=False)
    assert not {"is_binary", "is_field", "a_v_star"} & set(plain.stars)


def test_binaries_are_brighter_or_redder():
    p = {**{k: [v] for k, v in M67.items()}, "n_stars": [2000]}
    single = simulate_clusters(0, params=p, seed=1, progress=False).cluster(0)
    binary = simulate_clusters(0, params=p, seed=1, binaries=True, binary_fraction=0.5,
                               progress=False).cluster(0)

    def med(t):
        g = t["phot_g_mean_mag"]
        sel = (g > 14.75) & (g < 15.25)
        return float(np.median((t["phot_bp_mean_mag"] - t["phot_rp_mean_mag"])[sel]))

    assert med(binary) > med(single) + 0.005  # binaries sit above/right of the MS


def test_cluster_table_schema(sim):
    from ocnb.datasets.members import MEMBER_COLUMNS
    from ocnb.validation import validate_members

    t = sim.cluster(3)
    assert list(t.columns[:len(MEMBER_COLUMNS)]) == MEMBER_COLUMNS
    assert len(t) == sim.labels["n_stars"][3]
    assert t["cluster"].iloc[0] == "SYN-000003" and t["source_id"].is_unique
    assert t["ph_qual"].str.len().eq(3).all()
    validate_members(t)
    assert sim.cluster(-1)["cluster"].iloc[0] == "SYN-000299"
    with pytest.raises(IndexError):
        sim.cluster(300)


def test_subset_and_save_load(sim, tmp_path):
    sub = sim.subset([7, 2, 7])
    assert len(sub) == 3 and sub.labels["n_stars"].tolist() == sim.labels["n_stars"][[7, 2, 7]].tolist()
    np.testing.assert_array_equal(sub.cluster(2)["phot_g_mean_mag"], sim.cluster(7)["phot_g_mean_mag"])
    assert len(sim[10:20]) == 10
    mask = np.zeros(len(sim), bool)
    mask[[1, 4]] = True
    assert sim.subset(mask).labels["log_age"].tolist() == sim.labels["log_age"][[1, 4]].tolist()
    path = sim.save(tmp_path / "syn.npz")
    back = SyntheticClusters.load(path)
    pd.testing.assert_frame_equal(back.labels, sim.labels)
    assert back.meta == json.loads(json.dumps(sim.meta))
    for k, v in sim.stars.items():
        assert np.array_equal(back.stars[k], v) and back.stars[k].dtype == v.dtype
    assert np.array_equal(back.offsets, sim.offsets)


def test_y_targets(sim):
    y = sim.y()
    assert y.shape == (300, 4)
    np.testing.assert_array_equal(y[:, 1], sim.labels["feh"])


@pytest.mark.parametrize("kw, msg", [
    ({"binary_fraction": 1.5}, "binary_fraction"),
    ({"field_fraction": 1.0}, "field_fraction"),
    ({"differential_extinction": -0.1}, "differential_extinction"),
    ({"priors": {"log_age": (6.7, 10.1)}}, "priors lacks"),
    ({"priors": dict(TABLE1_PRIORS, a_v=(2.0, 1.0))}, "low ≤ high"),
])
def test_invalid_arguments(kw, msg):
    with pytest.raises(ValueError, match=msg):
        simulate_clusters(3, progress=False, **kw)


def test_zero_clusters():
    sc = simulate_clusters(0, progress=False)
    assert len(sc) == 0 and sc.n_stars_total == 0 and sc.offsets.tolist() == [0]


# --- mass functions (step 3: Salpeter, Kroupa-like, per-cluster varied) -----------------------------
PLEIADES_LIKE = {"log_age": [8.0], "feh": [0.05], "a_v": [0.1], "dist_mod": [5.6]}


def test_broken_power_law_reduces_to_salpeter_and_handles_slope_one():
    from ocnb.cmd_ann.simulate import _mass_function_integral, _mass_function_inverse, _salpeter_integral

    a, b = np.array([0.1, 0.3, 0.45, 0.6]), np.array([0.2, 0.6, 0.55, 0.9])
    np.testing.assert_allclose(_mass_function_integral(a, b, 0.5, 2.35), _salpeter_integral(a, b), rtol=1e-12)
    # alpha_low = 1 is the logarithmic case: ∫ dm/m, scaled for continuity at the break
    low = _mass_function_integral(np.array([0.1]), np.array([0.4]), 0.5, 1.0)
    np.testing.assert_allclose(low, np.log(4.0) * 0.5 ** (1.0 - 2.35), rtol=1e-9)
    # inverse sampling across the break follows the integral in every mass bin
    u = np.random.default_rng(0).random(400_000)
    m = _mass_function_inverse(np.full(u.size, 0.1), np.full(u.size, 2.0), u, 0.5, 0.2)
    edges = np.array([0.1, 0.3, 0.5, 0.8, 2.0])
    counts = np.histogram(m, edges)[0] / u.size
    expect = _mass_function_integral(edges[:-1], edges[1:], 0.5, 0.2)
    np.testing.assert_allclose(counts, expect / expect.sum(), atol=3e-3)


def test_kroupa_cluster_has_fewer_faint_stars_like_real_pleiades():
    from ocnb.datasets import load_members

    params = {**PLEIADES_LIKE, "n_stars": [6000]}
    salp = simulate_clusters(0, params=params, seed=5, progress=False).cluster(0)
    kroupa = simulate_clusters(0, params=params, seed=5, progress=False, mass_function="kroupa").cluster(0)
    real = load_members("Pleiades", source="iso")
    real_g = real.phot_g_mean_mag[real.phot_g_mean_mag <= 18]
    med = {k: float(np.median(v.phot_g_mean_mag)) for k, v in (("salp", salp), ("kroupa", kroupa))}
    # Salpeter puts the median ~1 mag fainter than the real members; the Kroupa-like break
    # brings it within a few tenths (module docstring, step 3).
    assert med["salp"] - np.median(real_g) > 0.7
    assert abs(med["kroupa"] - np.median(real_g)) < 0.4
    assert kroupa.mini.min() < 0.5 < kroupa.mini.max()


def test_varied_mass_function_labels_and_meta():
    sc = simulate_clusters(200, seed=4, progress=False, mass_function="varied")
    lo, hi = (0.3, 1.0), (-0.5, 2.35)
    assert sc.labels.mf_m_break.between(*lo).all() and sc.labels.mf_alpha_low.between(*hi).all()
    assert sc.labels.mf_alpha_low.std() > 0.5
    assert "broken power law" in sc.meta["imf"] and sc.meta["mass_function"] == "varied"
    salp = simulate_clusters(20, seed=4, progress=False)
    assert (salp.labels.mf_alpha_low == 2.35).all() and salp.meta["imf"].startswith("Salpeter")
    # explicit per-cluster values in params win over the draw
    p = {**PLEIADES_LIKE, "n_stars": [50], "mf_m_break": [0.7], "mf_alpha_low": [0.0]}
    one = simulate_clusters(0, params=p, seed=1, progress=False, mass_function="varied")
    assert one.labels.mf_m_break.iloc[0] == 0.7 and one.labels.mf_alpha_low.iloc[0] == 0.0


@pytest.mark.parametrize("mf, msg", [
    ("chabrier", "unknown mass_function 'chabrier'"),
    ({"m_break": (0.5, 0.5)}, "exactly the keys"),
    ({"m_break": (-1, 0.5), "alpha_low": (1, 2)}, "m_break must be finite and > 0"),
    ({"m_break": (0.9, 0.5), "alpha_low": (1, 2)}, "low ≤ high"),
])
def test_mass_function_errors(mf, msg):
    with pytest.raises(ValueError, match=msg):
        simulate_clusters(2, seed=0, progress=False, mass_function=mf)
