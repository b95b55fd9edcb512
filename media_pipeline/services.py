"""Jobs, metering and the voice/avatar flows. Views and tasks call these; nothing else writes
job state or usage rows.

A job moves queued -> running -> (waiting_provider -> running)* -> succeeded | failed | cancelled.
A worker claims a job with a conditional UPDATE and holds a lease; the sweeper re-queues jobs
whose lease ran out (the worker died) and fails jobs past their deadline. Every later status
change is conditional too (only while the job is still running and still this step's), so a job
the user cancelled, the sweeper failed or the user deleted is never overwritten: the worker stops
and undoes what its step made (`JobLost`)."""

import logging
import math
import random
import string
import uuid
from contextlib import nullcontext
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, connections, router, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.module_loading import import_string

from media_pipeline.models import ACTIVE_JOB_STATUSES, JobKind, JobStatus, MediaJob, UsageRecord
from media_pipeline.providers import AVATAR_PROVIDERS, get_avatar_provider, get_voice_provider
from media_pipeline.providers.base import ProviderError, SynthesisResult
from media_pipeline.storage import delete_file, local_copy, read_bytes
from personas.models import TrainingStatus, WritingPersona

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 4
# A heartbeat within this many seconds of the last one is not written (unless it lengthens the
# lease): the lease runs for minutes, so a write per call would only add database round trips.
HEARTBEAT_SECONDS = 2
PREVIEW_LINE = "Hello! This is my voice, ready to narrate everything I write."
CENT = Decimal("0.0001")


class PipelineError(Exception):
    """A user-facing refusal: the message says what to do."""


class JobLost(Exception):
    """The job is no longer this worker's to finish: cancelled, failed by the sweeper at its
    deadline, deleted, or taken over by another worker after this one's lease ran out."""


# --- Costs: the same code gives the estimate before and the charge after -------------------


def _is_paid(provider_name: str) -> bool:
    return provider_name in {"minimax", "wavespeed"}


def voice_clone_cost(provider_name: str) -> Decimal:
    return settings.PRICES["voice_clone"] if _is_paid(provider_name) else Decimal("0")


def synthesis_cost(provider_name: str, seconds: float) -> Decimal:
    if not _is_paid(provider_name):
        return Decimal("0")
    return (settings.PRICES["voice_minute"] * Decimal(str(seconds)) / 60).quantize(CENT, ROUND_HALF_UP)


def avatar_cost(provider_name: str, seconds: float, resolution: str = "480p") -> Decimal:
    if not _is_paid(provider_name):
        return Decimal("0")
    # WaveSpeed lists a price per 5 s but bills per second (price / 5), the duration rounded up
    # to whole seconds, with a minimum duration.
    price = settings.PRICES["avatar_5s_720p" if resolution == "720p" else "avatar_5s_480p"]
    billed = max(math.ceil(seconds - 1e-9), settings.PRICES["avatar_min_seconds"])
    return price * billed / 5


def estimate_seconds_for_text(text: str, words_per_minute: float = 150.0) -> float:
    return max(1.0, len(text.split()) / words_per_minute * 60)


# --- Metering --------------------------------------------------------------------------------


def record_usage(
    *,
    user,
    persona,
    job,
    kind: str,
    provider: str,
    media_seconds: float,
    cost_usd: Decimal,
    idempotency_key: str,
    content_type: str = "",
    defer_job_totals: bool = False,
) -> UsageRecord:
    """Record one metered use; calling it again with the same key changes nothing (the key is
    unique, so two workers racing on one step cannot both record it).

    `defer_job_totals`: the job's cost and media seconds are raised by the step's next write of the
    job (`_transition`) instead of an UPDATE of their own, for a step that writes the job at once."""
    record = UsageRecord(
        idempotency_key=idempotency_key,
        user=user,
        persona=persona,
        job=job,
        kind=kind,
        provider=provider,
        tier=user.subscription.tier,
        media_seconds=media_seconds,
        cost_usd=cost_usd,
        content_type=content_type,
    )
    # Insert first: a step records its use once and is rarely retried, so a SELECT first is
    # usually wasted. Inside a transaction the attempt gets a savepoint, so a duplicate does not
    # break it; in autocommit a failed INSERT leaves nothing to roll back.
    db = router.db_for_write(UsageRecord)
    try:
        with transaction.atomic(using=db) if connections[db].in_atomic_block else nullcontext():
            record.save(force_insert=True, using=db)
    except IntegrityError:
        existing = UsageRecord.objects.using(db).filter(idempotency_key=idempotency_key).first()
        if existing is None:
            raise  # another constraint failed, not a repeat
        return existing
    if job is not None:
        if defer_job_totals:
            cost, seconds = getattr(job, "pending_totals", None) or (Decimal("0"), 0.0)
            job.pending_totals = (cost + cost_usd, seconds + media_seconds)
        else:
            MediaJob.objects.filter(pk=job.pk).update(**_totals_update(cost_usd, media_seconds))
    return record


def _totals_update(cost_usd: Decimal, media_seconds: float) -> dict:
    return {"cost_usd": F("cost_usd") + cost_usd, "media_seconds": F("media_seconds") + media_seconds}


# --- Job lifecycle ---------------------------------------------------------------------------


def create_job(
    *,
    user,
    persona,
    kind: str,
    provider: str,
    params: dict | None = None,
    input_file: str = "",
    estimated_cost_usd: Decimal = Decimal("0"),
    content_type: str = "",
) -> MediaJob:
    deadline_seconds = settings.JOB_DEADLINE_SECONDS.get(kind, settings.JOB_DEADLINE_SECONDS["render"])
    job = MediaJob.objects.create(
        user=user,
        persona=persona,
        kind=kind,
        provider=provider,
        params=params or {},
        input_file=input_file,
        estimated_cost_usd=estimated_cost_usd,
        content_type=content_type,
        deadline=timezone.now() + timedelta(seconds=deadline_seconds),
    )
    enqueue_job(job)
    return job


