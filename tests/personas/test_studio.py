"""The content studio service: planning (tiers, caps, costs), every voice fallback branch, the
worker's steps with real offline media, metering without double charges, and paid providers
behind `responses`."""

import io
import json
from decimal import Decimal

import av
import numpy as np
import pytest
import responses
from django.core.files.storage import default_storage
from django.utils import timezone

from media_pipeline import services as pipeline
from media_pipeline.models import AssetKind, JobStatus, MediaAsset, MediaJob, UsageRecord
from media_pipeline.providers.base import ProviderError
from media_pipeline.services import PipelineError
from personas import studio
from personas.models import Platform, Tier, TrainingStatus
from tests.media_factory import make_audio, make_mp4
from tests.media_pipeline.test_gtts import ENDPOINT as GTTS_ENDPOINT
from tests.media_pipeline.test_gtts import google_reply
from tests.personas.conftest import add_adaptation, astronaut_portrait, make_persona

STORY = ("The lighthouse keeper counted the ships.", "One night a ship did not come home.")
LONG_POST = " ".join(f"Sentence number {n} explains one more idea about writing well." for n in range(1, 40))


def generate(django_capture_on_commit_callbacks, run_jobs, **kwargs) -> MediaJob:
    with django_capture_on_commit_callbacks(execute=True):
        content = studio.generate_content_with_persona(**kwargs)
    run_jobs()
    content.job.refresh_from_db()
    return content.job


# --- Text helpers ----------------------------------------------------------------------------


def test_long_text_is_split_at_paragraphs_then_sentences_within_the_limit():
    paragraph = " ".join(f"This is sentence {n} of a long paragraph." for n in range(40))
    text = f"Short opening paragraph.\n\n{paragraph}\n\nClosing line."
    chunks = studio.split_for_narration(text, limit=200)
    assert all(len(chunk) <= 200 for chunk in chunks)
    assert all(chunk.endswith(".") for chunk in chunks)  # never cut mid-sentence
    assert " ".join(chunks) == " ".join(text.split())


def test_a_sentence_longer_than_the_limit_is_split_at_words():
    chunks = studio.split_for_narration("word " * 100, limit=50)
    assert all(len(c) <= 50 for c in chunks) and sum(len(c.split()) for c in chunks) == 100


def test_linkedin_adaptation_trims_adds_hashtags_and_strips_emoji(owner):
    persona = make_persona(owner)
    adaptation = add_adaptation(persona, target_length_words=25, hashtags=3, emoji_use="none")
    post = "Writing daily changed my career 🚀. " + LONG_POST + " #writing"
    adapted = studio.adapt_for_platform(post, adaptation)
    body, tags = adapted.rsplit("\n\n", 1)
    assert len(body.split()) <= 25 and body.endswith(".")
    assert "🚀" not in adapted
    assert body.startswith("Writing daily changed my career. ")
    assert tags.split()[0] == "#writing" and len(tags.split()) == 3  # the writer's own tag first
    assert all(tag.startswith("#") for tag in tags.split())
    assert "#" not in studio.narration_text(adapted)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("none", "Ship it today!"), ("light", "Ship it 🚀🎉 today!"), ("frequent", "Ship it 🚀🎉🔥 today!")],
)
def test_emoji_policy(owner, policy, expected):
    adaptation = add_adaptation(make_persona(owner), emoji_use=policy)
    assert studio.apply_emoji_policy("Ship it 🚀🎉🔥 today!", adaptation) == expected


def test_srt_cues_follow_the_narration_timing():
    cues = studio.caption_cues([("Hello there, this is the first part.", 2.0), ("Second.", 1.0)], pause=0.5)
    assert cues[0][0] == 0 and cues[-1][1] == pytest.approx(3.5)
    srt = studio.srt_text(cues)
    assert srt.startswith("1\n00:00:00,000 --> 00:00:02,000\nHello there, this is the first part.\n")
    assert "00:00:02,500 --> 00:00:03,500\nSecond." in srt


TONE_EXAMPLES = [
    (
        "Formal and authoritative",
        "Don't worry! It's been a year and I'm sure we're ready. The writer's draft isn't done?! I can't wait.",
        "Do not worry. It has been a year and I am sure we are ready. The writer's draft is not done? I cannot wait.",
    ),
    (
        "Friendly and conversational",
        "I do not know. I am sure you are right. We cannot stop and it is not over. Here I am.",
        "I don't know. I'm sure you're right. We can't stop and it isn't over. Here I am.",
    ),
    ("Enthusiastic", "We shipped it. It works.", "We shipped it. It works!"),
    ("Clear and informative", "Don't worry! We're ready.", "Don't worry! We're ready."),  # as written
]


@pytest.mark.parametrize(("tone", "text", "expected"), TONE_EXAMPLES)
def test_tone_makes_small_predictable_edits(owner, tone, text, expected):
    adaptation = add_adaptation(make_persona(owner), tone=tone)
    assert studio.apply_tone(text, adaptation) == expected


def test_the_linkedin_post_follows_the_platform_tone(owner):
    persona = make_persona(owner)
    add_adaptation(persona, tone="Formal", target_length_words=60, hashtags=0, emoji_use="none")
    plan = studio.plan_generation(
        persona=persona, request=studio.GenerationRequest("linkedin", text="We didn't plan it! It's working.")
    )
    assert plan.text == "We did not plan it. It is working."
    assert plan.segments == ["We did not plan it. It is working."]


