"""Draw a QMF calibration trial list from a training CSV.

Usage::

    python -m speechbrain_ext.scoring.qmf_trials <train.csv> <out list> \\
        [--n_trials 20000] [--seed 0] [--n_speakers K] \\
        [--audio_folder DIR] [--exclude <test list> ...]

Reads the CSV of the training data
(:mod:`speechbrain_ext.data.voxceleb_train`:
columns ``ID, duration, wav, spk_id``; ``wav`` absolute, or starting with
``$data_root``, replaced by ``--data_root``) and writes ``label enrol
test`` lines, the format the verification recipe and
``speechbrain_ext.fit_qmf`` read. Paths are written relative to
``--audio_folder`` (default: the deepest folder holding every file of the
CSV, the ``wav/`` folder of a VoxCeleb layout, so the paths are
``spk/session/utt.wav``); pass the same folder to ``fit_qmf
--audio_folder``.

Half the trials are targets (two different utterances of one speaker,
from two sessions when the speaker has more than one), half non-targets
(utterances of two different speakers); speakers are drawn uniformly, no
trial is drawn twice, and the same CSV and seed give the same list. The
command refuses, naming the list and a shared speaker, an ``--exclude``
trial list that shares speakers with the rows it would use. The list has
no duration mix of its own: ``fit_qmf`` scores it in every condition
(full-length enrolment against full and cropped test sides).

Authors
 * MR-RawNet recipe contributors
"""

import argparse
import csv
import os
import sys

import numpy as np
from tqdm import tqdm

from speechbrain_ext.atomic_files import atomic_write_text
from speechbrain_ext.scoring.qmf import QMFError, check_disjoint

__all__ = ["draw_trials", "main", "read_training_csv", "write_trials"]


def read_training_csv(path, data_root=None):
    """Utterances of a training CSV, grouped by speaker.

    Arguments
    ---------
    path : str
        CSV with ``wav`` and ``spk_id`` columns.
    data_root : str or None
        Replacement of ``$data_root`` in ``wav``.

    Returns
    -------
    dict
        ``spk_id -> sorted list of absolute wav paths`` (speakers sorted).

    Raises
    ------
    QMFError
        A missing column, a relative path, ``$data_root`` without
        ``data_root``, or an empty CSV (file and line named).

    Example
    -------
    >>> p = os.path.join(str(getfixture("tmp_path")), "train.csv")
    >>> _ = open(p, "w").write("ID,duration,wav,spk_id\\n"
    ...     "u2,1.0,/w/s1/a/2.wav,s1\\nu1,1.0,/w/s1/a/1.wav,s1\\n")
    >>> read_training_csv(p)
    {'s1': ['/w/s1/a/1.wav', '/w/s1/a/2.wav']}
    """
    speakers = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"wav", "spk_id"} - set(reader.fieldnames or [])
        if missing:
            raise QMFError(
                f"{path} has no {sorted(missing)} column(s) (columns: "
                f"{reader.fieldnames}); a training CSV of "
                "speechbrain_ext.data.prepare is expected"
            )
        for number, row in enumerate(reader, start=2):
            wav = row["wav"]
            if "$data_root" in wav:
                if data_root is None:
                    raise QMFError(
                        f"{path}:{number}: the wav path uses $data_root; "
                        "give --data_root"
                    )
                wav = wav.replace("$data_root", os.fspath(data_root))
            if not os.path.isabs(wav):
                raise QMFError(
                    f"{path}:{number}: wav path {wav!r} is not absolute"
                )
            speakers.setdefault(row["spk_id"], set()).add(
                os.path.normpath(wav))
    if not speakers:
        raise QMFError(f"{path} lists no utterances")
    return {s: sorted(speakers[s]) for s in sorted(speakers)}


def _session(path):
    """The session of a ``.../spk/session/utt.wav`` path."""
    return os.path.basename(os.path.dirname(path))


