import os
import time
from decimal import Decimal
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from media_pipeline.models import MediaAsset, UsageRecord
from media_pipeline.storage import read_bytes
from personas.models import TrainingStatus, WritingPersona
from tests.conftest import make_user


def run(*args):
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def age(name, hours):
    path = default_storage.path(name)
    past = time.time() - hours * 3600
    os.utime(path, (past, past))


@pytest.fixture
def persona(owner):
    return WritingPersona.objects.create(user=owner, name="Owner persona")


def test_purge_media_dry_run_lists_and_keeps_then_deletes_orphans_and_abandoned_samples(persona):
    kept = default_storage.save("private/generated/kept.mp4", ContentFile(b"video"))
    MediaAsset.objects.create(user=persona.user, persona=persona, kind="video", file=kept, mime_type="video/mp4")
    orphan = default_storage.save("private/generated/orphan.mp4", ContentFile(b"orphan"))
    fresh_orphan = default_storage.save("private/generated/uploading.mp4", ContentFile(b"in flight"))
    persona.voice_training_audio.save("sample", ContentFile(b"voice"), save=True)
    sample = persona.voice_training_audio.name
    for name in (kept, orphan, sample):
        age(name, 48)

    out, _ = run("purge_media", "--dry-run")
    assert f"would delete {orphan}" in out and f"would delete {sample}" in out
    assert "would delete 2 file(s)" in out
    assert all(default_storage.exists(n) for n in (kept, orphan, sample, fresh_orphan))

    out, _ = run("purge_media")
    assert "deleted 2 file(s)" in out
    assert not default_storage.exists(orphan) and not default_storage.exists(sample)
    assert default_storage.exists(kept) and default_storage.exists(fresh_orphan)
    persona.refresh_from_db()
    assert not persona.voice_training_audio


def test_media_is_encrypted_at_rest(db):
    name = default_storage.save("private/generated/secret.wav", ContentFile(b"RIFF plain audio"))
    with open(default_storage.path(name), "rb") as f:
        assert b"plain audio" not in f.read()
    assert read_bytes(name) == b"RIFF plain audio"


def test_media_keys_rotate(settings, db):
    from cryptography.fernet import Fernet

    from media_pipeline.storage import media_fernet

    old_key = Fernet.generate_key().decode()
    new_key = Fernet.generate_key().decode()
    settings.MEDIA_ENCRYPTION_KEYS = [old_key]
    media_fernet.cache_clear()
    name = default_storage.save("private/generated/rotate.wav", ContentFile(b"rotate me"))
    settings.MEDIA_ENCRYPTION_KEYS = [new_key, old_key]
    media_fernet.cache_clear()
    out, _ = run("rotate_media_keys")
    assert "re-encrypted 1 file(s)" in out
    settings.MEDIA_ENCRYPTION_KEYS = [new_key]  # the old key can now be retired
    media_fernet.cache_clear()
    try:
        assert read_bytes(name) == b"rotate me"
    finally:
        media_fernet.cache_clear()


def test_usage_report_prints_costs_and_adoption(persona):
    persona.voice_id, persona.voice_training_status = "alw1xabcdefgh12", TrainingStatus.READY
    persona.save()
    make_user("basic-user", "basic")
    UsageRecord.objects.create(
        user=persona.user,
        persona=persona,
        kind="voice_clone",
        provider="minimax",
        tier="pro",
        cost_usd=Decimal("0.75"),
        idempotency_key="a",
    )
    UsageRecord.objects.create(
        user=persona.user,
        persona=persona,
        kind="voice_synthesis",
        provider="minimax",
        tier="pro",
        media_seconds=90,
        cost_usd=Decimal("0.03"),
        idempotency_key="b",
    )
    out, _ = run("usage_report")
    assert "owner@example.com" in out
    assert "0.7800" in out  # by user
    assert "minimax" in out and "1.50" in out  # 90 s = 1.5 minutes
    assert "voice_completion_pct     100.0 (target > 60%)" in out


def test_retrain_and_recreate_need_a_target_and_explain_missing_media(persona):
    with pytest.raises(CommandError):
        run("retrain_voice")
    _, err = run("retrain_voice", "--user", "owner@example.com")
    assert "No voice sample is stored" in err
    _, err = run("recreate_avatar", "--persona", str(persona.pk), "--provider", "wavespeed")
    assert "No photo is stored" in err
    assert not persona.jobs.exists()


def test_sweep_jobs_command_reports_counts(db):
    out, _ = run("sweep_jobs")
    assert out.strip() == "requeued 0, failed 0"


def test_purge_media_keeps_a_retrain_and_a_recreate_waiting_for_the_users_decision(persona):
    from django.utils import timezone

    from media_pipeline.models import JobKind, JobStatus, MediaJob

    voice_preview = default_storage.save("private/voice_previews/candidate.wav", ContentFile(b"voice"))
    photo = default_storage.save("private/avatar_photos/photo.jpg", ContentFile(b"photo"))
    portrait = default_storage.save("private/avatar_photos/portrait.png", ContentFile(b"portrait"))
    avatar_preview = default_storage.save("private/avatar_previews/candidate.mp4", ContentFile(b"video"))
    decided_preview = default_storage.save("private/voice_previews/discarded.wav", ContentFile(b"old"))
    for name in (voice_preview, photo, portrait, avatar_preview, decided_preview):
        age(name, 24 * 30)
    done = {"user": persona.user, "persona": persona, "status": JobStatus.SUCCEEDED}
    jobs = [
        MediaJob(
            **done,
            kind=JobKind.VOICE_CLONE,
            provider="offline",
            result={"candidate": True, "voice_id": "v1", "preview_file": voice_preview},
        ),
        MediaJob(
            **done,
            kind=JobKind.AVATAR_CREATE,
            provider="offline",
            params={"photo_file": photo, "portrait_file": portrait},
            result={"candidate": True, "preview_file": avatar_preview},
        ),
        MediaJob(
            **done,
            kind=JobKind.VOICE_CLONE,
            provider="offline",
            result={"candidate": True, "discarded": True, "preview_file": decided_preview},
        ),
    ]
    MediaJob.objects.bulk_create(jobs)
    MediaJob.objects.update(created_at=timezone.now() - timezone.timedelta(days=30))

    out, _ = run("purge_media")
    assert "deleted 1 file(s)" in out and not default_storage.exists(decided_preview)
    assert all(default_storage.exists(n) for n in (voice_preview, photo, portrait, avatar_preview))
