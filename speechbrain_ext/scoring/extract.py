"""Batched embedding extraction with a resumable on-disk cache.

An utterance is embedded in one or more *views*: ``"full"`` (the whole
utterance) or ``"crop<N>"`` (its centre ``N`` samples, tiled when shorter,
see :func:`speechbrain_ext.scoring.trials.centre_crop`). All the views of
an utterance are computed from one decoded waveform, so each audio file is
read once per run.

Extraction is batched: utterances are sorted by length (longest first, so
an out-of-memory error shows up at once), grouped under a count and a
padded-seconds budget, zero-padded and passed with relative lengths to a
length-aware model. For MR-RawNet the padding does not change any
embedding, so batched and one-by-one extraction agree to rounding.

:class:`EmbeddingCache` keeps embeddings on disk in shards. A shard is
written to a temporary file and renamed, so it is either complete or
absent: a run killed with ``kill -9`` loses only the batches computed since
the last flush, and the next run resumes from there. The cache folder is
named after :func:`cache_key`, a hash of the checkpoint bytes, the model
configuration and the condition set, so a changed model never reads stale
embeddings. Each entry also records its audio file's size and modification
time; an entry whose file has changed since is recomputed. Temporary files
of a killed writer are deleted once they are an hour old. Two runs sharing
a cache folder would merge and delete each other's shards, so a cache
opened with ``lock=True`` (as the verification recipe does) holds a
:class:`~speechbrain_ext.run_lock.FolderLock` until :meth:`close`: a
second run stops with a message naming the first.

Authors
 * MR-RawNet recipe contributors
"""

import collections
import concurrent.futures
import glob
import hashlib
import itertools
import json
import logging
import os
import re
import time
import uuid

import numpy as np
import torch
from tqdm import tqdm

from speechbrain_ext.atomic_files import atomic_write
from speechbrain_ext.run_lock import FolderLock
from speechbrain_ext.scoring.trials import CONDITIONS, centre_crop

__all__ = [
    "CACHE_VERSION",
    "AudioFileError",
    "BatchedEmbedder",
    "EmbeddingCache",
    "cache_key",
    "condition_views",
    "extract_embeddings",
    "file_stamps",
    "load_embedding_model",
    "plan_batches",
    "read_waveform",
    "resolve_pretrained_folder",
    "view_name",
]

logger = logging.getLogger(__name__)

#: Bumped when the cache format or the meaning of its entries changes.
CACHE_VERSION = 2

#: How many offending files an error message lists.
MAX_LISTED = 10

_PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


class AudioFileError(RuntimeError):
    """Audio files are missing, unreadable or unusable; the message names them.

    Arguments
    ---------
    message : str
        What is wrong, with the file names.

    Example
    -------
    >>> str(AudioFileError("2 audio files are missing: a.wav, b.wav"))
    '2 audio files are missing: a.wav, b.wav'
    """


def _listing(items, limit=MAX_LISTED):
    """The first ``limit`` items, comma separated, then a count of the rest."""
    items = list(items)
    shown = ", ".join(str(x) for x in items[:limit])
    more = len(items) - limit
    return shown + (f", ... and {more} more" if more > 0 else "")


def view_name(n_samples):
    """Cache name of a view.

    Arguments
    ---------
    n_samples : int or None
        Centre-crop length in samples, or None for the full utterance.

    Returns
    -------
    str
        ``"full"`` or ``"crop<n_samples>"``.

    Example
    -------
    >>> view_name(None), view_name(16640)
    ('full', 'crop16640')
    """
    return "full" if n_samples is None else f"crop{int(n_samples)}"


