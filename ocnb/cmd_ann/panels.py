"""Notebook 01's panels and QuadTree views (Cavallo et al. 2024), on the :class:`ocnb.panels.Panel` base.

``quadtree_segments`` / ``plot_quadtree``   the QuadTree partition of one CMD as lines (Sect. 3.1), static
``QuadTreeInspector``     a real cluster's CMD with its partition, per CMD and level (Sect. 3.1)
``EnsembleIsochronePanel``  the ensemble members' isochrones under a slider-driven one (Sect. 3.4, Fig. 4)
``TSNEExplorer``          the t-SNE map of synthetic vs observed features beside a CMD (Sect. 2.3, Fig. 1)
``GradientPanel``         the Table 2 cuts and a live metallicity-gradient fit (Sect. 5.2, Fig. 13)
``plot_residuals_vs_n`` / ``plot_literature_comparison``   the notebook's four-panel comparison figures
                          (Sects. 3.5 and 4), one panel per label, every axis with its unit
``fast_model_note``       the note printed beside numbers of the tiny FAST model (what the laptop model gave)

Every panel's state is in ipywidgets: ``state()``, ``set(**values)`` (unknown names and
out-of-range values raise :class:`ocnb.panels.PanelValueError`), ``plot()`` and ``controls()``;
the plots follow through holoviews streams, so everything is testable without a browser.
The axes follow the data shown (per cluster, CMD and selection), not the first one drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from ..panels.base import Panel, PanelValueError, check_widget_value, hv, widgets
from ..panels.tour import IsochronePanel, framed, padded_range
from .features import CMD_AXES as QT_CMDS
from .features import G_MAX, _n_nodes, cmd_arrays, walk_quadtree

__all__ = [
    "DEFAULT_PERPLEXITIES",
    "LABEL_TEXT",
    "LABEL_UNITS",
    "EnsembleIsochronePanel",
    "GradientPanel",
    "QuadTreeInspector",
    "TSNEExplorer",
    "axis_label",
    "fast_model_note",
    "plot_literature_comparison",
    "plot_quadtree",
    "plot_residuals_vs_n",
    "quadtree_segments",
]

#: Perplexities offered by the t-SNE explorer (30 by default; the paper varied it without giving values).
DEFAULT_PERPLEXITIES = (10, 30, 50, 100)
_LEVEL_STYLE = {1: ("#d62728", 2.0), 2: ("#ff7f0e", 1.3), 3: ("#1f77b4", 0.8)}
#: Units of the four labels (log age is log10 of the age in years).
LABEL_UNITS = {"log_age": "dex", "feh": "dex", "a_v": "mag", "dist_mod": "mag"}
#: How the labels are written on axes.
LABEL_TEXT = {"log_age": "log age", "feh": "[Fe/H]", "a_v": "A_V", "dist_mod": "(m − M)₀"}


def _extent(x, y) -> dict:
    """Frame of the points shown: their padded extent (None when there are none)."""
    return {"x": padded_range(x), "y": padded_range(y)}


# ---------------------------------------------------------------------------
# QuadTree partition lines
# ---------------------------------------------------------------------------
def quadtree_segments(x, y, levels: int = 3, bounds: Sequence[float] | None = None) -> pd.DataFrame:
    """The QuadTree partition of one CMD as line segments, one per feature.

    The tree is the one of :func:`ocnb.cmd_ann.features.quadtree_cuts` (same
    halving, ties, empty-cell anchors and output order), so row ``i`` belongs
    to feature ``i`` and ``value`` equals ``quadtree_cuts(x, y, levels)[i]``.
    Each node's x-cut is a vertical segment across the node's cell; each half's
    y-cut a horizontal segment across that half. The root cell is ``bounds``
    (default: the points' bounding box); a child's cell is its quarter of the
    parent's cell. Median cuts are linear in the coordinates, so the lines of
    un-standardised (BP−RP, G) equal the standardised features times the
    scales, up to rounding. Used by the t-SNE explorer and
    :class:`QuadTreeInspector`.

    Parameters
    ----------
    x, y : array_like
        Colour and magnitude of the stars (finite), in any units.
    levels : int
        Tree depth (3 → 63 segments).
    bounds : (x_min, x_max, y_min, y_max), optional
        Root cell.

    Returns
    -------
    DataFrame
        One row per feature, in feature order: ``feature`` (0 … 62),
        ``axis`` ("x" = vertical line, "y" = horizontal line), ``level``
        (1 … levels), ``node`` (index within its level, breadth first),
        ``side`` ("" for x-cuts, "L"/"R" for the two y-cuts of a node),
        ``value`` (the cut coordinate = the feature), ``x0, y0, x1, y1``
        (segment end points) and ``empty_cell`` (the node holds no star: its cut
        is the inherited anchor and the segment is usually of zero length).
        With no stars at all: 63 rows of ``value`` 0 (the empty-CMD rule) and
        NaN end points.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length: {x.size} vs {y.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("quadtree_segments needs finite x and y; drop stars with NaN magnitudes first")
    nn = _n_nodes(levels)
    xrows: list[dict] = []
    yrows: list[dict] = []
    if x.size == 0:
        for lev in range(1, int(levels) + 1):
            for k in range(4 ** (lev - 1)):
                base = dict(level=lev, node=k, value=0.0, x0=np.nan, y0=np.nan, x1=np.nan, y1=np.nan,
                            empty_cell=True)
                xrows.append(dict(axis="x", side="", **base))
                yrows += [dict(axis="y", side="L", **base), dict(axis="y", side="R", **base)]
    else:
        if bounds is None:
            box = (float(x.min()), float(x.max()), float(y.min()), float(y.max()))
        else:
            box = tuple(float(b) for b in bounds)
            if len(box) != 4:
                raise ValueError("bounds must be (x_min, x_max, y_min, y_max)")
        cells = {(1, 0): box}  # (level, node) -> its cell (x0, x1, y0, y1)
        for lev, k, idx, xc, yl, yr in walk_quadtree(x, y, levels):
            bx0, bx1, by0, by1 = cells.pop((lev, k))
            common = dict(level=lev, node=k, empty_cell=idx.size == 0)
            xrows.append(dict(axis="x", side="", value=xc, x0=xc, y0=by0, x1=xc, y1=by1, **common))
            yrows.append(dict(axis="y", side="L", value=yl, x0=bx0, y0=yl, x1=xc, y1=yl, **common))
            yrows.append(dict(axis="y", side="R", value=yr, x0=xc, y0=yr, x1=bx1, y1=yr, **common))
            quarters = [(bx0, xc, by0, yl), (bx0, xc, yl, by1), (xc, bx1, by0, yr), (xc, bx1, yr, by1)]
            cells.update({(lev + 1, 4 * k + j): q for j, q in enumerate(quarters)})
    out = pd.DataFrame(xrows + yrows)
    out.insert(0, "feature", np.arange(3 * nn))
    return out[["feature", "axis", "level", "node", "side", "value", "x0", "y0", "x1", "y1", "empty_cell"]]


def plot_quadtree(x, y, ax=None, levels: int = 3, invert_yaxis: bool = True, show_empty: bool = False,
                  xlabel: str = "BP − RP [mag]", ylabel: str = "G [mag]", title: str | None = None,
                  **scatter_kw):
    """Static matplotlib CMD with the QuadTree partition lines of all levels.

    Level 1 red and thickest, level 2 orange, level 3 thin blue. Lines of
    empty cells (zero length) are left out unless ``show_empty``. The
    magnitude axis is inverted (bright at the top) unless ``invert_yaxis=False``.
    Extra keywords go to ``ax.scatter``. Returns the axes.
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 5))
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    seg = quadtree_segments(x, y, levels)
    kw = dict(s=6, color="#333333", alpha=0.7, linewidths=0, zorder=1)
    kw.update(scatter_kw)
    ax.scatter(x, y, **kw)
    handles = []
    for lev in range(1, int(levels) + 1):
        s = seg[(seg["level"] == lev) & (show_empty | ~seg["empty_cell"])]
        color, lw = _LEVEL_STYLE.get(lev, ("#7f7f7f", 0.6))
        lines = np.stack([s[["x0", "y0"]].to_numpy(), s[["x1", "y1"]].to_numpy()], axis=1)
        ax.add_collection(LineCollection(lines, colors=color, linewidths=lw, zorder=2 + 1.0 / lev))
        handles.append(Line2D([], [], color=color, lw=lw, label=f"level {lev}"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if invert_yaxis and not ax.yaxis_inverted():
        ax.invert_yaxis()
    if title is not None:
        ax.set_title(title)
    ax.legend(handles=handles, loc="best", fontsize="small", frameon=False)
    return ax


# ---------------------------------------------------------------------------
# four-panel comparison figures (one panel per label)
# ---------------------------------------------------------------------------
def axis_label(label: str, prefix: str = "", suffix: str = "") -> str:
    """``"<prefix>[Fe/H]<suffix> [dex]"``: a label's name as written on an axis, with its unit."""
    if label not in LABEL_UNITS:
        raise KeyError(f"unknown label {label!r}; use one of {list(LABEL_UNITS)}")
    return f"{prefix}{LABEL_TEXT[label]}{suffix} [{LABEL_UNITS[label]}]"


def _four_axes(ax, n: int, width: float, height: float):
    import matplotlib.pyplot as plt

    if ax is not None:
        axes = np.ravel(ax)
        if axes.size != n:
            raise ValueError(f"need {n} axes, one per label, got {axes.size}")
        return axes[0].figure, axes
    # constrained layout and at most 5 ticks per axis: no tick label runs into the next panel
    fig, axes = plt.subplots(1, n, figsize=(width, height), layout="constrained", squeeze=False)
    return fig, axes.ravel()


def _tidy_ticks(ax, ybins: int = 6) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=ybins))
    ax.tick_params(labelsize=8)


