"""Voice sample intake on real media made in the tests (espeak speech encoded by FFmpeg)."""

import json
import os
from pathlib import Path

import av
import numpy as np
import pytest

from media_pipeline import audio
from tests.media_factory import (
    encode,
    join,
    noise_wav,
    silence_wav,
    speech_wav,
    truncated,
    video_only,
    wav_samples,
)

PNG = Path(__file__).parents[1] / "assets" / "coffee.png"


@pytest.fixture
def upload(tmp_path):
    """Write bytes to a file the way storage hands them over: the name says nothing."""

    def write(data: bytes, name: str = "sample") -> str:
        path = tmp_path / name
        path.write_bytes(data)
        return str(path)

    return write


def check(report: audio.QualityReport, name: str) -> audio.Check:
    return next(c for c in report.checks if c.name == name)


def assert_json_safe(report: audio.QualityReport) -> dict:
    data = report.as_dict()
    json.dumps(data, allow_nan=False)
    return data


def test_a_good_sample_passes_every_check(upload):
    report = audio.analyse_sample(upload(speech_wav(75)))

    assert [c.level for c in report.checks] == ["ok"] * len(report.checks)
    m = report.metrics
    assert m["duration_seconds"] == pytest.approx(75, abs=0.05)
    assert (m["sample_rate"], m["channels"], m["format"]) == (44100, 1, "wav")
    assert m["speech_ratio"] >= 0.7
    assert m["snr_db"] >= 25
    assert -23 <= m["loudness_lufs"] <= -16
    assert m["peak_dbfs"] == pytest.approx(-3.1, abs=0.3)
    assert m["clipping_ratio"] == 0
    assert 80 < m["f0_median_hz"] < 130  # espeak's default male voice
    assert 3 < m["speaking_rate_sps"] < 7
    data = assert_json_safe(report)
    assert data["errors"] == data["warnings"] == []
    assert set(data["metrics"]) == {
        "duration_seconds",
        "sample_rate",
        "channels",
        "format",
        "peak_dbfs",
        "clipping_ratio",
        "loudness_lufs",
        "snr_db",
        "speech_ratio",
        "f0_median_hz",
        "speaking_rate_sps",
    }


def test_a_high_voice_measures_high(upload):
    report = audio.analyse_sample(upload(speech_wav(30, f0=200)))
    assert report.metrics["f0_median_hz"] > 180


@pytest.mark.parametrize("fmt", ["mp3", "m4a", "ogg", "webm", "wav"])
def test_formats_are_recognised_by_content_not_name(upload, fmt):
    report = audio.analyse_sample(upload(encode(speech_wav(15), fmt), name="recording.txt"))

    assert report.metrics["format"] == fmt
    assert report.metrics["duration_seconds"] == pytest.approx(15, abs=0.1)
    assert not report.errors
    assert [c.name for c in report.warnings] == ["duration"]


def test_loudness_is_ebu_r128(upload):
    """The file-level meter and the one used for normalising agree with each other."""
    data = speech_wav(20)
    samples, rate, _ = wav_samples(data)
    report = audio.analyse_sample(upload(data))
    assert audio.integrated_loudness(samples[:, 0], rate) == pytest.approx(report.metrics["loudness_lufs"], abs=0.1)
    # Two identical channels are 3 dB louder than one (BS.1770 sums channel power).
    stereo = audio.analyse_sample(upload(speech_wav(20, channels=2), name="stereo"))
    assert stereo.metrics["loudness_lufs"] - report.metrics["loudness_lufs"] == pytest.approx(3.0, abs=0.1)


def ffmpeg_ebur128(path: str) -> float:
    """FFmpeg's own EBU R128 meter (the ebur128 filter) over a whole file: the reference."""
    with av.open(path) as container:
        graph = av.filter.Graph()
        stream = container.streams.audio[0]
        source = graph.add_abuffer(template=stream)
        meter = graph.add("ebur128", "metadata=1:video=0")
        sink = graph.add("abuffersink")
        source.link_to(meter)
        meter.link_to(sink)
        graph.configure()
        loudness = None
        for frame in [*container.decode(stream), None]:
            graph.push(frame)
            while True:
                try:
                    out = graph.pull()
                except (av.BlockingIOError, av.EOFError):
                    break
                loudness = float(out.metadata.get("lavfi.r128.I", loudness))
    return loudness


