import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from onboarding.models import OnboardingData
from personas import analysis
from personas.models import WritingPersona
from tests import media_factory, photo_factory
from tests.conftest import make_user

SAMPLES = " ".join(
    [
        "I write about small businesses and the people who run them. Every week I talk to a founder, ",
        "ask what went wrong, and share what they learned. Do you run a shop, a studio or a practice? ",
        "Then you know the hard part is rarely the product. It is the hundred small decisions in between. ",
    ]
    * 6
)


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """Rate-limit counters live in the cache, which outlives a test."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def persona(owner):
    """An owner who finished steps 1-5 and whose writing has been analysed."""
    OnboardingData.objects.create(
        user=owner, brand_name="Owner Co", writing_samples=SAMPLES, platforms=["linkedin", "blog"]
    )
    persona = WritingPersona.objects.create(user=owner, name="Owner Co")
    analysis.analyse_and_save(persona, samples=SAMPLES, platforms=["linkedin", "blog"])
    return persona


@pytest.fixture
def client_for(client):
    def login(user):
        client.force_login(user)
        return client

    return login


def tier_user(username: str, tier: str):
    return make_user(username, tier)


def url(name: str, persona, *args) -> str:
    return reverse(f"onboarding:{name}", args=[persona.pk, *args])


def wav_upload(data: bytes | None = None, name: str = "sample.wav") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data if data is not None else media_factory.speech_wav(70), "audio/wav")


def photo_upload(image=None, name: str = "me.jpg") -> SimpleUploadedFile:
    data = photo_factory.encode(image if image is not None else photo_factory.astronaut(), "JPEG", quality=92)
    return SimpleUploadedFile(name, data, "image/jpeg")
