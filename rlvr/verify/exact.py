"""Exact fast path: parse canonical answers into exact values and compare them without sympy.

Numbers are *surds*: finite sums ``c · √r · π^k · i^j`` with rational ``c``, square-free integer
``r``, integer ``k`` and ``j ∈ {0, 1}``. Those basis elements are linearly independent over ℚ, so
two parsed values are equal exactly when their coefficient tables are equal — no rounding, which
removes math-verify's tiny-value false positives (1/2^99 = 1/2^98). On top of numbers sit tuples
and intervals (ordered, brackets compared), sets and bare lists (unordered), matrices, intervals
from solved inequalities, and plain words.

Anything outside that language raises :class:`Undecided`; the caller then hands the pair to the
guarded symbolic fallback. A decision returned here (match or mismatch) is final.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import lru_cache

from rlvr.verify.normalize import Norm
from rlvr.verify.policy import Policy

MAX_DIGITS = 400  # longest numeric literal parsed exactly (answer length is capped anyway)
MAX_BITS = 200_000  # bound on any coefficient's size, so no input can stall the fast path
MAX_TERMS = 64
MAX_FACTORIAL = 5000


class Undecided(Exception):
    """The exact path cannot decide this pair; the symbolic fallback may."""


# ---------------------------------------------------------------- numbers (surds)


def _squarefree(n: int) -> tuple[int, int]:
    """n = s² · r with r square-free; returns (s, r). Raises Undecided when n is too big to factor."""
    if n == 0:
        return 0, 1
    root = math.isqrt(n)
    if root * root == n:
        return root, 1
    if n > 10**10:
        raise Undecided("radicand too large to factor")
    s, r, d = 1, 1, 2
    while d * d <= n:
        while n % (d * d) == 0:
            n //= d * d
            s *= d
        if n % d == 0:
            n //= d
            r *= d
        d += 1
    return s, r * n


ONE = (1, 0, 0, ())  # basis key of the rationals: no radical, no π, no i, no variables
IMAG = (1, 0, 1, ())
PI = (1, 1, 0, ())


def _mono_mul(m1: tuple, m2: tuple) -> tuple:
    """Multiply two monomials ((name, exponent), ...) kept sorted, dropping zero exponents."""
    if not m1:
        return m2
    if not m2:
        return m1
    exps = dict(m1)
    for name, e in m2:
        exps[name] = exps.get(name, 0) + e
    return tuple(sorted((n, e) for n, e in exps.items() if e))


@dataclass(frozen=True)
class Num:
    """Σ coef · √rad · π^pi · i^imag · monomial, as a sorted tuple of ((rad, pi, imag, mono), coef).

    ``mono`` is a tuple of (variable, integer exponent): polynomials (and Laurent monomials) in
    free variables are compared as exact identities, so ``2(k+1) = 2k+2`` and ``x^2+2 ≠ x^2+1``
    are decided without sympy. Variables are free, so a match is an identity for every value.
    """

    terms: tuple

    @staticmethod
    def of(value: Fraction | int) -> Num:
        return Num(((ONE, Fraction(value)),) if value else ())

    @staticmethod
    def var(name: str) -> Num:
        return Num((((1, 0, 0, ((name, 1),)), Fraction(1)),))

    @staticmethod
    def _build(table: dict) -> Num:
        items = tuple(sorted((k, v) for k, v in table.items() if v))
        if len(items) > MAX_TERMS:
            raise Undecided("too many terms")
        for _, v in items:
            if v.numerator.bit_length() > MAX_BITS or v.denominator.bit_length() > MAX_BITS:
                raise Undecided("number too large")
        return Num(items)

    def rational(self) -> Fraction | None:
        if not self.terms:
            return Fraction(0)
        if len(self.terms) == 1 and self.terms[0][0] == ONE:
            return self.terms[0][1]
        return None

    def has_variables(self) -> bool:
        return any(k[3] for k, _ in self.terms)

    def has_atoms(self) -> bool:
        """Whether a function application (``\\sin x``) appears: identities among those are not
        polynomial identities, so inequality of their tables proves nothing."""
        return any(name.startswith(ATOM) for k, _ in self.terms for name, _ in k[3])

    def __add__(self, other: Num) -> Num:
        table = dict(self.terms)
        for k, v in other.terms:
            table[k] = table.get(k, 0) + v
        return Num._build(table)

    def __neg__(self) -> Num:
        return Num(tuple((k, -v) for k, v in self.terms))

    def __sub__(self, other: Num) -> Num:
        return self + (-other)

    def __mul__(self, other: Num) -> Num:
        if len(self.terms) * len(other.terms) > MAX_TERMS * 4:
            raise Undecided("product too large")
        table: dict = {}
        for (r1, p1, j1, m1), c1 in self.terms:
            for (r2, p2, j2, m2), c2 in other.terms:
                s, r = _squarefree(r1 * r2)
                c = c1 * c2 * s
                j = j1 + j2
                if j == 2:
                    c, j = -c, 0
                key = (r, p1 + p2, j, _mono_mul(m1, m2))
                table[key] = table.get(key, 0) + c
        return Num._build(table)

    def inverse(self) -> Num:
        if not self.terms:
            raise Undecided("division by zero")
        if len(self.terms) == 2:  # a + b·i with rational parts: multiply by the conjugate
            (k1, a), (k2, b) = self.terms
            if k1 == ONE and k2 == IMAG:
                norm = a * a + b * b
                return Num._build({k1: a / norm, k2: -b / norm})
        if len(self.terms) != 1:
            raise Undecided("division by a sum")
        (r, p, j, mono), c = self.terms[0]
        coef = 1 / (c * r)  # 1/(c√r) = √r/(c·r)
        if j:
            coef = -coef  # 1/i = -i
        return Num._build({(r, -p, j, tuple((n, -e) for n, e in mono)): coef})

    def __truediv__(self, other: Num) -> Num:
        return self * other.inverse()

    def power(self, exp: Num) -> Num:
        e = exp.rational()
        if e is None:
            raise Undecided("non-rational exponent")
        if e.denominator == 2 and self.rational() is not None and self.rational() >= 0:
            return sqrt_num(self).power(Num.of(e.numerator))
        if e.denominator != 1:
            raise Undecided("fractional exponent")
        n = e.numerator
        size = max(
            (max(v.numerator.bit_length(), v.denominator.bit_length()) for _, v in self.terms), default=1
        )
        if abs(n) > 100_000 or size * abs(n) > MAX_BITS or (len(self.terms) > 1 and abs(n) > 32):
            raise Undecided("exponent too large")
        if self.has_variables() and abs(n) > 1000:
            raise Undecided("exponent too large")
        base = self if n >= 0 else self.inverse()
        result, sq, n = Num.of(1), base, abs(n)
        while n:
            if n & 1:
                result = result * sq
            n >>= 1
            if n:
                sq = sq * sq
        return result

    def to_complex(self) -> complex:
        if self.has_variables():
            raise Undecided("not a number")
        total = 0j
        for (r, p, j, _), c in self.terms:
            total += float(c) * math.sqrt(r) * math.pi**p * (1j if j else 1)
        return total


def sqrt_num(x: Num) -> Num:
    q = x.rational()
    if q is None:
        raise Undecided("nested radical")
    imag = q < 0
    q = abs(q)
    s, r = _squarefree(q.numerator * q.denominator)
    return Num._build({(r, 0, int(imag), ()): Fraction(s, q.denominator)})


@dataclass(frozen=True)
class Inf:
    sign: int


# ---------------------------------------------------------------- arithmetic parser

_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)(?:[eE]([+-]?\d{1,3})(?![\d.]))?")
_COMMAND = re.compile(r"\\([A-Za-z]+)")
_MULT_CMDS = {"cdot", "times", "ast"}
_APPLIED = re.compile(r"\(\s*(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{?\w+\}?)?\s*(?:,\s*[A-Za-z]\s*)*\)")
_SUBSCRIPT = re.compile(r"_(?:\{([A-Za-z0-9]{1,8})\}|([A-Za-z0-9]))")
GREEK = {
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "varepsilon",
    "zeta",
    "eta",
    "theta",
    "vartheta",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "rho",
    "sigma",
    "tau",
    "phi",
    "varphi",
    "chi",
    "psi",
    "omega",
    "Gamma",
    "Delta",
    "Theta",
    "Lambda",
    "Xi",
    "Sigma",
    "Phi",
    "Psi",
    "Omega",
}


class _Arith:
    """Recursive-descent parser for +, -, ·, /, \\frac, \\sqrt, ^, !, π, i over one string."""

    def __init__(self, text: str):
        self.s = text
        self.i = 0

    def parse(self) -> Num:
        value = self.expr()
        self.skip()
        if self.i != len(self.s):
            raise Undecided(f"unparsed tail {self.s[self.i : self.i + 20]!r}")
        return value

    def skip(self) -> None:
        while self.i < len(self.s) and self.s[self.i] == " ":
            self.i += 1

    def peek(self) -> str:
        self.skip()
        return self.s[self.i] if self.i < len(self.s) else ""

    def expr(self) -> Num:
        sign = 1
        while self.peek() in ("+", "-"):
            sign = -sign if self.s[self.i] == "-" else sign
            self.i += 1
        value = self.term()
        value = -value if sign < 0 else value
        while self.peek() in ("+", "-"):
            op = self.s[self.i]
            self.i += 1
            rhs = self.term_signed()
            value = value + rhs if op == "+" else value - rhs
        return value

    def term_signed(self) -> Num:
        if self.peek() == "-":
            self.i += 1
            return -self.term_signed()
        if self.peek() == "+":
            self.i += 1
            return self.term_signed()
        return self.term()

    def term(self) -> Num:
        value = self.factor()
        only_int_literal = self._last_was_int
        while True:
            ch = self.peek()
            if ch in ("*", "/"):
                self.i += 1
                rhs = self.factor_signed()
                value = value * rhs if ch == "*" else value / rhs
            elif ch == "\\" and self._cmd() in _MULT_CMDS | {"div"}:
                cmd = self._cmd()
                self.i += len(cmd) + 1
                rhs = self.factor_signed()
                value = value / rhs if cmd == "div" else value * rhs
            elif ch and (ch.isalnum() or ch in "({." or (ch == "\\" and self._cmd() in _PRIMARY_CMDS)):
                mixed = only_int_literal and self._cmd() == "frac"
                rhs = self.factor()
                if mixed and self._last_was_proper_frac and value.rational() is not None:
                    value = value + rhs if value.rational() >= 0 else value - rhs  # 1\frac{4}{5}
                else:
                    value = value * rhs
            else:
                return value
            only_int_literal = False

    def factor_signed(self) -> Num:
        if self.peek() == "-":
            self.i += 1
            return -self.factor_signed()
        return self.factor()

    def factor(self) -> Num:
        self._last_was_int = False
        self._last_was_proper_frac = False
        base = self.primary()
        while self.peek() == "!":
            self.i += 1
            base = _factorial(base)
            self._last_was_int = False
        if self.peek() == "^":
            self.i += 1
            exp = self.arg(exponent=True)
            base = base.power(exp)
            self._last_was_int = False
        return base

    def _cmd(self) -> str:
        m = _COMMAND.match(self.s, self.i)
        return m.group(1) if m else ""

    def primary(self) -> Num:
        ch = self.peek()
        if not ch:
            raise Undecided("unexpected end")
        if ch.isdigit() or ch == ".":
            return self.number()
        if ch in "({":
            close = ")" if ch == "(" else "}"
            self.i += 1
            value = self.expr()
            if self.peek() != close:
                raise Undecided("unbalanced group")
            self.i += 1
            return value
        if ch == "e" and self.s[self.i + 1 : self.i + 2] == "^":
            self.i += 2
            exponent = self.arg(exponent=True)
            try:
                return _polar(exponent)  # e^{i·kπ/6}: a complex number in polar form
            except Undecided:
                return Num.var("e").power(exponent)  # e is transcendental: a free symbol is exact
        if ch == "i":
            self.i += 1
            return Num._build({IMAG: Fraction(1)})
        if ch == "\\":
            cmd = self._cmd()
            if cmd in GREEK:
                self.i += len(cmd) + 1
                return self._variable("\\" + cmd)
            handler = _PRIMARY_CMDS.get(cmd)
            if handler is None:
                raise Undecided(f"command \\{cmd}")
            self.i += len(cmd) + 1
            return handler(self)
        if ch.isalpha() and ch.isascii():
            self.i += 1
            return self._variable(ch)
        raise Undecided(f"symbol {ch!r}")

    def _variable(self, name: str) -> Num:
        """A one-letter (or Greek) variable with an optional subscript: x, r_0, a_{12}, \\omega_n."""
        m = _SUBSCRIPT.match(self.s, self.i)
        if m:
            name += "_" + (m.group(1) or m.group(2))
            self.i = m.end()
        if self.s[self.i : self.i + 1] == "'" or self.s.startswith("^{\\prime", self.i):
            raise Undecided("derivative")
        if _APPLIED.match(self.s, self.i):  # u(t), f(x): a function applied, not a product
            raise Undecided("function application")
        return Num.var(name)

    def number(self) -> Num:
        m = _NUMBER.match(self.s, self.i)
        if not m:
            raise Undecided("bad number")
        digits, exp = m.group(1), m.group(2)
        if len(digits) > MAX_DIGITS:
            raise Undecided("literal too long")
        self.i = m.end()
        value = Fraction(digits)
        if self.s.startswith("\\overline{", self.i) and "." in digits and exp is None:
            end = self.s.find("}", self.i)
            if end < 0:
                raise Undecided("unterminated \\overline")
            rep = self.s[self.i + 10 : end]
            if not rep.isdigit() or len(rep) > 50:
                raise Undecided("bad repeating decimal")
            self.i = end + 1
            places = len(digits.split(".")[1])
            value += Fraction(int(rep), (10 ** len(rep) - 1) * 10**places)
        if exp is not None:
            value *= Fraction(10) ** int(exp)
        self._last_was_int = exp is None and "." not in digits
        return Num.of(value)

    def arg(self, exponent: bool = False) -> Num:
        """A macro argument: {expr}, or one brace-less token (\\frac12, \\sqrt2, 2^10)."""
        ch = self.peek()
        if ch == "{":
            return self.primary()
        if ch.isdigit():
            if exponent:
                return self.number()
            self.i += 1
            return Num.of(int(ch))
        if ch == "-" and exponent:
            self.i += 1
            return -self.arg(exponent=True)
        return self.primary()


def _frac(p: _Arith) -> Num:
    num = p.arg()
    den = p.arg()
    p._last_was_proper_frac = (
        num.rational() is not None
        and den.rational() is not None
        and num.rational().denominator == 1
        and den.rational().denominator == 1
        and 0 <= num.rational() < den.rational()
    )
    return num / den


def _sqrt(p: _Arith) -> Num:
    if p.peek() == "[":
        end = p.s.find("]", p.i)
        if end < 0:
            raise Undecided("unterminated root index")
        if p.s[p.i + 1 : end].strip() != "2":
            raise Undecided("higher root")
        p.i = end + 1
    return sqrt_num(p.arg())


def _binom(p: _Arith) -> Num:
    n, k = p.arg().rational(), p.arg().rational()
    if n is None or k is None or n.denominator != 1 or k.denominator != 1 or not 0 <= n <= 2000:
        raise Undecided("binomial")
    return Num.of(math.comb(int(n), int(k)))


def _factorial(x: Num) -> Num:
    n = x.rational()
    if n is None or n.denominator != 1 or not 0 <= n <= MAX_FACTORIAL:
        raise Undecided("factorial")
    return Num.of(math.factorial(int(n)))


# cos(tπ), sin(tπ) on [0, π/2] as (coefficient, radicand) pairs: the angles with surd values
_FIRST_QUADRANT = {
    Fraction(0): ((1, 1), (0, 1)),
    Fraction(1, 6): ((Fraction(1, 2), 3), (Fraction(1, 2), 1)),
    Fraction(1, 4): ((Fraction(1, 2), 2), (Fraction(1, 2), 2)),
    Fraction(1, 3): ((Fraction(1, 2), 1), (Fraction(1, 2), 3)),
    Fraction(1, 2): ((0, 1), (1, 1)),
}


def _cos_sin(t: Fraction) -> tuple[Num, Num]:
    """Exact cos(tπ), sin(tπ) when the angle is a multiple of π/4 or π/6."""
    t = t % 2
    sign_c = sign_s = 1
    if t > 1:
        t, sign_s = 2 - t, -1  # reflect through the x-axis
    if t > Fraction(1, 2):
        t, sign_c = 1 - t, -1  # reflect through the y-axis
    if t not in _FIRST_QUADRANT:
        raise Undecided("angle without a surd value")
    (cc, cr), (sc, sr) = _FIRST_QUADRANT[t]
    cos = sqrt_num(Num.of(cr)) * Num.of(Fraction(cc) * sign_c)
    sin = sqrt_num(Num.of(sr)) * Num.of(Fraction(sc) * sign_s)
    return cos, sin


def _polar(exponent: Num) -> Num:
    """e^{i·tπ} for rational t with a surd-valued angle (polar-form complex answers)."""
    if len(exponent.terms) != 1 or exponent.terms[0][0] != (1, 1, 1, ()):
        raise Undecided("e to a power")
    cos, sin = _cos_sin(exponent.terms[0][1])
    return cos + sin * Num._build({IMAG: Fraction(1)})


ATOM = "@"  # prefix of variable names that stand for a function application
FUNCTIONS = {
    "sin",
    "cos",
    "tan",
    "cot",
    "sec",
    "csc",
    "arcsin",
    "arccos",
    "arctan",
    "sinh",
    "cosh",
    "tanh",
    "log",
    "ln",
    "lg",
    "exp",
}
_FUNC_VAR_ARG = re.compile(r"\s*([A-Za-z]|\\(?:" + "|".join(sorted(GREEK)) + r"))(?![A-Za-z0-9_^{(])")


def _function(name: str):
    """``\\sin x``, ``\\cos(2t)``, ``\\ln{x}`` as an opaque atom keyed by its exact argument."""

    def handler(p: _Arith) -> Num:
        ch = p.peek()
        if ch in ("(", "{"):
            arg = p.primary()
        else:
            m = _FUNC_VAR_ARG.match(p.s, p.i)
            if not m:
                raise Undecided(f"\\{name} argument")  # \sin^2 x, \log_2 x, \sin 2x: leave to sympy
            p.i = m.end()
            arg = Num.var(m.group(1))
        key = ";".join(
            f"{r},{k},{j},{'*'.join(f'{v}^{e}' for v, e in mono)}:{c}" for (r, k, j, mono), c in arg.terms
        )
        if len(key) > 1000:
            raise Undecided("function argument too large")
        return Num.var(f"{ATOM}{name}[{key}]")

    return handler


_PRIMARY_CMDS = {
    **{name: _function(name) for name in FUNCTIONS},
    "frac": _frac,
    "sqrt": _sqrt,
    "binom": _binom,
    "pi": lambda p: Num._build({PI: Fraction(1)}),
}


@lru_cache(maxsize=65536)
def parse_number(text: str) -> Num:
    """Parse one scalar expression exactly (raises Undecided)."""
    if not text:
        raise Undecided("empty")
    return _Arith(text).parse()


# ---------------------------------------------------------------- structures


@dataclass(frozen=True)
class Seq:
    """A bracketed tuple/interval ``(`` ``]``, a set ``{}``, a bare list, or a matrix."""

    kind: str  # "bracket" | "set" | "list" | "matrix"
    items: tuple
    open: str = ""
    close: str = ""


@dataclass(frozen=True)
class Intervals:
    """A union of real intervals, each (lo, lo_closed, hi, hi_closed); ends are exact Num or Inf."""

    parts: tuple
    relation: bool = field(default=False, compare=False)  # written as inequalities (x \le 2)


@dataclass(frozen=True)
class Based:
    """A numeral written in another base, ``2516_8``: digits and base are both part of the answer."""

    digits: str
    base: int


@dataclass(frozen=True)
class Word:
    text: str


_MATRIX = re.compile(r"^\\begin\{([pbvBV]?matrix|array)\}(?:\{[lcr|]*\})?(.*)\\end\{\1\}$", re.S)
_REL = re.compile(r"\\le|\\ge|<=|>=|<|>")
_BASED = re.compile(r"^([0-9A-Za-z]+)_\{?(\d{1,2})\}?$")
_WORD = re.compile(r"^[A-Za-z][A-Za-z ]*[A-Za-z]$")


def split_top(s: str, sep: str) -> list[str]:
    """Split on sep outside (), [], {} and \\{ \\}."""
    parts, depth, start, i, n = [], 0, 0, 0, len(s)
    while i < n:
        if s.startswith("\\{", i) or s.startswith("\\}", i):
            depth += 1 if s[i + 1] == "{" else -1
            i += 2
            continue
        ch = s[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and s.startswith(sep, i):
            parts.append(s[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    parts.append(s[start:])
    return parts


def _wrapped(s: str) -> tuple[str, str, str] | None:
    """If s is one bracketed group, return (open, inner, close)."""
    if s.startswith("\\{") and s.endswith("\\}"):
        inner = s[2:-2]
        if _depth_ok(inner):
            return "{", inner, "}"
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]" and _depth_ok(s[1:-1]):
        return s[0], s[1:-1], s[-1]
    return None


def _depth_ok(inner: str) -> bool:
    depth, i = 0, 0
    while i < len(inner):
        if inner.startswith("\\{", i) or inner.startswith("\\}", i):
            depth += 1 if inner[i + 1] == "{" else -1
            i += 2
        else:
            depth += (inner[i] in "([{") - (inner[i] in ")]}")
            i += 1
        if depth < 0:
            return False
    return depth == 0


def _scalar(s: str):
    if s in ("\\infty", "+\\infty", "oo"):
        return Inf(1)
    if s in ("-\\infty", "-oo"):
        return Inf(-1)
    return parse_number(s)


def _items(s: str) -> list:
    out: list = []
    for part in split_top(s, ","):
        part = part.strip()
        if not part:
            raise Undecided("empty item")
        out.extend(_item(part))
    return out


def _item(s: str) -> list:
    """One list element; ``a \\pm b`` expands to two values."""
    wrapped = _wrapped(s)
    if wrapped:
        return [_group(*wrapped)]
    if "\\pm" in s or "\\mp" in s:
        pieces = re.split(r"\\pm|\\mp", s)
        if len(pieces) != 2:
            raise Undecided("several \\pm")
        a = parse_number(pieces[0]) if pieces[0] else Num.of(0)
        b = parse_number(pieces[1])
        return [a + b, a - b]
    return [_scalar(s)]


def _group(open_: str, inner: str, close: str):
    items = tuple(_items(inner)) if inner.strip() else ()
    if open_ == "{":
        return Seq("set", items)
    return Seq("bracket", items, open_, close)


_ABS_VAR = re.compile(r"^\|\s*([A-Za-z](?:_\{?\w+\}?)?)\s*\|$")
_VAR = re.compile(r"[A-Za-z](?:_\{?\w+\}?)?")
NEG_INF, POS_INF = Inf(-1), Inf(1)


def _ordered(parts: list) -> tuple:
    """Intervals sorted by their (float) ends; the ends themselves stay exact for comparison."""
    return tuple(sorted(parts, key=lambda p: (_real(p[0]), _real(p[2]))))


def _abs_relation(ops: list[str], sides: list[str]) -> list | None:
    """``|x| \\le a`` is [-a, a]; ``|x| > a`` is (-inf, -a) u (a, inf)."""
    if len(ops) != 1:
        return None
    if _ABS_VAR.match(sides[0]):
        bound, less = sides[1], ops[0] in ("<", "\\le", "<=")
    elif _ABS_VAR.match(sides[1]):
        bound, less = sides[0], ops[0] in (">", "\\ge", ">=")
    else:
        return None
    a = _scalar(bound)
    if not isinstance(a, Num) or _real(a) < 0:
        raise Undecided("absolute value bound")
    closed = ops[0] in ("\\le", "\\ge", "<=", ">=")
    if less:
        return [(-a, closed, a, closed)]
    return [(NEG_INF, False, -a, closed), (a, closed, POS_INF, False)]


def _relations(parts: list[str]) -> Intervals:
    """Solved inequalities (``x\\le2``, ``-2<x<7``, ``|x|\\le1``), one per part, as a union of intervals."""
    out = []
    for part in parts:
        ops = _REL.findall(part)
        sides = [x.strip() for x in _REL.split(part)]
        from_abs = _abs_relation(ops, sides)
        if from_abs is not None:
            out.extend(from_abs)
            continue
        var_pos = [k for k, side in enumerate(sides) if _VAR.fullmatch(side)]
        if len(var_pos) != 1 or not 1 <= len(ops) <= 2:
            raise Undecided("not a solved inequality")
        lo, lo_c, hi, hi_c = NEG_INF, False, POS_INF, False
        v = var_pos[0]
        for k, op in enumerate(ops):
            if v not in (k, k + 1):
                raise Undecided("chain without the variable")
            value = _scalar(sides[k] if k + 1 == v else sides[k + 1])
            _real(value)  # real bounds only
            less = op in ("<", "\\le", "<=")
            closed = op in ("\\le", "\\ge", "<=", ">=")
            upper = less == (k == v)  # x < a  or  a > x: a bounds x from above
            if upper:
                hi, hi_c = value, closed
            else:
                lo, lo_c = value, closed
        out.append((lo, lo_c, hi, hi_c))
    return Intervals(_ordered(out), relation=True)


def _real(x) -> float:
    if isinstance(x, Inf):
        return math.inf * x.sign
    z = x.to_complex()
    if z.imag:
        raise Undecided("complex bound")
    return z.real


def _interval_of(seq: Seq) -> Intervals | None:
    if seq.kind != "bracket" or len(seq.items) != 2:
        return None
    lo, hi = seq.items
    if not _real(lo) < _real(hi):
        return None
    return Intervals(((lo, seq.open == "[", hi, seq.close == "]"),))


@lru_cache(maxsize=65536)
def parse_value(text: str):
    """Parse a canonical answer into Num | Inf | Seq | Intervals | Word (raises Undecided)."""
    s = text.strip()
    if not s:
        raise Undecided("empty")
    m = _MATRIX.match(s)
    if m:
        rows = [r for r in re.split(r"\\\\", m.group(2)) if r.strip()]
        return Seq("matrix", tuple(tuple(parse_number(c.strip()) for c in r.split("&")) for r in rows))
    m = _BASED.match(s)
    if m:
        return Based(m.group(1).lower().lstrip("0") or "0", int(m.group(2)))
    if _WORD.match(s) and not re.search(r"\b(?:sqrt|frac|pi|infty)\b", s):
        return Word(s.lower().replace(" ", ""))
    if _REL.search(s):
        return _relations(split_top(s, ","))
    if "\\cup" in s:
        parts = [p.strip() for p in split_top(s, "\\cup")]
        out = []
        for p in parts:
            w = _wrapped(p)
            if not w or w[0] == "{":
                raise Undecided("union of non-intervals")
            iv = _interval_of(_group(*w))
            if iv is None:
                raise Undecided("union part is not an interval")
            out.extend(iv.parts)
        return Intervals(_ordered(out))
    items = _items(s)
    if len(items) == 1:
        return items[0]
    return Seq("list", tuple(items))


# ---------------------------------------------------------------- comparison


def _num_eq(g: Num, p: Num) -> bool:
    """Exact equality; with function atoms a difference is decisive only if it has no atoms left
    (``\\cot x + 1`` vs ``\\cot x``), since ``\\sin^2 x + \\cos^2 x = 1`` is not a polynomial identity."""
    if g == p:
        return True
    if (g.has_atoms() or p.has_atoms()) and (g - p).has_atoms():
        raise Undecided("function identity")
    return False


def _eq(g, p) -> bool:
    if type(g) is not type(p):
        return False
    if isinstance(g, Num):
        return _num_eq(g, p)
    if isinstance(g, Seq):
        if g.kind != p.kind:
            return False
        if g.kind in ("set", "list"):
            return g.kind == p.kind and _unordered_eq(g.items, p.items)
        return (
            len(g.items) == len(p.items)
            and all(len(a) == len(b) and all(map(_eq, a, b)) for a, b in zip(g.items, p.items, strict=True))
            if g.kind == "matrix"
            else (
                g.open == p.open
                and g.close == p.close
                and len(g.items) == len(p.items)
                and all(_eq(a, b) for a, b in zip(g.items, p.items, strict=True))
            )
        )
    return g == p


def _unordered_eq(gs: tuple, ps: tuple) -> bool:
    if len(gs) != len(ps):
        return False
    remaining = list(ps)
    for g in gs:
        for k, p in enumerate(remaining):
            if _eq(g, p):
                del remaining[k]
                break
        else:
            return False
    return True


def _as_intervals(v) -> Intervals | None:
    if isinstance(v, Intervals):
        return v
    if isinstance(v, Seq):
        return _interval_of(v)
    return None


def _same_value(g, p, policy: Policy, gold_ulp: Fraction | None) -> bool:
    """Top-level comparison of parsed gold and prediction under the policy's structure rules."""
    if isinstance(g, Num) and isinstance(p, Num) and gold_ulp is not None and policy.numeric == "sig_figs":
        gv, pv = g.to_complex(), p.to_complex()
        return not pv.imag and abs(pv.real - gv.real) <= float(gold_ulp) / 2 * (1 + 1e-9)
    if _eq(g, p):
        return True
    if isinstance(g, Based) and isinstance(p, Num):  # 2516 for 2516_8: same digits, base implied
        value = p.rational()
        return value is not None and value.denominator == 1 and str(value.numerator) == g.digits
    if isinstance(p, Seq) and p.kind in ("list", "set") and len(p.items) == 1:
        return _same_value(g, p.items[0], policy, gold_ulp)  # \{5\} for 5
    if isinstance(g, Seq) and isinstance(p, Seq):
        if g.kind == "list" and p.kind == "set" or g.kind == "set" and p.kind == "list":
            return _unordered_eq(g.items, p.items)
        if {g.kind, p.kind} == {"list", "bracket"} and "[" not in (g.open + p.open):
            return len(g.items) == len(p.items) and all(map(_eq, g.items, p.items))  # 2, 4 for (2,4)
        if g.kind == "matrix" and p.kind == "bracket" and p.open == "(" and p.close == ")":
            flat = tuple(x for row in g.items for x in row)
            vector = all(len(row) == 1 for row in g.items) or len(g.items) == 1
            return vector and len(flat) == len(p.items) and all(map(_eq, flat, p.items))
    gi, pi = _as_intervals(g), _as_intervals(p)
    if gi is None or pi is None:
        return False
    if pi.relation != gi.relation and not policy.interval_relations:
        return False  # an inequality for an interval (or back) only under interval_relations
    return gi.parts == pi.parts


