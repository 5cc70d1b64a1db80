"""Request limits: body size (413, before anything is parsed) and per-operator rate (429).

max_tokens (400) is checked where the request is parsed, against the operator's `limits.max_tokens`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """`burst` requests at once, refilled at `rate` per second."""

    rate: float
    burst: int
    tokens: float = field(init=False)
    stamp: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)
        self.stamp = time.monotonic()

    def take(self) -> float:
        """0.0 if a request may go ahead now, else the seconds until one may."""
        now = time.monotonic()
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """One token bucket per operator (each key belongs to exactly one operator)."""

    def __init__(self):
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def wait_needed(self, operator_id: str, requests_per_minute: float, burst: int) -> float:
        with self._lock:
            bucket = self._buckets.get(operator_id)
            if bucket is None:
                bucket = self._buckets[operator_id] = TokenBucket(requests_per_minute / 60.0, burst)
            return bucket.take()


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Pure ASGI middleware: refuse bodies over `max_bytes` with 413 before any handler runs.

    A declared Content-Length over the limit is refused without reading; a chunked body is counted
    as it arrives, so a client cannot get round the limit by not declaring the length.
    """

    def __init__(self, app, max_bytes: int, on_refused=None):
        self.app = app
        self.max_bytes = max_bytes
        self.on_refused = on_refused  # callback(scope) so the audit log sees refused requests too

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(scope, send)
        seen = 0
        started = False

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(scope, send)

    async def _refuse(self, scope, send):
        if self.on_refused is not None:
            self.on_refused(scope)
        body = json.dumps({"error": {
            "message": f"request body is larger than this server's limit of {self.max_bytes} bytes; "
                       f"send fewer or shorter messages",
            "type": "invalid_request_error", "code": "body_too_large", "param": None}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class InFlight:
    """Bounds on the work a server holds at once: `total` requests, `per_operator` of them for any
    one key. Generation is serialised on the engine, so without a bound a burst queues without end
    (100 concurrent requests once took a median of 404 s) and one key's burst delays every other
    key. A request over a bound is refused at once, with Retry-After: 429 for the key's own bound,
    503 for the server's."""

    def __init__(self, total: int, per_operator: int):
        self.total, self.per_operator = total, per_operator
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit(self, operator_id: str) -> Place:
        """Hold a place for one request, or raise the 429/503 ApiError."""
        from charter.serve.chat import ApiError

        with self._lock:
            if self._held.get(operator_id, 0) >= self.per_operator:
                error = ApiError(429, f"this key already has {self.per_operator} requests in progress; wait for "
                                      f"one to finish", "too_many_requests_in_progress", type_="rate_limit_error")
            elif sum(self._held.values()) >= self.total:
                error = ApiError(503, f"the server is busy ({self.total} requests in progress); retry shortly",
                                 "server_busy", type_="server_error")
            else:
                self._held[operator_id] = self._held.get(operator_id, 0) + 1
                error = None
        if error is not None:
            error.headers["retry-after"] = "2"
            raise error
        return Place(self, operator_id)

    def _give_back(self, operator_id: str) -> None:
        with self._lock:
            self._held[operator_id] -= 1

    def held(self) -> int:
        with self._lock:
            return sum(self._held.values())


class Place:
    """One admitted request's place. `release()` gives it back (once, however often it is called);
    a streamed answer is `handed_over` to its stream, which releases it when it ends."""

    def __init__(self, owner: InFlight, operator_id: str):
        self._owner, self._operator_id = owner, operator_id
        self._released = threading.Event()
        self.handed_over = False

    def release(self) -> None:
        if not self._released.is_set():
            self._released.set()
            self._owner._give_back(self._operator_id)
