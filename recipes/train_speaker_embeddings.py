#!/usr/bin/env python3
"""Recipe: train MR-RawNet speaker embeddings the SpeechBrain way.

One GPU (or the CPU, for tiny runs)::

    python recipes/train_speaker_embeddings.py hparams/mr_rawnet.yaml \\
        --data_folder=/data/voxceleb2,/data/voxceleb1 \\
        --musan_folder=/data/musan --rir_folder=/data/RIRS_NOISES

Several GPUs (DDP; add ``--nnodes``, ``--node_rank`` and ``--master_addr``
for several machines)::

    torchrun --nproc_per_node=4 recipes/train_speaker_embeddings.py \\
        hparams/mr_rawnet.yaml --data_folder=... --musan_folder=... \\
        --rir_folder=...

Any hparam can be overridden (``--batch_size=32``, ``--augment=False``,
``--number_of_epochs=2``), and SpeechBrain's run options work
(``--precision=bf16``, ``--ckpt_interval_minutes=30``, ``--device=cpu``).
Rerunning the same command after an interruption resumes from the last
checkpoint (same epoch, step, LR, sampler position and optimiser state).

Faults (see ``tests/integration/test_training_faults.py``):

* ``kill -9`` at any moment, even while a checkpoint is being written:
  rerun the same command. A checkpoint counts only once all its files
  are written; a half-written one is moved aside (``incomplete-CKPT+...``)
  and the run resumes from the previous complete one.
* A process of a DDP run dies: let ``torchrun`` restart the group, which
  then resumes from the last checkpoint by itself::

    torchrun --nproc_per_node=4 --max-restarts=3 \\
        recipes/train_speaker_embeddings.py hparams/mr_rawnet.yaml ...

  With ``--max-restarts=N`` torchrun stops every process when one fails
  and starts them all again, up to N times; save intra-epoch checkpoints
  often enough (``--ckpt_interval_minutes``) that little is redone. This
  works on several nodes too, with no extra setting (see
  ``init_distributed`` in ``speechbrain_ext/training/distributed.py``).
* Bad audio (unreadable, truncated, empty, wrong sample rate, NaN/Inf
  samples) found while training is skipped: a warning names the file,
  the item is replaced by another utterance of the same speaker, and the
  train log counts ``skipped_files`` per epoch. The run stops with an
  error listing files when more than ``max_bad_file_fraction`` of the
  files read in an epoch are bad (``--max_bad_file_fraction=0``: stop at
  the first one).
* A step with non-finite loss or gradients is skipped (no update, LR
  schedule and BatchNorm statistics unchanged) and counted as
  ``skipped_steps``; more than ``--nonfinite_patience`` (3) in one epoch
  stop the run.
* CSV paths must lie in ``--data_folder`` (``..`` escapes and absolute
  paths elsewhere are refused) unless
  ``--allow_paths_outside_data_folder=True``. Checkpoint files are loaded
  with ``torch.load(weights_only=True)``: a file that is not plain
  weights is refused, never unpickled.

Steps: find the trial lists whose speakers are left out (a missing one is
an error), prepare the CSVs (rank 0; cached), the noise/RIR CSVs, the
label encoder (sorted speakers: class i is the i-th speaker; a count other
than ``out_n_neurons`` is an error unless ``n_neurons_from_data``), the
data loaders (speaker-balanced batches, one random crop per utterance of
its own length; centre crops for the optional held-out validation), the
LR schedule (official steps per scheduler epoch), the training pipeline
(augmentation, tiling back, speed perturbation); write what the run
trains on to ``train_log.txt`` (``protocol:`` lines); train; export the
checkpoint that ``export_checkpoint`` names (the official yaml: the last)
to ``<output_folder>/pretrained``, loadable with
``speechbrain.inference.speaker.EncoderClassifier``.

Authors
 * MR-RawNet recipe contributors
"""

import json
import os
import sys
import time

import speechbrain as sb
import torch
import torch.nn.functional as F
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.utils.distributed import (
    MainProcessContext,
    ddp_broadcast,
    if_main_process,
)
from speechbrain.utils.logger import get_logger

# The package of this checkout, even when another copy is installed.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_ROOT, "speechbrain_ext")):
    sys.path.insert(0, _ROOT)

