"""Metallicity gradient and spectroscopic comparison (Cavallo et al. 2024, Sects. 5.1-5.2, Table 2).

The Table 2 tests run on the real published CAVALLO2024 catalogue; the recovery
test uses SIMULATED data generated here with known parameters.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from ocnb import stats
from ocnb.cmd_ann import gradient as g

# no `import pymc` here: the fits configure PyTensor themselves (ocnb.stats.configure_pytensor) before importing it
pytestmark = pytest.mark.skipif(importlib.util.find_spec("pymc") is None, reason="needs pymc (ocnb[bayes])")


@pytest.fixture(scope="module")
def selection(cavallo, hunt):
    return g.table2_selection(cavallo, hunt)


def _assert_table2(fit, n_sigma=1.0):
    cmp = fit.compare_table2()
    assert (cmp["n_sigma"] <= n_sigma).all(), cmp.to_string()


# ---------------------------------------------------------------------------
# selection (spec §9c)
# ---------------------------------------------------------------------------
def test_table2_selection_counts(selection):
    assert selection.attrs["counts"] == {
        "catalogue": 6140,
        "age": 1199,
        "quality": 1119,
        "R_GC": 1047,
        "cmd_class": 839,
    }
    assert len(selection) == g.TABLE2_N == 839
    assert list(selection.columns[:5]) == ["name", "R", "sigma_R", "feh", "sigma_feh"]
    assert selection["R"].between(5, 12).all() and (selection["log_age"] > 8.699).all()
    assert (selection["quality"] == 0).all() and (selection["cmd_class"] > 0.5).all()
    assert selection["name"].is_unique
    # catalogue Rgc and our astropy value agree to 0.5 pc
    assert np.abs(selection["R"] - selection["R_GC_calc"]).max() <= 0.0005


def test_selection_errors_are_half_widths(cavallo, selection):
    row = cavallo.set_index("name").loc["NGC 2682"]
    sel = selection.set_index("name").loc["NGC 2682"]
    assert sel["feh"] == row["[Fe/H]50"]
    assert sel["sigma_feh"] == pytest.approx((row["[Fe/H]84"] - row["[Fe/H]16"]) / 2)
    assert 0 < sel["sigma_R"] < 0.1  # M67 is 0.85 kpc away: its R_GC is known to a few tens of pc


def test_selection_variants(cavallo, hunt):
    # following aliases also matches "Teutsch 182, UBC 6" to HR23's UBC 6 (spec: 6139/6140 matched)
    assert len(g.table2_selection(cavallo, hunt, name_match="resolve")) == 840
    # no CMD-class cut: the 1047 of spec §9c
    assert len(g.table2_selection(cavallo, hunt, cmd_min=None)) == 1047
    ours = cavallo[["name", "[Fe/H]16", "[Fe/H]50", "[Fe/H]84", "dMod16", "dMod50", "dMod84"]]
    with pytest.raises(KeyError, match="quality=None"):
        g.table2_selection(ours, hunt)


# ---------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------
def test_model_logp_is_the_marginal_likelihood():
    # deterministic check of the likelihood: errors in x enter as alpha^2 sigma_x^2
    from scipy import stats

    x, sx = np.array([6.0, 8.0, 10.0, 11.0]), np.array([0.1, 0.5, 0.3, 1.0])
    y, sy = np.array([0.2, 0.05, -0.1, -0.2]), np.array([0.05, 0.1, 0.08, 0.2])
    model = g.gradient_model(x, sx, y, sy)
    assert sorted(v.name for v in model.free_RVs) == ["alpha", "beta", "eps"]
    alpha, beta, eps = -0.07, 0.6, 0.2
    point = {"alpha": alpha, "beta": beta, "eps_log__": np.log(eps)}
    logp = model.compile_logp(vars=model.observed_RVs)(point)
    sd = np.sqrt(sy**2 + alpha**2 * sx**2 + eps**2)
    assert logp == pytest.approx(stats.norm.logpdf(y, alpha * x + beta, sd).sum(), rel=1e-10)
    latent = g.gradient_model(x, sx, y, sy, marginal=False)
    assert sorted(v.name for v in latent.free_RVs) == ["alpha", "beta", "eps", "x_true"]


BAD_GRADIENT_INPUTS = [
    (dict(data=pd.DataFrame({"R": [1.0, 2.0, 3.0]})), KeyError, r"lacks column\(s\) \['feh', 'sigma_R', 'sigma_feh'\]"),
    (dict(data=[1, 2, 3]), TypeError, r"data must be a DataFrame"),
    (dict(data=pd.DataFrame({"R": [], "sigma_R": [], "feh": [], "sigma_feh": []})), ValueError,
     r"at least 3 points.*got 0 \(empty selection\?\)"),
    (dict(data=pd.DataFrame({"R": [6.0, 7, 8], "sigma_R": [0.1, -0.1, 0.1], "feh": [0.0, 0, 0],
                             "sigma_feh": [0.1] * 3})), ValueError, r"sigma_x < 0 at rows \[1\]"),
    (dict(data=pd.DataFrame({"R": [6.0, 7, 8], "sigma_R": [0.1] * 3, "feh": [0.0, np.nan, 0],
                             "sigma_feh": [0.1] * 3})), ValueError, r"y must be finite.*rows \[1\]"),
    (dict(priors={"gamma": (0, 1)}), ValueError, r"unknown prior.*gamma"),
    (dict(priors={"alpha": (0.0, -1.0)}), ValueError, r"prior alpha.*sd > 0"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD_GRADIENT_INPUTS)
def test_fit_rejects_bad_input(selection, kwargs, error, match):
    kwargs = {"data": selection.head(20), **kwargs}
    with pytest.raises(error, match=match):
        g.fit_metallicity_gradient(**kwargs)


def test_model_rejects_bad_input():
    with pytest.raises(ValueError, match="same length"):
        g.gradient_model([1, 2, 3], [0.1, 0.1], [1, 2, 3], [0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="at least 3"):
        g.gradient_model([1, 2], [0.1, 0.1], [1, 2], [0.1, 0.1])
    with pytest.raises(ValueError, match="finite"):
        g.gradient_model([1, 2, np.nan], [0.1] * 3, [1, 2, 3], [0.1] * 3)
    with pytest.raises(ValueError, match="unknown prior"):
        g.gradient_model([1, 2, 3], [0.1] * 3, [1, 2, 3], [0.1] * 3, priors={"gamma": (0, 1)})


# ---------------------------------------------------------------------------
# Table 2
# ---------------------------------------------------------------------------
def test_fast_fit_reproduces_table2(selection, monkeypatch):
    """FAST preset (2 chains x 1000 tune / 2000 draws) with its documented bounds: r_hat < 1.05, bulk ESS > 400.

    Margins measured on the Table 2 sample, seeds 0-5: max r_hat <= 1.0050, min bulk ESS >= 1029; a 2 x 1000/1000
    run reached r_hat 1.0115 on another CPU, so the strict full-run limit (1.01) is not asserted here.
    """
    monkeypatch.setenv("OCNB_FAST", "1")
    fit = g.fit_metallicity_gradient(selection, seed=0, progressbar=False)
    assert fit.fast and fit.settings["draws"] == stats.FAST_SAMPLER["draws"] and fit.bounds == stats.FAST_BOUNDS
    assert fit.n == 839
    _assert_table2(fit, 1.0)
    assert fit.converged, fit.convergence().to_string()
    assert fit.divergences == 0
    s = fit.summary
    assert s.loc["alpha", "p16"] < -0.048 < s.loc["alpha", "p84"]
    assert any("FAST mode" in n and "r_hat < 1.05" in n for n in fit.notes)
    ax = fit.plot(reference=g.TABLE2)  # static Fig. 13
    assert len(ax.lines) >= 2 and any("α = -0.04" in t.get_text() for t in ax.get_legend().get_texts())
    import matplotlib.pyplot as plt

    plt.close("all")


def test_fast_mode_presets(monkeypatch):
    monkeypatch.setenv("OCNB_FAST", "1")
    settings, fast = g._sampler_settings(None, None, None)
    assert fast and settings == g.FAST_SAMPLER == stats.FAST_SAMPLER
    settings, fast = g._sampler_settings(200, None, None)
    assert not fast and settings["draws"] == 200
    monkeypatch.setenv("OCNB_FAST", "0")
    settings, fast = g._sampler_settings(None, None, None)
    assert not fast and settings == g.FULL_SAMPLER == {"draws": 5000, "tune": 5000, "chains": 4}


@pytest.mark.slow
def test_full_fit_reproduces_table2(selection):
    """The paper's sampler (4 chains x 5000 tune / 5000 draws): about 30-80 s on 2 cores."""
    fit = g.fit_metallicity_gradient(selection, draws=5000, tune=5000, chains=4, seed=0, progressbar=False)
    _assert_table2(fit, 1.0)
    s = fit.summary
    assert fit.bounds == stats.FULL_BOUNDS and not fit.fast
    assert (s["r_hat"] < 1.01).all() and fit.converged and fit.divergences == 0
    # the paper's own sd's: alpha 0.009, beta 0.08, eps 0.009
    assert s.loc["alpha", "sd"] == pytest.approx(0.009, abs=0.001)
    assert s.loc["eps", "sd"] == pytest.approx(0.009, abs=0.0015)


