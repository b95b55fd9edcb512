"""The content studio in a real browser with the real worker and the offline providers: make a
LinkedIn video post and a story narration, find both in the media library, play them, delete one."""

import re

import pytest
from playwright.sync_api import expect

from media_pipeline.models import MediaAsset
from personas.models import PlatformAdaptation
from tests.conftest import make_user
from tests.personas.conftest import make_persona

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "correct horse battery staple"
JOB_TIMEOUT_MS = 120_000


@pytest.fixture
def writer(live_server):
    """A Pro writer whose persona was approved with an offline voice and avatar (real files)."""
    user = make_user("writer", "pro")
    persona = make_persona(user, voice=True, avatar=True)
    PlatformAdaptation.objects.create(persona=persona, platform="linkedin", hashtags=2, target_length_words=80)
    return user


def log_in(page, username: str) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/persona/"))


def estimate_then_generate(page, screenshot, label: str) -> None:
    page.get_by_role("button", name="See the cost estimate").click()
    expect(page.locator("#estimate")).to_be_visible()
    screenshot(f"{label}-estimate")
    page.get_by_role("button", name=re.compile(r"^Generate")).click()
    # Live progress: the job panel polls every 2 s and stops when the job is done.
    expect(page.locator(".job")).to_have_attribute("data-status", "succeeded", timeout=JOB_TIMEOUT_MS)
    screenshot(f"{label}-done")


def plays(page, selector: str) -> dict:
    """Play the element's media (muted, as autoplay rules allow without a click) until its clock
    moves, and report what the browser decoded and how far it played."""
    return page.eval_on_selector(
        selector,
        """el => new Promise((resolve, reject) => {
            const report = () => ({readyState: el.readyState, duration: el.duration, currentTime: el.currentTime,
                                   error: el.error?.code});
            const timer = setTimeout(() => resolve(report()), 15000);
            el.addEventListener('timeupdate', () => {
                if (el.currentTime > 0) { clearTimeout(timer); el.pause(); resolve(report()); }
            });
            el.addEventListener('error', () => { clearTimeout(timer); resolve(report()); }, {once: true});
            el.muted = true;
            el.play().catch(error => { clearTimeout(timer); resolve({...report(), playError: String(error)}); });
        })""",
    )


def test_make_find_play_and_delete(page, worker, writer, screenshot):
    log_in(page, "writer")

    # A LinkedIn video post: adapted text, avatar video, captions, labelled as AI-generated.
    page.goto("/persona/studio/linkedin/")
    page.fill("textarea[name=text]", "Writing in public taught me more than any course. Share drafts, ask for notes.")
    page.select_option("select[name=aspect_ratio]", "16:9")
    estimate_then_generate(page, screenshot, "linkedin")
    expect(page.get_by_text("AI-generated").first).to_be_visible()
    video = plays(page, ".job video")
    assert video["currentTime"] > 0 and video["duration"] > 0, video

    # A story: two scenes (the second added with htmx), narrated in the persona voice.
    page.goto("/persona/studio/story/")
    page.fill("input[name=title]", "The lighthouse")
    page.fill("textarea[name=scenes-0-text]", "The keeper climbed the stairs every evening.")
    page.get_by_role("button", name="Add a scene").click()
    page.fill("textarea[name=scenes-1-text]", "One night, a ship answered his light.")
    page.uncheck("input[name=make_video]")  # audio only this time
    estimate_then_generate(page, screenshot, "story")

    # Both are in the library, and they play.
    page.goto("/persona/library/")
    expect(page.get_by_role("heading", name="The lighthouse · narration")).to_be_visible()
    clip = MediaAsset.objects.get(kind="video")
    expect(page.get_by_role("heading", name=clip.title)).to_be_visible()
    narration = MediaAsset.objects.get(title="The lighthouse · narration")
    audio = plays(page, f"#asset-{narration.pk} audio")
    assert audio["currentTime"] > 0 and audio["duration"] > 3, audio
    video = plays(page, f"#asset-{clip.pk} video")
    assert video["currentTime"] > 0 and video["duration"] > 1, video
    screenshot("library")

    # Filter to videos only, then delete the video (the file goes too).
    page.select_option("select[name=kind]", "video")
    expect(page.locator(f"#asset-{narration.pk}")).to_have_count(0)
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f"#asset-{clip.pk}").get_by_role("button", name="Delete").click()
    expect(page.locator(f"#asset-{clip.pk}")).to_have_count(0)
    assert not MediaAsset.objects.filter(pk=clip.pk).exists()
    screenshot("deleted")

    # The dashboard counts what was made: two pieces of content (a post, a story), however many
    # provider calls they took; deleting a library file does not undo a use.
    page.goto("/persona/")
    expect(page.locator("[data-figure=uses]")).to_have_text("2")
    screenshot("dashboard")
