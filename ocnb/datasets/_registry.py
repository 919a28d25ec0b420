"""The shipped package data (``ocnb/data``): registry, checksums, readers.

Every file that ocnb ships is listed in ``ocnb/data/registry.json`` with its
SHA-256 (written by ``tools/curate_data.py``). All readers here hash the bytes
they read and raise :class:`~ocnb.errors.DataIntegrityError` naming the file
when the hash differs, so a corrupted or edited file is never used silently.

The data folder is ``ocnb/data`` next to this package unless the environment
variable ``OCNB_PACKAGE_DATA`` (or a ``data_dir`` argument) points elsewhere,
e.g. to a copy used in tests.
"""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataIntegrityError

__all__ = [
    "ENV_VAR",
    "package_data_dir",
    "registry",
    "data_path",
    "read_bytes",
    "read_parquet",
    "read_npz",
    "list_datasets",
    "provenance",
    "verify",
]

ENV_VAR = "OCNB_PACKAGE_DATA"
_DEFAULT = Path(__file__).resolve().parents[1] / "data"


def package_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Folder of the shipped data: ``data_dir``, ``$OCNB_PACKAGE_DATA`` or ``ocnb/data``."""
    if data_dir is not None:
        return Path(data_dir).expanduser().resolve()
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser().resolve() if env else _DEFAULT


def _root(data_dir) -> str:
    return str(package_data_dir(data_dir))


@functools.lru_cache(maxsize=8)
def _load_registry(root: str, stamp: tuple) -> dict:
    path = Path(root) / "registry.json"
    try:
        reg = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataIntegrityError(
            f"ocnb package data registry {path} is missing; reinstall ocnb or rerun tools/curate_data.py"
        ) from None
    except ValueError as err:
        raise DataIntegrityError(f"ocnb package data registry {path} is not valid JSON ({err})") from None
    reg["_by_file"] = {rec["file"]: rec for rec in reg["files"]}
    return reg


def _stamp(path: Path) -> tuple:
    try:
        st = path.stat()
    except FileNotFoundError:
        return (None, None)
    return (st.st_mtime_ns, st.st_size)


def registry(data_dir=None) -> dict:
    """The parsed ``registry.json`` (datasets and per-file records)."""
    root = _root(data_dir)
    reg = _load_registry(root, _stamp(Path(root) / "registry.json"))
    return copy.deepcopy({k: v for k, v in reg.items() if k != "_by_file"})


def _reg(root: str) -> dict:
    return _load_registry(root, _stamp(Path(root) / "registry.json"))


def _record(file: str, root: str) -> dict:
    reg = _reg(root)
    try:
        return reg["_by_file"][file]
    except KeyError:
        close = difflib.get_close_matches(file, list(reg["_by_file"]), n=3)
        hint = f"; did you mean {close}?" if close else ""
        raise KeyError(f"{file!r} is not a registered ocnb data file{hint}") from None


def _verified_bytes(file: str, root: str) -> bytes:
    rec = _record(file, root)
    path = Path(root) / file
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataIntegrityError(f"ocnb data file {file} is missing from {root}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != rec["sha256"]:
        raise DataIntegrityError(
            f"ocnb data file {file} is corrupted: sha256 {digest[:16]}... does not match the registered "
            f"{rec['sha256'][:16]}... ({len(data)} bytes, expected {rec['bytes']}); reinstall ocnb or rerun "
            "tools/curate_data.py"
        )
    return data


def read_bytes(file: str, data_dir=None) -> bytes:
    """Bytes of a registered data file, checked against its SHA-256.

    Raises
    ------
    DataIntegrityError
        The file is missing or its checksum differs (the message names it).
    KeyError
        ``file`` is not in the registry.
    """
    return _verified_bytes(file, _root(data_dir))


def data_path(file: str, data_dir=None) -> Path:
    """Path of a registered data file after checking its SHA-256 (for readers that need a path)."""
    root = _root(data_dir)
    _verified_bytes(file, root)
    return Path(root) / file


@functools.lru_cache(maxsize=64)
def _cached_frame(root: str, file: str, stamp: tuple) -> pd.DataFrame:
    # The stamp (mtime, size) is part of the key so that a file replaced after
    # it was first read is read and verified again.
    return pd.read_parquet(io.BytesIO(_verified_bytes(file, root)))


def read_parquet(file: str, data_dir=None) -> pd.DataFrame:
    """A registered Parquet file as a DataFrame (verified; cached, a copy is returned)."""
    root = _root(data_dir)
    df = _cached_frame(root, file, _stamp(Path(root) / file)).copy()
    df.attrs = {}
    return df


@functools.lru_cache(maxsize=32)
def _cached_npz(root: str, file: str, stamp: tuple) -> dict:
    with np.load(io.BytesIO(_verified_bytes(file, root)), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def read_npz(file: str, data_dir=None) -> dict:
    """A registered ``.npz`` file as a dict of arrays (verified; copies returned)."""
    root = _root(data_dir)
    return {k: v.copy() for k, v in _cached_npz(root, file, _stamp(Path(root) / file)).items()}


def _dataset_name(name: str, reg: dict) -> str:
    want = re.sub(r"[\s\-]+", "_", str(name).strip()).upper()
    if want in reg["datasets"]:
        return want
    for rec in reg["files"]:  # a file name is accepted too
        if rec["file"] == name or Path(rec["file"]).name == name:
            return rec["dataset"]
    close = difflib.get_close_matches(want, list(reg["datasets"]), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise KeyError(f"unknown dataset {name!r}{hint} (see ocnb.datasets.list_datasets())")


def list_datasets(data_dir=None) -> pd.DataFrame:
    """One row per shipped file.

    Returns
    -------
    DataFrame
        ``name`` (dataset), ``kind`` (catalog, members, field, spectra, grid,
        table, linelist, model), ``file`` (relative to the data folder), ``rows``
        (None for arrays/text), ``bytes``, ``sha256``, ``citation``,
        ``origin`` (repo@commit) and ``licence``.
    """
    reg = _reg(_root(data_dir))
    rows = [
        dict(
            name=r["dataset"],
            kind=r["kind"],
            file=r["file"],
            rows=r["rows"],
            bytes=r["bytes"],
            sha256=r["sha256"],
            citation=r["citation"],
            origin=r["origin"],
            licence=r["licence"],
        )
        for r in reg["files"]
    ]
    df = pd.DataFrame(rows)
    df["rows"] = df["rows"].astype("Int64")
    return df


def provenance(name: str, data_dir=None) -> str:
    """Provenance text of one dataset (origin, licence, citation, kept/dropped, units).

    ``name`` is a dataset name from :func:`list_datasets` (case-insensitive,
    e.g. ``"hunt2023"``) or one of its file names.
    """
    root = _root(data_dir)
    reg = _reg(root)
    ds = _dataset_name(name, reg)
    text = (Path(root) / "PROVENANCE.md").read_bytes()
    if hashlib.sha256(text).hexdigest() != reg.get("provenance_sha256"):
        raise DataIntegrityError(
            f"ocnb data file PROVENANCE.md in {root} does not match its registered sha256"
        )
    body = text.decode("utf-8")
    match = re.search(rf"^## {re.escape(ds)}\n(.*?)(?=^## |\Z)", body, flags=re.S | re.M)
    if not match:  # pragma: no cover - the generator writes every section
        raise KeyError(f"no provenance section for {ds}")
    return f"## {ds}\n{match.group(1)}".rstrip() + "\n"


def verify(data_dir=None) -> None:
    """Check the SHA-256 of every shipped file (and of PROVENANCE.md).

    Raises
    ------
    DataIntegrityError
        Naming the first missing or corrupted file.
    """
    root = _root(data_dir)
    reg = _reg(root)
    for rec in reg["files"]:
        _verified_bytes(rec["file"], root)
    prov = Path(root) / "PROVENANCE.md"
    if not prov.exists() or hashlib.sha256(prov.read_bytes()).hexdigest() != reg.get("provenance_sha256"):
        raise DataIntegrityError(f"ocnb data file PROVENANCE.md in {root} is missing or corrupted")
