"""Adaptive score normalisation (AS-norm) for cosine scoring.

For each utterance ``x`` the cosine similarities to every cohort embedding
are computed, the ``topk`` largest are kept and their mean ``mu_x`` and
standard deviation ``sd_x`` are taken. A trial score ``s`` between
enrolment ``e`` and test ``t`` becomes::

    0.5 * ((s - mu_e) / sd_e + (s - mu_t) / sd_t)

Statistics are computed once per unique utterance and side (the test side
may use cropped audio, so the same path can have a different embedding as
test than as enrolment), and the cohort scores are computed in row chunks
so memory stays at ``chunk_size x cohort_size`` floats. As in SpeechBrain's
cosine-scoring recipe, the standard deviation is the unbiased one
(``ddof=1``) by default.

Authors
 * MR-RawNet recipe contributors
"""

from collections.abc import Mapping

import numpy as np

__all__ = [
    "as_norm",
    "as_norm_from_stats",
    "cohort_statistics",
    "cosine_scores",
]


def _as_matrix(x, name):
    """Converts embeddings to a finite 2-D float64 array.

    Arguments
    ---------
    x : array-like or torch.Tensor
        ``(n, dim)`` embeddings; a 1-D input is one embedding.
    name : str
        Name used in error messages.

    Returns
    -------
    numpy.ndarray
        ``(n, dim)`` float64 array.
    """
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, dim), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains non-finite values")
    return arr


def _unit_rows(x, eps=1e-12):
    """Scales rows to unit L2 norm (zero rows stay zero).

    Arguments
    ---------
    x : numpy.ndarray
        ``(n, dim)`` array.
    eps : float
        Lower bound of the norm, avoids division by zero.

    Returns
    -------
    numpy.ndarray
        Row-normalised copy.
    """
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, eps)


def cosine_scores(enrol, test):
    """Row-wise cosine similarity of paired embeddings.

    Arguments
    ---------
    enrol : array-like
        ``(n, dim)`` enrolment embeddings.
    test : array-like
        ``(n, dim)`` test embeddings, paired with ``enrol`` by row.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` cosine similarities.

    Example
    -------
    >>> cosine_scores([[1.0, 0.0], [1.0, 1.0]], [[2.0, 0.0], [-1.0, -1.0]])
    array([ 1., -1.])
    """
    e = _unit_rows(_as_matrix(enrol, "enrol embeddings"))
    t = _unit_rows(_as_matrix(test, "test embeddings"))
    if e.shape != t.shape:
        raise ValueError(f"shape mismatch: enrol {e.shape}, test {t.shape}")
    return np.einsum("ij,ij->i", e, t)


