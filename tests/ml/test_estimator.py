"""ocnb.ml.estimator: the generic ANN ensemble (labels and bounds are arguments).

Training data are a TEST FIXTURE (a known smooth map from random inputs to labels), not
simulated clusters.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from ocnb import store  # noqa: E402
from ocnb.ml import ANNEnsemble, EnsemblePrediction  # noqa: E402

BOUNDS = {"a": (0.0, 1.0), "b": (-1.0, 1.0)}
TINY = dict(n_members=3, subset_size=200, hidden=(16, 16), epochs=4, patience=4, batch_size=32)


def toy(n=260, n_in=8, seed=0):
    """TEST FIXTURE: labels a in (0, 1) and b in (-1, 1) from a smooth map of normal inputs."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    y = np.column_stack([1 / (1 + np.exp(-X[:, 0] - 0.5 * X[:, 3])), np.tanh(X[:, 1] - X[:, 2])])
    return X, y


@pytest.fixture(scope="module")
def fitted():
    X, y = toy()
    return ANNEnsemble(["a", "b"], BOUNDS, seed=1, **TINY).fit(X, y, progress=False)


def _weights(est):
    return [w.numpy() for w in est.model_.weights]


def test_generic_labels_and_bounds(fitted):
    X, _ = toy(20, seed=5)
    pred = fitted.predict(pd.DataFrame(X, index=[f"r{i}" for i in range(20)]))
    assert isinstance(pred, EnsemblePrediction) and pred.labels == ("a", "b")
    assert pred.members.shape == (20, 3, 2) and pred.bounds == BOUNDS
    frame = pred.to_frame()
    assert list(frame.index[:2]) == ["r0", "r1"] and "b_84" in frame and "any_at_bound" in frame
    assert fitted.n_params == 3 * ((8 * 16 + 16) + (16 * 16 + 16) + (16 * 2 + 2))
    assert len(fitted.history) == 3 and len(fitted.history[0]["val_loss"]) <= 4


def test_same_seed_gives_the_same_model_bit_for_bit(fitted):
    """Same seed, data and settings -> identical weights and predictions (tensorflow backend)."""
    X, y = toy()
    again = ANNEnsemble(["a", "b"], BOUNDS, seed=1, **TINY).fit(X, y, progress=False)
    for w1, w2 in zip(_weights(fitted), _weights(again), strict=True):
        np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(fitted.predict(X[:10]).members, again.predict(X[:10]).members)
    assert fitted.history == again.history
    other = ANNEnsemble(["a", "b"], BOUNDS, seed=2, **TINY).fit(X, y, progress=False)
    assert not np.array_equal(_weights(fitted)[1], _weights(other)[1])


def test_at_bound_flags_use_the_bounds():
    members = np.full((2, 3, 2), 0.5)
    members[0, :, 0] = 0.999
    members[1, :, 1] = -0.2
    pred = EnsemblePrediction(members, ("a", "b"), BOUNDS, margin=0.01)
    assert pred.at_bound["a"].tolist() == [True, False]
    assert pred.at_bound["b"].tolist() == [False, False]
    assert not EnsemblePrediction(members).at_bound.to_numpy().any()  # no bounds, no flags
    assert EnsemblePrediction(members).labels == ("y0", "y1")


def test_save_load_round_trip_through_the_store(fitted, tmp_path):
    X, _ = toy(15, seed=9)
    path = fitted.save(tmp_path / "ens")
    bundle = store.load_bundle(path)
    assert bundle.kind == "ocnb.ml.ANNEnsemble" and set(bundle.files) == {
        "weights.npz", "subsets.npz", "config.json", "history.json"}
    again = ANNEnsemble.load(path)
    np.testing.assert_array_equal(again.predict(X).members, fitted.predict(X).members)
    assert again.get_params() == fitted.get_params()
    assert again.history == json.loads(json.dumps(fitted.history))
    assert ANNEnsemble.verify(path)["kind"] == "ocnb.ml.ANNEnsemble"


def test_mixed_weights_and_config_are_detected(fitted, tmp_path):
    """Weights of one architecture with the config of another (both checksummed) never load."""
    X, y = toy()
    small = ANNEnsemble(["a", "b"], BOUNDS, n_members=3, subset_size=200, hidden=(4,), epochs=1, patience=1,
                        batch_size=32).fit(X, y, progress=False)
    files = fitted.to_files()
    files["weights.npz"] = small.to_files()["weights.npz"]
    store.save_bundle(tmp_path / "mixed", files, kind="ocnb.ml.ANNEnsemble")
    with pytest.raises(store.BundleError, match=r"is mixed: weights\.npz holds 4 weight arrays") as info:
        ANNEnsemble.load(tmp_path / "mixed")
    assert info.value.state == "mixed"


