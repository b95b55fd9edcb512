"""Privacy services: data export, consent withdrawal and deleting everything.

Voice samples and face photos are biometric data (GDPR art. 9, BIPA): what we hold is listed,
exportable and deletable by the user at any time, including the voices stored at providers."""

import json
import logging
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field

from django.core.files.storage import default_storage
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from media_pipeline.models import ACTIVE_JOB_STATUSES, JobKind, MediaAsset, MediaJob
from media_pipeline.providers import get_voice_provider
from media_pipeline.providers.base import ProviderError
from media_pipeline.retention import JOB_FILE_KEYS, PERSONA_FILE_FIELDS
from media_pipeline.services import cancel_job
from personas.models import Capability, ConsentRecord, TrainingStatus, WritingPersona
from personas.studio import ContentType

log = logging.getLogger(__name__)


# Providers that keep a cloned voice on their side (deleted there through their API); every
# other voice provider keeps nothing remotely, so its voices exist only in our database.
PROVIDER_LABELS = {"minimax": "MiniMax", "wavespeed": "WaveSpeed", "offline": "offline", "gtts": "gTTS"}
REMOTE_VOICE_PROVIDERS = {"minimax"}
MINIMAX_UNUSED_VOICE_DAYS = 7  # MiniMax deletes a cloned voice that is not used for this long
WAVESPEED_UPLOAD_RETENTION_DAYS = 7  # WaveSpeed's stated retention of uploaded media
WAVESPEED_UPLOADS_NOTE = (
    "the {what} sent to WaveSpeed for rendering cannot be deleted through WaveSpeed's API; "
    f"WaveSpeed states that it keeps uploaded files for {WAVESPEED_UPLOAD_RETENTION_DAYS} days"
)


def provider_label(name: str) -> str:
    return PROVIDER_LABELS.get(name, name)


@dataclass
class DeletionReport:
    """What a deletion removed, shown back to the user as confirmation."""

    files: int = 0
    provider_voices: list[tuple[str, str]] = field(default_factory=list)  # (provider, voice id) deleted remotely
    local_voices: list[str] = field(default_factory=list)  # voices that only ever existed here
    provider_samples: dict[str, int] = field(default_factory=dict)  # uploads of samples deleted remotely
    rows: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def count(self, label: str, n: int) -> None:
        if n:
            self.rows[label] = self.rows.get(label, 0) + n

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def merge(self, other: "DeletionReport") -> None:
        self.files += other.files
        self.provider_voices += other.provider_voices
        self.local_voices += other.local_voices
        for provider, n in other.provider_samples.items():
            self.provider_samples[provider] = self.provider_samples.get(provider, 0) + n
        for label, n in other.rows.items():
            self.count(label, n)
        for text in other.notes:
            self.note(text)

    def lines(self) -> list[str]:
        lines = [f"{n} {label}" for label, n in self.rows.items()]
        if self.files:
            lines.append(f"{self.files} stored file(s)")
        lines += [f"voice {v} deleted at {provider_label(p)}" for p, v in self.provider_voices]
        lines += [
            f"voice {v} deleted (an offline voice: it was kept only on this server, no provider had it)"
            for v in self.local_voices
        ]
        lines += [
            f"{n} uploaded copy(ies) of your voice sample deleted at {provider_label(p)}"
            for p, n in self.provider_samples.items()
        ]
        return lines + self.notes


def delete_stored(names, report: DeletionReport) -> None:
    for name in set(filter(None, names)):
        if default_storage.exists(name):
            default_storage.delete(name)
            report.files += 1


