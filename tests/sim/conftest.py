"""Fixtures of the ocnb.sim tests: generic priors (inside the PARSEC grid) and one shared simulation."""

import pytest

#: Generic uniform priors inside the PARSEC grid (no [Fe/H] clip needed).
PRIORS = {"log_age": (6.7, 10.1), "feh": (-0.8, 0.3), "a_v": (0.0, 5.0), "dist_mod": (0.0, 15.0),
          "log_n": (1.0, 3.5)}


@pytest.fixture(scope="session")
def sim():
    """150 SIMULATED clusters from the generic priors (seed 11)."""
    from ocnb.sim import simulate_populations

    return simulate_populations(150, seed=11, priors=PRIORS, progress=False)


@pytest.fixture(scope="session")
def m67_real():
    """Real M67 members (shipped catalogue)."""
    from ocnb.datasets import load_members

    return load_members("M67")
