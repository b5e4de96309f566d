"""Tests for the MR-RawNet warm-up cosine-restart LR schedule."""

import math

import pytest
import torch
from speechbrain.utils.checkpoints import Checkpointer

from speechbrain_ext.training.schedulers import WarmupCosineRestarts

STEPS = 7  # a small, odd number of iterations per scheduler epoch


def _opt(lr=1.0):
    """Optimizer with two param groups, the second with its own lr."""
    groups = [
        {"params": [torch.nn.Parameter(torch.zeros(2))]},
        {"params": [torch.nn.Parameter(torch.ones(1))], "lr": 7.0},
    ]
    return torch.optim.SGD(groups, lr=lr)


@pytest.mark.parametrize(
    "epoch, expected, tol",
    [
        (1, 5.0e-4, 1e-12),
        (30, 2.58e-4, 1e-6),
        (60, 3e-6, 1e-12),
        (61, 2.5e-4, 1e-12),
        (90, 1.30e-4, 1e-6),
    ],
)
def test_official_values(epoch, expected, tol):
    sched = WarmupCosineRestarts(steps_per_epoch=STEPS)
    assert sched.get_lr(epoch * STEPS) == pytest.approx(expected, abs=tol)


def test_official_values_independent_of_steps_per_epoch():
    a = WarmupCosineRestarts(steps_per_epoch=3)
    b = WarmupCosineRestarts(steps_per_epoch=1000)
    for epoch in (0, 1, 7, 30, 59, 60, 61, 90, 119):
        assert a.get_lr(3 * epoch) == pytest.approx(b.get_lr(1000 * epoch))


def test_closed_form_inside_cycles():
    sched = WarmupCosineRestarts(steps_per_epoch=STEPS)
    lo, hi, T, W = 3e-6, 5e-4, 60 * STEPS, STEPS
    # warm-up is linear from the floor to the peak
    for t in range(W):
        assert sched.get_lr(t) == pytest.approx(lo + (hi - lo) * t / W)
    # cosine part, first cycle
    for t in (W, W + 1, 100, T - 1):
        cos = (1 + math.cos(math.pi * (t - W) / (T - W))) / 2
        assert sched.get_lr(t) == pytest.approx(lo + (hi - lo) * cos)
    # second cycle: halved peak, same shape
    for t in (0, 3, W, 200, T - 1):
        expected = lo + (hi / 2 - lo) / (hi - lo) * (sched.get_lr(t) - lo)
        assert sched.get_lr(T + t) == pytest.approx(expected)
    # third cycle: quarter peak
    assert sched.get_lr(2 * T + W) == pytest.approx(hi / 4)


def test_shape_is_monotone_and_bounded():
    sched = WarmupCosineRestarts(steps_per_epoch=STEPS)
    lrs = [sched.get_lr(i) for i in range(120 * STEPS)]
    assert min(lrs) == pytest.approx(3e-6)
    assert max(lrs) == pytest.approx(5e-4)
    cycle = 60 * STEPS
    for c in range(2):
        part = lrs[c * cycle : (c + 1) * cycle]
        up, down = part[: STEPS + 1], part[STEPS:]
        assert all(x < y for x, y in zip(up, up[1:], strict=False))
        assert all(x > y for x, y in zip(down, down[1:], strict=False))


def test_custom_parameters():
    sched = WarmupCosineRestarts(
        steps_per_epoch=2,
        lr_max=1.0,
        lr_min=0.0,
        cycle_epochs=4,
        warmup_epochs=2,
        gamma=0.1,
    )
    # W = 4 steps, T = 8 steps
    assert [sched.get_lr(i) for i in range(4)] == [0.0, 0.25, 0.5, 0.75]
    assert sched.get_lr(4) == 1.0
    assert sched.get_lr(6) == pytest.approx(0.5)
    assert sched.get_lr(8) == 0.0
    assert sched.get_lr(12) == pytest.approx(0.1)


def test_invalid_parameters():
    with pytest.raises(ValueError):
        WarmupCosineRestarts(steps_per_epoch=0)
    with pytest.raises(ValueError):
        WarmupCosineRestarts(steps_per_epoch=2, cycle_epochs=1, warmup_epochs=1)
    with pytest.raises(ValueError):
        WarmupCosineRestarts(steps_per_epoch=2).get_lr(-1)


def test_call_sets_all_groups_and_advances():
    sched = WarmupCosineRestarts(steps_per_epoch=STEPS)
    opt = _opt()
    seen = []
    for i in range(3 * STEPS):
        lr = sched(opt)
        assert {g["lr"] for g in opt.param_groups} == {lr}
        assert lr == sched.get_lr(i)
        seen.append(lr)
    assert sched.n_steps == 3 * STEPS
    assert seen[0] == 3e-6 and seen[STEPS] == 5e-4


def test_official_order_matches_call_order():
    """apply + on_batch_end gives iteration i the same lr as __call__."""
    a, b = WarmupCosineRestarts(5), WarmupCosineRestarts(5)
    opt_a, opt_b = _opt(), _opt()
    b.apply(opt_b)
    for _ in range(40):
        a(opt_a)
        # lr in effect during this iteration (optimizer.step happens here)
        assert opt_a.param_groups[0]["lr"] == opt_b.param_groups[1]["lr"]
        b.on_batch_end(opt_b)
    assert a.n_steps == b.n_steps == 40


@pytest.mark.parametrize("k", [1, STEPS - 1, STEPS, 60 * STEPS + 3])
def test_resume_is_exact(tmp_path, k):
    total = k + 2 * STEPS
    ref = WarmupCosineRestarts(steps_per_epoch=STEPS)
    ref_opt = _opt()
    uninterrupted = [ref(ref_opt) for _ in range(total)]

    first = WarmupCosineRestarts(steps_per_epoch=STEPS)
    opt = _opt()
    before = [first(opt) for _ in range(k)]
    ckpt = Checkpointer(tmp_path, {"lr_scheduler": first})
    ckpt.save_checkpoint(end_of_epoch=False)

    # a fresh process: new optimizer with its own initial lr
    resumed = WarmupCosineRestarts(steps_per_epoch=STEPS)
    new_opt = _opt(lr=0.123)
    Checkpointer(tmp_path, {"lr_scheduler": resumed}).recover_if_possible()
    assert resumed.n_steps == k
    after = []
    for _ in range(total - k):
        after.append(resumed(new_opt))
        assert new_opt.param_groups[0]["lr"] == after[-1]
    assert before + after == uninterrupted


def test_resume_official_order(tmp_path):
    ref = WarmupCosineRestarts(steps_per_epoch=STEPS)
    opt = _opt()
    ref.apply(opt)
    for _ in range(10):
        ref.on_batch_end(opt)
    ref.save(tmp_path / "s.json")
    expected = [ref.on_batch_end(opt) for _ in range(5)]

    fresh = WarmupCosineRestarts(steps_per_epoch=STEPS)
    new_opt = _opt(lr=0.5)
    fresh.load(tmp_path / "s.json")
    assert fresh.apply(new_opt) == ref.get_lr(10)
    assert [fresh.on_batch_end(new_opt) for _ in range(5)] == expected
