"""Population simulator: SIMULATED star clusters from PARSEC isochrones (shared by the paper modules).

Generic: priors, label ranges, the magnitude cut and the mass function are
arguments; the paper modules supply their own (e.g. Cavallo et al. 2024's
Table 1 in :mod:`ocnb.cmd_ann.simulate`). Importing this package does no work
(no file I/O, no grid loading); the isochrone grid and the lattice cache are
read on the first simulation.

Modules, one concern each:

``lattice``        :class:`IsochroneLattice`, :func:`isochrone_lattice` (precomputed PARSEC isochrones, cached)
``mass_function``  Salpeter and broken power laws: integrals, inverse-CDF sampling, per-population draws
``quality``        2MASS S/N, usability and ``ph_qual`` letters from σ; AllWISE letters
``clusters``       :class:`SyntheticClusters`, the container (labels + flat star arrays, save/load)
``population``     :func:`simulate_populations`, the vectorised generator (binaries, differential
                   extinction, field stars, parallaxes, magnitude cut) and its input checks
``systems``        :func:`place_systems`: stars and unresolved pairs of *given* masses on the same
                   lattice isochrones (per-system parameters instead of a mass function)
"""

from __future__ import annotations

from .clusters import POPULATION_PARAMETERS, STAR_FLOAT_COLUMNS, SyntheticClusters
from .lattice import LATTICE_COLUMNS, IsochroneLattice, isochrone_lattice
from .mass_function import (
    MASS_FUNCTIONS,
    SALPETER_ALPHA,
    broken_power_law_integral,
    broken_power_law_inverse,
    check_mass_function_values,
    draw_mass_function,
    mass_function_description,
    mass_function_ranges,
    power_law_integral,
    power_law_inverse,
    salpeter_integral,
    salpeter_inverse,
)
from .population import (
    FIELD_DMOD_SPREAD,
    FIELD_LOG_AGE,
    FIELD_MH,
    G_MAX,
    MAX_STARS_PER_CLUSTER,
    MIN_SURVIVAL,
    OPTIONAL_PARAM_COLUMNS,
    PARAM_COLUMNS,
    PRIOR_KEYS,
    SIM_BANDS,
    simulate_populations,
)
from .quality import (
    SIGMA_A,
    SIGMA_B,
    SIGMA_C,
    TWOMASS_MAX_SIGMA,
    TWOMASS_MIN_SNR,
    twomass_quality_letter,
    twomass_snr,
    twomass_usable,
    wise_quality_letter,
    wise_snr,
)
from .systems import StarSystems, place_systems

__all__ = [
    "FIELD_DMOD_SPREAD", "FIELD_LOG_AGE", "FIELD_MH", "G_MAX", "IsochroneLattice", "LATTICE_COLUMNS",
    "MASS_FUNCTIONS", "MAX_STARS_PER_CLUSTER", "MIN_SURVIVAL", "OPTIONAL_PARAM_COLUMNS", "PARAM_COLUMNS",
    "POPULATION_PARAMETERS", "PRIOR_KEYS", "SALPETER_ALPHA", "SIGMA_A", "SIGMA_B", "SIGMA_C", "SIM_BANDS",
    "STAR_FLOAT_COLUMNS", "StarSystems", "SyntheticClusters", "TWOMASS_MAX_SIGMA", "TWOMASS_MIN_SNR",
    "broken_power_law_integral", "broken_power_law_inverse", "check_mass_function_values",
    "draw_mass_function", "isochrone_lattice", "mass_function_description", "mass_function_ranges", "place_systems",
    "power_law_integral", "power_law_inverse", "salpeter_integral", "salpeter_inverse",
    "simulate_populations", "twomass_quality_letter", "twomass_snr", "twomass_usable", "wise_quality_letter",
    "wise_snr",
]
