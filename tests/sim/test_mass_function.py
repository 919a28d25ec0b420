"""Mass functions (ocnb.sim.mass_function): integrals, inverse sampling, ranges, draws."""

import numpy as np
import pytest

from ocnb.sim import (
    MASS_FUNCTIONS,
    SALPETER_ALPHA,
    broken_power_law_integral,
    broken_power_law_inverse,
    draw_mass_function,
    mass_function_ranges,
    salpeter_integral,
    salpeter_inverse,
)


def test_broken_power_law_reduces_to_salpeter_and_handles_slope_one():
    a, b = np.array([0.1, 0.3, 0.45, 0.6]), np.array([0.2, 0.6, 0.55, 0.9])
    np.testing.assert_allclose(broken_power_law_integral(a, b, 0.5, 2.35), salpeter_integral(a, b), rtol=1e-12)
    # alpha_low = 1 is the logarithmic case: ∫ dm/m, scaled for continuity at the break
    low = broken_power_law_integral(np.array([0.1]), np.array([0.4]), 0.5, 1.0)
    np.testing.assert_allclose(low, np.log(4.0) * 0.5 ** (1.0 - 2.35), rtol=1e-9)
    # inverse sampling across the break follows the integral in every mass bin
    u = np.random.default_rng(0).random(400_000)
    m = broken_power_law_inverse(np.full(u.size, 0.1), np.full(u.size, 2.0), u, 0.5, 0.2)
    edges = np.array([0.1, 0.3, 0.5, 0.8, 2.0])
    counts = np.histogram(m, edges)[0] / u.size
    expect = broken_power_law_integral(edges[:-1], edges[1:], 0.5, 0.2)
    np.testing.assert_allclose(counts, expect / expect.sum(), atol=3e-3)


def test_salpeter_inverse_is_the_cdf_inverse():
    u = np.array([0.0, 0.25, 0.5, 0.999])
    m = salpeter_inverse(0.2, 5.0, u)
    np.testing.assert_allclose(salpeter_integral(0.2, m) / salpeter_integral(0.2, 5.0), u, atol=1e-12)
    assert salpeter_integral(1.0, 0.5) == 0.0  # empty interval


def test_ranges_and_draws():
    assert mass_function_ranges("salpeter") is None
    assert mass_function_ranges("kroupa") == {"m_break": (0.5, 0.5), "alpha_low": (1.3, 1.3)}
    assert mass_function_ranges("varied") == MASS_FUNCTIONS["varied"]
    assert mass_function_ranges({"alpha_low": [0, 1], "m_break": [0.2, 0.4]}) == {
        "m_break": (0.2, 0.4), "alpha_low": (0.0, 1.0)}
    salp = draw_mass_function(np.random.default_rng(0), 3, None)
    assert salp["mf_m_break"].tolist() == [1.0] * 3 and salp["mf_alpha_low"].tolist() == [SALPETER_ALPHA] * 3
    d = draw_mass_function(np.random.default_rng(0), 2000, MASS_FUNCTIONS["varied"])
    assert d["mf_m_break"].min() >= 0.3 and d["mf_m_break"].max() <= 1.0
    assert d["mf_alpha_low"].min() >= -0.5 and d["mf_alpha_low"].max() <= 2.35
    assert d["mf_alpha_low"].std() > 0.7  # uniform over 2.85: σ = 0.82


@pytest.mark.parametrize("mf, exc, msg", [
    ("chabrier", ValueError, "unknown mass_function 'chabrier'"),
    (None, TypeError, "mass_function must be one of"),
    ({"m_break": (0.5, 0.5)}, ValueError, "exactly the keys"),
    ({"m_break": (-1, 0.5), "alpha_low": (1, 2)}, ValueError, r"m_break must be finite and > 0 M☉, got \[-1\.0\]"),
    ({"m_break": (0.3, 0.5), "alpha_low": (np.nan, 2)}, ValueError, "alpha_low must be finite"),
    ({"m_break": (0.9, 0.5), "alpha_low": (1, 2)}, ValueError, "low ≤ high"),
    ({"m_break": (0.5, 0.6, 0.7), "alpha_low": (1, 2)}, ValueError, r"mass_function\['m_break'\] .* must be a pair"),
])
def test_mass_function_ranges_errors(mf, exc, msg):
    with pytest.raises(exc, match=msg):
        mass_function_ranges(mf)
