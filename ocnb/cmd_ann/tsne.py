"""t-SNE check of the training set (Cavallo et al. 2024, Sect. 2.3, Fig. 1; spec §7) with openTSNE.

Do the synthetic clusters cover the observed ones? The 63 standardised
QuadTree features of CMD1 (Gaia BP−RP vs G) of the synthetic **and** the
observed clusters are embedded *jointly* in one 2-D t-SNE map (observed
points are not projected onto a synthetic-only map). The paper's conclusion:
the observed clusters fall inside the synthetic cloud and cover only part of
it. Conventions [spec resolutions]:

* input: the 63 CMD1 features exactly as the network sees them (already
  divided by the frozen synthetic standard deviations, no centring, no further
  scaling); the mean parallax is **excluded**. :func:`embed_features` takes
  63-column arrays, the 64-column Gaia-only network input (the last column,
  parallax, is dropped) or the 190-column multi-band input (the first 63
  columns, CMD1, are kept);
* openTSNE with PCA initialisation, Euclidean metric, a fixed seed and
  perplexity 30 by default (the paper does not give it; re-run at 10, 50 and
  100 to see that the picture is stable);
* one number to go with the picture: the fraction of observed points whose
  k = 10 nearest neighbours in the embedding (the point itself excluded,
  observed and synthetic points alike as candidates) include at least one
  synthetic point, :meth:`TSNEResult.neighbour_fraction`.

Pieces
------
:func:`observed_features`  featurise the shipped member tables (one table per cluster)
:func:`embed_features`     the joint embedding → :class:`TSNEResult`
:class:`TSNEResult`        table of points, the neighbour fraction, a static matplotlib figure
:class:`TSNEExplorer`      holoviews/ipywidgets panel: rasterised synthetic cloud coloured by dMod,
                           observed points on top (hover: name), a perplexity control that re-embeds
                           (cached per perplexity) and a selection (tap or dropdown) that shows the
                           cluster's CMD with its QuadTree partition
:func:`quadtree_segments`  the QuadTree partition lines of one CMD (same tree as
                           :func:`ocnb.cmd_ann.features.quadtree_cuts`); :func:`plot_quadtree` draws them

Everything about synthetic clusters here is SIMULATED data.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .features import G_MAX, _n_nodes, cmd_arrays, n_quadtree_features, walk_quadtree

__all__ = [
    "DEFAULT_PERPLEXITIES",
    "ObservedFeatures",
    "TSNEExplorer",
    "TSNEResult",
    "embed_features",
    "observed_features",
    "plot_quadtree",
    "quadtree_segments",
]

#: Perplexities offered by the explorer (spec §7: 30 by default, re-run at 10, 50, 100).
DEFAULT_PERPLEXITIES = (10, 30, 50, 100)
_LABEL_COLS = ("dist_mod", "log_age", "feh", "a_v")
_LEVEL_STYLE = {1: ("#d62728", 2.0), 2: ("#ff7f0e", 1.3), 3: ("#1f77b4", 0.8)}


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
    :class:`ocnb.panels.QuadTreeInspector`.

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
# Observed clusters
# ---------------------------------------------------------------------------
@dataclass
class ObservedFeatures:
    """Features of real clusters, ready for :func:`embed_features`.

    Attributes: ``X`` (n, n_features) as returned by ``features.transform``;
    ``names`` (n cluster names); ``members`` (name → member table used);
    ``sources`` (name → member-list source); ``flags`` (the transform flags of
    the kept clusters); ``dropped`` (name → why it was left out).
    """

    X: np.ndarray
    names: list
    members: dict
    sources: dict
    flags: pd.DataFrame
    dropped: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)


def observed_features(features, clusters: Sequence[str] | None = None, source: str = "largest",
                      min_stars: int | None = None, data_dir=None) -> ObservedFeatures:
    """Featurise the shipped member tables of real clusters (one table per cluster).

    Parameters
    ----------
    features : QuadTreeFeatures
        Fitted on the synthetic clusters (the same object that featurised them).
    clusters : list of str, optional
        Names (any spelling); default every cluster of
        :func:`ocnb.datasets.list_member_clusters`.
    source : {"largest", "auto", "iso", "almeida", "dr3_cone"}
        Member list per cluster: ``"largest"`` (default) the source with the
        most stars, otherwise passed to :func:`ocnb.datasets.load_members`.
    min_stars : int, optional
        Clusters with fewer CMD1 stars (G ≤ 18, BP and RP) or without a finite
        parallax are left out and listed in ``dropped`` (default:
        ``features.min_stars``, 10 as in the paper).
    """
    from .. import datasets

    table = datasets.list_member_clusters(data_dir=data_dir)
    if clusters is None:
        names = list(dict.fromkeys(table["cluster"]))
    else:
        names = list(dict.fromkeys(datasets.resolve_cluster_name(c) for c in clusters))
    members, sources, dropped = {}, {}, {}
    for name in names:
        rows = table[table["cluster"] == name]
        if source == "largest":
            if not len(rows):
                dropped[name] = "no shipped member list"
                continue
            src = str(rows.sort_values("n_stars", ascending=False, kind="stable")["source"].iloc[0])
        else:
            src = source
        try:
            m = datasets.load_members(name, source=src, data_dir=data_dir)
        except Exception as exc:  # noqa: BLE001  (a missing source for one cluster is not fatal)
            dropped[name] = f"cannot load members ({src}): {exc}"
            continue
        members[name] = m
        sources[name] = m.attrs.get("source", src)
    keep = list(members)
    if not keep:
        raise ValueError(f"no member tables could be loaded: {dropped}")
    limit = features.min_stars if min_stars is None else int(min_stars)
    # a copy that flags (rather than raises on) poor tables; the caller's object is left alone
    flagging = type(features).from_dict(features.to_dict(), on_low_quality="flag", min_stars=limit)
    flagging.n_jobs = features.n_jobs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # missing-2MASS warnings: irrelevant for CMD1
        X, flags = flagging.transform_with_flags([members[n] for n in keep])
    flags = flags.copy()
    flags["cluster"] = keep
    ok = ~flags["low_quality"].to_numpy(dtype=bool)
    for name, good, reason in zip(keep, ok, flags["reason"]):
        if not good:
            dropped[name] = reason
            members.pop(name)
            sources.pop(name)
    return ObservedFeatures(X=X[ok], names=[n for n, g in zip(keep, ok) if g], members=members,
                            sources=sources, flags=flags[ok].reset_index(drop=True), dropped=dropped)


# ---------------------------------------------------------------------------
# Embedding
# ---------------------------------------------------------------------------
def _cmd1_block(X, what: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"{what} features must be a 2-D array (clusters × features), not shape {X.shape}")
    nq = n_quadtree_features(3)
    if X.shape[1] in (nq, nq + 1, 3 * nq + 1):
        X = X[:, :nq]  # 64: drop the parallax (last); 190: keep CMD1 (first 63)
    else:
        raise ValueError(f"{what} features have {X.shape[1]} columns; expected {nq} (CMD1 QuadTree), "
                         f"{nq + 1} (Gaia-only input, parallax last) or {3 * nq + 1} (multi-band input)")
    if not np.isfinite(X).all():
        bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
        raise ValueError(f"{what} features contain NaN/inf in rows {bad[:10].tolist()}")
    return np.ascontiguousarray(X)


def _labels_frame(labels, n: int, what: str) -> pd.DataFrame:
    if labels is None:
        return pd.DataFrame({c: np.full(n, np.nan) for c in _LABEL_COLS})
    if hasattr(labels, "labels") and isinstance(labels.labels, pd.DataFrame):
        labels = labels.labels  # a SyntheticClusters
    labels = pd.DataFrame(labels).reset_index(drop=True)
    if len(labels) != n:
        raise ValueError(f"{what} labels have {len(labels)} rows for {n} feature rows")
    return pd.DataFrame({c: (labels[c].to_numpy(dtype=np.float64) if c in labels.columns
                             else np.full(n, np.nan))
                         for c in _LABEL_COLS})


@dataclass
class TSNEResult:
    """A joint t-SNE embedding of synthetic and observed feature vectors.

    Attributes
    ----------
    frame : DataFrame
        One row per point, synthetic first: ``x, y`` (embedding), ``kind``
        ("synthetic" / "observed"), ``dist_mod, log_age, feh, a_v`` (labels of
        the SIMULATED clusters; NaN for observed ones), ``name``
        (``SYN-000123`` or the observed cluster's name) and ``index`` (row in
        its own input array).
    perplexity, seed : float, int
    synthetic_X, observed_X : ndarray or None
        The 63-column inputs (kept so that :meth:`rerun` can re-embed).
    kl_divergence, runtime_s : float
        openTSNE's final KL divergence and the wall time of the fit.
    settings : dict
        Everything else passed to ``openTSNE.TSNE`` (``n_jobs`` …).
    opentsne_version : str
    """

    frame: pd.DataFrame
    perplexity: float
    seed: int = 0
    synthetic_X: np.ndarray | None = None
    observed_X: np.ndarray | None = None
    kl_divergence: float = float("nan")
    runtime_s: float = float("nan")
    settings: dict = field(default_factory=dict)
    opentsne_version: str = ""

    def __repr__(self) -> str:
        n_s = int((self.frame["kind"] == "synthetic").sum())
        n_o = len(self.frame) - n_s
        return (f"<TSNEResult: {n_s} SIMULATED + {n_o} observed clusters, perplexity {self.perplexity:g}, "
                f"seed {self.seed}, KL {self.kl_divergence:.3f}, {self.runtime_s:.1f} s>")

    @property
    def embedding(self) -> np.ndarray:
        """(n, 2) coordinates, synthetic rows first."""
        return self.frame[["x", "y"]].to_numpy(dtype=np.float64)

    @property
    def synthetic(self) -> pd.DataFrame:
        return self.frame[self.frame["kind"] == "synthetic"]

    @property
    def observed(self) -> pd.DataFrame:
        return self.frame[self.frame["kind"] == "observed"]

    @property
    def observed_names(self) -> list:
        return self.observed["name"].tolist()

    # -- the number -----------------------------------------------------------
    def neighbour_counts(self, k: int = 10) -> pd.DataFrame:
        """Per observed point: how many of its ``k`` nearest embedding neighbours are synthetic.

        Neighbours are all other points (synthetic and observed), Euclidean
        distance in the map, the point itself excluded (also when another point
        sits at exactly the same place). Columns ``name, n_synthetic,
        nearest_synthetic`` (distance to the nearest synthetic point).
        """
        from scipy.spatial import cKDTree

        k = int(k)
        xy = self.embedding
        n = len(xy)
        if not 1 <= k <= n - 1:
            raise ValueError(f"k must be between 1 and {n - 1} (points - 1), not {k}")
        is_syn = (self.frame["kind"] == "synthetic").to_numpy()
        obs = np.flatnonzero(~is_syn)
        if obs.size == 0:
            return pd.DataFrame({"name": [], "n_synthetic": [], "nearest_synthetic": []})
        tree = cKDTree(xy)
        _, nb = tree.query(xy[obs], k=k + 1)
        nb = np.asarray(nb).reshape(obs.size, k + 1)
        rows = []
        for p, cand in zip(obs, nb):
            cand = cand[cand != p][:k]  # drop the point itself wherever ties put it
            rows.append(int(is_syn[cand].sum()))
        if is_syn.any():
            d_syn, _ = cKDTree(xy[is_syn]).query(xy[obs], k=1)
        else:
            d_syn = np.full(obs.size, np.inf)
        return pd.DataFrame({"name": self.frame["name"].to_numpy()[obs], "n_synthetic": rows,
                             "nearest_synthetic": d_syn})

    def neighbour_fraction(self, k: int = 10) -> float:
        """Fraction of observed points with ≥ 1 synthetic point among their ``k`` nearest neighbours."""
        c = self.neighbour_counts(k)
        if not len(c):
            return float("nan")
        return float((c["n_synthetic"] >= 1).mean())

    # -- re-running -------------------------------------------------------------
    def rerun(self, perplexity: float | None = None, seed: int | None = None, **settings) -> "TSNEResult":
        """The same inputs embedded again (e.g. at another perplexity)."""
        if self.synthetic_X is None or self.observed_X is None:
            raise RuntimeError("this TSNEResult does not hold its input features; use embed_features")
        syn, obs = self.synthetic, self.observed
        kw = {**self.settings, **settings}
        return embed_features(self.synthetic_X, self.observed_X,
                              perplexity=self.perplexity if perplexity is None else perplexity,
                              seed=self.seed if seed is None else seed,
                              synthetic_labels=syn[list(_LABEL_COLS)], observed_names=obs["name"].tolist(),
                              synthetic_names=syn["name"].tolist(), **kw)

    # -- views -------------------------------------------------------------------
    def plot(self, ax=None, k: int = 10, annotate: bool = False, cmap: str = "viridis", s: float = 5):
        """Static Fig. 1: synthetic points coloured by dMod, observed points black. Returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6.4, 5.4))
        syn, obs = self.synthetic, self.observed
        sc = ax.scatter(syn["x"], syn["y"], c=syn["dist_mod"], cmap=cmap, s=s, linewidths=0, alpha=0.8,
                        label=f"synthetic, SIMULATED ({len(syn)})")
        if np.isfinite(syn["dist_mod"].to_numpy(dtype=float)).any():
            ax.figure.colorbar(sc, ax=ax, label="dMod of the synthetic cluster [mag]")
        ax.scatter(obs["x"], obs["y"], c="black", s=4 * s, marker="o", linewidths=0.5, edgecolors="white",
                   label=f"observed ({len(obs)})", zorder=3)
        if annotate:
            for _, r in obs.iterrows():
                ax.annotate(str(r["name"]), (r["x"], r["y"]), fontsize=6, xytext=(3, 3),
                            textcoords="offset points")
        frac = self.neighbour_fraction(k) if len(obs) and len(self.frame) > k else float("nan")
        ax.set_title(f"openTSNE, perplexity {self.perplexity:g}: {frac:.0%} of observed clusters have a\n"
                     f"synthetic one among their {k} nearest neighbours", fontsize="medium")
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
        ax.legend(loc="best", fontsize="small", markerscale=1.5)
        return ax

    def panel(self, **kwargs) -> "TSNEExplorer":
        """An interactive :class:`TSNEExplorer` starting from this embedding (keywords go to it)."""
        return TSNEExplorer(self, **kwargs)


