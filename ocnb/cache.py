"""Checksummed, atomically written cache files in the data home.

Every cached file ``X`` has a sidecar ``X.sha256`` holding its SHA-256. A file
is written to a temporary name in the same folder and renamed into place, so a
crash never leaves a half-written cache; a file whose checksum does not match
(disk error, manual edit, interrupted copy), whose checksum record is missing
or unreadable, or which cannot be decoded although its checksum matches (an
empty or truncated file written together with its checksum) is never used:
:meth:`Cache.load_bytes` / :meth:`Cache.load_frame` raise
:class:`~ocnb.errors.CorruptCacheError` naming the file, and the ``fetch_*``
methods warn (``RuntimeWarning``), delete it and recompute, so a bad entry
heals on the next call instead of failing on every run.

Folders that cannot be created or written (a data home that is a regular
file, a read-only disk) raise :class:`~ocnb.errors.DataHomeError` naming the
path and ``$OCNB_DATA_DIR``.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

from .config import data_home, data_home_origin, ensure_folder
from .errors import CacheKeyError, CorruptCacheError, DataHomeError

__all__ = ["Cache", "CacheKeyError", "CorruptCacheError", "atomic_write_bytes", "sha256_file", "sha256_bytes"]

#: Suffix of the checksum record next to each cached file.
CHECKSUM_SUFFIX = ".sha256"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# A key is one plain file name: no separators, no leading dot (temporary files
# start with "." and ".."/"." would leave the folder), and not a checksum record.
_KEY = re.compile(r"^[A-Za-z0-9_=+-][A-Za-z0-9_.=+-]*$")


def _check_name(value, what: str) -> str:
    if not isinstance(value, str) or not _KEY.match(value) or value.endswith((CHECKSUM_SUFFIX, ".part")):
        raise CacheKeyError(
            f"{what} {value!r} is not a plain file name: use letters, digits and _.=+- only, not starting "
            f"with '.' and not ending in {CHECKSUM_SUFFIX!r} or '.part'"
        )
    return value


class Cache:
    """A named folder of checksummed files under ``data_home()/cache``.

    Parameters
    ----------
    name : str
        Sub-folder, e.g. ``"isochrones"`` or ``"gaia"`` (a plain folder name).
    root : path, optional
        Override the data home (tests).

    Raises
    ------
    CacheKeyError
        ``name`` (or later a key) is not a plain file name, e.g. ``"../x"``.
    """

    def __init__(self, name: str, root: str | os.PathLike | None = None):
        self.name = _check_name(name, "cache name")
        self._root = Path(root) if root is not None else None

    def __repr__(self) -> str:
        return f"Cache({self.name!r}, folder={str(self.folder)!r})"

    @property
    def folder(self) -> Path:
        base = self._root if self._root is not None else data_home() / "cache"
        return base / self.name

    def path(self, key: str) -> Path:
        """Path of the cached file for ``key`` (a file name such as ``m67.parquet``)."""
        return self.folder / _check_name(key, "cache key")

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(path.name + CHECKSUM_SUFFIX)

    # -- bytes ---------------------------------------------------------------
    def save_bytes(self, key: str, data: bytes) -> Path:
        """Store ``data`` under ``key`` with its checksum; returns the path.

        Raises
        ------
        DataHomeError
            The cache folder cannot be created or written (the message names
            it and ``$OCNB_DATA_DIR``).
        """
        path = self.path(key)
        ensure_folder(path.parent, f"cache folder '{self.name}'")
        try:
            # Data first, checksum second: a crash in between leaves a file whose
            # sidecar is missing or stale, which load_bytes() rejects.
            atomic_write_bytes(path, data)
            atomic_write_bytes(self._sidecar(path), (sha256_bytes(data) + "\n").encode())
        except OSError as err:
            raise DataHomeError(
                f"cannot write the cache file {path}: {err.strerror or type(err).__name__} "
                f"({data_home_origin()}); the data home must be writable"
            ) from err
        return path

    def load_bytes(self, key: str) -> bytes:
        """Return the cached bytes, verified against the checksum.

        Raises
        ------
        FileNotFoundError
            Nothing is cached under ``key``.
        CorruptCacheError
            The file does not match its recorded SHA-256, the record is
            missing or is not a SHA-256 digest, or the entry is a folder.
        """
        path = self.path(key)
        if path.is_dir():
            raise CorruptCacheError(f"cache entry {path} is a folder, not a file; not using it")
        data = path.read_bytes()
        side = self._sidecar(path)
        if not side.is_file():
            raise CorruptCacheError(f"cache file {path} has no checksum record {side.name}; not using it")
        raw = side.read_bytes()
        expected = raw.decode("ascii", errors="replace").strip().lower()
        if not _SHA256.match(expected):
            raise CorruptCacheError(
                f"checksum record {side} is not a SHA-256 hex digest (it holds {raw[:40]!r}); "
                f"not using cache file {path}"
            )
        actual = sha256_bytes(data)
        if actual != expected:
            raise CorruptCacheError(
                f"cache file {path} is corrupted: sha256 {actual[:12]}… does not match the recorded "
                f"{expected[:12]}…; delete it (or call ocnb.clear_data_home('cache')) to rebuild"
            )
        return data

    def delete(self, key: str) -> None:
        path = self.path(key)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        self._sidecar(path).unlink(missing_ok=True)

    def _report(self, message: str, key: str) -> None:
        # stacklevel 4: the user's call of fetch_*() (via _fetch and _report).
        warnings.warn(f"{message}; deleting it and recomputing", RuntimeWarning, stacklevel=4)
        self.delete(key)

    def _fetch(self, key: str, compute: Callable[[], bytes], decode: Callable[[bytes], object], kind: str):
        """Cached, verified and decoded entry; a bad one is reported, deleted and recomputed."""
        try:
            data = self.load_bytes(key)
        except FileNotFoundError:
            data = None
        except CorruptCacheError as err:
            self._report(str(err), key)
            data = None
        if data is not None:
            try:
                return decode(data)
            except Exception as err:
                # An empty or truncated file stored with its own checksum (e.g. written by an
                # older version, or by a crash of another tool) passes the checksum; the decode
                # step is what catches it.
                self._report(
                    f"cache file {self.path(key)} ({len(data)} bytes) cannot be read as {kind} although its "
                    f"checksum matches ({type(err).__name__}: {err})", key)
        data = compute()
        out = decode(data)  # before saving: never store what cannot be read back
        self.save_bytes(key, data)
        return out

    def fetch_bytes(self, key: str, compute: Callable[[], bytes]) -> bytes:
        """Return cached bytes, or compute, store and return them.

        A corrupted entry is reported with a ``RuntimeWarning``, deleted and
        recomputed: it is never returned.
        """
        return self._fetch(key, compute, lambda b: b, "bytes")

    # -- DataFrames (Parquet) --------------------------------------------------
    @staticmethod
    def _decode_frame(data: bytes):
        import pandas as pd

        return pd.read_parquet(io.BytesIO(data))

    def save_frame(self, key: str, frame) -> Path:
        buf = io.BytesIO()
        frame.to_parquet(buf, compression="zstd")
        return self.save_bytes(key, buf.getvalue())

    def load_frame(self, key: str):
        """The cached DataFrame.

        Raises
        ------
        FileNotFoundError, CorruptCacheError
            As :meth:`load_bytes`; also :class:`CorruptCacheError` when the
            verified bytes are not a Parquet file.
        """
        data = self.load_bytes(key)
        try:
            return self._decode_frame(data)
        except Exception as err:
            raise CorruptCacheError(
                f"cache file {self.path(key)} ({len(data)} bytes) is not a readable Parquet table although its "
                f"checksum matches ({type(err).__name__}: {err}); delete it to rebuild"
            ) from err

    def fetch_frame(self, key: str, compute: Callable[[], object]):
        """DataFrame version of :meth:`fetch_bytes` (stored as Parquet)."""

        def _compute() -> bytes:
            buf = io.BytesIO()
            compute().to_parquet(buf, compression="zstd")
            return buf.getvalue()

        return self._fetch(key, _compute, self._decode_frame, "a Parquet table")

    # -- NumPy arrays (npz) ----------------------------------------------------
    @staticmethod
    def _decode_arrays(data: bytes) -> dict:
        import numpy as np

        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def fetch_arrays(self, key: str, compute: Callable[[], dict]) -> dict:
        """Cache a dict of NumPy arrays as ``.npz`` (no pickles)."""
        import numpy as np

        def _compute() -> bytes:
            buf = io.BytesIO()
            np.savez_compressed(buf, **compute())
            return buf.getvalue()

        return self._fetch(key, _compute, self._decode_arrays, "NumPy arrays (.npz)")
