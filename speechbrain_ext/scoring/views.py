"""Views of an utterance: their cache names and test-side crop lengths.

An utterance is embedded in one or more *views*: ``"full"`` (the whole
utterance, which the official protocol trims to a multiple of
:data:`FULL_LENGTH_MULTIPLE` samples, see :func:`full_length_view`) or
``"crop<N>"`` (its centre ``N`` samples, tiled when shorter, see
:func:`condition_crop`). Short-duration protocol: the enrolment utterance
is used at full length; the test utterance is reduced to one centre crop
of 1.04, 2.04 or 5.04 s (:data:`DURATION_CONDITIONS`).
:func:`condition_views` maps the condition names of a run to their crop
lengths and :func:`view_name` names a view in the embedding cache.

Authors
 * MR-RawNet recipe contributors
"""

import re

import numpy as np

from speechbrain_ext.data import crops

__all__ = [
    "DURATION_CONDITIONS",
    "FULL_LENGTH_MULTIPLE",
    "condition_crop",
    "condition_views",
    "full_length_view",
    "view_name",
]

#: Test-side crop length in samples at 16 kHz (``None``: full length).
DURATION_CONDITIONS = {
    "full": None, "1.04s": 16640, "2.04s": 32640, "5.04s": 80640,
}


def condition_crop(wav, n_samples):
    """The centre ``n_samples`` of a 1-D signal, tiling short signals.

    If ``len(wav) >= n_samples`` the crop starts at
    ``(len(wav) - n_samples) // 2``. Otherwise the signal is repeated from
    its start (wrap padding) and the first ``n_samples`` samples are
    returned. ``n_samples=None`` returns the signal unchanged.

    Arguments
    ---------
    wav : numpy.ndarray or torch.Tensor
        1-D signal.
    n_samples : int or None
        Crop length (> 0), or None for the full signal.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        Same type as ``wav``, length ``n_samples``.

    Example
    -------
    >>> condition_crop(np.arange(7), 3)
    array([2, 3, 4])
    >>> condition_crop(np.arange(3), 7)
    array([0, 1, 2, 0, 1, 2, 0])
    """
    if n_samples is None:
        return wav
    if isinstance(n_samples, bool) or not isinstance(
        n_samples, int | np.integer
    ):
        raise TypeError(f"n_samples must be an int, got {n_samples!r}")
    if n_samples <= 0:
        raise ValueError(f"n_samples must be > 0, got {n_samples}")
    if wav.ndim != 1:
        raise ValueError(
            f"condition_crop expects a 1-D signal, got shape {tuple(wav.shape)}"
        )
    return crops.centre_crop(wav, int(n_samples))



def view_name(n_samples):
    """Cache name of a view.

    Arguments
    ---------
    n_samples : int or None
        Centre-crop length in samples, or None for the full utterance.

    Returns
    -------
    str
        ``"full"`` or ``"crop<n_samples>"``.

    Example
    -------
    >>> view_name(None), view_name(16640)
    ('full', 'crop16640')
    """
    return "full" if n_samples is None else f"crop{int(n_samples)}"


def condition_views(conditions, sample_rate=16000):
    """Maps condition names to test-side crop lengths in samples.

    Names of :data:`DURATION_CONDITIONS` are used as
    defined there (at 16 kHz); any other name of the form ``"<seconds>s"``
    (e.g. ``"3s"``) is a centre crop of that duration.

    Arguments
    ---------
    conditions : sequence of str
        Condition names, e.g. ``["full", "1.04s"]``.
    sample_rate : int
        Sample rate of the model input.

    Returns
    -------
    dict
        ``name -> n_samples`` (None for ``"full"``), in the given order.

    Example
    -------
    >>> condition_views(["full", "1.04s", "3s"])
    {'full': None, '1.04s': 16640, '3s': 48000}
    """
    if isinstance(conditions, str):
        conditions = [conditions]
    out = {}
    for name in conditions:
        name = str(name)
        if name in out:
            raise ValueError(f"condition {name!r} is listed twice")
        if name in DURATION_CONDITIONS and sample_rate == 16000:
            out[name] = DURATION_CONDITIONS[name]
            continue
        match = re.fullmatch(r"(\d+(?:\.\d*)?)s", name)
        if name == "full":
            out[name] = None
        elif match and float(match.group(1)) > 0:
            out[name] = int(round(float(match.group(1)) * sample_rate))
        else:
            raise ValueError(
                f"unknown condition {name!r}: use 'full', one of "
                f"{sorted(DURATION_CONDITIONS)} or '<seconds>s'"
            )
    if not out:
        raise ValueError("no conditions given")
    return out


#: The official full-length protocol trims each file to a multiple of this.
FULL_LENGTH_MULTIPLE = 640


def full_length_view(wav):
    """The full-length test input: trimmed to a multiple of 640 samples.

    This is the official evaluation protocol; files shorter than 640
    samples are left as they are (the model then decides).

    Arguments
    ---------
    wav : torch.Tensor or numpy.ndarray
        Waveform ``[T]``.

    Returns
    -------
    torch.Tensor or numpy.ndarray
        ``wav[: len(wav) // 640 * 640]``.

    Example
    -------
    >>> import torch
    >>> full_length_view(torch.zeros(1300)).shape
    torch.Size([1280])
    """
    n = wav.shape[-1] // FULL_LENGTH_MULTIPLE * FULL_LENGTH_MULTIPLE
    return wav[..., :n] if n else wav
