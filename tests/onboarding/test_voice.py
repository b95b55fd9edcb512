"""Step 6, voice: tier gates, upload errors, the worker's quality report, training with live
progress, failure and retry, approval, retraining and skipping. Jobs run in the real worker."""

import re

import pytest
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils.html import escape

from media_pipeline.models import JobKind, JobStatus, MediaAsset, MediaJob, UsageRecord
from media_pipeline.providers.base import ProviderError
from media_pipeline.uploads import upload_too_large_message
from onboarding.models import OnboardingData
from personas.consent import consent_text
from personas.models import ConsentRecord, Tier, TrainingStatus, WritingPersona
from tests import media_factory
from tests.conftest import make_user
from tests.onboarding.conftest import SAMPLES, url, wav_upload

pytestmark = pytest.mark.django_db
POLLING = 'hx-trigger="every 2s"'


@pytest.fixture
def upload(client, django_capture_on_commit_callbacks):
    def post(persona, data=None, name="sample.wav", htmx=False, **fields):
        fields.setdefault("consent", "on")
        headers = {"HX-Request": "true"} if htmx else {}
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                url("voice_sample", persona), {"sample": wav_upload(data, name), **fields}, headers=headers
            )

    return post


@pytest.fixture
def act(client, django_capture_on_commit_callbacks):
    """POST a wizard action the way htmx does and return the section it re-renders."""

    def post(name, persona, *args, data=None):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(url(name, persona, *args), data or {}, headers={"HX-Request": "true"})
        assert response.status_code == 200
        return response.content.decode()

    return post


def voice_section(client, persona) -> str:
    response = client.get(url("voice", persona), headers={"HX-Request": "true"})
    assert response.status_code == 200
    return response.content.decode()


def persona_for(user: User) -> WritingPersona:
    OnboardingData.objects.create(user=user, brand_name=user.username, writing_samples=SAMPLES, platforms=["blog"])
    return WritingPersona.objects.create(user=user, name=user.username)


def latest(persona, kind) -> MediaJob:
    return persona.jobs.filter(kind=kind).first()


def nothing_changed(persona):
    persona.refresh_from_db()
    assert not persona.jobs.exists()
    assert not persona.consents.exists()
    assert not persona.voice_training_audio


# --- Tier gates ------------------------------------------------------------------------------


def test_free_tier_sees_an_upgrade_prompt_and_cannot_upload(client, upload):
    persona = persona_for(make_user("free", Tier.FREE))
    client.force_login(persona.user)
    page = voice_section(client, persona)
    assert 'data-state="locked"' in page
    assert "part of the Basic, Pro, Enterprise plans" in page
    assert 'name="sample"' not in page
    response = upload(persona, htmx=True)
    assert "Voice cloning is not part of your plan" in response.content.decode()
    nothing_changed(persona)


def test_basic_tier_must_confirm_the_one_time_cost(client, upload, settings):
    settings.VOICE_PROVIDER = "minimax"
    persona = persona_for(make_user("basic", Tier.BASIC))
    client.force_login(persona.user)
    page = voice_section(client, persona)
    assert "Voice cloning costs a one-time $0.75" in page
    assert 'name="confirm_cost"' in page
    response = upload(persona, htmx=True)
    assert "Please confirm the one-time charge of $0.75." in response.content.decode()
    nothing_changed(persona)
    upload(persona, confirm_cost="on")
    assert latest(persona, JobKind.SAMPLE_CHECK) is not None


def test_basic_tier_with_a_free_provider_has_nothing_to_confirm(client):
    persona = persona_for(make_user("basic", Tier.BASIC))
    client.force_login(persona.user)
    page = voice_section(client, persona)
    assert "no charge" in page and 'name="confirm_cost"' not in page


@pytest.mark.parametrize("tier", [Tier.PRO, Tier.ENTERPRISE])
def test_pro_and_enterprise_include_voice_cloning(client, tier, settings):
    settings.VOICE_PROVIDER = "minimax"
    persona = persona_for(make_user("paid", tier))
    client.force_login(persona.user)
    page = voice_section(client, persona)
    assert "Voice cloning is included in your plan." in page
    assert 'name="confirm_cost"' not in page


# --- Upload errors: a clear message, nothing changed ----------------------------------------------


def test_a_missing_file_is_refused(owner_client, persona, upload):
    response = owner_client.post(url("voice_sample", persona), {"consent": "on"}, headers={"HX-Request": "true"})
    assert "Choose an audio file or record your voice first." in response.content.decode()
    nothing_changed(persona)


