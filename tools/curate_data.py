#!/usr/bin/env python
"""Build the package data of ocnb (``ocnb/data/``) from the shared raw data.

Usage::

    python tools/curate_data.py [--source ../shared/data] [--dest ocnb/data]

The script is deterministic: the same inputs and the same pyarrow/pandas
versions give byte-identical outputs (Parquet with zstd level 19, gzip with
``mtime=0``, ``.npz`` and text files copied byte for byte). It keeps only the
columns that ocnb needs, never drops member rows (exact duplicate rows of one
source excepted, documented below), and writes

* the curated files under ``ocnb/data/`` (catalogs/, members/, fields/,
  spectra/, apogee/, linelists/),
* ``ocnb/data/registry.json``: per file its dataset, kind, SHA-256, size,
  row count, origin (repo@commit), licence and citation,
* ``ocnb/data/PROVENANCE.md``: per dataset its origin, licence, citation,
  what was kept/dropped and the units.

Run it again after changing anything here and commit the outputs.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ocnb.datasets.members import CORR_COLUMNS

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "data"
DEFAULT_DEST = REPO / "ocnb" / "data"
ZSTD_LEVEL = 19

# ---------------------------------------------------------------------------
# Dataset metadata (origin, licence, citation, description). Written into
# registry.json and PROVENANCE.md; the text is ours, the facts come from the
# PROVENANCE.md files of ../shared/data.
# ---------------------------------------------------------------------------
UCC = "ucc23/updt_UCC@0eb0d9ea75cd368d45f6027cacd0eeb34f03ae8c"
UCC_LIC = "GPL-3.0 (UCC repository); the tables are published catalogues: cite the paper"
UCC_NOTE = (
    "Copied by the UCC maintenance repository from VizieR (column names are VizieR labels); "
    "cite Perren et al. 2023 (MNRAS 526, 4107) for the UCC copy."
)
ISO = "KeyiDing/ISO_Open_Clusters@2aec17c119c77b9b07adaac97180c86ac204c688"
GAIA_CITE = (
    "Gaia Collaboration, Prusti et al. 2016 (A&A 595, A1); Brown et al. 2018 (DR2), 2021 (EDR3); "
    "Vallenari et al. 2023 (DR3)"
)

DATASETS: dict[str, dict] = {
    # -- cluster catalogues --------------------------------------------------
    "HUNT2023": dict(
        kind="catalog",
        origin=UCC,
        licence=UCC_LIC,
        citation="Hunt & Reffert 2023, A&A 673, A114 (J/A+A/673/A114)",
        description="Hunt & Reffert (2023) Gaia DR3 star-cluster catalogue, open clusters only (UCC copy "
        "keeps Type='o': "
        "6806 of 7167 entries).",
        units="RA_ICRS, DE_ICRS, GLON, GLAT, r50, rc, rt, rtot [deg]; pmRA (incl. cos dec), pmDE [mas/yr]; "
        "Plx [mas]; "
        "dist16/50/84 [pc] (parallax distance percentiles); RV [km/s]; logAge16/50/84 [log10 yr]; "
        "AV16/50/84, diffAV16/50/84, MOD16/50/84 [mag]; CMDCl16/50/84 = CMD-quality class (0 bad, 1 good) "
        "percentiles; CST = astrometric S/N; N = member count.",
        kept="Name, ID, AllNames (aliases, used by the name resolver), N, CST, positions, radii in deg, "
        "proper motions "
        "and parallax with dispersions (s_) and errors (e_), dist16/50/84, RV (+ e_RV, n_RV), CMD class "
        "percentiles 16/50/84 + CMDClHuman, logAge/AV/diffAV/MOD 16/50/84.",
        dropped="Type (always 'o'), CSTt, Nt, Ndist, globalPlx, radii in pc (r50pc, rcpc, rtpc, rtotpc; "
        "derivable), "
        "Galactocentric X, Y, Z [pc] (recomputed heliocentric by load_clusters), s_RV, CMDCl2.5/97.5, "
        "minClSize, isMerged, isGMMMemb, NXmatches, XmatchType, recno.",
        note=UCC_NOTE,
    ),
    "HUNT2024": dict(
        kind="catalog",
        origin=UCC,
        licence=UCC_LIC,
        citation="Hunt & Reffert 2024, A&A 686, A42 (J/A+A/686/A42)",
        description="Hunt & Reffert (2024) cleaned open-cluster catalogue with Jacobi radii and masses (5647 "
        "rows).",
        units="as HUNT2023; r50J, rJ [deg], rJpc [pc]; MassJ, MassTot (+ e_) [Msun]; NJ = members inside rJ.",
        kept="Name, ID, AllNames, N, CST, positions, r50, astrometry (+ e_), dist16/50/84, CMD class "
        "16/50/84, "
        "logAge/AV/MOD 16/50/84, r50J, rJ, rJpc, probJ, NJ, MassJ, e_MassJ, MassTot, e_MassTot, Note.",
        dropped="the same bookkeeping columns as HUNT2023, radii other than r50/Jacobi, s_ dispersions, RV, "
        "diffAV, "
        "Galactocentric X, Y, Z.",
        note=UCC_NOTE + " Names use underscores ('NGC_2682') in this copy.",
    ),
    "CAVALLO2024": dict(
        kind="catalog",
        origin=UCC,
        licence=UCC_LIC,
        citation="Cavallo et al. 2024, AJ 167, 12",
        description="Cavallo et al. (2024) neural-network (QuadTree ANN) ages, [Fe/H], A_V and distance "
        "moduli of the "
        "HR23 clusters; the UCC copy has 6140 of the 6413 rows (open clusters only).",
        units="RA_ICRS, DE_ICRS [deg] (member means); plx, e_plx [mas]; logAge16/50/84 [log10 yr]; "
        "[Fe/H]16/50/84 [dex]; AV16/50/84, dMod16/50/84 [mag]; X, Y, Z [kpc] heliocentric (Sun at 0, "
        "although the paper calls them Galactocentric); Rgc [kpc] Galactocentric; Quality 0 gold .. 3 wood.",
        kept="all columns except 'kind'.",
        dropped="kind (always 'o' or null).",
        note=UCC_NOTE,
    ),
    "CANTAT2020": dict(
        kind="catalog",
        origin=UCC,
        licence=UCC_LIC,
        citation="Cantat-Gaudin et al. 2020, A&A 640, A1 (J/A+A/640/A1)",
        description="Cantat-Gaudin et al. (2020) Gaia DR2 clusters with neural-network ages, extinctions and "
        "distances.",
        units="RA_ICRS, DE_ICRS, GLON, GLAT, r50 [deg]; pmRA*, pmDE [mas/yr]; plx [mas]; AgeNN [log10 yr]; "
        "AVNN, DMNN [mag]; DistPc [pc]; nbstars07 = members with p >= 0.7.",
        kept="all 15 columns.",
        dropped="nothing.",
        note=UCC_NOTE + " No uncertainties on the NN parameters in this table. 150 rows lack NN parameters.",
    ),
    "CANTAT_ANDERS2020": dict(
        kind="catalog",
        origin=UCC,
        licence=UCC_LIC,
        citation="Cantat-Gaudin & Anders 2020, A&A 633, A99 (J/A+A/633/A99)",
        description="Cantat-Gaudin & Anders (2020) mean astrometry, member dispersions and distances.",
        units="positions, r50 [deg]; pm [mas/yr]; Plx [mas]; s_ = member std. dev., e_ = error of the mean; "
        "dmode* [pc] (mode and percentiles of the distance likelihood); X, Y, Z, Rgc [pc].",
        kept="all columns except the VizieR-added positions.",
        dropped="_RA.icrs, _DE.icrs (copies of RA/DE_ICRS).",
        note=UCC_NOTE,
    ),
    "DIAS2021": dict(
        kind="catalog",
        origin=UCC,
        licence=UCC_LIC,
        citation="Dias et al. 2021, MNRAS 504, 356 (J/MNRAS/504/356)",
        description="Dias et al. (2021) isochrone-fit ages, distances, extinctions and [Fe/H] of Gaia DR2 "
        "clusters.",
        units="RA_ICRS, DE_ICRS, r50 [deg]; pm [mas/yr]; Plx [mas]; RV [km/s]; Dist, e_Dist [pc]; logage, "
        "e_logage "
        "[log10 yr]; [Fe/H], e_[Fe/H] [dex]; Av, e_Av [mag].",
        kept="all 22 columns.",
        dropped="nothing.",
        note=UCC_NOTE,
    ),
    "SPINA2022": dict(
        kind="catalog",
        origin=UCC,
        licence=UCC_LIC,
        citation="Spina et al. 2022, Universe 8, 87",
        description="Spina et al. (2022) spectroscopic [Fe/H] of open clusters from several surveys.",
        units="Fe, Fe_err [dex] ([Fe/H]); X/Y_XYZ_med, Z_XYZ_*, R_Rzphi_* [kpc] Galactocentric.",
        kept="all 12 columns of the shared copy (already reduced to [Fe/H], survey and positions).",
        dropped="nothing further (the shared copy had dropped ~60 orbital columns).",
        note=UCC_NOTE,
    ),
    "DONOR2020": dict(
        kind="catalog",
        origin=UCC,
        licence=UCC_LIC,
        citation="Donor et al. 2020, AJ 159, 199 (OCCAM IV, APOGEE DR16; J/AJ/159/199)",
        description="OCCAM IV cluster table: mean APOGEE DR16 [Fe/H] and radial velocity, with a quality "
        "flag.",
        units="GLON, GLAT, RA, DEC [deg]; Rad [arcmin]; Age [Gyr] (not log); Rgc [kpc]; pm [mas/yr]; "
        "HRV [km/s]; Fe/H, e_Fe/H [dex]; N* = APOGEE members; q_Name quality flag.",
        kept="all 19 columns.",
        dropped="nothing.",
        note=UCC_NOTE,
    ),
    "MALHOTRA2026": dict(
        kind="catalog",
        origin=UCC,
        licence=UCC_LIC,
        citation="Malhotra et al. 2026, A&A 706, A62 (Table F.1)",
        description="Malhotra et al. (2026) 42 open clusters: adopted parameters and unresolved-binary "
        "counts.",
        units="logAge [log10 yr]; D [pc]; [Fe/H] [dex]; AV [mag]; MR1, MR2 = mass-ratio thresholds; N1, N2, "
        "N = star "
        "counts; M*low, M*hi [Msun]; _RA, _DE [deg].",
        kept="all 15 columns.",
        dropped="nothing.",
        note=UCC_NOTE,
    ),
    "TARRICQ2022": dict(
        kind="catalog",
        origin=UCC,
        licence=UCC_LIC,
        citation="Tarricq et al. 2022, A&A 659, A59 (J/A+A/659/A59 table1)",
        description="Tarricq et al. (2022) cluster table (467 rows; star-level members are not available "
        "offline).",
        units="logAgeNN [log10 yr]; Dist [pc]; RA_ICRS, DE_ICRS, GLON, GLAT [deg]; pm [mas/yr]; plx [mas].",
        kept="all 13 columns.",
        dropped="nothing.",
        note=UCC_NOTE,
    ),
    # -- star-level members ---------------------------------------------------
    "ALMEIDA2023_EDR3": dict(
        kind="members",
        origin="ander-son-almeida/open-clusters-mass-query@33307ba77f74b4713290eed2a8acbf574cadb53a",
        licence="MIT",
        citation="Almeida, Monteiro & Dias 2023, MNRAS (maximum-likelihood memberships, Gaia EDR3); "
        + GAIA_CITE,
        description="Gaia EDR3 members with membership probabilities (Pmemb 0.51-1) of 20 open clusters "
        "(Pleiades, Hyades, alpha Per, Blanco 1, NGC 752, IC 2602, ...). M67, NGC 188 and Praesepe are "
        "not among them.",
        units="VizieR I/350 names: RA_ICRS, DE_ICRS [deg]; e_RA_ICRS, e_DE_ICRS [mas]; Plx, e_Plx [mas]; "
        "pmRA, pmDE, "
        "e_ [mas/yr]; pmRApmDEcor, PlxpmRAcor, PlxpmDEcor (3 of the 10 correlations); Gmag, BPmag, RPmag, "
        "e_ [mag, Vega]; RFG, RFBP, RFRP = flux_over_error; EBPRP = excess factor; RVDR2 [km/s]; mass, "
        "comp_mass (+ er_) [Msun] = the author's photometric primary/companion masses; cluster = file stem.",
        kept="all columns except BPRP.",
        dropped="BPRP (= BPmag - RPmag); 7 rows that exactly duplicate another row of the same cluster "
        "(all in NGC_2243), so 9873 -> 9866 rows.",
        note="20 of the 1283 clusters of the repository were kept by the shared-data curator.",
    ),
    "M67_DR3_CONE": dict(
        kind="members",
        origin="tanmacsen/GAIA_EDA@c1c3c0249ed6b7d8f2ca8d26dd177b78c607696d",
        licence="none stated (Gaia DR3 data: ESA/Gaia/DPAC, CC BY-SA 3.0 IGO)",
        citation=GAIA_CITE + "; selection from tanmacsen/GAIA_EDA (student report, 2022)",
        description="Gaia DR3 gaia_source rows around M67: cone r <= 2 deg + proper-motion box pmra in "
        "[-11.5, -10.5], "
        "pmdec in [-3.5, -2.5] mas/yr (mostly members, some PM-box field stars). ocnb applies the "
        "membership cut of /work/shared/notes/checks.md at load time (1188 of 1494).",
        units="Gaia archive names and units: ra, dec [deg]; ra_error, dec_error [mas]; parallax [mas]; pm "
        "[mas/yr]; "
        "10 *_corr; phot_*_mean_mag [mag, Vega]; phot_*_mean_flux_over_error; radial_velocity [km/s].",
        kept="source_id, ra, dec, their errors, parallax, pmra, pmdec and errors, all 10 correlations, "
        "astrometric_params_solved, ruwe, G/BP/RP mean mag + flux_over_error, phot_bp_rp_excess_factor, "
        "radial_velocity (+ error), non_single_star.",
        dropped="the other 60 DR3 columns (astrometric fit statistics, IPD, pseudocolour, fluxes, n_obs, "
        "transit counts, colours, l/b/ecliptic coordinates, variability flag).",
        note="All 1494 rows kept.",
    ),
    "PLEIADES_DR3_CONE": dict(
        kind="members",
        origin="tanmacsen/GAIA_EDA@c1c3c0249ed6b7d8f2ca8d26dd177b78c607696d",
        licence="none stated (Gaia DR3 data: ESA/Gaia/DPAC, CC BY-SA 3.0 IGO)",
        citation=GAIA_CITE + "; selection from tanmacsen/GAIA_EDA (student report, 2022)",
        description="Gaia DR3 rows around the Pleiades: cone r ~ 2 deg + PM box pmra in [15, 25], pmdec in "
        "[-50, -40] "
        "mas/yr. ocnb applies |parallax - 7.35| < 0.5 mas, PM within 3 mas/yr of (19.9, -45.4), "
        "RUWE < 1.4 at load time (see members.py).",
        units="as M67_DR3_CONE.",
        kept="as M67_DR3_CONE.",
        dropped="as M67_DR3_CONE.",
        note="All 1110 rows kept; 908 of them are Almeida EDR3 members of Melotte_22.",
    ),
    "ISO_NEARBY": dict(
        kind="members",
        origin=ISO,
        licence="none stated in the repository",
        citation="K. Ding, ISO_Open_Clusters (GitHub KeyiDing/ISO_Open_Clusters); memberships of Gaia "
        "Collaboration, Babusiaux et al. 2018 (A&A 616, A10) and Cantat-Gaudin et al. 2018; "
        "2MASS: Skrutskie et al. 2006; AllWISE: Cutri et al. 2013; " + GAIA_CITE,
        description="Multi-band (Gaia EDR3 + 2MASS + AllWISE) members of M67, Hyades, Praesepe, alpha Per, "
        "Blanco 1 "
        "and the Pleiades, merged from the 12 nearby iso_input files into one row per (Cluster, "
        "dr3_source_id) with flags telling which upstream file(s) list the star.",
        units="ra2000, dec2000 [deg, J2000]; gmag_edr3, bpmag_edr3, rpmag_edr3 [mag, Vega, Gaia EDR3]; "
        "parallax, "
        "parallax_error [mas, EDR3]; phot_g_mean_flux(_error) [e-/s]; dr2_bp/rp_flux_over_error (Gaia DR2, "
        "M67 "
        "only); 2MASS j_m, h_m, k_m, *_msigcom [mag, Vega]; ph_qual_2MASS (3 letters J,H,K); AllWISE "
        "w1..w4mpro, w*sigmpro [mag, Vega]; ph_qual_WISE, cc_flags_WISE (4 letters).",
        kept="ids (dr2/dr3 source_id, twomass_id, allwise_id), Cluster, J2000 position, EDR3 mags, parallax "
        "(+error), "
        "ruwe, G flux (+error), DR2 BP/RP flux_over_error where present, 2MASS and AllWISE photometry + "
        "quality "
        "flags; in_input, in_nonbinary, in_binary_rejected, in_sample flags.",
        dropped="Gaia DR2 mags, Bailer-Jones distances, GALEX, SDSS, SkyMapper, Pan-STARRS, ASAS-SN columns, "
        "2MASS "
        "rd/bl/cc_flg/use_src, WISE ext_flg/moon_lev, plx_cluster. Columns renamed so that nearby and "
        "distant "
        "files agree: ph_qual_1 -> ph_qual_2MASS, ph_qual_2 -> ph_qual_WISE, cc_flags -> cc_flags_WISE.",
        note="Rows of one star in several files agree to 1e-13 (CSV round-off); the merged row takes the "
        "first "
        "non-null value in the order input, nonbinary, binary_rejected, sample (this fills 207 missing "
        "2MASS msigcom values of one file from another). 7257 rows in the 14 nearby files -> 4485 unique "
        "stars. No proper "
        "motions in the upstream files: ocnb joins them from the Gaia files by source_id at load time "
        "(none available for Praesepe). Six 2MASS *_msigcom values are upstream placeholders >= 8.8 mag "
        "(kept as published; treat as unusable). Empty strings (M67 file) -> null.",
    ),
    "ISO_DISTANT_LAMOST": dict(
        kind="members",
        origin=ISO,
        licence="none stated in the repository",
        citation="as ISO_NEARBY; LAMOST: Cui et al. 2012 (LRS and MRS stellar parameters)",
        description="Members of 15 open clusters cross-matched with LAMOST (DistantClusters..._LAMOST_LRS "
        "and _MRS), "
        "merged into one row per (Cluster, dr3_source_id); LRS and MRS parameters kept side by side.",
        units="as ISO_NEARBY; lrs_/mrs_ feh, alpha_m [dex], logg [dex], teff [K], rv [km/s] (+ _err); snrg, "
        "nobs.",
        kept="as ISO_NEARBY plus the LAMOST parameters with an lrs_ or mrs_ prefix and in_lrs/in_mrs flags.",
        dropped="as ISO_NEARBY; LAMOST rv_discrepancy*, imputed_uncertainties_flag; LAMOST values 9999 "
        "(missing; 17 MRS rv_err) -> NaN.",
        note="691 LRS + 555 MRS rows, 162 stars in both -> 1084 rows. All NGC2682 rows are also in "
        "ISO_NEARBY.",
    ),
    # -- fields / error distributions ----------------------------------------
    "BLANCO1_DR2_CONE": dict(
        kind="field",
        origin="emilyhunt/ocelot@c8332f70c6e33b4ea12a64932e1be9e2195d7754",
        licence="MIT",
        citation=GAIA_CITE
        + "; ocelot test data (E. Hunt, GitHub emilyhunt/ocelot); Bailer-Jones et al. 2018 (r_est)",
        description="Gaia DR2 field around Blanco 1 with its non-members (G < 18, ruwe < 1.4, 5-parameter "
        "solutions), 14785 stars; ocelot_label 0 marks the 262 stars of ocelot's clustering result "
        "(a test fixture, not a published membership), -1 the field.",
        units="ra, dec, l, b [deg]; ra/dec_error [mas]; parallax [mas]; pm [mas/yr]; mags [Vega]; r_est, "
        "r_lo, r_hi [pc].",
        kept="source_id, l, b, ra, dec (+ errors), parallax (+ error), pm (+ errors), G/BP/RP mags + "
        "flux_over_error, "
        "phot_bp_rp_excess_factor, ruwe, r_est, r_lo, r_hi, ocelot_label.",
        dropped="parallax_over_error (derivable), astrometric_params_solved (always 31), r_len, result_flag.",
        note="No correlation columns and no absolute fluxes exist in this file. ra < 0 was wrapped to [0, "
        "360) by "
        "the shared-data curator.",
    ),
    "FIELD_DR3_CONE": dict(
        kind="field",
        origin="emilyhunt/ocelot@1e7fd4c8066c22a9d8e823883f704e4da3f10336",
        licence="MIT",
        citation=GAIA_CITE,
        description="Complete Gaia DR3 cone, (ra, dec) = (45, 0) deg, r = 0.5 deg, 2390 sources, no cluster.",
        units="Gaia archive units (deg, mas, mas/yr, mag, e-/s, km/s).",
        kept="source_id, ref_epoch, ra, dec, parallax, pmra, pmdec with errors, 10 correlations, "
        "astrometric_params_solved, astrometric_excess_noise, visibility_periods_used, ruwe, G/BP/RP mean "
        "flux, flux_error, flux_over_error and mag, phot_bp_rp_excess_factor, radial_velocity (+error), l, "
        "b.",
        dropped="all other gaia_source columns.",
        note="",
    ),
    "PYIA_RANDOM": dict(
        kind="field",
        origin="adrn/pyia@f75ad78ad607a3d2293b90c7670e6a719b7d452d",
        licence="MIT",
        citation=GAIA_CITE + "; Price-Whelan, pyia (Zenodo)",
        description="1000 random all-sky gaia_source rows each from DR2, EDR3 and DR3 with the full 5x5 "
        "astrometric "
        "covariance: the distribution of Gaia errors and correlations.",
        units="Gaia archive units.",
        kept="as FIELD_DR3_CONE (ruwe absent in DR2).",
        dropped="all other gaia_source columns.",
        note="",
    ),
    "GAIA_EDR3_ERROR_SPLINE": dict(
        kind="field",
        origin="MGJvanGroeningen/gaia_oc_amd@aca165351e6d0e818e4ac99e1800a06d0722736b",
        licence="MIT",
        citation="Riello et al. 2021, A&A 649, A3 (EDR3 photometric uncertainty tool); van Groeningen et al. "
        "2023",
        description="Spline (knots, coefficients) of log10 magnitude error vs magnitude for Gaia EDR3 G, BP "
        "and RP.",
        units="knots_* [mag]; coeff_* in log10(mag error).",
        kept="all 37 rows.",
        dropped="nothing.",
        note="",
    ),
    # -- spectra, grids, labels -----------------------------------------------
    "GAIA_RVS": dict(
        kind="spectra",
        origin="isabelangelo/gaiaspec@f8c590e2e15919582834e7a14a127254224cea41",
        licence="MIT",
        citation="Gaia Collaboration 2023 (DR3); Seabroke et al. 2022 (RVS spectra); Angelo et al. 2024, ApJ "
        "974, 43",
        description="Six Gaia DR3 RVS mean spectra (2401 pixels, 846-870 nm, continuum-normalised, rest "
        "frame, "
        "vacuum wavelengths) and their metadata.",
        units="wavelength_nm [nm, vacuum] (ocnb returns Angstrom); flux, flux_error normalised; ra, dec "
        "[deg].",
        kept="everything.",
        dropped="nothing (npz copied byte for byte; metadata CSV -> Parquet).",
        note="",
    ),
    "GAIA_XP": dict(
        kind="spectra",
        origin="gaia-dpci/GaiaXPy@8915ec63d809a0abe0d5c431f0ce53f7eff6276b",
        licence="BSD-3-Clause",
        citation="De Angeli et al. 2023 and Montegriffo et al. 2023 (A&A 674, A2/A3); Ruz-Mieres 2022 "
        "(GaiaXPy)",
        description="Gaia DR3 XP continuous coefficients of 4 sources, the basis configuration to sample "
        "them and "
        "GaiaXPy reference outputs to validate a re-implementation.",
        units="coefficients in the basis units (e-/s); calibrated flux [W m^-2 nm^-1] on 336-1020 nm (2 nm); "
        "pseudo-wavelength samples for the internal system.",
        kept="everything.",
        dropped="nothing; the sample CSVs are gzip-compressed (mtime 0), the rest copied.",
        note="Correlation vectors hold the 1485 off-diagonal elements of each 55x55 matrix as in the Gaia "
        "archive.",
    ),
    "APOGEE_SPECTRA": dict(
        kind="spectra",
        origin="tingyuansen/The_Payne@7d565bf1f088b021f880c46866d4c0ad96855a04",
        licence="MIT",
        citation="Ting et al. 2019 (The Payne); El-Badry et al. 2018; SDSS/APOGEE",
        description="One combined and three visit continuum-normalised APOGEE spectra on the 7214-pixel "
        "ASPCAP grid.",
        units="wavelength [Angstrom, vacuum]; flux normalised; visit_vhelio_kms [km/s].",
        kept="everything (npz copied).",
        dropped="nothing.",
        note="About 70% of combined errors equal 0.005 exactly.",
    ),
    "APOGEE_GRID": dict(
        kind="grid",
        origin="drd13/RSCA (no data) rebuilt from jobovy/apogee, tingyuansen/The_Payne, henrysky/astroNN, "
        "chloe-mt-cheng/research-topic-astronomy (see shared RSCA/PROVENANCE.md)",
        licence="BSD-style (apogee), MIT (The Payne, astroNN), none stated (DR14 weights)",
        citation="Bovy 2016 (apogee); Leung & Bovy 2019 (astroNN); Ting et al. 2019; Holtzman et al. 2015; "
        "de Mijolla & Ness 2022 (RSCA masked regions)",
        description="APOGEE apStar 8575-pixel wavelength grid + index maps to the 7214/7514 grids, continuum "
        "masks, "
        "ASPCAP element windows and the RSCA masked (DIB, velocity-noisy) pixel ranges.",
        units="wavelength [Angstrom, vacuum]; masks boolean; windows weights 0..1; pixel ranges half-open.",
        kept="everything (copied).",
        dropped="nothing.",
        note="",
    ),
    "CANNON_APOKASC": dict(
        kind="grid",
        origin="jobovy/apogee@ff61a9c5d427066cebf53f857ee26e941747303f",
        licence="BSD-style",
        citation="Ness et al. 2015 (The Cannon); Bovy 2016 (apogee)",
        description="A trained quadratic Cannon model (15 x 7214 coefficients + scatter) and its 1801 "
        "APOKASC "
        "training labels.",
        units="TEFF [K], LOGG [dex], FE_H, ALPHA_FE [dex]; labels are offset by baseline_labels.",
        kept="everything; training labels CSV -> Parquet.",
        dropped="nothing.",
        note="",
    ),
    "OCCAM_DR16": dict(
        kind="table",
        origin="fjaellet/apogee_rc_dimred@871f1057c76b679154b7786d2c7fcd8102531f4a",
        licence="none stated (SDSS DR16 public data)",
        citation="Donor et al. 2020, AJ 159, 199 (OCCAM); Ahumada et al. 2020 (SDSS DR16)",
        description="OCCAM DR16 value-added catalogue: 10063 member candidates and 126 clusters with mean "
        "abundances.",
        units="GLON, GLAT [deg]; RADIUS [arcmin]; VHELIO_AVG, VSCATTER, RV [km/s]; FE_H, [X/Fe] (+ _ERR) "
        "[dex]; "
        "PMRA, PMDEC (+ _ERR) [mas/yr]; R_GC_* [kpc]; *_PROB membership probabilities.",
        kept="all columns.",
        dropped="nothing; the sentinel -9999.99 (and -9999) was replaced by NaN.",
        note="",
    ),
    "OCCAM_DR17": dict(
        kind="table",
        origin="jiadonglee/aspgap@8726281a9c96ed151e8f5fa961fc2c0aefd9a040",
        licence="MIT",
        citation="Myers et al. 2022, AJ 164, 85 (OCCAM DR17); Abdurro'uf et al. 2022 (SDSS DR17)",
        description="OCCAM DR17 members (26699 rows; no per-cluster abundance table).",
        units="as OCCAM_DR16.",
        kept="all 17 columns.",
        dropped="nothing; -9999.99 -> NaN.",
        note="",
    ),
    "APOGEE_LABELS_GUIGLION2020": dict(
        kind="table",
        origin="Ramdphysicist/CNN_Guiglion_et_al_2020@d564d4284b5bef9e169ecd14ae588c9db028c6e8",
        licence="MIT",
        citation="Guiglion et al. 2020, A&A 644, A168; Jönsson et al. 2020 (APOGEE DR16)",
        description="3904 RAVE stars with APOGEE DR16 labels and Gaia DR2 / 2MASS / WISE photometry.",
        units="Teff [K]; logg, MH, FeH, alphaM, [X/Fe] [dex]; parallax [mas, DR2]; mags [Vega]; av50 [mag].",
        kept="all 20 columns.",
        dropped="nothing.",
        note="No spectra, no Gaia source_id.",
    ),
    "APOGEE_LABELS_PRICEJONES2020": dict(
        kind="table",
        origin="chloe-mt-cheng/research-topic-astronomy@9e23f77b67d4f5991d5ae891727afb013739bc42",
        licence="none stated (SDSS DR16 public data)",
        citation="Price-Jones et al. 2020, MNRAS 496, 5101; Jönsson et al. 2020 (APOGEE DR16)",
        description="APOGEE DR16 allStar rows of 360 stars in 21 chemically tagged clusters.",
        units="TEFF [K]; LOGG, M_H, ALPHA_M, [X/Fe], FE_H [dex]; J, H, K [mag]; GAIA_PARALLAX [mas]; "
        "GAIA_PM* "
        "[mas/yr]; dist [pc]; age [Gyr]; VHELIO_AVG [km/s].",
        kept="ids, positions, 2MASS, SNR, velocities, stellar parameters, all [X/Fe] with errors and flags, "
        "extinction, Gaia DR2 columns, distances, ages, dereddened JHK, CLUSTER_ID, SILHOUETTE_COEFF.",
        dropped="targeting bitmasks, file/version ids, RV-fit internals, fibre statistics, "
        "Washington/DDO51/IRAC "
        "photometry; sentinels -9999.99/-999.99/-9999 -> NaN in float columns.",
        note="",
    ),
    "VALD_LINELIST": dict(
        kind="linelist",
        origin="TSFitPy-developers/TSFitPy@378bc0c012b054d4e8013b2c8af96c6a77506d17",
        licence="GPL-3.0 (repository); VALD asks for acknowledgement",
        citation="Ryabchikova et al. 2015, Phys. Scr. 90, 054005 (VALD3); Gerber et al. 2023 (TSFitPy)",
        description="VALD line list of the Gaia RVS / Ca II triplet window 8460-8700 Angstrom (10488 lines).",
        units="wavelength_air_A [Angstrom, AIR]; chi_lower_eV [eV]; loggf [dex]; gamma_rad [s^-1].",
        kept="everything (copied).",
        dropped="nothing.",
        note="RVS spectra are on a vacuum grid: convert before matching.",
    ),
    # -- trained models --------------------------------------------------------
    "VG23_DS10": dict(
        kind="model",
        origin="MGJvanGroeningen/gaia_oc_amd@aca165351e6d0e818e4ac99e1800a06d0722736b",
        licence="MIT",
        citation="van Groeningen, Castro-Ginard, Brown, Casamiquela & Jordi 2023, A&A 675, A68 (arXiv:2303.08474)",
        description="The authors' two released Deep Sets membership networks: DS10_v01 (paper-era code v0.1, "
        "128 training + 54 validation clusters, lr 1e-5, 100 epochs) and DS10_v02 (default of code v0.2, "
        "605 + 259 clusters, lr 1e-6, 200 epochs), converted from their PyTorch state dicts by "
        "tools/port_vg23_weights.py (zip + restricted unpickler, no torch).",
        units="network weights float32, named by their PyTorch state-dict keys, PyTorch layout (Linear weight "
        "= (out, in)); source_feature_means/_stds of [f_r pc, f_pm mas/yr, f_plx mas, f_c mag, f_g mag] and "
        "cluster_feature_means/_stds of [A_0 mag, log age, parallax mas], float64 as stored by the authors "
        "(their f_c, f_g = isochrone - star: negate those means for the paper's sign); hyper_parameters and "
        "provenance are JSON strings.",
        kept="every tensor of both state dicts (39 042 parameters each), the normalisation constants and the "
        "whole hyper_parameters JSON (training and validation cluster names, epochs, lr, l2, batch size).",
        dropped="nothing; the PyTorch pickle container is replaced by a deterministic .npz (deflate).",
        note="Load with ocnb.membership.DeepSetsMembership.pretrained('DS10_v02'). Blanco_1 is one of "
        "DS10_v02's training clusters (not of DS10_v01's).",
    ),
}


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Writer:
    """Collects the curated files and their registry records."""

    def __init__(self, source: Path, dest: Path):
        self.source = source
        self.dest = dest
        self.records: list[dict] = []

    def _record(self, rel: str, dataset: str, data: bytes, rows, columns=None, from_=None):
        path = self.dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        meta = DATASETS[dataset]
        self.records.append(
            dict(
                file=rel,
                dataset=dataset,
                kind=meta["kind"],
                sha256=sha256_bytes(data),
                bytes=len(data),
                rows=None if rows is None else int(rows),
                columns=columns,
                origin=meta["origin"],
                licence=meta["licence"],
                citation=meta["citation"],
                source_path=from_,
            )
        )
        print(f"  {rel:70s} {len(data) / 1e3:9.1f} kB  rows={rows}")

    def parquet(self, df: pd.DataFrame, rel: str, dataset: str, from_: str):
        table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd", compression_level=ZSTD_LEVEL)
        self._record(rel, dataset, buf.getvalue(), len(df), list(df.columns), from_)

    def copy(self, src_rel: str, rel: str, dataset: str, rows=None):
        data = (self.source / src_rel).read_bytes()
        self._record(rel, dataset, data, rows, None, src_rel)

    def gzip_copy(self, src_rel: str, rel: str, dataset: str, rows=None):
        raw = (self.source / src_rel).read_bytes()
        # mtime=0 and no file name in the header: the output depends on the content only.
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as fh:
            fh.write(raw)
        self._record(rel, dataset, buf.getvalue(), rows, None, src_rel)

    def read(self, src_rel: str) -> pd.DataFrame:
        return pd.read_parquet(self.source / src_rel)


def pick(df: pd.DataFrame, cols: list[str], src: str) -> pd.DataFrame:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"{src}: columns {missing} not found")
    return df[cols].copy()


def sentinel_to_nan(df: pd.DataFrame, values=(-9999.99, -9999.0, -999.99)) -> pd.DataFrame:
    """Replace the APOGEE/OCCAM missing-value sentinels in float columns by NaN."""
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            col = out[c].to_numpy(dtype="float64", copy=True)
            bad = np.zeros(col.shape, bool)
            for v in values:
                bad |= np.isclose(col, v, rtol=0, atol=1e-3)
            if bad.any():
                col[bad] = np.nan
                out[c] = col.astype(out[c].dtype) if out[c].dtype != np.float64 else col
    return out


# ---------------------------------------------------------------------------
# catalogues
# ---------------------------------------------------------------------------
HR_BASE = ["Name", "ID", "AllNames", "N", "CST", "RA_ICRS", "DE_ICRS", "GLON", "GLAT"]
HR_PARAMS = ["logAge16", "logAge50", "logAge84", "AV16", "AV50", "AV84"]
HR_MOD = ["MOD16", "MOD50", "MOD84"]
CATALOG_COLUMNS = {
    "HUNT2023": (
        "catalogs/hunt2023.parquet",
        HR_BASE
        + [
            "r50",
            "rc",
            "rt",
            "rtot",
            "pmRA",
            "s_pmRA",
            "e_pmRA",
            "pmDE",
            "s_pmDE",
            "e_pmDE",
            "Plx",
            "s_Plx",
            "e_Plx",
            "dist16",
            "dist50",
            "dist84",
            "RV",
            "e_RV",
            "n_RV",
            "CMDCl16",
            "CMDCl50",
            "CMDCl84",
            "CMDClHuman",
        ]
        + HR_PARAMS
        + ["diffAV16", "diffAV50", "diffAV84"]
        + HR_MOD,
    ),
    "HUNT2024": (
        "catalogs/hunt2024.parquet",
        HR_BASE
        + [
            "r50",
            "pmRA",
            "e_pmRA",
            "pmDE",
            "e_pmDE",
            "Plx",
            "e_Plx",
            "dist16",
            "dist50",
            "dist84",
            "CMDCl16",
            "CMDCl50",
            "CMDCl84",
            "CMDClHuman",
        ]
        + HR_PARAMS
        + HR_MOD
        + ["r50J", "rJ", "rJpc", "probJ", "NJ", "MassJ", "e_MassJ", "MassTot", "e_MassTot", "Note"],
    ),
    "CAVALLO2024": ("catalogs/cavallo2024.parquet", None),
    "CANTAT2020": ("catalogs/cantat2020.parquet", None),
    "CANTAT_ANDERS2020": ("catalogs/cantat_anders2020.parquet", None),
    "DIAS2021": ("catalogs/dias2021.parquet", None),
    "SPINA2022": ("catalogs/spina2022.parquet", None),
    "DONOR2020": ("catalogs/donor2020_occam.parquet", None),
    "MALHOTRA2026": ("catalogs/malhotra2026.parquet", None),
    "TARRICQ2022": ("catalogs/tarricq2022.parquet", None),
}
CATALOG_DROP = {"CAVALLO2024": ["kind"], "CANTAT_ANDERS2020": ["_RA.icrs", "_DE.icrs"]}


def curate_catalogs(w: Writer) -> None:
    for name, (src, cols) in CATALOG_COLUMNS.items():
        df = w.read(src)
        if cols is not None:
            df = pick(df, cols, src)
        df = df.drop(columns=CATALOG_DROP.get(name, []))
        w.parquet(df, f"catalogs/{name.lower()}.parquet", name, src)


# ---------------------------------------------------------------------------
# star-level members
# ---------------------------------------------------------------------------
# The 10 astrometric correlations, named as in the package schema.
CORR10 = list(CORR_COLUMNS)
ASTRO = [
    "ra",
    "ra_error",
    "dec",
    "dec_error",
    "parallax",
    "parallax_error",
    "pmra",
    "pmra_error",
    "pmdec",
    "pmdec_error",
]
CONE_COLS = (
    ["source_id"]
    + ASTRO
    + CORR10
    + [
        "astrometric_params_solved",
        "ruwe",
        "phot_g_mean_mag",
        "phot_g_mean_flux_over_error",
        "phot_bp_mean_mag",
        "phot_bp_mean_flux_over_error",
        "phot_rp_mean_mag",
        "phot_rp_mean_flux_over_error",
        "phot_bp_rp_excess_factor",
        "radial_velocity",
        "radial_velocity_error",
        "non_single_star",
    ]
)

ISO_COMMON = [
    "Cluster",
    "dr2_source_id",
    "dr3_source_id",
    "twomass_id",
    "allwise_id",
    "ra2000",
    "dec2000",
    "gmag_edr3",
    "bpmag_edr3",
    "rpmag_edr3",
    "parallax",
    "parallax_error",
    "ruwe",
    "phot_g_mean_flux",
    "phot_g_mean_flux_error",
    "dr2_bp_flux_over_error",
    "dr2_rp_flux_over_error",
    "j_m",
    "j_msigcom",
    "h_m",
    "h_msigcom",
    "k_m",
    "k_msigcom",
    "ph_qual_2MASS",
    "w1mpro",
    "w1sigmpro",
    "w2mpro",
    "w2sigmpro",
    "w3mpro",
    "w3sigmpro",
    "w4mpro",
    "w4sigmpro",
    "ph_qual_WISE",
    "cc_flags_WISE",
]
ISO_RENAME = {"ph_qual_1": "ph_qual_2MASS", "ph_qual_2": "ph_qual_WISE", "cc_flags": "cc_flags_WISE"}
ISO_NEARBY_FILES = [  # (file, flag); order = precedence when merging rows of the same star
    ("M67_input.parquet", "in_input"),
    ("M67_nonbinary.parquet", "in_nonbinary"),
    ("Hyades_nonbinary.parquet", "in_nonbinary"),
    ("Praesepe_nonbinary.parquet", "in_nonbinary"),
    ("alphaPer_nonbinary.parquet", "in_nonbinary"),
    ("Blanco1_nonbinary.parquet", "in_nonbinary"),
    ("binary_rejected/Blanco1_binary_rejected.parquet", "in_binary_rejected"),
    ("binary_rejected/Hyades_binary_rejected.parquet", "in_binary_rejected"),
    ("binary_rejected/Pleiades_binary_rejected.parquet", "in_binary_rejected"),
    ("binary_rejected/Praesepe_binary_rejected.parquet", "in_binary_rejected"),
    ("binary_rejected/alphaPer_binary_rejected.parquet", "in_binary_rejected"),
    ("Hyades_sample.parquet", "in_sample"),
    ("Praesepe_sample.parquet", "in_sample"),
    ("alphaPer_sample.parquet", "in_sample"),
]
ISO_FLAGS = ["in_input", "in_nonbinary", "in_binary_rejected", "in_sample"]
LAMOST = [
    "feh",
    "feh_err",
    "logg",
    "logg_err",
    "teff",
    "teff_err",
    "rv",
    "rv_err",
    "alpha_m",
    "alpha_m_err",
    "snrg",
    "nobs",
]
ISO_DIR = "ISO_Open_Clusters/iso_input/"
DISTANT = {
    "lrs": "DistantClustersGaia_GALEX_SDSS_Skymapper_2MASS_WISE_ASASSN_LAMOST_LRS.parquet",
    "mrs": "DistantClustersGaia_GALEX_SDSS_Skymapper_2MASS_WISE_ASASSN_LAMOST_MRS.parquet",
}


def _iso_frame(w: Writer, rel: str, extra: list[str] = ()) -> pd.DataFrame:
    df = w.read(ISO_DIR + rel).rename(columns=ISO_RENAME)
    for c in ("dr2_bp_flux_over_error", "dr2_rp_flux_over_error"):
        if c not in df.columns:  # only the M67 and distant files have them
            df[c] = np.nan
    cols = ISO_COMMON + [c for c in extra if c in df.columns]
    out = pick(df, cols, rel)
    for c in out.columns:  # M67's file writes '' for a missing 2MASS/WISE quality flag or id
        if pd.api.types.is_string_dtype(out[c]):
            out[c] = out[c].mask(out[c].str.strip() == "")
    for c in ("dr2_source_id", "dr3_source_id"):
        out[c] = out[c].astype("int64")
    return out


def _merge_first(frames: list[pd.DataFrame], keys: list[str]) -> pd.DataFrame:
    """One row per key: first non-null value of every column in frame order."""
    allf = pd.concat(frames, ignore_index=True)
    allf["_order"] = np.arange(len(allf))
    allf = allf.sort_values("_order", kind="stable")
    merged = allf.groupby(keys, sort=False, dropna=False).first()
    return merged.reset_index().drop(columns="_order")


def curate_members(w: Writer) -> None:
    # Almeida EDR3: drop exact duplicate rows only (7, all NGC_2243).
    src = "gaia_stars/members_almeida_edr3_20clusters.parquet"
    alm = w.read(src)
    n0 = len(alm)
    alm = alm.drop_duplicates().drop(columns=["BPRP"])
    alm["cluster"] = alm["cluster"].astype(str)
    assert n0 - len(alm) == 7, n0 - len(alm)
    w.parquet(alm, "members/almeida_edr3_20clusters.parquet", "ALMEIDA2023_EDR3", src)

    for name, src in [
        ("M67_DR3_CONE", "gaia_stars/m67_dr3_cone2deg_pmbox_tanmacsen.parquet"),
        ("PLEIADES_DR3_CONE", "gaia_stars/pleiades_dr3_cone2deg_pmbox_tanmacsen.parquet"),
    ]:
        df = pick(w.read(src), CONE_COLS, src)
        w.parquet(df, f"members/{name.lower().replace('_dr3_cone', '')}_dr3_cone_pmbox.parquet", name, src)

    # ISO nearby: merge the 14 files into one row per (Cluster, dr3_source_id) + flags.
    frames = []
    for rel, flag in ISO_NEARBY_FILES:
        f = _iso_frame(w, rel)
        for fl in ISO_FLAGS:
            f[fl] = fl == flag
        frames.append(f)
    n_rows = sum(len(f) for f in frames)
    nearby = _merge_first([f.drop(columns=ISO_FLAGS) for f in frames], ["Cluster", "dr3_source_id"])
    flags = (
        pd.concat(frames, ignore_index=True)[["Cluster", "dr3_source_id"] + ISO_FLAGS]
        .groupby(["Cluster", "dr3_source_id"], sort=False)
        .any()
        .reset_index()
    )
    nearby = nearby.merge(flags, on=["Cluster", "dr3_source_id"], how="left", validate="1:1")
    nearby = nearby.sort_values(["Cluster", "dr3_source_id"], kind="stable")[ISO_COMMON + ISO_FLAGS]
    print(f"  ISO nearby: {n_rows} rows in {len(frames)} files -> {len(nearby)} stars")
    w.parquet(
        nearby, "members/iso_nearby_members.parquet", "ISO_NEARBY", ISO_DIR + "{M67,Hyades,...}*.parquet"
    )

    # ISO distant: LRS and MRS side by side.
    parts = {}
    for survey, rel in DISTANT.items():
        f = _iso_frame(w, rel, LAMOST)
        for c in LAMOST:
            if c in f.columns:  # LAMOST writes 9999 for a missing value (17 MRS rv_err)
                f[c] = f[c].mask(f[c].abs() >= 9999)
        f = f.rename(columns={c: f"{survey}_{c}" for c in LAMOST if c in f.columns})
        f[f"in_{survey}"] = True
        parts[survey] = f
    lamost_cols = {s: [c for c in parts[s].columns if c.startswith(s + "_")] for s in parts}
    base = _merge_first([parts["lrs"][ISO_COMMON], parts["mrs"][ISO_COMMON]], ["Cluster", "dr3_source_id"])
    for s in ("lrs", "mrs"):
        base = base.merge(
            parts[s][["Cluster", "dr3_source_id", f"in_{s}"] + lamost_cols[s]],
            on=["Cluster", "dr3_source_id"],
            how="left",
            validate="1:1",
        )
        base[f"in_{s}"] = base[f"in_{s}"].fillna(False).astype(bool)
    base = base.sort_values(["Cluster", "dr3_source_id"], kind="stable")
    base = base[ISO_COMMON + ["in_lrs", "in_mrs"] + lamost_cols["lrs"] + lamost_cols["mrs"]]
    print(f"  ISO distant: {len(parts['lrs'])} LRS + {len(parts['mrs'])} MRS rows -> {len(base)} stars")
    w.parquet(
        base, "members/iso_distant_lamost.parquet", "ISO_DISTANT_LAMOST", ISO_DIR + "DistantClusters*.parquet"
    )


# ---------------------------------------------------------------------------
# fields and error distributions
# ---------------------------------------------------------------------------
FIELD_COLS = (
    ["source_id", "ref_epoch"]
    + ASTRO
    + CORR10
    + [
        "astrometric_params_solved",
        "astrometric_excess_noise",
        "visibility_periods_used",
        "ruwe",
        "phot_g_mean_flux",
        "phot_g_mean_flux_error",
        "phot_g_mean_flux_over_error",
        "phot_g_mean_mag",
        "phot_bp_mean_flux",
        "phot_bp_mean_flux_error",
        "phot_bp_mean_flux_over_error",
        "phot_bp_mean_mag",
        "phot_rp_mean_flux",
        "phot_rp_mean_flux_error",
        "phot_rp_mean_flux_over_error",
        "phot_rp_mean_mag",
        "phot_bp_rp_excess_factor",
        "radial_velocity",
        "radial_velocity_error",
        "l",
        "b",
    ]
)
BLANCO_COLS = [
    "source_id",
    "l",
    "b",
    "ra",
    "ra_error",
    "dec",
    "dec_error",
    "parallax",
    "parallax_error",
    "pmra",
    "pmra_error",
    "pmdec",
    "pmdec_error",
    "phot_g_mean_mag",
    "phot_g_mean_flux_over_error",
    "phot_bp_mean_mag",
    "phot_bp_mean_flux_over_error",
    "phot_rp_mean_mag",
    "phot_rp_mean_flux_over_error",
    "phot_bp_rp_excess_factor",
    "ruwe",
    "r_est",
    "r_lo",
    "r_hi",
    "ocelot_label",
]


def curate_fields(w: Writer) -> None:
    src = "gaia_stars/blanco1_dr2_cone_g18.parquet"
    w.parquet(
        pick(w.read(src), BLANCO_COLS, src), "fields/blanco1_dr2_cone_g18.parquet", "BLANCO1_DR2_CONE", src
    )
    src = "gaia_stars/field_dr3_ra45_dec0_r0p5deg.parquet"
    w.parquet(
        pick(w.read(src), FIELD_COLS, src),
        "fields/field_dr3_ra45_dec0_r0p5deg.parquet",
        "FIELD_DR3_CONE",
        src,
    )
    for rel in ("dr2", "edr3", "dr3"):
        src = f"gaia_stars/random_{rel}_pyia.parquet"
        df = w.read(src)
        if "radial_velocity" not in df.columns and "dr2_radial_velocity" in df.columns:
            # EDR3 carries the DR2 radial velocities under another name.
            df = df.rename(
                columns={
                    "dr2_radial_velocity": "radial_velocity",
                    "dr2_radial_velocity_error": "radial_velocity_error",
                }
            )
        cols = [c for c in FIELD_COLS if c in df.columns]  # DR2 has no ruwe
        w.parquet(pick(df, cols, src), f"fields/random_{rel}_pyia.parquet", "PYIA_RANDOM", src)
    w.copy(
        "gaia_oc_amd/gaia_oc_amd/data_preparation/LogErrVsMagSpline.csv",
        "fields/gaia_edr3_logerr_vs_mag_spline.csv",
        "GAIA_EDR3_ERROR_SPLINE",
        rows=37,
    )


# ---------------------------------------------------------------------------
# spectra, grids, labels, line lists
# ---------------------------------------------------------------------------
PJ_DROP_PREFIX = ("APOGEE_TARGET", "APOGEE2_TARGET", "OBSV", "SYNTH", "RV_", "WASH", "DDO51", "IRAC", "TARG_")
PJ_DROP = {
    "APSTAR_ID",
    "TARGET_ID",
    "ASPCAP_ID",
    "FILE",
    "COMMISS",
    "MEANFIB",
    "SIGFIB",
    "SNREV",
    "APSTAR_VERSION",
    "ASPCAP_VERSION",
    "RESULTS_VERSION",
    "EXTRATARG",
    "MIN_H",
    "MAX_H",
    "MIN_JK",
    "MAX_JK",
    "COMBTYPE",
    "ALT_ID",
    "SRC_H",
    "AK_TARG_METHOD",
    "STARFLAG",
    "ANDFLAG",
    "VERR_MED",
    "PROGRAMNAME",
    "SURVEY",
}


def _npz_rows(path: Path, key: str) -> int:
    with np.load(path, allow_pickle=False) as z:
        return int(z[key].shape[0])


def curate_spectra(w: Writer) -> None:
    s = w.source
    w.copy(
        "gaia_rvs_spectra/gaia_dr3_rvs_examples.npz",
        "spectra/gaia_rvs/gaia_dr3_rvs_examples.npz",
        "GAIA_RVS",
        rows=_npz_rows(s / "gaia_rvs_spectra/gaia_dr3_rvs_examples.npz", "flux"),
    )
    meta = pd.read_csv(s / "gaia_rvs_spectra/gaia_dr3_rvs_examples_meta.csv")
    w.parquet(
        meta,
        "spectra/gaia_rvs/gaia_dr3_rvs_examples_meta.parquet",
        "GAIA_RVS",
        "gaia_rvs_spectra/gaia_dr3_rvs_examples_meta.csv",
    )

    w.copy(
        "gaia_xp/gaia_dr3_xp_continuous_examples.npz",
        "spectra/gaia_xp/gaia_dr3_xp_continuous_examples.npz",
        "GAIA_XP",
        rows=_npz_rows(s / "gaia_xp/gaia_dr3_xp_continuous_examples.npz", "source_id"),
    )
    for f in sorted((s / "gaia_xp/config").iterdir()):
        w.copy(f"gaia_xp/config/{f.name}", f"spectra/gaia_xp/config/{f.name}", "GAIA_XP")
    for f in sorted((s / "gaia_xp/samples").iterdir()):
        rows = len(pd.read_csv(f))
        w.gzip_copy(f"gaia_xp/samples/{f.name}", f"spectra/gaia_xp/samples/{f.name}.gz", "GAIA_XP", rows=rows)

    w.copy(
        "apogee_spectra/apogee_payne_example_spectra.npz",
        "spectra/apogee/apogee_payne_example_spectra.npz",
        "APOGEE_SPECTRA",
        rows=4,
    )

    for f in (
        "apogee_wavelength_grid.npz",
        "apogee_continuum_masks.npz",
        "apogee_element_windows.npz",
        "rsca_masked_regions.json",
    ):
        w.copy(f"RSCA/{f}", f"apogee/{f}", "APOGEE_GRID")
    w.copy(
        "RSCA/cannon_apokasc_quadratic_model.npz",
        "apogee/cannon_apokasc_quadratic_model.npz",
        "CANNON_APOKASC",
    )
    lab = pd.read_csv(s / "RSCA/cannon_apokasc_training_labels.csv")
    w.parquet(
        lab,
        "apogee/cannon_apokasc_training_labels.parquet",
        "CANNON_APOKASC",
        "RSCA/cannon_apokasc_training_labels.csv",
    )

    for src, rel, ds in [
        ("RSCA/occam_dr16/occam_member-DR16.parquet", "apogee/occam_member_dr16.parquet", "OCCAM_DR16"),
        ("RSCA/occam_dr16/occam_cluster-DR16.parquet", "apogee/occam_cluster_dr16.parquet", "OCCAM_DR16"),
        ("apogee_occam/occam_member-DR17.parquet", "apogee/occam_member_dr17.parquet", "OCCAM_DR17"),
    ]:
        w.parquet(sentinel_to_nan(w.read(src)), rel, ds, src)

    src = "apogee_labels/guiglion2020_rave_apogee_dr16_training_sample.parquet"
    w.parquet(
        w.read(src), "apogee/guiglion2020_rave_apogee_dr16_labels.parquet", "APOGEE_LABELS_GUIGLION2020", src
    )
    src = "apogee_labels/pricejones2020_chemically_tagged_apogee_dr16.parquet"
    pj = w.read(src)
    keep = [c for c in pj.columns if c not in PJ_DROP and not c.startswith(PJ_DROP_PREFIX)]
    w.parquet(
        sentinel_to_nan(pj[keep]),
        "apogee/pricejones2020_apogee_dr16_cluster_stars.parquet",
        "APOGEE_LABELS_PRICEJONES2020",
        src,
    )

    w.copy(
        "linelists_cat/vald_8460_8700_lines.csv.gz",
        "linelists/vald_8460_8700_lines.csv.gz",
        "VALD_LINELIST",
        rows=10488,
    )
    w.copy(
        "linelists_cat/vald_8460_8700_turbospectrum_format.list.gz",
        "linelists/vald_8460_8700_turbospectrum_format.list.gz",
        "VALD_LINELIST",
    )


def curate_models(w: Writer) -> None:
    """The authors' released vG23 networks, converted by tools/port_vg23_weights.py (byte-reproducible)."""
    from port_vg23_weights import MODEL_DIR, MODELS, convert

    for name in MODELS:
        src = f"gaia_oc_amd/{MODEL_DIR}/{name}"
        w._record(f"models/vg23_{name}.npz", "VG23_DS10", convert(w.source / src, name), None, None, src)


