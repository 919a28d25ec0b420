"""ocnb.cmd_ann.trust: OOD test against the simulated training distribution, parallax checks, quality caps.

Quick tests use synthetic feature arrays, stand-in parallax objects and the FAST model (its OOD reference is
300 + 200 simulated clusters, built once in the test data home); the ``slow`` test measures the issue-14
acceptance with the laptop models: the 26 real peer clusters and the garbage tables.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ocnb import datasets, store
from ocnb.cmd_ann import trust
from ocnb.cmd_ann.trust import OODReference, OODResult


# ---------------------------------------------------------------------------------------------------------------
# Synthetic feature sets: a 3-parameter curved manifold in 12 dimensions (like clusters in QuadTree space)
# ---------------------------------------------------------------------------------------------------------------
def _manifold(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a, b, c = rng.uniform(0, 1, (3, n))
    cols = [a, b, c, a**2, np.exp(b), a * b, np.sin(3 * c), a + c**3, np.sqrt(b + 0.1), a - b, c * b, a * c]
    X = np.column_stack(cols) + rng.normal(0, 0.01, (n, len(cols)))
    X[:, 11] = np.where(rng.uniform(size=n) < 0.2, 0.0, X[:, 11])  # a point mass (an empty 2MASS CMD)
    return X


@pytest.fixture(scope="module")
def synthetic():
    R, H = _manifold(1500, 1), _manifold(1000, 2)
    return OODReference.fit(R, H, feature_names=[f"q{j}" for j in range(12)])


def test_threshold_is_the_heldout_quantile_and_fresh_draws_pass_at_that_rate(synthetic):
    ref = synthetic
    assert ref.threshold == pytest.approx(np.quantile(ref.heldout_scores, trust.OOD_QUANTILE))
    assert ref.false_alarm_rate == pytest.approx(1 - trust.OOD_QUANTILE, abs=0.002)
    fresh = ref.scores(_manifold(4000, 3))
    # 0.5 % nominal: with 1000 held-out rows the realised rate is 0.5 ± 0.3 % (binomial), 4000 fresh draws
    assert 0.0005 < np.mean(fresh > ref.threshold) < 0.02


def test_off_manifold_points_are_ood_with_named_features(synthetic):
    X = _manifold(200, 4)
    X = X[X[:, 0] < 0.3][:5]
    X[:, 3] = 0.8  # a**2 of a ≈ 0.9 with a < 0.3: off the manifold, every value inside its marginal range
    res = [synthetic.test(x) for x in X]
    assert all(r.is_ood and r.ratio > 1 for r in res)
    assert "q3" in [n for n, _ in res[0].top_features] and "out of distribution" in res[0].reason
    inside = synthetic.test(_manifold(1, 5)[0])
    assert not inside.is_ood and inside.reason == "" and 0 < inside.p_value <= 1
    d = inside.to_dict()
    assert json.loads(json.dumps(d)) == d and set(d) >= {"score", "threshold", "quantile", "is_ood", "n_reference"}


def test_normal_scores_match_np_interp_per_feature(synthetic):
    X = np.vstack([_manifold(300, 6), _manifold(3, 7) * 3 - 1])  # inside, and beyond the range on both sides
    Z = synthetic.normal_scores(X)
    for j in range(X.shape[1]):
        m = synthetic.n_knots[j]
        xp, fp = synthetic.knots[:m, j], synthetic.knot_scores[:m, j]
        want = np.interp(X[:, j], xp, fp)
        want = np.where(X[:, j] < xp[0], fp[0] + (X[:, j] - xp[0]) / synthetic.scale[j], want)
        want = np.where(X[:, j] > xp[-1], fp[-1] + (X[:, j] - xp[-1]) / synthetic.scale[j], want)
        np.testing.assert_allclose(Z[:, j], want, rtol=1e-12, atol=1e-12)
    assert np.all(np.diff(synthetic.knots[: synthetic.n_knots[11], 11]) > 0)  # the tied zeros became one knot


def test_reference_round_trips_through_the_store(synthetic, tmp_path):
    store.save_bundle(tmp_path / "ood", synthetic.to_files(), kind=trust.STORE_KIND,
                      kind_version=trust.STORE_KIND_VERSION)
    again = OODReference.from_bundle(store.load_bundle(tmp_path / "ood", kind=trust.STORE_KIND))
    X = _manifold(50, 8)
    np.testing.assert_array_equal(again.scores(X), synthetic.scores(X))
    assert again.threshold == synthetic.threshold and again.feature_names == synthetic.feature_names
    ax = again.plot({"a table": again.test(X[0])})
    assert ax.get_xscale() == "log" and "OOD score" in ax.get_xlabel()


# ---------------------------------------------------------------------------------------------------------------
# Parallax checks with stand-in ClusterParallax objects
# ---------------------------------------------------------------------------------------------------------------
def _cp(parallax=1.0, sigma=0.02, dispersion=None, n_used=300, sigma_stat=0.005, methods=True):
    obj = SimpleNamespace(parallax=parallax, sigma=sigma, sigma_stat=sigma_stat, n_used=n_used,
                          dispersion=dict(dispersion if dispersion is not None else
                                          {"chi2_robust": 1.0, "chi2_red": 1.0, "frac_rejected": 0.01,
                                           "depth_fit_pc": 10.0, "excess_mas": 0.01}))
    if methods:
        obj.dist_mod = lambda: 5 * np.log10(100 / parallax) if parallax > 0 else float("nan")
        obj.dist_mod_sigma = lambda: 5 / np.log(10) * sigma / parallax if parallax > 0 else float("nan")
    return obj


def test_parallax_consistency_in_parallax_space():
    ok = trust.parallax_consistency(10.0, 0.2, _cp(1.0, 0.02))  # dMod 10 <-> 1 mas exactly
    assert ok["z"] == pytest.approx(0) and ok["consistent"] and not ok["tension"]
    assert ok["dist_mod_parallax"] == pytest.approx(10.0) and ok["parallax_ann"] == pytest.approx(1.0)
    # M67 with parallaxes x10: CMD says 9.7 mag, parallax 11.5 mas (dMod 4.7)
    bad = trust.parallax_consistency(9.7, 0.35, _cp(11.5, 0.04))
    assert bad["z"] > 10 and not bad["consistent"] and bad["delta_dist_mod"] == pytest.approx(9.7 - 4.697, abs=0.01)
    # a negative mean parallax (field table at "infinite" distance) still gives a finite z, no dMod z
    neg = trust.parallax_consistency(12.0, 0.3, _cp(-0.05, 0.02))
    assert np.isfinite(neg["z"]) and neg["z"] < -3 and np.isnan(neg["z_dist_mod"])
    # duck typing: parallax and sigma are enough
    bare = trust.parallax_consistency(10.0, 0.2, SimpleNamespace(parallax=1.05, sigma=0.02))
    assert bare["z"] > 0 and bare["dist_mod_parallax"] == pytest.approx(5 * np.log10(100 / 1.05))
    tension = trust.parallax_consistency(10.0, 0.1, _cp(1.0 * 10 ** (0.25 / 5), 0.01))
    assert tension["tension"] and tension["consistent"]


def test_parallax_dispersion_separates_a_cluster_from_a_field():
    assert trust.parallax_dispersion(_cp())["is_cluster"] is True
    field = trust.parallax_dispersion(_cp(0.5, dispersion={"chi2_robust": 8.7, "chi2_red": 2.1, "frac_rejected": 0.37,
                                                           "depth_fit_pc": 1026.0, "excess_mas": 0.33}))
    assert field["is_cluster"] is False and len(field["reasons"]) == 3 and field["significant"]
    # a large "depth" that is not significant (few noisy stars of a distant cluster) is not a reason
    distant = trust.parallax_dispersion(_cp(0.2, n_used=20, sigma_stat=0.05, dispersion={
        "chi2_robust": 1.1, "chi2_red": 1.2, "frac_rejected": 0.0, "depth_fit_pc": 800.0, "excess_mas": 0.03}))
    assert distant["is_cluster"] is True and not distant["significant"]
    assert trust.parallax_dispersion(SimpleNamespace(parallax=1.0, sigma=0.1))["is_cluster"] is None


def test_dispersion_on_real_tables_agrees_with_astrometry_flags():
    from ocnb.astrometry import cluster_parallax

    m67 = cluster_parallax(datasets.load_members("M67"))
    cone = cluster_parallax(datasets.load_field("field_dr3_ra45_dec0_r0p5deg"))
    assert trust.parallax_dispersion(m67)["is_cluster"] is True
    assert not any(f.startswith("dispersed") for f in m67.flags)
    assert trust.parallax_dispersion(cone)["is_cluster"] is False
    assert any(f.startswith("dispersed") for f in cone.flags)


# ---------------------------------------------------------------------------------------------------------------
# The class rules, without a network: stand-in model and prediction
# ---------------------------------------------------------------------------------------------------------------
def _stub(dist_mod=10.0, spread=0.2):
    members = np.tile([9.0, 0.0, 0.3, dist_mod], (1, 12, 1)).astype(float)
    members[0, :, 3] += np.linspace(-spread, spread, 12)
    model = SimpleNamespace(meta={"calibration": {"factors": {"dist_mod": 1.0}}, "mu_reference": []})
    return model, SimpleNamespace(members=members, labels=("log_age", "feh", "a_v", "dist_mod"))


def _ood(is_ood):
    return OODResult(5.0 if is_ood else 0.5, 1.0, 0.995, is_ood, 100, 0.001 if is_ood else 0.5, 100, [],
                     "out of distribution: test" if is_ood else "")


RULES = [
    # (mu class, ood, cluster parallax, refine_info) -> (quality, low_quality, caps)
    (0, False, _cp(1.0), None, 0, False, set()),
    (0, True, _cp(1.0), None, 3, True, {"ood"}),
    (0, False, _cp(1.0, dispersion={"chi2_robust": 9.0, "chi2_red": 3.0, "frac_rejected": 0.5, "depth_fit_pc": 900,
                                    "excess_mas": 0.5}), None, 3, True, {"not_a_cluster"}),
    (0, False, _cp(10.0), None, 2, True, {"parallax_inconsistent"}),
    (0, False, _cp(1.0 * 10 ** (0.3 / 5), 0.005), None, 1, False, {"parallax_tension"}),
    (3, False, _cp(1.0), None, 3, False, set()),  # the μ_dist class alone never sets low_quality
    (0, False, _cp(1.0), {"ok": False, "ppc_p": 0.5, "ess": 12.0, "edge": ["a_v"]}, 2, True, {"refine_failed"}),
    (1, False, _cp(1.0), {"ok": True, "ppc_p": 0.001}, 2, True, {"ppc_rejected"}),
    (0, False, _cp(1.0), {"ok": True, "ppc_p": 0.3}, 0, False, set()),
]


@pytest.mark.parametrize("mu_q, is_ood, cp, refine, quality, low, caps", RULES)
def test_quality_caps(mu_q, is_ood, cp, refine, quality, low, caps):
    model, pred = _stub()
    out = trust.assess(model, None, None, pred, {"dist_mod": 10.0}, 0.1, cluster_parallax=cp, refine_info=refine,
                       mu_quality=mu_q, ood=_ood(is_ood))
    assert (out["quality"], out["low_quality"], set(out["caps"])) == (quality, low, caps)
    assert out["quality_name"] == trust.QUALITY_NAMES[quality] and out["quality_mu_dist"] == mu_q
    assert bool(out["reasons"]) == low  # a reason for every failed check, none otherwise
    assert json.loads(json.dumps(out, default=str))["quality"] == quality


def test_ann_distance_uses_the_calibrated_interval():
    from ocnb.diagnostics import calibrated_interval

    model, pred = _stub(9.5, 0.4)
    model.meta["calibration"]["factors"] = {"log_age": 1.0, "feh": 1.0, "a_v": 1.0, "dist_mod": 1.7}
    mu, sig = trust._ann_dist_mod(model, pred)
    cal = calibrated_interval(pred.members, model.meta["calibration"]["factors"], 16, 84, labels=pred.labels)
    assert mu == pytest.approx(9.5)
    assert sig == pytest.approx((cal[84]["dist_mod"].iloc[0] - cal[16]["dist_mod"].iloc[0]) / 2)


def test_mu_dist_class_is_the_papers_quality_class():
    from ocnb.cmd_ann import quality_class

    ref = np.random.default_rng(0).lognormal(-2.5, 0.4, 300)
    mus = np.concatenate([np.linspace(0, 0.4, 81), [np.nan]])
    assert [trust.mu_dist_class(m, ref) for m in mus] == quality_class(mus, ref).tolist()


# ---------------------------------------------------------------------------------------------------------------
# Bad inputs: a clear error or an explicit flag
# ---------------------------------------------------------------------------------------------------------------
def _bad_fit(**kw):
    args = {"reference": _manifold(50, 1), "heldout": _manifold(50, 2)}
    args.update(kw)
    return lambda: OODReference.fit(args.pop("reference"), args.pop("heldout"), **args)


BAD = [
    ("empty reference", _bad_fit(reference=np.empty((0, 12))), ValueError, "at least 10 simulated"),
    ("1-D reference", _bad_fit(reference=np.ones(12)), ValueError, "2-D array"),
    ("NaN in reference", _bad_fit(reference=np.where(np.eye(50, 12) > 0, np.nan, 1.0)), ValueError, "non-finite"),
    ("feature counts differ", _bad_fit(heldout=_manifold(50, 2)[:, :5]), ValueError, "12 features, heldout 5"),
    ("quantile 1", _bad_fit(quantile=1.0), ValueError, "quantile"),
    ("variance 0", _bad_fit(variance=0.0), ValueError, "variance"),
    ("names", _bad_fit(feature_names=["a"]), ValueError, "1 feature names for 12"),
    ("wrong width", lambda: _REF().test(np.ones(11)), ValueError, "does not match the OOD reference's 12"),
    ("two rows to test", lambda: _REF().test(np.ones((2, 12))), ValueError, "one feature vector"),
    ("negative sigma_ann", lambda: trust.parallax_consistency(10, -0.1, _cp()), ValueError, "sigma_ann"),
    ("NaN dMod", lambda: trust.parallax_consistency(np.nan, 0.1, _cp()), ValueError, "dist_mod_ann"),
    ("zero parallax error", lambda: trust.parallax_consistency(10, 0.1, _cp(sigma=0.0)), ValueError, "error"),
    ("not a ClusterParallax", lambda: trust.parallax_consistency(10, 0.1, 1.2), TypeError, "'parallax'"),
    ("mu_quality 5", lambda: trust.assess(_stub()[0], None, None, _stub()[1], {}, 0.1, cluster_parallax=_cp(),
                                          mu_quality=5, ood=_ood(False)), ValueError, "mu_quality"),
    ("prediction of two clusters", lambda: trust.assess(
        _stub()[0], None, None, SimpleNamespace(members=np.zeros((2, 12, 4)), labels=("log_age", "feh", "a_v",
                                                                                        "dist_mod")),
        {}, 0.1, cluster_parallax=_cp(), mu_quality=0, ood=_ood(False)), ValueError, "ONE cluster"),
    ("short μ_dist reference", lambda: trust.mu_dist_class(0.1, [0.1] * 5), ValueError, "at least 10"),
]
_REF = lambda: OODReference.fit(_manifold(60, 1), _manifold(60, 2))  # noqa: E731


@pytest.mark.parametrize("what, call, exc, match", BAD, ids=[b[0] for b in BAD])
def test_bad_input_raises_a_clear_error(what, call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_bad_input_flags_nan_features_and_missing_parallax():
    ref = _REF()
    x = _manifold(1, 9)[0]
    x[-1] = np.nan  # e.g. no finite parallax: the 64th/190th input is NaN
    res = ref.test(x)
    assert res.is_ood and res.score == np.inf and "not finite (f11)" in res.reason
    assert ref.scores(np.vstack([x, _manifold(1, 9)[0]]))[0] == np.inf
    # no parallax at all: no parallax checks, at best silver, said in the notes (not a failed check)
    model, pred = _stub()
    table = pd.DataFrame({"phot_g_mean_mag": [12.0] * 20})
    out = trust.assess(model, table, None, pred, {}, 0.1, mu_quality=0, ood=_ood(False))
    assert (out["quality"], out["low_quality"], out["caps"]) == (1, False, {"no_parallax": 1})
    assert out["parallax"] == {"checked": False} and "no parallax check" in out["notes"][0]


# ---------------------------------------------------------------------------------------------------------------
# A model's reference: simulated with its generator, cached in the data home (FAST model)
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fast_gaia():
    from ocnb.cmd_ann import train_default

    return train_default("fast", bands="gaia")


def _noise_table(seed: int, n: int = 500) -> pd.DataFrame:
    """500 stars of uniform CMD noise (G 10–18, BP−RP −0.5–3) with the parallaxes of a 1-kpc cluster."""
    from ocnb.photometry import parallax_error

    rng = np.random.default_rng(seed)
    g, c = rng.uniform(10, 18, n), rng.uniform(-0.5, 3, n)
    bp, err = g + 0.4 * c, parallax_error(g)
    return pd.DataFrame({"cluster": "noise", "phot_g_mean_mag": g, "phot_bp_mean_mag": bp, "phot_rp_mean_mag": bp - c,
                         "parallax": 1.0 + rng.normal(0, err), "parallax_error": err})


def test_model_reference_flags_noise_not_simulated_clusters(fast_gaia):
    from ocnb.cmd_ann.simulate import simulate_clusters

    ref = trust.ood_reference(fast_gaia)
    assert trust.ood_reference(fast_gaia) is ref  # memory cache
    assert (ref.n_reference, ref.n_heldout, ref.n_features) == (*trust.OOD_SIZES["fast"], 64)
    assert ref.info["model_digest"] == trust.model_digest(fast_gaia) and ref.info["simulated_reference"]
    sims = simulate_clusters(100, seed=777, progress=False, mass_function=fast_gaia.mass_function)
    # nominal 0.5 %; the FAST threshold rests on 200 held-out clusters (measured 3 % on these 100)
    assert np.mean(ref.scores(fast_gaia.features.transform(sims)) > ref.threshold) <= 0.08
    noise = [trust.ood_test(fast_gaia, fast_gaia.features.transform(_noise_table(s))) for s in range(3)]
    assert all(r.is_ood for r in noise), [r.ratio for r in noise]


def test_reference_is_cached_checksummed_and_rebuilt_when_corrupt(fast_gaia, tmp_data_home, monkeypatch):
    monkeypatch.setattr(trust, "_MEMORY", OrderedDict())
    sizes = (40, 30)
    ref = trust.ood_reference(fast_gaia, sizes=sizes)
    folder = next((tmp_data_home / "models" / "cmd_ann").glob("ood-*-40x30"))
    assert folder.name.startswith("ood-" + trust.model_digest(fast_gaia)[:16])
    bundle = store.load_bundle(folder, kind=trust.STORE_KIND)
    assert set(bundle.files) == {"reference.npz", "reference.json"}
    monkeypatch.setattr(trust, "_MEMORY", OrderedDict())
    again = trust.ood_reference(fast_gaia, sizes=sizes)  # from the store, not simulated again
    assert again is not ref and again.threshold == ref.threshold
    version = folder / json.loads((folder / "CURRENT").read_text())["version"]
    npz = version / "reference.npz"
    npz.write_bytes(npz.read_bytes()[:-10] + b"0123456789")
    monkeypatch.setattr(trust, "_MEMORY", OrderedDict())
    with pytest.warns(RuntimeWarning, match="cached OOD reference .* unusable"):
        rebuilt = trust.ood_reference(fast_gaia, sizes=sizes)
    assert rebuilt.threshold == ref.threshold  # same seed, same simulated clusters


def test_model_digest_is_stable_and_model_specific(fast_gaia):
    d = trust.model_digest(fast_gaia)
    assert d == trust.model_digest(fast_gaia) and len(d) == 64
    other = SimpleNamespace(preset=fast_gaia.preset, bands=fast_gaia.bands, features=fast_gaia.features,
                            meta={**fast_gaia.meta, "seed": 99})
    assert trust.model_digest(other) != d
    # the bulky test-set predictions are not part of the identity
    assert trust.model_digest(SimpleNamespace(**{**vars(other), "meta": {**fast_gaia.meta, "test_members": []}})) == d


# ---------------------------------------------------------------------------------------------------------------
# Issue-14 acceptance with the laptop models (slow: may train them)
# ---------------------------------------------------------------------------------------------------------------
def _garbage_tables() -> dict:
    rnd = datasets.load_field("random_dr3").iloc[:1000].copy()
    cone = datasets.load_field("field_dr3_ra45_dec0_r0p5deg").copy()
    m67 = datasets.load_members("M67").copy()
    m67["parallax"] = m67["parallax"] * 10
    noise_u = _noise_table(1)
    noise_u["parallax"] = np.random.default_rng(1).uniform(0.2, 3.0, len(noise_u))
    return {"random_dr3": rnd, "field_cone": cone, "noise (1 kpc parallaxes)": _noise_table(0),
            "noise (parallaxes 0.2-3 mas)": noise_u, "M67 parallax x10": m67}


def _assess_table(model, table):
    import warnings

    from ocnb.astrometry import cluster_parallax
    from ocnb.cmd_ann import mu_dist
    from ocnb.validation import validate_members

    tab = validate_members(table, require=("phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag"), nan="drop")
    with warnings.catch_warnings():  # the multi-band model warns about tables without 2MASS (expected here)
        warnings.simplefilter("ignore", UserWarning)
        X, _ = model.features.transform_with_flags(tab)
    pred = model.ensemble.predict(X)
    point = {k: float(v) for k, v in pred.quantile(50).iloc[0].items()}
    mu = mu_dist(tab, point, model.features.scales_)
    return trust.assess(model, tab, X, pred, point, mu, cluster_parallax=cluster_parallax(tab))


@pytest.mark.slow
def test_acceptance_real_clusters_pass_and_garbage_is_never_gold_or_silver():
    from benchmarks.peers.asteca_vs_ocnb import cluster_jobs
    from ocnb.cmd_ann import train_default

    models = {b: train_default("laptop", bands=b) for b in ("gaia", "multi")}
    jobs, _ = cluster_jobs()
    assert len(jobs) == 26
    for job in jobs:
        out = _assess_table(models[job.bands], datasets.load_members(job.cluster, source=job.source))
        assert not out["ood"]["is_ood"], (job.label, out["ood"])
        assert out["parallax"]["dispersion"]["is_cluster"], (job.label, out["parallax"]["dispersion"])
        # trust's checks may note a tension, never fail a real cluster
        assert not out["low_quality"] and set(out["caps"]) <= {"parallax_tension"}, (job.label, out["reasons"])
    for name, table in _garbage_tables().items():
        for bands, model in models.items():
            out = _assess_table(model, table)
            assert out["quality"] >= 2 and out["low_quality"], (name, bands, out["quality_name"], out["caps"])


def test_import_is_light():
    """Importing trust loads neither Keras nor the simulator: both come with a model or a reference build."""
    import subprocess
    import sys

    code = ("import sys, ocnb.cmd_ann.trust; "
            "print(sorted(m for m in ('keras', 'tensorflow', 'ocnb.sim', 'scipy.stats') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
