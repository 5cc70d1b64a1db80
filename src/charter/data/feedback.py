"""RL-CAI (RLAIF): the policy samples two answers, a feedback model picks between them.

The feedback model sees a multiple-choice question built from a sampled principle and the engine's
`choose` gives P(A) and P(B) from log-probabilities: a soft label. Each question is asked in both
orders and the two are averaged; a pair whose verdict flips with the order is marked as showing
position bias. Variants: an ensemble of k principles per pair, chain-of-thought (the feedback model
reasons first, its probabilities clamped to a band), and one general principle ("best for
humanity"). A judgment the engine cannot give is stored as an abstention, never replaced by a guess.
`run_prefs` picks this or the judge-free contrastive mode (the default for the embedded model).

With priority tiers in the constitution, a pair is judged tier by tier, highest first, on
principles sampled from that tier; the first tier whose label is decisive (|p - 0.5| >=
`tier_margin`) decides, and the row records which tier that was. `strict` priorities take that
tier's label as it is; `holistic` ones average it with the undecided tiers above it, each tier
weighing half the one above, so a near-tie on a higher value tempers a lower value's verdict.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from charter.constitution.model import Constitution, Principle
from charter.constitution.render import sample_principles
from charter.data.contrastive import run_contrastive
from charter.data.fewshot import FewShot, load_fewshot
from charter.data.judging import (
    COT_REQUEST,
    GENERAL,
    Label,
    choice_request,
    feedback_examples,
    question_text,
    resolve_judge_mode,
    soft_label,
    written_verdict,
)
from charter.data.prompts import PromptItem, deduplicate
from charter.data.runner import (
    DEFAULT_BATCH,
    Progress,
    Stage,
    Step,
    clean_text,
    for_batches,
    fresh_cache,
    order_key,
    run_steps,
    stable_seed,
    text_id,
)
from charter.engines.base import ChoiceRequest, Engine, GenerationRequest, choose_many
from charter.errors import CharterError, EngineError
from charter.recipes import prefs_mode
from charter.store import Record, RunStore


@dataclass(frozen=True)
class JudgeConfig:
    principles: int = 1  # ensemble size k
    cot: bool = False
    band: tuple[float, float] = (0.4, 0.6)  # CoT probabilities are clamped into this band
    general: bool = False  # one general principle instead of the constitution's
    fewshot_count: int = 2
    cot_tokens: int = 96
    mode: str = "auto"  # how to ask: auto | prefill | letter | generate (data/judging.py)
    tier_margin: float = 0.1  # with priority tiers: how far from 0.5 a tier's label must be to decide

    @property
    def label_source(self) -> str:
        written = ":written" if self.mode == "generate" else ""  # hard labels from written verdicts
        return "ai_feedback" + (":general" if self.general else "") + (":cot" if self.cot else "") + written


def run_prefs(
    store: RunStore,
    constitution: Constitution,
    engine: Engine,
    prompts: Sequence[PromptItem],
    feedback_engine: Engine | None = None,
    mode: str = "auto",
    seed: int = 0,
    limit: int | None = None,
    progress: Progress | None = None,
    **options,
) -> dict:
    """Preference pairs. mode: "contrastive" (labelled by construction), "judge" (AI feedback),
    or "auto": contrastive when the feedback model is the embedded one, which cannot judge."""
    judge = feedback_engine or engine
    mode = prefs_mode(mode, judge)
    common = {"seed": seed, "limit": limit, "progress": progress, **options}
    if mode == "contrastive":
        return run_contrastive(store, constitution, engine, prompts, **common)
    if mode != "judge":
        raise CharterError(f"prefs mode '{mode}' is unknown; use contrastive, judge or auto")
    return run_judged(store, constitution, engine, judge, prompts, **common)


def run_judged(
    store: RunStore,
    constitution: Constitution,
    engine: Engine,
    judge: Engine,
    prompts: Sequence[PromptItem],
    seed: int = 0,
    limit: int | None = None,
    progress: Progress | None = None,
    config: JudgeConfig = JudgeConfig(),
    max_tokens: int = 128,
    temperature: float = 0.9,
    fewshot: FewShot | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> dict:
    """AI-feedback pairs: `engine` samples two answers per prompt, `judge` labels them."""
    fewshot = fewshot or load_fewshot()
    items, duplicates = deduplicate(prompts)
    items = items[:limit] if limit is not None else items
    judge_mode = resolve_judge_mode(config.mode, judge)
    fixed = {"mode": "judge", "judge_mode": judge_mode, "seed": seed, "max_tokens": max_tokens, "temperature": temperature,
             "principles": config.principles, "cot": config.cot, "band": list(config.band),
             "general": config.general, "fewshot": fewshot.digest,
             "fewshot_count": config.fewshot_count, "batch_size": batch_size}
    if _tiers(constitution, config):
        fixed["tier_margin"] = config.tier_margin
    store.begin_stage("prefs", {**fixed, "limit": limit, "prompts": len(items)}, fixed=tuple(fixed))
    stage = Stage("prefs", store, constitution, engine, seed, progress)
    judging = _Judging(stage, judge, config, judge_mode, fewshot, max_tokens, temperature)
    for_batches(stage, list(enumerate(items)), batch_size, judging.run_batch,
                "prefs: sample pairs, ask the feedback model")
    summary = {"prompts": len(items), "duplicates": duplicates, "label_source": config.label_source,
               "judge_mode": judge_mode}
    return stage.finish(mode="judge", **summary)


@dataclass(frozen=True)
class _Question:
    """One multiple-choice question: a pair, a principle, and the order of the two answers."""

    pos: int
    item: PromptItem
    pair: Record  # the "pair_samples" record: two answers to item.prompt
    principle: Principle
    order: str  # "ab": sample 0 is option A; "ba": sample 0 is option B
    mode: str = "prefill"  # how the judge is asked (data/judging.py)

    def text(self) -> str:
        first, second = self.pair.data["texts"][:: 1 if self.order == "ab" else -1]
        return question_text(self.item.prompt, self.principle.text, first, second, self.mode)

    def clause_ids(self) -> tuple[str, ...]:
        return () if self.principle is GENERAL else (self.principle.id,)


def _tiers(constitution: Constitution, config: JudgeConfig) -> list[tuple[str, list[Principle]]]:
    """(tier id, its RL principles) highest first, principles in no tier last; [] without priorities."""
    if config.general or constitution.priorities is None or not constitution.priorities.tiers:
        return []
    pool = {p.id: p for p in constitution.principles_for("rl")}
    tiers = [(t.id, [pool[i] for i in t.principles if i in pool]) for t in constitution.priorities.tiers]
    placed = {i for t in constitution.priorities.tiers for i in t.principles}
    tiers.append(("unranked", [p for p in pool.values() if p.id not in placed]))
    return [(tier_id, principles) for tier_id, principles in tiers if principles]


class _Judging:
    def __init__(self, stage: Stage, judge: Engine, config: JudgeConfig, mode: str, fewshot: FewShot,
                 max_tokens: int, temperature: float):
        self.stage, self.judge, self.config, self.mode = stage, judge, config, mode
        self.judge_fp = judge.fingerprint
        self.max_tokens, self.temperature = max_tokens, temperature
        self.examples = feedback_examples(fewshot, stage.constitution, config.fewshot_count, mode)
        self.tiers = _tiers(stage.constitution, config)

    def run_batch(self, batch: Sequence[tuple[int, PromptItem]]) -> None:
        samples = run_steps(self.stage, [self.sample_step(pos, item) for pos, item in batch])
        pairs = {pos: samples[self.sample_key(item)] for pos, item in batch}
        usable = [(pos, item) for pos, item in batch if pairs[pos].data["usable"]]
        records: list[Record] = []
        if not self.tiers:
            mine = self.ask_round(usable, pairs, lambda item: self.principles(item), records)
            for pos, item in usable:
                records += self.preference(pos, item, pairs[pos], mine[pos])
        else:
            undecided, asked = list(usable), {pos: [] for pos, _ in usable}
            for index, (tier_id, principles) in enumerate(self.tiers):
                mine = self.ask_round(undecided, pairs, lambda item, t=tier_id, ps=principles:
                                      self.tier_principles(item, t, ps), records)
                still = []
                for pos, item in undecided:
                    asked[pos].append((index, tier_id, mine[pos]))
                    if self.decisive(mine[pos]) or index == len(self.tiers) - 1:
                        records += self.preference(pos, item, pairs[pos], [j for *_, js in asked[pos] for j in js],
                                                   tiers=asked[pos])
                    else:
                        still.append((pos, item))
                undecided = still
        self.stage.put(records)

    def ask_round(self, items, pairs, principles_of, records: list[Record]) -> dict[int, list[Record]]:
        """Ask every question (principles x both orders) for these pairs; new judgments join `records`."""
        questions = [_Question(pos, item, pairs[pos], principle, order, self.mode)
                     for pos, item in items for principle in principles_of(item) for order in ("ab", "ba")]
        reasoning = {}
        if self.config.cot:
            reasoning = run_steps(self.stage, [self.cot_step(q) for q in questions], self.judge)
        judgments, stored = self.judge_all(questions, reasoning)
        records += [j for j in judgments.values() if j.key not in stored]
        mine: dict[int, list[Record]] = {pos: [] for pos, _ in items}
        for q in questions:
            mine[q.pos].append(judgments[self.judgment_key(q)])
        return mine

    def decisive(self, judgments: list[Record]) -> bool:
        # Before CoT's clamping: clamped into (0.4, 0.6), no tier could clear a 0.1 margin.
        label = soft_label([j.data for j in judgments])
        return label is not None and abs(label.p_first - 0.5) >= self.config.tier_margin - 1e-9

    def principles(self, item: PromptItem) -> list[Principle]:
        if self.config.general:
            return [GENERAL]
        return sample_principles(self.stage.constitution, self.config.principles, self.stage.seed,
                                 key=f"{item.uid}:judge", use="rl")

    def tier_principles(self, item: PromptItem, tier_id: str, principles: list[Principle]) -> list[Principle]:
        """k principles of one tier, by weight, reproducibly for (seed, prompt, tier)."""
        tier = self.stage.constitution.model_copy(update={"principles": tuple(principles), "priorities": None})
        return sample_principles(tier, self.config.principles, self.stage.seed, key=f"{item.uid}:judge:{tier_id}",
                                 use="rl")

    # -- the two answers ---------------------------------------------------------------------------
    def sample_request(self, item: PromptItem) -> GenerationRequest:
        return GenerationRequest(messages=({"role": "user", "content": item.prompt},), n=2,
                                 max_tokens=self.max_tokens, temperature=self.temperature,
                                 seed=stable_seed(self.stage.seed, item.uid, "samples"))

    def sample_key(self, item: PromptItem) -> str:
        inputs = [item.uid, text_id(item.prompt)]
        return self.stage.key(inputs, None, self.sample_request(item), extra="samples")

    def sample_step(self, pos: int, item: PromptItem) -> Step:
        request, key = self.sample_request(item), self.sample_key(item)

        def build(outs) -> list[Record]:
            texts = [clean_text(o.text, o.finish_reason) for o in outs]
            usable = all(texts) and texts[0] != texts[1]
            if not usable:  # nothing to choose between: an abstention
                self.stage.stats.add("identical_or_empty")
                self.stage.stats.abstentions += 1
            data = {"prompt_id": item.uid, "prompt": item.prompt, "texts": texts,
                    "raw": [o.text for o in outs], "usable": usable,
                    **self.stage.provenance(request)}
            order = order_key("prefs", pos, "samples")
            return [Record(key, "pair_samples", "prefs", order, (), data)]

        return Step(key, request, build)

    # -- the questions -----------------------------------------------------------------------------
    def cot_step(self, q: _Question) -> Step:
        """The feedback model's reasoning before it answers (greedy, so it is reproducible)."""
        question = {"role": "user", "content": q.text() + "\n\n" + COT_REQUEST}
        request = GenerationRequest(messages=(*self.examples, question),
                                    max_tokens=self.config.cot_tokens, temperature=0.0,
                                    seed=stable_seed(self.stage.seed, q.item.uid, q.principle.id,
                                                     q.order, "cot"))
        key = self.stage.key([q.pair.key], q.principle.id, request, extra={"cot": q.order},
                             engine=self.judge_fp)

        def build(outs) -> list[Record]:
            data = {"prompt_id": q.item.uid, "principle_id": q.principle.id, "order": q.order,
                    "text": clean_text(outs[0].text, outs[0].finish_reason),
                    **self.stage.provenance(request, self.judge_fp)}
            order = order_key("prefs", q.pos, "cot", q.principle.id, q.order)
            return [Record(key, "judgment_cot", "prefs", order, q.clause_ids(), data)]

        return Step(key, request, build)

    def judgment_key(self, q: _Question) -> str:
        extra = {"judge": q.order, "config": self.config.label_source}
        if self.mode != "prefill":  # prefill keys stay as they were before the other modes existed
            extra["mode"] = self.mode
        return self.stage.key([q.pair.key], q.principle.id, None, extra=extra, engine=self.judge_fp)

    def judge_all(self, questions: list[_Question],
                  reasoning: dict[str, Record]) -> tuple[dict[str, Record], set[str]]:
        """Judgment records by key: those stored, plus new ones for the questions not yet asked;
        and the keys that were stored already (not written again). Batches may run side by side,
        so nothing here is kept on `self`."""
        keys = [self.judgment_key(q) for q in questions]
        found = self.stage.store.get_many(keys)
        stored = set(found)
        todo = [(k, q) for k, q in zip(keys, questions) if k not in found]
        requests = [self.choice(q, reasoning) for _, q in todo]
        for (key, q), request, answer in zip(todo, requests, self.ask(requests)):
            found[key] = self.judgment(key, q, request, answer)
        return found, stored

    def choice(self, q: _Question, reasoning: dict[str, Record]) -> ChoiceRequest:
        thought = reasoning[self.cot_step(q).key].data["text"] if self.config.cot else None
        return choice_request(self.examples, q.text(), thought, self.mode)

    def ask(self, requests: list[ChoiceRequest]) -> list[dict | str]:
        """Probabilities per request, or the reason it could not be judged (an abstention)."""
        if not requests:
            return []
        started = time.perf_counter()
        fresh_cache(self.judge)
        if self.mode == "generate":
            answers = self.ask_written(requests)
            self.stage.stats.engine_seconds += time.perf_counter() - started
            return answers
        try:
            answers: list[dict | str] = list(choose_many(self.judge, requests))
        except EngineError:  # judge one by one so that one bad question abstains alone
            answers = []
            for request in requests:
                try:
                    answers.append(self.judge.choose(request))
                except EngineError as exc:
                    answers.append(str(exc))
        self.stage.stats.engine_seconds += time.perf_counter() - started
        return answers

    def ask_written(self, requests: list[ChoiceRequest]) -> list[dict | str]:
        """Mode generate: the judge writes its answer (greedy); its first A or B is a 1/0 verdict."""
        asks = [GenerationRequest(messages=r.messages, max_tokens=8, temperature=0.0, seed=0) for r in requests]
        answers: list[dict | str] = []
        for outs in self.judge.generate(asks):
            letter = written_verdict(outs[0].text)
            if letter is None:
                answers.append(f"no A or B at the start of the written answer {outs[0].text[:60]!r}")
            else:
                self.stage.stats.add("written_verdicts")
                answers.append({"A": float(letter == "A"), "B": float(letter == "B")})
        return answers

    def judgment(self, key: str, q: _Question, request: ChoiceRequest, answer: dict | str) -> Record:
        probs = answer if isinstance(answer, dict) else None
        reason = answer if isinstance(answer, str) else None
        if probs is not None and not all(math.isfinite(probs.get(o, math.nan)) for o in "AB"):
            probs, reason = None, f"non-finite probabilities {answer}"
        if probs is None:
            self.stage.stats.add("judgment_abstentions")
        # P(sample 0 is better): option A in order "ab", option B in order "ba".
        p_first = None if probs is None else round(probs["A" if q.order == "ab" else "B"], 6)
        data = {"prompt_id": q.item.uid, "principle_id": q.principle.id, "order": q.order,
                "probs": probs, "p_first": p_first, "abstained": probs is None, "reason": reason,
                "judge_mode": self.mode,
                "question": request.messages[-1]["content"],
                "assistant_prefix": request.assistant_prefix,
                **self.stage.provenance(None, self.judge_fp)}
        order = order_key("prefs", q.pos, "judge", q.principle.id, q.order)
        return Record(key, "judgment", "prefs", order, q.clause_ids(), data)

    def preference(self, pos: int, item: PromptItem, pair: Record, judgments: list[Record],
                   tiers: list[tuple[int, str, list[Record]]] | None = None) -> list[Record]:
        extra = {"pref": self.config.label_source}
        if tiers is not None:
            extra["tiers"] = self.config.tier_margin
        key = self.stage.key([pair.key], None, None, extra=extra, engine=self.judge_fp)
        if self.stage.store.has(key):
            return []
        band = self.config.band if self.config.cot else None
        label = soft_label([j.data for j in judgments], band)
        tiered = {}
        if tiers is not None:
            label, tiered = self.tiered_label(tiers, band)
        if label is None or label.p_first == 0.5:  # nothing judged in both orders, or a tie
            self.stage.stats.add("ties" if label else "unjudged")
            self.stage.stats.abstentions += 1
            return []
        texts, winner = pair.data["texts"], 0 if label.p_first > 0.5 else 1
        score = round(max(label.p_first, 1 - label.p_first), 6)
        data = {"prompt": [{"role": "user", "content": item.prompt}],
                "chosen": [{"role": "assistant", "content": texts[winner]}],
                "rejected": [{"role": "assistant", "content": texts[1 - winner]}],
                "score_chosen": score, "score_rejected": round(1 - score, 6),
                "prompt_id": item.uid, "label_source": self.config.label_source,
                "position_bias": label.flips > 0, "position_flips": label.flips,
                "principles_judged": len(label.principles), "example_kind": "ai_feedback",
                "feedback_engine": self.judge_fp, **tiered,
                **{k: pair.data[k] for k in ("constitution_hash", "engine", "sampling", "seed")}}
        clause_ids = tuple(pid for pid in label.principles if pid != GENERAL.id)
        return [Record(key, "pref", "prefs", order_key("prefs", pos, "pref"), clause_ids, data)]

    def tiered_label(self, tiers: list[tuple[int, str, list[Record]]], band) -> tuple[Label | None, dict]:
        """The deciding tier's label: as it is (strict), or with its strength tempered by the
        undecided tiers above it (holistic: each tier weighs half the one above; the side it chose
        never flips). With no decisive tier: the highest tier that is not a tie (strict), or all
        tiers weighed together (holistic); all ties is no label."""
        labels = [(index, tier_id, soft_label([j.data for j in js], band), soft_label([j.data for j in js]))
                  for index, tier_id, js in tiers]
        labels = [(i, t, lab, raw) for i, t, lab, raw in labels if lab is not None]
        if not labels:
            return None, {}
        decisive = [(i, t, lab) for i, t, lab, raw in labels
                    if abs(raw.p_first - 0.5) >= self.config.tier_margin - 1e-9]
        mode = self.stage.constitution.priorities.mode
        info = {"priority_mode": mode, "decided_by_tier": decisive[0][1] if decisive else None,
                "tiers_asked": [t for _, t, _, _ in labels]}
        if decisive:
            index, _, decided = decisive[0]
            if mode == "strict":
                return decided, info
            above = [lab for i, _, lab, _ in labels if i < index]
            weights = [0.5 ** i for i, _, _, _ in labels if i <= index]
            strength = (decided.p_first - 0.5) * weights[-1] / sum(weights)
            flips = decided.flips + sum(lab.flips for lab in above)
            principles = (*(pid for lab in above for pid in lab.principles), *decided.principles)
            return Label(round(0.5 + strength, 6), flips, principles), info
        if mode == "strict":
            leaning = [lab for _, _, lab, _ in labels if lab.p_first != 0.5]
            return (leaning[0] if leaning else None), info
        weights = [0.5 ** i for i, _, _, _ in labels]
        p = sum(w * lab.p_first for w, (_, _, lab, _) in zip(weights, labels)) / sum(weights)
        flips = sum(lab.flips for _, _, lab, _ in labels)
        principles = tuple(pid for _, _, lab, _ in labels for pid in lab.principles)
        return Label(round(p, 6), flips, principles), info
