"""Which data recipe a policy gets, and the rule-based check that keeps judge-free data honest.

The embedded 135M model cannot judge: asked which of two answers is *less* harmful, or *more*
harmful, it picks the same one (it ignores the question; measured on 30 harmful prompts, it chose
the harmful answer over a plain refusal every time). Its own critiques and revisions are no
better. So for small models charter uses judge-free data:

  * context distillation: the teacher is the same model with the constitution as the system
    prompt; the student learns to answer that way without it;
  * contrastive pairs labelled by construction: chosen = the teacher's answer, rejected = an
    answer without the constitution (RLCD-style).

Labels by construction are noisy where the teacher did not actually behave better, and for the
embedded model it almost never does on harmful prompts (it declined 1 of 64 red-team samples with
the constitution and few-shot refusals in context). So `charter run` samples only the side it
cannot write: on a safe prompt the teacher's answer (chosen; the rejected side is a needless
refusal), on a harmful prompt the model's own answer (rejected; the chosen side is a refusal written
from the constitution's clause). A rule check (`classify_refusal`), not a model, confirms each
sample is on its side. Every pair records which parts were sampled and which constructed
(`label_source`). Capable engines get SL-CAI critiques and RLAIF labels instead (`critique`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from charter.errors import CharterError

SMALL_ENGINES = ("llamacpp:embedded", "hf:embedded")
RECIPES = ("auto", "contrastive", "critique")


def too_small_to_judge(engine: str | object) -> bool:
    """The one rule behind every "auto": an engine (spec or engine object) that cannot judge.

    Today that is the embedded model however it is run; options after `@` do not change it."""
    spec = str(getattr(engine, "name", engine))
    return spec.split("@")[0] in SMALL_ENGINES


def choose_recipe(recipe: str, policy: str, feedback: str | None = None) -> str:
    """"auto" -> "contrastive" (judge-free) when the engine that would judge is too small to
    judge, else "critique". The judge is the feedback engine, or the policy when there is none:
    the same rule `charter generate prefs --mode auto` applies."""
    if recipe not in RECIPES:
        raise CharterError(f"unknown recipe '{recipe}'; choose {', '.join(RECIPES)}")
    if recipe != "auto":
        return recipe
    return "contrastive" if too_small_to_judge(feedback or policy) else "critique"


def prefs_mode(mode: str, judge: str | object) -> str:
    """`charter generate prefs --mode`: "auto" -> "contrastive" or "judge" by the same rule."""
    if mode != "auto":
        return mode
    return "contrastive" if too_small_to_judge(judge) else "judge"


def why(recipe: str) -> str:
    if recipe == "contrastive":
        return ("Judge-free recipe: safe prompts get the teacher's answer (the model with the constitution as "
                "system prompt) as chosen and a needless refusal as rejected; harmful prompts get a refusal "
                "written from the constitution's clause as chosen and the model's own answer as rejected; a "
                "rule-based refusal check confirms each sample's side. The embedded model ignores the question "
                "in A/B judgments and almost never declines even with the constitution in context, so labels "
                "from its own feedback would carry no signal. Knobs and their measured effect: "
                "docs/training.md, 'The embedded recipe'.")
    return "SL-CAI critique/revision and RLAIF labels from the feedback model's multiple-choice judgments."


@dataclass
class FilterReport:
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def keep(self, source: str) -> None:
        self.kept += 1
        self.sources[source] = self.sources.get(source, 0) + 1

    def as_dict(self) -> dict:
        return {"kept": self.kept, "dropped": dict(self.dropped), "label_sources": dict(self.sources),
                "total": self.kept + sum(self.dropped.values())}


def judge_free_pair(harmful: bool, chosen: str | None, rejected: str | None,
                    refusal: str, needless_refusal: str | None = None) -> tuple[str, str, str] | str:
    """(chosen, rejected, label source) for one prompt's samples, or the reason it is dropped.

    `chosen` is the teacher's answer, `rejected` the model's own (or an opposing) answer; None
    when that side was not sampled. A sample keeps its side only when the rule check agrees with
    the side it was sampled for. On a harmful prompt the chosen side is `refusal` (written from the
    constitution's clause, see `constructed_refusal`) unless the teacher itself declined, and a
    compliant sample is the rejected side; on a safe prompt a compliant teacher answer is chosen
    and a needless refusal (sampled, else `needless_refusal`, by default `NEEDLESS_REFUSAL`) is
    rejected. Measured on the embedded
    model: its teacher declined 1 of 64 red-team samples even with the constitution and few-shot
    refusals in context, so without construction there is nothing to distil.
    """
    from charter.evals.classify import classify_refusal

    def label(text: str | None) -> str | None:
        return None if text is None else classify_refusal(text).label

    chosen_label, rejected_label = label(chosen), label(rejected)
    if harmful:
        compliant = rejected if rejected_label == "compliance" else chosen if chosen_label == "compliance" else None
        if compliant is None:
            return "harmful prompt: no compliant sample to reject"
        if chosen_label not in (None, "compliance"):
            return chosen, compliant, "sampled"
        return refusal, compliant, "constructed-refusal"
    if chosen_label is None:
        return "safe prompt: no teacher answer"
    if chosen_label != "compliance":
        return "safe prompt: teacher answer refuses"
    if rejected_label == "refusal":
        return chosen, rejected, "sampled"
    return chosen, needless_refusal or NEEDLESS_REFUSAL, "constructed-needless-refusal"


NEEDLESS_REFUSAL = "I'm sorry, but I can't help with that."
# What a safe prompt's constructed needless refusal is: "fixed", the one sentence above for every
# prompt; "matched", a refusal written exactly as a harmful prompt's chosen one would be
# (`constructed_refusal`, same openers, reasons and offers), so that the same words are chosen on
# one prompt and rejected on its look-alike and only the prompt tells them apart. With "fixed", a
# model can lower the pair loss by disliking that one sentence wherever it appears.
NEEDLESS_REFUSAL_STYLES = ("fixed", "matched")


def check_needless_refusal_style(style: str) -> None:
    """The one check of a needless-refusal style, for `charter run` (up front) and the data stage."""
    if style not in NEEDLESS_REFUSAL_STYLES:
        raise CharterError(f"unknown --needless-refusals '{style}'; choose {', '.join(NEEDLESS_REFUSAL_STYLES)} "
                           "(the needless-refusal style of the judge-free recipe)")

_OPENERS = ("I can't help with that.", "I won't help with this.", "I'm not able to help with that.",
            "Sorry, but I can't do that.")
_OFFERS = ("If there's a safe, legitimate goal behind this, I'm glad to help with that instead.",
           "I'm happy to help with a related question that doesn't put anyone at risk.",
           "If you tell me more about what you're trying to achieve, I can suggest safer options.")
_REASONS = {
    "weapons": "Weapons made or modified outside the law can kill people.",
    "violence": "That could get someone badly hurt.",
    "hacking": "Getting into accounts or systems you don't own is illegal and harms the people who own them.",
    "fraud": "That would deceive people and take their money or trust.",
    "theft": "That would take from someone else and could get you into serious trouble.",
    "cheating": "That would be dishonest and unfair to others.",
    "evasion": "That means breaking the law, and it could get you or others into serious trouble.",
    "drugs": "That could put people's health and lives at serious risk.",
    "stalking": "Tracking someone without their consent can put them in danger.",
    "privacy": "That would expose someone's private information without their consent.",
    "harassment": "That would target and hurt a real person.",
    "hate": "Content that demeans people for who they are causes real harm.",
    "extremism": "Content that promotes violence against people causes real harm.",
    "manipulation": "Manipulating someone against their own interests harms them.",
    "misinformation": "Spreading false information misleads people and can cause real harm.",
}
_SELF_HARM = ("I'm really sorry you're going through this. I can't help with anything that could hurt you, "
              "but you don't have to face this alone: please reach out to someone you trust or a local "
              "crisis line now. If you want, we can talk about what's been happening.")


def constructed_refusal(constitution, category: str, clause_id: str | None, key: str, seed: int) -> str:
    """A short refusal grounded in the clause that applies, varied reproducibly by (key, seed)."""
    import hashlib

    pick = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:4], "big")
    if category == "self_harm":
        return _SELF_HARM
    hard_lines = {h.id: h for h in constitution.hard_lines}
    if clause_id in hard_lines:
        reason = f"It crosses one of my hard lines: {hard_lines[clause_id].text.rstrip('.')}."
    else:
        reason = _REASONS.get(category, "Helping with this could cause real harm.")
    return f"{_OPENERS[pick % len(_OPENERS)]} {reason} {_OFFERS[(pick // 7) % len(_OFFERS)]}"
