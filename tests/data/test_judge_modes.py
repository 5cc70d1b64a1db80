"""AI feedback on any OpenAI-compatible server: no prefill (the answer's first token's logprobs),
and no logprobs at all (written verdicts), each counted as what it is."""

from __future__ import annotations

import re

import pytest

from charter.data.feedback import JudgeConfig, run_prefs
from charter.data.judging import LETTER_CLOSING, choice_request, resolve_judge_mode
from charter.engines.registry import make_engine
from charter.errors import CharterError

from .conftest import items
from .fakes import FakeEngine


def test_auto_mode_prefills_only_where_the_engine_can():
    server = make_engine("openai:http://127.0.0.1:9/v1#m")
    assert resolve_judge_mode("auto", FakeEngine()) == "prefill"
    assert resolve_judge_mode("auto", server) == "letter"
    assert resolve_judge_mode("auto", make_engine("openai:http://127.0.0.1:9/v1#m@prefill=continue")) == "prefill"
    with pytest.raises(CharterError, match="letter"):
        resolve_judge_mode("prefill", server)
    with pytest.raises(CharterError, match="unknown"):
        resolve_judge_mode("vibes", server)


def test_a_letter_question_opens_no_answer_and_asks_for_the_letter():
    plain = choice_request([], "Which is kinder?", None, "letter")
    assert plain.assistant_prefix == "" and plain.options == ("A", "B")
    with_reasoning = choice_request([], "Which is kinder?", "B admits it does not know.", "letter")
    roles = [m["role"] for m in with_reasoning.messages]
    assert roles == ["user", "assistant", "user"] and with_reasoning.assistant_prefix == ""
    assert with_reasoning.messages[1]["content"] == "B admits it does not know."
    assert with_reasoning.messages[2]["content"].endswith(LETTER_CLOSING)


def test_option_tokens_are_matched_without_their_spaces_and_brackets():
    from charter.engines.base import ChoiceRequest
    from charter.engines.openai_http import OpenAIEngine

    engine = OpenAIEngine("http://127.0.0.1:9/v1", "m")
    reply = {"choices": [{"logprobs": {"content": [{"top_logprobs": [
        {"token": " A", "logprob": -1.0}, {"token": "A", "logprob": -1.0}, {"token": "(B", "logprob": -1.0},
        {"token": "Sure", "logprob": -0.5}]}]}}]}
    probs = engine._option_probs(ChoiceRequest(messages=({"role": "user", "content": "?"},), options=("A", "B")), reply)
    assert probs["A"] == pytest.approx(2 / 3) and probs["B"] == pytest.approx(1 / 3)


def _prefers_the_first_sorted(body: dict) -> str:
    """A judge that reads the two options and writes the letter of the one that sorts first, so
    its preference does not depend on the order the options are shown in."""
    question = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
    options = dict(re.findall(r"^\(([AB])\) (.*)$", question, flags=re.MULTILINE))
    return "A" if options.get("A", "") < options.get("B", "") else "B"


def _judged_by_a_server_without_logprobs(scripted_server, open_store, constitution, mode):
    server = scripted_server(logprobs=False, content=_prefers_the_first_sorted)
    judge = make_engine(f"openai:{server.url}#hosted", max_retries=0)
    policy = FakeEngine()
    store = open_store(policy)
    summary = run_prefs(store, constitution, policy, items(2), feedback_engine=judge, mode="judge",
                        config=JudgeConfig(mode=mode))
    return server, store, summary, list(store.iter("judgment"))


def test_a_server_without_logprobs_abstains_with_the_fallback_named(scripted_server, open_store,
                                                                    example_constitution):
    _, store, summary, judgments = _judged_by_a_server_without_logprobs(scripted_server, open_store,
                                                                        example_constitution, "auto")
    assert summary["judge_mode"] == "letter" and judgments
    assert all(j.data["abstained"] and "--judge-mode generate" in j.data["reason"] for j in judgments)
    assert store.count("pref") == 0


def test_written_verdicts_are_hard_labels_counted_as_such(scripted_server, open_store, example_constitution):
    server, store, summary, judgments = _judged_by_a_server_without_logprobs(scripted_server, open_store,
                                                                             example_constitution, "generate")
    assert judgments and not any(j.data["abstained"] for j in judgments)
    assert all(j.data["judge_mode"] == "generate" and set(j.data["probs"].values()) == {0.0, 1.0}
               for j in judgments)
    assert summary["written_verdicts"] == len(judgments)
    prefs = [r.data for r in store.iter("pref")]
    assert len(prefs) == 2 and all(p["label_source"] == "ai_feedback:written" for p in prefs)
    assert all(p["score_chosen"] == 1.0 and not p["position_bias"] for p in prefs)
    assert all(not body.get("logprobs") for body in server.requests if body["max_tokens"] == 8)


@pytest.mark.slow
def test_critique_recipe_with_a_llama_cpp_server_as_teacher_and_judge(llama_server, open_store,
                                                                      example_constitution):
    """No prefill: the judge is asked for the letter and its first token's top_logprobs are the
    soft label; no judgment abstains for want of a prefix or of logprobs."""
    base_url, model = llama_server
    server = make_engine(f"openai:{base_url}#{model}", concurrency=1)
    store = open_store(server)
    summary = run_prefs(store, example_constitution, server, items(2), feedback_engine=server, mode="judge",
                        max_tokens=32)
    judgments = [r.data for r in store.iter("judgment")]
    assert summary["judge_mode"] == "letter" and judgments
    assert not [j["reason"] for j in judgments if j["abstained"]]
    assert all(j["assistant_prefix"] == "" and 0.0 <= j["p_first"] <= 1.0 for j in judgments)
    prefs = [r.data for r in store.iter("pref")]
    assert prefs, summary
    assert all(0.5 < p["score_chosen"] <= 1.0 and p["label_source"] == "ai_feedback" for p in prefs)
    assert any(p["score_chosen"] < 1.0 for p in prefs)  # probabilities, not verdicts
