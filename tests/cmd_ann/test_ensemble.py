"""Tests for ocnb.cmd_ann.ensemble (the batched ANN ensemble of Cavallo et al. 2024).

Training data here come from ``make_toy_fixture``: a TEST FIXTURE (random labels inside
the Table-1 bounds with a known nonlinear map to features), not simulated clusters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from ocnb.cache import CorruptCacheError  # noqa: E402
from ocnb.cmd_ann import ensemble as ens  # noqa: E402
from ocnb.cmd_ann.ensemble import (  # noqa: E402
    LABELS,
    ANNEnsemble,
    EnsemblePrediction,
    PerMemberEarlyStopping,
    build_ensemble_model,
    build_single_model,
    coverage,
    extract_member,
    make_toy_fixture,
    member_param_count,
    member_sum_mse,
    plot_coverage,
    residual_table,
)

ROOT = Path(__file__).resolve().parents[2]
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


def test_batched_model_equals_independent_single_models():
    m, n_in = 4, 12
    model = build_ensemble_model(m, n_in, hidden=(16, 8), seed=3)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(25, m, n_in)).astype(np.float32)
    out = np.asarray(model.predict_on_batch(x))
    for k in range(m):
        single = extract_member(model, k)
        ref = np.asarray(single.predict_on_batch(x[:, k, :]))
        np.testing.assert_allclose(out[:, k, :], ref, atol=1e-5, rtol=1e-5)
    # Members really differ (the comparison is not trivially between identical nets).
    assert not np.allclose(out[:, 0, :], out[:, 1, :])
    # A 2-D input is shared by every member and equals the broadcast 3-D input.
    shared = keras.ops.convert_to_numpy(model.get_layer("hidden_0")(x[:, 0, :]))
    bcast = keras.ops.convert_to_numpy(model.get_layer("hidden_0")(np.repeat(x[:, :1, :], m, axis=1)))
    np.testing.assert_allclose(shared, bcast, atol=1e-6)


def test_per_member_initialisation_has_dense_glorot_scale():
    model = build_ensemble_model(8, 190, hidden=(500,), seed=0)
    kernel = model.get_layer("hidden_0").kernel.numpy()
    limit = np.sqrt(6 / (190 + 500))
    assert np.abs(kernel).max() <= limit + 1e-7
    assert np.abs(kernel).max() > 0.95 * limit  # not Glorot over (M*190, M*500) fans
    assert not np.allclose(kernel[0], kernel[1])


def test_one_batched_training_step_equals_independent_steps():
    """Summed per-member MSE: Adam moves each member exactly as if it trained alone."""
    m, n_in, b = 3, 6, 16
    rng = np.random.default_rng(1)
    model = build_ensemble_model(m, n_in, hidden=(8, 8), dropout=0.0, seed=2)
    singles = [extract_member(model, k, dropout=0.0) for k in range(m)]
    x = rng.normal(size=(b, m, n_in)).astype(np.float32)
    y = rng.uniform(size=(b, m, 4)).astype(np.float32)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=member_sum_mse)
    for _ in range(3):
        model.train_on_batch(x, y)
    for k, single in enumerate(singles):
        single.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
        for _ in range(3):
            single.train_on_batch(x[:, k, :], y[:, k, :])
        ref = np.asarray(single.predict_on_batch(x[:, k, :]))
        np.testing.assert_allclose(np.asarray(model.predict_on_batch(x))[:, k, :], ref, atol=1e-5)


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


def test_per_member_early_stopping_restores_each_members_best_slice():
    m, n_in = 2, 5
    model = build_ensemble_model(m, n_in, hidden=(6,), dropout=0.0, seed=0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, m, n_in)).astype(np.float32)
    w_a = [w.numpy().copy() for w in model.trainable_weights]
    w_good = [w + rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in w_a]
    w_b = [w + rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in w_a]
    pred_a = np.asarray(model.predict_on_batch(x))
    for w, v in zip(model.trainable_weights, w_good):
        w.assign(v)
    pred_good = np.asarray(model.predict_on_batch(x))
    # Member 0's targets are reached with w_good, member 1's with w_a.
    y = np.stack([pred_good[:, 0], pred_a[:, 1]], axis=1).astype(np.float64)
    cb = PerMemberEarlyStopping(x, y, patience=1)
    cb.set_model(model)
    cb.on_train_begin()
    epoch_weights = [w_a, [np.stack([g[0], b[1]]) for g, b in zip(w_good, w_b)]]
    for epoch, weights in enumerate(epoch_weights):
        for w, v in zip(model.trainable_weights, weights):
            w.assign(v)
        cb.on_epoch_end(epoch)
    assert list(cb.best_epoch) == [1, 0]
    assert cb.stopped[1] and not cb.stopped[0]
    cb.restore()
    for w, g, a in zip(model.trainable_weights, w_good, w_a):
        np.testing.assert_allclose(w.numpy()[0], g[0])
        np.testing.assert_allclose(w.numpy()[1], a[1])


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
    np.testing.assert_allclose(one.members[0], pred.members[0], atol=1e-5)


def test_member_model_reproduces_member_column(fitted, toy):
    _, _, Xt, _ = toy
    scaled = fitted.predict_scaled(Xt[:10])
    single = fitted.member_model(2)
    np.testing.assert_allclose(np.asarray(single.predict_on_batch(Xt[:10].astype(np.float32))), scaled[:, 2],
                               atol=1e-5)


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


def test_coverage_known_case():
    # members for each row: 0..100 (101 values) -> p16 = 16, p50 = 50, p84 = 84
    n = 10
    members = np.tile(np.linspace(0, 100, 101)[None, :, None], (n, 1, 4))
    truth = np.zeros((n, 4))
    truth[:, 0] = [10, 20, 30, 40, 50, 60, 70, 80, 90, 99]   # 7 of 10 inside [16, 84]
    truth[:, 1] = 50.0                                      # all inside, zero residual
    truth[:, 2] = 100.0                                     # none inside
    truth[:, 3] = np.r_[np.full(5, 40.0), np.full(5, 60.0)]  # inside, residual +-10
    bounds = {lab: (-1e3, 1e3) for lab in LABELS}
    cov = coverage(EnsemblePrediction(members, bounds=bounds), truth)
    assert cov.loc["log_age", "coverage"] == pytest.approx(0.7)
    assert cov.loc["feh", "coverage"] == 1.0 and cov.loc["feh", "mean_abs_residual"] == 0
    assert cov.loc["a_v", "coverage"] == 0.0 and cov.loc["a_v", "bias"] == pytest.approx(-50)
    assert cov.loc["dist_mod", "bias"] == pytest.approx(0) and cov.loc["dist_mod", "mean_abs_residual"] == 10
    assert cov.loc["dist_mod", "mean_halfwidth"] == pytest.approx(34)
    np.testing.assert_allclose(cov["nominal"], 0.68)
    fig = plot_coverage(EnsemblePrediction(members, bounds=bounds), truth)
    assert len(fig.axes) == 1


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


def test_input_validation():
    est = ANNEnsemble(n_members=2, subset_size=50, **SMALL)
    X, y = make_toy_fixture(80, 10, seed=0)
    with pytest.raises(ValueError):
        est.fit(X, y[:, :3])
    X[0, 0] = np.nan
    with pytest.raises(ValueError):
        est.fit(X, y)
    with pytest.raises(RuntimeError):
        est.predict(X[1:])


# -- persistence ------------------------------------------------------------------------------------------
def test_save_load_round_trip_identical(fitted, toy, tmp_path):
    _, _, Xt, _ = toy
    path = fitted.save(tmp_path / "ens")
    again = ANNEnsemble.load(path)
    np.testing.assert_array_equal(again.predict(Xt[:30]).members, fitted.predict(Xt[:30]).members)
    assert again.get_params() == fitted.get_params()
    assert again.history == json.loads(json.dumps(fitted.history))
    np.testing.assert_array_equal(again.subsets_["val"], fitted.subsets_["val"])
    fitted.save(path)  # overwriting an existing folder works
    ANNEnsemble.load(path)


@pytest.mark.parametrize("damage", ["flip_weights", "truncate_weights", "drop_sidecar", "edit_manifest"])
def test_corrupted_model_is_never_used(fitted, tmp_path, damage):
    path = fitted.save(tmp_path / "ens")
    weights = path / "weights.npz"
    if damage == "flip_weights":
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "truncate_weights":
        weights.write_bytes(weights.read_bytes()[:-100])
    elif damage == "drop_sidecar":
        (path / "manifest.json.sha256").unlink()
    else:
        man = json.loads((path / "manifest.json").read_text())
        man["files"]["weights.npz"] = "0" * 64
        (path / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(CorruptCacheError):
        ANNEnsemble.load(path)


def test_load_or_fit_caches_in_data_home(tmp_data_home):
    X, y = make_toy_fixture(120, 20, seed=0)
    params = dict(n_members=2, subset_size=100, **SMALL)
    first = ANNEnsemble.load_or_fit(X, y, "unit", **params)
    folders = list((tmp_data_home / "models" / "cmd_ann").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("unit-")
    second = ANNEnsemble.load_or_fit(X, y, "unit", **params)
    np.testing.assert_array_equal(second.predict(X[:5]).members, first.predict(X[:5]).members)
    # corrupt the cache: it is not used, a warning says so and the model is retrained
    w = folders[0] / "weights.npz"
    w.write_bytes(w.read_bytes()[:-10])
    with pytest.warns(RuntimeWarning, match="corrupted"):
        third = ANNEnsemble.load_or_fit(X, y, "unit", **params)
    assert third.predict(X[:5]).members.shape == (5, 2, 4)
    ANNEnsemble.verify(folders[0])


def test_presets():
    assert set(ens.PRESETS) == {"fast", "laptop", "paper"}
    paper = ens.PRESETS["paper"]
    assert (paper["n_members"], paper["subset_size"], paper["n_clusters"]) == (300, 10_000, 50_000)
    assert paper["hidden"] == (500,) * 5
    est = ANNEnsemble.from_preset("fast", seed=3)
    assert est.n_members == ens.PRESETS["fast"]["n_members"] and est.seed == 3
    assert ens.PRESETS["laptop"]["hidden"] == (500,) * 5
    with pytest.raises(KeyError):
        ANNEnsemble.from_preset("huge")


# -- keras-tuner ------------------------------------------------------------------------------------------
def test_tune_returns_completed_trials(tmp_path):
    X, y = make_toy_fixture(200, 20, seed=0)
    res = ens.tune(X, y, max_trials=2, epochs=1, directory=tmp_path, input_scaling="standard")
    assert len(res.trials) == 2
    assert (res.trials["status"] == "COMPLETED").all()
    assert np.isfinite(res.trials["score"]).all()
    assert 3 <= res.best_hyperparameters["depth"] <= 6
    assert 128 <= res.best_hyperparameters["width"] <= 512


def test_tune_raises_when_trials_fail(tmp_path, monkeypatch):
    """keras-tuner swallows a failing trial (search() returns normally); tune() must not."""
    original = ens.build_single_model

    def wrong_outputs(n_inputs, hidden, dropout=0.1, n_outputs=4, **kw):
        return original(n_inputs, hidden, dropout=dropout, n_outputs=3, **kw)  # y has 4 columns: fit fails

    monkeypatch.setattr(ens, "build_single_model", wrong_outputs)
    X, y = make_toy_fixture(60, 8, seed=0)
    with pytest.raises(RuntimeError, match="did not complete"):
        ens.tune(X, y, max_trials=2, epochs=1, directory=tmp_path)


# -- other Keras backends -----------------------------------------------------------------------------------
BACKEND_SCRIPT = textwrap.dedent("""
    import sys, numpy as np
    import keras
    assert keras.backend.backend() == sys.argv[1], keras.backend.backend()
    from ocnb.cmd_ann.ensemble import ANNEnsemble, build_ensemble_model, extract_member, make_toy_fixture
    X, y = make_toy_fixture(120, 12, seed=0)
    est = ANNEnsemble(n_members=2, subset_size=100, hidden=(16, 16), epochs=2, patience=2, batch_size=32)
    est.fit(X, y)
    pred = est.predict(X[:7])
    assert pred.members.shape == (7, 2, 4) and np.isfinite(pred.members).all()
    p = pred.percentiles
    assert (p[16].to_numpy() <= p[84].to_numpy()).all()
    model = est.model_
    single = extract_member(model, 1)
    np.testing.assert_allclose(np.asarray(single.predict_on_batch(X[:7].astype('float32'))),
                               est.predict_scaled(X[:7])[:, 1], atol=1e-5)
    other = ANNEnsemble.load(sys.argv[2])            # saved by the tensorflow backend
    np.testing.assert_allclose(other.predict(X[:7]).members, np.load(sys.argv[3]), atol=1e-5)
    print("OK", keras.backend.backend())
""")


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_other_backends_build_fit_predict(backend, tmp_path):
    pytest.importorskip(backend)
    X, y = make_toy_fixture(120, 12, seed=0)
    est = ANNEnsemble(n_members=2, subset_size=100, hidden=(16, 16), epochs=1, patience=1, batch_size=32)
    est.fit(X, y)
    saved = est.save(tmp_path / "tf_model")
    np.save(tmp_path / "expected.npy", est.predict(X[:7]).members)
    script = tmp_path / "backend_check.py"
    script.write_text(BACKEND_SCRIPT)
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": "",
           "OCNB_DATA_DIR": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, str(script), backend, str(saved), str(tmp_path / "expected.npy")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"OK {backend}" in out.stdout