from speechbrain_ext.augment.pipeline import TrainingPipeline  # noqa: E402
from speechbrain_ext.augment.prepare import prepare_augmentation  # noqa: E402
from speechbrain_ext.augment.speed import SpeedPerturbation  # noqa: E402
from speechbrain_ext.data.audio_read import read_checked_crop  # noqa: E402
from speechbrain_ext.data.crops import TrainingCrops  # noqa: E402
from speechbrain_ext.data.loaders import make_loaders  # noqa: E402
from speechbrain_ext.data.safe_audio import (  # noqa: E402
    resolve_csv_paths,
)
from speechbrain_ext.data.trial_lists import (  # noqa: E402
    as_list,
    find_trial_lists,
)
from speechbrain_ext.data.voxceleb_train import (  # noqa: E402
    prepare_voxceleb_train,
)
from speechbrain_ext.run_lock import FolderLock  # noqa: E402
from speechbrain_ext.training.digests import unwrap  # noqa: E402
from speechbrain_ext.training.distributed import (  # noqa: E402
    cleanup_distributed,
    init_distributed,
    resolve_run_opts,
    run_on_main_and_share,
)
from speechbrain_ext.training.export import (  # noqa: E402
    export_pretrained,
    write_model_kwargs,
)
from speechbrain_ext.training.fault_tolerant_brain import (  # noqa: E402
    FaultTolerantBrain,
)
from speechbrain_ext.training.random_state import (  # noqa: E402
    GlobalRandomState,
)
from speechbrain_ext.training.schedulers import (  # noqa: E402  # noqa: E402
    lr_steps_per_epoch,
)
from speechbrain_ext.training.speaker_classes import (  # noqa: E402
    build_label_encoder,
    check_classifier_size,
    read_speakers,
    start_from_weights,
)
from speechbrain_ext.training.train_log import log_protocol  # noqa: E402
from speechbrain_ext.training.trial_eer import trial_eer  # noqa: E402

logger = get_logger(__name__)


def resolve_trial_lists(hparams):
    """Finds the trial lists to leave out, and the monitoring list.

    Every list of ``trial_lists`` must exist (a path, or a name found in a
    data folder or its ``meta`` sub-folder): their speakers are never
    trained on. ``eer_trials: trial_lists`` monitors the first of them,
    with its audio from the data folder that holds it; an explicit
    ``eer_trials`` path is left out of training as well.

    Arguments
    ---------
    hparams : dict
        Loaded hyperparameters; ``eer_trials`` and ``eer_data_folder`` are
        replaced by the resolved list and audio folder (or None).

    Returns
    -------
    list of str
        Absolute paths of the lists whose speakers are left out.
    """
    folders = as_list(hparams["data_folder"])
    lists = find_trial_lists(as_list(hparams.get("trial_lists")), folders)
    eer = hparams.get("eer_trials")
    if eer == "trial_lists":
        first = lists[0] if lists else None
        hparams["eer_trials"] = first["path"] if first else None
        if first and not hparams.get("eer_data_folder"):
            if first["audio_folder"] is None:
                raise ValueError(
                    f"the audio of {first['path']} (eer_trials: trial_lists)"
                    " is in none of the data folders "
                    f"{hparams['data_folder']}; pass --eer_data_folder=<its "
                    "wav root> or --eer_trials=null"
                )
            hparams["eer_data_folder"] = first["audio_folder"]
    elif eer:
        (extra,) = find_trial_lists([eer], folders)
        hparams["eer_trials"] = extra["path"]
        if extra["path"] not in [t["path"] for t in lists]:
            lists.append(extra)
    return [t["path"] for t in lists]


