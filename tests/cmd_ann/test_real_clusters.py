"""Acceptance (slow): the laptop preset places real clusters within the literature's scatter.

Trains the laptop preset on first use (about 15–25 min per model on 2 CPU cores; cached in the
data home afterwards). Run with ``./dev test -m slow tests/cmd_ann/test_real_clusters.py``.
"""

import numpy as np
import pytest

from ocnb.cmd_ann import LITERATURE_TOLERANCE, compare_models, real_cluster_check, simulate_clusters, train_default

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models():
    return train_default("laptop", bands="multi"), train_default("laptop", bands="gaia")


def test_multiband_beats_gaia_only_on_simulated_test_clusters(models):
    multi, gaia = models
    test = simulate_clusters(1000, seed=2024, progress=False,
                             mass_function=multi.mass_function)  # SIMULATED, held out
    cmp = compare_models({"multi": multi, "gaia": gaia}, test).pivot(index="label", columns="model", values="rmse")
    assert (cmp["multi"] < cmp["gaia"]).all(), cmp


def test_real_clusters_within_literature_scatter(models):
    multi, gaia = models
    check = real_cluster_check(multi, gaia)
    for k, tol in LITERATURE_TOLERANCE.items():
        d = check[f"d_{k}"].abs().dropna()
        assert len(d) >= 6
        assert np.median(d) < tol, f"median |Δ {k}| = {np.median(d):.3f} ≥ {tol}\n{check}"
