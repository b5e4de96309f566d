"""Tone "speakers" for the GPU check: no speech synthesiser needed.

The GPU machine is bare (no espeak-ng), so the check makes its own data:
speaker ``k`` is a harmonic tone with its own pitch and harmonic weights;
each utterance jitters the pitch a little, changes the phases and adds
faint noise. Enough for a classifier to learn within a few steps and for
the recipe to run; not speech.

Authors
 * MR-RawNet recipe contributors
"""

import os

import numpy as np
import torch

RATE = 16000


def tone_utterance(speaker, seconds, rng):
    """One utterance of tone speaker ``speaker``.

    Arguments
    ---------
    speaker : int
        Speaker index (its pitch and timbre depend on it alone).
    seconds : float
        Duration.
    rng : numpy.random.Generator
        Utterance randomness (jitter, phases, noise).

    Returns
    -------
    numpy.ndarray
        float32 waveform in [-1, 1].

    Example
    -------
    >>> wav = tone_utterance(3, 0.5, np.random.default_rng(0))
    >>> wav.shape, wav.dtype, bool(np.abs(wav).max() <= 1)
    ((8000,), dtype('float32'), True)
    """
    timbre = np.random.default_rng(1000 + speaker)
    f0 = 80.0 + 23.0 * speaker * (1 + 0.1 * timbre.random())
    weights = timbre.random(12) ** 2
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = f0 * (1 + 0.02 * rng.standard_normal())
    wav = np.zeros_like(t)
    for h, w in enumerate(weights, start=1):
        if h * f0 < RATE / 2:
            wav += w * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 6.3))
    wav *= 0.5 / max(np.abs(wav).max(), 1e-6)
    wav += 0.01 * rng.standard_normal(len(t))
    return np.clip(wav, -1, 1).astype(np.float32)


def tone_batch(speakers, seconds, seed):
    """A padded batch (SpeechBrain ``PaddedBatch``), one item per speaker.

    Arguments
    ---------
    speakers : sequence of int
        Speaker of each item (its class label too).
    seconds : float
        Duration of every item.
    seed : int
        Seed of the utterances.

    Returns
    -------
    speechbrain.dataio.batch.PaddedBatch
        With ``sig`` and ``spk_id_encoded``.

    Example
    -------
    >>> batch = tone_batch([0, 1], 0.1, seed=0)
    >>> batch.sig.data.shape, batch.spk_id_encoded.data.ravel().tolist()
    (torch.Size([2, 1600]), [0, 1])
    """
    from speechbrain.dataio.batch import PaddedBatch

    rng = np.random.default_rng(seed)
    return PaddedBatch(
        [
            {
                "sig": torch.from_numpy(tone_utterance(k, seconds, rng)),
                "spk_id_encoded": torch.tensor([k]),
            }
            for k in speakers
        ]
    )


def write_tone_corpus(folder, n_speakers, utts_per_speaker, seconds, seed=0):
    """Writes a corpus in the VoxCeleb layout ``wav/<spk>/<session>/``.

    Arguments
    ---------
    folder : str or pathlib.Path
        Corpus root (``<folder>/wav/...`` is written).
    n_speakers : int
        Speakers.
    utts_per_speaker : int
        Utterances per speaker (two sessions).
    seconds : float
        Duration of each utterance.
    seed : int
        Seed.

    Returns
    -------
    str
        The corpus root, for ``--data_folder``.

    Example
    -------
    >>> import tempfile, shutil
    >>> root = write_tone_corpus(tempfile.mkdtemp(), 2, 2, 0.1)
    >>> sorted(os.listdir(os.path.join(root, "wav")))
    ['id90000', 'id90001']
    >>> shutil.rmtree(root)
    """
    import soundfile as sf

    rng = np.random.default_rng(seed)
    for spk in range(n_speakers):
        for utt in range(utts_per_speaker):
            sub = os.path.join(
                str(folder), "wav", f"id{90000 + spk}", f"sess{utt % 2}"
            )
            os.makedirs(sub, exist_ok=True)
            wav = tone_utterance(spk, seconds, rng)
            sf.write(
                os.path.join(sub, f"{utt:05d}.wav"), wav, RATE,
                subtype="PCM_16",
            )
    return str(folder)
