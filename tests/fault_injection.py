"""Fault injection for the robustness tests of the training recipe.

Test-side only: the library has no fault hooks. :func:`install` wraps
``FaultTolerantBrain.fit_batch`` (the base of the recipe's
``SpeakerBrain``) and ``SafeCheckpointer.save_checkpoint`` in this
process; run as a script it
installs them and runs a recipe, which is how the tests launch one (also
under ``torchrun``)::

    python tests/fault_injection.py recipes/train_speaker_embeddings.py \
        hparams/mr_rawnet.yaml ...

The wrappers do nothing unless one of these environment variables is set
(the tests set them for one run of the recipe):

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

import functools
import os
import runpy
import signal
import sys

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


class _NanCost:
    """A loss whose value is multiplied by NaN (other attributes, such as
    the margin module ``loss_fn``, are the wrapped loss's)."""

    def __init__(self, cost):
        self._cost = cost

    def __call__(self, *args, **kwargs):
        return self._cost(*args, **kwargs) * float("nan")

    def __getattr__(self, name):
        return getattr(self._cost, name)


def install():
    """Wraps the recipe's training classes with the hooks above.

    Idempotent. Before each training batch: the kill-at-step check, then
    the NaN-batch check (the loss of a listed batch is multiplied by NaN);
    at each checkpoint save: the kill-in-save check (the process dies while
    the middle recoverable is written, before the checkpoint is marked
    complete).

    Returns
    -------
    None

    Example
    -------
    >>> install()
    >>> from speechbrain_ext.training.fault_tolerant_brain import (
    ...     FaultTolerantBrain)
    >>> FaultTolerantBrain.fit_batch.__name__
    'fit_batch'
    >>> getattr(FaultTolerantBrain.fit_batch, "_fault_injection", False)
    True
    """
    from speechbrain_ext.training.fault_tolerant_brain import (
        FaultTolerantBrain,
    )
    from speechbrain_ext.training.safe_checkpointer import SafeCheckpointer

    if getattr(FaultTolerantBrain.fit_batch, "_fault_injection", False):
        return
    fit_batch = FaultTolerantBrain.fit_batch
    save_checkpoint = SafeCheckpointer.save_checkpoint

    @functools.wraps(fit_batch)
    def faulty_fit_batch(self, batch):
        maybe_kill_at_step(self.optimizer_step)
        if not nan_batch(self._epoch or 0, self.step):
            return fit_batch(self, batch)
        # The loss turns NaN where the recipe computes it (its
        # compute_objectives calls hparams.compute_cost), so the batch is
        # treated as any non-finite one (left out of the epoch's sums).
        cost = self.hparams.compute_cost
        self.hparams.compute_cost = _NanCost(cost)
        try:
            return fit_batch(self, batch)
        finally:
            self.hparams.compute_cost = cost

    @functools.wraps(save_checkpoint)
    def faulty_save_checkpoint(self, *args, **kwargs):
        from speechbrain.utils.distributed import if_main_process

        names = list(self.recoverables)
        if kill_in_this_save() and names and if_main_process():
            victim = names[len(names) // 2]
            self.custom_save_hooks[victim] = lambda obj, path: kill_now(
                f"while saving {path}"
            )
        return save_checkpoint(self, *args, **kwargs)

    for wrapper in (faulty_fit_batch, faulty_save_checkpoint):
        wrapper._fault_injection = True
    FaultTolerantBrain.fit_batch = faulty_fit_batch
    SafeCheckpointer.save_checkpoint = faulty_save_checkpoint


def main(argv=None):
    """Installs the hooks and runs a recipe script as ``__main__``.

    Arguments
    ---------
    argv : list of str or None
        The recipe's path, then its arguments (default ``sys.argv[1:]``).

    Returns
    -------
    None
    """
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        raise SystemExit(
            "usage: python tests/fault_injection.py <recipe.py> [args...]"
        )
    install()
    sys.argv = list(argv)
    runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
