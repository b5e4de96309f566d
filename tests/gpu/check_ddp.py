"""GPU check item 3: the training recipe under torchrun, killed and resumed.

``torchrun --standalone --nproc_per_node=N --max-restarts=1`` runs
``recipes/train_speaker_embeddings.py`` (demo model, augmentation off,
speed perturbation on) for two epochs on a tone corpus, N = 1 and, on a
machine with two GPUs or more, N = 2. On CUDA that is the recipe's own
process-group path (``init_distributed``: NCCL in a fresh store
namespace) with SyncBatchNorm on. A fault hook kills rank N - 1 after
optimiser step 3 (after the intra-epoch checkpoint at step 2); torchrun
restarts the group, which must resume from that checkpoint and finish:

* exit code 0, exactly one kill, the restart joined a fresh process
  group, a checkpoint was loaded;
* on CUDA: NCCL, and the BatchNorm layers are SyncBatchNorm (with one
  process SyncBatchNorm computes local statistics: only N = 2 exercises
  its all-gather);
* the last checkpoint has the optimiser and LR-scheduler step counts of
  an uninterrupted run (computed from the speaker-balanced sampler), all
  epochs are logged, and with N = 2 both ranks end with identical
  weights.

The same code path runs on the CPU (gloo, plain BatchNorm) with
``--device cpu``, as ``tests/integration/test_training_faults.py`` does.

Authors
 * MR-RawNet recipe contributors
"""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import torch
from common import ROOT, TAG_ENV
from tone_corpus import write_tone_corpus

RECIPE = ROOT / "recipes" / "train_speaker_embeddings.py"
HPARAMS = ROOT / "hparams" / "mr_rawnet_demo.yaml"
EPOCHS = 2
BATCH = 4
SEED = 1986
KILL_AFTER_STEP = 3


def recipe_args(corpus, out, device, smoke):
    """The recipe's command-line arguments for this check.

    Arguments
    ---------
    corpus : str
        Corpus root (``--data_folder``).
    out : pathlib.Path
        Output folder.
    device : str
        ``cuda`` (the recipe picks ``cuda:<LOCAL_RANK>``) or ``cpu``.
    smoke : bool
        The tiny model.

    Returns
    -------
    list of str
        Arguments after the recipe's path.

    Example
    -------
    >>> args = recipe_args("c", "o", "cuda", False)
    >>> args[1], "--augment=False" in args, any("device" in a for a in args)
    ('--data_folder=c', True, False)
    """
    args = [
        str(HPARAMS),
        f"--data_folder={corpus}",
        f"--output_folder={out}",
        f"--seed={SEED}",
        "--augment=False",
        "--noprogressbar",
        f"--number_of_epochs={EPOCHS}",
        f"--batch_size={BATCH}",
        "--valid_batch_size=8",
        "--crop_seconds=1.0",
        "--valid_crop_seconds=1.0",
        "--short_crop_seconds=[0.6, 0.8]",
        "--num_workers=0",
        "--prep_workers=1",
        "--valid_ratio=0.1",
        "--ckpt_interval_steps=2",
        "--write_weight_digests=True",
    ]
    if not str(device).startswith("cuda"):
        args.append(f"--device={device}")
    if smoke:
        from helpers import TINY_KWARGS

        model = json.dumps(TINY_KWARGS).replace('"', "")
        args += [f"--model_kwargs={model}", "--aam_margin=0.1"]
    return args


def expected_steps(save_folder, epochs, replicas):
    """Optimiser steps the recipe's sampler gives per rank for ``epochs``.

    Arguments
    ---------
    save_folder : pathlib.Path
        The run's save folder (holds ``train.csv``).
    epochs : int
        Epochs.
    replicas : int
        DDP world size.

    Returns
    -------
    int
        Steps.
    """
    from speechbrain_ext.data.samplers import SpeakerBalancedBatchSampler

    with open(save_folder / "train.csv", encoding="utf-8") as f:
        speakers = [row["spk_id"] for row in csv.DictReader(f)]
    sampler = SpeakerBalancedBatchSampler(
        speakers, BATCH, max_per_speaker=500, seed=SEED,
        num_replicas=replicas, rank=0,
    )
    total = 0
    for epoch in range(1, epochs + 1):
        sampler.set_epoch(epoch)
        total += len(sampler)
    return total


def launch(cmd, log, env, timeout):
    """Runs ``cmd`` to completion or ``timeout``; returns (code, text, s)."""
    began = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
            cwd=ROOT, start_new_session=True,
        )
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = f"timed out after {timeout:.0f} s"
    return code, open(log).read(), time.monotonic() - began


