"""ocnb.membership.model: the Deep Sets classifier (vG23 App. A, spec A9–A10), its training and its store.

Training data here are TEST FIXTURES: synthetic "prepared clusters" whose members sit at the cluster's
proper motion / parallax / isochrone and whose non-members do not (a separable problem), fed through the
real :func:`ocnb.membership.features.build_training_set` and :class:`FeatureScaler`; and random instances for
the lower-level :meth:`DeepSetsMembership.fit_arrays`.
"""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from ocnb import store  # noqa: E402
from ocnb.membership.features import FeatureScaler, build_training_set  # noqa: E402
from ocnb.membership.model import (  # noqa: E402
    STORE_KIND,
    DeepSetsMembership,
    build_deepsets_model,
    classification_metrics,
)

FAST = dict(learning_rate=1e-3, epochs=30, patience=2, seed=1)


def synthetic_cluster(name: str, seed: int, n_members: int = 40, n_field_cand: int = 30, n_non: int = 500):
    """TEST FIXTURE: a PreparedCluster-like object with raw features [f_r pc, f_pm, f_plx, f_c, f_g].

    Members: small f_pm, f_plx, f_c, f_g; field candidates: moderate; non-members: large.
    """
    rng = np.random.default_rng(seed)

    def block(n, pm, plx, c, g):
        return np.column_stack([rng.uniform(0, 50, n), np.abs(rng.normal(0, pm, n)) + (pm if pm > 0.2 else 0),
                                rng.normal(0, plx, n), rng.normal(0, c, n), rng.normal(0, g, n)])

    members = block(n_members, 0.1, 0.05, 0.02, 0.1)
    members[:, 0] = np.abs(rng.normal(0, 5, n_members))
    feats = np.vstack([members, block(n_field_cand, 0.5, 0.2, 0.1, 0.4), block(n_non, 2.0, 0.5, 0.3, 1.2)])
    n = len(feats)
    is_train = np.zeros(n, bool)
    is_train[:n_members] = True
    is_cand = np.zeros(n, bool)
    is_cand[:n_members + n_field_cand] = True
    sel = SimpleNamespace(is_train_member=is_train, is_candidate=is_cand)
    return SimpleNamespace(name=name, features=feats, selection=sel, truth=is_train.copy(),
                           cluster_features=np.array([rng.uniform(0, 2), rng.uniform(7.5, 9.5),
                                                      rng.uniform(0.5, 3)]))


@pytest.fixture(scope="module")
def clusters():
    train = [synthetic_cluster(f"train_{i}", 10 + i) for i in range(3)]
    val = [synthetic_cluster("val_0", 99)]
    return train, val


class WeightSnapshots(keras.callbacks.Callback):
    """TEST HELPER: the model's weights at the end of every epoch."""

    def on_train_begin(self, logs=None):
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([np.array(w) for w in self.model.get_weights()])


@pytest.fixture(scope="module")
def snapshots():
    return WeightSnapshots()


@pytest.fixture(scope="module")
def trained(clusters, snapshots):
    train, val = clusters
    return DeepSetsMembership(**FAST).fit(train, val, progress=False, callbacks=[snapshots])


def random_instances(n=64, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 10, 13)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Architecture (spec A9)
# ---------------------------------------------------------------------------------------------
def test_parameter_count_and_weight_layout():
    model = build_deepsets_model(seed=0)
    assert DeepSetsMembership().n_params == 39042
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 39042
    assert len(model.non_trainable_weights) == 0
    names = [w.path for w in model.weights]
    assert names[:3] == ["pel_0/gamma_kernel", "pel_0/gamma_bias", "pel_0/lambda_kernel"]  # Λ: no bias
    assert names[-4:] == ["head_hidden/kernel", "head_hidden/bias", "logits/kernel", "logits/bias"]
    assert [tuple(w.shape) for w in model.weights[:3]] == [(13, 64), (64,), (13, 64)]
    assert model.output_shape == (None, 2)
    # 5 blocks x (Γ kernel, Γ bias, Λ kernel) + 2 dense x (kernel, bias): every one carries L2 5e-6
    assert len(model.losses) == 19
    expect = 5e-6 * sum(float(np.sum(np.square(w.numpy()))) for w in model.trainable_weights)
    assert float(sum(model.losses)) == pytest.approx(expect, rel=1e-5)


def test_pytorch_like_initialisation():
    model = build_deepsets_model(seed=3)
    for w in model.trainable_weights:
        fan_in = w.shape[0] if len(w.shape) == 2 else (13 if w.path.startswith("pel_0") else 64)
        bound = 1 / np.sqrt(fan_in)
        a = w.numpy()
        assert np.abs(a).max() <= bound + 1e-7, w.path
        if a.size >= 4096:  # uniform on ±bound: std = bound/sqrt(3)
            assert a.std() == pytest.approx(bound / np.sqrt(3), rel=0.05), w.path
    # the seed fixes the initial weights; another seed changes them
    again, other = build_deepsets_model(seed=3), build_deepsets_model(seed=4)
    np.testing.assert_array_equal(model.weights[0].numpy(), again.weights[0].numpy())
    assert not np.allclose(model.weights[0].numpy(), other.weights[0].numpy())


