"""The persona wizard in a real browser: sign up, steps 1-5 stand-in, step 6 (style, voice,
avatar) and step 7, ending on the dashboard with voice and avatar approved. The real worker
process runs every job."""

import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from media_pipeline.models import JobKind
from personas.models import Tier, WritingPersona
from tests import photo_factory
from tests.onboarding.conftest import SAMPLES

TRAINING_TIMEOUT = 120_000  # ms: real espeak synthesis and offline rendering in the worker


def section(page, name: str, state: str):
    locator = page.locator(f"section#{name}")
    expect(locator).to_have_attribute("data-state", state, timeout=TRAINING_TIMEOUT)
    return locator


def sign_up(page, username: str):
    page.goto("/accounts/signup/")
    page.fill("input[name=username]", username)
    page.fill("input[name=email]", f"{username}@example.com")
    page.fill("input[name=password1]", "correct horse battery staple")
    page.fill("input[name=password2]", "correct horse battery staple")
    page.locator("main").get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(re.compile(r"/onboarding/content/$"))
    # Pro includes voice and avatar (billing is outside this app).
    subscription = User.objects.get(username=username).subscription
    subscription.tier = Tier.PRO
    subscription.save()


def fill_content(page):
    page.fill("input[name=brand_name]", "Wizard Writer")
    page.fill("textarea[name=writing_samples]", SAMPLES)
    page.check("input[name=platforms][value=linkedin]")
    page.check("input[name=platforms][value=blog]")
    page.get_by_role("button", name="Save and analyse my writing").click()
    expect(page).to_have_url(re.compile(r"/onboarding/persona/\d+/#style$"))


def record_voice(page, seconds: int):
    """wizard.js records the microphone with MediaRecorder and puts the recording into the
    form's file input. Chromium's fake microphone plays generated speech (see conftest)."""
    voice = page.locator("section#voice")
    voice.locator("[data-record-start]").click()
    expect(voice.locator("[data-record-timer]")).to_have_text(f"0:{seconds:02d}", timeout=(seconds + 10) * 1000)
    voice.locator("[data-record-stop]").click()
    expect(voice.locator("[data-record-playback]")).to_be_visible()
    name = voice.locator("input[name=sample]").evaluate("input => input.files[0].name")
    assert re.fullmatch(r"recording\.(webm|ogg)", name), name


def check_camera(page):
    """wizard.js puts a camera photo (Chromium's fake camera: a test pattern) into the file input."""
    avatar = page.locator("section#avatar")
    avatar.locator("[data-camera-start]").click()
    avatar.locator("[data-camera-capture]").click()
    expect(avatar.locator("[data-camera-status]")).to_contain_text("Photo taken")
    assert avatar.locator("input[name=photo]").evaluate("input => input.files[0].name") == "camera.jpg"


def train_voice(page, screenshot):
    """Record 12 s in the browser, upload the recording, read its quality report and train from
    it anyway: short of the recommended minute, it has a warning and no error."""
    record_voice(page, 12)
    voice = page.locator("section#voice")
    voice.locator("input[name=consent]").check()
    voice.get_by_role("button", name="Upload and check").click()
    voice = section(page, "voice", "warnings")
    report = voice.locator("[data-report]")
    for label in ("Duration", "Loudness", "Background noise", "Clipping", "Speech"):
        expect(report).to_contain_text(label)
    expect(report.locator('[data-check="duration"]')).to_have_attribute("data-level", "warning")
    expect(report.locator('[data-check="duration"]')).to_have_text(
        re.compile(r"Your sample is 1[1-3] s; record at least 60 s for a voice that sounds like you\.")
    )
    expect(report.locator('[data-level="error"]')).to_have_count(0)
    screenshot("voice-quality-report")
    voice.get_by_role("button", name="Use this sample anyway").click()
    section(page, "voice", "training")
    screenshot("voice-training")
    voice = section(page, "voice", "ready")
    expect(voice.locator("audio[data-preview=voice]")).to_be_attached()
    voice.locator("input[name=text]").fill("Welcome to my weekly letter.")
    voice.get_by_role("button", name="Speak it").click()
    expect(voice.locator("audio[data-preview=sentence]")).to_be_attached(timeout=TRAINING_TIMEOUT)
    screenshot("voice-ready")
    page.locator("section#voice").get_by_role("button", name="Approve my voice").click()
    section(page, "voice", "approved")


