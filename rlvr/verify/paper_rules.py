"""Two published graders reproduced as verifier policies: the decisions, re-implemented, not copied.

``one_shot_reward``: the training reward of 1-shot RLVR (ypwang61/One-Shot-RLVR @ 21ed529). For
Qwen/Llama model paths ``verl/trainer/main_ppo.py::main_task`` replaces the data-source dispatch
with ``verl/utils/reward_score/deepscaler.py::compute_score`` and ``use_think=False``: the whole
response is graded, the answer is the last ``\\boxed{…}``, and it is right when the Hendrycks
string normalisation makes it equal to the gold (``utils/utils.py::grade_answer_mathd``) or when
PRM800K-style normalisation plus ``sympy.simplify`` says so (``grade_answer_sympy``).

``qwen_math_eval``: the Qwen2.5-Math evaluation harness as forked by 1-shot RLVR
(``Qwen2.5-Eval/evaluation/``): ``parser.py::extract_answer`` and ``strip_string`` on both sides,
golds read per benchmark (``parser.py::parse_ground_truth``), then ``grader.py::math_equal``.

What differs from the originals, and why (docs/verifier.md, "Paper policies"):

* Wherever the original calls sympy (``parse_expr`` evaluates Python; ``parse_latex``;
  ``simplify``; ``N``), this module asks an *oracle* ``sym(pred, gold) -> bool`` instead. The
  Verifier answers it with rlvr's own machinery (normaliser, exact path, and the math-verify
  fallback in killable, memory-capped worker processes, never ``eval``). The oracle records what
  it could not decide yet; the Verifier judges those in one pool batch and runs the decision again.
* The original's timeouts (pebble 3 s per pair, a 1 s subprocess) become the Verifier's hard
  per-item ``timeout``; a timeout is False, as in the original.
* ``math_eval.py`` executes a program when a completion ends in a code block without ``boxed``
  and appends its output; here the text is graded as given, nothing is executed.

Everything else (extraction, string normalisation, the numeric comparison with its 1e-4 relative
tolerance and percent variants, the element-wise bracket rules) is the original's decision,
including its bugs; the reproduced bugs are listed in docs/verifier.md.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable

BENCHMARKS = ("math500", "aime24", "aime25", "amc23", "minerva_math", "olympiadbench")

Oracle = Callable[[str, str], bool]


def gold_string(gold: object, benchmark: str | None = None) -> str | None:
    """A dataset gold as text: strings, numbers (``str(27.0)`` is ``27.0``, as the originals
    format it), lists (OlympiadBench's ``final_answer``: the harness takes element 0)."""
    if isinstance(gold, str):
        return gold
    if isinstance(gold, (int, float)) and not isinstance(gold, bool):
        return str(gold)
    if isinstance(gold, (list, tuple)) and gold and all(isinstance(g, str) for g in gold):
        return gold[0] if benchmark == "olympiadbench" else ", ".join(gold)
    return None


# =============================================================== one_shot_reward
# deepscaler.py::compute_score -> utils/utils.py (extract_answer, grade_answer_mathd, grade_answer_sympy)


def last_box(text: str) -> str | None:
    """utils.py::extract_answer + last_boxed_only_string + remove_boxed: the text must contain
    ``\\boxed``; from the last occurrence, braces are counted to the first balancing ``}``. The
    span must read ``\\boxed{…}``, so an unterminated box, ``\\boxed 5`` and ``\\fbox`` give None."""
    if "\\boxed" not in text:
        return None
    start = text.rfind("\\boxed")
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                span = text[start : i + 1]
                return span[len("\\boxed{") : -1] if span.startswith("\\boxed{") else None
    return None


class _Raw(Exception):
    """An exception inside the Hendrycks normaliser: mathd_normalize_answer returns its input."""


def _hendrycks_fracs(s: str) -> str:
    return _fix_fracs(s, empty_raises=True)


def _fix_fracs(s: str, empty_raises: bool) -> str:
    """`\\frac12` -> `\\frac{1}{2}`, as both originals' `_fix_fracs` do. They differ on a `\\frac` with
    nothing after it: the Hendrycks one (one-shot reward) indexes the empty piece and raises, the Qwen
    one returns the string unchanged."""
    parts = s.split("\\frac")
    out = parts[0]
    for part in parts[1:]:
        out += "\\frac"
        if not part and empty_raises:
            raise _Raw  # part[0] on an empty piece raises in the original
        if part and part[0] == "{":
            out += part
            continue
        if len(part) < 2:
            return s
        a, b, rest = part[0], part[1], part[2:]
        out += "{" + a + "}{" + b + "}" + rest if b != "{" else "{" + a + "}" + b + rest
    return out


def _slash_to_frac(s: str) -> str:
    pieces = s.split("/")
    if len(pieces) != 2:
        return s
    try:
        a, b = int(pieces[0]), int(pieces[1])
    except ValueError:
        return s
    return f"\\frac{{{a}}}{{{b}}}" if s == f"{a}/{b}" else s


def _hendrycks_sqrt(s: str) -> str:
    if "\\sqrt" not in s:
        return s
    parts = s.split("\\sqrt")
    out = parts[0]
    for part in parts[1:]:
        if not part:
            raise _Raw
        out += "\\sqrt" + part if part[0] == "{" else "\\sqrt{" + part[0] + "}" + part[1:]
    return out


def mathd_normalize(answer: str) -> str:
    """utils.py::mathd_normalize_answer (Hendrycks MATH ``_strip_string``)."""
    answer = answer.strip()
    m = re.search(r"^\\text\{(?P<text>.+?)\}$", answer)
    if m is not None:
        answer = m.group("text").strip()
    try:
        return _hendrycks_strip(answer)
    except _Raw:
        return answer


def _hendrycks_strip(s: str) -> str:
    s = s.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\$", "")
    if "\\text{ " in s:  # units: the original asserts exactly one such split, else gives up
        pieces = s.split("\\text{ ")
        if len(pieces) != 2:
            raise _Raw
        s = pieces[0]
    s = s.replace("\\%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        s = sides[1]
    s = _hendrycks_sqrt(s)
    s = s.replace(" ", "")
    s = _hendrycks_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _slash_to_frac(s)


_PRM_UNITS = (
    "degree",
    "cm",
    "centimeter",
    "meter",
    "mile",
    "second",
    "minute",
    "hour",
    "day",
    "week",
    "month",
    "year",
    "foot",
    "feet",
    "inch",
    "yard",
)
_LATEX_WORDS = {
    "pi": "pi",
    "infty": "inf",
    "cdot": "*",
    "times": "*",
    "sqrt": "sqrt",
    "frac": "",
    "dfrac": "",
    "tfrac": "",
    "left": "",
    "right": "",
    "cup": "U",
    "circ": "",
}


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _latex_to_text(s: str) -> str:
    """Stand-in for pylatexenc's ``latex_to_text`` (utils.py::_parse_latex). It only feeds the
    gates of the sympy step (letter count, ``^(``, integer/fraction tests), so it keeps what they
    read: ``\\frac{a}{b}`` -> ``a/b``, ``\\pi`` -> ``pi``, other commands -> their names."""
    s = re.sub(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}", r"\1", s)
    for _ in range(4):
        s = re.sub(
            r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}",
            lambda m: (
                (m.group(1) if re.fullmatch(r"[\w.]*", m.group(1)) else f"({m.group(1)})")
                + "/"
                + (m.group(2) if re.fullmatch(r"[\w.]*", m.group(2)) else f"({m.group(2)})")
            ),
            s,
        )
        s = re.sub(r"\\sqrt\{([^{}]*)\}", r"sqrt(\1)", s)
    s = re.sub(r"\\([a-zA-Z]+)", lambda m: _LATEX_WORDS.get(m.group(1), m.group(1)), s)
    return s.strip()


def _prm_normalize(expr: str) -> str:
    """utils.py::_normalize (PRM800K grader), with the LaTeX-to-text step approximated."""
    m = re.search(r"^\\text\{(?P<text>.+?)\}$", expr)
    if m is not None:
        expr = m.group("text")
    expr = expr.replace("\\%", "%").replace("\\$", "$").replace("$", "").replace("%", "")
    expr = expr.replace(" or ", " , ").replace(" and ", " , ")
    expr = expr.replace("million", "*10^6").replace("billion", "*10^9").replace("trillion", "*10^12")
    for unit in _PRM_UNITS:  # no word boundaries in the original: "Monday" loses "day"
        expr = re.sub(unit + r"(es)?(s)? *(\^[0-9]+)?", "", expr)
    expr = re.sub(r"\^ *\\circ", "", expr)
    if expr and expr[0] == "{" and expr[-1] == "}":
        expr = expr[1:-1]
    expr = re.sub(r",\\! *", "", expr)
    if _is_float(expr) and _near_int(float(expr)):
        expr = str(int(round(float(expr))))
    if "\\" in expr:
        expr = _latex_to_text(expr)
    expr = re.sub(r"- *", "-", expr)
    expr = re.sub(r"([0-9]) +([0-9])", r"\1+\2", expr)  # mixed numbers "7 3/4" -> 7+3/4
    expr = expr.replace(" ", "").replace("{", "").replace("}", "").lower()
    if _str_is_int(expr):
        expr = str(int(float(expr.replace(",", ""))))
    return expr


def _near_int(x: float) -> bool:
    try:
        return abs(x - int(round(x))) <= 1e-7
    except (OverflowError, ValueError):
        return False


def _strip_commas(expr: str) -> str:
    pattern = re.compile(r"(\d)(,)(\d\d\d)($|\D)")
    while True:
        nxt = pattern.sub(r"\1\3\4", expr)
        if nxt == expr:
            return nxt
        expr = nxt


def _str_is_int(x: str) -> bool:
    try:
        return _near_int(float(_strip_commas(x)))
    except ValueError:
        return False


def _is_frac(expr: str) -> bool:
    return bool(re.search(r"^-?[0-9]+.?/0*[1-9][0-9]*.?$", expr))


def _allow_sympy(expr: str) -> bool:
    """utils.py::should_allow_eval: at most 2 distinct letters (``sqrt``/``frac`` ignored), no
    ``^{``/``^(``, no ``^d^`` and no exponent of two or more digits."""
    if len({c for c in expr.replace("sqrt", "").replace("frac", "") if c.isalpha()}) > 2:
        return False
    if "^{" in expr or "^(" in expr:
        return False
    return not (re.search(r"\^[0-9]+\^", expr) or re.search(r"\^[0-9][0-9]+", expr))


_TUPLE = "()[]"


def _split_tuple(expr: str) -> list[str]:
    expr = _strip_commas(expr)
    if not expr:
        return []
    if (
        len(expr) > 2
        and expr[0] in _TUPLE
        and expr[-1] in _TUPLE
        and all(c not in expr[1:-1] for c in _TUPLE)
    ):
        return [e.strip() for e in expr[1:-1].split(",")]
    return [expr]


def _raw_elements(latex: str, count: int) -> list[str] | None:
    """The LaTeX elements behind a normalised tuple, for the oracle (which reads LaTeX)."""
    s = latex.replace("\\left", "").replace("\\right", "").strip()
    if count == 1:
        return [s]
    if len(s) > 2 and s[0] in _TUPLE and s[-1] in _TUPLE:
        s = s[1:-1]
    parts = [p.strip() for p in _split_top(s)]
    return parts if len(parts) == count else None


def _split_top(s: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for c in s:
        if c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
        if c == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += c
    return out + [cur]


def one_shot_grade(given: str, gold: str, sym: Oracle) -> bool:
    """utils.py::grade_answer_mathd(given, gold) or grade_answer_sympy(given, gold)."""
    if mathd_normalize(gold) == mathd_normalize(given):
        return True
    g, p = _prm_normalize(gold), _prm_normalize(given)
    if g == p:
        return True
    if not p:
        return False
    gs, ps = _split_tuple(g), _split_tuple(p)
    if len(gs) > 1 and (g[0] != p[0] or g[-1] != p[-1]):
        return False
    if len(gs) != len(ps):
        return False
    raw_g, raw_p = _raw_elements(gold, len(gs)), _raw_elements(given, len(ps))
    for k, (ge, pe) in enumerate(zip(gs, ps, strict=True)):
        if _is_frac(ge) and _is_frac(pe):
            ok = ge == pe  # unreduced fractions must match textually
        elif _str_is_int(ge) != _str_is_int(pe):
            ok = False  # an integer gold accepts only a string match
        elif not _allow_sympy(f"({ge})-({pe})"):
            ok = False
        elif raw_g is None or raw_p is None:
            ok = False
        else:  # sympy.simplify(gold - given) == 0 in the original
            ok = sym(raw_p[k], raw_g[k])
        if not ok:
            return False
    return True


def one_shot_reward(response: str, gold: str, sym: Oracle) -> tuple[bool, str | None]:
    """deepscaler.py::compute_score(use_think=False): (correct, extracted answer)."""
    answer = last_box(response)
    if answer is None:
        return False, None
    if "\\boxed" in gold:
        gold = last_box(gold)
        if gold is None:
            return False, answer
    return one_shot_grade(answer, gold, sym), answer


# =============================================================== qwen_math_eval
# parser.py (extract_answer, strip_string, parse_ground_truth), grader.py (math_equal)

# parser.py::unit_texts (units mainly from MathQA), matched as regexes between non-word characters;
# each is also tried with a trailing "s". Entries such as "a", "t", "s" and "m" delete variables.
_QWEN_UNITS = (
    "east|degree|mph|kmph|ft|m sqaure| m east|sq m|deg|mile|q .|monkey|prime|ratio|profit of rs|rd|o|gm"
    "|p . m|lb|tile|per|dm|lt|gain|ab|way|west|a .|b .|c .|d .|e .|f .|g .|h .|t|a|h|no change|men"
    "|soldier|pie|bc|excess|st|inches|noon|percent|by|gal|kmh|c|acre|rise|a . m|th|π r 2|sq|mark|l|toy"
    "|coin|sq . m|gallon|° f|profit|minw|yr|women|feet|am|pm|hr|cu cm|square|v â € ™|are|rupee|rounds"
    "|cubic|cc|mtr|s|ohm|number|kmph|day|hour|minute|min|second|man|woman|sec|cube|mt|sq inch|mp"
    "|∏ cm ³|hectare|more|sec|unit|cu . m|cm 2|rs .|rs|kg|g|month|km|m|cm|mm|apple|liter|loss|yard"
    "|pure|year|increase|decrease|d|less|Surface|litre|pi sq m|s .|metre|meter|inch"
).split("|")
_QWEN_UNITS = _QWEN_UNITS + [u + "s" for u in _QWEN_UNITS]
_UNIT_RES = [re.compile(r"(^|\W)" + u + r"($|\W)") for u in _QWEN_UNITS]
_ASCII_LETTER = re.compile(r"[A-Za-z]")

# word2number's vocabulary (w2n.word_to_num, called by parser.py::convert_word_number)
_SMALL = dict(
    zip(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen".split(),
        range(20),
        strict=True,
    )
)
_TENS = dict(
    zip("twenty thirty forty fifty sixty seventy eighty ninety".split(), range(20, 100, 10), strict=True)
)
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9}
_DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _words_to_number(text: str) -> str:
    """parser.py::convert_word_number via w2n.word_to_num: an all-digit string becomes int() of it
    (so AIME's "025" is "25"); otherwise the number words found among the words, ignoring the other
    words, make the number; no number word (or a repeated scale word) leaves the text unchanged."""
    s = text.replace("-", " ").lower()
    if s.isdigit():
        return str(int(s))
    words = [w for w in s.strip().split() if w in _SMALL or w in _TENS or w in _SCALES or w == "point"]
    if not words:
        return text
    for scale in ("thousand", "million", "billion", "point"):
        if words.count(scale) > 1:
            return text
    decimals = []
    if "point" in words:
        at = words.index("point")
        words, decimals = words[:at], words[at + 1 :]
    total = current = 0
    for w in words:
        if w in _SMALL:
            current += _SMALL[w]
        elif w in _TENS:
            current += _TENS[w]
        elif w == "hundred":
            current = max(current, 1) * 100
        else:
            total += max(current, 1) * _SCALES[w]
            current = 0
    value = str(total + current)
    if decimals:
        digits = "".join(str(_DIGIT_WORDS.index(w)) for w in decimals if w in _DIGIT_WORDS)
        if digits:
            return str(float(value + "." + digits))
    return value


def _qwen_fracs(s: str) -> str:
    return _fix_fracs(s, empty_raises=False)


def _qwen_slash(s: str) -> str:
    pieces = s.split("/")
    if len(pieces) != 2:
        return s
    a, b = pieces
    try:
        a = a if "sqrt" in a else int(a)
        b = b if "sqrt" in b else int(b)
    except ValueError:
        return s
    return f"\\frac{{{a}}}{{{b}}}" if s == f"{a}/{b}" else s


@functools.lru_cache(maxsize=65_536)  # pure; an RL batch repeats its golds and answers many times
def strip_string(s: str, skip_unit: bool = False) -> str:
    """parser.py::strip_string, step for step."""
    s = str(s).strip().replace("\n", "").rstrip(".").replace("\\!", "")
    s = re.sub(r"\\begin\{array\}\{.*?\}", r"\\begin{pmatrix}", s)
    s = re.sub(r"\\end\{array\}", r"\\end{pmatrix}", s).replace("bmatrix", "pmatrix")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\neq", "\\ne").replace("\\leq", "\\le").replace("\\geq", "\\ge")
    s = s.replace("\\left", "").replace("\\right", "").replace("\\{", "{").replace("\\}", "}")
    cut = re.sub(r"\\text\{.*?\}$", "", s).strip()  # a trailing \text{...} is a unit
    if cut != "" and cut != s:
        s = cut
    if not skip_unit and _ASCII_LETTER.search(s):  # every unit pattern needs a letter: skipping is exact
        for _ in range(2):
            for pattern in _UNIT_RES:
                cut = pattern.sub(r"\1\2", s)
                if cut != "":
                    s = cut
    s = s.replace("^{\\circ}", "").replace("^\\circ", "")
    s = s.replace("\\$", "").replace("$", "").replace("\\(", "").replace("\\)", "")
    s = _words_to_number(s)
    s = re.sub(r"\\text\{(.*?)\}", r"\1", s)
    for key in ("x=", "y=", "z=", "x\\in", "y\\in", "z\\in", "x\\to", "y\\to", "z\\to"):
        s = s.replace(key, "")
    s = s.replace("\\emptyset", "{}").replace("(-\\infty,\\infty)", "\\mathbb{R}")
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if s.isalnum() and ((s[:1], s[-1:]) in (("{", "}"), ("(", ")"), ("[", "]"))):
        s = s[1:-1]  # never true: a bracket is not alphanumeric (kept as the original has it)
    s = s.replace("infinity", "\\infty")
    if "\\infty" not in s:
        s = s.replace("inf", "\\infty")
    s = s.replace("+\\inity", "\\infty")
    s = s.replace("and", "").replace("\\mathbf", "")  # "and" inside words too ("Sandy" -> "Sy")
    s = re.sub(r"\\mbox{.*?}", "", s)
    if "j" in s and "i" not in s:
        s = s.replace("j", "i")
    s = re.sub(r"(\d+)\.0*([^\d])", r"\1\2", s)
    s = re.sub(r"(\d+)\.0*$", r"\1", s)
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        s = sides[1]
    s = re.sub(r"\\sqrt(\w+)", r"\\sqrt{\1}", s)
    s = s.replace(" ", "")
    s = _qwen_fracs(s)
    return _qwen_slash(s)


def _brace_content(tail: str) -> str:
    """The text after ``boxed``: the brace-balanced group (to the end when unterminated), or up to
    the next ``$`` when no brace follows."""
    if not tail:
        return ""
    if tail[0] != "{":
        return tail.split("$")[0].strip()
    depth, out = 1, []
    for c in tail[1:]:
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                break
        out.append(c)
    return "".join(out)


def _finish(pred: str, skip_unit: bool) -> str:
    pred = re.sub(r"\n\s*", "", pred)
    if pred[:1] == ":":
        pred = pred[1:]
    if pred[-1:] == ".":
        pred = pred[:-1]
    if pred[-1:] == "/":
        pred = pred[:-1]
    return strip_string(pred, skip_unit=skip_unit)


def qwen_extract(text: str, benchmark: str) -> str:
    """parser.py::extract_answer (use_last_number=True), for the six math benchmarks."""
    text = text.replace("\u043a\u0438", "")
    skip_unit = benchmark == "minerva_math"
    if "final answer is $" in text and "$. I hope" in text:
        pred = text.split("final answer is $", 1)[1].split("$. I hope", 1)[0].strip()
    elif "boxed" in text:
        tail = text.split("boxed")[-1]
        if not tail:
            return ""
        pred = _brace_content(tail)
    elif "he answer is" in text:
        pred = text.split("he answer is")[-1].strip()
    elif "final answer is" in text:
        pred = text.split("final answer is")[-1].strip()
    elif "答案是" in text:
        pred = text.split("答案是")[1].strip().split("\n\n")[0].strip()
    else:
        numbers = re.findall(r"-?\d*\.?\d+", text.replace(",", ""))
        pred = numbers[-1] if numbers else ""
    return _finish(pred, skip_unit)


def qwen_prediction(text: str, benchmark: str) -> str:
    """math_eval.py: extract_answer, then run_execute's second strip_string."""
    return strip_string(qwen_extract(text, benchmark), skip_unit=benchmark == "minerva_math")


@functools.lru_cache(maxsize=16_384)  # pure; a group's rollouts share one gold
def qwen_gold(gold: str, benchmark: str) -> str:
    """parser.py::parse_ground_truth for the six benchmarks.

    math500 and minerva_math read the gold from the solution's last box; given a solution (text
    containing ``boxed``) it is extracted the same way, given the boxed content itself it gets the
    same post-processing. math500 is then stripped a second time; minerva_math is not stripped
    again (only ``\\neq``/``\\leq``/``\\geq`` rewritten). The others are stripped once:
    aime24/aime25/amc23 from ``answer``, olympiadbench from ``final_answer[0].strip("$")``.
    """
    if benchmark in ("math500", "minerva_math"):
        skip_unit = benchmark == "minerva_math"
        gold = qwen_extract(gold, benchmark) if "boxed" in gold else _finish(gold, skip_unit)
        if benchmark == "minerva_math":
            return gold.replace("\\neq", "\\ne").replace("\\leq", "\\le").replace("\\geq", "\\ge")
        return strip_string(gold)
    if benchmark == "olympiadbench":
        gold = gold.strip("$")
    return strip_string(gold)


def _choice_clean(pred: str) -> str:
    """grader.py::choice_answer_clean."""
    pred = pred.strip("\n").rstrip(".").rstrip("/").strip(" ").lstrip(":")
    letters = re.findall(r"\b(A|B|C|D|E)\b", pred.upper())
    pred = letters[-1] if letters else pred.strip().strip(".")
    return pred.rstrip(".").rstrip("/")


def _parse_digits(num: str) -> float | None:
    """grader.py::parse_digits: Python float() after dropping commas; a trailing % divides by 100."""
    num = num.replace(",", "")
    try:
        return float(num)
    except ValueError:
        if num.endswith("%"):
            num = num[:-1].removesuffix("\\")
            try:
                return float(num) / 100
            except ValueError:
                pass
    return None


def _isclose(ref: float, pred: float) -> bool:
    return math.isclose(ref, pred, rel_tol=1e-4)


def _str_to_pmatrix(ref: str) -> str:
    rows = re.findall(r"\{.*,.*\}", ref.strip())
    return ", ".join(r"\begin{pmatrix}" + m.strip("{}").replace(",", "\\") + r"\end{pmatrix}" for m in rows)


_MATRIX_OPEN, _MATRIX_CLOSE = len("\\begin{pmatrix}"), len("\\end{pmatrix}")


def _matrix_rows(s: str) -> list[str]:
    return [line.strip() for line in s[_MATRIX_OPEN:-_MATRIX_CLOSE].split("\\\\") if line.strip()]


def _is_matrix(s: str) -> bool:
    return s.startswith(("\\begin{pmatrix}", "\\begin{bmatrix}")) and s.endswith(
        ("\\end{pmatrix}", "\\end{bmatrix}")
    )


def math_equal(pred: str, ref: str, sym: Oracle) -> bool:
    """grader.py::math_equal(include_percentage=True, is_close=True, timeout=False)."""
    if pred.strip().lower() == ref.strip().lower():
        return True
    if ref in ("A", "B", "C", "D", "E") and _choice_clean(pred) == ref:
        return True
    p_num, r_num = _parse_digits(pred), _parse_digits(ref)
    if p_num is not None and r_num is not None:  # numbers: decided here, one way or the other
        for item in (r_num / 100, r_num, r_num * 100):  # percent variants
            if _isclose(item, p_num):
                return True
        return False
    if not pred:
        return False
    ref, pred = ref.strip(), pred.strip()
    if "pmatrix" in pred and "pmatrix" not in ref:
        ref = _str_to_pmatrix(ref)
    p_str, r_str = pred, ref
    if (pred.startswith("[") and pred.endswith("]") and not ref.startswith("(")) or (
        pred.startswith("(") and pred.endswith(")") and not ref.startswith("[")
    ):
        p_str, r_str = p_str.strip("[]()"), r_str.strip("[]()")
    for c in "{}()":
        p_str, r_str = p_str.replace(c, ""), r_str.replace(c, "")
    if p_str.lower() == r_str.lower():
        return True
    bracket = re.compile(r"(\(|\[).+(\)|\])")
    if bracket.match(pred) and bracket.match(ref):  # element-wise; open/closed ends are not compared
        p_parts, r_parts = pred[1:-1].split(","), ref[1:-1].split(",")
        if len(p_parts) == len(r_parts) and all(
            [math_equal(p, r, sym) for p, r in zip(p_parts, r_parts, strict=True)]  # noqa: C419 - all evaluated
        ):
            return True
    if _is_matrix(pred) and _is_matrix(ref):
        p_rows, r_rows = _matrix_rows(pred), _matrix_rows(ref)
        matched = len(p_rows) == len(r_rows)
        for p_row, r_row in zip(p_rows, r_rows, strict=False) if matched else ():
            p_cells, r_cells = p_row.split("&"), r_row.split("&")
            if len(p_cells) != len(r_cells) or not all(
                [math_equal(p, r, sym) for p, r in zip(p_cells, r_cells, strict=True)]  # noqa: C419
            ):
                matched = False
                break
        if matched:
            return True
    if pred.count("=") == 1 and ref.count("=") == 1:
        pl, pr = (x.strip() for x in pred.split("="))
        rl, rr = (x.strip() for x in ref.split("="))
        p_expr, r_expr = f"{pl} - ({pr})", f"{rl} - ({rr})"
        if sym(p_expr, r_expr) or sym(f"-({p_expr})", r_expr):
            return True
    elif pred.count("=") == 1 and len(pred.split("=")[0].strip()) <= 2 and "=" not in ref:
        if math_equal(pred.split("=")[1], ref, sym):
            return True
    elif ref.count("=") == 1 and len(ref.split("=")[0].strip()) <= 2 and "=" not in pred:
        if math_equal(pred, ref.split("=")[1], sym):
            return True
    return sym(pred, ref)  # grader.py::symbolic_equal


def qwen_math_eval(response: str, gold: str, benchmark: str, sym: Oracle) -> tuple[bool, str]:
    """The harness's verdict on one completion: (correct, extracted and stripped prediction)."""
    ref = qwen_gold(gold, benchmark)
    pred = qwen_prediction(response, benchmark)
    if ref in ("A", "B", "C", "D", "E") and pred not in ("A", "B", "C", "D", "E"):
        pred = _choice_clean(response)  # math_eval.py::main, letter golds
    return math_equal(pred, ref, sym), pred
