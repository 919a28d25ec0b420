# STATUS: usable (prepare_cluster, source_features, cluster_features, FeatureScaler, build_training_set)
"""Features, their normalisation and the training sets of van Groeningen+2023 (Sect. 3.1-3.2; spec A7-A8).

* :func:`source_features` — the five source features ``[f_r, f_pm, f_plx, f_c, f_g]`` (pc, mas/yr, mas, mag,
  mag), vectorised over any leading shape (stars × error draws); the isochrone vector uses the nearest point
  in (C/Δ_C, G/Δ_G) found exactly with a look-up grid and a KD-tree. Sign of f_c, f_g as the paper
  (star − isochrone; the authors' code stores isochrone − star, spec A7).
* :func:`cluster_features` — ``[A_0, log age, ϖ_c]``.
* :class:`FeatureScaler` — z-scores with the authors' statistics, including their pooled-std quirk.
* :func:`prepare_cluster` — a cone and a member list → :class:`PreparedCluster` (preprocessing, cluster
  parameters, isochrone, candidate selection, features), with clear errors for unusable input.
* :func:`build_training_set` — the (N, 10, 13) instances of Sect. 3.2 (members twice, 5 × 2N_m negatives,
  support sets of 10 drawn once).

Bad input (``tests/membership/test_features.py``, bad-input table): fewer than 10 matched members, no member
in the cone, a catalogue position outside the cone, a parallax scale that contradicts the distance, all rows
NaN, no isochrone for the age; each error names the cluster and the value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import UnknownClusterError
from .candidates import CandidateSelection, projected_radius, select_candidates
from .cones import (
    ClusterNotInConeError,
    ClusterParams,
    ConeError,
    TooFewMembersError,
    _prepare,
    catalogue_parameters,
    cluster_isochrone,
    cluster_parameters,
)

__all__ = [
    "AUTHORS_CONSTANTS",
    "CLUSTER_FEATURES",
    "MIN_MEMBERS",
    "SOURCE_FEATURES",
    "FeatureScaler",
    "PreparedCluster",
    "build_training_set",
    "cluster_features",
    "membership_features",
    "prepare_cluster",
    "source_features",
]

#: Names of the source features (spec A7 order) and their units.
SOURCE_FEATURES = ("f_r", "f_pm", "f_plx", "f_c", "f_g")
SOURCE_UNITS = ("pc", "mas/yr", "mas", "mag", "mag")
#: Names of the cluster features (spec A7 order).
CLUSTER_FEATURES = ("a0", "log_age", "parallax")
#: Fewest matched members :func:`prepare_cluster` accepts (the authors' code needs 15; support sets need 11).
MIN_MEMBERS = 10


# ---------------------------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------------------------
#: Lookup grid of :class:`_NearestPoint`: coarse cells, subcells per side of the refined cells, margin around
#: the isochrone [scaled units]; until :data:`_GRID_MIN_QUERIES` queries were asked for one isochrone (and for
#: batches under :data:`_GRID_MIN_QUERIES_BUILT`) the KD-tree alone is used.
_GRID_CELLS = 2**13
_GRID_SUB = 8
_GRID_CANDIDATES = 12
_GRID_MARGIN = 4.0
_GRID_MIN_QUERIES = 2_000_000
_GRID_MIN_QUERIES_BUILT = 50_000
_CHUNK = 2**20
_NN_CACHE: dict = {}


class _NearestPoint:
    """Exact nearest isochrone point in the scaled plane (C/Δ_C, G/Δ_G), faster than a KD-tree alone.

    A grid of square cells covers the isochrone ± :data:`_GRID_MARGIN`. Voronoi cells are convex, so when the
    four corners of a grid cell share their nearest isochrone point, every location in the cell has that
    nearest point: such *resolved* cells answer by one table look-up. Cells crossed by a Voronoi boundary are
    split once into :data:`_GRID_SUB`² subcells treated the same way; a subcell still unresolved keeps the
    (at most :data:`_GRID_CANDIDATES`) points that can be nearest to any location in it and the query picks
    the nearest of them. Queries outside the grid or in subcells with more candidates go to the KD-tree
    (``scipy.spatial.cKDTree``, all cores). The result is that of a brute-force search (up to exact ties).
    Built once per (isochrone, Δ_C, Δ_G) and cached.
    """

    def __init__(self, points: np.ndarray):
        from scipy.spatial import cKDTree

        self.points = points
        self.tree = cKDTree(points)
        self.table = None  # the grid is built once 2·10⁶ queries were asked (its set-up costs ~10⁶ tree queries)
        self.n_queries = 0

    def _build_grid(self):
        points = self.points
        lo = points.min(axis=0) - _GRID_MARGIN
        span = points.max(axis=0) + _GRID_MARGIN - lo
        h = float(np.sqrt(span[0] * span[1] / _GRID_CELLS))
        nx, ny = (int(np.ceil(v / h)) for v in span)
        gx, gy = np.meshgrid(lo[0] + np.arange(nx + 1) * h, lo[1] + np.arange(ny + 1) * h, indexing="ij")
        table = self._resolve(np.stack([gx, gy], axis=-1))
        # refine the unresolved cells: code −2 − b points to block b of the subcell table
        bx, by = np.nonzero(table < 0)
        table[bx, by] = -2 - np.arange(bx.size)
        k = np.arange(_GRID_SUB + 1) * (h / _GRID_SUB)
        corners = np.stack(np.broadcast_arrays((lo[0] + bx * h)[:, None, None] + k[None, :, None],
                                               (lo[1] + by * h)[:, None, None] + k[None, None, :]), axis=-1)
        sub = self._resolve(corners) if bx.size else np.zeros((0, _GRID_SUB, _GRID_SUB), np.int32)
        # one fine table of subcells: resolved coarse cells repeat their point, refined ones get their subcells
        fine = np.repeat(np.repeat(np.where(table >= 0, table, -1), _GRID_SUB, axis=0), _GRID_SUB, axis=1)
        fine4 = fine.reshape(nx, _GRID_SUB, ny, _GRID_SUB)
        fine4[bx, :, by, :] = sub
        # subcells still crossed by a Voronoi boundary keep a short candidate list: every point that can be the
        # nearest of some location x in a subcell of centre c and half-diagonal r lies within d_nn(c) + 2r of c
        # (triangle inequality); code −2 − row points to the list, −1 (too many candidates) to the KD-tree
        hs = h / _GRID_SUB
        ux, uy = np.nonzero(fine < 0)
        centres = np.c_[lo[0] + (ux + 0.5) * hs, lo[1] + (uy + 0.5) * hs]
        cands = np.zeros((0, _GRID_CANDIDATES), dtype=np.int32)
        if ux.size:
            d_nn = self.tree.query(centres, workers=-1)[0]
            lists = self.tree.query_ball_point(centres, d_nn + np.sqrt(2.0) * hs * (1 + 1e-9) + 1e-12, workers=-1)
            sizes = np.fromiter((len(v) for v in lists), dtype=np.intp, count=len(lists))
            ok = (sizes > 0) & (sizes <= _GRID_CANDIDATES)
            rows = np.flatnonzero(ok)
            flat = np.fromiter((j for i in rows for j in lists[i]), dtype=np.int32, count=int(sizes[rows].sum()))
            first = np.cumsum(sizes[rows]) - sizes[rows]
            cands = np.repeat(flat[first][:, None], _GRID_CANDIDATES, axis=1)  # pad with a duplicate: same argmin
            cands[np.repeat(np.arange(rows.size), sizes[rows]), np.arange(flat.size) - np.repeat(first, sizes[rows])] \
                = flat
            fine[ux[ok], uy[ok]] = -2 - np.arange(rows.size, dtype=np.int32)
        self.table, self.sub, self.fine, self.cands, self.lo, self.h = table, sub, fine, cands, lo, h

    def _resolve(self, corners: np.ndarray) -> np.ndarray:
        """(..., n+1, m+1, 2) corner coordinates → (..., n, m) int32 table: point index, or −1 if unresolved."""
        near = self.tree.query(corners.reshape(-1, 2), workers=-1)[1].reshape(corners.shape[:-1])
        a = near[..., :-1, :-1]
        same = (a == near[..., 1:, :-1]) & (a == near[..., :-1, 1:]) & (a == near[..., 1:, 1:])
        return np.where(same, a, -1).astype(np.int32)

    def query(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Index of the nearest point for each (x, y) (1-D float arrays, finite)."""
        # the grid pays off once ~10⁶ queries have been asked for this isochrone, in one call or in chunks
        self.n_queries += x.size
        if (self.table is None and self.n_queries < _GRID_MIN_QUERIES) or x.size < _GRID_MIN_QUERIES_BUILT:
            return self.tree.query(np.c_[x, y], workers=-1)[1]
        if self.table is None:
            self._build_grid()
        out = np.empty(x.size, dtype=np.intp)
        nx, ny = self.fine.shape
        flat = self.fine.ravel()
        scale = _GRID_SUB / self.h
        for s in range(0, x.size, _CHUNK):
            u = (x[s:s + _CHUNK] - self.lo[0]) * scale
            v = (y[s:s + _CHUNK] - self.lo[1]) * scale
            outside = (u < 0) | (u >= nx) | (v < 0) | (v >= ny)
            lin = np.clip(u, 0, nx - 1).astype(np.intp) * ny + np.clip(v, 0, ny - 1).astype(np.intp)
            idx = flat[lin].astype(np.intp)
            idx[outside] = -1
            listed = np.flatnonzero(idx <= -2)
            if listed.size:
                cand = self.cands[-2 - idx[listed]]  # (m, K) point indices
                dxc = self.points[cand, 0] - x[s:s + _CHUNK][listed, None]
                dyc = self.points[cand, 1] - y[s:s + _CHUNK][listed, None]
                best = np.argmin(dxc * dxc + dyc * dyc, axis=1)
                idx[listed] = cand[np.arange(listed.size), best]
            todo = np.flatnonzero(idx < 0)
            if todo.size:
                idx[todo] = self.tree.query(np.c_[x[s:s + _CHUNK][todo], y[s:s + _CHUNK][todo]], workers=-1)[1]
            out[s:s + _CHUNK] = idx
        return out