def _target_pairs(utts):
    """Target pairs of one speaker: cross-session when it has sessions."""
    per_session = {}
    for u in utts:
        per_session[_session(u)] = per_session.get(_session(u), 0) + 1
    n = len(utts)
    if len(per_session) < 2:
        return n * (n - 1) // 2
    return (n * n - sum(k * k for k in per_session.values())) // 2


def draw_trials(speakers, n_trials, seed=0, progress=False):
    """Draws balanced target and non-target trials.

    Arguments
    ---------
    speakers : dict
        ``spk -> list of utterance paths``, see :func:`read_training_csv`.
    n_trials : int
        Trials in all (even: half targets, half non-targets).
    seed : int
        Seed of the draw.
    progress : bool
        Show a progress bar.

    Returns
    -------
    list of tuple
        ``(label, enrol, test)``, labels alternating 1 and 0.

    Raises
    ------
    QMFError
        Too few speakers or utterances for the requested number of
        distinct trials.

    Example
    -------
    >>> spk = {"a": ["/w/a/s1/1.wav", "/w/a/s2/2.wav"],
    ...        "b": ["/w/b/s1/1.wav", "/w/b/s1/2.wav"]}
    >>> trials = draw_trials(spk, 4, seed=1)
    >>> [t[0] for t in trials], all(t[1] != t[2] for t in trials)
    ([1, 0, 1, 0], True)
    """
    n_trials = int(n_trials)
    if n_trials < 2 or n_trials % 2:
        raise QMFError(f"n_trials must be even and >= 2, got {n_trials}")
    half = n_trials // 2
    names = sorted(speakers)
    rich = [s for s in names if len(speakers[s]) >= 2]
    if not rich or len(names) < 2:
        raise QMFError(
            "a calibration list needs at least two speakers and one with "
            f"two utterances (got {len(names)} speaker(s), {len(rich)} with "
            "two or more utterances)"
        )
    n_target_pairs = sum(_target_pairs(speakers[s]) for s in rich)
    n_utts = sum(len(v) for v in speakers.values())
    n_non_pairs = (n_utts**2 - sum(len(v) ** 2 for v in speakers.values())
                   ) // 2
    if half > n_target_pairs or half > n_non_pairs:
        raise QMFError(
            f"{n_trials} trials need {half} distinct target and non-target "
            f"pairs; these utterances give {n_target_pairs} target and "
            f"{n_non_pairs} non-target pairs"
        )
    rng = np.random.default_rng(seed)
    seen, out = set(), []
    bar = tqdm(total=n_trials, desc="Drawing trials", unit="trial",
               disable=not progress)

    def target():
        utts = speakers[rich[rng.integers(len(rich))]]
        a = utts[rng.integers(len(utts))]
        others = [u for u in utts if _session(u) != _session(a)]
        others = others or [u for u in utts if u != a]
        return 1, a, others[rng.integers(len(others))]

    def non_target():
        i, j = rng.choice(len(names), 2, replace=False)
        a, b = speakers[names[i]], speakers[names[j]]
        return 0, a[rng.integers(len(a))], b[rng.integers(len(b))]

    # Rejection of repeats; the capacity check above bounds the draws.
    tries = 0
    for _ in range(half):
        for draw in (target, non_target):
            while True:
                tries += 1
                if tries > 200 * n_trials:
                    bar.close()
                    raise QMFError(
                        f"could not draw {n_trials} distinct trials (too "
                        "few utterances per speaker); ask for fewer"
                    )
                label, a, b = draw()
                pair = (min(a, b), max(a, b))
                if pair not in seen:
                    break
            seen.add(pair)
            if rng.random() < 0.5:
                a, b = b, a
            out.append((label, a, b))
            bar.update()
    bar.close()
    return out


