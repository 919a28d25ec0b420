"""ocnb.ml on the jax and torch Keras backends: fit, predict, same seed -> same model, and
loading an ensemble saved by the tensorflow backend (each backend runs in its own process,
because Keras fixes its backend at import; the process selects it with ``ocnb.config.set_keras_backend``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from ocnb.ml import ANNEnsemble  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BOUNDS = {"a": (0.0, 1.0), "b": (-1.0, 1.0)}

SCRIPT = textwrap.dedent("""
    import sys, numpy as np
    import ocnb.config
    ocnb.config.set_keras_backend(sys.argv[1])            # overrides the KERAS_BACKEND=tensorflow it inherits
    import keras
    assert keras.backend.backend() == sys.argv[1], keras.backend.backend()
    from ocnb.ml import ANNEnsemble, extract_member
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 12))
    y = np.column_stack([1 / (1 + np.exp(-X[:, 0])), np.tanh(X[:, 1])])
    kw = dict(labels=["a", "b"], label_bounds={"a": (0.0, 1.0), "b": (-1.0, 1.0)}, n_members=2,
              subset_size=100, hidden=(16, 16), epochs=2, patience=2, batch_size=32, seed=4)
    est = ANNEnsemble(**kw).fit(X, y, progress=False)
    pred = est.predict(X[:7])
    assert pred.members.shape == (7, 2, 2) and np.isfinite(pred.members).all()
    single = extract_member(est.model_, 1)
    np.testing.assert_allclose(np.asarray(single.predict_on_batch(X[:7].astype('float32'))),
                               est.predict_scaled(X[:7])[:, 1], atol=1e-5)
    again = ANNEnsemble(**kw).fit(X, y, progress=False)   # same seed -> same model
    for a, b in zip(est.model_.weights, again.model_.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    other = ANNEnsemble.load(sys.argv[2])                 # saved by the tensorflow backend
    np.testing.assert_allclose(other.predict(X[:7]).members, np.load(sys.argv[3]), rtol=1e-5, atol=1e-5)
    print("OK", keras.backend.backend())
""")


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_other_backends_fit_predict_reproduce_and_load(backend, tmp_path):
    pytest.importorskip(backend)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 12))
    y = np.column_stack([1 / (1 + np.exp(-X[:, 0])), np.tanh(X[:, 1])])
    est = ANNEnsemble(["a", "b"], BOUNDS, n_members=2, subset_size=100, hidden=(16, 16), epochs=1, patience=1,
                      batch_size=32).fit(X, y, progress=False)
    saved = est.save(tmp_path / "tf_model")
    np.save(tmp_path / "expected.npy", est.predict(X[:7]).members)
    script = tmp_path / "backend_check.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": "",
           "OCNB_DATA_DIR": str(tmp_path / "home"), "OCNB_PROGRESS": "0"}
    out = subprocess.run([sys.executable, str(script), backend, str(saved), str(tmp_path / "expected.npy")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"OK {backend}" in out.stdout
