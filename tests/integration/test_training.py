"""End-to-end tests of the training recipe on a generated corpus (CPU).

The real recipe script runs in subprocesses with the tiny model
(``TINY_KWARGS``), 0.6 s crops and the full augmentation pipeline on the
synthetic MUSAN/RIR sets:

* an uninterrupted run lowers the training loss and exports a pretrained
  folder whose ``EncoderClassifier`` embeddings equal the training-time
  model's;
* a run killed with SIGKILL after an intra-epoch checkpoint and rerun with
  the same command ends with the same optimiser and scheduler step counts
  as the uninterrupted run (and as the sampler predicts);
* a two-process ``torchrun`` (gloo, CPU) run finishes with identical
  weights on both ranks, equal to its last checkpoint.
"""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from helpers import ROOT, TINY_KWARGS

from speechbrain_ext.training.digests import module_digest
from speechbrain_ext.training.export import export_pretrained, find_checkpoint
from speechbrain_ext.training.safe_checkpointer import SafeCheckpointer

RECIPE = ROOT / "recipes" / "train_speaker_embeddings.py"
HPARAMS = ROOT / "hparams" / "mr_rawnet_demo.yaml"
EPOCHS = 4
BATCH = 4
SEED = 1986
TIMEOUT = 300


def recipe_args(corpus, out, *extra):
    """The recipe's hparams file and overrides for a tiny CPU run
    (``extra`` options replace the defaults of the same name)."""
    model = json.dumps(TINY_KWARGS).replace('"', "")
    names = {a.split("=")[0] for a in extra}
    base = [
        str(HPARAMS),
        f"--data_folder={corpus['root']}",
        f"--musan_folder={corpus['musan_dir']}",
        f"--rir_folder={corpus['rirs_dir']}",
        f"--trial_lists={corpus['trials']}",
        f"--output_folder={out}",
        f"--seed={SEED}",
        f"--model_kwargs={model}",
        "--device=cpu",
        "--noprogressbar",
        "--crop_seconds=0.6",
        "--valid_crop_seconds=0.6",
        "--short_crop_seconds=[0.4, 0.5]",
        f"--batch_size={BATCH}",
        "--valid_batch_size=8",
        "--num_workers=0",
        "--prep_workers=1",
        "--valid_ratio=0.1",
        "--lr_max=0.01",
        # The 5-d tiny model learns too slowly for a short test with the
        # protocol's 0.3 margin; the loss itself is the protocol's.
        "--aam_margin=0.1",
        "--warmup_epochs=0",
        "--lr_cycle_epochs=50",
        "--augment_threads=1",
        "--write_weight_digests=True",
    ]
    return [a for a in base if a.split("=")[0] not in names] + list(extra)


