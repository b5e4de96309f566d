"""Quality-measure score calibration (QMF) of AS-norm scores.

A QMF maps, per trial, the AS-norm score and measures of how good the two
sides of the trial are to a natural-log likelihood ratio. It is a
:class:`~speechbrain_ext.scoring.calibration.LogisticCalibration` (one
logistic regression, fitted to minimise the Cllr of the fitting trials)
over the features :data:`QMF_FEATURES`:

* ``asnorm``: the AS-norm score;
* ``log_min_duration`` and ``log_max_duration``: natural log of the
  shorter and of the longer of the two durations in seconds, each capped at
  ``max_duration`` (:data:`MAX_DURATION`, 20 s). The durations are those of
  the audio *as used*: the enrolment side at full length, the test side
  after the condition's crop (``min(file duration, crop)``; a crop of a
  shorter file tiles it and adds no speech);
* ``min_cohort_mean`` and ``max_cohort_mean``: the smaller and the larger
  of the two sides' top-k cohort-score means (the AS-norm statistics of
  :class:`~speechbrain_ext.scoring.trial_scores.CohortNormaliser`).

Taking the minimum and maximum of each measure makes the features
symmetric: swapping enrolment and test gives the same features. The log
is used because the effect of duration on speaker scores saturates (one
more second matters at 1 s, not at 15 s); the cap keeps the few very long
files from spreading the fit. The embedding magnitude is not used: its
scale is set by the model's last layer, not by the audio.

The fitted model is stored as ``qmf.json`` in the pretrained folder
(:data:`QMF_FILE`). The cohort-mean features depend on the cohort (its
size, the crop of its embeddings) and on ``topk``, so the file records
them and :func:`check_qmf_setup` refuses a run that differs.

Authors
 * MR-RawNet recipe contributors
"""

import os

import numpy as np

from speechbrain_ext.scoring import trial_scores
from speechbrain_ext.scoring.calibration import (
    CalibrationError,
    LogisticCalibration,
)
from speechbrain_ext.scoring.views import FULL_LENGTH_MULTIPLE

__all__ = [
    "MAX_DURATION",
    "QMF_FEATURES",
    "QMF_FILE",
    "QMFError",
    "check_disjoint",
    "check_qmf_setup",
    "condition_features",
    "fit_qmf",
    "folder_qmf",
    "list_speakers",
    "quality_features",
    "used_durations",
]

#: Name of the QMF file in a pretrained folder.
QMF_FILE = "qmf.json"

#: Feature names, in column order (stored in the file, checked on load).
QMF_FEATURES = (
    "asnorm",
    "log_min_duration",
    "log_max_duration",
    "min_cohort_mean",
    "max_cohort_mean",
)

#: Durations are capped at this many seconds before the log.
MAX_DURATION = 20.0


class QMFError(ValueError):
    """QMF input, file or setup is wrong; the message says which and why.

    Arguments
    ---------
    message : str
        What is wrong.

    Example
    -------
    >>> str(QMFError("qmf.json: topk 300, the run uses 50"))
    'qmf.json: topk 300, the run uses 50'
    """


def quality_features(scores, enrol_seconds, test_seconds, enrol_means,
                     test_means, max_duration=MAX_DURATION):
    """The QMF feature matrix of trials (columns :data:`QMF_FEATURES`).

    Arguments
    ---------
    scores : array-like
        AS-norm score of each trial.
    enrol_seconds : array-like
        Duration in seconds of each trial's enrolment audio as used.
    test_seconds : array-like
        Duration in seconds of each trial's test audio as used.
    enrol_means : array-like
        Top-k cohort-score mean of each enrolment side.
    test_means : array-like
        Top-k cohort-score mean of each test side.
    max_duration : float
        Cap of the durations, in seconds.

    Returns
    -------
    numpy.ndarray
        ``[N, 5]`` float64 features; the same when the two sides are
        swapped.

    Example
    -------
    >>> f = quality_features([2.0], [30.0], [1.0], [0.3], [0.5])
    >>> f.round(3).tolist()
    [[2.0, 0.0, 2.996, 0.3, 0.5]]
    >>> bool((quality_features([2.0], [1.0], [30.0], [0.5], [0.3])
    ...       == f).all())
    True
    """
    columns = [np.asarray(x, dtype=np.float64).ravel() for x in (
        scores, enrol_seconds, test_seconds, enrol_means, test_means)]
    n = len(columns[0])
    if any(len(c) != n for c in columns):
        raise QMFError(
            "quality features need one score, two durations and two cohort "
            f"means per trial; got lengths {[len(c) for c in columns]}"
        )
    if not all(np.isfinite(c).all() for c in columns):
        raise QMFError("scores, durations or cohort means are not finite")
    if not max_duration > 0:
        raise QMFError(f"max_duration must be > 0, got {max_duration!r}")
    score, d_e, d_t, m_e, m_t = columns
    if n and min(d_e.min(), d_t.min()) <= 0:
        raise QMFError("durations must be > 0 seconds")
    d_e, d_t = np.minimum(d_e, max_duration), np.minimum(d_t, max_duration)
    return np.column_stack([
        score,
        np.log(np.minimum(d_e, d_t)),
        np.log(np.maximum(d_e, d_t)),
        np.minimum(m_e, m_t),
        np.maximum(m_e, m_t),
    ])


