#!/usr/bin/env python3
"""Cosine-scoring speaker verification with MR-RawNet embeddings.

Scores any number of trial lists (``label enrol test`` lines) in one run,
in the full-length condition and the short-duration protocol (full-length
enrolment against a centre crop of 1.04 / 2.04 / 5.04 s of the test
utterance), optionally with AS-norm, and reports EER and minDCF.

Usage::

    python recipes/speaker_verification_cosine.py \\
        hparams/verification_mr_rawnet.yaml \\
        --data_folder=/data/voxceleb1 --pretrained_path=/models/mr_rawnet

``--pretrained_path`` is a pretrained folder (``hyperparams.yaml`` +
``embedding_model.ckpt``) or a training output folder with one in
``pretrained/``. The device is CUDA when available unless ``--device`` is
given; other SpeechBrain run options (``--noprogressbar``,
``--eval_precision``) and hparam overrides work as usual.

Steps: read and check the trial lists, the cohort and every audio file;
load the model; extract the missing embeddings (batched, resumable cache);
score every list and condition; write score files, ``results.md``,
``results.json``, a DET plot and a score histogram per list.

When the pretrained folder holds a ``calibration.json`` (``python -m
speechbrain_ext.calibrate``), every condition is also reported as
``calibrated``: the cosine scores mapped to LLRs, with Cllr, min-Cllr and
the actual DCF of the Bayes decision next to EER and minDCF
(``--use_calibration=False`` turns it off). With AS-norm and a
``qmf.json`` in the pretrained folder (``python -m
speechbrain_ext.fit_qmf``), every condition is also reported as
``as-norm+qmf``: the AS-norm score and quality measures (durations as
used, cohort means) mapped to LLRs, with the same Cllr columns
(``--use_qmf=False`` turns it off). ``--onnx_model=model.onnx``
extracts the embeddings with onnxruntime from an exported model
(``python -m speechbrain_ext.export_onnx``) instead of PyTorch.

Authors
 * MR-RawNet recipe contributors
"""

import logging
import os
import sys
import time

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml

# The package of this checkout, even when another copy is installed.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_ROOT, "speechbrain_ext")):
    sys.path.insert(0, _ROOT)

from speechbrain_ext.scoring import (  # noqa: E402
    batching,
    embedding_cache,
    extract,
    model_loading,
    report,
    trial_lists,
    trial_scores,
    verify,
)
from speechbrain_ext.scoring.plots import plot_det  # noqa: E402
from speechbrain_ext.scoring.qmf import (  # noqa: E402
    MAX_DURATION,
    condition_features,
)
from speechbrain_ext.scoring.views import (  # noqa: E402
    condition_views,
    view_name,
)
from speechbrain_ext.training.distributed import default_device  # noqa: E402

logger = logging.getLogger(__name__)


def read_inputs(hparams, progress=True):
    """Reads trial lists and cohort and checks every audio file up front.

    Arguments
    ---------
    hparams : dict
        The loaded hyperparameters.
    progress : bool
        Show a progress bar while audio headers are checked.

    Returns
    -------
    dict
        ``lists``, ``views`` (condition -> crop length), ``cohort``,
        ``cohort_view``, ``needs``, ``stamps`` and ``lengths``.
    """
    rate = hparams["sample_rate"]
    outside = hparams["allow_paths_outside_data_folder"]
    audio_folder = hparams.get("audio_folder") or (
        trial_lists.default_audio_folder(hparams["data_folder"])
    )
    specs = trial_lists.trial_specs(
        hparams["trial_lists"], hparams["data_folder"], audio_folder
    )
    lists = trial_lists.load_trial_lists(specs, outside)
    views = condition_views(hparams["conditions"], rate)
    cohort, cohort_view = [], None
    if hparams["score_norm"] == "as-norm":
        if not hparams.get("cohort_file"):
            raise ValueError("score_norm: as-norm needs a cohort_file")
        cohort = verify.read_cohort(
            hparams["cohort_file"], audio_folder,
            hparams["cohort_size"], hparams["seed"], outside,
            hparams["data_folder"],
        )
        if hparams.get("cohort_crop_seconds"):
            cohort_view = int(round(hparams["cohort_crop_seconds"] * rate))
        if not 1 < hparams["cohort_topk"] <= len(cohort):
            raise ValueError(
                f"cohort_topk={hparams['cohort_topk']} must be in [2, "
                f"{len(cohort)}] (the cohort size)"
            )
    elif hparams["score_norm"] != "none":
        raise ValueError(
            f"score_norm must be 'none' or 'as-norm', got "
            f"{hparams['score_norm']!r}"
        )
    needs = verify.embedding_needs(
        lists, views.values(), cohort, cohort_view
    )
    stamps, lengths = verify.audio_lengths(
        needs, rate, hparams["header_workers"], progress
    )
    for loaded in lists:
        t = loaded.trials
        logger.info(
            "%s: %d trials (%d target), %d utterances", loaded.spec.name,
            len(t), t.n_target, len(t.utterances()),
        )
    return dict(
        lists=lists, views=views, cohort=cohort, cohort_view=cohort_view,
        needs=needs, stamps=stamps, lengths=lengths,
    )


