"""Checksummed, atomically written cache files in the data home.

Every cached file ``X`` has a sidecar ``X.sha256`` holding its SHA-256. A file
is written to a temporary name in the same folder and renamed into place, so a
crash never leaves a half-written cache; a file whose checksum does not match
(disk error, manual edit, interrupted copy) is never used: :meth:`Cache.load`
raises :class:`CorruptCacheError` naming the file, and :meth:`Cache.fetch`
warns, deletes it and recomputes.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Callable

from .config import data_home

__all__ = ["Cache", "CorruptCacheError", "atomic_write_bytes", "sha256_file", "sha256_bytes"]


class CorruptCacheError(OSError):
    """A cached file failed its checksum (or lost its checksum sidecar)."""


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


_KEY = re.compile(r"^[A-Za-z0-9_.=+-]+$")


class Cache:
    """A named folder of checksummed files under ``data_home()/cache``.

    Parameters
    ----------
    name : str
        Sub-folder, e.g. ``"isochrones"`` or ``"gaia"``.
    root : path, optional
        Override the data home (tests).
    """

    def __init__(self, name: str, root: str | os.PathLike | None = None):
        self.name = name
        self._root = Path(root) if root is not None else None

    @property
    def folder(self) -> Path:
        base = self._root if self._root is not None else data_home() / "cache"
        return base / self.name

    def path(self, key: str) -> Path:
        """Path of the cached file for ``key`` (a file name such as ``m67.parquet``)."""
        if not _KEY.match(key):
            raise ValueError(f"cache key {key!r} may only contain letters, digits and _.=+-")
        return self.folder / key

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    # -- bytes ---------------------------------------------------------------
    def save_bytes(self, key: str, data: bytes) -> Path:
        """Store ``data`` under ``key`` with its checksum; returns the path."""
        path = self.path(key)
        # Data first, checksum second: a crash in between leaves a file whose
        # sidecar is missing or stale, which load() rejects.
        atomic_write_bytes(path, data)
        atomic_write_bytes(path.with_name(path.name + ".sha256"), (sha256_bytes(data) + "\n").encode())
        return path

    def load_bytes(self, key: str) -> bytes:
        """Return the cached bytes, verified against the checksum.

        Raises
        ------
        FileNotFoundError
            Nothing is cached under ``key``.
        CorruptCacheError
            The file does not match its recorded SHA-256 (or the record is missing).
        """
        path = self.path(key)
        data = path.read_bytes()
        side = path.with_name(path.name + ".sha256")
        if not side.exists():
            raise CorruptCacheError(f"cache file {path} has no checksum record {side.name}; not using it")
        expected = side.read_text().strip()
        actual = sha256_bytes(data)
        if actual != expected:
            raise CorruptCacheError(
                f"cache file {path} is corrupted: sha256 {actual[:12]}… does not match the recorded "
                f"{expected[:12]}…; delete it (or call ocnb.clear_data_home('cache')) to rebuild"
            )
        return data

    def delete(self, key: str) -> None:
        path = self.path(key)
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".sha256").unlink(missing_ok=True)

    def fetch_bytes(self, key: str, compute: Callable[[], bytes]) -> bytes:
        """Return cached bytes, or compute, store and return them.

        A corrupted entry is reported with a warning, deleted and recomputed:
        it is never returned.
        """
        try:
            return self.load_bytes(key)
        except FileNotFoundError:
            pass
        except CorruptCacheError as err:
            warnings.warn(f"{err}; recomputing", RuntimeWarning, stacklevel=2)
            self.delete(key)
        data = compute()
        self.save_bytes(key, data)
        return data

    # -- DataFrames (Parquet) --------------------------------------------------
    def save_frame(self, key: str, frame) -> Path:
        buf = io.BytesIO()
        frame.to_parquet(buf, compression="zstd")
        return self.save_bytes(key, buf.getvalue())

    def load_frame(self, key: str):
        import pandas as pd

        return pd.read_parquet(io.BytesIO(self.load_bytes(key)))

    def fetch_frame(self, key: str, compute: Callable[[], "object"]):
        """DataFrame version of :meth:`fetch_bytes` (stored as Parquet)."""

        def _compute() -> bytes:
            buf = io.BytesIO()
            compute().to_parquet(buf, compression="zstd")
            return buf.getvalue()

        import pandas as pd

        return pd.read_parquet(io.BytesIO(self.fetch_bytes(key, _compute)))

    # -- NumPy arrays (npz) ----------------------------------------------------
    def fetch_arrays(self, key: str, compute: Callable[[], dict]) -> dict:
        """Cache a dict of NumPy arrays as ``.npz`` (no pickles)."""
        import numpy as np

        def _compute() -> bytes:
            buf = io.BytesIO()
            np.savez_compressed(buf, **compute())
            return buf.getvalue()

        with np.load(io.BytesIO(self.fetch_bytes(key, _compute)), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
