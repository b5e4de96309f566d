"""The resumable on-disk embedding cache.

:class:`EmbeddingCache` keeps embeddings on disk in shards. A shard is
written to a temporary file and renamed, so it is either complete or
absent: a run killed with ``kill -9`` loses only the batches computed since
the last flush, and the next run resumes from there. The cache folder is
named after :func:`cache_key`, a hash of the checkpoint bytes, the model
configuration and the condition set, so a changed model never reads stale
embeddings. Each entry also records its audio file's size and modification
time (:func:`~speechbrain_ext.scoring.audio_files.file_stamps`); an entry
whose file has changed since is recomputed. Temporary files of a killed
writer are deleted once they are an hour old. Two runs sharing a cache
folder would merge and delete each other's shards, so a cache opened with
``lock=True`` (as the verification recipe does) holds a
:class:`~speechbrain_ext.run_lock.FolderLock` until :meth:`close`: a
second run stops with a message naming the first.

Authors
 * MR-RawNet recipe contributors
"""

import glob
import hashlib
import json
import logging
import os
import re
import time
import uuid

import numpy as np

from speechbrain_ext.atomic_files import atomic_write
from speechbrain_ext.run_lock import FolderLock

__all__ = [
    "CACHE_VERSION",
    "EmbeddingCache",
    "cache_key",
]

logger = logging.getLogger(__name__)


#: Bumped when the cache format or the meaning of its entries changes.
CACHE_VERSION = 2


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
    >>> import torch
    >>> path = os.path.join(str(getfixture("tmp_path")), "model.ckpt")
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
    >>> root = str(getfixture("tmp_path"))
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
