"""Benchmark of VoxCeleb CSV preparation (not a pytest test).

Creates ``--files`` tiny wav files in the VoxCeleb layout in a temporary
folder, then times the folder scan, the parallel header reading, a full
preparation and a cached re-run, and prints the time per 10,000 files.

Usage::

    .venv/bin/python tests/benchmarks/bench_prepare.py --files 10000

Note: the files were just written, so they are in the page cache; on a cold
network file system header reads are slower (and more threads help).
"""

import argparse
import io
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

sys.path.insert(
    0, os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
)

from speechbrain_ext.data.audio_headers import (  # noqa: E402
    read_audio_headers,
)
from speechbrain_ext.data.voxceleb_layout import (  # noqa: E402
    scan_voxceleb_folder,
)
from speechbrain_ext.data.voxceleb_train import (  # noqa: E402
    prepare_voxceleb_train,
)


def make_tree(root, n_files, frames=1600, utts_per_session=5, sessions=4):
    """Writes ``n_files`` copies of one small wav in the VoxCeleb layout.

    Arguments
    ---------
    root : str
        Data folder (``wav/`` is created inside).
    n_files : int
        Number of files.
    frames : int
        Samples per file.
    utts_per_session : int
        Files per session folder.
    sessions : int
        Sessions per speaker.

    Returns
    -------
    int
        Number of files written.

    Example
    -------
    >>> make_tree(tempfile.mkdtemp(), 3)
    3
    """
    buf = io.BytesIO()
    noise = np.random.default_rng(0).standard_normal(frames) * 0.1
    sf.write(buf, noise, 16000, format="WAV", subtype="PCM_16")
    blob = buf.getvalue()
    per_spk = utts_per_session * sessions
    for i in range(n_files):
        spk, rest = divmod(i, per_spk)
        sess, utt = divmod(rest, utts_per_session)
        folder = os.path.join(root, "wav", f"id{spk:05d}", f"sess{sess:02d}")
        if utt == 0:
            os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{utt:05d}.wav"), "wb") as f:
            f.write(blob)
    return n_files


def main():
    """Runs the benchmark and prints the timings.

    Returns
    -------
    None

    Example
    -------
    >>> callable(main)
    True
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="bench_prepare_")
    try:
        data = os.path.join(tmp, "vox")
        t0 = time.perf_counter()
        make_tree(data, args.files)
        t_make = time.perf_counter() - t0

        t0 = time.perf_counter()
        entries = scan_voxceleb_folder(data)
        t_scan = time.perf_counter() - t0

        paths = [e[1] for e in entries]
        t0 = time.perf_counter()
        read_audio_headers(paths, workers=args.workers)
        t_headers = time.perf_counter() - t0

        t0 = time.perf_counter()
        for p in paths[: min(2000, len(paths))]:
            sf.info(p)
        t_info = (time.perf_counter() - t0) * len(paths) / min(2000, len(paths))

        save = os.path.join(tmp, "out")
        t0 = time.perf_counter()
        out = prepare_voxceleb_train(save, [data], workers=args.workers)
        t_full = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = prepare_voxceleb_train(save, [data], workers=args.workers)
        t_cached = time.perf_counter() - t0
        assert again["skipped"] and not out["skipped"]

        scale = 10000 / len(paths)
        print(f"files: {len(paths)}  workers: {args.workers}  "
              f"cpus: {os.cpu_count()}")
        rows = [
            ("create files", t_make),
            ("scan folder (scandir + stat)", t_scan),
            ("header reads (threads)", t_headers),
            ("header reads, serial sf.info", t_info),
            ("full preparation", t_full),
            ("cached re-run (scan + check)", t_cached),
        ]
        for name, secs in rows:
            print(f"{name:32s} {secs:7.2f} s   {secs * scale:7.2f} s/10k")
    finally:
        if args.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
