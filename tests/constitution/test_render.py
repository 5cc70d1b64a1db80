"""Rendering and seeded principle sampling."""

from __future__ import annotations

from collections import Counter

from charter.constitution import load_constitution, render_system_prompt, sample_principles
from charter.constitution.lint import lint


def test_system_prompt_contains_every_hard_line_and_default(example_constitution):
    prompt = render_system_prompt(example_constitution)
    for line in example_constitution.hard_lines:
        assert line.text in prompt
    for default in example_constitution.defaults:
        assert default.instruction() in prompt
    compact = render_system_prompt(example_constitution, "compact")
    assert len(compact) < len(prompt)
    assert all(line.text in compact for line in example_constitution.hard_lines)


def test_sampling_is_seeded_and_weighted(example_constitution):
    first = [p.id for p in sample_principles(example_constitution, 2, seed=7, key="prompt-1/round-0")]
    again = [p.id for p in sample_principles(example_constitution, 2, seed=7, key="prompt-1/round-0")]
    assert first == again and len(set(first)) == 2
    counts = Counter(
        sample_principles(example_constitution, 1, seed=0, key=f"k{i}")[0].id for i in range(3000)
    )
    weights = {p.id: p.weight for p in example_constitution.principles_for("sl")}
    heaviest = max(weights, key=weights.get)
    lightest = min(weights, key=weights.get)
    if weights[heaviest] > weights[lightest]:
        assert counts[heaviest] > counts[lightest]
    assert set(counts) <= set(weights)


def test_chinese_constitution_loads_lints_and_renders(tmp_path):
    from pathlib import Path

    path = Path(__file__).parent.parent / "fixtures" / "constitution_zh.yaml"
    constitution = load_constitution(path)
    prompt = render_system_prompt(constitution)
    for principle in constitution.principles:
        assert principle.text in prompt or principle.text.replace("Choose the response that ", "") in prompt
    assert constitution.hard_lines[0].text in prompt
    assert any("\u4e00" <= ch <= "\u9fff" for ch in prompt)
    assert all(p.severity == "warning" for p in lint(constitution, path))


def test_example_constitution_lints_clean_of_duplicates(example_constitution, example_constitution_path):
    warnings = lint(example_constitution, example_constitution_path)
    assert not [w for w in warnings if "duplicate" in w.message], warnings
