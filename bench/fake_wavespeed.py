"""A local fake of the WaveSpeed API with a fixed latency on every request: media upload, render
submit, prediction result (processing once, then completed) and the output download. It speaks
HTTP/1.1 with keep-alive like the real service, so a client that keeps its connections open
pays for one TCP handshake per connection, not one per request.

`/stats` also reports `busy_seconds`: the fake's own time per request, from the request fully
received to the reply written (the fixed latency plus the fake's own work, which grows when its
threads contend for the GIL), so a bench can tell the provider's time from the client's.

    .venv/bin/python bench/fake_wavespeed.py --port 8765 --latency 0.05
"""

import argparse
import json
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(200_000)  # what the worker stores; never decoded


class FakeWaveSpeed(BaseHTTPRequestHandler):
    # HTTP/1.1 with keep-alive, as the real API (over TLS): clients reuse their connections.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the body of a reply on a kept-alive
    # connection would wait for the client's delayed ACK (~40 ms). Real servers set TCP_NODELAY too.
    disable_nagle_algorithm = True
    latency = 0.05
    polls: dict[str, int] = {}
    counts: dict[str, int] = {}
    busy = [0.0]
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def _count(self, name: str) -> None:
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + 1

    def _reply(self, body, status: int = 200, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        received = getattr(self, "received", None)
        if received is not None:
            with self.lock:
                self.busy[0] += time.perf_counter() - received
            self.received = None

    def _base(self) -> str:
        return f"http://{self.headers['Host']}"

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.received = time.perf_counter()
        if self.path == "/api/v3/media/upload/binary":
            self._count("upload")
            time.sleep(self.latency)
            return self._reply({"code": 200, "data": {"download_url": f"{self._base()}/files/{uuid.uuid4().hex}"}})
        if self.path.startswith("/api/v3/wavespeed-ai/"):
            self._count("submit")
            time.sleep(self.latency)
            job_id = uuid.uuid4().hex
            with self.lock:
                self.polls[job_id] = 0
            return self._reply({"code": 200, "data": {"id": job_id, "status": "created"}})
        self._reply({"code": 404, "message": "not found"}, 404)

    def do_GET(self):
        if self.path == "/stats":
            with self.lock:
                return self._reply({**self.counts, "busy_seconds": self.busy[0]})
        self.received = time.perf_counter()
        if self.path.startswith("/api/v3/predictions/") and self.path.endswith("/result"):
            self._count("result")
            time.sleep(self.latency)
            job_id = self.path.split("/")[4]
            with self.lock:
                seen = self.polls.get(job_id, 0)
                self.polls[job_id] = seen + 1
            if seen == 0:
                return self._reply({"code": 200, "data": {"id": job_id, "status": "processing", "outputs": []}})
            url = f"{self._base()}/outputs/{job_id}.mp4"
            return self._reply({"code": 200, "data": {"id": job_id, "status": "completed", "outputs": [url]}})
        if self.path.startswith("/outputs/"):
            self._count("download")
            time.sleep(self.latency)
            return self._reply(VIDEO, content_type="video/mp4")
        self._reply({"code": 404, "message": "not found"}, 404)


class FakeServer:
    """The fake in its own process, so its CPU time is not the worker's."""

    def __init__(self, port: int, latency: float):
        self.port, self.latency = port, latency
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self):
        cmd = [sys.executable, str(Path(__file__)), "--port", str(self.port), "--latency", str(self.latency)]
        self.proc = subprocess.Popen(cmd)
        from benchlib import wait_for_port

        wait_for_port(self.port)
        return self

    def stats(self) -> dict:
        return requests.get(self.url + "/stats", timeout=10).json()

    def __exit__(self, *exc):
        from benchlib import stop

        stop(self.proc)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    FakeWaveSpeed.latency = args.latency
    server = ThreadingHTTPServer(("127.0.0.1", args.port), FakeWaveSpeed)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
