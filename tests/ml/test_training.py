"""ocnb.ml.training: per-member early stopping, the training progress bar, determinism switches."""

from __future__ import annotations

import io
import types

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from ocnb.ml.estimator import ANNEnsemble  # noqa: E402
from ocnb.ml.layers import build_ensemble_model  # noqa: E402
from ocnb.ml.training import PerMemberEarlyStopping, TrainingProgress, deterministic  # noqa: E402

BOUNDS = {"a": (0.0, 1.0), "b": (-1.0, 1.0)}


def _toy(n=120, n_in=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    y = np.column_stack([1 / (1 + np.exp(-X[:, 0])), np.tanh(X[:, 1] - X[:, 2])])
    return X, y


def test_per_member_early_stopping_restores_each_members_best_slice():
    m, n_in = 2, 5
    model = build_ensemble_model(m, n_in, hidden=(6,), dropout=0.0, seed=0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, m, n_in)).astype(np.float32)
    w_a = [w.numpy().copy() for w in model.trainable_weights]
    w_good = [w + rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in w_a]
    w_b = [w + rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in w_a]
    pred_a = np.asarray(model.predict_on_batch(x))
    for w, v in zip(model.trainable_weights, w_good, strict=True):
        w.assign(v)
    pred_good = np.asarray(model.predict_on_batch(x))
    # Member 0's targets are reached with w_good, member 1's with w_a.
    y = np.stack([pred_good[:, 0], pred_a[:, 1]], axis=1).astype(np.float64)
    cb = PerMemberEarlyStopping(x, y, patience=1)
    cb.set_model(model)
    cb.on_train_begin()
    epoch_weights = [w_a, [np.stack([g[0], b[1]]) for g, b in zip(w_good, w_b, strict=True)]]
    logs = {}
    for epoch, weights in enumerate(epoch_weights):
        for w, v in zip(model.trainable_weights, weights, strict=True):
            w.assign(v)
        cb.on_epoch_end(epoch, logs)
    assert list(cb.best_epoch) == [1, 0]
    assert cb.stopped[1] and not cb.stopped[0]
    assert logs["members_active"] == 1 and np.isfinite(logs["val_loss"])  # shown by the progress bar
    cb.restore()
    for w, g, a in zip(model.trainable_weights, w_good, w_a, strict=True):
        np.testing.assert_allclose(w.numpy()[0], g[0])
        np.testing.assert_allclose(w.numpy()[1], a[1])


# -- progress bar -------------------------------------------------------------------------------------------
def _drive(bar: TrainingProgress, n_epochs: int, stop: bool) -> str:
    bar.set_model(types.SimpleNamespace(stop_training=stop))
    bar.on_train_begin()
    for e in range(n_epochs):
        bar.on_epoch_end(e, {"loss": 1.0 / (e + 1), "val_loss": 2.0 / (e + 1), "members_active": 3 - e})
    bar.on_train_end()
    return bar.file.getvalue()


def test_progress_bar_shows_epochs_loss_val_loss_and_eta():
    out = _drive(TrainingProgress(5, desc="toy", disable=False, file=io.StringIO()), 5, stop=False)
    assert "toy" in out and "5/5" in out and "epoch" in out
    assert "loss=0.2" in out and "val_loss=0.4" in out and "improving=" in out
    assert "<" in out  # tqdm's elapsed<remaining (ETA) field


def test_progress_bar_ends_complete_on_early_stop():
    bar = TrainingProgress(10, desc="toy", disable=False, file=io.StringIO())
    out = _drive(bar, 3, stop=True)
    assert bar.early_stopped and "3/3" in out and "(early stop)" in out


def test_progress_bar_silenced_by_environment(monkeypatch):
    monkeypatch.setenv("OCNB_PROGRESS", "0")
    out = _drive(TrainingProgress(4, file=io.StringIO()), 4, stop=False)
    assert out == ""
    monkeypatch.setenv("OCNB_PROGRESS", "1")
    assert "4/4" in _drive(TrainingProgress(4, file=io.StringIO()), 4, stop=False)


def test_fit_shows_the_progress_bar_by_default(capsys, monkeypatch):
    monkeypatch.delenv("OCNB_PROGRESS", raising=False)
    X, y = _toy()
    est = ANNEnsemble(["a", "b"], BOUNDS, n_members=2, subset_size=100, hidden=(8,), epochs=3, patience=3,
                      batch_size=32)
    est.fit(X, y)
    err = capsys.readouterr().err
    assert "ANNEnsemble (2 members)" in err and "3/3" in err and "val_loss=" in err
    est.fit(X, y, progress=False)
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("OCNB_PROGRESS", "off")
    est.fit(X, y)
    assert capsys.readouterr().err == ""


# -- determinism switches --------------------------------------------------------------------------------------
def test_deterministic_switches_back_and_checks_seed():
    from tensorflow.python.framework import config as tf_config

    if keras.backend.backend() != "tensorflow":  # pragma: no cover
        pytest.skip("tensorflow switch")
    before = tf_config.is_op_determinism_enabled()
    with deterministic(3):
        assert tf_config.is_op_determinism_enabled()
        a = np.random.random()  # noqa: NPY002 - the legacy global RNG is what set_random_seed seeds
    assert tf_config.is_op_determinism_enabled() == before  # a fit does not leave it switched on
    with deterministic(3):
        assert np.random.random() == a  # noqa: NPY002 - NumPy's global RNG is seeded (documented side effect)
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*32\), got -1"), deterministic(-1):
        pass
