"""Deterministic synthetic multi-speaker corpora for tests and the demo.

Speech is synthesised offline with espeak-ng, loaded through the
``espeakng-loader`` package and driven through ``ctypes``. **espeak-ng is
licensed GPL-3.0**; ``espeakng-loader`` bundles its shared library and data.
:mod:`speechbrain_ext.synthetic.espeak` is the only module of the package
that imports ``espeakng_loader``, and the rest of the package does not
depend on it. The generated audio is test data; it contains no espeak-ng
code.

A *speaker* is a private espeak-ng voice variant on top of an English
accent, plus a speaking rate, an intonation range and a fixed spectral
tilt; speaker ``k`` depends only on ``(seed, k)``. Each speaker records
several *sessions*, each with its own channel (band limits, a smooth random
equaliser, level and a faint noise floor). Sentences come from a small
random grammar, seeded per utterance, and last roughly ``min_duration`` to
``max_duration`` seconds.

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

    python -m speechbrain_ext.synthetic OUT --n_train_speakers 40 \\
        --n_test_speakers 20 --utts_per_speaker 12 --seed 0

Modules, one idea each:

* ``seeding``: the per-purpose seeded random generators;
* ``voices``: speaker and session identifiers, voice parameters, accents;
* ``grammar``: word lists and :func:`make_sentence`;
* ``espeak``: the ``ctypes`` binding of espeak-ng and its process engine
  (determinism notes there);
* ``dsp``: resampling, FIR/FFT filtering, channel response, coloured noise,
  trimming, 16-bit WAV writing;
* ``speech``: utterances through a speaker's voice and a session channel;
* ``sounds``: noise, music, babble and RIR sets (MUSAN / RIRS_NOISES style);
* ``trials``: balanced trial lists;
* ``corpus``: corpus paths, manifest, :func:`generate_corpus` and the CLI.

Example
-------
>>> corpus_paths("/data/synth")["manifest"]
'/data/synth/manifest.json'

Authors
 * MR-RawNet recipe contributors
"""

from speechbrain_ext.synthetic.corpus import (
    GENERATOR_VERSION,
    MANIFEST_NAME,
    TRIALS_NAME,
    corpus_paths,
    generate_corpus,
    main,
)
from speechbrain_ext.synthetic.dsp import SAMPLE_RATE, resample
from speechbrain_ext.synthetic.grammar import make_sentence
from speechbrain_ext.synthetic.sounds import RIR_ROOM_TYPES
from speechbrain_ext.synthetic.speech import synthesize_utterance
from speechbrain_ext.synthetic.trials import make_trials
from speechbrain_ext.synthetic.voices import (
    ACCENTS,
    session_ids,
    speaker_id,
    speaker_params,
)

__all__ = [
    "ACCENTS",
    "GENERATOR_VERSION",
    "MANIFEST_NAME",
    "RIR_ROOM_TYPES",
    "SAMPLE_RATE",
    "TRIALS_NAME",
    "corpus_paths",
    "generate_corpus",
    "main",
    "make_sentence",
    "make_trials",
    "resample",
    "session_ids",
    "speaker_id",
    "speaker_params",
    "synthesize_utterance",
]
