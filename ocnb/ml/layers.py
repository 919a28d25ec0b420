"""Batched ensemble layers: ``M`` independent networks evaluated as one Keras model.

:class:`BatchedDense` holds a kernel of shape ``(M, n_in, n_out)`` and maps
``(batch, M, n_in) -> (batch, M, n_out)`` with one ``keras.ops.einsum``; a 2-D input
``(batch, n_in)`` is shared by every member (inference). :func:`build_ensemble_model`
stacks them into ``M`` members of ``Input -> Dropout -> [Dense -> LeakyReLU] x L -> Dense``
(the architecture of Cavallo et al. 2024, Sect. 3.2, with its widths as defaults), and
:func:`member_sum_mse` is the loss whose gradient for member ``m`` is exactly the gradient
of member ``m``'s own MSE, so Adam (a per-parameter optimiser) trains every member as if
alone. :func:`extract_member` gives one member back as an ordinary ``Dense`` network.

Everything numerical uses ``keras.ops``, so the layers run on the tensorflow, jax and torch
backends. Importing this module imports Keras (with ``$KERAS_BACKEND``, default tensorflow)
but configures nothing.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from ..config import KERAS_BACKENDS, keras_backend

if keras_backend() not in KERAS_BACKENDS:  # a clear message instead of Keras' own import failure
    raise ValueError(f"KERAS_BACKEND={keras_backend()!r} is not supported; choose one of {KERAS_BACKENDS}")

import keras
from keras import ops

__all__ = [
    "BatchedDense",
    "member_sum_mse",
    "member_param_count",
    "build_ensemble_model",
    "build_single_model",
    "extract_member",
]


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
    return int(sum(a * b + b for a, b in itertools.pairwise(sizes)))


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
    if not layers:
        raise ValueError(f"model {model.name!r} has no BatchedDense layers: not a batched ensemble")
    n_in = int(layers[0].kernel.shape[1])
    hidden = [layer.units for layer in layers[:-1]]
    single = build_single_model(n_in, hidden, dropout=dropout, negative_slope=negative_slope,
                                n_outputs=layers[-1].units)
    dense = [layer for layer in single.layers if isinstance(layer, keras.layers.Dense)]
    n_members = layers[0].n_members
    if not -n_members <= int(member) < n_members:
        raise IndexError(f"member {member} does not exist: the model has {n_members} members")
    for d, b in zip(dense, layers, strict=True):
        d.set_weights([b.kernel.numpy()[member], b.bias.numpy()[member]])
    return single
