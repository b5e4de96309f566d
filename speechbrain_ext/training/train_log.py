"""Marks in ``train_log.txt`` for the lines of an interrupted attempt.

A run killed after it logged an epoch but before that epoch's checkpoint
was complete trains and logs the epoch again when resumed, so the log
would show one epoch twice with two different losses. On every resume
:func:`mark_resume` turns the lines of the epochs being redone into
comments (``# abandoned attempt: epoch: 3, ...``) and appends a comment
line naming the checkpoint the run resumed from; the lines after it
belong to the resumed attempt. Lines that start with ``#`` are comments
for any reader of the log.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import os
import re
import time

from speechbrain.utils.distributed import if_main_process
from speechbrain.utils.logger import get_logger

from speechbrain_ext.atomic_files import atomic_write_text

logger = get_logger(__name__)

#: Prefix of the lines of epochs that were redone after a resume.
ABANDONED = "# abandoned attempt: "

_EPOCH = re.compile(r"^epoch: (\d+),")


def mark_resume(
    log_file, epoch, end_of_epoch, checkpoint, step=0, finished=False
):
    """Comments out the redone epochs' lines and notes the resume.

    Arguments
    ---------
    log_file : str or os.PathLike
        The train log (nothing happens if it does not exist).
    epoch : int
        The epoch counter of the checkpoint resumed from (0: none).
    end_of_epoch : bool
        Whether that checkpoint was saved at the end of ``epoch`` (else
        ``epoch`` is redone from within).
    checkpoint : str or None
        The checkpoint's name (None: no checkpoint, a fresh start).
    step : int
        Optimiser steps at the checkpoint.
    finished : bool
        The run has no epoch left to train: the log is only changed if
        lines of redone epochs are found.

    Returns
    -------
    int
        Number of lines turned into comments.

    Example
    -------
    >>> log = getfixture("tmp_path") / "train_log.txt"
    >>> _ = log.write_text("epoch: 1, lr: 1 - train loss: 2\\n"
    ...                    "epoch: 2, lr: 1 - train loss: 1.5\\n")
    >>> mark_resume(log, 1, True, "CKPT+x", step=10)
    1
    >>> print(log.read_text())  # doctest: +ELLIPSIS
    epoch: 1, lr: 1 - train loss: 2
    # abandoned attempt: epoch: 2, lr: 1 - train loss: 1.5
    # resumed ... from CKPT+x (end of epoch 1, 10 optimiser steps): ...
    >>> fresh = getfixture("tmp_path") / "fresh.txt"
    >>> _ = fresh.write_text("protocol: 8 training speakers\\n")
    >>> mark_resume(fresh, 0, True, None), fresh.read_text()
    (0, 'protocol: 8 training speakers\\n')
    """
    if not os.path.isfile(log_file):
        return 0
    with open(log_file, encoding="utf-8") as f:
        lines = f.read().splitlines()
    first_redone = int(epoch) + 1 if end_of_epoch else int(epoch)
    marked, out = 0, []
    for line in lines:
        found = _EPOCH.match(line)
        if found and int(found[1]) >= first_redone:
            line = ABANDONED + line
            marked += 1
        out.append(line)
    epoch_lines = any(_EPOCH.match(line) for line in lines)
    if not epoch_lines and checkpoint is None:
        return 0  # a fresh start: only header lines (``protocol:``) so far
    if not out or (finished and not marked):
        return 0
    when = time.strftime("%Y-%m-%d %H:%M:%S")
    if checkpoint is None:
        where = "the beginning (no complete checkpoint)"
    elif end_of_epoch:
        where = f"{checkpoint} (end of epoch {epoch}, {step} optimiser steps)"
    else:
        where = f"{checkpoint} (within epoch {epoch}, {step} optimiser steps)"
    out.append(
        f"# resumed {when} from {where}: the lines below belong to the "
        "resumed attempt"
    )
    atomic_write_text(log_file, "\n".join(out) + "\n")
    return marked


def log_protocol(hparams, lines):
    """Writes ``protocol:`` lines to this run's train log.

    A resumed (or already finished) run whose protocol is the same as the
    one already in the log adds nothing; a changed one (e.g. another
    number of processes) is appended.

    Arguments
    ---------
    hparams : dict
        Loaded hyperparameters (``train_log``).
    lines : list of str
        What the run trains on and how.

    Returns
    -------
    None

    Example
    -------
    >>> log = getfixture("tmp_path") / "train_log.txt"
    >>> log_protocol({"train_log": str(log)}, ["8 training speakers"])
    >>> log_protocol({"train_log": str(log)}, ["8 training speakers"])
    >>> log.read_text()
    'protocol: 8 training speakers\\n'
    """
    for line in lines:
        logger.info(line)
    if not if_main_process():
        return
    block = "".join(f"protocol: {line}\n" for line in lines)
    path = hparams["train_log"]
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            if block in f.read():
                return
    with open(path, "a", encoding="utf-8") as f:
        f.write(block)