def enqueue_job(job: MediaJob, *, delay_seconds: float = 0) -> None:
    """Enqueue after the surrounding transaction commits, so the worker sees the row. The task
    carries the job's step token: only one task queued for a step can claim it."""
    from media_pipeline.tasks import run_job

    job_id, step_token = job.pk, job.step_token

    def _enqueue():
        task = run_job
        if delay_seconds:
            task = run_job.using(run_after=timezone.now() + timedelta(seconds=delay_seconds))
        task.enqueue(job_id, step_token)

    transaction.on_commit(_enqueue)


def claim_job(job_id: int, step_token: int | None = None) -> MediaJob | None:
    """Take the lease on a runnable job. Returns None if another worker holds it, it is done, or
    (given the token its task was queued with) another task already took this step.

    `attempts` counts tries, not steps: a claim from waiting_provider (a poll) is not a new try;
    a claim after a retry or a dead worker's lease is.

    One conditional UPDATE ... RETURNING both claims the row and reads it back (the ORM's update()
    returns only a count, and a re-SELECT would cost a second round trip on every step, polls
    included). The user and persona are not loaded here: a poll step does not need them, and the
    steps that do call `load_owner`."""
    now = timezone.now()
    db = router.db_for_write(MediaJob)
    ops = connections[db].ops
    stamp = ops.adapt_datetimefield_value(now)
    lease = ops.adapt_datetimefield_value(now + timedelta(seconds=settings.JOB_LEASE_SECONDS))
    table = ops.quote_name(MediaJob._meta.db_table)
    sql = (
        f"UPDATE {table} SET status = %s, lease_expires_at = %s, heartbeat_at = %s, "
        "attempts = attempts + CASE WHEN status = %s THEN 0 ELSE 1 END, step_token = step_token + 1, "
        "started_at = COALESCE(started_at, %s) "
        "WHERE id = %s AND (status IN (%s, %s) OR (status = %s AND lease_expires_at < %s))"
    )
    params = [JobStatus.RUNNING, lease, stamp, JobStatus.WAITING_PROVIDER, stamp, job_id]
    params += [JobStatus.QUEUED, JobStatus.WAITING_PROVIDER, JobStatus.RUNNING, stamp]
    if step_token is not None:
        sql += " AND step_token = %s"
        params.append(step_token)
    sql += " RETURNING *"
    claimed = list(MediaJob.objects.raw(sql, params).using(db))
    return claimed[0] if claimed else None


def load_owner(job: MediaJob) -> MediaJob:
    """Attach the job's persona, user and subscription, read in one query."""
    if job.persona_id is None:
        job.user = get_user_model().objects.select_related("subscription").get(pk=job.user_id)
        return job
    persona = WritingPersona.objects.select_related("user__subscription").filter(pk=job.persona_id).first()
    return _attach_owner(job, persona)


def _attach_owner(job: MediaJob, persona: WritingPersona | None) -> MediaJob:
    if persona is None:
        raise JobLost  # deleted with everything of its user (the job row went with it)
    job.persona = persona
    if persona.user_id == job.user_id:
        job.user = persona.user
    return job


def heartbeat(job: MediaJob, progress: int | None = None, *, lease_seconds: float | None = None) -> None:
    """Tell the sweeper this job's worker is alive; a longer lease covers one long blocking call.
    Not written when the lease was renewed moments ago and is long enough; the progress then goes
    out with the next write (the job's next heartbeat or status change)."""
    now = timezone.now()
    lease = now + timedelta(seconds=lease_seconds or settings.JOB_LEASE_SECONDS)
    if progress is not None:
        job.progress = max(job.progress, min(progress, 100))
    if (
        job.heartbeat_at is not None
        and job.lease_expires_at is not None
        and now - job.heartbeat_at < timedelta(seconds=HEARTBEAT_SECONDS)
        and lease <= job.lease_expires_at + timedelta(seconds=HEARTBEAT_SECONDS)
    ):
        return
    job.heartbeat_at, job.lease_expires_at = now, lease
    MediaJob.objects.filter(pk=job.pk).update(heartbeat_at=now, lease_expires_at=lease, progress=job.progress)


def _save_job(job: MediaJob, **fields) -> None:
    for name, value in fields.items():
        setattr(job, name, value)
    job.save(update_fields=list(fields))


def _transition(job: MediaJob, statuses, **fields) -> bool:
    """Write `fields` only while the job is in `statuses` and still at this step's token (one
    conditional UPDATE). False: it was cancelled, failed, deleted or claimed again meanwhile.
    Uses recorded with `defer_job_totals` are added to the job's totals in the same UPDATE."""
    pending = getattr(job, "pending_totals", None)
    totals = _totals_update(*pending) if pending else {}
    job.pending_totals = None
    updated = MediaJob.objects.filter(pk=job.pk, status__in=statuses, step_token=job.step_token).update(
        **fields, **totals
    )
    if totals and not updated:
        # The use was made all the same: it counts on the job, whatever became of the job.
        MediaJob.objects.filter(pk=job.pk).update(**totals)
    if updated:
        for name, value in fields.items():
            setattr(job, name, value)
    return bool(updated)


def checkpoint_job(job: MediaJob, **fields) -> None:
    """Save a running step's progress; raises JobLost when the job is no longer this worker's."""
    if not _transition(job, [JobStatus.RUNNING], **fields):
        raise JobLost


def succeed_job(job: MediaJob, **result) -> None:
    """Raises JobLost (nothing written) if the job is no longer this worker's to finish."""
    checkpoint_job(
        job,
        status=JobStatus.SUCCEEDED,
        progress=100,
        result={**job.result, **result},
        finished_at=timezone.now(),
        lease_expires_at=None,
        error="",
    )


