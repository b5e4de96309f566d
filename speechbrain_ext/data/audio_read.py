"""The one audio reader: every file that cannot be used is named, and why.

Data preparation reads only the audio headers, and files can go bad after
it (bit rot, an interrupted copy, a header that lies). Every part of the
package that reads audio (training crops, augmentation clips, embedding
extraction, the inference normaliser) reads through :func:`read_audio` or
:func:`read_checked_crop`, and meets one error type,
:class:`BadAudioError`, whose message names the file and the reason.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import os

import numpy as np
import soundfile as sf

from speechbrain_ext.data.crops import crop_window, tile
from speechbrain_ext.data.wav_header import truncation_reason, wav_truncation


class BadAudioError(Exception):
    """An audio file that cannot be used; names the file and the reason.

    Arguments
    ---------
    path : str or os.PathLike
        The file.
    reason : str
        What is wrong with it.

    Example
    -------
    >>> str(BadAudioError("a.wav", "sample rate 8000 Hz, expected 16000"))
    'a.wav: sample rate 8000 Hz, expected 16000'
    """

    def __init__(self, path, reason):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):
        # Picklable with its two arguments (DataLoader workers re-raise).
        return (type(self), (self.path, self.reason))


def read_audio(
    path, window=None, sample_rate=None, dtype="float32", with_rate=False
):
    """Reads (part of) an audio file as mono samples, checking the file.

    The one audio reader of the package: training, augmentation,
    extraction and the inference normaliser read through it, and every
    file that cannot be used raises :class:`BadAudioError`, naming the file
    and the reason: it cannot be decoded, is empty, has another sample rate
    than required, holds fewer frames than its header announces (also a
    WAV cut short, which libsndfile reads as a shorter file,
    :func:`~speechbrain_ext.data.wav_header.wav_truncation`), or the frames
    read hold NaN/Inf samples. Only the frames asked for are decoded.
    Multi-channel files are averaged to mono.

    Arguments
    ---------
    path : str or os.PathLike
        Audio file readable by soundfile (wav, flac, ...).
    window : callable or None
        ``window(frames) -> (start, count)``: which frames to read of a
        file of ``frames`` frames (``count`` -1: to the end); None reads
        the whole file.
    sample_rate : int or None
        Required sample rate (None: any).
    dtype : str
        Sample type passed to soundfile.
    with_rate : bool
        Also return the file's sample rate.

    Returns
    -------
    numpy.ndarray or tuple
        The samples read, shape ``[count]``; with ``with_rate``,
        ``(samples, sample_rate)``.

    Raises
    ------
    BadAudioError
        The file cannot be used (see above).

    Example
    -------
    >>> path = getfixture("tmp_path") / "x.wav"
    >>> sf.write(path, np.arange(8) / 8, 16000, subtype="FLOAT")
    >>> read_audio(path, lambda frames: (0, 2))
    array([0.   , 0.125], dtype=float32)
    >>> read_audio(path, sample_rate=8000)
    Traceback (most recent call last):
    ...
    speechbrain_ext.data.audio_read.BadAudioError: ...: sample rate 16000 Hz...
    """
    try:
        with sf.SoundFile(os.fspath(path)) as f:
            rate, frames = f.samplerate, f.frames
            if sample_rate and rate != sample_rate:
                raise BadAudioError(
                    path, f"sample rate {rate} Hz, expected {sample_rate} Hz"
                )
            if frames <= 0:
                raise BadAudioError(path, "no audio samples")
            cut = wav_truncation(path)
            if cut is not None:
                # libsndfile reads the frames present as a shorter file.
                raise BadAudioError(path, truncation_reason(*cut))
            start, count = (0, -1) if window is None else window(frames)
            if start:
                f.seek(start)
            wav = f.read(frames=count, dtype=dtype)
    except BadAudioError:
        raise
    except (RuntimeError, OSError, ValueError, EOFError) as err:
        # soundfile errors are RuntimeErrors (LibsndfileError).
        raise BadAudioError(
            path, f"unreadable ({type(err).__name__}: {err})"
        ) from err
    expected = frames - start if count < 0 else count
    if wav.shape[0] < expected:
        raise BadAudioError(
            path,
            f"truncated: {wav.shape[0]} of the {expected} frames announced "
            "by its header could be read",
        )
    if wav.ndim > 1:
        wav = wav.mean(axis=1).astype(dtype, copy=False)
    finite = np.isfinite(wav)
    if not finite.all():
        raise BadAudioError(
            path, f"{int((~finite).sum())} non-finite samples (NaN or Inf)"
        )
    return (wav, rate) if with_rate else wav


def read_checked_crop(path, n, rng=None, sample_rate=16000, dtype="float32"):
    """Reads an ``n``-sample crop of an audio file, checking the file.

    Only the crop's frames are read (:func:`read_audio`, with its checks).
    A file of at most ``n`` frames is read whole and tiled. With
    ``rng=None`` the crop is centred (for evaluation), otherwise its start
    is uniform (:func:`~speechbrain_ext.data.crops.crop_window`).

    Arguments
    ---------
    path : str or os.PathLike
        Audio file readable by soundfile.
    n : int
        Crop length in samples.
    rng : numpy.random.Generator, int or None
        Random generator or seed for a random crop; None for a centre
        crop.
    sample_rate : int or None
        Required sample rate (None: any).
    dtype : str
        Sample type passed to soundfile.

    Returns
    -------
    numpy.ndarray
        The crop, shape ``[n]``.

    Raises
    ------
    BadAudioError
        The file cannot be used (see :func:`read_audio`).

    Example
    -------
    >>> path = getfixture("tmp_path") / "x.wav"
    >>> sf.write(path, np.arange(8) / 8, 16000, subtype="FLOAT")
    >>> read_checked_crop(path, 4)  # centre crop: frames 2 .. 5
    array([0.25 , 0.375, 0.5  , 0.625], dtype=float32)
    >>> read_checked_crop(path, 10, rng=0)[-2:]  # short file: tiled
    array([0.   , 0.125], dtype=float32)
    >>> sf.write(path, np.full(8, np.nan), 16000, subtype="FLOAT")
    >>> read_checked_crop(path, 4)
    Traceback (most recent call last):
    ...
    speechbrain_ext.data.audio_read.BadAudioError: ...: 4 non-finite ...
    """
    if n < 1:
        raise ValueError(f"crop length must be >= 1, got {n}")
    wav = read_audio(
        path, lambda frames: crop_window(frames, n, rng), sample_rate, dtype
    )
    return tile(wav, n)
