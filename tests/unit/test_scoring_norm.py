"""Tests for AS-norm in speechbrain_ext.scoring.norm."""

import math

import numpy as np
import pytest
import torch

from speechbrain_ext.scoring import norm
from speechbrain_ext.scoring.norm import as_norm, cohort_statistics


def _cos(a, b):
    """Cosine similarity of two vectors, written out."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb)


def _top_stats(vec, cohort, topk):
    """Mean and unbiased std of the top-k cohort cosines, by loops."""
    sims = sorted((_cos(vec, c) for c in cohort), reverse=True)[:topk]
    mean = sum(sims) / topk
    var = sum((s - mean) ** 2 for s in sims) / (topk - 1)
    return mean, math.sqrt(var)


def _naive_as_norm(enrol_ids, test_ids, enrol_emb, test_emb, cohort, topk):
    """Per-trial AS-norm with no caching or vectorisation."""
    out = []
    for e, t in zip(enrol_ids, test_ids, strict=True):
        s = _cos(enrol_emb[e], test_emb[t])
        mu_e, sd_e = _top_stats(enrol_emb[e], cohort, topk)
        mu_t, sd_t = _top_stats(test_emb[t], cohort, topk)
        out.append(0.5 * ((s - mu_e) / sd_e + (s - mu_t) / sd_t))
    return np.array(out)


@pytest.fixture
def data():
    rng = np.random.default_rng(11)
    dim, n_utt, n_cohort = 16, 12, 40
    names = [f"spk{i % 4}/utt{i}.wav" for i in range(n_utt)]
    enrol_emb = {n: rng.normal(size=dim) for n in names}
    # The test side of an utterance has its own (e.g. cropped) embedding.
    test_emb = {n: v + 0.3 * rng.normal(size=dim) for n, v in enrol_emb.items()}
    cohort = rng.normal(size=(n_cohort, dim))
    enrol_ids = [names[i] for i in rng.integers(0, n_utt, 50)]
    test_ids = [names[i] for i in rng.integers(0, n_utt, 50)]
    return enrol_ids, test_ids, enrol_emb, test_emb, cohort


@pytest.mark.parametrize("topk", [2, 7, 40])
@pytest.mark.parametrize("chunk_size", [1, 5, 1024])
def test_matches_naive_reference(data, topk, chunk_size):
    enrol_ids, test_ids, enrol_emb, test_emb, cohort = data
    expected = _naive_as_norm(
        enrol_ids, test_ids, enrol_emb, test_emb, cohort.tolist(), topk
    )
    got = as_norm(
        enrol_ids,
        test_ids,
        enrol_emb,
        test_emb,
        cohort,
        topk,
        chunk_size=chunk_size,
    )
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_given_scores_and_shared_embeddings(data):
    enrol_ids, test_ids, enrol_emb, _, cohort = data
    scores = np.linspace(-1, 1, len(enrol_ids))
    got = as_norm(enrol_ids, test_ids, enrol_emb, None, cohort, 5, scores)
    for i, (e, t) in enumerate(zip(enrol_ids, test_ids, strict=True)):
        mu_e, sd_e = _top_stats(enrol_emb[e], cohort.tolist(), 5)
        mu_t, sd_t = _top_stats(enrol_emb[t], cohort.tolist(), 5)
        want = 0.5 * ((scores[i] - mu_e) / sd_e + (scores[i] - mu_t) / sd_t)
        assert got[i] == pytest.approx(want, abs=1e-9)


def test_torch_inputs(data):
    enrol_ids, test_ids, enrol_emb, test_emb, cohort = data
    as_torch = {k: torch.tensor(v) for k, v in enrol_emb.items()}
    got = as_norm(
        enrol_ids, test_ids, as_torch, test_emb, torch.tensor(cohort), 4
    )
    want = as_norm(enrol_ids, test_ids, enrol_emb, test_emb, cohort, 4)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_statistics_once_per_unique_utterance(data, monkeypatch):
    enrol_ids, test_ids, enrol_emb, test_emb, cohort = data
    rows = []
    real = norm.cohort_statistics

    def spy(embeddings, *args, **kwargs):
        rows.append(len(embeddings))
        return real(embeddings, *args, **kwargs)

    monkeypatch.setattr(norm, "cohort_statistics", spy)
    as_norm(enrol_ids, test_ids, enrol_emb, test_emb, cohort, 3)
    assert rows == [len(set(enrol_ids)), len(set(test_ids))]


def test_cohort_statistics_small_example():
    # Cosines to the cohort: 1, 0, -1, 0.6 -> top-2 are 1 and 0.6.
    cohort = [[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0], [0.6, 0.8]]
    mean, std = cohort_statistics([[5.0, 0.0]], cohort, topk=2)
    assert mean[0] == pytest.approx(0.8)
    assert std[0] == pytest.approx(math.sqrt(0.08))  # ddof=1
    _, std0 = cohort_statistics([[5.0, 0.0]], cohort, topk=2, ddof=0)
    assert std0[0] == pytest.approx(0.2)


def test_topk_larger_than_cohort_raises(data):
    enrol_ids, test_ids, enrol_emb, test_emb, cohort = data
    with pytest.raises(ValueError, match="topk=41 is larger than the cohort"):
        as_norm(enrol_ids, test_ids, enrol_emb, test_emb, cohort, 41)


def test_bad_inputs_raise(data):
    enrol_ids, test_ids, enrol_emb, test_emb, cohort = data
    with pytest.raises(ValueError, match="must exceed ddof"):
        cohort_statistics(cohort[:2], cohort, topk=1)
    with pytest.raises(ValueError, match="dim"):
        cohort_statistics(cohort[:2, :4], cohort, topk=3)
    with pytest.raises(KeyError, match="no test embedding.*'missing.wav'"):
        as_norm(["spk0/utt0.wav"], ["missing.wav"], enrol_emb, None, cohort, 3)
    with pytest.raises(ValueError, match="2 scores for 1 trials"):
        as_norm(
            enrol_ids[:1], test_ids[:1], enrol_emb, None, cohort, 3, [0, 1]
        )
    with pytest.raises(ValueError, match="no trials"):
        as_norm([], [], enrol_emb, None, cohort, 3)
    with pytest.raises(ValueError, match="std is zero"):
        # ddof=0 and topk=1 gives a zero std.
        as_norm(enrol_ids, test_ids, enrol_emb, None, cohort, 1, ddof=0)