def fail_job(job: MediaJob, message: str) -> bool:
    """False (nothing written) if the job has already ended or was deleted or claimed again."""
    fields = {"status": JobStatus.FAILED, "error": message, "finished_at": timezone.now(), "lease_expires_at": None}
    if not _transition(job, ACTIVE_JOB_STATUSES, **fields):
        return False
    on_job_failed(job)
    return True


def render_deadline(job: MediaJob, media_seconds: float):
    """The deadline of a job whose render was just submitted: the kind's own time plus the
    model's wall time per second of media (hosted models take 10-30 s per second of video).
    Never earlier than the deadline the job already has."""
    provider_name = job.params.get("avatar_provider") or job.provider
    model = provider_name
    if provider_name in AVATAR_PROVIDERS:
        model_for = getattr(import_string(AVATAR_PROVIDERS[provider_name]), "model_for", None)
        try:
            model = model_for(media_seconds) if model_for else provider_name
        except ProviderError:  # too long for any model: refused before submitting
            pass
    factors = settings.RENDER_SECONDS_PER_MEDIA_SECOND
    factor = factors.get(model, factors.get(provider_name, factors["default"]))
    base = settings.JOB_DEADLINE_SECONDS.get(job.kind, settings.JOB_DEADLINE_SECONDS["render"])
    deadline = timezone.now() + timedelta(seconds=base + factor * media_seconds)
    return max(deadline, job.deadline) if job.deadline else deadline


def wait_for_provider(
    job: MediaJob, *, progress: int | None = None, media_seconds: float | None = None, **fields
) -> None:
    """Release the job until the provider's next poll, saving progress and `fields` in one write.
    `media_seconds`, given when a render was just submitted, sets the deadline that render needs.
    Raises JobLost (nothing written, nothing queued) if the job is no longer this worker's."""
    if progress is not None:
        fields["progress"] = max(job.progress, min(progress, 100))
    if media_seconds is not None:
        fields["deadline"] = render_deadline(job, media_seconds)
    checkpoint_job(job, status=JobStatus.WAITING_PROVIDER, lease_expires_at=None, heartbeat_at=timezone.now(), **fields)
    enqueue_job(job, delay_seconds=settings.PROVIDER_POLL_SECONDS)


def retry_later(job: MediaJob, error: str) -> bool:
    """A transient failure: back off exponentially with jitter, then try again. False (nothing
    queued) if the job is no longer this worker's."""
    delay = min(300, 2**job.attempts) * (0.5 + random.random())
    if not _transition(job, [JobStatus.RUNNING], status=JobStatus.QUEUED, error=error, lease_expires_at=None):
        return False
    enqueue_job(job, delay_seconds=delay)
    return True


def cancel_job(job: MediaJob) -> bool:
    updated = MediaJob.objects.filter(pk=job.pk, status__in=ACTIVE_JOB_STATUSES).update(
        status=JobStatus.CANCELLED, finished_at=timezone.now(), lease_expires_at=None
    )
    if updated:
        job.refresh_from_db()
        on_job_failed(job)
    return bool(updated)


def run_job(job_id: int, step_token: int | None = None) -> None:
    """One step of a job (called by the task). Never raises for expected failures."""
    job = claim_job(job_id, step_token)
    if job is None:
        return
    if job.deadline and timezone.now() > job.deadline:
        fail_job(job, "This took too long and was stopped. Please try again.")
        return
    handler = JOB_HANDLERS[job.kind]
    try:
        handler(job)
        return
    except JobLost:
        ended = False
    except ProviderError as exc:
        if _will_retry(job, exc):
            log.warning("job %s: retryable provider error: %s", job.pk, exc.message)
            ended = retry_later(job, exc.message)
        else:
            ended = fail_job(job, exc.message)
    except PipelineError as exc:
        ended = fail_job(job, str(exc))
    except Exception:
        log.exception("job %s crashed", job.pk)
        ended = fail_job(job, "Something went wrong on our side. Please try again.")
    if not ended:
        _abandon(job)


def _abandon(job: MediaJob) -> None:
    """Undo what this step made for a job that is no longer its to finish. A job another worker
    took over keeps its provider-side state: that worker finishes with it."""
    status = MediaJob.objects.filter(pk=job.pk).values_list("status", flat=True).first()
    log.info("job %s is no longer this worker's (%s); stopping", job.pk, status or "deleted")
    if status in ACTIVE_JOB_STATUSES:
        return
    if job.kind == JobKind.VOICE_CLONE:
        provider = get_voice_provider(job.provider)
        _delete_provider_samples(provider, job.result.get("provider_uploads", []))
        voice_id = job.result.get("voice_id")
        if job.result.get("cloned") and not WritingPersona.objects.filter(voice_id=voice_id).exists():
            _delete_provider_voice(job.provider, voice_id)
    if job.kind == JobKind.AVATAR_CREATE:
        _delete_stored([job.result.get("narration_file")])


def _will_retry(job: MediaJob, exc: ProviderError) -> bool:
    return exc.retryable and job.attempts < MAX_ATTEMPTS


def sweep_jobs(*, now=None) -> dict:
    """Re-queue jobs whose worker died (lease expired) and fail jobs past their deadline."""
    now = now or timezone.now()
    failed = 0
    for job in MediaJob.objects.filter(status__in=ACTIVE_JOB_STATUSES, deadline__lt=now):
        failed += fail_job(job, "This took too long and was stopped. Please try again.")
    stale = MediaJob.objects.filter(status=JobStatus.RUNNING, lease_expires_at__lt=now)
    requeued = 0
    for job in stale:
        if MediaJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING, lease_expires_at__lt=now).update(
            status=JobStatus.QUEUED, lease_expires_at=None
        ):
            enqueue_job(job)
            requeued += 1
    # Waiting jobs whose poll task was lost (e.g. Redis flushed) get a fresh poll.
    lost = MediaJob.objects.filter(
        status=JobStatus.WAITING_PROVIDER, heartbeat_at__lt=now - timedelta(seconds=settings.JOB_LEASE_SECONDS)
    )
    for job in lost:
        enqueue_job(job)
        requeued += 1
    return {"requeued": requeued, "failed": failed}


