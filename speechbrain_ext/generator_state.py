"""The state of a numpy random Generator as plain, JSON-serialisable data.

Checkpoint hooks of the augmentation pipeline and of the noise clip banks
save their generators with :func:`generator_state` and restore them with
:func:`restore_generator`, so that a resumed run draws what the
uninterrupted one would have drawn (see
:mod:`speechbrain_ext.training.random_state` for the other streams).

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import numpy as np


def generator_state(rng):
    """JSON-serialisable state of a numpy Generator (None stays None).

    Arguments
    ---------
    rng : numpy.random.Generator or None
        The generator.

    Returns
    -------
    dict or None
        Its bit generator's state.

    Example
    -------
    >>> import json
    >>> rng = np.random.default_rng(0)
    >>> again = restore_generator(json.loads(json.dumps(generator_state(rng))))
    >>> int(rng.integers(1000)) == int(again.integers(1000))
    True
    """
    return None if rng is None else rng.bit_generator.state


def restore_generator(state):
    """A numpy Generator in a state from :func:`generator_state`.

    Arguments
    ---------
    state : dict or None
        The saved state.

    Returns
    -------
    numpy.random.Generator or None
        The generator.
    """
    if state is None:
        return None
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)
