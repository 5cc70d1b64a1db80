"""Typed clauses of a constitution. Every clause has a stable id: ids are the spine of provenance."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ID_PATTERN = re.compile(r"^\w[\w.\-]*\Z")  # \Z: "$" would also match before a trailing newline
MAX_CLAUSES = 10_000  # per kind (principles, traits, hard lines, defaults) in one constitution
MAX_OVERLAY_CONTEXT = 20_000  # characters of context one overlay adds to every prompt
MAX_OVERLAY_CLAUSES = 200
Layer = Literal["operator", "user"]
Use = Literal["sl", "rl", "eval"]


class _Strict(BaseModel):
    # Unknown keys are errors: a typo like `critque:` must not silently drop a clause's text.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _nonempty(value: str) -> str:
    # Invisible format characters (zero-width spaces, joiners) do not make a clause say anything.
    if not "".join(ch for ch in value if unicodedata.category(ch) != "Cf").strip():
        raise ValueError("is empty; write the text of this clause")
    return value.strip()


def _label(value: str) -> str:
    """A one-line name (it is shown in prompts and echoed in errors): no line breaks, 100 chars."""
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in value):
        raise ValueError("has a line break or control character; a name is one line")
    if len(value) > 100:
        raise ValueError(f"is {len(value)} characters long; a name is at most 100")
    return value


def id_key(clause_id: str) -> str:
    """What an id reads as: NFKC, casefolded, look-alike letters of other scripts folded to Latin.
    Two ids with one key are the same id (a look-alike must not shadow a hard line)."""
    from charter.lookalikes import fold

    return fold(fold(clause_id).casefold())


def _valid_id(value: str) -> str:
    if not ID_PATTERN.match(value):
        raise ValueError(
            f"id {value!r} is not valid; use letters, digits, '_', '-' or '.', starting with a letter or digit"
        )
    return value


class Principle(_Strict):
    """A principle: the comparison text used by RL-CAI, and critique/revision requests for SL-CAI."""

    id: str
    text: str = Field(description="Comparison text: 'Choose the response that ...'")
    critique: str | None = Field(None, description="SL-CAI critique request")
    revision: str | None = Field(None, description="SL-CAI revision request")
    tags: tuple[str, ...] = ()
    weight: float = Field(1.0, gt=0, allow_inf_nan=False, description="Relative sampling weight")
    use: tuple[Use, ...] = Field(("sl", "rl", "eval"), description="Stages this principle serves")

    _id = field_validator("id")(_valid_id)
    _text = field_validator("text")(_nonempty)

    @field_validator("critique", "revision")
    @classmethod
    def _optional_nonempty(cls, value: str | None) -> str | None:
        return None if value is None else _nonempty(value)

    @model_validator(mode="after")
    def _sl_needs_requests(self) -> "Principle":
        if "sl" in self.use:
            for name in ("critique", "revision"):
                if getattr(self, name) is None:
                    raise ValueError(
                        f"{name}: missing; a principle used for SL needs a {name} request "
                        f"(add `{name}:` or remove 'sl' from `use:`)"
                    )
        return self


class Trait(_Strict):
    """A character trait in the first person ('I am curious ...')."""

    id: str
    text: str
    questions: tuple[str, ...] = Field((), description="Example questions that draw out the trait")

    _id = field_validator("id")(_valid_id)
    _text = field_validator("text")(_nonempty)


class HardLine(_Strict):
    """Something never to do, whoever asks. No overlay may remove, disable or reword it."""

    id: str
    text: str
    examples: tuple[str, ...] = Field((), description="Requests that cross the line")
    lookalikes: tuple[str, ...] = Field((), description="Requests that look similar but do not cross it")

    _id = field_validator("id")(_valid_id)
    _text = field_validator("text")(_nonempty)


class Default(_Strict):
    """An adjustable behaviour. `choices` maps each allowed value to the instruction it renders."""

    id: str
    text: str
    value: str
    choices: dict[str, str]
    adjustable_by: tuple[Layer, ...] = ("operator",)

    _id = field_validator("id")(_valid_id)
    _text = field_validator("text")(_nonempty)

    @field_validator("value", mode="before")
    @classmethod
    def _scalar_to_str(cls, value: object) -> object:
        # YAML turns `on`/`yes` into booleans; values are names, so keep them as text.
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        return value

    @field_validator("choices", mode="before")
    @classmethod
    def _choice_keys_to_str(cls, value: object) -> object:
        if isinstance(value, dict):
            return {cls._scalar_to_str(k): v for k, v in value.items()}
        return value

    @field_validator("choices")
    @classmethod
    def _choices_nonempty(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("is empty; list each allowed value with the instruction it stands for")
        for key, text in value.items():
            if not text.strip():
                raise ValueError(f"choice {key!r} has empty text; write the instruction it stands for")
        return value

    @model_validator(mode="after")
    def _value_is_a_choice(self) -> "Default":
        if self.value not in self.choices:
            raise ValueError(f"value: {self.value!r} is not one of the choices {sorted(self.choices)}")
        return self

    def instruction(self, value: str | None = None) -> str:
        return self.choices[value if value is not None else self.value]


class Constitution(_Strict):
    """A whole constitution: prose, principles, traits, hard lines and adjustable defaults."""

    name: str
    version: str
    preamble: str = ""
    principles: tuple[Principle, ...] = ()
    traits: tuple[Trait, ...] = ()
    hard_lines: tuple[HardLine, ...] = ()
    defaults: tuple[Default, ...] = ()
    # Prose appended by overlays ("context from the operator"), in layer order.
    context: tuple[str, ...] = ()
    # Which layers have been applied, e.g. ("base", "operator:acme", "user").
    layers: tuple[str, ...] = ("base",)

    _name = field_validator("name")(_nonempty)
    _name_line = field_validator("name")(_label)

    @field_validator("version", mode="before")
    @classmethod
    def _version_to_str(cls, value: object) -> object:
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _bounded(self) -> "Constitution":
        for kind, clauses in self.clauses_by_kind().items():
            if len(clauses) > MAX_CLAUSES:
                raise ValueError(f"has {len(clauses)} {kind}; at most {MAX_CLAUSES} per kind are supported")
        return self

    @model_validator(mode="after")
    def _unique_ids(self) -> "Constitution":
        seen: dict[str, tuple[str, str]] = {}
        for kind, clauses in self.clauses_by_kind().items():
            for clause in clauses:
                key = id_key(clause.id)
                if key in seen:
                    other, other_kind = seen[key]
                    same = "duplicate id" if other == clause.id else f"id {clause.id!r} looks like the id"
                    raise ValueError(
                        f"{same} {other!r} (already used by a {other_kind}); "
                        "clause ids must be unique across the whole constitution"
                    )
                seen[key] = (clause.id, kind)
        return self

    def clauses_by_kind(self) -> dict[str, tuple]:
        return {
            "principle": self.principles,
            "trait": self.traits,
            "hard_line": self.hard_lines,
            "default": self.defaults,
        }

    def clause(self, clause_id: str):
        for clauses in self.clauses_by_kind().values():
            for clause in clauses:
                if clause.id == clause_id:
                    return clause
        raise KeyError(clause_id)

    def principles_for(self, use: str) -> tuple[Principle, ...]:
        return tuple(p for p in self.principles if use in p.use)

    def content_hash(self) -> str:
        """Stable hash of the effective content; recorded in every record's provenance."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


