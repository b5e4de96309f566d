"""A SpeechBrain ``Checkpointer`` that is safe against kills and pickles.

:class:`SafeCheckpointer` counts a checkpoint only once all its files are
written (``COMPLETE.json``), so a run killed while saving resumes from the
previous complete checkpoint; incomplete folders are set aside, damaged
ones stop the run naming their files, a failed save says which
checkpoint is intact, and rank 0 alone decides what to delete and load.
Its torch files are loaded weights-only (:func:`weights_only_recovery`):
a planted pickle is refused, never run.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import json
import logging
import os
import pickle
import shutil

import torch
from speechbrain.utils.checkpoints import (
    CKPT_PREFIX,
    DEFAULT_LOAD_HOOKS,
    METAFNAME,
    Checkpointer,
    ckpt_recency,
    get_default_hook,
    hook_on_loading_state_dict_checkpoint,
    torch_recovery,
)
from speechbrain.utils.distributed import (
    ddp_barrier,
    ddp_broadcast,
    if_main_process,
)
from speechbrain.utils.logger import get_logger

from speechbrain_ext.atomic_files import atomic_write_text
from speechbrain_ext.training.checkpoint_faults import (
    INCOMPLETE_PREFIX,
    CheckpointSaveError,
    DamagedCheckpointError,
    damage_message,
    save_failure_message,
)

logger = get_logger(__name__)

#: File written into a checkpoint folder once all its files are saved.
COMPLETE_MARKER = "COMPLETE.json"


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint file is not a plain weights file; it was not loaded.

    Arguments
    ---------
    message : str
        Which file, and why.

    Example
    -------
    >>> str(UnsafeCheckpointError("x.ckpt: refused"))
    'x.ckpt: refused'
    """


def weights_only_recovery(obj, path, end_of_epoch):
    """Loads a state dict with ``torch.load(weights_only=True)``.

    The replacement of SpeechBrain's ``torch_recovery`` used by
    :class:`SafeCheckpointer`. SpeechBrain 1.1.2 calls ``torch.load``
    without ``weights_only``, which is safe only as long as torch's
    default is (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` in the environment
    turns it into a full unpickler that runs code from the file). Here the
    weights-only unpickler is always used, and a file it refuses raises
    :class:`UnsafeCheckpointError` without anything of it having run.

    Arguments
    ---------
    obj : torch.nn.Module or torch.optim.Optimizer or object
        Anything with ``load_state_dict``.
    path : str or pathlib.Path
        The ``.ckpt`` file.
    end_of_epoch : bool
        Unused.

    Returns
    -------
    None

    Example
    -------
    >>> path = getfixture("tmp_path") / "layer.ckpt"
    >>> torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    >>> weights_only_recovery(torch.nn.Linear(2, 2), path, True)
    """
    del end_of_epoch
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message tells how to load it unsafely; keep the cause.
        lines = [line.strip() for line in str(err).splitlines()]
        cause = next(
            (line for line in lines if "WeightsUnpickler error" in line),
            "not a weights-only pickle",
        )
        raise UnsafeCheckpointError(
            f"Refused to load checkpoint file {path}: it is not a plain "
            f"weights file ({cause}). Nothing in it was run. If this "
            "checkpoint is yours, it is corrupt or was replaced; move its "
            "folder away to resume from another one."
        ) from err
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise DamagedCheckpointError(
            damage_message(
                {os.path.dirname(os.fspath(path)): [
                    f"{os.path.basename(os.fspath(path))}: cannot be read "
                    f"({type(err).__name__}: {str(err).splitlines()[0]})"
                ]}
            )
        ) from err
    state = hook_on_loading_state_dict_checkpoint(state)
    try:
        obj.load_state_dict(state, strict=True)
    except TypeError:
        obj.load_state_dict(state)