def embed_features(synthetic_X, observed_X, perplexity: float = 30, seed: int = 0, n_jobs: int = 1,
                   synthetic_labels=None, observed_names: Sequence[str] | None = None,
                   synthetic_names: Sequence[str] | None = None, **tsne_kwargs) -> TSNEResult:
    """Embed synthetic and observed QuadTree CMD1 features jointly with openTSNE (spec §7).

    Parameters
    ----------
    synthetic_X, observed_X : array_like
        (n, 63) CMD1 features, or the network inputs they are part of:
        (n, 64) Gaia-only (parallax, the last column, is dropped) or (n, 190)
        multi-band (the first 63 columns, CMD1, are kept). Used as they are:
        already standardised by :class:`~ocnb.cmd_ann.features.QuadTreeFeatures`.
    perplexity : float
        30 by default; at most (n_points − 1) / 3 (ValueError otherwise).
    seed : int
        ``random_state`` of openTSNE (fixed seed → same map).
    n_jobs : int
        openTSNE threads. Default 1: deterministic, and on a busy machine
        extra threads were much slower, not faster.
    synthetic_labels : DataFrame or SyntheticClusters, optional
        Per synthetic row ``dist_mod``, ``log_age`` (and ``feh``, ``a_v``), for
        colouring and hover.
    observed_names, synthetic_names : list of str, optional
        Unique names (defaults ``observed 0`` …, ``SYN-000000`` …).
    **tsne_kwargs
        Further ``openTSNE.TSNE`` arguments (e.g. ``n_iter``); initialisation
        (PCA) and metric (Euclidean) are fixed.
    """
    try:
        import openTSNE
        from openTSNE import TSNE
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("embed_features needs openTSNE: pip install 'ocnb[embed]'") from exc

    for fixed in ("initialization", "metric", "random_state", "perplexity"):
        if fixed in tsne_kwargs:
            raise TypeError(f"{fixed!r} is fixed by embed_features (spec §7) or has its own argument")
    Xs = _cmd1_block(synthetic_X, "synthetic")
    Xo = _cmd1_block(observed_X, "observed")
    n_s, n_o = len(Xs), len(Xo)
    n = n_s + n_o
    perplexity = float(perplexity)
    if not perplexity > 0:
        raise ValueError(f"perplexity must be positive, not {perplexity}")
    if 3 * perplexity > n - 1:
        raise ValueError(f"perplexity {perplexity:g} is too large for {n} points: it must be at most "
                         f"(n - 1) / 3 = {(n - 1) / 3:.1f}")
    labels = _labels_frame(synthetic_labels, n_s, "synthetic")
    names_s = [f"SYN-{i:06d}" for i in range(n_s)] if synthetic_names is None else [str(v) for v in
                                                                                     synthetic_names]
    names_o = [f"observed {i}" for i in range(n_o)] if observed_names is None else [str(v) for v in
                                                                                    observed_names]
    if len(names_s) != n_s or len(names_o) != n_o:
        raise ValueError(f"got {len(names_s)} synthetic / {len(names_o)} observed names "
                         f"for {n_s} / {n_o} rows")
    if len(set(names_s) | set(names_o)) != n:
        raise ValueError("point names must be unique (observed and synthetic together)")
    settings = {"n_jobs": int(n_jobs), **tsne_kwargs}
    t0 = time.perf_counter()
    tsne = TSNE(perplexity=perplexity, initialization="pca", metric="euclidean", random_state=int(seed),
                **settings)
    emb = tsne.fit(np.concatenate([Xs, Xo]))
    runtime = time.perf_counter() - t0
    xy = np.asarray(emb, dtype=np.float64)
    frame = pd.DataFrame({
        "x": xy[:, 0], "y": xy[:, 1],
        "kind": np.array(["synthetic"] * n_s + ["observed"] * n_o, dtype=object),
        **{c: np.concatenate([labels[c].to_numpy(), np.full(n_o, np.nan)]) for c in _LABEL_COLS},
        "name": np.array(names_s + names_o, dtype=object),
        "index": np.concatenate([np.arange(n_s), np.arange(n_o)]).astype(np.int64),
    })
    return TSNEResult(frame=frame, perplexity=perplexity, seed=int(seed), synthetic_X=Xs, observed_X=Xo,
                      kl_divergence=float(getattr(emb, "kl_divergence", float("nan"))), runtime_s=runtime,
                      settings=settings, opentsne_version=str(getattr(openTSNE, "__version__", "?")))


