import io
import json
import zipfile

import pytest
import responses
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse

from media_pipeline.models import JobKind, JobStatus, MediaAsset, MediaJob, UsageRecord
from personas.models import Capability, ConsentRecord, TrainingStatus, WritingPersona

MINIMAX = "https://api.minimax.io"
OK = {"base_resp": {"status_code": 0, "status_msg": "success"}}


def stored(content: bytes, name: str) -> str:
    return default_storage.save(name, ContentFile(content))


@pytest.fixture
def persona(owner, settings):
    settings.MINIMAX_API_KEY = "test-key"
    persona = WritingPersona.objects.create(
        user=owner,
        name="Owner persona",
        voice_id="alw1xvoice12345",
        voice_provider="minimax",
        voice_training_status=TrainingStatus.READY,
        avatar_id="av1x123",
        avatar_provider="offline",
        avatar_training_status=TrainingStatus.READY,
    )
    persona.voice_preview.name = stored(b"voice preview", "private/voice_previews/p.mp3")
    persona.avatar_image.name = stored(b"photo", "private/avatar_photos/photo.jpg")
    persona.avatar_portrait.name = stored(b"portrait", "private/avatar_photos/portrait.png")
    persona.avatar_preview.name = stored(b"avatar video", "private/avatar_previews/a.mp4")
    persona.save()
    for capability in Capability.values:
        ConsentRecord.objects.create(
            user=owner, persona=persona, capability=capability, text="I agree", text_version="1", ip_address="127.0.0.1"
        )
    asset_file = stored(b"linkedin video", "private/generated/v.mp4")
    MediaAsset.objects.create(
        user=owner, persona=persona, kind="video", content_type="linkedin", file=asset_file, mime_type="video/mp4"
    )
    job = MediaJob.objects.create(
        user=owner,
        persona=persona,
        kind=JobKind.VOICE_CLONE,
        provider="minimax",
        status=JobStatus.SUCCEEDED,
        result={
            "voice_id": "alw1xcandidate99",
            "cloned": True,
            "candidate": True,
            "preview_file": stored(b"c", "private/voice_previews/c.mp3"),
        },
    )
    UsageRecord.objects.create(
        user=owner, persona=persona, job=job, kind="voice_clone", provider="minimax", idempotency_key="k1"
    )
    return persona


def files_on_disk(media_root) -> list:
    return [p for p in media_root.rglob("*") if p.is_file()]


def test_export_contains_persona_consent_usage_and_decrypted_media(owner_client, persona):
    response = owner_client.get(reverse("privacy:export"))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = archive.namelist()
    data = json.loads(archive.read(f"personas/{persona.pk}/persona.json"))
    assert data["voice_id"] == "alw1xvoice12345"
    assert archive.read(f"personas/{persona.pk}/avatar_image.jpg") == b"photo"
    assert {c["capability"] for c in json.loads(archive.read("consent_records.json"))} == {"voice", "avatar"}
    assert json.loads(archive.read("usage.json"))[0]["kind"] == "voice_clone"
    assert any(n.startswith("media_library/") and archive.read(n) == b"linkedin video" for n in names)


def test_export_holds_only_the_users_own_data(client, other_user, persona):
    client.force_login(other_user)
    archive = zipfile.ZipFile(io.BytesIO(b"".join(client.get(reverse("privacy:export")).streaming_content)))
    assert not any(n.startswith("personas/") or n.startswith("media_library/") for n in archive.namelist())
    assert json.loads(archive.read("consent_records.json")) == []


