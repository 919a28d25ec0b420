"""PARSEC isochrones precomputed on a regular (log age, [M/H]) lattice.

Simulating tens of thousands of populations calls for thousands of
interpolated isochrones. :func:`isochrone_lattice` evaluates
:meth:`ocnb.isochrones.IsochroneGrid.isochrone` (phase-wise bilinear
interpolation, ~0.3 ms per node) once per node of a lattice of spacing ≤
``step`` in both axes and stores the result as padded arrays; a population then
uses its **nearest lattice node** (:meth:`IsochroneLattice.node_index`), so a
label differs from the isochrone used by at most step/2 per axis (0.025 dex for
the default step 0.05, rms ≈ 0.014 dex).

Lattices with ≥ 64 nodes are cached in the data home (``Cache("sim")``, keyed
by a hash of the grid arrays, the ranges, the step, ``max_label`` and, when not
the default, the columns) and the last few are memoised per process.

The default columns (:data:`LATTICE_COLUMNS`) are what the cluster simulator
needs; callers that need more of :data:`ocnb.isochrones.COLUMNS` (e.g. Ks, the
derived WISE W1/W2, the PARSEC ``label``) pass ``columns=`` (a separate cache entry).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np

from .mass_function import SALPETER_ALPHA, salpeter_integral

__all__ = ["IsochroneLattice", "isochrone_lattice", "LATTICE_COLUMNS"]

#: Columns kept per isochrone point besides the initial mass: log Teff [K] and absolute magnitudes.
LATTICE_COLUMNS = ("log_teff", "G", "BP", "RP", "J", "H")
_LATTICE_VERSION = "v1"
_CACHE_NAME = "sim"
_CACHE_MIN_NODES = 64  # small lattices are not worth a cache file
_MEMO_SIZE = 4
_LATTICE_MEMO: dict = {}


@dataclasses.dataclass
class IsochroneLattice:
    """PARSEC isochrones precomputed on a regular (log age, [M/H]) lattice.

    Node ``k = i_mh * len(ages) + i_age`` holds the interpolated isochrone
    :meth:`IsochroneGrid.isochrone(ages[i_age], mhs[i_mh], max_label)` as
    padded arrays of ``width`` points (``length[k]`` real points, the rest
    repeat the last point so that padded segments have zero mass width).

    Attributes
    ----------
    ages, mhs : ndarray
        Lattice nodes in log10(age/yr) and [M/H] (dex), ascending and evenly spaced.
    mini : ndarray
        (n_nodes, width) initial masses [M☉], non-decreasing along each row.
    columns : dict
        name → (n_nodes, width) float64 of the lattice's columns (default
        :data:`LATTICE_COLUMNS`; absolute magnitudes, log Teff, ``label`` as a float).
    length : ndarray
        (n_nodes,) number of real points per node.
    max_label : int
        Highest PARSEC phase label kept.
    source : str
        The grid file.
    """

    ages: np.ndarray
    mhs: np.ndarray
    mini: np.ndarray
    columns: dict
    length: np.ndarray
    max_label: int = 7
    source: str = ""

    @property
    def n_nodes(self) -> int:
        return self.mini.shape[0]

    @property
    def width(self) -> int:
        return self.mini.shape[1]

    @property
    def spacing(self) -> tuple:
        """(Δ log age, Δ[M/H]) between lattice nodes (0 for a single node)."""
        da = float(np.diff(self.ages).max()) if self.ages.size > 1 else 0.0
        dm = float(np.diff(self.mhs).max()) if self.mhs.size > 1 else 0.0
        return da, dm

    def node_index(self, log_age, mh) -> np.ndarray:
        """Nearest lattice node of each (log age, [M/H]); values outside are clipped to the lattice.

        The caller checks the range (:func:`ocnb.sim.simulate_populations` raises for values
        outside the grid and flags the [M/H] clip it allows); NaN input is not allowed.
        """
        return _nearest(self.mhs, mh) * self.ages.size + _nearest(self.ages, log_age)

    def node_params(self, node) -> tuple:
        """(log age, [M/H]) of lattice nodes."""
        node = np.asarray(node)
        return self.ages[node % self.ages.size], self.mhs[node // self.ages.size]

    def segment_imf_weights(self, alpha: float = SALPETER_ALPHA) -> np.ndarray:
        """Salpeter number fraction (unnormalised) of every isochrone segment, (n_nodes, width − 1)."""
        return salpeter_integral(self.mini[:, :-1], self.mini[:, 1:], alpha)


def _nearest(nodes: np.ndarray, x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if nodes.size == 1:
        return np.zeros(x.shape, dtype=np.int64)
    step = (nodes[-1] - nodes[0]) / (nodes.size - 1)
    return np.clip(np.rint((x - nodes[0]) / step), 0, nodes.size - 1).astype(np.int64)


def _lattice_nodes(lo: float, hi: float, step: float) -> np.ndarray:
    if hi - lo < 1e-9:
        return np.array([round(float(lo), 10)])
    n = math.ceil((hi - lo) / step - 1e-9) + 1
    return np.round(np.linspace(lo, hi, n), 10)


def _grid_digest(grid) -> str:
    h = hashlib.sha256()
    for a in (grid.ages, grid.mhs, grid.values, grid.present):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _check_range(name: str, rng) -> tuple:
    try:
        lo, hi = (float(v) for v in rng)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high) of numbers, not {rng!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi < lo:
        raise ValueError(f"{name} = {rng!r} must be finite (low, high) with low ≤ high")
    return lo, hi


def _check_columns(columns) -> tuple:
    """The lattice columns as a tuple of names of :data:`ocnb.isochrones.COLUMNS` (``mini`` excluded)."""
    from ..isochrones import COLUMNS

    if isinstance(columns, str):
        columns = (columns,)
    try:
        cols = tuple(columns)
    except TypeError:
        raise ValueError(f"columns must be a tuple of isochrone column names, not {columns!r}") from None
    allowed = tuple(c for c in COLUMNS if c != "mini")
    bad = [c for c in cols if c not in allowed]
    if bad or not cols or len(set(cols)) != len(cols):
        raise ValueError(f"columns = {columns!r}: give distinct names of {allowed} (mini is always kept)")
    return cols


def _columns_tag(cols: tuple) -> str:
    """'' for the default columns (the key of lattices cached before the option existed), else a short hash."""
    if cols == LATTICE_COLUMNS:
        return ""
    return "_c" + hashlib.sha256(",".join(cols).encode()).hexdigest()[:10]


def isochrone_lattice(grid=None, log_age_range=(6.7, 10.1), mh_range=(-0.8, 0.3), step: float = 0.05,
                      max_label: int = 7, cache: bool = True,
                      columns: tuple = LATTICE_COLUMNS) -> IsochroneLattice:
    """Precompute PARSEC isochrones on a lattice of spacing ≤ ``step`` (both axes).

    Parameters
    ----------
    grid : IsochroneGrid, optional
        Default :func:`ocnb.isochrones.default_grid`.
    log_age_range : (float, float)
        log10(age/yr) range; **clipped** to the grid (6.0–10.2 for PARSEC v1.2S).
    mh_range : (float, float)
        [M/H] range (dex); **clipped** to the grid (−2.19…+0.30).
    step : float
        Largest node spacing (dex) on both axes.
    max_label : int
        Highest PARSEC phase label kept (7: up to the early AGB).
    cache : bool
        Memoise in the process and cache lattices with ≥ 64 nodes in the data home.
    columns : tuple of str
        Columns of :attr:`ocnb.isochrones.Isochrone.data` to keep besides ``mini``
        (default :data:`LATTICE_COLUMNS`). Any other choice is cached under its own key.

    Notes
    -----
    The clip is deliberate: the lattice covers the part of the requested range
    that the grid has. Callers that label populations with values outside the
    grid must check the range themselves (the simulator raises, or flags the
    clip it is allowed to make). The Table-1 lattice of Cavallo et al. (2024)
    (6.7–10.1 × −0.8…+0.30, step 0.05) has 69 × 23 = 1587 nodes.

    Raises
    ------
    TypeError
        ``grid`` is not an IsochroneGrid.
    ValueError
        ``step`` ≤ 0, a range that is not a finite (low, high) pair with low ≤ high, a range
        lying entirely outside the grid, or a column that isochrones do not have.
    """
    from ..isochrones import IsochroneGrid, default_grid

    grid = grid if grid is not None else default_grid()
    if not isinstance(grid, IsochroneGrid):
        raise TypeError(f"grid must be an ocnb.isochrones.IsochroneGrid, not {type(grid).__name__}")
    if not step > 0:
        raise ValueError(f"step must be > 0, not {step!r}")
    log_age_range = _check_range("log_age_range", log_age_range)
    mh_range = _check_range("mh_range", mh_range)
    for name, (lo, hi), (g_lo, g_hi) in (("log_age_range", log_age_range, grid.age_range),
                                         ("mh_range", mh_range, grid.mh_range)):
        if hi < g_lo - 1e-9 or lo > g_hi + 1e-9:
            raise ValueError(f"{name} = {(lo, hi)} lies entirely outside the PARSEC grid ({g_lo:g} … {g_hi:g})")
    cols = _check_columns(columns)
    a_lo, a_hi = (float(np.clip(v, *grid.age_range)) for v in log_age_range)
    m_lo, m_hi = (float(np.clip(v, *grid.mh_range)) for v in mh_range)
    ages = _lattice_nodes(a_lo, a_hi, step)
    mhs = _lattice_nodes(m_lo, m_hi, step)

    def compute() -> dict:
        isos = [grid.isochrone(a, m, max_label=max_label).data for m in mhs for a in ages]
        width = max(len(d) for d in isos)
        n = len(isos)
        out = {"mini": np.empty((n, width))}
        for c in cols:
            out[c] = np.empty((n, width))
        length = np.empty(n, dtype=np.int64)
        for k, d in enumerate(isos):
            m = len(d)
            length[k] = m
            pad = width - m
            mini = np.maximum.accumulate(d["mini"].to_numpy(float))
            out["mini"][k] = np.pad(mini, (0, pad), mode="edge")
            for c in cols:
                out[c][k] = np.pad(d[c].to_numpy(float), (0, pad), mode="edge")
        out["length"] = length
        out["ages"] = ages
        out["mhs"] = mhs
        return out

    n_nodes = ages.size * mhs.size
    key = (f"lattice_{_LATTICE_VERSION}_{_grid_digest(grid)}_a{ages[0]:.4f}-{ages[-1]:.4f}"
           f"_m{mhs[0]:.4f}-{mhs[-1]:.4f}_s{step:.4f}_L{int(max_label)}{_columns_tag(cols)}.npz")
    if cache and key in _LATTICE_MEMO:
        return _LATTICE_MEMO[key]
    if cache and n_nodes >= _CACHE_MIN_NODES:
        from ..cache import Cache

        arrays = Cache(_CACHE_NAME).fetch_arrays(key, compute)
    else:
        arrays = compute()
    lat = IsochroneLattice(
        ages=np.asarray(arrays["ages"], float), mhs=np.asarray(arrays["mhs"], float),
        mini=np.asarray(arrays["mini"], float),
        columns={c: np.asarray(arrays[c], float) for c in cols},
        length=np.asarray(arrays["length"], np.int64), max_label=int(max_label),
        source=getattr(grid, "source", ""),
    )
    if cache:
        while len(_LATTICE_MEMO) >= _MEMO_SIZE:  # keep the last few lattices of this process
            _LATTICE_MEMO.pop(next(iter(_LATTICE_MEMO)))
        _LATTICE_MEMO[key] = lat
    return lat
