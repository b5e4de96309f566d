"""Embed every audio file of a folder or a list: one command, resumable.

Usage::

    python -m speechbrain_ext.embed <pretrained folder> <audio folder | list> \\
        <out folder> [--crop SECONDS] [--device cpu] [--onnx model.onnx]

Input: a folder (every ``.wav``, ``.flac``, ``.mp3`` and ``.ogg`` under it,
recursively) or a text file listing one audio path per line (relative to
the list's folder unless absolute; blank lines and ``#`` comments
skipped). Any sample rate (resampled to 16 kHz); channels are averaged.

Output, in ``<out folder>``:

* ``embeddings.npy``: float32 ``[N, D]``, one row per embedded file;
* ``keys.txt``: N lines, row ``i``'s file as a path relative to the input
  folder (or as written in the list);
* ``summary.json``: counts, the model, the view, and every skipped file
  with the reason;
* ``cache/``: the verification recipe's embedding cache
  (:class:`~speechbrain_ext.scoring.embedding_cache.EmbeddingCache`).

``.npy`` + ``keys.txt`` rather than ``.npz``: the matrix can be
memory-mapped (``np.load(path, mmap_mode="r")``) and the keys read by any
tool. Files are embedded in length-sorted padded batches (equal to
one-by-one results, the model being length-aware), with a progress bar;
the cache is flushed every few batches, so an interrupted run loses at most
the last batches and the same command resumes it. A file that cannot be
decoded, is empty, holds NaN/Inf or is shorter than 20 ms is named,
skipped and counted in the summary. ``--crop SECONDS`` embeds the centre
``SECONDS`` of each file (tiled when shorter), the short-duration
protocol; without it the whole file is used (trimmed to a multiple of 640
samples, as the verification recipe does).

Authors
 * MR-RawNet recipe contributors
"""

import argparse
import json
import logging
import os
import sys

import numpy as np
import soundfile as sf
import torch

from speechbrain_ext.atomic_files import atomic_write, atomic_write_text
from speechbrain_ext.scoring import (
    audio_files,
    batching,
    embedding_cache,
    extract,
    model_loading,
)
from speechbrain_ext.scoring.verify import MIN_SAMPLES
from speechbrain_ext.scoring.views import view_name

__all__ = [
    "AUDIO_EXTENSIONS",
    "embed_files",
    "list_audio",
    "load_embedder",
    "main",
]

logger = logging.getLogger(__name__)

#: Audio file name endings picked up in a folder (case-insensitive).
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")


def list_audio(source):
    """The audio files of a folder or a list file.

    Arguments
    ---------
    source : str
        A folder (searched recursively for :data:`AUDIO_EXTENSIONS`) or a
        text file with one path per line.

    Returns
    -------
    list of tuple
        ``(key, absolute path)``, in sorted key order for a folder and in
        file order (duplicates dropped) for a list.

    Example
    -------
    >>> root = str(getfixture("tmp_path"))
    >>> os.makedirs(os.path.join(root, "s1"))
    >>> for name in ("s1/b.flac", "a.WAV", "notes.txt"):
    ...     open(os.path.join(root, name), "w").close()
    >>> [k for k, _ in list_audio(root)]
    ['a.WAV', 's1/b.flac']
    """
    source = os.fspath(source)
    if os.path.isdir(source):
        root = os.path.abspath(source)
        items = []
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in files:
                if name.lower().endswith(AUDIO_EXTENSIONS):
                    path = os.path.join(folder, name)
                    items.append((os.path.relpath(path, root), path))
        return sorted(items)
    if not os.path.isfile(source):
        raise FileNotFoundError(f"{source} is neither a folder nor a list")
    base = os.path.dirname(os.path.abspath(source))
    items, seen = [], set()
    with open(source, encoding="utf-8") as f:
        for line in f:
            entry = line.strip()
            if not entry or entry.startswith("#") or entry in seen:
                continue
            seen.add(entry)
            path = entry if os.path.isabs(entry) else os.path.join(base, entry)
            items.append((entry, os.path.normpath(path)))
    return items


def _probe(path, sample_rate):
    """Length in samples at ``sample_rate`` from the header, or an error."""
    try:
        with sf.SoundFile(path) as f:
            frames, rate = f.frames, f.samplerate
    except Exception as err:  # noqa: BLE001 - reported as a skipped file
        return f"unreadable audio header: {err}"
    if frames <= 0:
        return "audio file holds no samples"
    return int(round(frames * sample_rate / rate))


