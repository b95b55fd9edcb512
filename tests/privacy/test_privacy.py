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
    assert "1 persona(s)" in page and "voice alw1xvoice12345 deleted at its provider" in page
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
    assert "could not be deleted at minimax now" in response.content.decode()


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