# ---------------------------------------------------------------------------
# Interactive explorer
# ---------------------------------------------------------------------------
class TSNEExplorer:
    """The t-SNE map next to the CMD + QuadTree of the selected cluster (holoviews + ipywidgets).

    Left: the synthetic (SIMULATED) cloud rasterised with datashader and
    coloured by the mean dMod per pixel, the observed clusters as black points
    on top (hover shows the name), the selected cluster ringed in red. Right:
    the selected cluster's CMD1 (BP−RP, G ≤ 18) with its QuadTree partition
    (:func:`quadtree_segments`, levels 1–3).

    Controls (ipywidgets, the state; plots follow through holoviews streams):
    ``perplexity`` (selection slider over :data:`DEFAULT_PERPLEXITIES`; a new
    value re-embeds with the same inputs and seed, each perplexity is embedded
    at most once) and ``picker`` (dropdown of observed names, keyboard
    friendly). Tapping an observed point selects it (``Selection1D``); tapping
    elsewhere selects the nearest synthetic cluster (``Tap``) when
    ``synthetic`` is given.

    Parameters
    ----------
    result : TSNEResult
        Holds the inputs (from :func:`embed_features`) when other perplexities are wanted.
    observed : mapping or callable, optional
        Observed name → member table (e.g. :attr:`ObservedFeatures.members`, or
        the dict whose tables were featurised); default
        :func:`ocnb.datasets.load_members`.
    synthetic : SyntheticClusters, optional
        The SIMULATED clusters of the embedding, in the same order, to show their CMDs.
    features : QuadTreeFeatures, optional
        The featuriser used: its magnitude cut and tree depth are used for the
        CMD panel (default G ≤ 18, 3 levels).
    perplexities : sequence of float
    datashade : bool
        Rasterise the synthetic cloud (default) or draw plain points.
    pixel_size : int
        Screen pixels per raster cell (4): coarse cells keep a sparse cloud visible.
    start : str, optional
        Initially selected cluster (default: the first observed one).
    """

    def __init__(self, result: TSNEResult, observed: Mapping[str, pd.DataFrame] | Callable | None = None,
                 synthetic=None, features=None, perplexities: Sequence[float] = DEFAULT_PERPLEXITIES,
                 datashade: bool = True, start: str | None = None, width: int = 460, height: int = 420,
                 pixel_size: int = 4):
        import ipywidgets as w

        from ..panels import _hv

        hv = _hv()
        self._cache: dict[float, TSNEResult] = {float(result.perplexity): result}
        self.n_embeddings = 0  # embeddings computed by this explorer (cache misses)
        self._members_src = observed
        self.g_max = G_MAX if features is None else features.g_max
        self.levels = 3 if features is None else int(features.levels)
        self._member_cache: dict[str, pd.DataFrame] = {}
        n_syn = int((result.frame["kind"] == "synthetic").sum())
        if synthetic is not None and len(synthetic) != n_syn:
            raise ValueError(f"synthetic has {len(synthetic)} clusters, the embedding {n_syn}")
        self.synthetic = synthetic
        self.datashade = bool(datashade)
        self.pixel_size = max(1, int(pixel_size))
        self.width, self.height = int(width), int(height)
        self._names = list(result.observed_names)
        self._all_names = set(result.frame["name"])
        opts = sorted({float(p) for p in perplexities} | {float(result.perplexity)})
        self.perplexity = w.SelectionSlider(options=[(f"{p:g}", p) for p in opts],
                                            value=float(result.perplexity), description="perplexity",
                                            continuous_update=False)
        self.picker = w.Dropdown(options=self._names, value=None, description="cluster")
        self.status = w.HTML()
        self._pstream = hv.streams.Stream.define("Perplexity", perplexity=float(result.perplexity))()
        first = start if start is not None else (self._names[0] if self._names
                                                 else str(result.frame["name"].iloc[0]))
        self._selected = self._lookup(first)
        self._sstream = hv.streams.Stream.define("Selected", kind=self._selected[0],
                                                 index=self._selected[1])()
        self._busy = False
        self.perplexity.observe(lambda ch: self._on_perplexity(ch["new"]), names="value")
        self.picker.observe(self._on_pick, names="value")
        self.select(first)

    # -- state --------------------------------------------------------------------
    @property
    def result(self) -> TSNEResult:
        """The embedding currently shown."""
        return self._cache[float(self.perplexity.value)]

    def state(self) -> dict:
        """``perplexity``, ``selected`` (name), ``kind``, ``index``, ``n_embeddings``, ``cached``."""
        kind, idx = self._selected
        return {"perplexity": float(self.perplexity.value), "selected": self._name_of(kind, idx),
                "kind": kind, "index": int(idx), "n_embeddings": self.n_embeddings,
                "cached": sorted(self._cache)}

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
            except Exception:  # noqa: BLE001  (an unknown name just shows an empty CMD)
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
        hv = self._hv()
        s = self._cache[float(perplexity)].synthetic
        return hv.Points(s, kdims=["x", "y"], vdims=["dist_mod", "log_age", "name"], label="synthetic")

    def _obs_points(self, perplexity):
        hv = self._hv()
        o = self._cache[float(perplexity)].observed
        return hv.Points(o, kdims=["x", "y"], vdims=["name", "index"], label="observed").opts(
            color="black", size=6, line_color="white", tools=["hover", "tap"], nonselection_alpha=0.6,
            selection_color="red")

    def _ring(self, perplexity, kind, index):
        hv = self._hv()
        f = self._cache[float(perplexity)].frame
        r = f[(f["kind"] == kind) & (f["index"] == index)]
        return hv.Points(r, kdims=["x", "y"], vdims=["name"], label="selected").opts(
            size=16, fill_alpha=0, line_color="red", line_width=2)

    def _cmd_plot(self, kind, index):
        hv = self._hv()
        df = self.cmd_frame(kind, index)
        bp_rp = hv.Dimension("bp_rp", label="BP − RP", unit="mag")
        g = hv.Dimension("g", label="G", unit="mag")
        name = self._name_of(kind, index)
        if kind == "synthetic":
            f = self.result.frame
            r = f[(f["kind"] == kind) & (f["index"] == index)].iloc[0]
            title = f"{name} (SIMULATED): dMod {r['dist_mod']:.2f}, log age {r['log_age']:.2f}"
        else:
            title = f"{name}: {len(df)} stars in CMD1 (G ≤ {self.g_max:g})"
        if not len(df):
            title = f"{name}: no member table" if kind == "observed" else f"{name}: pass synthetic= to see it"
        pts = hv.Scatter(df, bp_rp, g, label="stars").opts(color="#444444", size=3, alpha=0.6)
        seg = self.segments_frame(kind, index)
        seg = seg[~seg["empty_cell"]].rename(columns={"x0": "bp_rp", "y0": "g", "x1": "bp_rp_1", "y1": "g_1"})
        layers = pts
        for lev in range(self.levels, 0, -1):  # coarse cuts on top
            color, lw = _LEVEL_STYLE.get(lev, ("#7f7f7f", 0.6))
            part = seg.loc[seg["level"] == lev, ["bp_rp", "g", "bp_rp_1", "g_1"]]
            layers = layers * hv.Segments(part, kdims=[bp_rp, g, "bp_rp_1", "g_1"],
                                          label=f"QuadTree level {lev}").opts(color=color, line_width=lw)
        return layers.opts(title=title)

    @staticmethod
    def _hv():
        from ..panels import _hv

        return _hv()

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
        hv = self._hv()
        syn = hv.DynamicMap(self._syn_points, streams=[self._pstream])
        obs = hv.DynamicMap(self._obs_points, streams=[self._pstream])
        ring = hv.DynamicMap(self._ring, streams=[self._pstream, self._sstream])
        has_dmod = bool(np.isfinite(self.result.frame["dist_mod"].to_numpy(dtype=float)).any())
        if self.datashade:
            import datashader as ds
            from holoviews.operation.datashader import rasterize

            agg = ds.mean("dist_mod") if has_dmod else ds.count()
            # Coarse pixels (pixel_size screen pixels each) keep sparse clouds visible and show the mean
            # dMod of neighbouring clusters; dynspread would do too but costs seconds of JIT compilation.
            raster = rasterize(syn, aggregator=agg, pixel_ratio=1.0 / self.pixel_size)
            self._range_streams = [s for s in raster.streams if isinstance(s, (hv.streams.RangeXY,))]
            cloud = raster.opts(
                cmap="viridis", colorbar=True, clabel="dMod of synthetic clusters [mag]" if has_dmod
                else "synthetic clusters per pixel", tools=["hover"])
        else:
            cloud = syn.opts(color="dist_mod" if has_dmod else "#1f77b4", cmap="viridis", colorbar=has_dmod,
                             size=3, tools=["hover"])
        self.tap = hv.streams.Tap(source=obs, x=None, y=None)
        self.tap.add_subscriber(self._on_tap)
        self.selection = hv.streams.Selection1D(source=obs)
        self.selection.add_subscriber(self._on_selection)
        emb = (cloud * obs * ring).opts(
            width=self.width, height=self.height, framewise=True, xlabel="t-SNE 1", ylabel="t-SNE 2",
            title="t-SNE: synthetic (colour: dMod), observed (black)", show_legend=False)
        cmd = hv.DynamicMap(self._cmd_plot, streams=[self._sstream]).opts(
            width=self.width, height=self.height, invert_yaxis=True, framewise=True, show_grid=True,
            legend_position="top_right")
        self._layout = (emb + cmd).opts(shared_axes=False)
        return self._layout

    def controls(self):
        import ipywidgets as w

        return w.VBox([w.HBox([self.perplexity, self.picker]), self.status])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.controls())
        display(self.plot())
