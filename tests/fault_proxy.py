"""A small HTTP fault proxy on loopback for the scale-out tests and bench/scale.py.

It forwards each POST to one upstream server and, for a chosen share of requests (decided by a
seeded random stream, so a test is repeatable), does harm instead: drops the connection, answers
500 or 429 with Retry-After, or delays the answer. `counts` says what it did.
"""

from __future__ import annotations

import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler

from tests.servers import reply_json, serve_loopback

FAULTS = ("drop", "error", "busy", "slow")


class FaultProxy:
    def __init__(self, upstream: str, share: float = 0.3, faults: tuple[str, ...] = FAULTS, seed: int = 0,
                 delay: float = 0.5, retry_after: float = 0.2):
        parts = urllib.parse.urlsplit(upstream)  # requests keep their own path (/v1/chat/...)
        self.upstream = f"{parts.scheme}://{parts.netloc}"
        self.share, self.faults, self.delay, self.retry_after = share, faults, delay, retry_after
        self.counts = {"forwarded": 0, **{f: 0 for f in FAULTS}}
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # http.server dispatches on this exact name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                fault = proxy._draw()
                if fault == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault in ("error", "busy"):
                    reply_json(self, 500 if fault == "error" else 429, b'{"error": "injected fault"}',
                               {"Retry-After": f"{proxy.retry_after:g}"} if fault == "busy" else None)
                    return
                if fault == "slow":
                    time.sleep(proxy.delay)
                request = urllib.request.Request(proxy.upstream + self.path, data=body, method="POST",
                                                 headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=300) as reply:
                        status, payload = reply.status, reply.read()
                except urllib.error.HTTPError as exc:
                    status, payload = exc.code, exc.read()
                except OSError:  # the upstream is gone: look like a dead server
                    self.close_connection = True
                    self.connection.close()
                    return
                reply_json(self, status, payload)

            def log_message(self, *args):
                pass

        self.server, self.url = serve_loopback(Handler)

    def _draw(self) -> str | None:
        with self._lock:
            fault = self._random.choice(self.faults) if self._random.random() < self.share else None
            self.counts[fault or "forwarded"] += 1
            return fault

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