def cohort_statistics(embeddings, cohort, topk, chunk_size=1024, ddof=1):
    """Mean and std of each embedding's top-k cosine scores to a cohort.

    Arguments
    ---------
    embeddings : array-like
        ``(n, dim)`` embeddings.
    cohort : array-like
        ``(cohort_size, dim)`` cohort embeddings.
    topk : int
        Number of highest cohort scores kept per embedding,
        ``ddof < topk <= cohort_size``.
    chunk_size : int
        Rows of ``embeddings`` scored against the cohort at once.
    ddof : int
        Delta degrees of freedom of the std (1: unbiased, as SpeechBrain).

    Returns
    -------
    mean : numpy.ndarray
        ``(n,)`` mean of the top-k scores.
    std : numpy.ndarray
        ``(n,)`` standard deviation of the top-k scores.

    Example
    -------
    >>> cohort = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]
    >>> mean, std = cohort_statistics([[1.0, 0.0]], cohort, topk=2)
    >>> mean.tolist(), std.round(6).tolist()
    ([0.5], [0.707107])
    """
    emb = _as_matrix(embeddings, "embeddings")
    coh = _as_matrix(cohort, "cohort")
    if emb.shape[1] != coh.shape[1]:
        raise ValueError(
            f"embedding dim {emb.shape[1]} != cohort dim {coh.shape[1]}"
        )
    n_cohort = coh.shape[0]
    if isinstance(topk, bool) or not isinstance(topk, int | np.integer):
        raise TypeError(f"topk must be an int, got {topk!r}")
    if topk > n_cohort:
        raise ValueError(
            f"topk={topk} is larger than the cohort ({n_cohort} embeddings)"
        )
    if topk <= ddof:
        raise ValueError(
            f"topk={topk} must exceed ddof={ddof} for a defined std"
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    coh_t = _unit_rows(coh).T.copy()
    mean = np.empty(emb.shape[0])
    std = np.empty(emb.shape[0])
    kth = n_cohort - topk
    for start in range(0, emb.shape[0], chunk_size):
        stop = start + chunk_size
        block = _unit_rows(emb[start:stop]) @ coh_t
        top = np.partition(block, kth, axis=1)[:, kth:]
        mean[start:stop] = top.mean(axis=1)
        std[start:stop] = top.std(axis=1, ddof=ddof)
    return mean, std


def as_norm_from_stats(scores, enrol_mean, enrol_std, test_mean, test_std):
    """Applies AS-norm given per-trial cohort statistics.

    Arguments
    ---------
    scores : array-like
        Raw trial scores.
    enrol_mean : array-like
        Cohort mean of each trial's enrolment utterance.
    enrol_std : array-like
        Cohort std of each trial's enrolment utterance (> 0).
    test_mean : array-like
        Cohort mean of each trial's test utterance.
    test_std : array-like
        Cohort std of each trial's test utterance (> 0).

    Returns
    -------
    numpy.ndarray
        ``0.5 * ((s - mu_e) / sd_e + (s - mu_t) / sd_t)``.

    Example
    -------
    >>> as_norm_from_stats([0.8], [0.2], [0.1], [0.4], [0.2]).tolist()
    [4.0]
    """
    s = np.asarray(scores, dtype=np.float64)
    sd_e = np.asarray(enrol_std, dtype=np.float64)
    sd_t = np.asarray(test_std, dtype=np.float64)
    if (sd_e <= 0).any() or (sd_t <= 0).any():
        raise ValueError(
            "cohort std is zero for some utterance (identical top-k cohort "
            "scores); AS-norm is undefined for it"
        )
    return 0.5 * ((s - enrol_mean) / sd_e + (s - test_mean) / sd_t)


def _stack(ids, embeddings, side):
    """Unique ids of one side, their embedding matrix and trial indices.

    Arguments
    ---------
    ids : sequence of str
        Utterance id of every trial on this side.
    embeddings : Mapping
        ``id -> 1-D embedding``.
    side : str
        ``"enrol"`` or ``"test"``, for messages.

    Returns
    -------
    matrix : numpy.ndarray
        ``(n_unique, dim)`` embeddings in first-seen order.
    index : numpy.ndarray
        Row of ``matrix`` for every trial.
    """
    if not isinstance(embeddings, Mapping):
        raise TypeError(f"{side} embeddings must be a mapping id -> vector")
    rows, index, vectors = {}, np.empty(len(ids), dtype=np.int64), []
    for i, utt in enumerate(ids):
        row = rows.get(utt)
        if row is None:
            if utt not in embeddings:
                raise KeyError(f"no {side} embedding for utterance {utt!r}")
            row = rows[utt] = len(vectors)
            vec = embeddings[utt]
            if hasattr(vec, "detach"):
                vec = vec.detach().cpu().numpy()
            vectors.append(np.asarray(vec, dtype=np.float64).ravel())
        index[i] = row
    return _as_matrix(np.stack(vectors), f"{side} embeddings"), index


def as_norm(
    enrol_ids,
    test_ids,
    enrol_embeddings,
    test_embeddings,
    cohort,
    topk,
    scores=None,
    chunk_size=1024,
    ddof=1,
):
    """AS-norm of cosine trial scores.

    Arguments
    ---------
    enrol_ids : sequence of str
        Enrolment utterance of each trial.
    test_ids : sequence of str
        Test utterance of each trial.
    enrol_embeddings : Mapping
        ``id -> 1-D embedding`` for the enrolment side.
    test_embeddings : Mapping or None
        ``id -> 1-D embedding`` for the test side (e.g. of cropped audio);
        None uses ``enrol_embeddings`` for both sides.
    cohort : array-like
        ``(cohort_size, dim)`` cohort embeddings.
    topk : int
        Number of highest cohort scores kept per utterance.
    scores : array-like or None
        Raw trial scores; None computes the cosine of the embeddings.
    chunk_size : int
        Utterances scored against the cohort at once.
    ddof : int
        Delta degrees of freedom of the std (1: unbiased).

    Returns
    -------
    numpy.ndarray
        The normalised score of every trial.

    Example
    -------
    >>> emb = {"a": [1.0, 0.2], "b": [0.9, 0.1], "c": [-0.3, 1.0]}
    >>> cohort = [[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.1]]
    >>> out = as_norm(["a", "a"], ["b", "c"], emb, None, cohort, topk=3)
    >>> out.shape, bool(out[0] > out[1])
    ((2,), True)
    """
    if len(enrol_ids) != len(test_ids):
        raise ValueError(
            f"{len(enrol_ids)} enrolment ids but {len(test_ids)} test ids"
        )
    if len(enrol_ids) == 0:
        raise ValueError("no trials to normalise")
    if test_embeddings is None:
        test_embeddings = enrol_embeddings
    enrol_mat, enrol_idx = _stack(enrol_ids, enrol_embeddings, "enrol")
    test_mat, test_idx = _stack(test_ids, test_embeddings, "test")
    if scores is None:
        scores = cosine_scores(enrol_mat[enrol_idx], test_mat[test_idx])
    else:
        scores = np.asarray(scores, dtype=np.float64).ravel()
        if scores.size != len(enrol_ids):
            raise ValueError(
                f"{scores.size} scores for {len(enrol_ids)} trials"
            )
    mu_e, sd_e = cohort_statistics(enrol_mat, cohort, topk, chunk_size, ddof)
    mu_t, sd_t = cohort_statistics(test_mat, cohort, topk, chunk_size, ddof)
    return as_norm_from_stats(
        scores, mu_e[enrol_idx], sd_e[enrol_idx], mu_t[test_idx], sd_t[test_idx]
    )