def _nearest_point(isochrone: np.ndarray, delta_c: float, delta_g: float) -> _NearestPoint:
    """The (cached) :class:`_NearestPoint` of an isochrone and (Δ_C, Δ_G): built once per cluster."""
    iso = np.ascontiguousarray(isochrone, dtype=float)
    key = (iso.tobytes(), float(delta_c), float(delta_g))
    hit = _NN_CACHE.get(key)
    if hit is None:
        if len(_NN_CACHE) >= 8:
            _NN_CACHE.pop(next(iter(_NN_CACHE)))
        hit = _NN_CACHE[key] = _NearestPoint(np.c_[iso[:, 0] / delta_c, iso[:, 1] / delta_g])
    return hit


def _squeeze_broadcast(*arrays):
    """Drop the repeats of ``np.broadcast_to`` views (stride-0 axes shared by all ``arrays``) so that positions
    broadcast over draws are computed once per star; the result broadcasts back to the same shape."""
    arrs = [np.asarray(a) for a in arrays]
    if len({a.shape for a in arrs}) != 1 or arrs[0].ndim == 0:
        return arrs
    index = tuple(slice(0, 1) if all(a.strides[k] == 0 for a in arrs) else slice(None)
                  for k in range(arrs[0].ndim))
    return [a[index] for a in arrs]


