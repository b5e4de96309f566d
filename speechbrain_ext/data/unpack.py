"""Atomic, safe extraction of ``.tar.gz`` and ``.zip`` archives.

:func:`unpack` extracts into a hidden working folder beside the
destination, ``<dest>/.<top>.unpacking-<pid>``, checks that the expected
top-level folder and its sub-folders are there, writes a provenance file
into it and only then renames it to ``<dest>/<top>``. A folder named
``<top>`` therefore only ever appears complete: an extraction cut off at
any point (an exception, Ctrl-C, ``kill -9``, a full disk) leaves the
working folder, which the next :func:`unpack` removes before starting
again.

The archive is read in one pass. A member with an absolute path, a
``..`` component, a link or a device file stops the extraction with an
error (the public archives have none); the working folder is removed.

Authors
 * MR-RawNet recipe contributors
"""

import json
import os
import posixpath
import shutil
import tarfile
import zipfile

from tqdm import tqdm

__all__ = [
    "MARKER",
    "UnpackError",
    "remove_stale",
    "unpack",
]

#: Provenance file written into a finished folder (the last file written).
MARKER = ".download.json"

_WORK = ".{top}.unpacking-"


class UnpackError(RuntimeError):
    """The archive is unsafe or does not hold the expected layout.

    Arguments
    ---------
    message : str
        What is wrong, naming the archive and member or folder.

    Example
    -------
    >>> str(UnpackError("a.zip: bad"))
    'a.zip: bad'
    """


def _pid_alive(pid):
    """True when a process with this id exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(dest, top):
    """Removes working folders of unpack runs that are no longer running.

    Arguments
    ---------
    dest : str
        The folder holding ``<top>``.
    top : str
        The archive's top-level folder name.

    Returns
    -------
    list of str
        The folders removed.

    Example
    -------
    >>> d = getfixture("tmp_path")
    >>> (d / ".musan.unpacking-999999999" / "musan").mkdir(parents=True)
    >>> [os.path.basename(p) for p in remove_stale(str(d), "musan")]
    ['.musan.unpacking-999999999']
    """
    prefix = _WORK.format(top=top)
    removed = []
    if not os.path.isdir(dest):
        return removed
    for name in sorted(os.listdir(dest)):
        if not name.startswith(prefix):
            continue
        pid = name[len(prefix):]
        if pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid)):
            continue
        path = os.path.join(dest, name)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _check_name(archive, name):
    """Refuses absolute member paths and ``..`` components."""
    clean = posixpath.normpath(name.replace("\\", "/"))
    if (
        name.startswith(("/", "\\"))
        or clean == ".."
        or clean.startswith("../")
        or (len(name) > 1 and name[1] == ":")
    ):
        raise UnpackError(
            f"{archive}: member {name!r} would be written outside the "
            "destination; refusing to unpack this archive"
        )


def _check_tar_member(archive, m):
    """Refuses unsafe names, links and special files."""
    _check_name(archive, m.name)
    if not (m.isfile() or m.isdir()):
        raise UnpackError(
            f"{archive}: member {m.name!r} is a link or special file; "
            "refusing to unpack this archive"
        )


def _check_zip_member(archive, m):
    """Refuses unsafe names, links and special files."""
    _check_name(archive, m.filename)
    mode = (m.external_attr >> 16) & 0o170000
    if mode not in (0, 0o100000, 0o040000):
        raise UnpackError(
            f"{archive}: member {m.filename!r} is a link or special file; "
            "refusing to unpack this archive"
        )


def _members(archive, raw):
    """Yields ``(extract, member)`` for each member, read in one pass."""
    if archive.endswith(".zip"):
        with zipfile.ZipFile(raw) as zf:
            for m in zf.infolist():
                _check_zip_member(archive, m)
                yield zf.extract, m
        return
    kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(fileobj=raw, mode="r|*") as tf:
        for m in tf:
            _check_tar_member(archive, m)
            yield (lambda member, work: tf.extract(member, work, **kwargs)), m


def _extract_all(archive, work, progress):
    """Extracts every member of ``archive`` into ``work``.

    The bar counts compressed bytes read, so it needs no first pass.
    """
    with open(archive, "rb") as raw, tqdm(
        total=os.path.getsize(archive), unit="B", unit_scale=True,
        unit_divisor=1024, desc=f"unpack {os.path.basename(archive)}",
        disable=not progress, leave=False,
    ) as bar:
        for extract, member in _members(archive, raw):
            extract(member, work)
            bar.update(max(0, min(raw.tell(), bar.total) - bar.n))


def unpack(archive, dest, top, required=(), info=None, progress=True):
    """Extracts ``archive`` so that ``<dest>/<top>`` appears complete.

    Arguments
    ---------
    archive : str
        A ``.zip`` file or a tar file (``.tar.gz``, ``.tgz``, ``.tar``).
    dest : str
        Folder that receives ``<top>``.
    top : str
        The archive's top-level folder (``musan``, ``RIRS_NOISES``).
    required : sequence of str
        Sub-folders of ``<top>`` that must exist after extraction.
    info : dict or None
        Written to ``<dest>/<top>/.download.json`` (provenance).
    progress : bool
        Show a progress bar.

    Returns
    -------
    str
        ``<dest>/<top>``.

    Raises
    ------
    UnpackError
        ``<dest>/<top>`` exists already, an unsafe member, or the archive
        lacks ``<top>`` or one of ``required``.

    Example
    -------
    >>> d = getfixture("tmp_path")
    >>> with zipfile.ZipFile(d / "a.zip", "w") as z:
    ...     z.writestr("A/sub/x.txt", "x")
    >>> out = unpack(str(d / "a.zip"), str(d / "out"), "A", ["sub"],
    ...              progress=False)
    >>> sorted(os.listdir(out))
    ['.download.json', 'sub']
    """
    final = os.path.join(dest, top)
    if os.path.exists(final):
        raise UnpackError(f"{final} exists already; move it away first")
    os.makedirs(dest, exist_ok=True)
    remove_stale(dest, top)
    work = os.path.join(dest, _WORK.format(top=top) + str(os.getpid()))
    os.makedirs(work)
    try:
        _extract_all(archive, work, progress)
        root = os.path.join(work, top)
        missing = [
            sub for sub in ("", *required)
            if not os.path.isdir(os.path.join(root, sub))
        ]
        if missing:
            found = sorted(os.listdir(work))
            raise UnpackError(
                f"{archive} does not hold the expected folders "
                f"{', '.join(posixpath.join(top, m) for m in missing)} "
                f"(its top level: {found})"
            )
        with open(os.path.join(root, MARKER), "w", encoding="utf-8") as f:
            json.dump(info or {}, f, indent=1, sort_keys=True)
        os.rename(root, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final