# ---------------------------------------------------------------------------
# spectroscopic comparison (Sect. 5.1)
# ---------------------------------------------------------------------------
def test_spina_matching_counts(cavallo, hunt):
    data, counts, notes = g.spectroscopic_sample(cavallo, hunt=hunt)
    # paper: 251 -> 197 -> 89; the shipped Spina table has 250 rows and Cavallo 6140 of 6413
    assert counts == {
        "spina": 250,
        "Fe_err < 0.1": 237,
        "matched": 198,
        "age": 105,
        "quality": 101,
        "cmd_class": 90,
    }
    assert len(data) == 90 and not notes
    assert (data["sigma_s22"] < 0.1).all() and (data["log_age"] > 8.699).all()
    assert data["name"].is_unique
    _, resolved, _ = g.spectroscopic_sample(cavallo, hunt=hunt, name_match="resolve")
    assert resolved["matched"] == 209 and resolved["cmd_class"] == 93


def test_spectroscopic_fit_and_own_estimates(cavallo, hunt):
    comp = g.spectroscopic_comparison(cavallo, hunt=hunt, draws=400, tune=400, chains=2, progressbar=False)
    s = comp.fit.summary
    assert comp.n == 90 and comp.fit.n == 90
    # a mild positive correlation (Fig. 12), scatter ~0.3 dex
    assert s.loc["alpha", "p16"] > 0 and 0.2 < s.loc["eps", "mean"] < 0.45
    ax = comp.plot()  # static Fig. 12
    assert ax.get_title() == "N = 90"
    # our estimates: only name and [Fe/H] percentiles -> age and gold cuts are skipped, and said so
    ours = cavallo.loc[cavallo["name"].isin(comp.data["name"]), ["name", "[Fe/H]16", "[Fe/H]50", "[Fe/H]84"]]
    ours = ours.rename(columns={"[Fe/H]16": "feh_16", "[Fe/H]50": "feh_50", "[Fe/H]84": "feh_84"}).iloc[:20]
    mine = g.spectroscopic_comparison(ours, hunt=hunt, fit=False)
    assert mine.n == 20 and mine.fit is None
    assert any("age cut skipped" in n for n in mine.notes) and any("quality" in n for n in mine.notes)
    merged = mine.data.merge(comp.data, on="name")
    assert np.allclose(merged["feh_ann_x"], merged["feh_ann_y"])


def test_gradient_inputs_from_own_estimates(cavallo, hunt):
    # part (c): a table shaped like our ANN output (no RA/Dec, no Rgc, no quality): HR23 positions by name
    sub = cavallo[cavallo["name"].isin(g.table2_selection(cavallo, hunt)["name"].iloc[:40])]
    ours = pd.DataFrame(
        {
            "name": sub["name"].to_numpy(),
            "logAge_50": sub["logAge50"].to_numpy(),
            **{f"feh_{p}": sub[f"[Fe/H]{p}"].to_numpy() for p in (16, 50, 84)},
            **{f"dMod_{p}": sub[f"dMod{p}"].to_numpy() for p in (16, 50, 84)},
        }
    )
    sel = g.table2_selection(ours, hunt, quality=None)
    assert "quality" not in sel.attrs["counts"]
    assert 35 <= len(sel) <= 40  # HR23 centres vs Cavallo member means may move a few across a cut
    ref = g.table2_selection(cavallo, hunt).set_index("name").loc[sel["name"]]
    assert np.abs(sel["R"].to_numpy() - ref["R"].to_numpy()).max() < 0.01
    assert np.allclose(sel["sigma_feh"].to_numpy(), ref["sigma_feh"].to_numpy())