def source_features(ra, dec, pmra, pmdec, parallax, g, g_rp, params: ClusterParams, isochrone: np.ndarray,
                    delta_c: float, delta_g: float, dtype=np.float64) -> np.ndarray:
    """The five source features of vG23 Sect. 3.1 (spec A7), vectorised over any leading shape.

    Parameters
    ----------
    ra, dec : array_like
        Position [deg] (RA may be wrapped to negative values).
    pmra, pmdec : array_like
        Proper motions [mas/yr] (μα* includes cos δ, as in Gaia).
    parallax : array_like
        Zero-point-corrected parallax [mas].
    g, g_rp : array_like
        G and C = G − G_RP [mag].
    params : ClusterParams
    isochrone : ndarray (n, 2)
        [C, G] points (:func:`ocnb.membership.cluster_isochrone`).
    delta_c, delta_g : float
        Δ_C, Δ_G [mag] of the selection (``selection.thresholds["delta_c"]``, ``["delta_g"]``).
    dtype : numpy dtype
        Of the result (float32 halves the memory of 10⁷-row batches).

    Returns
    -------
    ndarray (..., 5)
        ``[f_r, f_pm, f_plx, f_c, f_g]`` with the inputs broadcast together: f_r = D·sqrt(x² + y²) [pc]
        (orthographic, eq. 11-12 with the sign of eq. 12 corrected), f_pm = |Δμ| [mas/yr] (eq. 13),
        f_plx = ϖ − ϖ_c [mas] (eq. 14), f_c = C − C_i*, f_g = G − G_i* [mag] with i* the isochrone point
        nearest in (C/Δ_C, G/Δ_G) (eq. 15; no source errors; exact, see :class:`_NearestPoint`). Each
        feature is computed on its own inputs' shape (f_r on the positions only) and broadcast at the end.
        NaN photometry gives NaN f_c, f_g.
    """
    if not (delta_c > 0 and delta_g > 0):
        raise ValueError(f"delta_c = {delta_c!r} and delta_g = {delta_g!r} mag must be positive")
    shape = np.broadcast_shapes(*(np.shape(x) for x in (ra, dec, pmra, pmdec, parallax, g, g_rp)))
    out = np.empty((*shape, 5), dtype=dtype)
    out[..., 0] = projected_radius(*_squeeze_broadcast(ra, dec), params)
    dx = np.asarray(pmra, float) - params.pmra
    dy = np.asarray(pmdec, float) - params.pmdec
    d2 = np.asarray(dx * dx + dy * dy)  # broadcast when pmra and pmdec differ in shape
    out[..., 1] = np.sqrt(d2, out=d2) if d2.ndim else np.sqrt(d2)  # np.hypot is ~3x slower on 10⁷ values
    del dx, dy, d2
    out[..., 2] = np.asarray(parallax, float) - params.parallax
    c, gg = np.broadcast_arrays(np.asarray(g_rp, float), np.asarray(g, float))
    iso = np.asarray(isochrone, float)
    nearest = _nearest_point(iso, delta_c, delta_g)
    qx = c.ravel() / delta_c
    qy = gg.ravel() / delta_g
    finite = np.isfinite(qx) & np.isfinite(qy)
    idx = np.zeros(c.size, dtype=np.intp)
    if finite.all():
        idx = nearest.query(qx, qy)
    elif finite.any():
        idx[finite] = nearest.query(qx[finite], qy[finite])
    del qx, qy
    fc = c - iso[idx, 0].reshape(c.shape)
    fg = gg - iso[idx, 1].reshape(c.shape)
    if not finite.all():
        fc = np.where(finite.reshape(c.shape), fc, np.nan)
        fg = np.where(finite.reshape(c.shape), fg, np.nan)
    out[..., 3] = fc
    out[..., 4] = fg
    return out


