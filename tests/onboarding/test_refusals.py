"""Every refusal the wizard can show, through its views: the exact message in the section, and
nothing changed (no job, usage, consent or asset rows, no persona field, no stored file)."""

from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.template.defaultfilters import filesizeformat
from django.utils.html import escape

from media_pipeline.models import JobKind, JobStatus, MediaAsset, MediaJob, UsageRecord
from media_pipeline.ratelimit import check_rate_limit
from onboarding.models import OnboardingData
from personas.models import ConsentRecord, Tier, TrainingStatus, WritingPersona
from tests import media_factory
from tests.conftest import make_user
from tests.onboarding.conftest import photo_upload, url, wav_upload
from tests.onboarding.test_voice import persona_for

pytestmark = pytest.mark.django_db


def alert(message: str) -> str:
    """How a section shows a refusal."""
    return f'<p class="errorlist" role="alert">{escape(message)}</p>'


def snapshot(persona: WritingPersona) -> dict:
    persona.refresh_from_db()
    root = Path(django_settings.MEDIA_ROOT)
    return {
        "jobs": list(MediaJob.objects.order_by("pk").values_list("pk", "status", "result", "params")),
        "usage": UsageRecord.objects.count(),
        "consents": ConsentRecord.objects.count(),
        "assets": MediaAsset.objects.count(),
        "persona": {f.attname: getattr(persona, f.attname) for f in persona._meta.concrete_fields},
        "files": sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()),
    }


@pytest.fixture
def refused(client, django_capture_on_commit_callbacks):
    """POST like htmx does; assert the section shows `message` and that nothing changed."""

    def post(name, persona, *args, message, data=None, section=None):
        before = snapshot(persona)
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = client.post(url(name, persona, *args), data or {}, headers={"HX-Request": "true"})
        page = response.content.decode()
        assert response.status_code == 200
        assert alert(message) in page, page
        if section:
            assert f'<section id="{section}"' in page
        assert not callbacks  # nothing was queued
        assert snapshot(persona) == before
        return page

    return post


def job(persona, kind, status=JobStatus.SUCCEEDED, **fields):
    return MediaJob.objects.create(
        user=persona.user, persona=persona, kind=kind, provider="offline", status=status, **fields
    )


CHECKED = {"report": {"metrics": {"duration_seconds": 70.0}, "checks": [], "errors": [], "warnings": []}}


# --- The plan gate on every action -------------------------------------------------------------


def downgraded_persona(tier: str) -> WritingPersona:
    """A persona with a trained voice and avatar, waiting jobs and running ones, whose plan no
    longer has them: without the plan gate each action below would change something."""
    persona = persona_for(make_user("downgraded", tier))
    persona.voice_training_status = persona.avatar_training_status = TrainingStatus.READY
    persona.voice_id, persona.avatar_id = "alw1xvoice0000000007", "av1xavatar"
    persona.voice_provider = persona.avatar_provider = "offline"
    persona.avatar_image.name, persona.avatar_portrait.name = "private/a.jpg", "private/a.png"
    persona.save()
    job(persona, JobKind.VOICE_CLONE, result={"candidate": True, "voice_id": "alw1xnew", "preview_file": ""})
    job(persona, JobKind.AVATAR_CREATE, result={"candidate": True, "avatar_id": "av2", "preview_file": "x.mp4"})
    job(persona, JobKind.VOICE_CLONE, status=JobStatus.RUNNING)
    job(persona, JobKind.AVATAR_CREATE, status=JobStatus.RUNNING)
    return persona


VOICE_ACTIONS = ["voice_train", "voice_retry", "voice_approve", "voice_discard", "voice_cancel"]
AVATAR_ACTIONS = ["avatar_create", "avatar_recreate", "avatar_approve", "avatar_discard", "avatar_cancel"]


@pytest.mark.parametrize(
    ("tier", "name"),
    [(Tier.FREE, name) for name in VOICE_ACTIONS] + [(t, n) for t in (Tier.FREE, Tier.BASIC) for n in AVATAR_ACTIONS],
)
def test_actions_outside_the_plan_are_refused(client, refused, tier, name):
    persona = downgraded_persona(tier)
    client.force_login(persona.user)
    args = []
    if name == "voice_train":
        args = [job(persona, JobKind.SAMPLE_CHECK, result=CHECKED).pk]
    elif name == "avatar_create":
        args = [
            job(persona, JobKind.PHOTO_CHECK, result={**CHECKED, "photo_file": "p.jpg", "portrait_file": "p.png"}).pk
        ]
    section = name.split("_")[0]
    page = refused(name, persona, *args, message="This is not part of your plan.", section=section)
    assert 'data-state="locked"' in page


# --- Voice ------------------------------------------------------------------------------------------