@pytest.mark.parametrize("name", ["notes.txt", "voice.flac", "voice"])
def test_a_file_that_is_not_a_supported_audio_type_is_refused(owner_client, persona, upload, name):
    response = upload(persona, b"hello", name=name, htmx=True)
    assert "That file is not audio we can use. Upload one of: MP3, M4A, WAV, WEBM, OGG." in response.content.decode()
    nothing_changed(persona)


def test_an_empty_file_is_refused(owner_client, persona, upload):
    response = owner_client.post(
        url("voice_sample", persona),
        {"sample": SimpleUploadedFile("a.wav", b""), "consent": "on"},
        headers={"HX-Request": "true"},
    )
    assert "The submitted file is empty." in response.content.decode()
    nothing_changed(persona)


def test_a_file_over_the_limit_is_refused_while_it_streams_in(owner_client, persona, upload, settings):
    settings.MAX_UPLOAD_BYTES = 50_000
    response = upload(persona, media_factory.speech_wav(5), htmx=True)
    assert upload_too_large_message() in response.content.decode()
    nothing_changed(persona)


def test_a_file_over_the_audio_limit_is_refused(owner_client, persona, upload, settings):
    settings.MAX_AUDIO_UPLOAD_BYTES = 50_000
    response = upload(persona, media_factory.speech_wav(5), htmx=True)
    assert "That file is larger than 48.8 KB. Please upload a smaller file." in response.content.decode()
    nothing_changed(persona)


def test_consent_is_required(owner_client, persona, upload):
    response = upload(persona, consent="", htmx=True)
    assert "Please agree to the voice consent before uploading your voice." in response.content.decode()
    nothing_changed(persona)


def test_without_javascript_an_invalid_upload_re_renders_the_whole_page(owner_client, persona, upload):
    response = upload(persona, consent="")
    assert response.status_code == 200
    assert "<html" in response.content.decode()
    assert "Please agree to the voice consent" in response.content.decode()


def test_consent_is_stored_as_evidence(owner_client, persona, upload, run_jobs):
    upload(persona, media_factory.speech_wav(30))
    record = ConsentRecord.objects.get(persona=persona)
    current = consent_text("voice")
    assert (record.user, record.capability, record.text, record.text_version) == (
        persona.user,
        "voice",
        current.text,
        current.version,
    )
    assert record.ip_address == "127.0.0.1"
    assert record.granted_at is not None
    # Once given, the consent is not asked for again (and not stored twice).
    run_jobs()
    assert "You have agreed to the voice consent." in voice_section(owner_client, persona)
    upload(persona, media_factory.speech_wav(30), consent="")
    assert persona.jobs.filter(kind=JobKind.SAMPLE_CHECK).count() == 2
    assert ConsentRecord.objects.filter(persona=persona).count() == 1


def test_the_user_agent_is_stored_with_the_consent(client, persona, django_capture_on_commit_callbacks):
    client.force_login(persona.user)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            url("voice_sample", persona),
            {"sample": wav_upload(media_factory.speech_wav(30)), "consent": "on"},
            headers={"User-Agent": "TestBrowser/1.0"},
        )
    assert ConsentRecord.objects.get(persona=persona).user_agent == "TestBrowser/1.0"


# --- The quality report --------------------------------------------------------------------------


def test_upload_shows_checking_then_the_report(owner_client, persona, upload, run_jobs):
    response = upload(persona)
    assert response.status_code == 302 and response.url.endswith(f"/onboarding/persona/{persona.pk}/#voice")
    page = voice_section(owner_client, persona)
    assert 'data-state="checking"' in page and POLLING in page
    run_jobs()
    page = voice_section(owner_client, persona)
    assert 'data-state="checked"' in page and POLLING not in page
    for label in ("Duration", "Loudness", "Background noise", "Clipping", "Speech"):
        assert label in page
    assert 'data-check="duration" data-level="ok">Your sample is 1 min 10 s.</li>' in page
    assert "Train my voice" in page