_ULP = re.compile(r"^-?(\d*)(?:\.(\d+))?(?:e([+-]?\d+))?$")
_ULP_TIMES = re.compile(r"^-?(\d*)(?:\.(\d+))?\\(?:times|cdot)10\^\{?(-?\d+)\}?$")


def gold_ulp(text: str) -> Fraction | None:
    """Unit in the last place of a decimal gold literal (``3.83e35`` -> 1e33), else None."""
    m = _ULP.match(text) or _ULP_TIMES.match(text)
    if not m or not (m.group(1) or m.group(2)):
        return None
    places = len(m.group(2) or "")
    exp = int(m.group(3) or 0)
    return Fraction(10) ** (exp - places)


def _scalar_candidates(v, norm: Norm, other: Norm, is_gold: bool, policy: Policy) -> list:
    """Values a side may stand for once % signs are taken into account."""
    out = [v]
    if isinstance(v, Num) and norm.percent and not other.percent:
        if not is_gold or policy.percent_as_fraction:
            out.append(v * Num.of(Fraction(1, 100)))
    return out


def _one_equation(text: str) -> bool:
    return text.count("=") == 1 and not _REL.search(text) and "," not in text


def _equation_match(gold: str, pred: str) -> str:
    """``a = b`` against ``c = d``: a match when a − b is a nonzero rational multiple of c − d.

    Proportional equations have the same solutions (a plane written scaled or negated). Anything
    else may still be equivalent (``x^2 = 0`` and ``x = 0``), so it is left to the fallback.
    """
    g_lhs, g_rhs = gold.split("=")
    p_lhs, p_rhs = pred.split("=")
    g = parse_number(g_lhs) - parse_number(g_rhs)
    p = parse_number(p_lhs) - parse_number(p_rhs)
    if not g.terms or not p.terms:
        raise Undecided("degenerate equation")
    key, g_coef = g.terms[0]
    p_coef = dict(p.terms).get(key)
    if p_coef is not None and p * Num.of(g_coef / p_coef) == g:
        return "match"
    if _linear(g) and _linear(p):
        return "mismatch"  # two non-proportional linear equations describe different hyperplanes
    raise Undecided("not proportional")


