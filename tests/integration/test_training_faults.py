"""Faults during training: the recipe keeps the run and the data safe (CPU).

The real recipe runs in subprocesses on a generated corpus, with the tiny
model of ``test_training.py`` (whose helpers this module reuses). Faults
are injected from outside (damaged files, edited CSVs, ``kill -9``,
planted checkpoint files) or through the environment hooks of
``tests/fault_injection.py``:

* bad audio files in ``train.csv`` (damaged after preparation, headers
  intact: NaN and Inf samples, zeroed FLAC frames, a garbage header, a
  header claiming 8 kHz, a WAV whose header promises more data than it
  holds) are skipped, named and counted exactly per epoch,
  also through DataLoader workers; no batch is lost; too many stop the
  run with an error naming them;
* non-finite steps are skipped and counted, and the weights stay finite;
* a kill inside a checkpoint save resumes from the previous checkpoint;
* kills at random moments always resume to the same step counts;
* a DDP rank that dies is restarted by ``torchrun --max-restarts=1`` and
  the run finishes with identical weights on both ranks;
* CSV paths outside the data folder are refused unless allowed;
* a crafted pickle planted as a checkpoint file is refused, never run.

Measured recovery times are printed (``pytest -s``), prefixed RECOVERY.
"""

import csv
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import fault_injection as faults
import numpy as np
import pytest
import soundfile as sf
import torch
from test_training import (
    BATCH,
    RECIPE,
    SEED,
    TIMEOUT,
    counters,
    env,
    expected_steps,
    recipe_args,
    train_log,
)

from speechbrain_ext.data.samplers import SpeakerBalancedBatchSampler
from speechbrain_ext.data.trial_csv import trial_speakers
from speechbrain_ext.data.voxceleb_train import prepare_voxceleb_train
from speechbrain_ext.synthetic import corpus_paths
from speechbrain_ext.training.export import find_checkpoint
from speechbrain_ext.training.safe_checkpointer import (
    COMPLETE_MARKER,
    SafeCheckpointer,
)

EPOCHS = 2
PREP_FILES = ("train.csv", "valid.csv", "speakers.txt", "train_prepare.json")


def args(corpus, out, *extra):
    """``recipe_args`` with ``extra`` replacing options of the same name."""
    names = {a.split("=")[0] for a in extra}
    base = recipe_args(corpus, out)
    return [a for a in base if a.split("=")[0] not in names] + list(extra)


def start(cmd, log, extra_env=None):
    """Starts a command in its own process group, output to ``log``."""
    out = open(log, "w")
    proc = subprocess.Popen(
        cmd,
        env={**env(), **(extra_env or {})},
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=os.path.dirname(os.path.dirname(RECIPE)),
        start_new_session=True,
    )
    out.close()
    return proc


def wait(proc, log, watch=()):
    """Waits for a command; returns (returncode, output, seconds, seen).

    ``seen`` maps every string of ``watch`` to the seconds after the
    start at which it first appeared in the output (polled).
    """
    began, seen = time.time(), {}
    deadline = began + TIMEOUT
    while proc.poll() is None and time.time() < deadline:
        if watch:
            text = open(log).read()
            for key in watch:
                if key not in seen and key in text:
                    seen[key] = time.time() - began
        time.sleep(0.1)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(f"timed out:\n{open(log).read()[-4000:]}")
    text = open(log).read()
    for key in watch:
        if key not in seen and key in text:
            seen[key] = time.time() - began
    return proc.returncode, text, time.time() - began, seen


def run_recipe(cmd, log, extra_env=None, ok=True, watch=()):
    """Runs to completion; with ``ok``, fails the test on an error."""
    code, text, seconds, seen = wait(start(cmd, log, extra_env), log, watch)
    if ok and code != 0:
        pytest.fail(f"failed ({code}):\n{text[-4000:]}")
    return code, text, seconds, seen


