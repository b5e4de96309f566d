"""Random noise and RIR clips, read ahead in background threads.

:class:`ClipBank` hands the training augmentation
(:mod:`speechbrain_ext.augment.official`) its noise, music, babble and RIR
clips. The file and crop of every clip are drawn in the calling thread, so
the clips depend only on the seed; the reads themselves run ahead in a
thread pool, so the training loop rarely waits for the disk.

Fork safety. Training forks its DataLoader workers at the start of every
epoch while the bank may still be reading ahead. A child process inherits
every lock exactly as it was at the fork, and a read holds locks inside
the audio library (``soundfile`` serialises ``sf_open`` with one
module-level lock). A worker forked in the middle of such a read waits on
that lock forever, and so does the training loop. So every fork of the
process (``os.register_at_fork``) first waits for the reads in flight and
holds new ones back until the fork is done; a bank used in a forked child
reads in the calling thread, since the parent's pool threads do not exist
there.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import collections
import concurrent.futures
import csv
import logging
import math
import os
import threading

import numpy as np

from speechbrain_ext.data.audio_read import read_audio, read_checked_crop
from speechbrain_ext.generator_state import generator_state, restore_generator

logger = logging.getLogger(__name__)

#: Held while a read is submitted and while the process forks.
_fork_lock = threading.Lock()
#: Reads in flight in this process (futures; each removes itself when done).
_reads_in_flight = set()


def _before_fork():
    """Holds new reads back and waits for those in flight (at fork)."""
    _fork_lock.acquire()
    concurrent.futures.wait(list(_reads_in_flight))


def _after_fork_in_parent():
    """Lets reads start again once the child exists."""
    _fork_lock.release()


def _after_fork_in_child():
    """A fresh lock and no reads in the child (the threads stayed behind)."""
    global _fork_lock
    _fork_lock = threading.Lock()
    _reads_in_flight.clear()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)


def read_audio_csv(csv_file, replacements=None):
    """Reads the audio paths of a SpeechBrain noise/RIR CSV.

    Arguments
    ---------
    csv_file : str
        CSV with at least the columns ``ID`` and ``wav`` (the format of
        ``AddNoise``/``AddReverb`` and of
        :mod:`speechbrain_ext.augment.prepare`).
    replacements : dict or None
        ``$key`` placeholders in the paths are replaced by the values.

    Returns
    -------
    list of str
        The ``wav`` column, in file order.

    Raises
    ------
    FileNotFoundError
        If the CSV does not exist (the message names it).
    ValueError
        If it has no ``wav`` column or no rows.

    Example
    -------
    >>> path = getfixture("tmp_path") / "noise.csv"
    >>> _ = path.write_text("ID,duration,wav\\na,1.0,$root/a.wav\\n")
    >>> read_audio_csv(str(path), {"root": "/data"})
    ['/data/a.wav']
    """
    if not os.path.isfile(csv_file):
        raise FileNotFoundError(f"augmentation CSV {csv_file} does not exist")
    with open(csv_file, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "wav" not in reader.fieldnames:
            raise ValueError(f"{csv_file} has no 'wav' column")
        paths = [row["wav"] for row in reader]
    if not paths:
        raise ValueError(f"augmentation CSV {csv_file} lists no audio file")
    for key, value in (replacements or {}).items():
        paths = [p.replace(f"${key}", str(value)) for p in paths]
    return paths


class AugmentationFileError(RuntimeError):
    """A noise or RIR file cannot be used (names the file and its CSV).

    Arguments
    ---------
    path : str
        The audio file.
    message : str
        What is wrong, with the file and CSV named.

    Example
    -------
    >>> str(AugmentationFileError("a.wav", "cannot read a.wav"))
    'cannot read a.wav'
    """

    def __init__(self, path, message):
        super().__init__(message)
        self.path = path


class ClipBank:
    """Random audio clips from a CSV, read ahead in background threads.

    Each clip is a random crop of ``clip_samples`` samples of a file
    (files that are shorter are tiled), or a whole file when
    ``clip_samples`` is None (for RIRs). Files are visited in random
    permutations of the whole list, so consecutive clips (e.g. the babble
    files of one utterance) come from different files whenever the list
    is long enough, and every file is used equally. The file and crop
    position of
    every clip are drawn in the calling thread, so the sequence of clips
    depends only on the seed, never on thread timing. After every
    :meth:`take` the bank keeps about twice the recent demand in flight.

    A file that cannot be used (unreadable, empty, NaN/Inf samples, an
    all-zero RIR) is named in a warning, left out from then on and
    replaced by another file's clip; ``bad_files`` maps it to the reason.
    When more than ``max_bad_fraction`` of the list is bad (or all of it),
    :meth:`take` raises :class:`AugmentationFileError` naming the files.

    Arguments
    ---------
    csv_file : str
        Noise or RIR CSV (see :func:`read_audio_csv`).
    clip_samples : int or None
        Crop length; None reads whole files.
    rng : numpy.random.Generator or int or None
        Source of the random draws.
    executor : concurrent.futures.Executor or None
        Thread pool for read-ahead; None reads synchronously.
    replacements : dict or None
        ``$key`` placeholders in the CSV paths.
    max_samples : int or None
        Whole-file mode only: files are cut to this many samples.
    max_bad_fraction : float
        Share of the listed files that may turn out bad before the bank
        gives up (0: stop at the first bad file).

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> import soundfile as sf
    >>> sf.write(folder / "n.wav", np.ones(100, dtype="float32") / 2, 16000)
    >>> _ = (folder / "n.csv").write_text(f"ID,wav\\nn,{folder}/n.wav\\n")
    >>> bank = ClipBank(str(folder / "n.csv"), clip_samples=150, rng=0)
    >>> [c.shape for c in bank.take(2)]
    [(150,), (150,)]
    """

    def __init__(
        self,
        csv_file,
        clip_samples=None,
        rng=None,
        executor=None,
        replacements=None,
        max_samples=None,
        max_bad_fraction=0.05,
    ):
        self.csv_file = csv_file
        self.paths = read_audio_csv(csv_file, replacements)
        self.clip_samples = None if clip_samples is None else int(clip_samples)
        self.max_samples = max_samples
        self.max_bad_fraction = float(max_bad_fraction)
        self.bad_files = {}
        self.rng = (
            rng
            if isinstance(rng, np.random.Generator)
            else np.random.default_rng(rng)
        )
        self.executor = executor
        self._pid = os.getpid()  # the pool's threads live in this process
        self._pending = collections.deque()
        self._drawn = collections.deque()  # (path, seed) of each pending
        self._order = collections.deque()
        self._demand = 0.0

    def __getstate__(self):
        """Drops the thread pool and the read-ahead when pickled."""
        state = dict(self.__dict__)
        state["executor"] = None
        state["_pending"] = collections.deque()
        state["_drawn"] = collections.deque()
        return state

    def random_state(self):
        """Everything that decides the next clips, as JSON-able data.

        Returns
        -------
        dict
            The generator, the rest of the current file permutation, the
            clips drawn but not yet taken, the demand estimate and the
            files left out.
        """
        return {
            "rng": generator_state(self.rng),
            "order": list(self._order),
            "drawn": [list(d) for d in self._drawn],
            "demand": self._demand,
            "bad_files": dict(self.bad_files),
        }

    def set_random_state(self, state):
        """Restores :meth:`random_state`; the drawn clips are read again.

        Arguments
        ---------
        state : dict
            From :meth:`random_state`.

        Returns
        -------
        None
        """
        self.rng = restore_generator(state["rng"])
        self._order = collections.deque(int(i) for i in state["order"])
        self._demand = float(state["demand"])
        self.bad_files = dict(state["bad_files"])
        self._pending = collections.deque()
        self._drawn = collections.deque()
        for path, seed in state["drawn"]:
            self._start(path, int(seed))

    def _head(self, frames):
        """The frames of a whole-file read: the first ``max_samples``."""
        if self.max_samples is None:
            return 0, -1
        return 0, min(frames, self.max_samples)

    def _read(self, path, seed):
        """Reads one clip (runs in a worker thread)."""
        try:
            if self.clip_samples is not None:
                return read_checked_crop(
                    path, self.clip_samples, rng=seed, sample_rate=None
                )
            audio = read_audio(path, self._head)
            if not np.any(audio):
                raise ValueError("all samples are zero")
            return audio
        except Exception as err:  # noqa: BLE001 - re-raised with the path
            raise AugmentationFileError(
                path,
                f"cannot use augmentation file {path} (listed in "
                f"{self.csv_file}): {err}",
            ) from err

    def _submit(self):
        """Draws the next clip and starts (or runs) its read."""
        while True:
            if not self._order:
                self._order.extend(
                    self.rng.permutation(len(self.paths)).tolist()
                )
            path = self.paths[self._order.popleft()]
            if path not in self.bad_files:
                break
        seed = int(self.rng.integers(2**31))
        self._start(path, seed)

    def _start(self, path, seed):
        """Starts (or runs) the read of a drawn clip."""
        if self.executor is None or os.getpid() != self._pid:
            future = concurrent.futures.Future()
            try:
                future.set_result(self._read(path, seed))
            except AugmentationFileError as err:
                future.set_exception(err)
        else:
            with _fork_lock:  # no fork while a read is being started
                future = self.executor.submit(self._read, path, seed)
                _reads_in_flight.add(future)
            future.add_done_callback(_reads_in_flight.discard)
        self._pending.append(future)
        self._drawn.append((path, seed))

    def _drop(self, err):
        """Leaves a bad file out, or gives up when too many are bad."""
        if err.path in self.bad_files:
            return
        self.bad_files[err.path] = str(err)
        n_bad, n_files = len(self.bad_files), len(self.paths)
        if n_bad == n_files or n_bad > self.max_bad_fraction * n_files:
            names = sorted(self.bad_files)
            shown = ", ".join(names[:5]) + (" ..." if n_bad > 5 else "")
            raise AugmentationFileError(
                err.path,
                f"{n_bad} of the {n_files} files in {self.csv_file} cannot "
                f"be used (more than max_bad_fraction="
                f"{self.max_bad_fraction}): {shown}. Last error: {err}. "
                "Re-run the MUSAN/RIR preparation or fix the files.",
            ) from err
        logger.warning(
            "%s; left out from now on (%d of %d files in %s bad)",
            err,
            n_bad,
            n_files,
            self.csv_file,
        )

    def take(self, n):
        """Returns the next ``n`` clips and reads ahead for later calls.

        Arguments
        ---------
        n : int
            Number of clips.

        Returns
        -------
        list of numpy.ndarray
            Float32 mono clips.
        """
        clips = []
        while len(clips) < n:
            while len(self._pending) < n - len(clips):
                self._submit()
            self._drawn.popleft()
            try:
                clips.append(self._pending.popleft().result())
            except AugmentationFileError as err:
                self._drop(err)
        self._demand = 0.8 * self._demand + 0.2 * n if self._demand else n
        if self.executor is not None:
            while len(self._pending) < math.ceil(2 * self._demand):
                self._submit()
        return clips
