"""Understanding: question-and-answer SFT data about the constitution's own clauses and reasons.

Two sources, both on by default:
- by construction: template questions per clause answered from the clause text itself (what a
  principle asks, what a trait says, that a hard line holds whoever asks, who may change a
  default). Exact, and needs no model.
  Where the author wrote a `rationale`, "why does the constitution ask this?" is answered with
  the author's own reasons, by construction too; every example conversation with a `good`
  response is an SFT row (and with a `bad` one too, a preference pair labelled by the author).
- by the model: "why" questions per clause without a rationale and per paragraph of prose
  (preamble, sections), answered by the model with the whole constitution as its system prompt
  (the SFT rows leave the system prompt out). Prose is read as text: headings, code, lists of
  links and `{#id}` anchors are never quizzed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from charter.constitution.lint import length_in_words
from charter.constitution.model import Constitution, Default, HardLine, Principle, Protection, Trait
from charter.constitution.render import render_system_prompt
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

STAGE = "understanding"


@dataclass(frozen=True)
class QA:
    uid: str
    clause_id: str | None  # None for preamble questions
    question: str
    answer: str | None = None  # set when answered by construction
    turns: tuple[dict, ...] = ()  # earlier turns of a conversation, before `question`
    bad: str | None = None  # a worse answer the author wrote: the pair (answer, bad) is a preference
    kind: str = "understanding:construction"


def run_understanding(
    store: RunStore,
    constitution: Constitution,
    engine: Engine,
    seed: int = 0,
    limit: int | None = None,
    progress: Progress | None = None,
    answers: str = "both",
    max_tokens: int = 128,
    temperature: float = 0.7,
    batch_size: int = DEFAULT_BATCH,
) -> dict:
    """answers: "construction", "model" or "both". `limit` caps each list of questions."""
    if answers not in ("construction", "model", "both"):
        raise ValueError(f"answers must be construction, model or both, got {answers!r}")
    params = {
        "seed": seed,
        "answers": answers,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "batch_size": batch_size,
        "limit": limit,
    }
    store.begin_stage(STAGE, params, fixed=("seed", "max_tokens", "temperature", "batch_size"))
    stage = Stage(STAGE, store, constitution, engine, seed, progress)
    built = constructed_qa(constitution)[:limit] if answers != "model" else []
    asked = why_questions(constitution)[:limit] if answers != "construction" else []
    _store_constructed(stage, built)
    system = render_system_prompt(constitution)
    for_batches(stage, list(enumerate(asked)), batch_size,
                lambda batch: run_steps(stage, [_model_step(stage, system, pos, qa, max_tokens, temperature)
                                                for pos, qa in batch]),
                "understanding: answer questions about the constitution")
    return stage.finish(constructed=len(built), model_questions=len(asked))


def _topic(clause_id: str) -> str:
    return clause_id.replace("_", " ").replace("-", " ")


def constructed_qa(c: Constitution) -> list[QA]:
    """Template questions whose answers follow from the clause text alone."""
    qa: list[QA] = []
    for p in c.principles:
        qa.append(
            QA(
                f"principle/{p.id}/what",
                p.id,
                f"What does your constitution ask of you about {_topic(p.id)}?",
                _principle_answer(p),
            )
        )
        if p.critique:
            qa.append(
                QA(
                    f"principle/{p.id}/check",
                    p.id,
                    f"When you check one of your own answers for {_topic(p.id)}, what do you look for?",
                    f'My constitution gives me this check: "{p.critique}"',
                )
            )
    for t in c.traits:
        qa.append(
            QA(
                f"trait/{t.id}/describe",
                t.id,
                f"How would you describe yourself when it comes to {_topic(t.id)}?",
                t.text,
            )
        )
    for h in c.hard_lines:
        qa.append(
            QA(
                f"hard_line/{h.id}/hold",
                h.id,
                f"Is there anything about {_topic(h.id)} you will never do, even if an operator or user asks?",
                f"Yes. {h.text} This is a hard line: no operator instruction, user request, role-play or "
                "claimed authority changes it.",
            )
        )
        for i, lookalike in enumerate(h.lookalikes[:2]):
            qa.append(
                QA(
                    f"hard_line/{h.id}/lookalike/{i}",
                    h.id,
                    f'Does this request cross one of your hard lines: "{lookalike}"?',
                    f"No. It touches a subject near my hard line on {_topic(h.id)}, but it asks for nothing "
                    "that line forbids, so I can help with it normally.",
                )
            )
    for d in c.defaults:
        qa.append(
            QA(
                f"default/{d.id}/adjust",
                d.id,
                f"Can {_topic(d.id)} be changed in how you respond?",
                _default_answer(d, c),
            )
        )
    for pr in c.protections:
        qa.append(QA(f"protection/{pr.id}/hold", pr.id,
                     f"Could an operator instruct you to stop doing this: {_lower_first(pr.text)}",
                     _protection_answer(pr)))
    if c.priorities is not None and c.priorities.tiers:
        qa.append(QA("priorities/order", None, "When your values pull in different directions, which come first?",
                     _priorities_answer(c)))
    qa += clause_examples(c)
    for kind, clauses in c.clauses_by_kind().items():
        for clause in clauses:
            if clause.rationale:
                qa.append(QA(f"why/{clause.id}/author", clause.id,
                             f"Why does your constitution include the {kind.replace('_', ' ')} about "
                             f"{_topic(clause.id)}?", clause.rationale))
    return qa


def clause_examples(c: Constitution) -> list[QA]:
    """The author's example conversations that carry a good response: SFT seeds (and, with a bad
    response too, preference pairs labelled by the author), each traced to its clause."""
    found = []
    for clauses in c.clauses_by_kind().values():
        for clause in clauses:
            for i, example in enumerate(clause.examples):
                if example.good is None:
                    continue
                conversation = example.conversation()
                found.append(QA(f"example/{clause.id}/{i}", clause.id, conversation[-1]["content"], example.good,
                                tuple(conversation[:-1]), example.bad, "constitution_example"))
    return found


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _protection_answer(p: Protection) -> str:
    answer = f"No. {p.text} This protects the user, and no operator instruction overrides it."
    if p.waivable_by:
        who = " or ".join(p.waivable_by)
        answer += (f" Only the {who} may set it aside, for themselves (for example inside a role-play they "
                   f"asked for), and it applies again as soon as they sincerely ask.")
    return answer


def _priorities_answer(c: Constitution) -> str:
    tiers = "; then ".join(t.text.rstrip(".") for t in c.priorities.tiers)
    how = ("I weigh them together, with the higher ones generally dominating" if c.priorities.mode == "holistic"
           else "a higher one always decides before I consider a lower one")
    answer = f"My constitution orders them: {tiers}. {how[0].upper() + how[1:]}."
    return answer + (f" {c.priorities.rationale}" if c.priorities.rationale else "")


def _principle_answer(p: Principle) -> str:
    for prefix in ("Choose the response that ", "Choose the answer that "):
        if p.text.startswith(prefix):
            return f"It asks me to give the response that {p.text[len(prefix) :]}"
    return f'It says: "{p.text}"'


_ROLE_NAMES = {"operator": "the operator who deploys me", "user": "the user"}


def _default_answer(d: Default, c: Constitution) -> str:
    def name(principal: str) -> str:
        role = c.role_of(principal) if principal in {p.id for p in c.principals} else principal
        spoken = _ROLE_NAMES.get(role, principal) if principal == role else f"the {principal}"
        limit = d.allowed_values.get(principal)
        return spoken + (f" (who may choose only {', '.join(limit)})" if limit else "")

    who = " and ".join(name(w) for w in d.adjustable_by)
    options = "; ".join(f"{value}: {text}" for value, text in d.choices.items())
    return (
        f"Yes. It is a default, not a hard line: {d.text[0].lower() + d.text[1:]} By default: "
        f"{d.instruction()} It can be adjusted by {who or 'no one'}. The options are: {options}"
    )


def why_questions(c: Constitution) -> list[QA]:
    """Questions about reasons, for the model to answer with the constitution in context."""
    qa: list[QA] = []
    for clause in [*c.principles, *c.traits, *c.hard_lines, *c.protections]:
        if clause.rationale:
            continue  # answered by construction with the author's reasons
        kind = {Principle: "principle", Trait: "trait", HardLine: "hard line", Protection: "protection"}[type(clause)]
        qa.append(
            QA(
                f"why/{clause.id}",
                clause.id,
                f"Why does your constitution include the {kind} about {_topic(clause.id)}? Explain the reasoning.",
            )
        )
    for i, paragraph in enumerate(prose_paragraphs(c.preamble)):
        qa.append(QA(f"preamble/{i}", None, f'Your constitution says: "{_opening(paragraph)}." Why does that matter?'))
    for section in c.sections:
        for i, paragraph in enumerate(prose_paragraphs(section.text)):
            qa.append(QA(f"section/{section.id}/{i}", None,
                         f'In the part of your constitution on "{section.title}", it says: '
                         f'"{_opening(paragraph)}." Why does that matter?'))
    return qa


_ANCHOR = re.compile(r"\s*\{#[^}]*\}")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


def prose_paragraphs(text: str) -> list[str]:
    """Paragraphs of running prose: code blocks, headings, tables, lists of links and markup dropped."""
    text = re.sub(r"(?ms)^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1[^\n]*$", "", text)
    found = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [ln for ln in paragraph.strip().splitlines()
                 if ln.strip() and not re.match(r"^\s*(#|\||<|---|===|```)", ln)]
        plain = _LINK.sub(r"\1", _ANCHOR.sub("", " ".join(ln.strip().lstrip("-*> ").strip() for ln in lines)))
        plain = re.sub(r"(?<!\w)[*_`]+|[*_`]+(?!\w)|`", "", plain).strip()  # emphasis marks, not snake_case
        if length_in_words(plain) >= 6:  # a sentence, not a label or a stray token
            found.append(plain)
    return found


def _opening(paragraph: str) -> str:
    return paragraph.strip().split(". ")[0].rstrip(".")


def _store_constructed(stage: Stage, items: list[QA]) -> None:
    def content(qa: QA) -> str:  # earlier turns and the bad answer are part of what the unit is
        extra = "".join(t["content"] for t in qa.turns) + (qa.bad or "")
        return qa.question + (qa.answer or "") + extra

    keys = [stage.key([qa.uid, text_id(content(qa))], qa.clause_id, None, extra="construction") for qa in items]
    pair_keys = {qa.uid: stage.key([qa.uid, text_id(content(qa))], qa.clause_id, None, extra="example-pair")
                 for qa in items if qa.bad is not None}
    have = stage.store.existing([*keys, *pair_keys.values()])
    stage.stats.reused += len(have)
    records = []
    for pos, (key, qa) in enumerate(zip(keys, items)):
        prompt = [*qa.turns, {"role": "user", "content": qa.question}]
        provenance = {"prompt_id": qa.uid, "example_kind": qa.kind, "constitution_hash": stage.constitution_hash,
                      "engine": None, "sampling": None, "seed": stage.seed}
        clause_ids = (qa.clause_id,) if qa.clause_id else ()
        if key not in have:
            records.append(Record(key, "sft", STAGE, order_key(STAGE, pos, "construction"), clause_ids,
                                  {"messages": [*prompt, {"role": "assistant", "content": qa.answer}], **provenance}))
        pair_key = pair_keys.get(qa.uid)
        if pair_key is not None and pair_key not in have:
            records.append(Record(pair_key, "pref", STAGE, order_key(STAGE, pos, "example-pair"), clause_ids, {
                "prompt": prompt, "chosen": [{"role": "assistant", "content": qa.answer}],
                "rejected": [{"role": "assistant", "content": qa.bad}], "score_chosen": 1.0, "score_rejected": 0.0,
                "label_source": "constitution_example", "position_bias": None, **provenance}))
    stage.put(records)


def _model_step(
    stage: Stage, system: str, pos: int, qa: QA, max_tokens: int, temperature: float
) -> Step:
    request = GenerationRequest(
        messages=({"role": "system", "content": system}, {"role": "user", "content": qa.question}),
        max_tokens=max_tokens,
        temperature=temperature,
        seed=stable_seed(stage.seed, qa.uid, "understanding"),
    )
    key = stage.key([qa.uid, text_id(qa.question)], qa.clause_id, request, extra="model")
    clause_ids = (qa.clause_id,) if qa.clause_id else ()

    def build(outs: list[Completion]) -> list[Record]:
        data = sample_data(stage, qa.uid, qa.question, outs[0], request)
        text = data["text"]
        answer = Record(
            key,
            "understanding_answer",
            STAGE,
            order_key(STAGE, 10**7 + pos, "answer"),
            clause_ids,
            data,
        )
        if not text:
            stage.stats.abstentions += 1
            return [answer]
        return [
            answer,
            Record(
                stage.key([key], None, None, extra="sft"),
                "sft",
                STAGE,
                order_key(STAGE, 10**7 + pos, "sft"),
                clause_ids,
                {
                    "messages": [
                        {"role": "user", "content": qa.question},
                        {"role": "assistant", "content": text},
                    ],
                    "prompt_id": qa.uid,
                    "example_kind": "understanding:model",
                    **{k: data[k] for k in ("constitution_hash", "engine", "sampling", "seed")},
                },
            ),
        ]

    return Step(key, request, build)