def delete_provider_voice(provider_name: str, voice_id: str, report: DeletionReport) -> bool:
    """Delete one cloned voice; True once nothing of it is left anywhere."""
    if not provider_name or not voice_id:
        return True
    label = provider_label(provider_name)
    try:
        get_voice_provider(provider_name).delete(voice_id)
    except (ProviderError, KeyError) as exc:
        log.warning("could not delete voice %s at %s: %s", voice_id, provider_name, exc)
        expiry = (
            f"; MiniMax deletes a cloned voice that is not used for {MINIMAX_UNUSED_VOICE_DAYS} days"
            if provider_name == "minimax"
            else ""
        )
        report.note(f"voice {voice_id} could not be deleted at {label} now; we never use it again{expiry}")
        return False
    if provider_name in REMOTE_VOICE_PROVIDERS:
        report.provider_voices.append((provider_name, voice_id))
    else:
        # Offline voices are settings in our own database, which the caller has cleared.
        report.local_voices.append(voice_id)
    return True


def delete_provider_samples(jobs, report: DeletionReport) -> None:
    """Uploads of a sample still at the provider (a training that was stopped before it ended)."""
    for job in jobs:
        uploads = job.result.get("provider_uploads") or []
        if job.kind != JobKind.VOICE_CLONE or not uploads:
            continue
        try:
            provider = get_voice_provider(job.provider)
        except KeyError:
            continue
        for file_id in uploads:
            try:
                provider.delete_sample(file_id)
            except ProviderError as exc:
                log.warning("could not delete provider sample %s: %s", file_id, exc.message)
                continue
            if job.provider in REMOTE_VOICE_PROVIDERS:
                report.provider_samples[job.provider] = report.provider_samples.get(job.provider, 0) + 1


def cloned_voices(personas, jobs) -> dict[tuple[str, str], list[int]]:
    """Every cloned voice not already deleted: each persona's current voice and every voice a
    training job cloned (a retrain's candidate included) that was not discarded or deleted since.
    Maps (provider, voice id) to the jobs that made it."""
    voices: dict[tuple[str, str], list[int]] = {}
    for persona in personas:
        if persona.voice_provider and persona.voice_id:
            voices.setdefault((persona.voice_provider, persona.voice_id), [])
    for job in jobs:
        result = job.result
        if job.kind != JobKind.VOICE_CLONE or not result.get("voice_id") or not result.get("cloned"):
            continue
        if result.get("discarded") or result.get("voice_deleted"):
            continue
        voices.setdefault((job.provider, result["voice_id"]), []).append(job.pk)
    return voices


def used_wavespeed(personas, jobs) -> bool:
    return any(p.avatar_provider == "wavespeed" for p in personas) or any(
        j.provider == "wavespeed" or j.params.get("avatar_provider") == "wavespeed" for j in jobs
    )


def stop_active_jobs(jobs_queryset, report: DeletionReport) -> None:
    """Cancel running jobs first, so no worker keeps making media or provider calls for them."""
    stopped = sum(cancel_job(job) for job in jobs_queryset.filter(status__in=ACTIVE_JOB_STATUSES))
    report.count("running job(s) stopped", stopped)


def job_files(jobs) -> list[str]:
    names = []
    for job in jobs:
        names.append(job.input_file.name)
        names += [str(d.get(k, "")) for d in (job.params, job.result) for k in JOB_FILE_KEYS]
    return names


def delete_everything(*, user) -> DeletionReport:
    """Delete every persona of the user with its media, jobs, consent records, onboarding answers
    and provider voices. The account and its billing history (usage rows, without media) stay."""
    report = DeletionReport()
    stop_active_jobs(MediaJob.objects.filter(user=user), report)
    personas = list(WritingPersona.objects.filter(user=user))
    jobs = list(MediaJob.objects.filter(user=user))
    voices = cloned_voices(personas, jobs)
    wavespeed = used_wavespeed(personas, jobs)
    names = [getattr(p, f).name for p in personas for f in PERSONA_FILE_FIELDS]
    names += job_files(jobs) + list(MediaAsset.objects.filter(user=user).values_list("file", flat=True))
    with transaction.atomic():
        report.count(
            "media library item(s)",
            MediaAsset.objects.filter(user=user).delete()[1].get("media_pipeline.MediaAsset", 0),
        )
        report.count("job record(s)", MediaJob.objects.filter(user=user).delete()[1].get("media_pipeline.MediaJob", 0))
        report.count("consent record(s)", ConsentRecord.objects.filter(user=user).delete()[0])
        report.count(
            "persona(s)", WritingPersona.objects.filter(user=user).delete()[1].get("personas.WritingPersona", 0)
        )
        onboarding = getattr(user, "onboarding", None)
        if onboarding is not None:
            onboarding.delete()
            report.count("onboarding record(s)", 1)
    delete_stored(names, report)
    for provider_name, voice_id in voices:
        delete_provider_voice(provider_name, voice_id, report)
    delete_provider_samples(jobs, report)
    if wavespeed:
        report.note(WAVESPEED_UPLOADS_NOTE.format(what="copies of your portrait and narration audio"))
    return report


