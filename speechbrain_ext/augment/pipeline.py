"""The official MR-RawNet training augmentation, on batches, on any device.

Three steps, applied in this order by :class:`TrainingPipeline` to every
training batch. The batch holds one crop per utterance, each of its own
length (the data loader draws it per utterance, as the official loader:
3.0 s, or with probability 0.5 one of 1.0, 1.1, ..., 2.9 s; see
:class:`speechbrain_ext.data.crops.TrainingCrops`), padded to the longest
with SpeechBrain relative lengths:

1. :class:`~speechbrain_ext.augment.official.OfficialAugmentation`: every
   utterance gets one of six conditions (``clean``, ``reverb``, ``music``,
   ``babble``, ``noise``, ``tv``), drawn uniformly and independently and
   computed on the utterance's own crop (see
   :mod:`speechbrain_ext.augment.official`);
2. every crop is tiled back (repeated from its start) to the full length
   (3.0 s);
3. :class:`~speechbrain_ext.augment.speed.SpeedPerturbation` resamples the
   whole batch by one factor drawn from 0.9, 1.0, 1.1 and trims it to a
   multiple of 320 samples. Labels are unchanged.

The batch size and the order of the utterances never change, so labels
need no replication (unlike SpeechBrain's ``Augmenter``, which
concatenates augmented copies).

Randomness comes from numpy generators seeded per module and DDP rank
(:func:`~speechbrain_ext.augment.seeding.make_generator`), so ranks
augment differently and a run is reproducible given its seed.
:class:`TrainingPipeline` is a checkpoint recoverable holding the state
of all of them (including the clips a
:class:`~speechbrain_ext.augment.clip_bank.ClipBank` has already drawn
for read-ahead), so a resumed run draws exactly the augmentations of the
uninterrupted one (see :mod:`speechbrain_ext.training.random_state`).

``OfficialAugmentation``, ``SpeedPerturbation``, ``make_generator`` and
``CONDITIONS`` are imported here too, so that hparams files naming them
in this module (``!name:speechbrain_ext.augment.pipeline.
OfficialAugmentation``) keep working.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import json
import logging
import os

import torch
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from torch import nn

from speechbrain_ext.augment.lengths import _valid_counts
from speechbrain_ext.augment.official import (
    CONDITIONS,
    OfficialAugmentation,
)
from speechbrain_ext.augment.seeding import make_generator
from speechbrain_ext.augment.speed import SpeedPerturbation
from speechbrain_ext.generator_state import generator_state, restore_generator

__all__ = [
    "CONDITIONS",
    "OfficialAugmentation",
    "SpeedPerturbation",
    "TrainingPipeline",
    "make_generator",
]

logger = logging.getLogger(__name__)


@register_checkpoint_hooks
class TrainingPipeline(nn.Module):
    """Augmentation of per-utterance crops, tiling back, speed change.

    See the module docstring for the order. Each row of the batch is one
    utterance's crop, of its own length (its valid part, given by the
    relative lengths); ``augment`` works on that part, then every row is
    tiled back to ``full_samples``, so the output rows are all full
    (relative lengths 1) before ``speed``. ``augment`` and ``speed`` may
    be None (switched off).

    Arguments
    ---------
    augment : torch.nn.Module or None
        Maps ``(wavs, lengths)`` to the same; e.g.
        :class:`OfficialAugmentation`.
    speed : torch.nn.Module or None
        Maps ``(wavs, lengths)`` to resampled ones; e.g.
        :class:`SpeedPerturbation`.
    full_samples : int or None
        Length every crop is tiled back to (official: 48000, 3.0 s);
        None: the batch's own length.

    Example
    -------
    >>> pipe = TrainingPipeline(full_samples=6)
    >>> wavs = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 0.0, 0.0]])
    >>> out, lens = pipe(wavs, torch.tensor([1.0, 0.5]))
    >>> out
    tensor([[1., 2., 3., 4., 1., 2.],
            [5., 6., 5., 6., 5., 6.]])
    >>> lens
    tensor([1., 1.])
    """

    def __init__(self, augment=None, speed=None, full_samples=None):
        super().__init__()
        self.augment = augment
        self.speed = speed
        self.full_samples = None if full_samples is None else int(full_samples)
        if self.full_samples is not None and self.full_samples < 1:
            raise ValueError(f"full_samples must be >= 1, got {full_samples}")
        self.last_counts = None

    def forward(self, wavs, lengths):
        """Augments the crops, tiles them back and changes the speed.

        Arguments
        ---------
        wavs : torch.Tensor
            Crops ``[batch, time]``, padded.
        lengths : torch.Tensor
            Relative lengths ``[batch]`` (each crop's valid part).

        Returns
        -------
        wavs : torch.Tensor
            The training batch (same batch size and order).
        lengths : torch.Tensor
            Its relative lengths.
        """
        n_samples = wavs.shape[1]
        target = self.full_samples or n_samples
        counts = _valid_counts(lengths.detach().cpu(), n_samples)
        self.last_counts = counts
        if self.augment is not None:
            wavs, _ = self.augment(wavs, lengths)
        if n_samples != target or bool((counts < target).any()):
            wavs = self._tile_back(wavs, counts, target)
        lengths = torch.ones_like(lengths)
        if self.speed is not None:
            wavs, lengths = self.speed(wavs, lengths)
        return wavs, lengths

    def random_state(self):
        """State of every random draw of the pipeline (JSON-able).

        Returns
        -------
        dict
            The speed and augmentation generators (and clip banks). The
            crops are drawn where the items are read, with seeds of their
            own (:class:`~speechbrain_ext.data.item_seeds.SeededItems`).

        Example
        -------
        >>> pipe = TrainingPipeline(speed=SpeedPerturbation())
        >>> _ = pipe(torch.randn(2, 32000), torch.ones(2))
        >>> state = pipe.random_state()
        >>> a = pipe(torch.ones(2, 32000), torch.ones(2))[0]
        >>> pipe.set_random_state(state)
        >>> torch.equal(a, pipe(torch.ones(2, 32000), torch.ones(2))[0])
        True
        """
        return {
            "rank": int(os.environ.get("RANK", 0)),
            "speed": None
            if self.speed is None
            else generator_state(self.speed._rng),
            "augment": None
            if self.augment is None
            else self.augment.random_state(),
        }

    def set_random_state(self, state):
        """Restores :meth:`random_state`.

        Arguments
        ---------
        state : dict
            From :meth:`random_state`.

        Returns
        -------
        None
        """
        if self.speed is not None and state.get("speed") is not None:
            self.speed._rng = restore_generator(state["speed"])
        if self.augment is not None and state.get("augment") is not None:
            self.augment.set_random_state(state["augment"])

    @mark_as_saver
    def _save_random_state(self, path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.random_state(), f)

    @mark_as_loader
    def _load_random_state(self, path, end_of_epoch=False):
        del end_of_epoch
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        # Another rank's streams are not this rank's (see random_state.py).
        if state.get("rank", 0) == int(os.environ.get("RANK", 0)):
            self.set_random_state(state)

    @staticmethod
    def _tile_back(crops, counts, n_samples):
        """Repeats each row's first ``counts`` samples up to ``n_samples``."""
        time = torch.arange(n_samples)[None, :]
        index = (time % counts[:, None]).to(crops.device)
        return torch.gather(crops, 1, index)
