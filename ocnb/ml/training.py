"""Training machinery of the batched ensemble: per-member data feed, early stopping, progress, seeds.

* :class:`MemberBatches` feeds ``(x (b, M, n_in), y (b, M, n_out))`` batches in which member
  ``m``'s column comes from member ``m``'s own rows only.
* :class:`PerMemberEarlyStopping` keeps every member's own patience counter and best weights
  (its slice of every variable along the member axis), as ``EarlyStopping(restore_best_weights=True)``
  would for a lone network.
* :class:`TrainingProgress` is the progress bar of a fit: one ``tqdm.auto`` bar over the epochs
  (a widget in JupyterLab, text in a terminal) with the loss, the validation loss, the members
  still improving and the ETA. ``OCNB_PROGRESS=0`` silences it.
* :func:`deterministic` seeds Python, NumPy and the Keras backend and switches the backend to
  deterministic ops for the duration of a fit (same seed -> same weights, bit for bit, on the
  tensorflow, jax and torch CPU backends; see :data:`DETERMINISM_NOTE`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .layers import keras, ops

__all__ = [
    "MemberBatches",
    "PerMemberEarlyStopping",
    "TrainingProgress",
    "deterministic",
    "quiet_retracing",
    "gather_members",
    "member_mse",
    "DETERMINISM_NOTE",
]

#: What "same seed, same model" means on each backend (tests/ml/test_estimator.py checks it).
DETERMINISM_NOTE = (
    "Inside ANNEnsemble.fit, keras.utils.set_random_seed(seed) seeds Python, NumPy and the backend "
    "(without it Keras draws the dropout masks from a process-wide seed generator, so two fits with the "
    "same seed differed by up to 0.02 in the weights after 3 epochs), and the backend runs deterministic "
    "ops: tf.config.experimental.enable_op_determinism() on tensorflow, "
    "torch.use_deterministic_algorithms(True) on torch (both switched back off afterwards); jax is deterministic "
    "on CPU. The data feed uses no worker threads. Two fits with the same seed, data and settings then "
    "give identical weights on the same machine and software stack (tests/ml/test_estimator.py checks it "
    "bit for bit on tensorflow, tests/ml/test_backends.py on jax and torch). Across different CPUs or thread "
    "counts float reductions may round differently; on GPUs jax needs "
    "XLA_FLAGS=--xla_gpu_deterministic_ops=true set before it starts."
)


class MemberBatches(keras.utils.PyDataset):
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


def gather_members(X, rows):
    """(M, k) row indices -> (k, M, n) array: member m's k samples in column m."""
    return np.ascontiguousarray(X[rows].transpose(1, 0, 2))


def _forward(model, x, batch_size=1024) -> np.ndarray:
    # Eager calls, not model.predict: predict compiles one graph per input shape, and the
    # validation, training-subsample and test sets have three shapes (TensorFlow then logs
    # "triggered tf.function retracing" warnings every epoch).
    out = [np.asarray(ops.convert_to_numpy(model(x[s:s + batch_size], training=False)), dtype=np.float64)
           for s in range(0, len(x), batch_size)]
    return np.concatenate(out, axis=0)


def member_mse(model, x, y, batch_size=1024):
    """Per-member MSE (scaled units) of a batched model on gathered data (k, M, n)."""
    pred = _forward(model, x, batch_size)
    return np.mean((pred - y) ** 2, axis=(0, 2))


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
        val = member_mse(self.model, self.x_val, self.y_val)
        self.records["val_loss"].append(val)
        if self.x_train is not None:
            self.records["loss"].append(member_mse(self.model, self.x_train, self.y_train))
        if self.x_test is not None:
            pred = _forward(self.model, self.x_test)
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
                for b, w in zip(self.best_weights, weights, strict=True):
                    b[idx] = ops.convert_to_numpy(ops.take(w, ops.convert_to_tensor(idx), axis=0))
            self.best[improved] = val[improved]
            self.best_epoch[improved] = epoch
        self.wait[improved] = 0
        self.wait[active & ~improved] += 1
        newly = active & (self.wait >= self.patience)
        self.stopped[newly] = True
        self.stopped_epoch[newly] = epoch
        if logs is not None:  # shown by TrainingProgress (and Keras' own progress bar)
            logs["val_loss"] = float(np.median(val))
            logs["members_active"] = int((~self.stopped).sum())
        if self.verbose:
            print(f"epoch {epoch + 1}: val MSE median {np.median(val):.4g} "
                  f"(best {np.median(self.best):.4g}); "
                  f"{int((~self.stopped).sum())}/{len(val)} members still improving")
        if self.stopped.all():
            self.model.stop_training = True

    def restore(self):
        """Give every member its best-epoch weights (no-op before the first epoch)."""
        if self.best_weights is not None:
            for w, b in zip(self.model.trainable_weights, self.best_weights, strict=True):
                w.assign(b)


