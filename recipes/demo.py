#!/usr/bin/env python3
"""The whole MR-RawNet job on embedded data, offline: ``make demo``.

Stages (each prints a line; each reuses what a previous run finished):

1. generate a deterministic synthetic corpus in the VoxCeleb layout
   (training speakers, disjoint test speakers, a balanced trial list, small
   noise and RIR sets);
2. train a small MR-RawNet (``hparams/mr_rawnet_demo.yaml``) through the
   real training recipe, augmentation on; it exports a pretrained folder;
3. load that folder back with SpeechBrain's ``EncoderClassifier``;
4. calibrate the model's cosine scores to log-likelihood ratios
   (``python -m speechbrain_ext.calibrate``) on a development corpus of
   other synthetic speakers, disjoint from the test speakers;
5. fit a quality-measure calibration (QMF) of AS-norm scores on trials
   drawn from the training speakers
   (``python -m speechbrain_ext.scoring.qmf_trials`` and
   ``python -m speechbrain_ext.fit_qmf``);
6. score the trial list through the real verification recipe, at full
   length and on 1.04 s and 2.04 s test crops: cosine, AS-norm (cohort:
   the training utterances), AS-norm + QMF, and the calibrated cosine
   with Cllr and the actual cost of the decision at P_target 0.01;
7. large-margin fine-tuning of the model (``hparams/mr_rawnet_demo_lm.yaml``
   from the exported weights), its own QMF, and the same scoring;
8. score the same trials with an MFCC mean+std cosine baseline;
9. export the model to ONNX (``python -m speechbrain_ext.export_onnx``,
   which checks onnxruntime against PyTorch on padded batches), and print
   the results side by side with where every output went.

Usage::

    python recipes/demo.py [--workdir demo_data] [--results results/demo]

Extra ``--train_arg`` / ``--lm_arg`` / ``--verify_arg`` values are passed
to the recipes as they are (e.g. ``--train_arg=--number_of_epochs=1``,
``--lm_arg=--p_short_crop=0.0``).

Authors
 * MR-RawNet recipe contributors
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from hyperpyyaml import load_hyperpyyaml  # noqa: E402

from speechbrain_ext.pretrained import state_digest  # noqa: E402
from speechbrain_ext.synthetic import generate_corpus  # noqa: E402

DEMO_CONDITIONS = ["full", "1.04s", "2.04s"]
STAGES = 9


def stage(number, total, text):
    """Prints a stage line and returns the start time."""
    print(f"\n[{number}/{total}] {text}", flush=True)
    return time.time()


def run_recipe(args):
    """Runs a recipe in a fresh interpreter; fails loudly with its command."""
    cmd = [sys.executable, *args]
    print("    $ " + " ".join(cmd), flush=True)
    done = subprocess.run(cmd, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(
            f"demo: stage failed (exit {done.returncode}): {' '.join(cmd)}"
        )


def training_fingerprint(hparams_file, extra_args, *inputs):
    """What a training run depends on: hparams text, overrides, inputs."""
    with open(os.path.join(ROOT, hparams_file)) as fh:
        text = fh.read()
    blob = json.dumps([text, extra_args, *inputs], sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def train_stage(hparams_file, out, paths, quiet, extra_args, fingerprint):
    """Runs the training recipe into ``out`` (resumes a matching run)."""
    keep_or_retire(out, fingerprint)
    run_recipe(
        [
            "recipes/train_speaker_embeddings.py",
            hparams_file,
            f"--data_folder={paths['root']}",
            f"--musan_folder={paths['musan_dir']}",
            f"--rir_folder={paths['rirs_dir']}",
            f"--trial_lists={paths['trials']}",
            f"--output_folder={out}",
            *quiet,
            *extra_args,
        ]
    )
    return os.path.join(out, "pretrained")


def verification_setup(args, paths, pretrained):
    """The verification hparams as the demo's scoring runs load them.

    ``--verify_arg=--key=value`` overrides of keys of the file apply, as
    they do in the recipe.
    """
    path = os.path.join(ROOT, args.verify_hparams)
    base = {"data_folder": paths["root"], "pretrained_path": pretrained}
    with open(path) as fh:
        keys = set(load_hyperpyyaml(fh, base))
    lines = [
        f"{key}: {value}"
        for key, _, value in (
            a[2:].partition("=") for a in args.verify_arg
            if a.startswith("--") and "=" in a
        )
        if key in keys
    ]
    overrides = "\n".join(
        [f"{k}: {v}" for k, v in base.items()] + lines
    )
    with open(path) as fh:
        return load_hyperpyyaml(fh, overrides)


def qmf_stage(args, pretrained, calibration_list, paths, cohort, cache,
              quiet):
    """Fits the QMF of ``pretrained`` with the scoring run's cohort setup.

    The cohort settings are those of the verification runs (hparams file
    and ``--verify_arg`` overrides), so that the recipe accepts the QMF.
    """
    setup = verification_setup(args, paths, pretrained)
    run_recipe(
        [
            "-m", "speechbrain_ext.fit_qmf", pretrained, calibration_list,
            f"--audio_folder={paths['wav_dir']}",
            f"--cohort_file={cohort}",
            "--conditions", *DEMO_CONDITIONS,
            f"--topk={setup['cohort_topk']}",
            f"--cohort_size={setup['cohort_size']}",
            f"--cohort_crop_seconds={setup['cohort_crop_seconds'] or 0}",
            f"--cohort_seed={setup['seed']}",
            f"--exclude={paths['trials']}",
            f"--cache_folder={cache}",
            *quiet,
        ]
    )
    with open(os.path.join(pretrained, "qmf.json")) as fh:
        return json.load(fh)


def verify_stage(args, pretrained, out, paths, cohort, quiet):
    """Scores the trial list with the verification recipe (with AS-norm)."""
    run_recipe(
        [
            "recipes/speaker_verification_cosine.py",
            args.verify_hparams,
            f"--data_folder={paths['root']}",
            f"--pretrained_path={pretrained}",
            f"--output_folder={out}",
            f"--conditions=[{', '.join(DEMO_CONDITIONS)}]",
            "--score_norm=as-norm",
            f"--cohort_file={cohort}",
            *quiet,
            *args.verify_arg,
        ]
    )
    with open(os.path.join(out, "results.json")) as fh:
        results = json.load(fh)["results"]
    name = next(iter(results))  # the demo scores one list
    return name, results[name]


def keep_or_retire(folder, fingerprint):
    """Keeps a training folder made with the same inputs, else retires it.

    A run whose configuration or corpus changed cannot resume from the old
    checkpoints; the old folder is renamed to ``<folder>.stale`` (replacing
    an older one) rather than deleted.
    """
    stamp = os.path.join(folder, "demo_fingerprint.txt")
    if os.path.isdir(folder):
        old = open(stamp).read().strip() if os.path.isfile(stamp) else None
        if old == fingerprint:
            return
        stale = folder + ".stale"
        shutil.rmtree(stale, ignore_errors=True)
        os.replace(folder, stale)
        print(f"    configuration changed: previous run moved to {stale}")
    os.makedirs(folder, exist_ok=True)
    with open(stamp, "w") as fh:
        fh.write(fingerprint + "\n")


def calibration_table(calibrated, info):
    """Markdown lines: Cllr and the P_target 0.01 decision per condition."""
    lines = [
        f"Calibrated on {info['n_trials']} development trials of other "
        f"speakers: LLR > {info['decision_threshold_llr']:.3f} (cosine > "
        f"{info['decision_threshold_cosine']:.4f}) at P_target "
        f"{info['decision_p_target']:g}.",
        "",
        "| condition | Cllr | min-Cllr | P_fa@0.01 | P_miss@0.01 | "
        "actDCF@0.01 |",
        "|---|---|---|---|---|---|",
    ]
    for cond, m in calibrated.items():
        lines.append(
            f"| {cond} | {m['cllr']:.3f} | {m['min_cllr']:.3f} | "
            f"{100 * m['p_fa@0.01']:.2f} % | {100 * m['p_miss@0.01']:.1f} % "
            f"| {m['act_dcf@0.01']:.3f} |"
        )
    return "\n".join(lines)


def export_onnx_once(pretrained, onnx_path):
    """Exports to ONNX unless the file already holds these weights.

    A kept file is checked against PyTorch again (seconds); a new export
    runs ``python -m speechbrain_ext.export_onnx`` (minutes).
    """
    from speechbrain_ext.export_onnx import check_onnx
    from speechbrain_ext.onnx_runtime import OnnxEmbeddingModel
    from speechbrain_ext.scoring.model_loading import load_embedding_model

    digest = state_digest(os.path.join(pretrained, "embedding_model.ckpt"))
    state = "exported"
    if os.path.isfile(onnx_path) and OnnxEmbeddingModel(
        onnx_path
    ).metadata.get("checkpoint_state_sha256") == digest:
        state = "reused"
    else:
        run_recipe(
            ["-m", "speechbrain_ext.export_onnx", pretrained, onnx_path]
        )
    model, _, _ = load_embedding_model(pretrained)
    return {**check_onnx(onnx_path, model), "state": state}


def parse_args(argv):
    """Command-line options of the demo."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="demo_data")
    parser.add_argument("--results", default="results/demo")
    parser.add_argument("--n_train_speakers", type=int, default=100)
    parser.add_argument("--n_test_speakers", type=int, default=20)
    parser.add_argument("--utts_per_speaker", type=int, default=16)
    parser.add_argument(
        "--n_dev_speakers", type=int, default=20,
        help="speakers of the calibration corpus (disjoint from the test "
        "speakers)",
    )
    parser.add_argument("--dev_utts_per_speaker", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--train_hparams", default="hparams/mr_rawnet_demo.yaml"
    )
    parser.add_argument(
        "--verify_hparams", default="hparams/verification_demo.yaml"
    )
    parser.add_argument(
        "--lm_hparams", default="hparams/mr_rawnet_demo_lm.yaml"
    )
    parser.add_argument(
        "--n_qmf_trials", type=int, default=2000,
        help="QMF calibration trials drawn from the training speakers",
    )
    parser.add_argument("--train_arg", action="append", default=[])
    parser.add_argument("--lm_arg", action="append", default=[])
    parser.add_argument("--verify_arg", action="append", default=[])
    parser.add_argument("--noprogressbar", action="store_true")
    return parser.parse_args(argv)


