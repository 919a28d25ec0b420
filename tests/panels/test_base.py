"""ocnb.panels.base: lazy imports with a friendly error, and set() that names what is wrong."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ocnb.errors import OcnbError
from ocnb.panels import base


def test_import_is_light_and_missing_packages_are_named():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'holoviews', 'ipywidgets'}:\n"
        "            raise ImportError('blocked for the test: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import ocnb.panels, ocnb.cmd_ann.panels\n"
        "assert not {'holoviews', 'bokeh', 'ipywidgets'} & set(sys.modules), 'imported on import'\n"
        "try:\n"
        "    ocnb.panels.IsochronePanel(None)\n"
        "except ocnb.panels.MissingDependencyError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "ocnb panels need ipywidgets" in out and "pip install 'ocnb[notebooks]'" in out
    assert "pip install ipywidgets" in out


def test_missing_dependency_error_is_an_import_error():
    assert issubclass(base.MissingDependencyError, ImportError)
    assert issubclass(base.MissingDependencyError, OcnbError)
    with pytest.raises(base.MissingDependencyError, match=r"need no_such_pkg_xyz, which is not installed"):
        base.require("no_such_pkg_xyz")


def test_moved_panels_say_where_they_went():
    import ocnb.panels

    with pytest.raises(AttributeError, match=r"moved to ocnb\.cmd_ann\.QuadTreeInspector"):
        ocnb.panels.QuadTreeInspector  # noqa: B018


# ---------------------------------------------------------------------------
# a toy panel: set() checks every value before changing anything
# ---------------------------------------------------------------------------
w = pytest.importorskip("ipywidgets")


class Toy(base.Panel):
    def __init__(self):
        self.a = w.FloatSlider(value=1.0, min=0.0, max=2.0)
        self.n = w.IntSlider(value=3, min=1, max=5)
        self.r = w.FloatRangeSlider(value=(1.0, 2.0), min=0.0, max=10.0)
        self.pick = w.Dropdown(options=[("first", "A"), ("second", "B")], value="A")
        self.flag = w.Checkbox(value=False)
        for name in ("a", "n", "r", "pick", "flag"):
            self._control(name, getattr(self, name))


BAD_SET = [
    (dict(b=1.0), r"unknown parameter\(s\) \['b'\] for Toy; use \['a', 'n', 'r', 'pick', 'flag'\]"),
    (dict(a=3.0), r"a = 3 is outside the allowed range \[0, 2\]"),
    (dict(a=float("nan")), r"a = nan: need a number in \[0, 2\]"),
    (dict(a=float("inf")), r"a = inf: need a finite number"),
    (dict(a="1.0"), r"a must be a number, got '1.0'"),
    (dict(n=2.5), r"n = 2.5: need a whole number in \[1, 5\]"),
    (dict(n=0), r"n = 0 is outside the allowed range \[1, 5\]"),
    (dict(r=(3.0, 2.0)), r"r = \(3, 2\): need finite low <= high"),
    (dict(r=(1.0, 11.0)), r"r = \(1, 11\) is outside the allowed range \[0, 10\]"),
    (dict(r=5.0), r"r must be a \(low, high\) pair, got 5.0"),
    (dict(pick="C"), r"pick = 'C' is not one of the options: 'A', 'B'"),
    (dict(flag="yes"), r"flag must be True or False, got 'yes'"),
    (dict(a=0.5, n=9), r"n = 9 is outside"),  # a valid value next to a bad one: nothing is changed
]


@pytest.mark.parametrize(("values", "match"), BAD_SET)
def test_set_rejects_bad_values(values, match):
    toy = Toy()
    before = toy.state()
    with pytest.raises(base.PanelValueError, match=match):
        toy.set(**values)
    assert toy.state() == before


def test_set_clip_none_and_roundtrip():
    toy = Toy()
    toy.set(a=5.0, n=-3, r=(-1.0, 20.0), clip=True)
    assert toy.state()["a"] == 2.0 and toy.state()["n"] == 1 and toy.state()["r"] == (0.0, 10.0)
    toy.set(a=np.nan, clip=True)  # NaN skipped when clipping
    assert toy.state()["a"] == 2.0
    toy.set(a=None, pick="second", flag=np.bool_(True))  # None leaves a value alone; labels are accepted
    assert toy.state()["pick"] == "B" and toy.state()["flag"] is True and toy.state()["a"] == 2.0
    st = toy.state()
    toy.set(**st)
    assert toy.state() == st
    with pytest.raises(NotImplementedError):
        toy.plot()