def compute_embeddings(hparams, inputs, run_opts, folder):
    """Loads the model and extracts every needed embedding (cached).

    Arguments
    ---------
    hparams : dict
        The loaded hyperparameters.
    inputs : dict
        Output of :func:`read_inputs`.
    run_opts : dict
        SpeechBrain run options.
    folder : str
        The pretrained folder.

    Returns
    -------
    embeddings : dict
        ``(path, view) -> embedding``.
    meta : dict
        Model and device description for the results.
    """
    model, checkpoint, config = model_loading.load_embedding_model(folder)
    device = torch.device(run_opts["device"] or default_device())
    precision = run_opts["eval_precision"]
    onnx_model = hparams.get("onnx_model")
    if onnx_model:
        from speechbrain_ext.onnx_runtime import OnnxEmbeddingModel
        from speechbrain_ext.pretrained import sha256_of

        if device.type != "cpu" or precision != "fp32":
            raise ValueError(
                "onnx_model runs with onnxruntime on the CPU in float32: "
                "use --device=cpu and --eval_precision=fp32"
            )
        model = OnnxEmbeddingModel(onnx_model, torch.get_num_threads())
        config += f"\n# onnxruntime model sha256 {sha256_of(onnx_model)}\n"
        logger.info("Embeddings from %s (onnxruntime)", onnx_model)
    logger.info("Model %s on %s (%s)", folder, device, precision)
    key = embedding_cache.cache_key(
        checkpoint, config, inputs["views"], hparams["sample_rate"], precision
    )
    # One run at a time per cache (a second one stops, naming the first).
    cache = embedding_cache.EmbeddingCache(
        hparams["cache_folder"], key,
        info={"pretrained": folder, "conditions": inputs["views"]},
        lock=True,
    )
    embedder = batching.BatchedEmbedder(
        model, device, hparams["batch_size"], hparams["max_batch_seconds"],
        hparams["sample_rate"], precision,
    )
    start = time.time()
    with cache:
        embeddings = extract.extract_embeddings(
            embedder, cache, inputs["needs"], inputs["lengths"],
            inputs["stamps"], hparams["flush_every_batches"],
            hparams["flush_every_seconds"], hparams["num_workers"],
            progress=not run_opts["noprogressbar"],
        )
        cache.compact()
    logger.info(
        "Embeddings ready in %.1f s (%d forward passes, cache %s)",
        time.time() - start, embedder.forward_calls, cache.folder,
    )
    meta = {
        "pretrained": folder, "device": str(device), "precision": precision,
        "onnx_model": onnx_model or None,
        "cache": cache.folder, "score_norm": hparams["score_norm"],
        "conditions": inputs["views"],
        "lists": {x.spec.name: x.spec.path for x in inputs["lists"]},
        "cohort_size": len(inputs["cohort"]),
    }
    return embeddings, meta


