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
  then, when there is a held-out set, the validation loss and speaker-ID
  error (all reduced over DDP ranks), and optionally the EER and minDCF
  (official definitions) on a trial list every few epochs, logged as
  ``test`` values (the official run scores VoxCeleb1-O every epoch);
* it checkpoints at the end of every epoch (keeping the most recent and
  the lowest validation error) and SpeechBrain's intra-epoch checkpoints
  resume exactly: the ``brain`` recoverable also holds the running sums of
  the epoch's statistics.

The fault handling, the exact per-stage sums, the DDP wrapping and the
checkpoint hooks come from
:class:`~speechbrain_ext.training.fault_tolerant_brain.FaultTolerantBrain`.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import time

import speechbrain as sb
import torch
import torch.nn.functional as F
from speechbrain.utils.distributed import (
    MainProcessContext,
    ddp_broadcast,
    if_main_process,
)
from speechbrain.utils.logger import get_logger

from speechbrain_ext.training.digests import unwrap
from speechbrain_ext.training.fault_tolerant_brain import FaultTolerantBrain
from speechbrain_ext.training.trial_eer import trial_eer

logger = get_logger(__name__)

class SpeakerBrain(FaultTolerantBrain):
    """Brain for speaker-embedding training with an AAM-softmax classifier.

    Expected ``modules``: ``embedding_model`` (``(wavs, lengths)`` to
    ``[B, 1, D]``) and ``classifier`` (``[B, 1, D]`` to cosine logits
    ``[B, 1, N]``). Expected ``hparams``: ``compute_cost`` (e.g.
    ``LogSoftmaxWrapper(AdditiveAngularMargin(...))``), ``train_logger``;
    optional: ``train_pipeline``, ``lr_scheduler``, ``sync_batchnorm``
    (default True), ``ckpt_num_to_keep`` (1), ``eer_trials``,
    ``eer_data_folder``, ``eer_interval``, ``eer_max_seconds``,
    ``max_bad_file_fraction`` (0.01), ``bad_file_min_files`` (500) and
    ``allow_paths_outside_data_folder`` (False). Batches carry ``sig``
    (waveforms, lengths) and ``spk_id_encoded``, and, from
    :class:`~speechbrain_ext.data.safe_audio.FaultTolerantCollate`, the
    bad files met (``bad_files``, ``files_read``).

    Faults (counted per epoch, logged in the train log as
    ``skipped_files`` and ``skipped_steps``):

    * bad audio files are counted and named in warnings;
      :class:`~speechbrain_ext.data.safe_audio.TooManyBadFilesError`
      stops the run when more than ``max_bad_file_fraction`` of the files
      read in the epoch are bad;
    * an optimiser step whose gradients (after the DDP all-reduce, so all
      ranks agree) are not finite is skipped: no update, no LR-schedule
      step, and the BatchNorm statistics of its forward pass are undone.
      More than ``--nonfinite_patience`` (3) such steps in an epoch stop
      the run. This replaces SpeechBrain's loss check, which lets a
      non-finite step through and poisons the weights unless
      ``--skip_nonfinite_grads`` is given.

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
                values = torch.stack(
                    [
                        loss.detach().double() * target.numel(),
                        correct.double(),
                        torch.tensor(
                            float(target.numel()),
                            dtype=torch.float64,
                            device=loss.device,
                        ),
                    ]
                )
                # A non-finite batch (its step is skipped) is left out.
                values = torch.where(
                    torch.isfinite(loss.detach()),
                    values,
                    torch.zeros_like(values),
                )
                sums += values.to(sums.device)
        return loss


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
        if stats["skipped_files"] or stats["skipped_steps"]:
            logger.warning(
                f"Epoch {epoch} ({stage.name.lower()}): skipped "
                f"{stats['skipped_files']} bad audio file(s) of the "
                f"{stats['files_read']} read and {stats['skipped_steps']} "
                "optimiser step(s)"
            )
        if stage == sb.Stage.TRAIN:
            self.sync_buffers()
            self.train_stats = {
                "loss": stats["loss"],
                "acc": stats["acc"],
                "minutes": minutes,
                "skipped_files": stats["skipped_files"],
                "skipped_steps": stats["skipped_steps"],
            }
            if not self.valid_enabled:
                self._end_of_epoch(epoch, None, self._maybe_trial_eer(epoch))
            return
        result = {
            "loss": stats["loss"],
            "error_rate": 1.0 - stats["acc"],
            "minutes": minutes,
            "skipped_files": stats["skipped_files"],
        }
        if stage == sb.Stage.VALID:
            self._end_of_epoch(epoch, result, self._maybe_trial_eer(epoch))
        else:
            self.last_stats[stage] = result
            if hasattr(self.hparams, "train_logger"):
                self.hparams.train_logger.log_stats(
                    {"Epoch loaded": self.hparams.epoch_counter.current},
                    test_stats=result,
                )


    def _end_of_epoch(self, epoch, valid_stats, trial_stats=None):
        """Writes the train log line and the end-of-epoch checkpoint.

        ``trial_stats`` (the EER monitoring) go to the log as ``test``
        values: they are scores on a test list, not on held-out training
        data, and only ``valid_stats`` (held-out) rank the checkpoints.
        """
        self.last_stats[sb.Stage.VALID] = valid_stats
        meta = {"epoch": int(epoch)}
        if self.train_stats is not None:
            meta["train_loss"] = float(self.train_stats["loss"])
        if valid_stats is not None:
            meta["error_rate"] = float(valid_stats["error_rate"])
        if trial_stats is not None:
            meta["trials_eer"] = float(trial_stats["eer"])
        if hasattr(self.hparams, "train_logger"):
            self.hparams.train_logger.log_stats(
                stats_meta={
                    "epoch": int(epoch),
                    "lr": self.current_lr(),
                    "steps": int(self.optimizer_step),
                },
                train_stats=self.train_stats,
                valid_stats=valid_stats,
                test_stats=trial_stats,
            )
        if self.checkpointer is not None:
            self.checkpointer.save_and_keep_only(
                meta=meta,
                min_keys=["error_rate"] if valid_stats is not None else [],
                importance_keys=[],
                num_to_keep=int(getattr(self.hparams, "ckpt_num_to_keep", 1)),
            )


    # ------------------------------------------------------------------
    # Optional EER on a trial list
    # ------------------------------------------------------------------
    def _maybe_trial_eer(self, epoch):
        """EER and minDCF on ``hparams.eer_trials`` every ``eer_interval``.

        Returns None, or ``{"eer": ..., "min_dcf": ...}`` (official
        definitions; minDCF at P_target 0.05) on every rank.
        """
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

    def trial_eer(self, trial_file, data_folder=None, max_seconds=None):
        """EER of cosine scoring on a trial list, with the current model.

        See :func:`~speechbrain_ext.training.trial_eer.trial_eer`; the
        unwrapped embedding model is used in eval mode (so this may run on
        one rank only), under the evaluation precision.

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
        dict or None
            ``eer`` and ``min_dcf`` (P_target 0.05), or None.
        """
        return trial_eer(
            unwrap(self.modules.embedding_model),
            trial_file,
            data_folder=data_folder,
            max_seconds=max_seconds,
            sample_rate=int(getattr(self.hparams, "sample_rate", 16000)),
            allow_outside=bool(
                getattr(self.hparams, "allow_paths_outside_data_folder", False)
            ),
            device=self.device,
            context=self.evaluation_ctx,
        )
