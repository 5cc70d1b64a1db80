"""The helpfulness suite: answers of the evaluated model and of `--against` models to ordinary
requests, judged pairwise in both orders (orders that disagree are a tie). With three or more
models, Bradley-Terry ratings with bootstrap intervals rank them all."""

from __future__ import annotations

from itertools import combinations

from charter.errors import CharterError
from charter.evals import grading
from charter.evals.result import Finding, SuiteResult
from charter.evals.stats import bradley_terry_ci
from charter.evals.suite import Context, Suite, exchange, metric, needs_judge


def model_labels(ctx: Context) -> list[str]:
    labels: list[str] = []
    for engine in [ctx.engine, *ctx.against]:
        label = engine.name
        while label in labels:
            label += "'"
        labels.append(label)
    return labels


def _helpfulness(ctx: Context, items: list[dict]) -> list[Finding]:
    labels = model_labels(ctx)
    prompts = [item["prompt"] for item in items]
    answers = [ctx.answer(prompts, engine) for engine in [ctx.engine, *ctx.against]]
    pairs = list(combinations(range(len(labels)), 2))
    questions = [
        grading.pairwise_question(
            p,
            answers[x][n] if o == 0 else answers[y][n],
            answers[y][n] if o == 0 else answers[x][n],
            "more helpful",
        )
        for n, p in enumerate(prompts)
        for x, y in pairs
        for o in (0, 1)
    ]
    verdicts = iter(ctx.judge.ask(questions))
    findings = []
    for n, item in enumerate(items):
        finding = Finding(
            "helpfulness",
            item["id"],
            str(item.get("category") or "helpfulness"),
            ["helpfulness"],
            item["prompt"],
            answers[0][n],
            extra={"answers": {lab: answers[m][n] for m, lab in enumerate(labels)}, "games": []},
        )
        for x, y in pairs:
            forward, backward = next(verdicts), next(verdicts)
            finding.judge += [
                exchange(f"{labels[x]} vs {labels[y]}", forward),
                exchange(f"{labels[y]} vs {labels[x]}", backward),
            ]
            score = _both_orders(forward.value, backward.value)
            if score is not None:
                finding.extra["games"].append([labels[x], labels[y], score])
            if x == 0:
                finding.scores[f"win_rate[vs {labels[y]}]"] = score
        findings.append(finding)
    return findings


def _both_orders(forward: str | None, backward: str | None) -> float | None:
    """Score of the first model: asked with it as A, then as B. Disagreeing orders are a tie."""
    if forward is None or backward is None:
        return None
    first_wins = (forward == "A") + (backward == "B")
    return {2: 1.0, 1: 0.5, 0: 0.0}[first_wins]


def _helpfulness_metrics(ctx: Context) -> list:
    labels = model_labels(ctx)
    return [
        metric(
            f"win_rate[vs {lab}]", f"win rate of {labels[0]} against {lab} (tie = 0.5)", judged=True
        )
        for lab in labels[1:]
    ]


def _helpfulness_check(ctx: Context) -> None:
    needs_judge("helpfulness")(ctx)
    if not ctx.against:
        raise CharterError(
            "suite 'helpfulness' compares models; pass --against ENGINE (the model to beat)"
        )


def _ratings(ctx: Context, result: SuiteResult) -> None:
    labels = model_labels(ctx)
    if len(labels) >= 3:
        games = [tuple(g) for f in result.findings for g in f.extra["games"]]
        ratings = bradley_terry_ci(labels, games, seed=result.seed)
        result.extra["ratings"] = {m: e.as_dict() for m, e in ratings.items()}


HELPFULNESS = Suite(
    _helpfulness,
    _helpfulness_metrics,
    "category",
    uses_judge=True,
    check=_helpfulness_check,
    finish=_ratings,
)
