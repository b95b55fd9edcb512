"""The offline voice: espeak-ng calibrated to a speaker's pitch and pace, checked by our own analyser."""

import io
import threading
import time

import av
import numpy as np
import pytest

from media_pipeline import audio, espeak
from media_pipeline.providers import get_voice_provider
from media_pipeline.providers.local import OfflineVoiceProvider, espeak_params
from tests.media_factory import speech_wav, wav_samples

TEXT = (
    "Writing well is a habit more than a gift. I read my drafts aloud, listen for the places where I "
    "stumble, and fix them one sentence at a time. Readers forgive a plain style; they never forgive "
    "confusion. So I choose short words, concrete examples and a clear point for every paragraph."
)
LOW = {"f0_median_hz": 110.0, "speaking_rate_sps": 4.0}
HIGH = {"f0_median_hz": 200.0, "speaking_rate_sps": 5.0}


@pytest.fixture
def provider():
    return OfflineVoiceProvider()


def measure(result) -> dict:
    samples, rate, _ = wav_samples(result.audio)
    return audio.measure_speech(samples[:, 0], rate)


def test_registered_as_the_offline_voice():
    assert isinstance(get_voice_provider("offline"), OfflineVoiceProvider)


def test_synthesis_is_a_valid_wav(provider):
    result = provider.synthesize("Hello! This is my voice.", voice_id="v1", profile=LOW)

    assert result.mime_type == "audio/wav"
    assert result.characters == len("Hello! This is my voice.")
    with av.open(io.BytesIO(result.audio)) as container:
        stream = container.streams.audio[0]
        decoded = sum(frame.samples for frame in container.decode(stream))
        assert (container.format.name, stream.channels) == ("wav", 1)
        assert decoded / stream.rate == pytest.approx(result.duration_seconds, abs=0.01)
    assert result.duration_seconds > 1


@pytest.mark.parametrize("profile", [LOW, HIGH], ids=["110Hz", "200Hz"])
def test_speech_matches_the_speakers_pitch_and_pace(provider, profile):
    measured = measure(provider.synthesize(TEXT, voice_id="v1", profile=profile))

    assert measured["f0_median_hz"] == pytest.approx(profile["f0_median_hz"], rel=0.05)
    assert measured["speaking_rate_sps"] == pytest.approx(profile["speaking_rate_sps"], rel=0.05)


def test_clone_keeps_the_profile_and_stores_nothing(provider, tmp_path):
    cloned = provider.clone(str(tmp_path / "unused.wav"), voice_id="alw1x7", profile=HIGH)

    assert cloned.voice_id == "alw1x7"
    assert cloned.provider_file_id == ""
    assert cloned.raw["espeak"]["voice"] == "en-us+f3"
    provider.delete("alw1x7")
    provider.delete_sample("")


def test_clone_measures_the_sample_when_the_profile_is_empty(provider, tmp_path):
    sample = tmp_path / "sample"
    sample.write_bytes(speech_wav(20, f0=200))
    assert provider.clone(str(sample), voice_id="v1", profile={}).raw["espeak"]["voice"] == "en-us+f3"
    sample.write_bytes(speech_wav(20))
    assert provider.clone(str(sample), voice_id="v1", profile={}).raw["espeak"]["voice"] == "en-us"


def test_no_profile_gives_a_default_voice(provider):
    measured = measure(provider.synthesize(TEXT, voice_id="v1"))
    assert measured["f0_median_hz"] == pytest.approx(120, rel=0.08)


def test_speed_changes_the_pace(provider):
    normal = provider.synthesize(TEXT, voice_id="v1", profile=LOW)
    fast = provider.synthesize(TEXT, voice_id="v1", profile=LOW, speed=1.5)
    slow = provider.synthesize(TEXT, voice_id="v1", profile=LOW, speed=0.5)
    assert fast.duration_seconds < 0.8 * normal.duration_seconds
    assert slow.duration_seconds > 1.5 * normal.duration_seconds


def test_pitch_shift_in_semitones(provider):
    up = measure(provider.synthesize(TEXT, voice_id="v1", profile=LOW, pitch=7))
    assert up["f0_median_hz"] == pytest.approx(110 * 2 ** (7 / 12), rel=0.06)


def test_emotions_change_the_voice(provider):
    happy = provider.synthesize(TEXT, voice_id="v1", profile=LOW, emotion="happy")
    sad = provider.synthesize(TEXT, voice_id="v1", profile=LOW, emotion="sad")
    assert measure(happy)["f0_median_hz"] > 1.1 * measure(sad)["f0_median_hz"]
    assert sad.duration_seconds > 1.15 * happy.duration_seconds
    whisper = measure(provider.synthesize(TEXT, voice_id="v1", profile=LOW, emotion="whisper"))
    assert whisper["f0_median_hz"] is None  # no voicing left to measure
    assert espeak_params(LOW, emotion="bemused") == espeak_params(LOW)  # unknown emotions read neutral


def test_volume_scales_the_level(provider):
    loud = wav_samples(provider.synthesize(TEXT, voice_id="v1", profile=LOW, volume=1.0).audio)[0]
    quiet = wav_samples(provider.synthesize(TEXT, voice_id="v1", profile=LOW, volume=0.5).audio)[0]
    assert np.sqrt((quiet**2).mean()) < 0.6 * np.sqrt((loud**2).mean())


def test_long_text_is_fast(provider):
    provider.synthesize("Warm up.", voice_id="v1", profile=LOW)  # the calibration is measured once
    text = " ".join([TEXT] * 6)  # about 300 words
    started = time.perf_counter()
    result = provider.synthesize(text, voice_id="v1", profile=LOW)
    elapsed = time.perf_counter() - started
    assert result.duration_seconds > 90
    # Typically over 1000x real time; a generous bound keeps slow CI machines green.
    assert result.duration_seconds / elapsed > 100


def test_espeak_is_safe_across_threads():
    expected = {pitch: len(espeak.synthesize(TEXT, pitch=pitch)[0]) for pitch in (20, 80)}
    results = []

    def speak(pitch):
        samples, rate = espeak.synthesize(TEXT, pitch=pitch)
        results.append((pitch, len(samples), rate))

    threads = [threading.Thread(target=speak, args=(p,)) for p in (20, 80) * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    for pitch, length, rate in results:
        assert rate == 22050
        assert length == pytest.approx(expected[pitch], rel=0.02)