def test_a_story_gets_its_platform_adaptation_scene_by_scene(owner):
    persona = make_persona(owner)
    add_adaptation(persona, Platform.STORY, tone="Formal", target_length_words=15, hashtags=1, emoji_use="none")
    scenes = (
        "The keeper didn't sleep 🌙! He watched the sea.",  # 9 words once formal
        "A ship wasn't coming home. He lit the lamp. Then he waited all night long.",
        "Morning came.",
    )
    plan = studio.plan_generation(
        persona=persona, request=studio.GenerationRequest("story", scenes=scenes, title="Keeper")
    )
    # Tone and emoji per scene; the length over the whole story, cut at a sentence.
    assert plan.segments == ["The keeper did not sleep. He watched the sea.", "A ship was not coming home."]
    assert plan.video_segment_count == 0  # no video asked for
    body, tags = plan.text.rsplit("\n\n", 1)
    assert body == "\n\n".join(plan.segments) and tags.startswith("#") and len(tags.split()) == 1
    assert any("shortened" in note for note in plan.notes)


def test_a_story_without_a_story_adaptation_is_narrated_as_written(owner):
    persona = make_persona(owner)
    add_adaptation(persona, Platform.LINKEDIN, tone="Formal", target_length_words=20)
    plan = studio.plan_generation(persona=persona, request=studio.GenerationRequest("story", scenes=STORY, title="K"))
    assert plan.segments == list(STORY) and not any("shortened" in note for note in plan.notes)


# --- Planning: tiers, opt-outs, caps, costs ---------------------------------------------------


@pytest.mark.parametrize(
    ("tier", "voice", "expected_provider", "uses_persona"),
    [
        (Tier.FREE, True, "offline", False),  # Free: the standard voice even with a trained voice
        (Tier.BASIC, True, "offline", True),  # Basic: the persona voice (offline clone here)
        (Tier.BASIC, False, "offline", False),  # not trained yet: fallback
        (Tier.PRO, True, "offline", True),
        (Tier.ENTERPRISE, True, "offline", True),
    ],
)
def test_voice_choice_follows_tier_and_readiness(user_on, tier, voice, expected_provider, uses_persona):
    persona = make_persona(user_on(tier), voice=voice)
    plan = studio.plan_generation(
        persona=persona, request=studio.GenerationRequest(content_type="blog", text="A short post.", title="T")
    )
    assert (plan.voice_provider, plan.uses_persona_voice) == (expected_provider, uses_persona)
    assert bool(plan.notes) != uses_persona  # the page says why the standard voice narrates


@pytest.mark.parametrize("tier", [Tier.FREE, Tier.BASIC])
def test_avatar_video_is_refused_below_pro(user_on, tier):
    persona = make_persona(user_on(tier), voice=True, avatar=True)
    request = studio.GenerationRequest(content_type="linkedin", text="Hello network.", make_video=True)
    with pytest.raises(PipelineError, match="Pro and Enterprise"):
        studio.plan_generation(persona=persona, request=request)
    # Text and audio are still fine.
    plan = studio.plan_generation(persona=persona, request=studio.GenerationRequest("linkedin", text="Hello."))
    assert not plan.makes_video


def test_video_needs_a_ready_avatar_and_no_opt_out(owner):
    request = studio.GenerationRequest(
        content_type="email", text="See you soon.", recipient_name="Ana", make_video=True
    )
    with pytest.raises(PipelineError, match="avatar is not ready"):
        studio.plan_generation(persona=make_persona(owner, voice=True), request=request)
    opted_out = make_persona(owner, avatar=True, avatar_opted_out=True)
    with pytest.raises(PipelineError, match="opted out"):
        studio.plan_generation(persona=opted_out, request=request)


def test_opted_out_voice_uses_the_standard_voice(owner):
    persona = make_persona(owner, voice=True, voice_opted_out=True)
    plan = studio.plan_generation(persona=persona, request=studio.GenerationRequest("blog", text="Hi.", title="T"))
    assert not plan.uses_persona_voice and "opted out" in plan.notes[0]


@pytest.mark.parametrize("captions_enabled", [True, False])
@pytest.mark.parametrize(
    ("content_type", "fields"),
    [
        ("story", {"scenes": STORY, "title": "S"}),
        ("blog", {"text": "A post.", "title": "B"}),
        ("email", {"text": "See you soon.", "recipient_name": "Ana"}),
        ("linkedin", {"text": "Hello network."}),
    ],
)
def test_every_generation_burns_captions_as_the_persona_is_set(owner, captions_enabled, content_type, fields):
    persona = make_persona(owner, voice=True, avatar=True, captions_enabled=captions_enabled)
    request = studio.GenerationRequest(content_type, make_video=True, **fields)
    assert studio.plan_generation(persona=persona, request=request).burn_captions is captions_enabled


@pytest.mark.parametrize("captions_enabled", [True, False])
def test_the_studio_forms_use_the_captions_setting_and_linkedin_can_override_it(owner, captions_enabled):
    from personas.forms import BlogNarrationForm, LinkedInVideoForm

    persona = make_persona(owner, voice=True, avatar=True, captions_enabled=captions_enabled)

    def planned(form, text):
        assert form.is_valid(), form.errors
        request = studio.GenerationRequest(form.content_type, text=text, **form.request_options())
        return studio.plan_generation(persona=persona, request=request)

    blog = BlogNarrationForm({"title": "B", "text": "A post.", "make_video": "on"}, persona=persona)
    blog.content_type = "blog"
    assert planned(blog, "A post.").burn_captions is captions_enabled
    unbound = LinkedInVideoForm(persona=persona)
    assert unbound["burn_captions"].value() is captions_enabled  # the saved setting is the default
    override = {"text": "Hi.", "aspect_ratio": "1:1", "make_video": "on"}
    if not captions_enabled:
        override["burn_captions"] = "on"
    linkedin = LinkedInVideoForm(override, persona=persona)
    linkedin.content_type = "linkedin"
    assert planned(linkedin, "Hi.").burn_captions is not captions_enabled  # changed for this post only


