"""Dashboard, settings, studio and library views: owner / other user / anonymous for each, the
dashboard's figures against the usage rows, and its query count as the library grows."""

import io
import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from PIL import Image

from media_pipeline.models import JobKind, JobStatus, MediaAsset, MediaJob, UsageRecord
from media_pipeline.services import PipelineError
from personas import charts, studio
from personas.models import ConsentRecord, PlatformAdaptation, Tier, TrainingStatus
from tests.personas.conftest import make_persona

HTMX = {"HTTP_HX_REQUEST": "true"}
PAGES = [
    "personas:dashboard",
    "personas:settings",
    "personas:studio",
    "personas:studio_story",
    "personas:studio_linkedin",
    "personas:studio_blog",
    "personas:studio_email",
    "personas:library",
    "personas:voice_delete",
    "personas:avatar_delete",
    "personas:voice_opt_out",
    "personas:avatar_opt_out",
    "personas:voice_opt_in",
    "personas:avatar_opt_in",
]
POSTS = [
    "personas:settings_voice",
    "personas:settings_voice_sample",
    "personas:settings_avatar",
    "personas:settings_platforms",
    "personas:settings_content",
    "personas:voice_delete",
    "personas:avatar_delete",
    "personas:voice_opt_out",
    "personas:studio_linkedin",
]


def make_asset(persona, kind="audio", **fields) -> MediaAsset:
    asset = MediaAsset(user=persona.user, persona=persona, kind=kind, mime_type="audio/mpeg", **fields)
    asset.file.save("clip.mp3", ContentFile(b"ID3 not really audio"), save=False)
    asset.save()
    return asset


def make_render_job(persona, **fields) -> MediaJob:
    defaults = {"kind": JobKind.RENDER, "provider": "offline", "content_type": "blog", "params": {"title": "A post"}}
    return MediaJob.objects.create(user=persona.user, persona=persona, **{**defaults, **fields})


def usage(persona, kind, cost, seconds=0.0, content_type="blog", **fields) -> UsageRecord:
    return UsageRecord.objects.create(
        user=persona.user,
        persona=persona,
        kind=kind,
        provider="minimax",
        content_type=content_type,
        cost_usd=Decimal(cost),
        media_seconds=seconds,
        idempotency_key=f"test:{UsageRecord.objects.count()}",
        **fields,
    )


# --- Access ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PAGES)
def test_anonymous_visitors_are_sent_to_log_in(client, db, name):
    response = client.get(reverse(name))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


@pytest.mark.parametrize("name", POSTS)
def test_anonymous_posts_change_nothing(client, persona, name):
    response = client.post(reverse(name), {"voice_speed": 1.5})
    assert response.status_code == 302 and response.url.startswith(reverse("login"))
    persona.refresh_from_db()
    assert persona.voice_ready and persona.voice_speed == 1.0 and not MediaJob.objects.exists()


@pytest.mark.parametrize("name", PAGES)
def test_owner_sees_every_page(owner_client, persona, name):
    assert owner_client.get(reverse(name)).status_code == 200


def test_without_a_persona_the_wizard_comes_first(owner_client):
    response = owner_client.get(reverse("personas:dashboard"))
    assert response.status_code == 302 and response.url == reverse("onboarding:start")


def test_each_user_sees_only_their_own_persona(client, persona, other_persona):
    client.force_login(other_persona.user)
    page = client.get(reverse("personas:dashboard")).content.decode()
    assert escape(other_persona.name) in page and escape(persona.name) not in page


@pytest.mark.parametrize(
    ("method", "name"), [("get", "personas:job"), ("post", "personas:job_cancel"), ("get", "personas:asset_delete")]
)
def test_another_users_job_or_asset_is_not_found(client, persona, other_persona, method, name):
    target = make_asset(persona) if name == "personas:asset_delete" else make_render_job(persona)
    client.force_login(other_persona.user)
    assert getattr(client, method)(reverse(name, args=[target.pk])).status_code == 404
    assert client.post(reverse("personas:asset_delete", args=[make_asset(persona).pk])).status_code == 404
    assert MediaAsset.objects.filter(user=persona.user).count() >= 1


