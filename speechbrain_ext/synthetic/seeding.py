"""Seeded random generators of the synthetic corpus.

Every random choice of the generator comes from a generator derived from
the corpus seed, a text tag naming what is drawn (``"speaker"``,
``"utterance"``, ``"noise"``, ...) and integers (speaker, utterance, room
numbers), so each part depends on its own inputs only.

Authors
 * MR-RawNet recipe contributors
"""

import zlib

import numpy as np


def _rng(seed, tag, *ints):
    """A numpy Generator derived from a seed, a text tag and integers."""
    words = [int(seed) & 0xFFFFFFFF, zlib.crc32(tag.encode())]
    words += [int(i) & 0xFFFFFFFF for i in ints]
    return np.random.default_rng(np.random.SeedSequence(words))