def cluster_features(params: ClusterParams) -> np.ndarray:
    """``[A_0 [mag], log age, ϖ_c [mas]]`` (vG23 Sect. 3.1.5; spec A7)."""
    return np.array([params.a0, params.log_age, params.parallax], dtype=float)


# ---------------------------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------------------------
#: The authors' stored normalisation constants (spec A7), in *their* sign of f_c, f_g (isochrone − star).
AUTHORS_CONSTANTS = {
    "DS10_v02": {"source_mean": [32.4928, 1.08035, -0.184614, 0.0352830, -0.312854],
                 "source_std": [12.3802, 0.528625, 0.309854, 0.131103, 0.884774],
                 "cluster_mean": [1.18332, 8.27883, 0.937575], "cluster_std": [0.880412, 0.721294, 0.934754]},
    "DS10_v01": {"source_mean": [31.3706, 1.13453, -0.167107, 0.0769116, -0.0743317],
                 "source_std": [13.0831, 0.567006, 0.300595, 0.187332, 0.199013],
                 "cluster_mean": [0.969945, 8.46791, 1.00902], "cluster_std": [0.830235, 0.769769, 0.891149]},
}


# ---------------------------------------------------------------------------------------------------------------
# Scaler
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class FeatureScaler:
    """z = (f − mean)/std for the source (5) and cluster (3) features (spec A7).

    :meth:`from_clusters` reproduces the authors' statistics: per cluster, the mean and population std of the
    source features over all its sources (candidates ∪ non-members); the global mean is the unweighted mean
    of the cluster means and the global std sqrt(mean of the cluster variances) — the authors' code drops the
    between-cluster term of the pooled variance, and this reproduces it. Cluster features: mean and population
    std across clusters (a std of 0, e.g. one cluster, is replaced by 1 so that z = 0).
    """

    source_mean: np.ndarray
    source_std: np.ndarray
    cluster_mean: np.ndarray
    cluster_std: np.ndarray
    notes: dict = field(default_factory=dict)

    def __post_init__(self):
        for name, n in (("source_mean", 5), ("source_std", 5), ("cluster_mean", 3), ("cluster_std", 3)):
            arr = np.asarray(getattr(self, name), dtype=float).reshape(-1)
            if arr.shape != (n,) or not np.all(np.isfinite(arr)):
                raise ValueError(f"FeatureScaler.{name} must be {n} finite numbers, got {getattr(self, name)!r}")
            if name.endswith("std") and np.any(arr <= 0):
                raise ValueError(f"FeatureScaler.{name} must be positive, got {arr.tolist()}")
            setattr(self, name, arr)

    @classmethod
    def from_clusters(cls, prepared_list) -> FeatureScaler:
        """Statistics over the prepared clusters used for training and validation (spec A7)."""
        prepared_list = list(prepared_list)
        if not prepared_list:
            raise ValueError("FeatureScaler.from_clusters needs at least one PreparedCluster")
        means = np.array([np.mean(p.features, axis=0) for p in prepared_list])
        variances = np.array([np.var(p.features, axis=0) for p in prepared_list])  # population (ddof 0)
        cf = np.array([p.cluster_features for p in prepared_list])
        c_std = np.std(cf, axis=0)
        replaced = [CLUSTER_FEATURES[k] for k in np.flatnonzero(~(c_std > 0))]
        c_std = np.where(c_std > 0, c_std, 1.0)
        notes = {"n_clusters": len(prepared_list), "clusters": [p.name for p in prepared_list],
                 "pooled_std": "sqrt(mean of per-cluster variances) (authors' code; no between-cluster term)"}
        if replaced:
            notes["cluster_std_replaced_by_1"] = replaced
        return cls(source_mean=means.mean(axis=0), source_std=np.sqrt(variances.mean(axis=0)),
                   cluster_mean=cf.mean(axis=0), cluster_std=c_std, notes=notes)

    @classmethod
    def from_authors(cls, version: str = "DS10_v02") -> FeatureScaler:
        """The normalisation constants stored with the authors' released models (spec A7), converted to the
        paper sign of f_c, f_g used here (their code stores isochrone − star: the two means are negated)."""
        if version not in AUTHORS_CONSTANTS:
            raise ValueError(f"unknown model version {version!r}; choose one of {sorted(AUTHORS_CONSTANTS)}")
        c = AUTHORS_CONSTANTS[version]
        mean = np.array(c["source_mean"], float) * np.array([1, 1, 1, -1, -1])
        return cls(source_mean=mean, source_std=c["source_std"], cluster_mean=c["cluster_mean"],
                   cluster_std=c["cluster_std"], notes={"source": f"authors' {version} constants (spec A7); f_c, "
                                                                  "f_g means negated to the paper sign"})

    def transform_source(self, features) -> np.ndarray:
        """(f − mean)/std over the last axis (5 source features)."""
        return (np.asarray(features) - self.source_mean) / self.source_std

    def transform_cluster(self, features) -> np.ndarray:
        """(f − mean)/std over the last axis (3 cluster features)."""
        return (np.asarray(features) - self.cluster_mean) / self.cluster_std

    def to_dict(self) -> dict:
        """JSON-able dict (lists of floats)."""
        return {"source_mean": self.source_mean.tolist(), "source_std": self.source_std.tolist(),
                "cluster_mean": self.cluster_mean.tolist(), "cluster_std": self.cluster_std.tolist(),
                "notes": dict(self.notes)}

    @classmethod
    def from_dict(cls, data: dict) -> FeatureScaler:
        return cls(source_mean=data["source_mean"], source_std=data["source_std"],
                   cluster_mean=data["cluster_mean"], cluster_std=data["cluster_std"],
                   notes=dict(data.get("notes", {})))


