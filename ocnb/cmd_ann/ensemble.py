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

Everything numerical in the model uses ``keras.ops``; the module works on the
tensorflow (default), jax and torch backends.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import sys
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..cache import CorruptCacheError, atomic_write_bytes, sha256_bytes, sha256_file
from ..config import data_home, fast_mode, set_keras_backend

if "keras" not in sys.modules:  # honour $KERAS_BACKEND (default tensorflow) before keras loads
    set_keras_backend()

import keras  # noqa: E402
from keras import ops  # noqa: E402

__all__ = [
    "LABELS",
    "TABLE1_BOUNDS",
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
    "ANNEnsemble",
    "EnsemblePrediction",
    "coverage",
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

_FORMAT = "ocnb.cmd_ann.ensemble/1"

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
# Layers and models
# ---------------------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="ocnb")
class BatchedDense(keras.layers.Layer):
    """``M`` independent dense layers evaluated at once.

    Kernel ``(M, n_in, units)``, bias ``(M, units)``. Input ``(batch, M, n_in)`` gives
    ``(batch, M, units)``; an input ``(batch, n_in)`` is shared by all members (inference).

    Parameters
    ----------
    n_members : int
        Number of members ``M``.
    units : int
        Output width of each member.
    kernel_initializer : str or initializer
        ``"glorot_uniform"`` (default) is applied *per member*: the limit is
        ``sqrt(6 / (n_in + units))``, as for a lone ``Dense`` (Keras' own
        Glorot initialiser would fold ``M`` into the fans of a 3-D kernel).
    bias_initializer : str or initializer
    seed : int, optional
        Seed for the kernel initialiser.
    """

    def __init__(self, n_members: int, units: int, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.n_members = int(n_members)
        self.units = int(units)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.seed = seed
        self.input_spec = None

    def _kernel_init(self, n_in: int):
        if self.kernel_initializer == "glorot_uniform":
            limit = math.sqrt(6.0 / (n_in + self.units))
            return keras.initializers.RandomUniform(-limit, limit, seed=self.seed)
        return keras.initializers.get(self.kernel_initializer)

    def build(self, input_shape):
        n_in = int(input_shape[-1])
        if len(input_shape) == 3 and input_shape[1] is not None and int(input_shape[1]) != self.n_members:
            raise ValueError(f"BatchedDense expects {self.n_members} members on axis 1, "
                             f"got shape {input_shape}")
        self.kernel = self.add_weight(name="kernel", shape=(self.n_members, n_in, self.units),
                                      initializer=self._kernel_init(n_in))
        self.bias = self.add_weight(name="bias", shape=(self.n_members, self.units),
                                    initializer=keras.initializers.get(self.bias_initializer))

    def call(self, inputs):
        if len(inputs.shape) == 2:
            out = ops.einsum("bi,mio->bmo", inputs, self.kernel)
        else:
            out = ops.einsum("bmi,mio->bmo", inputs, self.kernel)
        return out + self.bias

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_members, self.units)

    def get_config(self):
        config = super().get_config()
        init = self.kernel_initializer
        config.update(
            n_members=self.n_members,
            units=self.units,
            kernel_initializer=init if isinstance(init, str) else keras.initializers.serialize(init),
            bias_initializer=self.bias_initializer if isinstance(self.bias_initializer, str)
            else keras.initializers.serialize(self.bias_initializer),
            seed=self.seed,
        )
        return config


@keras.saving.register_keras_serializable(package="ocnb")
def member_sum_mse(y_true, y_pred):
    """Per-sample loss for ``(batch, M, n_out)`` outputs: sum over members of each member's MSE.

    Summing (not averaging) over members keeps each member's gradient equal to the
    gradient of its own MSE, so batched training updates every member as if alone.
    """
    return ops.sum(ops.mean(ops.square(y_pred - y_true), axis=-1), axis=-1)


def member_param_count(n_inputs: int, hidden: Sequence[int] = (500,) * 5, n_outputs: int = 4) -> int:
    """Trainable parameters of one member (1,099,504 for 190 inputs, 1,036,504 for 64)."""
    sizes = [int(n_inputs), *map(int, hidden), int(n_outputs)]
    return int(sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])))


def _layer_seed(seed, i):
    return None if seed is None else int(seed) * 1009 + i


