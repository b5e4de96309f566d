"""Logistic-regression calibration of verification scores to LLRs.

A calibration maps a feature vector per trial (the cosine score, and later
any quality measure) to a log-likelihood ratio
``llr = features @ weights + bias``, natural log. It is fitted on labelled
development trials by minimising the prior-weighted cross-entropy

    C(w, b) = p / N_t * sum_targets log(1 + exp(-(llr + logit p)))
            + (1 - p) / N_n * sum_non-targets log(1 + exp(llr + logit p))

with ``p`` the fitting prior (0.5 by default, which makes ``C / log 2`` the
Cllr of the development trials). The target and non-target sets are
weighted by their own counts, so the result does not depend on how many
trials of each kind the list has. Newton's method with a backtracking line
search solves it in float64 in a few iterations; a tiny ridge penalty keeps
the solution finite when the development trials are separable.

An LLR ``l`` is then a decision at any prior: with costs ``C_miss`` and
``C_fa``, accepting when ``l > log(C_fa (1 - P_target) / (C_miss
P_target))`` (:func:`bayes_threshold`) minimises the expected cost, e.g.
``log 99 = 4.595`` for P_target 0.01.

Calibrations are stored as small JSON files (:meth:`LogisticCalibration.save`)
that name their features, so a file fitted on other features is refused.

Authors
 * MR-RawNet recipe contributors
"""

import json
import math
import os

import numpy as np

from speechbrain_ext.atomic_files import atomic_write_text

__all__ = [
    "CALIBRATION_FILE",
    "CALIBRATION_FORMAT",
    "CalibrationError",
    "LogisticCalibration",
    "bayes_threshold",
    "folder_calibration",
]

#: Name of the calibration file in a pretrained folder.
CALIBRATION_FILE = "calibration.json"

#: ``format`` field of calibration files.
CALIBRATION_FORMAT = "mr-rawnet-logistic-calibration"
#: Version of the calibration file layout.
CALIBRATION_VERSION = 1


class CalibrationError(ValueError):
    """A calibration cannot be fitted, read or applied; the message says why.

    Arguments
    ---------
    message : str
        What is wrong.

    Example
    -------
    >>> str(CalibrationError("no target trials"))
    'no target trials'
    """


def bayes_threshold(p_target=0.01, c_miss=1.0, c_fa=1.0):
    """The LLR threshold of minimum expected cost at a prior.

    Arguments
    ---------
    p_target : float
        Prior probability of a target trial, in (0, 1).
    c_miss : float
        Cost of a miss.
    c_fa : float
        Cost of a false alarm.

    Returns
    -------
    float
        ``log(c_fa * (1 - p_target) / (c_miss * p_target))``: accept a trial
        when its LLR is above it.

    Example
    -------
    >>> round(bayes_threshold(0.01), 4), bayes_threshold(0.5)
    (4.5951, 0.0)
    """
    if not 0.0 < float(p_target) < 1.0:
        raise ValueError(f"p_target must be in (0, 1), got {p_target!r}")
    if not (c_miss > 0 and c_fa > 0):
        raise ValueError("c_miss and c_fa must be > 0")
    return math.log(c_fa * (1.0 - p_target) / (c_miss * p_target))


