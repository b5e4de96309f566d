"""Score validation and the threshold sweep the EER and minDCF share.

:func:`operating_points` sweeps a decision threshold over every distinct
score with one sort and cumulative sums (O(N log N) time, O(N) memory) and
returns the miss and false-alarm counts there (:class:`OperatingPoints`).
The rule is "accept the trial as a target when ``score > t``": scores
equal to each other always move together across a threshold, so ties are
exact. For every distinct score value ``t`` (ascending)::

    P_miss(t) = #{target scores <= t} / N_target
    P_fa(t)   = #{non-target scores > t} / N_nontarget

The private helpers validate scores, labelled trials and detection costs
for :mod:`~speechbrain_ext.scoring.speechbrain_metrics`,
:mod:`~speechbrain_ext.scoring.official_metrics` and
:mod:`~speechbrain_ext.scoring.metrics`.

Authors
 * MR-RawNet recipe contributors
"""

from dataclasses import dataclass

import numpy as np

__all__ = [
    "OperatingPoints",
    "operating_points",
]


def _as_scores(scores, name):
    """Converts scores to a finite, non-empty 1-D float64 array.

    Arguments
    ---------
    scores : array-like or torch.Tensor
        The scores; any shape, flattened.
    name : str
        Name used in error messages.

    Returns
    -------
    numpy.ndarray
        The flattened float64 scores.
    """
    if hasattr(scores, "detach"):  # torch tensor, possibly on GPU
        scores = scores.detach().cpu().numpy()
    try:
        arr = np.asarray(scores, dtype=np.float64).ravel()
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numeric: {err}") from None
    if arr.size == 0:
        raise ValueError(
            f"{name} is empty: both target and non-target scores are needed"
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} has {int(bad.sum())} non-finite value(s); "
            f"the first is {arr[first]!r} at index {first}"
        )
    return arr


def _check_costs(p_target, c_miss, c_fa):
    """Validates the detection cost parameters.

    Arguments
    ---------
    p_target : float
        Prior probability of a target trial, in (0, 1).
    c_miss : float
        Cost of a miss, > 0.
    c_fa : float
        Cost of a false alarm, > 0.

    Returns
    -------
    float
        The normaliser ``min(c_miss * p_target, c_fa * (1 - p_target))``.
    """
    if not 0.0 < p_target < 1.0:
        raise ValueError(f"p_target must be in (0, 1), got {p_target!r}")
    if not (c_miss > 0 and c_fa > 0):
        raise ValueError(
            f"c_miss and c_fa must be > 0, got c_miss={c_miss!r}, "
            f"c_fa={c_fa!r}"
        )
    return min(c_miss * p_target, c_fa * (1.0 - p_target))


def _check_trials(labels, scores):
    """Validates labelled trials; returns boolean labels and float scores.

    Arguments
    ---------
    labels : array-like or torch.Tensor
        0/1 or boolean labels.
    scores : array-like or torch.Tensor
        One score per trial.

    Returns
    -------
    tuple of numpy.ndarray
        ``(labels, scores)``: boolean and float64, flattened.
    """
    scores = _as_scores(scores, "scores")
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels).ravel()
    if labels.shape != scores.shape:
        raise ValueError(
            f"labels and scores differ in length: {labels.size} labels, "
            f"{scores.size} scores"
        )
    if labels.dtype != bool:
        bad = (labels != 0) & (labels != 1)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"labels must be 0 or 1; found {labels[first]!r} at index "
                f"{first}"
            )
        labels = labels == 1
    n_target = int(labels.sum())
    if n_target in (0, labels.size):
        only = "target" if n_target else "non-target"
        raise ValueError(
            f"all {labels.size} trials are {only}: both classes are needed"
        )
    return labels, scores


@dataclass(frozen=True)
class OperatingPoints:
    """Error counts at every distinct score used as a threshold.

    Arguments
    ---------
    thresholds : numpy.ndarray
        Distinct score values, ascending (float64).
    n_miss : numpy.ndarray
        Number of target scores ``<= threshold`` (int64), non-decreasing.
    n_fa : numpy.ndarray
        Number of non-target scores ``> threshold`` (int64), non-increasing.
    n_target : int
        Number of target trials.
    n_nontarget : int
        Number of non-target trials.

    Example
    -------
    >>> ops = operating_points([0.9, 0.4], [0.4, 0.1])
    >>> ops.thresholds.tolist(), ops.n_miss.tolist(), ops.n_fa.tolist()
    ([0.1, 0.4, 0.9], [0, 1, 2], [1, 0, 0])
    >>> ops.p_miss.tolist()
    [0.0, 0.5, 1.0]
    """

    thresholds: np.ndarray
    n_miss: np.ndarray
    n_fa: np.ndarray
    n_target: int
    n_nontarget: int

    @property
    def p_miss(self):
        """Miss rate at each threshold (float64 array)."""
        return self.n_miss / self.n_target

    @property
    def p_fa(self):
        """False-alarm rate at each threshold (float64 array)."""
        return self.n_fa / self.n_nontarget


def operating_points(positive_scores, negative_scores):
    """Sweeps the threshold over all distinct scores.

    One stable sort of the two pre-sorted score sets (a linear merge) and a
    cumulative sum: O(N log N) time, O(N) memory.

    Arguments
    ---------
    positive_scores : array-like
        Scores of target trials.
    negative_scores : array-like
        Scores of non-target trials.

    Returns
    -------
    OperatingPoints
        Miss and false-alarm counts per distinct score value.

    Example
    -------
    >>> ops = operating_points([3, 3, 1], [3, 0])
    >>> ops.thresholds.tolist(), ops.n_miss.tolist(), ops.n_fa.tolist()
    ([0.0, 1.0, 3.0], [0, 1, 3], [1, 1, 0])
    """
    pos = np.sort(_as_scores(positive_scores, "positive (target) scores"))
    neg = np.sort(_as_scores(negative_scores, "negative (non-target) scores"))
    n_pos, n_neg = pos.size, neg.size
    merged = np.concatenate([pos, neg])
    del pos, neg
    # Two sorted runs: the stable sort is a linear merge.
    order = np.argsort(merged, kind="stable")
    merged = merged[order]
    cum_pos = np.cumsum(order < n_pos)
    del order
    # The last index of every run of equal scores.
    last = np.empty(merged.size, dtype=bool)
    np.not_equal(merged[1:], merged[:-1], out=last[:-1])
    last[-1] = True
    idx = np.flatnonzero(last)
    del last
    thresholds = merged[idx]
    n_miss = cum_pos[idx]
    n_fa = n_neg - (idx + 1 - n_miss)
    return OperatingPoints(thresholds, n_miss, n_fa, n_pos, n_neg)


def _points_from_sorted(sorted_scores, sorted_labels):
    """Operating points from trials already sorted by ascending score."""
    cum_pos = np.cumsum(sorted_labels)
    n_pos = int(cum_pos[-1])
    n_neg = sorted_labels.size - n_pos
    last = np.empty(sorted_scores.size, dtype=bool)
    np.not_equal(sorted_scores[1:], sorted_scores[:-1], out=last[:-1])
    last[-1] = True
    idx = np.flatnonzero(last)
    n_miss = cum_pos[idx]
    n_fa = n_neg - (idx + 1 - n_miss)
    return OperatingPoints(sorted_scores[idx], n_miss, n_fa, n_pos, n_neg)
