"""SBI training simulator of Malhotra et al. 2025 (ocnb.binaries.simulate): SIMULATED stars and binaries.

The simulations use a prior narrower than Table 1 in log age and [Fe/H] (small isochrone lattice, fast);
everything else is Table 1's. Statistical checks use fixed seeds and margins of several standard errors.
"""

import numpy as np
import pytest

from ocnb.binaries import BAND_SETS, THETA_NAMES, make_prior, simulate_stars
from ocnb.binaries.noise import measured_noise
from ocnb.binaries.simulate import SIGMA_CAP
from ocnb.errors import IsochroneRangeError

N = 4000


@pytest.fixture(scope="module")
def prior():
    """Table 1 except log age 8.5–10 and [Fe/H] −0.3…+0.45 (reaches past the grid's +0.30)."""
    return make_prior(log_age=(8.5, 10.0), feh=(-0.3, 0.45))


@pytest.fixture(scope="module")
def sim(prior):
    return simulate_stars(N, prior, seed=7, keep_true=True, progress=False)


@pytest.fixture(scope="module")
def frame(sim):
    return sim.to_frame()


# --- prior ---------------------------------------------------------------------------------------------
def test_prior_is_table1_with_the_spec_resolutions():
    p = make_prior()
    assert p.ranges == {"mass_a": (0.1, 9.0), "feh": (-2.0, 0.45), "log_age": (7.0, 10.0), "q": (0.0, 1.0),
                        "dist_mod": (0.0, 13.5), "a_v": (0.0, 4.0)}
    assert p.bounds["log_age"] == (6.5, 10.0)  # Table 1's range column is the posterior support
    lo, hi = p.box()
    assert lo.tolist() == [0.1, -2.0, 6.5, 0.0, 0.0, 0.0] and hi.tolist() == [9.0, 0.45, 10.0, 1.0, 13.5, 4.0]
    th = p.sample(200_000, np.random.default_rng(0))
    x = np.column_stack([th[k] for k in THETA_NAMES])
    assert p.contains(x).all()
    # Beta(1, 5) on [0.1, 9]: mean 0.1 + 8.9/6 (standard error 0.003); Beta(10, 2) on [-2, 0.45]: mean 0.0417 (0.0006)
    assert th["mass_a"].mean() == pytest.approx(0.1 + 8.9 / 6, abs=0.015)
    assert th["feh"].mean() == pytest.approx(-2.0 + 2.45 * 10 / 12, abs=0.004)
    assert th["log_age"].min() >= 7.0
    literal = make_prior(feh_form="literal")
    assert literal.feh == (-0.9, 0.1)  # Table 1 as printed: x - 0.9
    assert make_prior(log_age=9.5).log_age == (9.5, 9.5)  # one number fixes a parameter
    assert set(p.table()["parameter"]) == set(THETA_NAMES)


# --- output --------------------------------------------------------------------------------------------
def test_columns_shapes_and_metadata(prior, sim, frame):
    assert len(sim) == N and sim.band_set == "All_Mags" and sim.meta["simulated"] is True
    observables = list(BAND_SETS["All_Mags"]) + ["parallax"]
    for col in list(THETA_NAMES) + ["mass_b", "is_binary", "distance", "parallax_true", "teff_a", "teff_b",
                                    "label_a", "log_age_iso", "feh_iso", "feh_clipped"] + observables:
        assert col in frame.columns, col
    assert frame[observables].dtypes.eq(np.float32).all()
    assert np.isfinite(frame[observables].to_numpy()).all()
    assert sim.theta().shape == (N, 6) and sim.observables().shape == (N, 9)
    assert 0.5 < sim.meta["acceptance"] < 1 and sim.meta["n_drawn"] >= N
    assert sim.meta["drops"]["too_massive"] > 0 and sim.meta["drops"]["faint"] > 0
    empty = simulate_stars(0, prior, progress=False)  # n = 0: an empty table with the same columns
    assert len(empty) == 0
    extra = {f"{b}_{kind}" for b in BAND_SETS["All_Mags"] for kind in ("true", "primary")}  # keep_true only
    assert list(empty.frame.columns) == [c for c in frame.columns if c not in extra]


