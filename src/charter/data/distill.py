"""The judge-free recipe for models too weak to judge themselves: one-sided sampling, pairs
completed by construction, kept only where a rule check agrees (see recipes.py for why).

  safe prompt     sample the teacher's answer (the constitution as system prompt): the chosen
                  side and an SFT row (context distillation); the rejected side is a needless
                  refusal, sampled or constructed
  harmful prompt  sample the model's own answer with no system prompt: the rejected side (on
                  policy: exactly what the eval measures before training); the chosen side is a
                  refusal written from the clause that applies

`run_distill` samples the missing sides into the store ("pair_sample" records, one unit of work
each, so a killed run resumes) and then completes every pair, writing "pref" and "sft" records
like every other data stage: `charter data export` (and `charter run`'s datasets stage) turn
them into TRL datasets with the one exporter. Reached from `charter run` (the default recipe for
the embedded model) and `charter generate distill`.

Measured on the embedded model (bench/teacher_refusals.py): its teacher declined 1 of 64 red-team
prompts, so sampling the refusal side would be 98% wasted generation. Greedy teacher answers,
rather than samples at temperature 0.8, gave coherent answers to train on and cut safe-prompt
refusals after training from 19/40 to 14/40 (docs/training.md, "The embedded recipe").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from charter.constitution.model import Constitution
from charter.constitution.render import render_system_prompt
from charter.data.contrastive import PairSpec, sample_pairs
from charter.data.prompts import PromptItem
from charter.data.runner import Progress, Stage, order_key
from charter.engines.base import Engine
from charter.errors import CharterError
from charter.recipes import FilterReport, check_needless_refusal_style, constructed_refusal, judge_free_pair
from charter.store import Record, RunStore

STAGE = "distill"
TEACHER = "compact:one-sided:v3"  # the teacher's system prompt style and recipe version


@dataclass(frozen=True)
class DistillPrompt:
    """A prompt of the recipe: which side of the line it is on decides what is sampled."""

    item: PromptItem
    harmful: bool


MINIMAL_PAIR = "minimal_pair"  # the source of prompts from the training pool's minimal pairs


def minimal_pairs(count: int) -> tuple[list[PromptItem], list[PromptItem]]:
    """The first `count` minimal pairs of the *train* pool, spread over their kinds: (unsafe sides,
    safe sides). Each pair shares its dangerous-sounding words, so trained together they teach
    "the same words, the opposite right answer" (charter/pools.py keeps them apart from dev/test)."""
    from charter.evals.load import spread
    from charter.rows import read_rows
    from charter.shipped import example_path

    rows = read_rows(example_path("prompts/minimal_pairs_train.jsonl"))
    chosen = spread(rows, None if count is None else 2 * count, "kind", together="pair_id")
    # A pair about the person's own wellbeing is answered with support, not a bare refusal.
    unsafe = [PromptItem(f"{MINIMAL_PAIR}/{r['id']}", r["prompt"], MINIMAL_PAIR,
                         "self_harm" if r["clause_id"] == "wellbeing" else r["kind"], r["clause_id"])
              for r in chosen if r["side"] == "unsafe"]
    safe = [PromptItem(f"{MINIMAL_PAIR}/{r['id']}", r["prompt"], MINIMAL_PAIR, r["kind"], r["clause_id"],
                       mode="answer") for r in chosen if r["side"] == "safe"]
    return unsafe, safe


def default_prompts(constitution: Constitution, limit: int | None = 48, safe_ratio: float = 2.0,
                    harmful: Sequence[PromptItem] | None = None,
                    safe: Sequence[PromptItem] | None = None, pairs: int = 0) -> list[DistillPrompt]:
    """Harmful prompts (the red-team set + the hard lines' examples, or `harmful`) and
    `safe_ratio` times as many safe ones (ordinary requests, prompts that only look dangerous
    ("how do I nuke my node_modules folder?") and the hard lines' look-alikes, or `safe`).

    Without the look-dangerous ones a small model learns "scary words -> refuse" and over-refuses
    (measured: 18/40 safe-but-scary eval prompts refused after SFT on refusals and ordinary
    answers only)."""
    from charter.data.prompts import example_prompts, interleave

    if harmful is None:
        hard = [PromptItem(f"hard_line/{h.id}/{i}", text, "hard_line", "hard_line", clause_id=h.id)
                for h in constitution.hard_lines for i, text in enumerate(h.requests)]
        harmful = interleave([example_prompts("red_team"), hard])
    if safe is None:
        look = [PromptItem(f"lookalike/{h.id}/{i}", text, "lookalike", "lookalike", clause_id=h.id, mode="answer")
                for h in constitution.hard_lines for i, text in enumerate(h.lookalikes)]
        safe = interleave([example_prompts("borderline", mode="answer"), example_prompts("helpful", mode="answer"),
                           look])
    harmful = list(harmful)[:limit]
    safe = list(safe)[:round(len(harmful) * safe_ratio)]
    if pairs:  # on top of the above: both sides of `pairs` minimal pairs
        pair_unsafe, pair_safe = minimal_pairs(pairs)
        harmful, safe = harmful + pair_unsafe, safe + pair_safe
    return [DistillPrompt(item, True) for item in harmful] + [DistillPrompt(item, False) for item in safe]


def run_distill(store: RunStore, constitution: Constitution, engine: Engine, prompts: Sequence[DistillPrompt],
                seed: int = 0, samples: int = 1, max_tokens: int = 128, batch_size: int = 32,
                progress: Progress | None = None, needless_refusals: str = "fixed") -> dict:
    """Sample, then complete and check every pair; return the stage summary (with the filter's).
    `needless_refusals`: how a safe prompt's rejected refusal is written when none was sampled
    (recipes.NEEDLESS_REFUSAL_STYLES)."""
    check_needless_refusal_style(needless_refusals)
    description = "data: teacher and own answers"
    stage = Stage(STAGE, store, constitution, engine, seed, progress)
    store.begin_stage(STAGE, {"samples": samples, "max_tokens": max_tokens, "seed": seed, "teacher": TEACHER,
                              "prompts": len(prompts) * samples, "needless_refusals": needless_refusals},
                      fixed=("max_tokens", "seed", "teacher", "needless_refusals"))
    system = {"role": "system", "content": render_system_prompt(constitution, "compact")}
    # Several samples per prompt need sampling to differ; one sample is the greedy answer.
    temperature = 0.0 if samples == 1 else 0.7
    harmful_spec = PairSpec(None, (), "contrastive:own-answer", max_tokens, temperature)
    safe_spec = PairSpec((system,), None, "contrastive:teacher", max_tokens, temperature)
    by_uid = {p.item.uid: p for p in prompts}
    # Several samples per prompt: each is its own unit of work (own key and seed) via the uid.
    items = [PromptItem(f"{p.item.uid}#{s}", p.item.prompt, p.item.source, p.item.category, p.item.clause_id,
                        mode=p.item.mode) for s in range(samples) for p in prompts]

    def prompt_of(item: PromptItem) -> DistillPrompt:
        return by_uid[item.uid.split("#")[0]]

    def clause_ids_of(item: PromptItem) -> tuple[str, ...]:
        if item.clause_id:
            return (item.clause_id,)
        return ("harmlessness",) if prompt_of(item).harmful else ("helpfulness", "needless_refusal")

    sample_pairs(stage, items, batch_size, description, lambda i: harmful_spec if prompt_of(i).harmful else safe_spec,
                 clause_ids_of)
    report = complete_pairs(stage, by_uid, needless_refusals)
    return stage.finish(prompts=len(items), filter=report.as_dict())


def complete_pairs(stage: Stage, prompts: dict[str, DistillPrompt], needless_refusals: str = "fixed") -> FilterReport:
    """Turn the stored one-sided samples into "pref" and "sft" records, in sampling order."""
    report, records = FilterReport(), []
    for prompt_id, sides in _samples_by_prompt(stage.store):
        prompt = prompts[prompt_id.split("#")[0]]
        refusal = constructed_refusal(stage.constitution, prompt.item.category, prompt.item.clause_id, prompt_id,
                                      stage.seed)
        texts = {side: record.data["text"] for side, record in sides.items()}
        # "matched": the refusal this prompt would get were it harmful (its clause and category),
        # rejected here; the key and seed are the prompt's, as for a harmful prompt's chosen side.
        needless = refusal if needless_refusals == "matched" and not prompt.harmful else None
        pair = judge_free_pair(prompt.harmful, texts.get("chosen"), texts.get("rejected"), refusal, needless)
        if isinstance(pair, str):
            report.drop(pair)
            continue
        chosen, rejected, source = pair
        report.keep(source)
        records += _pair_records(next(iter(sides.values())), sides, chosen, rejected, source)
    if not records:
        raise CharterError("no preference pair survived the rule check; raise --limit or --samples, or use a "
                           "stronger --policy engine")
    stage.put(records)
    return report


def _pair_records(sample: Record, sides: dict[str, Record], chosen: str, rejected: str, source: str) -> list[Record]:
    """The pair (labelled by construction: p = 1) and the SFT row of its chosen answer. Their keys
    name the samples they were made from (a one-sided pair has one), plus what they are."""
    pair_id = "+".join(sorted(r.key for r in sides.values()))
    position = int(sample.order_key.split("/")[1])
    provenance = {"prompt_id": sample.data["prompt_id"], "example_kind": "contrastive",
                  "constitution_hash": sample.data["constitution_hash"], "engine": sample.data["engine"],
                  "sampling": sample.data["sampling"], "seed": sample.data["seed"],
                  "label_source": f"{sample.data['label_source']}+rules:{source}"}
    user = [{"role": "user", "content": sample.data["prompt"]}]
    answer = [{"role": "assistant", "content": chosen}]
    pref = Record(f"{pair_id}:pref", "pref", sample.stage, order_key(sample.stage, position, "pref"), sample.clause_ids,
                  {**provenance, "prompt": user, "chosen": answer,
                   "rejected": [{"role": "assistant", "content": rejected}],
                   "score_chosen": 1.0, "score_rejected": 0.0, "position_bias": None, "feedback_engine": None})
    sft = Record(f"{pair_id}:sft", "sft", sample.stage, order_key(sample.stage, position, "sft"), sample.clause_ids,
                 {**provenance, "messages": user + answer})
    return [pref, sft]


def _samples_by_prompt(store: RunStore):
    """(prompt id, {side: sample record}) in the order the samples were made."""
    grouped: dict[str, dict] = {}
    for record in store.iter("pair_sample", STAGE):
        grouped.setdefault(record.data["prompt_id"], {})[record.data["side"]] = record
    return grouped.items()


def balanced(pairs: list[dict], harmful: set[str], safe_ratio: float) -> list[dict]:
    """Every harmful-prompt pair and, in prompt order, `safe_ratio` times as many safe-prompt pairs:
    what DPO trains on. The ratio moves the trained model along the trade-off between refusing
    harmful prompts and answering safe ones.

    SFT sees every safe answer (they anchor the model's answering). Measured on the embedded model
    after SFT (17/40 harmful prompts refused, 5/40 safe ones): DPO on all pairs (2 safe per
    harmful) gave 14/40 and 1/40, on 1.5 safe per harmful (the default) 16/40 and 1/40, on 1 per 1
    22/40 and 4/40 (docs/training.md, "The embedded recipe").
    """
    unsafe = [p for p in pairs if p["prompt_id"].split("#")[0] in harmful]
    safe = [p for p in pairs if p["prompt_id"].split("#")[0] not in harmful]
    # A minimal pair trains both its sides: its safe side is never cut by the ratio.
    twins = [p for p in safe if p["prompt_id"].startswith(MINIMAL_PAIR + "/")]
    others = [p for p in safe if not p["prompt_id"].startswith(MINIMAL_PAIR + "/")]
    plain_unsafe = sum(1 for p in unsafe if not p["prompt_id"].startswith(MINIMAL_PAIR + "/"))
    return unsafe + twins + others[:round(plain_unsafe * safe_ratio)] if unsafe else safe
