"""Few-shot examples (examples/fewshot.yaml) turned into chat turns that guide small models.

Examples come first in every request so that all requests of a batch share one long prefix,
which the engine computes once and copies (prefix sharing) instead of once per request.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from charter.constitution.model import Constitution
from charter.errors import CharterError
from charter.shipped import example_path

Message = dict[str, str]

SL_SYSTEM = (
    "You help improve an AI assistant's answers. When asked for a critique, point out the specific "
    "problems with the assistant's last answer in a few sentences. When asked for a revision, write "
    "only the improved answer, speaking directly to the person."
)


@dataclass(frozen=True)
class FewShot:
    sl_chains: tuple[dict, ...] = ()
    contrastive: tuple[dict, ...] = ()
    feedback: tuple[dict, ...] = ()
    digest: str = ""  # content hash: part of every key that used these examples
    source: str = ""
    extra: dict = field(default_factory=dict)


def default_fewshot_path() -> Path:
    return example_path("fewshot.yaml")


def load_fewshot(path: str | Path | None = None) -> FewShot:
    path = Path(path) if path else default_fewshot_path()
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CharterError(
            f"few-shot file {path} is unreadable ({exc}); fix it or pass another --fewshot"
        ) from None
    if not isinstance(data, dict):
        raise CharterError(
            f"{path}: expected a mapping with sl_chains, contrastive and feedback lists"
        )
    needed = {
        "sl_chains": ("prompt", "answer", "principle_id", "critique", "revision"),
        "contrastive": ("prompt", "good", "bad"),
        "feedback": ("prompt", "response_a", "response_b", "principle_id", "answer"),
    }
    for section, fields in needed.items():
        for index, example in enumerate(data.get(section) or ()):
            missing = [f for f in fields if not str((example or {}).get(f, "")).strip()]
            if missing:
                raise CharterError(
                    f"{path}: {section}[{index}]: field '{missing[0]}' is missing or empty"
                )
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return FewShot(
        tuple(data.get("sl_chains") or ()),
        tuple(data.get("contrastive") or ()),
        tuple(data.get("feedback") or ()),
        digest,
        str(path),
    )


def critique_request(text: str) -> str:
    return f"Critique request: {text}"


def revision_request(text: str) -> str:
    return f"Revision request: {text}"


def sl_prefix(fewshot: FewShot, constitution: Constitution, count: int) -> list[Message]:
    """System turn plus up to `count` worked critique/revision chains whose principle exists here."""
    messages: list[Message] = [{"role": "system", "content": SL_SYSTEM}]
    used = 0
    for example in fewshot.sl_chains:
        if used >= count:
            break
        try:
            principle = constitution.clause(example["principle_id"])
        except KeyError:
            continue  # a custom constitution without this principle: skip its example
        if not getattr(principle, "critique", None) or not getattr(principle, "revision", None):
            continue
        messages += [
            {"role": "user", "content": example["prompt"].strip()},
            {"role": "assistant", "content": example["answer"].strip()},
            {"role": "user", "content": critique_request(principle.critique)},
            {"role": "assistant", "content": example["critique"].strip()},
            {"role": "user", "content": revision_request(principle.revision)},
            {"role": "assistant", "content": example["revision"].strip()},
        ]
        used += 1
    return messages


def contrastive_turns(fewshot: FewShot, side: str, count: int) -> list[Message]:
    """Prior turns showing the good (or bad) answer style, for contrastive sampling."""
    messages: list[Message] = []
    for example in fewshot.contrastive[:count]:
        messages += [
            {"role": "user", "content": example["prompt"].strip()},
            {"role": "assistant", "content": example[side].strip()},
        ]
    return messages
