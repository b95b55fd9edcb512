"""The offline talking portrait: the normalised portrait speaks the audio. The mouth opens with
the loudness of each video frame's audio, the eyes blink now and then and the head sways a
little; the result is an H.264 + AAC MP4 written with PyAV.

The persona's framing sets how large the portrait sits in the frame, its style grades the
colours (and gives the professional look a thin frame), and captions and the "AI-generated"
badge are burned in. `finish_hosted_video` applies the same framing, look, captions and badge to
a video rendered by a hosted model, so every provider gives the same product.

Speed comes from doing the whole-frame work once: each frame is a copy of a prepared picture
with a few small regions drawn on it (mouth, eyelids, captions, badge)."""

import io
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import cv2
import numpy as np
from PIL import Image, ImageColor, ImageDraw, ImageFont, ImageOps

from media_pipeline import photo

ASPECTS = {"16:9": (16, 9), "1:1": (1, 1), "4:5": (4, 5), "9:16": (9, 16)}
DEFAULT_BACKGROUND = "#1f2937"
AUDIO_RATE = 48000
AUDIO_CHUNK = 1024  # samples per audio frame handed to the encoder (one AAC frame)
MOUTH_COLOUR = (52, 22, 26)
LASH_COLOUR = (40, 30, 30)
LOUDNESS_RANGE_DB = 24.0  # the mouth is closed this far below the speech's loud parts
BLINK_SECONDS = 0.2
SHORT_SIDES = {"480p": 512, "720p": 720}  # the frame's short side per resolution; 512 is the portrait's own size
# How large the portrait is drawn, as a share of the frame's short side. A close-up is cropped
# around the face to the short side; a wide shot leaves background around the portrait.
FRAMING_SCALES = {"close": 1.4, "head": 1.0, "wide": 0.72}


@dataclass(frozen=True)
class Look:
    """A style's colour grade (saturation, contrast, per-channel warmth) and optional frame."""

    saturation: float = 1.0
    contrast: float = 1.0
    channels: tuple[float, float, float] = (1.0, 1.0, 1.0)
    border: tuple[int, int, int] | None = None


LOOKS = {
    "natural": Look(),
    "professional": Look(saturation=0.7, contrast=1.05, channels=(0.97, 1.0, 1.04), border=(229, 231, 235)),
    "vivid": Look(saturation=1.45, contrast=1.12, channels=(1.04, 1.0, 0.96)),
}
BORDER_SHARE = 0.02  # of the short side


class RenderError(Exception):
    """The inputs cannot be rendered; the message is safe to show."""


@dataclass
class RenderInfo:
    duration: float
    width: int
    height: int
    frames: int


@dataclass
class FaceLayout:
    """Where to animate, in portrait pixels."""

    mouth: tuple[int, int]
    mouth_axes: tuple[int, int]  # half width, half height when fully open
    eyes: tuple[tuple[int, int], tuple[int, int]]
    eye_axes: tuple[int, int]
    skin: tuple[int, int, int]


def frame_size(aspect: str, size: int) -> tuple[int, int]:
    """(width, height) with the short side `size` px, both even as H.264 in 4:2:0 needs."""
    if aspect not in ASPECTS:
        raise RenderError(f"Unknown aspect ratio {aspect!r}; use one of {', '.join(ASPECTS)}.")
    across, down = ASPECTS[aspect]
    long_side = 2 * round(size * max(across, down) / min(across, down) / 2)
    return (long_side, size) if across > down else (size, long_side) if down > across else (size, size)


