"""Tests for the speaker-balanced batch sampler."""

import collections

import numpy as np
import pytest
import torch
from speechbrain.dataio.dataloader import SaveableDataLoader
from speechbrain.utils.checkpoints import Checkpointer

from speechbrain_ext.data.samplers import (
    SpeakerBalancedBatchSampler,
    build_speaker_batches,
)


def _labels(n_spk=12, seed=0, lo=1, hi=40):
    """Speakers with between lo and hi utterances, interleaved."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(lo, hi + 1, n_spk)
    labels = [f"id{s:03d}" for s, c in enumerate(counts) for _ in range(c)]
    rng.shuffle(labels)
    return labels


def _flat(batches):
    return [i for b in batches for i in b]


def test_no_speaker_twice_in_a_batch_and_sizes():
    labels = _labels()
    s = SpeakerBalancedBatchSampler(labels, batch_size=6, seed=3)
    batches = list(s)
    assert len(batches) == len(s) > 5
    for b in batches:
        assert len(b) == 6
        assert len({labels[i] for i in b}) == 6
    flat = _flat(batches)
    assert len(flat) == len(set(flat))  # no utterance twice in an epoch


def test_unique_speakers_false_keeps_everything():
    labels = ["a"] * 10 + ["b"] * 3
    s = SpeakerBalancedBatchSampler(
        labels, batch_size=4, unique_speakers=False, drop_last=False
    )
    batches = list(s)
    assert [len(b) for b in batches] == [4, 4, 4, 1]
    assert sorted(_flat(batches)) == list(range(13))
    assert any(len({labels[i] for i in b}) < len(b) for b in batches)


def test_duplicates_are_dropped_not_deferred():
    # two speakers, batch size 2: deferring a clashing utterance to the
    # next batch would always pair all 20 utterances; dropping loses one
    # every time two utterances of a speaker meet in a batch being filled
    labels = ["a"] * 10 + ["b"] * 10
    s = SpeakerBalancedBatchSampler(labels, batch_size=2, drop_last=False)
    used = []
    for epoch in range(5):
        s.set_epoch(epoch)
        batches = list(s)
        for b in batches:
            assert len({labels[i] for i in b}) == len(b)
        flat = _flat(batches)
        assert len(flat) == len(set(flat))
        used.append(len(flat))
    assert max(used) <= 20 and min(used) < 20


def test_greedy_fill_matches_reference_walk():
    """The batch list is the greedy walk over the shuffled kept order."""
    labels = _labels(n_spk=5, seed=2)
    codes = np.unique(labels, return_inverse=True)[1]
    got = build_speaker_batches(
        codes, 3, np.random.default_rng(9), max_per_speaker=None
    )
    # without a cap the order is the second permutation of the generator
    rng = np.random.default_rng(9)
    perm0 = rng.permutation(len(labels))
    grouped = perm0[np.argsort(codes[perm0], kind="stable")]
    order = grouped[rng.permutation(len(grouped))]
    want, cur = [], []
    for i in order.tolist():
        if codes[i] in {codes[j] for j in cur}:
            continue
        cur.append(i)
        if len(cur) == 3:
            want.append(cur)
            cur = []
    assert got == want


@pytest.mark.parametrize("cap", [1, 3, 7])
def test_cap_respected_and_subset_varies(cap):
    labels = ["big"] * 50 + ["mid"] * 5 + [f"s{i}" for i in range(30)]
    s = SpeakerBalancedBatchSampler(
        labels,
        batch_size=2,
        max_per_speaker=cap,
        unique_speakers=False,
        drop_last=False,
    )
    chosen_big = set()
    for epoch in range(4):
        s.set_epoch(epoch)
        flat = _flat(list(s))
        counts = collections.Counter(labels[i] for i in flat)
        assert counts["big"] == cap
        assert counts["mid"] == min(cap, 5)
        assert all(counts[f"s{i}"] == 1 for i in range(30))
        chosen_big.add(tuple(sorted(i for i in flat if labels[i] == "big")))
    assert len(chosen_big) > 1  # the capped subset is re-drawn per epoch


def test_drop_last():
    labels = [f"s{i}" for i in range(10)]
    keep = SpeakerBalancedBatchSampler(labels, batch_size=4, drop_last=False)
    drop = SpeakerBalancedBatchSampler(labels, batch_size=4)
    assert [len(b) for b in keep] == [4, 4, 2]
    assert [len(b) for b in drop] == [4, 4]
    assert len(keep) == 3 and len(drop) == 2


def test_deterministic_per_epoch_and_different_across_epochs():
    labels = _labels()
    a = SpeakerBalancedBatchSampler(labels, batch_size=5, seed=11)
    b = SpeakerBalancedBatchSampler(labels, batch_size=5, seed=11)
    for epoch in (1, 2):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        assert list(a) == list(b)
        assert list(a) == list(a)  # re-iterating the same epoch
    a.set_epoch(1)
    e1 = list(a)
    a.set_epoch(2)
    assert list(a) != e1
    c = SpeakerBalancedBatchSampler(labels, batch_size=5, seed=12, epoch=1)
    assert list(c) != e1


@pytest.mark.parametrize("replicas", [2, 3])
def test_ranks_disjoint_equal_length_interleaved(replicas):
    labels = _labels(n_spk=15, seed=4)
    samplers = [
        SpeakerBalancedBatchSampler(
            labels, batch_size=4, seed=5, num_replicas=replicas, rank=r
        )
        for r in range(replicas)
    ]
    single = SpeakerBalancedBatchSampler(labels, batch_size=4, seed=5)
    for s in samplers + [single]:
        s.set_epoch(7)
    per_rank = [list(s) for s in samplers]
    lengths = {len(b) for b in per_rank}
    assert len(lengths) == 1 and lengths == {len(s) for s in samplers}
    flats = [set(_flat(b)) for b in per_rank]
    for i in range(replicas):
        for j in range(i + 1, replicas):
            assert not flats[i] & flats[j]
    # rank r takes global batches r, r + R, ... of the truncated list
    every = list(single)
    usable = len(every) // replicas * replicas
    for r in range(replicas):
        assert per_rank[r] == every[r:usable:replicas]


def test_ranks_truncate_to_multiple():
    labels = [f"s{i}" for i in range(5 * 4)]  # 5 batches of 4
    s0 = SpeakerBalancedBatchSampler(
        labels, batch_size=4, num_replicas=2, rank=0
    )
    s1 = SpeakerBalancedBatchSampler(
        labels, batch_size=4, num_replicas=2, rank=1
    )
    assert len(s0) == len(s1) == 2
    assert len(list(s0)) == len(list(s1)) == 2


def test_defaults_without_distributed_and_invalid_args():
    s = SpeakerBalancedBatchSampler(["a", "b"], batch_size=1)
    assert (s.num_replicas, s.rank) == (1, 0)
    with pytest.raises(ValueError):
        SpeakerBalancedBatchSampler(["a"], batch_size=1, num_replicas=2, rank=2)
    with pytest.raises(ValueError):
        SpeakerBalancedBatchSampler(["a"], batch_size=0)


def test_from_dataset_uses_dataset_index_order():
    from speechbrain.dataio.dataset import DynamicItemDataset

    data = {f"u{i}": {"spk_id": f"s{i % 3}"} for i in range(9)}
    ds = DynamicItemDataset(data)
    s = SpeakerBalancedBatchSampler.from_dataset(ds, batch_size=3)
    for b in s:
        assert sorted(int(ds.data_ids[i][1:]) % 3 for i in b) == [0, 1, 2]


class _Items(torch.utils.data.Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i


@pytest.mark.parametrize("num_workers", [0, 1])
def test_resume_mid_epoch_skips_exactly_consumed(tmp_path, num_workers):
    labels = _labels(n_spk=10, seed=6)
    data = _Items(len(labels))

    def make():
        sampler = SpeakerBalancedBatchSampler(labels, batch_size=4, seed=2)
        loader = SaveableDataLoader(
            data, batch_sampler=sampler, num_workers=num_workers
        )
        ckpt = Checkpointer(
            tmp_path, {"train_loader": loader, "train_sampler": sampler}
        )
        return sampler, loader, ckpt

    sampler, loader, ckpt = make()
    sampler.set_epoch(3)
    expected = [b.tolist() for b in loader]
    assert len(expected) == len(sampler) > 6
    consumed = 4
    got = []
    for i, batch in enumerate(loader):
        got.append(batch.tolist())
        if i + 1 == consumed:
            # workers have prefetched beyond this point by now
            ckpt.save_checkpoint(end_of_epoch=False)
            break
    if num_workers:
        # the sampler handed out more batches than were trained on, which
        # is why the position must come from the DataLoader
        assert sampler.batches_yielded > consumed

    sampler2, loader2, ckpt2 = make()
    assert sampler2.epoch == 0
    ckpt2.recover_if_possible()
    assert sampler2.epoch == 3  # restored even without set_epoch
    sampler2.set_epoch(3)  # what Brain does before iterating
    rest = [b.tolist() for b in loader2]
    assert got + rest == expected
    assert len(rest) == len(expected) - consumed
    # the following epoch starts from its beginning again
    sampler2.set_epoch(4)
    assert [b.tolist() for b in loader2] == list(sampler2)


def test_end_of_epoch_checkpoint_does_not_skip(tmp_path):
    labels = _labels(n_spk=8, seed=1)
    sampler = SpeakerBalancedBatchSampler(labels, batch_size=3)
    loader = SaveableDataLoader(_Items(len(labels)), batch_sampler=sampler)
    sampler.set_epoch(1)
    _ = [b for b in loader]
    Checkpointer(tmp_path, {"l": loader, "s": sampler}).save_checkpoint(
        end_of_epoch=True
    )
    sampler2 = SpeakerBalancedBatchSampler(labels, batch_size=3)
    loader2 = SaveableDataLoader(_Items(len(labels)), batch_sampler=sampler2)
    Checkpointer(tmp_path, {"l": loader2, "s": sampler2}).recover_if_possible()
    sampler2.set_epoch(2)
    assert [b.tolist() for b in loader2] == list(sampler2)


def test_fingerprint_mismatch_warns(tmp_path, caplog):
    labels = _labels(n_spk=5)
    SpeakerBalancedBatchSampler(labels, batch_size=3).save(tmp_path / "s")
    same = SpeakerBalancedBatchSampler(labels, batch_size=3, rank=0)
    with caplog.at_level("WARNING"):
        same.load(tmp_path / "s")
    assert "differ" not in caplog.text
    other = SpeakerBalancedBatchSampler(labels, batch_size=4)
    with caplog.at_level("WARNING"):
        other.load(tmp_path / "s")
    assert "differ" in caplog.text
