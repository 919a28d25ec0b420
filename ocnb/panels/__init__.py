"""Widget panels for the notebooks (holoviews/bokeh + ipywidgets), testable without a browser.

``base``  :class:`Panel` (``state()`` / ``set(**values)`` / ``plot()`` / ``controls()``, displayed as
          both in Jupyter), lazy imports with a friendly :class:`MissingDependencyError`
``tour``  the tour notebook's panels: :func:`sky_maps`, :class:`IsochronePanel`, :class:`ClusterExplorer`

Each paper keeps its own panels next to its code (notebook 01: :mod:`ocnb.cmd_ann.panels`, e.g.
``ocnb.cmd_ann.QuadTreeInspector``); this package never imports a paper module. Importing it
imports neither holoviews, bokeh nor ipywidgets.
"""

from __future__ import annotations

from .base import INSTALL_HINT, MissingDependencyError, Panel, PanelValueError, require
from .tour import CMD_AXES, ClusterExplorer, IsochronePanel, cluster_label, init_notebook, sky_maps

__all__ = [
    "CMD_AXES",
    "INSTALL_HINT",
    "ClusterExplorer",
    "IsochronePanel",
    "MissingDependencyError",
    "Panel",
    "PanelValueError",
    "cluster_label",
    "init_notebook",
    "require",
    "sky_maps",
]

# Panels of notebook 01 moved to the paper module (ocnb.panels may not import it).
_MOVED = {"EnsembleIsochronePanel": "ocnb.cmd_ann", "QuadTreeInspector": "ocnb.cmd_ann"}


def __getattr__(name: str):
    if name in _MOVED:
        raise AttributeError(
            f"ocnb.panels.{name} moved to {_MOVED[name]}.{name} (the paper's panels live with the paper module)"
        )
    raise AttributeError(f"module 'ocnb.panels' has no attribute {name!r}")
