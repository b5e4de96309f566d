"""The demo pipeline at a tiny size, through the same entry points.

``recipes/demo.py`` is run as ``make demo`` runs it, with a few speakers,
one epoch and the tiny model; every output must exist and parse.
"""

import json
import os
import re
import subprocess
import sys

import torch
from helpers import ROOT, TINY_KWARGS


def test_demo_end_to_end(tmp_path):
    model = json.dumps(TINY_KWARGS).replace('"', "")
    train = [
        f"--model_kwargs={model}",
        "--number_of_epochs=1",
        "--crop_seconds=0.6",
        "--valid_crop_seconds=0.6",
        "--short_crop_seconds=[0.4, 0.5]",
        "--batch_size=4",
        "--num_workers=0",
        "--prep_workers=1",
        "--augment_threads=1",
        "--device=cpu",
    ]
    cmd = [
        sys.executable,
        str(ROOT / "recipes" / "demo.py"),
        f"--workdir={tmp_path / 'data'}",
        f"--results={tmp_path / 'results'}",
        "--n_train_speakers=4",
        "--n_test_speakers=2",
        "--utts_per_speaker=3",
        "--n_dev_speakers=3",
        "--dev_utts_per_speaker=3",
        "--noprogressbar",
        "--n_qmf_trials=8",
        *[f"--train_arg={a}" for a in train],
        *[f"--lm_arg={a}" for a in train],
        "--verify_arg=--device=cpu",
        "--verify_arg=--cohort_topk=4",
        "--verify_arg=--cohort_size=5",  # the QMF cohort: 2 speakers
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    # The first run also exports to ONNX (minutes on a loaded CPU).
    done = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for n in range(1, 10):
        assert f"[{n}/9]" in out
    assert "MFCC mean+std" in out and "MR-RawNet LM, AS-norm + QMF" in out
    assert "Cllr" in out and "LLR >" in out

    results = tmp_path / "results"
    summary = json.loads((results / "demo_results.json").read_text())
    scorings = {"cosine", "as-norm", "as-norm+qmf"}
    lm_calibrated = [("mr_rawnet", {"calibrated"}), ("mr_rawnet_lm", set())]
    for system, extra in lm_calibrated:
        assert set(summary[system]) == {"full", "1.04s", "2.04s"}
        for by_scoring in summary[system].values():
            assert set(by_scoring) == scorings | extra
    for metrics in [
        *summary["mfcc_baseline"].values(),
        *(m for c in summary["mr_rawnet"].values() for m in c.values()),
    ]:
        assert 0.0 <= metrics["eer"] <= 1.0
        assert metrics["n_target"] > 0 and metrics["n_nontarget"] > 0
    table = (results / "demo_results.md").read_text().splitlines()
    # EER table (7 systems x 3 conditions), calibration table
    assert len(table) == 2 + 21 + 3 + 2 + 3
    assert summary["qmf"]["features"][0] == "asnorm"
    for metrics in summary["mr_rawnet_calibrated"].values():
        assert 0.0 <= metrics["min_cllr"] <= metrics["cllr"] + 1e-9
        assert 0.0 <= metrics["p_fa@0.01"] <= 1.0
    info = summary["calibration"]["info"]
    assert info["decision_p_target"] == 0.01
    assert "dev_corpus" in info["trial_list"]
    assert summary["onnx"]["padded_min_cosine"] >= 0.9999
    assert summary["onnx"]["state"] == "exported"
    assert (results / "mr_rawnet_demo.onnx").is_file()

    pretrained = results / "train" / "pretrained"
    for name in ["hyperparams.yaml", "embedding_model.ckpt", "classifier.ckpt"]:
        assert (pretrained / name).is_file()
    assert (pretrained / "calibration.json").is_file()
    assert (pretrained / "qmf.json").is_file()
    lm_log = (results / "train_lm" / "train_log.txt").read_text()
    assert f"protocol: init_from: {pretrained}" in lm_log
    assert (results / "train_lm" / "pretrained" / "qmf.json").is_file()
    state = torch.load(pretrained / "embedding_model.ckpt", weights_only=True)
    assert state["fc.weight"].shape[0] == TINY_KWARGS["lin_neurons"]
    assert (results / "train" / "train_log.txt").read_text().strip()

    verification = results / "verification"
    scored = json.loads((verification / "results.json").read_text())
    assert set(next(iter(scored["results"].values()))) == {
        "full", "1.04s", "2.04s"
    }
    plots = sorted(os.listdir(verification / "plots"))
    assert plots == ["synthetic_det.png", "synthetic_hist.png"]
    for name in plots:
        assert (verification / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    scores = sorted(os.listdir(verification / "scores" / "synthetic"))
    assert len(scores) == 12, scores  # cosine, as-norm, +qmf, calibrated
    first = (verification / "scores" / "synthetic" / "full.txt").read_text()
    label, score = first.splitlines()[0].split()[2:]
    assert label in {"0", "1"} and -1.0 <= float(score) <= 1.0

    # A second run reuses the corpus, the training and the embeddings.
    train_log = (results / "train" / "train_log.txt").read_text()
    again = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "reused" in again.stdout
    again_summary = json.loads((results / "demo_results.json").read_text())
    assert again_summary["onnx"]["state"] == "reused"
    assert (results / "train" / "train_log.txt").read_text() == train_log
    assert (results / "train_lm" / "train_log.txt").read_text() == lm_log
    log = (verification / "log.txt").read_text().splitlines()
    extraction = [line for line in log if "Embeddings:" in line]
    assert len(extraction) == 2
    assert re.search(r"\d+ utterances cached, 0 to compute", extraction[-1])