def plot_residuals_vs_n(predictions: Mapping, truth: pd.DataFrame, labels: Sequence[str] | None = None,
                        ax=None, size: float = 4.0, title: str | None = None):
    """Residual of the p50 estimate against the number of stars, one panel per label (Sect. 3.5, Fig. 3).

    Parameters
    ----------
    predictions : dict
        Model name -> :class:`~ocnb.cmd_ann.EnsemblePrediction` on the clusters of ``truth``
        (e.g. ``{"Gaia only": ..., "multi-band": ...}``), drawn in this order.
    truth : DataFrame
        The true labels of the (simulated) clusters, with ``n_stars``.
    labels : sequence of str, optional
        Default: the four labels of ``LABEL_UNITS`` that are in ``truth``.
    ax : array of 4 axes, optional
        Draw there instead of a new figure.

    Returns
    -------
    matplotlib Figure
        x: log10 N stars; y: p50 - true value in the label's unit (0 = exact).
    """
    labels = [k for k in LABEL_UNITS if k in truth] if labels is None else list(labels)
    if "n_stars" not in truth:
        raise KeyError("truth needs an 'n_stars' column (the stars per cluster)")
    fig, axes = _four_axes(ax, len(labels), 3.6 * len(labels), 3.4)
    logn = np.log10(truth["n_stars"].to_numpy(float))
    for a, k in zip(axes, labels, strict=True):
        for i, (name, pred) in enumerate(predictions.items()):
            p50 = pred.quantile(50)[k].to_numpy(float)
            a.scatter(logn, p50 - truth[k].to_numpy(float), s=size, alpha=0.5, c=f"C{(i + 1) % 10}", lw=0,
                      label=name)
        a.axhline(0, c="k", lw=0.8)
        a.set_xlabel("log₁₀ N stars", fontsize=9)
        a.set_ylabel(axis_label(k, prefix="Δ ", suffix=" (p50 − true)"), fontsize=9)
        a.set_title(LABEL_TEXT[k], fontsize=10)
        _tidy_ticks(a)
    axes[0].legend(fontsize=8, markerscale=2.5)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_literature_comparison(lit: pd.DataFrame, labels: Sequence[str] | None = None, ax=None,
                               size: float = 16.0, title: str | None = None):
    """Our p50 against each literature catalogue, one panel per label (Sect. 4, Fig. 7).

    Parameters
    ----------
    lit : DataFrame
        :func:`~ocnb.cmd_ann.literature_comparison` output: ``catalog``, ``<label>_lit``,
        ``<label>_ours``.
    labels, ax, size, title
        As :func:`plot_residuals_vs_n`.

    Returns
    -------
    matplotlib Figure
        x: literature value, y: ocnb p50, same unit and same range on both axes; the line is y = x.
    """
    labels = [k for k in LABEL_UNITS if f"{k}_lit" in lit] if labels is None else list(labels)
    missing = [c for k in labels for c in (f"{k}_lit", f"{k}_ours") if c not in lit] + \
        ([] if "catalog" in lit else ["catalog"])
    if missing:
        raise KeyError(f"lit lacks column(s) {missing}; pass cmd_ann.literature_comparison(...) output")
    fig, axes = _four_axes(ax, len(labels), 3.7 * len(labels), 3.9)
    for a, k in zip(axes, labels, strict=True):
        for i, (cat, g) in enumerate(lit.groupby("catalog")):
            a.scatter(g[f"{k}_lit"], g[f"{k}_ours"], s=size, c=f"C{i}", label=cat, alpha=0.8, lw=0)
        both = lit[[f"{k}_lit", f"{k}_ours"]].to_numpy(float)
        lims = padded_range(both.ravel())
        if lims is not None:
            a.plot(lims, lims, c="k", lw=0.8)
            a.set_xlim(lims)
            a.set_ylim(lims)
        a.set_aspect("equal", adjustable="box")
        a.set_xlabel(axis_label(k, suffix=", literature"), fontsize=9)
        a.set_ylabel(axis_label(k, suffix=", ocnb p50"), fontsize=9)
        _tidy_ticks(a, ybins=5)  # same limits and bins: the same ticks on both axes of a square panel
    axes[0].legend(fontsize=7, markerscale=1.2)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


# ---------------------------------------------------------------------------
# what FAST-mode numbers are worth
# ---------------------------------------------------------------------------
def _age_text(log_age: float) -> str:
    age = 10.0 ** (log_age - 6.0)
    return f"{age / 1e3:.1f} Gyr" if age >= 1e3 else f"{age:.0f} Myr"


