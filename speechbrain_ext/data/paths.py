"""The one path resolver: list and CSV paths under a data folder.

Trial lists and CSV files name audio files relative to a data folder.
:func:`resolve_path` joins such a path to its folder and refuses one that
leaves it (``..`` escapes, absolute paths elsewhere) unless told to allow
it. Preparation, training and scoring all resolve paths through it.

Authors
 * MR-RawNet recipe contributors
"""

import os

__all__ = ["resolve_path"]


def resolve_path(path, data_folder, allow_outside=False, where=None):
    """Joins a trial path to the data folder, refusing ``..`` escapes.

    The check is lexical (``os.path.normpath``), so symbolic links inside
    the data folder that point elsewhere are allowed; ``..`` components and
    absolute paths that leave the folder are not, unless ``allow_outside``.

    Arguments
    ---------
    path : str
        Path from the trial list, relative to ``data_folder``.
    data_folder : str or os.PathLike
        Root of the audio files.
    allow_outside : bool
        If True, paths outside ``data_folder`` are returned as well.
    where : str or None
        Optional location (e.g. ``"veri.txt:12"``) put in the error.

    Returns
    -------
    str
        The normalised absolute path.

    Example
    -------
    >>> resolve_path("id1/a.wav", "/data/vox1")
    '/data/vox1/id1/a.wav'
    >>> resolve_path("../secret.wav", "/data/vox1")
    Traceback (most recent call last):
    ...
    ValueError: '../secret.wav' resolves to '/data/secret.wav', outside ...
    """
    root = os.path.normpath(os.path.abspath(os.fspath(data_folder)))
    full = os.path.normpath(os.path.join(root, os.fspath(path)))
    if not allow_outside and os.path.commonpath([root, full]) != root:
        prefix = f"{where}: " if where else ""
        raise ValueError(
            f"{prefix}{os.fspath(path)!r} resolves to {full!r}, outside the "
            f"data folder {root!r} (set allow_paths_outside_data_folder: "
            "True, or --allow_paths_outside_data_folder=True, to permit)"
        )
    return full
