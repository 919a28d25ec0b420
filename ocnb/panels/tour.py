"""Panels of the tour notebook (00): sky maps, an isochrone over a member CMD, a cluster explorer.

Call :func:`init_notebook` once per notebook: it loads BokehJS *inline* so the panels work
without a CDN (JupyterHubs and this project's browsers have no internet).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from contextlib import contextmanager

import numpy as np
import pandas as pd

from .base import _SKIP, Panel, PanelValueError, check_widget_value, hv, require, widgets

__all__ = ["CMD_AXES", "ClusterExplorer", "IsochronePanel", "cluster_label", "init_notebook", "sky_maps"]

#: colour/magnitude definitions of the CMDs the panels can draw: name -> (blue band, red band, magnitude band)
CMD_AXES = {
    "Gaia (BP-RP, G)": ("BP", "RP", "G"),
    "2MASS (J-Ks, Ks)": ("J", "Ks", "Ks"),
    "Gaia+2MASS (BP-RP, J)": ("BP", "RP", "J"),
}


def init_notebook() -> None:
    """Load the holoviews bokeh extension with every resource inline (no CDN), once per notebook.

    * BokehJS, HoloViews' and Panel's JavaScript *and* Panel's stylesheets are embedded in the
      notebook: HoloViews renders through Panel, whose CSS (``loading.css``, themes ...) would
      otherwise come from ``cdn.holoviz.org``, which JupyterHubs without internet cannot reach.
    * The kernel keeps the messages that a plot's comm sends before its ``comm_open`` has been
      processed, and delivers them once it has (see :mod:`ocnb.panels._comms`): JupyterLab with
      ipykernel 7 sends them to a subshell ahead of the ``comm_open`` while the main shell is still
      running cells, and ipykernel would drop them with ``No such comm`` on stderr.
    """
    holo = hv()
    require("panel")
    import panel

    from ._comms import hold_early_comm_messages

    panel.config.inline = True
    from panel.viewable import Viewable

    # HoloViews renders its plots through Panel but does not apply Panel's inline setting to the
    # stylesheets of the models it builds; a preprocessing hook (Panel's extension point, run on
    # every render and update) swaps their CDN links for the CSS that Panel ships.
    if _inline_stylesheets not in Viewable._preprocessing_hooks:
        Viewable._preprocessing_hooks.append(_inline_stylesheets)
    holo.extension("bokeh", inline=True, logo=False)
    hold_early_comm_messages()


@functools.lru_cache(maxsize=64)
def _shipped_css(url: str) -> str | None:
    """The text of Panel's stylesheet ``url`` (a ``cdn.holoviz.org`` link) from the installed package, or None."""
    from panel.io.resources import CDN_DIST, DIST_DIR

    if not url.startswith(CDN_DIST):
        return None
    path = DIST_DIR / url[len(CDN_DIST):].split("?")[0]
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _inline_stylesheets(viewable, root) -> None:
    """Panel preprocessing hook: every CDN stylesheet of ``root``'s models becomes an inline one."""
    from bokeh.models import ImportedStyleSheet, InlineStyleSheet, UIElement

    for model in root.select({"type": UIElement}):
        sheets, changed = [], False
        for sheet in model.stylesheets:
            css = _shipped_css(sheet.url) if isinstance(sheet, ImportedStyleSheet) else None
            if css is not None:
                sheet, changed = InlineStyleSheet(css=css), True
            sheets.append(sheet)
        if changed:
            model.stylesheets = sheets


