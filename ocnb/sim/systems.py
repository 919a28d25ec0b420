"""Single stars and unresolved pairs of *given* initial masses on lattice isochrones (noise-free).

:func:`ocnb.sim.simulate_populations` draws its masses from a mass function,
one population per cluster. Some simulators instead draw every system's own
parameters — a primary mass, a companion mass, age, metallicity, distance and
extinction per system (e.g. the SBI training set of Malhotra et al. 2025,
:mod:`ocnb.binaries`) or a cluster whose primaries and companions come from
their own laws. :func:`place_systems` is that hook: it puts given masses on the
same precomputed isochrones (:func:`ocnb.sim.isochrone_lattice`, nearest
lattice node, linear interpolation in initial mass) and gives their apparent
magnitudes with the same per-component, Teff-dependent extinction and flux
summation as the population engine (it reuses the engine's helpers). Noise,
cuts and the parameter draws stay with the caller.

Everything it returns is **SIMULATED** photometry.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .lattice import IsochroneLattice
from .population import _combine, _companion_index, _ext_ratio, _interp

__all__ = ["StarSystems", "place_systems"]


@dataclasses.dataclass
class StarSystems:
    """Stars (and their optional unresolved companions) placed on lattice isochrones.

    Built by :func:`place_systems`; arrays have one entry per system.

    Attributes
    ----------
    lattice : IsochroneLattice
        The lattice the systems sit on.
    node : ndarray of int
        Lattice node (nearest (log age, [M/H]) isochrone) of each system.
    dist_mod, a_v : ndarray
        Distance modulus μ [mag] and extinction A_V [mag] (A0 at 550 nm) per system.
    law : str
        dustapprox extinction law (:data:`ocnb.photometry.EXTINCTION_LAWS`).
    primary_in_range : ndarray of bool
        The primary's initial mass lies on its isochrone (between its lowest and
        highest initial mass). Outside, magnitudes are those of the nearest end
        point and are meaningless: the caller drops such systems (e.g. a primary
        too massive for its age, i.e. already dead).
    primary_too_massive : ndarray of bool
        The primary's initial mass exceeds the isochrone's highest one.
    has_companion : ndarray of bool
        A companion mass > 0 was given.
    companion_lit : ndarray of bool
        ``has_companion`` and the companion's mass is at least the isochrone's
        lowest mass: only these companions add light.
    teff_a, teff_b : ndarray
        Effective temperatures [K] of primary and companion (NaN without a companion).
    """

    lattice: IsochroneLattice
    node: np.ndarray
    dist_mod: np.ndarray
    a_v: np.ndarray
    law: str
    primary_in_range: np.ndarray
    primary_too_massive: np.ndarray
    has_companion: np.ndarray
    companion_lit: np.ndarray
    teff_a: np.ndarray
    teff_b: np.ndarray
    _seg_a: np.ndarray = dataclasses.field(repr=False)
    _t_a: np.ndarray = dataclasses.field(repr=False)
    _seg_b: np.ndarray = dataclasses.field(repr=False)
    _t_b: np.ndarray = dataclasses.field(repr=False)

    def __len__(self) -> int:
        return int(self.node.size)

    def take(self, idx) -> StarSystems:
        """The systems ``idx`` (an index array or boolean mask) as a new :class:`StarSystems`."""
        return dataclasses.replace(self, **{f.name: getattr(self, f.name)[idx]
                                            for f in dataclasses.fields(self)
                                            if f.name not in ("lattice", "law")})

    def value(self, column: str, component: str = "a") -> np.ndarray:
        """A lattice column (absolute magnitude, ``log_teff``, ``label``…) interpolated at one component's mass.

        ``component`` is ``"a"`` (primary) or ``"b"`` (companion; NaN where it is not lit).
        ``label`` is the PARSEC phase of the isochrone point below the mass (as
        :meth:`ocnb.isochrones.Isochrone.at_mass`), an integer-valued float.
        """
        self._check_column(column)
        if component == "a":
            seg, t = self._seg_a, self._t_a
        elif component == "b":
            seg, t = self._seg_b, self._t_b
        else:
            raise ValueError(f"component must be 'a' (primary) or 'b' (companion), not {component!r}")
        out = _interp(self.lattice, column, seg, np.floor(t) if column == "label" else t)
        return out if component == "a" else np.where(self.companion_lit, out, np.nan)

    def apparent(self, band: str, combined: bool = True) -> np.ndarray:
        """Noise-free apparent magnitude [mag, Vega] in ``band``: m = M + μ + A_V·k_band(Teff, A_V).

        Each component is extinguished at its own Teff (dustapprox, R_V = 3.1) before
        the fluxes are summed: m = −2.5 log10(10^(−0.4 m_A) + 10^(−0.4 m_B)).
        ``combined=False`` gives the primary alone.
        """
        self._check_column(band)
        app = (_interp(self.lattice, band, self._seg_a, self._t_a) + self.dist_mod
               + self.a_v * _ext_ratio(band, self.teff_a, self.a_v, self.law))
        if not combined or not self.companion_lit.any():
            return app
        lit = np.flatnonzero(self.companion_lit)  # extinction only where a companion shines (saves time)
        a_v = self.a_v[lit]
        app_b = (_interp(self.lattice, band, self._seg_b[lit], self._t_b[lit]) + self.dist_mod[lit]
                 + a_v * _ext_ratio(band, self.teff_b[lit], a_v, self.law))
        out = app.copy()
        out[lit] = _combine(app[lit], app_b, np.ones(lit.size, bool))
        return out

    def _check_column(self, column: str):
        if column not in self.lattice.columns:
            raise ValueError(f"the lattice has no column {column!r} (it has {tuple(self.lattice.columns)}); "
                             "build it with isochrone_lattice(..., columns=...) including it")


def _array(name: str, value, n: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers, not {value!r}") from None
    if arr.ndim > 1:
        raise ValueError(f"{name} must be a number or a 1-d array, not shape {arr.shape}")
    return arr if n is None else np.broadcast_to(arr, (n,))


def place_systems(lattice: IsochroneLattice, log_age, mh, mass_a, mass_b=None, dist_mod=0.0, a_v=0.0, *,
                  law: str = "G23") -> StarSystems:
    """Put systems of given initial masses on the lattice isochrones (SIMULATED, noise-free).

    Parameters
    ----------
    lattice : IsochroneLattice
        From :func:`ocnb.sim.isochrone_lattice`; must hold ``log_teff`` and the
        bands that will be asked for (``columns=``).
    log_age, mh : array_like
        log10(age/yr) and [M/H] (dex) per system; the **nearest lattice node** is used
        (values outside the lattice are clipped to its edge: the caller checks ranges).
    mass_a : array_like
        Initial mass of the primary [M☉].
    mass_b : array_like, optional
        Initial mass of the unresolved companion [M☉]; 0 or NaN (or None for all) means
        no companion. A companion below the isochrone's lowest mass adds no light
        (``companion_lit`` False), as in :func:`ocnb.sim.simulate_populations`.
    dist_mod, a_v : array_like
        Distance modulus μ [mag] and A_V [mag] (≥ 0) per system (scalars broadcast).
    law : {"G23", "F99"}
        dustapprox extinction law.

    Returns
    -------
    StarSystems
        With :meth:`StarSystems.apparent` (per-band magnitudes) and the range flags.

    Raises
    ------
    ValueError
        Arrays of different lengths, NaN in log_age, mh, mass_a, dist_mod or a_v,
        a negative mass or A_V, an unknown law, or a lattice without ``log_teff``.
    """
    if not isinstance(lattice, IsochroneLattice):
        raise TypeError(f"lattice must be an ocnb.sim.IsochroneLattice, not {type(lattice).__name__}")
    if "log_teff" not in lattice.columns:
        raise ValueError("the lattice has no 'log_teff' column (needed for the extinction)")
    from ..photometry import EXTINCTION_LAWS

    if law not in EXTINCTION_LAWS:
        raise ValueError(f"unknown extinction law {law!r}; choose one of {EXTINCTION_LAWS}")
    m_a = _array("mass_a", mass_a)
    n = m_a.size
    m_a = m_a.reshape(n)
    try:
        age, feh, dmod, av = (_array(k, v, n).astype(float) for k, v in
                              (("log_age", log_age), ("mh", mh), ("dist_mod", dist_mod), ("a_v", a_v)))
        m_b = np.zeros(n) if mass_b is None else _array("mass_b", mass_b, n).astype(float)
    except ValueError as exc:
        if "broadcast" in str(exc):
            raise ValueError(f"log_age, mh, mass_b, dist_mod and a_v must be scalars or have mass_a's length {n}"
                             ) from None
        raise
    for name, arr in (("log_age", age), ("mh", feh), ("mass_a", m_a), ("dist_mod", dmod), ("a_v", av)):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ValueError(f"{name} has non-finite values {arr[bad][:5].tolist()} (systems "
                             f"{np.flatnonzero(bad)[:10].tolist()})")
    for name, arr in (("mass_a", m_a), ("mass_b", m_b), ("a_v", av)):
        if (arr < 0).any():
            raise ValueError(f"{name} must be ≥ 0, got {arr[arr < 0][:5].tolist()}")
    node = lattice.node_index(age, feh)
    seg_a, t_a, lit_a = _companion_index(lattice, node, m_a)  # the engine's mass locator, used for both stars
    m_max = lattice.mini[node, lattice.length[node] - 1]
    too_massive = m_a > m_max
    has_b = np.isfinite(m_b) & (m_b > 0)
    m_b = np.where(has_b, m_b, 0.0)
    seg_b, t_b, lit_b = _companion_index(lattice, node, m_b)
    lit_b &= has_b
    teff_a = np.power(10.0, _interp(lattice, "log_teff", seg_a, t_a))
    teff_b = np.where(lit_b, np.power(10.0, _interp(lattice, "log_teff", seg_b, t_b)), np.nan)
    return StarSystems(lattice=lattice, node=node, dist_mod=dmod, a_v=av, law=law,
                       primary_in_range=lit_a & ~too_massive, primary_too_massive=too_massive,
                       has_companion=has_b, companion_lit=lit_b, teff_a=teff_a, teff_b=teff_b,
                       _seg_a=seg_a, _t_a=t_a, _seg_b=seg_b, _t_b=t_b)
