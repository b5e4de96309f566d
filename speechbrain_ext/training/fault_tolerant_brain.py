"""A SpeechBrain ``Brain`` that survives bad files, bad steps and kills.

:class:`FaultTolerantBrain` is generic (nothing speaker-specific); the
training recipe's ``SpeakerBrain`` adds the forward pass, the loss and
the end-of-stage logging. It provides:

* per-stage sums (``stage_sums[stage]``: loss x items, correct, items),
  reduced over DDP ranks by :meth:`FaultTolerantBrain._reduced_stats`, and
  saved in intra-epoch checkpoints so that a resumed epoch logs exact
  means;
* bad audio files reported by the data loaders
  (:mod:`speechbrain_ext.data.safe_audio`) counted per epoch, named in
  warnings, stopping the run beyond ``max_bad_file_fraction``;
* an optimiser step with non-finite gradients (after the DDP all-reduce,
  so all ranks agree) skipped without a trace: weights, optimiser state,
  LR schedule (``hparams.lr_scheduler``, called before every step taken)
  and BatchNorm statistics; more than ``--nonfinite_patience`` such steps
  in an epoch stop the run;
* DDP: SpeechBrain's ``Brain`` converts every BatchNorm to SyncBatchNorm,
  which only runs on CUDA; here it is converted only on CUDA and when
  ``hparams.sync_batchnorm`` is true (the default). CPU runs (gloo) keep
  plain BatchNorm, and :meth:`FaultTolerantBrain.sync_buffers` broadcasts
  rank 0's buffers so that all ranks finish with identical weights;
* resumes marked in the train log
  (:func:`~speechbrain_ext.training.train_log.mark_resume`).

The tests inject faults from outside (``tests/fault_injection.py`` wraps
this class); nothing here reads a fault-injection setting.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import time

import speechbrain as sb
import torch
import yaml
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from speechbrain.utils.distributed import (
    if_main_process,
    is_distributed_initialized,
)
from speechbrain.utils.logger import get_logger

from speechbrain_ext.data.safe_audio import BadFileTracker
from speechbrain_ext.training.digests import module_digest, unwrap
from speechbrain_ext.training.train_log import mark_resume

logger = get_logger(__name__)

@register_checkpoint_hooks
class FaultTolerantBrain(sb.core.Brain):
    """``Brain`` with fault-tolerant steps, exact stage sums and safe DDP.

    Subclasses implement ``compute_forward`` and ``compute_objectives``
    (adding to ``self.stage_sums[stage]``, a float64 tensor of [loss x
    items, correct, items], for the batches whose loss is finite) and
    ``on_stage_end`` (reading :meth:`_reduced_stats`). Optional
    ``hparams``: ``lr_scheduler``, ``sync_batchnorm`` (default True),
    ``max_bad_file_fraction`` (0.01), ``bad_file_min_files`` (500),
    ``train_logger``, ``epoch_counter``. Batches may carry, from
    :class:`~speechbrain_ext.data.safe_audio.FaultTolerantCollate`, the
    bad files met (``bad_files``, ``files_read``).

    Arguments
    ---------
    *args
        As for ``speechbrain.core.Brain``.
    **kwargs
        As for ``speechbrain.core.Brain``.

    Example
    -------
    >>> brain = FaultTolerantBrain(
    ...     modules={"lin": torch.nn.Linear(2, 2)}, hparams={},
    ...     run_opts={"device": "cpu"})
    >>> brain.on_stage_start(sb.Stage.TRAIN, 1)
    >>> brain.stage_sums[sb.Stage.TRAIN].tolist()
    [0.0, 0.0, 0.0]
    >>> brain._reduced_stats(sb.Stage.TRAIN)["skipped_steps"]
    0
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.valid_enabled = False
        self.stage_sums = {}
        self.stage_started = {}
        self.bad_files = {}
        self.skipped_steps = 0
        self.nonfinite_count = 0
        self.train_stats = None
        self.last_stats = {}
        self._restored = None
        self._epoch = None
        self._buffer_snapshot = None


    # ------------------------------------------------------------------
    # Fault-tolerant training steps
    # ------------------------------------------------------------------
    def _account_files(self, batch, stage):
        """Adds a batch's bad files to the stage's tracker (may raise)."""
        bad = getattr(batch, "bad_files", None)
        tracker = self.bad_files.get(stage)
        if bad is None or tracker is None:
            return
        tracker.update(bad, getattr(batch, "files_read", len(batch)))

    def fit_batch(self, batch):
        """Trains on a batch; skips batches left without usable audio.

        Arguments
        ---------
        batch : PaddedBatch or EmptyBatch
            From the training loader.

        Returns
        -------
        torch.Tensor
            The detached loss (NaN for a skipped batch).
        """
        self._account_files(batch, sb.Stage.TRAIN)
        if len(batch) == 0 or (getattr(batch, "dropped", 0) and len(batch) < 2):
            return self._skip_batch_without_audio(batch)
        if (self.step - 1) % self.grad_accumulation_factor == 0:
            # Buffers (BatchNorm statistics) before this step's forwards.
            self._buffer_snapshot = [
                (b, b.detach().clone()) for b in self.modules.buffers()
            ]
        return super().fit_batch(batch)

    def _skip_batch_without_audio(self, batch):
        """Skips a batch whose items were (nearly) all dropped."""
        message = (
            f"too little usable audio in training batch {self.step} of "
            f"epoch {self._epoch}: {len(batch)} item(s) left, "
            f"{getattr(batch, 'dropped', 0)} dropped (no readable file of "
            "their speaker)"
        )
        if self.distributed_launch:
            # The other ranks would wait for this one's gradients.
            raise RuntimeError(message + " (cannot skip a step under DDP)")
        logger.warning(message + "; batch skipped")
        self.skipped_steps += 1
        return torch.tensor(float("nan"))

    def check_loss_isfinite(self, loss):
        """Does nothing: non-finite steps are caught on the gradients.

        SpeechBrain's check counts a non-finite loss before ``backward``
        but still applies the step. :meth:`optimizers_step` instead checks
        the gradients after the DDP all-reduce (the same on every rank)
        and skips the step.

        Arguments
        ---------
        loss : torch.Tensor
            The scaled loss (unused).

        Returns
        -------
        None
        """
        del loss

    def _gradients_finite(self):
        """Whether every gradient is finite (one device sync)."""
        flags = [
            torch.isfinite(p.grad).all()
            for p in self.modules.parameters()
            if p.grad is not None
        ]
        return not flags or bool(torch.stack(flags).all())

    def optimizers_step(self):
        """Steps the optimiser, or skips the step if gradients are not finite.

        As ``Brain.optimizers_step`` (unscale, clip, step, zero the
        gradients), plus the per-iteration LR schedule
        (``hparams.lr_scheduler``, called only for steps that are taken),
        and the non-finite handling described in the class docstring.

        Returns
        -------
        None
        """
        if self.optimizers_dict is not None:
            optimizers = self.freeze_optimizers(self.optimizers_dict)
        elif self.opt_class is not None:
            optimizers = {"optimizer": self.optimizer}
        else:
            return
        for opt in optimizers.values():
            self.scaler.unscale_(opt)
        if not self._gradients_finite():
            self._skip_nonfinite_step(optimizers)
            return
        scheduler = getattr(self.hparams, "lr_scheduler", None)
        if scheduler is not None:
            scheduler(self.optimizer)
        for opt in optimizers.values():
            torch.nn.utils.clip_grad_norm_(
                opt.param_groups[0]["params"], self.max_grad_norm
            )
        for opt in optimizers.values():
            self.scaler.step(opt)
        self.scaler.update()
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        self.optimizer_step += 1

    def _skip_nonfinite_step(self, optimizers):
        """Drops the gradients and BatchNorm updates of a bad step."""
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        if self._buffer_snapshot is not None:
            with torch.no_grad():
                for buffer, saved in self._buffer_snapshot:
                    buffer.copy_(saved)
        if self.scaler.is_enabled():
            # fp16: lowers the loss scale; overflows are routine there.
            self.scaler.update()
            logger.info(
                f"Skipped the optimiser step after batch {self.step} of "
                f"epoch {self._epoch}: non-finite gradients (fp16)"
            )
            return
        self.skipped_steps += 1
        self.nonfinite_count += 1
        logger.warning(
            f"Skipped the optimiser step after batch {self.step} of epoch "
            f"{self._epoch}: non-finite loss or gradients "
            f"({self.nonfinite_count} this epoch, --nonfinite_patience="
            f"{self.nonfinite_patience}); weights and BatchNorm statistics "
            "left unchanged"
        )
        if self.nonfinite_count > self.nonfinite_patience:
            raise ValueError(
                f"{self.nonfinite_count} optimiser steps of epoch "
                f"{self._epoch} had non-finite loss or gradients, more than "
                f"--nonfinite_patience={self.nonfinite_patience}. The last "
                "checkpoint holds finite weights; check the data (NaN "
                "audio), lower the learning rate, or debug with "
                "torch.autograd.detect_anomaly()."
            )

    @torch.no_grad()
    def evaluate_batch(self, batch, stage):
        """Evaluates a batch; a batch without usable audio is skipped.

        Arguments
        ---------
        batch : PaddedBatch or EmptyBatch
            From the validation loader.
        stage : speechbrain.Stage
            VALID or TEST.

        Returns
        -------
        torch.Tensor
            The detached loss (NaN for a skipped batch, which SpeechBrain
            leaves out of its running average).
        """
        self._account_files(batch, stage)
        if len(batch) == 0:
            return torch.tensor(float("nan"))
        return super().evaluate_batch(batch, stage)

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

    def on_fit_start(self):
        """``Brain.on_fit_start``; then marks a resume in the train log.

        The train-log lines of epochs that are redone (logged before an
        interruption, but not checkpointed) become comments, and a comment
        names the checkpoint resumed from
        (:func:`~speechbrain_ext.training.train_log.mark_resume`).

        Returns
        -------
        None
        """
        super().on_fit_start()
        logger_ = getattr(self.hparams, "train_logger", None)
        log_file = getattr(logger_, "save_file", None)
        if log_file is None or not if_main_process():
            return
        ckpt = getattr(self.checkpointer, "last_recovered", None)
        counter = getattr(self.hparams, "epoch_counter", None)
        epoch = int(getattr(counter, "current", 0)) if ckpt else 0
        end_of_epoch = bool(ckpt.meta.get("end-of-epoch")) if ckpt else True
        if not end_of_epoch:
            # EpochCounter restores "epoch - 1" to repeat the epoch saved in.
            epoch += 1
        limit = getattr(counter, "limit", None)
        mark_resume(
            log_file,
            epoch=epoch,
            end_of_epoch=end_of_epoch,
            checkpoint=ckpt.path.name if ckpt else None,
            step=int(self.optimizer_step),
            finished=end_of_epoch and limit is not None and epoch >= limit,
        )

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
        tracker = BadFileTracker(
            max_fraction=getattr(self.hparams, "max_bad_file_fraction", 0.01),
            min_files=getattr(self.hparams, "bad_file_min_files", 500),
            what="training" if stage == sb.Stage.TRAIN else "evaluation",
        )
        if stage == sb.Stage.TRAIN:
            self._epoch = epoch
            self.skipped_steps = 0
            self._buffer_snapshot = None
        if stage == sb.Stage.TRAIN and self._restored is not None:
            sums += torch.tensor(self._restored["sums"], dtype=torch.float64)
            elapsed = self._restored["elapsed"]
            bad, files, skipped = self._restored["faults"]
            tracker.reset(bad=bad, files=files)
            self.skipped_steps = int(skipped)
            self._restored = None
        self.stage_sums[stage] = sums
        self.bad_files[stage] = tracker
        self.stage_started[stage] = time.time() - elapsed

    def _fault_counts(self, stage):
        """This rank's [bad files, files read, skipped steps] of a stage."""
        tracker = self.bad_files.get(stage)
        bad = tracker.bad if tracker is not None else 0
        files = tracker.files if tracker is not None else 0
        skipped = self.skipped_steps if stage == sb.Stage.TRAIN else 0
        return [float(bad), float(files), float(skipped)]

    def _reduced_stats(self, stage):
        """Loss, accuracy, count and faults of a stage, summed over ranks."""
        sums = self.stage_sums[stage]
        counts = torch.tensor(
            self._fault_counts(stage), dtype=torch.float64, device=sums.device
        )
        sums = torch.cat([sums, counts])
        if is_distributed_initialized():
            torch.distributed.all_reduce(sums)
        loss_sum, correct, count, bad, files, skipped = sums.tolist()
        count = max(count, 1.0)
        return {
            "loss": loss_sum / count,
            "acc": correct / count,
            "n": int(count),
            "skipped_files": int(bad),
            "files_read": int(files),
            "skipped_steps": int(skipped),
        }


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
            synced = sum(
                isinstance(m, torch.nn.SyncBatchNorm) for m in module.modules()
            )
            logger.info(
                f"DDP: {name} on {torch.distributed.get_backend()}, "
                f"{torch.distributed.get_world_size()} process(es), "
                f"{synced} SyncBatchNorm layer(s)"
            )
            module = torch.nn.parallel.DistributedDataParallel(
                module,
                device_ids=[self.device] if on_cuda else None,
                find_unused_parameters=self.find_unused_parameters,
            )
            self.modules[name] = module

    def weight_digests(self):
        """State digests of every module (see
        :func:`~speechbrain_ext.training.digests.module_digest`).

        Returns
        -------
        dict
            Module name to hex digest.
        """
        return {name: module_digest(m) for name, m in self.modules.items()}

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
            "train_faults": self._fault_counts(sb.Stage.TRAIN),
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
            counts = [0.0, 0.0, 0.0]
            if if_main_process():
                sums = state.get("train_sums", sums)
                counts = state.get("train_faults", counts)
            self._restored = {
                "sums": sums,
                "elapsed": float(state.get("train_elapsed", 0.0)),
                "faults": counts,
            }
