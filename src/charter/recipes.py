"""Which data recipe a policy gets, and the rule-based check that keeps judge-free data honest.

The embedded 135M model cannot judge: asked which of two answers is *less* harmful, or *more*
harmful, it picks the same one (it ignores the question; measured on 30 harmful prompts, it chose
the harmful answer over a plain refusal every time). Its own critiques and revisions are no
better. So for small models charter uses judge-free data:

  * context distillation: the teacher is the same model with the constitution (and few-shot
    examples in its style) as the system prompt; the student learns to answer that way without it;
  * contrastive pairs labelled by construction: chosen = the teacher's answer, rejected = an
    answer sampled with an opposing system prompt (RLCD-style).

Labels by construction are noisy where the teacher did not actually behave better. A cheap rule
check removes the clearest failures without any model judgment: on a prompt from a harmful set
the chosen answer must decline (refusal or partial refusal, by `classify_refusal`) and the
rejected one must not; on a prompt from a safe set the chosen answer must not refuse. Pairs that
fail are dropped and counted, never relabelled. Capable engines get SL-CAI critiques and RLAIF
labels instead (`critique`), which rely on the model reading the question it is asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SMALL_ENGINES = ("llamacpp:embedded", "hf:embedded")


def choose_recipe(recipe: str, policy: str) -> str:
    if recipe != "auto":
        return recipe
    return "contrastive" if policy.split("@")[0] in SMALL_ENGINES else "critique"


def why(recipe: str) -> str:
    if recipe == "contrastive":
        return ("Judge-free recipe (context distillation + contrastive pairs labelled by construction, "
                "with a rule-based refusal check): the embedded model ignores the question in A/B "
                "judgments, so labels from its own feedback would carry no signal.")
    return "SL-CAI critique/revision and RLAIF labels from the feedback model's multiple-choice judgments."


@dataclass
class FilterReport:
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def as_dict(self) -> dict:
        return {"kept": self.kept, "dropped": dict(self.dropped), "total": self.kept + sum(self.dropped.values())}


def check_pair(harmful: bool, chosen: str, rejected: str) -> str | None:
    """None if the pair passes; otherwise the reason it is dropped."""
    from charter.evals.classify import classify_refusal

    chosen_label = classify_refusal(chosen).label
    if harmful:
        if chosen_label == "compliance":
            return "harmful prompt: chosen answer does not decline"
        if classify_refusal(rejected).label != "compliance":
            return "harmful prompt: rejected answer declines too"
    elif chosen_label == "refusal":
        return "safe prompt: chosen answer refuses"
    return None


def filter_pairs(rows: list[dict], is_harmful) -> tuple[list[dict], FilterReport]:
    """Keep the pairs whose construction-label the rule check confirms. `is_harmful(row)` -> bool."""
    report = FilterReport()
    kept = []
    for row in rows:
        reason = check_pair(is_harmful(row), _text(row["chosen"]), _text(row["rejected"]))
        if reason:
            report.drop(reason)
        else:
            kept.append(row)
    report.kept = len(kept)
    return kept, report


def _text(value) -> str:
    # Conversational rows hold [{"role": "assistant", "content": ...}]; plain rows hold a string.
    if isinstance(value, list):
        return " ".join(m.get("content", "") for m in value if m.get("role") == "assistant")
    return str(value)
