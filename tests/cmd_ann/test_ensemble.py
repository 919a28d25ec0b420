"""Tests for ocnb.cmd_ann.ensemble: the ANN ensemble of Cavallo et al. (2024) with its Table-1 defaults.

The generic machinery is tested in tests/ml/ (layers, early stopping, progress bar, determinism,
backends, keras-tuner) and tests/test_diagnostics.py (coverage); these tests check Cavallo's part
and that every name the module exported before the split still works.

Training data here come from ``make_toy_fixture``: a TEST FIXTURE (random labels inside
the Table-1 bounds with a known nonlinear map to features), not simulated clusters.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

import ocnb.diagnostics  # noqa: E402
import ocnb.ml  # noqa: E402
from ocnb import cmd_ann  # noqa: E402
from ocnb.cache import CorruptCacheError  # noqa: E402
from ocnb.cmd_ann import ensemble as ens  # noqa: E402
from ocnb.cmd_ann.ensemble import (  # noqa: E402
    LABELS,
    ANNEnsemble,
    EnsemblePrediction,
    build_ensemble_model,
    build_single_model,
    coverage,
    make_toy_fixture,
    member_param_count,
    residual_table,
)
from ocnb.store import BundleError  # noqa: E402

SMALL = dict(hidden=(32, 32, 32), epochs=3, patience=3, batch_size=64)


@pytest.fixture(scope="module")
def toy():
    """TEST FIXTURE: toy training pool and independent held-out set (not cluster simulations)."""
    X, y = make_toy_fixture(700, 190, seed=0)
    Xt, yt = make_toy_fixture(200, 190, seed=1)
    return X, y, Xt, yt


@pytest.fixture(scope="module")
def fitted(toy):
    X, y, Xt, yt = toy
    est = ANNEnsemble(n_members=3, subset_size=500, hidden=(64,) * 3, epochs=15, patience=15, batch_size=64,
                      seed=0)
    est.fit(X, y, X_val=Xt, y_val=yt)
    return est


# -- architecture ---------------------------------------------------------------------------------
def test_parameter_count_matches_spec():
    assert member_param_count(190) == 1_099_504
    assert member_param_count(64) == 1_036_504
    assert build_single_model(190).count_params() == 1_099_504
    model = build_ensemble_model(3, 190)
    assert model.count_params() == 3 * 1_099_504
    assert model.output_shape == (None, 3, 4)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("BatchedDense") == 6 and kinds.count("LeakyReLU") == 5 and kinds.count("Dropout") == 1
    assert model.get_layer("input_dropout").rate == pytest.approx(0.1)
    assert model.get_layer("leaky_0").negative_slope == pytest.approx(0.3)


# -- subsets and early stopping ---------------------------------------------------------------------
def test_member_subsets_differ_and_train_val_are_disjoint():
    est = ANNEnsemble(n_members=4, subset_size=300, val_fraction=0.2, seed=5)
    sub = est.draw_subsets(1000)
    assert sub["train"].shape == (4, 240) and sub["val"].shape == (4, 60)
    for k in range(4):
        tr, va = set(sub["train"][k]), set(sub["val"][k])
        assert len(tr) == 240 and len(va) == 60  # without replacement
        assert not tr & va
        assert max(tr | va) < 1000
    assert len({frozenset(s) for s in sub["train"]}) == 4
    again = ANNEnsemble(n_members=4, subset_size=300, seed=5).draw_subsets(1000)
    np.testing.assert_array_equal(sub["train"], again["train"])
    other = ANNEnsemble(n_members=4, subset_size=300, seed=6).draw_subsets(1000)
    assert not np.array_equal(sub["train"], other["train"])


# -- training and prediction --------------------------------------------------------------------------
def test_training_reduces_loss_and_beats_prior_mean(fitted, toy):
    _, _, Xt, yt = toy
    for h in fitted.history:
        assert min(h["val_loss"]) < 0.5 * h["val_loss"][0]
        assert h["best_epoch"] == int(np.argmin(h["val_loss"]))
        assert len(h["loss"]) == len(h["val_loss"]) == len(h["test_loss"])
    pred = fitted.predict(Xt)
    cov = coverage(pred, yt)
    prior_rmse = np.sqrt(((yt - yt.mean(axis=0)) ** 2).mean(axis=0))
    assert np.all(cov["rmse"].to_numpy() < 0.5 * prior_rmse), cov
    assert fitted.n_params == 3 * member_param_count(190, (64,) * 3)


def test_prediction_percentiles_ordered_and_frame(fitted, toy):
    _, _, Xt, _ = toy
    pred = fitted.predict(pd.DataFrame(Xt[:20], index=[f"c{i}" for i in range(20)]))
    assert pred.members.shape == (20, 3, 4)
    p = pred.percentiles
    for lab in LABELS:
        assert np.all(p[16][lab] <= p[50][lab]) and np.all(p[50][lab] <= p[84][lab])
    frame = pred.to_frame()
    assert list(frame.index[:2]) == ["c0", "c1"]
    for lab in LABELS:
        for suffix in ("16", "50", "84", "mean", "std", "at_bound"):
            assert f"{lab}_{suffix}" in frame.columns
    np.testing.assert_allclose(frame["log_age_mean"], pred.members[:, :, 0].mean(axis=1))
    # physical units: the median log age lies near the prior range
    assert frame["log_age_50"].between(6.0, 11.0).all()
    one = fitted.predict(Xt[0])  # a single cluster as a 1-D vector
    np.testing.assert_allclose(one.members[0], pred.members[0], rtol=1e-5, atol=1e-5)


def test_member_model_reproduces_member_column(fitted, toy):
    _, _, Xt, _ = toy
    scaled = fitted.predict_scaled(Xt[:10])
    single = fitted.member_model(2)
    np.testing.assert_allclose(np.asarray(single.predict_on_batch(Xt[:10].astype(np.float32))), scaled[:, 2],
                               rtol=1e-5, atol=1e-5)


def test_bound_flag():
    members = np.zeros((3, 5, 4))
    members[:, :, 0] = 8.0
    members[:, :, 2] = 2.0
    members[:, :, 3] = 10.0
    members[0, :, 1] = -0.78   # within 0.05 of -0.8
    members[1, :, 1] = 0.0
    members[2, :, 1] = 0.56    # within 0.05 of +0.6
    members[1, :, 3] = 14.97   # dMod near 15
    pred = EnsemblePrediction(members)
    flags = pred.at_bound
    assert flags["feh"].tolist() == [True, False, True]
    assert flags["dist_mod"].tolist() == [False, True, False]
    assert not flags["log_age"].any()
    assert pred.to_frame()["any_at_bound"].tolist() == [True, True, True]


def test_residual_table_bins():
    rng = np.random.default_rng(0)
    n = 400
    truth = rng.uniform(size=(n, 4))
    n_stars = 10 ** rng.uniform(1.0, 3.5, n)
    offset = np.where(np.log10(n_stars) < 2, 1.0, 0.0)        # biased only for sparse clusters
    members = (truth + offset[:, None])[:, None, :] + np.zeros((1, 3, 1))
    table = residual_table(EnsemblePrediction(members), truth, n_stars, bins=[1.0, 2.0, 3.5])
    assert table.shape == (2, 12)
    assert table[("feh", "mean")].tolist() == pytest.approx([1.0, 0.0])
    assert table[("feh", "n")].sum() == n
    single = residual_table(EnsemblePrediction(members), truth, n_stars, bins=[1.0, 2.0, 3.5], estimate=1)
    assert single[("a_v", "mean")].tolist() == pytest.approx([1.0, 0.0])


def _outside_table1():
    X, y = make_toy_fixture(80, 10, seed=0)
    y[4, 3] = 16.0  # dMod beyond Table 1's 15 mag
    return X, y


def _nan_features():
    X, y = make_toy_fixture(80, 10, seed=0)
    X[2, 9] = np.nan  # the parallax column
    return X, y


BAD = [
    ("labels missing", lambda: ANNEnsemble(n_members=2, subset_size=50, **SMALL).fit(*_toy_cols(3)), ValueError,
     r"y must have 4 columns, got 3"),
    ("NaN parallax feature", lambda: ANNEnsemble(n_members=2, subset_size=50, **SMALL).fit(*_nan_features()),
     ValueError, r"X contains NaN or inf values: 1 of 80 rows \(first: row 2, column 9 = nan\)"),
    ("dMod outside Table 1", lambda: ANNEnsemble(n_members=2, subset_size=50, **SMALL).fit(*_outside_table1()),
     ValueError, r"label 'dist_mod' lies outside its bounds \(0\.0, 15\.0\).*dist_mod = 16\.0"),
    ("unknown preset", lambda: ANNEnsemble.from_preset("huge"), KeyError, r"unknown preset 'huge'"),
    ("predict unfitted", lambda: ANNEnsemble(n_members=2).predict(np.zeros((1, 10))), RuntimeError,
     r"not fitted"),
    ("bounds lack a label", lambda: ANNEnsemble(label_bounds={"log_age": (6, 10)}), ValueError,
     r"label_bounds lacks \['feh', 'a_v', 'dist_mod'\]"),
    ("residual n_stars", lambda: residual_table(EnsemblePrediction(np.zeros((2, 3, 4))), np.zeros((2, 4)), [5, 0]),
     ValueError, r"n_stars must be positive"),
]


def _toy_cols(k):
    X, y = make_toy_fixture(80, 10, seed=0)
    return X, y[:, :k]


@pytest.mark.parametrize("name, call, error, match", BAD, ids=[b[0] for b in BAD])
def test_bad_input_table(name, call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_every_name_exported_before_the_split_still_works():
    old = ["LABELS", "TABLE1_BOUNDS", "PRESETS", "LAPTOP_MEASUREMENT", "INPUT_SCALING_MEASUREMENT",
           "MASS_FUNCTION_MEASUREMENT", "BatchedDense", "member_sum_mse", "build_ensemble_model",
           "build_single_model", "member_param_count", "extract_member", "PerMemberEarlyStopping", "ANNEnsemble",
           "EnsemblePrediction", "coverage", "plot_coverage", "residual_table", "tune", "TuneResult", "model_dir",
           "make_toy_fixture", "coverage_curve"]
    for name in old:
        assert getattr(ens, name) is not None, name
        if name in cmd_ann._EXPORTS["ensemble"]:
            assert getattr(cmd_ann, name) is getattr(ens, name), name
    # the shared machinery is the same object, not a copy
    assert ens.BatchedDense is ocnb.ml.BatchedDense and ens.coverage is ocnb.diagnostics.coverage
    assert issubclass(ANNEnsemble, ocnb.ml.ANNEnsemble) and issubclass(EnsemblePrediction, ocnb.ml.EnsemblePrediction)
    assert ens.TABLE1_BOUNDS == {"log_age": (6.7, 10.1), "feh": (-0.8, 0.6), "a_v": (0.0, 5.0), "dist_mod": (0.0, 15.0)}


# -- persistence ------------------------------------------------------------------------------------------
def test_save_load_round_trip_identical(fitted, toy, tmp_path):
    _, _, Xt, _ = toy
    path = fitted.save(tmp_path / "ens")
    again = ANNEnsemble.load(path)
    assert type(again) is ANNEnsemble and type(again.predict(Xt[:2])) is EnsemblePrediction
    np.testing.assert_array_equal(again.predict(Xt[:30]).members, fitted.predict(Xt[:30]).members)
    assert again.get_params() == fitted.get_params()
    assert again.history == json.loads(json.dumps(fitted.history))
    np.testing.assert_array_equal(again.subsets_["val"], fitted.subsets_["val"])
    fitted.save(path)  # overwriting an existing folder works
    ANNEnsemble.load(path)


def _version(path):
    return path / json.loads((path / "CURRENT").read_text())["version"]


@pytest.mark.parametrize("damage, match", [
    ("flip_weights", r"weights\.npz does not match the sha256"),
    ("truncate_weights", r"partial: .*weights\.npz is truncated"),
    ("drop_manifest", r"partial: .*manifest\.json is missing"),
    ("edit_manifest", r"mixed: .*manifest\.json is not the manifest CURRENT recorded"),
])
def test_corrupted_model_is_never_used(fitted, tmp_path, damage, match):
    path = fitted.save(tmp_path / "ens")
    weights = _version(path) / "weights.npz"
    if damage == "flip_weights":
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "truncate_weights":
        weights.write_bytes(weights.read_bytes()[:-100])
    elif damage == "drop_manifest":
        (_version(path) / "manifest.json").unlink()
    else:
        man_path = _version(path) / "manifest.json"
        man = json.loads(man_path.read_text())
        man["files"]["weights.npz"]["sha256"] = "0" * 64
        man_path.write_text(json.dumps(man))
    with pytest.raises(BundleError, match=match):
        ANNEnsemble.load(path)
    with pytest.raises(CorruptCacheError):  # what callers caught before the store
        ANNEnsemble.load(path)


def test_load_or_fit_caches_in_data_home(tmp_data_home):
    X, y = make_toy_fixture(120, 20, seed=0)
    params = dict(n_members=2, subset_size=100, **SMALL)
    first = ANNEnsemble.load_or_fit(X, y, "unit", progress=False, **params)
    folders = list((tmp_data_home / "models" / "cmd_ann").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("unit-")
    second = ANNEnsemble.load_or_fit(X, y, "unit", **params)
    np.testing.assert_array_equal(second.predict(X[:5]).members, first.predict(X[:5]).members)
    # corrupt the cache: it is not used, a warning says so and the model is retrained
    w = _version(folders[0]) / "weights.npz"
    w.write_bytes(w.read_bytes()[:-10])
    with pytest.warns(RuntimeWarning, match=r"cached ANN ensemble .* unusable \(partial\)"):
        third = ANNEnsemble.load_or_fit(X, y, "unit", progress=False, **params)
    np.testing.assert_array_equal(third.predict(X[:5]).members, first.predict(X[:5]).members)  # same seed
    ANNEnsemble.verify(folders[0])


def test_presets():
    assert set(ens.PRESETS) == {"fast", "laptop", "paper"}
    paper = ens.PRESETS["paper"]
    assert (paper["n_members"], paper["subset_size"], paper["n_clusters"]) == (300, 10_000, 50_000)
    assert paper["hidden"] == (500,) * 5
    est = ANNEnsemble.from_preset("fast", seed=3)
    assert est.n_members == ens.PRESETS["fast"]["n_members"] and est.seed == 3
    assert ens.PRESETS["laptop"]["hidden"] == (500,) * 5



def test_cavallo_tune_defaults(tmp_path):
    pytest.importorskip("keras_tuner")
    X, y = make_toy_fixture(80, 12, seed=0)
    res = ens.tune(X, y, max_trials=1, epochs=1, directory=tmp_path)
    assert len(res.trials) == 1 and (res.trials["status"] == "COMPLETED").all()


