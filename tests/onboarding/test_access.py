"""Every wizard URL: the owner gets through, another user gets a 404 (never a 403 that confirms
the persona exists) and changes nothing, an anonymous visitor is sent to the login page."""

import pytest
from django.urls import reverse

from media_pipeline.models import JobKind, JobStatus, MediaJob

PERSONA_URLS = [
    ("GET", "persona"),
    ("GET", "style"),
    ("POST", "analyse_style"),
    ("GET", "voice"),
    ("POST", "voice_sample"),
    ("POST", "voice_train"),
    ("POST", "voice_retry"),
    ("POST", "voice_approve"),
    ("POST", "voice_discard"),
    ("POST", "voice_cancel"),
    ("POST", "voice_skip"),
    ("POST", "voice_sentence"),
    ("GET", "avatar"),
    ("POST", "avatar_photo"),
    ("POST", "avatar_create"),
    ("POST", "avatar_recreate"),
    ("POST", "avatar_approve"),
    ("POST", "avatar_discard"),
    ("POST", "avatar_cancel"),
    ("POST", "avatar_skip"),
    ("GET", "preview"),
    ("POST", "approve"),
]
USER_URLS = ["start", "content", "current_persona", "current_preview"]


@pytest.fixture
def owned_objects(persona):
    check = MediaJob.objects.create(
        user=persona.user, persona=persona, kind=JobKind.SAMPLE_CHECK, provider="local", status=JobStatus.SUCCEEDED
    )
    photo = MediaJob.objects.create(
        user=persona.user, persona=persona, kind=JobKind.PHOTO_CHECK, provider="local", status=JobStatus.SUCCEEDED
    )
    return {"voice_train": check.pk, "avatar_create": photo.pk}


def wizard_url(name, persona, owned_objects):
    extra = [owned_objects[name]] if name in owned_objects else []
    return reverse(f"onboarding:{name}", args=[persona.pk, *extra])


def call(client, method, url):
    return client.get(url) if method == "GET" else client.post(url, {"consent": "on", "text": "Hello"})


@pytest.mark.parametrize(("method", "name"), PERSONA_URLS)
def test_anonymous_visitors_are_sent_to_login(client, persona, owned_objects, method, name):
    url = wizard_url(name, persona, owned_objects)
    response = call(client, method, url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


@pytest.mark.parametrize(("method", "name"), PERSONA_URLS)
def test_another_user_gets_404_and_changes_nothing(client, persona, other_user, owned_objects, method, name):
    client.force_login(other_user)
    before = (persona.voice_skipped_at, persona.avatar_skipped_at, persona.approved_at, persona.analysed_at)
    jobs_before = MediaJob.objects.count()
    response = call(client, method, wizard_url(name, persona, owned_objects))
    assert response.status_code == 404
    persona.refresh_from_db()
    assert (persona.voice_skipped_at, persona.avatar_skipped_at, persona.approved_at, persona.analysed_at) == before
    assert MediaJob.objects.count() == jobs_before
    assert not persona.consents.exists()


@pytest.mark.parametrize(("method", "name"), [p for p in PERSONA_URLS if p[0] == "GET"])
def test_the_owner_can_open_every_page(owner_client, persona, owned_objects, method, name, settings):
    response = owner_client.get(wizard_url(name, persona, owned_objects))
    assert response.status_code == 200


@pytest.mark.parametrize("name", USER_URLS)
def test_user_level_urls_need_login(client, name):
    response = client.get(reverse(f"onboarding:{name}"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_user_level_urls_lead_to_the_users_own_wizard(client, persona, other_user):
    client.force_login(other_user)
    # The other user has no onboarding data: they are sent to their own content step.
    assert client.get(reverse("onboarding:start")).url == reverse("onboarding:content")
    assert client.get(reverse("onboarding:current_persona")).url == reverse("onboarding:content")
    response = client.get(reverse("onboarding:content"))
    assert "Owner Co" not in response.content.decode()
    client.force_login(persona.user)
    assert client.get(reverse("onboarding:start")).url == reverse("onboarding:current_persona")
    assert client.get(reverse("onboarding:current_persona")).url == reverse("onboarding:persona", args=[persona.pk])
    assert client.get(reverse("onboarding:current_preview")).url == reverse("onboarding:preview", args=[persona.pk])


def test_another_users_job_cannot_be_used_with_my_persona(client, persona, other_user, owned_objects):
    """A job id from someone else is a 404 even on the intruder's own persona."""
    from personas.models import WritingPersona

    mine = WritingPersona.objects.create(user=other_user, name="Intruder")
    client.force_login(other_user)
    response = client.post(reverse("onboarding:voice_train", args=[mine.pk, owned_objects["voice_train"]]))
    assert response.status_code == 404
    response = client.post(reverse("onboarding:avatar_create", args=[mine.pk, owned_objects["avatar_create"]]))
    assert response.status_code == 404
