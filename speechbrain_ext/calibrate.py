"""Fit a score calibration on a development trial list; store it in a folder.

Usage::

    python -m speechbrain_ext.calibrate <pretrained folder> <trial list> \\
        --audio_folder <root of the list's paths> [--p_target 0.01]

Embeds every file of the list (through the verification recipe's cache:
``--cache_folder`` makes a second run resume), scores the trials by cosine,
fits a logistic regression from the cosine score to a natural-log
likelihood ratio (:class:`~speechbrain_ext.scoring.calibration.
LogisticCalibration`, fitting prior 0.5) and writes
``<pretrained folder>/calibration.json`` (parameters, the list it was
fitted on with its SHA-256 and size, the decision prior, development
Cllr / min-Cllr / EER) and a "Calibration" section of the model card.

The development list must be held apart from the test lists (other
speakers), or the test figures of the calibrated scores are optimistic;
the verification recipe warns when it scores the list a calibration was
fitted on. ``CalibratedSpeakerRecognition`` then returns calibrated LLRs
and accepts a trial when its LLR exceeds ``log((1 - P_target) /
P_target)``.

Authors
 * MR-RawNet recipe contributors
"""

import argparse
import logging
import os
import re
import sys
import tempfile
import time

import numpy as np

from speechbrain_ext.atomic_files import atomic_write_text
from speechbrain_ext.pretrained import sha256_of
from speechbrain_ext.scoring import (
    embedding_cache,
    extract,
    model_loading,
    trial_lists,
    trial_scores,
    verify,
)
from speechbrain_ext.scoring.calibration import (
    CALIBRATION_FILE,
    LogisticCalibration,
    bayes_threshold,
)
from speechbrain_ext.scoring.calibration_metrics import (
    actual_dcf,
    cllr,
    min_cllr,
)
from speechbrain_ext.scoring.speechbrain_metrics import compute_eer

__all__ = ["calibrate_folder", "fit_calibration", "main", "model_card_section"]

logger = logging.getLogger(__name__)

_CARD_START = "<!-- calibration -->"
_CARD_END = "<!-- /calibration -->"


def fit_calibration(scores, labels, p_target=0.01, info=None):
    """Fits a cosine-to-LLR calibration and records development figures.

    Arguments
    ---------
    scores : array-like
        Cosine score of each development trial.
    labels : array-like
        1 target, 0 non-target.
    p_target : float
        Prior of the decision stored with the calibration.
    info : dict or None
        Provenance (trial list, ...).

    Returns
    -------
    LogisticCalibration
        With ``info`` holding ``decision_p_target`` and the development
        ``dev_cllr_raw`` (cosine taken as LLR), ``dev_cllr``,
        ``dev_min_cllr``, ``dev_eer``, ``dev_p_fa`` and ``dev_p_miss``.

    Example
    -------
    >>> rng = np.random.default_rng(1)
    >>> s = np.r_[rng.normal(0.6, 0.1, 500), rng.normal(0.1, 0.1, 500)]
    >>> y = np.r_[np.ones(500), np.zeros(500)]
    >>> cal = fit_calibration(s, y)
    >>> cal.info["dev_cllr"] < cal.info["dev_cllr_raw"]
    True
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    cal = LogisticCalibration.fit(scores, labels, ["cosine"], info=info)
    llr = cal.llr(scores)
    decision = actual_dcf(labels, llr, p_target)
    cal.info.update(
        decision_p_target=float(p_target),
        decision_threshold_llr=bayes_threshold(p_target),
        decision_threshold_cosine=cal.score_threshold(p_target),
        dev_cllr_raw=cllr(labels, scores),
        dev_cllr=cllr(labels, llr),
        dev_min_cllr=min_cllr(labels, scores),
        dev_eer=compute_eer(scores[labels == 1], scores[labels == 0])[0],
        dev_p_fa=decision["p_fa"],
        dev_p_miss=decision["p_miss"],
    )
    return cal


def model_card_section(cal):
    """The model card's "Calibration" section for a calibration.

    Arguments
    ---------
    cal : LogisticCalibration
        A calibration made by :func:`fit_calibration`.

    Returns
    -------
    str
        Markdown, between HTML comment markers so it can be replaced.

    Example
    -------
    >>> cal = LogisticCalibration([10.0], -5.0, info={
    ...     "decision_p_target": 0.01, "trial_list": "dev.txt",
    ...     "n_trials": 10, "n_target": 5, "n_nontarget": 5})
    >>> "LLR > 4.595" in model_card_section(cal)
    True
    """
    info = cal.info
    p = float(info.get("decision_p_target", 0.01))
    thr = bayes_threshold(p)
    cos = (thr - cal.bias) / cal.weights[0] if cal.weights[0] > 0 else None
    figures = ""
    if "dev_cllr" in info:
        figures = (
            f"On the development trials: Cllr {info['dev_cllr']:.3f} "
            f"(min-Cllr {info['dev_min_cllr']:.3f}, raw cosine as LLR "
            f"{info['dev_cllr_raw']:.3f}), EER "
            f"{100 * info['dev_eer']:.2f} %.\n"
        )
    cos_text = f" (cosine {cos:.4f})" if cos is not None else ""
    return f"""{_CARD_START}
## Calibration