# ---------------------------------------------------------------------------
# registry and provenance
# ---------------------------------------------------------------------------
def provenance_markdown(records: list[dict]) -> str:
    lines = [
        "# ocnb/data — provenance of the shipped data",
        "",
        "Generated by `tools/curate_data.py` from `../shared/data` (each source folder there has its own "
        "PROVENANCE.md).",
        "All files are real published data taken from public repositories; nothing was simulated or "
        "subsampled.",
        "Parquet files are zstd-compressed (`pandas.read_parquet`); `.npz` files load with "
        "`numpy.load(allow_pickle=False)`.",
        "Every file's SHA-256 is in `registry.json`; ocnb's loaders refuse a file whose checksum does not "
        "match.",
        "Gaia magnitudes are Vega magnitudes; positions ICRS.",
        "",
        f"Total: {len(records)} files, {sum(r['bytes'] for r in records) / 1e6:.2f} MB.",
        "",
    ]
    for name, meta in DATASETS.items():
        recs = [r for r in records if r["dataset"] == name]
        lines += [f"## {name}", ""]
        lines += [
            f"- **What:** {meta['description']}",
            f"- **Origin:** `{meta['origin']}`",
            f"- **Licence:** {meta['licence']}",
            f"- **Cite:** {meta['citation']}",
            f"- **Kept:** {meta['kept']}",
            f"- **Dropped / changed:** {meta['dropped']}",
            f"- **Units:** {meta['units']}",
        ]
        if meta.get("note"):
            lines.append(f"- **Notes:** {meta['note']}")
        lines += ["- **Files:**", ""]
        lines += ["  | file | rows | kB | from (shared/data) |", "  |---|---|---|---|"]
        for r in recs:
            rows = "" if r["rows"] is None else r["rows"]
            lines.append(f"  | `{r['file']}` | {rows} | {r['bytes'] / 1e3:.1f} | `{r['source_path']}` |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--source", type=Path, default=DEFAULT_SOURCE, help="shared/data folder (default %(default)s)"
    )
    ap.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="output folder (default %(default)s)")
    args = ap.parse_args(argv)
    source, dest = args.source.resolve(), args.dest.resolve()
    if not (source / "catalogs").is_dir():
        ap.error(f"{source} does not look like shared/data (no catalogs/ folder)")
    # Start from an empty folder (keep nothing stale), but only inside a folder named 'data'.
    if dest.exists():
        if dest.name != "data":
            ap.error(f"refusing to clear {dest}: the destination folder must be named 'data'")
        for child in dest.iterdir():
            if child.name in ("__init__.py",):
                continue
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    dest.mkdir(parents=True, exist_ok=True)

    w = Writer(source, dest)
    print("catalogs")
    curate_catalogs(w)
    print("members")
    curate_members(w)
    print("fields")
    curate_fields(w)
    print("spectra, grids, labels")
    curate_spectra(w)
    print("models")
    curate_models(w)

    prov = provenance_markdown(w.records).encode()
    (dest / "PROVENANCE.md").write_bytes(prov)
    registry = {
        "format": 1,
        "generator": "tools/curate_data.py",
        "versions": {"pandas": pd.__version__, "pyarrow": pa.__version__, "numpy": np.__version__},
        "datasets": {k: dict(v) for k, v in DATASETS.items()},
        "files": sorted(w.records, key=lambda r: r["file"]),
        "provenance_sha256": sha256_bytes(prov),
    }
    (dest / "registry.json").write_text(
        json.dumps(registry, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    total = sum(r["bytes"] for r in w.records)
    print(f"\n{len(w.records)} files, {total / 1e6:.2f} MB (+ registry.json, PROVENANCE.md) in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