def load_embedder(pretrained, device="cpu", batch_size=16,
                  max_batch_seconds=120.0, onnx=None, threads=None):
    """The batched embedder of a pretrained folder and its cache identity.

    Arguments
    ---------
    pretrained : str
        A pretrained folder (or a training output folder holding one).
    device : str
        Where the PyTorch model runs (ONNX models run on the CPU).
    batch_size : int
        Most files per forward pass.
    max_batch_seconds : float
        Most padded seconds of audio per forward pass.
    onnx : str or None
        An exported ``.onnx`` file to run with onnxruntime instead.
    threads : int or None
        onnxruntime threads.

    Returns
    -------
    embedder : BatchedEmbedder
        Runs the model on lists of waveforms.
    identity : dict
        ``folder``, ``checkpoint`` and ``config`` (the model description
        the cache key hashes; it names the ONNX file's digest if any).

    Example
    -------
    >>> from speechbrain_ext.lobes.mr_rawnet import MRRawNet
    >>> from speechbrain_ext.pretrained import write_pretrained_folder
    >>> kw = dict(sinc_filters=8, tcn_channels=8, tcn_hidden=6,
    ...           tcn_repeats=1, tcn_blocks=1, channels=8,
    ...           mra_depths=[1, 1, 1], aggregate_channels=8,
    ...           attention_channels=4, lin_neurons=4)
    >>> folder = write_pretrained_folder(str(getfixture("tmp_path")), kw,
    ...     MRRawNet(**kw).state_dict(), torch.randn(3, 4))
    >>> embedder, identity = load_embedder(folder)
    >>> embedder([torch.randn(4000), torch.randn(1000)]).shape
    (2, 4)
    """
    folder = model_loading.resolve_pretrained_folder(pretrained)
    model, checkpoint, config = model_loading.load_embedding_model(folder)
    if onnx is not None:
        from speechbrain_ext.onnx_runtime import OnnxEmbeddingModel
        from speechbrain_ext.pretrained import sha256_of

        if torch.device(device).type != "cpu":
            raise ValueError("ONNX models run on the CPU here: --device cpu")
        model = OnnxEmbeddingModel(onnx, threads=threads)
        config += f"\n# onnxruntime model sha256 {sha256_of(onnx)}\n"
    embedder = batching.BatchedEmbedder(
        model, device, batch_size, max_batch_seconds
    )
    return embedder, {
        "folder": folder, "checkpoint": checkpoint, "config": config,
    }


def embed_files(embedder, identity, paths, cache_root, crop=None,
                num_workers=2, progress=True):
    """Embeds files through the resumable cache, skipping unusable ones.

    Arguments
    ---------
    embedder : BatchedEmbedder
        From :func:`load_embedder`.
    identity : dict
        From :func:`load_embedder`.
    paths : sequence of str
        Audio files.
    cache_root : str
        Folder of the embedding cache.
    crop : int or None
        Centre-crop length in samples, or None for whole files.
    num_workers : int
        Threads decoding audio.
    progress : bool
        Show a progress bar.

    Returns
    -------
    embeddings : dict
        ``path -> float32 vector`` for every embedded file.
    skipped : dict
        ``path -> reason`` for every skipped file.
    """
    rate = embedder.sample_rate
    skipped, lengths, stamps = {}, {}, {}
    for path in dict.fromkeys(paths):
        try:
            st = os.stat(path)
        except OSError:
            skipped[path] = "file not found"
            continue
        probed = _probe(path, rate)
        if isinstance(probed, str):
            skipped[path] = probed
            continue
        lengths[path] = probed
        stamps[path] = (int(st.st_size), int(st.st_mtime_ns))
    views = {view_name(crop): crop}
    key = embedding_cache.cache_key(
        identity["checkpoint"], identity["config"], views, rate,
        embedder.precision,
    )
    cache = embedding_cache.EmbeddingCache(
        cache_root, key, info={"pretrained": identity["folder"],
                               "view": view_name(crop)},
    )

    def read(path):
        wav = audio_files.read_waveform(path, rate)
        if crop is None and wav.shape[0] < MIN_SAMPLES:
            raise audio_files.AudioFileError(
                f"audio file {path} is shorter than {MIN_SAMPLES} samples "
                f"at {rate} Hz ({wav.shape[0]})"
            )
        return wav

    failed = {}
    out = extract.extract_embeddings(
        embedder, cache, {p: [crop] for p in lengths}, lengths, stamps,
        flush_every_batches=5, num_workers=num_workers, progress=progress,
        read_fn=read, failed=failed,
    )
    skipped.update(failed)
    view = view_name(crop)
    return {p: out[(p, view)] for p in lengths if p not in failed}, skipped


