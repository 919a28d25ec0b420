"""keras-tuner glue: a small random search over one member's architecture and learning rate."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import data_home, fast_mode
from .estimator import ANNEnsemble, _as_2d
from .layers import build_single_model, keras
from .training import deterministic

__all__ = ["tune", "TuneResult"]


@dataclass
class TuneResult:
    """Outcome of :func:`tune`: the tuner, one row per trial, the best hyper-parameters."""

    tuner: Any
    trials: pd.DataFrame
    best_hyperparameters: dict

    def to_frame(self) -> pd.DataFrame:
        return self.trials


def tune(X, y, labels: Sequence[str], label_bounds: Mapping[str, Sequence[float]], max_trials: int | None = None,
         epochs: int | None = None, directory=None, project_name: str = "ocnb", val_fraction: float = 0.2,
         batch_size: int = 128, seed: int = 0, overwrite: bool = True, input_scaling: str = "none",
         verbose: int = 0) -> TuneResult:
    """Small keras-tuner RandomSearch on one member's network.

    Search space: depth 3-6 hidden layers, width 128-512 (step 64), input dropout 0-0.2
    (step 0.05), learning rate 1e-4-3e-3 (log). Objective: validation MSE on labels scaled to
    [0, 1] by ``label_bounds`` (random 80/20 split of ``X``). FAST mode defaults: 2 trials of
    2 epochs; otherwise 10 x 30. ``input_scaling="standard"`` z-scores the inputs with the
    training split's statistics (as :class:`~ocnb.ml.ANNEnsemble` does with the same setting).
    Trials run under :func:`~ocnb.ml.training.deterministic` (same seed, same search).

    Without ``directory``, each search gets its own project folder
    ``data_home()/keras_tuner/<project_name>-<date>-<time>-<pid>``: keras-tuner deletes and
    recreates its project folder (``overwrite=True``), so two searches sharing one folder (two
    notebooks, or a notebook and a test run on one data home) would delete each other's trial
    checkpoints mid-search. Pass ``directory``/``project_name`` to resume or to choose the place.

    keras-tuner records a failing trial (e.g. tensorboard missing on the tensorflow backend)
    and carries on; this function checks every trial's status and raises
    :class:`RuntimeError` with the trials' messages unless all are ``COMPLETED``.
    """
    import keras_tuner as kt

    fast = fast_mode()
    max_trials = int(max_trials or (2 if fast else 10))
    epochs = int(epochs or (2 if fast else 30))
    if input_scaling not in ("none", "standard"):
        raise ValueError(f"input_scaling must be 'none' or 'standard', not {input_scaling!r}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if directory is None:
        directory = data_home() / "keras_tuner"
        project_name = f"{project_name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    directory = Path(directory)
    scaler = ANNEnsemble(labels=labels, label_bounds=label_bounds, n_members=1)
    X = _as_2d(X, "X").astype(np.float32)
    y = scaler.scale_labels(scaler._y_array(y, len(X), check_bounds=True)).astype(np.float32)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(X))
    n_val = max(1, round(val_fraction * len(X)))
    va, tr = perm[:n_val], perm[n_val:]
    if len(tr) < 1:
        raise ValueError(f"{len(X)} rows leave no training rows after the validation split")
    if input_scaling == "standard":
        mu, sd = X[tr].mean(axis=0), X[tr].std(axis=0)
        X = ((X - mu) / np.where(sd > 0, sd, 1.0)).astype(np.float32)
    n_in, n_out = X.shape[1], y.shape[1]

    def build(hp):
        depth = hp.Int("depth", 3, 6)
        width = hp.Int("width", 128, 512, step=64)
        rate = hp.Float("dropout", 0.0, 0.2, step=0.05)
        lr = hp.Float("learning_rate", 1e-4, 3e-3, sampling="log")
        model = build_single_model(n_in, (width,) * depth, dropout=rate, n_outputs=n_out)
        model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
        return model

    with deterministic(seed), warnings.catch_warnings():
        # keras-tuner 1.4's oracle calls the deprecated threading.currentThread()/getName() on every
        # trial; nothing for a user to act on, so DeprecationWarnings raised by keras-tuner's own code
        # are not shown while it runs (ours and everyone else's still are).
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"keras_tuner\.")
        # keras-tuner checkpoints every trial with Keras' save_weights, which converts variables with
        # np.array(v, copy=False): NumPy 2 warns about that inside Keras' code (not ours).
        warnings.filterwarnings("ignore", message=r"__array__ implementation doesn't accept a copy keyword",
                                category=DeprecationWarning)
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
    rows = [{"trial_id": t.trial_id, "status": t.status, "score": t.score, **t.hyperparameters.values}
            for t in trials]
    frame = pd.DataFrame(rows).sort_values("score").reset_index(drop=True)
    best = tuner.get_best_hyperparameters(1)[0].values
    return TuneResult(tuner=tuner, trials=frame, best_hyperparameters=dict(best))
