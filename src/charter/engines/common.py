"""Small helpers every engine shares: option checking, fingerprints, stop strings, option scoring."""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from charter.engines.base import ChoiceRequest, GenerationRequest
from charter.errors import EngineError


def check_options(engine: str, given: dict[str, Any], allowed: Iterable[str]) -> None:
    """Refuse options an engine does not know: a typo must not silently change nothing."""
    allowed = sorted(allowed)
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise EngineError(f"engine '{engine}' does not accept option(s) {', '.join(unknown)}; "
                          f"it accepts: {', '.join(allowed) or 'none'}")


def cpu_threads() -> int:
    """CPUs this process may use (affinity-aware, unlike os.cpu_count on shared machines)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def engine_threads(requested: int | None = None) -> int:
    """Threads an engine computes with: `requested`, else every CPU this process may use.

    Never the CPUs that happen to be idle: the thread count changes results (llama.cpp's sampled
    answers differ between 1 and 2 threads on the same requests, measured with 12 questions at
    temperature 0.7), so a run resumed while the machine was busy would not redo its batches
    exactly. On a machine shared with other work this costs speed (see `idle_threads`); pass
    `@n_threads=K` to trade reproducibility with earlier runs for it."""
    return int(requested) if requested else cpu_threads()


def idle_threads(window: float = 0.3) -> int:
    """The CPUs that other processes are not using right now, at least 1 (`charter doctor`, bench).

    llama.cpp's worker threads wait for each other at every operation; when the machine is
    oversubscribed a descheduled worker stalls all the others, and two threads on two busy cores
    ran 9x slower than one thread here. On an idle machine this is every CPU.

    Measured over `window` seconds from /proc/stat, minus this process's own CPU time, rather than
    from the 1-minute load average: in `charter run` the load average right after training still
    counted charter's own finished SFT/DPO, so both eval engines ran on 1 of 2 idle cores.
    """
    cpus = cpu_threads()
    busy = _busy_cpus_of_others(window)
    if busy is None:  # not Linux: the load average is all there is
        try:
            busy = os.getloadavg()[0]
        except OSError:
            return cpus
    return max(1, min(cpus, int(cpus - busy + 0.5)))


def _busy_cpus_of_others(window: float) -> float | None:
    """CPUs kept busy by other processes during the next `window` seconds (None off Linux)."""
    import time

    def machine_busy() -> tuple[float, float]:
        with open("/proc/stat") as stat:
            fields = [float(x) for x in stat.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
        return sum(fields[:8]) - idle, sum(fields[:8])

    def own_busy() -> float:
        with open("/proc/self/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return float(fields[11]) + float(fields[12])  # utime + stime, all threads

    try:
        busy0, total0 = machine_busy()
        own0 = own_busy()
        time.sleep(window)
        busy1, total1 = machine_busy()
        own1 = own_busy()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    # total ticks across all CPUs over the window -> busy fraction x the machine's CPU count
    share = max(0.0, (busy1 - busy0) - (own1 - own0)) / (total1 - total0)
    return share * (os.cpu_count() or 1)


def cache_root() -> Path:
    """Where charter keeps derived files: $CHARTER_CACHE, else ~/.cache/charter."""
    return Path(os.environ.get("CHARTER_CACHE") or Path.home() / ".cache" / "charter")


def file_fingerprint(path: str | Path) -> str:
    """sha256 (first 16 hex digits) of a file or of every file in a folder, sorted by name."""
    path = Path(path).resolve()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(_hash_file(str(file), stat.st_size, stat.st_mtime_ns).encode())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=64)
def _hash_file(path: str, size: int, mtime_ns: int) -> str:
    # size and mtime are part of the cache key so an edited file is hashed again.
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def cut_at_stop(text: str, stops: Iterable[str]) -> tuple[str, bool]:
    """Text up to the earliest stop string (excluded), and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


_MARK = re.compile("\ue000(\\d+)\ue001")


def prompt_segments(render, messages: list[dict], assistant_prefix: str = "") -> list[tuple[str, bool]]:
    """The prompt as (text, is message content) segments, so an engine can tokenize what people
    and operators wrote with special-token parsing off and only the chat template's own text with
    it on: `<|im_start|>system` typed in a message stays text and cannot forge a turn. `render`
    renders the chat template for a list of messages; each content is swapped for a private-use
    marker while it renders, then put back."""
    marked = [{**m, "content": f"\ue000{i}\ue001"} for i, m in enumerate(messages)]
    text = render(marked) + assistant_prefix
    segments, at = [], 0
    for match in _MARK.finditer(text):
        if match.start() > at:
            segments.append((text[at:match.start()], False))
        segments.append((messages[int(match.group(1))]["content"], True))
        at = match.end()
    if at < len(text):
        segments.append((text[at:], False))
    return segments


