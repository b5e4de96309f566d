"""Atomic file writes: a reader sees the old file or the new one, never half.

Every file the recipes write for later runs to read (CSVs, fingerprints,
pretrained folders, embedding-cache shards, reports) goes through here: the
content is written to a temporary file in the same folder, which then
replaces the target with ``os.replace``. An interruption leaves at worst a
``*.tmp`` file beside the target, never a truncated target.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import os
import tempfile


def atomic_replace(path, write_to, fsync=False):
    """Calls ``write_to(tmp_path)``, then renames the temporary file.

    For writers that want a path (``CategoricalEncoder.save``). The parent
    folder is created; the temporary file is removed if anything fails.

    Arguments
    ---------
    path : str
        Destination.
    write_to : callable
        Writes the content to the path it is given.
    fsync : bool
        Flush the file to disk before the rename (survives power loss).

    Returns
    -------
    str
        ``path``.

    Example
    -------
    >>> import pathlib
    >>> p = str(getfixture("tmp_path") / "sub" / "a.txt")
    >>> _ = atomic_replace(p, lambda tmp: pathlib.Path(tmp).write_text("x"))
    >>> open(p).read()
    'x'
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=folder, prefix=os.path.basename(path) + ".", suffix=".tmp"
    )
    os.close(fd)
    try:
        write_to(tmp)
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def atomic_write(path, write, binary=False, fsync=False):
    """Calls ``write(file_object)`` on a temporary file, then renames it.

    Text files are UTF-8 with newlines written as given.

    Arguments
    ---------
    path : str
        Destination.
    write : callable
        Writes the content to the open file object it is given.
    binary : bool
        Open the temporary file in binary mode.
    fsync : bool
        Flush the file to disk before the rename.

    Returns
    -------
    str
        ``path``.

    Example
    -------
    >>> p = str(getfixture("tmp_path") / "a.bin")
    >>> _ = atomic_write(p, lambda f: f.write(b"\\x00\\x01"), binary=True)
    >>> open(p, "rb").read()
    b'\\x00\\x01'
    """

    def write_to(tmp):
        if binary:
            with open(tmp, "wb") as f:
                write(f)
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                write(f)

    return atomic_replace(path, write_to, fsync=fsync)


def atomic_write_text(path, text, fsync=False):
    """Writes UTF-8 text atomically.

    Arguments
    ---------
    path : str
        Destination (parent folders are created).
    text : str
        Contents.
    fsync : bool
        Flush the file to disk before the rename.

    Returns
    -------
    str
        ``path``.

    Example
    -------
    >>> p = str(getfixture("tmp_path") / "a.txt")
    >>> _ = atomic_write_text(p, "hi\\n")
    >>> open(p).read()
    'hi\\n'
    """
    return atomic_write(path, lambda f: f.write(text), fsync=fsync)
