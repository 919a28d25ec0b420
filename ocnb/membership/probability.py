"""Membership probabilities from error draws (vG23 Sect. 3.4; spec A11) and the hand-off member table.

A candidate's probability is the fraction of ``n_draws`` draws from its Gaia errors that the Deep Sets
network calls a member (softmax p_member > 0.5, i.e. logit_member > logit_non-member). Each draw:

* (ϖ, μα*, μδ) from the 3-D Gaussian of the star's errors and its three correlations
  (``parallax_pmra_corr``, ``parallax_pmdec_corr``, ``pmra_pmdec_corr``), centred on the zero-point corrected
  parallax ``parallax_corrected``; G and C = G − G_RP independently from N(G, σ_G) and N(C, σ_{G−RP})
  (the DPAC-spline errors ``sigma_g``, ``sigma_g_rp`` of the prepared cone);
* the features f_pm, f_plx, f_c, f_g recomputed with the cluster parameters fixed
  (:func:`ocnb.membership.features.source_features`); f_r is not resampled (positions fixed);
* a fresh support set of ``n_support`` (10) training members, drawn without replacement from all training
  members (no self-exclusion, as in the authors' code).

Everything is batched: draws, features and network inputs of many (star, draw) pairs are built as arrays
and classified in large batches; the only Python loops run over memory-bounded chunks of candidates (and,
inside a chunk, over fixed blocks of 256 candidates that each own a random stream, so that the result for a
given ``seed`` does not depend on ``batch_size``). Non-candidates get p = 0.

A model that carries a calibration (fitted on held-out clusters, :mod:`ocnb.membership.calibration`, an ocnb
addition) maps the vote fraction to a calibrated probability; the vote fraction stays in ``probability_raw``.

Missing correlation columns (Gaia DR2 cones as shipped, e.g. Blanco 1) give a diagonal covariance and the
flag ``"no correlations: diagonal covariance"``; a NaN error or non-positive-definite covariance of a
candidate is a :class:`MembershipInputError` naming the column and the source_id (the spec-A3 cone
preparation drops such rows, so this only happens for hand-made cones).

:func:`members_from_probabilities` turns a result into a member table in the canonical schema of
:func:`ocnb.datasets.load_members` (e.g. for ``ocnb.cmd_ann.estimate``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import OcnbError

__all__ = [
    "MembershipInputError",
    "MembershipResult",
    "membership_probability",
    "members_from_probabilities",
    "CORRELATION_COLUMNS",
    "FLAG_NO_CORRELATIONS",
]

#: The three astrometric correlations used in the (ϖ, μα*, μδ) covariance (spec A11).
CORRELATION_COLUMNS = ("parallax_pmra_corr", "parallax_pmdec_corr", "pmra_pmdec_corr")
FLAG_NO_CORRELATIONS = "no correlations: diagonal covariance"
#: Columns of the prepared cone that the draws need (spec A3 adds parallax_corrected, g_rp, sigma_*).
_MEAN_COLUMNS = ("parallax_corrected", "pmra", "pmdec", "phot_g_mean_mag", "g_rp")
_ERROR_COLUMNS = ("parallax_error", "pmra_error", "pmdec_error", "sigma_g", "sigma_g_rp")
_REQUIRED = ("source_id", "ra", "dec") + _MEAN_COLUMNS + _ERROR_COLUMNS
#: Diagonal jitter [mas², (mas/yr)²] added to a covariance that is not positive definite (spec A11).
CHOLESKY_JITTER = 1e-12
#: Candidates per random stream: the draws of a block come from ``default_rng([seed, block])``.
_RNG_BLOCK = 256
#: Default number of (star, draw) instances classified per chunk: about 70 MB of float32 network input
#: (10 x 13 values each) and a few hundred MB of activations inside the network.
DEFAULT_BATCH_SIZE = 131_072
FEATURE_NAMES = ("f_r", "f_pm", "f_plx", "f_c", "f_g")


class MembershipInputError(OcnbError, ValueError):
    """Input that membership probabilities cannot be computed from: a model that is not fitted, missing
    cone columns, NaN errors of a candidate, a covariance that is not positive definite, too few training
    members for a support set, bad ``n_draws``/``seed``/``batch_size``/``p_min``."""


# ---------------------------------------------------------------------------------------------
# Result
# ---------------------------------------------------------------------------------------------
@dataclass
class MembershipResult:
    """Membership probabilities of every star of a prepared cone (vG23 Sect. 3.4).

    Attributes
    ----------
    probability : array (n,)
        Membership probability, aligned with ``prepared.cone`` rows; 0 for non-candidates. The calibrated
        vote fraction when the model carries a calibration (:mod:`ocnb.membership.calibration`, flag
        ``"calibrated: ..."``), else the vote fraction itself.
    probability_raw : array (n,)
        Fraction of the ``n_draws`` draws classified as member (vG23's probability); multiples of
        1 / ``n_draws``; 0 for non-candidates.
    prepared : PreparedCluster
        The cone, cluster parameters, candidate selection and features it was computed from.
    flags : list of str
        The prepared cluster's flags and those of the draws (e.g. ``"no correlations: diagonal
        covariance"``).
    n_draws, seed : int
    model_name : str
        What scored the draws (e.g. ``"DeepSetsMembership (DS10_v02)"``).
    timings : dict
        Seconds spent in ``sampling`` (error draws, Cholesky factors, support sets), ``features``
        (features, normalisation, network input) and ``network`` (the forward passes), and ``total``.
    """

    probability: np.ndarray
    prepared: Any
    flags: list[str]
    n_draws: int
    seed: int = 42
    model_name: str = ""
    timings: dict = field(default_factory=dict)
    probability_raw: np.ndarray | None = None

    def __post_init__(self):
        if self.probability_raw is None:
            self.probability_raw = self.probability

    @property
    def name(self) -> str:
        return str(getattr(self.prepared, "name", "cluster"))

    @property
    def n_candidates(self) -> int:
        return int(np.count_nonzero(self.prepared.selection.is_candidate))

    def __repr__(self) -> str:
        p = self.probability
        return (f"MembershipResult({self.name!r}: {len(p)} stars, {self.n_candidates} candidates, "
                f"{int(np.sum(p >= 0.5))} with p >= 0.5, {self.n_draws} draws, model {self.model_name!r}, "
                f"flags={self.flags})")

    def to_frame(self) -> pd.DataFrame:
        """The prepared cone's columns plus ``p_member``, ``is_candidate``, ``is_train_member``,
        ``pass_pm``, ``pass_plx``, ``pass_cmd``, the raw features ``f_r`` [pc], ``f_pm`` [mas/yr],
        ``f_plx`` [mas], ``f_c``, ``f_g`` [mag] and ``truth`` when the prepared cluster has one."""
        prep = self.prepared
        out = prep.cone.copy()
        out["p_member"] = self.probability
        out["p_votes"] = self.probability_raw
        sel = prep.selection
        for name in ("is_candidate", "is_train_member", "pass_pm", "pass_plx", "pass_cmd"):
            values = getattr(sel, name, None)
            if values is not None:
                out[name] = np.asarray(values, dtype=bool)
        feats = getattr(prep, "features", None)
        if feats is not None:
            feats = np.asarray(feats)
            for j, name in enumerate(FEATURE_NAMES):
                out[name] = feats[:, j]
        truth = getattr(prep, "truth", None)
        if truth is not None:
            out["truth"] = np.asarray(truth, dtype=bool)
        out.attrs = dict(prep.cone.attrs)
        out.attrs.update(cluster=self.name, n_draws=self.n_draws, seed=self.seed, model=self.model_name,
                         flags=list(self.flags))
        return out

    def members(self, p_min: float = 0.5) -> pd.DataFrame:
        """Shortcut for :func:`members_from_probabilities` (``self``, ``p_min``)."""
        return members_from_probabilities(self, p_min=p_min)

    def plot(self, p_min: float = 0.1, axes=None):
        """Static overview (matplotlib): sky, proper motions, parallax vs G and the CMD (G − G_RP, G).

        Non-candidates are small grey points; stars with p ≥ ``p_min`` are coloured by p (viridis), the
        training members ringed. Returns the Figure.
        """
        import matplotlib.pyplot as plt

        df = self.to_frame()
        p = df["p_member"].to_numpy()
        ra = df["ra"].to_numpy(float)
        if np.ptp(ra) > 180:  # a cone across RA = 0 (Blanco 1): keep it contiguous
            ra = np.where(ra > 180, ra - 360, ra)
        if axes is None:
            fig, axes = plt.subplots(1, 4, figsize=(16, 4.2))
        else:
            axes = np.ravel(axes)
            fig = axes[0].figure
        shown = p >= p_min
        order = np.flatnonzero(shown)[np.argsort(p[shown])]  # high p drawn last
        train = df["is_train_member"].to_numpy(bool) if "is_train_member" in df else np.zeros(len(df), bool)
        panels = [
            (ra, df["dec"].to_numpy(float), "RA [deg]", "Dec [deg]", False),
            (df["pmra"].to_numpy(float), df["pmdec"].to_numpy(float), "μα* [mas/yr]", "μδ [mas/yr]", False),
            (df["phot_g_mean_mag"].to_numpy(float), df["parallax_corrected"].to_numpy(float), "G [mag]",
             "ϖ (zero-point corrected) [mas]", False),
            (df["g_rp"].to_numpy(float), df["phot_g_mean_mag"].to_numpy(float), "G − G_RP [mag]", "G [mag]", True),
        ]
        sc = None
        for ax, (x, y, xl, yl, flip) in zip(axes, panels, strict=False):
            ax.scatter(x[~shown], y[~shown], s=1, c="0.75", lw=0, rasterized=True, label=f"p < {p_min:g}")
            ax.scatter(x[train], y[train], s=16, facecolors="none", edgecolors="C3", lw=0.4, alpha=0.6,
                       label="training members")
            sc = ax.scatter(x[order], y[order], s=5, c=p[order], cmap="viridis", vmin=0, vmax=1, lw=0)
            ax.set_xlabel(xl)
            ax.set_ylabel(yl)
            if flip:
                ax.invert_yaxis()
        cand = df["is_candidate"].to_numpy(bool) if "is_candidate" in df else shown
        if cand.any():
            # zoom proper motions and parallaxes on the candidates: the field spans hundreds of mas/yr
            def pad(v):
                return 0.25 * np.ptp(v) + 0.05

            xs, ys = panels[1][0][cand], panels[1][1][cand]
            axes[1].set_xlim(xs.min() - pad(xs), xs.max() + pad(xs))
            axes[1].set_ylim(ys.min() - pad(ys), ys.max() + pad(ys))
            ys = panels[2][1][cand]
            axes[2].set_ylim(ys.min() - pad(ys), ys.max() + pad(ys))
        axes[0].legend(fontsize=7, loc="upper right", markerscale=2)
        if sc is not None:
            fig.colorbar(sc, ax=list(axes), label="membership probability", fraction=0.02, pad=0.01)
        fig.suptitle(f"{self.name}: {int(np.sum(p >= 0.5))} stars with p ≥ 0.5 of {self.n_candidates} "
                     f"candidates ({self.n_draws} draws; {self.model_name})", fontsize=10)
        return fig

    def panel(self, **kwargs):
        """The interactive linked views (:class:`ocnb.membership.panels.MembershipPanel`); keywords go to it
        (e.g. ``p_min``, ``g_max``)."""
        try:
            from .panels import MembershipPanel
        except ImportError as err:  # the notebook extras (holoviews, bokeh, ipywidgets) or the module itself
            from ..panels.base import INSTALL_HINT, MissingDependencyError

            raise MissingDependencyError(
                f"the membership panel cannot be imported ({err}); it needs the notebook extras: "
                f"{INSTALL_HINT}. result.plot() draws a static overview without them."
            ) from err
        return MembershipPanel.from_result(self, **kwargs)


# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------
def _check_model(model) -> tuple[Any, int]:
    if not callable(getattr(model, "predict_logits", None)):
        raise MembershipInputError(
            f"model must have a predict_logits(X) method (a DeepSetsMembership), got {type(model).__name__}")
    scaler = getattr(model, "scaler_", None)
    if scaler is None:
        raise MembershipInputError(
            f"{type(model).__name__} is not fitted (no scaler_): call fit(...) or load "
            "DeepSetsMembership.pretrained('DS10_v02') first")
    n_support = int(getattr(model, "n_support", 10))
    return scaler, n_support


def _model_label(model) -> str:
    for attr in ("label", "name_", "pretrained_name", "name"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return f"{type(model).__name__} ({value})"
    return type(model).__name__


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise MembershipInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_cone(cone: pd.DataFrame, rows: np.ndarray) -> None:
    missing = [c for c in _REQUIRED if c not in cone.columns]
    if missing:
        raise MembershipInputError(
            f"the prepared cone lacks the column(s) {missing}; prepare it with "
            "ocnb.membership.prepare_cluster (which adds parallax_corrected, g_rp, sigma_g, sigma_g_rp)")
    for col in _MEAN_COLUMNS + _ERROR_COLUMNS:
        values = cone[col].to_numpy(float)[rows]
        bad = ~np.isfinite(values)
        if col in _ERROR_COLUMNS:
            bad |= values < 0
        if bad.any():
            i = rows[np.flatnonzero(bad)[0]]
            sid = int(cone["source_id"].iloc[i])
            what = "NaN/inf or negative" if col in _ERROR_COLUMNS else "NaN/inf"
            raise MembershipInputError(
                f"{int(bad.sum())} candidate(s) have a {what} {col!r} (first: source_id {sid}, value "
                f"{cone[col].iloc[i]!r}); drop them from the cone (prepare_cone drops incomplete rows) "
                "or fix the column")


def _cholesky3(cov: np.ndarray, jitter: float = CHOLESKY_JITTER) -> tuple[np.ndarray, np.ndarray]:
    """Lower Cholesky factors of a stack of 3x3 covariances, closed form (vectorised).

    Returns ``(L (n, 3, 3), ok (n,))``; a matrix that is not positive definite gets ``jitter`` on its
    diagonal and is factorised again; ``ok`` is False where even that fails.
    """
    def factor(c):
        with np.errstate(invalid="ignore", divide="ignore"):
            l00 = np.sqrt(c[:, 0, 0])
            l10 = c[:, 1, 0] / l00
            l20 = c[:, 2, 0] / l00
            l11 = np.sqrt(c[:, 1, 1] - l10 ** 2)
            l21 = (c[:, 2, 1] - l20 * l10) / l11
            l22 = np.sqrt(c[:, 2, 2] - l20 ** 2 - l21 ** 2)
        L = np.zeros_like(c)
        L[:, 0, 0], L[:, 1, 0], L[:, 2, 0] = l00, l10, l20
        L[:, 1, 1], L[:, 2, 1], L[:, 2, 2] = l11, l21, l22
        good = np.isfinite(L).all(axis=(1, 2)) & (l00 > 0) & (l11 > 0) & (l22 > 0)
        return L, good

    L, ok = factor(cov)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        L2, ok2 = factor(cov[bad] + jitter * np.eye(3))
        L[bad] = L2
        ok[bad] = ok2
    return L, ok


def _covariances(cone: pd.DataFrame, rows: np.ndarray, flags: list[str]) -> np.ndarray:
    """(n, 3, 3) covariances of (ϖ, μα*, μδ) [mas, mas/yr] of the given rows (spec A11)."""
    s = np.stack([cone[c].to_numpy(float)[rows] for c in ("parallax_error", "pmra_error", "pmdec_error")], axis=1)
    present = [c for c in CORRELATION_COLUMNS if c in cone.columns]
    rho = np.zeros((len(rows), 3))
    if not present:
        if FLAG_NO_CORRELATIONS not in flags:
            flags.append(FLAG_NO_CORRELATIONS)
    else:
        missing = [c for c in CORRELATION_COLUMNS if c not in present]
        if missing:
            flags.append(f"missing correlation column(s) {missing}: set to 0")
        for j, c in enumerate(CORRELATION_COLUMNS):
            if c in present:
                rho[:, j] = cone[c].to_numpy(float)[rows]
        nan = ~np.isfinite(rho)
        if nan.any():
            flags.append(f"{int(nan.any(axis=1).sum())} candidate(s) with NaN correlations: set to 0")
            rho[nan] = 0.0
        out = np.abs(rho) > 1
        if out.any():
            i = np.flatnonzero(out.any(axis=1))[0]
            j = int(np.flatnonzero(out[i])[0])
            raise MembershipInputError(
                f"{CORRELATION_COLUMNS[j]} = {rho[i, j]:.4g} of source_id {int(cone['source_id'].iloc[rows[i]])} "
                "lies outside [-1, 1]: not a correlation coefficient")
    cov = np.empty((len(rows), 3, 3))
    cov[:, 0, 0], cov[:, 1, 1], cov[:, 2, 2] = s[:, 0] ** 2, s[:, 1] ** 2, s[:, 2] ** 2
    cov[:, 0, 1] = cov[:, 1, 0] = rho[:, 0] * s[:, 0] * s[:, 1]   # parallax-pmra
    cov[:, 0, 2] = cov[:, 2, 0] = rho[:, 1] * s[:, 0] * s[:, 2]   # parallax-pmdec
    cov[:, 1, 2] = cov[:, 2, 1] = rho[:, 2] * s[:, 1] * s[:, 2]   # pmra-pmdec
    return cov


# ---------------------------------------------------------------------------------------------
# Draws
# ---------------------------------------------------------------------------------------------
def _support_indices(rng: np.random.Generator, shape: tuple[int, ...], n_pool: int, k: int) -> np.ndarray:
    """``shape + (k,)`` indices into a pool of ``n_pool``, each row ``k`` distinct (Floyd's algorithm).

    Vectorised over ``shape``: k steps, each drawing one index per row and replacing a repeat of an earlier
    pick by the step's largest value; every k-subset is equally likely (order does not matter to a Deep Set).
    """
    n = int(np.prod(shape))
    picks = np.empty((k, n), dtype=np.int32)  # one contiguous row per step: fast comparisons
    dup = np.empty(n, dtype=bool)
    for i, j in enumerate(range(n_pool - k, n_pool)):
        t = rng.integers(0, j + 1, size=n, dtype=np.int32)
        if i:
            np.equal(picks[0], t, out=dup)
            for prev in range(1, i):
                dup |= picks[prev] == t
            t[dup] = j
        picks[i] = t
    return picks.T.reshape(shape + (k,))


def _sample_block(rng, mean, L, sig_g, sig_c, n_draws, n_train, n_support):
    """Draws of (ϖ, μα*, μδ, G, C) (n, n_draws, 5) and support indices (n, n_draws, n_support)."""
    n = len(mean)
    z = rng.standard_normal((n, n_draws, 5), dtype=np.float32)  # float32: half the time; y stays float64
    y = np.empty(z.shape)
    # (ϖ, μα*, μδ) = mean + L z (lower triangular, written out: 6 multiply-adds instead of a 3x3 product)
    y[..., 0] = mean[:, None, 0] + L[:, None, 0, 0] * z[..., 0]
    y[..., 1] = mean[:, None, 1] + L[:, None, 1, 0] * z[..., 0] + L[:, None, 1, 1] * z[..., 1]
    y[..., 2] = (mean[:, None, 2] + L[:, None, 2, 0] * z[..., 0] + L[:, None, 2, 1] * z[..., 1]
                 + L[:, None, 2, 2] * z[..., 2])
    y[..., 3] = mean[:, None, 3] + sig_g[:, None] * z[..., 3]
    y[..., 4] = mean[:, None, 4] + sig_c[:, None] * z[..., 4]
    support = _support_indices(rng, (n, n_draws), n_train, n_support)
    return y, support


def _features_module():
    from . import features

    return features


def membership_probability(model, prepared, n_draws: int = 100, seed: int = 42, batch_size: int | None = None,
                           progress: bool | None = None, calibrated: bool | None = None) -> MembershipResult:
    """Membership probability of every candidate of a prepared cone (vG23 Sect. 3.4; spec A11).

    Parameters
    ----------
    model : DeepSetsMembership
        A fitted or pretrained model: ``scaler_`` (a :class:`FeatureScaler`), ``predict_logits(X)`` for
        normalised inputs ``X`` (B, n_support, 13) → logits (B, 2) [non-member, member], ``n_support``.
    prepared : PreparedCluster
        From :func:`ocnb.membership.prepare_cluster`: the prepared cone (``parallax_corrected`` [mas],
        ``pmra``, ``pmdec`` [mas/yr], errors, correlations when present, ``phot_g_mean_mag``, ``g_rp``,
        ``sigma_g``, ``sigma_g_rp`` [mag]), cluster parameters, selection (candidates, training members,
        isochrone, Δ_C, Δ_G), raw features and cluster features.
    n_draws : int
        Draws per candidate (paper: 100). p is a multiple of 1 / n_draws.
    seed : int
        Seed of the draws and support sets; the same seed gives the same probabilities, whatever
        ``batch_size``.
    batch_size : int, optional
        (star, draw) instances per chunk (default 131 072, about 0.5 GB at peak); lower it on small
        machines, raise it on a GPU. At least 256 stars' worth of draws form a chunk.
    progress : bool, optional
        Progress bar (tqdm.auto) over the chunks; default: shown for more than one chunk unless
        ``OCNB_PROGRESS=0``.
    calibrated : bool, optional
        Map the vote fractions through the model's ``calibration_`` (isotonic, fitted on held-out clusters;
        :mod:`ocnb.membership.calibration`). Default: when the model has one. ``False``: vG23's vote fraction
        as it is; ``True`` with a model without calibration is an error.

    Returns
    -------
    MembershipResult
        ``probability`` (calibrated when asked) and ``probability_raw`` (the vote fraction).

    Raises
    ------
    MembershipInputError
        Unfitted model, missing cone columns, NaN/negative errors or NaN means of a candidate (named by
        source_id), a correlation outside [-1, 1] or a covariance that is not positive definite even with
        1e-12 jitter, fewer training members than ``n_support``, bad ``n_draws``/``seed``/``batch_size``.
    """
    t_start = time.perf_counter()
    scaler, n_support = _check_model(model)
    calibration = getattr(model, "calibration_", None)
    if calibrated is True and calibration is None:
        raise MembershipInputError(
            f"{_model_label(model)} has no calibration_: fit one with model.calibrate(held_out_clusters) "
            "(or pass calibrated=None/False for the raw vote fractions)")
    if calibrated is not None and not isinstance(calibrated, bool):
        raise MembershipInputError(f"calibrated must be True, False or None, got {calibrated!r}")
    if calibrated is False:
        calibration = None
    n_draws = _check_int("n_draws", n_draws, 1)
    seed = _check_int("seed", seed, 0)
    batch_size = DEFAULT_BATCH_SIZE if batch_size is None else _check_int("batch_size", batch_size, 1)
    cone = prepared.cone
    sel = prepared.selection
    n = len(cone)
    is_cand = np.asarray(sel.is_candidate, dtype=bool)
    is_train = np.asarray(sel.is_train_member, dtype=bool)
    if is_cand.shape != (n,) or is_train.shape != (n,):
        raise MembershipInputError(
            f"the selection masks ({is_cand.shape}, {is_train.shape}) do not match the cone's {n} rows")
    flags = list(getattr(prepared, "flags", []) or [])
    cand = np.flatnonzero(is_cand)
    probability = np.zeros(n)
    timings = {"sampling": 0.0, "features": 0.0, "network": 0.0}
    label = _model_label(model)
    if cand.size == 0:
        flags.append("no candidates: every star has p = 0")
        timings["total"] = time.perf_counter() - t_start
        return MembershipResult(probability, prepared, flags, n_draws, seed, label, timings)
    _check_cone(cone, cand)
    train = np.flatnonzero(is_train)
    if train.size < n_support:
        raise MembershipInputError(
            f"{prepared.name}: {train.size} training member(s) left after the candidate selection, fewer than "
            f"the support-set size {n_support}")
    raw = np.asarray(prepared.features, dtype=np.float64)
    if raw.shape != (n, 5):
        raise MembershipInputError(f"prepared.features must have shape ({n}, 5), got {raw.shape}")

    # Fixed parts: the cluster row, the training members' normalised features, f_r, Cholesky factors.
    t0 = time.perf_counter()
    cluster_norm = np.asarray(scaler.transform_cluster(np.asarray(prepared.cluster_features, float)),
                              dtype=np.float32).reshape(3)
    # one 13-column row per training member, its source part left for the star being classified: a network
    # input is then a single gather of whole rows plus one broadcast write (3-5x faster than three writes)
    rows_table = np.zeros((train.size, 13), dtype=np.float32)
    rows_table[:, 5:8] = cluster_norm
    rows_table[:, 8:13] = np.asarray(scaler.transform_source(raw[train]), dtype=np.float32)
    cov = _covariances(cone, cand, flags)
    L, ok = _cholesky3(cov)
    if not ok.all():
        sids = cone["source_id"].to_numpy()[cand[~ok]][:5].tolist()
        raise MembershipInputError(
            f"the (parallax, pmra, pmdec) covariance of {int((~ok).sum())} candidate(s) is not positive definite "
            f"even with {CHOLESKY_JITTER:g} on its diagonal (source_id {sids}): check the errors and the "
            f"correlation columns {list(CORRELATION_COLUMNS)}")
    mean = np.stack([cone[c].to_numpy(float)[cand] for c in _MEAN_COLUMNS], axis=1)
    sig_g = cone["sigma_g"].to_numpy(float)[cand]
    sig_c = cone["sigma_g_rp"].to_numpy(float)[cand]
    ra = cone["ra"].to_numpy(float)[cand]
    dec = cone["dec"].to_numpy(float)[cand]
    f_r = raw[cand, 0]
    timings["sampling"] += time.perf_counter() - t0

    feats = _features_module()
    params = prepared.params
    isochrone = np.asarray(sel.isochrone, dtype=float)
    delta_c, delta_g = float(sel.thresholds["delta_c"]), float(sel.thresholds["delta_g"])

    n_blocks = -(-cand.size // _RNG_BLOCK)
    blocks_per_chunk = max(1, batch_size // (n_draws * _RNG_BLOCK))
    chunks = [range(b, min(b + blocks_per_chunk, n_blocks)) for b in range(0, n_blocks, blocks_per_chunk)]
    from ..parallel import progress as progress_bar

    show = len(chunks) > 1 if progress is None else bool(progress)
    p_cand = np.empty(cand.size)
    with progress_bar(total=cand.size, desc=f"{prepared.name}: membership draws", unit="star",
                      disable=not show) as bar:
        for blocks in chunks:
            lo, hi = blocks[0] * _RNG_BLOCK, min((blocks[-1] + 1) * _RNG_BLOCK, cand.size)
            t0 = time.perf_counter()
            parts = [_sample_block(np.random.default_rng([seed, b]), mean[b * _RNG_BLOCK:(b + 1) * _RNG_BLOCK],
                                   L[b * _RNG_BLOCK:(b + 1) * _RNG_BLOCK], sig_g[b * _RNG_BLOCK:(b + 1) * _RNG_BLOCK],
                                   sig_c[b * _RNG_BLOCK:(b + 1) * _RNG_BLOCK], n_draws, train.size, n_support)
                     for b in blocks]
            y = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
            support = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
            timings["sampling"] += time.perf_counter() - t0

            t0 = time.perf_counter()
            m = hi - lo
            # positions (m, 1) broadcast against the draws (m, n_draws): f_r once per star
            f = feats.source_features(ra[lo:hi, None], dec[lo:hi, None], y[..., 1], y[..., 2], y[..., 0],
                                      y[..., 3], y[..., 4], params, isochrone, delta_c, delta_g)
            f = np.asarray(f, dtype=np.float64)
            f[..., 0] = f_r[lo:hi, None]  # positions are not resampled (spec A11)
            src = np.asarray(scaler.transform_source(f.reshape(-1, 5)))
            X = np.take(rows_table, support.reshape(-1, n_support), axis=0)  # (m * n_draws, n_support, 13)
            X[:, :, 0:5] = src[:, None, :]
            del f, src, y, support
            timings["features"] += time.perf_counter() - t0

            t0 = time.perf_counter()
            logits = np.asarray(model.predict_logits(X))
            if logits.shape != (len(X), 2):
                raise MembershipInputError(
                    f"model.predict_logits returned shape {logits.shape} for {len(X)} inputs; expected ({len(X)}, 2)")
            # softmax p_member > 0.5  <=>  logit_member > logit_non-member
            member = logits[:, 1] > logits[:, 0]
            p_cand[lo:hi] = member.reshape(m, n_draws).mean(axis=1)
            timings["network"] += time.perf_counter() - t0
            bar.update(m)
    probability[cand] = p_cand
    votes = probability
    if calibration is not None:
        probability = np.zeros(n)
        probability[cand] = calibration(p_cand)
        flags.append(f"calibrated: isotonic map of the vote fraction fitted on {calibration.n_candidates} "
                     f"candidates of {len(calibration.clusters)} held-out clusters")
    timings["total"] = time.perf_counter() - t_start
    return MembershipResult(probability, prepared, flags, n_draws, seed, label, timings, probability_raw=votes)


# ---------------------------------------------------------------------------------------------
# Hand-off: a canonical member table
# ---------------------------------------------------------------------------------------------
def members_from_probabilities(result, p_min: float = 0.5) -> pd.DataFrame:
    """Stars with p ≥ ``p_min`` as a member table in the canonical schema of :func:`ocnb.datasets.load_members`.

    Parameters
    ----------
    result : MembershipResult or DataFrame
        A result of :func:`membership_probability`, or a scored frame (``MembershipResult.to_frame()``, or any
        cone with a ``p_member`` column).
    p_min : float
        Probability cut, in (0, 1] (paper and issue 15: 0.5).

    Returns
    -------
    DataFrame
        Columns :data:`ocnb.datasets.MEMBER_COLUMNS` (those the cone lacks, e.g. 2MASS, are NaN), in order, with
        ``membership_probability`` = p; then extras: ``parallax_corrected`` [mas] (zero-point corrected;
        ``parallax`` stays the archive value), ``g_rp``, ``sigma_g``, ``sigma_g_rp`` [mag], the raw features,
        ``is_candidate``, ``is_train_member`` (and ``truth`` when known). A G error absent from the cone is filled
        from ``sigma_g`` (BP/RP errors stay NaN). ``attrs``: ``cluster`` (catalogue name when it resolves),
        ``release``, ``source="ocnb.membership"``, ``citation``, ``notes`` (model, p_min, draws, seed, flags),
        ``p_min``, ``model``, ``n_draws``. The table passes :func:`ocnb.validation.validate_members` and goes to
        ``ocnb.cmd_ann.estimate`` as it is.

    Raises
    ------
    MembershipInputError
        ``p_min`` outside (0, 1] or not a number; no star with p ≥ ``p_min`` (the message gives the largest p);
        a frame without ``p_member``/``source_id``; anything else than a result or a frame.
    """
    from ..datasets import MEMBER_COLUMNS
    from ..datasets.members import finish_member_table

    if isinstance(result, MembershipResult):
        frame = result.to_frame()
    elif isinstance(result, pd.DataFrame):
        missing = [c for c in ("source_id", "p_member") if c not in result.columns]
        if missing:
            raise MembershipInputError(
                f"a scored frame needs the column(s) {missing} (MembershipResult.to_frame() has them)")
        frame = result
    else:
        raise MembershipInputError(
            f"result must be a MembershipResult (from membership_probability) or a scored DataFrame, got "
            f"{type(result).__name__}")
    try:
        p_min = float(p_min)
    except (TypeError, ValueError):
        raise MembershipInputError(f"p_min must be a number in (0, 1], got {p_min!r}") from None
    if not 0 < p_min <= 1:
        raise MembershipInputError(
            f"p_min must lie in (0, 1] (p_min = 0 would make every star of the cone a member), got {p_min}")
    attrs = dict(frame.attrs)
    cluster = str(attrs.get("cluster", "cluster"))
    p = frame["p_member"].to_numpy(dtype=float)
    n_cand = int(frame["is_candidate"].sum()) if "is_candidate" in frame.columns else int(np.sum(p > 0))
    keep = p >= p_min
    if not keep.any():
        raise MembershipInputError(
            f"{cluster}: no star has p >= {p_min:g} (largest p = {np.nanmax(p) if p.size else float('nan'):.3g} "
            f"among {n_cand} candidates); lower p_min or check the model and the cone")
    df = frame.loc[keep].reset_index(drop=True)
    name = _canonical_name(cluster)
    df["cluster"] = name
    df["membership_probability"] = p[keep]
    if "phot_g_mean_mag_error" not in df.columns and "sigma_g" in df.columns:
        df["phot_g_mean_mag_error"] = df["sigma_g"]
    df = finish_member_table(df)
    extras = [c for c in ("parallax_corrected", "g_rp", "sigma_g", "sigma_g_rp", *FEATURE_NAMES, "is_candidate",
                          "is_train_member", "truth") if c in df.columns]
    df = df[list(MEMBER_COLUMNS) + extras]
    release = attrs.get("release")
    model, n_draws, seed = attrs.get("model", "not recorded"), attrs.get("n_draws"), attrs.get("seed")
    flags = attrs.get("flags") or []
    df.attrs = {
        "cluster": name,
        "release": release,
        "source": "ocnb.membership",
        "citation": "van Groeningen, Castro-Ginard, Brown, Casamiquela & Jordi 2023 (A&A 675, A68), Deep Sets "
                    "membership, run with ocnb; cone: " + str(attrs.get("citation", "not recorded")),
        "notes": (f"members with p >= {p_min:g} from {model} ({n_draws} draws from the Gaia errors, seed {seed}): "
                  f"{int(keep.sum())} of {n_cand} candidates. parallax is the archive value ({release}); "
                  f"parallax_corrected subtracts the zero point. Flags: {'; '.join(flags) or 'none'}."),
        "p_min": p_min,
        "model": model,
        "n_draws": n_draws,
    }
    return df


def _canonical_name(name: str) -> str:
    """The catalogue name when the cluster resolves (``Blanco_1`` → ``Blanco 1``), else ``name`` as given."""
    from ..datasets import resolve_cluster_name
    from ..errors import UnknownClusterError

    try:
        return resolve_cluster_name(name)
    except (UnknownClusterError, OSError, ValueError):
        return str(name)
