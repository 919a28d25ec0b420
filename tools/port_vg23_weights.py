#!/usr/bin/env python
"""Convert the authors' released Deep Sets models (vG23 DS10_v01, DS10_v02) to ocnb's compact ``.npz``.

Usage::

    python tools/port_vg23_weights.py [--source ../shared/data/gaia_oc_amd] [--dest ocnb/data/models]

Reads, for each model, ``gaia_oc_amd/candidate_evaluation/pretrained_models/<name>/model_parameters`` (a
PyTorch ``state_dict``, read with :func:`ocnb.membership.pretrained.read_torch_state_dict`: zipfile + a
restricted unpickler, **no torch import**) and ``hyper_parameters`` (JSON), and writes
``<dest>/vg23_<name>.npz`` holding

* one float32 array per state-dict key (PyTorch layout, e.g. ``phi.0.Gamma.weight`` of shape (64, 13));
* ``source_feature_means``, ``source_feature_stds``, ``cluster_feature_means``, ``cluster_feature_stds``:
  the authors' normalisation constants exactly as stored (float64; their f_c/f_g sign, see spec A7);
* ``hyper_parameters``: the authors' JSON with sorted keys (train/validation cluster lists included);
* ``provenance``: origin repository@commit, source paths and their SHA-256, this script.

The output is byte-reproducible: zip entries in a fixed order with a fixed timestamp, deflate level 9.
After running it, update the two files' records in ``ocnb/data/registry.json`` (SHA-256, size).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from ocnb.membership.pretrained import ORIGIN, read_torch_state_dict, state_dict_keys  # noqa: E402

DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "gaia_oc_amd"
DEFAULT_DEST = REPO / "ocnb" / "data" / "models"
MODELS = ("DS10_v01", "DS10_v02")
MODEL_DIR = "gaia_oc_amd/candidate_evaluation/pretrained_models"
CONSTANTS = ("source_feature_means", "source_feature_stds", "cluster_feature_means", "cluster_feature_stds")
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamp: same inputs -> same bytes


def deterministic_npz(arrays: dict[str, np.ndarray]) -> bytes:
    """``np.savez_compressed``-compatible bytes, with fixed entry order and timestamps (no pickles)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, arr in arrays.items():
            arr = np.asarray(arr)
            if arr.dtype == object:
                raise TypeError(f"{name}: object arrays are not allowed")
            entry = io.BytesIO()
            # np.require, not np.ascontiguousarray: the latter turns a 0-d string into shape (1,)
            np.lib.format.write_array(entry, np.require(arr, requirements="C"), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, entry.getvalue(), compresslevel=9)
    return buf.getvalue()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def convert(model_dir: Path, name: str) -> bytes:
    """The ``.npz`` bytes of one model folder (``model_parameters`` + ``hyper_parameters``)."""
    params_path, hyper_path = model_dir / "model_parameters", model_dir / "hyper_parameters"
    state = read_torch_state_dict(params_path)
    keys = state_dict_keys()
    if list(state) != keys:
        raise ValueError(f"{params_path}: state-dict keys {list(state)} are not those of the D5 network {keys}")
    hyper = json.loads(hyper_path.read_text())
    arrays: dict[str, np.ndarray] = {k: np.asarray(state[k], dtype=np.float32) for k in keys}
    for key in CONSTANTS:
        arrays[key] = np.asarray(hyper[key], dtype=np.float64)
    arrays["hyper_parameters"] = np.array(json.dumps(hyper, sort_keys=True))
    provenance = {
        "model": name,
        "origin": ORIGIN,
        "licence": "MIT",
        "citation": "van Groeningen, Castro-Ginard, Brown, Casamiquela, Jordi 2023, A&A 675, A68",
        "files": {
            f"{MODEL_DIR}/{name}/model_parameters": _sha256(params_path),
            f"{MODEL_DIR}/{name}/hyper_parameters": _sha256(hyper_path),
        },
        "converter": "tools/port_vg23_weights.py (zip + restricted unpickler, no torch)",
        "layout": "float32 state-dict arrays in PyTorch layout (Linear weight = (out, in)); constants float64 "
                  "as stored by the authors (f_c, f_g sign = isochrone - star)",
    }
    arrays["provenance"] = np.array(json.dumps(provenance, sort_keys=True))
    return deterministic_npz(arrays)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                    help="the gaia_oc_amd folder of shared/data (default %(default)s)")
    ap.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="output folder (default %(default)s)")
    args = ap.parse_args(argv)
    base = args.source / MODEL_DIR
    if not base.is_dir():
        ap.error(f"{base} not found: --source must be the gaia_oc_amd folder of shared/data")
    args.dest.mkdir(parents=True, exist_ok=True)
    for name in MODELS:
        data = convert(base / name, name)
        out = args.dest / f"vg23_{name}.npz"
        out.write_bytes(data)
        print(f"{out}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
