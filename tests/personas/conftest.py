"""Personas in known states, built from real media made by the offline providers."""

import io
from functools import cache
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image

from media_pipeline import photo
from media_pipeline.providers.local import OfflineVoiceProvider
from media_pipeline.services import PREVIEW_LINE
from personas.models import Platform, PlatformAdaptation, TrainingStatus, WritingPersona
from tests.conftest import make_user

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@cache
def astronaut_portrait() -> bytes:
    """The astronaut photo upscaled to 1200 px (as a phone photo would be) and cropped by the real
    photo pipeline into the portrait avatar providers receive."""
    path = Path("/tmp") / "alwrity-astronaut-1200.png"
    Image.open(ASSETS / "astronaut.png").convert("RGB").resize((1200, 1200), Image.Resampling.LANCZOS).save(path)
    report = photo.analyse_photo(str(path))
    assert not report.errors, report.as_dict()
    return photo.portrait_crop(str(path), report)


@cache
def offline_voice_preview() -> bytes:
    return OfflineVoiceProvider().synthesize(PREVIEW_LINE, voice_id="").audio


def make_persona(user, *, voice: bool = False, avatar: bool = False, **fields) -> WritingPersona:
    """A persona approved in the wizard; `voice` / `avatar` make those READY with real files."""
    now = timezone.now()
    persona = WritingPersona.objects.create(user=user, name=f"{user.username}'s persona", approved_at=now, **fields)
    if voice:
        persona.voice_id = f"offline{persona.pk}voice7"
        persona.voice_provider = "offline"
        persona.voice_training_status = TrainingStatus.READY
        persona.voice_trained_at = persona.voice_approved_at = now
        persona.voice_profile = {"f0_median_hz": 118.0, "speaking_rate_sps": 4.6}
        persona.voice_preview.save("preview.wav", ContentFile(offline_voice_preview()), save=False)
    if avatar:
        persona.avatar_id = f"av{persona.pk}offline"
        persona.avatar_provider = "offline"
        persona.avatar_training_status = TrainingStatus.READY
        persona.avatar_created_at = persona.avatar_approved_at = now
        persona.avatar_portrait.save("portrait.png", ContentFile(astronaut_portrait()), save=False)
        persona.avatar_image.save("photo.jpg", ContentFile(_jpeg(astronaut_portrait())), save=False)
    persona.save()
    return persona


def _jpeg(png: bytes) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(out, "JPEG")
    return out.getvalue()


def add_adaptation(persona, platform=Platform.LINKEDIN, **fields) -> PlatformAdaptation:
    return PlatformAdaptation.objects.create(persona=persona, platform=platform, **fields)


@pytest.fixture
def persona(owner):
    """The owner's persona (Pro tier): voice and avatar both ready."""
    return make_persona(owner, voice=True, avatar=True)


@pytest.fixture
def other_persona(other_user):
    return make_persona(other_user, voice=True)


@pytest.fixture
def user_on(db):
    """user_on('basic') -> a new user on that tier."""
    counter = iter(range(1, 1000))

    def make(tier: str):
        return make_user(f"{tier}-user-{next(counter)}", tier)

    return make