# --- Voice -----------------------------------------------------------------------------------


def generate_voice_id(persona: WritingPersona) -> str:
    """A MiniMax-valid id: 8-256 chars, starts with a letter, letters/digits/-/_, ends with an
    alphanumeric, always contains a digit, unique."""
    suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=10))
    return f"alw{persona.pk}x{uuid.uuid4().hex[:8]}{suffix}7"


def check_voice_sample(*, persona: WritingPersona, sample) -> MediaJob:
    """Store an uploaded sample (encrypted) and queue its quality check in the worker."""
    if persona.jobs.filter(kind=JobKind.VOICE_CLONE, status__in=ACTIVE_JOB_STATUSES).exists():
        raise PipelineError("Your voice is being trained from the previous sample; wait for it to finish.")
    if persona.voice_training_audio:
        delete_file(persona.voice_training_audio)
    persona.voice_training_audio.save(f"sample-{uuid.uuid4().hex}", sample, save=True)
    return create_job(
        user=persona.user,
        persona=persona,
        kind=JobKind.SAMPLE_CHECK,
        provider="local",
        input_file=persona.voice_training_audio.name,
    )


def run_sample_check(job: MediaJob) -> None:
    from media_pipeline import audio

    with local_copy(job.input_file) as path:
        report = audio.analyse_sample(path)
    succeed_job(job, report=report.as_dict())


def start_voice_training(
    *, persona: WritingPersona, check_job: MediaJob, accept_warnings: bool, provider: str = ""
) -> MediaJob:
    """Queue a voice clone from a checked sample. Errors block; warnings need `accept_warnings`."""
    report = check_job.result.get("report") or {}
    if check_job.status != JobStatus.SUCCEEDED or not report:
        raise PipelineError("The sample check has not finished yet.")
    if report.get("errors"):
        raise PipelineError("This sample cannot be used: " + " ".join(c["message"] for c in report["errors"]))
    if report.get("warnings") and not accept_warnings:
        raise PipelineError("Please confirm that you want to use a sample with warnings.")
    if not persona.voice_training_audio or persona.voice_training_audio.name != check_job.input_file.name:
        raise PipelineError("This sample is no longer available; please upload it again.")
    if persona.jobs.filter(kind=JobKind.VOICE_CLONE, status__in=ACTIVE_JOB_STATUSES).exists():
        raise PipelineError("Your voice is already being trained.")
    provider = provider or settings.VOICE_PROVIDER
    with transaction.atomic():
        job = create_job(
            user=persona.user,
            persona=persona,
            kind=JobKind.VOICE_CLONE,
            provider=provider,
            input_file=check_job.input_file.name,
            params={"profile": report.get("metrics", {})},
            estimated_cost_usd=voice_clone_cost(provider),
        )
        if not persona.voice_approved_at:
            persona.voice_training_status = TrainingStatus.TRAINING
            persona.voice_skipped_at = None
            persona.save(update_fields=["voice_training_status", "voice_skipped_at", "updated_at"])
    return job


def run_voice_clone(job: MediaJob) -> None:
    from media_pipeline import audio

    persona = load_owner(job).persona
    provider = get_voice_provider(job.provider)
    # The voice id is chosen once and kept, so a retry after a lost reply cannot clone twice.
    if not job.result.get("voice_id"):
        checkpoint_job(job, result={**job.result, "voice_id": generate_voice_id(persona)})
    voice_id = job.result["voice_id"]
    heartbeat(job, 10)
    with local_copy(job.input_file) as path:
        try:
            prepared = audio.prepare_for_provider(path)
        except audio.SampleError as exc:
            raise PipelineError(exc.message) from exc

    def remember_upload(file_id: str) -> None:
        # Saved before cloning, so a lost reply or a dead worker cannot leave the sample behind
        # (kept in memory first: if the job was cancelled meanwhile, this worker deletes it).
        job.result = {**job.result, "provider_uploads": [*job.result.get("provider_uploads", []), file_id]}
        checkpoint_job(job, result=job.result)

    try:
        heartbeat(job, 30)
        if not job.result.get("cloned"):
            try:
                provider.clone(prepared.path, voice_id=voice_id, profile=prepared.profile, on_upload=remember_upload)
            except ProviderError as exc:
                # 2039 = duplicate id: a previous attempt created this voice before its reply was lost.
                # Any other error ends in a retry or in fail_job, which deletes the uploads.
                if not (exc.code == 2039 and job.attempts > 1):
                    raise
            job.result = {**job.result, "cloned": True, "profile": prepared.profile}
            checkpoint_job(job, result=job.result)
    finally:
        prepared.cleanup()
    record_usage(
        user=job.user,
        persona=persona,
        job=job,
        kind="voice_clone",
        provider=job.provider,
        media_seconds=0,
        cost_usd=voice_clone_cost(job.provider),
        idempotency_key=f"job:{job.pk}:voice_clone",
    )
    heartbeat(job, 70)
    # A real synthesis right away: it is the preview and it keeps a MiniMax voice from expiring.
    preview = provider.synthesize(PREVIEW_LINE, voice_id=voice_id, profile=prepared.profile)
    record_usage(
        user=job.user,
        persona=persona,
        job=job,
        kind="voice_synthesis",
        content_type="preview",
        provider=job.provider,
        media_seconds=preview.duration_seconds,
        cost_usd=synthesis_cost(job.provider, preview.duration_seconds),
        idempotency_key=f"job:{job.pk}:preview",
    )
    preview_name = default_storage.save(
        f"private/voice_previews/preview-{uuid.uuid4().hex}{_audio_ext(preview.mime_type)}",
        ContentFile(preview.audio),
    )
    _delete_provider_samples(provider, job.result.get("provider_uploads", []))
    try:
        with transaction.atomic():
            # Locked and read again: the user may have deleted the voice, or everything, meanwhile.
            persona = WritingPersona.objects.select_for_update().filter(pk=persona.pk).first()
            if persona is None:
                raise JobLost
            retraining = bool(persona.voice_approved_at and persona.voice_id)
            # First, so a cancelled job (a deleted voice, withdrawn consent) changes nothing.
            succeed_job(
                job,
                preview_file=preview_name,
                voice_id=voice_id,
                profile=prepared.profile,
                provider_uploads=[],
                **({"candidate": True} if retraining else {}),
            )
            if not retraining:
                # Retraining keeps the approved voice in use until the candidate is approved.
                now = timezone.now()
                delete_file(persona.voice_preview)
                persona.voice_id = voice_id
                persona.voice_provider = job.provider
                persona.voice_training_status = TrainingStatus.READY
                persona.voice_trained_at = now
                persona.voice_activated_at = now
                persona.voice_preview.name = preview_name
                persona.voice_profile = prepared.profile
            _delete_sample(persona, job)
            persona.save()
    except JobLost:
        default_storage.delete(preview_name)
        raise


