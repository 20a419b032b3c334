"""The `math` policy's decided rules for issue #15 item 6 (docs/verifier.md, "Decided rules"), each
tested both ways, and the held-out set (heldout.py) as a gate: >= 97 % on its normal cases and no
false positive on its adversarial ones."""

from __future__ import annotations

from dataclasses import replace

import pytest
from heldout import heldout_cases

from rlvr.verify.exact import align, compare
from rlvr.verify.extract import extract_answer
from rlvr.verify.normalize import normalize
from rlvr.verify.policy import MATH, get_policy


def boxed(x: str) -> str:
    return f"We simplify and check.\n\nTherefore, the final answer is $\\boxed{{{x}}}$."


def grade(verifiers, pred: str, gold: str, policy: str = "math") -> str:
    return verifiers(policy).verify(pred, gold).reason


# 1. an equation in another form ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pred", "gold", "reason"),
    [
        ("2x - y + 3 = 0", "y = 2x + 3", "match"),
        ("y - 2x = 3", "y = 2x + 3", "match"),
        ("-6x + 3y - 9 = 0", "y = 2x + 3", "match"),
        (r"x = \frac{y - 3}{2}", "y = 2x + 3", "match"),
        ("y = 2x + 3", "2x - y + 3 = 0", "match"),
        (r"y - \sqrt[3]{x} = 0", r"y = \sqrt[3]{x}", "match"),  # decided in the symbolic fallback
        ("2x - y - 3 = 0", "y = 2x + 3", "mismatch"),
        ("z = 2x + 3", "y = 2x + 3", "mismatch"),
        (r"y + \sqrt[3]{x} = 0", r"y = \sqrt[3]{x}", "mismatch"),
        ("xy = 1", r"y = \frac{1}{x}", "mismatch"),  # equivalent only where x != 0: not proportional
        ("2x = 10", "x = 5", "mismatch"),  # a one-variable equation restated is no value
        ("3x + 7 = 12", "12", "mismatch"),  # math-verify alone compares the right side: a match
        ("x < 2x + 3", "y = 2x + 3", "mismatch"),  # inequalities are not equations
        ("y = 2x", "f(x) = 2x", "match"),  # a function definition is answered by its right side
        ("f(x) = 2x", "f(x) = 2x", "match"),
        ("y = 3x", "f(x) = 2x", "mismatch"),
    ],
)
def test_equation_forms(verifiers, pred, gold, reason):
    assert grade(verifiers, boxed(pred), gold) == reason


def test_equation_forms_switch_off_keeps_the_value_reading():
    off = replace(MATH, equation_forms=False)
    g, p = align(normalize("y = 2x + 3"), normalize("2x - y + 3 = 0"), off)
    assert (g.text, g.var) == ("2x+3", "y")  # compared as the value 2x + 3, which no equation is
    g, p = align(normalize("y = 2x + 3"), normalize("2x - y + 3 = 0"), MATH)
    assert g.var is None and compare(g, p, MATH) == "match"


# 2. the same quantity in other units: never converted --------------------------------------------
@pytest.mark.parametrize(
    ("pred", "gold", "reason"),
    [
        (r"1.5 \text{ hours}", "1.5", "match"),  # a unit on one side only is set aside
        (r"90 \text{ minutes}", "90", "match"),
        (r"150 \text{ cm}", r"150", "match"),
        (r"90 \text{ minutes}", r"1.5 \text{ hours}", "mismatch"),
        (r"150 \text{ cm}", r"1.5 \text{ m}", "mismatch"),
        (r"1.5 \text{ minutes}", r"1.5 \text{ hours}", "mismatch"),
        ("90", r"1.5 \text{ hours}", "mismatch"),
    ],
)
def test_units_are_not_converted(verifiers, pred, gold, reason):
    assert grade(verifiers, boxed(pred), gold) == reason


# 3. degrees vs radians ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pred", "gold", "reason"),
    [
        (r"60^\circ", r"\frac{\pi}{3}", "match"),
        (r"\frac{\pi}{3}", r"60^\circ", "match"),
        (r"-30^\circ", r"-\frac{\pi}{6}", "match"),
        (r"180 \text{ degrees}", r"\pi", "match"),
        ("60", r"\frac{\pi}{3}", "mismatch"),  # no degree sign: 60 radians
        (r"\frac{\pi}{3}", "60", "mismatch"),  # a bare gold is no angle in degrees
        (r"45^\circ", r"\frac{\pi}{3}", "mismatch"),
        (r"\frac{\pi}{3}^\circ", r"\frac{\pi}{3}", "mismatch"),  # π degrees is another angle
        (r"(3, 90^\circ)", r"\left( 3, \frac{\pi}{2} \right)", "mismatch"),  # single angles only
    ],
)
def test_degrees_and_radians(verifiers, pred, gold, reason):
    assert grade(verifiers, boxed(pred), gold) == reason


