"""LR schedule and sampler side by side with the official code.

The official ``scheduler/cosine_warmup.py`` and the official
``DatasetLoader.train_dataset_loader`` / ``train_dataset_sampler`` are
imported from the shared folder (``tests/official_code.py``; skipped when
it is absent) and run on the same synthetic training list as ours.
"""

import numpy as np
import pytest
import torch
from official_code import official_module

from speechbrain_ext.data.samplers import SpeakerBalancedBatchSampler
from speechbrain_ext.training.schedulers import (
    WarmupCosineRestarts,
    official_steps_per_epoch,
)

BATCH = 40


def _speaker_counts(n_speakers, seed=0):
    """Utterances per speaker, VoxCeleb-like spread (some above 500)."""
    rng = np.random.default_rng(seed)
    counts = np.clip(rng.lognormal(4.5, 0.9, n_speakers), 4, 900)
    return counts.astype(int)


@pytest.fixture(scope="module")
def train_list(tmp_path_factory):
    """An official-format training list ``spk spk/session/utt.wav``."""
    folder = tmp_path_factory.mktemp("list")
    lines, labels = [], []
    for s, count in enumerate(_speaker_counts(300)):
        spk = f"id{s:05d}"
        for u in range(count):
            lines.append(f"{spk} {spk}/sess{u % 3}/{u:05d}.wav\n")
            labels.append(spk)
    rng = np.random.default_rng(1)
    order = rng.permutation(len(lines))  # lists are not sorted by speaker
    path = folder / "train_list.txt"
    path.write_text("".join(lines[i] for i in order))
    return path, [labels[i] for i in order]


@pytest.fixture(scope="module")
def official_dataset(train_list, tmp_path_factory):
    loader = official_module("DatasetLoader")
    empty = tmp_path_factory.mktemp("noaudio")
    return loader.train_dataset_loader(
        train_list=str(train_list[0]),
        augment=False,
        musan_path=str(empty),
        rir_path=str(empty),
        max_frames=300,
        train_path=str(empty),
    )


def _official_lrs(steps_per_epoch, n_steps):
    """The official scheduler, stepped as ``train_network`` steps it."""
    sched_mod = official_module("scheduler.cosine_warmup")
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=3e-6)  # the official --lr
    sched, lr_step = sched_mod.Scheduler(
        optimizer, number_iteration=steps_per_epoch, T_0=60, T_mult=1,
        eta_max=5e-4, gamma=0.5,
    )
    assert lr_step == "iteration"
    lrs = []
    for _ in range(n_steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        sched.step()
    return np.array(lrs)


def test_lr_every_step_of_120_epochs_with_resume(official_dataset, tmp_path):
    n_utts = len(official_dataset)
    # trainSpeakerNet.py: len(train_dataset) // (batch_size * GPUs)
    steps = official_steps_per_epoch(n_utts, BATCH, world_size=1)
    assert steps == len(official_dataset) // (BATCH * 1)
    assert official_steps_per_epoch(n_utts, BATCH, 2) == n_utts // (2 * BATCH)
    total = 120 * steps
    reference = _official_lrs(steps, total)

    ours = WarmupCosineRestarts(steps_per_epoch=steps)  # official values
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=1.0)
    resume_at = 97 * steps + steps // 3  # inside the second cycle
    got = []
    for i in range(total):
        if i == resume_at:  # checkpoint, new process, recover
            ours.save(tmp_path / "sched.json")
            ours = WarmupCosineRestarts(steps_per_epoch=steps)
            ours.load(tmp_path / "sched.json")
        got.append(ours(optimizer))
        assert optimizer.param_groups[0]["lr"] == got[-1]
    np.testing.assert_allclose(got, reference, rtol=0, atol=1e-12)
    # the curve really restarts: 5e-4 peak, floor, 2.5e-4 peak
    assert reference[steps] == pytest.approx(5e-4)
    assert reference[60 * steps] == pytest.approx(3e-6)
    assert reference[61 * steps] == pytest.approx(2.5e-4)


