"""EER monitoring during training: cosine scoring of one trial list.

The official trainer scores VoxCeleb1-O every epoch; the training recipe
does so every ``eer_interval`` epochs with :func:`trial_eer`, on rank 0,
one utterance at a time (full length, or a centre crop), with the
official EER and minDCF definitions
(:func:`~speechbrain_ext.scoring.metrics.compute_metrics`). For the full
evaluation protocol (cached embeddings, crops, AS-norm) use the
verification recipe.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import contextlib

import torch
import torch.nn.functional as F
from speechbrain.utils.logger import get_logger

from speechbrain_ext.data.audio_read import BadAudioError, read_audio
from speechbrain_ext.data.crops import crop_window
from speechbrain_ext.data.paths import resolve_path
from speechbrain_ext.scoring.metrics import compute_metrics
from speechbrain_ext.scoring.trials import read_trials

logger = get_logger(__name__)


@torch.no_grad()
def trial_eer(
    model,
    trial_file,
    data_folder=None,
    max_seconds=None,
    sample_rate=16000,
    allow_outside=False,
    device="cpu",
    context=None,
):
    """EER of cosine scoring on a trial list, with ``model`` in eval mode.

    Embeddings are computed one utterance at a time (full length, or a
    centre crop of ``max_seconds``); the model's train/eval mode is
    restored afterwards. Relative paths must stay in ``data_folder``
    unless ``allow_outside``; the trials of an unusable audio file are
    left out (with a warning).

    Arguments
    ---------
    model : torch.nn.Module
        ``(wavs [1, T], lengths [1]) -> [1, 1, D]``.
    trial_file : str
        Lines ``label enrol_path test_path``.
    data_folder : str or None
        Root of relative paths in the list.
    max_seconds : float or None
        Longest audio used per utterance.
    sample_rate : int
        Required sample rate of the audio.
    allow_outside : bool
        Accept paths that leave ``data_folder``.
    device : str or torch.device
        Where the model runs.
    context : context manager or None
        Entered around every forward (e.g. the evaluation autocast).

    Returns
    -------
    dict or None
        ``eer`` (in [0, 1]) and ``min_dcf`` (P_target 0.05, C_miss =
        C_fa = 1), both as the official ``tuneThreshold.py`` computes
        them; None when no target or no non-target trial is left.

    Example
    -------
    >>> import numpy as np
    >>> import soundfile as sf
    >>> folder = getfixture("tmp_path")
    >>> rng = np.random.default_rng(0)
    >>> for name, f0 in (("a1", 1), ("a2", 1), ("b1", 3), ("b2", 3)):
    ...     t = np.arange(1600) / 16000
    ...     noise = 0.01 * rng.normal(size=1600)
    ...     wav = np.sin(2 * np.pi * 100 * f0 * t) + noise
    ...     sf.write(folder / f"{name}.wav", wav, 16000)
    >>> pairs = ["1 a1.wav a2.wav", "0 a1.wav b1.wav", "1 b1.wav b2.wav",
    ...          "0 a2.wav b2.wav"]
    >>> _ = (folder / "trials.txt").write_text("\\n".join(pairs) + "\\n")
    >>> class Spectrum(torch.nn.Module):
    ...     def forward(self, wavs, lengths):
    ...         return torch.fft.rfft(wavs).abs()[:, None, :40]
    >>> trial_eer(Spectrum(), str(folder / "trials.txt"), str(folder))["eer"]
    0.0
    """
    trials = read_trials(trial_file)
    context = contextlib.nullcontext() if context is None else context
    limit = int(round(max_seconds * sample_rate)) if max_seconds else None

    def window(frames):
        """The whole file, or its centre ``max_seconds``."""
        return (0, -1) if limit is None else crop_window(
            frames, min(frames, limit)
        )
    was_training = model.training
    model.eval()
    embeddings = {}
    try:
        for utt in trials.utterances():
            path = utt
            if data_folder:
                path = resolve_path(
                    utt, data_folder, allow_outside=allow_outside,
                    where=trial_file,
                )
            try:
                wav = read_audio(path, window, sample_rate=sample_rate)
            except BadAudioError as err:
                logger.warning(f"EER trials: skipped {path}: {err}")
                continue
            wav = torch.as_tensor(wav, device=device)
            with context:
                emb = model(wav[None], torch.ones(1, device=device))
            embeddings[utt] = F.normalize(emb.float().reshape(-1), dim=0)
    finally:
        model.train(was_training)
    kept = [
        (e, t, label)
        for e, t, label in zip(
            trials.enrol, trials.test, trials.labels, strict=True
        )
        if e in embeddings and t in embeddings
    ]
    labels = torch.as_tensor([int(label) for _, _, label in kept])
    if not kept or labels.min() == labels.max():
        logger.warning(f"EER trials: too few usable trials in {trial_file}")
        return None
    scores = torch.stack(
        [torch.dot(embeddings[e], embeddings[t]) for e, t, _ in kept]
    ).cpu()
    metrics = compute_metrics(labels.numpy(), scores.numpy(), (0.05,))
    return {"eer": metrics.eer, "min_dcf": metrics.min_dcf[0.05]}