def export_user_data(*, user):
    """A zip of the user's personas, settings, consent records, usage and media (decrypted),
    as a temporary file (rewound) so a large media library never sits in memory."""
    buffer = tempfile.TemporaryFile()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:

        def write_json(path: str, data) -> None:
            archive.writestr(path, json.dumps(data, cls=DjangoJSONEncoder, indent=2))

        def write_media(path: str, name: str) -> None:
            if name and default_storage.exists(name):
                with default_storage.open(name) as f, archive.open(path, "w") as out:
                    shutil.copyfileobj(f, out, 1024 * 1024)

        write_json("account.json", {"username": user.username, "email": user.email, "tier": user.subscription.tier})
        onboarding = getattr(user, "onboarding", None)
        if onboarding is not None:
            write_json("onboarding.json", model_to_dict(onboarding))
        for persona in WritingPersona.objects.filter(user=user).prefetch_related("adaptations"):
            folder = f"personas/{persona.pk}"
            data = model_to_dict(persona, exclude=PERSONA_FILE_FIELDS)
            data["platform_adaptations"] = [model_to_dict(a, exclude=["persona"]) for a in persona.adaptations.all()]
            write_json(f"{folder}/persona.json", data)
            for field_name in PERSONA_FILE_FIELDS:
                name = getattr(persona, field_name).name
                write_media(f"{folder}/{field_name}{_suffix(name)}", name)
        write_json(
            "consent_records.json",
            list(
                ConsentRecord.objects.filter(user=user).values(
                    "capability", "text", "text_version", "ip_address", "user_agent", "granted_at", "withdrawn_at"
                )
            ),
        )
        write_json(
            "usage.json",
            list(
                user.usage_records.values("created_at", "kind", "content_type", "provider", "media_seconds", "cost_usd")
            ),
        )
        for asset in MediaAsset.objects.filter(user=user):
            write_media(
                f"media_library/{asset.pk}-{asset.content_type or asset.kind}{_suffix(asset.file.name)}",
                asset.file.name,
            )
    buffer.seek(0)
    return buffer


def _suffix(name: str) -> str:
    tail = name.rsplit("/", 1)[-1]
    return "." + tail.rsplit(".", 1)[1] if "." in tail else ""


VOICE_JOB_KINDS = [JobKind.SAMPLE_CHECK, JobKind.VOICE_CLONE]
AVATAR_JOB_KINDS = [JobKind.PHOTO_CHECK, JobKind.AVATAR_CREATE]


def _forget_job_files(persona: WritingPersona, kinds, report: DeletionReport) -> list[str]:
    """Stop the capability's running jobs and detach their files; job rows stay as billing history."""
    stop_active_jobs(persona.jobs.filter(kind__in=kinds), report)
    jobs = list(persona.jobs.filter(kind__in=kinds))
    names = job_files(jobs)
    for job in jobs:
        job.input_file = ""
        job.params = {k: v for k, v in job.params.items() if k not in JOB_FILE_KEYS}
        job.result = {k: v for k, v in job.result.items() if k not in JOB_FILE_KEYS}
        job.save(update_fields=["input_file", "params", "result"])
    return names