def _dist_pc(dist_mod: float) -> float:
    return 10.0 ** (dist_mod / 5.0 + 1.0)


def _peer_ocnb_key(peer_results: Mapping) -> str:
    """The ocnb result key of a benchmark file: ``ocnb_refined`` (else ``ocnb_fast``) in schema 2, ``ocnb`` before."""
    from .peers import methods

    present = methods(peer_results)
    return next((k for k in ("ocnb_refined", "ocnb_fast", "ocnb") if k in present), "ocnb")


def _peer_record(peer_results: Mapping, name: str):
    """The benchmark's record of cluster ``name`` (by label, catalogue name or resolved name), or None."""
    from ..datasets import resolve_cluster_name
    from ..errors import UnknownClusterError

    def key(n):
        try:
            return resolve_cluster_name(n)
        except UnknownClusterError:  # a name the catalogues do not know simply does not match
            return str(n)

    want = {str(name), key(name)}
    for rec in peer_results.get("clusters", []):
        if {str(rec.get("label")), str(rec.get("cluster")), key(rec.get("cluster", ""))} & want:
            return rec
    return None


def fast_model_note(model, estimate=None, peer_results: Mapping | None = None) -> str:
    """A Markdown note for numbers that come from the tiny FAST model ("" for any other preset).

    FAST mode (``OCNB_FAST=1``, the tests) trains a few small networks on a few hundred simulated
    clusters in seconds: its estimates show that the pipeline runs, not what the method measures,
    and can contradict the notebook's text (M67 a few hundred Myr old, "gold"). The note says so,
    with the FAST numbers of ``estimate`` and, from ``peer_results`` (the benchmark JSON, run with
    the laptop model), what that model and the literature give for the same cluster. No number is
    typed in: all come from ``model``, ``estimate`` and ``peer_results``.

    Parameters
    ----------
    model : ocnb.cmd_ann.CavalloModel
        The model that produced the numbers.
    estimate : ocnb.cmd_ann.ClusterEstimate, optional
        One cluster's estimate to quote.
    peer_results : dict, optional
        :func:`ocnb.cmd_ann.peers.load_peer_results` of ``benchmarks/peers/asteca_vs_ocnb.json``.

    Returns
    -------
    str
        Markdown ("" when ``model.preset`` is not ``"fast"``).
    """
    if getattr(model, "preset", None) != "fast":
        return ""
    ens, meta = model.ensemble, model.meta
    hidden = getattr(ens, "hidden", None)
    arch = f"{len(hidden)} × {hidden[0]} units" if hidden else "small"
    text = (f"**FAST model — these numbers only show that the pipeline runs.** They come from "
            f"{ens.n_members} networks of {arch} trained for at most {getattr(ens, 'epochs', '?')} epochs on "
            f"{meta.get('n_train', '?')} simulated clusters ({meta.get('fit_s', float('nan')):.0f} s), not from "
            f"the paper's 300 networks of 5 × 500 units; its quality classes are no more trustworthy than its "
            f"numbers.")
    src, key = "", "ocnb"
    if peer_results is not None:
        key = _peer_ocnb_key(peer_results)  # schema 2: the refined mode's numbers when the run has them
        src = (f" (benchmark run of {str(peer_results.get('created', '?'))[:10]}, "
               f"`{Path(peer_results.get('_path', 'asteca_vs_ocnb.json')).name}`)")
    if estimate is not None:
        p = estimate.point
        text += (f" {estimate.name}: log age {p['log_age']:.2f} ({_age_text(p['log_age'])}), (m − M)₀ "
                 f"{p['dist_mod']:.2f} mag ({_dist_pc(p['dist_mod']):.0f} pc), rated {estimate.quality_name}.")
        rec = _peer_record(peer_results, estimate.name) if peer_results is not None else None
        if rec is not None:
            lit = rec.get("literature") or {}
            la, dm = (lit.get(k, {}).get("mean") for k in ("log_age", "dist_mod"))
            if la is not None and dm is not None:
                text += (f" The literature mean is log age {la:.2f} ({_age_text(la)}) and (m − M)₀ {dm:.2f} mag "
                         f"({_dist_pc(dm):.0f} pc).")
            o = rec.get(key) or {}
            if o.get("status") == "ok" and "p50" in o:
                q = o["p50"]
                how = " (refined mode)" if key == "ocnb_refined" else ""
                text += (f" The {o.get('model', 'laptop')} model{how} gave log age {q['log_age']:.2f} "
                         f"({_age_text(q['log_age'])}) and (m − M)₀ {q['dist_mod']:.2f} mag "
                         f"({_dist_pc(q['dist_mod']):.0f} pc), rated {o.get('quality', '?')}{src}.")
            return text
    if peer_results is not None:
        from .peers import summarize

        per = summarize(peer_results, methods=None if key == "ocnb" else (key,))["per_param"]
        col = f"median_absdiff_{key}"
        parts = [f"{LABEL_TEXT[k]} {per[k][col]:.2f} {LABEL_UNITS[k]}"
                 for k in LABEL_UNITS if k in per and np.isfinite(per[k].get(col, np.nan))]
        if parts:
            how = " (refined mode)" if key == "ocnb_refined" else ""
            text += (f" The laptop model's{how} median |Δ| from the literature mean over the "
                     f"{len(peer_results['clusters'])} benchmark clusters: {', '.join(parts)}{src}.")
            return text
    return text + " Run the notebook without `OCNB_FAST=1` (the laptop model) for numbers that mean something."


