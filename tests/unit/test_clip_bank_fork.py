"""A ClipBank reading ahead must not hang the processes forked beside it.

Training forks its DataLoader workers at every epoch start while the
augmentation's clip bank reads ahead in threads. A worker forked during a
read used to inherit soundfile's ``sf_open`` lock held and wait on it
forever (and the training loop with it): the resumed-run test of
``tests/integration/test_training_faults.py`` hung that way.
"""

import concurrent.futures
import multiprocessing

import numpy as np
import pytest
import soundfile as sf
import torch

from speechbrain_ext.augment.clip_bank import ClipBank

RATE = 16000


@pytest.fixture
def noise_set(tmp_path):
    """Twenty 4 s noise files and their CSV."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(20):
        path = tmp_path / f"n{i}.wav"
        sf.write(path, rng.normal(0, 0.1, 4 * RATE).astype("float32"), RATE)
        paths.append(str(path))
    csv = tmp_path / "noise.csv"
    csv.write_text(
        "ID,wav\n" + "".join(f"n{i},{p}\n" for i, p in enumerate(paths))
    )
    return str(csv), paths


class _Reads(torch.utils.data.Dataset):
    """Items read with soundfile, as the training data pipeline does."""

    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        frames = sf.info(self.paths[i]).frames
        wav, _ = sf.read(self.paths[i], frames=min(frames, RATE))
        return torch.from_numpy(wav.astype("float32"))


def test_workers_forked_during_read_ahead_do_not_hang(noise_set):
    """Each round leaves ~30 reads in flight, then forks two workers.

    Before the fork guard, the first round hung (the workers waited on
    soundfile's lock); the DataLoader timeout turns a hang into a failure.
    """
    csv, paths = noise_set
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        bank = ClipBank(csv, clip_samples=3 * RATE, rng=0, executor=pool)
        for _ in range(10):
            clips = bank.take(16)
            loader = torch.utils.data.DataLoader(
                _Reads(paths[:8]),
                batch_size=4,
                num_workers=2,
                timeout=30,
                multiprocessing_context="fork",
            )
            batches = list(loader)
            assert [b.shape for b in batches] == [(4, RATE)] * 2
            assert len(clips) == 16
            assert all(c.shape == (3 * RATE,) for c in clips)
        assert len(bank._pending) > 0  # the bank was reading ahead


def _take_in_child(bank, queue):
    """Takes clips in a forked child and reports their shapes."""
    queue.put([c.shape for c in bank.take(5)])


def test_a_bank_used_in_a_forked_child_reads_there(noise_set):
    """The parent's pool threads do not exist in the child: no hang."""
    csv, _ = noise_set
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        bank = ClipBank(csv, clip_samples=RATE, rng=0, executor=pool)
        bank.take(4)
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_take_in_child, args=(bank, queue))
        child.start()
        try:
            shapes = queue.get(timeout=30)
        finally:
            child.join(5)
            if child.is_alive():
                child.kill()
        assert shapes == [(RATE,)] * 5
        assert child.exitcode == 0


def test_the_clips_do_not_depend_on_forks(noise_set):
    """A bank that forks between takes hands out the same clips."""
    csv, _ = noise_set
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        forked = ClipBank(csv, clip_samples=RATE, rng=3, executor=pool)
        quiet = ClipBank(csv, clip_samples=RATE, rng=3, executor=pool)
        for _ in range(3):
            got = forked.take(6)
            child = context.Process(target=int)
            child.start()
            child.join(30)
            assert child.exitcode == 0
            want = quiet.take(6)
            assert len(got) == len(want) == 6
            assert all(map(np.array_equal, got, want))