def test_paid_providers_are_estimated_before_the_job(owner, settings):
    persona = make_persona(owner, voice=True, avatar=True)
    persona.voice_provider, persona.avatar_provider = "minimax", "wavespeed"
    text = " ".join(["word"] * 300)  # 300 words at 150 wpm = 120 s
    plan = studio.plan_generation(
        persona=persona,
        request=studio.GenerationRequest("linkedin", text=text, make_video=True, burn_captions=False),
    )
    assert plan.audio_seconds == pytest.approx(120, abs=1)
    assert plan.voice_cost == pipeline.synthesis_cost("minimax", plan.audio_seconds)
    assert plan.video_cost == pipeline.avatar_cost("wavespeed", plan.video_seconds, "480p") > 0
    assert plan.estimated_cost == plan.voice_cost + plan.video_cost


def test_blog_explainer_video_covers_only_the_opening(owner):
    persona = make_persona(owner, voice=True, avatar=True)
    plan = studio.plan_generation(
        persona=persona, request=studio.GenerationRequest("blog", text=LONG_POST * 3, title="Long", make_video=True)
    )
    assert 0 < plan.video_segment_count < len(plan.segments)
    assert plan.video_seconds < plan.audio_seconds
    assert plan.video_seconds <= studio.EXPLAINER_WORDS / 150 * 60 + 5


def test_overlong_video_is_refused(owner):
    persona = make_persona(owner, voice=True, avatar=True)
    request = studio.GenerationRequest("linkedin", text=" ".join(["word"] * 2000), make_video=True)
    with pytest.raises(PipelineError, match="at most 10 minutes"):
        studio.plan_generation(persona=persona, request=request)


@pytest.mark.parametrize("tier", [Tier.FREE, Tier.BASIC, Tier.PRO])
def test_monthly_cap_refuses_with_a_clear_message(user_on, settings, tier):
    cap = settings.TIERS[tier]["monthly_generations"]
    assert cap  # every tier below Enterprise has a cap
    persona = make_persona(user_on(tier))

    def earlier_generations(count, **fields):
        MediaJob.objects.bulk_create(
            MediaJob(
                user=persona.user, persona=persona, kind="render", content_type="blog", provider="offline", **fields
            )
            for _ in range(count)
        )

    earlier_generations(cap - 1)
    studio.generate_content_with_persona(user=persona.user, content_type="blog", text="Hi.", title="T")  # the last
    with pytest.raises(PipelineError, match=f"used all {cap} generations") as caught:
        studio.generate_content_with_persona(user=persona.user, content_type="blog", text="Hi.", title="T")
    assert "Upgrade" in str(caught.value)
    # Failed generations and voice samples do not count.
    MediaJob.objects.filter(persona=persona).update(status=JobStatus.FAILED)
    studio.generate_content_with_persona(user=persona.user, content_type="blog", text="Hi.", title="T")
    studio.request_voice_sample(persona=persona, voice_settings={})
    assert studio.generations_this_month(persona.user) == 1


def test_enterprise_is_unlimited(user_on, settings):
    persona = make_persona(user_on(Tier.ENTERPRISE))
    MediaJob.objects.bulk_create(
        MediaJob(user=persona.user, persona=persona, kind="render", content_type="blog", provider="offline")
        for _ in range(settings.TIERS["pro"]["monthly_generations"] + 1)
    )
    content = studio.generate_content_with_persona(user=persona.user, content_type="blog", text="Hi.", title="T")
    assert content.job.pk


# --- The worker: real offline media -----------------------------------------------------------


def test_story_with_avatar_video_makes_every_asset_and_meters_each_step(
    persona, run_jobs, django_capture_on_commit_callbacks
):
    job = generate(
        django_capture_on_commit_callbacks,
        run_jobs,
        user=persona.user,
        content_type="story",
        scenes=STORY,
        title="The keeper",
        make_video=True,
    )
    assert job.status == JobStatus.SUCCEEDED, job.error
    assets = {a.title: a for a in job.assets.all()}
    combined = assets["The keeper · narration"]
    assert combined.used_persona_voice and combined.mime_type == "audio/mpeg"
    assert job.result["persona_voice"] is True  # kept on the job for the adoption figures
    scene_clips = [assets["The keeper · scene 1"], assets["The keeper · scene 2"]]
    # One combined file: as long as both scenes plus the pause between them.
    assert combined.duration_seconds == pytest.approx(
        sum(c.duration_seconds for c in scene_clips) + studio.PAUSE_SECONDS["story"], abs=0.1
    )
    video = assets["The keeper · AI-generated video"]
    assert video.used_persona_avatar and video.kind == AssetKind.VIDEO
    with default_storage.open(video.file.name) as f, av.open(io.BytesIO(f.read())) as container:
        assert container.metadata.get("comment", "").startswith("AI-generated")
        assert container.duration / 1e6 == pytest.approx(combined.duration_seconds, abs=0.3)
    srt = default_storage.open(assets["The keeper · captions"].file.name).read().decode()
    assert "The lighthouse keeper counted the ships." in srt
    kinds = sorted(UsageRecord.objects.filter(job=job).values_list("kind", flat=True))
    assert kinds == ["avatar_video", "voice_synthesis", "voice_synthesis"]
    # Intermediate files are gone; the kept scene clips are library assets.
    parts = default_storage.listdir("private/generated/parts")[1]
    assert sorted(f"private/generated/parts/{p}" for p in parts) == sorted(c.file.name for c in scene_clips)