@pytest.mark.parametrize("name", ["personas:job", "personas:job_cancel", "personas:asset_delete"])
def test_anonymous_object_urls_redirect(client, persona, name):
    target = make_asset(persona) if name == "personas:asset_delete" else make_render_job(persona)
    response = client.get(reverse(name, args=[target.pk]))
    assert response.status_code in (302, 405)
    if response.status_code == 302:
        assert response.url.startswith(reverse("login"))


# --- Dashboard -------------------------------------------------------------------------------


def test_dashboard_figures_equal_the_sum_of_the_usage_rows(owner_client, persona, other_persona):
    rows = [
        usage(persona, "voice_clone", "0.75"),
        usage(persona, "voice_synthesis", "0.0310", seconds=93, content_type="linkedin"),
        usage(persona, "voice_synthesis", "0.0125", seconds=37.5, content_type="story"),
        usage(persona, "avatar_video", "0.45", seconds=14, content_type="linkedin"),
        usage(persona, "avatar_video", "0.15", seconds=4, content_type="email"),
    ]
    usage(other_persona, "avatar_video", "9.00", seconds=600)  # someone else's: never counted
    response = owner_client.get(reverse("personas:dashboard"))
    stats = response.context["stats"]
    assert stats.uses == len(rows)
    assert stats.cost == sum(r.cost_usd for r in rows) == Decimal("1.3935")
    assert stats.voice_cost == Decimal("0.7935") and stats.avatar_cost == Decimal("0.60")
    assert stats.audio_minutes == pytest.approx((93 + 37.5) / 60)
    assert stats.video_minutes == pytest.approx(18 / 60)
    by_platform = {row.label: (row.uses, row.cost) for row in stats.by_platform}
    assert by_platform["LinkedIn"] == (2, Decimal("0.4810"))
    assert sum(u for u, _ in by_platform.values()) == len(rows)
    assert sum(m.cost for m in stats.by_month) == stats.cost
    page = response.content.decode()
    assert re.search(r'data-figure="total-cost">\$1\.39<', page)
    assert re.search(r'data-figure="uses">5<', page)
    assert re.search(r'data-figure="audio-minutes">2\.2<', page)
    assert page.count("<svg") == 4 and "Uses per platform" in page


def test_dashboard_uses_count_pieces_of_content_not_provider_calls(owner_client, persona):
    story = make_render_job(persona, content_type="story", status=JobStatus.SUCCEEDED)
    post = make_render_job(persona, content_type="linkedin", status=JobStatus.SUCCEEDED)
    training = make_render_job(persona, kind=JobKind.VOICE_CLONE, content_type="")
    rows = [usage(persona, "voice_synthesis", "0.01", seconds=20, content_type="story", job=story) for _ in range(5)]
    rows.append(usage(persona, "avatar_video", "0.30", seconds=100, content_type="story", job=story))
    rows.append(usage(persona, "voice_synthesis", "0.02", seconds=30, content_type="linkedin", job=post))
    rows.append(usage(persona, "avatar_video", "0.15", seconds=30, content_type="linkedin", job=post))
    rows.append(usage(persona, "voice_clone", "0.75", content_type="", job=training))
    response = owner_client.get(reverse("personas:dashboard"))
    stats = response.context["stats"]
    assert stats.uses == 3  # a five-scene story with a video, a post with a video, one voice training
    assert {row.label: row.uses for row in stats.by_platform} == {"Story": 1, "LinkedIn": 1, "Other": 1}
    assert {row.label: row.uses for row in stats.by_kind} == {"Audio": 2, "Video": 2, "Voice training": 1}
    # Minutes and cost are still the sums of the usage rows.
    assert stats.cost == sum(r.cost_usd for r in rows) == Decimal("1.27")
    assert stats.audio_minutes == pytest.approx(130 / 60) and stats.video_minutes == pytest.approx(130 / 60)
    by_platform = {row.label: row.cost for row in stats.by_platform}
    assert by_platform["Story"] == Decimal("0.35") and by_platform["LinkedIn"] == Decimal("0.17")
    page = response.content.decode()
    assert re.search(r'data-figure="uses">3<', page)
    assert "<title>Story: 1</title>" in page and "<title>Audio: 2</title>" in page


def test_monthly_chart_shows_the_last_six_months(persona):
    old = usage(persona, "voice_synthesis", "0.10", seconds=60)
    UsageRecord.objects.filter(pk=old.pk).update(created_at=timezone.now() - timezone.timedelta(days=400))
    usage(persona, "voice_synthesis", "0.20", seconds=60)
    months = charts.usage_statistics(persona).by_month
    assert len(months) == 6 and months[-1].cost == Decimal("0.20")
    assert sum(m.cost for m in months[:-1]) == 0


