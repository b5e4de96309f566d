"""Training items whose random draws depend only on (seed, epoch, item).

A training item's random crop is drawn where the item is read: in a
DataLoader worker, whose generator is seeded once per epoch and advances
with every item it reads. Such a stream cannot be checkpointed, and after
a mid-epoch resume the loader skips the items already used, so every later
crop would differ from the uninterrupted run's. :class:`SeededItems` seeds
torch's generator for each item from the base seed, the epoch and the
item's index (and restores the previous state afterwards), so an item's
draws are the same whichever process reads it and whatever was read
before.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import numpy as np
import torch


def item_seed(seed, epoch, index):
    """The seed of one item's draws.

    Arguments
    ---------
    seed : int
        Base seed of the run.
    epoch : int
        The epoch.
    index : int
        Dataset index.

    Returns
    -------
    int
        A 63-bit seed, well mixed (``numpy.random.SeedSequence``).

    Example
    -------
    >>> item_seed(1, 2, 3) == item_seed(1, 2, 3) != item_seed(1, 3, 3)
    True
    """
    words = np.random.SeedSequence([int(seed), int(epoch), int(index)])
    return int(words.generate_state(1, np.uint64)[0] >> np.uint64(1))


class SeededItems(torch.utils.data.Dataset):
    """Dataset wrapper: each item is read with torch seeded for that item.

    Arguments
    ---------
    dataset : torch.utils.data.Dataset
        Map-style dataset whose items draw from torch's generator.
    seed : int
        Base seed.
    epochs : object or None
        Something with an ``epoch`` attribute read at every item (the
        batch sampler, whose epoch SpeechBrain sets); None: epoch 0.

    Example
    -------
    >>> class Draws(torch.utils.data.Dataset):
    ...     def __len__(self):
    ...         return 4
    ...     def __getitem__(self, i):
    ...         return int(torch.randint(1000, (1,)))
    >>> items = SeededItems(Draws(), seed=7)
    >>> first = [items[i] for i in range(4)]
    >>> _ = torch.rand(5)  # whatever happened before
    >>> [items[i] for i in (3, 1)] == [first[3], first[1]]
    True
    """

    def __init__(self, dataset, seed, epochs=None):
        self.dataset = dataset
        self.seed = int(seed)
        self.epochs = epochs

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        epoch = getattr(self.epochs, "epoch", 0)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(item_seed(self.seed, epoch, index))
            return self.dataset[index]
