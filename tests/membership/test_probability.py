"""ocnb.membership.probability: error draws, support sets, batched scoring, the hand-off member table.

The cones here are SIMULATED test fixtures (a Gaussian cluster in a uniform field). The network is a
stand-in with a known decision rule on the source features (member iff f_pm < A and |f_plx| < B), so the
expected probability of every star follows from its error distribution (a Rice and a normal CDF), and
what the real DeepSetsMembership would answer plays no role. Features come from ocnb.membership.features
when it is usable, otherwise from a spec-A7 reference written here.
"""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree
from scipy.stats import norm, rice

from ocnb.membership import probability as prob
from ocnb.membership.probability import (
    FLAG_NO_CORRELATIONS,
    MembershipInputError,
    MembershipResult,
    members_from_probabilities,
    membership_probability,
)

FEATURES_PY = Path(prob.__file__).with_name("features.py")
REAL_FEATURES = FEATURES_PY.exists() and "# STATUS: usable" in FEATURES_PY.read_text()[:2000]


# ---------------------------------------------------------------------------------------------
# Fixtures: a reference feature function, a scaler, a stand-in network, a simulated prepared cone
# ---------------------------------------------------------------------------------------------
def ref_source_features(ra, dec, pmra, pmdec, parallax, g, g_rp, params, isochrone, delta_c, delta_g):
    """Spec A7 (paper sign of f_c, f_g), vectorised over any leading shape."""
    ra, dec = np.deg2rad(ra), np.deg2rad(dec)
    ra0, dec0 = np.deg2rad(params.ra), np.deg2rad(params.dec)
    x = np.cos(dec) * np.sin(ra - ra0)
    y = np.cos(dec0) * np.sin(dec) - np.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)
    f_r = params.dist_pc * np.hypot(x, y)
    f_pm = np.hypot(pmra - params.pmra, pmdec - params.pmdec)
    f_plx = parallax - params.parallax
    iso = np.asarray(isochrone)
    tree = cKDTree(iso / [delta_c, delta_g])
    pts = np.stack([np.asarray(g_rp) / delta_c, np.asarray(g) / delta_g], axis=-1)
    _, i = tree.query(pts.reshape(-1, 2))
    near = iso[i].reshape(pts.shape)
    return np.stack(np.broadcast_arrays(f_r, f_pm, f_plx, g_rp - near[..., 0], g - near[..., 1]), axis=-1)


class Scaler:
    """Stand-in FeatureScaler: z = (f - mean) / std."""

    source_mean = np.array([10.0, 1.0, 0.0, 0.0, 0.0])
    source_std = np.array([5.0, 0.5, 0.2, 0.1, 0.5])
    cluster_mean = np.array([0.5, 8.0, 1.0])
    cluster_std = np.array([0.5, 0.5, 1.0])

    def transform_source(self, f):
        return (np.asarray(f) - self.source_mean) / self.source_std

    def transform_cluster(self, c):
        return (np.asarray(c) - self.cluster_mean) / self.cluster_std


A_PM, B_PLX = 0.5, 0.1   # the stand-in network's member box [mas/yr, mas]


class BoxModel:
    """Stand-in network: member iff the source's f_pm < A_PM and |f_plx| < B_PLX (de-normalised)."""

    n_support = 10
    label = "box stand-in"

    def __init__(self, record=False):
        self.scaler_ = Scaler()
        self.calls = []
        self.record = record
        self.inputs = []

    def predict_logits(self, X):
        assert X.dtype == np.float32 and X.ndim == 3 and X.shape[1:] == (10, 13)
        self.calls.append(len(X))
        if self.record:
            self.inputs.append(X.copy())
        src = X[:, 0, :5] * self.scaler_.source_std + self.scaler_.source_mean
        member = (src[:, 1] < A_PM) & (np.abs(src[:, 2]) < B_PLX)
        return np.stack([np.zeros(len(X)), np.where(member, 1.0, -1.0)], axis=1)