def chat_prompt_ids(tokenizer, messages, assistant_prefix: str = "") -> list[int]:
    """A transformers tokenizer's ids for the chat prompt of `messages` (generation prompt added,
    then `assistant_prefix`), with message contents never read as special tokens: a typed
    `<|im_start|>system` stays text (the llama.cpp engine's rule too). Used by the transformers and
    vLLM engines, whose tokenizers otherwise parse special tokens anywhere in the text."""
    def ids(text: str, split: bool = False) -> list[int]:
        options = {"split_special_tokens": True} if split else {}
        return tokenizer(text, add_special_tokens=False, **options)["input_ids"]

    def render(shown):
        return tokenizer.apply_chat_template([dict(m) for m in shown], tokenize=False, add_generation_prompt=True)

    if not any(ids(m["content"]) != ids(m["content"], split=True) for m in messages):
        return ids(render(messages) + assistant_prefix)  # no content holds a special token
    tokens: list[int] = []
    for text, is_content in prompt_segments(render, list(messages), assistant_prefix):
        tokens += ids(text, split=is_content)
    return tokens


class StreamedText:
    """What a token stream may send so far: the text decoded up to now, less anything that could
    still turn out to be the start of a stop string (the streamed text equals the generated one,
    which is cut before its stop string)."""

    def __init__(self, stops: Iterable[str]):
        self.stops = tuple(s for s in stops if s)
        self.hold = max(map(len, self.stops), default=1) - 1
        self.sent = 0

    def ready(self, text: str) -> str:
        cut, hit = cut_at_stop(text, self.stops)
        end = len(cut) if hit else len(text) - self.hold
        return self._take(text, end)

    def rest(self, text: str) -> str:
        """At the end of the stream: everything not yet sent, up to a stop string."""
        return self._take(text, len(cut_at_stop(text, self.stops)[0]))

    def _take(self, text: str, end: int) -> str:
        piece = text[self.sent:end] if end > self.sent else ""
        self.sent = max(self.sent, end)
        return piece


def normalise_logprobs(logprobs: dict[str, float]) -> dict[str, float]:
    """Softmax over options' summed log-probabilities: probabilities that sum to 1."""
    finite = [v for v in logprobs.values() if math.isfinite(v)]
    if not finite:
        raise EngineError("every option has zero probability; check the options and assistant_prefix")
    top = max(finite)
    weights = {k: (math.exp(v - top) if math.isfinite(v) else 0.0) for k, v in logprobs.items()}
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}


def check_choice(request: ChoiceRequest) -> None:
    if not request.options or any(not o for o in request.options):
        raise EngineError(f"choose() needs non-empty options, got {list(request.options)!r}")
    if len(set(request.options)) != len(request.options):
        raise EngineError(f"choose() options must be distinct, got {list(request.options)!r}")


def stop_if_cancelled(cancel, engine: str) -> None:
    """Raise GenerationCancelled once `cancel` (a threading.Event, or None) is set."""
    if cancel is not None and cancel.is_set():
        from charter.errors import GenerationCancelled

        raise GenerationCancelled(f"engine '{engine}': generation cancelled, its client went away")


def check_generation(request: GenerationRequest) -> None:
    if request.n < 1 or request.max_tokens < 1:
        raise EngineError(f"generate() needs n >= 1 and max_tokens >= 1, got n={request.n}, "
                          f"max_tokens={request.max_tokens}")
    if not request.messages:
        raise EngineError("generate() got a request with no messages; give at least one user message")


# For base models whose tokenizer has no chat template (e.g. a pretrained-only GGUF): a plain
# transcript every engine and the trainers share, so data, training and evals see one format.
TRANSCRIPT_TEMPLATE = ("{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}\n{% endfor %}"
                       "{% if add_generation_prompt %}Assistant:{% endif %}")
TRANSCRIPT_STOP = "\nUser:"  # where a base model would start writing the user's next turn


def render_chat_template(template: str, messages: list[dict], *, bos_token: str, eos_token: str,
                         add_generation_prompt: bool = True) -> str:
    """Render a Hugging Face style Jinja chat template, the way transformers does."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str):
        raise EngineError(f"the model's chat template refused the messages: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    return env.from_string(template).render(
        messages=messages, bos_token=bos_token, eos_token=eos_token,
        add_generation_prompt=add_generation_prompt, raise_exception=raise_exception)



def context_tokens(engine) -> int | None:
    """The model's context window in tokens, where the engine can say: its own `context_tokens()`
    (llama.cpp), else its model's config (transformers)."""
    own = getattr(engine, "context_tokens", None)
    if callable(own):
        return own()
    config = getattr(getattr(engine, "model", None), "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def system_prompt_budget(engine, share: float = 0.5):
    """(tokens the system prompt may take, a token counter), or None when the engine cannot say.

    Half the window by default: the rest is the conversation and the answer."""
    window = context_tokens(engine)
    tokenize = getattr(engine, "tokenize", None)
    if window is None or tokenize is None:
        return None
    return int(window * share), lambda text: len(tokenize(text))