def table(rows):
    """Markdown table of the demo results."""
    lines = [
        "| condition | system | EER (%) | minDCF@0.01 | minDCF@0.05 | trials |",
        "|---|---|---|---|---|---|",
    ]
    for cond, system, m in rows:
        lines.append(
            f"| {cond} | {system} | {100 * m['eer']:.2f} | "
            f"{m['min_dcf@0.01']:.3f} | {m['min_dcf@0.05']:.3f} | "
            f"{m['n_target'] + m['n_nontarget']} |"
        )
    return "\n".join(lines)


def main(argv=None):
    """Runs the demo; returns 0 on success."""
    args = parse_args(argv)
    start = time.time()
    workdir = os.path.abspath(args.workdir)
    results = os.path.abspath(args.results)
    os.makedirs(results, exist_ok=True)
    quiet = ["--noprogressbar"] if args.noprogressbar else []

    t = stage(1, STAGES, "Synthetic corpus (espeak-ng voices, offline)")
    info = generate_corpus(
        os.path.join(workdir, "corpus"),
        n_train_speakers=args.n_train_speakers,
        n_test_speakers=args.n_test_speakers,
        utts_per_speaker=args.utts_per_speaker,
        seed=args.seed,
        progress=not args.noprogressbar,
    )
    paths = info["paths"]
    state = "generated" if info["generated"] else "reused"
    print(
        f"    {state}: {len(info['train_speakers'])} training and "
        f"{len(info['test_speakers'])} test speakers, {info['n_trials']} "
        f"trials in {paths['root']} ({time.time() - t:.0f} s)"
    )

    t = stage(2, STAGES, "Training a small MR-RawNet (real training recipe)")
    train_out = os.path.join(results, "train")
    base_print = training_fingerprint(
        args.train_hparams, args.train_arg, info["args"], info["version"]
    )
    pretrained = train_stage(
        args.train_hparams, train_out, paths, quiet, args.train_arg,
        base_print,
    )
    print(f"    done in {time.time() - t:.0f} s; model in {pretrained}")

    t = stage(3, STAGES, "Loading the exported model with EncoderClassifier")
    from speechbrain.inference.speaker import EncoderClassifier

    clf = EncoderClassifier.from_hparams(
        source=pretrained, savedir=os.path.join(results, "pretrained_cache")
    )
    from speechbrain_ext.scoring.trials import read_trials

    trials = read_trials(paths["trials"])
    first = os.path.join(paths["wav_dir"], trials.enrol[0])
    emb = clf.encode_batch(clf.load_audio(first)[None])
    print(f"    embedding of {trials.enrol[0]}: shape {list(emb.shape)}")

    t = stage(4, STAGES, "Calibration on a development corpus of other "
              "speakers")
    dev = generate_corpus(
        os.path.join(workdir, "dev_corpus"),
        n_train_speakers=0,
        n_test_speakers=args.n_dev_speakers,
        utts_per_speaker=args.dev_utts_per_speaker,
        seed=args.seed + 1,  # other voices than the test speakers
        n_noise=1, n_music=1, n_speech=1, n_rooms=1, rirs_per_room=1,
        progress=not args.noprogressbar,
    )
    run_recipe(
        [
            "-m", "speechbrain_ext.calibrate", pretrained,
            dev["paths"]["trials"],
            f"--audio_folder={dev['paths']['wav_dir']}",
            f"--cache_folder={os.path.join(results, 'calibration_cache')}",
            *quiet,
        ]
    )
    with open(os.path.join(pretrained, "calibration.json")) as fh:
        calibration = json.load(fh)
    print(
        f"    {dev['n_trials']} development trials of "
        f"{len(dev['test_speakers'])} speakers ({time.time() - t:.0f} s)"
    )

    t = stage(5, STAGES, "QMF: quality-measure calibration on trials of "
              "the training speakers")
    cohort = os.path.join(train_out, "save", "train.csv")
    qmf_list = os.path.join(results, "qmf_trials.txt")
    run_recipe(
        [
            "-m", "speechbrain_ext.scoring.qmf_trials", cohort, qmf_list,
            f"--n_trials={args.n_qmf_trials}", f"--seed={args.seed}",
            # half the speakers; the others are the QMF's AS-norm cohort
            f"--n_speakers={max(2, args.n_train_speakers // 2)}",
            f"--audio_folder={paths['wav_dir']}",
            f"--exclude={paths['trials']}",
        ]
    )
    verify_out = os.path.join(results, "verification")
    qmf = qmf_stage(
        args, pretrained, qmf_list, paths, cohort,
        os.path.join(verify_out, "embedding_cache"), quiet,
    )
    print(f"    {qmf_list} ({time.time() - t:.0f} s)")

    t = stage(6, STAGES, "Scoring the trials (real verification recipe)")
    list_name, ours = verify_stage(
        args, pretrained, verify_out, paths, cohort, quiet
    )
    print(f"    done in {time.time() - t:.0f} s")

    t = stage(7, STAGES, "Large-margin fine-tuning, its QMF, scoring")
    lm_out = os.path.join(results, "train_lm")
    lm_pretrained = train_stage(
        args.lm_hparams, lm_out, paths, quiet,
        [f"--init_from={pretrained}", *args.lm_arg],
        training_fingerprint(
            args.lm_hparams, args.lm_arg, base_print,
            state_digest(os.path.join(pretrained, "embedding_model.ckpt")),
        ),
    )
    lm_verify_out = os.path.join(results, "verification_lm")
    qmf_stage(
        args, lm_pretrained, qmf_list, paths, cohort,
        os.path.join(lm_verify_out, "embedding_cache"), quiet,
    )
    _, lm = verify_stage(
        args, lm_pretrained, lm_verify_out, paths, cohort, quiet
    )
    print(f"    done in {time.time() - t:.0f} s; model in {lm_pretrained}")

    t = stage(8, STAGES, "MFCC mean+std cosine baseline on the same trials")
    from speechbrain_ext.scoring.baseline import score_baseline

    enrol, test = trials.resolve(paths["wav_dir"])
    resolved = type(trials)(
        labels=trials.labels,
        enrol=enrol,
        test=test,
        line_numbers=trials.line_numbers,
        source=trials.source,
    )
    base = score_baseline(resolved, DEMO_CONDITIONS)
    rows = []
    for cond in DEMO_CONDITIONS:
        rows += [
            (cond, "MR-RawNet, cosine", ours[cond]["cosine"]),
            (cond, "MR-RawNet, AS-norm", ours[cond]["as-norm"]),
            (cond, "MR-RawNet, AS-norm + QMF", ours[cond]["as-norm+qmf"]),
            (cond, "MR-RawNet LM, cosine", lm[cond]["cosine"]),
            (cond, "MR-RawNet LM, AS-norm", lm[cond]["as-norm"]),
            (cond, "MR-RawNet LM, AS-norm + QMF", lm[cond]["as-norm+qmf"]),
            (cond, "MFCC mean+std, cosine", base[cond].as_dict()),
        ]
    text = table(rows)
    calibrated = {c: ours[c]["calibrated"] for c in DEMO_CONDITIONS}
    text += "\n\n" + calibration_table(calibrated, calibration["info"])

    t = stage(9, STAGES, "ONNX export, checked against PyTorch")
    onnx_path = os.path.join(results, "mr_rawnet_demo.onnx")
    onnx_report = export_onnx_once(pretrained, onnx_path)
    print(
        f"    {onnx_path}: onnxruntime vs PyTorch cosine >= "
        f"{min(onnx_report['padded_min_cosine'], onnx_report['single_cosine']):.6f}"  # noqa: E501
        f" (padded batch and single utterance), "
        f"{onnx_report['state']} ({time.time() - t:.0f} s)"
    )
    wall = time.time() - start
    summary = {
        "conditions": DEMO_CONDITIONS,
        "mr_rawnet": ours,
        "mr_rawnet_lm": lm,
        "mr_rawnet_calibrated": calibrated,
        "calibration": calibration,
        "qmf": qmf,
        "mfcc_baseline": {c: base[c].as_dict() for c in DEMO_CONDITIONS},
        "onnx": onnx_report,
        "wall_seconds": wall,
    }
    with open(os.path.join(results, "demo_results.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    with open(os.path.join(results, "demo_results.md"), "w") as fh:
        fh.write(text + "\n")

    print("\nDemo results (synthetic test speakers, not VoxCeleb):\n")
    print(text)
    print(f"\nTotal wall time: {wall / 60:.1f} min")
    print("Outputs:")
    print(f"  corpus            {paths['root']}")
    print(f"  training run      {train_out} (train_log.txt)")
    print(f"  pretrained model  {pretrained}")
    print(f"  LM run and model  {lm_out}")
    print(f"  scores and plots  {verify_out} (LM: {lm_verify_out})")
    print(f"  QMF               {os.path.join(pretrained, 'qmf.json')}")
    print(f"  calibration       {os.path.join(pretrained, 'calibration.json')}")
    print(f"  ONNX model        {onnx_path}")
    det = os.path.join(verify_out, "plots", f"{list_name}_det.png")
    print(f"  DET curve         {det}")
    print(f"  this table        {os.path.join(results, 'demo_results.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
