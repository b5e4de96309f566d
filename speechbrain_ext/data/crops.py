"""Waveform crops for MR-RawNet training and evaluation.

All crop functions work on numpy arrays and torch tensors and act on the
LAST axis (time), so they accept a single waveform ``[time]`` as well as a
batch ``[batch, time]``. A waveform shorter than the crop is tiled: it is
repeated from its start (numpy's ``"wrap"`` padding) until it is long
enough, and the first samples are kept.

Training protocol of the official recipe (``DatasetLoader.py``): for every
utterance draw its own crop length with :func:`draw_crop_length` (half of
the time 3.0 s, otherwise one of 1.0, 1.1, ..., 2.9 s), read a crop of that
length at a uniformly random start (:class:`TrainingCrops`, which reads
only those frames from disk, through
:func:`~speechbrain_ext.data.audio_read.read_checked_crop`), augment it at
that length, then tile it back to 3.0 s with :func:`tile` so that the
batch has a fixed length (done on the batch by
``speechbrain_ext.augment.pipeline.TrainingPipeline``).
Random starts are drawn as the official loader draws them: a crop of ``n``
samples of a longer file starts at one of ``0 .. len - n - 1``.
Evaluation uses the full utterance or :func:`centre_crop`.

Authors
 * MR-RawNet SpeechBrain recipe contributors 2025
"""

import numpy as np
import torch

DEFAULT_SHORT_LENGTHS = tuple(round(1.0 + 0.1 * i, 1) for i in range(20))


