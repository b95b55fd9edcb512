"""The one retrying HTTP client every HTTP adapter uses.

Retries (exponential backoff with full jitter) only what is safe and likely to pass next time:
HTTP 429 (honouring Retry-After), 5xx, connection errors, timeouts and unreadable JSON. A paid
submit is sent once: a lost reply may still have created a billed job, so it is never resent
blindly. Only a connect timeout (nothing was sent) or a 429 (explicitly refused) is retried there.
"""

import io
import itertools
import logging
import random
import re
import threading
import time
from collections.abc import Callable

import av
import requests
from django.conf import settings

from media_pipeline.providers.base import ProviderError

log = logging.getLogger(__name__)

LOST_REPLY = "lost_reply"  # ProviderError.code when a paid submit got no usable reply


class _Transient(Exception):
    """A failure worth another attempt. `sent` says whether the provider may have acted on it;
    `error` is the provider's own retryable error, raised as it is once attempts run out."""

    def __init__(self, reason: str, *, sent: bool, delay: float | None = None, error: ProviderError | None = None):
        super().__init__(reason)
        self.reason = reason
        self.sent = sent
        self.delay = delay
        self.error = error


_sessions = threading.local()


def shared_session(base_url: str) -> requests.Session:
    """One `requests.Session` per provider base URL and thread. Adapters are built for each job
    step; a Session of their own would open a new TCP (and TLS) connection for every step instead
    of reusing the pooled keep-alive ones. Per thread, as a Session is not thread-safe."""
    sessions = _sessions.__dict__.setdefault("by_base_url", {})
    if base_url not in sessions:
        sessions[base_url] = requests.Session()
    return sessions[base_url]


