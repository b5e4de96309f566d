"""EER and minDCF of the official ``tuneThreshold.py``, digit for digit.

These are the numbers the MR-RawNet paper reports
(``tuneThresholdfromScore`` and ``ComputeMinDcf``), computed with sorts
and cumulative sums (O(N log N) time, O(N) memory).

Official EER
    scikit-learn's ROC curve (``roc_curve`` with its default
    ``drop_intermediate=True``: points in the middle of straight ROC
    segments are removed) over "accept when ``score >= t``" for every
    distinct score, plus the "accept nothing" point; the point that
    minimises ``|FNR - FPR|`` (the first, from the strict end) is chosen
    and the EER is ``max(FPR, FNR)`` there (the SpeechBrain EER of
    :mod:`~speechbrain_ext.scoring.speechbrain_metrics` is the mean of the
    two, at a slightly different set of points).

Official minDCF
    The trials are sorted by score (ties keep their order in the trial
    list), and every prefix of the sorted list is a "rejected" set:
    ``C_det = C_miss * P_miss * P_target + C_fa * P_fa * (1 - P_target)``
    is minimised over the prefixes and divided by
    ``min(C_miss * P_target, C_fa * (1 - P_target))``. With tied scores a
    prefix may split a tie, so the value can depend on the order of the
    trials; without ties it equals the SpeechBrain minDCF.

Authors
 * MR-RawNet recipe contributors
"""

import numpy as np

from speechbrain_ext.scoring.operating_points import (
    _check_costs,
    _check_trials,
    operating_points,
)

__all__ = [
    "compute_official_eer",
    "compute_official_min_dcf",
]


def _official_eer_from_points(ops):
    """Official (``tuneThresholdfromScore``) EER from operating points.

    Arguments
    ---------
    ops : OperatingPoints
        Output of :func:`operating_points`.

    Returns
    -------
    tuple of float
        ``(eer, threshold)``; the trial is accepted when
        ``score >= threshold`` (``inf``: nothing is accepted).
    """
    # "accept score >= t_k" is "accept score > t_(k-1)": the ROC points
    # for the distinct scores in descending order, ending with "accept
    # everything" (t_(-1) below the lowest score: no miss, every false
    # alarm).
    tps = (ops.n_target - np.r_[0, ops.n_miss[:-1]])[::-1].astype(np.float64)
    fps = np.r_[ops.n_nontarget, ops.n_fa[:-1]][::-1].astype(np.float64)
    thresholds = ops.thresholds[::-1]
    if fps.size > 2:
        # scikit-learn's drop_intermediate: keep the corners only.
        corner = np.logical_or(np.diff(fps, 2), np.diff(tps, 2))
        keep = np.flatnonzero(np.r_[True, corner, True])
        tps, fps, thresholds = tps[keep], fps[keep], thresholds[keep]
    tps = np.r_[0.0, tps]
    fps = np.r_[0.0, fps]
    thresholds = np.r_[np.inf, thresholds]
    fpr = fps / fps[-1]
    fnr = 1 - tps / tps[-1]
    i = int(np.nanargmin(np.absolute(fnr - fpr)))
    return float(max(fpr[i], fnr[i])), float(thresholds[i])


def compute_official_eer(positive_scores, negative_scores):
    """EER as the official ``tuneThreshold.tuneThresholdfromScore``.

    ``max(FPR, FNR)`` at the point of scikit-learn's ROC curve where the
    two are closest (see the module docstring), as a fraction: the
    official function returns it in percent. The order of the trials
    does not matter.

    Arguments
    ---------
    positive_scores : array-like
        Scores of target trials (non-empty, finite).
    negative_scores : array-like
        Scores of non-target trials (non-empty, finite).

    Returns
    -------
    eer : float
        The equal error rate, in [0, 1].
    threshold : float
        Trials with ``score >= threshold`` are accepted at that point.

    Example
    -------
    >>> from speechbrain_ext.scoring.speechbrain_metrics import compute_eer
    >>> compute_official_eer([0.9, 0.3], [0.5, 0.1])
    (0.5, 0.5)
    >>> compute_eer([0.9, 0.3], [0.5, 0.1])[0]  # SpeechBrain: the mean
    0.5
    >>> compute_official_eer([0.9, 0.8, 0.3], [0.5, 0.1])[0]
    0.5
    >>> round(compute_eer([0.9, 0.8, 0.3], [0.5, 0.1])[0], 4)
    0.4167
    """
    return _official_eer_from_points(
        operating_points(positive_scores, negative_scores)
    )


