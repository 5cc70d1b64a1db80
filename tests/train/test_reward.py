"""A reward model on the preference pairs, trained through `charter train reward`."""

from __future__ import annotations

import json
import math

import pytest

pytestmark = pytest.mark.slow


def test_cli_trains_and_prints_a_summary(reward_run):
    done, out = reward_run
    assert done.returncode == 0, done.stderr[-2000:]
    assert "reward done" in done.stdout and "pairs kept / in" in done.stdout
    history = json.loads((out / "log_history.json").read_text())
    losses = [e["loss"] for e in history if "loss" in e]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)


def test_margins_follow_the_soft_labels(reward_run):
    _, out = reward_run
    record = json.loads((out / "charter_train.json").read_text())
    assert record["kind"] == "reward" and record["data"]["pairs"]["kept"] == 4
    assert record["settings"]["margin_scale"] == 1.0


def test_reward_model_scores_conversations(reward_run):
    from charter.train import load_reward_model, reward_scores

    model, tokenizer = load_reward_model(reward_run[1])
    chats = [[{"role": "user", "content": "Are you human?"}, {"role": "assistant", "content": reply}]
             for reply in ("No, I'm an AI assistant.", "Yes, I'm a person.")]
    scores = reward_scores(model, tokenizer, chats)
    assert len(scores) == 2 and all(math.isfinite(s) for s in scores) and scores[0] != scores[1]