@pytest.mark.parametrize(
    ("make_sample", "check", "message"),
    [
        (
            lambda: media_factory.silence_wav(15),
            "silence",
            "The recording is silent. Check that the right microphone is selected and record again.",
        ),
        (
            lambda: media_factory.speech_wav(5),
            "duration",
            "Your sample is 5 s; it must be at least 10 s. Record 1-3 minutes of your voice.",
        ),
        (
            lambda: media_factory.speech_wav(40, noise_db=5),
            "noise",
            re.compile(
                r"There is too much background noise \(signal-to-noise \d+ dB\)\. "
                r"Record in a quiet room, away from fans and traffic\."
            ),
        ),
        (
            lambda: media_factory.speech_wav(40, clip=True),
            "clipping",
            re.compile(
                r"About \d+(\.\d)?% of the sample is clipped \(too loud for the microphone\): "
                r"move away from the microphone or lower the input level\."
            ),
        ),
        (
            lambda: media_factory.truncated(b"RIFF....WAVEfmt not really audio", 1),
            "unreadable",
            "We could not read this file as audio; it may be damaged. Export or record it again.",
        ),
    ],
)
def test_errors_are_shown_and_block_training(owner_client, persona, upload, run_jobs, act, make_sample, check, message):
    upload(persona, make_sample())
    run_jobs()
    page = voice_section(owner_client, persona)
    assert 'data-state="invalid"' in page
    shown = re.search(f'<li class="error" data-check="{check}" data-level="error">([^<]*)</li>', page)
    assert shown, page
    if isinstance(message, str):
        assert shown[1] == escape(message)
    else:
        assert message.fullmatch(shown[1])
    assert "Use this sample anyway" not in page and "Train my voice" not in page
    check_job = latest(persona, JobKind.SAMPLE_CHECK)
    errors = " ".join(c["message"] for c in check_job.result["report"]["errors"])
    page = act("voice_train", persona, check_job.pk, data={"accept_warnings": "on"})
    assert latest(persona, JobKind.VOICE_CLONE) is None
    assert f'<p class="errorlist" role="alert">{escape("This sample cannot be used: " + errors)}</p>' in page


def test_warnings_offer_use_anyway(owner_client, persona, upload, run_jobs, act):
    upload(persona, media_factory.speech_wav(30))
    run_jobs()
    page = voice_section(owner_client, persona)
    assert 'data-state="warnings"' in page
    assert "record at least 60 s for a voice that sounds like you" in page
    assert "Use this sample anyway" in page
    check = latest(persona, JobKind.SAMPLE_CHECK)
    page = act("voice_train", persona, check.pk)
    assert "Please confirm that you want to use a sample with warnings." in page
    assert latest(persona, JobKind.VOICE_CLONE) is None
    page = act("voice_train", persona, check.pk, data={"accept_warnings": "on"})
    assert 'data-state="training"' in page and POLLING in page


# --- Training, approval, retraining ----------------------------------------------------------


def train(persona, act, upload, run_jobs, data=None):
    upload(persona, data)
    run_jobs()
    return act("voice_train", persona, latest(persona, JobKind.SAMPLE_CHECK).pk)


def test_training_shows_progress_until_ready_then_approval(owner_client, persona, upload, run_jobs, act):
    page = train(persona, act, upload, run_jobs)
    assert 'data-state="training"' in page and POLLING in page
    assert '<progress max="100" value="0"' in page
    persona.refresh_from_db()
    assert persona.voice_training_status == "training"
    run_jobs()
    page = voice_section(owner_client, persona)
    # Done: re-rendered without hx-trigger, so polling stops.
    assert 'data-state="ready"' in page and POLLING not in page
    assert f"/media/persona/{persona.pk}/voice-preview/" in page
    assert "Approve my voice" in page
    page = act("voice_approve", persona)
    assert 'data-state="approved"' in page
    persona.refresh_from_db()
    assert persona.voice_approved_at is not None and persona.voice_ready
    # The preview streams for the owner.
    assert owner_client.get(f"/media/persona/{persona.pk}/voice-preview/").status_code == 200


def test_retraining_keeps_the_approved_voice_until_the_new_one_is_approved(
    owner_client, persona, upload, run_jobs, act
):
    train(persona, act, upload, run_jobs)
    run_jobs()
    act("voice_approve", persona)
    persona.refresh_from_db()
    first_voice = persona.voice_id
    page = voice_section(owner_client, persona)
    assert "Retrain with a new sample" in page
    page = train(persona, act, upload, run_jobs, media_factory.speech_wav(65, f0=210))
    assert 'data-state="retraining"' in page
    assert "Your current voice stays in use until you approve the new one." in page
    run_jobs()
    page = voice_section(owner_client, persona)
    clone = latest(persona, JobKind.VOICE_CLONE)
    assert 'data-state="candidate"' in page
    assert f"/media/job/{clone.pk}/preview/" in page
    assert "New voice (an offline voice match):" in page
    persona.refresh_from_db()
    assert persona.voice_id == first_voice
    page = act("voice_approve", persona)
    assert 'data-state="approved"' in page
    persona.refresh_from_db()
    assert persona.voice_id == clone.result["voice_id"] != first_voice