# ---------------------------------------------------------------------------
# QuadTree inspector
# ---------------------------------------------------------------------------
class QuadTreeInspector(Panel):
    """Pick a cluster, a CMD and a QuadTree level; the partition is drawn over the stars (Sect. 3.1).

    Coordinates are the standardised ones the network sees (colour / s_colour, magnitude /
    s_magnitude, constants frozen by :class:`ocnb.cmd_ann.QuadTreeFeatures`). The axes follow
    the stars of the cluster and CMD shown.

    Parameters
    ----------
    tables : dict
        Cluster name -> member table (canonical columns).
    features : ocnb.cmd_ann.QuadTreeFeatures
        A fitted feature extractor.
    start : str, optional
        Initial cluster (a key of ``tables``).

    ``set()`` keys: ``cluster`` (a key of ``tables``), ``cmd`` (``"cmd1"`` ... or the dropdown
    label), ``level`` (1 ... ``features.levels``).
    """

    def __init__(self, tables: dict, features, start: str | None = None):
        w = widgets()
        holo = hv()
        if not tables:
            raise PanelValueError("QuadTreeInspector needs at least one member table")
        if getattr(features, "scales_", None) is None:
            raise PanelValueError("QuadTreeInspector needs a fitted QuadTreeFeatures (call .fit(synthetic) first)")
        self.tables = dict(tables)
        self.features = features
        self.cmd_names = {f"{c.upper()}: {x} vs {y}": c for c, (x, y) in QT_CMDS.items() if c in features.cmds}
        start = start or next(iter(self.tables))
        if start not in self.tables:
            raise PanelValueError(f"start = {start!r} is not one of the tables: {list(self.tables)}")
        self.picker = w.Dropdown(options=list(self.tables), value=start, description="cluster")
        self.cmd = w.Dropdown(options=[(label, c) for label, c in self.cmd_names.items()], description="CMD")
        self.level = w.IntSlider(value=features.levels, min=1, max=features.levels, description="level",
                                 continuous_update=False)
        self.info = w.HTML()
        self._control("cluster", self.picker)
        self._control("cmd", self.cmd)
        self._control("level", self.level)
        self._stream = holo.streams.Stream.define("QuadTreeView", **self.state())()
        for widget in (self.picker, self.cmd, self.level):
            widget.observe(lambda _ch: self._refresh(), names="value")
        self._refresh()

    def state(self) -> dict:
        """``cluster``, ``cmd`` (``"cmd1"`` ...), ``level``."""
        return {"cluster": self.picker.value, "cmd": self.cmd.value, "level": int(self.level.value)}

    def _refresh(self) -> None:
        s = self.state()
        pts, _ = self.data(**s)
        self.info.value = f"<b>{s['cluster']}</b>: {len(pts)} stars in {s['cmd']}"
        self._stream.event(**s)

    def data(self, cluster: str, cmd: str, level: int):
        """Standardised (x, y) of the stars and the partition segments up to ``level``."""
        x, y = cmd_arrays(self.tables[cluster], self.features.g_max)[cmd]
        sx, sy = self.features.scales_[cmd]
        pts = pd.DataFrame({"x": x / sx, "y": y / sy})
        if pts.empty:
            return pts, pd.DataFrame(columns=["x0", "y0", "x1", "y1", "level", "axis"])
        segs = quadtree_segments(pts["x"].to_numpy(), pts["y"].to_numpy(), self.features.levels)
        return pts, segs.loc[segs.level <= level, ["x0", "y0", "x1", "y1", "level", "axis"]]

    def _plot(self, cluster, cmd, level):
        holo = hv()
        pts, segs = self.data(cluster, cmd, level)
        xd = holo.Dimension("x", label="colour / s_colour")
        yd = holo.Dimension("y", label="magnitude / s_magnitude")
        stars = holo.Scatter(pts, xd, yd, label="stars").opts(color="#444444", size=3, alpha=0.6)
        layers = [stars]
        for lev in range(1, self.features.levels + 1):  # one layer per level, always: same overlay each frame
            color, lw = _LEVEL_STYLE.get(lev, ("#7f7f7f", 0.6))
            part = segs.loc[segs.level == lev] if lev <= level else segs.iloc[:0]
            part = part[["x0", "y0", "x1", "y1"]].rename(columns={"x0": "x", "y0": "y"}).astype(float)
            layers.append(holo.Segments(part, [xd, yd, "x1", "y1"], label=f"level {lev}").opts(
                color=color, line_width=lw + 1.0))
        return framed(layers, _extent(pts["x"], pts["y"]), width=460, height=440, invert_yaxis=True,
                      title=f"{cluster}: {cmd} (standardised)", legend_position="right")

    def plot(self):
        holo = hv()
        if not hasattr(self, "_dmap"):
            self._dmap = holo.DynamicMap(self._plot, streams=[self._stream]).opts(framewise=True)
        return self._dmap

    def controls(self):
        w = widgets()
        return w.VBox([w.HBox([self.picker, self.cmd]), self.level, self.info])


# ---------------------------------------------------------------------------
# the ensemble's isochrones over a real CMD
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

    def _extra_layers(self) -> list:
        if not hasattr(self, "_spread"):
            self._spread = hv().Path(self.ensemble_paths(), kdims=["x", "y"], label="ensemble members").opts(
                color="#1f77b4", alpha=0.25, line_width=1, show_legend=True)
        return [self._spread]