def test_load_or_fit_caches_and_heals(tmp_data_home):
    X, y = toy(120)
    params = dict(labels=["a", "b"], label_bounds=BOUNDS, n_members=2, subset_size=100, hidden=(8,), epochs=2,
                  patience=2, batch_size=32)
    first = ANNEnsemble.load_or_fit(X, y, "unit", progress=False, **params)
    folders = list((tmp_data_home / "models" / "ml").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("unit-")
    second = ANNEnsemble.load_or_fit(X, y, "unit", **params)
    np.testing.assert_array_equal(second.predict(X[:5]).members, first.predict(X[:5]).members)
    version = folders[0] / json.loads((folders[0] / "CURRENT").read_text())["version"]
    (version / "weights.npz").write_bytes(b"")
    with pytest.warns(RuntimeWarning, match=r"unusable \(partial\).*weights\.npz is truncated \(empty\)"):
        third = ANNEnsemble.load_or_fit(X, y, "unit", progress=False, **params)
    np.testing.assert_array_equal(third.predict(X[:5]).members, first.predict(X[:5]).members)  # deterministic


# -- bad input ----------------------------------------------------------------------------------------------
X0, Y0 = toy(80)


def _nan_x():
    X = X0.copy()
    X[3, 2] = np.nan
    return X


def _nan_y():
    y = Y0.copy()
    y[5, 1] = np.nan
    return y


def _outside():
    y = Y0.copy()
    y[7, 0] = 1.5
    return y


def _est(**kw):
    return ANNEnsemble(["a", "b"], BOUNDS, **{**TINY, "subset_size": 50, "epochs": 1, **kw})


BAD = [
    ("no bounds", lambda: ANNEnsemble(["a"], None), ValueError, r"label_bounds is required"),
    ("bounds lack a label", lambda: ANNEnsemble(["a", "c"], BOUNDS), ValueError, r"label_bounds lacks \['c'\]"),
    ("reversed bounds", lambda: ANNEnsemble(["a"], {"a": (1, 0)}), ValueError, r"label_bounds\['a'\].*low < high"),
    ("NaN bound", lambda: ANNEnsemble(["a"], {"a": (0, np.nan)}), ValueError, r"must be finite"),
    ("duplicate labels", lambda: ANNEnsemble(["a", "a"], BOUNDS), ValueError, r"labels must be unique"),
    ("no members", lambda: _est(n_members=0), ValueError, r"n_members must be >= 1, got 0"),
    ("val_fraction 1", lambda: _est(val_fraction=1.0), ValueError, r"val_fraction must be in \(0, 1\), got 1"),
    ("unknown scaling", lambda: _est(input_scaling="minmax"), ValueError, r"input_scaling .* not 'minmax'"),
    ("zero epochs", lambda: _est(epochs=0), ValueError, r"epochs must be >= 1, got 0"),
    ("1-D X", lambda: _est().fit(X0[:, 0], Y0), ValueError, r"X must be 2-D"),
    ("NaN in X", lambda: _est().fit(_nan_x(), Y0), ValueError, r"X contains NaN or inf values: 1 of 80 rows "
                                                                r"\(first: row 3, column 2 = nan\)"),
    ("NaN label", lambda: _est().fit(X0, _nan_y()), ValueError, r"y contains NaN.*row 5, b = nan"),
    ("label outside bounds", lambda: _est().fit(X0, _outside()), ValueError,
     r"label 'a' lies outside its bounds \(0\.0, 1\.0\) in 1 of 80 rows \(first: row 7, a = 1\.5\)"),
    ("wrong label count", lambda: _est().fit(X0, Y0[:, :1]), ValueError, r"y must have 2 columns, got 1"),
    ("row mismatch", lambda: _est().fit(X0, Y0[:-1]), ValueError, r"X has 80 rows but y has 79"),
    ("frame lacks label", lambda: _est().fit(X0, pd.DataFrame(Y0, columns=["a", "c"])), ValueError,
     r"y lacks the label columns \['b'\]"),
    ("X_val alone", lambda: _est().fit(X0, Y0, X_val=X0), ValueError, r"give both X_val and y_val"),
    ("predict unfitted", lambda: _est().predict(X0), RuntimeError, r"not fitted"),
    ("members not 3-D", lambda: EnsemblePrediction(np.zeros((3, 4))), ValueError, r"shape \(n, n_members, n_labels\)"),
    ("labels vs outputs", lambda: EnsemblePrediction(np.zeros((3, 4, 2)), ("a",)), ValueError, r"1 labels"),
]


@pytest.mark.parametrize("name, call, error, match", BAD, ids=[b[0] for b in BAD])
def test_bad_input_table(name, call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_predict_checks_the_number_of_inputs(fitted):
    with pytest.raises(ValueError, match=r"X must have 8 columns, got 7"):
        fitted.predict(np.zeros((2, 7)))
    with pytest.raises(ValueError, match=r"X contains NaN"):
        fitted.predict(np.full((1, 8), np.inf))
    with pytest.raises(IndexError, match=r"member 3 does not exist"):
        fitted.member_model(3)
