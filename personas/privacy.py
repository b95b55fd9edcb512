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

from media_pipeline.models import JobKind, MediaAsset, MediaJob
from media_pipeline.providers import get_voice_provider
from media_pipeline.providers.base import ProviderError
from media_pipeline.retention import JOB_FILE_KEYS, PERSONA_FILE_FIELDS
from media_pipeline.services import cancel_job
from personas.models import Capability, ConsentRecord, TrainingStatus, WritingPersona

log = logging.getLogger(__name__)


@dataclass
class DeletionReport:
    """What a deletion removed, shown back to the user as confirmation."""

    files: int = 0
    provider_voices: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def count(self, label: str, n: int) -> None:
        if n:
            self.rows[label] = self.rows.get(label, 0) + n

    def lines(self) -> list[str]:
        lines = [f"{n} {label}" for label, n in self.rows.items()]
        if self.files:
            lines.append(f"{self.files} stored file(s)")
        lines += [f"voice {v} deleted at its provider" for v in self.provider_voices]
        return lines + self.notes


def delete_stored(names, report: DeletionReport) -> None:
    for name in set(filter(None, names)):
        if default_storage.exists(name):
            default_storage.delete(name)
            report.files += 1


def delete_provider_voice(provider_name: str, voice_id: str, report: DeletionReport) -> None:
    if not provider_name or not voice_id:
        return
    try:
        get_voice_provider(provider_name).delete(voice_id)
        report.provider_voices.append(voice_id)
    except (ProviderError, KeyError) as exc:
        # The voice expires at the provider when unused; say so rather than pretend.
        log.warning("could not delete voice %s at %s: %s", voice_id, provider_name, exc)
        report.notes.append(f"voice {voice_id} could not be deleted at {provider_name} now; it expires unused there")


def job_files(jobs) -> list[str]:
    names = []
    for job in jobs:
        names.append(job.input_file.name)
        names += [str(d.get(k, "")) for d in (job.params, job.result) for k in JOB_FILE_KEYS]
    return names


def delete_everything(*, user) -> DeletionReport:
    """Delete every persona of the user with its media, jobs, usage links and provider voices.
    The account and its billing history (usage rows, without media) stay."""
    report = DeletionReport()
    personas = list(WritingPersona.objects.filter(user=user))
    jobs = list(MediaJob.objects.filter(user=user))
    candidate_voices = [
        (j.provider, j.result["voice_id"]) for j in jobs if j.result.get("candidate") and not j.result.get("discarded")
    ]
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
    for persona in personas:
        delete_provider_voice(persona.voice_provider, persona.voice_id, report)
    for provider, voice_id in candidate_voices:
        delete_provider_voice(provider, voice_id, report)
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
    jobs = list(persona.jobs.filter(kind__in=kinds))
    for job in jobs:
        if job.is_active:
            cancel_job(job)
    names = job_files(jobs)
    for job in jobs:
        job.input_file = ""
        job.params = {k: v for k, v in job.params.items() if k not in JOB_FILE_KEYS}
        job.result = {k: v for k, v in job.result.items() if k not in JOB_FILE_KEYS}
        job.save(update_fields=["input_file", "params", "result"])
    return names


def delete_voice(*, persona: WritingPersona) -> DeletionReport:
    """Delete the cloned voice everywhere: provider voices (approved and candidates), sample, previews."""
    report = DeletionReport()
    voices = {(persona.voice_provider, persona.voice_id)}
    voices |= {
        (j.provider, j.result["voice_id"])
        for j in persona.jobs.filter(kind=JobKind.VOICE_CLONE)
        if j.result.get("voice_id") and j.result.get("cloned") and not j.result.get("discarded")
    }
    with transaction.atomic():
        names = _forget_job_files(persona, VOICE_JOB_KINDS, report)
        names += [persona.voice_training_audio.name, persona.voice_preview.name]
        persona.voice_id = persona.voice_provider = ""
        persona.voice_training_status = TrainingStatus.NOT_TRAINED
        persona.voice_training_audio = persona.voice_preview = ""
        persona.voice_trained_at = persona.voice_approved_at = persona.voice_activated_at = None
        persona.voice_profile = {}
        persona.save()
    delete_stored(names, report)
    for provider_name, voice_id in voices:
        delete_provider_voice(provider_name, voice_id, report)
    report.notes.append("your voice is deleted; content now uses the standard voice")
    return report


def delete_avatar(*, persona: WritingPersona) -> DeletionReport:
    """Delete the avatar: photo, portrait, previews and unapproved candidates."""
    report = DeletionReport()
    with transaction.atomic():
        names = _forget_job_files(persona, AVATAR_JOB_KINDS, report)
        names += [persona.avatar_image.name, persona.avatar_portrait.name, persona.avatar_preview.name]
        persona.avatar_id = persona.avatar_provider = ""
        persona.avatar_training_status = TrainingStatus.NOT_TRAINED
        persona.avatar_image = persona.avatar_portrait = persona.avatar_preview = ""
        persona.avatar_created_at = persona.avatar_approved_at = None
        persona.save()
    delete_stored(names, report)
    report.notes.append("your photo and avatar are deleted")
    return report


def active_consent(user, capability: str) -> ConsentRecord | None:
    return ConsentRecord.objects.filter(user=user, capability=capability, withdrawn_at__isnull=True).first()


def withdraw_consent(*, user, capability: str) -> DeletionReport:
    """Withdrawing consent deletes the capability's biometric data and stops its use."""
    report = DeletionReport()
    delete = delete_voice if capability == Capability.VOICE else delete_avatar
    for persona in WritingPersona.objects.filter(user=user):
        sub = delete(persona=persona)
        report.files += sub.files
        report.provider_voices += sub.provider_voices
        report.notes += [n for n in sub.notes if n not in report.notes]
        for label, n in sub.rows.items():
            report.count(label, n)
    withdrawn = ConsentRecord.objects.filter(user=user, capability=capability, withdrawn_at__isnull=True).update(
        withdrawn_at=timezone.now()
    )
    report.count("consent record(s) withdrawn", withdrawn)
    return report
