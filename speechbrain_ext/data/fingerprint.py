"""Fingerprints of preparation inputs: a step reruns only when they change.

Every prepared output carries a fingerprint JSON beside it (options,
inputs and a cheap digest of the audio tree, see :func:`tree_fingerprint`);
preparation is skipped only when the stored fingerprint still matches
(:func:`is_up_to_date`), so a changed option, list or an added file always
triggers a redo.

Authors
 * MR-RawNet recipe contributors
"""

import hashlib
import json
import os

from speechbrain_ext.data.csv_files import write_text

#: Version of the preparation outputs, part of every fingerprint.
PREP_VERSION = 1


def file_digest(path):
    """SHA-1 of a file's contents.

    Arguments
    ---------
    path : str
        The file.

    Returns
    -------
    str
        Hex digest.

    Example
    -------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> p = os.path.join(tmp.name, "x.txt")
    >>> _ = open(p, "w").write("abc")
    >>> file_digest(p)[:8]
    'a9993e36'
    >>> tmp.cleanup()
    """
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_fingerprint(entries):
    """Cheap fingerprint of a list of files: count, list hash, max mtime.

    Arguments
    ---------
    entries : list of tuple
        ``(name, path, size, mtime_ns)`` tuples, as from
        :func:`~speechbrain_ext.data.voxceleb_layout.scan_voxceleb_folder`.

    Returns
    -------
    dict
        ``{"files": n, "list_sha1": ..., "max_mtime_ns": ...}``.

    Example
    -------
    >>> fp = tree_fingerprint([("a/b/c.wav", "/x/a/b/c.wav", 10, 5)])
    >>> fp["files"], fp["max_mtime_ns"]
    (1, 5)
    """
    h = hashlib.sha1()
    for name, _, size, _ in entries:
        h.update(f"{name}\t{size}\n".encode())
    return {
        "files": len(entries),
        "list_sha1": h.hexdigest(),
        "max_mtime_ns": max((e[3] for e in entries), default=0),
    }


def is_up_to_date(fingerprint_file, fingerprint, outputs):
    """Tells whether outputs exist and were made from the same inputs.

    Arguments
    ---------
    fingerprint_file : str
        JSON written by :func:`write_fingerprint` after the last preparation.
    fingerprint : dict
        JSON-serialisable description of the current options and inputs.
    outputs : list of str
        Files that must all exist.

    Returns
    -------
    bool
        True when preparation can be skipped.

    Example
    -------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> d = tmp.name
    >>> fp_file = os.path.join(d, "fp.json")
    >>> write_fingerprint(fp_file, {"a": 1})
    >>> is_up_to_date(fp_file, {"a": 1}, [fp_file])
    True
    >>> is_up_to_date(fp_file, {"a": 2}, [fp_file])
    False
    >>> tmp.cleanup()
    """
    if not all(os.path.isfile(p) for p in outputs):
        return False
    try:
        with open(fingerprint_file, encoding="utf-8") as f:
            stored = json.load(f)
    except (OSError, ValueError):
        return False
    current = json.loads(json.dumps(fingerprint, sort_keys=True))
    return stored.get("fingerprint") == current


def write_fingerprint(fingerprint_file, fingerprint, summary=None):
    """Writes the fingerprint JSON atomically (plus an informative summary).

    Arguments
    ---------
    fingerprint_file : str
        Destination JSON.
    fingerprint : dict
        What :func:`is_up_to_date` compares.
    summary : dict, optional
        Statistics stored for information only (not compared).

    Returns
    -------
    None

    Example
    -------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> p = os.path.join(tmp.name, "fp.json")
    >>> write_fingerprint(p, {"x": [1]}, {"files": 3})
    >>> json.load(open(p))["summary"]
    {'files': 3}
    >>> tmp.cleanup()
    """
    data = {"fingerprint": fingerprint, "summary": summary or {}}
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    write_text(fingerprint_file, text)
