"""QMF end to end: the fitting command on a tiny model and the verification
recipe's ``as-norm+qmf`` rows, refusals and warnings (run as subprocesses)."""

import importlib.util
import json
import pathlib
import shutil
import subprocess
import sys

import pytest
import torch
from helpers import TINY_KWARGS

from speechbrain_ext.data.csv_files import write_csv
from speechbrain_ext.data.voxceleb_train import TRAIN_FIELDS
from speechbrain_ext.lobes.mr_rawnet import MRRawNet
from speechbrain_ext.pretrained import write_pretrained_folder
from speechbrain_ext.scoring import qmf, qmf_trials
from speechbrain_ext.scoring.calibration import LogisticCalibration

ROOT = pathlib.Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "speaker_verification_cosine.py"
DEMO_YAML = ROOT / "hparams" / "verification_demo.yaml"


@pytest.fixture(scope="module")
def corpus(synthetic_corpus):
    info = synthetic_corpus(
        n_train_speakers=4, n_test_speakers=2, utts_per_speaker=3,
        sessions_per_speaker=2, seed=11, min_duration=1.0, max_duration=1.5,
        n_noise=1, n_music=1, n_speech=1, n_rooms=1, rirs_per_room=1,
    )
    root = pathlib.Path(info["paths"]["root"])
    rows = [
        (p.stem, "1.2", str(p), spk)
        for spk in info["train_speakers"]
        for p in sorted((root / "wav" / spk).rglob("*.wav"))
    ]
    write_csv(root / "calibration_speakers.csv", TRAIN_FIELDS, rows[:6])
    write_csv(root / "cohort.csv", TRAIN_FIELDS, rows[6:])
    return root


