"""Any OpenAI-compatible chat server (llama-cpp-python, llama.cpp server, vLLM, OpenAI, ...).

Engine string: openai:BASE_URL#MODEL, e.g. openai:http://127.0.0.1:8000/v1#smollm2, or several
endpoints serving the same model: openai:http://a:8000/v1,http://b:8000/v1#smollm2.
API key: $CHARTER_API_KEY, else $OPENAI_API_KEY, else none (local servers); api_key_env=NAME
reads another variable. The key is never part of the engine string or fingerprint.

Options: concurrency=INT (requests in flight per endpoint, default 8), timeout=SECONDS (per
request, 120), max_retries=INT (6), backoff=SECONDS (first retry delay, 0.5; doubles each time,
with jitter, capped at 30 s; a Retry-After header wins), prefill=none|continue (see choose),
set_aside=SECONDS (how long an endpoint that keeps failing rests, default 30).

Several endpoints. Each request goes to the healthy endpoint with the fewest requests outstanding;
a failed try is retried, on another endpoint where there is one. An endpoint that fails
SET_ASIDE_AFTER times in a row, or answers 429/503 with Retry-After, is set aside for that long
and then tried again. A request that fails past its retries does not sink the others: generate()
and choose_many() return what succeeded inside UnitsFailed, and the stage records the rest as
failed units for the next run. The fingerprint of a multi-endpoint engine is `openai:*#MODEL`
(the model, not the addresses), so a run folder can be resumed with endpoints added or lost.

Each of a request's n samples is its own call with seed + i * 1_000_003 (many servers ignore `n`):
llama-cpp-python's server and vLLM honour `seed`, OpenAI treats it as best effort, others may
ignore it, so reproducibility is the server's.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from collections.abc import Generator

import numpy as np

from charter.engines.base import ChoiceRequest, Completion, EngineStats, GenerationRequest
from charter.engines.common import check_choice, check_generation, check_options, normalise_logprobs
from charter.errors import EngineError, UnitsFailed

OPTIONS = ("api_key_env", "concurrency", "timeout", "max_retries", "backoff", "prefill", "set_aside")
SET_ASIDE_AFTER = 3  # failures in a row that set an endpoint aside
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
TOP_LOGPROBS = 20  # the most the OpenAI API allows


def sample_seed(seed: int, index: int) -> int:
    return (seed + index * 1_000_003) % (2**31)


class Endpoint:
    """One base URL and what is known of its health."""

    def __init__(self, url: str):
        self.url = url
        self.outstanding = 0  # requests in flight now
        self.failures_in_a_row = 0
        self.resting_until = 0.0  # time.monotonic() before which it is set aside
        self.counts = {"requests": 0, "ok": 0, "failed": 0, "set_aside": 0}

    def healthy(self, now: float) -> bool:
        return now >= self.resting_until

    def succeeded(self) -> None:
        self.failures_in_a_row = 0
        self.counts["ok"] += 1

    def failed(self, rest: float | None, set_aside: float) -> None:
        """Count a failed try; rest for `rest` seconds (a Retry-After), or for `set_aside` once it
        has failed SET_ASIDE_AFTER times in a row."""
        self.failures_in_a_row += 1
        self.counts["failed"] += 1
        if rest is None and self.failures_in_a_row >= SET_ASIDE_AFTER:
            rest = set_aside
        if rest:
            self.resting_until = max(self.resting_until, time.monotonic() + rest)
            self.counts["set_aside"] += 1


class _Exhausted(Exception):
    """A request that failed past its retries (not the user's mistake: the servers failed)."""


class OpenAIEngine:
    def __init__(self, base_url: str, model: str, *, name: str = "openai", api_key_env: str | None = None,
                 concurrency: int = 8, timeout: float = 120.0, max_retries: int = 6,
                 backoff: float = 0.5, prefill: str = "none", set_aside: float = 30.0, **unknown):
        check_options(name, unknown, OPTIONS)
        if prefill not in ("none", "continue"):
            raise EngineError(f"engine '{name}': prefill must be 'none' or 'continue', got {prefill!r}")
        urls = [u.strip().rstrip("/") for u in base_url.split(",") if u.strip()]
        if not urls or any(not u.startswith(("http://", "https://")) for u in urls):
            raise EngineError(f"engine '{name}': every endpoint must be an http(s) URL, got '{base_url}'")
        self.endpoints = [Endpoint(u) for u in dict.fromkeys(urls)]
        self.name, self.base_url, self.model = name, self.endpoints[0].url, model
        self.set_aside = float(set_aside)
        env_names = [api_key_env] if api_key_env else ["CHARTER_API_KEY", "OPENAI_API_KEY"]
        self._api_key = next((os.environ[n] for n in env_names if os.environ.get(n)), None)
        self.concurrency, self.timeout = int(concurrency), float(timeout)
        self.max_retries, self.backoff, self.prefill = int(max_retries), float(backoff), prefill
        self.stats = EngineStats(extra={"retries": 0, "retry_reasons": [], "failed_requests": 0})

    @property
    def fingerprint(self) -> str:
        if len(self.endpoints) > 1:
            return f"openai:*#{self.model}"
        return f"openai:{self.base_url}#{self.model}"

    def endpoint_counts(self) -> dict[str, dict]:
        """Requests, successes, failures and set-asides per endpoint (benchmarks, tests)."""
        return {e.url: dict(e.counts) for e in self.endpoints}

    @property
    def supports_prefill(self) -> bool:
        """choose() with an assistant_prefix needs a server that continues the assistant turn."""
        return self.prefill == "continue"

    # -- HTTP ---------------------------------------------------------------------------------
    def _pick(self) -> Endpoint:
        """The healthy endpoint with the fewest requests outstanding; if all rest, the one that
        is back first (the caller waits for it)."""
        now = time.monotonic()
        healthy = [e for e in self.endpoints if e.healthy(now)]
        if healthy:
            return min(healthy, key=lambda e: (e.outstanding, e.counts["requests"]))
        return min(self.endpoints, key=lambda e: e.resting_until)

    def _still_best(self, endpoint: Endpoint) -> bool:
        """Whether a request that waited for a slot here should still go here: yes unless the
        endpoint now rests and another does not."""
        now = time.monotonic()
        return endpoint.healthy(now) or not any(e.healthy(now) for e in self.endpoints)

    async def _post(self, client, limits: dict[str, asyncio.Semaphore], body: dict) -> dict:
        import httpx

        attempt = -1
        while attempt < self.max_retries:
            attempt += 1
            endpoint = self._pick()
            wait_first = endpoint.resting_until - time.monotonic()
            if wait_first > 0:  # every endpoint rests: wait for the first one back
                await asyncio.sleep(min(wait_first, 60.0))
            url = f"{endpoint.url}/chat/completions"
            rest, reason = None, None
            endpoint.outstanding += 1
            try:
                async with limits[endpoint.url]:
                    if not self._still_best(endpoint):  # it fell ill while this request queued:
                        attempt -= 1  # choose again; this was no try
                        continue
                    endpoint.counts["requests"] += 1
                    try:
                        response = await client.post(url, json=body)
                    except httpx.TimeoutException:
                        reason = f"no answer within {self.timeout:g} s"
                    except httpx.TransportError as exc:
                        reason = f"cannot connect ({type(exc).__name__}: {exc})"
                    else:
                        if response.status_code == 200:
                            try:
                                reply = response.json()
                            except ValueError:
                                reason = f"HTTP 200 with a body that is not JSON: {response.text[:80]!r}"
                            else:
                                endpoint.succeeded()
                                return reply
                        else:
                            detail = response.text[:200].replace("\n", " ")
                            if response.status_code not in RETRY_STATUS:
                                raise EngineError(f"server {url} refused the request with HTTP "
                                                  f"{response.status_code}: {detail}; check the model name "
                                                  f"'{self.model}', the API key and the request")
                            reason = f"HTTP {response.status_code}: {detail}"
                            rest = _retry_after(response.headers.get("retry-after"))
            finally:
                endpoint.outstanding -= 1
            endpoint.failed(rest, self.set_aside)
            self.stats.extra["retry_reasons"].append(f"{endpoint.url}: {reason}")
            if attempt == self.max_retries:
                raise _Exhausted(f"{url} and the other tries failed {attempt + 1} time(s), last: {reason}; "
                                 f"check the server(s) are running and reachable, or raise max_retries")
            self.stats.extra["retries"] += 1
            if len(self.endpoints) > 1 and any(e.healthy(time.monotonic()) for e in self.endpoints):
                await asyncio.sleep(0.05 * random.random())  # another endpoint can take it now
            elif rest is None:  # exponential backoff with jitter so many clients do not retry in step
                await asyncio.sleep(min(30.0, self.backoff * 2**attempt) * (0.5 + random.random() / 2))
        raise AssertionError("unreachable")

    async def _post_all(self, bodies: list[dict]) -> list:
        import httpx

        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        limits = {e.url: asyncio.Semaphore(self.concurrency) for e in self.endpoints}
        async with httpx.AsyncClient(timeout=self.timeout, headers=headers) as client:
            results = await asyncio.gather(*(self._post(client, limits, b) for b in bodies),
                                           return_exceptions=True)
        for result in results:  # the user's mistake (HTTP 400, a bad model name) stops the call
            if isinstance(result, BaseException) and not isinstance(result, _Exhausted):
                raise result
        return results

    def _run(self, bodies: list[dict]) -> list[dict]:
        """Run the async calls from sync code, also when the caller already has an event loop."""
        started = time.perf_counter()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            results = asyncio.run(self._post_all(bodies))
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(1) as pool:
                results = pool.submit(asyncio.run, self._post_all(bodies)).result()
        self.stats.calls += 1
        self.stats.seconds += time.perf_counter() - started
        return results

    # -- Engine protocol ----------------------------------------------------------------------
    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        bodies, owners = [], []
        for r_index, request in enumerate(requests):
            check_generation(request)
            for sample in range(request.n):
                body = {"model": self.model, "messages": [dict(m) for m in request.messages],
                        "max_tokens": request.max_tokens, "temperature": request.temperature,
                        "top_p": request.top_p, "seed": sample_seed(request.seed, sample), "n": 1}
                if request.stop:
                    body["stop"] = list(request.stop)
                bodies.append(body)
                owners.append((r_index, sample))
        out: list[list[Completion] | None] = [[] for _ in requests]
        failed: dict[int, str] = {}
        for (r_index, sample), reply in zip(owners, self._run(bodies)):
            if isinstance(reply, _Exhausted):
                failed.setdefault(r_index, str(reply))
                continue
            choice = _first_choice(reply, self.base_url)
            usage = reply.get("usage") or {}
            completion = Completion(
                text=(choice.get("message") or {}).get("content") or "",
                finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0), index=sample)
            out[r_index].append(completion)
            self.stats.prompt_tokens += completion.prompt_tokens
            self.stats.completion_tokens += completion.completion_tokens
        return self._partial(out, failed)

    def _partial(self, out: list, failed: dict[int, str]) -> list:
        """`out` when every request succeeded; else UnitsFailed carrying the rest (None per failed)."""
        if not failed:
            return out
        self.stats.extra["failed_requests"] += len(failed)
        results = [None if i in failed else o for i, o in enumerate(out)]
        raise UnitsFailed(f"engine '{self.name}': {len(failed)} of {len(out)} request(s) failed past "
                          f"their retries, e.g. {next(iter(failed.values()))}", failed=sorted(failed),
                          results=results, attempts=self.max_retries + 1)

    def stream(self, request: GenerationRequest) -> Generator[str, None, Completion]:
        """The server's own token stream (`stream: true`, server-sent events), text as it arrives;
        returns the whole Completion (usage when the server reports it, else pieces counted).
        Connection errors and refusals before the first piece raise EngineError like generate()."""
        import json

        import httpx

        check_generation(request)
        if request.n != 1:
            raise EngineError(f"engine '{self.name}': stream() takes one sample (n=1), got n={request.n}")
        body = {"model": self.model, "messages": [dict(m) for m in request.messages],
                "max_tokens": request.max_tokens, "temperature": request.temperature, "top_p": request.top_p,
                "seed": sample_seed(request.seed, 0), "n": 1, "stream": True,
                "stream_options": {"include_usage": True}}
        if request.stop:
            body["stop"] = list(request.stop)
        url = f"{self._pick().url}/chat/completions"  # one endpoint for the whole stream
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        started, parts, usage, reason = time.perf_counter(), [], {}, "stop"
        try:
            with httpx.Client(timeout=self.timeout, headers=headers) as client, \
                    client.stream("POST", url, json=body) as response:
                if response.status_code != 200:
                    detail = response.read().decode("utf-8", "replace")[:200].replace("\n", " ")
                    raise EngineError(f"server {url} refused the stream with HTTP {response.status_code}: {detail}")
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    event = json.loads(payload)
                    usage = event.get("usage") or usage
                    for choice in event.get("choices") or []:
                        if choice.get("finish_reason") == "length":
                            reason = "length"
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            parts.append(piece)
                            yield piece
        except httpx.HTTPError as exc:
            raise EngineError(f"server {url} failed while streaming ({type(exc).__name__}: {exc}); check it "
                              f"is running and reachable") from exc
        completion = Completion("".join(parts), reason, int(usage.get("prompt_tokens") or 0),
                                int(usage.get("completion_tokens") or len(parts)))
        self.stats.prompt_tokens += completion.prompt_tokens
        self.stats.completion_tokens += completion.completion_tokens
        self.stats.calls += 1
        self.stats.seconds += time.perf_counter() - started
        return completion

    def choose(self, request: ChoiceRequest) -> dict[str, float]:
        return self.choose_many([request])[0]

    def choose_many(self, requests: list[ChoiceRequest]) -> list[dict[str, float]]:
        """Probabilities of each option as the next token, from the server's top log-probabilities.

        The server tokenizes, so an option is scored as the next tokens whose text is the option
        once spaces and brackets around it are dropped (" A", "A", "(A" all count for "A"; their
        probabilities add up): exact for labels that are single tokens (A/B, Yes/No, most short
        words). An option absent from the top 20 gets probability 0, and if all are absent this
        raises EngineError. An assistant_prefix needs a server that continues a final assistant
        message (vLLM: pass prefill=continue); judges ask for a bare letter instead elsewhere."""
        bodies = [self._choice_body(r) for r in requests]
        out, failed = [], {}
        for i, (r, reply) in enumerate(zip(requests, self._run(bodies))):
            if isinstance(reply, _Exhausted):
                failed[i] = str(reply)
                out.append(None)
            else:
                out.append(self._option_probs(r, reply))
        return self._partial(out, failed)

    def _choice_body(self, request: ChoiceRequest) -> dict:
        check_choice(request)
        messages = [dict(m) for m in request.messages]
        body = {"model": self.model, "max_tokens": 1, "temperature": 1.0, "seed": 0,
                "logprobs": True, "top_logprobs": TOP_LOGPROBS}
        if request.assistant_prefix:
            if self.prefill != "continue":
                raise EngineError(f"engine '{self.name}': choose() with assistant_prefix needs a server "
                                  f"that continues an assistant message; for vLLM pass prefill=continue, "
                                  f"else drop the prefix or use a llamacpp/hf engine")
            messages.append({"role": "assistant", "content": request.assistant_prefix})
            body.update(continue_final_message=True, add_generation_prompt=False)
        body["messages"] = messages
        return body

    def _option_probs(self, request: ChoiceRequest, reply: dict) -> dict[str, float]:
        content = (_first_choice(reply, self.base_url).get("logprobs") or {}).get("content") or []
        if not content or not content[0].get("top_logprobs"):
            raise EngineError(f"server {self.base_url} returned no log-probabilities for model "
                              f"'{self.model}'; choose() needs a server that supports logprobs/"
                              f"top_logprobs (llama.cpp, vLLM, OpenAI); without them, judge by "
                              f"written verdicts: --judge-mode generate")
        top = {t["token"]: float(t["logprob"]) for t in content[0]["top_logprobs"]}
        scores = {option: -math.inf for option in request.options}
        for token, logprob in top.items():
            # The server's tokenizer is unknown here, so an option is matched to next tokens by
            # their text; one missing from the top list is less likely than all listed: 0.
            option = _option_of(token, request.options)
            if option is not None:
                scores[option] = float(np.logaddexp(scores[option], logprob))
        if all(math.isinf(v) for v in scores.values()):
            raise EngineError(f"none of the options {list(request.options)} is among the server's top "
                              f"{TOP_LOGPROBS} next tokens {list(top)[:5]}...; check the options match "
                              f"how the answer starts, or use an assistant_prefix")
        return normalise_logprobs(scores)

    def close(self) -> None:
        pass


def _option_of(token: str, options: tuple[str, ...]) -> str | None:
    """The option a next token stands for: its exact text, or its text without spaces and brackets."""
    if token in options:
        return token
    bare = token.strip().strip("([*\"'").strip()
    return bare if bare and bare in options else None


def _first_choice(reply: dict, url: str) -> dict:
    choices = reply.get("choices") or []
    if not choices:
        raise EngineError(f"server {url} answered without choices: {str(reply)[:200]}")
    return choices[0]


def _retry_after(value: str | None) -> float | None:
    try:
        return min(60.0, max(0.0, float(value))) if value else None
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None
