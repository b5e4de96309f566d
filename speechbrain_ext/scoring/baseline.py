"""A non-neural reference: cosine scoring of MFCC mean and std vectors.

Each utterance is represented by the per-coefficient mean and standard
deviation over time of its MFCCs (30 coefficients from 40 mel bands, 25 ms
windows, 10 ms hop), a 60-d vector; trials are scored by cosine
similarity. It needs no training, so it shows what a learned embedding
adds on the same trials and conditions.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import torch

from speechbrain_ext.scoring.audio_files import read_waveform
from speechbrain_ext.scoring.metrics import compute_metrics
from speechbrain_ext.scoring.views import (
    condition_crop,
    condition_views,
    full_length_view,
)


class MFCCStatsEmbedder:
    """Utterance vector = [mean, std] over time of the MFCCs.

    Arguments
    ---------
    n_mfcc : int
        Cepstral coefficients.
    n_mels : int
        Mel bands.
    sample_rate : int
        Audio sample rate.

    Example
    -------
    >>> emb = MFCCStatsEmbedder()
    >>> emb(torch.randn(16000)).shape
    torch.Size([60])
    """

    def __init__(self, n_mfcc=30, n_mels=40, sample_rate=16000):
        from speechbrain.lobes.features import MFCC

        self.mfcc = MFCC(
            deltas=False,
            context=False,
            n_mfcc=n_mfcc,
            n_mels=n_mels,
            sample_rate=sample_rate,
        )

    @torch.no_grad()
    def __call__(self, wav):
        """Embeds one waveform.

        Arguments
        ---------
        wav : torch.Tensor
            1-D waveform.

        Returns
        -------
        torch.Tensor
            ``[2 * n_mfcc]`` vector.
        """
        feats = self.mfcc(wav.float().unsqueeze(0))[0]  # [frames, n_mfcc]
        return torch.cat([feats.mean(dim=0), feats.std(dim=0)])


def score_baseline(trials, conditions, sample_rate=16000, p_targets=(0.01,
                   0.05), embedder=None, read=read_waveform):
    """Scores a trial list with the MFCC baseline under each condition.

    The enrolment side is always the full utterance; the test side is the
    full utterance or its centre crop (tiled when shorter), as in the
    short-duration protocol. Each file is decoded once.

    Arguments
    ---------
    trials : TrialList
        Trials whose paths are readable files.
    conditions : list of str
        Condition names (``full``, ``1.04s``, ...).
    sample_rate : int
        Sample rate to read at.
    p_targets : sequence of float
        minDCF priors.
    embedder : callable or None
        Waveform -> vector (default :class:`MFCCStatsEmbedder`).
    read : callable
        Path -> 1-D waveform.

    Returns
    -------
    dict
        Condition -> :class:`VerificationMetrics`.

    Example
    -------
    >>> import os, soundfile
    >>> from speechbrain_ext.scoring.trials import parse_trials
    >>> d = str(getfixture("tmp_path"))
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> for name in "abc":
    ...     soundfile.write(os.path.join(d, name + ".wav"),
    ...                     rng.standard_normal(8000) * 0.1, 16000)
    >>> t = parse_trials([f"1 {d}/a.wav {d}/b.wav", f"0 {d}/a.wav {d}/c.wav"])
    >>> sorted(score_baseline(t, ["full", "0.25s"]))
    ['0.25s', 'full']
    """
    embedder = embedder or MFCCStatsEmbedder(sample_rate=sample_rate)
    crops = condition_views(conditions, sample_rate)
    enrol = {}
    test = {c: {} for c in conditions}
    enrol_paths = set(trials.enrol)
    for path in sorted(enrol_paths | set(trials.test)):
        wav = read(path)
        if path in enrol_paths:
            enrol[path] = embedder(full_length_view(wav))
        for cond, n in crops.items():
            if n is None:
                view = full_length_view(wav)
            else:
                view = condition_crop(wav, n)
            test[cond][path] = embedder(view)
    results = {}
    for cond in conditions:
        e = torch.stack([enrol[p] for p in trials.enrol])
        t = torch.stack([test[cond][p] for p in trials.test])
        scores = torch.nn.functional.cosine_similarity(e, t, dim=1)
        results[cond] = compute_metrics(
            trials.labels, scores.double().numpy(), p_targets
        )
    return results
