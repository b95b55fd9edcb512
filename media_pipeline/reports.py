"""Cost and adoption figures for operators (`manage.py usage_report`)."""

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.db.models.functions import TruncMonth

from media_pipeline.models import JobKind, JobStatus, MediaAsset, MediaJob, UsageRecord
from personas.models import Tier, TrainingStatus, WritingPersona


def cost_rows(group_by: str) -> list[dict]:
    """Total cost, uses and media seconds grouped by "user", "tier", "provider" or "month"."""
    field = {"user": "user__email", "tier": "tier", "provider": "provider", "month": "month"}[group_by]
    rows = UsageRecord.objects.annotate(month=TruncMonth("created_at")) if group_by == "month" else UsageRecord.objects
    return list(
        rows.values(field)
        .annotate(uses=Count("id"), seconds=Sum("media_seconds"), cost=Sum("cost_usd"))
        .order_by(field)
        .values_list(field, "uses", "seconds", "cost")
    )


def adoption_metrics() -> dict:
    """The seed's success metrics: among Pro users, the share who finished voice training and
    who created an avatar; among generated pieces of content (one per studio generation, voice
    previews left out), the share that used the persona's voice or avatar."""
    from personas.studio import COUNTED_CONTENT_TYPES  # the studio loads the media stack

    pro_users = get_user_model().objects.filter(subscription__tier=Tier.PRO)
    ready_voice = WritingPersona.objects.filter(user=OuterRef("pk"), voice_training_status=TrainingStatus.READY)
    ready_avatar = WritingPersona.objects.filter(user=OuterRef("pk"), avatar_training_status=TrainingStatus.READY)
    pro_counts = pro_users.aggregate(
        total=Count("pk"),
        voice=Count("pk", filter=Q(Exists(ready_voice))),
        avatar=Count("pk", filter=Q(Exists(ready_avatar))),
    )
    generations = MediaJob.objects.filter(
        kind=JobKind.RENDER, status=JobStatus.SUCCEEDED, content_type__in=COUNTED_CONTENT_TYPES
    )
    # The job records whether its narration was in the persona voice and whether it made an
    # avatar video; its assets say the same while the writer keeps them.
    persona_assets = MediaAsset.objects.filter(job=OuterRef("pk")).filter(
        Q(used_persona_voice=True) | Q(used_persona_avatar=True)
    )
    content = generations.aggregate(
        total=Count("pk"),
        persona=Count(
            "pk",
            filter=Q(result__persona_voice=True) | Q(result__has_key="video_asset") | Q(Exists(persona_assets)),
        ),
    )

    def share(part, whole):
        return round(100 * part / whole, 1) if whole else None

    return {
        "pro_users": pro_counts["total"],
        "voice_completion_pct": share(pro_counts["voice"], pro_counts["total"]),
        "avatar_completion_pct": share(pro_counts["avatar"], pro_counts["total"]),
        "content_items": content["total"],
        "persona_content_pct": share(content["persona"], content["total"]),
    }
