"""Character distillation pairs, introspection and understanding data."""

from __future__ import annotations

import pytest

from charter.data.character import run_character
from charter.data.prompts import PromptItem
from charter.data.understanding import constructed_qa, run_understanding, why_questions

from .fakes import FakeEngine


def test_trait_pairs_have_the_trait_in_the_teacher_prompt_only(
    fake, open_store, example_constitution
):
    store = open_store(fake)
    summary = run_character(store, example_constitution, fake, limit=3, generated_per_trait=1)
    assert summary["trait_prompts"] == 3 and summary["introspection_prompts"] == 3
    prefs = list(store.iter("pref", "character"))
    assert len(prefs) == 3 and all(
        p.data["label_source"] == "distillation:system_prompt" for p in prefs
    )
    assert {p.clause_ids for p in prefs} == {("curiosity",)}
    sft_kinds = [r.data["example_kind"] for r in store.iter("sft")]
    assert sft_kinds.count("character") == 3 and sft_kinds.count("introspection") == 3
    # generated trait prompts are stored with their clause and kind
    generated = list(store.iter("prompt", "character"))
    assert len(generated) == len(example_constitution.traits)
    assert all(r.data["clause_kind"] == "trait" for r in generated)


def test_trait_prompts_start_with_the_traits_own_questions(fake, open_store, example_constitution):
    store = open_store(fake)
    run_character(store, example_constitution, fake, limit=2, generated_per_trait=0)
    chosen = [r for r in store.iter("pair_sample") if r.data["side"] == "chosen"]
    assert chosen[0].data["prompt"] == example_constitution.traits[0].questions[0]


def test_a_separate_student_answers_the_rejected_side(open_store, example_constitution):
    teacher, student = FakeEngine(), FakeEngine("fake:student")
    store = open_store(teacher)
    run_character(
        store,
        example_constitution,
        teacher,
        introspection=[],
        limit=2,
        generated_per_trait=0,
        student=student,
    )
    assert student.calls == [2] and teacher.calls == [2]
    pref = next(store.iter("pref")).data
    assert pref["rejected_engine"] == student.fingerprint and pref["engine"] == teacher.fingerprint


def test_introspection_is_answered_with_the_constitution_but_exported_without(
    fake, open_store, example_constitution
):
    store = open_store(fake)
    intro = [PromptItem("i/1", "What matters most to you?", "i")]
    run_character(
        store, example_constitution, fake, introspection=intro, limit=1, generated_per_trait=0
    )
    sft = [r.data for r in store.iter("sft") if r.data["example_kind"] == "introspection"]
    assert len(sft) == 1 and [m["role"] for m in sft[0]["messages"]] == ["user", "assistant"]


def test_understanding_by_construction_and_by_the_model(fake, open_store, example_constitution):
    qa = constructed_qa(example_constitution)
    ids = {q.clause_id for q in qa}
    assert {c.id for kind in example_constitution.clauses_by_kind().values() for c in kind} <= ids
    hard = next(q for q in qa if q.uid == "hard_line/malicious_code/hold")
    assert example_constitution.clause("malicious_code").text in hard.answer
    assert any(
        q.clause_id is None for q in why_questions(example_constitution)
    )  # preamble questions
    store = open_store(fake)
    summary = run_understanding(store, example_constitution, fake, limit=4)
    kinds = [r.data["example_kind"] for r in store.iter("sft")]
    assert (
        kinds.count("understanding:construction") == 4 and kinds.count("understanding:model") == 4
    )
    assert summary["constructed"] == 4 and store.count("understanding_answer") == 4
    # a rerun finds everything in the store
    again = run_understanding(store, example_constitution, fake, limit=4)
    assert again["records"] == 0 and again["reused"] == 8


@pytest.mark.slow
def test_character_and_understanding_on_the_embedded_model(
    embedded, open_store, example_constitution
):
    store = open_store(embedded)
    run_character(
        store, example_constitution, embedded, limit=1, generated_per_trait=0, max_tokens=24
    )
    assert store.count("pref") == 1 and store.count("introspection") == 1
    run_understanding(
        store, example_constitution, embedded, limit=1, answers="model", max_tokens=24
    )
    answer = next(store.iter("understanding_answer")).data
    assert answer["raw"].strip() and answer["engine"] == embedded.fingerprint
