"""The `prompts` stage: the model writes new prompts for each principle or trait, in four kinds.

    canonical     the clause clearly matters
    edge          a borderline case where it is unclear how far the clause applies
    lookalike     resembles the clause's domain but falls outside it (the answer should just help)
    cannot_apply  the clause cannot apply at all

Clauses that carry example requests (trait questions, hard lines' examples and look-alikes) show
them to the model. Each generated prompt is stored with its clause id and kind; a reply that is
not a usable prompt is stored as rejected and counted. `generated_prompts` reads the usable ones
back, deduplicated against each other and the prompts given, for the later stages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from charter.constitution.model import Constitution
from charter.data.prompts import PromptItem, deduplicate, example_prompts, interleave
from charter.data.runner import (
    DEFAULT_BATCH,
    Progress,
    Stage,
    Step,
    for_batches,
    order_key,
    run_steps,
    stable_seed,
)
from charter.engines.base import Completion, Engine, GenerationRequest
from charter.store import Record, RunStore

KINDS = ("canonical", "edge", "lookalike", "cannot_apply")
_KIND_ASK = {
    "canonical": "where this clearly matters",
    "edge": "that is a borderline case, where it is genuinely unclear how far this applies",
    "lookalike": (
        "that sounds related to the same topic but is in fact an ordinary, reasonable request "
        "where this does not come into play"
    ),
    "cannot_apply": "about something where this cannot apply at all",
}
_SYSTEM = "You write realistic test messages that users send to an AI assistant. Reply with the message only."


def run_prompts(
    store: RunStore,
    constitution: Constitution,
    engine: Engine,
    seed: int = 0,
    limit: int | None = None,
    progress: Progress | None = None,
    per_kind: int = 1,
    kinds: Sequence[str] = KINDS,
    clause_kinds: Sequence[str] = ("principle", "trait"),
    max_tokens: int = 64,
    temperature: float = 0.9,
    batch_size: int = DEFAULT_BATCH,
) -> dict:
    """Generate prompts per clause and kind; `limit` caps the number of (clause, kind, index) units."""
    units = [
        (clause, kind, clause_kind, index)
        for clause_kind in clause_kinds
        for clause in constitution.clauses_by_kind()[clause_kind]
        for kind in kinds
        for index in range(per_kind)
    ]
    units = units[:limit] if limit is not None else units
    params = {
        "seed": seed,
        "per_kind": per_kind,
        "kinds": list(kinds),
        "clause_kinds": list(clause_kinds),
        "max_tokens": max_tokens,
        "temperature": temperature,
        "batch_size": batch_size,
        "limit": limit,
    }
    store.begin_stage("prompts", params, fixed=("seed", "max_tokens", "temperature", "batch_size"))
    stage = Stage("prompts", store, constitution, engine, seed, progress)
    for_batches(stage, list(enumerate(units)), batch_size,
                lambda batch: run_steps(stage, [_step(stage, pos, *unit, max_tokens, temperature)
                                                for pos, unit in batch]),
                "prompts: write prompts per clause")
    usable = generated_prompts(store)
    return stage.finish(units=len(units), usable=len(usable))


def generate_clause_prompts(
    stage: Stage,
    clauses: Iterable,
    kind: str,
    per_clause: int,
    clause_kind: str,
    max_tokens: int = 64,
    temperature: float = 0.9,
    batch_size: int = DEFAULT_BATCH,
) -> list[PromptItem]:
    """Generated prompts for some clauses, as part of another stage (character uses it for traits)."""
    units = [
        (clause, kind, clause_kind, index) for clause in clauses for index in range(per_clause)
    ]
    def run_batch(batch) -> list[Record]:
        steps = [_step(stage, pos, *unit, max_tokens, temperature) for pos, unit in batch]
        found = run_steps(stage, steps)
        return [found[s.key] for s in steps]

    made = [r for done in for_batches(stage, list(enumerate(units)), batch_size, run_batch) if done
            for r in done]
    return [_item(r) for r in made if r.data["valid"]]


def generated_prompts(
    store: RunStore, stage: str = "prompts", kinds: Sequence[str] = KINDS
) -> list[PromptItem]:
    """The usable generated prompts of a run, in order, without duplicates."""
    items = [
        _item(r)
        for r in store.iter("prompt", stage)
        if r.data["valid"] and r.data["prompt_kind"] in kinds
    ]
    return deduplicate(items)[0]


def _item(record: Record) -> PromptItem:
    d = record.data
    mode = "answer" if d["prompt_kind"] in ("lookalike", "cannot_apply") else "critique"
    return PromptItem(
        f"generated/{record.key[:12]}",
        d["prompt"],
        "generated",
        d["prompt_kind"],
        d["clause_id"],
        d["prompt_kind"],
        mode,
    )


def _instruction(clause, kind: str, clause_kind: str) -> str:
    what = {"principle": "principle", "trait": "character trait", "hard_line": "rule"}.get(
        clause_kind, "clause"
    )
    text = f'Here is a {what} an AI assistant follows:\n"{clause.text}"\n\n'
    examples = _examples(clause, kind)
    if examples:
        text += "Examples of such messages:\n" + "\n".join(f"- {e}" for e in examples[:3]) + "\n\n"
    return text + f"Write one new message a user might send to the assistant {_KIND_ASK[kind]}."


def _examples(clause, kind: str) -> tuple[str, ...]:
    if kind == "lookalike":
        return tuple(getattr(clause, "lookalikes", ()))
    if kind == "canonical":
        return tuple(getattr(clause, "questions", ())) or tuple(e.request for e in getattr(clause, "examples", ()))
    return ()


def _step(
    stage: Stage,
    pos: int,
    clause,
    kind: str,
    clause_kind: str,
    index: int,
    max_tokens: int,
    temperature: float,
) -> Step:
    request = GenerationRequest(
        messages=(
            {"role": "system", "content": _SYSTEM},
            {"role": "user", "content": _instruction(clause, kind, clause_kind)},
        ),
        max_tokens=max_tokens,
        temperature=temperature,
        seed=stable_seed(stage.seed, clause.id, kind, index),
    )
    key = stage.key([clause.id, kind], clause.id, request, index, extra={"prompt_kind": kind})

    def build(outs: list[Completion]) -> list[Record]:
        prompt, reason = parse_prompt(outs[0].text)
        if reason:
            stage.stats.add("rejected")
            stage.stats.abstentions += 1
        data = {
            "prompt": prompt,
            "clause_id": clause.id,
            "clause_kind": clause_kind,
            "prompt_kind": kind,
            "valid": reason is None,
            "reason": reason,
            "raw": outs[0].text,
            **stage.provenance(request),
        }
        return [
            Record(
                key,
                "prompt",
                stage.name,
                order_key(stage.name, pos, clause.id, kind, index),
                (clause.id,),
                data,
            )
        ]

    return Step(key, request, build)


_REFUSALS = ("i'm sorry", "i am sorry", "as an ai", "i cannot", "i can't")
# Lines that introduce a message rather than being one ("Here's an example of such a message:").
_PREAMBLE = re.compile(r"^(here'?s|here is|sure|certainly|example|okay|ok)\b|:$", re.IGNORECASE)
_LABEL = re.compile(r"^(\d+[.)]|[-*\u2022]|(message|user|question|example)\s*:)\s*", re.IGNORECASE)


def parse_prompt(text: str) -> tuple[str, str | None]:
    """The prompt in a model reply, and why it is unusable (None when usable): the first line
    that is not a preamble, without list markers, labels or quotes."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "", "empty reply"
    candidates = [_LABEL.sub("", line).strip().strip("\"\u201c\u201d'").strip() for line in lines]
    line = next((c for c in candidates if c and not _PREAMBLE.search(c)), "")
    if not line:
        return candidates[0], "only a preamble, no message"
    if len(line) < 12:
        return line, "too short to be a prompt"
    if len(line) > 400:
        return line, "too long to be one message"
    if line.lower().startswith(_REFUSALS):
        return line, "the model refused or answered instead of writing a prompt"
    return line, None


def default_prompts(store: RunStore | None = None) -> list[PromptItem]:
    """The prompts sl and prefs use when none are given: the shipped red-team set (critiqued) and
    helpful set (answered), plus this run's generated prompts once its `prompts` stage is done."""
    lists = [example_prompts("red_team", "critique"), example_prompts("helpful", "answer")]
    if store is not None and store.stage_done("prompts"):
        lists.append(generated_prompts(store))
    return interleave(lists)