def _delete_voice_recordings(persona: WritingPersona, report: DeletionReport) -> list[str]:
    """The hidden voice-sample recordings made in the persona's own voice (never shown in the
    library) and any such recording still being made."""
    stop_active_jobs(persona.jobs.filter(kind=JobKind.RENDER, content_type=ContentType.VOICE_SAMPLE), report)
    recordings = MediaAsset.objects.filter(
        persona=persona, content_type=ContentType.VOICE_SAMPLE, used_persona_voice=True
    )
    names = list(recordings.values_list("file", flat=True))
    report.count("voice sample recording(s)", recordings.delete()[1].get("media_pipeline.MediaAsset", 0))
    return names


def delete_voice(*, persona: WritingPersona) -> DeletionReport:
    """Delete the cloned voice everywhere: provider voices (approved and candidates), sample
    (and its uploads at the provider), previews and the recordings made in the voice."""
    report = DeletionReport()
    with transaction.atomic():
        names = _forget_job_files(persona, VOICE_JOB_KINDS, report)
        clone_jobs = list(persona.jobs.filter(kind=JobKind.VOICE_CLONE))
        voices = cloned_voices([persona], clone_jobs)
        names += _delete_voice_recordings(persona, report)
        names += [persona.voice_training_audio.name, persona.voice_preview.name]
        persona.voice_id = persona.voice_provider = ""
        persona.voice_training_status = TrainingStatus.NOT_TRAINED
        persona.voice_training_audio = persona.voice_preview = ""
        persona.voice_trained_at = persona.voice_approved_at = persona.voice_activated_at = None
        persona.voice_profile = {}
        persona.save()
    delete_stored(names, report)
    for (provider_name, voice_id), job_ids in voices.items():
        if delete_provider_voice(provider_name, voice_id, report):
            # Remembered so a later "delete everything" does not report this voice a second time.
            for job in MediaJob.objects.filter(pk__in=job_ids):
                job.result = {**job.result, "voice_deleted": True}
                job.save(update_fields=["result"])
    delete_provider_samples(clone_jobs, report)
    if used_wavespeed([], persona.jobs.filter(kind=JobKind.RENDER)):
        report.note(WAVESPEED_UPLOADS_NOTE.format(what="copies of narration audio"))
    report.note("your voice is deleted; content now uses the standard voice")
    report.note("videos and narrations you made in your voice stay in your media library until you delete them")
    return report


def delete_avatar(*, persona: WritingPersona) -> DeletionReport:
    """Delete the avatar: photo, portrait, previews and unapproved candidates."""
    report = DeletionReport()
    with transaction.atomic():
        names = _forget_job_files(persona, AVATAR_JOB_KINDS, report)
        wavespeed = used_wavespeed([persona], persona.jobs.all())
        names += [persona.avatar_image.name, persona.avatar_portrait.name, persona.avatar_preview.name]
        persona.avatar_id = persona.avatar_provider = ""
        persona.avatar_training_status = TrainingStatus.NOT_TRAINED
        persona.avatar_image = persona.avatar_portrait = persona.avatar_preview = ""
        persona.avatar_created_at = persona.avatar_approved_at = None
        persona.save()
    delete_stored(names, report)
    if wavespeed:
        report.note(WAVESPEED_UPLOADS_NOTE.format(what="copies of your portrait"))
    report.note("your photo and avatar are deleted")
    return report


def active_consent(user, capability: str) -> ConsentRecord | None:
    return ConsentRecord.objects.filter(user=user, capability=capability, withdrawn_at__isnull=True).first()


def withdraw_consent(*, user, capability: str) -> DeletionReport:
    """Withdrawing consent deletes the capability's biometric data and stops its use."""
    report = DeletionReport()
    delete = delete_voice if capability == Capability.VOICE else delete_avatar
    for persona in WritingPersona.objects.filter(user=user):
        report.merge(delete(persona=persona))
    withdrawn = ConsentRecord.objects.filter(user=user, capability=capability, withdrawn_at__isnull=True).update(
        withdrawn_at=timezone.now()
    )
    report.count("consent record(s) withdrawn", withdrawn)
    return report