def _delete_provider_samples(provider, file_ids: list[str]) -> None:
    """Delete every upload of the sample a job made at the provider (one per attempt)."""
    for file_id in file_ids:
        try:
            provider.delete_sample(file_id)
        except ProviderError as exc:  # already gone, or it expires at the provider
            log.warning("could not delete provider sample %s: %s", file_id, exc.message)


def _delete_sample(persona: WritingPersona, job: MediaJob) -> None:
    """Samples are biometric data: deleted as soon as training succeeds (once that commits)."""
    name = job.input_file.name
    if name:
        transaction.on_commit(lambda: default_storage.delete(name))
    if persona.voice_training_audio and persona.voice_training_audio.name == name:
        persona.voice_training_audio = ""
    job.input_file = ""
    job.save(update_fields=["input_file"])


def _audio_ext(mime_type: str) -> str:
    return ".wav" if "wav" in mime_type else ".mp3"


def latest_job(persona: WritingPersona, kind: str) -> MediaJob | None:
    return persona.jobs.filter(kind=kind).first()


def approve_voice(*, persona: WritingPersona) -> None:
    """Approve the newest trained voice. For a retrain this swaps the candidate in."""
    with transaction.atomic():
        job = _newest_succeeded_locked(persona, JobKind.VOICE_CLONE)
        if job and is_waiting_candidate(job):
            old_voice, old_provider = persona.voice_id, persona.voice_provider
            delete_file(persona.voice_preview)
            persona.voice_id = job.result["voice_id"]
            persona.voice_provider = job.provider
            persona.voice_preview.name = job.result["preview_file"]
            persona.voice_profile = job.result.get("profile", {})
            persona.voice_trained_at = job.finished_at
            job.result["approved"] = True
            job.save(update_fields=["result"])
            transaction.on_commit(lambda: _delete_provider_voice(old_provider, old_voice))
        if persona.voice_training_status != TrainingStatus.READY or not persona.voice_id:
            raise PipelineError("There is no trained voice to approve yet.")
        persona.voice_approved_at = timezone.now()
        persona.save()


def is_waiting_candidate(job: MediaJob) -> bool:
    """A retrain's result that the user has neither approved nor discarded yet."""
    return bool(job.result.get("candidate")) and not job.result.get("approved") and not job.result.get("discarded")


def discard_voice_candidate(*, persona: WritingPersona) -> None:
    """Keep the current voice: delete the retrain's new voice and its preview."""
    with transaction.atomic():
        job = _newest_succeeded_locked(persona, JobKind.VOICE_CLONE)
        if job is None or not is_waiting_candidate(job):
            raise PipelineError("There is no new voice waiting for a decision.")
        preview, provider, voice_id = job.result.get("preview_file"), job.provider, job.result["voice_id"]
        _save_job(job, result={**job.result, "discarded": True, "preview_file": ""})
        transaction.on_commit(lambda: _delete_stored([preview]))
        transaction.on_commit(lambda: _delete_provider_voice(provider, voice_id))


def _delete_provider_voice(provider_name: str, voice_id: str) -> None:
    if not voice_id or not provider_name:
        return
    try:
        get_voice_provider(provider_name).delete(voice_id)
    except (ProviderError, KeyError) as exc:
        log.warning("could not delete voice %s at %s: %s", voice_id, provider_name, exc)


def retrain_voice(*, persona: WritingPersona, provider: str = "") -> MediaJob:
    """Operator/admin path: retrain from a stored sample (samples are deleted after training,
    so this works only while a checked sample is waiting)."""
    check = persona.jobs.filter(kind=JobKind.SAMPLE_CHECK, status=JobStatus.SUCCEEDED).first()
    if not persona.voice_training_audio or check is None or check.input_file.name != persona.voice_training_audio.name:
        raise PipelineError(
            "No voice sample is stored (samples are deleted after training); ask the user to upload one."
        )
    return start_voice_training(persona=persona, check_job=check, accept_warnings=True, provider=provider)


# --- Avatar ----------------------------------------------------------------------------------


def check_photo(*, persona: WritingPersona, photo) -> MediaJob:
    """Store the uploaded photo (encrypted) and queue its check in the worker."""
    name = default_storage.save(f"private/job_inputs/photo-{uuid.uuid4().hex}", photo)
    return create_job(user=persona.user, persona=persona, kind=JobKind.PHOTO_CHECK, provider="local", input_file=name)


