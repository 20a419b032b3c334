"""Extraction: find the one final answer an output commits to, or say why there is none.

Contract (verifier-notes.md §5.1), identical for reward and evaluation:

* If ``</think>`` occurs, only the text after the last one is graded; an unclosed ``<think>`` is
  a truncated output.
* The answer is the last complete ``\\boxed{…}`` / ``\\fbox{…}`` (brace-matched) or ``\\boxed X``.
  An unterminated last box means the output was cut off: ``truncated``.
* Trailing boxes separated only by commas/"and" form one multi-part answer and are joined with
  commas; boxes separated by "or" are a ``hedged`` answer, and so is boxing ``hedge_boxes`` or
  more distinct values (boxing every candidate), unless the final box is introduced by a closing
  statement that no earlier box with another value has (``anchored_final_box``: boxed
  intermediate results, then "the final answer is \\boxed{12}").
* Without a box, an explicit closing statement ("final answer is", "the answer is", "Answer:")
  counts only inside the last ``anchor_window`` characters, and only when the policy allows it.
* Never a stray number from the reasoning, and never a fallback to other text when the box
  turns out not to parse (that is how math-verify credits truncated outputs).
"""

from __future__ import annotations

import re

from rlvr.verify.policy import MATH, Policy

BOX_CMDS = ("\\boxed", "\\fbox")
MAX_BOXES = 64  # boxes examined from the end; bounds the work on box-bomb inputs
JOIN_GAP = 80  # boxes further apart than this are separate statements, not one answer
MAX_BOX_CHARS = 4096  # a box whose content runs longer counts as unterminated

_BARE_BOX_ARG = re.compile(r"[^\s$]+")
_BRACE = re.compile(r"\\[{}]|[{}]")
_GAP_JOIN = re.compile(
    r"^(?:\s|\$|[A-Za-z]\s*=|\\[,;:!]|\\q?quad|,|;|&|\\\\|\band\b|\\text\{\s*(?:and)?\s*,?\s*\}|\.|\\\(|\\\)|\\\[|\\\])*$"
)
_GAP_OR = re.compile(r"\bor\b|\beither\b", re.IGNORECASE)
_ANCHORS = re.compile(
    r"(?:final answer\s*(?:\*\*)?\s*(?:is\s*:?|:)|the answer\s*(?:\*\*)?\s*(?:is\s*:?|:)|\banswer\s*:|"
    r"the correct (?:option|choice|answer) is\s*:?)\s*(?:\*\*)?\s*",
    re.IGNORECASE,
)
# A markdown heading of its own ("**Final Answer**" or "## Final Answer") on the line before.
_HEADING = re.compile(
    r"(?:\*\*\s*final answer\s*:?\s*\*\*[ \t]*:?|^[ \t]*#{1,6}[ \t]*final answer[ \t]*:?)[ \t]*$", re.I | re.M
)
# A closing statement that ends right where a box starts ("the final answer is $\boxed{").
_ANCHOR_BEFORE = re.compile(
    r"(?:" + _ANCHORS.pattern + r"|" + _HEADING.pattern + r")(?:\$\$?|\\\(|\\\[|\s)*\Z", re.I | re.M
)
ANCHOR_LOOKBACK = 120  # characters before a box searched for its closing statement


def _match_brace(text: str, open_pos: int) -> int:
    """Index of the ``}`` closing the ``{`` at open_pos, or -1 when the group does not close within
    MAX_BOX_CHARS (a longer "answer" is rejected anyway; the bound keeps brace bombs linear)."""
    depth = 0
    for m in _BRACE.finditer(text, open_pos, open_pos + MAX_BOX_CHARS):
        tok = m.group()
        if len(tok) == 2:  # escaped \{ or \}: literal, does not group
            continue
        depth += 1 if tok == "{" else -1
        if depth == 0:
            return m.start()
    return -1


def _box_at(text: str, pos: int, cmd: str) -> tuple[int, str | None]:
    """Parse the box whose command starts at pos: (end index, content) or (-1, None) if unterminated."""
    i = pos + len(cmd)
    n = len(text)
    while i < n and text[i] in " \t":
        i += 1
    if i < n and text[i] == "{":
        close = _match_brace(text, i)
        if close < 0:
            return -1, None
        return close + 1, text[i + 1 : close]
    m = _BARE_BOX_ARG.match(text, i, i + MAX_BOX_CHARS)  # \boxed 5  (brace-less form)
    if m and i > pos + len(cmd):
        return m.end(), m.group()
    return -1, None


def _last_commands(text: str) -> list[tuple[int, str]]:
    """Positions of the last MAX_BOXES box commands, found by rfind from the end (C-speed scans
    and at most MAX_BOXES steps per command, even for a text made of nothing but boxes)."""
    found = []
    for cmd in BOX_CMDS:
        hi = len(text)
        for _ in range(MAX_BOXES):
            pos = text.rfind(cmd, 0, hi)
            if pos < 0:
                break
            hi = pos
            if not text[pos + len(cmd) : pos + len(cmd) + 1].isalpha():  # not \fboxsep, \boxedx
                found.append((pos, cmd))
    found.sort()
    return found[-MAX_BOXES:]


