"""Refit the empirical constants of ocnb.photometry / ocnb.isochrones from the shipped real members.

Prints the values; paste them over the constants in the modules if the shipped data change
(tests/test_photometry.py and tests/test_isochrones.py fail when the constants and a refit disagree).
Usage: .venv/bin/python tools/refit_photometry_constants.py
"""

from pprint import pprint

from ocnb import isochrones as iso_mod
from ocnb import photometry as phot
from ocnb.datasets import list_member_clusters, load_field, load_members

MULTIBAND = ["M67", "Hyades", "Praesepe", "alpha Per", "Blanco 1", "Pleiades"]

iso = {c: load_members(c, source="iso") for c in MULTIBAND}
cones = [load_members("M67", source="dr3_cone"), load_members("Pleiades", source="dr3_cone")]
table = list_member_clusters()
almeida = [load_members(c, source="almeida") for c in table.cluster[table.source == "almeida"]]

print("EMPIRICAL_ERROR_COEFFS (2MASS, WISE):")
pprint(phot.fit_error_coefficients(list(iso.values())))
print("GAIA_EMPIRICAL_COEFFS (M67 DR3; the Pleiades' spotted stars inflate their errors):")
pprint(phot.fit_gaia_error_coefficients(cones[0]))
print("PARALLAX_ERROR_TABLE['DR3'] (G [mag], sigma_parallax [mas]):")
pprint(phot.fit_parallax_error(cones + almeida + [load_field("random_dr3")]))
print("KS_MINUS_W_COEFFS / KS_MINUS_W_TEFF_RANGE:")
pprint(iso_mod.fit_ks_minus_w(iso))