def _linear(x: Num) -> bool:
    """Degree exactly 1 in its variables (and at least one variable term), real coefficients."""
    if x.has_atoms():
        return False
    degrees = [sum(e for _, e in key[3]) for key, _ in x.terms]
    no_imag = all(key[2] == 0 for key, _ in x.terms)
    return no_imag and max(degrees) == 1 and min(degrees) >= 0


_LATEX_NAME = re.compile(r"\\[A-Za-z]+")
_LETTER = re.compile(r"[A-Za-z]")


def _mentions_variables(text: str) -> bool:
    """A letter outside LaTeX command names (``2x+3`` yes; ``\\frac{\\pi}{3}`` no)."""
    return bool(_LETTER.search(_LATEX_NAME.sub("", text)))


def _var_name(var: str) -> str:
    return var.replace("{", "").replace("}", "").replace(" ", "")


# "f(x) = 2x" defines a function: "y = 2x" and "2x" still answer it as before (its right side)
_FUNCTION_DEF = re.compile(r"[A-Za-z](?:_\{?\w+\}?)?\([^()=]*\)=")


def _as_equation(n: Norm) -> Norm:
    return replace(n, text=f"{n.var}={n.text}", var=None)


def _in_radians(n: Norm) -> Norm:
    return replace(n, text=f"\\frac{{({n.text})\\pi}}{{180}}", degrees=False)


