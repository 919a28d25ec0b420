"""The turn-off training proposal and its importance weights (ocnb.binaries.proposal), on SIMULATED stars."""

import numpy as np
import pytest

from ocnb.binaries import make_prior, simulate_stars
from ocnb.binaries.proposal import TurnoffProposal, systematic_resample
from ocnb.binaries.simulate import simulation_lattice


@pytest.fixture(scope="module")
def prior():
    return make_prior()


@pytest.fixture(scope="module")
def proposal(prior):
    return TurnoffProposal.from_lattice(prior, simulation_lattice(prior), fraction=0.25)


def test_window_brackets_the_turn_off_of_an_m67_like_isochrone(proposal):
    lo, hi = proposal.window(9.55, 0.02)
    # PARSEC at 3.5 Gyr, solar: the turn-off is near 1.3 M☉ and the giants end a few % above it
    assert 1.0 < lo < 1.3 < hi < 1.6


def test_reweighted_proposal_draws_have_the_prior_phase_mix(prior, proposal):
    n = 60_000
    prop = simulate_stars(n, prior, seed=21, progress=False, draw=proposal.draw(prior)).to_frame()
    base = simulate_stars(n, prior, seed=22, progress=False).to_frame()
    evolved_prop = (prop["label_a"] >= 2).to_numpy()
    evolved_base = (base["label_a"] >= 2).to_numpy()
    assert evolved_prop.mean() > 3 * evolved_base.mean()  # the point of the proposal
    w = np.exp(proposal.log_weight(prop["mass_a"], prop["log_age"], prop["feh"]))
    ess = w.sum() ** 2 / (w**2).sum()
    reweighted = w[evolved_prop].sum() / w.sum()
    p = evolved_base.mean()
    sigma = np.sqrt(p * (1 - p) / ess + p * (1 - p) / n)
    assert abs(reweighted - p) < 4 * sigma, (reweighted, p, sigma)
    # and the mass distribution of the prior is back (weighted median vs plain median, 2 %)
    order = np.argsort(prop["mass_a"].to_numpy())
    cdf = np.cumsum(w[order]) / w.sum()
    wmed = prop["mass_a"].to_numpy()[order][np.searchsorted(cdf, 0.5)]
    assert wmed == pytest.approx(np.median(base["mass_a"]), rel=0.02)


def test_systematic_resampling():
    rng = np.random.default_rng(0)
    assert (systematic_resample(np.zeros((3, 7)), rng) == np.arange(7)).all()
    w = np.array([1.0, 0.0, 0.0, 1.0, 2.0, 0.0])
    with np.errstate(divide="ignore"):
        idx = systematic_resample(np.log(np.tile(w, (50, 1))), rng)
    counts = np.stack([(idx == k).sum(axis=1) for k in range(6)], axis=1)
    expected = 6 * w / w.sum()
    assert (np.abs(counts - expected) < 1 + 1e-9).all()  # systematic: each count within 1 of expectation
    assert counts[:, [1, 2, 5]].sum() == 0
    nothing = systematic_resample(np.full((1, 4), -np.inf), rng)
    assert (nothing == np.arange(4)).all()


def test_fixed_primary_mass_means_no_enrichment():
    prior = make_prior(mass_a=1.0, log_age=(9.0, 9.5), feh=(-0.2, 0.2))
    prop = TurnoffProposal.from_lattice(prior, simulation_lattice(prior))
    assert prop.fraction == 0.0


def test_round_trip(proposal):
    back = TurnoffProposal.from_dict(proposal.to_dict())
    m, a, f = np.array([1.0, 1.3, 5.0]), np.array([9.55, 9.55, 8.0]), np.array([0.0, 0.0, -0.5])
    assert np.allclose(back.log_weight(m, a, f), proposal.log_weight(m, a, f))


def test_non_finite_samples_get_a_neutral_weight(proposal):
    lw = proposal.log_weight(np.array([np.nan, 1.3, 1.3]), np.array([9.55, np.nan, 9.55]),
                             np.array([0.0, 0.0, np.nan]))
    assert (lw == 0.0).all()


@pytest.mark.parametrize("kw, match", [
    ({"fraction": 1.0}, r"fraction must be in \[0, 1\), not 1.0"),
    ({"fraction": -0.1}, r"fraction must be in \[0, 1\), not -0.1"),
    ({"below": 1.5}, r"below must be in \[0, 1\), not 1.5"),
])
def test_bad_input_table(prior, kw, match):
    with pytest.raises(ValueError, match=match):
        TurnoffProposal.from_lattice(prior, simulation_lattice(prior), **kw)
