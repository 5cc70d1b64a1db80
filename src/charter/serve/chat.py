"""The OpenAI chat-completions wire format: request schema, prompt assembly, response bodies.

Charter's own request field is `charter` (reach it from the openai client with `extra_body`):

    {"charter": {"user_overlay": {"defaults": {"address": "formal"}}}}

Responses carry a `charter` field too: the effective constitution hash, and for a blocked request
`{"blocked_by": CLAUSE_ID, "stage": "input"|"output"}` beside `finish_reason: "content_filter"`.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_CHOICES = 4


class ApiError(Exception):
    """An OpenAI-style error response: status, message, code, and the offending param if any."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None,
                 type_: str = "invalid_request_error", **extra: Any):
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.type = status, message, code, param, type_
        self.extra = extra
        self.headers: dict[str, str] = {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "code": self.code,
                          "param": self.param, **self.extra}}


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None


class CharterOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_overlay: dict[str, Any] | None = Field(None, description="Defaults the user switches, "
                                                "e.g. {'defaults': {'address': 'formal'}}")


class ChatRequest(BaseModel):
    """The subset of the OpenAI request charter honours; anything else is refused, not ignored,
    except fields that cannot change the answer (user, metadata, store)."""

    model_config = ConfigDict(extra="forbid")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=MAX_CHOICES)
    stream: bool = False
    stream_options: dict[str, bool] | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    charter: CharterOptions | None = None


MAX_JSON_DEPTH = 32  # far beyond any real request (messages -> content parts -> text is 4)


def json_depth(raw: bytes) -> int:
    """How deeply arrays and objects nest in a JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def parse_request(raw: bytes) -> ChatRequest:
    # Deep nesting would exhaust the parser's recursion (a 500 with a traceback): refuse it first;
    # the byte scan runs only when the body has enough brackets to be that deep.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and json_depth(raw) > MAX_JSON_DEPTH:
        raise ApiError(400, f"request body nests arrays/objects deeper than {MAX_JSON_DEPTH} levels; "
                       f"flatten it", "invalid_json")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"request body is not valid JSON ({exc}); send a JSON object",
                       "invalid_json") from None
    except RecursionError:
        raise ApiError(400, "request body nests too deeply; flatten it", "invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object with `model` and `messages`", "invalid_body")
    try:
        return ChatRequest.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        param = ".".join(str(p) for p in error["loc"])
        hint = ("is not supported by charter serve; remove it" if error["type"] == "extra_forbidden"
                else error["msg"])
        raise ApiError(400, f"{param}: {hint}", "invalid_request", param=param) from None


def plain_messages(request: ChatRequest) -> list[dict[str, str]]:
    """Messages as {"role", "content"} with text parts joined; `developer` is OpenAI's new name for
    a system message."""
    out = []
    for message in request.messages:
        content = message.content if isinstance(message.content, str) else \
            "\n".join(part.text for part in message.content)
        out.append({"role": "system" if message.role == "developer" else message.role, "content": content})
    return out


def with_constitution(system_prompt: str, messages: list[dict[str, str]]) -> tuple[dict[str, str], ...]:
    """The constitution's system prompt first, the operator's own system message (the request's first
    system message) after it, in one system message (many chat templates allow only one)."""
    rest = list(messages)
    first_system = next((i for i, m in enumerate(rest) if m["role"] == "system"), None)
    content = system_prompt
    if first_system is not None:
        content += "\n\nInstructions from the operator of this service:\n" + rest.pop(first_system)["content"]
    return ({"role": "system", "content": content}, *rest)


def refusal_text(clause_id: str, stage: str) -> str:
    if stage == "output":
        return ("I have to stop here: the rest of this answer would cross a line I hold in every "
                f"context ({clause_id}). I'm glad to help with anything else.")
    return ("I'm sorry, but I can't help with that: it crosses a line I hold in every context "
            f"({clause_id}). If I've misread what you need, tell me more and I'll gladly help.")


def new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def completion_body(request_id: str, model: str, choices: list[dict], usage: dict, charter: dict) -> dict:
    return {"id": request_id, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": choices, "usage": usage, "charter": charter}


def choice(index: int, text: str, finish_reason: str) -> dict:
    return {"index": index, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason,
            "logprobs": None}


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def chunk(request_id: str, model: str, delta: dict, finish_reason: str | None = None,
          **extra: Any) -> bytes:
    body = {"id": request_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
            **extra}
    return sse(body)


def sse(body: dict | str) -> bytes:
    data = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return f"data: {data}\n\n".encode()
