import os
import re
import time
import tracemalloc
from decimal import Decimal
from io import StringIO

import pytest
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.management import CommandError, call_command

from media_pipeline.models import MediaAsset, UsageRecord
from media_pipeline.storage import (
    CHUNK,
    CHUNKED_V1_MAGIC,
    HEADER,
    LENGTH,
    MAGIC,
    MediaDecryptionError,
    local_copy,
    media_fernet,
    read_bytes,
)
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


def test_the_sweeper_also_purges_so_samples_never_outlive_the_retention_without_cron(persona, monkeypatch):
    persona.voice_training_audio.save("sample", ContentFile(b"voice"), save=True)
    sample = persona.voice_training_audio.name
    age(sample, 25)
    out, _ = run("sweep_jobs")
    assert "purged" not in out and default_storage.exists(sample)
    out, _ = run("sweep_jobs", "--purge")
    assert "purged 1 file(s)" in out and not default_storage.exists(sample)

    # In a loop the purge runs on its own, slower interval: here at the first round only.
    from media_pipeline.management.commands import sweep_jobs

    rounds = iter(range(3))

    def sleep(_seconds):
        if next(rounds) == 2:
            raise KeyboardInterrupt  # stop the loop after three rounds

    monkeypatch.setattr(sweep_jobs.time, "sleep", sleep)
    out = StringIO()
    with pytest.raises(KeyboardInterrupt):
        call_command("sweep_jobs", "--loop", "1", "--purge-every", "3600", stdout=out)
    assert out.getvalue().count("requeued 0, failed 0") == 3 and out.getvalue().count("purged 0 file(s)") == 1


def test_media_is_encrypted_at_rest(db):
    name = default_storage.save("private/generated/secret.wav", ContentFile(b"RIFF plain audio"))
    with open(default_storage.path(name), "rb") as f:
        assert b"plain audio" not in f.read()
    assert read_bytes(name) == b"RIFF plain audio"


@pytest.fixture
def keys(settings):
    """Set MEDIA_ENCRYPTION_KEYS (newest first) for the rest of the test."""

    def use(*names):
        settings.MEDIA_ENCRYPTION_KEYS = list(names)
        media_fernet.cache_clear()

    yield use
    media_fernet.cache_clear()


def stored(data: bytes, name: str = "private/generated/clip.mp4") -> str:
    return default_storage.save(name, ContentFile(data))


def raw(name: str) -> bytes:
    with open(default_storage.path(name), "rb") as f:
        return f.read()


def overwrite(name: str, data: bytes) -> None:
    with open(default_storage.path(name), "wb") as f:
        f.write(data)


def records(name: str) -> tuple[bytes, list[bytes]]:
    """The header and the length-prefixed token records of an encrypted file."""
    data = raw(name)
    start = len(MAGIC) + HEADER.size
    header, rest, out = data[:start], data[start:], []
    while rest:
        (length,) = LENGTH.unpack(rest[:4])
        out.append(rest[: 4 + length])
        rest = rest[4 + length :]
    return header, out


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 777])
def test_files_of_any_size_round_trip_through_encrypted_chunks(db, size):
    data = os.urandom(size)
    name = stored(data)
    assert raw(name).startswith(MAGIC) and (size < 64 or data[:64] not in raw(name))
    assert len(records(name)[1]) == max(1, -(-size // CHUNK))  # one token per chunk, at least one
    assert read_bytes(name) == data
    assert default_storage.size(name) == size


def test_an_opened_file_seeks_and_reads_across_chunk_boundaries(db):
    data = os.urandom(3 * CHUNK + 100)
    with default_storage.open(stored(data)) as f:
        assert f.size == len(data)
        f.seek(CHUNK - 5)
        assert f.read(10) == data[CHUNK - 5 : CHUNK + 5] and f.tell() == CHUNK + 5
        f.seek(-50, os.SEEK_END)
        assert f.read() == data[-50:] and f.read(10) == b""
        assert b"".join(f.chunks()) == data


def test_an_upload_streamed_from_its_temporary_file_is_encrypted_not_moved(db):
    data = os.urandom(2 * CHUNK + 5)
    upload = TemporaryUploadedFile("sample.mp3", "audio/mpeg", len(data), None)
    upload.write(data)
    name = default_storage.save("private/voice_samples/sample.mp3", upload)
    assert os.path.exists(upload.temporary_file_path())  # read from, not moved into the media folder
    upload.close()
    assert data[:64] not in raw(name) and read_bytes(name) == data


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda head, recs: head + b"".join(recs)[:-10], "ends inside chunk 2 (truncated)"),
        (lambda head, recs: head + b"".join(recs[:2]), "chunks are missing at its end (truncated)"),
        (lambda head, recs: head[:10], "ends inside its header"),
        (lambda head, recs: head, "no chunks (truncated)"),
        (lambda head, recs: head + recs[1] + recs[0] + recs[2], "chunk 0 belongs elsewhere"),
        (lambda head, recs: head + b"".join(recs) + recs[2], "goes on after its last chunk"),
    ],
    ids=["cut-inside-a-chunk", "last-chunk-dropped", "cut-header", "no-chunks", "reordered", "chunk-appended"],
)
def test_a_truncated_or_rearranged_file_is_refused_with_a_clear_error(db, damage, message):
    name = stored(os.urandom(2 * CHUNK + 1000))
    overwrite(name, damage(*records(name)))
    with pytest.raises(MediaDecryptionError, match=re.escape(message)) as caught:
        read_bytes(name)
    assert name in str(caught.value)


