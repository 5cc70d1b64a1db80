"""Typed clauses of a constitution. Every clause has a stable id: ids are the spine of provenance."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

ID_PATTERN = re.compile(r"^\w[\w.\-]*\Z")  # \Z: "$" would also match before a trailing newline
MAX_CLAUSES = 10_000  # per kind (principles, traits, hard lines, defaults) in one constitution
MAX_OVERLAY_CONTEXT = 20_000  # characters of context one overlay adds to every prompt
MAX_OVERLAY_CLAUSES = 200
Use = Literal["sl", "rl", "eval"]
Role = Literal["author", "operator", "user"]
# The principals a constitution has when it declares none: whoever wrote it, the operator who
# deploys it, the user in front of it, in that order of trust.
DEFAULT_PRINCIPALS = ("developer", "operator", "user")


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


def _optional_text(value: str | None) -> str | None:
    return None if value is None else _nonempty(value)


def _valid_id(value: str) -> str:
    if not ID_PATTERN.match(value):
        raise ValueError(
            f"id {value!r} is not valid; use letters, digits, '_', '-' or '.', starting with a letter or digit"
        )
    return value


class Message(_Strict):
    role: Literal["user", "assistant"]
    content: str

    _content = field_validator("content")(_nonempty)


class Example(_Strict):
    """A conversation that shows a clause at work: a request (one `prompt`, or earlier turns as
    `messages` ending with the user's), a `good` response and optionally a `bad` one.

    A plain string is a request alone; for a hard line it is a request that crosses the line,
    as in constitutions written before examples could be conversations (and it is written back
    as that string, so their hash does not change)."""

    prompt: str | None = None
    messages: tuple[Message, ...] = ()
    good: str | None = None
    bad: str | None = None
    rationale: str | None = Field(None, description="Why the good response is good (or the bad one bad)")

    _texts = field_validator("good", "bad", "rationale")(_optional_text)

    @field_validator("prompt")
    @classmethod
    def _prompt_as_written(cls, value: str | None) -> str | None:
        # Checked but kept as written (a block scalar's newline included): hard lines' examples were
        # plain strings before, and their constitutions' hashes must not change.
        if value is not None:
            _nonempty(value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _string_is_a_prompt(cls, value: object) -> object:
        return {"prompt": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_conversation(self) -> "Example":
        if (self.prompt is None) == (not self.messages):
            raise ValueError("prompt: give either `prompt:` (one request) or `messages:` (the turns), not both "
                             "or neither")
        if self.messages:
            roles = [m.role for m in self.messages]
            if roles[-1] != "user":
                raise ValueError("messages: the last turn must be the user's (the response follows it as `good:`)")
            if any(a == b for a, b in zip(roles, roles[1:])):
                raise ValueError("messages: turns must alternate between user and assistant")
        return self

    @model_serializer(mode="wrap")
    def _as_written(self, handler):
        data = handler(self)
        if self.prompt is not None and not self.messages and not (self.good or self.bad or self.rationale):
            return self.prompt
        return {k: v for k, v in data.items() if v not in (None, [], ())}

    @property
    def request(self) -> str:
        """The message the response answers: the prompt, or the last user turn."""
        return self.prompt.strip() if self.prompt is not None else self.messages[-1].content

    def conversation(self) -> list[dict[str, str]]:
        """Chat messages up to and including the request (no system message)."""
        if self.prompt is not None:
            return [{"role": "user", "content": self.prompt.strip()}]
        return [{"role": m.role, "content": m.content} for m in self.messages]


class Principal(_Strict):
    """Someone whose instructions the assistant weighs: the author, an operator, a user.

    Listed in order of trust; `role` says which layer of charter's stack each one is (by default,
    by position: the first wrote the constitution, the last is the user, a middle one deploys)."""

    id: str
    role: Role | None = None
    description: str = ""
    rationale: str | None = None

    _id = field_validator("id")(_valid_id)
    _rationale = field_validator("rationale")(_optional_text)

    @model_validator(mode="before")
    @classmethod
    def _string_is_an_id(cls, value: object) -> object:
        return {"id": value} if isinstance(value, str) else value


class PriorityTier(_Strict):
    """One level of an ordered list of priorities, e.g. "broadly safe", holding principle ids."""

    id: str
    text: str = Field(description="What this tier stands for, e.g. 'Broadly safe: ...'")
    principles: tuple[str, ...] = ()
    rationale: str | None = None

    _id = field_validator("id")(_valid_id)
    _text = field_validator("text")(_nonempty)
    _rationale = field_validator("rationale")(_optional_text)


class Priorities(_Strict):
    """Principles in ordered tiers. `holistic`: higher tiers generally dominate but all are weighed
    together; `strict`: a higher tier always decides before a lower one is consulted."""

    mode: Literal["holistic", "strict"] = "holistic"
    tiers: tuple[PriorityTier, ...] = ()
    rationale: str | None = None

    _rationale = field_validator("rationale")(_optional_text)


class Section(_Strict):
    """A titled part of the constitution's prose (from a Markdown document or written in YAML)."""

    id: str
    title: str
    text: str
    level: int = Field(1, ge=1, le=6)

    _id = field_validator("id")(_valid_id)
    _title = field_validator("title")(_nonempty)


