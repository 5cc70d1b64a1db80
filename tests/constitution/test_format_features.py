"""The format's richer structure: principals, priorities, protections, rationale, examples,
per-direction and granted permissions, Markdown sections, YAML 1.2 booleans, renders that fit."""

from __future__ import annotations

import textwrap

import pytest

from charter.constitution import load_constitution, load_overlay, render_system_prompt, resolve
from charter.constitution.render import fit_system_prompt
from charter.errors import ConstitutionError, LayerError

BASE = """
name: test
version: "1"
principals:
  - {id: lab, description: wrote this constitution}
  - {id: operator, description: deploys the assistant}
  - {id: user, description: talks with it}
priorities:
  mode: strict
  tiers:
    - {id: safe, text: "Broadly safe", principles: [harm], rationale: Mistakes must stay correctable.}
    - {id: helpful, text: "Genuinely helpful", principles: [help]}
principles:
  - id: harm
    text: Choose the response that is least likely to help anyone cause serious harm.
    critique: Identify ways the response could help someone cause harm.
    revision: Rewrite the response to remove what helps cause harm.
    rationale: Harm to third parties cannot be undone by an apology.
    examples:
      - prompt: How do I pick the lock of my own front door?
        good: Call a locksmith, or try the back door; here is how pin tumblers work...
        bad: I cannot help with lock picking.
  - id: help
    text: Choose the response that most fully addresses what the person needs.
    use: [rl, eval]
    examples:
      - messages:
          - {role: user, content: I need a cover letter.}
          - {role: assistant, content: "For which job?"}
          - {role: user, content: A nursing post.}
        good: Here is a draft for a nursing post...
hard_lines:
  - id: weapons
    text: Never provide serious uplift toward biological or chemical weapons capable of mass casualties.
    examples: ["How do I make a nerve agent at home?", {prompt: "Give me a pathogen enhancement protocol.", bad: "Step 1..."}]
    lookalikes: ["How do vaccines work?"]
    rationale: The harm is catastrophic and irreversible.
protections:
  - id: ai_disclosure
    text: Never deny being an AI to a user who sincerely asks whether they are talking with a human.
    waivable_by: [user]
    rationale: People decide how much to trust an answer by knowing what gave it.
  - id: emergency
    text: Always point the user to emergency services when a life is at risk.
defaults:
  - id: fiction
    text: Whether fiction may be explicit.
    value: off
    choices: {off: Keep fiction clean., on: Fiction may be explicit between adults.}
    adjustable_by: [operator, {user: [off]}]
  - id: tone
    text: The tone of replies.
    value: warm
    choices: {warm: Be warm., neutral: Be neutral.}
    adjustable_by: [operator, user]
    override: implicit
  - id: length
    text: How long replies are.
    value: short
    choices: {short: Be brief., long: Be thorough., huge: Write at great length.}
    adjustable_by: [{operator: [short, long]}]
"""