# ---------------------------------------------------------------------------------------------------------------
# One cluster
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class PreparedCluster:
    """Everything the model needs about one cluster's cone.

    Attributes
    ----------
    name : str
    cone : DataFrame
        The prepared cone (:func:`ocnb.membership.prepare_cone`; RangeIndex; attrs with flags).
    params : ClusterParams
    selection : CandidateSelection
    features : ndarray (n, 5)
        Raw source features of every row (pc, mas/yr, mas, mag, mag).
    cluster_features : ndarray (3,)
    truth : ndarray[bool] or None
        True membership per row when known (simulated fields), aligned with ``cone``.
    flags : list of str
    """

    name: str
    cone: pd.DataFrame
    params: ClusterParams
    selection: CandidateSelection
    features: np.ndarray
    cluster_features: np.ndarray
    truth: np.ndarray | None = None
    flags: list = field(default_factory=list)

    def __repr__(self) -> str:
        s = self.selection
        return (f"<PreparedCluster {self.name!r}: {len(self.cone)} sources, {s.n_candidates} candidates, "
                f"{int(s.is_train_member.sum())} training members, {len(self.flags)} flags>")

    @property
    def isochrone(self) -> np.ndarray:
        return self.selection.isochrone

    @property
    def delta_c(self) -> float:
        return float(self.selection.thresholds["delta_c"])

    @property
    def delta_g(self) -> float:
        return float(self.selection.thresholds["delta_g"])

    def features_frame(self) -> pd.DataFrame:
        """The raw features as a DataFrame (``source_id`` + :data:`SOURCE_FEATURES`)."""
        out = pd.DataFrame(self.features, columns=list(SOURCE_FEATURES))
        out.insert(0, "source_id", self.cone["source_id"].to_numpy())
        return out


def _angular_sep_deg(ra1, dec1, ra2, dec2) -> np.ndarray:
    ra1, dec1, ra2, dec2 = (np.deg2rad(np.asarray(x, float)) for x in (ra1, dec1, ra2, dec2))
    s = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.rad2deg(2 * np.arcsin(np.sqrt(np.clip(s, 0, 1))))


def _cone_extent(cone: pd.DataFrame) -> tuple[float, float, float]:
    """Centre (mean unit vector) and radius (max separation) of the cone's sources [deg]."""
    ra = np.deg2rad(cone["ra"].to_numpy(float))
    dec = np.deg2rad(cone["dec"].to_numpy(float))
    v = np.c_[np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)].mean(axis=0)
    ra0 = float(np.rad2deg(np.arctan2(v[1], v[0])) % 360)
    dec0 = float(np.rad2deg(np.arctan2(v[2], np.hypot(v[0], v[1]))))
    radius = float(np.max(_angular_sep_deg(ra0, dec0, cone["ra"], cone["dec"])))
    return ra0, dec0, radius


