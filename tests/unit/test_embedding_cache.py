"""Tests for the embedding cache, batch planning and condition views."""

import json
import os

import numpy as np
import pytest
import torch

from speechbrain_ext.scoring.batching import BatchedEmbedder, plan_batches
from speechbrain_ext.scoring.embedding_cache import EmbeddingCache, cache_key
from speechbrain_ext.scoring.extract import extract_embeddings
from speechbrain_ext.scoring.views import condition_views, view_name

KEY = "0123456789abcdef" * 4


def test_put_flush_reload(tmp_path):
    cache = EmbeddingCache(tmp_path, KEY, info={"note": "x"})
    cache.put("a.wav", "full", [1.0, 2.0], stamp=(5, 7))
    cache.put("a.wav", "crop16640", [3.0, 4.0], stamp=(5, 7))
    assert cache.shards() == []  # nothing on disk before a flush
    shard = cache.flush()
    assert os.path.isfile(shard) and cache.shards() == [shard]
    assert cache.flush() is None  # nothing pending: no empty shard
    again = EmbeddingCache(tmp_path, KEY)
    assert len(again) == 2
    np.testing.assert_array_equal(
        again.get("a.wav", "crop16640", (5, 7)), [3.0, 4.0]
    )
    assert again.get("a.wav", "full", (5, 7)).dtype == np.float32
    manifest = json.loads(
        (tmp_path / KEY[:16] / "cache.json").read_text()
    )
    assert manifest["key"] == KEY and manifest["info"] == {"note": "x"}


def test_unflushed_entries_are_lost_and_stale_stamps_miss(tmp_path):
    cache = EmbeddingCache(tmp_path, KEY)
    cache.put("a.wav", "full", [1.0], stamp=(1, 1))
    cache.flush()
    cache.put("b.wav", "full", [2.0], stamp=(1, 1))  # never flushed
    again = EmbeddingCache(tmp_path, KEY)
    assert again.get("b.wav", "full") is None
    assert again.get("a.wav", "full", (1, 1)) is not None
    # The file changed (size or mtime): the entry is stale.
    assert again.get("a.wav", "full", (2, 1)) is None
    assert again.get("a.wav", "full", (1, 2)) is None


def test_later_shards_win_and_compact(tmp_path):
    cache = EmbeddingCache(tmp_path, KEY)
    cache.put("a.wav", "full", [1.0], stamp=(1, 1))
    cache.flush()
    cache.put("a.wav", "full", [9.0], stamp=(2, 2))
    cache.put("b.wav", "full", [3.0], stamp=(1, 1))
    cache.flush()
    assert len(cache.shards()) == 2
    assert EmbeddingCache(tmp_path, KEY).get("a.wav", "full")[0] == 9.0
    assert cache.compact() == 2
    assert len(cache.shards()) == 1
    again = EmbeddingCache(tmp_path, KEY)
    assert len(again) == 2
    assert again.get("a.wav", "full", (2, 2))[0] == 9.0
    assert again.compact() == 0


def test_leftover_temporary_and_broken_shards(tmp_path):
    cache = EmbeddingCache(tmp_path, KEY)
    cache.put("a.wav", "full", [1.0], stamp=(1, 1))
    cache.flush()
    folder = tmp_path / KEY[:16]
    # A writer killed mid-write leaves a .tmp file; a broken shard cannot
    # come from our writer (rename is atomic) but must not stop a run.
    old_tmp = folder / "shard-000007-deadbeef.npz.x1.tmp"
    old_tmp.write_bytes(b"partial")
    os.utime(old_tmp, (1, 1))
    # A young one may be another run's shard being written: kept.
    (folder / "shard-000008-feedf00d.npz.x2.tmp").write_bytes(b"busy")
    (folder / "shard-000003-cafecafe.npz").write_bytes(b"not a zip")
    again = EmbeddingCache(tmp_path, KEY)
    assert [p.name[:12] for p in folder.glob("*.tmp")] == ["shard-000008"]
    assert len(again) == 1
    again.put("b.wav", "full", [2.0])
    new = again.flush()
    assert os.path.basename(new).startswith("shard-000004-")


def test_shard_of_another_key_is_ignored(tmp_path):
    other = "f" * 16 + KEY[16:]
    cache = EmbeddingCache(tmp_path, other)
    cache.put("a.wav", "full", [1.0])
    shard = cache.flush()
    mine = EmbeddingCache(tmp_path, KEY)
    os.replace(shard, os.path.join(mine.folder, os.path.basename(shard)))
    assert len(EmbeddingCache(tmp_path, KEY)) == 0


