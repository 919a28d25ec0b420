"""ocnb.membership.features: source/cluster features (spec A7), the scaler and its quirk, training sets (A8),
prepare_cluster and its bad-input table."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ocnb.errors import IsochroneRangeError, UnknownClusterError
from ocnb.membership.cones import ClusterNotInConeError, ClusterParams, ConeError, TooFewMembersError
from ocnb.membership.features import (
    FeatureScaler,
    PreparedCluster,
    _draw_negatives,
    build_training_set,
    cluster_features,
    membership_features,
    prepare_cluster,
    source_features,
)


def params(**kw):
    base = dict(name="X", ra=10.0, dec=20.0, pmra=1.0, pmdec=-2.0, parallax=2.0, sigma_pmra_m=0.3,
                sigma_pmdec_m=0.4, sigma_parallax_m=0.1, sigma_pmra_c=0.01, sigma_pmdec_c=0.02,
                sigma_parallax_c=0.005, dist_pc=1000.0, log_age=9.0, a0=0.3)
    base.update(kw)
    return ClusterParams(**base)


ISO = np.array([[0.5, 10.0], [0.6, 12.0], [0.8, 14.0], [1.0, 16.0]])


def feats(ra=10.0, dec=20.0, pmra=1.0, pmdec=-2.0, plx=2.0, g=12.0, c=0.6, p=None, dc=0.1, dg=0.8):
    return source_features(ra, dec, pmra, pmdec, plx, g, c, p or params(), ISO, dc, dg)


# ---------------------------------------------------------------------------------------------------------------
# Source features
# ---------------------------------------------------------------------------------------------------------------
def test_features_hand_values():
    f = feats(ra=10.0, dec=21.0, pmra=1.3, pmdec=-2.4, plx=1.9, g=12.5, c=0.7)
    assert f.shape == (5,)
    assert f[0] == pytest.approx(1000 * math.sin(math.radians(1.0)))  # D sin θ
    assert f[1] == pytest.approx(0.5)  # |(0.3, −0.4)|
    assert f[2] == pytest.approx(-0.1)  # signed ϖ − ϖ_c
    # nearest in (C/0.1, G/0.8): point (0.6, 12) at (1, 0.625) vs (0.8, 14) at (1, 1.875): the first
    assert f[3] == pytest.approx(0.1) and f[4] == pytest.approx(0.5)


def test_feature_signs_follow_the_paper():
    """f_c = C − C_iso, f_g = G − G_iso: a redder star has f_c > 0, a fainter one f_g > 0 (the authors' code
    stores the opposite sign, spec A7)."""
    assert feats(c=0.65, g=12.0)[3] > 0
    assert feats(c=0.55, g=12.0)[3] < 0
    assert feats(c=0.6, g=12.3)[4] > 0
    assert feats(c=0.6, g=11.7)[4] < 0
    assert feats(plx=2.5)[2] > 0 and feats(plx=1.5)[2] < 0
    assert feats(pmra=0.0)[1] > 0 and feats(pmra=2.0)[1] > 0


def test_eq12_sign_corrected():
    """f_r equals D·sin θ with cos θ = sin δ sin δ_c + cos δ cos δ_c cos(Δα); the printed '−' is wrong."""
    rng = np.random.default_rng(0)
    p = params(ra=200.0, dec=-35.0, dist_pc=800.0)
    ra = 200 + rng.uniform(-3, 3, 100)
    dec = -35 + rng.uniform(-3, 3, 100)
    f = source_features(ra, dec, 0, 0, 0, 12, 0.6, p, ISO, 0.1, 0.8)[:, 0]
    d, d0, a = np.radians(dec), np.radians(-35.0), np.radians(ra - 200)
    theta = np.arccos(np.sin(d) * np.sin(d0) + np.cos(d) * np.cos(d0) * np.cos(a))
    np.testing.assert_allclose(f, 800 * np.sin(theta), rtol=1e-7, atol=1e-9)
    printed = np.arccos(np.clip(np.sin(d) * np.sin(d0) - np.cos(d) * np.cos(d0) * np.cos(a), -1, 1))
    assert np.all(np.abs(800 * np.sin(printed) - f) > 1.0)


def test_kdtree_nearest_equals_brute_force():
    rng = np.random.default_rng(2)
    t = np.linspace(0, 1, 500)
    iso = np.c_[0.3 + 0.9 * t + 0.05 * np.sin(30 * t), 6 + 12 * t]
    c = rng.uniform(0, 1.5, 3000)
    g = rng.uniform(5, 19, 3000)
    f = source_features(10, 20, 1, -2, 2, g, c, params(), iso, 0.17, 1.36)
    d2 = ((c[:, None] - iso[None, :, 0]) / 0.17) ** 2 + ((g[:, None] - iso[None, :, 1]) / 1.36) ** 2
    i = np.argmin(d2, axis=1)
    np.testing.assert_allclose(f[:, 3], c - iso[i, 0], atol=1e-12)
    np.testing.assert_allclose(f[:, 4], g - iso[i, 1], atol=1e-12)


def test_lookup_grid_is_exact(monkeypatch):
    """The look-up grid used for large batches (10⁷ draws) gives the brute-force nearest point, also for
    queries outside the grid and in refined cells."""
    import ocnb.membership.features as F

    monkeypatch.setattr(F, "_GRID_MIN_QUERIES", 0)
    monkeypatch.setattr(F, "_GRID_MIN_QUERIES_BUILT", 0)
    monkeypatch.setattr(F, "_NN_CACHE", {})
    rng = np.random.default_rng(8)
    t = np.sort(rng.uniform(0, 1, 400))
    iso = np.c_[0.3 + 0.9 * t + 0.05 * np.sin(30 * t), 6 + 12 * t]
    c = np.r_[np.interp(rng.uniform(0, 1, 6000), t, iso[:, 0]) + rng.normal(0, 0.03, 6000), rng.uniform(-3, 5, 2000)]
    g = np.r_[np.interp(rng.uniform(0, 1, 6000), t, iso[:, 1]) + rng.normal(0, 0.2, 6000), rng.uniform(0, 30, 2000)]
    f = source_features(10, 20, 1, -2, 2, g, c, params(), iso, 0.15, 1.2)
    nearest = next(iter(F._NN_CACHE.values()))
    # all three paths are exercised: resolved (sub)cells, candidate lists, the KD-tree outside the grid
    assert nearest.table is not None and (nearest.table >= 0).any() and (nearest.sub >= 0).any()
    assert nearest.cands.shape[0] > 0 and (nearest.fine <= -2).any()
    d2 = ((c[:, None] - iso[None, :, 0]) / 0.15) ** 2 + ((g[:, None] - iso[None, :, 1]) / 1.2) ** 2
    i = np.argmin(d2, axis=1)
    np.testing.assert_allclose(f[:, 3], c - iso[i, 0], atol=1e-12)
    np.testing.assert_allclose(f[:, 4], g - iso[i, 1], atol=1e-12)


def test_vectorised_over_leading_shape():
    rng = np.random.default_rng(4)
    n, k = 50, 7
    ra = 10 + rng.normal(0, 0.5, (n, 1))  # positions not resampled: broadcast over draws
    dec = 20 + rng.normal(0, 0.5, (n, 1))
    pm1, pm2, plx = rng.normal(1, 0.5, (n, k)), rng.normal(-2, 0.5, (n, k)), rng.normal(2, 0.2, (n, k))
    g, c = rng.uniform(9, 17, (n, k)), rng.uniform(0.3, 1.1, (n, k))
    f = source_features(ra, dec, pm1, pm2, plx, g, c, params(), ISO, 0.12, 0.96)
    assert f.shape == (n, k, 5)
    flat = source_features(np.repeat(ra, k), np.repeat(dec, k), pm1.ravel(), pm2.ravel(), plx.ravel(), g.ravel(),
                           c.ravel(), params(), ISO, 0.12, 0.96)
    np.testing.assert_array_equal(f.reshape(-1, 5), flat)
    # broadcast views of the positions (as the probability sampler passes them) give the same result
    fb = source_features(np.broadcast_to(ra, (n, k)), np.broadcast_to(dec, (n, k)), pm1, pm2, plx, g, c, params(),
                         ISO, 0.12, 0.96)
    np.testing.assert_array_equal(fb, f)
    f32 = source_features(ra, dec, pm1, pm2, plx, g, c, params(), ISO, 0.12, 0.96, dtype=np.float32)
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32, f, rtol=1e-6, atol=1e-5)


def test_nan_photometry_gives_nan_isochrone_features():
    f = source_features([10, 10], [20, 20], 1, -2, 2, [12.0, np.nan], [0.6, 0.6], params(), ISO, 0.1, 0.8)
    assert np.all(np.isfinite(f[0])) and np.isnan(f[1, 3]) and np.isnan(f[1, 4]) and np.isfinite(f[1, 0])


def test_cluster_features():
    np.testing.assert_array_equal(cluster_features(params(a0=0.3, log_age=9.0, parallax=2.0)), [0.3, 9.0, 2.0])


def test_blanco1_member_features(blanco1):
    f = blanco1.features[blanco1.selection.is_train_member]
    # training members sit at the cluster: small radii, pm and parallax offsets, near the isochrone
    assert np.median(f[:, 0]) < 5 and np.median(f[:, 1]) < 1.0 and abs(np.median(f[:, 2])) < 0.1
    assert np.median(np.abs(f[:, 3])) < 0.05 and np.median(np.abs(f[:, 4])) < 0.5
    nm = blanco1.features[~blanco1.selection.is_candidate]
    assert np.median(nm[:, 1]) > 5 * np.median(f[:, 1])


# ---------------------------------------------------------------------------------------------------------------
# Scaler (spec A7)
# ---------------------------------------------------------------------------------------------------------------
def fake_cluster(name, features, cf, n_members=30, n_nonmembers=None):
    features = np.asarray(features, float)
    n = len(features)
    n_nonmembers = n - n_members if n_nonmembers is None else n_nonmembers
    train = np.zeros(n, bool)
    train[:n_members] = True
    cand = train.copy()
    sel = SimpleNamespace(is_train_member=train, is_candidate=cand)
    return SimpleNamespace(name=name, features=features, cluster_features=np.asarray(cf, float), selection=sel,
                           truth=None)


def test_scaler_pooled_std_quirk():
    """Global std = sqrt(mean of per-cluster variances): the between-cluster spread is ignored (authors' code)."""
    rng = np.random.default_rng(5)
    a = rng.normal(0, 1, (4000, 5))
    b = rng.normal(0, 1, (4000, 5))
    a = (a - a.mean(0)) / a.std(0)  # exactly mean 0, std 1
    b = 10 + (b - b.mean(0)) / b.std(0) * 2  # mean 10, std 2
    s = FeatureScaler.from_clusters([fake_cluster("A", a, [0.1, 8.0, 1.0]), fake_cluster("B", b, [0.5, 9.0, 3.0])])
    np.testing.assert_allclose(s.source_mean, 5.0)
    np.testing.assert_allclose(s.source_std, math.sqrt((1 + 4) / 2))  # not the pooled sqrt(2.5 + 25)
    assert not np.allclose(s.source_std, np.concatenate([a, b]).std(0))
    np.testing.assert_allclose(s.cluster_mean, [0.3, 8.5, 2.0])
    np.testing.assert_allclose(s.cluster_std, [0.2, 0.5, 1.0])  # population std across clusters
    z = s.transform_source(np.full((2, 3, 5), 5.0))
    assert z.shape == (2, 3, 5) and np.allclose(z, 0)
    np.testing.assert_allclose(s.transform_cluster([0.5, 9.0, 3.0]), [1, 1, 1])
    s2 = FeatureScaler.from_dict(json.loads(json.dumps(s.to_dict())))
    for k in ("source_mean", "source_std", "cluster_mean", "cluster_std"):
        np.testing.assert_array_equal(getattr(s2, k), getattr(s, k))


def test_scaler_from_authors_constants():
    s = FeatureScaler.from_authors("DS10_v02")
    np.testing.assert_allclose(s.source_mean, [32.4928, 1.08035, -0.184614, -0.0352830, 0.312854])  # f_c, f_g negated
    np.testing.assert_allclose(s.cluster_std, [0.880412, 0.721294, 0.934754])
    with pytest.raises(ValueError, match="unknown model version 'DS10_v03'"):
        FeatureScaler.from_authors("DS10_v03")


def test_scaler_single_cluster_and_bad_values(blanco1):
    s = FeatureScaler.from_clusters([blanco1])
    np.testing.assert_array_equal(s.cluster_std, [1, 1, 1])  # no spread across one cluster: z = 0
    assert s.notes["cluster_std_replaced_by_1"] == ["a0", "log_age", "parallax"]
    with pytest.raises(ValueError, match="source_std must be positive"):
        FeatureScaler([0] * 5, [1, 1, 0, 1, 1], [0] * 3, [1] * 3)
    with pytest.raises(ValueError, match="cluster_mean must be 3 finite numbers"):
        FeatureScaler([0] * 5, [1] * 5, [0] * 4, [1] * 3)
    with pytest.raises(ValueError, match="at least one"):
        FeatureScaler.from_clusters([])


# ---------------------------------------------------------------------------------------------------------------
# Training sets (spec A8)
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_clusters(blanco1, m67):
    return [blanco1, m67]  # M67's pm-box cone has only 37 non-members: the padding rule is exercised


def test_training_set_shapes_counts_determinism(two_clusters):
    scaler = FeatureScaler.from_clusters(two_clusters)
    X, y, ci = build_training_set(two_clusters, scaler)
    n_m = [int(p.selection.is_train_member.sum()) for p in two_clusters]
    assert X.shape == (12 * sum(n_m), 10, 13) and X.dtype == np.float32
    for k, n in enumerate(n_m):
        assert (y[ci == k] == 1).sum() == 2 * n  # each member twice
        assert (y[ci == k] == 0).sum() == 10 * n  # 5 × 2 N_m negatives
    # the cluster features are the same on every row of a cluster, normalised
    zc = scaler.transform_cluster(two_clusters[0].cluster_features)
    np.testing.assert_allclose(X[ci == 0][:, :, 5:8], np.broadcast_to(zc, X[ci == 0][:, :, 5:8].shape), rtol=1e-6)
    # the source's features repeat on every row
    assert np.all(X[:, :, :5] == X[:, :1, :5])
    neg_m67 = X[(ci == 1) & (y == 0)][:, 0, :5]
    assert np.unique(neg_m67, axis=0).shape[0] == (~two_clusters[1].selection.is_candidate).sum()
    X2, y2, _ = build_training_set(two_clusters, scaler)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _, _ = build_training_set(two_clusters, scaler, seed=7)
    assert not np.array_equal(X, X3)


def test_training_set_support_and_negatives(blanco1):
    scaler = FeatureScaler.from_clusters([blanco1])
    X, y, _ = build_training_set([blanco1], scaler)
    z = scaler.transform_source(blanco1.features).astype(np.float32)
    sel = blanco1.selection
    rows = {tuple(r) for r in z[sel.is_train_member]}
    non = {tuple(r) for r in z[~sel.is_candidate]}
    pos, neg = X[y == 1], X[y == 0]
    # support members are training members, distinct within an instance, never the positive itself
    sup = X[:, :, 8:].reshape(-1, 5)
    assert all(tuple(r) in rows for r in sup[:: 97])
    assert all(len({tuple(r) for r in inst[:, 8:]}) == 10 for inst in X[:: 53])
    assert not np.any(np.all(pos[:, :, 8:] == pos[:, :, :5], axis=2))
    # positives are training members, negatives are non-members (not candidates)
    assert all(tuple(r) in rows for r in pos[:, 0, :5])
    assert all(tuple(r) in non for r in neg[:, 0, :5])
    # each member appears exactly twice among the positives, with different support sets
    _, counts = np.unique(pos[:, 0, :5], axis=0, return_counts=True)
    assert np.all(counts == 2)


def test_training_set_field_negatives(blanco1):
    truth = np.zeros(len(blanco1.cone), bool)
    truth[blanco1.selection.is_train_member] = True
    p = PreparedCluster(blanco1.name, blanco1.cone, blanco1.params, blanco1.selection, blanco1.features,
                        blanco1.cluster_features, truth=truth)
    scaler = FeatureScaler.from_clusters([p])
    X, y, _ = build_training_set([p], scaler, negatives="field")
    z = scaler.transform_source(p.features).astype(np.float32)
    field_cand = {tuple(r) for r in z[~truth & blanco1.selection.is_candidate]}
    neg = X[y == 0][:, 0, :5]
    assert any(tuple(r) in field_cand for r in neg)  # candidates that are not true members are negatives too
    with pytest.raises(ValueError, match=r"cluster 'Blanco 1': negatives='field' needs the true membership"):
        build_training_set([blanco1], scaler, negatives="field")
    with pytest.raises(ValueError, match="negatives must be"):
        build_training_set([blanco1], scaler, negatives="all")


def test_negative_padding_rule():
    rng = np.random.default_rng(0)
    pool = np.arange(7)
    out = _draw_negatives(pool, 20, rng)
    counts = np.bincount(out, minlength=7)
    assert out.size == 20 and counts.min() == 2 and counts.max() == 3 and (counts == 3).sum() == 6
    small = _draw_negatives(np.arange(100), 10, rng)
    assert np.unique(small).size == 10  # without replacement


def test_membership_features_frame(blanco1):
    df = membership_features(blanco1)
    assert list(df.columns) == ["source_id", "f_r", "f_pm", "f_plx", "f_c", "f_g", "is_candidate", "is_train_member"]
    assert len(df) == len(blanco1.cone) and df.attrs["units"]["f_r"] == "pc"
    with pytest.raises(TypeError, match="needs the members and the cluster name"):
        membership_features(blanco1.cone)


# ---------------------------------------------------------------------------------------------------------------
# prepare_cluster on real data and its bad-input table
# ---------------------------------------------------------------------------------------------------------------
def test_prepare_cluster_member_table_and_truth(blanco1_cone):
    """Matching by source_id: the Almeida EDR3 list matched to the DR2 cone (ids shared where unchanged)."""
    from ocnb.datasets import load_members

    almeida_members = load_members("Blanco 1", source="almeida")
    truth = (blanco1_cone["ocelot_label"] == 0).to_numpy()
    pc = prepare_cluster(blanco1_cone, almeida_members, name="Blanco 1", truth=truth)
    assert pc.selection.is_seed_member.sum() == blanco1_cone["source_id"].isin(almeida_members["source_id"]).sum()
    assert any("listed members not in the cone" in f for f in pc.flags)
    np.testing.assert_array_equal(pc.truth, truth)
    assert pc.features.shape == (len(pc.cone), 5)


def test_almeida_cluster(almeida):
    assert "no correlations: diagonal covariance" not in almeida.flags
    assert almeida.params.name == "NGC 2360"
    assert almeida.params.parallax == pytest.approx(1000 / almeida.params.dist_pc, rel=0.2)


def _blanco(**kw):
    from ocnb.datasets import load_field

    cone = load_field("blanco1")
    seed = (cone["ocelot_label"] == 0).to_numpy()
    return cone, seed


def case_few_members():
    cone, seed = _blanco()
    few = np.zeros(len(cone), bool)
    few[np.flatnonzero(seed)[:7]] = True
    return (cone, few), {"name": "Blanco 1"}


def case_no_members():
    from ocnb.datasets import load_members

    cone, _ = _blanco()
    return (cone, load_members("NGC 2360", source="almeida")), {"name": "Blanco 1"}


def case_wrong_cluster():
    cone, seed = _blanco()
    return (cone, seed), {"name": "M67"}


def case_all_nan():
    cone, seed = _blanco()
    cone = cone.copy()
    cone["pmra"] = np.nan
    return (cone, seed), {"name": "Blanco 1"}


def case_members_nan():
    cone, seed = _blanco()
    cone = cone.copy()
    cone.loc[seed, "parallax"] = np.nan
    return (cone, seed), {"name": "Blanco 1"}


def case_missing_column():
    cone, seed = _blanco()
    return (cone.drop(columns=["phot_rp_mean_mag"]), seed), {"name": "Blanco 1"}


def case_parallax_scale():
    cone, seed = _blanco()
    cone = cone.copy()
    cone["parallax"] = cone["parallax"] / 1000.0  # values in arcsec, errors left in mas
    return (cone, seed), {"name": "Blanco 1"}


def case_old_age():
    cone, seed = _blanco()
    return (cone, seed), {"name": "Blanco 1", "log_age": 10.6}


def case_unknown_name():
    cone, seed = _blanco()
    return (cone, seed), {"name": "Not A Cluster 7"}


def case_bad_truth():
    cone, seed = _blanco()
    return (cone, seed), {"name": "Blanco 1", "truth": np.zeros(5, bool)}


BAD = [
    pytest.param(case_few_members, TooFewMembersError, r"cluster 'Blanco 1': only 7 members matched.*at least 10",
                 id="fewer-than-10-members"),
    pytest.param(case_no_members, ClusterNotInConeError, r"cluster 'Blanco 1': none of the members is in the cone",
                 id="members-of-another-cluster"),
    pytest.param(case_wrong_cluster, ClusterNotInConeError, r"cluster 'M67': its CG2020 centre.*outside the cone",
                 id="cone-without-the-cluster"),
    pytest.param(case_all_nan, ConeError, r"none of its 14785 rows.*'pmra': 14785", id="nan-astrometry-all"),
    pytest.param(case_members_nan, TooFewMembersError, r"only 0 members matched.*262 matched by source_id",
                 id="nan-astrometry-members"),
    pytest.param(case_missing_column, ConeError, r"\['phot_rp_mean_mag'\]", id="missing-column"),
    pytest.param(case_parallax_scale, ConeError,
                 r"'Blanco 1': members' mean parallax 0\.03.*ratio 0\.00796.*wrong unit", id="parallax-arcsec"),
    pytest.param(case_old_age, IsochroneRangeError, r"cluster 'Blanco 1' \(log_age = 10\.6", id="no-isochrone"),
    pytest.param(case_unknown_name, UnknownClusterError, r"Not A Cluster 7", id="unknown-name-no-parameters"),
    pytest.param(case_bad_truth, ConeError, r"truth must be a boolean array with one value per input cone row",
                 id="truth-shape"),
]


@pytest.mark.parametrize(("case", "exc", "match"), BAD)
def test_prepare_cluster_bad_input(case, exc, match):
    args, kw = case()
    with pytest.raises(exc, match=match):
        prepare_cluster(*args, **kw)


def test_prepare_cluster_nan_rows_flagged(blanco1_cone, blanco1_seed):
    cone = blanco1_cone.copy()
    idx = np.flatnonzero(~blanco1_seed)[:25]
    cone.loc[idx, "pmdec"] = np.nan
    mem = np.flatnonzero(blanco1_seed)[:3]
    cone.loc[mem, "parallax_error"] = np.nan
    pc = prepare_cluster(cone, blanco1_seed, name="Blanco 1")
    assert len(pc.cone) == len(cone) - 28
    assert pc.cone.attrs["n_dropped"] == 28
    assert "3 of 262 matched members dropped for NaN astrometry/photometry" in pc.flags
    assert "no correlations: diagonal covariance" in pc.flags


def test_explicit_parameters_for_unknown_cluster():
    cone, seed = _blanco()
    pc = prepare_cluster(cone, seed, name="my cluster", dist_pc=240.0, log_age=8.02, a0=0.01)
    assert any("not in CG2020" in f for f in pc.flags)
    assert isinstance(pc.cone, pd.DataFrame) and pc.params.name == "my cluster"
