"""Opt-in downloads of the public extras a VoxCeleb run needs.

::

    python -m speechbrain_ext.data.download musan /data
    python -m speechbrain_ext.data.download rirs_noises /data
    python -m speechbrain_ext.data.download voxceleb1_trials /data/vox1/meta
    python -m speechbrain_ext.data.download --list

``musan`` unpacks to ``<dest>/musan``, ``rirs_noises`` to
``<dest>/RIRS_NOISES`` and ``voxceleb1_trials`` writes the cleaned
VoxCeleb1-O, -E and -H lists into ``<dest>``. The command then prints the
``--musan_folder`` / ``--rir_folder`` / ``--trial_lists`` options to pass
to the recipes. The recipes themselves never download anything.

Where each file comes from and how it is checked is in :data:`SOURCES`,
the one table of this module. Archives are checked against their
published MD5; the trial lists, for which no checksum is published,
against their published trial counts and the ``label enrol test`` format.
A file that fails its check is kept aside as ``<name>.mismatch`` and the
run stops with an error. Downloads resume (HTTP range requests) and
extraction is atomic (:mod:`speechbrain_ext.data.unpack`). An archive
fetched by other means and put at ``<dest>/.downloads/<file>`` is checked
and unpacked without any network access.

VoxCeleb audio itself is not here: it needs the dataset owners'
permission (see the README).

Authors
 * MR-RawNet recipe contributors
"""

import argparse
import os
import shutil
import sys
from dataclasses import dataclass

from speechbrain_ext.data import fetch, unpack
from speechbrain_ext.data.trial_format import read_trial_file

__all__ = [
    "SOURCES",
    "ChecksumError",
    "Dataset",
    "DownloadError",
    "RemoteFile",
    "download_hint",
    "get",
    "main",
]

#: Where downloads and their ``.part`` files live, under the destination.
DOWNLOADS = ".downloads"

_OSLR = ("https://www.openslr.org", "https://us.openslr.org",
         "https://openslr.elda.org")
_VOX_META = ("https://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta",
             "https://mm.kaist.ac.kr/datasets/voxceleb/meta")


@dataclass(frozen=True)
class RemoteFile:
    """One published file and how to check it.

    Arguments
    ---------
    filename : str
        Name of the file on the server and on disk.
    urls : tuple of str
        The official location first, then mirrors, tried in order.
    md5 : str or None
        Published MD5 (hex).
    trials : int or None
        Published number of trials (trial lists, which have no checksum).
    approx_bytes : int
        Rough size, for the disk-space warning and the progress bar.
    name : str
        Short name (the list's name in the scoring recipe).

    Example
    -------
    >>> f = SOURCES["voxceleb1_trials"].files[0]
    >>> f.filename, f.trials
    ('veri_test2.txt', 37611)
    """

    filename: str
    urls: tuple
    md5: str = None
    trials: int = None
    approx_bytes: int = 0
    name: str = ""


@dataclass(frozen=True)
class Dataset:
    """A downloadable item: its files, layout and the option it feeds.

    Arguments
    ---------
    name : str
        The ``<what>`` of the command line.
    title : str
        Human-readable name.
    files : tuple of RemoteFile
        What is downloaded.
    top : str or None
        Top-level folder the archive unpacks to (None: plain files).
    required : tuple of str
        Sub-folders of ``top`` the recipes need.
    layout : str
        The layout to unpack to, for messages.
    option : str
        The recipe option that takes the result.
    source : str
        The page that publishes the files (and their checksums or sizes).
    licence : str
        Licence of the data.

    Example
    -------
    >>> SOURCES["musan"].option
    '--musan_folder'
    """

    name: str
    title: str
    files: tuple
    top: str
    required: tuple
    layout: str
    option: str
    source: str
    licence: str