def test_seed_reproducible_and_prefix_stable(prior, frame):
    again = simulate_stars(N, prior, seed=7, keep_true=True, progress=False).to_frame()
    assert again.equals(frame)
    head = simulate_stars(1000, prior, seed=7, keep_true=True, progress=False).to_frame()
    assert head.equals(frame.iloc[:1000])  # the first systems do not depend on n
    other = simulate_stars(1000, prior, seed=8, progress=False).to_frame()
    assert not np.allclose(other["mass_a"], frame["mass_a"].iloc[:1000])


def test_cuts(frame, prior):
    assert (frame["G"] <= 21.0).all()
    assert frame["label_a"].between(0, 7).all()  # alive: no primary beyond the isochrone's end
    clipped = frame["feh"] > 0.30
    assert clipped.any() and (frame["feh_clipped"] == clipped).all()
    assert np.allclose(frame.loc[clipped, "feh_iso"], 0.30)  # the grid's most metal-rich isochrone
    assert (np.abs(frame["log_age_iso"] - frame["log_age"]) <= 0.025 + 1e-9).all()  # nearest lattice node


# --- physics -------------------------------------------------------------------------------------------
def test_companions_below_the_mass_limit_make_singles_with_q_zero(frame):
    single = ~frame["is_binary"]
    assert 0.02 < single.mean() < 0.5  # the q = 0 spike
    assert (frame.loc[single, "q"] == 0).all() and (frame.loc[single, "mass_b"] == 0).all()
    b = frame[frame["is_binary"]]
    assert (b["q"] > 0).all() and (b["mass_b"] >= 0.1).all()
    np.testing.assert_allclose(b["mass_b"], b["q"] * b["mass_a"])
    assert frame.loc[single, "teff_b"].isna().all() and b["teff_b"].notna().all()


def test_binaries_are_brighter_than_their_primary_in_every_band(frame):
    b, s = frame[frame["is_binary"]], frame[~frame["is_binary"]]
    for band in BAND_SETS["All_Mags"]:
        assert (b[f"{band}_true"] < b[f"{band}_primary"]).all(), band
        assert (s[f"{band}_true"] == s[f"{band}_primary"]).all(), band
    # on the main sequence the companion is the fainter star: at most an equal-mass pair's 0.753 mag
    # (an evolved primary, e.g. a clump star with an RGB-tip companion, can gain more)
    ms = b[b["label_a"] == 1]
    assert len(ms) > 1000 and (ms["G_primary"] - ms["G_true"]).max() <= 2.5 * np.log10(2) + 1e-6


def test_parallax_consistent_with_distance(frame):
    np.testing.assert_allclose(frame["parallax_true"], 1000 / frame["distance"])
    np.testing.assert_allclose(frame["distance"], 10 ** (1 + frame["dist_mod"] / 5))
    z = (frame["parallax"] - frame["parallax_true"]) / measured_noise().parallax_sigma(frame["G_true"])
    # N(0, 1): standard errors 0.016 (mean) and 0.011 (std) for 4000 systems
    assert abs(z.mean()) < 0.08 and 0.94 < z.std() < 1.06


def test_noise_level_follows_the_measured_relation(frame):
    noise = measured_noise()
    for band in BAND_SETS["All_Mags"]:
        true = frame[f"{band}_true"].to_numpy()
        z = (frame[band].to_numpy() - true) / np.minimum(noise.sigma(band, true), SIGMA_CAP)
        assert 0.94 < z.std() < 1.06, band  # standard error ≈ 0.011
    g = frame["G_true"].to_numpy()
    resid = frame["G"].to_numpy() - g
    assert resid[g > 19.5].std() > 2.5 * resid[g < 15].std()  # fainter is noisier
    # the measured relation itself: plausible Gaia DR3 and 2MASS/WISE levels
    assert 0.0025 < noise.sigma("G", 15.0) < 0.005 and 0.005 < noise.sigma("G", 20.0) < 0.03
    assert 0.015 < noise.sigma("J", 12.0) < 0.04 and noise.sigma("W2", 15.0) > noise.sigma("W2", 11.0)
    assert 0.01 < noise.parallax_sigma(12.0) < 0.04 and 0.3 < noise.parallax_sigma(20.0) < 1.0


