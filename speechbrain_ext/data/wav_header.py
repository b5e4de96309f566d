"""Truncated WAV files: the header promises more audio than the file holds.

A download or copy that stopped early leaves a RIFF/WAVE file whose
``data`` chunk size (written first) is larger than what follows it.
libsndfile then reports the frames that are present, silently, so the
file reads as a shorter but valid one. :func:`wav_truncation` compares the
size the header announces with the bytes on disk, reading only the
chunk headers.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import os
import struct

#: ``data`` chunk sizes that mean "unknown" (streamed or RF64 files).
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)


def wav_truncation(path):
    """Frames announced by a WAV header and frames present, if they differ.

    Only RIFF/WAVE files are checked; any other file (FLAC, RF64, a
    damaged header libsndfile will refuse anyway) gives None.

    Arguments
    ---------
    path : str or os.PathLike
        An audio file.

    Returns
    -------
    tuple of int or None
        ``(announced, present)`` frame counts when the file holds fewer
        frames than its header announces, else None.

    Example
    -------
    >>> import numpy, soundfile
    >>> path = os.path.join(str(getfixture("tmp_path")), "a.wav")
    >>> soundfile.write(path, numpy.zeros(1000), 16000, subtype="PCM_16")
    >>> wav_truncation(path) is None
    True
    >>> os.truncate(path, os.path.getsize(path) - 600)  # 300 frames lost
    >>> wav_truncation(path)
    (1000, 700)
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        size = os.fstat(f.fileno()).st_size
        block_align, pos = None, 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            name, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if name == b"fmt ":
                fmt = f.read(min(length, 16))
                if len(fmt) >= 14:
                    block_align = struct.unpack("<H", fmt[12:14])[0]
            elif name == b"data":
                if not block_align or length in _UNKNOWN_SIZES:
                    return None
                present = size - (pos + 8)
                if present >= length:
                    return None
                return length // block_align, present // block_align
            pos += 8 + length + (length & 1)
    return None


def truncation_reason(announced, present):
    """Why a truncated WAV file is bad, in words.

    Arguments
    ---------
    announced : int
        Frames the header announces.
    present : int
        Frames the file holds.

    Returns
    -------
    str
        The reason.

    Example
    -------
    >>> truncation_reason(16000, 8000)[:45]
    'truncated: its header announces 16000 frames,'
    """
    return (
        f"truncated: its header announces {announced} frames, the file "
        f"holds {present} (an incomplete download or copy?)"
    )
