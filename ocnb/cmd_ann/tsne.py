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
                           (both defined in :mod:`ocnb.cmd_ann.panels`, with the explorer)

Everything about synthetic clusters here is SIMULATED data.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .features import n_quadtree_features

# The QuadTree lines and the explorer are views: they live in .panels (which never imports this module).
from .panels import DEFAULT_PERPLEXITIES, TSNEExplorer, plot_quadtree, quadtree_segments

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

_LABEL_COLS = ("dist_mod", "log_age", "feh", "a_v")


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
        except Exception as exc:
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
    for name, good, reason in zip(keep, ok, flags["reason"], strict=True):
        if not good:
            dropped[name] = reason
            members.pop(name)
            sources.pop(name)
    return ObservedFeatures(X=X[ok], names=[n for n, g in zip(keep, ok, strict=True) if g], members=members,
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
        for p, cand in zip(obs, nb, strict=True):
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
    def rerun(self, perplexity: float | None = None, seed: int | None = None, **settings) -> TSNEResult:
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

    def panel(self, **kwargs) -> TSNEExplorer:
        """An interactive :class:`~ocnb.cmd_ann.TSNEExplorer` starting from this embedding (keywords go to it)."""
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
