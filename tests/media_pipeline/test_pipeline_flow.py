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
    # The job's totals are its uses (narration and video), each counted once.
    uses = list(UsageRecord.objects.filter(job=job))
    assert {u.kind for u in uses} == {"voice_synthesis", "avatar_video"}
    assert job.cost_usd == sum(u.cost_usd for u in uses)
    assert job.media_seconds == pytest.approx(sum(u.media_seconds for u in uses))
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


# --- A job that is no longer the worker's: cancelled, failed at its deadline, deleted ---------


def stored_under(folder: str) -> list[str]:
    from media_pipeline.retention import all_stored_files

    return all_stored_files(folder)


def minimax_speech() -> dict:
    mp3 = encode(speech_wav(6), "mp3")
    return {**OK, "data": {"audio": mp3.hex(), "status": 2}, "extra_info": {"audio_length": 6000}}


@responses.activate
def test_a_voice_clone_cancelled_during_the_clone_call_is_not_made_ready_and_cleans_up(
    settings, persona, on_commit, run_jobs
):
    settings.MINIMAX_API_KEY = "mm-key"
    check = checked_sample(persona, on_commit, run_jobs, encode(speech_wav(70), "mp3"))
    job = on_commit(
        services.start_voice_training, persona=persona, check_job=check, accept_warnings=True, provider="minimax"
    )
    responses.post(f"{MINIMAX}/v1/files/upload", json={**OK, "file": {"file_id": 42}})

    def clone_then_user_cancels(request):
        # The user presses cancel while MiniMax is cloning; the clone itself goes through.
        assert services.cancel_job(MediaJob.objects.get(pk=job.pk))
        return 200, {}, json.dumps({**OK, "demo_audio": ""})

    responses.add_callback(responses.POST, f"{MINIMAX}/v1/voice_clone", callback=clone_then_user_cancels)
    responses.post(f"{MINIMAX}/v1/files/delete", json=OK)
    responses.post(f"{MINIMAX}/v1/delete_voice", json=OK)

    run_jobs()
    job.refresh_from_db()
    persona.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert persona.voice_id == "" and persona.voice_training_status == TrainingStatus.FAILED
    # No preview was paid for or stored; the upload and the new voice are deleted at MiniMax.
    assert not [c for c in responses.calls if c.request.url.endswith("/v1/t2a_v2")]
    assert stored_under("private/voice_previews") == []
    assert set(deleted_uploads()) == {42}
    deleted_voices = [
        json.loads(c.request.body)["voice_id"] for c in responses.calls if "delete_voice" in c.request.url
    ]
    assert deleted_voices and set(deleted_voices) == {job.result["voice_id"]}


def test_a_voice_deleted_while_its_training_runs_does_not_come_back(persona, on_commit, run_jobs, monkeypatch):
    from media_pipeline.providers.local import OfflineVoiceProvider
    from personas import services as persona_services

    check = checked_sample(persona, on_commit, run_jobs, encode(speech_wav(70), "mp3"))
    job = on_commit(services.start_voice_training, persona=persona, check_job=check, accept_warnings=True)
    real_synthesize = OfflineVoiceProvider.synthesize

    def preview_while_the_user_deletes_the_voice(self, *args, **kwargs):
        persona_services.delete_voice(persona=WritingPersona.objects.get(pk=persona.pk))
        return real_synthesize(self, *args, **kwargs)

    monkeypatch.setattr(OfflineVoiceProvider, "synthesize", preview_while_the_user_deletes_the_voice)
    run_jobs()
    job.refresh_from_db()
    persona.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert persona.voice_id == "" and persona.voice_training_status == TrainingStatus.NOT_TRAINED
    assert not persona.voice_preview and stored_under("private/voice_previews") == []


