"""The authors' trained Deep Sets models (vG23 DS10_v01, DS10_v02), ported to NumPy arrays.

van Groeningen et al. (2023) released two trained models with their code (``MGJvanGroeningen/gaia_oc_amd``,
MIT): ``DS10_v01`` (the paper-era model, 128 training + 54 validation clusters, lr 1e-5, 100 epochs) and
``DS10_v02`` (the default of v0.2, 605 + 259 clusters, lr 1e-6, 200 epochs). Each is a PyTorch ``state_dict``
(a zip holding a pickle and one raw little-endian file per tensor) plus a JSON file of hyper-parameters and
the feature normalisation constants. ``tools/port_vg23_weights.py`` converts both, without PyTorch, into
``ocnb/data/models/vg23_DS10_v0{1,2}.npz`` (registered with their SHA-256 like every shipped file):

* one float32 array per state-dict entry, named by its key and kept in PyTorch's layout (a ``Linear``
  weight is ``(out, in)``);
* ``source_feature_means/_stds`` (5,), ``cluster_feature_means/_stds`` (3,): the authors' constants as stored
  (float64; their f_c, f_g sign is isochrone − star, spec A7);
* ``hyper_parameters`` (the authors' JSON, re-serialised with sorted keys: training and validation cluster
  names, epochs, learning rate...) and ``provenance`` (source files and their SHA-256), as 0-d strings.

The network they define (``D5`` with ``pool="mean"``; vG23 App. A, spec A9) is::

    phi.{0,2,4,6,8}  PermEqui2_mean: Gamma = Linear(in, 64), Lambda = Linear(in, 64, bias=False),
                     h -> Gamma(h) - Lambda(mean over the set of h)          (phi.{1,3,5,7,9} = ELU)
    mean over the set
    ro.0 Dropout(0.5), ro.1 Linear(64, 64), ro.2 ELU, ro.3 Dropout(0.5), ro.4 Linear(64, 2)

:func:`reference_forward` evaluates exactly that, in float64 NumPy, from the state dict: the independent
reference the Keras port (:meth:`ocnb.membership.DeepSetsMembership.pretrained`) is tested against.
:func:`keras_ordered_arrays` lays the same arrays out in the order of the Keras model's weights.

Nothing here imports Keras or PyTorch.
"""

from __future__ import annotations

import collections
import io
import json
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "PRETRAINED_FILES",
    "ORIGIN",
    "state_dict_keys",
    "read_torch_state_dict",
    "VG23Weights",
    "load_vg23_weights",
    "reference_forward",
    "keras_ordered_arrays",
]

#: Registered package-data file of each released model (``ocnb/data/...``).
PRETRAINED_FILES = {
    "DS10_v02": "models/vg23_DS10_v02.npz",
    "DS10_v01": "models/vg23_DS10_v01.npz",
}
#: Where the authors' files come from (repository@commit, licence MIT).
ORIGIN = "MGJvanGroeningen/gaia_oc_amd@aca165351e6d0e818e4ac99e1800a06d0722736b"

# torch storage class name -> NumPy dtype of its raw little-endian bytes
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


def state_dict_keys(n_blocks: int = 5) -> list[str]:
    """State-dict keys of the authors' ``D5`` network in forward order (vG23 App. A).

    ``phi`` is an ``nn.Sequential`` alternating permutation-equivariant layers (even indices) and ELUs
    (odd indices, no parameters); ``ro`` is Dropout, Linear, ELU, Dropout, Linear.
    """
    keys = []
    for b in range(n_blocks):
        keys += [f"phi.{2 * b}.Gamma.weight", f"phi.{2 * b}.Gamma.bias", f"phi.{2 * b}.Lambda.weight"]
    return keys + ["ro.1.weight", "ro.1.bias", "ro.4.weight", "ro.4.bias"]


# ---------------------------------------------------------------------------------------------
# Reading a PyTorch state dict without PyTorch
# ---------------------------------------------------------------------------------------------
class _StorageType:
    """Stands in for ``torch.FloatStorage`` & co. inside the pickle: only its dtype matters."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    """``torch._utils._rebuild_tensor_v2`` for NumPy: a strided view of the storage, copied."""
    size, stride, offset = tuple(int(s) for s in size), tuple(int(s) for s in stride), int(storage_offset)
    if len(size) != len(stride) or any(s < 0 for s in size) or any(s < 0 for s in stride) or offset < 0:
        raise pickle.UnpicklingError(f"tensor with size {size}, stride {stride}, offset {offset} is malformed")
    if 0 in size:
        return np.zeros(size, dtype=storage.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if last >= storage.size:  # never read past the storage (a corrupt or hostile file)
        raise pickle.UnpicklingError(f"tensor with size {size}, stride {stride}, offset {offset} reaches element "
                                     f"{last} of a storage of {storage.size}")
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size,
                                           strides=tuple(s * storage.itemsize for s in stride), writeable=False)
    return np.array(view, copy=True)


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a ``torch.save``-d state dict, allowing nothing but tensors and ordered dicts.

    Every global the pickle names must be one of ``collections.OrderedDict``,
    ``torch._utils._rebuild_tensor_v2`` or a ``torch.<Type>Storage``; anything else (which could run code)
    is refused. Storages are read from the zip's ``data/<key>`` files as little-endian arrays (big-endian
    when the archive says so).
    """

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, path: str):
        super().__init__(io.BytesIO(data))
        self._zip, self._prefix, self._path = archive, prefix, path
        order = f"{prefix}/byteorder"
        self._byteorder = "<"
        if order in archive.namelist() and archive.read(order).strip() == b"big":
            self._byteorder = ">"

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"{self._path}: refusing to load global {module}.{name} (only tensors in "
                                     "ordered dicts are read)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"{self._path}: unsupported persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        member = f"{self._prefix}/data/{key}"
        try:
            raw = self._zip.read(member)
        except KeyError:
            raise pickle.UnpicklingError(f"{self._path}: storage file {member} is missing") from None
        dtype = storage_type.dtype.newbyteorder(self._byteorder)
        if len(raw) != int(numel) * dtype.itemsize:
            raise pickle.UnpicklingError(f"{self._path}: storage {member} has {len(raw)} bytes, expected "
                                         f"{numel} x {dtype.itemsize}")
        return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))


