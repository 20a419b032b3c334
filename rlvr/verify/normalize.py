"""Normalisation: deterministic string rewriting of an extracted answer (or a gold) into one
canonical LaTeX spelling, with the parts that are compared separately (unit, %, degrees, the
``x=`` name, a multiple-choice letter) set aside. Pure functions, no sympy.

Why each rewrite exists is in verifier-notes.md §4–5: math-verify misreads ``10\\,000`` as 0,
unicode ``½ √ π °`` is unsupported, ``\\text{5 cents}`` and ``\\$`` wrap numbers, and a lossy unit
word-list makes ``4 feet`` equal ``4 inches`` — so units are kept aside, not dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Norm:
    """A normalised answer: canonical ``text`` plus the separately compared annotations."""

    text: str
    unit: str | None = None
    percent: bool = False
    degrees: bool = False
    var: str | None = None
    choice: str | None = None


UNICODE = {
    "½": "\\frac{1}{2}",
    "⅓": "\\frac{1}{3}",
    "⅔": "\\frac{2}{3}",
    "¼": "\\frac{1}{4}",
    "¾": "\\frac{3}{4}",
    "⅕": "\\frac{1}{5}",
    "⅛": "\\frac{1}{8}",
    "π": "\\pi ",
    "∞": "\\infty ",
    "°": "^\\circ",
    "−": "-",
    "–": "-",
    "×": "\\times ",
    "·": "\\cdot ",
    "⋅": "\\cdot ",
    "≤": "\\le ",
    "≥": "\\ge ",
    "≠": "\\ne ",
    "∪": "\\cup ",
    "∩": "\\cap ",
    "∈": "\\in ",
    "±": "\\pm ",
    "∓": "\\mp ",
    "√": "\\sqrt",
    "²": "^2",
    "³": "^3",
    "\u2009": " ",
    "\u00a0": " ",
    "\u202f": " ",
    "：": ":",
    "，": ",",
}
MACROS = {
    "\\dfrac": "\\frac",
    "\\tfrac": "\\frac",
    "\\cfrac": "\\frac",
    "\\dbinom": "\\binom",
    "\\tbinom": "\\binom",
    "\\leqslant": "\\le",
    "\\geqslant": "\\ge",
    "\\leq": "\\le",
    "\\geq": "\\ge",
    "\\lt": "<",
    "\\gt": ">",
    "\\neq": "\\ne",
    "\\infinity": "\\infty",
    "\\emptyset": "\\varnothing",
    "\\lbrace": "\\{",
    "\\rbrace": "\\}",
    "\\lvert": "|",
    "\\rvert": "|",
    "\\vert": "|",
    "\\lbrack": "[",
    "\\rbrack": "]",
    "\\cdotp": "\\cdot",
    "\\to": "\\rightarrow",
}
DROP = (
    "\\left",
    "\\right",
    "\\bigl",
    "\\bigr",
    "\\Bigl",
    "\\Bigr",
    "\\big",
    "\\Big",
    "\\displaystyle",
    "\\textstyle",
    "\\!",
    "\\,",
    "\\;",
    "\\:",
    "\\quad",
    "\\qquad",
    "\\ ",
    "\\limits",
)
NUMBER_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "hundred": 100,
    "thousand": 1000,
    "million": 10**6,
}
# Plain-word units stripped after a number even outside \text{}. Single letters are never on this
# list ("3t" is not "3"); inside \text{}/\mathrm{} any word is a unit.
UNIT_WORDS = {
    "inch",
    "inches",
    "foot",
    "feet",
    "ft",
    "yard",
    "yards",
    "mile",
    "miles",
    "cm",
    "mm",
    "km",
    "meter",
    "meters",
    "metre",
    "metres",
    "centimeter",
    "centimeters",
    "kilometer",
    "kilometers",
    "second",
    "seconds",
    "sec",
    "minute",
    "minutes",
    "min",
    "mins",
    "hour",
    "hours",
    "hr",
    "hrs",
    "day",
    "days",
    "week",
    "weeks",
    "month",
    "months",
    "year",
    "years",
    "dollar",
    "dollars",
    "cent",
    "cents",
    "degree",
    "degrees",
    "unit",
    "units",
    "sq",
    "square",
    "cubic",
    "kg",
    "gram",
    "grams",
    "pound",
    "pounds",
    "lb",
    "lbs",
    "ounce",
    "ounces",
    "liter",
    "liters",
    "ml",
    "mph",
    "people",
    "students",
    "ways",
    "points",
    "times",
    "percent",
    "m/s",
    "km/h",
}
UNIT_CANON = {
    "inches": "inch",
    "in": "inch",
    "feet": "foot",
    "ft": "foot",
    "yards": "yard",
    "yd": "yard",
    "miles": "mile",
    "mi": "mile",
    "cents": "cent",
    "dollars": "dollar",
    "metres": "m",
    "metre": "m",
    "meters": "m",
    "meter": "m",
    "centimeters": "cm",
    "centimeter": "cm",
    "centimetres": "cm",
    "millimeters": "mm",
    "millimeter": "mm",
    "kilometers": "km",
    "kilometer": "km",
    "hrs": "h",
    "hr": "h",
    "hour": "h",
    "hours": "h",
    "mins": "min",
    "minute": "min",
    "minutes": "min",
    "sec": "s",
    "second": "s",
    "seconds": "s",
    "lbs": "pound",
    "lb": "pound",
    "pounds": "pound",
    "days": "day",
    "weeks": "week",
    "years": "year",
    "units": "unit",
    "grams": "g",
    "gram": "g",
    "kilograms": "kg",
    "kilogram": "kg",
    "liters": "l",
    "liter": "l",
}

_WRAP_CMDS = r"text|textbf|textit|textrm|textsf|texttt|mbox|mathrm|mathbf|mathit|mathsf|mathtt|rm|bf|operatorname|boldsymbol|emph|hbox|mathnormal"
_TEXT_WRAP = re.compile(r"\\(?:" + _WRAP_CMDS + r")\s*\{([^{}]*)\}")
_TRAIL_TEXT_UNIT = re.compile(
    r"\\(?:text|mbox|mathrm|textrm|rm|textnormal)\s*\{\s*~?\s*([A-Za-z][A-Za-z .\\/~-]*?)\s*\}"
    r"\s*(\^\s*\{?\s*[23]\s*\}?)?\s*$"
)
_TRAIL_WORD_UNIT = re.compile(r"(?<=[\d}\s])\s*([A-Za-z][A-Za-z/]*)(\s*\^\s*\{?[23]\}?)?\s*$")
_DEGREES = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree|\{\}\^\\circ")
_PERCENT = re.compile(r"\\%|%|\\text\{\s*percent\s*\}|\s*\bpercent\b")
_LHS_VAR = re.compile(r"^\s*([A-Za-z](?:_\{?[A-Za-z0-9]+\}?)?|\\[a-zA-Z]+)\s*=\s*(?!=)")
_RHS_VAR = re.compile(r"(?<![=<>])=\s*([A-Za-z])\s*$")
_IN_PREFIX = re.compile(r"^\s*[A-Za-z]\s*\\in\s*")
_CHOICE = re.compile(r"^\(?\s*([A-Ea-e])\s*\)?$")
_CHOICE_VALUE = re.compile(r"^\(\s*([A-E])\s*\)\s*(?:\\ )?\s*([\d\\$.-].*)$")
_THOUSANDS_EXPLICIT = re.compile(r"(\d)(?:,\\!|\{,\}|\\,|,\s*\\!)\s*(?=\d{3}(?!\d))")
_THOUSANDS_COMMA = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_THOUSANDS_SPACE = re.compile(r"^-?\d{1,3}(?: \d{3})+(?:\.\d+)?$")
_SPACE_KEEP = re.compile(r"(\\[A-Za-z]+)\s+(?=[A-Za-z])")


def _unicode(s: str) -> str:
    if s.isascii():
        return s
    return "".join(UNICODE.get(ch, ch) for ch in s)


def _macros(s: str) -> str:
    for src, dst in MACROS.items():
        if src in s:
            s = re.sub(re.escape(src) + r"(?![A-Za-z])", lambda _m, d=dst: d, s)
    s = s.replace("\\\\", "\x01")  # protect the row break \\ from the control-space drop
    for d in DROP:
        if d in s:
            s = re.sub(re.escape(d) + r"(?![A-Za-z])", "", s) if d[-1].isalpha() else s.replace(d, " ")
    return s.replace("\x01", "\\\\")


def _strip_outer(s: str) -> str:
    """Drop ``$``, a trailing full stop, outer braces and a left-over \\boxed wrapper."""
    s = s.strip().replace("\\$", "").replace("$", "").strip()
    while True:
        before = s
        s = s.strip().rstrip(".").rstrip()
        if s.startswith("\\boxed{") and s.endswith("}"):
            s = s[7:-1]
        if s.startswith("{") and s.endswith("}") and _balanced(s[1:-1]):
            s = s[1:-1]
        if s == before:
            return s


def _balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += (ch == "{") - (ch == "}")
        if depth < 0:
            return False
    return depth == 0


def _split_unit(s: str) -> tuple[str, str | None]:
    """Split a trailing unit off a numeric answer: ``15 \\mbox{ cm}^2`` -> (``15``, ``cm^2``)."""
    m = _TRAIL_TEXT_UNIT.search(s)
    if m and re.search(r"\d", s[: m.start()]):
        unit = m.group(1).replace("\\", "").replace("~", " ").strip()
        return s[: m.start()].strip(), _canon_unit(unit, m.group(2))
    m = _TRAIL_WORD_UNIT.search(s)
    if m and m.group(1).lower() in UNIT_WORDS and re.search(r"\d", s[: m.start()]):
        return s[: m.start()].strip(), _canon_unit(m.group(1), m.group(2))
    return s, None


def _canon_unit(unit: str, power: str | None) -> str | None:
    words = [w for w in unit.lower().replace("^", " ^").split() if w not in ("of", "a", "the")]
    exponent = re.sub(r"\D", "", power or "")
    for word, exp in (("square", "2"), ("sq", "2"), ("cubic", "3"), ("cu", "3")):
        if word in words:
            words.remove(word)
            exponent = exp
    words = [UNIT_CANON.get(w, w) for w in words if not w.startswith("^")]
    if not words:
        return None
    return " ".join(words) + ("^" + exponent if exponent else "")


def _thousands(s: str) -> str:
    s = _THOUSANDS_EXPLICIT.sub(r"\1", s)
    if _THOUSANDS_COMMA.match(s):
        return s.replace(",", "")
    if _THOUSANDS_SPACE.match(s):
        return s.replace(" ", "")
    return s


def _squash_spaces(s: str) -> str:
    s = _SPACE_KEEP.sub(lambda m: m.group(1) + "\x00", s)  # keep "\pi r" from becoming "\pir"
    s = re.sub(r"\s+", "", s)
    return s.replace("\x00", " ")


@lru_cache(maxsize=65536)
def normalize(answer: str) -> Norm:
    """Canonicalise one answer string (extracted prediction or gold)."""
    s = _THOUSANDS_EXPLICIT.sub(r"\1", _unicode(answer))  # before \! and \, are dropped
    s = _strip_outer(_macros(s.replace("**", "^")))  # x**2: a spelling, rewritten as text
    s, degrees = _DEGREES.subn("", s)
    s, percent = _PERCENT.subn("", s)
    s, unit = _split_unit(s.strip())
    if unit in ("degree", "degrees"):
        unit, degrees = None, 1
    if unit == "percent":
        unit, percent = None, 1
    choice = None
    m = _CHOICE_VALUE.match(_TEXT_WRAP.sub(r"\1", s).strip())
    if m:  # "\textbf{(C)}\ 12": keep both the letter and the value
        choice, s = m.group(1).lower(), m.group(2)
    s = _TEXT_WRAP.sub(r"\1", s)
    s = _TEXT_WRAP.sub(r"\1", s)  # one level of nesting
    s = _strip_outer(s)
    if unit is None:  # the number was inside the text: \text{7 days}
        s, unit = _split_unit(s)
    var = None
    m = _LHS_VAR.match(s)
    if m and s.count("=") == 1 and not re.search(r"[<>]|\\le|\\ge", s):
        var, s = m.group(1), s[m.end() :]
    else:
        m = _RHS_VAR.search(s)  # "2 = x" is "x = 2" written backwards
        if m and s.count("=") == 1 and not re.search(r"[<>]|\\le|\\ge", s):
            var, s = m.group(1), s[: m.start()]
    s = _IN_PREFIX.sub("", s)
    s = re.sub(r"\s*\b(?:and|or)\b\s*", ",", s) if re.search(r"\b(?:and|or)\b", s) else s
    s = _thousands(s.strip())
    low = s.strip().lower()
    if low in NUMBER_WORDS:
        s = str(NUMBER_WORDS[low])
    m = _CHOICE.match(s.strip())
    if m and choice is None and (s.strip().startswith("(") or s.strip().isupper()):
        choice = m.group(1).lower()
    s = _squash_spaces(s).strip(",")
    return Norm(text=s, unit=unit, percent=bool(percent), degrees=bool(degrees), var=var, choice=choice)