#: Runs a recipe with the fault hooks installed (inactive unless set).
LAUNCHER = str(Path(__file__).resolve().parents[1] / "fault_injection.py")


def recipe(*argv):
    return [sys.executable, LAUNCHER, str(RECIPE), *argv]


def epoch_counts(out, name):
    """Per-epoch value of ``train <name>`` in train_log.txt (last line)."""
    counts = {}
    for line in open(out / "train_log.txt"):
        if line.startswith(("#", "protocol: ")):  # resume marks, protocol
            continue
        epoch = int(re.search(r"epoch: (\d+),", line)[1])
        counts[epoch] = int(re.search(rf"train {name}: (\d+)", line)[1])
    return counts


def assert_finite_checkpoint(save):
    """Every tensor of the last checkpoint's modules is finite."""
    ckpt = find_checkpoint(str(save), "last")
    for name in ("embedding_model", "classifier"):
        state = torch.load(
            ckpt.paramfiles[name], map_location="cpu", weights_only=True
        )
        for key, value in state.items():
            if value.is_floating_point():
                assert torch.isfinite(value).all(), f"{name}.{key}"


def assert_same_run(out, reference):
    """The run in ``out`` equals ``reference`` exactly: the same loss and
    error in every epoch's (last) log line and bit-identical weights."""
    assert train_log(out) == train_log(reference)
    digests = "weight_digests_rank0.json"
    assert json.load(open(out / digests)) == json.load(
        open(reference / digests)
    )
    valid = {}
    for folder in (out, reference):
        lines = [
            line for line in open(folder / "train_log.txt")
            if not line.startswith(("#", "protocol: "))
        ]
        valid[folder] = {
            int(re.search(r"epoch: (\d+),", x)[1]): without_times(x)
            for x in lines
        }
    assert valid[out] == valid[reference]


def without_times(line):
    """A train-log line without its wall-clock fields."""
    return re.sub(r",? ?\b(train|valid) minutes: [0-9.e+-]+", "", line)


def copy_prepared(src_save, out):
    """Gives ``out`` the prepared CSVs (preparation is then skipped)."""
    (out / "save").mkdir(parents=True)
    for name in PREP_FILES:
        shutil.copy2(src_save / name, out / "save" / name)


@pytest.fixture(scope="module")
def run_ref(corpus, tmp_path_factory):
    """An uninterrupted run (intra-epoch checkpoints every 3 steps)."""
    out = tmp_path_factory.mktemp("ref") / "out"
    cmd = recipe(
        *args(
            corpus,
            out,
            f"--number_of_epochs={EPOCHS}",
            "--ckpt_interval_steps=3",
            "--num_workers=2",
        )
    )
    _, _, seconds, _ = run_recipe(cmd, out.parent / "stdout.txt")
    print(f"\nRECOVERY reference run (no fault): {seconds:.1f} s")
    return {"out": out, "cmd": cmd, "seconds": seconds}


# ---------------------------------------------------------------------------
# 1. Bad audio files
# ---------------------------------------------------------------------------
def _preserving_stat(path, change):
    """Changes a file in place keeping its size and modification time, as
    bit rot would: data preparation's fingerprint sees no change."""
    before = os.stat(path)
    data = bytearray(open(path, "rb").read())
    change(data)
    assert len(data) == before.st_size
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _flac_audio_offset(data):
    pos = 4  # "fLaC", then metadata blocks
    while True:
        header = data[pos]
        pos += 4 + int.from_bytes(data[pos + 1 : pos + 4], "big")
        if header & 0x80:
            return pos