def condition_views(conditions, sample_rate=16000):
    """Maps condition names to test-side crop lengths in samples.

    Names of :data:`~speechbrain_ext.scoring.trials.CONDITIONS` are used as
    defined there (at 16 kHz); any other name of the form ``"<seconds>s"``
    (e.g. ``"3s"``) is a centre crop of that duration.

    Arguments
    ---------
    conditions : sequence of str
        Condition names, e.g. ``["full", "1.04s"]``.
    sample_rate : int
        Sample rate of the model input.

    Returns
    -------
    dict
        ``name -> n_samples`` (None for ``"full"``), in the given order.

    Example
    -------
    >>> condition_views(["full", "1.04s", "3s"])
    {'full': None, '1.04s': 16640, '3s': 48000}
    """
    if isinstance(conditions, str):
        conditions = [conditions]
    out = {}
    for name in conditions:
        name = str(name)
        if name in out:
            raise ValueError(f"condition {name!r} is listed twice")
        if name in CONDITIONS and sample_rate == 16000:
            out[name] = CONDITIONS[name]
            continue
        match = re.fullmatch(r"(\d+(?:\.\d*)?)s", name)
        if name == "full":
            out[name] = None
        elif match and float(match.group(1)) > 0:
            out[name] = int(round(float(match.group(1)) * sample_rate))
        else:
            raise ValueError(
                f"unknown condition {name!r}: use 'full', one of "
                f"{sorted(CONDITIONS)} or '<seconds>s'"
            )
    if not out:
        raise ValueError("no conditions given")
    return out


def file_stamps(paths):
    """Size and modification time of every file; all missing ones listed.

    Arguments
    ---------
    paths : iterable of str
        Audio files.

    Returns
    -------
    dict
        ``path -> (size_bytes, mtime_ns)``.

    Raises
    ------
    AudioFileError
        If any file is missing (or not a regular file); the message gives
        the count and the first :data:`MAX_LISTED` paths.

    Example
    -------
    >>> import tempfile
    >>> path = tempfile.mkstemp()[1]
    >>> file_stamps([path])[path][0]
    0
    >>> file_stamps([path, "/no/such.wav"])
    Traceback (most recent call last):
    ...
    speechbrain_ext.scoring.extract.AudioFileError: 1 of 2 audio files ...
    """
    paths = list(dict.fromkeys(paths))
    stamps, missing = {}, []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            missing.append(path)
            continue
        if not os.path.isfile(path):
            missing.append(path)
            continue
        stamps[path] = (int(st.st_size), int(st.st_mtime_ns))
    if missing:
        raise AudioFileError(
            f"{len(missing)} of {len(paths)} audio files are missing: "
            f"{_listing(missing)}"
        )
    return stamps


