"""Run options and DDP set-up for the training recipe.

* :func:`resolve_run_opts`: device and backend defaults (SpeechBrain's
  ``--device`` defaults to None; CPU runs use gloo);
* :func:`init_distributed`: DDP set-up that survives ``torchrun``
  restarts (a fresh store namespace per attempt);
* :func:`run_on_main_and_share`: run preparation on rank 0 and give every
  rank its result;
* :func:`cleanup_distributed`: tear the process group down.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import dataclasses
import datetime
import gc
import os
import time
import uuid

import speechbrain as sb
import torch
from speechbrain.utils.distributed import (
    MainProcessContext,
    ddp_broadcast,
    if_main_process,
    is_distributed_initialized,
)
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)

def _given(run_opts, key):
    """Whether a run option was given explicitly."""
    if isinstance(run_opts, dict):
        return key in run_opts
    return key in run_opts.overridden_args


def default_device(local_rank=0):
    """The device used when ``--device`` is not given: CUDA if available.

    SpeechBrain 1.1 leaves ``device`` at None, which silently means CPU.

    Arguments
    ---------
    local_rank : int
        This process's GPU under ``torchrun``.

    Returns
    -------
    str
        ``cuda:<local_rank>`` when CUDA is available, else ``cpu``.

    Example
    -------
    >>> default_device() in ("cpu", "cuda:0")
    True
    """
    return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"


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
        device = default_device(local_rank)
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