def test_everything_deleted_while_an_avatar_renders_leaves_no_rows_or_files(persona, on_commit, run_jobs, monkeypatch):
    from media_pipeline.providers.local import OfflineAvatarProvider
    from media_pipeline.retention import all_stored_files
    from personas import privacy

    check = checked_photo(persona, on_commit, run_jobs)
    job = on_commit(services.start_avatar_creation, persona=persona, check_job=check)
    real_render = OfflineAvatarProvider.start_render

    def render_while_the_user_deletes_everything(self, *args, **kwargs):
        privacy.delete_everything(user=persona.user)
        return real_render(self, *args, **kwargs)

    monkeypatch.setattr(OfflineAvatarProvider, "start_render", render_while_the_user_deletes_everything)
    run_jobs()
    assert not MediaJob.objects.filter(pk=job.pk).exists()
    assert not WritingPersona.objects.filter(user=persona.user).exists()
    assert all_stored_files() == []


@responses.activate
def test_an_avatar_cancelled_while_its_render_is_submitted_stays_cancelled(settings, persona, on_commit, run_jobs):
    settings.WAVESPEED_API_KEY = "ws-key"
    check = checked_photo(persona, on_commit, run_jobs)
    job = on_commit(services.start_avatar_creation, persona=persona, check_job=check, provider="wavespeed")
    upload = {"code": 200, "message": "success", "data": {"type": "x", "download_url": "https://cdn.example/in"}}
    responses.post(f"{WAVESPEED}/api/v3/media/upload/binary", json=upload)

    def submit_then_user_cancels(request):
        assert services.cancel_job(MediaJob.objects.get(pk=job.pk))
        return 200, {}, json.dumps({"code": 200, "data": {"id": "pred5", "status": "created", "outputs": []}})

    responses.add_callback(
        responses.POST, f"{WAVESPEED}/api/v3/wavespeed-ai/hunyuan-avatar", callback=submit_then_user_cancels
    )
    run_jobs()
    job.refresh_from_db()
    persona.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and not job.provider_job_id
    assert persona.avatar_training_status == TrainingStatus.FAILED and not persona.avatar_id
    # No poll follows, and the narration kept for a retry is gone.
    assert not [c for c in responses.calls if "/predictions/" in c.request.url]
    assert stored_under("private/avatar_previews") == []


@responses.activate
def test_an_avatar_cancelled_while_its_video_downloads_is_charged_once_and_stays_cancelled(
    settings, persona, on_commit, run_jobs
):
    settings.WAVESPEED_API_KEY = "ws-key"
    settings.PROVIDER_POLL_SECONDS = 0
    check = checked_photo(persona, on_commit, run_jobs)
    job = on_commit(services.start_avatar_creation, persona=persona, check_job=check, provider="wavespeed")
    upload = {"code": 200, "message": "success", "data": {"type": "x", "download_url": "https://cdn.example/in"}}
    responses.post(f"{WAVESPEED}/api/v3/media/upload/binary", json=upload)
    responses.post(
        f"{WAVESPEED}/api/v3/wavespeed-ai/hunyuan-avatar",
        json={"code": 200, "data": {"id": "pred6", "status": "created", "outputs": []}},
    )
    done = {"id": "pred6", "status": "completed", "outputs": ["https://cdn.example/o6.mp4"]}
    responses.get(f"{WAVESPEED}/api/v3/predictions/pred6/result", json={"code": 200, "data": done})

    def download_then_user_cancels(request):
        assert services.cancel_job(MediaJob.objects.get(pk=job.pk))
        return 200, {}, make_mp4()

    responses.add_callback(responses.GET, "https://cdn.example/o6.mp4", callback=download_then_user_cancels)
    run_jobs()
    job.refresh_from_db()
    persona.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and not persona.avatar_id
    # The render was made (and billed by WaveSpeed): recorded once, and counted on the job.
    charge = UsageRecord.objects.get(job=job, kind="avatar_video")
    uses = list(UsageRecord.objects.filter(job=job))
    assert job.cost_usd == sum(u.cost_usd for u in uses) and charge.cost_usd > 0
    assert stored_under("private/avatar_previews") == []


# --- Provider copies of the sample are deleted however the job ends ---------------------------


