"""Logistic calibration and the calibration metrics on known distributions.

For Gaussian class-conditional scores with a shared variance the true LLR
is affine in the score, with known parameters; the logistic regression must
recover them, for one score and for a feature matrix.
"""

import json
import math

import numpy as np
import pytest
from scipy.stats import norm as gauss

from speechbrain_ext.scoring.calibration import (
    CalibrationError,
    LogisticCalibration,
    bayes_threshold,
)
from speechbrain_ext.scoring.calibration_metrics import (
    actual_dcf,
    cllr,
    min_cllr,
    pav,
)
from speechbrain_ext.scoring.speechbrain_metrics import compute_min_dcf


def gaussian_scores(n_t, n_n, mu_t, mu_n, sigma, seed=0):
    rng = np.random.default_rng(seed)
    scores = np.r_[rng.normal(mu_t, sigma, n_t), rng.normal(mu_n, sigma, n_n)]
    labels = np.r_[np.ones(n_t, int), np.zeros(n_n, int)]
    return scores, labels


def true_params(mu_t, mu_n, sigma):
    weight = (mu_t - mu_n) / sigma**2
    bias = (mu_n**2 - mu_t**2) / (2 * sigma**2)
    return weight, bias


@pytest.mark.parametrize("n_t,n_n", [(60000, 60000), (20000, 180000)])
def test_recovers_known_parameters_of_gaussian_scores(n_t, n_n):
    # Cosine-like scales: targets around 0.55, non-targets around 0.05.
    mu_t, mu_n, sigma = 0.55, 0.05, 0.12
    scores, labels = gaussian_scores(n_t, n_n, mu_t, mu_n, sigma, seed=n_n)
    cal = LogisticCalibration.fit(scores, labels)
    weight, bias = true_params(mu_t, mu_n, sigma)
    assert cal.weights[0] == pytest.approx(weight, rel=0.03)
    assert cal.bias == pytest.approx(bias, rel=0.03)
    # The Bayes threshold in score units is where the true LLR crosses it.
    true_cut = (bayes_threshold(0.01) - bias) / weight
    assert cal.score_threshold(0.01) == pytest.approx(true_cut, abs=0.01)
    assert cal.info["n_target"] == n_t and cal.info["n_nontarget"] == n_n


def test_recovers_a_two_feature_linear_llr():
    rng = np.random.default_rng(4)
    cov = np.array([[1.0, 0.3], [0.3, 0.5]])
    mu_t, mu_n = np.array([1.5, 0.2]), np.array([0.0, -0.4])
    n = 80000
    x = np.vstack([
        rng.multivariate_normal(mu_t, cov, n),
        rng.multivariate_normal(mu_n, cov, n),
    ])
    y = np.r_[np.ones(n), np.zeros(n)]
    cal = LogisticCalibration.fit(x, y, names=["cosine", "quality"])
    inv = np.linalg.inv(cov)
    weights = inv @ (mu_t - mu_n)
    bias = -0.5 * (mu_t @ inv @ mu_t - mu_n @ inv @ mu_n)
    np.testing.assert_allclose(cal.weights, weights, rtol=0.03)
    assert cal.bias == pytest.approx(bias, abs=0.03)
    assert cal.llr(x[:3]).shape == (3,)
    with pytest.raises(CalibrationError, match="2 feature"):
        cal.llr(x[:, 0])


def test_class_weighting_ignores_the_trial_mix():
    scores, labels = gaussian_scores(3000, 3000, 1.0, 0.0, 1.0, seed=2)
    base = LogisticCalibration.fit(scores, labels)
    many = np.r_[np.tile(scores[labels == 1], 5), scores[labels == 0]]
    many_y = np.r_[np.ones(15000), np.zeros(3000)]
    again = LogisticCalibration.fit(many, many_y)
    assert again.weights[0] == pytest.approx(base.weights[0], rel=1e-6)
    assert again.bias == pytest.approx(base.bias, rel=1e-6)


def test_separable_trials_give_finite_parameters():
    cal = LogisticCalibration.fit([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0])
    assert np.isfinite(cal.weights).all() and math.isfinite(cal.bias)
    assert cal.weights[0] > 0


