"""Widget panels for the notebooks (holoviews/bokeh + ipywidgets).

Each panel is a small class whose state lives in ipywidgets and whose plots
are holoviews ``DynamicMap`` objects fed by streams, so the logic can be
tested in plain Python (set a widget value, read :meth:`state` or the data
the plot would show) and in a real browser. Call :func:`init_notebook` once
per notebook: it loads BokehJS *inline* so the panels work without a CDN
(JupyterHubs and this project's browsers have no internet).
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import pandas as pd

__all__ = [
    "init_notebook",
    "sky_maps",
    "IsochronePanel",
    "ClusterExplorer",
    "EnsembleIsochronePanel",
    "QuadTreeInspector",
    "CMD_AXES",
]

#: colour/magnitude definitions of the CMDs the panels can draw: name -> (blue band, red band, magnitude band)
CMD_AXES = {
    "Gaia (BP-RP, G)": ("BP", "RP", "G"),
    "2MASS (J-Ks, Ks)": ("J", "Ks", "Ks"),
    "Gaia+2MASS (BP-RP, J)": ("BP", "RP", "J"),
}


def _hv():
    import holoviews as hv
    import holoviews.plotting.bokeh  # noqa: F401  (registers the bokeh options without displaying anything)

    if hv.Store.current_backend != "bokeh":
        hv.Store.set_current_backend("bokeh")
    return hv


def init_notebook() -> None:
    """Load the holoviews bokeh extension with BokehJS inline (no CDN)."""
    hv = _hv()
    hv.extension("bokeh", inline=True, logo=False)


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
    hv = _hv()
    data = clusters.dropna(subset=["l", "b", "x", "y", color]).copy()
    # l in (-180, 180] puts the Galactic centre in the middle of the map.
    data["l_wrap"] = np.where(data["l"] > 180, data["l"] - 360, data["l"])
    vdims = [color, "name"]
    sky = hv.Points(data, kdims=["l_wrap", "b"], vdims=vdims, label="Sky (Galactic)")
    plane = hv.Points(data, kdims=["x", "y"], vdims=vdims, label="Galactic plane (Sun at 0)")
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
class IsochronePanel:
    """A member CMD with a PARSEC isochrone that follows four sliders.

    Sliders: log age [dex], [M/H] [dex], A_V [mag] and the true distance
    modulus [mag]. The isochrone is interpolated by
    :class:`ocnb.isochrones.IsochroneGrid` and reddened star by star with the
    Teff-dependent extinction of :mod:`ocnb.photometry`.

    Parameters
    ----------
    members : DataFrame
        Member table in the canonical schema (``phot_g_mean_mag`` ...).
    cmd : str
        One of :data:`CMD_AXES`.
    log_age, mh, a_v, dist_mod : float
        Starting values.
    grid : IsochroneGrid, optional
        Defaults to ``IsochroneGrid.load()``.
    """

    def __init__(self, members: pd.DataFrame, cmd: str = "Gaia (BP-RP, G)", log_age: float = 9.0,
                 mh: float = 0.0, a_v: float = 0.1, dist_mod: float = 9.0, grid=None, title: str = ""):
        import ipywidgets as w

        from . import isochrones

        if cmd not in CMD_AXES:
            raise ValueError(f"unknown CMD {cmd!r}; choose one of {list(CMD_AXES)}")
        self.grid = grid if grid is not None else isochrones.IsochroneGrid.load()
        self.cmd = cmd
        self.title = title
        self.members = members
        lo_age, hi_age = self.grid.age_range
        lo_mh, hi_mh = self.grid.mh_range
        style = {"description_width": "70px"}
        layout = w.Layout(width="340px")
        self.sliders = {
            "log_age": w.FloatSlider(value=float(np.clip(log_age, lo_age, hi_age)), min=lo_age, max=hi_age,
                                     step=0.01, description="log age", style=style, layout=layout,
                                     continuous_update=False, readout_format=".2f"),
            "mh": w.FloatSlider(value=float(np.clip(mh, lo_mh, hi_mh)), min=lo_mh, max=hi_mh, step=0.01,
                                description="[M/H]", style=style, layout=layout, continuous_update=False,
                                readout_format=".2f"),
            "a_v": w.FloatSlider(value=float(np.clip(a_v, 0, 6)), min=0.0, max=6.0, step=0.01, description="A_V",
                                 style=style, layout=layout, continuous_update=False, readout_format=".2f"),
            "dist_mod": w.FloatSlider(value=float(np.clip(dist_mod, 0, 18)), min=0.0, max=18.0, step=0.01,
                                      description="(m-M)_0", style=style, layout=layout,
                                      continuous_update=False, readout_format=".2f"),
        }
        self.readout = w.HTML()
        hv = _hv()
        self._stream = hv.streams.Stream.define("IsochroneParams", **self.state())()
        self._members_stream = hv.streams.Stream.define("Members", version=0)()
        for s in self.sliders.values():
            s.observe(self._on_change, names="value")
        self._update_readout()

    # -- state ----------------------------------------------------------------
    def state(self) -> dict:
        """Current slider values: ``log_age, mh, a_v, dist_mod``."""
        return {k: float(s.value) for k, s in self.sliders.items()}

    def set(self, **values) -> None:
        """Set slider values (clipped to the slider ranges); the plot follows."""
        unknown = set(values) - set(self.sliders)
        if unknown:
            raise ValueError(f"unknown parameter(s) {sorted(unknown)}; use {list(self.sliders)}")
        for k, v in values.items():
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            s = self.sliders[k]
            s.value = float(np.clip(v, s.min, s.max))

    def set_members(self, members: pd.DataFrame, title: str = "") -> None:
        self.members = members
        self.title = title
        self._members_stream.event(version=self._members_stream.version + 1)

    def _on_change(self, _change=None) -> None:
        self._stream.event(**self.state())
        self._update_readout()

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
        from .photometry import MEMBER_COLUMNS

        blue, red, mag = CMD_AXES[self.cmd]
        cols = [MEMBER_COLUMNS[b] for b in (blue, red, mag)]
        if any(c not in self.members for c in cols):
            return pd.DataFrame({"x": [], "y": []})
        blue_m, red_m, mag_m = (self.members[c].to_numpy(dtype=float) for c in cols)
        frame = pd.DataFrame({"x": blue_m - red_m, "y": mag_m})
        return frame.dropna().reset_index(drop=True)

    # -- views ----------------------------------------------------------------
    def _plot_members(self, version=0):
        hv = _hv()
        blue, red, mag = CMD_AXES[self.cmd]
        df = self.members_frame()
        return hv.Scatter(df, "x", "y", label=f"members ({len(df)})").opts(
            color="#444444", size=3, alpha=0.6, xlabel=f"{blue} - {red} [mag]", ylabel=f"{mag} [mag]",
            title=self.title or self.cmd)

    def _plot_isochrone(self, **params):
        hv = _hv()
        df = self.isochrone_frame(**params)
        # Break the line between evolutionary phases so jumps are not drawn as segments.
        paths = [g[["x", "y"]].to_numpy() for _, g in df.groupby("label", sort=True)]
        return hv.Path(paths, label="PARSEC isochrone").opts(color="#d62728", line_width=2)

    def plot(self):
        """holoviews overlay: members (static per cluster) + isochrone (follows the sliders)."""
        hv = _hv()
        if not hasattr(self, "_dmap"):
            members = hv.DynamicMap(self._plot_members, streams=[self._members_stream])
            iso = hv.DynamicMap(self._plot_isochrone, streams=[self._stream])
            self._dmap = (members * iso).opts(width=460, height=420, invert_yaxis=True, framewise=True,
                                              legend_position="top_right", show_grid=True)
        return self._dmap

    def controls(self):
        import ipywidgets as w

        return w.VBox([*self.sliders.values(), self.readout])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.controls())
        display(self.plot())


# ---------------------------------------------------------------------------
# Tour explorer: cluster picker + CMDs + literature solutions
# ---------------------------------------------------------------------------
class ClusterExplorer:
    """Pick a cluster with real members, look at its CMDs, fit an isochrone by eye.

    Buttons load the literature solutions (Hunt & Reffert 2023, Cantat-Gaudin
    2020, Dias 2021, Cavallo 2024) into the sliders; the Gaia CMD is always
    shown and the 2MASS CMD when the members have 2MASS photometry.

    Parameters
    ----------
    clusters : iterable of str, optional
        Cluster names offered by the picker (default: all clusters with shipped members).
    start : str
        Initial cluster.
    catalogs : tuple of str
        Literature catalogues offered as buttons.
    """

    CATALOGS = ("HUNT2023", "CANTAT2020", "DIAS2021", "CAVALLO2024")

    def __init__(self, clusters: Iterable[str] | None = None, start: str = "M67", catalogs=CATALOGS, grid=None):
        import ipywidgets as w

        from . import datasets, isochrones

        self._datasets = datasets
        self.catalogs = tuple(catalogs)
        available = datasets.list_member_clusters()
        names = list(clusters) if clusters is not None else sorted(available["cluster"].unique())
        self.start = datasets.resolve_cluster_name(start)
        if self.start not in names:
            names = [self.start, *names]
        self.grid = grid if grid is not None else isochrones.IsochroneGrid.load()
        self.picker = w.Dropdown(options=names, value=self.start, description="cluster")
        self.buttons = {c: w.Button(description=c, tooltip=f"load the {c} solution into the sliders",
                                    layout=w.Layout(width="130px")) for c in self.catalogs}
        for cat, b in self.buttons.items():
            b.on_click(lambda _b, cat=cat: self.load_solution(cat))
        self.info = w.HTML()
        members = self._members(self.start)
        self.gaia = IsochronePanel(members, "Gaia (BP-RP, G)", grid=self.grid)
        self.tmass = IsochronePanel(members, "2MASS (J-Ks, Ks)", grid=self.grid)
        # One set of sliders drives both CMDs.
        for key, s in self.gaia.sliders.items():
            s.observe(lambda ch, key=key: self.tmass.set(**{key: ch["new"]}), names="value")
        self.picker.observe(lambda ch: self.select(ch["new"]), names="value")
        self.select(self.start)

    def _members(self, name: str) -> pd.DataFrame:
        return self._datasets.load_members(name)

    @property
    def cluster(self) -> str:
        return self.picker.value

    def literature(self) -> pd.DataFrame:
        """Literature parameters of the current cluster (one row per catalogue)."""
        return self._datasets.literature_parameters(self.cluster, catalogs=self.catalogs)

    def select(self, name: str) -> None:
        """Show cluster ``name``: load its members and start from the first literature solution."""
        if self.picker.value != name:
            self.picker.value = name  # triggers select() again through the observer
            return
        members = self._members(name)
        has_2mass = "ks_m" in members and members["ks_m"].notna().sum() >= 10
        self.gaia.set_members(members, title=f"{name}: Gaia")
        self.tmass.set_members(members if has_2mass else members.iloc[:0], title=f"{name}: 2MASS")
        lit = self.literature()
        for cat, b in self.buttons.items():
            b.disabled = cat not in set(lit["catalog"])
        first = next((c for c in self.catalogs if c in set(lit["catalog"])), None)
        if first is not None:
            self.load_solution(first)
        src = members.attrs.get("source", "")
        self.info.value = (f"<b>{name}</b>: {len(members)} members ({src}); "
                           f"2MASS: {'yes' if has_2mass else 'no'}")

    def load_solution(self, catalog: str) -> dict:
        """Set the sliders to ``catalog``'s solution for the current cluster; returns the values used."""
        lit = self.literature().set_index("catalog")
        if catalog not in lit.index:
            raise KeyError(f"{catalog} has no solution for {self.cluster}")
        row = lit.loc[catalog]
        values = {"log_age": row.get("log_age"), "a_v": row.get("a_v"), "dist_mod": row.get("dist_mod")}
        feh = row.get("feh")
        values["mh"] = feh if feh is not None and np.isfinite(feh) else 0.0
        self.gaia.set(**values)
        return {k: (float(v) if v is not None else None) for k, v in values.items()}

    def view(self):
        """The ipywidgets controls; the plots are displayed beside them by ``_ipython_display_``."""
        import ipywidgets as w

        return w.VBox([self.picker, self.info, w.HBox(list(self.buttons.values())), self.gaia.controls()])

    def plot(self):
        return (self.gaia.plot() + self.tmass.plot()).opts(shared_axes=False)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.view())
        display(self.plot())


