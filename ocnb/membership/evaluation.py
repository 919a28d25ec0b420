"""Scoring membership probabilities against a published member list (vG23 Sect. 4; spec A12, A14).

* :func:`evaluate_members`: precision, recall and F1 at ``p ≥ p_min`` for stars with G < ``g_max`` (the issue's
  Blanco 1 test: P ≥ 0.5, G < 18), the Brier score and expected calibration error of the probabilities, their
  reliability curve and precision/recall/F1 against the threshold — for our model, the authors' model and peers
  (HDBSCAN, fastMP) alike: anything that gives one probability per cone row.
* :func:`crossmatch_ids`: a member list of another Gaia release onto a cone (the Blanco 1 cone is DR2, the
  Almeida et al. 2023 members are EDR3): ``source_id`` equality first, then a positional fallback.
* :func:`miss_breakdown`: which published members are missed, and which candidate test (proper motion, parallax,
  isochrone) the non-candidates among them fail (Sect. 4.1-4.2: 32 % missed, 73 % of them candidates; of the
  non-candidates 67 % fail pm, 27 % parallax, 20 % isochrone).
* :func:`faint_fraction`: share of p ≥ 0.1 members with G > 18 (Sect. 4.1: median 43.5 %).

The probabilities' calibration uses :func:`ocnb.diagnostics.brier_score`,
:func:`~ocnb.diagnostics.reliability_curve` and :func:`~ocnb.diagnostics.expected_calibration_error`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .probability import MembershipInputError, MembershipResult

__all__ = [
    "MembershipEvaluation",
    "evaluate_members",
    "crossmatch_ids",
    "truth_mask",
    "miss_breakdown",
    "faint_fraction",
    "RELEASE_EPOCH",
]

#: Reference epochs [Julian year] of the Gaia releases' positions.
RELEASE_EPOCH = {"DR2": 2015.5, "EDR3": 2016.0, "DR3": 2016.0}
#: Thresholds of the precision/recall/F1 curve.
THRESHOLDS = np.round(np.arange(0.05, 1.0, 0.05), 2)


# ---------------------------------------------------------------------------------------------
# Cross-match of a member list onto a cone
# ---------------------------------------------------------------------------------------------
def _epoch(frame: pd.DataFrame, given: float | None, what: str) -> float | None:
    if given is not None:
        return float(given)
    release = frame.attrs.get("release")
    return RELEASE_EPOCH.get(str(release).upper()) if release is not None else None


def _unit_vectors(ra_deg, dec_deg) -> np.ndarray:
    ra, dec = np.deg2rad(ra_deg), np.deg2rad(dec_deg)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def crossmatch_ids(cone: pd.DataFrame, members: pd.DataFrame, max_sep_arcsec: float = 0.5,
                   max_delta_g: float = 0.3, cone_epoch: float | None = None,
                   member_epoch: float | None = None) -> pd.DataFrame:
    """Match a member list to the rows of a cone, across Gaia releases.

    1. **source_id equality** (most sources keep their id from DR2 to (E)DR3; the spec-A4 rule);
    2. for members still unmatched, a **positional fallback**: the member's position is moved from its epoch
       to the cone's (linear in time with its proper motion: Δδ = μδ Δt, Δα cos δ = μα* Δt; e.g. EDR3 2016.0
       → DR2 2015.5, Δt = −0.5 yr), then the nearest cone source not matched by id within ``max_sep_arcsec``
       and with |ΔG| < ``max_delta_g`` is taken; each cone source goes to at most one member (the closest).

    Parameters
    ----------
    cone : DataFrame
        ``source_id, ra, dec [deg], phot_g_mean_mag [mag]``; ``attrs["release"]`` gives its epoch.
    members : DataFrame
        The same columns plus ``pmra, pmdec`` [mas/yr] (missing or NaN: no propagation).
    max_sep_arcsec, max_delta_g : float
        Positional fallback limits [arcsec, mag].
    cone_epoch, member_epoch : float, optional
        Epochs [yr]; default from ``attrs["release"]`` (DR2: 2015.5; EDR3, DR3: 2016.0). When unknown for
        either table, positions are compared as they are (recorded in ``attrs["epochs"]``).

    Returns
    -------
    DataFrame, one row per member (in the members' order): ``member_source_id``, ``cone_row`` (position in
    the cone, −1 if unmatched), ``cone_source_id`` (−1 if unmatched), ``match`` (``"source_id"``,
    ``"position"`` or ``"none"``), ``separation_arcsec`` (after propagation; 0 is not assumed for id matches:
    it is computed too) and ``delta_g`` [mag] (member − cone). ``attrs``: ``n_members``, ``n_source_id``,
    ``n_position``, ``n_unmatched``, ``epochs``.
    """
    from scipy.spatial import cKDTree

    for what, frame, cols in (("cone", cone, ("source_id", "ra", "dec", "phot_g_mean_mag")),
                              ("members", members, ("source_id", "ra", "dec", "phot_g_mean_mag"))):
        if not isinstance(frame, pd.DataFrame):
            raise MembershipInputError(f"{what} must be a DataFrame, got {type(frame).__name__}")
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise MembershipInputError(f"{what} lacks the column(s) {missing} needed for the cross-match")
    if not max_sep_arcsec > 0 or not max_delta_g > 0:
        raise MembershipInputError(
            f"max_sep_arcsec and max_delta_g must be positive, got {max_sep_arcsec} and {max_delta_g}")
    c_ids = cone["source_id"].to_numpy(np.int64)
    m_ids = members["source_id"].to_numpy(np.int64)
    nm = len(members)
    row = np.full(nm, -1, dtype=np.int64)
    how = np.full(nm, "none", dtype=object)
    # 1. identifiers
    pos = pd.Series(np.arange(len(cone)), index=c_ids)
    pos = pos[~pos.index.duplicated()]
    by_id = pos.reindex(m_ids).to_numpy()
    hit = np.isfinite(by_id)
    row[hit] = by_id[hit].astype(np.int64)
    how[hit] = "source_id"
    # 2. positions, moved to the cone's epoch
    ce, me = _epoch(cone, cone_epoch, "cone"), _epoch(members, member_epoch, "members")
    dt = (ce - me) if (ce is not None and me is not None) else 0.0
    ra = members["ra"].to_numpy(float)
    dec = members["dec"].to_numpy(float)
    if dt != 0.0 and {"pmra", "pmdec"} <= set(members.columns):
        pmra = np.nan_to_num(members["pmra"].to_numpy(float))
        pmdec = np.nan_to_num(members["pmdec"].to_numpy(float))
        dec = dec + pmdec * dt / 3.6e6
        ra = ra + pmra * dt / (3.6e6 * np.cos(np.deg2rad(dec)))
    m_xyz = _unit_vectors(ra, dec)
    c_xyz = _unit_vectors(cone["ra"].to_numpy(float), cone["dec"].to_numpy(float))
    g_m = members["phot_g_mean_mag"].to_numpy(float)
    g_c = cone["phot_g_mean_mag"].to_numpy(float)
    todo = np.flatnonzero(~hit)
    free = np.ones(len(cone), bool)
    free[row[hit]] = False
    if todo.size and free.any():
        free_rows = np.flatnonzero(free)
        tree = cKDTree(c_xyz[free_rows])
        chord = 2 * np.sin(np.deg2rad(max_sep_arcsec / 3600) / 2)
        k = min(5, free_rows.size)
        dist, idx = tree.query(m_xyz[todo], k=k, distance_upper_bound=chord)
        dist, idx = dist.reshape(len(todo), k), idx.reshape(len(todo), k)
        ok = idx < free_rows.size
        mem = np.repeat(todo, k).reshape(len(todo), k)[ok]
        crow = free_rows[idx[ok]]
        sep = dist[ok]
        good = np.abs(g_m[mem] - g_c[crow]) < max_delta_g
        pairs = pd.DataFrame({"m": mem[good], "c": crow[good], "sep": sep[good]}).sort_values("sep", kind="stable")
        pairs = pairs.drop_duplicates("m").drop_duplicates("c")  # nearest for each member, one member per source
        row[pairs["m"].to_numpy()] = pairs["c"].to_numpy()
        how[pairs["m"].to_numpy()] = "position"
    matched = row >= 0
    sep_arcsec = np.full(nm, np.nan)
    dg = np.full(nm, np.nan)
    chord = np.linalg.norm(m_xyz[matched] - c_xyz[row[matched]], axis=1)
    sep_arcsec[matched] = np.rad2deg(2 * np.arcsin(np.clip(chord / 2, 0, 1))) * 3600
    dg[matched] = g_m[matched] - g_c[row[matched]]
    out = pd.DataFrame({
        "member_source_id": m_ids, "cone_row": row,
        "cone_source_id": np.where(matched, c_ids[np.maximum(row, 0)], -1).astype(np.int64),
        "match": how, "separation_arcsec": sep_arcsec, "delta_g": dg,
    })
    out.attrs.update(
        n_members=int(nm), n_source_id=int((how == "source_id").sum()), n_position=int((how == "position").sum()),
        n_unmatched=int((~matched).sum()),
        epochs={"cone": ce, "members": me, "propagated_yr": dt,
                "note": "positions compared as given (epoch unknown)" if (ce is None or me is None) else ""},
        max_sep_arcsec=float(max_sep_arcsec), max_delta_g=float(max_delta_g),
    )
    return out


def truth_mask(cone: pd.DataFrame, truth, **crossmatch) -> np.ndarray:
    """Boolean mask over the cone's rows: which rows are published members.

    ``truth`` may be a boolean mask (n,), an integer array of ``source_id`` (equality only), or a member
    table (DataFrame with ``source_id``; matched with :func:`crossmatch_ids`, keywords passed on).
    """
    n = len(cone)
    if isinstance(truth, pd.DataFrame):
        if {"ra", "dec", "phot_g_mean_mag"} <= set(truth.columns):
            match = crossmatch_ids(cone, truth, **crossmatch)
            rows = match["cone_row"].to_numpy()
            mask = np.zeros(n, bool)
            mask[rows[rows >= 0]] = True
            return mask
        if "source_id" not in truth.columns:
            raise MembershipInputError(
                f"the truth table needs a 'source_id' column (and ra, dec, phot_g_mean_mag for the positional "
                f"fallback); it has {list(truth.columns)[:8]}")
        truth = truth["source_id"].to_numpy()
    if isinstance(truth, pd.Series):
        truth = truth.to_numpy()
    arr = np.asarray(truth)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise MembershipInputError(
                f"a truth mask must have one value per cone row ({n}), got shape {arr.shape}")
        return arr.copy()
    if arr.dtype.kind in "iu":
        if "source_id" not in cone.columns:
            raise MembershipInputError("truth given as source_ids, but the cone has no 'source_id' column")
        return np.isin(cone["source_id"].to_numpy(np.int64), arr.astype(np.int64))
    raise MembershipInputError(
        f"truth must be a boolean mask, an integer array of source_ids or a member table, got dtype {arr.dtype}")


# ---------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------
@dataclass
class MembershipEvaluation:
    """Scores of membership probabilities against a truth (see :func:`evaluate_members`).

    Attributes
    ----------
    name : str
    p_min, g_max : float
    precision, recall, f1 : float
        At p ≥ ``p_min`` over the scored stars (G < ``g_max``); NaN where undefined (nothing predicted).
    tp, fp, fn, tn, n_scored, n_true, n_predicted : int
    brier, ece : float
        Over **all scored stars** (G < ``g_max``; non-candidates enter with p = 0).
    brier_candidates, ece_candidates : float
        Over the scored candidates only (NaN without a candidate mask).
    n_candidates, n_true_candidates : int (−1 when unknown)
    reliability, reliability_candidates : DataFrame
        :func:`ocnb.diagnostics.reliability_curve` (10 equal bins) of all scored stars / the candidates.
    thresholds : DataFrame
        ``threshold, precision, recall, f1, n_predicted`` for thresholds 0.05 ... 0.95.
    """

    name: str
    p_min: float
    g_max: float | None
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int
    tn: int
    n_scored: int
    n_true: int
    n_predicted: int
    brier: float
    ece: float
    brier_candidates: float
    ece_candidates: float
    n_candidates: int
    n_true_candidates: int
    reliability: pd.DataFrame = field(repr=False)
    reliability_candidates: pd.DataFrame | None = field(repr=False)
    thresholds: pd.DataFrame = field(repr=False)

    def to_frame(self) -> pd.DataFrame:
        """One row (index: ``name``) of the scalar scores; rows of several evaluations concatenate."""
        keys = ("p_min", "g_max", "precision", "recall", "f1", "brier", "ece", "brier_candidates", "ece_candidates",
                "tp", "fp", "fn", "tn", "n_scored", "n_true", "n_predicted", "n_candidates", "n_true_candidates")
        return pd.DataFrame([{k: getattr(self, k) for k in keys}], index=pd.Index([self.name], name="name"))

    def plot(self, axes=None):
        """Reliability diagram (observed member fraction vs mean p per bin, with binomial 95 % intervals and
        the counts) and precision/recall/F1 against the threshold. Returns the Figure."""
        import matplotlib.pyplot as plt

        if axes is None:
            fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
        else:
            axes = np.ravel(axes)
            fig = axes[0].figure
        ax = axes[0]
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="calibrated")
        curves = [("all stars", self.reliability, "C0", self.brier, self.ece)]
        if self.reliability_candidates is not None:
            curves.append(("candidates", self.reliability_candidates, "C1", self.brier_candidates,
                           self.ece_candidates))
        for label, rel, colour, brier, ece in curves:
            full = rel[rel["count"] > 0]
            yerr = np.vstack([full["observed_fraction"] - full["observed_lower"],
                              full["observed_upper"] - full["observed_fraction"]])
            ax.errorbar(full["mean_predicted"], full["observed_fraction"], yerr=yerr, marker="o", ms=4, lw=1,
                        capsize=2, color=colour, label=f"{label}: Brier {brier:.4f}, ECE {ece:.3f}")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("mean predicted membership probability (bin)")
        ax.set_ylabel("fraction of published members")
        ax.legend(fontsize=7, loc="upper left")
        inset = ax.inset_axes([0.58, 0.08, 0.38, 0.28])
        inset.bar(self.reliability["bin_lower"], self.reliability["count"], width=0.1, align="edge", color="C0",
                  alpha=0.6, log=True)
        inset.set_title("stars per bin", fontsize=6)
        inset.tick_params(labelsize=5)
        ax = axes[1]
        t = self.thresholds
        for col, colour in (("precision", "C0"), ("recall", "C1"), ("f1", "C2")):
            ax.plot(t["threshold"], t[col], marker=".", color=colour, label=col)
        ax.axvline(self.p_min, color="0.5", lw=0.8, ls=":")
        ax.set_xlabel("probability threshold")
        ax.set_ylabel("score")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8, loc="lower center")
        cut = f", G < {self.g_max:g}" if self.g_max is not None else ""
        fig.suptitle(f"{self.name}: F1 {self.f1:.3f} (precision {self.precision:.3f}, recall {self.recall:.3f}) at "
                     f"p ≥ {self.p_min:g}{cut}; {self.n_true} published members", fontsize=10)
        return fig


def _scores(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, int, float, float, float]:
    tp = int(np.sum(pred & truth))
    fp = int(np.sum(pred & ~truth))
    fn = int(np.sum(~pred & truth))
    tn = int(np.sum(~pred & ~truth))
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return tp, fp, fn, tn, precision, recall, f1


def _probabilities(result_or_probability, cone):
    """(p, cone, candidate mask or None, name) from a result, a scored frame or an array."""
    if isinstance(result_or_probability, MembershipResult):
        res = result_or_probability
        cone = res.prepared.cone if cone is None else cone
        return (np.asarray(res.probability, float), cone, np.asarray(res.prepared.selection.is_candidate, bool),
                res.name)
    if isinstance(result_or_probability, pd.DataFrame):
        frame = result_or_probability
        if "p_member" not in frame.columns:
            raise MembershipInputError(
                f"a scored frame needs a 'p_member' column (MembershipResult.to_frame()); it has "
                f"{list(frame.columns)[:8]}")
        cand = frame["is_candidate"].to_numpy(bool) if "is_candidate" in frame.columns else None
        return frame["p_member"].to_numpy(float), (frame if cone is None else cone), cand, \
            str(frame.attrs.get("cluster", "cluster"))
    try:
        p = np.asarray(result_or_probability, dtype=float)
    except (TypeError, ValueError):
        raise MembershipInputError(
            f"probabilities must be a MembershipResult, a scored DataFrame or an array of floats, got "
            f"{type(result_or_probability).__name__}") from None
    return p, cone, None, "probabilities"


def evaluate_members(result_or_probability, truth, p_min: float = 0.5, g_max: float | None = 18.0,
                     cone: pd.DataFrame | None = None, name: str | None = None, n_bins: int = 10,
                     **crossmatch) -> MembershipEvaluation:
    """Precision, recall, F1, Brier score and calibration of membership probabilities against a truth.

    Parameters
    ----------
    result_or_probability : MembershipResult, DataFrame with ``p_member``, or array (n,)
        One probability per cone row (a peer's scores too: HDBSCAN/fastMP probabilities of the same rows).
    truth : bool mask (n,), integer array of source_ids, or member table
        The published members (a member table is cross-matched with :func:`crossmatch_ids`: id, then
        position; keywords ``max_sep_arcsec`` etc. go there).
    p_min : float
        Members are the stars with p ≥ ``p_min`` (issue 15: 0.5).
    g_max : float or None
        Only stars with G < ``g_max`` [mag] are scored — every score, Brier and ECE included (issue 15: 18,
        where the published lists are complete). None: all stars.
    cone : DataFrame, optional
        The cone rows (``phot_g_mean_mag``, ``source_id``); taken from the result or frame when not given.
        Needed with an array of probabilities unless ``g_max`` is None and ``truth`` is a mask.
    name : str, optional
        Row label of :meth:`MembershipEvaluation.to_frame` (default: the cluster name).
    n_bins : int
        Equal-width bins of the reliability curve and the ECE.

    Returns
    -------
    MembershipEvaluation
        Brier and ECE over all scored stars (non-candidates at p = 0) and, separately, over the candidates.

    Raises
    ------
    MembershipInputError
        Probabilities outside [0, 1] or NaN, lengths that disagree, ``p_min`` outside (0, 1], a truth without
        any member among the scored stars, no cone where one is needed, no star with G < ``g_max``.
    """
    from ..diagnostics import brier_score, expected_calibration_error, reliability_curve

    p, cone, cand, default_name = _probabilities(result_or_probability, cone)
    name = default_name if name is None else str(name)
    if p.ndim != 1 or p.size == 0:
        raise MembershipInputError(f"probabilities must be a non-empty 1-D array, got shape {p.shape}")
    n = p.size
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        bad = np.flatnonzero(~np.isfinite(p) | (p < 0) | (p > 1))
        raise MembershipInputError(
            f"probabilities must be finite and in [0, 1]: {bad.size} are not (first: row {bad[0]}, p = {p[bad[0]]})")
    try:
        p_min = float(p_min)
    except (TypeError, ValueError):
        raise MembershipInputError(f"p_min must be a number in (0, 1], got {p_min!r}") from None
    if not 0 < p_min <= 1:
        raise MembershipInputError(f"p_min must lie in (0, 1], got {p_min}")
    if cone is not None and len(cone) != n:
        raise MembershipInputError(f"{n} probabilities for a cone of {len(cone)} rows")
    needs_cone = g_max is not None or not (isinstance(truth, np.ndarray) and truth.dtype == bool)
    if cone is None and needs_cone:
        raise MembershipInputError(
            "a cone (phot_g_mean_mag, source_id) is needed to apply g_max or match the truth; pass cone=... "
            "or a MembershipResult")
    if isinstance(truth, np.ndarray) and truth.dtype == bool and cone is None:
        if truth.shape != (n,):
            raise MembershipInputError(f"a truth mask must have one value per row ({n}), got shape {truth.shape}")
        t = truth.copy()
    else:
        t = truth_mask(cone, truth, **crossmatch)
    if cand is not None and cand.shape != (n,):
        raise MembershipInputError(f"the candidate mask has shape {cand.shape}, not ({n},)")
    if g_max is not None:
        g = cone["phot_g_mean_mag"].to_numpy(float)
        scored = np.isfinite(g) & (g < float(g_max))
        if not scored.any():
            raise MembershipInputError(f"no star of the cone has G < g_max = {g_max} mag")
    else:
        scored = np.ones(n, bool)
    ps, ts = p[scored], t[scored]
    if not ts.any():
        raise MembershipInputError(
            f"{name}: none of the {int(scored.sum())} scored stars is a published member (truth has "
            f"{int(t.sum())} in the cone): check the cross-match or g_max")
    tp, fp, fn, tn, precision, recall, f1 = _scores(ps >= p_min, ts)
    rows = []
    for thr in THRESHOLDS:
        _, _, _, _, pr, rc, ff = _scores(ps >= thr, ts)
        rows.append({"threshold": float(thr), "precision": pr, "recall": rc, "f1": ff,
                     "n_predicted": int(np.sum(ps >= thr))})
    brier, ece = brier_score(ps, ts), expected_calibration_error(ps, ts, n_bins=n_bins)
    rel = reliability_curve(ps, ts, n_bins=n_bins)
    rel_c, brier_c, ece_c, n_c, n_tc = None, float("nan"), float("nan"), -1, -1
    if cand is not None:
        cs = cand[scored]
        n_c, n_tc = int(cs.sum()), int((cs & ts).sum())
        if cs.any():
            brier_c = brier_score(ps[cs], ts[cs])
            ece_c = expected_calibration_error(ps[cs], ts[cs], n_bins=n_bins)
            rel_c = reliability_curve(ps[cs], ts[cs], n_bins=n_bins)
    return MembershipEvaluation(
        name=name, p_min=p_min, g_max=None if g_max is None else float(g_max), precision=precision, recall=recall,
        f1=f1, tp=tp, fp=fp, fn=fn, tn=tn, n_scored=int(scored.sum()), n_true=int(ts.sum()),
        n_predicted=int(np.sum(ps >= p_min)), brier=brier, ece=ece, brier_candidates=brier_c, ece_candidates=ece_c,
        n_candidates=n_c, n_true_candidates=n_tc, reliability=rel, reliability_candidates=rel_c,
        thresholds=pd.DataFrame(rows))


# ---------------------------------------------------------------------------------------------
# Sect. 4 statistics
# ---------------------------------------------------------------------------------------------
def miss_breakdown(result_or_prepared, truth, p_miss: float = 0.1, **crossmatch) -> pd.DataFrame:
    """Which published members are missed, and why (vG23 Sect. 4.1-4.2; spec A14).

    A published member (in the cone) is **missed** when it is not a candidate, or — given a
    :class:`MembershipResult` — a candidate with p < ``p_miss`` (paper: 0.1). With a prepared cluster only the
    non-candidates count as missed.

    Returns
    -------
    DataFrame, one row (index: cluster name): ``n_true`` (published members in the cone), ``n_missed``,
    ``missed_fraction`` (paper: 0.32), ``n_missed_candidates`` and ``candidate_share`` (share of the missed that
    were candidates; paper: 0.73), ``f_r_mean``, ``f_r_std`` [pc] of those (paper: 38.3, 3.1), ``n_not_candidates``
    and, among them, ``fail_pm``, ``fail_plx``, ``fail_cmd`` (fractions failing each test, eqs. 1-3; they
    overlap, so they need not add to 1; paper: 0.67, 0.27, 0.20).
    """
    if isinstance(result_or_prepared, MembershipResult):
        prepared, p = result_or_prepared.prepared, np.asarray(result_or_prepared.probability, float)
    else:
        prepared, p = result_or_prepared, None
    sel = getattr(prepared, "selection", None)
    if sel is None or not hasattr(prepared, "cone"):
        raise MembershipInputError(
            f"miss_breakdown needs a MembershipResult or a PreparedCluster, got {type(result_or_prepared).__name__}")
    if not 0 < p_miss <= 1:
        raise MembershipInputError(f"p_miss must lie in (0, 1], got {p_miss}")
    t = truth_mask(prepared.cone, truth, **crossmatch)
    cand = np.asarray(sel.is_candidate, bool)
    not_cand = t & ~cand
    low = t & cand & (p < p_miss) if p is not None else np.zeros_like(t)
    missed = not_cand | low
    n_true, n_missed = int(t.sum()), int(missed.sum())
    feats = np.asarray(getattr(prepared, "features", np.full((len(t), 5), np.nan)), float)
    f_r = feats[low, 0]

    def frac(mask_name):
        values = getattr(sel, mask_name, None)
        if values is None or not not_cand.any():
            return float("nan")
        return float(np.mean(~np.asarray(values, bool)[not_cand]))

    row = {
        "n_true": n_true, "n_missed": n_missed,
        "missed_fraction": n_missed / n_true if n_true else float("nan"),
        "n_missed_candidates": int(low.sum()),
        "candidate_share": float(low.sum() / n_missed) if n_missed else float("nan"),
        "f_r_mean": float(f_r.mean()) if f_r.size else float("nan"),
        "f_r_std": float(f_r.std(ddof=1)) if f_r.size > 1 else float("nan"),
        "n_not_candidates": int(not_cand.sum()),
        "fail_pm": frac("pass_pm"), "fail_plx": frac("pass_plx"), "fail_cmd": frac("pass_cmd"),
    }
    return pd.DataFrame([row], index=pd.Index([str(getattr(prepared, "name", "cluster"))], name="name"))


def faint_fraction(result: MembershipResult, p_min: float = 0.1, g_limit: float = 18.0) -> float:
    """Share of the p ≥ ``p_min`` members with G > ``g_limit`` (vG23 Sect. 4.1: median 43.5 %, 70-80 % nearby).

    NaN when no star has p ≥ ``p_min``, or when the cone does not reach beyond ``g_limit`` (e.g. the
    G < 18 Blanco 1 DR2 cone): the fraction would then be 0 by construction, not by the model.
    """
    if not isinstance(result, MembershipResult):
        raise MembershipInputError(f"faint_fraction needs a MembershipResult, got {type(result).__name__}")
    if not 0 < p_min <= 1:
        raise MembershipInputError(f"p_min must lie in (0, 1], got {p_min}")
    g = result.prepared.cone["phot_g_mean_mag"].to_numpy(float)
    members = np.asarray(result.probability) >= p_min
    if not members.any() or not np.nanmax(g) > g_limit:
        return float("nan")
    return float(np.mean(g[members] > g_limit))
