"""The wizard's reads and writes. Every state the page shows is derived here from the database
(the persona's fields and its MediaJob rows), so a refresh at any moment shows the truth."""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from media_pipeline import services as pipeline
from media_pipeline.models import ACTIVE_JOB_STATUSES, AssetKind, JobKind, JobStatus, MediaAsset, MediaJob, UsageRecord
from media_pipeline.ratelimit import check_rate_limit
from onboarding.models import OnboardingData
from personas import analysis, studio
from personas.consent import consent_text, has_current_consent, record_consent
from personas.models import Capability, Tier, TrainingStatus, WritingPersona
from personas.selectors import current_persona

log = logging.getLogger(__name__)

PipelineError = pipeline.PipelineError
ANALYSIS_STUCK_AFTER = timedelta(minutes=5)
# States in which a section re-renders itself every two seconds.
ACTIVE_STATES = frozenset({"checking", "training", "retraining"})
NO_SKIP_STATES = frozenset({"locked", "approved", "skipped", "checking", "training", "retraining"})
FAILED_JOB_STATUSES = (JobStatus.FAILED, JobStatus.CANCELLED)
READ_ALOUD_SCRIPT = (
    "Hello, and thank you for listening. I write about the things I care about, and I want every "
    "piece to sound like me. Some days I share a quick idea on LinkedIn; other days I tell a longer "
    "story on my blog. Either way, I try to be clear, honest and a little curious. Here is how I work. "
    "First, I ask a question that matters to my readers. Then I look for examples, numbers and "
    "stories that answer it. I write a rough draft quickly, and then I rewrite it slowly, reading "
    "every sentence out loud. If a sentence sounds stiff, I change it until it sounds like something "
    "I would say to a friend over coffee. Short sentences keep things moving. Longer ones, used now "
    "and then, give an idea room to breathe. That is my voice: warm, direct and practical. Thanks "
    "for helping me teach it to my persona."
)


# --- Step 1-5 stand-in and the writing-style analysis ---------------------------------------------


@transaction.atomic
def save_content(
    *, user, brand_name: str, website_url: str, website_text: str, writing_samples: str, platforms: list[str]
) -> WritingPersona:
    """Store what steps 1-5 collect, make sure a persona exists, and queue its style analysis."""
    data, _ = OnboardingData.objects.update_or_create(
        user=user,
        defaults={
            "brand_name": brand_name,
            "website_url": website_url,
            "website_text": website_text,
            "writing_samples": writing_samples,
            "platforms": platforms,
        },
    )
    persona = current_persona(user) or WritingPersona.objects.create(user=user, name=brand_name)
    request_style_analysis(persona=persona, data=data)
    return persona


def request_style_analysis(*, persona: WritingPersona, data: OnboardingData) -> None:
    from onboarding.tasks import analyse_persona_style

    data.analysis_requested_at = timezone.now()
    data.analysis_error = ""
    data.save(update_fields=["analysis_requested_at", "analysis_error", "updated_at"])
    transaction.on_commit(lambda: analyse_persona_style.enqueue(persona.pk))


def run_style_analysis(persona_id: int) -> None:
    """The worker's half: analyse the onboarding data and save it to the persona."""
    persona = WritingPersona.objects.select_related("user__onboarding").filter(pk=persona_id).first()
    data = getattr(persona.user, "onboarding", None) if persona else None
    if data is None:
        return
    try:
        analysis.analyse_and_save(
            persona, samples=data.writing_samples, platforms=data.platforms, website_text=data.website_text
        )
    except analysis.AnalysisError as exc:
        _analysis_failed(data, str(exc) + " Add more of your writing and try again.")
    except Exception:
        log.exception("style analysis of persona %s crashed", persona_id)
        _analysis_failed(data, "Something went wrong on our side while analysing. Please try again.")


def _analysis_failed(data: OnboardingData, message: str) -> None:
    OnboardingData.objects.filter(pk=data.pk).update(analysis_error=message)


@dataclass
class StylePanel:
    state: str  # missing | not_started | analysing | failed | done
    data: OnboardingData | None
    stuck: bool = False

    @property
    def polling(self) -> bool:
        return self.state == "analysing"