def test_monthly_figures_fall_in_calendar_months_by_their_bounds(persona):
    def at(moment, cost, kind="voice_synthesis", seconds=60):
        row = usage(persona, kind, cost, seconds=seconds)
        UsageRecord.objects.filter(pk=row.pk).update(created_at=moment)

    at(datetime(2026, 5, 31, 23, 59, 59, tzinfo=UTC), "1.00")  # before the six months shown
    at(datetime(2026, 6, 1, tzinfo=UTC), "0.10")  # first moment of the first month
    at(datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC), "0.20", kind="avatar_video", seconds=30)
    at(datetime(2026, 11, 30, 12, tzinfo=UTC), "0.40")
    at(datetime(2026, 12, 1, tzinfo=UTC), "2.00")  # after the current month
    stats = charts.usage_statistics(persona, today=date(2026, 11, 25))
    assert [m.month for m in stats.by_month] == [date(2026, m, 1) for m in range(6, 12)]
    assert [m.cost for m in stats.by_month] == [Decimal(c) for c in ("0.10", "0", "0", "0", "0.20", "0.40")]
    assert [m.audio_minutes for m in stats.by_month] == [1.0, 0, 0, 0, 0, 1.0]
    assert stats.by_month[4].video_minutes == 0.5
    assert stats.uses == 5 and stats.cost == Decimal("3.70")
    assert [(row.label, row.uses) for row in stats.by_kind] == [("Audio", 4), ("Video", 1)]


def test_dashboard_queries_do_not_grow_with_the_library(owner_client, persona, django_assert_max_num_queries):
    def fill(count):
        for n in range(count):
            job = make_render_job(persona, status=JobStatus.SUCCEEDED)
            make_asset(persona, job=job, title=f"clip {n}")
            usage(persona, "voice_synthesis", "0.01", seconds=30, job=job)

    fill(1)
    with django_assert_max_num_queries(20) as one:
        owner_client.get(reverse("personas:dashboard"))
    fill(49)
    with django_assert_max_num_queries(len(one.captured_queries)):
        owner_client.get(reverse("personas:dashboard"))


def test_live_status_polls_only_while_a_job_runs(owner_client, persona):
    job = make_render_job(persona, status=JobStatus.RUNNING, progress=40)
    partial = owner_client.get(reverse("personas:dashboard"), **HTMX).content.decode()
    assert partial.lstrip().startswith('<div id="live-status"') and 'hx-trigger="every 2s"' in partial
    assert 'value="40"' in partial
    job.status = JobStatus.SUCCEEDED
    job.save()
    partial = owner_client.get(reverse("personas:dashboard"), **HTMX).content.decode()
    assert "hx-trigger" not in partial and "<html" not in partial


def test_dashboard_links_retrain_and_recreate_to_the_wizard(owner_client, persona):
    persona.avatar_preview.save("avatar.mp4", ContentFile(b"video"))
    page = owner_client.get(reverse("personas:dashboard")).content.decode()
    wizard = reverse("onboarding:persona", args=[persona.pk])
    assert f'href="{wizard}#voice"' in page and f'href="{wizard}#avatar"' in page
    assert reverse("media:persona", args=[persona.pk, "voice-preview"]) in page
    assert reverse("media:persona", args=[persona.pk, "avatar-preview"]) in page


# --- Settings --------------------------------------------------------------------------------


def test_voice_settings_are_saved(owner_client, persona):
    data = {"voice_emotion": "happy", "voice_speed": "1.25", "voice_pitch": "-3", "voice_volume": "2"}
    response = owner_client.post(reverse("personas:settings_voice"), data)
    assert response.status_code == 302
    persona.refresh_from_db()
    assert (persona.voice_emotion, persona.voice_speed, persona.voice_pitch, persona.voice_volume) == (
        "happy",
        1.25,
        -3,
        2.0,
    )