def align(gold: Norm, pred: Norm, policy: Policy) -> tuple[Norm, Norm]:
    """Put both sides in the same form before comparing (docs/verifier.md, "Decided rules").

    * ``equation_forms``: a ``var = expression`` side whose expression has variables (a line, a
      curve) is turned back into its equation when the other side is an equation or names a
      different variable, so ``y = 2x + 3``, ``2x - y + 3 = 0`` and ``x = (y - 3)/2`` compare as
      equations. ``x = 5`` stays the value 5: restating a one-variable equation is no answer. A
      function definition (``f(x) = 2x``) is no such equation: ``y = 2x`` answers it by its right side.
    * ``angle_units``: exactly one side carries a degree sign, the other is a multiple of π: the
      degrees are written in radians (``60^\\circ`` -> ``\\frac{(60)\\pi}{180}``). One angle only
      (no tuples); a π written in degrees (``\\frac{\\pi}{3}^\\circ``) is a mismatch.
    """
    if policy.equation_forms:
        g_curve = gold.var is not None and _mentions_variables(gold.text)
        p_curve = pred.var is not None and _mentions_variables(pred.text)
        g_eq = _one_equation(gold.text) and not _FUNCTION_DEF.match(gold.text.replace(" ", ""))
        p_eq = _one_equation(pred.text) and not _FUNCTION_DEF.match(pred.text.replace(" ", ""))
        same_var = g_curve and p_curve and _var_name(gold.var) == _var_name(pred.var)
        if (g_curve or g_eq) and (p_curve or p_eq) and not same_var:
            gold = _as_equation(gold) if g_curve else gold
            pred = _as_equation(pred) if p_curve else pred
    if policy.angle_units and gold.degrees != pred.degrees:
        deg, rad = (gold, pred) if gold.degrees else (pred, gold)
        plain = "\\pi" not in deg.text and "," not in deg.text and not _mentions_variables(deg.text)
        if "\\pi" in rad.text and plain:
            deg = _in_radians(deg)
            gold, pred = (deg, rad) if gold.degrees else (rad, deg)
    return gold, pred


