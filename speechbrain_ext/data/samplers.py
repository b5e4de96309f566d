"""Speaker-balanced batch sampler for speaker-embedding training.

:class:`SpeakerBalancedBatchSampler` builds, for every epoch, a list of
batches of dataset indices in the manner of the voxceleb_trainer sampler
used by the official MR-RawNet training:

1. each speaker keeps at most ``max_per_speaker`` utterances (a random
   subset; seed ``seed + epoch``);
2. the kept utterances are shuffled globally (same generator);
3. batches of ``batch_size`` are filled greedily in that order; with
   ``unique_speakers=True`` an utterance whose speaker already occurs in
   the batch being filled is dropped for this epoch (not deferred);
4. a final partial batch is dropped when ``drop_last=True``;
5. with ``num_replicas`` R > 1 the list is truncated to a multiple of R
   and rank r takes batches r, r + R, r + 2R, ..., so all ranks get the
   same number of batches and no utterance is seen by two ranks.

All ranks build the same global list because it depends only on the
speaker labels, the options, ``seed`` and the epoch.

Use it as the ``batch_sampler`` of a SpeechBrain ``SaveableDataLoader``
and set ``brain.train_sampler`` to it so that ``Brain`` calls
``set_epoch`` each epoch; see the class docstring for the wiring and for
how mid-epoch resume works.

Authors
 * MR-RawNet SpeechBrain recipe contributors 2025
"""

import hashlib
import json

import numpy as np
import torch
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from speechbrain.utils.logger import get_logger
from torch.utils.data import Sampler

logger = get_logger(__name__)


def _default_replicas_rank(num_replicas, rank):
    """Fills missing DDP world size / rank from torch.distributed."""
    dist = torch.distributed
    initialised = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if initialised else 1
    if rank is None:
        rank = dist.get_rank() if initialised else 0
    return int(num_replicas), int(rank)


def build_speaker_batches(
    speaker_codes,
    batch_size,
    rng,
    max_per_speaker=500,
    unique_speakers=True,
    drop_last=True,
):
    """Builds one epoch's global list of batches (before DDP sharding).

    Arguments
    ---------
    speaker_codes : numpy.ndarray
        Integer speaker code of every dataset index.
    batch_size : int
        Utterances per batch.
    rng : numpy.random.Generator
        Generator for the per-speaker subsets and the global shuffle.
    max_per_speaker : int or None
        Cap on utterances per speaker per epoch; None for no cap.
    unique_speakers : bool
        Drop an utterance whose speaker is already in the current batch.
    drop_last : bool
        Drop a final batch shorter than ``batch_size``.

    Returns
    -------
    list of list of int
        The batches, each a list of dataset indices.

    Example
    -------
    >>> codes = np.array([0, 0, 0, 1, 1, 2])
    >>> rng = np.random.default_rng(0)
    >>> batches = build_speaker_batches(codes, 2, rng, max_per_speaker=1)
    >>> len(batches), sorted(codes[sum(batches, [])].tolist())
    (1, [0, 1])
    """
    codes = np.asarray(speaker_codes)
    # Random order, then a stable sort by speaker: within every speaker
    # the indices are in random order, so the first max_per_speaker of
    # each group are a uniformly random subset.
    perm = rng.permutation(len(codes))
    grouped = perm[np.argsort(codes[perm], kind="stable")]
    if max_per_speaker is not None and len(grouped) > 0:
        sorted_codes = codes[grouped]
        starts = np.flatnonzero(
            np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]
        )
        sizes = np.diff(np.r_[starts, len(grouped)])
        rank_in_group = np.arange(len(grouped)) - np.repeat(starts, sizes)
        grouped = grouped[rank_in_group < max_per_speaker]
    order = grouped[rng.permutation(len(grouped))]

    batches, current, in_batch = [], [], set()
    for idx, spk in zip(order.tolist(), codes[order].tolist(), strict=True):
        if unique_speakers:
            if spk in in_batch:
                continue
            in_batch.add(spk)
        current.append(idx)
        if len(current) == batch_size:
            batches.append(current)
            current, in_batch = [], set()
    if current and not drop_last:
        batches.append(current)
    return batches


