"""Evidence: eval suites over any engine, judge checks, statistics and the regression gate.

    from charter.evals import EvalConfig, Judge, run_suite, check_judge, compare_runs
    judge = Judge(make_engine("llamacpp:embedded"))
    result = run_suite("harmful", engine, judge=judge, limit=10)
    result.summary()["refusal_rate[rules]"]          # Estimate(value, low, high, n, unscored)

Importing this package is cheap: engines and plotting load only when used.
"""

from charter.evals.compare import Comparison, compare_runs
from charter.evals.grading import Judge
from charter.evals.judges import check_judge
from charter.evals.result import EvalRun, Finding, Metric, SuiteResult, load_eval
from charter.evals.runner import EvalConfig, evaluate, run_suite
from charter.evals.suites import SUITES

SUITE_NAMES = tuple(SUITES)

__all__ = [
    "SUITES",
    "SUITE_NAMES",
    "Comparison",
    "EvalConfig",
    "EvalRun",
    "Finding",
    "Judge",
    "Metric",
    "SuiteResult",
    "check_judge",
    "compare_runs",
    "evaluate",
    "load_eval",
    "run_suite",
]
