"""Whole flows through the real database worker: upload -> check -> train/create -> preview files,
with the offline providers, and with MiniMax / WaveSpeed scripted at the HTTP boundary."""

import io
import json

import av
import pytest
import requests
import responses
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from media_pipeline import services
from media_pipeline.models import JobKind, JobStatus, MediaJob, UsageRecord
from media_pipeline.storage import read_bytes
from personas.models import TrainingStatus, WritingPersona
from tests import photo_factory
from tests.media_factory import encode, make_mp4, speech_wav

MINIMAX = "https://api.minimax.io"
WAVESPEED = "https://api.wavespeed.ai"
OK = {"base_resp": {"status_code": 0, "status_msg": "success"}}


@pytest.fixture
def persona(owner):
    return WritingPersona.objects.create(user=owner, name="Owner persona")


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    def run(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run


def streams(data: bytes) -> dict:
    with av.open(io.BytesIO(data)) as container:
        found = {s.type: s.codec_context.name for s in container.streams}
        found["duration"] = container.duration / 1_000_000 if container.duration else 0
        if container.streams.video:
            found["size"] = (container.streams.video[0].width, container.streams.video[0].height)
    return found


def checked_sample(persona, on_commit, run_jobs, data: bytes):
    job = on_commit(services.check_voice_sample, persona=persona, sample=ContentFile(data, name="sample.mp3"))
    run_jobs()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    return job


def checked_photo(persona, on_commit, run_jobs):
    photo = photo_factory.encode(photo_factory.astronaut(1200), "JPEG")
    job = on_commit(services.check_photo, persona=persona, photo=ContentFile(photo, name="me.jpg"))
    run_jobs()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert not job.result["report"]["errors"]
    return job


def test_offline_voice_is_trained_previewed_approved_and_the_sample_deleted(persona, on_commit, run_jobs):
    check = checked_sample(persona, on_commit, run_jobs, encode(speech_wav(75), "mp3"))
    assert check.result["report"]["metrics"]["duration_seconds"] == pytest.approx(75, abs=0.5)
    sample_name = check.input_file.name
    assert default_storage.exists(sample_name)

    training = on_commit(services.start_voice_training, persona=persona, check_job=check, accept_warnings=True)
    persona.refresh_from_db()
    assert persona.voice_training_status == TrainingStatus.TRAINING
    run_jobs()
    training.refresh_from_db()
    persona.refresh_from_db()
    assert training.status == JobStatus.SUCCEEDED, training.error
    assert persona.voice_training_status == TrainingStatus.READY and persona.voice_provider == "offline"
    assert persona.voice_id == training.result["voice_id"] and persona.voice_trained_at
    assert not default_storage.exists(sample_name) and not persona.voice_training_audio
    preview = streams(read_bytes(persona.voice_preview))
    assert preview["audio"] == "pcm_s16le" and preview["duration"] > 2
    assert persona.voice_profile["f0_median_hz"] > 50
    assert UsageRecord.objects.filter(job=training).count() == 2  # clone + preview, both $0 offline

    services.approve_voice(persona=persona)
    assert persona.voice_approved_at is not None


def test_retraining_keeps_the_approved_voice_until_the_candidate_is_approved(persona, on_commit, run_jobs):
    first = on_commit(
        services.start_voice_training,
        persona=persona,
        check_job=checked_sample(persona, on_commit, run_jobs, encode(speech_wav(70), "mp3")),
        accept_warnings=True,
    )
    run_jobs()
    first.refresh_from_db()
    persona.refresh_from_db()
    services.approve_voice(persona=persona)
    old_voice = persona.voice_id

    check = checked_sample(persona, on_commit, run_jobs, encode(speech_wav(70, f0=200), "mp3"))
    retrain = on_commit(services.start_voice_training, persona=persona, check_job=check, accept_warnings=True)
    run_jobs()
    retrain.refresh_from_db()
    persona.refresh_from_db()
    assert retrain.result["candidate"] and persona.voice_id == old_voice
    assert persona.voice_training_status == TrainingStatus.READY

    services.approve_voice(persona=persona)
    persona.refresh_from_db()
    assert persona.voice_id == retrain.result["voice_id"] != first.result["voice_id"]
    assert persona.voice_preview.name == retrain.result["preview_file"]


def test_a_sample_with_errors_cannot_be_trained(persona, on_commit, run_jobs):
    from tests.media_factory import silence_wav

    check = checked_sample(persona, on_commit, run_jobs, silence_wav(30))
    assert check.result["report"]["errors"]
    with pytest.raises(services.PipelineError, match="cannot be used"):
        services.start_voice_training(persona=persona, check_job=check, accept_warnings=True)
    assert not persona.jobs.filter(kind=JobKind.VOICE_CLONE).exists()


def test_offline_avatar_is_created_as_a_playable_mp4(persona, on_commit, run_jobs):
    check = checked_photo(persona, on_commit, run_jobs)
    job = on_commit(services.start_avatar_creation, persona=persona, check_job=check)
    run_jobs()
    job.refresh_from_db()
    persona.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert persona.avatar_training_status == TrainingStatus.READY and persona.avatar_id
    video = streams(read_bytes(persona.avatar_preview))
    assert video["video"] == "h264" and video["audio"] == "aac" and video["size"] == (512, 512)
    assert video["duration"] > 2
    # The stored photo is the EXIF-free re-encode; the portrait is the provider's input.
    assert read_bytes(persona.avatar_image)[:2] == b"\xff\xd8"
    assert read_bytes(persona.avatar_portrait)[:4] == b"\x89PNG"


@responses.activate
def test_wavespeed_avatar_polls_until_completed_and_charges_once(settings, persona, on_commit, run_jobs):
    settings.WAVESPEED_API_KEY = "ws-key"
    settings.PROVIDER_POLL_SECONDS = 0
    check = checked_photo(persona, on_commit, run_jobs)
    upload = {"code": 200, "message": "success", "data": {"type": "x", "download_url": "https://cdn.example/in"}}
    responses.post(f"{WAVESPEED}/api/v3/media/upload/binary", json=upload)
    responses.post(
        f"{WAVESPEED}/api/v3/wavespeed-ai/hunyuan-avatar",
        json={"code": 200, "message": "success", "data": {"id": "pred1", "status": "created", "outputs": []}},
    )
    result_url = f"{WAVESPEED}/api/v3/predictions/pred1/result"
    for status, outputs in [("processing", []), ("processing", []), ("completed", ["https://cdn.example/o.mp4"])]:
        body = {
            "id": "pred1",
            "status": status,
            "outputs": outputs,
            "error": "",
            "created_at": timezone.now().isoformat(),
        }
        responses.get(result_url, json={"code": 200, "message": "success", "data": body})
    responses.get("https://cdn.example/o.mp4", body=make_mp4())

    job = on_commit(services.start_avatar_creation, persona=persona, check_job=check, provider="wavespeed")
    run_jobs()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.provider_job_id == "pred1"
    assert len([c for c in responses.calls if c.request.url == result_url]) == 3
    submits = [c for c in responses.calls if c.request.url.endswith("hunyuan-avatar")]
    assert len(submits) == 1 and json.loads(submits[0].request.body)["image"] == "https://cdn.example/in"
    charges = UsageRecord.objects.filter(job=job, kind="avatar_video")
    assert charges.count() == 1 and charges.get().cost_usd > 0
    persona.refresh_from_db()
    assert persona.avatar_ready


@responses.activate
def test_wavespeed_failure_ends_the_job_with_the_providers_reason(settings, persona, on_commit, run_jobs):
    settings.WAVESPEED_API_KEY = "ws-key"
    settings.PROVIDER_POLL_SECONDS = 0
    check = checked_photo(persona, on_commit, run_jobs)
    upload = {"code": 200, "message": "success", "data": {"type": "x", "download_url": "https://cdn.example/in"}}
    responses.post(f"{WAVESPEED}/api/v3/media/upload/binary", json=upload)
    responses.post(
        f"{WAVESPEED}/api/v3/wavespeed-ai/hunyuan-avatar",
        json={"code": 200, "message": "success", "data": {"id": "pred2", "status": "created", "outputs": []}},
    )
    failed = {"id": "pred2", "status": "failed", "outputs": [], "error": "face not detected in image"}
    responses.get(f"{WAVESPEED}/api/v3/predictions/pred2/result", json={"code": 200, "data": failed})
    job = on_commit(services.start_avatar_creation, persona=persona, check_job=check, provider="wavespeed")
    run_jobs()
    job.refresh_from_db()
    persona.refresh_from_db()
    assert job.status == JobStatus.FAILED and "face not detected" in job.error
    assert persona.avatar_training_status == TrainingStatus.FAILED
    assert not UsageRecord.objects.filter(job=job, kind="avatar_video").exists()


def test_a_job_that_never_finishes_fails_at_its_deadline(persona, on_commit):
    job = MediaJob.objects.create(
        user=persona.user,
        persona=persona,
        kind=JobKind.AVATAR_CREATE,
        provider="wavespeed",
        provider_job_id="stuck",
        status=JobStatus.WAITING_PROVIDER,
        deadline=timezone.now() - timezone.timedelta(seconds=1),
    )
    persona.avatar_training_status = TrainingStatus.TRAINING
    persona.save()
    services.run_job(job.pk)
    job.refresh_from_db()
    persona.refresh_from_db()
    assert job.status == JobStatus.FAILED and "took too long" in job.error
    assert persona.avatar_training_status == TrainingStatus.FAILED


@responses.activate
def test_a_killed_workers_voice_clone_is_resumed_by_the_sweeper_without_a_second_charge(
    settings, persona, on_commit, run_jobs
):
    settings.MINIMAX_API_KEY = "mm-key"
    check = checked_sample(persona, on_commit, run_jobs, encode(speech_wav(70), "mp3"))
    job = on_commit(
        services.start_voice_training, persona=persona, check_job=check, accept_warnings=True, provider="minimax"
    )
    # The first worker took the job, chose the voice id, cloned it at MiniMax, then died.
    claimed = services.claim_job(job.pk)
    claimed.result = {"voice_id": "alw9xkilledworker12", "provider_uploads": ["41"]}
    claimed.lease_expires_at = timezone.now() - timezone.timedelta(seconds=1)
    claimed.save()

    responses.post(f"{MINIMAX}/v1/files/upload", json={**OK, "file": {"file_id": 42}})
    duplicate = {"base_resp": {"status_code": 2039, "status_msg": "voice clone voice id duplicate"}}
    responses.post(f"{MINIMAX}/v1/voice_clone", json=duplicate)
    mp3 = encode(speech_wav(12), "mp3")
    speech = {**OK, "data": {"audio": mp3.hex(), "status": 2}, "extra_info": {"audio_length": 12000}}
    responses.post(f"{MINIMAX}/v1/t2a_v2", json=speech)
    responses.post(f"{MINIMAX}/v1/files/delete", json=OK)

    assert on_commit(services.sweep_jobs) == {"requeued": 1, "failed": 0}
    run_jobs()
    job.refresh_from_db()
    persona.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.attempts == 2
    assert persona.voice_id == "alw9xkilledworker12" and persona.voice_provider == "minimax"
    clone_charges = UsageRecord.objects.filter(job=job, kind="voice_clone")
    assert clone_charges.count() == 1 and str(clone_charges.get().cost_usd) == "0.7500"
    # The clone body carried the id chosen before the crash; nothing was created twice.
    clone_body = json.loads(next(c for c in responses.calls if c.request.url.endswith("voice_clone")).request.body)
    assert clone_body["voice_id"] == "alw9xkilledworker12"
    # Both uploads of the sample, the dead worker's and the retry's, are deleted at MiniMax.
    assert deleted_uploads() == [41, 42] and job.result["provider_uploads"] == []


def deleted_uploads() -> list[int]:
    calls = [c for c in responses.calls if c.request.url.endswith("/v1/files/delete")]
    return sorted(json.loads(c.request.body)["file_id"] for c in calls)


@responses.activate
def test_a_lost_clone_reply_is_retried_and_every_upload_of_the_sample_is_deleted(
    settings, persona, on_commit, run_jobs
):
    settings.MINIMAX_API_KEY = "mm-key"
    settings.HTTP_MAX_RETRIES = 0
    check = checked_sample(persona, on_commit, run_jobs, encode(speech_wav(70), "mp3"))
    job = on_commit(
        services.start_voice_training, persona=persona, check_job=check, accept_warnings=True, provider="minimax"
    )
    responses.post(f"{MINIMAX}/v1/files/upload", json={**OK, "file": {"file_id": 41}})
    responses.post(f"{MINIMAX}/v1/files/upload", json={**OK, "file": {"file_id": 42}})
    # The first clone went through at MiniMax but its reply was lost; the retry meets the same id.
    responses.post(f"{MINIMAX}/v1/voice_clone", body=requests.exceptions.ReadTimeout())
    duplicate = {"base_resp": {"status_code": 2039, "status_msg": "voice clone voice id duplicate"}}
    responses.post(f"{MINIMAX}/v1/voice_clone", json=duplicate)
    mp3 = encode(speech_wav(12), "mp3")
    speech = {**OK, "data": {"audio": mp3.hex(), "status": 2}, "extra_info": {"audio_length": 12000}}
    responses.post(f"{MINIMAX}/v1/t2a_v2", json=speech)
    responses.post(f"{MINIMAX}/v1/files/delete", json=OK)

    run_jobs()
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.result["provider_uploads"] == ["41"]
    on_commit(services.enqueue_job, job)
    run_jobs()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert deleted_uploads() == [41, 42]
    assert UsageRecord.objects.filter(job=job, kind="voice_clone").count() == 1


@responses.activate
def test_a_refused_clone_deletes_its_upload_once(settings, persona, on_commit, run_jobs):
    settings.MINIMAX_API_KEY = "mm-key"
    check = checked_sample(persona, on_commit, run_jobs, encode(speech_wav(70), "mp3"))
    job = on_commit(
        services.start_voice_training, persona=persona, check_job=check, accept_warnings=True, provider="minimax"
    )
    responses.post(f"{MINIMAX}/v1/files/upload", json={**OK, "file": {"file_id": 43}})
    refused = {"base_resp": {"status_code": 2013, "status_msg": "invalid params"}}
    responses.post(f"{MINIMAX}/v1/voice_clone", json=refused)
    responses.post(f"{MINIMAX}/v1/files/delete", json=OK)

    run_jobs()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert deleted_uploads() == [43] and job.result["provider_uploads"] == []
