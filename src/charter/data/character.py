"""Character: trait-targeted distillation pairs and introspection data.

Prompts for each trait are its own `questions` plus prompts the model writes for it. A teacher
answers with the constitution as its system prompt, told which trait the question draws out
(chosen); the student answers with no system prompt (rejected): preference pairs labelled by
construction, and SFT rows of the teacher's answers. Introspection: the model, given the
constitution, answers the self-reflection prompts (examples/prompts/introspection.jsonl); the SFT
rows leave the constitution out, so training puts it into the weights rather than the prompt.
"""

from __future__ import annotations

from collections.abc import Sequence

from charter.constitution.model import Constitution
from charter.constitution.render import render_system_prompt
from charter.data.contrastive import PairSpec, sample_pairs
from charter.data.promptgen import generate_clause_prompts
from charter.data.prompts import PromptItem, deduplicate, example_prompts
from charter.data.runner import (
    DEFAULT_BATCH,
    Progress,
    Stage,
    Step,
    for_batches,
    order_key,
    run_steps,
    sample_data,
    stable_seed,
    text_id,
)
from charter.engines.base import Completion, Engine, GenerationRequest
from charter.store import Record, RunStore

STAGE = "character"


def run_character(
    store: RunStore,
    constitution: Constitution,
    engine: Engine,
    introspection: Sequence[PromptItem] | None = None,
    seed: int = 0,
    limit: int | None = None,
    progress: Progress | None = None,
    generated_per_trait: int = 2,
    max_tokens: int = 128,
    temperature: float = 0.7,
    system_style: str = "full",
    student: Engine | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> dict:
    """Trait pairs + SFT rows, and introspection SFT rows. `limit` caps each of the two prompt lists.

    `student` (default: the same engine) answers without the constitution; with a separate, weaker
    model this is distillation proper."""
    params = {
        "seed": seed,
        "generated_per_trait": generated_per_trait,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "system_style": system_style,
        "batch_size": batch_size,
        "limit": limit,
    }
    store.begin_stage(
        STAGE,
        params,
        fixed=(
            "seed",
            "generated_per_trait",
            "max_tokens",
            "temperature",
            "system_style",
            "batch_size",
        ),
    )
    stage = Stage(STAGE, store, constitution, engine, seed, progress)
    system = render_system_prompt(constitution, system_style)

    traits = trait_prompts(stage, generated_per_trait, batch_size)
    traits = traits[:limit] if limit is not None else traits
    _trait_pairs(stage, system, traits, max_tokens, temperature, batch_size, student)

    intro = deduplicate(
        introspection if introspection is not None else example_prompts("introspection")
    )[0]
    intro = intro[:limit] if limit is not None else intro
    _introspection(stage, system, intro, max_tokens, temperature, batch_size)
    return stage.finish(trait_prompts=len(traits), introspection_prompts=len(intro))


def trait_prompts(stage: Stage, generated_per_trait: int, batch_size: int) -> list[PromptItem]:
    """Each trait's own questions, then the prompts the model wrote for it; deduplicated."""
    traits = stage.constitution.traits
    generated = (
        generate_clause_prompts(
            stage, traits, "canonical", generated_per_trait, "trait", batch_size=batch_size
        )
        if generated_per_trait
        else []
    )
    items: list[PromptItem] = []
    for trait in traits:
        items += [
            PromptItem(f"trait/{trait.id}/{i}", q, "trait", trait.id, trait.id, "canonical")
            for i, q in enumerate(trait.questions)
        ]
        items += [g for g in generated if g.clause_id == trait.id]
    return deduplicate(items)[0]


def _trait_pairs(
    stage: Stage,
    system: str,
    items: list[PromptItem],
    max_tokens: int,
    temperature: float,
    batch_size: int,
    student: Engine | None,
) -> None:
    def spec_of(item: PromptItem) -> PairSpec:
        # The teacher is told which trait the question draws out; the student gets no system prompt.
        trait = stage.constitution.clause(item.clause_id)
        teacher = f"{system}\n\nIn this answer, let this trait of yours show: {trait.text}"
        return PairSpec(
            ({"role": "system", "content": teacher},),
            (),
            "distillation:system_prompt",
            max_tokens,
            temperature,
            "character",
        )

    sample_pairs(
        stage,
        items,
        batch_size,
        "character: teacher and student answers",
        spec_of,
        clause_ids_of=lambda item: (item.clause_id,),
        sft=True,
        rejected_engine=student,
    )


def _introspection(
    stage: Stage,
    system: str,
    items: list[PromptItem],
    max_tokens: int,
    temperature: float,
    batch_size: int,
) -> None:
    for_batches(stage, list(enumerate(items)), batch_size,
                lambda batch: run_steps(stage, [_intro_step(stage, system, pos, item, max_tokens, temperature)
                                                for pos, item in batch]),
                "character: introspection answers")


def _intro_step(
    stage: Stage, system: str, pos: int, item: PromptItem, max_tokens: int, temperature: float
) -> Step:
    request = GenerationRequest(
        messages=({"role": "system", "content": system}, {"role": "user", "content": item.prompt}),
        max_tokens=max_tokens,
        temperature=temperature,
        seed=stable_seed(stage.seed, item.uid, "introspection"),
    )
    key = stage.key([item.uid, text_id(item.prompt)], None, request, extra="introspection")

    def build(outs: list[Completion]) -> list[Record]:
        data = sample_data(stage, item.uid, item.prompt, outs[0], request)
        text = data["text"]
        sample = Record(
            key, "introspection", STAGE, order_key(STAGE, 10**7 + pos, "answer"), (), data
        )
        if not text:
            stage.stats.abstentions += 1
            return [sample]
        sft = Record(
            stage.key([key], None, None, extra="sft"),
            "sft",
            STAGE,
            order_key(STAGE, 10**7 + pos, "sft"),
            (),
            {
                "messages": [
                    {"role": "user", "content": item.prompt},
                    {"role": "assistant", "content": text},
                ],
                "prompt_id": item.uid,
                "example_kind": "introspection",
                **{k: data[k] for k in ("constitution_hash", "engine", "sampling", "seed")},
            },
        )
        return [sample, sft]

    return Step(key, request, build)