def padded_range(values, pad: float = 0.05) -> tuple[float, float] | None:
    """(min, max) of the finite ``values`` widened by ``pad`` of the span on each side (None if none)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return None
    lo, hi = float(v.min()), float(v.max())
    half = max(hi - lo, 0.1) * pad
    return lo - half, hi + half


def framed(layers, ranges: dict, **opts):
    """An Overlay of ``layers`` whose frame is ``ranges`` in every frame of a DynamicMap (see :func:`frame_opts`)."""
    holo = hv()
    return holo.Overlay([layer.opts(framewise=True) for layer in layers]).opts(**opts, **frame_opts(ranges))


def frame_opts(ranges: dict) -> dict:
    """Plot options that put the frame on ``ranges`` (``{"x": (lo, hi) or None, "y": ...}``), every frame.

    Set on the overlay a DynamicMap returns (with ``framewise`` on every layer, :func:`framed`),
    ``xlim``/``ylim`` are re-applied at each update, also inside a Layout; ``framewise``
    normalisation alone kept the first cluster's ranges there (and bokeh's Reset went back to them).
    """
    opts = {"framewise": True}
    for axis in ("x", "y"):
        if ranges.get(axis) is not None:
            opts[f"{axis}lim"] = tuple(float(v) for v in ranges[axis])
    return opts


# ---------------------------------------------------------------------------
# Sky and Galactic maps
# ---------------------------------------------------------------------------
def sky_maps(clusters: pd.DataFrame, color: str = "log_age", width: int = 420, height: int = 300,
             datashade: bool = True):
    """Clusters on the sky (l, b) and in the Galactic plane (X, Y), coloured by age.

    Parameters
    ----------
    clusters : DataFrame
        ``ocnb.datasets.load_clusters()``: columns ``l, b`` [deg], ``x, y`` [kpc, heliocentric],
        ``log_age`` [dex].
    datashade : bool
        Rasterise with datashader (mean log age per pixel); otherwise plain points with hover.
    """
    holo = hv()
    missing = [c for c in ("l", "b", "x", "y", color, "name") if c not in clusters]
    if missing:
        raise KeyError(f"sky_maps needs column(s) {missing} (use ocnb.datasets.load_clusters())")
    data = clusters.dropna(subset=["l", "b", "x", "y", color]).copy()
    if data.empty:
        raise ValueError(f"sky_maps: no cluster with finite l, b, x, y and {color}")
    # l in (-180, 180] puts the Galactic centre in the middle of the map.
    data["l_wrap"] = np.where(data["l"] > 180, data["l"] - 360, data["l"])
    vdims = [color, "name"]
    sky = holo.Points(data, kdims=["l_wrap", "b"], vdims=vdims, label="Sky (Galactic)")
    plane = holo.Points(data, kdims=["x", "y"], vdims=vdims, label="Galactic plane (Sun at 0)")
    # Square, equal-range frame for the plane so that distances are not distorted.
    half = float(np.ceil(np.nanpercentile(np.abs(np.r_[data["x"], data["y"]]), 99.5)))
    common = dict(cmap="viridis", colorbar=True, tools=["hover"])
    sky_opts = dict(frame_width=width, frame_height=height // 2 + 60, xlabel="l [deg]", ylabel="b [deg]",
                    invert_xaxis=True)
    plane_opts = dict(frame_width=height, frame_height=height, xlim=(-half, half), ylim=(-half, half),
                      xlabel="X [kpc] (to the Galactic centre)", ylabel="Y [kpc]")
    if datashade:
        import datashader as ds
        from holoviews.operation.datashader import dynspread, rasterize

        def shade(points, **opts):
            img = rasterize(points, aggregator=ds.mean(color), dynamic=False)
            return dynspread(img, threshold=0.6, max_px=3).opts(clabel="log age", **common, **opts)

        sky_el, plane_el = shade(sky, **sky_opts), shade(plane, **plane_opts)
    else:
        sky_el = sky.opts(color=color, size=3, **common, **sky_opts)
        plane_el = plane.opts(color=color, size=3, **common, **plane_opts)
    return (sky_el + plane_el).opts(shared_axes=False)


# ---------------------------------------------------------------------------
# Isochrone overlay
# ---------------------------------------------------------------------------
class IsochronePanel(Panel):
    """A member CMD with a PARSEC isochrone that follows four sliders.

    Sliders: log age [dex], [M/H] [dex], A_V [mag] and the true distance modulus [mag]. The
    isochrone is interpolated by :class:`ocnb.isochrones.IsochroneGrid` and reddened star by
    star with the Teff-dependent extinction of :mod:`ocnb.photometry`. The axes follow the
    members (their full extent, padded), not the isochrone, so that moving a slider moves the
    isochrone and not the frame; with no members they follow the isochrone.

    Parameters
    ----------
    members : DataFrame
        Member table in the canonical schema (``phot_g_mean_mag`` ...).
    cmd : str
        One of :data:`CMD_AXES`.
    log_age, mh, a_v, dist_mod : float
        Starting values (clipped to the slider ranges).
    grid : IsochroneGrid, optional
        Defaults to ``IsochroneGrid.load()``.
    title : str
        Plot title (default: the CMD name).
    """

    def __init__(self, members: pd.DataFrame, cmd: str = "Gaia (BP-RP, G)", log_age: float = 9.0,
                 mh: float = 0.0, a_v: float = 0.1, dist_mod: float = 9.0, grid=None, title: str = ""):
        if cmd not in CMD_AXES:
            raise PanelValueError(f"unknown CMD {cmd!r}; choose one of {list(CMD_AXES)}")
        w = widgets()
        holo = hv()
        from .. import isochrones

        self.grid = grid if grid is not None else isochrones.IsochroneGrid.load()
        self.cmd = cmd
        self.title = title
        self.members = members
        self.note = ""
        lo_age, hi_age = self.grid.age_range
        lo_mh, hi_mh = self.grid.mh_range
        style = {"description_width": "70px"}
        layout = w.Layout(width="340px")
        common = dict(style=style, layout=layout, continuous_update=False, readout_format=".2f", step=0.01)
        self.sliders = {
            "log_age": w.FloatSlider(value=float(np.clip(log_age, lo_age, hi_age)), min=lo_age, max=hi_age,
                                     description="log age", **common),
            "mh": w.FloatSlider(value=float(np.clip(mh, lo_mh, hi_mh)), min=lo_mh, max=hi_mh,
                                description="[M/H]", **common),
            "a_v": w.FloatSlider(value=float(np.clip(a_v, 0, 6)), min=0.0, max=6.0, description="A_V", **common),
            "dist_mod": w.FloatSlider(value=float(np.clip(dist_mod, 0, 18)), min=0.0, max=18.0,
                                      description="(m-M)_0", **common),
        }
        for k, s in self.sliders.items():
            self._control(k, s)
        self.readout = w.HTML()
        self._stream = holo.streams.Stream.define("IsochroneParams", **self.state())()
        self._members_stream = holo.streams.Stream.define("Members", version=0)()
        for s in self.sliders.values():
            s.observe(self._on_change, names="value")
        self._update_readout()

    # -- state ----------------------------------------------------------------
    def state(self) -> dict:
        """Current slider values: ``log_age, mh, a_v, dist_mod``."""
        return {k: float(s.value) for k, s in self.sliders.items()}

    def set_members(self, members: pd.DataFrame, title: str = "", note: str = "") -> None:
        """Show another member table (``note`` is drawn on an empty CMD instead of the stars)."""
        self.members = members
        self.title = title
        self.note = note
        self._emit(self._members_stream, version=self._members_stream.version + 1)

    def _on_change(self, _change=None) -> None:
        self._emit(self._stream, **self.state())
        self._update_readout()

    def _emit(self, stream, **values) -> None:
        if getattr(self, "_held", 0):
            stream.update(**values)  # new values, drawn once when the hold ends
            self._pending = True
        else:
            stream.event(**values)

    @contextmanager
    def hold(self):
        """Batch changes (new members, several sliders): the plot is redrawn once, at the end."""
        self._held = getattr(self, "_held", 0) + 1
        try:
            yield self
        finally:
            self._held -= 1
            if not self._held and getattr(self, "_pending", False):
                self._pending = False
                hv().streams.Stream.trigger([self._members_stream, self._stream])

    def _update_readout(self) -> None:
        s = self.state()
        d_pc = 10 ** ((s["dist_mod"] + 5) / 5)
        self.readout.value = (f"age {10 ** (s['log_age'] - 6):,.0f} Myr &nbsp; [M/H] {s['mh']:+.2f} &nbsp; "
                              f"A_V {s['a_v']:.2f} mag &nbsp; distance {d_pc:,.0f} pc")

    # -- data -----------------------------------------------------------------
    def isochrone_frame(self, **params) -> pd.DataFrame:
        """The isochrone as drawn: apparent colour and magnitude columns ``x, y`` plus ``label``."""
        p = {**self.state(), **params}
        iso = self.grid.isochrone(p["log_age"], p["mh"])
        app = iso.apparent(p["dist_mod"], p["a_v"])
        blue, red, mag = CMD_AXES[self.cmd]
        return pd.DataFrame({"x": np.asarray(app[blue]) - np.asarray(app[red]), "y": np.asarray(app[mag]),
                             "label": np.asarray(iso["label"]), "mini": np.asarray(iso["mini"])})

    def members_frame(self) -> pd.DataFrame:
        """Member colours and magnitudes for the chosen CMD (rows with NaN dropped)."""
        from ..photometry import MEMBER_COLUMNS

        blue, red, mag = CMD_AXES[self.cmd]
        cols = [MEMBER_COLUMNS[b] for b in (blue, red, mag)]
        if any(c not in self.members for c in cols):
            return pd.DataFrame({"x": np.array([], float), "y": np.array([], float)})
        blue_m, red_m, mag_m = (self.members[c].to_numpy(dtype=float) for c in cols)
        frame = pd.DataFrame({"x": blue_m - red_m, "y": mag_m})
        return frame.dropna().reset_index(drop=True)

    def axis_ranges(self) -> dict:
        """``{"x": (lo, hi), "y": (lo, hi)}`` the plot shows: the members' extent, padded (else the isochrone's)."""
        df = self.members_frame()
        if not len(df):
            df = self.isochrone_frame()
        return {"x": padded_range(df["x"]), "y": padded_range(df["y"])}

    # -- views ----------------------------------------------------------------
    def _dims(self):
        holo = hv()
        blue, red, mag = CMD_AXES[self.cmd]
        return (holo.Dimension("x", label=f"{blue} - {red}", unit="mag"),
                holo.Dimension("y", label=mag, unit="mag"))

    def _members_layers(self):
        """(stars, note text, note): the members, or an empty layer and a note where there are none.

        Every frame has the same layers with the same (empty) labels: holoviews matches a
        DynamicMap's layers by type, group and label, and a label that changes (a star count,
        a note) makes it add new glyphs to the live plot and hide the old ones, which BokehJS and
        the kernel then disagree about ("reference already known", "reference ... isn't known").
        The star count goes into the title, the note into the text layer only.
        """
        holo = hv()
        df = self.members_frame()
        xd, yd = self._dims()
        stars = holo.Scatter(df, xd, yd, label="members")
        if len(df):
            note = ""
            text = holo.Text(float(df["x"].median()), float(df["y"].median()), "", kdims=[xd, yd])
        else:
            # No members with this CMD's photometry: say so instead of drawing an empty "members (0)".
            note = self.note or f"no members with {self.cmd} photometry"
            frame = self.axis_ranges()  # the isochrone's: the note goes in the middle of the plot
            text = holo.Text(float(np.mean(frame["x"])), float(np.mean(frame["y"])), note, kdims=[xd, yd])
        stars = stars.opts(color="#444444", size=3, alpha=0.6)
        text = text.opts(text_color="#555555", text_font_size="10pt", text_align="center", text_baseline="middle")
        return stars, text, note

    def _plot_isochrone(self, **params):
        holo = hv()
        df = self.isochrone_frame(**params)
        # Break the line between evolutionary phases so jumps are not drawn as segments.
        paths = [g[["x", "y"]].to_numpy() for _, g in df.groupby("label", sort=True)]
        return holo.Path(paths, kdims=["x", "y"], label="PARSEC isochrone").opts(color="#d62728", line_width=2,
                                                                                 show_legend=True)

    def _extra_layers(self) -> list:
        """Static layers drawn between the members and the isochrone (subclasses)."""
        return []

    def _plot(self, version=0, **params):
        stars, text, note = self._members_layers()
        title = self.title or self.cmd
        if not note:
            title = f"{title} ({len(stars)} stars)"
        layers = [stars, text, *self._extra_layers(), self._plot_isochrone(**params)]
        return framed(layers, self.axis_ranges(), title=title)

    def plot(self):
        """holoviews DynamicMap: members, isochrone (follows the sliders); axes follow the members."""
        holo = hv()
        if not hasattr(self, "_dmap"):
            # One DynamicMap for both streams: the title follows the cluster, and the frame is computed
            # from this frame's layers only (two overlaid DynamicMaps kept the union of old and new ranges).
            self._dmap = holo.DynamicMap(self._plot, streams=[self._members_stream, self._stream]).opts(
                width=460, height=420, invert_yaxis=True, framewise=True, legend_position="top_right",
                show_grid=True)
        return self._dmap

    def controls(self):
        w = widgets()
        return w.VBox([*self.sliders.values(), self.readout])


# ---------------------------------------------------------------------------
# Tour explorer: cluster picker + CMDs + literature solutions
# ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _common_names() -> dict[str, str]:
    """canonical name -> its first common name (M67, Pleiades, Hyades, Praesepe, ...); built once per session."""
    from .. import datasets
    from ..datasets.names import COMMON_NAMES

    out: dict[str, str] = {}
    for alias in COMMON_NAMES:
        try:
            out.setdefault(datasets.resolve_cluster_name(alias), alias)
        except KeyError:  # an alias that the shipped catalogues do not resolve
            continue
    return out


def cluster_label(name: str, common: dict[str, str] | None = None) -> str:
    """``"M67 (NGC 2682)"`` for a cluster with a common name, else the canonical name."""
    common = _common_names() if common is None else common
    return f"{common[name]} ({name})" if name in common else name


class ClusterExplorer(Panel):
    """Pick a cluster with real members, look at its CMDs, fit an isochrone by eye.

    The picker shows common names (``M67 (NGC 2682)``, ``Pleiades (Melotte 22)``); a second
    dropdown chooses among the cluster's shipped member lists (default: the largest). Buttons
    load the literature solutions (Hunt & Reffert 2023, Cantat-Gaudin 2020, Dias 2021,
    Cavallo 2024) into the sliders; the active one is highlighted and named in the info line
    ("modified" once a slider moves). The Gaia CMD is always drawn; the 2MASS CMD when the
    member list has 2MASS photometry, otherwise it says so.

    Parameters
    ----------
    clusters : iterable of str, optional
        Cluster names offered by the picker (any spelling; default: all clusters with shipped members).
    start : str
        Initial cluster (any spelling, e.g. ``"M67"``).
    catalogs : tuple of str
        Literature catalogues offered as buttons.
    grid : IsochroneGrid, optional
    """

    CATALOGS = ("HUNT2023", "CANTAT2020", "DIAS2021", "CAVALLO2024")

    def __init__(self, clusters: Iterable[str] | None = None, start: str = "M67", catalogs=CATALOGS, grid=None):
        w = widgets()
        from .. import datasets, isochrones

        self._datasets = datasets
        self.catalogs = tuple(catalogs)
        self._lists = datasets.list_member_clusters()
        available = list(dict.fromkeys(self._lists["cluster"]))
        if clusters is None:
            names = available
        else:
            names = list(dict.fromkeys(datasets.resolve_cluster_name(c) for c in clusters))
        self.start = datasets.resolve_cluster_name(start)
        if self.start not in names:
            names = [self.start, *names]
        no_members = [n for n in names if n not in set(available)]
        if no_members:
            raise PanelValueError(f"no shipped member list for {no_members}; clusters with members: {available}")
        common = _common_names()
        # Clusters with a common name first (M67, Pleiades ...), then the others, each group alphabetical.
        names = sorted(names, key=lambda n: (n not in common, cluster_label(n, common).lower()))
        self.grid = grid if grid is not None else isochrones.IsochroneGrid.load()
        self.picker = w.Dropdown(options=[(cluster_label(n, common), n) for n in names], value=self.start,
                                 description="cluster", layout=w.Layout(width="340px"))
        self.source = w.Dropdown(options=self._source_options(self.start), description="members",
                                 layout=w.Layout(width="420px"))
        self.buttons = {c: w.Button(description=c, tooltip=f"load the {c} solution into the sliders",
                                    layout=w.Layout(width="130px")) for c in self.catalogs}
        for cat, b in self.buttons.items():
            b.on_click(lambda _b, cat=cat: self.load_solution(cat))
        self.info = w.HTML()
        self.solution: str | None = None
        self.modified = False
        self._loading = False
        self._member_cache: dict[tuple[str, str], pd.DataFrame] = {}
        members = self._members(self.start, self.source.value)
        self.gaia = IsochronePanel(members, "Gaia (BP-RP, G)", grid=self.grid)
        self.tmass = IsochronePanel(members, "2MASS (J-Ks, Ks)", grid=self.grid)
        # One set of sliders drives both CMDs.
        for key, s in self.gaia.sliders.items():
            s.observe(lambda ch, key=key: self._on_slider(key, ch["new"]), names="value")
        self._control("cluster", self.picker, check=self._check_cluster, put=self.select)
        self._control("source", self.source, check=self._check_source, put=self.select_source)
        for key, s in self.gaia.sliders.items():
            self._control(key, s)
        self._control("solution", get=lambda: self.solution, check=self._check_solution, put=self.load_solution)
        self.picker.observe(lambda ch: self._on_pick(ch["new"]), names="value")
        self.source.observe(lambda ch: self._show(), names="value")
        self._on_pick(self.start)

    # -- member lists -------------------------------------------------------------
    def _source_options(self, name: str) -> list[tuple[str, str]]:
        rows = self._lists[self._lists["cluster"] == name].sort_values("n_stars", ascending=False, kind="stable")
        return [(f"{r.source}: {r.n_stars} stars ({r.bands})", str(r.source)) for r in rows.itertuples()]

    def _members(self, name: str, source: str) -> pd.DataFrame:
        key = (name, source)
        if key not in self._member_cache:
            self._member_cache[key] = self._datasets.load_members(name, source=source)
        return self._member_cache[key]

    @property
    def cluster(self) -> str:
        """Canonical name of the cluster shown."""
        return self.picker.value

    def literature(self) -> pd.DataFrame:
        """Literature parameters of the current cluster (one row per catalogue)."""
        return self._datasets.literature_parameters(self.cluster, catalogs=self.catalogs)

    def state(self) -> dict:
        """``cluster, source, log_age, mh, a_v, dist_mod, solution`` plus ``label, n_members, has_2mass, modified``."""
        st = super().state()
        st.update(label=cluster_label(self.cluster), n_members=len(self.gaia.members),
                  has_2mass=bool(len(self.tmass.members_frame())), modified=self.modified)
        return st

    def set(self, clip: bool = False, **values) -> None:
        """As :meth:`Panel.set`; ``cluster`` is applied first, so ``source`` may name one of its lists."""
        unknown = [k for k in values if k not in self.settable]
        if unknown:
            raise PanelValueError(f"unknown parameter(s) {unknown} for ClusterExplorer; use {self.settable}")
        if "cluster" in values:
            super().set(clip=clip, cluster=values.pop("cluster"))
        if values:
            super().set(clip=clip, **values)

    # -- checks for set() -----------------------------------------------------------
    def _check_cluster(self, value, clip):
        try:
            name = self._datasets.resolve_cluster_name(value)
        except KeyError as exc:
            raise PanelValueError(f"cluster = {value!r}: {exc}") from None
        return check_widget_value("cluster", self.picker, name, clip)

    def _check_source(self, value, clip):
        return check_widget_value("source", self.source, value, clip)

    def _check_solution(self, value, clip):
        if value is None:
            return _SKIP  # "no solution chosen": nothing to load
        lit = set(self.literature()["catalog"])
        if value not in lit:
            raise PanelValueError(f"solution = {value!r}: {self.cluster} has solutions from {sorted(lit)}")
        return value

    # -- actions --------------------------------------------------------------------
    def select(self, name: str) -> None:
        """Show cluster ``name`` (any spelling): its largest member list and its first literature solution."""
        name = self._datasets.resolve_cluster_name(name)
        if self.picker.value != name:
            self.picker.value = name  # triggers _on_pick through the observer
        else:
            self._on_pick(name)

    def _on_pick(self, name: str) -> None:
        with self.gaia.hold(), self.tmass.hold():  # members and four sliders: one redraw per CMD
            self._pick(name)

    def _pick(self, name: str) -> None:
        options = self._source_options(name)
        if list(self.source.options) != options:
            self._switching = True
            try:
                self.source.options = options  # resets the value to the first (largest) list
                self.source.value = options[0][1]
            finally:
                self._switching = False
        self._show()
        lit = self.literature()
        for cat, b in self.buttons.items():
            b.disabled = cat not in set(lit["catalog"])
        first = next((c for c in self.catalogs if c in set(lit["catalog"])), None)
        if first is not None:
            self.load_solution(first)
        else:
            self.solution, self.modified = None, False
            self._update_info()

    def select_source(self, source: str) -> None:
        """Show the cluster's ``source`` member list (``iso``, ``almeida``, ``dr3_cone``)."""
        self.source.value = source

    def _show(self) -> None:
        if getattr(self, "_switching", False) or self.source.value is None:
            return
        name, src = self.cluster, self.source.value
        members = self._members(name, src)
        has_2mass = "ks_m" in members and members["ks_m"].notna().sum() >= 10
        label = cluster_label(name)
        self.gaia.set_members(members, title=f"{label}: Gaia")
        note = "" if has_2mass else f"no 2MASS photometry in the {src!r} list (Gaia only)"
        self.tmass.set_members(members if has_2mass else members.iloc[:0], title=f"{label}: 2MASS", note=note)
        self._update_info()

    def _on_slider(self, key: str, value) -> None:
        self.tmass.set(**{key: value}, clip=True)
        if not self._loading and self.solution is not None and not self.modified:
            self.modified = True
            self._update_info()

    def load_solution(self, catalog: str) -> dict:
        """Set the sliders to ``catalog``'s solution for the current cluster; returns the values used.

        Values outside the isochrone grid are clipped to it; a missing [Fe/H] uses 0.
        """
        lit = self.literature().set_index("catalog")
        if catalog not in lit.index:
            raise KeyError(f"{catalog} has no solution for {self.cluster}")
        row = lit.loc[catalog]
        values = {"log_age": row.get("log_age"), "a_v": row.get("a_v"), "dist_mod": row.get("dist_mod")}
        feh = row.get("feh")
        values["mh"] = feh if feh is not None and np.isfinite(feh) else 0.0
        self._loading = True
        try:
            with self.gaia.hold(), self.tmass.hold():  # four sliders: one redraw per CMD
                self.gaia.set(**values, clip=True)
        finally:
            self._loading = False
        self.solution, self.modified = catalog, False
        for cat, b in self.buttons.items():
            b.button_style = "success" if cat == catalog else ""
        self._update_info()
        return {k: (float(v) if v is not None else None) for k, v in values.items()}

    def _update_info(self) -> None:
        members = self.gaia.members
        src = members.attrs.get("source", self.source.value)
        n_2mass = len(self.tmass.members_frame())
        sol = "none" if self.solution is None else f"<b>{self.solution}</b>" + (
            " (modified by hand)" if self.modified else "")
        self.info.value = (f"<b>{cluster_label(self.cluster)}</b>: {len(members)} members ({src}); "
                           f"2MASS: {f'yes ({n_2mass} stars)' if n_2mass else 'no'}; "
                           f"literature solution: {sol}")

    # -- views ----------------------------------------------------------------------
    def controls(self):
        """The ipywidgets controls; the plots are displayed beside them by ``_ipython_display_``."""
        w = widgets()
        return w.VBox([w.HBox([self.picker, self.source]), self.info, w.HBox(list(self.buttons.values())),
                       self.gaia.controls()])

    def view(self):
        """Alias of :meth:`controls` (kept for old notebooks)."""
        return self.controls()

    def plot(self):
        return (self.gaia.plot() + self.tmass.plot()).opts(shared_axes=False)
