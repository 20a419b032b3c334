"""The exact path against sympy on generated expressions: its equality decisions and values must
agree with sympy's. The expressions are built from a grammar, never from model output; sympy
objects are constructed directly, never parsed from strings."""

from __future__ import annotations

import random

import sympy

from rlvr.verify.exact import Undecided, parse_number

X, Y = sympy.symbols("x y")


def _leaf(rng: random.Random):
    kind = rng.choice(["int", "frac", "sqrt", "pi", "i", "x", "y", "dec"])
    if kind == "int":
        n = rng.randint(-9, 12)
        return (f"({n})" if n < 0 else str(n)), sympy.Integer(n)
    if kind == "frac":
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        return f"\\frac{{{a}}}{{{b}}}", sympy.Rational(a, b)
    if kind == "sqrt":
        a = rng.randint(1, 30)
        return f"\\sqrt{{{a}}}", sympy.sqrt(a)
    if kind == "dec":
        a = rng.randint(0, 999)
        return f"{a / 100}", sympy.Rational(a, 100)
    return {"pi": ("\\pi", sympy.pi), "i": ("i", sympy.I), "x": ("x", X), "y": ("y", Y)}[kind]


def _expr(rng: random.Random, depth: int = 0):
    """(LaTeX, the same value as a sympy expression)."""
    if depth > 3 or rng.random() < 0.3:
        return _leaf(rng)
    (a, sa), (b, sb) = _expr(rng, depth + 1), _expr(rng, depth + 1)
    op = rng.choice("+-*/^")
    if op == "+":
        return f"{a}+{b}", sa + sb
    if op == "-":
        return f"{a}-({b})", sa - sb
    if op == "*":
        return f"({a})\\cdot({b})", sa * sb
    if op == "/":
        return f"\\frac{{{a}}}{{{b}}}", sa / sb
    e = rng.randint(0, 3)
    return f"({a})^{{{e}}}", sa**e


def _sympy_equal(diff) -> bool:
    """Zero at two rational points to 30 digits, confirmed symbolically (cheap when unequal)."""
    for point in ({X: sympy.Rational(7, 3), Y: sympy.Rational(11, 5)}, {X: sympy.Rational(-5, 7), Y: 3}):
        if abs(complex(diff.evalf(30, subs=point))) > 1e-20:
            return False
    return sympy.simplify(diff) == 0


def _parse(latex: str):
    try:
        return parse_number(latex)
    except (Undecided, ZeroDivisionError, RecursionError):
        return None


def test_exact_equality_agrees_with_sympy():
    rng = random.Random(5)
    decided = 0
    for _ in range(250):
        (la, sa), (lb, sb) = _expr(rng), _expr(rng)
        if rng.random() < 0.5:
            lb, sb = f"0+{la}", sa  # a different spelling of the same value
        pa, pb = _parse(la), _parse(lb)
        if pa is None or pb is None or sa.has(sympy.zoo, sympy.nan) or sb.has(sympy.zoo, sympy.nan):
            continue
        decided += 1
        assert (pa == pb) == _sympy_equal(sa - sb), (la, lb)
    assert decided > 150


def test_exact_values_agree_with_sympy():
    rng = random.Random(6)
    checked = 0
    for _ in range(300):
        latex, value = _expr(rng)
        parsed = _parse(latex)
        if parsed is None or value.free_symbols or value.has(sympy.zoo, sympy.nan):
            continue
        checked += 1
        want, got = complex(sympy.N(value, 30)), parsed.to_complex()
        assert abs(want - got) <= 1e-9 * max(1.0, abs(want)), latex
    assert checked > 100


def test_unterminated_groups_are_undecided_not_reparsed():
    """A missing closing brace once reset the parser to the start (found by timing fuzz)."""
    import time

    import pytest

    for text in ["0.1\\overline{9", "\\sqrt[3 8", "0." + "1" * 150 + "\\overline{" + "9" * 49]:
        start = time.perf_counter()
        with pytest.raises(Undecided):
            parse_number(text)
        assert time.perf_counter() - start < 0.05


def test_function_atoms_decide_only_what_holds_for_every_function():
    """\\sin x as an opaque atom: equal tables are an identity; a difference that still holds an
    atom proves nothing (sin^2 + cos^2 = 1), so it is left to sympy."""
    import pytest

    from rlvr.verify.exact import compare
    from rlvr.verify.normalize import normalize
    from rlvr.verify.policy import MATH

    def judge(pred: str, gold: str) -> str:
        return compare(normalize(gold), normalize(pred), MATH)

    assert judge(r"2\sin(x)", r"\sin x \cdot 2") == "match"
    assert judge(r"\cot x + 1", r"\cot x") == "mismatch"  # the difference is the constant 1
    assert judge(r"\ln(x) + y", r"\ln x") == "mismatch"  # the difference y is a nonzero polynomial
    for pred, gold in [
        (r"\sin(\pi/6)", r"\frac12"),
        (r"\frac{\cos x}{\sin x}", r"\cot x"),
        (r"\log x", r"\ln x"),
    ]:
        with pytest.raises(Undecided):
            judge(pred, gold)