def _progress_enabled() -> bool:
    from ..parallel import progress_enabled

    return progress_enabled()


class TrainingProgress(keras.callbacks.Callback):
    """Progress bar of a fit: one ``tqdm.auto`` bar over the epochs with loss, val-loss and ETA.

    Renders as a widget in JupyterLab and as text in a terminal. The postfix shows the training
    loss of the last epoch, the median validation loss over members (``val_loss``, written into
    the logs by :class:`PerMemberEarlyStopping`) and how many members are still improving. If
    early stopping ends the fit before ``epochs``, the bar is closed as complete at that epoch.

    Parameters
    ----------
    epochs : int
        Maximum number of epochs (the bar's total).
    desc : str
        Label in front of the bar.
    disable : bool, optional
        ``None`` (default): shown unless ``$OCNB_PROGRESS`` is ``0``/``false``/``no``/``off``.
    file : file-like, optional
        Where a text bar is written (default stderr; tests pass a ``StringIO``).
    """

    def __init__(self, epochs: int, desc: str = "training", disable: bool | None = None, file=None):
        super().__init__()
        self.epochs = int(epochs)
        self.desc = desc
        self.disable = (not _progress_enabled()) if disable is None else bool(disable)
        self.file = file
        self.bar = None
        self.early_stopped = False

    def _open(self):
        if self.bar is None:
            if self.file is not None:  # an explicit stream: plain text bar (notebook widgets ignore it)
                from tqdm import tqdm
            else:
                from tqdm.auto import tqdm
            self.bar = tqdm(total=self.epochs, desc=self.desc, unit="epoch", disable=self.disable,
                            file=self.file, leave=True, dynamic_ncols=self.file is None, mininterval=0.0)
        return self.bar

    def on_train_begin(self, logs=None):
        self.bar = None
        self.early_stopped = False
        self._open()

    def on_epoch_end(self, epoch, logs=None):
        bar = self._open()
        logs = logs or {}
        post = {}
        for key in ("loss", "val_loss"):
            if key in logs and logs[key] is not None:
                post[key] = f"{float(logs[key]):.4g}"
        if "members_active" in logs:
            post["improving"] = f"{int(logs['members_active'])}"
        bar.set_postfix(post, refresh=False)
        bar.update(1)

    def on_train_end(self, logs=None):
        self.close()

    def close(self):
        """Close the bar; an early stop shrinks its total to the epochs run, so it ends complete."""
        bar, self.bar = self.bar, None
        if bar is None:
            return
        if bar.total and bar.n < bar.total and getattr(self.model, "stop_training", False):
            self.early_stopped = True
            bar.total = bar.n
            widget = getattr(getattr(bar, "container", None), "children", None)
            if widget:  # the notebook widget keeps its own maximum
                widget[1].max = bar.n
            bar.set_description(f"{self.desc} (early stop)", refresh=False)
        bar.close()


@contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seed everything and use deterministic backend ops inside the ``with`` block.

    Calls ``keras.utils.set_random_seed(seed)`` (Python ``random``, NumPy's global RNG and the
    backend's RNG: a documented side effect on those global generators) and switches on the
    backend's deterministic ops, restoring the previous switch on exit (see :data:`DETERMINISM_NOTE`).
    """
    seed = int(seed)
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed}")
    keras.utils.set_random_seed(seed)
    backend = keras.backend.backend()
    restore: Any = None
    if backend == "tensorflow":
        import tensorflow as tf

        try:  # only enable_op_determinism is public; the query and the switch-off live here
            from tensorflow.python.framework import config as tf_config

            is_on, switch_off = tf_config.is_op_determinism_enabled, tf_config.disable_op_determinism
        except (ImportError, AttributeError):  # pragma: no cover - other tensorflow versions: leave it on
            is_on, switch_off = (lambda: False), None
        if not is_on():
            tf.config.experimental.enable_op_determinism()
            restore = switch_off
    elif backend == "torch":
        import torch

        if not torch.are_deterministic_algorithms_enabled():
            torch.use_deterministic_algorithms(True)
            restore = lambda: torch.use_deterministic_algorithms(False)  # noqa: E731
    try:
        yield
    finally:
        if restore is not None:
            restore()


class _DropRetracing:
    def filter(self, record) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextmanager
def quiet_retracing() -> Iterator[None]:
    """Drop TensorFlow's "triggered tf.function retracing" log lines inside the block.

    Predicting a different number of rows compiles a new graph on purpose (the batch shape is
    part of it, and re-using one padded shape could change the last bits of the results of a
    saved model); TensorFlow reports that as a warning that is not a problem here. Only that
    message of the ``tensorflow`` logger is filtered, and only while the block runs.
    """
    import logging

    logger = logging.getLogger("tensorflow")
    flt = _DropRetracing()
    logger.addFilter(flt)
    try:
        yield
    finally:
        logger.removeFilter(flt)