def _full_samples(n):
    """Samples of the full-length view (trimmed to a multiple of 640)."""
    n = np.asarray(n, dtype=np.int64)
    trimmed = n // FULL_LENGTH_MULTIPLE * FULL_LENGTH_MULTIPLE
    return np.where(trimmed > 0, trimmed, n)


def used_durations(loaded, crop_length, lengths, sample_rate=16000):
    """Seconds of audio each side of each trial is embedded from.

    The enrolment side is the full file (trimmed to a multiple of 640
    samples, as extracted); the test side is the full file, or
    ``min(file, crop_length)`` in a cropped condition.

    Arguments
    ---------
    loaded : LoadedList
        The trial list.
    crop_length : int or None
        Test-side crop of the condition, in samples.
    lengths : Mapping
        ``path -> length in samples at sample_rate``
        (:func:`~speechbrain_ext.scoring.verify.audio_lengths`).
    sample_rate : int
        Rate of ``lengths`` and ``crop_length``.

    Returns
    -------
    enrol : numpy.ndarray
        Enrolment seconds per trial.
    test : numpy.ndarray
        Test seconds per trial.

    Example
    -------
    >>> from speechbrain_ext.scoring.trial_lists import LoadedList, TrialSpec
    >>> from speechbrain_ext.scoring.trials import parse_trials
    >>> t = parse_trials(["1 a b", "0 a c"])
    >>> ll = LoadedList(TrialSpec("t", "t", "/"), t,
    ...                 ["a", "a"], ["b", "c"])
    >>> lengths = {"a": 48000, "b": 8000, "c": 64000}
    >>> [x.tolist() for x in used_durations(ll, 16640, lengths)]
    [[3.0, 3.0], [0.5, 1.04]]
    """
    enrol = _full_samples([lengths[p] for p in loaded.enrol])
    test = np.asarray([lengths[p] for p in loaded.test], dtype=np.int64)
    test = _full_samples(test) if crop_length is None else np.minimum(
        test, int(crop_length))
    return enrol / float(sample_rate), test / float(sample_rate)


def condition_features(loaded, crop_length, embeddings, lengths, normaliser,
                       sample_rate=16000, max_duration=MAX_DURATION):
    """AS-norm scores and QMF features of one list in one condition.

    Arguments
    ---------
    loaded : LoadedList
        The trial list.
    crop_length : int or None
        Test-side crop of the condition, in samples.
    embeddings : Mapping
        ``(path, view name) -> embedding``, every view the list needs.
    lengths : Mapping
        ``path -> length in samples``.
    normaliser : CohortNormaliser
        The AS-norm cohort.
    sample_rate : int
        Rate of ``lengths``.
    max_duration : float
        Duration cap in seconds.

    Returns
    -------
    scores : numpy.ndarray
        ``[N]`` AS-norm scores.
    features : numpy.ndarray
        ``[N, 5]`` QMF features.

    Example
    -------
    >>> from speechbrain_ext.scoring.trial_lists import LoadedList, TrialSpec
    >>> from speechbrain_ext.scoring.trials import parse_trials
    >>> t = parse_trials(["1 a b", "0 a c"])
    >>> ll = LoadedList(TrialSpec("t", "t", "/"), t,
    ...                 ["a", "a"], ["b", "c"])
    >>> emb = {("a", "full"): [1.0, 0.1], ("b", "full"): [0.9, 0.2],
    ...        ("c", "full"): [-0.2, 1.0]}
    >>> norm = trial_scores.CohortNormaliser([[1, 0], [0, 1], [1, 1]], topk=2)
    >>> lengths = {"a": 32000, "b": 16000, "c": 16000}
    >>> s, f = condition_features(ll, None, emb, lengths, norm)
    >>> f.shape, bool(s[0] > s[1]), f[0, 1:3].round(3).tolist()
    ((2, 5), True, [0.0, 0.693])
    """
    enrol, test = trial_scores.trial_keys(loaded, crop_length)
    raw = trial_scores.cosine_trial_scores(enrol, test, embeddings)
    scores = normaliser(raw, enrol, test, embeddings)
    d_e, d_t = used_durations(loaded, crop_length, lengths, sample_rate)
    features = quality_features(
        scores, d_e, d_t, normaliser.cohort_means(enrol, embeddings),
        normaliser.cohort_means(test, embeddings), max_duration,
    )
    return scores, features