def test_invalid_voice_settings_are_shown_back_as_the_partial(owner_client, persona):
    data = {"voice_emotion": "bored", "voice_speed": "3", "voice_pitch": "0", "voice_volume": "1"}
    response = owner_client.post(reverse("personas:settings_voice"), data, **HTMX)
    page = response.content.decode()
    assert response.status_code == 200 and page.lstrip().startswith('<section class="card" id="voice-settings"')
    assert "less than or equal to 2.0" in page and "Select a valid choice" in page
    persona.refresh_from_db()
    assert persona.voice_speed == 1.0 and persona.voice_emotion == "auto"


def test_hear_it_queues_a_sample_job_and_plays_it(owner_client, persona, run_jobs, django_capture_on_commit_callbacks):
    data = {"voice_emotion": "calm", "voice_speed": "0.8", "voice_pitch": "0", "voice_volume": "1"}
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("personas:settings_voice_sample"), data, **HTMX)
    job = MediaJob.objects.get(content_type="voice_sample")
    assert job.params["voice_settings"]["voice_speed"] == 0.8
    assert 'hx-trigger="every 2s"' in response.content.decode() and "compact=1" in response.content.decode()
    run_jobs()
    done = owner_client.get(reverse("personas:job", args=[job.pk]) + "?compact=1", **HTMX).content.decode()
    asset = job.assets.get()
    assert "hx-trigger" not in done and f'src="{reverse("media:asset", args=[asset.pk])}"' in done
    persona.refresh_from_db()
    assert persona.voice_speed == 1.0  # hearing is not saving


@pytest.mark.parametrize("failure", ["invalid form", "rate limit", "pipeline error"])
def test_a_refused_hear_it_answers_only_an_error_for_the_sample_slot(
    owner_client, persona, settings, monkeypatch, failure
):
    data = {"voice_emotion": "calm", "voice_speed": "1", "voice_pitch": "0", "voice_volume": "1"}
    if failure == "invalid form":
        data["voice_speed"], expected = "3", "Voice speed: Ensure this value is less than or equal to 2.0."
    elif failure == "rate limit":
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "generation": 0}
        expected = "You have reached the limit of 0 generation requests per hour."
    else:

        def refuse(**kwargs):
            raise PipelineError("There is nothing to narrate yet.")

        monkeypatch.setattr(studio, "request_voice_sample", refuse)
        expected = "There is nothing to narrate yet."
    response = owner_client.post(reverse("personas:settings_voice_sample"), data, **HTMX)
    fragment = response.content.decode()
    assert response.status_code == 200
    # Swapped into #voice-sample inside the voice card: no second card, no repeated ids.
    assert "<section" not in fragment and 'id="' not in fragment and "<form" not in fragment
    assert 'role="alert"' in fragment and escape(expected) in fragment
    assert not MediaJob.objects.exists()
    # Without htmx the settings page comes back whole, with the error on the voice form.
    settings.RATE_LIMITS = (
        {**settings.RATE_LIMITS, "generation": 0} if failure == "rate limit" else settings.RATE_LIMITS
    )
    page = owner_client.post(reverse("personas:settings_voice_sample"), data).content.decode()
    assert page.count('id="voice-settings"') == 1 and page.count('id="voice-sample"') == 1
    assert escape(expected.split(": ", 1)[-1]) in page


def test_hear_it_without_js_redirects_to_the_job_page(owner_client, persona):
    data = {"voice_emotion": "auto", "voice_speed": "1", "voice_pitch": "0", "voice_volume": "1"}
    response = owner_client.post(reverse("personas:settings_voice_sample"), data)
    job = MediaJob.objects.get()
    assert response.status_code == 302 and response.url == reverse("personas:job", args=[job.pk])


def png_upload(size=(64, 48), name="bg.png") -> ContentFile:
    buffer = io.BytesIO()
    Image.new("RGB", size, "#0a7").save(buffer, "PNG")
    return ContentFile(buffer.getvalue(), name=name)


AVATAR_DATA = {
    "avatar_background": "#112233",
    "avatar_style": "professional",
    "avatar_framing": "close",
    "avatar_aspect_ratio": "9:16",
    "captions_enabled": "",
}


