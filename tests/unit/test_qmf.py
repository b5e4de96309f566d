"""QMF: features, fit on synthetic trials, the calibration-list generator
and the fitting command's refusals (the recipe's QMF rows:
``tests/integration/test_qmf_recipe.py``)."""


import numpy as np
import pytest

from speechbrain_ext.data.csv_files import write_csv
from speechbrain_ext.data.voxceleb_train import TRAIN_FIELDS
from speechbrain_ext.scoring import qmf, qmf_trials
from speechbrain_ext.scoring.calibration import LogisticCalibration
from speechbrain_ext.scoring.calibration_metrics import cllr
from speechbrain_ext.scoring.speechbrain_metrics import compute_eer


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


@pytest.fixture
def train_csv(tmp_path):
    rows = [
        (f"{s}--s{k % 2}--{k}", "1.5", f"/data/wav/{s}/s{k % 2}/{k}.wav", s)
        for s in ("id1", "id2", "id3", "id4") for k in range(6)
    ]
    write_csv(tmp_path / "train.csv", TRAIN_FIELDS, rows)
    return str(tmp_path / "train.csv")


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
