"""Speed perturbation of whole training batches, on their device.

The last step of :class:`~speechbrain_ext.augment.pipeline.TrainingPipeline`:
:class:`SpeedPerturbation` resamples the whole batch by one factor drawn
from 0.9, 1.0, 1.1 and trims it to a multiple of 320 samples. Labels are
unchanged.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import torch
import torchaudio.functional as AF
from torch import nn

from speechbrain_ext.augment.seeding import make_generator


class SpeedPerturbation(nn.Module):
    """Resamples a whole batch by one random speed factor, on its device.

    A factor ``s`` above 1 makes speech faster (and shorter): the batch is
    resampled from ``round(100 s)`` to 100 with
    ``torchaudio.functional.resample`` on the tensor's own device, so a GPU
    batch never goes through the CPU. The new length is about ``T / s``,
    then trimmed down to a multiple of ``length_multiple`` samples. Relative
    lengths are rescaled to the trimmed batch. Labels are unchanged.

    Arguments
    ---------
    speeds : sequence of float
        Factors to draw from, uniformly (one per batch).
    length_multiple : int
        The output length is a multiple of this (MR-RawNet needs 320).
    seed : int or None
        Base seed (see :func:`make_generator`).

    Example
    -------
    >>> sp = SpeedPerturbation(speeds=[1.1])
    >>> out, lens = sp(torch.randn(2, 16000), torch.tensor([1.0, 0.5]))
    >>> out.shape, lens
    (torch.Size([2, 14400]), tensor([1.0000, 0.5051]))
    """

    def __init__(self, speeds=(0.9, 1.0, 1.1), length_multiple=320, seed=None):
        super().__init__()
        speeds = [float(s) for s in speeds]
        if not speeds or min(speeds) <= 0:
            raise ValueError(f"speeds must be positive, got {speeds}")
        self.speeds = speeds
        self.length_multiple = int(length_multiple)
        self.seed = seed
        self.last_speed = None
        self._rng = None

    def forward(self, wavs, lengths):
        """Resamples the batch by one drawn factor.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``[batch, time]``.
        lengths : torch.Tensor
            Relative lengths ``[batch]``.

        Returns
        -------
        wavs : torch.Tensor
            Resampled and trimmed waveforms ``[batch, new_time]``.
        lengths : torch.Tensor
            Relative lengths in the new batch.
        """
        if self._rng is None:
            self._rng = make_generator(self.seed, salt=2)
        speed = self.speeds[int(self._rng.integers(len(self.speeds)))]
        self.last_speed = speed
        return self.apply_speed(wavs, lengths, speed)

    def apply_speed(self, wavs, lengths, speed):
        """Resamples the batch by a given factor (no random draw).

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``[batch, time]``.
        lengths : torch.Tensor
            Relative lengths ``[batch]``.
        speed : float
            The speed factor.

        Returns
        -------
        wavs : torch.Tensor
            Resampled and trimmed waveforms.
        lengths : torch.Tensor
            Relative lengths in the new batch.

        Example
        -------
        >>> sp = SpeedPerturbation()
        >>> sp.apply_speed(torch.randn(1, 3200), torch.ones(1), 0.9)[0].shape
        torch.Size([1, 3520])
        """
        n_in = wavs.shape[1]
        orig = int(round(speed * 100))
        if orig != 100:
            with torch.autocast(device_type=wavs.device.type, enabled=False):
                out = AF.resample(wavs.float(), orig, 100).to(wavs.dtype)
        else:
            out = wavs
        n_keep = out.shape[1] // self.length_multiple * self.length_multiple
        if n_keep == 0:
            raise ValueError(
                f"{n_in} samples at speed {speed} give fewer than "
                f"{self.length_multiple} samples"
            )
        new_counts = lengths.double() * n_in * 100 / orig
        new_lengths = (new_counts / n_keep).clamp(max=1.0).to(lengths.dtype)
        return out[:, :n_keep], new_lengths