def test_avatar_settings_with_a_background_image(owner_client, persona):
    response = owner_client.post(reverse("personas:settings_avatar"), {**AVATAR_DATA, "background_image": png_upload()})
    assert response.status_code == 302
    persona.refresh_from_db()
    assert (persona.avatar_style, persona.avatar_aspect_ratio, persona.captions_enabled) == (
        "professional",
        "9:16",
        False,
    )
    first = persona.avatar_background_image.name
    assert Image.open(default_storage.open(first)).format == "PNG"
    owner_client.post(reverse("personas:settings_avatar"), {**AVATAR_DATA, "background_image": png_upload()})
    persona.refresh_from_db()
    assert not default_storage.exists(first)  # the replaced image is deleted
    owner_client.post(reverse("personas:settings_avatar"), {**AVATAR_DATA, "remove_background_image": "on"})
    persona.refresh_from_db()
    assert not persona.avatar_background_image


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (ContentFile(b"<svg xmlns='http://www.w3.org/2000/svg'/>", name="bg.png"), "not a photo we can read"),
        (ContentFile(png_upload().read()[:60], name="bg.png"), "damaged or incomplete"),
    ],
)
def test_background_images_are_checked_by_content(owner_client, persona, upload, message):
    response = owner_client.post(reverse("personas:settings_avatar"), {**AVATAR_DATA, "background_image": upload})
    assert response.status_code == 200 and message in response.content.decode()
    persona.refresh_from_db()
    assert not persona.avatar_background_image and persona.avatar_style == "natural"


def test_background_colour_must_be_a_hex_colour(owner_client, persona):
    response = owner_client.post(reverse("personas:settings_avatar"), {**AVATAR_DATA, "avatar_background": "red"})
    assert "Use a colour like" in response.content.decode()


def platform_data(**overrides) -> dict:
    data = {"platforms-TOTAL_FORMS": "5", "platforms-INITIAL_FORMS": "5"}
    for index, platform in enumerate(["linkedin", "facebook", "blog", "email", "story"]):
        row = {"platform": platform, "tone": "warm", "target_length_words": "150", "hashtags": "0", "emoji_use": "none"}
        row.update(overrides.get(platform, {}))
        data.update({f"platforms-{index}-{k}": v for k, v in row.items()})
    return data


def test_platform_adaptations_are_edited_as_a_formset(owner_client, persona):
    PlatformAdaptation.objects.create(persona=persona, platform="linkedin", tone="from analysis", hashtags=5)
    page = owner_client.get(reverse("personas:settings")).content.decode()
    assert 'value="from analysis"' in page and page.count('name="platforms-') >= 25
    data = platform_data(linkedin={"hashtags": "3", "target_length_words": "120", "emoji_use": "light"})
    assert owner_client.post(reverse("personas:settings_platforms"), data).status_code == 302
    rows = {a.platform: a for a in persona.adaptations.all()}
    assert len(rows) == 5 and rows["linkedin"].hashtags == 3 and rows["linkedin"].emoji_use == "light"
    assert rows["linkedin"].tone == "warm"


def test_duplicate_platforms_are_refused(owner_client, persona):
    data = platform_data(facebook={"platform": "linkedin"})
    response = owner_client.post(reverse("personas:settings_platforms"), data)
    assert "only once" in response.content.decode() and not persona.adaptations.exists()


def test_content_preference_is_saved_and_used_by_the_studio(owner_client, persona):
    owner_client.post(reverse("personas:settings_content"), {"content_preference": "audio"})
    persona.refresh_from_db()
    assert persona.content_preference == "audio"
    form = owner_client.get(reverse("personas:studio_blog")).context["form"]
    assert form.initial["make_video"] is False


# --- Delete and opt out ----------------------------------------------------------------------


def test_delete_voice_removes_the_voice_everywhere(owner_client, persona, monkeypatch):
    from media_pipeline.providers.local import OfflineVoiceProvider

    deleted = []
    monkeypatch.setattr(OfflineVoiceProvider, "delete", lambda self, voice_id: deleted.append(voice_id))
    voice_id, preview = persona.voice_id, persona.voice_preview.name
    assert owner_client.get(reverse("personas:voice_delete")).status_code == 200  # the confirmation
    response = owner_client.post(reverse("personas:voice_delete"))
    assert response.status_code == 302
    persona.refresh_from_db()
    assert deleted == [voice_id] and not default_storage.exists(preview)
    assert persona.voice_training_status == TrainingStatus.NOT_TRAINED and not persona.voice_id
    assert persona.avatar_ready  # the avatar is untouched


def test_delete_avatar_removes_its_files(owner_client, persona):
    names = [persona.avatar_portrait.name, persona.avatar_image.name]
    owner_client.post(reverse("personas:avatar_delete"))
    persona.refresh_from_db()
    assert not any(default_storage.exists(n) for n in names)
    assert persona.avatar_training_status == TrainingStatus.NOT_TRAINED and not persona.avatar_id