def damage(path, kind):
    """Damages a training file in place; the header stays readable except
    for ``garbage_header``. Returns the reason the recipe should give."""
    frames = sf.info(path).frames
    if kind in ("nan", "inf"):
        value = np.nan if kind == "nan" else np.inf

        def change(data):
            # FLOAT wav: the samples are the file's last 4 * frames bytes.
            data[-4 * frames :] = np.full(frames, value, "<f4").tobytes()

        reason = "non-finite samples"
    elif kind == "zeroed_flac":

        def change(data):
            start = _flac_audio_offset(data)
            data[start:] = bytes(len(data) - start)

        reason = "unreadable"
    elif kind == "garbage_header":

        def change(data):
            data[:4] = b"JUNK"

        reason = "unreadable"
    elif kind == "truncated":

        def change(data):
            # The header promises twice the data the file holds, as after
            # an interrupted download (size kept, so preparation is
            # skipped); libsndfile reads the frames present, silently.
            pos = data.index(b"data", 12)
            size = struct.unpack("<I", data[pos + 4 : pos + 8])[0]
            data[pos + 4 : pos + 8] = struct.pack("<I", 2 * size)

        reason = "truncated: its header announces"
    else:  # header_says_8k

        def change(data):
            assert data[12:16] == b"fmt "
            data[24:28] = struct.pack("<I", 8000)

        reason = "sample rate 8000 Hz"
    _preserving_stat(path, change)
    if kind != "garbage_header":
        info = sf.info(path)  # the header still reads fine
        assert info.frames == frames
    return reason


KINDS = (
    "nan",
    "inf",
    "zeroed_flac",
    "garbage_header",
    "header_says_8k",
    "truncated",
)


def drawn_indices(speakers, epoch, replicas=1):
    sampler = SpeakerBalancedBatchSampler(
        speakers,
        BATCH,
        max_per_speaker=500,
        seed=SEED,
        num_replicas=replicas,
        rank=0,
    )
    sampler.set_epoch(epoch)
    return [i for batch in sampler for i in batch]


@pytest.fixture(scope="module")
def bad_corpus(corpus, tmp_path_factory):
    """A copy of the corpus, prepared, then five training files damaged
    (one per kind, five different speakers, all drawn in epoch 1)."""
    base = tmp_path_factory.mktemp("bad")
    root = base / "corpus"
    shutil.copytree(corpus["root"], root)
    paths = {**corpus, **corpus_paths(str(root))}
    excluded = trial_speakers([paths["trials"]])
    train_spk = sorted(
        s for s in os.listdir(paths["wav_dir"]) if s not in excluded
    )
    chosen = dict(zip(KINDS, train_spk, strict=False))
    # Before preparation (as if the corpus came so): the NaN/Inf speakers'
    # files as 32-bit float wav, the FLAC one's as FLAC (named .wav).
    for kind in ("nan", "inf", "zeroed_flac"):
        for wav in (root / "wav" / chosen[kind]).rglob("*.wav"):
            x, rate = sf.read(wav, dtype="float32")
            if kind == "zeroed_flac":
                sf.write(wav, x, rate, format="FLAC", subtype="PCM_16")
            else:
                sf.write(wav, x, rate, subtype="FLOAT")
    prepared = base / "prepared"
    prepare_voxceleb_train(
        str(prepared),
        data_folders=paths["root"],
        trial_lists=paths["trials"],
        valid_ratio=0.1,
        seed=1234,
        workers=1,
    )
    with open(prepared / "train.csv") as f:
        rows = list(csv.DictReader(f))
    speakers = [r["spk_id"] for r in rows]
    first_epoch = set(drawn_indices(speakers, 1))
    bad = {}
    for kind, spk in chosen.items():
        index = next(
            i
            for i, r in enumerate(rows)
            if r["spk_id"] == spk and i in first_epoch
        )
        reason = damage(rows[index]["wav"], kind)
        bad[index] = (rows[index]["wav"], reason)
    return {
        "paths": paths,
        "prepared": prepared,
        "bad": bad,
        "speakers": speakers,
    }


