"""Conversation scenarios: a simulated user's persona, goal, hidden state, opening message, scripted
next turns (branching on what the assistant said), rule checks per reply and end-state questions.

    charter/evals/data/conversations/<kind>.yaml    the built-in set, a list of scenarios per kind

A scenario file that does not fit is an error naming the file, the line and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from charter.errors import CharterError
from charter.shipped import shipped_path

KINDS = ("adaptation", "backbone", "wellbeing_pivot", "support", "over_caution")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc})") from None
    return value


class _Patterns(_Strict):
    """Fields holding regular expressions are checked when the scenario loads."""

    @field_validator("reply_matches", "reply_lacks", "pattern", check_fields=False)
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        return value if value is None else _regex(value)


class Condition(_Patterns):
    """When a branch applies, from the assistant's previous reply: one of the four keys."""

    reply_matches: str | None = None
    reply_lacks: str | None = None
    refused: bool | None = None

    @model_validator(mode="after")
    def _one(self):
        given = [k for k in ("reply_matches", "reply_lacks", "refused") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of reply_matches, reply_lacks, refused")
        return self


class Branch(_Strict):
    if_: Condition = Field(alias="if")
    say: str | None = None
    state: dict[str, int] = Field(default_factory=dict)  # added to the hidden state, clamped 0..10


class Turn(_Strict):
    say: str
    branches: tuple[Branch, ...] = ()


class Check(_Patterns):
    rule: Literal["reply_matches", "reply_lacks", "refuses", "answers"]
    pattern: str | None = None
    replies: tuple[int, ...] | None = None  # 1-based assistant replies; None: every reply
    what: str = ""

    @model_validator(mode="after")
    def _pattern_where_needed(self):
        if self.rule in ("reply_matches", "reply_lacks") and not self.pattern:
            raise ValueError(f"rule {self.rule} needs a pattern")
        return self


class Scenario(_Strict):
    id: str
    kind: Literal[KINDS]  # type: ignore[valid-type]
    clauses: tuple[str, ...] = Field(min_length=1)
    persona: str
    goal: str
    state: dict[str, int] = Field(default_factory=dict)
    opening: str
    turns: tuple[Turn, ...] = ()
    checks: tuple[Check, ...] = Field(min_length=1)
    end_questions: tuple[str, ...] = ()
    user_model_notes: str = ""

    @property
    def replies(self) -> int:
        return 1 + len(self.turns)

    @model_validator(mode="after")
    def _replies_exist(self):
        for check in self.checks:
            bad = [r for r in check.replies or () if not 1 <= r <= self.replies]
            if bad:
                raise ValueError(f"check '{check.what or check.rule}' names reply {bad[0]}, but the scenario has "
                                 f"{self.replies} assistant replies (1 + its {len(self.turns)} turns)")
        return self


def builtin_folder() -> Path:
    return shipped_path("evals", "data", "conversations")


def load_scenarios(source: str | Path | None = None) -> list[Scenario]:
    """Every scenario of a YAML file, or of every *.yaml in a folder (the built-in set by default)."""
    path = Path(source) if source is not None else builtin_folder()
    files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise CharterError(f"{path}: no conversation scenarios (a YAML file or a folder of them)")
    scenarios: list[Scenario] = []
    seen: dict[str, Path] = {}
    for file in files:
        for scenario, line in _load_file(file):
            if scenario.id in seen:
                raise CharterError(f"{file}:{line}: id: scenario id '{scenario.id}' is already used in "
                                   f"{seen[scenario.id]}; ids must be unique")
            seen[scenario.id] = file
            scenarios.append(scenario)
    return scenarios


def _load_file(file: Path) -> list[tuple[Scenario, int]]:
    """The file's scenarios with the line each starts on."""
    text = file.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise CharterError(f"{file}:{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, list) or not data:
        raise CharterError(f"{file}:1: a scenario file is a non-empty list of scenarios")
    out = []
    for index, (raw, item_node) in enumerate(zip(data, node.value)):
        try:
            out.append((Scenario.model_validate(raw), item_node.start_mark.line + 1))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"]) or "scenario"
            line = _line_of(item_node, error["loc"]) + 1
            raise CharterError(f"{file}:{line}: [{index}].{where}: {error['msg']}") from None
    return out


def _line_of(node, loc) -> int:
    """The line of the deepest YAML node on the error's path (0-based)."""
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            found = node.value[part]
        else:
            found = None
        if found is None:
            break
        node = found
    return node.start_mark.line
