import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.urls import reverse

from media_pipeline.models import JobKind, JobStatus, MediaAsset, MediaJob
from personas.models import PlatformAdaptation, Tier, TrainingStatus, WritingPersona
from tests.conftest import make_user


def test_sign_up_logs_in_and_starts_on_the_free_tier(client, db):
    response = client.post(
        reverse("signup"),
        {
            "username": "writer",
            "email": "Writer@Example.com",
            "password1": "a sturdy passphrase 42",
            "password2": "a sturdy passphrase 42",
        },
    )
    assert response.status_code == 302
    user = User.objects.get(username="writer")
    assert user.email == "writer@example.com"
    assert user.subscription.tier == Tier.FREE
    assert client.get(reverse("home")).status_code == 302  # logged in: sent on to onboarding


def test_sign_up_refuses_a_duplicate_email_and_changes_nothing(client, owner):
    response = client.post(
        reverse("signup"),
        {
            "username": "copy",
            "email": owner.email.upper(),
            "password1": "x sturdy pass 42",
            "password2": "x sturdy pass 42",
        },
    )
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert not User.objects.filter(username="copy").exists()


def test_log_in_and_log_out(client, owner):
    response = client.post(reverse("login"), {"username": "owner", "password": "correct horse battery staple"})
    assert response.status_code == 302
    assert client.get(reverse("privacy:overview")).status_code == 200
    client.post(reverse("logout"))
    response = client.get(reverse("privacy:overview"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_wrong_password_is_refused(client, owner):
    response = client.post(reverse("login"), {"username": "owner", "password": "nope"})
    assert response.status_code == 200
    assert "correct username and password" in response.content.decode()


def test_persona_pages_need_login(client, db):
    response = client.get(reverse("personas:dashboard"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


ADMIN_PAGES = [
    "admin:index",
    "admin:personas_writingpersona_changelist",
    "admin:personas_subscription_changelist",
    "admin:personas_consentrecord_changelist",
    "admin:media_pipeline_mediajob_changelist",
    "admin:media_pipeline_usagerecord_changelist",
    "admin:media_pipeline_mediaasset_changelist",
]


@pytest.mark.parametrize("name", ADMIN_PAGES)
def test_admin_pages_load_for_staff(client, staff_user, owner, name):
    WritingPersona.objects.create(user=owner, name="Owner persona")
    client.force_login(staff_user)
    response = client.get(reverse(name), {"q": "owner@example.com"} if name.endswith("changelist") else {})
    assert response.status_code == 200


@pytest.mark.parametrize("name", ADMIN_PAGES)
def test_admin_pages_are_refused_to_users(owner_client, name):
    response = owner_client.get(reverse(name))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def saved(name: str, data: bytes = b"stored media") -> str:
    return default_storage.save(name, ContentFile(data))


def test_admin_change_pages_of_records_with_files_render_without_exposing_them(client, staff_user, owner):
    persona = WritingPersona.objects.create(
        user=owner,
        name="Owner persona",
        voice_training_audio=saved("private/voice_samples/sample.mp3"),
        voice_preview=saved("private/voice_previews/preview.wav"),
        avatar_image=saved("private/avatar_photos/photo.jpg"),
        avatar_portrait=saved("private/avatar_photos/portrait.png"),
        avatar_preview=saved("private/avatar_previews/preview.mp4"),
        avatar_background_image=saved("private/avatar_backgrounds/background.png"),
    )
    job = MediaJob.objects.create(
        user=owner,
        persona=persona,
        kind=JobKind.VOICE_CLONE,
        provider="offline",
        status=JobStatus.SUCCEEDED,
        input_file=saved("private/job_inputs/sample"),
        result={"preview_file": saved("private/voice_previews/candidate.wav")},
    )
    asset = MediaAsset.objects.create(
        user=owner, persona=persona, kind="video", file=saved("private/generated/clip.mp4"), mime_type="video/mp4"
    )
    client.force_login(staff_user)
    pages = {
        "admin:personas_writingpersona_change": persona.pk,
        "admin:media_pipeline_mediajob_change": job.pk,
        "admin:media_pipeline_mediaasset_change": asset.pk,
    }
    for name, pk in pages.items():
        response = client.get(reverse(name, args=[pk]))
        assert response.status_code == 200, name
        page = response.content.decode()
        assert "Currently" in page and settings.MEDIA_URL + "private" not in page
    persona_page = client.get(reverse("admin:personas_writingpersona_change", args=[persona.pk])).content.decode()
    # Files with an ownership-checked view link to it; the others link nowhere.
    assert f'href="{reverse("media:persona", args=[persona.pk, "voice-preview"])}"' in persona_page
    assert f'href="{reverse("media:persona", args=[persona.pk, "avatar-portrait"])}"' in persona_page
    assert 'href="#">private/voice_samples/sample.mp3' in persona_page
    asset_page = client.get(reverse("admin:media_pipeline_mediaasset_change", args=[asset.pk])).content.decode()
    assert f'href="{reverse("media:asset", args=[asset.pk])}"' in asset_page
    assert default_storage.url(job.result["preview_file"]) == reverse("media:job_preview", args=[job.pk])
    # The staff member is not the owner: the authorised views still answer 404, never the file.
    assert client.get(reverse("media:asset", args=[asset.pk])).status_code == 404


def test_staff_change_a_tier_in_admin(client, staff_user, owner):
    client.force_login(staff_user)
    sub = owner.subscription
    url = reverse("admin:personas_subscription_change", args=[sub.pk])
    response = client.post(url, {"user": owner.pk, "tier": Tier.ENTERPRISE})
    assert response.status_code == 302
    sub.refresh_from_db()
    assert sub.tier == Tier.ENTERPRISE


def test_admin_filters_personas_by_status_and_tier(client, staff_user, owner):
    WritingPersona.objects.create(user=owner, name="Owner persona")
    client.force_login(staff_user)
    url = reverse("admin:personas_writingpersona_changelist")
    assert "Owner persona" in client.get(url, {"user__subscription__tier": "pro"}).content.decode()
    assert "Owner persona" not in client.get(url, {"voice_training_status": "ready"}).content.decode()


def test_admin_retrain_action_refuses_without_a_sample(client, staff_user, owner):
    persona = WritingPersona.objects.create(user=owner, name="Owner persona")
    client.force_login(staff_user)
    response = client.post(
        reverse("admin:personas_writingpersona_changelist"),
        {"action": "retrain_voice", "_selected_action": [persona.pk]},
        follow=True,
    )
    assert "No voice sample is stored" in response.content.decode()
    assert not persona.jobs.exists()


def test_a_ready_voice_needs_a_voice_id(owner):
    persona = WritingPersona.objects.create(user=owner, name="p")
    persona.voice_training_status = TrainingStatus.READY
    with pytest.raises(IntegrityError), transaction.atomic():
        persona.save()
    persona.voice_id = "alw1xabcdef1234567"
    persona.save()
    assert persona.voice_ready


@pytest.mark.parametrize("field,value", [("voice_speed", 3.0), ("voice_pitch", 13), ("voice_volume", 0)])
def test_voice_settings_are_range_checked_by_the_database(owner, field, value):
    with pytest.raises(IntegrityError), transaction.atomic():
        WritingPersona.objects.create(user=owner, name="p", **{field: value})


def test_one_adaptation_per_platform(owner):
    persona = WritingPersona.objects.create(user=owner, name="p")
    PlatformAdaptation.objects.create(persona=persona, platform="linkedin")
    with pytest.raises(IntegrityError), transaction.atomic():
        PlatformAdaptation.objects.create(persona=persona, platform="linkedin")


def test_opting_out_hides_a_ready_voice(owner):
    persona = WritingPersona.objects.create(
        user=owner, name="p", voice_id="alw1xabcdef1234567", voice_training_status=TrainingStatus.READY
    )
    assert persona.voice_ready
    persona.voice_opted_out = True
    assert not persona.voice_ready


def test_each_new_user_gets_exactly_one_subscription(db):
    user = make_user("someone")
    user.save()
    assert user.subscription.tier == Tier.FREE
