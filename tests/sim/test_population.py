"""The population generator (ocnb.sim.simulate_populations): SIMULATED clusters from PARSEC isochrones."""

import json

import numpy as np
import pandas as pd
import pytest

from ocnb.sim import POPULATION_PARAMETERS, simulate_populations

#: The generic priors of tests/sim/conftest.py (inside the PARSEC grid; the `sim` fixture uses them).
PRIORS = {"log_age": (6.7, 10.1), "feh": (-0.8, 0.3), "a_v": (0.0, 5.0), "dist_mod": (0.0, 15.0),
          "log_n": (1.0, 3.5)}

M67 = {"log_age": 9.55, "feh": 0.0, "a_v": 0.11, "dist_mod": 9.68}
PLEIADES_LIKE = {"log_age": [8.0], "feh": [0.05], "a_v": [0.1], "dist_mod": [5.6]}


def one(params, **kw):
    """Simulate explicit clusters (no priors needed)."""
    return simulate_populations(0, params=params, progress=False, **kw)


def test_labels_respect_priors(sim):
    lab = sim.labels
    assert len(sim) == 150
    for k in POPULATION_PARAMETERS:
        lo, hi = PRIORS[k]
        assert lab[k].between(lo, hi).all(), k
    assert lab["n_stars"].min() >= 10 and lab["n_stars"].max() <= 3162
    assert not lab["feh_clipped"].any() and sim.meta["feh_clipped_fraction"] == 0.0


def test_n_stars_are_survivors_of_the_cut(sim):
    assert np.array_equal(sim.sizes, sim.labels["n_stars"].to_numpy())
    g = sim.stars["phot_g_mean_mag"]
    assert g.size == sim.labels["n_stars"].sum()
    assert np.isfinite(g).all() and g.max() <= 18.0
    for k in ("phot_bp_mean_mag", "phot_rp_mean_mag", "j_m", "h_m", "parallax", "teff", "mini"):
        assert np.isfinite(sim.stars[k]).all(), k
    assert (sim.labels["n_members"] == sim.labels["n_stars"]).all() and (sim.labels["n_field"] == 0).all()


def test_meta_records_simulation(sim):
    m = sim.meta
    assert m["simulated"] is True and m["generator"] == "ocnb.sim.simulate_populations"
    assert 0.0 <= m["rejection_rate"] < 1.0 and m["n_draws"] >= 150
    assert m["lattice"]["spacing"][0] <= 0.05 + 1e-9 and m["lattice"]["spacing"][1] <= 0.05 + 1e-9
    assert m["priors"] == {k: list(v) for k, v in PRIORS.items()}
    assert m["feh_isochrone_max"] == pytest.approx(0.30) and m["feh_isochrone_min"] == pytest.approx(-2.19174)
    json.dumps(m)  # serialisable
    assert "SIMULATED" in repr(sim)


def test_isochrone_is_nearest_lattice_node(sim):
    lab = sim.labels
    assert (np.abs(lab["log_age_iso"] - lab["log_age"]) <= 0.025 + 1e-9).all()
    assert (np.abs(lab["mh_iso"] - lab["feh"]) <= 0.025 + 1e-9).all()


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
    sc = simulate_populations(20, seed=1, priors=PRIORS, progress=False, parallax_noise=False)
    np.testing.assert_allclose(sc.labels["parallax"], sc.labels["parallax_true"], rtol=1e-6)


def test_reproducible(sim):
    again = simulate_populations(150, seed=11, priors=PRIORS, progress=False)
    pd.testing.assert_frame_equal(again.labels, sim.labels)
    for k, v in sim.stars.items():
        assert np.array_equal(again.stars[k], v), k
    other = simulate_populations(30, seed=12, priors=PRIORS, progress=False)
    assert not np.allclose(other.labels["log_age"], sim.labels["log_age"][:30])


def test_m67_like_cluster_matches_real_members(m67_real):
    """Median BP−RP of a simulated M67 (main sequence, turn-off) within 0.05 mag of the real one."""
    m67_sim = one({**{k: [v] for k, v in M67.items()}, "n_stars": [3000]}, seed=3)
    sim = m67_sim.cluster(0)

    def med(t, col, g0, half=0.25):
        g = t["phot_g_mean_mag"]
        sel = (g > g0 - half) & (g < g0 + half)
        return float(np.nanmedian(col(t)[sel]))

    def bp_rp(t):
        return t["phot_bp_mean_mag"] - t["phot_rp_mean_mag"]

    def j_h(t):
        return t["j_m"] - t["h_m"]

    for g0 in (13.5, 14.5, 15.0):
        assert abs(med(sim, bp_rp, g0) - med(m67_real, bp_rp, g0)) < 0.05, g0
    assert abs(med(sim, j_h, 15.0) - med(m67_real, j_h, 15.0)) < 0.05
    real_plx = m67_real.loc[m67_real["phot_g_mean_mag"] <= 18, "parallax"].mean()
    assert abs(m67_sim.labels["parallax"][0] - real_plx) < 0.03