def env():
    """One thread per process: the CI machine has two shared cores."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run(cmd, log):
    """Runs a command to completion; fails with the end of its output.

    The command gets its own process group, killed as a whole on timeout
    (``torchrun`` workers included).
    """
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd,
            env=env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"{cmd[:4]} timed out:\n{open(log).read()[-4000:]}")
    if proc.returncode != 0:
        tail = open(log).read()[-4000:]
        pytest.fail(f"{cmd[:4]} failed ({proc.returncode}):\n{tail}")
    return open(log).read()


def train_log(out):
    """Per-epoch (epoch, optimiser steps, train loss) from train_log.txt.

    Comment lines (``#``: a resume, an abandoned attempt) are skipped.
    """
    rows = []
    for line in open(out / "train_log.txt"):
        if line.startswith(("#", "protocol: ")):  # resume marks, protocol
            continue
        m = re.search(
            r"epoch: (\d+), lr: \S+, steps: (\d+) - train loss: ([\d.e+-]+),",
            line,
        )
        assert m, line
        rows.append((int(m[1]), int(m[2]), float(m[3])))
    return rows


def counters(save_folder):
    """Epoch, Brain step counters and LR-scheduler step of the last ckpt."""
    ckpt = find_checkpoint(str(save_folder), "last")
    brain = yaml.safe_load(open(ckpt.paramfiles["brain"]))
    sched = json.load(open(ckpt.paramfiles["lr_scheduler"]))
    epoch = int(open(ckpt.paramfiles["counter"]).read())
    return {
        "epoch": epoch,
        "end_of_epoch": ckpt.meta["end-of-epoch"],
        "optimizer_step": brain["optimizer_step"],
        "scheduler_step": sched["n_steps"],
    }


def expected_steps(save_folder, epochs, replicas=1):
    """Optimiser steps the speaker-balanced sampler gives for ``epochs``."""
    import csv

    from speechbrain_ext.data.samplers import SpeakerBalancedBatchSampler

    with open(save_folder / "train.csv") as f:
        speakers = [row["spk_id"] for row in csv.DictReader(f)]
    sampler = SpeakerBalancedBatchSampler(
        speakers,
        BATCH,
        max_per_speaker=500,
        seed=SEED,
        num_replicas=replicas,
        rank=0,
    )
    total = 0
    for epoch in range(1, epochs + 1):
        sampler.set_epoch(epoch)
        total += len(sampler)
    return total


@pytest.fixture(scope="module")
def run_a(corpus, tmp_path_factory):
    """An uninterrupted run of EPOCHS epochs (intra-epoch ckpts every 4)."""
    out = tmp_path_factory.mktemp("run_a") / "out"
    cmd = [
        sys.executable,
        str(RECIPE),
        *recipe_args(
            corpus,
            out,
            f"--number_of_epochs={EPOCHS}",
            "--ckpt_interval_steps=4",
            "--num_workers=2",
        ),
    ]
    run(cmd, out.parent / "stdout.txt")
    return out


def test_training_lowers_the_loss(run_a):
    rows = train_log(run_a)
    assert [r[0] for r in rows] == list(range(1, EPOCHS + 1))
    first, last = rows[0][2], rows[-1][2]
    assert last < 0.75 * first, rows
    steps = counters(run_a / "save")
    assert steps["optimizer_step"] == expected_steps(run_a / "save", EPOCHS)
    assert steps["scheduler_step"] == steps["optimizer_step"]


def _intra_epoch_ckpt(save_folder, min_epoch):
    """A complete intra-epoch checkpoint of epoch >= min_epoch, if any."""
    if not save_folder.is_dir():
        return None
    for path in save_folder.glob("CKPT+*"):
        if not SafeCheckpointer.is_complete(path):
            continue
        try:
            meta = yaml.safe_load(open(path / "CKPT.yaml"))
            epoch = int((path / "counter.ckpt").read_text())
        except FileNotFoundError:
            # The running recipe removes older checkpoints as it saves new
            # ones, so a folder can vanish between the checks.
            continue
        if not meta["end-of-epoch"] and epoch >= min_epoch:
            return path
    return None


def test_resume_after_kill_matches_uninterrupted(corpus, run_a, tmp_path):
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        str(RECIPE),
        *recipe_args(
            corpus,
            out,
            f"--number_of_epochs={EPOCHS}",
            "--ckpt_interval_steps=4",
            "--num_workers=2",
        ),
    ]
    with open(tmp_path / "killed.txt", "w") as log:
        proc = subprocess.Popen(
            cmd,
            env=env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        deadline = time.time() + TIMEOUT
        try:
            while proc.poll() is None and time.time() < deadline:
                if _intra_epoch_ckpt(out / "save", min_epoch=2):
                    os.killpg(proc.pid, signal.SIGKILL)
                    break
                time.sleep(0.02)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    killed_log = (tmp_path / "killed.txt").read_text()
    assert proc.returncode == -signal.SIGKILL, killed_log[-4000:]
    assert not (out / "pretrained").exists()  # it did not finish

    resumed = run(cmd, tmp_path / "resumed.txt")
    assert "Loading a checkpoint from" in resumed
    # It went on from epoch 2 (or later), not from scratch.
    assert int(re.search(r"Going into epoch (\d+)", resumed)[1]) >= 2

    final, reference = counters(out / "save"), counters(run_a / "save")
    assert final == reference
    assert final["optimizer_step"] == expected_steps(out / "save", EPOCHS)
    # Every epoch logged once (an epoch logged just before the kill but not
    # checkpointed is marked abandoned and logged again), and the resume
    # is exact: every random stream (sampler, crops drawn in the two
    # DataLoader workers, augmentation, speed, global generators) was
    # restored, so losses and final weights equal the uninterrupted run's.
    assert "# resumed " in (out / "train_log.txt").read_text()
    assert train_log(out) == train_log(run_a)
    digests = "weight_digests_rank0.json"
    assert json.load(open(out / digests)) == json.load(open(run_a / digests))


def test_two_process_ddp_identical_weights(corpus, tmp_path):
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(RECIPE),
        *recipe_args(corpus, out, "--number_of_epochs=2"),
    ]
    run(cmd, tmp_path / "stdout.txt")
    digests = [
        json.load(open(out / f"weight_digests_rank{r}.json")) for r in (0, 1)
    ]
    assert digests[0] == digests[1]
    assert set(digests[0]) == {"embedding_model", "classifier"}

    # The final weights are those of the last checkpoint (rank 0 saves).
    from speechbrain.lobes.models.ECAPA_TDNN import Classifier

    from speechbrain_ext.lobes.mr_rawnet import MRRawNet

    ckpt = find_checkpoint(str(out / "save"), "last")
    model = MRRawNet(**TINY_KWARGS)
    model.load_state_dict(torch.load(ckpt.paramfiles["embedding_model"]))
    classifier = Classifier(TINY_KWARGS["lin_neurons"], out_neurons=8)
    classifier.load_state_dict(torch.load(ckpt.paramfiles["classifier"]))
    assert module_digest(model) == digests[0]["embedding_model"]
    assert module_digest(classifier) == digests[0]["classifier"]

    # Each rank ran its half of the speaker-balanced batches.
    steps = counters(out / "save")
    assert steps["optimizer_step"] == expected_steps(
        out / "save", 2, replicas=2
    )
    assert [r[0] for r in train_log(out)] == [1, 2]


def _wavs(corpus, n=3):
    """A padded batch of corpus utterances and their relative lengths."""
    import soundfile as sf

    files = sorted(pathlib.Path(corpus["wav_dir"]).rglob("*.wav"))[:n]
    audio = [torch.from_numpy(sf.read(f, dtype="float32")[0]) for f in files]
    longest = max(len(a) for a in audio)
    wavs = torch.zeros(len(audio), longest)
    for i, a in enumerate(audio):
        wavs[i, : len(a)] = a
    lengths = torch.tensor([len(a) / longest for a in audio])
    return wavs, lengths


@pytest.mark.parametrize("which", ["best", "last"])
def test_export_matches_training_model(corpus, run_a, tmp_path, which):
    from speechbrain.inference.speaker import EncoderClassifier

    from speechbrain_ext.lobes.mr_rawnet import MRRawNet

    save = run_a / "save"
    if which == "best":
        folder = run_a / "pretrained"  # written by the recipe
    else:
        folder = tmp_path / "pretrained"
        export_pretrained(str(save), str(folder), which="last")
    ckpt = find_checkpoint(str(save), which)
    model = MRRawNet(**TINY_KWARGS)
    model.load_state_dict(torch.load(ckpt.paramfiles["embedding_model"]))
    model.eval()
    if which == "last":
        # The last checkpoint holds the training-time (final) weights.
        digests = json.load(open(run_a / "weight_digests_rank0.json"))
        assert module_digest(model) == digests["embedding_model"]

    encoder = EncoderClassifier.from_hparams(
        source=str(folder),
        savedir=str(tmp_path / "savedir"),
        run_opts={"device": "cpu"},
    )
    wavs, lengths = _wavs(corpus)
    with torch.no_grad():
        expected = model(wavs, lengths)
    got = encoder.encode_batch(wavs, lengths)
    assert got.shape == expected.shape == (3, 1, TINY_KWARGS["lin_neurons"])
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)

    speakers = (save / "speakers.txt").read_text().split()
    labels = encoder.hparams.label_encoder
    assert [labels.ind2lab[i] for i in range(len(speakers))] == speakers
    weight = torch.load(ckpt.paramfiles["classifier"])["weight"]
    assert torch.equal(encoder.mods.classifier.weight, weight)


def test_lm_fine_tuning_starts_from_the_given_weights(corpus, run_a, tmp_path):
    """mr_rawnet_demo_lm.yaml from run_a's export, at a learning rate of 0.

    Every parameter the fine-tuning run exports is then run_a's (only the
    BatchNorm statistics move), so the run started from exactly those
    weights, classifier rows included. A rerun resumes from its own
    checkpoint and does not read init_from (here: a path that is gone).
    """
    from speechbrain_ext.lobes.mr_rawnet import MRRawNet

    source = run_a / "pretrained"
    out = tmp_path / "lm"
    args = recipe_args(
        corpus,
        out,
        f"--init_from={source}",
        "--number_of_epochs=1",
        "--lr_max=0",
        "--lr_min=0",
        "--lr_cycle_epochs=1",
        "--aam_margin=0.5",
        "--write_weight_digests=False",
    )
    args[0] = str(ROOT / "hparams" / "mr_rawnet_demo_lm.yaml")
    text = run([sys.executable, str(RECIPE), *args], tmp_path / "lm.txt")
    assert f"Initialised from {source}" in text

    def load(folder, name):
        return torch.load(folder / name, weights_only=True)

    params = dict(MRRawNet(**TINY_KWARGS).named_parameters())
    before = load(source, "embedding_model.ckpt")
    after = load(out / "pretrained", "embedding_model.ckpt")
    assert set(before) == set(after)
    for key in params:
        assert torch.equal(before[key], after[key]), key
    moved = [k for k in before if k not in params and "running_mean" in k
             and not torch.equal(before[k], after[k])]
    assert moved, "the run did train (BatchNorm statistics moved)"
    assert torch.equal(
        load(source, "classifier.ckpt")["weight"],
        load(out / "pretrained", "classifier.ckpt")["weight"],
    )
    log = (out / "train_log.txt").read_text()
    assert f"protocol: init_from: {source}" in log

    gone = tmp_path / "gone"
    args = [a for a in args if not a.startswith("--init_from=")]
    text = run(
        [sys.executable, str(RECIPE), *args, f"--init_from={gone}"],
        tmp_path / "lm2.txt",
    )
    assert f"init_from {gone} is not read" in text
