"""How well scores work as log-likelihood ratios: Cllr, min-Cllr, actual DCF.

``Cllr`` (Brummer and du Preez, 2006) is the cost of using the scores as
natural-log LLRs, averaged over all operating points, in bits:

    Cllr = 1 / (2 log 2) * (mean_targets log(1 + exp(-llr))
                            + mean_non-targets log(1 + exp(llr)))

1.0 is the cost of a system that always says "don't know" (LLR 0); a
well-calibrated useful system is below it. ``min-Cllr`` is the Cllr after
the best monotonic re-mapping of the scores (pool-adjacent-violators on the
trials themselves): what calibration could reach; ``Cllr - min-Cllr`` is
the calibration loss.

The *actual* DCF is the normalised detection cost of the Bayes decision
``llr > log((1 - P_target) / P_target)``; unlike the minDCF it needs no
threshold chosen on the test trials, so it shows whether the LLRs mean what
they say.

Authors
 * MR-RawNet recipe contributors
"""

import math

import numpy as np

from speechbrain_ext.scoring.calibration import bayes_threshold

__all__ = [
    "actual_dcf",
    "calibration_summary",
    "cllr",
    "min_cllr",
    "pav",
]


def _split(labels, llrs):
    """Target and non-target values as float64 arrays (both non-empty)."""
    y = np.asarray(labels).ravel()
    s = np.asarray(llrs, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    y = y.astype(bool)
    if y.all() or not y.any():
        raise ValueError("both target and non-target trials are needed")
    if np.isnan(s).any():
        raise ValueError("scores hold NaN values")
    return s[y], s[~y]


def cllr(labels, llrs):
    """Log-likelihood-ratio cost, in bits.

    Arguments
    ---------
    labels : array-like
        1 target, 0 non-target.
    llrs : array-like
        Natural-log LLRs (infinite values allowed).

    Returns
    -------
    float
        The Cllr (0 perfect, 1 uninformative).

    Example
    -------
    >>> cllr([1, 0], [0.0, 0.0])
    1.0
    >>> round(cllr([1, 0], [20.0, -20.0]), 6)
    0.0
    """
    tar, non = _split(labels, llrs)
    with np.errstate(over="ignore"):
        c_t = np.mean(np.logaddexp(0.0, -tar))
        c_n = np.mean(np.logaddexp(0.0, non))
    return float((c_t + c_n) / (2.0 * math.log(2.0)))


def pav(labels, scores):
    """Pool-adjacent-violators: the best monotonic posterior of each trial.

    Trials are sorted by score; equal scores are pooled first, then
    adjacent blocks whose target fraction decreases are merged until it
    increases with the score.

    Arguments
    ---------
    labels : array-like
        1 target, 0 non-target.
    scores : array-like
        Scores (any monotonic scale).

    Returns
    -------
    numpy.ndarray
        The fitted target fraction of each trial, in input order.

    Example
    -------
    >>> pav([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4]).tolist()
    [0.0, 0.5, 0.5, 1.0]
    """
    y = np.asarray(labels, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    order = np.argsort(s, kind="stable")
    values, first = np.unique(s[order], return_index=True)
    sums = np.add.reduceat(y[order], first)
    counts = np.diff(np.append(first, len(s))).astype(np.float64)
    # Blocks as a stack of (target sum, count, groups merged).
    blk_sum, blk_cnt, blk_len = [], [], []
    for t, c in zip(sums, counts, strict=True):
        blk_sum.append(t)
        blk_cnt.append(c)
        blk_len.append(1)
        while len(blk_sum) > 1 and (
            blk_sum[-2] * blk_cnt[-1] >= blk_sum[-1] * blk_cnt[-2]
        ):
            t2, c2, n2 = blk_sum.pop(), blk_cnt.pop(), blk_len.pop()
            blk_sum[-1] += t2
            blk_cnt[-1] += c2
            blk_len[-1] += n2
    group_fit = np.repeat(
        np.asarray(blk_sum) / np.asarray(blk_cnt), blk_len
    )
    del values
    fitted_sorted = np.repeat(group_fit, counts.astype(np.int64))
    out = np.empty_like(fitted_sorted)
    out[order] = fitted_sorted
    return out


def min_cllr(labels, scores):
    """Cllr after the best monotonic calibration of the scores.

    Arguments
    ---------
    labels : array-like
        1 target, 0 non-target.
    scores : array-like
        Scores (any monotonic scale).

    Returns
    -------
    float
        The minimum Cllr, in bits (<= :func:`cllr` of any monotonic map).

    Example
    -------
    >>> min_cllr([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4])
    0.0
    >>> min_cllr([1, 0], [0.5, 0.5])
    1.0
    """
    tar, non = _split(labels, scores)
    del tar, non
    y = np.asarray(labels).ravel().astype(bool)
    post = pav(y, scores)
    prior_logit = math.log(y.sum() / (~y).sum())
    with np.errstate(divide="ignore"):
        llr = np.log(post) - np.log1p(-post) - prior_logit
    return cllr(y, llr)


def actual_dcf(labels, llrs, p_target=0.01, c_miss=1.0, c_fa=1.0):
    """Normalised cost of the Bayes decision, with its error rates.

    Arguments
    ---------
    labels : array-like
        1 target, 0 non-target.
    llrs : array-like
        Natural-log LLRs.
    p_target : float
        Prior of a target trial.
    c_miss : float
        Cost of a miss.
    c_fa : float
        Cost of a false alarm.

    Returns
    -------
    dict
        ``act_dcf`` (normalised like the minDCF), ``threshold`` (the LLR
        threshold), ``p_fa`` and ``p_miss`` (rates of the decision
        ``llr > threshold``).

    Example
    -------
    >>> out = actual_dcf([1, 1, 0, 0], [9.0, 1.0, -3.0, 5.0], 0.01)
    >>> out["p_fa"], out["p_miss"]
    (0.5, 0.5)
    """
    tar, non = _split(labels, llrs)
    thr = bayes_threshold(p_target, c_miss, c_fa)
    p_miss = float(np.mean(tar <= thr))
    p_fa = float(np.mean(non > thr))
    cost = c_miss * p_target * p_miss + c_fa * (1 - p_target) * p_fa
    norm = min(c_miss * p_target, c_fa * (1 - p_target))
    return {
        "act_dcf": cost / norm, "threshold": thr, "p_fa": p_fa,
        "p_miss": p_miss,
    }


def calibration_summary(labels, llrs, p_targets=(0.01, 0.05)):
    """Cllr, min-Cllr and actual DCFs of calibrated scores, as a flat dict.

    Arguments
    ---------
    labels : array-like
        1 target, 0 non-target.
    llrs : array-like
        Natural-log LLRs.
    p_targets : sequence of float
        Priors of the actual DCFs.

    Returns
    -------
    dict
        ``cllr``, ``min_cllr``, and per prior ``act_dcf@<p>``,
        ``p_fa@<p>``, ``p_miss@<p>``.

    Example
    -------
    >>> out = calibration_summary([1, 0, 1, 0], [3.0, -3.0, 1.0, -1.0])
    >>> round(out["cllr"], 3), out["min_cllr"], out["p_fa@0.01"]
    (0.261, 0.0, 0.0)
    """
    out = {"cllr": cllr(labels, llrs), "min_cllr": min_cllr(labels, llrs)}
    for p in p_targets:
        dcf = actual_dcf(labels, llrs, p)
        out[f"act_dcf@{p:g}"] = dcf["act_dcf"]
        out[f"p_fa@{p:g}"] = dcf["p_fa"]
        out[f"p_miss@{p:g}"] = dcf["p_miss"]
    return out
