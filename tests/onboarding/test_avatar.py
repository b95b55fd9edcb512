"""Step 6, avatar: tier gate, upload errors, the photo check, creation with live progress,
failure and retry, approval, recreation and skipping. Jobs run in the real worker."""

import pytest
from django.core.files.storage import default_storage
from django.utils.html import escape

from media_pipeline.models import JobKind, JobStatus
from media_pipeline.providers.base import ProviderError
from media_pipeline.uploads import upload_too_large_message
from personas.models import ConsentRecord, Tier
from tests import photo_factory
from tests.conftest import make_user
from tests.onboarding.conftest import photo_upload, url
from tests.onboarding.test_voice import POLLING, nothing_changed, persona_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def upload(client, django_capture_on_commit_callbacks):
    def post(persona, image=None, name="me.jpg", **fields):
        fields.setdefault("consent", "on")
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                url("avatar_photo", persona),
                {"photo": photo_upload(image, name), **fields},
                headers={"HX-Request": "true"},
            )

    return post


@pytest.fixture
def act(client, django_capture_on_commit_callbacks):
    def post(name, persona, *args):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(url(name, persona, *args), headers={"HX-Request": "true"})
        assert response.status_code == 200
        return response.content.decode()

    return post


def avatar_section(client, persona) -> str:
    return client.get(url("avatar", persona), headers={"HX-Request": "true"}).content.decode()


def latest(persona, kind):
    return persona.jobs.filter(kind=kind).first()


@pytest.mark.parametrize("tier", [Tier.FREE, Tier.BASIC])
def test_free_and_basic_see_an_upgrade_prompt_and_cannot_upload(client, upload, tier):
    persona = persona_for(make_user("small", tier))
    client.force_login(persona.user)
    page = avatar_section(client, persona)
    assert 'data-state="locked"' in page and "part of the Pro, Enterprise plans" in page
    assert 'name="photo"' not in page
    response = upload(persona)
    assert "Avatars are part of the Pro and Enterprise plans." in response.content.decode()
    assert not persona.jobs.exists() and not persona.consents.exists()


def test_missing_photo(owner_client, persona):
    response = owner_client.post(url("avatar_photo", persona), {"consent": "on"}, headers={"HX-Request": "true"})
    assert "Choose a photo or take one with your camera first." in response.content.decode()
    nothing_changed(persona)


def test_wrong_file_type(owner_client, persona, upload):
    response = upload(persona, name="me.gif")
    assert (
        "That file is not a photo we can use. Upload one of: JPG, JPEG, PNG, WEBP, HEIC, HEIF."
        in response.content.decode()
    )
    nothing_changed(persona)


def test_too_large(owner_client, persona, upload, settings):
    settings.MAX_UPLOAD_BYTES = 20_000
    response = upload(persona)
    assert upload_too_large_message() in response.content.decode()
    nothing_changed(persona)


def test_missing_consent(owner_client, persona, upload):
    response = upload(persona, consent="")
    assert "Please agree to the avatar consent before uploading your photo." in response.content.decode()
    nothing_changed(persona)


@pytest.mark.parametrize(
    ("make_image", "message"),
    [
        (lambda: photo_factory.coffee(), "We could not find a face."),
        (lambda: photo_factory.two_astronauts(), "We found 2 faces; use a photo with only you in it."),
        (lambda: photo_factory.astronaut(400), "its shorter side must be at least 512 px"),
        (lambda: photo_factory.blurred(photo_factory.astronaut(), 8), "blurry"),
        (lambda: photo_factory.scaled_brightness(photo_factory.astronaut(), 0.2), "too dark"),
        (
            lambda: photo_factory.scaled_brightness(photo_factory.astronaut(), 1.6),
            "The photo is too bright; avoid direct sun or flash on your face.",
        ),
        (
            lambda: photo_factory.astronaut(900),
            "Your face is 171 px tall; it must be at least 200 px: use a closer or larger photo.",
        ),
    ],
)
def test_photo_problems_are_shown_and_block_creation(owner_client, persona, upload, run_jobs, act, make_image, message):
    upload(persona, make_image())
    assert 'data-state="checking"' in avatar_section(owner_client, persona)
    run_jobs()
    page = avatar_section(owner_client, persona)
    assert 'data-state="invalid"' in page and message in page
    assert "Create my avatar" not in page and "Use this photo anyway" not in page
    check = latest(persona, JobKind.PHOTO_CHECK)
    errors = " ".join(c["message"] for c in check.result["report"]["errors"])
    assert message in errors and not check.result.get("photo_file")
    page = act("avatar_create", persona, check.pk)
    assert f'<p class="errorlist" role="alert">{escape("This photo cannot be used: " + errors)}</p>' in page
    assert latest(persona, JobKind.AVATAR_CREATE) is None