def read_waveform(path, sample_rate=16000):
    """Decodes an audio file to a mono float32 waveform at ``sample_rate``.

    Channels are averaged; other sample rates are resampled with
    ``torchaudio.functional.resample``.

    Arguments
    ---------
    path : str
        Audio file.
    sample_rate : int
        Output sample rate.

    Returns
    -------
    torch.Tensor
        1-D float32 waveform.

    Raises
    ------
    AudioFileError
        If the file cannot be decoded, is empty or holds NaN/Inf; the
        message names the file.

    Example
    -------
    >>> import tempfile
    >>> import soundfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> soundfile.write(path, np.zeros((800, 2)), 8000)
    >>> read_waveform(path).shape
    torch.Size([1600])
    """
    from speechbrain.dataio import audio_io

    try:
        wav, rate = audio_io.load(path, channels_first=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file name
        raise AudioFileError(
            f"cannot decode audio file {path}: {err}"
        ) from err
    wav = wav.float().mean(dim=0)
    if wav.numel() == 0:
        raise AudioFileError(f"audio file {path} holds no samples")
    if not bool(torch.isfinite(wav).all()):
        raise AudioFileError(f"audio file {path} holds NaN or Inf samples")
    if rate != sample_rate:
        import torchaudio.functional

        wav = torchaudio.functional.resample(wav, rate, sample_rate)
    return wav.contiguous()


def plan_batches(lengths, batch_size, max_batch_seconds=None,
                 sample_rate=16000):
    """Groups items into batches, longest first.

    A batch holds at most ``batch_size`` items and, once padded to its
    longest item, at most ``max_batch_seconds`` of audio; an item longer
    than the budget gets a batch of its own.

    Arguments
    ---------
    lengths : sequence of int
        Length of each item in samples.
    batch_size : int
        Most items per batch (>= 1).
    max_batch_seconds : float or None
        Budget of padded audio per batch, or None for no budget.
    sample_rate : int
        Samples per second.

    Returns
    -------
    list of list of int
        Indices into ``lengths``; batches in decreasing length.

    Example
    -------
    >>> plan_batches([16000, 48000, 32000, 8000], batch_size=3)
    [[1, 2, 0], [3]]
    >>> plan_batches([16000, 48000, 32000, 8000], 4, max_batch_seconds=6)
    [[1, 2], [0, 3]]
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_batch_seconds is not None and max_batch_seconds <= 0:
        raise ValueError(
            f"max_batch_seconds must be > 0, got {max_batch_seconds}"
        )
    budget = (
        None if max_batch_seconds is None
        else float(max_batch_seconds) * sample_rate
    )
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches, current = [], []
    for i in order:
        if current:
            padded = (len(current) + 1) * lengths[current[0]]
            if len(current) >= batch_size or (
                budget is not None and padded > budget
            ):
                batches.append(current)
                current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class BatchedEmbedder:
    """Embeds lists of waveforms in padded, length-sorted batches.

    Arguments
    ---------
    model : torch.nn.Module
        ``forward(wavs [B, T], lengths [B]) -> [B, 1, D]`` (or ``[B, D]``),
        length-aware; put in eval mode here.
    device : str or torch.device
        Where the model runs (moved there).
    batch_size : int
        Most utterances per forward pass.
    max_batch_seconds : float or None
        Most padded seconds of audio per forward pass.
    sample_rate : int
        Sample rate of the waveforms.
    precision : str
        ``"fp32"``, ``"fp16"`` or ``"bf16"`` (autocast; fp16 needs CUDA).

    Example
    -------
    >>> class Sum(torch.nn.Module):
    ...     def forward(self, wavs, lengths):
    ...         return wavs.sum(dim=1)[:, None, None]
    >>> embedder = BatchedEmbedder(Sum(), batch_size=2)
    >>> embedder([torch.ones(3), torch.ones(5), torch.ones(1)]).ravel()
    array([3., 5., 1.], dtype=float32)
    """

    def __init__(self, model, device="cpu", batch_size=16,
                 max_batch_seconds=None, sample_rate=16000, precision="fp32"):
        if precision not in _PRECISIONS:
            raise ValueError(
                f"precision must be one of {sorted(_PRECISIONS)}, got "
                f"{precision!r}"
            )
        self.device = torch.device(device)
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError("fp16 inference needs a CUDA device")
        self.model = model.to(self.device).eval()
        self.batch_size = int(batch_size)
        self.max_batch_seconds = max_batch_seconds
        self.sample_rate = int(sample_rate)
        self.precision = precision
        self.forward_calls = 0

    def plan(self, lengths):
        """Batches of ``lengths`` under this embedder's limits.

        Arguments
        ---------
        lengths : sequence of int
            Item lengths in samples.

        Returns
        -------
        list of list of int
            See :func:`plan_batches`.
        """
        return plan_batches(
            lengths, self.batch_size, self.max_batch_seconds,
            self.sample_rate,
        )

    def _forward(self, wavs):
        """One padded forward pass; returns ``[B, D]`` float32 numpy."""
        lengths = [int(w.shape[0]) for w in wavs]
        longest = max(lengths)
        batch = torch.zeros(len(wavs), longest, dtype=torch.float32)
        for row, wav in enumerate(wavs):
            batch[row, : lengths[row]] = wav
        # float64 relative lengths: exact sample counts after rounding.
        rel = torch.tensor(lengths, dtype=torch.float64) / longest
        batch = batch.to(self.device, non_blocking=True)
        autocast = _PRECISIONS[self.precision]
        with torch.inference_mode(), torch.autocast(
            self.device.type, dtype=autocast, enabled=autocast is not None
        ):
            emb = self.model(batch, rel.to(self.device))
        self.forward_calls += 1
        emb = emb.reshape(len(wavs), -1).float().cpu().numpy()
        if not np.isfinite(emb).all():
            raise FloatingPointError(
                "the model returned non-finite embeddings"
            )
        return emb

    def __call__(self, wavs):
        """Embeds 1-D waveforms of any lengths.

        Arguments
        ---------
        wavs : sequence of torch.Tensor
            1-D float waveforms.

        Returns
        -------
        numpy.ndarray
            ``[len(wavs), D]`` float32 embeddings, in input order.
        """
        if not len(wavs):
            raise ValueError("no waveforms to embed")
        out = None
        for group in self.plan([int(w.shape[0]) for w in wavs]):
            emb = self._forward([wavs[i] for i in group])
            if out is None:
                out = np.empty((len(wavs), emb.shape[1]), dtype=np.float32)
            out[group] = emb
        return out


def cache_key(checkpoint, model_config, conditions, sample_rate=16000,
              precision="fp32"):
    """Hash naming the cache of one model, configuration and condition set.

    Arguments
    ---------
    checkpoint : str
        The embedding model's checkpoint file (its tensors are hashed, so
        saving the same weights again keeps the cache).
    model_config : str
        Text describing the model (e.g. the pretrained ``hyperparams.yaml``).
    conditions : Mapping
        ``condition name -> crop length`` (see :func:`condition_views`).
    sample_rate : int
        Model input rate.
    precision : str
        Inference precision.

    Returns
    -------
    str
        A hex SHA-256 digest.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "model.ckpt")
    >>> torch.save({"w": torch.ones(2)}, path)
    >>> a = cache_key(path, "cfg", {"full": None})
    >>> a == cache_key(path, "cfg", {"full": None})
    True
    >>> a == cache_key(path, "cfg", {"full": None, "1.04s": 16640})
    False
    """
    from speechbrain_ext.pretrained import state_digest

    description = {
        "cache_version": CACHE_VERSION,
        "checkpoint_state_sha256": state_digest(checkpoint),
        "model_config_sha256": hashlib.sha256(
            model_config.encode("utf-8")
        ).hexdigest(),
        "conditions": {str(k): v for k, v in dict(conditions).items()},
        "sample_rate": int(sample_rate),
        "precision": str(precision),
    }
    text = json.dumps(description, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Embeddings on disk, in atomically written shards.

    The cache lives in ``<root>/<key[:16]>/``: ``cache.json`` (the full key
    and a description) and ``shard-<n>-<id>.npz`` files with the arrays
    ``utts``, ``views``, ``stamps`` (file size and mtime) and ``emb``.
    Embeddings are added with :meth:`put`, kept in memory and written by
    :meth:`flush`; a shard is written to a temporary name and renamed, so
    readers never see a partial one. Later shards win over earlier ones.

    Arguments
    ---------
    root : str
        Folder holding the caches of all keys.
    key : str
        See :func:`cache_key`.
    info : dict or None
        JSON-serialisable description stored in ``cache.json``.
    lock : bool
        Hold the folder's lock (one run at a time) until :meth:`close`.

    Example
    -------
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> cache = EmbeddingCache(root, "ab" * 32)
    >>> cache.put("a.wav", "full", np.ones(3), stamp=(10, 1))
    >>> cache.get("a.wav", "full", stamp=(10, 1))
    array([1., 1., 1.], dtype=float32)
    >>> cache.flush() is not None
    True
    >>> again = EmbeddingCache(root, "ab" * 32)
    >>> len(again), again.get("a.wav", "full", stamp=(11, 1)) is None
    (1, True)
    """

    MANIFEST = "cache.json"

    def __init__(self, root, key, info=None, lock=False):
        if not re.fullmatch(r"[0-9a-f]{16,}", str(key)):
            raise ValueError(f"cache key must be lower-case hex, got {key!r}")
        self.key = str(key)
        self.folder = os.path.join(os.fspath(root), self.key[:16])
        os.makedirs(self.folder, exist_ok=True)
        self._lock = None
        if lock:
            self._lock = FolderLock(
                self.folder, "embedding cache", "--cache_folder"
            ).acquire()
        self._entries = {}
        self._pending = []
        self._manifest(info)
        self._remove_stale_temporaries()
        self._seq = 0
        for path in self.shards():
            self._load(path)

    def close(self):
        """Releases the folder's lock (if held); pending entries stay.

        Returns
        -------
        None
        """
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _remove_stale_temporaries(self, age_s=3600.0):
        """Deletes temporary files a killed writer left (over an hour old).

        Younger ones may belong to another run writing a shard right now.
        """
        now = time.time()
        for tmp in glob.glob(os.path.join(self.folder, "*.tmp")):
            try:
                if now - os.path.getmtime(tmp) > age_s:
                    os.remove(tmp)
            except OSError:
                pass

    def _manifest(self, info):
        """Checks or writes ``cache.json``."""
        path = os.path.join(self.folder, self.MANIFEST)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                stored = json.load(f)
            if stored.get("key") != self.key:
                raise RuntimeError(
                    f"embedding cache {self.folder} belongs to another key "
                    f"({stored.get('key')!r}); remove the folder"
                )
            return
        manifest = {
            "cache_version": CACHE_VERSION,
            "key": self.key,
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "info": info or {},
        }

        def save(f):
            f.write(json.dumps(manifest, indent=1, sort_keys=True).encode())

        atomic_write(path, save, binary=True, fsync=True)

    def shards(self):
        """Shard files on disk, oldest first.

        Returns
        -------
        list of str
            Paths of the complete shards.
        """
        paths = glob.glob(os.path.join(self.folder, "shard-*.npz"))
        return sorted(paths, key=_shard_number)

    def _load(self, path):
        """Reads one shard into memory (a bad shard is skipped)."""
        self._seq = max(self._seq, _shard_number(path) + 1)
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["key"]) != self.key:
                    raise ValueError("key mismatch")
                utts, views = data["utts"], data["views"]
                stamps, emb = data["stamps"], data["emb"]
        except Exception as err:  # noqa: BLE001 - the shard is recomputed
            logger.warning("Ignoring unreadable cache shard %s: %s", path, err)
            return
        for i in range(len(utts)):
            stamp = (int(stamps[i, 0]), int(stamps[i, 1]))
            self._entries[(str(utts[i]), str(views[i]))] = (stamp, emb[i])

    def __len__(self):
        """Number of embeddings held (flushed or not)."""
        return len(self._entries)

    def get(self, utt, view, stamp=None):
        """A cached embedding, or None.

        Arguments
        ---------
        utt : str
            Utterance (audio path).
        view : str
            View name (see :func:`view_name`).
        stamp : tuple or None
            ``(size, mtime_ns)`` of the file now; an entry stored with
            another stamp is stale and None is returned. None skips the
            check.

        Returns
        -------
        numpy.ndarray or None
            The float32 embedding.
        """
        entry = self._entries.get((utt, view))
        if entry is None or (stamp is not None and entry[0] != tuple(stamp)):
            return None
        return entry[1]

    def put(self, utt, view, vector, stamp=(0, 0)):
        """Adds an embedding (written by the next :meth:`flush`).

        Arguments
        ---------
        utt : str
            Utterance (audio path).
        view : str
            View name.
        vector : array-like
            The embedding (stored as float32).
        stamp : tuple
            ``(size, mtime_ns)`` of the audio file.
        """
        vector = np.asarray(vector, dtype=np.float32).ravel()
        stamp = (int(stamp[0]), int(stamp[1]))
        self._entries[(utt, view)] = (stamp, vector)
        self._pending.append((utt, view))

    def _write(self, keys):
        """Writes the given entries as a new shard; returns its path."""
        rows = [(k, self._entries[k]) for k in keys]
        name = f"shard-{self._seq:06d}-{uuid.uuid4().hex[:8]}.npz"
        self._seq += 1
        path = os.path.join(self.folder, name)
        arrays = {
            "key": np.asarray(self.key),
            "utts": np.asarray([k[0] for k, _ in rows], dtype=str),
            "views": np.asarray([k[1] for k, _ in rows], dtype=str),
            "stamps": np.asarray([s for _, (s, _) in rows], dtype=np.int64)
            .reshape(len(rows), 2),
            "emb": np.stack([v for _, (_, v) in rows]),
        }
        atomic_write(
            path, lambda f: np.savez(f, **arrays), binary=True, fsync=True
        )
        return path

    def flush(self):
        """Writes the pending embeddings as one new shard.

        Returns
        -------
        str or None
            The shard path, or None when nothing was pending.
        """
        if not self._pending:
            return None
        keys = list(dict.fromkeys(self._pending))
        path = self._write(keys)
        self._pending = []
        return path

    def compact(self):
        """Merges all shards into one (after a flush).

        The merged shard is written before the old ones are removed, so a
        crash in between only leaves duplicates.

        Returns
        -------
        int
            Number of shards replaced.
        """
        self.flush()
        old = self.shards()
        if len(old) <= 1 or not self._entries:
            return 0
        self._write(list(self._entries))
        for path in old:
            os.remove(path)
        return len(old)