def prepare_data(hparams, trial_lists):
    """Writes train/valid CSVs and the speaker list (rank 0, cached).

    Arguments
    ---------
    hparams : dict
        Loaded hyperparameters.
    trial_lists : list of str
        Trial lists whose speakers are left out.

    Returns
    -------
    dict
        ``train``, ``valid`` (or None) and ``speakers`` paths, and the
        preparation ``summary``.
    """
    kwargs = {
        "save_folder": hparams["save_folder"],
        "trial_lists": trial_lists,
        "valid_ratio": hparams["valid_ratio"],
        "seed": hparams["prep_seed"],
        "sample_rate": hparams["sample_rate"],
        "workers": hparams["prep_workers"],
        # Training's bad-audio policy, so a rerun never fails on one file.
        "max_bad_file_fraction": hparams["max_bad_file_fraction"],
        "bad_file_min_files": hparams["bad_file_min_files"],
    }
    if hparams["train_list"]:
        kwargs.update(
            train_list=hparams["train_list"], wav_root=hparams["data_folder"]
        )
    else:
        kwargs["data_folders"] = hparams["data_folder"]
    result = run_on_main_and_share(prepare_voxceleb_train, **kwargs)
    return {k: result[k] for k in ("train", "valid", "speakers", "summary")}


def prepare_noise(hparams):
    """Writes the MUSAN and RIR CSVs when augmentation is on (rank 0).

    Arguments
    ---------
    hparams : dict
        Loaded hyperparameters.

    Returns
    -------
    dict or None
        ``noise``, ``music``, ``speech`` and ``rirs`` CSV paths, or None
        with ``augment: False``.
    """
    if not hparams["augment"]:
        return None
    missing = [
        key for key in ("musan_folder", "rir_folder") if not hparams[key]
    ]
    if missing:
        raise ValueError(
            "augmentation needs "
            + " and ".join(f"--{k}" for k in missing)
            + " (local MUSAN / RIRS_NOISES folders; the recipe downloads "
            "nothing: `python -m speechbrain_ext.data.download musan "
            "rirs_noises <folder>` fetches both and prints the options), or "
            "switch it off with --augment=False"
        )
    return run_on_main_and_share(
        prepare_augmentation,
        hparams["augment_folder"],
        musan_folder=hparams["musan_folder"],
        rirs_folder=hparams["rir_folder"],
        rooms=list(hparams["rir_rooms"]),
        workers=hparams["prep_workers"],
    )


def dataio_prep(hparams, csvs, label_encoder):
    """Builds the training and validation datasets.

    Training items are random crops, each of its own length (the official
    loader's draw, :class:`~speechbrain_ext.data.crops.TrainingCrops`:
    ``crop_seconds``, or with probability ``p_short_crop`` one of
    ``short_crop_seconds``; files that are shorter are tiled); the
    training pipeline tiles them back to ``crop_seconds``. Validation
    items are centre crops of ``valid_crop_seconds``. Only the crop's
    frames are read from disk, and they are checked
    (:func:`~speechbrain_ext.data.audio_read.read_checked_crop`): a bad
    file raises ``BadAudioError``, which the loaders of
    :func:`make_loaders` turn into a skipped, counted file. Every CSV path
    must lie in the data folder(s) unless
    ``allow_paths_outside_data_folder``.

    Arguments
    ---------
    hparams : dict
        Loaded hyperparameters.
    csvs : dict
        ``train`` and ``valid`` CSV paths.
    label_encoder : CategoricalEncoder
        Speaker to class index.

    Returns
    -------
    tuple
        ``(train_data, valid_data)``; ``valid_data`` is None without a
        validation CSV.
    """
    rate = hparams["sample_rate"]
    valid_samples = int(round(hparams["valid_crop_seconds"] * rate))
    crops = TrainingCrops(
        full_seconds=hparams["crop_seconds"],
        p_short=hparams["p_short_crop"],
        short_seconds=hparams["short_crop_seconds"],
        sample_rate=rate,
        reader=read_checked_crop,
    )

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def train_audio(wav):
        # A seed from torch's generator, which DataLoader seeds per worker.
        seed = int(torch.randint(0, 2**31 - 1, (1,)))
        return torch.from_numpy(crops(wav, seed))

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def valid_audio(wav):
        crop = read_checked_crop(wav, valid_samples, sample_rate=rate)
        return torch.from_numpy(crop)

    @sb.utils.data_pipeline.takes("spk_id")
    @sb.utils.data_pipeline.provides("spk_id_encoded")
    def label(spk_id):
        return label_encoder.encode_label_torch(spk_id)

    allow = bool(hparams.get("allow_paths_outside_data_folder", False))
    roots = hparams["data_folder"]

    def read_csv(path):
        data = DynamicItemDataset.from_csv(path)
        outside = resolve_csv_paths(data, roots, allow, source=path)
        if outside:
            logger.warning(
                f"{path}: {outside} audio path(s) outside the data folder(s)"
                " (allowed by allow_paths_outside_data_folder)"
            )
        return data

    train_data = read_csv(csvs["train"])
    train_data.add_dynamic_item(train_audio)
    train_data.add_dynamic_item(label)
    train_data.set_output_keys(["id", "sig", "spk_id_encoded"])
    valid_data = None
    if csvs["valid"]:
        valid_data = read_csv(csvs["valid"])
        valid_data.add_dynamic_item(valid_audio)
        valid_data.add_dynamic_item(label)
        valid_data.set_output_keys(["id", "sig", "spk_id_encoded"])
    return train_data, valid_data