# ---------------------------------------------------------------------------
# t-SNE explorer
# ---------------------------------------------------------------------------
class TSNEExplorer(Panel):
    """The t-SNE map next to the CMD + QuadTree of the selected cluster (holoviews + ipywidgets).

    Left: the synthetic (SIMULATED) cloud rasterised with datashader and coloured by the mean
    dMod per pixel, the observed clusters as black points on top (hover shows the name), the
    selected cluster ringed in red. Right: the selected cluster's CMD1 (BP−RP, G ≤ 18) with its
    QuadTree partition (:func:`quadtree_segments`, levels 1–3); its axes follow the stars shown.

    Controls (ipywidgets, the state; plots follow through holoviews streams): ``perplexity``
    (selection slider over :data:`DEFAULT_PERPLEXITIES`; a new value re-embeds with the same
    inputs and seed, each perplexity is embedded at most once) and ``picker`` (dropdown of
    observed names, keyboard friendly). Tapping an observed point selects it (``Selection1D``);
    tapping elsewhere selects the nearest synthetic cluster (``Tap``) when ``synthetic`` is given.
    ``set(perplexity=..., selected=...)`` does the same from code.

    Parameters
    ----------
    result : ocnb.cmd_ann.TSNEResult
        Holds the inputs (from :func:`~ocnb.cmd_ann.embed_features`) when other perplexities are wanted.
    observed : mapping or callable, optional
        Observed name → member table (e.g. ``ObservedFeatures.members``, or the dict whose tables
        were featurised); default :func:`ocnb.datasets.load_members`.
    synthetic : SyntheticClusters, optional
        The SIMULATED clusters of the embedding, in the same order, to show their CMDs.
    features : QuadTreeFeatures, optional
        The featuriser used: its magnitude cut and tree depth are used for the CMD panel
        (default G ≤ 18, 3 levels).
    perplexities : sequence of float
    datashade : bool
        Rasterise the synthetic cloud (default) or draw plain points.
    pixel_size : int
        Screen pixels per raster cell (4): coarse cells keep a sparse cloud visible.
    start : str, optional
        Initially selected cluster (default: the first observed one).
    """

    def __init__(self, result, observed: Mapping[str, pd.DataFrame] | Callable | None = None,
                 synthetic=None, features=None, perplexities: Sequence[float] = DEFAULT_PERPLEXITIES,
                 datashade: bool = True, start: str | None = None, width: int = 460, height: int = 420,
                 pixel_size: int = 4):
        w = widgets()
        holo = hv()
        self._cache: dict[float, object] = {float(result.perplexity): result}
        self.n_embeddings = 0  # embeddings computed by this explorer (cache misses)
        self._members_src = observed
        self.g_max = G_MAX if features is None else features.g_max
        self.levels = 3 if features is None else int(features.levels)
        self._member_cache: dict[str, pd.DataFrame] = {}
        n_syn = int((result.frame["kind"] == "synthetic").sum())
        if synthetic is not None and len(synthetic) != n_syn:
            raise PanelValueError(f"synthetic has {len(synthetic)} clusters, the embedding {n_syn}")
        self.synthetic = synthetic
        self.datashade = bool(datashade)
        self.pixel_size = max(1, int(pixel_size))
        self.width, self.height = int(width), int(height)
        self._names = list(result.observed_names)
        opts = sorted({float(p) for p in perplexities} | {float(result.perplexity)})
        self.perplexity = w.SelectionSlider(options=[(f"{p:g}", p) for p in opts],
                                            value=float(result.perplexity), description="perplexity",
                                            continuous_update=False)
        self.picker = w.Dropdown(options=self._names, value=None, description="cluster")
        self.status = w.HTML()
        self._control("perplexity", self.perplexity, check=self._check_perplexity, put=self.set_perplexity)
        self._control("selected", get=lambda: self.state()["selected"], check=self._check_selected,
                      put=self.select)
        self._pstream = holo.streams.Stream.define("Perplexity", perplexity=float(result.perplexity))()
        first = start if start is not None else (self._names[0] if self._names
                                                 else str(result.frame["name"].iloc[0]))
        self._selected = self._lookup(first)
        self._sstream = holo.streams.Stream.define("Selected", kind=self._selected[0],
                                                   index=self._selected[1])()
        self.perplexity.observe(lambda ch: self._on_perplexity(ch["new"]), names="value")
        self.picker.observe(self._on_pick, names="value")
        self.select(first)

    # -- state --------------------------------------------------------------------
    @property
    def result(self):
        """The embedding currently shown (a :class:`~ocnb.cmd_ann.TSNEResult`)."""
        return self._cache[float(self.perplexity.value)]

    def state(self) -> dict:
        """``perplexity``, ``selected`` (name), ``kind``, ``index``, ``n_embeddings``, ``cached``."""
        kind, idx = self._selected
        return {"perplexity": float(self.perplexity.value), "selected": self._name_of(kind, idx),
                "kind": kind, "index": int(idx), "n_embeddings": self.n_embeddings,
                "cached": sorted(self._cache)}

    def _check_perplexity(self, value, clip):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise PanelValueError(f"perplexity must be a number, got {value!r}")
        p = float(value)
        n = len(self.result.frame)
        if not (np.isfinite(p) and p > 0 and 3 * p <= n - 1):
            raise PanelValueError(f"perplexity = {value!r}: need 0 < perplexity <= (n - 1) / 3 = {(n - 1) / 3:.1f}")
        if p not in self._cache and getattr(self.result, "synthetic_X", None) is None:
            raise PanelValueError(f"perplexity = {p:g} needs a re-embedding, and this TSNEResult holds no inputs; "
                                  f"cached: {sorted(self._cache)}")
        return p

    def _check_selected(self, value, clip):
        try:
            self._lookup(value)
        except KeyError as exc:
            raise PanelValueError(f"selected = {value!r}: {exc.args[0]}") from None
        return value

    def _lookup(self, name: str) -> tuple[str, int]:
        f = self.result.frame
        hit = f.index[f["name"] == str(name)]
        if not len(hit):
            raise KeyError(f"{name!r} is not a point of the embedding (observed: {self._names[:5]}...)")
        r = f.loc[hit[0]]
        return str(r["kind"]), int(r["index"])

    def _name_of(self, kind: str, idx: int) -> str:
        f = self.result.frame
        return str(f.loc[(f["kind"] == kind) & (f["index"] == idx), "name"].iloc[0])

    def select(self, name: str) -> None:
        """Show cluster ``name`` (observed name or ``SYN-…``) in the CMD panel and ring it in the map."""
        kind, idx = self._lookup(name)
        self._selected = (kind, idx)
        if kind == "observed":
            if self.picker.value != name:
                self.picker.value = name  # the observer sees it is already selected
        elif self.picker.value is not None:
            self.picker.value = None
        self._sstream.event(kind=kind, index=idx)
        self._update_status()

    def _on_pick(self, change) -> None:
        new = change["new"]
        if new is not None and self._selected != self._lookup(new):
            self.select(new)

    def set_perplexity(self, perplexity: float) -> None:
        """Show the embedding at ``perplexity`` (computed once, then cached); adds it to the slider if new."""
        p = float(perplexity)
        if p not in [v for _, v in self.perplexity.options]:
            opts = sorted({v for _, v in self.perplexity.options} | {p})
            current = self.perplexity.value
            self.perplexity.options = [(f"{v:g}", v) for v in opts]
            self.perplexity.value = current
        self.perplexity.value = p

    def _on_perplexity(self, p) -> None:
        p = float(p)
        if p not in self._cache:
            base = next(iter(self._cache.values()))
            self.status.value = f"embedding at perplexity {p:g} …"
            self._cache[p] = base.rerun(perplexity=p)
            self.n_embeddings += 1
        for s in getattr(self, "_range_streams", ()):
            s.reset()  # let the rasteriser see the whole new map
        self._pstream.event(perplexity=p)
        self._update_status()

    def _update_status(self) -> None:
        r = self.result
        kind, idx = self._selected
        frac = r.neighbour_fraction(10) if len(r.observed) and len(r.frame) > 10 else float("nan")
        self.status.value = (f"perplexity {r.perplexity:g} (KL {r.kl_divergence:.2f}); observed clusters "
                             f"with ≥ 1 synthetic among 10 nearest: <b>{frac:.0%}</b>; selected: "
                             f"<b>{self._name_of(kind, idx)}</b>")

    # -- data ---------------------------------------------------------------------
    def _members(self, kind: str, idx: int) -> pd.DataFrame | None:
        if kind == "synthetic":
            return None if self.synthetic is None else self.synthetic.cluster(idx)
        name = self._name_of(kind, idx)
        if name not in self._member_cache:
            src = self._members_src
            try:
                if src is None:
                    from .. import datasets

                    m = datasets.load_members(name)
                elif callable(src):
                    m = src(name)
                else:
                    m = src.get(name)
            except Exception:
                m = None
            self._member_cache[name] = m
        return self._member_cache[name]

    def cmd_frame(self, kind: str | None = None, index: int | None = None) -> pd.DataFrame:
        """CMD1 of the selected (or given) cluster: ``bp_rp, g`` [mag], G ≤ 18 stars with BP and RP."""
        k, i = self._selected if kind is None else (kind, int(index))
        m = self._members(k, i)
        if m is None or not len(m):
            return pd.DataFrame({"bp_rp": np.array([], float), "g": np.array([], float)})
        c, g = cmd_arrays(m, g_max=self.g_max)["cmd1"]
        return pd.DataFrame({"bp_rp": c, "g": g})

    def segments_frame(self, kind: str | None = None, index: int | None = None) -> pd.DataFrame:
        """:func:`quadtree_segments` of :meth:`cmd_frame` (un-standardised BP−RP, G)."""
        df = self.cmd_frame(kind, index)
        return quadtree_segments(df["bp_rp"].to_numpy(), df["g"].to_numpy(), self.levels)

    # -- views --------------------------------------------------------------------
    def _syn_points(self, perplexity):
        s = self._cache[float(perplexity)].synthetic
        return hv().Points(s, kdims=["x", "y"], vdims=["dist_mod", "log_age", "name"], label="synthetic")

    def _obs_points(self, perplexity):
        o = self._cache[float(perplexity)].observed
        return hv().Points(o, kdims=["x", "y"], vdims=["name", "index"], label="observed").opts(
            color="black", size=6, line_color="white", tools=["hover", "tap"], nonselection_alpha=0.6,
            selection_color="red")

    def _ring(self, perplexity, kind, index):
        f = self._cache[float(perplexity)].frame
        r = f[(f["kind"] == kind) & (f["index"] == index)]
        return hv().Points(r, kdims=["x", "y"], vdims=["name"], label="selected").opts(
            size=16, fill_alpha=0, line_color="red", line_width=2)

    def _cmd_plot(self, kind, index):
        holo = hv()
        df = self.cmd_frame(kind, index)
        bp_rp = holo.Dimension("bp_rp", label="BP − RP", unit="mag")
        g = holo.Dimension("g", label="G", unit="mag")
        name = self._name_of(kind, index)
        if kind == "synthetic":
            f = self.result.frame
            r = f[(f["kind"] == kind) & (f["index"] == index)].iloc[0]
            title = f"{name} (SIMULATED): dMod {r['dist_mod']:.2f}, log age {r['log_age']:.2f}"
        else:
            title = f"{name}: {len(df)} stars in CMD1 (G ≤ {self.g_max:g})"
        if not len(df):
            title = f"{name}: no member table" if kind == "observed" else f"{name}: pass synthetic= to see it"
        pts = holo.Scatter(df, bp_rp, g, label="stars").opts(color="#444444", size=3, alpha=0.6)
        seg = self.segments_frame(kind, index)
        seg = seg[~seg["empty_cell"]].rename(columns={"x0": "bp_rp", "y0": "g", "x1": "bp_rp_1", "y1": "g_1"})
        layers = [pts]
        for lev in range(self.levels, 0, -1):  # coarse cuts on top
            color, lw = _LEVEL_STYLE.get(lev, ("#7f7f7f", 0.6))
            part = seg.loc[seg["level"] == lev, ["bp_rp", "g", "bp_rp_1", "g_1"]]
            layers.append(holo.Segments(part, kdims=[bp_rp, g, "bp_rp_1", "g_1"],
                                        label=f"QuadTree level {lev}").opts(color=color, line_width=lw))
        return framed(layers, _extent(df["bp_rp"], df["g"]), title=title)

    def _on_tap(self, x=None, y=None, **_):
        if x is None or y is None:
            return
        f = self.result.frame
        xy = f[["x", "y"]].to_numpy()
        scale = max(float(np.ptp(xy[:, 0])), float(np.ptp(xy[:, 1])), 1e-12)
        d = np.hypot(xy[:, 0] - x, xy[:, 1] - y) / scale
        obs = (f["kind"] == "observed").to_numpy()
        if obs.any() and d[obs].min() < 0.02:  # a tap on an observed point: Selection1D handles it too
            i = np.flatnonzero(obs)[np.argmin(d[obs])]
        elif self.synthetic is not None and (~obs).any():
            i = np.flatnonzero(~obs)[np.argmin(d[~obs])]
        else:
            return
        self.select(str(f["name"].iloc[i]))

    def _on_selection(self, index=None, **_):
        if index:
            names = self.result.observed_names
            self.select(names[int(index[0])])

    def plot(self):
        """holoviews Layout: the map (DynamicMap overlay) + the selected cluster's CMD (DynamicMap)."""
        if hasattr(self, "_layout"):
            return self._layout
        holo = hv()
        syn = holo.DynamicMap(self._syn_points, streams=[self._pstream])
        obs = holo.DynamicMap(self._obs_points, streams=[self._pstream])
        ring = holo.DynamicMap(self._ring, streams=[self._pstream, self._sstream])
        has_dmod = bool(np.isfinite(self.result.frame["dist_mod"].to_numpy(dtype=float)).any())
        if self.datashade:
            import datashader as ds
            from holoviews.operation.datashader import rasterize

            agg = ds.mean("dist_mod") if has_dmod else ds.count()
            # Coarse pixels (pixel_size screen pixels each) keep sparse clouds visible and show the mean
            # dMod of neighbouring clusters; dynspread would do too but costs seconds of JIT compilation.
            raster = rasterize(syn, aggregator=agg, pixel_ratio=1.0 / self.pixel_size)
            self._range_streams = [s for s in raster.streams if isinstance(s, (holo.streams.RangeXY,))]
            cloud = raster.opts(
                cmap="viridis", colorbar=True, clabel="dMod of synthetic clusters [mag]" if has_dmod
                else "synthetic clusters per pixel", tools=["hover"])
        else:
            cloud = syn.opts(color="dist_mod" if has_dmod else "#1f77b4", cmap="viridis", colorbar=has_dmod,
                             size=3, tools=["hover"])
        self.tap = holo.streams.Tap(source=obs, x=None, y=None)
        self.tap.add_subscriber(self._on_tap)
        self.selection = holo.streams.Selection1D(source=obs)
        self.selection.add_subscriber(self._on_selection)
        emb = (cloud * obs * ring).opts(
            width=self.width, height=self.height, framewise=True, xlabel="t-SNE 1", ylabel="t-SNE 2",
            title="t-SNE: synthetic (colour: dMod), observed (black)", show_legend=False)
        cmd = holo.DynamicMap(self._cmd_plot, streams=[self._sstream]).opts(
            width=self.width, height=self.height, invert_yaxis=True, framewise=True, show_grid=True,
            legend_position="top_right")
        self._layout = (emb + cmd).opts(shared_axes=False)
        return self._layout

    def controls(self):
        w = widgets()
        return w.VBox([w.HBox([self.perplexity, self.picker]), self.status])


