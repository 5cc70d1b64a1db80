"""SL-CAI: answer -> (critique -> revision) x rounds, batched across prompts.

For each work batch of prompts: every prompt's answer in one engine call; then, per round, every
critique in one call and every revision in one call. Each round samples one principle per prompt,
seeded by (run seed, prompt, round), so a resumed run critiques with the same principles. The
critique and revision requests start with the same few-shot chains, a prefix the engine shares
across the batch. Helpful prompts (mode "answer") are answered without critique so the SFT data
keeps plain helpfulness. The whole chain is stored; the SFT row is the prompt and final revision.
"""

from __future__ import annotations

from collections.abc import Sequence

from charter.constitution.model import Constitution, Principle
from charter.constitution.render import sample_principles
from charter.data.fewshot import (
    FewShot,
    critique_request,
    load_fewshot,
    revision_request,
    sl_prefix,
)
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

STAGE = "sl"


def run_sl(
    store: RunStore,
    constitution: Constitution,
    engine: Engine,
    prompts: Sequence[PromptItem],
    rounds: int = 2,
    seed: int = 0,
    limit: int | None = None,
    progress: Progress | None = None,
    max_tokens: int = 128,
    temperature: float = 0.7,
    fewshot: FewShot | None = None,
    fewshot_count: int = 2,
    batch_size: int = DEFAULT_BATCH,
) -> dict:
    """Run SL-CAI over `prompts`; return the stage summary. Resumes from whatever the store holds."""
    fewshot = fewshot or load_fewshot()
    items, duplicates = deduplicate(prompts)
    items = items[:limit] if limit is not None else items
    fixed = {"rounds": rounds, "seed": seed, "max_tokens": max_tokens, "temperature": temperature,
             "fewshot": fewshot.digest, "fewshot_count": fewshot_count, "batch_size": batch_size}
    store.begin_stage(STAGE, {**fixed, "limit": limit, "prompts": len(items)}, fixed=tuple(fixed))
    chain = _Chain(
        Stage(STAGE, store, constitution, engine, seed, progress),
        fewshot,
        fewshot_count,
        rounds,
        max_tokens,
        temperature,
    )
    for_batches(chain.stage, list(enumerate(items)), batch_size, chain.run_batch,
                "sl: answer, critique, revise")
    return chain.stage.finish(prompts=len(items), duplicates=duplicates, rounds=rounds)


