"""Galactic positions and the Figs. 14-15 samples from the published Cavallo et al. (2024) catalogue."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ocnb.cmd_ann import galactic as gal


@pytest.fixture(scope="module")
def rgc(cavallo, hunt):
    return gal.rgc_with_errors(cavallo, hunt=hunt)


def test_rgc_reproduces_catalogue(cavallo, rgc):
    # spec §9c: astropy Galactocentric with R0 = 8.122 kpc gives the catalogue's Rgc to <= 0.5 pc
    assert len(rgc) == len(cavallo) == 6140
    assert np.abs(rgc["R_GC"] - cavallo["Rgc"]).max() <= 0.0005
    # X, Y are the catalogue's exactly; its Z carries a constant +20.8 pc (documented in the module)
    assert np.abs(rgc["X"] - cavallo["X"]).max() < 1e-9
    assert np.abs(rgc["Y"] - cavallo["Y"]).max() < 1e-9
    assert np.abs(rgc["Z"] + gal.Z_SUN_KPC - cavallo["Z"]).max() < 1e-9
    # the solar height matters at this precision: ignoring it misses by several pc
    flat = gal.galactocentric(cavallo["RA_ICRS"], cavallo["DE_ICRS"], cavallo["dMod50"], z_sun=0.0)
    assert np.abs(flat["R_GC"] - cavallo["Rgc"]).max() > 0.003


def test_sigma_r_is_half_the_dmod_width(cavallo, rgc):
    i = cavallo.index[cavallo["name"] == "NGC 2682"][0]
    row = cavallo.loc[i]
    r16, r84 = (
        gal.galactocentric(row["RA_ICRS"], row["DE_ICRS"], row[c])["R_GC"].iloc[0]
        for c in ("dMod16", "dMod84")
    )
    assert rgc.loc[i, "sigma_R"] == pytest.approx(abs(r84 - r16) / 2, rel=1e-12)
    assert (rgc["sigma_R"] > 0).all()
    # M67: ~0.85 kpc from the Sun, slightly outside the solar circle
    assert 0.7 < rgc.loc[i, "d_kpc"] < 1.0 and 8.3 < rgc.loc[i, "R_GC"] < 9.2


def test_galactocentric_geometry():
    # Sun-near clusters sit at R0; towards the Galactic centre R shrinks, towards the anticentre it grows
    from astropy.coordinates import SkyCoord

    gc_dir = SkyCoord(l=0, b=0, unit="deg", frame="galactic").icrs
    anti = SkyCoord(l=180, b=0, unit="deg", frame="galactic").icrs
    dm_1kpc = 5 * np.log10(1000) - 5
    out = gal.galactocentric(
        [gc_dir.ra.deg, anti.ra.deg, 10.0, np.nan],
        [gc_dir.dec.deg, anti.dec.deg, 20.0, 0.0],
        [dm_1kpc, dm_1kpc, -3.0, 10.0],
    )
    assert out["R_GC"].iloc[0] == pytest.approx(gal.R0_KPC - 1.0, abs=1e-3)
    assert out["X"].iloc[0] == pytest.approx(1.0, abs=1e-3)
    assert out["R_GC"].iloc[1] == pytest.approx(gal.R0_KPC + 1.0, abs=1e-3)
    assert out["X"].iloc[1] == pytest.approx(-1.0, abs=1e-3)
    assert out["d_kpc"].iloc[2] == pytest.approx(10**0.4 / 1e3)  # dMod = -3 -> 2.5 pc
    assert out["R_GC"].iloc[2] == pytest.approx(gal.R0_KPC, abs=0.003)
    assert out.iloc[3].isna().all()


def test_sun_near_clusters(rgc):
    near = rgc[rgc["d_kpc"] < 0.15]
    assert len(near) > 5
    assert (near[["X", "Y"]].abs() < 0.15).all().all()
    assert np.allclose(near["R_GC"], gal.R0_KPC, atol=0.16)


def test_galactic_sample_counts_and_bins(cavallo, hunt):
    s = gal.galactic_sample(cavallo, hunt)
    c = s.attrs["counts"]
    assert c["catalogue"] == 6140 and c["quality"] == 5099
    assert c["cmd_class"] == len(s) and 4000 < len(s) < c["quality"]
    counts = gal.age_bin_counts(s)
    assert list(counts.index) == list(gal.AGE_BIN_LABELS)
    assert counts.sum() == len(s)  # every selected cluster falls in exactly one bin
    assert (counts > 0).all()
    assert any("skipped" in cut for cut in s.attrs["cuts"])
    # young clusters crowd the Perseus-arm clump at (X, Y) ~ (-1.7, 2) kpc (Sect. 5.3); old ones do not
    clump = np.hypot(s["X"] + 1.7, s["Y"] - 2.0) < 0.5
    young = clump[s["age_bin"] == gal.AGE_BIN_LABELS[0]].mean()
    old = clump[s["age_myr"] > 500].mean()
    assert young > 2 * old


def test_bright_member_cut(cavallo, hunt):
    base = gal.galactic_sample(cavallo, hunt)
    names = base["name"].iloc[:50]
    counts = pd.Series(3, index=names)
    counts.iloc[:10] = 2
    cut = gal.galactic_sample(cavallo, hunt, bright_counts=counts)
    assert len(cut) == 40 and cut.attrs["counts"]["bright_members"] == 40


def test_z_width_grows_with_age(cavallo, hunt):
    s = gal.galactic_sample(cavallo, hunt)
    z = gal.z_distribution(s, max_dist_kpc=2.0)
    assert z["n"].sum() == (s["d_kpc"] < 2.0).sum()
    young, old = z.loc[gal.AGE_BIN_LABELS[0], "mad_sigma_Z"], z.loc["1-2 Gyr", "mad_sigma_Z"]
    assert 0.03 < young < 0.12  # ~75 pc: young clusters hug the mid-plane
    assert old > 1.5 * young
    assert z.loc[gal.AGE_BIN_LABELS[-1], "std_Z"] > z.loc[gal.AGE_BIN_LABELS[0], "std_Z"]


def test_own_estimates_without_positions(cavallo, hunt):
    # A table shaped like our ANN output (no RA/Dec, '_50' spellings): positions come from HR23 by name
    sub = cavallo[cavallo["name"].isin(["NGC 2682", "NGC 188", "Melotte 22", "NGC 6791"])]
    ours = pd.DataFrame(
        {
            "name": sub["name"],
            "logAge_50": sub["logAge50"],
            "dMod_16": sub["dMod16"],
            "dMod_50": sub["dMod50"],
            "dMod_84": sub["dMod84"],
            "quality": sub["Quality"],
        }
    )
    r = gal.rgc_with_errors(ours, hunt=hunt)
    assert len(r) == 4 and r["R_GC"].notna().all()
    # HR23 centres differ from Cavallo's member means by < 0.1 deg: R_GC agrees to a few pc
    assert np.abs(r["R_GC"].to_numpy() - sub["Rgc"].to_numpy()).max() < 0.01
    s = gal.galactic_sample(ours, hunt, cmd_min=None)
    assert len(s) == 4 and gal.age_bin_counts(s).sum() == 4


def test_plots(cavallo, hunt):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = gal.galactic_sample(cavallo, hunt)
    fig = gal.plot_xy_age_bins(s, title="Fig. 14")
    assert len(fig.axes) == 6
    assert sum(len(ax.collections[0].get_offsets()) for ax in fig.axes) == len(s[s["age_bin"].notna()])
    fig2 = gal.plot_z_histograms(s)
    assert len(fig2.axes) == 6
    plt.close("all")


def _texts(fig):
    """(text, window box) of every visible title, axis label and in-view tick label of ``fig``."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    out = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            out += [(t.label1.get_text(), t.label1.get_window_extent(r)) for t in axis.get_major_ticks()
                    if lo - 1e-9 <= t.get_loc() <= hi + 1e-9 and t.label1.get_visible() and t.label1.get_text()]
        out += [(t.get_text(), t.get_window_extent(r)) for t in (ax.title, ax.xaxis.label, ax.yaxis.label)
                if t.get_visible() and t.get_text()]
    if fig._suptitle is not None:
        out.append((fig._suptitle.get_text(), fig._suptitle.get_window_extent(r)))
    return out


