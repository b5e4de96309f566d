"""Waveform crops for MR-RawNet training and evaluation.

All crop functions work on numpy arrays and torch tensors and act on the
LAST axis (time), so they accept a single waveform ``[time]`` as well as a
batch ``[batch, time]``. A waveform shorter than the crop is tiled: it is
repeated from its start (numpy's ``"wrap"`` padding) until it is long
enough, and the first samples are kept.

Training protocol of the official recipe: for every batch draw a crop
length with :func:`draw_crop_length` (half of the time 3.0 s, otherwise
one of 1.0, 1.1, ..., 2.9 s), crop every utterance to that length
(:func:`read_crop` reads only those frames from disk), augment, then tile
the crops back to 3.0 s with :func:`tile_to` so that the batch has a fixed
length. Evaluation uses the full utterance or :func:`centre_crop`.

Authors
 * MR-RawNet SpeechBrain recipe contributors 2025
"""

import numpy as np
import soundfile as sf
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


def tile_to(wav, n):
    """Tiles a (possibly augmented) crop back to ``n`` samples.

    The same operation as :func:`tile`; named for the training step that
    brings a short crop back to the full 3.0 s after augmentation.

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
    >>> tile_to(torch.arange(4.0), 6)
    tensor([0., 1., 2., 3., 0., 1.])
    """
    return tile(wav, n)


def random_crop(wav, n, rng=None):
    """Crops ``n`` samples at a uniformly random start (tiles if short).

    Every start in ``0 .. len - n`` is equally likely; one start is drawn
    for the whole array (all rows of a batch share it).

    Arguments
    ---------
    wav : numpy.ndarray or torch.Tensor
        Waveform(s), time on the last axis, non-empty.
    n : int
        Crop length in samples.
    rng : numpy.random.Generator, int or None
        Random generator, or a seed for a new one.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        Same type as ``wav``, last axis of length ``n``.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> crop = random_crop(np.arange(10), 4, rng)
    >>> len(crop), bool(np.all(np.diff(crop) == 1))
    (4, True)
    >>> random_crop(np.array([5, 6]), 5, rng)
    array([5, 6, 5, 6, 5])
    """
    _check(wav, n)
    length = wav.shape[-1]
    if length <= n:
        return tile(wav, n)
    start = int(_as_rng(rng).integers(0, length - n + 1))
    return wav[..., start : start + n]


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
    """Where :func:`read_crop` reads an ``n``-sample crop of ``frames``.

    A file of at most ``n`` frames is read whole (and tiled afterwards);
    otherwise the crop starts at the centre (``rng=None``) or at a uniform
    random position.

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
    return int(_as_rng(rng).integers(0, frames - n + 1)), n


def read_crop(path, n, rng=None, dtype="float32"):
    """Reads an ``n``-sample crop of an audio file without decoding it all.

    The file length comes from ``soundfile.info``; only the crop's frames
    are read (``soundfile.read`` with ``start``/``frames``). A file of at
    most ``n`` frames is read whole and tiled. With ``rng=None`` the crop
    is centred (for evaluation), otherwise its start is uniform.
    Multi-channel files are averaged to mono.

    Arguments
    ---------
    path : str or pathlib.Path
        Audio file readable by soundfile (wav, flac, ...).
    n : int
        Crop length in samples.
    rng : numpy.random.Generator, int or None
        Random generator or seed for a random crop; None for a centre
        crop.
    dtype : str
        Sample type passed to ``soundfile.read``.

    Returns
    -------
    numpy.ndarray
        The crop, shape ``[n]``.

    Example
    -------
    >>> path = getfixture("tmp_path") / "x.wav"
    >>> sf.write(path, np.arange(8) / 8, 8000, subtype="FLOAT")
    >>> read_crop(path, 4)  # centre crop: frames 2 .. 5
    array([0.25 , 0.375, 0.5  , 0.625], dtype=float32)
    >>> read_crop(path, 10, rng=0)[-2:]  # short file: tiled
    array([0.   , 0.125], dtype=float32)
    """
    if n < 1:
        raise ValueError(f"crop length must be >= 1, got {n}")
    frames = sf.info(str(path)).frames
    start, count = crop_window(frames, n, rng)
    wav, _ = sf.read(str(path), start=start, frames=count, dtype=dtype)
    if wav.ndim > 1:
        wav = wav.mean(axis=1).astype(dtype, copy=False)
    return tile(wav, n)