def _shard_number(path):
    """The sequence number in a shard file name (-1 if none)."""
    match = re.match(r"shard-(\d+)-", os.path.basename(path))
    return int(match.group(1)) if match else -1


def _prefetch(groups, read_group, workers, ahead):
    """Yields ``read_group(g)`` for each group, read ahead in threads."""
    if workers <= 0:
        for group in groups:
            yield read_group(group)
        return
    pool = concurrent.futures.ThreadPoolExecutor(workers)
    try:
        it = iter(groups)
        pending = collections.deque(
            pool.submit(read_group, g) for g in itertools.islice(it, ahead)
        )
        while pending:
            result = pending.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(read_group, nxt))
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def extract_embeddings(
    embedder,
    cache,
    needs,
    lengths,
    stamps,
    flush_every_batches=20,
    flush_every_seconds=300.0,
    num_workers=2,
    progress=True,
    read_fn=None,
    failed=None,
):
    """Computes the missing views of every utterance, using the cache.

    The utterances with at least one missing view are sorted by length and
    grouped with the embedder's limits. For each group the files are read
    once (in background threads), the full-length views are embedded in
    one padded batch and each crop view in its own batches. The cache is
    flushed every ``flush_every_batches`` groups or ``flush_every_seconds``
    seconds, at the end, and also when an exception stops the loop.

    Arguments
    ---------
    embedder : BatchedEmbedder
        Runs the model.
    cache : EmbeddingCache
        Where embeddings are looked up and stored.
    needs : Mapping
        ``path -> iterable of crop lengths`` (None for the full view).
    lengths : Mapping
        ``path -> length in samples`` (at the model's rate), for batching.
    stamps : Mapping
        ``path -> (size, mtime_ns)``, see :func:`file_stamps`.
    flush_every_batches : int
        Groups between two flushes.
    flush_every_seconds : float
        Seconds between two flushes.
    num_workers : int
        Threads reading audio (0: read in the main thread).
    progress : bool
        Show a tqdm bar over utterances.
    read_fn : callable or None
        ``path -> 1-D waveform``; default :func:`read_waveform` at the
        embedder's rate.
    failed : dict or None
        None: an unreadable file (:class:`AudioFileError` from ``read_fn``)
        stops the run. A dict: the file is skipped and ``failed[path]``
        gets the error message.

    Returns
    -------
    dict
        ``(path, view name) -> float32 embedding`` for every requested view
        (skipped files left out).

    Example
    -------
    >>> import tempfile
    >>> class Sum(torch.nn.Module):
    ...     def forward(self, wavs, lengths):
    ...         return wavs.sum(dim=1)[:, None, None]
    >>> cache = EmbeddingCache(tempfile.mkdtemp(), "cd" * 32)
    >>> audio = {"a": torch.ones(4), "b": torch.arange(3.0)}
    >>> out = extract_embeddings(
    ...     BatchedEmbedder(Sum()), cache, {"a": [None, 2], "b": [None]},
    ...     {"a": 4, "b": 3}, {"a": (0, 0), "b": (0, 0)},
    ...     num_workers=0, progress=False, read_fn=audio.__getitem__)
    >>> {k: float(v[0]) for k, v in sorted(out.items())}
    {('a', 'crop2'): 2.0, ('a', 'full'): 4.0, ('b', 'full'): 3.0}
    """
    if read_fn is None:

        def read_fn(path):
            return read_waveform(path, embedder.sample_rate)

    todo = {}  # path -> crop lengths still missing
    for path, views in needs.items():
        missing = [
            v for v in dict.fromkeys(views)
            if cache.get(path, view_name(v), stamps[path]) is None
        ]
        if missing:
            todo[path] = missing
    paths = list(todo)
    groups = [
        [paths[i] for i in group]
        for group in embedder.plan([int(lengths[p]) for p in paths])
    ]
    logger.info(
        "Embeddings: %d utterances cached, %d to compute in %d batches",
        len(needs) - len(todo), len(todo), len(groups),
    )

    def read_one(path):
        try:
            return read_fn(path)
        except AudioFileError as err:
            if failed is None:
                raise
            failed[path] = str(err)
            return None

    def read_group(group):
        return [(p, w) for p in group if (w := read_one(p)) is not None]

    bar = tqdm(
        total=len(todo), desc="Embedding", unit="utt", disable=not progress,
        dynamic_ncols=True,
    )
    last_flush, since_flush = time.monotonic(), 0
    batches = _prefetch(groups, read_group, num_workers, 2)
    try:
        for group, batch in zip(groups, batches, strict=True):
            if batch:
                _embed_group(embedder, cache, batch, todo, stamps)
            bar.update(len(group))
            since_flush += 1
            if since_flush >= flush_every_batches or (
                time.monotonic() - last_flush >= flush_every_seconds
            ):
                cache.flush()
                last_flush, since_flush = time.monotonic(), 0
    finally:
        batches.close()  # stops the reader threads
        bar.close()
        cache.flush()
    out = {}
    for path, views in needs.items():
        if failed is not None and path in failed:
            continue
        for v in views:
            out[(path, view_name(v))] = cache.get(
                path, view_name(v), stamps[path]
            )
    return out


