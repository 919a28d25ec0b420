"""train_default / estimate / mu_dist / quality_class on the FAST preset and real members."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ocnb import datasets, store
from ocnb.cache import sha256_bytes
from ocnb.cmd_ann import PRESETS, CavalloModel, estimate, mu_dist, quality_class, train_default
from ocnb.cmd_ann.ensemble import model_dir
from ocnb.cmd_ann.inference import _isochrone_cmd1
from ocnb.errors import MemberTableError
from ocnb.isochrones import default_grid


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return train_default("fast")


@pytest.fixture(scope="module")
def m67():
    return datasets.load_members("M67")


def test_bundle_is_cached_and_reloads(model):
    again = train_default("fast")
    X = np.random.default_rng(0).normal(size=(3, model.features.n_features))
    np.testing.assert_allclose(model.predict(X).members, again.predict(X).members, rtol=1e-6)
    assert model.meta["simulated_training_data"] is True
    assert set(model.coverage["label"]) == {"log_age", "feh", "a_v", "dist_mod"}


def _version(folder: Path) -> Path:
    return folder / json.loads((folder / "CURRENT").read_text())["version"]


def test_corrupted_bundle_is_retrained_not_used_and_same_seed_gives_same_model(tmp_data_home, capsys, monkeypatch):
    monkeypatch.delenv("OCNB_PROGRESS", raising=False)
    fresh = train_default("fast", seed=3)
    assert "ANNEnsemble (3 members)" in capsys.readouterr().err  # training shows its progress bar
    folder = next(model_dir("x").parent.glob("cavallo-fast-multi-s3-*"))
    bundle = _version(folder) / "bundle.json"
    bundle.write_bytes(bundle.read_bytes().replace(b'"fast"', b'"FAST"', 1))
    with pytest.warns(RuntimeWarning, match=r"cached model .*unusable \(mixed\).*bundle\.json does not match"):
        again = train_default("fast", seed=3)
    assert isinstance(again, CavalloModel) and again.preset == "fast"
    # Same seed -> same model: the retrained ensemble and calibration equal the first ones exactly.
    X = np.random.default_rng(1).normal(size=(5, fresh.features.n_features))
    np.testing.assert_array_equal(fresh.predict(X).members, again.predict(X).members)
    assert fresh.meta["calibration"] == again.meta["calibration"]


def test_model_is_one_store_bundle_with_one_manifest(model, tmp_path):
    folder = model.save(tmp_path / "m")
    b = store.load_bundle(folder)
    assert b.kind == "ocnb.cmd_ann.CavalloModel" and not b.legacy
    assert set(b.files) == {"bundle.json", "ensemble/weights.npz", "ensemble/subsets.npz", "ensemble/config.json",
                            "ensemble/history.json"}
    assert [p.name for p in _version(folder).rglob("manifest.json")] == ["manifest.json"]
    again = CavalloModel.load(folder)
    X = np.random.default_rng(2).normal(size=(4, model.features.n_features))
    np.testing.assert_array_equal(again.predict(X).members, model.predict(X).members)
    assert again.meta["calibration"] == model.meta["calibration"]


# -- models saved before ocnb.store ------------------------------------------------------------------------------
PRE_STORE = Path(__file__).resolve().parents[1] / "data" / "regression"


def test_model_saved_before_the_store_loads_with_identical_predictions():
    model = CavalloModel.load(PRE_STORE / "model-pre-store")
    with np.load(PRE_STORE / "model_predictions.npz") as z:
        X, members = z["X"], z["members"]
    # recorded on another machine: float32 products may differ in the last ulps on another CPU (oneDNN kernels)
    np.testing.assert_allclose(model.predict(X).members, members, rtol=1e-5, atol=1e-5)


def _legacy_copy(tmp_path: Path, fit_gap: float | None) -> Path:
    folder = tmp_path / "old"
    shutil.copytree(PRE_STORE / "model-pre-store", folder)
    if fit_gap is not None:  # the meta as train_default wrote it, with the time of its fit() call
        fit_time = json.loads((folder / "ensemble" / "config.json").read_text())["fit_time_s"]
        doc = json.loads((folder / "bundle.json").read_text())
        doc["meta"]["fit_s"] = fit_time + fit_gap
        data = json.dumps(doc, sort_keys=True).encode()
        (folder / "bundle.json").write_bytes(data)
        (folder / "bundle.json.sha256").write_text(sha256_bytes(data) + "\n")
    return folder


def test_mixed_pre_store_bundle_is_detected(tmp_path):
    """Old layout: bundle.json of one training beside the ensemble of another (both checksums valid)."""
    CavalloModel.load(_legacy_copy(tmp_path / "a", 0.001))  # same fit() call: fine
    with pytest.raises(store.BundleError, match=r"is mixed: bundle\.json records a .* s fit, ensemble/config"):
        CavalloModel.load(_legacy_copy(tmp_path / "b", 4.0))
    folder = _legacy_copy(tmp_path / "c", None)
    (folder / "ensemble" / "weights.npz").write_bytes(b"")
    with pytest.raises(store.BundleError, match=r"ensemble/weights\.npz empty"):
        CavalloModel.load(folder)


def test_train_default_migrates_a_pre_store_cache(tmp_data_home):
    settings = json.dumps(PRESETS["fast"], sort_keys=True, default=str).encode()
    folder = model_dir(f"cavallo-fast-multi-s0-{sha256_bytes(settings)[:8]}")
    folder.parent.mkdir(parents=True)
    shutil.copytree(PRE_STORE / "model-pre-store", folder)
    model = train_default("fast", bands="multi", seed=0)  # loads, calibrates, re-saves: no training
    assert model.meta["snapshot"] == "pre-store" and "calibration" in model.meta
    assert (folder / "CURRENT").exists() and not (folder / "bundle.json").exists()
    with np.load(PRE_STORE / "model_predictions.npz") as z:
        np.testing.assert_allclose(train_default("fast").predict(z["X"]).members, z["members"], rtol=1e-5, atol=1e-5)


# -- SIGKILL during a save ------------------------------------------------------------------------------------------
KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from ocnb import store
    folder, files_dir, k = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    files = {p.relative_to(files_dir).as_posix(): p.read_bytes()
             for p in sorted(files_dir.rglob("*")) if p.is_file()}
    n = [0]
    def hook(label):
        n[0] += 1
        if n[0] == k:
            os.kill(os.getpid(), signal.SIGKILL)
    store._after_step = hook
    store.save_bundle(folder, files, kind="ocnb.cmd_ann.CavalloModel")
    print("steps", n[0])
""")


