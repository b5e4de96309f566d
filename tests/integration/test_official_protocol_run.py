"""A tiny end-to-end run of hparams/mr_rawnet.yaml (the official protocol)
shrunk by overrides, on the synthetic corpus, on the CPU.

Its ``train_log.txt`` shows that the trial speakers were left out (the
corpus keeps them in the same ``wav`` folder, as ``voxceleb1/wav`` does),
that nothing was held out, that the LR of every epoch's last step is the
official scheduler's (``scheduler/cosine_warmup.py``, same iterations per
scheduler epoch, a restart inside the run), and that the trial list was
scored every epoch; the exported checkpoint is the last one.
"""

import csv
import json
import os
import re
import subprocess
import sys

import pytest
import torch
from helpers import ROOT, TINY_KWARGS
from official_code import official_module

from speechbrain_ext.training.export import find_checkpoint

EPOCHS = 2


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("official") / "out"
    model = json.dumps(TINY_KWARGS).replace('"', "")
    cmd = [
        sys.executable, str(ROOT / "recipes" / "train_speaker_embeddings.py"),
        str(ROOT / "hparams" / "mr_rawnet.yaml"),
        f"--data_folder={corpus['root']}",
        f"--musan_folder={corpus['musan_dir']}",
        f"--rir_folder={corpus['rirs_dir']}",
        "--trial_lists=[veri_test.txt]",  # found in the data folder
        "--out_n_neurons=8",  # the corpus' training speakers
        f"--output_folder={out}", f"--model_kwargs={model}",
        "--device=cpu", "--noprogressbar", "--num_workers=0",
        "--prep_workers=1", "--augment_threads=1",
        "--crop_seconds=0.6", "--short_crop_seconds=[0.4, 0.5]",
        "--batch_size=6", f"--number_of_epochs={EPOCHS}",
        "--lr_cycle_epochs=1", "--warmup_epochs=0.5",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def test_log_shows_trial_speakers_left_out_and_official_lr(run, corpus):
    lines = (run / "train_log.txt").read_text().splitlines()
    resumes = [x for x in lines if x.startswith("# resumed ")]
    lines = [x for x in lines if x not in resumes]
    protocol = [x for x in lines if x.startswith("protocol: ")]
    epochs = [x for x in lines if x.startswith("epoch: ")]
    assert len(epochs) == EPOCHS and len(protocol) + len(epochs) == len(lines)
    text = "\n".join(protocol)
    trial_speakers = {
        path.split("/")[0]
        for line in open(corpus["trials"])
        for path in line.split()[1:]
    }
    assert len(trial_speakers) == 2
    assert (f"left out 2 speakers (24 files) of the trial lists "
            f"{os.path.abspath(corpus['trials'])}") in text
    assert "8 training speakers, 96 training utterances, 0 held out" in text
    with open(run / "save" / "train.csv") as f:
        trained = {row["spk_id"] for row in csv.DictReader(f)}
    assert len(trained) == 8 and not trained & trial_speakers
    assert not (run / "save" / "valid.csv").exists()

    m = re.search(r"lr schedule: (\d+) steps per scheduler epoch "
                  r"\(official: 96 utterances // \(6 x 1 processes\)\)", text)
    steps_per_epoch = int(m[1])
    assert steps_per_epoch == 16
    # The official scheduler over the same iterations (T_0 1 epoch, warm-up
    # half an epoch, as overridden), stepped as train_network steps it.
    sched_mod = official_module("scheduler.cosine_warmup")
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=3e-6)
    official = sched_mod.CosineAnnealingWarmUpRestarts(
        opt, T_0=steps_per_epoch, T_mult=1, eta_max=5e-4,
        T_up=steps_per_epoch // 2, gamma=0.5,
    )
    lrs = []
    for _ in range(EPOCHS * steps_per_epoch):
        lrs.append(opt.param_groups[0]["lr"])
        official.step()
    for line in epochs:
        lr = float(re.search(r"lr: (\S+),", line)[1])
        steps = int(re.search(r"steps: (\d+) ", line)[1])
        assert lr == pytest.approx(lrs[steps - 1], rel=1e-4), line
        assert re.search(r"test eer: \S+, test min_dcf: \S+", line)
    last_steps = int(re.search(r"steps: (\d+) ", epochs[-1])[1])
    assert last_steps > steps_per_epoch  # the run crossed a restart


def test_last_checkpoint_is_exported(run):
    ckpt = find_checkpoint(str(run / "save"), "last")
    assert ckpt.meta["epoch"] == EPOCHS and "error_rate" not in ckpt.meta
    exported = torch.load(run / "pretrained" / "embedding_model.ckpt",
                          weights_only=True)
    saved = torch.load(ckpt.paramfiles["embedding_model"], weights_only=True)
    assert exported.keys() == saved.keys()
    assert all(torch.equal(exported[k], saved[k]) for k in saved)
