"""Equal error rate and minimum detection cost, sort-based.

Two definitions are implemented, both with sorts and cumulative sums
(O(N log N) time, O(N) memory):

* **official** (the default of :func:`compute_metrics`, and the numbers
  the MR-RawNet paper reports): ``tuneThresholdfromScore`` and
  ``ComputeMinDcf`` of the official ``tuneThreshold.py``, digit for digit
  (see :func:`compute_official_eer` and :func:`compute_official_min_dcf`);
* **speechbrain**: ``speechbrain.utils.metric_stats.EER`` and ``minDCF``
  (:func:`compute_eer`, :func:`compute_min_dcf`), described below.

Official EER
    scikit-learn's ROC curve (``roc_curve`` with its default
    ``drop_intermediate=True``: points in the middle of straight ROC
    segments are removed) over "accept when ``score >= t``" for every
    distinct score, plus the "accept nothing" point; the point that
    minimises ``|FNR - FPR|`` (the first, from the strict end) is chosen
    and the EER is ``max(FPR, FNR)`` there (the SpeechBrain EER below is
    the mean of the two, at a slightly different set of points).

Official minDCF
    The trials are sorted by score (ties keep their order in the trial
    list), and every prefix of the sorted list is a "rejected" set:
    ``C_det = C_miss * P_miss * P_target + C_fa * P_fa * (1 - P_target)``
    is minimised over the prefixes and divided by
    ``min(C_miss * P_target, C_fa * (1 - P_target))``. With tied scores a
    prefix may split a tie, so the value can depend on the order of the
    trials; without ties it equals the SpeechBrain minDCF.

SpeechBrain definitions: both metrics sweep a decision threshold ``t`` over
the observed scores with the rule "accept the trial as a target when
``score > t``". Scores equal to each other always move together across a
threshold, so ties are exact. For every distinct score value ``t``
(ascending)::

    P_miss(t) = #{target scores <= t} / N_target
    P_fa(t)   = #{non-target scores > t} / N_nontarget

The candidate thresholds are exactly SpeechBrain's
(``speechbrain.utils.metric_stats.EER`` and ``minDCF``): SpeechBrain also
tries the midpoints between consecutive distinct scores, but a midpoint has
the same error counts as the distinct score just below it, so it adds no
new operating point. The "accept everything" point (threshold below the
lowest score) is not a candidate; the "reject everything" point (threshold
at the highest score) is.

EER
    The candidate that minimises ``|P_fa - P_miss|`` (the lowest such
    threshold, up to the float32 tie rule below); the EER is
    ``(P_fa + P_miss) / 2`` at that point, with no interpolation, and the
    threshold is that score value. Like SpeechBrain, the gaps are
    compared on float32 rates: when the two points that straddle
    ``P_fa = P_miss`` are exactly equally far from it (e.g.
    ``+1/(2 N_target)`` and ``-1/(2 N_target)``), the choice follows
    SpeechBrain's float32 rounding, so the EER equals SpeechBrain's. The
    returned EER is computed from exact float64 rates at the chosen point
    and differs from SpeechBrain's float32 value by < 1e-7. SpeechBrain
    occasionally reports the midpoint just above the chosen score as its
    threshold (same error counts); this module reports the score itself.

minDCF
    ``C_det(t) = C_miss * P_miss(t) * P_target
    + C_fa * P_fa(t) * (1 - P_target)`` minimised over the candidates and
    divided by ``min(C_miss * P_target, C_fa * (1 - P_target))`` (the cost
    of the better trivial system), i.e. the normalised minDCF.

SpeechBrain's ``minDCF`` builds a thresholds x scores matrix; here the
sweep is one sort plus cumulative sums: O(N log N) time and O(N) memory.

Authors
 * MR-RawNet recipe contributors
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "OperatingPoints",
    "VerificationMetrics",
    "compute_eer",
    "compute_metrics",
    "compute_min_dcf",
    "compute_official_eer",
    "compute_official_min_dcf",
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


def _eer_from_points(ops):
    """EER and threshold from precomputed operating points.

    Arguments
    ---------
    ops : OperatingPoints
        Output of :func:`operating_points`.

    Returns
    -------
    tuple of float
        ``(eer, threshold)``.
    """
    # SpeechBrain compares float32 rates: ``|FAR - FRR|`` rounded to
    # float32 against the float64 gap of the best point so far. Exact ties
    # (e.g. +1/(2P) and -1/(2P) on both sides of the crossing) are thus
    # broken by float32 rounding; replaying that rule keeps the EER equal to
    # SpeechBrain's. Only the points whose float32 gap equals the minimum
    # can be chosen (rounding is monotonic), so only they are replayed.
    far32 = ops.n_fa.astype(np.float32) / np.float32(ops.n_nontarget)
    frr32 = ops.n_miss.astype(np.float32) / np.float32(ops.n_target)
    gap32 = np.abs(far32 - frr32)
    smallest = gap32.min()
    tied = np.flatnonzero(gap32 == smallest)
    i = int(tied[0])
    for j in tied[1:]:
        if smallest < abs(float(far32[i]) - float(frr32[i])):
            i = int(j)
    del far32, frr32, gap32
    eer = (ops.n_fa[i] / ops.n_nontarget + ops.n_miss[i] / ops.n_target) / 2
    return float(eer), float(ops.thresholds[i])


def _min_dcf_from_points(ops, p_target, c_miss, c_fa):
    """Normalised minDCF and threshold from precomputed operating points.

    Arguments
    ---------
    ops : OperatingPoints
        Output of :func:`operating_points`.
    p_target : float
        Prior probability of a target trial.
    c_miss : float
        Cost of a miss.
    c_fa : float
        Cost of a false alarm.

    Returns
    -------
    tuple of float
        ``(normalised_min_dcf, threshold)``.
    """
    norm = _check_costs(p_target, c_miss, c_fa)
    cost = (c_miss * p_target / ops.n_target) * ops.n_miss
    cost += (c_fa * (1.0 - p_target) / ops.n_nontarget) * ops.n_fa
    i = int(np.argmin(cost))
    return float(cost[i] / norm), float(ops.thresholds[i])


def compute_eer(positive_scores, negative_scores):
    """Equal error rate, matching ``speechbrain.utils.metric_stats.EER``.

    See the module docstring for the exact definition: the first distinct
    score ``t`` minimising ``|P_fa(t) - P_miss(t)|`` (accept when
    ``score > t``), and the EER ``(P_fa + P_miss) / 2`` there.

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
        The score value at which it is reached.

    Example
    -------
    >>> compute_eer([0.6, 0.7, 0.8, 0.5], [0.4, 0.3, 0.2, 0.1])
    (0.0, 0.4)
    >>> compute_eer([0.9, 0.3], [0.5, 0.1])
    (0.5, 0.3)
    """
    return _eer_from_points(operating_points(positive_scores, negative_scores))


def compute_min_dcf(
    positive_scores, negative_scores, p_target=0.01, c_miss=1.0, c_fa=1.0
):
    """Normalised minimum detection cost function.

    ``min_t [C_miss P_miss(t) P_target + C_fa P_fa(t) (1 - P_target)]``
    divided by ``min(C_miss P_target, C_fa (1 - P_target))``. Before the
    division the value equals ``speechbrain.utils.metric_stats.minDCF``.

    Arguments
    ---------
    positive_scores : array-like
        Scores of target trials (non-empty, finite).
    negative_scores : array-like
        Scores of non-target trials (non-empty, finite).
    p_target : float
        Prior probability of a target trial (default 0.01).
    c_miss : float
        Cost of a miss (default 1).
    c_fa : float
        Cost of a false alarm (default 1).

    Returns
    -------
    min_dcf : float
        The normalised minDCF (1.0 for a system no better than trivial).
    threshold : float
        The score value at which the minimum is reached.

    Example
    -------
    >>> compute_min_dcf([0.6, 0.7, 0.8, 0.5], [0.4, 0.3, 0.2, 0.1])
    (0.0, 0.4)
    >>> dcf, thr = compute_min_dcf([0.9, 0.3], [0.5, 0.1], p_target=0.5)
    >>> round(dcf, 6), thr
    (0.5, 0.1)
    """
    ops = operating_points(positive_scores, negative_scores)
    return _min_dcf_from_points(ops, p_target, c_miss, c_fa)


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


@dataclass(frozen=True)
class VerificationMetrics:
    """EER and normalised minDCF values of one score set.

    Arguments
    ---------
    eer : float
        Equal error rate (fraction, not percent).
    eer_threshold : float
        Threshold at the EER.
    min_dcf : dict
        Normalised minDCF per ``p_target``.
    min_dcf_threshold : dict
        Threshold at the minDCF per ``p_target``.
    n_target : int
        Number of target trials.
    n_nontarget : int
        Number of non-target trials.

    Example
    -------
    >>> m = compute_metrics([1, 0, 1, 0], [0.9, 0.5, 0.3, 0.1])
    >>> m.eer, m.n_target, m.n_nontarget
    (0.5, 2, 2)
    >>> sorted(m.as_dict())[:3]
    ['eer', 'eer_threshold', 'min_dcf@0.01']
    """

    eer: float
    eer_threshold: float
    min_dcf: dict = field(default_factory=dict)
    min_dcf_threshold: dict = field(default_factory=dict)
    n_target: int = 0
    n_nontarget: int = 0

    def as_dict(self):
        """Flat ``{name: value}`` dictionary, e.g. for logging.

        Returns
        -------
        dict
            Keys ``eer``, ``eer_threshold``, ``min_dcf@<p>``,
            ``min_dcf_threshold@<p>``, ``n_target``, ``n_nontarget``.
        """
        out = {"eer": self.eer, "eer_threshold": self.eer_threshold}
        for p, value in self.min_dcf.items():
            out[f"min_dcf@{p:g}"] = value
            out[f"min_dcf_threshold@{p:g}"] = self.min_dcf_threshold[p]
        out["n_target"] = self.n_target
        out["n_nontarget"] = self.n_nontarget
        return out


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


#: Metric definitions accepted by :func:`compute_metrics`.
RULES = ("official", "speechbrain")


def compute_metrics(
    labels,
    scores,
    p_targets: Sequence[float] = (0.01, 0.05),
    c_miss=1.0,
    c_fa=1.0,
    rule="official",
):
    """EER and normalised minDCF(s) for labelled scores, with one sort.

    Arguments
    ---------
    labels : array-like
        1 (or True) for target trials, 0 (or False) for non-target trials.
    scores : array-like
        One score per trial, same length as ``labels``, in trial-list
        order (the official minDCF splits ties in that order).
    p_targets : sequence of float
        The target priors at which the minDCF is reported.
    c_miss : float
        Cost of a miss.
    c_fa : float
        Cost of a false alarm.
    rule : str
        ``"official"`` (``tuneThreshold.py``, what the paper reports) or
        ``"speechbrain"`` (``speechbrain.utils.metric_stats``); see the
        module docstring.

    Returns
    -------
    VerificationMetrics
        EER, minDCF per prior, their thresholds and the trial counts.

    Example
    -------
    >>> m = compute_metrics([1, 1, 0, 0], [0.8, 0.2, 0.4, 0.1])
    >>> m.eer, m.eer_threshold, m.min_dcf[0.05]
    (0.5, 0.4, 0.5)
    >>> m = compute_metrics([1, 1, 1, 0, 0], [0.9, 0.8, 0.3, 0.5, 0.1])
    >>> m.eer, round(compute_metrics(
    ...     [1, 1, 1, 0, 0], [0.9, 0.8, 0.3, 0.5, 0.1], rule="speechbrain"
    ... ).eer, 4)
    (0.5, 0.4167)
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    labels, scores = _check_trials(labels, scores)
    for p in p_targets:
        _check_costs(p, c_miss, c_fa)
    dcf, dcf_thr = {}, {}
    if rule == "speechbrain":
        ops = operating_points(scores[labels], scores[~labels])
        eer, eer_thr = _eer_from_points(ops)
        for p in p_targets:
            dcf[p], dcf_thr[p] = _min_dcf_from_points(ops, p, c_miss, c_fa)
    else:
        sorted_scores, sorted_labels = _official_order(labels, scores)
        ops = _points_from_sorted(sorted_scores, sorted_labels)
        eer, eer_thr = _official_eer_from_points(ops)
        for p in p_targets:
            dcf[p], i = _official_min_dcf_sorted(
                sorted_labels, p, c_miss, c_fa
            )
            dcf_thr[p] = float(sorted_scores[i])
    return VerificationMetrics(
        eer, eer_thr, dcf, dcf_thr, ops.n_target, ops.n_nontarget
    )
