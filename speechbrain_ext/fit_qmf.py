"""Fit a QMF (quality-measure calibration) and store it in a folder.

Usage::

    python -m speechbrain_ext.fit_qmf <pretrained folder> <calibration list> \\
        --audio_folder <root of the list's paths> \\
        --cohort_file <training CSV or list> \\
        [--conditions full 1.04s 2.04s 5.04s] [--topk 300] \\
        [--cohort_size 20000] [--cohort_crop_seconds 3.0] \\
        [--cohort_seed 1986] [--exclude <test list> ...] \\
        [--cache_folder DIR] [--device cpu]

The calibration list (``label enrol test``, e.g. drawn from the training
CSV by ``python -m speechbrain_ext.scoring.qmf_trials``) must come from
training speakers: the command refuses a list that shares speakers
(first path component) with any ``--exclude`` trial list. Every file is
embedded (progress bar; ``--cache_folder`` resumes, and shares embeddings
with a verification run of the same model and conditions), the trials are
scored by AS-norm in every condition (full-length enrolment, test side
full or cropped), and the QMF of :mod:`speechbrain_ext.scoring.qmf` is
fitted on the trials of all conditions pooled. It is written to
``<pretrained folder>/qmf.json`` with the list (path, SHA-256, size,
speakers), the conditions, the cohort settings and the fitting-trial
Cllr / min-Cllr / EER of the AS-norm score alone and of the QMF.

The cohort settings (``--cohort_file``, ``--cohort_size``,
``--cohort_seed``, ``--topk``, ``--cohort_crop_seconds``) must be those
of the verification runs that apply it (``cohort_file``, ``cohort_size``,
``seed``, ``cohort_topk``, ``cohort_crop_seconds``; defaults here are
those of ``hparams/verification_mr_rawnet.yaml``); the recipe refuses a
QMF fitted with another top-k, cohort size or crop. As test speakers are
never in a run's cohort, the calibration speakers' files are left out of
the cohort file before the ``--cohort_size`` files are drawn
(:func:`calibration_cohort`).

Authors
 * MR-RawNet recipe contributors
"""

import argparse
import logging
import os
import sys
import tempfile
import time

import numpy as np

from speechbrain_ext.pretrained import sha256_of, state_digest
from speechbrain_ext.scoring import (
    embedding_cache,
    extract,
    model_loading,
    qmf,
    trial_lists,
    trial_scores,
    verify,
)
from speechbrain_ext.scoring.calibration_metrics import cllr, min_cllr
from speechbrain_ext.scoring.speechbrain_metrics import compute_eer
from speechbrain_ext.scoring.views import condition_views, view_name

__all__ = ["calibration_cohort", "fit_qmf_folder", "main"]

logger = logging.getLogger(__name__)

#: Sample rate of the model input.
SAMPLE_RATE = 16000


def _speaker_of(path, audio_folder):
    """Speaker of a cohort file: first component below ``audio_folder``,
    else the ``spk`` of a ``.../spk/session/utt.wav`` path."""
    rel = os.path.relpath(path, audio_folder)
    if not rel.startswith(os.pardir):
        return rel.replace(os.sep, "/").split("/")[0]
    parts = os.path.normpath(path).split(os.sep)
    return parts[-3] if len(parts) >= 3 else None


def calibration_cohort(cohort_file, audio_folder, speakers, size=None,
                       seed=1986, allow_outside=False):
    """The cohort of a QMF fit: no calibration speaker, the run's size.

    As test speakers are never in a verification run's cohort, the
    calibration speakers' files are removed from the cohort file first;
    then ``size`` files are drawn (seeded) as
    :func:`~speechbrain_ext.scoring.verify.read_cohort` draws them, so the
    cohort has the size of the runs that apply the QMF.

    Arguments
    ---------
    cohort_file : str
        Training CSV (``wav`` column) or list of paths.
    audio_folder : str
        Root of relative paths.
    speakers : set of str
        Calibration speakers.
    size : int or None
        Files kept (None: all).
    seed : int
        Seed of the draw.
    allow_outside : bool
        Accept relative paths that leave ``audio_folder``.

    Returns
    -------
    paths : list of str
        Absolute cohort paths.
    left_out : int
        Files of calibration speakers removed.

    Example
    -------
    >>> d = str(getfixture("tmp_path"))
    >>> p = os.path.join(d, "cohort.txt")
    >>> _ = open(p, "w").write("a/s/1.wav\\nb/s/2.wav\\nc/s/3.wav\\n")
    >>> paths, left_out = calibration_cohort(p, d, {"a"})
    >>> [os.path.relpath(x, d) for x in paths], left_out
    (['b/s/2.wav', 'c/s/3.wav'], 1)
    """
    every = verify.read_cohort(cohort_file, audio_folder, None, seed,
                               allow_outside)
    kept = [p for p in every if _speaker_of(p, audio_folder) not in speakers]
    left_out = len(every) - len(kept)
    if size is not None and len(kept) > int(size):
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(kept), int(size), replace=False))
        kept = [kept[i] for i in keep]
    elif size is not None and len(kept) < int(size):
        logger.warning(
            "%s holds %d files of other speakers than the calibration "
            "list's, fewer than cohort_size=%d: the QMF is fitted with a "
            "cohort of %d (runs must use that size)", cohort_file,
            len(kept), int(size), len(kept),
        )
    return kept, left_out