@responses.activate
def test_a_failed_preview_deletes_the_samples_provider_upload(settings, persona, on_commit, run_jobs):
    settings.MINIMAX_API_KEY = "mm-key"
    check = checked_sample(persona, on_commit, run_jobs, encode(speech_wav(70), "mp3"))
    job = on_commit(
        services.start_voice_training, persona=persona, check_job=check, accept_warnings=True, provider="minimax"
    )
    responses.post(f"{MINIMAX}/v1/files/upload", json={**OK, "file": {"file_id": 44}})
    responses.post(f"{MINIMAX}/v1/voice_clone", json={**OK, "demo_audio": ""})
    refused = {"base_resp": {"status_code": 2013, "status_msg": "invalid params"}}
    responses.post(f"{MINIMAX}/v1/t2a_v2", json=refused)
    responses.post(f"{MINIMAX}/v1/files/delete", json=OK)

    run_jobs()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert deleted_uploads() == [44] and job.result["provider_uploads"] == []


@responses.activate
def test_a_voice_clone_failed_at_its_deadline_deletes_the_samples_provider_upload(settings, persona, on_commit):
    settings.MINIMAX_API_KEY = "mm-key"
    job = MediaJob.objects.create(
        user=persona.user,
        persona=persona,
        kind=JobKind.VOICE_CLONE,
        provider="minimax",
        status=JobStatus.QUEUED,
        result={"voice_id": "alw1xdeadline0001", "provider_uploads": ["77"]},
        deadline=timezone.now() - timezone.timedelta(seconds=1),
    )
    responses.post(f"{MINIMAX}/v1/files/delete", json=OK)
    assert on_commit(services.sweep_jobs) == {"requeued": 0, "failed": 1}
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.result["provider_uploads"] == []
    assert deleted_uploads() == [77]


# --- Polls, retries and deadlines of hosted renders --------------------------------------------


def wavespeed_poll(prediction: str, status: str, outputs=()) -> dict:
    body = {"id": prediction, "status": status, "outputs": list(outputs), "error": ""}
    return {"code": 200, "message": "success", "data": {**body, "created_at": timezone.now().isoformat()}}


def script_wavespeed_submit(prediction: str) -> None:
    upload = {"code": 200, "message": "success", "data": {"type": "x", "download_url": "https://cdn.example/in"}}
    responses.post(f"{WAVESPEED}/api/v3/media/upload/binary", json=upload)
    responses.post(
        f"{WAVESPEED}/api/v3/wavespeed-ai/hunyuan-avatar",
        json={"code": 200, "message": "success", "data": {"id": prediction, "status": "created", "outputs": []}},
    )


@responses.activate
def test_many_polls_then_one_retryable_error_do_not_fail_the_render(settings, persona, on_commit, run_jobs):
    settings.WAVESPEED_API_KEY = "ws-key"
    settings.PROVIDER_POLL_SECONDS = 0
    settings.HTTP_MAX_RETRIES = 0
    check = checked_photo(persona, on_commit, run_jobs)
    script_wavespeed_submit("pred7")
    result_url = f"{WAVESPEED}/api/v3/predictions/pred7/result"
    for _ in range(6):
        responses.get(result_url, json=wavespeed_poll("pred7", "processing"))
    responses.get(result_url, status=500, json={"code": 500, "message": "busy"})
    responses.get(result_url, json=wavespeed_poll("pred7", "completed", ["https://cdn.example/o7.mp4"]))
    responses.get("https://cdn.example/o7.mp4", body=make_mp4())

    job = on_commit(services.start_avatar_creation, persona=persona, check_job=check, provider="wavespeed")
    run_jobs()
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.attempts == 1, job.error  # six polls, one error
    on_commit(services.enqueue_job, job)  # its delayed retry, run now
    run_jobs()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.attempts == 2
    assert len([c for c in responses.calls if c.request.url == result_url]) == 8


@responses.activate
def test_a_submitted_render_gets_a_deadline_for_its_length(settings, persona, on_commit, run_jobs):
    settings.WAVESPEED_API_KEY = "ws-key"
    settings.PROVIDER_POLL_SECONDS = 60
    check = checked_photo(persona, on_commit, run_jobs)
    script_wavespeed_submit("pred8")
    job = on_commit(services.start_avatar_creation, persona=persona, check_job=check, provider="wavespeed")
    created_deadline = job.deadline
    run_jobs()
    job.refresh_from_db()
    assert job.status == JobStatus.WAITING_PROVIDER
    seconds = job.params["seconds"]
    # The avatar job's own 30 minutes, counted from the submit, plus 30 s of rendering per second.
    expected = job.heartbeat_at + timezone.timedelta(seconds=1800 + 30 * seconds)
    assert abs((job.deadline - expected).total_seconds()) < 5
    assert job.deadline > created_deadline + timezone.timedelta(seconds=20 * seconds)


