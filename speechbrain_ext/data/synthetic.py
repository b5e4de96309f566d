"""Deterministic synthetic multi-speaker corpora for tests and the demo.

Speech is synthesised offline with espeak-ng, loaded through the
``espeakng-loader`` package and driven through ``ctypes``. **espeak-ng is
licensed GPL-3.0**; ``espeakng-loader`` bundles its shared library and data.
This module is the only one of the package that imports ``espeakng_loader``,
and the rest of the package does not depend on it. The generated audio is
test data; it contains no espeak-ng code.

A *speaker* is a private espeak-ng voice variant (formant scaling, formant
heights and widths, pitch base and range, voicing, consonant strength,
breathiness, spectral tone) on top of an English accent (``en``, ``en-us``,
``en-gb-scotland``, ...), plus a speaking rate, an intonation range and a
fixed spectral tilt. Speaker ``k`` depends only on ``(seed, k)``. Each
speaker records several *sessions*, each with its own channel (band limits,
a smooth random equaliser, level and a faint noise floor). Sentences come
from a small random grammar, seeded per utterance, and last roughly
``min_duration`` to ``max_duration`` seconds.

The corpus layout mimics the real data sets, so the same preparation code
reads both::

    <out>/wav/<spk_id>/<session_id>/<utt>.wav   VoxCeleb (id90001/.../00001)
    <out>/veri_test.txt                         trials "label enrol test"
    <out>/musan/{noise,music,speech}/synthetic/<cat>-synthetic-0000.wav
    <out>/RIRS_NOISES/simulated_rirs/{smallroom,mediumroom}/Room001/
        Room001-00001.wav  (+ a rir_list per room type)
    <out>/manifest.json                         written last

All audio is 16 kHz mono 16-bit PCM. The same arguments give byte-identical
files; a run whose ``manifest.json`` matches the arguments and the generator
version does nothing. Command line::

    python -m speechbrain_ext.data.synthetic OUT --n_train_speakers 40 \\
        --n_test_speakers 20 --utts_per_speaker 12 --seed 0

Determinism notes: espeak-ng keeps state between utterances (pitch flutter
position, a roughness cycle counter, an automatic gain control and random
generators). The voices written here disable flutter and roughness, the
random generators are re-seeded before every utterance and a short priming
utterance resets the gain control, which makes every utterance independent
of what was synthesised before it in the process.

Authors
 * MR-RawNet recipe contributors
"""

import argparse
import atexit
import ctypes
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import threading
import time
import zlib

import numpy as np
import soundfile as sf
from tqdm import tqdm

