"""The Deep Sets membership classifier of van Groeningen et al. (2023), in Keras 3 (any backend).

One instance is a set of ``N_s = 10`` rows of 13 normalised values (vG23 Sect. 3.2, spec A8): the 5 features
of the source to classify, the 3 cluster features and the 5 features of one support member (a known
member of the cluster). The network (vG23 App. A, spec A9) is::

    x (B, 10, 13)
    5 x  h <- ELU( Dense_Γ(h) − Dense_Λ(mean over the set of h) )      Λ without bias; widths 13→64, 64→64
    z = mean over the set of h                                          (B, 64), permutation invariant
    z -> Dropout(0.5) -> Dense(64) -> ELU -> Dropout(0.5) -> Dense(2)   logits [non-member, member]

(the paper's App. A omits the head's hidden Dense + ELU and its second dropout; the authors' code has them).
Weights start as PyTorch's ``Linear`` does (kernel and bias uniform in ±1/sqrt(fan_in)), so that training
here starts from the same distribution as theirs.

Training (vG23 Sect. 3.3, spec A10): categorical cross-entropy from logits **summed** over the batch with class
weights 1 (non-member) : 5 (member) as sample weights, L2 5e-6 on every kernel and bias (≡ PyTorch's coupled
``weight_decay = 1e-5``), Adam (β 0.9/0.999, ε 1e-8) with the global gradient norm clipped to 5, batches of
32 reshuffled every epoch, at most 200 epochs; early stopping on the validation F1 (p_member > 0.5): the
weights are kept whenever the F1 is strictly better than the best so far, training stops after 20 epochs
without improvement and the best weights are restored. Two remaining differences from PyTorch, both
negligible: Keras' Adam adds ε to sqrt(v̂·(1−β₂ᵗ)) rather than to sqrt(v̂) in the first steps, and the clip
applies to the gradient including the L2 term.

:class:`DeepSetsMembership` wraps it as an estimator: :meth:`~DeepSetsMembership.fit` on prepared clusters
(or :meth:`~DeepSetsMembership.fit_arrays` on ready (N, 10, 13) arrays), :meth:`~DeepSetsMembership.predict_logits`,
:meth:`~DeepSetsMembership.predict_proba` (membership probabilities from error draws, Sect. 3.4, via
:func:`ocnb.membership.probability.membership_probability`), :meth:`~DeepSetsMembership.save` /
:meth:`~DeepSetsMembership.load` through :mod:`ocnb.store`, :meth:`~DeepSetsMembership.calibrate` (the isotonic
map of the vote fractions fitted on held-out clusters, :mod:`ocnb.membership.calibration`), and
:meth:`~DeepSetsMembership.pretrained`: the authors' released DS10_v02 / DS10_v01 weights
(:mod:`ocnb.membership.pretrained`).

Keras is imported on first use, not when this module is imported.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from .. import store

__all__ = [
    "DeepSetsMembership",
    "build_deepsets_model",
    "classification_metrics",
    "N_FEATURES",
    "STORE_KIND",
    "STORE_NAMESPACE",
]

#: Values per row of an instance: 5 source + 3 cluster + 5 support-member features (spec A8).
N_FEATURES = 13
#: ``kind`` of a saved model in :mod:`ocnb.store` and the layout version this module reads.
STORE_KIND = "ocnb.membership.DeepSetsMembership"
STORE_KIND_VERSION = 1
#: Models saved by name live in ``data_home()/models/<STORE_NAMESPACE>/<name>/``.
STORE_NAMESPACE = "membership"
CONFIG_FORMAT = "ocnb.membership.DeepSetsMembership/1"
_NEGATIVES = ("non_members", "field")


# ---------------------------------------------------------------------------------------------
# Metrics (numpy; spec A10: "metrics computed with p_member > 0.5")
# ---------------------------------------------------------------------------------------------
def classification_metrics(y_true, p_member, threshold: float = 0.5) -> dict[str, float]:
    """Binary classification metrics of member scores against 0/1 labels.

    Parameters
    ----------
    y_true : array (n,) of {0, 1}
        1 = member.
    p_member : array (n,)
        Member probability (softmax of the logits); a source is called a member when ``p > threshold``.

    Returns
    -------
    dict
        ``f1`` = 2TP/(2TP+FP+FN), ``precision`` TP/(TP+FP), ``recall`` TP/(TP+FN), ``selectivity``
        TN/(TN+FP), ``accuracy``, ``balanced_accuracy`` = (recall + selectivity)/2, and the counts ``tp``,
        ``fp``, ``tn``, ``fn``. A ratio whose denominator is 0 is reported as 0.
    """
    y = np.asarray(y_true).astype(bool).ravel()
    pred = np.asarray(p_member, dtype=np.float64).ravel() > threshold
    if y.shape != pred.shape:
        raise ValueError(f"y_true has {y.size} values, p_member {pred.size}")
    tp = int(np.sum(y & pred))
    fp = int(np.sum(~y & pred))
    tn = int(np.sum(~y & ~pred))
    fn = int(np.sum(y & ~pred))

    def ratio(a, b):
        return float(a / b) if b > 0 else 0.0

    recall, selectivity = ratio(tp, tp + fn), ratio(tn, tn + fp)
    return {"f1": ratio(2 * tp, 2 * tp + fp + fn), "precision": ratio(tp, tp + fp), "recall": recall,
            "selectivity": selectivity, "accuracy": ratio(tp + tn, tp + tn + fp + fn),
            "balanced_accuracy": 0.5 * (recall + selectivity), "tp": tp, "fp": fp, "tn": tn, "fn": fn}


def _softmax_member(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e[:, 1] / e.sum(axis=1)


# ---------------------------------------------------------------------------------------------
# Keras pieces (defined on first use so that importing this module does not import Keras)
# ---------------------------------------------------------------------------------------------
@functools.cache
def _keras_parts() -> dict[str, Any]:
    from ..ml.layers import keras, ops  # checks $KERAS_BACKEND with a clear message

    def torch_like(fan_in: int, seed: int | None, kind: str):
        # PyTorch Linear: kaiming_uniform(a=sqrt(5)) -> U(±1/sqrt(fan_in)) for the kernel, same bound for the bias
        if kind == "kernel":
            return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform", seed=seed)
        bound = 1.0 / math.sqrt(fan_in)
        return keras.initializers.RandomUniform(-bound, bound, seed=seed)

    @keras.saving.register_keras_serializable(package="ocnb.membership")
    class PermutationEquivariantMean(keras.layers.Layer):
        """``h -> h Γ + b − mean_set(h) Λ`` on ``(batch, set, features)`` (vG23 App. A; Zaheer+2017 eq. 4).

        Γ ``(in, units)`` with bias, Λ ``(in, units)`` without; L2 ``l2`` on Γ, b and Λ.
        """

        def __init__(self, units: int, l2: float = 5e-6, seed: int | None = None, **kwargs):
            super().__init__(**kwargs)
            self.units, self.l2, self.seed = int(units), float(l2), seed

        def build(self, input_shape):
            n_in = int(input_shape[-1])
            reg = keras.regularizers.L2(self.l2) if self.l2 > 0 else None
            s = self.seed

            def sub(k):
                return None if s is None else s + k

            self.gamma_kernel = self.add_weight(shape=(n_in, self.units), name="gamma_kernel",
                                                initializer=torch_like(n_in, sub(0), "kernel"), regularizer=reg)
            self.gamma_bias = self.add_weight(shape=(self.units,), name="gamma_bias",
                                              initializer=torch_like(n_in, sub(1), "bias"), regularizer=reg)
            self.lambda_kernel = self.add_weight(shape=(n_in, self.units), name="lambda_kernel",
                                                 initializer=torch_like(n_in, sub(2), "kernel"), regularizer=reg)

        def call(self, h):
            pooled = ops.mean(h, axis=1, keepdims=True)
            return ops.matmul(h, self.gamma_kernel) + self.gamma_bias - ops.matmul(pooled, self.lambda_kernel)

        def compute_output_shape(self, input_shape):
            return (*input_shape[:-1], self.units)

        def get_config(self):
            return {**super().get_config(), "units": self.units, "l2": self.l2, "seed": self.seed}

    class F1EarlyStopping(keras.callbacks.Callback):
        """Early stopping on the validation F1 (spec A10): keep weights when strictly better, patience, restore."""

        def __init__(self, x_val, y_val, sample_weight, patience: int, batch_size: int, predict):
            super().__init__()
            self.x_val, self.y_val, self.w_val = x_val, y_val, sample_weight
            self.patience, self.batch_size, self.predict = int(patience), int(batch_size), predict

        def on_train_begin(self, logs=None):
            self.best, self.best_epoch, self.wait = -np.inf, -1, 0
            self.best_weights, self.stopped_epoch = None, None
            self.records: dict[str, list] = {"loss": [], "val_loss": []}

        def on_epoch_end(self, epoch, logs=None):
            logits = self.predict(self.model, self.x_val)
            m = classification_metrics(self.y_val, _softmax_member(logits))
            # class-weighted cross-entropy per instance x batch size (comparable with Keras' summed batch loss)
            z = logits - logits.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            ce = -logp[np.arange(len(self.y_val)), self.y_val]
            val_loss = float(np.mean(self.w_val * ce) * self.batch_size)
            self.records["loss"].append(float(logs["loss"]) if logs and "loss" in logs else float("nan"))
            self.records["val_loss"].append(val_loss)
            for key in ("f1", "precision", "recall", "selectivity", "accuracy", "balanced_accuracy"):
                self.records.setdefault(f"val_{key}", []).append(m[key])
            if m["f1"] > self.best:  # strictly better (vG23 code): ties keep the earlier epoch
                self.best, self.best_epoch, self.wait = m["f1"], epoch, 0
                self.best_weights = [np.array(w) for w in self.model.get_weights()]
            else:
                self.wait += 1
                if self.wait >= self.patience:
                    self.stopped_epoch = epoch
                    self.model.stop_training = True
            if logs is not None:  # for the progress bar
                logs["val_loss"], logs["val_f1"], logs["best_f1"] = val_loss, m["f1"], self.best

        def restore(self):
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    class ShuffledBatches(keras.utils.PyDataset):
        """Batches ``(x, one-hot y, sample weight)`` in a new seeded random order every epoch (no worker threads,
        no tf.data pipeline: same seed -> same batches on every backend)."""

        def __init__(self, X, Y, weights, batch_size: int, seed: int):
            super().__init__()
            self.X, self.Y, self.w, self.batch_size = X, Y, weights, int(batch_size)
            self._rng = np.random.default_rng([int(seed), 3331])
            self._order = self._rng.permutation(len(X))

        def __len__(self):
            return math.ceil(len(self.X) / self.batch_size)

        def on_epoch_end(self):
            self._order = self._rng.permutation(len(self.X))

        def __getitem__(self, i):
            sel = np.sort(self._order[i * self.batch_size:(i + 1) * self.batch_size])
            return self.X[sel], self.Y[sel], self.w[sel]

    from ..ml.training import TrainingProgress

    class F1Progress(TrainingProgress):
        """The ocnb training bar (epochs, ETA) showing loss, validation F1 and the best F1 so far."""

        def on_epoch_end(self, epoch, logs=None):
            bar = self._open()
            logs = logs or {}
            post = {}
            if logs.get("loss") is not None:
                post["loss"] = f"{float(logs['loss']):.4g}"
            for key in ("val_f1", "best_f1"):
                if logs.get(key) is not None:
                    post[key] = f"{float(logs[key]):.4f}"
            bar.set_postfix(post, refresh=False)
            bar.update(1)

    return {"keras": keras, "ops": ops, "torch_like": torch_like, "PEL": PermutationEquivariantMean,
            "F1EarlyStopping": F1EarlyStopping, "F1Progress": F1Progress, "ShuffledBatches": ShuffledBatches}


def build_deepsets_model(n_support: int = 10, hidden: int = 64, n_blocks: int = 5, dropout: float = 0.5,
                         l2: float = 5e-6, n_features: int = N_FEATURES, seed: int | None = None):
    """The Keras model of vG23 App. A (spec A9): ``(B, n_support, n_features)`` normalised -> ``(B, 2)`` logits.

    Layers, in weight order: ``pel_0`` … ``pel_{n_blocks-1}`` (Γ kernel, Γ bias, Λ kernel each), ``head_hidden``
    (kernel, bias), ``logits`` (kernel, bias). Dropout is active only in training. ``seed`` fixes the
    initial weights and the dropout masks.
    """
    parts = _keras_parts()
    keras = parts["keras"]
    torch_like = parts["torch_like"]
    reg = keras.regularizers.L2(l2) if l2 > 0 else None

    def sub(k):
        return None if seed is None else int(seed) * 100 + k

    x = inputs = keras.Input(shape=(int(n_support), int(n_features)), name="instances")
    for b in range(int(n_blocks)):
        x = parts["PEL"](int(hidden), l2=l2, seed=sub(10 * b), name=f"pel_{b}")(x)
        x = keras.layers.ELU(name=f"elu_{b}")(x)
    z = keras.layers.GlobalAveragePooling1D(name="set_mean")(x)
    z = keras.layers.Dropout(dropout, seed=sub(90), name="head_dropout_1")(z)
    z = keras.layers.Dense(int(hidden), kernel_initializer=torch_like(hidden, sub(91), "kernel"),
                           bias_initializer=torch_like(hidden, sub(92), "bias"), kernel_regularizer=reg,
                           bias_regularizer=reg, name="head_hidden")(z)
    z = keras.layers.ELU(name="head_elu")(z)
    z = keras.layers.Dropout(dropout, seed=sub(93), name="head_dropout_2")(z)
    out = keras.layers.Dense(2, kernel_initializer=torch_like(hidden, sub(94), "kernel"),
                             bias_initializer=torch_like(hidden, sub(95), "bias"), kernel_regularizer=reg,
                             bias_regularizer=reg, name="logits")(z)
    return keras.Model(inputs, out, name="deepsets_membership")


# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------
def _check_instances(X, name: str, n_support: int) -> np.ndarray:
    try:
        arr = np.asarray(X, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array of shape (batch, {n_support}, {N_FEATURES}): {err}") from None
    if arr.ndim != 3 or arr.shape[1:] != (n_support, N_FEATURES):
        raise ValueError(f"{name} must have shape (batch, {n_support}, {N_FEATURES}) (instances x support-set "
                         f"rows x [5 source, 3 cluster, 5 support-member features]), got {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=(1, 2)))
        raise ValueError(f"{name} contains NaN or inf in {len(rows)} of {len(arr)} instances (first: instance "
                         f"{rows[0]}); normalise finite features only")
    return arr


def _check_labels(y, n: int, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"{name} must be a 1-D array of {n} labels (0 = non-member, 1 = member), got shape "
                         f"{arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.number) or not np.isin(arr, (0, 1)).all():
        bad = arr[~np.isin(arr, (0, 1))] if np.issubdtype(arr.dtype, np.number) else arr[:1]
        raise ValueError(f"{name} must hold only 0 (non-member) and 1 (member), found {bad[:3].tolist()}")
    return arr.astype(np.int64)


def _is_store_name(target) -> bool:
    return isinstance(target, str) and "/" not in target and os.sep not in target and not target.startswith(".")


# ---------------------------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------------------------
class DeepSetsMembership:
    """Deep Sets cluster-membership classifier (vG23 Sect. 3, App. A; spec A8–A10).

    Parameters
    ----------
    n_support : int
        Support-set size N_s (rows per instance).
    hidden : int
        Width of every permutation-equivariant block and of the head's hidden layer.
    n_blocks : int
        Number of permutation-equivariant blocks.
    dropout : float
        Dropout rate of the two head dropouts (training only).
    l2 : float
        L2 factor γ on every kernel and bias (loss += γ Σ w²); 5e-6 ≡ PyTorch ``weight_decay = 1e-5``.
    learning_rate : float
        Adam step (vG23 v0.2: 1e-6 over up to 200 epochs; v0.1: 1e-5 over 100). Use ~1e-3 for quick
        (FAST-mode) fits of a few epochs.
    batch_size, epochs, patience : int
        Batch size (reshuffled every epoch), maximum epochs, epochs without a better validation F1
        before stopping.
    class_weight : (float, float)
        Sample weights of (non-member, member) in the summed cross-entropy (vG23: 1, 5).
    negatives : {"non_members", "field"}
        Which sources are negatives when :meth:`fit` builds the training sets (see
        :func:`ocnb.membership.features.build_training_set`).
    seed : int
        Seeds the initial weights, dropout, the batch order and the training-set draws; same seed,
        data and settings give the same model (:func:`ocnb.ml.training.deterministic`).

    Attributes (after :meth:`fit`, :meth:`load` or :meth:`pretrained`)
    -------------------------------------------------------------------
    model_ : keras.Model
        ``(B, n_support, 13)`` normalised instances -> ``(B, 2)`` logits.
    scaler_ : FeatureScaler or None
        The feature normalisation the model was trained with (None after :meth:`fit_arrays`).
    history : dict
        Per epoch (lists): ``loss`` (Keras' training loss: summed class-weighted cross-entropy of a batch
        + L2, averaged over the epoch's batches), ``val_loss`` (the same cross-entropy on the validation
        set, per instance x batch_size, no L2), ``val_f1``, ``val_precision``, ``val_recall``,
        ``val_selectivity``, ``val_accuracy``, ``val_balanced_accuracy``; and ``best_epoch`` (1-based, the
        restored one), ``best_val_f1``, ``stopped_epoch`` (1-based, None if all epochs ran), ``epochs_run``,
        ``n_train``, ``n_val``, ``fit_time_s``.
    clusters_ : dict
        ``{"train": [...], "validation": [...]}`` cluster names.
    origin_ : str
        ``"trained"`` or the released model a :meth:`pretrained` instance came from.
    calibration_ : ProbabilityCalibration or None
        The isotonic map of vote fractions fitted by :meth:`calibrate` on held-out clusters (an ocnb
        addition; :mod:`ocnb.membership.calibration`), applied by :meth:`predict_proba`; None until then.
    """

    def __init__(self, n_support: int = 10, hidden: int = 64, n_blocks: int = 5, dropout: float = 0.5,
                 l2: float = 5e-6, learning_rate: float = 1e-6, batch_size: int = 32, epochs: int = 200,
                 patience: int = 20, class_weight: Sequence[float] = (1, 5), negatives: str = "non_members",
                 seed: int = 42):
        for pname, value in (("n_support", n_support), ("hidden", hidden), ("n_blocks", n_blocks),
                             ("batch_size", batch_size), ("epochs", epochs), ("patience", patience)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
                raise ValueError(f"{pname} must be an integer >= 1, got {value!r}")
        if not (isinstance(dropout, (int, float)) and 0.0 <= float(dropout) < 1.0):
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if not (isinstance(l2, (int, float)) and np.isfinite(l2) and float(l2) >= 0.0):
            raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
        if not (isinstance(learning_rate, (int, float)) and np.isfinite(learning_rate) and learning_rate > 0):
            raise ValueError(f"learning_rate must be a finite number > 0, got {learning_rate!r}")
        try:
            if isinstance(class_weight, (str, bytes)):
                raise TypeError("a string")
            cw = tuple(float(c) for c in class_weight)
        except (TypeError, ValueError):
            raise ValueError(f"class_weight must be two numbers (non-member, member), got {class_weight!r}") from None
        if len(cw) != 2 or not all(np.isfinite(c) and c > 0 for c in cw):
            raise ValueError(f"class_weight must be two finite positive numbers (non-member, member), got "
                             f"{class_weight!r}")
        if negatives not in _NEGATIVES:
            raise ValueError(f"negatives must be one of {_NEGATIVES}, not {negatives!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**32:
            raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
        self.n_support, self.hidden, self.n_blocks = int(n_support), int(hidden), int(n_blocks)
        self.dropout, self.l2, self.learning_rate = float(dropout), float(l2), float(learning_rate)
        self.batch_size, self.epochs, self.patience = int(batch_size), int(epochs), int(patience)
        self.class_weight = cw
        self.negatives = negatives
        self.seed = int(seed)
        self.model_ = None
        self.scaler_ = None
        self.history: dict[str, Any] = {}
        self.clusters_: dict[str, list[str]] = {"train": [], "validation": []}
        self.origin_ = "untrained"
        self.calibration_ = None

    # -- configuration ----------------------------------------------------------------------
    def get_params(self) -> dict:
        return dict(n_support=self.n_support, hidden=self.hidden, n_blocks=self.n_blocks, dropout=self.dropout,
                    l2=self.l2, learning_rate=self.learning_rate, batch_size=self.batch_size, epochs=self.epochs,
                    patience=self.patience, class_weight=list(self.class_weight), negatives=self.negatives,
                    seed=self.seed)

    def __repr__(self) -> str:
        state = "unfitted" if self.model_ is None else self.origin_
        return (f"DeepSetsMembership(n_support={self.n_support}, hidden={self.hidden}, n_blocks={self.n_blocks}, "
                f"lr={self.learning_rate:g}, epochs={self.epochs}, {state})")

    def build_model(self, seed: int | None = None):
        """A fresh, untrained Keras model with this estimator's architecture."""
        return build_deepsets_model(self.n_support, self.hidden, self.n_blocks, self.dropout, self.l2,
                                    seed=self.seed if seed is None else seed)

    @property
    def label(self) -> str:
        """Short description of where the weights come from (shown in results and member tables)."""
        if self.origin_.startswith("pretrained"):
            return self.origin_.split(" (")[0]
        n = len(self.clusters_.get("train", [])) + len(self.clusters_.get("validation", []))
        return f"{self.origin_} on {n} clusters" if n else self.origin_

    @property
    def n_params(self) -> int:
        """Trainable parameters (39 042 for the default architecture)."""
        n_in, h = N_FEATURES, self.hidden
        first = 2 * n_in * h + h
        return first + (self.n_blocks - 1) * (2 * h * h + h) + (h * h + h) + (2 * h + 2)

    # -- training -----------------------------------------------------------------------------
    def fit(self, train: Sequence, validation: Sequence, progress: bool | None = None, verbose: int = 0,
            callbacks: Sequence = ()) -> DeepSetsMembership:
        """Train on prepared clusters, with early stopping on the validation clusters (vG23 Sect. 3.2–3.3).

        The feature scaler is built from ``train + validation``
        (:meth:`ocnb.membership.features.FeatureScaler.from_clusters`, spec A7), the instances with
        :func:`ocnb.membership.features.build_training_set` (spec A8; support sets drawn once, seeded), then
        :meth:`fit_arrays` trains.

        Parameters
        ----------
        train, validation : list of PreparedCluster
            Disjoint lists of clusters (the split is by cluster).
        progress : bool, optional
            Show the progress bar (default on unless ``OCNB_PROGRESS=0``).
        verbose, callbacks
            Passed to :meth:`fit_arrays`.

        Raises
        ------
        ValueError
            An empty list, a cluster in both lists, an object that is not a prepared cluster.
        """
        train, validation = list(train), list(validation)
        if not train or not validation:
            raise ValueError(f"fit needs at least one training and one validation cluster (got {len(train)} and "
                             f"{len(validation)}); the validation clusters drive early stopping")
        for group, items in (("train", train), ("validation", validation)):
            for item in items:
                if not hasattr(item, "features") or not hasattr(item, "cluster_features"):
                    raise ValueError(f"{group} must hold PreparedCluster objects (from prepare_cluster), got "
                                     f"{type(item).__name__}")
        names_t, names_v = [c.name for c in train], [c.name for c in validation]
        both = sorted(set(names_t) & set(names_v))
        if both:
            raise ValueError(f"clusters {both} are in both train and validation; split by cluster")
        from .features import FeatureScaler, build_training_set

        scaler = FeatureScaler.from_clusters(train + validation)
        X, y, _ = build_training_set(train, scaler, negatives=self.negatives, n_support=self.n_support,
                                     seed=self.seed)
        Xv, yv, _ = build_training_set(validation, scaler, negatives=self.negatives, n_support=self.n_support,
                                       seed=self.seed)
        self.fit_arrays(X, y, Xv, yv, progress=progress, verbose=verbose, callbacks=callbacks)
        self.scaler_ = scaler
        self.clusters_ = {"train": names_t, "validation": names_v}
        return self

    def fit_arrays(self, X, y, X_val, y_val, progress: bool | None = None, verbose: int = 0,
                   callbacks: Sequence = (), deterministic_ops: bool = True) -> DeepSetsMembership:
        """Train on ready instances (the lower level of :meth:`fit`).

        Parameters
        ----------
        X, X_val : array (N, n_support, 13)
            Normalised training / validation instances.
        y, y_val : array (N,) of {0, 1}
            1 = member.
        progress : bool, optional
            Progress bar over the epochs (loss, validation F1, best F1, ETA); default on unless
            ``OCNB_PROGRESS=0``.
        verbose : int
            1 or 2 prints Keras' own per-epoch lines instead.
        callbacks : sequence of keras.callbacks.Callback
            Extra callbacks, called after the early stopping of each epoch (whose metrics are in ``logs``).
        deterministic_ops : bool
            Seed everything and use deterministic backend ops during the fit.

        Raises
        ------
        ValueError
            Wrong shapes, NaN/inf, labels other than 0/1, a training set without both classes, a
            validation set without members (its F1 would always be 0).
        """
        from ..ml.training import deterministic

        t0 = time.perf_counter()
        X = _check_instances(X, "X", self.n_support)
        y = _check_labels(y, len(X), "y")
        X_val = _check_instances(X_val, "X_val", self.n_support)
        y_val = _check_labels(y_val, len(X_val), "y_val")
        if len(np.unique(y)) < 2:
            raise ValueError(f"y holds only class {int(y[0]) if len(y) else '-'} ({len(y)} instances); training "
                             "needs members and non-members")
        if not (y_val == 1).any():
            raise ValueError(f"y_val holds no member among {len(y_val)} instances; the validation F1 that drives "
                             "early stopping would always be 0")
        parts = _keras_parts()
        keras = parts["keras"]
        cw = np.asarray(self.class_weight, dtype=np.float32)
        Y = np.eye(2, dtype=np.float32)[y]
        show = (progress if progress is not None else True) and not verbose
        bar = parts["F1Progress"](self.epochs, desc="DeepSetsMembership",
                                  disable=None if (show and progress is None) else not show)
        with deterministic(self.seed) if deterministic_ops else nullcontext():
            model = self.build_model()
            model.compile(
                optimizer=keras.optimizers.Adam(self.learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                                                global_clipnorm=5.0),
                loss=keras.losses.CategoricalCrossentropy(from_logits=True, reduction="sum"))
            stopper = parts["F1EarlyStopping"](X_val, y_val, cw[y_val], self.patience, self.batch_size,
                                               self._logits_of)
            try:
                batches = parts["ShuffledBatches"](X, Y, cw[y], self.batch_size, self.seed)
                model.fit(batches, epochs=self.epochs, callbacks=[stopper, bar, *callbacks],
                          verbose=2 if verbose else 0)
            finally:
                bar.close()
            stopper.restore()
        self.model_ = model
        hist: dict[str, Any] = dict(stopper.records)
        hist.update(best_epoch=int(stopper.best_epoch) + 1, best_val_f1=float(stopper.best),
                    stopped_epoch=None if stopper.stopped_epoch is None else int(stopper.stopped_epoch) + 1,
                    epochs_run=len(hist["val_f1"]), n_train=len(X), n_val=len(X_val),
                    fit_time_s=time.perf_counter() - t0)
        self.history = hist
        self.scaler_ = None
        self.clusters_ = {"train": [], "validation": []}
        self.origin_ = "trained"
        self.calibration_ = None
        return self

    def calibrate(self, clusters: Sequence, n_draws: int = 100, seed: int = 42,
                  progress: bool | None = None) -> DeepSetsMembership:
        """Fit the calibration of the membership probabilities on held-out clusters (an ocnb addition).

        An isotonic map from the fraction of draws called member to the frequency of members, fitted on the
        candidates of ``clusters`` (prepared clusters with a ``truth`` mask that the network never trained on,
        e.g. the validation clusters), with leave-one-cluster-out scores in ``calibration_.held_out``
        (:func:`ocnb.membership.calibration.fit_calibration`). Sets ``calibration_`` and returns ``self``.
        """
        self._check_fitted()
        if self.scaler_ is None:
            raise RuntimeError("this model has no feature scaler (trained with fit_arrays): it cannot score "
                               "prepared clusters, so it cannot be calibrated")
        from .calibration import fit_calibration

        self.calibration_ = fit_calibration(self, clusters, n_draws=n_draws, seed=seed, progress=progress)
        return self

    # -- prediction ---------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if self.model_ is None:
            raise RuntimeError("this DeepSetsMembership has no model yet; call fit(), fit_arrays(), "
                               "DeepSetsMembership.load() or DeepSetsMembership.pretrained() first")

    @staticmethod
    def _logits_of(model, X: np.ndarray, batch_size: int = 2048) -> np.ndarray:
        from ..ml.layers import ops
        from ..ml.training import quiet_retracing

        if len(X) == 0:
            return np.zeros((0, 2), dtype=np.float32)
        # The compiled predict function (a graph on tensorflow), chunk by chunk: ~2-4x faster than eager calls
        # on CPU, and chunks of ~2k instances (~5 MB activations per layer) stay in cache.
        with quiet_retracing():
            out = [np.asarray(ops.convert_to_numpy(model.predict_on_batch(X[s:s + batch_size])), dtype=np.float32)
                   for s in range(0, len(X), batch_size)]
        return np.concatenate(out, axis=0)

    def predict_logits(self, X, batch_size: int = 2048) -> np.ndarray:
        """Logits ``[non-member, member]`` of normalised instances, shape (B, 2) float32 (inference mode).

        ``batch_size`` instances go through the network at a time (memory ~ 2.6 kB per instance and layer).

        Raises
        ------
        RuntimeError
            No model yet.
        ValueError
            ``X`` is not ``(B, n_support, 13)`` or holds NaN/inf.
        """
        self._check_fitted()
        X = _check_instances(X, "X", self.n_support)
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        return self._logits_of(self.model_, X, int(batch_size))

    def predict_member_score(self, X, batch_size: int = 2048) -> np.ndarray:
        """Softmax member probability of each instance, (B,) float64 (one classification, no error draws)."""
        return _softmax_member(self.predict_logits(X, batch_size))

    def predict_proba(self, prepared, n_draws: int = 100, seed: int = 42, **kwargs) -> np.ndarray:
        """Membership probability of every source of a prepared cone (vG23 Sect. 3.4, spec A11).

        Delegates to :func:`ocnb.membership.probability.membership_probability` (``n_draws`` draws from each
        candidate's errors, a fresh support set per draw) and returns its ``probability`` (n,), aligned with
        ``prepared.cone`` rows (0 for non-candidates). Use that function directly for the full result.
        """
        self._check_fitted()
        if self.scaler_ is None:
            raise RuntimeError("this model has no feature scaler (it was trained with fit_arrays on ready "
                               "instances); train it with fit() on prepared clusters or use pretrained()")
        from .probability import membership_probability

        return membership_probability(self, prepared, n_draws=n_draws, seed=seed, **kwargs).probability

    # -- persistence --------------------------------------------------------------------------
    def to_files(self) -> dict[str, bytes]:
        """The model as store files: ``weights.npz``, ``config.json``, ``scaler.json``, ``history.json`` and
        ``calibration.json`` (``null`` without a calibration)."""
        self._check_fitted()
        keras = _keras_parts()["keras"]
        weights = {f"w{i:03d}": np.asarray(w.numpy()) for i, w in enumerate(self.model_.weights)}
        buf = io.BytesIO()
        np.savez(buf, **weights)
        scaler = None if self.scaler_ is None else self.scaler_.to_dict()
        return {
            "weights.npz": buf.getvalue(),
            "config.json": json.dumps({
                "format": CONFIG_FORMAT, "params": self.get_params(),
                "weight_names": [w.path for w in self.model_.weights], "origin": self.origin_,
                "clusters": self.clusters_, "keras": keras.__version__,
                "backend_saved_with": keras.backend.backend(),
            }, indent=1).encode(),
            "scaler.json": json.dumps(_jsonable(scaler), indent=1).encode(),
            "history.json": json.dumps(_jsonable(self.history)).encode(),
            "calibration.json": json.dumps(_jsonable(None if self.calibration_ is None
                                                     else self.calibration_.to_dict())).encode(),
        }

    @classmethod
    def from_bundle(cls, bundle: store.Bundle) -> DeepSetsMembership:
        """Rebuild a model from the verified files of a bundle (see :meth:`to_files`)."""
        config = bundle.json("config.json")
        if not isinstance(config, dict) or config.get("format") != CONFIG_FORMAT:
            got = config.get("format") if isinstance(config, dict) else config
            raise store.BundleError(f"model bundle {bundle.folder}: config.json has format {got!r}, expected "
                                    f"{CONFIG_FORMAT!r}", bundle.folder, "outdated")
        try:
            est = cls(**config["params"])
        except (KeyError, TypeError, ValueError) as err:
            raise store.BundleError(f"model bundle {bundle.folder}: config.json is unusable ({err})", bundle.folder,
                                    "corrupt") from None
        model = est.build_model()
        z = bundle.arrays("weights.npz")
        names = [f"w{i:03d}" for i in range(len(model.weights))]
        if sorted(z) != names:
            raise store.BundleError(f"model bundle {bundle.folder} is mixed: weights.npz holds {len(z)} arrays, "
                                    f"the architecture in config.json has {len(names)}", bundle.folder, "mixed")
        for w, k in zip(model.weights, names, strict=True):
            if tuple(w.shape) != z[k].shape:
                raise store.BundleError(f"model bundle {bundle.folder} is mixed: weight {w.path} has shape "
                                        f"{z[k].shape} in weights.npz, config.json implies {tuple(w.shape)}",
                                        bundle.folder, "mixed")
        model.set_weights([z[k] for k in names])
        est.model_ = model
        scaler = bundle.json("scaler.json")
        if scaler is not None:
            from .features import FeatureScaler

            est.scaler_ = FeatureScaler.from_dict(scaler)
        est.history = bundle.json("history.json")
        # bundles saved before calibration existed have no calibration.json: they load uncalibrated
        calibration = bundle.json("calibration.json") if "calibration.json" in bundle else None
        if calibration is not None:
            from .calibration import ProbabilityCalibration

            try:
                est.calibration_ = ProbabilityCalibration.from_dict(calibration)
            except (KeyError, TypeError, ValueError) as err:
                raise store.BundleError(f"model bundle {bundle.folder}: calibration.json is unusable ({err})",
                                        bundle.folder, "corrupt") from None
        est.clusters_ = config.get("clusters", {"train": [], "validation": []})
        est.origin_ = config.get("origin", "trained")
        return est

    @staticmethod
    def _folder(target) -> Path:
        if _is_store_name(target):
            return store.ModelStore(STORE_NAMESPACE).path(target)
        if isinstance(target, (str, os.PathLike)):
            return Path(target)
        raise TypeError(f"expected a model name or a folder path, got {type(target).__name__}")

    def save(self, target) -> Path:
        """Save through :mod:`ocnb.store` (a new checksummed version; crash-safe); returns the folder.

        ``target`` is a plain name (saved as ``data_home()/models/membership/<name>``) or a folder path
        (a ``Path``, or a string containing a path separator).
        """
        self._check_fitted()
        folder = self._folder(target)
        store.save_bundle(folder, self.to_files(), kind=STORE_KIND, kind_version=STORE_KIND_VERSION,
                          meta={"class": "DeepSetsMembership", "origin": self.origin_,
                                "n_params": self.n_params, "best_val_f1": self.history.get("best_val_f1")})
        return folder

    @classmethod
    def load(cls, target) -> DeepSetsMembership:
        """Load a model saved by :meth:`save` (a name or a folder), after verifying every file.

        Raises
        ------
        ocnb.store.BundleNotFoundError
            Nothing saved there.
        ocnb.store.BundleError
            A partial, corrupted, mixed or other-kind bundle (never used).
        """
        bundle = store.load_bundle(cls._folder(target), kind=STORE_KIND, kind_version=STORE_KIND_VERSION,
                                   legacy=False)
        return cls.from_bundle(bundle)

    # -- the authors' released models ---------------------------------------------------------
    @classmethod
    def pretrained(cls, name: str = "DS10_v02") -> DeepSetsMembership:
        """The authors' released model (vG23 code v0.2 ``DS10_v02``, or the paper-era ``DS10_v01``), ready to use.

        The weights come from ``ocnb/data/models/vg23_<name>.npz`` (converted from their PyTorch state dict by
        ``tools/port_vg23_weights.py``, checksum-verified); the scaler holds their normalisation constants
        with the f_c, f_g means negated (their features are isochrone − star, ocnb's star − isochrone; spec
        A7). Training settings (lr, epochs, patience, class weights, L2) are theirs, for reference.

        Raises
        ------
        ValueError
            An unknown name (the message lists the shipped ones).
        """
        from .pretrained import ORIGIN, keras_ordered_arrays, load_vg23_weights

        w = load_vg23_weights(name)
        hp = w.hyper_parameters
        n_blocks = sum(1 for k in w.state if k.endswith(".Gamma.weight"))
        est = cls(n_support=w.n_support, hidden=w.hidden, n_blocks=n_blocks, dropout=0.5,
                  l2=float(hp.get("l2", 1e-5)) / 2.0, learning_rate=float(hp.get("lr", 1e-6)),
                  batch_size=int(hp.get("batch_size", 32)), epochs=int(hp.get("n_epochs", 200)),
                  patience=int(hp.get("early_stopping_threshold", 20)),
                  class_weight=(1.0, float(hp.get("weight_imbalance", 5.0))), seed=int(hp.get("seed", 42)))
        model = est.build_model()
        arrays = keras_ordered_arrays(w.state, n_blocks)
        for var, arr in zip(model.weights, arrays, strict=True):
            if tuple(var.shape) != arr.shape:  # pragma: no cover - guarded by the port test
                raise ValueError(f"{name}: array of shape {arr.shape} does not fit Keras weight {var.path} "
                                 f"{tuple(var.shape)}")
        model.set_weights(arrays)
        est.model_ = model
        from .features import FeatureScaler

        est.scaler_ = FeatureScaler(source_mean=w.source_mean, source_std=w.source_std,
                                    cluster_mean=w.cluster_mean, cluster_std=w.cluster_std,
                                    notes={"source": f"vG23 {name} normalisation constants ({ORIGIN})",
                                           "sign": "f_c, f_g means negated: the authors' features are isochrone "
                                                   "- star, ocnb's star - isochrone (spec A7)",
                                           "n_clusters": len(w.training_clusters) + len(w.validation_clusters)})
        est.clusters_ = {"train": w.training_clusters, "validation": w.validation_clusters}
        est.origin_ = f"pretrained vG23 {name} ({ORIGIN})"
        est.history = {}
        return est


def _jsonable(obj):
    """numpy scalars/arrays inside dicts/lists -> plain JSON types."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else obj
    return obj
