"""Multi-node training emulated on one machine (CPU, gloo).

Two ``torchrun`` launchers, each ``--nnodes=2 --nproc_per_node=1``, meet
on 127.0.0.1, through a c10d rendezvous (the first one hosts its store,
as the node named by ``--rdzv_endpoint`` would) or the static one
(``--node_rank``, ``--master_addr``), and run the recipe with the tiny
model of ``test_training.py`` (whose helpers this module reuses), both
writing to one output folder, as on a shared file system:

* the two "nodes" finish with identical weights and the step counts of a
  two-replica run (c10d);
* with ``--max-restarts=1``, a worker killed mid-epoch (``kill -9`` by the
  fault-injection hooks of ``tests/fault_injection.py``) makes
  both launchers restart their workers, which meet again, resume from the
  last checkpoint and finish with identical weights and the uninterrupted
  run's step counts (c10d and static);
* why that needs ``init_distributed``'s fresh store namespace, made
  deterministic: workers started with different restart counts (the
  killed worker's node counts a restart; the other node may restart
  as a membership change, which does not count) and seconds apart still
  form a group in a store full of an earlier attempt's keys.

Every process of a test (launchers and workers, which ``torchrun`` puts
in sessions of their own) is killed when the test ends, pass or fail.
"""

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import fault_injection as faults
import pytest
import torch
from helpers import ROOT
from test_training import (
    RECIPE,
    TIMEOUT,
    counters,
    env,
    expected_steps,
    recipe_args,
    train_log,
)

EPOCHS = 2
#: Set in the launchers' environment (workers inherit it), to find and
#: kill every process of a test at its end.
TAG = "MRRAWNET_MULTINODE_TEST"


def _launcher_missing():
    """Why ``torchrun`` cannot run here (None if it can)."""
    if importlib.util.find_spec("torch.distributed.run") is None:
        return "torchrun (torch.distributed.run) not found"
    if not torch.distributed.is_available():
        return "torch.distributed is not available in this build"
    if not torch.distributed.is_gloo_available():
        return "the gloo backend is not available in this build"
    return None


pytestmark = pytest.mark.skipif(
    _launcher_missing() is not None, reason=str(_launcher_missing())
)


def free_port():
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tagged(tag):
    """Process ids whose environment holds ``TAG=tag`` (Linux /proc)."""
    needle = f"{TAG}={tag}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    pids.append(int(entry))
        except OSError:  # gone, or not ours
            continue
    return pids


def _kill_all(procs, tag):
    """SIGKILLs the launchers' process groups and every tagged process."""
    for proc in procs:
        if proc.poll() is None:  # else its pid may name another process
            os.killpg(proc.pid, signal.SIGKILL)
    for pid in _tagged(tag):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for proc in procs:
        proc.wait()


def rendezvous(backend, node, port, tag):
    """``torchrun`` options that make this launcher node ``node`` of 2."""
    if backend == "static":  # the README's --master_addr form
        return [
            f"--node_rank={node}",
            "--master_addr=127.0.0.1",
            f"--master_port={port}",
        ]
    return [
        "--rdzv_backend=c10d",
        f"--rdzv_endpoint=127.0.0.1:{port}",
        f"--rdzv_id=mrrawnet-{tag}",
        # Node 0 hosts the rendezvous store, as on separate hosts.
        f"--rdzv_conf=is_host={int(node == 0)}",
    ]


def two_nodes(recipe_argv, logs, extra_env=None, max_restarts=0, rdzv="c10d"):
    """Runs two ``torchrun`` launchers (one node each) to completion.

    Returns their return codes, outputs and the wall time in seconds.
    Fails the test on timeout; kills every process of the run at the end.
    """
    tag = uuid.uuid4().hex
    port = free_port()
    procs = []
    began = time.time()
    try:
        for node, log in enumerate(logs):
            cmd = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=2",
                "--nproc_per_node=1",
                *rendezvous(rdzv, node, port, tag),
                f"--max-restarts={max_restarts}",
                str(ROOT / "tests" / "fault_injection.py"),
                str(RECIPE),
                *recipe_argv,
            ]
            with open(log, "w") as out:
                procs.append(
                    subprocess.Popen(
                        cmd,
                        env={**env(), **(extra_env or {}), TAG: tag},
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        cwd=RECIPE.parents[1],
                        start_new_session=True,
                    )
                )
        deadline = began + TIMEOUT
        while time.time() < deadline:
            if all(proc.poll() is not None for proc in procs):
                break
            time.sleep(0.1)
        else:
            texts = "\n".join(open(log).read()[-3000:] for log in logs)
            pytest.fail(f"two-node run timed out:\n{texts}")
        seconds = time.time() - began
    finally:
        _kill_all(procs, tag)
    codes = [proc.returncode for proc in procs]
    return codes, [open(log).read() for log in logs], seconds


def assert_identical_weights(out):
    """Both ranks wrote the same weight digests; returns them."""
    digests = [
        json.load(open(out / f"weight_digests_rank{r}.json")) for r in (0, 1)
    ]
    assert digests[0] == digests[1]
    assert set(digests[0]) == {"embedding_model", "classifier"}
    return digests[0]


def assert_ok(codes, texts):
    """Both launchers exited 0."""
    for code, text in zip(codes, texts, strict=True):
        assert code == 0, text[-4000:]


@pytest.fixture(scope="module")
def two_node_run(corpus, tmp_path_factory):
    """An uninterrupted two-node run of EPOCHS epochs."""
    base = tmp_path_factory.mktemp("multinode")
    out = base / "out"
    argv = recipe_args(
        corpus,
        out,
        f"--number_of_epochs={EPOCHS}",
        "--ckpt_interval_steps=2",
    )
    logs = [base / f"node{n}.txt" for n in (0, 1)]
    codes, texts, seconds = two_nodes(argv, logs)
    print(f"\nMULTINODE two launchers, no fault: {seconds:.1f} s")
    return {"out": out, "codes": codes, "texts": texts}


