"""Tests for the sort-based EER and minDCF in speechbrain_ext.scoring."""

from fractions import Fraction

import numpy as np
import pytest
import torch

from speechbrain_ext.scoring.metrics import compute_metrics
from speechbrain_ext.scoring.operating_points import operating_points
from speechbrain_ext.scoring.speechbrain_metrics import (
    compute_eer,
    compute_min_dcf,
)

sb_metrics = pytest.importorskip("speechbrain.utils.metric_stats")


def _score_sets():
    """Small random score sets: continuous, integer-valued (ties), skewed."""
    rng = np.random.default_rng(20240611)
    sets = []
    for i in range(12):
        n_pos = int(rng.integers(1, 60))
        n_neg = int(rng.integers(1, 200))
        pos = rng.normal(1.0, 1.0, n_pos)
        neg = rng.normal(0.0, 1.2, n_neg)
        if i % 3 == 1:  # heavy ties, shared between the classes
            pos, neg = np.round(2 * pos), np.round(2 * neg)
        sets.append((pos, neg))
    return sets


SCORE_SETS = _score_sets()


def _rates(pos, neg, t):
    """Brute-force miss / false-alarm rates at threshold t (accept > t)."""
    return np.mean(pos <= t), np.mean(neg > t)


def _brute_force(pos, neg, p_target):
    """Threshold sweep over every score and midpoint, by direct counting.

    Returns the smallest |P_fa - P_miss| (exact fraction), the set of EER
    values at the thresholds reaching it, and the normalised minDCF.
    """
    values = np.unique(np.concatenate([pos, neg]))
    grid = np.concatenate([values, (values[1:] + values[:-1]) / 2])
    gaps, eers, costs = [], [], []
    for t in grid:
        n_miss, n_fa = int(np.sum(pos <= t)), int(np.sum(neg > t))
        p_miss = Fraction(n_miss, len(pos))
        p_fa = Fraction(n_fa, len(neg))
        gaps.append(abs(p_fa - p_miss))
        eers.append(float((p_fa + p_miss) / 2))
        costs.append(p_target * float(p_miss) + (1 - p_target) * float(p_fa))
    best_gap = min(gaps)
    best_eers = {e for g, e in zip(gaps, eers, strict=True) if g == best_gap}
    min_dcf = min(costs) / min(p_target, 1 - p_target)
    return best_gap, best_eers, min_dcf


@pytest.mark.parametrize("idx", range(len(SCORE_SETS)))
def test_eer_matches_speechbrain(idx):
    pos, neg = SCORE_SETS[idx]
    sb_eer, _ = sb_metrics.EER(torch.tensor(pos), torch.tensor(neg))
    eer, _ = compute_eer(pos, neg)
    assert eer == pytest.approx(sb_eer, abs=1e-6)


@pytest.mark.parametrize("p_target", [0.01, 0.05])
@pytest.mark.parametrize("idx", range(len(SCORE_SETS)))
def test_min_dcf_matches_speechbrain(idx, p_target):
    pos, neg = SCORE_SETS[idx]
    sb_dcf, _ = sb_metrics.minDCF(
        torch.tensor(pos), torch.tensor(neg), p_target=p_target
    )
    dcf, _ = compute_min_dcf(pos, neg, p_target=p_target)
    assert dcf == pytest.approx(sb_dcf / p_target, abs=1e-6)


def test_min_dcf_matches_speechbrain_with_costs():
    pos, neg = SCORE_SETS[0]
    sb_dcf, _ = sb_metrics.minDCF(
        torch.tensor(pos), torch.tensor(neg), c_miss=10, c_fa=1, p_target=0.2
    )
    dcf, _ = compute_min_dcf(pos, neg, p_target=0.2, c_miss=10, c_fa=1)
    assert dcf == pytest.approx(sb_dcf / min(10 * 0.2, 0.8), abs=1e-6)


@pytest.mark.parametrize("idx", range(len(SCORE_SETS)))
def test_against_brute_force_sweep(idx):
    pos, neg = SCORE_SETS[idx]
    best_gap, best_eers, min_dcf = _brute_force(pos, neg, 0.01)
    eer, thr = compute_eer(pos, neg)
    # The EER comes from an operating point with the smallest gap ...
    assert any(eer == pytest.approx(e, abs=1e-12) for e in best_eers)
    # ... and the returned threshold really produces it.
    p_miss, p_fa = _rates(pos, neg, thr)
    assert (p_miss + p_fa) / 2 == pytest.approx(eer, abs=1e-12)
    assert abs(Fraction(p_fa) - Fraction(p_miss)) == pytest.approx(
        float(best_gap), abs=1e-12
    )
    dcf, dcf_thr = compute_min_dcf(pos, neg, p_target=0.01)
    assert dcf == pytest.approx(min_dcf, abs=1e-12)
    p_miss, p_fa = _rates(pos, neg, dcf_thr)
    assert (0.01 * p_miss + 0.99 * p_fa) / 0.01 == pytest.approx(dcf)