def test_the_offline_voice_is_called_a_voice_match_not_a_clone(owner_client, persona, upload, run_jobs, act):
    train(persona, act, upload, run_jobs)
    run_jobs()
    page = voice_section(owner_client, persona)
    assert (
        'data-voice-kind="offline_match">This is your offline voice match: a local voice tuned to your pitch and pace:'
        in page
    )
    assert "cloned voice" not in page
    act("voice_approve", persona)
    preview = owner_client.get(url("preview", persona)).content.decode()
    assert (
        '<p data-voice-kind="offline_match">Your offline voice match: a local voice tuned to your pitch and pace.</p>'
        in (preview)
    )
    assert "cloned voice" not in preview


def test_a_voice_cloned_by_the_voice_service_is_called_cloned(owner_client, persona, settings):
    settings.VOICE_PROVIDER = "minimax"
    persona.voice_training_status, persona.voice_id, persona.voice_provider = TrainingStatus.READY, "alw1x7", "minimax"
    persona.voice_approved_at = persona.analysed_at
    persona.save()
    page = voice_section(owner_client, persona)
    assert 'data-state="approved"' in page
    assert '<p data-voice-kind="clone">This is your cloned voice:' in page and "offline voice match" not in page
    preview = owner_client.get(url("preview", persona)).content.decode()
    assert '<p data-voice-kind="clone">Your cloned voice.</p>' in preview and "offline voice match" not in preview


def test_keeping_the_current_voice_discards_the_retrained_one(owner_client, persona, upload, run_jobs, act):
    train(persona, act, upload, run_jobs)
    run_jobs()
    act("voice_approve", persona)
    persona.refresh_from_db()
    first_voice, first_preview = persona.voice_id, persona.voice_preview.name
    train(persona, act, upload, run_jobs, media_factory.speech_wav(65, f0=210))
    run_jobs()
    clone = latest(persona, JobKind.VOICE_CLONE)
    candidate_preview = clone.result["preview_file"]
    assert "Keep my current voice" in voice_section(owner_client, persona)

    page = act("voice_discard", persona)
    assert 'data-state="approved"' in page and "Keep my current voice" not in page
    persona.refresh_from_db()
    clone.refresh_from_db()
    assert persona.voice_id == first_voice and persona.voice_preview.name == first_preview
    assert clone.result["discarded"] and not default_storage.exists(candidate_preview)
    assert owner_client.get(f"/media/job/{clone.pk}/preview/").status_code == 404
    # Nothing is waiting any more: approving or discarding again changes nothing.
    page = act("voice_discard", persona)
    assert "There is no new voice waiting for a decision." in page
    act("voice_approve", persona)
    persona.refresh_from_db()
    assert persona.voice_id == first_voice


def test_failed_training_shows_why_and_can_be_retried(owner_client, persona, upload, run_jobs, act, monkeypatch):
    from media_pipeline.providers import local

    def refuse(self, *args, **kwargs):
        raise ProviderError("The voice service could not learn from this recording.")

    with monkeypatch.context() as patch:
        patch.setattr(local.OfflineVoiceProvider, "clone", refuse)
        train(persona, act, upload, run_jobs)
        run_jobs()
    page = voice_section(owner_client, persona)
    assert 'data-state="failed"' in page
    assert "The voice service could not learn from this recording." in page
    assert "Try again with the same sample" in page
    persona.refresh_from_db()
    assert persona.voice_training_status == "failed"
    page = act("voice_retry", persona)
    assert 'data-state="training"' in page
    run_jobs()
    assert 'data-state="ready"' in voice_section(owner_client, persona)


def test_training_can_be_cancelled(owner_client, persona, upload, run_jobs, act):
    train(persona, act, upload, run_jobs)
    page = act("voice_cancel", persona)
    assert 'data-state="failed"' in page and "You cancelled this." in page
    assert latest(persona, JobKind.VOICE_CLONE).status == JobStatus.CANCELLED


