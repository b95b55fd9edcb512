"""The website fetch has one deadline for the whole fetch: redirects, headers and body. Real HTTP
servers on loopback trickle their answer a byte at a time, which never trips a per-read timeout."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse

from onboarding.models import OnboardingData
from onboarding.website import TOO_SLOW, WebsiteError, fetch_website_text
from tests.onboarding.conftest import SAMPLES

PAGE = b"<html><body><p>" + b"We help founders write. " * 20 + b"</p></body></html>"


@pytest.fixture
def loopback_allowed(monkeypatch):
    """These servers are on loopback, which the address guard refuses (tested in tests/privacy)."""
    monkeypatch.setattr("onboarding.website._refuse_internal", lambda host, address: None)


@pytest.fixture
def slow_site():
    """A web server on loopback. /trickle-body sends its headers, then the page a byte every
    50 ms; /trickle-headers sends even its status line that way; /hop/N waits 0.4 s and
    redirects to /hop/N-1; /hop/0 answers the page at once. Records when each request ended."""
    finished = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            try:
                self._answer()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client hung up, as it should at its deadline
            finished.append((self.path, time.monotonic()))

        def _answer(self):
            if self.path == "/trickle-body":
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(PAGE)))
                self.end_headers()
                self._trickle(PAGE)
            elif self.path == "/trickle-headers":
                self._trickle(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Padding: " + b"x" * 400 + b"\r\n\r\n")
                self.wfile.write(PAGE)
            elif self.path.startswith("/hop/"):
                left = int(self.path.rsplit("/", 1)[1])
                time.sleep(0.4 if left else 0)
                if left:
                    self.send_response(302)
                    self.send_header("Location", f"/hop/{left - 1}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(PAGE)))
                    self.end_headers()
                    self.wfile.write(PAGE)

        def _trickle(self, data: bytes):
            for byte in data:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.05)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", finished
    server.shutdown()
    server.server_close()


def timed_fetch(url: str):
    started = time.monotonic()
    try:
        return fetch_website_text(url), time.monotonic() - started
    except WebsiteError as exc:
        return exc, time.monotonic() - started


@pytest.mark.parametrize("path", ["/trickle-body", "/trickle-headers"])
def test_a_trickling_server_is_cut_off_at_the_deadline(settings, loopback_allowed, slow_site, path):
    settings.WEBSITE_FETCH_DEADLINE_SECONDS = 1.0
    base, _ = slow_site
    error, elapsed = timed_fetch(base + path)
    assert isinstance(error, WebsiteError) and str(error) == TOO_SLOW
    # Each byte arrives well within the 10 s read timeout; only the deadline ends the fetch.
    assert 1.0 <= elapsed < 2.5


def test_the_deadline_covers_all_redirect_hops(settings, loopback_allowed, slow_site):
    base, finished = slow_site
    settings.WEBSITE_FETCH_DEADLINE_SECONDS = 1.0  # each hop takes 0.4 s: three of them do not fit
    error, elapsed = timed_fetch(base + "/hop/3")
    assert isinstance(error, WebsiteError) and str(error) == TOO_SLOW
    assert elapsed < 2.0
    assert "/hop/0" not in [path for path, _ in finished]

    settings.WEBSITE_FETCH_DEADLINE_SECONDS = 5.0  # and within the deadline the same chain is read
    text, _ = timed_fetch(base + "/hop/3")
    assert text.startswith("We help founders write.")


@pytest.mark.django_db
def test_the_content_step_shows_the_message_and_saves_nothing(
    owner_client, owner, settings, loopback_allowed, slow_site, django_capture_on_commit_callbacks
):
    settings.WEBSITE_FETCH_DEADLINE_SECONDS = 1.0
    base, _ = slow_site
    data = {"brand_name": "Owner Co", "writing_samples": SAMPLES, "platforms": ["blog"], "website_url": base}
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("onboarding:content"), data | {"website_url": base + "/trickle-body"})
    assert response.status_code == 200 and TOO_SLOW in response.content.decode()
    assert not OnboardingData.objects.exists() and not owner.personas.exists()
