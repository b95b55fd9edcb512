"""What media we keep and for how long. Samples and photos are biometric data: a sample lives
only until training succeeds (or is abandoned), generated files only while a row points at them."""

import posixpath
from datetime import timedelta

from django.core.files.storage import default_storage
from django.utils import timezone

from media_pipeline.models import ACTIVE_JOB_STATUSES, JobKind, JobStatus, MediaAsset, MediaJob
from personas.models import WritingPersona

PERSONA_FILE_FIELDS = [
    "voice_training_audio",
    "voice_preview",
    "avatar_image",
    "avatar_portrait",
    "avatar_preview",
    "avatar_background_image",
]
JOB_FILE_KEYS = ["preview_file", "photo_file", "portrait_file", "narration_file"]


def all_stored_files(folder: str = "") -> list[str]:
    if folder and not default_storage.exists(folder):
        return []
    dirs, files = default_storage.listdir(folder)
    names = [posixpath.join(folder, f) for f in files]
    for d in dirs:
        names += all_stored_files(posixpath.join(folder, d))
    return names


def referenced_files(*, since) -> set[str]:
    """Files some row still needs: persona media, library assets, jobs younger than `since` or
    still running, and a retrained voice or recreated avatar waiting for the user's decision
    (however long the user takes)."""
    names = set()
    for row in WritingPersona.objects.values_list(*PERSONA_FILE_FIELDS):
        names.update(row)
    names.update(MediaAsset.objects.values_list("file", flat=True))
    jobs = (
        MediaJob.objects.filter(created_at__gte=since)
        | MediaJob.objects.filter(status__in=ACTIVE_JOB_STATUSES)
        | MediaJob.objects.filter(status=JobStatus.SUCCEEDED, result__candidate=True)
    )
    for created_at, input_file, params, result in jobs.values_list("created_at", "input_file", "params", "result"):
        decided = result.get("approved") or result.get("discarded")
        if created_at < since and result.get("candidate") and decided:
            continue  # an old candidate the user already decided on; its kept files are the persona's
        names.add(input_file)
        names.update(str(d.get(k, "")) for d in (params, result) for k in JOB_FILE_KEYS)
    names.discard("")
    return names


def purge_abandoned_samples(*, before, dry_run: bool) -> list[str]:
    """Voice samples uploaded but never trained: kept no longer than the retention window."""
    deleted = []
    training = MediaJob.objects.filter(kind=JobKind.VOICE_CLONE, status__in=ACTIVE_JOB_STATUSES)
    personas = WritingPersona.objects.exclude(voice_training_audio="").exclude(pk__in=training.values("persona_id"))
    for persona in personas:
        name = persona.voice_training_audio.name
        if default_storage.exists(name) and default_storage.get_modified_time(name) > before:
            continue
        deleted.append(name)
        if not dry_run:
            default_storage.delete(name)
            persona.voice_training_audio = ""
            persona.save(update_fields=["voice_training_audio"])
            MediaJob.objects.filter(input_file=name).update(input_file="")
    return deleted


def purge_media(*, dry_run: bool = False, older_than_hours: float = 24) -> list[str]:
    before = timezone.now() - timedelta(hours=older_than_hours)
    deleted = purge_abandoned_samples(before=before, dry_run=dry_run)
    keep = referenced_files(since=before) - set(deleted)
    for name in all_stored_files():
        if name in keep or name in deleted or default_storage.get_modified_time(name) > before:
            continue
        deleted.append(name)
        if not dry_run:
            default_storage.delete(name)
    return deleted
