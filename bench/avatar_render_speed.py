"""Offline avatar render: 60 s of audio, 512 px, 25 fps, against the audio's duration and
against a naive renderer that redraws every whole frame with Pillow (same inputs, same face
layout and animation curves, same H.264/AAC encoder settings).

    .venv/bin/python bench/avatar_render_speed.py [--quick]
"""

import math
import os
import tempfile
from fractions import Fraction

import benchlib
from benchlib import Report, median, timed

AUDIO_SECONDS = 60
SIZE = 512
FPS = 25
RUNS = 3
TARGET_REALTIME = 10.0


def make_inputs(folder: str) -> tuple[str, str]:
    from PIL import Image

    from tests.media_factory import speech_wav

    portrait = os.path.join(folder, "portrait.png")
    with Image.open(benchlib.ROOT / "tests" / "assets" / "astronaut.png") as image:
        image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.LANCZOS).save(portrait)
    narration = os.path.join(folder, "narration.wav")
    with open(narration, "wb") as f:
        f.write(speech_wav(AUDIO_SECONDS))
    return portrait, narration


def naive_render(portrait_path: str, audio_path: str, out_path: str, *, size: int = SIZE, fps: int = FPS) -> int:
    """Every frame built from scratch at full size with Pillow: background, pasted portrait, and
    the mouth and eyelids as full-frame blurred masks composited over the whole picture."""
    import av
    from PIL import Image, ImageDraw, ImageFilter

    from media_pipeline import avatar_render as ar

    samples = ar.read_audio(audio_path)
    frames = max(1, math.ceil(len(samples) / ar.AUDIO_RATE * fps))
    openness = ar.mouth_openness(samples, fps, frames)
    closure = ar.blink_closure(fps, frames)
    sway = max(1, round(size * 0.008))
    dx, dy = ar.head_sway(fps, frames, sway)
    portrait_array = ar._load_portrait(portrait_path, size + 2 * sway)
    face = ar.locate_face(portrait_array)
    portrait = Image.fromarray(portrait_array)
    background = ar._background(ar.DEFAULT_BACKGROUND)
    mouth_fill = Image.new("RGB", (size, size), ar.MOUTH_COLOUR)
    skin_fill = Image.new("RGB", (size, size), face.skin)
    with av.open(out_path, "w", format="mp4", options={"movflags": "+faststart"}) as container:
        video, audio = ar.add_streams(container, size, size, fps, with_audio=True)  # the product's encoders
        sent = 0
        for i in range(frames):
            until = min(len(samples), round((i + 1) * ar.AUDIO_RATE / fps))
            while sent < until:
                chunk = samples[sent : sent + ar.AUDIO_CHUNK]
                container.mux(audio.encode(ar._audio_frame(chunk, sent)))
                sent += len(chunk)
            frame = Image.new("RGB", (size, size), background)
            shift_x, shift_y = sway - dx[i], sway - dy[i]
            frame.paste(portrait.crop((shift_x, shift_y, shift_x + size, shift_y + size)), (0, 0))
            ox, oy = -shift_x, -shift_y
            if closure[i] >= 0.1:
                mask = Image.new("L", (size, size), 0)
                draw = ImageDraw.Draw(mask)
                hw, hh = face.eye_axes
                lid = max(1, round(hh * closure[i]))
                for x, y in face.eyes:
                    cx, cy = ox + x, oy + y - hh + lid
                    draw.ellipse((cx - hw, cy - lid, cx + hw, cy + lid), fill=255)
                frame = Image.composite(skin_fill, frame, mask.filter(ImageFilter.GaussianBlur(1.2)))
            if openness[i] >= 0.06:
                mask = Image.new("L", (size, size), 0)
                hw, hh = face.mouth_axes
                opening = max(1, round(hh * openness[i]))
                cx, cy = ox + face.mouth[0], oy + face.mouth[1] + opening // 2
                w = round(hw * (0.75 + 0.2 * openness[i]))
                ImageDraw.Draw(mask).ellipse((cx - w, cy - opening, cx + w, cy + opening), fill=255)
                frame = Image.composite(mouth_fill, frame, mask.filter(ImageFilter.GaussianBlur(1.2)))
            picture = av.VideoFrame.from_image(frame)
            picture.pts, picture.time_base = i, Fraction(1, fps)
            container.mux(video.encode(picture))
        container.mux(audio.encode(None))
        container.mux(video.encode(None))
    return frames