def test_persona_content_returns_text_audio_and_video(persona, run_jobs, django_capture_on_commit_callbacks):
    add_adaptation(persona, Platform.LINKEDIN, hashtags=2, target_length_words=60, emoji_use="none")
    with django_capture_on_commit_callbacks(execute=True):
        content = studio.generate_content_with_persona(
            user=persona.user,
            content_type="linkedin",
            text="Consistency beats talent when talent does not write. Publish weekly and learn in public.",
            make_video=True,
            aspect_ratio="9:16",
        )
    assert content.text.count("#") == 2 and content.audio is None
    run_jobs()
    assert content.audio.kind == "audio" and content.video.kind == "video" and content.subtitles.kind == "subtitles"
    assert "AI-generated" in content.video.title
    with default_storage.open(content.video.file.name) as f, av.open(io.BytesIO(f.read())) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (512, 910)  # 9:16


def test_standard_voice_when_the_writer_turns_their_voice_off(persona, run_jobs, django_capture_on_commit_callbacks):
    job = generate(
        django_capture_on_commit_callbacks,
        run_jobs,
        user=persona.user,
        content_type="story",
        scenes=STORY,
        title="Off",
        use_persona_voice=False,
    )
    audio = job.assets.get(title="Off · narration")
    assert not audio.used_persona_voice and audio.provider == "offline"
    assert job.result["persona_voice"] is False
    assert set(UsageRecord.objects.filter(job=job).values_list("provider", flat=True)) == {"offline"}


def test_gtts_narrates_when_enabled_and_the_voice_is_not_ready(
    owner, settings, run_jobs, django_capture_on_commit_callbacks
):
    settings.GTTS_ENABLED = True
    make_persona(owner)
    with responses.RequestsMock() as mocked:
        mocked.post(GTTS_ENDPOINT, body=google_reply(make_audio("mp3", 1.5)))
        job = generate(
            django_capture_on_commit_callbacks, run_jobs, user=owner, content_type="blog", text="Hello.", title="G"
        )
    audio = job.assets.get()
    assert audio.provider == "gtts" and not audio.used_persona_voice
    assert audio.duration_seconds == pytest.approx(1.5, abs=0.1)


def test_offline_voice_when_gtts_is_unreachable(owner, settings, run_jobs, django_capture_on_commit_callbacks):
    settings.GTTS_ENABLED = True
    persona = make_persona(owner)
    with responses.RequestsMock() as mocked:
        mocked.post(GTTS_ENDPOINT, status=503)
        job = generate(
            django_capture_on_commit_callbacks, run_jobs, user=owner, content_type="blog", text="Hello.", title="G"
        )
    assert job.status == JobStatus.SUCCEEDED and job.assets.get().provider == "offline"
    assert persona.pk == job.persona_id


def minimax_persona(owner, settings):
    settings.MINIMAX_API_KEY = "mm-test"
    settings.MINIMAX_BASE_URL = "https://api.minimax.io"
    persona = make_persona(owner, voice=True)
    persona.voice_provider = "minimax"
    persona.save()
    return persona


def test_persona_voice_at_minimax_is_metered_at_its_price(
    owner, settings, run_jobs, django_capture_on_commit_callbacks
):
    persona = minimax_persona(owner, settings)
    reply = {
        "data": {"audio": make_audio("mp3", 3.0).hex(), "status": 2},
        "extra_info": {"audio_length": 3000, "usage_characters": 20},
        "base_resp": {"status_code": 0, "status_msg": "success"},
    }
    with responses.RequestsMock() as mocked:
        mocked.post("https://api.minimax.io/v1/t2a_v2", json=reply)
        job = generate(
            django_capture_on_commit_callbacks, run_jobs, user=owner, content_type="linkedin", text="Hello.", title="M"
        )
        sent = json.loads(mocked.calls[0].request.body)
    assert sent["voice_setting"]["voice_id"] == persona.voice_id
    record = UsageRecord.objects.get(job=job)
    assert (record.provider, record.cost_usd) == ("minimax", pipeline.synthesis_cost("minimax", 3.0))
    assert job.cost_usd == record.cost_usd and job.assets.get().used_persona_voice


def test_a_final_persona_voice_error_falls_back_to_the_standard_voice(
    owner, settings, run_jobs, django_capture_on_commit_callbacks
):
    minimax_persona(owner, settings)
    refused = {"base_resp": {"status_code": 1008, "status_msg": "insufficient balance"}}
    with responses.RequestsMock() as mocked:
        mocked.post("https://api.minimax.io/v1/t2a_v2", json=refused)
        job = generate(
            django_capture_on_commit_callbacks, run_jobs, user=owner, content_type="linkedin", text="Hello.", title="F"
        )
    audio = job.assets.get()
    assert job.status == JobStatus.SUCCEEDED and audio.provider == "offline" and not audio.used_persona_voice
    assert UsageRecord.objects.get(job=job).cost_usd == 0


