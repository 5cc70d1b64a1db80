"""How every judge shows model-written text: inside markers that the text itself cannot fake.

charter asks three kinds of judge: the RLAIF feedback model (data/judging.py: options "(A)", "(B)"
after "Options:"), the eval grader (evals/grading.py: `<<<LABEL>>>` sections and a `VERDICT: X`
line) and the serve guard's judge (serve/judge.py: `<request>`/`<response>` tags). Each has its own
markers, because each was measured with them; what they share is the rule written here: before a
text written by a user or a model goes between a judge's markers, every piece of it that could be
read as one of those markers is rewritten so that it reads the same to a person and no longer
parses as a marker. A `Markers` value is that judge's list of such rewrites.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

Rewrite = tuple[str, "str | Callable[[re.Match], str]", int]  # pattern, replacement, re flags


@dataclass(frozen=True)
class Markers:
    """One judge's markers, as the rewrites that defuse them in quoted text (applied in order),
    and optionally how many characters of a quoted text (its end) the judge's context can hold."""

    rewrites: tuple[Rewrite, ...]
    keep_last_chars: int | None = None

    def neutralise(self, text: str) -> str:
        for pattern, replacement, flags in self.rewrites:
            text = re.sub(pattern, replacement, text, flags=flags)
        if self.keep_last_chars is not None:
            text = text[-self.keep_last_chars:]
        return text


def literal(marker: str, replacement: str) -> Rewrite:
    """A marker that is a fixed string (`<<<`), replaced wherever it occurs."""
    return (re.escape(marker), replacement.replace("\\", r"\\"), 0)
