"""Offline providers: the embedded defaults that need no keys and no network."""

import io
import tempfile
import uuid
import wave
from dataclasses import dataclass
from functools import cache

import numpy as np

from media_pipeline import audio, espeak
from media_pipeline.providers.base import (
    AvatarProvider,
    ProviderError,
    RenderPoll,
    RenderTicket,
    SynthesisResult,
    VoiceCloneResult,
    VoiceProvider,
)

# --- Offline voice ---------------------------------------------------------------------------

# Read aloud to learn how espeak's parameters map to measured F0 and speaking rate.
CALIBRATION_TEXT = (
    "Every morning the harbour fills with small boats, and the fishermen call to each other across "
    "the water. By noon the market is busy: bread, oranges, bright cloth and cheap radios, "
    "and I have walked this street for twenty years."
)
DEFAULT_PROFILE = {"f0_median_hz": 120.0, "speaking_rate_sps": 4.5}
LOW_VOICE, HIGH_VOICE = "en-us", "en-us+f3"
HIGH_VOICE_FROM_HZ = 150.0  # above this a speaker is better matched by espeak's female voice
PITCHES = tuple(range(0, 101, 10))
RATES = tuple(range(80, 451, 20))
RANGES = (0, 25, 50, 75, 100)
DEFAULT_RANGE = 50


@dataclass(frozen=True)
class Expression:
    """How an emotion shifts a voice: F0 and rate factors, espeak intonation range, volume factor."""

    f0: float = 1.0
    rate: float = 1.0
    pitch_range: int = DEFAULT_RANGE
    volume: float = 1.0
    whisper: bool = False


# MiniMax's emotion values, rendered with what espeak can vary.
EXPRESSIONS = {
    "auto": Expression(),
    "happy": Expression(f0=1.08, rate=1.08, pitch_range=75, volume=1.1),
    "sad": Expression(f0=0.92, rate=0.85, pitch_range=25, volume=0.8),
    "angry": Expression(f0=1.05, rate=1.1, pitch_range=85, volume=1.3),
    "fearful": Expression(f0=1.12, rate=1.15, pitch_range=70, volume=0.9),
    "disgusted": Expression(f0=0.95, rate=0.9, pitch_range=60),
    "surprised": Expression(f0=1.15, rate=1.05, pitch_range=100, volume=1.1),
    "calm": Expression(f0=0.97, rate=0.9, pitch_range=30, volume=0.9),
    "fluent": Expression(rate=1.05),
    "whisper": Expression(rate=0.95, whisper=True),
}


class Curve:
    """A measured, rising setting -> value relation and its inverse. Points where the measure
    stops rising (e.g. syllables merge at the fastest rates) are dropped, so it stays invertible."""

    def __init__(self, params, values):
        keep = np.concatenate([[True], np.diff(np.maximum.accumulate(values)) > 0])
        self.params = np.asarray(params, float)[keep]
        self.values = np.asarray(values, float)[keep]

    def value(self, param: float) -> float:
        return float(np.interp(param, self.params, self.values))

    def param(self, value: float) -> int:
        return round(float(np.interp(value, self.values, self.params)))


@dataclass(frozen=True)
class Calibration:
    """Measured espeak output for one voice: median F0 per pitch setting, the F0 factor of each
    intonation range, and speaking rate per words-per-minute setting."""

    f0_by_pitch: Curve
    f0_factor_by_range: Curve
    sps_by_rate: Curve

    def pitch_for(self, f0: float, pitch_range: int) -> int:
        return self.f0_by_pitch.param(f0 / self.f0_factor_by_range.value(pitch_range))

    def rate_for(self, sps: float) -> int:
        return self.sps_by_rate.param(sps)


def _measure(voice: str, **params) -> dict:
    samples, rate = espeak.synthesize(CALIBRATION_TEXT, voice=voice, **params)
    return audio.measure_speech(samples.astype(np.float32) / 32768, rate)


@cache
def calibration(voice: str) -> Calibration:
    """Measured once per process (about a second per voice) with our own analyser, so a target
    profile measured by that analyser is reproduced in its terms."""
    f0s = [_measure(voice, pitch=p)["f0_median_hz"] for p in PITCHES]
    at_range = [_measure(voice, pitch_range=r)["f0_median_hz"] for r in RANGES]
    middle = at_range[RANGES.index(DEFAULT_RANGE)]
    sps = [_measure(voice, rate=r)["speaking_rate_sps"] for r in RATES]
    return Calibration(
        f0_by_pitch=Curve(PITCHES, f0s),
        f0_factor_by_range=Curve(RANGES, [f / middle for f in at_range]),
        # Syllable counts jitter from one setting to the next; a quadratic follows the trend.
        sps_by_rate=Curve(RATES, np.polyval(np.polyfit(RATES, sps, 2), RATES)),
    )