# ---------------------------------------------------------------------------
# metallicity gradient (Table 2)
# ---------------------------------------------------------------------------
class GradientPanel(Panel):
    """Widgets for the Table 2 cuts and a live gradient fit (holoviews/bokeh + ipywidgets).

    Cuts: minimum log age, quality classes (checkboxes), R_GC range, minimum HR23 CMD class.
    Changing a cut updates the selection and the scatter at once; the "Fit" button (or every
    change, with "refit on change" ticked) refits with a quick sampler. The posterior-mean line
    and its 68 % band are drawn over [Fe/H] vs R_GC: red for the current cuts, grey (and the text
    says "previous cuts") once the cuts have changed since the fit. Cuts that leave no cluster
    (N = 0) clear the fit and say so.

    Why two band layers: a glyph's colour is never changed in place. When it was (red -> grey on
    the first change after a Fit), BokehJS sent the new colour back as ``Value('gray')``, Bokeh's
    Python side rejected it ("failed to validate Patch.fill_color") and Panel printed that
    traceback under the plot on every change after a Fit. Each band now has its own layer with a
    fixed colour, and only the data move between them.

    The quick sampler is the same in FAST and full mode: 2 chains x 1000 tune / 1500 draws,
    judged with :data:`ocnb.stats.FAST_BOUNDS` (r_hat < 1.05, bulk ESS > 400). alpha and beta are
    strongly correlated (the data sit at R_GC ~ 8 kpc, far from the intercept at R = 0), so NUTS
    gets only ~0.2-0.4 effective draws per draw: 2 x 1000 draws gave a bulk ESS of 420-780 on
    the cuts tried, 2 x 1500 keeps it clear of 400. A fit that misses a bound says which one and
    what to do. The paper's sampler (4 x 5000/5000, r_hat < 1.01) is what
    :func:`~ocnb.cmd_ann.fit_metallicity_gradient` uses in full mode.

    Parameters
    ----------
    catalog, hunt : DataFrame, optional
        As :func:`~ocnb.cmd_ann.gradient.gradient_table` (default: the published catalogue; our
        estimates work too).
    draws, tune, chains, seed : int
        Quick sampler used by the panel (default 2 chains x 1000 tune / 1500 draws); its
        convergence is judged with :data:`ocnb.stats.FAST_BOUNDS` (r_hat < 1.05, ESS > 400).
    auto : bool
        Refit on every change of a cut.
    fit_now : bool
        Fit once at start-up.

    ``set()`` keys: ``min_log_age`` [dex], ``quality`` (iterable of 0-3), ``r_range`` (kpc, kpc),
    ``cmd_min``, ``auto``.
    """

    QUALITY_LABELS: ClassVar[dict[int, str]] = {0: "gold", 1: "silver", 2: "bronze", 3: "wood"}

    def __init__(
        self,
        catalog: pd.DataFrame | None = None,
        hunt: pd.DataFrame | None = None,
        draws: int = 1500,
        tune: int = 1000,
        chains: int = 2,
        seed: int = 0,
        auto: bool = False,
        fit_now: bool = False,
        name_match: str = "spec",
    ):
        w = widgets()
        holo = hv()
        from .gradient import gradient_table

        self.table = gradient_table(catalog, hunt, name_match=name_match)
        self.sampler = {"draws": int(draws), "tune": int(tune), "chains": int(chains), "seed": int(seed)}
        self.result = None
        self.result_state: dict | None = None
        self.history: list[dict] = []
        # Shared by the three sliders: label width, slider width, fit only on release.
        common = dict(style={"description_width": "110px"}, layout=w.Layout(width="380px"), continuous_update=False)
        self.min_age = w.FloatSlider(value=8.699, min=6.5, max=10.2, step=0.001, description="min log age",
                                     readout_format=".3f", **common)
        self.quality = {
            q: w.Checkbox(value=(q == 0), description=lab, indent=False, layout=w.Layout(width="80px"))
            for q, lab in self.QUALITY_LABELS.items()
        }
        r_hi = float(np.ceil(np.nanmax(self.table["R"]))) if len(self.table) else 20.0
        self.r_range = w.FloatRangeSlider(value=(5.0, 12.0), min=0.0, max=max(r_hi, 12.0), step=0.1,
                                          description="R_GC [kpc]", readout_format=".1f", **common)
        self.cmd_min = w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.01, description="min CMD class",
                                     readout_format=".2f", **common)
        self.fit_button = w.Button(description="Fit", button_style="primary", tooltip="sample the posterior")
        self.auto = w.Checkbox(value=bool(auto), description="refit on change", indent=False)
        self.info = w.HTML()
        self.fit_info = w.HTML()
        self._stream = holo.streams.Stream.define("GradientVersion", version=0)()
        for wid in (self.min_age, self.r_range, self.cmd_min, *self.quality.values()):
            wid.observe(self._on_change, names="value")
        self.fit_button.on_click(lambda _b: self.fit())
        self.min_age.disabled = not self.table.attrs.get("has_age", True)
        for cb in self.quality.values():
            cb.disabled = not self.table.attrs.get("has_quality", True)
        self._control("min_log_age", self.min_age, check=self._check_age)
        self._control("quality", get=lambda: self._cuts()["quality"], check=self._check_quality,
                      put=self._put_quality)
        self._control("r_range", self.r_range)
        self._control("cmd_min", self.cmd_min)
        self._control("auto", self.auto)
        self._selection = None
        self._fit_text, self._cleared = "", False
        self._update_info()
        if fit_now:
            self.fit()

    # -- state ----------------------------------------------------------------
    def state(self) -> dict:
        """Cuts and selection: ``min_log_age, quality, r_range, r_min, r_max, cmd_min, auto, n, fitted``.

        ``min_log_age`` / ``quality`` are None when the table has no ages / quality classes.
        """
        cuts = self._cuts()
        return {
            "min_log_age": cuts["min_log_age"],
            "quality": cuts["quality"],
            "r_range": cuts["r_range"],
            "r_min": cuts["r_range"][0],
            "r_max": cuts["r_range"][1],
            "cmd_min": cuts["cmd_min"],
            "auto": bool(self.auto.value),
            "n": len(self.selection()),
            "fitted": self.result is not None and self.result_state == cuts,
        }

    def _cuts(self) -> dict:
        # a table without ages or quality classes (e.g. our own estimates) skips those cuts
        r_min, r_max = self.r_range.value
        has_age, has_q = self.table.attrs.get("has_age", True), self.table.attrs.get("has_quality", True)
        return {
            "min_log_age": float(self.min_age.value) if has_age else None,
            "quality": tuple(q for q, cb in self.quality.items() if cb.value) if has_q else None,
            "r_range": (float(r_min), float(r_max)),
            "cmd_min": float(self.cmd_min.value),
        }

    def _check_age(self, value, clip):
        if self.min_age.disabled:
            raise PanelValueError("min_log_age: the table has no log-age column, so there is no age cut")
        return check_widget_value("min_log_age", self.min_age, value, clip)

    def _check_quality(self, value, clip):
        if all(cb.disabled for cb in self.quality.values()):
            raise PanelValueError("quality: the table has no quality column, so there is no quality cut")
        try:
            classes = {int(q) for q in value}
            if any(not float(q).is_integer() for q in value):
                raise ValueError
        except (TypeError, ValueError):
            raise PanelValueError(f"quality must be an iterable of classes {sorted(self.QUALITY_LABELS)}, "
                                  f"got {value!r}") from None
        bad = classes - set(self.QUALITY_LABELS)
        if bad:
            raise PanelValueError(f"quality class(es) {sorted(bad)} unknown; use {self.QUALITY_LABELS}")
        return classes

    def _put_quality(self, classes) -> None:
        for q, cb in self.quality.items():
            cb.value = q in classes

    def selection(self) -> pd.DataFrame:
        """The clusters passing the current cuts (cached until a cut changes)."""
        from .gradient import apply_cuts

        if self._selection is None:
            self._selection = apply_cuts(self.table, **self._cuts())
        return self._selection

    # -- actions ----------------------------------------------------------------
    def _on_change(self, _change=None) -> None:
        self._selection = None
        self._update_info()
        if len(self.selection()) == 0:
            self._clear_fit()
        elif self.result is None and self._cleared:
            self.fit_info.value = "<i>The previous fit was cleared when no cluster passed the cuts: press Fit.</i>"
        elif self.result is not None and self.result_state != self._cuts():
            self.fit_info.value = f"<i>Fit of the previous cuts</i> (grey; press Fit for these): {self._fit_text}"
        elif self.result is not None:  # back to the cuts of the fit
            self.fit_info.value = self._fit_text
        self._stream.event(version=self._stream.version + 1)
        if self.auto.value and len(self.selection()):  # with N = 0 the text already says the fit was cleared
            self.fit()

    def _clear_fit(self) -> None:
        """No cluster passes the cuts: a fit of other cuts would only mislead, so it goes."""
        had_fit = self.result is not None
        self._cleared = self._cleared or had_fit
        self.result, self.result_state, self._fit_text = None, None, ""
        self.fit_info.value = ("<b>N = 0</b>: no cluster passes these cuts"
                               + ("; the previous fit was cleared." if had_fit else "; nothing to fit."))

    def _convergence_text(self, res) -> str:
        """'converged' or which bound failed, why, and what to do (the panel's sampler is a quick one)."""
        conv = res.convergence()
        st = self.sampler
        size = f"{st['chains']} chains × {st['tune']} tune / {st['draws']} draws"
        if bool(conv["ok"].all()):
            return f"quick fit ({size}) converged: r̂ < {res.bounds['r_hat']}, ESS > {res.bounds['ess_bulk']:.0f}"
        bad = []
        if (conv["r_hat"] >= conv["r_hat_max"]).any():
            bad.append(f"r̂ = {conv['r_hat'].max():.3f} ≥ {res.bounds['r_hat']}")
        if (conv["ess_bulk"] <= conv["ess_bulk_min"]).any():
            bad.append(f"bulk ESS = {conv['ess_bulk'].min():.0f} ≤ {res.bounds['ess_bulk']:.0f}")
        return (f"<b>quick fit NOT converged</b> ({', '.join(bad)}): {size} are too few for these cuts (α and β "
                f"are strongly correlated, so the draws are too); do not quote these numbers. Build the panel "
                f"with more draws, GradientPanel(draws={2 * st['draws']}), or fit the selection with "
                f"cmd_ann.fit_metallicity_gradient(panel.selection()), which in full mode runs the paper's "
                f"4 × 5000/5000 sampler and requires r̂ < 1.01")

    def fit(self):
        """Fit the current selection with the panel's quick sampler; updates ``result`` and the plot.

        Returns the :class:`~ocnb.cmd_ann.GradientFit`, or None (and says so) with fewer than 3
        clusters; with none at all the previous fit is cleared.
        """
        from ..stats import FAST_BOUNDS
        from .gradient import PARAMS, fit_metallicity_gradient

        sel = self.selection()
        cuts = self._cuts()
        if len(sel) == 0:
            self._clear_fit()
            self._stream.event(version=self._stream.version + 1)
            return None
        if len(sel) < 3:
            self.fit_info.value = f"<i>only {len(sel)} clusters selected: nothing to fit (need 3)</i>"
            return None
        self.fit_info.value = f"<i>fitting {len(sel)} clusters ...</i>"
        self.fit_button.disabled = True
        try:
            res = fit_metallicity_gradient(sel, progressbar=False, cores=1, bounds=FAST_BOUNDS, **self.sampler)
        finally:
            self.fit_button.disabled = False
        self.result, self.result_state, self._cleared = res, cuts, False
        s = res.summary
        self.history.append(
            {
                **cuts,
                "n": res.n,
                **{p: float(s.loc[p, "mean"]) for p in PARAMS},
                "r_hat_max": float(s["r_hat"].max()),
                "ess_bulk_min": float(s["ess_bulk"].min()),
                "converged": res.converged,
            }
        )
        self._fit_text = (
            f"α = {s.loc['alpha', 'mean']:+.4f} ± {s.loc['alpha', 'sd']:.4f} dex/kpc, "
            f"β = {s.loc['beta', 'mean']:.3f} ± {s.loc['beta', 'sd']:.3f} dex, "
            f"ε = {s.loc['eps', 'mean']:.3f} ± {s.loc['eps', 'sd']:.3f} dex "
            f"(N = {res.n}; r̂ ≤ {s['r_hat'].max():.3f}, ESS ≥ {s['ess_bulk'].min():.0f}; "
            f"{self._convergence_text(res)}; {res.wall_time_s:.1f} s)"
        )
        self.fit_info.value = self._fit_text
        self._stream.event(version=self._stream.version + 1)
        return res

    def _update_info(self) -> None:
        sel = self.selection()
        c = sel.attrs.get("counts", {})
        steps = " → ".join(f"{v}" for v in c.values())
        age = f"age > {10 ** (self.min_age.value - 6):,.0f} Myr; " if not self.min_age.disabled else ""
        self.info.value = f"<b>N = {len(sel)}</b> clusters selected ({age}{steps})"

    # -- views ----------------------------------------------------------------
    def band_frame(self) -> pd.DataFrame:
        """Posterior line and 68 % band of the last fit on the current R_GC range (empty without a fit)."""
        if self.result is None:
            return pd.DataFrame({"x": np.array([], float), "mean": [], "lo": [], "hi": []})
        r_min, r_max = self.r_range.value
        return self.result.line_band(np.linspace(r_min, r_max, 60))

    def axis_ranges(self) -> dict:
        """``{"x": (lo, hi), "y": (lo, hi)}`` of the plot: the selection with its error bars and the band."""
        sel, band = self.selection(), self.band_frame()
        xs = np.r_[sel["R"].to_numpy(float), band["x"].to_numpy(float)]
        ys = np.r_[(sel["feh"] - sel["sigma_feh"]).to_numpy(float), (sel["feh"] + sel["sigma_feh"]).to_numpy(float),
                   band["lo"].to_numpy(float), band["hi"].to_numpy(float)]
        return {"x": padded_range(xs), "y": padded_range(ys)}

    def _plot(self, version=0):
        holo = hv()
        sel = self.selection()
        xd = holo.Dimension("R", label="R_GC", unit="kpc")
        yd = holo.Dimension("feh", label="[Fe/H]", unit="dex")
        # Styles and labels stay fixed so that the DynamicMap updates the same glyphs' data only.
        pts = holo.Scatter(sel, xd, [yd, "sigma_feh", "sigma_R", "name", "log_age"], label="clusters").opts(
            color="black", size=3, alpha=0.6, tools=["hover"])
        err = holo.ErrorBars(sel, xd, [yd, "sigma_feh"]).opts(color="gray", alpha=0.3, line_width=0.5)
        band = self.band_frame()
        stale = self.result is not None and self.result_state != self._cuts()
        empty = band.iloc[:0]
        layers = [err, pts]
        for name, data, col in (("fit, current cuts", empty if stale else band, "#d62728"),
                                ("fit, previous cuts", band if stale else empty, "#7f7f7f")):
            area = holo.Area(data.rename(columns={"x": "R"}), xd, ["lo", "hi"], label=name).opts(
                color=col, alpha=0.3, line_alpha=0)
            line = holo.Curve(data.rename(columns={"x": "R", "mean": "feh"}), xd, yd, label=name).opts(
                color=col, line_width=2)
            layers += [area, line]
        title = f"N = {len(sel)} clusters" + ("" if len(sel) else ": no cluster passes these cuts")
        if self.result is not None:
            a = self.result.summary.loc["alpha"]
            title += f"; fit: α = {a['mean']:+.4f} ± {a['sd']:.4f} dex/kpc" + (" (previous cuts)" if stale else "")
        return framed(layers, self.axis_ranges(), width=560, height=400, show_grid=True,
                      legend_position="top_right", title=title)

    def plot(self):
        """holoviews DynamicMap of [Fe/H] vs R_GC with the posterior band; follows the widgets."""
        holo = hv()
        if not hasattr(self, "_dmap"):
            self._dmap = holo.DynamicMap(self._plot, streams=[self._stream]).opts(framewise=True)
        return self._dmap

    def controls(self):
        w = widgets()
        return w.VBox(
            [
                self.min_age,
                w.HBox([w.Label("quality", layout=w.Layout(width="110px")), *self.quality.values()]),
                self.r_range,
                self.cmd_min,
                w.HBox([self.fit_button, self.auto]),
                self.info,
                self.fit_info,
            ]
        )
