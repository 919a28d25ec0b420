"""ocnb.ml.layers: the batched ensemble layers equal M independent Dense networks."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from ocnb.ml.layers import (  # noqa: E402
    BatchedDense,
    build_ensemble_model,
    build_single_model,
    extract_member,
    member_param_count,
    member_sum_mse,
)


def test_parameter_count_and_architecture():
    assert member_param_count(12, (16, 8), 3) == (12 * 16 + 16) + (16 * 8 + 8) + (8 * 3 + 3)
    model = build_ensemble_model(3, 12, hidden=(16, 8), n_outputs=3)
    assert model.count_params() == 3 * member_param_count(12, (16, 8), 3)
    assert build_single_model(12, (16, 8), n_outputs=3).count_params() == member_param_count(12, (16, 8), 3)
    assert model.output_shape == (None, 3, 3)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("BatchedDense") == 3 and kinds.count("LeakyReLU") == 2 and kinds.count("Dropout") == 1


def test_batched_model_equals_independent_single_models():
    m, n_in = 4, 12
    model = build_ensemble_model(m, n_in, hidden=(16, 8), seed=3)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(25, m, n_in)).astype(np.float32)
    out = np.asarray(model.predict_on_batch(x))
    for k in range(m):
        ref = np.asarray(extract_member(model, k).predict_on_batch(x[:, k, :]))
        np.testing.assert_allclose(out[:, k, :], ref, atol=1e-5, rtol=1e-5)
    assert not np.allclose(out[:, 0, :], out[:, 1, :])  # members really differ
    # A 2-D input is shared by every member and equals the broadcast 3-D input.
    shared = keras.ops.convert_to_numpy(model.get_layer("hidden_0")(x[:, 0, :]))
    bcast = keras.ops.convert_to_numpy(model.get_layer("hidden_0")(np.repeat(x[:, :1, :], m, axis=1)))
    np.testing.assert_allclose(shared, bcast, atol=1e-6)


def test_per_member_initialisation_has_dense_glorot_scale():
    model = build_ensemble_model(8, 190, hidden=(500,), seed=0)
    kernel = model.get_layer("hidden_0").kernel.numpy()
    limit = np.sqrt(6 / (190 + 500))
    assert np.abs(kernel).max() <= limit + 1e-7
    assert np.abs(kernel).max() > 0.95 * limit  # not Glorot over (M*190, M*500) fans
    assert not np.allclose(kernel[0], kernel[1])


def test_one_batched_training_step_equals_independent_steps():
    """Summed per-member MSE: Adam moves each member exactly as if it trained alone."""
    m, n_in, b = 3, 6, 16
    rng = np.random.default_rng(1)
    model = build_ensemble_model(m, n_in, hidden=(8, 8), dropout=0.0, seed=2)
    singles = [extract_member(model, k, dropout=0.0) for k in range(m)]
    x = rng.normal(size=(b, m, n_in)).astype(np.float32)
    y = rng.uniform(size=(b, m, 4)).astype(np.float32)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=member_sum_mse)
    for _ in range(3):
        model.train_on_batch(x, y)
    for k, single in enumerate(singles):
        single.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
        for _ in range(3):
            single.train_on_batch(x[:, k, :], y[:, k, :])
        ref = np.asarray(single.predict_on_batch(x[:, k, :]))
        np.testing.assert_allclose(np.asarray(model.predict_on_batch(x))[:, k, :], ref, atol=1e-5)


def test_config_round_trip():
    layer = BatchedDense(3, 5, seed=4, name="bd")
    again = BatchedDense.from_config(layer.get_config())
    assert (again.n_members, again.units, again.seed) == (3, 5, 4)


BAD = [
    ("wrong member axis", lambda: BatchedDense(3, 4)(np.zeros((2, 5, 6), np.float32)), ValueError,
     r"expects 3 members on axis 1"),
    ("member index out of range", lambda: extract_member(build_ensemble_model(2, 3, hidden=(4,)), 5), IndexError,
     r"member 5 does not exist: the model has 2 members"),
    ("not a batched model", lambda: extract_member(build_single_model(3, (4,)), 0), ValueError,
     r"no BatchedDense layers"),
]


@pytest.mark.parametrize("name, call, error, match", BAD, ids=[b[0] for b in BAD])
def test_bad_input_table(name, call, error, match):
    with pytest.raises(error, match=match):
        call()
