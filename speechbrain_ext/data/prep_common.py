"""What every data-preparation step shares: its error and its messages.

:class:`PreparationError` is raised by every preparation step (VoxCeleb
training CSVs, trial CSVs, m4a conversion, MUSAN / RIR preparation in
:mod:`speechbrain_ext.augment.prepare`); :func:`listing` names the
offending files in its messages; :func:`option_list` reads the list
options (folders, trial lists) these steps take.

Authors
 * MR-RawNet recipe contributors
"""

MAX_LISTED = 5


class PreparationError(RuntimeError):
    """Raised when data preparation cannot produce a valid result.

    Arguments
    ---------
    message : str
        What went wrong, naming the offending folder or files.

    Example
    -------
    >>> str(PreparationError("no audio in /x"))
    'no audio in /x'
    """


def listing(items, limit=MAX_LISTED):
    """Formats the first ``limit`` items and the total count.

    Preparation errors (of the data and the augmentation preparation)
    name the offending files through it.

    Arguments
    ---------
    items : iterable
        What to list (formatted with ``str``).
    limit : int
        How many items to show.

    Returns
    -------
    str
        The items shown, comma separated, then the total when some are
        left out.

    Example
    -------
    >>> listing(["a.wav", "b.wav"])
    'a.wav, b.wav'
    >>> listing(range(7), limit=2)
    '0, 1 ... (7 in total)'
    """
    items = list(items)
    shown = ", ".join(str(x) for x in items[:limit])
    more = f" ... ({len(items)} in total)" if len(items) > limit else ""
    return f"{shown}{more}"


def option_list(value):
    """Accepts None, a string (comma separated) or a list of strings.

    Empty entries of a string are dropped; the entries are not stripped
    (:func:`speechbrain_ext.data.trial_lists.as_list`, the recipe's reader
    of the same options, strips them first).

    Arguments
    ---------
    value : None, str or sequence
        A list option (data folders, trial lists).

    Returns
    -------
    list of str
        The entries.

    Example
    -------
    >>> option_list(None), option_list("a,,b"), option_list(["c"])
    ([], ['a', 'b'], ['c'])
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in value.split(",") if v]
    return [str(v) for v in value]