def _as_features(features, n_features=None):
    """Features as a finite ``[N, F]`` float64 matrix (a vector is F = 1)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise CalibrationError(
            f"features must be [trials] or [trials, features], got shape "
            f"{list(x.shape)}"
        )
    if n_features is not None and x.shape[1] != n_features:
        raise CalibrationError(
            f"the calibration takes {n_features} feature(s) per trial, got "
            f"{x.shape[1]}"
        )
    if not np.isfinite(x).all():
        raise CalibrationError("features hold NaN or Inf values")
    return x


def _objective(z, y, weight, offset):
    """Weighted cross-entropy, its gradient factor and curvature in ``z``."""
    # Target rows: log(1 + exp(-(z + offset))); others: log(1 + exp(z + o)).
    sign = np.where(y, -1.0, 1.0)
    margin = sign * (z + offset)
    loss = float(np.sum(weight * np.logaddexp(0.0, margin)))
    sig = 0.5 * (1.0 + np.tanh(0.5 * margin))  # sigmoid, overflow-free
    grad = weight * sign * sig
    curv = weight * sig * (1.0 - sig)
    return loss, grad, curv


class LogisticCalibration:
    """Affine map of trial features to natural-log LLRs.

    Arguments
    ---------
    weights : sequence of float
        One weight per feature.
    bias : float
        Offset.
    features : sequence of str
        Feature names, in column order (default ``["cosine"]``).
    fit_prior : float
        Prior the parameters were fitted at.
    info : dict or None
        Provenance stored with the parameters (trial list, counts, metrics).

    Example
    -------
    >>> cal = LogisticCalibration([10.0], -5.0)
    >>> cal.llr([0.5, 0.7]).round(3).tolist()
    [0.0, 2.0]
    """

    def __init__(self, weights, bias, features=("cosine",), fit_prior=0.5,
                 info=None):
        self.weights = np.asarray(weights, dtype=np.float64).ravel()
        self.bias = float(bias)
        self.features = [str(f) for f in features]
        if len(self.features) != len(self.weights):
            raise CalibrationError(
                f"{len(self.weights)} weights for {len(self.features)} "
                f"features ({self.features})"
            )
        if not (np.isfinite(self.weights).all() and math.isfinite(self.bias)):
            raise CalibrationError("calibration parameters are not finite")
        self.fit_prior = float(fit_prior)
        self.info = dict(info or {})

    @classmethod
    def fit(cls, features, labels, names=("cosine",), prior=0.5, ridge=1e-6,
            max_iter=100, tol=1e-10, info=None):
        """Fits the calibration on labelled development trials.

        Arguments
        ---------
        features : array-like
            ``[N]`` scores or an ``[N, F]`` feature matrix.
        labels : array-like
            1 for target trials, 0 for non-targets.
        names : sequence of str
            Feature names (``F`` of them).
        prior : float
            Fitting prior ``p`` in (0, 1).
        ridge : float
            Ridge penalty on the weights of the standardised features.
        max_iter : int
            Most Newton iterations.
        tol : float
            Stop when the Newton decrement falls below it.
        info : dict or None
            Provenance stored with the parameters.

        Returns
        -------
        LogisticCalibration
            The fitted calibration.

        Raises
        ------
        CalibrationError
            Bad shapes, non-finite values, a class with no trials, or a
            constant feature.

        Example
        -------
        >>> rng = np.random.default_rng(0)
        >>> scores = np.r_[rng.normal(2, 1, 4000), rng.normal(0, 1, 4000)]
        >>> labels = np.r_[np.ones(4000), np.zeros(4000)]
        >>> cal = LogisticCalibration.fit(scores, labels)
        >>> [round(float(cal.weights[0]), 1), round(cal.bias, 1)]  # true: 2, -2
        [2.0, -2.0]
        """
        x = _as_features(features)
        y = np.asarray(labels).ravel()
        if y.shape[0] != x.shape[0]:
            raise CalibrationError(
                f"{x.shape[0]} trials of features but {y.shape[0]} labels"
            )
        if not np.isin(y, (0, 1)).all():
            raise CalibrationError("labels must be 0 or 1")
        y = y.astype(bool)
        n_t, n_n = int(y.sum()), int((~y).sum())
        if n_t == 0 or n_n == 0:
            raise CalibrationError(
                f"calibration needs target and non-target trials, got "
                f"{n_t} target and {n_n} non-target"
            )
        if not 0.0 < float(prior) < 1.0:
            raise CalibrationError(f"prior must be in (0, 1), got {prior!r}")
        names = [str(n) for n in names]
        if len(names) != x.shape[1]:
            raise CalibrationError(
                f"{len(names)} feature names for {x.shape[1]} feature columns"
            )
        mean, std = x.mean(axis=0), x.std(axis=0)
        if (std <= 0).any():
            flat = [names[i] for i in np.flatnonzero(std <= 0)]
            raise CalibrationError(f"constant feature(s): {flat}")
        z = np.hstack([(x - mean) / std, np.ones((x.shape[0], 1))])
        weight = np.where(y, prior / n_t, (1.0 - prior) / n_n)
        offset = math.log(prior / (1.0 - prior))
        penalty = np.full(z.shape[1], float(ridge))
        penalty[-1] = 0.0  # the bias is not penalised
        theta = np.zeros(z.shape[1])

        def total(t):
            loss, grad, curv = _objective(z @ t, y, weight, offset)
            return loss + 0.5 * float(penalty @ t**2), grad, curv

        loss, grad, curv = total(theta)
        for _ in range(int(max_iter)):
            g = z.T @ grad + penalty * theta
            h = (z * curv[:, None]).T @ z + np.diag(penalty)
            step = np.linalg.solve(h + 1e-12 * np.eye(len(theta)), g)
            decrement = float(g @ step)
            if decrement < tol:
                break
            rate = 1.0
            while rate > 1e-10:
                candidate = theta - rate * step
                new = total(candidate)
                if new[0] <= loss - 0.25 * rate * decrement:
                    break
                rate *= 0.5
            theta, (loss, grad, curv) = candidate, new
        weights = theta[:-1] / std
        bias = float(theta[-1] - weights @ mean)
        info = dict(info or {})
        info.setdefault("n_trials", n_t + n_n)
        info.setdefault("n_target", n_t)
        info.setdefault("n_nontarget", n_n)
        return cls(weights, bias, names, prior, info)

    def llr(self, features):
        """Calibrated log-likelihood ratios.

        Arguments
        ---------
        features : array-like
            ``[N]`` scores (one-feature calibrations) or ``[N, F]``.

        Returns
        -------
        numpy.ndarray
            ``[N]`` float64 LLRs (natural log).
        """
        x = _as_features(features, len(self.weights))
        return x @ self.weights + self.bias

    def threshold(self, p_target=0.01, c_miss=1.0, c_fa=1.0):
        """LLR threshold of the Bayes decision (see :func:`bayes_threshold`).

        Arguments
        ---------
        p_target : float
            Prior of a target trial.
        c_miss : float
            Cost of a miss.
        c_fa : float
            Cost of a false alarm.

        Returns
        -------
        float
            Accept when the LLR is above it.
        """
        return bayes_threshold(p_target, c_miss, c_fa)

    def score_threshold(self, p_target=0.01):
        """The raw score at which a one-feature calibration decides.

        Arguments
        ---------
        p_target : float
            Prior of a target trial.

        Returns
        -------
        float
            The score whose LLR equals the Bayes threshold.

        Example
        -------
        >>> LogisticCalibration([10.0], -5.0).score_threshold(0.5)
        0.5
        """
        if len(self.weights) != 1 or self.weights[0] <= 0:
            raise CalibrationError(
                "a score threshold exists only for one feature with a "
                "positive weight"
            )
        return float(
            (self.threshold(p_target) - self.bias) / self.weights[0]
        )

    def to_dict(self):
        """The JSON-serialisable description.

        Returns
        -------
        dict
            ``format``, ``version``, ``features``, ``weights``, ``bias``,
            ``fit_prior`` and ``info``.
        """
        return {
            "format": CALIBRATION_FORMAT,
            "version": CALIBRATION_VERSION,
            "kind": "logistic-regression",
            "llr": "natural log; llr = features . weights + bias",
            "features": list(self.features),
            "weights": [float(w) for w in self.weights],
            "bias": self.bias,
            "fit_prior": self.fit_prior,
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, data, source="calibration"):
        """Rebuilds a calibration from :meth:`to_dict` output.

        Arguments
        ---------
        data : dict
            The description.
        source : str
            Where it came from, for error messages.

        Returns
        -------
        LogisticCalibration
            The calibration.
        """
        if not isinstance(data, dict) or data.get("format") != (
            CALIBRATION_FORMAT
        ):
            raise CalibrationError(
                f"{source} is not a calibration file (format "
                f"{CALIBRATION_FORMAT!r} expected)"
            )
        if data.get("version") != CALIBRATION_VERSION:
            raise CalibrationError(
                f"{source}: calibration version {data.get('version')!r} is "
                f"not supported (expected {CALIBRATION_VERSION})"
            )
        try:
            return cls(
                data["weights"], data["bias"], data["features"],
                data.get("fit_prior", 0.5), data.get("info"),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CalibrationError(
                f"{source}: bad calibration ({err})"
            ) from err

    def save(self, path):
        """Writes the calibration as JSON (atomically).

        Arguments
        ---------
        path : str
            Output file.

        Returns
        -------
        str
            ``path``.

        Example
        -------
        >>> path = os.path.join(str(getfixture("tmp_path")), "calibration.json")
        >>> _ = LogisticCalibration([3.0], -1.0).save(path)
        >>> LogisticCalibration.load(path).bias
        -1.0
        """
        text = json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n"
        return atomic_write_text(path, text)

    @classmethod
    def load(cls, path):
        """Reads a calibration written by :meth:`save`.

        Arguments
        ---------
        path : str
            The JSON file.

        Returns
        -------
        LogisticCalibration
            The calibration.
        """
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as err:
            raise CalibrationError(f"{path}: not valid JSON ({err})") from err
        return cls.from_dict(data, source=str(path))


def folder_calibration(folder):
    """The calibration stored in a pretrained folder, or None.

    Arguments
    ---------
    folder : str
        A pretrained folder.

    Returns
    -------
    LogisticCalibration or None
        The calibration of ``<folder>/calibration.json``; None when the
        folder has none.

    Raises
    ------
    CalibrationError
        If the file exists but is not a valid calibration.

    Example
    -------
    >>> folder = str(getfixture("tmp_path"))
    >>> folder_calibration(folder) is None
    True
    >>> _ = LogisticCalibration([3.0], -1.0).save(
    ...     os.path.join(folder, CALIBRATION_FILE))
    >>> folder_calibration(folder).weights.tolist()
    [3.0]
    """
    path = os.path.join(os.fspath(folder), CALIBRATION_FILE)
    if not os.path.isfile(path):
        return None
    return LogisticCalibration.load(path)
