"""Bench data: one Pro user per size with an approved persona and `rows` jobs, media assets and
usage records, plus a logged-in session. Runs inside a process set up with benchlib.setup_django."""

from datetime import timedelta
from decimal import Decimal


def seed_user(name: str, rows: int) -> dict:
    from django.contrib.auth.models import User
    from django.test import Client, RequestFactory
    from django.utils import timezone

    from media_pipeline.models import AssetKind, JobKind, JobStatus, MediaAsset, MediaJob, UsageRecord
    from onboarding.models import OnboardingData
    from personas.consent import record_consent
    from personas.models import Capability, PlatformAdaptation, Tier, TrainingStatus, WritingPersona

    now = timezone.now()
    user = User.objects.create_user(name, f"{name}@example.com", "correct horse battery staple")
    user.subscription.tier = Tier.PRO
    user.subscription.save()
    OnboardingData.objects.create(
        user=user,
        brand_name=name,
        writing_samples="I write short, practical pieces for busy readers. " * 40,
        platforms=["linkedin", "blog"],
        analysis_requested_at=now - timedelta(minutes=5),
    )
    persona = WritingPersona.objects.create(
        user=user,
        name=f"{name} persona",
        tone="warm",
        voice="first person",
        complexity="plain",
        readability_grade=8.0,
        engagement_level="high",
        analysis_source="offline",
        analysed_at=now,
        voice_id="offline-bench-voice",
        voice_provider="offline",
        voice_training_status=TrainingStatus.READY,
        voice_trained_at=now,
        voice_approved_at=now,
        voice_profile={"f0_median_hz": 110.0, "speaking_rate_sps": 4.4},
        voice_preview="private/voice_previews/bench.wav",
        avatar_id="offline-bench-avatar",
        avatar_provider="offline",
        avatar_training_status=TrainingStatus.READY,
        avatar_image="private/avatar_photos/bench.jpg",
        avatar_portrait="private/avatar_photos/bench.png",
        avatar_preview="private/avatar_previews/bench.mp4",
        avatar_created_at=now,
        avatar_approved_at=now,
        approved_at=now,
    )
    for platform in ("linkedin", "blog"):
        PlatformAdaptation.objects.create(persona=persona, platform=platform, tone="warm")
    for capability in (Capability.VOICE, Capability.AVATAR):
        record_consent(persona=persona, capability=capability, request=RequestFactory().get("/"))

    kinds = [JobKind.RENDER, JobKind.SAMPLE_CHECK, JobKind.PHOTO_CHECK, JobKind.VOICE_CLONE, JobKind.AVATAR_CREATE]
    report = {"metrics": {"duration_seconds": 75.0, "snr_db": 40.0}, "checks": [], "errors": [], "warnings": []}
    jobs = [
        MediaJob(
            user=user,
            persona=persona,
            kind=kinds[i % len(kinds)],
            content_type="linkedin" if i % len(kinds) == 0 else "preview",
            provider="offline",
            # Two renders still running; everything else finished.
            status=JobStatus.RUNNING if i in (0, 5) else JobStatus.SUCCEEDED,
            progress=50 if i in (0, 5) else 100,
            result={"report": report} if kinds[i % len(kinds)] != JobKind.RENDER else {},
            deadline=now + timedelta(hours=1),
            finished_at=None if i in (0, 5) else now,
        )
        for i in range(rows)
    ]
    MediaJob.objects.bulk_create(jobs)
    jobs = list(MediaJob.objects.filter(user=user).order_by("pk"))
    MediaAsset.objects.bulk_create(
        MediaAsset(
            user=user,
            persona=persona,
            job=jobs[i % len(jobs)],
            kind=(AssetKind.AUDIO, AssetKind.VIDEO, AssetKind.SUBTITLES)[i % 3],
            content_type=("linkedin", "blog", "story", "email")[i % 4],
            title=f"Bench asset {i}",
            file=f"private/generated/bench-{name}-{i}.mp4",
            mime_type="video/mp4",
            duration_seconds=30.0,
            provider="offline",
            used_persona_voice=True,
            used_persona_avatar=i % 3 == 1,
        )
        for i in range(rows)
    )
    UsageRecord.objects.bulk_create(
        UsageRecord(
            user=user,
            persona=persona,
            job=jobs[i % len(jobs)],
            kind=("voice_synthesis", "avatar_video", "voice_clone")[i % 3],
            content_type=("linkedin", "blog", "story", "email", "preview")[i % 5],
            provider="offline",
            tier="pro",
            media_seconds=30.0,
            cost_usd=Decimal("0"),
            idempotency_key=f"bench:{name}:{i}",
        )
        for i in range(rows)
    )
    client = Client()
    client.force_login(user)
    return {"user_id": user.pk, "persona_id": persona.pk, "session": client.cookies["sessionid"].value}


def pages(persona_id: int) -> dict[str, tuple[str, dict]]:
    """The measured pages: name -> (path, extra headers)."""
    htmx = {"HX-Request": "true"}
    return {
        "bare view (baseline)": ("/bench/bare/", {}),
        "site layout only (login + base.html)": ("/bench/layout/", {}),
        "dashboard /persona/": ("/persona/", {}),
        "dashboard live status (htmx)": ("/persona/", htmx),
        "wizard step 6": (f"/onboarding/persona/{persona_id}/", {}),
        "wizard voice section (htmx poll)": (f"/onboarding/persona/{persona_id}/voice/", htmx),
        "wizard step 7 preview": (f"/onboarding/persona/{persona_id}/preview/", {}),
        "wizard content step": ("/onboarding/content/", {}),
        "media library": ("/persona/library/", {}),
    }
