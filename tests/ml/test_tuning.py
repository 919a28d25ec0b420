"""ocnb.ml.tuning: keras-tuner glue (tiny searches)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("keras_tuner")

from ocnb.ml import tuning

BOUNDS = {"a": (0.0, 1.0), "b": (-1.0, 1.0)}


def toy(n=200, n_in=10, seed=0):
    """TEST FIXTURE: labels inside BOUNDS from a smooth map of normal inputs."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    return X, np.column_stack([1 / (1 + np.exp(-X[:, 0])), np.tanh(X[:, 1])])


def test_tune_returns_completed_trials(tmp_path):
    X, y = toy()
    res = tuning.tune(X, y, ["a", "b"], BOUNDS, max_trials=2, epochs=1, directory=tmp_path,
                      input_scaling="standard")
    assert len(res.trials) == 2 and (res.trials["status"] == "COMPLETED").all()
    assert np.isfinite(res.trials["score"]).all()
    assert 3 <= res.best_hyperparameters["depth"] <= 6
    assert 128 <= res.best_hyperparameters["width"] <= 512
    assert res.to_frame() is res.trials


def test_default_folder_is_one_per_search(tmp_data_home):
    """keras-tuner deletes its project folder on start: a shared default folder let a second search
    (another notebook or test process on the same data home) delete a running search's checkpoints."""
    import os

    X, y = toy(n=60)
    res = tuning.tune(X, y, ["a", "b"], BOUNDS, max_trials=1, epochs=1)
    assert (res.trials["status"] == "COMPLETED").all()
    folders = [p.name for p in (tmp_data_home / "keras_tuner").iterdir()]
    assert len(folders) == 1 and folders[0].startswith("ocnb-") and folders[0].endswith(f"-{os.getpid()}")


def test_tune_raises_when_trials_fail(tmp_path, monkeypatch):
    """keras-tuner swallows a failing trial (search() returns normally); tune() must not."""
    original = tuning.build_single_model

    def wrong_outputs(n_inputs, hidden, dropout=0.1, n_outputs=4, **kw):
        return original(n_inputs, hidden, dropout=dropout, n_outputs=n_outputs + 1, **kw)  # fit fails

    monkeypatch.setattr(tuning, "build_single_model", wrong_outputs)
    X, y = toy(60, 8)
    with pytest.raises(RuntimeError, match="did not complete"):
        tuning.tune(X, y, ["a", "b"], BOUNDS, max_trials=2, epochs=1, directory=tmp_path)


def _outside():
    X, y = toy(40)
    y[0, 1] = 3.0
    return X, y


BAD = [
    ("unknown scaling", dict(input_scaling="robust"), None, ValueError, r"input_scaling .* not 'robust'"),
    ("val_fraction 0", dict(val_fraction=0.0), None, ValueError, r"val_fraction must be in \(0, 1\)"),
    ("labels outside bounds", {}, _outside, ValueError, r"label 'b' lies outside its bounds"),
    ("missing bounds", dict(label_bounds={"a": (0, 1)}), None, ValueError, r"label_bounds lacks \['b'\]"),
]


@pytest.mark.parametrize("name, kw, data, error, match", BAD, ids=[b[0] for b in BAD])
def test_bad_input_table(tmp_path, name, kw, data, error, match):
    X, y = data() if data else toy(40)
    kw = {"labels": ["a", "b"], "label_bounds": BOUNDS, **kw}
    with pytest.raises(error, match=match):
        tuning.tune(X, y, max_trials=1, epochs=1, directory=tmp_path, **kw)