def test_bad_files_are_skipped_counted_and_training_goes_on(
    bad_corpus, tmp_path
):
    out = tmp_path / "out"
    copy_prepared(bad_corpus["prepared"], out)
    cmd = recipe(
        *args(
            bad_corpus["paths"],
            out,
            f"--number_of_epochs={EPOCHS}",
            "--num_workers=2",  # the counts travel from the workers
            "--max_bad_file_fraction=0.5",
            "--bad_file_min_files=10",
        )
    )
    _, text, seconds, _ = run_recipe(cmd, tmp_path / "stdout.txt")
    assert "Skipping preparation" in text  # the damaged files are in it
    bad = bad_corpus["bad"]
    expected = {
        epoch: sum(
            i in bad for i in drawn_indices(bad_corpus["speakers"], epoch)
        )
        for epoch in range(1, EPOCHS + 1)
    }
    assert expected[1] == len(KINDS)
    assert epoch_counts(out, "skipped_files") == expected
    assert epoch_counts(out, "skipped_steps") == dict.fromkeys(expected, 0)
    for path, reason in bad.values():
        warning = f"Skipped a bad training file: {path}: "
        assert warning in text
        assert reason in text.split(warning, 1)[1].splitlines()[0]
    # Every batch was trained on (bad items were replaced), to the end.
    final = counters(out / "save")
    assert final["optimizer_step"] == expected_steps(out / "save", EPOCHS)
    assert final["scheduler_step"] == final["optimizer_step"]
    assert [row[0] for row in train_log(out)] == list(range(1, EPOCHS + 1))
    assert (out / "pretrained" / "embedding_model.ckpt").is_file()
    assert_finite_checkpoint(out / "save")
    print(f"\nRECOVERY bad files ({expected}): run took {seconds:.1f} s")


def test_too_many_bad_files_stop_the_run_naming_them(bad_corpus, tmp_path):
    out = tmp_path / "out"
    copy_prepared(bad_corpus["prepared"], out)
    cmd = recipe(
        *args(
            bad_corpus["paths"],
            out,
            f"--number_of_epochs={EPOCHS}",
            "--num_workers=2",
            "--max_bad_file_fraction=0.01",
            "--bad_file_min_files=10",
        )
    )
    code, text, _, _ = run_recipe(cmd, tmp_path / "stdout.txt", ok=False)
    assert code != 0
    assert "TooManyBadFilesError" in text
    found = re.search(
        r"(\d+) of the (\d+) training audio files read so far in this "
        r"epoch were bad.*",
        text,
    )
    assert found, text[-3000:]
    count, files = int(found[1]), int(found[2])
    assert 1 <= count <= len(KINDS) and count > 0.01 * max(files, 10)
    assert any(path in found[0] for path, _ in bad_corpus["bad"].values())
    assert not (out / "pretrained").exists()


# ---------------------------------------------------------------------------
# 2. Non-finite steps
# ---------------------------------------------------------------------------
def test_nonfinite_steps_are_skipped_and_counted(corpus, tmp_path):
    out = tmp_path / "out"
    cmd = recipe(*args(corpus, out, f"--number_of_epochs={EPOCHS}"))
    _, text, _, _ = run_recipe(
        cmd,
        tmp_path / "stdout.txt",
        extra_env={faults.ENV_NAN_BATCHES: "1:2,2:3"},
    )
    for epoch, batch in ((1, 2), (2, 3)):
        assert (
            f"Skipped the optimiser step after batch {batch} of epoch "
            f"{epoch}: non-finite loss or gradients"
        ) in text
    assert epoch_counts(out, "skipped_steps") == {1: 1, 2: 1}
    assert all(np.isfinite(loss) for _, _, loss in train_log(out))
    final = counters(out / "save")
    assert final["optimizer_step"] == expected_steps(out / "save", EPOCHS) - 2
    assert final["scheduler_step"] == final["optimizer_step"]
    assert_finite_checkpoint(out / "save")  # BatchNorm statistics included


