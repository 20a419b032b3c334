"""Pre-screen: refuse, before sympy sees them, answers of shapes known to stall it.

verifier-notes.md §3 lists what hangs math-verify 0.9.0: power towers (``9^{9^{9^9}}``), huge
exponents and factorials, big sums/products/limits, and absurd nesting or length. Each check
below fires only when the *prediction* has the feature and the gold does not, so a gold that
genuinely is a tower is still graded. Pure string checks, linear time.
"""

from __future__ import annotations

import re

MAX_DEPTH = 25
MAX_SYMBOL_CHARS = 400

_BIG_EXPONENT = re.compile(r"\^\s*\{?\s*[-+]?\s*\d{4,}|\^\s*\{?\s*\d+\s*\.\s*\d{4,}|\d{6,}\s*\^")
_BIG_FACTORIAL = re.compile(r"(?:\d{4,}|[)}\]])\s*!|!\s*!")
_HEAVY_OPS = re.compile(r"\\(?:sum|prod|int|iint|oint|lim|infty\s*!|Gamma|zeta)\b")
_EXP_ARG = re.compile(r"\^\s*(\{)")


def _depth(s: str) -> int:
    depth = best = 0
    for ch in s:
        if ch in "({[":
            depth += 1
            best = max(best, depth)
        elif ch in ")}]":
            depth -= 1
    return best


def _has_tower(s: str) -> bool:
    """An exponent that itself contains an exponent (or ``a^b^c``)."""
    if re.search(r"\^\s*[\w.]+\s*\^", s) or "\\exp{\\exp" in s.replace(" ", ""):
        return True
    for m in _EXP_ARG.finditer(s):
        depth, i = 0, m.start(1)
        while i < len(s):
            if s[i] == "{":
                depth += 1
            elif s[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        if "^" in s[m.start(1) : i] or "\\exp" in s[m.start(1) : i]:
            return True
    return False


CHECKS = {
    "power_tower": _has_tower,
    "huge_exponent": lambda s: bool(_BIG_EXPONENT.search(s)),
    "huge_factorial": lambda s: bool(_BIG_FACTORIAL.search(s)),
    "heavy_operator": lambda s: bool(_HEAVY_OPS.search(s)),
    "deep_nesting": lambda s: _depth(s) > MAX_DEPTH,
    "too_long": lambda s: len(s) > MAX_SYMBOL_CHARS,
}


def prescreen(pred: str, gold: str) -> str | None:
    """Name of the first stall-prone feature pred has and gold lacks, or None when safe."""
    for name, check in CHECKS.items():
        if check(pred) and not check(gold):
            return name
    return None