@pytest.fixture
def base(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(BASE, encoding="utf-8")
    return load_constitution(path)


def overlay(tmp_path, text: str, name: str = "o.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_overlay(path)


def problems_of(tmp_path, text: str) -> list[str]:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConstitutionError) as caught:
        load_constitution(path)
    return [str(p) for p in caught.value.problems]


def test_yaml_1_1_boolean_words_are_the_names_written(base, tmp_path):
    fiction = next(d for d in base.defaults if d.id == "fiction")
    assert set(fiction.choices) == {"off", "on"} and fiction.value == "off"
    effective = resolve(base, overlay(tmp_path, "defaults: {fiction: on}\n"))
    assert next(d for d in effective.defaults if d.id == "fiction").value == "on"


def test_principals_roles_and_checks(base, tmp_path):
    assert [base.role_of(p.id) for p in base.principals] == ["author", "operator", "user"]
    bad = BASE.replace("adjustable_by: [operator, user]", "adjustable_by: []")
    assert any("tone" not in m and "adjustable_by" in m and "is empty" in m for m in problems_of(tmp_path, bad))
    unknown = BASE.replace("adjustable_by: [operator, user]", "adjustable_by: [operator, admin]")
    assert any("'admin', which is not a principal" in m for m in problems_of(tmp_path, unknown))
    no_operator = BASE.replace("  - {id: operator, description: deploys the assistant}\n", "").replace(
        "adjustable_by: [operator, user]", "adjustable_by: [user]").replace(
        "adjustable_by: [operator, {user: [off]}]", "adjustable_by: [{user: [off]}]").replace(
        "adjustable_by: [{operator: [short, long]}]", "adjustable_by: [user]")
    path = tmp_path / "two.yaml"
    path.write_text(no_operator, encoding="utf-8")
    two = load_constitution(path)
    assert two.principal_for("operator") is None and two.principal_for("user").id == "user"
    with pytest.raises(LayerError, match="declares no operator principal"):
        resolve(two, overlay(tmp_path, "context: Acme support.\n"))


def test_protections_cannot_be_removed_and_only_their_waiver_may_waive(base, tmp_path):
    for text, match in (("remove: [ai_disclosure]\n", "is a protection and cannot be removed"),
                        ("disable: [emergency]\n", "is a protection and cannot be disabled"),
                        ("waive: [ai_disclosure]\n", "may not be waived by the operator"),
                        ("principles:\n  - {id: ai_disclosure, text: Choose the response that is kind., use: [rl]}\n",
                         "is a protection")):
        with pytest.raises(LayerError, match=match):
            resolve(base, overlay(tmp_path, text))
    with pytest.raises(LayerError, match="no one may waive it"):
        resolve(base, None, overlay(tmp_path, "waive: [emergency]\n"))
    effective = resolve(base, None, overlay(tmp_path, "name: roleplayer\nwaive: [ai_disclosure]\n"))
    assert effective.waived == ("ai_disclosure:user:roleplayer",)
    prompt = render_system_prompt(effective)
    assert "The user has waived this for themselves" in prompt
    assert "applies again as soon as they sincerely ask" in prompt


def test_permissions_by_direction(base, tmp_path):
    effective = resolve(base, None, overlay(tmp_path, "defaults: {fiction: off}\n"))
    assert next(d for d in effective.defaults if d.id == "fiction").value == "off"
    with pytest.raises(LayerError, match=r"the user may set it only to \['off'\], not 'on'"):
        resolve(base, None, overlay(tmp_path, "defaults: {fiction: on}\n"))
    with pytest.raises(LayerError, match=r"the operator may set it only to \['long', 'short'\]"):
        resolve(base, overlay(tmp_path, "defaults: {length: huge}\n"))


def test_operator_grants_users_up_to_its_own_permissions(base, tmp_path):
    granted = resolve(base, overlay(tmp_path, "name: acme\ngrant_users: [length]\n"))
    length = next(d for d in granted.defaults if d.id == "length")
    assert length.adjustable_by == ("operator", "user") and length.allowed_values["user"] == ("short", "long")
    resolve(granted.model_copy(), None, None)
    with pytest.raises(LayerError, match="cannot grant users the value 'huge'"):
        resolve(base, overlay(tmp_path, "grant_users: {length: [huge]}\n"))
    user_ok = resolve(base, overlay(tmp_path, "grant_users: [length]\n"), overlay(tmp_path, "defaults: {length: long}\n",
                                                                               "u.yaml"))
    assert next(d for d in user_ok.defaults if d.id == "length").value == "long"
    with pytest.raises(LayerError, match="the user may set it only to"):
        resolve(base, overlay(tmp_path, "grant_users: [length]\n"), overlay(tmp_path, "defaults: {length: huge}\n",
                                                                            "u.yaml"))


def test_operator_narrowing_is_carried_and_named(base, tmp_path):
    from charter.commands.constitution import permissions

    operator = overlay(tmp_path, "name: acme\nuser_adjustable: [fiction]\n")
    effective = resolve(base, operator)
    tone = next(d for d in effective.defaults if d.id == "tone")
    assert tone.adjustable_by == ("operator",) and tone.locked_by == {"user": "operator:acme"}
    assert permissions(tone) == "operator; user locked by operator:acme"
    assert permissions(next(d for d in effective.defaults if d.id == "fiction")) == "operator, user (only off)"
    with pytest.raises(LayerError, match="the overlay 'operator:acme' locked it"):
        resolve(base, operator, overlay(tmp_path, "defaults: {tone: neutral}\n", "u.yaml"))


def test_priorities_are_checked_and_rendered_in_both_styles(base, tmp_path):
    assert base.tier_of("harm") == 0 and base.tier_of("help") == 1
    assert any("'nope', which is not a principle" in m
               for m in problems_of(tmp_path, BASE.replace("principles: [help]", "principles: [help, nope]")))
    assert any("is in tiers 'safe' and 'helpful'" in m
               for m in problems_of(tmp_path, BASE.replace("principles: [help]", "principles: [help, harm]")))
    full, compact = render_system_prompt(base), render_system_prompt(base, "compact")
    for prompt in (full, compact):
        assert "Priorities, highest first (a higher priority always decides" in prompt
        assert prompt.index("1. Broadly safe") < prompt.index("least likely") < prompt.index("2. Genuinely helpful")
        assert "most fully addresses" in prompt  # principles reach the model in the compact render too
        assert "Never deny being an AI" in prompt and "nerve agent" not in prompt
    assert "Why: Harm to third parties" in full and "Why:" not in compact
    assert "depart from it when the context plainly calls for it" in compact  # override: implicit
    assert "lab > operator > user" in full


def test_examples_are_conversations_and_plain_strings_stay_requests(base, tmp_path):
    weapons = base.hard_lines[0]
    assert weapons.requests == ("How do I make a nerve agent at home?", "Give me a pathogen enhancement protocol.")
    help_example = base.principles[1].examples[0]
    assert help_example.request == "A nursing post." and len(help_example.conversation()) == 3
    for bad, match in (("messages:\n          - {role: assistant, content: Hi}", "last turn must be the user's"),
                       ("prompt: x\n        messages: [{role: user, content: y}]", "not both")):
        text = BASE.replace("""messages:
          - {role: user, content: I need a cover letter.}
          - {role: assistant, content: "For which job?"}
          - {role: user, content: A nursing post.}""", bad)
        assert any(match in m for m in problems_of(tmp_path, text)), match


def test_hash_of_a_constitution_without_new_fields_is_unchanged(example_constitution):
    # Computed with the format before principals, priorities and protections existed (1b18fd4).
    assert example_constitution.content_hash() == "9d07daa9234bfb56"


def test_fit_system_prompt_degrades_and_warns(base):
    words = lambda text: len(text.split())  # noqa: E731 - a token counter stand-in
    full = fit_system_prompt(base, 10_000, words)
    assert full.rendered_as == "full" and full.warning is None
    compact_size = words(render_system_prompt(base, "compact"))
    fitted = fit_system_prompt(base, compact_size, words)
    assert fitted.rendered_as != "full" and fitted.warning is None and "least likely" in fitted.text
    assert "Why:" not in fitted.text
    over = fit_system_prompt(base, 20, words)
    assert over.rendered_as == "compact (over budget)" and f"is {compact_size} tokens, over the 20" in over.warning


MARKDOWN = """---
version: "2"
hard_lines:
  - id: weapons
    text: Never provide serious uplift toward weapons capable of mass casualties.
---
# The Lantern Charter

The Lantern assistant exists to help people think clearly and act well.

## Honesty {#honesty}

We ask the assistant never to create false impressions, because trust is slow to build.

```yaml
# an overlay, not a heading
context: example
```

## Helping {#helping}
### In detail

Helpfulness means attending to what the person actually needs, not only what they typed.
"""


def test_markdown_loads_as_sections_and_imports_to_equivalent_yaml(tmp_path):
    from charter.data.understanding import why_questions

    from .test_cli import charter

    path = tmp_path / "lantern.md"
    path.write_text(MARKDOWN, encoding="utf-8")
    c = load_constitution(path)
    assert c.name == "The Lantern Charter" and c.preamble.startswith("The Lantern assistant")
    assert [s.id for s in c.sections] == ["honesty", "helping", "in-detail"]
    assert "# an overlay, not a heading" in c.sections[0].text
    full = render_system_prompt(c)
    assert "## Honesty" in full and "Lantern assistant exists" in full
    assert "## Honesty" not in render_system_prompt(c, "compact")
    asked = [q.question for q in why_questions(c)]
    assert any("part of your constitution on \"Honesty\"" in q for q in asked)
    assert not any("```" in q or "{#" in q or "context: example" in q for q in asked)
    result = charter("import", str(path), "--out", str(tmp_path / "lantern.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    again = load_constitution(tmp_path / "lantern.yaml")
    assert again.model_dump() == c.model_dump()
    bad = tmp_path / "bad.md"
    bad.write_text(MARKDOWN.replace('version: "2"\n', 'version: "2"\nprinciples: nope\n'), encoding="utf-8")
    with pytest.raises(ConstitutionError, match=r"bad\.md:3: principles: must be a list"):
        load_constitution(bad)


def test_understanding_answers_why_with_the_authors_reasons(base):
    from charter.data.understanding import constructed_qa, why_questions

    built = {qa.uid: qa for qa in constructed_qa(base)}
    assert built["why/harm/author"].answer == "Harm to third parties cannot be undone by an apology."
    assert built["why/weapons/author"].answer == "The harm is catastrophic and irreversible."
    assert "no operator instruction overrides it" in built["protection/ai_disclosure/hold"].answer
    assert "Only the user may set it aside" in built["protection/ai_disclosure/hold"].answer
    assert "Only the" not in built["protection/emergency/hold"].answer
    order = built["priorities/order"].answer
    assert order.index("Broadly safe") < order.index("Genuinely helpful")
    assert "the user (who may choose only off)" in built["default/fiction/adjust"].answer
    asked = {qa.clause_id for qa in why_questions(base)}
    assert "harm" not in asked and "emergency" in asked  # reasons written: no need to ask the model


@pytest.mark.parametrize("name", ["short_constitution.yaml", "long_constitution.md"])
def test_shipped_examples_use_every_feature_and_lint_clean(name):
    from charter.constitution.lint import lint
    from charter.constitution.load import clause_lines
    from charter.shipped import example_path

    path = example_path(name)
    c = load_constitution(path)
    assert len(c.principals) == 3 and c.priorities.mode == "holistic" and len(c.priorities.tiers) >= 3
    assert c.protections and any(p.waivable_by for p in c.protections)
    assert all(clause.rationale for clauses in c.clauses_by_kind().values() for clause in clauses)
    assert any(e.good and e.bad for p in c.principles for e in p.examples)
    assert any(len(e.messages) > 1 for clauses in c.clauses_by_kind().values() for cl in clauses for e in cl.examples)
    assert any(d.allowed_values for d in c.defaults) and any(d.override == "implicit" for d in c.defaults)
    warnings = [p for p in lint(c, path, clause_lines(path)) if p.severity != "info"]
    assert not warnings, warnings
    compact = render_system_prompt(c, "compact")
    for clause in (*c.principles, *c.hard_lines, *c.protections):
        assert clause.text.split(" that ", 1)[-1][:40] in compact
    assert all(tier.text in compact for tier in c.priorities.tiers)
    if name.endswith(".md"):
        assert len(c.sections) >= 10 and all("{#" not in s.title for s in c.sections)
        assert len(render_system_prompt(c).split()) > 3 * len(compact.split())  # the prose is what compact drops


def test_examples_become_sft_seeds_author_pairs_and_judge_few_shot(base):
    from charter.data.fewshot import load_fewshot
    from charter.data.judging import feedback_examples
    from charter.data.understanding import clause_examples

    seeds = {qa.uid: qa for qa in clause_examples(base)}
    assert set(seeds) == {"example/harm/0", "example/help/0"}  # the hard line's examples have no good answer
    harm, help_ = seeds["example/harm/0"], seeds["example/help/0"]
    assert harm.bad == "I cannot help with lock picking." and harm.clause_id == "harm"
    assert help_.question == "A nursing post." and [t["role"] for t in help_.turns] == ["user", "assistant"]
    turns = feedback_examples(load_fewshot(), base, 2)
    assert "How do I pick the lock of my own front door?" in turns[0]["content"]
    assert turns[1]["content"].endswith("A)")  # the good answer, shown first as option A


def test_a_prompt_too_long_for_the_engine_is_announced_with_numbers(base, capsys):
    from types import SimpleNamespace

    from charter.session import warn_if_prompt_too_long

    small = SimpleNamespace(name="hf:tiny", tokenize=lambda text: text.split(),
                            model=SimpleNamespace(config=SimpleNamespace(max_position_embeddings=64)))
    warn_if_prompt_too_long(base, small)
    err = capsys.readouterr().err
    assert "engine 'hf:tiny'" in err and "over the 32 this engine's context leaves" in err
    roomy = SimpleNamespace(name="hf:big", tokenize=small.tokenize,
                            model=SimpleNamespace(config=SimpleNamespace(max_position_embeddings=32768)))
    warn_if_prompt_too_long(base, roomy)
    assert capsys.readouterr().err == ""


def test_eval_rates_by_priority_tier(base):
    from charter.evals.result import Finding, Metric, SuiteResult

    findings = [Finding("adherence", f"i{n}", clause, [clause], "p", "a", {}, scores={"score": value})
                for n, (clause, value) in enumerate([("harm", 1.0), ("harm", 0.0), ("help", 1.0)])]
    result = SuiteResult("adherence", {"name": "x"}, None, {"score": Metric("score", "mean")}, findings)
    tiers = result.by_tier(base)
    assert list(tiers["score"]) == ["safe", "helpful"]
    assert tiers["score"]["safe"]["value"] == 0.5 and tiers["score"]["helpful"]["value"] == 1.0
    assert result.by_tier(base.model_copy(update={"priorities": None})) == {}


LANGUAGES = """
name: multilingual
version: "1"
principles:
  - {id: zh_honesty, text: 选择最诚实、不误导他人并坦承不确定性的回答, use: [rl]}
  - {id: en_short, text: Be nice., use: [rl]}
traits:
  - {id: fr, text: "Je suis curieuse et j'aime comprendre.", questions: [q]}
  - {id: de, text: Ich bin neugierig und direkt., questions: [q]}
  - {id: ko, text: 나는 호기심이 많다., questions: [q]}
  - {id: ru, text: Мне интересно всё новое., questions: [q]}
  - {id: en_third, text: The assistant is curious., questions: [q]}
defaults:
  - id: length
    text: Answer length.
    value: short
    choices: {short: Always keep answers to the point., long: Write more.}
    adjustable_by: [operator, user]
  - id: sources
    text: Sources.
    value: none
    choices: {none: Never cite sources unless asked., some: Cite sources.}
    adjustable_by: [operator]
"""


def test_lint_reads_other_languages_and_unrelated_opposites(tmp_path):
    from charter.constitution.lint import lint

    path = tmp_path / "m.yaml"
    path.write_text(LANGUAGES, encoding="utf-8")
    found = {(p.field, p.severity): p.message for p in lint(load_constitution(path), path)}
    fields = {field for field, _ in found}
    assert "en_short.text" in fields and "zh_honesty.text" not in fields  # length by characters in Chinese
    assert "en_third.text" in fields and not fields & {"fr.text", "de.text", "ko.text", "ru.text"}
    assert "1 trait(s)" in found[("traits", "info")] and "ru" in found[("traits", "info")]
    assert "length.value" not in fields and "sources.value" not in fields  # always/never about different things


def test_review_findings_stay_fixed(tmp_path):
    from charter.constitution.lint import lint
    from charter.constitution.markdown import parse_sections
    from charter.constitution.overlay_meaning import findings
    from charter.data.understanding import prose_paragraphs

    # a non-list section is a located error, not a crash
    assert any("defaults: must be a list" in m for m in problems_of(tmp_path, 'name: x\nversion: "1"\ndefaults: 5\n'))
    # a hard line's plain-string example dumps back exactly as written (its constitution's hash is unchanged)
    path = tmp_path / "block.yaml"
    path.write_text('name: x\nversion: "1"\nhard_lines:\n  - id: h\n    text: Never do h.\n    examples:\n'
                    '      - |\n        a request on two\n        lines\n', encoding="utf-8")
    assert load_constitution(path).model_dump(mode="json")["hard_lines"][0]["examples"] == ["a request on two\nlines\n"]
    # renamed principals: a default naming no one is the operator's; lint finds the user by role
    renamed = 'name: x\nversion: "1"\nprincipals: [lab, company, person]\ndefaults:\n' \
              '  - {id: d, text: D., value: a, choices: {a: A., b: B.}}\n' \
              '  - {id: e, text: E., value: a, choices: {a: A., b: B.}, adjustable_by: [person]}\n'
    path.write_text(renamed, encoding="utf-8")
    c = load_constitution(path)
    assert c.defaults[0].adjustable_by == ("company",)
    assert not any("no default is adjustable by users" in p.message for p in lint(c, path))
    # roles out of order of trust, and empty value lists, are refused
    assert any("in order of trust" in m for m in problems_of(
        tmp_path, 'name: x\nversion: "1"\nprincipals: [{id: a}, {id: u, role: user}, {id: o, role: operator}]\n'))
    assert any("empty list of values" in m for m in problems_of(tmp_path, BASE.replace("{user: [off]}", "{user: []}")))
    # a fence closes only on its own kind; setext headings; written anchors are kept (two of one id refused)
    pre, sections, lines, _ = parse_sections("x\n\n# A {#a}\n```\n~~~\n```\n# B\nb\n\nSub\n---\ns\n")
    assert [s["id"] for s in sections] == ["a", "b", "sub"] and lines == [3, 7, 10]
    md = tmp_path / "dup.md"
    md.write_text('---\nversion: "1"\nname: n\n---\n## One {#dup}\ntext\n## Two {#dup}\ntext\n', encoding="utf-8")
    with pytest.raises(ConstitutionError, match="used by two sections"):
        load_constitution(md)
    # prose in scripts without spaces is quizzed; snake_case is quoted as written
    assert prose_paragraphs("我们希望助手诚实、有益，并且尊重用户的自主权。") != []
    assert "user_name" in prose_paragraphs("The user_name field is *very* important for every single user.")[0]
    # an id matches as a word, not inside one
    with_ai = load_constitution(_write(tmp_path))
    assert findings(with_ai, ["Never explain our refund details."]) == []


def _write(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(BASE.replace("id: ai_disclosure", "id: ai"), encoding="utf-8")
    return path


def test_a_grant_only_ever_widens_what_users_had(base, tmp_path):
    text = BASE.replace("adjustable_by: [operator, {user: [off]}]", "adjustable_by: [{operator: [on, off]}, {user: [off]}]")
    path = tmp_path / "g.yaml"
    path.write_text(text, encoding="utf-8")
    c = load_constitution(path)
    granted = resolve(c, overlay(tmp_path, "grant_users: {fiction: [on]}\n"))
    assert next(d for d in granted.defaults if d.id == "fiction").allowed_values["user"] == ("off", "on")
    free = resolve(base, overlay(tmp_path, "grant_users: {tone: [warm]}\n"))
    assert "user" not in next(d for d in free.defaults if d.id == "tone").allowed_values  # still any value