def find_boxes(text: str) -> tuple[list[tuple[int, int, str]], bool]:
    """Top-level boxes (start, end, content) in order, and whether the last box is unterminated.

    Only the last MAX_BOXES box commands are examined, each brace match is bounded by
    MAX_BOX_CHARS, so a box or brace bomb costs a bounded number of bounded scans.
    """
    starts = _last_commands(text)
    spans: list[tuple[int, int, str]] = []
    unterminated_last = False
    for pos, cmd in reversed(starts):
        end, content = _box_at(text, pos, cmd)
        if content is None:
            if not spans:
                unterminated_last = True
            continue
        # a box that contains later-found boxes is their outer box: keep only the outer one
        spans = [s for s in spans if not (pos <= s[0] and s[1] <= end)]
        spans.append((pos, end, content))
    spans.sort()
    if unterminated_last and spans:
        # the unterminated box may be nested inside a complete outer box; then it is not last
        last_open = starts[-1][0]
        unterminated_last = not any(s[0] <= last_open < s[1] for s in spans)
    return spans, unterminated_last


def _unwrap_box(content: str) -> str:
    content = content.strip()
    for cmd in BOX_CMDS:
        if content.startswith(cmd):
            end, inner = _box_at(content, 0, cmd)
            if inner is not None and end == len(content):
                return _unwrap_box(inner)
    return content


def _final_group(text: str, spans: list[tuple[int, int, str]]) -> tuple[list[str], bool, int]:
    """Contents of the trailing group of boxes that form one answer, whether it is a hedge, and
    the index in spans of the group's first box."""
    group = [spans[-1]]
    hedge = False
    for prev in reversed(spans[:-1]):
        gap = text[prev[1] : group[0][0]]
        if len(gap) > JOIN_GAP:
            break
        if _GAP_JOIN.match(gap):
            group.insert(0, prev)
        elif _GAP_OR.search(gap):
            hedge = True
            group.insert(0, prev)
        else:
            break
    contents = [_unwrap_box(s[2]) for s in group]
    distinct = _distinct(contents)
    if hedge and len(distinct) == 1:
        hedge = False  # "\boxed{5} or equivalently \boxed{5}" commits to one value
    if len(distinct) == 1:
        contents = contents[:1]
    return contents, hedge, len(spans) - len(group)


def _squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


def _value_key(s: str) -> object:
    """A key under which equal answers collide (5 and 5.0), falling back to the squashed string."""
    from rlvr.verify.exact import Undecided, parse_value
    from rlvr.verify.normalize import normalize

    try:
        if len(s) >= 200:
            return ("text", _squash(s))
        norm = normalize(s)  # unit, % and choice are part of the answer: 15 cm^2 is not 15 cm^3
        return ("value", parse_value(norm.text), norm.unit, norm.percent, norm.choice)
    except (Undecided, RecursionError, ValueError, ZeroDivisionError, OverflowError, TypeError):
        return ("text", _squash(s))


def _distinct(contents: list[str]) -> list:
    return list(dict.fromkeys(_value_key(c) for c in contents))


def _anchored_answer(tail: str) -> str | None:
    """The answer stated after the last closing phrase in tail, or None."""
    matches = list(_ANCHORS.finditer(tail)) + list(_HEADING.finditer(tail))
    if not matches:
        return None
    last = max(matches, key=lambda m: m.end())
    rest = tail[last.end() :].lstrip()
    for open_, close in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if rest.startswith(open_):
            end = rest.find(close, len(open_))
            if end < 0:
                return None  # opened math never closed: cut off
            return rest[len(open_) : end].strip() or None
    line = rest.split("\n", 1)[0]
    line = re.split(r"\.\s|\.$|\bI hope\b", line, maxsplit=1)[0]
    line = line.strip().strip("*").strip().rstrip(".").strip()
    return line or None


def _anchored(text: str, pos: int) -> bool:
    """Whether a closing statement ("the final answer is", "Answer:") ends right before pos."""
    return bool(_ANCHOR_BEFORE.search(text[max(0, pos - ANCHOR_LOOKBACK) : pos]))


def _committed_final(text: str, spans: list, first: int, final: set) -> bool:
    """Intermediate boxed results, then the answer: the final group is introduced by a closing
    statement and no earlier box holding another value is. "\\boxed{2}. \\boxed{5}. \\boxed{7}."
    (every candidate) and three anchored boxes (three "final answers") stay hedges."""
    if not _anchored(text, spans[first][0]):
        return False
    return not any(
        _anchored(text, s[0]) and not set(_distinct([_unwrap_box(s[2])])) <= final for s in spans[:first]
    )


def extract_answer(text: str, policy: Policy = MATH) -> tuple[str | None, str]:
    """Return (answer, reason): reason is ``ok``, ``no_answer``, ``truncated`` or ``hedged``.

    >>> extract_answer("so the total is \\\\boxed{42}.")
    ('42', 'ok')
    >>> extract_answer("<think>let me see, 42")
    (None, 'truncated')
    """
    if not isinstance(text, str) or not text:
        return None, "no_answer"
    close = text.rfind("</think>")
    if close >= 0:
        text = text[close + len("</think>") :]
    elif "<think>" in text:
        return None, "truncated"
    spans, unterminated = find_boxes(text)
    if unterminated:
        return None, "truncated"
    if len(spans) == 1:  # the common case: one box, nothing to join or hedge
        answer = _unwrap_box(spans[0][2])
        return (answer, "ok") if answer else (None, "no_answer")
    if spans:
        contents, hedge, first = _final_group(text, spans)
        final = set(_distinct(contents))
        distinct_all = set(_distinct([_unwrap_box(s[2]) for s in spans])) - final
        many = len(distinct_all) + 1 >= policy.hedge_boxes
        if many and not hedge and policy.anchored_final_box:
            many = not _committed_final(text, spans, first, final)
        if hedge or many:
            return ", ".join(contents), "hedged"
        answer = ", ".join(contents).strip()
        return (answer, "ok") if answer else (None, "no_answer")
    if policy.require_box:
        return None, "no_answer"
    answer = _anchored_answer(text[-policy.anchor_window :])
    return (answer, "ok") if answer else (None, "no_answer")
