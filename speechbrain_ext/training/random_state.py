"""Random streams that a checkpoint saves, so a resume repeats them exactly.

A resumed run equals the uninterrupted one only if every random draw after
the checkpoint is the same. The streams of a training run are:

* the global generators of the training process (``random``, numpy's
  legacy global, torch on the CPU and on every CUDA device):
  :class:`GlobalRandomState`, a checkpoint recoverable;
* the numpy generators of the augmentation pipeline (crop lengths,
  conditions, SNRs, speeds, the noise files and their offsets, including
  the clips already drawn for read-ahead): saved by
  :class:`~speechbrain_ext.augment.pipeline.TrainingPipeline` itself;
* the speaker-balanced sampler: a function of its seed and the epoch;
* the random crop of every training item, drawn in DataLoader workers
  whose generators cannot be saved:
  :class:`~speechbrain_ext.data.item_seeds.SeededItems` makes those draws
  a function of (seed, epoch, item), whichever worker reads the item and
  however many items were skipped on resume.

Each process saves its own streams; under DDP the checkpoint holds rank
0's, so other ranks start their streams afresh on resume (the run goes on
correctly but is not bit-identical to an uninterrupted one).

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import json
import os
import random

import numpy as np
import torch
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)


def _rank():
    return int(os.environ.get("RANK", 0))


@register_checkpoint_hooks
class GlobalRandomState:
    """Checkpoint recoverable of the process's global random generators.

    Saves and restores ``random``, ``numpy.random`` (legacy global state)
    and torch's CPU and CUDA generators as JSON. A state saved by another
    DDP rank is not applied (each rank keeps its own streams).

    Example
    -------
    >>> path = getfixture("tmp_path") / "rng.json"
    >>> state = GlobalRandomState()
    >>> state.save(path)
    >>> a = (random.random(), np.random.rand(), torch.rand(1).item())
    >>> state.load(path)
    >>> a == (random.random(), np.random.rand(), torch.rand(1).item())
    True
    """

    @mark_as_saver
    def save(self, path):
        """Writes the current states.

        Arguments
        ---------
        path : str or os.PathLike
            The JSON file.

        Returns
        -------
        None
        """
        version, internal, gauss = random.getstate()
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state = {
            "rank": _rank(),
            "python": [version, list(internal), gauss],
            "numpy": [kind, keys.tolist(), int(pos), int(has_gauss),
                      float(cached)],
            "torch": torch.get_rng_state().tolist(),
            "cuda": [s.tolist() for s in torch.cuda.get_rng_state_all()]
            if torch.cuda.is_available()
            else [],
        }
        with open(path, "w", encoding="utf-8") as f:
            json.dump(state, f)

    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Restores the states (if saved by this rank).

        Arguments
        ---------
        path : str or os.PathLike
            The JSON file.
        end_of_epoch : bool
            Unused.

        Returns
        -------
        None
        """
        del end_of_epoch
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        if state.get("rank", 0) != _rank():
            return
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state(
            (kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)
        )
        torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
        cuda = state.get("cuda") or []
        if cuda and torch.cuda.is_available():
            if len(cuda) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(
                    [torch.tensor(s, dtype=torch.uint8) for s in cuda]
                )
            else:
                logger.warning(
                    f"{path}: CUDA generator states of {len(cuda)} devices, "
                    f"{torch.cuda.device_count()} here; not restored"
                )
