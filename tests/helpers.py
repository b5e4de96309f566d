"""Shared test helpers: paths, the tiny model configuration, the recipes.

The one module test files import helpers from (``from helpers import
...``); fixtures are in ``conftest.py``, which imports these too.

* :data:`ROOT`, :data:`SHARED`, :data:`OFFICIAL_FIXTURE`: the checkout,
  the shared folder (``MR_RAWNET_SHARED`` or ``../shared``) and the
  official parity fixture in it;
* :data:`TINY_KWARGS`: a small MR-RawNet of the same architecture family;
* :func:`training_recipe`: ``recipes/train_speaker_embeddings.py`` as a
  module (its ``SpeakerBrain``, as SpeechBrain recipes hold their
  ``Brain``), for in-process tests.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import functools
import importlib.util
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(
    os.environ.get("MR_RAWNET_SHARED", ROOT.parent / "shared")
)
OFFICIAL_FIXTURE = SHARED / "fixtures" / "mr_rawnet_official"

#: A small MR-RawNet: same architecture family, tiny widths.
TINY_KWARGS = {
    "sinc_filters": 8,
    "tcn_channels": 8,
    "tcn_hidden": 6,
    "tcn_repeats": 1,
    "tcn_blocks": 4,
    "channels": 8,
    "mra_depths": [1, 1, 1],
    "mra_dilation": 2,
    "mra_scale": 4,
    "aggregate_channels": 12,
    "attention_channels": 6,
    "lin_neurons": 5,
}
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
