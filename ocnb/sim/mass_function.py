"""Stellar mass functions of simulated populations: Salpeter and broken power laws.

All functions are vectorised over arrays of masses (M☉) and, for the broken
power law, over per-population break masses and slopes. Number densities are
unnormalised: dN/dm ∝ m^−α.

``"salpeter"``
    Salpeter (1955), α = 2.35 at all masses (Cavallo et al. 2024, Sect. 2.2).
``"kroupa"``
    A Kroupa-like break: α = 1.3 below m_b = 0.5 M☉, Salpeter above.
``"varied"``
    A per-population present-day mass function: α_low ~ U(−0.5, 2.35) below a
    break mass m_b ~ U(0.3, 1.0) M☉, Salpeter above. Real member lists hold far
    fewer faint stars than Salpeter predicts (IMF turnover, evaporation of
    low-mass stars, faint-end incompleteness); drawing the low-mass slope per
    cluster keeps the luminosity function from becoming an age clue for a
    network trained on the simulations.

The broken power law is continuous at m_b, and inverse-CDF sampling is exact
across the break (:func:`broken_power_law_inverse`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = [
    "SALPETER_ALPHA",
    "MASS_FUNCTIONS",
    "salpeter_integral",
    "salpeter_inverse",
    "power_law_integral",
    "power_law_inverse",
    "broken_power_law_integral",
    "broken_power_law_inverse",
    "mass_function_ranges",
    "check_mass_function_values",
    "draw_mass_function",
    "mass_function_description",
]

#: Salpeter (1955) slope: dN/dm ∝ m^-alpha.
SALPETER_ALPHA = 2.35
#: Mass functions: uniform ranges (low, high) of the break mass m_b [M☉] and the slope below it
#: (Salpeter's above); ``None`` is the single Salpeter slope. See the module docstring.
MASS_FUNCTIONS: dict = {
    "salpeter": None,
    "kroupa": {"m_break": (0.5, 0.5), "alpha_low": (1.3, 1.3)},
    "varied": {"m_break": (0.3, 1.0), "alpha_low": (-0.5, SALPETER_ALPHA)},
}


def salpeter_integral(a, b, alpha: float = SALPETER_ALPHA):
    """∫_a^b m^-alpha dm (unnormalised number of stars between masses a and b [M☉]); 0 where b ≤ a."""
    p = 1.0 - alpha
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    return np.where(b > a, (np.power(a, p) - np.power(b, p)) / (alpha - 1.0), 0.0)


def salpeter_inverse(a, b, u, alpha: float = SALPETER_ALPHA):
    """Mass [M☉] with Salpeter CDF fraction u ∈ [0, 1) between masses a and b."""
    p = 1.0 - alpha
    ap, bp = np.power(a, p), np.power(b, p)
    return np.power(ap + u * (bp - ap), 1.0 / p)


def power_law_integral(x, y, alpha):
    """∫_x^y m^-alpha dm for array-valued alpha (alpha = 1 included: log(y/x)); 0 where y ≤ x."""
    p = 1.0 - np.asarray(alpha, dtype=float)
    unit = np.abs(p) < 1e-6
    ps = np.where(unit, 1.0, p)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(unit, np.log(y / x), (np.power(y, ps) - np.power(x, ps)) / ps)
    return np.where(y > x, v, 0.0)


def power_law_inverse(x, y, f, alpha):
    """Mass [M☉] at CDF fraction f of m^-alpha between x and y (array-valued alpha); x where y ≤ x."""
    p = 1.0 - np.asarray(alpha, dtype=float)
    unit = np.abs(p) < 1e-6
    ps = np.where(unit, 1.0, p)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        xp = np.power(x, ps)
        v = np.where(unit, x * np.power(y / x, f), np.power(xp + f * (np.power(y, ps) - xp), 1.0 / ps))
    return np.where(y > x, v, x)


def broken_power_law_integral(a, b, m_break, alpha_low):
    """Number of stars between masses a and b [M☉]: slope alpha_low below m_break, Salpeter above.

    Continuous at ``m_break``; equals :func:`salpeter_integral` for ``alpha_low = 2.35``.
    """
    low = power_law_integral(np.minimum(a, m_break), np.minimum(b, m_break), alpha_low)
    high = power_law_integral(np.maximum(a, m_break), np.maximum(b, m_break), SALPETER_ALPHA)
    return low * np.power(m_break, alpha_low - SALPETER_ALPHA) + high


def broken_power_law_inverse(a, b, u, m_break, alpha_low):
    """Mass [M☉] with broken-power-law CDF fraction u between a and b (exact across the break)."""
    low = power_law_integral(np.minimum(a, m_break), np.minimum(b, m_break), alpha_low)
    low = low * np.power(m_break, alpha_low - SALPETER_ALPHA)
    high = power_law_integral(np.maximum(a, m_break), np.maximum(b, m_break), SALPETER_ALPHA)
    x = u * (low + high)
    with np.errstate(divide="ignore", invalid="ignore"):
        m_low = power_law_inverse(np.minimum(a, m_break), np.minimum(b, m_break),
                                  np.where(low > 0, x / low, 0.0), alpha_low)
        m_high = power_law_inverse(np.maximum(a, m_break), np.maximum(b, m_break),
                                   np.where(high > 0, (x - low) / high, 0.0), SALPETER_ALPHA)
    return np.where(x < low, m_low, m_high)


def mass_function_ranges(mass_function) -> dict | None:
    """Uniform ranges ``{"m_break": (lo, hi), "alpha_low": (lo, hi)}`` of a mass function; None for Salpeter.

    Parameters
    ----------
    mass_function : {"salpeter", "kroupa", "varied"} or dict
        A name of :data:`MASS_FUNCTIONS` or a dict with exactly the keys ``m_break`` [M☉] and
        ``alpha_low``, each a pair (low, high) with low ≤ high.

    Raises
    ------
    ValueError
        Unknown name, wrong keys, a range that is not a pair, low > high, a non-finite value or
        m_break ≤ 0 (the message names the key and the value).
    TypeError
        Neither a string nor a mapping.
    """
    if isinstance(mass_function, str):
        if mass_function not in MASS_FUNCTIONS:
            raise ValueError(f"unknown mass_function {mass_function!r}; choose one of {sorted(MASS_FUNCTIONS)} "
                             "or pass {'m_break': (lo, hi), 'alpha_low': (lo, hi)}")
        ranges = MASS_FUNCTIONS[mass_function]
    elif isinstance(mass_function, Mapping):
        ranges = dict(mass_function)
    else:
        raise TypeError(f"mass_function must be one of {sorted(MASS_FUNCTIONS)} or a dict "
                        f"{{'m_break': (lo, hi), 'alpha_low': (lo, hi)}}, not {type(mass_function).__name__} "
                        f"{mass_function!r}")
    if ranges is None:
        return None
    if set(ranges) != {"m_break", "alpha_low"}:
        raise ValueError(f"mass_function dict needs exactly the keys 'm_break' and 'alpha_low', not {sorted(ranges)}")
    out = {}
    for k in ("m_break", "alpha_low"):
        v = ranges[k]
        if np.ndim(v) != 1 or len(v) != 2:
            raise ValueError(f"mass_function[{k!r}] = {v!r} must be a pair (low, high)")
        out[k] = tuple(float(x) for x in v)
    check_mass_function_values({"mf_m_break": np.array(out["m_break"]), "mf_alpha_low": np.array(out["alpha_low"])})
    if out["m_break"][1] < out["m_break"][0] or out["alpha_low"][1] < out["alpha_low"][0]:
        raise ValueError(f"mass_function ranges must be (low, high) with low ≤ high: {out}")
    return out


def check_mass_function_values(lab: Mapping[str, np.ndarray]) -> None:
    """Raise ValueError unless every ``mf_m_break`` is finite and > 0 M☉ and every ``mf_alpha_low`` finite."""
    mb = np.asarray(lab["mf_m_break"], dtype=float)
    al = np.asarray(lab["mf_alpha_low"], dtype=float)
    if not (np.all(np.isfinite(mb)) and np.all(mb > 0)):
        bad = mb[~(np.isfinite(mb) & (mb > 0))]
        raise ValueError(f"mass-function break mass m_break must be finite and > 0 M☉, got {bad[:5].tolist()}")
    if not np.all(np.isfinite(al)):
        raise ValueError(f"mass-function slope alpha_low must be finite, got {al[~np.isfinite(al)][:5].tolist()}")


def draw_mass_function(rng: np.random.Generator, n: int, ranges: dict | None) -> dict:
    """Per-population break mass ``mf_m_break`` [M☉] and low-mass slope ``mf_alpha_low``.

    Salpeter everywhere (m_b = 1, α_low = 2.35, no random draws) when ``ranges`` is None.
    """
    if ranges is None:
        return {"mf_m_break": np.ones(n), "mf_alpha_low": np.full(n, SALPETER_ALPHA)}
    return {"mf_m_break": rng.uniform(*ranges["m_break"], n), "mf_alpha_low": rng.uniform(*ranges["alpha_low"], n)}


def mass_function_description(ranges: dict | None) -> str:
    """One-line description of a mass function (for ``meta``)."""
    if ranges is None:
        return f"Salpeter, alpha={SALPETER_ALPHA}"
    return (f"broken power law: alpha_low ~ U{tuple(ranges['alpha_low'])} below m_break ~ "
            f"U{tuple(ranges['m_break'])} Msun, Salpeter alpha={SALPETER_ALPHA} above")
