"""Tests of speechbrain_ext.run_lock (one run per folder, stale locks)."""

import json
import logging
import os
import socket
import subprocess
import sys

import pytest

from speechbrain_ext.run_lock import (
    LOCK_FILE,
    FolderLock,
    FolderLockedError,
    _process_start,
)
from speechbrain_ext.scoring.embedding_cache import EmbeddingCache


def plant(folder, **owner):
    """Writes a lock file as another run would have."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "host": socket.gethostname(),
        "started": "2026-01-01 00:00:00",
        "command": "train.py hparams.yaml",
        **owner,
    }
    (folder / LOCK_FILE).write_text(json.dumps(record))
    return record


@pytest.fixture
def other_process():
    """A live process that is not this one."""
    code = "import time; time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    yield proc
    proc.kill()
    proc.wait()


def test_second_run_is_refused_naming_the_first(tmp_path):
    with FolderLock(tmp_path, "training output folder", "--output_folder"):
        with pytest.raises(FolderLockedError) as err:
            FolderLock(tmp_path, "training output folder").acquire()
        text = str(err.value)
        assert text.startswith(
            f"The training output folder {tmp_path} is in use by another run "
            f"(PID {os.getpid()} on this machine, since "
        )
        assert " ".join(sys.argv) in text
        assert f"delete {tmp_path / LOCK_FILE}" in text
    assert not (tmp_path / LOCK_FILE).exists()  # released on exit
    FolderLock(tmp_path).acquire().release()


def test_live_process_of_another_run_keeps_its_lock(tmp_path, other_process):
    plant(tmp_path, pid=other_process.pid,
          process_start=_process_start(other_process.pid))
    with pytest.raises(FolderLockedError, match=f"PID {other_process.pid} "):
        FolderLock(tmp_path, "training output folder").acquire()
    assert (tmp_path / LOCK_FILE).exists()


def test_lock_of_a_dead_process_is_stale(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    plant(tmp_path, pid=dead.pid)
    with caplog.at_level(logging.WARNING):
        lock = FolderLock(tmp_path).acquire()
    assert f"process {dead.pid} is gone" in caplog.text
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    lock.release()


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="no /proc")
def test_recycled_pid_is_not_the_owner(tmp_path, other_process):
    # The PID is alive but belongs to a process started at another time.
    plant(tmp_path, pid=other_process.pid, process_start="1")
    FolderLock(tmp_path).acquire().release()


def test_lock_held_on_another_host_is_kept(tmp_path):
    plant(tmp_path, pid=1, host="node-b")
    with pytest.raises(FolderLockedError) as err:
        FolderLock(tmp_path, "training output folder").acquire()
    assert "on host node-b" in str(err.value)
    assert "cannot tell whether it is still alive" in str(err.value)


def test_earlier_attempt_of_the_same_torchrun_job_is_stale(
    tmp_path, monkeypatch
):
    # torchrun --max-restarts: rank 0 may now run on another node.
    plant(tmp_path, pid=1, host="node-b", job_id="job42")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job42")
    FolderLock(tmp_path).acquire().release()
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "another")
    plant(tmp_path, pid=1, host="node-b", job_id="job42")
    with pytest.raises(FolderLockedError):
        FolderLock(tmp_path).acquire()


def test_embedding_cache_lock(tmp_path):
    key = "ab" * 32
    with EmbeddingCache(tmp_path, key, lock=True) as cache:
        with pytest.raises(FolderLockedError, match="embedding cache"):
            EmbeddingCache(tmp_path, key, lock=True)
        # Readers that do not write (lock=False) are not stopped.
        EmbeddingCache(tmp_path, key)
        assert os.path.exists(os.path.join(cache.folder, LOCK_FILE))
    assert not os.path.exists(os.path.join(cache.folder, LOCK_FILE))
    EmbeddingCache(tmp_path, key, lock=True).close()