@responses.activate
def test_delete_everything_removes_rows_files_and_provider_voices(owner_client, persona, private_media_root):
    responses.post(f"{MINIMAX}/v1/delete_voice", json=OK)
    response = owner_client.post(reverse("privacy:delete_everything"), {"confirm": "DELETE"}, follow=True)
    page = response.content.decode()
    assert "All your persona data is deleted." in page
    assert "1 persona(s)" in page and "voice alw1xvoice12345 deleted at MiniMax" in page
    assert files_on_disk(private_media_root) == []
    assert not WritingPersona.objects.exists() and not MediaAsset.objects.exists() and not MediaJob.objects.exists()
    assert not ConsentRecord.objects.exists()
    deleted_voices = {json.loads(c.request.body)["voice_id"] for c in responses.calls}
    assert deleted_voices == {"alw1xvoice12345", "alw1xcandidate99"}
    assert UsageRecord.objects.count() == 1  # billing history stays, without media


def test_delete_everything_needs_the_typed_confirmation(owner_client, persona):
    response = owner_client.post(reverse("privacy:delete_everything"), {"confirm": "yes"}, follow=True)
    assert "Type DELETE" in response.content.decode()
    assert WritingPersona.objects.filter(pk=persona.pk).exists()


@responses.activate
def test_withdrawing_voice_consent_deletes_the_voice_only(owner_client, persona):
    responses.post(f"{MINIMAX}/v1/delete_voice", json=OK)
    response = owner_client.post(reverse("privacy:withdraw", args=["voice"]), follow=True)
    assert "Voice consent withdrawn" in response.content.decode()
    persona.refresh_from_db()
    assert persona.voice_training_status == TrainingStatus.NOT_TRAINED and not persona.voice_id
    assert not persona.voice_preview
    assert persona.avatar_ready and default_storage.exists(persona.avatar_image.name)
    assert ConsentRecord.objects.get(capability="voice").withdrawn_at is not None
    assert ConsentRecord.objects.get(capability="avatar").withdrawn_at is None
    job = persona.jobs.get()
    assert "preview_file" not in job.result


def test_withdrawing_avatar_consent_deletes_photo_and_avatar(owner_client, persona, private_media_root):
    owner_client.post(reverse("privacy:withdraw", args=["avatar"]))
    persona.refresh_from_db()
    assert not persona.avatar_id and not persona.avatar_image and not persona.avatar_portrait
    remaining = {p.name for p in files_on_disk(private_media_root)}
    assert not {"photo.jpg", "portrait.png", "a.mp4"} & remaining


@responses.activate
def test_a_provider_that_cannot_delete_is_reported_honestly(owner_client, persona):
    responses.post(f"{MINIMAX}/v1/delete_voice", json={"base_resp": {"status_code": 1004, "status_msg": "auth"}})
    response = owner_client.post(reverse("privacy:withdraw", args=["voice"]), follow=True)
    assert "could not be deleted at MiniMax now" in response.content.decode()


