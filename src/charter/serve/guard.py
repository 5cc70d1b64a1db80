"""Hard-line guards: a fast similarity pass, then a judge for what the fast pass cannot settle.

How the two combine, per hard line (thresholds in GuardConfig):

1. Fast pass (similarity.py + rules.py) on every piece of the text and on its decoded readings
   (base64, leetspeak, spaced letters). For each line: positive (nearest crossing example),
   negative (nearest look-alike), margin = positive - negative.
2. Clear hit -> block, no judge: positive >= hit_similarity and margin >= hit_margin; or, when the
   request uses jailbreak framing (persona, "ignore your rules", claimed authority, hypotheticals,
   encodings), the lower framed_hit_* thresholds. Benign users rarely wrap a request that is
   already near a hard line in jailbreak framing; attackers routinely do.
3. Clearly benign -> pass, no judge: positive < band_similarity, or margin < band_margin while
   positive < near_example (a text that close to a crossing example is never cleared by a
   look-alike alone: embeddings do not see negation, "with no sexual content" reads as "sexual").
4. Everything between is uncertain: the judge is asked about the (at most max_judged_lines)
   uncertain lines, most suspicious first; P(Yes) >= judge_threshold blocks. An unscored judge
   (engine without log-probabilities) blocks: the guard fails closed. `uncertain="block"` or
   `"allow"` skips the judge and decides the band outright.

Outputs use the same steps on windows of the answer with stricter output_* thresholds (an answer
that discusses a topic is further from the crossing *requests* than a request is), and an output
judge question about the response itself.

With a trained guard (`charter guard train`, `charter serve --guard`), its classifier replaces
step 1-3 for the hard lines it was trained on: a score at or over a line's block threshold blocks
(by "classifier"), a score in the band below it is uncertain and goes to the judge as in step 4,
anything lower passes. Lines the classifier does not know (an operator's own) keep the similarity
pass. Every verdict names the classifier version that decided.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from charter.constitution.model import Constitution
from charter.errors import CharterError
from charter.serve import judge, rules
from charter.serve.similarity import Embedder, HardLineIndex, LineScore
from charter.serve.slots import EngineSlot

Stage = Literal["input", "output"]
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass(frozen=True)
class GuardConfig:
    hit_similarity: float = 0.60
    hit_margin: float = 0.15
    framed_hit_similarity: float = 0.40
    framed_hit_margin: float = 0.05
    band_similarity: float = 0.35
    band_margin: float = 0.0
    near_example: float = 0.62
    output_hit_similarity: float = 0.70
    output_hit_margin: float = 0.25
    output_band_similarity: float = 0.45
    judge_threshold: float = 0.5
    max_judged_lines: int = 2
    uncertain: Literal["judge", "block", "allow"] = "judge"
    window_chars: int = 400
    window_step: int = 200
    # An overlay's sentence is refused by the trained classifier only at this score or above (and its
    # calibrated threshold): operators' system prompts are not the requests it was calibrated on, and
    # an operator whose context is refused cannot start. Chosen on tests/fixtures/overlay_dev*.jsonl.
    overlay_min_score: float = 0.9


@dataclass
class Verdict:
    """What a guard decided, with everything an auditor needs to see why (no message text)."""

    stage: Stage
    blocked: bool = False
    clause_id: str | None = None
    by: str = "fast"  # fast | judge | policy
    uncertain: list[str] = field(default_factory=list)
    scores: dict[str, list[float]] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    judge: dict[str, float | None] = field(default_factory=dict)
    classifier: str | None = None  # the trained guard's version, when one scored this text
    ms: float = 0.0

    def as_record(self) -> dict:
        return asdict(self)


class Guard:
    def __init__(self, constitution: Constitution, embedder: Embedder, judge_slot: EngineSlot | None,
                 config: GuardConfig = GuardConfig(), classifier=None):
        self.constitution = constitution
        self.embedder = embedder
        self.classifier = classifier  # a trained GuardClassifier (charter.guards), or None
        known = set(classifier.lines) if classifier is not None else set()
        present = {h.id for h in constitution.hard_lines}
        if known - present:
            raise CharterError(f"the trained guard {classifier.version} enforces hard line(s) "
                               f"{', '.join(sorted(known - present))} that this constitution does not have; train a "
                               f"guard for this constitution with `charter guard data` and `charter guard train`")
        # Lines the classifier was not trained on (an operator's own) keep the similarity pass.
        self.index = HardLineIndex(tuple(h for h in constitution.hard_lines if h.id not in known), embedder)
        self.all_lines = {h.id: h for h in constitution.hard_lines}
        self.judge_slot = judge_slot
        self.config = config

    # -- inputs ---------------------------------------------------------------------------------
    def check_input(self, messages: list[dict]) -> Verdict:
        started = time.perf_counter()
        pieces = input_pieces(messages, self.config)
        verdict = self.screen(pieces, "input", rules.framing_flags(" ".join(pieces)))
        if verdict.uncertain and not verdict.blocked:
            conversation = transcript(messages)
            self._settle(verdict, lambda line: judge.input_question(line, conversation))
        verdict.ms = round((time.perf_counter() - started) * 1000, 2)
        return verdict

    def crossing(self, sentence: str) -> str | None:
        """The hard line one sentence of an overlay would cross, read as a request: the fast pass
        alone (the trained classifier, or the similarity pass), no judge, since overlays are checked
        when an operator is loaded and on requests that carry a user overlay."""
        if self.classifier is not None:
            scores = self.classifier.text_scores("input", self.embedder, [sentence])[0]
            floor = np.maximum(self.classifier.stages["input"].block, self.config.overlay_min_score)
            over = [(score, line) for line, score, low in zip(self.classifier.lines, scores, floor) if score >= low]
            if over:
                return max(over)[1]
        if not self.index.hard_lines:
            return None
        verdict = Verdict("input", flags=rules.framing_flags(sentence))
        verdict = self._similarity_pass(output_pieces(sentence, self.config), "input", verdict)
        return verdict.clause_id if verdict.blocked else None

    # -- outputs --------------------------------------------------------------------------------
    def check_output(self, answer: str, messages: list[dict]) -> Verdict:
        started = time.perf_counter()
        verdict = self.screen(output_pieces(answer, self.config), "output", [])
        if verdict.uncertain and not verdict.blocked:
            self.judge_output(verdict, answer, messages)
        verdict.ms = round((time.perf_counter() - started) * 1000, 2)
        return verdict

    def judge_output(self, verdict: Verdict, answer: str, messages: list[dict]) -> Verdict:
        request = last_user(messages)
        return self._settle(verdict, lambda line: judge.output_question(line, request, answer))

    # -- the two passes -------------------------------------------------------------------------
    def screen(self, pieces: list[str], stage: Stage, flags: list[str]) -> Verdict:
        """The fast pass alone: block clear hits, mark the uncertain lines, clear the rest."""
        verdict = Verdict(stage, flags=flags)
        if self.classifier is not None and self._classify_trained(pieces, stage, verdict):
            return verdict
        return self._similarity_pass(pieces, stage, verdict)

    def _similarity_pass(self, pieces: list[str], stage: Stage, verdict: Verdict) -> Verdict:
        """The embedding pass over the lines no trained classifier knows (all, without one)."""
        flags = verdict.flags
        texts = [rules.normalise(p) for p in pieces]
        texts += [decoded for text in list(texts) for _, decoded in rules.decodings(text)]
        scores = self.index.score(texts) if self.index.hard_lines else {}
        verdict.scores.update({k: [s.positive, s.negative] for k, s in scores.items()})
        ranked = sorted(scores.items(), key=lambda item: -(item[1].positive + item[1].margin))
        for line_id, score in ranked:
            kind = self._classify(score, stage, bool(flags))
            if kind == "hit":
                verdict.blocked, verdict.clause_id, verdict.by = True, line_id, "fast"
                return verdict
            if kind == "uncertain":
                verdict.uncertain.append(line_id)
        return verdict

    def _classify_trained(self, pieces: list[str], stage: Stage, verdict: Verdict) -> bool:
        """The trained classifier's pass over its lines; True when it blocked. Scores are recorded
        as [score, block threshold] per line."""
        vectors = self.classifier.piece_vectors(self.embedder, pieces)
        blocked, uncertain, best = self.classifier.decide(stage, vectors)
        block = self.classifier.stages[stage].block
        verdict.classifier = self.classifier.version
        verdict.scores.update({line: [score, round(float(t), 4)] for (line, score), t in zip(best.items(), block)})
        verdict.uncertain.extend(uncertain)
        if blocked is not None:
            verdict.blocked, verdict.clause_id, verdict.by = True, blocked, "classifier"
        return blocked is not None

    def _classify(self, score: LineScore, stage: Stage, framed: bool) -> str:
        c = self.config
        if stage == "input":
            hit = score.positive >= c.hit_similarity and score.margin >= c.hit_margin
            hit = hit or (framed and score.positive >= c.framed_hit_similarity
                          and score.margin >= c.framed_hit_margin)
            floor = c.band_similarity
        else:
            hit = score.positive >= c.output_hit_similarity and score.margin >= c.output_hit_margin
            floor = c.output_band_similarity
        if hit:
            return "hit"
        if score.positive < floor or (score.margin < c.band_margin and score.positive < c.near_example):
            return "clear"
        return "uncertain"

    def _settle(self, verdict: Verdict, question) -> Verdict:
        """Decide the uncertain band: by policy, or by asking the judge line by line."""
        if self.config.uncertain != "judge" or self.judge_slot is None:
            if self.config.uncertain == "block" and verdict.uncertain:
                verdict.blocked, verdict.clause_id, verdict.by = True, verdict.uncertain[0], "policy"
            return verdict
        for line_id in verdict.uncertain[: self.config.max_judged_lines]:
            answer = judge.ask(self.judge_slot, question(self.all_lines[line_id]))
            verdict.judge[line_id] = answer.p_yes
            if answer.p_yes is None or answer.p_yes >= self.config.judge_threshold:
                verdict.blocked, verdict.clause_id, verdict.by = True, line_id, "judge"
                break
        return verdict


def input_pieces(messages: list[dict], config: GuardConfig = GuardConfig()) -> list[str]:
    """What the input guard reads: every message of every role (a crossing request planted in an
    assistant turn or a second system message is still a request), each in overlapping windows
    and sentences so no length of filler hides it past the embedder's ~256 tokens, and the last
    user turns together (an attack may be split across turns)."""
    pieces = [piece for m in messages if m["content"].strip() for piece in output_pieces(m["content"], config)]
    users = [m["content"] for m in messages if m["role"] == "user"]
    if len(users) > 1:
        pieces += windows(" ".join(users[-3:]), config)
    return list(dict.fromkeys(pieces))  # a short message is its own window and sentence: embed it once


def windows(text: str, config: GuardConfig) -> list[str]:
    if len(text) <= config.window_chars:
        return [text]
    starts = range(0, len(text) - config.window_chars + config.window_step, config.window_step)
    return [text[s:s + config.window_chars] for s in starts]


def output_pieces(text: str, config: GuardConfig) -> list[str]:
    """Windows of the answer, and its sentences: a crossing sentence diluted in a window of harmless
    text is still close to the crossing examples on its own (examples are sentence-sized)."""
    return windows(text, config) + [s for s in _SENTENCE_END.split(text) if len(s) >= 20]


def transcript(messages: list[dict]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages if m["role"] != "system")


def last_user(messages: list[dict]) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
