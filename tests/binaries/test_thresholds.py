"""q thresholds, binary fractions and classification rates (ocnb.binaries.thresholds; spec B7).

Inputs are hand-made q modes with known answers (TEST FIXTURES), not pipeline output.
"""

import numpy as np
import pandas as pd
import pytest

from ocnb.binaries import binary_fraction, classification_rates, q_threshold


def test_threshold_separates_a_clean_case_and_is_floored():
    # singles have q_mode 0, binaries with q_true > 0.2 have q_mode near q_true; low-q binaries look single
    q_true = np.array([0, 0, 0, 0, 0.15, 0.3, 0.5, 0.7, 0.9])
    q_mode = np.array([0, 0, 0, 0.1, 0, 0.32, 0.48, 0.72, 0.88])
    r = q_threshold(q_mode, q_true)
    assert r.n_positive == 4 and r.n_negative == 5
    assert r.cut == pytest.approx(0.32)  # the lowest positive score: every positive in, no negative
    assert r.threshold == pytest.approx(0.32)
    assert (r.tpr, r.fpr) == (1.0, 0.0)
    # a cut below the floor is raised to 0.2
    r = q_threshold(np.array([0, 0, 0.12, 0.15, 0.5]), np.array([0, 0, 0.5, 0.6, 0.7]))
    assert r.cut == pytest.approx(0.12) and r.threshold == 0.2


def test_threshold_of_noisy_scores_maximises_youden_j():
    rng = np.random.default_rng(1)
    q_true = np.where(rng.uniform(size=4000) < 0.5, rng.uniform(0.1, 1, 4000), 0.0)
    q_mode = np.where(q_true > 0.4, q_true + rng.normal(0, 0.05, 4000), np.abs(rng.normal(0, 0.15, 4000)))
    r = q_threshold(q_mode, q_true)
    j = r.roc["tpr"] - r.roc["fpr"]
    assert j.max() == pytest.approx(r.tpr - r.fpr, abs=0.02)
    assert 0.2 <= r.threshold < 0.6
    # brute force over a grid never beats the chosen cut
    pos = q_true > 0.2
    grid = np.linspace(0, 1, 201)
    best = max((q_mode[pos] >= c).mean() - (q_mode[~pos] >= c).mean() for c in grid)
    assert (r.roc["tpr"] - r.roc["fpr"]).max() >= best - 1e-12


def test_threshold_uses_only_main_sequence_stars_brighter_than_19():
    q_true = np.array([0, 0, 0.5, 0.6, 0.0])
    q_mode = np.array([0, 0, 0.5, 0.6, 0.9])  # the last one is a giant / faint star with a spurious q
    g = np.array([15, 16, 17, 18, 19.5])
    label = np.array([1, 1, 1, 1, 1])
    r = q_threshold(q_mode, q_true, g=g, label=label)
    assert r.n_negative == 2 and (r.tpr, r.fpr) == (1.0, 0.0)
    r = q_threshold(q_mode, q_true, g=np.full(5, 15.0), label=np.array([1, 1, 1, 1, 3]))
    assert r.n_negative == 2


def stars_frame():
    """TEST FIXTURE: six MS members, one giant, one faint star."""
    return pd.DataFrame({"q_mode": [0.0, 0.3, 0.6, 0.8, 0.0, 0.25, 0.9, 0.9],
                         "mass_a_mode": [0.5, 0.6, 0.9, 1.1, 1.2, 0.3, 1.3, 0.6],
                         "label": [1, 1, 1, 1, 1, 1, 3, 1], "G": [14, 15, 15, 16, 17, 18.5, 12, 19.5]})


def test_binary_fraction_counts_ms_stars_and_the_mass_dependent_limit():
    st = stars_frame()
    f = binary_fraction(st, 0.28)
    # MS & G ≤ 19: rows 0-5 → binaries: 0.3, 0.6, 0.8 (0.25 < 0.28 and < 0.1/0.3)
    assert f.loc[0, "n_ms"] == 6 and f.loc[0, "n_binary"] == 3
    assert f.loc[0, "f_b"] == pytest.approx(0.5) and f.loc[0, "f_b_sigma"] == pytest.approx(np.sqrt(3) / 6)
    f = binary_fraction(st, 0.2)  # row 5: q 0.25 < 0.1/0.3 = 0.333: still single
    assert f.loc[0, "n_binary"] == 3
    by_mass = binary_fraction(st, 0.28, mass_bins=[0.0, 0.7, 2.0])
    assert by_mass["n_ms"].tolist() == [3, 3] and by_mass["n_binary"].tolist() == [1, 2]


def test_classification_rates_eq_d1():
    r = classification_rates(q_mode=[0.0, 0.5, 0.6, 0.0, 0.4], mass_a=[1, 1, 1, 1, 1],
                             q_true=[0.0, 0.5, 0.0, 0.7, 0.45], q_thresh=0.3)
    # predicted binaries: rows 1, 2, 4; true: rows 1, 3, 4 → one false binary of 3, one false single of 3
    assert r["f_fb"] == pytest.approx(1 / 3) and r["f_fs"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("call, error, match", [
    (lambda: q_threshold([0, 0.5], [0, 0.5, 0.6]), ValueError, "one length"),
    (lambda: q_threshold([0, 0.1], [0, 0.1]), ValueError, "true binaries with q > 0.2"),
    (lambda: q_threshold([0.5, 0.6], [0.5, 0.6]), ValueError, "got 2 and 0"),
    (lambda: binary_fraction(stars_frame(), 1.5), ValueError, "q_thresh must be a mass ratio"),
    (lambda: binary_fraction(stars_frame(), float("nan")), ValueError, "q_thresh must be"),
    (lambda: binary_fraction(stars_frame().drop(columns="G"), 0.3), KeyError, "column 'G'"),
    (lambda: binary_fraction(stars_frame(), 0.3, mass_bins=[1.0, 0.5]), ValueError, "increasing edges"),
])
def test_bad_input_table(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_roc_plots_share_an_axis_in_two_colours():
    import matplotlib.pyplot as plt

    q_true = np.array([0, 0, 0, 0.3, 0.5, 0.7])
    a = q_threshold(np.array([0, 0.1, 0, 0.3, 0.5, 0.7]), q_true, name="IR")
    b = q_threshold(np.array([0, 0.4, 0, 0, 0.5, 0.7]), q_true, name="Gaia")
    ax = a.plot()
    b.plot(ax=ax)
    curves = [line for line in ax.get_lines() if line.get_label() in ("IR", "Gaia")]
    assert len(curves) == 2 and curves[0].get_color() != curves[1].get_color()
    assert len(a.to_frame()) == len(a.roc) >= 3
    plt.close(ax.figure)