@pytest.fixture
def post(client, django_capture_on_commit_callbacks):
    def send(name, persona, *args, data=None):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url(name, persona, *args), data or {}, headers={"HX-Request": "true"})

    return send


def test_a_new_sample_is_refused_while_the_previous_one_trains(owner_client, persona, post, refused, run_jobs):
    post("voice_sample", persona, data={"sample": wav_upload(), "consent": "on"})
    run_jobs()
    post("voice_train", persona, persona.jobs.get(kind=JobKind.SAMPLE_CHECK).pk)
    assert persona.jobs.get(kind=JobKind.VOICE_CLONE).status == JobStatus.QUEUED
    refused(
        "voice_sample",
        persona,
        data={"sample": wav_upload(media_factory.speech_wav(65, f0=210))},
        message="Your voice is being trained from the previous sample; wait for it to finish.",
    )


def test_training_waits_for_the_sample_check(owner_client, persona, post, refused):
    post("voice_sample", persona, data={"sample": wav_upload(), "consent": "on"})
    check = persona.jobs.get(kind=JobKind.SAMPLE_CHECK)
    assert check.status == JobStatus.QUEUED
    refused("voice_train", persona, check.pk, message="The sample check has not finished yet.")


def test_training_from_a_replaced_sample_is_refused(owner_client, persona, post, refused, run_jobs):
    post("voice_sample", persona, data={"sample": wav_upload(), "consent": "on"})
    run_jobs()
    first = persona.jobs.get(kind=JobKind.SAMPLE_CHECK)
    post("voice_sample", persona, data={"sample": wav_upload(media_factory.speech_wav(65, f0=210))})
    run_jobs()
    refused("voice_train", persona, first.pk, message="This sample is no longer available; please upload it again.")


def test_retrying_without_any_sample_asks_for_one(owner_client, persona, refused):
    refused("voice_retry", persona, message="Please upload a voice sample again.")


@pytest.mark.parametrize(("name", "section"), [("voice_cancel", "voice"), ("avatar_cancel", "avatar")])
def test_cancelling_with_nothing_running(owner_client, persona, refused, name, section):
    job(persona, JobKind.VOICE_CLONE, status=JobStatus.FAILED)
    job(persona, JobKind.AVATAR_CREATE, status=JobStatus.SUCCEEDED)
    refused(name, persona, message="There is nothing running to cancel.", section=section)


def test_approving_before_anything_is_trained(owner_client, persona, refused):
    refused("voice_approve", persona, message="There is no trained voice to approve yet.", section="voice")
    refused("avatar_approve", persona, message="There is no avatar to approve yet.", section="avatar")


# --- Avatar -----------------------------------------------------------------------------------------


def test_creation_waits_for_the_photo_check(owner_client, persona, post, refused):
    post("avatar_photo", persona, data={"photo": photo_upload(), "consent": "on"})
    check = persona.jobs.get(kind=JobKind.PHOTO_CHECK)
    assert check.status == JobStatus.QUEUED
    refused("avatar_create", persona, check.pk, message="The photo check has not finished yet.")


def test_an_avatar_is_not_created_twice(owner_client, persona, post, refused, run_jobs):
    post("avatar_photo", persona, data={"photo": photo_upload(), "consent": "on"})
    run_jobs()
    check = persona.jobs.get(kind=JobKind.PHOTO_CHECK)
    post("avatar_create", persona, check.pk)
    refused("avatar_create", persona, check.pk, message="Your avatar is already being created.")
    # Recreating from the same checked photo is the same request.
    refused("avatar_recreate", persona, message="Your avatar is already being created.")


def test_recreating_from_the_stored_photo_is_not_started_twice(owner_client, persona, refused):
    persona.avatar_image.name, persona.avatar_portrait.name = "private/me.jpg", "private/me.png"
    persona.save()
    job(persona, JobKind.AVATAR_CREATE, status=JobStatus.QUEUED)
    refused("avatar_recreate", persona, message="The avatar is already being created.")


def test_recreating_without_any_photo_asks_for_one(owner_client, persona, refused):
    job(persona, JobKind.PHOTO_CHECK, result={"report": {"errors": [{"message": "We could not find a face."}]}})
    refused("avatar_recreate", persona, message="There is no photo to create your avatar from; please upload one.")


def test_the_photo_size_limit(owner_client, persona, settings):
    settings.MAX_PHOTO_UPLOAD_BYTES = 50_000
    before = snapshot(persona)
    response = owner_client.post(
        url("avatar_photo", persona), {"photo": photo_upload(), "consent": "on"}, headers={"HX-Request": "true"}
    )
    # A form error: shown under the file input, not as the section's alert.
    expected = f"That file is larger than {filesizeformat(50_000)}. Please upload a smaller file."
    assert f'<ul class="errorlist" id="id_photo_error"><li>{expected}</li></ul>' in response.content.decode()
    assert snapshot(persona) == before


