"""The AAM-softmax loss of the official MR-RawNet training, in any precision.

Input: cosine logits ``[B, 1, N]`` between the normalised embeddings and
the normalised class weights (SpeechBrain's ECAPA ``Classifier`` with
``lin_blocks: 0`` computes them). For the target class the cosine
``cos(theta)`` becomes ``cos(theta + m)``; where ``theta + m`` would pass
pi (``cos(theta) <= cos(pi - m)``) it becomes ``cos(theta) - m sin(m)``
instead, which keeps the target logit decreasing in ``theta``. All logits
are multiplied by the scale ``s`` and the loss is the mean cross entropy.
This is ``loss/aamsoftmax.py`` of the official code (``easy_margin``
False), and it differs from SpeechBrain's ``AdditiveAngularMargin`` in two
ways that matter for a side-by-side check: SpeechBrain computes in float32
whatever the input and clamps the cosines to ``1 - 1e-7``; this module
keeps float64 inputs in float64 (lower precisions go up to float32) and
does not clamp the cosines (only ``1 - cos^2`` is clamped to ``[0, 1]``).

Authors
 * MR-RawNet recipe contributors
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


class AngularMarginLogits(nn.Module):
    """Scaled logits with the additive angular margin on the target class.

    Arguments
    ---------
    margin : float
        The angular margin ``m`` in radians.
    scale : float
        The scale ``s``.

    Example
    -------
    >>> logits = AngularMarginLogits(margin=0.3, scale=30)
    >>> cos = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    >>> out = logits(cos, torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    >>> round(out[0, 0].item(), 6), out[0, 1].item()
    (28.660095, 0.0)
    """

    def __init__(self, margin=0.3, scale=30.0):
        super().__init__()
        self.margin = float(margin)
        self.scale = float(scale)
        self.cos_m = math.cos(self.margin)
        self.sin_m = math.sin(self.margin)
        self.threshold = math.cos(math.pi - self.margin)
        self.fallback = math.sin(math.pi - self.margin) * self.margin

    def forward(self, cosine, one_hot):
        """Applies the margin to the target cosines and scales.

        Arguments
        ---------
        cosine : torch.Tensor
            Cosine logits ``[B, N]``.
        one_hot : torch.Tensor
            One-hot targets ``[B, N]``.

        Returns
        -------
        torch.Tensor
            Scaled logits ``[B, N]``, float64 for float64 input, else
            float32.
        """
        if cosine.dtype != torch.float64:
            cosine = cosine.float()
        one_hot = one_hot.to(cosine.dtype)
        sine = torch.sqrt((1.0 - cosine * cosine).clamp(0, 1))
        shifted = cosine * self.cos_m - sine * self.sin_m
        shifted = torch.where(
            cosine > self.threshold, shifted, cosine - self.fallback
        )
        logits = one_hot * shifted + (1.0 - one_hot) * cosine
        return logits * self.scale


class AAMSoftmaxLoss(nn.Module):
    """Mean cross entropy of :class:`AngularMarginLogits` (official loss).

    A drop-in for ``LogSoftmaxWrapper(AdditiveAngularMargin(...))``: same
    call ``(logits [B, 1, N], targets [B, 1], lengths)``, and the margin
    module is ``loss_fn`` (``SpeakerBrain`` uses it for the training
    accuracy on margin-applied logits, as the official trainer reports).

    Arguments
    ---------
    margin : float
        The angular margin in radians (official: 0.3).
    scale : float
        The scale (official: 30).

    Example
    -------
    >>> loss = AAMSoftmaxLoss(margin=0.3, scale=30)
    >>> cos = torch.tensor([[[0.5, 0.4, -0.2]]])
    >>> round(loss(cos, torch.tensor([[0]])).item(), 4)  # margin: > 0
    5.3525
    """

    def __init__(self, margin=0.3, scale=30.0):
        super().__init__()
        self.loss_fn = AngularMarginLogits(margin, scale)

    def forward(self, outputs, targets, length=None):
        """The mean loss of a batch.

        Arguments
        ---------
        outputs : torch.Tensor
            Cosine logits ``[B, 1, N]`` (or ``[B, N]``).
        targets : torch.Tensor
            Class indices ``[B, 1]`` (or ``[B]``).
        length : torch.Tensor or None
            Unused (one label per utterance).

        Returns
        -------
        torch.Tensor
            The mean cross entropy, a scalar.
        """
        del length
        cosine = outputs.reshape(outputs.shape[0], outputs.shape[-1])
        target = targets.reshape(-1).long()
        one_hot = F.one_hot(target, cosine.shape[1])
        logits = self.loss_fn(cosine, one_hot)
        return F.cross_entropy(logits, target)
