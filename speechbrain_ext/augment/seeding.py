"""Seeded random generators of the training augmentation modules.

Randomness comes from numpy generators seeded from ``seed`` (default:
``torch.initial_seed()``, which ``speechbrain.utils.seed_everything``
sets) and the DDP rank, so ranks augment differently and a run is
reproducible given its seed. Each module salts the seed with a number of
its own (:class:`~speechbrain_ext.augment.official.OfficialAugmentation`
1, :class:`~speechbrain_ext.augment.speed.SpeedPerturbation` 2).

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import os

import numpy as np
import torch


def make_generator(seed=None, salt=0):
    """Returns a numpy Generator for one augmentation module of one rank.

    Arguments
    ---------
    seed : int or None
        Base seed; None uses ``torch.initial_seed()``.
    salt : int
        Distinguishes modules that share a base seed.

    Returns
    -------
    numpy.random.Generator
        Seeded from the base seed, the DDP rank (``RANK``) and the salt.

    Example
    -------
    >>> a = make_generator(1, salt=2).integers(1000, size=3)
    >>> b = make_generator(1, salt=2).integers(1000, size=3)
    >>> bool((a == b).all())
    True
    """
    base = torch.initial_seed() if seed is None else int(seed)
    rank = int(os.environ.get("RANK", 0))
    return np.random.default_rng([base % 2**63, rank, int(salt)])

