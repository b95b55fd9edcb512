"""`usage_report`'s adoption metrics on a dataset built to give known figures."""

from django.core.management import call_command

from media_pipeline.models import JobKind, JobStatus, MediaAsset, MediaJob
from media_pipeline.reports import adoption_metrics
from personas.models import Tier, TrainingStatus, WritingPersona
from tests.conftest import make_user


def persona_for(user, *, voice=False, avatar=False, **fields) -> WritingPersona:
    values = {
        "voice_id": "v1" if voice else "",
        "voice_training_status": TrainingStatus.READY if voice else TrainingStatus.NOT_TRAINED,
        "avatar_id": "a1" if avatar else "",
        "avatar_training_status": TrainingStatus.READY if avatar else TrainingStatus.NOT_TRAINED,
    }
    return WritingPersona.objects.create(user=user, name=f"{user.username} persona", **{**values, **fields})


def generation(persona, content_type, *, assets=(), status=JobStatus.SUCCEEDED, result=None) -> MediaJob:
    """A studio job with its library files: `assets` are (kind, persona voice, persona avatar)."""
    job = MediaJob.objects.create(
        user=persona.user,
        persona=persona,
        kind=JobKind.RENDER,
        content_type=content_type,
        provider="offline",
        status=status,
        result=result or {},
    )
    for kind, voice, avatar in assets:
        MediaAsset.objects.create(
            user=persona.user,
            persona=persona,
            job=job,
            kind=kind,
            content_type=content_type,
            file="private/generated/x",
            mime_type="audio/mpeg",
            used_persona_voice=voice,
            used_persona_avatar=avatar,
        )
    return job


def test_adoption_metrics_count_pro_users_and_pieces_of_content(db):
    # Five Pro users: three finished voice training, two created an avatar.
    both = persona_for(make_user("both", Tier.PRO), voice=True, avatar=True)
    persona_for(make_user("voice-only", Tier.PRO), voice=True)
    twice = make_user("two-personas", Tier.PRO)
    persona_for(twice, voice=True, avatar=True)
    persona_for(twice, voice=True, avatar=True)  # still one user
    persona_for(make_user("training", Tier.PRO), voice_training_status=TrainingStatus.TRAINING)
    make_user("no-persona", Tier.PRO)
    # Other tiers are not part of these rates.
    basic = persona_for(make_user("basic", Tier.BASIC), voice=True)
    persona_for(make_user("enterprise", Tier.ENTERPRISE), voice=True, avatar=True)

    persona_scene = ("audio", True, False)
    # A five-scene story in the persona voice: six audio files (scenes + combined), one piece.
    generation(both, "story", assets=[persona_scene] * 6, result={"persona_voice": True})
    # A LinkedIn video: the persona avatar with the standard voice.
    generation(both, "linkedin", assets=[("audio", False, False), ("video", False, True), ("subtitles", False, False)])
    # A blog narration whose files the writer deleted: the job still says it used the persona voice.
    generation(basic, "blog", result={"persona_voice": True, "audio_asset": 99})
    # A blog and an email in the standard voice.
    generation(basic, "blog", assets=[("audio", False, False)], result={"persona_voice": False})
    generation(both, "email", assets=[("audio", False, False)])
    # Not content: voice previews, failed and running jobs, training jobs.
    generation(both, "voice_sample", assets=[persona_scene], result={"persona_voice": True})
    generation(both, "story", status=JobStatus.FAILED, assets=[persona_scene])
    generation(both, "story", status=JobStatus.RUNNING)
    MediaJob.objects.create(
        user=both.user, persona=both, kind=JobKind.VOICE_CLONE, provider="offline", status=JobStatus.SUCCEEDED
    )

    metrics = adoption_metrics()

    assert metrics["pro_users"] == 5
    assert metrics["voice_completion_pct"] == 60.0  # 3 of 5
    assert metrics["avatar_completion_pct"] == 40.0  # 2 of 5
    assert metrics["content_items"] == 5
    assert metrics["persona_content_pct"] == 60.0  # story, LinkedIn video, deleted blog: 3 of 5


def test_usage_report_prints_the_three_rates_against_their_targets(db, capsys):
    persona_for(make_user("pro", Tier.PRO), voice=True)
    make_user("pro-2", Tier.PRO)
    call_command("usage_report", "--by", "tier")
    out = capsys.readouterr().out
    assert "voice_completion_pct     50.0 (target > 60%)" in out
    assert "avatar_completion_pct    0.0 (target > 50%)" in out
    assert "persona_content_pct      n/a (target > 80%)" in out
