"""EER and minDCF as ``speechbrain.utils.metric_stats`` defines them.

Both metrics sweep a decision threshold ``t`` over the observed scores
with the rule "accept the trial as a target when ``score > t``"
(:func:`~speechbrain_ext.scoring.operating_points.operating_points`).

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

import numpy as np

from speechbrain_ext.scoring.operating_points import (
    _check_costs,
    operating_points,
)

__all__ = [
    "compute_eer",
    "compute_min_dcf",
]


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
