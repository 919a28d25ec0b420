"""q thresholds, binary fractions and classification rates of Malhotra et al. 2025 (Sect. 4, App. D; spec B7).

A member is called an unresolved binary when its q mode (0 for stars the fit calls single) reaches the
cluster's **q threshold**, the mass ratio below which the photometry cannot tell a binary from a
single star. The threshold comes from a SIMULATED look-alike of the cluster (same age, distance, A_V,
bands; :func:`ocnb.binaries.simulate_cluster`) run through the same pipeline: positives are the true
binaries with q > 0.2, negatives all other members; the score is the q mode; the cut maximising
TPR − FPR on the ROC curve (Youden's J), floored at 0.2, is the threshold. The paper does this twice per
cluster, with the infrared bands (q_Gaia+) and with Gaia alone (q_Gaia).

The binary fraction of a cluster is n(q_mode ≥ max(q_thresh, 0.1/M_A)) / n_MS over main-sequence
members with G ≤ 19, with the Poisson error √n / n_MS; :func:`binary_fraction` gives it overall or in
bins of primary mass.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd

__all__ = ["QThreshold", "q_threshold", "binary_fraction", "classification_rates", "Q_FLOOR", "G_MAX_MS"]

#: Smallest q threshold and the q above which a simulated binary counts as a positive (spec B7).
Q_FLOOR = 0.2
#: Faintest G [mag] of the main-sequence stars counted in binary fractions (spec B7).
G_MAX_MS = 19.0
#: PARSEC phase label of the main sequence (:func:`ocnb.binaries.fit_cluster` gives each member its label).
MS_LABEL = 1


def _column(frame: pd.DataFrame, name: str, where: str) -> np.ndarray:
    if name not in frame.columns:
        raise KeyError(f"{where} needs a column {name!r}; it has {list(frame.columns)[:12]}")
    return frame[name].to_numpy(float)


def _predicted_binary(q_mode: np.ndarray, mass_a: np.ndarray, q_thresh: float) -> np.ndarray:
    """q_mode ≥ max(q_thresh, q_lim(M_A)) (spec B7; q_lim as for P_b); NaN modes are never binaries."""
    from .cluster_prior import _q_lim

    with np.errstate(invalid="ignore", divide="ignore"):
        return np.isfinite(q_mode) & (q_mode >= np.maximum(q_thresh, _q_lim(mass_a)))


@dataclasses.dataclass
class QThreshold:
    """Result of :func:`q_threshold`.

    Attributes
    ----------
    threshold : float
        q_thresh = max(0.2, Youden cut) [dimensionless mass ratio].
    cut : float
        The q-mode cut maximising TPR − FPR, before the 0.2 floor.
    tpr, fpr : float
        True- and false-positive rates at ``threshold``.
    roc : DataFrame
        ``cut``, ``tpr``, ``fpr`` of every distinct cut (the ROC curve).
    n_positive, n_negative : int
        Stars counted as positives (true q > 0.2) and negatives.
    label : str
        What the threshold is for (e.g. ``"Gaia+2MASS"``).
    """

    threshold: float
    cut: float
    tpr: float
    fpr: float
    roc: pd.DataFrame
    n_positive: int
    n_negative: int
    label: str = ""

    def to_frame(self) -> pd.DataFrame:
        """The ROC curve (``cut``, ``tpr``, ``fpr``)."""
        return self.roc

    def plot(self, ax=None):
        """ROC curve with the chosen cut marked (M25 App. D); call again on the same ``ax`` to compare."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4.2, 4.0))
        (line,) = ax.plot(self.roc["fpr"], self.roc["tpr"], lw=1.5, label=self.label or "ROC")
        ax.plot([0, 1], [0, 1], color="0.6", ls=":", lw=1)
        ax.plot(self.fpr, self.tpr, "o", color=line.get_color(), label=f"q_thresh = {self.threshold:.3f}")
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("true-positive rate")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.legend(fontsize=8, frameon=False, loc="lower right")
        return ax