class SafeCheckpointer(Checkpointer):
    """A ``Checkpointer`` safe against kills and consistent under DDP.

    * After all files of a checkpoint are saved, rank 0 writes
      ``COMPLETE.json`` (file names and sizes) into its folder,
      atomically. A folder without that marker (a kill during saving or
      deletion) is not a checkpoint: it is never loaded, and
      :meth:`recover_if_possible` renames it to ``incomplete-<name>`` so
      that nothing reads it again; set-aside folders are reported once
      per run and removed once the next checkpoint is complete.
    * A folder with its marker whose files no longer match it (or cannot
      be read) was damaged after it was complete:
      :class:`~speechbrain_ext.training.checkpoint_faults.DamagedCheckpointError`
      stops the run naming the files; it is never mistaken for an
      interruption (which would silently restart training from epoch 1).
    * A save that fails (a full disk) raises
      :class:`~speechbrain_ext.training.checkpoint_faults.CheckpointSaveError`
      saying so, where, and which checkpoint is intact; the partial
      folder is removed.
    * Rank 0 alone decides which checkpoints to delete and which one to
      recover, and tells the other ranks. (SpeechBrain 1.1.2 lets every
      rank list the folder and makes one collective call per deleted
      checkpoint, so ranks that see the folder differently, e.g. while
      rank 0 is still writing, deadlock.)
    * Torch files (modules, optimisers, grad scaler) are loaded with
      :func:`weights_only_recovery`, whatever torch's default: a file
      that is not plain weights is refused, never unpickled.

    Arguments
    ---------
    *args
        As for ``speechbrain.utils.checkpoints.Checkpointer``.
    **kwargs
        As for ``speechbrain.utils.checkpoints.Checkpointer``.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> layer = torch.nn.Linear(2, 2)
    >>> ckpter = SafeCheckpointer(folder, {"layer": layer})
    >>> ckpt = ckpter.save_checkpoint()
    >>> (ckpt.path / COMPLETE_MARKER).exists()
    True
    >>> (ckpt.path / COMPLETE_MARKER).unlink()  # as if killed while saving
    >>> ckpter.recover_if_possible() is None
    True
    """

    def save_checkpoint(self, *args, **kwargs):
        """Saves a checkpoint, then marks it complete.

        Arguments
        ---------
        *args
            As for ``Checkpointer.save_checkpoint``.
        **kwargs
            As for ``Checkpointer.save_checkpoint``.

        Returns
        -------
        Checkpoint or None
            The checkpoint on rank 0, None elsewhere.
        """
        before = set(self._all_checkpoint_dirs())
        try:
            ckpt = super().save_checkpoint(*args, **kwargs)
            if ckpt is not None:
                files = {
                    p.name: p.stat().st_size
                    for p in ckpt.path.iterdir()
                    if p.is_file() and p.name != COMPLETE_MARKER
                }
                atomic_write_text(
                    ckpt.path / COMPLETE_MARKER,
                    json.dumps({"files": files}, sort_keys=True),
                )
        except Exception as err:
            if not if_main_process():
                raise
            raise self._save_failed(err, before) from err
        if ckpt is not None:
            self.remove_set_aside()
        ddp_barrier()
        return ckpt

    def _all_checkpoint_dirs(self):
        """Every ``CKPT+...`` folder, complete or not."""
        if not self.checkpoints_dir.is_dir():
            return []
        return [
            p
            for p in self.checkpoints_dir.iterdir()
            if p.is_dir() and p.name.startswith(CKPT_PREFIX)
        ]

    def _save_failed(self, err, before):
        """Removes the partial folder; the error to raise for a failed save."""
        complete = sorted(
            (p for p in before if self.is_complete(p)),
            key=lambda p: p.stat().st_mtime,
        )
        previous = complete[-1] if complete else None
        needed = 0
        if previous is not None:
            needed = sum(f.stat().st_size for f in previous.iterdir())
        removed = None
        for path in set(self._all_checkpoint_dirs()) - before:
            if not self.is_complete(path):
                shutil.rmtree(path, ignore_errors=True)
                removed = path
        return CheckpointSaveError(
            save_failure_message(
                err, self.checkpoints_dir, previous, needed, removed
            )
        )

    def set_aside(self):
        """Folders set aside as incomplete (``incomplete-CKPT+...``).

        Returns
        -------
        list of pathlib.Path
            Sorted paths.
        """
        if not self.checkpoints_dir.is_dir():
            return []
        return sorted(
            p
            for p in self.checkpoints_dir.iterdir()
            if p.is_dir()
            and p.name.startswith(INCOMPLETE_PREFIX)
            and f"-{CKPT_PREFIX}" in p.name
        )

    def remove_set_aside(self):
        """Deletes the set-aside folders (once a new checkpoint is complete).

        Returns
        -------
        list of pathlib.Path
            The folders removed.
        """
        removed = self.set_aside() if if_main_process() else []
        for path in removed:
            shutil.rmtree(path, ignore_errors=True)
        if removed:
            logger.info(
                f"Removed {len(removed)} incomplete checkpoint folder(s) set "
                "aside earlier, now that a new checkpoint is complete: "
                + ", ".join(p.name for p in removed)
            )
        return removed

    def delete_checkpoints(
        self,
        *,
        num_to_keep=1,
        min_keys=None,
        max_keys=None,
        importance_keys=(ckpt_recency,),
        ckpt_predicate=None,
        verbosity=logging.INFO,
    ):
        """Deletes the least important checkpoints (decided on rank 0).

        Same selection as ``Checkpointer.delete_checkpoints``: for every
        key, the ``num_to_keep`` best checkpoints are kept; checkpoints
        lacking a key are only judged by the other keys. A folder loses
        its completeness marker before it is removed.

        Arguments
        ---------
        num_to_keep : int
            Checkpoints kept per key.
        min_keys : list of str or None
            Meta keys whose lowest values are kept.
        max_keys : list of str or None
            Meta keys whose highest values are kept.
        importance_keys : sequence of callable
            Sort keys (higher is more important).
        ckpt_predicate : callable or None
            Only checkpoints for which it is true may be deleted.
        verbosity : int
            Logging level of the deletion messages.

        Returns
        -------
        None
        """
        if num_to_keep < 0:
            raise ValueError("Number of checkpoints to keep must be >= 0")
        ddp_barrier()
        if if_main_process():
            keys = [{"min_key": key} for key in min_keys or []]
            keys += [{"max_key": key} for key in max_keys or []]
            # SpeechBrain's save_and_keep_only appends ckpt_recency to its
            # shared default list on every call: drop the repeats.
            unique = list(dict.fromkeys(importance_keys))
            keys += [{"importance_key": key} for key in unique]
            candidates, protected = set(), set()
            for key in keys:
                key["ckpt_predicate"] = ckpt_predicate
                candidates.update(self.find_checkpoints(**key))
                best = self.find_checkpoints(
                    max_num_checkpoints=num_to_keep, **key
                )
                protected.update(best)
            for ckpt in candidates - protected:
                if not Checkpointer._is_checkpoint_dir(ckpt.path):
                    continue
                (ckpt.path / COMPLETE_MARKER).unlink(missing_ok=True)
                shutil.rmtree(ckpt.path)
                logger.log(verbosity, f"Deleted checkpoint in {ckpt.path}")
        ddp_barrier()

    @staticmethod
    def marker_problems(path):
        """How a checkpoint folder differs from its completion marker.

        Arguments
        ---------
        path : pathlib.Path
            A ``CKPT+...`` folder.

        Returns
        -------
        list of str or None
            None when there is no readable marker (an interrupted save or
            deletion); else the files that are missing or have another
            size than recorded (empty: the checkpoint is complete).

        Example
        -------
        >>> folder = getfixture("tmp_path")
        >>> ckpt = SafeCheckpointer(folder, {"m": torch.nn.Linear(2, 2)}
        ...                         ).save_checkpoint()
        >>> SafeCheckpointer.marker_problems(ckpt.path)
        []
        >>> _ = (ckpt.path / "m.ckpt").write_bytes(b"x")
        >>> SafeCheckpointer.marker_problems(ckpt.path)
        ['m.ckpt: 1 bytes, ... recorded']
        """
        marker = path / COMPLETE_MARKER
        try:
            files = dict(json.loads(marker.read_text())["files"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        problems = []
        if METAFNAME not in files:
            problems.append(f"{METAFNAME}: not in {COMPLETE_MARKER}")
        for name, size in sorted(files.items()):
            try:
                actual = (path / name).stat().st_size
            except OSError:
                problems.append(f"{name}: missing")
                continue
            if actual != size:
                problems.append(f"{name}: {actual} bytes, {size} recorded")
        return problems

    @staticmethod
    def is_complete(path):
        """Whether a checkpoint folder is complete (see the class).

        Arguments
        ---------
        path : pathlib.Path
            A ``CKPT+...`` folder.

        Returns
        -------
        bool
            True if the marker exists and every file it lists is there
            with its recorded size.
        """
        return SafeCheckpointer.marker_problems(path) == []

    def _call_load_hooks(self, checkpoint):
        """Loads the recoverables, torch files through weights-only loads."""
        for name, obj in self.recoverables.items():
            if name in self.custom_load_hooks:
                continue
            if get_default_hook(obj, DEFAULT_LOAD_HOOKS) is torch_recovery:
                self.custom_load_hooks[name] = weights_only_recovery
        return super()._call_load_hooks(checkpoint)

    def _list_checkpoint_dirs(self):
        """Complete checkpoint folders only."""
        return [
            d for d in super()._list_checkpoint_dirs() if self.is_complete(d)
        ]

    def quarantine_incomplete(self):
        """Renames incomplete checkpoint folders (on rank 0 only).

        Returns
        -------
        list of pathlib.Path
            The new names of the folders moved aside.

        Raises
        ------
        DamagedCheckpointError
            When a folder has its completion marker but its files do not
            match it (see the class).
        """
        moved, damaged = [], {}
        if not if_main_process() or not self.checkpoints_dir.is_dir():
            return moved
        for path in sorted(self._all_checkpoint_dirs()):
            problems = self.marker_problems(path)
            if problems:
                damaged[str(path)] = problems
                continue
            if problems is None:
                target = path.with_name(f"{INCOMPLETE_PREFIX}-{path.name}")
                suffix = 1
                while target.exists():
                    target = path.with_name(
                        f"{INCOMPLETE_PREFIX}{suffix}-{path.name}"
                    )
                    suffix += 1
                os.replace(path, target)
                logger.warning(
                    f"Checkpoint {path} is incomplete (interrupted while "
                    f"saving or deleting); moved to {target}"
                )
                moved.append(target)
        if damaged:
            raise DamagedCheckpointError(damage_message(damaged))
        return moved

    def recover_if_possible(self, *args, **kwargs):
        """Moves incomplete checkpoints aside; loads the one rank 0 picks.

        Arguments
        ---------
        *args
            As for ``Checkpointer.recover_if_possible``.
        **kwargs
            As for ``Checkpointer.recover_if_possible``.

        Returns
        -------
        Checkpoint or None
            The loaded checkpoint, if any.
        """
        chosen, error, message = None, None, None
        if if_main_process():
            try:
                moved = self.quarantine_incomplete()
                chosen = self.find_checkpoint(*args, **kwargs)
                self._report_set_aside(moved, chosen)
            except DamagedCheckpointError as err:
                error, message = err, str(err)
        chosen, message = ddp_broadcast((chosen, message))
        if error is not None:
            raise error
        if message is not None:
            raise DamagedCheckpointError(message)
        self.last_recovered = chosen
        if chosen is not None:
            self.load_checkpoint(chosen)
        else:
            logger.info("Would load a checkpoint here, but none found yet.")
        return chosen

    def _report_set_aside(self, moved, chosen):
        """One warning per run about the folders set aside (rank 0)."""
        earlier = [p for p in self.set_aside() if p not in moved]
        if earlier:
            logger.warning(
                f"{len(earlier)} incomplete checkpoint folder(s) set aside "
                "by an earlier run are kept for inspection until the next "
                "checkpoint is complete: "
                + ", ".join(p.name for p in earlier)
            )
        if chosen is None and (moved or earlier):
            logger.warning(
                f"No complete checkpoint in {self.checkpoints_dir} (only "
                "incomplete ones, set aside): training starts from the "
                "beginning"
            )