def test_forward_pass_properties():
    model = build_deepsets_model(seed=0)
    X = random_instances(32)
    out = np.asarray(model(X, training=False))
    # permutation invariance over the set, dropout only in training
    np.testing.assert_allclose(np.asarray(model(X[:, ::-1], training=False)), out, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(model(X, training=False)), out)
    assert not np.allclose(np.asarray(model(X, training=True)), out)


def test_loss_is_summed_class_weighted_cross_entropy_plus_l2():
    """Spec A10: CCE from logits, reduction 'sum', class weights 1:5 as sample weights, + L2."""
    model = build_deepsets_model(seed=0)
    model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True, reduction="sum"))
    X = random_instances(32, seed=2)
    y = np.r_[np.ones(8, int), np.zeros(24, int)]
    Y, sw = np.eye(2, dtype=np.float32)[y], np.array([1.0, 5.0], np.float32)[y]
    pred = model(X, training=False)
    loss = float(model.compute_loss(x=X, y=Y, y_pred=pred, sample_weight=sw))
    z = np.asarray(pred, np.float64)
    logp = z - z.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    ce = -logp[np.arange(32), y]
    l2 = 5e-6 * sum(float(np.sum(np.square(w.numpy().astype(np.float64)))) for w in model.trainable_weights)
    assert loss == pytest.approx(float(np.sum(sw * ce)) + l2, rel=1e-5)


