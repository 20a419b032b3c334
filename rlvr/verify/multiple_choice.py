"""Multiple-choice grading: which lettered option an output commits to, compared with the gold letter.

The gold is ``choice_gold(letter, options)``, a JSON text ``{"choice": "C", "options": [...]}`` (what
rlvr.eval.benchmarks writes for ARC and GPQA), or a bare letter ``"C"`` (letters only: no option
text to match). The options' order is the prompt's: option i has letter ``LETTERS[i]``.

Where the committed answer is (the first rule that finds one decides):

1. Only the text after the last ``</think>`` is graded; an unclosed ``<think>`` is ``truncated``.
2. The last ``\\boxed{}``/``\\fbox{}``: its content, read as a choice (below). A box that reads as
   no choice is still the answer (``mismatch``: the model committed to something else). Boxes that
   end joined by "or" with different choices, or ``hedge_boxes`` (3) different choices boxed
   anywhere, are ``hedged``.
3. No box: the last closing statement inside the last ``anchor_window`` characters ("the answer
   is", "final answer:", "Answer:", "the correct option/choice is") whose rest of line reads as a
   choice; a leading letter there commits ("the answer is C because ...").
4. Neither: the last non-empty line, read as a choice as a whole ("(C)", "**C**", "C."), or holding
   exactly one parenthesised letter ("So the best fit is (C).").

Reading a text as a choice, after dropping markdown and LaTeX wrappers (``**``, ``$``, ``\\text{}``):

- a letter alone: ``C``, ``(C)``, ``[C]``, ``C)``, ``C.`` (lower case only inside a box: ``\\boxed{c}``);
- a letter with its option marker and text: ``(C) 42 m/s``, ``C) 42``, ``C. 42``: the letter decides;
- two different letters joined by or/and/comma/slash (``A or C``, ``(A), (C)``): ``hedged``;
- otherwise the full text of exactly one option (case, spaces and a final period ignored): its
  letter. A text that is one option's letter and another option's text is ambiguous (``no_answer``).

A letter beyond the options (E of four) is a ``mismatch``. The Result's answer is the letter, so
majority votes count letters however they were written.

This module imports nothing of rlvr outside rlvr.verify.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from rlvr.verify.extract import find_boxes
from rlvr.verify.policy import Policy

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
JOIN_GAP = 80  # an earlier box this close before the last one, joined by "or", is part of a hedge

_WRAPPERS = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_ALONE = re.compile(r"^[(\[]?([A-Za-z])[)\]]?[.:]?$")
_WITH_TEXT = re.compile(r"^(?:[(\[]([A-Z])[)\]]\s*[.:]?|([A-Z])[).:])\s+\S")
_PAIR = re.compile(r"^[(\[]?([A-Z])[)\]]?\s*(?:,|\bor\b|\band\b|/|&)\s*[(\[]?([A-Z])[)\]]?(?![A-Za-z])")
_LEADING = re.compile(r"^[(\[]?([A-Z])[)\]]?(?=[\s.,:;!]|$)")
_PAREN = re.compile(r"\(([A-Z])\)")
_ANCHORS = re.compile(
    r"(?:final answer|the (?:correct |best |right )?answer|\banswer|"
    r"the (?:correct|best|right) (?:option|choice))\s*(?:is|:|=)?\s*:?\s*",
    re.IGNORECASE,
)
_OR = re.compile(r"\bor\b", re.IGNORECASE)


@dataclass(frozen=True)
class Graded:
    """One verdict before timing: reason (a verifier REASONS value) and the answer read."""

    reason: str
    answer: str | None


def choice_gold(letter: str, options: list[str]) -> str:
    """The gold text for a question whose options are shown as A, B, ... in this order.

    >>> choice_gold("B", ["4", "5"])
    '{"choice": "B", "options": ["4", "5"]}'
    """
    if letter not in LETTERS[: len(options)]:
        raise ValueError(f"gold letter {letter!r} is not one of the {len(options)} options")
    return json.dumps({"choice": letter, "options": list(options)}, ensure_ascii=False)


def parse_gold(gold: object) -> tuple[str, list[str] | None] | None:
    """(letter, options or None) from a choice_gold text or a bare letter; None if neither."""
    if not isinstance(gold, str):
        return None
    text = gold.strip()
    if len(text) == 1 and text.upper() in LETTERS:
        return text.upper(), None
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return None
        letter, options = data.get("choice"), data.get("options")
        if isinstance(letter, str) and isinstance(options, list) and letter in LETTERS[: len(options)]:
            return letter, [str(o) for o in options]
    return None


def grade(prediction: str, gold: object, policy: Policy) -> Graded:
    """Judge one output against a multiple-choice gold (the module docstring's rules)."""
    parsed = parse_gold(gold)
    if parsed is None or not isinstance(prediction, str):
        return Graded("unparseable", None)
    letter, options = parsed
    reason, answer = committed_choice(prediction, options, policy)
    if reason != "ok":
        return Graded(reason, answer)
    return Graded("match" if answer == letter else "mismatch", answer)


def committed_choice(text: str, options: list[str] | None, policy: Policy) -> tuple[str, str | None]:
    """(reason, answer): reason ``ok`` with the letter (or the unreadable boxed text, which then
    mismatches), or ``no_answer``/``truncated``/``hedged``."""
    if not text:
        return "no_answer", None
    close = text.rfind("</think>")
    if close >= 0:
        text = text[close + len("</think>") :]
    elif "<think>" in text:
        return "truncated", None
    spans, unterminated = find_boxes(text)
    if unterminated:
        return "truncated", None
    if spans:
        return _from_boxes(text, spans, options, policy)
    if policy.require_box:
        return "no_answer", None
    tail = text[-policy.anchor_window :]
    for anchor in reversed(list(_ANCHORS.finditer(tail))):  # "this answer is consistent" commits to nothing
        found = _read(tail[anchor.end() :].split("\n", 1)[0], options, leading=True)
        if found[0] != "no_answer":
            return found
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "no_answer", None
    last = lines[-1]
    found = _read(last, options)
    if found[0] != "no_answer":
        return found
    marked = {m.group(1) for m in _PAREN.finditer(last)}
    if len(marked) == 1:
        return "ok", marked.pop()
    return "no_answer", None


def _from_boxes(
    text: str, spans: list[tuple[int, int, str]], options, policy: Policy
) -> tuple[str, str | None]:
    reads = [_read(content, options, boxed=True) for _, _, content in spans]
    reason, answer = reads[-1]
    if reason == "no_answer":  # a box that is no choice is still what the model committed to
        cleaned = _clean(spans[-1][2])
        return ("ok", cleaned[:200]) if cleaned else ("no_answer", None)
    if reason != "ok":
        return reason, answer
    if len(spans) > 1:
        prev_reason, prev = reads[-2]
        gap = text[spans[-2][1] : spans[-1][0]]
        if prev_reason == "ok" and prev != answer and len(gap) <= JOIN_GAP and _OR.search(gap):
            return "hedged", answer
    boxed = {a for r, a in reads if r == "ok" and a in LETTERS}
    if len(boxed) >= policy.hedge_boxes:
        return "hedged", answer
    return "ok", answer


def _clean(text: str) -> str:
    """Drop LaTeX text wrappers, markdown emphasis and math delimiters around an answer."""
    prev = None
    while prev != text:
        prev, text = text, _WRAPPERS.sub(r"\1", text)
    text = text.replace("**", "").replace("__", "").replace("\\(", "").replace("\\)", "")
    return text.strip().strip("$`'\"").strip().lstrip("#").strip()


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", _clean(text)).strip().rstrip(".").strip().casefold()


def _read(
    text: str, options: list[str] | None, *, boxed: bool = False, leading: bool = False
) -> tuple[str, str | None]:
    """A text read as a choice: ("ok", letter), ("hedged", first letter), or ("no_answer", None)."""
    text = _clean(text)
    if not text:
        return "no_answer", None
    valid = LETTERS[: len(options)] if options else LETTERS
    letter = None
    alone = _ALONE.match(text)
    if alone and (boxed or alone.group(1).isupper()):
        letter = alone.group(1).upper()
    elif (pair := _PAIR.match(text)) and pair.group(1) != pair.group(2):
        return "hedged", pair.group(1)
    elif m := _WITH_TEXT.match(text):
        letter = m.group(1) or m.group(2)
    by_text = _by_text(text, options)
    if letter is not None:
        if by_text is not None and by_text != letter and valid.find(letter) >= 0:
            return "no_answer", None  # "B" is option B's letter and also option C's text
        return "ok", letter
    if by_text is not None:
        return "ok", by_text
    if leading and (m := _LEADING.match(text)):
        return "ok", m.group(1)
    return "no_answer", None


def _by_text(text: str, options: list[str] | None) -> str | None:
    """The letter of the one option whose text this is, or None (no options, none, or several)."""
    if not options:
        return None
    want = _norm(text)
    hits = [LETTERS[i] for i, o in enumerate(options) if _norm(o) == want]
    return hits[0] if len(hits) == 1 else None
