"""Fault injection for the robustness tests of the training recipe.

Nothing here does anything unless one of these environment variables is
set (the tests set them for one run of the recipe):

``MRRAWNET_FAULT_NAN_BATCHES``
    ``epoch:batch`` pairs, comma separated (batch: 1-based position in
    the epoch). The loss of those training batches is multiplied by NaN,
    so that it and the gradients are not finite.
``MRRAWNET_FAULT_KILL_IN_SAVE``
    ``N``: the process kills itself (SIGKILL) during its N-th checkpoint
    save, once half of the checkpoint's files are written and before the
    checkpoint is marked complete.
``MRRAWNET_FAULT_KILL_AT_STEP``
    ``N``: the process kills itself (SIGKILL) before the training batch
    that would make optimiser step N + 1, i.e. after N steps.
``MRRAWNET_FAULT_KILL_RANK``
    Only this DDP rank kills itself (default: any rank).
``MRRAWNET_FAULT_MARKER``
    A file: a kill happens only if it does not exist yet, and it is
    created just before. This makes a kill happen once, e.g. across the
    restarts of ``torchrun --max-restarts``.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import os
import signal

ENV_NAN_BATCHES = "MRRAWNET_FAULT_NAN_BATCHES"
ENV_KILL_IN_SAVE = "MRRAWNET_FAULT_KILL_IN_SAVE"
ENV_KILL_AT_STEP = "MRRAWNET_FAULT_KILL_AT_STEP"
ENV_KILL_RANK = "MRRAWNET_FAULT_KILL_RANK"
ENV_MARKER = "MRRAWNET_FAULT_MARKER"

_saves = 0


def nan_batch(epoch, batch):
    """Whether the test hook asks for a NaN loss in this batch.

    Arguments
    ---------
    epoch : int
        Current epoch.
    batch : int
        1-based batch position in the epoch.

    Returns
    -------
    bool
        True if ``epoch:batch`` is listed in ``MRRAWNET_FAULT_NAN_BATCHES``.

    Example
    -------
    >>> os.environ[ENV_NAN_BATCHES] = "2:3, 4:1"
    >>> nan_batch(2, 3), nan_batch(2, 4)
    (True, False)
    >>> del os.environ[ENV_NAN_BATCHES]
    """
    spec = os.environ.get(ENV_NAN_BATCHES)
    if not spec:
        return False
    wanted = {item.strip() for item in spec.split(",") if item.strip()}
    return f"{int(epoch)}:{int(batch)}" in wanted


def _allowed():
    """Whether a kill may happen here (rank filter, once-only marker)."""
    rank = os.environ.get(ENV_KILL_RANK)
    if rank is not None and rank != os.environ.get("RANK", "0"):
        return False
    marker = os.environ.get(ENV_MARKER)
    return not (marker and os.path.exists(marker))


def _kill_self(where):
    """Creates the marker (if any), then SIGKILLs this process."""
    marker = os.environ.get(ENV_MARKER)
    if marker:
        with open(marker, "w", encoding="utf-8") as f:
            f.write(f"killed {where}\n")
    print(f"FAULT INJECTION: killing process {os.getpid()} {where}", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def maybe_kill_at_step(optimizer_step):
    """Kills this process when the step hook says so.

    Arguments
    ---------
    optimizer_step : int
        Optimiser steps taken so far.

    Returns
    -------
    None

    Example
    -------
    >>> maybe_kill_at_step(3)  # no hook set: nothing happens
    """
    step = os.environ.get(ENV_KILL_AT_STEP)
    if step and int(optimizer_step) >= int(step) and _allowed():
        _kill_self(f"after optimiser step {optimizer_step}")


def kill_in_this_save():
    """Counts a checkpoint save; True if it is the one to die in.

    Returns
    -------
    bool
        Whether ``MRRAWNET_FAULT_KILL_IN_SAVE`` names this save (and the
        rank and marker allow a kill).

    Example
    -------
    >>> kill_in_this_save()
    False
    """
    global _saves
    _saves += 1
    wanted = os.environ.get(ENV_KILL_IN_SAVE)
    return bool(wanted) and int(wanted) == _saves and _allowed()


def kill_now(where):
    """Kills this process (creating the marker first, if one is set).

    Arguments
    ---------
    where : str
        Described in the message printed before.

    Returns
    -------
    None
    """
    _kill_self(where)
