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


# Problems the rules cannot see, kept here so that a change that finds them (or loses others) shows:
# a paraphrase with few shared words (MiniLM puts it at 0.3 once the frame is removed).
KNOWN_MISSES = ["  missed  dev_planted_2.yaml: duplicate ['define_terms', 'explain_jargon']"]


def test_the_development_set_planted_problems_are_found_and_nothing_else(embedder):
    spec = importlib.util.spec_from_file_location("bench_scrutiny", ROOT / "bench" / "scrutiny.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    planted, found, false, notes = bench.score(DEV, embedder)
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
    findings = static_findings(load_constitution(example_path(name)), embedder, exercised=exercised_by())
    assert [f for f in findings if f.severity == "error"] == []
