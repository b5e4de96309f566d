"""In-process tests of SpeakerBrain's and SafeCheckpointer's fault handling.

* a batch whose loss and gradients are not finite is skipped: weights,
  optimiser state, BatchNorm statistics and the LR schedule stay as they
  were; it is counted and logged; too many stop the run;
* batches carry bad-file counts that the Brain tracks (and stops on);
* checkpoint files are loaded weights-only: a crafted pickle is refused
  without running, even when the environment asks torch for full
  unpickling (where SpeechBrain's own loader runs it).
"""

import builtins
import json
import logging
import math
import os
import shutil

import pytest
import speechbrain as sb
import torch
from helpers import training_recipe
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.lobes.models.ECAPA_TDNN import Classifier
from speechbrain.nnet.losses import AdditiveAngularMargin, LogSoftmaxWrapper
from speechbrain.utils.checkpoints import Checkpointer

from speechbrain_ext.data.safe_audio import EmptyBatch, TooManyBadFilesError
from speechbrain_ext.training.checkpoint_faults import DamagedCheckpointError
from speechbrain_ext.training.safe_checkpointer import (
    COMPLETE_MARKER,
    SafeCheckpointer,
    UnsafeCheckpointError,
)


class Tiny(torch.nn.Module):
    """Strided convolution, BatchNorm, mean pooling and a linear layer."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(1, 4, 5, stride=5)
        self.bn = torch.nn.BatchNorm1d(4)
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, wavs, lengths=None):
        x = self.bn(self.conv(wavs[:, None]))
        return self.lin(x.mean(-1)).unsqueeze(1)


class CountingScheduler:
    """Records its calls (one per optimiser step taken)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, optimizer):
        self.calls += 1


def make_brain(**run_opts):
    torch.manual_seed(0)
    brain = training_recipe().SpeakerBrain(
        modules={
            "embedding_model": Tiny(),
            "classifier": Classifier(3, out_neurons=3),
        },
        opt_class=lambda params: torch.optim.Adam(params, lr=0.01),
        hparams={
            "compute_cost": LogSoftmaxWrapper(
                AdditiveAngularMargin(margin=0.2, scale=30)
            ),
            "lr_scheduler": CountingScheduler(),
            "max_bad_file_fraction": 0.4,
            "bad_file_min_files": 4,
        },
        run_opts={"device": "cpu", **run_opts},
    )
    brain.init_optimizers()
    brain.modules.train()
    brain.on_stage_start(sb.Stage.TRAIN, 1)
    return brain


def make_batch(nan=False, bad_files=(), seed=0):
    gen = torch.Generator().manual_seed(seed)
    items = [
        {
            "sig": torch.randn(400, generator=gen),
            "spk_id_encoded": torch.tensor([k % 3]),
        }
        for k in range(4)
    ]
    if nan:
        items[1]["sig"][100] = float("nan")
    batch = PaddedBatch(items)
    batch.bad_files = list(bad_files)
    batch.files_read = 4 + len(bad_files)
    batch.dropped = 0
    return batch


def snapshot(brain):
    state = {
        f"{name}.{key}": value.clone()
        for name, module in brain.modules.items()
        for key, value in module.state_dict().items()
    }
    for i, group in enumerate(brain.optimizer.state_dict()["state"].values()):
        for key, value in group.items():
            state[f"opt{i}.{key}"] = torch.as_tensor(value).clone()
    return state


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def fit(brain, batch):
    brain.step += 1
    return brain.fit_batch(batch)


def test_nonfinite_step_is_skipped_and_leaves_no_trace(caplog):
    brain = make_brain()
    fit(brain, make_batch(seed=1))  # a normal step first: Adam has state
    assert brain.optimizer_step == 1
    before = snapshot(brain)
    assert all(torch.isfinite(v).all() for v in before.values())

    with caplog.at_level(logging.WARNING):
        loss = fit(brain, make_batch(nan=True, seed=2))
    assert not torch.isfinite(loss)
    # Weights, BatchNorm statistics and Adam's moments are untouched, no
    # step and no LR-schedule step were taken.
    assert_same(snapshot(brain), before)
    assert brain.optimizer_step == 1
    assert brain.hparams.lr_scheduler.calls == 1
    assert brain.skipped_steps == 1 and brain.nonfinite_count == 1
    assert any(
        "Skipped the optimiser step after batch 2 of epoch 1" in r.getMessage()
        for r in caplog.records
    )
    # The epoch's loss/accuracy sums leave the bad batch out.
    loss_sum, _, count = brain.stage_sums[sb.Stage.TRAIN].tolist()
    assert count == 4 and math.isfinite(loss_sum)

    fit(brain, make_batch(seed=3))  # training goes on
    assert brain.optimizer_step == 2
    assert brain.hparams.lr_scheduler.calls == 2
    after = snapshot(brain)
    assert all(torch.isfinite(v).all() for v in after.values())
    assert not torch.equal(
        after["embedding_model.lin.weight"],
        before["embedding_model.lin.weight"],
    )
    stats = brain._reduced_stats(sb.Stage.TRAIN)
    assert stats["skipped_steps"] == 1 and stats["n"] == 8