def fit_qmf_folder(pretrained, trial_list, audio_folder, cohort_file,
                   conditions=("full", "1.04s", "2.04s", "5.04s"), topk=300,
                   cohort_size=20000, cohort_crop_seconds=3.0,
                   cohort_seed=1986, exclude=(), cache_folder=None,
                   max_duration=qmf.MAX_DURATION, device="cpu",
                   batch_size=16, max_batch_seconds=120.0,
                   allow_outside=False, progress=True):
    """Embeds a calibration list, fits the QMF, stores ``qmf.json``.

    Arguments
    ---------
    pretrained : str
        A pretrained folder (or a training output holding one).
    trial_list : str
        Calibration trials ``label enrol test`` of training speakers.
    audio_folder : str
        Root of the list's (and the cohort's relative) paths.
    cohort_file : str
        AS-norm cohort: training CSV (``wav`` column) or list of paths.
    conditions : sequence of str
        Test-side conditions the trials are scored in, pooled.
    topk : int
        AS-norm top-k (the recipe's ``cohort_topk``).
    cohort_size : int or None
        Cohort utterances drawn (the recipe's ``cohort_size``).
    cohort_crop_seconds : float or None
        Centre crop of the cohort embeddings (None: full length).
    cohort_seed : int
        Seed of the cohort draw (the recipe's ``seed``).
    exclude : sequence of str
        Test trial lists that must share no speaker with ``trial_list``.
    cache_folder : str or None
        Embedding cache (None: a temporary one).
    max_duration : float
        Duration cap of the features, seconds.
    device : str
        Where the model runs.
    batch_size : int
        Most files per forward pass.
    max_batch_seconds : float
        Most padded seconds per forward pass.
    allow_outside : bool
        Accept paths that leave ``audio_folder``.
    progress : bool
        Progress bars.

    Returns
    -------
    LogisticCalibration
        The stored QMF.

    Raises
    ------
    QMFError
        The list shares speakers with an ``exclude`` list, or the cohort is
        too small once the calibration speakers are left out.

    Example
    -------
    >>> d = str(getfixture("tmp_path"))
    >>> cal, test = os.path.join(d, "cal.txt"), os.path.join(d, "test.txt")
    >>> _ = open(cal, "w").write("1 id1/a/1.wav id1/b/2.wav\\n"
    ...                          "0 id1/a/1.wav id2/a/1.wav\\n")
    >>> _ = open(test, "w").write("1 id2/x/1.wav id2/y/2.wav\\n")
    >>> fit_qmf_folder("model", cal, d, "train.csv", exclude=[test])
    Traceback (most recent call last):
    ...
    speechbrain_ext.scoring.qmf.QMFError: the calibration list ... id2; ...
    """
    from speechbrain_ext.embed import load_embedder

    trial_list = os.path.abspath(trial_list)
    audio_folder = os.path.abspath(audio_folder)
    speakers = qmf.list_speakers(trial_list)
    qmf.check_disjoint(speakers, f"the calibration list {trial_list}",
                       exclude)
    spec = trial_lists.TrialSpec("qmf", trial_list, audio_folder)
    [loaded] = trial_lists.load_trial_lists([spec], allow_outside)
    views = condition_views(list(conditions), SAMPLE_RATE)
    kept, left_out = calibration_cohort(
        cohort_file, audio_folder, speakers, cohort_size, cohort_seed,
        allow_outside,
    )
    if not 1 < int(topk) <= len(kept):
        raise qmf.QMFError(
            f"topk={topk} must be in [2, {len(kept)}] (the cohort of "
            f"{cohort_file} without the calibration speakers)"
        )
    cohort_view = None
    if cohort_crop_seconds:
        cohort_view = int(round(float(cohort_crop_seconds) * SAMPLE_RATE))
    needs = verify.embedding_needs([loaded], views.values(), kept,
                                   cohort_view)
    stamps, lengths = verify.audio_lengths(needs, SAMPLE_RATE, 4, progress)
    embedder, identity = load_embedder(pretrained, device, batch_size,
                                       max_batch_seconds)
    key = embedding_cache.cache_key(identity["checkpoint"], identity["config"],
                            views, SAMPLE_RATE, "fp32")
    with tempfile.TemporaryDirectory() as tmp:
        with embedding_cache.EmbeddingCache(cache_folder or tmp, key,
                                    lock=True) as cache:
            embeddings = extract.extract_embeddings(
                embedder, cache, needs, lengths, stamps, progress=progress,
            )
    view = view_name(cohort_view)
    normaliser = trial_scores.CohortNormaliser(
        [embeddings[(p, view)] for p in kept], int(topk))
    features, per_condition = [], {}
    for condition, crop in views.items():
        _, x = qmf.condition_features(loaded, crop, embeddings, lengths,
                                      normaliser, SAMPLE_RATE, max_duration)
        features.append(x)
        per_condition[condition] = x
    labels = np.asarray(loaded.trials.labels)
    info = {
        "calibration_list": trial_list,
        "calibration_list_sha256": sha256_of(trial_list),
        "calibration_list_bytes": os.path.getsize(trial_list),
        "calibration_speakers": sorted(speakers),
        "audio_folder": audio_folder,
        "conditions": dict(views),
        "topk": int(topk),
        "cohort_file": os.path.abspath(cohort_file),
        "cohort_file_sha256": sha256_of(cohort_file),
        "cohort_size": len(kept),
        "cohort_left_out": left_out,
        "cohort_crop_seconds": cohort_crop_seconds or None,
        "cohort_seed": int(cohort_seed),
        "max_duration": float(max_duration),
        "sample_rate": SAMPLE_RATE,
        "model_state_sha256": state_digest(identity["checkpoint"]),
        "fitted_on": "AS-norm scores and quality measures, full-length "
                     "enrolment, test side in every condition, pooled",
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    model = qmf.fit_qmf(np.vstack(features),
                        np.tile(labels, len(views)), info)
    y = labels.astype(bool)
    model.info["dev_by_condition"] = {
        condition: {
            "cllr_qmf": cllr(y, model.llr(x)),
            "min_cllr_asnorm": min_cllr(y, x[:, 0]),
            "eer_asnorm": compute_eer(x[y, 0], x[~y, 0])[0],
        }
        for condition, x in per_condition.items()
    }
    model.save(os.path.join(identity["folder"], qmf.QMF_FILE))
    return model


def main(argv=None):
    """Command line; see the module docstring.

    Arguments
    ---------
    argv : list of str or None
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success.

    Example
    -------
    >>> main(["model", "cal.txt"])
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    parser = argparse.ArgumentParser(
        description="Fit a QMF (AS-norm score + quality measures to LLR) on "
        "a calibration list of training speakers; store <pretrained>/qmf.json"
    )
    parser.add_argument("pretrained", help="pretrained folder")
    parser.add_argument("trial_list", help="calibration trials")
    parser.add_argument("--audio_folder", required=True,
                        help="root of the list's paths")
    parser.add_argument("--cohort_file", required=True,
                        help="AS-norm cohort (training CSV or path list)")
    parser.add_argument("--conditions", nargs="+",
                        default=["full", "1.04s", "2.04s", "5.04s"])
    parser.add_argument("--topk", type=int, default=300)
    parser.add_argument("--cohort_size", type=int, default=20000)
    parser.add_argument("--cohort_crop_seconds", type=float, default=3.0,
                        help="0: full-length cohort embeddings")
    parser.add_argument("--cohort_seed", type=int, default=1986)
    parser.add_argument("--max_duration", type=float,
                        default=qmf.MAX_DURATION)
    parser.add_argument("--exclude", nargs="+", default=[],
                        help="test trial lists sharing no speaker with it")
    parser.add_argument("--cache_folder", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_batch_seconds", type=float, default=120.0)
    parser.add_argument("--allow_paths_outside_audio_folder",
                        action="store_true")
    parser.add_argument("--noprogressbar", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        model = fit_qmf_folder(
            args.pretrained, args.trial_list, args.audio_folder,
            args.cohort_file, args.conditions, args.topk, args.cohort_size,
            args.cohort_crop_seconds, args.cohort_seed, args.exclude,
            args.cache_folder, args.max_duration, args.device,
            args.batch_size, args.max_batch_seconds,
            args.allow_paths_outside_audio_folder, not args.noprogressbar,
        )
    except qmf.QMFError as err:
        sys.exit(f"error: {err}")
    info = model.info
    weights = ", ".join(
        f"{n} {w:+.4f}" for n, w in zip(model.features, model.weights,
                                         strict=True))
    folder = model_loading.resolve_pretrained_folder(args.pretrained)
    print(
        f"QMF: LLR = {weights}, bias {model.bias:+.4f} "
        f"({info['n_trials']} trials over {len(info['conditions'])} "
        f"conditions)\n"
        f"fitting trials: Cllr {info['dev_cllr_score_only']:.4f} -> "
        f"{info['dev_cllr']:.4f}, min-Cllr "
        f"{info['dev_min_cllr_score_only']:.4f} -> "
        f"{info['dev_min_cllr']:.4f}, EER "
        f"{100 * info['dev_eer_score_only']:.2f} % -> "
        f"{100 * info['dev_eer']:.2f} % (AS-norm alone -> QMF)\n"
        f"written: {os.path.join(folder, qmf.QMF_FILE)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
