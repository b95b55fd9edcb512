"""The retrying HTTP client shared by the provider adapters, faked at the HTTP boundary."""

import json
import logging

import pytest
import requests

from media_pipeline.providers.base import ProviderError
from media_pipeline.providers.http import LOST_REPLY, HttpClient, audio_seconds
from tests.media_factory import make_audio, make_mp4

API = "https://api.example.test"
KEY = "sk-very-secret"


@pytest.fixture
def client(settings, sleeps):
    settings.HTTP_MAX_RETRIES = 4
    settings.HTTP_BACKOFF_SECONDS = 1.0
    settings.HTTP_BACKOFF_MAX_SECONDS = 20.0
    settings.HTTP_RETRY_AFTER_MAX_SECONDS = 30.0
    http = HttpClient(service="Acme", base_url=API + "/", api_key=KEY, key_setting="ACME_API_KEY")
    http.sleep = sleeps.append
    return http


def test_success_sends_key_and_explicit_timeouts(client, mocked, sleeps):
    mocked.post(API + "/v1/thing", json={"ok": True})
    assert client.request_json("POST", "/v1/thing", json={"a": 1}) == {"ok": True}
    request = mocked.calls[0].request
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.req_kwargs["timeout"] == (5.0, 60.0)
    assert json.loads(request.body) == {"a": 1}
    assert sleeps == []


def test_429_honours_retry_after_then_succeeds(client, mocked, sleeps):
    mocked.get(API + "/v1/thing", status=429, headers={"Retry-After": "3"}, json={"message": "slow down"})
    mocked.get(API + "/v1/thing", json={"ok": 1})
    assert client.request_json("GET", "/v1/thing") == {"ok": 1}
    assert len(mocked.calls) == 2
    assert sleeps == [3.0]


def test_retry_after_is_capped(client, mocked, sleeps):
    mocked.get(API + "/v1/thing", status=429, headers={"Retry-After": "3600"})
    mocked.get(API + "/v1/thing", json={"ok": 1})
    client.request_json("GET", "/v1/thing")
    assert sleeps == [30.0]


def test_429_without_retry_after_uses_backoff(client, mocked, sleeps):
    mocked.get(API + "/v1/thing", status=429, headers={"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"})
    mocked.get(API + "/v1/thing", json={"ok": 1})
    client.request_json("GET", "/v1/thing")
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 1.0


def test_500_then_success(client, mocked, sleeps):
    mocked.get(API + "/v1/thing", status=500, body="<html><body>Internal error</body></html>")
    mocked.get(API + "/v1/thing", json={"ok": 1})
    assert client.request_json("GET", "/v1/thing") == {"ok": 1}
    assert len(mocked.calls) == 2
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 1.0


def test_repeated_5xx_exhausts_retries_with_growing_jittered_backoff(client, mocked, sleeps):
    mocked.get(API + "/v1/thing", status=503, body="<html>Service Unavailable</html>")
    with pytest.raises(ProviderError) as caught:
        client.request_json("GET", "/v1/thing")
    assert caught.value.retryable is True
    assert "HTTP 503" in caught.value.message and "<html" not in caught.value.message
    assert len(mocked.calls) == 4
    assert len(sleeps) == 3
    for attempt, delay in enumerate(sleeps, start=1):
        assert 0 <= delay <= 2 ** (attempt - 1)


def test_backoff_is_capped(client, settings, mocked, sleeps):
    settings.HTTP_BACKOFF_MAX_SECONDS = 1.5
    client.max_attempts = 6
    mocked.get(API + "/v1/thing", status=502)
    with pytest.raises(ProviderError):
        client.request_json("GET", "/v1/thing")
    assert len(sleeps) == 5 and max(sleeps) <= 1.5


