"""Every URL of the app, tried as the owner, as an anonymous visitor and as a second user against
the owner's objects: the owner reaches every one (so a URL that 404s for everybody fails here),
anonymous visitors are sent to log in, the second user gets 404 (or 405 for a wrong method),
nobody sees the owner's data and nothing of the owner's changes. Each URL gets the kind of
object its view accepts, so a 404 always means "not yours", never "wrong kind"."""

import pytest
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.forms.models import model_to_dict
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from media_pipeline.models import JobKind, JobStatus, MediaAsset, MediaJob, UsageRecord
from media_pipeline.retention import all_stored_files
from onboarding.models import OnboardingData
from personas.models import ConsentRecord, WritingPersona
from tests.personas.conftest import make_persona

SECRET = "Zanzibar-owner-secret"
PUBLIC_PREFIXES = ("accounts/",)  # sign-up, log-in and password pages are public by design
SLUG_VALUES = {"kind": "voice-preview", "capability": "voice"}
HOSTILE_POST = {"confirm": "DELETE", "consent": "on", "accept_warnings": "on", "text": "hello", "name": "x"}
# The job each URL with a job id acts on: the kind its view looks the id up with.
JOB_FOR_URL = {
    "personas:job": "render_job_id",
    "personas:job_cancel": "render_job_id",
    "onboarding:voice_train": "sample_check_id",
    "onboarding:avatar_create": "photo_check_id",
    "media:job_preview": "clone_job_id",
}


