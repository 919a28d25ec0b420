"""ocnb.membership.candidates: eqs. 1-10 of vG23 Sect. 2.3 (spec A6) on hand cases and on real cones."""

import math

import numpy as np
import pytest

from ocnb.membership.candidates import (
    cmd_distance,
    delta_c90,
    delta_mu,
    delta_parallax,
    parallax_statistic,
    pass_fraction,
    pm_statistic,
    projected_radius,
    r90,
    select_candidates,
)
from ocnb.membership.cones import ClusterParams, TooFewMembersError


def params(**kw):
    base = dict(name="X", ra=10.0, dec=20.0, pmra=1.0, pmdec=-2.0, parallax=2.0, sigma_pmra_m=0.3,
                sigma_pmdec_m=0.4, sigma_parallax_m=0.1, sigma_pmra_c=0.01, sigma_pmdec_c=0.02,
                sigma_parallax_c=0.005, dist_pc=500.0, log_age=9.0, a0=0.1)
    base.update(kw)
    return ClusterParams(**base)


# ---------------------------------------------------------------------------------------------------------------
# Equations on hand-computed cases
# ---------------------------------------------------------------------------------------------------------------
def test_eq4_delta_mu():
    p = params()
    assert delta_mu(p) == pytest.approx(math.sqrt((0.9 + 0.03) ** 2 + (1.2 + 0.06) ** 2))


def test_eq7_delta_parallax():
    p = params(parallax=2.0, sigma_parallax_c=0.005)
    plus, minus = delta_parallax(p, 100.0)
    extra = 3 * 0.005 + 3 * 0.015
    assert plus == pytest.approx(abs(2.0 - 1000 / 600) + extra)  # Δ⁺: a source 100 pc farther
    assert minus == pytest.approx(abs(2.0 - 1000 / 400) + extra)  # Δ⁻: 100 pc closer
    assert minus > plus  # parallax asymmetry: closer sources deviate more
    # 1000/ϖ_c − R ≤ 0 → Δ⁻ = +∞ (spec A6 resolution), Δ⁺ finite
    plus, minus = delta_parallax(params(parallax=20.0), 60.0)
    assert minus == np.inf and np.isfinite(plus)


def test_eq1_proper_motion_statistic():
    p = params(pmra=1.0, pmdec=-2.0)
    d_mu = 0.5
    # Δμα* = 0.4 with σ = 0.1 → 0.4/(0.5 + 0.3) = 0.5; Δμδ = −0.6, σ = 0 → −0.6/0.5 = −1.2; sqrt(0.25 + 1.44)
    v = pm_statistic([1.4], [-2.6], [0.1], [0.0], p, d_mu)
    assert v[0] == pytest.approx(math.sqrt(0.25 + 1.44))
    assert pm_statistic([1.3], [-2.0], [0.0], [0.0], p, d_mu)[0] == pytest.approx(0.6)


def test_eq2_parallax_statistic_side():
    p = params(parallax=2.0)
    # ϖ < ϖ_c uses Δ⁺ (0.1), ϖ ≥ ϖ_c uses Δ⁻ (0.3)
    v = parallax_statistic([1.8, 2.2, 2.0], [0.0, 0.0, 0.1], p, 0.1, 0.3)
    np.testing.assert_allclose(v, [2.0, 0.2 / 0.3, 0.0])
    assert parallax_statistic([1.95], [0.05], p, 0.1, 0.3)[0] == pytest.approx(0.05 / 0.25)


def test_eq3_error_inflated_nearest_point():
    """The nearest point is chosen in the per-source metric: a large σ_G makes the point far in G nearest."""
    iso = np.array([[0.0, 10.0], [0.5, 12.0]])
    # star at (0.4, 10.0); Δ_C = 0.1, Δ_G = 0.8; σ_C = 0, σ_G = 1 → scales (0.1, 3.8)
    d = cmd_distance([0.4], [10.0], [0.0], [1.0], iso, 0.1, 0.8)[0]
    d0 = math.hypot(0.4 / 0.1, 0.0)
    d1 = math.hypot(0.1 / 0.1, 2.0 / 3.8)
    assert d == pytest.approx(min(d0, d1)) and d1 < d0
    # chunking does not change the result
    rng = np.random.default_rng(1)
    c, g = rng.uniform(0, 0.6, 50), rng.uniform(9, 13, 50)
    sc, sg = rng.uniform(0, 0.05, 50), rng.uniform(0, 0.05, 50)
    np.testing.assert_array_equal(cmd_distance(c, g, sc, sg, iso, 0.1, 0.8, chunk=7),
                                  cmd_distance(c, g, sc, sg, iso, 0.1, 0.8))


def test_r90_order_statistic():
    assert r90(np.arange(1, 11)) == 9.0  # ⌈0.9·10⌉ = 9th
    assert r90(np.arange(1, 12)) == 10.0  # ⌈9.9⌉ = 10th
    assert r90([5.0]) == 5.0
    rng = np.random.default_rng(3)
    r = rng.exponential(5, 237)
    t = r90(r)
    assert np.mean(r <= t) >= 0.9 and np.mean(r < t) < 0.9  # smallest radius enclosing ≥ 90 %


