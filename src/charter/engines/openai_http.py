"""Any OpenAI-compatible chat server (llama-cpp-python, llama.cpp server, vLLM, OpenAI, ...).

Engine string: openai:BASE_URL#MODEL, e.g. openai:http://127.0.0.1:8000/v1#smollm2.
API key: $CHARTER_API_KEY, else $OPENAI_API_KEY, else none (local servers); api_key_env=NAME
reads another variable. The key is never part of the engine string or fingerprint.

Options: concurrency=INT (requests in flight, default 8), timeout=SECONDS (per request, 120),
max_retries=INT (6), backoff=SECONDS (first retry delay, 0.5; doubles each time, with jitter,
capped at 30 s; a Retry-After header wins), prefill=none|continue (see choose).

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
from charter.errors import EngineError

OPTIONS = ("api_key_env", "concurrency", "timeout", "max_retries", "backoff", "prefill")
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
TOP_LOGPROBS = 20  # the most the OpenAI API allows


def sample_seed(seed: int, index: int) -> int:
    return (seed + index * 1_000_003) % (2**31)


class OpenAIEngine:
    def __init__(self, base_url: str, model: str, *, name: str = "openai", api_key_env: str | None = None,
                 concurrency: int = 8, timeout: float = 120.0, max_retries: int = 6,
                 backoff: float = 0.5, prefill: str = "none", **unknown):
        check_options(name, unknown, OPTIONS)
        if prefill not in ("none", "continue"):
            raise EngineError(f"engine '{name}': prefill must be 'none' or 'continue', got {prefill!r}")
        self.name, self.base_url, self.model = name, base_url.rstrip("/"), model
        env_names = [api_key_env] if api_key_env else ["CHARTER_API_KEY", "OPENAI_API_KEY"]
        self._api_key = next((os.environ[n] for n in env_names if os.environ.get(n)), None)
        self.concurrency, self.timeout = int(concurrency), float(timeout)
        self.max_retries, self.backoff, self.prefill = int(max_retries), float(backoff), prefill
        self.stats = EngineStats(extra={"retries": 0, "retry_reasons": []})

    @property
    def fingerprint(self) -> str:
        return f"openai:{self.base_url}#{self.model}"

    @property
    def supports_prefill(self) -> bool:
        """choose() with an assistant_prefix needs a server that continues the assistant turn."""
        return self.prefill == "continue"

    # -- HTTP ---------------------------------------------------------------------------------
    async def _post(self, client, limit: asyncio.Semaphore, body: dict) -> dict:
        import httpx

        url = f"{self.base_url}/chat/completions"
        for attempt in range(self.max_retries + 1):
            wait, reason = None, None
            async with limit:
                try:
                    response = await client.post(url, json=body)
                except httpx.TimeoutException:
                    reason = f"no answer within {self.timeout:g} s"
                except httpx.TransportError as exc:
                    reason = f"cannot connect ({type(exc).__name__}: {exc})"
                else:
                    if response.status_code == 200:
                        return response.json()
                    detail = response.text[:200].replace("\n", " ")
                    if response.status_code not in RETRY_STATUS:
                        raise EngineError(f"server {url} refused the request with HTTP "
                                          f"{response.status_code}: {detail}; check the model name "
                                          f"'{self.model}', the API key and the request")
                    reason = f"HTTP {response.status_code}: {detail}"
                    wait = _retry_after(response.headers.get("retry-after"))
            if attempt == self.max_retries:
                raise EngineError(f"server {url} failed {attempt + 1} time(s), last: {reason}; "
                                  f"check it is running and reachable, or raise max_retries")
            self.stats.extra["retries"] += 1
            self.stats.extra["retry_reasons"].append(reason)
            if wait is None:  # exponential backoff with jitter so many clients do not retry in step
                wait = min(30.0, self.backoff * 2**attempt) * (0.5 + random.random() / 2)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _post_all(self, bodies: list[dict]) -> list[dict]:
        import httpx

        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        limit = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(timeout=self.timeout, headers=headers) as client:
            return await asyncio.gather(*(self._post(client, limit, b) for b in bodies))

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
        out: list[list[Completion]] = [[] for _ in requests]
        for (r_index, sample), reply in zip(owners, self._run(bodies)):
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
        return out

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
        url = f"{self.base_url}/chat/completions"
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
        return [self._option_probs(r, reply) for r, reply in zip(requests, self._run(bodies))]

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