@pytest.mark.parametrize(
    ("fmt", "rate", "channels", "gain_db", "noise_db", "tolerance"),
    [
        ("wav", 44100, 1, 0, None, 0.05),
        ("wav", 48000, 2, -12, None, 0.05),
        ("wav", 44100, 1, 0, 15, 0.05),
        ("mp3", 44100, 2, 0, None, 0.05),  # planar float samples from the decoder
        ("ogg", 48000, 1, -6, None, 0.05),
        ("wav", 16000, 1, 6, None, 0.15),
        ("wav", 8000, 2, 0, None, 0.3),  # FFmpeg upsamples to 48 kHz first; its filter dulls the top of the band
    ],
)
def test_loudness_matches_ffmpeg_ebur128(upload, fmt, rate, channels, gain_db, noise_db, tolerance):
    data = speech_wav(20, sample_rate=rate, channels=channels, gain_db=gain_db, noise_db=noise_db)
    path = upload(data if fmt == "wav" else encode(data, fmt))
    report = audio.analyse_sample(path)
    assert report.metrics["loudness_lufs"] == pytest.approx(ffmpeg_ebur128(path), abs=tolerance)


def test_short_sample_warns(upload):
    report = audio.analyse_sample(upload(speech_wav(42)))
    assert check(report, "duration").level == "warning"
    assert check(report, "duration").message.startswith("Your sample is 42 s; record at least 60 s")
    assert not report.errors


def test_too_short_sample_is_an_error(upload):
    report = audio.analyse_sample(upload(speech_wav(5)))
    assert [c.name for c in report.errors] == ["duration"]
    assert "Your sample is 5 s; it must be at least 10 s" in report.errors[0].message


def test_too_long_sample_is_an_error(upload):
    report = audio.analyse_sample(upload(speech_wav(310, sample_rate=16000)))
    assert [c.name for c in report.errors] == ["duration"]
    assert report.errors[0].message.startswith("Your sample is 5 min 10 s; the limit is 5 min")
    assert report.metrics["duration_seconds"] == pytest.approx(310, abs=0.05)


def test_between_three_and_five_minutes_is_fine(upload):
    report = audio.analyse_sample(upload(speech_wav(200, sample_rate=16000)))
    assert check(report, "duration").level == "ok"
    assert "clearest 3 min" in check(report, "duration").message


@pytest.mark.parametrize(("snr", "level"), [(35, "ok"), (20, "warning"), (8, "error")])
def test_background_noise(upload, snr, level):
    report = audio.analyse_sample(upload(speech_wav(75, noise_db=snr)))
    assert report.metrics["snr_db"] == pytest.approx(snr, abs=3)
    assert check(report, "noise").level == level
    if level != "ok":
        assert f"signal-to-noise {report.metrics['snr_db']:.0f} dB" in check(report, "noise").message


def test_clipping_is_an_error(upload):
    report = audio.analyse_sample(upload(speech_wav(75, clip=True)))
    assert check(report, "clipping").level == "error"
    assert check(report, "clipping").message.startswith("About 3% of the sample is clipped")
    assert report.metrics["peak_dbfs"] == 0


def test_clipping_survives_lossy_encoding(upload):
    report = audio.analyse_sample(upload(encode(speech_wav(30, clip=True), "mp3")))
    assert check(report, "clipping").level in {"warning", "error"}


def test_silence_is_one_error(upload):
    report = audio.analyse_sample(upload(silence_wav(30)))
    assert [(c.name, c.level) for c in report.checks] == [("silence", "error")]
    assert "silent" in report.errors[0].message
    data = assert_json_safe(report)
    assert data["metrics"]["peak_dbfs"] is None


def test_noise_without_speech_is_an_error(upload):
    report = audio.analyse_sample(upload(noise_wav(30)))
    assert check(report, "speech").level == "error"
    assert check(report, "noise").level == "error"
    assert_json_safe(report)


def test_long_pauses_lower_the_speech_ratio(upload):
    report = audio.analyse_sample(upload(join(speech_wav(40), silence_wav(30))))
    assert report.metrics["speech_ratio"] < 0.7
    assert check(report, "speech").level == "warning"
    assert check(report, "speech").message.startswith(f"Only {round(report.metrics['speech_ratio'] * 100)}% of")


@pytest.mark.parametrize(("gain_db", "word"), [(-18, "quiet"), (10, "very loud")])
def test_loudness_outside_the_range_warns(upload, gain_db, word):
    report = audio.analyse_sample(upload(speech_wav(75, gain_db=gain_db)))
    assert check(report, "loudness").level == "warning"
    assert f"Your sample is {word}" in check(report, "loudness").message
    assert check(report, "clipping").level == "ok"


def test_low_sample_rate_warns(upload):
    report = audio.analyse_sample(upload(speech_wav(75, sample_rate=8000)))
    assert report.metrics["sample_rate"] == 8000
    assert check(report, "sample_rate").level == "warning"
    assert "8 kHz" in check(report, "sample_rate").message
    assert not report.errors


def test_eight_channels_are_mixed_down(upload):
    report = audio.analyse_sample(upload(speech_wav(15, channels=8)))
    assert report.metrics["channels"] == 8
    assert not report.errors
    assert 80 < report.metrics["f0_median_hz"] < 130