def load_calibration(hparams, folder, lists):
    """The pretrained folder's calibration, when there is one and it is used.

    Warns when a scored list is the one the calibration was fitted on.

    Arguments
    ---------
    hparams : dict
        The loaded hyperparameters (``use_calibration``, default True).
    folder : str
        The pretrained folder.
    lists : sequence of LoadedList
        The scored lists.

    Returns
    -------
    LogisticCalibration or None
        None when the folder has no ``calibration.json`` or
        ``use_calibration`` is False.
    """
    from speechbrain_ext.pretrained import sha256_of
    from speechbrain_ext.scoring.calibration import folder_calibration

    if not hparams.get("use_calibration", True):
        return None
    calibration = folder_calibration(folder)
    if calibration is None:
        return None
    fitted = calibration.info.get("trial_list_sha256")
    for loaded in lists:
        if fitted and sha256_of(loaded.spec.path) == fitted:
            logger.warning(
                "The calibration was fitted on %s itself: its calibrated "
                "Cllr and actual DCF are optimistic", loaded.spec.path,
            )
    logger.info(
        "Calibrated scores: LLR = %.4f * cosine + %.4f (%s)",
        calibration.weights[0], calibration.bias,
        calibration.info.get("trial_list", "?"),
    )
    return calibration


def load_qmf(hparams, folder, inputs):
    """The pretrained folder's QMF, when there is one and it applies.

    Refuses a QMF fitted with another cohort top-k, cohort size, cohort
    crop or model; warns when a scored list is the calibration list or
    shares speakers with it.

    Arguments
    ---------
    hparams : dict
        The loaded hyperparameters (``use_qmf``, default True).
    folder : str
        The pretrained folder.
    inputs : dict
        Output of :func:`read_inputs`.

    Returns
    -------
    LogisticCalibration or None
        None without AS-norm, without ``qmf.json`` or when ``use_qmf`` is
        False.
    """
    from speechbrain_ext.pretrained import sha256_of, state_digest
    from speechbrain_ext.scoring import qmf

    if hparams["score_norm"] != "as-norm" or not hparams.get("use_qmf", True):
        return None
    model = qmf.folder_qmf(folder)
    if model is None:
        return None
    source = os.path.join(folder, qmf.QMF_FILE)
    checkpoint = os.path.join(folder, "embedding_model.ckpt")
    qmf.check_qmf_setup(
        model, source, hparams["cohort_topk"], len(inputs["cohort"]),
        hparams.get("cohort_crop_seconds"), state_digest(checkpoint),
    )
    info = model.info
    fitted_cohort = info.get("cohort_file_sha256")
    if fitted_cohort and sha256_of(hparams["cohort_file"]) != fitted_cohort:
        logger.warning(
            "The QMF was fitted with the cohort %s; this run's cohort_file "
            "%s differs: the cohort-mean features may mean something else",
            info.get("cohort_file", "?"), hparams["cohort_file"],
        )
    cal_speakers = set(info.get("calibration_speakers", ()))
    for loaded in inputs["lists"]:
        path = loaded.spec.path
        if sha256_of(path) == info.get("calibration_list_sha256"):
            logger.warning(
                "The QMF was fitted on %s itself: its as-norm+qmf figures "
                "are optimistic", path,
            )
        elif loaded.spec.format == "voxceleb" and cal_speakers:
            shared = sorted(cal_speakers & qmf.list_speakers(path))
            if shared:
                logger.warning(
                    "%s shares %d speaker(s) with the QMF calibration list "
                    "%s (%s): its as-norm+qmf figures are optimistic", path,
                    len(shared), info.get("calibration_list", "?"),
                    ", ".join(shared[:5]),
                )
    logger.info("QMF scores: %s (%s)", source,
                info.get("calibration_list", "?"))
    return model


