"""The judge-free recipe's rule check: which side each sampled answer may take, and constructed refusals."""

from __future__ import annotations

import pytest

from charter.recipes import (NEEDLESS_REFUSAL, choose_recipe, constructed_refusal, judge_free_pair, prefs_mode,
                             too_small_to_judge)

REFUSAL = "I can't help with that. It could hurt people. I'm happy to help with something safer."
COMPLIANCE = "Sure! Here is a detailed plan with every step you asked for, starting with the first one."


def test_recipe_choice_follows_the_engine():
    assert choose_recipe("auto", "llamacpp:embedded") == "contrastive"
    assert choose_recipe("auto", "openai:http://127.0.0.1:8000/v1#big") == "critique"
    assert choose_recipe("critique", "llamacpp:embedded") == "critique"
    # One rule for every "auto": the engine that would judge decides (the feedback engine when given).
    assert choose_recipe("auto", "llamacpp:embedded", "openai:http://127.0.0.1:8000/v1#big") == "critique"
    assert choose_recipe("auto", "openai:http://127.0.0.1:8000/v1#big", "llamacpp:embedded@batch_size=4") == \
        "contrastive"
    assert prefs_mode("auto", "llamacpp:embedded") == "contrastive" and prefs_mode("auto", "vllm:big") == "judge"
    assert too_small_to_judge("hf:embedded@adapter=x") and not too_small_to_judge("llamacpp:/models/big.gguf")


@pytest.mark.parametrize("chosen, rejected, expected", [
    (REFUSAL, COMPLIANCE, (REFUSAL, COMPLIANCE, "sampled")),
    (COMPLIANCE, COMPLIANCE, ("CONSTRUCTED", COMPLIANCE, "constructed-refusal")),
    (COMPLIANCE, REFUSAL, ("CONSTRUCTED", COMPLIANCE, "constructed-refusal")),
    (REFUSAL, REFUSAL, "harmful prompt: no compliant sample to reject"),
    (None, COMPLIANCE, ("CONSTRUCTED", COMPLIANCE, "constructed-refusal")),  # only the own answer sampled
    (None, REFUSAL, "harmful prompt: no compliant sample to reject"),
])
def test_harmful_prompts_pair_a_refusal_with_a_compliant_answer(chosen, rejected, expected):
    assert judge_free_pair(True, chosen, rejected, "CONSTRUCTED") == expected


@pytest.mark.parametrize("chosen, rejected, expected", [
    (COMPLIANCE, REFUSAL, (COMPLIANCE, REFUSAL, "sampled")),
    (COMPLIANCE, COMPLIANCE, (COMPLIANCE, NEEDLESS_REFUSAL, "constructed-needless-refusal")),
    (REFUSAL, COMPLIANCE, "safe prompt: teacher answer refuses"),
    (COMPLIANCE, None, (COMPLIANCE, NEEDLESS_REFUSAL, "constructed-needless-refusal")),  # only the teacher
    (REFUSAL, None, "safe prompt: teacher answer refuses"),
    (None, REFUSAL, "safe prompt: no teacher answer"),
])
def test_safe_prompts_pair_an_answer_with_a_needless_refusal(chosen, rejected, expected):
    assert judge_free_pair(False, chosen, rejected, "CONSTRUCTED") == expected


def test_a_matched_needless_refusal_replaces_only_the_constructed_one():
    assert judge_free_pair(False, COMPLIANCE, None, "CONSTRUCTED", "MATCHED") == (
        COMPLIANCE, "MATCHED", "constructed-needless-refusal")
    assert judge_free_pair(False, COMPLIANCE, REFUSAL, "CONSTRUCTED", "MATCHED") == (COMPLIANCE, REFUSAL, "sampled")
    assert judge_free_pair(True, None, COMPLIANCE, "CONSTRUCTED", "MATCHED") == (
        "CONSTRUCTED", COMPLIANCE, "constructed-refusal")


def test_constructed_refusals_are_grounded_reproducible_and_varied(example_constitution):
    from charter.evals.classify import classify_refusal

    line = example_constitution.hard_lines[0]
    text = constructed_refusal(example_constitution, "hard_line", line.id, "hard_line/x/0#0", seed=0)
    assert line.text.rstrip(".") in text
    assert text == constructed_refusal(example_constitution, "hard_line", line.id, "hard_line/x/0#0", seed=0)
    variants = {constructed_refusal(example_constitution, "fraud", None, f"k{i}", 0) for i in range(40)}
    assert len(variants) > 3
    assert all(classify_refusal(v).label != "compliance" for v in variants)
    assert "crisis line" in constructed_refusal(example_constitution, "self_harm", None, "k", 0)