def all_patterns(patterns=None, prefix=""):
    for p in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(p, URLResolver):
            if "admin" not in str(p.pattern):
                yield from all_patterns(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p


PATTERNS = [(route, p) for route, p in all_patterns() if not route.startswith(PUBLIC_PREFIXES)]


@pytest.fixture
def owned(owner):
    persona = make_persona(owner, voice=True, avatar=True)
    persona.name = f"{SECRET} persona"
    persona.save()
    OnboardingData.objects.create(user=owner, brand_name=SECRET, writing_samples="words " * 200, platforms=["blog"])
    preview = default_storage.save("private/voice_previews/candidate.wav", ContentFile(b"RIFF candidate"))
    job = MediaJob.objects.create(
        user=owner,
        persona=persona,
        kind=JobKind.VOICE_CLONE,
        provider="offline",
        status=JobStatus.SUCCEEDED,
        result={"voice_id": "alw1xcandidate99", "preview_file": preview, "candidate": True},
    )
    asset_file = default_storage.save("private/generated/owner.mp3", ContentFile(b"ID3 owner audio"))
    asset = MediaAsset.objects.create(
        user=owner, persona=persona, kind="audio", title=f"{SECRET} narration", file=asset_file, mime_type="audio/mpeg"
    )
    # A sentence of the owner's choice, spoken in their voice (the wizard's and settings' voice sample).
    sample_job = MediaJob.objects.create(
        user=owner,
        persona=persona,
        kind=JobKind.RENDER,
        content_type="voice_sample",
        provider="offline",
        status=JobStatus.SUCCEEDED,
        params={"text": SECRET, "segments": [SECRET]},
    )
    sample_file = default_storage.save("private/generated/sample.mp3", ContentFile(b"ID3 owner audio sample"))
    sample = MediaAsset.objects.create(
        user=owner,
        persona=persona,
        job=sample_job,
        kind="audio",
        content_type="voice_sample",
        title="Voice sample",
        file=sample_file,
        mime_type="audio/mpeg",
    )
    sample_job.result = {"audio_asset": sample.pk}
    sample_job.save(update_fields=["result"])
    ConsentRecord.objects.create(user=owner, persona=persona, capability="voice", text=SECRET, text_version="1")
    checks = {
        kind: MediaJob.objects.create(
            user=owner, persona=persona, kind=kind, provider="local", status=JobStatus.SUCCEEDED, result={}
        )
        for kind in (JobKind.SAMPLE_CHECK, JobKind.PHOTO_CHECK)
    }
    return {
        "persona_id": persona.pk,
        "asset_id": asset.pk,
        "clone_job_id": job.pk,
        "render_job_id": sample_job.pk,
        "sample_check_id": checks[JobKind.SAMPLE_CHECK].pk,
        "photo_check_id": checks[JobKind.PHOTO_CHECK].pk,
    }


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """The owner's requests count against their hourly limits, in a cache that outlives a test."""
    cache.clear()
    yield
    cache.clear()


def full_name(pattern: URLPattern, route: str) -> str:
    namespace = route.split("/", 1)[0]
    names = {"persona": "personas", "onboarding": "onboarding", "media": "media", "privacy": "privacy"}
    return f"{names[namespace]}:{pattern.name}" if namespace in names else pattern.name


def url_for(pattern: URLPattern, route: str, ids: dict) -> str:
    name = full_name(pattern, route)
    kwargs = {}
    for converter in pattern.pattern.converters:
        if converter == "job_id":
            assert name in JOB_FOR_URL, f"{name}: say which kind of job it takes in JOB_FOR_URL"
            kwargs[converter] = ids[JOB_FOR_URL[name]]
        else:
            kwargs[converter] = ids.get(converter, SLUG_VALUES.get(converter))
    return reverse(name, kwargs=kwargs)


def snapshot(owner) -> tuple:
    persona = WritingPersona.objects.get(user=owner)
    return (
        model_to_dict(persona),
        MediaJob.objects.filter(user=owner).count(),
        list(MediaJob.objects.filter(user=owner).values_list("status", "result")),
        MediaAsset.objects.filter(user=owner).count(),
        UsageRecord.objects.filter(user=owner).count(),
        ConsentRecord.objects.filter(user=owner, withdrawn_at__isnull=True).count(),
        sorted(all_stored_files()),
    )


@pytest.mark.parametrize(("route", "pattern"), PATTERNS, ids=[r for r, _ in PATTERNS])
def test_the_owner_reaches_every_url(client, owner, owned, route, pattern):
    client.force_login(owner)
    target = url_for(pattern, route, owned)
    answered = []
    for method in ("get", "post"):
        response = getattr(client, method)(target, HOSTILE_POST if method == "post" else None)
        # 405 is the method the view does not take; anything else must be the view doing its work.
        assert response.status_code in (200, 302, 405), (method, target, response.status_code)
        if response.status_code == 302:
            assert not response["Location"].startswith(reverse("login")), (method, target)
        if response.status_code != 405:
            answered.append(method)
    assert answered, target


@pytest.mark.parametrize(("route", "pattern"), PATTERNS, ids=[r for r, _ in PATTERNS])
def test_anonymous_visitors_are_sent_to_log_in(client, owner, owned, route, pattern):
    before = snapshot(owner)
    target = url_for(pattern, route, owned)
    sent_to_login = 0
    for method in ("get", "post"):
        response = getattr(client, method)(target, HOSTILE_POST if method == "post" else None)
        # A wrong method may be refused first (405): that reveals nothing.
        assert response.status_code in (302, 405), (method, target)
        if response.status_code == 302:
            assert response["Location"].startswith(reverse("login")), (method, target)
            sent_to_login += 1
    assert sent_to_login, target
    assert snapshot(owner) == before


@pytest.mark.parametrize(("route", "pattern"), PATTERNS, ids=[r for r, _ in PATTERNS])
def test_a_second_user_cannot_see_or_change_the_owners_things(client, owner, other_user, owned, route, pattern):
    before = snapshot(owner)
    client.force_login(other_user)
    target = url_for(pattern, route, owned)
    owns_an_object = bool(pattern.pattern.converters.keys() & {"persona_id", "job_id", "asset_id"})
    for method in ("get", "post"):
        response = getattr(client, method)(target, HOSTILE_POST if method == "post" else None)
        assert response.status_code < 500, (method, target)
        if owns_an_object:
            assert response.status_code in (404, 405), (method, target, response.status_code)
        body = b"".join(response) if response.streaming else response.content
        assert SECRET.encode() not in body, (method, target)
        assert b"owner audio" not in body and b"candidate" not in body, (method, target)
    assert snapshot(owner) == before