@responses.activate
def test_a_delayed_poll_and_the_sweepers_requeue_make_one_polling_chain(settings, persona, on_commit, run_jobs):
    from django_tasks_db.models import DBTaskResult

    settings.WAVESPEED_API_KEY = "ws-key"
    settings.PROVIDER_POLL_SECONDS = 60
    stale = timezone.now() - timezone.timedelta(seconds=settings.JOB_LEASE_SECONDS + 60)
    job = MediaJob.objects.create(
        user=persona.user,
        persona=persona,
        kind=JobKind.AVATAR_CREATE,
        provider="wavespeed",
        provider_job_id="pred9",
        status=JobStatus.WAITING_PROVIDER,
        heartbeat_at=stale,
        step_token=5,
        deadline=timezone.now() + timezone.timedelta(hours=1),
        params={"seconds": 4, "photo_file": "p.jpg", "portrait_file": "p.png"},
    )
    result_url = f"{WAVESPEED}/api/v3/predictions/pred9/result"
    responses.get(result_url, json=wavespeed_poll("pred9", "processing"))
    on_commit(services.enqueue_job, job)  # the job's own poll, merely late
    assert on_commit(services.sweep_jobs) == {"requeued": 1, "failed": 0}
    run_jobs()
    job.refresh_from_db()
    assert len([c for c in responses.calls if c.request.url == result_url]) == 1
    assert job.status == JobStatus.WAITING_PROVIDER and job.step_token == 6
    waiting = DBTaskResult.objects.filter(status="READY")
    assert [t.args_kwargs["args"] for t in waiting] == [[job.pk, 6]]


@responses.activate
def test_a_retried_avatar_reuses_its_paid_narration(settings, persona, on_commit, run_jobs):
    settings.MINIMAX_API_KEY = "mm-key"
    settings.WAVESPEED_API_KEY = "ws-key"
    settings.PROVIDER_POLL_SECONDS = 0
    settings.HTTP_MAX_RETRIES = 0
    check = checked_photo(persona, on_commit, run_jobs)
    persona.voice_id, persona.voice_provider = "alw1xnarrator0001", "minimax"
    persona.voice_training_status = TrainingStatus.READY
    persona.save()
    responses.post(f"{MINIMAX}/v1/t2a_v2", json=minimax_speech())
    upload = {"code": 200, "message": "success", "data": {"type": "x", "download_url": "https://cdn.example/in"}}
    responses.post(f"{WAVESPEED}/api/v3/media/upload/binary", status=500, json={"code": 500, "message": "busy"})
    responses.post(f"{WAVESPEED}/api/v3/media/upload/binary", json=upload)
    responses.post(
        f"{WAVESPEED}/api/v3/wavespeed-ai/hunyuan-avatar",
        json={"code": 200, "message": "success", "data": {"id": "pred6", "status": "created", "outputs": []}},
    )
    responses.get(
        f"{WAVESPEED}/api/v3/predictions/pred6/result",
        json=wavespeed_poll("pred6", "completed", ["https://cdn.example/o6.mp4"]),
    )
    responses.get("https://cdn.example/o6.mp4", body=make_mp4())

    job = on_commit(services.start_avatar_creation, persona=persona, check_job=check, provider="wavespeed")
    run_jobs()
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.result["narration_file"]
    on_commit(services.enqueue_job, job)  # its delayed retry, run now
    run_jobs()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert len([c for c in responses.calls if c.request.url.endswith("/v1/t2a_v2")]) == 1
    assert UsageRecord.objects.filter(job=job, kind="voice_synthesis").count() == 1
    assert job.params["used_persona_voice"] is True
    # The narration lived only as long as the job needed it.
    assert job.result["narration_file"] == ""
    assert stored_under("private/avatar_previews") == [job.result["preview_file"]]