def test_classification_metrics():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.6, 0.2, 0.7, 0.1, 0.1, 0.5, 0.0])  # 0.5 is not > 0.5
    m = classification_metrics(y, p)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (2, 1, 4, 1)
    assert m["f1"] == pytest.approx(4 / 6) and m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3) and m["selectivity"] == pytest.approx(0.8)
    assert m["accuracy"] == pytest.approx(6 / 8) and m["balanced_accuracy"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert classification_metrics([0, 0], [0.1, 0.2])["f1"] == 0.0  # no positive at all: 0, not NaN


# ---------------------------------------------------------------------------------------------
# Training (spec A10)
# ---------------------------------------------------------------------------------------------
def test_fit_reaches_high_validation_f1_and_restores_the_best_epoch(trained, clusters, snapshots):
    h = trained.history
    assert h["best_val_f1"] > 0.9
    n = h["epochs_run"]
    for key in ("loss", "val_loss", "val_f1", "val_precision", "val_recall", "val_selectivity", "val_accuracy",
                "val_balanced_accuracy"):
        assert len(h[key]) == n and np.all(np.isfinite(h[key])), key
    assert all(0 <= v <= 1 for v in h["val_balanced_accuracy"])
    # early stopping: stopped `patience` epochs after the best (strictly better) epoch, before the maximum
    assert h["stopped_epoch"] == h["best_epoch"] + FAST["patience"] == n < FAST["epochs"]
    assert h["best_val_f1"] == max(h["val_f1"]) and h["val_f1"].index(h["best_val_f1"]) + 1 == h["best_epoch"]
    # the restored weights are the best epoch's, not the last epoch's
    assert len(snapshots.weights) == n
    for w, best in zip(trained.model_.get_weights(), snapshots.weights[h["best_epoch"] - 1], strict=True):
        np.testing.assert_array_equal(w, best)
    assert any(not np.array_equal(w, last) for w, last in zip(trained.model_.get_weights(), snapshots.weights[-1],
                                                               strict=True))
    # ... and give the recorded best F1 when the validation set is rebuilt from scratch
    train, val = clusters
    Xv, yv, _ = build_training_set(val, trained.scaler_, seed=trained.seed)
    assert h["n_val"] == len(Xv)
    f1 = classification_metrics(yv, trained.predict_member_score(Xv))["f1"]
    assert f1 == pytest.approx(h["val_f1"][h["best_epoch"] - 1], abs=1e-12)
    # training did it: the same architecture at its (seeded) initial weights scores F1 ≈ 0.37 here
    untrained = np.asarray(trained.build_model()(Xv, training=False))
    assert classification_metrics(yv, untrained[:, 1] > untrained[:, 0])["f1"] < 0.6
    # the scaler comes from train + validation (spec A7), the split is recorded
    ref = FeatureScaler.from_clusters(train + val)
    np.testing.assert_allclose(trained.scaler_.source_mean, ref.source_mean)
    assert trained.clusters_ == {"train": ["train_0", "train_1", "train_2"], "validation": ["val_0"]}
    assert trained.origin_ == "trained" and trained.label == "trained on 4 clusters"


def test_fit_arrays_is_deterministic_and_shows_a_progress_bar(capsys):
    rng = np.random.default_rng(5)
    X = random_instances(200, seed=6)
    y = (X[:, 0, 0] > 0.5).astype(int)
    Xv = random_instances(100, seed=7)
    yv = (Xv[:, 0, 0] > 0.5).astype(int)
    X[:, :, 0] += y[:, None] * rng.uniform(0.5, 1.0)
    kw = dict(learning_rate=1e-3, epochs=2, patience=5, seed=11)
    a = DeepSetsMembership(**kw).fit_arrays(X, y, Xv, yv, progress=True)
    err = capsys.readouterr().err
    assert "DeepSetsMembership" in err and "val_f1" in err and "2/2" in err
    b = DeepSetsMembership(**kw).fit_arrays(X, y, Xv, yv, progress=False)
    assert capsys.readouterr().err == ""
    for wa, wb in zip(a.model_.weights, b.model_.weights, strict=True):
        np.testing.assert_array_equal(wa.numpy(), wb.numpy())
    assert a.history["val_f1"] == b.history["val_f1"] and a.history["loss"] == b.history["loss"]
    assert a.scaler_ is None and a.history["stopped_epoch"] is None and a.history["epochs_run"] == 2


def test_predict_proba_delegates_to_membership_probability(trained, monkeypatch):
    import ocnb.membership.probability as prob

    seen = {}

    def fake(model, prepared, n_draws=100, seed=42, **kwargs):
        seen.update(model=model, prepared=prepared, n_draws=n_draws, seed=seed, **kwargs)
        return SimpleNamespace(probability=np.array([0.0, 0.25, 1.0]))

    monkeypatch.setattr(prob, "membership_probability", fake)
    p = trained.predict_proba("PREPARED", n_draws=7, seed=3, batch_size=10)
    np.testing.assert_array_equal(p, [0.0, 0.25, 1.0])
    assert seen == dict(model=trained, prepared="PREPARED", n_draws=7, seed=3, batch_size=10)


# ---------------------------------------------------------------------------------------------
# Store round trips
# ---------------------------------------------------------------------------------------------
def test_save_load_round_trip_is_bit_identical(trained, tmp_path, tmp_data_home):
    X = random_instances(100, seed=8)
    before = trained.predict_logits(X)
    folder = trained.save(tmp_path / "model")
    again = DeepSetsMembership.load(folder)
    np.testing.assert_array_equal(again.predict_logits(X), before)
    assert again.get_params() == trained.get_params() and again.history == trained.history
    assert again.scaler_.to_dict() == trained.scaler_.to_dict() and again.clusters_ == trained.clusters_
    assert store.load_bundle(folder).kind == STORE_KIND
    # by name: data_home()/models/membership/<name>
    path = trained.save("synthetic-fit")
    assert path == tmp_data_home / "models" / "membership" / "synthetic-fit"
    np.testing.assert_array_equal(DeepSetsMembership.load("synthetic-fit").predict_logits(X), before)


def test_calibration_travels_with_the_model(trained, tmp_path):
    from ocnb.membership.calibration import ProbabilityCalibration
    from ocnb.membership.model import STORE_KIND_VERSION

    cal = ProbabilityCalibration(x=[0.0, 0.02, 0.5, 1.0], y=[0.05, 0.6, 0.9, 0.99], clusters=["a", "b"],
                                 n_candidates=300, n_members=250)
    assert trained.calibration_ is None
    trained.calibration_ = cal
    try:
        files = trained.to_files()
        again = DeepSetsMembership.load(trained.save(tmp_path / "calibrated"))
    finally:
        trained.calibration_ = None
    np.testing.assert_array_equal(again.calibration_.y, cal.y)
    assert again.calibration_.clusters == ["a", "b"]
    assert DeepSetsMembership.load(trained.save(tmp_path / "plain")).calibration_ is None
    # a bundle written before calibration existed (no calibration.json) loads uncalibrated
    old = {k: v for k, v in files.items() if k != "calibration.json"}
    store.save_bundle(tmp_path / "old", old, kind=STORE_KIND, kind_version=STORE_KIND_VERSION)
    assert DeepSetsMembership.load(tmp_path / "old").calibration_ is None
    # a checksummed but unusable calibration.json is refused, never applied
    files["calibration.json"] = b'{"format": "something else"}'
    store.save_bundle(tmp_path / "bad", files, kind=STORE_KIND, kind_version=STORE_KIND_VERSION)
    with pytest.raises(store.BundleError, match=r"calibration\.json is unusable") as err:
        DeepSetsMembership.load(tmp_path / "bad")
    assert err.value.state == "corrupt"


def test_pretrained_round_trip(tmp_path):
    model = DeepSetsMembership.pretrained("DS10_v01")
    X = random_instances(50, seed=9)
    again = DeepSetsMembership.load(model.save(tmp_path / "v01"))
    np.testing.assert_array_equal(again.predict_logits(X), model.predict_logits(X))
    assert again.origin_ == model.origin_ and again.label == "pretrained vG23 DS10_v01"
    np.testing.assert_array_equal(again.scaler_.source_mean, model.scaler_.source_mean)


def test_truncated_bundle_is_refused(trained, tmp_path):
    folder = trained.save(tmp_path / "model")
    weights = next(folder.glob("v*/weights.npz"))
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(store.BundleError, match=r"weights\.npz is truncated") as err:
        DeepSetsMembership.load(folder)
    assert err.value.state == "partial"


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------
def _nan_instances():
    X = random_instances(4)
    X[2, 3, 7] = np.nan
    return X


@pytest.mark.parametrize("X, match", [
    (np.zeros((4, 10, 12), np.float32), r"shape \(batch, 10, 13\).*got \(4, 10, 12\)"),
    (np.zeros((4, 9, 13), np.float32), r"got \(4, 9, 13\)"),
    (np.zeros((10, 13), np.float32), r"got \(10, 13\)"),
    (_nan_instances(), r"NaN or inf in 1 of 4 instances \(first: instance 2\)"),
    ([["a"]], "must be a numeric array"),
])
def test_predict_bad_instances(X, match):
    model = DeepSetsMembership.pretrained("DS10_v01")
    with pytest.raises(ValueError, match=match):
        model.predict_logits(X)


@pytest.mark.parametrize("kwargs, match", [
    (dict(class_weight=(1, 5, 2)), "class_weight must be two finite positive numbers"),
    (dict(class_weight=(1, -5)), "class_weight must be two finite positive numbers"),
    (dict(class_weight="15"), "class_weight must be two"),
    (dict(class_weight=None), "class_weight must be two numbers"),
    (dict(negatives="all"), "negatives must be one of"),
    (dict(learning_rate=0), "learning_rate must be a finite number > 0"),
    (dict(dropout=1.0), r"dropout must be in \[0, 1\)"),
    (dict(epochs=0), "epochs must be an integer >= 1"),
    (dict(n_support=2.5), "n_support must be an integer >= 1"),
    (dict(l2=-1e-6), "l2 must be a finite number >= 0"),
    (dict(seed=-1), r"seed must be an integer in \[0, 2\*\*32\)"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DeepSetsMembership(**kwargs)


def test_unfitted_model_refuses_to_predict_or_save(tmp_path):
    est = DeepSetsMembership()
    for call in (lambda: est.predict_logits(random_instances(2)), lambda: est.save(tmp_path / "m"),
                 lambda: est.predict_proba(object())):
        with pytest.raises(RuntimeError, match=r"no model yet; call fit\(\)"):
            call()
    with pytest.raises(store.BundleNotFoundError):
        DeepSetsMembership.load(tmp_path / "nothing-here")


Y4 = np.array([0, 1, 0, 1])


@pytest.mark.parametrize("args, match", [
    ((random_instances(4), np.array([0, 1, 2, 1]), random_instances(4), Y4), r"only 0 \(non-member\) and 1"),
    ((random_instances(4), np.array([0, 1, 1]), random_instances(4), Y4), "1-D array of 4 labels"),
    ((random_instances(4), np.zeros(4, int), random_instances(4), Y4), "y holds only class 0"),
    ((random_instances(4), Y4, random_instances(4), np.zeros(4, int)), "y_val holds no member"),
    ((random_instances(4), Y4, np.zeros((4, 10, 5)), Y4), r"X_val must have shape \(batch, 10, 13\)"),
])
def test_fit_arrays_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        DeepSetsMembership(epochs=1).fit_arrays(*args, progress=False)


def test_fit_bad_cluster_lists(clusters):
    train, val = clusters
    est = DeepSetsMembership(epochs=1)
    with pytest.raises(ValueError, match="at least one training and one validation cluster"):
        est.fit(train, [])
    with pytest.raises(ValueError, match=r"clusters \['train_0'\] are in both train and validation"):
        est.fit(train, [train[0]])
    with pytest.raises(ValueError, match=r"must hold PreparedCluster objects .* got DataFrame"):
        est.fit([pd.DataFrame()], val)


def test_model_without_scaler_cannot_score_a_cone():
    """fit_arrays leaves scaler_ None (checked above); such a model scores instances, not cones."""
    est = DeepSetsMembership()
    est.model_ = est.build_model()
    assert est.predict_logits(random_instances(3)).shape == (3, 2)
    with pytest.raises(RuntimeError, match="no feature scaler"):
        est.predict_proba(object())
    buf = io.BytesIO(est.to_files()["scaler.json"])
    assert buf.read() == b"null"
