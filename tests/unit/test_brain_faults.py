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

import pytest
import speechbrain as sb
import torch
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.lobes.models.ECAPA_TDNN import Classifier
from speechbrain.nnet.losses import AdditiveAngularMargin, LogSoftmaxWrapper
from speechbrain.utils.checkpoints import Checkpointer

from speechbrain_ext.data.safe_audio import EmptyBatch, TooManyBadFilesError
from speechbrain_ext.training.brain import (
    COMPLETE_MARKER,
    SafeCheckpointer,
    SpeakerBrain,
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
    brain = SpeakerBrain(
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
