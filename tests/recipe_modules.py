"""The recipe scripts as modules, for in-process tests of their classes.

``recipes/train_speaker_embeddings.py`` holds ``SpeakerBrain`` (as
SpeechBrain recipes hold their ``Brain``); tests that drive it in-process
load the script once with :func:`training_recipe`.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import functools
import importlib.util
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
TRAINING_RECIPE = ROOT / "recipes" / "train_speaker_embeddings.py"


@functools.cache
def training_recipe():
    """The training recipe, imported as the module ``train_recipe``.

    Returns
    -------
    module
        With ``SpeakerBrain``, ``dataio_prep``, ``main``, ...

    Example
    -------
    >>> training_recipe().SpeakerBrain.__name__
    'SpeakerBrain'
    """
    spec = importlib.util.spec_from_file_location(
        "train_recipe", TRAINING_RECIPE
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_recipe"] = module
    spec.loader.exec_module(module)
    return module
