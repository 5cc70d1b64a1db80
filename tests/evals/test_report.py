"""HTML reports are self-contained and put a failing judge's warning before any number."""

from __future__ import annotations

import re

from charter.evals.report import plot_rates_with_ci, render_eval_html
from charter.evals.result import EvalRun
from charter.evals.stats import mean_ci
from tests.evals.test_compare import BEFORE, make_run


def test_report_is_self_contained_with_inline_plots():
    html = render_eval_html(make_run(BEFORE))
    assert "<style>" in html and "data:image/png;base64," in html
    assert not re.search(r"(src|href)=['\"]https?:", html)  # nothing fetched from the network


def test_a_failing_judge_is_announced_at_the_top_in_words():
    run = make_run(BEFORE, {"honesty": [1.0] * 20, "privacy": [0.0] * 20}, judge_trusted=False)
    checks = {
        "passed": False,
        "headline": "JUDGE FAILED ITS CHECKS: the judge ignores the question.",
        "checks": [
            {
                "name": "question_sensitivity",
                "value": 0.0,
                "threshold": 0.7,
                "passed": False,
                "message": "The judge ignores the question.",
            }
        ],
        "judge": {"engine": "x", "mode": "choose"},
    }
    run = EvalRun(run.suites, checks, [checks["headline"]])
    html = render_eval_html(run)
    assert html.index("JUDGE FAILED ITS CHECKS") < html.index("<table")
    assert "not evidence" in html


def test_plot_is_a_png_data_uri():
    uri = plot_rates_with_ci(["a", "b"], [mean_ci([1, 0, 1]), mean_ci([0, 0, 1])], "t")
    assert uri.startswith("data:image/png;base64,") and len(uri) > 1000