def _member_mask(cone_raw: pd.DataFrame, members, name: str) -> tuple[np.ndarray, list[str]]:
    """Seed members as a boolean mask over the *input* cone rows, and flags."""
    flags = []
    if isinstance(members, pd.DataFrame):
        if "source_id" not in members.columns:
            raise ConeError(f"cluster {name!r}: the member table has no 'source_id' column to match the cone by")
        ids = pd.to_numeric(members["source_id"], errors="coerce").dropna().astype("int64").to_numpy()
        mask = np.isin(cone_raw["source_id"].to_numpy(), ids)
        n_lost = int(np.unique(ids).size - np.unique(cone_raw["source_id"].to_numpy()[mask]).size)
        if n_lost:
            flags.append(f"{n_lost} of {np.unique(ids).size} listed members not in the cone (source_id match; "
                         "DR2 ids missing from (E)DR3 or outside the cone's cuts)")
        return mask, flags
    mask = np.asarray(members)
    if mask.dtype != bool or mask.shape != (len(cone_raw),):
        raise ConeError(f"cluster {name!r}: members must be a member table with 'source_id' or a boolean mask with "
                        f"one value per cone row ({len(cone_raw)}), got dtype {mask.dtype}, shape {mask.shape}")
    return mask.copy(), flags


def prepare_cluster(cone: pd.DataFrame, members, *, name: str, dist_pc: float | None = None,
                    log_age: float | None = None, a0: float | None = None, truth=None, mh: float = 0.0,
                    release: str | None = None, min_members: int = MIN_MEMBERS) -> PreparedCluster:
    """One cluster's cone ready for the model: preprocessing, cluster parameters, selection, features.

    Parameters
    ----------
    cone : DataFrame
        A raw cone (Gaia archive columns; see :func:`ocnb.membership.prepare_cone`).
    members : DataFrame or array of bool
        A member table matched to the cone by ``source_id`` (spec A4), or a boolean mask over the cone rows.
    name : str
        Cluster name (errors and flags name it; the CG2020 look-up resolves it).
    dist_pc, log_age, a0 : float, optional
        Distance [pc], log10(age/yr), A_V [mag]; each one not given comes from Cantat-Gaudin+2020
        (:func:`ocnb.membership.catalogue_parameters`).
    truth : array of bool, optional
        True membership of each *input* cone row (simulated fields); kept aligned with the prepared rows.
    mh : float
        Isochrone [M/H] [dex] (solar as in the paper).
    release : str, optional
        Overrides ``cone.attrs["release"]``.
    min_members : int
        Fewest matched members accepted (default 10).

    Returns
    -------
    PreparedCluster
        ``flags`` gathers the cone's flags (zero point, photometric σ, "no correlations: diagonal covariance",
        dropped rows) and those of the member match.

    Raises
    ------
    TooFewMembersError
        Fewer than ``min_members`` members matched (after dropping NaN rows); the message names the cluster and
        the counts.
    ClusterNotInConeError
        No member in the cone; or the CG2020 centre of ``name`` lies outside the cone (a cone of another
        cluster).
    ConeError
        Missing column, wrong units (also: the members' mean parallax contradicts the distance by a factor
        > 30, e.g. parallaxes in arcsec), no row with complete astrometry.
    IsochroneRangeError
        Log age or [M/H] off the PARSEC grid (names the cluster).
    UnknownClusterError
        A parameter not given and ``name`` not in CG2020 (or without its NN parameters there).
    """
    prepared, keep = _prepare(cone, release)
    flags = list(prepared.attrs.get("flags", []))
    seed_raw, mflags = _member_mask(cone, members, name)
    flags += mflags
    n_listed = int(seed_raw.sum())
    if n_listed == 0:
        raise ClusterNotInConeError(f"cluster {name!r}: none of the members is in the cone ({len(cone)} sources): "
                                    "the cone does not contain the cluster, or the member ids are from another "
                                    "Gaia release")
    seed = seed_raw[keep]
    n_dropped_members = n_listed - int(seed.sum())
    if n_dropped_members:
        flags.append(f"{n_dropped_members} of {n_listed} matched members dropped for NaN astrometry/photometry")
    if int(seed.sum()) < min_members:
        raise TooFewMembersError(f"cluster {name!r}: only {int(seed.sum())} members matched in the cone with "
                                 f"complete astrometry and photometry ({n_listed} matched by source_id); at least "
                                 f"{min_members} are needed (support sets of 10 plus the source)")
    truth_arr = None
    if truth is not None:
        truth_raw = np.asarray(truth)
        if truth_raw.dtype != bool or truth_raw.shape != (len(cone),):
            raise ConeError(f"cluster {name!r}: truth must be a boolean array with one value per input cone row "
                            f"({len(cone)}), got dtype {truth_raw.dtype}, shape {truth_raw.shape}")
        truth_arr = truth_raw[keep]

    # catalogue values where not given; the CG2020 position also checks that the cone holds the cluster
    cat = None
    if dist_pc is None or log_age is None or a0 is None:
        cat = catalogue_parameters(name)
    else:
        try:
            cat = catalogue_parameters(name)
        except UnknownClusterError:
            flags.append(f"{name!r} not in CG2020 (with parameters): cone position not checked against a catalogue")
    dist_pc = cat["dist_pc"] if dist_pc is None else float(dist_pc)
    log_age = cat["log_age"] if log_age is None else float(log_age)
    a0 = cat["a0"] if a0 is None else float(a0)
    if cat is not None:
        ra0, dec0, radius = _cone_extent(prepared)
        sep = float(_angular_sep_deg(ra0, dec0, cat["ra"], cat["dec"]))
        if sep > radius + 0.1:
            raise ClusterNotInConeError(
                f"cluster {name!r}: its CG2020 centre (ra, dec) = ({cat['ra']:.3f}, {cat['dec']:.3f}) deg is "
                f"{sep:.2f} deg from the cone centre ({ra0:.3f}, {dec0:.3f}), outside the cone (radius "
                f"{radius:.2f} deg): the cone does not contain this cluster")

    params = cluster_parameters(prepared.loc[seed], name, dist_pc, log_age, a0)
    # units / distance sanity: the members' parallax against the catalogue distance
    expected = 1000.0 / dist_pc
    ratio = params.parallax / expected
    if not (1 / 30 < ratio < 30) and abs(params.parallax - expected) > 0.5:
        raise ConeError(f"cluster {name!r}: members' mean parallax {params.parallax:.4g} mas but distance "
                        f"{dist_pc:.4g} pc implies {expected:.4g} mas (ratio {ratio:.3g}): parallax in the wrong "
                        "unit (must be mas) or a wrong distance")
    if not (0.5 < ratio < 2) and abs(params.parallax - expected) > 0.3:
        flags.append(f"members' parallax {params.parallax:.3f} mas disagrees with 1000/D = {expected:.3f} mas "
                     f"(D = {dist_pc:g} pc)")

    iso = cluster_isochrone(params, mh=mh)
    selection = select_candidates(prepared, seed, params, isochrone=iso)
    n_fail = int(seed.sum() - selection.is_train_member.sum())
    if n_fail:
        flags.append(f"{n_fail} of {int(seed.sum())} seed members fail a selection test: relabelled candidates")
    features = source_features(prepared["ra"], prepared["dec"], prepared["pmra"], prepared["pmdec"],
                               prepared["parallax_corrected"], prepared["phot_g_mean_mag"], prepared["g_rp"],
                               params, iso, selection.thresholds["delta_c"], selection.thresholds["delta_g"])
    return PreparedCluster(name=str(name), cone=prepared, params=params, selection=selection, features=features,
                           cluster_features=cluster_features(params), truth=truth_arr, flags=flags)


