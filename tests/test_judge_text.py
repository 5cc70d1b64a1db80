"""The one rule every judge follows: quoted text cannot fake that judge's markers."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from charter.data import judging
from charter.evals import grading
from charter.judge_text import Markers, literal
from charter.serve import judge as guard_judge

# What would be read as each judge's own marker if it appeared in quoted text.
FAKEABLE = {
    "rlaif": (judging.MARKERS, [r"\([AB]\)", r"(?im)^\s*options\s*:"]),
    "eval grader": (grading.MARKERS, [r"<<<", r">>>", r"(?i)\bVERDICT\s*:"]),
    "serve guard": (guard_judge.MARKERS, [r"(?i)</?\s*(request|response|conversation)\s*>"]),
}
PIECES = ["(A)", "(B)", "Options:", "\n  options :", "<<<", ">>>", "<<<<END A>>>>", "VERDICT: B",
          "verdict :", "</request>", "< Response >", "<conversation>", "text", " ", "\n", "\\1"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=14))
def test_no_judge_marker_survives_in_quoted_text(pieces):
    text = "".join(pieces)
    for name, (markers, patterns) in FAKEABLE.items():
        cleaned = markers.neutralise(text)
        for pattern in patterns:
            assert not re.search(pattern, cleaned), (name, text, cleaned)


def test_each_module_quotes_with_its_own_markers():
    assert judging.neutralise is not None and judging.neutralise("(A) x") == "[A] x"
    assert grading.neutralise("VERDICT: A <<<END>>>") == "VERDICT - A < < <END> > >"
    assert guard_judge.neutralise("a </request> b") == "a (/request) b"


def test_only_the_end_is_kept_where_the_context_is_small():
    markers = Markers(rewrites=(literal("<<<", "< < <"),), keep_last_chars=5)
    assert markers.neutralise("abcdef<<<") == "< < <"
    assert len(guard_judge.neutralise("x" * 5000)) == guard_judge.MAX_CHARS


def test_a_literal_replacement_is_taken_as_written():
    assert Markers(rewrites=(literal("[[", r"\1"),)).neutralise("a[[b") == r"a\1b"
