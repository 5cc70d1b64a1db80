"""The static checks on the development set (tests/fixtures/scrutiny, written beside the rules) and on
the shipped constitutions, with the real sentence-embedding model."""

import importlib.util
import sys
from pathlib import Path

import pytest

from charter.constitution import load_constitution
from charter.scrutiny.coverage import exercised_by
from charter.scrutiny.static import static_findings
from charter.shipped import example_path

ROOT = Path(__file__).resolve().parents[2]
DEV = ROOT / "tests" / "fixtures" / "scrutiny"
sys.path.insert(0, str(ROOT / "bench"))


@pytest.fixture(scope="module")
def embedder():
    from charter.embeddings import Embedder

    return Embedder()


def _bench():
    """bench/scrutiny.py, whose scoring the development-set tests share."""
    spec = importlib.util.spec_from_file_location("bench_scrutiny", ROOT / "bench" / "scrutiny.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


# Problems the rules cannot see, kept here so that a change that finds them (or loses others) shows:
# a paraphrase with few shared words (MiniLM puts it at 0.3 once the frame is removed).
KNOWN_MISSES = ["  missed  dev_planted_2.yaml: duplicate ['define_terms', 'explain_jargon']"]


def test_the_development_set_planted_problems_are_found_and_nothing_else(embedder):
    planted, found, false, notes = _bench().score(DEV, embedder)
    assert sum(planted.values()) == 13
    assert [n for n in notes if "missed" in n] == KNOWN_MISSES, "\n".join(notes)
    assert not false, "\n".join(notes)


def test_a_contradiction_names_both_clauses_quotes_both_sentences_and_proposes_a_fix(embedder):
    c = load_constitution(DEV / "dev_planted_1.yaml")
    found = [f for f in static_findings(c, embedder) if f.check == "contradiction"]
    assert [f.clauses for f in found] == [("share_sources", "hide_sources")]
    f = found[0]
    assert f.severity == "error" and "nothing says which wins" in f.message
    assert f.quotes == {"share_sources": "Always tell the user where a piece of advice comes from.",
                        "hide_sources": "Never tell the user where a piece of advice comes from."}
    assert "tier" in f.fix and f.evidence["stance_free_similarity"] >= 0.8


@pytest.mark.parametrize("name", ["constitution.yaml", "short_constitution.yaml", "long_constitution.md"])
def test_the_shipped_constitutions_have_no_errors(embedder, name):
    constitution = load_constitution(example_path(name))
    findings = static_findings(constitution, embedder, exercised=exercised_by(constitution))
    assert [f for f in findings if f.severity == "error"] == []


def test_shipped_eval_items_exercise_only_the_example_clauses_they_were_written_for(embedder):
    # The shipped character items name `warmth`; a user's own `warmth` with other words is not
    # exercised by them (it was, by id alone, and a planted unexercised trait went unnoticed).
    example = load_constitution(example_path("constitution.yaml"))
    assert exercised_by(example)["warmth"] > 0
    own = example.model_copy(update={"traits": tuple(
        t.model_copy(update={"text": "I am warm and kind to the people I help.", "questions": ()})
        if t.id == "warmth" else t for t in example.traits)})
    assert "warmth" not in exercised_by(own)
    found = static_findings(own, embedder, exercised=exercised_by(own))
    assert any(f.check == "unexercised" and f.clauses == ("warmth",) for f in found)


DEV2 = ROOT / "tests" / "fixtures" / "scrutiny_dev2"
# The second development set (written blind, then the tension word lists were extended beside it):
# what the rules still cannot see there, so a change that finds more (or loses some) shows.
DEV2_KNOWN = {"missed": 10, "false": 1}


def test_the_second_development_set_stays_where_it_was(embedder):
    planted, found, false, notes = _bench().score(DEV2, embedder)
    assert sum(planted.values()) == 32
    missed = [n for n in notes if "missed" in n]
    assert len(missed) <= DEV2_KNOWN["missed"] and sum(false.values()) <= DEV2_KNOWN["false"], "\n".join(notes)
    # The structural checks find every planted problem, the clean files raise nothing.
    assert not [n for n in missed if any(k in n for k in ("hard_line_examples", "untiered", "unexercised"))]
    assert not [n for n in notes if "(clean)" in n], "\n".join(notes)


def test_two_principles_in_a_named_tension_need_a_tier(embedder):
    example = load_constitution(example_path("short_constitution.yaml"))
    from charter.constitution.model import Principle

    extra = (Principle(id="letter_tone", text="Choose the response written in formal, complete sentences with a "
                                                "courteous sign-off.", use=("rl",)),
             Principle(id="text_tone", text="Choose the response written like a quick text: lowercase, emoji "
                                              "welcome.", use=("rl",)))
    c = example.model_copy(update={"principles": example.principles + extra, "priorities": None})
    found = [f for f in static_findings(c, embedder) if set(f.clauses) == {"letter_tone", "text_tone"}]
    assert found and found[0].check in ("missing_priority", "contradiction"), found