def encode_only(portrait_path: str, audio_path: str, out_path: str, *, size: int = SIZE, fps: int = FPS) -> int:
    """The floor: the same audio and a still portrait through the same encoders, nothing drawn."""
    import av
    import numpy as np

    from media_pipeline import avatar_render as ar

    samples = ar.read_audio(audio_path)
    frames = max(1, math.ceil(len(samples) / ar.AUDIO_RATE * fps))
    still = np.ascontiguousarray(ar._load_portrait(portrait_path, size))
    with av.open(out_path, "w", format="mp4", options={"movflags": "+faststart"}) as container:
        video, audio = ar.add_streams(container, size, size, fps, with_audio=True)  # the product's encoders
        sent = 0
        for i in range(frames):
            until = min(len(samples), round((i + 1) * ar.AUDIO_RATE / fps))
            while sent < until:
                chunk = samples[sent : sent + ar.AUDIO_CHUNK]
                container.mux(audio.encode(ar._audio_frame(chunk, sent)))
                sent += len(chunk)
            picture = av.VideoFrame.from_ndarray(still, format="rgb24")
            picture.pts, picture.time_base = i, Fraction(1, fps)
            container.mux(video.encode(picture))
        container.mux(audio.encode(None))
        container.mux(video.encode(None))
    return frames


def measure(portrait: str, narration: str, folder: str, runs: int) -> dict:
    benchlib.setup_django(benchlib.bench_env(database_url="sqlite:///:memory:", media_root=folder))
    from media_pipeline.avatar_render import render_talking_portrait

    out = os.path.join(folder, "out.mp4")
    times = {"render": [], "naive": [], "encode": []}
    info = None
    for _ in range(runs):  # interleaved, so all three see the same machine state
        seconds, info = timed(render_talking_portrait, portrait, narration, out, aspect="1:1", size=SIZE, fps=FPS)
        times["render"].append(seconds)
        render_bytes = os.path.getsize(out)
        times["naive"].append(timed(naive_render, portrait, narration, out)[0])
        times["encode"].append(timed(encode_only, portrait, narration, out)[0])
    return times | {"duration": info.duration, "frames": info.frames, "mp4_mb": render_bytes / 2**20}


def run(quick: bool = False) -> Report:
    report = Report("Offline avatar render (60 s, 512 px, 25 fps)")
    runs = 1 if quick else RUNS
    with tempfile.TemporaryDirectory() as folder:
        portrait, narration = make_inputs(folder)
        m = benchlib.in_child(measure, portrait, narration, folder, runs)
    duration = m["duration"]
    render, naive, encode = median(m["render"]), median(m["naive"]), median(m["encode"])
    report.table(
        f"Avatar render: {duration:.0f} s audio, {m['frames']} frames {SIZE}x{SIZE} @ {FPS} fps, "
        f"MP4 {m['mp4_mb']:.1f} MB, median of {runs}",
        ["renderer", "median s", "ms / frame", "x real time", "vs naive"],
        [
            ["encode only (still picture, same encoders)", encode, encode / m["frames"] * 1000, duration / encode, ""],
            ["naive full-frame Pillow", naive, naive / m["frames"] * 1000, duration / naive, 1.0],
            ["render_talking_portrait", render, render / m["frames"] * 1000, duration / render, naive / render],
        ],
    )
    speed = duration / render
    report.check("render speed", f">= {TARGET_REALTIME:g}x real time", f"{speed:.1f}x", speed >= TARGET_REALTIME)
    report.check("render vs naive Pillow renderer", "faster", f"{naive / render:.2f}x faster", render < naive)
    return report


if __name__ == "__main__":
    benchlib.main(run)