def test_training_cannot_start_twice(owner_client, persona, upload, run_jobs, act):
    train(persona, act, upload, run_jobs)
    check = latest(persona, JobKind.SAMPLE_CHECK)
    page = act("voice_train", persona, check.pk)
    assert "Your voice is already being trained." in page
    assert persona.jobs.filter(kind=JobKind.VOICE_CLONE).count() == 1


# --- Skip and the sentence of the user's choice --------------------------------------------------


def test_skipping_and_coming_back(owner_client, persona, upload, act):
    page = act("voice_skip", persona)
    assert 'data-state="skipped"' in page
    persona.refresh_from_db()
    assert persona.voice_skipped_at is not None
    # Still skipped after a refresh; uploading later leaves the skipped state.
    assert 'data-state="skipped"' in voice_section(owner_client, persona)
    upload(persona)
    assert 'data-state="checking"' in voice_section(owner_client, persona)


def voice_samples(persona):
    return persona.jobs.filter(kind=JobKind.RENDER, content_type="voice_sample")


def test_a_sentence_of_the_users_choice_is_spoken_by_a_voice_sample_job(
    owner_client, client, persona, upload, run_jobs, act, other_user
):
    train(persona, act, upload, run_jobs)
    run_jobs()
    page = act("voice_sentence", persona, data={"text": ""})
    assert "Type a sentence to hear." in page and not voice_samples(persona).exists()
    page = act("voice_sentence", persona, data={"text": "x" * 201})
    assert "Keep it to one short sentence." in page and not voice_samples(persona).exists()
    page = act("voice_sentence", persona, data={"text": "Welcome to my weekly letter."})
    # Queued, not spoken: the section polls until the worker is done.
    assert "Speaking “Welcome to my weekly letter.”" in page and POLLING in page
    job = voice_samples(persona).get()
    assert job.status == JobStatus.QUEUED
    assert job.params["segments"] == ["Welcome to my weekly letter."] and job.params["use_persona_voice"]
    page = act("voice_sentence", persona, data={"text": "And another."})
    assert '<p class="errorlist" role="alert">Your last sentence is still being spoken; wait a moment.</p>' in page
    assert voice_samples(persona).count() == 1
    run_jobs()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    asset = MediaAsset.objects.get(job=job)
    assert asset.used_persona_voice and asset.mime_type == "audio/mpeg"
    page = voice_section(owner_client, persona)
    audio_url = reverse("media:asset", args=[asset.pk])
    assert f'data-preview="sentence" src="{audio_url}"' in page and POLLING not in page
    response = owner_client.get(audio_url)
    assert response.status_code == 200 and b"".join(response.streaming_content)
    # Metered by the job, like every other voice sample.
    assert UsageRecord.objects.filter(job=job, kind="voice_synthesis", content_type="voice_sample").exists()
    client.force_login(other_user)
    assert client.get(audio_url).status_code == 404
    assert client.get(url("voice", persona)).status_code == 404
    response = client.post(url("voice_sentence", persona), {"text": "Hi"}, headers={"HX-Request": "true"})
    assert response.status_code == 404 and voice_samples(persona).count() == 1


def test_a_failed_sentence_says_why_and_stops_polling(owner_client, persona, upload, run_jobs, act):
    train(persona, act, upload, run_jobs)
    run_jobs()
    act("voice_sentence", persona, data={"text": "Hello there."})
    voice_samples(persona).update(status=JobStatus.FAILED, error="The voice provider is down.")
    page = voice_section(owner_client, persona)
    assert "We could not speak “Hello there.”: The voice provider is down." in page and POLLING not in page


def test_a_sentence_needs_a_ready_voice(owner_client, persona, act):
    page = act("voice_sentence", persona, data={"text": "Hello there."})
    assert "Your voice is not ready yet." in page
    assert not voice_samples(persona).exists()


def test_a_free_tier_persona_cannot_hear_a_sentence_even_with_a_trained_voice(client, act):
    # e.g. a voice trained on a paid plan that was later downgraded
    persona = persona_for(make_user("free", Tier.FREE))
    persona.voice_training_status, persona.voice_id = TrainingStatus.READY, "alw1xtrained"
    persona.save()
    client.force_login(persona.user)
    page = act("voice_sentence", persona, data={"text": "Hello there."})
    assert "Hearing your own voice is part of the Basic, Pro, Enterprise plans." in page
    assert 'data-state="locked"' in page and not voice_samples(persona).exists()