#: The one table: every file this command downloads, its source and check.
SOURCES = {
    "musan": Dataset(
        name="musan",
        title="MUSAN (music, speech and noise), OpenSLR SLR17",
        files=(RemoteFile(
            "musan.tar.gz",
            tuple(f"{h}/resources/17/musan.tar.gz" for h in _OSLR),
            md5="0c472d4fc0c5141eca47ad1ffeb2a7df",
            approx_bytes=11_086_114_085,
        ),),
        top="musan",
        required=("music", "noise", "speech"),
        layout="<dest>/musan/{music,noise,speech}/<source>/*.wav",
        option="--musan_folder",
        source="https://www.openslr.org/17/",
        licence="CC BY 4.0 (see musan/README)",
    ),
    "rirs_noises": Dataset(
        name="rirs_noises",
        title="Room impulse responses and noises, OpenSLR SLR28",
        files=(RemoteFile(
            "rirs_noises.zip",
            tuple(f"{h}/resources/28/rirs_noises.zip" for h in _OSLR),
            md5="e6f48e257286e05de56413b4779d8ffb",
            approx_bytes=1_311_166_223,
        ),),
        top="RIRS_NOISES",
        required=("simulated_rirs/smallroom", "simulated_rirs/mediumroom"),
        layout=(
            "<dest>/RIRS_NOISES/simulated_rirs/{smallroom,mediumroom,"
            "largeroom}/Room*/*.wav"
        ),
        option="--rir_folder",
        source="https://www.openslr.org/28/",
        licence="Apache 2.0",
    ),
    "voxceleb1_trials": Dataset(
        name="voxceleb1_trials",
        title="VoxCeleb1 cleaned trial lists (Vox1-O, Vox1-E, Vox1-H)",
        files=tuple(
            RemoteFile(
                filename, tuple(f"{h}/{filename}" for h in _VOX_META),
                trials=trials, approx_bytes=62 * trials, name=name,
            )
            for filename, trials, name in (
                ("veri_test2.txt", 37_611, "vox1_o_cleaned"),
                ("list_test_all2.txt", 579_818, "vox1_e_cleaned"),
                ("list_test_hard2.txt", 550_894, "vox1_h_cleaned"),
            )
        ),
        top=None,
        required=(),
        layout="<dest>/{veri_test2,list_test_all2,list_test_hard2}.txt",
        option="--trial_lists",
        source="https://www.robots.ox.ac.uk/~vgg/data/voxceleb/vox1.html",
        licence="CC BY 4.0 (VoxCeleb metadata)",
    ),
}


class DownloadError(RuntimeError):
    """No source could deliver a file; says how to get it by other means.

    Arguments
    ---------
    message : str
        The URLs tried with their errors, and the layout to unpack to.

    Example
    -------
    >>> str(DownloadError("offline"))
    'offline'
    """


class ChecksumError(RuntimeError):
    """A downloaded file failed its check; it was kept aside.

    Arguments
    ---------
    message : str
        Expected and found values and where the file was put.

    Example
    -------
    >>> str(ChecksumError("bad md5"))
    'bad md5'
    """


def download_hint(name, dest="<folder>"):
    """The command that fetches ``name``, for the recipes' error messages.

    Arguments
    ---------
    name : str
        A key of :data:`SOURCES`.
    dest : str
        Destination shown in the command.

    Returns
    -------
    str
        A sentence with the command.

    Example
    -------
    >>> download_hint("musan", "/data")
    '`python -m speechbrain_ext.data.download musan /data` downloads it'
    """
    return f"`python -m speechbrain_ext.data.download {name} {dest}` " \
        "downloads it"


def _urls(remote, base_url):
    """The URLs to try: a given mirror only, or the table's."""
    if base_url:
        return (base_url.rstrip("/") + "/" + remote.filename,)
    return remote.urls


def _fetch(remote, dataset, folder, base_url, timeout, retries, progress):
    """Downloads ``remote`` into ``folder`` from the first source that works.

    Returns the path of the complete (not yet checked) file.
    """
    target = os.path.join(folder, remote.filename)
    if os.path.isfile(target):
        return target
    errors = []
    for url in _urls(remote, base_url):
        print(f"Downloading {url}", file=sys.stderr)
        try:
            return fetch.download(url, target, timeout, retries, progress,
                                  remote.approx_bytes or None)
        except fetch.Unreachable as err:
            errors.append(f"  {err}")
        except fetch.IncompleteDownload as err:
            raise DownloadError(f"{err}.") from None
    part = target + ".part"
    layout = dataset.layout.replace("<dest>", os.path.dirname(folder))
    where = (
        f"unpack it so that {layout} exists"
        if dataset.top else f"put the file as {layout}"
    )
    raise DownloadError(
        f"could not download {remote.filename}; tried:\n"
        + "\n".join(errors)
        + f"\nWithout network access, fetch {_urls(remote, base_url)[0]} by "
        f"other means and either {where}, or put the file at {target} "
        "and rerun this command (it checks and unpacks it offline)."
        + (f" A partial download is kept in {part}." if os.path.exists(part)
           else "")
    )


