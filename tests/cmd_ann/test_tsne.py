"""t-SNE of synthetic vs observed QuadTree features (Cavallo+2024 Sect. 2.3, Fig. 1; ocnb.cmd_ann.tsne).

Small sizes: 300 SIMULATED clusters and a dozen real member tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("openTSNE")

from ocnb.cmd_ann.features import QuadTreeFeatures, cmd_arrays, quadtree_cuts
from ocnb.cmd_ann.panels import plot_quadtree, quadtree_segments
from ocnb.cmd_ann.simulate import simulate_clusters
from ocnb.cmd_ann.tsne import TSNEResult, embed_features, observed_features

REAL = ["Blanco 1", "IC 2391", "IC 2602", "Melotte 22", "NGC 2682", "NGC 2632", "NGC 752", "NGC 6811",
        "NGC 2243", "NGC 2360", "Ruprecht 147", "NGC 1039", "NGC 869"]  # NGC 869: 9 stars -> left out
EXAMPLE = [(0.1, 5), (0.2, 3), (0.3, 6), (0.4, 4), (0.6, 2), (0.7, 9), (0.8, 1), (0.9, 8)]  # spec §3


@pytest.fixture(scope="module")
def synthetic():
    return simulate_clusters(300, seed=1, progress=False)  # SIMULATED clusters


@pytest.fixture(scope="module")
def qf(synthetic):
    return QuadTreeFeatures(bands="gaia").fit(synthetic)


@pytest.fixture(scope="module")
def observed(qf):
    return observed_features(qf, clusters=REAL)


@pytest.fixture(scope="module")
def res30(synthetic, qf, observed):
    return embed_features(qf.transform(synthetic), observed.X, perplexity=30, seed=0,
                          synthetic_labels=synthetic, observed_names=observed.names)


def _brute_fraction(frame: pd.DataFrame, k: int) -> float:
    xy = frame[["x", "y"]].to_numpy()
    syn = (frame["kind"] == "synthetic").to_numpy()
    hits = []
    for i in np.flatnonzero(~syn):
        d = np.hypot(*(xy - xy[i]).T)
        d[i] = np.inf
        hits.append(syn[np.argsort(d, kind="stable")[:k]].any())
    return float(np.mean(hits))


# ---------------------------------------------------------------------------
def test_observed_features_drop_poor_tables(observed):
    assert "NGC 869" in observed.dropped and "min_stars" in observed.dropped["NGC 869"]
    assert len(observed) == len(REAL) - 1 and observed.X.shape == (len(REAL) - 1, 64)
    assert set(observed.members) == set(observed.names)
    assert observed.sources["IC 2602"] == "almeida"  # the largest shipped list
    assert not observed.flags["low_quality"].any()


def test_embedding_frame(res30, synthetic, observed, qf):
    f = res30.frame
    n_s, n_o = len(synthetic), len(observed)
    assert f.shape[0] == n_s + n_o and res30.embedding.shape == (n_s + n_o, 2)
    assert np.isfinite(res30.embedding).all()
    assert (f["kind"].iloc[:n_s] == "synthetic").all() and (f["kind"].iloc[n_s:] == "observed").all()
    assert {"x", "y", "kind", "dist_mod", "log_age", "name", "index"} <= set(f.columns)
    np.testing.assert_array_equal(f["dist_mod"].iloc[:n_s], synthetic.labels["dist_mod"])
    assert f["dist_mod"].iloc[n_s:].isna().all()
    assert res30.observed_names == observed.names and res30.perplexity == 30
    assert res30.synthetic_X.shape == (n_s, 63)  # parallax dropped
    # 63-column input gives the same map (parallax excluded; fixed seed -> deterministic)
    again = embed_features(res30.synthetic_X, observed.X[:, :63], perplexity=30, seed=0)
    np.testing.assert_allclose(again.embedding, res30.embedding)
    # the neighbour fraction of the real clusters, and a brute-force check of it
    frac = res30.neighbour_fraction(10)
    assert 0.0 <= frac <= 1.0
    assert frac == pytest.approx(_brute_fraction(f, 10))


def test_neighbour_fraction_hand_made():
    # 20 synthetic points on a line, one observed point among them, five observed far away.
    x = np.r_[np.arange(20.0), 5.5, 100.0 + np.arange(5)]
    kind = ["synthetic"] * 20 + ["observed"] * 6
    frame = pd.DataFrame({"x": x, "y": 0.0, "kind": kind, "name": [f"p{i}" for i in range(26)]})
    r = TSNEResult(frame=frame, perplexity=1.0)
    # k = 3: the far group only sees itself; the point among the synthetic ones sees synthetics
    assert r.neighbour_fraction(3) == pytest.approx(1 / 6)
    counts = r.neighbour_counts(3).set_index("name")["n_synthetic"]
    assert counts["p20"] == 3 and (counts.drop("p20") == 0).all()
    # k = 5: after its 4 companions each far point's next neighbour is synthetic x = 19
    # (distance >= 81 < 94.5 to the observed x = 5.5); the point itself is never counted
    assert r.neighbour_fraction(5) == pytest.approx(1.0)
    # a duplicate position: the point itself is excluded, the twin counts
    dup = pd.DataFrame({"x": [0.0, 0.0, 10.0], "y": 0.0, "kind": ["observed", "synthetic", "observed"],
                        "name": ["a", "b", "c"]})
    assert TSNEResult(frame=dup, perplexity=1.0).neighbour_counts(1)["n_synthetic"].tolist() == [1, 1]
    with pytest.raises(ValueError, match="k must be"):
        r.neighbour_fraction(26)


def test_perplexity_changes_embedding_and_inputs_are_checked(res30, observed):
    res10 = res30.rerun(perplexity=10)
    assert res10.perplexity == 10
    assert res10.frame["name"].tolist() == res30.frame["name"].tolist()
    assert not np.allclose(res10.embedding, res30.embedding)
    with pytest.raises(ValueError, match="perplexity 200 is too large"):
        embed_features(res30.synthetic_X, observed.X, perplexity=200)
    with pytest.raises(ValueError, match="columns"):
        embed_features(res30.synthetic_X[:, :10], observed.X)
    bad = observed.X.copy()
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        embed_features(res30.synthetic_X, bad)
    with pytest.raises(ValueError, match="unique"):
        embed_features(res30.synthetic_X, observed.X, observed_names=["x"] * len(observed))
    with pytest.raises(TypeError, match="fixed"):
        embed_features(res30.synthetic_X, observed.X, metric="cosine")


@pytest.mark.parametrize("case", ["example", "m67", "one", "ten"])
def test_quadtree_segments_match_cuts(case, observed):
    rng = np.random.default_rng(3)
    if case == "example":
        x, y = np.array(EXAMPLE, dtype=float).T
    elif case == "m67":
        x, y = cmd_arrays(observed.members["NGC 2682"])["cmd1"]
    elif case == "one":
        x, y = np.array([0.7]), np.array([12.0])
    else:
        x, y = rng.normal(size=10), rng.normal(size=10).round(1)  # ties in y
    seg = quadtree_segments(x, y)
    cuts = quadtree_cuts(x, y)
    assert len(seg) == 63 and seg["feature"].tolist() == list(range(63))
    np.testing.assert_array_equal(seg["value"].to_numpy(), cuts)
    xs, ys = seg[seg["axis"] == "x"], seg[seg["axis"] == "y"]
    assert len(xs) == 21 and len(ys) == 42
    np.testing.assert_array_equal(xs["x0"], cuts[:21])  # vertical lines at the x-cuts
    np.testing.assert_array_equal(xs["x1"], cuts[:21])
    np.testing.assert_array_equal(ys["y0"], cuts[21:])  # horizontal lines at the y-cuts
    np.testing.assert_array_equal(ys["y1"], cuts[21:])
    assert seg.groupby("level").size().tolist() == [3, 12, 48]
    lo, hi = np.array([x.min(), y.min()]), np.array([x.max(), y.max()])
    for a, b in (("x0", "y0"), ("x1", "y1")):  # everything inside the bounding box
        pts = seg[[a, b]].to_numpy()
        assert ((pts >= lo - 1e-12) & (pts <= hi + 1e-12)).all()
    if case == "example":
        root = seg.iloc[0]
        assert (root["x0"], root["y0"], root["x1"], root["y1"]) == (0.5, 1.0, 0.5, 9.0)
        left, right = seg.iloc[21], seg.iloc[22]  # the level-1 y cuts span their halves
        assert (left["x0"], left["x1"], left["value"]) == (0.1, 0.5, 4.5)
        assert (right["x0"], right["x1"], right["value"]) == (0.5, 0.9, 5.0)
        # level 3: each 2-point node has children of 1, 0, 1, 0 points -> 8 empty nodes x 3 cuts
        assert seg["empty_cell"].sum() == 24
    if case == "one":
        assert seg["empty_cell"].sum() > 0


def test_quadtree_segments_no_stars():
    seg = quadtree_segments([], [])
    assert len(seg) == 63 and (seg["value"] == 0).all() and seg["x0"].isna().all()


def test_static_plots(res30, observed):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    x, y = cmd_arrays(observed.members["NGC 2682"])["cmd1"]
    ax = plot_quadtree(x, y, title="M67")
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(lines) == 3 and sum(len(c.get_segments()) for c in lines) == 63  # M67: no empty cell
    assert ax.yaxis_inverted()
    ax2 = res30.plot()
    syn, obs = ax2.collections[0], ax2.collections[1]
    assert len(syn.get_offsets()) == 300 and len(obs.get_offsets()) == len(observed)
    assert np.allclose(obs.get_facecolor()[0][:3], 0.0)  # observed in black
    assert "perplexity 30" in ax2.get_title()
    plt.close("all")


def test_explorer(res30, synthetic, observed):
    hv = pytest.importorskip("holoviews")
    pytest.importorskip("datashader")
    from bokeh.models import ColumnDataSource, GlyphRenderer

    ex = res30.panel(observed=observed.members, synthetic=synthetic)
    st = ex.state()
    assert st["perplexity"] == 30 and st["selected"] == observed.names[0] and st["n_embeddings"] == 0
    fig = hv.renderer("bokeh").get_plot(ex.plot()).state  # a live plot subscribes to the streams

    def cmd_x():
        return [np.asarray(s.data["bp_rp"]) for s in fig.select({"type": ColumnDataSource})
                if "bp_rp" in s.data and "bp_rp_1" not in s.data]

    def image_x():
        return [float(r.data_source.data["x"][0]) for r in fig.select({"type": GlyphRenderer})
                if type(r.glyph).__name__ == "Image"]

    def cmd_figure():
        return next(c[0] for c in fig.children if "stars in CMD1" in c[0].title.text or "SIMULATED" in c[0].title.text)

    def assert_frame_contains(df):
        f = cmd_figure()
        xr, yr = sorted((f.x_range.start, f.x_range.end)), sorted((f.y_range.start, f.y_range.end))
        assert xr[0] <= df["bp_rp"].min() and df["bp_rp"].max() <= xr[1], (xr, df["bp_rp"].agg(["min", "max"]))
        assert yr[0] <= df["g"].min() and df["g"].max() <= yr[1], (yr, df["g"].agg(["min", "max"]))
        assert (f.y_range.reset_start, f.y_range.reset_end) == (f.y_range.start, f.y_range.end)  # Reset stays

    first = ex.cmd_frame()
    assert [len(a) for a in cmd_x()] == [len(first)]
    assert_frame_contains(first)
    # dropdown (keyboard) selection changes the CMD data, in the model and in the figure
    ex.picker.value = "NGC 2682"
    assert ex.state()["selected"] == "NGC 2682"
    m67 = ex.cmd_frame()
    assert len(m67) != len(first) and [len(a) for a in cmd_x()] == [len(m67)]
    np.testing.assert_array_equal(ex.segments_frame()["value"], quadtree_cuts(m67["bp_rp"], m67["g"]))
    assert_frame_contains(m67)
    # the CMD frame follows the cluster: the Pleiades' bright stars are inside it after M67
    ex.set(selected="Melotte 22")
    ple = ex.cmd_frame()
    assert ple["g"].min() < m67["g"].min()
    assert_frame_contains(ple)
    # tap on an observed point (Selection1D) and on the synthetic cloud (Tap: nearest synthetic)
    ex.selection.event(index=[2])
    assert ex.state()["selected"] == observed.names[2] and ex.picker.value == observed.names[2]
    s = ex.result.synthetic.iloc[17]
    ex.tap.event(x=s["x"], y=s["y"])
    st = ex.state()
    assert st["kind"] == "synthetic" and st["index"] == 17 and ex.picker.value is None
    assert len(ex.cmd_frame()) == len(cmd_arrays(synthetic.cluster(17))["cmd1"][0])
    assert_frame_contains(ex.cmd_frame())
    ex.select("IC 2391")
    assert ex.state()["selected"] == "IC 2391"
    with pytest.raises(KeyError):
        ex.select("no such cluster")
    # perplexity: re-embed once per value, cached afterwards; the figure follows
    x30 = image_x()
    ex.set_perplexity(10)
    assert ex.state()["n_embeddings"] == 1 and ex.result.perplexity == 10
    assert not np.allclose(ex.result.embedding, res30.embedding)
    assert image_x() != x30
    ex.perplexity.value = 30.0
    ex.set_perplexity(10)
    assert ex.state()["n_embeddings"] == 1 and ex.state()["cached"] == [10.0, 30.0]
    assert ex.state()["selected"] == "IC 2391" and "perplexity 10" in ex.status.value
    # plain points instead of datashader also render
    plain = res30.panel(observed=observed.members, datashade=False, start="NGC 752")
    hv.renderer("bokeh").get_plot(plain.plot())
    assert plain.state()["selected"] == "NGC 752"
    plain.select("SYN-000003")  # no synthetic container: empty CMD, no error
    assert len(plain.cmd_frame()) == 0


BAD_EXPLORER_SET = [
    (dict(selected="no such cluster"), r"selected = 'no such cluster': 'no such cluster' is not a point"),
    (dict(perplexity=-5), r"perplexity = -5: need 0 < perplexity <= \(n - 1\) / 3"),
    (dict(perplexity=1000.0), r"perplexity = 1000.0: need 0 < perplexity"),
    (dict(perplexity="30"), r"perplexity must be a number, got '30'"),
    (dict(colour="red"), r"unknown parameter\(s\) \['colour'\] for TSNEExplorer"),
]


@pytest.mark.parametrize(("values", "match"), BAD_EXPLORER_SET)
def test_explorer_set_rejects_bad_values(res30, observed, values, match):
    pytest.importorskip("holoviews")
    from ocnb.panels import PanelValueError

    ex = res30.panel(observed=observed.members, datashade=False)
    before = ex.state()
    with pytest.raises(PanelValueError, match=match):
        ex.set(**values)
    assert ex.state() == before
    # a result without its inputs cannot re-embed at a new perplexity: said before anything changes
    bare = TSNEResult(frame=res30.frame, perplexity=30.0)
    with pytest.raises(PanelValueError, match=r"perplexity = 10 needs a re-embedding"):
        bare.panel(observed=observed.members, datashade=False).set(perplexity=10)
