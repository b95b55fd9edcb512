"""Per-user rate limits seen from the views: the refusal is a clear message, nothing changes."""

import io
import os

import pytest
import redis
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.urls import reverse
from PIL import Image

from media_pipeline.models import MediaJob
from media_pipeline.uploads import upload_too_large_message
from tests import media_factory
from tests.onboarding.conftest import url, wav_upload

AVATAR_DATA = {
    "avatar_background": "#112233",
    "avatar_style": "professional",
    "avatar_framing": "close",
    "avatar_aspect_ratio": "9:16",
    "captions_enabled": "",
}
REDIS_CACHE_URL = "redis://127.0.0.1:6379/12"  # its own database, emptied before and after


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


def png(size=(64, 48), noise=False) -> ContentFile:
    image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)) if noise else Image.new("RGB", size, "#0a7")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return ContentFile(buffer.getvalue(), name="bg.png")


def test_background_image_uploads_are_rate_limited(owner_client, persona, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "upload": 1}
    first = owner_client.post(reverse("personas:settings_avatar"), {**AVATAR_DATA, "background_image": png()})
    assert first.status_code == 302
    persona.refresh_from_db()
    kept = persona.avatar_background_image.name
    assert kept
    second = owner_client.post(
        reverse("personas:settings_avatar"),
        {**AVATAR_DATA, "avatar_style": "natural", "background_image": png()},
        headers={"HX-Request": "true"},
    )
    page = second.content.decode()
    assert second.status_code == 200
    assert "You have reached the limit of 1 upload requests per hour" in page and "Saved." not in page
    persona.refresh_from_db()
    assert persona.avatar_background_image.name == kept and persona.avatar_style == "professional"
    # Settings without a new image are not an upload and still save.
    third = owner_client.post(reverse("personas:settings_avatar"), {**AVATAR_DATA, "avatar_style": "natural"})
    assert third.status_code == 302
    persona.refresh_from_db()
    assert persona.avatar_style == "natural"


@pytest.mark.parametrize("htmx", [False, True])
def test_an_oversized_background_image_shows_the_size_message_and_changes_nothing(
    owner_client, persona, settings, htmx, private_media_root
):
    settings.MAX_UPLOAD_BYTES = 50_000
    upload = png((300, 300), noise=True)
    assert upload.size > settings.MAX_UPLOAD_BYTES
    headers = {"HX-Request": "true"} if htmx else {}
    response = owner_client.post(
        reverse("personas:settings_avatar"), {**AVATAR_DATA, "background_image": upload}, headers=headers
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert upload_too_large_message() in page
    assert "Settings saved" not in page and "Saved." not in page
    persona.refresh_from_db()
    assert not persona.avatar_background_image and persona.avatar_style == "natural"
    assert not [p for p in private_media_root.rglob("background-*")]


def test_data_exports_are_rate_limited(owner_client, persona, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "export": 1}
    assert owner_client.get(reverse("privacy:export"))["Content-Type"] == "application/zip"
    response = owner_client.get(reverse("privacy:export"), follow=True)
    assert response["Content-Type"].startswith("text/html")
    assert "You have reached the limit of 1 export requests per hour" in response.content.decode()


@pytest.mark.redis
def test_the_voice_sample_upload_is_refused_past_the_limit_counted_in_redis(owner_client, persona, settings):
    """The production set-up: counters in the real Redis, shared by every web process."""
    connection = redis.Redis.from_url(REDIS_CACHE_URL)
    connection.flushdb()
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_CACHE_URL}
    }
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "upload": 1}
    try:
        sample = media_factory.speech_wav(12)

        def upload():
            return owner_client.post(
                url("voice_sample", persona),
                {"sample": wav_upload(sample), "consent": "on"},
                headers={"HX-Request": "true"},
            )

        assert upload().status_code == 200
        assert MediaJob.objects.filter(persona=persona).count() == 1
        assert any(key.startswith(b":1:ratelimit:upload:") for key in connection.keys())
        refused = upload()
        assert refused.status_code == 200
        assert "You have reached the limit of 1 upload requests per hour. Please try again later." in (
            refused.content.decode()
        )
        assert MediaJob.objects.filter(persona=persona).count() == 1
    finally:
        connection.flushdb()