def style_panel(persona: WritingPersona) -> StylePanel:
    data = OnboardingData.objects.filter(user=persona.user).first()
    if data is None:
        return StylePanel("missing", None)
    requested, analysed = data.analysis_requested_at, persona.analysed_at
    pending = requested is not None and (analysed is None or analysed < requested)
    if pending and data.analysis_error:
        return StylePanel("failed", data)
    if pending:
        return StylePanel("analysing", data, stuck=timezone.now() - requested > ANALYSIS_STUCK_AFTER)
    return StylePanel("done" if analysed else "not_started", data)


def reanalyse_style(*, persona: WritingPersona) -> None:
    data = OnboardingData.objects.filter(user=persona.user).first()
    if data is None:
        raise PipelineError("Tell us about your content first.")
    with transaction.atomic():
        request_style_analysis(persona=persona, data=data)


# --- Voice and avatar panels ---------------------------------------------------------------


def tiers_with(capability: str) -> list[str]:
    return [Tier(name).label for name, features in settings.TIERS.items() if features[capability]]


@dataclass
class MediaPanel:
    """What one section (voice or avatar) shows. `state` is one of: locked, not_started, checking,
    invalid, warnings, checked, training, retraining, failed, ready, candidate, approved, skipped."""

    capability: str
    state: str
    check_job: MediaJob | None = None
    work_job: MediaJob | None = None
    report: dict = field(default_factory=dict)
    error: str = ""
    needs_consent: bool = True
    upgrade_tiers: list[str] = field(default_factory=list)
    can_retry: bool = False
    cost: Decimal = Decimal("0")
    cost_to_confirm: Decimal | None = None
    included: bool = False
    # The newest voice sample (the studio's job that speaks one line) and, once spoken, its audio.
    voice_sample: MediaJob | None = None
    voice_sample_audio: MediaAsset | None = None
    approved_at: datetime | None = None  # an approved voice/avatar stays in use during a retrain
    # Voice: the voice in use (and a retrain's new one) is the offline provider's local match of
    # the user's pitch and pace, not a clone, so the page must not call it "your cloned voice".
    offline_match: bool = False
    candidate_offline_match: bool = False
    # Avatar: which voice its preview video speaks in, as the job that made it recorded:
    # "persona", "offline_match", "standard", or "" when not recorded.
    preview_voice: str = ""
    candidate_preview_voice: str = ""

    @property
    def polling(self) -> bool:
        return self.state in ACTIVE_STATES or (self.voice_sample is not None and self.voice_sample.is_active)

    @property
    def label(self) -> str:
        return STATE_LABELS[self.state]

    @property
    def metric_rows(self) -> list[tuple[str, str]]:
        return metric_rows(self.report.get("metrics") or {})

    @property
    def shows_upload(self) -> bool:
        return self.state not in {"locked", "checking", "training", "retraining"}

    @property
    def can_skip(self) -> bool:
        return self.state not in NO_SKIP_STATES and not self.approved_at

    @property
    def progress(self) -> int:
        job = self.work_job if self.state in {"training", "retraining"} else self.check_job
        return job.progress if job else 0


STATE_LABELS = {
    "locked": "Not in your plan",
    "not_started": "Not started",
    "checking": "Checking",
    "invalid": "Cannot be used",
    "warnings": "Usable, with warnings",
    "checked": "Checked",
    "training": "In progress",
    "retraining": "Replacement in progress",
    "failed": "Failed",
    "ready": "Ready for your approval",
    "candidate": "New version ready",
    "approved": "Approved",
    "skipped": "Skipped",
}


def _percent(value: float) -> str:
    return f"{value * 100:.1f} %"


