"""Synthetic clusters of Cavallo et al. (2024), Sect. 2.2 (ocnb.cmd_ann.simulate): the paper's layer.

The engine (lattice, mass functions, binaries, field stars, quality rules, container, bad input) is
tested in ``tests/sim``; here: Table 1, the paper's [Fe/H] clip, and that the front end is the engine.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ocnb.cmd_ann.simulate import LABELS, TABLE1_FEH_CLIP, TABLE1_PRIORS, simulate_clusters


@pytest.fixture(scope="module")
def sim():
    return simulate_clusters(150, seed=11, progress=False)


def test_table1_constants():
    assert TABLE1_PRIORS == {"log_age": (6.7, 10.1), "feh": (-0.8, 0.6), "a_v": (0.0, 5.0),
                             "dist_mod": (0.0, 15.0), "log_n": (1.0, 3.5)}
    assert LABELS == ("log_age", "feh", "a_v", "dist_mod")
    assert TABLE1_FEH_CLIP == (0.0, 0.30)


def test_labels_respect_priors(sim):
    lab = sim.labels
    assert len(sim) == 150 and len(lab) == 150
    for k in LABELS:
        lo, hi = TABLE1_PRIORS[k]
        assert lab[k].between(lo, hi).all(), k
        # the draws fill the range (uniform): not stuck in a corner
        assert lab[k].min() < lo + 0.1 * (hi - lo) and lab[k].max() > hi - 0.1 * (hi - lo), k
    logn = np.log10(lab["n_stars"])
    assert logn.min() >= 1.0 - 1e-9 and logn.max() <= 3.5 + 1e-9
    assert lab["n_stars"].min() >= 10 and lab["n_stars"].max() <= 3162
    np.testing.assert_array_equal(sim.y(), lab[list(LABELS)].to_numpy())


def test_meta_records_simulation(sim):
    m = sim.meta
    assert m["simulated"] is True and m["generator"].startswith("ocnb.cmd_ann.simulate.simulate_clusters")
    assert m["priors"] == {k: list(v) for k, v in TABLE1_PRIORS.items()}
    assert m["feh_isochrone_max"] == pytest.approx(0.30)
    assert m["feh_clipped_fraction"] == pytest.approx(np.mean(sim.labels["feh"] > 0.30))
    assert m["feh_clip_allowed"] == [0.0, 0.30]
    json.dumps(m)  # serialisable


def test_feh_above_the_grid_is_clipped_and_flagged(sim):
    """Table 1 reaches [Fe/H] = +0.60, the PARSEC grid +0.30: those clusters use the +0.30 isochrone."""
    lab = sim.labels
    assert (np.abs(lab["log_age_iso"] - lab["log_age"]) <= 0.025 + 1e-9).all()
    assert (lab["mh_iso"] <= 0.30 + 1e-9).all()
    assert (np.abs(lab["mh_iso"] - np.minimum(lab["feh"], 0.30)) <= 0.025 + 1e-9).all()
    # labels keep the drawn value even where the isochrone is clipped, and the clip is flagged per cluster
    assert (lab["feh"] > 0.35).any()
    np.testing.assert_array_equal(lab["feh_clipped"], lab["feh"] > 0.30)
    # about 0.30/1.40 = 21 % of the prior (rejection of faint clusters barely changes it)
    assert 0.1 < lab["feh_clipped"].mean() < 0.35


def test_front_end_is_the_engine_with_table1():
    """Same seed → the same clusters from simulate_clusters and ocnb.sim with Table 1's priors and clip."""
    from ocnb.sim import simulate_populations

    a = simulate_clusters(12, seed=3, mass_function="varied", binaries=True, progress=False)
    b = simulate_populations(12, 3, priors=TABLE1_PRIORS, feh_clip=TABLE1_FEH_CLIP, mass_function="varied",
                             binaries=True, progress=False)
    pd.testing.assert_frame_equal(a.labels, b.labels)
    assert a.stars.keys() == b.stars.keys()
    for k in a.stars:
        assert np.array_equal(a.stars[k], b.stars[k]), k
    assert {k: v for k, v in a.meta.items() if k != "generator"} == {k: v for k, v in b.meta.items()
                                                                     if k != "generator"}


def test_names_exported_before_the_move_stay_importable():
    import ocnb.cmd_ann as cmd_ann
    import ocnb.cmd_ann.simulate as simulate
    import ocnb.sim as sim

    before = ["LABELS", "MASS_FUNCTIONS", "TABLE1_PRIORS", "IsochroneLattice", "SyntheticClusters",
              "isochrone_lattice", "simulate_clusters", "twomass_snr", "twomass_usable", "twomass_quality_letter",
              "SIM_BANDS", "SALPETER_ALPHA", "G_MAX", "TWOMASS_MIN_SNR", "TWOMASS_MAX_SIGMA", "MIN_SURVIVAL",
              "FIELD_LOG_AGE", "FIELD_MH", "FIELD_DMOD_SPREAD", "SIGMA_A", "SIGMA_B", "SIGMA_C",
              "_mass_function_integral", "_mass_function_inverse", "_salpeter_integral"]
    for name in before:
        assert hasattr(simulate, name), name
    for name in ("SyntheticClusters", "isochrone_lattice", "twomass_usable", "MASS_FUNCTIONS", "G_MAX"):
        assert getattr(simulate, name) is getattr(sim, name), name
    for name in ("LABELS", "TABLE1_PRIORS", "SyntheticClusters", "simulate_clusters", "isochrone_lattice"):
        assert getattr(cmd_ann, name) is getattr(simulate, name), name
