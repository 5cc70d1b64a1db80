"""Findings: one per problem, most severe first, and what `--fail-on` means."""

from charter.scrutiny.findings import Finding, counts, fails, ordered


def finding(check, severity, clauses=("a", "b")):
    return Finding(check, severity, tuple(clauses), "message", "fix")


def test_the_same_problem_found_twice_is_one_finding_and_errors_come_first():
    found = ordered([finding("duplicate", "warning"), finding("contradiction", "error"),
                     finding("duplicate", "warning", ("b", "a")), finding("unexercised", "info", ("c",))])
    assert [f.check for f in found] == ["contradiction", "duplicate", "unexercised"]
    assert counts(found) == {"error": 1, "warning": 1, "info": 1}


def test_fail_on_takes_a_severity_or_never():
    found = [finding("duplicate", "warning")]
    assert fails(found, "warning") and not fails(found, "error") and not fails(found, "never")
    assert not fails([finding("unexercised", "info")], "warning")


def test_a_finding_round_trips_through_its_record_form():
    f = Finding("contradiction", "error", ("x", "y"), "m", "f", {"x": "a"}, {"similarity": 0.9})
    assert Finding.from_dict(f.as_dict()) == f