def overlapping_texts(fig) -> list:
    texts = _texts(fig)
    return [(a, b) for i, (a, ba) in enumerate(texts) for b, bb in texts[i + 1:] if ba.overlaps(bb)]


def test_overplot_reuses_the_panels_and_keeps_the_catalogue_visible(cavallo, hunt):
    """fig=fig drew a second 2 x 3 grid on top: the catalogue was hidden and the titles were printed twice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = gal.galactic_sample(cavallo, hunt)
    sub = cavallo[cavallo["name"].isin(["NGC 2682", "NGC 188", "Melotte 22", "NGC 6791", "Melotte 20"])]
    ours = pd.DataFrame({"name": sub["name"], "logAge_50": sub["logAge50"], "dMod_16": sub["dMod16"],
                         "dMod_50": sub["dMod50"], "dMod_84": sub["dMod84"]})
    mine = gal.galactic_sample(ours, hunt, quality=None, cmd_min=None)
    fig = gal.plot_xy_age_bins(s, title="Fig. 14", label="catalogue")
    assert gal.plot_xy_age_bins(mine, fig=fig, color="r", size=25, label="ours") is fig
    assert len(fig.axes) == 6  # the same six panels, not twelve
    counts = gal.age_bin_counts(s)
    mine_counts = gal.age_bin_counts(mine)
    for ax, label in zip(fig.axes, gal.AGE_BIN_LABELS, strict=True):
        under, over = ax.collections  # the catalogue, then ours on top of it
        assert len(under.get_offsets()) == counts[label] and len(over.get_offsets()) == mine_counts[label]
        assert over.get_zorder() > under.get_zorder()
        assert f"N = {counts[label]}" in ax.get_title() and f"ours: {mine_counts[label]}" in ax.get_title()
    assert counts[gal.AGE_BIN_LABELS[0]] > 500  # the young catalogue clusters that trace the arms are there
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["catalogue", "ours"]
    assert not overlapping_texts(fig), overlapping_texts(fig)
    for ax in fig.axes[3:]:
        assert "[kpc]" in ax.get_xlabel()
    for ax in fig.axes[::3]:
        assert "[kpc]" in ax.get_ylabel()
    fig2 = gal.plot_z_histograms(s, title="Fig. 15")
    assert not overlapping_texts(fig2), overlapping_texts(fig2)
    assert all("[kpc]" in ax.get_xlabel() for ax in fig2.axes[3:])
    assert all("pc" in ax.get_ylabel() for ax in fig2.axes[::3])
    plt.close("all")