def test_a_soft_photo_can_be_used_anyway(owner_client, persona, upload, run_jobs, act):
    upload(persona, photo_factory.blurred(photo_factory.astronaut(), 1.5))
    run_jobs()
    page = avatar_section(owner_client, persona)
    assert 'data-state="warnings"' in page and "Usable, with warnings" in page
    warning = '<li class="warning" data-check="sharpness" data-level="warning">'
    assert warning + "The photo is a little soft; a sharper photo gives a better avatar.</li>" in page
    assert "Use this photo anyway" in page and "Create my avatar" not in page
    page = act("avatar_create", persona, latest(persona, JobKind.PHOTO_CHECK).pk)
    assert 'data-state="training"' in page
    run_jobs()
    assert 'data-state="ready"' in avatar_section(owner_client, persona)


def test_the_caption_says_which_voice_the_avatar_preview_speaks_in(owner_client, persona, upload, run_jobs, act):
    create(persona, upload, run_jobs, act)
    run_jobs()
    made = latest(persona, JobKind.AVATAR_CREATE)
    assert made.params["used_persona_voice"] is False
    # The voice becomes ready after the avatar was made: its preview still speaks the standard voice.
    persona.refresh_from_db()
    persona.voice_training_status, persona.voice_id, persona.voice_provider = "ready", "alw1xvoice7", "offline"
    persona.save()
    page = avatar_section(owner_client, persona)
    assert (
        'data-avatar-voice="standard">Your avatar, speaking in a standard voice '
        "(it was made before your own voice was ready: recreate it to hear your voice):"
    ) in page
    assert "in your voice" not in page
    # Recreated now, it speaks in the persona voice (here the offline voice match).
    act("avatar_recreate", persona)
    run_jobs()
    remade = latest(persona, JobKind.AVATAR_CREATE)
    assert remade.status == JobStatus.SUCCEEDED and remade.params["used_persona_voice"] is True
    page = avatar_section(owner_client, persona)
    assert 'data-avatar-voice="offline_match">Your avatar, speaking in your offline voice match:' in page
    preview = owner_client.get(url("preview", persona)).content.decode()
    assert '<p data-avatar-voice="offline_match">Your avatar, speaking in your offline voice match.</p>' in preview
    # A cloned persona voice is "your voice".
    persona.refresh_from_db()
    persona.voice_provider = "minimax"
    persona.save()
    assert 'data-avatar-voice="persona">Your avatar, speaking in your voice:' in avatar_section(owner_client, persona)
    # When the job did not record its voice, the caption makes no claim about it.
    remade.params.pop("used_persona_voice")
    remade.save()
    assert 'data-avatar-voice="">Your avatar:' in avatar_section(owner_client, persona)


def create(persona, upload, run_jobs, act, image=None):
    upload(persona, image)
    run_jobs()
    return act("avatar_create", persona, latest(persona, JobKind.PHOTO_CHECK).pk)


def test_creation_shows_progress_then_preview_then_approval(owner_client, persona, upload, run_jobs, act):
    upload(persona)
    run_jobs()
    page = avatar_section(owner_client, persona)
    assert 'data-state="checked"' in page and "We found your face." in page
    assert "Faces found" in page and "Sharpness" in page
    consent = ConsentRecord.objects.get(persona=persona, capability="avatar")
    assert consent.text_version and consent.ip_address == "127.0.0.1"
    page = act("avatar_create", persona, latest(persona, JobKind.PHOTO_CHECK).pk)
    assert 'data-state="training"' in page and POLLING in page and "<progress" in page
    run_jobs()
    page = avatar_section(owner_client, persona)
    assert 'data-state="ready"' in page and POLLING not in page
    assert f"/media/persona/{persona.pk}/avatar-preview/" in page
    # GTTS is off in tests and no voice is trained: the avatar speaks with the offline voice.
    assert 'data-avatar-voice="standard">Your avatar, speaking in a standard voice until your own is ready:' in page
    page = act("avatar_approve", persona)
    assert 'data-state="approved"' in page
    persona.refresh_from_db()
    assert persona.avatar_approved_at is not None and persona.avatar_ready
    assert owner_client.get(f"/media/persona/{persona.pk}/avatar-preview/").status_code == 200


