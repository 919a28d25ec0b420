"""Bad-input table of the population simulator (ocnb.sim and its Cavallo front end).

Each row: a call → the exception type and a regex its message must match (naming the argument,
column or key, the value and the allowed range), or → the explicit flag it sets in the result.
Every error row fails in the argument checks, before any simulation work.
"""

import numpy as np
import pytest

from ocnb.errors import IsochroneRangeError
from ocnb.sim import simulate_populations, twomass_quality_letter, twomass_usable

#: The generic priors of tests/sim/conftest.py (inside the PARSEC grid; the `sim` fixture uses them).
PRIORS = {"log_age": (6.7, 10.1), "feh": (-0.8, 0.3), "a_v": (0.0, 5.0), "dist_mod": (0.0, 15.0),
          "log_n": (1.0, 3.5)}

ONE = {"log_age": [9.0], "feh": [0.0], "a_v": [0.5], "dist_mod": [8.0], "n_stars": [20]}


def engine(**kw):
    kw.setdefault("priors", PRIORS)
    return simulate_populations(kw.pop("n", 3), progress=False, **kw)


def cavallo(**kw):
    from ocnb.cmd_ann import simulate_clusters

    return simulate_clusters(kw.pop("n", 3), progress=False, **kw)


def prior(**kw):
    return dict(PRIORS, **kw)


def table1(**kw):
    from ocnb.cmd_ann import TABLE1_PRIORS

    return dict(TABLE1_PRIORS, **kw)


def row(**kw):
    return dict(ONE, **{k: [v] for k, v in kw.items()})