# ---------------------------------------------------------------------------
# Cavallo et al. 2024: the ensemble's isochrones over a real CMD
# ---------------------------------------------------------------------------
class EnsembleIsochronePanel(IsochronePanel):
    """Posterior-predictive panel: the isochrones of every ensemble member (thin, fixed) under a
    slider-driven isochrone that starts at the ensemble's p50 solution (Sect. 3.4, Fig. 4).

    Parameters
    ----------
    estimate : ocnb.cmd_ann.ClusterEstimate
        The result of :func:`ocnb.cmd_ann.estimate` for one cluster.
    max_members : int
        At most this many member isochrones are drawn.
    """

    def __init__(self, estimate, max_members: int = 30, grid=None):
        point = estimate.point
        super().__init__(estimate.members, "Gaia (BP-RP, G)", log_age=point["log_age"], mh=point["feh"],
                         a_v=point["a_v"], dist_mod=point["dist_mod"], grid=grid,
                         title=f"{estimate.name}: {estimate.quality_name}, μ_dist {estimate.mu_dist:.2f}")
        self.estimate = estimate
        draws = np.asarray(estimate.prediction.members[0])
        self.draws = draws[:max_members]

    def ensemble_paths(self) -> list:
        """(BP−RP, G) arrays of each drawn member's isochrone (parameters clipped to the grid)."""
        lo_a, hi_a = self.grid.age_range
        lo_m, hi_m = self.grid.mh_range
        paths = []
        for log_age, feh, a_v, dist_mod in self.draws:
            iso = self.grid.isochrone(float(np.clip(log_age, lo_a, hi_a)), float(np.clip(feh, lo_m, hi_m)))
            app = iso.apparent(float(dist_mod), float(max(a_v, 0.0)))
            label = np.asarray(iso["label"])
            x = np.asarray(app["BP"]) - np.asarray(app["RP"])
            y = np.asarray(app["G"])
            paths += [np.column_stack([x[label == lab], y[label == lab]]) for lab in np.unique(label)]
        return paths

    def plot(self):
        hv = _hv()
        if not hasattr(self, "_dmap"):
            spread = hv.Path(self.ensemble_paths(), label="ensemble members").opts(
                color="#1f77b4", alpha=0.25, line_width=1)
            members = hv.DynamicMap(self._plot_members, streams=[self._members_stream])
            iso = hv.DynamicMap(self._plot_isochrone, streams=[self._stream])
            self._dmap = (members * spread * iso).opts(width=460, height=440, invert_yaxis=True, framewise=True,
                                                       legend_position="top_right", show_grid=True)
        return self._dmap


