"""The VoxCeleb folder layout: wav roots, file listings, utterance IDs.

VoxCeleb audio lies in ``<folder>/wav/<spk>/<session>/<utt>.wav``; trial
lists and official train lists name files by ``<spk>/<session>/<utt>.wav``
relative to that ``wav`` root, and the CSVs of preparation identify them
as ``spk--session--utt``.

Authors
 * MR-RawNet recipe contributors
"""

import os

from speechbrain_ext.data.prep_common import PreparationError

#: Sample rate every prepared VoxCeleb, MUSAN and RIR file must have.
SAMPLE_RATE = 16000


def utterance_id(rel_path):
    """Builds the utterance ID ``spk--session--utt`` from a relative path.

    The last three components of the path are used, so both
    ``id10270/x6uYqmx31kE/00001.wav`` and an absolute path ending like that
    give the same ID. This is how the trial lists map to CSV IDs.

    Arguments
    ---------
    rel_path : str
        Path ``<spk>/<session>/<utt>.<ext>`` (more leading parts allowed).

    Returns
    -------
    str
        The ID, e.g. ``id10270--x6uYqmx31kE--00001``.

    Example
    -------
    >>> utterance_id("id10270/x6uYqmx31kE/00001.wav")
    'id10270--x6uYqmx31kE--00001'
    """
    parts = [p for p in rel_path.replace("\\", "/").split("/") if p]
    if len(parts) < 3:
        raise ValueError(
            f"Expected a path like <spk>/<session>/<utt>.wav, got {rel_path!r}"
        )
    spk, session, name = parts[-3:]
    return f"{spk}--{session}--{os.path.splitext(name)[0]}"


def resolve_wav_dir(folder):
    """Returns the ``wav`` directory of a VoxCeleb data folder.

    A folder holding ``wav/<spk>/<session>/<utt>.wav`` resolves to its
    ``wav`` sub-folder; a folder without a ``wav`` sub-folder is taken to be
    the wav root itself.

    Arguments
    ---------
    folder : str
        The data folder (or the wav root).

    Returns
    -------
    str
        Absolute path of the wav root.

    Example
    -------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> root = tmp.name
    >>> os.makedirs(os.path.join(root, "wav"))
    >>> resolve_wav_dir(root) == os.path.join(root, "wav")
    True
    >>> tmp.cleanup()
    """
    folder = os.path.abspath(folder)
    if not os.path.isdir(folder):
        raise PreparationError(
            f"Data folder {folder} does not exist (expected the VoxCeleb "
            "layout <folder>/wav/<spk>/<session>/<utt>.wav)"
        )
    wav_dir = os.path.join(folder, "wav")
    return wav_dir if os.path.isdir(wav_dir) else folder


def scan_voxceleb_folder(data_folder):
    """Lists ``<spk>/<session>/<utt>.wav`` files of a VoxCeleb folder.

    Only directory entries are read (plus one ``stat`` per file for the
    change fingerprint); the audio is not opened.

    Arguments
    ---------
    data_folder : str
        Folder with the layout ``wav/<spk>/<session>/<utt>.wav`` (or the
        ``wav`` folder itself).

    Returns
    -------
    list of tuple
        Sorted ``(rel_path, abs_path, size, mtime_ns)`` tuples.

    Example
    -------
    >>> import tempfile, numpy, soundfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> root = tmp.name
    >>> os.makedirs(os.path.join(root, "wav", "id1", "s1"))
    >>> wav = os.path.join(root, "wav", "id1", "s1", "00001.wav")
    >>> soundfile.write(wav, numpy.zeros(160), 16000)
    >>> [e[0] for e in scan_voxceleb_folder(root)]
    ['id1/s1/00001.wav']
    >>> tmp.cleanup()
    """
    wav_dir = resolve_wav_dir(data_folder)
    entries = []
    for spk in _sorted_dirs(wav_dir):
        for sess in _sorted_dirs(spk.path):
            with os.scandir(sess.path) as it:
                for f in it:
                    if (
                        f.name.endswith(".wav")
                        and not f.name.startswith(".")
                        and f.is_file()
                    ):
                        st = f.stat()
                        rel = f"{spk.name}/{sess.name}/{f.name}"
                        entries.append(
                            (rel, f.path, st.st_size, st.st_mtime_ns)
                        )
    if not entries:
        raise PreparationError(
            f"No audio found in data folder {data_folder} (looked for "
            f"{wav_dir}/<spk>/<session>/<utt>.wav)"
        )
    entries.sort()
    return entries


def _sorted_dirs(path):
    """Sub-directories of ``path`` as DirEntry objects."""
    with os.scandir(path) as it:
        dirs = [e for e in it if e.is_dir() and not e.name.startswith(".")]
    return sorted(dirs, key=lambda e: e.name)