def test_band_sets_are_column_subsets_of_one_simulation(prior, frame):
    gaia = simulate_stars(1000, prior, bands="Gaia", seed=7, progress=False)
    tm = simulate_stars(1000, prior, bands="Gaia_TMASS", seed=7, progress=False)
    assert "J" not in gaia.frame and "W1" not in tm.frame and "Ks" in tm.frame
    assert gaia.observables().shape == (1000, 4) and tm.observables().shape == (1000, 7)
    head = frame.iloc[:1000]
    for sub in (gaia, tm):
        for col in list(sub.frame.columns):
            np.testing.assert_array_equal(sub.frame[col].to_numpy(), head[col].to_numpy(), err_msg=col)
    with pytest.raises(ValueError, match=r"band set 'All_Mags' needs.*not simulated"):
        gaia.observables("All_Mags")


# --- bad input -----------------------------------------------------------------------------------------
BAD = [
    # (call, exception, message regex naming the value)
    (lambda p: simulate_stars(-1, p), ValueError, r"n must be a whole number ≥ 0, not -1"),
    (lambda p: simulate_stars(2.5, p), ValueError, r"n must be a whole number ≥ 0, not 2\.5"),
    (lambda p: simulate_stars("100", p), ValueError, r"n must be a whole number ≥ 0, not '100'"),
    (lambda p: simulate_stars(float("nan"), p), ValueError, r"n must be .*not nan"),
    (lambda p: simulate_stars(True, p), ValueError, r"n must be .*not True"),
    (lambda p: simulate_stars(10, p, seed=-3), ValueError, r"seed must be a whole number ≥ 0, not -3"),
    (lambda p: simulate_stars(10, p, bands="gaia"), ValueError, r"unknown band set 'gaia'.*All_Mags"),
    (lambda p: simulate_stars(10, p, bands=("G", "BP")), ValueError, r"unknown band set \('G', 'BP'\)"),
    (lambda p: simulate_stars(10, {"mass_a": (0.1, 9)}), ValueError, "prior must be a BinaryPrior.*dict"),
    (lambda p: simulate_stars(10, p, g_max=float("nan")), ValueError, "g_max must be a finite magnitude, not nan"),
    (lambda p: simulate_stars(10, p, lattice_step=0), ValueError, "lattice_step must be .* not 0"),
    (lambda p: simulate_stars(10, p, law="CCM89"), ValueError, "unknown extinction law 'CCM89'"),
    (lambda p: make_prior(mass_a=(2.0, 1.0)), ValueError, r"prior 'mass_a' = \(2\.0, 1\.0\): low 2 > high 1"),
    (lambda p: make_prior(q=(0.8, 0.2)), ValueError, r"prior 'q' = \(0\.8, 0\.2\): low 0\.8 > high 0\.2"),
    (lambda p: make_prior(a_v=(0.0, float("nan"))), ValueError, r"prior 'a_v' = \(0\.0, nan\) must be finite"),
    (lambda p: make_prior(dist_mod=float("inf")), ValueError, r"prior 'dist_mod' = .*inf.* must be finite"),
    (lambda p: make_prior(mass_a="heavy"), ValueError, r"prior 'mass_a' = 'heavy' must be a pair"),
    (lambda p: make_prior(mass_a=(0.05, 2.0)), ValueError, r"prior 'mass_a' = \(0\.05, 2\.0\).*M_A ≥ 0\.1"),
    (lambda p: make_prior(q=(0.0, 1.5)), ValueError, r"prior 'q' = \(0\.0, 1\.5\).*0 ≤ q ≤ 1"),
    (lambda p: make_prior(dist_mod=(-1.0, 5.0)), ValueError, r"prior 'dist_mod' = \(-1\.0, 5\.0\)"),
    (lambda p: make_prior(a_v=(0.0, 25.0)), ValueError, r"prior 'a_v' = \(0\.0, 25\.0\).*≤ 20"),
    (lambda p: make_prior(feh_beta=(0.0, 2.0)), ValueError, r"feh_beta = \(0\.0, 2\.0\).*> 0"),
    (lambda p: make_prior(feh_form="log"), ValueError, "feh_form must be 'scaled' or 'literal', not 'log'"),
    (lambda p: make_prior(feh_form="literal", feh=(-2.0, 0.45)), ValueError, r"\(-2\.0, 0\.45\) conflicts"),
    (lambda p: make_prior(feh=(-2.5, 0.0)), IsochroneRangeError, r"prior 'feh' = \(-2\.5, 0\.0\): -2\.5 dex"),
    (lambda p: make_prior(feh=(-0.5, 0.6)), IsochroneRangeError, r"0\.6 dex is outside .*≤ 0\.45"),
    (lambda p: make_prior(feh=(-0.5, 0.4), feh_clip=0.0), IsochroneRangeError, r"0\.4 dex is outside .*≤ 0\.3"),
    (lambda p: make_prior(log_age=(7.0, 10.5)), IsochroneRangeError, r"10\.5 \(log10 yr\) is outside .*10\.2"),
    (lambda p: make_prior(log_age=(5.5, 9.0)), IsochroneRangeError, r"prior 'log_age' = \(5\.5, 9\.0\): 5\.5"),
    (lambda p: simulate_stars(10, make_prior(log_age=10.0, feh=0.0, mass_a=(3.0, 9.0)), progress=False),
     ValueError, r"none of .* draws .* passes the cuts"),
]