def membership_features(prepared_or_cone, members=None, **kwargs) -> pd.DataFrame:
    """The five source features as a DataFrame (``source_id``, ``f_r`` [pc], ``f_pm`` [mas/yr], ``f_plx`` [mas],
    ``f_c``, ``f_g`` [mag], ``is_candidate``, ``is_train_member``).

    Parameters
    ----------
    prepared_or_cone : PreparedCluster or DataFrame
        A prepared cluster, or a raw cone (then ``members`` and ``name=`` are needed and the other keywords
        go to :func:`prepare_cluster`).
    """
    if isinstance(prepared_or_cone, PreparedCluster):
        prepared = prepared_or_cone
    else:
        if members is None or "name" not in kwargs:
            raise TypeError("membership_features(cone, members, name=...) needs the members and the cluster name "
                            "(or pass a PreparedCluster)")
        prepared = prepare_cluster(prepared_or_cone, members, **kwargs)
    out = prepared.features_frame()
    out["is_candidate"] = prepared.selection.is_candidate
    out["is_train_member"] = prepared.selection.is_train_member
    out.attrs.update(cluster=prepared.name, units=dict(zip(SOURCE_FEATURES, SOURCE_UNITS, strict=True)),
                     flags=list(prepared.flags))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Training sets (spec A8)