def build_ensemble_model(n_members: int, n_inputs: int, hidden: Sequence[int] = (500,) * 5,
                         dropout: float = 0.1, negative_slope: float = 0.3, n_outputs: int = 4,
                         seed: int | None = None, name: str = "ann_ensemble") -> keras.Model:
    """The batched ensemble: input ``(batch, M, n_in)`` -> output ``(batch, M, n_outputs)``.

    Member ``m`` is ``Dropout(dropout)`` on its input, ``len(hidden)`` hidden layers with
    LeakyReLU(``negative_slope``) and a linear output layer; members share nothing.
    """
    inp = keras.Input(shape=(int(n_members), int(n_inputs)), name="features")
    x = inp
    if dropout:
        x = keras.layers.Dropout(float(dropout), seed=_layer_seed(seed, 0), name="input_dropout")(x)
    for i, width in enumerate(hidden):
        x = BatchedDense(n_members, int(width), seed=_layer_seed(seed, i + 1), name=f"hidden_{i}")(x)
        x = keras.layers.LeakyReLU(negative_slope=float(negative_slope), name=f"leaky_{i}")(x)
    out = BatchedDense(n_members, int(n_outputs), seed=_layer_seed(seed, len(hidden) + 1), name="labels")(x)
    return keras.Model(inp, out, name=name)


def build_single_model(n_inputs: int, hidden: Sequence[int] = (500,) * 5, dropout: float = 0.1,
                       negative_slope: float = 0.3, n_outputs: int = 4, seed: int | None = None,
                       name: str = "ann_member") -> keras.Model:
    """One member as an ordinary Keras model (the looped baseline; also used by :func:`tune`)."""
    inp = keras.Input(shape=(int(n_inputs),), name="features")
    x = inp
    if dropout:
        x = keras.layers.Dropout(float(dropout), seed=_layer_seed(seed, 0), name="input_dropout")(x)
    for i, width in enumerate(hidden):
        init = keras.initializers.GlorotUniform(_layer_seed(seed, i + 1))
        x = keras.layers.Dense(int(width), kernel_initializer=init, name=f"hidden_{i}")(x)
        x = keras.layers.LeakyReLU(negative_slope=float(negative_slope), name=f"leaky_{i}")(x)
    init = keras.initializers.GlorotUniform(_layer_seed(seed, len(hidden) + 1))
    out = keras.layers.Dense(int(n_outputs), kernel_initializer=init, name="labels")(x)
    return keras.Model(inp, out, name=name)


def _batched_layers(model):
    return [layer for layer in model.layers if isinstance(layer, BatchedDense)]


def extract_member(model: keras.Model, member: int, dropout: float = 0.1,
                   negative_slope: float = 0.3) -> keras.Model:
    """A :func:`build_single_model` network carrying member ``member``'s weights of a batched model."""
    layers = _batched_layers(model)
    n_in = int(layers[0].kernel.shape[1])
    hidden = [layer.units for layer in layers[:-1]]
    single = build_single_model(n_in, hidden, dropout=dropout, negative_slope=negative_slope,
                                n_outputs=layers[-1].units)
    dense = [layer for layer in single.layers if isinstance(layer, keras.layers.Dense)]
    for d, b in zip(dense, layers):
        d.set_weights([b.kernel.numpy()[member], b.bias.numpy()[member]])
    return single


# ---------------------------------------------------------------------------------------------
# Training data feed and per-member early stopping
# ---------------------------------------------------------------------------------------------
class _MemberBatches(keras.utils.PyDataset):
    """Batches ``(x (b, M, n_in), y (b, M, n_out))``; member ``m``'s column comes from its own rows.

    Each member's training rows are reshuffled independently every epoch (own RNG stream).
    Rows are gathered per batch from the shared pool, so memory stays O(pool), not O(M x subset).
    """

    def __init__(self, X, y, rows, batch_size, seed):
        super().__init__()
        self.X, self.y, self.rows = X, y, rows  # rows: (M, n_train) indices into X
        self.batch_size = int(batch_size)
        self._rng = np.random.default_rng([int(seed), 7919])
        self._order = None
        self.on_epoch_end()

    def __len__(self):
        return math.ceil(self.rows.shape[1] / self.batch_size)

    def on_epoch_end(self):
        perm = self._rng.permuted(np.broadcast_to(np.arange(self.rows.shape[1]), self.rows.shape), axis=1)
        self._order = np.take_along_axis(self.rows, perm, axis=1)

    def __getitem__(self, i):
        sel = self._order[:, i * self.batch_size:(i + 1) * self.batch_size]  # (M, b)
        x = np.ascontiguousarray(self.X[sel].transpose(1, 0, 2))
        y = np.ascontiguousarray(self.y[sel].transpose(1, 0, 2))
        return x, y


def _gather(X, rows):
    """(M, k) row indices -> (k, M, n) array: member m's k samples in column m."""
    return np.ascontiguousarray(X[rows].transpose(1, 0, 2))


def _member_mse(model, x, y, batch_size=1024):
    """Per-member MSE (scaled units) of a batched model on gathered data (k, M, n)."""
    pred = model.predict(x, batch_size=batch_size, verbose=0)
    return np.mean((np.asarray(pred, dtype=np.float64) - y) ** 2, axis=(0, 2))


