from decimal import Decimal

from django.conf import settings
from django.db import models


class JobKind(models.TextChoices):
    SAMPLE_CHECK = "sample_check", "Voice sample check"
    PHOTO_CHECK = "photo_check", "Photo check"
    VOICE_CLONE = "voice_clone", "Voice training"
    AVATAR_CREATE = "avatar_create", "Avatar creation"
    RENDER = "render", "Content generation"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    WAITING_PROVIDER = "waiting_provider", "Waiting for provider"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.WAITING_PROVIDER)


class MediaJob(models.Model):
    """One training or render job. Our own record of state; the task queue only runs steps."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="media_jobs")
    persona = models.ForeignKey(
        "personas.WritingPersona", on_delete=models.CASCADE, related_name="jobs", null=True, blank=True
    )
    kind = models.CharField(max_length=20, choices=JobKind.choices)
    content_type = models.CharField(max_length=30, blank=True, help_text="story, linkedin, blog, email, preview...")
    provider = models.CharField(max_length=50)
    provider_job_id = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Raised by every claim; a queued step carries the value it was queued with, so a duplicate
    # of the same step (a delayed poll the sweeper also re-queued) finds it already taken.
    step_token = models.PositiveIntegerField(default=0)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    input_file = models.FileField(upload_to="private/job_inputs/", blank=True, max_length=300)
    estimated_cost_usd = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0"))
    cost_usd = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0"))
    media_seconds = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "lease_expires_at"]),
            models.Index(fields=["persona", "kind", "-created_at"]),
            # The dashboard's running jobs and the monthly allowance count.
            models.Index(fields=["persona", "status"]),
            models.Index(fields=["user", "kind", "-created_at"]),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(progress__lte=100), name="job_progress_max_100"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_JOB_STATUSES


class UsageRecord(models.Model):
    """One metered provider use. The idempotency key makes a second charge impossible."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_records")
    persona = models.ForeignKey(
        "personas.WritingPersona", on_delete=models.SET_NULL, related_name="usage_records", null=True, blank=True
    )
    job = models.ForeignKey(MediaJob, on_delete=models.SET_NULL, related_name="usage_records", null=True, blank=True)
    kind = models.CharField(max_length=30, help_text="voice_clone, voice_synthesis, avatar_video ...")
    content_type = models.CharField(max_length=30, blank=True)
    provider = models.CharField(max_length=50)
    tier = models.CharField(max_length=20, blank=True)
    media_seconds = models.FloatField(default=0)
    cost_usd = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0"))
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "created_at"])]

    def __str__(self):
        return f"{self.kind} {self.provider} ${self.cost_usd}"


class AssetKind(models.TextChoices):
    AUDIO = "audio", "Audio"
    VIDEO = "video", "Video"
    SUBTITLES = "subtitles", "Subtitles"


class MediaAsset(models.Model):
    """A generated file in the user's media library."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="media_assets")
    persona = models.ForeignKey(
        "personas.WritingPersona", on_delete=models.CASCADE, related_name="assets", null=True, blank=True
    )
    job = models.ForeignKey(MediaJob, on_delete=models.SET_NULL, related_name="assets", null=True, blank=True)
    kind = models.CharField(max_length=20, choices=AssetKind.choices)
    content_type = models.CharField(max_length=30, blank=True)
    title = models.CharField(max_length=200, blank=True)
    file = models.FileField(upload_to="private/generated/", max_length=300)
    mime_type = models.CharField(max_length=100)
    duration_seconds = models.FloatField(default=0)
    provider = models.CharField(max_length=50, blank=True)
    used_persona_voice = models.BooleanField(default=False)
    used_persona_avatar = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "kind", "-created_at"]),
            # The library's (and the dashboard's) newest-first pages, without sorting every asset.
            models.Index(fields=["user", "-created_at", "-id"]),
        ]

    def __str__(self):
        return self.title or f"{self.kind} #{self.pk}"
