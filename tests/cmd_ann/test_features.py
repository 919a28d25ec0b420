"""QuadTree CMD features of Cavallo et al. (2024), Sect. 3.1 (ocnb.cmd_ann.features)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from ocnb.cmd_ann.features import (
    QuadTreeFeatures,
    cmd_arrays,
    cmd_masks,
    n_quadtree_features,
    quadtree_batch,
    quadtree_cuts,
    quadtree_feature_names,
)
from ocnb.errors import MemberTableError

# Spec §3 worked example (already standardised points) and its full 63-vector.
EXAMPLE = [(0.1, 5), (0.2, 3), (0.3, 6), (0.4, 4), (0.6, 2), (0.7, 9), (0.8, 1), (0.9, 8)]
EXAMPLE_X = [0.5, 0.3, 0.2, 0.7, 0.8, 0.2, 0.3, 0.4, 0.3, 0.1, 0.2, 0.3, 0.2, 0.6, 0.7, 0.8, 0.7,
             0.7, 0.8, 0.9, 0.8]
EXAMPLE_Y = [4.5, 5, 3, 4, 5, 6, 2, 1, 9, 8, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6,
             2, 2, 2, 2, 1, 1, 1, 1, 9, 9, 9, 9, 8, 8, 8, 8]


def brute_force(x, y, levels=3):
    """Independent recursive reference: plain Python lists, sorted() on (value, row index)."""
    pts = [(float(a), float(b), i) for i, (a, b) in enumerate(zip(x, y, strict=True))]
    xs = [[] for _ in range(levels)]
    ys = [[] for _ in range(levels)]

    def median(v):
        v = sorted(v)
        n = len(v)
        return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2

    def halve(p, axis):
        p = sorted(p, key=lambda t: (t[axis], t[2]))
        h = (len(p) + 1) // 2
        return p[:h], p[h:]

    def visit(p, level, anchor):
        if level == levels:
            return
        if not p:
            xc, yl, yr = anchor[0], anchor[1], anchor[1]
            kids = [[], [], [], []]
        else:
            xc = median([t[0] for t in p])
            left, right = halve(p, 0)
            yl = median([t[1] for t in left])
            yr = median([t[1] for t in right]) if right else median([t[1] for t in p])
            kids = [*halve(left, 1), *halve(right, 1)]
        xs[level].append(xc)
        ys[level] += [yl, yr]
        for k, kid in enumerate(kids):
            visit(kid, level + 1, (xc, yl if k < 2 else yr))

    visit(pts, 0, (0.0, 0.0))
    if not pts:
        return np.zeros(3 * ((4**levels - 1) // 3))
    return np.array([v for lev in xs for v in lev] + [v for lev in ys for v in lev])


@pytest.fixture(scope="module")
def sim():
    from ocnb.cmd_ann.simulate import simulate_clusters

    return simulate_clusters(200, seed=21, progress=False)


@pytest.fixture(scope="module")
def qf(sim):
    return QuadTreeFeatures().fit(sim)


@pytest.fixture(scope="module")
def m67():
    from ocnb.datasets import load_members

    return load_members("M67")


# ---------------------------------------------------------------------------
# the tree
# ---------------------------------------------------------------------------
def test_worked_example():
    x, y = np.array(EXAMPLE).T
    expected = np.array(EXAMPLE_X + EXAMPLE_Y)
    np.testing.assert_allclose(quadtree_cuts(x, y), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(quadtree_batch(x, y, [0, 8])[0], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(brute_force(x, y), expected, rtol=0, atol=1e-12)


def test_output_length_and_names():
    assert n_quadtree_features(3) == 63 and n_quadtree_features(1) == 3 and n_quadtree_features(4) == 255
    rng = np.random.default_rng(0)
    assert quadtree_cuts(rng.normal(size=50), rng.normal(size=50)).shape == (63,)
    names = quadtree_feature_names("cmd1")
    assert len(names) == 63 and len(set(names)) == 63
    assert names[0] == "cmd1_x_L1_0" and names[21] == "cmd1_y_L1_0L" and names[-1] == "cmd1_y_L3_15R"


def test_empty_and_single_star():
    assert np.array_equal(quadtree_cuts([], []), np.zeros(63))
    q = quadtree_cuts([0.7], [3.2])
    assert np.array_equal(q[:21], np.full(21, 0.7)) and np.array_equal(q[21:], np.full(42, 3.2))


def test_two_stars_collapse_onto_cuts():
    q = quadtree_cuts([1.0, 3.0], [10.0, 20.0])
    assert q[0] == 2.0 and q[21] == 10.0 and q[22] == 20.0  # x median; y_L, y_R of the halves
    # level 2: the left node holds (1, 10), the right (3, 20); their empty children use the anchors
    assert q[1:5].tolist() == [1.0, 2.0, 3.0, 2.0]
    assert np.isfinite(q).all()


def _random_clusters(rng, sizes, ties=False):
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n = int(off[-1])
    x, y = rng.normal(size=n), rng.normal(size=n)
    if ties:
        x, y = np.round(x * 2) / 2, np.round(y * 2) / 2
    return x, y, off


@pytest.mark.parametrize("ties", [False, True])
def test_batch_equals_brute_force(ties):
    rng = np.random.default_rng(1 if ties else 2)
    sizes = np.r_[0, 1, 2, 3, 4, 5, 8, 10, 16, 17, 33, 64, 65, rng.integers(0, 200, 40)]
    x, y, off = _random_clusters(rng, sizes, ties)
    batch = quadtree_batch(x, y, off, n_jobs=1)
    for i in range(sizes.size):
        a, b = off[i], off[i + 1]
        ref = brute_force(x[a:b], y[a:b])
        assert np.array_equal(batch[i], ref), f"cluster {i} (n={b - a})"
        assert np.array_equal(quadtree_cuts(x[a:b], y[a:b]), ref)


@pytest.mark.parametrize("levels", [1, 2, 4])
def test_batch_other_depths(levels):
    rng = np.random.default_rng(levels)
    x, y, off = _random_clusters(rng, np.r_[0, 1, 2, 7, 40, 130], ties=True)
    batch = quadtree_batch(x, y, off, levels=levels)
    assert batch.shape == (6, n_quadtree_features(levels))
    for i in range(6):
        assert np.array_equal(batch[i], brute_force(x[off[i]:off[i + 1]], y[off[i]:off[i + 1]], levels))


def test_batch_threads_do_not_change_results():
    rng = np.random.default_rng(3)
    x, y, off = _random_clusters(rng, rng.integers(1, 400, 300))
    assert np.array_equal(quadtree_batch(x, y, off, n_jobs=1), quadtree_batch(x, y, off, n_jobs=2))


def test_permutation_invariance():
    rng = np.random.default_rng(4)
    for n in (1, 2, 10, 37, 500):
        x, y = rng.normal(size=n), rng.normal(size=n)
        p = rng.permutation(n)
        assert np.array_equal(quadtree_cuts(x, y), quadtree_cuts(x[p], y[p]))
        both = quadtree_batch(np.r_[x, x[p]], np.r_[y, y[p]], [0, n, 2 * n])
        assert np.array_equal(both[0], both[1])


def test_ties_are_broken_by_row_order():
    """Tied x: which star goes left is decided by row order; the cut value itself does not move."""
    x = np.array([0.0, 0.0, 0.0, 0.0])
    y = np.array([4.0, 3.0, 2.0, 1.0])
    q = quadtree_cuts(x, y)
    assert q[0] == 0.0 and q[21:23].tolist() == [3.5, 1.5]  # L = rows 0, 1; R = rows 2, 3


def test_batch_input_checks():
    with pytest.raises(ValueError, match="finite"):
        quadtree_batch([np.nan], [1.0], [0, 1])
    with pytest.raises(ValueError, match="disagree"):
        quadtree_batch([1.0, 2.0], [1.0, 2.0], [0, 1])
    with pytest.raises(ValueError, match="offsets"):
        quadtree_batch([1.0], [1.0], [1, 1])
    assert quadtree_batch([], [], [0, 0, 0]).shape == (2, 63)


# ---------------------------------------------------------------------------
# CMDs and usability
# ---------------------------------------------------------------------------
def _table(**kw):
    base = {"phot_g_mean_mag": [12.0, 13.0, 14.0, 19.0], "phot_bp_mean_mag": [12.5, 13.6, np.nan, 19.8],
            "phot_rp_mean_mag": [11.4, 12.3, 13.1, 18.1], "j_m": [10.5, 11.2, 12.0, 16.0],
            "h_m": [10.0, 10.8, 11.5, 15.5], "j_msigcom": [0.02, 0.12, 0.03, 0.2],
            "h_msigcom": [0.02, 0.35, 0.03, 0.2], "ph_qual": ["AAA", "BCA", "AAA", "CCC"],
            "parallax": [1.0, 1.1, 0.9, 1.0]}
    base.update(kw)
    return pd.DataFrame(base)


def test_cmd_masks_real_letters():
    m = cmd_masks(_table())
    assert m["twomass"] == "ph_qual"
    assert m["base"].tolist() == [True, True, True, False]  # G ≤ 18
    assert m["cmd1"].tolist() == [True, True, False, False]  # star 2 lacks BP
    assert m["j_ok"].tolist() == [True, True, True, False]  # letter C fails
    assert m["h_ok"].tolist() == [True, False, True, False]  # letter C and σ > 0.3 fail
    assert m["cmd2"].tolist() == [True, True, False, False]
    assert m["cmd3"].tolist() == [True, False, True, False]
    xy = cmd_arrays(_table())
    np.testing.assert_allclose(xy["cmd1"][0], [1.1, 1.3])
    np.testing.assert_allclose(xy["cmd3"][0], [0.5, 0.5])
    np.testing.assert_allclose(xy["cmd3"][1], [10.5, 12.0])


def test_cmd_masks_error_cut_with_good_letter():
    t = _table(j_msigcom=[0.02, 0.31, 0.03, 0.2])
    assert cmd_masks(t)["j_ok"].tolist() == [True, False, True, False]


def test_cmd_masks_without_letters_use_snr():
    t = _table().drop(columns="ph_qual")
    m = cmd_masks(t)
    assert m["twomass"] == "snr"
    # σ 0.12 → S/N 9 > 7 usable; σ 0.2 → S/N 5.4 not; σ 0.35 not
    assert m["j_ok"].tolist() == [True, True, True, False]
    assert m["h_ok"].tolist() == [True, False, True, False]


def test_cmd_masks_missing_columns():
    t = _table().drop(columns=["j_m", "h_m", "j_msigcom", "h_msigcom", "ph_qual"])
    m = cmd_masks(t)
    assert m["twomass"] == "missing" and not m["cmd2"].any() and not m["cmd3"].any()
    with pytest.raises(MemberTableError, match="phot_bp_mean_mag"):
        cmd_masks(_table().drop(columns="phot_bp_mean_mag"))


# ---------------------------------------------------------------------------
# the estimator
# ---------------------------------------------------------------------------
def test_fit_scales_are_std_over_cmd_stars(sim, qf):
    s = sim.stars
    g = s["phot_g_mean_mag"].astype(float)
    bprp = s["phot_bp_mean_mag"].astype(float) - s["phot_rp_mean_mag"].astype(float)
    assert qf.scales_["cmd1"] == pytest.approx((np.std(bprp), np.std(g)), rel=1e-12)
    m = cmd_masks(s)["cmd3"]
    j, h = s["j_m"].astype(float)[m], s["h_m"].astype(float)[m]
    assert qf.scales_["cmd3"] == pytest.approx((np.std(j - h), np.std(j)), rel=1e-12)


def test_standardisation_constants_stable(qf):
    """Independent synthetic samples give the same constants to a few per cent."""
    from ocnb.cmd_ann.simulate import simulate_clusters

    other = QuadTreeFeatures().fit(simulate_clusters(200, seed=99, progress=False))
    for c in ("cmd1", "cmd2", "cmd3"):
        np.testing.assert_allclose(other.scales_[c], qf.scales_[c], rtol=0.15)
    # transforming does not refit
    before = dict(qf.scales_)
    qf.transform(simulate_clusters(5, seed=7, progress=False))
    assert qf.scales_ == before


def test_transform_synthetic(sim, qf):
    X, flags = qf.transform_with_flags(sim)
    assert X.shape == (200, 190) and np.isfinite(X).all()
    assert len(qf.feature_names) == 190 and qf.feature_names[-1] == "parallax"
    np.testing.assert_allclose(X[:, -1], sim.labels["parallax"], rtol=1e-9)
    assert (flags["n_cmd1"] == sim.labels["n_stars"]).all() and not flags["low_quality"].any()
    # one CMD block equals the per-cluster function on the standardised coordinates
    i = 17
    t = sim.cluster(i)
    sx, sy = qf.scales_["cmd2"]
    x, y = cmd_arrays(t)["cmd2"]
    assert np.array_equal(X[i, 63:126], quadtree_cuts(x / sx, y / sy))


def test_member_table_route_equals_synthetic_route(sim, qf):
    X = qf.transform(sim)
    one = qf.transform(sim.cluster(3))
    assert one.shape == (1, 190)
    np.testing.assert_allclose(one[0], X[3], rtol=1e-12, atol=1e-12)
    many = qf.transform([sim.cluster(3), sim.cluster(8)])
    np.testing.assert_allclose(many, X[[3, 8]], rtol=1e-12, atol=1e-12)


def test_gaia_only(sim, qf):
    g = QuadTreeFeatures(bands="gaia").fit(sim)
    Xg = g.transform(sim)
    assert Xg.shape == (200, 64) and g.n_features == 64
    Xm = qf.transform(sim)
    np.testing.assert_array_equal(Xg[:, :63], Xm[:, :63])
    np.testing.assert_array_equal(Xg[:, 63], Xm[:, 189])


def test_empty_cmd_gives_zeros(qf):
    t = _table(phot_g_mean_mag=[12.0, 13.0, 14.0, 15.0] * 3, phot_bp_mean_mag=[12.5, 13.6, 14.6, 15.8] * 3,
               phot_rp_mean_mag=[11.4, 12.3, 13.1, 14.2] * 3, j_m=[10.5] * 12, h_m=[10.0] * 12,
               j_msigcom=[0.2] * 12, h_msigcom=[0.2] * 12, ph_qual=["CCC"] * 12, parallax=[1.0] * 12)
    X, f = qf.transform_with_flags(t)
    assert f["n_cmd2"][0] == 0 and f["n_cmd3"][0] == 0 and f["has_2mass"][0]
    assert np.array_equal(X[0, 63:189], np.zeros(126)) and np.isfinite(X).all()


def test_real_m67_members_featurise(qf, m67):
    X, f = qf.transform_with_flags(m67)
    assert X.shape == (1, 190) and np.isfinite(X).all()
    assert f["cluster"][0] == "NGC 2682" and not f["low_quality"][0]
    assert f["n_cmd1"][0] == int((m67["phot_g_mean_mag"] <= 18).sum()) and f["n_cmd3"][0] > 900
    assert X[0, -1] == pytest.approx(m67.loc[m67["phot_g_mean_mag"] <= 18, "parallax"].mean())


def test_members_without_2mass_warn_and_zero(qf, m67):
    t = m67.drop(columns=["j_m", "h_m", "j_msigcom", "h_msigcom", "ph_qual"])
    with pytest.warns(UserWarning, match="2MASS"):
        X, f = qf.transform_with_flags(t)
    assert not f["has_2mass"][0] and np.array_equal(X[0, 63:189], np.zeros(126))
    assert np.isfinite(X).all()
    with warnings.catch_warnings():  # the Gaia-only model needs no 2MASS: no warning
        warnings.simplefilter("error")
        QuadTreeFeatures.from_dict(dict(qf.to_dict(), bands="gaia", feature_names=None,
                                        scales={"cmd1": qf.scales_["cmd1"]})).transform(t)


def test_low_quality_members_raise_or_flag(qf, m67):
    few = m67[m67["phot_g_mean_mag"] <= 18].iloc[:6]
    with pytest.raises(MemberTableError, match="min_stars"):
        qf.transform(few)
    noplx = m67.assign(parallax=np.nan)
    with pytest.raises(MemberTableError, match="parallax"):
        qf.transform(noplx)
    flag = QuadTreeFeatures.from_dict(qf.to_dict(), on_low_quality="flag")
    X, f = flag.transform_with_flags([m67, few, noplx])
    assert f["low_quality"].tolist() == [False, True, True]
    assert "min_stars" in f["reason"][1] and "parallax" in f["reason"][2]
    assert np.isnan(X[2, -1]) and np.isfinite(X[:2]).all()
    with pytest.raises(MemberTableError, match="parallax"):
        qf.transform(m67.drop(columns="parallax"))


def test_persistence_roundtrip(sim, qf):
    d = json.loads(json.dumps(qf.to_dict()))
    back = QuadTreeFeatures.from_dict(d)
    assert back.scales_ == qf.scales_ and back.feature_names == qf.feature_names
    np.testing.assert_array_equal(back.transform(sim), qf.transform(sim))
    with pytest.raises(ValueError, match="QuadTreeFeatures"):
        QuadTreeFeatures.from_dict({"kind": "other"})


def test_unfitted_and_bad_arguments(qf):
    with pytest.raises(RuntimeError, match="fit"):
        QuadTreeFeatures().transform(_table())
    with pytest.raises(ValueError, match="'2mass'"):
        QuadTreeFeatures(bands="2mass")
    with pytest.raises(ValueError, match="'ignore'"):
        QuadTreeFeatures(on_low_quality="ignore")
    with pytest.raises(TypeError):
        qf.transform(42)
    with pytest.raises(TypeError):
        qf.transform([_table(), "M67"])


def test_log10_parallax_option_round_trips():
    from ocnb.cmd_ann.features import QuadTreeFeatures
    from ocnb.cmd_ann.simulate import simulate_clusters

    sim = simulate_clusters(40, seed=11, progress=False)  # SIMULATED
    raw = QuadTreeFeatures("gaia").fit(sim)
    log = QuadTreeFeatures("gaia", parallax="log10").fit(sim)
    a, b = raw.transform(sim), log.transform(sim)
    np.testing.assert_array_equal(a[:, :-1], b[:, :-1])
    np.testing.assert_allclose(b[:, -1], np.log10(np.clip(a[:, -1], 0.01, None)))
    again = QuadTreeFeatures.from_dict(log.to_dict())
    assert again.parallax == "log10"
    np.testing.assert_array_equal(again.transform(sim), b)
    with pytest.raises(ValueError, match="parallax must be one of"):
        QuadTreeFeatures(parallax="ln")
