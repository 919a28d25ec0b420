"""ocnb.stats.line: the errors-in-variables straight line (PyMC), its result object and its inputs.

The recovery test uses SIMULATED points with known parameters; nothing here needs a catalogue.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ocnb import stats
from ocnb.stats import line as sl

needs_pymc = pytest.mark.skipif(importlib.util.find_spec("pymc") is None, reason="needs pymc (ocnb[bayes])")
PRIORS = {"alpha": (0.0, 1.0), "beta": (0.0, 2.0), "eps_beta": 1.0}
X4, SX4 = [6.0, 8.0, 10.0, 11.0], [0.1, 0.5, 0.3, 1.0]
Y4, SY4 = [0.2, 0.05, -0.1, -0.2], [0.05, 0.1, 0.08, 0.2]


# ---------------------------------------------------------------------------
# bad input: one row per case -> error type and what the message must name
# ---------------------------------------------------------------------------
BAD_INPUTS = [
    ("lengths differ", dict(x=[1, 2, 3], sigma_x=[0.1, 0.1], y=[1, 2, 3], sigma_y=[0.1] * 3), sl.LineFitInputError,
     r"same length.*sigma_x.: 2"),
    ("empty selection", dict(x=[], sigma_x=[], y=[], sigma_y=[]), sl.LineFitInputError, r"at least 3.*got 0"),
    ("two points", dict(x=[1, 2], sigma_x=[0.1] * 2, y=[1, 2], sigma_y=[0.1] * 2), sl.LineFitInputError,
     r"at least 3 points.*got 2"),
    ("NaN in x", dict(x=[1, 2, np.nan, 4]), sl.LineFitInputError, r"x must be finite: NaN/inf at rows \[2\]"),
    ("inf in sigma_y", dict(sigma_y=[0.1, np.inf, 0.1, 0.1]), sl.LineFitInputError, r"sigma_y must be finite.*\[1\]"),
    ("NaN sigma_x", dict(sigma_x=[np.nan, 0.1, 0.1, 0.1]), sl.LineFitInputError, r"sigma_x must be finite.*\[0\]"),
    ("negative sigma_x", dict(sigma_x=[0.1, -0.2, 0.1, 0.1]), sl.LineFitInputError, r"sigma_x < 0 at rows \[1\]"),
    ("negative sigma_y", dict(sigma_y=[0.1, 0.1, 0.1, -1]), sl.LineFitInputError, r"sigma_y < 0 at rows \[3\]"),
    ("text in y", dict(y=["a", "b", "c", "d"]), sl.LineFitInputError, r"y must be numeric"),
    ("unknown prior", dict(priors={**PRIORS, "gamma": (0, 1)}), sl.LineFitInputError, r"unknown prior.*gamma"),
    ("missing prior", dict(priors={"alpha": (0, 1), "beta": (0, 1)}), sl.LineFitInputError,
     r"missing prior.*eps_beta"),
    ("no priors", dict(priors=None), sl.LineFitInputError, r"priors must be a dict"),
    ("zero prior sd", dict(priors={**PRIORS, "alpha": (0.0, 0.0)}), sl.LineFitInputError, r"prior alpha.*sd > 0"),
    ("NaN prior mu", dict(priors={**PRIORS, "beta": (np.nan, 1.0)}), sl.LineFitInputError,
     r"prior beta.*mu must be finite"),
    ("prior not a pair", dict(priors={**PRIORS, "alpha": 3.0}), sl.LineFitInputError,
     r"prior alpha must be \(mu, sd\)"),
    ("negative eps scale", dict(priors={**PRIORS, "eps_beta": -1}), sl.LineFitInputError, r"eps_beta.*> 0"),
]


@pytest.mark.parametrize(("case", "change", "error", "match"), BAD_INPUTS, ids=[r[0] for r in BAD_INPUTS])
def test_bad_input_is_named(case, change, error, match):
    a = {"x": X4, "sigma_x": SX4, "y": Y4, "sigma_y": SY4, "priors": PRIORS, **change}
    # rejected before PyMC is imported or anything is sampled
    with pytest.raises(error, match=match):
        sl.fit_line(a["x"], a["sigma_x"], a["y"], a["sigma_y"], priors=a["priors"])
    with pytest.raises(error, match=match):
        sl.line_model(a["x"], a["sigma_x"], a["y"], a["sigma_y"], priors=a["priors"])


BAD_SAMPLER = [
    (dict(draws=0), r"draws must be a whole number >= 1, got 0"),
    (dict(chains=1.5), r"chains must be a whole number >= 1, got 1.5"),
    (dict(tune=-1), r"tune must be a whole number >= 0, got -1"),
    (dict(draws=True), r"draws must be a whole number"),
    (dict(target_accept=1.0), r"target_accept must be in \(0, 1\), got 1.0"),
    (dict(bounds={"r_hat": 1.01}), r"bounds must give r_hat and ess_bulk"),
]


@pytest.mark.parametrize(("kwargs", "match"), BAD_SAMPLER)
def test_bad_sampler_settings(kwargs, match):
    with pytest.raises(sl.LineFitInputError, match=match):
        sl.fit_line(X4, SX4, Y4, SY4, priors=PRIORS, **kwargs)


def test_errors_are_value_errors():
    # callers that catch ValueError keep working; OcnbError lets them catch ocnb's own
    from ocnb.errors import OcnbError

    assert issubclass(sl.LineFitInputError, ValueError) and issubclass(sl.LineFitInputError, OcnbError)


# ---------------------------------------------------------------------------
# sampler presets and convergence bounds
# ---------------------------------------------------------------------------
def test_sampler_presets(monkeypatch):
    monkeypatch.setenv("OCNB_FAST", "1")
    settings, fast = sl.sampler_settings(None, None, None)
    assert fast and settings == stats.FAST_SAMPLER
    settings, fast = sl.sampler_settings(200, None, None)
    assert not fast and settings == {**stats.FAST_SAMPLER, "draws": 200}
    monkeypatch.setenv("OCNB_FAST", "0")
    settings, fast = sl.sampler_settings(None, None, None, full={"draws": 7, "tune": 8, "chains": 3})
    assert not fast and settings == {"draws": 7, "tune": 8, "chains": 3}
    # FAST is a documented, looser bound; full runs keep the strict one
    assert stats.FULL_BOUNDS == {"r_hat": 1.01, "ess_bulk": 400.0}
    assert stats.FAST_BOUNDS["r_hat"] == 1.05 and stats.FAST_BOUNDS["ess_bulk"] >= 400


def _fake_fit(r_hat, ess, bounds):
    summary = pd.DataFrame({"mean": [0.0] * 3, "sd": [1.0] * 3, "p16": [-1.0] * 3, "p84": [1.0] * 3,
                            "r_hat": r_hat, "ess_bulk": ess, "ess_tail": ess}, index=list(sl.PARAMS))
    return sl.LineFit(summary=summary, idata=None, n=10, data=pd.DataFrame(), priors=PRIORS,
                      settings={"draws": 1, "tune": 1, "chains": 2}, bounds=dict(bounds))


@pytest.mark.parametrize(
    ("r_hat", "ess", "bounds", "converged"),
    [
        ([1.0, 1.0115, 1.0], [900.0] * 3, stats.FULL_BOUNDS, False),  # issue 13's value fails a full run ...
        ([1.0, 1.0115, 1.0], [900.0] * 3, stats.FAST_BOUNDS, True),  # ... and passes the documented FAST bound
        ([1.0, 1.06, 1.0], [900.0] * 3, stats.FAST_BOUNDS, False),  # a poorly mixed FAST run still fails
        ([1.0, 1.0, 1.0], [900.0, 399.0, 900.0], stats.FAST_BOUNDS, False),  # too few effective draws
        ([1.005] * 3, [401.0] * 3, stats.FULL_BOUNDS, True),
        ([np.nan, 1.0, 1.0], [900.0] * 3, stats.FULL_BOUNDS, False),  # NaN r_hat is never "converged"
    ],
)
def test_converged_uses_the_bounds_of_the_run(r_hat, ess, bounds, converged):
    fit = _fake_fit(r_hat, ess, bounds)
    assert fit.converged is converged
    table = fit.convergence()
    assert list(table.columns) == ["r_hat", "r_hat_max", "ess_bulk", "ess_bulk_min", "ok"]
    frame = fit.to_frame()
    assert frame.attrs["bounds"] == bounds and frame.attrs["converged"] is converged


def test_from_fit_keeps_every_field():
    class Sub(sl.LineFit):
        def extra(self):
            return self.n

    base = _fake_fit([1.0] * 3, [900.0] * 3, stats.FAST_BOUNDS)
    sub = Sub.from_fit(base)
    assert sub.extra() == 10 and sub.bounds == base.bounds and sub.summary is base.summary


# ---------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------
@needs_pymc
def test_model_logp_is_the_marginal_likelihood():
    # deterministic check of the likelihood: errors in x enter as alpha^2 sigma_x^2
    from scipy import stats as sps

    x, sx, y, sy = (np.array(v) for v in (X4, SX4, Y4, SY4))
    model = sl.line_model(x, sx, y, sy, priors=PRIORS)
    assert sorted(v.name for v in model.free_RVs) == ["alpha", "beta", "eps"]
    alpha, beta, eps = -0.07, 0.6, 0.2
    point = {"alpha": alpha, "beta": beta, "eps_log__": np.log(eps)}
    logp = model.compile_logp(vars=model.observed_RVs)(point)
    sd = np.sqrt(sy**2 + alpha**2 * sx**2 + eps**2)
    assert logp == pytest.approx(sps.norm.logpdf(y, alpha * x + beta, sd).sum(), rel=1e-10)
    latent = sl.line_model(x, sx, y, sy, priors=PRIORS, marginal=False)
    assert sorted(v.name for v in latent.free_RVs) == ["alpha", "beta", "eps", "x_true"]


@needs_pymc
def test_recovers_simulated_parameters():
    """SIMULATED data: a known line with intrinsic scatter and heteroscedastic errors on both axes."""
    rng = np.random.default_rng(1)
    n, alpha, beta, eps = 300, -0.06, 0.55, 0.10
    x_true = rng.uniform(5, 12, n)
    sx, sy = rng.uniform(0.02, 0.3, n), rng.uniform(0.05, 0.25, n)
    x = x_true + rng.normal(0, sx)
    y = alpha * x_true + beta + rng.normal(0, np.sqrt(sy**2 + eps**2))
    fit = stats.fit_line(x, sx, y, sy, priors={"alpha": (0, 1), "beta": (0, 2), "eps_beta": 1.0}, draws=600,
                         tune=600, chains=2, seed=3, progressbar=False, labels=("x [kpc]", "y [dex]"))
    s = fit.summary
    for name, truth in (("alpha", alpha), ("beta", beta), ("eps", eps)):
        assert abs(s.loc[name, "mean"] - truth) < 3 * s.loc[name, "sd"], s.to_string()
    # the measurement errors are not absorbed into eps (ignoring sigma_y would give eps ~ 0.19)
    assert s.loc["eps", "p84"] < 0.14
    # explicit settings are a full-size request: the strict bounds apply
    assert fit.bounds == stats.FULL_BOUNDS and not fit.fast
    assert (s["r_hat"] < 1.02).all() and fit.divergences == 0
    band = fit.line_band([5.0, 12.0])
    assert (band["lo"] < band["mean"]).all() and (band["mean"] < band["hi"]).all()
    assert fit.to_frame().attrs["n"] == n and "N = 300" in fit.text()
    ax = fit.plot()
    assert ax.get_xlabel() == "x [kpc]" and ax.get_ylabel() == "y [dex]"
    import matplotlib.pyplot as plt

    plt.close("all")
    with pytest.raises(KeyError, match="no parameter 'gamma'"):
        fit.posterior("gamma")


# ---------------------------------------------------------------------------
# PyTensor is configured by the fit, never by an import
# ---------------------------------------------------------------------------
def test_configure_pytensor_respects_user(monkeypatch, tmp_path):
    monkeypatch.delitem(sys.modules, "pytensor", raising=False)  # restored after the test
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("OCNB_DATA_DIR", str(tmp_path / "home"))
    monkeypatch.setenv("PYTENSOR_FLAGS", "base_compiledir=/somewhere/else")
    assert stats.configure_pytensor() is None
    assert os.environ["PYTENSOR_FLAGS"] == "base_compiledir=/somewhere/else"
    monkeypatch.setenv("PYTENSOR_FLAGS", "floatX=float64")
    path = stats.configure_pytensor()
    assert path == str(tmp_path / "home" / "pytensor")
    assert os.environ["PYTENSOR_FLAGS"] == f"floatX=float64,base_compiledir={path}"
    # a .pytensorrc naming a compile directory wins too
    monkeypatch.delenv("PYTENSOR_FLAGS")
    (tmp_path / ".pytensorrc").write_text("[global]\nbase_compiledir = /mine\n")
    assert stats.configure_pytensor() is None and "PYTENSOR_FLAGS" not in os.environ


def _run(code: str, tmp_path, **env_extra) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTENSOR_FLAGS"}
    env.update(OCNB_DATA_DIR=str(tmp_path / "dh"), HOME=str(tmp_path), **env_extra)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_import_has_no_side_effects(tmp_path):
    code = (
        "import os, sys, warnings, numpy, pandas\n"
        "env, filters = dict(os.environ), list(warnings.filters)\n"
        "import ocnb.stats, ocnb.cmd_ann.gradient\n"
        "assert dict(os.environ) == env, set(os.environ.items()) ^ set(env.items())\n"
        "assert warnings.filters == filters, [f for f in warnings.filters if f not in filters]\n"
        "heavy = [m for m in ('pymc', 'pytensor', 'arviz') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print('clean')\n"
    )
    assert _run(code, tmp_path) == "clean"


@needs_pymc
def test_fit_sets_compiledir_under_data_home(tmp_path):
    code = (
        "import warnings\n"
        "from ocnb.stats import line_model\n"
        "filters = list(warnings.filters)\n"
        "line_model([1, 2, 3], [0.1] * 3, [1, 2, 3], [0.1] * 3, priors={'alpha': (0, 1), 'beta': (0, 1),"
        " 'eps_beta': 1})\n"
        "assert warnings.filters == filters  # the quiet block is local to the call\n"
        "import pytensor; print(pytensor.config.base_compiledir)\n"
    )
    assert _run(code, tmp_path) == str(tmp_path / "dh" / "pytensor")