# Report metrics shown to the user, in order: (key, label, formatter). Others stay internal.
METRIC_ROWS = [
    ("duration_seconds", "Duration", lambda v: f"{v:.0f} s"),
    ("loudness_lufs", "Loudness", lambda v: f"{v:.1f} LUFS"),
    ("snr_db", "Background noise (signal to noise)", lambda v: f"{v:.0f} dB"),
    ("clipping_ratio", "Clipping", _percent),
    ("speech_ratio", "Speech", _percent),
    ("sample_rate", "Sample rate", lambda v: f"{v} Hz"),
    ("width", "Width", lambda v: f"{v} px"),
    ("height", "Height", lambda v: f"{v} px"),
    ("face_count", "Faces found", str),
    ("sharpness", "Sharpness", lambda v: f"{v:.0f}"),
    ("brightness", "Brightness", lambda v: f"{v:.0f} of 255"),
]


def metric_rows(metrics: dict) -> list[tuple[str, str]]:
    return [(label, fmt(metrics[key])) for key, label, fmt in METRIC_ROWS if metrics.get(key) is not None]


def _newest(*jobs: MediaJob | None) -> MediaJob | None:
    present = [j for j in jobs if j is not None]
    return max(present, key=lambda j: (j.created_at, j.pk)) if present else None


def _derive_state(
    *, check: MediaJob | None, work: MediaJob | None, approved_at, skipped_at, ready: bool, sample_present: bool
) -> tuple[str, str]:
    """(state, error) from the newest check and work jobs and the persona's own fields."""
    if work and work.is_active:
        return ("retraining" if approved_at else "training"), ""
    if check and check.is_active:
        return "checking", ""
    newest = _newest(check, work)
    if skipped_at and not approved_at and (newest is None or newest.created_at < skipped_at):
        return "skipped", ""
    if newest is not None and newest == check:
        if check.status in FAILED_JOB_STATUSES:
            return "invalid", check.error or "We could not check this file. Please try another one."
        report = check.result.get("report") or {}
        if report.get("errors"):
            return "invalid", ""
        if sample_present:
            return ("warnings" if report.get("warnings") else "checked"), ""
    if newest is not None and newest == work:
        if work.status in FAILED_JOB_STATUSES:
            cancelled = work.status == JobStatus.CANCELLED
            return "failed", ("You cancelled this." if cancelled else work.error or "This did not work.")
        if pipeline.is_waiting_candidate(work):
            return "candidate", ""
    if approved_at and ready:
        return "approved", ""
    if ready:
        return "ready", ""
    return "not_started", ""


def media_panels(persona: WritingPersona) -> tuple[MediaPanel, MediaPanel]:
    """The voice and avatar panels together: their jobs read in one query, their consents in one."""
    features = persona.user.subscription.features
    offered = [capability for capability in (Capability.VOICE, Capability.AVATAR) if features[capability]]
    consented = current_consents(persona, offered) if offered else set()
    wanted = (VOICE_JOBS if features["voice"] else {}) | (AVATAR_JOBS if features["avatar"] else {})
    jobs = newest_jobs(persona, wanted)
    return voice_panel(persona, consented=consented, jobs=jobs), avatar_panel(persona, consented=consented, jobs=jobs)


# The jobs each panel is derived from: name -> (kind, content type or "" for any).
VOICE_JOBS = {
    "voice_check": (JobKind.SAMPLE_CHECK, ""),
    "voice_work": (JobKind.VOICE_CLONE, ""),
    "voice_sample": (JobKind.RENDER, studio.ContentType.VOICE_SAMPLE),
}
AVATAR_JOBS = {"avatar_check": (JobKind.PHOTO_CHECK, ""), "avatar_work": (JobKind.AVATAR_CREATE, "")}


def newest_jobs(persona: WritingPersona, wanted: dict[str, tuple[str, str]]) -> dict[str, MediaJob | None]:
    """The persona's newest job (newest `created_at`, MediaJob's own order) for each entry of
    `wanted`, in one query. Written out because the ORM cannot put ORDER BY ... LIMIT 1 inside a
    UNION on SQLite, and one ORM query per kind costs more to build (about 0.4 ms each) than the
    database takes to answer; step 6 polls every two seconds."""
    if not wanted:
        return {}
    table = connection.ops.quote_name(MediaJob._meta.db_table)
    column = {
        name: connection.ops.quote_name(MediaJob._meta.get_field(name).column)
        for name in ("persona", "kind", "content_type", "created_at")
    }
    selects, params = [], []
    for index, (kind, content_type) in enumerate(wanted.values()):
        where = f"{column['persona']} = %s AND {column['kind']} = %s"
        params += [persona.pk, kind]
        if content_type:
            where += f" AND {column['content_type']} = %s"
            params.append(content_type)
        selects.append(
            f"SELECT newest_{index}.*, {index} AS wanted_index FROM (SELECT * FROM {table} WHERE {where} "
            f"ORDER BY {column['created_at']} DESC LIMIT 1) AS newest_{index}"
        )
    found = {job.wanted_index: job for job in MediaJob.objects.raw(" UNION ALL ".join(selects), params)}
    return {name: found.get(index) for index, name in enumerate(wanted)}


