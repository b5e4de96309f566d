"""Cosine scores of the trials of a list, raw and AS-normalised.

:func:`trial_keys` gives the embedding keys of the two sides of every
trial in one condition, :func:`cosine_trial_scores` scores the trials in
chunks (bounded memory on million-trial lists) and
:class:`CohortNormaliser` applies AS-norm with the cohort statistics
computed once per utterance and view.

Authors
 * MR-RawNet recipe contributors
"""

import numpy as np

from speechbrain_ext.scoring.norm import as_norm_from_stats, cohort_statistics
from speechbrain_ext.scoring.views import view_name

__all__ = [
    "CohortNormaliser",
    "cosine_trial_scores",
    "trial_keys",
]


def _unit_stack(keys, embeddings):
    """Unique keys as unit-norm float64 rows, and each key's row."""
    rows, index, vectors = {}, np.empty(len(keys), dtype=np.int64), []
    for i, key in enumerate(keys):
        row = rows.get(key)
        if row is None:
            row = rows[key] = len(vectors)
            vectors.append(embeddings[key])
        index[i] = row
    mat = np.asarray(vectors, dtype=np.float64).reshape(len(vectors), -1)
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    return mat / np.maximum(norms, 1e-12), index


def cosine_trial_scores(enrol_keys, test_keys, embeddings, chunk=65536):
    """Cosine similarity of every trial, in chunks of trials.

    Arguments
    ---------
    enrol_keys : sequence
        Embedding key of each trial's enrolment side.
    test_keys : sequence
        Embedding key of each trial's test side.
    embeddings : Mapping
        ``key -> 1-D embedding``.
    chunk : int
        Trials scored at once (bounds memory on million-trial lists).

    Returns
    -------
    numpy.ndarray
        float64 scores.

    Example
    -------
    >>> emb = {"a": [1.0, 0.0], "b": [2.0, 0.0], "c": [0.0, -3.0]}
    >>> cosine_trial_scores(["a", "a"], ["b", "c"], emb).tolist()
    [1.0, 0.0]
    """
    if len(enrol_keys) != len(test_keys):
        raise ValueError(
            f"{len(enrol_keys)} enrolment keys, {len(test_keys)} test keys"
        )
    enrol, e_idx = _unit_stack(enrol_keys, embeddings)
    test, t_idx = _unit_stack(test_keys, embeddings)
    scores = np.empty(len(enrol_keys))
    for start in range(0, len(scores), chunk):
        stop = start + chunk
        scores[start:stop] = np.einsum(
            "ij,ij->i", enrol[e_idx[start:stop]], test[t_idx[start:stop]]
        )
    return scores


class CohortNormaliser:
    """AS-norm with cohort statistics computed once per embedding key.

    Arguments
    ---------
    cohort : array-like
        ``(n_cohort, dim)`` cohort embeddings.
    topk : int
        Highest cohort scores kept per utterance.

    Example
    -------
    >>> cohort = [[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.1]]
    >>> emb = {"a": [1.0, 0.2], "b": [0.9, 0.1], "c": [-0.3, 1.0]}
    >>> norm = CohortNormaliser(cohort, topk=3)
    >>> raw = cosine_trial_scores(["a", "a"], ["b", "c"], emb)
    >>> out = norm(raw, ["a", "a"], ["b", "c"], emb)
    >>> bool(out[0] > out[1]), len(norm.stats)
    (True, 3)
    """

    def __init__(self, cohort, topk):
        self.cohort = np.asarray(cohort, dtype=np.float64)
        if self.cohort.ndim != 2 or not len(self.cohort):
            raise ValueError("the cohort must be a non-empty (n, dim) array")
        if not 1 < int(topk) <= len(self.cohort):
            raise ValueError(
                f"cohort top-k must be in [2, {len(self.cohort)}] (the "
                f"cohort size), got {topk}"
            )
        self.topk = int(topk)
        self.stats = {}

    def _stats(self, keys, embeddings):
        """Mean and std arrays for ``keys``, computing new ones once."""
        new = [k for k in dict.fromkeys(keys) if k not in self.stats]
        if new:
            mat = np.asarray([embeddings[k] for k in new], dtype=np.float64)
            mean, std = cohort_statistics(mat, self.cohort, self.topk)
            self.stats.update(zip(new, zip(mean, std, strict=True),
                                  strict=True))
        pairs = np.asarray([self.stats[k] for k in keys])
        return pairs[:, 0], pairs[:, 1]

    def cohort_means(self, keys, embeddings):
        """Mean of the top-k cohort scores of each key (a quality measure).

        Arguments
        ---------
        keys : sequence
            Embedding keys.
        embeddings : Mapping
            ``key -> 1-D embedding``.

        Returns
        -------
        numpy.ndarray
            ``[len(keys)]`` float64 means, the same statistics AS-norm uses.

        Example
        -------
        >>> norm = CohortNormaliser([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], 2)
        >>> norm.cohort_means(["a"], {"a": [1.0, 0.0]}).tolist()
        [0.5]
        """
        return self._stats(keys, embeddings)[0]

    def __call__(self, scores, enrol_keys, test_keys, embeddings):
        """Normalises trial scores.

        Arguments
        ---------
        scores : array-like
            Raw cosine scores.
        enrol_keys : sequence
            Enrolment embedding key of each trial.
        test_keys : sequence
            Test embedding key of each trial.
        embeddings : Mapping
            ``key -> 1-D embedding``.

        Returns
        -------
        numpy.ndarray
            AS-norm scores.
        """
        mu_e, sd_e = self._stats(enrol_keys, embeddings)
        mu_t, sd_t = self._stats(test_keys, embeddings)
        return as_norm_from_stats(scores, mu_e, sd_e, mu_t, sd_t)


def trial_keys(loaded, crop_length):
    """Embedding keys of the two sides of every trial of a list.

    Arguments
    ---------
    loaded : LoadedList
        The list.
    crop_length : int or None
        Test-side crop length of the condition.

    Returns
    -------
    enrol : list of tuple
        ``(path, "full")`` per trial.
    test : list of tuple
        ``(path, view name)`` per trial.

    Example
    -------
    >>> from speechbrain_ext.scoring.trial_lists import LoadedList, TrialSpec
    >>> from speechbrain_ext.scoring.trials import parse_trials
    >>> t = parse_trials(["1 a b", "0 a c"])
    >>> ll = LoadedList(TrialSpec("t", "t", "/"), t, ["a", "a"], ["b", "c"])
    >>> trial_keys(ll, 16640)[1]
    [('b', 'crop16640'), ('c', 'crop16640')]
    """
    test_view = view_name(crop_length)
    return (
        [(p, "full") for p in loaded.enrol],
        [(p, test_view) for p in loaded.test],
    )
