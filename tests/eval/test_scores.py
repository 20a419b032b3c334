"""avg@k, unbiased pass@k, maj@k, standard error and the 6-benchmark average against hand-computed values."""

from __future__ import annotations

import math
import random

import pytest

from rlvr.eval.scores import (
    SIX_BENCHMARKS,
    benchmark_average,
    majority_correct,
    pass_at_k,
    score_records,
    stderr,
)


def rows(index, correct, answers):
    return [
        {"index": index, "sample": s, "correct": c, "answer": a}
        for s, (c, a) in enumerate(zip(correct, answers, strict=True))
    ]


def test_pass_at_k_hand_values():
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # k=1: c/n
    assert pass_at_k(8, 0, 8) == 0.0
    assert pass_at_k(8, 1, 8) == 1.0  # n - c < k: some draw of k holds the correct one
    assert pass_at_k(64, 3, 16) == pytest.approx(1 - math.comb(61, 16) / math.comb(64, 16))


def test_pass_at_k_matches_the_binomial_formula():
    for n in range(1, 12):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))


@pytest.mark.parametrize("args", [(4, 5, 1), (4, -1, 1), (4, 1, 0), (4, 1, 5)])
def test_pass_at_k_rejects_impossible_counts(args):
    with pytest.raises(ValueError):
        pass_at_k(*args)


def test_score_records_hand_computed():
    # problem 0: samples right, wrong, wrong, right; answers 5, 3, 3, 5 -> a 2-2 tie, 5 came first
    # problem 1: all wrong
    records = rows(0, [True, False, False, True], ["5", "3", "3", "5"]) + rows(
        1, [False] * 4, ["1", "2", None, "2"]
    )
    random.Random(0).shuffle(records)  # order of rows does not matter
    s = score_records(records, k=4)
    assert s["n_problems"] == 2 and s["k"] == 4
    assert s["avg@k"] == pytest.approx(0.25)  # (2/4 + 0/4) / 2
    assert s["pass@k"] == pytest.approx(0.5)  # (1 + 0) / 2
    assert s["maj@k"] == pytest.approx(0.5)  # problem 0's tie goes to "5" (sample 0, correct)
    # per-problem values 0.5 and 0: sample variance 0.125, stderr sqrt(0.125 / 2) = 0.25
    assert s["stderr"] == pytest.approx(0.25)
    assert s["ci95_low"] == 0.0  # 0.25 - 1.96 * 0.25 < 0, clipped
    assert s["ci95_high"] == pytest.approx(0.25 + 1.959964 * 0.25)
    s2 = score_records(records, k=2)
    assert s2["pass@k"] == pytest.approx((1 - 1 / 6 + 0) / 2)  # problem 0: 1 - C(2,2)/C(4,2)
    assert s2["avg@k"] == pytest.approx(0.25)  # all 4 samples; maj@2 of the first two: 5 vs 3 tie -> 5
    assert s2["maj@k"] == pytest.approx(0.5)


def test_majority_vote_rules():
    vote = majority_correct
    assert vote(rows(0, [False, True, True], ["4", "7", "7"])) is True  # 7 has two votes
    assert vote(rows(0, [False, True], ["4", "7"])) is False  # tie: the earliest answer, 4, wins
    assert vote(rows(0, [False, False, True], [None, None, "7"])) is True  # no answer does not vote
    assert vote(rows(0, [False, False], [None, None])) is False  # nobody answered: wrong
    assert vote(rows(0, [False, True, True], ["1/2", "0.5", " 0.5 "])) is True  # whitespace ignored


def test_greedy_single_sample():
    records = (
        rows(0, [True], ["1"]) + rows(1, [False], ["2"]) + rows(2, [True], ["3"]) + rows(3, [True], ["4"])
    )
    s = score_records(records, k=1)
    assert s["avg@k"] == s["pass@k"] == s["maj@k"] == pytest.approx(0.75)
    assert s["stderr"] == pytest.approx(math.sqrt(0.25 / 4))  # sample var of [1,0,1,1] = 0.25


def test_incomplete_and_duplicate_records_are_errors():
    with pytest.raises(ValueError, match="problem 1 has 1 sample"):
        score_records(rows(0, [True, True], ["1", "1"]) + rows(1, [True], ["1"]), k=2)
    with pytest.raises(ValueError, match="duplicate record for problem 0 sample 0"):
        score_records(rows(0, [True], ["1"]) * 2, k=1)
    with pytest.raises(ValueError, match="no records"):
        score_records([], k=1)


def test_stderr():
    assert stderr([1.0]) == 0.0
    assert stderr([0.0, 1.0, 0.0, 1.0]) == pytest.approx(math.sqrt((1 / 3) / 4))


def test_benchmark_average_is_the_unweighted_mean_of_the_six():
    scores = dict(zip(SIX_BENCHMARKS, [0.736, 0.167, 0.067, 0.5, 0.3, 0.35], strict=True))
    assert benchmark_average(scores) == pytest.approx(sum(scores.values()) / 6)
    assert benchmark_average({**scores, "toy": 1.0}) == pytest.approx(sum(scores.values()) / 6)
    assert benchmark_average({k: v for k, v in scores.items() if k != "minerva"}) is None
    assert benchmark_average({**scores, "aime25": None}) is None
    assert benchmark_average({"a": 0.5, "b": 0.25}, names=("a", "b")) == pytest.approx(0.375)
