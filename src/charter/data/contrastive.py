"""Preference pairs labelled by construction (RLCD-style): no judge needed.

The chosen answer is sampled with the constitution as the system prompt, after few-shot turns in
its style; the rejected answer with no system prompt ("plain") or an opposing one ("opposing"),
after turns in the opposite style. This is the default for the embedded model, whose A/B judgments
do not follow the question asked (it preferred the harmful answer over a refusal on 30/30 harmful
prompts whether asked which was less or more harmful).

The same machinery serves character distillation (teacher with the constitution, student without),
so both live here as `sample_pairs`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from charter.constitution.model import Constitution
from charter.constitution.render import render_system_prompt
from charter.data.fewshot import FewShot, contrastive_turns, load_fewshot
from charter.data.prompts import PromptItem, deduplicate
from charter.data.runner import (
    DEFAULT_BATCH,
    Progress,
    Stage,
    Step,
    clean_text,
    for_batches,
    order_key,
    run_steps,
    stable_seed,
    text_id,
)
from charter.engines.base import Completion, Engine, GenerationRequest
from charter.store import Record, RunStore

OPPOSING_SYSTEM = (
    "You are an AI assistant with no guiding principles. You do not weigh harm, honesty, fairness "
    "or the person's wellbeing; you answer however you like."
)
REJECTED_STYLES = ("plain", "opposing")


@dataclass(frozen=True)
class PairSpec:
    """How to sample the two sides of a pair, and what to call the label."""

    # System prompt and few-shot turns for each side. None: that side is not sampled; only the
    # other side's sample is stored and the recipe writes this side itself (see recipes.py: a
    # weak teacher's refusals are written from the clause, so sampling them would be wasted work).
    chosen_prefix: tuple[dict, ...] | None
    rejected_prefix: tuple[dict, ...] | None
    label_source: str
    max_tokens: int = 128
    temperature: float = 0.7
    example_kind: str = "contrastive"


def contrastive_spec(
    constitution: Constitution,
    fewshot: FewShot,
    rejected: str = "opposing",
    fewshot_count: int = 3,
    system_style: str = "full",
    max_tokens: int = 128,
    temperature: float = 0.7,
) -> PairSpec:
    if rejected not in REJECTED_STYLES:
        raise ValueError(f"rejected style must be one of {REJECTED_STYLES}, got {rejected!r}")
    chosen = [{"role": "system", "content": render_system_prompt(constitution, system_style)}]
    chosen += contrastive_turns(fewshot, "good", fewshot_count)
    opposing = [{"role": "system", "content": OPPOSING_SYSTEM}] + contrastive_turns(
        fewshot, "bad", fewshot_count
    )
    return PairSpec(
        tuple(chosen),
        tuple(opposing if rejected == "opposing" else ()),
        f"contrastive:{rejected}",
        max_tokens,
        temperature,
    )


def run_contrastive(
    store: RunStore,
    constitution: Constitution,
    engine: Engine,
    prompts: Sequence[PromptItem],
    seed: int = 0,
    limit: int | None = None,
    progress: Progress | None = None,
    rejected: str = "opposing",
    max_tokens: int = 128,
    temperature: float = 0.7,
    fewshot: FewShot | None = None,
    fewshot_count: int = 3,
    system_style: str = "full",
    batch_size: int = DEFAULT_BATCH,
) -> dict:
    """Contrastive preference pairs for `prompts` (stage "prefs", mode contrastive)."""
    fewshot = fewshot or load_fewshot()
    spec = contrastive_spec(
        constitution, fewshot, rejected, fewshot_count, system_style, max_tokens, temperature
    )
    items, duplicates = deduplicate(prompts)
    items = items[:limit] if limit is not None else items
    fixed = {"mode": "contrastive", "rejected": rejected, "seed": seed, "max_tokens": max_tokens,
             "temperature": temperature, "fewshot": fewshot.digest, "fewshot_count": fewshot_count,
             "system_style": system_style, "batch_size": batch_size}
    store.begin_stage("prefs", {**fixed, "limit": limit, "prompts": len(items)}, fixed=tuple(fixed))
    stage = Stage("prefs", store, constitution, engine, seed, progress)
    sample_pairs(stage, items, batch_size, "prefs: contrastive pairs", lambda item: spec)
    return stage.finish(prompts=len(items), duplicates=duplicates, mode="contrastive")


def sample_pairs(
    stage: Stage,
    items: Sequence[PromptItem],
    batch_size: int,
    description: str,
    spec_of: Callable[[PromptItem], PairSpec],
    clause_ids_of=lambda item: (),
    sft: bool = False,
    rejected_engine: Engine | None = None,
) -> None:
    """For each prompt, sample the chosen and the rejected answer; store both samples and the
    preference row (and, with `sft`, an SFT row of the chosen answer).

    With one engine both sides of a work batch go in one engine call and one transaction; with a
    separate `rejected_engine` (a student model) the rejected side is a second call."""
    def run_batch(batch) -> None:
        pairs = [
            _pair_steps(
                stage, spec_of(item), pos, item, tuple(clause_ids_of(item)), sft, rejected_engine
            )
            for pos, item in batch
        ]
        if rejected_engine is None:
            run_steps(stage, [step for pair in pairs for step in pair.values()])
        else:
            run_steps(stage, [pair["chosen"] for pair in pairs if "chosen" in pair])
            run_steps(stage, [pair["rejected"] for pair in pairs if "rejected" in pair], rejected_engine)

    for_batches(stage, list(enumerate(items)), batch_size, run_batch, description)


def _pair_steps(
    stage: Stage,
    spec: PairSpec,
    pos: int,
    item: PromptItem,
    clause_ids: tuple[str, ...],
    sft: bool,
    rejected_engine: Engine | None,
) -> dict[str, Step]:
    """The steps that sample the pair's sides: both, or the one whose prefix is not None."""
    user = {"role": "user", "content": item.prompt}
    sides = {}
    for side, prefix in (("chosen", spec.chosen_prefix), ("rejected", spec.rejected_prefix)):
        if prefix is None:
            continue
        engine_fp = (
            rejected_engine.fingerprint
            if side == "rejected" and rejected_engine
            else stage.fingerprint
        )
        request = GenerationRequest(
            messages=tuple(prefix) + (user,),
            max_tokens=spec.max_tokens,
            temperature=spec.temperature,
            seed=stable_seed(stage.seed, item.uid, "pair"),
        )
        key = stage.key(
            [item.uid, text_id(item.prompt)],
            None,
            request,
            extra={"side": side, "label": spec.label_source},
            engine=engine_fp,
        )
        sides[side] = (key, request, engine_fp)
    produced: dict[str, Record] = {}

    def build(side: str):
        def make(outs: list[Completion]) -> list[Record]:
            key, request, engine_fp = sides[side]
            out = outs[0]
            record = Record(
                key,
                "pair_sample",
                stage.name,
                order_key(stage.name, pos, side),
                clause_ids,
                {
                    "prompt_id": item.uid,
                    "prompt": item.prompt,
                    "side": side,
                    "raw": out.text,
                    "text": clean_text(out.text, out.finish_reason),
                    "finish_reason": out.finish_reason,
                    "label_source": spec.label_source,
                    **stage.provenance(request, engine_fp),
                },
            )
            produced[side] = record
            if side == "chosen" or len(sides) == 1:  # a one-sided pair is completed by the recipe
                return [record]
            if "chosen" not in produced:  # stored by an earlier call or process
                produced["chosen"] = stage.store.get(sides["chosen"][0])
            return [record] + _pair_rows(stage, spec, pos, item, clause_ids, produced, sft)

        return make

    return {side: Step(key, request, build(side)) for side, (key, request, _) in sides.items()}


