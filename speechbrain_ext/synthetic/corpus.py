"""The synthetic corpus folder: paths, manifest, generation and CLI.

The layout mimics the real data sets (see :mod:`speechbrain_ext.synthetic`);
a run whose ``manifest.json`` matches the arguments and the generator
version does nothing, otherwise the generated sub-folders are replaced and
the manifest is written last.

Authors
 * MR-RawNet recipe contributors
"""

import argparse
import json
import logging
import os
import shutil
import time

from tqdm import tqdm

from speechbrain_ext.atomic_files import atomic_write_text
from speechbrain_ext.synthetic.dsp import SAMPLE_RATE, _write_wav
from speechbrain_ext.synthetic.seeding import _rng
from speechbrain_ext.synthetic.sounds import _write_noise_sets, _write_rirs
from speechbrain_ext.synthetic.speech import _apply_session, _utterance
from speechbrain_ext.synthetic.trials import make_trials
from speechbrain_ext.synthetic.voices import (
    session_ids,
    speaker_id,
    speaker_params,
)

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
TRIALS_NAME = "veri_test.txt"
MANIFEST_NAME = "manifest.json"
_OWNED = ("wav", "musan", "RIRS_NOISES", TRIALS_NAME)


def corpus_paths(out_dir):
    """Absolute paths of the parts of a corpus folder.

    Arguments
    ---------
    out_dir : str
        Corpus folder.

    Returns
    -------
    dict
        ``root``, ``wav_dir``, ``trials``, ``musan_dir``, ``rirs_dir``
        (the ``RIRS_NOISES`` root) and ``manifest``.

    Example
    -------
    >>> corpus_paths("/data/synth")["trials"]
    '/data/synth/veri_test.txt'
    """
    root = os.path.abspath(out_dir)
    return {
        "root": root,
        "wav_dir": os.path.join(root, "wav"),
        "trials": os.path.join(root, TRIALS_NAME),
        "musan_dir": os.path.join(root, "musan"),
        "rirs_dir": os.path.join(root, "RIRS_NOISES"),
        "manifest": os.path.join(root, MANIFEST_NAME),
    }


