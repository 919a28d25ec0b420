"""Run-time configuration: where data lives, FAST mode, and the Keras backend.

This module is the only place where ocnb keeps state beyond function
arguments. Everything is read from environment variables so that notebooks,
tests and batch jobs can steer it without code changes:

``OCNB_DATA_DIR``
    Data home: caches, downloaded tables, trained models (default
    ``~/.ocnb_data``).
``OCNB_FAST``
    ``1``/``true`` selects FAST presets (small samples, few epochs) used by
    the test-suite and CI.
``KERAS_BACKEND``
    ``tensorflow`` (default), ``jax`` or ``torch``; must be set before Keras
    is first imported, which :func:`set_keras_backend` checks.
``OCNB_DASK_SCHEDULER``
    Address of an existing dask scheduler; see :mod:`ocnb.parallel`.
"""

from __future__ import annotations

import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

from .errors import DataHomeError

__all__ = [
    "DATA_DIR_ENV",
    "data_home",
    "data_home_origin",
    "ensure_folder",
    "clear_data_home",
    "fast_mode",
    "set_fast_mode",
    "keras_backend",
    "set_keras_backend",
    "DEFAULT_KERAS_BACKEND",
]

DEFAULT_KERAS_BACKEND = "tensorflow"
KERAS_BACKENDS = ("tensorflow", "jax", "torch")
_TRUE = {"1", "true", "yes", "on"}


#: Environment variable naming the data home.
DATA_DIR_ENV = "OCNB_DATA_DIR"


def data_home_origin() -> str:
    """Where the data home comes from, for error messages: ``$OCNB_DATA_DIR = '...'`` or the default."""
    raw = os.environ.get(DATA_DIR_ENV)
    if raw:
        return f"${DATA_DIR_ENV} = {raw!r}"
    return f"the default data home ~/.ocnb_data (set {DATA_DIR_ENV} to use another folder)"


def ensure_folder(path: str | os.PathLike, what: str = "folder") -> Path:
    """Create ``path`` (and its parents) if needed; a clear :class:`DataHomeError` if it cannot be a folder.

    Used for the data home and the folders in it (caches, models): a path that
    is a regular file, or a parent that is, or a folder that cannot be created
    (permissions, read-only file system) is reported with the path, the
    reason and where the data home comes from, instead of a bare
    ``FileExistsError``/``NotADirectoryError`` from deep inside a save.

    Raises
    ------
    DataHomeError
        ``path`` is not a folder and cannot be made one.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DataHomeError(
            f"the ocnb {what} {path} is a regular file, not a folder ({data_home_origin()}); "
            f"point {DATA_DIR_ENV} at a folder, or move the file away"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise DataHomeError(
            f"cannot create the ocnb {what} {path}: {reason} ({data_home_origin()}); "
            f"set {DATA_DIR_ENV} to a writable folder"
        ) from err
    return path


def data_home(create: bool = True) -> Path:
    """Return the ocnb data home (``$OCNB_DATA_DIR`` or ``~/.ocnb_data``).

    Caches, downloaded tables and trained models go here, never into the
    package or the git checkout.

    Parameters
    ----------
    create : bool
        Create the folder if it does not exist (default). ``False`` only
        computes the path (e.g. for :func:`ocnb.show_versions`) and never
        raises.

    Raises
    ------
    DataHomeError
        With ``create=True``: the path is a regular file, or cannot be
        created; the message names ``OCNB_DATA_DIR`` and the path.
    """
    path = Path(os.environ.get(DATA_DIR_ENV) or Path.home() / ".ocnb_data").expanduser()
    if create:
        ensure_folder(path, "data home")
    return path


def clear_data_home(subdir: str | None = None) -> None:
    """Delete the data home (or one sub-folder of it, e.g. ``"cache"``)."""
    root = data_home(create=False)
    target = root / subdir if subdir else root
    if target.resolve() == Path.home().resolve():
        raise ValueError(f"refusing to delete the home directory {target}")
    shutil.rmtree(target, ignore_errors=True)


def fast_mode() -> bool:
    """True when FAST presets are requested (``OCNB_FAST=1``), as in CI."""
    return os.environ.get("OCNB_FAST", "").strip().lower() in _TRUE


def set_fast_mode(on: bool = True) -> None:
    """Switch FAST mode on or off for this process (sets ``OCNB_FAST``)."""
    os.environ["OCNB_FAST"] = "1" if on else "0"


@contextmanager
def fast(on: bool = True):
    """Context manager: temporarily set FAST mode."""
    old = os.environ.get("OCNB_FAST")
    set_fast_mode(on)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("OCNB_FAST", None)
        else:
            os.environ["OCNB_FAST"] = old


def keras_backend() -> str:
    """The Keras backend ocnb uses: ``$KERAS_BACKEND`` or ``tensorflow``."""
    return os.environ.get("KERAS_BACKEND", DEFAULT_KERAS_BACKEND)


def set_keras_backend(name: str | None = None) -> str:
    """Select the Keras backend explicitly; call before importing keras.

    Parameters
    ----------
    name : {"tensorflow", "jax", "torch"}, optional
        Defaults to ``$KERAS_BACKEND`` or ``tensorflow``.

    Raises
    ------
    ValueError
        For an unknown backend.
    RuntimeError
        If keras is already imported with a different backend (Keras reads
        the variable only once, at import).
    """
    name = name or keras_backend()
    if name not in KERAS_BACKENDS:
        raise ValueError(f"unknown Keras backend {name!r}; choose one of {KERAS_BACKENDS}")
    if "keras" in sys.modules:
        current = sys.modules["keras"].backend.backend()
        if current != name:
            raise RuntimeError(
                f"keras is already imported with backend {current!r}; set "
                f"KERAS_BACKEND={name} (or call ocnb.config.set_keras_backend) before importing keras"
            )
    os.environ["KERAS_BACKEND"] = name
    return name