# --- Long narration at MiniMax: one background task, polled by the job -----------------------

MINIMAX = "https://api.minimax.io"
SUBMIT = MINIMAX + "/v1/t2a_async_v2"
QUERY = MINIMAX + "/v1/query/t2a_async_query_v2"
RETRIEVE = MINIMAX + "/v1/files/retrieve_content"
MM_OK = {"status_code": 0, "status_msg": "success"}
TASK = {"task_id": "777001", "task_token": "tok", "file_id": 777001, "usage_characters": 2410, "base_resp": MM_OK}


def task_status(status: str, file_id: int | None = None) -> dict:
    return {"task_id": 777001, "status": status, "base_resp": MM_OK, **({"file_id": file_id} if file_id else {})}


def calls_to(mocked, url: str) -> int:
    return len([c for c in mocked.calls if c.request.url.startswith(url)])


def decoded_seconds(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        return sum(frame.samples / frame.sample_rate for frame in container.decode(audio=0))


def queue_blog(owner, django_capture_on_commit_callbacks, text=LONG_POST, **options) -> MediaJob:
    with django_capture_on_commit_callbacks(execute=True):
        content = studio.generate_content_with_persona(
            user=owner, content_type="blog", text=text, title="Long read", **options
        )
    return content.job


def test_a_long_blog_is_one_minimax_task_polled_by_the_job(
    owner, settings, run_jobs, django_capture_on_commit_callbacks
):
    persona = minimax_persona(owner, settings)
    settings.PROVIDER_POLL_SECONDS = 0
    settings.JOB_DEADLINE_SECONDS = {**settings.JOB_DEADLINE_SECONDS, "render": 60}
    mp3 = make_audio("mp3", 4.0)
    with responses.RequestsMock() as mocked:
        mocked.post(SUBMIT, json=TASK)
        mocked.get(QUERY, json=task_status("Processing"))
        mocked.get(QUERY, json=task_status("Processing"))
        mocked.get(QUERY, json=task_status("Success", 888))
        mocked.get(RETRIEVE, body=mp3, content_type="application/octet-stream")
        job = queue_blog(owner, django_capture_on_commit_callbacks)
        assert len(job.params["segments"]) > 1  # the segment path would have made several requests
        run_jobs(max_rounds=1)  # the first step: the submit
        job.refresh_from_db()
        assert job.status == JobStatus.WAITING_PROVIDER
        assert job.result["long_narration"]["task_id"] == "777001" and job.result["parts"] == []
        assert (calls_to(mocked, SUBMIT), calls_to(mocked, QUERY)) == (1, 0)
        # The deadline covers the provider's longest wait, however short the job's own.
        wait = settings.MINIMAX_ASYNC_MAX_WAIT_SECONDS
        assert job.deadline >= job.heartbeat_at + timezone.timedelta(seconds=wait)
        run_jobs(max_rounds=1)  # one poll: still processing, released again
        job.refresh_from_db()
        assert job.status == JobStatus.WAITING_PROVIDER and calls_to(mocked, QUERY) == 1
        run_jobs()
        sent = json.loads(mocked.calls[0].request.body)
        assert (calls_to(mocked, SUBMIT), calls_to(mocked, QUERY), calls_to(mocked, RETRIEVE)) == (1, 3, 1)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert sent["text"] == " ".join(job.params["segments"]) and sent["voice_setting"]["voice_id"] == persona.voice_id
    assert job.attempts == 1  # polls are not retries
    audio = MediaAsset.objects.get(job=job)
    assert audio.kind == AssetKind.AUDIO and audio.title == "Long read · narration"
    assert audio.provider == "minimax" and audio.used_persona_voice
    with default_storage.open(audio.file.name) as f:
        assert decoded_seconds(f.read()) == pytest.approx(4.0, abs=0.1)
    assert audio.duration_seconds == pytest.approx(4.0, abs=0.1)
    usage = UsageRecord.objects.get(job=job)
    assert usage.provider == "minimax" and usage.media_seconds == pytest.approx(4.0, abs=0.05)
    assert usage.cost_usd == pipeline.synthesis_cost("minimax", usage.media_seconds) == job.cost_usd
    assert usage.idempotency_key == f"job:{job.pk}:speech:blog:task-777001"
    assert job.result["parts"][0]["characters"] == 2410
    assert default_storage.listdir("private/generated/parts")[1] == []


@pytest.mark.parametrize("status", ["Failed", "Expired"])
def test_a_failed_minimax_task_ends_the_job_without_a_second_submit(
    owner, settings, run_jobs, django_capture_on_commit_callbacks, status
):
    minimax_persona(owner, settings)
    settings.PROVIDER_POLL_SECONDS = 0
    with responses.RequestsMock() as mocked:
        mocked.post(SUBMIT, json=TASK)
        mocked.get(QUERY, json=task_status("Processing"))
        mocked.get(QUERY, json=task_status(status))
        job = queue_blog(owner, django_capture_on_commit_callbacks)
        run_jobs()
        assert calls_to(mocked, SUBMIT) == 1
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == f"MiniMax could not generate the narration (task {status.lower()})."
    assert not UsageRecord.objects.filter(job=job).exists() and not job.assets.exists()


def test_a_busy_minimax_query_is_polled_again_not_resubmitted(
    owner, settings, run_jobs, django_capture_on_commit_callbacks
):
    minimax_persona(owner, settings)
    settings.PROVIDER_POLL_SECONDS = 0
    settings.HTTP_MAX_RETRIES = 1  # each poll makes one request
    with responses.RequestsMock() as mocked:
        mocked.post(SUBMIT, json=TASK)
        mocked.get(QUERY, status=503)
        mocked.get(QUERY, status=429)
        mocked.get(QUERY, json={"base_resp": {"status_code": 1002, "status_msg": "rate limit"}})
        mocked.get(QUERY, json=task_status("Success", 888))
        mocked.get(RETRIEVE, status=500)
        mocked.get(RETRIEVE, body=make_audio("mp3", 2.0))
        job = queue_blog(owner, django_capture_on_commit_callbacks)
        run_jobs()
        assert (calls_to(mocked, SUBMIT), calls_to(mocked, QUERY), calls_to(mocked, RETRIEVE)) == (1, 5, 2)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.attempts == 1 and UsageRecord.objects.filter(job=job).count() == 1


def test_a_requeued_job_after_the_submit_never_submits_again(
    owner, settings, run_jobs, django_capture_on_commit_callbacks
):
    from media_pipeline.tasks import run_job

    minimax_persona(owner, settings)
    settings.PROVIDER_POLL_SECONDS = 60
    with responses.RequestsMock() as mocked:
        mocked.post(SUBMIT, json=TASK)
        mocked.get(QUERY, json=task_status("Success", 888))
        mocked.get(RETRIEVE, body=make_audio("mp3", 2.0))
        job = queue_blog(owner, django_capture_on_commit_callbacks)
        run_jobs()  # the submit; its poll is queued a minute ahead
        job.refresh_from_db()
        assert job.status == JobStatus.WAITING_PROVIDER and job.result["long_narration"]["task_id"]
        # The worker that took the poll died mid-step: the sweeper re-queues it, and a stray
        # task queued without a step token turns up too.
        stale = timezone.now() - timezone.timedelta(seconds=1)
        MediaJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, lease_expires_at=stale)
        with django_capture_on_commit_callbacks(execute=True):
            assert pipeline.sweep_jobs() == {"requeued": 1, "failed": 0}
            run_job.enqueue(job.pk)
        run_jobs()
        assert (calls_to(mocked, SUBMIT), calls_to(mocked, QUERY)) == (1, 1)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert UsageRecord.objects.filter(job=job).count() == 1
    assert MediaAsset.objects.filter(job=job, kind=AssetKind.AUDIO).count() == 1


