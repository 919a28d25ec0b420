"""Notebook 03's star explorer (Malhotra et al. 2025, Fig. 2): pick a member, see its M_A–q posterior.

``StarPosteriorPanel``   the members' CMD with the chosen star marked, beside that star's joint posterior
                         of the primary mass M_A and the mass ratio q (a weighted 2-D histogram), with or
                         without the cluster prior (and q-prior) weights; click a star on the CMD (or move
                         the slider) to pick it; given the cluster's parameters, the CMD shows where the
                         single-star and the equal-mass binary sequences run.
``BinaryFractionPanel``  binary fraction of the main-sequence members against primary mass, for a q
                         threshold and a number of mass bins chosen with sliders, with the f_b(M_A) law of
                         M25 eq. 8 for comparison.
``ClusterFitPanel``      an iteration scrubber for the cluster fit: the isochrone of the chosen iteration on
                         the CMD beside the convergence of log age, distance and A_V (Fig. 3).

Like every ocnb panel (:class:`ocnb.panels.Panel`) the state lives in ipywidgets (``state()``, ``set(...)``,
``plot()``, ``controls()``) and the plots follow through a holoviews stream, so it is testable without a
browser. holoviews, bokeh and ipywidgets are imported when a panel is built.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..panels.base import Panel, PanelValueError, hv, widgets
from .simulate import THETA_NAMES

__all__ = ["StarPosteriorPanel", "BinaryFractionPanel", "ClusterFitPanel"]

#: G-band offset of an equal-mass unresolved pair from its single star: 2.5 log10(2) [mag]
EQUAL_MASS_OFFSET = 2.5 * np.log10(2.0)

_M, _Q = THETA_NAMES.index("mass_a"), THETA_NAMES.index("q")


class StarPosteriorPanel(Panel):
    """A member's M_A–q posterior beside the cluster CMD.

    Parameters
    ----------
    posteriors : StarPosteriors
        From :func:`ocnb.binaries.sample_posteriors`.
    members : DataFrame
        The same stars, with ``G``, ``BP``, ``RP`` [mag] (canonical observables; real member tables are
        converted with :func:`ocnb.binaries.observables`).
    weights : ndarray (n_stars, n_samples), optional
        Cluster-prior (× q-prior) weights; adds a "cluster prior" switch.
    star : int, optional
        Position (among the stars with a posterior) shown first.
    cluster : mapping, optional
        The cluster's ``log_age`` [log10 yr], ``feh`` [dex], ``dist_mod`` and ``a_v`` [mag] (e.g.
        ``ClusterFit.params``): the CMD then shows the single-star sequence (the PARSEC isochrone up
        to the end of the main sequence) and the equal-mass binary sequence 0.75 mag above it.
    """

    def __init__(self, posteriors, members: pd.DataFrame, weights=None, star: int = 0, bins: int = 40,
                 cluster=None):
        from .posterior import observables

        w = widgets()
        holo = hv()
        obs = observables(members)
        if len(obs) != posteriors.samples.shape[0]:
            raise PanelValueError(f"StarPosteriorPanel: {posteriors.samples.shape[0]} posteriors but {len(obs)} "
                                  "members; pass the table the posteriors were drawn for")
        self.rows = np.flatnonzero(posteriors.ok)
        if not self.rows.size:
            raise PanelValueError("StarPosteriorPanel: no star has a posterior (statuses: "
                                  f"{pd.Series(posteriors.status).value_counts().to_dict()})")
        if weights is not None:
            weights = np.asarray(weights, float)
            if weights.shape != posteriors.samples.shape[:2]:
                raise PanelValueError(f"weights must have shape {posteriors.samples.shape[:2]} (stars, samples), "
                                      f"got {weights.shape}")
        self.post, self.weights, self.bins = posteriors, weights, int(bins)
        self.g = obs["G"].to_numpy(float)
        self.colour = (obs["BP"] - obs["RP"]).to_numpy(float)
        if not isinstance(star, (int, np.integer)) or not 0 <= star < self.rows.size:
            raise PanelValueError(f"star = {star!r}: choose a position 0 … {self.rows.size - 1} among the "
                                  f"{self.rows.size} stars with a posterior")
        self.star = w.IntSlider(value=int(star), min=0, max=int(self.rows.size - 1), description="star",
                                continuous_update=False, layout=w.Layout(width="420px"))
        self._control("star", self.star)
        self.prior_box = w.Checkbox(value=weights is not None, description="cluster prior",
                                    disabled=weights is None, indent=False)
        self._control("cluster_prior", self.prior_box)
        self.readout = w.HTML()
        self._stream = holo.streams.Stream.define("Star", star=int(star), cluster_prior=bool(self.prior_box.value))()
        self.star.observe(self._changed, names="value")
        self.prior_box.observe(self._changed, names="value")
        self.sequences = self._sequences(cluster) if cluster is not None else None
        self._update_readout()

    @staticmethod
    def _sequences(cluster) -> pd.DataFrame:
        """Single-star main sequence and equal-mass binary sequence on the apparent CMD [mag]."""
        from ..isochrones import default_grid

        missing = [k for k in ("log_age", "feh", "dist_mod", "a_v") if k not in cluster]
        if missing:
            raise PanelValueError(f"cluster lacks {missing}: give log_age, feh, dist_mod and a_v (ClusterFit.params)")
        grid = default_grid()
        iso = grid.isochrone(float(np.clip(cluster["log_age"], *grid.age_range)),
                             float(np.clip(cluster["feh"], *grid.mh_range))).apparent(
            float(cluster["dist_mod"]), max(float(cluster["a_v"]), 0.0)).data
        ms = iso[iso["label"].to_numpy() <= 1]  # pre-main sequence and main sequence: where binaries are seen
        return pd.DataFrame({"colour": (ms["BP"] - ms["RP"]).to_numpy(float), "G": ms["G"].to_numpy(float)})

    def select_at(self, colour: float, g: float) -> int:
        """Pick the star with a posterior nearest to (BP − RP, G) on the CMD, as a click does; its position."""
        if not (np.isfinite(colour) and np.isfinite(g)):
            return int(self.star.value)
        c, m = self.colour[self.rows], self.g[self.rows]
        # distance in plot units: a magnitude in G spans about 4× the colour range on a CMD
        d = ((c - colour) * 4.0) ** 2 + (m - g) ** 2
        d = np.where(np.isfinite(d), d, np.inf)
        pos = int(np.argmin(d))
        self.star.value = pos
        return pos

    def _tapped(self, x=None, y=None):
        if x is not None and y is not None:
            self.select_at(float(x), float(y))

    def _changed(self, _change=None):
        self._stream.event(star=int(self.star.value), cluster_prior=bool(self.prior_box.value))
        self._update_readout()

    def _sample_weights(self, i: int, cluster_prior: bool) -> np.ndarray:
        n = self.post.samples.shape[1]
        if cluster_prior and self.weights is not None:
            return self.weights[i]
        return np.ones(n)

    def state(self) -> dict:
        s = super().state()
        i = int(self.rows[self.star.value])
        w = self._sample_weights(i, bool(self.prior_box.value))
        q = self.post.samples[i, :, _Q]
        total = float(w.sum())
        s.update(index=self.post.index[i], band_set=str(self.post.band_set[i]), n_valid=int((w > 0).sum()),
                 p_single=float(w[q == 0].sum() / total) if total > 0 else float("nan"))
        return s

    def _update_readout(self):
        s = self.state()
        self.readout.value = (f"star {s['index']} ({s['band_set']}): P(q = 0) = {s['p_single']:.2f}, "
                              f"{s['n_valid']} samples with weight")

    def _views(self, star: int, cluster_prior: bool):
        holo = hv()
        i = int(self.rows[star])
        m, q = self.post.samples[i, :, _M], self.post.samples[i, :, _Q]
        w = self._sample_weights(i, cluster_prior)
        keep = w > 0
        if keep.any():
            lo_m, hi_m = float(np.min(m[keep])), float(np.max(m[keep]))
            if hi_m <= lo_m:
                lo_m, hi_m = lo_m - 0.01, hi_m + 0.01
            h, xe, ye = np.histogram2d(m[keep], q[keep], bins=self.bins, range=[[lo_m, hi_m], [0.0, 1.0]],
                                       weights=w[keep])
        else:
            h, xe, ye = np.zeros((self.bins, self.bins)), np.linspace(0, 1, self.bins + 1), np.linspace(0, 1,
                                                                                                        self.bins + 1)
        img = holo.Image((0.5 * (xe[1:] + xe[:-1]), 0.5 * (ye[1:] + ye[:-1]), h.T), kdims=["M_A", "q"],
                         vdims=["weight"]).opts(cmap="Blues", xlabel="primary mass M_A [M☉]", ylabel="mass ratio q",
                                                title=f"star {self.post.index[i]}: M_A–q posterior", frame_width=320,
                                                frame_height=280, tools=["hover"])
        return img

    def _background(self):
        """The members and, with a cluster, the two sequences (drawn once; clicks land on it)."""
        holo = hv()
        ok = np.isfinite(self.g) & np.isfinite(self.colour)
        out = holo.Points((self.colour[ok], self.g[ok]), kdims=["BP − RP", "G"]).opts(
            color="#999999", size=3, alpha=0.6, invert_yaxis=True, frame_width=300, frame_height=280,
            xlabel="BP − RP [mag]", ylabel="G [mag]", title="members (click one)", tools=["tap"])
        if self.sequences is not None:
            sq = self.sequences
            out = out * holo.Curve((sq["colour"], sq["G"]), "BP − RP", "G", label="single stars").opts(
                color="#1f77b4", line_width=1.5) * holo.Curve(
                (sq["colour"], sq["G"] - EQUAL_MASS_OFFSET), "BP − RP", "G", label="equal-mass binaries").opts(
                color="#ff7f0e", line_width=1.5, line_dash="dashed")
            out = out.opts(legend_position="top_right")
        return out

    def _marker(self, star: int, cluster_prior: bool):
        holo = hv()
        i = int(self.rows[star])
        return holo.Points(([self.colour[i]], [self.g[i]]), kdims=["BP − RP", "G"]).opts(
            color="#d62728", size=12, marker="star")

    def plot(self):
        holo = hv()
        background = self._background()
        self.tap = holo.streams.Tap(source=background, x=None, y=None)  # a click on the CMD
        self.tap.add_subscriber(self._tapped)
        cmd = background * holo.DynamicMap(self._marker, streams=[self._stream])
        post = holo.DynamicMap(self._views, streams=[self._stream])
        return (cmd + post).opts(shared_axes=False)

    def controls(self):
        w = widgets()
        return w.VBox([w.HBox([self.star, self.prior_box]), self.readout])


class BinaryFractionPanel(Panel):
    """Binary fraction of the main-sequence members against primary mass (M25 Sect. 5).

    Parameters
    ----------
    stars : DataFrame
        ``ClusterFit.stars`` of a fitted cluster (``q_mode``, ``mass_a_mode`` [M☉], ``label``, ``G`` [mag]).
    q_thresh : float
        The q threshold shown first (e.g. :func:`ocnb.binaries.q_threshold`'s); the slider moves it.
    n_bins : int
        Equal-count primary-mass bins shown first.
    reference : mapping, optional
        ``{name: q threshold}`` drawn as marks on the slider's readout (e.g. the published ones).
    """

    def __init__(self, stars: pd.DataFrame, q_thresh: float = 0.2, n_bins: int = 5, reference=None):
        from .thresholds import G_MAX_MS, MS_LABEL, binary_fraction

        w = widgets()
        hv()
        missing = [c for c in ("q_mode", "mass_a_mode", "label", "G") if c not in stars.columns]
        if missing:
            raise PanelValueError(f"BinaryFractionPanel: stars lacks column(s) {missing}; pass ClusterFit.stars")
        ms = ((stars["label"].to_numpy() == MS_LABEL) & (stars["G"].to_numpy(float) <= G_MAX_MS)
              & np.isfinite(stars["mass_a_mode"].to_numpy(float)))
        if ms.sum() < 10:
            raise PanelValueError(f"BinaryFractionPanel: only {int(ms.sum())} main-sequence members with G ≤ "
                                  f"{G_MAX_MS:g} and a mass; at least 10 are needed")
        if not (isinstance(q_thresh, (int, float)) and 0 <= q_thresh <= 1):
            raise PanelValueError(f"q_thresh = {q_thresh!r}: a mass ratio in [0, 1] is needed")
        self.stars, self._fraction = stars, binary_fraction
        self._masses = np.sort(stars["mass_a_mode"].to_numpy(float)[ms])
        self.reference = dict(reference or {})
        self.q = w.FloatSlider(value=float(q_thresh), min=0.0, max=1.0, step=0.01, description="q threshold",
                               continuous_update=False, readout_format=".2f")
        self.bins = w.IntSlider(value=int(np.clip(n_bins, 1, 12)), min=1, max=12, description="mass bins",
                                continuous_update=False)
        self._control("q_thresh", self.q)
        self._control("n_bins", self.bins)
        self.readout = w.HTML()
        self._stream = hv().streams.Stream.define("BinaryFraction", q_thresh=float(self.q.value),
                                                  n_bins=int(self.bins.value))()
        self.q.observe(self._changed, names="value")
        self.bins.observe(self._changed, names="value")
        self._update_readout()

    def edges(self, n_bins: int) -> np.ndarray:
        """Equal-count bin edges in M_A [M☉] over the counted main-sequence stars."""
        e = np.quantile(self._masses, np.linspace(0, 1, int(n_bins) + 1))
        e[-1] = np.nextafter(e[-1], np.inf)  # the heaviest star belongs to the last bin
        return np.unique(e)

    def table(self, q_thresh: float | None = None, n_bins: int | None = None) -> pd.DataFrame:
        """:func:`ocnb.binaries.binary_fraction` per mass bin at the panel's (or the given) settings."""
        q = float(self.q.value if q_thresh is None else q_thresh)
        n = int(self.bins.value if n_bins is None else n_bins)
        return self._fraction(self.stars, q, mass_bins=self.edges(n))

    def state(self) -> dict:
        s = super().state()
        total = self._fraction(self.stars, float(self.q.value)).iloc[0]
        s.update(n_ms=int(total["n_ms"]), n_binary=int(total["n_binary"]), f_b=float(total["f_b"]))
        return s

    def _changed(self, _change=None):
        self._stream.event(q_thresh=float(self.q.value), n_bins=int(self.bins.value))
        self._update_readout()

    def _update_readout(self):
        s = self.state()
        ref = "; ".join(f"{k}: {v:.3f}" for k, v in self.reference.items())
        self.readout.value = (f"{s['n_binary']} binaries among {s['n_ms']} main-sequence stars with G ≤ 19: "
                              f"f_b = {s['f_b']:.3f}" + (f" (published thresholds: {ref})" if ref else ""))

    def _view(self, q_thresh: float, n_bins: int):
        from .simulate import binary_fraction_law

        holo = hv()
        t = self.table(q_thresh, n_bins)
        mid = 0.5 * (t["mass_lo"] + t["mass_hi"]).to_numpy(float)
        pts = holo.ErrorBars((mid, t["f_b"], t["f_b_sigma"]), "M_A", ["f_b", "err"]).opts(color="#1f77b4")
        dots = holo.Scatter((mid, t["f_b"]), "M_A", "f_b", label=f"members, q ≥ {q_thresh:.2f}").opts(
            color="#1f77b4", size=8)
        m = np.linspace(self._masses[0], self._masses[-1], 100)
        law = holo.Curve((m, binary_fraction_law(m)), "M_A", "f_b", label="f_b(M_A), M25 eq. 8 (all q)").opts(
            color="#7f7f7f", line_dash="dashed")
        return (pts * dots * law).opts(frame_width=420, frame_height=260, ylim=(0, 1), legend_position="top_left",
                                       xlabel="primary mass M_A [M☉]", ylabel="binary fraction",
                                       title="binary fraction of the main sequence")

    def plot(self):
        return hv().DynamicMap(self._view, streams=[self._stream])

    def controls(self):
        w = widgets()
        return w.VBox([w.HBox([self.q, self.bins]), self.readout])


class ClusterFitPanel(Panel):
    """Scrub through the iterations of the cluster fit (M25 Sect. 3.5, Fig. 3): the isochrone of each iteration
    on the members' CMD, beside the convergence of log age, distance and A_V with the iteration marked.

    Parameters
    ----------
    fit : ClusterFit
        From :func:`ocnb.binaries.fit_cluster`.
    members : DataFrame
        The fitted members (``G``, ``BP``, ``RP`` [mag]; real tables are converted by
        :func:`ocnb.binaries.observables`).
    iteration : int, optional
        Row of ``fit.history`` shown first (default: the last).
    """

    _LABELS = (("log_age", "log age [yr]"), ("distance", "distance [pc]"), ("a_v", "A_V [mag]"))

    def __init__(self, fit, members: pd.DataFrame, iteration: int | None = None):
        from .posterior import observables

        w = widgets()
        hv()
        h = getattr(fit, "history", None)
        if h is None or len(h) == 0:
            raise PanelValueError("ClusterFitPanel: the fit has no iterations (history is empty)")
        obs = observables(members)
        if len(obs) != len(fit.stars):
            raise PanelValueError(f"ClusterFitPanel: the fit has {len(fit.stars)} stars but members has {len(obs)}; "
                                  "pass the table that was fitted")
        self.fit, self.history = fit, h.reset_index(drop=True)
        self.g = obs["G"].to_numpy(float)
        self.colour = (obs["BP"] - obs["RP"]).to_numpy(float)
        last = len(self.history) - 1
        start = last if iteration is None else iteration
        if not isinstance(start, (int, np.integer)) or not 0 <= start <= last:
            raise PanelValueError(f"iteration = {iteration!r}: choose 0 … {last}")
        self.iteration = w.IntSlider(value=int(start), min=0, max=last, description="iteration",
                                     continuous_update=False, layout=w.Layout(width="420px"))
        self._control("iteration", self.iteration)
        self.readout = w.HTML()
        self._stream = hv().streams.Stream.define("FitIteration", iteration=int(start))()
        self.iteration.observe(self._changed, names="value")
        self._update_readout()

    def row(self, i: int | None = None) -> dict:
        """The cluster parameters at history row ``i`` (default: the slider's)."""
        r = self.history.iloc[int(self.iteration.value if i is None else i)]
        return {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}

    def state(self) -> dict:
        s = super().state()
        r = self.row()
        s.update(round=int(r["round"]), step=int(r["iteration"]), log_age=float(r["log_age"]),
                 distance=float(r["distance"]), a_v=float(r["a_v"]))
        return s

    def _changed(self, _change=None):
        self._stream.event(iteration=int(self.iteration.value))
        self._update_readout()

    def _update_readout(self):
        s = self.state()
        self.readout.value = (f"round {s['round']}, iteration {s['step']}: log age {s['log_age']:.3f}, "
                              f"distance {s['distance']:.1f} pc, A_V {s['a_v']:.3f} mag")

    def _cmd(self, iteration: int):
        from ..isochrones import default_grid

        holo = hv()
        r = self.row(iteration)
        grid = default_grid()
        dm = 5 * np.log10(r["distance"]) - 5
        iso = grid.isochrone(float(np.clip(r["log_age"], *grid.age_range)),
                             float(np.clip(self.fit.params["feh"], *grid.mh_range))).apparent(
            float(dm), max(float(r["a_v"]), 0.0)).data
        ok = np.isfinite(self.g) & np.isfinite(self.colour)
        pts = holo.Points((self.colour[ok], self.g[ok]), kdims=["BP − RP", "G"]).opts(
            color="#999999", size=3, alpha=0.6, invert_yaxis=True, frame_width=300, frame_height=300,
            xlabel="BP − RP [mag]", ylabel="G [mag]", title=f"round {r['round']}, iteration {r['iteration']}")
        curve = holo.Curve(((iso["BP"] - iso["RP"]).to_numpy(float), iso["G"].to_numpy(float)), "BP − RP", "G").opts(
            color="#d62728", line_width=1.5)
        return pts * curve

    def _track(self, k: str, label: str, iteration: int):
        holo = hv()
        h = self.history
        step = np.arange(len(h))
        m, s = h[k].to_numpy(float), h[f"{k}_sigma"].to_numpy(float)
        band = holo.Area((step, m - s, m + s), "step", [label, "hi"]).opts(alpha=0.25, color="#1f77b4", line_width=0)
        line = holo.Curve((step, m), "step", label).opts(color="#1f77b4")
        mark = holo.VLine(iteration).opts(color="#d62728", line_width=1)
        return (band * line * mark).opts(frame_width=300, frame_height=80, xlabel="", ylabel=label)

    def plot(self):
        holo = hv()
        cmd = holo.DynamicMap(self._cmd, streams=[self._stream])
        tracks = [holo.DynamicMap(lambda iteration, k=k, label=label: self._track(k, label, iteration),
                                  streams=[self._stream]) for k, label in self._LABELS]
        return holo.Layout([cmd, *tracks]).cols(2).opts(shared_axes=False)

    def controls(self):
        w = widgets()
        return w.VBox([self.iteration, self.readout])