def _load_manifest(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def generate_corpus(
    out_dir,
    n_train_speakers=40,
    n_test_speakers=20,
    utts_per_speaker=12,
    sessions_per_speaker=3,
    seed=0,
    min_duration=1.5,
    max_duration=8.0,
    n_target_trials=None,
    n_noise=12,
    n_music=6,
    n_speech=6,
    n_rooms=3,
    rirs_per_room=4,
    progress=True,
):
    """Writes a synthetic VoxCeleb-like corpus with noise and RIR sets.

    Training speakers are ``id90001 ...``, test speakers follow them, and
    the trial list ``veri_test.txt`` covers test speakers only, with as many
    target as non-target trials. The MUSAN-like ``speech`` set uses further
    speakers that appear nowhere else. Nothing is done when
    ``manifest.json`` already records the same arguments and generator
    version; otherwise the generated sub-folders are replaced and the
    manifest is written last.

    Arguments
    ---------
    out_dir : str
        Output folder (created).
    n_train_speakers : int
        Training speakers.
    n_test_speakers : int
        Test speakers (at least 2).
    utts_per_speaker : int
        Utterances per speaker (at least 2).
    sessions_per_speaker : int
        Sessions per speaker; utterances go to sessions in turn.
    seed : int
        Seed of everything.
    min_duration : float
        Shortest utterance in seconds (approximate lower bound).
    max_duration : float
        Longest utterance in seconds (hard upper bound).
    n_target_trials : int, optional
        Target trials (default: all cross-session target pairs).
    n_noise : int
        Coloured-noise files (6 to 10 s each).
    n_music : int
        Synthetic music files.
    n_speech : int
        Speech files, each one extra speaker.
    n_rooms : int
        Rooms per room type (``smallroom``, ``mediumroom``).
    rirs_per_room : int
        Impulse responses per room.
    progress : bool
        Show a tqdm bar over utterances.

    Returns
    -------
    dict
        The manifest (``version``, ``args``, ``train_speakers``,
        ``test_speakers``, counts, ``total_duration_s``, ...) plus the
        absolute paths of :func:`corpus_paths` under ``paths`` and
        ``generated`` (False when the cache was used).

    Example
    -------
    >>> out = str(getfixture("tmp_path"))
    >>> info = generate_corpus(out, 1, 2, 2, seed=3, max_duration=2.0,
    ...     n_noise=1, n_music=1, n_speech=1, n_rooms=1, rirs_per_room=1,
    ...     progress=False)
    >>> info["train_speakers"], info["test_speakers"], info["n_trials"]
    (['id90001'], ['id90002', 'id90003'], 4)
    >>> generate_corpus(out, 1, 2, 2, seed=3, max_duration=2.0,
    ...     n_noise=1, n_music=1, n_speech=1, n_rooms=1, rirs_per_room=1,
    ...     progress=False)["generated"]
    False
    >>> shutil.rmtree(out)
    """
    args = {
        "n_train_speakers": int(n_train_speakers),
        "n_test_speakers": int(n_test_speakers),
        "utts_per_speaker": int(utts_per_speaker),
        "sessions_per_speaker": int(sessions_per_speaker),
        "seed": int(seed),
        "min_duration": float(min_duration),
        "max_duration": float(max_duration),
        "n_target_trials": (
            None if n_target_trials is None else int(n_target_trials)
        ),
        "n_noise": int(n_noise),
        "n_music": int(n_music),
        "n_speech": int(n_speech),
        "n_rooms": int(n_rooms),
        "rirs_per_room": int(rirs_per_room),
    }
    if args["n_test_speakers"] < 2 or args["utts_per_speaker"] < 2:
        raise ValueError("need n_test_speakers >= 2 and utts_per_speaker >= 2")
    if args["n_train_speakers"] < 0 or args["sessions_per_speaker"] < 1:
        raise ValueError("n_train_speakers >= 0, sessions_per_speaker >= 1")
    if not 0 < args["min_duration"] <= args["max_duration"]:
        raise ValueError("need 0 < min_duration <= max_duration")
    n_spk = args["n_train_speakers"] + args["n_test_speakers"]
    if n_spk + args["n_speech"] > 9999:
        raise ValueError("at most 9999 speakers in total")
    paths = corpus_paths(out_dir)
    old = _load_manifest(paths["manifest"])
    if (
        old is not None
        and old.get("version") == GENERATOR_VERSION
        and old.get("args") == args
        and all(os.path.exists(paths[k]) for k in ("wav_dir", "trials"))
    ):
        logger.info("Synthetic corpus in %s is up to date", paths["root"])
        return {**old, "paths": paths, "generated": False}

    start = time.time()
    os.makedirs(paths["root"], exist_ok=True)
    if os.path.exists(paths["manifest"]):
        os.remove(paths["manifest"])
    for name in _OWNED:
        target = os.path.join(paths["root"], name)
        if os.path.isdir(target):
            shutil.rmtree(target)
        elif os.path.exists(target):
            os.remove(target)

    pbar = tqdm(
        total=n_spk * args["utts_per_speaker"],
        desc="Synthesising utterances",
        unit="utt",
        disable=not progress,
    )
    speakers = {}
    test_utts = []
    total_samples = 0
    for k in range(n_spk):
        spk = speaker_id(k)
        params = speaker_params(seed, k)
        speakers[spk] = params
        sessions = session_ids(seed, k, args["sessions_per_speaker"])
        counters = dict.fromkeys(sessions, 0)
        for j in range(args["utts_per_speaker"]):
            sess_index = j % len(sessions)
            sess = sessions[sess_index]
            counters[sess] += 1
            rng = _rng(seed, "utterance", k, j)
            x, _ = _utterance(
                params, rng, args["min_duration"], args["max_duration"]
            )
            srng = _rng(seed, "channel", k, sess_index)
            session_seed = int(srng.integers(2**63))
            x = _apply_session(x, params, session_seed, rng)
            rel = f"{spk}/{sess}/{counters[sess]:05d}.wav"
            _write_wav(os.path.join(paths["wav_dir"], rel), x)
            total_samples += len(x)
            if k >= args["n_train_speakers"]:
                test_utts.append(rel)
            pbar.update(1)

    trials = make_trials(test_utts, args["n_target_trials"], seed)
    with open(paths["trials"], "w", encoding="ascii") as f:
        f.write("".join(f"{lab} {a} {b}\n" for lab, a, b in trials))
    pbar.close()
    n_noise_files = _write_noise_sets(
        paths["root"], seed, args["n_noise"], args["n_music"],
        args["n_speech"], n_spk,
    )
    n_rir_files = _write_rirs(
        paths["root"], seed, args["n_rooms"], args["rirs_per_room"]
    )
    ids = sorted(speakers)
    manifest = {
        "version": GENERATOR_VERSION,
        "args": args,
        "sample_rate": SAMPLE_RATE,
        "train_speakers": ids[: args["n_train_speakers"]],
        "test_speakers": ids[args["n_train_speakers"] :],
        "n_utterances": n_spk * args["utts_per_speaker"],
        "total_duration_s": round(total_samples / SAMPLE_RATE, 3),
        "n_trials": len(trials),
        "n_noise_files": n_noise_files,
        "n_rir_files": n_rir_files,
        "trials": TRIALS_NAME,
        "speakers": speakers,
        "license_note": "speech synthesised with espeak-ng (GPL-3.0)",
    }
    atomic_write_text(
        paths["manifest"], json.dumps(manifest, indent=1, sort_keys=True)
    )
    logger.info(
        "Synthetic corpus: %d utterances, %.0f s of audio in %.1f s",
        manifest["n_utterances"],
        manifest["total_duration_s"],
        time.time() - start,
    )
    return {**manifest, "paths": paths, "generated": True}


def main(argv=None):
    """Command line entry point (see the package docstring).

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.

    Example
    -------
    >>> out = str(getfixture("tmp_path"))
    >>> main([out, "--n_train_speakers", "0", "--n_test_speakers", "2",
    ...     "--utts_per_speaker", "2", "--max_duration", "2", "--n_noise",
    ...     "0", "--n_music", "0", "--n_speech", "0", "--n_rooms", "0",
    ...     "--quiet"])
    0
    >>> shutil.rmtree(out)
    """
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_ext.synthetic",
        description="Generate a synthetic VoxCeleb-like corpus (espeak-ng).",
    )
    parser.add_argument("out_dir")
    parser.add_argument("--n_train_speakers", type=int, default=40)
    parser.add_argument("--n_test_speakers", type=int, default=20)
    parser.add_argument("--utts_per_speaker", type=int, default=12)
    parser.add_argument("--sessions_per_speaker", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min_duration", type=float, default=1.5)
    parser.add_argument("--max_duration", type=float, default=8.0)
    parser.add_argument("--n_target_trials", type=int, default=None)
    parser.add_argument("--n_noise", type=int, default=12)
    parser.add_argument("--n_music", type=int, default=6)
    parser.add_argument("--n_speech", type=int, default=6)
    parser.add_argument("--n_rooms", type=int, default=3)
    parser.add_argument("--rirs_per_room", type=int, default=4)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    opts = vars(parser.parse_args(argv))
    quiet = opts.pop("quiet")
    start = time.time()
    info = generate_corpus(progress=not quiet, **opts)
    if not quiet:
        summary = {
            k: info[k]
            for k in (
                "n_utterances", "total_duration_s", "n_trials", "generated"
            )
        }
        summary["seconds"] = round(time.time() - start, 1)
        summary.update(info["paths"])
        print(json.dumps(summary, indent=1))
    return 0