def locate_face(portrait: np.ndarray) -> FaceLayout:
    """Find the face in the portrait; fall back to where portrait_crop puts it."""
    grey = cv2.cvtColor(portrait, cv2.COLOR_RGB2GRAY)
    faces = photo.find_faces(grey)
    x, y, w, h = faces[0] if faces else photo.portrait_face_box(portrait.shape[0])
    # Proportions of a frontal face within the detector's box.
    cheek = portrait[y + int(0.52 * h) : y + int(0.6 * h), x + int(0.22 * w) : x + int(0.32 * w)]
    return FaceLayout(
        mouth=(x + round(0.5 * w), y + round(0.8 * h)),
        mouth_axes=(max(2, round(0.16 * w)), max(2, round(0.07 * h))),
        eyes=((x + round(0.3 * w), y + round(0.39 * h)), (x + round(0.7 * w), y + round(0.39 * h))),
        eye_axes=(max(2, round(0.08 * w)), max(2, round(0.04 * h))),
        # Eyelids are a little darker than the lit cheek.
        skin=tuple(int(v * 0.88) for v in np.median(cheek.reshape(-1, 3), axis=0)),
    )


def read_audio(path: str) -> np.ndarray:
    """The audio as mono float32 samples at AUDIO_RATE."""
    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise RenderError("The audio file has no sound.")
            samples = _decode_audio(container)
    except av.FFmpegError as exc:
        raise RenderError("The audio could not be read.") from exc
    if not len(samples):
        raise RenderError("The audio file has no sound.")
    return samples


def _decode_audio(container) -> np.ndarray:
    """The container's first audio stream as mono float32 at AUDIO_RATE (empty without one)."""
    if not container.streams.audio:
        return np.zeros(0, np.float32)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
    chunks = []
    for frame in container.decode(audio=0):
        chunks.extend(f.to_ndarray()[0] for f in resampler.resample(frame))
    chunks.extend(f.to_ndarray()[0] for f in resampler.resample(None))
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def mouth_openness(samples: np.ndarray, fps: int, frames: int) -> np.ndarray:
    """0..1 per video frame from the RMS loudness of that frame's audio."""
    bounds = np.minimum((np.arange(frames + 1) * AUDIO_RATE / fps).astype(np.int64), len(samples))
    energy = np.concatenate([[0.0], np.cumsum(samples.astype(np.float64) ** 2)])
    counts = np.maximum(np.diff(bounds), 1)
    rms = np.sqrt((energy[bounds[1:]] - energy[bounds[:-1]]) / counts)
    db = 20 * np.log10(rms + 1e-9)
    voiced = db[db > -60]
    if not len(voiced):
        return np.zeros(frames)
    loud = np.percentile(voiced, 95)
    raw = np.clip((db - (loud - LOUDNESS_RANGE_DB)) / LOUDNESS_RANGE_DB, 0, 1)
    # Open at once but close over a few frames, as a mouth does; this also stops flicker.
    openness = np.empty(frames)
    previous = 0.0
    for i, value in enumerate(raw):
        previous = openness[i] = max(value, previous * 0.55)
    return openness


def blink_closure(fps: int, frames: int, seed: int = 7) -> np.ndarray:
    """0..1 eyelid closure per frame: a blink every 2.5-5.5 s, at irregular times."""
    rng = np.random.default_rng(seed)
    closure = np.zeros(frames)
    times = np.arange(frames) / fps
    start = rng.uniform(0.8, 2.0)
    while start < frames / fps:
        phase = (times - start) / BLINK_SECONDS
        inside = (phase >= 0) & (phase < 1)
        # A tent shape, clipped, so the eye stays shut for the middle of the blink.
        closure[inside] = np.minimum(1.0, 2.2 * (1 - np.abs(2 * phase[inside] - 1)))
        start += rng.uniform(2.5, 5.5)
    return closure


def head_sway(fps: int, frames: int, amplitude: int) -> tuple[np.ndarray, np.ndarray]:
    """Whole-pixel offsets per frame from two slow sines of unrelated periods."""
    t = np.arange(frames) / fps
    dx = np.rint(amplitude * np.sin(2 * math.pi * t / 5.3))
    dy = np.rint(amplitude * 0.6 * np.sin(2 * math.pi * t / 3.7 + 1.0))
    return dx.astype(int), dy.astype(int)


