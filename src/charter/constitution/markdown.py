"""A constitution written as a Markdown document: prose sections, plus clauses in front matter.

    ---
    name: My assistant
    version: "1.0"
    hard_lines: [...]          # any of the YAML format's keys
    ---
    # Overview {#overview}
    Prose ...
    ## Being honest
    More prose ...

Each heading starts a titled section (`{#id}` gives its id; otherwise one is made from the
title); text before the first heading is the preamble. A single top-level heading over the
whole document is its title (naming the constitution when the front matter does not), and the
text under it, before the next heading, is the preamble. `charter import` writes
the same content out as a YAML file to edit (see `markdown_to_yaml`).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import yaml

_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*(?:\{#([^}\s]+)\})?(?:\s+#+)?\s*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")
_ANCHOR_ONLY = re.compile(r"^(.*?)\s*\{#([^}\s]+)\}\s*$")


def split_front_matter(text: str) -> tuple[str | None, str, int]:
    """(front matter YAML or None, body, line number where the body starts, 1-based)."""
    if not text.startswith("---"):
        return None, text, 1
    lines = text.splitlines(keepends=True)
    if lines[0].strip() != "---":
        return None, text, 1
    for index in range(1, len(lines)):
        if lines[index].strip() in ("---", "..."):
            return "".join(lines[1:index]), "".join(lines[index + 1:]), index + 2
    return None, text, 1


def parse_sections(body: str, first_line: int = 1) -> tuple[str, list[dict[str, Any]], list[int], str | None]:
    """(preamble, sections as dicts, each section's heading line, document title or None).

    ATX (`## Title {#id}`) and setext (a line underlined with === or ---) headings; a fence closes
    only on its own character, at least as long as it opened, so code may hold other fences."""
    preamble: list[str] = []
    sections: list[dict[str, Any]] = []
    current: list[str] | None = None
    fence: str | None = None

    def start(title: str, anchor: str | None, level: int, line: int) -> list[str]:
        sections.append({"id": anchor, "title": title, "level": level, "text": "", "_lines": [],
                         "_line": line, "_anchored": anchor is not None})
        return sections[-1]["_lines"]

    for offset, line in enumerate(body.splitlines()):
        opened = _FENCE.match(line)
        if fence is not None:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence) \
                    and not line.strip()[len(opened.group(1)):].strip():
                fence = None
        elif opened:
            fence = opened.group(1)
        elif (match := _HEADING.match(line)) is not None:
            current = start(match.group(2).strip(), match.group(3), len(match.group(1)), first_line + offset)
            continue
        else:
            block = current if current is not None else preamble
            underline = _SETEXT.match(line)
            if underline and block and block[-1].strip() and not _FENCE.match(block[-1]) \
                    and (len(block) == 1 or not block[-2].strip()):
                title_line = block.pop()
                titled = _ANCHOR_ONLY.match(title_line.strip())
                title, anchor = (titled.group(1), titled.group(2)) if titled else (title_line.strip(), None)
                current = start(title, anchor, 1 if underline.group(1)[0] == "=" else 2, first_line + offset - 1)
                continue
        (current if current is not None else preamble).append(line)
    title = None
    # One top-level heading over the whole document is its title (its text, the preamble), not a section.
    if sections and sections[0]["level"] == 1 and all(s["level"] > 1 for s in sections[1:]) \
            and not "\n".join(preamble).strip():
        title = sections[0]["title"]
        preamble = sections[0]["_lines"]
        sections = sections[1:]
    kept = [s for s in sections if "\n".join(s["_lines"]).strip() or s["title"]]
    used = {s["id"] for s in kept if s["_anchored"]}  # written anchors are kept as written (the model
    for index, section in enumerate(kept, 1):          # refuses two sections with one id)
        section["text"] = "\n".join(section.pop("_lines")).strip()
        if not section.pop("_anchored"):
            base = _slug(section["title"]) or f"section-{index}"
            sid, n = base, 2
            while sid in used:
                sid, n = f"{base}-{n}", n + 1
            used.add(sid)
            section["id"] = sid
    heading_lines = [s.pop("_line") for s in kept]
    return "\n".join(preamble).strip(), kept, heading_lines, title


def _slug(title: str) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")[:60]


class _Block(str):
    """A string YAML should write as a literal block (|)."""


def _block(dumper: yaml.SafeDumper, value: _Block):
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|" if "\n" in value else None)


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Block, _block)


def markdown_to_yaml(data: dict[str, Any]) -> str:
    """The YAML skeleton `charter import` writes: the document's keys, prose as literal blocks, and
    empty clause lists with a comment on what to write in each."""
    out = {"name": data.get("name", "imported constitution"), "version": data.get("version", "0.1")}
    out.update((k, v) for k, v in data.items() if k not in ("sections", "preamble", "name", "version"))
    if data.get("preamble"):
        out["preamble"] = _Block(data["preamble"])
    out["sections"] = [{**s, "text": _Block(s["text"])} for s in data.get("sections", [])]
    text = yaml.dump(out, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)
    hints = [key for key in ("principles", "hard_lines", "protections", "traits", "defaults") if key not in out]
    if hints:
        text += ("\n# The prose above is loaded as titled sections. Write the rules it states as clauses so the\n"
                 "# data, training and evals can use them one by one (see docs/bring-your-own-constitution.md):\n")
        text += "".join(f"# {key}: []\n" for key in hints)
    return text
