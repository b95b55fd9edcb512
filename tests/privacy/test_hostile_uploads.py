"""A corpus of hostile and broken uploads posted through the wizard and checked by the real worker:
each gets a clear message, none causes a server error, and no file or row is left orphaned."""

import io
import struct
import zlib

import av
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from media_pipeline.models import JobKind, JobStatus, MediaJob
from media_pipeline.retention import all_stored_files, referenced_files
from tests import media_factory, photo_factory
from tests.onboarding.conftest import url

EPOCH = "2000-01-01T00:00:00Z"


def long_low_rate_mp3(seconds: int = 3600) -> bytes:
    """An hour of quiet audio in under 4 MB: small enough to upload, far too long to train on."""
    out = io.BytesIO()
    with av.open(out, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=8000, layout="mono")
        stream.bit_rate = 8000
        samples = np.zeros((1, 8000 * 10), np.int16)
        for _ in range(seconds // 10):
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate = 8000
            for packet in stream.encode(frame):
                container.mux(packet)
        container.mux(stream.encode(None))
    return out.getvalue()


def png_bomb(side: int = 50_000) -> bytes:
    """A tiny PNG whose header claims 2.5 gigapixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + chunk(b"IEND", b"")
    )


def exif_rotated_with_gps() -> bytes:
    image = photo_factory.astronaut().rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 8  # orientation: rotate back on display
    exif[0x8825] = {1: "N", 2: (52.0, 22.0, 0.0), 3: "E", 4: (4.0, 53.0, 0.0)}  # GPS
    return photo_factory.encode(image, "JPEG", exif=exif)


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (600, 600), c) for c in ("red", "blue")]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    return out.getvalue()


SPEECH = media_factory.speech_wav
AUDIO_CORPUS = {
    "truncated mp3": (lambda: media_factory.truncated(media_factory.encode(SPEECH(70), "mp3")), "sample.mp3", True),
    "zero bytes": (lambda: b"", "sample.mp3", True),
    "wav named .mp3": (lambda: SPEECH(70), "sample.mp3", False),
    "polyglot png+mp3": (
        lambda: photo_factory.encode(photo_factory.coffee(), "PNG") + media_factory.encode(SPEECH(70), "mp3"),
        "sample.mp3",
        True,
    ),
    "an hour long": (long_low_rate_mp3, "podcast.mp3", True),
    "8 channels": (lambda: SPEECH(25, channels=8, sample_rate=16000), "surround.wav", False),
    "8 kHz": (lambda: SPEECH(70, sample_rate=8000), "phone.wav", False),
    "silence": (lambda: media_factory.silence_wav(70), "quiet.wav", True),
    "pure noise": (lambda: media_factory.noise_wav(70), "noise.wav", True),
    "clipping": (lambda: SPEECH(70, clip=True), "loud.wav", True),
    "html renamed .wav": (lambda: b"<!doctype html><script>alert(1)</script>", "sample.wav", True),
}
PHOTO_CORPUS = {
    "decompression bomb": (png_bomb, "bomb.png", True),
    "cmyk jpeg": (lambda: photo_factory.encode(photo_factory.astronaut().convert("CMYK"), "JPEG"), "cmyk.jpg", False),
    "animated gif": (animated_gif, "moving.gif", True),
    "svg with script": (
        lambda: b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        "me.svg",
        True,
    ),
    "html renamed .png": (lambda: b"<html><body>hello</body></html>", "me.png", True),
    "exif rotated with gps": (exif_rotated_with_gps, "phone.jpg", False),
    "no face": (lambda: photo_factory.encode(photo_factory.coffee(), "JPEG"), "coffee.jpg", True),
    "two faces": (lambda: photo_factory.encode(photo_factory.two_astronauts(), "JPEG"), "us.jpg", True),
}


def assert_nothing_orphaned():
    from datetime import datetime

    stored = set(all_stored_files())
    assert stored <= referenced_files(since=datetime.fromisoformat(EPOCH)), "files no row points at"
    assert not MediaJob.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).exists(), "stuck jobs"


@pytest.mark.parametrize("case", AUDIO_CORPUS)
def test_hostile_voice_samples(owner_client, persona, run_jobs, django_capture_on_commit_callbacks, case):
    make, name, must_fail = AUDIO_CORPUS[case]
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            url("voice_sample", persona), {"sample": SimpleUploadedFile(name, make()), "consent": "on"}
        )
    assert response.status_code < 500
    run_jobs()
    check = MediaJob.objects.filter(persona=persona, kind=JobKind.SAMPLE_CHECK).first()
    page = owner_client.get(url("voice", persona)).content.decode()
    if check is None:  # refused by the form before anything was stored
        assert must_fail and 'class="errorlist' in response.content.decode()
    else:
        assert check.status == JobStatus.SUCCEEDED, check.error
        errors = check.result["report"]["errors"]
        assert bool(errors) == must_fail, check.result["report"]
        for problem in errors:
            assert problem["message"] in page
    assert_nothing_orphaned()


@pytest.mark.parametrize("case", PHOTO_CORPUS)
def test_hostile_photos(owner_client, persona, run_jobs, django_capture_on_commit_callbacks, case):
    make, name, must_fail = PHOTO_CORPUS[case]
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            url("avatar_photo", persona), {"photo": SimpleUploadedFile(name, make()), "consent": "on"}
        )
    assert response.status_code < 500
    run_jobs()
    check = MediaJob.objects.filter(persona=persona, kind=JobKind.PHOTO_CHECK).first()
    page = owner_client.get(url("avatar", persona)).content.decode()
    if check is None:  # refused by the form before anything was stored
        assert must_fail and 'class="errorlist' in response.content.decode()
        assert_nothing_orphaned()
        return
    assert check.status == JobStatus.SUCCEEDED, check.error
    errors = check.result["report"]["errors"]
    assert bool(errors) == must_fail, check.result["report"]
    for problem in errors:
        assert problem["message"] in page
    if not must_fail:
        from media_pipeline.storage import read_bytes

        kept = Image.open(io.BytesIO(read_bytes(check.result["photo_file"])))
        assert not kept.getexif(), "EXIF (and GPS) must not survive"
        assert kept.mode == "RGB"
    assert_nothing_orphaned()