#: The official full-length protocol trims each file to a multiple of this.
FULL_LENGTH_MULTIPLE = 640


def full_length_view(wav):
    """The full-length test input: trimmed to a multiple of 640 samples.

    This is the official evaluation protocol; files shorter than 640
    samples are left as they are (the model then decides).

    Arguments
    ---------
    wav : torch.Tensor or numpy.ndarray
        Waveform ``[T]``.

    Returns
    -------
    torch.Tensor or numpy.ndarray
        ``wav[: len(wav) // 640 * 640]``.

    Example
    -------
    >>> full_length_view(torch.zeros(1300)).shape
    torch.Size([1280])
    """
    n = wav.shape[-1] // FULL_LENGTH_MULTIPLE * FULL_LENGTH_MULTIPLE
    return wav[..., :n] if n else wav


def _embed_group(embedder, cache, batch, todo, stamps):
    """Embeds every missing view of one group of decoded utterances."""
    by_view = collections.defaultdict(list)
    for path, wav in batch:
        for v in todo[path]:
            by_view[v].append((path, wav))
    # Full view first (None sorts before the crop lengths).
    for v in sorted(by_view, key=lambda x: -1 if x is None else x):
        items = by_view[v]
        wavs = [
            full_length_view(w) if v is None else centre_crop(w, v)
            for _, w in items
        ]
        try:
            emb = embedder(wavs)
        except ValueError as err:  # e.g. a file shorter than its header
            raise AudioFileError(
                f"cannot embed the {view_name(v)} view of "
                f"{_listing(p for p, _ in items)}: {err}"
            ) from err
        for (path, _), vector in zip(items, emb, strict=True):
            cache.put(path, view_name(v), vector, stamps[path])