def _official_min_dcf_sorted(sorted_labels, p_target, c_miss, c_fa):
    """Official ``ComputeMinDcf`` on labels sorted by ascending score.

    Arguments
    ---------
    sorted_labels : numpy.ndarray
        Boolean labels in the official sort order (stable by score).
    p_target : float
        Prior probability of a target trial.
    c_miss : float
        Cost of a miss.
    c_fa : float
        Cost of a false alarm.

    Returns
    -------
    tuple
        ``(normalised_min_dcf, index)``: the index in the sorted order of
        the last rejected trial at the minimum.
    """
    norm = _check_costs(p_target, c_miss, c_fa)
    cum_pos = np.cumsum(sorted_labels)
    n_pos = int(cum_pos[-1])
    n_neg = sorted_labels.size - n_pos
    cum_neg = np.arange(1, sorted_labels.size + 1) - cum_pos
    # The same float operations, in the same order, as the official loop.
    fnrs = cum_pos / float(n_pos)
    fprs = 1 - cum_neg / float(n_neg)
    c_det = c_miss * fnrs * p_target + c_fa * fprs * (1 - p_target)
    i = int(np.argmin(c_det))
    return float(c_det[i] / norm), i


def _official_order(labels, scores):
    """The official sort (stable by score) of validated trials.

    A fast unstable sort, then the runs of tied scores are put back in
    trial order (ties are few with real scores): the same order as a
    stable sort, at about a third of its cost.
    """
    order = np.argsort(scores)
    sorted_scores = scores[order]
    tied = np.flatnonzero(sorted_scores[1:] == sorted_scores[:-1])
    if tied.size:
        members = np.unique(np.r_[tied, tied + 1])
        # run id: the position of the run's first element
        starts = np.r_[True, sorted_scores[members[1:]]
                       != sorted_scores[members[:-1]]]
        starts |= np.r_[True, np.diff(members) > 1]
        run = np.maximum.accumulate(np.where(starts, members, 0))
        order[members] = order[members][np.lexsort((order[members], run))]
    return sorted_scores, labels[order]


def compute_official_min_dcf(labels, scores, p_target=0.05, c_miss=1.0,
                             c_fa=1.0):
    """minDCF as the official ``ComputeErrorRates`` + ``ComputeMinDcf``.

    The trials must come in trial-list order: tied scores keep it (see the
    module docstring).

    Arguments
    ---------
    labels : array-like
        1 for target trials, 0 for non-target trials.
    scores : array-like
        One score per trial, in the same order.
    p_target : float
        Prior probability of a target trial (the official runs: 0.05).
    c_miss : float
        Cost of a miss.
    c_fa : float
        Cost of a false alarm.

    Returns
    -------
    min_dcf : float
        The normalised minDCF.
    threshold : float
        The score of the last rejected trial at the minimum.

    Example
    -------
    >>> compute_official_min_dcf([1, 1, 0, 0], [0.6, 0.5, 0.4, 0.1])
    (0.0, 0.4)
    >>> dcf, _ = compute_official_min_dcf([0, 1], [0.5, 0.5], p_target=0.5)
    >>> dcf  # the tie is split in trial order
    0.0
    >>> compute_official_min_dcf([1, 0], [0.5, 0.5], p_target=0.5)[0]
    1.0
    """
    labels, scores = _check_trials(labels, scores)
    sorted_scores, sorted_labels = _official_order(labels, scores)
    dcf, i = _official_min_dcf_sorted(sorted_labels, p_target, c_miss, c_fa)
    return dcf, float(sorted_scores[i])