# ---------------------------------------------------------------------------
# 3. kill -9 inside a checkpoint save
# ---------------------------------------------------------------------------
def test_kill_inside_checkpoint_save_resumes_from_previous(
    corpus, run_ref, tmp_path
):
    out = tmp_path / "out"
    cmd = recipe(
        *args(
            corpus,
            out,
            f"--number_of_epochs={EPOCHS}",
            "--ckpt_interval_steps=3",
            "--num_workers=2",
        )
    )
    code, text, _, _ = run_recipe(
        cmd,
        tmp_path / "killed.txt",
        extra_env={faults.ENV_KILL_IN_SAVE: "3"},
        ok=False,
    )
    assert code == -signal.SIGKILL, text[-3000:]
    assert "FAULT INJECTION: killing process" in text
    folders = sorted((out / "save").glob("CKPT+*"))
    complete = [p for p in folders if SafeCheckpointer.is_complete(p)]
    partial = [p for p in folders if p not in complete]
    assert len(partial) == 1 and len(complete) >= 1
    partial, previous = partial[0], max(complete, key=lambda p: p.name)
    written = {p.name for p in partial.iterdir()}
    assert "CKPT.yaml" in written and COMPLETE_MARKER not in written
    assert written < {p.name for p in previous.iterdir()}  # half written

    _, resumed, seconds, seen = run_recipe(
        cmd, tmp_path / "resumed.txt", watch=("Loading a checkpoint from",)
    )
    assert f"Checkpoint {partial} is incomplete" in resumed
    assert f"Loading a checkpoint from {previous}" in resumed
    # Set aside for inspection, then removed once a checkpoint completed.
    assert (
        "Removed 1 incomplete checkpoint folder(s) set aside earlier, now "
        f"that a new checkpoint is complete: incomplete-{partial.name}"
    ) in resumed
    assert not list((out / "save").glob("incomplete*"))
    assert all(
        SafeCheckpointer.is_complete(p) for p in (out / "save").glob("CKPT+*")
    )
    assert counters(out / "save") == counters(run_ref["out"] / "save")
    assert_same_run(out, run_ref["out"])
    print(
        f"\nRECOVERY kill in save: resumed (checkpoint loaded) after "
        f"{seen['Loading a checkpoint from']:.1f} s, rest of the run "
        f"{seconds:.1f} s (uninterrupted run {run_ref['seconds']:.1f} s)"
    )


# ---------------------------------------------------------------------------
# 4. kill -9 at random moments
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_resume_after_kill_at_random_moment(corpus, run_ref, tmp_path, seed):
    out = tmp_path / "out"
    cmd = run_ref["cmd"][:]
    cmd = [a.replace(str(run_ref["out"]), str(out)) for a in cmd]
    fraction = random.Random(seed).uniform(0.05, 0.8)
    delay = fraction * run_ref["seconds"]
    for attempt in range(3):
        log = tmp_path / f"killed{attempt}.txt"
        proc = start(cmd, log)
        time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            break
        # Finished already (an unloaded machine): try an earlier moment.
        proc.wait()
        shutil.rmtree(out)
        delay /= 3
    assert proc.returncode == -signal.SIGKILL, "never killed"
    _, resumed, seconds, _ = run_recipe(cmd, tmp_path / "resumed.txt")
    final = counters(out / "save")
    assert final == counters(run_ref["out"] / "save")
    assert final["optimizer_step"] == expected_steps(out / "save", EPOCHS)
    assert (out / "pretrained" / "embedding_model.ckpt").is_file()
    assert_same_run(out, run_ref["out"])
    how = "resumed" if "Loading a checkpoint from" in resumed else "restarted"
    print(
        f"\nRECOVERY random kill (seed {seed}) at {delay:.1f} s: {how}, "
        f"rerun took {seconds:.1f} s"
    )