@pytest.mark.parametrize("call, exc, msg", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_input(prior, call, exc, msg):
    with pytest.raises(exc, match=msg):
        call(prior)


# --- simulated clusters (spec B7) ---------------------------------------------------------------------
def test_simulated_cluster_has_one_age_kroupa_primaries_and_the_arenou_binary_law():
    from ocnb.binaries import simulate_cluster
    from ocnb.binaries.cluster_prior import binary_fraction_law

    c = simulate_cluster(1500, log_age=9.5, feh=0.0, dist_mod=9.68, a_v=0.1, seed=2)
    f = c.to_frame()
    assert len(f) == 1500 and c.meta["cluster"]["distance"] == pytest.approx(10 ** (1 + 9.68 / 5))
    for k, v in (("log_age", 9.5), ("feh", 0.0), ("dist_mod", 9.68), ("a_v", 0.1)):
        assert np.all(f[k] == v)
    binaries = f[f.is_binary]
    assert np.all(binaries.q >= 0.1 / binaries.mass_a - 1e-12) and np.all(f.loc[~f.is_binary, "q"] == 0)
    # the binary fraction follows f_b(M_A) within binomial errors (4 sd) in two mass bins
    for lo, hi in ((0.1, 0.6), (0.6, 1.5)):
        sel = f[(f.mass_a >= lo) & (f.mass_a < hi)]
        want = binary_fraction_law(sel.mass_a).mean()
        assert abs(sel.is_binary.mean() - want) < 4 * np.sqrt(want * (1 - want) / len(sel)) + 0.02
    # Kroupa: more primaries below 0.5 Msun than above among those bright enough to pass G <= 21
    assert f.mass_a.max() < 1.5 and (f.mass_a < 0.5).sum() > 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(binary_fraction=1.5), r"binary_fraction must be 'arenou' or a number in \[0, 1\], not 1.5"),
    (dict(binary_fraction="raghavan"), r"not 'raghavan'"),
    (dict(a_v=float("nan")), r"a_v must be a finite number"),
])
def test_simulated_cluster_bad_input(kwargs, match):
    from ocnb.binaries import simulate_cluster

    args = dict(log_age=9.5, feh=0.0, dist_mod=9.68, a_v=0.1) | kwargs
    with pytest.raises(ValueError, match=match):
        simulate_cluster(10, **args)
