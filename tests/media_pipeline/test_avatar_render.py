import wave
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from media_pipeline import avatar_render, photo
from media_pipeline.providers import get_avatar_provider
from media_pipeline.providers.base import ProviderError
from tests import photo_factory as pf

RATE = 22050


def speech_like(seconds: float, loud_seconds: list[int]) -> np.ndarray:
    """Syllable-like bursts (a buzz under a 4 Hz envelope) in the listed whole seconds, else silence."""
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2 * np.isin(t.astype(int), loud_seconds)
    return 0.3 * envelope * np.sign(np.sin(2 * np.pi * 180 * t))


def write_wav(path, samples: np.ndarray) -> str:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes((samples * 32767).astype("<i2").tobytes())
    return str(path)


def write_mp3(path, samples: np.ndarray) -> str:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libmp3lame", rate=RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.astype(np.float32).reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, 0, Fraction(1, RATE)
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return str(path)


@pytest.fixture(scope="module")
def portrait(tmp_path_factory):
    """The normalised portrait, made the way the photo check makes it."""
    folder = tmp_path_factory.mktemp("portrait")
    source = pf.write(folder, "me.jpg", pf.astronaut())
    path = folder / "portrait.png"
    path.write_bytes(photo.portrait_crop(source, photo.analyse_photo(source)))
    return str(path)


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """3 s: silent, loud, silent."""
    return write_wav(tmp_path_factory.mktemp("audio") / "speech.wav", speech_like(3, [1]))


def decoded(path) -> tuple[av.container.InputContainer, list[np.ndarray]]:
    container = av.open(str(path))
    frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return container, frames


def test_the_video_has_h264_and_aac_and_lasts_as_long_as_the_audio(tmp_path, portrait, speech):
    info = avatar_render.render_talking_portrait(portrait, speech, str(tmp_path / "out.mp4"))

    container = av.open(str(tmp_path / "out.mp4"))
    [video] = container.streams.video
    [audio] = container.streams.audio
    assert video.codec_context.name == "h264"
    assert audio.codec_context.name == "aac"
    assert audio.codec_context.sample_rate in {44100, 48000}
    assert (video.codec_context.width, video.codec_context.height) == (512, 512)
    assert abs(float(video.duration * video.time_base) - 3) < 0.2
    assert abs(float(audio.duration * audio.time_base) - 3) < 0.2
    assert abs(container.duration / av.time_base - 3) < 0.2
    assert (info.width, info.height, info.frames) == (512, 512, 75)
    assert len(list(container.decode(video=0))) == 75


def test_the_mouth_opens_when_the_audio_is_loud(tmp_path, portrait, speech):
    avatar_render.render_talking_portrait(portrait, speech, str(tmp_path / "out.mp4"))
    face = avatar_render.locate_face(np.asarray(Image.open(portrait).convert("RGB")))
    x, y = face.mouth
    _, frames = decoded(tmp_path / "out.mp4")

    def mouth_brightness(frame):
        return frame[y - 10 : y + 30, x - 30 : x + 30].mean()

    silent = [mouth_brightness(frames[i]) for i in (5, 12, 60, 70)]
    loud = [mouth_brightness(frames[i]) for i in (31, 37, 43)]  # envelope peaks at 1.125, 1.375, 1.625 s
    assert max(loud) < min(silent) - 15


def test_the_eyes_blink(tmp_path, portrait, speech):
    avatar_render.render_talking_portrait(portrait, speech, str(tmp_path / "out.mp4"))
    face = avatar_render.locate_face(np.asarray(Image.open(portrait).convert("RGB")))
    (x, y), _ = face.eyes
    closure = avatar_render.blink_closure(25, 75)
    shut, opened = int(np.argmax(closure)), int(np.argmin(closure))
    _, frames = decoded(tmp_path / "out.mp4")

    # Shut eyes show lid skin where the dark iris was.
    region = np.s_[y - 8 : y + 8, x - 12 : x + 12]
    assert frames[shut][region].mean() > frames[opened][region].mean() + 15


@pytest.mark.parametrize(
    ("aspect", "size"), [("16:9", (910, 512)), ("1:1", (512, 512)), ("4:5", (512, 640)), ("9:16", (512, 910))]
)
def test_each_aspect_has_its_frame_size_and_background(tmp_path, portrait, aspect, size):
    audio = write_wav(tmp_path / "short.wav", speech_like(1, [0]))
    info = avatar_render.render_talking_portrait(
        portrait, audio, str(tmp_path / "out.mp4"), aspect=aspect, background="#3366cc"
    )

    _, frames = decoded(tmp_path / "out.mp4")
    assert (info.width, info.height) == size
    assert frames[0].shape == (size[1], size[0], 3)
    if aspect != "1:1":
        assert np.abs(frames[0][2, 2].astype(int) - (0x33, 0x66, 0xCC)).max() < 12