def test_a_submit_interrupted_by_a_dead_worker_is_not_sent_again(
    owner, settings, run_jobs, django_capture_on_commit_callbacks
):
    """The step died during the submit (the task may exist and be billed): the retry narrates in
    the standard voice instead of paying for the text a second time."""
    minimax_persona(owner, settings)
    with responses.RequestsMock():  # no MiniMax request at all
        job = queue_blog(owner, django_capture_on_commit_callbacks)
        MediaJob.objects.filter(pk=job.pk).update(result={"long_narration": {"first": 0, "provider": "minimax"}})
        run_jobs()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    audio = job.assets.get()
    assert audio.provider == "offline" and not audio.used_persona_voice
    assert UsageRecord.objects.filter(job=job, provider="minimax").count() == 0


def test_a_refused_long_narration_keeps_the_fallback_behaviour(
    owner, settings, run_jobs, django_capture_on_commit_callbacks
):
    minimax_persona(owner, settings)
    refused = {"base_resp": {"status_code": 1008, "status_msg": "insufficient balance"}}
    with responses.RequestsMock() as mocked:
        mocked.post(SUBMIT, json=refused)
        mocked.post(MINIMAX + "/v1/t2a_v2", json=refused)
        job = queue_blog(owner, django_capture_on_commit_callbacks, text="Hello.")
        run_jobs()
        assert calls_to(mocked, SUBMIT) == 1
    job.refresh_from_db()
    audio = job.assets.get()
    assert job.status == JobStatus.SUCCEEDED and audio.provider == "offline" and not audio.used_persona_voice
    assert UsageRecord.objects.get(job=job).cost_usd == 0


def test_a_minimax_task_that_never_finishes_is_given_up(owner, settings, run_jobs, django_capture_on_commit_callbacks):
    minimax_persona(owner, settings)
    settings.PROVIDER_POLL_SECONDS = 0
    settings.MINIMAX_ASYNC_MAX_WAIT_SECONDS = 0
    with responses.RequestsMock() as mocked:
        mocked.post(SUBMIT, json=TASK)
        mocked.get(QUERY, json=task_status("Processing"))
        job = queue_blog(owner, django_capture_on_commit_callbacks)
        run_jobs()
        assert calls_to(mocked, SUBMIT) == 1
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "did not finish the narration within 0 minutes" in job.error


