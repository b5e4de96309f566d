"""Audio input checks of the models of these pretrained folders.

``load_audio`` (and so ``verify_files`` and ``classify_file``) passes each
decoded file through :class:`CheckedAudioNormalizer`, which rejects empty
and NaN/Inf audio with a clear ``ValueError`` before resampling. For the
models of these folders (those whose audio normaliser is a
:class:`CheckedAudioNormalizer`), a missing local file (an absolute path,
or one whose folder exists) is a ``FileNotFoundError`` naming it, where
SpeechBrain's decoder would raise a ``RuntimeError`` (see
:func:`install_missing_file_check`; other models are left alone).
SpeechBrain resolves a relative path whose folder does not exist as a
Hugging Face Hub ID; :func:`local_audio` avoids that lookup and raises
``FileNotFoundError`` for a missing file.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import functools
import os

import torch
from speechbrain.dataio.preprocess import AudioNormalizer


class CheckedAudioNormalizer(AudioNormalizer):
    """SpeechBrain's ``AudioNormalizer`` that first rejects unusable audio.

    ``EncoderClassifier.load_audio`` passes every decoded file through the
    ``audio_normalizer`` of the pretrained folder. SpeechBrain's resampler
    fails on an empty file at another rate with an unrelated reshape error,
    and NaN samples would only be reported later by the model; this
    normaliser raises a ``ValueError`` that names the problem instead.
    Usable audio is resampled and mixed exactly as by ``AudioNormalizer``.

    Arguments
    ---------
    sample_rate : int
        Rate of the model.
    mix : str
        ``"avg-to-mono"`` or ``"keep"``.

    Example
    -------
    >>> norm = CheckedAudioNormalizer(16000)
    >>> norm(torch.ones(800, 2), 8000).shape
    torch.Size([1600])
    >>> norm(torch.zeros(0, 2), 8000)
    Traceback (most recent call last):
    ...
    ValueError: audio is empty (0 samples at 8000 Hz)
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        install_missing_file_check()

    def __call__(self, audio, sample_rate):
        """Checks, resamples and mixes one decoded file.

        Arguments
        ---------
        audio : torch.Tensor
            ``[time]`` or ``[time, channels]``.
        sample_rate : int
            Rate of ``audio``.

        Returns
        -------
        torch.Tensor
            The audio at the model's rate (mono with ``avg-to-mono``).
        """
        if audio.numel() == 0:
            raise ValueError(
                f"audio is empty (0 samples at {sample_rate} Hz)"
            )
        if not bool(torch.isfinite(audio).all()):
            raise ValueError("audio holds NaN or Inf samples")
        return super().__call__(audio, sample_rate)


def local_audio(path):
    """Marks an audio path as local for SpeechBrain's ``load_audio``.

    ``load_audio`` takes a path whose folder does not exist for a Hugging
    Face Hub ID and looks it up there (or fails with a repo-ID validation
    error), and a missing file in an existing folder gives an unspecific
    decoding error. The returned source is always read locally.

    Arguments
    ---------
    path : str or os.PathLike
        An audio file.

    Returns
    -------
    speechbrain.utils.fetching.FetchSource
        A local source, for ``verify_files``, ``classify_file`` or
        ``load_audio``.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``; the message names it.

    Example
    -------
    >>> path = os.path.join(str(getfixture("tmp_path")), "a.wav")
    >>> _ = open(path, "wb").write(b"")
    >>> local_audio(path).path == path
    True
    >>> local_audio(path + ".missing")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no audio file at ....wav.missing
    """
    from speechbrain.utils.fetching import FetchFrom, FetchSource

    path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no audio file at {path}")
    return FetchSource(FetchFrom.LOCAL, path)


def missing_local_audio(path):
    """The absolute path of a missing local audio file, else None.

    A plain path (not a URL, not a ``FetchSource``) is local when it is
    absolute or when its folder exists: SpeechBrain would read it from
    disk, and a missing file there can be found nowhere else. A relative
    path whose folder does not exist may be a Hugging Face Hub file
    (``"speechbrain/spkrec-ecapa-voxceleb/example1.wav"``) and gives None.

    Arguments
    ---------
    path : str or os.PathLike or object
        What was passed to ``load_audio``.

    Returns
    -------
    str or None
        The missing file's absolute path, or None.

    Example
    -------
    >>> folder = str(getfixture("tmp_path"))
    >>> missing_local_audio(os.path.join(folder, "a.wav")) is not None
    True
    >>> missing_local_audio("some-user/some-repo/a.wav") is None
    True
    """
    if not isinstance(path, (str, os.PathLike)):
        return None
    text = os.fspath(path)
    if not isinstance(text, str) or "://" in text:
        return None
    folder = os.path.dirname(text) or "."
    local = os.path.isabs(text) or os.path.isdir(folder)
    if local and not os.path.isfile(text):
        return os.path.abspath(text)
    return None


def _checked_load_audio(load_audio):
    """Wraps ``Pretrained.load_audio`` with the missing-file check."""

    @functools.wraps(load_audio)
    def checked(self, path, savedir=None, **kwargs):
        normalizer = getattr(self, "audio_normalizer", None)
        if savedir is None and isinstance(normalizer, CheckedAudioNormalizer):
            missing = missing_local_audio(path)
            if missing is not None:
                raise FileNotFoundError(f"no audio file at {missing}")
        return load_audio(self, path, savedir=savedir, **kwargs)

    checked.mrrawnet_checked = True
    return checked


def install_missing_file_check():
    """Makes ``load_audio`` of these folders' models name a missing file.

    SpeechBrain's ``Pretrained.load_audio`` (used by ``verify_files`` and
    ``classify_file``) reports a missing file in an existing folder as
    ``RuntimeError: ... Error opening ...: System error.``, and an
    absolute path in a missing folder as an invalid Hub ID. This wraps the
    method, once per process, so that for a model whose audio normaliser
    is a :class:`CheckedAudioNormalizer` (every folder written here) such a
    path raises ``FileNotFoundError("no audio file at <path>")`` before
    any fetching; any other model, a URL, a ``FetchSource``, a ``savedir``
    and a possible Hub path go to SpeechBrain unchanged. Called when a
    :class:`CheckedAudioNormalizer` is built, i.e. when such a folder is
    loaded.

    Returns
    -------
    None

    Example
    -------
    >>> from speechbrain.inference.interfaces import Pretrained
    >>> install_missing_file_check()
    >>> Pretrained.load_audio.mrrawnet_checked
    True
    """
    from speechbrain.inference.interfaces import Pretrained

    if not getattr(Pretrained.load_audio, "mrrawnet_checked", False):
        Pretrained.load_audio = _checked_load_audio(Pretrained.load_audio)
