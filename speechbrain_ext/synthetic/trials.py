"""Balanced verification trial lists over a set of utterances."""

from speechbrain_ext.synthetic.seeding import _rng


def make_trials(utterances, n_target=None, seed=0):
    """Balanced target / non-target trials over a set of utterances.

    Target pairs prefer two different sessions of a speaker (all same-
    session pairs are used only for speakers with a single session).
    Non-target pairs join utterances of two different speakers, drawn
    uniformly without repetition. Both halves have the same size.

    Arguments
    ---------
    utterances : list of str
        Relative paths ``spk/session/utt.wav``.
    n_target : int, optional
        Number of target trials (default: every eligible target pair,
        capped by the number of non-target pairs).
    seed : int
        Seed of the sampling and of the trial order.

    Returns
    -------
    list of tuple
        ``(label, enrol, test)`` with label 1 (target) or 0.

    Example
    -------
    >>> utts = ["a/s1/1.wav", "a/s2/1.wav", "b/s1/1.wav", "b/s3/1.wav"]
    >>> trials = make_trials(utts, seed=0)
    >>> sorted(t[0] for t in trials)
    [0, 0, 1, 1]
    """
    rng = _rng(seed, "trials")
    by_spk = {}
    for u in sorted(utterances):
        by_spk.setdefault(u.split("/")[0], []).append(u)
    targets = []
    for utts in by_spk.values():
        pairs = [
            (a, b)
            for i, a in enumerate(utts)
            for b in utts[i + 1 :]
            if a.split("/")[1] != b.split("/")[1]
        ]
        if not pairs:
            pairs = [(a, b) for i, a in enumerate(utts) for b in utts[i + 1 :]]
        targets += pairs
    sizes = [len(v) for v in by_spk.values()]
    n_cross = (sum(sizes) ** 2 - sum(s * s for s in sizes)) // 2
    n = min(len(targets), n_cross)
    if n_target is not None:
        n = min(n, int(n_target))
    if n == 0:
        raise ValueError("need at least two speakers with two utterances")
    picked = rng.choice(len(targets), size=n, replace=False)
    trials = [(1, *targets[i]) for i in sorted(picked)]
    flat = sorted(utterances)
    spk = [u.split("/")[0] for u in flat]
    seen = set()
    while len(seen) < n:
        i, j = (int(v) for v in rng.integers(len(flat), size=2))
        if spk[i] == spk[j]:
            continue
        key = (min(i, j), max(i, j))
        if key not in seen:
            seen.add(key)
            trials.append((0, flat[key[0]], flat[key[1]]))
    out = []
    for label, a, b in trials:
        out.append((label, a, b) if rng.random() < 0.5 else (label, b, a))
    order = rng.permutation(len(out))
    return [out[i] for i in order]

