"""Synthetic speakers: identifiers, sessions and espeak-ng voice parameters.

A *speaker* is a private espeak-ng voice variant (formant scaling, formant
heights and widths, pitch base and range, voicing, consonant strength,
breathiness, spectral tone) on top of an English accent (``en``, ``en-us``,
``en-gb-scotland``, ...), plus a speaking rate, an intonation range and a
fixed spectral tilt. Speaker ``k`` depends only on ``(seed, k)``.

Authors
 * MR-RawNet recipe contributors
"""

from speechbrain_ext.synthetic.seeding import _rng

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
_SESSION_ALPHABET = (
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)


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