def read_torch_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Read a PyTorch ``state_dict`` saved with ``torch.save`` (zip format) as NumPy arrays, without torch.

    Parameters
    ----------
    path : path
        The file written by ``torch.save(model.state_dict(), path)`` (PyTorch ≥ 1.6 zip format).

    Returns
    -------
    dict of str -> ndarray
        The tensors in file order, same dtype and shape (``Linear`` weights ``(out, in)``).

    Raises
    ------
    ValueError
        The file is not a zip with exactly one ``*/data.pkl``, its pickle names anything but tensors and
        ordered dicts, a storage file is missing or has the wrong size, or the result is not a mapping of
        tensors (the message names the file).
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{path} is not a PyTorch zip state dict ({err})") from None
    with archive:
        pkls = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise ValueError(f"{path}: expected one <folder>/data.pkl in the zip, found {pkls}")
        prefix = pkls[0].split("/")[0]
        try:
            obj = _StateDictUnpickler(archive.read(pkls[0]), archive, prefix, str(path)).load()
        except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, IndexError) as err:
            raise ValueError(f"{path}: cannot read the state dict ({err})") from None
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors (got {type(obj).__name__})")
    return {str(k): v for k, v in obj.items()}


# ---------------------------------------------------------------------------------------------
# The shipped, converted models
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VG23Weights:
    """One of the authors' released models, as shipped in ``ocnb/data/models``.

    Attributes
    ----------
    name : str
        ``"DS10_v02"`` or ``"DS10_v01"``.
    state : dict of str -> ndarray (float32)
        The PyTorch state dict (keys :func:`state_dict_keys`, PyTorch layouts).
    source_mean, source_std : ndarray (5,)
        Normalisation of ``[f_r pc, f_pm mas/yr, f_plx mas, f_c mag, f_g mag]`` **in the paper's sign
        convention** (f_c = C − C_iso, f_g = G − G_iso): the authors' stored means of f_c and f_g are
        negated, because their code stores isochrone − star (spec A7); the stds are unchanged.
    cluster_mean, cluster_std : ndarray (3,)
        Normalisation of ``[A_0 mag, log age, parallax mas]``.
    hyper_parameters : dict
        The authors' JSON (training/validation cluster names, epochs, lr, l2, batch size, ...).
    provenance : dict
        Source files, their SHA-256, the converter.
    """

    name: str
    state: dict = field(repr=False)
    source_mean: np.ndarray = field(repr=False)
    source_std: np.ndarray = field(repr=False)
    cluster_mean: np.ndarray = field(repr=False)
    cluster_std: np.ndarray = field(repr=False)
    hyper_parameters: dict = field(repr=False)
    provenance: dict = field(repr=False)

    @property
    def training_clusters(self) -> list[str]:
        return list(self.hyper_parameters.get("training_clusters", []))

    @property
    def validation_clusters(self) -> list[str]:
        return list(self.hyper_parameters.get("validation_clusters", []))

    @property
    def hidden(self) -> int:
        return int(self.state["ro.1.weight"].shape[0])

    @property
    def n_support(self) -> int:
        return int(self.hyper_parameters.get("size_support_set", 10))


def _unknown(name) -> ValueError:
    return ValueError(f"unknown pretrained vG23 model {name!r}; the shipped ones are {sorted(PRETRAINED_FILES)}")


def _json_entry(z: dict, key: str, file: str) -> dict:
    arr = np.asarray(z[key])
    try:
        if arr.size != 1 or arr.dtype.kind != "U":
            raise ValueError(f"a {arr.dtype} array of shape {arr.shape}")
        return json.loads(str(arr.reshape(()).item()))
    except ValueError as err:
        raise ValueError(f"ocnb data file {file}: {key} is not one JSON string ({err})") from None


