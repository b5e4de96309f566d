"""SpeechBrain ``Brain`` for MR-RawNet speaker-embedding training.

:class:`SpeakerBrain` trains an embedding model with a cosine classifier
and an AAM-softmax loss on batches of raw waveforms:

* the training batch goes through ``hparams.train_pipeline`` (crop,
  augmentation, speed change; see :mod:`speechbrain_ext.augment.pipeline`)
  on the batch's device, then through ``embedding_model(wavs, lengths)``
  and ``classifier``;
* the per-iteration LR schedule ``hparams.lr_scheduler`` (e.g.
  :class:`~speechbrain_ext.training.schedulers.WarmupCosineRestarts`) is
  called before every optimiser step;
* per epoch it logs the training loss, the training accuracy of the AAM
  logits (margin applied, as in the official trainer), the LR and the time,
  then the validation loss and speaker-ID error (all reduced over DDP
  ranks), and optionally an EER on a small trial list every few epochs;
* it checkpoints at the end of every epoch (keeping the most recent and
  the lowest validation error) and SpeechBrain's intra-epoch checkpoints
  resume exactly: the ``brain`` recoverable also holds the running sums of
  the epoch's statistics.

DDP: SpeechBrain's ``Brain`` converts every BatchNorm to SyncBatchNorm,
which only runs on CUDA. :meth:`SpeakerBrain._wrap_distributed` converts
only on CUDA and when ``hparams.sync_batchnorm`` is true (the default);
CPU runs (gloo) keep plain BatchNorm, and the BatchNorm running statistics
are broadcast from rank 0 at the end of every training epoch so that all
ranks validate, checkpoint and finish with identical weights.

:class:`SafeCheckpointer` makes checkpoints safe against ``kill -9``: a
checkpoint counts only once all its files are written, so a run killed
while saving resumes from the previous complete checkpoint.

Helpers for the recipe: :func:`resolve_run_opts` (device and backend
defaults), :func:`run_on_main_and_share` (run preparation on rank 0 and
give every rank its result), :func:`state_digest` and
:func:`cleanup_distributed`.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time

import soundfile as sf
import speechbrain as sb
import torch
import torch.nn.functional as F
import yaml
from speechbrain.utils.checkpoints import (
    CKPT_PREFIX,
    METAFNAME,
    Checkpointer,
    ckpt_recency,
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from speechbrain.utils.distributed import (
    MainProcessContext,
    ddp_barrier,
    ddp_broadcast,
    if_main_process,
    is_distributed_initialized,
)
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)

#: File written into a checkpoint folder once all its files are saved.
COMPLETE_MARKER = "COMPLETE.json"


def _given(run_opts, key):
    """Whether a run option was given explicitly."""
    if isinstance(run_opts, dict):
        return key in run_opts
    return key in run_opts.overridden_args


def resolve_run_opts(run_opts):
    """Fills device and DDP backend defaults; call before ``ddp_init_group``.

    * no ``--device``: ``cuda:<LOCAL_RANK>`` when CUDA is available, else
      ``cpu`` (SpeechBrain 1.1 otherwise keeps modules wherever they are);
    * under ``torchrun`` with CUDA the device is ``cuda:<LOCAL_RANK>``;
    * under ``torchrun`` on the CPU the default backend ``nccl`` becomes
      ``gloo``;
    * ``--ckpt_interval_steps`` given alone switches off a
      ``ckpt_interval_minutes`` from the hparams file (SpeechBrain refuses
      both), and the other way round.

    Arguments
    ---------
    run_opts : speechbrain.utils.run_opts.RunOptions or dict
        The options from ``sb.parse_arguments``.

    Returns
    -------
    RunOptions or dict
        The options with the changes (a new object; changed options are
        marked as given so that they beat the hparams file).

    Example
    -------
    >>> opts = resolve_run_opts({"device": "cpu",
    ...                          "distributed_backend": "nccl"})
    >>> opts["device"]
    'cpu'
    """
    changes = {}
    ddp = "RANK" in os.environ and "LOCAL_RANK" in os.environ
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = run_opts.get("device")
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
        changes["device"] = device
    elif ddp and device.startswith("cuda") and device != f"cuda:{local_rank}":
        logger.warning(
            f"--device={device} replaced by cuda:{local_rank} (torchrun "
            "gives every process its own GPU)"
        )
        device = f"cuda:{local_rank}"
        changes["device"] = device
    backend = run_opts.get("distributed_backend", "nccl")
    if ddp and not device.startswith("cuda") and backend == "nccl":
        changes["distributed_backend"] = "gloo"
    steps = run_opts.get("ckpt_interval_steps", 0) or 0
    minutes = run_opts.get("ckpt_interval_minutes", 0) or 0
    if _given(run_opts, "ckpt_interval_steps") and steps > 0:
        if not _given(run_opts, "ckpt_interval_minutes"):
            changes["ckpt_interval_minutes"] = 0
    elif _given(run_opts, "ckpt_interval_minutes") and minutes > 0:
        if not _given(run_opts, "ckpt_interval_steps"):
            changes["ckpt_interval_steps"] = 0
    if isinstance(run_opts, dict):
        return {**run_opts, **changes}
    return dataclasses.replace(
        run_opts,
        **changes,
        overridden_args=set(run_opts.overridden_args) | set(changes),
    )


def run_on_main_and_share(func, *args, **kwargs):
    """Runs ``func`` on rank 0 only and returns its result on every rank.

    Unlike ``speechbrain.utils.distributed.run_on_main``, the result (which
    must be picklable) reaches every rank, and an exception on rank 0 is
    raised on every rank instead of leaving the others waiting.

    Arguments
    ---------
    func : callable
        What to run.
    *args
        Positional arguments of ``func``.
    **kwargs
        Keyword arguments of ``func``.

    Returns
    -------
    object
        What ``func`` returned on rank 0.

    Example
    -------
    >>> run_on_main_and_share(sorted, [3, 1, 2])
    [1, 2, 3]
    """
    result, error = None, None
    if if_main_process():
        try:
            # Collectives inside func become no-ops (only rank 0 runs it).
            with MainProcessContext():
                result = func(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - shared, then re-raised
            error = err
    message = None if error is None else f"{type(error).__name__}: {error}"
    result, message = ddp_broadcast((result, message))
    if error is not None:
        raise error
    if message is not None:
        raise RuntimeError(f"rank 0 failed: {message}")
    return result


def cleanup_distributed():
    """Destroys the DDP process group if there is one.

    Returns
    -------
    None

    Example
    -------
    >>> cleanup_distributed()
    """
    if is_distributed_initialized():
        torch.distributed.destroy_process_group()


def unwrap(module):
    """Returns the module inside a DDP/DataParallel wrapper (or itself).

    Arguments
    ---------
    module : torch.nn.Module
        A module, possibly wrapped.

    Returns
    -------
    torch.nn.Module
        The wrapped module.

    Example
    -------
    >>> layer = torch.nn.Linear(2, 2)
    >>> unwrap(torch.nn.DataParallel(layer)) is layer
    True
    """
    return getattr(module, "module", module)


def state_digest(module):
    """SHA-256 of a module's state dict (names, dtypes, shapes, values).

    Arguments
    ---------
    module : torch.nn.Module
        The module (wrappers are looked through).

    Returns
    -------
    str
        Hex digest; equal digests mean bit-identical parameters and
        buffers.

    Example
    -------
    >>> torch.manual_seed(0)
    <torch._C.Generator object at ...>
    >>> a = torch.nn.Linear(2, 2)
    >>> b = torch.nn.Linear(2, 2)
    >>> b.load_state_dict(a.state_dict())
    <All keys matched successfully>
    >>> state_digest(a) == state_digest(b)
    True
    """
    digest = hashlib.sha256()
    for name, value in sorted(unwrap(module).state_dict().items()):
        value = value.detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{list(value.shape)}|".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class SafeCheckpointer(Checkpointer):
    """A ``Checkpointer`` safe against kills and consistent under DDP.

    * After all files of a checkpoint are saved, rank 0 writes
      ``COMPLETE.json`` (file names and sizes) into its folder,
      atomically. A folder without that marker, or whose files no longer
      match it (a kill during saving or deletion), is not a checkpoint:
      it is never loaded, and :meth:`recover_if_possible` renames it to
      ``incomplete-<name>`` so that nothing reads it again.
    * Rank 0 alone decides which checkpoints to delete and which one to
      recover, and tells the other ranks. (SpeechBrain 1.1.2 lets every
      rank list the folder and makes one collective call per deleted
      checkpoint, so ranks that see the folder differently, e.g. while
      rank 0 is still writing, deadlock.)

    Arguments
    ---------
    *args
        As for ``speechbrain.utils.checkpoints.Checkpointer``.
    **kwargs
        As for ``speechbrain.utils.checkpoints.Checkpointer``.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> layer = torch.nn.Linear(2, 2)
    >>> ckpter = SafeCheckpointer(folder, {"layer": layer})
    >>> ckpt = ckpter.save_checkpoint()
    >>> (ckpt.path / COMPLETE_MARKER).exists()
    True
    >>> (ckpt.path / "layer.ckpt").unlink()  # as if killed while saving
    >>> ckpter.recover_if_possible() is None
    True
    """

    def save_checkpoint(self, *args, **kwargs):
        """Saves a checkpoint, then marks it complete.

        Arguments
        ---------
        *args
            As for ``Checkpointer.save_checkpoint``.
        **kwargs
            As for ``Checkpointer.save_checkpoint``.

        Returns
        -------
        Checkpoint or None
            The checkpoint on rank 0, None elsewhere.
        """
        ckpt = super().save_checkpoint(*args, **kwargs)
        if ckpt is not None:
            files = {
                p.name: p.stat().st_size
                for p in ckpt.path.iterdir()
                if p.is_file() and p.name != COMPLETE_MARKER
            }
            tmp = ckpt.path / (COMPLETE_MARKER + ".tmp")
            tmp.write_text(json.dumps({"files": files}, sort_keys=True))
            os.replace(tmp, ckpt.path / COMPLETE_MARKER)
        ddp_barrier()
        return ckpt

    def delete_checkpoints(
        self,
        *,
        num_to_keep=1,
        min_keys=None,
        max_keys=None,
        importance_keys=(ckpt_recency,),
        ckpt_predicate=None,
        verbosity=logging.INFO,
    ):
        """Deletes the least important checkpoints (decided on rank 0).

        Same selection as ``Checkpointer.delete_checkpoints``: for every
        key, the ``num_to_keep`` best checkpoints are kept; checkpoints
        lacking a key are only judged by the other keys. A folder loses
        its completeness marker before it is removed.

        Arguments
        ---------
        num_to_keep : int
            Checkpoints kept per key.
        min_keys : list of str or None
            Meta keys whose lowest values are kept.
        max_keys : list of str or None
            Meta keys whose highest values are kept.
        importance_keys : sequence of callable
            Sort keys (higher is more important).
        ckpt_predicate : callable or None
            Only checkpoints for which it is true may be deleted.
        verbosity : int
            Logging level of the deletion messages.

        Returns
        -------
        None
        """
        if num_to_keep < 0:
            raise ValueError("Number of checkpoints to keep must be >= 0")
        ddp_barrier()
        if if_main_process():
            keys = [{"min_key": key} for key in min_keys or []]
            keys += [{"max_key": key} for key in max_keys or []]
            # SpeechBrain's save_and_keep_only appends ckpt_recency to its
            # shared default list on every call: drop the repeats.
            unique = list(dict.fromkeys(importance_keys))
            keys += [{"importance_key": key} for key in unique]
            candidates, protected = set(), set()
            for key in keys:
                key["ckpt_predicate"] = ckpt_predicate
                candidates.update(self.find_checkpoints(**key))
                best = self.find_checkpoints(
                    max_num_checkpoints=num_to_keep, **key
                )
                protected.update(best)
            for ckpt in candidates - protected:
                if not Checkpointer._is_checkpoint_dir(ckpt.path):
                    continue
                (ckpt.path / COMPLETE_MARKER).unlink(missing_ok=True)
                shutil.rmtree(ckpt.path)
                logger.log(verbosity, f"Deleted checkpoint in {ckpt.path}")
        ddp_barrier()

    @staticmethod
    def is_complete(path):
        """Whether a checkpoint folder is complete (see the class).

        Arguments
        ---------
        path : pathlib.Path
            A ``CKPT+...`` folder.

        Returns
        -------
        bool
            True if the marker exists and every file it lists is there
            with its recorded size.
        """
        marker = path / COMPLETE_MARKER
        try:
            files = json.loads(marker.read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if METAFNAME not in files:
            return False
        for name, size in files.items():
            try:
                if (path / name).stat().st_size != size:
                    return False
            except OSError:
                return False
        return True

    def _list_checkpoint_dirs(self):
        """Complete checkpoint folders only."""
        return [
            d for d in super()._list_checkpoint_dirs() if self.is_complete(d)
        ]

    def quarantine_incomplete(self):
        """Renames incomplete checkpoint folders (on rank 0 only).

        Returns
        -------
        list of pathlib.Path
            The new names of the folders moved aside.
        """
        moved = []
        if not if_main_process() or not self.checkpoints_dir.is_dir():
            return moved
        for path in sorted(self.checkpoints_dir.iterdir()):
            if (
                path.is_dir()
                and path.name.startswith(CKPT_PREFIX)
                and not self.is_complete(path)
            ):
                target = path.with_name(f"incomplete-{path.name}")
                suffix = 1
                while target.exists():
                    target = path.with_name(f"incomplete{suffix}-{path.name}")
                    suffix += 1
                os.replace(path, target)
                logger.warning(
                    f"Checkpoint {path} is incomplete (interrupted while "
                    f"saving or deleting); moved to {target}"
                )
                moved.append(target)
        return moved

    def recover_if_possible(self, *args, **kwargs):
        """Moves incomplete checkpoints aside; loads the one rank 0 picks.

        Arguments
        ---------
        *args
            As for ``Checkpointer.recover_if_possible``.
        **kwargs
            As for ``Checkpointer.recover_if_possible``.

        Returns
        -------
        Checkpoint or None
            The loaded checkpoint, if any.
        """
        chosen = None
        if if_main_process():
            self.quarantine_incomplete()
            chosen = self.find_checkpoint(*args, **kwargs)
        chosen = ddp_broadcast(chosen)
        if chosen is not None:
            self.load_checkpoint(chosen)
        else:
            logger.info("Would load a checkpoint here, but none found yet.")
        return chosen


@register_checkpoint_hooks
class SpeakerBrain(sb.core.Brain):
    """Brain for speaker-embedding training with an AAM-softmax classifier.

    Expected ``modules``: ``embedding_model`` (``(wavs, lengths)`` to
    ``[B, 1, D]``) and ``classifier`` (``[B, 1, D]`` to cosine logits
    ``[B, 1, N]``). Expected ``hparams``: ``compute_cost`` (e.g.
    ``LogSoftmaxWrapper(AdditiveAngularMargin(...))``), ``train_logger``;
    optional: ``train_pipeline``, ``lr_scheduler``, ``sync_batchnorm``
    (default True), ``ckpt_num_to_keep`` (1), ``eer_trials``,
    ``eer_data_folder``, ``eer_interval`` and ``eer_max_seconds``.
    Batches carry ``sig`` (waveforms, lengths) and ``spk_id_encoded``.

    Arguments
    ---------
    *args
        As for ``speechbrain.core.Brain``.
    **kwargs
        As for ``speechbrain.core.Brain``.

    Example
    -------
    >>> from speechbrain.lobes.models.ECAPA_TDNN import Classifier
    >>> from speechbrain.nnet.losses import (
    ...     AdditiveAngularMargin, LogSoftmaxWrapper)
    >>> from speechbrain.dataio.batch import PaddedBatch
    >>> class Mean(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.lin = torch.nn.Linear(1, 3)
    ...     def forward(self, wavs, lengths=None):
    ...         return self.lin(wavs.mean(1, keepdim=True)).unsqueeze(1)
    >>> brain = SpeakerBrain(
    ...     modules={"embedding_model": Mean(),
    ...              "classifier": Classifier(3, out_neurons=2)},
    ...     hparams={"compute_cost": LogSoftmaxWrapper(
    ...         AdditiveAngularMargin(margin=0.2, scale=30))},
    ...     run_opts={"device": "cpu"})
    >>> batch = PaddedBatch([
    ...     {"sig": torch.randn(160), "spk_id_encoded": torch.tensor([0])},
    ...     {"sig": torch.randn(160), "spk_id_encoded": torch.tensor([1])}])
    >>> brain.on_stage_start(sb.Stage.TRAIN, 1)
    >>> out = brain.compute_forward(batch, sb.Stage.TRAIN)
    >>> loss = brain.compute_objectives(out, batch, sb.Stage.TRAIN)
    >>> out[0].shape, loss.dim(), brain.stage_sums[sb.Stage.TRAIN][2].item()
    (torch.Size([2, 1, 2]), 0, 2.0)
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.valid_enabled = False
        self.stage_sums = {}
        self.stage_started = {}
        self.train_stats = None
        self.last_stats = {}
        self._restored = None

    # ------------------------------------------------------------------
    # Forward and loss
    # ------------------------------------------------------------------
    def compute_forward(self, batch, stage):
        """Embeds and classifies a batch (augmented when training).

        Arguments
        ---------
        batch : speechbrain.dataio.batch.PaddedBatch
            With ``sig`` (waveforms, relative lengths).
        stage : speechbrain.Stage
            TRAIN, VALID or TEST.

        Returns
        -------
        logits : torch.Tensor
            Cosine logits ``[B, 1, N]``.
        lengths : torch.Tensor
            Relative lengths of the model input.
        """
        batch = batch.to(self.device)
        wavs, lengths = batch.sig
        pipeline = getattr(self.hparams, "train_pipeline", None)
        if stage == sb.Stage.TRAIN and pipeline is not None:
            wavs, lengths = pipeline(wavs, lengths)
        embedding_model = self.modules.embedding_model
        classifier = self.modules.classifier
        if stage != sb.Stage.TRAIN:
            # No DDP wrapper outside training: its first forward after
            # training broadcasts buffers, a collective that would hang if
            # the ranks ran different numbers of validation batches.
            embedding_model, classifier = (
                unwrap(embedding_model),
                unwrap(classifier),
            )
        embeddings = embedding_model(wavs, lengths)
        return classifier(embeddings), lengths

    def compute_objectives(self, predictions, batch, stage):
        """AAM-softmax loss; accumulates loss and accuracy sums.

        Training accuracy is that of the margin-applied logits (as the
        official trainer reports it); validation and test accuracy that of
        the plain cosine logits (speaker identification).

        Arguments
        ---------
        predictions : tuple
            ``(logits, lengths)`` from :meth:`compute_forward`.
        batch : speechbrain.dataio.batch.PaddedBatch
            With ``spk_id_encoded``.
        stage : speechbrain.Stage
            TRAIN, VALID or TEST.

        Returns
        -------
        torch.Tensor
            The mean loss of the batch.
        """
        logits, lengths = predictions
        labels = batch.spk_id_encoded.data.to(logits.device)
        loss = self.hparams.compute_cost(logits, labels, lengths)
        with torch.no_grad():
            target = labels.reshape(-1).long()
            scores = logits.squeeze(1).float()
            margin_fn = getattr(self.hparams.compute_cost, "loss_fn", None)
            if stage == sb.Stage.TRAIN and margin_fn is not None:
                one_hot = F.one_hot(target, scores.shape[1]).float()
                scores = margin_fn(scores, one_hot)
            correct = (scores.argmax(dim=1) == target).sum()
            sums = self.stage_sums.get(stage)
            if sums is not None:
                sums += torch.stack(
                    [
                        loss.detach().double() * target.numel(),
                        correct.double(),
                        torch.tensor(
                            float(target.numel()),
                            dtype=torch.float64,
                            device=sums.device,
                        ),
                    ]
                ).to(sums.device)
        return loss

    def on_fit_batch_start(self, batch, should_step):
        """Sets the LR of the coming optimiser step (per-iteration schedule).

        Arguments
        ---------
        batch : PaddedBatch
            The batch (unused).
        should_step : bool
            Whether this batch ends with an optimiser step.

        Returns
        -------
        None
        """
        scheduler = getattr(self.hparams, "lr_scheduler", None)
        if should_step and scheduler is not None:
            scheduler(self.optimizer)

    # ------------------------------------------------------------------
    # Stages, logging and checkpoints
    # ------------------------------------------------------------------
    def fit(self, epoch_counter, train_set, valid_set=None, **kwargs):
        """``Brain.fit``, remembering whether there is validation.

        Arguments
        ---------
        epoch_counter : iterable
            Yields epoch numbers.
        train_set : DataLoader or Dataset
            Training data.
        valid_set : DataLoader or Dataset or None
            Validation data.
        **kwargs
            Passed to ``Brain.fit``.

        Returns
        -------
        None
        """
        self.valid_enabled = valid_set is not None
        return super().fit(epoch_counter, train_set, valid_set, **kwargs)

    def on_stage_start(self, stage, epoch=None):
        """Resets (or restores, after an intra-epoch resume) the sums.

        Arguments
        ---------
        stage : speechbrain.Stage
            The stage starting.
        epoch : int or None
            The epoch.

        Returns
        -------
        None
        """
        device = torch.device(self.device)
        sums = torch.zeros(3, dtype=torch.float64, device=device)
        elapsed = 0.0
        if stage == sb.Stage.TRAIN and self._restored is not None:
            sums += torch.tensor(self._restored["sums"], dtype=torch.float64)
            elapsed = self._restored["elapsed"]
            self._restored = None
        self.stage_sums[stage] = sums
        self.stage_started[stage] = time.time() - elapsed

    def _reduced_stats(self, stage):
        """Loss, accuracy and count of a stage, summed over DDP ranks."""
        sums = self.stage_sums[stage].clone()
        if is_distributed_initialized():
            torch.distributed.all_reduce(sums)
        loss_sum, correct, count = sums.tolist()
        count = max(count, 1.0)
        return {
            "loss": loss_sum / count,
            "acc": correct / count,
            "n": int(count),
        }

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs the epoch, validates and checkpoints.

        Arguments
        ---------
        stage : speechbrain.Stage
            The stage ending.
        stage_loss : float
            SpeechBrain's running average of the loss (unused: the sums
            are exact and reduced over ranks).
        epoch : int or None
            The epoch.

        Returns
        -------
        None
        """
        stats = self._reduced_stats(stage)
        minutes = (time.time() - self.stage_started[stage]) / 60.0
        if stage == sb.Stage.TRAIN:
            self.sync_buffers()
            self.train_stats = {
                "loss": stats["loss"],
                "acc": stats["acc"],
                "minutes": minutes,
            }
            if not self.valid_enabled:
                self._end_of_epoch(epoch, None)
            return
        result = {
            "loss": stats["loss"],
            "error_rate": 1.0 - stats["acc"],
            "minutes": minutes,
        }
        if stage == sb.Stage.VALID:
            eer = self._maybe_trial_eer(epoch)
            if eer is not None:
                result["eer"] = eer
            self._end_of_epoch(epoch, result)
        else:
            self.last_stats[stage] = result
            if hasattr(self.hparams, "train_logger"):
                self.hparams.train_logger.log_stats(
                    {"Epoch loaded": self.hparams.epoch_counter.current},
                    test_stats=result,
                )

    def current_lr(self):
        """The LR of the first parameter group (0.0 before training).

        Returns
        -------
        float
            The learning rate.
        """
        optimizer = getattr(self, "optimizer", None)
        if optimizer is None:
            return 0.0
        return float(optimizer.param_groups[0]["lr"])

    def _end_of_epoch(self, epoch, valid_stats):
        """Writes the train log line and the end-of-epoch checkpoint."""
        self.last_stats[sb.Stage.VALID] = valid_stats
        meta = {"epoch": int(epoch)}
        if self.train_stats is not None:
            meta["train_loss"] = float(self.train_stats["loss"])
        if valid_stats is not None:
            meta["error_rate"] = float(valid_stats["error_rate"])
        if hasattr(self.hparams, "train_logger"):
            self.hparams.train_logger.log_stats(
                stats_meta={
                    "epoch": int(epoch),
                    "lr": self.current_lr(),
                    "steps": int(self.optimizer_step),
                },
                train_stats=self.train_stats,
                valid_stats=valid_stats,
            )
        if self.checkpointer is not None:
            self.checkpointer.save_and_keep_only(
                meta=meta,
                min_keys=["error_rate"] if valid_stats is not None else [],
                importance_keys=[],
                num_to_keep=int(getattr(self.hparams, "ckpt_num_to_keep", 1)),
            )

    def sync_buffers(self):
        """Copies rank 0's buffers (BatchNorm statistics) to all ranks.

        Without SyncBatchNorm every rank updates its running statistics
        with its own batches; DDP broadcasts them before every training
        forward, so after the epoch's last batch they differ slightly.

        Returns
        -------
        None
        """
        if not is_distributed_initialized():
            return
        for module in self.modules.values():
            for buffer in unwrap(module).buffers():
                torch.distributed.broadcast(buffer, src=0)

    # ------------------------------------------------------------------
    # Optional EER on a trial list
    # ------------------------------------------------------------------
    def _maybe_trial_eer(self, epoch):
        """EER on ``hparams.eer_trials`` every ``eer_interval`` epochs."""
        trials = getattr(self.hparams, "eer_trials", None)
        interval = int(getattr(self.hparams, "eer_interval", 0) or 0)
        if not trials or interval <= 0 or epoch is None or epoch % interval:
            return None
        eer = None
        if if_main_process():
            with MainProcessContext():
                eer = self.trial_eer(
                    trials,
                    getattr(self.hparams, "eer_data_folder", None),
                    getattr(self.hparams, "eer_max_seconds", None),
                )
        return ddp_broadcast(eer)

    @torch.no_grad()
    def trial_eer(self, trial_file, data_folder=None, max_seconds=None):
        """EER of cosine scoring on a trial list, with the current model.

        Embeddings are computed one utterance at a time (full length, or a
        centre crop of ``max_seconds``) with the unwrapped model in eval
        mode, so this may run on one rank only.

        Arguments
        ---------
        trial_file : str
            Lines ``label enrol_path test_path``.
        data_folder : str or None
            Root of relative paths in the list.
        max_seconds : float or None
            Longest audio used per utterance.

        Returns
        -------
        float
            The EER, in [0, 1].
        """
        from speechbrain_ext.data.crops import read_crop
        from speechbrain_ext.scoring.metrics import compute_eer
        from speechbrain_ext.scoring.trials import read_trials

        trials = read_trials(trial_file)
        rate = int(getattr(self.hparams, "sample_rate", 16000))
        model = unwrap(self.modules.embedding_model)
        was_training = model.training
        model.eval()
        embeddings = {}
        try:
            for utt in trials.utterances():
                path = utt
                if data_folder and not os.path.isabs(utt):
                    path = os.path.join(data_folder, utt)
                n = sf.info(path).frames
                if max_seconds:
                    n = min(n, int(round(max_seconds * rate)))
                wav = torch.as_tensor(read_crop(path, n), device=self.device)
                with self.evaluation_ctx:
                    emb = model(wav[None], torch.ones(1, device=self.device))
                embeddings[utt] = F.normalize(emb.float().reshape(-1), dim=0)
        finally:
            model.train(was_training)
        scores = torch.stack(
            [
                torch.dot(embeddings[e], embeddings[t])
                for e, t in zip(trials.enrol, trials.test, strict=True)
            ]
        ).cpu()
        labels = torch.as_tensor(trials.labels)
        eer, _ = compute_eer(
            scores[labels == 1].numpy(), scores[labels == 0].numpy()
        )
        return float(eer)

    # ------------------------------------------------------------------
    # DDP
    # ------------------------------------------------------------------
    def _wrap_distributed(self):
        """DDP-wraps trainable modules; SyncBatchNorm only on CUDA."""
        if not self.distributed_launch:
            return super()._wrap_distributed()
        on_cuda = str(self.device).startswith("cuda")
        use_sync = on_cuda and bool(
            getattr(self.hparams, "sync_batchnorm", True)
        )
        for name, module in self.modules.items():
            if not any(p.requires_grad for p in module.parameters()):
                continue
            if use_sync:
                module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
            module = torch.nn.parallel.DistributedDataParallel(
                module,
                device_ids=[self.device] if on_cuda else None,
                find_unused_parameters=self.find_unused_parameters,
            )
            self.modules[name] = module

    def weight_digests(self):
        """State digests of every module (see :func:`state_digest`).

        Returns
        -------
        dict
            Module name to hex digest.
        """
        return {name: state_digest(m) for name, m in self.modules.items()}

    # ------------------------------------------------------------------
    # Checkpoint hooks (replace Brain's; same fields plus epoch sums)
    # ------------------------------------------------------------------
    @mark_as_saver
    def _save(self, path):
        sums = self.stage_sums.get(sb.Stage.TRAIN)
        started = self.stage_started.get(sb.Stage.TRAIN)
        state = {
            "step": int(self.step),
            "avg_train_loss": float(self.avg_train_loss),
            "optimizer_step": int(self.optimizer_step),
            "train_sums": [0.0, 0.0, 0.0] if sums is None else sums.tolist(),
            "train_elapsed": 0.0 if started is None else time.time() - started,
        }
        with open(path, "w", encoding="utf-8") as f:
            f.write(yaml.safe_dump(state))

    @mark_as_loader
    def _recover(self, path, end_of_epoch):
        with open(path, encoding="utf-8") as f:
            state = yaml.safe_load(f)
        self.step = int(state["step"])
        self.avg_train_loss = float(state["avg_train_loss"])
        self.optimizer_step = int(state.get("optimizer_step", self.step))
        self._restored = None
        if not end_of_epoch:
            # Other ranks' partial sums were not saved; rank 0 restores
            # its own so that the epoch's logged means stay unbiased.
            sums = [0.0, 0.0, 0.0]
            if if_main_process():
                sums = state.get("train_sums", sums)
            self._restored = {
                "sums": sums,
                "elapsed": float(state.get("train_elapsed", 0.0)),
            }