def _keep_aside(path, message):
    """Renames a failed file to ``<path>.mismatch``; raises ChecksumError."""
    aside = path + ".mismatch"
    os.replace(path, aside)
    raise ChecksumError(
        f"{message}; the file is kept in {aside} (delete it and rerun to "
        "download again, or check the source)"
    )


def _check_md5(path, remote, progress):
    """Compares the MD5 of ``path`` with the table's."""
    found = fetch.file_md5(path, progress)
    if found != remote.md5:
        _keep_aside(
            path,
            f"{remote.filename}: MD5 {found} differs from the published "
            f"{remote.md5}",
        )


def count_trials(path):
    """Checks the ``label enrol test`` format; returns the trial count.

    The format is checked by the one trial-list parser
    (:mod:`speechbrain_ext.data.trial_format`), which preparation and
    scoring use too; undecodable bytes make a malformed line.

    Arguments
    ---------
    path : str
        A VoxCeleb trial list.

    Returns
    -------
    int
        Number of trials.

    Raises
    ------
    ValueError
        A :class:`~speechbrain_ext.data.trial_format.TrialListError`: the
        first malformed line, as ``file:line``, or a list without trials.

    Example
    -------
    >>> p = getfixture("tmp_path") / "t.txt"
    >>> _ = p.write_text("1 a/b/1.wav a/c/2.wav\\n0 a/b/1.wav d/e/3.wav\\n")
    >>> count_trials(str(p))
    2
    """
    return len(read_trial_file(path, errors="replace"))


def _check_trials(path, remote):
    """Compares the format and trial count with the published count."""
    try:
        found = count_trials(path)
    except ValueError as err:
        _keep_aside(path, str(err))
    if found != remote.trials:
        _keep_aside(
            path,
            f"{remote.filename}: {found} trials, but the published list "
            f"has {remote.trials}",
        )


def _warn_space(dest, dataset):
    """Warns when the disk looks too small for archive plus contents."""
    need = sum(f.approx_bytes for f in dataset.files)
    need *= 2 if dataset.top else 1
    free = shutil.disk_usage(dest).free
    if free < need:
        print(
            f"Warning: {dest} has {free / 1e9:.1f} GB free; {dataset.name} "
            f"needs about {need / 1e9:.1f} GB (archive and contents)",
            file=sys.stderr,
        )


def _existing(dataset, dest):
    """The finished result if it is there already, else None."""
    if dataset.top is None:
        paths = [os.path.join(dest, f.filename) for f in dataset.files]
        return paths if all(os.path.isfile(p) for p in paths) else None
    final = os.path.join(dest, dataset.top)
    if not os.path.exists(final):
        return None
    missing = [
        r for r in dataset.required
        if not os.path.isdir(os.path.join(final, r))
    ]
    if missing:
        raise DownloadError(
            f"{final} exists but lacks {', '.join(missing)} (expected "
            f"{dataset.layout}); move it away and rerun"
        )
    return final


def get(name, dest, base_url=None, timeout=10.0, retries=3,
        keep_archive=False, progress=True):
    """Downloads, checks and unpacks one item of :data:`SOURCES`.

    Arguments
    ---------
    name : str
        A key of :data:`SOURCES`.
    dest : str
        Destination folder (created).
    base_url : str or None
        Fetch ``<base_url>/<file>`` instead of the table's URLs (a local
        mirror).
    timeout : float
        Seconds to wait for a connection or for more data.
    retries : int
        Resumed attempts after a connection cut mid-file.
    keep_archive : bool
        Keep the archive in ``<dest>/.downloads`` after unpacking.
    progress : bool
        Show progress bars.

    Returns
    -------
    str or list of str
        The unpacked folder, or the list of downloaded files.

    Raises
    ------
    DownloadError
        No source reachable (the message names the URL and the layout).
    ChecksumError
        A file failed its check (kept aside as ``.mismatch``).

    Example
    -------
    >>> get("musan", str(getfixture("tmp_path")),
    ...     base_url="http://127.0.0.1:9", timeout=2, progress=False)
    Traceback (most recent call last):
    ...
    speechbrain_ext.data.download.DownloadError: could not download ...
    """
    if name not in SOURCES:
        raise KeyError(
            f"unknown item {name!r}; choose from {', '.join(SOURCES)}"
        )
    dataset = SOURCES[name]
    dest = os.path.abspath(dest)
    os.makedirs(dest, exist_ok=True)
    done = _existing(dataset, dest)
    if done is not None:
        print(f"{dataset.title}: already in {dest}", file=sys.stderr)
        return done
    _warn_space(dest, dataset)
    folder = os.path.join(dest, DOWNLOADS)
    results = []
    for remote in dataset.files:
        if dataset.top is None and os.path.isfile(
            os.path.join(dest, remote.filename)
        ):
            results.append(os.path.join(dest, remote.filename))
            continue
        path = _fetch(remote, dataset, folder, base_url, timeout, retries,
                      progress)
        if remote.md5:
            _check_md5(path, remote, progress)
        if remote.trials:
            _check_trials(path, remote)
        if dataset.top is None:
            final = os.path.join(dest, remote.filename)
            os.replace(path, final)
            results.append(final)
            continue
        info = {"source": dataset.source, "file": remote.filename,
                "md5": remote.md5, "urls": list(_urls(remote, base_url))}
        result = unpack.unpack(path, dest, dataset.top, dataset.required,
                               info, progress)
        if not keep_archive:
            os.remove(path)
        results.append(result)
    if os.path.isdir(folder) and not os.listdir(folder):
        os.rmdir(folder)
    return results if dataset.top is None else results[0]