def resolve_pretrained_folder(path):
    """Finds the pretrained folder of a model folder or a training output.

    Arguments
    ---------
    path : str
        A pretrained folder (``hyperparams.yaml`` and
        ``embedding_model.ckpt``) or a training output folder holding one
        in ``pretrained/``.

    Returns
    -------
    str
        Absolute path of the pretrained folder.

    Raises
    ------
    FileNotFoundError
        If neither layout is found; the message says what was looked for.

    Example
    -------
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(out, "pretrained"))
    >>> for name in ("hyperparams.yaml", "embedding_model.ckpt"):
    ...     open(os.path.join(out, "pretrained", name), "w").close()
    >>> resolve_pretrained_folder(out) == os.path.join(out, "pretrained")
    True
    """
    needed = ("hyperparams.yaml", "embedding_model.ckpt")
    path = os.path.abspath(os.fspath(path))
    for folder in (path, os.path.join(path, "pretrained")):
        if all(os.path.isfile(os.path.join(folder, n)) for n in needed):
            return folder
    if not os.path.isdir(path):
        raise FileNotFoundError(f"pretrained_path {path} does not exist")
    raise FileNotFoundError(
        f"pretrained_path {path} is neither a pretrained folder "
        f"({' + '.join(needed)}) nor a training output folder with "
        f"pretrained/{needed[0]} and pretrained/{needed[1]}"
    )