def test_an_uploaded_background_image_fills_the_frame_behind_the_portrait(tmp_path, portrait):
    audio = write_wav(tmp_path / "short.wav", speech_like(1, [0]))
    background = tmp_path / "background.png"
    Image.new("RGB", (1600, 900), (200, 40, 40)).save(background)
    avatar_render.render_talking_portrait(
        portrait,
        audio,
        str(tmp_path / "out.mp4"),
        aspect="16:9",
        background="#3366cc",
        background_image=str(background),
    )
    _, frames = decoded(tmp_path / "out.mp4")
    assert np.abs(frames[0][2, 2].astype(int) - (200, 40, 40)).max() < 12


def test_captions_are_drawn_while_they_last(tmp_path, portrait, speech):
    plain = tmp_path / "plain.mp4"
    captioned = tmp_path / "captioned.mp4"
    avatar_render.render_talking_portrait(portrait, speech, str(plain))
    avatar_render.render_talking_portrait(
        portrait, speech, str(captioned), captions=[(0.0, 1.0, "Hello from the studio")]
    )

    _, without = decoded(plain)
    _, with_captions = decoded(captioned)
    band = np.s_[400:512, :]
    during = np.abs(with_captions[10][band].astype(int) - without[10][band]).mean()
    after = np.abs(with_captions[50][band].astype(int) - without[50][band]).mean()
    assert during > 4
    assert after < 2
    assert (with_captions[10][band] > 235).all(axis=2).sum() > 200  # white lettering


def test_mp3_input_is_accepted(tmp_path, portrait):
    audio = write_mp3(tmp_path / "speech.mp3", speech_like(2, [0, 1]))
    info = avatar_render.render_talking_portrait(portrait, audio, str(tmp_path / "out.mp4"))

    container = av.open(str(tmp_path / "out.mp4"))
    assert abs(container.duration / av.time_base - 2) < 0.2
    assert abs(info.duration - 2) < 0.2


def test_unreadable_inputs_raise_a_render_error(tmp_path, portrait):
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio at all")

    with pytest.raises(avatar_render.RenderError, match="audio"):
        avatar_render.render_talking_portrait(portrait, str(not_audio), str(tmp_path / "out.mp4"))
    with pytest.raises(avatar_render.RenderError, match="aspect"):
        avatar_render.render_talking_portrait(portrait, str(not_audio), str(tmp_path / "out.mp4"), aspect="3:2")


def test_the_offline_provider_returns_a_playable_video(tmp_path, portrait, speech):
    provider = get_avatar_provider("offline")
    ticket = provider.start_render(portrait, speech, aspect="9:16", options={"background": "#112233"})

    assert ticket.provider_job_id.startswith("offline-")
    (tmp_path / "avatar.mp4").write_bytes(ticket.video)
    container, frames = decoded(tmp_path / "avatar.mp4")
    assert frames[0].shape == (910, 512, 3)
    assert len(container.streams.audio) == 1
    assert provider.check_render(ticket.provider_job_id).status == "failed"


def test_the_offline_provider_reports_unusable_audio(tmp_path, portrait):
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio at all")

    with pytest.raises(ProviderError) as raised:
        get_avatar_provider("offline").start_render(portrait, str(not_audio))
    assert not raised.value.retryable


# --- Framing, style and the AI-generated badge (measured on decoded frames) -------------------


def render_frame(tmp_path, portrait, name: str, **kwargs) -> np.ndarray:
    """The first decoded frame of a one-second render."""
    audio = write_wav(tmp_path / "short.wav", speech_like(1, [0]))
    out = tmp_path / f"{name}.mp4"
    avatar_render.render_talking_portrait(portrait, audio, str(out), **kwargs)
    _, frames = decoded(out)
    return frames[0]