class Principle(_Strict):
    """A principle: the comparison text used by RL-CAI, and critique/revision requests for SL-CAI."""

    id: str
    text: str = Field(description="Comparison text: 'Choose the response that ...'")
    critique: str | None = Field(None, description="SL-CAI critique request")
    revision: str | None = Field(None, description="SL-CAI revision request")
    tags: tuple[str, ...] = ()
    weight: float = Field(1.0, gt=0, allow_inf_nan=False, description="Relative sampling weight")
    use: tuple[Use, ...] = Field(("sl", "rl", "eval"), description="Stages this principle serves")
    rationale: str | None = Field(None, description="Why the constitution asks this, in the author's words")
    examples: tuple[Example, ...] = ()

    _id = field_validator("id")(_valid_id)
    _text = field_validator("text")(_nonempty)
    _optional = field_validator("critique", "revision", "rationale")(_optional_text)

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
    rationale: str | None = Field(None, description="Why the constitution asks this, in the author's words")
    examples: tuple[Example, ...] = ()

    _id = field_validator("id")(_valid_id)
    _text = field_validator("text")(_nonempty)
    _rationale = field_validator("rationale")(_optional_text)


class HardLine(_Strict):
    """Something never to do, whoever asks. No overlay may remove, disable or reword it."""

    id: str
    text: str
    examples: tuple[Example, ...] = Field((), description="Requests that cross the line (or conversations)")
    lookalikes: tuple[str, ...] = Field((), description="Requests that look similar but do not cross it")
    rationale: str | None = Field(None, description="Why the line is absolute, in the author's words")

    _id = field_validator("id")(_valid_id)
    _text = field_validator("text")(_nonempty)
    _rationale = field_validator("rationale")(_optional_text)

    @property
    def requests(self) -> tuple[str, ...]:
        """The requests that cross the line (each example's request)."""
        return tuple(e.request for e in self.examples)


class Protection(_Strict):
    """Something the assistant does for the user that no lower principal can switch off, e.g.
    "never deny being an AI to someone who sincerely asks". `waivable_by` names who may set it
    aside for themselves (a user inside their own role-play); an operator never can unless named."""

    id: str
    text: str
    waivable_by: tuple[str, ...] = ()
    rationale: str | None = None
    examples: tuple[Example, ...] = ()

    _id = field_validator("id")(_valid_id)
    _text = field_validator("text")(_nonempty)
    _rationale = field_validator("rationale")(_optional_text)


