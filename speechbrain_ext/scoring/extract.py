"""The extraction loop: every missing view of every utterance, cached.

An utterance is embedded in one or more views
(:mod:`~speechbrain_ext.scoring.views`). All the views of an utterance are
computed from one decoded waveform, so each audio file is read once per
run. :func:`extract_embeddings` looks every view up in the
:class:`~speechbrain_ext.scoring.embedding_cache.EmbeddingCache`, reads
the files that miss one in background threads, in the length-sorted
groups of the :class:`~speechbrain_ext.scoring.batching.BatchedEmbedder`,
embeds the missing views and flushes the cache regularly, so a killed run
resumes from its last flush.

Authors
 * MR-RawNet recipe contributors
"""

import collections
import concurrent.futures
import itertools
import logging
import time

from tqdm import tqdm

from speechbrain_ext.scoring.audio_files import (
    AudioFileError,
    _listing,
    read_waveform,
)
from speechbrain_ext.scoring.views import (
    condition_crop,
    full_length_view,
    view_name,
)

__all__ = [
    "extract_embeddings",
]

logger = logging.getLogger(__name__)


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
    >>> import torch
    >>> from speechbrain_ext.scoring.batching import BatchedEmbedder
    >>> from speechbrain_ext.scoring.embedding_cache import EmbeddingCache
    >>> class Sum(torch.nn.Module):
    ...     def forward(self, wavs, lengths):
    ...         return wavs.sum(dim=1)[:, None, None]
    >>> cache = EmbeddingCache(str(getfixture("tmp_path")), "cd" * 32)
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
            full_length_view(w) if v is None else condition_crop(w, v)
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