def run_world(ctx, rep, corpus, world, timeout):
    """One killed-and-restarted torchrun run with ``world`` processes."""
    import fault_injection as faults  # tests/ is on sys.path (common)
    from test_training import counters, train_log

    name = f"torchrun x{world}"
    out = ctx.work / f"ddp{world}"
    marker = ctx.work / f"killed{world}"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={world}", "--max-restarts=1",
        str(ROOT / "tests" / "fault_injection.py"), str(RECIPE),
        *recipe_args(corpus, out, ctx.device, ctx.smoke),
    ]
    env = {
        **os.environ,
        faults.ENV_KILL_AT_STEP: str(KILL_AFTER_STEP),
        faults.ENV_KILL_RANK: str(world - 1),
        faults.ENV_MARKER: str(marker),
        "PYTHONUNBUFFERED": "1",
    }
    if not ctx.cuda:
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.setdefault(TAG_ENV, "none")
    code, text, seconds = launch(cmd, ctx.work / f"ddp{world}.log", env,
                                 timeout)
    rep.figure(f"ddp{world}_seconds", seconds)
    lines = text.splitlines()
    print(f"  --- last lines of the torchrun x{world} output ---")
    print("\n".join(lines[-(200 if code != 0 else 40):]), flush=True)
    rep.check(
        f"{name}: exit code 0", code == 0, f"{code} after {seconds:.0f} s"
    )
    kills = text.count("FAULT INJECTION: killing process")
    rep.check(
        f"{name}: killed once, restarted in a fresh process group",
        kills == 1
        and "torchrun restart 1: joining a fresh process group" in text
        and "Loading a checkpoint from" in text,
        f"{kills} kill(s); marker: "
        f"{marker.read_text().strip() if marker.exists() else 'none'}",
    )
    ddp = re.findall(
        r"DDP: embedding_model on (\w+), (\d+) process\(es\), (\d+) "
        r"SyncBatchNorm", text,
    )
    if ctx.cuda:
        rep.check(
            f"{name}: NCCL with SyncBatchNorm",
            bool(ddp) and all(b == "nccl" and int(n) > 0 for b, _, n in ddp),
            f"{ddp[-1] if ddp else 'no DDP line in the output'} "
            "(backend, processes, SyncBatchNorm layers)",
        )
    else:
        rep.note(f"{name}: {ddp[-1] if ddp else 'no DDP line'} (CPU: gloo, "
                 "plain BatchNorm)")
    if code != 0:
        return
    final = counters(out / "save")
    want = expected_steps(out / "save", EPOCHS, world)
    epochs = [row[0] for row in train_log(out)]
    rep.check(
        f"{name}: resumed to the uninterrupted step counts",
        final["optimizer_step"] == want
        and final["scheduler_step"] == want
        and final["epoch"] == EPOCHS
        and final["end_of_epoch"]
        and epochs[-1] == EPOCHS,
        f"optimiser {final['optimizer_step']}, scheduler "
        f"{final['scheduler_step']}, expected {want}; epochs logged {epochs}",
    )
    digests = [
        json.load(open(out / f"weight_digests_rank{r}.json"))
        for r in range(world)
    ]
    rep.check(
        f"{name}: identical weights on every rank",
        all(d == digests[0] for d in digests) and len(digests[0]) == 2,
        f"{world} rank(s): {digests[0].get('embedding_model', '')[:12]}...",
    )


def run(ctx, rep):
    """Runs the item.

    Arguments
    ---------
    ctx : common.Context
        Device, sizes, folders.
    rep : common.Report
        Filled with checks and figures.
    """
    began = time.monotonic()
    if ctx.cuda and not torch.distributed.is_nccl_available():
        rep.check("NCCL available", False, "this torch build has no NCCL")
        return
    corpus = write_tone_corpus(
        ctx.work / "corpus", n_speakers=8, utts_per_speaker=6, seconds=1.5
    )
    gpus = torch.cuda.device_count() if ctx.cuda else 0
    worlds = [1, 2] if gpus >= 2 else [1]
    rep.figure("gpus", gpus)
    if ctx.cuda and gpus < 2:
        rep.note("one GPU: the two-process run (SyncBatchNorm's all-gather "
                 "over NCCL) needs two")
    for i, world in enumerate(worlds):
        left = ctx.seconds - (time.monotonic() - began) - 5
        timeout = left / (len(worlds) - i)
        with rep.guard(f"torchrun x{world}"):
            run_world(ctx, rep, corpus, world, timeout)
