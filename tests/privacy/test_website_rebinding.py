"""The website fetch checks the address it actually connected to, not only the one it looked up."""

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from onboarding.website import WebsiteError, fetch_website_text


@pytest.fixture
def local_site():
    """A real web server on loopback that counts the requests it receives."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            received.append(self.path)
            body = b"<html><body><p>Internal admin page</p></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], received
    server.shutdown()
    server.server_close()


def resolver(monkeypatch, *answers):
    """Name resolution that gives each answer in turn, then the last one for ever after."""
    real = socket.getaddrinfo
    queue = list(answers)

    def fake(host, port, *args, **kwargs):
        if host != "rebind.example.com":
            return real(host, port, *args, **kwargs)
        address = queue.pop(0) if len(queue) > 1 else queue[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def test_a_name_that_turns_internal_after_the_check_is_refused_before_any_request(monkeypatch, local_site):
    port, received = local_site
    resolver(monkeypatch, "93.184.215.14", "127.0.0.1")  # public for the check, loopback to connect

    with pytest.raises(WebsiteError, match="rebind.example.com is not a public website address"):
        fetch_website_text(f"http://rebind.example.com:{port}/admin/")
    assert received == []


def test_the_connection_check_lets_a_public_peer_through(monkeypatch, local_site):
    """The same server is read once loopback counts as public: the guard is what refused it above."""
    port, received = local_site
    resolver(monkeypatch, "127.0.0.1")
    monkeypatch.setattr("onboarding.website._refuse_internal", lambda host, address: None)

    assert fetch_website_text(f"http://rebind.example.com:{port}/about") == "Internal admin page"
    assert received == ["/about"]