@register_checkpoint_hooks
class SpeakerBalancedBatchSampler(Sampler):
    """Speaker-capped, speaker-unique batches; DDP-aware, resumable.

    Yields lists of dataset indices (use as ``batch_sampler``). The batch
    list of an epoch is a deterministic function of the labels, the
    options, ``seed`` and the epoch, and is cached, so ``len`` is exact.

    Wiring in a recipe (the train DataLoader is built by the recipe and
    passed to ``fit`` as a DataLoader, so that ``Brain`` does not wrap the
    batch sampler in its own ``DistributedSamplerWrapper`` under DDP;
    this sampler already shards by rank)::

        sampler = SpeakerBalancedBatchSampler.from_dataset(
            train_data, batch_size=hparams["batch_size"], seed=seed)
        loader = SaveableDataLoader(train_data, batch_sampler=sampler,
                                    collate_fn=PaddedBatch, num_workers=4)
        checkpointer.add_recoverable("train_loader", loader)
        checkpointer.add_recoverable("train_sampler", sampler)
        brain.train_sampler = sampler   # Brain calls set_epoch(epoch)
        brain.fit(epoch_counter, loader, valid_loader)

    Mid-epoch resume: the ``SaveableDataLoader`` saves how many batches
    the training loop has consumed (``_num_yielded`` of its iterator,
    which counts batches returned to the loop, not those prefetched by
    workers) and, after recovery, fast-forwards the batch sampler's
    iterator by that many batches. Because ``set_epoch`` (called by
    ``Brain`` before it iterates) rebuilds the same list, the resumed
    epoch continues with exactly the batches not yet consumed. The
    sampler's own checkpoint stores its epoch and a fingerprint of the
    labels and options; on load it restores the epoch and warns when the
    fingerprint differs (the fast-forward would then land elsewhere). It
    deliberately does not skip batches itself: that would skip twice
    together with the DataLoader, and the sampler cannot know how many of
    the batches it handed out were prefetched but never trained on.

    Arguments
    ---------
    speakers : sequence
        Speaker label (any hashable, e.g. the CSV ``spk_id``) of every
        dataset index.
    batch_size : int
        Utterances per batch (per rank).
    max_per_speaker : int or None
        Cap on utterances per speaker per epoch; None for no cap.
    unique_speakers : bool
        Never put two utterances of one speaker in a batch (extra ones
        are dropped for the epoch).
    drop_last : bool
        Drop a final partial batch.
    seed : int
        Base seed; the epoch's generator is seeded with ``seed + epoch``.
        Must be the same on all ranks.
    num_replicas : int or None
        DDP world size; default from ``torch.distributed`` or 1.
    rank : int or None
        DDP rank; default from ``torch.distributed`` or 0.
    epoch : int
        Initial epoch (see ``set_epoch``).

    Example
    -------
    >>> spk = ["a", "a", "a", "b", "b", "c", "c", "d"]
    >>> sampler = SpeakerBalancedBatchSampler(spk, batch_size=2, seed=1)
    >>> batches = list(sampler)
    >>> len(batches) == len(sampler)
    True
    >>> all(len({spk[i] for i in b}) == 2 for b in batches)
    True
    """

    def __init__(
        self,
        speakers,
        batch_size,
        max_per_speaker=500,
        unique_speakers=True,
        drop_last=True,
        seed=0,
        num_replicas=None,
        rank=None,
        epoch=0,
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if max_per_speaker is not None and max_per_speaker < 1:
            raise ValueError("max_per_speaker must be >= 1 or None")
        num_replicas, rank = _default_replicas_rank(num_replicas, rank)
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"invalid rank {rank} of {num_replicas}")
        labels = list(speakers)
        _, codes = np.unique(
            np.array([str(s) for s in labels]), return_inverse=True
        )
        self.speaker_codes = codes.reshape(-1)
        self.batch_size = int(batch_size)
        self.max_per_speaker = max_per_speaker
        self.unique_speakers = bool(unique_speakers)
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = int(epoch)
        self._cache = None  # (epoch, batches of this rank)
        self.batches_yielded = 0
        self._fingerprint = self._make_fingerprint(labels)

    @classmethod
    def from_dataset(cls, dataset, key="spk_id", **kwargs):
        """Builds the sampler from a ``DynamicItemDataset``'s static data.

        Reads ``dataset.data[data_id][key]`` in ``dataset.data_ids`` order
        (the dataset index order, filtering and sorting included) without
        running the dynamic pipelines.

        Arguments
        ---------
        dataset : speechbrain.dataio.dataset.DynamicItemDataset
            The training set.
        key : str
            Static key holding the speaker label.
        **kwargs : dict
            Other arguments of the constructor (``batch_size`` needed).

        Returns
        -------
        SpeakerBalancedBatchSampler
            The sampler.

        Example
        -------
        >>> from speechbrain.dataio.dataset import DynamicItemDataset
        >>> data = {"u1": {"spk_id": "s1"}, "u2": {"spk_id": "s2"}}
        >>> ds = DynamicItemDataset(data)
        >>> s = SpeakerBalancedBatchSampler.from_dataset(ds, batch_size=2)
        >>> list(s)[0] in ([0, 1], [1, 0])
        True
        """
        labels = [dataset.data[i][key] for i in dataset.data_ids]
        return cls(labels, **kwargs)

    def _make_fingerprint(self, labels):
        digest = hashlib.sha1()
        for label in labels:
            digest.update(str(label).encode("utf-8") + b"\0")
        return {
            "labels_sha1": digest.hexdigest(),
            "num_items": len(labels),
            "batch_size": self.batch_size,
            "max_per_speaker": self.max_per_speaker,
            "unique_speakers": self.unique_speakers,
            "drop_last": self.drop_last,
            "seed": self.seed,
            "num_replicas": self.num_replicas,
        }

    def set_epoch(self, epoch):
        """Sets the epoch that the next iteration (and ``len``) use.

        Arguments
        ---------
        epoch : int
            Epoch number (SpeechBrain's epochs start at 1).

        Returns
        -------
        None

        Example
        -------
        >>> s = SpeakerBalancedBatchSampler(list(range(20)), batch_size=4)
        >>> s.set_epoch(3)
        >>> s.epoch
        3
        """
        self.epoch = int(epoch)

    def global_batches(self, epoch=None):
        """Returns the epoch's batch list of all ranks (before sharding).

        Arguments
        ---------
        epoch : int or None
            Epoch to build; default the current one.

        Returns
        -------
        list of list of int
            All batches, in order, before truncation to the ranks.

        Example
        -------
        >>> s = SpeakerBalancedBatchSampler(list(range(10)), batch_size=3)
        >>> [len(b) for b in s.global_batches()]
        [3, 3, 3]
        """
        epoch = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng(self.seed + epoch)
        return build_speaker_batches(
            self.speaker_codes,
            self.batch_size,
            rng,
            max_per_speaker=self.max_per_speaker,
            unique_speakers=self.unique_speakers,
            drop_last=self.drop_last,
        )

    def batches(self):
        """Returns this rank's batches for the current epoch (cached).

        Returns
        -------
        list of list of int
            Batches r, r + R, r + 2R, ... of the global list truncated to
            a multiple of R (R replicas, rank r).

        Example
        -------
        >>> s = SpeakerBalancedBatchSampler(
        ...     list(range(10)), batch_size=2, num_replicas=2, rank=1
        ... )
        >>> s.batches() == s.global_batches()[1:4:2]
        True
        """
        if self._cache is None or self._cache[0] != self.epoch:
            every = self.global_batches()
            usable = len(every) - len(every) % self.num_replicas
            mine = every[self.rank : usable : self.num_replicas]
            self._cache = (self.epoch, mine)
        return self._cache[1]

    def __iter__(self):
        """Yields this rank's batches of the current epoch."""
        self.batches_yielded = 0
        for batch in self.batches():
            self.batches_yielded += 1
            yield list(batch)

    def __len__(self):
        """Number of batches this rank yields in the current epoch."""
        return len(self.batches())

    @mark_as_saver
    def save(self, path):
        """Saves the epoch, position and fingerprint as JSON.

        Arguments
        ---------
        path : str or pathlib.Path
            File to write.

        Example
        -------
        >>> tmp = getfixture("tmp_path") / "sampler.json"
        >>> s = SpeakerBalancedBatchSampler(list(range(8)), batch_size=2)
        >>> s.set_epoch(5)
        >>> s.save(tmp)
        >>> fresh = SpeakerBalancedBatchSampler(list(range(8)), batch_size=2)
        >>> fresh.load(tmp)
        >>> fresh.epoch
        5
        """
        state = {
            "epoch": self.epoch,
            "batches_yielded": self.batches_yielded,
            "fingerprint": self._fingerprint,
        }
        with open(path, "w", encoding="utf-8") as f:
            json.dump(state, f)

    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Restores the epoch; warns if labels or options changed.

        The position inside the epoch is restored by the
        ``SaveableDataLoader`` (see the class docstring), not here.

        Arguments
        ---------
        path : str or pathlib.Path
            File written by ``save``.
        end_of_epoch : bool
            Unused; ``Brain`` sets the next epoch with ``set_epoch``.

        Returns
        -------
        None

        Example
        -------
        >>> tmp = getfixture("tmp_path") / "sampler.json"
        >>> SpeakerBalancedBatchSampler([1, 2], batch_size=2).save(tmp)
        >>> SpeakerBalancedBatchSampler([1, 2], batch_size=2).load(tmp)
        """
        del end_of_epoch
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        self.set_epoch(state["epoch"])
        saved = state.get("fingerprint")
        if saved is not None and saved != self._fingerprint:
            logger.warning(
                "SpeakerBalancedBatchSampler: the labels or options differ "
                "from the checkpoint; a mid-epoch resume will not continue "
                f"with the same batches (saved {saved}, now "
                f"{self._fingerprint})"
            )
