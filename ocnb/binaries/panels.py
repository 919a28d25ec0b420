"""Notebook 03's star explorer (Malhotra et al. 2025, Fig. 2): pick a member, see its M_A–q posterior.

``StarPosteriorPanel``   the members' CMD with the chosen star marked, beside that star's joint posterior
                         of the primary mass M_A and the mass ratio q (a weighted 2-D histogram), with or
                         without the cluster prior (and q-prior) weights; a slider picks the star among those
                         with a posterior.

Like every ocnb panel (:class:`ocnb.panels.Panel`) the state lives in ipywidgets (``state()``, ``set(...)``,
``plot()``, ``controls()``) and the plots follow through a holoviews stream, so it is testable without a
browser. holoviews, bokeh and ipywidgets are imported when a panel is built.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..panels.base import Panel, PanelValueError, hv, widgets
from .simulate import THETA_NAMES

__all__ = ["StarPosteriorPanel"]

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
    """

    def __init__(self, posteriors, members: pd.DataFrame, weights=None, star: int = 0, bins: int = 40):
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
        self._update_readout()

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

    def _cmd(self, star: int, cluster_prior: bool):
        holo = hv()
        i = int(self.rows[star])
        ok = np.isfinite(self.g) & np.isfinite(self.colour)
        pts = holo.Points((self.colour[ok], self.g[ok]), kdims=["BP − RP", "G"]).opts(
            color="#999999", size=3, alpha=0.6, invert_yaxis=True, frame_width=300, frame_height=280,
            xlabel="BP − RP [mag]", ylabel="G [mag]", title="members")
        me = holo.Points(([self.colour[i]], [self.g[i]]), kdims=["BP − RP", "G"]).opts(
            color="#d62728", size=10, marker="star")
        return pts * me

    def plot(self):
        holo = hv()
        cmd = holo.DynamicMap(self._cmd, streams=[self._stream])
        post = holo.DynamicMap(self._views, streams=[self._stream])
        return (cmd + post).opts(shared_axes=False)

    def controls(self):
        w = widgets()
        return w.VBox([w.HBox([self.star, self.prior_box]), self.readout])
