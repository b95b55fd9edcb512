"""CSRF on htmx POSTs: the token travels in the X-CSRFToken header that `hx-headers` on <body>
adds to every htmx request; a POST without it is refused and changes nothing."""

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from media_pipeline.models import JobKind, JobStatus, MediaJob
from personas.models import TrainingStatus, WritingPersona
from tests.personas.conftest import make_persona

HX_HEADERS_RE = re.compile(r"<body[^>]*hx-headers='([^']*)'")
VOICE_SETTINGS = {"voice_emotion": "happy", "voice_speed": "1.2", "voice_pitch": "2", "voice_volume": "1.0"}


@pytest.fixture
def csrf_client(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    return client


@pytest.fixture
def persona(owner):
    return make_persona(owner, voice=True)


def htmx_headers(client) -> dict:
    """What htmx sends: the page's hx-headers (the CSRF token) plus its own HX-Request."""
    page = client.get(reverse("personas:settings")).content.decode()
    headers = json.loads(HX_HEADERS_RE.search(page).group(1))
    assert set(headers) == {"X-CSRFToken"} and headers["X-CSRFToken"]
    return {**headers, "HX-Request": "true"}


def endpoints(persona):
    render = MediaJob.objects.create(
        user=persona.user, persona=persona, kind=JobKind.RENDER, provider="offline", status=JobStatus.QUEUED
    )

    def voice_settings_saved():
        persona.refresh_from_db()
        return persona.voice_emotion == "happy"

    def render_cancelled():
        render.refresh_from_db()
        return render.status == JobStatus.CANCELLED

    def voice_skipped():
        persona.refresh_from_db()
        return persona.voice_skipped_at is not None

    def voice_withdrawn():
        return WritingPersona.objects.get(pk=persona.pk).voice_training_status == TrainingStatus.NOT_TRAINED

    return {
        "voice settings": (reverse("personas:settings_voice"), VOICE_SETTINGS, voice_settings_saved),
        "cancel a render": (reverse("personas:job_cancel", args=[render.pk]), {}, render_cancelled),
        "skip voice in the wizard": (reverse("onboarding:voice_skip", args=[persona.pk]), {}, voice_skipped),
        "withdraw voice consent": (reverse("privacy:withdraw", args=["voice"]), {}, voice_withdrawn),
    }


ENDPOINTS = ["voice settings", "cancel a render", "skip voice in the wizard", "withdraw voice consent"]


@pytest.mark.parametrize("name", ENDPOINTS)
def test_an_htmx_post_without_the_token_is_refused(csrf_client, persona, name):
    target, data, done = endpoints(persona)[name]
    response = csrf_client.post(target, data, headers={"HX-Request": "true"})
    assert response.status_code == 403
    assert not done()


@pytest.mark.parametrize("name", ENDPOINTS)
def test_an_htmx_post_with_the_token_from_hx_headers_is_accepted(csrf_client, persona, name):
    target, data, done = endpoints(persona)[name]
    response = csrf_client.post(target, data, headers=htmx_headers(csrf_client))
    assert response.status_code in (200, 302), response.status_code
    assert done()


def test_a_token_from_another_session_is_refused(csrf_client, persona, other_user):
    stranger = Client(enforce_csrf_checks=True)
    stranger.force_login(other_user)
    make_persona(other_user)
    headers = htmx_headers(stranger)
    target, data, done = endpoints(persona)["voice settings"]
    assert csrf_client.post(target, data, headers=headers).status_code == 403
    assert not done()
