"""The base of every ocnb widget panel: state in ipywidgets, plots in holoviews (bokeh).

A panel keeps its state in ipywidgets and draws holoviews ``DynamicMap`` objects fed by
streams, so its behaviour is testable in plain Python, without a browser:

* :meth:`Panel.state` returns the current values (a dict);
* :meth:`Panel.set` changes them as a user would with the widgets (unknown names and values
  out of a widget's range raise :class:`PanelValueError`, which names the key, the value and
  the allowed range or options);
* :meth:`Panel.plot` returns the holoviews object, :meth:`Panel.controls` the ipywidgets box;
* displaying a panel in Jupyter shows both.

holoviews, bokeh and ipywidgets are imported when a panel is built, not when ``ocnb.panels``
is imported; when one is missing, :class:`MissingDependencyError` names it and the install
command.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import OcnbError

__all__ = [
    "INSTALL_HINT",
    "MissingDependencyError",
    "Panel",
    "PanelValueError",
    "hv",
    "require",
    "widgets",
]

#: How to install the notebook extras (holoviews, bokeh, ipywidgets, datashader...).
INSTALL_HINT = "pip install 'ocnb[notebooks]'"


class MissingDependencyError(OcnbError, ImportError):
    """An optional package that a panel needs is not installed (the message gives the install command)."""


class PanelValueError(OcnbError, ValueError):
    """:meth:`Panel.set` got an unknown name or a value outside what the widget allows."""


def require(*packages: str) -> None:
    """Import ``packages`` or raise :class:`MissingDependencyError` naming the missing ones."""
    missing = []
    for name in packages:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        names = ", ".join(missing)
        raise MissingDependencyError(
            f"ocnb panels need {names}, which {'is' if len(missing) == 1 else 'are'} not installed: "
            f"{INSTALL_HINT} (or pip install {' '.join(missing)})"
        )


def hv():
    """holoviews with the bokeh backend selected (nothing is displayed, no notebook extension loaded)."""
    require("holoviews", "bokeh")
    import holoviews
    import holoviews.plotting.bokeh

    if holoviews.Store.current_backend != "bokeh":
        holoviews.Store.set_current_backend("bokeh")
    return holoviews


def widgets():
    """The ipywidgets module (or :class:`MissingDependencyError`)."""
    require("ipywidgets")
    import ipywidgets

    return ipywidgets


_SKIP = object()


@dataclass
class Control:
    """One settable entry of a panel's state.

    ``widget``: the ipywidget holding the value (None for a derived entry); ``get``/``put``
    override how the value is read/written; ``check(value, clip)`` converts and validates a
    requested value (return it, or raise :class:`PanelValueError`).
    """

    widget: Any = None
    get: Callable[[], Any] | None = None
    put: Callable[[Any], None] | None = None
    check: Callable[[Any, bool], Any] | None = None

    def read(self):
        return self.get() if self.get is not None else self.widget.value

    def write(self, value) -> None:
        if self.put is not None:
            self.put(value)
        else:
            self.widget.value = value


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _number(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise PanelValueError(f"{name} must be a number, got {v!r}")
    return float(v)


def check_widget_value(name: str, widget, value, clip: bool = False):
    """Validate ``value`` for ``widget`` (sliders: range; dropdowns: options; checkboxes: bool).

    With ``clip=True`` numbers are clipped to a slider's range and NaN is skipped (returns the
    private skip marker); otherwise out-of-range values and NaN raise :class:`PanelValueError`.
    """
    kind = type(widget).__name__
    if kind in ("FloatSlider", "IntSlider", "BoundedFloatText", "BoundedIntText", "FloatLogSlider"):
        lo, hi = float(widget.min), float(widget.max)
        if _is_missing(value):
            if clip:
                return _SKIP
            raise PanelValueError(f"{name} = {value!r}: need a number in [{lo:g}, {hi:g}] (clip=True skips NaN)")
        v = _number(name, value)
        if not math.isfinite(v):
            raise PanelValueError(f"{name} = {v!r}: need a finite number in [{lo:g}, {hi:g}]")
        if clip:
            v = min(max(v, lo), hi)
        elif not lo - 1e-9 <= v <= hi + 1e-9:
            raise PanelValueError(f"{name} = {v:g} is outside the allowed range [{lo:g}, {hi:g}]")
        if kind.startswith(("IntSlider", "BoundedInt")):
            if not float(v).is_integer():
                raise PanelValueError(f"{name} = {v:g}: need a whole number in [{lo:g}, {hi:g}]")
            return int(v)
        return min(max(v, lo), hi)
    if kind in ("FloatRangeSlider", "IntRangeSlider"):
        lo, hi = float(widget.min), float(widget.max)
        try:
            a, b = value
        except (TypeError, ValueError):
            raise PanelValueError(f"{name} must be a (low, high) pair, got {value!r}") from None
        a, b = _number(name, a), _number(name, b)
        if not (math.isfinite(a) and math.isfinite(b)) or a > b:
            raise PanelValueError(f"{name} = ({a:g}, {b:g}): need finite low <= high")
        if clip:
            a, b = min(max(a, lo), hi), min(max(b, lo), hi)
        elif not (lo - 1e-9 <= a and b <= hi + 1e-9):
            raise PanelValueError(f"{name} = ({a:g}, {b:g}) is outside the allowed range [{lo:g}, {hi:g}]")
        return (int(a), int(b)) if kind == "IntRangeSlider" else (a, b)
    if kind in ("Checkbox", "ToggleButton"):
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise PanelValueError(f"{name} must be True or False, got {value!r}")
    if hasattr(widget, "options"):  # Dropdown, SelectionSlider, RadioButtons, ToggleButtons ...
        values = list(getattr(widget, "_options_values", widget.options))
        labels = list(getattr(widget, "_options_labels", values))
        if value in values and not (value is None and None not in values):
            return value
        if isinstance(value, str) and value in labels:
            return values[labels.index(value)]
        shown = ", ".join(repr(v) for v in values[:12]) + (" ..." if len(values) > 12 else "")
        raise PanelValueError(f"{name} = {value!r} is not one of the options: {shown}")
    return value


class Panel:
    """Base class of ocnb's panels.

    Subclasses build their widgets, register the settable ones with :meth:`_control`, and
    implement :meth:`plot` and :meth:`controls`; :meth:`state` may add derived entries
    (counts, flags) to the registered values: ``set(**{k: state()[k] for k in settable})`` is always
    accepted and changes nothing.
    """

    def _control(self, name: str, widget=None, **kw) -> None:
        if not hasattr(self, "_controls"):
            self._controls: dict[str, Control] = {}
        self._controls[name] = Control(widget=widget, **kw)

    @property
    def settable(self) -> list[str]:
        """Names accepted by :meth:`set`."""
        return list(getattr(self, "_controls", {}))

    def state(self) -> dict:
        """Current values of the settable entries (subclasses add derived ones)."""
        return {k: c.read() for k, c in getattr(self, "_controls", {}).items()}

    def set(self, clip: bool = False, **values) -> None:
        """Set entries as a user would with the widgets; the plots follow.

        Every value is checked before any is set: an unknown name, or a value outside the
        widget's range or options (NaN included), raises :class:`PanelValueError` and changes
        nothing. ``None`` leaves an entry unchanged. ``clip=True`` clips numbers to the slider
        ranges and skips NaN instead.
        """
        controls = getattr(self, "_controls", {})
        unknown = [k for k in values if k not in controls]
        if unknown:
            raise PanelValueError(f"unknown parameter(s) {unknown} for {type(self).__name__}; use {list(controls)}")
        checked = {}
        for k, v in values.items():
            c = controls[k]
            if v is None:
                continue  # None leaves an entry as it is (states may hold None for a disabled control)
            if c.check is not None:
                new = c.check(v, clip)
            elif c.widget is not None:
                new = check_widget_value(k, c.widget, v, clip)
            else:
                new = v
            if new is not _SKIP:
                checked[k] = new
        for k, v in checked.items():
            controls[k].write(v)

    def plot(self):
        """The holoviews object (DynamicMaps follow the widgets)."""
        raise NotImplementedError

    def controls(self):
        """The ipywidgets box of the panel's controls."""
        raise NotImplementedError

    def _ipython_display_(self):
        from IPython.display import display

        display(self.controls())
        display(self.plot())
