"""A small random English grammar for the synthetic utterances.

Sentences chain clauses ``subject verb object [adverb] [place] [time]``
drawn from fixed word lists; seeded per utterance, the same generator
state gives the same sentence.

Authors
 * MR-RawNet recipe contributors
"""

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
    >>> import numpy as np
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