def run_recipe(root, model, out, cache, *extra):
    cmd = [
        sys.executable, str(RECIPE), str(DEMO_YAML),
        f"--data_folder={root}", f"--pretrained_path={model}",
        f"--output_folder={out}", f"--cache_folder={cache}",
        "--noprogressbar", "--device=cpu", "--conditions=[full, 1.04s]",
        "--score_norm=as-norm", f"--cohort_file={root / 'cohort.csv'}",
        "--cohort_size=6", "--cohort_topk=3", "--batch_size=4", *extra,
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def fitted(corpus, tmp_path_factory):
    """(plain folder, the same model with qmf.json, calibration list,
    embedding cache)."""
    from speechbrain_ext.fit_qmf import fit_qmf_folder

    tmp = tmp_path_factory.mktemp("qmf_fit")
    torch.manual_seed(0)
    plain = write_pretrained_folder(
        str(tmp / "plain"), TINY_KWARGS,
        MRRawNet(**TINY_KWARGS).state_dict(),
        torch.randn(4, TINY_KWARGS["lin_neurons"]),
    )
    model = tmp / "model"
    shutil.copytree(plain, model)
    cal = tmp / "cal.txt"
    veri = corpus / "veri_test.txt"
    assert qmf_trials.main([
        str(corpus / "calibration_speakers.csv"), str(cal), "--n_trials",
        "8", "--seed", "1", "--exclude", str(veri), "--noprogressbar"]) == 0
    fit_qmf_folder(
        str(model), str(cal), str(corpus / "wav"), str(corpus / "cohort.csv"),
        conditions=["full", "1.04s"], topk=3, cohort_size=6,
        cohort_crop_seconds=None, exclude=[str(veri)],
        cache_folder=str(tmp / "cache"), progress=False,
    )
    return pathlib.Path(plain), model, cal, tmp / "cache"


def test_fit_qmf_writes_qmf_json(fitted):
    _, model, cal, _ = fitted
    stored = json.loads((model / qmf.QMF_FILE).read_text())
    assert stored["features"] == list(qmf.QMF_FEATURES)
    info = stored["info"]
    assert info["n_trials"] == 16  # 8 trials x 2 conditions
    assert info["conditions"] == {"full": None, "1.04s": 16640}
    assert info["topk"] == 3 and info["cohort_size"] == 6
    assert info["cohort_left_out"] == 0
    assert info["calibration_list"] == str(cal)
    assert info["calibration_list_bytes"] == cal.stat().st_size
    assert len(info["calibration_list_sha256"]) == 64
    assert info["calibration_speakers"] == sorted(qmf.list_speakers(cal))
    assert {"dev_cllr", "dev_cllr_score_only", "dev_min_cllr",
            "dev_eer", "dev_eer_score_only"} <= set(info)
    assert set(info["dev_by_condition"]) == {"full", "1.04s"}


def test_recipe_reports_qmf_rows(corpus, fitted, tmp_path):
    _, model, _, cache = fitted
    stdout, results = run_recipe(corpus, model, tmp_path / "out", cache)
    assert "| synthetic | 1.04s | as-norm+qmf |" in stdout
    n_trials = len((corpus / "veri_test.txt").read_text().splitlines())
    for cond in ("full", "1.04s"):
        row = results["results"]["synthetic"][cond]
        assert set(row) == {"cosine", "as-norm", "as-norm+qmf"}
        assert 0 <= row["as-norm+qmf"]["min_cllr"] <= (
            row["as-norm+qmf"]["cllr"] + 1e-9)
        scores = tmp_path / "out" / "scores" / "synthetic"
        lines = (scores / f"{cond}.as-norm+qmf.txt").read_text()
        assert len(lines.splitlines()) == n_trials
    assert results["meta"]["qmf"]["features"] == list(qmf.QMF_FEATURES)
    assert "calibration_speakers" not in results["meta"]["qmf"]["info"]

    # The folder without qmf.json: exactly the rows of before.
    plain = fitted[0]
    _, before = run_recipe(corpus, plain, tmp_path / "plain_out", cache)
    assert [(r["condition"], r["scoring"]) for r in before["rows"]] == [
        (c, s) for c in ("full", "1.04s") for s in ("cosine", "as-norm")]
    assert "qmf" not in before["meta"]
    for cond in ("full", "1.04s"):
        name = f"synthetic/{cond}.as-norm.txt"
        assert ((tmp_path / "plain_out" / "scores" / name).read_text()
                == (tmp_path / "out" / "scores" / name).read_text())


def _load_recipe():
    spec = importlib.util.spec_from_file_location("sv_recipe_qmf", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recipe_refuses_a_qmf_of_another_topk(tmp_path):
    torch.manual_seed(0)
    folder = write_pretrained_folder(
        str(tmp_path / "m"), TINY_KWARGS,
        MRRawNet(**TINY_KWARGS).state_dict(),
        torch.randn(2, TINY_KWARGS["lin_neurons"]),
    )
    LogisticCalibration([1.0] * 5, 0.0, qmf.QMF_FEATURES, info={
        "topk": 300, "cohort_size": 4, "cohort_crop_seconds": None,
    }).save(str(pathlib.Path(folder) / qmf.QMF_FILE))
    recipe = _load_recipe()
    hp = {"score_norm": "as-norm", "use_qmf": True, "cohort_topk": 3,
          "cohort_crop_seconds": None, "cohort_file": None}
    inputs = {"cohort": ["a", "b", "c", "d"], "lists": []}
    with pytest.raises(qmf.QMFError, match=r"qmf.json was fitted with topk "
                       r"300 \(cohort_topk is 3\)"):
        recipe.load_qmf(hp, folder, inputs)
    assert recipe.load_qmf(dict(hp, use_qmf=False), folder, inputs) is None
    assert recipe.load_qmf(dict(hp, score_norm="none"), folder,
                           inputs) is None


def test_recipe_warns_when_a_list_shares_calibration_speakers(tmp_path,
                                                              caplog):
    from speechbrain_ext.scoring import trial_lists

    torch.manual_seed(0)
    folder = write_pretrained_folder(
        str(tmp_path / "m"), TINY_KWARGS,
        MRRawNet(**TINY_KWARGS).state_dict(),
        torch.randn(2, TINY_KWARGS["lin_neurons"]),
    )
    LogisticCalibration([1.0] * 5, 0.0, qmf.QMF_FEATURES, info={
        "topk": 3, "cohort_size": 4, "cohort_crop_seconds": None,
        "calibration_list": "cal.txt", "calibration_speakers": ["id5"],
    }).save(str(pathlib.Path(folder) / qmf.QMF_FILE))
    scored = tmp_path / "test.txt"
    scored.write_text("1 id5/a/1.wav id5/b/2.wav\n0 id5/a/1.wav id6/a/1.wav\n")
    [loaded] = trial_lists.load_trial_lists(
        [trial_lists.TrialSpec("t", str(scored), str(tmp_path))])
    recipe = _load_recipe()
    hp = {"score_norm": "as-norm", "use_qmf": True, "cohort_topk": 3,
          "cohort_crop_seconds": None, "cohort_file": None}
    with caplog.at_level("WARNING"):
        model = recipe.load_qmf(hp, folder, {"cohort": list("abcd"),
                                             "lists": [loaded]})
    assert model is not None
    assert "shares 1 speaker(s) with the QMF calibration list" in caplog.text
    assert "id5" in caplog.text