def test_official_epoch_is_the_whole_list_not_the_drawn_batches(
    official_dataset, train_list
):
    """The scheduler epoch counts every listed utterance; the batches drawn
    in an epoch (capped at 500 per speaker, duplicates dropped) are fewer,
    so a schedule built on them would restart too early."""
    sampler = SpeakerBalancedBatchSampler(train_list[1], BATCH, seed=10)
    sampler.set_epoch(1)
    drawn = len(sampler)
    steps = official_steps_per_epoch(len(official_dataset), BATCH)
    assert drawn < steps


def _official_batches(dataset, epoch, seed=10):
    sampler = official_module("DatasetLoader").train_dataset_sampler(
        dataset, nPerSpeaker=1, max_seg_per_spk=500, batch_size=BATCH,
        distributed=False, seed=seed,
    )
    sampler.set_epoch(epoch)
    items = [item[0] for item in sampler]  # one index per item
    assert len(items) % BATCH == 0  # the last partial batch is dropped
    return [items[i : i + BATCH] for i in range(0, len(items), BATCH)]


def _stats(batches, labels):
    """Batches, per-speaker use and duplicates of one epoch."""
    per_speaker = {}
    duplicates = 0
    for batch in batches:
        speakers = [labels[i] for i in batch]
        duplicates += len(speakers) - len(set(speakers))
        for s in speakers:
            per_speaker[s] = per_speaker.get(s, 0) + 1
    return len(batches), per_speaker, duplicates


def test_sampler_statistics_match_the_official_sampler(
    official_dataset, train_list
):
    labels = train_list[1]
    official_labels = official_dataset.data_label  # sorted speaker index
    names = sorted(set(labels))
    assert [names[k] for k in official_labels] == labels  # same list order
    ours = SpeakerBalancedBatchSampler(labels, BATCH, max_per_speaker=500)
    counts = {s: labels.count(s) for s in names}
    n_ours, n_official, use_ours, use_official = [], [], {}, {}
    for epoch in range(1, 5):
        ob = _official_batches(official_dataset, epoch)
        ours.set_epoch(epoch)
        mb = list(ours)
        for batches, n_list, use in ((ob, n_official, use_official),
                                     (mb, n_ours, use_ours)):
            assert all(len(b) == BATCH for b in batches)
            n, per_speaker, duplicates = _stats(batches, labels)
            assert duplicates == 0  # no speaker twice in a batch
            assert max(per_speaker.values()) <= 500
            assert all(per_speaker[s] <= counts[s] for s in per_speaker)
            n_list.append(n)
            for s, k in per_speaker.items():
                use[s] = use.get(s, 0) + k
    # Same number of batches per epoch within 0.5 % (drops are random).
    assert abs(np.mean(n_ours) / np.mean(n_official) - 1) < 0.005
    # Same use per speaker: the share of its (capped) utterances that a
    # speaker gets into the batches, ours against the official sampler.
    big = [s for s in names if counts[s] > 500]
    assert big  # the cap is exercised
    share_ours, share_official = (
        np.array([use.get(s, 0) / (4 * min(counts[s], 500)) for s in names])
        for use in (use_ours, use_official)
    )
    # Larger speakers lose more utterances to the one-per-batch rule; the
    # mean share per size class agrees within 1 point.
    sizes = np.array([counts[s] for s in names])
    for low, high in ((0, 50), (50, 150), (150, 500), (500, 10**6)):
        group = (sizes >= low) & (sizes < high)
        assert group.sum() >= 5
        gap = share_ours[group].mean() - share_official[group].mean()
        assert abs(gap) < 0.01
    assert abs(share_ours.mean() - share_official.mean()) < 0.005
    ratio = sum(use_ours.values()) / sum(use_official.values())
    assert abs(ratio - 1) < 0.005