@pytest.mark.parametrize(
    ("make", "name", "error"),
    [
        (lambda: b"", "sample.mp3", "empty"),
        (lambda: truncated(encode(speech_wav(75), "mp3")), "sample.mp3", "truncated"),
        (lambda: truncated(encode(speech_wav(20), "m4a")), "sample.m4a", "unreadable"),
        (lambda: b"<!doctype html><html><body>" + b"<p>Not found</p>" * 200 + b"</body></html>", "a.mp3", "unreadable"),
        (lambda: PNG.read_bytes(), "voice.wav", "no_audio"),
        (video_only, "clip.mp4", "no_audio"),
        (lambda: encode(speech_wav(15), "flac"), "voice.flac", "format"),
    ],
    ids=["zero-bytes", "truncated-mp3", "truncated-m4a", "html-as-mp3", "png-as-wav", "video-only", "flac"],
)
def test_unusable_files_give_one_clear_error(upload, make, name, error):
    report = audio.analyse_sample(upload(make(), name=name))
    assert [(c.name, c.level) for c in report.checks] == [(error, "error")]
    assert report.errors[0].message.endswith(".")
    assert_json_safe(report)


def test_truncated_mp3_says_how_much_is_missing(upload):
    report = audio.analyse_sample(upload(truncated(encode(speech_wav(75), "mp3"))))
    assert "it should last 1 min 15 s but only 37 s could be read" in report.errors[0].message


def test_files_over_the_size_limit_are_refused(upload, settings):
    settings.AUDIO_LIMITS = {**settings.AUDIO_LIMITS, "max_bytes": 1024 * 1024}
    report = audio.analyse_sample(upload(speech_wav(30)))
    assert [c.name for c in report.errors] == ["size"]
    assert "the limit is 1 MB" in report.errors[0].message


def test_decoding_stops_at_the_time_limit(upload, settings):
    settings.AUDIO_LIMITS = {**settings.AUDIO_LIMITS, "decode_timeout_seconds": 0}
    report = audio.analyse_sample(upload(speech_wav(30)))
    assert [c.name for c in report.errors] == ["timeout"]


# --- prepare_for_provider ---------------------------------------------------------------------


def read_wav(path: str) -> tuple[np.ndarray, int, int]:
    with open(path, "rb") as f:
        return wav_samples(f.read())


def test_prepared_sample_is_mono_normalised_wav(upload):
    path = upload(encode(speech_wav(75, channels=2, gain_db=-12), "mp3"))
    prepared = audio.prepare_for_provider(path)
    try:
        samples, rate, channels = read_wav(prepared.path)
        assert (rate, channels) == (32000, 1)
        assert len(samples) / rate == pytest.approx(75, abs=0.05)
        assert prepared.duration_seconds == pytest.approx(75, abs=0.05)
        assert audio.integrated_loudness(samples[:, 0], rate) == pytest.approx(-20, abs=1)
        assert np.abs(samples).max() < 1
        assert set(prepared.profile) >= {"duration_seconds", "f0_median_hz", "speaking_rate_sps"}
        assert 80 < prepared.profile["f0_median_hz"] < 130
        with av.open(prepared.path) as container:  # FFmpeg reads it too
            assert container.format.name == "wav"
    finally:
        prepared.cleanup()
    assert not os.path.exists(prepared.path)


def test_low_rate_samples_are_prepared_at_24_khz(upload):
    prepared = audio.prepare_for_provider(upload(speech_wav(20, sample_rate=8000)))
    try:
        assert read_wav(prepared.path)[1] == 24000
    finally:
        prepared.cleanup()


@pytest.mark.parametrize("noise_first", [True, False])
def test_long_samples_keep_their_clearest_three_minutes(upload, noise_first):
    speech, noise = speech_wav(200, sample_rate=16000), noise_wav(60, sample_rate=16000)
    prepared = audio.prepare_for_provider(upload(join(noise, speech) if noise_first else join(speech, noise)))
    try:
        assert prepared.duration_seconds == pytest.approx(180, abs=0.05)
        if noise_first:
            assert 60 <= prepared.start_seconds <= 80
        else:
            assert prepared.start_seconds <= 20
        report = audio.analyse_sample(prepared.path)
        assert report.metrics["duration_seconds"] == pytest.approx(180, abs=0.05)
        assert report.metrics["loudness_lufs"] == pytest.approx(-20, abs=1)
        assert not report.errors
    finally:
        prepared.cleanup()


def test_preparing_an_unusable_file_raises_a_sample_error(upload):
    with pytest.raises(audio.SampleError) as exc:
        audio.prepare_for_provider(upload(b"<html></html>"))
    assert exc.value.name == "unreadable"