def test_angle_units_switch_off_keeps_degrees_apart():
    off = replace(MATH, angle_units=False)
    assert compare(*align(normalize(r"\frac{\pi}{3}"), normalize(r"60^\circ"), off), off) == "mismatch"
    assert compare(*align(normalize(r"\frac{\pi}{3}"), normalize(r"60^\circ"), MATH), MATH) == "match"


# 4. an answer stated without a box ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "policy", "reason"),
    [
        ("We add the cases. So the answer is 12.", "math", "match"),
        ("We add the cases.\n\n**Final Answer**\n\\[ 12 \\]", "math", "match"),
        ("We add the cases.\n\n## Final Answer\n$12$", "math", "match"),
        ("We add the cases. So the answer is 12.", "math_reward", "no_answer"),  # RL reward: box required
        ("Adding the two counts, the total is 12.", "math", "no_answer"),  # never the last number
        ("So the **final answer** is 12.", "math", "match"),
        ("The **final answer** must be an integer, so 12 it is.", "math", "no_answer"),
        ("We must now find the final answer\nby adding 5 and 7.", "math", "no_answer"),
    ],
)
def test_unboxed_final_statement(verifiers, text, policy, reason):
    assert grade(verifiers, text, "12", policy) == reason


# 5. boxed intermediate steps, then a final boxed answer ------------------------------------------
STEPS = "First, $a = \\boxed{3}$.\n\nNext, $b = \\boxed{4}$.\n\n"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (STEPS + "Therefore, the final answer is $\\boxed{12}$.", "ok"),
        (STEPS + "**Final Answer**\n\\[\n\\boxed{12}\n\\]", "ok"),
        (STEPS + "Answer: \\boxed{12}", "ok"),
        (STEPS + "Combining, we get $\\boxed{12}$.", "hedged"),  # no closing statement
        (STEPS + "Then the final answer is\nnot clear yet, so $\\boxed{12}$.", "hedged"),  # not right before
        (STEPS + "Therefore, the final answer is $\\boxed{11}$ or $\\boxed{12}$.", "hedged"),
        (
            "The final answer is \\boxed{3}.\nThe final answer is \\boxed{4}.\nThe final answer is \\boxed{12}.",
            "hedged",
        ),
        ("Maybe \\boxed{3}. Perhaps \\boxed{4}. Perhaps \\boxed{12}.", "hedged"),
    ],
)
def test_final_box_after_intermediate_boxes(text, reason):
    answer, why = extract_answer(text, MATH)
    assert why == reason
    assert answer is not None and answer.endswith("12")


def test_anchored_final_box_switch_off_keeps_the_hedge():
    text = STEPS + "Therefore, the final answer is $\\boxed{12}$."
    assert extract_answer(text, replace(MATH, anchored_final_box=False))[1] == "hedged"
    assert extract_answer(text, get_policy("math"))[1] == "ok"


# 6. variable names -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pred", "gold", "reason"),
    [
        ("x = 6", "x = 6", "match"),
        ("6", "x = 6", "match"),  # a side without a name still matches
        ("y = 6", "6", "match"),
        ("a_{1} = 6", "a_1 = 6", "match"),
        ("6 = x", "x = 6", "match"),
        ("y = 6", "x = 6", "mismatch"),
        ("X = 6", "x = 6", "mismatch"),  # names are case-sensitive
        (r"\theta = 6", "x = 6", "mismatch"),
    ],
)
def test_variable_names(verifiers, pred, gold, reason):
    assert grade(verifiers, boxed(pred), gold) == reason


def test_variable_names_switch_off_is_the_old_reading():
    off = replace(MATH, var_names=False)
    assert compare(normalize("x = 6"), normalize("y = 6"), off) == "match"
    assert compare(normalize("x = 6"), normalize("y = 6"), MATH) == "mismatch"


# the paper policies do not take these rules --------------------------------------------------------
def test_paper_policies_keep_their_own_decisions(verifiers):
    assert grade(verifiers, boxed("y = 6"), "x = 6", "one_shot_reward") == "match"
    assert grade(verifiers, boxed(r"60^\circ"), r"\frac{\pi}{3}", "qwen_math_eval") == "mismatch"


# the held-out set ---------------------------------------------------------------------------------
def test_heldout_set_accuracy_and_no_false_positive(shared_data, verifiers):
    cases = heldout_cases(shared_data)
    results = verifiers("math").verify_batch([c.prediction for c in cases], [c.gold for c in cases])
    normal = [(c, r) for c, r in zip(cases, results, strict=True) if c.group == "normal"]
    adversarial = [(c, r) for c, r in zip(cases, results, strict=True) if c.group == "adversarial"]
    assert len(normal) > 2000 and len(adversarial) > 1000
    assert {c.expected for c, _ in adversarial} == {False}
    accuracy = sum((r.score == 1.0) == c.expected for c, r in normal) / len(normal)
    false_positives = [c.name for c, r in normal + adversarial if r.score == 1.0 and not c.expected]
    assert false_positives == []
    assert accuracy >= 0.97, accuracy
