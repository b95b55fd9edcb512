"""Browser tests: Debian's Chromium driven by Playwright against the live server, with a real
`db_worker` process sharing the test database and media folder."""

import os
import time
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import start_db_worker

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"


def pytest_collection_modifyitems(items):
    for item in items:
        if "e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def fake_microphone(tmp_path_factory) -> Path:
    """What Chromium's fake microphone plays (on a loop): generated speech, so a recording made
    with MediaRecorder in the page is real speech for the sample check."""
    from tests import media_factory

    path = tmp_path_factory.mktemp("microphone") / "speech.wav"
    path.write_bytes(media_factory.speech_wav(25, sample_rate=48_000))
    return path


@pytest.fixture(scope="session")
def browser(fake_microphone):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={fake_microphone}",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


@pytest.fixture
def worker(live_server, private_media_root):
    """The real job worker (`manage.py db_worker`) on the test database and media folder."""
    proc = start_db_worker(private_media_root)
    time.sleep(0.5)
    yield proc
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture
def screenshot(page, request):
    """Save a screenshot of each step to test-artifacts/<test name>/ (kept out of git)."""
    folder = ARTIFACTS / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    counter = iter(range(1, 1000))

    def take(label: str):
        page.screenshot(path=str(folder / f"{next(counter):02d}-{label}.png"), full_page=True)

    return take
