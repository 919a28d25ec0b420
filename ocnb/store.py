"""The one model store of ocnb: versioned, checksummed, crash-safe folders of trained models.

Every paper module saves its trained models through this module (the Cavallo et al. 2024
ANN ensemble and its :class:`~ocnb.cmd_ann.inference.CavalloModel` bundle today), so a model is
never half-written, never a mix of two saves, and always checked before use.

Layout of one model (``data_home()/models/<namespace>/<name>/``, or any folder given to
:func:`save_bundle`)::

    <folder>/
        CURRENT                  {"version": "v0002-3f9c1a2b", "manifest_sha256": "..."}
        v0002-3f9c1a2b/          one complete, immutable version of the model
            manifest.json        written last: kind, kind_version, meta, size + sha256 of every file
            features.json
            ensemble/weights.npz
            ...

Saving (:func:`save_bundle`) never touches the version in use:

1. every file is written and fsynced into a private temporary folder ``.tmp-<pid>-<hex>``,
   the manifest last;
2. the temporary folder is renamed into place, as a whole, as the next version ``vNNNN-<hex>``;
3. ``CURRENT`` is replaced atomically (temporary file, fsync, ``os.replace``) to name it, with
   the manifest's own SHA-256;
4. superseded versions and the leftovers of killed writers are deleted.

A crash (even SIGKILL) at any point therefore leaves ``CURRENT`` naming either the complete
old version or the complete new one; the kill test of ``tests/test_store.py`` checks every step.

Loading (:func:`load_bundle`) reads ``CURRENT``, checks the manifest against the SHA-256 recorded
there and against the version's name, then reads every listed file *once*, checking its size and
SHA-256; the returned :class:`Bundle` holds those verified bytes, so a file changed after the
check is never used. Anything else raises:

* :class:`BundleNotFoundError` (a ``FileNotFoundError``): no complete model was ever saved here
  (nothing to report: build it);
* :class:`BundleError` (a :class:`~ocnb.cache.CorruptCacheError`) whose ``state`` is ``"partial"``
  (a file or the manifest is missing, empty or truncated), ``"mixed"`` (a file or a manifest
  belongs to another save), ``"corrupt"`` (unreadable) or ``"outdated"`` (another kind or format
  version). The message names the folder and the file. :func:`load_or_build` reports it with a
  ``RuntimeWarning``, deletes the folder and rebuilds: such a bundle is never used.

**Read compatibility.** Folders written before this store existed (``bundle.json`` +
``bundle.json.sha256``, an ensemble folder with ``manifest.json`` + ``manifest.json.sha256``)
still load: every file must be covered by its old checksum record (a ``X.sha256`` sidecar or an
old ``manifest.json``), and the returned bundle has ``legacy=True``. The old layout had no record
tying its files together, so the paper module that reads it checks what consistency it can.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from .cache import CorruptCacheError, atomic_write_bytes, sha256_bytes
from .config import data_home, ensure_folder

__all__ = [
    "STORE_FORMAT",
    "Bundle",
    "BundleError",
    "BundleNotFoundError",
    "ModelStore",
    "save_bundle",
    "load_bundle",
    "load_or_build",
    "discard_bundle",
    "bundle_exists",
]

#: Format of the manifest written by :func:`save_bundle`.
STORE_FORMAT = "ocnb.store/1"

_CURRENT = "CURRENT"
_MANIFEST = "manifest.json"
_VERSION_RE = re.compile(r"^v(\d{4,})-([0-9a-f]{8})$")
_TMP_RE = re.compile(r"^\.tmp-(\d+)-[0-9a-f]{8}$")
_PART_RE = re.compile(r"^[A-Za-z0-9_.=+-]+$")
_STATES = ("partial", "mixed", "corrupt", "outdated")

T = TypeVar("T")

# Test hook: called as ``_after_step(label)`` after every write step of :func:`save_bundle`
# (the kill test sets it in a subprocess to SIGKILL itself after step k). None in normal use.
_after_step: Callable[[str], None] | None = None


class BundleError(CorruptCacheError):
    """A saved model that must not be used.

    Attributes
    ----------
    path : Path
        The bundle folder.
    state : {"partial", "mixed", "corrupt", "outdated"}
        Why: missing/empty/truncated file or manifest; a file or manifest from another save;
        unreadable content; another kind or format version.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None, state: str = "corrupt"):
        if state not in _STATES:
            raise ValueError(f"state must be one of {_STATES}, not {state!r}")
        super().__init__(message)
        self.path = None if path is None else Path(path)
        self.state = state

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class BundleNotFoundError(FileNotFoundError):
    """No complete model was ever saved in this folder (build one)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# ---------------------------------------------------------------------------------------------
# The loaded bundle
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bundle:
    """A verified model bundle: its manifest and the bytes of every file, checked on read.

    Attributes
    ----------
    folder : Path
        The bundle folder (what was passed to :func:`load_bundle`).
    path : Path
        The version folder the files came from (``folder`` itself for a legacy bundle).
    manifest : dict
        ``store``, ``kind``, ``kind_version``, ``version``, ``created``, ``meta``, ``files``.
    files : mapping of str -> bytes
        Relative POSIX path -> verified content.
    legacy : bool
        True for a folder written before :mod:`ocnb.store` (verified by its old checksum records).
    """

    folder: Path
    path: Path
    manifest: dict
    files: Mapping[str, bytes] = field(repr=False)
    legacy: bool = False

    @property
    def kind(self) -> str | None:
        return self.manifest.get("kind")

    @property
    def kind_version(self) -> int | None:
        return self.manifest.get("kind_version")

    @property
    def version(self) -> str | None:
        return self.manifest.get("version")

    @property
    def meta(self) -> dict:
        return dict(self.manifest.get("meta") or {})

    def __contains__(self, name: str) -> bool:
        return name in self.files

    def read(self, name: str) -> bytes:
        """Verified bytes of file ``name``; a missing file is a ``partial`` :class:`BundleError`."""
        try:
            return self.files[name]
        except KeyError:
            raise BundleError(f"model bundle {self.folder} is partial: it has no file {name!r} "
                              f"(it holds {sorted(self.files)})", self.folder, "partial") from None

    def json(self, name: str) -> Any:
        """File ``name`` parsed as JSON (unreadable JSON is a ``corrupt`` :class:`BundleError`)."""
        try:
            return json.loads(self.read(name))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BundleError(f"model bundle {self.folder}: {name} is not valid JSON ({err})",
                              self.folder, "corrupt") from None

    def arrays(self, name: str) -> dict:
        """File ``name`` (an ``.npz``) as a dict of NumPy arrays (no pickles)."""
        import io
        import zipfile

        import numpy as np

        try:
            with np.load(io.BytesIO(self.read(name)), allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
            raise BundleError(f"model bundle {self.folder}: {name} is not a readable .npz ({err})",
                              self.folder, "corrupt") from None

    def sub(self, prefix: str) -> Bundle:
        """The files under ``prefix/`` as a bundle of their own (same manifest, same checks)."""
        pre = prefix.rstrip("/") + "/"
        files = {k[len(pre):]: v for k, v in self.files.items() if k.startswith(pre)}
        if not files:
            raise BundleError(f"model bundle {self.folder} is partial: nothing under {prefix}/",
                              self.folder, "partial")
        return Bundle(self.folder, self.path / prefix, self.manifest, files, self.legacy)


# ---------------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------------
def _step(label: str) -> None:
    if _after_step is not None:
        _after_step(label)


def _check_name(name: str) -> str:
    parts = PurePosixPath(name).parts
    if (not isinstance(name, str) or not parts or name.startswith("/") or "\\" in name
            or any(p in ("", ".", "..") or not _PART_RE.match(p) or p.startswith(".") for p in parts)):
        raise ValueError(f"bundle file name {name!r} must be a relative path of letters, digits and _.=+- "
                         "(no '..', no leading dot)")
    if name in (_MANIFEST, _CURRENT):
        raise ValueError(f"bundle file name {name!r} is reserved by ocnb.store")
    return str(PurePosixPath(*parts))


def _write_synced(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:  # makes the renames durable on POSIX; not possible (nor needed) on Windows
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _versions(folder: Path) -> list[tuple[int, str]]:
    out = []
    if folder.is_dir():
        for p in folder.iterdir():
            m = _VERSION_RE.match(p.name)
            if m and p.is_dir():
                out.append((int(m.group(1)), p.name))
    return sorted(out)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user) or cannot tell: keep its folder
    return True


def _read_current(folder: Path) -> dict | None:
    path = folder / _CURRENT
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(raw)
        if not (isinstance(doc, dict) and isinstance(doc.get("version"), str)
                and isinstance(doc.get("manifest_sha256"), str)):
            raise ValueError("missing keys")
    except (ValueError, UnicodeDecodeError):
        raise BundleError(f"model bundle {folder} is corrupt: {_CURRENT} is empty or unreadable "
                          f"({len(raw)} bytes)", folder, "corrupt") from None
    return doc


def _prune(folder: Path, keep: str) -> None:
    """Delete everything in ``folder`` but ``CURRENT``, version ``keep`` and what concurrent saves may use.

    Versions numbered like ``keep`` or higher belong to saves running beside this one (they may be
    about to name theirs in ``CURRENT``), as do the temp folders of live processes: kept, and
    removed by a later save.
    """
    keep_number = int(_VERSION_RE.match(keep).group(1))
    for p in list(folder.iterdir()):
        if p.name in (_CURRENT, keep):
            continue
        v = _VERSION_RE.match(p.name)
        if v and int(v.group(1)) >= keep_number:
            continue
        m = _TMP_RE.match(p.name)
        if m and _pid_alive(int(m.group(1))):
            continue  # another save in progress (or ours)
        if p.name.startswith(f".{_CURRENT}.") and p.name.endswith(".part"):
            continue  # a CURRENT being written by a concurrent save
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()


def save_bundle(folder: str | os.PathLike, files: Mapping[str, bytes], *, kind: str, kind_version: int = 1,
                meta: Mapping[str, Any] | None = None) -> Path:
    """Save ``files`` as the next version of the model in ``folder``; returns the version folder.

    Parameters
    ----------
    folder : path
        The model's folder (created if needed). A folder written before the store existed is
        replaced, like an older version.
    files : mapping of str -> bytes
        Relative POSIX paths (``"ensemble/weights.npz"``) and their content.
    kind : str
        What the bundle holds, e.g. ``"ocnb.cmd_ann.CavalloModel"``; checked by :func:`load_bundle`.
    kind_version : int
        Version of that kind's file layout; a loader asking for another one gets an ``outdated`` error.
    meta : mapping, optional
        Small JSON-serialisable description stored in the manifest (shown by :meth:`ModelStore.list`).

    Raises
    ------
    ValueError
        A file name that is not a plain relative path, or content that is not bytes.
    NotADirectoryError
        ``folder`` exists and is not a folder.
    ocnb.errors.DataHomeError
        ``folder`` cannot be created (a parent is a file, no permission).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"cannot save a model bundle at {folder}: it exists and is not a folder")
    if not files:
        raise ValueError("a model bundle needs at least one file")
    clean: dict[str, bytes] = {}
    for name, data in files.items():
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(f"bundle file {name!r} must be bytes, not {type(data).__name__}")
        clean[_check_name(name)] = bytes(data)
    meta_doc = json.loads(json.dumps(dict(meta or {})))  # fails early (TypeError) if not JSON-able
    ensure_folder(folder, "model folder")  # DataHomeError naming the path if it cannot be created
    versions = _versions(folder)
    number = (versions[-1][0] + 1) if versions else 1
    version = f"v{number:04d}-{uuid.uuid4().hex[:8]}"
    tmp = folder / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    _step("tmp")
    try:
        for name, data in clean.items():
            _write_synced(tmp / name, data)
            _step(f"file:{name}")
        manifest = {
            "store": STORE_FORMAT, "kind": str(kind), "kind_version": int(kind_version), "version": version,
            "created": datetime.now(UTC).isoformat(timespec="seconds"), "meta": meta_doc,
            "files": {name: {"sha256": sha256_bytes(data), "size": len(data)} for name, data in clean.items()},
        }
        man_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode()
        _write_synced(tmp / _MANIFEST, man_bytes)  # last: a version folder without it is partial
        _fsync_dir(tmp)
        _step("manifest")
        target = folder / version
        os.replace(tmp, target)  # the whole version folder appears at once
        _fsync_dir(folder)
        _step("rename")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pointer = json.dumps({"version": version, "manifest_sha256": sha256_bytes(man_bytes)}).encode()
    atomic_write_bytes(folder / _CURRENT, pointer)
    _fsync_dir(folder)
    _step("current")
    _prune(folder, keep=version)
    _step("prune")
    return target


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------
def _read_version(folder: Path, vdir: Path, expected_manifest: str | None, expected_version: str | None) -> Bundle:
    man_path = vdir / _MANIFEST
    try:
        man_bytes = man_path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"model bundle {folder} is partial: {vdir.name}/{_MANIFEST} is missing "
                          "(an interrupted save)", folder, "partial") from None
    if not man_bytes:
        raise BundleError(f"model bundle {folder} is partial: {vdir.name}/{_MANIFEST} is empty", folder,
                          "partial")
    if expected_manifest is not None and sha256_bytes(man_bytes) != expected_manifest:
        raise BundleError(f"model bundle {folder} is mixed: {vdir.name}/{_MANIFEST} is not the manifest "
                          f"{_CURRENT} recorded (sha256 {sha256_bytes(man_bytes)[:12]}… ≠ "
                          f"{expected_manifest[:12]}…)", folder, "mixed")
    try:
        manifest = json.loads(man_bytes)
        entries = manifest["files"]
        if not isinstance(entries, dict):
            raise TypeError("'files' is not a mapping")
    except (ValueError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise BundleError(f"model bundle {folder}: {vdir.name}/{_MANIFEST} is unreadable ({err})", folder,
                          "corrupt") from None
    if manifest.get("store") != STORE_FORMAT:
        raise BundleError(f"model bundle {folder} has store format {manifest.get('store')!r}, this ocnb "
                          f"reads {STORE_FORMAT!r}", folder, "outdated")
    if expected_version is not None and manifest.get("version") != expected_version:
        raise BundleError(f"model bundle {folder} is mixed: {vdir.name}/{_MANIFEST} belongs to version "
                          f"{manifest.get('version')!r} of another save", folder, "mixed")
    files = {}
    for name, entry in entries.items():
        path = vdir / name
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise BundleError(f"model bundle {folder} is partial: {vdir.name}/{name} is missing", folder,
                              "partial") from None
        size, digest = int(entry["size"]), str(entry["sha256"])
        if len(data) != size:
            what = "empty" if not data else f"{len(data)} bytes, the manifest records {size}"
            raise BundleError(f"model bundle {folder} is partial: {vdir.name}/{name} is truncated ({what})",
                              folder, "partial")
        if sha256_bytes(data) != digest:
            raise BundleError(f"model bundle {folder} is mixed or corrupted: {vdir.name}/{name} does not match "
                              f"the sha256 in its manifest ({sha256_bytes(data)[:12]}… ≠ {digest[:12]}…)",
                              folder, "mixed")
        files[name] = data
    return Bundle(folder, vdir, manifest, files, legacy=False)


def _read_legacy(folder: Path) -> Bundle:
    """A folder written before ocnb.store: every file must be covered by an old checksum record."""
    def _ignored(p: Path) -> bool:  # hidden files, temp folders and versions of an interrupted new save
        parts = p.relative_to(folder).parts
        return any(part.startswith(".") for part in parts) or bool(_VERSION_RE.match(parts[0]))

    all_files = sorted(p for p in folder.rglob("*") if p.is_file() and not _ignored(p))
    rel = {p.relative_to(folder).as_posix(): p for p in all_files}
    verified: dict[str, bytes] = {}
    old_manifests = []
    for name, path in rel.items():  # sidecars X.sha256 verify X
        if not name.endswith(".sha256"):
            continue
        target = name[: -len(".sha256")]
        if target not in rel:
            raise BundleError(f"model bundle {folder} is partial: {target} is missing (only its checksum "
                              f"record {name} is there)", folder, "partial")
        data = rel[target].read_bytes()
        expected = path.read_text(errors="replace").strip()
        if sha256_bytes(data) != expected:
            raise BundleError(f"model bundle {folder} is corrupted or mixed: {target} does not match its "
                              f"checksum record {name}", folder, "mixed")
        verified[target] = data
        verified[name] = path.read_bytes()
        if PurePosixPath(target).name == _MANIFEST:
            old_manifests.append(target)
    for man in old_manifests:  # an old manifest.json {"files": {name: sha256}} verifies its folder
        base = PurePosixPath(man).parent
        try:
            entries = json.loads(verified[man])["files"]
        except (ValueError, KeyError, TypeError):
            raise BundleError(f"model bundle {folder}: {man} is unreadable", folder, "corrupt") from None
        for name, digest in entries.items():
            key = (base / name).as_posix() if str(base) != "." else name
            if key not in rel:
                raise BundleError(f"model bundle {folder} is partial: {key} is missing", folder, "partial")
            data = rel[key].read_bytes()
            if sha256_bytes(data) != digest:
                what = "empty" if not data else "does not match the sha256 in " + man
                raise BundleError(f"model bundle {folder} is corrupted or mixed: {key} {what}", folder, "mixed")
            verified[key] = data
    unverified = sorted(set(rel) - set(verified))
    if unverified:
        raise BundleError(f"model bundle {folder} is partial: {', '.join(unverified)} has no checksum record "
                          "(neither a .sha256 sidecar nor an entry in a verified manifest.json)", folder, "partial")
    if not verified:
        raise BundleError(f"model bundle {folder} is partial: no checksum records", folder, "partial")
    files = {k: v for k, v in verified.items() if not k.endswith(".sha256")}
    manifest = {"store": "legacy", "kind": None, "kind_version": None, "version": None, "meta": {},
                "files": {k: {"sha256": sha256_bytes(v), "size": len(v)} for k, v in files.items()}}
    return Bundle(folder, folder, manifest, files, legacy=True)


def load_bundle(folder: str | os.PathLike, kind: str | None = None, kind_version: int | None = None,
                legacy: bool = True) -> Bundle:
    """Load and verify the current version of the model in ``folder``.

    Parameters
    ----------
    folder : path
        A bundle folder written by :func:`save_bundle`, one of its version folders, or (with
        ``legacy=True``) a folder written before the store existed.
    kind, kind_version : optional
        Expected kind and layout version; another one raises an ``outdated`` :class:`BundleError`
        (legacy bundles have no kind and are not checked).

    Raises
    ------
    BundleNotFoundError
        Nothing complete was ever saved in ``folder``.
    BundleError
        A partial, mixed, corrupt or outdated bundle (the message names the file).
    """
    folder = Path(folder)
    if not folder.exists():
        raise BundleNotFoundError(f"no model bundle at {folder}")
    if not folder.is_dir():
        raise BundleError(f"model bundle path {folder} is a file, not a folder", folder, "corrupt")
    bundle = None
    attempts = 3  # a concurrent save may prune the version between reading CURRENT and its files
    for attempt in range(attempts):
        pointer = _read_current(folder)
        if pointer is None:
            break
        vdir = folder / pointer["version"]
        if not _VERSION_RE.match(pointer["version"]):
            raise BundleError(f"model bundle {folder} is corrupt: {_CURRENT} names {pointer['version']!r}",
                              folder, "corrupt")
        if not vdir.is_dir():
            if attempt < attempts - 1:
                continue
            raise BundleError(f"model bundle {folder} is partial: {_CURRENT} names version {vdir.name}, "
                              "which is missing", folder, "partial")
        try:
            bundle = _read_version(folder, vdir, pointer["manifest_sha256"], pointer["version"])
            break
        except BundleError:
            if attempt < attempts - 1 and _read_current(folder) != pointer:
                continue  # CURRENT moved while we read: read the new version
            raise
    if bundle is None:
        man = folder / _MANIFEST
        if man.is_file() and not (folder / (_MANIFEST + ".sha256")).exists():
            # a version folder given directly (or a bundle whose CURRENT is lost)
            if _VERSION_RE.match(folder.name):
                bundle = _read_version(folder, folder, None, folder.name)
            else:
                raise BundleError(f"model bundle {folder} is partial: {_CURRENT} is missing", folder, "partial")
        elif legacy and any(p.name.endswith(".sha256") for p in folder.rglob("*.sha256")):
            return _read_legacy(folder)
        elif _versions(folder) or any(_TMP_RE.match(p.name) for p in folder.iterdir()):
            raise BundleNotFoundError(f"no complete model bundle at {folder} (only the leftovers of an "
                                      "interrupted first save)")
        elif any(folder.iterdir()):
            raise BundleError(f"model bundle {folder} is partial: no {_CURRENT} pointer and no checksum "
                              "records", folder, "partial")
        else:
            raise BundleNotFoundError(f"no model bundle at {folder} (empty folder)")
    if kind is not None and bundle.kind != kind:
        raise BundleError(f"model bundle {folder} holds {bundle.kind!r}, not {kind!r}", folder, "outdated")
    if kind_version is not None and bundle.kind_version != kind_version:
        raise BundleError(f"model bundle {folder} has {bundle.kind} layout version {bundle.kind_version}, "
                          f"this ocnb reads version {kind_version}", folder, "outdated")
    return bundle


def bundle_exists(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds something to load (complete or not: :func:`load_bundle` decides)."""
    folder = Path(folder)
    return folder.is_dir() and any(True for _ in folder.iterdir())


def discard_bundle(folder: str | os.PathLike) -> None:
    """Delete a model folder and every version in it."""
    folder = Path(folder)
    if folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)
    elif folder.exists():
        folder.unlink()


def load_or_build(folder: str | os.PathLike, build: Callable[[], T], load: Callable[[Path], T],
                  save: Callable[[T, Path], Any], refit: bool = False, what: str = "model") -> T:
    """Load the model in ``folder``, or build and save it.

    A missing model is built silently; a partial, mixed, corrupt or outdated one is reported
    with a ``RuntimeWarning`` naming the folder and the file, deleted and rebuilt: never used.

    Parameters
    ----------
    build : callable () -> model
    load : callable (folder) -> model
        Raises :class:`BundleNotFoundError` or :class:`BundleError` (e.g. via :func:`load_bundle`).
    save : callable (model, folder)
    refit : bool
        Rebuild even if a good model exists.
    what : str
        Used in the warning (``"cached model"``).
    """
    folder = Path(folder)
    if not refit:
        try:
            return load(folder)
        except BundleNotFoundError:
            pass
        except BundleError as err:
            warnings.warn(f"{what} {folder} unusable ({err.state}): {err}; rebuilding it", RuntimeWarning,
                          stacklevel=2)
            discard_bundle(folder)
    obj = build()
    save(obj, folder)
    return obj


# ---------------------------------------------------------------------------------------------
# Named models in the data home
# ---------------------------------------------------------------------------------------------
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")


class ModelStore:
    """The models of one paper (``namespace``) in ``data_home()/models/<namespace>/<name>/``.

    Parameters
    ----------
    namespace : str
        E.g. ``"cmd_ann"``.
    root : path, optional
        Override ``data_home()/models`` (tests).
    """

    def __init__(self, namespace: str, root: str | os.PathLike | None = None):
        if not _NAME_RE.match(namespace):
            raise ValueError(f"namespace {namespace!r} may only contain letters, digits and _.=+-")
        self.namespace = namespace
        self._root = None if root is None else Path(root)

    def __repr__(self) -> str:
        return f"ModelStore({self.namespace!r}, folder={str(self.folder)!r})"

    @property
    def folder(self) -> Path:
        base = self._root if self._root is not None else data_home() / "models"
        return base / self.namespace

    def path(self, name: str) -> Path:
        """Folder of model ``name``."""
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(f"model name {name!r} may only contain letters, digits and _.=+- "
                             "(and must not start with a dot)")
        return self.folder / name

    def save(self, name: str, files: Mapping[str, bytes], *, kind: str, kind_version: int = 1,
             meta: Mapping[str, Any] | None = None) -> Path:
        return save_bundle(self.path(name), files, kind=kind, kind_version=kind_version, meta=meta)

    def load(self, name: str, kind: str | None = None, kind_version: int | None = None) -> Bundle:
        return load_bundle(self.path(name), kind=kind, kind_version=kind_version)

    def load_or_build(self, name: str, build: Callable[[], T], load: Callable[[Path], T],
                      save: Callable[[T, Path], Any], refit: bool = False) -> T:
        return load_or_build(self.path(name), build, load, save, refit=refit, what="cached model")

    def delete(self, name: str) -> None:
        discard_bundle(self.path(name))

    def names(self) -> list[str]:
        """Names of the model folders (complete or not)."""
        if not self.folder.is_dir():
            return []
        return sorted(p.name for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith("."))

    def list(self):
        """One row per model: ``name, state, kind, version, created, size_bytes``, ``error`` if unusable."""
        import pandas as pd

        rows = []
        for name in self.names():
            row: dict[str, Any] = {"name": name}
            try:
                b = self.load(name)
                row.update(state="ok", kind=b.kind, version=b.version, created=b.manifest.get("created"),
                           size_bytes=sum(len(v) for v in b.files.values()), legacy=b.legacy)
            except BundleNotFoundError as err:
                row.update(state="missing", error=str(err))
            except BundleError as err:
                row.update(state=err.state, error=str(err))
            rows.append(row)
        return pd.DataFrame(rows, columns=["name", "state", "kind", "version", "created", "size_bytes",
                                           "legacy", "error"])
