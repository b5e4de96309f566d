"""Noise, music, babble and room impulse responses for augmentation.

Writes MUSAN-like ``musan/{noise,music,speech}/synthetic/`` folders and
RIRS_NOISES-like ``RIRS_NOISES/simulated_rirs/{smallroom,mediumroom}/``
rooms with a ``rir_list`` per room type.

Authors
 * MR-RawNet recipe contributors
"""

import os

import numpy as np

from speechbrain_ext.synthetic.dsp import (
    SAMPLE_RATE,
    _coloured_noise,
    _write_wav,
)
from speechbrain_ext.synthetic.seeding import _rng
from speechbrain_ext.synthetic.speech import _apply_session, _utterance
from speechbrain_ext.synthetic.voices import speaker_params

RIR_ROOM_TYPES = {"smallroom": (0.15, 0.45), "mediumroom": (0.35, 0.85)}


def _noise_clip(rng, dur):
    """Coloured noise, sometimes modulated, hummy or with clicks."""
    n = int(dur * SAMPLE_RATE)
    x = _coloured_noise(rng, n, rng.uniform(0.0, 2.2))
    t = np.arange(n) / SAMPLE_RATE
    if rng.random() < 0.5:  # slow level fluctuations
        depth = rng.uniform(0.2, 0.8)
        rate = rng.uniform(0.1, 2.0)
        x *= 1 + depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 6.3))
    if rng.random() < 0.3:  # mains hum
        f0 = 50.0 if rng.random() < 0.5 else 60.0
        for h in range(1, 6):
            x += rng.uniform(0.1, 0.6) / h * np.sin(2 * np.pi * f0 * h * t)
    if rng.random() < 0.3:  # clicks / knocks
        for pos in rng.integers(0, n - 800, size=int(rng.integers(3, 15))):
            burst = rng.standard_normal(800) * np.exp(-np.arange(800) / 80)
            x[pos : pos + 800] += rng.uniform(2, 6) * burst
    return x / np.abs(x).max() * rng.uniform(0.3, 0.8)


