"""`charter guard data`: the labelled set a constitution's guard learns from, stored as records.

Records (stage `guard_data`), each with its source, split, clause id and transformation:
- `guard_paraphrase`: the engine's rewordings of a seed (raw; which are kept is decided by
  embedding similarity to the seed, recorded on the examples they become);
- `guard_example`: a request (one or more user turns) as the input guard sees it, label 1 when it
  crosses `clause_id`, with the transformation family and template that made it;
- `guard_answer`: the engine's answer to a plain request, for the output guard: label 1 when the
  request crosses a hard line and the answer does not refuse (the rule classifier decides), so
  the output guard learns what a hard-line answer reads like, not what a refusal reads like.

Everything generated is keyed by its inputs, so a killed run resumes without redoing or
duplicating work; constructed records are keyed the same way.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from charter.data.runner import Stage, Step, chunks, order_key, run_steps, stable_seed
from charter.engines.base import GenerationRequest
from charter.guards.sources import (
    OPERATOR_CONTEXT,
    PARAPHRASE_PROMPT,
    Source,
    assign_splits,
    clean_paraphrase,
    constitution_sources,
    prompt_sources,
    rule_paraphrases,
)
from charter.guards.transforms import transformations
from charter.store import Record, unit_key

STAGE = "guard_data"


@dataclass(frozen=True)
class GuardDataSettings:
    paraphrases: int = 4  # engine rewordings asked per attack / look-alike seed (0: rules only)
    min_similarity: float = 0.75  # below this a 135M rewording has usually changed what it asks (looked at)
    per_family: int = 2  # transformed versions per family of a seed (its rewordings get one)
    answers: bool = True  # ask the engine to answer plain requests (the output guard's data)
    answer_tokens: int = 96
    max_sources: int = 0  # per group of seeds (0: all); for quick runs and tests
    batch_size: int = 16
    seed: int = 0

    def params(self) -> dict:
        return asdict(self)


def build_guard_data(stage: Stage, benign_rows: list[tuple[str, dict]], embedder,
                     settings: GuardDataSettings = GuardDataSettings()) -> dict:
    sources = _cap(constitution_sources(stage.constitution) + prompt_sources(benign_rows), settings.max_sources)
    splits = assign_splits(sources, seed=settings.seed)
    variants = _reworded(stage, sources, embedder, settings)
    examples: list[Record] = []
    for position, source in enumerate(sources):
        examples += _examples(stage, position, source, splits[source.source_id], variants.get(source.source_id, []),
                              settings)
    stage.put(examples)
    stage.stats.add("examples", len(examples))
    openings = _openings(stage, sources, splits, variants, settings)
    stage.put(openings)
    stage.stats.add("constructed_openings", len(openings))
    if settings.answers:
        _answers(stage, sources, splits, variants, settings)
    return stage.finish(sources=len(sources), **{f"{s}_sources": sum(v == s for v in splits.values())
                                                 for s in ("train", "val", "test")})


def _cap(sources: list[Source], limit: int) -> list[Source]:
    if not limit:
        return list({s.source_id: s for s in sources}.values())
    seen: dict[tuple, int] = {}
    out: dict[str, Source] = {}
    for s in sources:
        group = (s.label, s.clause_id, s.kind)
        if seen.get(group, 0) < limit and s.source_id not in out:
            seen[group] = seen.get(group, 0) + 1
            out[s.source_id] = s
    return list(out.values())


def _needs_rewording(source: Source) -> bool:
    # Attacks and look-alikes are few and decide where the boundary lies; ordinary prompts are many.
    return source.label == 1 or source.kind == "lookalike"


def _reworded(stage: Stage, sources: list[Source], embedder, settings: GuardDataSettings) -> dict[str, list[dict]]:
    """Per source: its rewordings, by rule and (kept ones) by the engine, each as
    {text, how, similarity}."""
    chosen = [s for s in sources if _needs_rewording(s)]
    out: dict[str, list[dict]] = {s.source_id: [{"text": t, "how": "rule", "similarity": None}
                                                for t in rule_paraphrases(s.text)] for s in chosen}
    if settings.paraphrases <= 0 or not chosen:
        return out
    requests = {s.source_id: GenerationRequest(
        messages=({"role": "user", "content": PARAPHRASE_PROMPT.format(r=s.text)},), n=settings.paraphrases,
        max_tokens=64, temperature=0.9, seed=stable_seed(settings.seed, "paraphrase", s.source_id)) for s in chosen}
    records: dict[str, Record] = {}
    for n, batch in enumerate(chunks(chosen, settings.batch_size)):
        stage.report("guard data: rewording seeds", n * settings.batch_size, len(chosen))
        keys = [stage.key([s.text], s.clause_id, requests[s.source_id], extra="paraphrase") for s in batch]
        steps = [Step(key, requests[s.source_id], _paraphrase_builder(stage, key, s, requests[s.source_id]))
                 for key, s in zip(keys, batch)]
        found = run_steps(stage, steps)
        records.update({s.source_id: found[step.key] for s, step in zip(batch, steps)})
    stage.report("guard data: rewording seeds", len(chosen), len(chosen))
    candidates = [(s, clean_paraphrase(t)) for s in chosen for t in records[s.source_id].data["completions"]]
    candidates = [(s, t) for s, t in candidates if 3 <= len(t.split()) <= 80 and t.lower() != s.text.lower()]
    if candidates:
        seeds = embedder.encode([s.text for s, _ in candidates])
        rewordings = embedder.encode([t for _, t in candidates])
        for (s, text), similarity in zip(candidates, (seeds * rewordings).sum(axis=1)):
            if settings.min_similarity <= similarity < 0.98:
                out[s.source_id].append({"text": text, "how": "engine", "similarity": round(float(similarity), 4)})
    for s in chosen:  # one of each text, in order
        out[s.source_id] = list({v["text"]: v for v in out[s.source_id]}.values())
    stage.stats.add("engine_rewordings_kept", sum(v["how"] == "engine" for vs in out.values() for v in vs))
    return out


def _paraphrase_builder(stage: Stage, key: str, source: Source, request: GenerationRequest):
    def build(completions) -> list[Record]:
        return [Record(key, "guard_paraphrase", STAGE, order_key(STAGE, 0, "paraphrase", source.source_id),
                       (source.clause_id,) if source.clause_id else (),
                       {"source_id": source.source_id, "seed_text": source.text,
                        "completions": [c.text for c in completions], **stage.provenance(request)})]
    return build


def _examples(stage: Stage, position: int, source: Source, split: str, variants: list[dict],
              settings: GuardDataSettings) -> list[Record]:
    rng = random.Random(stable_seed(settings.seed, "transform", source.source_id))
    items = [(source.text, {"how": "seed", "similarity": None}, settings.per_family)]
    items += [(v["text"], v, 1) for v in variants]
    records = []
    for variant_number, (text, how, per_family) in enumerate(items):
        for item in transformations(text, split, rng, per_family, plain_only=source.kind == OPERATOR_CONTEXT):
            key = unit_key(STAGE, [m["content"] for m in item.messages], source.clause_id, None, None,
                           settings.seed, extra=[source.source_id, item.name])
            data = {"source_id": source.source_id, "split": split, "label": source.label,
                    "kind": source.kind, "origin": source.origin, "family": item.family,
                    "transform": item.name, "variant": variant_number, "reworded_by": how["how"],
                    "similarity": how["similarity"], "request": text, "messages": list(item.messages),
                    "text": item.text,
                    "constitution_hash": stage.constitution_hash, "seed": settings.seed}
            records.append(Record(key, "guard_example", STAGE,
                                  order_key(STAGE, position, f"{variant_number:03d}", item.name),
                                  (source.clause_id,) if source.clause_id else (), data))
    return records


def _openings(stage: Stage, sources: list[Source], splits: dict[str, str], variants: dict[str, list[dict]],
              settings: GuardDataSettings) -> list[Record]:
    """Constructed answer openings (openings.py): an eager one and a refusal for every attack and its
    rewordings, and for every benign seed (where the eager one is a fine answer)."""
    from charter.guards.openings import openings

    records = []
    for position, s in enumerate(sources):
        if s.kind == OPERATOR_CONTEXT:  # a system prompt is not a request anyone answers
            continue
        texts = [s.text] + ([v["text"] for v in variants.get(s.source_id, [])] if s.label == 1 else [])
        for number, text in enumerate(texts):
            pick = stable_seed(settings.seed, "opening", s.source_id, number)
            for kind, answer, template in openings(text, splits[s.source_id], pick):
                label = int(s.label == 1 and kind == "comply")
                key = unit_key(STAGE, [text, answer], s.clause_id, None, None, settings.seed, extra="opening")
                records.append(Record(key, "guard_answer", STAGE, order_key(STAGE, position, "opening", number, kind),
                                      (s.clause_id,) if s.clause_id else (),
                                      {"source_id": s.source_id, "split": splits[s.source_id], "label": label,
                                       "request_label": s.label, "kind": s.kind, "request": text, "answer": answer,
                                       "constructed": kind, "template": template,
                                       "constitution_hash": stage.constitution_hash, "seed": settings.seed}))
    return records


def _answers(stage: Stage, sources: list[Source], splits: dict[str, str], variants: dict[str, list[dict]],
             settings: GuardDataSettings) -> None:
    from charter.evals.classify import classify_refusal

    plain: list[tuple[int, Source, str]] = []
    for position, s in enumerate(sources):
        if s.kind == OPERATOR_CONTEXT:
            continue
        plain.append((position, s, s.text))
        if s.label == 1:  # positives are scarce: answers to the engine's rewordings too
            plain += [(position, s, v["text"]) for v in variants.get(s.source_id, []) if v["how"] == "engine"]

    def request(source: Source, text: str) -> GenerationRequest:
        return GenerationRequest(messages=({"role": "user", "content": text},), n=1,
                                 max_tokens=settings.answer_tokens, temperature=0.7,
                                 seed=stable_seed(settings.seed, "answer", text))

    def builder(key: str, position: int, source: Source, text: str, req: GenerationRequest):
        def build(completions) -> list[Record]:
            answer = completions[0].text.strip()
            verdict = classify_refusal(answer)
            label = int(source.label == 1 and verdict.label == "compliance" and len(answer.split()) >= 8)
            return [Record(key, "guard_answer", STAGE,
                           order_key(STAGE, position, "answer", text[:40]),
                           (source.clause_id,) if source.clause_id else (),
                           {"source_id": source.source_id, "split": splits[source.source_id], "label": label,
                            "request_label": source.label, "kind": source.kind, "request": text,
                            "answer": answer, "refusal_rule": verdict.label, "finish_reason":
                            completions[0].finish_reason, **stage.provenance(req)})]
        return build

    for n, batch in enumerate(chunks(plain, settings.batch_size)):
        stage.report("guard data: answers for the output guard", n * settings.batch_size, len(plain))
        steps = []
        for position, source, text in batch:
            req = request(source, text)
            key = stage.key([text], source.clause_id, req, extra="answer")
            steps.append(Step(key, req, builder(key, position, source, text, req)))
        run_steps(stage, steps)
    stage.report("guard data: answers for the output guard", len(plain), len(plain))
    stage.stats.add("answers", len(plain))
