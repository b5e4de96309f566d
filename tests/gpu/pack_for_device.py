#!/usr/bin/env python3
"""Packs what a bare GPU machine needs for ``gpu_check.py`` into ``.gpu/``.

The device machines of this workplace start bare: their Python has torch
but not SpeechBrain, HyperPyYAML or soundfile, the shared folder is not
beside the repository, and at most 64 MiB travel with the working tree.
The official-format checkpoint alone is 67 MiB, so this writes a slimmed
copy of the shared folder, with the same network weights:

* ``.gpu/shared/fixtures/mr_rawnet_official/official_format_checkpoint.pt.gz``:
  every ``__S__.`` (network) tensor of the checkpoint, unchanged, and the
  first 16 rows of the 7,205 AAM-softmax class weights ``__L__.weight``
  (the parity check does not use them), gzipped;
* ``.gpu/shared/fixtures/mr_rawnet_official/parity_cases.npz``: the
  waveforms and float64 reference embeddings only (no taps);
* ``.gpu/shared/reference/official_mr_rawnet/``: the official code;
* ``.gpu/wheels/``: wheels (CPython 3.12, manylinux x86-64) of the
  packages the machine lacks, at the versions installed here.

Then, on the machine (``tests/gpu/on_device.sh`` does it)::

    bash tests/gpu/on_device.sh          # with .gpu carried along

Usage::

    python tests/gpu/pack_for_device.py [--shared DIR] [--out .gpu] \\
        [--no-wheels]

``.gpu/`` is ignored by git. Needs network access to PyPI for the wheels.

Authors
 * MR-RawNet recipe contributors
"""

import argparse
import gzip
import importlib.metadata
import io
import pathlib
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import FIXTURE, OFFICIAL_CODE, ROOT, find_shared  # noqa: E402

#: Packages the GPU machine's image lacks (its torch, numpy, scipy,
#: sentencepiece, huggingface-hub, tqdm, pyyaml, pytest... are there).
WHEELS = [
    "speechbrain", "hyperpyyaml", "ruamel.yaml", "ruamel.yaml.clib",
    "soundfile", "cffi", "pycparser", "asteroid-filterbanks",
]
PLATFORMS = [
    "manylinux_2_28_x86_64", "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64",
]
AAM_ROWS = 16
LIMIT_MIB = 64


def slim_checkpoint(src, dst):
    """Writes the network tensors and a few class rows, gzipped.

    Arguments
    ---------
    src : pathlib.Path
        The official-format checkpoint.
    dst : pathlib.Path
        The ``.pt.gz`` to write.
    """
    state = torch.load(src, map_location="cpu", weights_only=True)
    slim = {
        k: (v[:AAM_ROWS].clone() if k == "__L__.weight" else v)
        for k, v in state.items()
    }
    buffer = io.BytesIO()
    torch.save(slim, buffer)
    with gzip.open(dst, "wb", compresslevel=6) as f:
        f.write(buffer.getvalue())


def slim_cases(src, dst):
    """Keeps the waveforms and the float64 embeddings of the cases.

    Arguments
    ---------
    src : pathlib.Path
        ``parity_cases.npz``.
    dst : pathlib.Path
        The reduced copy.
    """
    data = np.load(src)
    keep = {
        k: data[k] for k in data.files
        if k.startswith(("wav__", "emb_fp64__"))
    }
    np.savez_compressed(dst, **keep)


def download_wheels(folder):
    """``pip download`` of :data:`WHEELS` at the versions installed here.

    Arguments
    ---------
    folder : pathlib.Path
        Where the wheels go.

    Returns
    -------
    list of str
        The packages that could not be fetched.
    """
    folder.mkdir(parents=True, exist_ok=True)
    missing = []
    for name in WHEELS:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(f"{name} (not installed here)")
            continue
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps",
            "--only-binary=:all:", "--python-version", "3.12",
            "--implementation", "cp", "-d", str(folder),
            *[f"--platform={p}" for p in PLATFORMS],
            f"{name}=={version}",
        ]
        if subprocess.run(cmd).returncode != 0:
            missing.append(f"{name}=={version}")
    return missing


def size_mib(path):
    """Total size of the files under ``path``, in MiB.

    Arguments
    ---------
    path : str or pathlib.Path
        A folder.

    Returns
    -------
    float
        MiB.

    Example
    -------
    >>> size_mib(HERE) < 1
    True
    """
    return sum(
        p.stat().st_size for p in pathlib.Path(path).rglob("*") if p.is_file()
    ) / 2**20


def main(argv=None):
    """Packs ``.gpu/``.

    Arguments
    ---------
    argv : list of str or None
        Command line.

    Returns
    -------
    int
        Exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", default=None)
    parser.add_argument("--out", default=str(ROOT / ".gpu"))
    parser.add_argument("--no-wheels", action="store_true")
    args = parser.parse_args(argv)
    shared = find_shared(args.shared)
    out = pathlib.Path(args.out)
    if shared is None:
        print("no shared folder found (--shared DIR or MR_RAWNET_SHARED)")
        return 2
    fixture = out / "shared" / FIXTURE
    fixture.mkdir(parents=True, exist_ok=True)
    print(f"packing {shared} into {out}")
    slim_checkpoint(
        shared / FIXTURE / "official_format_checkpoint.pt",
        fixture / "official_format_checkpoint.pt.gz",
    )
    slim_cases(shared / FIXTURE / "parity_cases.npz",
               fixture / "parity_cases.npz")
    code = out / "shared" / OFFICIAL_CODE
    shutil.rmtree(code, ignore_errors=True)
    shutil.copytree(shared / OFFICIAL_CODE, code)
    missing = [] if args.no_wheels else download_wheels(out / "wheels")
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True
    ).stdout.split(b"\0")
    repo = sum(
        (ROOT / p.decode()).stat().st_size for p in tracked
        if p and (ROOT / p.decode()).is_file()
    ) / 2**20
    total = size_mib(out) + repo
    print(f"{out}: {size_mib(out):.1f} MiB; with the tracked files "
          f"{total:.1f} MiB (the device machine takes {LIMIT_MIB} MiB)")
    for name in missing:
        print(f"could not fetch a wheel for {name}")
    return 1 if missing or total > LIMIT_MIB else 0


if __name__ == "__main__":
    sys.exit(main())