class Default(_Strict):
    """An adjustable behaviour. `choices` maps each allowed value to the instruction it renders.

    `adjustable_by` lists the principals who may switch it; an entry `{user: [off]}` lets that
    principal choose only those values (a permission in one direction: may turn it off, not on).
    `override: implicit` lets the assistant depart from it when the context plainly calls for it
    (a guideline); `explicit` (the default) changes only when a principal says so."""

    id: str
    text: str
    value: str
    choices: dict[str, str]
    adjustable_by: tuple[str, ...] = ("operator",)
    allowed_values: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="principal -> the only values it may choose")
    override: Literal["explicit", "implicit"] = "explicit"
    rationale: str | None = None
    examples: tuple[Example, ...] = ()
    # Set by charter as overlays apply: principal -> the overlay that took its permission away.
    locked_by: dict[str, str] = Field(default_factory=dict)

    _id = field_validator("id")(_valid_id)
    _text = field_validator("text")(_nonempty)
    _rationale = field_validator("rationale")(_optional_text)

    @model_validator(mode="before")
    @classmethod
    def _split_permissions(cls, data: object) -> object:
        # `adjustable_by: [operator, {user: [off]}]` -> ids plus the values each may choose.
        if not isinstance(data, dict) or not isinstance(data.get("adjustable_by"), (list, tuple)):
            return data
        ids: list[object] = []
        limits = dict(data.get("allowed_values") or {})
        for item in data["adjustable_by"]:
            if isinstance(item, dict) and len(item) == 1:
                (who, values), = item.items()
                ids.append(who)
                limits[who] = values
            else:
                ids.append(item)
        return {**data, "adjustable_by": ids, "allowed_values": limits}

    @field_validator("allowed_values", mode="before")
    @classmethod
    def _limit_values_to_str(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: [cls._scalar_to_str(v) for v in (vs if isinstance(vs, (list, tuple)) else [vs])]
                    for k, vs in value.items()}
        return value

    @field_validator("allowed_values")
    @classmethod
    def _limits_name_values(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for who, values in value.items():
            if not values:
                raise ValueError(f"adjustable_by: {who} is given an empty list of values; name the values it may "
                                 f"choose, or list {who} alone for any value")
        return value

    @field_validator("adjustable_by")
    @classmethod
    def _someone_adjusts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("is empty; a default no one may adjust is a fixed rule: write it as a principle or "
                             "a protection, or name who may adjust it (e.g. [operator])")
        if len(set(value)) != len(value):
            raise ValueError("names a principal twice; list each once")
        return value

    def may_choose(self, principal: str, value: str) -> bool:
        return principal in self.adjustable_by and value in self.allowed_values.get(principal, (value,))

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
        for who, values in self.allowed_values.items():
            if who not in self.adjustable_by:
                raise ValueError(f"allowed_values: limits {who!r}, who is not in adjustable_by")
            for value in values:
                if value not in self.choices:
                    raise ValueError(f"adjustable_by: {who} may choose {value!r}, which is not one of the "
                                     f"choices {sorted(self.choices)}")
        return self

    def instruction(self, value: str | None = None) -> str:
        return self.choices[value if value is not None else self.value]


class Constitution(_Strict):
    """A whole constitution: prose, principles, traits, hard lines and adjustable defaults."""

    name: str
    version: str
    preamble: str = ""
    sections: tuple[Section, ...] = ()
    principals: tuple[Principal, ...] = tuple(Principal(id=p) for p in DEFAULT_PRINCIPALS)
    priorities: Priorities | None = None
    principles: tuple[Principle, ...] = ()
    traits: tuple[Trait, ...] = ()
    hard_lines: tuple[HardLine, ...] = ()
    protections: tuple[Protection, ...] = ()
    defaults: tuple[Default, ...] = ()
    # Prose appended by overlays ("context from the operator"), in layer order.
    context: tuple[str, ...] = ()
    # Which layers have been applied, e.g. ("base", "operator:acme", "user").
    layers: tuple[str, ...] = ("base",)
    # Protections a principal allowed to waive has set aside: "protection id:layer label".
    waived: tuple[str, ...] = ()

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

    @model_validator(mode="before")
    @classmethod
    def _defaults_adjustable_by_the_operator(cls, data: object) -> object:
        # A default that names no one is adjustable by the operator: under renamed principals, the
        # principal whose role is operator, whatever its id.
        if not isinstance(data, dict) or not isinstance(data.get("defaults"), list):
            return data
        operator = _operator_id(data.get("principals"))
        if operator is None or operator == "operator":
            return data
        defaults = [{**d, "adjustable_by": [operator]} if isinstance(d, dict) and "adjustable_by" not in d else d
                    for d in data["defaults"]]
        return {**data, "defaults": defaults}

    @model_validator(mode="after")
    def _principals_known(self) -> "Constitution":
        ids = [p.id for p in self.principals]
        if not 1 <= len(ids) <= 3:
            raise ValueError("principals: list one to three principals in order of trust: the author, "
                             "then (optionally) the operator who deploys, then the user")
        if len(set(ids)) != len(ids):
            raise ValueError("principals: each principal is listed once")
        roles = [self.role_of(p.id) for p in self.principals]
        order = ["author", "operator", "user"]
        if len(set(roles)) != len(roles) or roles != sorted(roles, key=order.index) or roles[0] != "author":
            raise ValueError(f"principals: roles must be distinct and in order of trust (author, then operator, "
                             f"then user); read {roles}")
        below_author = set(ids[1:])
        for d in self.defaults:
            for who in d.adjustable_by:
                if who not in below_author:
                    known = ", ".join(ids[1:]) or "none"
                    raise ValueError(f"defaults: {d.id}.adjustable_by names {who!r}, which is not a principal "
                                     f"who may adjust defaults (declared below the author: {known})")
        for protection in self.protections:
            for who in protection.waivable_by:
                if who not in below_author:
                    raise ValueError(f"protections: {protection.id}.waivable_by names {who!r}, which is not a "
                                     f"declared principal below the author")
        return self

    @model_validator(mode="after")
    def _priorities_known(self) -> "Constitution":
        if self.priorities is None:
            return self
        principle_ids = {p.id for p in self.principles}
        placed: dict[str, str] = {}
        for tier in self.priorities.tiers:
            for principle_id in tier.principles:
                if principle_id not in principle_ids:
                    raise ValueError(f"priorities: tier {tier.id!r} names {principle_id!r}, which is not a "
                                     f"principle of this constitution")
                if principle_id in placed:
                    raise ValueError(f"priorities: {principle_id!r} is in tiers {placed[principle_id]!r} and "
                                     f"{tier.id!r}; a principle has one priority")
                placed[principle_id] = tier.id
        return self

    @model_validator(mode="after")
    def _unique_sections(self) -> "Constitution":
        seen: set[str] = set()
        for section in self.sections:
            if section.id in seen:
                raise ValueError(f"sections: id {section.id!r} is used by two sections; give each its own")
            seen.add(section.id)
        return self

    def role_of(self, principal_id: str) -> Role:
        """'author', 'operator' or 'user': declared, or by position in `principals`."""
        ids = [p.id for p in self.principals]
        index = ids.index(principal_id)
        declared = self.principals[index].role
        if declared is not None:
            return declared
        if index == 0:
            return "author"
        if index == len(ids) - 1:
            return "user"
        return "operator"

    def principal_for(self, role: Role) -> Principal | None:
        """The principal playing `role`, or None when this constitution has none (no operators)."""
        for principal in self.principals:
            if self.role_of(principal.id) == role:
                return principal
        return None

    def tier_of(self, principle_id: str) -> int | None:
        """0 for the highest priority tier; None when the principle is in no tier."""
        if self.priorities is not None:
            for index, tier in enumerate(self.priorities.tiers):
                if principle_id in tier.principles:
                    return index
        return None

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
            "protection": self.protections,
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
        """Stable hash of the effective content; recorded in every record's provenance.

        Fields added after the first format are left out while unused, so a constitution that
        uses none of them keeps the hash it had (and its runs still resume)."""
        canonical = json.dumps(_first_format(self.model_dump(mode="json")), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _operator_id(principals: object) -> str | None:
    """The operator's id in a constitution's raw `principals` (declared role, else the middle of three)."""
    if not isinstance(principals, list):
        return "operator"
    entries = [{"id": p} if isinstance(p, str) else p for p in principals]
    if not all(isinstance(p, dict) for p in entries):
        return None
    for entry in entries:
        if entry.get("role") == "operator":
            return entry.get("id")
    if len(entries) == 3 and entries[1].get("role") is None:
        return entries[1].get("id")
    return None


_DEFAULT_PRINCIPALS_DUMP = [{"id": p, "role": None, "description": "", "rationale": None} for p in DEFAULT_PRINCIPALS]


def _first_format(data: dict) -> dict:
    """The dump without the later fields that hold their unset values (see content_hash)."""
    def drop(mapping: dict, key: str, unset: object) -> None:
        if key in mapping and mapping[key] == unset:
            del mapping[key]

    for key, unset in (("sections", []), ("priorities", None), ("protections", []), ("waived", []),
                       ("principals", _DEFAULT_PRINCIPALS_DUMP)):
        drop(data, key, unset)
    for kind in ("principles", "traits", "hard_lines", "defaults"):
        for clause in data.get(kind, []):
            drop(clause, "rationale", None)
            if kind != "hard_lines":  # hard lines had `examples` from the start
                drop(clause, "examples", [])
    for clause in data.get("defaults", []):
        drop(clause, "allowed_values", {})
        drop(clause, "locked_by", {})
        drop(clause, "override", "explicit")
    return data


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
    # Operator only: defaults users may switch although the base does not let them, up to what the
    # operator itself may choose; `[id]` for any such value, `{id: [values]}` for some.
    grant_users: dict[str, tuple[str, ...] | None] = Field(default_factory=dict)
    # Protections this layer's principal sets aside for itself (only where `waivable_by` names it).
    waive: tuple[str, ...] = ()
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

    @field_validator("grant_users", mode="before")
    @classmethod
    def _grants_as_mapping(cls, value: object) -> object:
        if isinstance(value, (list, tuple)):  # [id, {id: [values]}, ...]
            merged: dict = {}
            for item in value:
                merged.update(item if isinstance(item, dict) else {item: None})
            value = merged
        if isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, list) and not v:
                    raise ValueError(f"{k}: an empty list grants nothing; name the values, or give [{k}] for any")
            return {k: None if v is None else [Default._scalar_to_str(x) for x in (v if isinstance(v, list) else [v])]
                    for k, v in value.items()}
        return value