# --- Rate limits --------------------------------------------------------------------------------------


def used_up(user, action: str, settings) -> None:
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, action: 1}
    check_rate_limit(user, action)


def test_voice_uploads_are_rate_limited(owner_client, persona, refused, settings):
    used_up(persona.user, "upload", settings)
    refused(
        "voice_sample",
        persona,
        data={"sample": wav_upload(), "consent": "on"},
        message="You have reached the limit of 1 upload requests per hour. Please try again later.",
        section="voice",
    )


def test_photo_uploads_are_rate_limited(owner_client, persona, refused, settings):
    used_up(persona.user, "upload", settings)
    refused(
        "avatar_photo",
        persona,
        data={"photo": photo_upload(), "consent": "on"},
        message="You have reached the limit of 1 upload requests per hour. Please try again later.",
        section="avatar",
    )


@pytest.mark.parametrize("name", ["voice_train", "voice_retry", "avatar_create", "avatar_recreate"])
def test_training_is_rate_limited(owner_client, persona, refused, settings, name):
    persona.voice_training_audio.name = "private/sample"
    persona.save()
    voice_check = job(persona, JobKind.SAMPLE_CHECK, result=CHECKED, input_file="private/sample")
    photo_check = job(persona, JobKind.PHOTO_CHECK, result={**CHECKED, "photo_file": "p.jpg", "portrait_file": "p.png"})
    args = {"voice_train": [voice_check.pk], "avatar_create": [photo_check.pk]}.get(name, [])
    used_up(persona.user, "training", settings)
    refused(
        name,
        persona,
        *args,
        message="You have reached the limit of 1 training requests per hour. Please try again later.",
    )


def test_sentences_are_rate_limited(owner_client, persona, refused, settings):
    persona.voice_training_status, persona.voice_id, persona.voice_provider = TrainingStatus.READY, "alw1x7", "offline"
    persona.save()
    used_up(persona.user, "generation", settings)
    refused(
        "voice_sentence",
        persona,
        data={"text": "Hello there."},
        message="You have reached the limit of 1 generation requests per hour. Please try again later.",
    )


# --- Writing style ----------------------------------------------------------------------------------


def test_analysing_without_content(client, refused):
    user = make_user("nocontent", Tier.PRO)
    persona = WritingPersona.objects.create(user=user, name="No content")
    client.force_login(user)
    refused("analyse_style", persona, message="Tell us about your content first.", section="style")
    assert not OnboardingData.objects.exists()


# --- Failures reported by the worker ----------------------------------------------------------------


def section_page(client, persona, name: str) -> str:
    return client.get(url(name, persona), headers={"HX-Request": "true"}).content.decode()


def test_a_check_that_crashed_says_so_and_offers_another_upload(owner_client, persona, post, run_jobs, monkeypatch):
    def crash(path):
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr("media_pipeline.audio.analyse_sample", crash)
    post("voice_sample", persona, data={"sample": wav_upload(), "consent": "on"})
    run_jobs()
    page = section_page(owner_client, persona, "voice")
    assert 'data-state="invalid"' in page
    assert '<p role="alert" class="errorlist">Something went wrong on our side. Please try again.</p>' in page
    assert "This sample cannot be used. Please record or upload another one." in page
    assert not persona.jobs.filter(kind=JobKind.VOICE_CLONE).exists()


def test_a_failed_check_without_a_reason_has_a_default_message(owner_client, persona):
    job(persona, JobKind.PHOTO_CHECK, status=JobStatus.FAILED)
    page = section_page(owner_client, persona, "avatar")
    assert '<p role="alert" class="errorlist">We could not check this file. Please try another one.</p>' in page


def test_a_failed_training_without_a_reason_has_a_default_message(owner_client, persona):
    job(persona, JobKind.VOICE_CLONE, status=JobStatus.FAILED)
    page = section_page(owner_client, persona, "voice")
    assert '<p role="alert"><strong>Training did not finish:</strong> This did not work.</p>' in page


def test_training_past_its_deadline_is_stopped_with_a_message(owner_client, persona, post, run_jobs):
    from datetime import timedelta

    from django.utils import timezone

    post("voice_sample", persona, data={"sample": wav_upload(), "consent": "on"})
    run_jobs()
    post("voice_train", persona, persona.jobs.get(kind=JobKind.SAMPLE_CHECK).pk)
    persona.jobs.filter(kind=JobKind.VOICE_CLONE).update(deadline=timezone.now() - timedelta(seconds=1))
    run_jobs()
    page = section_page(owner_client, persona, "voice")
    assert 'data-state="failed"' in page
    assert "<strong>Training did not finish:</strong> This took too long and was stopped. Please try again.</p>" in page
    assert "Try again with the same sample" in page
