"""Offline MUSAN and RIRS_NOISES preparation: folders to augmentation CSVs.

One call (:func:`prepare_augmentation`) or command for both corpora: MUSAN
is split into chunk files with one CSV per category
(:mod:`speechbrain_ext.augment.musan_prep`), RIRs are listed in place
(:mod:`speechbrain_ext.augment.rir_prep`).

Outputs (all with columns ``ID, duration, wav, wav_format, wav_opts``, see
:mod:`speechbrain_ext.augment.noise_csv`): ``noise.csv``, ``music.csv``,
``speech.csv`` and ``rirs.csv``. Nothing is ever downloaded. A fingerprint
JSON beside each CSV makes a rerun with the same inputs and options a
no-op, and any change a redo.

Command line::

    python -m speechbrain_ext.augment.prepare --musan_folder M \\
        --rirs_folder R --save_folder out

Authors
 * MR-RawNet recipe contributors
"""

import argparse
import json
import logging
import sys

from speechbrain_ext.augment.musan_prep import MUSAN_CATEGORIES, prepare_musan
from speechbrain_ext.augment.rir_prep import RIR_ROOMS, prepare_rirs


def prepare_augmentation(
    save_folder, musan_folder=None, rirs_folder=None, **kwargs
):
    """Prepares MUSAN and/or RIR CSVs in one call.

    Arguments
    ---------
    save_folder : str
        Output folder.
    musan_folder : str, optional
        MUSAN root (skipped when None).
    rirs_folder : str, optional
        RIRS_NOISES root (skipped when None).
    **kwargs
        ``categories``, ``rooms``, ``chunk_seconds``, ``hop_seconds``,
        ``workers`` and ``force``, passed on where they apply.

    Returns
    -------
    dict
        ``noise``/``music``/``speech``/``rirs`` to CSV path.

    Example
    -------
    >>> import os
    >>> import numpy as np, soundfile as sf
    >>> root = str(getfixture("tmp_path"))
    >>> out = str(getfixture("tmp_path_factory").mktemp("d"))
    >>> room = os.path.join(root, "simulated_rirs", "mediumroom", "Room001")
    >>> os.makedirs(room)
    >>> sf.write(os.path.join(room, "r.wav"), np.zeros(80), 16000)
    >>> sorted(prepare_augmentation(out, rirs_folder=root,
    ...                             rooms=["mediumroom"]))
    ['rirs']
    """
    if musan_folder is None and rirs_folder is None:
        raise ValueError("Give musan_folder and/or rirs_folder")
    common = {k: kwargs[k] for k in ("workers", "force") if k in kwargs}
    out = {}
    if musan_folder is not None:
        musan_kw = {
            k: kwargs[k]
            for k in ("categories", "chunk_seconds", "hop_seconds")
            if k in kwargs
        }
        out.update(
            prepare_musan(musan_folder, save_folder, **musan_kw, **common)
        )
    if rirs_folder is not None:
        rooms = {"rooms": kwargs["rooms"]} if "rooms" in kwargs else {}
        out["rirs"] = prepare_rirs(rirs_folder, save_folder, **rooms, **common)
    return out


def main(argv=None):
    """Command line entry point.

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
    >>> import os
    >>> import numpy as np, soundfile as sf
    >>> root = str(getfixture("tmp_path"))
    >>> room = os.path.join(root, "simulated_rirs", "smallroom", "Room001")
    >>> os.makedirs(room)
    >>> sf.write(os.path.join(room, "r.wav"), np.zeros(80), 16000)
    >>> main(["--rirs_folder", root, "--rooms", "smallroom",
    ...       "--save_folder", os.path.join(root, "out")])
    {"rirs": ...}
    0
    """
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_ext.augment.prepare",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument("--save_folder", required=True)
    parser.add_argument("--musan_folder", default=None)
    parser.add_argument("--rirs_folder", default=None)
    parser.add_argument("--categories", default=",".join(MUSAN_CATEGORIES))
    parser.add_argument("--rooms", default=",".join(RIR_ROOMS))
    parser.add_argument("--chunk_seconds", type=float, default=5.0)
    parser.add_argument("--hop_seconds", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    if args.musan_folder is None and args.rirs_folder is None:
        parser.error("give --musan_folder and/or --rirs_folder")
    out = prepare_augmentation(
        args.save_folder,
        musan_folder=args.musan_folder,
        rirs_folder=args.rirs_folder,
        categories=[c for c in args.categories.split(",") if c],
        rooms=[r for r in args.rooms.split(",") if r],
        chunk_seconds=args.chunk_seconds,
        hop_seconds=args.hop_seconds,
        workers=args.workers,
        force=args.force,
    )
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    sys.exit(main())
