"""The package installs from ``pyproject.toml`` and works from anywhere.

A throwaway install (``pip install --no-deps --target``, from a copy of
the checkout so that the checkout itself is not touched) is put on
``PYTHONPATH`` of a fresh process whose working directory is elsewhere;
that process loads a pretrained folder with
``EncoderClassifier.from_hparams`` and embeds a waveform. Before the
package was installable, ``pip`` refused the project ("Multiple top-level
packages discovered in a flat-layout") and such a process failed with
``ImportError: There is no such class as
speechbrain_ext.lobes.mr_rawnet.MRRawNet``.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from helpers import ROOT, TINY_KWARGS

from speechbrain_ext.lobes.mr_rawnet import MRRawNet
from speechbrain_ext.pretrained import write_pretrained_folder

_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import torch
    import speechbrain_ext
    from speechbrain.inference.speaker import EncoderClassifier
    folder, savedir = sys.argv[1:3]
    model = EncoderClassifier.from_hparams(
        source=folder, savedir=savedir, run_opts={"device": "cpu"})
    torch.manual_seed(3)
    emb = model.encode_batch(torch.randn(2, 8000), torch.tensor([1.0, 0.6]))
    print(json.dumps({"package": speechbrain_ext.__file__,
                      "cwd": os.getcwd(), "emb": emb.tolist()}))
""")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The package installed into a fresh target folder."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed (needed offline to build)")
    base = tmp_path_factory.mktemp("install")
    src = base / "src"
    # The checkout as a fresh clone has it (recipes/, tests/, hparams/
    # beside the package), without what runs leave in it.
    shutil.copytree(
        ROOT,
        src,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "results", "demo_data", "build", "*.egg-info",
            "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache",
        ),
    )
    target = base / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps",
         "--no-build-isolation", "--no-index", "--target", str(target),
         str(src)],
        capture_output=True, text=True, timeout=300, cwd=str(base),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return target


def test_pretrained_folder_loads_from_another_working_directory(
    installed, tmp_path
):
    torch.manual_seed(0)
    model = MRRawNet(**TINY_KWARGS).eval()
    folder = tmp_path / "model"
    write_pretrained_folder(
        str(folder), TINY_KWARGS, model.state_dict(),
        torch.randn(3, TINY_KWARGS["lin_neurons"]), ["a", "b", "c"],
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)
    }
    env.update(PYTHONPATH=str(installed), HF_HUB_OFFLINE="1",
               OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(folder), str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=300, cwd=str(elsewhere),
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # The installed copy was used, not the checkout (nor the cwd).
    assert result["package"].startswith(str(installed) + os.sep)
    assert result["cwd"] == str(elsewhere)
    torch.manual_seed(3)
    wavs, lengths = torch.randn(2, 8000), torch.tensor([1.0, 0.6])
    with torch.no_grad():
        expected = model(wavs, lengths)
    got = torch.tensor(result["emb"])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_installed_package_has_every_module(installed):
    """Every module of the checkout is in the install (no data left out)."""
    def modules(root):
        return {
            p.relative_to(root).as_posix()
            for p in root.rglob("*.py")
            if "__pycache__" not in p.parts
        }

    ours = modules(ROOT / "speechbrain_ext")
    assert ours and ours == modules(installed / "speechbrain_ext")
    # Only the library: no recipes, tests or hparams at the top level.
    top = {p.name for p in installed.iterdir()}
    assert "speechbrain_ext" in top
    assert not top & {"recipes", "tests", "hparams"}