def test_opting_out_deletes_withdraws_consent_and_can_be_undone(owner_client, persona):
    ConsentRecord.objects.create(
        user=persona.user, persona=persona, capability="voice", text="I agree", text_version="1"
    )
    owner_client.post(reverse("personas:voice_opt_out"))
    persona.refresh_from_db()
    assert persona.voice_opted_out and not persona.voice_id
    assert ConsentRecord.objects.get().withdrawn_at is not None
    assert "Opted out" in owner_client.get(reverse("personas:dashboard")).content.decode()
    owner_client.post(reverse("personas:voice_opt_in"))
    persona.refresh_from_db()
    assert not persona.voice_opted_out


# --- Studio ----------------------------------------------------------------------------------

LINKEDIN = {"text": "Ship small, ship often. Feedback beats guessing.", "aspect_ratio": "1:1", "make_video": "on"}


def test_studio_shows_the_estimate_before_anything_runs(owner_client, persona):
    response = owner_client.post(reverse("personas:studio_linkedin"), {**LINKEDIN, "use_persona_voice": "on"})
    plan = response.context["plan"]
    page = response.content.decode()
    assert plan.makes_video and f'value="{plan.fingerprint}"' in page and 'data-figure="estimate">$0.00<' in page
    assert "AI-generated" in page and not MediaJob.objects.exists()


def test_a_changed_request_needs_a_new_confirmation(owner_client, persona):
    estimate = owner_client.post(reverse("personas:studio_linkedin"), LINKEDIN).context["plan"]
    changed = {**LINKEDIN, "text": LINKEDIN["text"] + " More.", "confirm": estimate.fingerprint}
    response = owner_client.post(reverse("personas:studio_linkedin"), changed)
    assert response.status_code == 200 and response.context["plan"].fingerprint != estimate.fingerprint
    assert not MediaJob.objects.exists()


def test_confirming_queues_the_job_and_its_page_shows_the_result(
    owner_client, persona, run_jobs, django_capture_on_commit_callbacks
):
    plan = owner_client.post(reverse("personas:studio_linkedin"), LINKEDIN).context["plan"]
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("personas:studio_linkedin"), {**LINKEDIN, "confirm": plan.fingerprint})
    job = MediaJob.objects.get()
    assert response.status_code == 302 and response.url == reverse("personas:job", args=[job.pk])
    assert job.estimated_cost_usd == plan.estimated_cost and job.content_type == "linkedin"
    running = owner_client.get(response.url).content.decode()
    assert 'hx-trigger="every 2s"' in running and 'http-equiv="refresh"' in running
    run_jobs()
    done = owner_client.get(response.url).content.decode()
    assert "hx-trigger" not in done and "AI-generated" in done
    assert done.count("<video") == 1 and done.count("<audio") == 1 and "captions" in done


def test_htmx_confirm_swaps_in_the_progress_and_pushes_the_job_url(owner_client, persona):
    plan = owner_client.post(reverse("personas:studio_blog"), {"title": "T", "text": "Hello."}).context["plan"]
    response = owner_client.post(
        reverse("personas:studio_blog"), {"title": "T", "text": "Hello.", "confirm": plan.fingerprint}, **HTMX
    )
    job = MediaJob.objects.get()
    assert response.headers["HX-Push-Url"] == reverse("personas:job", args=[job.pk])
    assert response.content.decode().lstrip().startswith(f'<div class="job" id="job-{job.pk}"')


def story_data(*scenes, **extra) -> dict:
    data = {"title": "Fox", "use_persona_voice": "on", "scenes-TOTAL_FORMS": str(len(scenes))}
    data.update({"scenes-INITIAL_FORMS": "0", "scenes-MIN_NUM_FORMS": "1", "scenes-MAX_NUM_FORMS": "30"})
    for index, (text, order) in enumerate(scenes):
        data[f"scenes-{index}-text"] = text
        data[f"scenes-{index}-ORDER"] = str(order)
    return {**data, **extra}


