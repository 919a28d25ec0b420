"""QuadTree features of colour-magnitude diagrams (Cavallo et al. 2024, Sect. 3.1; spec §3).

A QuadTree node splits its stars into four equal-count cells: one vertical
cut at the median x (colour), then one horizontal cut at the median y
(magnitude) of each half. Three levels give 1 + 4 + 16 = 21 x-cuts and
2 + 8 + 32 = 42 y-cuts: 63 features per CMD. The network input is
``[Q(CMD1), Q(CMD2), Q(CMD3), mean parallax]`` = 190 numbers (multi-band) or
``[Q(CMD1), mean parallax]`` = 64 (Gaia only), with

* CMD1 = (BP−RP, G): stars with G, BP and RP;
* CMD2 = (BP−RP, J): stars with BP, RP and a usable J;
* CMD3 = (J−H, J): stars with usable J and usable H;

all restricted to G ≤ 18. A 2MASS band is usable when its quality letter is
A or B (S/N > 7) and its error ≤ 0.3 mag: real member tables are judged by
``ph_qual`` + ``*_msigcom``, tables without ``ph_qual`` (the simulated ones)
by S/N = 1.0857/σ > 7 and σ ≤ 0.3.

The tree, exactly as spec §3 (ties, empty cells, order)
--------------------------------------------------------
* median = ``np.median`` (mean of the two central values for even n);
* halving n points along an axis: stable sort by that coordinate, low half =
  first ⌈n/2⌉, high half = the remaining ⌊n/2⌋. Ties are broken by the
  stars' **row order in the input table**, at every level (the cut *value*
  is the median and does not depend on ties; only which tied star lands in
  which half does);
* node P (n ≥ 1): x_c = median(P.x); (L, R) = halve P on x; y_L = median(L.y),
  y_R = median(R.y), or median(P.y) when R is empty (n = 1); children, in
  order, [L-low-y, L-high-y, R-low-y, R-high-y];
* anchors: the L children inherit (x_c, y_L), the R children (x_c, y_R);
  an **empty node** emits x_c = anchor x and y_L = y_R = anchor y, and so do
  its (empty) children: a sparse cluster's deep cells collapse onto the cuts
  above them and every feature is finite;
* output: ``[x(level 1), x(level 2) × 4, x(level 3) × 16, y(level 1) × 2,
  y(level 2) × 8, y(level 3) × 32]``, breadth first, nodes in child order,
  each node's y-cuts as (y_L, y_R);
* a CMD with **no stars** gives 63 zeros.

:func:`quadtree_cuts` is the readable per-cluster implementation;
:func:`quadtree_batch` computes the same numbers (bit for bit) for many
clusters stored flat (CSR layout): one presort per coordinate and, per level,
a counting sort by node id, so 50,000 clusters take seconds.

Standardisation
---------------
:class:`QuadTreeFeatures` divides colour and magnitude (no centring) by their
standard deviations over all synthetic stars that enter the CMD (one pair of
constants per CMD, frozen at :meth:`~QuadTreeFeatures.fit` and saved with the
model via :meth:`~QuadTreeFeatures.to_dict`).

Defined behaviour for poor inputs (real member tables)
------------------------------------------------------
* member table without 2MASS columns (``j_m``/``h_m``) or without any 2MASS
  quality information (``ph_qual``, ``*_msigcom``): CMD2/CMD3 features are
  zeros (the empty-CMD rule), a ``UserWarning`` is issued and the flags
  column ``has_2mass`` is False;
* fewer than ``min_stars`` (10, as in the paper's sample) stars in CMD1, or no
  finite parallax among the G ≤ 18 stars: :class:`ocnb.errors.MemberTableError`
  (``on_low_quality="raise"``, default) or, with ``on_low_quality="flag"``,
  features computed from what there is, the parallax feature NaN when there
  is none, and ``low_quality=True`` with a ``reason`` in the flags returned
  by :meth:`~QuadTreeFeatures.transform_with_flags`. Never a silent number.
* stars with NaN in a CMD's magnitudes are left out of that CMD; NaN
  parallaxes are left out of the mean.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import MemberTableError

__all__ = [
    "CMDS",
    "CMD_AXES",
    "QuadTreeFeatures",
    "cmd_arrays",
    "cmd_masks",
    "n_quadtree_features",
    "quadtree_batch",
    "quadtree_cuts",
    "quadtree_feature_names",
]

#: The three CMDs: name -> (colour, magnitude) in band names.
CMD_AXES = {"cmd1": ("BP-RP", "G"), "cmd2": ("BP-RP", "J"), "cmd3": ("J-H", "J")}
CMDS = tuple(CMD_AXES)
_COLS = {"G": "phot_g_mean_mag", "BP": "phot_bp_mean_mag", "RP": "phot_rp_mean_mag",
         "J": "j_m", "H": "h_m", "J_err": "j_msigcom", "H_err": "h_msigcom"}
G_MAX = 18.0
#: How the mean parallax enters the features (QuadTreeFeatures(parallax=...)).
PARALLAX_TRANSFORMS = ("raw", "log10")
FORMAT_VERSION = 1


# ---------------------------------------------------------------------------
# QuadTree: per cluster (reference) and batched
# ---------------------------------------------------------------------------
def n_quadtree_features(levels: int = 3) -> int:
    """Features per CMD: (4^L − 1)/3 x-cuts + twice as many y-cuts (63 for L = 3)."""
    return 3 * _n_nodes(levels)


def _n_nodes(levels: int) -> int:
    if int(levels) != levels or levels < 1:
        raise ValueError(f"levels must be a positive integer, not {levels!r}")
    return (4 ** int(levels) - 1) // 3


def quadtree_feature_names(prefix: str = "", levels: int = 3) -> list[str]:
    """Names of the features in output order, e.g. ``cmd1_x_L2_3`` or ``cmd1_y_L3_15R``."""
    p = f"{prefix}_" if prefix else ""
    xs, ys = [], []
    for lev in range(1, int(levels) + 1):
        for k in range(4 ** (lev - 1)):
            xs.append(f"{p}x_L{lev}_{k}")
            ys += [f"{p}y_L{lev}_{k}L", f"{p}y_L{lev}_{k}R"]
    return xs + ys


def _halve(idx: np.ndarray, coord: np.ndarray):
    """Stable halving of the points ``idx`` (ascending row indices) along ``coord``.

    Returns the low ⌈n/2⌉ and high ⌊n/2⌋ points, each again as ascending row
    indices (so the next sort breaks ties by input row order).
    """
    order = idx[np.argsort(coord[idx], kind="stable")]
    h = (idx.size + 1) // 2
    return np.sort(order[:h]), np.sort(order[h:])


def quadtree_cuts(x, y, levels: int = 3) -> np.ndarray:
    """QuadTree cut coordinates of one CMD (spec §3), the per-cluster reference.

    Parameters
    ----------
    x, y : array_like
        Colour and magnitude of the stars (already standardised if wanted);
        must be finite.
    levels : int
        Tree depth (3 in the paper).

    Returns
    -------
    numpy.ndarray
        float64, length 3 (4^L − 1)/3 (63): all x-cuts (breadth first), then
        all y-cuts as (y_L, y_R) per node. 0 stars → zeros.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length: {x.size} vs {y.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("quadtree_cuts needs finite x and y; drop stars with NaN magnitudes first")
    nn = _n_nodes(levels)
    if x.size == 0:
        return np.zeros(3 * nn)
    xs, ys = [], []
    for _level, _k, _idx, xc, yl, yr in walk_quadtree(x, y, levels):
        xs.append(xc)
        ys += [yl, yr]
    return np.array(xs + ys, dtype=np.float64)


def walk_quadtree(x, y, levels: int = 3):
    """Visit the QuadTree nodes of one CMD breadth first (the tree of :func:`quadtree_cuts`).

    Yields ``(level, k, idx, x_cut, y_cut_left, y_cut_right)`` per node: ``level`` 1…levels,
    ``k`` its index within the level (children of node k are 4k…4k+3, ordered left-low,
    left-high, right-low, right-high), ``idx`` the indices of its stars (empty nodes take the
    anchor of their parent's cuts, spec §3). ``x`` and ``y`` must be finite float arrays.
    """
    nodes = [(np.arange(x.size), 0.0, 0.0)]  # (points, anchor x, anchor y); root anchor unused
    for level in range(1, int(levels) + 1):
        children = []
        for k, (idx, ax, ay) in enumerate(nodes):
            if idx.size == 0:
                xc, yl, yr = ax, ay, ay
                low_l = high_l = low_r = high_r = idx
            else:
                xc = float(np.median(x[idx]))
                left, right = _halve(idx, x)
                yl = float(np.median(y[left]))
                yr = float(np.median(y[right])) if right.size else float(np.median(y[idx]))
                low_l, high_l = _halve(left, y)
                low_r, high_r = _halve(right, y)
            yield level, k, idx, xc, yl, yr
            children += [(low_l, xc, yl), (high_l, xc, yl), (low_r, xc, yr), (high_r, xc, yr)]
        nodes = children


def _row_argsort(mat: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-row argsort by (value, column): padding (+inf) last, ties in column order.

    A quicksort per row (SIMD, fast) followed by restoring column order inside
    runs of tied values: the same permutation as a stable sort.
    """
    arg = np.argsort(mat, axis=1)
    srt = np.take_along_axis(mat, arg, axis=1)
    eq = (srt[:, 1:] == srt[:, :-1]) & valid[:, 1:]
    if eq.any():
        w = mat.shape[1]
        tie = np.zeros(mat.shape, dtype=bool)
        tie[:, 1:] |= eq
        tie[:, :-1] |= eq
        r, c = np.nonzero(tie)
        new_run = np.ones(r.size, dtype=bool)
        same = srt[r[1:], c[1:]] == srt[r[:-1], c[:-1]]
        new_run[1:] = ~((r[1:] == r[:-1]) & (c[1:] == c[:-1] + 1) & same)
        run = np.cumsum(new_run) - 1
        key = np.sort(run.astype(np.int64) * w + arg[r, c])
        arg[r, c] = key % w
    return arg


def _group_ids(sizes: np.ndarray, w: int, dtype) -> np.ndarray:
    """(m, w) group index of every position when row r holds groups of ``sizes[r]`` stars in order,
    followed by its padding (group ``k``)."""
    m, k = sizes.shape
    counts = np.concatenate([sizes, w - sizes.sum(axis=1, keepdims=True)], axis=1)
    ids = np.tile(np.arange(k + 1, dtype=dtype), m)
    return np.repeat(ids, counts.ravel()).reshape(m, w)


def _take(flat: np.ndarray, idx: np.ndarray, rowoff: np.ndarray) -> np.ndarray:
    """Row-wise gather ``flat.reshape(m, w)[r, idx[r, :]]`` as one flat take (faster than take_along_axis)."""
    return np.take(flat, idx + rowoff)


def _excl_cumsum(a: np.ndarray) -> np.ndarray:
    out = np.zeros_like(a)
    np.cumsum(a[:, :-1], axis=1, out=out[:, 1:])
    return out


def _bucket_tree(xm, ym, sz, levels: int):
    """QuadTree of a bucket of clusters held as padded rows (m, w); returns (m, n_features).

    Works in rank space, row by row: ``rank`` lists, for each position of the
    current grouping (nodes in order, x-sorted inside), the star's x rank.
    A split labels positions with their half (group boundaries are known from
    the node sizes alone), and one integer sort of ``half << b | y-rank`` per
    row groups the stars by half, y-sorted inside: a counting sort that keeps
    the input-row tie order of the presort. Padding (+inf) forms a trailing
    group that never mixes with real stars.
    """
    m, w = xm.shape
    b = max(1, (w - 1).bit_length())
    it = np.int32 if ((4 ** int(levels) + 2) << b) < 2**31 and m * w < 2**31 else np.int64
    mask = it((1 << b) - 1)
    col = np.arange(w, dtype=it)
    valid = col[None, :] < sz[:, None]
    px = _row_argsort(xm, valid).astype(it)  # px[r, rank] = column
    py = _row_argsort(ym, valid).astype(it)
    rowoff = (np.arange(m, dtype=it) * it(w))[:, None]
    xs = _take(xm.ravel(), px, rowoff).reshape(m, w)  # x value by x rank
    ys = _take(ym.ravel(), py, rowoff).reshape(m, w)
    rx = np.empty(m * w, dtype=it)
    rx[(px + rowoff).ravel()] = np.tile(col, m)
    ry = np.empty(m * w, dtype=it)
    ry[(py + rowoff).ravel()] = np.tile(col, m)
    c_xy = _take(ry, px, rowoff).ravel()  # x rank -> y rank (flat rows)
    c_yx = _take(rx, py, rowoff).ravel()  # y rank -> x rank
    del rx, ry
    sz64 = sz.astype(np.int64)[:, None]
    nn = _n_nodes(levels)
    out = np.empty((m, 3 * nn))
    size = sz64.copy()  # (m, g) stars per node
    anc_x = np.zeros((m, 1))
    anc_y = np.zeros((m, 1))
    rank = np.broadcast_to(col, (m, w))  # level 1: one node, x order = rank order
    xcol, ycol = 0, nn
    wm1 = w - 1
    for lev in range(int(levels)):
        g = 4 ** lev
        full = size > 0
        start = _excl_cumsum(size)
        lo = np.take_along_axis(rank, np.clip(start + (size - 1) // 2, 0, wm1), axis=1)
        hi = np.take_along_axis(rank, np.clip(start + size // 2, 0, wm1), axis=1)
        xc = np.where(full, (np.take_along_axis(xs, lo, axis=1) + np.take_along_axis(xs, hi, axis=1)) / 2,
                      anc_x)
        sh = np.stack([(size + 1) // 2, size // 2], axis=2).reshape(m, 2 * g)  # halves L, R per node
        start_h = _excl_cumsum(sh)
        half = _group_ids(sh, w, it)
        ky = np.sort((half << b) | _take(c_xy, rank, rowoff), axis=1)
        rank_y = ky & mask
        lo = np.take_along_axis(rank_y, np.clip(start_h + (sh - 1) // 2, 0, wm1), axis=1)
        hi = np.take_along_axis(rank_y, np.clip(start_h + sh // 2, 0, wm1), axis=1)
        ymed = (np.take_along_axis(ys, lo, axis=1) + np.take_along_axis(ys, hi, axis=1)) / 2
        ymed = ymed.reshape(m, g, 2)
        yl = np.where(full, ymed[:, :, 0], anc_y)
        yr = np.where(size > 1, ymed[:, :, 1], yl)
        out[:, xcol:xcol + g] = xc
        out[:, ycol:ycol + 2 * g] = np.stack([yl, yr], axis=2).reshape(m, 2 * g)
        xcol += g
        ycol += 2 * g
        if lev == int(levels) - 1:
            break
        # children: each half split at its y median -> [L-low, L-high, R-low, R-high]
        size = np.stack([(sh + 1) // 2, sh // 2], axis=2).reshape(m, 4 * g)
        node = _group_ids(size, w, it)
        kx = np.sort((node << b) | _take(c_yx, rank_y, rowoff), axis=1)
        rank = kx & mask
        anc_x = np.repeat(xc, 4, axis=1)
        anc_y = np.stack([yl, yl, yr, yr], axis=2).reshape(m, 4 * g)
    return out


def quadtree_batch(x, y, offsets, levels: int = 3, n_jobs: int | None = None) -> np.ndarray:
    """:func:`quadtree_cuts` for many clusters stored flat (CSR), vectorised.

    Clusters of similar size (within 25 %) are processed together as rows of
    a padded matrix; the result equals :func:`quadtree_cuts` cluster by
    cluster, bit for bit.

    Parameters
    ----------
    x, y : array_like
        Flat coordinates of all stars (finite), cluster i's stars being
        ``offsets[i]:offsets[i+1]`` in input row order.
    offsets : array_like
        int, length n + 1, non-decreasing, ``offsets[0] == 0``.
    levels : int
    n_jobs : int, optional
        Threads (default: the available cores, at most 4; 1 = serial). The
        result does not depend on it.

    Returns
    -------
    numpy.ndarray
        (n, 3 (4^L − 1)/3) float64, row i equal to ``quadtree_cuts`` of cluster i.
    """
    x = np.ascontiguousarray(x, dtype=np.float64).ravel()
    y = np.ascontiguousarray(y, dtype=np.float64).ravel()
    offsets = np.asarray(offsets, dtype=np.int64)
    if offsets.ndim != 1 or offsets.size < 1 or offsets[0] != 0 or (np.diff(offsets) < 0).any():
        raise ValueError("offsets must be a non-decreasing int array starting at 0")
    if x.size != y.size or x.size != offsets[-1]:
        raise ValueError(f"x ({x.size}), y ({y.size}) and offsets[-1] ({int(offsets[-1])}) disagree")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("quadtree_batch needs finite x and y; drop stars with NaN magnitudes first")
    nn = _n_nodes(levels)
    n = offsets.size - 1
    out = np.zeros((n, 3 * nn))
    if n == 0 or x.size == 0:
        return out
    sizes = np.diff(offsets)
    order = np.argsort(sizes, kind="stable")
    s_sorted = sizes[order]
    blocks = []
    i = int(np.searchsorted(s_sorted, 1))  # empty clusters keep their zeros
    budget = 2_000_000  # matrix entries per block (~ 30 × 8 bytes each in flight)
    while i < n:
        lo = int(s_sorted[i])
        hi = max(math.ceil(lo * 1.25), lo + 8)
        j = int(np.searchsorted(s_sorted, hi, side="right"))
        j = min(j, i + max(1, budget // hi))
        blocks.append(order[i:j])
        i = j

    def run(rows):
        w = int(sizes[rows[-1]])
        sz = sizes[rows]
        colw = np.arange(w)
        valid = colw[None, :] < sz[:, None]
        src = offsets[rows][:, None] + np.where(valid, colw[None, :], 0)
        xm = np.where(valid, x[src], np.inf)
        ym = np.where(valid, y[src], np.inf)
        out[rows] = _bucket_tree(xm, ym, sz, levels)

    n_jobs = _n_jobs(n_jobs)
    if n_jobs > 1 and len(blocks) > 1:
        from concurrent.futures import ThreadPoolExecutor

        # NumPy releases the GIL in sorts, gathers and arithmetic: threads overlap well.
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            for _ in pool.map(run, blocks[::-1]):  # largest first
                pass
    else:
        for rows in blocks:
            run(rows)
    return out


def _n_jobs(n_jobs) -> int:
    if n_jobs is None:
        import os

        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # macOS, Windows
            cores = os.cpu_count() or 1
        return max(1, min(4, cores))
    return max(1, int(n_jobs))


# ---------------------------------------------------------------------------
# CMDs from member tables / simulated stars
# ---------------------------------------------------------------------------
def _column(stars, name) -> np.ndarray | None:
    """A column as a float array (float32 arrays of simulated stars are not copied), or None."""
    if isinstance(stars, pd.DataFrame):
        if name not in stars.columns:
            return None
        return stars[name].to_numpy(dtype=np.float64, na_value=np.nan)
    if name not in stars:
        return None
    v = np.asarray(stars[name])
    return v if v.dtype.kind == "f" else v.astype(np.float64)


def _twomass_ok(stars, band: str, k: int, n: int):
    """Usable-2MASS mask for band J (k=0) or H (k=1), and how it was decided.

    Rows with a ``ph_qual`` letter: letter A or B and σ ≤ 0.3 (when the σ
    column exists). Rows without a letter (no ``ph_qual`` column, or a missing
    entry): S/N = 1.0857/σ > 7 and σ ≤ 0.3
    (:func:`ocnb.cmd_ann.simulate.twomass_usable`). Neither: unusable.
    """
    from .simulate import TWOMASS_MAX_SIGMA as max_sigma
    from .simulate import twomass_usable

    mag = _column(stars, _COLS[band])
    if mag is None:
        return np.zeros(n, dtype=bool), "missing"
    sig = _column(stars, _COLS[band + "_err"])
    if sig is not None:
        sig = sig.astype(np.float64, copy=False)
    qual = None
    if isinstance(stars, pd.DataFrame):
        if "ph_qual" in stars.columns:
            qual = stars["ph_qual"]
    elif "ph_qual" in stars:
        qual = pd.Series(np.asarray(stars["ph_qual"], dtype=object))
    if qual is None and sig is None:
        return np.zeros(n, dtype=bool), "no_quality"
    if qual is None:
        return np.isfinite(mag) & twomass_usable(sig), "snr"
    letter = qual.astype("string").str[k]
    decided = letter.notna().to_numpy(dtype=bool)
    good = letter.isin(["A", "B"]).fillna(False).to_numpy(dtype=bool)
    how = "ph_qual"
    if sig is not None:
        with np.errstate(invalid="ignore"):
            good = good & (sig <= max_sigma)
        if not decided.all():
            good = np.where(decided, good, twomass_usable(sig))
            how = "ph_qual+snr"
    return np.isfinite(mag) & good, how


def cmd_masks(stars, g_max: float | None = G_MAX) -> dict:
    """Which stars enter each CMD (boolean masks) under the paper's rules.

    ``stars``: a member DataFrame (canonical column names) or a dict of flat
    arrays (e.g. :attr:`SyntheticClusters.stars`). Returns ``{"base",
    "cmd1", "cmd2", "cmd3", "j_ok", "h_ok"}`` masks plus ``"twomass"``: how
    2MASS usability was decided (``"ph_qual"``, ``"snr"``, ``"missing"`` or
    ``"no_quality"``).
    """
    g = _column(stars, _COLS["G"])
    if g is None:
        raise MemberTableError(f"member table lacks the Gaia G column {_COLS['G']!r}")
    n = g.size
    bp, rp = _column(stars, _COLS["BP"]), _column(stars, _COLS["RP"])
    for name, v in (("BP", bp), ("RP", rp)):
        if v is None:
            raise MemberTableError(f"member table lacks the Gaia {name} column {_COLS[name]!r}")
    base = np.isfinite(g)
    if g_max is not None:
        base &= g <= g_max
    cmd1 = base & np.isfinite(bp) & np.isfinite(rp)
    j_ok, how_j = _twomass_ok(stars, "J", 0, n)
    h_ok, how_h = _twomass_ok(stars, "H", 1, n)
    how = how_j if how_j == how_h else f"{how_j}/{how_h}"
    return {"base": base, "cmd1": cmd1, "cmd2": cmd1 & j_ok, "cmd3": base & j_ok & h_ok,
            "j_ok": j_ok, "h_ok": h_ok, "twomass": how}


def _cmd_xy(stars, cmd: str, mask: np.ndarray):
    """Colour and magnitude (float64) of the stars in ``mask``."""
    def col(band):
        v = _column(stars, _COLS[band])
        if v is None:
            return np.full(int(mask.sum()), np.nan)
        return v[mask].astype(np.float64, copy=False)

    if cmd == "cmd1":
        return col("BP") - col("RP"), col("G")
    if cmd == "cmd2":
        return col("BP") - col("RP"), col("J")
    j = col("J")
    return j - col("H"), j


def cmd_arrays(stars, g_max: float | None = G_MAX) -> dict:
    """The three CMDs of a member table or star dict: ``{"cmd1": (BP−RP, G), "cmd2": (BP−RP, J),
    "cmd3": (J−H, J)}`` as float64 arrays (not standardised), per :func:`cmd_masks`."""
    m = cmd_masks(stars, g_max)
    return {c: _cmd_xy(stars, c, m[c]) for c in CMDS}


# ---------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------
class QuadTreeFeatures:
    """QuadTree CMD features + mean parallax, scikit-learn style (fit / transform).

    Parameters
    ----------
    bands : {"multi", "gaia"}
        ``"multi"``: [Q(CMD1), Q(CMD2), Q(CMD3), ϖ] = 190 inputs;
        ``"gaia"``: [Q(CMD1), ϖ] = 64 inputs (paper Sect. 3.5).
    levels : int
        QuadTree depth (3).
    g_max : float or None
        Magnitude cut applied to every input (18, as for the synthetic clusters).
    min_stars : int
        Real member tables with fewer CMD1 stars are low quality.
    on_low_quality : {"raise", "flag"}
        What :meth:`transform` does with a low-quality *member table*
        (see the module docstring). Synthetic clusters are never checked.
    n_jobs : int, optional
        Threads for :func:`quadtree_batch` (not saved by :meth:`to_dict`).
    parallax : {"raw", "log10"}
        The last input: the members' mean parallax in mas (the paper), or its log10 (clipped
        at 0.01 mas), which is linear in the distance modulus and helps short CPU trainings.

    Attributes (after :meth:`fit`)
    ------------------------------
    scales_ : dict
        ``{cmd: (s_colour, s_magnitude)}``: standard deviations (ddof = 0) over
        all synthetic stars entering the CMD; x = colour / s_colour,
        y = magnitude / s_magnitude (no centring).
    """

    def __init__(self, bands: str = "multi", levels: int = 3, g_max: float | None = G_MAX,
                 min_stars: int = 10, on_low_quality: str = "raise", n_jobs: int | None = None,
                 parallax: str = "raw"):
        if bands not in ("multi", "gaia"):
            raise ValueError(f"bands must be 'multi' or 'gaia', not {bands!r}")
        if parallax not in PARALLAX_TRANSFORMS:
            raise ValueError(f"parallax must be one of {PARALLAX_TRANSFORMS}, not {parallax!r}")
        self.parallax = parallax
        if on_low_quality not in ("raise", "flag"):
            raise ValueError(f"on_low_quality must be 'raise' or 'flag', not {on_low_quality!r}")
        _n_nodes(levels)
        self.bands = bands
        self.levels = int(levels)
        self.g_max = None if g_max is None else float(g_max)
        self.min_stars = int(min_stars)
        self.on_low_quality = on_low_quality
        self.n_jobs = n_jobs
        self.scales_: dict | None = None

    def __repr__(self) -> str:
        fitted = "fitted" if self.scales_ else "not fitted"
        return (f"QuadTreeFeatures(bands={self.bands!r}, levels={self.levels}, g_max={self.g_max}, "
                f"{self.n_features} features, {fitted})")

    # -- shape ------------------------------------------------------------------
    @property
    def cmds(self) -> tuple:
        return CMDS if self.bands == "multi" else ("cmd1",)

    @property
    def n_features(self) -> int:
        return len(self.cmds) * n_quadtree_features(self.levels) + 1

    @property
    def feature_names(self) -> list[str]:
        names = []
        for c in self.cmds:
            names += quadtree_feature_names(c, self.levels)
        return names + ["parallax"]

    # -- fitting ----------------------------------------------------------------
    def fit(self, synthetic, y=None) -> QuadTreeFeatures:
        """Freeze the standardisation constants from a :class:`SyntheticClusters` (or star dict)."""
        stars = synthetic.stars if hasattr(synthetic, "stars") else synthetic
        masks = cmd_masks(stars, self.g_max)
        scales = {}
        for c in self.cmds:
            xv, yv = _cmd_xy(stars, c, masks[c])
            if xv.size < 2:
                raise ValueError(f"cannot fit scales: only {xv.size} synthetic stars enter {c}")
            sx, sy = float(np.std(xv)), float(np.std(yv))
            if not (sx > 0 and sy > 0 and np.isfinite(sx) and np.isfinite(sy)):
                raise ValueError(f"degenerate standardisation constants for {c}: {sx}, {sy}")
            scales[c] = (sx, sy)
        self.scales_ = scales
        return self

    def fit_transform(self, synthetic, y=None) -> np.ndarray:
        return self.fit(synthetic).transform(synthetic)

    # -- transforming ----------------------------------------------------------
    def transform(self, obj) -> np.ndarray:
        """Features (n, 190) or (n, 64), float64, of a SyntheticClusters, a member DataFrame or a list."""
        return self.transform_with_flags(obj)[0]

    def transform_with_flags(self, obj):
        """Features plus a per-cluster flags DataFrame.

        Flags: ``n_cmd1, n_cmd2, n_cmd3`` (stars per CMD), ``n_parallax``,
        ``has_2mass``, ``low_quality`` and ``reason`` (empty when fine).
        """
        if not self.scales_:
            raise RuntimeError("QuadTreeFeatures is not fitted: call fit(synthetic_clusters) first "
                               "(or load the constants with from_dict)")
        stars, offsets, members, names, has_2mass = _as_flat(obj)
        n = offsets.size - 1
        sizes = np.diff(offsets)
        cl = np.repeat(np.arange(n, dtype=np.int64), sizes)
        masks = cmd_masks(stars, self.g_max)
        blocks, counts = [], {}
        for c in self.cmds:
            m = masks[c]
            xv, yv = _cmd_xy(stars, c, m)
            sx, sy = self.scales_[c]
            cnt = np.bincount(cl[m], minlength=n)
            counts[c] = cnt
            off = np.concatenate([[0], np.cumsum(cnt)]).astype(np.int64)
            blocks.append(quadtree_batch(xv / sx, yv / sy, off, self.levels, n_jobs=self.n_jobs))
        plx = _column(stars, "parallax")
        if plx is None:
            raise MemberTableError("member table lacks the 'parallax' column [mas]")
        pm = masks["base"] & np.isfinite(plx)
        n_plx = np.bincount(cl[pm], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_plx = np.bincount(cl[pm], weights=plx[pm], minlength=n) / n_plx
        mean_plx = np.where(n_plx > 0, mean_plx, np.nan)
        plx_feature = np.log10(np.clip(mean_plx, 0.01, None)) if self.parallax == "log10" else mean_plx
        feats = np.concatenate(blocks + [plx_feature[:, None]], axis=1)

        flags = pd.DataFrame({
            "n_cmd1": counts["cmd1"],
            "n_cmd2": counts.get("cmd2", np.bincount(cl[masks["cmd2"]], minlength=n)),
            "n_cmd3": counts.get("cmd3", np.bincount(cl[masks["cmd3"]], minlength=n)),
            "n_parallax": n_plx,
            "has_2mass": has_2mass,
        })
        reasons = np.full(n, "", dtype=object)
        few = flags["n_cmd1"].to_numpy() < self.min_stars
        noplx = n_plx == 0
        for i in np.flatnonzero(few | noplx):
            r = []
            if few[i]:
                r.append(f"{int(flags['n_cmd1'].iat[i])} stars in CMD1 (G <= {self.g_max}, with BP and RP) "
                         f"< min_stars={self.min_stars}")
            if noplx[i]:
                r.append("no finite parallax among the G <= 18 stars")
            reasons[i] = "; ".join(r)
        flags["low_quality"] = few | noplx
        flags["reason"] = reasons
        if names is not None:
            flags.insert(0, "cluster", names)
        if members:
            if self.bands == "multi" and not has_2mass.all():
                which = ", ".join(str(names[i]) for i in np.flatnonzero(~has_2mass)[:10])
                warnings.warn(f"{int((~has_2mass).sum())} member table(s) ({which}) have no usable 2MASS "
                              "photometry (no j_m/h_m values, or no ph_qual/*_msigcom to judge them): "
                              "their CMD2 and CMD3 features are 0 (the empty-CMD rule); expect poorer "
                              "estimates (flag has_2mass=False)", UserWarning, stacklevel=3)
            bad = np.flatnonzero(flags["low_quality"].to_numpy())
            if bad.size and self.on_low_quality == "raise":
                lines = [f"  {names[i] if names is not None else i}: {reasons[i]}" for i in bad[:10]]
                more = f"\n  ... and {bad.size - 10} more" if bad.size > 10 else ""
                raise MemberTableError(
                    f"{bad.size} member table(s) cannot be featurised reliably:\n" + "\n".join(lines) + more
                    + "\nPass on_low_quality='flag' to get features with low_quality flags instead.")
        return feats, flags

    # -- persistence ------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-serialisable state (constants, settings, feature names) to store with a model."""
        return {
            "kind": "QuadTreeFeatures", "format_version": FORMAT_VERSION, "bands": self.bands,
            "levels": self.levels, "g_max": self.g_max, "min_stars": self.min_stars,
            "on_low_quality": self.on_low_quality, "parallax": self.parallax,
            "scales": None if self.scales_ is None else {c: list(v) for c, v in self.scales_.items()},
            "feature_names": self.feature_names,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], **overrides) -> QuadTreeFeatures:
        """Rebuild from :meth:`to_dict`; ``overrides`` may change ``on_low_quality`` or ``min_stars``."""
        bad = set(overrides) - {"on_low_quality", "min_stars"}
        if bad:
            raise ValueError(f"only on_low_quality and min_stars can be overridden, not {sorted(bad)}")
        if d.get("kind") != "QuadTreeFeatures":
            raise ValueError(f"not a QuadTreeFeatures state: kind={d.get('kind')!r}")
        if int(d.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(f"QuadTreeFeatures format {d['format_version']} is newer than this ocnb "
                             f"({FORMAT_VERSION})")
        obj = cls(bands=d["bands"], levels=d["levels"], g_max=d["g_max"],
                  min_stars=overrides.get("min_stars", d["min_stars"]),
                  on_low_quality=overrides.get("on_low_quality", d.get("on_low_quality", "raise")),
                  parallax=d.get("parallax", "raw"))
        if d.get("scales") is not None:
            obj.scales_ = {c: (float(v[0]), float(v[1])) for c, v in d["scales"].items()}
        if d.get("feature_names") is not None and list(d["feature_names"]) != obj.feature_names:
            raise ValueError("stored feature names differ from this version's feature order")
        return obj


_FLAT_COLS = ("phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag", "j_m", "h_m",
              "j_msigcom", "h_msigcom", "parallax")


def _as_flat(obj):
    """(stars, offsets, is_member_table, names, has_2mass) from SyntheticClusters / DataFrame(s)."""
    if hasattr(obj, "stars") and hasattr(obj, "offsets"):
        offsets = np.asarray(obj.offsets, dtype=np.int64)
        return obj.stars, offsets, False, None, np.ones(offsets.size - 1, dtype=bool)
    if isinstance(obj, pd.DataFrame):
        frames = [obj]
    elif isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
        frames = list(obj)
        if not all(isinstance(f, pd.DataFrame) for f in frames):
            raise TypeError("transform takes a SyntheticClusters, a member DataFrame or a list of DataFrames")
    else:
        raise TypeError(f"cannot featurise a {type(obj).__name__}; pass a SyntheticClusters, "
                        "a member DataFrame or a list of DataFrames")
    names, has2 = [], []
    for i, f in enumerate(frames):
        cols = set(f.columns)
        quality = "ph_qual" in cols or {"j_msigcom", "h_msigcom"} <= cols
        has2.append(bool({"j_m", "h_m"} <= cols and quality
                         and np.isfinite(f["j_m"].to_numpy(dtype=np.float64, na_value=np.nan)).any()))
        nm = None
        if "cluster" in f.columns and len(f):
            vals = f["cluster"].dropna().unique()
            nm = str(vals[0]) if len(vals) == 1 else None
        names.append(nm if nm is not None else f"table {i}")
    offsets = np.concatenate([[0], np.cumsum([len(f) for f in frames])]).astype(np.int64)
    stars: dict[str, Any] = {}
    for c in _FLAT_COLS:
        present = [c in f.columns for f in frames]
        if all(present):
            stars[c] = np.concatenate([f[c].to_numpy(dtype=np.float64, na_value=np.nan) for f in frames]) \
                if frames else np.empty(0)
        elif any(present):  # some tables have the column: the others get NaN
            stars[c] = np.concatenate([f[c].to_numpy(dtype=np.float64, na_value=np.nan) if c in f.columns
                                       else np.full(len(f), np.nan) for f in frames])
    if any("ph_qual" in f.columns for f in frames):
        stars["ph_qual"] = np.concatenate([
            f["ph_qual"].astype(object).to_numpy() if "ph_qual" in f.columns
            else np.full(len(f), None, object)
            for f in frames])
    return stars, offsets, True, np.array(names, dtype=object), np.array(has2, dtype=bool)