def test_ties_move_together():
    # Threshold 0: miss 0/3, fa 1/2 (the two 1s pass) -> gap 1/2.
    # Threshold 1: all three 1s are rejected together: miss 2/3, fa 0 ->
    # gap 2/3. Threshold 2: miss 1, fa 0. EER = (1/2 + 0) / 2 at t = 0.
    eer, thr = compute_eer([1, 1, 2], [1, 0])
    assert (eer, thr) == (0.25, 0.0)
    ops = operating_points([1, 1, 2], [1, 0])
    assert ops.thresholds.tolist() == [0.0, 1.0, 2.0]
    assert ops.n_miss.tolist() == [0, 2, 3]
    assert ops.n_fa.tolist() == [1, 0, 0]


def test_exact_gap_tie_follows_speechbrain_float32_rule():
    # P=2, N=3. At t=0: P_fa=2/3, P_miss=1/2 (gap +1/6, EER 7/12); at t=1:
    # P_fa=1/3, P_miss=1/2 (gap -1/6, EER 5/12). In float32, 2/3 and 1/3
    # both round up, so the second gap is the smaller one and SpeechBrain
    # reports 5/12.
    pos, neg = np.array([0.0, 3.0]), np.array([0.0, 1.0, 2.0])
    eer, thr = compute_eer(pos, neg)
    assert eer == pytest.approx(5 / 12, abs=1e-12)
    assert thr == 1.0
    sb_eer, _ = sb_metrics.EER(torch.tensor(pos), torch.tensor(neg))
    assert eer == pytest.approx(sb_eer, abs=1e-6)


def test_perfect_separation():
    pos, neg = [0.6, 0.7, 0.8, 0.5], [0.4, 0.3, 0.2, 0.1]
    assert compute_eer(pos, neg) == (0.0, 0.4)
    assert compute_min_dcf(pos, neg) == (0.0, 0.4)
    assert compute_min_dcf(pos, neg, p_target=0.05)[0] == 0.0


def test_inverted_scores():
    # Every target below every non-target: at t=1 both rates are 1.
    assert compute_eer([0.0, 1.0], [2.0, 3.0]) == (1.0, 1.0)
    # No threshold beats rejecting everything: normalised minDCF is 1.
    assert compute_min_dcf([0.0, 1.0], [2.0, 3.0])[0] == pytest.approx(1.0)


def test_invariant_to_order_and_monotone_transform():
    rng = np.random.default_rng(5)
    pos, neg = rng.normal(1, 1, 3000), rng.normal(0, 1, 7000)
    eer, thr = compute_eer(pos, neg)
    dcf, _ = compute_min_dcf(pos, neg, p_target=0.05)
    eer2, thr2 = compute_eer(np.exp(rng.permutation(pos)), np.exp(neg[::-1]))
    dcf2, _ = compute_min_dcf(np.exp(pos), np.exp(neg), p_target=0.05)
    assert eer2 == eer and dcf2 == dcf
    assert thr2 == pytest.approx(np.exp(thr))


def test_compute_metrics_combines_both():
    pos, neg = SCORE_SETS[2]
    labels = np.r_[np.ones(len(pos), int), np.zeros(len(neg), int)]
    scores = np.r_[pos, neg]
    perm = np.random.default_rng(0).permutation(len(scores))
    m = compute_metrics(labels[perm], scores[perm], rule="speechbrain")
    assert (m.eer, m.eer_threshold) == compute_eer(pos, neg)
    for p in (0.01, 0.05):
        assert (m.min_dcf[p], m.min_dcf_threshold[p]) == compute_min_dcf(
            pos, neg, p_target=p
        )
    assert (m.n_target, m.n_nontarget) == (len(pos), len(neg))
    assert m.as_dict()["min_dcf@0.05"] == m.min_dcf[0.05]
    m_bool = compute_metrics(
        torch.tensor(labels == 1), torch.tensor(scores), rule="speechbrain"
    )
    assert m_bool.eer == m.eer


@pytest.mark.parametrize(
    "pos, neg, match",
    [
        ([], [0.1], "positive.*empty"),
        ([0.1], [], "negative.*empty"),
        ([0.1, np.nan], [0.2], "non-finite.*index 1"),
        ([0.1], [np.inf], "non-finite"),
        ([[0.1, "x"]], [0.2], "numeric"),
    ],
)
def test_bad_scores_raise(pos, neg, match):
    with pytest.raises(ValueError, match=match):
        compute_eer(pos, neg)
    with pytest.raises(ValueError, match=match):
        compute_min_dcf(pos, neg)


def test_bad_parameters_and_labels_raise():
    with pytest.raises(ValueError, match="p_target"):
        compute_min_dcf([1.0], [0.0], p_target=1.0)
    with pytest.raises(ValueError, match="c_miss"):
        compute_min_dcf([1.0], [0.0], c_miss=0)
    with pytest.raises(ValueError, match="all 3 trials are target"):
        compute_metrics([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="non-target"):
        compute_metrics([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="0 or 1.*index 1"):
        compute_metrics([1, 2, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="differ in length"):
        compute_metrics([1, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="empty"):
        compute_metrics([], [])
