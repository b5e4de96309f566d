"""A no-op module for SpeechBrain interfaces that expect feature stages.

``EncoderClassifier.encode_batch`` always calls ``compute_features(wavs)``
and ``mean_var_norm(feats, lengths)`` before the embedding model. MR-RawNet
works on raw waveforms and normalises them itself, so both stages are this
pass-through in its hyperparameter files.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

from torch import nn


class PassThrough(nn.Module):
    """Returns its first input unchanged; extra arguments are ignored.

    Example
    -------
    >>> import torch
    >>> x = torch.ones(2, 3)
    >>> PassThrough()(x, torch.ones(2)) is x
    True
    """

    def forward(self, x, *args, **kwargs):
        """Returns ``x``.

        Arguments
        ---------
        x : torch.Tensor
            Any tensor.
        *args : tuple
            Ignored (e.g. relative lengths).
        **kwargs : dict
            Ignored.

        Returns
        -------
        torch.Tensor
            ``x`` itself.
        """
        return x