def run_photo_check(job: MediaJob) -> None:
    """Check the photo; keep only the EXIF-free re-encode and the portrait crop."""
    from media_pipeline import photo

    with local_copy(job.input_file) as path:
        report = photo.analyse_photo(path)
        result = {"report": report.as_dict()}
        if not report.errors:
            clean = photo.sanitised_jpeg(report.photo)  # the photo analyse_photo decoded, not a new decode
            portrait = photo.portrait_crop(report.photo, report)
            result["photo_file"] = default_storage.save(
                f"private/avatar_photos/photo-{uuid.uuid4().hex}.jpg", ContentFile(clean)
            )
            result["portrait_file"] = default_storage.save(
                f"private/avatar_photos/portrait-{uuid.uuid4().hex}.png", ContentFile(portrait)
            )
    job.input_file.storage.delete(job.input_file.name)
    job.input_file = ""
    try:
        checkpoint_job(job, input_file="")
        succeed_job(job, **result)
    except JobLost:
        _delete_stored([result.get("photo_file"), result.get("portrait_file")])
        raise


def start_avatar_creation(*, persona: WritingPersona, check_job: MediaJob, provider: str = "") -> MediaJob:
    report = check_job.result.get("report") or {}
    if check_job.status != JobStatus.SUCCEEDED or not report:
        raise PipelineError("The photo check has not finished yet.")
    if report.get("errors"):
        raise PipelineError("This photo cannot be used: " + " ".join(c["message"] for c in report["errors"]))
    if persona.jobs.filter(kind=JobKind.AVATAR_CREATE, status__in=ACTIVE_JOB_STATUSES).exists():
        raise PipelineError("Your avatar is already being created.")
    provider = provider or settings.AVATAR_PROVIDER
    seconds = estimate_seconds_for_text(PREVIEW_LINE)
    with transaction.atomic():
        job = create_job(
            user=persona.user,
            persona=persona,
            kind=JobKind.AVATAR_CREATE,
            provider=provider,
            params={
                "photo_file": check_job.result["photo_file"],
                "portrait_file": check_job.result["portrait_file"],
                "resolution": "480p",
                "aspect": persona.avatar_aspect_ratio,
            },
            estimated_cost_usd=avatar_cost(provider, seconds),
        )
        if not persona.avatar_approved_at:
            persona.avatar_training_status = TrainingStatus.TRAINING
            persona.avatar_skipped_at = None
            persona.save(update_fields=["avatar_training_status", "avatar_skipped_at", "updated_at"])
    return job


def _longest_provider_call_seconds() -> float:
    """How long one provider request can take with every retry the HTTP base allows."""
    per_try = settings.HTTP_CONNECT_TIMEOUT + settings.HTTP_READ_TIMEOUT + settings.HTTP_BACKOFF_MAX_SECONDS
    return per_try * (settings.HTTP_MAX_RETRIES + 1)


def speak_for_persona(
    persona: WritingPersona,
    text: str,
    *,
    job: MediaJob | None,
    content_type: str,
    use_persona_voice: bool = True,
    usage_key: str = "",
    defer_job_totals: bool = False,
):
    """Speech in the persona voice when it is ready (and wanted), else the tier's fallback voice.
    `usage_key` names the job step for metering (default: the text), so a retried step is charged once;
    `defer_job_totals` as for `record_usage`.
    Returns (SynthesisResult, provider name, used_persona_voice)."""
    use_persona_voice = use_persona_voice and persona.voice_ready
    gtts = settings.GTTS_ENABLED and settings.FALLBACK_VOICE_PROVIDER == "gtts"
    if job is not None and (use_persona_voice or gtts):
        # A provider call with all its retries (timeouts, backoff) can outlast the step's lease:
        # keep the sweeper off this job meanwhile. (The offline voice runs here in seconds.)
        heartbeat(job, lease_seconds=_longest_provider_call_seconds() + settings.JOB_LEASE_SECONDS)
    if use_persona_voice:
        provider_name = persona.speaking_voice_provider
        try:
            result = get_voice_provider(provider_name).synthesize(
                text,
                voice_id=persona.voice_id,
                emotion=persona.voice_emotion,
                speed=persona.voice_speed,
                pitch=persona.voice_pitch,
                volume=persona.voice_volume,
                profile=persona.voice_profile,
            )
            used_persona = True
        except ProviderError as exc:
            if exc.retryable:
                raise
            log.warning("persona voice failed (%s); using the fallback voice", exc.message)
            result, provider_name = _fallback_speech(persona, text)
            used_persona = False
    else:
        result, provider_name = _fallback_speech(persona, text)
        used_persona = False
    if job is not None:
        record_usage(
            user=persona.user,
            persona=persona,
            job=job,
            kind="voice_synthesis",
            content_type=content_type,
            provider=provider_name,
            media_seconds=result.duration_seconds,
            cost_usd=synthesis_cost(provider_name, result.duration_seconds),
            idempotency_key=f"job:{job.pk}:speech:{content_type}:{usage_key or _text_key(text)}",
            defer_job_totals=defer_job_totals,
        )
    return result, provider_name, used_persona


def _text_key(text: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_OID, text).hex


def _fallback_speech(persona: WritingPersona, text: str):
    """gTTS when enabled (it needs the internet), else the offline voice."""
    if settings.GTTS_ENABLED and settings.FALLBACK_VOICE_PROVIDER == "gtts":
        try:
            return get_voice_provider("gtts").synthesize(text, voice_id=""), "gtts"
        except ProviderError as exc:
            log.info("gTTS unavailable (%s); using the offline voice", exc.message)
    return get_voice_provider("offline").synthesize(text, voice_id="", profile=persona.voice_profile), "offline"


