"""The official MR-RawNet training augmentation, on batches, on any device.

Three steps, applied in this order by :class:`TrainingPipeline` to every
training batch. The batch holds one crop per utterance, each of its own
length (the data loader draws it per utterance, as the official loader:
3.0 s, or with probability 0.5 one of 1.0, 1.1, ..., 2.9 s; see
:class:`speechbrain_ext.data.crops.TrainingCrops`), padded to the longest
with SpeechBrain relative lengths:

1. :class:`OfficialAugmentation`: every utterance gets one of six
   conditions, drawn uniformly and independently: ``clean`` (unchanged),
   ``reverb`` (a small- or medium-room RIR), ``music`` (5-15 dB), ``babble``
   (3-7 speech files, each at its own 13-20 dB), ``noise`` (0-15 dB) or
   ``tv`` (babble, then music on top of the babbled signal), computed on
   the utterance's own crop (powers over its valid samples, reverb cut to
   its length);
2. every crop is tiled back (repeated from its start) to the full length
   (3.0 s);
3. :class:`SpeedPerturbation` resamples the whole batch by one factor
   drawn from 0.9, 1.0, 1.1 and trims it to a multiple of 320 samples.
   Labels are unchanged.

The batch size and the order of the utterances never change, so labels
need no replication (unlike SpeechBrain's ``Augmenter``, which
concatenates augmented copies).

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

Reverberation follows the official code: the RIR is scaled to unit
energy, convolved in full (FFT) and the result truncated to the input
length, without direct-path alignment or level correction.

Noise and RIR files are read from the CSVs that
:mod:`speechbrain_ext.augment.prepare` writes (columns ``ID, duration,
wav, ...``, the format of SpeechBrain's ``AddNoise``) by a
:class:`~speechbrain_ext.augment.clip_bank.ClipBank`, which reads random
crops ahead of time in background threads, so the training loop rarely
waits for the disk (and never hangs a DataLoader worker forked
meanwhile). The mixing itself runs on the batch's device in float32,
outside autocast; nothing moves between devices except the noise clips,
which go host to device.

Randomness comes from numpy generators seeded from ``seed`` (default:
``torch.initial_seed()``, which ``speechbrain.utils.seed_everything``
sets) and the DDP rank, so ranks augment differently and a run is
reproducible given its seed. :class:`TrainingPipeline` is a checkpoint
recoverable holding the state of all of them (including the clips a
:class:`ClipBank` has already drawn for read-ahead), so a resumed run
draws exactly the augmentations of the uninterrupted one (see
:mod:`speechbrain_ext.training.random_state`).

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import concurrent.futures
import json
import logging
import os

import numpy as np
import torch
import torchaudio.functional as AF
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from torch import nn

from speechbrain_ext.augment.clip_bank import ClipBank
from speechbrain_ext.training.random_state import (
    generator_state,
    restore_generator,
)

logger = logging.getLogger(__name__)

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


def make_generator(seed=None, salt=0):
    """Returns a numpy Generator for one augmentation module of one rank.

    Arguments
    ---------
    seed : int or None
        Base seed; None uses ``torch.initial_seed()``.
    salt : int
        Distinguishes modules that share a base seed.

    Returns
    -------
    numpy.random.Generator
        Seeded from the base seed, the DDP rank (``RANK``) and the salt.

    Example
    -------
    >>> a = make_generator(1, salt=2).integers(1000, size=3)
    >>> b = make_generator(1, salt=2).integers(1000, size=3)
    >>> bool((a == b).all())
    True
    """
    base = torch.initial_seed() if seed is None else int(seed)
    rank = int(os.environ.get("RANK", 0))
    return np.random.default_rng([base % 2**63, rank, int(salt)])


def _fit_length(clips, n):
    """Crops or tiles ``[M, C]`` clips along time to ``[M, n]``."""
    if clips.shape[1] >= n:
        return clips[:, :n]
    index = torch.arange(n, device=clips.device) % clips.shape[1]
    return clips[:, index]


def _valid_counts(lengths, n_samples):
    """Relative lengths to sample counts in [1, n_samples]."""
    counts = torch.round(lengths.double() * n_samples).long()
    return counts.clamp(1, n_samples)


class OfficialAugmentation(nn.Module):
    """One of six official conditions per utterance (MUSAN and RIRs).

    See the module docstring for the conditions and the SNR definition.
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