ERRORS = [
    # --- ranges outside the isochrone grid (QA findings: labelled 11.9, built from 10.2) ------------
    pytest.param(cavallo, lambda: {"priors": table1(log_age=(11, 12))}, IsochroneRangeError,
                 r"prior 'log_age' = \(11, 12\).*11\.0.*allowed 6 ≤ log_age ≤ 10\.2", id="prior-log_age-above-grid"),
    pytest.param(cavallo, lambda: {"priors": table1(log_age=(5.0, 8.0))}, IsochroneRangeError,
                 r"prior 'log_age'.*5\.0.*allowed 6 ≤ log_age ≤ 10\.2", id="prior-log_age-below-grid"),
    pytest.param(cavallo, lambda: {"priors": table1(feh=(-2.5, 0.0))}, IsochroneRangeError,
                 r"prior 'feh'.*-2\.5.*-2\.19174 ≤ feh ≤ 0\.6.*spans -2\.19174 … 0\.3", id="prior-feh-below-grid"),
    pytest.param(cavallo, lambda: {"priors": table1(feh=(-0.8, 0.7))}, IsochroneRangeError,
                 r"prior 'feh'.*0\.7.*feh ≤ 0\.6.*feh_clip = \(0\.0, 0\.3\)", id="prior-feh-beyond-table1-clip"),
    pytest.param(engine, lambda: {"priors": prior(feh=(-0.8, 0.4))}, IsochroneRangeError,
                 r"prior 'feh'.*0\.4.*feh ≤ 0\.3", id="engine-feh-above-grid-no-clip"),
    pytest.param(engine, lambda: {"params": row(log_age=10.5)}, IsochroneRangeError,
                 r"params rows \[0\]: log_age = \[10\.5\].*allowed 6 ≤ log_age ≤ 10\.2", id="params-log_age-above"),
    pytest.param(cavallo, lambda: {"params": row(feh=-3.0)}, IsochroneRangeError,
                 r"params rows \[0\]: feh = \[-3\.0\]", id="params-feh-below"),
    pytest.param(engine, lambda: {"field_fraction": 0.2, "field_mh": (-3.0, 0.0)}, ValueError,
                 r"field_mh = \(-3\.0, 0\.0\) must lie inside the PARSEC grid", id="field_mh-outside"),
    pytest.param(engine, lambda: {"field_log_age": (9.0, 11.0)}, ValueError,
                 r"field_log_age = \(9\.0, 11\.0\) must lie inside", id="field_log_age-outside"),
    pytest.param(engine, lambda: {"feh_clip": -0.1}, ValueError, r"feh_clip = -0\.1 must be ≥ 0",
                 id="feh_clip-negative"),
    pytest.param(engine, lambda: {"feh_clip": (0.1, 0.2, 0.3)}, ValueError, "feh_clip .* pair", id="feh_clip-triple"),
    # --- params (QA finding: a_v = -1 accepted) ------------------------------------------------------
    pytest.param(cavallo, lambda: {"params": row(a_v=-1.0)}, ValueError,
                 r"params column 'a_v' = \[-1\.0\] in rows \[0\]: allowed a_v ≥ 0 mag", id="params-a_v-negative"),
    pytest.param(engine, lambda: {"params": row(dist_mod=-0.5)}, ValueError,
                 r"'dist_mod' = \[-0\.5\].*dist_mod ≥ 0 mag", id="params-dist_mod-negative"),
    pytest.param(engine, lambda: {"params": row(log_age=np.nan)}, ValueError,
                 r"params column 'log_age' has non-finite values \[nan\] in rows \[0\]", id="params-nan"),
    pytest.param(engine, lambda: {"params": row(dist_mod=np.inf)}, ValueError,
                 r"'dist_mod' has non-finite values \[inf\]", id="params-inf"),
    pytest.param(engine, lambda: {"params": row(n_stars=0)}, ValueError,
                 r"'n_stars' = \[0\.0\].*whole numbers 1 ≤ n_stars", id="params-n_stars-zero"),
    pytest.param(engine, lambda: {"params": row(n_stars=10.5)}, ValueError,
                 r"'n_stars' = \[10\.5\].*whole numbers", id="params-n_stars-fraction"),
    pytest.param(engine, lambda: {"params": row(n_stars=1e9)}, ValueError,
                 r"'n_stars' = \[1000000000\.0\].*n_stars ≤ 2,000,000", id="params-n_stars-huge"),
    pytest.param(engine, lambda: {"params": {k: v for k, v in ONE.items() if k != "n_stars"}}, ValueError,
                 r"missing column\(s\) \['n_stars'\]", id="params-missing-column"),
    pytest.param(cavallo, lambda: {"params": dict(ONE, Av=[1.0])}, ValueError,
                 r"unknown column\(s\) \['Av'\]", id="params-unknown-column"),
    pytest.param(engine, lambda: {"params": {k: [] for k in ONE}}, ValueError, "params has no rows",
                 id="params-empty"),
    pytest.param(engine, lambda: {"params": row(feh="solar")}, ValueError, "params column 'feh' must be numeric",
                 id="params-not-numeric"),
    pytest.param(engine, lambda: {"params": row(mf_m_break=-0.2)}, ValueError,
                 r"m_break must be finite and > 0 M☉, got \[-0\.2\]", id="params-mf_m_break-negative"),
    pytest.param(engine, lambda: {"params": row(dist_mod=15.0, a_v=5.0, log_age=10.1), "g_max": 5.0}, ValueError,
                 r"1 parameter rows cannot produce stars with G ≤ 5\.0 \(rows \[0\]\)", id="params-unviable"),
    # --- priors --------------------------------------------------------------------------------------
    pytest.param(cavallo, lambda: {"priors": table1(a_v=(2.0, 1.0))}, ValueError,
                 r"prior 'a_v' = \(2\.0, 1\.0\) must be \(low, high\) with low ≤ high", id="prior-low-above-high"),
    pytest.param(engine, lambda: {"priors": {"log_age": (6.7, 10.1)}}, ValueError, "priors lacks 'feh'",
                 id="prior-missing-key"),
    pytest.param(engine, lambda: {"priors": prior(age=(1, 2))}, ValueError, r"unknown key\(s\) \['age'\]",
                 id="prior-unknown-key"),
    pytest.param(engine, lambda: {"priors": prior(dist_mod=(0, np.nan))}, ValueError,
                 r"prior 'dist_mod' = \(0, nan\) must be finite", id="prior-nan"),
    pytest.param(engine, lambda: {"priors": prior(a_v=2.0)}, ValueError, r"prior 'a_v' = 2\.0 must be a pair",
                 id="prior-not-a-pair"),
    pytest.param(engine, lambda: {"priors": prior(a_v=(-1.0, 1.0))}, ValueError,
                 r"prior 'a_v' low = -1\.0 < 0: A_V must be ≥ 0", id="prior-a_v-negative"),
    pytest.param(engine, lambda: {"priors": prior(dist_mod=(-2.0, 5.0))}, ValueError,
                 r"prior 'dist_mod' low = -2\.0 < 0 mag", id="prior-dist_mod-negative"),
    pytest.param(engine, lambda: {"priors": prior(log_n=(-1.0, 2.0))}, ValueError,
                 r"prior 'log_n' low = -1\.0 < 0", id="prior-log_n-negative"),
    pytest.param(engine, lambda: {"priors": prior(log_n=(1.0, 9.0))}, ValueError,
                 r"prior 'log_n' high = 9\.0 > 6\.3", id="prior-log_n-huge"),
    pytest.param(engine, lambda: {"priors": [(6.7, 10.1)]}, TypeError, "priors must be a dict", id="prior-not-dict"),
    pytest.param(engine, lambda: {"priors": None}, ValueError, "give priors", id="no-priors-no-params"),
    # --- options -------------------------------------------------------------------------------------
    pytest.param(cavallo, lambda: {"mass_function": "chabrier"}, ValueError, "unknown mass_function 'chabrier'",
                 id="mass_function-unknown"),
    pytest.param(engine, lambda: {"mass_function": {"m_break": (0.5, 0.5)}}, ValueError, "exactly the keys",
                 id="mass_function-keys"),
    pytest.param(engine, lambda: {"mass_function": {"m_break": (0.9, 0.5), "alpha_low": (1, 2)}}, ValueError,
                 "low ≤ high", id="mass_function-low-above-high"),
    pytest.param(cavallo, lambda: {"binary_fraction": 1.5}, ValueError,
                 r"binary_fraction must be in \[0, 1\], not 1\.5", id="binary_fraction-above-1"),
    pytest.param(engine, lambda: {"binary_fraction": np.nan}, ValueError, r"binary_fraction .* not nan",
                 id="binary_fraction-nan"),
    pytest.param(engine, lambda: {"field_fraction": 1.0}, ValueError, r"field_fraction must be in \[0, 1\), not 1\.0",
                 id="field_fraction-1"),
    pytest.param(cavallo, lambda: {"differential_extinction": -0.1}, ValueError,
                 r"differential_extinction must be finite and ≥ 0 mag, not -0\.1", id="diff-ext-negative"),
    pytest.param(engine, lambda: {"differential_extinction": np.nan}, ValueError,
                 r"differential_extinction .* not nan", id="diff-ext-nan"),
    pytest.param(engine, lambda: {"g_max": np.inf}, ValueError, r"g_max must be a finite magnitude, not inf",
                 id="g_max-inf"),
    pytest.param(engine, lambda: {"lattice_step": 0.0}, ValueError,
                 r"lattice_step must be finite and > 0 dex, not 0\.0", id="lattice_step-zero"),
    pytest.param(engine, lambda: {"law": "CCM89"}, ValueError, r"unknown extinction law 'CCM89'", id="law-unknown"),
    pytest.param(engine, lambda: {"seed": -3}, ValueError, r"seed must be a whole number ≥ 0, not -3",
                 id="seed-negative"),
    pytest.param(engine, lambda: {"seed": 1.5}, ValueError, r"seed must be a whole number ≥ 0, not 1\.5",
                 id="seed-fraction"),
    pytest.param(engine, lambda: {"grid": "PARSEC"}, TypeError,
                 "grid must be an ocnb.isochrones.IsochroneGrid, not str", id="grid-wrong-type"),
    pytest.param(engine, lambda: {"error_model": "DPAC"}, TypeError, "error_model must have a sigma",
                 id="error_model-type"),
    pytest.param(engine, lambda: {"n": -1}, ValueError, r"n must be ≥ 0, not -1", id="n-negative"),
    pytest.param(engine, lambda: {"n": 2.5}, ValueError, r"n must be a whole number ≥ 0, not 2\.5", id="n-fraction"),
    pytest.param(engine, lambda: {"n": "ten"}, ValueError, r"n must be a whole number ≥ 0, not 'ten'", id="n-text"),
]