def load_vg23_weights(name: str = "DS10_v02", data_dir=None) -> VG23Weights:
    """Load one of the authors' released models from the shipped package data (checksum-verified).

    Parameters
    ----------
    name : {"DS10_v02", "DS10_v01"}
    data_dir : path, optional
        Another copy of ``ocnb/data`` (tests).

    Raises
    ------
    ValueError
        Unknown ``name``, or a file that lacks an array the model needs.
    ocnb.errors.DataIntegrityError
        The shipped file is missing or fails its SHA-256 check.
    """
    from ..datasets._registry import read_npz

    if not isinstance(name, str) or name not in PRETRAINED_FILES:
        raise _unknown(name)
    file = PRETRAINED_FILES[name]
    z = read_npz(file, data_dir=data_dir)
    keys = state_dict_keys()
    needed = keys + ["source_feature_means", "source_feature_stds", "cluster_feature_means",
                     "cluster_feature_stds", "hyper_parameters", "provenance"]
    missing = [k for k in needed if k not in z]
    if missing:
        raise ValueError(f"ocnb data file {file} lacks {missing}; rerun tools/port_vg23_weights.py")
    source_mean = np.asarray(z["source_feature_means"], dtype=np.float64).copy()
    source_mean[3:5] *= -1.0  # authors' f_c, f_g = isochrone - star; ocnb uses the paper's star - isochrone
    return VG23Weights(
        name=name,
        state={k: np.asarray(z[k], dtype=np.float32) for k in keys},
        source_mean=source_mean,
        source_std=np.asarray(z["source_feature_stds"], dtype=np.float64),
        cluster_mean=np.asarray(z["cluster_feature_means"], dtype=np.float64),
        cluster_std=np.asarray(z["cluster_feature_stds"], dtype=np.float64),
        hyper_parameters=_json_entry(z, "hyper_parameters", file),
        provenance=_json_entry(z, "provenance", file),
    )


# ---------------------------------------------------------------------------------------------
# The reference forward pass and the Keras layout
# ---------------------------------------------------------------------------------------------
def _elu(x: np.ndarray) -> np.ndarray:
    # torch.nn.ELU(alpha=1): x for x > 0, exp(x) - 1 otherwise (expm1 for accuracy near 0)
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))


def _linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    # torch.nn.Linear: y = x W^T + b, W of shape (out, in)
    y = x @ weight.T
    return y if bias is None else y + bias


def reference_forward(state: dict, X) -> np.ndarray:
    """Logits of the authors' PyTorch ``D5`` network, evaluated in float64 NumPy (inference mode).

    Written from the PyTorch module structure (``phi`` of permutation-equivariant mean layers and ELUs,
    mean pooling over the set, ``ro`` head; dropout is the identity at inference), not from the Keras
    model, so that it is an independent check of the port.

    Parameters
    ----------
    state : dict of str -> ndarray
        A state dict with the keys of :func:`state_dict_keys` (any number of ``phi`` blocks).
    X : array (B, N_s, n_in)
        Normalised inputs (vG23 Sect. 3.2: N_s = 10 rows of 13 values).

    Returns
    -------
    ndarray (B, 2)
        Logits ``[non-member, member]`` (softmax gives the probabilities).
    """
    h = np.asarray(X, dtype=np.float64)
    if h.ndim != 3:
        raise ValueError(f"X must have shape (batch, set size, features), got {h.shape}")
    w = {k: np.asarray(v, dtype=np.float64) for k, v in state.items()}
    b = 0
    while f"phi.{2 * b}.Gamma.weight" in w:
        p = f"phi.{2 * b}"
        gamma = _linear(h, w[f"{p}.Gamma.weight"], w[f"{p}.Gamma.bias"])
        lam = _linear(h.mean(axis=1, keepdims=True), w[f"{p}.Lambda.weight"])
        h = _elu(gamma - lam)
        b += 1
    if b == 0:
        raise ValueError("state has no phi.0.Gamma.weight: not a Deep Sets D5 state dict")
    z = h.mean(axis=1)
    z = _elu(_linear(z, w["ro.1.weight"], w["ro.1.bias"]))
    return _linear(z, w["ro.4.weight"], w["ro.4.bias"])


def keras_ordered_arrays(state: dict, n_blocks: int = 5) -> list[np.ndarray]:
    """The state dict as the weight list of ocnb's Keras model (``model.weights`` order), float32.

    Per block ``k``: Γ kernel ``(in, out)`` (= the transposed ``phi.{2k}.Gamma.weight``), Γ bias, Λ kernel;
    then the head's hidden kernel and bias (``ro.1``) and the logit kernel and bias (``ro.4``).
    """
    missing = [k for k in state_dict_keys(n_blocks) if k not in state]
    if missing:
        raise ValueError(f"state dict lacks {missing} (expected {n_blocks} permutation-equivariant blocks)")
    out = []
    for b in range(n_blocks):
        p = f"phi.{2 * b}"
        out += [state[f"{p}.Gamma.weight"].T, state[f"{p}.Gamma.bias"], state[f"{p}.Lambda.weight"].T]
    out += [state["ro.1.weight"].T, state["ro.1.bias"], state["ro.4.weight"].T, state["ro.4.bias"]]
    return [np.ascontiguousarray(a, dtype=np.float32) for a in out]