def list_speakers(path):
    """Speakers of a ``label enrol test`` list: first component of paths.

    Arguments
    ---------
    path : str
        A VoxCeleb-style trial list.

    Returns
    -------
    set of str
        The speaker IDs.

    Example
    -------
    >>> p = os.path.join(str(getfixture("tmp_path")), "t.txt")
    >>> _ = open(p, "w").write("1 id1/s/1.wav id1/t/2.wav\\n")
    >>> sorted(list_speakers(p))
    ['id1']
    """
    from speechbrain_ext.data.trial_csv import trial_speakers

    return trial_speakers([os.fspath(path)])


def check_disjoint(speakers, source, exclude):
    """Refuses speakers that also appear in any of the ``exclude`` lists.

    Arguments
    ---------
    speakers : set of str
        Speakers about to be used.
    source : str
        What they come from (named in the error).
    exclude : sequence of str
        Trial lists (``label enrol test``) that must share no speaker.

    Returns
    -------
    None

    Raises
    ------
    QMFError
        Naming the list, the number of shared speakers and the first ones.

    Example
    -------
    >>> p = os.path.join(str(getfixture("tmp_path")), "test.txt")
    >>> _ = open(p, "w").write("1 id9/s/1.wav id9/t/2.wav\\n")
    >>> check_disjoint({"id1"}, "train.csv", [p])
    >>> check_disjoint({"id1", "id9"}, "train.csv", [p])
    Traceback (most recent call last):
    ...
    speechbrain_ext.scoring.qmf.QMFError: train.csv shares 1 speaker(s) ...
    """
    for path in exclude or ():
        shared = sorted(set(speakers) & list_speakers(path))
        if shared:
            shown = ", ".join(shared[:5]) + (" ..." if len(shared) > 5 else "")
            raise QMFError(
                f"{source} shares {len(shared)} speaker(s) with the excluded "
                f"trial list {path}: {shown}; a calibration list must come "
                "from other (training) speakers"
            )


def fit_qmf(features, labels, info=None):
    """Fits the QMF and records fitting-trial figures before and after.

    "Before" is the AS-norm score alone through a one-feature logistic
    calibration fitted on the same trials; "after" is the QMF.

    Arguments
    ---------
    features : array-like
        ``[N, 5]`` QMF features (:func:`quality_features`), pooled over
        conditions.
    labels : array-like
        1 target, 0 non-target.
    info : dict or None
        Provenance stored with the model.

    Returns
    -------
    LogisticCalibration
        Over :data:`QMF_FEATURES`, with ``info`` holding
        ``dev_cllr_score_only``, ``dev_min_cllr_score_only``,
        ``dev_eer_score_only`` (AS-norm alone) and ``dev_cllr``,
        ``dev_min_cllr``, ``dev_eer`` (QMF).

    Raises
    ------
    QMFError
        Bad shapes, one class only, or a constant feature.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> y = np.r_[np.ones(300), np.zeros(300)]
    >>> f = np.column_stack([rng.normal(2 * y, 1), rng.normal(0, 1, 600),
    ...                      rng.normal(0, 1, 600), rng.normal(0, 1, 600),
    ...                      rng.normal(0, 1, 600)])
    >>> qmf = fit_qmf(f, y)
    >>> qmf.features == list(QMF_FEATURES), qmf.info["dev_cllr"] < 1
    (True, True)
    """
    from speechbrain_ext.scoring.calibration_metrics import cllr, min_cllr
    from speechbrain_ext.scoring.speechbrain_metrics import compute_eer

    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if x.ndim != 2 or x.shape[1] != len(QMF_FEATURES):
        raise QMFError(
            f"QMF features must be [trials, {len(QMF_FEATURES)}], got shape "
            f"{list(x.shape)}"
        )
    try:
        alone = LogisticCalibration.fit(x[:, 0], y, [QMF_FEATURES[0]])
        qmf = LogisticCalibration.fit(x, y, QMF_FEATURES, info=info)
    except CalibrationError as err:
        raise QMFError(f"cannot fit the QMF: {err}") from err
    y = y.astype(bool)

    def figures(llr):
        return (cllr(y, llr), min_cllr(y, llr),
                compute_eer(llr[y], llr[~y])[0])

    before, after = figures(alone.llr(x[:, 0])), figures(qmf.llr(x))
    for suffix, (c, mc, eer) in (("_score_only", before), ("", after)):
        qmf.info[f"dev_cllr{suffix}"] = c
        qmf.info[f"dev_min_cllr{suffix}"] = mc
        qmf.info[f"dev_eer{suffix}"] = eer
    return qmf