`calibration.json` maps the cosine score to a natural-log likelihood
ratio, `LLR = {cal.weights[0]:.4f} * cosine + {cal.bias:.4f}` (logistic
regression fitted on `{info.get('trial_list', '?')}`: {info.get('n_trials',
'?')} trials, {info.get('n_target', '?')} target, {info.get('n_nontarget',
'?')} non-target). Loaded with
`speechbrain_ext.calibrated_speaker.CalibratedSpeakerRecognition`,
`verify_files` / `verify_batch` return this LLR and decide "same speaker"
when **LLR > {thr:.3f}**{cos_text}, the Bayes threshold
`log((1 - P_target) / P_target)` for P_target = {p:g} and equal costs.
The stock `SpeakerRecognition` ignores the file (cosine, threshold 0.25).
{figures}{_CARD_END}
"""


def _update_card(folder, cal):
    """Replaces (or appends) the calibration section of the model card."""
    path = os.path.join(folder, "README.md")
    text = ""
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
    pattern = re.escape(_CARD_START) + r".*?" + re.escape(_CARD_END) + r"\n?"
    text = re.sub(pattern, "", text, flags=re.S).rstrip("\n")
    text = (text + "\n\n" if text else "") + model_card_section(cal)
    atomic_write_text(path, text)


def calibrate_folder(pretrained, trial_list, audio_folder=None,
                     cache_folder=None, p_target=0.01, device="cpu",
                     batch_size=16, max_batch_seconds=120.0, onnx=None,
                     allow_outside=False, progress=True):
    """Embeds a development list, fits the calibration, stores it.

    Arguments
    ---------
    pretrained : str
        A pretrained folder (or a training output holding one).
    trial_list : str
        Development trials ``label enrol test``.
    audio_folder : str or None
        Root of the list's relative paths (default: the list's folder).
    cache_folder : str or None
        Embedding cache (None: a temporary one, removed at the end).
    p_target : float
        Prior of the stored decision.
    device : str
        Where the model runs.
    batch_size : int
        Most files per forward pass.
    max_batch_seconds : float
        Most padded seconds per forward pass.
    onnx : str or None
        Run this exported model with onnxruntime instead.
    allow_outside : bool
        Accept list paths that leave ``audio_folder``.
    progress : bool
        Progress bars.

    Returns
    -------
    LogisticCalibration
        The stored calibration.
    """
    from speechbrain_ext.embed import load_embedder

    trial_list = os.path.abspath(trial_list)
    if audio_folder is None:
        audio_folder = os.path.dirname(trial_list)
    spec = trial_lists.TrialSpec(
        "dev", trial_list, os.path.abspath(audio_folder)
    )
    [loaded] = trial_lists.load_trial_lists([spec], allow_outside)
    needs = verify.embedding_needs([loaded], [None])
    stamps, lengths = verify.audio_lengths(needs, 16000, 4, progress)
    embedder, identity = load_embedder(
        pretrained, device, batch_size, max_batch_seconds, onnx
    )
    key = embedding_cache.cache_key(
        identity["checkpoint"], identity["config"], {"full": None}
    )
    with tempfile.TemporaryDirectory() as tmp:
        cache = embedding_cache.EmbeddingCache(cache_folder or tmp, key)
        embeddings = extract.extract_embeddings(
            embedder, cache, needs, lengths, stamps, progress=progress,
        )
    enrol, test = trial_scores.trial_keys(loaded, None)
    scores = trial_scores.cosine_trial_scores(enrol, test, embeddings)
    cal = fit_calibration(
        scores, loaded.trials.labels, p_target,
        info={
            "trial_list": trial_list,
            "trial_list_sha256": sha256_of(trial_list),
            "fitted_on": "cosine scores, full-length enrolment and test",
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
    )
    folder = identity["folder"]
    cal.save(os.path.join(folder, CALIBRATION_FILE))
    _update_card(folder, cal)
    return cal


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
    """
    parser = argparse.ArgumentParser(
        description="Fit a cosine-to-LLR calibration on development trials "
        "and store it in the pretrained folder."
    )
    parser.add_argument("pretrained", help="pretrained folder")
    parser.add_argument("trial_list", help="development trials")
    parser.add_argument("--audio_folder", default=None,
                        help="root of the list's paths (default: its folder)")
    parser.add_argument("--cache_folder", default=None,
                        help="embedding cache (resumable); default: temporary")
    parser.add_argument("--p_target", type=float, default=0.01)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--onnx", default=None)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_batch_seconds", type=float, default=120.0)
    parser.add_argument("--allow_paths_outside_audio_folder",
                        action="store_true")
    parser.add_argument("--noprogressbar", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not 0 < args.p_target < 1:
        parser.error("--p_target must be in (0, 1)")
    cal = calibrate_folder(
        args.pretrained, args.trial_list, args.audio_folder,
        args.cache_folder, args.p_target, args.device, args.batch_size,
        args.max_batch_seconds, args.onnx,
        args.allow_paths_outside_audio_folder, not args.noprogressbar,
    )
    info = cal.info
    print(
        f"calibration: LLR = {cal.weights[0]:.4f} * cosine + "
        f"{cal.bias:.4f} ({info['n_trials']} trials)\n"
        f"development: Cllr {info['dev_cllr']:.4f} (min-Cllr "
        f"{info['dev_min_cllr']:.4f}, raw cosine {info['dev_cllr_raw']:.4f}),"
        f" EER {100 * info['dev_eer']:.2f} %\n"
        f"decision at P_target {info['decision_p_target']:g}: LLR > "
        f"{info['decision_threshold_llr']:.3f} (cosine > "
        f"{info['decision_threshold_cosine']:.4f})\n"
        f"written: {os.path.join(model_loading.resolve_pretrained_folder(args.pretrained), CALIBRATION_FILE)}"  # noqa: E501
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