def build_train_pipeline(hparams, noise_csvs):
    """Augmentation, tiling back and speed-perturbation module for training.

    Arguments
    ---------
    hparams : dict
        Loaded hyperparameters.
    noise_csvs : dict or None
        From :func:`prepare_noise`.

    Returns
    -------
    TrainingPipeline
        The module.
    """
    augment = None
    if noise_csvs is not None:
        augment = hparams["wav_augment"](
            noise_csv=noise_csvs["noise"],
            music_csv=noise_csvs["music"],
            speech_csv=noise_csvs["speech"],
            rir_csv=noise_csvs["rirs"],
        )
    speed = None
    if hparams["speed_perturb"]:
        speed = SpeedPerturbation(speeds=hparams["speeds"])
    return TrainingPipeline(
        augment=augment,
        speed=speed,
        full_samples=int(
            round(hparams["crop_seconds"] * hparams["sample_rate"])
        ),
    )


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

    Faults (bad audio files, non-finite steps), the exact per-stage sums
    and the DDP wrapping come from
    :class:`~speechbrain_ext.training.fault_tolerant_brain.FaultTolerantBrain`.

    Arguments
    ---------
    *args
        As for ``speechbrain.core.Brain``.
    **kwargs
        As for ``speechbrain.core.Brain``.
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


def main(argv=None):
    """Runs the recipe.

    Arguments
    ---------
    argv : list of str or None
        Command line (default ``sys.argv[1:]``).

    Returns
    -------
    None
    """
    hparams_file, run_opts, overrides = sb.parse_arguments(
        sys.argv[1:] if argv is None else argv
    )
    run_opts = resolve_run_opts(run_opts)
    init_distributed(run_opts)
    finished = False
    try:
        with open(hparams_file, encoding="utf-8") as fin:
            hparams = load_hyperpyyaml(fin, overrides)
        # One run per output folder (rank 0 holds the lock; a second run
        # stops here, before it writes anything).
        lock = FolderLock(
            hparams["output_folder"], "training output folder",
            "--output_folder",
        )
        run_on_main_and_share(lock.acquire)
        try:
            sb.create_experiment_directory(
                experiment_directory=hparams["output_folder"],
                hyperparams_to_save=hparams_file,
                overrides=overrides,
            )
            train(hparams, run_opts)
            finished = True
        finally:
            lock.release()
    finally:
        # The checkpointer in hparams refers to the Brain and so to its DDP
        # wrappers: drop it so that cleanup frees them before the group.
        hparams = None
        cleanup_distributed(finished=finished)