def write_trials(trials, out, audio_folder):
    """Writes ``label enrol test`` lines, paths relative to ``audio_folder``.

    Arguments
    ---------
    trials : sequence of tuple
        ``(label, enrol, test)`` with absolute paths.
    out : str
        Output list (written atomically).
    audio_folder : str
        Root the written paths are relative to.

    Returns
    -------
    str
        ``out``.

    Raises
    ------
    QMFError
        A path outside ``audio_folder``.

    Example
    -------
    >>> out = os.path.join(str(getfixture("tmp_path")), "cal.txt")
    >>> _ = write_trials([(1, "/w/a/s/1.wav", "/w/a/t/2.wav")], out, "/w")
    >>> open(out).read()
    '1 a/s/1.wav a/t/2.wav\\n'
    """
    root = os.path.abspath(os.fspath(audio_folder))

    def rel(path):
        if os.path.commonpath([root, path]) != root:
            raise QMFError(
                f"{path} is outside the audio folder {root} (give "
                "--audio_folder, a folder holding every training file)"
            )
        return os.path.relpath(path, root).replace(os.sep, "/")

    lines = [f"{label} {rel(a)} {rel(b)}\n" for label, a, b in trials]
    return atomic_write_text(out, "".join(lines))


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
    >>> d = str(getfixture("tmp_path"))
    >>> csv_path = os.path.join(d, "train.csv")
    >>> _ = open(csv_path, "w").write("ID,duration,wav,spk_id\\n" + "".join(
    ...     f"u{s}{k},1.0,/w/{s}/v{k}/{k}.wav,{s}\\n"
    ...     for s in ("a", "b") for k in range(3)))
    >>> out = os.path.join(d, "cal.txt")
    >>> main([csv_path, out, "--n_trials", "4", "--noprogressbar"])
    ... # doctest: +ELLIPSIS
    /.../cal.txt: 4 trials (2 target) over 2 speakers; paths relative to /w ...
    0
    >>> len(open(out).readlines())
    4
    """
    parser = argparse.ArgumentParser(
        description="Draw a balanced calibration trial list (for "
        "speechbrain_ext.fit_qmf) from a training CSV."
    )
    parser.add_argument("train_csv", help="training CSV (wav, spk_id)")
    parser.add_argument("out", help="trial list to write")
    parser.add_argument("--n_trials", type=int, default=20000,
                        help="trials in all, half of them targets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n_speakers", type=int, default=None,
                        help="draw this many speakers first (default: all)")
    parser.add_argument("--audio_folder", default=None,
                        help="root of the written paths (default: the "
                        "deepest folder holding every CSV file)")
    parser.add_argument("--data_root", default=None,
                        help="replacement of $data_root in the CSV")
    parser.add_argument("--exclude", nargs="+", default=[],
                        help="trial lists whose speakers must not be used")
    parser.add_argument("--noprogressbar", action="store_true")
    args = parser.parse_args(argv)
    try:
        speakers = read_training_csv(args.train_csv, args.data_root)
        if args.n_speakers is not None:
            if not 2 <= args.n_speakers:
                parser.error("--n_speakers must be >= 2")
            names = sorted(speakers)
            if args.n_speakers < len(names):
                rng = np.random.default_rng([args.seed, 1])
                keep = rng.choice(len(names), args.n_speakers, replace=False)
                speakers = {names[i]: speakers[names[i]]
                            for i in sorted(keep)}
        check_disjoint(set(speakers), args.train_csv, args.exclude)
        files = [p for v in speakers.values() for p in v]
        folder = args.audio_folder or os.path.commonpath(
            [os.path.dirname(p) for p in files])
        trials = draw_trials(speakers, args.n_trials, args.seed,
                             not args.noprogressbar)
        write_trials(trials, args.out, folder)
    except QMFError as err:
        sys.exit(f"error: {err}")
    print(
        f"{args.out}: {len(trials)} trials ({len(trials) // 2} target) over "
        f"{len(speakers)} speakers; paths relative to {folder} (pass "
        f"--audio_folder {folder} to speechbrain_ext.fit_qmf)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