def current_consents(persona: WritingPersona, capabilities: list[str]) -> set[str]:
    """Which of `capabilities` the user agreed to in their current wording and has not withdrawn."""
    current = Q()
    for capability in capabilities:
        current |= Q(capability=capability, text_version=consent_text(capability).version)
    return set(persona.consents.filter(current, withdrawn_at__isnull=True).values_list("capability", flat=True))


def _needs_consent(persona: WritingPersona, capability: str, consented: set[str] | None) -> bool:
    if consented is None:
        return not has_current_consent(persona=persona, capability=capability)
    return capability not in consented


def voice_panel(persona: WritingPersona, *, consented: set[str] | None = None, jobs: dict | None = None) -> MediaPanel:
    """`consented` and `jobs` (from current_consents and newest_jobs) when read for both panels."""
    features = persona.user.subscription.features
    if not features["voice"]:
        return MediaPanel(Capability.VOICE, "locked", upgrade_tiers=tiers_with("voice"))
    jobs = jobs if jobs is not None else newest_jobs(persona, VOICE_JOBS)
    check, work = jobs["voice_check"], jobs["voice_work"]
    sample_present = bool(
        check and persona.voice_training_audio and persona.voice_training_audio.name == check.input_file.name
    )
    state, error = _derive_state(
        check=check,
        work=work,
        approved_at=persona.voice_approved_at,
        skipped_at=persona.voice_skipped_at,
        ready=persona.voice_training_status == TrainingStatus.READY and bool(persona.voice_id),
        sample_present=sample_present,
    )
    cost = pipeline.voice_clone_cost(settings.VOICE_PROVIDER)
    included = features["voice_clone_included"]
    sample = jobs["voice_sample"] if state in {"ready", "approved"} else None
    return MediaPanel(
        Capability.VOICE,
        state,
        check_job=check,
        work_job=work,
        report=(check.result.get("report") or {}) if check else {},
        error=error,
        needs_consent=_needs_consent(persona, Capability.VOICE, consented),
        # A failed training can be retried while its checked sample is still stored.
        can_retry=state == "failed" and sample_present and check.status == JobStatus.SUCCEEDED,
        cost=cost,
        cost_to_confirm=cost if cost and not included else None,
        included=included,
        voice_sample=sample,
        voice_sample_audio=_voice_sample_audio(sample),
        approved_at=persona.voice_approved_at,
        offline_match=is_offline_voice(persona.speaking_voice_provider),
        candidate_offline_match=bool(work and is_offline_voice(work.provider)),
    )


def is_offline_voice(provider_name: str) -> bool:
    """The offline provider matches pitch and pace with a local synthesiser; it clones nothing."""
    return provider_name == "offline"