class PerMemberEarlyStopping(keras.callbacks.Callback):
    """Early stopping with restore-best-weights, kept separately for every member of a batched model.

    At each epoch end the per-member validation MSE is computed; a member that improved
    (by more than ``min_delta``) has its slice of every weight copied into the best-weights
    store and its patience counter reset; a member whose counter reaches ``patience`` is
    frozen (its best weights no longer change). Training stops when every member is frozen.
    Call :meth:`restore` after ``fit`` to put each member's best slice back.

    Also records per-member training MSE (dropout off, fixed subsample) and, if given,
    the MSE on an independent test set (monitoring only; never used for stopping).
    """

    def __init__(self, x_val, y_val, patience=20, min_delta=0.0, x_train=None, y_train=None,
                 x_test=None, y_test=None, verbose=0):
        super().__init__()
        self.x_val, self.y_val = x_val, y_val
        self.x_train, self.y_train = x_train, y_train
        self.x_test, self.y_test = x_test, y_test
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.verbose = verbose

    def on_train_begin(self, logs=None):
        m = self.x_val.shape[1]
        self.best = np.full(m, np.inf)
        self.best_epoch = np.full(m, -1)
        self.wait = np.zeros(m, dtype=int)
        self.stopped = np.zeros(m, dtype=bool)
        self.stopped_epoch = np.full(m, -1)
        self.best_weights = None
        self.records = {"loss": [], "val_loss": [], "test_loss": []}

    def on_epoch_end(self, epoch, logs=None):
        val = _member_mse(self.model, self.x_val, self.y_val)
        self.records["val_loss"].append(val)
        if self.x_train is not None:
            self.records["loss"].append(_member_mse(self.model, self.x_train, self.y_train))
        if self.x_test is not None:
            pred = self.model.predict(self.x_test, batch_size=1024, verbose=0)
            self.records["test_loss"].append(np.mean((pred - self.y_test[:, None, :]) ** 2, axis=(0, 2)))
        active = ~self.stopped
        improved = active & (val < self.best - self.min_delta)
        if improved.any():
            weights = self.model.trainable_weights
            if self.best_weights is None:
                self.best_weights = [w.numpy().copy() for w in weights]
            else:
                # copy only the improved members' slices off the device
                idx = np.flatnonzero(improved)
                for b, w in zip(self.best_weights, weights):
                    b[idx] = ops.convert_to_numpy(ops.take(w, ops.convert_to_tensor(idx), axis=0))
            self.best[improved] = val[improved]
            self.best_epoch[improved] = epoch
        self.wait[improved] = 0
        self.wait[active & ~improved] += 1
        newly = active & (self.wait >= self.patience)
        self.stopped[newly] = True
        self.stopped_epoch[newly] = epoch
        if self.verbose:
            print(f"epoch {epoch + 1}: val MSE median {np.median(val):.4g} "
                  f"(best {np.median(self.best):.4g}); "
                  f"{int((~self.stopped).sum())}/{len(val)} members still improving")
        if self.stopped.all():
            self.model.stop_training = True

    def restore(self):
        """Give every member its best-epoch weights (no-op before the first epoch)."""
        if self.best_weights is not None:
            for w, b in zip(self.model.trainable_weights, self.best_weights):
                w.assign(b)


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
    labels : tuple of str
    bounds : dict label -> (low, high)
        Prior bounds (for the at-bound flag).
    index : pandas.Index, optional
        Row labels (e.g. cluster names) for the frames.
    """

    members: np.ndarray
    labels: tuple[str, ...] = LABELS
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(TABLE1_BOUNDS))
    index: Any = None
    margin: float = BOUND_MARGIN

    def _frame(self, values):
        return pd.DataFrame(values, columns=list(self.labels), index=self.index)

    @property
    def n_members(self) -> int:
        return self.members.shape[1]

    @property
    def mean(self) -> pd.DataFrame:
        """Mean over members (the paper's Sect. 3.4 value)."""
        return self._frame(self.members.mean(axis=1))

    @property
    def std(self) -> pd.DataFrame:
        """Standard deviation over members (ddof=1; the paper's 1 sigma; 0 for one member)."""
        ddof = 1 if self.n_members > 1 else 0
        return self._frame(self.members.std(axis=1, ddof=ddof))

    def quantile(self, q: float) -> pd.DataFrame:
        """``q``-th percentile (0-100) over members (linear interpolation, numpy default)."""
        return self._frame(np.percentile(self.members, q, axis=1))

    @property
    def percentiles(self) -> dict[int, pd.DataFrame]:
        """{16, 50, 84} -> DataFrame (n x labels): the catalogue's percentiles (App. A)."""
        p = np.percentile(self.members, [16, 50, 84], axis=1)
        return {16: self._frame(p[0]), 50: self._frame(p[1]), 84: self._frame(p[2])}

    @property
    def point(self) -> pd.DataFrame:
        """Point estimate used downstream: the 50th percentile (spec §5)."""
        return self.quantile(50)

    @property
    def sigma(self) -> pd.DataFrame:
        """Symmetric error (p84 - p16) / 2 (spec §5)."""
        p = self.percentiles
        return (p[84] - p[16]) / 2

    @property
    def at_bound(self) -> pd.DataFrame:
        """True where the 50th percentile lies within ``margin`` of a prior bound (spec §13).

        Networks cannot predict outside what they learned: true values beyond Table 1
        (globulars with [Fe/H] < -0.8, A_V > 5, dMod > 15) pile up at the edges.
        """
        p50 = self.quantile(50)
        flags = {}
        for lab in self.labels:
            lo, hi = self.bounds[lab]
            v = p50[lab].to_numpy()
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
def model_dir(name: str) -> Path:
    """Folder for a cached trained ensemble: ``data_home()/models/cmd_ann/<name>``."""
    return data_home() / "models" / "cmd_ann" / name


def _as_2d(a, name, n_cols=None):
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {arr.shape}")
    if n_cols is not None and arr.shape[1] != n_cols:
        raise ValueError(f"{name} must have {n_cols} columns, got {arr.shape[1]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf values")
    return arr


class ANNEnsemble:
    """Ensemble of Cavallo et al. (2024) networks, trained as one batched Keras model.

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
        z-score fitted on the training pool (ablation).
    seed : int
        Member ``k`` draws its subset with ``numpy.random.default_rng([seed, k])``; also seeds
        the initialisers and dropout.

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

    def __init__(self, n_members: int = 10, subset_size: int | None = 10_000, val_fraction: float = 0.2,
                 hidden: Sequence[int] = (500,) * 5, dropout: float = 0.1, negative_slope: float = 0.3,
                 learning_rate: float = 1e-3, batch_size: int = 128, epochs: int = 200, patience: int = 20,
                 label_bounds: Mapping[str, tuple[float, float]] | None = None,
                 labels: Sequence[str] = LABELS, input_scaling: str = "none", seed: int = 0):
        if n_members < 1:
            raise ValueError("n_members must be >= 1")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError("val_fraction must be in (0, 1)")
        if input_scaling not in ("none", "standard"):
            raise ValueError("input_scaling must be 'none' or 'standard'")
        self.n_members = int(n_members)
        self.subset_size = None if subset_size is None else int(subset_size)
        self.val_fraction = float(val_fraction)
        self.hidden = tuple(int(h) for h in hidden)
        self.dropout = float(dropout)
        self.negative_slope = float(negative_slope)
        self.learning_rate = float(learning_rate)
        self.batch_size = int(batch_size)
        self.epochs = int(epochs)
        self.patience = int(patience)
        self.labels = tuple(labels)
        bounds = dict(TABLE1_BOUNDS if label_bounds is None else label_bounds)
        missing = [lab for lab in self.labels if lab not in bounds]
        if missing:
            raise ValueError(f"label_bounds lacks {missing}")
        self.label_bounds = {lab: (float(bounds[lab][0]), float(bounds[lab][1])) for lab in self.labels}
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

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "ANNEnsemble":
        """Estimator with the training settings of ``PRESETS[name]`` (``fast``, ``laptop``, ``paper``)."""
        if name not in PRESETS:
            raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        keys = ("n_members", "subset_size", "epochs", "patience", "hidden", "batch_size", "learning_rate",
                "input_scaling")
        params = {k: PRESETS[name][k] for k in keys}
        params.update(overrides)
        return cls(**params)

    def __repr__(self):
        state = "fitted" if self.model_ is not None else "unfitted"
        return (f"ANNEnsemble(n_members={self.n_members}, subset_size={self.subset_size}, "
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
        if np.ndim(X) == 1:  # one cluster
            X = np.asarray(X)[None, :]
        X = _as_2d(X, "X", self.n_inputs_)
        if self.input_scaling == "standard":
            X = (X - self.x_mean_) / self.x_scale_
        return X.astype(np.float32)

    def _y_array(self, y, n):
        if isinstance(y, pd.DataFrame):
            y = y[list(self.labels)].to_numpy()
        y = _as_2d(y, "y", len(self.labels))
        if len(y) != n:
            raise ValueError(f"X has {n} rows but y has {len(y)}")
        return y

    # -- subsets ------------------------------------------------------------------------------
    def draw_subsets(self, n_pool: int) -> dict[str, np.ndarray]:
        """Member ``k``'s subset (without replacement, own RNG ``[seed, k]``) and its train/val split."""
        size = n_pool if self.subset_size is None else self.subset_size
        if size > n_pool:
            warnings.warn(f"subset_size {size} > pool of {n_pool} clusters; every member uses the whole pool "
                          "(in a different random split)", RuntimeWarning, stacklevel=3)
            size = n_pool
        n_val = max(1, int(round(self.val_fraction * size)))
        if size - n_val < 1:
            raise ValueError(f"subset of {size} clusters leaves no training rows")
        train, val = [], []
        for k in range(self.n_members):
            rng = np.random.default_rng([self.seed, k])
            sub = rng.choice(n_pool, size=size, replace=False)  # random order
            val.append(sub[:n_val])
            train.append(sub[n_val:])
        return {"train": np.stack(train), "val": np.stack(val)}

    # -- training -----------------------------------------------------------------------------
    def fit(self, X, y, X_val=None, y_val=None, verbose: int = 0, callbacks: Sequence = ()) -> "ANNEnsemble":
        """Train all members at once.

        Parameters
        ----------
        X : array (n, n_in)
            Training pool (QuadTree features + mean parallax).
        y : array (n, n_labels) or DataFrame with the label columns
            True labels in physical units.
        X_val, y_val : optional
            An independent held-out set (never used for training or stopping); each member's
            MSE on it is recorded per epoch as ``history[m]["test_loss"]``.
        verbose : int
            0 silent, 1 Keras progress bar plus one line per epoch, 2 one line per epoch.
        """
        t0 = time.perf_counter()
        X = _as_2d(X, "X")
        n, n_in = X.shape
        y = self._y_array(y, n)
        self.n_inputs_ = n_in
        if self.input_scaling == "standard":
            self.x_mean_ = X.mean(axis=0)
            sd = X.std(axis=0)
            self.x_scale_ = np.where(sd > 0, sd, 1.0)
        Xs = self._transform_inputs(X)
        ys = self.scale_labels(y).astype(np.float32)
        self.subsets_ = self.draw_subsets(n)
        rows_tr, rows_va = self.subsets_["train"], self.subsets_["val"]

        self.model_ = build_ensemble_model(self.n_members, n_in, self.hidden, self.dropout,
                                           self.negative_slope, len(self.labels), seed=self.seed)
        self.model_.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss=member_sum_mse)

        n_tr_eval = min(rows_tr.shape[1], 500)
        test = (None, None)
        if X_val is not None:
            Xt = self._transform_inputs(X_val)
            yt = self.scale_labels(self._y_array(y_val, len(Xt)))
            xt = np.broadcast_to(Xt[:, None, :], (len(Xt), self.n_members, n_in))
            test = (np.ascontiguousarray(xt), yt)
        stopper = PerMemberEarlyStopping(
            _gather(Xs, rows_va), _gather(ys, rows_va).astype(np.float64), patience=self.patience,
            x_train=_gather(Xs, rows_tr[:, :n_tr_eval]),
            y_train=_gather(ys, rows_tr[:, :n_tr_eval]).astype(np.float64),
            x_test=test[0], y_test=test[1], verbose=verbose)
        data = _MemberBatches(Xs, ys, rows_tr, self.batch_size, self.seed)
        self.model_.fit(data, epochs=self.epochs, callbacks=[stopper, *callbacks],
                        verbose=1 if verbose == 1 else 0)
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
            raise RuntimeError("this ANNEnsemble is not fitted; call fit() or ANNEnsemble.load()")

    def predict_scaled(self, X, chunk_bytes: int = 64 << 20) -> np.ndarray:
        """All members' predictions in scaled [0, 1] label units, shape (n, M, n_labels)."""
        self._check_fitted()
        Xs = self._transform_inputs(X)
        n, n_in = Xs.shape
        chunk = max(1, int(chunk_bytes // (4 * self.n_members * n_in)))
        out = []
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
        return EnsemblePrediction(members, self.labels, dict(self.label_bounds), index=index)

    def member_model(self, member: int) -> keras.Model:
        """Member ``member`` as a stand-alone Keras model.

        It takes inputs after ``input_scaling`` and returns labels scaled to [0, 1].
        """
        self._check_fitted()
        return extract_member(self.model_, member, self.dropout, self.negative_slope)

    # -- persistence --------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write weights, configuration, scalers, subsets and history to the folder ``path``.

        Every file is listed with its SHA-256 in ``manifest.json`` (itself checksummed in
        ``manifest.json.sha256``); the folder is assembled under a temporary name and renamed
        into place, so an interrupted save never leaves a half-written model.
        """
        self._check_fitted()
        path = Path(path)
        weights = {f"w{i:03d}": w.numpy() for i, w in enumerate(self.model_.weights)}
        if self.input_scaling == "standard":
            weights["x_mean"] = np.asarray(self.x_mean_)
            weights["x_scale"] = np.asarray(self.x_scale_)
        files = {
            "weights.npz": _npz_bytes(weights),
            "subsets.npz": _npz_bytes({k: v.astype(np.int32) for k, v in self.subsets_.items()}),
            "config.json": json.dumps({
                "format": _FORMAT, "params": self.get_params(), "n_inputs": int(self.n_inputs_),
                "weight_names": [w.path for w in self.model_.weights], "keras": keras.__version__,
                "backend_saved_with": keras.backend.backend(), "fit_time_s": self.fit_time_,
            }, indent=1).encode(),
            "history.json": json.dumps(self.history).encode(),
        }
        manifest = json.dumps({"format": _FORMAT, "files": {k: sha256_bytes(v) for k, v in files.items()}},
                              indent=1).encode()
        tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            for name, data in files.items():
                atomic_write_bytes(tmp / name, data)
            atomic_write_bytes(tmp / "manifest.json", manifest)
            atomic_write_bytes(tmp / "manifest.json.sha256", (sha256_bytes(manifest) + "\n").encode())
            old = None
            if path.exists():
                old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
                os.replace(path, old)
            os.replace(tmp, path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    @staticmethod
    def verify(path) -> dict:
        """Check every file of a saved ensemble against its recorded SHA-256; return the manifest.

        Raises
        ------
        FileNotFoundError
            No saved ensemble at ``path``.
        CorruptCacheError
            A file is missing, altered or truncated: the model must not be used.
        """
        path = Path(path)
        man_path = path / "manifest.json"
        if not path.is_dir() or not man_path.exists():
            raise FileNotFoundError(f"no saved ANN ensemble at {path}")
        side = path / "manifest.json.sha256"
        if not side.exists() or sha256_file(man_path) != side.read_text().strip():
            raise CorruptCacheError(f"{man_path} does not match its checksum record; not using this model")
        manifest = json.loads(man_path.read_text())
        if manifest.get("format") != _FORMAT:
            raise CorruptCacheError(f"{path} has format {manifest.get('format')!r}, expected {_FORMAT!r}")
        for name, digest in manifest["files"].items():
            f = path / name
            if not f.exists():
                raise CorruptCacheError(f"{f} is missing; not using this model")
            if sha256_file(f) != digest:
                raise CorruptCacheError(f"{f} is corrupted (sha256 mismatch); not using this model. "
                                        "Delete the folder to retrain.")
        return manifest

    @classmethod
    def load(cls, path) -> "ANNEnsemble":
        """Load a folder written by :meth:`save`, after verifying every checksum (see :meth:`verify`)."""
        path = Path(path)
        cls.verify(path)
        # Read bytes once and re-check them, so a file changed after verify() is not used either.
        manifest = json.loads((path / "manifest.json").read_text())
        blobs = {}
        for name, digest in manifest["files"].items():
            data = (path / name).read_bytes()
            if sha256_bytes(data) != digest:
                raise CorruptCacheError(f"{path / name} changed while loading; not using this model")
            blobs[name] = data
        config = json.loads(blobs["config.json"])
        params = config["params"]
        params["label_bounds"] = {k: tuple(v) for k, v in params["label_bounds"].items()}
        est = cls(**params)
        est.n_inputs_ = int(config["n_inputs"])
        est.model_ = build_ensemble_model(est.n_members, est.n_inputs_, est.hidden, est.dropout,
                                          est.negative_slope, len(est.labels))
        with np.load(io.BytesIO(blobs["weights.npz"]), allow_pickle=False) as z:
            arrays = [z[f"w{i:03d}"] for i in range(len(est.model_.weights))]
            if est.input_scaling == "standard":
                est.x_mean_, est.x_scale_ = z["x_mean"], z["x_scale"]
        for w, a in zip(est.model_.weights, arrays):
            if tuple(w.shape) != a.shape:
                raise CorruptCacheError(f"weight {w.path} has shape {a.shape}, "
                                        f"model expects {tuple(w.shape)}")
        est.model_.set_weights(arrays)
        with np.load(io.BytesIO(blobs["subsets.npz"]), allow_pickle=False) as z:
            est.subsets_ = {k: z[k].astype(np.int64) for k in z.files}
        est.history = json.loads(blobs["history.json"])
        est.fit_time_ = config.get("fit_time_s")
        return est

    @classmethod
    def load_or_fit(cls, X, y, name: str, X_val=None, y_val=None, refit: bool = False, verbose: int = 0,
                    **params) -> "ANNEnsemble":
        """Reload a cached ensemble from the data home, or train and cache it.

        The cache folder is ``model_dir(f"{name}-{key}")`` where ``key`` hashes the parameters
        and the training arrays, so changed data or settings never reuse a stale model. A
        corrupted cache is reported, deleted and retrained (never used).
        """
        est = cls(**params)
        h = hashlib.sha256()
        h.update(json.dumps(est.get_params(), sort_keys=True).encode())
        h.update(np.ascontiguousarray(np.asarray(X, dtype=np.float64)).tobytes())
        yy = y[list(est.labels)].to_numpy() if isinstance(y, pd.DataFrame) else y
        h.update(np.ascontiguousarray(np.asarray(yy, dtype=np.float64)).tobytes())
        folder = model_dir(f"{name}-{h.hexdigest()[:16]}")
        if not refit:
            try:
                return cls.load(folder)
            except FileNotFoundError:
                pass
            except CorruptCacheError as err:
                warnings.warn(f"{err}; retraining", RuntimeWarning, stacklevel=2)
                shutil.rmtree(folder, ignore_errors=True)
        est.fit(X, y, X_val=X_val, y_val=y_val, verbose=verbose)
        est.save(folder)
        return est


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Calibration and accuracy on held-out synthetic clusters
# ---------------------------------------------------------------------------------------------
def _truth(pred: EnsemblePrediction, y_true) -> np.ndarray:
    if isinstance(y_true, pd.DataFrame):
        y_true = y_true[list(pred.labels)].to_numpy()
    y = np.asarray(y_true, dtype=np.float64)
    if y.shape != (len(pred), len(pred.labels)):
        raise ValueError(f"y_true must have shape {(len(pred), len(pred.labels))}, got {y.shape}")
    return y


def coverage(prediction: EnsemblePrediction, y_true, lower: float = 16, upper: float = 84) -> pd.DataFrame:
    """Calibration and accuracy per label on held-out clusters with known labels.

    Columns: ``coverage`` (fraction of true values inside the ensemble's
    [``lower``, ``upper``] percentile interval), ``nominal`` (its nominal content,
    0.68 for 16-84), ``mean_abs_residual``, ``bias`` (mean of p50 - true),
    ``scatter`` (std of p50 - true), ``rmse``, ``mean_halfwidth`` (mean of
    (p_upper - p_lower) / 2) and ``n``. A coverage far below nominal means the
    member spread underestimates the real error (it measures only the networks'
    disagreement, not the degeneracies of the data).
    """
    y = _truth(prediction, y_true)
    lo, p50, hi = np.percentile(prediction.members, [lower, 50, upper], axis=1)
    res = p50 - y
    inside = (y >= lo) & (y <= hi)
    return pd.DataFrame({
        "coverage": inside.mean(axis=0),
        "nominal": np.full(len(prediction.labels), (upper - lower) / 100.0),
        "mean_abs_residual": np.abs(res).mean(axis=0),
        "bias": res.mean(axis=0),
        "scatter": res.std(axis=0, ddof=1) if len(y) > 1 else np.zeros(len(prediction.labels)),
        "rmse": np.sqrt((res ** 2).mean(axis=0)),
        "mean_halfwidth": ((hi - lo) / 2).mean(axis=0),
        "n": np.full(len(prediction.labels), len(y)),
    }, index=pd.Index(prediction.labels, name="label"))


def coverage_curve(prediction: EnsemblePrediction, y_true, levels=None) -> pd.DataFrame:
    """Empirical vs nominal content of central member intervals (rows: levels; columns: labels)."""
    y = _truth(prediction, y_true)
    levels = np.linspace(0.1, 0.9, 9) if levels is None else np.asarray(levels, dtype=float)
    rows = []
    for lev in levels:
        lo, hi = np.percentile(prediction.members, [50 * (1 - lev), 50 * (1 + lev)], axis=1)
        rows.append(((y >= lo) & (y <= hi)).mean(axis=0))
    return pd.DataFrame(rows, index=pd.Index(levels, name="nominal"), columns=list(prediction.labels))


def plot_coverage(prediction: EnsemblePrediction, y_true, levels=None, ax=None, title: str | None = None):
    """Reliability diagram: empirical fraction of true values inside central member intervals.

    The diagonal is perfect calibration; the 16-84 interval (nominal 0.68) is marked.
    Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    curve = coverage_curve(prediction, y_true, levels)
    cov = coverage(prediction, y_true)
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.8, 4.2))
    else:
        fig = ax.figure
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="ideal")
    for lab in curve.columns:
        label = f"{lab} (16-84: {cov.loc[lab, 'coverage']:.2f})"
        line, = ax.plot(curve.index, curve[lab], marker="o", ms=3, label=label)
        ax.plot([0.68], [cov.loc[lab, "coverage"]], marker="*", ms=10, color=line.get_color())
    ax.axvline(0.68, color="0.8", lw=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("nominal content of the central member interval")
    ax.set_ylabel("fraction of true values inside")
    ax.set_title(title or f"Ensemble calibration ({prediction.n_members} members, "
                          f"{len(prediction)} clusters)")
    ax.legend(fontsize=7, loc="upper left")
    return fig


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
    y = _truth(prediction, y_true)
    if estimate == "p50":
        est = np.percentile(prediction.members, 50, axis=1)
    elif estimate == "mean":
        est = prediction.members.mean(axis=1)
    elif isinstance(estimate, (int, np.integer)):
        est = prediction.members[:, int(estimate)]
    else:
        raise ValueError("estimate must be 'p50', 'mean' or a member index")
    logn = np.log10(np.asarray(n_stars, dtype=np.float64))
    if logn.shape != (len(y),):
        raise ValueError("n_stars must have one value per cluster")
    bins = np.arange(1.0, 3.51, 0.5) if bins is None else np.asarray(bins, dtype=float)
    cat = pd.cut(logn, bins, include_lowest=True)
    res = pd.DataFrame(est - y, columns=list(prediction.labels))
    grouped = res.groupby(cat, observed=False)
    out = pd.concat({lab: grouped[lab].agg(["mean", "std", "count"]).rename(columns={"count": "n"})
                     for lab in prediction.labels}, axis=1)
    out.index.name = "log10_n_stars"
    return out


# ---------------------------------------------------------------------------------------------
# Hyper-parameter search (keras-tuner)
# ---------------------------------------------------------------------------------------------
@dataclass
class TuneResult:
    """Outcome of :func:`tune`: the tuner, one row per trial, the best hyper-parameters."""

    tuner: Any
    trials: pd.DataFrame
    best_hyperparameters: dict


def tune(X, y, max_trials: int | None = None, epochs: int | None = None, directory=None,
         project_name: str = "cmd_ann", label_bounds=None, labels: Sequence[str] = LABELS,
         val_fraction: float = 0.2, batch_size: int = 128, seed: int = 0, overwrite: bool = True,
         input_scaling: str = "none", verbose: int = 0) -> TuneResult:
    """Small keras-tuner RandomSearch on one member's network.

    Search space: depth 3-6 hidden layers, width 128-512 (step 64), input dropout 0-0.2
    (step 0.05), learning rate 1e-4-3e-3 (log). Objective: validation MSE on scaled labels
    (random 80/20 split of ``X``). FAST mode defaults: 2 trials of 2 epochs; otherwise 10 x 30.
    ``input_scaling="standard"`` z-scores the inputs with the training split's statistics
    (as :class:`ANNEnsemble` does with the same setting).

    keras-tuner records a failing trial (e.g. tensorboard missing on the tensorflow backend)
    and carries on; this function checks every trial's status and raises
    :class:`RuntimeError` with the trials' messages unless all are ``COMPLETED``.
    """
    import keras_tuner as kt

    fast = fast_mode()
    max_trials = int(max_trials or (2 if fast else 10))
    epochs = int(epochs or (2 if fast else 30))
    directory = Path(directory) if directory is not None else data_home() / "keras_tuner"
    scaler = ANNEnsemble(n_members=1, label_bounds=label_bounds, labels=labels)
    X = _as_2d(X, "X").astype(np.float32)
    y = scaler.scale_labels(scaler._y_array(y, len(X))).astype(np.float32)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(X))
    n_val = max(1, int(round(val_fraction * len(X))))
    va, tr = perm[:n_val], perm[n_val:]
    if input_scaling == "standard":
        mu, sd = X[tr].mean(axis=0), X[tr].std(axis=0)
        X = ((X - mu) / np.where(sd > 0, sd, 1.0)).astype(np.float32)
    elif input_scaling != "none":
        raise ValueError("input_scaling must be 'none' or 'standard'")
    n_in, n_out = X.shape[1], y.shape[1]

    def build(hp):
        depth = hp.Int("depth", 3, 6)
        width = hp.Int("width", 128, 512, step=64)
        rate = hp.Float("dropout", 0.0, 0.2, step=0.05)
        lr = hp.Float("learning_rate", 1e-4, 3e-3, sampling="log")
        model = build_single_model(n_in, (width,) * depth, dropout=rate, n_outputs=n_out)
        model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
        return model

    tuner = kt.RandomSearch(build, objective="val_loss", max_trials=max_trials, seed=seed,
                            directory=str(directory), project_name=project_name, overwrite=overwrite)
    tuner.search(X[tr], y[tr], validation_data=(X[va], y[va]), epochs=epochs, batch_size=batch_size,
                 verbose=verbose)
    trials = list(tuner.oracle.trials.values())
    bad = [t for t in trials if t.status != "COMPLETED"]
    if not trials or bad:
        msgs = "; ".join(f"trial {t.trial_id}: {t.status} ...{(t.message or '').strip()[-400:]}" for t in bad)
        raise RuntimeError(
            f"keras-tuner: {len(bad)} of {len(trials)} trials did not complete ({msgs or 'no trials ran'}). "
            "On the tensorflow backend keras-tuner needs the 'tensorboard' package.")
    rows = []
    for t in trials:
        rows.append({"trial_id": t.trial_id, "status": t.status, "score": t.score,
                     **t.hyperparameters.values})
    frame = pd.DataFrame(rows).sort_values("score").reset_index(drop=True)
    best = tuner.get_best_hyperparameters(1)[0].values
    return TuneResult(tuner=tuner, trials=frame, best_hyperparameters=dict(best))


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