def make_prepared(n_members=300, n_field=500, seed=1, correlations=True, name="Test cluster"):
    """A SIMULATED prepared cone: cluster at (10, -30) deg, pm (5, -3) mas/yr, parallax 2 mas."""
    rng = np.random.default_rng(seed)
    n = n_members + n_field
    params = types.SimpleNamespace(name=name, ra=10.0, dec=-30.0, pmra=5.0, pmdec=-3.0, parallax=2.0,
                                   dist_pc=500.0)
    mem = np.arange(n) < n_members
    ra = np.where(mem, 10 + rng.normal(0, 0.5, n), rng.uniform(7, 13, n))
    dec = np.where(mem, -30 + rng.normal(0, 0.5, n), rng.uniform(-33, -27, n))
    pmra = np.where(mem, 5 + rng.normal(0, 0.3, n), rng.uniform(0, 10, n))
    pmdec = np.where(mem, -3 + rng.normal(0, 0.3, n), rng.uniform(-8, 2, n))
    plx = np.where(mem, 2 + rng.normal(0, 0.05, n), rng.uniform(1, 3, n))
    colour = rng.uniform(0.2, 1.0, n)
    g = 10 + 8 * (colour - 0.2) + np.where(mem, rng.normal(0, 0.05, n), rng.normal(0, 1.0, n))
    cone = pd.DataFrame({
        "source_id": np.arange(n, dtype=np.int64) + 4_000_000_000_000_000_000,
        "ra": ra, "dec": dec, "parallax": plx - 0.02, "parallax_corrected": plx,
        "parallax_error": rng.uniform(0.02, 0.1, n), "pmra": pmra, "pmra_error": rng.uniform(0.05, 0.2, n),
        "pmdec": pmdec, "pmdec_error": rng.uniform(0.05, 0.2, n),
        "phot_g_mean_mag": g, "phot_bp_mean_mag": g + 1.5 * colour, "phot_rp_mean_mag": g - colour,
        "g_rp": colour, "sigma_g": np.full(n, 0.003), "sigma_g_rp": np.full(n, 0.01),
    })
    if correlations:
        cone["parallax_pmra_corr"] = rng.uniform(-0.4, 0.4, n)
        cone["parallax_pmdec_corr"] = rng.uniform(-0.4, 0.4, n)
        cone["pmra_pmdec_corr"] = rng.uniform(-0.4, 0.4, n)
    cone.attrs.update(release="DR3", citation="SIMULATED test fixture", flags=[])
    isochrone = np.stack([np.linspace(0.2, 1.0, 200), 10 + 8 * (np.linspace(0.2, 1.0, 200) - 0.2)], axis=1)
    thresholds = {"delta_c": 0.12, "delta_g": 0.96, "delta_mu": 1.5, "delta_plx_plus": 0.3, "delta_plx_minus": 0.4}
    f_pm = np.hypot(pmra - 5, pmdec + 3)
    is_candidate = (f_pm < 2.0) & (np.abs(plx - 2) < 0.5)
    is_train = mem & (np.arange(n) < n_members // 2) & is_candidate
    selection = types.SimpleNamespace(is_candidate=is_candidate, is_train_member=is_train,
                                      pass_pm=f_pm < 2.0, pass_plx=np.abs(plx - 2) < 0.5,
                                      pass_cmd=np.ones(n, bool), isochrone=isochrone, thresholds=thresholds)
    features = ref_source_features(ra, dec, pmra, pmdec, plx, g, colour, params, isochrone, 0.12, 0.96)
    return types.SimpleNamespace(name=name, cone=cone, params=params, selection=selection, features=features,
                                 cluster_features=np.array([0.1, 8.0, 2.0]), truth=mem, flags=[])


@pytest.fixture(autouse=True)
def reference_features(monkeypatch):
    """Use the spec-A7 reference until ocnb.membership.features says '# STATUS: usable'."""
    if not REAL_FEATURES:
        monkeypatch.setattr(prob, "_features_module",
                            lambda: types.SimpleNamespace(source_features=ref_source_features))


@pytest.fixture(scope="module")
def prepared():
    return make_prepared()


# ---------------------------------------------------------------------------------------------
# The draws
# ---------------------------------------------------------------------------------------------
def test_cholesky_closed_form_matches_numpy_and_jitters_singular_matrices():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 3, 3))
    cov = a @ a.transpose(0, 2, 1) + 0.1 * np.eye(3)
    L, ok = prob._cholesky3(cov)
    assert ok.all()
    np.testing.assert_allclose(L, np.linalg.cholesky(cov), rtol=1e-10, atol=1e-12)
    # correlation exactly 1 (semi-definite): fixed by the 1e-12 jitter; an impossible triple is not
    s = np.array([0.1, 0.2, 0.3])
    rho_one = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1.0]])
    rho_bad = np.array([[1, 0.9, 0.9], [0.9, 1, -0.9], [0.9, -0.9, 1.0]])
    L2, ok2 = prob._cholesky3(np.stack([rho_one, rho_bad]) * np.outer(s, s))
    assert ok2.tolist() == [True, False]
    np.testing.assert_allclose(L2[0] @ L2[0].T, rho_one * np.outer(s, s), atol=1e-9)


