"""Resumable HTTP downloads with a progress bar, and file checksums.

:func:`download` writes a URL to ``<target>.part`` and renames it to
``target`` only once every byte announced by the server has arrived. A
download cut off half-way keeps its ``.part`` file; the next call (or the
next of ``retries`` attempts) asks the server for the rest with an HTTP
range request and appends it. A server that ignores the range gets the
whole file again from the start. A host that cannot be reached fails
within ``timeout`` seconds with :class:`Unreachable`.

Authors
 * MR-RawNet recipe contributors
"""

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request

from tqdm import tqdm

__all__ = [
    "CHUNK",
    "IncompleteDownload",
    "Unreachable",
    "download",
    "file_md5",
]

#: Bytes read from the network or the disk at a time.
CHUNK = 1 << 20

USER_AGENT = "speechbrain_ext-download/1"

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_RANGE_TOTAL = re.compile(r"bytes \*/(\d+)")


class Unreachable(OSError):
    """The server could not be reached or refused the file.

    Arguments
    ---------
    url : str
        What was asked for.
    reason : str
        Why it failed (connection refused, timeout, HTTP status).

    Example
    -------
    >>> str(Unreachable("http://127.0.0.1:9/x", "connection refused"))
    'http://127.0.0.1:9/x: connection refused'
    """

    def __init__(self, url, reason):
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: {reason}")


class IncompleteDownload(OSError):
    """The connection ended before the whole file arrived.

    Arguments
    ---------
    url : str
        What was downloaded.
    part : str
        The partial file, kept for the next attempt.
    have : int
        Bytes in ``part``.
    total : int or None
        Bytes the server announced.

    Example
    -------
    >>> e = IncompleteDownload("http://h/f", "/d/f.part", 5, 10)
    >>> "5 of 10 bytes" in str(e)
    True
    """

    def __init__(self, url, part, have, total):
        self.url, self.part, self.have, self.total = url, part, have, total
        of = f" of {total}" if total is not None else ""
        super().__init__(
            f"{url}: the connection ended after {have}{of} bytes; the part "
            f"is kept in {part} and the next run resumes from there"
        )


def _size(path):
    """Size of ``path`` in bytes, 0 when it does not exist."""
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def _open(url, offset, timeout):
    """Sends the request (with a range from ``offset``); returns response.

    Returns ``None`` when the server answers 416 for a part that already
    holds the whole file.
    """
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            match = _RANGE_TOTAL.match(err.headers.get("Content-Range", ""))
            err.close()
            if match and int(match.group(1)) == offset:
                return None
            raise _RestartFromZero() from None
        err.close()
        raise Unreachable(url, f"HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise Unreachable(url, str(err.reason)) from None
    except TimeoutError:
        raise Unreachable(url, f"no answer within {timeout} s") from None
    except (OSError, http.client.HTTPException) as err:
        raise Unreachable(url, str(err) or type(err).__name__) from None


class _RestartFromZero(Exception):
    """The part on disk does not fit the file on the server."""


def _start(response, offset):
    """(append?, start offset, total bytes or None) of a response."""
    length = response.headers.get("Content-Length")
    if offset and response.status == 206:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != offset:
            raise _RestartFromZero()
        total = None if match.group(3) == "*" else int(match.group(3))
        return True, offset, total
    total = int(length) if length is not None else None
    return False, 0, total


def download(url, target, timeout=10.0, retries=3, progress=True,
             expected_bytes=None):
    """Downloads ``url`` to ``target``, resuming a ``.part`` left before.

    Arguments
    ---------
    url : str
        An ``http://`` or ``https://`` URL.
    target : str
        The finished file; ``target + ".part"`` holds the bytes so far.
    timeout : float
        Seconds to wait for a connection or for more data.
    retries : int
        Further attempts (each resuming) after a connection cut mid-file.
    progress : bool
        Show a progress bar.
    expected_bytes : int or None
        Shown as the bar's total when the server does not say.

    Returns
    -------
    str
        ``target``.

    Raises
    ------
    Unreachable
        No connection, a timeout before the first byte, or an HTTP error.
    IncompleteDownload
        The connection kept ending before the end of the file.

    Example
    -------
    >>> target = str(getfixture("tmp_path") / "f.bin")
    >>> download("http://127.0.0.1:9/f.bin", target, timeout=2)
    Traceback (most recent call last):
    ...
    speechbrain_ext.data.fetch.Unreachable: http://127.0.0.1:9/f.bin: ...
    """
    part = target + ".part"
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    attempt, total = 0, None
    while True:
        offset = _size(part)
        try:
            response = _open(url, offset, timeout)
        except _RestartFromZero:
            os.remove(part)
            continue
        except Unreachable:
            if attempt == 0:
                raise
            response = False  # lost the server while resuming: retry
        if response is None:  # 416 for a part that is already complete
            os.replace(part, target)
            return target
        if response:
            with response:
                try:
                    append, start, total = _start(response, offset)
                except _RestartFromZero:
                    os.remove(part)
                    continue
                have, cut = _copy(response, part, append, start, total,
                                  progress, expected_bytes, target)
            if not cut and (total is None or have == total):
                os.replace(part, target)
                return target
        attempt += 1
        if attempt > retries:
            raise IncompleteDownload(url, part, _size(part), total)


def _copy(response, part, append, start, total, progress, expected, name):
    """Streams the body into ``part``.

    Returns the bytes the part then holds and whether the connection
    failed (rather than ended) before the end.
    """
    have, cut = start, False
    bar = tqdm(
        total=total if total is not None else expected, initial=start,
        unit="B", unit_scale=True, unit_divisor=1024,
        desc=os.path.basename(name), disable=not progress, leave=False,
    )
    try:
        with open(part, "ab" if append else "wb") as out:
            while True:
                try:
                    block = response.read(CHUNK)
                except (OSError, http.client.HTTPException):
                    cut = True
                    break
                if not block:
                    break
                out.write(block)
                have += len(block)
                bar.update(len(block))
    finally:
        bar.close()
    return have, cut


def file_md5(path, progress=True):
    """MD5 hex digest of a file, read in chunks with a progress bar.

    Arguments
    ---------
    path : str
        The file.
    progress : bool
        Show a progress bar.

    Returns
    -------
    str
        32 lower-case hex digits.

    Example
    -------
    >>> p = getfixture("tmp_path") / "a.txt"
    >>> _ = p.write_bytes(b"abc")
    >>> file_md5(str(p), progress=False)
    '900150983cd24fb0d6963f7d28e17f72'
    """
    digest = hashlib.md5()
    with open(path, "rb") as f, tqdm(
        total=os.path.getsize(path), unit="B", unit_scale=True,
        unit_divisor=1024, desc=f"md5 {os.path.basename(path)}",
        disable=not progress, leave=False,
    ) as bar:
        for block in iter(lambda: f.read(8 * CHUNK), b""):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()
