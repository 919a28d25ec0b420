"""The generic ANN-ensemble estimator: ``M`` networks trained at once as one batched Keras model.

:class:`ANNEnsemble` knows nothing of a particular paper: the labels and their prior bounds are
arguments (Cavallo et al. 2024 use log age, [Fe/H], A_V, dMod with the bounds of their Table 1:
:class:`ocnb.cmd_ann.ensemble.ANNEnsemble`). Each member ``m`` draws its own random subset of
the training pool (its own RNG ``[seed, m]``), split into train and validation; row ``b`` of a
training batch holds, for every member, a sample of that member's own subset, and the loss is the
sum over members of each member's MSE (:func:`~ocnb.ml.layers.member_sum_mse`), so every member
is trained exactly as if alone. Early stopping is per member (:class:`~ocnb.ml.training.PerMemberEarlyStopping`).

Labels are scaled to [0, 1] with their bounds before the MSE (otherwise the widest label
dominates) and mapped back after prediction. Inputs are used as given (``input_scaling="none"``)
or z-scored with statistics of the training pool (``"standard"``, stored with the model).

A fit shows a progress bar (epochs, loss, validation loss, ETA; :class:`~ocnb.ml.training.TrainingProgress`)
and is deterministic: the same seed, data and settings give the same weights
(:data:`~ocnb.ml.training.DETERMINISM_NOTE`). Models are saved through :mod:`ocnb.store`.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import warnings
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import store
from .layers import build_ensemble_model, extract_member, keras, member_param_count, member_sum_mse, ops
from .training import (
    MemberBatches,
    PerMemberEarlyStopping,
    TrainingProgress,
    deterministic,
    gather_members,
    quiet_retracing,
)

__all__ = ["ANNEnsemble", "EnsemblePrediction", "check_label_bounds"]

#: ``kind`` of an ensemble saved on its own through :mod:`ocnb.store`.
STORE_KIND = "ocnb.ml.ANNEnsemble"
STORE_KIND_VERSION = 1
#: ``format`` written into ``config.json``; the second one is that of ensembles saved before ocnb.ml.
CONFIG_FORMAT = "ocnb.ml.ANNEnsemble/1"
_READABLE_CONFIG_FORMATS = (CONFIG_FORMAT, "ocnb.cmd_ann.ensemble/1")


# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------
def _as_2d(a, name: str, n_cols: int | None = None, columns: Sequence[str] | None = None) -> np.ndarray:
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numeric: {err}") from None
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows x columns), got shape {arr.shape}")
    if n_cols is not None and arr.shape[1] != n_cols:
        raise ValueError(f"{name} must have {n_cols} columns, got {arr.shape[1]}")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows, cols = np.nonzero(bad)
        col = columns[cols[0]] if columns is not None else f"column {cols[0]}"
        raise ValueError(f"{name} contains NaN or inf values: {bad.any(axis=1).sum()} of {len(arr)} rows "
                         f"(first: row {rows[0]}, {col} = {arr[rows[0], cols[0]]})")
    return arr


def check_label_bounds(labels: Sequence[str], label_bounds: Mapping[str, Sequence[float]] | None
                       ) -> dict[str, tuple[float, float]]:
    """Validate ``{label: (low, high)}`` for every label; returns it as floats in label order."""
    labels = tuple(labels)
    if not labels:
        raise ValueError("labels must name at least one output")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must be unique, got {list(labels)}")
    if label_bounds is None:
        raise ValueError(f"label_bounds is required: (low, high) for each of {list(labels)}")
    missing = [lab for lab in labels if lab not in label_bounds]
    if missing:
        raise ValueError(f"label_bounds lacks {missing}")
    out = {}
    for lab in labels:
        try:
            lo, hi = (float(v) for v in label_bounds[lab])
        except (TypeError, ValueError):
            raise ValueError(f"label_bounds[{lab!r}] must be (low, high), got {label_bounds[lab]!r}") from None
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ValueError(f"label_bounds[{lab!r}] = ({lo}, {hi}) must be finite with low < high")
        out[lab] = (lo, hi)
    return out


# ---------------------------------------------------------------------------------------------
# Predictions
# ---------------------------------------------------------------------------------------------
@dataclass
class EnsemblePrediction:
    """Ensemble output in physical units.

    Attributes
    ----------
    members : ndarray (n, M, n_labels)
        Every member's prediction.
    labels : tuple of str, optional
        Label names (default ``y0, y1, ...``).
    bounds : dict label -> (low, high), optional
        Prior bounds, for the at-bound flag (no flag without them).
    index : pandas.Index, optional
        Row labels (e.g. cluster names) for the frames.
    margin : float
        Distance (label units) from a bound below which :attr:`at_bound` flags a prediction.
    """

    members: np.ndarray
    labels: tuple[str, ...] | None = None
    bounds: Mapping[str, tuple[float, float]] | None = None
    index: Any = None
    margin: float = 0.0

    def __post_init__(self):
        members = np.asarray(self.members, dtype=np.float64)
        if members.ndim != 3:
            raise ValueError(f"members must have shape (n, n_members, n_labels), got {members.shape}")
        self.members = members
        if self.labels is None:
            self.labels = tuple(f"y{i}" for i in range(members.shape[2]))
        self.labels = tuple(self.labels)
        if len(self.labels) != members.shape[2]:
            raise ValueError(f"{len(self.labels)} labels {list(self.labels)} for members with "
                             f"{members.shape[2]} outputs")

    def _frame(self, values):
        return pd.DataFrame(values, columns=list(self.labels), index=self.index)

    @property
    def n_members(self) -> int:
        return self.members.shape[1]

    @property
    def mean(self) -> pd.DataFrame:
        """Mean over members."""
        return self._frame(self.members.mean(axis=1))

    @property
    def std(self) -> pd.DataFrame:
        """Standard deviation over members (ddof=1; 0 for one member)."""
        ddof = 1 if self.n_members > 1 else 0
        return self._frame(self.members.std(axis=1, ddof=ddof))

    def quantile(self, q: float) -> pd.DataFrame:
        """``q``-th percentile (0-100) over members (linear interpolation, numpy default)."""
        return self._frame(np.percentile(self.members, q, axis=1))

    @property
    def percentiles(self) -> dict[int, pd.DataFrame]:
        """{16, 50, 84} -> DataFrame (n x labels)."""
        p = np.percentile(self.members, [16, 50, 84], axis=1)
        return {16: self._frame(p[0]), 50: self._frame(p[1]), 84: self._frame(p[2])}

    @property
    def point(self) -> pd.DataFrame:
        """Point estimate: the 50th percentile over members."""
        return self.quantile(50)

    @property
    def sigma(self) -> pd.DataFrame:
        """Symmetric error (p84 - p16) / 2."""
        p = self.percentiles
        return (p[84] - p[16]) / 2

    @property
    def at_bound(self) -> pd.DataFrame:
        """True where the 50th percentile lies within ``margin`` of a bound (or beyond it).

        Networks cannot predict outside what they learned: true values beyond the training
        bounds pile up at the edges. All False for labels without bounds.
        """
        p50 = self.quantile(50)
        flags = {}
        for lab in self.labels:
            v = p50[lab].to_numpy()
            if self.bounds is None or lab not in self.bounds:
                flags[lab] = np.zeros(len(v), dtype=bool)
                continue
            lo, hi = self.bounds[lab]
            flags[lab] = (v <= lo + self.margin) | (v >= hi - self.margin)
        return pd.DataFrame(flags, index=self.index)

    def to_frame(self) -> pd.DataFrame:
        """One row per input: ``{label}_16/_50/_84/_mean/_std/_at_bound`` and ``any_at_bound``."""
        p = self.percentiles
        mean, std, flag = self.mean, self.std, self.at_bound
        cols = {}
        for lab in self.labels:
            cols[f"{lab}_16"] = p[16][lab]
            cols[f"{lab}_50"] = p[50][lab]
            cols[f"{lab}_84"] = p[84][lab]
            cols[f"{lab}_mean"] = mean[lab]
            cols[f"{lab}_std"] = std[lab]
            cols[f"{lab}_at_bound"] = flag[lab]
        out = pd.DataFrame(cols, index=self.index)
        out["any_at_bound"] = flag.any(axis=1)
        return out

    def __len__(self):
        return self.members.shape[0]


# ---------------------------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------------------------
class ANNEnsemble:
    """Ensemble of ``M`` dense networks trained at once as one batched Keras model.

    Parameters
    ----------
    labels : sequence of str
        Output names, in the column order of ``y``.
    label_bounds : dict label -> (low, high)
        Prior bounds used to scale each label to [0, 1]; training labels must lie inside them.
    n_members : int
        Number of networks ``M``.
    subset_size : int or None
        Rows drawn (without replacement) for each member from the training pool; ``None`` uses
        the whole pool for every member (each in its own random split).
    val_fraction : float
        Part of each member's subset used for its validation / early stopping.
    hidden : sequence of int
        Hidden-layer widths.
    dropout, negative_slope : float
        Input dropout rate (training only) and LeakyReLU slope.
    learning_rate, batch_size, epochs, patience : training settings (Adam; per-member early stopping).
    input_scaling : {"none", "standard"}
        Inputs as given, or z-scored with the training pool's mean and std (stored with the model).
    seed : int
        Member ``k`` draws its subset with ``numpy.random.default_rng([seed, k])``; also seeds the
        initialisers, dropout and the backend (:func:`~ocnb.ml.training.deterministic`).

    Attributes (after ``fit``)
    --------------------------
    model_ : keras.Model
        The batched model (input ``(batch, M, n_in)``).
    history : list of dict
        Per member: ``loss`` (training MSE, scaled labels, dropout off, fixed subsample),
        ``val_loss``, ``test_loss`` (if ``X_val`` given), ``best_epoch``, ``stopped_epoch``.
    subsets_ : dict
        ``train``/``val`` row indices into the training pool, shape (M, k).
    fit_time_ : float
        Seconds spent in ``fit``.
    """

    #: Class of the objects :meth:`predict` returns.
    prediction_class = EnsemblePrediction
    #: Namespace of :meth:`load_or_fit`'s cache in ``data_home()/models``.
    store_namespace = "ml"

    def __init__(self, labels: Sequence[str], label_bounds: Mapping[str, Sequence[float]], n_members: int = 10,
                 subset_size: int | None = 10_000, val_fraction: float = 0.2, hidden: Sequence[int] = (500,) * 5,
                 dropout: float = 0.1, negative_slope: float = 0.3, learning_rate: float = 1e-3,
                 batch_size: int = 128, epochs: int = 200, patience: int = 20, input_scaling: str = "none",
                 seed: int = 0):
        if int(n_members) < 1:
            raise ValueError(f"n_members must be >= 1, got {n_members}")
        if not 0.0 < float(val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if input_scaling not in ("none", "standard"):
            raise ValueError(f"input_scaling must be 'none' or 'standard', not {input_scaling!r}")
        if subset_size is not None and int(subset_size) < 2:
            raise ValueError(f"subset_size must be >= 2 (or None for the whole pool), got {subset_size}")
        hidden = tuple(int(h) for h in hidden)
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden widths must be >= 1, got {hidden}")
        for name, value in (("batch_size", batch_size), ("epochs", epochs), ("patience", patience)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if not float(learning_rate) > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        self.n_members = int(n_members)
        self.subset_size = None if subset_size is None else int(subset_size)
        self.val_fraction = float(val_fraction)
        self.hidden = hidden
        self.dropout = float(dropout)
        self.negative_slope = float(negative_slope)
        self.learning_rate = float(learning_rate)
        self.batch_size = int(batch_size)
        self.epochs = int(epochs)
        self.patience = int(patience)
        self.labels = tuple(labels)
        self.label_bounds = check_label_bounds(self.labels, label_bounds)
        self.input_scaling = input_scaling
        self.seed = int(seed)
        self.model_ = None
        self.history: list[dict] = []
        self.subsets_: dict[str, np.ndarray] = {}
        self.n_inputs_ = None
        self.x_mean_ = None
        self.x_scale_ = None
        self.fit_time_ = None

    # -- configuration ----------------------------------------------------------------------
    def get_params(self) -> dict:
        return dict(n_members=self.n_members, subset_size=self.subset_size, val_fraction=self.val_fraction,
                    hidden=list(self.hidden), dropout=self.dropout, negative_slope=self.negative_slope,
                    learning_rate=self.learning_rate, batch_size=self.batch_size, epochs=self.epochs,
                    patience=self.patience, label_bounds={k: list(v) for k, v in self.label_bounds.items()},
                    labels=list(self.labels), input_scaling=self.input_scaling, seed=self.seed)

    def __repr__(self):
        state = "fitted" if self.model_ is not None else "unfitted"
        return (f"{type(self).__name__}(n_members={self.n_members}, subset_size={self.subset_size}, "
                f"hidden={self.hidden}, epochs={self.epochs}, {state})")

    @property
    def n_params(self) -> int:
        """Trainable parameters of the whole ensemble (M x per-member count)."""
        if self.model_ is not None:
            return int(sum(int(np.prod(w.shape)) for w in self.model_.trainable_weights))
        if self.n_inputs_ is None:
            raise AttributeError("n_params is known once the number of inputs is (fit or load first)")
        return self.n_members * member_param_count(self.n_inputs_, self.hidden, len(self.labels))

    @property
    def n_params_per_member(self) -> int:
        return self.n_params // self.n_members

    # -- scaling ----------------------------------------------------------------------------
    def _lo_span(self):
        lo = np.array([self.label_bounds[lab][0] for lab in self.labels])
        hi = np.array([self.label_bounds[lab][1] for lab in self.labels])
        return lo, hi - lo

    def scale_labels(self, y) -> np.ndarray:
        """Physical labels -> [0, 1] with the prior bounds."""
        lo, span = self._lo_span()
        return (np.asarray(y, dtype=np.float64) - lo) / span

    def unscale_labels(self, y01) -> np.ndarray:
        lo, span = self._lo_span()
        return np.asarray(y01, dtype=np.float64) * span + lo

    def _transform_inputs(self, X) -> np.ndarray:
        if np.ndim(X) == 1:  # one row
            X = np.asarray(X)[None, :]
        columns = list(X.columns) if isinstance(X, pd.DataFrame) else None
        X = _as_2d(X, "X", self.n_inputs_, columns)
        if self.input_scaling == "standard":
            X = (X - self.x_mean_) / self.x_scale_
        return X.astype(np.float32)

    def _y_array(self, y, n, check_bounds: bool = False):
        if isinstance(y, pd.DataFrame):
            missing = [lab for lab in self.labels if lab not in y.columns]
            if missing:
                raise ValueError(f"y lacks the label columns {missing} (it has {list(y.columns)})")
            y = y[list(self.labels)].to_numpy()
        y = _as_2d(y, "y", len(self.labels), self.labels)
        if len(y) != n:
            raise ValueError(f"X has {n} rows but y has {len(y)}")
        if check_bounds:
            lo, span = self._lo_span()
            tol = 1e-9 * span
            for j, lab in enumerate(self.labels):
                out = (y[:, j] < lo[j] - tol[j]) | (y[:, j] > lo[j] + span[j] + tol[j])
                if out.any():
                    i = int(np.flatnonzero(out)[0])
                    raise ValueError(
                        f"label {lab!r} lies outside its bounds {self.label_bounds[lab]} in {int(out.sum())} of "
                        f"{len(y)} rows (first: row {i}, {lab} = {y[i, j]}); the networks are trained on labels "
                        "scaled to [0, 1] by these bounds: widen label_bounds or drop those rows")
        return y

    # -- subsets ------------------------------------------------------------------------------
    def draw_subsets(self, n_pool: int) -> dict[str, np.ndarray]:
        """Member ``k``'s subset (without replacement, own RNG ``[seed, k]``) and its train/val split."""
        size = n_pool if self.subset_size is None else self.subset_size
        if size > n_pool:
            warnings.warn(f"subset_size {size} > pool of {n_pool} rows; every member uses the whole pool "
                          "(in a different random split)", RuntimeWarning, stacklevel=3)
            size = n_pool
        n_val = max(1, round(self.val_fraction * size))
        if size - n_val < 1:
            raise ValueError(f"a subset of {size} rows leaves no training rows (val_fraction {self.val_fraction})")
        train, val = [], []
        for k in range(self.n_members):
            rng = np.random.default_rng([self.seed, k])
            sub = rng.choice(n_pool, size=size, replace=False)  # random order
            val.append(sub[:n_val])
            train.append(sub[n_val:])
        return {"train": np.stack(train), "val": np.stack(val)}

    # -- training -----------------------------------------------------------------------------
    def fit(self, X, y, X_val=None, y_val=None, verbose: int = 0, callbacks: Sequence = (),
            progress: bool | None = None, deterministic_ops: bool = True) -> ANNEnsemble:
        """Train all members at once.

        Parameters
        ----------
        X : array (n, n_in) or DataFrame
            Training pool.
        y : array (n, n_labels) or DataFrame with the label columns
            True labels in physical units, inside ``label_bounds``.
        X_val, y_val : optional
            An independent held-out set (never used for training or stopping); each member's
            MSE on it is recorded per epoch as ``history[m]["test_loss"]``.
        verbose : int
            0 quiet, 1 Keras' own per-batch bar (instead of ours) plus one line per epoch,
            2 one line per epoch.
        progress : bool, optional
            Show the progress bar over epochs (loss, val-loss, ETA); default on unless
            ``OCNB_PROGRESS=0`` (or ``verbose=1``).
        deterministic_ops : bool
            Seed everything and use deterministic backend ops during the fit (default; see
            :func:`~ocnb.ml.training.deterministic`).

        Raises
        ------
        ValueError
            Wrong shapes, NaN/inf in ``X`` or ``y``, labels outside ``label_bounds``.
        """
        t0 = time.perf_counter()
        columns = list(X.columns) if isinstance(X, pd.DataFrame) else None
        X = _as_2d(X, "X", columns=columns)
        n, n_in = X.shape
        if n < 2:
            raise ValueError(f"X has {n} row(s); training needs at least 2")
        y = self._y_array(y, n, check_bounds=True)
        test = None
        if (X_val is None) != (y_val is None):
            raise ValueError("give both X_val and y_val, or neither")
        self.n_inputs_ = n_in
        if self.input_scaling == "standard":
            self.x_mean_ = X.mean(axis=0)
            sd = X.std(axis=0)
            self.x_scale_ = np.where(sd > 0, sd, 1.0)
        Xs = self._transform_inputs(X)
        ys = self.scale_labels(y).astype(np.float32)
        if X_val is not None:
            Xt = self._transform_inputs(X_val)
            yt = self.scale_labels(self._y_array(y_val, len(Xt)))
            test = (np.ascontiguousarray(np.broadcast_to(Xt[:, None, :], (len(Xt), self.n_members, n_in))), yt)
        self.subsets_ = self.draw_subsets(n)
        rows_tr, rows_va = self.subsets_["train"], self.subsets_["val"]

        show = (progress if progress is not None else True) and verbose != 1
        bar = TrainingProgress(self.epochs, desc=f"{type(self).__name__} ({self.n_members} members)",
                               disable=None if (show and progress is None) else not show)
        with deterministic(self.seed) if deterministic_ops else nullcontext():
            self.model_ = build_ensemble_model(self.n_members, n_in, self.hidden, self.dropout,
                                               self.negative_slope, len(self.labels), seed=self.seed)
            self.model_.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss=member_sum_mse)
            n_tr_eval = min(rows_tr.shape[1], 500)
            stopper = PerMemberEarlyStopping(
                gather_members(Xs, rows_va), gather_members(ys, rows_va).astype(np.float64), patience=self.patience,
                x_train=gather_members(Xs, rows_tr[:, :n_tr_eval]),
                y_train=gather_members(ys, rows_tr[:, :n_tr_eval]).astype(np.float64),
                x_test=None if test is None else test[0], y_test=None if test is None else test[1],
                verbose=verbose)
            data = MemberBatches(Xs, ys, rows_tr, self.batch_size, self.seed)
            try:
                self.model_.fit(data, epochs=self.epochs, callbacks=[stopper, bar, *callbacks],
                                verbose=1 if verbose == 1 else 0)
            finally:
                bar.close()
            stopper.restore()

        rec = stopper.records
        self.history = []
        for m in range(self.n_members):
            h = {key: [float(v[m]) for v in vals] for key, vals in rec.items() if vals}
            h["best_epoch"] = int(stopper.best_epoch[m])
            h["stopped_epoch"] = int(stopper.stopped_epoch[m]) if stopper.stopped[m] else None
            self.history.append(h)
        self.fit_time_ = time.perf_counter() - t0
        return self

    def history_frame(self) -> pd.DataFrame:
        """Long table: member, epoch, loss, val_loss (and test_loss)."""
        frames = []
        for m, h in enumerate(self.history):
            cols = {k: v for k, v in h.items() if isinstance(v, list)}
            f = pd.DataFrame(cols)
            f.insert(0, "epoch", np.arange(1, len(f) + 1))
            f.insert(0, "member", m)
            frames.append(f)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    # -- prediction ---------------------------------------------------------------------------
    def _check_fitted(self):
        if self.model_ is None:
            raise RuntimeError(f"this {type(self).__name__} is not fitted; call fit() or {type(self).__name__}.load()")

    def predict_scaled(self, X, chunk_bytes: int = 64 << 20) -> np.ndarray:
        """All members' predictions in scaled [0, 1] label units, shape (n, M, n_labels)."""
        self._check_fitted()
        Xs = self._transform_inputs(X)
        n, n_in = Xs.shape
        chunk = max(1, int(chunk_bytes // (4 * self.n_members * n_in)))
        out = []
        with quiet_retracing():
            for s in range(0, n, chunk):
                part = Xs[s:s + chunk]
                xb = np.ascontiguousarray(np.broadcast_to(part[:, None, :], (len(part), self.n_members, n_in)))
                out.append(np.asarray(ops.convert_to_numpy(self.model_.predict_on_batch(xb)), dtype=np.float64))
        return np.concatenate(out, axis=0) if out else np.zeros((0, self.n_members, len(self.labels)))

    def predict(self, X, index=None) -> EnsemblePrediction:
        """Predict every member; returns an :class:`EnsemblePrediction` in physical units.

        ``X`` may be a DataFrame; its index is then carried into the result frames.
        """
        if index is None and isinstance(X, pd.DataFrame):
            index = X.index
        members = self.unscale_labels(self.predict_scaled(X))
        return self.prediction_class(members, self.labels, dict(self.label_bounds), index=index)

    def member_model(self, member: int) -> keras.Model:
        """Member ``member`` as a stand-alone Keras model (inputs after ``input_scaling``, labels in [0, 1])."""
        self._check_fitted()
        return extract_member(self.model_, member, self.dropout, self.negative_slope)

    # -- persistence --------------------------------------------------------------------------
    def to_files(self) -> dict[str, bytes]:
        """The fitted ensemble as files: ``weights.npz``, ``subsets.npz``, ``config.json``, ``history.json``."""
        self._check_fitted()
        weights = {f"w{i:03d}": w.numpy() for i, w in enumerate(self.model_.weights)}
        if self.input_scaling == "standard":
            weights["x_mean"] = np.asarray(self.x_mean_)
            weights["x_scale"] = np.asarray(self.x_scale_)
        return {
            "weights.npz": _npz_bytes(weights),
            "subsets.npz": _npz_bytes({k: v.astype(np.int32) for k, v in self.subsets_.items()}),
            "config.json": json.dumps({
                "format": CONFIG_FORMAT, "class": f"{type(self).__module__}.{type(self).__qualname__}",
                "params": self.get_params(), "n_inputs": int(self.n_inputs_),
                "weight_names": [w.path for w in self.model_.weights], "keras": keras.__version__,
                "backend_saved_with": keras.backend.backend(), "fit_time_s": self.fit_time_,
            }, indent=1).encode(),
            "history.json": json.dumps(self.history).encode(),
        }

    @classmethod
    def from_bundle(cls, bundle: store.Bundle) -> ANNEnsemble:
        """Rebuild an ensemble from the verified files of a bundle (see :meth:`to_files`)."""
        config = bundle.json("config.json")
        if not isinstance(config, dict) or config.get("format") not in _READABLE_CONFIG_FORMATS:
            got = config.get("format") if isinstance(config, dict) else config
            raise store.BundleError(f"model bundle {bundle.folder}: config.json has format {got!r}, expected one "
                                    f"of {_READABLE_CONFIG_FORMATS}", bundle.folder, "outdated")
        try:
            params = dict(config["params"])
            params["label_bounds"] = {k: tuple(v) for k, v in params["label_bounds"].items()}
            est = cls(**params)
            est.n_inputs_ = int(config["n_inputs"])
        except (KeyError, TypeError, ValueError) as err:
            raise store.BundleError(f"model bundle {bundle.folder}: config.json is unusable ({err})", bundle.folder,
                                    "corrupt") from None
        est.model_ = build_ensemble_model(est.n_members, est.n_inputs_, est.hidden, est.dropout,
                                          est.negative_slope, len(est.labels))
        z = bundle.arrays("weights.npz")
        n_w = len(est.model_.weights)
        names = [f"w{i:03d}" for i in range(n_w)]
        extra = sorted(k for k in z if k.startswith("w") and k not in names)
        if any(k not in z for k in names) or extra:
            raise store.BundleError(f"model bundle {bundle.folder} is mixed: weights.npz holds "
                                    f"{sum(k.startswith('w') for k in z)} weight arrays, config.json describes "
                                    f"{n_w}", bundle.folder, "mixed")
        arrays = [z[k] for k in names]
        for w, a in zip(est.model_.weights, arrays, strict=True):
            if tuple(w.shape) != a.shape:
                raise store.BundleError(f"model bundle {bundle.folder} is mixed: weight {w.path} has shape "
                                        f"{a.shape} in weights.npz, config.json implies {tuple(w.shape)}",
                                        bundle.folder, "mixed")
        if est.input_scaling == "standard":
            if "x_mean" not in z or "x_scale" not in z:
                raise store.BundleError(f"model bundle {bundle.folder}: weights.npz lacks the input scaler",
                                        bundle.folder, "partial")
            est.x_mean_, est.x_scale_ = z["x_mean"], z["x_scale"]
        est.model_.set_weights(arrays)
        est.subsets_ = {k: v.astype(np.int64) for k, v in bundle.arrays("subsets.npz").items()}
        est.history = bundle.json("history.json")
        est.fit_time_ = config.get("fit_time_s")
        return est

    def save(self, path) -> Path:
        """Save to the folder ``path`` through :mod:`ocnb.store` (new version, checksummed, crash-safe)."""
        path = Path(path)
        store.save_bundle(path, self.to_files(), kind=STORE_KIND, kind_version=STORE_KIND_VERSION,
                          meta={"class": type(self).__name__, "n_members": self.n_members,
                                "labels": list(self.labels), "n_inputs": int(self.n_inputs_)})
        return path

    @staticmethod
    def verify(path) -> dict:
        """Check every file of a saved ensemble against its recorded SHA-256; return the manifest.

        Raises
        ------
        FileNotFoundError
            (:class:`ocnb.store.BundleNotFoundError`) no saved ensemble at ``path``.
        CorruptCacheError
            (:class:`ocnb.store.BundleError`) a file is missing, altered, truncated or from another save.
        """
        return store.load_bundle(path).manifest

    @classmethod
    def load(cls, path) -> ANNEnsemble:
        """Load a folder written by :meth:`save` (or by ocnb before the store), after verifying every file."""
        bundle = store.load_bundle(path)
        if not bundle.legacy and bundle.kind != STORE_KIND:
            raise store.BundleError(f"model bundle {path} holds {bundle.kind!r}, not an ANN ensemble",
                                    bundle.folder, "outdated")
        return cls.from_bundle(bundle)

    @classmethod
    def cache_folder(cls, name: str, key: str) -> Path:
        return store.ModelStore(cls.store_namespace).path(f"{name}-{key}")

    @classmethod
    def load_or_fit(cls, X, y, name: str, X_val=None, y_val=None, refit: bool = False, verbose: int = 0,
                    progress: bool | None = None, **params) -> ANNEnsemble:
        """Reload a cached ensemble from the data home, or train and cache it.

        The folder is ``data_home()/models/<store_namespace>/<name>-<key>`` where ``key`` hashes
        the parameters and the training arrays, so changed data or settings never reuse a stale
        model. A partial, mixed or corrupted cache is reported, deleted and retrained (never used).
        """
        est = cls(**params)
        h = hashlib.sha256()
        h.update(json.dumps(est.get_params(), sort_keys=True).encode())
        h.update(np.ascontiguousarray(np.asarray(X, dtype=np.float64)).tobytes())
        yy = y[list(est.labels)].to_numpy() if isinstance(y, pd.DataFrame) else y
        h.update(np.ascontiguousarray(np.asarray(yy, dtype=np.float64)).tobytes())
        folder = cls.cache_folder(name, h.hexdigest()[:16])

        def build():
            return est.fit(X, y, X_val=X_val, y_val=y_val, verbose=verbose, progress=progress)

        return store.load_or_build(folder, build, cls.load, lambda obj, path: obj.save(path), refit=refit,
                                   what="cached ANN ensemble")


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()

