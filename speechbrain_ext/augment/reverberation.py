"""Reverberation with simulated room impulse responses (RIRs).

:class:`Reverberation` gives
:class:`~speechbrain_ext.augment.official.OfficialAugmentation` its
``reverb`` condition. It follows the official code: the RIR is scaled to
unit energy, convolved in full (FFT) and the result truncated to the input
length, without direct-path alignment or level correction.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import torch


class Reverberation:
    """Mixin: convolves rows with RIRs drawn from the ``rir`` clip bank.

    The class using it provides ``_banks["rir"]`` (a
    :class:`~speechbrain_ext.augment.clip_bank.ClipBank` of whole RIRs, or
    anything with ``take(n)`` returning ``n`` float32 arrays).

    Arguments
    ---------
    None (a mixin; it has no constructor of its own).

    Returns
    -------
    None

    Example
    -------
    >>> import numpy as np
    >>> class Bank:
    ...     def take(self, n):
    ...         return [np.array([2.0, 0.0], dtype=np.float32)] * n
    >>> class Room(Reverberation):
    ...     _banks = {"rir": Bank()}
    >>> x = torch.tensor([[1.0, 2.0, 3.0]])
    >>> torch.allclose(Room()._reverberate(x), x, atol=1e-5)
    True
    """

    def _reverberate(self, x):
        """Convolves every row with its own unit-energy RIR."""
        rirs = self._banks["rir"].take(x.shape[0])
        longest = max(len(r) for r in rirs)
        h = torch.zeros(len(rirs), longest)
        for i, rir in enumerate(rirs):
            h[i, : len(rir)] = torch.from_numpy(rir)
        h = h.to(x.device, non_blocking=True)
        h = h / h.pow(2).sum(dim=1, keepdim=True).sqrt().clamp_min(1e-12)
        n_samples = x.shape[1]
        n_fft = 1 << (n_samples + longest - 2).bit_length()
        spec = torch.fft.rfft(x, n_fft) * torch.fft.rfft(h, n_fft)
        return torch.fft.irfft(spec, n_fft)[:, :n_samples]