@dataclass
class _Overlay:
    """A drawing blended onto frames at (left, top), shown from `start` to `end` seconds."""

    start: float
    end: float
    top: int
    left: int
    tint: np.ndarray  # premultiplied colour of the drawing, float32
    keep: np.ndarray  # how much of the picture shows through, float32

    def draw(self, frame: np.ndarray) -> None:
        height, width = self.keep.shape[:2]
        region = frame[self.top : self.top + height, self.left : self.left + width]
        region[:] = (region * self.keep + self.tint).astype(np.uint8)


def _overlay(image: Image.Image, *, top: int, left: int, start: float = 0.0, end: float = math.inf) -> _Overlay:
    rgba = np.asarray(image, dtype=np.float32) / 255
    alpha = rgba[..., 3:]
    return _Overlay(float(start), float(end), top, left, rgba[..., :3] * alpha * 255, 1 - alpha)


def _prepare_captions(captions, width: int, height: int) -> list[_Overlay]:
    """Draw each caption once (Pillow, for real fonts) as a strip blended per frame."""
    font = ImageFont.load_default(size=max(12, round(min(width, height) * 0.045)))
    margin = round(font.size * 0.8)
    prepared = []
    for start, end, text in captions:
        lines = _wrap(text, font, width - 4 * margin)
        if not lines:
            continue
        line_height = round(font.size * 1.25)
        strip_height = line_height * len(lines) + 2 * margin
        strip = Image.new("RGBA", (width, strip_height), (0, 0, 0, 0))
        draw = ImageDraw.Draw(strip)
        widest = max(font.getlength(line) for line in lines)
        left = round((width - widest) / 2) - margin
        draw.rounded_rectangle(
            (left, 0, width - left, strip_height - margin // 2), radius=margin // 2, fill=(0, 0, 0, 165)
        )
        for n, line in enumerate(lines):
            x = round((width - font.getlength(line)) / 2)
            draw.text((x, margin // 2 + n * line_height), line, font=font, fill=(255, 255, 255, 255))
        prepared.append(_overlay(strip, top=height - strip_height - margin, left=0, start=start, end=end))
    return prepared


def _prepare_badge(label: str, width: int, height: int) -> _Overlay | None:
    """A small dark badge with the label in the top right corner, on every frame."""
    if not label:
        return None
    short = min(width, height)
    font = ImageFont.load_default(size=max(11, round(short * 0.032)))
    pad, margin = max(3, round(font.size * 0.45)), max(4, round(short * 0.025))
    badge_width = math.ceil(font.getlength(label)) + 2 * pad
    badge_height = round(font.size * 1.25) + 2 * pad
    badge = Image.new("RGBA", (badge_width, badge_height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(badge)
    draw.rounded_rectangle((0, 0, badge_width - 1, badge_height - 1), radius=pad, fill=(17, 24, 39, 190))
    draw.text((pad, pad), label, font=font, fill=(255, 255, 255, 255))
    return _overlay(badge, top=margin, left=width - badge_width - margin)


def grade(picture: np.ndarray, look: Look) -> np.ndarray:
    """The style's colour grade: saturation around each pixel's grey, contrast around mid-grey."""
    if look.saturation == look.contrast == 1.0 and look.channels == (1.0, 1.0, 1.0):
        return picture
    rgb = picture.astype(np.float32)
    grey = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    rgb = grey[..., None] + (rgb - grey[..., None]) * look.saturation
    rgb = 128 + (rgb - 128) * look.contrast
    rgb *= np.array(look.channels, np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8)


@dataclass
class _Finish:
    """What is drawn over every frame, whoever rendered it: the style's frame, captions, badge."""

    border: tuple[int, int, int] | None
    border_width: int
    captions: list[_Overlay]
    badge: _Overlay | None

    @classmethod
    def prepare(cls, width: int, height: int, *, look: Look, captions, label: str) -> "_Finish":
        return cls(
            border=look.border,
            border_width=max(2, round(min(width, height) * BORDER_SHARE)),
            captions=_prepare_captions(captions or [], width, height),
            badge=_prepare_badge(label, width, height),
        )

    def draw(self, frame: np.ndarray, seconds: float) -> None:
        if self.border is not None:
            b = self.border_width
            frame[:b], frame[-b:], frame[:, :b], frame[:, -b:] = self.border, self.border, self.border, self.border
        for strip in self.captions:
            if strip.start <= seconds < strip.end:
                strip.draw(frame)
        if self.badge is not None:
            self.badge.draw(frame)


def _wrap(text: str, font, max_width: int) -> list[str]:
    lines: list[str] = []
    for word in " ".join(str(text).split()).split(" "):
        if lines and font.getlength(f"{lines[-1]} {word}") <= max_width:
            lines[-1] = f"{lines[-1]} {word}"
        elif word:
            lines.append(word)
    return lines


def _background(colour: str) -> tuple[int, int, int]:
    try:
        return ImageColor.getrgb(colour)[:3]
    except (ValueError, TypeError):
        return ImageColor.getrgb(DEFAULT_BACKGROUND)[:3]


def _canvas(width: int, height: int, colour: str, image_path: str | None) -> np.ndarray:
    """The frame behind the portrait: the uploaded background image (cover-cropped) or a colour."""
    if image_path:
        try:
            with Image.open(image_path) as image:
                cover = ImageOps.fit(image.convert("RGB"), (width, height), Image.Resampling.LANCZOS)
            return np.asarray(cover).copy()
        except (OSError, ValueError):
            pass  # an unreadable background falls back to the colour rather than failing the video
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = _background(colour)
    return canvas


def _load_portrait(path: str, size: int) -> np.ndarray:
    """The portrait as a square RGB array of `size` px (centre-cropped if it is not square)."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except (OSError, ValueError) as exc:
        raise RenderError("The portrait could not be read.") from exc
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return np.asarray(square.resize((size, size), Image.Resampling.LANCZOS))


def _placement(framing: str, width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """(drawn side, visible side, left, top) of the portrait for a framing: a close-up is drawn
    larger and cropped to the short side; a wide shot is drawn smaller, standing on the bottom edge."""
    drawn = 2 * round(size * FRAMING_SCALES.get(framing, 1.0) / 2)
    view = min(drawn, size)
    left = (width - view) // 2
    top = height - view if drawn < size else (height - view) // 2
    return drawn, view, left, top


def render_talking_portrait(
    portrait_path: str,
    audio_path: str,
    out_path: str,
    *,
    aspect: str = "1:1",
    size: int = 512,
    fps: int = 25,
    background: str = DEFAULT_BACKGROUND,
    background_image: str | None = None,
    captions: list[tuple[float, float, str]] | None = None,
    style: str = "natural",
    framing: str = "head",
    label: str = "",
) -> RenderInfo:
    width, height = frame_size(aspect, size)
    samples = read_audio(audio_path)
    duration = len(samples) / AUDIO_RATE
    frames = max(1, math.ceil(duration * fps))
    openness = mouth_openness(samples, fps, frames)
    closure = blink_closure(fps, frames)
    sway = max(1, round(size * 0.008))
    dx, dy = head_sway(fps, frames, sway)
    look = LOOKS.get(style, LOOKS["natural"])
    drawn, view, left, top = _placement(framing, width, height, size)

    # The portrait gets a margin of `sway` px on every side so swaying never shows its edge.
    portrait = grade(_load_portrait(portrait_path, drawn + 2 * sway), look)
    face = locate_face(portrait)
    # The visible square of the portrait (all of it unless it is a close-up), centred on the face.
    centre_x = face.mouth[0]
    centre_y = (face.eyes[0][1] + face.mouth[1]) // 2
    crop_x = min(max(0, centre_x - sway - view // 2), drawn - view)
    crop_y = min(max(0, centre_y - sway - view // 2), drawn - view)
    canvas = grade(_canvas(width, height, background, background_image), look)
    finish = _Finish.prepare(width, height, look=look, captions=captions, label=label)

    def pictures() -> Iterator[np.ndarray]:
        for i in range(frames):
            frame = canvas.copy()
            shift_x, shift_y = crop_x + sway - dx[i], crop_y + sway - dy[i]
            frame[top : top + view, left : left + view] = portrait[shift_y : shift_y + view, shift_x : shift_x + view]
            origin = (left - shift_x, top - shift_y)  # where the portrait's (0, 0) lands
            _draw_eyes(frame, face, origin, closure[i])
            _draw_mouth(frame, face, origin, openness[i])
            finish.draw(frame, i / fps)
            yield frame

    written = _write_mp4(out_path, width, height, fps, samples, pictures())
    return RenderInfo(duration=written / fps, width=width, height=height, frames=written)


def finish_hosted_video(
    video: bytes,
    *,
    aspect: str = "1:1",
    size: int = 512,
    background: str = DEFAULT_BACKGROUND,
    background_image: str | None = None,
    captions: list[tuple[float, float, str]] | None = None,
    style: str = "natural",
    framing: str = "head",
    label: str = "",
) -> bytes:
    """A hosted model's talking portrait in the product's frame: placed in the chosen aspect on
    the avatar background as the offline renderer places the portrait (a non-square video is
    fitted inside that square; a close-up crops its centre), graded in the persona's style, with
    the captions and badge burned in. PyAV decodes it and encodes the result as H.264 + AAC."""
    width, height = frame_size(aspect, size)
    look = LOOKS.get(style, LOOKS["natural"])
    drawn, view, left, top = _placement(framing, width, height, size)
    canvas = grade(_canvas(width, height, background, background_image), look)
    finish = _Finish.prepare(width, height, look=look, captions=captions, label=label)
    try:
        with av.open(io.BytesIO(video)) as source:
            samples = _decode_audio(source)
        source = av.open(io.BytesIO(video))
    except av.FFmpegError as exc:
        raise RenderError("The avatar video could not be read.") from exc
    with source:
        if not source.streams.video:
            raise RenderError("The avatar video has no picture.")
        stream = source.streams.video[0]
        fps = round(float(stream.average_rate or 25)) or 25

        def pictures() -> Iterator[np.ndarray]:
            for index, decoded in enumerate(source.decode(stream)):
                picture = decoded.to_ndarray(format="rgb24")
                frame = canvas.copy()
                _place_video_frame(frame, picture, look=look, drawn=drawn, view=view, left=left, top=top)
                seconds = decoded.time if decoded.time is not None else index / fps
                finish.draw(frame, seconds)
                yield frame

        with tempfile.TemporaryDirectory() as folder:
            out_path = f"{folder}/finished.mp4"
            try:
                written = _write_mp4(out_path, width, height, fps, samples, pictures())
            except av.FFmpegError as exc:
                raise RenderError("The avatar video could not be read.") from exc
            if not written:
                raise RenderError("The avatar video has no picture.")
            with open(out_path, "rb") as f:
                return f.read()


def _place_video_frame(frame, picture, *, look: Look, drawn: int, view: int, left: int, top: int) -> None:
    """Fit the picture inside the portrait square (`drawn` px), graded, and draw its visible centre
    (`view` px)."""
    source_height, source_width = picture.shape[:2]
    scale = drawn / max(source_width, source_height)
    fitted_width, fitted_height = max(1, round(source_width * scale)), max(1, round(source_height * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    fitted = grade(cv2.resize(picture, (fitted_width, fitted_height), interpolation=interpolation), look)
    # The fitted picture within the drawn square, then the part of that square that is visible.
    square_left, square_top = (drawn - fitted_width) // 2, (drawn - fitted_height) // 2
    crop = (drawn - view) // 2
    x0, y0 = max(0, crop - square_left), max(0, crop - square_top)
    x1, y1 = min(fitted_width, crop + view - square_left), min(fitted_height, crop + view - square_top)
    if x1 <= x0 or y1 <= y0:
        return
    frame_x, frame_y = left + square_left + x0 - crop, top + square_top + y0 - crop
    frame[frame_y : frame_y + y1 - y0, frame_x : frame_x + x1 - x0] = fitted[y0:y1, x0:x1]


def add_streams(container, width: int, height: int, fps: int, *, with_audio: bool):
    """The product's H.264 video stream and AAC audio stream (None without audio)."""
    video = container.add_stream("libx264", rate=fps, options={"preset": "veryfast", "crf": "23"})
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    # x264 encodes frames in parallel while the caller draws the next ones (about 1.6x faster on
    # 2 cores); PyAV leaves it single-threaded unless asked.
    video.thread_type, video.thread_count = "FRAME", min(4, os.cpu_count() or 1)
    audio = container.add_stream("aac", rate=AUDIO_RATE, layout="mono") if with_audio else None
    return video, audio


def _write_mp4(out_path: str, width: int, height: int, fps: int, samples: np.ndarray, pictures: Iterable) -> int:
    """Encode the frames as H.264 and the samples as AAC, interleaved; returns the frame count."""
    with av.open(out_path, "w", format="mp4", options={"movflags": "+faststart"}) as container:
        # superfast: a talking portrait barely changes between frames, so the slower presets buy
        # little size for a third more encoding time.
        video, audio = add_streams(container, width, height, fps, with_audio=len(samples) > 0)
        sent = count = 0

        def send_audio(until: int) -> int:
            position = sent
            while position < until:
                chunk = samples[position : position + AUDIO_CHUNK]
                container.mux(audio.encode(_audio_frame(chunk, position)))
                position += len(chunk)
            return position

        for i, frame in enumerate(pictures):
            # Audio up to the end of this frame first, so the muxer can interleave as it goes.
            if audio is not None:
                sent = send_audio(min(len(samples), round((i + 1) * AUDIO_RATE / fps)))
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts, picture.time_base = i, Fraction(1, fps)
            container.mux(video.encode(picture))
            count = i + 1
        if audio is not None:
            sent = send_audio(len(samples))
            container.mux(audio.encode(None))
        container.mux(video.encode(None))
    return count


def _audio_frame(chunk: np.ndarray, first_sample: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = AUDIO_RATE
    frame.pts, frame.time_base = first_sample, Fraction(1, AUDIO_RATE)
    return frame


def _draw_mouth(frame: np.ndarray, face: FaceLayout, origin: tuple[int, int], openness: float) -> None:
    if openness < 0.06:
        return
    half_width, half_height = face.mouth_axes
    opening = max(1, round(half_height * openness))
    # The jaw drops: the mouth grows mostly downwards from the lip line.
    centre = (origin[0] + face.mouth[0], origin[1] + face.mouth[1] + opening // 2)
    _blend_ellipse(frame, centre, (round(half_width * (0.75 + 0.2 * openness)), opening), MOUTH_COLOUR)


def _draw_eyes(frame: np.ndarray, face: FaceLayout, origin: tuple[int, int], closure: float) -> None:
    if closure < 0.1:
        return
    half_width, half_height = face.eye_axes
    lid = max(1, round(half_height * closure))
    for x, y in face.eyes:
        # The lid comes down from the top of the eye; its lower edge is the lash line.
        centre = (origin[0] + x, origin[1] + y - half_height + lid)
        _blend_ellipse(frame, centre, (half_width, lid), face.skin, lash=closure > 0.5)


def _blend_ellipse(frame, centre, axes, colour, *, lash: bool = False) -> None:
    """A filled ellipse with soft edges, worked on a small region around it only."""
    pad = 3
    x0, y0 = max(0, centre[0] - axes[0] - pad), max(0, centre[1] - axes[1] - pad)
    region = frame[y0 : centre[1] + axes[1] + pad + 1, x0 : centre[0] + axes[0] + pad + 1]
    local = (centre[0] - x0, centre[1] - y0)
    mask = np.zeros(region.shape[:2], np.float32)
    cv2.ellipse(mask, local, axes, 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    mask = cv2.GaussianBlur(mask, (0, 0), 1.2)[..., None]
    region[:] = region * (1 - mask) + np.array(colour, np.float32) * mask
    if lash:
        cv2.ellipse(region, local, axes, 0, 20, 160, LASH_COLOUR, 1, cv2.LINE_AA)