def q_threshold(q_mode, q_true, *, g=None, label=None, g_max: float = G_MAX_MS, floor: float = Q_FLOOR,
                name: str = "") -> QThreshold:
    """The q threshold of a cluster from a simulated look-alike (M25 App. D; spec B7).

    Parameters
    ----------
    q_mode : array (n,)
        Fitted q mode of each simulated member (0 for stars called single; NaN for outliers, which
        count as negatives' score 0).
    q_true : array (n,)
        True mass ratio (0 for single stars).
    g, label : array (n,), optional
        G magnitude [mag] and PARSEC phase label: when given, only main-sequence stars (label 1) with
        G ≤ ``g_max`` are used, as in the paper.
    floor : float
        Positives are binaries with q_true > ``floor``; the threshold is at least ``floor``.
    name : str
        What the threshold is for (shown in plots).

    Returns
    -------
    QThreshold
    """
    q_mode = np.asarray(q_mode, float)
    q_true = np.asarray(q_true, float)
    if q_mode.shape != q_true.shape or q_mode.ndim != 1:
        raise ValueError(f"q_mode and q_true must be 1-D arrays of one length; got {q_mode.shape} and {q_true.shape}")
    use = np.isfinite(q_true)
    if g is not None:
        use &= np.asarray(g, float) <= g_max
    if label is not None:
        use &= np.asarray(label) == MS_LABEL
    score = np.where(np.isfinite(q_mode), q_mode, 0.0)[use]
    positive = q_true[use] > floor
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"a q threshold needs both true binaries with q > {floor} and other stars among the "
                         f"{int(use.sum())} main-sequence members used; got {n_pos} and {n_neg}")
    from sklearn.metrics import roc_curve

    # A star is called positive when score ≥ cut; sklearn's first cut (+inf) calls none.
    fpr, tpr, cuts = roc_curve(positive, score, drop_intermediate=False)
    fpr, tpr, cuts = fpr[1:], tpr[1:], cuts[1:]
    best = int(np.argmax(tpr - fpr))
    cut = float(cuts[best])
    thresh = max(float(floor), cut)
    return QThreshold(threshold=thresh, cut=cut, tpr=float((score[positive] >= thresh).mean()),
                      fpr=float((score[~positive] >= thresh).mean()),
                      roc=pd.DataFrame({"cut": cuts, "tpr": tpr, "fpr": fpr}), n_positive=n_pos,
                      n_negative=n_neg, label=name)


def classification_rates(q_mode, mass_a, q_true, q_thresh: float) -> dict:
    """False-binary and false-single rates of a simulated cluster (M25 eq. D.1).

    Returns
    -------
    dict
        ``f_fb`` = false binaries / predicted binaries, ``f_fs`` = true binaries (q_true ≥ q_thresh)
        called single / true binaries, and the counts.
    """
    q_mode, mass_a, q_true = (np.asarray(a, float) for a in (q_mode, mass_a, q_true))
    pred = _predicted_binary(q_mode, mass_a, q_thresh)
    true = q_true >= q_thresh
    n_pred, n_true = int(pred.sum()), int(true.sum())
    return {"n_predicted_binaries": n_pred, "n_true_binaries": n_true,
            "f_fb": float((pred & ~true).sum() / n_pred) if n_pred else float("nan"),
            "f_fs": float((true & ~pred).sum() / n_true) if n_true else float("nan")}


def binary_fraction(stars: pd.DataFrame, q_thresh: float, *, g_max: float = G_MAX_MS, mass_bins=None,
                    ) -> pd.DataFrame:
    """Binary fraction of the main-sequence members, overall or per primary-mass bin (spec B7).

    Parameters
    ----------
    stars : DataFrame
        Per-star results of :func:`ocnb.binaries.fit_cluster` (``ClusterFit.stars``): ``q_mode``,
        ``mass_a_mode`` [M☉], ``label`` (PARSEC phase) and ``G`` [mag].
    q_thresh : float
        The cluster's q threshold (:func:`q_threshold`).
    g_max : float
        Faintest G of the counted main-sequence stars [mag].
    mass_bins : sequence of float, optional
        Edges in M_A [M☉]; one row per bin (default: one row for all).

    Returns
    -------
    DataFrame
        ``mass_lo``, ``mass_hi`` [M☉], ``n_ms``, ``n_binary``, ``f_b`` and its Poisson error
        ``f_b_sigma`` = √n_binary / n_ms.
    """
    if not (isinstance(q_thresh, (int, float)) and 0 <= q_thresh <= 1):
        raise ValueError(f"q_thresh must be a mass ratio in [0, 1], not {q_thresh!r}")
    where = "binary_fraction(stars)"
    q_mode, mass = _column(stars, "q_mode", where), _column(stars, "mass_a_mode", where)
    g, label = _column(stars, "G", where), _column(stars, "label", where)
    ms = (label == MS_LABEL) & (g <= g_max) & np.isfinite(q_mode) & np.isfinite(mass)
    binary = _predicted_binary(q_mode, mass, float(q_thresh))
    edges = (np.array([np.nanmin(mass[ms]) if ms.any() else 0.0, np.inf]) if mass_bins is None
             else np.asarray(mass_bins, float))
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"mass_bins must be increasing edges in M☉, got {mass_bins!r}")
    rows = []
    for lo, hi in itertools.pairwise(edges):
        inside = ms & (mass >= lo) & (mass < hi)
        n_ms, n_bin = int(inside.sum()), int((inside & binary).sum())
        rows.append({"mass_lo": lo, "mass_hi": hi, "n_ms": n_ms, "n_binary": n_bin,
                     "f_b": n_bin / n_ms if n_ms else np.nan,
                     "f_b_sigma": np.sqrt(n_bin) / n_ms if n_ms else np.nan})
    return pd.DataFrame(rows)