def compare(gold: Norm, pred: Norm, policy: Policy) -> str:
    """``match`` or ``mismatch``; raises Undecided when the exact path cannot tell."""
    if gold.unit and pred.unit and gold.unit.rstrip("s") != pred.unit.rstrip("s"):
        return "mismatch"
    if policy.var_names and gold.var and pred.var and _var_name(gold.var) != _var_name(pred.var):
        return "mismatch"  # y = 6 does not answer x = ? (align() already made curves equations)
    if policy.angle_units and gold.degrees != pred.degrees and "\\pi" in gold.text and "\\pi" in pred.text:
        return "mismatch"  # (π/3)° is not π/3 (align() converted every plain angle in degrees)
    if gold.choice or pred.choice:
        if gold.choice and pred.choice:
            return "match" if gold.choice == pred.choice else "mismatch"
        if gold.choice and not pred.choice:
            return "mismatch"  # a value for a letter gold: the options are not known here
    if gold.text.replace(" ", "") == pred.text.replace(" ", ""):
        if gold.percent == pred.percent or not (gold.percent and pred.percent):
            return "match"
    if _one_equation(gold.text) and _one_equation(pred.text):
        return _equation_match(gold.text, pred.text)
    g = parse_value(gold.text)
    if isinstance(g, Word):
        try:
            p = parse_value(pred.text)
        except Undecided:
            return "mismatch"
        return "match" if isinstance(p, Word) and p.text == g.text else "mismatch"
    p = parse_value(pred.text)
    if isinstance(p, Word):
        return "mismatch"
    ulp = gold_ulp(gold.text) if policy.numeric == "sig_figs" else None
    for gv in _scalar_candidates(g, gold, pred, True, policy):
        for pv in _scalar_candidates(p, pred, gold, False, policy):
            if _same_value(gv, pv, policy, ulp):
                return "match"
    return "mismatch"
