"""2MASS quality rules (ocnb.sim.quality)."""

import numpy as np

from ocnb.sim import (
    SIGMA_A,
    SIGMA_B,
    SIGMA_C,
    twomass_quality_letter,
    twomass_snr,
    twomass_usable,
    wise_quality_letter,
    wise_snr,
)


def test_letter_limits_follow_snr():
    np.testing.assert_allclose([SIGMA_A, SIGMA_B, SIGMA_C], [1.0857 / 10, 1.0857 / 7, 1.0857 / 5], rtol=1e-4)
    np.testing.assert_allclose(twomass_snr([SIGMA_A, SIGMA_B]), [10.0, 7.0])


def test_twomass_usability_rule():
    sig = np.array([0.02, 0.1, 0.15, 0.16, 0.25, 0.31, np.nan])
    assert twomass_usable(sig).tolist() == [True, True, True, False, False, False, False]
    assert twomass_quality_letter(sig).tolist() == ["A", "A", "B", "C", "D", "D", "D"]


def test_twomass_rule_matches_real_letters(m67_real):
    """On real M67 members, S/N = 1.0857/σ > 7 reproduces the catalogue's A/B letters."""
    m = m67_real[m67_real["ph_qual"].notna()]
    for k, band in enumerate(("j", "h")):
        sig = m[f"{band}_msigcom"].to_numpy(float, na_value=np.nan)
        letter = m["ph_qual"].str[k]
        real_ab = letter.isin(["A", "B"]).to_numpy() & np.isfinite(sig)
        assert (twomass_usable(sig) == real_ab).mean() > 0.99


def test_synthetic_twomass_flags_consistent(sim):
    tab = sim.cluster(int(np.argmax(sim.labels["dist_mod"])))  # distant: faint 2MASS stars
    letters_ab = tab["ph_qual"].str[0].isin(["A", "B"]).to_numpy()
    assert np.array_equal(letters_ab, twomass_usable(tab["j_msigcom"]))
    usable = twomass_usable(sim.stars["j_msigcom"])
    assert 0.0 < usable.mean() <= 1.0
    # fainter J → larger σ: the usable stars are the brighter ones
    j = sim.stars["j_m"]
    assert j[usable].max() < 17.5 and (~usable).sum() > 0


def test_wise_letters_follow_snr():
    snr = np.array([20.0, 10.01, 9.99, 3.01, 2.99, 2.01, 1.99, 1.0])  # no row on a limit: no ulp games
    sig = 2.5 / np.log(10.0) / snr  # σ = 1.0857/(S/N), exactly as the rule inverts it
    np.testing.assert_allclose(wise_snr(sig), snr, rtol=1e-6)
    assert wise_quality_letter(sig).tolist() == ["A", "A", "B", "B", "C", "C", "U", "U"]
    assert wise_quality_letter([np.nan, 0.0, -1.0]).tolist() == ["U", "U", "U"]