def test_bad_input_is_refused():
    with pytest.raises(CalibrationError, match="target and non-target"):
        LogisticCalibration.fit([0.1, 0.2], [1, 1])
    with pytest.raises(CalibrationError, match="constant"):
        LogisticCalibration.fit([0.5, 0.5], [1, 0])
    with pytest.raises(CalibrationError, match="NaN"):
        LogisticCalibration.fit([0.5, float("nan")], [1, 0])
    with pytest.raises(CalibrationError, match="3 trials"):
        LogisticCalibration.fit([0.1, 0.2, 0.3], [1, 0])


def test_save_load_round_trip_and_refusals(tmp_path):
    cal = LogisticCalibration([7.5], -3.25, info={"trial_list": "dev.txt"})
    path = tmp_path / "calibration.json"
    cal.save(str(path))
    back = LogisticCalibration.load(str(path))
    assert back.weights.tolist() == [7.5] and back.bias == -3.25
    assert back.info["trial_list"] == "dev.txt"
    data = json.loads(path.read_text())
    data["format"] = "something-else"
    path.write_text(json.dumps(data))
    with pytest.raises(CalibrationError, match="not a calibration file"):
        LogisticCalibration.load(str(path))
    path.write_text("{broken")
    with pytest.raises(CalibrationError, match="not valid JSON"):
        LogisticCalibration.load(str(path))


def test_cllr_of_true_llrs_and_min_cllr():
    mu_t, mu_n, sigma = 2.0, 0.0, 1.0
    scores, labels = gaussian_scores(50000, 50000, mu_t, mu_n, sigma, seed=9)
    weight, bias = true_params(mu_t, mu_n, sigma)
    true_llr = weight * scores + bias
    c_true = cllr(labels, true_llr)
    # Miscalibrated versions cost more; min-Cllr is below all of them and
    # is the same for any increasing map of the scores.
    assert cllr(labels, 3 * true_llr) > c_true + 0.05
    assert cllr(labels, true_llr + 2) > c_true + 0.05
    assert cllr(labels, scores) > c_true
    m = min_cllr(labels, scores)
    assert m <= c_true
    assert m == pytest.approx(min_cllr(labels, np.exp(scores)), abs=1e-12)
    assert c_true - m < 0.01
    # A calibrated cosine is close to the optimum on its own trials.
    cal = LogisticCalibration.fit(scores, labels)
    assert cllr(labels, cal.llr(scores)) - m < 0.01


def test_pav_is_the_best_monotonic_fit():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 40)
    scores = np.round(rng.normal(size=40), 1)  # with ties
    fit = pav(labels, scores)
    order = np.argsort(scores, kind="stable")
    assert np.all(np.diff(fit[order]) >= -1e-12)
    # Equal scores get equal values; block means are target fractions.
    for s in np.unique(scores):
        assert np.ptp(fit[scores == s]) == 0
    assert fit.sum() == pytest.approx(labels.sum())
    squared = np.sum((fit - labels) ** 2)
    for _ in range(200):  # random monotonic alternatives are never better
        alt = np.sort(rng.uniform(size=40))
        other = np.empty(40)
        other[order] = alt
        for s in np.unique(scores):
            other[scores == s] = other[scores == s].mean()
        assert np.sum((other - labels) ** 2) >= squared - 1e-12


def test_bayes_decision_rates_on_gaussian_llrs():
    mu_t, mu_n, sigma = 3.0, 0.0, 1.0
    scores, labels = gaussian_scores(100000, 100000, mu_t, mu_n, sigma, 5)
    weight, bias = true_params(mu_t, mu_n, sigma)
    out = actual_dcf(labels, weight * scores + bias, 0.01)
    cut = (bayes_threshold(0.01) - bias) / weight
    assert out["p_fa"] == pytest.approx(gauss.sf(cut, mu_n, sigma), abs=2e-3)
    assert out["p_miss"] == pytest.approx(gauss.cdf(cut, mu_t, sigma),
                                          abs=5e-3)
    # With true LLRs the Bayes decision is the minimum-cost one.
    best, _ = compute_min_dcf(scores[labels == 1], scores[labels == 0], 0.01)
    assert out["act_dcf"] == pytest.approx(best, abs=0.02)