def _music_clip(rng, dur):
    """Harmonic tones on a scale with note changes, plus a bass line."""
    n = int(dur * SAMPLE_RATE)
    x = np.zeros(n)
    beat = 60.0 / rng.uniform(60.0, 160.0)
    root = int(rng.integers(52, 64))
    major = rng.random() < 0.5
    scale = (0, 2, 4, 5, 7, 9, 11) if major else (0, 2, 3, 5, 7, 8, 10)
    timbre = rng.uniform(0.6, 2.0)
    decay = rng.uniform(0.15, 1.2)

    def tone(midi, start, length, amp, bright):
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        i0 = int(start * SAMPLE_RATE)
        m = min(int(length * SAMPLE_RATE), n - i0)
        if m <= 0:
            return
        t = np.arange(m) / SAMPLE_RATE
        env = np.minimum(t / 0.01, 1.0) * np.exp(-t / decay)
        env *= np.minimum((m - np.arange(m)) / (0.01 * SAMPLE_RATE), 1.0)
        wave = np.zeros(m)
        for h in range(1, int(min(12, 7000 // f0)) + 1):
            wave += h**-bright * np.sin(2 * np.pi * f0 * h * t + 0.3 * h)
        x[i0 : i0 + m] += amp * env * wave

    pos, degree = 0.0, 0
    while pos < dur:
        length = beat * float(rng.choice([0.5, 1.0, 1.0, 2.0]))
        degree = int(np.clip(degree + rng.integers(-2, 3), -3, 9))
        octave, step = divmod(degree, len(scale))
        tone(root + 12 * octave + scale[step], pos, length, 1.0, timbre)
        pos += length
    pos = 0.0
    while pos < dur:  # bass: chord roots, one per bar
        tone(root - 12 + scale[int(rng.integers(len(scale)))], pos, 4 * beat,
             0.6, timbre + 0.5)
        pos += 4 * beat
    return x / (np.abs(x).max() + 1e-12) * rng.uniform(0.3, 0.8)


def _rir(rng, rt60, duration_cap=1.2):
    """Exponentially decaying noise tail after a direct-path spike."""
    n = int(min(duration_cap, 0.1 + 1.1 * rt60) * SAMPLE_RATE)
    distance = rng.uniform(0.5, 4.0)
    direct = int(distance / 343.0 * SAMPLE_RATE) + 1
    h = np.zeros(n)
    h[direct] = 1.0
    for _ in range(int(rng.integers(4, 12))):  # early reflections
        delay = direct + int(rng.uniform(0.001, 0.04) * SAMPLE_RATE)
        if delay < n:
            h[delay] += rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.7) / (
                1 + (delay - direct) / 200
            )
    t = np.arange(n - direct) / SAMPLE_RATE
    tail = np.zeros(n - direct)
    noise = rng.standard_normal(n - direct)
    spec = np.fft.rfft(noise)
    f = np.fft.rfftfreq(len(noise), 1.0 / SAMPLE_RATE)
    # Three bands: high frequencies decay faster than low ones.
    bands = ((0, 1000, 1.15), (1000, 4000, 1.0), (4000, 9000, 0.7))
    for lo, hi, factor in bands:
        band = np.fft.irfft(np.where((f >= lo) & (f < hi), spec, 0), len(noise))
        tail += band * np.exp(-6.9078 * t / (rt60 * factor))
    onset = np.minimum(t / 0.005, 1.0)
    h[direct:] += tail * onset * rng.uniform(0.04, 0.12) * distance**0.5
    return h / np.abs(h).max() * 0.9


def _write_noise_sets(out_dir, seed, n_noise, n_music, n_speech, babble):
    """Writes MUSAN-like noise/music/speech folders; returns file count."""
    written = 0
    for cat, count in (("noise", n_noise), ("music", n_music)):
        for i in range(count):
            rng = _rng(seed, cat, i)
            dur = rng.uniform(6.0, 10.0)
            make = _noise_clip if cat == "noise" else _music_clip
            x = make(rng, dur)
            _write_wav(_musan_path(out_dir, cat, i), x)
            written += 1
    for i in range(n_speech):
        rng = _rng(seed, "babble", i)
        params = speaker_params(seed, babble + i)
        dur = rng.uniform(6.0, 10.0)
        parts = []
        total = 0
        while total < dur * SAMPLE_RATE:
            x, _ = _utterance(params, rng, 1.5, 4.0)
            parts += [x, np.zeros(int(rng.uniform(0.1, 0.5) * SAMPLE_RATE))]
            total += len(x) + len(parts[-1])
        x = np.concatenate(parts)
        x = _apply_session(x, params, int(rng.integers(2**63)), rng)
        _write_wav(_musan_path(out_dir, "speech", i), x)
        written += 1
    return written


def _musan_path(out_dir, cat, i):
    return os.path.join(
        out_dir, "musan", cat, "synthetic", f"{cat}-synthetic-{i:04d}.wav"
    )


def _write_rirs(out_dir, seed, n_rooms, rirs_per_room):
    """Writes RIRS_NOISES-like simulated RIRs; returns file count."""
    written = 0
    for room_type, (lo, hi) in RIR_ROOM_TYPES.items():
        lines = []
        for r in range(n_rooms):
            room = f"Room{r + 1:03d}"
            room_rt60 = _rng(seed, room_type, r).uniform(lo, hi)
            for j in range(rirs_per_room):
                rng = _rng(seed, room_type, r, j)
                rt60 = room_rt60 * rng.uniform(0.95, 1.05)
                name = f"{room}-{j + 1:05d}.wav"
                rel = f"simulated_rirs/{room_type}/{room}/{name}"
                path = os.path.join(out_dir, "RIRS_NOISES", rel)
                _write_wav(path, _rir(rng, rt60))
                lines.append(
                    f"--rir-id {room_type}-{room}-{j + 1:05d} "
                    f"--room-id {room_type}-{room} {rel}"
                )
                written += 1
        if lines:
            rir_list = os.path.join(
                out_dir, "RIRS_NOISES", "simulated_rirs", room_type, "rir_list"
            )
            with open(rir_list, "w", encoding="ascii") as f:
                f.write("\n".join(lines) + "\n")
    return written

