"""Valid sample counts of a padded batch, from relative lengths.

Shared by :class:`~speechbrain_ext.augment.official.OfficialAugmentation`
(powers over each utterance's valid samples) and
:class:`~speechbrain_ext.augment.pipeline.TrainingPipeline` (tiling each
crop back from its valid part).

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import torch


def _valid_counts(lengths, n_samples):
    """Relative lengths to sample counts in [1, n_samples]."""
    counts = torch.round(lengths.double() * n_samples).long()
    return counts.clamp(1, n_samples)

