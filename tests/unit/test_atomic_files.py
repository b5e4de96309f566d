"""Atomic writes keep the old file on failure and leave no temporary file;
pretrained folders written twice from the same weights are byte-identical.
"""

import os

import pytest
import torch

from speechbrain_ext.atomic_files import (
    atomic_replace,
    atomic_write,
    atomic_write_text,
)


def test_failed_write_keeps_old_file_and_cleans_up(tmp_path):
    target = tmp_path / "data.csv"
    atomic_write_text(str(target), "old\n")

    def half_then_fail(f):
        f.write("half of the new con")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(str(target), half_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        atomic_replace(str(target), lambda tmp: half_then_fail(open(tmp, "w")))
    assert target.read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["data.csv"]


def test_newlines_written_as_given_and_fsync_path(tmp_path):
    target = tmp_path / "deep" / "er" / "a.txt"
    atomic_write_text(str(target), "a\r\nb\n", fsync=True)
    assert target.read_bytes() == b"a\r\nb\n"


def test_pretrained_folder_is_byte_identical_when_rewritten(tmp_path):
    from speechbrain_ext.lobes.mr_rawnet import MRRawNet
    from speechbrain_ext.pretrained import write_pretrained_folder

    kwargs = dict(
        sinc_filters=8, tcn_channels=8, tcn_hidden=6, tcn_repeats=1,
        tcn_blocks=2, channels=8, mra_depths=[1, 1, 1],
        aggregate_channels=12, attention_channels=4, lin_neurons=5,
    )
    torch.manual_seed(0)
    state = MRRawNet(**kwargs).state_dict()
    weight = torch.randn(3, 5)
    contents = []
    for out in ("a", "b"):
        folder = tmp_path / out
        write_pretrained_folder(
            str(folder), kwargs, state, weight, labels=["x", "y", "z"]
        )
        contents.append(
            {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
        )
    assert contents[0] == contents[1]
    assert {"embedding_model.ckpt", "classifier.ckpt"} <= set(contents[0])
