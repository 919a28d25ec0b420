"""Fixtures of the ocnb.membership tests: the real Blanco 1 DR2 cone (seed members = its ``ocelot_label == 0``
stars), the M67 DR3 cone and an Almeida EDR3 member table, each prepared once per session."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def blanco1_cone():
    """The real Blanco 1 Gaia DR2 cone (14 785 stars, G < 18, no correlations, no n_obs)."""
    from ocnb.datasets import load_field

    return load_field("blanco1")


@pytest.fixture(scope="session")
def blanco1_seed(blanco1_cone):
    """Seed member mask of the Blanco 1 cone: its ocelot cluster label (262 stars)."""
    return (blanco1_cone["ocelot_label"] == 0).to_numpy()


@pytest.fixture(scope="session")
def blanco1(blanco1_cone, blanco1_seed):
    """PreparedCluster of the real Blanco 1 cone (CG2020 distance, age, A_V)."""
    from ocnb.membership.features import prepare_cluster

    return prepare_cluster(blanco1_cone, blanco1_seed, name="Blanco 1")


@pytest.fixture(scope="session")
def m67():
    """PreparedCluster of the real M67 DR3 proper-motion-box cone, seeds = its ``selected`` members."""
    from ocnb.datasets import load_field
    from ocnb.membership.features import prepare_cluster

    cone = load_field("m67")
    return prepare_cluster(cone, cone["selected"].to_numpy(bool), name="M67")


@pytest.fixture(scope="session")
def almeida_members():
    """Almeida+2023 EDR3 members of NGC 2360 (3 astrometric correlations, magnitude errors)."""
    from ocnb.datasets import load_members

    return load_members("NGC 2360", source="almeida")


@pytest.fixture(scope="session")
def almeida(almeida_members):
    """PreparedCluster of the NGC 2360 member table used as its own cone (all rows seeds)."""
    from ocnb.membership.features import prepare_cluster

    return prepare_cluster(almeida_members, np.ones(len(almeida_members), bool), name="NGC 2360")
