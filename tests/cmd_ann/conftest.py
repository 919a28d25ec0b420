"""Fixtures shared by the ocnb.cmd_ann tests: the shipped real catalogues (loaded once per session)."""

import pytest

from ocnb.datasets import load_catalog


@pytest.fixture(scope="session")
def cavallo():
    """The published Cavallo et al. (2024) catalogue (real)."""
    return load_catalog("CAVALLO2024")


@pytest.fixture(scope="session")
def hunt():
    """Hunt & Reffert (2023) clusters (real)."""
    return load_catalog("HUNT2023")
