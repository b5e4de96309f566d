"""Imports the official MR-RawNet code from the shared folder, for tests.

The official implementation (kimho1wq/MR-RawNet, MIT) lives unchanged in
``shared/reference/official_mr_rawnet``. Tests and benchmarks import it
from there to compare with this project side by side; nothing of it is
copied into the project. ``official_module(name)`` imports one of its
modules (``models.MR_RawNet``, ``DatasetLoader``, ``tuneThreshold``...)
with the folder on ``sys.path`` and the two shims its ``SOURCE.md``
describes for a CPU with today's packages (``numpy.float``), or skips the
calling test with a message when the folder or a test-only dependency
(``asteroid-filterbanks``, ``scikit-learn``) is absent.
"""

import importlib
import os
import pathlib
import sys

import numpy
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(
    os.environ.get("MR_RAWNET_SHARED", ROOT.parent / "shared")
)
OFFICIAL_CODE = SHARED / "reference" / "official_mr_rawnet"


def official_module(name):
    """Imports ``name`` from the official code folder, or skips the test.

    Arguments
    ---------
    name : str
        A module of the official code, e.g. ``"models.MR_RawNet"``.

    Returns
    -------
    module
        The imported module.
    """
    if not (OFFICIAL_CODE / "SpeakerNet.py").is_file():
        pytest.skip(
            f"official MR-RawNet code not found in {OFFICIAL_CODE} "
            "(set MR_RAWNET_SHARED to the shared folder)"
        )
    if not hasattr(numpy, "float"):
        numpy.float = float  # DatasetLoader.loadWAV uses the removed alias
    if str(OFFICIAL_CODE) not in sys.path:
        sys.path.insert(0, str(OFFICIAL_CODE))
    try:
        return importlib.import_module(name)
    except ImportError as err:
        pytest.skip(
            f"official module {name} needs {err.name} "
            "(pip install -r requirements-dev.txt)"
        )


def official_speakernet(n_classes, **kwargs):
    """The official ``SpeakerNet`` (``MainModel`` + AAM loss), on the CPU.

    Arguments
    ---------
    n_classes : int
        Number of AAM-softmax classes.
    **kwargs
        More arguments for ``SpeakerNet`` (``nOut``, ``margin``...).

    Returns
    -------
    torch.nn.Module
        ``SpeakerNet``; its ``state_dict()`` has the layout of the official
        trainer's checkpoints (``__S__.``/``__L__.`` prefixes).
    """
    official_module("models.MR_RawNet")  # skips without its dependency
    official_module("loss.aamsoftmax")
    speakernet = official_module("SpeakerNet")
    args = {"nOut": 256, "margin": 0.3, "scale": 30, **kwargs}
    return speakernet.SpeakerNet(
        model="MR_RawNet",
        optimizer="adam",
        trainfunc="aamsoftmax",
        nPerSpeaker=1,
        nClasses=n_classes,
        **args,
    )
