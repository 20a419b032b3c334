"""The labelled case table (tests/verify/cases.py) as a gate: every case graded as labelled,
adversarial cases scored 0 within the timeout, and the table itself well formed."""

from __future__ import annotations

from collections import Counter

import pytest
from cases import CASES

from rlvr.verify import REASONS
from rlvr.verify.pool import WALL_BACKSTOP_FACTOR, WALL_BACKSTOP_MIN

TIMEOUT = 2.0
TIMEOUT_SLACK = 0.25  # the parent notices an overrun within one scheduler wake-up
# The limit counts CPU time; wall time is bounded by the backstop for a worker that stalls (pool.py).
WALL_BACKSTOP = max(WALL_BACKSTOP_FACTOR * TIMEOUT, WALL_BACKSTOP_MIN)
# Policy-dependent cases that the default policy deliberately grades against the label
# (documented in docs/verifier.md, "Known disagreements"). Counted apart, never hidden.
KNOWN_POLICY_MISSES = {
    "malformed_latex/unclosed_box_sentence_end",  # an unterminated box is treated as truncation
    "complex/j_unit",  # j is not read as the imaginary unit
}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case, case_results):
    result = case_results[case.name]
    assert result.reason in REASONS
    assert result.score in (0.0, 1.0)
    if case.name in KNOWN_POLICY_MISSES:
        assert case.policy, "only policy-tagged cases may be known misses"
        pytest.xfail(f"policy disagreement: {result.reason}")
    assert (result.score == 1.0) == case.expected, (
        f"{case.name}: expected {case.expected}, got {result.reason} (answer {result.answer!r})"
    )


def test_adversarial_cases_score_zero_within_timeout(first_pass):
    adversarial = [c for c in CASES if c.adversarial]
    assert len(adversarial) >= 50
    for case in adversarial:
        result = first_pass[case.name]
        assert result.score == 0.0, case.name
        assert result.cpu_seconds <= TIMEOUT + TIMEOUT_SLACK, (case.name, result.cpu_seconds)
        assert result.seconds <= WALL_BACKSTOP + TIMEOUT_SLACK, (case.name, result.seconds)


def test_no_case_exceeds_timeout(first_pass):
    slowest = max(first_pass.items(), key=lambda kv: kv[1].cpu_seconds)
    assert slowest[1].cpu_seconds <= TIMEOUT + TIMEOUT_SLACK, slowest
    assert max(r.seconds for r in first_pass.values()) <= WALL_BACKSTOP + TIMEOUT_SLACK


def test_table_is_large_named_and_covers_every_category():
    names = [c.name for c in CASES]
    assert len(names) >= 300
    assert len(set(names)) == len(names)
    counts = Counter(c.category for c in CASES)
    expected = {
        "frac_decimal",
        "latex_variants",
        "interval",
        "set_tuple",
        "equation_value",
        "units_text",
        "degrees",
        "percent",
        "pi_sqrt",
        "multiple_answers",
        "thousands_sep",
        "negative_zero",
        "sci_notation",
        "near_miss_wrong",
        "no_boxed",
        "multi_boxed",
        "truncated",
        "malformed_latex",
        "text_mc",
        "matrix_vector",
        "complex",
        "symbolic_expr",
        "approximation",
        "long_output",
        "adversarial_hacking",
        "adversarial_hang",
        "adversarial_long",
    }
    assert expected <= set(counts)
    assert all(counts[k] >= 5 for k in expected)
    assert all(not c.expected for c in CASES if c.adversarial)
    assert KNOWN_POLICY_MISSES <= set(names)


def test_false_positive_and_negative_counts_reported_apart(case_results):
    """FP is the dangerous direction for RL: none at all on this table."""
    fp = [c.name for c in CASES if not c.expected and case_results[c.name].score == 1.0]
    fn = [c.name for c in CASES if c.expected and case_results[c.name].score == 0.0]
    assert fp == []
    assert set(fn) <= KNOWN_POLICY_MISSES