def avatar_panel(persona: WritingPersona, *, consented: set[str] | None = None, jobs: dict | None = None) -> MediaPanel:
    features = persona.user.subscription.features
    if not features["avatar"]:
        return MediaPanel(Capability.AVATAR, "locked", upgrade_tiers=tiers_with("avatar"))
    jobs = jobs if jobs is not None else newest_jobs(persona, AVATAR_JOBS)
    check, work = jobs["avatar_check"], jobs["avatar_work"]
    photo_ready = bool(check and check.status == JobStatus.SUCCEEDED and check.result.get("photo_file"))
    state, error = _derive_state(
        check=check,
        work=work,
        approved_at=persona.avatar_approved_at,
        skipped_at=persona.avatar_skipped_at,
        ready=persona.avatar_training_status == TrainingStatus.READY and bool(persona.avatar_id),
        sample_present=photo_ready,
    )
    provider = settings.AVATAR_PROVIDER
    shown = state in {"ready", "approved", "candidate"}
    return MediaPanel(
        Capability.AVATAR,
        state,
        check_job=check,
        work_job=work,
        report=(check.result.get("report") or {}) if check else {},
        error=error,
        needs_consent=_needs_consent(persona, Capability.AVATAR, consented),
        can_retry=state == "failed" and (photo_ready or bool(persona.avatar_portrait.name)),
        cost=pipeline.avatar_cost(provider, pipeline.estimate_seconds_for_text(pipeline.PREVIEW_LINE)),
        included=True,
        approved_at=persona.avatar_approved_at,
        preview_voice=_narration_voice(persona, _job_of_avatar_in_use(persona, work)) if shown else "",
        candidate_preview_voice=_narration_voice(persona, work) if state == "candidate" else "",
    )


def _job_of_avatar_in_use(persona: WritingPersona, newest: MediaJob | None) -> MediaJob | None:
    """The creation job whose video is the persona's avatar preview (the newest job, unless a
    newer avatar was discarded or is waiting for approval)."""
    preview = persona.avatar_preview.name
    if not preview:
        return None
    if newest is not None and newest.result.get("preview_file") == preview:
        return newest
    jobs = persona.jobs.filter(kind=JobKind.AVATAR_CREATE, status=JobStatus.SUCCEEDED)
    return jobs.filter(result__preview_file=preview).first()


def _narration_voice(persona: WritingPersona, job: MediaJob | None) -> str:
    """Which voice an avatar job's video speaks in, from what the job recorded when it spoke."""
    used_persona_voice = job.params.get("used_persona_voice") if job else None
    if used_persona_voice is None:
        return ""
    if not used_persona_voice:
        return "standard"
    return "offline_match" if is_offline_voice(persona.voice_provider) else "persona"


# --- Voice actions ---------------------------------------------------------------------------


def upload_voice_sample(*, persona: WritingPersona, sample, request) -> MediaJob:
    check_rate_limit(persona.user, "upload")
    with transaction.atomic():
        record_consent(persona=persona, capability=Capability.VOICE, request=request)
        return pipeline.check_voice_sample(persona=persona, sample=sample)


def train_voice(*, persona: WritingPersona, check_job: MediaJob, accept_warnings: bool) -> MediaJob:
    check_rate_limit(persona.user, "training")
    return pipeline.start_voice_training(persona=persona, check_job=check_job, accept_warnings=accept_warnings)


def retry_voice(*, persona: WritingPersona) -> MediaJob:
    """Train again from the stored sample after a failure (its warnings were accepted before)."""
    check = pipeline.latest_job(persona, JobKind.SAMPLE_CHECK)
    if check is None:
        raise PipelineError("Please upload a voice sample again.")
    return train_voice(persona=persona, check_job=check, accept_warnings=True)


def cancel_active(*, persona: WritingPersona, kind: str) -> None:
    job = persona.jobs.filter(kind=kind, status__in=ACTIVE_JOB_STATUSES).first()
    if job is None or not pipeline.cancel_job(job):
        raise PipelineError("There is nothing running to cancel.")


def skip(*, persona: WritingPersona, capability: str) -> None:
    field_name = f"{capability}_skipped_at"
    setattr(persona, field_name, timezone.now())
    persona.save(update_fields=[field_name, "updated_at"])


def latest_voice_sample(persona: WritingPersona) -> MediaJob | None:
    return persona.jobs.filter(kind=JobKind.RENDER, content_type=studio.ContentType.VOICE_SAMPLE).first()


def _voice_sample_audio(job: MediaJob | None) -> MediaAsset | None:
    if job is None or job.status != JobStatus.SUCCEEDED:
        return None
    return MediaAsset.objects.filter(pk=job.result.get("audio_asset"), kind=AssetKind.AUDIO).first()


