"""Embedding-extraction throughput: batched vs batch size 1 (not a test).

Writes ``--utts`` random 16 kHz wav files with VoxCeleb-like durations
(log-normal, median 7 s, clipped to 4-20 s) to a temporary folder, builds
the full-size MR-RawNet (official configuration, random weights) and runs
the scoring recipe's extraction path (:func:`extract_embeddings`: file
reading in a thread, length-sorted padded batches, cache writes) once per
batch size, each time with an empty cache. Prints utterances per second,
the real-time factor (seconds of audio embedded, over all views, per second
of wall time) and the share of padded samples, and checks that the batched
embeddings equal the batch-size-1 ones.

Usage::

    .venv/bin/python tests/benchmarks/bench_extraction.py
    .venv/bin/python tests/benchmarks/bench_extraction.py --utts 16 \\
        --batch-sizes 1 8 --threads 2 --conditions full 2.04s

Timings on a shared machine are noisy; compare runs made together.

Authors
 * MR-RawNet recipe contributors
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
import torch

sys.path.insert(
    0, os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
)

from speechbrain_ext.lobes.mr_rawnet import MRRawNet  # noqa: E402
from speechbrain_ext.pretrained import OFFICIAL_MODEL_KWARGS  # noqa: E402
from speechbrain_ext.scoring.audio_files import file_stamps  # noqa: E402
from speechbrain_ext.scoring.batching import (  # noqa: E402
    BatchedEmbedder,
    plan_batches,
)
from speechbrain_ext.scoring.embedding_cache import EmbeddingCache  # noqa: E402
from speechbrain_ext.scoring.extract import extract_embeddings  # noqa: E402
from speechbrain_ext.scoring.views import condition_views  # noqa: E402

RATE = 16000


def voxceleb_like_durations(n, seed=0, low=4.0, high=20.0, median=7.0):
    """Log-normal utterance durations clipped to ``[low, high]`` seconds.

    Arguments
    ---------
    n : int
        Number of durations.
    seed : int
        Random seed.
    low : float
        Shortest duration.
    high : float
        Longest duration.
    median : float
        Median before clipping.

    Returns
    -------
    numpy.ndarray
        Durations in seconds.
    """
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(np.log(median), 0.45, n), low, high)


def write_corpus(folder, durations, seed=0):
    """Writes one random wav per duration; returns path -> samples.

    Arguments
    ---------
    folder : str
        Output folder.
    durations : sequence of float
        Seconds per file.
    seed : int
        Random seed.

    Returns
    -------
    dict
        ``path -> length in samples``.
    """
    rng = np.random.default_rng(seed)
    lengths = {}
    for i, dur in enumerate(durations):
        n = int(dur * RATE)
        path = os.path.join(folder, f"utt{i:04d}.wav")
        sf.write(path, 0.1 * rng.standard_normal(n), RATE, subtype="PCM_16")
        lengths[path] = n
    return lengths


def work(lengths, views, batch_size, max_batch_seconds):
    """Embedded and padded samples of one extraction.

    Crop views have one length, so only full-length batches are padded.

    Arguments
    ---------
    lengths : list of int
        Utterance lengths.
    views : list of int or None
        Crop lengths (None: full length).
    batch_size : int
        Batch size.
    max_batch_seconds : float or None
        Padded-seconds budget.

    Returns
    -------
    embedded : int
        Samples of real audio passed to the model.
    padded : int
        Samples of zero padding passed to the model.
    """
    embedded = padded = 0
    for view in views:
        if view is not None:
            embedded += view * len(lengths)
            continue
        for batch in plan_batches(lengths, batch_size, max_batch_seconds):
            longest = max(lengths[i] for i in batch)
            embedded += sum(lengths[i] for i in batch)
            padded += sum(longest - lengths[i] for i in batch)
    return embedded, padded


def main(argv=None):
    """Runs the benchmark and prints a table.

    Arguments
    ---------
    argv : list of str or None
        Command line.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utts", type=int, default=24)
    parser.add_argument("--batch-sizes", type=int, nargs="+",
                        default=[1, 8])
    parser.add_argument("--max-batch-seconds", type=float, default=160.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--conditions", nargs="+", default=["full"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = MRRawNet(**OFFICIAL_MODEL_KWARGS).eval()
    n_params = sum(p.numel() for p in model.parameters())
    views = list(condition_views(args.conditions).values())
    tmp = tempfile.mkdtemp(prefix="bench_extraction_")
    try:
        durations = voxceleb_like_durations(args.utts, args.seed)
        lengths = write_corpus(tmp, durations, args.seed)
        stamps = file_stamps(lengths)
        needs = {p: views for p in lengths}
        audio_s = sum(lengths.values()) / RATE
        print(
            f"MR-RawNet {n_params / 1e6:.2f} M params (random weights), "
            f"{args.threads} CPU threads, torch {torch.__version__}"
        )
        print(
            f"{args.utts} utterances, {audio_s:.1f} s of audio "
            f"(min {durations.min():.1f} s, median "
            f"{np.median(durations):.1f} s, max {durations.max():.1f} s); "
            f"views {args.conditions}; max {args.max_batch_seconds:g} "
            "padded s per batch"
        )
        # Warm-up (allocator, kernels) on a short input.
        with torch.inference_mode():
            model(torch.randn(2, 2 * RATE), torch.tensor([1.0, 0.6]))

        print(f"{'batch':>6} {'passes':>7} {'wall s':>8} {'utt/s':>7} "
              f"{'RTF x':>7} {'padding':>8} {'speed-up':>9}")
        results = {}
        for bs in args.batch_sizes:
            cache = EmbeddingCache(
                os.path.join(tmp, f"cache_bs{bs}"), f"{bs:016x}"
            )
            embedder = BatchedEmbedder(
                model, "cpu", bs, args.max_batch_seconds, RATE
            )
            start = time.perf_counter()
            emb = extract_embeddings(
                embedder, cache, needs, lengths, stamps,
                flush_every_batches=10**9, num_workers=1, progress=False,
            )
            wall = time.perf_counter() - start
            results[bs] = (wall, emb)
            base = results[args.batch_sizes[0]][0]
            embedded, pad = work(
                list(lengths.values()), views, bs, args.max_batch_seconds
            )
            print(
                f"{bs:>6} {embedder.forward_calls:>7} {wall:>8.1f} "
                f"{args.utts / wall:>7.2f} {embedded / RATE / wall:>7.1f} "
                f"{100 * pad / (embedded + pad):>7.1f}% {base / wall:>8.2f}x"
            )
        ref = results[args.batch_sizes[0]][1]
        for bs in args.batch_sizes[1:]:
            emb = results[bs][1]
            diff = max(float(np.abs(emb[k] - ref[k]).max()) for k in ref)
            cos = min(
                float(emb[k] @ ref[k])
                / float(np.linalg.norm(emb[k]) * np.linalg.norm(ref[k]))
                for k in ref
            )
            print(
                f"batch {bs} vs {args.batch_sizes[0]}: max |diff| "
                f"{diff:.2e}, min cosine {cos:.8f}"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
