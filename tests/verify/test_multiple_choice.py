"""Letter grading (rlvr/verify/multiple_choice.py), each rule of docs/verifier.md's "Multiple choice"
table both ways, on a hand-written question (not from any benchmark): which gas plants take in,
options A oxygen, B nitrogen, C carbon dioxide, D helium; the gold is C."""

from __future__ import annotations

import pytest

from rlvr.verify import Verifier, VerifierConfig
from rlvr.verify.multiple_choice import choice_gold, parse_gold

OPTIONS = ["oxygen", "nitrogen", "carbon dioxide", "helium"]
GOLD = choice_gold("C", OPTIONS)


@pytest.fixture(scope="module")
def mc():
    with Verifier(VerifierConfig(policy="multiple_choice")) as v:
        yield v


def judge(mc, text: str, gold: str = GOLD) -> tuple[str, str | None]:
    r = mc.verify(text, gold)
    return r.reason, r.answer


# (output, reason, answer read): the right letter however it is written ...
MATCHES = [
    ("so the plant needs CO2: \\boxed{C}", "C"),
    ("\\boxed{(C)}", "C"),
    ("\\boxed{\\text{C}}", "C"),
    ("\\boxed{c}", "C"),  # a lower-case letter counts inside a box
    ("\\boxed{C. carbon dioxide}", "C"),
    ("$\\boxed{\\textbf{(C)}}$", "C"),
    ("Plants fix carbon. The answer is (C).", "C"),
    ("Answer: C", "C"),
    ("Answer: $C$", "C"),
    ("The correct option is C because plants fix carbon.", "C"),
    ("**Final answer:** **C**", "C"),
    ("Reasoning about photosynthesis...\n\n**C**", "C"),
    ("Reasoning...\nC) carbon dioxide", "C"),
    ("So the best fit is (C).", "C"),
    ("The answer is carbon dioxide.", "C"),  # the option's text
    ("\\boxed{Carbon  Dioxide}", "C"),
    (
        "Answer: C\n\nThis answer is consistent with photosynthesis.",
        "C",
    ),  # a later "answer" that commits to nothing
    ("<think>maybe A? no.</think> Answer: C", "C"),
    ("\\boxed{A} at first, but on reflection the answer is \\boxed{C}", "C"),  # corrected, not hedged
]

# ... and everything else is not credited, with the reason.
REJECTS = [
    ("\\boxed{B}", "mismatch", "B"),
    ("The answer is (A).", "mismatch", "A"),
    ("Answer: E", "mismatch", "E"),  # a letter beyond the options
    ("The answer is oxygen.", "mismatch", "A"),
    ("\\boxed{CO_2}", "mismatch", "CO_2"),  # boxed, but not a choice: still the committed answer
    ("The answer is A or C.", "hedged", "A"),
    ("Answer: (A), (C)", "hedged", "A"),
    ("\\boxed{A or C}", "hedged", "A"),
    ("\\boxed{A} or \\boxed{C}", "hedged", "C"),
    ("\\boxed{A}, \\boxed{B} and \\boxed{C}", "hedged", "C"),  # boxing three candidates
    ("Plants take in a gas during the day.", "no_answer", None),
    ("I think (A) and (C) are both plausible.", "no_answer", None),  # two marked letters, no commitment
    ("The answer is a bit unclear.", "no_answer", None),  # a lower-case article is no letter
    ("<think>C looks right", "truncated", None),
    ("so the answer is \\boxed{C", "truncated", None),
]


@pytest.mark.parametrize("text,answer", MATCHES)
def test_the_right_letter_is_credited_however_written(mc, text, answer):
    assert judge(mc, text) == ("match", answer)


@pytest.mark.parametrize("text,reason,answer", REJECTS)
def test_wrong_hedged_and_missing_answers_are_not_credited(mc, text, reason, answer):
    assert judge(mc, text) == (reason, answer)


def test_a_bare_letter_gold_grades_letters_only(mc):
    assert judge(mc, "Answer: C", "C") == ("match", "C")
    assert judge(mc, "\\boxed{c}", "c") == ("match", "C")
    assert judge(mc, "Answer: D", "C") == ("mismatch", "D")
    assert judge(mc, "The answer is carbon dioxide.", "C") == ("no_answer", None)  # no option texts to match


def test_text_that_is_a_letter_and_another_options_text_is_ambiguous(mc):
    gold = choice_gold("B", ["C", "7", "B", "9"])  # option A's text is "C", option C's text is "B"
    assert judge(mc, "Answer: C", gold) == ("no_answer", None)
    assert judge(mc, "Answer: 7", gold) == ("match", "B")
    assert judge(mc, "Answer: (B) 7", gold) == ("match", "B")  # the letter with its marker decides


def test_truncated_outputs_and_unreadable_golds_score_zero(mc):
    r = mc.verify_batch(["Answer: C", "Answer: C"], [GOLD, "not a gold"], truncated=[True, False])
    assert [x.reason for x in r] == ["truncated", "unparseable"] and [x.score for x in r] == [0.0, 0.0]
    assert mc.stats()["fallback_items"] == 0 and mc.worker_pids() == []  # never the worker pool


def test_require_box_turns_off_the_unboxed_rules():
    with Verifier(VerifierConfig(policy="multiple_choice", require_box=True)) as v:
        assert v.verify("Answer: C", GOLD).reason == "no_answer"
        assert v.verify("\\boxed{C}", GOLD).reason == "match"


def test_gold_round_trip_and_bad_letters():
    assert parse_gold(GOLD) == ("C", OPTIONS)
    assert parse_gold("d") == ("D", None)
    assert parse_gold("42") is None and parse_gold('{"choice": "E", "options": ["a", "b"]}') is None
    with pytest.raises(ValueError, match="not one of the 2 options"):
        choice_gold("C", ["a", "b"])
