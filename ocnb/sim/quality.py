"""2MASS and WISE photometric-quality rules of simulated (and real) stars.

The 2MASS All-Sky PSC grades each band with a ``ph_qual`` letter from its
signal-to-noise ratio; magnitudes and errors relate by σ_mag = 2.5/ln 10 / (S/N)
= 1.0857/(S/N). A simulator that knows σ can therefore reproduce the letters
and the usability cut of Cavallo et al. (2024, Sect. 2.1): a 2MASS band is
*usable* when S/N > 7 (letter A or B) and σ ≤ 0.3 mag.

On real M67 members (``ocnb.datasets.load_members("M67")``) the catalogue's
A/B letters correspond to σ < 0.109 / 0.155 mag, i.e. exactly these S/N limits
(checked by ``tests/sim/test_quality.py``).

AllWISE grades its bands the same way (Explanatory Supplement, Sect. II.2):
``ph_qual`` A for S/N ≥ 10, B for 3 < S/N < 10, C for 2 < S/N < 3 and U
(upper limit) below; :func:`wise_quality_letter` reproduces A/B/C/U from σ.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "TWOMASS_MIN_SNR",
    "TWOMASS_MAX_SIGMA",
    "SIGMA_A",
    "SIGMA_B",
    "SIGMA_C",
    "twomass_snr",
    "twomass_usable",
    "twomass_quality_letter",
    "wise_snr",
    "wise_quality_letter",
]

#: 2MASS usability: S/N > 7 (quality A/B) and σ ≤ 0.3 mag (Cavallo+2024 Sect. 2.1).
TWOMASS_MIN_SNR = 7.0
TWOMASS_MAX_SIGMA = 0.3
_MAG_PER_FLUX = 2.5 / np.log(10.0)  # σ_mag = 1.0857 / (S/N)

#: σ (mag) limits of the 2MASS quality letters, S/N = 1.0857/σ: A S/N ≥ 10, B S/N > 7, C S/N ≥ 5.
SIGMA_A = float(_MAG_PER_FLUX / 10.0)
SIGMA_B = float(_MAG_PER_FLUX / TWOMASS_MIN_SNR)
SIGMA_C = float(_MAG_PER_FLUX / 5.0)


def twomass_snr(sigma) -> np.ndarray:
    """2MASS S/N from the magnitude error σ [mag]: 1.0857/σ (NaN, 0 or negative σ → 0)."""
    s = np.asarray(sigma, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isfinite(s) & (s > 0), _MAG_PER_FLUX / s, 0.0)


def twomass_usable(sigma) -> np.ndarray:
    """True where a 2MASS magnitude with error σ [mag] is usable: S/N = 1.0857/σ > 7 and σ ≤ 0.3 mag.

    NaN, zero or negative σ are *not* usable (a missing error is no measurement).
    """
    s = np.asarray(sigma, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return (s > 0) & (s < SIGMA_B) & (s <= TWOMASS_MAX_SIGMA)


def twomass_quality_letter(sigma) -> np.ndarray:
    """2MASS ``ph_qual`` letter from σ [mag] via S/N = 1.0857/σ: A (≥ 10), B (> 7), C (≥ 5), D otherwise.

    NaN, zero or negative σ give ``"D"``.
    """
    s = np.asarray(sigma, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ok = s > 0
        return np.where(ok & (s <= SIGMA_A), "A", np.where(ok & (s < SIGMA_B), "B",
                                                            np.where(ok & (s <= SIGMA_C), "C", "D")))


def wise_snr(sigma) -> np.ndarray:
    """AllWISE S/N from the profile-fit magnitude error σ [mag] (``w?sigmpro``): 1.0857/σ (NaN/≤ 0 σ → 0)."""
    return twomass_snr(sigma)


def wise_quality_letter(sigma) -> np.ndarray:
    """AllWISE ``ph_qual`` letter of one band from σ [mag]: A (S/N ≥ 10), B (> 3), C (> 2), U otherwise.

    U (upper limit) also for NaN, zero or negative σ: AllWISE gives no σ for upper limits. The
    catalogue's X and Z letters (no profile fit; no measurable σ) cannot be told from σ alone.
    """
    snr = wise_snr(sigma)
    return np.where(snr >= 10.0, "A", np.where(snr > 3.0, "B", np.where(snr > 2.0, "C", "U")))
