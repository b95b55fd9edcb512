"""Real media made inside the tests: espeak speech, silence, noise and encodings via PyAV (FFmpeg)."""

import io
import wave
from functools import cache

import av
import numpy as np

from media_pipeline import espeak

PARAGRAPH = (
    "When I sit down to write, I start with a question that matters to the reader. "
    "Then I gather three or four facts, test each one against what I already know, "
    "and throw away anything that does not help the story. Good writing is mostly rewriting. "
    "My first draft is always too long, so I cut it by a third and read it aloud before I publish."
)
# Container and codec for each upload format a browser or phone produces.
FORMATS = {
    "mp3": ("mp3", "libmp3lame", 44100),
    "m4a": ("ipod", "aac", 44100),
    "ogg": ("ogg", "libopus", 48000),
    "webm": ("webm", "libopus", 48000),
    "wav": ("wav", "pcm_s16le", None),
    "flac": ("flac", "flac", None),
}
LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}


@cache
def _speech(voice: str, pitch: int, sample_rate: int) -> np.ndarray:
    """One spoken paragraph (about 20 s) as float32 at `sample_rate`, peak at -3 dBFS."""
    samples, rate = espeak.synthesize(PARAGRAPH, voice=voice, pitch=pitch)
    mono = _resample(samples.astype(np.float32) / 32768, rate, sample_rate)
    return mono * (0.7 / np.abs(mono).max())


def _resample(mono: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    if rate == new_rate:
        return mono
    frame = av.AudioFrame.from_ndarray(mono[None, :], format="flt", layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=new_rate)
    out = resampler.resample(frame) + resampler.resample(None)
    return np.concatenate([f.to_ndarray()[0] for f in out])


def _active_power(mono: np.ndarray, rate: int) -> float:
    """Mean power of the 10 ms frames within 40 dB of the loudest: speech without its pauses."""
    hop = rate // 100
    power = (mono[: len(mono) // hop * hop].reshape(-1, hop) ** 2).mean(axis=1)
    return float(power[power > power.max() * 1e-4].mean())


def speech_wav(
    seconds: float = 75,
    f0: float | None = None,
    noise_db: float | None = None,
    clip: bool = False,
    sample_rate: int = 44100,
    channels: int = 1,
    gain_db: float = 0.0,
) -> bytes:
    """Speech `seconds` long as 16-bit WAV. `f0` picks a low (male) or high (female) voice;
    `noise_db` mixes in noise at that signal-to-noise ratio (0-8 kHz); `clip` overdrives it;
    `gain_db` makes it quieter or (limited, not clipped) louder."""
    voice, pitch = ("en-us", 50) if f0 is None or f0 < 150 else ("en-us+f3", 60)
    return _wav(_speech_signal(seconds, voice, pitch, noise_db, clip, sample_rate, gain_db), sample_rate, channels)


@cache
def _speech_signal(seconds, voice, pitch, noise_db, clip, sample_rate, gain_db) -> np.ndarray:
    paragraph = _speech(voice, pitch, sample_rate)
    gap = np.zeros(int(0.3 * sample_rate), np.float32)
    unit = np.concatenate([paragraph, gap])
    total = int(seconds * sample_rate)
    mono = np.tile(unit, total // len(unit) + 1)[:total] * np.float32(10 ** (gain_db / 20))
    if noise_db is not None:
        # White up to 8 kHz, so the ratio holds in the speech band whatever the sample rate.
        noise = np.random.default_rng(1).normal(0, 1, int(seconds * 16_000) + 16).astype(np.float32)
        noise = _resample(noise, 16_000, sample_rate)[:total]
        mono = mono + noise * np.sqrt(_active_power(mono, sample_rate) / 10 ** (noise_db / 10) / np.mean(noise**2))
    if clip:
        mono = mono * 4
    elif gain_db > 0:
        mono = np.tanh(mono)  # loud but limited, as a phone's automatic gain does
    return np.clip(mono, -1, 1)


def silence_wav(seconds: float = 30, sample_rate: int = 44100) -> bytes:
    return _wav(np.zeros(int(seconds * sample_rate), np.float32), sample_rate)


def noise_wav(seconds: float = 30, sample_rate: int = 44100) -> bytes:
    """White noise at -20 dBFS RMS: loud but no speech."""
    return _wav(np.random.default_rng(2).normal(0, 0.1, int(seconds * sample_rate)).astype(np.float32), sample_rate)


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: int(len(data) * keep)]


def _wav(mono: np.ndarray, sample_rate: int, channels: int = 1) -> bytes:
    pcm = (np.clip(mono, -1, 1) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(np.repeat(pcm, channels).tobytes())
    return buf.getvalue()


def encode(wav_bytes: bytes, fmt: str) -> bytes:
    """Re-encode WAV bytes as mp3, m4a (AAC), ogg (Opus), webm (Opus, as MediaRecorder makes) or wav."""
    container_format, codec, rate = FORMATS[fmt]
    out = io.BytesIO()
    with av.open(io.BytesIO(wav_bytes)) as src, av.open(out, "w", format=container_format) as dst:
        source = src.streams.audio[0]
        layout = LAYOUTS[source.channels]  # plain WAV files carry no channel layout
        stream = dst.add_stream(codec, rate=rate or source.rate, layout=layout)
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout=layout, rate=stream.rate)
        for frame in [*src.decode(source), None]:
            for converted in resampler.resample(frame):
                dst.mux(stream.encode(converted))
        dst.mux(stream.encode(None))
    return out.getvalue()


def join(*wavs: bytes) -> bytes:
    """Concatenate WAV files of the same rate and channel count."""
    frames = []
    for data in wavs:
        with wave.open(io.BytesIO(data)) as w:
            rate, channels = w.getframerate(), w.getnchannels()
            frames.append(w.readframes(w.getnframes()))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(frames))
    return buf.getvalue()


def video_only(seconds: float = 1) -> bytes:
    """An MP4 with a picture and no sound track."""
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height = 64, 64
        for i in range(int(seconds * 10)):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i * 20 % 255, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


def wav_samples(data: bytes) -> tuple[np.ndarray, int, int]:
    """(float samples shaped (frames, channels), sample rate, channels) of a 16-bit WAV."""
    with wave.open(io.BytesIO(data)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        return pcm.reshape(-1, w.getnchannels()).astype(np.float32) / 32768, w.getframerate(), w.getnchannels()


def make_audio(fmt: str = "mp3", seconds: float = 1.0, rate: int = 16000) -> bytes:
    """A real, tiny mono tone encoded by FFmpeg (mp3 or wav)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as out:
        stream = out.add_stream("mp3" if fmt == "mp3" else "pcm_s16le", rate=rate)
        stream.layout = "mono"
        t = np.arange(int(seconds * rate)) / rate
        frame = av.AudioFrame.from_ndarray(
            (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return buffer.getvalue()


def make_mp4(frames: int = 5) -> bytes:
    """A real, tiny silent mp4."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 40, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()