# ---------------------------------------------------------------------------
# 5. DDP: torchrun restarts the group when a rank dies
# ---------------------------------------------------------------------------
def test_ddp_rank_death_elastic_restart(corpus, run_ref, tmp_path):
    out = tmp_path / "out"
    marker = tmp_path / "killed_once"
    # Rank 1 dies in epoch 2, after its first intra-epoch checkpoint.
    kill_at = expected_steps(run_ref["out"] / "save", 1, replicas=2) + 3
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "--max-restarts=1",
        LAUNCHER,
        str(RECIPE),
        *args(
            corpus,
            out,
            f"--number_of_epochs={EPOCHS}",
            "--ckpt_interval_steps=2",
        ),
    ]
    _, text, seconds, seen = run_recipe(
        cmd,
        tmp_path / "stdout.txt",
        extra_env={
            faults.ENV_KILL_AT_STEP: str(kill_at),
            faults.ENV_KILL_RANK: "1",
            faults.ENV_MARKER: str(marker),
        },
        watch=("FAULT INJECTION", "Loading a checkpoint from"),
    )
    assert marker.read_text() == f"killed after optimiser step {kill_at}\n"
    assert "FAULT INJECTION" in text and "Loading a checkpoint from" in text
    # The restarted group did not meet in the previous attempt's keys.
    assert "torchrun restart 1: joining a fresh process group" in text
    digests = [
        json.load(open(out / f"weight_digests_rank{r}.json")) for r in (0, 1)
    ]
    assert digests[0] == digests[1]
    final = counters(out / "save")
    assert final["optimizer_step"] == expected_steps(
        out / "save", EPOCHS, replicas=2
    )
    assert final["scheduler_step"] == final["optimizer_step"]
    assert [row[0] for row in train_log(out)][-1] == EPOCHS
    print(
        f"\nRECOVERY DDP rank death: killed at {seen['FAULT INJECTION']:.1f}"
        f" s, checkpoint loaded again at "
        f"{seen['Loading a checkpoint from']:.1f} s, run {seconds:.1f} s"
    )


