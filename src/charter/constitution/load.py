"""Read a constitution or overlay from YAML or JSON; every problem names file, line and field.

YAML is parsed twice on purpose: once into plain data with the safe loader (no object
construction), and once into a node tree whose marks give the line of every key, so that a
validation error on `principles[3].critique` can point at the line a person would edit.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from charter.constitution.model import Constitution, Overlay, id_key
from charter.errors import ConstitutionError, Problem

Model = TypeVar("Model", bound=BaseModel)


class YamlLoader(yaml.SafeLoader):
    """The safe loader with YAML 1.2's booleans: only true/false are booleans. YAML 1.1 also reads
    `on`, `off`, `yes`, `no`, `y`, `n` as booleans, so `mature_fiction: on` arrived as True and a
    choice named `off:` as False; in a constitution they are the names the author wrote."""


YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                 list("tTfF"))
Path_ = tuple[Any, ...]

# What to do, per pydantic error type, in words a constitution author understands.
_HINTS = {
    "missing": "is required; add it",
    "string_type": "must be text",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "greater_than": "must be greater than 0",
    "tuple_type": "must be a list",
    "dict_type": "must be a mapping of key: value",
    "model_type": "must be a mapping of key: value",
    "literal_error": None,  # pydantic's own message lists the allowed values
}


def load_constitution(path: str | Path) -> Constitution:
    """Load and validate a constitution file. Raises ConstitutionError listing every problem."""
    path = Path(path)
    data, lines = _read(path)
    problems = _duplicate_id_problems(path, data, lines)
    for key in ("layers", "waived"):  # charter's own record of the overlays applied, never a file's to claim
        if key in data:
            problems.append(Problem(str(path), _line_for(lines, (key,)), key,
                                    "is set by charter as overlays apply; remove it from the file"))
    defaults = data.get("defaults")
    for index, item in enumerate(defaults if isinstance(defaults, list) else []):
        if isinstance(item, dict) and "locked_by" in item:
            where = ("defaults", index, "locked_by")
            problems.append(Problem(str(path), _line_for(lines, where), _dotted(where),
                                    "is set by charter as overlays apply; remove it from the file"))
    constitution = _validate(Constitution, path, data, lines, problems)
    return constitution


def load_overlay(path: str | Path) -> Overlay:
    """Load an operator or user overlay. Whether it may do what it asks is decided by `resolve`."""
    path = Path(path)
    data, lines = _read(path)
    return _validate(Overlay, path, data, lines, [])


def read_markdown_data(path: str | Path) -> dict:
    """A Markdown constitution's content as plain data (front matter + sections), not yet validated."""
    path = Path(path)
    if path.suffix.lower() not in (".md", ".markdown"):
        raise ConstitutionError([Problem(str(path), 0, "", "is not a Markdown file (.md); nothing to import")])
    data, _ = _read(path)
    return data


def parse_overlay(data: Any, source: str = "<request>") -> Overlay:
    """Validate an overlay given as data (e.g. a JSON request body field)."""
    return _validate(Overlay, Path(source), data, {}, [])


