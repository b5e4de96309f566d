"""The augmentation CSV format, and the file lists its fingerprints hash.

SpeechBrain's ``AddNoise`` and ``AddReverb`` read their CSV through
``speechbrain.dataio.legacy.ExtendedCSVDataset``: the columns must be
``ID, duration`` followed by triplets ``wav, wav_format, wav_opts``, and each
row is loaded whole (``wav_opts`` such as start/stop are parsed but ignored
for audio). :data:`NOISE_FIELDS` are those columns, written by
:mod:`speechbrain_ext.augment.musan_prep` and
:mod:`speechbrain_ext.augment.rir_prep` for every augmentation CSV.

Authors
 * MR-RawNet recipe contributors
"""

import os

#: Columns of every augmentation CSV (the format ``AddNoise`` reads).
NOISE_FIELDS = ["ID", "duration", "wav", "wav_format", "wav_opts"]


def _stat_entries(root, paths):
    """(rel, path, size, mtime_ns) tuples for a tree fingerprint."""
    entries = []
    for path in paths:
        st = os.stat(path)
        entries.append(
            (os.path.relpath(path, root), path, st.st_size, st.st_mtime_ns)
        )
    return entries