def test_a_tampered_chunk_is_refused_when_it_is_read(db):
    data = os.urandom(3 * CHUNK)
    name = stored(data)
    head, recs = records(name)
    middle = bytearray(recs[1])
    middle[100] ^= 1
    overwrite(name, head + recs[0] + bytes(middle) + recs[2])
    with default_storage.open(name) as f:
        assert f.read(CHUNK) == data[:CHUNK]  # chunks before the damage still read
        with pytest.raises(MediaDecryptionError, match="chunk 1 fails its integrity check"):
            f.read(10)


def test_a_chunk_copied_from_another_file_is_refused(db):
    first, second = stored(os.urandom(2 * CHUNK)), stored(os.urandom(2 * CHUNK))
    head, recs = records(first)
    overwrite(first, head + recs[0] + records(second)[1][1])
    with pytest.raises(MediaDecryptionError, match="chunk 1 belongs elsewhere"):
        read_bytes(first)


def test_files_written_in_the_earlier_formats_are_still_read(db):
    whole = os.urandom(CHUNK + 10)
    single = stored(b"")
    overwrite(single, media_fernet().encrypt(whole))  # one Fernet token for the whole file
    v1 = stored(b"")
    tokens = [media_fernet().encrypt(whole[i : i + CHUNK]) for i in range(0, len(whole), CHUNK)]
    overwrite(v1, CHUNKED_V1_MAGIC + b"".join(LENGTH.pack(len(t)) + t for t in tokens))
    for name in (single, v1):
        assert read_bytes(name) == whole and default_storage.size(name) == len(whole)
        with default_storage.open(name) as f:
            f.seek(CHUNK)
            assert f.read() == whole[CHUNK:]
    overwrite(single, b"plain bytes")
    with pytest.raises(MediaDecryptionError, match="not an encrypted media file"):
        read_bytes(single)


def test_media_keys_rotate(keys, db):
    from cryptography.fernet import Fernet

    old_key = Fernet.generate_key().decode()
    new_key = Fernet.generate_key().decode()
    keys(old_key)
    name = default_storage.save("private/generated/rotate.wav", ContentFile(b"rotate me"))
    keys(new_key, old_key)
    out, _ = run("rotate_media_keys")
    assert "re-encrypted 1 file(s)" in out
    keys(new_key)  # the old key can now be retired
    assert read_bytes(name) == b"rotate me"


def test_rotation_re_encrypts_every_chunk_and_upgrades_earlier_formats(keys, db):
    from cryptography.fernet import Fernet

    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    keys(old_key)
    big = os.urandom(3 * CHUNK + 5)
    chunked = stored(big)
    legacy = stored(b"")
    overwrite(legacy, media_fernet().encrypt(b"an old single-token file"))
    mode = os.stat(default_storage.path(chunked)).st_mode
    keys(new_key, old_key)
    out, _ = run("rotate_media_keys")
    assert "re-encrypted 2 file(s)" in out
    keys(new_key)
    assert read_bytes(chunked) == big and read_bytes(legacy) == b"an old single-token file"
    assert raw(legacy).startswith(MAGIC) and len(records(chunked)[1]) == 4
    assert os.stat(default_storage.path(chunked)).st_mode == mode
    assert not any(n.endswith(".rotating") for n in default_storage.listdir("private/generated")[1])


def test_rotation_reports_files_no_key_opens_and_leaves_them_as_they_were(keys, db):
    from cryptography.fernet import Fernet

    keys(Fernet.generate_key().decode())
    lost = stored(b"written under a key that is gone")
    before = raw(lost)
    keys(Fernet.generate_key().decode())
    stored(b"readable")
    with pytest.raises(CommandError, match=r"1 file\(s\) could not be re-encrypted") as caught:
        run("rotate_media_keys")
    assert lost in str(caught.value) and "fails its integrity check" in str(caught.value)
    assert raw(lost) == before


def test_saving_and_reading_a_20_mb_file_takes_a_few_chunks_of_memory(db, tmp_path):
    """Memory, not time: the whole file is never held, whatever its size."""
    source = tmp_path / "upload.bin"
    with open(source, "wb") as f:
        for _ in range(20):
            f.write(os.urandom(1_000_000))
    peaks = {}
    tracemalloc.start()
    try:
        with open(source, "rb") as f:
            name = default_storage.save("private/voice_samples/big.mp3", File(f, name="big.mp3"))
        peaks["save"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        with local_copy(name) as path:
            peaks["local_copy"] = tracemalloc.get_traced_memory()[1]
            assert os.path.getsize(path) == 20_000_000
        tracemalloc.reset_peak()
        with default_storage.open(name) as f:
            f.seek(10_000_000)
            f.read(100)
        peaks["range read"] = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert os.path.getsize(default_storage.path(name)) > 20_000_000
    for step, peak in peaks.items():
        assert peak < 12 * CHUNK + 2_000_000, f"{step} peaked at {peak / 2**20:.1f} MiB"


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