def test_story_scenes_can_be_added_and_reordered(owner_client, persona):
    added = owner_client.post(reverse("personas:studio_story"), story_data(("First.", 1), add_scene="1"), **HTMX)
    assert added.content.decode().count("<textarea") == 2 and "is required" not in added.content.decode()
    response = owner_client.post(reverse("personas:studio_story"), story_data(("Second.", 2), ("First.", 1)))
    assert response.context["plan"].segments == ["First.", "Second."]


def test_story_without_scenes_is_refused(owner_client, persona):
    response = owner_client.post(reverse("personas:studio_story"), story_data(("", 1)))
    assert response.context["plan"] is None and "This field is required" in response.content.decode()


def test_free_tier_cannot_ask_for_video(client, user_on):
    persona = make_persona(user_on(Tier.FREE), voice=True, avatar=True)
    client.force_login(persona.user)
    page = client.get(reverse("personas:studio_linkedin")).content.decode()
    assert "Pro or Enterprise plan" in page and re.search(r'name="make_video"[^>]*disabled', page)
    response = client.post(reverse("personas:studio_linkedin"), LINKEDIN)
    plan = response.context["plan"]
    assert not plan.makes_video and plan.voice_provider == "offline" and not plan.uses_persona_voice


def test_the_monthly_cap_is_explained_on_the_page(client, user_on, settings):
    persona = make_persona(user_on(Tier.BASIC))
    settings.TIERS = {**settings.TIERS, "basic": {**settings.TIERS["basic"], "monthly_generations": 1}}
    make_render_job(persona)
    client.force_login(persona.user)
    plan = client.post(reverse("personas:studio_blog"), {"title": "T", "text": "Hi."}).context["plan"]
    response = client.post(reverse("personas:studio_blog"), {"title": "T", "text": "Hi.", "confirm": plan.fingerprint})
    assert "used all 1 generations in your Basic plan" in response.content.decode()
    assert MediaJob.objects.count() == 1


def test_cancelling_a_running_job(owner_client, persona):
    job = make_render_job(persona, status=JobStatus.QUEUED)
    response = owner_client.post(reverse("personas:job_cancel", args=[job.pk]))
    job.refresh_from_db()
    assert response.status_code == 302 and job.status == JobStatus.CANCELLED


# --- Library ---------------------------------------------------------------------------------


def test_library_filters_by_type_and_hides_voice_samples(owner_client, persona, other_persona):
    audio = make_asset(persona, title="Narration", content_type="blog")
    video = make_asset(persona, kind="video", title="Clip", content_type="linkedin")
    make_asset(persona, title="Sample", content_type=studio.ContentType.VOICE_SAMPLE)
    make_asset(other_persona, title="Not mine")
    page = owner_client.get(reverse("personas:library")).content.decode()
    assert "Narration" in page and "Clip" in page and "Sample" not in page and "Not mine" not in page
    only_video = owner_client.get(reverse("personas:library"), {"kind": "video"}, **HTMX).content.decode()
    assert f'id="asset-{video.pk}"' in only_video and f'id="asset-{audio.pk}"' not in only_video
    assert only_video.lstrip().startswith('<div id="library-items"')
    assert reverse("media:asset", args=[video.pk]) + "?download=1" in only_video


def test_library_filter_shows_the_chosen_filters_and_refuses_unknown_ones(owner_client, persona):
    page = owner_client.get(reverse("personas:library"), {"kind": "video", "content_type": "blog"}).content.decode()
    assert '<option value="video" selected>Video</option>' in page
    assert '<option value="blog" selected>Blog narration</option>' in page
    assert '<option value="" selected>' not in page
    unfiltered = owner_client.get(reverse("personas:library")).content.decode()
    assert (
        '<option value="" selected>Everything</option>' in unfiltered
        and '<label for="id_kind">Type:</label>' in unfiltered
    )
    refused = owner_client.get(reverse("personas:library"), {"kind": "bogus"}).content.decode()
    assert "Select a valid choice. bogus is not one of the available choices." in refused


def test_deleting_from_the_library_deletes_the_file(owner_client, persona):
    asset = make_asset(persona, title="Gone")
    response = owner_client.post(reverse("personas:asset_delete", args=[asset.pk]), **HTMX)
    assert response.status_code == 200 and response.content == b""
    assert not MediaAsset.objects.exists() and not default_storage.exists(asset.file.name)
    other = make_asset(persona, title="Also gone")
    response = owner_client.post(reverse("personas:asset_delete", args=[other.pk]))
    assert response.status_code == 302 and response.url == reverse("personas:library")