from speechbrain_ext.atomic_files import atomic_write_text

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
GENERATOR_VERSION = 1
TRIALS_NAME = "veri_test.txt"
MANIFEST_NAME = "manifest.json"
ACCENTS = (
    "en",
    "en-us",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
RIR_ROOM_TYPES = {"smallroom": (0.15, 0.45), "mediumroom": (0.35, 0.85)}
_OWNED = ("wav", "musan", "RIRS_NOISES", TRIALS_NAME)
_SESSION_ALPHABET = (
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)
# espeak-ng constants (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4
_WORDS_PER_SECOND_AT_175 = 3.4  # measured on the grammar below


def _rng(seed, tag, *ints):
    """A numpy Generator derived from a seed, a text tag and integers."""
    words = [int(seed) & 0xFFFFFFFF, zlib.crc32(tag.encode())]
    words += [int(i) & 0xFFFFFFFF for i in ints]
    return np.random.default_rng(np.random.SeedSequence(words))


# ---------------------------------------------------------------------------
# Speakers
# ---------------------------------------------------------------------------


def speaker_id(index):
    """VoxCeleb-style identifier of speaker ``index`` (0-based).

    Arguments
    ---------
    index : int
        Speaker number, 0 to 9998.

    Returns
    -------
    str
        ``id9`` followed by ``index + 1`` on four digits.

    Example
    -------
    >>> speaker_id(0), speaker_id(40)
    ('id90001', 'id90041')
    """
    if not 0 <= index < 9999:
        raise ValueError(f"speaker index {index} outside 0..9998")
    return f"id9{index + 1:04d}"


def session_ids(seed, index, n_sessions):
    """Distinct 11-character session identifiers of one speaker.

    Arguments
    ---------
    seed : int
        Corpus seed.
    index : int
        Speaker number.
    n_sessions : int
        How many identifiers to draw.

    Returns
    -------
    list of str
        Identifiers over ``[A-Za-z0-9_-]``, like YouTube video ids.

    Example
    -------
    >>> ids = session_ids(0, 3, 2)
    >>> len(ids), len(ids[0]), ids == session_ids(0, 3, 2)
    (2, 11, True)
    """
    rng = _rng(seed, "session-ids", index)
    out = []
    while len(out) < n_sessions:
        sid = "".join(
            _SESSION_ALPHABET[i] for i in rng.integers(0, 64, size=11)
        )
        if sid not in out:
            out.append(sid)
    return out


def speaker_params(seed, index):
    """Voice parameters of speaker ``index``; a function of both only.

    Arguments
    ---------
    seed : int
        Corpus seed.
    index : int
        Speaker number.

    Returns
    -------
    dict
        JSON-friendly parameters: ``gender``, ``accent``, ``pitch`` (base and
        top in Hz), ``formants`` (per formant 0..8: frequency, height, width
        in percent), ``voicing``, ``consonants``, ``breath`` (8 values or
        empty), ``tone`` (4 amplitude points), ``rate`` (words per minute),
        ``range`` (espeak intonation range, 50 = default) and ``tilt_db``
        (spectral tilt in dB per octave).

    Example
    -------
    >>> p = speaker_params(0, 5)
    >>> p == speaker_params(0, 5), p == speaker_params(1, 5)
    (True, False)
    >>> p["gender"] in ("male", "female"), p["accent"] in ACCENTS
    (True, True)
    """
    rng = _rng(seed, "speaker", index)
    female = bool(rng.random() < 0.5)
    accent = ACCENTS[int(rng.integers(len(ACCENTS)))]
    if female:
        base = rng.uniform(135.0, 195.0)
        top = base + rng.uniform(35.0, 90.0)
        vtl = rng.uniform(1.06, 1.22)
    else:
        base = rng.uniform(70.0, 125.0)
        top = base + rng.uniform(25.0, 65.0)
        vtl = rng.uniform(0.88, 1.04)
    formants = []
    for k in range(9):
        freq = 100.0 * vtl * rng.uniform(0.95, 1.05)
        height = rng.uniform(70.0, 130.0) if 1 <= k <= 5 else 100.0
        width = rng.uniform(75.0, 150.0) if k <= 5 else 100.0
        formants.append([round(freq), round(height), round(width)])
    breath = []
    if rng.random() < 0.3:
        breath = [0] + [int(v) for v in rng.integers(1, 4, size=7)]
    tone = [int(v) for v in rng.integers(90, 230, size=4)]
    return {
        "gender": "female" if female else "male",
        "accent": accent,
        "pitch": [int(round(base)), int(round(top))],
        "formants": formants,
        "voicing": int(rng.integers(80, 145)),
        "consonants": int(rng.integers(70, 125)),
        "breath": breath,
        "tone": tone,
        "rate": int(rng.integers(140, 215)),
        "range": int(rng.integers(30, 80)),
        "tilt_db": round(float(rng.uniform(-2.0, 2.0)), 3),
    }


def _variant_text(params, name):
    """The espeak-ng voice variant file of a speaker."""
    lines = [
        "language variant",
        f"name {name}",
        f"gender {params['gender']}",
        "pitch {} {}".format(*params["pitch"]),
        # Stateless synthesis: no pitch flutter, no roughness modulation.
        "flutter 0",
        "roughness 8",
        f"voicing {params['voicing']}",
        f"consonants {params['consonants']} 100",
        "tone 600 {} 1200 {} 2000 {} 3000 {}".format(*params["tone"]),
    ]
    for k, (freq, height, width) in enumerate(params["formants"]):
        lines.append(f"formant {k} {freq} {height} {width}")
    if params["breath"]:
        lines.append("breath " + " ".join(str(b) for b in params["breath"]))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Sentences
# ---------------------------------------------------------------------------

_NAMES = (
    "Anna", "Peter", "Maria", "David", "Laura", "Thomas", "Sophie", "Martin",
    "Julia", "Oliver", "Emma", "Daniel", "Clara", "Robert", "Helen", "Simon",
)
_PRONOUNS = ("she", "he", "we", "they", "I", "you")
_ADJECTIVES = (
    "small", "old", "quiet", "bright", "heavy", "clever", "green", "broken",
    "famous", "tired", "wooden", "yellow", "strange", "gentle", "tall",
    "happy", "cold", "narrow", "modern", "careful", "silver", "friendly",
)
_NOUNS = (
    "teacher", "doctor", "farmer", "engineer", "musician", "neighbour",
    "driver", "painter", "student", "captain", "baker", "pilot", "child",
    "writer", "gardener", "singer", "lawyer", "nurse", "tourist", "guard",
)
_OBJECTS = (
    "bicycle", "letter", "window", "basket", "garden", "piano", "ticket",
    "bottle", "newspaper", "umbrella", "picture", "blanket", "lantern",
    "kettle", "record", "jacket", "parcel", "mirror", "ladder", "notebook",
    "sandwich", "compass", "violin", "carpet", "bucket", "camera",
)
_VERBS = (
    ("find", "found"), ("paint", "painted"), ("carry", "carried"),
    ("open", "opened"), ("clean", "cleaned"), ("buy", "bought"),
    ("sell", "sold"), ("build", "built"), ("fix", "fixed"),
    ("borrow", "borrowed"), ("lose", "lost"), ("hide", "hid"),
    ("bring", "brought"), ("show", "showed"), ("move", "moved"),
    ("check", "checked"), ("watch", "watched"), ("describe", "described"),
    ("drop", "dropped"), ("wrap", "wrapped"), ("return", "returned"),
)
_ADVERBS = (
    "quickly", "slowly", "carefully", "happily", "quietly", "suddenly",
    "again", "twice", "early", "secretly", "proudly", "easily",
)
_PLACES = (
    "near the old harbour", "in the kitchen", "behind the station",
    "at the market", "under the bridge", "in the village", "on the roof",
    "next to the river", "in the library", "at the corner shop",
    "beside the church", "in the garden", "outside the museum",
)
_TIMES = (
    "yesterday", "this morning", "last week", "on Monday", "after lunch",
    "every evening", "in the summer", "before dinner", "at midnight",
    "on Sunday afternoon", "last winter", "two days ago",
)
_CONNECTORS = (", and ", ", but ", ", so ", " because ", ", while ")


def _pick(rng, words):
    return words[int(rng.integers(len(words)))]


def _noun_phrase(rng, nouns):
    det = _pick(rng, ("the", "a", "my", "our", "that", "their"))
    words = [_pick(rng, _ADJECTIVES)] if rng.random() < 0.6 else []
    words.append(_pick(rng, nouns))
    if det == "a" and words[0][0] in "aeiou":
        det = "an"
    return " ".join([det, *words])


def _clause(rng):
    u = rng.random()
    if u < 0.25:
        subj = _pick(rng, _NAMES)
    elif u < 0.45:
        subj = _pick(rng, _PRONOUNS)
    else:
        subj = _noun_phrase(rng, _NOUNS)
    base, past = _pick(rng, _VERBS)
    obj = _noun_phrase(rng, _OBJECTS)
    form = rng.random()
    if form < 0.55:
        words = [subj, past, obj]
    elif form < 0.8:
        words = [subj, "will", base, obj]
    else:
        words = [subj, "wanted to", base, obj]
    if rng.random() < 0.5:
        words.append(_pick(rng, _ADVERBS))
    if rng.random() < 0.6:
        words.append(_pick(rng, _PLACES))
    if rng.random() < 0.4:
        words.append(_pick(rng, _TIMES))
    return " ".join(words)


def make_sentence(rng, n_words):
    """Draws a sentence of about ``n_words`` words from a small grammar.

    Clauses ``subject verb object [adverb] [place] [time]`` are chained
    with connectors; the number of clauses is the one whose word count is
    closest to ``n_words`` (at least one clause).

    Arguments
    ---------
    rng : numpy.random.Generator
        Source of randomness (seed it per utterance).
    n_words : int
        Desired number of words.

    Returns
    -------
    str
        A capitalised sentence ending with a full stop.

    Example
    -------
    >>> s = make_sentence(np.random.default_rng(0), 12)
    >>> 6 <= len(s.split()) <= 20, s.endswith("."), s[0].isupper()
    (True, True, True)
    >>> s == make_sentence(np.random.default_rng(0), 12)
    True
    """
    text = _clause(rng)
    while len(text.split()) < n_words:
        longer = text + _pick(rng, _CONNECTORS) + _clause(rng)
        if len(longer.split()) - n_words > n_words - len(text.split()):
            break
        text = longer
    return text[0].upper() + text[1:] + "."


# ---------------------------------------------------------------------------
# espeak-ng engine
# ---------------------------------------------------------------------------

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Espeak:
    """One espeak-ng instance per process, with a private voice folder."""

    def __init__(self):
        import espeakng_loader  # GPL-3.0 espeak-ng, see the module docstring

        self._owner = os.getpid()
        self.data_dir = self._private_data_dir(espeakng_loader.get_data_path())
        atexit.register(self._cleanup)
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [
            ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
        ]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [
            ctypes.c_int, ctypes.c_int, ctypes.c_int,
        ]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        self._set_seed = getattr(lib, "espeak_ng_SetRandSeed", None)
        if self._set_seed is not None:
            self._set_seed.argtypes = [ctypes.c_long]
        try:
            self._srand = ctypes.CDLL(None).srand
            self._srand.argtypes = [ctypes.c_uint]
        except (OSError, AttributeError):  # pragma: no cover - non-POSIX
            self._srand = None
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data_dir.encode(),
            _INITIALIZE_DONT_EXIT,
        )
        if rate <= 0:
            raise RuntimeError(f"espeak-ng failed to initialise ({rate})")
        self.sample_rate = rate
        self._lib = lib
        self._chunks = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # keep a reference
        lib.espeak_SetSynthCallback(self._callback)
        self._variants = set()
        self._lock = threading.Lock()
        self._write_variant(
            "sbprime",
            {**speaker_params(0, 0), "breath": [], "pitch": [100, 130]},
        )

    @staticmethod
    def _private_data_dir(source):
        """Links the bundled data into a temporary folder we can add to."""
        root = tempfile.mkdtemp(prefix="sb_espeak_")

        def link(src, dst):
            try:
                os.symlink(src, dst)
            except OSError:  # pragma: no cover - no symlinks (Windows)
                if os.path.isdir(src):
                    shutil.copytree(src, dst)
                else:
                    shutil.copy2(src, dst)

        for name in os.listdir(source):
            if name != "voices":
                link(os.path.join(source, name), os.path.join(root, name))
        voices = os.path.join(source, "voices")
        os.makedirs(os.path.join(root, "voices", "!v"))
        for name in os.listdir(voices):
            if name != "!v":
                dst = os.path.join(root, "voices", name)
                link(os.path.join(voices, name), dst)
        return root

    def _cleanup(self):
        if os.getpid() == self._owner:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _collect(self, wav, n_samples, _events):
        if wav and n_samples > 0:
            self._chunks.append(
                np.ctypeslib.as_array(wav, shape=(n_samples,)).copy()
            )
        return 0

    def _write_variant(self, name, params):
        if name in self._variants:
            return
        path = os.path.join(self.data_dir, "voices", "!v", name)
        with open(path, "w", encoding="ascii") as f:
            f.write(_variant_text(params, name))
        self._variants.add(name)

    def _speak(self, text, voice, rate, pitch, pitch_range, volume, seed):
        lib = self._lib
        status = lib.espeak_SetVoiceByName(voice.encode())
        if status != 0:
            raise RuntimeError(f"espeak-ng has no voice {voice!r} ({status})")
        lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
        lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        lib.espeak_SetParameter(_PARAM_RANGE, int(pitch_range), 0)
        lib.espeak_SetParameter(_PARAM_VOLUME, int(volume), 0)
        if self._set_seed is not None:
            self._set_seed(seed)
        if self._srand is not None:
            self._srand(seed)
        self._chunks = []
        data = text.encode("utf-8") + b"\0"
        status = lib.espeak_Synth(
            data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        lib.espeak_Synchronize()
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed ({status})")
        if not self._chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._chunks)

    def synthesize(self, text, params, seed, rate=None, pitch=50, volume=80):
        """Returns int16 samples at ``self.sample_rate``."""
        blob = json.dumps(params, sort_keys=True).encode()
        name = "sb" + hashlib.sha1(blob).hexdigest()[:16]
        with self._lock:
            self._write_variant(name, params)
            # Priming resets the automatic gain control of the synthesiser.
            self._speak("ah", "en+sbprime", 175, 50, 50, 40, 1)
            return self._speak(
                text,
                f"{params['accent']}+{name}",
                params["rate"] if rate is None else rate,
                pitch,
                params["range"],
                volume,
                seed & 0x7FFFFFFF,
            )


