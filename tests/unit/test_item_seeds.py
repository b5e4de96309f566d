"""Tests of speechbrain_ext.data.item_seeds (per-item random draws)."""

import torch

from speechbrain_ext.data.item_seeds import SeededItems


class Crops(torch.utils.data.Dataset):
    """Draws a random 'crop start' from torch, as the recipe's items do."""

    def __len__(self):
        return 12

    def __getitem__(self, i):
        return torch.tensor([i, int(torch.randint(0, 10**6, (1,)))])


class Epoch:
    epoch = 1


def _draws(loader):
    return {int(i): int(d) for batch in loader for i, d in batch}


def test_draws_do_not_depend_on_workers_or_skipped_items():
    epochs = Epoch()
    items = SeededItems(Crops(), seed=3, epochs=epochs)
    batches = [list(range(k, k + 3)) for k in range(0, 12, 3)]
    alone = _draws(torch.utils.data.DataLoader(items, batch_sampler=batches))
    workers = _draws(torch.utils.data.DataLoader(
        items, batch_sampler=batches, num_workers=2))
    assert workers == alone
    # A resumed epoch skips the first batches: the others are unchanged.
    resumed = _draws(torch.utils.data.DataLoader(
        items, batch_sampler=batches[2:], num_workers=2))
    assert resumed == {i: alone[i] for i in range(6, 12)}
    # Without the wrapper, workers and skips change the draws.
    plain = torch.utils.data.DataLoader(
        Crops(), batch_sampler=batches[2:], num_workers=2)
    assert _draws(plain) != resumed
    # Another epoch, other draws; the caller's generator is left alone.
    epochs.epoch = 2
    before = torch.get_rng_state()
    assert items[0].tolist() != [0, alone[0]]
    assert torch.equal(torch.get_rng_state(), before)
