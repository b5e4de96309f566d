"""Writing the CSV and text files of preparation, always atomically.

The temporary-file-and-rename is :mod:`speechbrain_ext.atomic_files`'s: a
reader (or a killed run) never sees half a file.

Authors
 * MR-RawNet recipe contributors
"""

import csv

from speechbrain_ext.atomic_files import atomic_write, atomic_write_text
from speechbrain_ext.data.prep_common import PreparationError


def write_text(path, text):
    """Writes a text file via a temporary file and ``os.replace``.

    Arguments
    ---------
    path : str
        Destination.
    text : str
        Contents.

    Returns
    -------
    None

    Example
    -------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> p = os.path.join(tmp.name, "a.txt")
    >>> write_text(p, "hi\\n")
    >>> open(p).read()
    'hi\\n'
    >>> tmp.cleanup()
    """
    atomic_write_text(path, text)


def write_csv(path, fields, rows):
    """Writes a CSV with a header; refuses to write an empty one.

    Arguments
    ---------
    path : str
        Destination.
    fields : list of str
        Column names.
    rows : list of dict or list of sequence
        Data rows (dicts keyed by ``fields`` or sequences in that order).

    Returns
    -------
    None

    Example
    -------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> p = os.path.join(tmp.name, "a.csv")
    >>> write_csv(p, ["ID", "duration"], [("u1", "1.5")])
    >>> open(p).read().splitlines()
    ['ID,duration', 'u1,1.5']
    >>> tmp.cleanup()
    """
    if not rows:
        raise PreparationError(f"Refusing to write an empty CSV: {path}")

    def write(f):
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(fields)
        for row in rows:
            writer.writerow(
                [row[k] for k in fields] if isinstance(row, dict) else row
            )

    atomic_write(path, write)