@register_checkpoint_hooks
class TrainingPipeline(nn.Module):
    """Augmentation of per-utterance crops, tiling back, speed change.

    See the module docstring for the order. Each row of the batch is one
    utterance's crop, of its own length (its valid part, given by the
    relative lengths); ``augment`` works on that part, then every row is
    tiled back to ``full_samples``, so the output rows are all full
    (relative lengths 1) before ``speed``. ``augment`` and ``speed`` may
    be None (switched off).

    Arguments
    ---------
    augment : torch.nn.Module or None
        Maps ``(wavs, lengths)`` to the same; e.g.
        :class:`OfficialAugmentation`.
    speed : torch.nn.Module or None
        Maps ``(wavs, lengths)`` to resampled ones; e.g.
        :class:`SpeedPerturbation`.
    full_samples : int or None
        Length every crop is tiled back to (official: 48000, 3.0 s);
        None: the batch's own length.

    Example
    -------
    >>> pipe = TrainingPipeline(full_samples=6)
    >>> wavs = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 0.0, 0.0]])
    >>> out, lens = pipe(wavs, torch.tensor([1.0, 0.5]))
    >>> out
    tensor([[1., 2., 3., 4., 1., 2.],
            [5., 6., 5., 6., 5., 6.]])
    >>> lens
    tensor([1., 1.])
    """

    def __init__(self, augment=None, speed=None, full_samples=None):
        super().__init__()
        self.augment = augment
        self.speed = speed
        self.full_samples = None if full_samples is None else int(full_samples)
        if self.full_samples is not None and self.full_samples < 1:
            raise ValueError(f"full_samples must be >= 1, got {full_samples}")
        self.last_counts = None

    def forward(self, wavs, lengths):
        """Augments the crops, tiles them back and changes the speed.

        Arguments
        ---------
        wavs : torch.Tensor
            Crops ``[batch, time]``, padded.
        lengths : torch.Tensor
            Relative lengths ``[batch]`` (each crop's valid part).

        Returns
        -------
        wavs : torch.Tensor
            The training batch (same batch size and order).
        lengths : torch.Tensor
            Its relative lengths.
        """
        n_samples = wavs.shape[1]
        target = self.full_samples or n_samples
        counts = _valid_counts(lengths.detach().cpu(), n_samples)
        self.last_counts = counts
        if self.augment is not None:
            wavs, _ = self.augment(wavs, lengths)
        if n_samples != target or bool((counts < target).any()):
            wavs = self._tile_back(wavs, counts, target)
        lengths = torch.ones_like(lengths)
        if self.speed is not None:
            wavs, lengths = self.speed(wavs, lengths)
        return wavs, lengths

    def random_state(self):
        """State of every random draw of the pipeline (JSON-able).

        Returns
        -------
        dict
            The speed and augmentation generators (and clip banks). The
            crops are drawn where the items are read, with seeds of their
            own (:class:`~speechbrain_ext.data.item_seeds.SeededItems`).

        Example
        -------
        >>> pipe = TrainingPipeline(speed=SpeedPerturbation())
        >>> _ = pipe(torch.randn(2, 32000), torch.ones(2))
        >>> state = pipe.random_state()
        >>> a = pipe(torch.ones(2, 32000), torch.ones(2))[0]
        >>> pipe.set_random_state(state)
        >>> torch.equal(a, pipe(torch.ones(2, 32000), torch.ones(2))[0])
        True
        """
        return {
            "rank": int(os.environ.get("RANK", 0)),
            "speed": None
            if self.speed is None
            else generator_state(self.speed._rng),
            "augment": None
            if self.augment is None
            else self.augment.random_state(),
        }

    def set_random_state(self, state):
        """Restores :meth:`random_state`.

        Arguments
        ---------
        state : dict
            From :meth:`random_state`.

        Returns
        -------
        None
        """
        if self.speed is not None and state.get("speed") is not None:
            self.speed._rng = restore_generator(state["speed"])
        if self.augment is not None and state.get("augment") is not None:
            self.augment.set_random_state(state["augment"])

    @mark_as_saver
    def _save_random_state(self, path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.random_state(), f)

    @mark_as_loader
    def _load_random_state(self, path, end_of_epoch=False):
        del end_of_epoch
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        # Another rank's streams are not this rank's (see random_state.py).
        if state.get("rank", 0) == int(os.environ.get("RANK", 0)):
            self.set_random_state(state)

    @staticmethod
    def _tile_back(crops, counts, n_samples):
        """Repeats each row's first ``counts`` samples up to ``n_samples``."""
        time = torch.arange(n_samples)[None, :]
        index = (time % counts[:, None]).to(crops.device)
        return torch.gather(crops, 1, index)
