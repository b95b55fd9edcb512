"""Cost and adoption figures for operators (`manage.py usage_report`)."""

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncMonth

from media_pipeline.models import MediaAsset, UsageRecord
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
    """The seed's success metrics: voice/avatar completion among Pro users, persona share of content."""
    pro = WritingPersona.objects.filter(user__subscription__tier=Tier.PRO)
    pro_counts = pro.aggregate(
        total=Count("id"),
        voice=Count("id", filter=Q(voice_training_status=TrainingStatus.READY)),
        avatar=Count("id", filter=Q(avatar_training_status=TrainingStatus.READY)),
    )
    content = MediaAsset.objects.exclude(kind="subtitles").aggregate(
        total=Count("id"), persona=Count("id", filter=Q(used_persona_voice=True) | Q(used_persona_avatar=True))
    )

    def share(part, whole):
        return round(100 * part / whole, 1) if whole else None

    return {
        "pro_personas": pro_counts["total"],
        "voice_completion_pct": share(pro_counts["voice"], pro_counts["total"]),
        "avatar_completion_pct": share(pro_counts["avatar"], pro_counts["total"]),
        "content_items": content["total"],
        "persona_content_pct": share(content["persona"], content["total"]),
    }