def test_manifest_key_mismatch(tmp_path):
    EmbeddingCache(tmp_path, KEY)
    clash = KEY[:16] + "f" * 48  # same folder name, different key
    with pytest.raises(RuntimeError, match="belongs to another key"):
        EmbeddingCache(tmp_path, clash)
    with pytest.raises(ValueError, match="hex"):
        EmbeddingCache(tmp_path, "../../etc")


def test_cache_key_sensitivity(tmp_path):
    ckpt = tmp_path / "embedding_model.ckpt"
    torch.save({"w": torch.ones(3)}, ckpt)
    views = {"full": None, "1.04s": 16640}
    base = cache_key(str(ckpt), "cfg", views)
    assert base == cache_key(str(ckpt), "cfg", dict(views))
    assert base != cache_key(str(ckpt), "cfg2", views)
    assert base != cache_key(str(ckpt), "cfg", {"full": None})
    assert base != cache_key(str(ckpt), "cfg", views, precision="bf16")
    torch.save({"w": torch.ones(3) * 2}, ckpt)  # same shape, new bytes
    assert base != cache_key(str(ckpt), "cfg", views)


def test_plan_batches_limits():
    rng = np.random.default_rng(0)
    lengths = rng.integers(16000, 20 * 16000, size=200).tolist()
    batches = plan_batches(lengths, batch_size=7, max_batch_seconds=40)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(200))
    # Longest first, and every batch within both limits.
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    for batch in batches:
        padded = len(batch) * max(lengths[i] for i in batch)
        assert len(batch) <= 7
        assert padded <= 40 * 16000 or len(batch) == 1
    # One item over the budget still gets a batch of its own.
    assert plan_batches([10 * 16000, 100], 4, max_batch_seconds=1) == [
        [0],
        [1],
    ]
    with pytest.raises(ValueError, match="batch_size"):
        plan_batches([1], 0)


def test_condition_views():
    assert condition_views(["full", "1.04s", "2.04s", "5.04s"]) == {
        "full": None,
        "1.04s": 16640,
        "2.04s": 32640,
        "5.04s": 80640,
    }
    assert condition_views(["3s"], sample_rate=8000) == {"3s": 24000}
    assert view_name(condition_views(["1.04s"])["1.04s"]) == "crop16640"
    with pytest.raises(ValueError, match="unknown condition"):
        condition_views(["short"])
    with pytest.raises(ValueError, match="twice"):
        condition_views(["full", "full"])


class _Recorder(torch.nn.Module):
    """Returns ``[sum, valid length]`` and remembers every batch."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, wavs, lengths):
        self.calls.append((wavs.clone(), lengths.clone()))
        counts = torch.round(lengths * wavs.shape[1])
        return torch.stack([wavs.sum(dim=1), counts], dim=1)[:, None, :]


def test_extraction_reads_each_file_once_and_resumes(tmp_path):
    audio = {f"u{i}": torch.arange(1.0, 100 + 37 * i) for i in range(6)}
    reads = []

    def read(path):
        reads.append(path)
        return audio[path]

    needs = {p: [None, 50, 400] for p in audio}
    lengths = {p: len(w) for p, w in audio.items()}
    stamps = dict.fromkeys(audio, (1, 1))
    model = _Recorder()
    embedder = BatchedEmbedder(model, batch_size=4)
    cache = EmbeddingCache(tmp_path, KEY)
    out = extract_embeddings(
        embedder, cache, needs, lengths, stamps, num_workers=2,
        progress=False, read_fn=read,
    )
    assert sorted(reads) == sorted(audio)  # one read per file, 3 views
    for p, wav in audio.items():
        assert out[(p, "full")].tolist() == [wav.sum().item(), len(wav)]
        assert out[(p, "crop50")][1] == 50
    # Full views are padded with relative lengths; crops are not padded.
    crops = [c for c in model.calls if c[0].shape[1] in (50, 400)]
    assert len(crops) == 4 and all(bool((c[1] == 1).all()) for c in crops)
    assert any(bool((c[1] < 1).any()) for c in model.calls)
    assert all(len(c[1]) <= 4 for c in model.calls)
    # Everything is cached: a second run reads and computes nothing.
    reads.clear()
    model.calls.clear()
    again = extract_embeddings(
        embedder, EmbeddingCache(tmp_path, KEY), needs, lengths, stamps,
        num_workers=0, progress=False, read_fn=read,
    )
    assert reads == [] and model.calls == []
    assert all(np.array_equal(again[k], v) for k, v in out.items())
