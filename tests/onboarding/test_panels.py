"""The voice and avatar panels built together agree with each panel built on its own."""

from datetime import timedelta

from django.utils import timezone

from media_pipeline import services as pipeline
from media_pipeline.models import JobKind, MediaJob
from onboarding import services
from personas.consent import record_consent
from personas.models import Capability, WritingPersona
from personas.studio import ContentType


def reloaded(persona):
    return WritingPersona.objects.select_related("user__subscription").get(pk=persona.pk)


def test_panels_together_read_consents_in_one_query(persona, rf, django_assert_num_queries):
    record_consent(persona=persona, capability=Capability.VOICE, request=rf.get("/"))
    persona = reloaded(persona)
    with django_assert_num_queries(1):
        consented = services.current_consents(persona, [Capability.VOICE, Capability.AVATAR])
    assert consented == {Capability.VOICE}
    voice, avatar = services.media_panels(persona)
    assert (voice.needs_consent, avatar.needs_consent) == (False, True)
    assert voice.needs_consent == services.voice_panel(persona).needs_consent
    assert avatar.needs_consent == services.avatar_panel(persona).needs_consent


def test_a_withdrawn_consent_is_not_current(persona, rf):
    consent = record_consent(persona=persona, capability=Capability.AVATAR, request=rf.get("/"))
    consent.withdrawn_at = timezone.now()
    consent.save()
    _, avatar = services.media_panels(reloaded(persona))
    assert avatar.needs_consent


def job(persona, kind, minutes_ago, content_type=""):
    made = MediaJob.objects.create(
        user=persona.user, persona=persona, kind=kind, content_type=content_type, provider="offline"
    )
    MediaJob.objects.filter(pk=made.pk).update(created_at=timezone.now() - timedelta(minutes=minutes_ago))
    return made


def test_newest_jobs_gives_the_newest_of_each_kind_in_one_query(persona, other_user, django_assert_num_queries):
    old_check, new_check = job(persona, JobKind.SAMPLE_CHECK, 10), job(persona, JobKind.SAMPLE_CHECK, 1)
    clone = job(persona, JobKind.VOICE_CLONE, 5)
    sample = job(persona, JobKind.RENDER, 8, content_type=ContentType.VOICE_SAMPLE)
    job(persona, JobKind.RENDER, 2, content_type=ContentType.LINKEDIN)  # newer, but not a voice sample
    job(
        WritingPersona.objects.create(user=other_user, name="Other"), JobKind.PHOTO_CHECK, 0
    )  # another user's job is never picked
    with django_assert_num_queries(1):
        jobs = services.newest_jobs(persona, services.VOICE_JOBS | services.AVATAR_JOBS)
    assert jobs == {
        "voice_check": new_check,
        "voice_work": clone,
        "voice_sample": sample,
        "avatar_check": None,
        "avatar_work": None,
    }
    assert jobs["voice_check"] == pipeline.latest_job(persona, JobKind.SAMPLE_CHECK) != old_check
    assert jobs["voice_check"].result == {} and jobs["voice_check"].created_at < timezone.now()
    assert services.newest_jobs(persona, {}) == {}
