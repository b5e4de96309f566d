"""Training data that survives bad audio files and untrusted CSV paths.

Data preparation reads only the audio headers, and files can go bad after
it (bit rot, an interrupted copy, a header that lies). A bad file must not
cost a user a multi-day run, and a flood of them must not go unnoticed:

* the items' audio is read with
  :func:`~speechbrain_ext.data.audio_read.read_checked_crop`, which raises
  :class:`~speechbrain_ext.data.audio_read.BadAudioError` (naming the file
  and the reason) for a file that cannot be used;
* :class:`SkipBadFiles` wraps a dataset: an item whose file is bad is
  replaced by another utterance of the same speaker (so labels stay right,
  batches keep their size and their speakers stay distinct); when the
  speaker has no good file left to try, the item is marked unusable and
  :class:`FaultTolerantCollate` drops it from the batch;
* every item carries the bad files it met and how many files it read, so
  the counts reach the training process from DataLoader workers;
  :class:`BadFileTracker` keeps the epoch's counts there, warns once per
  file and epoch, and stops the run (:class:`TooManyBadFilesError`) when
  more than a given fraction of the files read are bad;
* :func:`resolve_csv_paths` refuses CSV rows whose audio path leaves the
  data folder(s) (``..`` escapes, absolute paths elsewhere).

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import os

import torch
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.utils.logger import get_logger

from speechbrain_ext.data.audio_read import BadAudioError
from speechbrain_ext.data.paths import resolve_path

logger = get_logger(__name__)

#: Keys added to every item by :class:`SkipBadFiles`.
BAD_FILES_KEY = "bad_files"
FILES_READ_KEY = "files_read"
UNUSABLE_KEY = "unusable"
_FAULT_KEYS = (BAD_FILES_KEY, FILES_READ_KEY, UNUSABLE_KEY)


class TooManyBadFilesError(RuntimeError):
    """More than the allowed fraction of an epoch's files were bad.

    Arguments
    ---------
    message : str
        The explanation (count, fraction, some of the files).

    Example
    -------
    >>> str(TooManyBadFilesError("3 of 10 files bad"))
    '3 of 10 files bad'
    """


class SkipBadFiles(torch.utils.data.Dataset):
    """Dataset wrapper that replaces items whose audio file is bad.

    ``dataset[i]`` must raise :class:`BadAudioError` for a bad file. The
    item is then replaced by another item of the same group (speaker),
    tried in a fixed order (the group's next items after ``i``, wrapping
    around), at most ``max_tries`` of them; the returned item keeps the
    replacement's own fields (its ``id``, audio and label). When none of
    them is good, a placeholder marked ``unusable`` is returned (dropped
    by :class:`FaultTolerantCollate`). Every item gains ``bad_files`` (the
    ``"path: reason"`` of the bad files met) and ``files_read`` (files
    tried).

    Arguments
    ---------
    dataset : torch.utils.data.Dataset
        Map-style dataset of dicts.
    groups : sequence or None
        Group (speaker) of every index; None: no replacement.
    max_tries : int
        Replacements tried per bad item.
    skip : bool
        False: re-raise :class:`BadAudioError` (fail on the first bad
        file).

    Example
    -------
    >>> class Files(torch.utils.data.Dataset):
    ...     def __len__(self):
    ...         return 3
    ...     def __getitem__(self, i):
    ...         if i == 0:
    ...             raise BadAudioError(f"f{i}.wav", "unreadable")
    ...         return {"id": f"u{i}"}
    >>> data = SkipBadFiles(Files(), groups=["a", "b", "a"])
    >>> item = data[0]
    >>> item["id"], item["bad_files"], item["files_read"]
    ('u2', ['f0.wav: unreadable'], 2)
    >>> data[1]["bad_files"]
    []
    """

    def __init__(self, dataset, groups=None, max_tries=5, skip=True):
        self.dataset = dataset
        self.max_tries = int(max_tries)
        self.skip = bool(skip)
        self._members = None
        self._position = None
        if groups is not None:
            groups = list(groups)
            if len(groups) != len(dataset):
                raise ValueError(
                    f"{len(groups)} groups for {len(dataset)} items"
                )
            members = {}
            for index, group in enumerate(groups):
                members.setdefault(group, []).append(index)
            self._members = [members[g] for g in groups]
            self._position = [0] * len(groups)
            for indices in members.values():
                for pos, index in enumerate(indices):
                    self._position[index] = pos

    def __len__(self):
        return len(self.dataset)

    def candidates(self, index):
        """Indices tried for ``index``: itself, then its replacements.

        Arguments
        ---------
        index : int
            Dataset index.

        Returns
        -------
        list of int
            ``index`` then up to ``max_tries`` indices of its group.
        """
        if self._members is None or self.max_tries <= 0:
            return [index]
        members = self._members[index]
        pos = self._position[index]
        others = members[pos + 1 :] + members[:pos]
        return [index] + others[: self.max_tries]

    def __getitem__(self, index):
        bad = []
        for candidate in self.candidates(index):
            try:
                item = self.dataset[candidate]
            except BadAudioError as err:
                if not self.skip:
                    raise
                bad.append(str(err))
                continue
            item = dict(item)
            item[BAD_FILES_KEY] = bad
            item[FILES_READ_KEY] = len(bad) + 1
            return item
        return {
            BAD_FILES_KEY: bad,
            FILES_READ_KEY: len(bad),
            UNUSABLE_KEY: True,
        }


class EmptyBatch:
    """What :class:`FaultTolerantCollate` returns when no item is usable.

    Arguments
    ---------
    bad_files : list of str
        The bad files met.
    files_read : int
        Files tried.
    dropped : int
        Items dropped.

    Example
    -------
    >>> batch = EmptyBatch(["a.wav: unreadable"], 1, dropped=1)
    >>> len(batch), batch.to("cpu") is batch
    (0, True)
    """

    def __init__(self, bad_files, files_read, dropped=0):
        self.bad_files = bad_files
        self.files_read = files_read
        self.dropped = dropped

    def __len__(self):
        return 0

    def to(self, *args, **kwargs):
        """Returns itself (nothing to move).

        Arguments
        ---------
        *args
            Ignored.
        **kwargs
            Ignored.

        Returns
        -------
        EmptyBatch
            ``self``.
        """
        return self

    def pin_memory(self):
        """Returns itself (nothing to pin).

        Returns
        -------
        EmptyBatch
            ``self``.
        """
        return self


class FaultTolerantCollate:
    """``PaddedBatch`` of the usable items, with the bad-file counts.

    Items marked unusable by :class:`SkipBadFiles` are dropped. The batch
    gets three attributes: ``bad_files`` (all the ``"path: reason"`` of
    the items), ``files_read`` (their sum) and ``dropped`` (items
    dropped). With no usable item an :class:`EmptyBatch` is returned.

    Arguments
    ---------
    **padded_kwargs
        Passed to ``PaddedBatch``.

    Example
    -------
    >>> collate = FaultTolerantCollate()
    >>> batch = collate([
    ...     {"x": torch.ones(2), "bad_files": [], "files_read": 1},
    ...     {"bad_files": ["b.wav: unreadable"], "files_read": 1,
    ...      "unusable": True},
    ... ])
    >>> len(batch), batch.dropped, batch.files_read, batch.bad_files
    (1, 1, 2, ['b.wav: unreadable'])
    """

    def __init__(self, **padded_kwargs):
        self.padded_kwargs = padded_kwargs

    def __call__(self, items):
        bad = [b for item in items for b in item.get(BAD_FILES_KEY, ())]
        files = sum(int(item.get(FILES_READ_KEY, 1)) for item in items)
        usable = [
            {k: v for k, v in item.items() if k not in _FAULT_KEYS}
            for item in items
            if not item.get(UNUSABLE_KEY, False)
        ]
        if not usable:
            return EmptyBatch(bad, files, dropped=len(items))
        batch = PaddedBatch(usable, **self.padded_kwargs)
        batch.bad_files = bad
        batch.files_read = files
        batch.dropped = len(items) - len(usable)
        return batch


class BadFileTracker:
    """Counts an epoch's bad files, warns, and stops when there are many.

    The run stops when the bad files exceed ``max_fraction`` of the files
    read so far in the epoch, the count of files read being taken as at
    least ``min_files`` (so that one bad file in the first batch does not
    stop a run).

    Arguments
    ---------
    max_fraction : float
        Largest tolerated fraction of bad files (1.0: never stop).
    min_files : int
        Smallest denominator of the fraction.
    what : str
        Name of the data in messages (e.g. ``"training"``).

    Example
    -------
    >>> tracker = BadFileTracker(max_fraction=0.1, min_files=10)
    >>> tracker.update(["a.wav: unreadable"], files_read=4)
    >>> tracker.bad, tracker.files
    (1, 4)
    >>> tracker.update(["b.wav: unreadable"], files_read=4)
    Traceback (most recent call last):
    ...
    speechbrain_ext.data.safe_audio.TooManyBadFilesError: 2 of the 8 ...
    """

    def __init__(self, max_fraction=0.01, min_files=500, what="training"):
        self.max_fraction = float(max_fraction)
        self.min_files = int(min_files)
        self.what = what
        self.reset()

    def reset(self, bad=0, files=0):
        """Starts a new epoch (optionally from restored counts).

        Arguments
        ---------
        bad : int
            Bad files already met in the epoch.
        files : int
            Files already read in the epoch.

        Returns
        -------
        None
        """
        self.bad = int(bad)
        self.files = int(files)
        self.examples = []
        self._warned = set()

    def update(self, bad_files, files_read):
        """Adds a batch's counts; warns about new bad files; checks.

        Arguments
        ---------
        bad_files : list of str
            ``"path: reason"`` of the bad files met.
        files_read : int
            Files read for the batch (good and bad).

        Returns
        -------
        None

        Raises
        ------
        TooManyBadFilesError
            When the fraction of bad files is exceeded.
        """
        self.bad += len(bad_files)
        self.files += int(files_read)
        for entry in bad_files:
            if entry not in self._warned:
                self._warned.add(entry)
                logger.warning(f"Skipped a bad {self.what} file: {entry}")
                if len(self.examples) < 5:
                    self.examples.append(entry)
        if bad_files:
            self.check()

    def check(self):
        """Raises if too large a fraction of the files read was bad.

        Returns
        -------
        None
        """
        if self.bad > self.max_fraction * max(self.files, self.min_files):
            listing = "; ".join(self.examples)
            raise TooManyBadFilesError(
                f"{self.bad} of the {self.files} {self.what} audio files "
                "read so far in this epoch were bad, more than "
                f"max_bad_file_fraction={self.max_fraction:g}. First ones: "
                f"{listing}. Check or re-prepare the data (or raise "
                "--max_bad_file_fraction)."
            )


def resolve_csv_paths(
    dataset, data_folders, allow_outside=False, source="CSV", key="wav"
):
    """Resolves the audio paths of a dataset under the data folder(s).

    Relative paths are taken relative to the first data folder. A path
    that lies in none of the folders (``..`` escapes, absolute paths
    elsewhere) is an error naming the CSV line, the row ID and the path,
    unless ``allow_outside``. Rows are updated in place with the
    normalised absolute paths.

    Arguments
    ---------
    dataset : speechbrain.dataio.dataset.DynamicItemDataset
        Dataset read from a CSV (``dataset.data``: ID to row dict).
    data_folders : str or list of str
        Data folder(s); a string may hold several, comma separated.
    allow_outside : bool
        Accept paths outside the data folders.
    source : str
        The CSV, for messages.
    key : str
        Column holding the path.

    Returns
    -------
    int
        Number of rows outside the data folders (0 unless
        ``allow_outside``).

    Example
    -------
    >>> from speechbrain.dataio.dataset import DynamicItemDataset
    >>> data = DynamicItemDataset({"u1": {"wav": "a/b.wav"},
    ...                            "u2": {"wav": "../x.wav"}})
    >>> resolve_csv_paths(data, "/data", source="train.csv")
    Traceback (most recent call last):
    ...
    ValueError: train.csv:3 (ID u2): '../x.wav' resolves to '/x.wav', ...
    >>> resolve_csv_paths(data, "/data", allow_outside=True)
    1
    >>> data.data["u1"]["wav"]
    '/data/a/b.wav'
    """
    if isinstance(data_folders, str):
        data_folders = [f for f in data_folders.split(",") if f]
    roots = [os.path.normpath(os.path.abspath(f)) for f in data_folders]
    if not roots:
        raise ValueError("no data folder given to resolve CSV paths")
    outside = 0
    for line, uid in enumerate(dataset.data_ids, start=2):
        row = dataset.data[uid]
        path = row[key]
        full = resolve_path(path, roots[0], allow_outside=True)
        if not any(os.path.commonpath([r, full]) == r for r in roots):
            if not allow_outside:
                raise ValueError(
                    f"{source}:{line} (ID {uid}): {path!r} resolves to "
                    f"{full!r}, outside the data folder(s) "
                    f"{', '.join(repr(r) for r in roots)} (set "
                    "allow_paths_outside_data_folder: True to permit)"
                )
            outside += 1
        row[key] = full
    return outside