_ENGINE = None
_ENGINE_LOCK = threading.Lock()


def _engine():
    """The process-wide espeak-ng instance (created on first use)."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = _Espeak()
        return _ENGINE


# ---------------------------------------------------------------------------
# Signal processing helpers
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Utterances
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Noise and RIR sets
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Trials
# ---------------------------------------------------------------------------


def make_trials(utterances, n_target=None, seed=0):
    """Balanced target / non-target trials over a set of utterances.

    Target pairs prefer two different sessions of a speaker (all same-
    session pairs are used only for speakers with a single session).
    Non-target pairs join utterances of two different speakers, drawn
    uniformly without repetition. Both halves have the same size.

    Arguments
    ---------
    utterances : list of str
        Relative paths ``spk/session/utt.wav``.
    n_target : int, optional
        Number of target trials (default: every eligible target pair,
        capped by the number of non-target pairs).
    seed : int
        Seed of the sampling and of the trial order.

    Returns
    -------
    list of tuple
        ``(label, enrol, test)`` with label 1 (target) or 0.

    Example
    -------
    >>> utts = ["a/s1/1.wav", "a/s2/1.wav", "b/s1/1.wav", "b/s3/1.wav"]
    >>> trials = make_trials(utts, seed=0)
    >>> sorted(t[0] for t in trials)
    [0, 0, 1, 1]
    """
    rng = _rng(seed, "trials")
    by_spk = {}
    for u in sorted(utterances):
        by_spk.setdefault(u.split("/")[0], []).append(u)
    targets = []
    for utts in by_spk.values():
        pairs = [
            (a, b)
            for i, a in enumerate(utts)
            for b in utts[i + 1 :]
            if a.split("/")[1] != b.split("/")[1]
        ]
        if not pairs:
            pairs = [(a, b) for i, a in enumerate(utts) for b in utts[i + 1 :]]
        targets += pairs
    sizes = [len(v) for v in by_spk.values()]
    n_cross = (sum(sizes) ** 2 - sum(s * s for s in sizes)) // 2
    n = min(len(targets), n_cross)
    if n_target is not None:
        n = min(n, int(n_target))
    if n == 0:
        raise ValueError("need at least two speakers with two utterances")
    picked = rng.choice(len(targets), size=n, replace=False)
    trials = [(1, *targets[i]) for i in sorted(picked)]
    flat = sorted(utterances)
    spk = [u.split("/")[0] for u in flat]
    seen = set()
    while len(seen) < n:
        i, j = (int(v) for v in rng.integers(len(flat), size=2))
        if spk[i] == spk[j]:
            continue
        key = (min(i, j), max(i, j))
        if key not in seen:
            seen.add(key)
            trials.append((0, flat[key[0]], flat[key[1]]))
    out = []
    for label, a, b in trials:
        out.append((label, a, b) if rng.random() < 0.5 else (label, b, a))
    order = rng.permutation(len(out))
    return [out[i] for i in order]


# ---------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------


def corpus_paths(out_dir):
    """Absolute paths of the parts of a corpus folder.

    Arguments
    ---------
    out_dir : str
        Corpus folder.

    Returns
    -------
    dict
        ``root``, ``wav_dir``, ``trials``, ``musan_dir``, ``rirs_dir``
        (the ``RIRS_NOISES`` root) and ``manifest``.

    Example
    -------
    >>> corpus_paths("/data/synth")["trials"]
    '/data/synth/veri_test.txt'
    """
    root = os.path.abspath(out_dir)
    return {
        "root": root,
        "wav_dir": os.path.join(root, "wav"),
        "trials": os.path.join(root, TRIALS_NAME),
        "musan_dir": os.path.join(root, "musan"),
        "rirs_dir": os.path.join(root, "RIRS_NOISES"),
        "manifest": os.path.join(root, MANIFEST_NAME),
    }


def _load_manifest(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def generate_corpus(
    out_dir,
    n_train_speakers=40,
    n_test_speakers=20,
    utts_per_speaker=12,
    sessions_per_speaker=3,
    seed=0,
    min_duration=1.5,
    max_duration=8.0,
    n_target_trials=None,
    n_noise=12,
    n_music=6,
    n_speech=6,
    n_rooms=3,
    rirs_per_room=4,
    progress=True,
):
    """Writes a synthetic VoxCeleb-like corpus with noise and RIR sets.

    Training speakers are ``id90001 ...``, test speakers follow them, and
    the trial list ``veri_test.txt`` covers test speakers only, with as many
    target as non-target trials. The MUSAN-like ``speech`` set uses further
    speakers that appear nowhere else. Nothing is done when
    ``manifest.json`` already records the same arguments and generator
    version; otherwise the generated sub-folders are replaced and the
    manifest is written last.

    Arguments
    ---------
    out_dir : str
        Output folder (created).
    n_train_speakers : int
        Training speakers.
    n_test_speakers : int
        Test speakers (at least 2).
    utts_per_speaker : int
        Utterances per speaker (at least 2).
    sessions_per_speaker : int
        Sessions per speaker; utterances go to sessions in turn.
    seed : int
        Seed of everything.
    min_duration : float
        Shortest utterance in seconds (approximate lower bound).
    max_duration : float
        Longest utterance in seconds (hard upper bound).
    n_target_trials : int, optional
        Target trials (default: all cross-session target pairs).
    n_noise : int
        Coloured-noise files (6 to 10 s each).
    n_music : int
        Synthetic music files.
    n_speech : int
        Speech files, each one extra speaker.
    n_rooms : int
        Rooms per room type (``smallroom``, ``mediumroom``).
    rirs_per_room : int
        Impulse responses per room.
    progress : bool
        Show a tqdm bar over utterances.

    Returns
    -------
    dict
        The manifest (``version``, ``args``, ``train_speakers``,
        ``test_speakers``, counts, ``total_duration_s``, ...) plus the
        absolute paths of :func:`corpus_paths` under ``paths`` and
        ``generated`` (False when the cache was used).

    Example
    -------
    >>> out = tempfile.mkdtemp()
    >>> info = generate_corpus(out, 1, 2, 2, seed=3, max_duration=2.0,
    ...     n_noise=1, n_music=1, n_speech=1, n_rooms=1, rirs_per_room=1,
    ...     progress=False)
    >>> info["train_speakers"], info["test_speakers"], info["n_trials"]
    (['id90001'], ['id90002', 'id90003'], 4)
    >>> generate_corpus(out, 1, 2, 2, seed=3, max_duration=2.0,
    ...     n_noise=1, n_music=1, n_speech=1, n_rooms=1, rirs_per_room=1,
    ...     progress=False)["generated"]
    False
    """
    args = {
        "n_train_speakers": int(n_train_speakers),
        "n_test_speakers": int(n_test_speakers),
        "utts_per_speaker": int(utts_per_speaker),
        "sessions_per_speaker": int(sessions_per_speaker),
        "seed": int(seed),
        "min_duration": float(min_duration),
        "max_duration": float(max_duration),
        "n_target_trials": (
            None if n_target_trials is None else int(n_target_trials)
        ),
        "n_noise": int(n_noise),
        "n_music": int(n_music),
        "n_speech": int(n_speech),
        "n_rooms": int(n_rooms),
        "rirs_per_room": int(rirs_per_room),
    }
    if args["n_test_speakers"] < 2 or args["utts_per_speaker"] < 2:
        raise ValueError("need n_test_speakers >= 2 and utts_per_speaker >= 2")
    if args["n_train_speakers"] < 0 or args["sessions_per_speaker"] < 1:
        raise ValueError("n_train_speakers >= 0, sessions_per_speaker >= 1")
    if not 0 < args["min_duration"] <= args["max_duration"]:
        raise ValueError("need 0 < min_duration <= max_duration")
    n_spk = args["n_train_speakers"] + args["n_test_speakers"]
    if n_spk + args["n_speech"] > 9999:
        raise ValueError("at most 9999 speakers in total")
    paths = corpus_paths(out_dir)
    old = _load_manifest(paths["manifest"])
    if (
        old is not None
        and old.get("version") == GENERATOR_VERSION
        and old.get("args") == args
        and all(os.path.exists(paths[k]) for k in ("wav_dir", "trials"))
    ):
        logger.info("Synthetic corpus in %s is up to date", paths["root"])
        return {**old, "paths": paths, "generated": False}

    start = time.time()
    os.makedirs(paths["root"], exist_ok=True)
    if os.path.exists(paths["manifest"]):
        os.remove(paths["manifest"])
    for name in _OWNED:
        target = os.path.join(paths["root"], name)
        if os.path.isdir(target):
            shutil.rmtree(target)
        elif os.path.exists(target):
            os.remove(target)

    pbar = tqdm(
        total=n_spk * args["utts_per_speaker"],
        desc="Synthesising utterances",
        unit="utt",
        disable=not progress,
    )
    speakers = {}
    test_utts = []
    total_samples = 0
    for k in range(n_spk):
        spk = speaker_id(k)
        params = speaker_params(seed, k)
        speakers[spk] = params
        sessions = session_ids(seed, k, args["sessions_per_speaker"])
        counters = dict.fromkeys(sessions, 0)
        for j in range(args["utts_per_speaker"]):
            sess_index = j % len(sessions)
            sess = sessions[sess_index]
            counters[sess] += 1
            rng = _rng(seed, "utterance", k, j)
            x, _ = _utterance(
                params, rng, args["min_duration"], args["max_duration"]
            )
            srng = _rng(seed, "channel", k, sess_index)
            session_seed = int(srng.integers(2**63))
            x = _apply_session(x, params, session_seed, rng)
            rel = f"{spk}/{sess}/{counters[sess]:05d}.wav"
            _write_wav(os.path.join(paths["wav_dir"], rel), x)
            total_samples += len(x)
            if k >= args["n_train_speakers"]:
                test_utts.append(rel)
            pbar.update(1)

    trials = make_trials(test_utts, args["n_target_trials"], seed)
    with open(paths["trials"], "w", encoding="ascii") as f:
        f.write("".join(f"{lab} {a} {b}\n" for lab, a, b in trials))
    pbar.close()
    n_noise_files = _write_noise_sets(
        paths["root"], seed, args["n_noise"], args["n_music"],
        args["n_speech"], n_spk,
    )
    n_rir_files = _write_rirs(
        paths["root"], seed, args["n_rooms"], args["rirs_per_room"]
    )
    ids = sorted(speakers)
    manifest = {
        "version": GENERATOR_VERSION,
        "args": args,
        "sample_rate": SAMPLE_RATE,
        "train_speakers": ids[: args["n_train_speakers"]],
        "test_speakers": ids[args["n_train_speakers"] :],
        "n_utterances": n_spk * args["utts_per_speaker"],
        "total_duration_s": round(total_samples / SAMPLE_RATE, 3),
        "n_trials": len(trials),
        "n_noise_files": n_noise_files,
        "n_rir_files": n_rir_files,
        "trials": TRIALS_NAME,
        "speakers": speakers,
        "license_note": "speech synthesised with espeak-ng (GPL-3.0)",
    }
    atomic_write_text(
        paths["manifest"], json.dumps(manifest, indent=1, sort_keys=True)
    )
    logger.info(
        "Synthetic corpus: %d utterances, %.0f s of audio in %.1f s",
        manifest["n_utterances"],
        manifest["total_duration_s"],
        time.time() - start,
    )
    return {**manifest, "paths": paths, "generated": True}


def main(argv=None):
    """Command line entry point (see the module docstring).

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.

    Example
    -------
    >>> out = tempfile.mkdtemp()
    >>> main([out, "--n_train_speakers", "0", "--n_test_speakers", "2",
    ...     "--utts_per_speaker", "2", "--max_duration", "2", "--n_noise",
    ...     "0", "--n_music", "0", "--n_speech", "0", "--n_rooms", "0",
    ...     "--quiet"])
    0
    """
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_ext.data.synthetic",
        description="Generate a synthetic VoxCeleb-like corpus (espeak-ng).",
    )
    parser.add_argument("out_dir")
    parser.add_argument("--n_train_speakers", type=int, default=40)
    parser.add_argument("--n_test_speakers", type=int, default=20)
    parser.add_argument("--utts_per_speaker", type=int, default=12)
    parser.add_argument("--sessions_per_speaker", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min_duration", type=float, default=1.5)
    parser.add_argument("--max_duration", type=float, default=8.0)
    parser.add_argument("--n_target_trials", type=int, default=None)
    parser.add_argument("--n_noise", type=int, default=12)
    parser.add_argument("--n_music", type=int, default=6)
    parser.add_argument("--n_speech", type=int, default=6)
    parser.add_argument("--n_rooms", type=int, default=3)
    parser.add_argument("--rirs_per_room", type=int, default=4)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    opts = vars(parser.parse_args(argv))
    quiet = opts.pop("quiet")
    start = time.time()
    info = generate_corpus(progress=not quiet, **opts)
    if not quiet:
        summary = {
            k: info[k]
            for k in (
                "n_utterances", "total_duration_s", "n_trials", "generated"
            )
        }
        summary["seconds"] = round(time.time() - start, 1)
        summary.update(info["paths"])
        print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
