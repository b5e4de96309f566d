"""One run at a time per output folder: a lock file with PID and host.

Two trainings on one output folder delete each other's checkpoints and
log every epoch twice; two verification runs on one embedding cache merge
and delete each other's shards. :class:`FolderLock` makes the second run
stop at once with a message naming the first (PID, host, start time,
command) and the lock file.

The lock is a file created with ``O_CREAT | O_EXCL`` (atomic, also on
NFS v3 and later) holding JSON: PID, host, the process start time (so a
recycled PID is not mistaken for the owner), the torchrun job ID and the
command line. It is removed on exit. A lock left by a process that died
(``kill -9``, a crash, a reboot) is stale and taken over with a warning
when that can be told: same host and the process is gone (or is another
process with the same PID), or the same torchrun job (``torchrun
--max-restarts`` restarts a job whose old rank 0 may have run on another
node). A lock held on another host cannot be checked from here: the
message says to delete the file if that run is over.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import json
import logging
import os
import socket
import sys
import time

logger = logging.getLogger(__name__)

#: Name of the lock file inside the locked folder.
LOCK_FILE = ".run.lock"


class FolderLockedError(RuntimeError):
    """Another live run holds the folder's lock.

    Arguments
    ---------
    message : str
        Who holds it, and what to do.

    Example
    -------
    >>> str(FolderLockedError("in use"))
    'in use'
    """


def _process_start(pid):
    """Start time of a process in clock ticks since boot (Linux), or None."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces and brackets.
    return text.rsplit(")", 1)[1].split()[19]


def _boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


def _alive(owner):
    """Whether the owner of a lock on this host still runs (best effort)."""
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if owner.get("boot_id") and owner.get("boot_id") != _boot_id():
        return False  # the machine was restarted since
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    started = owner.get("process_start")
    now = _process_start(pid)
    return not (started and now and started != now)


def _job_id():
    """torchrun's job ID (the same on every node and restart), or None."""
    job = os.environ.get("TORCHELASTIC_RUN_ID")
    return job if job and job != "none" else None


class FolderLock:
    """An exclusive lock on a folder for the life of one run.

    Arguments
    ---------
    folder : str or os.PathLike
        The folder (created if needed).
    what : str
        What the folder is, for messages (``"training output folder"``).
    setting : str or None
        The option a user changes to use another folder (for messages).

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> with FolderLock(folder, "output folder") as lock:
    ...     FolderLock(folder, "output folder").acquire()
    Traceback (most recent call last):
    ...
    speechbrain_ext.run_lock.FolderLockedError: The output folder ...
    >>> (folder / LOCK_FILE).exists()
    False
    """

    def __init__(self, folder, what="folder", setting=None):
        self.folder = os.path.abspath(os.fspath(folder))
        self.path = os.path.join(self.folder, LOCK_FILE)
        self.what = what
        self.setting = setting
        self.held = False

    def _record(self):
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "boot_id": _boot_id(),
            "process_start": _process_start(os.getpid()),
            "job_id": _job_id(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(sys.argv),
        }

    def _read_owner(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                owner = json.load(f)
            return owner if isinstance(owner, dict) else {}
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # being written right now, or garbage

    def _stale(self, owner):
        """Why the owner's lock is stale, or None when it may be live."""
        if _job_id() and owner.get("job_id") == _job_id():
            return "an earlier attempt of this torchrun job"
        if owner.get("host") == socket.gethostname() and not _alive(owner):
            return f"process {owner.get('pid')} is gone"
        return None

    def acquire(self):
        """Takes the lock, or raises if a live run holds it.

        Returns
        -------
        FolderLock
            ``self``.

        Raises
        ------
        FolderLockedError
            The folder is in use (the message names the owner).
        """
        os.makedirs(self.folder, exist_ok=True)
        record = json.dumps(self._record(), indent=1).encode()
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                owner = self._read_owner()
                if owner is None:
                    continue  # released meanwhile: try again
                if not owner:
                    time.sleep(0.2)  # perhaps half written: look again
                    owner = self._read_owner()
                    if owner is None:
                        continue
                reason = self._stale(owner) if owner else None
                if reason is None:
                    raise FolderLockedError(self._message(owner)) from None
                logger.warning(
                    "Taking over the stale lock %s (%s; it was taken %s by "
                    "PID %s on %s)", self.path, reason,
                    owner.get("started"), owner.get("pid"),
                    owner.get("host"),
                )
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "wb") as f:
                f.write(record)
            self.held = True
            return self
        raise FolderLockedError(
            f"Could not take the lock {self.path}: other runs keep taking it"
        )

    def _message(self, owner):
        host = owner.get("host", "?")
        here = host == socket.gethostname()
        where = "this machine" if here else f"host {host}"
        other = (
            f" Use another {self.setting} to run both." if self.setting else ""
        )
        check = (
            "" if here else
            " (It runs on another machine, so this one cannot tell whether "
            "it is still alive.)"
        )
        return (
            f"The {self.what} {self.folder} is in use by another run (PID "
            f"{owner.get('pid', '?')} on {where}, since "
            f"{owner.get('started', '?')}: {owner.get('command', '?')}). Wait "
            f"for it to finish or stop it.{other}{check} If that run is "
            f"over, delete {self.path}."
        )

    def release(self):
        """Removes the lock file if this process holds it.

        Returns
        -------
        None
        """
        if not self.held:
            return
        self.held = False
        owner = self._read_owner()
        if owner and owner.get("pid") == os.getpid():
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