def train(hparams, run_opts):
    """Prepares data, trains and exports (every rank calls this).

    Arguments
    ---------
    hparams : dict
        Loaded hyperparameters.
    run_opts : RunOptions
        SpeechBrain run options.

    Returns
    -------
    None
    """
    trial_lists = resolve_trial_lists(hparams)
    csvs = prepare_data(hparams, trial_lists)
    noise_csvs = prepare_noise(hparams)
    speakers = read_speakers(csvs["speakers"])
    label_encoder = build_label_encoder(hparams, speakers)
    check_classifier_size(hparams, len(speakers))
    run_on_main_and_share(
        write_model_kwargs, hparams["save_folder"], hparams["model_kwargs"]
    )
    init_line = start_from_weights(hparams, speakers)

    train_data, valid_data = dataio_prep(hparams, csvs, label_encoder)
    on_cuda = str(run_opts["device"]).startswith("cuda")
    if on_cuda:
        # Few input shapes: 3 s crops times three speeds, plus validation.
        torch.backends.cudnn.benchmark = True
    train_loader, sampler, valid_loader = make_loaders(
        hparams, train_data, valid_data, pin_memory=on_cuda
    )
    world = 1
    if torch.distributed.is_initialized():
        world = torch.distributed.get_world_size()
    sampler.set_epoch(1)
    if len(sampler) == 0:
        raise ValueError(
            f"no full batch of {hparams['batch_size']} utterances of distinct "
            "speakers per rank; lower --batch_size or add speakers"
        )
    steps_per_epoch, steps_why = lr_steps_per_epoch(
        hparams, len(train_data), sampler, world
    )
    hparams["lr_scheduler"] = hparams["lr_scheduler"](
        steps_per_epoch=steps_per_epoch
    )
    hparams["train_pipeline"] = build_train_pipeline(hparams, noise_csvs)
    summary = csvs["summary"]
    sched = hparams["lr_scheduler"]
    log_protocol(
        hparams,
        [
            f"{len(speakers)} training speakers, {len(train_data)} training "
            f"utterances, {summary.get('valid_files', 0)} held out "
            "(valid_ratio "
            f"{hparams['valid_ratio']})",
            f"left out {summary.get('excluded_trial_speakers', 0)} "
            f"speakers ({summary.get('excluded_trial_files', 0)} files) of "
            "the trial lists "
            + (", ".join(trial_lists) if trial_lists else "(none given)"),
            f"lr schedule: {steps_per_epoch} steps per scheduler epoch "
            f"({steps_why}); lr_min {sched.lr_min}, lr_max {sched.lr_max}, "
            f"cycle {sched.cycle_steps} steps, warm-up {sched.warmup_steps} "
            f"steps, gamma {sched.gamma}; {len(sampler)} batches drawn in "
            "epoch 1 on this rank",
            f"monitoring: {hparams.get('eer_trials') or 'no trial list'}"
            + (
                f" every {hparams.get('eer_interval')} epoch(s)"
                if hparams.get("eer_trials")
                else ""
            )
            + f"; export: {hparams['export_checkpoint']}",
        ]
        + ([init_line] if init_line else []),
    )

    checkpointer = hparams["checkpointer"]
    checkpointer.add_recoverable("lr_scheduler", hparams["lr_scheduler"])
    checkpointer.add_recoverable("train_sampler", sampler)
    checkpointer.add_recoverable("train_loader", train_loader)
    # Every random stream, so that a resume repeats the uninterrupted run
    # (optional: checkpoints of earlier versions lack them).
    checkpointer.add_recoverable(
        "train_pipeline", hparams["train_pipeline"], optional_load=True
    )
    checkpointer.add_recoverable(
        "random_state", GlobalRandomState(), optional_load=True
    )

    brain = SpeakerBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=checkpointer,
    )
    brain.train_sampler = sampler
    logger.info(
        f"{len(speakers)} speakers, {len(train_data)} training utterances, "
        f"{len(sampler)} batches of {hparams['batch_size']} per epoch "
        "and rank"
    )
    try:
        brain.fit(brain.hparams.epoch_counter, train_loader, valid_loader)
    finally:
        augment = hparams["train_pipeline"].augment
        if augment is not None:
            augment.close()

    if hparams["write_weight_digests"]:
        rank = torch.distributed.get_rank() if brain.distributed_launch else 0
        path = os.path.join(
            hparams["output_folder"], f"weight_digests_rank{rank}.json"
        )
        with open(path, "w", encoding="utf-8") as f:
            json.dump(brain.weight_digests(), f, indent=1, sort_keys=True)

    if hparams["export_checkpoint"]:
        # (--debug moves the checkpoints to a temporary folder.)
        result = run_on_main_and_share(
            export_pretrained,
            str(checkpointer.checkpoints_dir),
            hparams["pretrained_folder"],
            which=hparams["export_checkpoint"],
            model_kwargs=hparams["model_kwargs"],
            labels=list(speakers),
        )
        logger.info(f"Exported {result['checkpoint']} to {result['out_dir']}")


if __name__ == "__main__":
    main()