def test_projected_radius_orthographic():
    p = params(ra=10.0, dec=20.0, dist_pc=1000.0)
    assert projected_radius(10.0, 20.0, p) == pytest.approx(0.0, abs=1e-9)
    assert projected_radius(10.0, 21.0, p) == pytest.approx(1000 * math.sin(math.radians(1.0)))


def _toy_members(seed=0, n=200):
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, 300)
    iso = np.c_[0.2 + 0.8 * t, 8 + 10 * t]
    j = rng.integers(0, 300, n)
    c = iso[j, 0] + rng.normal(0, 0.03, n)
    g = iso[j, 1] + rng.normal(0, 0.2, n)
    return c, g, rng.uniform(0, 0.01, n), rng.uniform(0, 0.01, n), iso


def test_pass_fraction_monotone_and_bisection():
    c, g, sc, sg, iso = _toy_members()
    ts = np.linspace(0, 0.3, 61)
    frac = np.array([pass_fraction(t, c, g, sc, sg, iso) for t in ts])
    assert np.all(np.diff(frac) >= 0)  # monotone in t
    t90 = delta_c90(c, g, sc, sg, iso)
    assert pass_fraction(t90, c, g, sc, sg, iso) >= 0.9
    assert pass_fraction(t90 - 2e-4, c, g, sc, sg, iso) < 0.9  # the smallest such t, to the 1e-4 tolerance
    # members that all sit on the isochrone: Δ_C,90 = 0 (clamped at 0)
    assert delta_c90(iso[:, 0], iso[:, 1], np.zeros(300), np.zeros(300), iso) == 0.0


# ---------------------------------------------------------------------------------------------------------------
# Real cones
# ---------------------------------------------------------------------------------------------------------------
def test_blanco1_selection(blanco1):
    s = blanco1.selection
    t = s.thresholds
    cone = blanco1.cone
    seed = s.is_seed_member
    assert seed.sum() == t["n_seed"] == 262
    # measured on the shipped cone (deterministic): 402 candidates, 246 training members
    assert s.is_candidate.sum() == 402 and s.is_train_member.sum() == 246
    # consistency of the masks
    passes = s.pass_pm & s.pass_plx & s.pass_cmd
    np.testing.assert_array_equal(s.is_candidate, passes | seed)
    np.testing.assert_array_equal(s.is_train_member, passes & seed)
    assert np.all(s.is_candidate[seed])  # failing seeds are relabelled candidates, never non-members
    # eqs. 8-10
    assert t["R_pc"] == pytest.approx(t["R90_pc"] + 15.0)
    assert t["delta_c"] == pytest.approx(t["delta_c90"] + 0.1)
    assert t["delta_g"] == pytest.approx(8 * t["delta_c"])
    # R_90 is the 90 % order statistic of the seed members' radii
    r = projected_radius(cone["ra"][seed], cone["dec"][seed], blanco1.params)
    assert np.mean(r <= t["R90_pc"]) >= 0.9 and np.mean(r < t["R90_pc"]) < 0.9
    # the 90 % rule holds on the seed members at (Δ_C,90, 8Δ_C,90) with their own errors
    frac = pass_fraction(t["delta_c90"], cone["g_rp"][seed], cone["phot_g_mean_mag"][seed],
                         cone["sigma_g_rp"][seed], cone["sigma_g"][seed], s.isochrone)
    assert frac >= 0.9
    # the published EDR3 members (Almeida+2023, G < 18) in this DR2 cone are almost all candidates
    from ocnb.datasets import load_members

    alm = load_members("Blanco 1", source="almeida")
    ids = alm["source_id"][alm["phot_g_mean_mag"] < 18]
    inc = cone["source_id"].isin(ids).to_numpy()
    assert inc.sum() > 300 and (inc & s.is_candidate).sum() / inc.sum() > 0.99


def test_m67_and_almeida_selection(m67, almeida):
    for pc in (m67, almeida):
        s = pc.selection
        assert s.is_train_member.sum() / s.is_seed_member.sum() > 0.95
        assert 0 <= s.thresholds["delta_c90"] < 0.3
    assert 0.05 < m67.selection.thresholds["delta_plx_plus"] < 0.15  # 3σ terms + distance term at ~850 pc


def test_plot(blanco1):
    import matplotlib.pyplot as plt

    fig = blanco1.selection.plot(blanco1.cone)
    assert len(fig.axes) == 3
    labels = [t.get_text() for t in fig.axes[2].get_legend().get_texts()]
    assert any(lab.startswith("training members (246)") for lab in labels)
    plt.close(fig)
    with pytest.raises(ValueError, match="prepared cone"):
        blanco1.selection.plot(blanco1.cone.iloc[:10])


@pytest.mark.parametrize(("mask", "exc", "match"), [
    (lambda n: np.zeros(n, bool), TooFewMembersError, r"no seed members"),
    (lambda n: np.zeros(n, int), ValueError, r"boolean array of one value per cone row"),
    (lambda n: np.zeros(n - 1, bool), ValueError, r"boolean array"),
])
def test_select_candidates_bad_mask(blanco1, mask, exc, match):
    with pytest.raises(exc, match=match):
        select_candidates(blanco1.cone, mask(len(blanco1.cone)), blanco1.params, blanco1.isochrone)