def espeak_params(profile: dict | None, *, emotion: str = "auto", speed: float = 1.0, pitch: int = 0) -> dict:
    """espeak settings that make its speech measure like `profile`, shifted by emotion, speed
    (0.5-2.0) and pitch (semitones, -12..12)."""
    profile = profile or {}
    f0 = profile.get("f0_median_hz") or DEFAULT_PROFILE["f0_median_hz"]
    sps = profile.get("speaking_rate_sps") or DEFAULT_PROFILE["speaking_rate_sps"]
    expression = EXPRESSIONS.get(emotion, EXPRESSIONS["auto"])
    f0 *= 2 ** (np.clip(pitch, -12, 12) / 12)
    # A pitch shift may cross into the other voice; an emotion only colours the same voice.
    high = f0 >= HIGH_VOICE_FROM_HZ
    voice = HIGH_VOICE if high else LOW_VOICE
    fitted = calibration(voice)
    target_f0 = f0 * expression.f0
    target_sps = sps * expression.rate * np.clip(speed, 0.5, 2.0)
    if expression.whisper:
        voice = "en-us+whisperf" if high else "en-us+whisper"
    return {
        "voice": voice,
        "pitch": fitted.pitch_for(target_f0, expression.pitch_range),
        "rate": fitted.rate_for(target_sps),
        "pitch_range": expression.pitch_range,
    }


def _wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return buf.getvalue()


class OfflineVoiceProvider(VoiceProvider):
    """espeak-ng tuned to the speaker's median pitch and speaking rate. The "voice" is just those
    settings, derived from the profile on every call, so nothing is stored anywhere."""

    name = "offline"

    def clone(self, sample_path: str, *, voice_id: str, profile: dict, on_upload=None) -> VoiceCloneResult:
        profile = profile or {}
        if not (profile.get("f0_median_hz") and profile.get("speaking_rate_sps")):
            profile = {**profile, **audio.speech_profile(sample_path)}
        return VoiceCloneResult(voice_id=voice_id, raw={"espeak": espeak_params(profile)})

    def synthesize(
        self,
        text: str,
        *,
        voice_id: str,
        emotion: str = "auto",
        speed: float = 1.0,
        pitch: int = 0,
        volume: float = 1.0,
        profile: dict | None = None,
    ) -> SynthesisResult:
        params = espeak_params(profile, emotion=emotion, speed=speed, pitch=pitch)
        loudness = volume * EXPRESSIONS.get(emotion, EXPRESSIONS["auto"]).volume
        samples, rate = espeak.synthesize(text, volume=round(100 * loudness), **params)
        return SynthesisResult(
            audio=_wav_bytes(samples, rate),
            mime_type="audio/wav",
            duration_seconds=len(samples) / rate,
            characters=len(text),
        )

    def delete(self, voice_id: str) -> None:
        pass

    def delete_sample(self, provider_file_id: str) -> None:
        pass


# --- Offline avatar --------------------------------------------------------------------------


class OfflineAvatarProvider(AvatarProvider):
    """The talking portrait rendered in the worker, synchronously: no keys, no network, no cost.
    Framing, style, captions and the label are drawn in the render itself."""

    name = "offline"
    draws_final_frame = True  # nothing to finish afterwards, unlike a hosted model's video

    def start_render(
        self,
        portrait_path: str,
        audio_path: str,
        *,
        resolution: str = "480p",
        aspect: str = "1:1",
        options: dict | None = None,
    ) -> RenderTicket:
        # Imported here so processes that only look providers up do not load OpenCV and FFmpeg.
        from media_pipeline import avatar_render

        options = options or {}
        with tempfile.TemporaryDirectory() as folder:
            out_path = f"{folder}/avatar.mp4"
            try:
                avatar_render.render_talking_portrait(
                    portrait_path,
                    audio_path,
                    out_path,
                    aspect=aspect,
                    size=avatar_render.SHORT_SIDES.get(resolution, 512),
                    background=options.get("background") or avatar_render.DEFAULT_BACKGROUND,
                    background_image=options.get("background_image"),
                    captions=options.get("captions"),
                    style=options.get("style") or "natural",
                    framing=options.get("framing") or "head",
                    label=options.get("label") or "",
                )
            except avatar_render.RenderError as exc:
                raise ProviderError(str(exc)) from exc
            with open(out_path, "rb") as f:
                video = f.read()
        return RenderTicket(provider_job_id=f"offline-{uuid.uuid4().hex}", video=video)

    def check_render(self, provider_job_id: str) -> RenderPoll:
        # start_render returns the video itself, so there is never a render in progress to poll.
        return RenderPoll(status="failed", error="This render is no longer available; please start it again.")
