"""The espeak-ng engine, loaded through ``espeakng-loader`` and ``ctypes``.

**espeak-ng is licensed GPL-3.0**; ``espeakng-loader`` bundles its shared
library and data. This module is the only one of the package that imports
``espeakng_loader`` (on first use of the engine), and the rest of the
package does not depend on it. The generated audio is test data; it
contains no espeak-ng code.

Determinism notes: espeak-ng keeps state between utterances (pitch flutter
position, a roughness cycle counter, an automatic gain control and random
generators). The voices written here disable flutter and roughness, the
random generators are re-seeded before every utterance and a short priming
utterance resets the gain control, which makes every utterance independent
of what was synthesised before it in the process.

Authors
 * MR-RawNet recipe contributors
"""

import atexit
import ctypes
import hashlib
import json
import os
import shutil
import tempfile
import threading

import numpy as np

from speechbrain_ext.synthetic.voices import _variant_text, speaker_params

# espeak-ng constants (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4

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