def _as_rng(rng):
    """Returns a numpy Generator from a Generator, an int seed or None."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _check(wav, n):
    if n < 1:
        raise ValueError(f"crop length must be >= 1, got {n}")
    if wav.shape[-1] == 0:
        raise ValueError("cannot crop or tile an empty waveform")


def tile(wav, n):
    """Tiles ``wav`` (repeats it from the start) and keeps the first ``n``.

    A waveform of at least ``n`` samples is simply truncated to its first
    ``n`` samples. Acts on the last axis.

    Arguments
    ---------
    wav : numpy.ndarray or torch.Tensor
        Waveform(s), time on the last axis, non-empty.
    n : int
        Output length in samples.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        Same type as ``wav``, last axis of length ``n``.

    Example
    -------
    >>> tile(np.array([1, 2, 3]), 8)
    array([1, 2, 3, 1, 2, 3, 1, 2])
    >>> tile(torch.tensor([[1, 2], [3, 4]]), 3)
    tensor([[1, 2, 1],
            [3, 4, 3]])
    """
    _check(wav, n)
    length = wav.shape[-1]
    if length < n:
        reps = -(-n // length)  # ceil
        lead = (1,) * (wav.ndim - 1)
        if isinstance(wav, torch.Tensor):
            wav = wav.repeat(*lead, reps)
        else:
            wav = np.tile(wav, lead + (reps,))
    return wav[..., :n]


def centre_crop(wav, n):
    """Crops ``n`` samples from the middle, start ``(len - n) // 2``.

    Tiles instead when the waveform is shorter than ``n``.

    Arguments
    ---------
    wav : numpy.ndarray or torch.Tensor
        Waveform(s), time on the last axis, non-empty.
    n : int
        Crop length in samples.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        Same type as ``wav``, last axis of length ``n``.

    Example
    -------
    >>> centre_crop(np.arange(10), 3)
    array([3, 4, 5])
    >>> centre_crop(torch.tensor([1, 2]), 3)
    tensor([1, 2, 1])
    """
    _check(wav, n)
    length = wav.shape[-1]
    if length <= n:
        return tile(wav, n)
    start = (length - n) // 2
    return wav[..., start : start + n]


def draw_crop_length(
    rng=None,
    p_short=0.5,
    full=3.0,
    short_lengths=DEFAULT_SHORT_LENGTHS,
    sample_rate=16000,
):
    """Draws a training crop length, in samples.

    With probability ``p_short`` a duration is drawn uniformly from
    ``short_lengths`` (default 1.0, 1.1, ..., 2.9 s), otherwise it is
    ``full`` (3.0 s).

    Arguments
    ---------
    rng : numpy.random.Generator, int or None
        Random generator, or a seed for a new one.
    p_short : float
        Probability of a short crop.
    full : float
        Full crop duration in seconds.
    short_lengths : sequence of float
        Candidate short durations in seconds.
    sample_rate : int
        Samples per second.

    Returns
    -------
    int
        Crop length in samples.

    Example
    -------
    >>> draw_crop_length(np.random.default_rng(0), p_short=0.0)
    48000
    >>> n = draw_crop_length(np.random.default_rng(0), p_short=1.0)
    >>> n in [16000 + 1600 * i for i in range(20)]
    True
    """
    rng = _as_rng(rng)
    seconds = full
    if rng.random() < p_short:
        seconds = short_lengths[int(rng.integers(0, len(short_lengths)))]
    return int(round(seconds * sample_rate))


def crop_window(frames, n, rng=None):
    """Where an ``n``-sample crop of a file of ``frames`` frames is read.

    A file of at most ``n`` frames is read whole (and tiled afterwards);
    otherwise the crop starts at the centre (``rng=None``) or at a uniform
    random position in ``0 .. frames - n - 1`` (as the official loader).

    Arguments
    ---------
    frames : int
        Number of frames in the file.
    n : int
        Crop length in samples.
    rng : numpy.random.Generator, int or None
        Random generator or seed; None for a centre crop.

    Returns
    -------
    start : int
        First frame to read.
    count : int
        Frames to read, -1 for the whole file.

    Example
    -------
    >>> crop_window(10, 4)
    (3, 4)
    >>> crop_window(3, 4)
    (0, -1)
    """
    if n < 1:
        raise ValueError(f"crop length must be >= 1, got {n}")
    if frames <= n:
        return 0, -1
    if rng is None:
        return (frames - n) // 2, n
    return int(_as_rng(rng).integers(0, frames - n)), n


class TrainingCrops:
    """Reads one training crop per utterance, of its own random length.

    Every call draws the utterance's crop length with
    :func:`draw_crop_length` (``full_seconds`` with probability
    ``1 - p_short``, else one of ``short_seconds``), then reads a crop of
    that length at a uniformly random start with ``reader`` (a file that
    is shorter is tiled). The crop is returned at its own length; the
    training pipeline augments it at that length and tiles it back to
    ``full_seconds``. This is the official train loader's draw, per
    utterance (not one length per batch).

    Arguments
    ---------
    full_seconds : float
        The full crop (official: 3.0 s).
    p_short : float
        Probability of a short crop (official: 0.5).
    short_seconds : sequence of float
        Candidate short lengths (official: 1.0, 1.1, ..., 2.9 s).
    sample_rate : int
        Samples per second.
    reader : callable or None
        ``reader(path, n, rng=generator, sample_rate=rate)`` returning
        ``n`` samples; default
        :func:`~speechbrain_ext.data.audio_read.read_checked_crop`.

    Example
    -------
    >>> path = getfixture("tmp_path") / "x.wav"
    >>> import soundfile as sf
    >>> sf.write(path, np.arange(8000) / 8000, 1000, subtype="FLOAT")
    >>> crops = TrainingCrops(3.0, p_short=0.5, short_seconds=[1.0],
    ...                       sample_rate=1000)
    >>> sorted({len(crops(path, rng)) for rng in range(20)})
    [1000, 3000]
    """

    def __init__(
        self,
        full_seconds=3.0,
        p_short=0.5,
        short_seconds=DEFAULT_SHORT_LENGTHS,
        sample_rate=16000,
        reader=None,
    ):
        if not 0.0 <= p_short <= 1.0:
            raise ValueError(f"p_short must be in [0, 1], got {p_short}")
        self.full_seconds = float(full_seconds)
        self.p_short = float(p_short)
        self.short_seconds = tuple(float(x) for x in short_seconds)
        if self.p_short > 0 and (
            not self.short_seconds or min(self.short_seconds) <= 0
        ):
            raise ValueError("short_seconds must hold positive lengths")
        self.sample_rate = int(sample_rate)
        self.full_samples = int(round(self.full_seconds * self.sample_rate))
        self.reader = reader

    def draw_length(self, rng):
        """Draws one utterance's crop length in samples.

        Arguments
        ---------
        rng : numpy.random.Generator or int
            Random generator, or a seed for a new one.

        Returns
        -------
        int
            The crop length.
        """
        return draw_crop_length(
            rng,
            p_short=self.p_short,
            full=self.full_seconds,
            short_lengths=self.short_seconds or (self.full_seconds,),
            sample_rate=self.sample_rate,
        )

    def __call__(self, path, rng=None):
        """Reads one crop of a drawn length.

        Arguments
        ---------
        path : str or os.PathLike
            The audio file.
        rng : numpy.random.Generator, int or None
            Random generator or seed (the length, then the start).

        Returns
        -------
        numpy.ndarray
            The crop, float32, of the drawn length.
        """
        rng = _as_rng(rng)
        n = self.draw_length(rng)
        reader = self.reader
        if reader is None:
            # Imported here: audio_read imports this module's crop_window.
            from speechbrain_ext.data.audio_read import read_checked_crop

            reader = read_checked_crop
        return reader(path, n, rng=rng, sample_rate=self.sample_rate)