def test_extinction_uses_each_stars_teff():
    """Observed G equals the isochrone magnitude + dMod + A_V k_G(Teff_star, A_V) within the noise."""
    from ocnb.isochrones import default_grid
    from ocnb.photometry import PhotometricErrorModel, extinction_ratio

    sc = one({"log_age": [8.5], "feh": [0.0], "a_v": [3.0], "dist_mod": [8.0], "n_stars": [600]}, seed=4)
    t = sc.cluster(0)
    iso = default_grid().isochrone(8.5, 0.0).at_mass(t["mini"].to_numpy(), columns=["G", "teff"])
    k_star = extinction_ratio("G", iso["teff"], 3.0)
    sig = PhotometricErrorModel().sigma("G", t["phot_g_mean_mag"])
    resid = t["phot_g_mean_mag"] - (iso["G"] + 8.0 + 3.0 * k_star)
    assert (np.abs(resid) < 5 * sig + 2e-3).mean() > 0.98
    # a single Teff-independent coefficient would not fit: A_G/A_V varies across the CMD
    assert np.ptp(k_star) > 0.05
    resid_const = t["phot_g_mean_mag"] - (iso["G"] + 8.0 + 3.0 * np.median(k_star))
    assert (np.abs(resid_const) < 5 * sig + 2e-3).mean() < 0.9


def test_rejection_of_unreachable_parameters():
    sc = simulate_populations(60, seed=2, priors=PRIORS, g_max=9.0, progress=False)
    assert sc.meta["n_rejected"] > 0 and 0 < sc.meta["rejection_rate"] < 1
    assert sc.stars["phot_g_mean_mag"].max() <= 9.0


def test_options_binaries_differential_extinction_field():
    sc = simulate_populations(60, seed=5, priors=PRIORS, binaries=True, binary_fraction=0.4,
                              differential_extinction=0.2, field_fraction=0.25, progress=False)
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
    plain = simulate_populations(5, seed=5, priors=PRIORS, progress=False)
    assert not {"is_binary", "is_field", "a_v_star"} & set(plain.stars)


def test_binaries_are_brighter_or_redder():
    p = {**{k: [v] for k, v in M67.items()}, "n_stars": [2000]}
    single = one(p, seed=1).cluster(0)
    binary = one(p, seed=1, binaries=True, binary_fraction=0.5).cluster(0)

    def med(t):
        g = t["phot_g_mean_mag"]
        sel = (g > 14.75) & (g < 15.25)
        return float(np.median((t["phot_bp_mean_mag"] - t["phot_rp_mean_mag"])[sel]))

    assert med(binary) > med(single) + 0.005  # binaries sit above/right of the MS


def test_zero_clusters():
    sc = simulate_populations(0, priors=PRIORS, progress=False)
    assert len(sc) == 0 and sc.n_stars_total == 0 and sc.offsets.tolist() == [0]
    assert sc.meta["feh_clipped_fraction"] == 0.0 and "feh_clipped" in sc.labels


def test_kroupa_cluster_has_fewer_faint_stars_like_real_pleiades():
    from ocnb.datasets import load_members

    params = {**PLEIADES_LIKE, "n_stars": [6000]}
    salp = one(params, seed=5).cluster(0)
    kroupa = one(params, seed=5, mass_function="kroupa").cluster(0)
    real = load_members("Pleiades", source="iso")
    real_g = real.phot_g_mean_mag[real.phot_g_mean_mag <= 18]
    med = {k: float(np.median(v.phot_g_mean_mag)) for k, v in (("salp", salp), ("kroupa", kroupa))}
    # Salpeter puts the median ~1 mag fainter than the real members; the Kroupa-like break
    # brings it within a few tenths (ocnb.sim.mass_function).
    assert med["salp"] - np.median(real_g) > 0.7
    assert abs(med["kroupa"] - np.median(real_g)) < 0.4
    assert kroupa.mini.min() < 0.5 < kroupa.mini.max()


def test_varied_mass_function_labels_and_meta():
    sc = simulate_populations(120, seed=4, priors=PRIORS, progress=False, mass_function="varied")
    assert sc.labels.mf_m_break.between(0.3, 1.0).all() and sc.labels.mf_alpha_low.between(-0.5, 2.35).all()
    assert sc.labels.mf_alpha_low.std() > 0.5
    assert "broken power law" in sc.meta["imf"] and sc.meta["mass_function"] == "varied"
    salp = simulate_populations(10, seed=4, priors=PRIORS, progress=False)
    assert (salp.labels.mf_alpha_low == 2.35).all() and salp.meta["imf"].startswith("Salpeter")
    # explicit per-cluster values in params win over the draw
    p = {**PLEIADES_LIKE, "n_stars": [50], "mf_m_break": [0.7], "mf_alpha_low": [0.0]}
    o = one(p, seed=1, mass_function="varied")
    assert o.labels.mf_m_break.iloc[0] == 0.7 and o.labels.mf_alpha_low.iloc[0] == 0.0
    assert o.meta["priors"] is None and o.meta["params_given"] is True


def test_params_as_scalars_is_one_cluster():
    sc = one({**M67, "n_stars": 40}, seed=2)
    assert len(sc) == 1 and sc.labels["n_stars"].tolist() == [40]


def test_field_population_ranges_are_arguments():
    narrow = dict(PRIORS, log_age=(8.0, 8.5), feh=(-0.3, -0.2))  # a small lattice (34 nodes), not cached
    sc = simulate_populations(8, seed=3, priors=narrow, field_fraction=0.3, lattice_step=0.1,
                              field_log_age=(9.5, 9.6), field_mh=(-0.3, -0.2), progress=False)
    assert sc.meta["options"]["field_log_age"] == [9.5, 9.6]
    # the lattice spans both the cluster and the field populations
    assert sc.meta["lattice"]["log_age"][0] == 8.0 and sc.meta["lattice"]["log_age"][1] == pytest.approx(9.6)
