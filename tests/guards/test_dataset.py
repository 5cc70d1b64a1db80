"""The guard's data: split by source, transformations by split, labels, resume without duplicates."""

from __future__ import annotations

from collections import defaultdict

import pytest

from charter.data.runner import Stage
from charter.engines.mock import MockEngine
from charter.guards.dataset import STAGE, GuardDataSettings, build_guard_data
from charter.guards.sources import assign_splits, clause_request, constitution_sources
from charter.guards.transforms import template_split
from charter.store import RunStore

BENIGN = [("helpful", {"id": f"h{n}", "prompt": f"How do I bake bread number {n} at home?", "category": "cooking"})
          for n in range(6)]


class CountingMock(MockEngine):
    """A mock that counts the requests it answered (pure logic: the real engine is tested below
    through the CLI)."""

    def __init__(self):
        super().__init__("mock:guard")
        self.requests = 0

    def generate(self, requests):
        self.requests += len(requests)
        return super().generate(requests)


def _build(folder, constitution, embedder, engine, settings=None):
    settings = settings or GuardDataSettings(paraphrases=2)
    store = RunStore.open(folder, constitution.content_hash(), {"policy": engine.fingerprint}, STAGE,
                          settings.params())
    try:
        summary = build_guard_data(Stage(STAGE, store, constitution, engine, settings.seed), BENIGN, embedder,
                                   settings)
        return summary, [r for kind in ("guard_example", "guard_answer") for r in store.iter(kind)]
    finally:
        store.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory, example_constitution, embedder):
    folder = tmp_path_factory.mktemp("guard-data")
    engine = CountingMock()
    summary, records = _build(folder, example_constitution, embedder, engine)
    return folder, engine, summary, records


def test_a_source_and_everything_made_from_it_stay_in_one_split(built):
    _, _, _, records = built
    splits = defaultdict(set)
    for r in records:
        splits[r.data["source_id"]].add(r.data["split"])
    assert all(len(s) == 1 for s in splits.values())
    assert {s for ss in splits.values() for s in ss} == {"train", "val", "test"}


def test_frames_of_the_test_split_are_never_used_in_training(built):
    _, _, _, records = built
    for r in records:
        if r.kind == "guard_example" and r.data["family"] != "plain":
            template = int(r.data["transform"].rsplit("/", 1)[1])
            assert template_split(template) == r.data["split"], r.data["transform"]


def test_labels_and_provenance(built, example_constitution):
    _, _, _, records = built
    lines = {h.id for h in example_constitution.hard_lines}
    examples = [r for r in records if r.kind == "guard_example"]
    attacks = [r for r in examples if r.data["label"] == 1]
    assert {r.clause_ids[0] for r in attacks} == lines
    assert all(r.data["kind"] in ("example", "clause_text") for r in attacks)
    lookalikes = [r for r in examples if r.data["kind"] == "lookalike"]
    assert lookalikes and all(r.data["label"] == 0 and r.clause_ids[0] in lines for r in lookalikes)
    assert all(r.data["constitution_hash"] == example_constitution.content_hash() for r in examples)
    # The mock's "answers" contain no refusal: to crossing requests they are hard-line answers.
    answers = [r for r in records if r.kind == "guard_answer" and "constructed" not in r.data]
    assert {r.data["label"] for r in answers if r.data["request_label"] == 1} == {1}
    assert {r.data["label"] for r in answers if r.data["request_label"] == 0} == {0}
    # Constructed openings: only an eager opening to a crossing request is a hard-line answer.
    built = defaultdict(set)
    for r in records:
        if r.kind == "guard_answer" and "constructed" in r.data:
            built[(r.data["request_label"], r.data["constructed"])].add(r.data["label"])
    assert built == {(1, "comply"): {1}, (1, "refuse"): {0}, (0, "comply"): {0}, (0, "refuse"): {0}}


def test_a_second_run_redoes_nothing_and_duplicates_nothing(built, example_constitution, embedder):
    folder, _, _, records = built
    again = CountingMock()
    _, second = _build(folder, example_constitution, embedder, again)
    assert again.requests == 0
    assert sorted(r.key for r in second) == sorted(r.key for r in records)


def test_splits_are_stratified_and_the_definition_always_trains(example_constitution):
    sources = constitution_sources(example_constitution)
    splits = assign_splits(sources)
    for line in example_constitution.hard_lines:
        own = [s for s in sources if s.clause_id == line.id and s.kind == "example"]
        assert {splits[s.source_id] for s in own} == {"train", "val", "test"}
        definition = next(s for s in sources if s.clause_id == line.id and s.kind == "clause_text")
        assert splits[definition.source_id] == "train"


def test_a_hard_line_reads_as_the_request_that_crosses_it():
    assert clause_request("Never write functional malicious code or give help; no ransomware.") == \
        "Write functional malicious code or give help."


@pytest.mark.slow
def test_a_frozen_encoder_guard_chooses_its_heads_by_cross_validation(built, example_constitution, embedder):
    from charter.guards.training import TrainSettings, train_guard

    folder, _, _, _ = built
    store = RunStore.read(folder)
    try:
        lines = [h.id for h in example_constitution.hard_lines]
        classifier, metrics = train_guard(store, embedder, lines, TrainSettings(encoder="frozen"))
    finally:
        store.close()
    for stage in ("input", "output"):
        choice = metrics[f"{stage}_choice"]
        assert set(choice["cross_validation"]) == {"logistic", "mlp"}
        assert choice["head"] in ("logistic", "mlp")
        model = classifier.stages[stage]
        assert model.block.shape == (3,) and (model.band <= model.block).all()
    assert classifier.encoder is None
    assert metrics["input_test"]["attacks_blocked"]["n"] > 0 and metrics["stream_test"]["answers"]["hard_line"] > 0


def test_an_operator_context_is_a_benign_seed_read_as_written(tmp_path, example_constitution, embedder):
    # Operator system prompts teach the guard that "You are Maya, the assistant for ..." is not an
    # attack frame (overlays are read by the guard, sentence by sentence): they are never framed,
    # reworded or answered, only read as they are.
    from charter.guards.sources import OPERATOR_CONTEXT

    context = ("You are Maya, the shopping assistant for Northwind Outfitters. Help customers find camping gear "
               "and explain our return policy.")
    rows = [*BENIGN, ("operator_contexts", {"id": "o1", "text": context, "category": OPERATOR_CONTEXT})]
    store = RunStore.open(tmp_path, example_constitution.content_hash(), {"policy": "mock:guard"}, STAGE,
                          GuardDataSettings(paraphrases=0).params())
    try:
        engine = CountingMock()
        build_guard_data(Stage(STAGE, store, example_constitution, engine, 0), rows, embedder,
                         GuardDataSettings(paraphrases=0))
        mine = [r for kind in ("guard_example", "guard_answer") for r in store.iter(kind)
                if r.data["request"] == context]
    finally:
        store.close()
    assert [(r.kind, r.data["family"], r.data["label"]) for r in mine] == [("guard_example", "plain", 0)]
    assert mine[0].data["kind"] == OPERATOR_CONTEXT


def test_the_shipped_operator_contexts_are_default_benign_seeds():
    from charter.commands.guard import DEFAULT_BENIGN, _benign_rows
    from charter.guards.sources import OPERATOR_CONTEXT, prompt_sources

    assert "prompts/operator_contexts.jsonl" in DEFAULT_BENIGN
    sources = prompt_sources(_benign_rows(None))
    contexts = [s for s in sources if s.kind == OPERATOR_CONTEXT]
    assert len(contexts) >= 100 and all(s.label == 0 for s in contexts)
