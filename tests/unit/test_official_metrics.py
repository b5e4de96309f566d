"""EER and minDCF equal the official ``tuneThreshold.py``, ties included.

The official functions (``tuneThresholdfromScore``, ``ComputeErrorRates``,
``ComputeMinDcf``) are imported from the shared folder through
``tests/official_code.py`` and run on the same random score sets as ours;
the test skips when the folder or scikit-learn is absent.
"""

import numpy as np
import pytest
from official_code import official_module

from speechbrain_ext.scoring.metrics import compute_metrics
from speechbrain_ext.scoring.official_metrics import (
    compute_official_eer,
    compute_official_min_dcf,
)


def _trial_sets():
    """Random trial lists: continuous, heavily tied, tiny and skewed."""
    rng = np.random.default_rng(10)
    sets = []
    for i in range(60):
        n_pos = int(rng.integers(1, 80))
        n_neg = int(rng.integers(1, 300))
        if i % 10 == 0:
            n_pos, n_neg = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        labels = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
        scores = np.r_[rng.normal(1.0, 1.0, n_pos), rng.normal(0, 1.3, n_neg)]
        if i % 3 == 1:  # many ties, shared between the classes
            scores = np.round(2 * scores) / 2
        if i % 3 == 2:  # a few values only
            scores = rng.integers(0, 4, scores.size).astype(float)
        perm = rng.permutation(scores.size)
        sets.append((labels[perm], scores[perm]))
    return sets


TRIAL_SETS = _trial_sets()


@pytest.fixture(scope="module")
def official():
    return official_module("tuneThreshold")


@pytest.mark.parametrize("idx", range(len(TRIAL_SETS)))
def test_eer_equals_tune_threshold_from_score(official, idx):
    labels, scores = TRIAL_SETS[idx]
    _, eer_percent, _, _ = official.tuneThresholdfromScore(
        scores.tolist(), labels.tolist(), [1, 0.1]
    )
    eer, _ = compute_official_eer(scores[labels == 1], scores[labels == 0])
    assert abs(100 * eer - eer_percent) < 1e-9
    assert abs(100 * compute_metrics(labels, scores).eer - eer_percent) < 1e-9


@pytest.mark.parametrize("idx", range(len(TRIAL_SETS)))
@pytest.mark.parametrize("p_target", [0.05, 0.01])
def test_min_dcf_equals_compute_min_dcf(official, idx, p_target):
    labels, scores = TRIAL_SETS[idx]
    fnrs, fprs, thresholds = official.ComputeErrorRates(
        scores.tolist(), labels.tolist()
    )
    ref, ref_thr = official.ComputeMinDcf(fnrs, fprs, thresholds, p_target,
                                          1, 1)
    dcf, thr = compute_official_min_dcf(labels, scores, p_target=p_target)
    assert abs(dcf - ref) < 1e-9 and thr == ref_thr
    m = compute_metrics(labels, scores, p_targets=(p_target,))
    assert abs(m.min_dcf[p_target] - ref) < 1e-9


def test_tied_scores_make_the_definitions_differ(official):
    """The sets where official and SpeechBrain EER differ exist: the test
    above would fail on an EER that is the mean of FPR and FNR."""
    differ = 0
    for labels, scores in TRIAL_SETS:
        _, ref, _, _ = official.tuneThresholdfromScore(
            scores.tolist(), labels.tolist(), [1]
        )
        sb = compute_metrics(labels, scores, rule="speechbrain").eer
        differ += abs(100 * sb - ref) > 1e-6
    assert differ >= 10
