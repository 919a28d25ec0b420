"""Shipped real data for ocnb: cluster catalogues, members, fields, spectra.

Everything here reads the checksummed package data in ``ocnb/data`` (built by
``tools/curate_data.py`` from public repositories; see :func:`provenance`).
A file that fails its SHA-256 check raises
:class:`~ocnb.errors.DataIntegrityError` and is never used.

The online helpers :func:`gaia_cone_search` and :func:`hunt2023_members` live
in :mod:`ocnb.datasets.online` and are imported on first use, so importing
this package does not import astroquery.
"""

from __future__ import annotations

import importlib

from . import members as _members
from . import spectra as _spectra
from ._registry import data_path, list_datasets, package_data_dir, provenance, registry, verify
from .catalogs import available_catalogs, literature_parameters, literature_scatter, load_catalog, load_clusters
from .members import (
    CONE_SELECTIONS,
    CORR_COLUMNS,
    MEMBER_COLUMNS,
    MEMBER_SOURCES,
    list_fields,
    list_member_clusters,
    load_error_spline,
    load_field,
    load_members,
    mag_error_from_flux_over_error,
)
from .names import cluster_key, known_cluster_names, normalize_name, resolve_cluster_name
from .spectra import (
    Spectra,
    XPCoefficients,
    apogee_wavelength,
    list_xp_files,
    load_apogee_element_windows,
    load_apogee_labels,
    load_apogee_masks,
    load_apogee_spectra,
    load_cannon_model,
    load_cannon_training_labels,
    load_linelist,
    load_occam,
    load_rvs_spectra,
    load_xp_coefficients,
    load_xp_sample,
    xp_config_file,
)

_ONLINE = {"gaia_cone_search", "hunt2023_members"}

__all__ = [
    # registry
    "list_datasets",
    "provenance",
    "verify",
    "registry",
    "data_path",
    "package_data_dir",
    # names
    "resolve_cluster_name",
    "cluster_key",
    "normalize_name",
    "known_cluster_names",
    # catalogues
    "available_catalogs",
    "load_catalog",
    "load_clusters",
    "literature_parameters",
    "literature_scatter",
    # members and fields, spectra: as those modules list them
    *_members.__all__,
    *_spectra.__all__,
    # online (lazy)
    "gaia_cone_search",
    "hunt2023_members",
]


def __getattr__(name: str):
    if name in _ONLINE or name == "online":
        online = importlib.import_module(".online", __name__)
        return online if name == "online" else getattr(online, name)
    raise AttributeError(f"module 'ocnb.datasets' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _ONLINE)