def next_options(name, result):
    """The recipe options that use a finished download.

    Arguments
    ---------
    name : str
        A key of :data:`SOURCES`.
    result : str or list of str
        What :func:`get` returned.

    Returns
    -------
    list of str
        Lines to print.

    Example
    -------
    >>> next_options("rirs_noises", "/data/RIRS_NOISES")
    ['training: --rir_folder=/data/RIRS_NOISES']
    """
    dataset = SOURCES[name]
    if dataset.top is not None:
        return [f"training: {dataset.option}={result}"]
    by_name = dict(zip((f.filename for f in dataset.files), result,
                       strict=True))
    lists = ", ".join(
        f"{{name: {f.name}, path: {by_name[f.filename]}}}"
        for f in dataset.files
    )
    vox1_o = by_name[dataset.files[0].filename]
    return [
        f"training (speakers of Vox1-O left out): --trial_lists={vox1_o}",
        f"scoring (Vox1-O, E and H): '--trial_lists=[{lists}]'",
        "(Vox1-E and -H use all VoxCeleb1 speakers: to score them, train "
        "on VoxCeleb2 only)",
    ]


def _table():
    """The table of sources as text lines."""
    lines = []
    for d in SOURCES.values():
        lines.append(f"{d.name}: {d.title}")
        lines.append(f"  source: {d.source} ({d.licence})")
        lines.append(f"  unpacks to: {d.layout}")
        for f in d.files:
            check = f"md5 {f.md5}" if f.md5 else f"{f.trials} trials"
            lines.append(f"  {f.filename}: {check}, ~{f.approx_bytes:,} B")
            lines.extend(f"    {u}" for u in f.urls)
    return lines


def main(argv=None):
    """Command line: ``<what> [<what> ...] <dest>``.

    Arguments
    ---------
    argv : list of str or None
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 on a download or checksum error.

    Example
    -------
    >>> main(["--list"])
    musan: ...
    0
    """
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_ext.data.download",
        description="Download, check and unpack MUSAN, RIRS_NOISES or the "
        "VoxCeleb1 trial lists (never VoxCeleb audio).",
    )
    parser.add_argument(
        "items", nargs="*", metavar="what ... dest",
        help=f"one or more of {', '.join(SOURCES)}, then the destination "
        "folder",
    )
    parser.add_argument("--list", action="store_true",
                        help="print the table of sources and exit")
    parser.add_argument("--base_url", default=None,
                        help="fetch <base_url>/<file> (a local mirror)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the server (default 10)")
    parser.add_argument("--retries", type=int, default=3,
                        help="resumed attempts after a cut (default 3)")
    parser.add_argument("--keep_archive", action="store_true",
                        help="keep the archive after unpacking")
    parser.add_argument("--no_progress", action="store_true")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(_table()))
        return 0
    if len(args.items) < 2:
        parser.error("give what to download and a destination folder")
    *what, dest = args.items
    unknown = [w for w in what if w not in SOURCES]
    if unknown:
        parser.error(
            f"unknown {', '.join(unknown)}; choose from {', '.join(SOURCES)}"
        )
    lines = []
    for name in what:
        try:
            result = get(
                name, dest, args.base_url, args.timeout, args.retries,
                args.keep_archive, not args.no_progress,
            )
        except (DownloadError, ChecksumError, unpack.UnpackError) as err:
            print(f"error: {name}: {err}", file=sys.stderr)
            return 1
        lines.extend(next_options(name, result))
    print("Done. Pass these options next:")
    print("\n".join(f"  {line}" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
