"""Grading policies: the switches where datasets legitimately disagree, in one explicit registry.

Every policy is a frozen dataclass so it can travel to worker processes and be part of cache keys.
The default, ``math``, follows the labelling policy of verifier-notes.md §2: exact comparison,
decimal approximations of irrational golds rejected, points/tuples ordered, solution lists and
sets unordered, a solved inequality accepted for an interval gold, a missing % sign accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Policy:
    """How answers are compared once extracted.

    Attributes:
        name: registry key.
        require_box: only a ``\\boxed{}``/``\\fbox{}`` answer counts; without one the item is
            ``no_answer``. Off by default so "The final answer is 7." grades in evaluation; RL
            reward policies turn it on so the format is part of the reward.
        anchor_window: without a box, an explicit closing statement ("final answer is",
            "the answer is", "Answer:") is accepted only inside the last this-many characters.
        numeric: ``"exact"`` compares numbers as exact rationals/surds (MATH, AIME, AMC,
            OlympiadBench); ``"sig_figs"`` accepts a number that rounds to a decimal gold at the
            gold's own precision (Minerva's rounded physical quantities).
        interval_relations: accept a solved inequality (``x \\le 2``, ``-2<x<7``) for an interval
            gold. Only solved forms (the variable alone on one side) are accepted.
        percent_as_fraction: for a gold carrying ``%``, also accept gold/100 (``0.175`` for ``17.5\\%``).
        hedge_boxes: this many distinct boxed values that are not one joined multi-part answer
            make the output a hedge (boxing every candidate).
        max_answer_chars: longer extracted answers are rejected before parsing, unless the gold
            itself is at least half that long (then 2 × gold length + 50 is the limit).
        equation_forms: a ``var = expression`` answer in two or more variables is compared as the
            equation it is, so ``2x - y + 3 = 0`` matches ``y = 2x + 3`` (left minus right sides
            proportional by a nonzero constant, exact path or the symbolic fallback).
        angle_units: an angle with an explicit degree sign equals its radian value when the other
            side is a multiple of π (``60^\\circ`` = ``\\frac{\\pi}{3}``); a bare ``60`` never does.
        var_names: when both sides are ``name = value``, the names must agree (``y = 6`` is not
            ``x = 6``); a side without a name still matches (``6`` for ``x = 6``).
        anchored_final_box: several distinct boxed values are not a hedge when the last box is
            introduced by a closing statement ("the final answer is \\boxed{12}") and no earlier
            box with another value is (intermediate results, then the answer).
        symbolic: use the math-verify fallback in worker processes for what the exact path
            cannot decide; without it such items are ``unparseable``.
        rules: ``"rlvr"`` for rlvr's own pipeline; ``"multiple_choice"`` for lettered options
            (``multiple_choice.py``: uses require_box, anchor_window and hedge_boxes only);
            ``"one_shot_reward"`` or ``"qwen_math_eval"``
            to reproduce a published grader's decision (``paper_rules.py``); those two ignore the
            switches above except ``symbolic``, and use rlvr's equivalence (exact path, worker
            pool, timeouts) only where the original calls sympy.
    """

    name: str
    require_box: bool = False
    anchor_window: int = 300
    numeric: str = "exact"
    interval_relations: bool = True
    percent_as_fraction: bool = True
    hedge_boxes: int = 3
    max_answer_chars: int = 400
    equation_forms: bool = True
    angle_units: bool = True
    var_names: bool = True
    anchored_final_box: bool = True
    symbolic: bool = True
    rules: str = "rlvr"


MATH = Policy(name="math")

POLICIES: dict[str, Policy] = {
    # Default for MATH-style evaluation (MATH500, AIME, AMC, OlympiadBench).
    "math": MATH,
    # RL reward: same comparison, but the answer must be boxed (the format is part of the task).
    "math_reward": replace(MATH, name="math_reward", require_box=True),
    # Minerva: golds are rounded physical quantities, so numbers match at the gold's precision.
    "minerva": replace(MATH, name="minerva", numeric="sig_figs"),
    # Fast and dependency-free: never starts worker processes (undecided items are unparseable).
    "math_exact_only": replace(MATH, name="math_exact_only", symbolic=False),
    # 1-shot RLVR's training reward (deepscaler.compute_score, use_think=False): last \boxed only.
    "one_shot_reward": replace(MATH, name="one_shot_reward", rules="one_shot_reward"),
    # Qwen2.5-Math's evaluation harness (1-shot RLVR's fork), per benchmark (row field `benchmark`).
    "qwen_math_eval": replace(MATH, name="qwen_math_eval", rules="qwen_math_eval"),
    # Multiple-choice benchmarks (ARC, GPQA): the committed option letter against the gold letter
    # (multiple_choice.py); the gold is multiple_choice.choice_gold's text or a bare letter.
    "multiple_choice": replace(MATH, name="multiple_choice", rules="multiple_choice", symbolic=False),
}

NUMERIC_MODES = ("exact", "sig_figs")


def get_policy(name: str, **overrides: object) -> Policy:
    """Look a policy up by name and apply non-None overrides."""
    if name not in POLICIES:
        raise KeyError(f"unknown verifier policy {name!r}; known: {', '.join(sorted(POLICIES))}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return replace(POLICIES[name], **changes) if changes else POLICIES[name]
