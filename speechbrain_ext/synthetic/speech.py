"""Synthetic utterances: espeak-ng speech through a session channel.

An utterance is a grammar sentence spoken by a speaker's voice, resampled
to 16 kHz, trimmed to roughly ``min_duration`` to ``max_duration`` seconds,
then passed through the session's channel (band limits, a smooth random
equaliser, level and a faint noise floor).

Authors
 * MR-RawNet recipe contributors
"""

import numpy as np

from speechbrain_ext.synthetic.dsp import (
    SAMPLE_RATE,
    _active_rms,
    _channel_response,
    _coloured_noise,
    _fft_filter,
    _fir_from_response,
    _trim,
    resample,
)
from speechbrain_ext.synthetic.espeak import _engine
from speechbrain_ext.synthetic.grammar import make_sentence

_WORDS_PER_SECOND_AT_175 = 3.4  # measured on grammar.py


def synthesize_utterance(params, text, seed=0, rate_factor=1.0, pitch=50):
    """Synthesises ``text`` with a speaker's voice, at 16 kHz.

    Arguments
    ---------
    params : dict
        Speaker parameters from :func:`speaker_params`.
    text : str
        What to say.
    seed : int
        Seeds espeak-ng's breath noise.
    rate_factor : float
        Multiplies the speaker's speaking rate.
    pitch : int
        espeak-ng relative pitch (50 keeps the speaker's own pitch).

    Returns
    -------
    numpy.ndarray
        float64 samples in [-1, 1] at 16 kHz, untrimmed, no channel.

    Example
    -------
    >>> from speechbrain_ext.synthetic.voices import speaker_params
    >>> x = synthesize_utterance(speaker_params(0, 1), "Hello there.")
    >>> bool(0.3 < len(x) / SAMPLE_RATE < 3), bool(np.abs(x).max() > 0.01)
    (True, True)
    """
    eng = _engine()
    rate = int(round(params["rate"] * rate_factor))
    raw = eng.synthesize(text, params, seed, rate=rate, pitch=pitch)
    return resample(raw / 32768.0, eng.sample_rate, SAMPLE_RATE)


def _utterance(params, rng, min_dur, max_dur):
    """One trimmed utterance of about ``U(min_dur, max_dur)`` seconds."""
    target = rng.uniform(min_dur, max_dur)
    rate_factor = rng.uniform(0.92, 1.08)
    pitch = int(rng.integers(44, 57))
    wps = _WORDS_PER_SECOND_AT_175 * params["rate"] * rate_factor / 175.0
    n_words = max(3, int(round(target * wps)))
    text_rng = np.random.default_rng(rng.integers(2**63))
    seed = int(rng.integers(2**31))
    margin_rng = np.random.default_rng(rng.integers(2**63))
    best = None
    for _ in range(5):
        text = make_sentence(text_rng, n_words)
        x = _trim(
            synthesize_utterance(params, text, seed, rate_factor, pitch),
            margin_rng,
        )
        dur = len(x) / SAMPLE_RATE
        error = max(min_dur - dur, dur - max_dur, 0.0)
        if best is None or error < best[0]:
            best = (error, x, text)
        if error == 0.0:
            break
        # Aim inside the allowed range and rescale the word budget.
        if dur > max_dur:
            target = min(target, max_dur) * 0.85
        else:
            target = max(target, min_dur) * 1.2
        n_words = max(2, int(round(n_words * target / max(dur, 0.1))))
    _, x, text = best
    limit = int(max_dur * SAMPLE_RATE)
    if len(x) > limit:
        x = x[:limit].copy()
        fade = min(len(x), int(0.03 * SAMPLE_RATE))
        x[len(x) - fade :] *= np.linspace(1.0, 0.0, fade)
    return x, text


def _apply_session(x, params, session_seed, utt_rng):
    """Speaker tilt, session channel, level and noise floor."""
    srng = np.random.default_rng(session_seed)
    fir = _fir_from_response(_channel_response(params, srng))
    level_db = srng.uniform(-30.0, -20.0)
    snr_db = srng.uniform(32.0, 50.0)
    noise_beta = srng.uniform(0.0, 1.5)
    y = _fft_filter(x, fir)
    gain = 10 ** ((level_db + utt_rng.uniform(-1.5, 1.5)) / 20) / _active_rms(y)
    y = y * gain
    noise = _coloured_noise(utt_rng, len(y), noise_beta)
    y = y + noise * _active_rms(y) * 10 ** (-snr_db / 20)
    peak = np.abs(y).max()
    return y * (0.95 / peak) if peak > 0.95 else y