@pytest.mark.parametrize(
    "error", [requests.exceptions.ReadTimeout(), requests.exceptions.ConnectTimeout(), requests.ConnectionError()]
)
def test_timeouts_and_connection_errors_are_retried(client, mocked, sleeps, error):
    mocked.get(API + "/v1/thing", body=error)
    mocked.get(API + "/v1/thing", json={"ok": 1})
    assert client.request_json("GET", "/v1/thing") == {"ok": 1}
    assert len(mocked.calls) == 2


def test_connection_errors_exhausting_retries_are_retryable(client, mocked):
    mocked.get(API + "/v1/thing", body=requests.ConnectionError("refused"))
    with pytest.raises(ProviderError) as caught:
        client.request_json("GET", "/v1/thing")
    assert caught.value.retryable is True
    assert len(mocked.calls) == 4


def test_malformed_json_is_retried(client, mocked):
    mocked.get(API + "/v1/thing", body="<html>gateway says hi</html>", content_type="text/html")
    mocked.get(API + "/v1/thing", body='{"truncated": ')
    mocked.get(API + "/v1/thing", json=["not", "an", "object"])
    mocked.get(API + "/v1/thing", json={"ok": 1})
    assert client.request_json("GET", "/v1/thing") == {"ok": 1}
    assert len(mocked.calls) == 4


def test_paid_submit_timing_out_is_sent_once(client, mocked, sleeps):
    mocked.post(API + "/v1/render", body=requests.exceptions.ReadTimeout())
    with pytest.raises(ProviderError) as caught:
        client.request_json("POST", "/v1/render", paid=True, json={"x": 1})
    assert len(mocked.calls) == 1
    assert caught.value.retryable is False
    assert caught.value.code == LOST_REPLY
    assert "may still have been accepted and billed" in caught.value.message
    assert sleeps == []


@pytest.mark.parametrize(
    "reply",
    [
        {"status": 502, "body": "<html>bad gateway</html>"},
        {"status": 200, "body": "not json"},
        {"body": requests.ConnectionError("reset by peer")},
    ],
)
def test_paid_submit_with_lost_or_garbled_reply_is_not_resent(client, mocked, reply):
    mocked.post(API + "/v1/render", **reply)
    with pytest.raises(ProviderError) as caught:
        client.request_json("POST", "/v1/render", paid=True)
    assert len(mocked.calls) == 1
    assert caught.value.retryable is False and caught.value.code == LOST_REPLY


@pytest.mark.parametrize(
    "first",
    [{"body": requests.exceptions.ConnectTimeout()}, {"status": 429, "headers": {"Retry-After": "1"}}],
)
def test_paid_submit_is_resent_only_when_it_cannot_have_been_accepted(client, mocked, first):
    mocked.post(API + "/v1/render", **first)
    mocked.post(API + "/v1/render", json={"id": "job1"})
    assert client.request_json("POST", "/v1/render", paid=True) == {"id": "job1"}
    assert len(mocked.calls) == 2


def test_401_is_final_and_readable(client, mocked):
    mocked.get(API + "/v1/thing", status=401, json={"code": 401, "message": "Unauthorized"})
    with pytest.raises(ProviderError) as caught:
        client.request_json("GET", "/v1/thing")
    assert len(mocked.calls) == 1
    assert caught.value.retryable is False and caught.value.code == 401
    assert "ACME_API_KEY" in caught.value.message and KEY not in caught.value.message


def test_403_shows_the_providers_message(client, mocked):
    mocked.get(API + "/v1/thing", status=403, json={"message": "Account suspended"})
    with pytest.raises(ProviderError) as caught:
        client.request_json("GET", "/v1/thing")
    assert caught.value.message == "Acme refused access (HTTP 403): Account suspended."
    assert caught.value.retryable is False


def test_4xx_with_html_body_shows_no_html(client, mocked):
    mocked.post(API + "/v1/thing", status=400, body="<html><h1>Bad Request</h1></html>")
    with pytest.raises(ProviderError) as caught:
        client.request_json("POST", "/v1/thing")
    assert caught.value.message == "Acme rejected the request (HTTP 400)."
    assert len(mocked.calls) == 1


