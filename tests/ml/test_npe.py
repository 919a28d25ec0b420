"""ocnb.ml.npe: BayesFlow NPE on a parameter box (fit, compiled sampling, calibration, store round trip,
other backends, bad input).

The simulations are a TEST FIXTURE with a known answer (a noisy smooth map of two bounded
parameters), not the paper's simulator.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("bayesflow")

from ocnb import diagnostics, store  # noqa: E402
from ocnb.ml.npe import BoundedNPE, NPESettings  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BOUNDS = {"a": (0.0, 1.0), "b": (-2.0, 2.0)}
SMALL = NPESettings(depth=3, width=32, epochs=10, patience=4, batch_size=256, learning_rate=2e-3, seed=3)


def toy(n, seed):
    """TEST FIXTURE: a ~ Beta(1, 4) on [0, 1] (mass piled on an edge), b ~ U(-2, 2); x = (a, b, a·b) + noise."""
    rng = np.random.default_rng(seed)
    a = rng.beta(1, 4, n)
    b = rng.uniform(-2, 2, n)
    noise = rng.normal(size=(n, 3)) * [0.05, 0.2, 0.05]
    x = np.column_stack([a, b, a * b]) + noise
    return np.column_stack([a, b]), x


@pytest.fixture(scope="module")
def fitted():
    th, x = toy(12_000, 0)
    return BoundedNPE(["a", "b"], BOUNDS, ["x1", "x2", "x3"], SMALL).fit(th, x, progress=False)


def test_samples_stay_in_the_box_and_recover_the_truth(fitted):
    th, x = toy(300, 1)
    s = fitted.sample(x, n_samples=400, seed=0)
    assert s.shape == (300, 400, 2)
    assert np.all(s[..., 0] >= 0) and np.all(s[..., 0] <= 1) and np.all(np.abs(s[..., 1]) <= 2)
    # the noise is 0.05 on a and 0.2 on b: posterior medians must land that close (honest margins)
    err = np.median(s, axis=1) - th
    assert np.median(np.abs(err[:, 0])) < 0.05
    assert np.median(np.abs(err[:, 1])) < 0.2
    assert fitted.history_["epochs_run"] >= 1 and fitted.history_["best_epoch"] <= fitted.history_["epochs_run"]


def test_posteriors_are_calibrated_on_held_out_simulations(fitted):
    th, x = toy(500, 2)
    s = fitted.sample(x, n_samples=300, seed=1)
    cov = diagnostics.coverage(s, th, 16, 84, labels=["a", "b"])
    # 500 tests: binomial sd 2 points; a small fast fit is allowed ±10 points around 68 %
    assert np.all(np.abs(cov["coverage"].to_numpy(dtype=float) - 0.683) < 0.10), cov


def test_same_seed_same_samples_and_store_round_trip(fitted, tmp_path):
    _, x = toy(20, 3)
    a = fitted.sample(x, n_samples=50, seed=7)
    np.testing.assert_array_equal(a, fitted.sample(x, n_samples=50, seed=7))
    assert not np.allclose(a, fitted.sample(x, n_samples=50, seed=8))
    store.save_bundle(tmp_path / "npe", fitted.to_files(), kind="test-npe")
    again = BoundedNPE.from_files(store.load_bundle(tmp_path / "npe", kind="test-npe").files)
    np.testing.assert_allclose(again.sample(x, n_samples=50, seed=7), a, atol=1e-5)
    assert again.bounds == fitted.bounds and again.obs_names == fitted.obs_names


def test_rows_with_missing_observables_get_nan_samples(fitted):
    _, x = toy(5, 4)
    x[2, 1] = np.nan
    s = fitted.sample(x, n_samples=10)
    assert np.isnan(s[2]).all() and np.isfinite(np.delete(s, 2, axis=0)).all()


@pytest.mark.parametrize("case, match", [
    ("theta outside bounds", r"'a' = 1\.5 lies outside its bounds"),
    ("theta NaN", r"non-finite value.*'b'"),
    ("x NaN", r"non-finite value.*'x3'"),
    ("row mismatch", r"theta has 600 rows but x has 599"),
    ("missing column", r"lacks column\(s\) \['x3'\]"),
    ("too few", r"too few for batch_size"),
    ("constant", r"x column 'x1' is constant"),
])
def test_fit_bad_input_table(case, match):
    import pandas as pd

    th, x = toy(600, 5)
    est = BoundedNPE(["a", "b"], BOUNDS, ["x1", "x2", "x3"], NPESettings(batch_size=64, epochs=1))
    if case == "theta outside bounds":
        th[3, 0] = 1.5
    elif case == "theta NaN":
        th[4, 1] = np.nan
    elif case == "x NaN":
        x[0, 2] = np.nan
    elif case == "row mismatch":
        x = x[:-1]
    elif case == "missing column":
        x = pd.DataFrame(x[:, :2], columns=["x1", "x2"])
    elif case == "too few":
        th, x = th[:60], x[:60]
    elif case == "constant":
        x[:, 0] = 1.0
    with pytest.raises(ValueError, match=match):
        est.fit(th, x, progress=False)


@pytest.mark.parametrize("kwargs, match", [
    (dict(bounds={"a": (1.0, 0.0), "b": (0, 1)}), r"bounds of 'a' must be finite with low < high"),
    (dict(bounds={"a": (0.0, 1.0)}), r"no bounds for parameter 'b'"),
    (dict(obs_names=[]), r"at least one parameter and one observable"),
    (dict(obs_names=["x1", "x1"]), r"names must be unique"),
])
def test_constructor_bad_input_table(kwargs, match):
    args = dict(param_names=["a", "b"], bounds=BOUNDS, obs_names=["x1"]) | kwargs
    with pytest.raises(ValueError, match=match):
        BoundedNPE(**args)


def test_settings_and_unfitted_errors(fitted):
    with pytest.raises(ValueError, match=r"NPESettings.depth = 0"):
        NPESettings(depth=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        BoundedNPE(["a", "b"], BOUNDS, ["x1"]).sample(np.zeros((1, 1)))
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        fitted.sample(np.zeros((2, 2)))
    files = fitted.to_files()
    with pytest.raises(ValueError, match=r"npe_weights\.npz is missing"):
        BoundedNPE.from_files({"npe.json": files["npe.json"]})
    with pytest.raises(ValueError, match=r"npe\.json is not JSON"):
        BoundedNPE.from_files({**files, "npe.json": b"{"})


SCRIPT = textwrap.dedent("""
    import sys, numpy as np, keras
    assert keras.backend.backend() == sys.argv[1]
    from ocnb import store
    from ocnb.ml.npe import BoundedNPE
    est = BoundedNPE.from_files(store.load_bundle(sys.argv[2]).files)
    x = np.load(sys.argv[3])
    np.testing.assert_allclose(est.sample(x, n_samples=50, seed=7), np.load(sys.argv[4]), atol=1e-4)
    print("OK", keras.backend.backend())
""")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_model_saved_on_tensorflow_samples_the_same_on_another_backend(fitted, backend, tmp_path):
    pytest.importorskip(backend)
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the reference model is saved on the tensorflow backend")
    _, x = toy(10, 6)
    store.save_bundle(tmp_path / "npe", fitted.to_files(), kind="test-npe")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", fitted.sample(x, n_samples=50, seed=7))
    script = tmp_path / "check.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    res = subprocess.run([sys.executable, str(script), backend, str(tmp_path / "npe"), str(tmp_path / "x.npy"),
                          str(tmp_path / "expected.npy")], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr[-3000:]