def create_avatar(page, screenshot, photo_path):
    avatar = page.locator("section#avatar")
    avatar.locator("input[name=photo]").set_input_files(str(photo_path))
    avatar.locator("input[name=consent]").check()
    avatar.get_by_role("button", name="Upload and check").click()
    avatar = section(page, "avatar", "checked")
    expect(avatar.locator("[data-report]")).to_contain_text("We found your face.")
    screenshot("avatar-photo-check")
    avatar.get_by_role("button", name="Create my avatar").click()
    section(page, "avatar", "training")
    screenshot("avatar-creating")
    avatar = section(page, "avatar", "ready")
    expect(avatar.locator("video[data-preview=avatar]")).to_be_attached()
    # The voice was approved first, so the preview speaks in it (the offline provider's match).
    expect(avatar).to_contain_text("Your avatar, speaking in your offline voice match:")
    screenshot("avatar-ready")
    avatar.get_by_role("button", name="Approve my avatar").click()
    section(page, "avatar", "approved")


@pytest.mark.usefixtures("transactional_db")
def test_sign_up_and_walk_steps_6_and_7(page, worker, screenshot, tmp_path):
    photo_path = tmp_path / "me.png"
    photo_factory.drawn_face(1200).save(photo_path)  # a generated face, nobody's likeness

    sign_up(page, "wizard")
    screenshot("content-step")
    fill_content(page)
    section(page, "style", "done")
    expect(page.locator("section#style")).to_contain_text("Platform adaptations")
    screenshot("writing-style")

    check_camera(page)
    train_voice(page, screenshot)
    create_avatar(page, screenshot, photo_path)
    # A refresh shows the true state from the database.
    page.reload()
    section(page, "voice", "approved")
    section(page, "avatar", "approved")
    screenshot("step-6-done")

    page.get_by_role("link", name="Continue to your persona preview").click()
    expect(page.locator("h1")).to_contain_text("Your persona: Wizard Writer")
    expect(page.locator("[data-total-cost]")).to_have_text("$0.00")  # offline providers cost nothing
    screenshot("step-7-preview")
    page.get_by_role("button", name="Approve my complete persona").click()
    expect(page).to_have_url(re.compile(r"/persona/$"))
    screenshot("dashboard")

    persona = WritingPersona.objects.get(user__username="wizard")
    assert persona.approved_at and persona.voice_approved_at and persona.avatar_approved_at
    assert persona.voice_ready and persona.avatar_ready
    # The voice was trained from the browser's MediaRecorder recording (Opus in WebM or Ogg).
    recorded = persona.jobs.get(kind=JobKind.SAMPLE_CHECK).result["report"]["metrics"]["format"]
    assert "webm" in recorded or "ogg" in recorded, recorded


@pytest.mark.usefixtures("transactional_db")
def test_without_javascript_forms_post_and_redirect_back(browser, live_server, worker, screenshot):
    """The same wizard with scripts off: plain forms, redirects back to the section, and a
    <noscript> refresh while work is in progress."""
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_up(page, "noscript")
        fill_content(page)
        section(page, "style", "done")  # the page refreshes itself while analysing
        page.locator("section#voice").get_by_role("button", name=re.compile("Skip for now")).click()
        expect(page).to_have_url(re.compile(r"#voice$"))
        section(page, "voice", "skipped")
        page.locator("section#avatar").get_by_role("button", name=re.compile("Skip for now")).click()
        section(page, "avatar", "skipped")
        page.goto(page.url.split("#")[0] + "preview/")
        page.get_by_role("button", name="Approve my complete persona").click()
        expect(page).to_have_url(re.compile(r"/persona/$"))
    finally:
        context.close()
