"""The verification recipe with a calibrated folder and an ONNX model:
calibrated rows (Cllr, min-Cllr, actual DCF) and onnxruntime embeddings."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers import ROOT

from speechbrain_ext.scoring.calibration import (
    CALIBRATION_FILE,
    LogisticCalibration,
)

RECIPE = ROOT / "recipes" / "speaker_verification_cosine.py"
DEMO_YAML = ROOT / "hparams" / "verification_demo.yaml"


@pytest.fixture(scope="module")
def corpus(synthetic_corpus):
    return synthetic_corpus(
        n_train_speakers=0, n_test_speakers=3, utts_per_speaker=3,
        sessions_per_speaker=2, seed=8, min_duration=1.0, max_duration=2.5,
        n_noise=1, n_music=1, n_speech=1, n_rooms=1, rirs_per_room=1,
    )["paths"]


def run_recipe(corpus, model, out, *extra):
    cmd = [
        sys.executable, str(RECIPE), str(DEMO_YAML),
        f"--data_folder={corpus['root']}", f"--pretrained_path={model}",
        f"--output_folder={out}", "--noprogressbar", "--device=cpu",
        "--conditions=[full, 1.04s]", *extra,
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads((out / "results.json").read_text())


def scores(path):
    return np.array([float(r.split()[3]) for r in open(path)])


def test_calibrated_rows_and_onnx_extraction(corpus, tiny_onnx, tmp_path):
    folder, onnx_path, _ = tiny_onnx
    model = tmp_path / "pretrained"
    shutil.copytree(folder, model)
    LogisticCalibration([8.0], -3.0, info={"trial_list": "dev.txt"}).save(
        str(model / CALIBRATION_FILE)
    )
    out_pt, out_onnx = tmp_path / "pt", tmp_path / "onnx"
    stdout, results = run_recipe(corpus, model, out_pt)
    assert "Cllr" in stdout and "| calibrated |" in stdout
    for cond in ("full", "1.04s"):
        row = results["results"]["synthetic"][cond]
        cal = row["calibrated"]
        assert 0 <= cal["min_cllr"] <= cal["cllr"] + 1e-9
        assert {"act_dcf@0.01", "p_fa@0.01", "p_miss@0.01"} <= set(cal)
        # A monotonic map: same EER and minDCF as cosine.
        assert cal["eer"] == row["cosine"]["eer"]
        cos = scores(out_pt / "scores" / "synthetic" / f"{cond}.txt")
        llr = scores(out_pt / "scores" / "synthetic"
                     / f"{cond}.calibrated.txt")
        np.testing.assert_allclose(llr, 8.0 * cos - 3.0, atol=1e-6)
    assert results["meta"]["calibration"]["weights"] == [8.0]

    _, onnx_results = run_recipe(
        corpus, model, out_onnx, f"--onnx_model={onnx_path}",
        "--use_calibration=False",
    )
    assert onnx_results["meta"]["onnx_model"] == str(onnx_path)
    assert "calibrated" not in onnx_results["results"]["synthetic"]["full"]
    for cond in ("full", "1.04s"):
        a = scores(out_pt / "scores" / "synthetic" / f"{cond}.txt")
        b = scores(out_onnx / "scores" / "synthetic" / f"{cond}.txt")
        assert np.abs(a - b).max() < 1e-4