def test_draws_have_the_star_covariance_and_independent_photometry():
    mean = np.array([[2.0, 5.0, -3.0, 15.0, 0.6]])
    s = np.array([0.05, 0.1, 0.2])
    rho = np.array([[1, 0.5, -0.3], [0.5, 1, 0.2], [-0.3, 0.2, 1.0]])
    cov = rho * np.outer(s, s)
    L, _ = prob._cholesky3(cov[None])
    y, support = prob._sample_block(np.random.default_rng(3), mean, L, np.array([0.01]), np.array([0.02]),
                                    200_000, 30, 10)
    d = y[0]
    sd_of_mean = np.r_[s, 0.01, 0.02] / np.sqrt(200_000)
    assert (np.abs(d.mean(axis=0) - mean[0]) < 5 * sd_of_mean).all()
    emp = np.cov(d.T)
    np.testing.assert_allclose(emp[:3, :3], cov, atol=0.02 * s.max() ** 2)
    np.testing.assert_allclose(np.sqrt(np.diag(emp))[3:], [0.01, 0.02], rtol=0.01)
    corr = np.corrcoef(d.T)
    assert np.abs(corr[3:, :3]).max() < 0.01 and abs(corr[3, 4]) < 0.01  # photometry independent
    assert support.shape == (1, 200_000, 10)


def test_support_sets_are_distinct_and_uniform():
    idx = prob._support_indices(np.random.default_rng(0), (20_000,), 25, 10)
    assert idx.min() >= 0 and idx.max() < 25
    s = np.sort(idx, axis=1)
    assert (np.diff(s, axis=1) > 0).all()  # no member twice in a support set
    counts = np.bincount(idx.ravel(), minlength=25)
    expected = 20_000 * 10 / 25  # 8000 each; sd < 90
    assert np.abs(counts - expected).max() < 400
    # exactly the pool size: every set is the whole pool
    full = prob._support_indices(np.random.default_rng(1), (5,), 10, 10)
    assert (np.sort(full, axis=1) == np.arange(10)).all()


# ---------------------------------------------------------------------------------------------
# membership_probability
# ---------------------------------------------------------------------------------------------
def expected_box_probability(prepared):
    """P(f_pm < A and |f_plx| < B) under the star's errors, for stars with isotropic, uncorrelated errors."""
    cone = prepared.cone
    s_pm = cone["pmra_error"].to_numpy()
    nu = np.hypot(cone["pmra"] - 5, cone["pmdec"] + 3).to_numpy()
    p_pm = rice.cdf(A_PM / s_pm, nu / s_pm)
    d = cone["parallax_corrected"].to_numpy() - 2
    s = cone["parallax_error"].to_numpy()
    p_plx = norm.cdf((B_PLX - d) / s) - norm.cdf((-B_PLX - d) / s)
    return p_pm * p_plx


def test_probabilities_match_the_error_distribution():
    prep = make_prepared(correlations=False, seed=2)
    prep.cone["pmdec_error"] = prep.cone["pmra_error"]  # isotropic: f_pm is Rice distributed
    res = membership_probability(BoxModel(), prep, n_draws=400, seed=7)
    cand = prep.selection.is_candidate
    want = expected_box_probability(prep)[cand]
    got = res.probability[cand]
    assert np.all(res.probability[~cand] == 0)
    assert np.all(np.isclose(got * 400, np.round(got * 400)))  # multiples of 1/n_draws
    # binomial sd <= 0.025 with 400 draws: 5 sd per star, and the mean residual ~0
    assert np.abs(got - want).max() < 0.125
    assert abs(np.mean(got - want)) < 0.01
    assert 0.05 < np.mean((got > 0) & (got < 1)) < 0.95  # the test exercises partial probabilities
    assert FLAG_NO_CORRELATIONS in res.flags