def test_too_many_nonfinite_steps_stop_the_run():
    brain = make_brain(nonfinite_patience=1)
    fit(brain, make_batch(nan=True))
    with pytest.raises(ValueError, match="2 optimiser steps of epoch 1"):
        fit(brain, make_batch(nan=True))


def test_bad_files_in_batches_are_tracked_and_can_stop_the_run():
    brain = make_brain()
    fit(brain, make_batch(bad_files=["/d/a.wav: unreadable"]))
    tracker = brain.bad_files[sb.Stage.TRAIN]
    assert (tracker.bad, tracker.files) == (1, 5)
    assert brain.optimizer_step == 1  # the batch itself was trained on

    # A batch left without audio is skipped (single process).
    loss = fit(brain, EmptyBatch(["/d/b.wav: unreadable"], 1, dropped=1))
    assert not torch.isfinite(loss) and brain.optimizer_step == 1
    assert brain.skipped_steps == 1
    stats = brain._reduced_stats(sb.Stage.TRAIN)
    assert (stats["skipped_files"], stats["files_read"]) == (2, 6)

    bad = [f"/d/{n}.wav: unreadable" for n in "cdef"]
    with pytest.raises(TooManyBadFilesError, match="6 of the 14"):  # > 40%
        fit(brain, make_batch(bad_files=bad))


class Payload:
    """Pickles as a call to ``exec``: what a hostile checkpoint holds."""

    def __init__(self, flag):
        self.flag = str(flag)

    def __reduce__(self):
        code = f"open({self.flag!r}, 'w').write('ran')"
        return (builtins.exec, (code,))


def plant(ckpt_dir, name, flag):
    """Replaces a checkpoint file by a payload; keeps the marker valid."""
    torch.save(Payload(flag), ckpt_dir / name)
    marker = ckpt_dir / COMPLETE_MARKER
    files = json.loads(marker.read_text())["files"]
    files[name] = (ckpt_dir / name).stat().st_size
    marker.write_text(json.dumps({"files": files}))


@pytest.mark.parametrize("force_unsafe", [False, True])
def test_crafted_pickle_is_refused_without_running(
    tmp_path, monkeypatch, force_unsafe
):
    if force_unsafe:
        # Asks torch.load for full unpickling when weights_only is unset.
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    flag = tmp_path / "payload_ran"
    model = torch.nn.Linear(2, 2)
    ckpt = SafeCheckpointer(tmp_path / "save", {"embedding_model": model})
    saved = ckpt.save_checkpoint()
    plant(saved.path, "embedding_model.ckpt", flag)
    assert SafeCheckpointer.is_complete(saved.path)

    if force_unsafe:
        # SpeechBrain's own loader runs the payload in that setting.
        plain = Checkpointer(tmp_path / "save", {"embedding_model": model})
        with pytest.raises(Exception):  # noqa: B017 - then fails to load
            plain.recover_if_possible()
        assert flag.read_text() == "ran"
        flag.unlink()

    weights = model.weight.detach().clone()
    with pytest.raises(UnsafeCheckpointError) as err:
        SafeCheckpointer(
            tmp_path / "save", {"embedding_model": model}
        ).recover_if_possible()
    assert "embedding_model.ckpt" in str(err.value)
    assert "Unsupported global" in str(err.value)
    assert not flag.exists()
    assert torch.equal(model.weight, weights)


