"""Extraction contract: which answer an output commits to, and why none when it does not."""

from __future__ import annotations

import pytest

from rlvr.verify import extract_answer
from rlvr.verify.extract import find_boxes

EXTRACTION = {
    "last_box": (r"first \boxed{3} then after checking \boxed{4}", ("4", "ok")),
    "fbox": (r"\fbox{12}", ("12", "ok")),
    "brace_less_box": (r"so \boxed 7.", ("7.", "ok")),
    "nested_box": (r"\boxed{\boxed{7}}", ("7", "ok")),
    "escaped_braces": (r"\boxed{\{1,2\}}", (r"\{1,2\}", "ok")),
    "after_think_only": (r"<think>\boxed{1}</think> so \boxed{2}", ("2", "ok")),
    "unclosed_think": ("<think>we get 42", (None, "truncated")),
    "unterminated_box": (r"\boxed{\frac{1}{2}", (None, "truncated")),
    "joined_boxes": (r"$\boxed{1}$, $\boxed{2}$", ("1, 2", "ok")),
    "or_hedge": (r"$\boxed{1}$ or $\boxed{2}$", ("1, 2", "hedged")),
    "or_group": ("\\boxed{1}\nso\\boxed{2}\nor maybe it is \\boxed{3}", ("2, 3", "hedged")),
    "every_candidate": (r"Case one: \boxed{1}. Case two: \boxed{2}. Case three: \boxed{3}.", ("3", "hedged")),
    "anchor": ("The final answer is $x=3$. I hope it is correct.", ("x=3", "ok")),
    "anchor_colon": ("Answer: 17", ("17", "ok")),
    "no_anchor_number": ("so 9 x 5 = 45 and then", (None, "no_answer")),
    "empty": ("", (None, "no_answer")),
    "empty_box": (r"\boxed{}", (None, "no_answer")),
}


@pytest.mark.parametrize("text,expected", EXTRACTION.values(), ids=EXTRACTION.keys())
def test_extract(text, expected):
    assert extract_answer(text) == expected


def test_box_bomb_is_bounded():
    spans, unterminated = find_boxes("\\boxed{" * 100_000)
    assert spans == [] and unterminated
