"""What can go wrong with training checkpoints, and the messages that say so.

:class:`~speechbrain_ext.training.safe_checkpointer.SafeCheckpointer`
tells three cases apart:

* a folder without its completion marker was interrupted while being
  saved or deleted: it is set aside (``incomplete-CKPT+...``), kept for
  inspection until the next checkpoint completes, and never loaded;
* a folder *with* its marker whose files no longer match it (or cannot be
  read) was damaged after it was complete: :class:`DamagedCheckpointError`
  stops the run, naming the files and what to do, instead of silently
  starting again from epoch 1;
* a save that fails (a full disk, above all) raises
  :class:`CheckpointSaveError`, which says whether the disk is full, where,
  and which checkpoint was kept (:func:`save_failure_message`).

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import errno
import os
import shutil

#: Prefix of the folders set aside by ``SafeCheckpointer``.
INCOMPLETE_PREFIX = "incomplete"


class DamagedCheckpointError(RuntimeError):
    """A complete checkpoint was changed afterwards; nothing was loaded.

    Arguments
    ---------
    message : str
        Which folder and files, and what to do.

    Example
    -------
    >>> str(DamagedCheckpointError("CKPT+x: damaged"))
    'CKPT+x: damaged'
    """


class CheckpointSaveError(RuntimeError):
    """A checkpoint could not be written (e.g. the disk is full).

    Arguments
    ---------
    message : str
        Why, where, and which checkpoint is intact.

    Example
    -------
    >>> str(CheckpointSaveError("disk full"))
    'disk full'
    """


def damage_message(folders):
    """The error text for damaged checkpoint folders.

    Arguments
    ---------
    folders : dict
        Folder path to a list of problems (``"name: what"``).

    Returns
    -------
    str
        The message.

    Example
    -------
    >>> text = damage_message({"/s/CKPT+1": ["a.ckpt: 3 bytes, 5 recorded"]})
    >>> text.startswith("Checkpoint /s/CKPT+1 is damaged (a.ckpt: 3 bytes")
    True
    """
    parts = [
        f"Checkpoint {folder} is damaged ({'; '.join(problems)})"
        for folder, problems in sorted(folders.items())
    ]
    first = sorted(folders)[0]
    return (
        ". ".join(parts)
        + ". It was complete when saved (it has its completion marker), so "
        "this is not an interrupted save: a file was changed or replaced "
        "afterwards (a disk error, a copy, an edit). Nothing was loaded or "
        "deleted. To resume from an older checkpoint, move the damaged "
        f"folder out of {os.path.dirname(str(first))}; to start over, use "
        "another --output_folder."
    )


def _is_disk_full(err):
    """Whether an exception (or one it chains) is ENOSPC/EDQUOT."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in (
            errno.ENOSPC,
            errno.EDQUOT,
        ):
            return True
        err = err.__cause__ or err.__context__
    return False


def _megabytes(n_bytes):
    if n_bytes < 2**20:
        return f"{n_bytes / 2**10:.0f} kB"
    return f"{n_bytes / 2**20:.1f} MB"


def save_failure_message(err, folder, previous, needed, removed):
    """Explains a failed checkpoint save.

    The disk counts as full when the error is ``ENOSPC``/``EDQUOT`` or,
    since torch's writer hides the cause (``basic_ios::clear``, ``unexpected
    pos``), when less space is left than the checkpoint needs.

    Arguments
    ---------
    err : BaseException
        What the save raised.
    folder : str or os.PathLike
        The checkpoint folder (``save_folder``).
    previous : str or os.PathLike or None
        The newest complete checkpoint, if any.
    needed : int
        Bytes the checkpoint needs (the previous one's size, if known).
    removed : str or os.PathLike or None
        The partial checkpoint removed after the failure, if any.

    Returns
    -------
    str
        The message.

    Example
    -------
    >>> full = OSError(errno.ENOSPC, "No space left on device")
    >>> text = save_failure_message(full, "/s", "/s/CKPT+1", 10, None)
    >>> text.split(":")[0]
    'Could not save a checkpoint in /s'
    >>> "the disk is full" in text and "/s/CKPT+1 is intact" in text
    True
    """
    try:
        free = shutil.disk_usage(os.fspath(folder)).free
    except OSError:
        free = None
    full = _is_disk_full(err) or (free is not None and free < max(needed, 1))
    if full:
        cause = (
            f"the disk is full ({_megabytes(free or 0)} free on the file "
            f"system of {folder}"
            + (f"; a checkpoint takes about {_megabytes(needed)}" if needed
               else "")
            + ")"
        )
    else:
        cause = f"{type(err).__name__}: {err}"
    kept = (
        f"The previous checkpoint {previous} is intact: rerunning the same "
        "command resumes from it."
        if previous
        else "No earlier checkpoint exists: a rerun starts from epoch 1."
    )
    gone = f" The partial checkpoint {removed} was removed." if removed else ""
    advice = (
        " Free some space (or point --output_folder to a larger disk) and "
        "rerun the same command."
        if full
        else ""
    )
    return f"Could not save a checkpoint in {folder}: {cause}. {kept}" + (
        gone + advice
    )