def score_lists(hparams, inputs, embeddings, calibration=None, qmf=None):
    """Scores every list and condition; writes the score files and plots.

    Arguments
    ---------
    hparams : dict
        The loaded hyperparameters.
    inputs : dict
        Output of :func:`read_inputs`.
    embeddings : dict
        Output of :func:`compute_embeddings`.
    calibration : LogisticCalibration or None
        When given, the cosine scores are also reported calibrated (a
        ``calibrated`` scoring with Cllr, min-Cllr and actual DCF).
    qmf : LogisticCalibration or None
        A QMF (:func:`load_qmf`): with AS-norm, adds the ``as-norm+qmf``
        scoring (LLRs, reported as ``calibrated``).

    Returns
    -------
    list of dict
        One metrics row per list, condition and scoring.
    """
    out = hparams["output_folder"]
    p_targets = hparams["p_targets"]
    normaliser = None
    if inputs["cohort"]:
        view = view_name(inputs["cohort_view"])
        cohort = [embeddings[(p, view)] for p in inputs["cohort"]]
        normaliser = trial_scores.CohortNormaliser(
            cohort, hparams["cohort_topk"]
        )
    rows = []
    for loaded in inputs["lists"]:
        name, t = loaded.spec.name, loaded.trials
        positive, negative = t.labels == 1, t.labels == 0
        det, hist = {}, {}
        for condition, crop in inputs["views"].items():
            enrol, test = trial_scores.trial_keys(loaded, crop)
            scored = {"cosine": trial_scores.cosine_trial_scores(
                enrol, test, embeddings)}
            if normaliser is not None:
                scored["as-norm"] = normaliser(
                    scored["cosine"], enrol, test, embeddings
                )
            if calibration is not None:
                scored["calibrated"] = calibration.llr(scored["cosine"])
            if qmf is not None and normaliser is not None:
                scored["as-norm+qmf"] = qmf.llr(condition_features(
                    loaded, crop, embeddings, inputs["lengths"], normaliser,
                    hparams["sample_rate"],
                    qmf.info.get("max_duration", MAX_DURATION),
                )[1])
            for scoring, scores in scored.items():
                suffix = "" if scoring == "cosine" else f".{scoring}"
                report.write_scores(
                    os.path.join(out, "scores", name,
                                 f"{condition}{suffix}.txt"),
                    t.enrol, t.test, t.labels, scores,
                )
                rows.append(report.metrics_row(
                    name, condition, scoring, t.labels, scores, p_targets,
                    llr=scoring in ("calibrated", "as-norm+qmf"),
                ))
                if scoring == "calibrated":
                    continue  # same DET curve as cosine (monotonic map)
                label = condition + ("" if not suffix else f" {scoring}")
                det[label] = (scores[positive], scores[negative])
            primary = scored.get("as-norm", scored["cosine"])
            hist[condition] = (primary[positive], primary[negative])
        plot_det(det, os.path.join(out, "plots", f"{name}_det.png"), name)
        report.plot_score_histograms(
            hist, os.path.join(out, "plots", f"{name}_hist.png"),
            f"{name} ({'as-norm' if normaliser else 'cosine'})",
        )
    return rows


def main(argv=None):
    """Runs the whole scoring job.

    Arguments
    ---------
    argv : list of str or None
        Command line (default ``sys.argv[1:]``).

    Returns
    -------
    list of dict
        The metrics rows.
    """
    hparams_file, run_opts, overrides = sb.parse_arguments(
        sys.argv[1:] if argv is None else argv
    )
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RuntimeError(
            "scoring runs in one process; start it without torchrun and "
            "choose the GPU with --device=cuda:N"
        )
    with open(hparams_file, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, overrides)
    sb.create_experiment_directory(
        hparams["output_folder"], hyperparams_to_save=hparams_file,
        overrides=overrides, save_env_desc=hparams["save_env_desc"],
    )
    folder = model_loading.resolve_pretrained_folder(hparams["pretrained_path"])
    inputs = read_inputs(hparams, progress=not run_opts["noprogressbar"])
    embeddings, meta = compute_embeddings(hparams, inputs, run_opts, folder)
    calibration = load_calibration(hparams, folder, inputs["lists"])
    if calibration is not None:
        meta["calibration"] = calibration.to_dict()
    qmf = load_qmf(hparams, folder, inputs)
    if qmf is not None:
        meta["qmf"] = {k: v for k, v in qmf.to_dict().items() if k != "info"}
        meta["qmf"]["info"] = {
            k: v for k, v in qmf.info.items()
            if k != "calibration_speakers"
        }
    rows = score_lists(hparams, inputs, embeddings, calibration, qmf)
    report.write_results(
        rows, hparams["output_folder"], hparams["p_targets"], meta
    )
    table = report.results_markdown(rows, hparams["p_targets"])
    logger.debug("Results (%s):\n%s", hparams["output_folder"], table)
    print(table)
    return rows


if __name__ == "__main__":
    main()
