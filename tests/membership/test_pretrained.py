"""ocnb.membership.pretrained: the authors' DS10_v01/v02 weights, read without torch, ported to Keras.

The port test (issue 15, deliverable 4): on the same seeded random normalised inputs, ocnb's Keras model
loaded with :meth:`DeepSetsMembership.pretrained` gives the logits of an independent NumPy re-implementation
of the authors' PyTorch forward pass to 1e-5. When torch is importable, the zip/pickle reader is checked
against ``torch.load`` and the NumPy reference against a ``torch.nn.functional`` forward pass.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ocnb.errors import DataIntegrityError
from ocnb.membership.pretrained import (
    PRETRAINED_FILES,
    keras_ordered_arrays,
    load_vg23_weights,
    read_torch_state_dict,
    reference_forward,
    state_dict_keys,
)

REPO = Path(__file__).resolve().parents[2]
MODELS_SRC = REPO.parent / "shared" / "data" / "gaia_oc_amd" / "gaia_oc_amd" / "candidate_evaluation" / \
    "pretrained_models"
NAMES = ["DS10_v02", "DS10_v01"]
needs_source = pytest.mark.skipif(not MODELS_SRC.is_dir(), reason="../shared/data/gaia_oc_amd not available")

# spec A7: the authors' stored constants (their f_c, f_g sign)
SPEC_A7 = {
    "DS10_v02": ([32.4928, 1.08035, -0.184614, 0.0352830, -0.312854], [12.3802, 0.528625, 0.309854, 0.131103, 0.884774],
                 [1.18332, 8.27883, 0.937575], [0.880412, 0.721294, 0.934754], 605, 259),
    "DS10_v01": ([31.3706, 1.13453, -0.167107, 0.0769116, -0.0743317], [13.0831, 0.567006, 0.300595, 0.187332,
                                                                         0.199013],
                 [0.969945, 8.46791, 1.00902], [0.830235, 0.769769, 0.891149], 128, 54),
}


def _inputs(n=256, seed=0):
    """Seeded normalised inputs (B, 10, 13), float32, roughly the scale of z-scored features."""
    return np.random.default_rng(seed).normal(0.0, 1.0, size=(n, 10, 13)).astype(np.float32)


@pytest.fixture(scope="module", params=NAMES)
def ported(request):
    from ocnb.membership.model import DeepSetsMembership

    return request.param, DeepSetsMembership.pretrained(request.param), load_vg23_weights(request.param)


# ---------------------------------------------------------------------------------------------
# The port
# ---------------------------------------------------------------------------------------------
def test_keras_port_equals_numpy_reference_of_the_pytorch_network(ported):
    name, model, weights = ported
    X = _inputs()
    keras_logits = model.predict_logits(X)
    ref = reference_forward(weights.state, X)
    assert keras_logits.shape == (256, 2) and keras_logits.dtype == np.float32
    np.testing.assert_allclose(keras_logits, ref, rtol=1e-5, atol=1e-5, err_msg=name)
    # not a trivial agreement: the logits spread over several units and both classes are predicted
    assert np.ptp(ref[:, 1] - ref[:, 0]) > 5
    assert 0 < np.mean(ref[:, 1] > ref[:, 0]) < 1
    # dropout is off at inference: a second pass is identical
    np.testing.assert_array_equal(model.predict_logits(X[:16]), keras_logits[:16])


def test_ported_model_is_permutation_invariant_in_the_support_set(ported):
    _, model, _ = ported
    X = _inputs(64, seed=3)
    perm = np.random.default_rng(4).permutation(10)
    np.testing.assert_allclose(model.predict_logits(X[:, perm]), model.predict_logits(X), rtol=1e-5, atol=1e-5)


def test_pretrained_scaler_negates_the_authors_fc_fg_means(ported):
    """Spec A7: the authors store f_c, f_g as isochrone − star; ocnb uses star − isochrone."""
    name, model, weights = ported
    src_mean, src_std, cl_mean, cl_std, n_train, n_val = SPEC_A7[name]
    expect_mean = np.array(src_mean) * [1, 1, 1, -1, -1]
    np.testing.assert_allclose(model.scaler_.source_mean, expect_mean, rtol=1e-5)
    np.testing.assert_allclose(model.scaler_.source_std, src_std, rtol=1e-5)
    np.testing.assert_allclose(model.scaler_.cluster_mean, cl_mean, rtol=1e-5)
    np.testing.assert_allclose(model.scaler_.cluster_std, cl_std, rtol=1e-5)
    assert len(model.clusters_["train"]) == n_train and len(model.clusters_["validation"]) == n_val
    assert model.label == f"pretrained vG23 {name}" and "gaia_oc_amd@aca1653" in model.origin_
    hp = weights.hyper_parameters
    assert model.n_support == hp["size_support_set"] == 10 and model.hidden == hp["hidden_size"] == 64
    assert model.l2 == pytest.approx(hp["l2"] / 2) and model.learning_rate == hp["lr"]
    assert model.class_weight == (1.0, 5.0) and model.n_params == 39042


def test_blanco1_is_a_training_cluster_of_ds10_v02_only():
    """Recorded because the notebook scores the pretrained models on Blanco 1: v02 has seen it."""
    assert "Blanco_1" in load_vg23_weights("DS10_v02").training_clusters
    v01 = load_vg23_weights("DS10_v01")
    assert "Blanco_1" not in v01.training_clusters + v01.validation_clusters


# ---------------------------------------------------------------------------------------------
# Reading the PyTorch file without torch, and the converter
# ---------------------------------------------------------------------------------------------
@needs_source
@pytest.mark.parametrize("name", NAMES)
def test_reader_matches_torch_load(name):
    torch = pytest.importorskip("torch", reason="torch is not installed (the 'backends' extra); the zip/pickle "
                                                "reader is still checked against the shipped npz")
    path = MODELS_SRC / name / "model_parameters"
    ours = read_torch_state_dict(path)
    theirs = torch.load(path, map_location="cpu", weights_only=True)
    assert list(ours) == list(theirs) == state_dict_keys()
    for key, tensor in theirs.items():
        ref = tensor.detach().numpy()
        assert ours[key].dtype == ref.dtype and ours[key].shape == ref.shape, key
        np.testing.assert_array_equal(ours[key], ref, err_msg=key)


@needs_source
@pytest.mark.parametrize("name", NAMES)
def test_numpy_reference_matches_a_torch_forward_pass(name):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    F = torch.nn.functional
    sd = torch.load(MODELS_SRC / name / "model_parameters", map_location="cpu", weights_only=True)
    X = _inputs(128, seed=7)
    with torch.no_grad():
        h = torch.from_numpy(X).double()
        for b in range(5):
            p = f"phi.{2 * b}"
            h = F.elu(F.linear(h, sd[f"{p}.Gamma.weight"].double(), sd[f"{p}.Gamma.bias"].double())
                      - F.linear(h.mean(1, keepdim=True), sd[f"{p}.Lambda.weight"].double()))
        z = F.elu(F.linear(h.mean(1), sd["ro.1.weight"].double(), sd["ro.1.bias"].double()))
        logits = F.linear(z, sd["ro.4.weight"].double(), sd["ro.4.bias"].double()).numpy()
    np.testing.assert_allclose(reference_forward(read_torch_state_dict(MODELS_SRC / name / "model_parameters"), X),
                               logits, rtol=1e-10, atol=1e-10)


def _load_tool():
    spec = importlib.util.spec_from_file_location("port_vg23_weights", REPO / "tools" / "port_vg23_weights.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@needs_source
@pytest.mark.parametrize("name", NAMES)
def test_converter_reproduces_the_shipped_npz_and_registry(name):
    tool = _load_tool()
    data = tool.convert(MODELS_SRC / name, name)
    shipped = (REPO / "ocnb" / "data" / PRETRAINED_FILES[name]).read_bytes()
    assert data == shipped  # byte-reproducible (fixed zip order and timestamps)
    reg = json.loads((REPO / "ocnb" / "data" / "registry.json").read_text())
    rec = {r["file"]: r for r in reg["files"]}[PRETRAINED_FILES[name]]
    assert rec["sha256"] == hashlib.sha256(shipped).hexdigest() and rec["bytes"] == len(shipped)
    assert rec["dataset"] == "VG23_DS10" and rec["origin"].startswith("MGJvanGroeningen/gaia_oc_amd@")
    with np.load(io.BytesIO(shipped), allow_pickle=False) as z:
        assert all(z[k].dtype == np.float32 for k in state_dict_keys())
        prov = json.loads(str(z["provenance"]))
    src = MODELS_SRC / name / "model_parameters"
    assert hashlib.sha256(src.read_bytes()).hexdigest() in prov["files"].values()
    assert len(shipped) < 200_000  # compact: ~39k float32 + JSON


def test_shipped_arrays_have_the_d5_shapes():
    w = load_vg23_weights("DS10_v02")
    shapes = {k: v.shape for k, v in w.state.items()}
    assert shapes["phi.0.Gamma.weight"] == (64, 13) and shapes["phi.0.Lambda.weight"] == (64, 13)
    assert shapes["phi.8.Gamma.weight"] == (64, 64) and shapes["ro.4.weight"] == (2, 64)
    assert "phi.0.Lambda.bias" not in shapes  # Λ has no bias
    assert sum(int(np.prod(s)) for s in shapes.values()) == 39042
    arrays = keras_ordered_arrays(w.state)
    assert [a.shape for a in arrays[:3]] == [(13, 64), (64,), (13, 64)] and arrays[-2].shape == (64, 2)


def _hostile_pickle() -> bytes:
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    return pickle.dumps({"x": Evil()}, protocol=2)


def _zip(tmp_path, files: dict[str, bytes]) -> Path:
    path = tmp_path / "model_parameters"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _real_entries() -> dict[str, bytes]:
    with zipfile.ZipFile(MODELS_SRC / "DS10_v02" / "model_parameters") as zf:
        return {n: zf.read(n) for n in zf.namelist()}


@pytest.mark.parametrize("case, match", [
    ("not_a_zip", "not a PyTorch zip state dict"),
    ("no_data_pkl", r"expected one <folder>/data\.pkl"),
    ("hostile_global", r"refusing to load global (posix|nt)\.system"),
    ("short_storage", r"storage model_parameters/data/0 has 3327 bytes"),
    ("missing_storage", r"storage file model_parameters/data/5 is missing"),
])
def test_reader_refuses_bad_files(tmp_path, case, match):
    if case in ("short_storage", "missing_storage") and not MODELS_SRC.is_dir():
        pytest.skip("../shared/data/gaia_oc_amd not available")
    if case == "not_a_zip":
        path = tmp_path / "model_parameters"
        path.write_bytes(b"PK but not really a zip")
    elif case == "no_data_pkl":
        path = _zip(tmp_path, {"archive/version": b"3\n"})
    elif case == "hostile_global":
        path = _zip(tmp_path, {"archive/data.pkl": _hostile_pickle(), "archive/version": b"3\n"})
    else:
        entries = _real_entries()
        if case == "short_storage":
            entries["model_parameters/data/0"] = entries["model_parameters/data/0"][:-1]
        else:
            del entries["model_parameters/data/5"]
        path = _zip(tmp_path, entries)
    with pytest.raises(ValueError, match=match):
        read_torch_state_dict(path)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["DS10_v03", "ds10_v02", "", None, 2])
def test_unknown_pretrained_name(name):
    from ocnb.membership.model import DeepSetsMembership

    with pytest.raises(ValueError, match=r"unknown pretrained vG23 model .*\['DS10_v01', 'DS10_v02'\]"):
        DeepSetsMembership.pretrained(name)


def test_corrupted_shipped_weights_are_refused(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(REPO / "ocnb" / "data", data)
    f = data / PRETRAINED_FILES["DS10_v02"]
    raw = bytearray(f.read_bytes())
    raw[5000] ^= 0x01
    f.write_bytes(bytes(raw))
    with pytest.raises(DataIntegrityError, match=r"models/vg23_DS10_v02\.npz is corrupted"):
        load_vg23_weights("DS10_v02", data_dir=data)
    assert load_vg23_weights("DS10_v01", data_dir=data).name == "DS10_v01"  # the other file is fine


@pytest.mark.parametrize("call, match", [
    (lambda: reference_forward(load_vg23_weights().state, np.zeros((4, 13))), r"shape \(batch, set size"),
    (lambda: reference_forward({"ro.1.weight": np.zeros((2, 2))}, np.zeros((1, 10, 13))), "no phi.0.Gamma.weight"),
    (lambda: keras_ordered_arrays({k: v for k, v in load_vg23_weights().state.items() if k != "ro.4.bias"}),
     r"lacks \['ro\.4\.bias'\]"),
])
def test_reference_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_importing_pretrained_imports_neither_keras_nor_torch():
    code = ("import sys, ocnb.membership.pretrained as p; p.load_vg23_weights('DS10_v01'); "
            "bad = {'keras', 'torch', 'tensorflow'} & set(sys.modules); assert not bad, bad; print('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


BACKEND_SCRIPT = """
import sys, numpy as np, keras
assert keras.backend.backend() == sys.argv[1], keras.backend.backend()
from ocnb.membership.model import DeepSetsMembership
from ocnb.membership.pretrained import load_vg23_weights, reference_forward
X = np.random.default_rng(0).normal(size=(64, 10, 13)).astype(np.float32)
logits = DeepSetsMembership.pretrained("DS10_v02").predict_logits(X)
np.testing.assert_allclose(logits, reference_forward(load_vg23_weights("DS10_v02").state, X), rtol=1e-5, atol=1e-5)
y = (X[:, 0, 0] > 0).astype(int)
est = DeepSetsMembership(learning_rate=1e-3, epochs=1, seed=3).fit_arrays(X, y, X, y, progress=False)
assert est.history["epochs_run"] == 1 and np.isfinite(est.history["loss"][0])
print("OK", keras.backend.backend())
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_port_and_training_on_other_keras_backends(backend, tmp_path):
    """Backend-agnostic (keras.ops only): the port holds and a fit runs on jax and torch too."""
    pytest.importorskip(backend)
    script = tmp_path / "backend_check.py"
    script.write_text(BACKEND_SCRIPT)
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "",
           "OCNB_PROGRESS": "0"}
    res = subprocess.run([sys.executable, str(script), backend], capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=600)
    assert res.returncode == 0 and f"OK {backend}" in res.stdout, res.stderr[-3000:]
