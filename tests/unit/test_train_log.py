"""Tests of speechbrain_ext.training.train_log (resume marks)."""

from speechbrain_ext.training.train_log import ABANDONED, mark_resume

LOG = "".join(
    f"epoch: {e}, lr: 1.00e-03, steps: {10 * e} - train loss: {3 - e / 2}\n"
    for e in (1, 2, 3)
)


def _lines(path):
    return path.read_text().splitlines()


def test_epoch_redone_from_within_is_marked(tmp_path):
    log = tmp_path / "train_log.txt"
    log.write_text(LOG)
    # Resumed from an intra-epoch checkpoint of epoch 2: epochs 2 and 3
    # are trained again, so their lines belong to the abandoned attempt.
    assert mark_resume(log, 2, False, "CKPT+b", step=14) == 2
    lines = _lines(log)
    assert lines[0] == LOG.splitlines()[0]
    assert lines[1:3] == [ABANDONED + x for x in LOG.splitlines()[1:]]
    assert lines[3].startswith("# resumed ")
    assert "from CKPT+b (within epoch 2, 14 optimiser steps)" in lines[3]
    # A later resume keeps the earlier marks and adds its own.
    log.write_text(log.read_text() + "epoch: 2, lr: 1, steps: 20 - x\n")
    assert mark_resume(log, 2, True, "CKPT+c", step=20) == 0
    assert _lines(log)[-1].startswith("# resumed ")
    assert _lines(log)[-2] == "epoch: 2, lr: 1, steps: 20 - x"


def test_fresh_start_marks_every_line_and_finished_run_changes_nothing(
    tmp_path,
):
    log = tmp_path / "train_log.txt"
    log.write_text(LOG)
    assert mark_resume(log, 3, True, "CKPT+z", finished=True) == 0
    assert log.read_text() == LOG  # a rerun of a finished run
    assert mark_resume(log, 0, True, None) == 3  # no checkpoint left
    assert "from the beginning (no complete checkpoint)" in _lines(log)[-1]
    assert mark_resume(tmp_path / "none.txt", 1, True, "CKPT+a") == 0
