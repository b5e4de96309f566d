"""QMF: features, fit on synthetic trials, the calibration-list generator,
the fitting command's refusals and the verification recipe's QMF rows."""

import csv
import importlib.util
import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from speechbrain_ext.lobes.mr_rawnet import MRRawNet
from speechbrain_ext.pretrained import write_pretrained_folder
from speechbrain_ext.scoring import qmf, qmf_trials
from speechbrain_ext.scoring.calibration import LogisticCalibration
from speechbrain_ext.scoring.calibration_metrics import cllr
from speechbrain_ext.scoring.speechbrain_metrics import compute_eer
from tests.conftest import TINY_KWARGS

ROOT = pathlib.Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "speaker_verification_cosine.py"
DEMO_YAML = ROOT / "hparams" / "verification_demo.yaml"


def synthetic_trials(n, seed):
    """Trials whose scores shift with the log of the shorter duration:
    score = N(2 y, 1) + log(min duration); true LLR = 2 score - 2 log(min
    duration) - 2. The longer side and the cohort means carry nothing."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    d_min = np.exp(rng.uniform(0.0, np.log(20.0), n))
    d_max = d_min * np.exp(rng.uniform(0.0, 1.5, n))
    score = rng.normal(2.0 * y, 1.0) + np.log(d_min)
    swap = rng.random(n) < 0.5
    enrol, test = np.where(swap, d_min, d_max), np.where(swap, d_max, d_min)
    means = rng.normal(0.3, 0.05, (2, n))
    return qmf.quality_features(score, enrol, test, *means), y


def test_qmf_recovers_the_duration_effect_and_beats_the_score_alone():
    x, y = synthetic_trials(20000, seed=0)
    model = qmf.fit_qmf(x, y)
    w = dict(zip(qmf.QMF_FEATURES, model.weights, strict=True))
    assert w["asnorm"] == pytest.approx(2.0, abs=0.15)
    assert w["log_min_duration"] == pytest.approx(-2.0, abs=0.2)
    assert abs(w["log_max_duration"]) < 0.2
    for name in ("min_cohort_mean", "max_cohort_mean"):
        assert abs(w[name]) * 0.05 < 0.05  # effect of one std: none
    assert model.info["dev_cllr"] < model.info["dev_cllr_score_only"]

    alone = LogisticCalibration.fit(x[:, 0], y, ["asnorm"])
    held, y_held = synthetic_trials(20000, seed=1)
    t = y_held == 1
    llr = model.llr(held)
    assert cllr(y_held, llr) < cllr(y_held, alone.llr(held[:, 0])) - 0.03
    eer_qmf = compute_eer(llr[t], llr[~t])[0]
    eer_alone = compute_eer(held[t, 0], held[~t, 0])[0]
    assert eer_qmf < eer_alone - 0.03, (eer_qmf, eer_alone)
    assert eer_qmf == pytest.approx(0.159, abs=0.015)  # Phi(-1)


def test_features_are_symmetric_and_capped():
    rng = np.random.default_rng(3)
    s = rng.normal(size=50)
    d = rng.uniform(0.5, 40.0, (2, 50))
    m = rng.uniform(0.1, 0.6, (2, 50))
    a = qmf.quality_features(s, d[0], d[1], m[0], m[1])
    b = qmf.quality_features(s, d[1], d[0], m[1], m[0])
    np.testing.assert_array_equal(a, b)
    assert a[:, 2].max() <= np.log(qmf.MAX_DURATION) + 1e-12
    assert (a[:, 1] <= a[:, 2]).all() and (a[:, 3] <= a[:, 4]).all()
    with pytest.raises(qmf.QMFError, match="durations must be > 0"):
        qmf.quality_features([1.0], [0.0], [1.0], [0.2], [0.2])


def test_folder_qmf_refuses_other_features(tmp_path):
    LogisticCalibration([1.0, 2.0], 0.0, ["asnorm", "magnitude"]).save(
        str(tmp_path / qmf.QMF_FILE))
    with pytest.raises(qmf.QMFError, match="magnitude"):
        qmf.folder_qmf(str(tmp_path))


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ID", "duration", "wav", "spk_id"])
        w.writerows(rows)
    return str(path)


@pytest.fixture
def train_csv(tmp_path):
    rows = [
        (f"{s}--s{k % 2}--{k}", "1.5", f"/data/wav/{s}/s{k % 2}/{k}.wav", s)
        for s in ("id1", "id2", "id3", "id4") for k in range(6)
    ]
    return write_csv(tmp_path / "train.csv", rows)


def read_list(path):
    return [line.split() for line in open(path)]


def test_generator_is_balanced_seeded_and_has_no_self_trials(train_csv,
                                                             tmp_path):
    outs = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        out = tmp_path / f"{name}.txt"
        assert qmf_trials.main([train_csv, str(out), "--n_trials", "40",
                                "--seed", str(seed), "--noprogressbar"]) == 0
        outs[name] = out.read_text()
    assert outs["a"] == outs["b"] and outs["a"] != outs["c"]
    rows = read_list(tmp_path / "a.txt")
    assert len(rows) == 40
    assert sum(r[0] == "1" for r in rows) == 20
    pairs = set()
    for label, a, b in rows:
        assert a != b
        assert (a.split("/")[0] == b.split("/")[0]) == (label == "1")
        if label == "1":  # each speaker has two sessions: cross-session
            assert a.split("/")[1] != b.split("/")[1]
        assert a.startswith("id") and a.endswith(".wav")  # spk/sess/utt
        pairs.add(frozenset((a, b)))
    assert len(pairs) == 40
    with pytest.raises(qmf.QMFError, match="distinct target"):
        qmf_trials.draw_trials(qmf_trials.read_training_csv(train_csv),
                               10000)


def test_generator_refuses_an_exclude_list_sharing_speakers(train_csv,
                                                            tmp_path):
    test_list = tmp_path / "veri_test.txt"
    test_list.write_text("1 id3/x/1.wav id3/y/2.wav\n"
                         "0 id3/x/1.wav id9/a/1.wav\n")
    out = tmp_path / "cal.txt"
    with pytest.raises(SystemExit) as err:
        qmf_trials.main([train_csv, str(out), "--n_trials", "10",
                         "--exclude", str(test_list), "--noprogressbar"])
    assert str(test_list) in str(err.value.code)
    assert "id3" in str(err.value.code)
    assert not out.exists()
    # An exclude list of other speakers passes.
    other = tmp_path / "other.txt"
    other.write_text("1 id8/x/1.wav id8/y/2.wav\n0 id8/x/1.wav id9/a/1.wav\n")
    assert qmf_trials.main([train_csv, str(out), "--n_trials", "10",
                            "--exclude", str(other), "--noprogressbar"]) == 0
    assert len(read_list(out)) == 10


def test_fit_qmf_refuses_a_list_sharing_speakers(tmp_path):
    from speechbrain_ext.fit_qmf import fit_qmf_folder

    cal = tmp_path / "cal.txt"
    cal.write_text("1 id1/a/1.wav id1/b/2.wav\n0 id1/a/1.wav id2/a/1.wav\n")
    test_list = tmp_path / "veri_test.txt"
    test_list.write_text("1 id2/x/1.wav id2/y/2.wav\n"
                         "0 id2/x/1.wav id7/y/2.wav\n")
    # Refused before anything is read: no model or audio needed.
    with pytest.raises(qmf.QMFError) as err:
        fit_qmf_folder(str(tmp_path / "no_model"), str(cal), str(tmp_path),
                       str(tmp_path / "cohort.txt"), exclude=[str(test_list)])
    assert str(cal) in str(err.value) and str(test_list) in str(err.value)
    assert "id2" in str(err.value)


# End to end: generator -> fit_qmf -> verification recipe. The generator
# draws from the CSV of two training speakers; the cohort is the CSV of
# the two others (the recipe's cohort too, so the embedding cache serves
# both).


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
    write_csv(root / "calibration_speakers.csv", rows[:6])
    write_csv(root / "cohort.csv", rows[6:])
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