def test_correlations_are_used_when_present():
    prep = make_prepared(seed=4)
    res = membership_probability(BoxModel(), prep, n_draws=50)
    assert FLAG_NO_CORRELATIONS not in res.flags and res.flags == []
    cov = prob._covariances(prep.cone, np.array([0, 1]), [])
    c = prep.cone.iloc[0]
    assert cov[0, 0, 1] == pytest.approx(c["parallax_pmra_corr"] * c["parallax_error"] * c["pmra_error"])
    assert cov[0, 1, 2] == pytest.approx(c["pmra_pmdec_corr"] * c["pmra_error"] * c["pmdec_error"])
    # one column missing: the others are kept and the gap is flagged
    flags = []
    cov2 = prob._covariances(prep.cone.drop(columns="pmra_pmdec_corr"), np.array([0]), flags)
    assert cov2[0, 1, 2] == 0 and cov2[0, 0, 1] == cov[0, 0, 1]
    assert flags == ["missing correlation column(s) ['pmra_pmdec_corr']: set to 0"]


def test_network_inputs_support_sets_and_fixed_positions(prepared):
    model = BoxModel(record=True)
    membership_probability(model, prepared, n_draws=8, seed=3)
    X = np.concatenate(model.inputs)
    n_cand = int(prepared.selection.is_candidate.sum())
    assert X.shape == (n_cand * 8, 10, 13)
    sc = Scaler()
    # cluster columns: the normalised cluster features in every row
    np.testing.assert_allclose(X[:, :, 5:8], np.broadcast_to(sc.transform_cluster([0.1, 8.0, 2.0]), (len(X), 10, 3)),
                               rtol=1e-6)
    # source columns identical over the 10 rows; f_r (column 0) fixed over the draws of a star
    assert (X[:, :, :5] == X[:, :1, :5]).all()
    fr = X[:, 0, 0].reshape(n_cand, 8)
    assert (fr == fr[:, :1]).all()
    want_fr = sc.transform_source(prepared.features[prepared.selection.is_candidate])[:, 0]
    np.testing.assert_allclose(fr[:, 0], want_fr, rtol=1e-5, atol=1e-6)
    # the other features vary from draw to draw
    assert (X[:, 0, 1].reshape(n_cand, 8).std(axis=1) > 0).all()
    # support rows are normalised training members, 10 distinct ones per instance, fresh for each draw
    train = sc.transform_source(prepared.features[prepared.selection.is_train_member]).astype(np.float32)
    sup = X[:, :, 8:13].reshape(-1, 5)
    tree = cKDTree(train)
    dist, which = tree.query(sup)
    assert dist.max() < 1e-5
    which = which.reshape(len(X), 10)
    assert (np.diff(np.sort(which, axis=1), axis=1) > 0).all()
    assert len({tuple(sorted(w)) for w in which[:8]}) == 8