class HttpClient:
    """A provider's base URL, bearer key, timeouts and retries over its shared, pooled Session."""

    def __init__(self, *, service: str, base_url: str, api_key: str, key_setting: str):
        self.service = service  # used in messages, e.g. "MiniMax"
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.key_setting = key_setting
        self.session = shared_session(self.base_url)
        self.timeout = (settings.HTTP_CONNECT_TIMEOUT, settings.HTTP_READ_TIMEOUT)
        self.max_attempts = max(1, settings.HTTP_MAX_RETRIES)
        self.sleep = time.sleep  # tests replace this so retries and polling do not wait

    def request_json(
        self, method: str, path: str, *, paid: bool = False, check: Callable[[dict], None] | None = None, **kwargs
    ) -> dict:
        """Call an API endpoint and return its JSON object. `check` inspects the body and raises
        ProviderError for in-band errors; retryable ones are retried here unless `paid`."""

        def parse(response: requests.Response) -> dict:
            try:
                body = response.json()
            except ValueError:
                raise _Transient("an unreadable reply", sent=True) from None
            if not isinstance(body, dict):
                raise _Transient("an unreadable reply", sent=True)
            if check is not None:
                try:
                    check(body)
                except ProviderError as exc:
                    if not exc.retryable or paid:
                        raise
                    raise _Transient(exc.message, sent=True, error=exc) from exc
            return body

        return self._with_retries(method, path, paid=paid, parse=parse, **kwargs)

    def request_bytes(self, method: str, url: str, **kwargs) -> bytes:
        """Fetch raw bytes: an API path (with the key) or an absolute URL such as a CDN download
        (without it, so the key never leaves for another host)."""
        return self._with_retries(method, url, paid=False, parse=lambda response: response.content, **kwargs)

    def _with_retries(self, method: str, url: str, *, paid: bool, parse: Callable, **kwargs):
        endpoint = url.split("?")[0]  # signed download URLs carry tokens in the query
        for attempt in itertools.count(1):
            try:
                return parse(self._send(method, url, **kwargs))
            except _Transient as exc:
                if paid and exc.sent:
                    log.warning("%s %s %s: %s; not resent (paid)", self.service, method, endpoint, exc.reason)
                    raise ProviderError(
                        f"{self.service} did not give a usable reply ({exc.reason}). The request may still have "
                        "been accepted and billed, so it was not sent again.",
                        retryable=False,
                        code=LOST_REPLY,
                    ) from exc
                if attempt == self.max_attempts:
                    if exc.error is not None:
                        raise exc.error from None
                    raise ProviderError(
                        f"{self.service} is not responding properly right now ({exc.reason}). "
                        "Please try again in a few minutes.",
                        retryable=True,
                    ) from exc
                delay = exc.delay if exc.delay is not None else self._backoff(attempt)
                log.warning(
                    "%s %s %s: %s; retry %d/%d in %.1f s",
                    self.service,
                    method,
                    endpoint,
                    exc.reason,
                    attempt,
                    self.max_attempts - 1,
                    delay,
                )
                self.sleep(delay)

    def _send(self, method: str, url: str, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if not url.startswith(("http://", "https://")):
            if not self.api_key:
                raise ProviderError(f"{self.service} is not configured: set {self.key_setting}.")
            headers = {**headers, "Authorization": f"Bearer {self.api_key}"}
            url = self.base_url + url
        try:
            response = self.session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
        except requests.exceptions.ConnectTimeout:
            raise _Transient("connection timed out", sent=False) from None
        except requests.exceptions.Timeout:
            raise _Transient("no reply in time", sent=True) from None
        except requests.exceptions.ConnectionError:
            raise _Transient("connection failed", sent=True) from None
        status = response.status_code
        if status == 429:
            raise _Transient("rate limited, HTTP 429", sent=False, delay=self._retry_after(response))
        if status >= 500:
            raise _Transient(f"HTTP {status}", sent=True)
        if status >= 400:
            raise ProviderError(self._client_error_message(response), code=status)
        return response

    def _backoff(self, attempt: int) -> float:
        # Full jitter: spreads out clients that failed together instead of retrying in lockstep.
        ceiling = settings.HTTP_BACKOFF_SECONDS * 2 ** (attempt - 1)
        return random.uniform(0, min(settings.HTTP_BACKOFF_MAX_SECONDS, ceiling))

    def _retry_after(self, response: requests.Response) -> float | None:
        """Retry-After in seconds, capped; None (use backoff) when absent or an HTTP date."""
        try:
            seconds = float(response.headers.get("Retry-After", ""))
        except ValueError:
            return None
        return min(max(seconds, 0.0), settings.HTTP_RETRY_AFTER_MAX_SECONDS)

    def _client_error_message(self, response: requests.Response) -> str:
        status = response.status_code
        detail = error_detail(response)
        if status == 401:
            return f"{self.service} rejected the API key (HTTP 401). Check {self.key_setting} and the account's credit."
        if status == 403:
            return f"{self.service} refused access (HTTP 403): {detail or 'check that the account is active'}."
        return f"{self.service} rejected the request (HTTP {status})" + (f": {detail}" if detail else ".")


def error_detail(response: requests.Response) -> str:
    """A short, safe description from a JSON error body; raw HTML or text is never shown."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    base_resp = body.get("base_resp") if isinstance(body.get("base_resp"), dict) else {}
    for value in (body.get("message"), body.get("error"), body.get("msg"), base_resp.get("status_msg")):
        if isinstance(value, str) and value.strip():
            return short_text(value)
    return ""


def short_text(text: str, limit: int = 200) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def audio_seconds(source: bytes | str, *, error: str) -> float:
    """Exact duration of audio bytes or a file, by decoding it (containers often guess from the
    bitrate). Raises ProviderError(error) when it is not decodable audio."""
    try:
        with av.open(io.BytesIO(source) if isinstance(source, bytes) else source) as container:
            seconds = sum(frame.samples / frame.sample_rate for frame in container.decode(audio=0))
    except (av.error.FFmpegError, IndexError, ValueError) as exc:
        raise ProviderError(error) from exc
    if seconds <= 0:
        raise ProviderError(error)
    return round(seconds, 3)