class Overlay(_Strict):
    """An operator or user layer on top of the base constitution.

    `remove`, `disable` and `hard_lines` are parsed so that an attempt to touch a hard line is
    refused with the clause id named, instead of failing as an anonymous unknown key.
    """

    name: str = ""
    defaults: dict[str, str] = Field(default_factory=dict, description="default id -> chosen value")
    principles: tuple[Principle, ...] = ()
    traits: tuple[Trait, ...] = ()
    hard_lines: tuple[HardLine, ...] = Field((), description="Operators may add new hard lines, never change one")
    context: str = ""
    # Operator only: the defaults a user may still switch (a subset of what the base allows users).
    user_adjustable: tuple[str, ...] | None = None
    remove: tuple[str, ...] = ()
    disable: tuple[str, ...] = ()

    _name = field_validator("name")(_label)

    @model_validator(mode="after")
    def _bounded(self) -> "Overlay":
        # An overlay is a deployment's adjustments; its text goes into every prompt.
        if len(self.context) > MAX_OVERLAY_CONTEXT:
            raise ValueError(f"context is {len(self.context)} characters; an overlay's context is at most "
                             f"{MAX_OVERLAY_CONTEXT}")
        added = len(self.principles) + len(self.traits) + len(self.hard_lines)
        if added > MAX_OVERLAY_CLAUSES:
            raise ValueError(f"adds {added} clauses; an overlay adds at most {MAX_OVERLAY_CLAUSES}")
        return self

    @field_validator("defaults", mode="before")
    @classmethod
    def _values_to_str(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: Default._scalar_to_str(v) for k, v in value.items()}
        return value
