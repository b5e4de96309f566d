"""Additive noise at a drawn SNR: MUSAN noise, music and babble.

:class:`AdditiveNoise` gives
:class:`~speechbrain_ext.augment.official.OfficialAugmentation` the mixing
of its ``noise``, ``music``, ``babble`` and ``tv`` conditions: each noise
file of a batch is read from a clip bank, cropped or tiled to the batch
length, scaled to its drawn SNR and added, all rows at once (one matmul).

SNR definition: the additive signal of one noise file is scaled so that
``P(reference) / P(scaled noise) = 10 ** (snr / 10)``, both powers being
mean squares over the utterance's valid samples plus ``power_floor``. The
reference is the signal the noise is added to (the clean crop, or the
babbled crop for the music of ``tv``); babble files are each scaled
against the same reference and summed. The clean signal itself is never
rescaled, as in the official code. The floor is the official 1e-4 (on
``[-1, 1]`` audio) by default; it makes the true SNR of quiet speech or
noise higher than the drawn one, as in the official run (a tiny floor such
as 1e-8 makes the drawn SNR the true one).

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import numpy as np
import torch


def _fit_length(clips, n):
    """Crops or tiles ``[M, C]`` clips along time to ``[M, n]``."""
    if clips.shape[1] >= n:
        return clips[:, :n]
    index = torch.arange(n, device=clips.device) % clips.shape[1]
    return clips[:, index]


class AdditiveNoise:
    """Mixin: adds the noise files of a plan at their SNRs.

    The class using it provides ``_banks`` (bank name to a
    :class:`~speechbrain_ext.augment.clip_bank.ClipBank`, or anything with
    ``take(n)`` returning ``n`` float32 arrays) and ``power_floor``; see
    the module docstring for the SNR definition.

    Arguments
    ---------
    None (a mixin; it has no constructor of its own).

    Returns
    -------
    None

    Example
    -------
    >>> class Bank:
    ...     def take(self, n):
    ...         return [np.ones(4, dtype=np.float32)] * n
    >>> class Mixer(AdditiveNoise):
    ...     power_floor = 0.0
    ...     _banks = {"noise": Bank()}
    >>> plan = [{"additions": [(0, "noise", 0.0)]}, {"additions": []}]
    >>> Mixer()._add_noises(torch.ones(2, 4), plan, 0, torch.tensor([4, 4]),
    ...                     None)
    tensor([[2., 2., 2., 2.],
            [1., 1., 1., 1.]])
    """

    def _add_noises(self, signal, plan, stage, counts, mask):
        """Adds the noise files of one stage at their SNRs."""
        specs = [
            (row, bank, snr)
            for row, p in enumerate(plan)
            for st, bank, snr in p["additions"]
            if st == stage
        ]
        if not specs:
            return signal
        device, n_samples = signal.device, signal.shape[1]
        owners, arrays, snrs = [], [], []
        for bank in sorted({b for _, b, _ in specs}):
            mine = [(r, s) for r, b, s in specs if b == bank]
            arrays += self._banks[bank].take(len(mine))
            owners += [r for r, _ in mine]
            snrs += [s for _, s in mine]
        clips = torch.from_numpy(np.stack(arrays))
        clips = _fit_length(clips.to(device, non_blocking=True), n_samples)
        index = torch.tensor(owners, device=device)
        if mask is not None:
            clips = clips * mask[index]
        n = counts.to(signal.dtype)
        floor = self.power_floor
        ref_power = torch.linalg.vector_norm(signal, dim=1) ** 2 / n + floor
        clip_power = torch.linalg.vector_norm(clips, dim=1) ** 2 / n[index]
        snrs = torch.tensor(snrs, device=device, dtype=signal.dtype)
        gain = torch.sqrt(
            ref_power[index] / ((clip_power + floor) * 10 ** (snrs / 10))
        )
        # [batch, clips] mixing matrix: one matmul sums each row's clips.
        mixing = torch.zeros(
            signal.shape[0], len(owners), device=device, dtype=signal.dtype
        )
        mixing[index, torch.arange(len(owners), device=device)] = gain
        return signal + mixing @ clips