def test_a_blog_explainer_is_narrated_in_pieces_and_the_rest_as_one_task(
    owner, settings, run_jobs, django_capture_on_commit_callbacks
):
    """The explainer video narrates the opening, with captions timed per segment, so the opening
    segments keep their own requests; only the rest of the post is one background task."""
    persona = minimax_persona(owner, settings)
    persona.avatar_id, persona.avatar_provider = f"av{persona.pk}offline", "offline"
    persona.avatar_training_status = TrainingStatus.READY
    persona.avatar_approved_at = persona.voice_approved_at
    persona.avatar_portrait.save("portrait.png", io.BytesIO(astronaut_portrait()), save=False)
    persona.save()
    settings.PROVIDER_POLL_SECONDS = 0
    opening = {
        "data": {"audio": make_audio("mp3", 2.0).hex(), "status": 2},
        "extra_info": {"audio_length": 2000, "usage_characters": 30},
        "base_resp": MM_OK,
    }
    text = "Short opening line. " + LONG_POST
    with responses.RequestsMock() as mocked:
        mocked.post(MINIMAX + "/v1/t2a_v2", json=opening)
        mocked.post(SUBMIT, json=TASK)
        mocked.get(QUERY, json=task_status("Success", 888))
        mocked.get(RETRIEVE, body=make_audio("mp3", 3.0))
        job = queue_blog(owner, django_capture_on_commit_callbacks, text=text, make_video=True)
        run_jobs()
        sent = json.loads(mocked.calls[1].request.body)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    count = job.params["video_segment_count"]
    assert sent["text"] == " ".join(job.params["segments"][count:])
    assert [p["seconds"] for p in job.result["parts"]] == pytest.approx([2.0] * count + [3.0], abs=0.05)
    assert job.result["video_seconds"] == pytest.approx(2.0 * count + 0.15 * (count - 1), abs=0.1)
    audio = job.assets.get(kind=AssetKind.AUDIO)
    assert audio.duration_seconds == pytest.approx(2.0 * count + 3.0 + 0.15 * count, abs=0.15)
    assert job.assets.filter(kind=AssetKind.VIDEO).count() == 1
    speech = UsageRecord.objects.filter(job=job, kind="voice_synthesis")
    assert speech.count() == count + 1 and {r.provider for r in speech} == {"minimax"}


def test_a_retried_step_neither_redoes_work_nor_charges_twice(
    persona, run_jobs, django_capture_on_commit_callbacks, monkeypatch
):
    from media_pipeline.providers.local import OfflineAvatarProvider, OfflineVoiceProvider

    syntheses = []
    real_synthesize = OfflineVoiceProvider.synthesize
    monkeypatch.setattr(
        OfflineVoiceProvider,
        "synthesize",
        lambda self, text, **kw: syntheses.append(text) or real_synthesize(self, text, **kw),
    )
    real_render = OfflineAvatarProvider.start_render
    failures = iter([ProviderError("Renderer busy", retryable=True)])

    def flaky_render(self, *args, **kwargs):
        error = next(failures, None)
        if error:
            raise error
        return real_render(self, *args, **kwargs)

    monkeypatch.setattr(OfflineAvatarProvider, "start_render", flaky_render)
    with django_capture_on_commit_callbacks(execute=True):
        content = studio.generate_content_with_persona(
            user=persona.user, content_type="story", scenes=STORY, title="Retry", make_video=True
        )
    run_jobs()  # the render fails retryably: the job is re-queued for later
    job = MediaJob.objects.get(pk=content.job.pk)
    assert job.status == JobStatus.QUEUED and "busy" in job.error
    pipeline.run_job(job.pk)  # the retry (its delayed task would do the same)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert syntheses == list(STORY)  # each scene narrated once, across both attempts
    assert UsageRecord.objects.filter(job=job).count() == 3
    assert MediaAsset.objects.filter(job=job, kind="audio", title="Retry · narration").count() == 1


def test_a_failed_job_leaves_no_intermediate_files(persona, run_jobs, django_capture_on_commit_callbacks, monkeypatch):
    from media_pipeline.providers.local import OfflineAvatarProvider

    def broken(self, *args, **kwargs):
        raise ProviderError("The portrait cannot be rendered.")

    monkeypatch.setattr(OfflineAvatarProvider, "start_render", broken)
    job = generate(
        django_capture_on_commit_callbacks,
        run_jobs,
        user=persona.user,
        content_type="blog",
        text=LONG_POST,
        title="Broken",
        make_video=True,
    )
    assert job.status == JobStatus.FAILED and job.error == "The portrait cannot be rendered."
    assert default_storage.listdir("private/generated/parts")[1] == []


def test_wavespeed_render_is_polled_and_charged_once(owner, settings, run_jobs, django_capture_on_commit_callbacks):
    from tests.media_pipeline.test_wavespeed import API, HUNYUAN, RESULT, UPLOAD, VIDEO_URL, prediction, uploaded

    settings.WAVESPEED_API_KEY, settings.WAVESPEED_BASE_URL = "ws-test", API
    settings.PROVIDER_POLL_SECONDS = 0
    persona = make_persona(owner, voice=True, avatar=True)
    persona.avatar_provider = "wavespeed"
    persona.save()
    with responses.RequestsMock() as mocked:
        mocked.post(UPLOAD, json=uploaded("image", "https://cdn.example/p.png"))
        mocked.post(UPLOAD, json=uploaded("audio", "https://cdn.example/a.mp3"))
        mocked.post(HUNYUAN, json=prediction("created"))
        mocked.get(RESULT, json=prediction("processing"))
        mocked.get(RESULT, json=prediction("completed", outputs=[VIDEO_URL]))
        mocked.get(VIDEO_URL, body=make_mp4())
        job = generate(
            django_capture_on_commit_callbacks,
            run_jobs,
            user=owner,
            content_type="email",
            text="Thanks for the chat today.",
            recipient_name="Ana",
            make_video=True,
        )
    assert job.status == JobStatus.SUCCEEDED, job.error
    video_usage = UsageRecord.objects.get(job=job, kind="avatar_video")
    assert video_usage.provider == "wavespeed" and video_usage.cost_usd == Decimal("0.15")
    assert job.estimated_cost_usd == Decimal("0.15") and job.cost_usd == Decimal("0.15")
    assert job.assets.get(kind="video").provider == "wavespeed"
    assert job.params["text"].startswith("Hi Ana,")