def test_recreating_keeps_the_approved_avatar_until_approved(owner_client, persona, upload, run_jobs, act):
    create(persona, upload, run_jobs, act)
    run_jobs()
    act("avatar_approve", persona)
    persona.refresh_from_db()
    first = persona.avatar_id
    page = act("avatar_recreate", persona)
    assert 'data-state="retraining"' in page
    assert "Your current avatar stays in use until you approve the new one." in page
    run_jobs()
    job = latest(persona, JobKind.AVATAR_CREATE)
    page = avatar_section(owner_client, persona)
    assert 'data-state="candidate"' in page and f"/media/job/{job.pk}/preview/" in page
    persona.refresh_from_db()
    assert persona.avatar_id == first
    act("avatar_approve", persona)
    persona.refresh_from_db()
    assert persona.avatar_id == job.result["avatar_id"] != first


def test_keeping_the_current_avatar_discards_the_new_one(owner_client, persona, upload, run_jobs, act):
    create(persona, upload, run_jobs, act)
    run_jobs()
    act("avatar_approve", persona)
    persona.refresh_from_db()

    def current():
        return persona.avatar_id, persona.avatar_image.name, persona.avatar_portrait.name, persona.avatar_preview.name

    kept = current()
    act("avatar_recreate", persona)
    run_jobs()
    job = latest(persona, JobKind.AVATAR_CREATE)
    assert "Keep my current avatar" in avatar_section(owner_client, persona)

    page = act("avatar_discard", persona)
    assert 'data-state="approved"' in page and "Keep my current avatar" not in page
    persona.refresh_from_db()
    job.refresh_from_db()
    assert current() == kept
    assert all(default_storage.exists(name) for name in kept[1:])  # recreated from the same photo: kept
    assert job.result["discarded"] and owner_client.get(f"/media/job/{job.pk}/preview/").status_code == 404
    assert "There is no new avatar waiting for a decision." in act("avatar_discard", persona)


def test_keeping_the_current_avatar_deletes_the_new_photo_and_recreate_uses_the_kept_one(
    owner_client, persona, upload, run_jobs, act
):
    create(persona, upload, run_jobs, act)
    run_jobs()
    act("avatar_approve", persona)
    persona.refresh_from_db()
    kept_photo = persona.avatar_image.name
    create(persona, upload, run_jobs, act, photo_factory.astronaut(1400))
    run_jobs()
    new_photo = latest(persona, JobKind.AVATAR_CREATE).params["photo_file"]
    assert new_photo != kept_photo and default_storage.exists(new_photo)

    act("avatar_discard", persona)
    assert not default_storage.exists(new_photo) and default_storage.exists(kept_photo)
    assert not latest(persona, JobKind.PHOTO_CHECK).result["photo_file"]
    # Recreating now starts from the photo of the avatar in use, not from the deleted one.
    page = act("avatar_recreate", persona)
    assert 'data-state="retraining"' in page
    run_jobs()
    recreated = latest(persona, JobKind.AVATAR_CREATE)
    assert recreated.status == JobStatus.SUCCEEDED, recreated.error
    assert recreated.params["photo_file"] == kept_photo


def test_failed_creation_shows_why_and_can_be_retried(owner_client, persona, upload, run_jobs, act, monkeypatch):
    from media_pipeline.providers import local

    def refuse(self, *args, **kwargs):
        raise ProviderError("The video service could not animate this photo.")

    with monkeypatch.context() as patch:
        patch.setattr(local.OfflineAvatarProvider, "start_render", refuse)
        create(persona, upload, run_jobs, act)
        run_jobs()
    page = avatar_section(owner_client, persona)
    assert 'data-state="failed"' in page and "The video service could not animate this photo." in page
    page = act("avatar_recreate", persona)
    assert 'data-state="training"' in page
    run_jobs()
    assert 'data-state="ready"' in avatar_section(owner_client, persona)


def test_creation_can_be_cancelled(owner_client, persona, upload, run_jobs, act):
    create(persona, upload, run_jobs, act)
    page = act("avatar_cancel", persona)
    assert 'data-state="failed"' in page and "You cancelled this." in page
    assert latest(persona, JobKind.AVATAR_CREATE).status == JobStatus.CANCELLED


def test_skipping_the_avatar(owner_client, persona, act):
    page = act("avatar_skip", persona)
    assert 'data-state="skipped"' in page
    persona.refresh_from_db()
    assert persona.avatar_skipped_at is not None
    assert 'data-state="skipped"' in avatar_section(owner_client, persona)
