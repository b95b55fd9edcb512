"""Fetch the user's website and keep its visible text (the analysis reads it as context).

The server fetches an address the user typed, so it refuses private and loopback addresses and
checks every redirect hop itself (a public page could otherwise redirect to an internal one).
The address is checked again on the connected socket, before a byte is sent: a name that
resolves to a public address for the check and to an internal one for the connection (DNS
rebinding) is refused too.

The whole fetch, redirects and body included, has one deadline: a server that sends a byte now
and then never trips the per-read timeout, so at the deadline the sockets are shut down."""

import contextvars
import ipaddress
import socket
import threading
import time
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

FETCH_TIMEOUT = (5.0, 10.0)  # connect, read (each; WEBSITE_FETCH_DEADLINE_SECONDS bounds the whole fetch)
MAX_BYTES = 2 * 1024 * 1024
MAX_REDIRECTS = 3
MAX_TEXT_CHARS = 20_000
INVISIBLE_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "head", "iframe", "object"})
BLOCK_TAGS = frozenset({"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "tr"})


TOO_SLOW = "Your website took too long to send its page. Try again, or leave the address empty."


class WebsiteError(Exception):
    """The website could not be read; the message says why in words the user can act on."""


class _Deadline:
    """One fetch's total time. Every socket the fetch opens is registered; when the time is up
    they are shut down, which ends any read blocked on them (the fetch then reports TOO_SLOW)."""

    def __init__(self, seconds: float):
        self.ends = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self):
        self._token = _current_deadline.set(self)
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
        _current_deadline.reset(self._token)

    @property
    def passed(self) -> bool:
        return self.expired or time.monotonic() >= self.ends

    def timeout(self) -> tuple[float, float]:
        """The per-hop (connect, read) timeout, never past the deadline."""
        left = max(0.01, self.ends - time.monotonic())
        return min(FETCH_TIMEOUT[0], left), min(FETCH_TIMEOUT[1], left)

    def check(self) -> None:
        if self.passed:
            raise WebsiteError(TOO_SLOW)

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


_current_deadline: contextvars.ContextVar[_Deadline | None] = contextvars.ContextVar("website_deadline", default=None)


class VisibleTextParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.hidden_depth = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in INVISIBLE_TAGS:
            self.hidden_depth += 1
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in INVISIBLE_TAGS and self.hidden_depth:
            self.hidden_depth -= 1
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.hidden_depth:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = VisibleTextParser()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)[:MAX_TEXT_CHARS]


def _refuse_internal(host: str, address: str) -> None:
    if not ipaddress.ip_address(address.split("%")[0]).is_global:
        raise WebsiteError(f"{host} is not a public website address.")


class _PublicOnly:
    """A connection that closes its socket unless the peer it reached is a public address."""

    def _new_conn(self):
        sock = super()._new_conn()
        try:
            _refuse_internal(self.host, sock.getpeername()[0])
        except WebsiteError:
            sock.close()
            raise
        deadline = _current_deadline.get()
        if deadline is not None:
            deadline.watch(sock)
        return sock


class _PublicHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = type("PublicHTTPConnection", (_PublicOnly, HTTPConnection), {})


class _PublicHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = type("PublicHTTPSConnection", (_PublicOnly, HTTPSConnection), {})


class _PublicOnlyAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        pools = {"http": _PublicHTTPConnectionPool, "https": _PublicHTTPSConnectionPool}
        self.poolmanager.pool_classes_by_scheme = pools


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # through a proxy the connected peer would be the proxy, not the site
    session.mount("http://", _PublicOnlyAdapter())
    session.mount("https://", _PublicOnlyAdapter())
    return session


def ensure_public_host(url: str) -> None:
    host = urlsplit(url).hostname
    if not host:
        raise WebsiteError("That address has no host name.")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (socket.gaierror, UnicodeError) as exc:
        raise WebsiteError(f"We could not find {host}. Check the address, or leave it empty.") from exc
    for address in addresses:
        _refuse_internal(host, address)


def _get(session: requests.Session, url: str, deadline: _Deadline) -> requests.Response:
    ensure_public_host(url)
    deadline.check()
    try:
        response = session.get(
            url,
            timeout=deadline.timeout(),
            allow_redirects=False,
            stream=True,
            headers={"User-Agent": "ALwrityPersona/1.0 (+style analysis)", "Accept": "text/html"},
        )
    except requests.Timeout as exc:
        raise WebsiteError("Your website took too long to answer. Try again, or leave the address empty.") from exc
    except requests.RequestException as exc:
        raise WebsiteError("We could not reach your website. Check the address, or leave it empty.") from exc
    return response


def _read_limited(response: requests.Response) -> str:
    chunks, size = [], 0
    try:
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > MAX_BYTES:
                break  # enough text for a style analysis; the rest is usually scripts
            chunks.append(chunk)
    except requests.RequestException as exc:
        raise WebsiteError("Your website stopped sending its page. Try again, or leave the address empty.") from exc
    finally:
        response.close()
    return b"".join(chunks).decode(response.encoding or "utf-8", errors="replace")


def fetch_website_text(url: str) -> str:
    """The visible text of the page at `url`, or WebsiteError with a message for the user."""
    with _session() as session, _Deadline(settings.WEBSITE_FETCH_DEADLINE_SECONDS) as deadline:
        try:
            text = _fetch_text(session, url, deadline)
        except WebsiteError as exc:
            # A read cut short by the deadline fails in whatever way it was cut; say why.
            if deadline.passed:
                raise WebsiteError(TOO_SLOW) from exc
            raise
        deadline.check()  # a page without a length just ends when its socket is shut down
        return text


def _fetch_text(session: requests.Session, url: str, deadline: _Deadline) -> str:
    for _ in range(MAX_REDIRECTS + 1):
        response = _get(session, url, deadline)
        if response.is_redirect:
            url = urljoin(url, response.headers.get("Location", ""))
            response.close()
            continue
        if response.status_code >= 400:
            response.close()
            raise WebsiteError(
                f"Your website answered with an error (HTTP {response.status_code}). "
                "Check the address, or leave it empty."
            )
        content_type = response.headers.get("Content-Type", "text/html")
        if "html" not in content_type and "text/plain" not in content_type:
            response.close()
            raise WebsiteError("That address is not a web page. Enter your website's home page or blog.")
        text = visible_text(_read_limited(response))
        if not text:
            raise WebsiteError("We found no text on that page. Try your blog or about page, or leave it empty.")
        return text
    raise WebsiteError("Your website redirected too many times. Enter the final address of the page.")