@pytest.mark.parametrize(
    "name,args,method",
    [
        ("privacy:overview", [], "get"),
        ("privacy:export", [], "get"),
        ("privacy:withdraw", ["voice"], "post"),
        ("privacy:delete_everything", [], "post"),
    ],
)
def test_privacy_pages_need_login(client, persona, name, args, method):
    response = getattr(client, method)(reverse(name, args=args), {"confirm": "DELETE"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert WritingPersona.objects.filter(pk=persona.pk, voice_training_status=TrainingStatus.READY).exists()


def test_another_users_actions_never_touch_this_persona(client, other_user, persona):
    client.force_login(other_user)
    client.post(reverse("privacy:delete_everything"), {"confirm": "DELETE"})
    client.post(reverse("privacy:withdraw", args=["voice"]))
    persona.refresh_from_db()
    assert persona.voice_ready and persona.avatar_ready


def test_posts_without_csrf_token_are_refused(persona, owner):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(owner)
    response = csrf_client.post(reverse("privacy:delete_everything"), {"confirm": "DELETE"})
    assert response.status_code == 403
    assert WritingPersona.objects.filter(pk=persona.pk).exists()


# --- What deleting stops and finds -----------------------------------------------------------


def clone_job(persona, voice_id, status=JobStatus.SUCCEEDED, **result):
    return MediaJob.objects.create(
        user=persona.user,
        persona=persona,
        kind=JobKind.VOICE_CLONE,
        provider="minimax",
        status=status,
        result={"voice_id": voice_id, **result},
    )


def minimax_calls(path):
    return [json.loads(c.request.body) for c in responses.calls if c.request.url.endswith(path)]


@responses.activate
def test_delete_everything_stops_running_jobs_before_deleting_them(owner, persona, monkeypatch):
    from personas import privacy

    responses.post(f"{MINIMAX}/v1/delete_voice", json=OK)
    running = [
        MediaJob.objects.create(
            user=owner, persona=persona, kind=JobKind.RENDER, provider="offline", status=JobStatus.RUNNING
        ),
        clone_job(persona, "alw1xtraining01", status=JobStatus.WAITING_PROVIDER),
    ]
    seen = []
    real_cancel = privacy.cancel_job

    def cancel_and_watch(job):
        cancelled = real_cancel(job)
        seen.append((job.pk, MediaJob.objects.get(pk=job.pk).status))
        return cancelled

    monkeypatch.setattr(privacy, "cancel_job", cancel_and_watch)
    report = privacy.delete_everything(user=owner)
    # Each running job was cancelled while its row still existed (so its worker sees the cancel).
    assert sorted(seen) == sorted((job.pk, JobStatus.CANCELLED) for job in running)
    assert "2 running job(s) stopped" in report.lines()
    assert not MediaJob.objects.exists()


@responses.activate
def test_delete_everything_and_delete_voice_delete_every_cloned_voice_by_one_rule(owner, persona):
    from personas import privacy

    responses.post(f"{MINIMAX}/v1/delete_voice", json=OK)
    clone_job(persona, "alw1xfailedlater", status=JobStatus.FAILED, cloned=True)  # cloned, then the job failed
    clone_job(persona, "alw1xdiscarded1", cloned=True, candidate=True, discarded=True)  # deleted when discarded
    clone_job(persona, "alw1xnevermade1", status=JobStatus.FAILED)  # the clone call never succeeded
    privacy.delete_everything(user=owner)
    everything = {c["voice_id"] for c in minimax_calls("/v1/delete_voice")}
    assert everything == {"alw1xvoice12345", "alw1xcandidate99", "alw1xfailedlater"}


@responses.activate
def test_delete_voice_uses_the_same_rule_and_never_deletes_a_voice_twice(owner, persona):
    from personas import privacy

    responses.post(f"{MINIMAX}/v1/delete_voice", json=OK)
    clone_job(persona, "alw1xfailedlater", status=JobStatus.FAILED, cloned=True)
    clone_job(persona, "alw1xdiscarded1", cloned=True, candidate=True, discarded=True)
    report = privacy.delete_voice(persona=persona)
    deleted = {c["voice_id"] for c in minimax_calls("/v1/delete_voice")}
    assert deleted == {"alw1xvoice12345", "alw1xcandidate99", "alw1xfailedlater"}
    assert "voice alw1xcandidate99 deleted at MiniMax" in report.lines()
    responses.calls.reset()
    later = privacy.delete_everything(user=owner)
    assert minimax_calls("/v1/delete_voice") == []
    assert not [line for line in later.lines() if "deleted at MiniMax" in line]


@responses.activate
def test_a_voice_whose_deletion_failed_is_tried_again_later(owner, persona):
    from personas import privacy

    responses.post(f"{MINIMAX}/v1/delete_voice", json={"base_resp": {"status_code": 1000, "status_msg": "busy"}})
    privacy.delete_voice(persona=persona)
    responses.replace(responses.POST, f"{MINIMAX}/v1/delete_voice", json=OK)
    responses.calls.reset()
    report = privacy.delete_everything(user=owner)
    assert {c["voice_id"] for c in minimax_calls("/v1/delete_voice")} == {"alw1xcandidate99"}
    assert "voice alw1xcandidate99 deleted at MiniMax" in report.lines()


def voice_recording(persona, *, in_persona_voice: bool) -> MediaAsset:
    return MediaAsset.objects.create(
        user=persona.user,
        persona=persona,
        kind="audio",
        content_type="voice_sample",
        title="Voice sample",
        file=stored(b"ID3 sample", "private/generated/sample.mp3"),
        mime_type="audio/mpeg",
        used_persona_voice=in_persona_voice,
    )


@responses.activate
@pytest.mark.parametrize("how", ["delete voice", "withdraw consent"])
def test_deleting_the_voice_deletes_the_hidden_recordings_made_in_it(owner_client, owner, persona, how):
    from personas import privacy

    responses.post(f"{MINIMAX}/v1/delete_voice", json=OK)
    recording = voice_recording(persona, in_persona_voice=True)
    standard = voice_recording(persona, in_persona_voice=False)
    making = MediaJob.objects.create(
        user=owner,
        persona=persona,
        kind=JobKind.RENDER,
        content_type="voice_sample",
        provider="offline",
        status=JobStatus.QUEUED,
    )
    if how == "delete voice":
        report = privacy.delete_voice(persona=persona)
    else:
        report = privacy.withdraw_consent(user=owner, capability=Capability.VOICE)
    assert not MediaAsset.objects.filter(pk=recording.pk).exists()
    assert not default_storage.exists(recording.file.name)
    assert MediaAsset.objects.filter(pk=standard.pk).exists()  # the standard voice is nobody's biometric data
    assert MediaAsset.objects.filter(content_type="linkedin").exists()  # the library is the user's to manage
    making.refresh_from_db()
    assert making.status == JobStatus.CANCELLED  # no new recording appears in the deleted voice
    assert "1 voice sample recording(s)" in report.lines()


def test_an_offline_voice_is_not_reported_as_deleted_at_a_provider(owner, persona):
    from personas import privacy

    persona.voice_provider, persona.voice_id = "offline", "offline7voice7"
    persona.save()
    MediaJob.objects.filter(persona=persona, kind=JobKind.VOICE_CLONE).update(provider="offline")
    lines = privacy.delete_voice(persona=persona).lines()
    assert "voice offline7voice7 deleted (an offline voice: it was kept only on this server, no provider had it)" in (
        lines
    )
    assert not [line for line in lines if "at its provider" in line or "at offline" in line]


def test_wavespeed_uploads_are_reported_as_not_deletable(owner, persona):
    from personas import privacy

    persona.avatar_provider = "wavespeed"
    persona.save()
    MediaJob.objects.create(
        user=owner,
        persona=persona,
        kind=JobKind.RENDER,
        provider="wavespeed",
        status=JobStatus.SUCCEEDED,
        params={"avatar_provider": "wavespeed"},
    )
    avatar = privacy.delete_avatar(persona=persona).lines()
    assert any("copies of your portrait sent to WaveSpeed" in line and "cannot be deleted" in line for line in avatar)
    assert any("keeps uploaded files for 7 days" in line for line in avatar)
    with responses.RequestsMock() as mock:
        mock.post(f"{MINIMAX}/v1/delete_voice", json=OK)
        everything = privacy.delete_everything(user=owner).lines()
    assert any("portrait and narration audio sent to WaveSpeed" in line for line in everything)


@responses.activate
def test_sample_uploads_still_at_the_provider_are_deleted_there(owner, persona):
    """A training whose own clean-up could not reach the provider when it ended."""
    from personas import privacy

    responses.post(f"{MINIMAX}/v1/delete_voice", json=OK)
    responses.post(f"{MINIMAX}/v1/files/delete", json={"file_id": 123, **OK})
    clone_job(persona, "alw1xtraining01", status=JobStatus.FAILED, provider_uploads=["123"])
    report = privacy.delete_everything(user=owner)
    assert minimax_calls("/v1/files/delete") == [{"file_id": 123, "purpose": "voice_clone"}]
    assert "1 uploaded copy(ies) of your voice sample deleted at MiniMax" in report.lines()