class QuadTreeInspector:
    """Pick a cluster, a CMD and a QuadTree level; the partition is drawn over the stars (Sect. 3.1).

    Coordinates are the standardised ones the network sees (colour / s_colour, magnitude /
    s_magnitude, constants frozen by :class:`ocnb.cmd_ann.QuadTreeFeatures`).

    Parameters
    ----------
    tables : dict
        Cluster name -> member table (canonical columns).
    features : ocnb.cmd_ann.QuadTreeFeatures
        A fitted feature extractor.
    """

    def __init__(self, tables: dict, features, start: str | None = None):
        import ipywidgets as w

        from .cmd_ann.features import CMD_AXES as QT_CMDS

        if not tables:
            raise ValueError("QuadTreeInspector needs at least one member table")
        self.tables = dict(tables)
        self.features = features
        self.cmd_names = {f"{c.upper()}: {x} vs {y}": c for c, (x, y) in QT_CMDS.items() if c in features.cmds}
        self.picker = w.Dropdown(options=list(self.tables), value=start or next(iter(self.tables)),
                                 description="cluster")
        self.cmd = w.Dropdown(options=list(self.cmd_names), description="CMD")
        self.level = w.IntSlider(value=features.levels, min=1, max=features.levels, description="level",
                                 continuous_update=False)
        self.info = w.HTML()
        hv = _hv()
        self._stream = hv.streams.Stream.define("QuadTreeView", **self.state())()
        for widget in (self.picker, self.cmd, self.level):
            widget.observe(lambda _ch: self._refresh(), names="value")
        self._refresh()

    def state(self) -> dict:
        return {"cluster": self.picker.value, "cmd": self.cmd_names[self.cmd.value], "level": int(self.level.value)}

    def _refresh(self) -> None:
        s = self.state()
        pts, _ = self.data(**s)
        self.info.value = f"<b>{s['cluster']}</b>: {len(pts)} stars in {s['cmd']}"
        self._stream.event(**s)

    def data(self, cluster: str, cmd: str, level: int):
        """Standardised (x, y) of the stars and the partition segments up to ``level``."""
        from .cmd_ann.features import cmd_arrays
        from .cmd_ann.tsne import quadtree_segments

        x, y = cmd_arrays(self.tables[cluster], self.features.g_max)[cmd]
        sx, sy = self.features.scales_[cmd]
        pts = pd.DataFrame({"x": x / sx, "y": y / sy})
        if pts.empty:
            return pts, pd.DataFrame(columns=["x0", "y0", "x1", "y1", "level", "axis"])
        segs = quadtree_segments(pts["x"].to_numpy(), pts["y"].to_numpy(), self.features.levels)
        return pts, segs.loc[segs.level <= level, ["x0", "y0", "x1", "y1", "level", "axis"]]

    def _plot(self, cluster, cmd, level):
        hv = _hv()
        pts, segs = self.data(cluster, cmd, level)
        stars = hv.Scatter(pts, "x", "y", label="stars").opts(color="#444444", size=3, alpha=0.6)
        colours = {1: "#d62728", 2: "#ff7f0e", 3: "#2ca02c"}
        lines = [hv.Segments(segs[segs.level == lev], ["x0", "y0", "x1", "y1"], label=f"level {lev}").opts(
                 color=colours.get(lev, "k"), line_width=3.0 - 0.7 * lev) for lev in sorted(segs.level.unique())]
        overlay = hv.Overlay([stars, *lines])
        return overlay.opts(width=460, height=440, invert_yaxis=True, title=f"{cluster}: {cmd} (standardised)",
                            xlabel="colour / s_colour", ylabel="magnitude / s_magnitude", legend_position="right")

    def plot(self):
        hv = _hv()
        if not hasattr(self, "_dmap"):
            self._dmap = hv.DynamicMap(self._plot, streams=[self._stream])
        return self._dmap

    def _ipython_display_(self):
        import ipywidgets as w
        from IPython.display import display

        display(w.VBox([w.HBox([self.picker, self.cmd]), self.level, self.info]))
        display(self.plot())
