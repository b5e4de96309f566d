"""SpeechBrain ``Brain`` for MR-RawNet speaker-embedding training.

:class:`SpeakerBrain` trains an embedding model with a cosine classifier
and an AAM-softmax loss on batches of raw waveforms:

* the training batch goes through ``hparams.train_pipeline`` (crop,
  augmentation, speed change; see :mod:`speechbrain_ext.augment.pipeline`)
  on the batch's device, then through ``embedding_model(wavs, lengths)``
  and ``classifier``;
* the per-iteration LR schedule ``hparams.lr_scheduler`` (e.g.
  :class:`~speechbrain_ext.training.schedulers.WarmupCosineRestarts`) is
  called before every optimiser step;
* per epoch it logs the training loss, the training accuracy of the AAM
  logits (margin applied, as in the official trainer), the LR and the time,
  then, when there is a held-out set, the validation loss and speaker-ID
  error (all reduced over DDP ranks), and optionally the EER and minDCF
  (official definitions) on a trial list every few epochs, logged as
  ``test`` values (the official run scores VoxCeleb1-O every epoch);
* it checkpoints at the end of every epoch (keeping the most recent and
  the lowest validation error) and SpeechBrain's intra-epoch checkpoints
  resume exactly: the ``brain`` recoverable also holds the running sums of
  the epoch's statistics.

DDP: SpeechBrain's ``Brain`` converts every BatchNorm to SyncBatchNorm,
which only runs on CUDA. :meth:`SpeakerBrain._wrap_distributed` converts
only on CUDA and when ``hparams.sync_batchnorm`` is true (the default);
CPU runs (gloo) keep plain BatchNorm, and the BatchNorm running statistics
are broadcast from rank 0 at the end of every training epoch so that all
ranks validate, checkpoint and finish with identical weights.

:class:`SafeCheckpointer` makes checkpoints safe against ``kill -9``: a
checkpoint counts only once all its files are written, so a run killed
while saving resumes from the previous complete checkpoint. Its torch
files are loaded weights-only (:func:`weights_only_recovery`): a planted
pickle is refused, never run.

Faults while training: bad audio files reported by the data loaders
(:mod:`speechbrain_ext.data.safe_audio`) are counted per epoch, named in
warnings and stop the run beyond ``max_bad_file_fraction``; a step with
non-finite gradients is skipped without a trace (weights, optimiser
state, LR schedule, BatchNorm statistics) and counted; both counts go to
the train log (``skipped_files``, ``skipped_steps``). The tests inject
faults from outside (``tests/fault_injection.py`` wraps these classes);
nothing here reads a fault-injection setting.

Helpers for the recipe: :func:`resolve_run_opts` (device and backend
defaults), :func:`init_distributed` (DDP set-up that survives torchrun
restarts), :func:`run_on_main_and_share` (run preparation on rank 0 and
give every rank its result), :func:`state_digest` and
:func:`cleanup_distributed`.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import dataclasses
import datetime
import gc
import json
import logging
import os
import pickle
import shutil
import time
import uuid

import soundfile as sf
import speechbrain as sb
import torch
import torch.nn.functional as F
import yaml
from speechbrain.utils.checkpoints import (
    CKPT_PREFIX,
    DEFAULT_LOAD_HOOKS,
    METAFNAME,
    Checkpointer,
    ckpt_recency,
    get_default_hook,
    hook_on_loading_state_dict_checkpoint,
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
    torch_recovery,
)
from speechbrain.utils.distributed import (
    MainProcessContext,
    ddp_barrier,
    ddp_broadcast,
    if_main_process,
    is_distributed_initialized,
)
from speechbrain.utils.logger import get_logger

from speechbrain_ext.data.safe_audio import BadFileTracker
from speechbrain_ext.pretrained import state_dict_digest
from speechbrain_ext.training.checkpoint_faults import (
    INCOMPLETE_PREFIX,
    CheckpointSaveError,
    DamagedCheckpointError,
    damage_message,
    save_failure_message,
)
from speechbrain_ext.training.train_log import mark_resume

logger = get_logger(__name__)

#: File written into a checkpoint folder once all its files are saved.
COMPLETE_MARKER = "COMPLETE.json"


def _given(run_opts, key):
    """Whether a run option was given explicitly."""
    if isinstance(run_opts, dict):
        return key in run_opts
    return key in run_opts.overridden_args


def resolve_run_opts(run_opts):
    """Fills device and DDP backend defaults; call before ``ddp_init_group``.

    * no ``--device``: ``cuda:<LOCAL_RANK>`` when CUDA is available, else
      ``cpu`` (SpeechBrain 1.1 otherwise keeps modules wherever they are);
    * under ``torchrun`` with CUDA the device is ``cuda:<LOCAL_RANK>``;
    * under ``torchrun`` on the CPU the default backend ``nccl`` becomes
      ``gloo``;
    * ``--ckpt_interval_steps`` given alone switches off a
      ``ckpt_interval_minutes`` from the hparams file (SpeechBrain refuses
      both), and the other way round.

    Arguments
    ---------
    run_opts : speechbrain.utils.run_opts.RunOptions or dict
        The options from ``sb.parse_arguments``.

    Returns
    -------
    RunOptions or dict
        The options with the changes (a new object; changed options are
        marked as given so that they beat the hparams file).

    Example
    -------
    >>> opts = resolve_run_opts({"device": "cpu",
    ...                          "distributed_backend": "nccl"})
    >>> opts["device"]
    'cpu'
    """
    changes = {}
    ddp = "RANK" in os.environ and "LOCAL_RANK" in os.environ
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = run_opts.get("device")
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
        changes["device"] = device
    elif ddp and device.startswith("cuda") and device != f"cuda:{local_rank}":
        logger.warning(
            f"--device={device} replaced by cuda:{local_rank} (torchrun "
            "gives every process its own GPU)"
        )
        device = f"cuda:{local_rank}"
        changes["device"] = device
    backend = run_opts.get("distributed_backend", "nccl")
    if ddp and not device.startswith("cuda") and backend == "nccl":
        changes["distributed_backend"] = "gloo"
    steps = run_opts.get("ckpt_interval_steps", 0) or 0
    minutes = run_opts.get("ckpt_interval_minutes", 0) or 0
    if _given(run_opts, "ckpt_interval_steps") and steps > 0:
        if not _given(run_opts, "ckpt_interval_minutes"):
            changes["ckpt_interval_minutes"] = 0
    elif _given(run_opts, "ckpt_interval_minutes") and minutes > 0:
        if not _given(run_opts, "ckpt_interval_steps"):
            changes["ckpt_interval_steps"] = 0
    if isinstance(run_opts, dict):
        return {**run_opts, **changes}
    return dataclasses.replace(
        run_opts,
        **changes,
        overridden_args=set(run_opts.overridden_args) | set(changes),
    )


def init_distributed(run_opts):
    """SpeechBrain's ``ddp_init_group``, made safe for torchrun restarts.

    ``torchrun --max-restarts=N`` restarts every process when one dies.
    The restarted processes meet in the agent's TCP store, which still
    holds the keys of the previous attempt (pytorch/pytorch#135712): a
    rank can read a dead peer's address and fail (gloo: "connectFullMesh
    failed ... Connection refused"; NCCL: a stale unique id). The restart
    count cannot name a fresh namespace: on several nodes the agents do
    not agree on it (the node whose worker died counts a restart, the
    others may restart theirs as a membership change, which does not
    count). So whenever torchrun shares its store (its default with the
    c10d rendezvous), the process group is set up in a namespace that
    rank 0 draws at random and hands to every rank of this attempt
    (:func:`_fresh_namespace`). With
    ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` (a fresh store per attempt)
    this is left to SpeechBrain.

    Arguments
    ---------
    run_opts : RunOptions or dict
        Run options (``distributed_backend``), after
        :func:`resolve_run_opts`.

    Returns
    -------
    None

    Example
    -------
    >>> init_distributed({"distributed_backend": "gloo"})  # no torchrun
    """
    attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)
    shared = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    ddp = "RANK" in os.environ and "LOCAL_RANK" in os.environ
    if not (ddp and shared):
        sb.utils.distributed.ddp_init_group(run_opts)
        return
    backend = run_opts["distributed_backend"]
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    timeout = datetime.timedelta(seconds=7200)  # as SpeechBrain
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    store = torch.distributed.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        world,
        is_master=False,
        timeout=timeout,
    )
    if attempt > 0:
        logger.warning(
            f"torchrun restart {attempt}: joining a fresh process group"
        )
    namespace = _fresh_namespace(store, rank, world, timeout)
    torch.distributed.init_process_group(
        backend=backend,
        store=torch.distributed.PrefixStore(namespace, store),
        rank=rank,
        world_size=world,
        timeout=timeout,
    )


_NS = "mrrawnet_pg"


def _fresh_namespace(store, rank, world, timeout, poll=0.05):
    """A store prefix that only this attempt's ranks use, the same on all.

    Every process of earlier attempts is gone when torchrun starts the
    next one (the agents stop their workers before they meet again), but
    the keys they wrote are not. Rank 0 draws a random token; every other
    rank appends a random nonce to a list and waits for the answer that
    rank 0 files under that nonce: since the nonce is new, so is the
    answer. Rank 0 answers every nonce in the list (stale ones in vain)
    until all other ranks have reported back under the new token.

    Arguments
    ---------
    store : torch.distributed.Store
        The store all ranks share (torchrun's agent store).
    rank : int
        Global rank of this process.
    world : int
        Number of processes.
    timeout : datetime.timedelta
        How long rank 0 waits for the others.
    poll : float
        Seconds between rank 0's looks at the store.

    Returns
    -------
    str
        The prefix, e.g. ``"mrrawnet_pg/3f2a.../"``.

    Example
    -------
    >>> store = torch.distributed.HashStore()
    >>> _fresh_namespace(store, 0, 1, datetime.timedelta(seconds=5))[:12]
    'mrrawnet_pg/'
    """
    if rank != 0:
        nonce = uuid.uuid4().hex
        store.append(f"{_NS}/hello", f"{nonce},")
        token = store.get(f"{_NS}/answer/{nonce}").decode()
        store.delete_key(f"{_NS}/answer/{nonce}")
        store.add(f"{_NS}/{token}/joined", 1)
        return f"{_NS}/{token}/"
    token = uuid.uuid4().hex
    joined = f"{_NS}/{token}/joined"
    answered = set()
    deadline = time.monotonic() + timeout.total_seconds()
    while store.add(joined, 0) < world - 1:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"only {store.add(joined, 0)} of the {world - 1} other "
                f"ranks joined the process group within {timeout}"
            )
        if store.check([f"{_NS}/hello"]):
            nonces = store.get(f"{_NS}/hello").decode().split(",")
            for nonce in set(nonces[:-1]) - answered:
                store.set(f"{_NS}/answer/{nonce}", token)
                answered.add(nonce)
        time.sleep(poll)
    for nonce in answered:  # the stale ones' answers; the others are gone
        store.delete_key(f"{_NS}/answer/{nonce}")
    return f"{_NS}/{token}/"


def run_on_main_and_share(func, *args, **kwargs):
    """Runs ``func`` on rank 0 only and returns its result on every rank.

    Unlike ``speechbrain.utils.distributed.run_on_main``, the result (which
    must be picklable) reaches every rank, and an exception on rank 0 is
    raised on every rank instead of leaving the others waiting.

    Arguments
    ---------
    func : callable
        What to run.
    *args
        Positional arguments of ``func``.
    **kwargs
        Keyword arguments of ``func``.

    Returns
    -------
    object
        What ``func`` returned on rank 0.

    Example
    -------
    >>> run_on_main_and_share(sorted, [3, 1, 2])
    [1, 2, 3]
    """
    result, error = None, None
    if if_main_process():
        try:
            # Collectives inside func become no-ops (only rank 0 runs it).
            with MainProcessContext():
                result = func(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - shared, then re-raised
            error = err
    message = None if error is None else f"{type(error).__name__}: {error}"
    result, message = ddp_broadcast((result, message))
    if error is not None:
        raise error
    if message is not None:
        raise RuntimeError(f"rank 0 failed: {message}")
    return result


def cleanup_distributed(finished=False):
    """Destroys the DDP process group if there is one.

    Whatever still refers to the group (DDP wrappers, gloo work objects
    holding tensors) is collected first, while the interpreter is fully
    alive: left to interpreter shutdown, gloo's threads can abort the
    process ("terminate called without an active exception", SIGABRT)
    after a run that finished, which torchrun reports as a failure.

    Arguments
    ---------
    finished : bool
        True when every rank finished its work: the ranks then meet in a
        barrier first, so that none tears the group down while another
        still communicates (never after an error: a dead peer would make
        the barrier wait for the timeout).

    Returns
    -------
    None

    Example
    -------
    >>> cleanup_distributed()
    """
    if not is_distributed_initialized():
        return
    try:
        if finished:
            torch.distributed.barrier()
    finally:
        gc.collect()
        torch.distributed.destroy_process_group()
        gc.collect()


def unwrap(module):
    """Returns the module inside a DDP/DataParallel wrapper (or itself).

    Arguments
    ---------
    module : torch.nn.Module
        A module, possibly wrapped.

    Returns
    -------
    torch.nn.Module
        The wrapped module.

    Example
    -------
    >>> layer = torch.nn.Linear(2, 2)
    >>> unwrap(torch.nn.DataParallel(layer)) is layer
    True
    """
    return getattr(module, "module", module)


def state_digest(module):
    """SHA-256 of a module's state dict (names, dtypes, shapes, values).

    Arguments
    ---------
    module : torch.nn.Module
        The module (wrappers are looked through).

    Returns
    -------
    str
        Hex digest; equal digests mean bit-identical parameters and
        buffers.

    Example
    -------
    >>> torch.manual_seed(0)
    <torch._C.Generator object at ...>
    >>> a = torch.nn.Linear(2, 2)
    >>> b = torch.nn.Linear(2, 2)
    >>> b.load_state_dict(a.state_dict())
    <All keys matched successfully>
    >>> state_digest(a) == state_digest(b)
    True
    """
    return state_dict_digest(unwrap(module).state_dict())


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
                tmp = ckpt.path / (COMPLETE_MARKER + ".tmp")
                tmp.write_text(json.dumps({"files": files}, sort_keys=True))
                os.replace(tmp, ckpt.path / COMPLETE_MARKER)
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


@register_checkpoint_hooks
class SpeakerBrain(sb.core.Brain):
    """Brain for speaker-embedding training with an AAM-softmax classifier.

    Expected ``modules``: ``embedding_model`` (``(wavs, lengths)`` to
    ``[B, 1, D]``) and ``classifier`` (``[B, 1, D]`` to cosine logits
    ``[B, 1, N]``). Expected ``hparams``: ``compute_cost`` (e.g.
    ``LogSoftmaxWrapper(AdditiveAngularMargin(...))``), ``train_logger``;
    optional: ``train_pipeline``, ``lr_scheduler``, ``sync_batchnorm``
    (default True), ``ckpt_num_to_keep`` (1), ``eer_trials``,
    ``eer_data_folder``, ``eer_interval``, ``eer_max_seconds``,
    ``max_bad_file_fraction`` (0.01), ``bad_file_min_files`` (500) and
    ``allow_paths_outside_data_folder`` (False). Batches carry ``sig``
    (waveforms, lengths) and ``spk_id_encoded``, and, from
    :class:`~speechbrain_ext.data.safe_audio.FaultTolerantCollate`, the
    bad files met (``bad_files``, ``files_read``).

    Faults (counted per epoch, logged in the train log as
    ``skipped_files`` and ``skipped_steps``):

    * bad audio files are counted and named in warnings;
      :class:`~speechbrain_ext.data.safe_audio.TooManyBadFilesError`
      stops the run when more than ``max_bad_file_fraction`` of the files
      read in the epoch are bad;
    * an optimiser step whose gradients (after the DDP all-reduce, so all
      ranks agree) are not finite is skipped: no update, no LR-schedule
      step, and the BatchNorm statistics of its forward pass are undone.
      More than ``--nonfinite_patience`` (3) such steps in an epoch stop
      the run. This replaces SpeechBrain's loss check, which lets a
      non-finite step through and poisons the weights unless
      ``--skip_nonfinite_grads`` is given.

    Arguments
    ---------
    *args
        As for ``speechbrain.core.Brain``.
    **kwargs
        As for ``speechbrain.core.Brain``.

    Example
    -------
    >>> from speechbrain.lobes.models.ECAPA_TDNN import Classifier
    >>> from speechbrain.nnet.losses import (
    ...     AdditiveAngularMargin, LogSoftmaxWrapper)
    >>> from speechbrain.dataio.batch import PaddedBatch
    >>> class Mean(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.lin = torch.nn.Linear(1, 3)
    ...     def forward(self, wavs, lengths=None):
    ...         return self.lin(wavs.mean(1, keepdim=True)).unsqueeze(1)
    >>> brain = SpeakerBrain(
    ...     modules={"embedding_model": Mean(),
    ...              "classifier": Classifier(3, out_neurons=2)},
    ...     hparams={"compute_cost": LogSoftmaxWrapper(
    ...         AdditiveAngularMargin(margin=0.2, scale=30))},
    ...     run_opts={"device": "cpu"})
    >>> batch = PaddedBatch([
    ...     {"sig": torch.randn(160), "spk_id_encoded": torch.tensor([0])},
    ...     {"sig": torch.randn(160), "spk_id_encoded": torch.tensor([1])}])
    >>> brain.on_stage_start(sb.Stage.TRAIN, 1)
    >>> out = brain.compute_forward(batch, sb.Stage.TRAIN)
    >>> loss = brain.compute_objectives(out, batch, sb.Stage.TRAIN)
    >>> out[0].shape, loss.dim(), brain.stage_sums[sb.Stage.TRAIN][2].item()
    (torch.Size([2, 1, 2]), 0, 2.0)
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.valid_enabled = False
        self.stage_sums = {}
        self.stage_started = {}
        self.bad_files = {}
        self.skipped_steps = 0
        self.nonfinite_count = 0
        self.train_stats = None
        self.last_stats = {}
        self._restored = None
        self._epoch = None
        self._buffer_snapshot = None

    # ------------------------------------------------------------------
    # Forward and loss
    # ------------------------------------------------------------------
    def compute_forward(self, batch, stage):
        """Embeds and classifies a batch (augmented when training).

        Arguments
        ---------
        batch : speechbrain.dataio.batch.PaddedBatch
            With ``sig`` (waveforms, relative lengths).
        stage : speechbrain.Stage
            TRAIN, VALID or TEST.

        Returns
        -------
        logits : torch.Tensor
            Cosine logits ``[B, 1, N]``.
        lengths : torch.Tensor
            Relative lengths of the model input.
        """
        batch = batch.to(self.device)
        wavs, lengths = batch.sig
        pipeline = getattr(self.hparams, "train_pipeline", None)
        if stage == sb.Stage.TRAIN and pipeline is not None:
            wavs, lengths = pipeline(wavs, lengths)
        embedding_model = self.modules.embedding_model
        classifier = self.modules.classifier
        if stage != sb.Stage.TRAIN:
            # No DDP wrapper outside training: its first forward after
            # training broadcasts buffers, a collective that would hang if
            # the ranks ran different numbers of validation batches.
            embedding_model, classifier = (
                unwrap(embedding_model),
                unwrap(classifier),
            )
        embeddings = embedding_model(wavs, lengths)
        return classifier(embeddings), lengths

    def compute_objectives(self, predictions, batch, stage):
        """AAM-softmax loss; accumulates loss and accuracy sums.

        Training accuracy is that of the margin-applied logits (as the
        official trainer reports it); validation and test accuracy that of
        the plain cosine logits (speaker identification).

        Arguments
        ---------
        predictions : tuple
            ``(logits, lengths)`` from :meth:`compute_forward`.
        batch : speechbrain.dataio.batch.PaddedBatch
            With ``spk_id_encoded``.
        stage : speechbrain.Stage
            TRAIN, VALID or TEST.

        Returns
        -------
        torch.Tensor
            The mean loss of the batch.
        """
        logits, lengths = predictions
        labels = batch.spk_id_encoded.data.to(logits.device)
        loss = self.hparams.compute_cost(logits, labels, lengths)
        with torch.no_grad():
            target = labels.reshape(-1).long()
            scores = logits.squeeze(1).float()
            margin_fn = getattr(self.hparams.compute_cost, "loss_fn", None)
            if stage == sb.Stage.TRAIN and margin_fn is not None:
                one_hot = F.one_hot(target, scores.shape[1]).float()
                scores = margin_fn(scores, one_hot)
            correct = (scores.argmax(dim=1) == target).sum()
            sums = self.stage_sums.get(stage)
            if sums is not None:
                values = torch.stack(
                    [
                        loss.detach().double() * target.numel(),
                        correct.double(),
                        torch.tensor(
                            float(target.numel()),
                            dtype=torch.float64,
                            device=loss.device,
                        ),
                    ]
                )
                # A non-finite batch (its step is skipped) is left out.
                values = torch.where(
                    torch.isfinite(loss.detach()),
                    values,
                    torch.zeros_like(values),
                )
                sums += values.to(sums.device)
        return loss

    # ------------------------------------------------------------------
    # Fault-tolerant training steps
    # ------------------------------------------------------------------
    def _account_files(self, batch, stage):
        """Adds a batch's bad files to the stage's tracker (may raise)."""
        bad = getattr(batch, "bad_files", None)
        tracker = self.bad_files.get(stage)
        if bad is None or tracker is None:
            return
        tracker.update(bad, getattr(batch, "files_read", len(batch)))

    def fit_batch(self, batch):
        """Trains on a batch; skips batches left without usable audio.

        Arguments
        ---------
        batch : PaddedBatch or EmptyBatch
            From the training loader.

        Returns
        -------
        torch.Tensor
            The detached loss (NaN for a skipped batch).
        """
        self._account_files(batch, sb.Stage.TRAIN)
        if len(batch) == 0 or (getattr(batch, "dropped", 0) and len(batch) < 2):
            return self._skip_batch_without_audio(batch)
        if (self.step - 1) % self.grad_accumulation_factor == 0:
            # Buffers (BatchNorm statistics) before this step's forwards.
            self._buffer_snapshot = [
                (b, b.detach().clone()) for b in self.modules.buffers()
            ]
        return super().fit_batch(batch)

    def _skip_batch_without_audio(self, batch):
        """Skips a batch whose items were (nearly) all dropped."""
        message = (
            f"too little usable audio in training batch {self.step} of "
            f"epoch {self._epoch}: {len(batch)} item(s) left, "
            f"{getattr(batch, 'dropped', 0)} dropped (no readable file of "
            "their speaker)"
        )
        if self.distributed_launch:
            # The other ranks would wait for this one's gradients.
            raise RuntimeError(message + " (cannot skip a step under DDP)")
        logger.warning(message + "; batch skipped")
        self.skipped_steps += 1
        return torch.tensor(float("nan"))

    def check_loss_isfinite(self, loss):
        """Does nothing: non-finite steps are caught on the gradients.

        SpeechBrain's check counts a non-finite loss before ``backward``
        but still applies the step. :meth:`optimizers_step` instead checks
        the gradients after the DDP all-reduce (the same on every rank)
        and skips the step.

        Arguments
        ---------
        loss : torch.Tensor
            The scaled loss (unused).

        Returns
        -------
        None
        """
        del loss

    def _gradients_finite(self):
        """Whether every gradient is finite (one device sync)."""
        flags = [
            torch.isfinite(p.grad).all()
            for p in self.modules.parameters()
            if p.grad is not None
        ]
        return not flags or bool(torch.stack(flags).all())

    def optimizers_step(self):
        """Steps the optimiser, or skips the step if gradients are not finite.

        As ``Brain.optimizers_step`` (unscale, clip, step, zero the
        gradients), plus the per-iteration LR schedule
        (``hparams.lr_scheduler``, called only for steps that are taken),
        and the non-finite handling described in the class docstring.

        Returns
        -------
        None
        """
        if self.optimizers_dict is not None:
            optimizers = self.freeze_optimizers(self.optimizers_dict)
        elif self.opt_class is not None:
            optimizers = {"optimizer": self.optimizer}
        else:
            return
        for opt in optimizers.values():
            self.scaler.unscale_(opt)
        if not self._gradients_finite():
            self._skip_nonfinite_step(optimizers)
            return
        scheduler = getattr(self.hparams, "lr_scheduler", None)
        if scheduler is not None:
            scheduler(self.optimizer)
        for opt in optimizers.values():
            torch.nn.utils.clip_grad_norm_(
                opt.param_groups[0]["params"], self.max_grad_norm
            )
        for opt in optimizers.values():
            self.scaler.step(opt)
        self.scaler.update()
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        self.optimizer_step += 1

    def _skip_nonfinite_step(self, optimizers):
        """Drops the gradients and BatchNorm updates of a bad step."""
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        if self._buffer_snapshot is not None:
            with torch.no_grad():
                for buffer, saved in self._buffer_snapshot:
                    buffer.copy_(saved)
        if self.scaler.is_enabled():
            # fp16: lowers the loss scale; overflows are routine there.
            self.scaler.update()
            logger.info(
                f"Skipped the optimiser step after batch {self.step} of "
                f"epoch {self._epoch}: non-finite gradients (fp16)"
            )
            return
        self.skipped_steps += 1
        self.nonfinite_count += 1
        logger.warning(
            f"Skipped the optimiser step after batch {self.step} of epoch "
            f"{self._epoch}: non-finite loss or gradients "
            f"({self.nonfinite_count} this epoch, --nonfinite_patience="
            f"{self.nonfinite_patience}); weights and BatchNorm statistics "
            "left unchanged"
        )
        if self.nonfinite_count > self.nonfinite_patience:
            raise ValueError(
                f"{self.nonfinite_count} optimiser steps of epoch "
                f"{self._epoch} had non-finite loss or gradients, more than "
                f"--nonfinite_patience={self.nonfinite_patience}. The last "
                "checkpoint holds finite weights; check the data (NaN "
                "audio), lower the learning rate, or debug with "
                "torch.autograd.detect_anomaly()."
            )

    @torch.no_grad()
    def evaluate_batch(self, batch, stage):
        """Evaluates a batch; a batch without usable audio is skipped.

        Arguments
        ---------
        batch : PaddedBatch or EmptyBatch
            From the validation loader.
        stage : speechbrain.Stage
            VALID or TEST.

        Returns
        -------
        torch.Tensor
            The detached loss (NaN for a skipped batch, which SpeechBrain
            leaves out of its running average).
        """
        self._account_files(batch, stage)
        if len(batch) == 0:
            return torch.tensor(float("nan"))
        return super().evaluate_batch(batch, stage)

    # ------------------------------------------------------------------
    # Stages, logging and checkpoints
    # ------------------------------------------------------------------
    def fit(self, epoch_counter, train_set, valid_set=None, **kwargs):
        """``Brain.fit``, remembering whether there is validation.

        Arguments
        ---------
        epoch_counter : iterable
            Yields epoch numbers.
        train_set : DataLoader or Dataset
            Training data.
        valid_set : DataLoader or Dataset or None
            Validation data.
        **kwargs
            Passed to ``Brain.fit``.

        Returns
        -------
        None
        """
        self.valid_enabled = valid_set is not None
        return super().fit(epoch_counter, train_set, valid_set, **kwargs)

    def on_fit_start(self):
        """``Brain.on_fit_start``; then marks a resume in the train log.

        The train-log lines of epochs that are redone (logged before an
        interruption, but not checkpointed) become comments, and a comment
        names the checkpoint resumed from
        (:func:`~speechbrain_ext.training.train_log.mark_resume`).

        Returns
        -------
        None
        """
        super().on_fit_start()
        logger_ = getattr(self.hparams, "train_logger", None)
        log_file = getattr(logger_, "save_file", None)
        if log_file is None or not if_main_process():
            return
        ckpt = getattr(self.checkpointer, "last_recovered", None)
        counter = getattr(self.hparams, "epoch_counter", None)
        epoch = int(getattr(counter, "current", 0)) if ckpt else 0
        end_of_epoch = bool(ckpt.meta.get("end-of-epoch")) if ckpt else True
        if not end_of_epoch:
            # EpochCounter restores "epoch - 1" to repeat the epoch saved in.
            epoch += 1
        limit = getattr(counter, "limit", None)
        mark_resume(
            log_file,
            epoch=epoch,
            end_of_epoch=end_of_epoch,
            checkpoint=ckpt.path.name if ckpt else None,
            step=int(self.optimizer_step),
            finished=end_of_epoch and limit is not None and epoch >= limit,
        )

    def on_stage_start(self, stage, epoch=None):
        """Resets (or restores, after an intra-epoch resume) the sums.

        Arguments
        ---------
        stage : speechbrain.Stage
            The stage starting.
        epoch : int or None
            The epoch.

        Returns
        -------
        None
        """
        device = torch.device(self.device)
        sums = torch.zeros(3, dtype=torch.float64, device=device)
        elapsed = 0.0
        tracker = BadFileTracker(
            max_fraction=getattr(self.hparams, "max_bad_file_fraction", 0.01),
            min_files=getattr(self.hparams, "bad_file_min_files", 500),
            what="training" if stage == sb.Stage.TRAIN else "evaluation",
        )
        if stage == sb.Stage.TRAIN:
            self._epoch = epoch
            self.skipped_steps = 0
            self._buffer_snapshot = None
        if stage == sb.Stage.TRAIN and self._restored is not None:
            sums += torch.tensor(self._restored["sums"], dtype=torch.float64)
            elapsed = self._restored["elapsed"]
            bad, files, skipped = self._restored["faults"]
            tracker.reset(bad=bad, files=files)
            self.skipped_steps = int(skipped)
            self._restored = None
        self.stage_sums[stage] = sums
        self.bad_files[stage] = tracker
        self.stage_started[stage] = time.time() - elapsed

    def _fault_counts(self, stage):
        """This rank's [bad files, files read, skipped steps] of a stage."""
        tracker = self.bad_files.get(stage)
        bad = tracker.bad if tracker is not None else 0
        files = tracker.files if tracker is not None else 0
        skipped = self.skipped_steps if stage == sb.Stage.TRAIN else 0
        return [float(bad), float(files), float(skipped)]

    def _reduced_stats(self, stage):
        """Loss, accuracy, count and faults of a stage, summed over ranks."""
        sums = self.stage_sums[stage]
        counts = torch.tensor(
            self._fault_counts(stage), dtype=torch.float64, device=sums.device
        )
        sums = torch.cat([sums, counts])
        if is_distributed_initialized():
            torch.distributed.all_reduce(sums)
        loss_sum, correct, count, bad, files, skipped = sums.tolist()
        count = max(count, 1.0)
        return {
            "loss": loss_sum / count,
            "acc": correct / count,
            "n": int(count),
            "skipped_files": int(bad),
            "files_read": int(files),
            "skipped_steps": int(skipped),
        }

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs the epoch, validates and checkpoints.

        Arguments
        ---------
        stage : speechbrain.Stage
            The stage ending.
        stage_loss : float
            SpeechBrain's running average of the loss (unused: the sums
            are exact and reduced over ranks).
        epoch : int or None
            The epoch.

        Returns
        -------
        None
        """
        stats = self._reduced_stats(stage)
        minutes = (time.time() - self.stage_started[stage]) / 60.0
        if stats["skipped_files"] or stats["skipped_steps"]:
            logger.warning(
                f"Epoch {epoch} ({stage.name.lower()}): skipped "
                f"{stats['skipped_files']} bad audio file(s) of the "
                f"{stats['files_read']} read and {stats['skipped_steps']} "
                "optimiser step(s)"
            )
        if stage == sb.Stage.TRAIN:
            self.sync_buffers()
            self.train_stats = {
                "loss": stats["loss"],
                "acc": stats["acc"],
                "minutes": minutes,
                "skipped_files": stats["skipped_files"],
                "skipped_steps": stats["skipped_steps"],
            }
            if not self.valid_enabled:
                self._end_of_epoch(epoch, None, self._maybe_trial_eer(epoch))
            return
        result = {
            "loss": stats["loss"],
            "error_rate": 1.0 - stats["acc"],
            "minutes": minutes,
            "skipped_files": stats["skipped_files"],
        }
        if stage == sb.Stage.VALID:
            self._end_of_epoch(epoch, result, self._maybe_trial_eer(epoch))
        else:
            self.last_stats[stage] = result
            if hasattr(self.hparams, "train_logger"):
                self.hparams.train_logger.log_stats(
                    {"Epoch loaded": self.hparams.epoch_counter.current},
                    test_stats=result,
                )

    def current_lr(self):
        """The LR of the first parameter group (0.0 before training).

        Returns
        -------
        float
            The learning rate.
        """
        optimizer = getattr(self, "optimizer", None)
        if optimizer is None:
            return 0.0
        return float(optimizer.param_groups[0]["lr"])

    def _end_of_epoch(self, epoch, valid_stats, trial_stats=None):
        """Writes the train log line and the end-of-epoch checkpoint.

        ``trial_stats`` (the EER monitoring) go to the log as ``test``
        values: they are scores on a test list, not on held-out training
        data, and only ``valid_stats`` (held-out) rank the checkpoints.
        """
        self.last_stats[sb.Stage.VALID] = valid_stats
        meta = {"epoch": int(epoch)}
        if self.train_stats is not None:
            meta["train_loss"] = float(self.train_stats["loss"])
        if valid_stats is not None:
            meta["error_rate"] = float(valid_stats["error_rate"])
        if trial_stats is not None:
            meta["trials_eer"] = float(trial_stats["eer"])
        if hasattr(self.hparams, "train_logger"):
            self.hparams.train_logger.log_stats(
                stats_meta={
                    "epoch": int(epoch),
                    "lr": self.current_lr(),
                    "steps": int(self.optimizer_step),
                },
                train_stats=self.train_stats,
                valid_stats=valid_stats,
                test_stats=trial_stats,
            )
        if self.checkpointer is not None:
            self.checkpointer.save_and_keep_only(
                meta=meta,
                min_keys=["error_rate"] if valid_stats is not None else [],
                importance_keys=[],
                num_to_keep=int(getattr(self.hparams, "ckpt_num_to_keep", 1)),
            )

    def sync_buffers(self):
        """Copies rank 0's buffers (BatchNorm statistics) to all ranks.

        Without SyncBatchNorm every rank updates its running statistics
        with its own batches; DDP broadcasts them before every training
        forward, so after the epoch's last batch they differ slightly.

        Returns
        -------
        None
        """
        if not is_distributed_initialized():
            return
        for module in self.modules.values():
            for buffer in unwrap(module).buffers():
                torch.distributed.broadcast(buffer, src=0)

    # ------------------------------------------------------------------
    # Optional EER on a trial list
    # ------------------------------------------------------------------
    def _maybe_trial_eer(self, epoch):
        """EER and minDCF on ``hparams.eer_trials`` every ``eer_interval``.

        Returns None, or ``{"eer": ..., "min_dcf": ...}`` (official
        definitions; minDCF at P_target 0.05) on every rank.
        """
        trials = getattr(self.hparams, "eer_trials", None)
        interval = int(getattr(self.hparams, "eer_interval", 0) or 0)
        if not trials or interval <= 0 or epoch is None or epoch % interval:
            return None
        eer = None
        if if_main_process():
            with MainProcessContext():
                eer = self.trial_eer(
                    trials,
                    getattr(self.hparams, "eer_data_folder", None),
                    getattr(self.hparams, "eer_max_seconds", None),
                )
        return ddp_broadcast(eer)

    @torch.no_grad()
    def trial_eer(self, trial_file, data_folder=None, max_seconds=None):
        """EER of cosine scoring on a trial list, with the current model.

        Embeddings are computed one utterance at a time (full length, or a
        centre crop of ``max_seconds``) with the unwrapped model in eval
        mode, so this may run on one rank only. Relative paths must stay
        in ``data_folder`` unless ``hparams.allow_paths_outside_data_folder``;
        the trials of an unusable audio file are left out (with a warning).

        Arguments
        ---------
        trial_file : str
            Lines ``label enrol_path test_path``.
        data_folder : str or None
            Root of relative paths in the list.
        max_seconds : float or None
            Longest audio used per utterance.

        Returns
        -------
        dict or None
            ``eer`` (in [0, 1]) and ``min_dcf`` (P_target 0.05, C_miss =
            C_fa = 1), both as the official ``tuneThreshold.py`` computes
            them; None when no target or no non-target trial is left.
        """
        from speechbrain_ext.data.paths import resolve_path
        from speechbrain_ext.data.safe_audio import (
            BadAudioError,
            read_checked_crop,
        )
        from speechbrain_ext.scoring.metrics import compute_metrics
        from speechbrain_ext.scoring.trials import read_trials

        trials = read_trials(trial_file)
        rate = int(getattr(self.hparams, "sample_rate", 16000))
        allow = bool(
            getattr(self.hparams, "allow_paths_outside_data_folder", False)
        )
        model = unwrap(self.modules.embedding_model)
        was_training = model.training
        model.eval()
        embeddings = {}
        try:
            for utt in trials.utterances():
                path = utt
                if data_folder:
                    path = resolve_path(
                        utt, data_folder, allow_outside=allow, where=trial_file
                    )
                try:
                    n = sf.info(path).frames
                    if max_seconds:
                        n = min(n, int(round(max_seconds * rate)))
                    wav = read_checked_crop(path, max(n, 1), sample_rate=rate)
                except (BadAudioError, RuntimeError) as err:
                    # (soundfile's errors are RuntimeErrors)
                    logger.warning(f"EER trials: skipped {path}: {err}")
                    continue
                wav = torch.as_tensor(wav, device=self.device)
                with self.evaluation_ctx:
                    emb = model(wav[None], torch.ones(1, device=self.device))
                embeddings[utt] = F.normalize(emb.float().reshape(-1), dim=0)
        finally:
            model.train(was_training)
        kept = [
            (e, t, label)
            for e, t, label in zip(
                trials.enrol, trials.test, trials.labels, strict=True
            )
            if e in embeddings and t in embeddings
        ]
        labels = torch.as_tensor([int(label) for _, _, label in kept])
        if not kept or labels.min() == labels.max():
            logger.warning(f"EER trials: too few usable trials in {trial_file}")
            return None
        scores = torch.stack(
            [torch.dot(embeddings[e], embeddings[t]) for e, t, _ in kept]
        ).cpu()
        metrics = compute_metrics(labels.numpy(), scores.numpy(), (0.05,))
        return {"eer": metrics.eer, "min_dcf": metrics.min_dcf[0.05]}

    # ------------------------------------------------------------------
    # DDP
    # ------------------------------------------------------------------
    def _wrap_distributed(self):
        """DDP-wraps trainable modules; SyncBatchNorm only on CUDA."""
        if not self.distributed_launch:
            return super()._wrap_distributed()
        on_cuda = str(self.device).startswith("cuda")
        use_sync = on_cuda and bool(
            getattr(self.hparams, "sync_batchnorm", True)
        )
        for name, module in self.modules.items():
            if not any(p.requires_grad for p in module.parameters()):
                continue
            if use_sync:
                module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
            synced = sum(
                isinstance(m, torch.nn.SyncBatchNorm) for m in module.modules()
            )
            logger.info(
                f"DDP: {name} on {torch.distributed.get_backend()}, "
                f"{torch.distributed.get_world_size()} process(es), "
                f"{synced} SyncBatchNorm layer(s)"
            )
            module = torch.nn.parallel.DistributedDataParallel(
                module,
                device_ids=[self.device] if on_cuda else None,
                find_unused_parameters=self.find_unused_parameters,
            )
            self.modules[name] = module

    def weight_digests(self):
        """State digests of every module (see :func:`state_digest`).

        Returns
        -------
        dict
            Module name to hex digest.
        """
        return {name: state_digest(m) for name, m in self.modules.items()}

    # ------------------------------------------------------------------
    # Checkpoint hooks (replace Brain's; same fields plus epoch sums)
    # ------------------------------------------------------------------
    @mark_as_saver
    def _save(self, path):
        sums = self.stage_sums.get(sb.Stage.TRAIN)
        started = self.stage_started.get(sb.Stage.TRAIN)
        state = {
            "step": int(self.step),
            "avg_train_loss": float(self.avg_train_loss),
            "optimizer_step": int(self.optimizer_step),
            "train_sums": [0.0, 0.0, 0.0] if sums is None else sums.tolist(),
            "train_elapsed": 0.0 if started is None else time.time() - started,
            "train_faults": self._fault_counts(sb.Stage.TRAIN),
        }
        with open(path, "w", encoding="utf-8") as f:
            f.write(yaml.safe_dump(state))

    @mark_as_loader
    def _recover(self, path, end_of_epoch):
        with open(path, encoding="utf-8") as f:
            state = yaml.safe_load(f)
        self.step = int(state["step"])
        self.avg_train_loss = float(state["avg_train_loss"])
        self.optimizer_step = int(state.get("optimizer_step", self.step))
        self._restored = None
        if not end_of_epoch:
            # Other ranks' partial sums were not saved; rank 0 restores
            # its own so that the epoch's logged means stay unbiased.
            sums = [0.0, 0.0, 0.0]
            counts = [0.0, 0.0, 0.0]
            if if_main_process():
                sums = state.get("train_sums", sums)
                counts = state.get("train_faults", counts)
            self._restored = {
                "sums": sums,
                "elapsed": float(state.get("train_elapsed", 0.0)),
                "faults": counts,
            }