# ---------------------------------------------------------------------------
# 6. CSV paths outside the data folder
# ---------------------------------------------------------------------------
def test_csv_path_outside_data_folder_is_refused(corpus, run_ref, tmp_path):
    out = tmp_path / "out"
    copy_prepared(run_ref["out"] / "save", out)
    train_csv = out / "save" / "train.csv"
    with open(train_csv) as f:
        rows = list(csv.DictReader(f))
    elsewhere = tmp_path / "elsewhere" / "copy.wav"
    elsewhere.parent.mkdir()
    shutil.copy(rows[2]["wav"], elsewhere)
    rows[2]["wav"] = str(elsewhere)  # line 4 of the CSV
    with open(train_csv, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cmd = recipe(*args(corpus, out, "--number_of_epochs=1"))
    code, text, _, _ = run_recipe(cmd, tmp_path / "refused.txt", ok=False)
    assert code != 0
    assert f"train.csv:4 (ID {rows[2]['ID']}): '{elsewhere}'" in text
    assert "outside the data folder" in text
    assert not (out / "train_log.txt").exists()

    allowed = cmd + ["--allow_paths_outside_data_folder=True"]
    _, text, _, _ = run_recipe(allowed, tmp_path / "allowed.txt")
    assert "1 audio path(s) outside the data folder(s)" in text
    assert [row[0] for row in train_log(out)] == [1]


# ---------------------------------------------------------------------------
# 7. A crafted pickle planted in a checkpoint
# ---------------------------------------------------------------------------
class Payload:
    """Pickles as a call to ``exec``."""

    def __init__(self, flag):
        self.flag = str(flag)

    def __reduce__(self):
        import builtins

        return (builtins.exec, (f"open({self.flag!r}, 'w').write('ran')",))


def test_planted_pickle_is_refused_on_recovery(run_ref, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(run_ref["out"], out)
    ckpt = find_checkpoint(str(out / "save"), "last")
    flag = tmp_path / "payload_ran"
    target = ckpt.paramfiles["embedding_model"]
    torch.save(Payload(flag), target)
    # The attacker can also rewrite the completeness marker.
    marker = ckpt.path / COMPLETE_MARKER
    files = json.loads(marker.read_text())["files"]
    files[target.name] = target.stat().st_size
    marker.write_text(json.dumps({"files": files}))
    cmd = [a.replace(str(run_ref["out"]), str(out)) for a in run_ref["cmd"]]
    cmd = [a for a in cmd if not a.startswith("--number_of_epochs")]
    cmd.append(f"--number_of_epochs={EPOCHS + 1}")
    code, text, _, _ = run_recipe(
        cmd,
        tmp_path / "stdout.txt",
        # Asks torch for full unpickling wherever weights_only is unset.
        extra_env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"},
        ok=False,
    )
    assert code != 0
    assert f"Refused to load checkpoint file {target}" in text
    assert not flag.exists()


# ---------------------------------------------------------------------------
# 8. Two runs on one output folder
# ---------------------------------------------------------------------------
def test_second_run_on_the_same_output_folder_is_refused(corpus, tmp_path):
    from speechbrain_ext.run_lock import LOCK_FILE

    out = tmp_path / "out"
    cmd = recipe(*args(corpus, out, f"--number_of_epochs={EPOCHS}"))
    first = start(cmd, tmp_path / "first.txt")
    deadline = time.time() + TIMEOUT
    while not (out / LOCK_FILE).exists() and first.poll() is None:
        assert time.time() < deadline, "the first run never took the lock"
        time.sleep(0.05)
    code, text, _, _ = run_recipe(cmd, tmp_path / "second.txt", ok=False)
    assert first.poll() is None, "the first run ended too early for the test"
    assert code != 0
    assert (
        f"FolderLockedError: The training output folder {out} is in use by "
        f"another run (PID {first.pid} on this machine"
    ) in text
    assert f"If that run is over, delete {out / LOCK_FILE}" in text
    code, _, _, _ = wait(first, tmp_path / "first.txt")
    assert code == 0, open(tmp_path / "first.txt").read()[-3000:]
    # The first run was not disturbed: every epoch once, lock released.
    assert [row[0] for row in train_log(out)] == list(range(1, EPOCHS + 1))
    assert not (out / LOCK_FILE).exists()
    assert (out / "pretrained" / "embedding_model.ckpt").is_file()


# ---------------------------------------------------------------------------
# 9. Killed after an epoch's log line, before its checkpoint completed
# ---------------------------------------------------------------------------
def test_redone_epoch_is_marked_in_the_log_and_resume_is_exact(
    corpus, run_ref, tmp_path
):
    out = tmp_path / "out"
    # Only end-of-epoch checkpoints; the second save is epoch 2's, made
    # after its line was logged.
    cmd = recipe(
        *args(
            corpus,
            out,
            f"--number_of_epochs={EPOCHS}",
            "--ckpt_interval_minutes=0",
            "--num_workers=2",
        )
    )
    code, text, _, _ = run_recipe(
        cmd,
        tmp_path / "killed.txt",
        extra_env={faults.ENV_KILL_IN_SAVE: "2"},
        ok=False,
    )
    assert code == -signal.SIGKILL, text[-3000:]
    def log_lines():  # without the protocol header the run writes first
        text = (out / "train_log.txt").read_text().splitlines()
        return [x for x in text if not x.startswith("protocol: ")]

    logged = log_lines()
    assert [int(re.search(r"epoch: (\d+),", x)[1]) for x in logged] == [1, 2]
    run_recipe(cmd, tmp_path / "resumed.txt")
    lines = log_lines()
    assert lines[0] == logged[0]
    assert lines[1] == "# abandoned attempt: " + logged[1]
    assert lines[2].startswith("# resumed ") and "(end of epoch 1," in lines[2]
    assert lines[3].startswith("epoch: 2,") and len(lines) == 4
    # The redone epoch is the abandoned one to the digit (exact resume),
    # and the whole run equals the uninterrupted reference (whose
    # intra-epoch checkpoints change nothing either).
    assert without_times(lines[3]) == without_times(logged[1])
    assert_same_run(out, run_ref["out"])