def _read(path: Path) -> tuple[Any, dict[Path_, int]]:
    name = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConstitutionError([Problem(name, 0, "", "file not found; check the path")]) from None
    except OSError as exc:
        raise ConstitutionError([Problem(name, 0, "", f"cannot read file: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConstitutionError(
            [Problem(name, line, "", "is not valid UTF-8; save the file as UTF-8")]
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        if path.suffix.lower() in (".md", ".markdown"):
            data, lines = _read_markdown(name, text)
        elif path.suffix.lower() == ".json":
            data = _parse_json(name, text)
            # Valid JSON may indent with tabs, which YAML (the line mapper) refuses: map a copy
            # with spaces instead (same lines).
            lines = _line_map(name, re.sub(r"(?m)^\t+", lambda m: "  " * len(m.group(0)), text))
        else:
            lines = _line_map(name, text)  # raises located errors for invalid YAML
            data = _yaml_errors_located(name, lambda: yaml.load(text, Loader=YamlLoader))  # YamlLoader is a SafeLoader
    except RecursionError:
        raise ConstitutionError([Problem(name, 1, "", "nesting is too deep to be a constitution")]) from None
    if isinstance(data, dict) and isinstance(data.get("version"), float):
        data["version"] = _version_as_written(text, data["version"])  # 1.10 is not 1.1
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise ConstitutionError(
            [Problem(name, 1, "", f"the top level is {kind}; it must be a mapping with `name:`, `version:`, ...")]
        )
    return data, lines


def _read_markdown(name: str, text: str) -> tuple[Any, dict[Path_, int]]:
    """Front matter (YAML) plus the body's headings as sections; lines point into the .md file."""
    from charter.constitution.markdown import parse_sections, split_front_matter

    front, body, body_line = split_front_matter(text)
    data: Any = {}
    lines: dict[Path_, int] = {}
    if front is not None:
        lines = {path: line + 1 for path, line in _line_map(name, front).items()}  # +1: the opening ---
        data = _yaml_errors_located(name, lambda: yaml.load(front, Loader=YamlLoader)) or {}  # YamlLoader is safe
        if not isinstance(data, dict):
            raise ConstitutionError([Problem(name, 2, "", "the front matter must be a mapping of key: value")])
    preamble, sections, heading_lines, title = parse_sections(body, body_line)
    if title and "name" not in data:
        data["name"] = title
    if preamble and "preamble" not in data:
        data["preamble"] = preamble
    written = list(data.get("sections") or []) if isinstance(data.get("sections"), list) else []
    for index, line in enumerate(heading_lines[: len(sections)]):
        lines[("sections", len(written) + index)] = line
    data["sections"] = written + sections
    return data, lines


_VERSION = re.compile(r"""^\s*["']?version["']?\s*:\s*([0-9][0-9.]*)\s*,?\s*(?:#.*)?$""", re.MULTILINE)


def _version_as_written(text: str, parsed: float) -> str:
    """A version read as a number, as the file wrote it: YAML and JSON read 1.10 as 1.1."""
    match = _VERSION.search(text)
    return match.group(1) if match and float(match.group(1)) == parsed else str(parsed)


def _parse_json(name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConstitutionError([Problem(name, exc.lineno, "", f"invalid JSON: {exc.msg}")]) from None


def _yaml_errors_located(name: str, parse):
    try:
        return parse()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConstitutionError([Problem(name, line, "", f"invalid YAML: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise ConstitutionError([Problem(name, 1, "", f"invalid YAML: {exc}")]) from None


MAX_NODES = 200_000  # entries a file may expand to; a long real constitution has a few thousand
MAX_BYTES = 10 * 1024 * 1024


def _line_map(name: str, text: str) -> dict[Path_, int]:
    """Map each key path (('principles', 3, 'critique')) to its 1-based line; refuse duplicate keys.

    Also the guard against YAML alias bombs: a 1 KB file of nested aliases expands to billions of
    entries when walked (or validated, or hashed), so the walk counts entries and stops at
    MAX_NODES with an error at the line where the budget ran out."""
    if len(text) > MAX_BYTES:
        raise ConstitutionError([Problem(name, 1, "", f"is {len(text) // 1024} KB; the limit is "
                                                      f"{MAX_BYTES // 1024 // 1024} MB for a constitution file")])
    root = _yaml_errors_located(name, lambda: yaml.compose(text, Loader=YamlLoader))
    lines: dict[Path_, int] = {}
    if root is not None:
        _walk(name, root, (), lines, set(), [MAX_NODES])
    return lines


def _walk(name: str, node: yaml.Node, path: Path_, lines: dict[Path_, int], active: set[int],
          budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise ConstitutionError([Problem(name, node.start_mark.line + 1, _dotted(path),
                                         f"expands to more than {MAX_NODES} entries (nested YAML aliases?); "
                                         f"write the entries out or use fewer aliases")])
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.ScalarNode):
        _check_scalar(name, node, path)
    if id(node) in active:  # a recursive alias; safe_load would already have failed, but be sure
        return
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is None:
                continue
            if key in seen and key != "<<":
                raise ConstitutionError(
                    [Problem(name, key_node.start_mark.line + 1, _dotted(path + (key,)),
                             "appears twice in the same mapping; keep one")]
                )
            seen.add(key)
            _check_scalar(name, key_node, path + (key,))  # a key can carry a bad tag too
            lines[path + (key,)] = key_node.start_mark.line + 1
            _walk(name, value_node, path + (key,), lines, active, budget)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(name, item, path + (index,), lines, active, budget)
    active.discard(id(node))


_SURROGATE = re.compile("[\ud800-\udfff]")
_CONSTRUCTOR = yaml.SafeLoader.yaml_constructors


def _check_scalar(name: str, node: yaml.ScalarNode, path: Path_) -> None:
    """Values YAML itself would crash on later, as located errors: an explicit tag whose text is not
    of that type (`!!int honesty`, `!!bool maybe`), and a lone surrogate ("\\ud800"), which no
    UTF-8 file, hash or prompt can hold."""
    line = node.start_mark.line + 1
    if _SURROGATE.search(node.value):
        raise ConstitutionError([Problem(name, line, _dotted(path), "contains a lone surrogate (an escape such "
                                                                    "as \\ud800); write the character itself")])
    if node.tag in _CONSTRUCTOR and node.tag.rsplit(":", 1)[-1] in ("int", "float", "bool", "timestamp"):
        try:
            _CONSTRUCTOR[node.tag](yaml.SafeLoader(""), node)
        except Exception:  # noqa: BLE001 - each constructor fails its own way (ValueError, KeyError, ...)
            kind = node.tag.rsplit(":", 1)[-1]
            raise ConstitutionError([Problem(name, line, _dotted(path), f"is tagged !!{kind} but {node.value!r} "
                                                                        f"is not one; remove the tag")]) from None


def _line_for(lines: dict[Path_, int], path: Path_) -> int:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 1


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _duplicate_id_problems(path: Path, data: dict, lines: dict[Path_, int]) -> list[Problem]:
    problems: list[Problem] = []
    first: dict[str, tuple[str, str]] = {}
    for section in ("principles", "traits", "hard_lines", "protections", "defaults"):
        items = data.get(section)
        if not isinstance(items, list):
            continue
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                continue
            clause_id = item["id"]
            key = id_key(clause_id)
            where = (section, index, "id")
            if key in first:
                other, at = first[key]
                same = "duplicate id" if other == clause_id else f"id {clause_id!r} looks like the id"
                problems.append(Problem(
                    str(path), _line_for(lines, where), _dotted(where),
                    f"{same} {other!r} (first used at {at}); give each clause its own id",
                ))
            else:
                first[key] = (clause_id, _dotted(where))
    return problems


def _validate(model: type[Model], path: Path, data: Any, lines: dict[Path_, int], problems: list[Problem]) -> Model:
    name = str(path)
    try:
        result = model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            problems.append(_problem_from(name, lines, error, model))
        result = None
    except RecursionError:
        problems.append(Problem(name, 1, "", "nesting is too deep to be a constitution"))
        result = None
    if problems:
        # A duplicate id is also reported by the model's own check without a location; keep the located one.
        located = [p for p in problems if not (p.field == "" and ("duplicate id" in p.message
                                                                 or "looks like the id" in p.message))]
        raise ConstitutionError(located or problems)
    return result


def _problem_from(name: str, lines: dict[Path_, int], error: dict, model: type[BaseModel]) -> Problem:
    loc = tuple(error.get("loc", ()))
    message = str(error.get("msg", "is invalid"))
    kind = error.get("type", "")
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
        # Model-level checks name their field as 'field: message'; move it into the location.
        head, sep, rest = message.partition(": ")
        if sep and head.isidentifier() and head in _fields_at(model, loc):
            loc, message = loc + (head,), rest
    elif kind == "extra_forbidden":
        allowed = ", ".join(sorted(_fields_at(model, loc[:-1])))
        message = f"unknown key; allowed keys here are: {allowed}"
    elif _HINTS.get(kind):
        message = _HINTS[kind]
    return Problem(name, _line_for(lines, loc), _dotted(loc), message)


def _fields_at(model: type[BaseModel], loc: Path_) -> set[str]:
    """The field names of the sub-model that `loc` points into (for messages)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return set()
        annotation = field.annotation
        for arg in getattr(annotation, "__args__", ()) or ():
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                annotation = arg
        current = annotation
    return set(getattr(current, "model_fields", {}))


def clause_lines(path: str | Path) -> dict[str, int]:
    """Clause id -> line of its `id:` key, for locating lint warnings."""
    path = Path(path)
    data, lines = _read(path)
    found: dict[str, int] = {}
    for section in ("principles", "traits", "hard_lines", "protections", "defaults"):
        items = data.get(section)
        if isinstance(items, list):
            for index, item in enumerate(items):
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    found.setdefault(item["id"], _line_for(lines, (section, index, "id")))
    return found
