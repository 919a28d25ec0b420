"""Calibration of the membership probabilities on held-out clusters (an ocnb addition to vG23 Sect. 3.4).

vG23's probability is the fraction of error draws the network calls a member. Measured on the validation
clusters of the ``laptop`` model (real members in SIMULATED fields, never trained on) that fraction is
**under-confident about members**: candidates with 20–50 % of the votes are members nine times in ten, and
a tenth of the candidates with no vote at all are members (expected calibration error over the candidates
0.06–0.12). A monotone map from vote fraction to frequency fixes that without changing the ranking of the
stars: isotonic regression (scikit-learn's :class:`~sklearn.isotonic.IsotonicRegression`, non-decreasing,
clipped to [0, 1]) fitted on the candidates of held-out clusters.

:func:`fit_calibration` scores the candidates of the given clusters once, fits the map on all of them, and
measures what it does honestly by **leave one cluster out**: each cluster's calibrated scores come from a
map fitted on the other clusters only. Non-candidates keep p = 0 (the selection of Sect. 2.3 rejected
them). The map is a piecewise-linear function of the vote fraction (``np.interp`` through the isotonic
steps), stored with the model (``calibration.json`` in its store bundle) and applied by
:func:`ocnb.membership.membership_probability` unless ``calibrated=False``; the raw vote fractions stay in
``MembershipResult.probability_raw``.

The map depends on the share of members among the candidates of its clusters (the ``laptop`` calibration
cones 77–91 %, the FAST ones 65–71 %, Blanco 1's real cone 88 %): the calibration cones keep every member of
their clusters for that reason (:func:`ocnb.membership.training.calibration_clusters`). A field far richer in
contaminants than those cones would need its own map. Measured on the real Blanco 1 cone (one peer run,
``benchmarks/RESULTS.md``): F1 0.959 → 0.969 and Brier 0.00163 → 0.00131, mean of three model seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["ProbabilityCalibration", "fit_calibration", "calibration_from_scores", "CALIBRATION_FORMAT"]

CALIBRATION_FORMAT = "ocnb.membership.ProbabilityCalibration/1"
#: Calibration needs at least this many candidates of each class over all clusters.
MIN_PER_CLASS = 5


@dataclass
class ProbabilityCalibration:
    """A non-decreasing map from vote fraction to calibrated membership probability.

    Attributes
    ----------
    x, y : array
        Knots of the piecewise-linear map (vote fraction in [0, 1] → probability in [0, 1]); values outside
        ``[x[0], x[-1]]`` take the end values.
    clusters : list of str
        The clusters whose candidates it was fitted on.
    n_candidates, n_members : int
        Candidates (and true members among them) it was fitted on.
    n_draws : int
        Draws per candidate of the vote fractions it was fitted on.
    held_out : DataFrame
        Leave-one-cluster-out scores, one row per cluster and ``kind`` (``"raw"`` vote fraction or
        ``"calibrated"`` by a map fitted without that cluster): ``f1``, ``precision``, ``recall`` (p ≥ 0.5),
        ``brier_candidates``, ``ece_candidates``, ``brier``, ``ece`` (all stars of the cone, non-candidates
        at p = 0), ``n_candidates``, ``n_true``. Empty when fitted on one cluster.
    """

    x: np.ndarray
    y: np.ndarray
    clusters: list[str] = field(default_factory=list)
    n_candidates: int = 0
    n_members: int = 0
    n_draws: int = 100
    held_out: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def __post_init__(self):
        self.x = np.asarray(self.x, dtype=float)
        self.y = np.asarray(self.y, dtype=float)
        if self.x.ndim != 1 or self.x.shape != self.y.shape or self.x.size < 1:
            raise ValueError(f"calibration knots x {self.x.shape} and y {self.y.shape} must be equal 1-D arrays")
        if not (np.all(np.isfinite(self.x)) and np.all(np.isfinite(self.y))):
            raise ValueError("calibration knots must be finite")
        if np.any(np.diff(self.x) < 0) or np.any(np.diff(self.y) < -1e-12):
            raise ValueError("calibration knots must be non-decreasing in x and in y (an isotonic map)")
        if self.y.min() < 0 or self.y.max() > 1 or self.x.min() < 0 or self.x.max() > 1:
            raise ValueError("calibration knots must lie in [0, 1]")

    def __call__(self, p) -> np.ndarray:
        """Calibrated probabilities of vote fractions ``p`` (array in [0, 1])."""
        return np.interp(np.asarray(p, dtype=float), self.x, self.y)

    def __repr__(self) -> str:
        return (f"ProbabilityCalibration(isotonic, {self.x.size} knots, fitted on {self.n_candidates} candidates "
                f"({self.n_members} members) of {len(self.clusters)} clusters, {self.n_draws} draws)")

    def to_dict(self) -> dict:
        return {"format": CALIBRATION_FORMAT, "x": self.x.tolist(), "y": self.y.tolist(),
                "clusters": list(self.clusters), "n_candidates": int(self.n_candidates),
                "n_members": int(self.n_members), "n_draws": int(self.n_draws),
                "held_out": self.held_out.to_dict(orient="records")}

    @classmethod
    def from_dict(cls, d: dict) -> ProbabilityCalibration:
        """Rebuild from :meth:`to_dict`; raises ``ValueError`` on another format or bad knots."""
        if not isinstance(d, dict) or d.get("format") != CALIBRATION_FORMAT:
            got = d.get("format") if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"not a membership calibration: format {got!r}, expected {CALIBRATION_FORMAT!r}")
        return cls(x=d["x"], y=d["y"], clusters=list(d.get("clusters", [])),
                   n_candidates=int(d.get("n_candidates", 0)), n_members=int(d.get("n_members", 0)),
                   n_draws=int(d.get("n_draws", 100)), held_out=pd.DataFrame(d.get("held_out", [])))

    def to_frame(self) -> pd.DataFrame:
        """The map's knots: ``vote_fraction``, ``probability``."""
        return pd.DataFrame({"vote_fraction": self.x, "probability": self.y})

    def plot(self, ax=None):
        """The map (vote fraction → calibrated probability) beside the diagonal. Returns the Axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4.2, 4))
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="no calibration")
        ax.plot(self.x, self.y, color="C0", marker=".", label="isotonic map")
        ax.set_xlabel("fraction of draws called member")
        ax.set_ylabel("calibrated membership probability")
        ax.set_title(f"fitted on {self.n_candidates} candidates of {len(self.clusters)} held-out clusters",
                     fontsize=9)
        ax.legend(fontsize=8, loc="lower right")
        return ax


def _isotonic(p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(p, t.astype(float))
    return np.asarray(iso.X_thresholds_, float), np.asarray(iso.y_thresholds_, float)


def _check_classes(t: np.ndarray, what: str) -> None:
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if n_pos < MIN_PER_CLASS or n_neg < MIN_PER_CLASS:
        raise ValueError(f"calibration needs at least {MIN_PER_CLASS} member and {MIN_PER_CLASS} non-member "
                         f"candidates; {what} have {n_pos} members and {n_neg} non-members among the candidates")


def calibration_from_scores(scores: Sequence[tuple], n_draws: int = 100) -> ProbabilityCalibration:
    """The isotonic map and its leave-one-cluster-out scores from already scored clusters.

    Parameters
    ----------
    scores : list of (name, p, truth, is_candidate)
        Per cluster: its name, the raw vote fractions of every star of its cone (array (n,), 0 for
        non-candidates), the true-member mask (n,) and the candidate mask (n,).
    n_draws : int
        Draws per candidate behind the vote fractions (recorded).

    Returns
    -------
    ProbabilityCalibration

    Raises
    ------
    ValueError
        No cluster, arrays of different lengths or probabilities outside [0, 1], fewer than 5 members or
        5 non-members among all candidates.
    """
    from .evaluation import evaluate_members

    checked = []
    for item in scores:
        try:
            name, p, t, cand = item
        except (TypeError, ValueError):
            raise ValueError("each score must be (name, p, truth, is_candidate)") from None
        p, t, cand = np.asarray(p, float), np.asarray(t, bool), np.asarray(cand, bool)
        if p.ndim != 1 or t.shape != p.shape or cand.shape != p.shape:
            raise ValueError(f"cluster {name!r}: p {p.shape}, truth {t.shape} and is_candidate {cand.shape} must "
                             "be 1-D arrays of one length (one value per cone row)")
        if not np.all(np.isfinite(p)) or p.min(initial=0) < 0 or p.max(initial=0) > 1:
            raise ValueError(f"cluster {name!r}: vote fractions must be finite and in [0, 1]")
        checked.append((str(name), p, t, cand))
    if not checked:
        raise ValueError("calibration needs at least one held-out cluster with a truth mask")
    p_all = np.concatenate([p[cand] for _, p, _, cand in checked])
    t_all = np.concatenate([t[cand] for _, _, t, cand in checked])
    _check_classes(t_all, f"the candidates of {len(checked)} cluster(s)")
    x, y = _isotonic(p_all, t_all)

    rows = []
    for i, (name, p, t, cand) in enumerate(checked if len(checked) > 1 else []):
        rest = [c for j, c in enumerate(checked) if j != i]
        p_rest = np.concatenate([q[cm] for _, q, _, cm in rest])
        t_rest = np.concatenate([tt[cm] for _, _, tt, cm in rest])
        if not t.any() or t_rest.all() or not t_rest.any():
            continue  # no member to score here, or the other clusters cannot fit a map
        xi, yi = _isotonic(p_rest, t_rest)
        for kind, q in (("raw", p), ("calibrated", np.where(cand, np.interp(p, xi, yi), 0.0))):
            ev = evaluate_members(q, t, g_max=None, name=name)
            ev_c = evaluate_members(q[cand], t[cand], g_max=None, name=name) if t[cand].any() else None
            rows.append({"cluster": name, "kind": kind, "f1": ev.f1, "precision": ev.precision,
                         "recall": ev.recall, "brier": ev.brier, "ece": ev.ece,
                         "brier_candidates": ev_c.brier if ev_c else float("nan"),
                         "ece_candidates": ev_c.ece if ev_c else float("nan"),
                         "n_candidates": int(cand.sum()), "n_true": int(t.sum())})
    return ProbabilityCalibration(x=x, y=y, clusters=[c[0] for c in checked], n_candidates=int(p_all.size),
                                  n_members=int(t_all.sum()), n_draws=int(n_draws), held_out=pd.DataFrame(rows))


def fit_calibration(model, clusters: Sequence, n_draws: int = 100, seed: int = 42,
                    progress: bool | None = None) -> ProbabilityCalibration:
    """Fit the isotonic map on the candidates of held-out clusters, with leave-one-cluster-out scores.

    Parameters
    ----------
    model : DeepSetsMembership
        A fitted model (any calibration it already has is ignored: the map is fitted on raw vote fractions).
    clusters : list of PreparedCluster
        Clusters the model never trained on, each with a ``truth`` mask (e.g.
        :func:`ocnb.membership.training.calibration_clusters`: SIMULATED fields with real members).
    n_draws, seed : int
        Draws per candidate and their seed (:func:`ocnb.membership.membership_probability`).
    progress : bool, optional
        Progress bars of the draws.

    Returns
    -------
    ProbabilityCalibration
        See :func:`calibration_from_scores`.

    Raises
    ------
    ValueError
        No cluster, a cluster without ``truth``, or fewer than 5 members or 5 non-members among all candidates.
    """
    from .probability import membership_probability

    clusters = list(clusters)
    if not clusters:
        raise ValueError("fit_calibration needs at least one held-out cluster with a truth mask")
    scores = []
    for c in clusters:
        truth = getattr(c, "truth", None)
        if truth is None:
            raise ValueError(f"cluster {getattr(c, 'name', '?')!r} has no truth mask: calibration needs clusters "
                             "whose members are known (simulated fields)")
        res = membership_probability(model, c, n_draws=n_draws, seed=seed, progress=progress, calibrated=False)
        scores.append((c.name, res.probability, truth, c.selection.is_candidate))
    return calibration_from_scores(scores, n_draws=n_draws)
