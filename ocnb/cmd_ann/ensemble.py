"""ANN ensemble of Cavallo et al. (2024), Sects. 3.2-3.4, trained as one batched Keras model.

Each member network is (spec ``cmd_quadtree_ann.md`` §4)::

    Input(n_in) -> Dropout(0.1) -> [Dense(500) -> LeakyReLU(0.3)] x 5 -> Dense(4)

with outputs (log age, [Fe/H], A_V, dMod), MSE loss and Adam. The paper trains
300 such networks, each on its own random 10,000-cluster subset of the 50,000
synthetic clusters, split 80/20 into train and validation (§5).

Instead of a Python loop over members, the whole ensemble is **one** Keras model
whose layers carry a member axis: :class:`BatchedDense` holds a kernel of shape
``(M, n_in, n_out)`` and maps ``(batch, M, n_in) -> (batch, M, n_out)`` with one
``keras.ops.einsum``. Row ``b`` of a training batch holds, for every member
``m``, a sample drawn from member ``m``'s own subset, so every member sees only its
own data. The loss is the *sum* over members of each member's MSE, so the
gradient reaching member ``m``'s weights is exactly the gradient of its own loss
and Adam (a per-parameter optimiser) updates each member exactly as if it were
trained alone. Early stopping is tracked per member (:class:`PerMemberEarlyStopping`):
each member keeps its own best weights (the slice of every variable along the
member axis) and its own patience counter; at the end every member gets its own
best slice back. Members whose patience has run out keep being updated inside the
batch until all have stopped (the compute is shared), but their restored weights
are those of their best epoch, exactly as ``EarlyStopping(restore_best_weights=True)``
would give for a lone network.

Resolutions (the paper is silent; spec §4):

* **Targets** are scaled to [0, 1] with the Table-1 prior bounds before the MSE
  and mapped back after prediction (otherwise dMod's 15-mag range dominates).
* **Inputs** are *not* rescaled by default (``input_scaling="none"``): the
  QuadTree features already are standardised CMD coordinates (spec §3) and the
  mean parallax enters raw, in mas (spec §4, ``plx_transform="none"``).
  ``input_scaling="standard"`` (z-score per input fitted on the training pool,
  stored with the model) is the alternative. Measured: with the short CPU
  training of the ``laptop`` preset raw inputs leave [Fe/H] barely better than
  the prior, z-scoring roughly halves the errors (:data:`INPUT_SCALING_MEASUREMENT`),
  so the ``fast`` and ``laptop`` presets z-score and ``paper`` keeps raw inputs.
* lr 1e-3, batch 128, <= 200 epochs, patience 20, Glorot-uniform initialisation
  (per member, i.e. fan-in/fan-out of one member's matrix).
* Dropout acts on the input only and is off at inference (no MC dropout).

The machinery is shared (:mod:`ocnb.ml`: the batched layers, per-member early stopping, the
training progress bar, same seed -> same model, keras-tuner glue; :mod:`ocnb.diagnostics`:
coverage and calibration; :mod:`ocnb.store`: saving). This module keeps Cavallo's part: the
labels and Table-1 bounds, the presets and their measurements, and :class:`ANNEnsemble` with
those defaults. Every name it exported before the split is still importable from here.
Everything numerical uses ``keras.ops``; the module works on the tensorflow (default), jax and
torch backends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import data_home
from ..diagnostics import binned_residuals, coverage, coverage_curve, plot_coverage
from ..ml.estimator import ANNEnsemble as _ANNEnsemble
from ..ml.estimator import EnsemblePrediction as _EnsemblePrediction
from ..ml.layers import (
    BatchedDense,
    build_ensemble_model,
    build_single_model,
    extract_member,
    member_param_count,
    member_sum_mse,
)
from ..ml.training import PerMemberEarlyStopping, TrainingProgress
from ..ml.tuning import TuneResult
from ..ml.tuning import tune as _tune

__all__ = [
    "LABELS",
    "TABLE1_BOUNDS",
    "BOUND_MARGIN",
    "PRESETS",
    "LAPTOP_MEASUREMENT",
    "INPUT_SCALING_MEASUREMENT",
    "MASS_FUNCTION_MEASUREMENT",
    "BatchedDense",
    "member_sum_mse",
    "build_ensemble_model",
    "build_single_model",
    "member_param_count",
    "extract_member",
    "PerMemberEarlyStopping",
    "TrainingProgress",
    "ANNEnsemble",
    "EnsemblePrediction",
    "coverage",
    "coverage_curve",
    "plot_coverage",
    "residual_table",
    "tune",
    "TuneResult",
    "model_dir",
    "make_toy_fixture",
]

#: Output labels, in network-output order (same names as ``ocnb.cmd_ann.simulate.LABELS``).
LABELS: tuple[str, ...] = ("log_age", "feh", "a_v", "dist_mod")

#: Prior bounds of Table 1 (Cavallo et al. 2024), used to scale targets to [0, 1].
TABLE1_BOUNDS: dict[str, tuple[float, float]] = {
    "log_age": (6.7, 10.1),
    "feh": (-0.8, 0.6),
    "a_v": (0.0, 5.0),
    "dist_mod": (0.0, 15.0),
}

#: Distance (label units: dex or mag) from a prior bound below which a prediction is flagged (spec §13).
BOUND_MARGIN = 0.05

# ---------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------
#: Training presets. ``n_clusters`` is the number of synthetic clusters to simulate for the
#: training pool, ``n_test`` the size of an independent held-out synthetic test set (fresh seed,
#: never seen by any member, used for the calibration/coverage plots).
#:
#: * ``fast``: CI smoke size (seconds).
#: * ``laptop``: CPU-only, <= 15 min including simulation on a 2-core machine. Sized from the
#:   measured training throughput of the full-width network on the project's 2-core machine
#:   (see :data:`LAPTOP_MEASUREMENT`): full architecture, 12 members, paper-sized subsets
#:   of a 20,000-cluster pool, <= 60 epochs. It z-scores the inputs (``input_scaling="standard"``,
#:   see :data:`INPUT_SCALING_MEASUREMENT`): with raw inputs the short CPU training does not
#:   converge to useful accuracy. It trains on clusters with a per-cluster present-day mass
#:   function (``mass_function="varied"``, see :mod:`ocnb.cmd_ann.simulate`): with the paper's
#:   Salpeter IMF the ensemble reads the faint-star deficit of real member lists as age
#:   (:data:`MASS_FUNCTION_MEASUREMENT`).
#: * ``paper``: the paper's configuration (300 members x 10,000-cluster subsets of 50,000, raw
#:   inputs as in spec §4, <= 200 epochs); needs a GPU (hours on a CPU).
PRESETS: dict[str, dict[str, Any]] = {
    "fast": dict(n_members=3, n_clusters=400, n_test=200, subset_size=300, epochs=4, patience=4,
                 hidden=(64,) * 5, batch_size=64, learning_rate=1e-3, input_scaling="standard",
                 parallax="log10", mass_function="varied"),
    "laptop": dict(n_members=12, n_clusters=20_000, n_test=1000, subset_size=10_000, epochs=60, patience=10,
                   hidden=(500,) * 5, batch_size=128, learning_rate=1e-3, input_scaling="standard",
                   parallax="log10", mass_function="varied"),
    "paper": dict(n_members=300, n_clusters=50_000, n_test=2000, subset_size=10_000, epochs=200, patience=20,
                  hidden=(500,) * 5, batch_size=128, learning_rate=1e-3, input_scaling="none",
                  mass_function="salpeter"),
}

#: Why the fast/laptop presets z-score the inputs (measured 2026-11-21, 2-core CPU).
INPUT_SCALING_MEASUREMENT = (
    "Training pool: 20,000 clusters from ocnb.cmd_ann.simulate (seed 0) through QuadTreeFeatures (190 "
    "inputs); test: 1,000 fresh clusters (seed 99). Test RMSE of the ensemble median (log age dex, [Fe/H] "
    "dex, A_V mag, dMod mag). 3 members x 8,000 training rows, 15 epochs: raw inputs (spec §4) 0.64, "
    "0.36, 0.47, 1.08; z-scored inputs 0.31, 0.29, 0.20, 0.58; z-scored with log10 parallax 0.30, 0.27, "
    "0.22, 0.40; z-scored without input dropout 0.28, 0.25, 0.18, 0.39. The 12-member laptop preset "
    "with raw inputs (51 epochs, 510 s) reached only 0.50, 0.35, 0.34, 0.71 ([Fe/H] barely below the "
    "prior's 0.40). For reference, a gradient-boosted tree per label (scikit-learn "
    "HistGradientBoostingRegressor, 300 iterations) on the same features: 0.28, 0.23, 0.16, 0.05."
)

#: Why the fast/laptop presets train on a per-cluster mass function (measured 2026-11-21, 2-core CPU;
#: ``tools/probe_mass_function.py``).
MASS_FUNCTION_MEASUREMENT = (
    "Probe ensembles (4 members of the laptop network, 20,000 simulated clusters, 20 epochs), multi-band "
    "for the six nearby clusters and Gaia-only for the others, on all 29 shipped real clusters with an "
    "estimate; median |ours - literature mean| of log age, [Fe/H], A_V, dMod. Salpeter training set (the "
    "paper): 0.39, 0.16, 0.23, 0.26 (young nearby clusters 0.6-0.7 dex too old). 'varied' mass function: "
    "0.15, 0.20, 0.24, 0.16. 'varied' + 30 % unresolved binaries: 0.19, 0.16, 0.26, 0.31 (distances "
    "biased short), so binaries stay off. A Salpeter-trained laptop ensemble puts a simulated Pleiades "
    "twin at log age 7.94 with a Salpeter IMF and at 8.39 with a Kroupa-like one."
)

#: How the laptop preset was sized (throughput of the batched trainer; see also
#: benchmarks/bench_cmd_ensemble.py).
LAPTOP_MEASUREMENT = (
    "Measured 2026-11-21 on the project's 2-core CPU machine (tensorflow-cpu 2.21, oneDNN), full-width "
    "network (190-500x5-4), batch 128. Throughput: a 12-member batched ensemble with 6,400 training rows "
    "per member ran 39 epochs in 268 s = 11,200 member-samples/s including per-epoch validation, with "
    "other jobs on the machine (single epochs 3.8-10.6 s, i.e. 7,000-20,000 member-samples/s). "
    "Laptop preset end to end (simulate 20,000 + 1,000 test clusters and QuadTree features: 39 s; "
    "training 12 members x 8,000 rows, per-member early stopping, last member stopped at epoch 59: "
    "706 s; predicting 1,000 clusters: 0.2 s): 12.6 min in total under heavy contention (load average "
    "about 5 on 2 cores, about 12 s per epoch); about 5-6 min of training on an idle machine. Held-out "
    "accuracy (1,000 fresh clusters, ensemble median): RMSE log age 0.26 dex, [Fe/H] 0.27 dex, "
    "A_V 0.16 mag, dMod 0.34 mag (one member alone: 0.31, 0.28, 0.25, 0.49); log-age scatter falls from "
    "0.40 dex (10-30 stars) to 0.16 dex (> 1000 stars); 16-84 coverage 0.49, 0.31, 0.68, 0.69."
)


# ---------------------------------------------------------------------------------------------
# Predictions and the estimator with Cavallo's defaults
# ---------------------------------------------------------------------------------------------
@dataclass
class EnsemblePrediction(_EnsemblePrediction):
    """Ensemble output in physical units (log age [dex], [Fe/H] [dex], A_V [mag], dMod [mag]).

    :class:`ocnb.ml.EnsemblePrediction` with the defaults of Cavallo et al. (2024): labels
    :data:`LABELS`, Table-1 bounds and the at-bound margin of spec §13 (:data:`BOUND_MARGIN`).
    The point estimate used downstream is the 50th percentile (spec §5); the paper's Sect. 3.4
    value is the mean; the catalogue's percentiles (App. A) are 16/50/84.
    """

    members: np.ndarray
    labels: tuple[str, ...] | None = LABELS
    bounds: Mapping[str, tuple[float, float]] | None = field(default_factory=lambda: dict(TABLE1_BOUNDS))
    index: Any = None
    margin: float = BOUND_MARGIN


def model_dir(name: str) -> Path:
    """Folder for a cached trained model: ``data_home()/models/cmd_ann/<name>`` (an :mod:`ocnb.store` bundle)."""
    return data_home() / "models" / "cmd_ann" / name


class ANNEnsemble(_ANNEnsemble):
    """Ensemble of Cavallo et al. (2024) networks, trained as one batched Keras model.

    The generic :class:`ocnb.ml.ANNEnsemble` with the paper's defaults: labels :data:`LABELS`
    (log age, [Fe/H], A_V, dMod) scaled by the Table-1 bounds (:data:`TABLE1_BOUNDS`), five hidden
    layers of 500, input dropout 0.1, LeakyReLU 0.3 (Sect. 3.2); cached models live in
    ``data_home()/models/cmd_ann``. ``fit`` shows a progress bar (epochs, loss, val-loss, ETA)
    and is deterministic for a given ``seed``.

    Parameters
    ----------
    n_members : int
        Number of networks ``M`` (paper: 300).
    subset_size : int or None
        Clusters drawn (without replacement) for each member from the training pool
        (paper: 10,000 of 50,000); ``None`` uses the whole pool for every member.
    val_fraction : float
        Part of each member's subset used for its validation/early stopping (paper ~20 %).
    hidden : sequence of int
        Hidden-layer widths (paper: five of 500).
    dropout, negative_slope : float
        Input dropout rate and LeakyReLU slope (paper: 0.1, 0.3).
    learning_rate, batch_size, epochs, patience : training settings (spec §4 resolutions).
    label_bounds : dict label -> (low, high)
        Prior bounds used to scale each label to [0, 1] (default Table 1).
    labels : sequence of str
        Output names, in the column order of ``y``.
    input_scaling : {"none", "standard"}
        ``"none"`` (spec §4: features are already standardised, parallax raw in mas) or a
        z-score fitted on the training pool.
    seed : int
        Member ``k`` draws its subset with ``numpy.random.default_rng([seed, k])``; also seeds
        the initialisers, dropout and the backend.
    """

    prediction_class = EnsemblePrediction
    store_namespace = "cmd_ann"

    def __init__(self, n_members: int = 10, subset_size: int | None = 10_000, val_fraction: float = 0.2,
                 hidden: Sequence[int] = (500,) * 5, dropout: float = 0.1, negative_slope: float = 0.3,
                 learning_rate: float = 1e-3, batch_size: int = 128, epochs: int = 200, patience: int = 20,
                 label_bounds: Mapping[str, tuple[float, float]] | None = None,
                 labels: Sequence[str] = LABELS, input_scaling: str = "none", seed: int = 0):
        super().__init__(labels=labels, label_bounds=dict(TABLE1_BOUNDS if label_bounds is None else label_bounds),
                         n_members=n_members, subset_size=subset_size, val_fraction=val_fraction, hidden=hidden,
                         dropout=dropout, negative_slope=negative_slope, learning_rate=learning_rate,
                         batch_size=batch_size, epochs=epochs, patience=patience, input_scaling=input_scaling,
                         seed=seed)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> ANNEnsemble:
        """Estimator with the training settings of ``PRESETS[name]`` (``fast``, ``laptop``, ``paper``)."""
        if name not in PRESETS:
            raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        keys = ("n_members", "subset_size", "epochs", "patience", "hidden", "batch_size", "learning_rate",
                "input_scaling")
        params = {k: PRESETS[name][k] for k in keys}
        params.update(overrides)
        return cls(**params)

    @classmethod
    def cache_folder(cls, name: str, key: str) -> Path:
        return model_dir(f"{name}-{key}")


def residual_table(prediction: EnsemblePrediction, y_true, n_stars, bins=None,
                   estimate="p50") -> pd.DataFrame:
    """Mean and std of (prediction - true) in bins of log10 N_stars, per label (spec §12).

    Parameters
    ----------
    n_stars : array (n,)
        Stars per cluster (linear).
    bins : array of log10 N edges, default 1.0 ... 3.5 in steps of 0.5 (Table 1 range).
    estimate : ``"p50"`` (ensemble median), ``"mean"`` or an int (that single member).

    Returns a frame indexed by bin with columns (label, {"mean", "std", "n"}).
    """
    n_stars = np.asarray(n_stars, dtype=np.float64)
    if np.any(~np.isfinite(n_stars)) or np.any(n_stars <= 0):
        raise ValueError("n_stars must be positive star counts (one per cluster)")
    bins = np.arange(1.0, 3.51, 0.5) if bins is None else np.asarray(bins, dtype=float)
    return binned_residuals(prediction, y_true, np.log10(n_stars), bins, estimate=estimate,
                            bin_name="log10_n_stars")


def tune(X, y, max_trials: int | None = None, epochs: int | None = None, directory=None,
         project_name: str = "cmd_ann", label_bounds=None, labels: Sequence[str] = LABELS,
         val_fraction: float = 0.2, batch_size: int = 128, seed: int = 0, overwrite: bool = True,
         input_scaling: str = "none", verbose: int = 0) -> TuneResult:
    """keras-tuner RandomSearch on one Cavallo member network (see :func:`ocnb.ml.tune`).

    Labels default to :data:`LABELS` scaled by the Table-1 bounds. Search space: depth 3-6
    hidden layers, width 128-512 (step 64), input dropout 0-0.2, learning rate 1e-4-3e-3 (log).
    FAST mode defaults: 2 trials of 2 epochs; otherwise 10 x 30. Raises :class:`RuntimeError`
    unless every trial completed.
    """
    bounds = dict(TABLE1_BOUNDS if label_bounds is None else label_bounds)
    return _tune(X, y, labels=labels, label_bounds=bounds, max_trials=max_trials, epochs=epochs,
                 directory=directory, project_name=project_name, val_fraction=val_fraction,
                 batch_size=batch_size, seed=seed, overwrite=overwrite, input_scaling=input_scaling,
                 verbose=verbose)


# ---------------------------------------------------------------------------------------------
# Test/benchmark fixture
# ---------------------------------------------------------------------------------------------
def make_toy_fixture(n: int, n_features: int = 190, seed: int = 0, noise: float = 0.01,
                     bounds: Mapping[str, tuple[float, float]] | None = None):
    """TEST FIXTURE, not a cluster simulation: random labels and a known nonlinear map to features.

    Labels are drawn uniformly inside the Table-1 bounds; features are
    ``tanh(W u + b) + noise`` of the labels ``u`` scaled to [0, 1] (fixed random ``W``,
    ``b`` from ``seed``), with the last column a parallax-like ``1000 / d`` in mas
    computed from dMod, like the real pipeline's last input. Used by the tests and the
    benchmark only; use ``ocnb.cmd_ann.simulate`` + ``features`` for real training data.

    Returns ``X`` (n, n_features) float64 and ``y`` (n, 4) float64 in physical units.
    """
    bounds = dict(TABLE1_BOUNDS if bounds is None else bounds)
    rng = np.random.default_rng(seed)
    lo = np.array([bounds[lab][0] for lab in LABELS])
    hi = np.array([bounds[lab][1] for lab in LABELS])
    u = rng.uniform(size=(n, 4))
    y = lo + u * (hi - lo)
    wrng = np.random.default_rng(12345)  # the map is fixed, whatever the sample seed
    W = wrng.normal(size=(4, n_features - 1)) * 1.5
    b = wrng.normal(size=n_features - 1) * 0.5
    feats = np.tanh((u - 0.5) @ W + b) + noise * rng.normal(size=(n, n_features - 1))
    plx = 1000.0 / 10 ** ((y[:, 3] + 5.0) / 5.0)
    return np.column_stack([feats, plx]), y
