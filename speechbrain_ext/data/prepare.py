"""VoxCeleb data preparation: audio folders or official lists to CSV files.

The command line of data preparation; the work is done by

* :mod:`speechbrain_ext.data.convert_m4a`: VoxCeleb2 ``.m4a`` to 16 kHz
  mono ``.wav`` with the ``ffmpeg`` executable;
* :mod:`speechbrain_ext.data.voxceleb_train`: ``train.csv`` /
  ``valid.csv`` (``ID, duration, wav, spk_id``) and ``speakers.txt``;
* :mod:`speechbrain_ext.data.trial_csv`: the CSV of the unique utterances
  of trial lists (``ID, duration, wav``) for scoring.

Durations come from the audio file headers
(:mod:`speechbrain_ext.data.audio_headers`), and every output carries a
fingerprint (:mod:`speechbrain_ext.data.fingerprint`), so a rerun with
the same options and inputs does nothing::

    python -m speechbrain_ext.data.prepare convert-m4a SRC DST
    python -m speechbrain_ext.data.prepare train --data_folder A,B \\
        --save_folder out --trials t1.txt
    python -m speechbrain_ext.data.prepare trials --trials t1.txt \\
        --wav_root A --csv out/trials.csv

Authors
 * MR-RawNet recipe contributors
"""

import argparse
import json
import logging
import sys

from speechbrain_ext.data.convert_m4a import convert_m4a_to_wav
from speechbrain_ext.data.prep_common import option_list
from speechbrain_ext.data.trial_csv import prepare_trial_csv
from speechbrain_ext.data.voxceleb_train import prepare_voxceleb_train


def main(argv=None):
    """Command line entry point (``convert-m4a``, ``train``, ``trials``).

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
    >>> import os, tempfile, numpy, soundfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> root = tmp.name
    >>> os.makedirs(os.path.join(root, "wav", "id1", "s"))
    >>> for u in "12":
    ...     p = os.path.join(root, "wav", "id1", "s", u + ".wav")
    ...     soundfile.write(p, numpy.zeros(160), 16000)
    >>> main(["train", "--data_folder", root, "--save_folder",
    ...       os.path.join(root, "out"), "--valid_ratio", "0"])
    {...}
    0
    >>> tmp.cleanup()
    """
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_ext.data.prepare",
        description=__doc__.split("\n")[0],
    )
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert-m4a", help="VoxCeleb2 m4a to 16 kHz wav")
    conv.add_argument("src", help="folder holding aac/")
    conv.add_argument("dst", help="output folder (wav/ is created)")
    conv.add_argument("--workers", type=int, default=4)
    conv.add_argument("--ffmpeg", default=None)
    train = sub.add_parser("train", help="train.csv / valid.csv")
    train.add_argument("--data_folder", action="append", default=[])
    train.add_argument("--train_list", default=None)
    train.add_argument("--wav_root", default=None)
    train.add_argument("--save_folder", required=True)
    train.add_argument("--trials", action="append", default=[])
    train.add_argument("--valid_ratio", type=float, default=0.0)
    train.add_argument("--seed", type=int, default=1234)
    train.add_argument("--workers", type=int, default=8)
    train.add_argument("--force", action="store_true")
    train.add_argument("--max_bad_file_fraction", type=float, default=0.01)
    train.add_argument("--bad_file_min_files", type=int, default=500)
    trials = sub.add_parser("trials", help="enrol/test CSV of trial lists")
    trials.add_argument("--trials", action="append", required=True)
    trials.add_argument("--wav_root", required=True)
    trials.add_argument("--csv", required=True)
    trials.add_argument("--side", default="both")
    trials.add_argument("--workers", type=int, default=8)
    trials.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)

    def _split(values):
        return [v for value in values for v in option_list(value)]

    if args.command == "convert-m4a":
        counts = convert_m4a_to_wav(
            args.src, args.dst, workers=args.workers, ffmpeg=args.ffmpeg
        )
        print(json.dumps(counts))
    elif args.command == "train":
        out = prepare_voxceleb_train(
            args.save_folder,
            data_folders=_split(args.data_folder),
            trial_lists=_split(args.trials),
            train_list=args.train_list,
            wav_root=args.wav_root,
            valid_ratio=args.valid_ratio,
            seed=args.seed,
            workers=args.workers,
            force=args.force,
            max_bad_file_fraction=args.max_bad_file_fraction,
            bad_file_min_files=args.bad_file_min_files,
        )
        print(json.dumps(out["summary"], sort_keys=True))
    else:
        print(
            prepare_trial_csv(
                _split(args.trials),
                args.wav_root,
                args.csv,
                side=args.side,
                workers=args.workers,
                force=args.force,
            )
        )
    return 0


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    sys.exit(main())