# ---------------------------------------------------------------------------------------------------------------
def _draw_negatives(pool: np.ndarray, n: int, rng) -> np.ndarray:
    """Spec A8: without replacement if n ≤ pool, else the whole pool ⌊n/pool⌋ times plus a random remainder."""
    if n <= pool.size:
        return rng.choice(pool, size=n, replace=False)
    reps, rest = divmod(n, pool.size)
    return np.concatenate([np.tile(pool, reps), rng.choice(pool, size=rest, replace=False)])


def _support_sets(members: np.ndarray, exclude: np.ndarray | None, n_inst: int, n_support: int, rng,
                  chunk: int = 4096) -> np.ndarray:
    """(n_inst, n_support) indices drawn without replacement from ``members``; row i excludes ``exclude[i]``."""
    out = np.empty((n_inst, n_support), dtype=np.intp)
    for s in range(0, n_inst, chunk):
        m = min(chunk, n_inst - s)
        keys = rng.random((m, members.size))
        if exclude is not None:
            keys[members[None, :] == exclude[s:s + m, None]] = np.inf
        pick = np.argpartition(keys, n_support - 1, axis=1)[:, :n_support]
        out[s:s + m] = members[pick]
    return out


def build_training_set(prepared_list, scaler: FeatureScaler, negatives: str = "non_members", n_support: int = 10,
                       seed: int = 42, n_pos_dup: int = 2, neg_ratio: int = 5):
    """Training or validation instances of vG23 Sect. 3.2 (spec A8).

    Per cluster with N_m training members: positives = each member ``n_pos_dup`` (2) times, each with its own
    support set; negatives = ``neg_ratio`` × 2N_m draws from the negative pool (without replacement when the
    pool is large enough, else the whole pool repeated plus a random remainder). Support sets of ``n_support``
    members are drawn once, without replacement, from the training members (excluding the source itself).
    Row k of an instance = [source's 5 normalised features, the 3 normalised cluster features, support member
    k's 5 normalised features]. A fresh generator ``default_rng(seed)`` per cluster (the authors reset
    ``np.random.seed(42)`` per cluster). The split into training and validation clusters is the model's job.

    Parameters
    ----------
    prepared_list : sequence of PreparedCluster
    scaler : FeatureScaler
    negatives : {"non_members", "field"}
        ``"non_members"`` (the paper): sources that are not candidates. ``"field"``: every source whose truth is
        False, field candidates included (needs ``prepared.truth``).
    n_support : int
    seed : int

    Returns
    -------
    X : ndarray (N, n_support, 13) float32
    y : ndarray (N,) int (1 member, 0 non-member)
    cluster_index : ndarray (N,) int (position in ``prepared_list``)

    Raises
    ------
    ValueError
        Unknown ``negatives``; ``negatives="field"`` without truth; a cluster with ≤ ``n_support`` training
        members or an empty negative pool (the message names the cluster).
    """
    if negatives not in ("non_members", "field"):
        raise ValueError(f"negatives must be 'non_members' (the paper) or 'field', not {negatives!r}")
    xs, ys, cs = [], [], []
    for ci, p in enumerate(prepared_list):
        sel = p.selection
        members = np.flatnonzero(sel.is_train_member)
        if members.size <= n_support:
            raise ValueError(f"cluster {p.name!r}: {members.size} training members; support sets of {n_support} "
                             "drawn without the source itself need more")
        if negatives == "non_members":
            pool = np.flatnonzero(~sel.is_candidate)
        else:
            if p.truth is None:
                raise ValueError(f"cluster {p.name!r}: negatives='field' needs the true membership "
                                 "(prepared.truth, from a simulated field); use negatives='non_members'")
            pool = np.flatnonzero(~np.asarray(p.truth, bool))
        if pool.size == 0:
            raise ValueError(f"cluster {p.name!r}: no {negatives.replace('_', '-')} to draw negatives from")
        rng = np.random.default_rng(seed)
        pos = np.repeat(members, n_pos_dup)
        neg = _draw_negatives(pool, neg_ratio * n_pos_dup * members.size, rng)
        src = np.concatenate([pos, neg])
        sup = np.concatenate([_support_sets(members, pos, pos.size, n_support, rng),
                              _support_sets(members, None, neg.size, n_support, rng)])
        z = scaler.transform_source(p.features).astype(np.float32)
        zc = scaler.transform_cluster(p.cluster_features).astype(np.float32)
        x = np.empty((src.size, n_support, 13), dtype=np.float32)
        x[:, :, :5] = z[src][:, None, :]
        x[:, :, 5:8] = zc
        x[:, :, 8:] = z[sup]
        xs.append(x)
        ys.append(np.r_[np.ones(pos.size, int), np.zeros(neg.size, int)])
        cs.append(np.full(src.size, ci, dtype=int))
    if not xs:
        raise ValueError("build_training_set needs at least one PreparedCluster")
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(cs)
