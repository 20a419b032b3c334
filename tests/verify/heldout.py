"""Held-out cases for the `math` policy, built from the benchmark golds in the shared data folder.

Not the tuning table (cases.py): these are generated, never edited case by case, and no rule was
changed to make one of them pass. Every gold of MATH500, AIME24, AIME25, AMC23 and OlympiadBench
(the benchmarks graded with `math`) is given back in other spellings a model writes, chosen per gold
by a seeded generator:

* normal, correct: one general spelling (prose then a box with ``\\dfrac`` and spaces; "the answer
  is $G$." without a box; a ``**Final Answer**`` heading over a display box; two boxed
  intermediate results then "the final answer is \\boxed{G}"; ``</think>`` then a box; ``x = G``
  for a scalar gold), plus every spelling of the six clusters of issue #15 item 6 the gold allows
  (an angle in the other unit, a line or plane in another form, a unit on a bare number);
* normal, wrong: the gold with its last digit changed, boxed or stated, and the cluster spellings
  that are wrong (a different angle, a line with a sign flipped, a converted unit);
* adversarial (all wrong; each aims at one acceptance the clusters add): ``y = G`` for ``x = G``,
  a bare number for an angle in radians, π written in degrees, three "final answers", every
  candidate boxed, "\\boxed{W} or \\boxed{G}" after "the final answer is", a restated one-variable
  equation for its value, a curve named with another variable, a converted unit.

Labels follow verifier-notes.md §2 and the rules docs/verifier.md "Decided rules" states (units are
not converted; a degree sign against a multiple of π is the same angle).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from benchmark_golds import load_golds, perturbed

BENCHMARKS = ("math500", "aime24", "aime25", "amc23", "olympiadbench")
SEED = 15
_DOLLAR = re.compile(r"(?<!\\)\$")
_SCALAR = re.compile(r"-?\d+(?:\.\d+)?|-?\\frac\{\d+\}\{\d+\}")
_DEGREE_GOLD = re.compile(r"(-?\d+)\s*\^\s*\{?\\circ\}?")
_PI_GOLD = re.compile(r"(-)?(?:\\frac\{(\d*)\s*\\pi\}\{(\d+)\}|(\d*)\s*\\pi)")
# MATH500's equation golds in other forms a model writes: (correct forms, wrong forms)
EQUATIONS = {
    "y = 2x + 3": (
        ["2x - y + 3 = 0", "y - 2x = 3", "4x - 2y + 6 = 0", "x = \\frac{y - 3}{2}"],
        ["2x - y - 3 = 0"],
    ),
    "y = -2x": (["2x + y = 0", "-4x - 2y = 0"], ["2x - y = 0"]),
    "5x - 7y + 11z + 4 = 0": (["-5x + 7y - 11z = 4", "5x + 11z + 4 = 7y"], ["5x - 7y + 11z = 4"]),
}


@dataclass(frozen=True)
class Held:
    name: str
    group: str  # normal | adversarial
    prediction: str
    gold: str
    expected: bool


def _bare(gold: str) -> str:
    return _DOLLAR.sub("", gold).strip()


def _others(gold: str, k: int) -> list[str]:
    """k integers that are not the gold, for intermediate results and hedges."""
    return (["7", "9"] if gold in ("1001", "1003") else ["1001", "1003"])[:k]


def _general(gold: str, rng: random.Random) -> str:
    g = _bare(gold)
    a, b = _others(g, 2)
    forms = [
        "We expand, collect terms and check the edge cases.\n\nSo the result is $\\boxed{ "
        + g.replace("\\frac", "\\dfrac")
        + " }$.",
        "\\boxed{" + g + "}" if "$" in g else f"Putting the two cases together, the answer is ${g}$.",
        f"Both conditions hold.\n\n**Final Answer**\n\\[\n\\boxed{{{g}}}\n\\]",
        f"First, $a = \\boxed{{{a}}}$.\n\nNext, $b = \\boxed{{{b}}}$.\n\nTherefore, the final answer is $\\boxed{{{g}}}$.",
        f"<think>Try small cases first, then generalise.</think>\nThe answer is $\\boxed{{{g}}}$.",
    ]
    if _SCALAR.fullmatch(g):
        forms.append(f"Solving the equation, $\\boxed{{x = {g}}}$.")
    return rng.choice(forms)


def _radians(deg: int) -> str:
    q = Fraction(deg, 180)
    sign = "-" if q < 0 else ""
    q = abs(q)
    num = "" if q.numerator == 1 else str(q.numerator)
    return f"{sign}{num}\\pi" if q.denominator == 1 else f"{sign}\\frac{{{num}\\pi}}{{{q.denominator}}}"


def _pi_coefficient(g: str) -> Fraction | None:
    m = _PI_GOLD.fullmatch(g.replace(" ", ""))
    if not m:
        return None
    sign = -1 if m.group(1) else 1
    if m.group(3):
        return sign * Fraction(int(m.group(2) or 1), int(m.group(3)))
    return sign * Fraction(int(m.group(4) or 1))


def _clusters(tag: str, gold: str, wrong_int: int) -> list[Held]:
    g = _bare(gold)
    out: list[Held] = []

    def add(kind: str, group: str, pred: str, gold_: str, expected: bool) -> None:
        out.append(Held(f"{tag}/{kind}", group, pred, gold_, expected))

    m = _DEGREE_GOLD.fullmatch(g)
    if m:
        deg = int(m.group(1))
        add("angle_radians", "normal", f"\\boxed{{{_radians(deg)}}}", gold, True)
        add("angle_radians_wrong", "normal", f"\\boxed{{{_radians(deg + 1)}}}", gold, False)
    q = _pi_coefficient(g)
    if q is not None and q != 0 and (q * 180).denominator == 1:
        add("angle_degrees", "normal", f"The angle is $\\boxed{{{q * 180}^\\circ}}$.", gold, True)
        add("angle_degrees_wrong", "normal", f"The angle is $\\boxed{{{q * 180 + 1}^\\circ}}$.", gold, False)
        add("angle_bare_number", "adversarial", f"\\boxed{{{q * 180}}}", gold, False)
        add("angle_pi_in_degrees", "adversarial", f"\\boxed{{{g}^\\circ}}", gold, False)
    if g in EQUATIONS:
        right, wrong = EQUATIONS[g]
        for k, form in enumerate(right):
            add(f"equation_form{k}", "normal", f"The plane/line is $\\boxed{{{form}}}$.", gold, True)
        for k, form in enumerate(wrong):
            add(f"equation_wrong{k}", "normal", f"\\boxed{{{form}}}", gold, False)
        if g.startswith("y ="):
            add("equation_other_name", "adversarial", "\\boxed{z =" + g[3:] + "}", gold, False)
    if re.fullmatch(r"\d+", g):
        n = int(g)
        add("unit_on_bare_gold", "normal", f"\\boxed{{{n} \\text{{ cm}}}}", gold, True)
        add(
            "unit_converted",
            "adversarial",
            f"\\boxed{{{60 * n} \\text{{ minutes}}}}",
            f"{n}\\text{{ hours}}",
            False,
        )
        add("var_renamed", "adversarial", f"\\boxed{{y = {n}}}", f"x = {n}", False)
        add("restated_equation", "adversarial", f"\\boxed{{2x = {2 * n}}}", f"x = {n}", False)
        a, b = _others(g, 2)
        final = "\n\nThe final answer is $\\boxed{%s}$."
        add("three_finals", "adversarial", (final % a) + (final % b) + (final % n), g, False)
        add("every_candidate", "adversarial", f"\\boxed{{{a}}}\n\\boxed{{{b}}}\n\\boxed{{{n}}}", g, False)
        add(
            "anchored_or",
            "adversarial",
            f"The final answer is $\\boxed{{{wrong_int}}}$ or $\\boxed{{{n}}}$.",
            g,
            False,
        )
    return out


def heldout_cases(root: Path) -> list[Held]:
    cases: list[Held] = []
    for bench in BENCHMARKS:
        rng = random.Random(f"{SEED}/{bench}")
        for i, gold in enumerate(load_golds(root, bench)):
            tag = f"{bench}/{i}"
            cases.append(Held(f"{tag}/general", "normal", _general(gold, rng), gold, True))
            if rng.random() < 0.5:
                cases.append(Held(f"{tag}/last_digit", "normal", perturbed(gold), gold, False))
            else:
                wrong = perturbed(gold).removeprefix("The final answer is $\\boxed{").removesuffix("}$.")
                cases.append(
                    Held(f"{tag}/stated_wrong", "normal", f"Hence the answer is ${wrong}$.", gold, False)
                    if "$" not in wrong
                    else Held(f"{tag}/last_digit", "normal", perturbed(gold), gold, False)
                )
            digits = re.sub(r"\D", "", _bare(gold))
            cases.extend(_clusters(tag, gold, int(digits[-6:] or 0) + 1))
    return cases