def load_embedding_model(folder):
    """Builds the embedding model of a pretrained folder and loads it strictly.

    ``hyperparams.yaml`` is HyperPyYAML, which can run code: load only
    folders you trust.

    Arguments
    ---------
    folder : str
        A pretrained folder (see :func:`resolve_pretrained_folder`).

    Returns
    -------
    model : torch.nn.Module
        The ``embedding_model``, weights loaded, in eval mode.
    checkpoint : str
        Path of ``embedding_model.ckpt``.
    config : str
        The text of ``hyperparams.yaml``.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ext.pretrained import write_pretrained_folder
    >>> from speechbrain_ext.lobes.mr_rawnet import MRRawNet
    >>> kw = dict(sinc_filters=8, tcn_channels=8, tcn_hidden=6,
    ...           tcn_repeats=1, tcn_blocks=1, channels=8,
    ...           mra_depths=[1, 1, 1], aggregate_channels=8,
    ...           attention_channels=4, lin_neurons=4)
    >>> folder = write_pretrained_folder(tempfile.mkdtemp(), kw,
    ...     MRRawNet(**kw).state_dict(), torch.randn(3, 4))
    >>> model, ckpt, config = load_embedding_model(folder)
    >>> type(model).__name__, os.path.basename(ckpt)
    ('MRRawNet', 'embedding_model.ckpt')
    """
    from hyperpyyaml import load_hyperpyyaml

    from speechbrain_ext.pretrained import strict_transfer

    config_path = os.path.join(folder, "hyperparams.yaml")
    checkpoint = os.path.join(folder, "embedding_model.ckpt")
    with open(config_path, encoding="utf-8") as f:
        config = f.read()
    hparams = load_hyperpyyaml(config)
    if "embedding_model" not in hparams:
        raise KeyError(f"{config_path} defines no embedding_model")
    model = strict_transfer(hparams["embedding_model"], checkpoint)
    return model.eval(), checkpoint, config