def run_avatar_create(job: MediaJob) -> None:
    provider = get_avatar_provider(job.provider)
    if not job.provider_job_id:
        persona = load_owner(job).persona
        speech, job.params["used_persona_voice"] = _preview_narration(job, persona)
        with (
            local_copy(job.params["portrait_file"], suffix=".png") as portrait_path,
            _temp_audio(speech) as audio_path,
        ):
            heartbeat(job, 30)
            ticket = provider.start_render(
                portrait_path,
                audio_path,
                resolution=job.params.get("resolution", "480p"),
                aspect=job.params.get("aspect", "1:1"),
                # The narration's length is known here; the provider need not decode it again.
                options={**_avatar_options(persona), "narration_seconds": speech.duration_seconds},
            )
        started = {
            "provider_job_id": ticket.provider_job_id,
            "params": {**job.params, "seconds": speech.duration_seconds},
        }
        if ticket.video is None:
            wait_for_provider(job, progress=40, media_seconds=speech.duration_seconds, **started)
            return
        checkpoint_job(job, **started)
        video = ticket.video
    else:
        poll = provider.check_render(job.provider_job_id)
        if poll.status == "failed":
            if not fail_job(job, poll.error or "The avatar provider could not create your avatar."):
                raise JobLost
            return
        if poll.status != "completed":
            wait_for_provider(job, progress=max(40, min(95, poll.progress)))
            return
        video = poll.video
    _complete_avatar(job, video)


def _preview_narration(job: MediaJob, persona: WritingPersona) -> tuple[SynthesisResult, bool]:
    """The avatar preview's narration, synthesized once per job and kept on it until the job
    ends: a retry (say, after the render upload failed) reuses it instead of paying again.
    Returns the speech and whether it is in the persona's own voice."""
    saved = job.result.get("narration_file")
    if saved and default_storage.exists(saved):
        speech = SynthesisResult(
            audio=read_bytes(saved),
            mime_type=job.result["narration_mime"],
            duration_seconds=job.result["narration_seconds"],
            characters=len(PREVIEW_LINE),
        )
        return speech, job.result.get("narration_persona_voice", False)
    # The use is added to the job's totals by the checkpoint just below.
    speech, _, used_persona = speak_for_persona(
        persona, PREVIEW_LINE, job=job, content_type="preview", defer_job_totals=True
    )
    name = default_storage.save(
        f"private/avatar_previews/narration-{uuid.uuid4().hex}{_audio_ext(speech.mime_type)}",
        ContentFile(speech.audio),
    )
    narration = {
        "narration_file": name,
        "narration_mime": speech.mime_type,
        "narration_seconds": speech.duration_seconds,
        "narration_persona_voice": used_persona,
    }
    try:
        checkpoint_job(job, result={**job.result, **narration})
    except JobLost:
        default_storage.delete(name)
        raise
    return speech, used_persona


def _avatar_options(persona: WritingPersona) -> dict:
    return {
        "background": persona.avatar_background,
        "style": persona.avatar_style,
        "framing": persona.avatar_framing,
    }


def _complete_avatar(job: MediaJob, video: bytes) -> None:
    seconds = job.params.get("seconds", 0)

    def charge(**kwargs) -> None:
        record_usage(
            user=job.user,
            persona=job.persona,
            job=job,
            kind="avatar_video",
            content_type="preview",
            provider=job.provider,
            media_seconds=seconds,
            cost_usd=avatar_cost(job.provider, seconds, job.params.get("resolution", "480p")),
            idempotency_key=f"job:{job.pk}:avatar_video",
            **kwargs,
        )

    preview_name = default_storage.save(f"private/avatar_previews/avatar-{uuid.uuid4().hex}.mp4", ContentFile(video))
    avatar_id = f"av{job.pk}x{uuid.uuid4().hex[:12]}"
    narration = job.result.get("narration_file")
    owner_loaded = False
    try:
        with transaction.atomic():
            # Locked and read with its owner in one query: approving, another job or a deletion may
            # have changed it since the render started.
            persona = (
                WritingPersona.objects.select_related("user__subscription")
                .select_for_update(of=("self",))
                .filter(pk=job.persona_id)
                .first()
            )
            _attach_owner(job, persona)
            owner_loaded = True
            # The charge commits with the job's success (its totals in the same UPDATE); if the job
            # was lost meanwhile, it is recorded below on its own, as the render was made and billed.
            charge(defer_job_totals=True)
            recreating = bool(persona.avatar_approved_at and persona.avatar_id)
            # First, so a cancelled job (a deleted avatar, withdrawn consent) changes nothing.
            succeed_job(
                job,
                preview_file=preview_name,
                avatar_id=avatar_id,
                narration_file="",
                **({"candidate": True} if recreating else {}),
            )
            if not recreating:
                _replace_avatar(persona, job, avatar_id, preview_name)
                persona.save(update_fields=[*AVATAR_FIELDS, "updated_at"])
    except BaseException:
        # Rolled back: nothing refers to the preview, and the charge must still be recorded.
        default_storage.delete(preview_name)
        if owner_loaded:
            job.pending_totals = None
            charge()
        raise
    _delete_stored([narration])


AVATAR_FIELDS = [
    "avatar_id",
    "avatar_provider",
    "avatar_training_status",
    "avatar_created_at",
    "avatar_image",
    "avatar_portrait",
    "avatar_preview",
]


def _replace_avatar(persona: WritingPersona, job: MediaJob, avatar_id: str, preview_name: str) -> None:
    """Make the job's avatar the persona's; the caller saves AVATAR_FIELDS."""
    old_files = [persona.avatar_image.name, persona.avatar_preview.name, persona.avatar_portrait.name]
    persona.avatar_id = avatar_id
    persona.avatar_provider = job.provider
    persona.avatar_training_status = TrainingStatus.READY
    persona.avatar_created_at = timezone.now()
    persona.avatar_image.name = job.params["photo_file"]
    persona.avatar_portrait.name = job.params["portrait_file"]
    persona.avatar_preview.name = preview_name
    keep = {persona.avatar_image.name, persona.avatar_preview.name, persona.avatar_portrait.name}
    for name in old_files:
        if name and name not in keep:
            default_storage.delete(name)


