"""The training recipe's data loaders: balanced, seeded, fault tolerant.

The training loader draws speaker-balanced batches
(:class:`~speechbrain_ext.data.samplers.SpeakerBalancedBatchSampler`)
whose crops are seeded per (seed, epoch, item)
(:class:`~speechbrain_ext.data.item_seeds.SeededItems`), so a resumed run
reads the same crops; the validation loader gives every DDP rank its
share of the held-out set. Both skip bad audio files
(:mod:`speechbrain_ext.data.safe_audio`).

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""


import torch
from speechbrain.dataio.dataloader import SaveableDataLoader
from speechbrain.utils.logger import get_logger

from speechbrain_ext.data.item_seeds import SeededItems
from speechbrain_ext.data.safe_audio import FaultTolerantCollate, SkipBadFiles
from speechbrain_ext.data.samplers import SpeakerBalancedBatchSampler

logger = get_logger(__name__)


def make_loaders(hparams, train_data, valid_data, pin_memory=False):
    """Speaker-balanced training loader; rank-sharded validation loader.

    Both loaders skip bad audio files: a bad training file is replaced by
    another utterance of its speaker (dropped if none is readable), a bad
    validation file is dropped; the counts travel in the batches
    (:mod:`speechbrain_ext.data.safe_audio`), also from DataLoader
    workers.

    Arguments
    ---------
    hparams : dict
        Loaded hyperparameters.
    train_data : DynamicItemDataset
        Training set.
    valid_data : DynamicItemDataset or None
        Validation set.
    pin_memory : bool
        Pin batches in page-locked memory (for CUDA).

    Returns
    -------
    tuple
        ``(train_loader, sampler, valid_loader)``.

    Example
    -------
    >>> import numpy as np, soundfile as sf
    >>> from speechbrain.dataio.dataset import DynamicItemDataset
    >>> folder = getfixture("tmp_path")
    >>> rows = {}
    >>> for i in range(4):
    ...     sf.write(folder / f"{i}.wav", np.zeros(160), 16000)
    ...     rows[f"u{i}"] = {"wav": str(folder / f"{i}.wav"),
    ...                      "spk_id": f"s{i % 2}"}
    >>> data = DynamicItemDataset(rows, output_keys=["id", "spk_id"])
    >>> hparams = {"batch_size": 2, "max_per_speaker": 1, "seed": 1,
    ...            "num_workers": 0, "valid_batch_size": 2}
    >>> train, sampler, valid = make_loaders(hparams, data, data)
    >>> batch = next(iter(train))
    >>> sorted(batch.spk_id), len(list(valid))
    (['s0', 's1'], 2)
    """
    sampler = SpeakerBalancedBatchSampler.from_dataset(
        train_data,
        batch_size=hparams["batch_size"],
        max_per_speaker=hparams["max_per_speaker"],
        seed=hparams["seed"],
    )
    workers = hparams["num_workers"]
    speakers = [train_data.data[i]["spk_id"] for i in train_data.data_ids]
    # Crops drawn per (seed, epoch, item), whichever worker reads the item
    # (exact resume); loaders with their own generators leave torch's
    # global one alone.
    train_loader = SaveableDataLoader(
        SeededItems(
            SkipBadFiles(
                train_data,
                groups=speakers,
                max_tries=hparams.get("bad_file_replacements", 5),
            ),
            seed=hparams["seed"],
            epochs=sampler,
        ),
        batch_sampler=sampler,
        collate_fn=FaultTolerantCollate(),
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(hparams["seed"]),
    )
    valid_loader = None
    if valid_data is not None:
        world, rank = 1, 0
        if torch.distributed.is_initialized():
            world = torch.distributed.get_world_size()
            rank = torch.distributed.get_rank()
        # Every rank scores its share; SpeakerBrain sums the counts.
        valid_loader = torch.utils.data.DataLoader(
            SkipBadFiles(valid_data),
            sampler=list(range(rank, len(valid_data), world)),
            batch_size=hparams["valid_batch_size"],
            collate_fn=FaultTolerantCollate(),
            num_workers=workers,
            pin_memory=pin_memory,
            generator=torch.Generator().manual_seed(hparams["seed"]),
        )
    return train_loader, sampler, valid_loader