def hear_sentence(*, persona: WritingPersona, text: str) -> MediaJob:
    """Queue one sentence of the user's choice in their trained voice, as the studio's voice-sample
    job: the worker speaks it and meters it, so the request never waits for synthesis."""
    if not persona.user.subscription.features["voice"]:
        raise PipelineError(f"Hearing your own voice is part of the {', '.join(tiers_with('voice'))} plans.")
    if not persona.voice_ready:
        raise PipelineError("Your voice is not ready yet.")
    sample = latest_voice_sample(persona)
    if sample is not None and sample.is_active:
        raise PipelineError("Your last sentence is still being spoken; wait a moment.")
    check_rate_limit(persona.user, "generation")
    return studio.request_voice_sample(persona=persona, text=text)


# --- Avatar actions -------------------------------------------------------------------------------


def upload_photo(*, persona: WritingPersona, photo, request) -> MediaJob:
    check_rate_limit(persona.user, "upload")
    with transaction.atomic():
        record_consent(persona=persona, capability=Capability.AVATAR, request=request)
        return pipeline.check_photo(persona=persona, photo=photo)


def create_avatar(*, persona: WritingPersona, check_job: MediaJob) -> MediaJob:
    check_rate_limit(persona.user, "training")
    return pipeline.start_avatar_creation(persona=persona, check_job=check_job)


def recreate_avatar(*, persona: WritingPersona) -> MediaJob:
    """Create again from the newest usable photo the user gave (the stored one, or a newer one
    whose creation failed); fall back to the photo stored on the persona."""
    check_rate_limit(persona.user, "training")
    check = pipeline.latest_job(persona, JobKind.PHOTO_CHECK)
    if check and check.status == JobStatus.SUCCEEDED and check.result.get("photo_file"):
        return pipeline.start_avatar_creation(persona=persona, check_job=check)
    if not persona.avatar_image or not persona.avatar_portrait.name:
        # The pipeline's own refusal is worded for the operator.
        raise PipelineError("There is no photo to create your avatar from; please upload one.")
    return pipeline.recreate_avatar(persona=persona)


# --- Step 7 ------------------------------------------------------------------------------------------


USAGE_LABELS = {"voice_clone": "Voice cloning", "voice_synthesis": "Speech", "avatar_video": "Avatar video"}


def included_usage_kinds(features: dict) -> set[str]:
    """Usage the plan pays for: what the wizard tells the user is included."""
    return {"voice_clone"} if features["voice_clone_included"] else set()


def persona_costs(persona: WritingPersona) -> dict:
    """Spend per (kind, provider): what the plan includes and what the user pays (the groups are
    few, so no second query). `total` is what the user pays."""
    subscription = persona.user.subscription
    included_kinds = included_usage_kinds(subscription.features)
    usage = UsageRecord.objects.filter(persona=persona)
    rows = list(usage.values("kind", "provider").annotate(total=Sum("cost_usd")).order_by("kind", "provider"))
    for row in rows:
        row["label"] = USAGE_LABELS.get(row["kind"], row["kind"].replace("_", " ").capitalize())
        row["included"] = row["kind"] in included_kinds
    return {
        "total": sum((row["total"] for row in rows if not row["included"]), Decimal("0")),
        "included_total": sum((row["total"] for row in rows if row["included"]), Decimal("0")),
        "plan": subscription.get_tier_display(),
        "rows": rows,
    }


def approval_blockers(persona: WritingPersona, voice: MediaPanel, avatar: MediaPanel) -> list[str]:
    """What still needs a decision before the whole persona can be approved."""
    blockers = []
    if persona.analysed_at is None:
        blockers.append("Your writing style has not been analysed yet.")
    for panel, label in ((voice, "voice"), (avatar, "avatar")):
        # An approved voice/avatar stays in use while a retrain runs or waits for approval.
        if panel.state not in {"locked", "approved", "skipped"} and not panel.approved_at:
            blockers.append(f"Approve or skip your {label} first.")
    return blockers


def approve_persona(*, persona: WritingPersona) -> None:
    blockers = approval_blockers(persona, *media_panels(persona))
    if blockers:
        raise PipelineError(" ".join(blockers))
    persona.approved_at = timezone.now()
    persona.save(update_fields=["approved_at", "updated_at"])
