"""The contract other stages call: names, Result shape, gold types, the truncated flag."""

from __future__ import annotations

import dataclasses
import json

import pytest

from rlvr.verify import REASONS, Result, Verifier, VerifierConfig, verify, verify_batch


def test_result_is_json_friendly():
    result = verify(r"so $\boxed{\frac{1}{2}}$", "0.5")
    assert isinstance(result, Result)
    row = dataclasses.asdict(result)
    assert json.loads(json.dumps(row)) == row
    assert {"score", "answer", "reason", "seconds"} <= set(row)
    assert (result.score, result.answer, result.reason) == (1.0, r"\frac{1}{2}", "match")


GOLD_TYPES = {
    "amc_float": (r"\boxed{27}", 27.0, "match"),
    "int": (r"\boxed{27}", 27, "match"),
    "e_notation_float": (r"\boxed{10^{-5}}", 1e-05, "match"),
    "olympiad_list_one": (r"\boxed{\frac12}", ["$\\frac{1}{2}$"], "match"),
    "olympiad_list_many": (r"\boxed{3, 1}", ["$1$", "$3$"], "match"),
    "none": (r"\boxed{5}", None, "unparseable"),
}


@pytest.mark.parametrize("pred,gold,reason", GOLD_TYPES.values(), ids=GOLD_TYPES.keys())
def test_gold_types(pred, gold, reason):
    assert verify(pred, gold).reason == reason


def test_truncated_flag_overrides_content():
    results = verify_batch([r"\boxed{5}", r"\boxed{5}"], ["5", "5"], truncated=[True, False])
    assert [(r.score, r.reason, r.answer) for r in results] == [(0.0, "truncated", None), (1.0, "match", "5")]


def test_length_mismatch_is_an_error():
    with Verifier(VerifierConfig(policy="math_exact_only")) as v:
        with pytest.raises(ValueError):
            v.verify_batch(["a"], ["a", "b"])
        with pytest.raises(ValueError):
            v.verify_batch(["a"], ["a"], truncated=[True, False])


def test_reward_policy_requires_box_and_exact_only_starts_no_workers():
    text = "Thus the answer is 7."
    assert verify(text, "7").reason == "match"
    assert verify(text, "7", config=VerifierConfig(policy="math_reward")).reason == "no_answer"
    with Verifier(VerifierConfig(policy="math_exact_only")) as v:
        assert v.verify(r"\boxed{\sin x}", r"\sin x").reason == "match"  # same string
        assert v.verify(r"\boxed{\cos x}", r"\sin x").reason == "unparseable"
        assert v.worker_pids() == []
    assert set(REASONS) == {
        "match",
        "mismatch",
        "no_answer",
        "truncated",
        "hedged",
        "unparseable",
        "timeout",
        "rejected_prescreen",
    }


def test_cache_serves_repeated_answers():
    with Verifier() as v:
        first, second = v.verify_batch([r"\boxed{42}", r"The answer is $\boxed{42}$."], ["42", "42"])
    assert first.stage == "exact" and second.stage == "cache" and second.reason == "match"


def test_start_prespawns_workers():
    with Verifier(VerifierConfig(workers=1)) as v:
        v.start()
        assert v.verify(r"\boxed{\sqrt[3]{x}+1}", r"1+\sqrt[3]{x}").reason == "match"
        assert len(v.worker_pids()) == 1


_FUZZ_TOKENS = list("0123456789+-*/^_{}()[]=<>.,;!|$% xyei") + [
    "\\frac",
    "\\sqrt",
    "\\boxed{",
    "\\pi",
    "\\cdot",
    "\\infty",
    "\\le",
    "\\pm",
    "\\text{",
    "\\cup",
    "\\begin{pmatrix}",
    "\\end{pmatrix}",
    "\\\\",
    "&",
    "\\{",
    "\\}",
    "\\overline{",
    "^\\circ",
    "\\%",
    "</think>",
    "<think>",
    "\\left(",
    "\\right)",
    " or ",
    " and ",
    "x=",
    "\\alpha",
    "'",
    "(A)",
]


def test_random_garbage_never_raises_and_never_matches_a_fixed_gold():
    """Fuzzing found an IndexError on an empty union part; the fast path must decide or defer."""
    import random

    rng = random.Random(0)
    preds = [
        "\\boxed{" + "".join(rng.choice(_FUZZ_TOKENS) for _ in range(rng.randint(1, 25))) + "}"
        for _ in range(3000)
    ]
    with Verifier(VerifierConfig(policy="math_exact_only")) as v:
        results = v.verify_batch(preds, ["\\frac{7}{13}"] * len(preds))
    assert all(r.stage != "error" for r in results)
    assert all(r.score == 0.0 for r in results)
    assert verify(r"\boxed{\cup2.]3}+,.$1\%}", "5").score == 0.0