def test_two_nodes_identical_weights(two_node_run):
    out = two_node_run["out"]
    assert_ok(two_node_run["codes"], two_node_run["texts"])
    # One rank per node: one node's worker is rank 0, the other's rank 1.
    assert_identical_weights(out)
    final = counters(out / "save")
    assert final["optimizer_step"] == expected_steps(
        out / "save", EPOCHS, replicas=2
    )
    assert final["scheduler_step"] == final["optimizer_step"]
    assert final["epoch"] == EPOCHS and final["end_of_epoch"]
    assert [row[0] for row in train_log(out)] == list(range(1, EPOCHS + 1))


@pytest.mark.parametrize("rdzv", ["c10d", "static"])
def test_two_nodes_elastic_restart_after_worker_kill(
    corpus, two_node_run, tmp_path, rdzv
):
    reference = two_node_run["out"]
    assert_ok(two_node_run["codes"], two_node_run["texts"])
    out = tmp_path / "out"
    marker = tmp_path / "killed_once"
    # Rank 1 dies in epoch 2, after its first intra-epoch checkpoint.
    kill_at = expected_steps(reference / "save", 1, replicas=2) + 3
    argv = recipe_args(
        corpus,
        out,
        f"--number_of_epochs={EPOCHS}",
        "--ckpt_interval_steps=2",
    )
    logs = [tmp_path / f"node{n}.txt" for n in (0, 1)]
    codes, texts, seconds = two_nodes(
        argv,
        logs,
        extra_env={
            faults.ENV_KILL_AT_STEP: str(kill_at),
            faults.ENV_KILL_RANK: "1",
            faults.ENV_MARKER: str(marker),
        },
        max_restarts=1,
        rdzv=rdzv,
    )
    assert_ok(codes, texts)
    text = "\n".join(texts)
    assert marker.read_text() == f"killed after optimiser step {kill_at}\n"
    assert text.count("FAULT INJECTION: killing process") == 1
    # A restarted worker met the others in a fresh namespace of the store.
    assert "torchrun restart 1: joining a fresh process group" in text
    assert "Loading a checkpoint from" in text, text[-4000:]
    assert_identical_weights(out)
    final = counters(out / "save")
    assert final == counters(reference / "save")
    assert final["optimizer_step"] == expected_steps(
        out / "save", EPOCHS, replicas=2
    )
    assert [row[0] for row in train_log(out)][-1] == EPOCHS
    print(f"\nMULTINODE two launchers ({rdzv}), killed: {seconds:.1f} s")


WORKER = """
import os, sys, time
import torch
from speechbrain_ext.training.distributed import init_distributed
late, delay, doomed = sys.argv[1:]
if os.environ["RANK"] == late:
    time.sleep(float(delay))
init_distributed({"distributed_backend": "gloo"})
total = torch.tensor([int(os.environ["RANK"]) + 1.0])
torch.distributed.all_reduce(total)
print("SUM", total.item(), flush=True)
if os.environ["RANK"] == doomed:
    os.kill(os.getpid(), 9)
torch.distributed.barrier()
"""


def test_ranks_disagreeing_on_restart_count_meet_in_a_used_store(tmp_path):
    # The agents' shared store (c10d rendezvous), outliving the attempts.
    agent_store = torch.distributed.TCPStore(
        "127.0.0.1",
        0,
        is_master=True,
        multi_tenant=True,
        wait_for_workers=False,
    )

    def attempt(restart_counts, late=-1, doomed=-1):
        """Two workers; ``late`` starts 2 s after the other, ``doomed``
        kills itself after the first all-reduce (the other then fails)."""
        tag, procs = uuid.uuid4().hex, []
        argv = [sys.executable, "-c", WORKER, str(late), "2", str(doomed)]
        try:
            for rank, count in enumerate(restart_counts):
                worker_env = {
                    **env(),
                    TAG: tag,
                    "RANK": str(rank),
                    "LOCAL_RANK": "0",
                    "WORLD_SIZE": "2",
                    "GROUP_WORLD_SIZE": "2",
                    "MASTER_ADDR": "127.0.0.1",
                    "MASTER_PORT": str(agent_store.port),
                    "TORCHELASTIC_USE_AGENT_STORE": "True",
                    "TORCHELASTIC_RESTART_COUNT": str(count),
                }
                with open(tmp_path / f"{tag}_{rank}.txt", "w") as out:
                    procs.append(
                        subprocess.Popen(
                            argv,
                            env=worker_env,
                            stdout=out,
                            stderr=subprocess.STDOUT,
                            cwd=ROOT,
                            start_new_session=True,
                        )
                    )
            for proc in procs:
                proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{restart_counts}: a rank waits for a dead peer")
        finally:
            _kill_all(procs, tag)
        for rank, proc in enumerate(procs):
            text = (tmp_path / f"{tag}_{rank}.txt").read_text()
            assert "SUM 3.0" in text, text[-3000:]
            if doomed < 0:
                assert proc.returncode == 0, text[-3000:]

    # Every attempt but the last leaves keys that point at dead addresses.
    # A rank that dies counts a restart on its node; the other node may
    # restart as a membership change (no count). In a used namespace the
    # early rank would read the late one's stale address (gloo fails or
    # hangs when the early side is the one to connect: one time in two).
    attempt((0, 0), doomed=1)
    attempt((0, 1), late=1, doomed=0)
    attempt((1, 1), late=0, doomed=1)
    attempt((1, 2), late=1)