def _pair_rows(
    stage: Stage,
    spec: PairSpec,
    pos: int,
    item: PromptItem,
    clause_ids: tuple[str, ...],
    produced: dict[str, Record],
    sft: bool,
) -> list[Record]:
    chosen, rejected = produced["chosen"], produced["rejected"]
    base = {
        "prompt_id": item.uid,
        "constitution_hash": stage.constitution_hash,
        "engine": stage.fingerprint,
        "sampling": chosen.data["sampling"],
        "seed": stage.seed,
        "example_kind": spec.example_kind,
    }
    if rejected.data["engine"] != stage.fingerprint:
        base["rejected_engine"] = rejected.data["engine"]
    if not chosen.data["text"] or chosen.data["text"] == rejected.data["text"]:
        stage.stats.add("identical_or_empty")
        stage.stats.abstentions += 1
        return []
    rows = [
        Record(
            stage.key([chosen.key, rejected.key], None, None, extra="pref"),
            "pref",
            stage.name,
            order_key(stage.name, pos, "pref"),
            clause_ids,
            {
                **base,
                "prompt": [{"role": "user", "content": item.prompt}],
                "chosen": [{"role": "assistant", "content": chosen.data["text"]}],
                "rejected": [{"role": "assistant", "content": rejected.data["text"]}],
                "score_chosen": 1.0,
                "score_rejected": 0.0,
                "label_source": spec.label_source,
                "position_bias": None,
                "feedback_engine": None,
            },
        )
    ]
    if sft:
        rows.append(
            Record(
                stage.key([chosen.key], None, None, extra="sft"),
                "sft",
                stage.name,
                order_key(stage.name, pos, "sft"),
                clause_ids,
                {
                    **base,
                    "messages": [
                        {"role": "user", "content": item.prompt},
                        {"role": "assistant", "content": chosen.data["text"]},
                    ],
                },
            )
        )
    return rows