def folder_qmf(folder):
    """The QMF stored in a pretrained folder, or None.

    Arguments
    ---------
    folder : str
        A pretrained folder.

    Returns
    -------
    LogisticCalibration or None
        The model of ``<folder>/qmf.json``; None when there is none.

    Raises
    ------
    QMFError
        The file is unreadable or was fitted on other features.

    Example
    -------
    >>> folder = str(getfixture("tmp_path"))
    >>> folder_qmf(folder) is None
    True
    >>> _ = LogisticCalibration([1.0], 0.0, ["cosine"]).save(
    ...     os.path.join(folder, QMF_FILE))
    >>> folder_qmf(folder)
    Traceback (most recent call last):
    ...
    speechbrain_ext.scoring.qmf.QMFError: .../qmf.json was fitted on ...
    """
    path = os.path.join(os.fspath(folder), QMF_FILE)
    if not os.path.isfile(path):
        return None
    try:
        qmf = LogisticCalibration.load(path)
    except CalibrationError as err:
        raise QMFError(str(err)) from err
    if qmf.features != list(QMF_FEATURES):
        raise QMFError(
            f"{path} was fitted on the features {qmf.features}, this code "
            f"computes {list(QMF_FEATURES)}: fit it again (python -m "
            "speechbrain_ext.fit_qmf)"
        )
    return qmf


def check_qmf_setup(qmf, source, topk, cohort_size, cohort_crop_seconds,
                    model_state_sha256=None):
    """Refuses to apply a QMF whose features would mean something else.

    The cohort means depend on ``topk``, on the cohort size and on the crop
    of the cohort embeddings; all must be those the QMF was fitted with,
    and so must the model when its digest is given.

    Arguments
    ---------
    qmf : LogisticCalibration
        From :func:`folder_qmf`.
    source : str
        The QMF file (named in the error).
    topk : int
        The run's ``cohort_topk``.
    cohort_size : int
        Utterances in the run's cohort.
    cohort_crop_seconds : float or None
        The run's ``cohort_crop_seconds``.
    model_state_sha256 : str or None
        Digest of the model's tensors
        (:func:`~speechbrain_ext.pretrained.state_digest`); None skips.

    Returns
    -------
    None

    Raises
    ------
    QMFError
        Listing every mismatch with the hyperparameter to change.

    Example
    -------
    >>> q = LogisticCalibration([1.0] * 5, 0.0, QMF_FEATURES, info={
    ...     "topk": 300, "cohort_size": 2000, "cohort_crop_seconds": 3.0})
    >>> check_qmf_setup(q, "qmf.json", 300, 2000, 3.0)
    >>> check_qmf_setup(q, "qmf.json", 50, 2000, 3.0)
    Traceback (most recent call last):
    ...
    speechbrain_ext.scoring.qmf.QMFError: qmf.json was fitted ... topk 300 ...
    """
    info = qmf.info

    def crop(x):
        return None if x in (None, 0) else round(float(x), 6)

    wrong = []
    if info.get("topk") != int(topk):
        wrong.append(f"topk {info.get('topk')} (cohort_topk is {topk})")
    if info.get("cohort_size") != int(cohort_size):
        wrong.append(
            f"a cohort of {info.get('cohort_size')} utterances (this run's "
            f"cohort has {cohort_size}; see cohort_file, cohort_size)"
        )
    if crop(info.get("cohort_crop_seconds")) != crop(cohort_crop_seconds):
        wrong.append(
            f"cohort_crop_seconds {info.get('cohort_crop_seconds')} (this "
            f"run: {cohort_crop_seconds})"
        )
    fitted_model = info.get("model_state_sha256")
    if model_state_sha256 and fitted_model and (
        fitted_model != model_state_sha256
    ):
        wrong.append("another model (the checkpoint's tensors differ)")
    if wrong:
        raise QMFError(
            f"{source} was fitted with {'; '.join(wrong)}: its cohort-mean "
            "features would mean something else. Run with the settings it "
            "was fitted with, fit it again (python -m "
            "speechbrain_ext.fit_qmf), or set use_qmf: False"
        )