def test_a_wavespeed_video_gets_the_chosen_aspect_captions_and_label(
    owner, settings, tmp_path, run_jobs, django_capture_on_commit_callbacks
):
    """The hosted model returns the square portrait talking, nothing more; the studio puts it in
    the chosen aspect on the avatar background and burns the captions and the label in."""
    from tests.media_pipeline.test_avatar_render import hosted_video
    from tests.media_pipeline.test_wavespeed import API, HUNYUAN, RESULT, UPLOAD, VIDEO_URL, prediction, uploaded

    settings.WAVESPEED_API_KEY, settings.WAVESPEED_BASE_URL = "ws-test", API
    settings.PROVIDER_POLL_SECONDS = 0
    persona = make_persona(owner, voice=True, avatar=True, avatar_background="#3366cc", captions_enabled=True)
    persona.avatar_provider = "wavespeed"
    persona.save()
    colour = (200, 120, 60)
    with responses.RequestsMock() as mocked:
        mocked.post(UPLOAD, json=uploaded("image", "https://cdn.example/p.png"))
        mocked.post(UPLOAD, json=uploaded("audio", "https://cdn.example/a.mp3"))
        mocked.post(HUNYUAN, json=prediction("created"))
        mocked.get(RESULT, json=prediction("completed", outputs=[VIDEO_URL]))
        mocked.get(VIDEO_URL, body=hosted_video(tmp_path / "hosted.mp4", size=(240, 240), seconds=6, colour=colour))
        job = generate(
            django_capture_on_commit_callbacks,
            run_jobs,
            user=owner,
            content_type="email",
            text="Thanks for the chat today.",
            recipient_name="Ana",
            make_video=True,
            aspect_ratio="16:9",
        )
    assert job.status == JobStatus.SUCCEEDED, job.error
    video = job.assets.get(kind="video")
    with default_storage.open(video.file.name) as f, av.open(io.BytesIO(f.read())) as container:
        assert container.metadata.get("comment", "").startswith("AI-generated")
        assert len(container.streams.audio) == 1
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert frames[0].shape == (512, 910, 3)  # 16:9, as chosen, from a square video
    first = frames[2]
    assert np.abs(first[256, 455].astype(int) - colour).max() < 14  # the portrait in the middle
    assert np.abs(first[256, 40].astype(int) - (0x33, 0x66, 0xCC)).max() < 14  # the background beside it
    # The captions while the narration lasts, none after it.
    caption_end = job.result["captions"][-1][1]
    assert caption_end < 5.5
    band = np.s_[380:512, 200:710]
    assert (first[band] > 235).all(axis=2).sum() > 150
    assert (frames[-1][band] > 235).all(axis=2).sum() == 0
    # The label in the top right corner, on every frame.
    corner = np.s_[0:50, -200:]
    assert all((frame[corner] > 220).all(axis=2).sum() > 30 for frame in (first, frames[-1]))


def test_voice_sample_uses_unsaved_settings_and_keeps_only_the_newest(
    persona, run_jobs, django_capture_on_commit_callbacks
):
    for speed in (0.7, 1.6):
        with django_capture_on_commit_callbacks(execute=True):
            job = studio.request_voice_sample(
                persona=persona,
                voice_settings={"voice_emotion": "calm", "voice_speed": speed, "voice_pitch": 2, "voice_volume": 1.0},
            )
        run_jobs()
    samples = MediaAsset.objects.filter(content_type="voice_sample")
    assert [a.job_id for a in samples] == [job.pk]
    persona.refresh_from_db()
    assert persona.voice_speed == 1.0  # nothing saved
    assert not studio.library_assets(persona.user).exists()  # samples stay out of the library


def test_a_voice_sample_speaks_the_given_sentence_or_the_preview_line(persona):
    line = studio.request_voice_sample(persona=persona)
    assert line.params["segments"] == [studio.VOICE_SAMPLE_LINE] and line.params["use_persona_voice"]
    sentence = studio.request_voice_sample(persona=persona, text="  Welcome to\nmy letter.  ")
    assert sentence.params["segments"] == ["Welcome to my letter."] == [sentence.params["text"]]
    assert sentence.content_type == studio.ContentType.VOICE_SAMPLE and sentence.kind == "render"


def test_deleting_an_asset_deletes_its_file(persona, run_jobs, django_capture_on_commit_callbacks):
    job = generate(
        django_capture_on_commit_callbacks, run_jobs, user=persona.user, content_type="blog", text="Hi.", title="D"
    )
    asset = job.assets.get()
    studio.delete_media_asset(asset=asset)
    assert not default_storage.exists(asset.file.name) and not MediaAsset.objects.exists()


def test_voice_training_status_is_read_at_run_time(owner, run_jobs, django_capture_on_commit_callbacks):
    """A voice deleted between confirming and running falls back instead of failing."""
    persona = make_persona(owner, voice=True)
    with django_capture_on_commit_callbacks(execute=True):
        content = studio.generate_content_with_persona(user=owner, content_type="blog", text="Hi.", title="R")
    persona.voice_training_status, persona.voice_id = TrainingStatus.NOT_TRAINED, ""
    persona.save()
    run_jobs()
    assert not content.audio.used_persona_voice