class _Chain:
    def __init__(
        self,
        stage: Stage,
        fewshot: FewShot,
        fewshot_count: int,
        rounds: int,
        max_tokens: int,
        temperature: float,
    ):
        self.stage, self.fewshot, self.rounds = stage, fewshot, rounds
        self.max_tokens, self.temperature = max_tokens, temperature
        self.prefix = sl_prefix(fewshot, stage.constitution, fewshot_count)

    def request(self, messages: list[dict], *seed_parts) -> GenerationRequest:
        return GenerationRequest(
            messages=tuple(messages),
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            seed=stable_seed(self.stage.seed, *seed_parts),
        )

    def principles(self, item: PromptItem) -> list[Principle]:
        return [
            sample_principles(
                self.stage.constitution, 1, self.stage.seed, key=f"{item.uid}:round{r}", use="sl"
            )[0]
            for r in range(1, self.rounds + 1)
        ]

    def run_batch(self, batch: Sequence[tuple[int, PromptItem]]) -> None:
        answers = run_steps(self.stage, [self.answer_step(pos, item) for pos, item in batch])
        last = {pos: answers[self.answer_key(item)] for pos, item in batch}
        chains = [
            (pos, item, self.principles(item)) for pos, item in batch if item.mode == "critique"
        ]
        for r in range(1, self.rounds + 1):
            steps = {
                pos: self.critique_step(pos, item, ps[r - 1], r, last[pos])
                for pos, item, ps in chains
            }
            critiques = run_steps(self.stage, list(steps.values()))
            steps_r = {
                pos: self.revision_step(pos, item, ps, r, last[pos], critiques[steps[pos].key])
                for pos, item, ps in chains
            }
            revisions = run_steps(self.stage, list(steps_r.values()))
            for pos, _, _ in chains:
                last[pos] = revisions[steps_r[pos].key]

    # -- steps -------------------------------------------------------------------------------------
    def answer_key(self, item: PromptItem) -> str:
        return self.stage.key(
            [item.uid, text_id(item.prompt)], None, self.answer_request(item), extra="answer"
        )

    def answer_request(self, item: PromptItem) -> GenerationRequest:
        return self.request([{"role": "user", "content": item.prompt}], item.uid, "answer")

    def answer_step(self, pos: int, item: PromptItem) -> Step:
        request = self.answer_request(item)
        key = self.answer_key(item)

        def build(outs: list[Completion]) -> list[Record]:
            record = self.record(
                key, pos, item, "answer", 0, None, request, outs[0], labels=("Answer:",)
            )
            if item.mode != "critique":
                return [record, self.sft(record, pos, item, [], "helpful")]
            return [record]

        return Step(key, request, build)

    def critique_step(
        self, pos: int, item: PromptItem, principle: Principle, r: int, last: Record
    ) -> Step:
        messages = self.prefix + [
            {"role": "user", "content": item.prompt},
            {"role": "assistant", "content": last.data["text"]},
            {"role": "user", "content": critique_request(principle.critique)},
        ]
        request = self.request(messages, item.uid, "critique", r)
        key = self.stage.key(
            [last.key],
            principle.id,
            request,
            r,
            {"step": "critique", "fewshot": self.fewshot.digest},
        )
        return Step(
            key,
            request,
            lambda outs: [
                self.record(
                    key,
                    pos,
                    item,
                    "critique",
                    r,
                    principle,
                    request,
                    outs[0],
                    labels=("Critique:",),
                )
            ],
        )

    def revision_step(
        self,
        pos: int,
        item: PromptItem,
        principles: list[Principle],
        r: int,
        last: Record,
        critique: Record,
    ) -> Step:
        principle = principles[r - 1]
        messages = self.prefix + [
            {"role": "user", "content": item.prompt},
            {"role": "assistant", "content": last.data["text"]},
            {"role": "user", "content": critique_request(principle.critique)},
            {"role": "assistant", "content": critique.data["text"]},
            {"role": "user", "content": revision_request(principle.revision)},
        ]
        request = self.request(messages, item.uid, "revision", r)
        key = self.stage.key(
            [critique.key],
            principle.id,
            request,
            r,
            {"step": "revision", "fewshot": self.fewshot.digest},
        )

        def build(outs: list[Completion]) -> list[Record]:
            record = self.record(
                key, pos, item, "revision", r, principle, request, outs[0], labels=("Revision:",)
            )
            if not record.data["text"]:  # an empty revision keeps the answer it failed to revise
                record.data.update(text=last.data["text"], empty=True)
                self.stage.stats.add("empty_revisions")
            if r < self.rounds:
                return [record]
            return [record, self.sft(record, pos, item, [p.id for p in principles], "sl_revision")]

        return Step(key, request, build)

    # -- records -------------------------------------------------------------------------------
    def record(
        self,
        key: str,
        pos: int,
        item: PromptItem,
        step: str,
        r: int,
        principle: Principle | None,
        request: GenerationRequest,
        out: Completion,
        labels: tuple[str, ...],
    ) -> Record:
        data = {
            "prompt_id": item.uid,
            "prompt": item.prompt,
            "step": step,
            "round": r,
            "principle_id": principle.id if principle else None,
            # the request without the shared few-shot prefix (its digest is in the key)
            "request": list(request.messages[len(self.prefix) :])
            if step != "answer"
            else list(request.messages),
            "raw": out.text,
            "text": clean_text(out.text, out.finish_reason, labels),
            "finish_reason": out.finish_reason,
            "fewshot": self.fewshot.digest,
            **self.stage.provenance(request),
        }
        clause_ids = (principle.id,) if principle else ()
        return Record(
            key, f"sl_{step}", STAGE, order_key(STAGE, pos, f"{r:02d}", step), clause_ids, data
        )

    def sft(
        self, final: Record, pos: int, item: PromptItem, clause_ids: list[str], example_kind: str
    ) -> Record:
        data = {
            "messages": [
                {"role": "user", "content": item.prompt},
                {"role": "assistant", "content": final.data["text"]},
            ],
            "prompt_id": item.uid,
            "example_kind": example_kind,
            "chain_key": final.key,
            **{k: final.data[k] for k in ("constitution_hash", "engine", "sampling", "seed")},
        }
        key = self.stage.key([final.key], None, None, extra="sft")
        return Record(
            key, "sft", STAGE, order_key(STAGE, pos, "sft"), tuple(dict.fromkeys(clause_ids)), data
        )