@pytest.mark.parametrize("fn, kwargs, exc, msg", ERRORS)
def test_bad_input_raises(fn, kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        fn(**kwargs())


# --- explicit, documented flags instead of errors ---------------------------------------------------
def _table1_clip():
    sc = cavallo(n=40, seed=1)
    lab = sc.labels
    above = (lab["feh"] > 0.30).to_numpy()
    assert above.any() and not above.all()
    assert np.array_equal(lab["feh_clipped"].to_numpy(), above)
    assert np.allclose(lab["mh_iso"][above], 0.30)
    assert sc.meta["feh_clipped_high"] == above.sum() and sc.meta["feh_clipped_low"] == 0
    return sc.meta["feh_clipped_fraction"], above.mean()


def _low_end_clip():
    low = {"log_age": (9.0, 9.2), "feh": (-2.4, -2.1), "a_v": (0.0, 0.5), "dist_mod": (5.0, 8.0), "log_n": (1.0, 1.5)}
    sc = engine(n=30, seed=2, priors=low, feh_clip=(0.25, 0.0))
    below = (sc.labels["feh"] < -2.19174).to_numpy()
    assert below.any() and np.array_equal(sc.labels["feh_clipped"].to_numpy(), below)
    assert np.allclose(sc.labels["mh_iso"][below], -2.19174)
    assert sc.meta["feh_clipped_high"] == 0
    return sc.meta["feh_clipped_low"], int(below.sum())


def _params_clip_per_cluster():
    sc = engine(priors=None, params={k: v * 2 for k, v in ONE.items()} | {"feh": [0.35, 0.0]}, feh_clip=0.1)
    return sc.labels["feh_clipped"].tolist() + sc.labels["mh_iso"].round(6).tolist(), [True, False, 0.3, 0.0]


FLAGS = [
    pytest.param(_table1_clip, id="table1-feh-above-grid-flagged"),
    pytest.param(_low_end_clip, id="feh-below-grid-flagged-when-allowed"),
    pytest.param(_params_clip_per_cluster, id="params-feh-clip-per-cluster"),
    pytest.param(lambda: (twomass_usable([np.nan, 0.0, -0.1, 0.05]).tolist(), [False, False, False, True]),
                 id="twomass-missing-sigma-unusable"),
    pytest.param(lambda: (twomass_quality_letter([np.nan, -0.1]).tolist(), ["D", "D"]), id="twomass-missing-sigma-D"),
]


@pytest.mark.parametrize("check", FLAGS)
def test_bad_input_flagged(check):
    got, expected = check()
    assert got == expected