def test_sigkill_at_every_step_of_a_model_save_never_mixes_weights_and_calibration(model, tmp_path):
    """Overwrite a good model with a retrained one (new weights AND new calibration), killing the
    saving process after each write step: loading gives the old model or the new one, whole."""
    new = CavalloModel.load(model.save(tmp_path / "copy"))
    for w in new.ensemble.model_.weights:
        w.assign(w.numpy() + np.float32(0.01))
    new.meta = {**model.meta, "calibration": {**model.meta["calibration"], "factors": {
        k: 2 * v for k, v in model.meta["calibration"]["factors"].items()}}}
    files_dir = tmp_path / "files"
    for name, data in new.to_files().items():
        (files_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (files_dir / name).write_bytes(data)
    script = tmp_path / "save.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    X = np.random.default_rng(3).normal(size=(4, model.features.n_features))
    old_pred, new_pred = model.predict(X).members, new.predict(X).members
    seen = set()
    k = 0
    while True:
        k += 1
        folder = model.save(tmp_path / f"m{k}")
        out = subprocess.run([sys.executable, str(script), str(folder), str(files_dir), str(k)], env=env,
                             capture_output=True, text=True, timeout=120)
        loaded = CavalloModel.load(folder)  # never a BundleError: the old or the new model, complete
        pred = loaded.predict(X).members
        factors = loaded.meta["calibration"]["factors"]
        if np.array_equal(pred, old_pred):
            assert factors == model.meta["calibration"]["factors"], f"step {k}: old weights, new calibration"
            seen.add("old")
        else:
            np.testing.assert_array_equal(pred, new_pred)
            assert factors == new.meta["calibration"]["factors"], f"step {k}: new weights, old calibration"
            seen.add("new")
        if out.returncode == 0:  # k is past the last step: the save completed
            break
        assert out.returncode == -signal.SIGKILL, out.stderr[-2000:]
    assert seen == {"old", "new"} and k >= 9


def test_estimate_real_m67(model, m67):
    est = estimate(m67, model)
    s = est.summary
    assert list(s.index) == ["log_age", "feh", "a_v", "dist_mod"]
    assert (s["p16"] <= s["p50"]).all() and (s["p50"] <= s["p84"]).all()
    assert est.flags["has_2mass"] and est.flags["n_cmd1"] > 1000
    assert est.quality in (0, 1, 2, 3) and np.isfinite(est.mu_dist)
    row = est.to_row()
    assert row["name"] == "NGC 2682" and np.isfinite(row["dist_mod_50"])


def test_gaia_only_cluster_flagged_for_multiband_model(model):
    est = estimate(datasets.load_members("NGC 2360"), model)
    assert est.flags["low_quality"] and "2MASS" in est.flags["reason"]


def test_bad_input(model, m67):
    with pytest.raises(MemberTableError, match="phot_bp_mean_mag"):
        estimate(m67.drop(columns=["phot_bp_mean_mag"]), model)
    with pytest.raises(MemberTableError, match=r"min_stars|< 10|stars in CMD1"):
        estimate(m67.head(8), model)
    with pytest.raises(MemberTableError, match="parallax"):
        estimate(m67.assign(parallax=np.nan), model)
    with pytest.raises(MemberTableError, match="parallax"):
        estimate(m67.drop(columns=["parallax"]), model)
    some_nan = m67.copy()
    some_nan.loc[some_nan.index[:50], "parallax"] = np.nan
    est = estimate(some_nan, model)
    assert est.flags["low_quality"] and "without parallax" in est.flags["reason"]
    bright = m67.assign(**{c: m67[c] - 9 for c in ("phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag")})
    est = estimate(bright, model)
    assert est.flags["n_features_outside_training"] > 0 and "outside the training range" in est.flags["reason"]


def _ensemble_only(tmp_path, model):
    return model.ensemble.save(tmp_path / "ens")


MODEL_BAD = [
    ("unknown preset", lambda tmp, m: train_default("huge"), KeyError, r"unknown preset 'huge'"),
    ("unknown bands", lambda tmp, m: train_default("fast", bands="wise"), ValueError,
     r"bands must be 'multi' or 'gaia', not 'wise'"),
    ("nothing saved", lambda tmp, m: CavalloModel.load(tmp / "none"), store.BundleNotFoundError,
     r"no model bundle at"),
    ("an ensemble is not a model", lambda tmp, m: CavalloModel.load(_ensemble_only(tmp, m)), store.BundleError,
     r"holds 'ocnb\.ml\.ANNEnsemble', not a CavalloModel"),
]


@pytest.mark.parametrize("name, call, error, match", MODEL_BAD, ids=[b[0] for b in MODEL_BAD])
def test_model_bad_input_table(model, tmp_path, name, call, error, match):
    with pytest.raises(error, match=match):
        call(tmp_path, model)


def test_mu_dist_is_zero_on_the_isochrone_and_grows_off_it(model):
    params = {"log_age": 9.5, "feh": 0.0, "a_v": 0.2, "dist_mod": 10.0}
    colour, mag, label = _isochrone_cmd1(default_grid(), *params.values())
    keep = (mag < 18) & (label == 1)
    on = pd.DataFrame({"phot_g_mean_mag": mag[keep], "phot_bp_mean_mag": colour[keep] + 5.0,
                       "phot_rp_mean_mag": np.full(keep.sum(), 5.0)})
    assert mu_dist(on, params, model.features.scales_) < 1e-6
    off = on.assign(phot_bp_mean_mag=on.phot_bp_mean_mag + 0.3)
    assert mu_dist(off, params, model.features.scales_) > 0.05


def test_quality_class_thresholds():
    rng = np.random.default_rng(0)
    ref = rng.normal(1.0, 0.1, 5000)
    cls = quality_class([0.5, 1.05, 1.15, 1.25, 1.35, np.nan], ref)
    assert cls.tolist() == [0, 0, 1, 2, 3, 3]
    with pytest.raises(ValueError, match="at least 10"):
        quality_class([1.0], [1.0, 2.0])


def test_calibration_widens_intervals_to_nominal_coverage(model):
    from ocnb.cmd_ann import calibrated_coverage, simulate_clusters

    assert set(model.meta["calibration"]["factors"]) == {"log_age", "feh", "a_v", "dist_mod"}
    test = simulate_clusters(300, seed=777, progress=False, mass_function=model.mass_function)  # SIMULATED, held out
    cov = calibrated_coverage(model, test)
    # Fitted on a different simulated set: close to 68 %, and never narrower than the raw interval.
    assert (cov["calibrated"] >= cov["raw"] - 1e-9).all()
    assert cov["calibrated"].between(0.55, 0.8).all(), cov