def test_deterministic_batched_and_independent_of_batch_size(prepared):
    n_cand = int(prepared.selection.is_candidate.sum())
    assert n_cand > 300  # more than one random block of 256 stars
    big = BoxModel()
    a = membership_probability(big, prepared, n_draws=20, seed=11)
    small = BoxModel()
    b = membership_probability(small, prepared, n_draws=20, seed=11, batch_size=1000)
    np.testing.assert_array_equal(a.probability, b.probability)
    c = membership_probability(BoxModel(), prepared, n_draws=20, seed=12)
    assert not np.array_equal(a.probability, c.probability)
    # no loop over stars or draws: one network call per chunk of 256 stars x 20 draws (or one in all)
    assert big.calls == [n_cand * 20]
    assert len(small.calls) == -(-n_cand // 256) and sum(small.calls) == n_cand * 20
    assert set(a.timings) == {"sampling", "features", "network", "total"}


class NarrowBoxModel(BoxModel):
    """Stand-in that is under-confident about the members: its box is half as wide in proper motion."""

    def predict_logits(self, X):
        src = X[:, 0, :5] * self.scaler_.source_std + self.scaler_.source_mean
        member = (src[:, 1] < A_PM / 2) & (np.abs(src[:, 2]) < B_PLX)
        return np.stack([np.zeros(len(X)), np.where(member, 1.0, -1.0)], axis=1)


def test_a_calibrated_model_maps_the_vote_fractions():
    from ocnb.membership.calibration import fit_calibration

    model = NarrowBoxModel()
    held_out = [make_prepared(n_members=200, n_field=300, seed=s, name=f"held out {s}") for s in (21, 22, 23)]
    cal = fit_calibration(model, held_out, n_draws=40, seed=3)
    assert cal.clusters == ["held out 21", "held out 22", "held out 23"] and cal.n_draws == 40
    wide = cal.held_out.pivot_table(index="cluster", columns="kind", values="recall")
    assert (wide["calibrated"] > wide["raw"]).all()   # members the narrow box half-rejects are lifted over 0.5
    model.calibration_ = cal
    prep = make_prepared(n_members=200, n_field=300, seed=24)
    res = membership_probability(model, prep, n_draws=40, seed=5)
    raw = membership_probability(model, prep, n_draws=40, seed=5, calibrated=False)
    cand = prep.selection.is_candidate
    np.testing.assert_array_equal(res.probability_raw, raw.probability)
    np.testing.assert_allclose(res.probability[cand], cal(raw.probability[cand]))
    assert (res.probability[~cand] == 0).all() and (raw.probability_raw == raw.probability).all()
    assert any(f.startswith("calibrated: isotonic map") for f in res.flags)
    assert not any(f.startswith("calibrated") for f in raw.flags)
    frame = res.to_frame()
    np.testing.assert_array_equal(frame["p_votes"], res.probability_raw)


def test_no_candidates_gives_zeros_and_a_flag():
    prep = make_prepared(n_members=20, n_field=30)
    prep.selection.is_candidate = np.zeros(50, bool)
    res = membership_probability(BoxModel(), prep)
    assert (res.probability == 0).all() and "no candidates: every star has p = 0" in res.flags


def test_result_frame_plot_and_panel(prepared, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = membership_probability(BoxModel(), prepared, n_draws=10)
    df = res.to_frame()
    assert len(df) == len(prepared.cone)
    for col in ("p_member", "is_candidate", "is_train_member", "truth", "f_r", "f_g"):
        assert col in df
    assert df.attrs["n_draws"] == 10 and df.attrs["model"] == "BoxModel (box stand-in)"
    assert "candidates" in repr(res)
    fig = res.plot()
    assert len(fig.axes) == 5  # four panels + colour bar
    plt.close("all")
    # the panel module is imported lazily; without it the error names the install command
    import builtins

    real_import = builtins.__import__

    def no_panels(name, *args, **kwargs):
        if name.endswith("panels") and args and args[2] and "MembershipPanel" in args[2]:
            raise ModuleNotFoundError("No module named 'holoviews'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_panels)
    with pytest.raises(ImportError, match=r"notebook extras: pip install"):
        res.panel()


def test_panel_of_a_result(prepared):
    pytest.importorskip("holoviews")
    res = membership_probability(BoxModel(), prepared, n_draws=20)
    panel = res.panel(g_max=18.0)
    state = panel.state()
    assert state["n_candidates"] == int(prepared.selection.is_candidate.sum())
    assert state["n_members"] == int(np.sum(res.probability >= 0.5))


@pytest.mark.skipif(not REAL_FEATURES, reason="ocnb.membership.features is not usable yet")
def test_real_source_features_agree_with_the_reference(prepared):
    from ocnb.membership.features import source_features

    c = prepared.cone
    args = (c["ra"].to_numpy(), c["dec"].to_numpy(), c["pmra"].to_numpy(), c["pmdec"].to_numpy(),
            c["parallax_corrected"].to_numpy(), c["phot_g_mean_mag"].to_numpy(), c["g_rp"].to_numpy())
    extra = (prepared.params, prepared.selection.isochrone, 0.12, 0.96)
    got = source_features(*(a.reshape(40, 20) for a in args), *extra)
    assert got.shape == (40, 20, 5)
    np.testing.assert_allclose(got.reshape(-1, 5), ref_source_features(*args, *extra), rtol=1e-6, atol=1e-6)


def test_with_the_real_keras_model(prepared):
    """The real DeepSetsMembership (random weights) takes the batched inputs as they are."""
    pytest.importorskip("keras")
    from ocnb.membership.features import FeatureScaler
    from ocnb.membership.model import DeepSetsMembership

    model = DeepSetsMembership()
    model.model_ = model.build_model()
    sc = Scaler()
    model.scaler_ = FeatureScaler(source_mean=sc.source_mean, source_std=sc.source_std,
                                  cluster_mean=sc.cluster_mean, cluster_std=sc.cluster_std)
    res = membership_probability(model, prepared, n_draws=5, seed=1)
    again = membership_probability(model, prepared, n_draws=5, seed=1, batch_size=700)
    np.testing.assert_array_equal(res.probability, again.probability)
    p = res.probability[prepared.selection.is_candidate]
    assert ((p >= 0) & (p <= 1)).all() and np.allclose(p * 5, np.round(p * 5))
    assert res.model_name.startswith("DeepSetsMembership")


# ---------------------------------------------------------------------------------------------
# members_from_probabilities
# ---------------------------------------------------------------------------------------------
def test_member_table_is_canonical_and_validates(prepared):
    from ocnb.datasets import MEMBER_COLUMNS
    from ocnb.validation import validate_members

    res = membership_probability(BoxModel(), prepared, n_draws=50)
    table = members_from_probabilities(res, p_min=0.5)
    assert list(table.columns[:len(MEMBER_COLUMNS)]) == list(MEMBER_COLUMNS)
    assert len(table) == int(np.sum(res.probability >= 0.5)) > 50
    assert (table["membership_probability"] >= 0.5).all()
    assert table["source_id"].dtype == np.int64 and table["cluster"].eq("Test cluster").all()
    assert table["phot_g_mean_mag_error"].eq(0.003).all()  # from sigma_g: the cone had no mag errors
    assert table["j_m"].isna().all() and table["ph_qual"].isna().all()
    assert table.attrs["release"] == "DR3" and table.attrs["source"] == "ocnb.membership"
    assert "p >= 0.5" in table.attrs["notes"] and "BoxModel (box stand-in)" in table.attrs["notes"]
    assert "van Groeningen" in table.attrs["citation"]
    checked = validate_members(table)
    assert len(checked) == len(table)
    # a lower cut keeps more stars
    assert len(members_from_probabilities(res, p_min=0.1)) >= len(table)
    # the scored frame gives the same table
    from_frame = members_from_probabilities(res.to_frame(), p_min=0.5)
    pd.testing.assert_frame_equal(from_frame, table)
    assert from_frame.attrs == table.attrs


@pytest.mark.slow
def test_member_table_goes_to_the_cavallo_estimator_as_it_is():
    """Issue 15 item 7: ocnb.cmd_ann.estimate accepts the table unchanged (slow: loads or trains its FAST model)."""
    from ocnb.cmd_ann import estimate, train_default

    res = membership_probability(BoxModel(), make_prepared(name="Blanco_1"), n_draws=20)
    table = members_from_probabilities(res)
    est = estimate(table, train_default(bands="gaia"))
    assert est.name == "Blanco 1" and est.flags["n_parallax"] == len(table)


def test_member_table_of_a_known_cluster_uses_the_catalogue_name():
    prep = make_prepared(name="Blanco_1")
    res = membership_probability(BoxModel(), prep, n_draws=20)
    assert members_from_probabilities(res).attrs["cluster"] == "Blanco 1"


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------
def _with(column, row, value, prep=None):
    prep = prep or make_prepared(n_members=60, n_field=40)
    cone = prep.cone.copy()
    cand = np.flatnonzero(prep.selection.is_candidate)
    cone.loc[cand[row] if row is not None else 0, column] = value
    prep.cone = cone
    return prep


def _drop(column):
    prep = make_prepared(n_members=60, n_field=40)
    prep.cone = prep.cone.drop(columns=column)
    return prep


def _non_candidate_nan():
    prep = make_prepared(n_members=60, n_field=40)
    out = np.flatnonzero(~prep.selection.is_candidate)[0]
    prep.cone.loc[out, "parallax_error"] = np.nan
    return prep


class NoScaler(BoxModel):
    scaler_ = None

    def __init__(self):
        pass


class WrongShape(BoxModel):
    def predict_logits(self, X):
        return np.zeros((len(X), 1))


def _few_train():
    prep = make_prepared(n_members=60, n_field=40)
    t = np.flatnonzero(prep.selection.is_train_member)
    prep.selection.is_train_member = prep.selection.is_train_member.copy()
    prep.selection.is_train_member[t[9:]] = False
    return prep


def _impossible_correlations():
    prep = make_prepared(n_members=60, n_field=40)
    i = np.flatnonzero(prep.selection.is_candidate)[2]
    prep.cone.loc[i, ["parallax_pmra_corr", "parallax_pmdec_corr", "pmra_pmdec_corr"]] = [0.9, 0.9, -0.9]
    return prep


SID0 = 4_000_000_000_000_000_000
BAD = [
    ("not a model", lambda: membership_probability(object(), make_prepared()), r"predict_logits\(X\) method"),
    ("unfitted model", lambda: membership_probability(NoScaler(), make_prepared()), r"not fitted \(no scaler_\)"),
    ("missing column", lambda: membership_probability(BoxModel(), _drop("sigma_g_rp")),
     r"lacks the column\(s\) \['sigma_g_rp'\]"),
    ("NaN parallax error", lambda: membership_probability(BoxModel(), _with("parallax_error", 3, np.nan)),
     r"NaN/inf or negative 'parallax_error' \(first: source_id 4000000000000000"),
    ("negative pm error", lambda: membership_probability(BoxModel(), _with("pmra_error", 0, -0.1)),
     r"negative 'pmra_error'"),
    ("NaN sigma_g", lambda: membership_probability(BoxModel(), _with("sigma_g", 1, np.nan)), r"'sigma_g'"),
    ("NaN pmra", lambda: membership_probability(BoxModel(), _with("pmra", 1, np.nan)), r"NaN/inf 'pmra'"),
    ("correlation > 1", lambda: membership_probability(BoxModel(), _with("pmra_pmdec_corr", 4, 1.5)),
     r"pmra_pmdec_corr = 1.5 of source_id \d+ lies outside \[-1, 1\]"),
    ("not positive definite", lambda: membership_probability(BoxModel(), _impossible_correlations()),
     r"covariance of 1 candidate\(s\) is not positive definite even with 1e-12"),
    ("too few training members", lambda: membership_probability(BoxModel(), _few_train()),
     r"9 training member\(s\) left .* support-set size 10"),
    ("n_draws 0", lambda: membership_probability(BoxModel(), make_prepared(), n_draws=0), r"n_draws must be an int"),
    ("n_draws float", lambda: membership_probability(BoxModel(), make_prepared(), n_draws=10.5), r"n_draws must"),
    ("negative seed", lambda: membership_probability(BoxModel(), make_prepared(), seed=-1), r"seed must be"),
    ("batch_size 0", lambda: membership_probability(BoxModel(), make_prepared(), batch_size=0), r"batch_size must"),
    ("logits shape", lambda: membership_probability(WrongShape(), make_prepared(n_members=60, n_field=40)),
     r"predict_logits returned shape \(\d+, 1\)"),
    ("calibrated without a calibration", lambda: membership_probability(BoxModel(), make_prepared(), calibrated=True),
     r"has no calibration_: fit one with model.calibrate"),
    ("calibrated not a bool", lambda: membership_probability(BoxModel(), make_prepared(), calibrated="yes"),
     r"calibrated must be True, False or None"),
    ("p_min 0", lambda: members_from_probabilities(_result(), p_min=0), r"p_min must lie in \(0, 1\]"),
    ("p_min above 1", lambda: members_from_probabilities(_result(), p_min=1.5), r"p_min must lie in \(0, 1\]"),
    ("p_min text", lambda: members_from_probabilities(_result(), p_min="high"), r"p_min must be a number"),
    ("no star passes", lambda: members_from_probabilities(_result(zero=True)), r"no star has p >= 0.5 \(largest p = 0"),
    ("not a result", lambda: members_from_probabilities(np.zeros(3)), r"must be a MembershipResult .* or a scored"),
    ("frame without p", lambda: members_from_probabilities(pd.DataFrame({"source_id": [1]})),
     r"needs the column\(s\) \['p_member'\]"),
]


def _result(zero=False):
    prep = make_prepared(n_members=60, n_field=40)
    p = np.zeros(100) if zero else np.linspace(0, 1, 100)
    return MembershipResult(p, prep, [], 10)


@pytest.mark.parametrize("name, call, match", BAD, ids=[b[0] for b in BAD])
def test_bad_input_table(name, call, match):
    with pytest.raises(MembershipInputError, match=match):
        call()


def test_nan_errors_outside_the_candidates_are_ignored():
    res = membership_probability(BoxModel(), _non_candidate_nan(), n_draws=5)
    assert np.isfinite(res.probability).all()
