"""Notebook 02's linked views of a scored cone (van Groeningen et al. 2023, Sect. 2.3 and Fig. 1).

``MembershipPanel``     sky (tangent plane), proper motion, parallax vs G and CMD of one cone, the candidates
                        coloured by membership probability, linked by a box/lasso selection
                        (``hv.link_selections``), a probability-threshold slider that updates the member counts
                        (and precision/recall/F1 when the frame has a ``truth`` column), and the candidate
                        boundaries of eqs. 1–3 drawn as in the paper's Fig. 1
``membership_counts``   the counts and scores behind the slider (plain pandas, no plotting)
``pm_boundary``, ``parallax_band``, ``isochrone_boundary``, ``tangent_plane``
                        the geometry drawn (plain NumPy), testable on their own

Like every ocnb panel (:class:`ocnb.panels.Panel`) the state lives in ipywidgets: ``state()``,
``set(p_min=...)`` (values checked with the base's ``check_widget_value``), ``plot()`` and ``controls()``;
the plots follow through holoviews streams, so everything is testable without a browser. holoviews, bokeh,
ipywidgets and datashader are imported when a panel is built, not when this module is imported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..panels.base import Panel, PanelValueError, hv, require, widgets
from ..panels.tour import padded_range

__all__ = [
    "COLOURS",
    "MembershipPanel",
    "isochrone_boundary",
    "membership_counts",
    "parallax_band",
    "pm_boundary",
    "tangent_plane",
]

#: CMD colours the panel can draw: column -> (label, blue-band column, red-band column). The candidate
#: selection (eq. 3) uses C = G − G_RP, so the isochrone and its boundary are drawn for ``g_rp`` only.
COLOURS = {
    "g_rp": ("G − G_RP", "phot_g_mean_mag", "phot_rp_mean_mag"),
    "bp_rp": ("BP − RP", "phot_bp_mean_mag", "phot_rp_mean_mag"),
}
#: columns a frame must have (``MembershipResult.to_frame()`` has them all)
REQUIRED = ("ra", "dec", "pmra", "pmdec", "phot_g_mean_mag", "p_member")
#: threshold keys of ``CandidateSelection.thresholds`` the boundaries need (spec A6)
THRESHOLD_KEYS = ("delta_mu", "delta_plx_plus", "delta_plx_minus", "delta_c", "delta_g")
#: the paper's k in eqs. 1–3 (a source's errors count three times)
K_SIGMA = 3.0
_BOUNDARY_RED = "#d62728"
_ISOCHRONE_BLUE = "#1f77b4"


# ---------------------------------------------------------------------------
# geometry (NumPy only)
# ---------------------------------------------------------------------------
def tangent_plane(ra, dec, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    """Orthographic tangent-plane offsets (ξ east, η north) [deg] of (ra, dec) [deg] about (ra0, dec0) [deg].

    ξ = cos δ sin(α − α0), η = cos δ0 sin δ − sin δ0 cos δ cos(α − α0) (radians, shown in degrees): the
    projection of vG23 Sect. 3.1 (spec A7), so a cluster at distance D has ``D·hypot(ξ, η)·π/180 = f_r``.
    """
    a, d = np.radians(np.asarray(ra, dtype=float)), np.radians(np.asarray(dec, dtype=float))
    a0, d0 = math.radians(float(ra0)), math.radians(float(dec0))
    xi = np.cos(d) * np.sin(a - a0)
    eta = math.cos(d0) * np.sin(d) - math.sin(d0) * np.cos(d) * np.cos(a - a0)
    return np.degrees(xi), np.degrees(eta)


def pm_boundary(pmra_c: float, pmdec_c: float, delta_mu: float, sigma_pmra: float = 0.0,
                sigma_pmdec: float = 0.0, n: int = 181) -> np.ndarray:
    """The proper-motion boundary of eq. 1 as a closed (n, 2) path [mas/yr].

    The ellipse centred on the cluster mean (μα*,c, μδ,c) with semi-axes Δ_μ + 3σ_μα* and Δ_μ + 3σ_μδ: a
    source with those errors is a candidate inside it. ``sigma_* = 0`` gives the zero-uncertainty boundary of
    the paper's Fig. 1 (a circle of radius Δ_μ, eq. 4).
    """
    t = np.linspace(0.0, 2.0 * np.pi, int(n))
    ax, ay = float(delta_mu) + K_SIGMA * float(sigma_pmra), float(delta_mu) + K_SIGMA * float(sigma_pmdec)
    return np.column_stack([float(pmra_c) + ax * np.cos(t), float(pmdec_c) + ay * np.sin(t)])


def parallax_band(parallax_c: float, delta_plus: float, delta_minus: float,
                  sigma_parallax: float = 0.0) -> tuple[float, float]:
    """(low, high) parallax limits [mas] of eq. 2 for a source with error ``sigma_parallax`` [mas].

    Below the cluster (ϖ < ϖ_c, farther away) the margin is Δ⁺, above it Δ⁻ (eq. 7); ``high`` is +inf where
    Δ⁻ is infinite (the cluster's near side reaches the Sun, spec A6). ``sigma_parallax = 0`` gives the
    zero-uncertainty band of Fig. 1.
    """
    s = K_SIGMA * float(sigma_parallax)
    return float(parallax_c) - (float(delta_plus) + s), float(parallax_c) + (float(delta_minus) + s)


def isochrone_boundary(isochrone, delta_c: float, delta_g: float, n: int = 400) -> list[np.ndarray]:
    """The CMD boundary of eq. 3 around an isochrone: closed (k, 2) paths [C, G] [mag].

    The boundary of the union of the ellipses with semi-axes ``delta_c`` (colour) and ``delta_g`` (G)
    around every isochrone point, i.e. the level 1 of min_i sqrt(((C − C_i)/a)² + ((G − G_i)/b)²),
    traced on an ``n`` × ``n`` grid (nearest point by a KD-tree, contour by contourpy). With the
    thresholds' Δ_C, Δ_G it is the zero-uncertainty boundary of Fig. 1; add 3σ_C, 3σ_G for a source
    with errors σ_C, σ_G.

    Parameters
    ----------
    isochrone : array_like, shape (m, 2)
        ``CandidateSelection.isochrone``: [C = G − G_RP, G] apparent magnitudes (densified, spec A5).
    delta_c, delta_g : float
        Semi-axes [mag], > 0.
    """
    from scipy.spatial import cKDTree

    iso = np.asarray(isochrone, dtype=float)
    if iso.ndim != 2 or iso.shape[1] != 2 or not len(iso):
        raise PanelValueError(f"isochrone must be an (n, 2) array of [C, G] [mag], got shape {iso.shape}")
    iso = iso[np.isfinite(iso).all(axis=1)]
    a, b = float(delta_c), float(delta_g)
    if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)):
        raise PanelValueError(f"delta_c = {delta_c!r}, delta_g = {delta_g!r} [mag]: need finite values > 0")
    if not len(iso):
        return []
    require("contourpy")
    import contourpy

    pad = 1.5
    cs = np.linspace(iso[:, 0].min() - pad * a, iso[:, 0].max() + pad * a, int(n))
    gs = np.linspace(iso[:, 1].min() - pad * b, iso[:, 1].max() + pad * b, int(n))
    cc, gg = np.meshgrid(cs, gs)
    tree = cKDTree(np.column_stack([iso[:, 0] / a, iso[:, 1] / b]))
    dist, _ = tree.query(np.column_stack([cc.ravel() / a, gg.ravel() / b]))
    lines = contourpy.contour_generator(cs, gs, dist.reshape(cc.shape), line_type="Separate").lines(1.0)
    return [np.asarray(line, dtype=float) for line in lines if len(line) > 1]


def _isochrone_paths(isochrone, delta_c: float, delta_g: float) -> list[np.ndarray]:
    """The isochrone cut into drawable pieces: a new piece where consecutive points jump by more than one
    ellipse (the densified main sequence and the appended late phases are not joined, spec A5)."""
    iso = np.asarray(isochrone, dtype=float)
    iso = iso[np.isfinite(iso).all(axis=1)]
    if len(iso) < 2:
        return []
    step = np.hypot(np.diff(iso[:, 0]) / delta_c, np.diff(iso[:, 1]) / delta_g)
    cuts = np.flatnonzero(step > 1.0) + 1
    return [p for p in np.split(iso, cuts) if len(p) > 1]


# ---------------------------------------------------------------------------
# counts and scores
# ---------------------------------------------------------------------------
def _member_mask(frame: pd.DataFrame, p_min: float) -> np.ndarray:
    p = frame["p_member"].to_numpy(dtype=float)
    cand = frame["is_candidate"].to_numpy(dtype=bool) if "is_candidate" in frame else p > 0
    # A non-candidate (p = 0 by construction, spec A11) is never a member, not even at p_min = 0.
    return cand & (p >= p_min)


def _truth(frame: pd.DataFrame, column: str = "truth") -> np.ndarray | None:
    """The truth column as booleans, or None when the frame has none (or only missing values)."""
    if column not in frame:
        return None
    t = frame[column]
    if t.isna().all():
        return None
    if t.isna().any():
        raise PanelValueError(f"column {column!r} has {int(t.isna().sum())} missing value(s); "
                              f"need True/False for every star (or no {column!r} column)")
    values = set(pd.unique(t.to_numpy()))
    if not values <= {True, False}:  # 0 and 1 compare equal to them
        shown = sorted(map(repr, values))[:5]
        raise PanelValueError(f"column {column!r} must hold True/False (published member or not), got {shown}")
    return t.to_numpy().astype(bool)


def membership_counts(frame: pd.DataFrame, p_min: float = 0.5, *, g_max: float | None = None,
                      truth: str = "truth") -> dict:
    """Counts of a scored cone at threshold ``p_min``, and scores against a truth column when there is one.

    A member is a candidate with ``p_member >= p_min`` (vG23 Sect. 3.4; issue 15 scores at P ≥ 0.5, G < 18).

    Parameters
    ----------
    frame : DataFrame
        ``MembershipResult.to_frame()``: ``p_member`` (0 for non-candidates), ``is_candidate`` (optional;
        default ``p_member > 0``), ``is_train_member`` (optional), ``phot_g_mean_mag`` [mag] (for ``g_max``),
        ``truth`` (optional, bool: published member).
    p_min : float
        Threshold in [0, 1].
    g_max : float, optional
        Score only stars with G < ``g_max`` [mag] (the counts of members always cover every star).

    Returns
    -------
    dict
        ``p_min, n_stars, n_candidates, n_train_members, n_members``; with truth also ``n_true, tp, fp, fn,
        precision, recall, f1`` (NaN where a ratio is 0/0) and ``g_max``.
    """
    p_min = float(p_min)
    if not 0.0 <= p_min <= 1.0:
        raise PanelValueError(f"p_min = {p_min:g} is outside [0, 1]")
    member = _member_mask(frame, p_min)
    cand = frame["is_candidate"].to_numpy(dtype=bool) if "is_candidate" in frame else \
        frame["p_member"].to_numpy(dtype=float) > 0
    out = {"p_min": p_min, "n_stars": len(frame), "n_candidates": int(cand.sum()),
           "n_train_members": int(frame["is_train_member"].to_numpy(dtype=bool).sum())
           if "is_train_member" in frame else 0,
           "n_members": int(member.sum())}
    t = _truth(frame, truth)
    if t is not None:
        scored = np.ones(len(frame), bool) if g_max is None else \
            frame["phot_g_mean_mag"].to_numpy(dtype=float) < float(g_max)
        tp = int((member & t & scored).sum())
        fp = int((member & ~t & scored).sum())
        fn = int((~member & t & scored).sum())
        precision = tp / (tp + fp) if tp + fp else float("nan")
        recall = tp / (tp + fn) if tp + fn else float("nan")
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
        out.update(n_true=int((t & scored).sum()), tp=tp, fp=fp, fn=fn, precision=precision, recall=recall,
                   f1=f1, g_max=None if g_max is None else float(g_max))
    return out


# ---------------------------------------------------------------------------
# the panel
# ---------------------------------------------------------------------------
def _field(obj, name: str):
    """``obj.name`` or ``obj[name]`` (params may be a ClusterParams or a dict)."""
    if isinstance(obj, Mapping):
        return obj[name]
    return getattr(obj, name)


class MembershipPanel(Panel):
    """Linked views of a scored cone coloured by membership probability, with the candidate boundaries.

    Four views as in vG23's Fig. 1: sky (tangent-plane offsets about the cluster centre, top left),
    parallax vs G (top right), proper motion (bottom left), CMD G vs G − G_RP or BP − RP (bottom right).
    Candidates are points coloured by ``p_member`` (viridis, 0–1, colour bar; hover: source_id, G, p);
    those at or above the threshold (members) are ringed in black. The field (non-candidates) is
    grey: rasterised with datashader when there are many (``datashade``), points otherwise. A box or
    lasso selection in any view selects the same candidates in all four (``hv.link_selections``; the
    count of selected candidates and members is in the readout and in ``state()``). Red dashed lines: the
    zero-uncertainty boundaries of eqs. 1–3 (Δ_μ circle, Δ⁺/Δ⁻ parallax band, the isochrone's Δ_C/Δ_G
    envelope, as in Fig. 1); red dotted: the same for a star with the candidates' median errors
    (semi-axes Δ + 3σ); blue: the cluster isochrone. Grey dashed circle on the sky: R_90.

    Parameters
    ----------
    frame : DataFrame
        ``MembershipResult.to_frame()`` or any frame with ``ra, dec`` [deg], ``pmra, pmdec`` [mas/yr],
        ``phot_g_mean_mag`` [mag], ``p_member`` in [0, 1]; optional ``parallax_corrected`` (else
        ``parallax``) [mas], ``phot_bp_mean_mag, phot_rp_mean_mag, g_rp`` [mag], ``is_candidate``,
        ``is_train_member``, ``truth`` (bool), ``source_id``, errors ``pmra_error, pmdec_error,
        parallax_error, sigma_g, sigma_g_rp`` (for the median-error boundaries).
    selection : CandidateSelection, optional
        Its ``thresholds`` (``delta_mu, delta_plx_plus, delta_plx_minus, delta_c, delta_g``, optional
        ``R90_pc``) and ``isochrone`` ((n, 2) [C, G]) give the boundaries; needs ``params``.
    params : ClusterParams or dict, optional
        Cluster means ``ra, dec, pmra, pmdec, parallax`` (and ``dist_pc`` for R_90); centre of the sky view.
    p_min : float
        Starting threshold (slider, 0–1).
    colour : {"g_rp", "bp_rp"}
        CMD colour. The isochrone boundary is drawn for ``g_rp`` (the colour of eq. 3) only.
    datashade : bool, optional
        Rasterise the field stars; default: when there are more than ``datashade_min``.
    g_max : float, optional
        Score against ``truth`` only for G < ``g_max`` [mag] (issue 15: 18).
    title : str, optional
        Shown above the readout (default: ``params.name`` when there is one).

    ``set()`` keys: ``p_min``.
    """

    def __init__(self, frame: pd.DataFrame, selection=None, params=None, *, p_min: float = 0.5,
                 colour: str = "g_rp", datashade: bool | None = None, datashade_min: int = 5000,
                 g_max: float | None = None, title: str | None = None, frame_width: int = 340,
                 frame_height: int = 280):
        w = widgets()
        holo = hv()
        self.colour = self._check_colour(colour)
        if isinstance(p_min, bool) or not isinstance(p_min, (int, float, np.integer, np.floating)) \
                or not 0.0 <= float(p_min) <= 1.0:
            raise PanelValueError(f"p_min = {p_min!r}: need a probability threshold in [0, 1]")
        self.data = self._prepare(frame, params)
        self.selection = selection
        self.params = params
        self.g_max = None if g_max is None else float(g_max)
        self.frame_width, self.frame_height = int(frame_width), int(frame_height)
        self.boundaries = self._boundaries(selection, params)
        self.is_field = ~self._candidates()
        n_field = int(self.is_field.sum())
        self.datashade = bool(n_field > int(datashade_min)) if datashade is None else bool(datashade)
        if self.datashade:
            require("datashader")
        if title is None and params is not None:
            try:
                title = str(_field(params, "name"))
            except (AttributeError, KeyError):
                title = None
        self.title = title or ""
        self.threshold = w.FloatSlider(value=float(p_min), min=0.0, max=1.0, step=0.01,
                                       description="p_min", readout_format=".2f", continuous_update=False,
                                       style={"description_width": "70px"}, layout=w.Layout(width="380px"),
                                       tooltip="membership-probability threshold")
        self._control("p_min", self.threshold)
        self.readout = w.HTML()
        self.clear_button = w.Button(description="clear selection", disabled=True,
                                     tooltip="forget the box/lasso selection (all stars again)")
        self.clear_button.on_click(lambda _b: self.clear_selection())
        # No region boxes: drawing them refreshes every layer of every view a second time per selection (twice
        # the latency); the selected stars themselves show the selection.
        self.link = holo.link_selections.instance(unselected_alpha=0.15, show_regions=False)
        self._stream = holo.streams.Stream.define("Threshold", p_min=float(self.threshold.value))()
        self.threshold.observe(self._on_threshold, names="value")
        self.link.param.watch(lambda _ev: self._on_selection(), "selection_expr")
        self._update_readout()

    @classmethod
    def from_result(cls, result, **kw) -> MembershipPanel:
        """The panel of a :class:`~ocnb.membership.MembershipResult` (its frame, selection and params)."""
        prepared = getattr(result, "prepared", None)
        selection = getattr(prepared, "selection", None)
        params = getattr(prepared, "params", None)
        if "title" not in kw and prepared is not None and getattr(prepared, "name", None):
            kw["title"] = str(prepared.name)
        return cls(result.to_frame(), selection, params, **kw)

    # -- inputs ---------------------------------------------------------------------
    @staticmethod
    def _check_colour(colour: str) -> str:
        if colour not in COLOURS:
            raise PanelValueError(f"colour = {colour!r} is not a CMD colour this panel draws; use one of "
                                  f"{list(COLOURS)}")
        return colour

    def _prepare(self, frame, params) -> pd.DataFrame:
        """The plotted frame: required columns checked, sky offsets, colour and a string source_id added."""
        if not isinstance(frame, pd.DataFrame):
            raise PanelValueError(f"MembershipPanel needs a DataFrame (MembershipResult.to_frame()), "
                                  f"got {type(frame).__name__}")
        missing = [c for c in REQUIRED if c not in frame]
        plx = "parallax_corrected" if "parallax_corrected" in frame else "parallax"
        if plx not in frame:
            missing.append("parallax_corrected (or parallax)")
        _, blue, red = COLOURS[self.colour]
        if self.colour not in frame and not (blue in frame and red in frame):
            missing.append(f"{self.colour} (or {blue} and {red})")
        if missing:
            raise PanelValueError(f"MembershipPanel: the frame has no column(s) {missing}; use "
                                  f"MembershipResult.to_frame() (columns: {list(frame.columns)[:12]}...)")
        if not len(frame):
            raise PanelValueError("MembershipPanel: the frame has no stars (empty cone)")
        p = frame["p_member"].to_numpy(dtype=float)
        bad = ~np.isfinite(p) | (p < 0) | (p > 1)
        if bad.any():
            raise PanelValueError(f"column 'p_member' must be a probability in [0, 1]: {int(bad.sum())} value(s) "
                                  f"outside, e.g. {p[bad][0]!r}")
        _truth(frame)  # a bad truth column is reported now, not at the first slider move
        df = frame.reset_index(drop=True).copy()
        df["parallax_shown"] = df[plx].to_numpy(dtype=float)
        self.parallax_column = plx
        if self.colour not in df:
            df[self.colour] = df[blue].to_numpy(dtype=float) - df[red].to_numpy(dtype=float)
        if params is not None:
            try:
                ra0, dec0 = float(_field(params, "ra")), float(_field(params, "dec"))
            except (AttributeError, KeyError) as exc:
                raise PanelValueError(f"params has no cluster centre {exc}: need ra, dec, pmra, pmdec, parallax "
                                      "(a ClusterParams or a dict)") from None
        else:  # no cluster parameters: centre on the candidates (on every star if there are none)
            cand = df["is_candidate"].to_numpy(bool) if "is_candidate" in df else p > 0
            ref = df[cand] if cand.any() else df
            ra0, dec0 = _circular_mean_deg(ref["ra"].to_numpy(float)), float(np.median(ref["dec"]))
        self.centre = (ra0, dec0)
        df["xi"], df["eta"] = tangent_plane(df["ra"], df["dec"], ra0, dec0)
        ids = df["source_id"] if "source_id" in df else pd.Series(np.arange(len(df)), index=df.index)
        # Gaia ids exceed 2**53: as numbers BokehJS would round them in the hover
        df["source"] = ids.astype(str).to_numpy(dtype=object)
        return df

    def _candidates(self) -> np.ndarray:
        d = self.data
        return d["is_candidate"].to_numpy(bool) if "is_candidate" in d else d["p_member"].to_numpy(float) > 0

    def _boundaries(self, selection, params) -> dict:
        """Geometry of the boundaries: ``pm``, ``plx``, ``cmd``, ``isochrone``, ``sky`` (lists of (k, 2) paths,
        zero-uncertainty first) and the scalars used (``delta_*``, medians of the candidates' errors)."""
        out: dict = {"pm": [], "pm_err": [], "plx": [], "plx_err": [], "cmd": [], "cmd_err": [],
                     "isochrone": [], "sky": []}
        if selection is None:
            return out
        if params is None:
            raise PanelValueError("MembershipPanel: a selection's boundaries need the cluster means too: "
                                  "pass params= (result.prepared.params)")
        th = getattr(selection, "thresholds", None)
        if not isinstance(th, Mapping):
            raise PanelValueError("selection must be a CandidateSelection (with a thresholds dict), "
                                  f"got {type(selection).__name__}")
        missing = [k for k in THRESHOLD_KEYS if k not in th]
        if missing:
            raise PanelValueError(f"selection.thresholds has no {missing} (spec A6 keys: {list(THRESHOLD_KEYS)})")
        try:
            pmra_c, pmdec_c, plx_c = (float(_field(params, k)) for k in ("pmra", "pmdec", "parallax"))
        except (AttributeError, KeyError) as exc:
            raise PanelValueError(f"params has no cluster mean {exc}: need pmra, pmdec, parallax, ra, dec") from None
        d = self.data
        cand = self._candidates()
        med = {c: _finite_median(d.loc[cand, c]) if c in d else None
               for c in ("pmra_error", "pmdec_error", "parallax_error", "sigma_g", "sigma_g_rp")}
        out.update({k: float(th[k]) for k in THRESHOLD_KEYS}, median_errors=med)
        out["pm"] = [pm_boundary(pmra_c, pmdec_c, th["delta_mu"])]
        if med["pmra_error"] is not None and med["pmdec_error"] is not None:
            out["pm_err"] = [pm_boundary(pmra_c, pmdec_c, th["delta_mu"], med["pmra_error"], med["pmdec_error"])]
        g = d["phot_g_mean_mag"].to_numpy(float)
        g_lo, g_hi = float(np.nanmin(g)), float(np.nanmax(g))

        def band(sigma):
            lo, hi = parallax_band(plx_c, th["delta_plx_plus"], th["delta_plx_minus"], sigma)
            return [np.array([[g_lo, v], [g_hi, v]]) for v in (lo, hi) if math.isfinite(v)]

        out["plx"] = band(0.0)
        if med["parallax_error"] is not None:
            out["plx_err"] = band(med["parallax_error"])
        iso = getattr(selection, "isochrone", None)
        if self.colour == "g_rp" and iso is not None and len(iso):
            out["isochrone"] = _isochrone_paths(iso, th["delta_c"], th["delta_g"])
            out["cmd"] = isochrone_boundary(iso, th["delta_c"], th["delta_g"])
            if med["sigma_g"] is not None and med["sigma_g_rp"] is not None:
                out["cmd_err"] = isochrone_boundary(iso, th["delta_c"] + K_SIGMA * med["sigma_g_rp"],
                                                    th["delta_g"] + K_SIGMA * med["sigma_g"])
        r90 = th.get("R90_pc")
        try:
            dist = float(_field(params, "dist_pc"))
        except (AttributeError, KeyError):
            dist = float("nan")
        if r90 is not None and math.isfinite(float(r90)) and math.isfinite(dist) and dist > 0:
            r_deg = math.degrees(float(r90) / dist)
            t = np.linspace(0, 2 * np.pi, 121)
            out["sky"] = [np.column_stack([r_deg * np.cos(t), r_deg * np.sin(t)])]
            out["r90_deg"] = r_deg
        return out

    # -- state ----------------------------------------------------------------------
    def counts(self, p_min: float | None = None) -> dict:
        """:func:`membership_counts` at ``p_min`` (default: the slider's)."""
        p = float(self.threshold.value) if p_min is None else p_min
        return membership_counts(self.data, p, g_max=self.g_max)

    def selected(self) -> np.ndarray:
        """Boolean mask over :attr:`data` rows: the candidates in the linked selection (every candidate when
        nothing is selected). Field stars are never selected: they are drawn, not linked."""
        cand = self._candidates()
        expr = self.link.selection_expr
        if expr is None:
            return cand
        holo = hv()
        mask = expr.apply(holo.Dataset(self.data, kdims=list(self.data.columns)), compute=True)
        return cand & np.asarray(mask, dtype=bool)

    def state(self) -> dict:
        """``p_min`` plus the counts of :func:`membership_counts` (``n_members`` ..., scores with truth),
        ``n_selected``/``n_selected_members`` (candidates/members in the linked selection; every candidate when
        there is none) and ``datashade``."""
        st = super().state()
        st["p_min"] = float(st["p_min"])
        st.update({k: v for k, v in self.counts().items() if k != "p_min"})
        sel = self.selected()
        st.update(n_selected=int(sel.sum()), n_selected_members=int((sel & self._members()).sum()),
                  datashade=self.datashade)
        return st

    def _members(self, p_min: float | None = None) -> np.ndarray:
        return _member_mask(self.data, float(self.threshold.value) if p_min is None else p_min)

    def select(self, expr) -> None:
        """Select the candidates where the holoviews expression ``expr`` holds (``hv.dim("pmra") > 18`` ...) in
        every view, as a box or lasso selection does; None clears it."""
        self.link.selection_expr = expr

    def clear_selection(self) -> None:
        """Forget the linked selection (as bokeh's reset tool does): every candidate is selected again."""
        self.select(None)

    def _on_selection(self) -> None:
        self.clear_button.disabled = self.link.selection_expr is None
        self._update_readout()

    def _on_threshold(self, change) -> None:
        self._update_readout()
        self._stream.event(p_min=float(change["new"]))

    def _update_readout(self) -> None:
        c = self.counts()
        sel = self.selected()
        head = f"<b>{self.title}</b>: " if self.title else ""
        text = (f"{head}<b>{c['n_members']}</b> members with p ≥ {c['p_min']:.2f} of {c['n_candidates']} "
                f"candidates ({c['n_stars']} stars; {c['n_train_members']} training members)")
        if "f1" in c:
            cut = f", G < {c['g_max']:g}" if c["g_max"] is not None else ""
            text += (f"<br>against the truth ({c['n_true']} members{cut}): precision {c['precision']:.3f}, "
                     f"recall {c['recall']:.3f}, <b>F1 {c['f1']:.3f}</b>")
        if self.link.selection_expr is not None:
            text += (f"<br>selected: {int(sel.sum())} candidates, {int((sel & self._members()).sum())} of them members "
                     f"(box or lasso select in any view; the button or the reset tool clears it)")
        self.readout.value = text

    # -- views ----------------------------------------------------------------------
    def _dims(self) -> dict:
        holo = hv()
        label = COLOURS[self.colour][0]
        plx_label = "ϖ (zero-point corrected)" if self.parallax_column == "parallax_corrected" else "ϖ"
        return {
            "xi": holo.Dimension("xi", label="ξ (east)", unit="deg"),
            "eta": holo.Dimension("eta", label="η (north)", unit="deg"),
            "pmra": holo.Dimension("pmra", label="μα*", unit="mas/yr"),
            "pmdec": holo.Dimension("pmdec", label="μδ", unit="mas/yr"),
            "parallax_shown": holo.Dimension("parallax_shown", label=plx_label, unit="mas"),
            "phot_g_mean_mag": holo.Dimension("phot_g_mean_mag", label="G", unit="mag"),
            self.colour: holo.Dimension(self.colour, label=label, unit="mag"),
            "p_member": holo.Dimension("p_member", label="p", range=(0.0, 1.0)),
            "source": holo.Dimension("source", label="source_id"),
        }

    def _views(self) -> dict:
        """The four views, in the order of Fig. 1 (2 columns): name -> (x column, y column, title)."""
        sky = f"{self.title}: sky (tangent plane)" if self.title else "Sky (tangent plane about the cluster centre)"
        return {
            "sky": ("xi", "eta", sky),
            "parallax": ("phot_g_mean_mag", "parallax_shown", "Parallax vs G (eq. 2)"),
            "pm": ("pmra", "pmdec", "Proper motion (eq. 1)"),
            "cmd": (self.colour, "phot_g_mean_mag", f"CMD: G vs {COLOURS[self.colour][0]} (eq. 3)"),
        }

    def _vdims(self, kx: str, ky: str) -> list:
        # every linked column is a dimension of every view, so that a selection made in one view (an expression
        # on its axes) can be evaluated on the others' data
        dims = self._dims()
        return [dims[c] for c in ("xi", "eta", "pmra", "pmdec", "parallax_shown", "phot_g_mean_mag", self.colour,
                                  "p_member", "source") if c not in (kx, ky)]

    def candidates_frame(self) -> pd.DataFrame:
        """The candidates as drawn: sorted by p (the most probable on top)."""
        return self.data[~self.is_field].sort_values("p_member", kind="stable")

    def members_frame(self, p_min: float | None = None) -> pd.DataFrame:
        """The members at ``p_min`` (default: the slider's): the stars ringed in every view."""
        p = float(self.threshold.value) if p_min is None else float(p_min)
        return self.data[_member_mask(self.data, p)]

    def _candidate_points(self, kx: str, ky: str, colorbar: bool):
        holo = hv()
        dims = self._dims()
        return holo.Points(self.candidates_frame(), [dims[kx], dims[ky]], self._vdims(kx, ky),
                           label="candidates").opts(
            color="p_member", cmap="viridis", clim=(0.0, 1.0), colorbar=colorbar, clabel="membership probability p",
            size=5, line_color=None, tools=["hover"], hover_tooltips=[("source_id", "@source"),
                                                                       ("G", "@phot_g_mean_mag{0.00}"),
                                                                       ("p", "@p_member{0.00}")])

    def _member_rings(self, kx: str, ky: str, p_min: float):
        holo = hv()
        dims = self._dims()
        df = self.members_frame(p_min)[[kx, ky]]
        return holo.Points(df, [dims[kx], dims[ky]], label="members (p ≥ p_min)").opts(
            size=9, fill_alpha=0.0, line_color="black", line_width=1.0, line_alpha=0.8)

    def _field_layer(self, kx: str, ky: str):
        holo = hv()
        dims = self._dims()
        field = self.data[self.is_field]
        pts = holo.Points(field[[kx, ky]], [dims[kx], dims[ky]], label="field")
        if not self.datashade:
            return pts.opts(color="#9a9a9a", size=2, alpha=0.5)
        import datashader as ds
        from holoviews.operation.datashader import rasterize

        # Coarse pixels (2 screen pixels each) keep a sparse field visible without dynspread, whose JIT
        # compilation costs seconds (as in ocnb.cmd_ann's t-SNE explorer).
        return rasterize(pts, aggregator=ds.count(), pixel_ratio=0.5).opts(
            cmap=["#e3e3e3", "#8f8f8f"], cnorm="eq_hist", colorbar=False)

    def _boundary_layers(self, view: str) -> list:
        holo = hv()
        dims = self._dims()
        b = self.boundaries
        kx, ky, _ = self._views()[view]
        xd, yd = dims[kx], dims[ky]

        def path(data, label, **style):
            return holo.Path(data, kdims=[xd, yd], label=label).opts(show_legend=True, **style)

        zero = dict(color=_BOUNDARY_RED, line_dash="dashed", line_width=1.5)
        err = dict(color=_BOUNDARY_RED, line_dash="dotted", line_width=1.2)
        if view == "sky":
            return [path(b["sky"], "R_90", color="#555555", line_dash="dashed", line_width=1.2)] if b["sky"] else []
        key = {"pm": "pm", "parallax": "plx", "cmd": "cmd"}[view]
        layers = []
        if view == "cmd" and b["isochrone"]:
            layers.append(path(b["isochrone"], "isochrone", color=_ISOCHRONE_BLUE, line_width=2))
        if b[key]:
            layers.append(path(b[key], "zero-uncertainty boundary", **zero))
        if b[f"{key}_err"]:
            layers.append(path(b[f"{key}_err"], "boundary, median errors", **err))
        return layers

    def axis_ranges(self, view: str) -> dict:
        """``{"x": (lo, hi), "y": (lo, hi)}`` of a view: every star, padded (boundaries that reach farther out than
        the stars are cut by the frame: the stars decide what is shown). The proper-motion view and the parallax
        axis frame the candidates (padded by their own span on each side) when there are any: a field's
        high-proper-motion and nearby stars would otherwise shrink the cluster to a dot; zoom out for the field."""
        kx, ky, _ = self._views()[view]
        cand = ~self.is_field
        ranges = {"x": padded_range(self.data[kx]), "y": padded_range(self.data[ky])}
        if cand.sum() >= 2:
            if view == "pm":
                ranges = {"x": padded_range(self.data.loc[cand, kx], pad=1.0),
                          "y": padded_range(self.data.loc[cand, ky], pad=1.0)}
            elif view == "parallax":
                ranges["y"] = padded_range(self.data.loc[cand, ky], pad=1.0)
        return ranges

    def plot(self):
        """holoviews Layout (2 × 2, as vG23 Fig. 1) of the linked views; the candidates follow the slider."""
        if hasattr(self, "_layout"):
            return self._layout
        holo = hv()
        views = self._views()
        # Only the candidates are linked (colour bar on the right-hand views only, so that the four frames keep
        # the same size). The field and the rings that follow the slider are drawn under/over the linked layer:
        # every linked layer is refreshed in every view at each selection, and linking the field as well made
        # a box selection 3x and its clearing 2.5x slower (0.9 s vs 3.0 s, 2.9 s vs 7.4 s for 3,300 stars, plain
        # Python on one free core).
        bases = [self._candidate_points(kx, ky, name in ("parallax", "cmd")) for name, (kx, ky, _) in views.items()]
        linked = list(self.link(holo.Layout(bases)))
        panes = []
        for (name, (kx, ky, title)), cand in zip(views.items(), linked, strict=True):
            rng = self.axis_ranges(name)
            # one legend, in the CMD's top right (bright and red: few stars there), for the four views
            opts = dict(title=title, frame_width=self.frame_width, frame_height=self.frame_height, show_grid=True,
                        xlim=rng["x"], ylim=rng["y"], show_legend=name == "cmd", legend_position="top_right",
                        legend_opts={"background_fill_alpha": 0.7})
            if name == "sky":
                opts["invert_xaxis"] = True  # east to the left, as on the sky
            if name == "cmd":
                opts["invert_yaxis"] = True
            rings = holo.DynamicMap(lambda p_min, kx=kx, ky=ky: self._member_rings(kx, ky, p_min),
                                    streams=[self._stream])
            pane = self._field_layer(kx, ky) * cand * rings
            for layer in self._boundary_layers(name):
                pane = pane * layer
            panes.append(pane.opts(**opts))
        self._layout = holo.Layout(panes).cols(2).opts(shared_axes=False)
        return self._layout

    def controls(self):
        w = widgets()
        return w.VBox([w.HBox([self.threshold, self.clear_button]), self.readout])


def _finite_median(values) -> float | None:
    """Median of the finite values (None when there is none: no boundary for typical errors then)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else None


def _circular_mean_deg(ra) -> float:
    """Mean of angles [deg] in [0, 360) that works across RA = 0 (spec A3's wrap)."""
    r = np.radians(np.asarray(ra, dtype=float))
    return float(np.degrees(np.arctan2(np.sin(r).mean(), np.cos(r).mean())) % 360.0)
