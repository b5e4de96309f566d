"""Signal processing of the synthetic corpus: resampling, filters, noise.

Band-limited resampling, FIR design from a magnitude response and FFT
filtering, the speaker/session channel response, coloured noise, level
measurement, silence trimming and 16-bit PCM WAV writing. All audio is
``SAMPLE_RATE`` (16 kHz) mono.

Authors
 * MR-RawNet recipe contributors
"""

import math
import os

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000
_RESAMPLE_TABLES = {}


def resample(x, orig_sr, new_sr, half_width=24):
    """Band-limited resampling by a rational factor (Kaiser-windowed sinc).

    Arguments
    ---------
    x : numpy.ndarray
        1-D signal.
    orig_sr : int
        Its sampling rate.
    new_sr : int
        Target sampling rate.
    half_width : int
        Filter half-length in input samples.

    Returns
    -------
    numpy.ndarray
        float64 signal of ``ceil(len(x) * new_sr / orig_sr)`` samples.

    Example
    -------
    >>> t = np.arange(22050) / 22050
    >>> y = resample(np.sin(2 * np.pi * 440 * t), 22050, 16000)
    >>> ref = np.sin(2 * np.pi * 440 * np.arange(len(y)) / 16000)
    >>> len(y), bool(np.abs(y - ref)[100:-100].max() < 1e-3)
    (16000, True)
    """
    g = math.gcd(int(orig_sr), int(new_sr))
    up, down = int(new_sr) // g, int(orig_sr) // g
    w = int(half_width)
    key = (up, down, w)
    if key not in _RESAMPLE_TABLES:
        fc = 0.5 * min(1.0, up / down) * 0.92  # cycles per input sample
        frac = (np.arange(up) * down % up) / up  # of output phase p
        u = frac[:, None] + (w - 1 - np.arange(2 * w))[None, :]
        window = np.i0(8.0 * np.sqrt(np.clip(1 - (u / w) ** 2, 0, 1)))
        table = 2 * fc * np.sinc(2 * fc * u) * window / np.i0(8.0)
        _RESAMPLE_TABLES[key] = table
    table = _RESAMPLE_TABLES[key]
    x = np.asarray(x, dtype=np.float64)
    n_out = -(-len(x) * up // down)
    xpad = np.concatenate([np.zeros(w), x, np.zeros(w + down + 1)])
    windows = np.lib.stride_tricks.sliding_window_view(xpad, 2 * w)
    y = np.empty(n_out)
    for p in range(min(up, n_out)):
        first = (p * down) // up + 1
        rows = windows[first::down][: len(range(p, n_out, up))]
        y[p::up] = rows @ table[p]
    return y


def _fast_len(n):
    """Smallest 2^a 3^b 5^c at least ``n``."""
    best = 1 << max(0, int(n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _fir_from_response(gain_db, n_taps=257):
    """Linear-phase FIR whose magnitude follows ``gain_db`` (513 bins)."""
    ir = np.fft.irfft(10.0 ** (gain_db / 20.0), 1024)
    half = n_taps // 2
    return np.roll(ir, half)[:n_taps] * np.hanning(n_taps)


def _fft_filter(x, fir):
    """Convolves and removes the FIR delay (output as long as ``x``)."""
    n = _fast_len(len(x) + len(fir))
    y = np.fft.irfft(np.fft.rfft(x, n) * np.fft.rfft(fir, n), n)
    delay = len(fir) // 2
    return y[delay : delay + len(x)]


_FREQS = np.linspace(0.0, SAMPLE_RATE / 2, 513)


def _channel_response(speaker, session_rng):
    """Speaker tilt plus a session channel, in dB over ``_FREQS``."""
    f = np.maximum(_FREQS, 20.0)
    db = speaker["tilt_db"] * np.log2(np.maximum(f, 100.0) / 1000.0)
    points = np.array([80, 200, 500, 1000, 2000, 4000, 8000], float)
    gains = np.clip(session_rng.normal(0.0, 2.0, size=len(points)), -4, 4)
    db += np.interp(np.log(f), np.log(points), gains)
    hp = session_rng.uniform(50.0, 180.0)
    lp = session_rng.uniform(4800.0, 7800.0)
    db += -10 * np.log10(1 + (hp / f) ** 4) - 10 * np.log10(1 + (f / lp) ** 12)
    return db


def _coloured_noise(rng, n, beta):
    """Gaussian noise with a ``1 / f**beta`` power spectrum, unit RMS."""
    m = _fast_len(n)
    f = np.fft.rfftfreq(m, 1.0 / SAMPLE_RATE)
    spec = rng.standard_normal(len(f)) + 1j * rng.standard_normal(len(f))
    spec *= np.maximum(f, 20.0) ** (-beta / 2.0)
    spec[0] = 0.0
    x = np.fft.irfft(spec, m)[:n]
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _active_rms(x, frame=320):
    """RMS over the loudest frames (speech level, ignoring pauses)."""
    n = len(x) // frame
    if n == 0:
        return float(np.sqrt(np.mean(x**2)) + 1e-12)
    e = np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1)
    active = e[e > e.max() * 1e-3]
    return float(np.sqrt(np.mean(active)) + 1e-12)


def _trim(x, rng, frame=160):
    """Cuts leading/trailing silence, keeping short random margins."""
    n = len(x) // frame
    if n == 0:
        return x
    e = np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1)
    on = np.nonzero(e > e.max() * 10 ** (-4.5))[0]
    if len(on) == 0:
        return x
    start = max(0, on[0] * frame - int(rng.uniform(0.05, 0.2) * SAMPLE_RATE))
    stop = min(
        len(x), (on[-1] + 1) * frame + int(rng.uniform(0.05, 0.2) * SAMPLE_RATE)
    )
    return x[start:stop]


def _to_pcm16(x):
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def _write_wav(path, x):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, _to_pcm16(x), SAMPLE_RATE, subtype="PCM_16", format="WAV")