def test_optimizer_and_modules_recover_through_weights_only_loads(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    SafeCheckpointer(tmp_path, {"m": model, "o": opt}).save_checkpoint()

    model2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.Adam(model2.parameters(), lr=0.5)
    ckpt = SafeCheckpointer(tmp_path, {"m": model2, "o": opt2})
    assert ckpt.recover_if_possible() is not None
    assert torch.equal(model2.weight, model.weight)
    assert opt2.param_groups[0]["lr"] == 0.1
    state, state2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert torch.equal(state[0]["exp_avg"], state2[0]["exp_avg"])


# Damage after completion, set-aside folders, a full disk -------------------


def _checkpointer(folder, model=None):
    model = model if model is not None else torch.nn.Linear(3, 2)
    return SafeCheckpointer(folder, {"embedding_model": model})


def test_damaged_complete_checkpoint_stops_with_the_file_named(
    tmp_path, caplog
):
    save = tmp_path / "save"
    first = _checkpointer(save).save_checkpoint(meta={"n": 1})
    last = _checkpointer(save).save_checkpoint(meta={"n": 2})
    # Another file (of another size) in place of the weights.
    torch.save(torch.nn.Linear(30, 20).state_dict(),
               last.path / "embedding_model.ckpt")
    model = torch.nn.Linear(3, 2)
    weights = model.weight.detach().clone()
    with pytest.raises(DamagedCheckpointError) as err:
        _checkpointer(save, model).recover_if_possible()
    text = str(err.value)
    assert f"Checkpoint {last.path} is damaged (embedding_model.ckpt: " in text
    assert "recorded" in text and "not an interrupted save" in text
    assert f"move the damaged folder out of {save}" in text
    # Nothing was loaded, renamed or deleted: the evidence stays.
    assert torch.equal(model.weight, weights)
    assert last.path.is_dir() and first.path.is_dir()
    assert not list(save.glob("incomplete*"))
    # Moving it away (as the message says) resumes from the older one.
    shutil.move(str(last.path), str(tmp_path / "damaged"))
    assert _checkpointer(save).recover_if_possible().path == first.path


def test_unreadable_checkpoint_file_of_the_right_size_is_damage(tmp_path):
    save = tmp_path / "save"
    ckpt = _checkpointer(save).save_checkpoint()
    path = ckpt.path / "embedding_model.ckpt"
    path.write_bytes(bytes(path.stat().st_size))  # zeroed, same size
    with pytest.raises(DamagedCheckpointError, match="embedding_model.ckpt: "
                       "cannot be read"):
        _checkpointer(save).recover_if_possible()


def test_interrupted_checkpoint_restart_is_said_loudly(tmp_path, caplog):
    save = tmp_path / "save"
    ckpt = _checkpointer(save).save_checkpoint()
    (ckpt.path / COMPLETE_MARKER).unlink()  # killed before the marker
    with caplog.at_level(logging.WARNING):
        assert _checkpointer(save).recover_if_possible() is None
    text = caplog.text
    assert f"Checkpoint {ckpt.path} is incomplete" in text
    assert "training starts from the beginning" in text


def test_set_aside_folders_reported_once_and_removed_after_next_save(
    tmp_path, caplog
):
    save = tmp_path / "save"
    good = _checkpointer(save).save_checkpoint(meta={"n": 0})
    for n in (1, 2):  # two saves killed before their markers
        bad = _checkpointer(save).save_checkpoint(meta={"n": n})
        (bad.path / COMPLETE_MARKER).unlink()
    assert _checkpointer(save).recover_if_possible().path == good.path
    aside = sorted(p.name for p in save.glob("incomplete*-CKPT+*"))
    assert len(aside) == 2
    # A new run reports the earlier ones once, in one line.
    caplog.clear()
    ckpter = _checkpointer(save)
    with caplog.at_level(logging.INFO):
        ckpter.recover_if_possible()
    lines = [r.getMessage() for r in caplog.records if "set aside" in
             r.getMessage()]
    assert len(lines) == 1 and all(name in lines[0] for name in aside)
    # They are kept until the next checkpoint is complete, then removed.
    assert len(ckpter.set_aside()) == 2
    ckpter.save_checkpoint()
    assert ckpter.set_aside() == []
    assert "Removed 2 incomplete checkpoint folder(s)" in caplog.text


_DISK_FULL_SCRIPT = """
import os, sys, torch
from speechbrain_ext.training.safe_checkpointer import SafeCheckpointer
from speechbrain_ext.training.checkpoint_faults import CheckpointSaveError
save = sys.argv[1]
model = torch.nn.Linear(100, 100)           # about 40 kB per checkpoint
ckpter = SafeCheckpointer(save, {"embedding_model": model})
first = ckpter.save_checkpoint()
free = os.statvfs(save).f_bavail * os.statvfs(save).f_frsize
with open(os.path.join(save, "filler"), "wb") as f:  # leave 8 kB
    f.write(bytes(max(free - 8192, 0)))
try:
    ckpter.save_checkpoint()
except CheckpointSaveError as err:
    print("ERROR", err)
    print("CAUSE", type(err.__cause__).__name__, err.__cause__)
    sys.stdout.flush()
print("FIRST", first.path)
print("LEFT", sorted(os.listdir(save)))
"""


def test_disk_full_during_save_says_so_and_keeps_the_previous(tmp_path):
    """On a real full file system (a 256 kB tmpfs in a private mount
    namespace; skipped where unprivileged namespaces are not allowed)."""
    import shutil as sh
    import subprocess
    import sys

    if sh.which("unshare") is None:
        pytest.skip("unshare is not available")
    mnt = tmp_path / "small_disk"
    mnt.mkdir()
    script = tmp_path / "full.py"
    script.write_text(_DISK_FULL_SCRIPT)
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    cmd = (
        f"mount -t tmpfs -o size=256k none {mnt} && "
        f"exec {sys.executable} {script} {mnt / 'save'}"
    )
    proc = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", cmd],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": root},
    )
    if "mount" in proc.stderr and proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = dict(
        line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line
    )
    error, first = out["ERROR"], out["FIRST"]
    assert error.startswith(f"Could not save a checkpoint in {mnt / 'save'}")
    assert "the disk is full (" in error and "B free on the file" in error
    assert f"The previous checkpoint {first} is intact" in error
    assert "The partial checkpoint" in error and "was removed" in error
    left = eval(out["LEFT"])  # noqa: S307 - our own script's list
    assert left == sorted(["filler", os.path.basename(first)])
