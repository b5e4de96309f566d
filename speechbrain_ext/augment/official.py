"""The official one-of-six augmentation conditions (MUSAN and RIRs).

:class:`OfficialAugmentation` is the first step of
:class:`~speechbrain_ext.augment.pipeline.TrainingPipeline`: every
utterance gets one of six conditions, drawn uniformly and independently:
``clean`` (unchanged), ``reverb`` (a small- or medium-room RIR), ``music``
(5-15 dB), ``babble`` (3-7 speech files, each at its own 13-20 dB),
``noise`` (0-15 dB) or ``tv`` (babble, then music on top of the babbled
signal), computed on the utterance's own crop (powers over its valid
samples, reverb cut to its length). The mixing is
:class:`~speechbrain_ext.augment.additive_noise.AdditiveNoise` (with the
SNR definition), the convolution
:class:`~speechbrain_ext.augment.reverberation.Reverberation`.

Noise and RIR files are read from the CSVs that
:mod:`speechbrain_ext.augment.prepare` writes (columns ``ID, duration,
wav, ...``, the format of SpeechBrain's ``AddNoise``) by a
:class:`~speechbrain_ext.augment.clip_bank.ClipBank`, which reads random
crops ahead of time in background threads, so the training loop rarely
waits for the disk (and never hangs a DataLoader worker forked
meanwhile). The mixing itself runs on the batch's device in float32,
outside autocast; nothing moves between devices except the noise clips,
which go host to device.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import concurrent.futures
import os

import numpy as np
import torch
from torch import nn

from speechbrain_ext.augment.additive_noise import AdditiveNoise
from speechbrain_ext.augment.clip_bank import ClipBank
from speechbrain_ext.augment.lengths import _valid_counts
from speechbrain_ext.augment.reverberation import Reverberation
from speechbrain_ext.augment.seeding import make_generator
from speechbrain_ext.generator_state import generator_state, restore_generator

#: The six official conditions, drawn uniformly per utterance.
CONDITIONS = ("clean", "reverb", "music", "babble", "noise", "tv")

#: Which CSV each condition needs.
_NEEDS = {
    "clean": (),
    "reverb": ("rir",),
    "music": ("music",),
    "babble": ("speech",),
    "noise": ("noise",),
    "tv": ("speech", "music"),
}


class OfficialAugmentation(AdditiveNoise, Reverberation, nn.Module):
    """One of six official conditions per utterance (MUSAN and RIRs).

    See the module docstring for the conditions and
    :mod:`speechbrain_ext.augment.additive_noise` for the SNR definition.
    Only the CSVs that the chosen ``conditions`` need must be given; a
    missing one is an error that names the condition. The batch size,
    shape and lengths are kept. ``last_plan`` holds, after every call, the
    condition and SNRs (in dB) of each utterance, for logging and tests.

    Arguments
    ---------
    noise_csv : str or None
        MUSAN ``noise`` CSV.
    music_csv : str or None
        MUSAN ``music`` CSV.
    speech_csv : str or None
        MUSAN ``speech`` CSV (babble).
    rir_csv : str or None
        RIR CSV (small and medium rooms).
    conditions : sequence of str
        Conditions to draw from, uniformly (subset of ``CONDITIONS``;
        repeat one to make it more likely).
    noise_snr : tuple of float
        SNR range of ``noise`` in dB.
    music_snr : tuple of float
        SNR range of ``music`` (and of the music in ``tv``).
    babble_snr : tuple of float
        SNR range of each babble file.
    babble_count : tuple of int
        Inclusive range of the number of babble files.
    clip_seconds : float
        Length of the noise crops read from disk; longer inputs get the
        crop tiled.
    rir_max_seconds : float or None
        RIRs are cut to this length (None: whole files).
    sample_rate : int
        Sample rate of audio and noise files.
    power_floor : float
        Added to both mean powers in the SNR computation (official: 1e-4).
    threads : int
        Read-ahead threads (0: synchronous reads).
    seed : int or None
        Base seed (see :func:`make_generator`).
    replacements : dict or None
        ``$key`` placeholders in the CSV paths.
    max_bad_fraction : float
        Share of each noise/RIR list that may turn out unusable (skipped
        with a warning) before training stops; see :class:`ClipBank`.

    Example
    -------
    >>> aug = OfficialAugmentation(conditions=["clean"])
    >>> wavs = torch.randn(3, 800)
    >>> out, lens = aug(wavs, torch.ones(3))
    >>> bool(torch.equal(out, wavs)), aug.last_plan[0]["condition"]
    (True, 'clean')
    """

    def __init__(
        self,
        noise_csv=None,
        music_csv=None,
        speech_csv=None,
        rir_csv=None,
        conditions=CONDITIONS,
        noise_snr=(0.0, 15.0),
        music_snr=(5.0, 15.0),
        babble_snr=(13.0, 20.0),
        babble_count=(3, 7),
        clip_seconds=3.0,
        rir_max_seconds=None,
        sample_rate=16000,
        power_floor=1e-4,
        threads=2,
        seed=None,
        replacements=None,
        max_bad_fraction=0.05,
    ):
        super().__init__()
        conditions = list(conditions)
        unknown = sorted(set(conditions) - set(CONDITIONS))
        if unknown or not conditions:
            raise ValueError(
                f"unknown conditions {unknown}; choose from {CONDITIONS}"
            )
        csvs = {
            "noise": noise_csv,
            "music": music_csv,
            "speech": speech_csv,
            "rir": rir_csv,
        }
        for cond in conditions:
            for need in _NEEDS[cond]:
                if csvs[need] is None:
                    raise ValueError(
                        f"augmentation condition '{cond}' needs {need}_csv; "
                        "prepare MUSAN/RIRs or drop the condition"
                    )
                if not os.path.isfile(csvs[need]):
                    raise FileNotFoundError(
                        f"augmentation CSV {csvs[need]} ({need}_csv) does "
                        "not exist"
                    )
        for name, rng_range in (
            ("noise_snr", noise_snr),
            ("music_snr", music_snr),
            ("babble_snr", babble_snr),
        ):
            if len(rng_range) != 2 or rng_range[0] > rng_range[1]:
                raise ValueError(f"{name} must be (low, high), got {rng_range}")
        if not 1 <= babble_count[0] <= babble_count[1]:
            raise ValueError(
                "babble_count must be (low, high) with 1 <= low, got "
                f"{babble_count}"
            )
        self.conditions = conditions
        self.csvs = csvs
        self.snr = {
            "noise": tuple(map(float, noise_snr)),
            "music": tuple(map(float, music_snr)),
            "speech": tuple(map(float, babble_snr)),
        }
        self.babble_count = (int(babble_count[0]), int(babble_count[1]))
        self.clip_samples = int(round(clip_seconds * sample_rate))
        self.rir_max_samples = (
            None
            if rir_max_seconds is None
            else int(round(rir_max_seconds * sample_rate))
        )
        self.power_floor = float(power_floor)
        self.threads = int(threads)
        self.seed = seed
        self.replacements = replacements
        self.max_bad_fraction = float(max_bad_fraction)
        self.last_plan = []
        self._rng = None
        self._banks = None
        self._executor = None

    def __getstate__(self):
        """Drops the thread pool and banks when pickled."""
        state = dict(self.__dict__)
        state["_banks"] = None
        state["_executor"] = None
        return state

    def _setup(self):
        """Creates the generator, the thread pool and the clip banks."""
        self._rng = make_generator(self.seed, salt=1)
        if self.threads > 0:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                self.threads, thread_name_prefix="clipbank"
            )
        needed = {n for c in self.conditions for n in _NEEDS[c]}
        self._banks = {}
        for name in sorted(needed):
            whole = name == "rir"
            self._banks[name] = ClipBank(
                self.csvs[name],
                clip_samples=None if whole else self.clip_samples,
                rng=np.random.default_rng(self._rng.integers(2**63)),
                executor=self._executor,
                replacements=self.replacements,
                max_samples=self.rir_max_samples if whole else None,
                max_bad_fraction=self.max_bad_fraction,
            )

    def random_state(self):
        """The state of the condition generator and of every clip bank.

        Returns
        -------
        dict
            JSON-able; see :meth:`set_random_state`.
        """
        banks = None
        if self._banks is not None:
            banks = {k: b.random_state() for k, b in self._banks.items()}
        return {"rng": generator_state(self._rng), "banks": banks}

    def set_random_state(self, state):
        """Restores :meth:`random_state` (setting the banks up if needed).

        Arguments
        ---------
        state : dict
            From :meth:`random_state`.

        Returns
        -------
        None
        """
        if state["banks"] is not None:
            if self._banks is None:
                self._setup()
            for name, bank_state in state["banks"].items():
                self._banks[name].set_random_state(bank_state)
        self._rng = restore_generator(state["rng"])

    def close(self):
        """Stops the read-ahead threads (the module stays usable).

        Returns
        -------
        None

        Example
        -------
        >>> OfficialAugmentation(conditions=["clean"]).close()
        """
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self._executor = None
        self._banks = None

    def draw_plan(self, batch_size):
        """Draws the condition and SNRs of every utterance of a batch.

        Arguments
        ---------
        batch_size : int
            Number of utterances.

        Returns
        -------
        list of dict
            Per utterance: ``condition`` and ``additions``, a list of
            ``(stage, bank, snr_db)`` (stage 0 for noise, music and
            babble, 1 for the music of ``tv``).

        Example
        -------
        >>> aug = OfficialAugmentation(conditions=["clean"])
        >>> aug.draw_plan(2)
        [{'condition': 'clean', 'additions': []}, ...]
        """
        if self._rng is None:
            self._rng = make_generator(self.seed, salt=1)
        rng = self._rng
        plan = []
        for index in rng.integers(len(self.conditions), size=batch_size):
            cond = self.conditions[int(index)]
            adds = []
            if cond in ("babble", "tv"):
                k = int(
                    rng.integers(self.babble_count[0], self.babble_count[1] + 1)
                )
                adds += [
                    (0, "speech", self._snr(rng, "speech")) for _ in range(k)
                ]
            if cond == "music":
                adds.append((0, "music", self._snr(rng, "music")))
            if cond == "noise":
                adds.append((0, "noise", self._snr(rng, "noise")))
            if cond == "tv":
                adds.append((1, "music", self._snr(rng, "music")))
            plan.append({"condition": cond, "additions": adds})
        return plan

    def _snr(self, rng, bank):
        low, high = self.snr[bank]
        return float(rng.uniform(low, high))

    def forward(self, wavs, lengths):
        """Applies one drawn condition to every utterance.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``[batch, time]``.
        lengths : torch.Tensor
            Relative lengths ``[batch]``; padding stays zero.

        Returns
        -------
        wavs : torch.Tensor
            Augmented waveforms, same shape and dtype.
        lengths : torch.Tensor
            The input lengths.
        """
        if wavs.dim() != 2:
            raise ValueError(
                f"expected waveforms [batch, time], got {list(wavs.shape)}"
            )
        if self._banks is None:
            self._setup()
        batch, n_samples = wavs.shape
        plan = self.draw_plan(batch)
        self.last_plan = plan
        with torch.autocast(device_type=wavs.device.type, enabled=False):
            x = wavs.float()
            counts = _valid_counts(lengths.to(x.device), n_samples)
            mask = None
            if bool((counts < n_samples).any()):
                mask = (
                    torch.arange(n_samples, device=x.device)[None, :]
                    < counts[:, None]
                ).to(x.dtype)
                x = x * mask
            out = x
            rows = [i for i, p in enumerate(plan) if p["condition"] == "reverb"]
            if rows:
                out = x.clone()
                wet = self._reverberate(x[rows])
                out[rows] = wet if mask is None else wet * mask[rows]
            for stage in (0, 1):
                out = self._add_noises(out, plan, stage, counts, mask)
        return out.to(wavs.dtype), lengths