def test_missing_key_fails_before_any_request(settings, mocked):
    http = HttpClient(service="Acme", base_url=API, api_key="", key_setting="ACME_API_KEY")
    with pytest.raises(ProviderError, match="set ACME_API_KEY"):
        http.request_json("GET", "/v1/thing")
    assert len(mocked.calls) == 0


def test_absolute_urls_are_fetched_without_the_key(client, mocked):
    mocked.get("https://cdn.example.test/out.mp4?sig=abc", body=b"video-bytes")
    assert client.request_bytes("GET", "https://cdn.example.test/out.mp4?sig=abc") == b"video-bytes"
    assert "Authorization" not in mocked.calls[0].request.headers


def _fail_with(code, retryable):
    def check(body):
        if body.get("err"):
            raise ProviderError("in-band error", retryable=retryable, code=code)

    return check


def test_retryable_in_band_errors_are_retried_for_free_calls(client, mocked):
    mocked.get(API + "/v1/thing", json={"err": 1})
    mocked.get(API + "/v1/thing", json={"ok": 1})
    assert client.request_json("GET", "/v1/thing", check=_fail_with(1002, True)) == {"ok": 1}
    assert len(mocked.calls) == 2


def test_retryable_in_band_errors_exhausting_retries_keep_their_code_and_message(client, mocked):
    mocked.get(API + "/v1/thing", json={"err": 1})
    with pytest.raises(ProviderError) as caught:
        client.request_json("GET", "/v1/thing", check=_fail_with(1002, True))
    assert len(mocked.calls) == 4
    assert caught.value.code == 1002 and caught.value.retryable is True
    assert caught.value.message == "in-band error"


def test_in_band_errors_on_paid_calls_are_raised_as_they_are(client, mocked):
    mocked.post(API + "/v1/render", json={"err": 1})
    with pytest.raises(ProviderError) as caught:
        client.request_json("POST", "/v1/render", paid=True, check=_fail_with(1002, True))
    assert len(mocked.calls) == 1
    assert caught.value.code == 1002 and caught.value.retryable is True


def test_final_in_band_errors_are_not_retried(client, mocked):
    mocked.get(API + "/v1/thing", json={"err": 1})
    with pytest.raises(ProviderError) as caught:
        client.request_json("GET", "/v1/thing", check=_fail_with(2049, False))
    assert len(mocked.calls) == 1 and caught.value.code == 2049


def test_logs_never_contain_the_key_or_signed_query(client, mocked, caplog):
    mocked.get("https://cdn.example.test/a.mp4?token=secret-token", status=503)
    mocked.get("https://cdn.example.test/a.mp4?token=secret-token", body=b"ok")
    mocked.get(API + "/v1/thing", status=500)
    mocked.get(API + "/v1/thing", json={})
    with caplog.at_level(logging.DEBUG):
        client.request_bytes("GET", "https://cdn.example.test/a.mp4?token=secret-token")
        client.request_json("GET", "/v1/thing")
    assert "retry 1/3" in caplog.text
    assert KEY not in caplog.text and "secret-token" not in caplog.text


def test_audio_seconds_decodes_mp3_wav_and_files(tmp_path):
    assert audio_seconds(make_audio("mp3", 1.0), error="bad") == pytest.approx(1.0, abs=0.05)
    path = tmp_path / "a.wav"
    path.write_bytes(make_audio("wav", 2.0))
    assert audio_seconds(str(path), error="bad") == pytest.approx(2.0, abs=0.01)


@pytest.mark.parametrize("data", [b"not audio at all" * 20, make_mp4()])
def test_audio_seconds_refuses_what_is_not_audio(data):
    with pytest.raises(ProviderError, match="^bad$"):
        audio_seconds(data, error="bad")
