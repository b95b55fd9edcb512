"""A small ctypes wrapper around espeak-ng from the `espeakng-loader` wheel: text in, 16-bit PCM out.

espeak-ng keeps its voice and parameters in global state, so every call holds one module lock."""

import ctypes
import threading

import espeakng_loader
import numpy as np

# Values from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4

RATE_MIN, RATE_MAX = 80, 450  # words per minute
PITCH_MIN, PITCH_MAX = 0, 100
VOLUME_MAX = 200

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakError(RuntimeError):
    pass


class _Engine:
    def __init__(self):
        self.lock = threading.Lock()
        self.lib = None
        self.sample_rate = 0
        self.voice = None
        self.params = {}
        self.chunks: list[bytes] = []
        # Kept on the instance: espeak holds a raw pointer to it for the life of the process.
        self.callback = _SynthCallback(self._collect)

    def _collect(self, wav, count, events):
        if count > 0:
            self.chunks.append(ctypes.string_at(wav, count * 2))
        return 0  # 0 = carry on synthesizing

    def start(self):
        if self.lib is not None:
            return
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if rate <= 0:
            raise EspeakError("espeak-ng could not be initialised")
        lib.espeak_SetSynthCallback(self.callback)
        self.lib, self.sample_rate = lib, rate

    def set_voice(self, voice: str):
        if voice != self.voice:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise EspeakError(f"espeak-ng has no voice {voice!r}")
            self.voice = voice
            self.params = {}  # a new voice resets rate, pitch and range to its own defaults

    def set_param(self, key: int, value: int):
        if self.params.get(key) != value:
            self.lib.espeak_SetParameter(key, value, 0)
            self.params[key] = value

    def synth(self, text: str) -> bytes:
        data = text.encode() + b"\0"
        self.chunks = []
        err = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None)
        if err != 0:
            raise EspeakError(f"espeak-ng synthesis failed (error {err})")
        pcm, self.chunks = b"".join(self.chunks), []
        return pcm


_engine = _Engine()


def synthesize(
    text: str, *, voice: str = "en-us", rate: int = 175, pitch: int = 50, pitch_range: int = 50, volume: int = 100
) -> tuple[np.ndarray, int]:
    """Speak `text`; returns (mono int16 samples, sample rate). `voice` may carry a variant, e.g.
    "en-us+f3" or "en-us+whisper". rate is words/minute (80-450); pitch and pitch_range (how far
    intonation moves) 0-100; volume 0-200."""
    with _engine.lock:
        _engine.start()
        _engine.set_voice(voice)
        _engine.set_param(_RATE, int(np.clip(rate, RATE_MIN, RATE_MAX)))
        _engine.set_param(_PITCH, int(np.clip(pitch, PITCH_MIN, PITCH_MAX)))
        _engine.set_param(_RANGE, int(np.clip(pitch_range, 0, 100)))
        _engine.set_param(_VOLUME, int(np.clip(volume, 0, VOLUME_MAX)))
        pcm = _engine.synth(text)
        return np.frombuffer(pcm, dtype=np.int16).copy(), _engine.sample_rate
