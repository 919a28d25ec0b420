"""Lazy re-exports for the sub-packages: names resolve on first use, so importing a package does no work.

A package lists its sub-modules and the names each provides, and gets back its ``__all__`` and the
module-level ``__getattr__``/``__dir__`` (PEP 562)::

    __all__, __getattr__, __dir__ = lazy_exports(__name__, {"model": ["DeepSetsMembership"]}, globals())

``ocnb.membership.DeepSetsMembership`` then imports ``ocnb.membership.model`` on first access, and
``ocnb.membership.model`` itself is reachable the same way.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, Sequence[str]],
                 module_globals: dict) -> tuple[list[str], Callable, Callable]:
    """``(__all__, __getattr__, __dir__)`` of ``package`` re-exporting ``{sub-module: [names]}`` lazily."""
    where = {name: mod for mod, names in exports.items() for name in names}

    def __getattr__(name: str):
        if name in where:
            return getattr(importlib.import_module(f".{where[name]}", package), name)
        if name in exports:
            return importlib.import_module(f".{name}", package)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(module_globals) | set(where) | set(exports))

    return sorted(where), __getattr__, __dir__