def approve_avatar(*, persona: WritingPersona) -> None:
    with transaction.atomic():
        job = _newest_succeeded_locked(persona, JobKind.AVATAR_CREATE)
        if job and is_waiting_candidate(job):
            _replace_avatar(persona, job, job.result["avatar_id"], job.result["preview_file"])
            job.result["approved"] = True
            job.save(update_fields=["result"])
        if persona.avatar_training_status != TrainingStatus.READY or not persona.avatar_id:
            raise PipelineError("There is no avatar to approve yet.")
        persona.avatar_approved_at = timezone.now()
        persona.save()


def discard_avatar_candidate(*, persona: WritingPersona) -> None:
    """Keep the current avatar: delete the new one's video and the photo it was made from."""
    with transaction.atomic():
        job = _newest_succeeded_locked(persona, JobKind.AVATAR_CREATE)
        if job is None or not is_waiting_candidate(job):
            raise PipelineError("There is no new avatar waiting for a decision.")
        in_use = {persona.avatar_image.name, persona.avatar_portrait.name, persona.avatar_preview.name}
        photos = {job.params.get("photo_file"), job.params.get("portrait_file")} - in_use - {None, ""}
        doomed = [job.result.get("preview_file"), *photos]
        _save_job(job, result={**job.result, "discarded": True, "preview_file": ""})
        # A photo check that produced the deleted photo must not offer it for a recreate.
        for check in persona.jobs.filter(kind=JobKind.PHOTO_CHECK, status=JobStatus.SUCCEEDED):
            if {check.result.get("photo_file"), check.result.get("portrait_file")} & photos:
                _save_job(check, result={**check.result, "photo_file": "", "portrait_file": ""})
        transaction.on_commit(lambda: _delete_stored(doomed))


def _newest_succeeded_locked(persona: WritingPersona, kind: str) -> MediaJob | None:
    """The newest finished job of a kind, locked so approve and discard cannot both act on it."""
    newest = persona.jobs.filter(kind=kind, status=JobStatus.SUCCEEDED).values_list("pk", flat=True).first()
    return MediaJob.objects.select_for_update().filter(pk=newest).first() if newest else None


def _delete_stored(names: list[str | None]) -> None:
    for name in names:
        if name:
            default_storage.delete(name)


def recreate_avatar(*, persona: WritingPersona, provider: str = "") -> MediaJob:
    """Recreate the avatar from the stored photo (kept while the avatar exists)."""
    if not persona.avatar_image or not persona.avatar_portrait.name:
        raise PipelineError("No photo is stored for this persona; ask the user to upload one.")
    if persona.jobs.filter(kind=JobKind.AVATAR_CREATE, status__in=ACTIVE_JOB_STATUSES).exists():
        raise PipelineError("The avatar is already being created.")
    provider = provider or settings.AVATAR_PROVIDER
    return create_job(
        user=persona.user,
        persona=persona,
        kind=JobKind.AVATAR_CREATE,
        provider=provider,
        params={
            "photo_file": persona.avatar_image.name,
            "portrait_file": persona.avatar_portrait.name,
            "resolution": "480p",
            "aspect": persona.avatar_aspect_ratio,
        },
        estimated_cost_usd=avatar_cost(provider, estimate_seconds_for_text(PREVIEW_LINE)),
    )


class _temp_audio:
    """Write synthesized speech to a temporary file for providers that need a path."""

    def __init__(self, speech):
        self.speech = speech

    def __enter__(self):
        import os
        import tempfile

        fd, self.path = tempfile.mkstemp(suffix=_audio_ext(self.speech.mime_type))
        with os.fdopen(fd, "wb") as f:
            f.write(self.speech.audio)
        return self.path

    def __exit__(self, *exc):
        import os

        os.unlink(self.path)


def on_job_failed(job: MediaJob) -> None:
    """Keep the persona's seed status true when its training fails or is cancelled, and delete
    what only the unfinished job needed: the sample's uploads at the provider (biometric copies)
    and a stored avatar narration. Whatever ended the job (an error, the deadline, the user)."""
    uploads = job.result.get("provider_uploads") or []
    narration = job.result.get("narration_file")
    if uploads or narration:
        job.result = {**job.result, "provider_uploads": [], "narration_file": ""}
        MediaJob.objects.filter(pk=job.pk).update(result=job.result)
    if uploads:
        provider = get_voice_provider(job.provider)
        transaction.on_commit(lambda: _delete_provider_samples(provider, uploads))
    if narration:
        transaction.on_commit(lambda: _delete_stored([narration]))
    persona = WritingPersona.objects.filter(pk=job.persona_id).first() if job.persona_id else None
    if persona is None:
        return
    if job.kind == JobKind.VOICE_CLONE and not persona.voice_approved_at:
        WritingPersona.objects.filter(pk=persona.pk, voice_training_status=TrainingStatus.TRAINING).update(
            voice_training_status=TrainingStatus.FAILED
        )
    if job.kind == JobKind.AVATAR_CREATE and not persona.avatar_approved_at:
        WritingPersona.objects.filter(pk=persona.pk, avatar_training_status=TrainingStatus.TRAINING).update(
            avatar_training_status=TrainingStatus.FAILED
        )


def run_render(job: MediaJob) -> None:
    from personas import studio

    studio.run_render_job(load_owner(job))


JOB_HANDLERS = {
    JobKind.SAMPLE_CHECK: run_sample_check,
    JobKind.PHOTO_CHECK: run_photo_check,
    JobKind.VOICE_CLONE: run_voice_clone,
    JobKind.AVATAR_CREATE: run_avatar_create,
    JobKind.RENDER: run_render,
}
