"""EER and minDCF of a labelled score set, in either definition.

:func:`compute_metrics` validates the trials once, sorts them once and
returns the EER and the normalised minDCF at every requested prior
(:class:`VerificationMetrics`), in one of two definitions:

* **official** (the default, and the numbers the MR-RawNet paper
  reports): ``tuneThresholdfromScore`` and ``ComputeMinDcf`` of the
  official ``tuneThreshold.py``, digit for digit
  (:mod:`~speechbrain_ext.scoring.official_metrics`);
* **speechbrain**: ``speechbrain.utils.metric_stats.EER`` and ``minDCF``
  (:mod:`~speechbrain_ext.scoring.speechbrain_metrics`).

Both share the threshold sweep of
:mod:`~speechbrain_ext.scoring.operating_points`: O(N log N) time, O(N)
memory.

Authors
 * MR-RawNet recipe contributors
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

from speechbrain_ext.scoring.official_metrics import (
    _official_eer_from_points,
    _official_min_dcf_sorted,
    _official_order,
)
from speechbrain_ext.scoring.operating_points import (
    _check_costs,
    _check_trials,
    _points_from_sorted,
    operating_points,
)
from speechbrain_ext.scoring.speechbrain_metrics import (
    _eer_from_points,
    _min_dcf_from_points,
)

__all__ = [
    "RULES",
    "VerificationMetrics",
    "compute_metrics",
]


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
