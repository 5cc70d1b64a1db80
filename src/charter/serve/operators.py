"""The operators file: who may call the server, with which overlay, guard engine and limits.

An operator is a business deploying charter. Each has an API key, stored only as its sha256 hash
(keys are 256 random bits, so a fast hash is enough: there is nothing to brute-force), an overlay
(a path relative to the operators file, or inline), and options:

    operators:
      - id: acme
        key_sha256: 3f1c...            # written by `charter operators add`, never the key itself
        overlay: operator.yaml          # or an inline mapping: {defaults: {tone: neutral}}
        guard_engine: llamacpp:embedded # optional; default: the server's --guard-engine
        limits: {requests_per_minute: 60, burst: 10, max_tokens: 512}
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from charter.constitution.load import YamlLoader, load_overlay, parse_overlay
from charter.constitution.model import ID_PATTERN, Overlay
from charter.errors import CharterError, ConstitutionError
from charter.rows import write_text_atomic

KEY_PREFIX = "chk_"


class Limits(BaseModel):
    """Per-operator limits; each breach has its own status (429 rate, 400 max_tokens)."""

    model_config = ConfigDict(extra="forbid")
    requests_per_minute: float = Field(60.0, gt=0, description="Token bucket refill rate")
    # strict: `max_tokens: true` must be an error, not 1
    burst: int = Field(10, ge=1, strict=True, description="Requests allowed at once before the rate applies")
    max_tokens: int = Field(512, ge=1, strict=True, description="Largest max_tokens a request may ask for")


class OperatorEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    key_sha256: str
    overlay: str | dict[str, Any] | None = None
    guard_engine: str | None = None
    limits: Limits = Field(default_factory=Limits)

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if not ID_PATTERN.match(value):
            raise ValueError("use letters, digits, '_', '-' or '.'")
        return value

    @field_validator("key_sha256")
    @classmethod
    def _hex_digest(cls, value: str) -> str:
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise ValueError("must be a 64-character lowercase sha256 hex digest "
                             "(write it with `charter operators add`, never paste a key here)")
        return value


class OperatorsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    operators: list[OperatorEntry] = Field(default_factory=list)


@dataclass(frozen=True)
class Operator:
    """An operator ready to serve: its overlay parsed (whether it may apply is `resolve`'s call)."""

    id: str
    key_sha256: str
    overlay: Overlay | None
    guard_engine: str | None
    limits: Limits


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def load_operators(path: str | Path) -> list[Operator]:
    """Read and validate an operators file; overlay paths are relative to the file."""
    path = Path(path)
    parsed = _read(path)
    seen: set[str] = set()
    operators = []
    for entry in parsed.operators:
        if entry.id in seen:
            raise CharterError(f"{path}: operator id '{entry.id}' appears twice; give each operator its own id")
        seen.add(entry.id)
        operators.append(Operator(entry.id, entry.key_sha256, _overlay(path, entry),
                                  entry.guard_engine, entry.limits))
    return operators


def add_operator(path: str | Path, operator_id: str, *, overlay: str | dict | None = None,
                 guard_engine: str | None = None, limits: dict | None = None,
                 rotate: bool = False) -> str:
    """Add an operator (or give one a new key with rotate=True); return the fresh key.

    The key is returned once and never stored: only its hash goes into the file.
    """
    path = Path(path)
    parsed = _read(path) if path.exists() else OperatorsFile()
    key = new_key()
    existing = next((e for e in parsed.operators if e.id == operator_id), None)
    if existing is not None and not rotate:
        raise CharterError(f"{path}: operator '{operator_id}' already exists; pass --rotate to give it a new key")
    if existing is not None:
        existing.key_sha256 = hash_key(key)
    else:
        try:
            parsed.operators.append(OperatorEntry(id=operator_id, key_sha256=hash_key(key), overlay=overlay,
                                                  guard_engine=guard_engine, limits=Limits(**(limits or {}))))
        except ValidationError as exc:
            raise CharterError(f"operator '{operator_id}': {_first_error(exc)}") from None
    _write(path, parsed)
    return key


def _read(path: Path) -> OperatorsFile:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=YamlLoader) or {}  # YamlLoader is a SafeLoader
    except FileNotFoundError:
        raise CharterError(f"operators file {path} not found; create one with "
                           f"`charter operators add ID --operators {path}`") from None
    except yaml.YAMLError as exc:
        raise CharterError(f"{path}: invalid YAML ({exc}); fix the file") from None
    try:
        return OperatorsFile.model_validate(data)
    except ValidationError as exc:
        raise CharterError(f"{path}: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg'].removeprefix('Value error, ')}"


def _overlay(path: Path, entry: OperatorEntry) -> Overlay | None:
    if entry.overlay is None:
        return None
    try:
        if isinstance(entry.overlay, dict):
            return parse_overlay(entry.overlay, source=f"{path}:operators[{entry.id}].overlay")
        return load_overlay(path.parent / entry.overlay)
    except ConstitutionError as exc:
        raise CharterError(f"operator '{entry.id}': {exc}") from None


def _write(path: Path, parsed: OperatorsFile) -> None:
    """Rewrite atomically, keeping the file's leading comment block (its documentation)."""
    header = ""
    if path.exists():
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        header = "".join(l for l in _leading_comments(lines))
    body = yaml.safe_dump(parsed.model_dump(mode="json", exclude_defaults=False), sort_keys=False,
                          allow_unicode=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    # hashes are not secrets, but there is no reason for others to read them
    write_text_atomic(path, header + body, mode=0o600)


def _leading_comments(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        if not line.startswith("#") and line.strip():
            break
        out.append(line)
    return out