def face_width(frame: np.ndarray) -> int:
    faces = photo.find_faces(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
    assert len(faces), "no face found in the frame"
    return int(max(w for _, _, w, _ in faces))


def background_share(frame: np.ndarray, colour: tuple[int, int, int]) -> float:
    return float((np.abs(frame.astype(int) - colour).max(axis=2) < 12).mean())


def test_framing_sets_how_large_the_face_is_and_how_much_background_shows(tmp_path, portrait):
    frames = {
        framing: render_frame(tmp_path, portrait, framing, aspect="16:9", background="#3366cc", framing=framing)
        for framing in ("close", "head", "wide")
    }
    widths = {framing: face_width(frame) for framing, frame in frames.items()}
    assert widths["close"] > widths["head"] * 1.25
    assert widths["wide"] < widths["head"] * 0.85
    shares = {framing: background_share(frame, (0x33, 0x66, 0xCC)) for framing, frame in frames.items()}
    assert shares["wide"] > shares["head"] + 0.1
    # A close-up fills the same square as head-and-shoulders, just nearer.
    assert shares["close"] == pytest.approx(shares["head"], abs=0.02)


def saturation(pixels: np.ndarray) -> float:
    return float(cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2HSV)[..., 1].mean())


def test_each_style_has_its_own_look(tmp_path, portrait):
    frames = {
        style: render_frame(tmp_path, portrait, style, style=style) for style in ("natural", "professional", "vivid")
    }
    centre = np.s_[128:384, 128:384]
    natural, professional, vivid = (saturation(frames[s][centre]) for s in ("natural", "professional", "vivid"))
    assert vivid > natural * 1.2
    assert professional < natural * 0.85
    # The professional look has a thin light frame; the others run to the edge.
    edge = np.s_[2:-2, 3]
    assert np.abs(frames["professional"][edge].astype(int) - (229, 231, 235)).max() < 16
    assert np.abs(frames["natural"][edge].astype(int) - (229, 231, 235)).max() > 40


def test_the_ai_generated_badge_is_drawn_in_the_top_right_corner(tmp_path, portrait):
    plain = render_frame(tmp_path, portrait, "plain", aspect="16:9", background="#3366cc")
    labelled = render_frame(tmp_path, portrait, "labelled", aspect="16:9", background="#3366cc", label="AI-generated")
    corner, elsewhere = np.s_[0:60, -220:], np.s_[0:60, :220]
    assert np.abs(labelled[corner].astype(int) - plain[corner]).mean() > 8
    assert np.abs(labelled[elsewhere].astype(int) - plain[elsewhere]).mean() < 1
    assert (labelled[corner] > 220).all(axis=2).sum() > 40  # white lettering on a dark badge
    assert (plain[corner] > 220).all(axis=2).sum() == 0


def hosted_video(path, *, size=(320, 180), seconds=2.0, colour=(90, 140, 200)) -> bytes:
    """A hosted model's answer: a real H.264 + AAC MP4 of one flat colour with a tone."""
    fps, rate = 25, 24000
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        audio = out.add_stream("aac", rate=rate, layout="mono")
        tone = (0.2 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            frame = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
        for i in range(int(seconds * fps)):
            picture = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), colour, np.uint8), format="rgb24")
            picture.pts, picture.time_base = i, Fraction(1, fps)
            out.mux(video.encode(picture))
        out.mux(video.encode(None))
    return path.read_bytes()


def test_a_hosted_video_is_fitted_into_the_chosen_aspect_with_captions_and_badge(tmp_path):
    source = hosted_video(tmp_path / "hosted.mp4")  # 16:9, 2 s
    finished = avatar_render.finish_hosted_video(
        source, aspect="9:16", background="#3366cc", captions=[(0.0, 1.0, "Hello from the studio")], label="AI"
    )
    (tmp_path / "finished.mp4").write_bytes(finished)
    container, frames = decoded(tmp_path / "finished.mp4")
    assert frames[0].shape == (910, 512, 3)
    assert abs(container.duration / av.time_base - 2) < 0.2
    assert len(container.streams.audio) == 1
    # The 16:9 picture fills the width of the 512 px portrait square; the background shows above and below.
    assert np.abs(frames[0][455, 256].astype(int) - (90, 140, 200)).max() < 12
    assert np.abs(frames[0][200, 256].astype(int) - (0x33, 0x66, 0xCC)).max() < 12
    band = np.s_[700:910, :]
    assert (frames[10][band] > 235).all(axis=2).sum() > 200  # the caption while it lasts
    assert (frames[40][band] > 235).all(axis=2).sum() == 0


def test_an_unreadable_hosted_video_is_a_render_error():
    with pytest.raises(avatar_render.RenderError, match="could not be read"):
        avatar_render.finish_hosted_video(b"not a video at all")