def write_outputs(out_dir, keys, vectors, summary):
    """Writes ``embeddings.npy``, ``keys.txt`` and ``summary.json``.

    Arguments
    ---------
    out_dir : str
        Output folder.
    keys : list of str
        One key per row.
    vectors : numpy.ndarray
        ``[N, D]`` embeddings.
    summary : dict
        Run summary.

    Returns
    -------
    str
        Path of ``embeddings.npy``.

    Example
    -------
    >>> out = str(getfixture("tmp_path"))
    >>> _ = write_outputs(out, ["a.wav"], np.ones((1, 3)), {"n": 1})
    >>> np.load(os.path.join(out, "embeddings.npy")).dtype
    dtype('float32')
    """
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "embeddings.npy")
    matrix = np.asarray(vectors, dtype=np.float32)
    atomic_write(path, lambda f: np.save(f, matrix), binary=True)
    atomic_write_text(
        os.path.join(out_dir, "keys.txt"), "".join(f"{k}\n" for k in keys)
    )
    atomic_write_text(
        os.path.join(out_dir, "summary.json"),
        json.dumps(summary, indent=1) + "\n",
    )
    return path


def main(argv=None):
    """Command line; see the module docstring.

    Arguments
    ---------
    argv : list of str or None
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 when at least one file was embedded, 1 otherwise.
    """
    parser = argparse.ArgumentParser(
        description="Embed every audio file of a folder or list with a "
        "pretrained MR-RawNet (writes embeddings.npy + keys.txt)."
    )
    parser.add_argument("pretrained", help="pretrained folder")
    parser.add_argument("audio", help="audio folder or list file")
    parser.add_argument("out", help="output folder")
    parser.add_argument("--crop", type=float, default=None,
                        help="embed the centre SECONDS of each file")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--onnx", default=None,
                        help="run this exported .onnx with onnxruntime")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch / onnxruntime CPU threads")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_batch_seconds", type=float, default=120.0)
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--noprogressbar", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    crop = None
    if args.crop is not None:
        if args.crop <= 0:
            parser.error("--crop must be > 0 seconds")
        crop = int(round(args.crop * 16000))
    items = list_audio(args.audio)
    if not items:
        print(f"embed: no audio files in {args.audio}", file=sys.stderr)
        return 1
    embedder, identity = load_embedder(
        args.pretrained, args.device, args.batch_size,
        args.max_batch_seconds, args.onnx, args.threads,
    )
    vectors, skipped = embed_files(
        embedder, identity, [p for _, p in items],
        os.path.join(args.out, "cache"), crop, args.num_workers,
        not args.noprogressbar,
    )
    key_of = dict((p, k) for k, p in items)
    done = [(k, p) for k, p in items if p in vectors]
    dim = next(iter(vectors.values())).shape[0] if vectors else 0
    matrix = (
        np.stack([vectors[p] for _, p in done]) if done
        else np.zeros((0, dim), dtype=np.float32)
    )
    summary = {
        "pretrained": identity["folder"],
        "onnx": os.path.abspath(args.onnx) if args.onnx else None,
        "view": view_name(crop),
        "n_files": len(items),
        "n_embedded": len(done),
        "n_skipped": len(skipped),
        "embedding_dim": int(dim),
        "skipped": {key_of[p]: why for p, why in skipped.items()},
    }
    write_outputs(args.out, [k for k, _ in done], matrix, summary)
    for path, why in skipped.items():
        print(f"skipped {key_of[path]}: {why}", file=sys.stderr)
    print(
        f"embedded {len(done)} of {len(items)} files ({len(skipped)} "
        f"skipped) -> {os.path.join(args.out, 'embeddings.npy')} "
        f"[{len(done)} x {dim}] + keys.txt"
    )
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
